"""The HTTP client's connections: retries on stale ones, back-pressure, TLS, timeouts.

Raw torsion server protocols play servers that misbehave on purpose; TLS uses
certificates from a trustme CA. Everything is on 127.0.0.1, port 0.
"""

from __future__ import annotations

import socket
import ssl
from typing import Any

import pytest
import trustme

from deferred import Deferred, Failure
from protocols.base import Factory, Protocol
from protocols.http.client import (
    Agent,
    ConnectTimeoutError,
    HTTPConnectionPool,
    ResponseDone,
    ResponseNeverReceived,
    TLSConnectError,
    readBody,
)
from protocols.http.resource import Resource
from protocols.http.server import Site
from reactor.error import ConnectError

# -- a server that drops the kept-alive connection when it is reused ----------------------


class OneShotServer(Protocol):
    """Answers the first request on each connection with keep-alive; on the
    second request, closes without a word (as a server whose idle timeout
    struck just as the request arrived)."""

    factory: Any

    def connectionMade(self) -> None:
        self.factory.connections += 1
        self.buffer = b""
        self.served = 0

    def dataReceived(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            _, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
            if self.served:
                self.transport.loseConnection()
                return
            self.served += 1
            self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")


def one_shot_factory() -> Factory[OneShotServer]:
    factory = Factory.forProtocol(OneShotServer)
    factory.connections = 0  # type: ignore[attr-defined]
    factory.noisy = False
    return factory


async def test_stale_cached_connection_is_retried_once_for_get(reactor: Any) -> None:
    factory = one_shot_factory()
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    url = b"http://127.0.0.1:%d/" % port.getHost().port
    pool = HTTPConnectionPool(reactor)
    agent = Agent(reactor, pool=pool)
    assert await readBody(await agent.request(b"GET", url)) == b"ok"
    assert pool.cachedConnections() == 1
    # The cached connection fails before any response byte: retried on a new one.
    assert await readBody(await agent.request(b"GET", url)) == b"ok"
    assert factory.connections == 2  # type: ignore[attr-defined]
    await pool.closeCachedConnections()
    await port.stopListening()


async def test_stale_connection_is_not_retried_for_post(reactor: Any) -> None:
    factory = one_shot_factory()
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    url = b"http://127.0.0.1:%d/" % port.getHost().port
    pool = HTTPConnectionPool(reactor)
    agent = Agent(reactor, pool=pool)
    assert await readBody(await agent.request(b"GET", url)) == b"ok"
    with pytest.raises(ResponseNeverReceived):
        await agent.request(b"POST", url)  # not idempotent: never sent twice
    assert factory.connections == 1  # type: ignore[attr-defined]
    await port.stopListening()


# -- back-pressure ----------------------------------------------------------------------------


class FloodServer(Protocol):
    """Sends a chunked body, one piece per reactor turn, as a push producer;
    after its transport has paused it once, sends ``after_resume`` more bytes
    and ends."""

    factory: Any

    def connectionMade(self) -> None:
        self.paused = False
        self.resumed = False
        self.sent = 0
        self.started = False
        self.call: Any = None

    def dataReceived(self, data: bytes) -> None:
        if b"\r\n\r\n" in data and not self.started:
            self.started = True
            self.transport.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            self.transport.registerProducer(self, True)
            self._schedule()

    def _schedule(self) -> None:
        if self.call is None:
            self.call = self.transport.reactor.callLater(0, self._produce)

    def _produce(self) -> None:
        self.call = None
        if self.paused:
            return
        if self.resumed and self.sent >= self.factory.after_resume:
            self.transport.write(b"0\r\n\r\n")
            self.transport.unregisterProducer()
            return
        self.transport.write(b"10000\r\n" + b"x" * 65536 + b"\r\n")
        self.sent += 65536
        self._schedule()

    def pauseProducing(self) -> None:
        self.paused = True
        if not self.factory.server_paused.called:
            self.factory.server_paused.callback(None)

    def resumeProducing(self) -> None:
        self.paused = False
        if not self.resumed:
            self.resumed = True
            self.sent = 0
        self._schedule()

    def stopProducing(self) -> None:
        self.paused = True


class PausingBody(Protocol):
    """Pauses after the first piece; records any data delivered while paused."""

    def __init__(self) -> None:
        self.received = 0
        self.pieces = 0
        self.paused = False
        self.while_paused = 0
        self.first: Deferred[None] = Deferred()
        self.done: Deferred[tuple[Failure]] = Deferred()

    def dataReceived(self, data: bytes) -> None:
        if self.paused:
            self.while_paused += len(data)
        self.received += len(data)
        self.pieces += 1
        if self.pieces == 1:
            self.paused = True
            self.transport.pauseProducing()  # type: ignore[union-attr, attr-defined]
            self.first.callback(None)

    def resume(self) -> None:
        self.paused = False
        self.transport.resumeProducing()  # type: ignore[union-attr, attr-defined]

    def connectionLost(self, reason: Failure) -> None:  # type: ignore[override]
        self.done.callback((reason,))


async def test_body_back_pressure_reaches_the_server(reactor: Any) -> None:
    factory = Factory.forProtocol(FloodServer)
    factory.noisy = False
    factory.server_paused = Deferred()  # type: ignore[attr-defined]
    factory.after_resume = 1024 * 1024  # type: ignore[attr-defined]
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    response = await Agent(reactor).request(b"GET", b"http://127.0.0.1:%d/" % port.getHost().port)
    body = PausingBody()
    response.deliverBody(body)
    await body.first
    # The client stopped reading, so the server's transport filled and paused it.
    await factory.server_paused  # type: ignore[attr-defined]
    assert body.while_paused == 0
    received_while_paused = body.received
    body.resume()
    (reason,) = await body.done
    assert reason.check(ResponseDone)
    assert body.while_paused == 0
    assert body.received > received_while_paused
    assert body.pieces > 2  # streamed in pieces, not delivered at once
    await port.stopListening()


# -- connect timeout ---------------------------------------------------------------------------


async def test_connect_timeout_against_a_full_backlog(reactor: Any) -> None:
    # A listening socket nobody accepts from, with a backlog of 0: once one
    # connection waits in its queue, the kernel drops further SYNs, so a new
    # connect hangs.
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    address = server.getsockname()
    filler = socket.create_connection(address, timeout=5)
    try:
        agent = Agent(reactor, connectTimeout=0.2)
        with pytest.raises(ConnectTimeoutError) as info:
            await agent.request(b"GET", b"http://127.0.0.1:%d/" % address[1])
        assert isinstance(info.value, TimeoutError)
        assert isinstance(info.value, ConnectError)
        assert f"127.0.0.1:{address[1]}" in str(info.value)
    finally:
        filler.close()
        server.close()


# -- TLS ---------------------------------------------------------------------------------------


class Hello(Resource):
    isLeaf = True

    def render_GET(self, request: Any) -> bytes:
        return b"secure hello"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def listen_tls(reactor: Any, ca: trustme.CA, *names: str) -> tuple[Any, bytes]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*names).configure_cert(context)
    root = Resource()
    root.putChild(b"hello", Hello())
    port = reactor.listenSSL(0, Site(root), context, interface="127.0.0.1")
    return port, b"https://127.0.0.1:%d/hello" % port.getHost().port


