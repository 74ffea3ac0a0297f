"""The test fakes (Clock, StringTransport, MemoryReactor, the loopback) and the
error and address types they hand out."""

from __future__ import annotations

import doctest
import errno
import os
import pickle
import socket
from typing import Any

import attrs
import pytest

from deferred import Failure
from reactor import address, error, interfaces, testing
from reactor.address import IPv4Address, IPv6Address, UNIXAddress
from reactor.testing import (
    Clock,
    MemoryReactor,
    MemoryReactorClock,
    StringIOWithoutClosing,
    StringTransport,
    StringTransportWithDisconnection,
    connectedPair,
    connectedServerAndClient,
)


class Recorder:
    """A minimal IProtocol that records every call (no dependency on protocols/)."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        self.transport: Any = None
        self.factory: Any = None

    @property
    def data(self) -> bytes:
        return b"".join(e[1] for e in self.events if e[0] == "data")

    @property
    def reason(self) -> Failure:
        return next(e[1] for e in self.events if e[0] == "lost")

    def makeConnection(self, transport: Any) -> None:
        self.transport = transport
        self.connectionMade()

    def connectionMade(self) -> None:
        self.events.append(("made",))

    def dataReceived(self, data: bytes) -> None:
        self.events.append(("data", data))

    def connectionLost(self, reason: Failure) -> None:
        self.events.append(("lost", reason))


class Echo(Recorder):
    def dataReceived(self, data: bytes) -> None:
        super().dataReceived(data)
        self.transport.write(data)


# --- Clock -----------------------------------------------------------------------------


def test_clock_starts_at_zero_and_advances() -> None:
    clock = Clock()
    assert clock.seconds() == 0.0
    clock.advance(2.5)
    assert clock.seconds() == 2.5 == clock.rightNow


def test_clock_runs_calls_in_time_order() -> None:
    clock = Clock()
    ran: list[str] = []
    clock.callLater(3, ran.append, "c")
    clock.callLater(1, ran.append, "a")
    clock.callLater(2, ran.append, "b")
    clock.advance(10)
    assert ran == ["a", "b", "c"]


def test_clock_equal_times_run_in_scheduling_order() -> None:
    clock = Clock()
    ran: list[int] = []
    for i in range(10):
        clock.callLater(1, ran.append, i)
    clock.callLater(0.5, ran.append, -1)
    clock.advance(1)
    assert ran == [-1, *range(10)]


def test_clock_runs_calls_scheduled_for_now_in_the_same_advance() -> None:
    clock = Clock()
    ran: list[str] = []

    def first() -> None:
        ran.append("first")
        clock.callLater(0, ran.append, "second")

    clock.callLater(1, first)
    clock.advance(1)
    assert ran == ["first", "second"]


def test_clock_does_not_run_calls_scheduled_beyond_now() -> None:
    clock = Clock()
    ran: list[str] = []
    clock.callLater(1, lambda: clock.callLater(1, ran.append, "later"))
    clock.advance(1)
    assert ran == []
    clock.advance(1)
    assert ran == ["later"]


def test_clock_advance_zero_runs_due_calls() -> None:
    clock = Clock()
    ran: list[int] = []
    clock.callLater(0, ran.append, 1)
    assert ran == []
    clock.advance(0)
    assert ran == [1]


def test_clock_exception_propagates_and_rest_stay_scheduled() -> None:
    clock = Clock()
    ran: list[int] = []

    def boom() -> None:
        raise ZeroDivisionError

    clock.callLater(1, boom)
    clock.callLater(1, ran.append, 2)
    with pytest.raises(ZeroDivisionError):
        clock.advance(1)
    assert ran == []
    clock.advance(0)
    assert ran == [2]


def test_clock_pump_and_delayed_calls() -> None:
    clock = Clock()
    ran: list[float] = []
    a = clock.callLater(1, lambda: ran.append(clock.seconds()))
    b = clock.callLater(3, lambda: ran.append(clock.seconds()))
    assert clock.getDelayedCalls() == [a, b] == clock.calls
    clock.pump([1, 1, 1])
    assert ran == [1, 3]
    assert clock.getDelayedCalls() == []


def test_clock_satisfies_ireactortime() -> None:
    assert isinstance(Clock(), interfaces.IReactorTime)
    assert isinstance(Clock().callLater(1, print), interfaces.IDelayedCall)


# --- StringTransport -------------------------------------------------------------------


def test_string_transport_records_writes() -> None:
    t = StringTransport()
    t.write(b"ab")
    t.writeSequence([b"c", b"d"])
    assert t.value() == b"abcd"
    t.clear()
    assert t.value() == b""


def test_string_transport_rejects_str() -> None:
    with pytest.raises(TypeError):
        StringTransport().write("text")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        StringTransport().writeSequence(["text"])  # type: ignore[list-item]


def test_string_transport_close_flags() -> None:
    t = StringTransport()
    assert t.connected and not t.disconnecting and not t.disconnected
    t.loseConnection()
    assert t.disconnecting and not t.disconnected
    t2 = StringTransport()
    t2.abortConnection()
    assert t2.disconnecting and t2.disconnected


def test_string_transport_addresses() -> None:
    t = StringTransport()
    assert t.getPeer() == IPv4Address("TCP", "192.168.1.1", 54321)
    assert t.getHost() == IPv4Address("TCP", "10.0.0.1", 12345)
    host, peer = UNIXAddress("/a"), UNIXAddress("/b")
    t = StringTransport(hostAddress=host, peerAddress=peer)
    assert t.getHost() is host and t.getPeer() is peer


def test_string_transport_producer_registration() -> None:
    t = StringTransport()
    producer = object()
    t.registerProducer(producer, True)  # type: ignore[arg-type]
    assert t.producer is producer and t.streaming is True
    with pytest.raises(RuntimeError):
        t.registerProducer(producer, False)  # type: ignore[arg-type]
    t.unregisterProducer()
    assert t.producer is None and t.streaming is None
    with pytest.raises(RuntimeError):
        t.unregisterProducer()


def test_string_transport_producer_state() -> None:
    t = StringTransport()
    assert t.producerState == "producing"
    t.pauseProducing()
    assert t.producerState == "paused"
    t.resumeProducing()
    assert t.producerState == "producing"
    t.stopProducing()
    assert t.producerState == "stopped"
    with pytest.raises(RuntimeError):
        t.resumeProducing()


def test_string_transport_refuses_to_produce_after_close_unless_lenient() -> None:
    t = StringTransport()
    t.loseConnection()
    with pytest.raises(RuntimeError):
        t.resumeProducing()
    lenient = StringTransport(lenient=True)
    lenient.loseConnection()
    lenient.pauseProducing()
    lenient.resumeProducing()
    assert lenient.producerState == "producing"


def test_string_transport_with_disconnection_reports_once() -> None:
    proto = Recorder()
    t = StringTransportWithDisconnection()
    t.protocol = proto
    proto.makeConnection(t)
    t.loseConnection()
    t.loseConnection()
    assert [e[0] for e in proto.events] == ["made", "lost"]
    assert proto.reason.check(error.ConnectionDone)
    assert not t.connected and t.disconnecting


def test_stringio_without_closing() -> None:
    f = StringIOWithoutClosing()
    f.write(b"x")
    f.close()
    assert f.getvalue() == b"x"


# --- MemoryReactor ---------------------------------------------------------------------


class ClientFactoryRecorder:
    def __init__(self) -> None:
        self.connectors: list[Any] = []

    def startedConnecting(self, connector: Any) -> None:
        self.connectors.append(connector)

    def buildProtocol(self, addr: Any) -> Any:
        return Recorder()

    def doStart(self) -> None:
        pass

    def doStop(self) -> None:
        pass

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        pass

    def clientConnectionLost(self, connector: Any, reason: Failure) -> None:
        pass


def test_memory_reactor_records_listens() -> None:
    reactor = MemoryReactor()
    factory: Any = object()
    port = reactor.listenTCP(8080, factory, backlog=5, interface="127.0.0.1")
    assert reactor.tcpServers == [(8080, factory, 5, "127.0.0.1")]
    assert port.getHost() == IPv4Address("TCP", "0.0.0.0", 8080)
    assert reactor.listenTCP(1, factory, interface="::1").getHost() == IPv6Address("TCP", "::1", 1)
    reactor.listenSSL(443, factory, "ctx")
    reactor.listenUNIX("/tmp/s", factory)
    udp = reactor.listenUDP(53, factory, interface="10.0.0.1")
    assert reactor.sslServers == [(443, factory, "ctx", 50, "")]
    assert reactor.unixServers == [("/tmp/s", factory, 50, 0o666, 0)]
    assert reactor.udpServers == [(53, factory, "10.0.0.1", 8192)]
    assert udp.getHost() == IPv4Address("UDP", "10.0.0.1", 53)


def test_memory_reactor_stop_listening_returns_fired_deferred() -> None:
    port = MemoryReactor().listenTCP(80, object())  # type: ignore[arg-type]
    results: list[object] = []
    port.stopListening().addCallback(results.append)
    assert results == [None] and not port.listening


def test_memory_reactor_records_connects_and_tells_the_factory() -> None:
    reactor = MemoryReactor()
    factory = ClientFactoryRecorder()
    connector = reactor.connectTCP("example.com", 80, factory, timeout=5)
    assert reactor.tcpClients == [("example.com", 80, factory, 5, None)]
    assert factory.connectors == [connector] == reactor.connectors
    assert connector.getDestination() == IPv4Address("TCP", "example.com", 80)
    reactor.connectSSL("h", 443, factory, "ctx")
    reactor.connectUNIX("/tmp/s", factory)
    assert reactor.sslClients == [("h", 443, factory, "ctx", 30, None)]
    assert reactor.unixClients == [("/tmp/s", factory, 30, 0)]
    assert len(factory.connectors) == 3
    connector.stopConnecting()
    connector.connect()
    assert connector.stoppedConnecting and connector.connectCount == 1


def test_memory_reactor_lifecycle() -> None:
    reactor = MemoryReactor()
    ran: list[str] = []
    reactor.callWhenRunning(ran.append, "hook")
    assert ran == []
    reactor.run()
    assert ran == ["hook"] and reactor.hasRun and reactor.hasStopped and not reactor.running
    reactor.callWhenRunning(ran.append, "now")
    assert ran == ["hook", "now"]
    trigger = reactor.addSystemEventTrigger("before", "shutdown", ran.append, "x")
    assert reactor.triggers["before"]["shutdown"] == [(ran.append, ("x",), {})]
    reactor.removeSystemEventTrigger(trigger)
    assert reactor.triggers["before"]["shutdown"] == []
    reactor.crash()
    reactor.install()
    assert reactor.hasCrashed and reactor.hasInstalled


def test_memory_reactor_clock_is_both() -> None:
    reactor = MemoryReactorClock()
    ran: list[int] = []
    reactor.callLater(1, ran.append, 1)
    reactor.listenTCP(1, object())  # type: ignore[arg-type]
    reactor.advance(1)
    assert ran == [1] and len(reactor.tcpServers) == 1
    assert isinstance(reactor, interfaces.IReactorTCP)
    assert isinstance(reactor, interfaces.IReactorTime)


# --- loopback --------------------------------------------------------------------------


def test_connected_pair_moves_bytes_both_ways() -> None:
    server, client = Echo(), Recorder()
    pump = connectedPair(server, client)
    client.transport.write(b"ping")
    assert server.data == b""  # nothing moves until pumped
    assert pump.flush() is True
    assert server.data == b"ping" and client.data == b"ping"
    assert pump.flush() is False


def test_connected_pair_greeting_is_flushed() -> None:
    class Greeter(Recorder):
        def connectionMade(self) -> None:
            super().connectionMade()
            self.transport.write(b"220 hello\r\n")

    client = Recorder()
    connectedPair(Greeter(), client)
    assert client.data == b"220 hello\r\n"
    client2 = Recorder()
    connectedPair(Greeter(), client2, greet=False)
    assert client2.data == b""


def test_connected_pair_addresses() -> None:
    server, client = Recorder(), Recorder()
    connectedPair(server, client)
    assert server.transport.getPeer() == client.transport.getHost()
    assert client.transport.getPeer() == server.transport.getHost()
    assert server.transport.getHost().port == 8080


def test_lose_connection_flushes_then_reports_done_to_both() -> None:
    server, client = Recorder(), Recorder()
    pump = connectedPair(server, client)
    client.transport.write(b"last ")
    client.transport.loseConnection()
    client.transport.write(b"words")  # still queued: the close has not happened yet
    pump.flush()
    assert server.data == b"last words"
    assert server.reason.check(error.ConnectionDone)
    assert client.reason.check(error.ConnectionDone)
    assert [e[0] for e in server.events][-1] == "lost"
    assert not server.transport.connected
    client.transport.write(b"dropped")  # after the close, writes go nowhere
    server.transport.write(b"dropped")
    assert pump.flush() is False
    assert client.data == b""


def test_half_close_reaches_a_half_closeable_peer() -> None:
    class HalfCloseable(Echo):
        def readConnectionLost(self) -> None:
            self.events.append(("readLost",))
            self.transport.write(b"bye")
            self.transport.loseConnection()

    class Client(Recorder):
        def writeConnectionLost(self) -> None:
            self.events.append(("writeLost",))

    server, client = HalfCloseable(), Client()
    pump = connectedPair(server, client)
    client.transport.write(b"request")
    client.transport.loseWriteConnection()
    pump.flush()
    assert [e[0] for e in server.events] == ["made", "data", "readLost", "lost"]
    assert [e[0] for e in client.events] == ["made", "writeLost", "data", "lost"]
    assert client.data == b"requestbye"
    assert client.reason.check(error.ConnectionDone)


def test_half_close_closes_a_peer_that_cannot_half_close() -> None:
    server, client = Recorder(), Recorder()
    pump = connectedPair(server, client)
    client.transport.loseWriteConnection()
    pump.flush()
    assert server.reason.check(error.ConnectionDone)
    assert client.reason.check(error.ConnectionDone)


def test_both_sides_half_closed_means_closed() -> None:
    class HalfCloseable(Recorder):
        def readConnectionLost(self) -> None:
            self.events.append(("readLost",))

    server, client = HalfCloseable(), HalfCloseable()
    pump = connectedPair(server, client)
    client.transport.loseWriteConnection()
    server.transport.loseWriteConnection()
    pump.flush()
    assert server.reason.check(error.ConnectionDone)
    assert client.reason.check(error.ConnectionDone)


def test_abort_discards_and_reports_aborted_and_lost() -> None:
    server, client = Recorder(), Recorder()
    pump = connectedPair(server, client)
    client.transport.write(b"never delivered")
    client.transport.abortConnection()
    pump.flush()
    assert server.data == b""
    assert client.reason.check(error.ConnectionAborted)
    assert server.reason.check(error.ConnectionLost)
    assert not server.reason.check(error.ConnectionAborted)


def test_paused_transport_holds_incoming_data() -> None:
    server, client = Recorder(), Recorder()
    pump = connectedPair(server, client)
    server.transport.pauseProducing()
    client.transport.write(b"held")
    pump.flush()
    assert server.data == b""
    server.transport.resumeProducing()
    pump.flush()
    assert server.data == b"held"


def test_pull_producer_is_polled_each_pump() -> None:
    server, client = Recorder(), Recorder()
    pump = connectedPair(server, client)
    chunks = [b"a", b"b", b"c"]

    class Pull:
        def resumeProducing(self) -> None:
            if chunks:
                server.transport.write(chunks.pop(0))
            else:
                server.transport.unregisterProducer()

        def stopProducing(self) -> None:
            pass

    server.transport.registerProducer(Pull(), False)
    server.transport.loseConnection()  # must wait for the producer to finish
    pump.flush()
    assert client.data == b"abc"
    assert client.reason.check(error.ConnectionDone)


def test_pump_runs_clock_calls() -> None:
    clock = Clock()
    server, client = Recorder(), Recorder()
    pump = connectedPair(server, client, clock=clock)
    clock.callLater(0, server.transport.write, b"scheduled")
    pump.flush()
    assert client.data == b"scheduled"


def test_flush_gives_up_on_endless_ping_pong() -> None:
    server, client = Echo(), Echo()
    pump = connectedPair(server, client)
    client.transport.write(b"x")
    with pytest.raises(RuntimeError, match="still busy"):
        pump.flush()


def test_connected_server_and_client() -> None:
    client, server, pump = connectedServerAndClient(Echo, Recorder)
    client.transport.write(b"hi")
    pump.flush()
    assert client.data == b"hi"
    assert pump.server is server and pump.client is client


def test_loopback_transport_tcp_knobs() -> None:
    server, client = Recorder(), Recorder()
    connectedPair(server, client)
    t = server.transport
    t.setTcpNoDelay(True)
    t.setTcpKeepAlive(True)
    assert t.getTcpNoDelay() and t.getTcpKeepAlive()
    assert isinstance(t, interfaces.ITCPTransport)
    assert "server" in repr(t)


# --- errors ----------------------------------------------------------------------------


def test_error_hierarchy() -> None:
    assert issubclass(error.ConnectionDone, error.ConnectionClosed)
    assert issubclass(error.ConnectionLost, error.ConnectionClosed)
    assert issubclass(error.ConnectionAborted, error.ConnectionLost)
    assert issubclass(error.ProcessDone, error.ConnectionDone)
    assert issubclass(error.ProcessTerminated, error.ConnectionLost)
    assert issubclass(error.ConnectionRefusedError, error.ConnectError)
    assert issubclass(error.TimeoutError, error.UserError)
    assert issubclass(error.UserError, error.ConnectError)
    assert issubclass(error.CannotListenError, error.BindError)
    assert issubclass(error.AlreadyCalled, ValueError)
    assert issubclass(error.AlreadyCancelled, ValueError)
    assert issubclass(error.ReactorNotRunning, RuntimeError)


def test_error_messages() -> None:
    assert str(error.ConnectionDone()) == "Connection was closed cleanly."
    assert str(error.ConnectionDone("Bye.")) == "Connection was closed cleanly: Bye.."
    assert str(error.ConnectionLost()).startswith("Connection to the other side was lost")
    assert str(error.ConnectionRefusedError()) == "Connection was refused by other side."
    assert (
        str(error.ConnectError(111, "refused"))
        == "An error occurred while connecting: 111: refused."
    )
    assert str(error.TimeoutError()) == "User timeout caused connection failure."
    assert str(error.DNSLookupError("nowhere")) == "DNS lookup failed: nowhere."
    assert str(error.AlreadyCancelled()) == "Tried to cancel an already-cancelled event."


def test_cannot_listen_error_names_address_and_errno_text() -> None:
    os_error = OSError(errno.EADDRINUSE, os.strerror(errno.EADDRINUSE))
    e = error.CannotListenError("127.0.0.1", 8080, os_error)
    assert e.interface == "127.0.0.1" and e.port == 8080 and e.socketError is os_error
    text = str(e)
    assert text.startswith("Couldn't listen on 127.0.0.1:8080: ")
    assert os.strerror(errno.EADDRINUSE) in text
    assert str(error.CannotListenError("", 80, os_error)).startswith("Couldn't listen on any:80")
    assert "[::1]:80" in str(error.CannotListenError("::1", 80, os_error))


def test_process_errors_carry_status() -> None:
    done = error.ProcessDone(0)
    assert (done.exitCode, done.signal, done.status) == (0, None, 0)
    term = error.ProcessTerminated(exitCode=3, status=768)
    assert term.exitCode == 3 and "exit code 3" in str(term)
    assert "signal 9" in str(error.ProcessTerminated(signal=9))


def test_get_connect_error() -> None:
    refused = error.getConnectError(OSError(errno.ECONNREFUSED, "refused"))
    assert type(refused) is error.ConnectionRefusedError and refused.osError == errno.ECONNREFUSED
    unknown = error.getConnectError(socket.gaierror(-2, "Name or service not known"))
    assert type(unknown) is error.UnknownHostError
    assert type(error.getConnectError(OSError(errno.EPERM, "x"))) is error.ConnectError
    assert type(error.getConnectError(OSError("odd"))) is error.ConnectError


def test_connecting_cancelled_error_keeps_address() -> None:
    addr = IPv4Address("TCP", "1.2.3.4", 5)
    assert error.ConnectingCancelledError(addr).address is addr


# --- addresses -------------------------------------------------------------------------


def test_ipv4_address_value_semantics() -> None:
    a = IPv4Address("TCP", "127.0.0.1", 80)
    assert a == IPv4Address("TCP", "127.0.0.1", 80)
    assert a != IPv4Address("UDP", "127.0.0.1", 80)
    assert len({a, IPv4Address("TCP", "127.0.0.1", 80)}) == 1
    assert repr(a) == "IPv4Address(type='TCP', host='127.0.0.1', port=80)"
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        a.port = 81  # type: ignore[misc]
    with pytest.raises(ValueError):
        IPv4Address("SCTP", "127.0.0.1", 80)  # type: ignore[arg-type]
    assert pickle.loads(pickle.dumps(a)) == a


def test_ipv6_address_defaults() -> None:
    a = IPv6Address("TCP", "::1", 80)
    assert (a.flowInfo, a.scopeID) == (0, 0)
    assert repr(a) == "IPv6Address(type='TCP', host='::1', port=80, flowInfo=0, scopeID=0)"
    assert hash(a) == hash(IPv6Address("TCP", "::1", 80))


def test_unix_address_stores_bytes_and_shows_str() -> None:
    a = UNIXAddress("/tmp/sock")
    assert a.name == b"/tmp/sock"
    assert a == UNIXAddress(b"/tmp/sock")
    assert repr(a) == "UNIXAddress('/tmp/sock')"
    assert repr(UNIXAddress(None)) == "UNIXAddress(None)"
    assert {a: 1}[UNIXAddress(b"/tmp/sock")] == 1


@pytest.mark.parametrize("module", [testing, error, address, interfaces])
def test_module_doctests(module: Any) -> None:
    assert doctest.testmod(module).failed == 0
