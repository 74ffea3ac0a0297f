"""protocols.policies: wrappers, timeouts, connection limits and throttling.

Logic is tested with Clock and StringTransport; a few tests run on real
sockets on every backend (the ``reactor`` fixture).
"""

from __future__ import annotations

import doctest
from typing import Any

import pytest

import reactor as reactor_module
from deferred import Failure
from protocols import ClientFactory, Factory, Protocol, policies
from protocols.policies import (
    ConnectionLimits,
    LimitConnectionsByPeer,
    LimitTotalConnectionsFactory,
    ProtocolWrapper,
    Refuse,
    ThrottlingFactory,
    TimeoutFactory,
    TimeoutMixin,
    TimeoutProtocol,
    WrappingFactory,
    find_clock,
)
from reactor.address import IPv4Address
from reactor.error import ConnectionDone
from reactor.testing import (
    Clock,
    MemoryReactorClock,
    StringTransport,
    StringTransportWithDisconnection,
    connectedPair,
)
from tests.reactor.conftest import Echo, Recorder, RecordingClientFactory

# --- helpers ---------------------------------------------------------------------------


class Events(Protocol):
    """Records what happens to it."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        self.data = b""

    def connectionMade(self) -> None:
        self.events.append("made")

    def dataReceived(self, data: bytes) -> None:
        self.events.append("data")
        self.data += data

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.events.append(("lost", reason))


class HalfCloser(Events):
    def readConnectionLost(self) -> None:
        self.events.append("read lost")

    def writeConnectionLost(self) -> None:
        self.events.append("write lost")


class RefusingFactory(Factory[Any]):
    def buildProtocol(self, addr: Any) -> None:
        return None


class Lossy(StringTransportWithDisconnection):
    """A StringTransport whose loseConnection reports connectionLost at once."""


def connect(factory: Any, addr: Any = None, transport: Any = None) -> tuple[Any, Any]:
    """Build a protocol from ``factory`` and connect it to a (given or new) transport."""
    proto = factory.buildProtocol(addr)
    transport = transport if transport is not None else StringTransport()
    if isinstance(transport, StringTransportWithDisconnection):
        transport.protocol = proto
    proto.makeConnection(transport)
    return proto, transport


def peer(host: str, port: int = 5000) -> IPv4Address:
    return IPv4Address("TCP", host, port)


class Producer:
    """A push or pull producer that records calls; a pull one writes when asked."""

    def __init__(self, consumer: Any = None) -> None:
        self.calls: list[str] = []
        self.consumer = consumer

    def pauseProducing(self) -> None:
        self.calls.append("pause")

    def resumeProducing(self) -> None:
        self.calls.append("resume")
        if self.consumer is not None:
            self.consumer.write(b"chunk")

    def stopProducing(self) -> None:
        self.calls.append("stop")


def test_module_doctests() -> None:
    assert doctest.testmod(policies).failed == 0


# --- find_clock --------------------------------------------------------------------------


def test_find_clock_order() -> None:
    own, factory_clock, transport_reactor, factory_reactor = Clock(), Clock(), Clock(), Clock()
    proto: Any = Protocol()
    proto.factory = Factory()
    proto.transport = StringTransport()
    proto.factory.reactor = factory_reactor
    assert find_clock(proto) is factory_reactor
    proto.transport.reactor = transport_reactor
    assert find_clock(proto) is transport_reactor
    proto.factory.clock = factory_clock
    assert find_clock(proto) is factory_clock
    proto.clock = own
    assert find_clock(proto) is own


def test_find_clock_defaults_to_the_installed_reactor_lazily() -> None:
    clock = Clock()
    with reactor_module.installed(clock):
        assert find_clock(Protocol()).callLater(1, lambda: None) in clock.getDelayedCalls()


# --- ProtocolWrapper / WrappingFactory ---------------------------------------------------


def test_wrapping_factory_builds_wrapped_protocols() -> None:
    inner = Factory.forProtocol(Events)
    factory = WrappingFactory(inner)
    wrapper = factory.buildProtocol(peer("1.2.3.4"))
    assert isinstance(wrapper, ProtocolWrapper)
    assert isinstance(wrapper.wrappedProtocol, Events)
    assert wrapper.wrappedProtocol.factory is inner
    assert wrapper.factory is factory


def test_wrapping_factory_passes_a_refusal_on() -> None:
    assert WrappingFactory(RefusingFactory()).buildProtocol(None) is None


def test_wrapper_connects_and_registers() -> None:
    factory = WrappingFactory(Factory.forProtocol(Events))
    wrapper, transport = connect(factory)
    inner = wrapper.wrappedProtocol
    assert inner.transport is wrapper and wrapper.transport is transport
    assert inner.events == ["made"]
    assert list(factory.protocols) == [wrapper]
    wrapper.dataReceived(b"abc")
    assert inner.data == b"abc"


def test_wrapper_forwards_the_transport_api() -> None:
    wrapper, transport = connect(WrappingFactory(Factory.forProtocol(Events)))
    t = wrapper.wrappedProtocol.transport
    t.write(b"a")
    t.writeSequence([b"b", b"c"])
    assert transport.value() == b"abc"
    assert t.getPeer() == transport.getPeer() and t.getHost() == transport.getHost()
    producer = Producer()
    t.registerProducer(producer, True)
    assert transport.producer is producer and transport.streaming
    t.unregisterProducer()
    assert transport.producer is None
    # Anything else is the transport's own.
    t.pauseProducing()
    assert transport.producerState == "paused"
    assert t.producerState == "paused"
    with pytest.raises(AttributeError):
        t.noSuchThing
    assert not t.disconnecting
    t.loseConnection()
    assert transport.disconnecting and t.disconnecting


def test_wrapper_abort_and_stop_consuming() -> None:
    wrapper, transport = connect(WrappingFactory(Factory.forProtocol(Events)))
    wrapper.abortConnection()
    assert transport.disconnected and wrapper.disconnecting
    wrapper2, transport2 = connect(WrappingFactory(Factory.forProtocol(Events)))
    wrapper2.registerProducer(Producer(), True)
    wrapper2.stopConsuming()
    assert transport2.producer is None and transport2.disconnecting


def test_wrapper_before_connection_has_no_transport_attributes() -> None:
    wrapper = ProtocolWrapper(WrappingFactory(Factory()), Events())
    with pytest.raises(AttributeError):
        wrapper.pauseProducing
    assert not wrapper.disconnecting


def test_wrapper_is_half_closeable_only_if_the_wrapped_protocol_is() -> None:
    plain, _ = connect(WrappingFactory(Factory.forProtocol(Events)))
    assert not hasattr(plain, "readConnectionLost")
    half, _ = connect(WrappingFactory(Factory.forProtocol(HalfCloser)))
    half.readConnectionLost()
    half.writeConnectionLost()
    assert half.wrappedProtocol.events == ["made", "read lost", "write lost"]


def test_wrapper_connection_lost_unregisters_and_breaks_the_cycle() -> None:
    factory = WrappingFactory(Factory.forProtocol(Events))
    wrapper, _transport = connect(factory, transport=Lossy())
    inner = wrapper.wrappedProtocol
    wrapper.wrappedProtocol.transport.loseConnection()
    assert inner.events[0] == "made" and inner.events[1][0] == "lost"
    assert inner.events[1][1].check(ConnectionDone)
    assert factory.protocols == {}
    assert wrapper.wrappedProtocol is None


def test_wrapping_factory_forwards_factory_events() -> None:
    calls: list[Any] = []

    class Inner(ClientFactory[Any]):
        noisy = False

        def startFactory(self) -> None:
            calls.append("start")

        def stopFactory(self) -> None:
            calls.append("stop")

        def startedConnecting(self, connector: Any) -> None:
            calls.append(("connecting", connector))

        def clientConnectionFailed(self, connector: Any, reason: Any) -> None:
            calls.append(("failed", reason))

        def clientConnectionLost(self, connector: Any, reason: Any) -> None:
            calls.append(("lost", reason))

    factory = WrappingFactory(Inner())
    factory.noisy = False
    factory.doStart()
    factory.startedConnecting("c")  # type: ignore[arg-type]
    factory.clientConnectionFailed("c", "why")  # type: ignore[arg-type]
    factory.clientConnectionLost("c", "why")  # type: ignore[arg-type]
    factory.doStop()
    assert calls == ["start", ("connecting", "c"), ("failed", "why"), ("lost", "why"), "stop"]
    assert factory.numPorts == 0


def test_log_prefixes_name_the_wrapped_protocol_and_factory() -> None:
    factory = WrappingFactory(Factory.forProtocol(Events))
    assert factory.logPrefix() == "Factory (WrappingFactory)"
    wrapper = factory.buildProtocol(None)
    assert wrapper is not None
    assert wrapper.logPrefix() == "Events (ProtocolWrapper)"


def test_wrapped_echo_over_a_loopback_pair() -> None:
    server = WrappingFactory(Factory.forProtocol(Echo)).buildProtocol(None)
    client = Events()
    assert server is not None
    pump = connectedPair(server, client)
    client.transport.write(b"ping")  # type: ignore[union-attr]
    pump.flush()
    assert client.data == b"ping"


# --- TimeoutMixin --------------------------------------------------------------------------


class Idle(TimeoutMixin, Events):
    def __init__(self) -> None:
        super().__init__()
        self.timeouts = 0

    def dataReceived(self, data: bytes) -> None:
        self.resetTimeout()
        super().dataReceived(data)

    def timeoutConnection(self) -> None:
        self.timeouts += 1
        super().timeoutConnection()


def idle(clock: Clock) -> tuple[Idle, StringTransport]:
    proto, transport = Idle(), StringTransport()
    proto.clock = clock
    proto.makeConnection(transport)
    return proto, transport


def test_set_timeout_returns_the_previous_period(clock: Clock) -> None:
    proto, _ = idle(clock)
    assert proto.setTimeout(5) is None
    assert proto.setTimeout(3) == 5
    assert proto.setTimeout(None) == 3
    assert clock.getDelayedCalls() == []


def test_timeout_fires_after_the_period_of_inactivity(clock: Clock) -> None:
    proto, transport = idle(clock)
    proto.setTimeout(10)
    clock.advance(9.9)
    assert proto.timeouts == 0
    proto.dataReceived(b"x")
    clock.advance(9.9)
    assert proto.timeouts == 0 and not transport.disconnecting
    clock.advance(0.1)
    assert proto.timeouts == 1 and transport.disconnecting
    proto.resetTimeout()  # after firing: harmless
    assert proto.setTimeout(None) == 10  # nothing left to cancel


def test_changing_the_period_restarts_the_countdown(clock: Clock) -> None:
    proto, _ = idle(clock)
    proto.setTimeout(10)
    clock.advance(8)
    proto.setTimeout(5)
    clock.advance(4.9)
    assert proto.timeouts == 0
    clock.advance(0.1)
    assert proto.timeouts == 1


def test_set_timeout_none_cancels(clock: Clock) -> None:
    proto, transport = idle(clock)
    proto.setTimeout(1)
    proto.setTimeout(None)
    clock.advance(10)
    assert proto.timeouts == 0 and not transport.disconnecting
    proto.resetTimeout()  # no timeout: nothing to do


def test_timeout_mixin_uses_the_transport_reactor() -> None:
    clock = Clock()
    proto, transport = Idle(), StringTransport()
    transport.reactor = clock  # type: ignore[attr-defined]
    proto.makeConnection(transport)
    proto.setTimeout(1)
    clock.advance(1)
    assert transport.disconnecting


def test_timeout_mixin_falls_back_to_the_installed_reactor() -> None:
    clock = MemoryReactorClock()
    with reactor_module.installed(clock):
        proto, transport = Idle(), StringTransport()
        proto.makeConnection(transport)
        proto.setTimeout(2)
    clock.advance(2)
    assert transport.disconnecting


def test_timeout_mixin_call_later_can_be_replaced_twisted_style(clock: Clock) -> None:
    proto, transport = Idle(), StringTransport()
    proto.callLater = clock.callLater  # type: ignore[method-assign, assignment]
    proto.makeConnection(transport)
    proto.setTimeout(1)
    clock.advance(1)
    assert proto.timeouts == 1


# --- TimeoutFactory / TimeoutProtocol ------------------------------------------------------


def test_timeout_factory_closes_idle_connections(clock: Clock) -> None:
    factory = TimeoutFactory(Factory.forProtocol(Events), timeoutPeriod=3, clock=clock)
    wrapper, transport = connect(factory, transport=Lossy())
    assert isinstance(wrapper, TimeoutProtocol)
    assert wrapper.timeoutPeriod == 3
    clock.advance(2)
    wrapper.dataReceived(b"in")
    clock.advance(2)
    wrapper.wrappedProtocol.transport.write(b"out")
    clock.advance(2)
    wrapper.wrappedProtocol.transport.writeSequence([b"more"])
    clock.advance(2.9)
    assert transport.connected
    inner = wrapper.wrappedProtocol
    clock.advance(0.1)
    assert not transport.connected
    assert inner.events[-1][0] == "lost"
    assert clock.getDelayedCalls() == []
    assert transport.value() == b"outmore"


def test_timeout_is_cancelled_when_the_connection_is_lost(clock: Clock) -> None:
    factory = TimeoutFactory(Factory.forProtocol(Events), timeoutPeriod=3, clock=clock)
    _wrapper, transport = connect(factory, transport=Lossy())
    transport.loseConnection()
    assert clock.getDelayedCalls() == []


def test_timeout_is_cancelled_when_connection_made_closes_at_once(clock: Clock) -> None:
    class Quitter(Events):
        def connectionMade(self) -> None:
            self.transport.loseConnection()  # type: ignore[union-attr]

    factory = TimeoutFactory(Factory.forProtocol(Quitter), timeoutPeriod=3, clock=clock)
    connect(factory, transport=Lossy())
    assert clock.getDelayedCalls() == []


def test_timeout_factory_without_period_never_times_out(clock: Clock) -> None:
    factory = TimeoutFactory(Factory.forProtocol(Events), timeoutPeriod=None, clock=clock)
    wrapper, _transport = connect(factory)
    assert clock.getDelayedCalls() == []
    wrapper.cancelTimeout()
    assert wrapper.timeoutPeriod is None


def test_timeout_protocol_cancel_keeps_the_period_and_set_restarts(clock: Clock) -> None:
    factory = TimeoutFactory(Factory.forProtocol(Events), timeoutPeriod=3, clock=clock)
    wrapper, transport = connect(factory)
    wrapper.cancelTimeout()
    assert wrapper.timeoutPeriod == 3 and clock.getDelayedCalls() == []
    wrapper.setTimeout(1)
    clock.advance(1)
    assert transport.disconnecting


def test_timeout_factory_refusal_and_reactor_of_the_transport() -> None:
    assert TimeoutFactory(RefusingFactory()).buildProtocol(None) is None
    clock = Clock()
    transport = StringTransport()
    transport.reactor = clock  # type: ignore[attr-defined]
    connect(TimeoutFactory(Factory.forProtocol(Events), timeoutPeriod=1), transport=transport)
    clock.advance(1)
    assert transport.disconnecting


def test_timeout_factory_call_later_uses_its_clock(clock: Clock) -> None:
    factory = TimeoutFactory(Factory.forProtocol(Events), clock=clock)
    call = factory.callLater(1, lambda: None)
    assert call in clock.getDelayedCalls()


# --- connection limits -------------------------------------------------------------------


def test_per_peer_limit_refuses_politely_and_frees_on_close() -> None:
    inner = Factory.forProtocol(Events)
    limits = ConnectionLimits(inner, maxConnectionsPerPeer=2, overflowMessage=b"busy\r\n")
    _first, t1 = connect(limits, peer("1.1.1.1", 1), Lossy())
    connect(limits, peer("1.1.1.1", 2))
    assert limits.peerConnections == {"1.1.1.1": 2} and limits.connectionCount == 2
    refused, transport = connect(limits, peer("1.1.1.1", 3))
    assert isinstance(refused, Refuse)
    assert transport.value() == b"busy\r\n" and transport.disconnecting
    other, _ = connect(limits, peer("2.2.2.2"))
    assert isinstance(other, ProtocolWrapper)
    assert limits.peerConnections == {"1.1.1.1": 2, "2.2.2.2": 1}
    t1.loseConnection()
    assert limits.peerConnections == {"1.1.1.1": 1, "2.2.2.2": 1}
    assert isinstance(connect(limits, peer("1.1.1.1", 4))[0], ProtocolWrapper)


def test_total_limit() -> None:
    built: list[Any] = []

    class Counting(Factory[Any]):
        protocol = Events

        def buildProtocol(self, addr: Any) -> Any:
            built.append(addr)
            return super().buildProtocol(addr)

    limits = ConnectionLimits(Counting(), connectionLimit=2)
    connect(limits, peer("1.1.1.1"))
    _, t2 = connect(limits, peer("2.2.2.2"), Lossy())
    refused, transport = connect(limits, peer("3.3.3.3"))
    assert isinstance(refused, Refuse)
    # no message by default; the wrapped factory never heard of the refusal
    assert transport.value() == b"" and transport.disconnecting
    assert len(built) == 2 and limits.connectionCount == 2
    t2.loseConnection()
    assert limits.connectionCount == 1
    assert isinstance(connect(limits, peer("3.3.3.3"))[0], ProtocolWrapper)


def test_refused_connections_do_not_count() -> None:
    limits = ConnectionLimits(Factory.forProtocol(Events), connectionLimit=1)
    connect(limits, peer("1.1.1.1"))
    _, refused = connect(limits, peer("1.1.1.1"), Lossy())
    assert not refused.connected
    assert limits.connectionCount == 1 and limits.peerConnections == {"1.1.1.1": 1}


def test_only_made_connections_count() -> None:
    limits = ConnectionLimits(Factory.forProtocol(Events), connectionLimit=1)
    limits.buildProtocol(peer("1.1.1.1"))  # never connected (reset before it started)
    assert limits.connectionCount == 0
    assert isinstance(connect(limits, peer("1.1.1.1"))[0], ProtocolWrapper)


def test_overflow_protocol_none_drops() -> None:
    limits = ConnectionLimits(Factory.forProtocol(Events), connectionLimit=0)
    limits.overflowProtocol = None
    assert limits.buildProtocol(peer("1.1.1.1")) is None


def test_limits_refused_by_the_wrapped_factory_are_not_counted() -> None:
    limits = ConnectionLimits(RefusingFactory(), connectionLimit=1)
    assert limits.buildProtocol(peer("1.1.1.1")) is None
    assert limits.connectionCount == 0


def test_limit_connections_by_peer_defaults_to_five() -> None:
    limits = LimitConnectionsByPeer(Factory.forProtocol(Events))
    for port in range(5):
        assert isinstance(connect(limits, peer("9.9.9.9", port))[0], ProtocolWrapper)
    assert isinstance(connect(limits, peer("9.9.9.9", 99))[0], Refuse)


def test_limit_total_connections_factory_twisted_style() -> None:
    class Limited(LimitTotalConnectionsFactory):
        protocol = Events
        connectionLimit = 1
        overflowMessage = b"full\r\n"

    factory = Limited()
    wrapper, t1 = connect(factory, transport=Lossy())
    assert isinstance(wrapper, ProtocolWrapper) and wrapper.wrappedProtocol.factory is factory
    assert factory.connectionCount == 1
    refused, t2 = connect(factory)
    assert isinstance(refused, Refuse) and t2.value() == b"full\r\n"
    t1.loseConnection()
    assert factory.connectionCount == 0
    factory.overflowProtocol = None
    connect(factory)
    assert factory.buildProtocol(None) is None


def test_unlimited_limit_total_connections_factory() -> None:
    class Unlimited(LimitTotalConnectionsFactory):
        protocol = Events

    factory = Unlimited()
    for _ in range(10):
        connect(factory)
    assert factory.connectionCount == 10


# --- throttling --------------------------------------------------------------------------


def throttled(clock: Clock, **kwargs: Any) -> tuple[ThrottlingFactory, Any, StringTransport]:
    factory = ThrottlingFactory(Factory.forProtocol(Events), clock=clock, **kwargs)
    proto, transport = connect(factory, transport=Lossy())
    return factory, proto, transport


def test_reads_under_the_limit_are_not_throttled(clock: Clock) -> None:
    factory, proto, transport = throttled(clock, readLimit=100)
    proto.dataReceived(b"x" * 100)
    clock.advance(1)
    assert transport.producerState == "producing"
    assert factory.readThisSecond == 0
    assert proto.wrappedProtocol.data == b"x" * 100


def test_reads_over_the_limit_pause_for_the_excess(clock: Clock) -> None:
    factory, proto, transport = throttled(clock, readLimit=10)
    proto.dataReceived(b"x" * 25)
    assert factory.readThisSecond == 25
    clock.advance(1)
    assert transport.producerState == "paused"  # 2.5x the limit: 1.5 s
    clock.advance(1.4)
    assert transport.producerState == "paused"
    clock.advance(0.1)
    assert transport.producerState == "producing"


def test_unthrottling_reads_respects_the_protocols_own_pause(clock: Clock) -> None:
    _factory, proto, transport = throttled(clock, readLimit=10)
    proto.dataReceived(b"x" * 20)
    clock.advance(1)
    proto.wrappedProtocol.transport.pauseProducing()
    clock.advance(1)  # throttle lifts, but the protocol still wants a pause
    assert transport.producerState == "paused"
    proto.wrappedProtocol.transport.resumeProducing()
    assert transport.producerState == "producing"
    # and a protocol's resume during a throttle does not lift the throttle
    proto.dataReceived(b"x" * 20)
    clock.advance(1)
    proto.wrappedProtocol.transport.resumeProducing()
    assert transport.producerState == "paused"


def test_writes_over_the_limit_are_held_then_sent_in_order(clock: Clock) -> None:
    _factory, proto, transport = throttled(clock, writeLimit=10)
    t = proto.wrappedProtocol.transport
    t.write(b"a" * 30)
    assert transport.value() == b"a" * 30
    clock.advance(1)  # 3x the limit: hold writes for 2 s
    t.write(b"b")
    t.writeSequence([b"c", b"d"])
    assert transport.value() == b"a" * 30
    clock.advance(2)
    assert transport.value() == b"a" * 30 + b"bcd"
    t.write(b"e")
    assert transport.value().endswith(b"bcde")


def test_lose_connection_waits_for_held_writes(clock: Clock) -> None:
    _factory, proto, transport = throttled(clock, writeLimit=10)
    t = proto.wrappedProtocol.transport
    t.write(b"a" * 30)
    clock.advance(1)
    t.write(b"last")
    t.loseConnection()
    t.write(b"ignored")
    assert transport.connected and t.disconnecting
    clock.advance(2)
    assert transport.value().endswith(b"last")
    assert not transport.connected


def test_push_producer_paused_by_throttle_and_transport_independently(clock: Clock) -> None:
    _factory, proto, transport = throttled(clock, writeLimit=10)
    producer = Producer()
    proto.wrappedProtocol.transport.registerProducer(producer, True)
    proxy: Any = transport.producer
    assert proxy is not None and proxy is not producer and transport.streaming
    assert proto.producer is producer
    proto.wrappedProtocol.transport.write(b"a" * 30)
    clock.advance(1)
    assert producer.calls == ["pause"]
    proxy.pauseProducing()  # the transport's buffer fills too
    clock.advance(2)  # throttle lifts; the transport still holds it
    assert producer.calls == ["pause"]
    proxy.resumeProducing()
    assert producer.calls == ["pause", "resume"]
    proxy.pauseProducing()
    proxy.resumeProducing()
    assert producer.calls == ["pause", "resume", "pause", "resume"]
    proxy.stopProducing()
    assert producer.calls[-1] == "stop"


class FullTransport(Lossy):
    """Pauses its push producer after every write, as a transport with a full buffer would."""

    def write(self, data: bytes) -> None:
        super().write(data)
        if self.producer is not None and self.streaming:
            self.producer.pauseProducing()  # type: ignore[attr-defined]

    def drain(self) -> None:
        assert self.producer is not None
        self.producer.resumeProducing()  # type: ignore[attr-defined]


def test_pull_producer_is_asked_once_per_turn_unless_throttled(clock: Clock) -> None:
    factory = ThrottlingFactory(Factory.forProtocol(Events), writeLimit=10, clock=clock)
    proto, transport = connect(factory, transport=FullTransport())
    t = proto.wrappedProtocol.transport
    producer = Producer(t)
    t.registerProducer(producer, False)
    assert transport.streaming  # the proxy is a push producer to the transport
    clock.advance(0)
    assert producer.calls == ["resume"] and transport.value() == b"chunk"
    clock.advance(0)  # the transport paused the proxy: not asked again
    assert producer.calls == ["resume"]
    transport.drain()
    clock.advance(0)
    assert producer.calls == ["resume", "resume"]
    clock.advance(1)  # 10 bytes written: not over the limit
    transport.drain()
    t.write(b"x" * 20)
    clock.advance(1)  # over the limit: held for 1 s, and not asked
    transport.drain()
    asked = len(producer.calls)
    clock.advance(0.5)
    assert len(producer.calls) == asked
    clock.advance(0.5)  # the throttle lifts: asked again
    assert len(producer.calls) == asked + 1
    t.unregisterProducer()
    assert transport.producer is None
    clock.advance(0)
    assert len(producer.calls) == asked + 1


def test_producer_unregistered_during_throttle(clock: Clock) -> None:
    _factory, proto, _transport = throttled(clock, writeLimit=10)
    t = proto.wrappedProtocol.transport
    producer = Producer()
    t.registerProducer(producer, True)
    t.write(b"x" * 30)
    clock.advance(1)
    t.unregisterProducer()
    clock.advance(2)
    assert producer.calls == ["pause"]


def test_max_connection_count(clock: Clock) -> None:
    factory = ThrottlingFactory(Factory.forProtocol(Events), maxConnectionCount=1, clock=clock)
    connect(factory)
    assert factory.connectionCount == 1
    assert factory.buildProtocol(None) is None


def test_checks_stop_with_the_last_connection(clock: Clock) -> None:
    factory, proto, transport = throttled(clock, readLimit=10, writeLimit=10)
    assert len(clock.getDelayedCalls()) == 2
    proto.dataReceived(b"x" * 30)
    proto.wrappedProtocol.transport.write(b"x" * 30)
    clock.advance(1)
    assert len(clock.getDelayedCalls()) == 4
    transport.loseConnection()
    assert clock.getDelayedCalls() == []
    assert factory.connectionCount == 0
    assert not factory.readsThrottled and not factory.writesThrottled


def test_a_connection_made_during_a_throttle_is_throttled(clock: Clock) -> None:
    factory, proto, _transport = throttled(clock, readLimit=10, writeLimit=10)
    proto.dataReceived(b"x" * 30)
    proto.wrappedProtocol.transport.write(b"x" * 30)
    clock.advance(1)
    late, late_transport = connect(factory)
    assert late_transport.producerState == "paused"
    late.wrappedProtocol.transport.write(b"held")
    assert late_transport.value() == b""
    clock.advance(2)
    assert late_transport.producerState == "producing"
    assert late_transport.value() == b"held"


def test_throttling_clock_defaults_to_the_first_transports_reactor() -> None:
    clock = Clock()
    factory = ThrottlingFactory(Factory.forProtocol(Events), readLimit=10)
    transport = StringTransport()
    transport.reactor = clock  # type: ignore[attr-defined]
    proto, _ = connect(factory, transport=transport)
    assert factory.clock is clock and len(clock.getDelayedCalls()) == 1
    proto.dataReceived(b"x" * 20)
    clock.advance(1)
    assert transport.producerState == "paused"


def test_throttling_with_no_limits_schedules_nothing(clock: Clock) -> None:
    _factory, proto, transport = throttled(clock)
    proto.dataReceived(b"x" * 10_000)
    proto.wrappedProtocol.transport.write(b"y" * 10_000)
    assert clock.getDelayedCalls() == []
    assert transport.value() == b"y" * 10_000


def test_throttled_echo_over_a_loopback_pair(clock: Clock) -> None:
    factory = ThrottlingFactory(Factory.forProtocol(Echo), readLimit=100, writeLimit=100,
                                clock=clock)
    server = factory.buildProtocol(None)
    client = Events()
    assert server is not None
    pump = connectedPair(server, client, clock=clock)
    client.transport.write(b"z" * 300)  # type: ignore[union-attr]
    pump.flush()
    assert client.data == b"z" * 300
    clock.advance(1)  # read 300 and wrote 300 in one second: both held for 2 s
    client.transport.write(b"more")  # type: ignore[union-attr]
    pump.flush()
    assert client.data == b"z" * 300
    clock.advance(2)
    pump.flush()
    assert client.data == b"z" * 300 + b"more"


# --- real sockets ------------------------------------------------------------------------


async def _connect(reactor: Any, port: Any) -> Any:
    factory = RecordingClientFactory()
    reactor.connectTCP("127.0.0.1", port.getHost().port, factory)
    client: Recorder = await factory.built
    await client.made
    return client


async def test_connection_limit_refuses_the_extra_connection_politely(reactor: Any) -> None:
    limits = ConnectionLimits(Factory.forProtocol(Echo), connectionLimit=2,
                              overflowMessage=b"too many connections\r\n")
    port = reactor.listenTCP(0, limits, interface="127.0.0.1")
    first = await _connect(reactor, port)
    second = await _connect(reactor, port)
    # Echo round trips prove both are served (and registered) before the third.
    for client in (first, second):
        client.transport.write(b"hi")
        await client.wait_for_bytes(2)
    third = await _connect(reactor, port)
    reason = await third.lost
    assert reason.check(ConnectionDone)
    assert bytes(third.received) == b"too many connections\r\n"
    assert limits.connectionCount == 2
    for client in (first, second):
        client.transport.loseConnection()
        await client.lost
    await port.stopListening()


async def test_per_peer_limit_on_real_sockets(reactor: Any) -> None:
    limits = LimitConnectionsByPeer(Factory.forProtocol(Echo))
    limits.maxConnectionsPerPeer = 1
    port = reactor.listenTCP(0, limits, interface="127.0.0.1")
    first = await _connect(reactor, port)
    first.transport.write(b"x")
    await first.wait_for_bytes(1)
    second = await _connect(reactor, port)
    assert (await second.lost).check(ConnectionDone)
    assert bytes(second.received) == b""
    first.transport.loseConnection()
    await first.lost
    await port.stopListening()


async def test_timeout_closes_an_idle_connection(reactor: Any) -> None:
    server = Recorder()
    factory = TimeoutFactory(Factory.forProtocol(lambda: server), timeoutPeriod=0.05)
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    client = await _connect(reactor, port)
    reason = await client.lost  # nothing is sent: the server times out and closes
    assert reason.check(ConnectionDone)
    assert (await server.lost).check(ConnectionDone)
    assert factory.protocols == {}
    await port.stopListening()


class EchoRecorder(Recorder):
    def dataReceived(self, data: bytes) -> None:
        super().dataReceived(data)
        self.transport.write(data)  # type: ignore[union-attr]


async def test_throttled_echo_on_real_sockets(reactor: Any) -> None:
    server = EchoRecorder()
    factory = ThrottlingFactory(Factory.forProtocol(lambda: server), readLimit=10_000_000,
                                writeLimit=10_000_000)
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    client = await _connect(reactor, port)
    client.transport.write(b"q" * 100_000)
    assert await client.wait_for_bytes(100_000) == b"q" * 100_000
    assert factory.clock is reactor
    client.transport.loseConnection()
    await client.lost
    await server.lost
    await port.stopListening()
    assert factory.checkReadBandwidthID is None and factory.connectionCount == 0
