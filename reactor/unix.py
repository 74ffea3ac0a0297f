"""UNIX stream sockets for every backend: ``listenUNIX``, ``connectUNIX``, their transports.

The transports are the TCP ones (``reactor/tcp.py`` on the selector reactor,
``reactor/_aio_tcp.py`` on asyncio/uvloop) with three things changed: the
addresses are ``UNIXAddress`` values, there is no Nagle to switch off
(``setTcpNoDelay`` is ignored, as in Twisted), and
``getPeerCredentials()`` tells who is at the other end. Writing, closing,
half-closing and producers behave exactly as on TCP.

What ``listenUNIX(path, factory, backlog, mode, wantPID)`` does with the file
system, in order:

1. ``wantPID``: take the lock ``path + ".lock"``, a symbolic link whose
   target is our pid (Twisted's format, so Twisted's ``checkPID`` clients
   understand it). A lock left by a process that is gone is taken over;
   one held by a live process makes the call fail.
2. A socket file already at ``path``: if a server accepts connections on it,
   fail ("address in use"); if nobody does (the previous server died without
   removing it), remove it. Anything else at ``path`` (a regular file, a
   directory, a link) is left alone and the call fails.
3. Bind, ``chmod(path, mode)``, listen. Errors raise ``CannotListenError``
   synchronously, on every backend.
4. ``stopListening()`` (or reactor shutdown) removes the socket file, unless
   it has been replaced by another file meanwhile, and releases the lock.

A path starting with a NUL byte is a Linux abstract-namespace name: no file
exists, so steps 1, 2 and 4 and the ``mode`` do not apply.

``connectUNIX`` returns a ``UNIXConnector``. Connecting a UNIX socket never
waits on Linux: ``connect()`` succeeds, is refused, or finds the server's
backlog full (``EAGAIN``). No readiness event announces room in a backlog, so
then the connector tries again on a timer (5 ms, doubling to 100 ms) until
it connects or the timeout passes. The same polling covers systems where a
UNIX connect may be in progress (``EINPROGRESS``).

Differences from Twisted: a stale socket file is always removed (Twisted:
only with ``wantPID``), after checking that nobody listens (by connecting,
so a live server sees one empty connection); the server factory's
``buildProtocol`` gets ``getPeer()``'s address (``UNIXAddress(None)`` for an
unbound client; Twisted passes ``UNIXAddress(b"")``); ``checkPID`` only reads
the lock (Twisted takes and drops it); a client ``buildProtocol`` returning
None fails with ``ConnectError`` as in ``connectTCP`` (Twisted:
``NoProtocol``). File-descriptor passing and UNIX datagrams are not supported.
"""

from __future__ import annotations

import errno
import logging
import os
import selectors
import socket
import stat
import struct
from typing import TYPE_CHECKING, Any

from deferred import Deferred, Failure
from reactor import tcp
from reactor.address import UNIXAddress
from reactor.error import (
    BadFileError,
    CannotListenError,
    ConnectError,
    ConnectionLost,
    NotConnectingError,
    TimeoutError,
    UserError,
    getConnectError,
)
from reactor.selector import SelectorReactor

if TYPE_CHECKING:
    from reactor import _aio_unix

__all__ = ["Connection", "Port", "SocketFile", "UNIXConnector", "connect_unix", "listen_unix"]

log = logging.getLogger("reactor")

#: struct ucred: pid_t pid, uid_t uid, gid_t gid.
_UCRED = struct.Struct("iII")
#: First and longest wait between connect attempts while the server's backlog is full.
RETRY_FIRST = 0.005
RETRY_MAX = 0.1
#: connect() results meaning "not refused, try again later".
_CONNECT_AGAIN = {errno.EAGAIN, errno.EWOULDBLOCK, errno.EINPROGRESS, errno.EALREADY}


# -- names, addresses, credentials ------------------------------------------------------


def unix_address(name: str | bytes | None) -> UNIXAddress:
    """The ``UNIXAddress`` for a socket name as the OS reports it ('' means unnamed)."""
    return UNIXAddress(name or None)


def _in_filesystem(path: bytes) -> bool:
    return not path.startswith(b"\0")


def _display(path: bytes) -> str:
    """A printable path; an abstract name is shown with a leading "@" (as ``ss`` does)."""
    if _in_filesystem(path):
        return os.fsdecode(path)
    return "@" + os.fsdecode(path[1:])


