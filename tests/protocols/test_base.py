"""Protocol, factories (including reconnection back-off), datagram/process protocols."""

from __future__ import annotations

import doctest
import io
import logging
import math
import pickle
import random
from typing import Any

import pytest

import protocols
from deferred import Failure
from protocols import base
from protocols.base import (
    ClientFactory,
    ConsumerToProtocolAdapter,
    DatagramProtocol,
    Factory,
    FileWrapper,
    ProcessProtocol,
    Protocol,
    ProtocolToConsumerAdapter,
    ReconnectingClientFactory,
    ServerFactory,
    connectionDone,
)
from reactor.error import ConnectionDone, ConnectionRefusedError, NotConnectingError
from reactor.interfaces import IProtocol, IProtocolFactory
from reactor.testing import Clock, MemoryReactorClock, StringTransport

# --- Protocol --------------------------------------------------------------------------


def test_make_connection_sets_state_then_calls_connection_made() -> None:
    seen: list[Any] = []

    class P(Protocol):
        def connectionMade(self) -> None:
            seen.append((self.connected, self.transport))

    proto, transport = P(), StringTransport()
    assert proto.connected == 0 and proto.transport is None
    proto.makeConnection(transport)
    assert seen == [(1, transport)]


def test_default_callbacks_do_nothing() -> None:
    proto = Protocol()
    proto.makeConnection(StringTransport())
    proto.dataReceived(b"ignored")
    proto.connectionLost(connectionDone)
    proto.connectionLost()
    assert proto.logPrefix() == "Protocol"
    assert isinstance(proto, IProtocol)


def test_connection_done_is_a_clean_close_failure() -> None:
    assert isinstance(connectionDone, Failure)
    assert connectionDone.check(ConnectionDone)
    assert protocols.connectionDone is connectionDone


def test_public_names_exported() -> None:
    for name in protocols.__all__:
        assert getattr(protocols, name) is getattr(base, name)


# --- Factory ---------------------------------------------------------------------------


class Recording(Protocol):
    def __init__(self, tag: str = "") -> None:
        self.tag = tag


def test_build_protocol_sets_factory() -> None:
    class F(Factory[Recording]):
        protocol = Recording

    factory = F()
    proto = factory.buildProtocol(None)
    assert isinstance(proto, Recording) and proto.factory is factory
    assert isinstance(factory, IProtocolFactory)


def test_build_protocol_may_refuse() -> None:
    class Refusing(Factory[Protocol]):
        def buildProtocol(self, addr: Any) -> Protocol | None:
            return None

    assert Refusing().buildProtocol(None) is None


def test_for_protocol_passes_factory_arguments() -> None:
    class F(Factory[Protocol]):
        def __init__(self, greeting: str, *, loud: bool = False) -> None:
            self.greeting, self.loud = greeting, loud

    factory = F.forProtocol(Recording, "hi", loud=True)
    assert isinstance(factory, F)
    assert (factory.greeting, factory.loud, factory.protocol) == ("hi", True, Recording)
    assert isinstance(factory.buildProtocol(None), Recording)


def test_start_and_stop_factory_run_once_for_many_ports(caplog: Any) -> None:
    calls: list[str] = []

    class F(Factory[Protocol]):
        def startFactory(self) -> None:
            calls.append("start")

        def stopFactory(self) -> None:
            calls.append("stop")

    factory = F()
    with caplog.at_level(logging.INFO, logger="protocols.base"):
        factory.doStart()
        factory.doStart()
        assert calls == ["start"] and factory.numPorts == 2
        factory.doStop()
        assert calls == ["start"]
        factory.doStop()
    assert calls == ["start", "stop"] and factory.numPorts == 0
    assert "Starting factory" in caplog.text and "Stopping factory" in caplog.text
    factory.doStop()  # unbalanced: ignored, as in Twisted
    assert calls == ["start", "stop"] and factory.numPorts == 0


