"""TCP for the asyncio/uvloop reactor: the loop's native transports behind one thin class.

``Connection`` is two things at once: the asyncio *protocol* the loop's
transport calls (``connection_made``, ``data_received``, ``eof_received``,
``connection_lost``, ``pause_writing``, ``resume_writing``) and the torsion
*transport* the user's protocol calls (``write``, ``loseConnection``,
``registerProducer``...). The loop's transport keeps doing the I/O, so on
uvloop the bytes move in C, and two instance attributes take Python out of
the hot path:

- ``connection.data_received`` is the user protocol's bound ``dataReceived``,
  so the loop calls user code with no frame of ours in between (uvloop reads
  the attribute once, when the protocol is set; that is why the server side
  calls ``transport.set_protocol(self)`` after building the user protocol).
- ``connection.write`` is the loop transport's bound ``write`` while the
  connection is open. It is deleted (falling back to ``Connection.write``,
  which ignores the data) as soon as ``loseConnection``, ``abortConnection``
  or ``loseWriteConnection`` is called, because the loop transports would
  still send, or raise, after ``close()``/``write_eof()``.

The semantics are those of ``reactor/tcp.py`` (read its docstring); the
places where the loop does the work differently:

- An exception in ``dataReceived`` is caught by the loop, which closes the
  transport and reports the exception to the loop's exception handler (the
  reactor routes those to the "reactor" logger) and to ``connection_lost``;
  ``connectionLost`` gets ``Failure(exception)``, as on the selector reactor.
- Flow control uses the loop's own write-buffer limits (64 KiB high, 16 KiB
  low). A pull producer wants to hear about every drain, so while one is
  registered the limits are 0/0: every write that leaves bytes buffered
  pauses, and the drain resumes.
- A clean close after a half-close (``loseWriteConnection``) is noticed the
  same way: ``writeConnectionLost`` is called once the buffer has drained.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from deferred import Deferred, Failure, succeed
from reactor._aio_sendfile import FileSending
from reactor._sockets import TCPOptions, bind_tcp_listener
from reactor.address import IPv4Address, IPv6Address
from reactor.error import ConnectionAborted, ConnectionDone, ConnectionLost
from reactor.tcp import HIGH_WATER, LOW_WATER, address_of

if TYPE_CHECKING:
    from reactor.aio import AsyncioReactor

__all__ = ["Connection", "Port"]

log = logging.getLogger("reactor")

#: At most one "accept() failed" log line per port in this many seconds.
_ACCEPT_LOG_INTERVAL = 1.0

#: Modules whose frames in a traceback mean "the loop raised this", not user code.
_LOOP_MODULES = ("asyncio.", "uvloop")


def _raised_in_user_code(exc: BaseException) -> bool:
    """Was ``exc`` raised by code other than the loop's (a protocol callback)?

    The loop hands socket errors and errors from ``data_received`` to
    ``connection_lost`` alike. Socket errors are raised by C functions and
    caught in the loop's own frame (or never raised at all, on uvloop), so
    their traceback holds loop frames only.
    """
    tb = exc.__traceback__
    while tb is not None:
        if not tb.tb_frame.f_globals.get("__name__", "").startswith(_LOOP_MODULES):
            return True
        tb = tb.tb_next
    return False


def _lost_reason(exc: OSError) -> ConnectionLost:
    if exc.errno:
        return ConnectionLost(f"{exc.errno}: {exc.strerror}")
    return ConnectionLost(str(exc) or type(exc).__name__)


class Connection(FileSending, asyncio.Protocol, TCPOptions):
    """A TCP connection: torsion's transport, and the asyncio protocol behind it.

    Created by the reactor for accepted connections (``factory`` given: the
    user protocol is built once the peer address is known) and for
    connected client sockets (``protocol`` given).

    Attributes:
        reactor: the reactor this connection belongs to.
        protocol: the user's protocol (None until built, on the server side).
        connected / disconnecting / disconnected: Twisted's state flags.
        producer: the registered producer, or None.
    """

    # The state every connection starts in, as class attributes (Twisted's way): an
    # instance stores only what it changes. That is most of an idle connection's
    # memory: CPython shares one key table among a class's instances only while they
    # hold at most 30 attributes, and set here these were 37, which made every
    # connection's __dict__ a private table of ~1.6 KB (the scale suite measures it).
    # All are immutable values, so sharing the defaults is safe.
    connected = False
    disconnecting = False
    disconnected = False
    producer: Any = None
    _transport: Any = None
    _peer: IPv4Address | IPv6Address | None = None
    _host: IPv4Address | IPv6Address | None = None
    _made = False  # makeConnection was called: connectionLost is owed
    _lost = False  # connectionLost was called (or is not owed)
    _transport_closed = False  # the loop called connection_lost
    _reason: Failure | None = None  # why we closed it, when we know better
    _logged: BaseException | None = None  # a user error already logged
    _write_closing = False
    _eof_sent = False
    _eof_pending = False  # FIN queued behind data: tell the protocol on drain
    _read_closed = False
    _reading_paused = False
    _held: bytes | None = None  # read while paused during connectionMade
    _writing_paused = False  # the loop's buffer is above its high-water mark
    _streaming = False
    _producer_paused = False
    _pull_scheduled = False
    _half_closeable = False
    _open_task: asyncio.Task[Any] | None = None
    _open_started = False

    def __init__(self, reactor: AsyncioReactor, protocol: Any = None,
                 on_lost: Callable[[Failure], None] | None = None,
                 factory: Any = None) -> None:
        self.reactor = reactor
        self.protocol = protocol
        self.server = factory is not None
        self._factory = factory
        self._on_lost = on_lost
        self._early: list[bytes] = []  # written before the loop made the connection
        self._init_file_sending()
        if protocol is not None:
            self._set_user_protocol(protocol)

    def _set_user_protocol(self, protocol: Any) -> None:
        self.protocol = protocol
        self._half_closeable = callable(getattr(protocol, "readConnectionLost", None))
        # The loop calls this attribute for every read: make it the user's
        # method itself (see the module docstring).
        self.data_received = protocol.dataReceived  # type: ignore[method-assign]

    def _swap_protocol(self, protocol: Any) -> None:
        """Deliver what is read to ``protocol`` from now on (e.g. a TLS layer)."""
        self._set_user_protocol(protocol)
        if self._transport is not None:
            self._transport.set_protocol(self)  # uvloop re-reads data_received here

    def startTLS(self, contextFactory: Any, server_side: bool | None = None,
                 server_hostname: str | None = None) -> Any:
        """Switch this connection to TLS from here on (STARTTLS); see ``reactor.tls.start_tls``."""
        from reactor.tls import start_tls

        return start_tls(self, contextFactory,
                         self.server if server_side is None else server_side, server_hostname)

    # -- the asyncio protocol side ---------------------------------------------

    def connection_made(self, transport: Any) -> None:
        """The loop's transport is ready: build/start the user protocol on it."""
        if self._lost:  # shut down while the loop was still setting up
            transport.abort()
            return
        self._transport = transport
        reactor = self.reactor
        transport.set_write_buffer_limits(HIGH_WATER, LOW_WATER)
        peer = transport.get_extra_info("peername")
        host = transport.get_extra_info("sockname")
        if peer is None or host is None:
            # Reset before we got to it: the protocol never starts.
            transport.abort()
            self._finish(Failure(ConnectionLost("reset before the connection started")))
            return
        self._peer = address_of(peer, socket.AF_INET6 if len(peer) == 4 else socket.AF_INET)
        self._host = address_of(host, socket.AF_INET6 if len(host) == 4 else socket.AF_INET)
        if self.protocol is None:
            try:
                protocol = self._factory.buildProtocol(self._peer)
            except Exception:
                log.exception("buildProtocol of %r raised; dropping the connection",
                              self._factory)
                protocol = None
            if protocol is None:
                transport.abort()
                self._finish(Failure(ConnectionDone()))
                return
            self._set_user_protocol(protocol)
            transport.set_protocol(self)  # uvloop re-reads data_received here
        if not self._write_closed():
            self.write = transport.write  # type: ignore[method-assign]
        self.connected = True
        reactor._live.add(self)
        self._made = True
        try:
            self.protocol.makeConnection(self)
        except Exception:
            self._user_error("connectionMade")
            return
        self._after_made()

    def _after_made(self) -> None:
        """Carry out what was asked before the loop had made the connection."""
        transport = self._transport
        for data in self._early:
            transport.write(data)
        self._early.clear()
        if self._lost or self._reason is not None:
            transport.abort()
            return
        if self._reading_paused:
            # uvloop starts reading when connection_made returns, whatever was
            # paused inside it: hold what arrives first and pause again.
            self.data_received = self._hold  # type: ignore[method-assign]
            transport.set_protocol(self)
            transport.pause_reading()
            self.reactor._loop.call_soon(self._pause_again)
        if self.producer is not None and not self._streaming:
            self._start_pulling()
        if self.producer is None:
            if self.disconnecting:
                transport.close()
            elif self._write_closing:
                self._send_eof()

    def _hold(self, data: bytes) -> None:
        self._held = data
        self._transport.pause_reading()

    def _pause_again(self) -> None:
        if self._reading_paused and not self._lost:
            self._transport.pause_reading()

    def data_received(self, data: bytes) -> None:
        """The loop's read callback; each instance shadows it with ``dataReceived``."""
        self.protocol.dataReceived(data)

    def eof_received(self) -> bool:
        """The peer sent FIN: half-close for an IHalfCloseableProtocol, else close."""
        if self._half_closeable and not self.disconnecting:
            self._read_closed = True
            try:
                self.protocol.readConnectionLost()
            except Exception:
                self._user_error("readConnectionLost")
            return True
        # The loop closes the transport now; like the selector reactor, take
        # no more writes (the loop would still send them).
        self.disconnecting = True
        self._unbind_write()
        return False

    def connection_lost(self, exc: BaseException | None) -> None:
        """The loop closed the transport; tell the protocol why, exactly once."""
        self._transport_closed = True
        if self._lost:
            return
        reason = self._reason
        if reason is None:
            if exc is None:
                reason = Failure(ConnectionDone())
            elif isinstance(exc, OSError) and not _raised_in_user_code(exc):
                reason = Failure(_lost_reason(exc))
            else:
                if exc is not self._logged:
                    self._log_user_error(exc, "protocol code")
                reason = Failure(exc)
        self._finish(reason)

    def pause_writing(self) -> None:
        """The loop's write buffer passed the high-water mark: pause a push producer."""
        self._writing_paused = True
        producer = self.producer
        if producer is not None and self._streaming and not self._producer_paused:
            self._producer_paused = True
            try:
                producer.pauseProducing()
            except Exception:
                self._user_error("pauseProducing")

    def resume_writing(self) -> None:
        """The buffer drained below the low-water mark: resume or ask the producer."""
        self._writing_paused = False
        if self._drain_waiter is not None:
            self._wake_read_loop()
        if self._eof_pending:
            self._eof_pending = False
            self.reactor._loop.call_soon(self._write_closed_now)
        producer = self.producer
        if producer is None:
            return
        if not self._streaming:
            self._pull()
        elif self._producer_paused and self._held_bytes <= HIGH_WATER:
            # (Above the mark, writes held behind a file keep it paused: the
            # file's end resumes it, see _release_held.)
            self._producer_paused = False
            try:
                producer.resumeProducing()
            except Exception:
                self._user_error("resumeProducing")

    def _loop_error(self, context: dict[str, Any]) -> None:
        """The loop's exception handler, for errors about this connection."""
        exc = context.get("exception")
        if exc is None:
            log.error("%s (connection %r)", context.get("message"), self)
            return
        self._logged = exc
        self._log_user_error(exc, context.get("message", "protocol code"))

    def _log_user_error(self, exc: BaseException, where: str) -> None:
        log.error("Unhandled error in %r (%s); closing the connection", self.protocol, where,
                  exc_info=(type(exc), exc, exc.__traceback__))

    # -- writing -----------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Send ``data`` (bytes); ignored once the connection is closing.

        While the connection is open each instance shadows this method with
        the loop transport's own ``write`` (no Python frame per write); this
        one runs only before the loop has made the connection or after a
        close was asked for.
        """
        if self._write_closed():
            return
        if isinstance(data, str):
            raise TypeError("Data must be bytes, not str")
        if self._transport is None:
            self._early.append(bytes(data))
        else:
            self._transport.write(data)

    def writeSequence(self, data: Iterable[bytes]) -> None:
        """Send several byte strings, joined into one write."""
        if self._write_closed():
            return
        self.write(b"".join(data))

    def _write_closed(self) -> bool:
        return self.disconnecting or self._write_closing or self._lost

    def _unbind_write(self) -> None:
        self.__dict__.pop("write", None)

    # -- producers ---------------------------------------------------------------

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        """Take data from ``producer``: push (streaming) or pull (``resumeProducing`` asked)."""
        if self.producer is not None:
            raise RuntimeError(
                f"Cannot register producer {producer!r}, because producer "
                f"{self.producer!r} was never unregistered.")
        if self._lost:
            producer.stopProducing()
            return
        self.producer = producer
        self._streaming = bool(streaming)
        self._producer_paused = False
        if self._transport is None:
            return  # connection_made starts it
        if not streaming:
            self._start_pulling()
        elif self._writing_paused:
            self._producer_paused = True
            producer.pauseProducing()

    def unregisterProducer(self) -> None:
        """Stop consuming from the producer; a pending ``loseConnection`` can now finish."""
        producer, self.producer = self.producer, None
        transport = self._transport
        if transport is None or self._lost:
            return
        if (producer is not None and not self._streaming and not self._eof_pending
                and not self._file_limits):  # a file's read loop restores them when done
            transport.set_write_buffer_limits(HIGH_WATER, LOW_WATER)
        if self._file_task is not None:
            return  # the sendfile's end closes, if asked
        if self.disconnecting:
            transport.close()
        elif self._write_closing:
            self._send_eof()

    def _start_pulling(self) -> None:
        # Limits of 0/0 make the loop report every drain (see the module docstring).
        self._transport.set_write_buffer_limits(0, 0)
        if not self._writing_paused:
            self._schedule_pull()

    def _schedule_pull(self) -> None:
        if not self._pull_scheduled:
            self._pull_scheduled = True
            self.reactor._loop.call_soon(self._pull)

    def _pull(self) -> None:
        """Ask a pull producer for more, when everything written so far has gone out."""
        self._pull_scheduled = False
        producer = self.producer
        if (producer is None or self._streaming or self._lost or self._writing_paused
                or self._file_task is not None):
            return
        try:
            producer.resumeProducing()
        except Exception:
            self._user_error("resumeProducing")
            return
        # Sent at once (or nothing written): ask again next turn, as the
        # selector reactor does; otherwise resume_writing will ask.
        if self.producer is producer and not self._lost and not self._writing_paused:
            self._schedule_pull()

    def pauseProducing(self) -> None:
        """Stop reading from the socket (the peer is sending faster than we consume)."""
        self._reading_paused = True
        if self._transport is not None and not self._lost:
            self._transport.pause_reading()

    def resumeProducing(self) -> None:
        """Start reading again after ``pauseProducing``."""
        self._reading_paused = False
        transport = self._transport
        if transport is None or self._lost or self._read_closed or self.disconnecting:
            return
        if self.__dict__.get("data_received") == self._hold:
            self.data_received = self.protocol.dataReceived  # type: ignore[method-assign]
            transport.set_protocol(self)
            if self._held is not None:
                self.reactor._loop.call_soon(self._deliver_held)
                return
        transport.resume_reading()

    def _deliver_held(self) -> None:
        held, self._held = self._held, None
        if self._lost or held is None:
            return
        try:
            self.protocol.dataReceived(held)
        except Exception:
            self._user_error("dataReceived")
            return
        if not self._reading_paused and not self._lost:
            self._transport.resume_reading()

    def stopProducing(self) -> None:
        """Close the connection (the consumer of our data is gone)."""
        self.loseConnection()

    # -- closing -----------------------------------------------------------------

    def loseConnection(self) -> None:
        """Close once everything written is sent (and a producer has unregistered)."""
        if self.disconnecting or self._lost:
            return
        self.disconnecting = True
        self._unbind_write()
        if self._transport is not None and self.producer is None and self._file_task is None:
            self._transport.close()

    def abortConnection(self) -> None:
        """Close at once, dropping anything not yet sent."""
        if self._lost:
            return
        if self._reason is None:
            self._reason = Failure(ConnectionAborted())
        self.disconnecting = True
        self._unbind_write()
        if self._transport is not None:
            self._cancel_file()
            self._transport.abort()

    def loseWriteConnection(self) -> None:
        """Half-close: send FIN after everything written is sent; keep reading."""
        if self._write_closing or self._lost:
            return
        self._write_closing = True
        self._unbind_write()
        if self._transport is not None and self.producer is None and self._file_task is None:
            self._send_eof()

    def _send_eof(self) -> None:
        transport = self._transport
        if self._eof_sent or transport.is_closing():
            return
        self._eof_sent = True
        transport.write_eof()
        if transport.get_write_buffer_size():
            self._eof_pending = True
            transport.set_write_buffer_limits(0, 0)
        else:
            self.reactor._loop.call_soon(self._write_closed_now)

    def _write_closed_now(self) -> None:
        if self._lost:
            return
        writeConnectionLost = getattr(self.protocol, "writeConnectionLost", None)
        if writeConnectionLost is not None:
            try:
                writeConnectionLost()
            except Exception:
                self._user_error("writeConnectionLost")

    def _user_error(self, where: str) -> None:
        """Protocol code raised: log it with its traceback, close this connection only."""
        failure = Failure()
        log.error("Unhandled error in %s of %r; closing the connection", where,
                  self.protocol, exc_info=(failure.type, failure.value, failure.tb))
        if self._lost:
            return
        self._reason = failure
        self.disconnecting = True
        self._unbind_write()
        if self._transport is not None:
            self._cancel_file()
            self._transport.abort()

    def _reactor_shutdown(self) -> None:
        """The reactor is shutting down: close now, and tell the protocol now."""
        if self._lost:
            return
        reason = Failure(ConnectionLost("The reactor shut down."))
        self._reason = reason
        if self._transport is not None:
            self._cancel_file()
            self._transport.abort()
        elif self._open_task is not None:
            self._open_task.cancel()
        self._finish(reason)

    def _finish(self, reason: Failure) -> None:
        """Mark the connection lost and tell the protocol and the connector, once."""
        self._lost = True
        if self._drain_waiter is not None:
            self._wake_read_loop()
        self.connected = False
        self.disconnected = True
        self.disconnecting = True
        self._unbind_write()
        self._early.clear()
        self.reactor._live.discard(self)
        producer, self.producer = self.producer, None
        if producer is not None:
            try:
                producer.stopProducing()
            except Exception:
                log.exception("Error in stopProducing of %r", producer)
        if self._made:
            try:
                self.protocol.connectionLost(reason)
            except Exception:
                log.exception("Unhandled error in connectionLost of %r", self.protocol)
        self._call_on_lost(reason)

    def _call_on_lost(self, reason: Failure) -> None:
        if self._on_lost is not None:
            on_lost, self._on_lost = self._on_lost, None
            on_lost(reason)

    # -- client connections: handing a connected socket to the loop ----------------

    def _open(self, sock: socket.socket) -> None:
        """Give a connected socket to the loop, with this object as its protocol."""
        self.reactor._live.add(self)
        task = self._open_task = self.reactor._loop.create_task(self._open_socket(sock))
        task.add_done_callback(lambda task: self._opened(task, sock))

    async def _open_socket(self, sock: socket.socket) -> None:
        self._open_started = True  # from here on the loop owns the socket
        await self.reactor._loop.create_connection(lambda: self, sock=sock)

    def _opened(self, task: asyncio.Task[Any], sock: socket.socket) -> None:
        self._open_task = None
        if not self._open_started:
            sock.close()  # cancelled before the loop ever saw the socket
        elif self._transport_closed:
            # uvloop attaches the socket object to its transport only when
            # create_connection returns; if the transport was closed before
            # that, libuv has closed the descriptor and nothing will detach
            # the object, whose finalizer would close the number again
            # (maybe someone else's by then).
            sock.detach()
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None and not self._lost and not self._made:
            self._lost = True
            self.reactor._live.discard(self)
            reason = _lost_reason(exc) if isinstance(exc, OSError) else ConnectionLost(str(exc))
            self._call_on_lost(Failure(reason))

    # -- addresses and options ----------------------------------------------------

    def getPeer(self) -> IPv4Address | IPv6Address:
        """The remote address (still known after the connection closed)."""
        assert self._peer is not None, "not connected yet"
        return self._peer

    def getHost(self) -> IPv4Address | IPv6Address:
        """The local address (still known after the connection closed)."""
        assert self._host is not None, "not connected yet"
        return self._host

    def getHandle(self) -> Any:
        """The socket (the loop's socket-like wrapper of it)."""
        return None if self._transport is None else self._transport.get_extra_info("socket")

    def logPrefix(self) -> str:
        """The protocol's class name, for log messages."""
        return type(self.protocol).__name__

    def __repr__(self) -> str:
        state = "closed" if self._lost else "open" if self._made else "opening"
        return f"<TCP transport {self._peer} {state} for {self.protocol!r}>"


class Port:
    """A listening TCP socket served by the loop (``listenTCP`` returns one).

    Attributes:
        factory: builds a protocol for every accepted connection.
    """

    def __init__(self, reactor: AsyncioReactor, port: int, factory: Any, backlog: int = 50,
                 interface: str = "") -> None:
        self.reactor = reactor
        self.port = port
        self.factory = factory
        self.backlog = backlog
        self.interface = interface
        self.connected = False
        self.socket: socket.socket | None = None
        self._fd = -1
        self._family = socket.AF_INET6 if ":" in interface else socket.AF_INET
        self._host: IPv4Address | IPv6Address | None = None
        self._server: Any = None
        self._accept_error_logged = -_ACCEPT_LOG_INTERVAL

    def startListening(self) -> None:
        """Bind and listen (raising CannotListenError here, synchronously), then serve."""
        # IPPROTO_TCP, not 0: asyncio turns Nagle off only on sockets that say TCP,
        # and accepted sockets inherit this.
        sock = bind_tcp_listener(self._family, self.interface, self.port, self.backlog,
                                 socket.IPPROTO_TCP)
        self.socket = sock
        self._fd = sock.fileno()
        self._host = address_of(sock.getsockname(), self._family)
        self.connected = True
        self.factory.doStart()
        self.reactor._live.add(self)
        try:
            self._server = self.reactor._serve(self._build, sock, self.backlog)
        except BaseException:
            self.socket = None
            self.connected = False
            self.reactor._live.discard(self)
            sock.close()
            self.factory.doStop()
            raise

    def _build(self) -> Connection:
        return Connection(self.reactor, factory=self.factory)

    def _accept_failed(self, exc: BaseException | None) -> None:
        """accept() ran out of descriptors (asyncio reports it; uvloop copes silently).

        asyncio stops accepting and retries a second later, by itself; but it
        reports the error once per remaining accept of the batch (up to the
        backlog), so only the first report of each second is logged.
        """
        now = self.reactor._loop.time()
        if now - self._accept_error_logged >= _ACCEPT_LOG_INTERVAL:
            self._accept_error_logged = now
            log.error("accept() on %r failed (%s); the loop retries in a moment", self, exc)

    def stopListening(self) -> Deferred[None]:
        """Stop accepting; existing connections stay. Fires once the socket is closed."""
        if self.socket is None:
            return succeed(None)
        self.reactor._live.discard(self)
        sock, self.socket = self.socket, None
        self.connected = False
        # Clients whose handshake the kernel already completed wait in the
        # backlog, and closing the listening socket would reset them (losing
        # requests they already sent): a duplicate descriptor keeps the
        # socket open while the loop lets go of it, to accept them here.
        try:
            spare: socket.socket | None = sock.dup()
        except OSError:
            spare = None
        server, self._server = self._server, None
        self.reactor._unserve(server)
        if spare is not None:
            self._accept_backlog(spare)
        try:
            self.factory.doStop()
        except Exception:
            log.exception("doStop of %r raised", self.factory)
        return succeed(None)

    loseConnection = stopListening

    def _accept_backlog(self, spare: socket.socket) -> None:
        try:
            spare.setblocking(False)
            for _ in range(self.backlog + 64):
                try:
                    conn, _addr = spare.accept()
                except (BlockingIOError, InterruptedError):
                    break
                except OSError as e:
                    if e.errno in (errno.ECONNABORTED, errno.EPROTO):
                        continue
                    break
                conn.setblocking(False)
                self.reactor._adopt_accepted(self._build, conn)
        finally:
            spare.close()

    def _reactor_shutdown(self) -> None:
        self.stopListening()

    def getHost(self) -> IPv4Address | IPv6Address:
        """The bound address (the real port when listening on port 0)."""
        if self.socket is None or self._host is None:
            raise RuntimeError("the port is not listening")
        return self._host

    def __repr__(self) -> str:
        port = self._host.port if self._host is not None else self.port
        return f"<{type(self.factory).__name__} on TCP {self.interface or '*'}:{port}>"