def peer_credentials(sock: Any) -> tuple[int, int, int]:
    """The (pid, uid, gid) of the process at the other end of a connected UNIX socket.

    The kernel records them when the connection is made (for a client: those
    of the server when it called ``listen()``), so they cannot be forged.

    Raises:
        NotImplementedError: the OS has no ``SO_PEERCRED`` (it is Linux's).
        OSError: the socket is closed.
    """
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None:
        raise NotImplementedError("peer credentials need SO_PEERCRED, which this OS lacks")
    pid, uid, gid = _UCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, option, _UCRED.size))
    return pid, uid, gid


# -- the socket file: lock, stale sockets, mode, removal ------------------------------------


def _unlink(path: bytes) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass  # someone else removed it: fine


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, it just belongs to someone else
    return True


def _lock_holder(lock: bytes) -> int | None:
    """The pid a lock link names; None if there is no lock or it is not one of ours."""
    try:
        return int(os.readlink(lock))
    except (OSError, ValueError):
        return None


def lock_is_held(lock: bytes) -> bool:
    """Is ``lock`` a pid lock (see ``SocketFile``) of a process still running?"""
    holder = _lock_holder(lock)
    return holder is not None and _pid_alive(holder)


def _in_use(message: str) -> OSError:
    return OSError(errno.EADDRINUSE, f"{os.strerror(errno.EADDRINUSE)} ({message})")


class SocketFile:
    """The file-system side of a listening UNIX socket (steps 1-4 of the module docstring).

    Args:
        address: the socket's path (str or bytes; a leading NUL: abstract).
        mode: permission bits for the socket file.
        want_pid: keep a pid lock at ``address + ".lock"`` while listening.
    """

    def __init__(self, address: str | bytes, mode: int, want_pid: bool) -> None:
        self.path = os.fsencode(address)
        self.mode = mode
        self.want_pid = want_pid and _in_filesystem(self.path)
        self._lock = self.path + b".lock"
        self._locked = False
        # (st_dev, st_ino) of the file we bound, so that we never remove a
        # file someone else put at the path after us.
        self._identity: tuple[int, int] | None = None

    def _error(self, reason: BaseException) -> CannotListenError:
        return CannotListenError(None, _display(self.path), reason)

    def open(self, backlog: int) -> socket.socket:
        """Lock, clear a stale socket, bind, chmod, listen: a listening socket.

        Raises:
            CannotListenError: naming the path and what went wrong.
        """
        if self.want_pid:
            self._take_lock()
        try:
            if _in_filesystem(self.path):
                self._clear_stale()
            return self._bind(backlog)
        except BaseException:
            self._release_lock()
            raise

    def _take_lock(self) -> None:
        pid = str(os.getpid())
        # Twice at most: once more after removing a dead process's lock.
        for _ in range(2):
            try:
                os.symlink(pid, self._lock)
            except FileExistsError:
                holder = _lock_holder(self._lock)
                if holder is None or _pid_alive(holder):
                    raise self._error(OSError("Cannot acquire lock")) from None
                log.info("Removing the lock %r of process %d, which is gone",
                         os.fsdecode(self._lock), holder)
                _unlink(self._lock)
                continue
            except OSError as e:
                raise self._error(e) from e
            self._locked = True
            return
        raise self._error(OSError("Cannot acquire lock"))

    def _release_lock(self) -> None:
        if self._locked:
            self._locked = False
            if _lock_holder(self._lock) == os.getpid():
                _unlink(self._lock)

    def _clear_stale(self) -> None:
        """Remove a socket file nobody listens on; refuse anything else at the path."""
        try:
            st = os.lstat(self.path)
        except OSError:
            return  # nothing there, or we cannot tell: bind() will say
        if not stat.S_ISSOCK(st.st_mode):
            raise self._error(_in_use("something that is not a socket is there"))
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.setblocking(False)  # a full backlog must not block us
            code = probe.connect_ex(self.path)
        finally:
            probe.close()
        if code == 0 or code in _CONNECT_AGAIN:
            raise self._error(_in_use("a server is listening on it"))
        if code == errno.ECONNREFUSED:
            log.info("Removing the stale socket file %r", _display(self.path))
            _unlink(self.path)
        # Any other answer (EACCES...): leave the file; bind() reports the problem.

    def _bind(self, backlog: int) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(self.path)
            if _in_filesystem(self.path):
                st = os.stat(self.path)
                self._identity = (st.st_dev, st.st_ino)
                # Before listen(), so no client ever connects under looser bits.
                os.chmod(self.path, self.mode)
            sock.listen(backlog)
        except OSError as e:
            sock.close()
            self._remove_file()
            raise self._error(e) from e
        return sock

    def remove(self) -> None:
        """Remove the socket file (if it is still ours) and release the lock; idempotent."""
        self._remove_file()
        self._release_lock()

    def _remove_file(self) -> None:
        identity, self._identity = self._identity, None
        if identity is None:
            return
        try:
            st = os.lstat(self.path)
            if (st.st_dev, st.st_ino) == identity:
                os.unlink(self.path)
        except FileNotFoundError:
            pass
        except OSError as e:
            log.warning("Could not remove the socket file %r: %s", _display(self.path), e)


