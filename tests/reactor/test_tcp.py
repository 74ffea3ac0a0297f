"""TCP transports over real loopback sockets, on every backend (select, asyncio, uvloop)."""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

import pytest

from deferred import Deferred, DeferredList, gatherResults
from protocols import Factory
from reactor.address import IPv4Address, IPv6Address
from reactor.error import (
    CannotListenError,
    ConnectionAborted,
    ConnectionDone,
    ConnectionLost,
    ConnectionRefusedError,
    UserError,
)
from tests.reactor.conftest import (
    Echo,
    Recorder,
    RecordingClientFactory,
    SingleServerFactory,
    connected_pair,
)

# -- listening --------------------------------------------------------------------


def test_listen_on_port_zero_reports_the_bound_port(reactor: Any) -> None:
    port = reactor.listenTCP(0, Factory.forProtocol(Echo), interface="127.0.0.1")
    host = port.getHost()
    assert isinstance(host, IPv4Address)
    assert host.host == "127.0.0.1" and host.port > 0
    return port.stopListening()


def test_listen_on_a_taken_port_names_address_and_error(reactor: Any) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    try:
        number = taken.getsockname()[1]
        with pytest.raises(CannotListenError) as info:
            reactor.listenTCP(number, Factory.forProtocol(Echo), interface="127.0.0.1")
        assert f"127.0.0.1:{number}" in str(info.value)
        assert "in use" in str(info.value)
    finally:
        taken.close()


async def test_ipv6_loopback(reactor: Any) -> None:
    server, client = Recorder(), Recorder()
    port, _, _ = await connected_pair(reactor, server, client, interface="::1")
    assert isinstance(port.getHost(), IPv6Address)
    assert isinstance(client.transport.getPeer(), IPv6Address)
    client.transport.write(b"six")
    assert await server.wait_for_bytes(3) == b"six"
    client.transport.loseConnection()
    await server.lost
    await port.stopListening()


async def test_stopListening_refuses_new_connections(reactor: Any) -> None:
    factory = Factory.forProtocol(Echo)
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    assert factory.numPorts == 1
    number = port.getHost().port
    await port.stopListening()
    assert factory.numPorts == 0
    client_factory = RecordingClientFactory()
    reactor.connectTCP("127.0.0.1", number, client_factory)
    reason = await client_factory.failed
    assert reason.check(ConnectionRefusedError)


# -- the life of a connection ------------------------------------------------------------


async def test_echo_round_trip_and_clean_close(reactor: Any) -> None:
    port = reactor.listenTCP(0, Factory.forProtocol(Echo), interface="127.0.0.1")
    factory = RecordingClientFactory()
    connector = reactor.connectTCP("127.0.0.1", port.getHost().port, factory)
    assert factory.started == [connector]
    client = await factory.built
    await client.made
    client.transport.write(b"hello")
    client.transport.writeSequence([b" ", b"world"])
    assert await client.wait_for_bytes(11) == b"hello world"
    client.transport.loseConnection()
    reason = await client.lost
    assert reason.check(ConnectionDone)
    lost = await factory.connection_lost
    assert lost.check(ConnectionDone)
    assert client.events == ["made", "data", "lost"]
    await port.stopListening()


async def test_addresses(reactor: Any) -> None:
    server, client = Recorder(), Recorder()
    port, _, _ = await connected_pair(reactor, server, client)
    assert client.transport.getPeer() == server.transport.getHost()
    assert server.transport.getPeer() == client.transport.getHost()
    assert client.transport.getPeer().port == port.getHost().port
    client.transport.loseConnection()
    await server.lost
    # still known after the close
    assert server.transport.getPeer().host == "127.0.0.1"
    await port.stopListening()


async def test_large_writes_arrive_whole_and_in_order(reactor: Any) -> None:
    server, client = Recorder(), Recorder()
    port, _, _ = await connected_pair(reactor, server, client)
    payload = os.urandom(4 * 1024 * 1024)
    for i in range(0, len(payload), 1024 * 1024):
        client.transport.write(payload[i:i + 1024 * 1024])
    client.transport.writeSequence([b"tail-", b"end"])
    client.transport.loseConnection()  # must flush everything first
    await server.lost
    assert bytes(server.received) == payload + b"tail-end"
    await port.stopListening()


async def test_writes_after_loseConnection_are_ignored(reactor: Any) -> None:
    server, client = Recorder(), Recorder()
    port, _, _ = await connected_pair(reactor, server, client)
    client.transport.write(b"before")
    client.transport.loseConnection()
    client.transport.write(b"after")
    assert client.transport.disconnecting
    reason = await server.lost
    assert reason.check(ConnectionDone)
    assert bytes(server.received) == b"before"
    await port.stopListening()


