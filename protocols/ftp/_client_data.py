"""Data connections of the FTP client (see ``client``): the receiving side,
uploads from files, and accepting the server's connection in active mode."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, runtime_checkable
from typing import Protocol as TypingProtocol

from deferred import Deferred, Failure
from protocols.base import Factory, Protocol, connectionDone

__all__ = ["IBodyProducer"]

log = logging.getLogger("protocols.ftp.client")


@runtime_checkable
class IBodyProducer(TypingProtocol):
    """What ``storeFile`` accepts besides a file: Twisted's body-producer shape.

    ``startProducing(consumer)`` writes the data to ``consumer`` (pausing
    when asked to) and returns a Deferred that fires when all is written.
    """

    def startProducing(self, consumer: Any) -> Deferred[Any]:
        """Start writing to ``consumer``; the Deferred fires when done."""
        ...

    def stopProducing(self) -> None:
        """Stop early: the transfer failed."""
        ...


class _DataProtocol(Protocol):
    """One data connection: hands what arrives to a sink, reports when it closes."""

    @property
    def _transport(self) -> Any:
        return self.transport

    def __init__(self, sink: Callable[[bytes], object] | None,
                 consumer: Any = None, tls: Any = None, hostname: str | None = None) -> None:
        self._sink = sink
        self._tls = tls
        self._hostname = hostname
        # A consumer that understands producers gets the data connection as
        # its push producer, so a slow consumer slows the download.
        self._consumer = consumer if hasattr(consumer, "registerProducer") else None
        self.connected = False
        self.lost = False
        self.reason: Failure | None = None
        self._madeWaiters: list[Deferred[None]] = []
        self._lostWaiters: list[Deferred[None]] = []

    # Each wait gets its own Deferred, so that cancelling one (a timeout, or
    # the user cancelling the operation) leaves the connection's state alone.

    def whenMade(self) -> Deferred[None]:
        """A Deferred firing once the connection is made."""
        d: Deferred[None] = Deferred()
        if self.connected or self.lost:
            d.callback(None)
        else:
            self._madeWaiters.append(d)
        return d

    def whenLost(self) -> Deferred[None]:
        """A Deferred firing (with None; the reason is in ``reason``) once it is closed."""
        d: Deferred[None] = Deferred()
        if self.lost:
            d.callback(None)
        else:
            self._lostWaiters.append(d)
        return d

    def connectionMade(self) -> None:
        self.connected = True
        if self._tls is not None:
            # PROT P: the FTP client is the TLS client on every data
            # connection, whichever side opened it (RFC 4217 7).
            # Set here too: when connected through an endpoint, startTLS
            # updates the endpoint's wrapper protocol, not this one.
            self.transport = self._transport.startTLS(self._tls, server_side=False,
                                                      server_hostname=self._hostname)
        if self._consumer is not None:
            self._consumer.registerProducer(self.transport, True)
        _fire(self._madeWaiters)

    def dataReceived(self, data: bytes) -> None:
        if self._sink is not None:
            self._sink(data)

    def abort(self) -> None:
        """Drop the connection (if it is up) and deliver nothing more."""
        self._sink = None
        if self.connected and not self.lost:
            self._transport.abortConnection()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self._consumer is not None:
            self._consumer.unregisterProducer()
            self._consumer = None
        self.connected, self.lost, self.reason = False, True, reason
        _fire(self._madeWaiters)
        _fire(self._lostWaiters)


def _fire(waiters: list[Deferred[None]]) -> None:
    while waiters:
        d = waiters.pop(0)
        if not d.called:  # a cancelled wait
            d.callback(None)


class _FileProducer:
    """Uploads a file: a pull producer reading one chunk each time the connection wants one.

    So the file never sits whole in memory, and a slow connection slows the reads.
    """

    CHUNK_SIZE = 2**16

    def __init__(self, file: Any) -> None:
        self._file: Any = file
        self._consumer: Any = None
        self._done: Deferred[None] = Deferred()

    def startProducing(self, consumer: Any) -> Deferred[None]:
        """Register with ``consumer``; the Deferred fires once the file is all written."""
        self._consumer = consumer
        consumer.registerProducer(self, False)
        return self._done

    def resumeProducing(self) -> None:
        """Write the next chunk, or, at the end of the file, unregister and fire."""
        if self._file is None:
            return
        try:
            chunk = self._file.read(self.CHUNK_SIZE)
        except Exception:
            self._file = None
            self._consumer.unregisterProducer()
            self._done.errback()
            return
        if chunk:
            self._consumer.write(chunk)
            return
        self._file = None
        self._consumer.unregisterProducer()
        self._done.callback(None)

    def pauseProducing(self) -> None:
        """Nothing to do: a pull producer writes only when asked."""

    def stopProducing(self) -> None:
        """Stop reading; the Deferred never fires (as for Twisted's body producers)."""
        self._file = None


class _ActiveFactory(Factory[_DataProtocol]):
    """Accepts the server's one data connection (active mode), from the server only."""

    def __init__(self, protocol: _DataProtocol, serverHost: str) -> None:
        self._protocol: _DataProtocol | None = protocol
        self._serverHost = serverHost

    def buildProtocol(self, addr: Any) -> _DataProtocol | None:
        # Anyone else connecting to our port could feed us a forged file.
        if self._protocol is None or getattr(addr, "host", None) != self._serverHost:
            log.warning("FTP: refused a data connection from %s", addr)
            return None
        protocol, self._protocol = self._protocol, None
        return protocol


def _sink_for(target: Any) -> Callable[[bytes], object]:
    if hasattr(target, "dataReceived"):
        return target.dataReceived  # type: ignore[no-any-return]
    if hasattr(target, "write"):
        return target.write  # type: ignore[no-any-return]
    raise TypeError(f"cannot write downloaded data to {target!r}: it has no write()")