def test_quiet_factory_does_not_log(caplog: Any) -> None:
    factory = Factory[Protocol]()
    factory.noisy = False
    with caplog.at_level(logging.INFO, logger="protocols.base"):
        factory.doStart()
        factory.doStop()
    assert caplog.text == ""


def test_factory_subclasses_and_log_prefix() -> None:
    assert issubclass(ServerFactory, Factory) and issubclass(ClientFactory, Factory)
    client = ClientFactory[Protocol]()
    client.startedConnecting(None)  # type: ignore[arg-type]
    client.clientConnectionFailed(None, connectionDone)  # type: ignore[arg-type]
    client.clientConnectionLost(None, connectionDone)  # type: ignore[arg-type]
    assert client.logPrefix() == "ClientFactory"


# --- ReconnectingClientFactory ---------------------------------------------------------


class FakeConnector:
    def __init__(self, connecting: bool = False) -> None:
        self.attempts = 0
        self.stopped = 0
        self.connecting = connecting

    def connect(self) -> None:
        self.attempts += 1

    def stopConnecting(self) -> None:
        if not self.connecting:
            raise NotConnectingError()
        self.stopped += 1

    def disconnect(self) -> None:
        pass

    def getDestination(self) -> Any:
        return None


def refused() -> Failure:
    return Failure(ConnectionRefusedError())


def make_factory(**attrs: Any) -> tuple[ReconnectingClientFactory[Protocol], Clock]:
    factory = ReconnectingClientFactory[Protocol]()
    clock = Clock()
    factory.clock = clock
    factory.jitter = 0
    factory.noisy = False
    for name, value in attrs.items():
        setattr(factory, name, value)
    return factory, clock


def delays_until_attempt(clock: Clock, connector: FakeConnector) -> float:
    """Advance the clock in small steps until the connector is dialled again."""
    start, before = clock.seconds(), connector.attempts
    (call,) = clock.getDelayedCalls()
    clock.advance(call.getTime() - clock.seconds())
    assert connector.attempts == before + 1
    return clock.seconds() - start


def test_backoff_grows_by_factor_up_to_max_delay() -> None:
    factory, clock = make_factory(maxDelay=60)
    connector = FakeConnector()
    waits = []
    for _ in range(7):
        factory.clientConnectionFailed(connector, refused())
        waits.append(delays_until_attempt(clock, connector))
    expected = [min(math.e**n, 60) for n in range(7)]
    assert waits == pytest.approx(expected)
    assert factory.retries == 7


def test_nothing_happens_before_the_delay() -> None:
    factory, clock = make_factory()
    connector = FakeConnector()
    factory.clientConnectionFailed(connector, refused())
    clock.advance(0.999)
    assert connector.attempts == 0
    clock.advance(0.001)
    assert connector.attempts == 1


def test_connection_lost_also_retries() -> None:
    factory, clock = make_factory()
    connector = FakeConnector()
    factory.clientConnectionLost(connector, connectionDone)
    clock.advance(1)
    assert connector.attempts == 1 and factory.connector is connector


def test_max_retries_gives_up() -> None:
    factory, clock = make_factory(maxRetries=2)
    connector = FakeConnector()
    for _ in range(2):
        factory.clientConnectionFailed(connector, refused())
        clock.advance(1000)
    factory.clientConnectionFailed(connector, refused())
    assert clock.getDelayedCalls() == []
    assert connector.attempts == 2


def test_reset_delay_starts_over() -> None:
    factory, clock = make_factory()
    connector = FakeConnector()
    for _ in range(3):
        factory.clientConnectionFailed(connector, refused())
        clock.advance(1000)
    factory.resetDelay()
    assert factory.delay == factory.initialDelay and factory.retries == 0
    factory.clientConnectionLost(connector, connectionDone)
    assert delays_until_attempt(clock, connector) == pytest.approx(1.0)