async def test_write_str_is_a_type_error(reactor: Any) -> None:
    server, client = Recorder(), Recorder()
    port, _, _ = await connected_pair(reactor, server, client)
    with pytest.raises(TypeError):
        client.transport.write("text")  # type: ignore[arg-type]
    client.transport.loseConnection()
    await server.lost
    await port.stopListening()


async def test_connectionLost_is_not_called_inside_loseConnection(reactor: Any) -> None:
    server, client = Recorder(), Recorder()
    port, _, _ = await connected_pair(reactor, server, client)
    client.transport.loseConnection()
    assert "lost" not in client.events
    await client.lost
    assert client.events.count("lost") == 1
    await port.stopListening()


async def test_abortConnection(reactor: Any) -> None:
    server, client = Recorder(), Recorder()
    port, _, _ = await connected_pair(reactor, server, client)
    client.transport.write(b"x" * 100)
    client.transport.abortConnection()
    client.transport.abortConnection()  # twice is harmless
    reason = await client.lost
    assert reason.check(ConnectionAborted)
    server_reason = await server.lost
    assert server_reason.check(ConnectionDone, ConnectionLost)
    assert client.events.count("lost") == 1
    await port.stopListening()


async def test_peer_reset_is_ConnectionLost(reactor: Any) -> None:
    server = Recorder()
    port = reactor.listenTCP(0, SingleServerFactory(server), interface="127.0.0.1")
    raw = socket.create_connection(("127.0.0.1", port.getHost().port))
    await server.made
    # SO_LINGER 0: close() sends RST instead of FIN.
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    raw.close()
    reason = await server.lost
    assert reason.check(ConnectionLost)
    await port.stopListening()


class HalfCloser(Recorder):
    """Answers when the client has finished sending (half-close)."""

    def readConnectionLost(self) -> None:
        self.events.append("readLost")
        self.transport.write(b"got " + bytes(self.received))
        self.transport.loseConnection()


class WriteCloser(Recorder):
    def writeConnectionLost(self) -> None:
        self.events.append("writeLost")

    def readConnectionLost(self) -> None:
        self.events.append("readLost")
        self.transport.loseConnection()


async def test_half_close_both_ways(reactor: Any) -> None:
    server, client = HalfCloser(), WriteCloser()
    port, _, _ = await connected_pair(reactor, server, client)
    client.transport.write(b"request")
    client.transport.loseWriteConnection()
    reason = await client.lost
    assert bytes(client.received) == b"got request"
    assert "writeLost" in client.events and "readLost" in client.events
    assert reason.check(ConnectionDone)
    assert server.events[:3] == ["made", "data", "readLost"]
    await server.lost
    await port.stopListening()


async def test_setTcpNoDelay(reactor: Any) -> None:
    server, client = Recorder(), Recorder()
    port, _, _ = await connected_pair(reactor, server, client)
    client.transport.setTcpNoDelay(True)
    assert client.transport.getTcpNoDelay()
    client.transport.setTcpNoDelay(False)
    assert not client.transport.getTcpNoDelay()
    client.transport.loseConnection()
    await server.lost
    await port.stopListening()


# -- errors in user code ------------------------------------------------------------------


class Explodes(Recorder):
    def dataReceived(self, data: bytes) -> None:
        super().dataReceived(data)
        if b"boom" in data:
            raise ValueError("user code exploded")


async def test_exception_in_dataReceived_closes_only_that_connection(
        reactor: Any, caplog: pytest.LogCaptureFixture) -> None:
    bad_server, good_server = Explodes(), Recorder()
    port = reactor.listenTCP(0, SingleServerFactory(bad_server, good_server),
                             interface="127.0.0.1")
    bad_client, good_client = Recorder(), Recorder()
    for client in (bad_client, good_client):
        reactor.connectTCP("127.0.0.1", port.getHost().port,
                           RecordingClientFactory(lambda c=client: c))
        await client.made
    with caplog.at_level(logging.ERROR):
        bad_client.transport.write(b"boom")
        reason = await bad_server.lost
    assert reason.check(ValueError)
    await bad_client.lost
    assert "user code exploded" in caplog.text
    assert any(r.exc_info for r in caplog.records)
    # The other connection is untouched.
    good_client.transport.write(b"still here")
    assert await good_server.wait_for_bytes(10) == b"still here"
    good_client.transport.loseConnection()
    await good_server.lost
    await port.stopListening()


