"""The contracts between reactors, transports, protocols and factories.

These are ``typing.Protocol`` classes: structural types, checked by mypy, with no
registration step (Twisted's zope.interface declarations are not needed). Any
object with the right methods provides the interface; ``isinstance`` works too
(every interface is ``runtime_checkable``), though it only checks that the
names exist, and it is slow, so keep it out of hot paths.

Who calls whom::

    reactor --listenTCP(port, factory)--> factory.buildProtocol(addr) -> protocol
    transport --makeConnection/dataReceived/connectionLost--> protocol
    protocol --write/loseConnection--> transport
    consumer (a transport) --pauseProducing/resumeProducing--> producer

Example:
    >>> from reactor.testing import Clock
    >>> def later(clock: IReactorTime) -> IDelayedCall:
    ...     return clock.callLater(1.0, print, "tick")
    >>> isinstance(later(Clock()), IDelayedCall)
    True
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from deferred import Deferred, Failure

__all__ = [
    "IAddress",
    "IClientFactory",
    "IConnector",
    "IConsumer",
    "IDelayedCall",
    "IHalfCloseableProtocol",
    "IListeningPort",
    "IProducer",
    "IProtocol",
    "IProtocolFactory",
    "IPullProducer",
    "IPushProducer",
    "IReactorCore",
    "IReactorSSL",
    "IReactorTCP",
    "IReactorTime",
    "IReactorUDP",
    "IReactorUNIX",
    "ITCPTransport",
    "ITransport",
    "IUDPTransport",
]


@runtime_checkable
class IAddress(Protocol):
    """An endpoint address (``IPv4Address``, ``UNIXAddress``, ...).

    A marker: addresses share no methods, so any object qualifies.
    """


# --- time ------------------------------------------------------------------------------


@runtime_checkable
class IDelayedCall(Protocol):
    """A call scheduled with ``callLater``."""

    def getTime(self) -> float:
        """Return when the call will run."""
        ...

    def cancel(self) -> None:
        """Unschedule the call (raises AlreadyCalled/AlreadyCancelled if too late)."""
        ...

    def delay(self, secondsLater: float) -> None:
        """Move the call ``secondsLater`` seconds later."""
        ...

    def reset(self, secondsFromNow: float) -> None:
        """Reschedule the call to run ``secondsFromNow`` seconds from now."""
        ...

    def active(self) -> bool:
        """Return True until the call has run or been cancelled."""
        ...


@runtime_checkable
class IReactorTime(Protocol):
    """Something that tells time and runs calls later: a reactor or a ``Clock``."""

    def seconds(self) -> float:
        """Return the current time in this clock's units (seconds)."""
        ...

    def callLater(
        self, delay: float, callable: Callable[..., object], *args: object, **kw: object
    ) -> IDelayedCall:
        """Run ``callable(*args, **kw)`` after ``delay`` seconds."""
        ...

    def getDelayedCalls(self) -> Sequence[IDelayedCall]:
        """Return the calls that are scheduled and not yet run or cancelled."""
        ...


# --- producers and consumers -----------------------------------------------------------


@runtime_checkable
class IProducer(Protocol):
    """Produces data for a consumer."""

    def stopProducing(self) -> None:
        """Stop for good: the consumer will not accept more data."""
        ...


@runtime_checkable
class IPushProducer(IProducer, Protocol):
    """Writes to its consumer whenever it likes, until told to pause."""

    def pauseProducing(self) -> None:
        """Stop writing until ``resumeProducing`` is called."""
        ...

    def resumeProducing(self) -> None:
        """Start writing again after a pause."""
        ...


@runtime_checkable
class IPullProducer(IProducer, Protocol):
    """Writes one chunk each time its consumer asks."""

    def resumeProducing(self) -> None:
        """Write one chunk to the consumer (or unregister when done)."""
        ...


@runtime_checkable
class IConsumer(Protocol):
    """Accepts data, and can throttle a registered producer."""

    def registerProducer(self, producer: IProducer, streaming: bool) -> None:
        """Register a producer: push (``streaming=True``) or pull."""
        ...

    def unregisterProducer(self) -> None:
        """Forget the registered producer."""
        ...

    def write(self, data: bytes) -> None:
        """Accept some bytes."""
        ...


# --- transports ------------------------------------------------------------------------