# -- the selector reactor's transport and port --------------------------------------------


class Connection(tcp.Connection):
    """A connected UNIX socket on the selector reactor (the TCP transport, UNIX addresses).

    Args:
        destination: on the client side, the address connected to, which
            ``getPeer()`` reports (as in Twisted; the server may have bound
            another spelling of the path).
    """

    def __init__(self, reactor: SelectorReactor, sock: socket.socket, protocol: Any,
                 on_lost: Any = None, server: bool = False,
                 destination: UNIXAddress | None = None) -> None:
        super().__init__(reactor, sock, protocol, on_lost, server)
        self._unix_peer = destination
        self._unix_host: UNIXAddress | None = None

    def _start(self) -> None:
        # tcp.Connection._start with UNIX addresses: it computes TCP ones inline.
        try:
            if self._unix_peer is None:
                self._unix_peer = unix_address(self.socket.getpeername())
            self._unix_host = unix_address(self.socket.getsockname())
        except OSError as e:
            self.socket.close()
            if self._on_lost is not None:
                self._on_lost(Failure(ConnectionLost(f"{e.errno}: {e.strerror}")))
            return
        self.reactor._selectables.add(self)
        self._set_interest(selectors.EVENT_READ)
        try:
            self.protocol.makeConnection(self)
        except Exception:
            self._user_error("connectionMade")

    def getPeer(self) -> UNIXAddress:  # type: ignore[override]
        """The other end's address (``UNIXAddress(None)`` for an unbound client)."""
        assert self._unix_peer is not None, "not started"
        return self._unix_peer

    def getHost(self) -> UNIXAddress:  # type: ignore[override]
        """This end's address (``UNIXAddress(None)`` on a client that did not bind)."""
        assert self._unix_host is not None, "not started"
        return self._unix_host

    def getPeerCredentials(self) -> tuple[int, int, int]:
        """(pid, uid, gid) of the peer process; see ``peer_credentials``."""
        return peer_credentials(self.socket)

    def setTcpNoDelay(self, enabled: bool) -> None:
        """Ignored: UNIX sockets have no Nagle algorithm (as in Twisted)."""

    def getTcpNoDelay(self) -> bool:
        """Always False (see ``setTcpNoDelay``)."""
        return False

    def __repr__(self) -> str:
        state = "closed" if self._lost else "open"
        return f"<UNIX transport fd={self._fd} {state} for {self.protocol!r}>"


class Port(tcp.Port):
    """A listening UNIX socket on the selector reactor (``listenUNIX`` returns one).

    Attributes:
        path: the socket's path, as bytes.
        factory: builds a protocol for every accepted connection.
    """

    def __init__(self, reactor: SelectorReactor, address: str | bytes, factory: Any,
                 backlog: int = 50, mode: int = 0o666, wantPID: bool = False) -> None:
        super().__init__(reactor, 0, factory, backlog)
        self._family = socket.AF_UNIX
        self._file = SocketFile(address, mode, wantPID)
        self.path = self._file.path

    def startListening(self) -> None:
        """Bind and listen (see ``SocketFile.open``); raises CannotListenError."""
        sock = self._file.open(self.backlog)
        sock.setblocking(False)
        self.socket = sock
        self._fd = sock.fileno()
        self.connected = True
        self.factory.doStart()
        self.reactor._selectables.add(self)
        self.reactor._set_interest(self, self._fd, selectors.EVENT_READ)

    def _serve(self, conn: socket.socket, addr: Any) -> None:
        peer = unix_address(addr)
        try:
            protocol = self.factory.buildProtocol(peer)
        except Exception:
            log.exception("buildProtocol of %r raised; dropping the connection", self.factory)
            protocol = None
        if protocol is None:
            conn.close()
            return
        Connection(self.reactor, conn, protocol, None, True, peer)._start()

    def stopListening(self) -> Deferred[None]:
        """Stop accepting and remove the socket file; existing connections stay."""
        self._file.remove()
        return super().stopListening()

    loseConnection = stopListening

    def getHost(self) -> UNIXAddress:  # type: ignore[override]
        """The socket's address (known whether or not it is listening)."""
        return UNIXAddress(self.path)

    def __repr__(self) -> str:
        state = "" if self.connected else " (not listening)"
        return f"<{type(self.factory).__name__} on UNIX {_display(self.path)}{state}>"


