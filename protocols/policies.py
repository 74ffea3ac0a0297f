"""Policies: wrap any factory to add idle timeouts, connection limits or throttling.

A wrapping factory builds the real protocol with the factory it wraps and puts
a :class:`ProtocolWrapper` between it and the transport; the policy lives in
the wrapper::

    transport <--> ProtocolWrapper (the policy) <--> wrapped protocol

* :class:`WrappingFactory`, :class:`ProtocolWrapper`: the plumbing, to subclass.
* :class:`TimeoutMixin`: ``setTimeout``/``resetTimeout`` for your own protocol.
* :class:`TimeoutFactory`: close connections idle for ``timeoutPeriod`` seconds.
* :class:`ConnectionLimits`, :class:`LimitConnectionsByPeer`,
  :class:`LimitTotalConnectionsFactory`: cap connections per peer host and in
  total; an excess connection is accepted and closed politely.
* :class:`ThrottlingFactory`: limit bandwidth in bytes per second.

Timers go on :func:`find_clock`'s choice: an explicit ``clock``, else the
transport's reactor, else the installed reactor (looked up only when needed).

Example:
    >>> from protocols import Factory, Protocol
    >>> from reactor.testing import Clock, StringTransport
    >>> clock, transport = Clock(), StringTransport()
    >>> factory = TimeoutFactory(Factory.forProtocol(Protocol), timeoutPeriod=5, clock=clock)
    >>> factory.buildProtocol(None).makeConnection(transport)
    >>> clock.advance(5); transport.disconnecting
    True
"""


from __future__ import annotations

import logging
import weakref
from collections.abc import Callable, Iterable
from typing import Any

from deferred import Failure
from reactor.error import AlreadyCalled, AlreadyCancelled
from reactor.interfaces import IDelayedCall, IReactorTime

from ._throttle import ThrottlingFactory, ThrottlingProtocol
from ._wrapping import ProtocolWrapper, WrappingFactory, find_clock
from .base import Protocol, ServerFactory, connectionDone

__all__ = [
    "ConnectionLimits",
    "LimitConnectionsByPeer",
    "LimitTotalConnectionsFactory",
    "ProtocolWrapper",
    "Refuse",
    "ThrottlingFactory",
    "ThrottlingProtocol",
    "TimeoutFactory",
    "TimeoutMixin",
    "TimeoutProtocol",
    "WrappingFactory",
    "find_clock",
]

log = logging.getLogger(__name__)

# --- timeouts --------------------------------------------------------------------------


class TimeoutMixin:
    """Call :meth:`timeoutConnection` after ``timeOut`` seconds without :meth:`resetTimeout`.

    Mix into a protocol; call ``resetTimeout()`` on activity (typically in
    ``dataReceived``) and ``setTimeout(None)`` in ``connectionLost`` (the mixin
    cannot see the connection end by itself). ``timeOut`` is the period (None:
    no timeout); ``clock``, if set, is where to schedule (see :func:`find_clock`).

    Example:
        >>> from protocols import Protocol
        >>> from reactor.testing import Clock, StringTransport
        >>> class Idle(TimeoutMixin, Protocol):
        ...     def connectionMade(self) -> None: self.setTimeout(10)
        ...     def dataReceived(self, data: bytes) -> None: self.resetTimeout()
        ...     def connectionLost(self, reason: object = None) -> None: self.setTimeout(None)
        >>> proto, transport = Idle(), StringTransport()
        >>> proto.clock = Clock()
        >>> proto.makeConnection(transport)
        >>> proto.clock.advance(9); proto.dataReceived(b"x"); proto.clock.advance(9)
        >>> transport.disconnecting
        False
        >>> proto.clock.advance(1); transport.disconnecting
        True
    """

    timeOut: float | None = None
    clock: IReactorTime | None = None
    transport: Any
    _timeoutCall: IDelayedCall | None = None

    def callLater(self, period: float, func: Callable[[], object]) -> IDelayedCall:
        """Schedule ``func`` in ``period`` seconds; override to use another clock."""
        return find_clock(self).callLater(period, func)

    def resetTimeout(self) -> None:
        """Restart the countdown from the full ``timeOut``."""
        if self._timeoutCall is not None and self.timeOut is not None:
            self._timeoutCall.reset(self.timeOut)

    def setTimeout(self, period: float | None) -> float | None:
        """Change the period (None: no timeout) and restart the countdown.

        Returns:
            The previous period.
        """
        previous, self.timeOut = self.timeOut, period
        call = self._timeoutCall
        if call is not None:
            if period is None:
                self._timeoutCall = None
                try:
                    call.cancel()
                except (AlreadyCalled, AlreadyCancelled):
                    pass
            else:
                call.reset(period)
        elif period is not None:
            self._timeoutCall = self.callLater(period, self._timedOut)
        return previous

    def _timedOut(self) -> None:
        self._timeoutCall = None
        self.timeoutConnection()

    def timeoutConnection(self) -> None:
        """Called when the period passes with no activity; closes the connection."""
        self.transport.loseConnection()