class ExplodesOnConnect(Recorder):
    def connectionMade(self) -> None:
        super().connectionMade()
        raise RuntimeError("connectionMade exploded")


async def test_exception_in_connectionMade(reactor: Any,
                                           caplog: pytest.LogCaptureFixture) -> None:
    server = ExplodesOnConnect()
    port = reactor.listenTCP(0, SingleServerFactory(server), interface="127.0.0.1")
    client = Recorder()
    with caplog.at_level(logging.ERROR):
        reactor.connectTCP("127.0.0.1", port.getHost().port,
                           RecordingClientFactory(lambda: client))
        reason = await server.lost
        await client.lost
    assert reason.check(RuntimeError)
    assert "connectionMade exploded" in caplog.text
    await port.stopListening()


def test_buildProtocol_returning_None_drops_the_connection(reactor: Any) -> Deferred[Any]:
    class Refuser(Factory):
        def buildProtocol(self, addr: Any) -> None:
            return None

    port = reactor.listenTCP(0, Refuser(), interface="127.0.0.1")
    factory = RecordingClientFactory()
    reactor.connectTCP("127.0.0.1", port.getHost().port, factory)

    def check(reason: Any) -> Any:
        assert reason.check(ConnectionDone, ConnectionLost)
        return port.stopListening()

    return factory.connection_lost.addCallback(check)


# -- connecting ----------------------------------------------------------------------------


async def test_connection_refused(reactor: Any) -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    number = probe.getsockname()[1]
    probe.close()  # nothing listens there now
    factory = RecordingClientFactory()
    reactor.connectTCP("127.0.0.1", number, factory)
    reason = await factory.failed
    assert reason.check(ConnectionRefusedError)


async def test_connect_by_host_name(reactor: Any) -> None:
    port = reactor.listenTCP(0, Factory.forProtocol(Echo), interface="127.0.0.1")
    factory = RecordingClientFactory()
    # "localhost" may resolve to ::1 first, which refuses: the next address wins.
    reactor.connectTCP("localhost", port.getHost().port, factory)
    client = await factory.built
    await client.made
    client.transport.write(b"ping")
    assert await client.wait_for_bytes(4) == b"ping"
    client.transport.loseConnection()
    await client.lost
    await port.stopListening()


async def test_stopConnecting_reports_UserError(reactor: Any) -> None:
    port = reactor.listenTCP(0, Factory.forProtocol(Echo), interface="127.0.0.1")
    factory = RecordingClientFactory()
    connector = reactor.connectTCP("localhost", port.getHost().port, factory)
    connector.stopConnecting()
    reason = await factory.failed
    assert reason.check(UserError)
    assert connector.state == "disconnected"
    await port.stopListening()


async def test_unknown_host_is_a_DNSLookupError(reactor: Any) -> None:
    from reactor.error import DNSLookupError

    factory = RecordingClientFactory()
    reactor.connectTCP("no-such-host.invalid", 80, factory)
    reason = await factory.failed
    assert reason.check(DNSLookupError)


# -- flow control ----------------------------------------------------------------------------


class PushProducer:
    """Writes chunks while not paused; records pause/resume calls."""

    def __init__(self, transport: Any, total: int) -> None:
        self.transport = transport
        self.remaining = total
        self.paused = False
        self.pauses = 0
        self.resumes = 0
        self.stopped = False
        self.done: Deferred[None] = Deferred()

    def pump(self) -> None:
        while not self.paused and self.remaining > 0:
            chunk = min(self.remaining, 16384)
            self.remaining -= chunk
            self.transport.write(b"p" * chunk)
        if self.remaining == 0 and not self.done.called:
            self.transport.unregisterProducer()
            self.transport.loseConnection()
            self.done.callback(None)

    def pauseProducing(self) -> None:
        self.paused = True
        self.pauses += 1

    def resumeProducing(self) -> None:
        self.paused = False
        self.resumes += 1
        self.transport.reactor.callLater(0, self.pump)

    def stopProducing(self) -> None:
        self.stopped = True


async def test_push_producer_is_paused_and_resumed(reactor: Any) -> None:
    server, client = Recorder(), Recorder()
    port, _, _ = await connected_pair(reactor, server, client)
    total = 8 * 1024 * 1024
    # The client stops reading, so the server's buffer fills and the
    # producer must be paused; reading again must resume it.
    client.transport.pauseProducing()
    producer = PushProducer(server.transport, total)
    server.transport.registerProducer(producer, True)
    producer.pump()
    assert producer.pauses >= 1
    assert producer.remaining > 0
    client.transport.resumeProducing()
    await producer.done
    await client.lost
    assert len(client.received) == total
    assert producer.resumes >= 1
    await port.stopListening()