# -- connecting ---------------------------------------------------------------------------


class UNIXConnector:
    """An outgoing UNIX connection attempt, then the connection (Twisted's Connector).

    ``connectUNIX`` returns one; ``ReconnectingClientFactory`` calls
    ``connect()`` again to retry. The attempt starts on the next loop turn,
    so ``clientConnectionFailed`` is never called from inside ``connectUNIX``.

    Attributes:
        address: the path connected to, as given.
        state: "disconnected", "connecting" or "connected".
        transport: the transport once connected.
    """

    def __init__(self, reactor: Any, address: str | bytes, factory: Any,
                 timeout: float | None = 30, checkPID: bool = False) -> None:
        self.reactor = reactor
        self.address = address
        self.factory = factory
        self.timeout = timeout
        self.checkPID = checkPID
        self.state = "disconnected"
        self.transport: Any = None
        self._path = os.fsencode(address)
        self._factory_started = False
        self._sock: socket.socket | None = None  # held across retries
        self._next_try: Any = None
        self._delay = RETRY_FIRST
        self._timeout_call: Any = None

    def connect(self) -> None:
        """Start connecting (again)."""
        if self.state != "disconnected":
            raise RuntimeError(f"can't connect in state {self.state}")
        self.state = "connecting"
        if not self._factory_started:
            self.factory.doStart()
            self._factory_started = True
        self.factory.startedConnecting(self)
        if self.state != "connecting":
            return  # stopConnecting() was called from startedConnecting
        if self.timeout:
            self._timeout_call = self.reactor.callLater(self.timeout, self._timed_out)
        self._delay = RETRY_FIRST
        self._next_try = self.reactor.callLater(0, self._try)

    def _try(self) -> None:
        self._next_try = None
        if self.checkPID and not lock_is_held(self._path + b".lock"):
            self._fail(Failure(BadFileError(_display(self._path))))
            return
        sock, self._sock = self._sock, None
        if sock is None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.setblocking(False)
        try:
            code = sock.connect_ex(self._path)
        except OSError as e:  # e.g. "AF_UNIX path too long": raised, not returned
            sock.close()
            self._fail(Failure(ConnectError(string=e)))
            return
        if code in (0, errno.EISCONN):
            self._connected(sock)
        elif code in _CONNECT_AGAIN:
            self._hold(sock)
            self._next_try = self.reactor.callLater(self._delay, self._try)
            self._delay = min(self._delay * 2, RETRY_MAX)
        else:
            sock.close()
            self._fail(Failure(getConnectError(OSError(code, os.strerror(code)))))

    def _hold(self, sock: socket.socket) -> None:
        """Keep ``sock`` until the next try, closing it if the reactor shuts down first."""
        self._sock = sock
        _live_set(self.reactor).add(self)

    def _drop_socket(self) -> None:
        """Forget the attempt: close a held socket, cancel the retry and the timeout."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._next_try is not None and self._next_try.active():
            self._next_try.cancel()
        self._next_try = None
        if self._timeout_call is not None and self._timeout_call.active():
            self._timeout_call.cancel()
        self._timeout_call = None
        _live_set(self.reactor).discard(self)

    def _reactor_shutdown(self) -> None:
        """The reactor is shutting down: give up (it closes what it tracks at shutdown)."""
        if self.state == "connecting":
            self._fail(Failure(ConnectError(string="the reactor shut down")))

    def _timed_out(self) -> None:
        self._timeout_call = None
        self._fail(Failure(TimeoutError()))

    def stopConnecting(self) -> None:
        """Give up connecting; the factory hears ``clientConnectionFailed`` (UserError)."""
        if self.state != "connecting":
            raise NotConnectingError("we're not trying to connect")
        self._fail(Failure(UserError()))

    def disconnect(self) -> None:
        """Stop connecting, or close the connection."""
        if self.state == "connecting":
            self.stopConnecting()
        elif self.state == "connected" and self.transport is not None:
            self.transport.loseConnection()

    def _connected(self, sock: socket.socket) -> None:
        self._drop_socket()
        destination = self.getDestination()
        try:
            protocol = self.factory.buildProtocol(destination)
        except Exception:
            sock.close()
            self._fail(Failure())
            return
        if protocol is None:
            sock.close()
            self._fail(Failure(ConnectError(string="buildProtocol returned None")))
            return
        self.state = "connected"
        # Known before the protocol starts (on the selector reactor that is
        # inside _start): connectionMade may call connector.disconnect().
        self.transport = _transport_for(self.reactor, sock, protocol, self._lost, destination)
        self.transport._start()

    def _fail(self, failure: Failure) -> None:
        self._drop_socket()
        self.state = "disconnected"
        self.transport = None
        try:
            self.factory.clientConnectionFailed(self, failure)
        except Exception:
            log.exception("clientConnectionFailed of %r raised", self.factory)
        self._maybe_stop_factory()

    def _lost(self, reason: Failure) -> None:
        self.state = "disconnected"
        self.transport = None
        try:
            self.factory.clientConnectionLost(self, reason)
        except Exception:
            log.exception("clientConnectionLost of %r raised", self.factory)
        self._maybe_stop_factory()

    def _maybe_stop_factory(self) -> None:
        # The factory may have called connect() again (a retry).
        if self.state == "disconnected" and self._factory_started:
            self._factory_started = False
            self.factory.doStop()

    def getDestination(self) -> UNIXAddress:
        """Where this connector connects to."""
        return UNIXAddress(self._path)

    def __repr__(self) -> str:
        return f"<UNIXConnector to {_display(self._path)} {self.state}>"


# -- the reactor API, for every backend -----------------------------------------------------


def _live_set(reactor: Any) -> set[Any]:
    """What the reactor closes at shutdown (calling ``_reactor_shutdown`` on each)."""
    if isinstance(reactor, SelectorReactor):
        return reactor._selectables
    live: set[Any] = reactor._live
    return live


def _classes(reactor: Any) -> tuple[Any, Any]:
    """The (Connection, Port) classes for the reactor's backend."""
    if isinstance(reactor, SelectorReactor):
        return Connection, Port
    from reactor.aio import AsyncioReactor

    if isinstance(reactor, AsyncioReactor):
        from reactor import _aio_unix

        return _aio_unix.Connection, _aio_unix.Port
    raise TypeError(f"{reactor!r} has no UNIX socket support")


