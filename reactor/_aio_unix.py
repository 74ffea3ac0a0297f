"""UNIX stream sockets for the asyncio/uvloop reactor: the TCP classes, UNIX addresses.

``Connection`` and ``Port`` subclass ``reactor._aio_tcp``'s, so the loop's
native transports carry the bytes (uvloop's ``UnixTransport`` in C) and
everything but addresses and socket setup behaves as on TCP. The socket is
always ours: ``Port`` binds it synchronously (``reactor.unix.SocketFile``:
lock, stale file, mode) and hands it to ``loop.create_unix_server(sock=...)``;
``reactor.unix.UNIXConnector`` connects it and hands it to
``loop.create_unix_connection(sock=...)``. See ``reactor/unix.py`` for the
semantics.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Any

from deferred import Deferred, Failure
from reactor import _aio_tcp
from reactor.address import UNIXAddress
from reactor.aio import drive
from reactor.error import ConnectionDone, ConnectionLost
from reactor.tcp import HIGH_WATER, LOW_WATER
from reactor.unix import SocketFile, _display, peer_credentials, unix_address

if TYPE_CHECKING:
    from collections.abc import Callable

    from reactor.aio import AsyncioReactor

__all__ = ["Connection", "Port"]

log = _aio_tcp.log


class Connection(_aio_tcp.Connection):
    """A UNIX connection on the asyncio reactor (see ``_aio_tcp.Connection``).

    Args:
        destination: on the client side, the address connected to, which
            ``getPeer()`` reports (as in Twisted).
        sock: on the client side, the connected socket, which ``_start()``
            hands to the loop (as ``reactor.unix.Connection._start`` starts
            the selector transport).
    """

    def __init__(self, reactor: AsyncioReactor, protocol: Any = None,
                 on_lost: Callable[[Failure], None] | None = None,
                 factory: Any = None, destination: UNIXAddress | None = None,
                 sock: socket.socket | None = None) -> None:
        super().__init__(reactor, protocol, on_lost, factory)
        self._unix_peer = destination
        self._unix_host: UNIXAddress | None = None
        self._client_sock = sock

    def _start(self) -> None:
        """Hand the connected client socket to the loop (the protocol starts later)."""
        sock, self._client_sock = self._client_sock, None
        assert sock is not None, "only a client connection is started"
        self._open(sock)

    def connection_made(self, transport: Any) -> None:
        """The loop's transport is ready: build/start the user protocol on it.

        ``_aio_tcp.Connection.connection_made`` with UNIX addresses: that one
        computes TCP addresses inline, so its body is repeated here.
        """
        if self._lost:  # shut down while the loop was still setting up
            transport.abort()
            return
        self._transport = transport
        transport.set_write_buffer_limits(HIGH_WATER, LOW_WATER)
        try:
            peer = transport.get_extra_info("peername")
            host = transport.get_extra_info("sockname")
        except OSError:
            peer = host = None
        if peer is None or host is None:
            # Reset before we got to it: the protocol never starts.
            transport.abort()
            self._finish(Failure(ConnectionLost("reset before the connection started")))
            return
        if self._unix_peer is None:
            self._unix_peer = unix_address(peer)
        self._unix_host = unix_address(host)
        if self.protocol is None:
            try:
                protocol = self._factory.buildProtocol(self._unix_peer)
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
        self.reactor._live.add(self)
        self._made = True
        try:
            self.protocol.makeConnection(self)
        except Exception:
            self._user_error("connectionMade")
            return
        self._after_made()

    async def _open_socket(self, sock: socket.socket) -> None:
        # create_connection would make a TCP transport of it (on uvloop, a libuv
        # TCP handle on a UNIX socket); this gives the loop's UNIX transport.
        self._open_started = True  # from here on the loop owns the socket
        await self.reactor._loop.create_unix_connection(lambda: self, sock=sock)

    def getPeer(self) -> UNIXAddress:  # type: ignore[override]
        """The other end's address (``UNIXAddress(None)`` for an unbound client)."""
        assert self._unix_peer is not None, "not connected yet"
        return self._unix_peer

    def getHost(self) -> UNIXAddress:  # type: ignore[override]
        """This end's address (``UNIXAddress(None)`` on a client that did not bind)."""
        assert self._unix_host is not None, "not connected yet"
        return self._unix_host

    def getPeerCredentials(self) -> tuple[int, int, int]:
        """(pid, uid, gid) of the peer process; see ``reactor.unix.peer_credentials``."""
        sock = self.getHandle()
        if sock is None:
            raise OSError("not connected yet")
        return peer_credentials(sock)

    def setTcpNoDelay(self, enabled: bool) -> None:
        """Ignored: UNIX sockets have no Nagle algorithm (as in Twisted)."""

    def getTcpNoDelay(self) -> bool:
        """Always False (see ``setTcpNoDelay``)."""
        return False

    def __repr__(self) -> str:
        state = "closed" if self._lost else "open" if self._made else "opening"
        return f"<UNIX transport {self._unix_peer} {state} for {self.protocol!r}>"


class Port(_aio_tcp.Port):
    """A listening UNIX socket served by the loop (``listenUNIX`` returns one).

    Attributes:
        path: the socket's path, as bytes.
        factory: builds a protocol for every accepted connection.
    """

    def __init__(self, reactor: AsyncioReactor, address: str | bytes, factory: Any,
                 backlog: int = 50, mode: int = 0o666, wantPID: bool = False) -> None:
        super().__init__(reactor, 0, factory, backlog)
        self._family = socket.AF_UNIX
        self._file = SocketFile(address, mode, wantPID)
        self.path = self._file.path

    def startListening(self) -> None:
        """Bind and listen (raising CannotListenError here, synchronously), then serve."""
        sock = self._file.open(self.backlog)
        sock.setblocking(False)
        self.socket = sock
        self._fd = sock.fileno()
        self.connected = True
        self.factory.doStart()
        reactor = self.reactor
        reactor._live.add(self)
        loop = reactor._loop
        try:
            # Like _aio_tcp's reactor._serve, but a UNIX server (its transports
            # are the loop's UNIX ones).
            self._server = drive(loop, loop.create_unix_server(
                self._build, sock=sock, backlog=self.backlog))
        except BaseException:
            self.socket = None
            self.connected = False
            reactor._live.discard(self)
            sock.close()
            self._file.remove()
            self.factory.doStop()
            raise

    def _build(self) -> Connection:
        return Connection(self.reactor, factory=self.factory)

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
