"""Bandwidth throttling (``ThrottlingFactory``), re-exported by ``protocols.policies``."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterable
from typing import Any, cast

from deferred import Failure
from reactor.interfaces import IDelayedCall, IReactorTime

from ._wrapping import ProtocolWrapper, WrappingFactory, find_clock
from .base import connectionDone

__all__ = ["ThrottlingFactory", "ThrottlingProtocol"]

log = logging.getLogger("protocols.policies")

# --- throttling ------------------------------------------------------------------------


class _ThrottledProducer:
    """Registered with the transport in place of the protocol's producer.

    Two parties may want the producer paused: the transport (its buffer is
    full) and the throttle; it runs only when neither does, so one lifting its
    pause never overrides the other. It is registered as a push producer; a
    pull producer is asked for one chunk per reactor turn while allowed.
    """

    def __init__(self, protocol: ThrottlingProtocol, producer: Any, streaming: bool) -> None:
        self.protocol, self.producer, self.streaming = protocol, producer, streaming
        self.active, self.transportPaused, self.producerPaused = True, False, False
        self._pull: IDelayedCall | None = None

    def pauseProducing(self) -> None:
        self.transportPaused = True
        self.update()

    def resumeProducing(self) -> None:
        self.transportPaused = False
        self.update()

    def stopProducing(self) -> None:
        self.detach()
        self.producer.stopProducing()

    def detach(self) -> None:
        self.active = False
        if self._pull is not None:
            self._pull.cancel()
            self._pull = None

    def update(self) -> None:
        """Bring the producer in line with the two pause reasons."""
        hold = self.transportPaused or self.protocol.writesThrottled
        if not self.active:
            return
        if self.streaming:
            if hold != self.producerPaused:
                self.producerPaused = hold
                (self.producer.pauseProducing if hold else self.producer.resumeProducing)()
        elif hold and self._pull is not None:
            self._pull.cancel()
            self._pull = None
        elif not hold and self._pull is None:
            self._pull = find_clock(self.protocol).callLater(0, self._pull_once)

    def _pull_once(self) -> None:
        self._pull = None
        if self.active:
            self.producer.resumeProducing()
            self.update()


class ThrottlingProtocol(ProtocolWrapper):
    """The wrapper :class:`ThrottlingFactory` puts on each connection.

    While reads are throttled the transport stops reading. While writes are
    throttled, writes are held here and a registered producer is paused; held
    writes go out when the throttle lifts, and ``loseConnection`` waits for them.
    """

    factory: ThrottlingFactory
    producer: Any = None
    readsThrottled = writesThrottled = False
    _userPausedReads = _readsPaused = _closeWhenFlushed = False
    _proxy: _ThrottledProducer | None = None

    def __init__(self, factory: ThrottlingFactory, wrappedProtocol: Any) -> None:
        super().__init__(factory, wrappedProtocol)
        self._held: list[bytes] = []

    def write(self, data: bytes) -> None:
        """Send ``data``, or hold it while writes are throttled."""
        if self.writesThrottled or self._held:
            if not self.disconnecting:
                self._held.append(bytes(data))
            return
        self.factory.registerWritten(len(data))
        ProtocolWrapper.write(self, data)

    def writeSequence(self, data: Iterable[bytes]) -> None:
        """Send (or hold) the items of ``data`` as one write."""
        self.write(b"".join(data))

    def loseConnection(self) -> None:
        """Close once held writes have gone out."""
        if self._held:
            self._disconnecting = self._closeWhenFlushed = True
        else:
            ProtocolWrapper.loseConnection(self)

    def dataReceived(self, data: bytes) -> None:
        """Count ``data`` against the read limit and pass it on."""
        self.factory.registerRead(len(data))
        ProtocolWrapper.dataReceived(self, data)

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        """Register ``producer``; the throttle and the transport may each pause it."""
        self.producer = producer
        self._proxy = _ThrottledProducer(self, producer, streaming)
        ProtocolWrapper.registerProducer(self, self._proxy, True)
        self._proxy.update()

    def unregisterProducer(self) -> None:
        """Unregister the producer."""
        if self._proxy is not None:
            self._proxy.detach()
        self.producer = self._proxy = None
        ProtocolWrapper.unregisterProducer(self)

    def pauseProducing(self) -> None:
        """The wrapped protocol asks to stop reading."""
        self._userPausedReads = True
        self._applyReads()

    def resumeProducing(self) -> None:
        """The wrapped protocol asks to read again (a throttle may still hold reads)."""
        self._userPausedReads = False
        self._applyReads()

    def _applyReads(self) -> None:
        paused = self._userPausedReads or self.readsThrottled
        if paused != self._readsPaused and not self.disconnecting:
            self._readsPaused = paused
            transport: Any = self.transport
            (transport.pauseProducing if paused else transport.resumeProducing)()

    def throttleReads(self) -> None:
        """Stop reading until :meth:`unthrottleReads`."""
        self.readsThrottled = True
        self._applyReads()

    def unthrottleReads(self) -> None:
        """Read again (unless the wrapped protocol paused reading itself)."""
        self.readsThrottled = False
        self._applyReads()

    def throttleWrites(self) -> None:
        """Hold writes and pause the producer until :meth:`unthrottleWrites`."""
        self.writesThrottled = True
        if self._proxy is not None:
            self._proxy.update()

    def unthrottleWrites(self) -> None:
        """Send the held writes and let the producer run again."""
        self.writesThrottled = False
        held, self._held = b"".join(self._held), []
        if held:
            self.factory.registerWritten(len(held))
            ProtocolWrapper.write(self, held)
        if self._closeWhenFlushed:
            ProtocolWrapper.loseConnection(self)
        elif self._proxy is not None:
            self._proxy.update()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """Drop held writes and the producer proxy, then pass the loss on."""
        self._held = []
        if self._proxy is not None:
            self._proxy.detach()
        ProtocolWrapper.connectionLost(self, reason)


class ThrottlingFactory(WrappingFactory):
    """Limits bandwidth (bytes per second over all its connections) and connection count.

    Twisted's algorithm: bytes are counted as they pass; once a second, if more
    than ``readLimit`` were read, reads pause for ``read / readLimit - 1``
    seconds (so the average stays near the limit), and likewise for writes.

    Args:
        wrappedFactory: The factory of the real protocols.
        maxConnectionCount: Further connections are dropped (``buildProtocol`` → None).
        readLimit: Bytes per second to read (None: unlimited).
        writeLimit: Bytes per second to write (None: unlimited).
        clock: Where to schedule; None: the first connection's reactor.

    Attributes:
        readThisSecond, writtenThisSecond: Bytes counted in the current second.
        connectionCount: Live connections.

    Example:
        >>> from protocols import Factory, Protocol
        >>> from reactor.testing import Clock, StringTransport
        >>> clock = Clock()
        >>> factory = ThrottlingFactory(Factory.forProtocol(Protocol), readLimit=10,
        ...                             clock=clock)
        >>> proto, transport = factory.buildProtocol(None), StringTransport()
        >>> proto.makeConnection(transport); proto.dataReceived(b"x" * 30)
        >>> clock.advance(1); transport.producerState      # 3x the limit: pause 2 s
        'paused'
        >>> clock.advance(2); transport.producerState
        'producing'
    """

    protocol = ThrottlingProtocol
    _IDS = ("unthrottleReadsID", "checkReadBandwidthID", "unthrottleWritesID",
            "checkWriteBandwidthID")

    def __init__(self, wrappedFactory: Any, maxConnectionCount: int = sys.maxsize,
                 readLimit: int | None = None, writeLimit: int | None = None,
                 clock: IReactorTime | None = None) -> None:
        super().__init__(wrappedFactory)
        self.maxConnectionCount = maxConnectionCount
        self.readLimit, self.writeLimit, self.clock = readLimit, writeLimit, clock
        self.connectionCount = self.readThisSecond = self.writtenThisSecond = 0
        self.readsThrottled = self.writesThrottled = False
        self.unthrottleReadsID: IDelayedCall | None = None
        self.checkReadBandwidthID: IDelayedCall | None = None
        self.unthrottleWritesID: IDelayedCall | None = None
        self.checkWriteBandwidthID: IDelayedCall | None = None

    def callLater(self, period: float, func: Callable[[], object]) -> IDelayedCall:
        """Schedule on ``clock`` (taken from the first connection when not given)."""
        return find_clock(self).callLater(period, func)

    def registerWritten(self, length: int) -> None:
        """Count ``length`` bytes written."""
        self.writtenThisSecond += length

    def registerRead(self, length: int) -> None:
        """Count ``length`` bytes read."""
        self.readThisSecond += length

    def checkReadBandwidth(self) -> None:
        """The once-a-second check of reads; reschedules itself."""
        assert self.readLimit is not None
        if self.readThisSecond > self.readLimit:
            self.throttleReads()
            pause = self.readThisSecond / self.readLimit - 1.0
            self.unthrottleReadsID = self.callLater(pause, self.unthrottleReads)
        self.readThisSecond = 0
        self.checkReadBandwidthID = self.callLater(1, self.checkReadBandwidth)

    def checkWriteBandwidth(self) -> None:
        """The once-a-second check of writes; reschedules itself."""
        assert self.writeLimit is not None
        if self.writtenThisSecond > self.writeLimit:
            self.throttleWrites()
            pause = self.writtenThisSecond / self.writeLimit - 1.0
            self.unthrottleWritesID = self.callLater(pause, self.unthrottleWrites)
        self.writtenThisSecond = 0
        self.checkWriteBandwidthID = self.callLater(1, self.checkWriteBandwidth)

    def _each(self, method: str) -> None:
        log.debug("%s: %s", self.logPrefix(), method)
        for p in list(self.protocols):
            getattr(p, method)()

    def throttleReads(self) -> None:
        """Pause reading on every connection."""
        self.readsThrottled = True
        self._each("throttleReads")

    def unthrottleReads(self) -> None:
        """Resume reading on every connection."""
        self.unthrottleReadsID, self.readsThrottled = None, False
        self._each("unthrottleReads")

    def throttleWrites(self) -> None:
        """Hold writes on every connection."""
        self.writesThrottled = True
        self._each("throttleWrites")

    def unthrottleWrites(self) -> None:
        """Release writes on every connection."""
        self.unthrottleWritesID, self.writesThrottled = None, False
        self._each("unthrottleWrites")

    def buildProtocol(self, addr: Any) -> ProtocolWrapper | None:
        """A throttled wrapper, or None beyond ``maxConnectionCount``."""
        if self.connectionCount >= self.maxConnectionCount:
            log.info("%s: maximum connection count reached", self.logPrefix())
            return None
        return super().buildProtocol(addr)

    def registerProtocol(self, p: ProtocolWrapper) -> None:
        """Count the connection; the first one starts the once-a-second checks."""
        super().registerProtocol(p)
        self.connectionCount += 1
        if self.connectionCount == 1:
            if self.clock is None:
                self.clock = find_clock(p)
            if self.readLimit is not None:
                self.checkReadBandwidth()
            if self.writeLimit is not None:
                self.checkWriteBandwidth()
        # A connection made during a throttle is throttled too.
        if self.readsThrottled:
            cast(ThrottlingProtocol, p).throttleReads()
        if self.writesThrottled:
            cast(ThrottlingProtocol, p).throttleWrites()

    def unregisterProtocol(self, p: ProtocolWrapper) -> None:
        """Uncount the connection; after the last one, stop the checks."""
        super().unregisterProtocol(p)
        self.connectionCount -= 1
        if self.connectionCount == 0:
            for name in self._IDS:
                call = getattr(self, name)
                if call is not None and call.active():
                    call.cancel()
                setattr(self, name, None)
            self.readsThrottled = self.writesThrottled = False
            self.readThisSecond = self.writtenThisSecond = 0