def _transport_for(reactor: Any, sock: socket.socket, protocol: Any, on_lost: Any,
                   destination: UNIXAddress) -> Any:
    """The client transport for a connected socket; its ``_start()`` starts the protocol."""
    connection_class = _classes(reactor)[0]
    if connection_class is Connection:
        return Connection(reactor, sock, protocol, on_lost, False, destination)
    return connection_class(reactor, protocol, on_lost, destination=destination, sock=sock)


def listen_unix(reactor: Any, address: str | bytes, factory: Any, backlog: int = 50,
                mode: int = 0o666, wantPID: bool = False) -> Port | _aio_unix.Port:
    """``reactor.listenUNIX``: listen on the UNIX socket ``address``, now.

    Args:
        reactor: a SelectorReactor or an AsyncioReactor.
        address: the socket's path (a leading NUL: a Linux abstract name).
        factory: builds a protocol for every accepted connection.
        backlog: the listen() queue length.
        mode: permission bits for the socket file.
        wantPID: keep a pid lock file next to the socket (see the module docstring).

    Raises:
        CannotListenError: the path is in use, the lock is held, or bind/listen failed.
    """
    port: Port | _aio_unix.Port = _classes(reactor)[1](reactor, address, factory, backlog,
                                                       mode, wantPID)
    port.startListening()
    return port


def connect_unix(reactor: Any, address: str | bytes, factory: Any, timeout: float = 30,
                 checkPID: bool = False) -> UNIXConnector:
    """``reactor.connectUNIX``: connect ``factory``'s protocol to the socket ``address``.

    Args:
        reactor: a SelectorReactor or an AsyncioReactor.
        address: the server's path (a leading NUL: a Linux abstract name).
        factory: a ClientFactory: ``startedConnecting`` is called now, then
            ``buildProtocol`` or ``clientConnectionFailed`` (ConnectionRefusedError
            when nobody listens, ConnectError for a missing path, TimeoutError,
            BadFileError), later ``clientConnectionLost``.
        timeout: seconds before giving up (0 or None: never).
        checkPID: fail with BadFileError unless a live process holds the
            server's pid lock (``listenUNIX(..., wantPID=True)``).
    """
    _classes(reactor)  # fail now on a reactor without UNIX sockets
    connector = UNIXConnector(reactor, address, factory, timeout, checkPID)
    connector.connect()
    return connector