@runtime_checkable
class ITransport(Protocol):
    """One end of a byte stream, as seen by its protocol (``self.transport``).

    ``disconnecting`` is not in Twisted's interface, but every Twisted
    transport has it and line parsers rely on it to stop delivering lines
    once a protocol has asked to close, so it is part of ours.
    """

    @property
    def disconnecting(self) -> bool:
        """True once ``loseConnection`` (or an abort) has been called."""
        ...

    def write(self, data: bytes) -> None:
        """Queue bytes to send; never blocks."""
        ...

    def writeSequence(self, data: Iterable[bytes]) -> None:
        """Queue several byte strings to send, in order."""
        ...

    def loseConnection(self) -> None:
        """Close after the queued bytes are sent; the protocol then gets connectionLost."""
        ...

    def getPeer(self) -> Any:
        """Return the remote address (an ``IAddress``)."""
        ...

    def getHost(self) -> Any:
        """Return the local address (an ``IAddress``)."""
        ...


@runtime_checkable
class ITCPTransport(ITransport, Protocol):
    """A TCP transport: the stream calls plus TCP's knobs."""

    def abortConnection(self) -> None:
        """Close at once, discarding queued bytes."""
        ...

    def loseWriteConnection(self) -> None:
        """Half-close: send FIN after the queued bytes but keep reading."""
        ...

    def getTcpNoDelay(self) -> bool:
        """Return whether Nagle's algorithm is disabled."""
        ...

    def setTcpNoDelay(self, enabled: bool) -> None:
        """Disable (True) or enable (False) Nagle's algorithm."""
        ...

    def getTcpKeepAlive(self) -> bool:
        """Return whether TCP keep-alive probes are on."""
        ...

    def setTcpKeepAlive(self, enabled: bool) -> None:
        """Turn TCP keep-alive probes on or off."""
        ...


@runtime_checkable
class IUDPTransport(Protocol):
    """The transport of a ``DatagramProtocol``."""

    def write(self, packet: bytes, addr: Any = None) -> None:
        """Send one datagram (to ``addr``, or to the connected peer)."""
        ...

    def connect(self, host: str, port: int) -> None:
        """Fix the peer: writes go there and only its datagrams arrive."""
        ...

    def getHost(self) -> Any:
        """Return the local address."""
        ...

    def stopListening(self) -> Deferred[None] | None:
        """Close the socket."""
        ...


# --- protocols and factories -----------------------------------------------------------


@runtime_checkable
class IProtocol(Protocol):
    """The receiving side of a connection.

    Call grammar: ``makeConnection -> connectionMade [-> dataReceived*] ->
    connectionLost``.
    """

    def makeConnection(self, transport: Any) -> None:
        """Attach the transport and call ``connectionMade``."""
        ...

    def connectionMade(self) -> None:
        """The connection is up; ``self.transport`` can be used."""
        ...

    def dataReceived(self, data: bytes) -> None:
        """Some bytes arrived (any amount: messages may be split or merged)."""
        ...

    def connectionLost(self, reason: Failure) -> None:
        """The connection ended; ``reason`` wraps ConnectionDone or ConnectionLost."""
        ...


@runtime_checkable
class IHalfCloseableProtocol(Protocol):
    """A protocol that wants to hear about half-closes."""

    def readConnectionLost(self) -> None:
        """The peer will send no more data; we may still write."""
        ...

    def writeConnectionLost(self) -> None:
        """Our writing side was closed (``loseWriteConnection`` completed)."""
        ...


@runtime_checkable
class IProtocolFactory(Protocol):
    """Builds a protocol for each connection."""

    def buildProtocol(self, addr: Any) -> IProtocol | None:
        """Return a protocol for a connection from/to ``addr``; None refuses it."""
        ...

    def doStart(self) -> None:
        """Called by each port/connector that starts using the factory."""
        ...

    def doStop(self) -> None:
        """Called by each port/connector that stops using the factory."""
        ...


@runtime_checkable
class IConnector(Protocol):
    """An outgoing connection attempt, as given to client factories."""

    def stopConnecting(self) -> None:
        """Abandon the attempt (raises NotConnectingError if not connecting)."""
        ...

    def disconnect(self) -> None:
        """Stop connecting, or drop the connection if it is up."""
        ...

    def connect(self) -> None:
        """Try again (used by reconnecting factories)."""
        ...

    def getDestination(self) -> Any:
        """Return the address being connected to."""
        ...


