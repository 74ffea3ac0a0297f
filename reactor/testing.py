"""Fakes for testing protocols without sockets, sleeps or a running reactor.

* :class:`Clock` -- deterministic time: ``callLater`` calls run only when the test
  calls ``advance``.
* :class:`StringTransport` -- a transport that records what the protocol writes.
* :class:`MemoryReactor` / :class:`MemoryReactorClock` -- record ``listenTCP``,
  ``connectTCP`` and friends instead of touching the network.
* :func:`connectedPair` / :class:`IOPump` -- connect a server and a client protocol
  through in-memory transports; ``pump.flush()`` moves bytes until both are quiet.

The names and behaviour follow ``twisted.internet.testing`` and
``twisted.test.iosim``, so Twisted tests port by changing imports.

Example:
    >>> from protocols.basic import LineReceiver
    >>> class Echo(LineReceiver):
    ...     def lineReceived(self, line: bytes) -> None:
    ...         self.sendLine(line)
    >>> proto, transport = Echo(), StringTransport()
    >>> proto.makeConnection(transport)
    >>> proto.dataReceived(b"hello\\r\\n")
    >>> transport.value()
    b'hello\\r\\n'
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from io import BytesIO
from typing import Any, Literal, TypeVar

from deferred import Deferred, Failure, succeed

from .address import IPv4Address, IPv6Address, UNIXAddress
from .error import ConnectionAborted, ConnectionDone, ConnectionLost
from .interfaces import IClientFactory, IProducer, IProtocol, IProtocolFactory
from .timers import DelayedCall, TimerHeap

__all__ = [
    "Clock",
    "IOPump",
    "MemoryReactor",
    "MemoryReactorClock",
    "StringIOWithoutClosing",
    "StringTransport",
    "StringTransportWithDisconnection",
    "connectedPair",
    "connectedServerAndClient",
]

_S = TypeVar("_S", bound=IProtocol)
_Hook = tuple[Callable[..., object], tuple[object, ...], dict[str, object]]
_C = TypeVar("_C", bound=IProtocol)


def _must_be_bytes(data: object) -> None:
    # Real transports reject str; a fake that accepted it would hide the bug.
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"Data must be bytes, not {type(data).__name__}")


# --- time ------------------------------------------------------------------------------


class Clock:
    """A fake ``IReactorTime``: time stands still until :meth:`advance` moves it.

    Calls due at the same time run in the order they were scheduled (a call
    moved with ``reset``/``delay`` counts as scheduled when it was moved). A
    call scheduled for "now" while ``advance`` is running runs in that same
    ``advance``. An exception from a call propagates out of ``advance``; the
    calls not yet run stay scheduled.

    Attributes:
        rightNow: The current time, in seconds (starts at 0.0).

    Example:
        >>> clock = Clock()
        >>> fired = []
        >>> _ = clock.callLater(2, fired.append, "b")
        >>> _ = clock.callLater(1, fired.append, "a")
        >>> clock.advance(1.5); fired
        ['a']
        >>> clock.pump([1, 1]); fired
        ['a', 'b']
    """

    rightNow: float = 0.0

    def __init__(self) -> None:
        self._timers = TimerHeap(self.seconds)

    def seconds(self) -> float:
        """Return the current fake time."""
        return self.rightNow

    def callLater(
        self, delay: float, callable: Callable[..., object], *args: object, **kw: object
    ) -> DelayedCall:
        """Run ``callable(*args, **kw)`` once the clock has advanced ``delay`` seconds."""
        return self._timers.schedule(self.rightNow + delay, callable, args, kw)

    def getDelayedCalls(self) -> list[DelayedCall]:
        """Return the pending calls, earliest first."""
        return self._timers.getDelayedCalls()

    @property
    def calls(self) -> list[DelayedCall]:
        """The pending calls, earliest first (Twisted's ``Clock.calls``; read-only)."""
        return self._timers.getDelayedCalls()

    def advance(self, amount: float) -> None:
        """Move time forward by ``amount`` seconds and run every call now due."""
        self.rightNow += amount
        pop_due, now = self._timers.pop_due, self.rightNow
        while (call := pop_due(now)) is not None:
            call.invoke()

    def pump(self, timings: Iterable[float]) -> None:
        """Advance by each amount in ``timings`` in turn."""
        for amount in timings:
            self.advance(amount)


# --- transports ------------------------------------------------------------------------


class StringTransport:
    """A transport that keeps written bytes in memory and records its state.

    ``loseConnection`` only sets ``disconnecting``; nothing calls the protocol
    back (see :class:`StringTransportWithDisconnection` and :func:`connectedPair`).

    Args:
        hostAddress: Returned by ``getHost`` (default ``10.0.0.1:12345``).
        peerAddress: Returned by ``getPeer`` (default ``192.168.1.1:54321``).
        lenient: Allow ``pause``/``resumeProducing`` after ``loseConnection``
            (normally a RuntimeError, to catch code expecting a closed
            connection to produce).

    Attributes:
        disconnecting: True once ``loseConnection`` (or abort) was called.
        disconnected: True once ``abortConnection`` was called.
        connected: True until a subclass reports the connection lost.
        producer: The registered producer, or None.
        streaming: Whether the registered producer is a push producer.
        producerState: This transport as a producer of incoming data:
            ``"producing"``, ``"paused"`` or ``"stopped"``.
        io: The buffer holding written bytes; prefer :meth:`value`.
    """

    disconnecting = False
    disconnected = False
    producer: IProducer | None = None
    streaming: bool | None = None
    hostAddr: Any = None
    peerAddr: Any = None
    producerState = "producing"

    def __init__(
        self, hostAddress: Any = None, peerAddress: Any = None, lenient: bool = False
    ) -> None:
        self.io = BytesIO()
        if hostAddress is not None:
            self.hostAddr = hostAddress
        if peerAddress is not None:
            self.peerAddr = peerAddress
        self.connected = True
        self._lenient = lenient

    def clear(self) -> None:
        """Discard the bytes written so far (a test helper, not a transport method)."""
        self.io = BytesIO()

    def value(self) -> bytes:
        """Return the bytes written since creation or the last :meth:`clear`."""
        return self.io.getvalue()

    def write(self, data: bytes) -> None:
        """Record ``data``; raises TypeError for anything but bytes."""
        _must_be_bytes(data)
        self.io.write(data)

    def writeSequence(self, data: Iterable[bytes]) -> None:
        """Record each item of ``data`` in order."""
        for chunk in data:
            self.write(chunk)

    def loseConnection(self) -> None:
        """Set ``disconnecting``; nothing else happens."""
        self.disconnecting = True

    def abortConnection(self) -> None:
        """Set ``disconnected`` and ``disconnecting``."""
        self.disconnected = True
        self.loseConnection()

    def getPeer(self) -> Any:
        """Return the peer address given at creation, or a fixed IPv4 one."""
        if self.peerAddr is None:
            return IPv4Address("TCP", "192.168.1.1", 54321)
        return self.peerAddr

    def getHost(self) -> Any:
        """Return the host address given at creation, or a fixed IPv4 one."""
        if self.hostAddr is None:
            return IPv4Address("TCP", "10.0.0.1", 12345)
        return self.hostAddr

    def registerProducer(self, producer: IProducer, streaming: bool) -> None:
        """Record the producer; raises RuntimeError if one is registered already."""
        if self.producer is not None:
            raise RuntimeError("Cannot register two producers")
        self.producer = producer
        self.streaming = streaming

    def unregisterProducer(self) -> None:
        """Forget the producer; raises RuntimeError if none is registered."""
        if self.producer is None:
            raise RuntimeError("Cannot unregister a producer unless one is registered")
        self.producer = None
        self.streaming = None

    def _check_can_produce(self) -> None:
        if self.disconnecting and not self._lenient:
            raise RuntimeError("Cannot resume producing after loseConnection")
        if self.producerState == "stopped":
            raise RuntimeError("Cannot resume a stopped producer")

    def pauseProducing(self) -> None:
        """Set ``producerState`` to ``"paused"``."""
        self._check_can_produce()
        self.producerState = "paused"

    def resumeProducing(self) -> None:
        """Set ``producerState`` to ``"producing"``."""
        self._check_can_produce()
        self.producerState = "producing"

    def stopProducing(self) -> None:
        """Set ``producerState`` to ``"stopped"``."""
        self.producerState = "stopped"


class StringTransportWithDisconnection(StringTransport):
    """A StringTransport whose ``loseConnection`` calls ``protocol.connectionLost``.

    Set ``transport.protocol`` before closing. The reason is
    ``Failure(ConnectionDone("Bye."))``, delivered once.
    """

    protocol: IProtocol

    def loseConnection(self) -> None:
        """Mark the transport closed and tell the protocol (first call only)."""
        self.disconnecting = True
        if self.connected:
            self.connected = False
            self.protocol.connectionLost(Failure(ConnectionDone("Bye.")))


class StringIOWithoutClosing(BytesIO):
    """A BytesIO whose ``close`` does nothing, so tests can read it afterwards."""

    def close(self) -> None:
        """Do nothing."""


# --- a fake reactor --------------------------------------------------------------------


class _FakePort:
    """A listening port that listens on nothing; returned by MemoryReactor."""

    def __init__(self, hostAddress: Any) -> None:
        self._hostAddress = hostAddress
        self.listening = True

    def startListening(self) -> None:
        """Mark the port listening."""
        self.listening = True

    def stopListening(self) -> Deferred[None]:
        """Mark the port closed; returns an already-fired Deferred."""
        self.listening = False
        return succeed(None)

    def getHost(self) -> Any:
        """Return the address given to ``listen*``."""
        return self._hostAddress


class _FakeConnector:
    """A connector that never connects; records ``stopConnecting``/``disconnect``."""

    def __init__(self, address: Any) -> None:
        self._address = address
        self.stoppedConnecting = False
        self._disconnected = False
        self.connectCount = 0

    def stopConnecting(self) -> None:
        """Record that the attempt was abandoned."""
        self.stoppedConnecting = True

    def disconnect(self) -> None:
        """Record the disconnect."""
        self._disconnected = True

    def connect(self) -> None:
        """Count a (re)connection attempt; nothing connects."""
        self.connectCount += 1

    def getDestination(self) -> Any:
        """Return the address being connected to."""
        return self._address


def _tcp_address(
    host: str, port: int, kind: Literal["TCP", "UDP"] = "TCP"
) -> IPv4Address | IPv6Address:
    # Host names never contain ':', so a colon means an IPv6 literal.
    return (IPv6Address if ":" in host else IPv4Address)(kind, host, port)


class MemoryReactor:
    """A fake reactor that records listen/connect calls and returns fake ports.

    Nothing connects: tests inspect the recorded calls and drive the factories
    themselves (``factory.buildProtocol(addr).makeConnection(StringTransport())``),
    or use :func:`connectedPair`.

    Attributes:
        tcpServers: ``(port, factory, backlog, interface)`` per ``listenTCP``.
        tcpClients: ``(host, port, factory, timeout, bindAddress)`` per ``connectTCP``.
        sslServers: ``(port, factory, contextFactory, backlog, interface)``.
        sslClients: ``(host, port, factory, contextFactory, timeout, bindAddress)``.
        unixServers: ``(address, factory, backlog, mode, wantPID)``.
        unixClients: ``(address, factory, timeout, checkPID)``.
        udpServers: ``(port, protocol, interface, maxPacketSize)`` per ``listenUDP``.
        connectors: The fake connectors handed to client factories, in order.
        running, hasRun, hasStopped, hasCrashed, hasInstalled: Lifecycle flags.
        whenRunningHooks: ``(callable, args, kw)`` queued by ``callWhenRunning``.
        triggers: ``{phase: {eventType: [(callable, args, kw), ...]}}``.
    """

    def __init__(self) -> None:
        self.hasInstalled = False
        self.running = False
        self.hasRun = False
        self.hasStopped = False
        self.hasCrashed = False
        self.whenRunningHooks: list[_Hook] = []
        self.triggers: dict[str, dict[str, list[Any]]] = {}
        self.tcpServers: list[tuple[int, IProtocolFactory, int, str]] = []
        self.tcpClients: list[tuple[str, int, IClientFactory, float, Any]] = []
        self.sslServers: list[tuple[int, IProtocolFactory, Any, int, str]] = []
        self.sslClients: list[tuple[str, int, IClientFactory, Any, float, Any]] = []
        self.unixServers: list[tuple[str, IProtocolFactory, int, int, int]] = []
        self.unixClients: list[tuple[str, IClientFactory, float, int]] = []
        self.udpServers: list[tuple[int, Any, str, int]] = []
        self.connectors: list[_FakeConnector] = []

    def install(self) -> None:
        """Record that the reactor was installed."""
        self.hasInstalled = True

    def run(self) -> None:
        """Run the ``callWhenRunning`` hooks, then stop at once."""
        assert not self.running, "MemoryReactor.run() called while running"
        self.running = True
        self.hasRun = True
        for func, args, kw in self.whenRunningHooks:
            func(*args, **kw)
        self.stop()

    def stop(self) -> None:
        """Mark the reactor stopped."""
        self.running = False
        self.hasStopped = True

    def crash(self) -> None:
        """Mark the reactor crashed (stopped without shutdown triggers)."""
        self.running = False
        self.hasCrashed = True

    def callWhenRunning(
        self, callable: Callable[..., object], *args: object, **kw: object
    ) -> None:
        """Call now if the reactor has run, else queue for :meth:`run`."""
        # run() stops at once, so "has ever run" stands in for "is running".
        if self.running or self.hasRun:
            callable(*args, **kw)
        else:
            self.whenRunningHooks.append((callable, args, kw))

    def addSystemEventTrigger(
        self, phase: str, eventType: str, callable: Callable[..., object], *args: object,
        **kw: object,
    ) -> tuple[str, str, Any]:
        """Record a trigger in ``self.triggers``; returns an id for removal."""
        entry = (callable, args, kw)
        self.triggers.setdefault(phase, {}).setdefault(eventType, []).append(entry)
        return (phase, eventType, entry)

    def removeSystemEventTrigger(self, triggerID: Any) -> None:
        """Remove a trigger recorded by :meth:`addSystemEventTrigger`."""
        phase, eventType, entry = triggerID
        self.triggers[phase][eventType].remove(entry)

    def listenTCP(
        self, port: int, factory: IProtocolFactory, backlog: int = 50, interface: str = ""
    ) -> _FakePort:
        """Record the call; returns a fake port on ``0.0.0.0`` (or ``interface`` if IPv6)."""
        self.tcpServers.append((port, factory, backlog, interface))
        host = interface if ":" in interface else "0.0.0.0"
        return _FakePort(_tcp_address(host, port))

    def connectTCP(
        self, host: str, port: int, factory: IClientFactory, timeout: float = 30,
        bindAddress: tuple[str, int] | None = None,
    ) -> _FakeConnector:
        """Record the call, tell the factory it started connecting; returns the connector."""
        self.tcpClients.append((host, port, factory, timeout, bindAddress))
        return self._connector(_tcp_address(host, port), factory)

    def listenSSL(
        self, port: int, factory: IProtocolFactory, contextFactory: Any, backlog: int = 50,
        interface: str = "",
    ) -> _FakePort:
        """Record the call; returns a fake port."""
        self.sslServers.append((port, factory, contextFactory, backlog, interface))
        return _FakePort(IPv4Address("TCP", "0.0.0.0", port))

    def connectSSL(
        self, host: str, port: int, factory: IClientFactory, contextFactory: Any,
        timeout: float = 30, bindAddress: tuple[str, int] | None = None,
    ) -> _FakeConnector:
        """Record the call; returns a fake connector."""
        self.sslClients.append((host, port, factory, contextFactory, timeout, bindAddress))
        return self._connector(_tcp_address(host, port), factory)

    def listenUNIX(
        self, address: str, factory: IProtocolFactory, backlog: int = 50, mode: int = 0o666,
        wantPID: int = 0,
    ) -> _FakePort:
        """Record the call; returns a fake port."""
        self.unixServers.append((address, factory, backlog, mode, wantPID))
        return _FakePort(UNIXAddress(address))

    def connectUNIX(
        self, address: str, factory: IClientFactory, timeout: float = 30, checkPID: int = 0
    ) -> _FakeConnector:
        """Record the call; returns a fake connector."""
        self.unixClients.append((address, factory, timeout, checkPID))
        return self._connector(UNIXAddress(address), factory)

    def listenUDP(
        self, port: int, protocol: Any, interface: str = "", maxPacketSize: int = 8192
    ) -> _FakePort:
        """Record the call; returns a fake port. The protocol is not started."""
        self.udpServers.append((port, protocol, interface, maxPacketSize))
        return _FakePort(_tcp_address(interface or "0.0.0.0", port, "UDP"))

    def _connector(self, address: Any, factory: IClientFactory) -> _FakeConnector:
        connector = _FakeConnector(address)
        factory.startedConnecting(connector)
        self.connectors.append(connector)
        return connector


class MemoryReactorClock(MemoryReactor, Clock):
    """A MemoryReactor that is also a :class:`Clock`."""

    def __init__(self) -> None:
        MemoryReactor.__init__(self)
        Clock.__init__(self)


# --- in-memory loopback ----------------------------------------------------------------


class _LoopbackTransport:
    """One end of a :func:`connectedPair` connection.

    Writes queue until the pump moves them. As with a real transport,
    ``loseConnection`` and ``loseWriteConnection`` wait until queued bytes are
    delivered and a registered producer has unregistered, and
    ``pauseProducing`` holds incoming bytes back until ``resumeProducing``.
    """

    disconnecting = disconnected = aborted = writeClosed = False
    producer: IProducer | None = None
    streamingProducer = False

    def __init__(self, protocol: IProtocol, isServer: bool, host: Any, peer: Any) -> None:
        self.protocol = protocol
        self.isServer = isServer
        self.hostAddress = host
        self.peerAddress = peer
        self.connected = True
        self.paused = self.tcpNoDelay = self.tcpKeepAlive = self._half_closing = False
        self._outgoing: list[bytes] = []
        self._incoming: list[bytes] = []

    def __repr__(self) -> str:
        side = "server" if self.isServer else "client"
        return f"<_LoopbackTransport {side} {type(self.protocol).__name__}>"

    def write(self, data: bytes) -> None:
        """Queue bytes for the peer; dropped once the connection (or our half) is closed."""
        _must_be_bytes(data)
        if self.connected and not self.writeClosed and data:
            self._outgoing.append(bytes(data))

    def writeSequence(self, data: Iterable[bytes]) -> None:
        """Queue several byte strings."""
        for chunk in data:
            self.write(chunk)

    def loseConnection(self) -> None:
        """Close once queued bytes are delivered and any producer is done."""
        self.disconnecting = True

    def loseWriteConnection(self) -> None:
        """Half-close: the peer reads end-of-stream once queued bytes are delivered."""
        self._half_closing = True

    def abortConnection(self) -> None:
        """Close at the next pump, discarding bytes not yet delivered."""
        self.aborted = self.disconnecting = True
        self._outgoing.clear()
        self._incoming.clear()

    def getPeer(self) -> Any:
        """Return the other end's address."""
        return self.peerAddress

    def getHost(self) -> Any:
        """Return this end's address."""
        return self.hostAddress

    def setTcpNoDelay(self, enabled: bool) -> None:
        """Record the setting."""
        self.tcpNoDelay = enabled

    def getTcpNoDelay(self) -> bool:
        """Return the recorded setting."""
        return self.tcpNoDelay

    def setTcpKeepAlive(self, enabled: bool) -> None:
        """Record the setting."""
        self.tcpKeepAlive = enabled

    def getTcpKeepAlive(self) -> bool:
        """Return the recorded setting."""
        return self.tcpKeepAlive

    def registerProducer(self, producer: IProducer, streaming: bool) -> None:
        """Register a producer; a pull producer is asked for data on every pump."""
        if self.producer is not None:
            raise RuntimeError("Cannot register two producers")
        self.producer = producer
        self.streamingProducer = streaming
        if not streaming:
            producer.resumeProducing()  # type: ignore[attr-defined]

    def unregisterProducer(self) -> None:
        """Forget the producer."""
        self.producer = None

    def pauseProducing(self) -> None:
        """Stop delivering incoming bytes to the protocol."""
        self.paused = True

    def resumeProducing(self) -> None:
        """Deliver incoming bytes again (at the next pump)."""
        self.paused = False

    def stopProducing(self) -> None:
        """Close the connection."""
        self.loseConnection()

    def _lost(self, reason: BaseException) -> None:
        if self.connected:
            self.connected = False
            self.disconnected = self.disconnecting = True
            self.protocol.connectionLost(Failure(reason))


class IOPump:
    """Moves bytes between the two ends of a :func:`connectedPair`.

    Attributes:
        server, client: The two protocols.
        serverIO, clientIO: Their transports.
        clock: Advanced by 0 before each pump, so ``callLater(0, ...)`` work runs.
    """

    def __init__(
        self,
        client: IProtocol,
        server: IProtocol,
        clientIO: _LoopbackTransport,
        serverIO: _LoopbackTransport,
        clock: Clock | None = None,
    ) -> None:
        self.client = client
        self.server = server
        self.clientIO = clientIO
        self.serverIO = serverIO
        self.clock = Clock() if clock is None else clock

    def pump(self, advanceClock: bool = True) -> bool:
        """Make one round of progress; return True if anything happened.

        A round: run due clock calls, poll pull producers, move queued bytes to
        the other side, deliver them to unpaused protocols, and once a closing
        side has nothing left to send, report ``connectionLost`` to both.
        """
        if advanceClock:
            self.clock.advance(0)
        ends = (self.clientIO, self.serverIO)
        for end in ends:
            if end.producer is not None and not end.streamingProducer and end.connected:
                end.producer.resumeProducing()  # type: ignore[attr-defined]
        moved = False
        for source, target in ((self.clientIO, self.serverIO), (self.serverIO, self.clientIO)):
            if source._outgoing:
                moved = True
                target._incoming.extend(source._outgoing)
                source._outgoing.clear()
        for end in ends:
            if end._incoming and not end.paused and end.connected:
                moved = True
                data = b"".join(end._incoming)
                end._incoming.clear()
                end.protocol.dataReceived(data)
        return self._maybe_close() or moved

    def _maybe_close(self) -> bool:
        # At most one close event per round, so each is observable by pump().
        client, server = self.clientIO, self.serverIO
        for closer, peer in ((client, server), (server, client)):
            if not closer.connected:
                continue
            if closer.aborted:
                closer._lost(ConnectionAborted())
                peer._lost(ConnectionLost("Connection reset by peer"))
                return True
            if closer._outgoing or peer._incoming or closer.producer is not None:
                continue  # still draining
            if closer.disconnecting or (closer.writeClosed and peer.writeClosed):
                closer._lost(ConnectionDone())
                peer._lost(ConnectionDone())
                return True
            if closer._half_closing and not closer.writeClosed:
                closer.writeClosed = True
                notify = getattr(closer.protocol, "writeConnectionLost", None)
                if notify is not None:
                    notify()
                read_lost = getattr(peer.protocol, "readConnectionLost", None)
                if read_lost is not None:
                    read_lost()
                else:
                    # Like a real transport: end-of-stream closes a protocol
                    # that does not implement IHalfCloseableProtocol.
                    peer.loseConnection()
                return True
        return False

    def flush(self, advanceClock: bool = True) -> bool:
        """Pump until nothing happens; return True if anything did.

        Raises:
            RuntimeError: Still busy after 1000 rounds (the protocols ping-pong
                forever).
        """
        result = False
        for _ in range(1000):
            if not self.pump(advanceClock):
                return result
            result = True
        raise RuntimeError("IOPump.flush: still busy after 1000 rounds")


def connectedPair(
    serverProtocol: IProtocol,
    clientProtocol: IProtocol,
    *,
    clock: Clock | None = None,
    greet: bool = True,
    serverAddress: Any = None,
    clientAddress: Any = None,
) -> IOPump:
    """Connect two protocols through in-memory transports.

    The server is connected first (``makeConnection``), then the client; with
    ``greet`` the pump is flushed once so greetings have been exchanged.

    Args:
        serverProtocol: The accepting side.
        clientProtocol: The connecting side.
        clock: Advanced by 0 on every pump; a new Clock by default.
        greet: Flush once before returning.
        serverAddress: The server's address (default ``127.0.0.1:8080``).
        clientAddress: The client's address (default ``127.0.0.1:54321``).

    Returns:
        The :class:`IOPump`; call ``flush()`` after each action.

    Example:
        >>> from protocols.basic import LineReceiver
        >>> class Echo(LineReceiver):
        ...     def lineReceived(self, line: bytes) -> None: self.sendLine(line)
        >>> class Client(LineReceiver):
        ...     def lineReceived(self, line: bytes) -> None: self.got = line
        >>> client = Client()
        >>> pump = connectedPair(Echo(), client)
        >>> client.sendLine(b"hi"); _ = pump.flush(); client.got
        b'hi'
    """
    server_address = serverAddress or IPv4Address("TCP", "127.0.0.1", 8080)
    client_address = clientAddress or IPv4Address("TCP", "127.0.0.1", 54321)
    serverIO = _LoopbackTransport(serverProtocol, True, server_address, client_address)
    clientIO = _LoopbackTransport(clientProtocol, False, client_address, server_address)
    serverProtocol.makeConnection(serverIO)
    clientProtocol.makeConnection(clientIO)
    pump = IOPump(clientProtocol, serverProtocol, clientIO, serverIO, clock)
    if greet:
        pump.flush()
    return pump


def connectedServerAndClient(
    ServerClass: Callable[[], _S],
    ClientClass: Callable[[], _C],
    greet: bool = True,
    clock: Clock | None = None,
) -> tuple[_C, _S, IOPump]:
    """Build a server and a client protocol and connect them (``iosim``'s helper).

    Returns:
        ``(client, server, pump)``.
    """
    client, server = ClientClass(), ServerClass()
    return client, server, connectedPair(server, client, greet=greet, clock=clock)
