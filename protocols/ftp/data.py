"""FTP data connections: passive listener, active connector, data protocol, upload flow control.

A :class:`PassiveListener` listens on port 0 of the control connection's
local address and accepts exactly one connection, and only from the
control connection's peer address (so nobody else can steal or inject a
transfer). The accepted :class:`DataProtocol` starts paused: an upload's
bytes wait in the kernel until the server has opened the file and attached
an :class:`UploadSink`, which writes in order through the filesystem and
pauses the connection while its backlog is above a bound.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from deferred import Deferred, Failure
from protocols.base import ClientFactory, Factory, Protocol, connectionDone
from reactor.error import ConnectionDone, ConnectionTruncated

from ._ports import listenInRange
from .commands import CommandError
from .filesystem import IUpload

__all__ = ["ActiveConnector", "DataChannel", "DataProtocol", "PassiveListener", "UploadSink"]

log = logging.getLogger("protocols.ftp")


class UploadSink:
    """Writes received bytes through an :class:`IUpload` in order, with backpressure.

    Args:
        upload: Where the bytes go.
        transport: The data connection, paused while too much waits.
        high_water: Bytes waiting to be written above which reading pauses.
        batch: Bytes collected before a write starts (all of them when the
            data ends, see :meth:`drain`): each write is a hop to the thread
            pool and back, which small batches would pay for every read.
    """

    def __init__(self, upload: IUpload, transport: Any, high_water: int = 2 << 20,
                 batch: int = 512 << 10) -> None:
        self.upload = upload
        self.transport = transport
        self.high_water = high_water
        self.batch = batch
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._writing = False
        self._paused = False
        self._failure: Failure | None = None
        self._stopped = False
        self._waiters: list[Deferred[None]] = []

    def write(self, data: bytes) -> None:
        """Queue ``data``; pause the connection when the queue grows past the bound."""
        if self._failure is not None or self._stopped:
            return
        self._pending.append(data)
        self._pending_size += len(data)
        if self._pending_size > self.high_water and not self._paused:
            self._paused = True
            self.transport.pauseProducing()
        if not self._writing and self._pending_size >= self.batch:
            self._write_next()

    def _write_next(self) -> None:
        ending = bool(self._waiters)  # drain() asked: write what is left, however little
        if (self._pending_size < self.batch and not ending and self._failure is None
                and not self._stopped and not self._paused):
            self._writing = False  # wait for a fuller batch
            return
        if not self._pending or self._failure is not None or self._stopped:
            self._writing = False
            if self._paused and self._failure is None and not self._stopped:
                self._paused = False
                self.transport.resumeProducing()
            waiters, self._waiters = self._waiters, []
            for d in waiters:
                if self._failure is not None:
                    d.errback(self._failure)
                else:
                    d.callback(None)
            return
        # One thread call per batch, not per received chunk; written with
        # writev where the upload can (no copy into one joined string).
        chunks, self._pending = self._pending, []
        self._pending_size = 0
        self._writing = True
        if self._paused:
            self._paused = False
            self.transport.resumeProducing()
        write_sequence = getattr(self.upload, "writeSequence", None)
        written = (write_sequence(chunks) if write_sequence is not None
                   else self.upload.write(b"".join(chunks)))
        written.addCallbacks(lambda _: self._write_next(), self._write_failed)

    def _write_failed(self, failure: Failure) -> None:
        self._failure = failure
        self._write_next()

    def drain(self) -> Deferred[None]:
        """A Deferred firing once every queued byte is written (failing if a write failed)."""
        d: Deferred[None] = Deferred()
        if self._writing:
            self._waiters.append(d)
        elif self._failure is not None:
            d.errback(self._failure)
        elif self._pending and not self._stopped:
            self._waiters.append(d)  # the last, short batch
            self._write_next()
        else:
            d.callback(None)
        return d

    def stop(self) -> Deferred[None]:
        """Drop what waits and what comes; fires (never fails) once no write is running.

        Then the upload can be closed and discarded safely.
        """
        self._stopped = True
        self._pending.clear()
        self._pending_size = 0
        return self.drain().addErrback(lambda _: None)


class DataProtocol(Protocol):
    """One data connection. Reading starts paused; see :meth:`attach`.

    Args:
        made: Called once the connection is ready: from ``connectionMade``,
            or with ``tls`` once the TLS handshake is done (or has failed:
            :attr:`closed` has then failed with a 522 ``CommandError``).
        tls: A server ``ssl.SSLContext`` under PROT P: the client starts a
            TLS handshake on the new connection (RFC 4217 7, whichever side
            opened it), and no byte is sent or delivered before it is done.

    Attributes:
        closed: Fires with None when the connection closes cleanly, or
            errbacks with the reason when it is lost otherwise.
        failure: Why a PROT P connection never became ready (its TLS
            handshake failed), else None.
    """

    transport: Any

    def __init__(self, made: Callable[[], None] | None = None, tls: Any = None) -> None:
        self.made = made
        self.tls = tls
        self.secured = False
        self.failure: Failure | None = None
        self.closed: Deferred[None] = Deferred()
        self.sink: UploadSink | None = None
        self.lost = False

    def connectionMade(self) -> None:
        """Hold incoming bytes in the kernel until a sink is attached (TLS: start it)."""
        if self.tls is not None:
            # Not paused: the handshake must be read. Ready in handshakeCompleted.
            self.transport = self.transport.startTLS(self.tls, server_side=True)
            return
        self.transport.pauseProducing()
        if self.made is not None:
            self.made()

    def handshakeCompleted(self) -> None:
        """PROT P: TLS is up; hold incoming bytes until a sink is attached, as without."""
        self.secured = True
        self.transport.pauseProducing()
        if self.made is not None:
            self.made()

    def attach(self, sink: UploadSink) -> None:
        """Deliver received bytes to ``sink`` from now on."""
        self.sink = sink
        if not self.lost:
            self.transport.resumeProducing()

    def dataReceived(self, data: bytes) -> None:
        """Pass upload bytes to the sink (downloads ignore what the client sends)."""
        if self.sink is not None:
            self.sink.write(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """Fire :attr:`closed`."""
        self.lost = True
        if self.tls is not None and not self.secured:
            # The handshake failed: the transfer fails with 522 (RFC 4217) now,
            # not at the data timeout; the listener hands over this failure.
            log.info("TLS on an FTP data connection failed: %s", reason.getErrorMessage())
            self.failure = Failure(CommandError(
                522, "TLS negotiation on the data connection failed."))
            self.closed.errback(self.failure)
            self.closed.addErrback(lambda _: None)  # reported through the listener
            if self.made is not None:
                self.made()
            return
        if reason.check(ConnectionDone) or (self.secured and _tlsEnded(self.transport, reason)):
            self.closed.callback(None)
        else:
            self.closed.errback(reason)


def _tlsEnded(transport: Any, reason: Failure) -> bool:
    # Whether a PROT P connection lost with ``reason`` ended where the peer
    # meant it to. Yes once its close_notify arrived, whatever TCP said next
    # (lftp closes right after sending it, so answering it meets EPIPE).
    if getattr(transport, "closeNotifyReceived", False):
        return True
    # Yes too for a TCP close without close_notify, which some clients send
    # at the end of an upload: taken as the end, like vsftpd's default
    # (strict_ssl_read_eof=NO).
    return bool(reason.check(ConnectionTruncated))


def _deliver(d: Deferred[DataProtocol], protocol: DataProtocol) -> None:
    # The connection, or why it never became one (a failed PROT P handshake).
    if protocol.failure is not None:
        d.errback(protocol.failure)
    else:
        d.callback(protocol)


class _DataFactory(Factory[DataProtocol]):
    def __init__(self, listener: PassiveListener) -> None:
        self.listener = listener

    def buildProtocol(self, addr: Any) -> DataProtocol | None:
        return self.listener._accept(addr)


class PassiveListener:
    """Waits for the one data connection of a PASV or EPSV.

    Args:
        reactor: The reactor to listen with.
        interface: The local address to listen on.
        peer_host: The only address a connection is accepted from.
        ports: The ports to choose from (a free one, see
            :func:`~protocols.ftp._ports.listenInRange`); None: any free port.

    Raises:
        NoFreePort: every port of ``ports`` is in use.

    Attributes:
        tls: The server ``ssl.SSLContext`` the connection uses (PROT P), or
            None for a clear one; set before the client connects.
    """

    def __init__(self, reactor: Any, interface: str, peer_host: str,
                 ports: Sequence[int] | None = None) -> None:
        self.peer_host = peer_host
        self.tls: Any = None
        self._reactor = reactor
        self.protocol: DataProtocol | None = None
        self.connected = False
        self._waiting: Deferred[DataProtocol] | None = None
        self._port: Any = listenInRange(reactor, _DataFactory(self), interface, ports)
        self.port: int = self._port.getHost().port

    def _accept(self, addr: Any) -> DataProtocol | None:
        if self.protocol is not None or self._port is None:
            return None
        if getattr(addr, "host", None) != self.peer_host:
            log.warning("FTP data connection from %s refused: the control connection is "
                        "from %s", getattr(addr, "host", addr), self.peer_host)
            return None
        self.protocol = DataProtocol(self._made, self.tls)
        # Not from inside the accept loop that is calling us: it would go on
        # accepting on the closed socket.
        self._reactor.callLater(0, self.stop)
        return self.protocol

    def _made(self) -> None:
        # Called from connectionMade: only now has the protocol a transport.
        self.connected = True
        if self._waiting is not None:
            waiting, self._waiting = self._waiting, None
            assert self.protocol is not None
            _deliver(waiting, self.protocol)

    def connection(self) -> Deferred[DataProtocol]:
        """The data connection, now or once it is made."""
        d: Deferred[DataProtocol] = Deferred()
        if self.protocol is not None and self.connected:
            _deliver(d, self.protocol)
        else:
            self._waiting = d
        return d

    def stop(self) -> None:
        """Stop listening (the connection, if any, stays open)."""
        port, self._port = self._port, None
        if port is not None:
            port.stopListening()

    def close(self) -> None:
        """Stop listening and drop the data connection."""
        self.stop()
        protocol = self.protocol
        if protocol is not None and protocol.transport is not None and not protocol.lost:
            protocol.transport.abortConnection()
        if self._waiting is not None:
            waiting, self._waiting = self._waiting, None
            waiting.cancel()


class _ActiveFactory(ClientFactory[DataProtocol]):
    def __init__(self, connector: ActiveConnector) -> None:
        self.owner = connector

    def buildProtocol(self, addr: Any) -> DataProtocol | None:
        protocol = self.owner.protocol = DataProtocol(self.owner._made, self.owner.tls)
        return protocol

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        self.owner._failed(reason)


class ActiveConnector:
    """The data connection of a PORT or EPRT: made to the client when a transfer starts.

    The server checked the address (the client's own, a port >= 1024) before
    making one of these; it offers the same methods as :class:`PassiveListener`.

    Args:
        reactor: The reactor to connect with.
        host: The client's address.
        port: The client's port.
        timeout: Seconds to wait for the connection.

    Attributes:
        tls: As for :class:`PassiveListener` (the server takes TLS's server
            side here too).
    """

    def __init__(self, reactor: Any, host: str, port: int, timeout: float) -> None:
        self.host = host
        self.tls: Any = None
        self.port = port
        self.protocol: DataProtocol | None = None
        self.connected = False
        self._reactor = reactor
        self._timeout = timeout
        self._connector: Any = None
        self._waiting: Deferred[DataProtocol] | None = None

    def connection(self) -> Deferred[DataProtocol]:
        """Connect to the client; the data connection once made."""
        d: Deferred[DataProtocol] = Deferred()
        self._waiting = d
        if self._connector is None:
            self._connector = self._reactor.connectTCP(
                self.host, self.port, _ActiveFactory(self), timeout=self._timeout)
        return d

    def _made(self) -> None:
        self.connected = True
        waiting, self._waiting = self._waiting, None
        if waiting is not None and self.protocol is not None:
            _deliver(waiting, self.protocol)

    def _failed(self, reason: Failure) -> None:
        waiting, self._waiting = self._waiting, None
        if waiting is not None:
            waiting.errback(reason)

    def stop(self) -> None:
        """Nothing to stop listening on."""

    def close(self) -> None:
        """Stop connecting, or drop the data connection."""
        connector, self._connector = self._connector, None
        protocol = self.protocol
        if protocol is not None and protocol.transport is not None:
            if not protocol.lost:
                protocol.transport.abortConnection()
        elif connector is not None and getattr(connector, "state", None) == "connecting":
            connector.stopConnecting()
        waiting, self._waiting = self._waiting, None
        if waiting is not None:
            waiting.cancel()


#: Either way of making the data connection.
DataChannel = PassiveListener | ActiveConnector