class TimeoutProtocol(ProtocolWrapper, TimeoutMixin):
    """A wrapper closing its connection after ``timeoutPeriod`` seconds without traffic.

    Any byte received or written restarts the countdown, which starts when
    the connection is made. Built by :class:`TimeoutFactory`.
    """

    def __init__(self, factory: Any, wrappedProtocol: Any,
                 timeoutPeriod: float | None) -> None:
        ProtocolWrapper.__init__(self, factory, wrappedProtocol)
        self.timeOut = timeoutPeriod

    @property
    def timeoutPeriod(self) -> float | None:
        """Twisted's name for ``timeOut``."""
        return self.timeOut

    def makeConnection(self, transport: Any) -> None:
        """Start the countdown, then connect the wrapped protocol."""
        # Started first, so a connection closed by the wrapped protocol's
        # connectionMade still has its timer cancelled in connectionLost.
        self.transport = transport
        self.setTimeout(self.timeOut)
        ProtocolWrapper.makeConnection(self, transport)

    def cancelTimeout(self) -> None:
        """Stop the countdown, keeping the period."""
        period = self.timeOut
        self.setTimeout(None)
        self.timeOut = period

    def write(self, data: bytes) -> None:
        """Write and restart the countdown."""
        self.resetTimeout()
        ProtocolWrapper.write(self, data)

    def writeSequence(self, data: Iterable[bytes]) -> None:
        """Write and restart the countdown."""
        self.resetTimeout()
        ProtocolWrapper.writeSequence(self, data)

    def dataReceived(self, data: bytes) -> None:
        """Restart the countdown and pass ``data`` on."""
        self.resetTimeout()
        ProtocolWrapper.dataReceived(self, data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """Cancel the countdown, then pass the loss on."""
        self.cancelTimeout()
        ProtocolWrapper.connectionLost(self, reason)

    def timeoutConnection(self) -> None:
        """Idle too long: close the connection."""
        self.loseConnection()

    timeoutFunc = timeoutConnection


class TimeoutFactory(WrappingFactory):
    """Wraps ``wrappedFactory`` so idle connections close after ``timeoutPeriod`` seconds.

    Args:
        wrappedFactory: The factory of the real protocols.
        timeoutPeriod: Idle seconds allowed (default 30 minutes, as Twisted's).
        clock: Where to schedule; None: each transport's reactor.
    """

    protocol = TimeoutProtocol

    def __init__(self, wrappedFactory: Any, timeoutPeriod: float | None = 30 * 60,
                 clock: IReactorTime | None = None) -> None:
        super().__init__(wrappedFactory)
        self.timeoutPeriod, self.clock = timeoutPeriod, clock

    def buildProtocol(self, addr: Any) -> ProtocolWrapper | None:
        """Wrap the real protocol in a ``TimeoutProtocol`` with this factory's period."""
        wrapped = self.wrappedFactory.buildProtocol(addr)
        if wrapped is None:
            return None
        return self.protocol(self, wrapped, timeoutPeriod=self.timeoutPeriod)

    def callLater(self, period: float, func: Callable[[], object]) -> IDelayedCall:
        """Schedule on ``clock``, or on the installed reactor."""
        return find_clock(self).callLater(period, func)


# --- connection limits -----------------------------------------------------------------


class Refuse(Protocol):
    """The default overflow protocol: writes the factory's ``overflowMessage`` (if any), closes.

    Accepting and closing tells the client "busy" at once (it reads the
    message, then end-of-stream); not accepting would leave it in the backlog.
    """

    def connectionMade(self) -> None:
        """Send the overflow message, if any, and close."""
        message = getattr(self.factory, "overflowMessage", None)
        if message:
            self.transport.write(message)  # type: ignore[union-attr]
        self.transport.loseConnection()  # type: ignore[union-attr]


def _overflow(factory: Any, addr: Any) -> Any:
    log.info("%s: refusing a connection from %s (limit reached)", factory.logPrefix(), addr)
    if factory.overflowProtocol is None:
        return None
    refusal = factory.overflowProtocol()
    refusal.factory = factory
    return refusal


def _peer_key(addr: Any) -> Any:
    # IP addresses count by host (all ports of one machine are one peer);
    # an address without a host (a UNIX socket) counts as itself.
    return getattr(addr, "host", addr)


class ConnectionLimits(WrappingFactory):
    """Caps connections per peer host and in total; excess ones are refused politely.

    An excess connection gets ``overflowProtocol`` (by default :class:`Refuse`:
    ``overflowMessage`` if set, then a clean close); it counts towards no limit
    and the wrapped factory never hears of it. With ``overflowProtocol = None``
    excess connections are dropped unaccepted instead.

    Args:
        wrappedFactory: The factory of the real protocols.
        maxConnectionsPerPeer: Connections allowed from one host (None: no limit).
        connectionLimit: Connections allowed in total (None: no limit).
        overflowMessage: Bytes written to a refused client before closing.

    Attributes:
        connectionCount: Live connections.
        peerConnections: Live connections per peer host.

    Example:
        >>> from protocols import Factory, Protocol
        >>> from reactor.testing import StringTransport
        >>> limits = ConnectionLimits(Factory.forProtocol(Protocol), connectionLimit=1,
        ...                           overflowMessage=b"busy\\r\\n")
        >>> limits.buildProtocol(None).makeConnection(StringTransport())
        >>> refused, transport = limits.buildProtocol(None), StringTransport()
        >>> refused.makeConnection(transport)
        >>> transport.value(), transport.disconnecting
        (b'busy\\r\\n', True)
    """

    maxConnectionsPerPeer: int | None = None
    connectionLimit: int | None = None
    overflowMessage: bytes | None = None
    overflowProtocol: Callable[[], Any] | None = Refuse

    def __init__(self, wrappedFactory: Any, maxConnectionsPerPeer: int | None = None,
                 connectionLimit: int | None = None,
                 overflowMessage: bytes | None = None) -> None:
        super().__init__(wrappedFactory)
        if maxConnectionsPerPeer is not None:
            self.maxConnectionsPerPeer = maxConnectionsPerPeer
        if connectionLimit is not None:
            self.connectionLimit = connectionLimit
        if overflowMessage is not None:
            self.overflowMessage = overflowMessage
        self.connectionCount = 0
        self.peerConnections: dict[Any, int] = {}
        # Weak: a wrapper built but never connected (reset before it started)
        # must not be kept alive by its entry here.
        self._keys: weakref.WeakKeyDictionary[ProtocolWrapper, Any] = (
            weakref.WeakKeyDictionary())

    def allows(self, addr: Any) -> bool:
        """Whether a new connection from ``addr`` is within the limits."""
        total, per_peer = self.connectionLimit, self.maxConnectionsPerPeer
        if total is not None and self.connectionCount >= total:
            return False
        return per_peer is None or self.peerConnections.get(_peer_key(addr), 0) < per_peer

    def buildProtocol(self, addr: Any) -> Any:
        """A wrapped protocol within the limits; else the overflow protocol (or None)."""
        if not self.allows(addr):
            return _overflow(self, addr)
        wrapper = super().buildProtocol(addr)
        if wrapper is not None:
            self._keys[wrapper] = _peer_key(addr)
        return wrapper

    def registerProtocol(self, p: ProtocolWrapper) -> None:
        """Count the connection (when made, so one never started is never counted)."""
        super().registerProtocol(p)
        key = self._keys.setdefault(p, _peer_key(p.getPeer()))
        self.connectionCount += 1
        self.peerConnections[key] = self.peerConnections.get(key, 0) + 1

    def unregisterProtocol(self, p: ProtocolWrapper) -> None:
        """Uncount the connection."""
        super().unregisterProtocol(p)
        if p not in self._keys:
            return
        key = self._keys.pop(p)
        self.connectionCount -= 1
        self.peerConnections[key] -= 1
        if not self.peerConnections[key]:
            del self.peerConnections[key]


class LimitConnectionsByPeer(ConnectionLimits):
    """Allows ``maxConnectionsPerPeer`` (default 5) connections per peer host.

    Twisted's class; but an excess connection is refused politely (see
    :class:`ConnectionLimits`) rather than dropped.
    """

    maxConnectionsPerPeer: int | None = 5


class LimitTotalConnectionsFactory(ServerFactory[Any]):
    """A server factory (set ``protocol``) capping its connections at ``connectionLimit``.

    Twisted's shape: subclass it, set ``protocol`` and ``connectionLimit``.
    Connections beyond the limit get ``overflowProtocol`` (default
    :class:`Refuse`: ``overflowMessage`` if set, then close); with
    ``overflowProtocol = None`` they are dropped unaccepted.

    Example:
        >>> from protocols import Protocol
        >>> class Limited(LimitTotalConnectionsFactory):
        ...     protocol, connectionLimit = Protocol, 0
        >>> type(Limited().buildProtocol(None)).__name__
        'Refuse'
    """

    connectionCount = 0
    connectionLimit: int | None = None
    overflowProtocol: Callable[[], Any] | None = Refuse
    overflowMessage: bytes | None = None

    def buildProtocol(self, addr: Any) -> Any:
        """A wrapped ``protocol`` within the limit, else the overflow protocol (or None)."""
        if self.connectionLimit is not None and self.connectionCount >= self.connectionLimit:
            return _overflow(self, addr)
        wrapped = super().buildProtocol(addr)
        return ProtocolWrapper(self, wrapped)

    def registerProtocol(self, p: ProtocolWrapper) -> None:
        """Count a connection within the limit."""
        self.connectionCount += 1

    def unregisterProtocol(self, p: ProtocolWrapper) -> None:
        """Uncount it."""
        self.connectionCount -= 1