class PullProducer:
    def __init__(self, transport: Any, chunks: int) -> None:
        self.transport = transport
        self.chunks = chunks
        self.calls = 0

    def resumeProducing(self) -> None:
        self.calls += 1
        if self.chunks == 0:
            self.transport.unregisterProducer()
            self.transport.loseConnection()
            return
        self.chunks -= 1
        self.transport.write(b"q" * 65536)

    def stopProducing(self) -> None:
        pass


async def test_pull_producer_is_asked_until_done(reactor: Any) -> None:
    server, client = Recorder(), Recorder()
    port, _, _ = await connected_pair(reactor, server, client)
    producer = PullProducer(server.transport, 32)
    server.transport.registerProducer(producer, False)
    await client.lost
    assert len(client.received) == 32 * 65536
    assert producer.calls == 33
    await port.stopListening()


async def test_second_producer_is_refused_and_lost_connection_stops_producer(
        reactor: Any) -> None:
    server, client = Recorder(), Recorder()
    port, _, _ = await connected_pair(reactor, server, client)
    producer = PushProducer(server.transport, 0)
    server.transport.registerProducer(producer, True)
    with pytest.raises(RuntimeError):
        server.transport.registerProducer(PushProducer(server.transport, 0), True)
    client.transport.loseConnection()
    await server.lost
    assert producer.stopped
    await port.stopListening()


async def test_loseConnection_waits_for_the_producer(reactor: Any) -> None:
    server, client = Recorder(), Recorder()
    port, _, _ = await connected_pair(reactor, server, client)
    producer = PushProducer(server.transport, 0)
    server.transport.registerProducer(producer, True)
    server.transport.write(b"first")
    server.transport.loseConnection()
    assert await client.wait_for_bytes(5) == b"first"
    assert "lost" not in client.events  # the producer is still registered
    server.transport.unregisterProducer()
    await client.lost
    await port.stopListening()


# -- many connections, and no leaks -------------------------------------------------------------


@pytest.mark.reactor_timeout(60)
async def test_500_simultaneous_echo_clients(reactor: Any) -> None:
    port = reactor.listenTCP(0, Factory.forProtocol(Echo), interface="127.0.0.1", backlog=512)
    clients = [Recorder() for _ in range(500)]
    for client in clients:
        reactor.connectTCP("127.0.0.1", port.getHost().port,
                           RecordingClientFactory(lambda c=client: c))
    await gatherResults([c.made for c in clients])
    for i, client in enumerate(clients):
        client.transport.write(b"client %d" % i)
    answers = await gatherResults(
        [c.wait_for_bytes(len(b"client %d" % i)) for i, c in enumerate(clients)])
    assert answers == [b"client %d" % i for i in range(500)]
    for client in clients:
        client.transport.loseConnection()
    await DeferredList([c.lost for c in clients])
    await port.stopListening()


def _fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.reactor_timeout(120)
async def test_1000_connect_close_cycles_leave_no_fds(reactor: Any) -> None:
    port = reactor.listenTCP(0, Factory.forProtocol(Echo), interface="127.0.0.1")
    number = port.getHost().port
    # One cycle first, so lazily created things (the thread pool for
    # name lookups, loop internals) exist before we count.
    before = None
    for i in range(1001):
        client = Recorder()
        reactor.connectTCP("127.0.0.1", number, RecordingClientFactory(lambda c=client: c))
        await client.made
        client.transport.write(b"x")
        await client.wait_for_bytes(1)
        client.transport.loseConnection()
        await client.lost
        if i == 0:
            before = _fd_count()
    # The server side of the last connection may close a moment later.
    for _ in range(100):
        if _fd_count() <= before:
            break
        await _next_turn(reactor)
    assert _fd_count() <= before
    await port.stopListening()


def _next_turn(reactor: Any) -> Deferred[None]:
    d: Deferred[None] = Deferred()
    reactor.callLater(0.01, d.callback, None)
    return d


async def test_connector_knows_its_transport_inside_connectionMade(reactor: Any) -> None:
    port = reactor.listenTCP(0, Factory.forProtocol(Echo), interface="127.0.0.1")
    seen: list[Any] = []

    class Client(Recorder):
        def connectionMade(self) -> None:
            seen.append(connector.transport is self.transport)
            super().connectionMade()

    client = Client()
    connector = reactor.connectTCP("127.0.0.1", port.getHost().port,
                                   RecordingClientFactory(lambda: client))
    await client.made
    assert seen == [True]
    connector.disconnect()
    await client.lost
    await port.stopListening()
