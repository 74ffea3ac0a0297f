"""The HTTP client (Agent, pool, readBody, body producers) against real servers.

Servers: our own Site (in the reactor under test) and the stdlib's
``http.server`` (a ThreadingHTTPServer in a thread), both on 127.0.0.1,
port 0. Every test runs on each reactor backend.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from deferred import Deferred, Failure
from protocols.base import Protocol
from protocols.http.client import (
    UNKNOWN_LENGTH,
    Agent,
    FileBodyProducer,
    HTTPConnectionPool,
    PartialDownloadError,
    PotentialDataLoss,
    ResponseDone,
    ResponseFailed,
    ResponseNeverReceived,
    ResponseParseError,
    SchemeNotSupported,
    readBody,
)
from protocols.http.resource import NOT_DONE_YET, Resource
from protocols.http.server import Site
from reactor.error import ConnectionRefusedError

# -- our own server ----------------------------------------------------------------------


class Hello(Resource):
    isLeaf = True

    def render_GET(self, request: Any) -> bytes:
        request.setHeader(b"X-Path", request.path)
        return b"hello"


class Echo(Resource):
    """Echo the method, the framing the request used, and its body."""

    isLeaf = True

    def render_POST(self, request: Any) -> bytes:
        framing = (request.getHeader(b"content-length") or b"-") + b"|" + (
            request.getHeader(b"transfer-encoding") or b"-")
        return request.method + b"|" + framing + b"|" + request.content.read()

    render_PUT = render_POST


class Pieces(Resource):
    """No Content-Length: the server sends the body chunked, in pieces, later."""

    isLeaf = True

    def __init__(self, clock: Any) -> None:
        super().__init__()
        self.clock = clock

    def render_GET(self, request: Any) -> Any:
        def more(n: int) -> None:
            if n == 3:
                request.finish()
                return
            request.write(b"piece%d;" % n)
            self.clock.callLater(0, more, n + 1)

        self.clock.callLater(0, more, 0)
        return NOT_DONE_YET


class Never(Resource):
    """Never answers."""

    isLeaf = True

    def render_GET(self, request: Any) -> Any:
        return NOT_DONE_YET


class CountingSite(Site):
    """A Site that counts the connections it accepted."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.connections = 0

    def buildProtocol(self, addr: Any) -> Any:
        self.connections += 1
        return super().buildProtocol(addr)


def make_site(reactor: Any) -> CountingSite:
    root = Resource()
    root.putChild(b"hello", Hello())
    root.putChild(b"echo", Echo())
    root.putChild(b"pieces", Pieces(reactor))
    root.putChild(b"never", Never())
    return CountingSite(root)


def listen(reactor: Any, site: Site | None = None) -> tuple[Any, CountingSite, bytes]:
    site = site or make_site(reactor)
    port = reactor.listenTCP(0, site, interface="127.0.0.1")
    return port, site, b"http://127.0.0.1:%d" % port.getHost().port


# -- the stdlib server ---------------------------------------------------------------------


class StdlibHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean

    def do_GET(self) -> None:
        if self.path == "/cl":
            self._send(200, b"content-length body")
        elif self.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for piece in (b"abc", b"defgh", b"i"):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
        elif self.path == "/close10":
            # HTTP/1.0, no length: the body ends when the connection closes.
            self.wfile.write(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n")
            self.wfile.write(b"until the end")
            self.close_connection = True
        elif self.path == "/malformed":
            self.wfile.write(b"HTTP/1.1 2x0 Nope\r\nContent-Length: 2\r\n\r\nhi")
            self.close_connection = True
        elif self.path == "/badlength":
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort")
            self.close_connection = True
        else:
            self._send(404, b"nope")

    def do_HEAD(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "1234")
        self.end_headers()

    def do_POST(self) -> None:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int(self.rfile.readline().strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    break
                body += self.rfile.read(size)
                self.rfile.readline()
            framing = b"chunked"
        else:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            framing = b"length"
        self._send(200, framing + b":" + body)

    def _send(self, code: int, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def stdlib_url(reactor: Any) -> Iterator[bytes]:
    """The base URL of a stdlib ThreadingHTTPServer running in a thread."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), StdlibHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield b"http://127.0.0.1:%d" % server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class Collector(Protocol):
    """A body protocol that records what it got, and fires when the body ends."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        # Fired with a tuple: a Deferred fired with a Failure would errback.
        self.done: Deferred[tuple[Failure]] = Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.chunks.append(data)

    def connectionLost(self, reason: Failure = Failure(ResponseDone())) -> None:  # noqa: B008
        self.done.callback((reason,))


async def body_and_reason(response: Any) -> tuple[bytes, Failure]:
    collector = Collector()
    response.deliverBody(collector)
    (reason,) = await collector.done
    return b"".join(collector.chunks), reason


# -- against our Site ---------------------------------------------------------------------


async def test_get_from_site(reactor: Any) -> None:
    port, _, base = listen(reactor)
    agent = Agent(reactor)
    response = await agent.request(b"GET", base + b"/hello/x?q=1")
    assert response.code == 200
    assert response.phrase == b"OK"
    assert response.version == (b"HTTP", 1, 1)
    assert response.headers.getRawHeaders(b"x-path") == [b"/hello/x"]
    assert response.length == 5
    assert response.request.method == b"GET"
    assert response.request.absoluteURI == base + b"/hello/x?q=1"
    assert await readBody(response) == b"hello"
    await port.stopListening()


async def test_post_with_known_length_and_chunked_body(reactor: Any) -> None:
    port, _, base = listen(reactor)
    agent = Agent(reactor)
    known = FileBodyProducer(io.BytesIO(b"x" * 100_000), readSize=7000)
    assert known.length == 100_000
    response = await agent.request(b"POST", base + b"/echo", None, known)
    assert await readBody(response) == b"POST|100000|-|" + b"x" * 100_000

    class Unseekable(io.RawIOBase):
        def __init__(self) -> None:
            self.parts = [b"first ", b"second ", b"third"]

        def readable(self) -> bool:
            return True

        def read(self, size: int = -1) -> bytes:
            return self.parts.pop(0) if self.parts else b""

        def seekable(self) -> bool:
            return False

        def tell(self) -> int:
            raise OSError("not seekable")

    chunked = FileBodyProducer(Unseekable())  # type: ignore[arg-type]
    assert chunked.length is UNKNOWN_LENGTH
    response = await agent.request(b"PUT", base + b"/echo", None, chunked)
    assert await readBody(response) == b"PUT|-|chunked|first second third"
    await port.stopListening()


async def test_head_has_no_body(reactor: Any) -> None:
    port, _, base = listen(reactor)
    pool = HTTPConnectionPool(reactor)
    agent = Agent(reactor, pool=pool)
    response = await agent.request(b"HEAD", base + b"/hello")
    assert response.code == 200
    assert response.headers.getRawHeaders(b"content-length") == [b"5"]
    assert response.length == 0
    assert await readBody(response) == b""
    # The connection is in a clean state: the next request on it works.
    response = await agent.request(b"GET", base + b"/hello")
    assert await readBody(response) == b"hello"
    await pool.closeCachedConnections()
    await port.stopListening()


async def test_chunked_response_streams_in_pieces(reactor: Any) -> None:
    port, _, base = listen(reactor)
    response = await Agent(reactor).request(b"GET", base + b"/pieces")
    assert response.length is UNKNOWN_LENGTH
    body, reason = await body_and_reason(response)
    assert body == b"piece0;piece1;piece2;"
    assert reason.check(ResponseDone)
    await port.stopListening()


async def test_keep_alive_reuses_one_connection(reactor: Any) -> None:
    port, site, base = listen(reactor)
    pool = HTTPConnectionPool(reactor)
    agent = Agent(reactor, pool=pool)
    for _ in range(3):
        response = await agent.request(b"GET", base + b"/hello")
        assert await readBody(response) == b"hello"
    assert site.connections == 1
    assert pool.cachedConnections() == 1
    await pool.closeCachedConnections()
    assert pool.cachedConnections() == 0
    await port.stopListening()


async def test_non_persistent_pool_uses_a_connection_per_request(reactor: Any) -> None:
    port, site, base = listen(reactor)
    agent = Agent(reactor)  # the default pool is not persistent, as in Twisted
    for _ in range(2):
        assert await readBody(await agent.request(b"GET", base + b"/hello")) == b"hello"
    assert site.connections == 2
    await port.stopListening()


async def test_pool_keeps_at_most_max_persistent_per_host(reactor: Any) -> None:
    port, site, base = listen(reactor)
    pool = HTTPConnectionPool(reactor)
    pool.maxPersistentPerHost = 1
    agent = Agent(reactor, pool=pool)
    # Two at once need two connections; only one is kept afterwards.
    both = [agent.request(b"GET", base + b"/hello") for _ in range(2)]
    for d in both:
        assert await readBody(await d) == b"hello"
    assert site.connections == 2
    assert pool.cachedConnections() == 1
    for _ in range(2):
        assert await readBody(await agent.request(b"GET", base + b"/hello")) == b"hello"
    assert site.connections == 2  # the kept one served both
    await pool.closeCachedConnections()
    await port.stopListening()


async def test_total_timeout_against_a_server_that_never_answers(reactor: Any) -> None:
    from protocols.http.client import RequestTimeoutError

    port, _, base = listen(reactor)
    agent = Agent(reactor, timeout=0.2)
    with pytest.raises(RequestTimeoutError) as info:
        await agent.request(b"GET", base + b"/never")
    assert isinstance(info.value, TimeoutError)
    assert "0.2 seconds" in str(info.value)
    # The per-request keyword overrides the agent's setting.
    with pytest.raises(RequestTimeoutError):
        await Agent(reactor).request(b"GET", base + b"/never", timeout=0.1)
    await port.stopListening()


async def test_cancelling_a_request_aborts_it(reactor: Any) -> None:
    port, _, base = listen(reactor)
    d = Agent(reactor).request(b"GET", base + b"/never")
    reactor.callLater(0.05, d.cancel)
    with pytest.raises(ResponseNeverReceived):
        await d
    await port.stopListening()


async def test_connection_refused_and_bad_urls(reactor: Any) -> None:
    port, _, base = listen(reactor)
    await port.stopListening()  # nothing listens there any more
    agent = Agent(reactor)
    with pytest.raises(ConnectionRefusedError):
        await agent.request(b"GET", base + b"/")
    with pytest.raises(SchemeNotSupported):
        await agent.request(b"GET", b"ftp://127.0.0.1/")
    with pytest.raises(ValueError):
        await agent.request(b"GET", b"http:///nohost")
    with pytest.raises(ValueError):
        await agent.request(b"GET", b"http://127.0.0.1/a b")


# -- against the stdlib server ------------------------------------------------------------


async def test_stdlib_content_length_and_chunked(reactor: Any, stdlib_url: bytes) -> None:
    pool = HTTPConnectionPool(reactor)
    agent = Agent(reactor, pool=pool)
    response = await agent.request(b"GET", stdlib_url + b"/cl")
    assert response.length == len(b"content-length body")
    assert response.headers.getRawHeaders(b"server")[0].startswith(b"BaseHTTP")
    assert await readBody(response) == b"content-length body"
    response = await agent.request(b"GET", stdlib_url + b"/chunked")
    assert response.length is UNKNOWN_LENGTH
    assert await readBody(response) == b"abcdefghi"
    response = await agent.request(b"HEAD", stdlib_url + b"/cl")
    assert await readBody(response) == b""
    response = await agent.request(b"GET", stdlib_url + b"/missing")
    assert response.code == 404
    assert await readBody(response) == b"nope"
    await pool.closeCachedConnections()


async def test_stdlib_post_bodies(reactor: Any, stdlib_url: bytes) -> None:
    agent = Agent(reactor)
    producer = FileBodyProducer(io.BytesIO(b"known length"))
    response = await agent.request(b"POST", stdlib_url + b"/", None, producer)
    assert await readBody(response) == b"length:known length"

    class Pipe(io.BytesIO):
        def seek(self, *args: Any) -> int:
            raise OSError("a pipe cannot seek")

    producer = FileBodyProducer(Pipe(b"y" * 200_000), readSize=30_000)
    assert producer.length is UNKNOWN_LENGTH
    response = await agent.request(b"POST", stdlib_url + b"/", None, producer)
    assert await readBody(response) == b"chunked:" + b"y" * 200_000


async def test_close_delimited_http10_response(reactor: Any, stdlib_url: bytes) -> None:
    agent = Agent(reactor)
    response = await agent.request(b"GET", stdlib_url + b"/close10")
    assert response.version == (b"HTTP", 1, 0)
    assert response.length is UNKNOWN_LENGTH
    body, reason = await body_and_reason(response)
    assert body == b"until the end"
    assert reason.check(PotentialDataLoss)  # as Twisted: HTTP cannot tell it is whole
    response = await agent.request(b"GET", stdlib_url + b"/close10")
    with pytest.raises(PartialDownloadError) as info:
        await readBody(response)
    assert info.value.response == b"until the end"
    assert info.value.status == b"200"


async def test_malformed_response_fails(reactor: Any, stdlib_url: bytes) -> None:
    agent = Agent(reactor)
    with pytest.raises(ResponseFailed) as info:
        await agent.request(b"GET", stdlib_url + b"/malformed")
    assert info.value.reasons[0].check(ResponseParseError)
    assert "malformed HTTP response" in str(info.value)
    # A body shorter than its Content-Length: the body protocol hears ResponseFailed.
    response = await agent.request(b"GET", stdlib_url + b"/badlength")
    body, reason = await body_and_reason(response)
    assert body == b"short"
    assert reason.check(ResponseFailed)


def only_cached(pool: HTTPConnectionPool) -> Any:
    (connections,) = pool._connections.values()
    (connection,) = connections
    return connection


async def test_idle_connection_expires_from_the_pool(reactor: Any) -> None:
    port, site, base = listen(reactor)
    pool = HTTPConnectionPool(reactor)
    pool.cachedConnectionTimeout = 0.05
    agent = Agent(reactor, pool=pool)
    assert await readBody(await agent.request(b"GET", base + b"/hello")) == b"hello"
    await only_cached(pool).whenClosed()
    assert pool.cachedConnections() == 0
    assert await readBody(await agent.request(b"GET", base + b"/hello")) == b"hello"
    assert site.connections == 2
    await pool.closeCachedConnections()
    await port.stopListening()


async def test_connection_the_server_closes_leaves_the_pool(reactor: Any) -> None:
    root = Resource()
    root.putChild(b"hello", Hello())
    site = CountingSite(root, timeout=0.05)  # the server drops idle connections
    port, _, base = listen(reactor, site)
    pool = HTTPConnectionPool(reactor)
    agent = Agent(reactor, pool=pool)
    assert await readBody(await agent.request(b"GET", base + b"/hello")) == b"hello"
    await only_cached(pool).whenClosed()
    assert pool.cachedConnections() == 0
    assert await readBody(await agent.request(b"GET", base + b"/hello")) == b"hello"
    assert site.connections == 2
    await pool.closeCachedConnections()
    await port.stopListening()


async def test_ipv6_literal_url(reactor: Any) -> None:
    # IPv6 loopback is assumed here as in tests/reactor (test_tcp listens on ::1).
    port = reactor.listenTCP(0, make_site(reactor), interface="::1")
    response = await Agent(reactor).request(b"GET", b"http://[::1]:%d/hello" % port.getHost().port)
    assert await readBody(response) == b"hello"
    assert response.request.headers.getRawHeaders(b"host") == [b"[::1]:%d" % port.getHost().port]
    await port.stopListening()


async def test_many_concurrent_requests_through_one_pool(reactor: Any) -> None:
    from deferred import gatherResults

    port, site, base = listen(reactor)
    pool = HTTPConnectionPool(reactor)
    agent = Agent(reactor, pool=pool)

    def fetch(n: int) -> Deferred[bytes]:
        return agent.request(b"GET", base + b"/hello/%d" % n).addCallback(readBody)

    bodies = await gatherResults([fetch(n) for n in range(20)])
    assert bodies == [b"hello"] * 20
    assert pool.cachedConnections() == 2  # maxPersistentPerHost's default
    connections = site.connections
    await gatherResults([fetch(n) for n in range(2)])
    assert site.connections == connections  # the two kept ones served these
    await pool.closeCachedConnections()
    await port.stopListening()