def trusting(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


async def test_tls_with_a_trusted_ca(reactor: Any, ca: trustme.CA) -> None:
    port, url = listen_tls(reactor, ca, "127.0.0.1", "localhost")
    pool = HTTPConnectionPool(reactor)
    agent = Agent(reactor, contextFactory=trusting(ca), pool=pool)
    for _ in range(2):
        response = await agent.request(b"GET", url)
        assert await readBody(response) == b"secure hello"
    assert pool.cachedConnections() == 1  # kept alive over TLS too
    await pool.closeCachedConnections()

    class Policy:
        """Twisted-style: a policy picks the context per host."""

        def __init__(self) -> None:
            self.asked: list[tuple[bytes, int]] = []

        def creatorForNetloc(self, host: bytes, port: int) -> ssl.SSLContext:
            self.asked.append((host, port))
            return trusting(ca)

    policy = Policy()
    response = await Agent(reactor, contextFactory=policy).request(b"GET", url)
    assert await readBody(response) == b"secure hello"
    assert policy.asked == [(b"127.0.0.1", port.getHost().port)]
    await port.stopListening()


async def test_tls_wrong_hostname_fails(reactor: Any, ca: trustme.CA) -> None:
    port, url = listen_tls(reactor, ca, "other.example")
    agent = Agent(reactor, contextFactory=trusting(ca))
    with pytest.raises(TLSConnectError) as info:
        await agent.request(b"GET", url)
    assert info.value.reason.check(ssl.SSLCertVerificationError)
    assert "mismatch" in str(info.value).lower()
    await port.stopListening()


async def test_tls_untrusted_certificate_fails_by_default(reactor: Any, ca: trustme.CA) -> None:
    port, url = listen_tls(reactor, ca, "127.0.0.1")
    agent = Agent(reactor)  # the system's CAs: trustme's CA is not among them
    with pytest.raises(TLSConnectError) as info:
        await agent.request(b"GET", url)
    assert isinstance(info.value, ConnectError)
    assert "certificate verify failed" in str(info.value)
    await port.stopListening()


class Silent(Protocol):
    """Accepts the connection and never says a word (no TLS handshake)."""


async def test_connect_timeout_covers_the_tls_handshake(reactor: Any, ca: trustme.CA) -> None:
    factory = Factory.forProtocol(Silent)
    factory.noisy = False
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    agent = Agent(reactor, contextFactory=trusting(ca), connectTimeout=0.2)
    with pytest.raises(ConnectTimeoutError):
        await agent.request(b"GET", b"https://127.0.0.1:%d/" % port.getHost().port)
    await port.stopListening()


class _IdleConnection:
    """Just what the pool reads of a cached connection."""

    def __init__(self) -> None:
        self.state = "QUIESCENT"
        self.reused = False
        self.lostCallback: Any = None
        self.closed = False
        self.transport: Any = self

    def loseConnection(self) -> None:
        self.closed = True


def test_idle_timer_counts_from_the_last_return_not_the_first() -> None:
    from protocols.http._pool import HTTPConnectionPool
    from reactor.testing import Clock

    clock = Clock()
    pool = HTTPConnectionPool(clock)
    pool.cachedConnectionTimeout = 10.0
    connection: Any = _IdleConnection()
    key = ("http", b"h", 80, 0)
    pool._putConnection(key, connection)
    clock.advance(8)
    taken: list[Any] = []
    pool.getConnection(key, None).addCallback(taken.append)  # type: ignore[arg-type]
    assert taken == [connection] and connection.reused
    clock.advance(1)
    pool._putConnection(key, connection)  # idle again at t=9: expires at t=19
    assert len(clock.getDelayedCalls()) == 1  # the first timer was kept, not doubled
    clock.advance(1.5)  # t=10.5: the first timer fires, finds it idle 1.5 s only
    assert not connection.closed and pool.cachedConnections(key) == 1
    clock.advance(8)  # t=18.5
    assert not connection.closed
    clock.advance(0.5)  # t=19
    assert connection.closed and pool.cachedConnections(key) == 0
    assert clock.getDelayedCalls() == []


def test_connection_lost_while_lent_out_drops_its_idle_timer() -> None:
    from protocols.http._pool import HTTPConnectionPool
    from reactor.testing import Clock

    clock = Clock()
    pool = HTTPConnectionPool(clock)
    connection: Any = _IdleConnection()
    key = ("http", b"h", 80, 0)
    pool._putConnection(key, connection)
    pool.getConnection(key, None)  # type: ignore[arg-type]
    assert len(clock.getDelayedCalls()) == 1
    connection.lostCallback(connection)  # what the protocol does when it is lost
    assert clock.getDelayedCalls() == []