def test_stop_trying_cancels_pending_attempt() -> None:
    factory, clock = make_factory()
    connector = FakeConnector(connecting=True)
    factory.clientConnectionFailed(connector, refused())
    factory.stopTrying()
    assert connector.stopped == 1
    clock.advance(1000)
    assert connector.attempts == 0
    factory.clientConnectionFailed(connector, refused())
    assert clock.getDelayedCalls() == []
    factory.retry(connector)  # explicit retry is refused too
    assert clock.getDelayedCalls() == []


def test_stop_trying_ignores_not_connecting() -> None:
    factory, _ = make_factory()
    factory.clientConnectionFailed(FakeConnector(connecting=False), refused())
    factory.stopTrying()  # NotConnectingError swallowed
    assert factory.continueTrying == 0


def test_stop_trying_after_the_attempt_fired() -> None:
    factory, clock = make_factory()
    connector = FakeConnector(connecting=True)
    factory.clientConnectionFailed(connector, refused())
    clock.advance(1)
    factory.stopTrying()
    assert connector.attempts == 1 and connector.stopped == 1


def test_retry_without_connector_raises() -> None:
    factory, _ = make_factory()
    with pytest.raises(ValueError, match="no connector"):
        factory.retry()


def test_jitter_uses_the_injected_rng() -> None:
    def run(seed: int) -> list[float]:
        factory, clock = make_factory(jitter=0.1, rng=random.Random(seed))
        connector = FakeConnector()
        waits = []
        for _ in range(5):
            factory.clientConnectionFailed(connector, refused())
            waits.append(delays_until_attempt(clock, connector))
        return waits

    first = run(42)
    assert first == run(42)
    assert first != run(43)
    assert first != pytest.approx([math.e**n for n in range(5)])
    # Jitter perturbs, it does not replace, the exponential growth.
    for n, wait in enumerate(first):
        assert 0.5 * math.e**n < wait < 1.5 * math.e**n


def test_jitter_never_schedules_negative_or_beyond_max() -> None:
    class Wild(random.Random):
        def __init__(self, value: float) -> None:
            super().__init__()
            self.value = value

        def normalvariate(self, mu: float = 0.0, sigma: float = 1.0) -> float:
            return self.value

    for value, expected in ((-5.0, 0.0), (1e9, 10.0)):
        factory, clock = make_factory(jitter=0.5, rng=Wild(value), maxDelay=10)
        factory.clientConnectionFailed(FakeConnector(), refused())
        (call,) = clock.getDelayedCalls()
        assert call.getTime() == expected


def test_clock_defaults_to_the_connectors_reactor() -> None:
    factory = ReconnectingClientFactory[Protocol]()
    factory.jitter, factory.noisy = 0, False
    reactor = MemoryReactorClock()
    connector = FakeConnector()
    connector.reactor = reactor  # type: ignore[attr-defined]
    factory.clientConnectionFailed(connector, refused())
    assert factory.clock is None  # not pinned: the next connector may differ
    reactor.advance(1)
    assert connector.attempts == 1


def test_reconnecting_factory_with_memory_reactor() -> None:
    reactor = MemoryReactorClock()
    factory, _ = make_factory()
    factory.clock = reactor
    connector = reactor.connectTCP("example.com", 25, factory)
    factory.clientConnectionFailed(connector, refused())
    reactor.advance(1)
    assert connector.connectCount == 1


def test_pickling_drops_connection_state() -> None:
    factory = ReconnectingClientFactory[Protocol]()
    factory.maxDelay = 5
    factory.clock = Clock()
    factory.connector = FakeConnector()
    factory.retries = 3
    state = factory.__getstate__()
    state.pop("__orig_class__", None)  # set by the Factory[...] subscript
    assert state == {"maxDelay": 5}
    clone = pickle.loads(pickle.dumps(ReconnectingClientFactory[Protocol]()))
    assert clone.retries == 0