@runtime_checkable
class IClientFactory(IProtocolFactory, Protocol):
    """A factory for outgoing connections (``ClientFactory``'s hooks)."""

    def startedConnecting(self, connector: IConnector) -> None:
        """A connection attempt has begun."""
        ...

    def clientConnectionFailed(self, connector: IConnector, reason: Failure) -> None:
        """The attempt failed; ``connector.connect()`` would retry."""
        ...

    def clientConnectionLost(self, connector: IConnector, reason: Failure) -> None:
        """An established connection was lost."""
        ...


@runtime_checkable
class IListeningPort(Protocol):
    """A listening socket, returned by ``listenTCP`` and friends."""

    def startListening(self) -> None:
        """Start accepting (the reactor does this before returning the port)."""
        ...

    def stopListening(self) -> Deferred[None] | None:
        """Stop accepting; the Deferred fires once the socket is closed."""
        ...

    def getHost(self) -> Any:
        """Return the address listened on (``getHost().port`` after port 0)."""
        ...


# --- reactors --------------------------------------------------------------------------


@runtime_checkable
class IReactorCore(Protocol):
    """Running and stopping the loop, and lifecycle hooks."""

    running: bool

    def run(self) -> None:
        """Run the loop until ``stop`` is called."""
        ...

    def stop(self) -> None:
        """Ask the running loop to shut down (raises ReactorNotRunning if idle)."""
        ...

    def callWhenRunning(self, callable: Callable[..., object], *args: object, **kw: object) -> Any:
        """Call now if running, else as soon as ``run`` starts."""
        ...

    def addSystemEventTrigger(
        self,
        phase: str,
        eventType: str,
        callable: Callable[..., object],
        *args: object,
        **kw: object,
    ) -> Any:
        """Call ``callable`` in ``phase`` (before/during/after) of ``eventType``.

        Returns an id for ``removeSystemEventTrigger``.
        """
        ...

    def removeSystemEventTrigger(self, triggerID: Any) -> None:
        """Remove a trigger added by ``addSystemEventTrigger``."""
        ...


@runtime_checkable
class IReactorTCP(Protocol):
    """TCP servers and clients."""

    def listenTCP(
        self, port: int, factory: IProtocolFactory, backlog: int = 50, interface: str = ""
    ) -> IListeningPort:
        """Listen on ``interface:port``; raises CannotListenError on failure."""
        ...

    def connectTCP(
        self,
        host: str,
        port: int,
        factory: IClientFactory,
        timeout: float = 30,
        bindAddress: tuple[str, int] | None = None,
    ) -> IConnector:
        """Connect to ``host:port``; the factory hears how it went."""
        ...


@runtime_checkable
class IReactorUDP(Protocol):
    """UDP sockets."""

    def listenUDP(
        self, port: int, protocol: Any, interface: str = "", maxPacketSize: int = 8192
    ) -> IListeningPort:
        """Bind a ``DatagramProtocol`` to ``interface:port``."""
        ...


@runtime_checkable
class IReactorUNIX(Protocol):
    """UNIX stream sockets."""

    def listenUNIX(
        self,
        address: str,
        factory: IProtocolFactory,
        backlog: int = 50,
        mode: int = 0o666,
        wantPID: int = 0,
    ) -> IListeningPort:
        """Listen on the socket file ``address``."""
        ...

    def connectUNIX(
        self, address: str, factory: IClientFactory, timeout: float = 30, checkPID: int = 0
    ) -> IConnector:
        """Connect to the socket file ``address``."""
        ...


@runtime_checkable
class IReactorSSL(Protocol):
    """TLS servers and clients (``contextFactory`` is an ``ssl.SSLContext``)."""

    def listenSSL(
        self,
        port: int,
        factory: IProtocolFactory,
        contextFactory: Any,
        backlog: int = 50,
        interface: str = "",
    ) -> IListeningPort:
        """Listen for TLS connections on ``interface:port``."""
        ...

    def connectSSL(
        self,
        host: str,
        port: int,
        factory: IClientFactory,
        contextFactory: Any,
        timeout: float = 30,
        bindAddress: tuple[str, int] | None = None,
    ) -> IConnector:
        """Connect to ``host:port`` over TLS."""
        ...