def test_noisy_factory_logs_retry(caplog: Any) -> None:
    factory, _ = make_factory(noisy=True)
    with caplog.at_level(logging.INFO, logger="protocols.base"):
        factory.clientConnectionFailed(FakeConnector(), refused())
    assert "will retry in 1 seconds" in caplog.text


# --- DatagramProtocol ------------------------------------------------------------------


def test_datagram_protocol_start_stop_counting() -> None:
    events: list[str] = []

    class P(DatagramProtocol):
        noisy = False

        def startProtocol(self) -> None:
            events.append("start")

        def stopProtocol(self) -> None:
            events.append("stop")

    proto = P()
    transport = object()
    proto.makeConnection(transport)
    assert proto.transport is transport and events == ["start"]
    with pytest.raises(AssertionError):
        proto.makeConnection(object())
    proto.doStart()
    proto.doStop()
    assert events == ["start"] and proto.transport is None
    proto.doStop()
    assert events == ["start", "stop"]
    with pytest.raises(AssertionError):
        proto.doStop()
    proto.datagramReceived(b"x", ("127.0.0.1", 1))
    proto.connectionRefused()
    assert proto.logPrefix() == "P"


# --- ProcessProtocol -------------------------------------------------------------------


def test_process_protocol_dispatches_by_fd() -> None:
    events: list[Any] = []

    class P(ProcessProtocol):
        def outReceived(self, data: bytes) -> None:
            events.append(("out", data))

        def errReceived(self, data: bytes) -> None:
            events.append(("err", data))

        def inConnectionLost(self) -> None:
            events.append("in-lost")

        def outConnectionLost(self) -> None:
            events.append("out-lost")

        def errConnectionLost(self) -> None:
            events.append("err-lost")

    proto = P()
    proto.makeConnection(object())
    proto.childDataReceived(1, b"o")
    proto.childDataReceived(2, b"e")
    proto.childDataReceived(3, b"ignored")
    for fd in (0, 1, 2, 3):
        proto.childConnectionLost(fd)
    proto.processExited(connectionDone)
    proto.processEnded(connectionDone)
    assert events == [("out", b"o"), ("err", b"e"), "in-lost", "out-lost", "err-lost"]
    assert proto.connected == 1


# --- FileWrapper and adapters ----------------------------------------------------------


def test_file_wrapper_is_a_transport() -> None:
    out = io.BytesIO()
    wrapper = FileWrapper(out)
    wrapper.write(b"a")
    wrapper.writeSequence([b"b", b"c"])
    assert out.getvalue() == b"abc"
    assert wrapper.getPeer() == ("file", "file") and wrapper.getHost() == "file"
    wrapper.loseConnection()
    assert wrapper.closed == 1 and out.closed
    wrapper.write(b"after close")  # the ValueError goes to handleException


def test_file_wrapper_pull_producer_is_started() -> None:
    wrapper = FileWrapper(io.BytesIO())
    resumed: list[int] = []

    class Pull:
        def resumeProducing(self) -> None:
            resumed.append(1)

    wrapper.registerProducer(Pull(), False)
    assert resumed == [1]
    wrapper.stopConsuming()
    assert wrapper.producer is None and wrapper.closed


def test_adapters() -> None:
    received: list[bytes] = []

    class P(Protocol):
        def dataReceived(self, data: bytes) -> None:
            received.append(data)

    consumer = ProtocolToConsumerAdapter(P())
    consumer.write(b"x")
    consumer.registerProducer(None, True)  # type: ignore[arg-type]
    consumer.unregisterProducer()
    assert received == [b"x"]

    transport = StringTransport()
    proto = ConsumerToProtocolAdapter(transport)
    proto.makeConnection(None)
    proto.connectionMade()
    proto.dataReceived(b"y")
    proto.connectionLost(connectionDone)
    assert transport.value() == b"y"


def test_module_doctests() -> None:
    assert doctest.testmod(base).failed == 0
    assert doctest.testmod(protocols).failed == 0
