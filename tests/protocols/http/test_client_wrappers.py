"""Redirects, content decoding and the awaitable get/post, against our Site."""

from __future__ import annotations

import gzip
import json
import zlib
from typing import Any

import pytest

from protocols.http import client
from protocols.http.client import (
    Agent,
    BrowserLikeRedirectAgent,
    ContentDecoderAgent,
    DecompressionLimitError,
    DeflateDecoder,
    GzipDecoder,
    HTTPConnectionPool,
    InfiniteRedirection,
    PageRedirect,
    RedirectAgent,
    RedirectLimitError,
    RequestTimeoutError,
    ResponseFailed,
    readBody,
)
from protocols.http.resource import NOT_DONE_YET, Resource
from protocols.http.server import Headers, Site

TEXT = b"the quick brown fox jumps over the lazy dog. " * 2000


class Leaf(Resource):
    isLeaf = True


class Chain(Leaf):
    """/chain/N redirects (302) to /chain/N-1; /chain/0 answers."""

    def render_GET(self, request: Any) -> bytes:
        n = int(request.postpath[0])
        if n == 0:
            return b"landed"
        request.redirect(b"/chain/%d" % (n - 1))
        return b"moving on"


class RedirectTo(Leaf):
    """Redirects with ``code`` to ``target`` (relative or absolute)."""

    def __init__(self, code: int, target: bytes) -> None:
        super().__init__()
        self.code = code
        self.target = target

    def render(self, request: Any) -> bytes:
        request.setResponseCode(self.code)
        request.setHeader(b"Location", self.target)
        return b"see elsewhere"


class Show(Leaf):
    """Answers with the method, the Authorization header and the body."""

    def render(self, request: Any) -> bytes:
        auth = request.getHeader(b"authorization") or b"-"
        return request.method + b"|" + auth + b"|" + request.content.read()


class Compressed(Leaf):
    def __init__(self, coding: bytes) -> None:
        super().__init__()
        self.coding = coding

    def render_GET(self, request: Any) -> bytes:
        request.setHeader(b"X-Accept-Encoding", request.getHeader(b"accept-encoding") or b"")
        request.setHeader(b"Content-Encoding", self.coding)
        if self.coding == b"gzip":
            return gzip.compress(TEXT)
        if self.coding == b"gzip-cut":
            request.setHeader(b"Content-Encoding", b"gzip")
            whole = gzip.compress(TEXT)
            return whole[: len(whole) // 2]
        if self.coding == b"raw-deflate":
            request.setHeader(b"Content-Encoding", b"deflate")
            compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
            return compressor.compress(TEXT) + compressor.flush()
        return zlib.compress(TEXT)


class JSONEcho(Leaf):
    def render_POST(self, request: Any) -> bytes:
        request.setHeader(b"Content-Type", b"application/json; charset=utf-8")
        received = json.loads(request.content.read())
        return json.dumps({"got": received, "type": request.getHeader(b"content-type")
                           .decode()}).encode()

    def render_GET(self, request: Any) -> bytes:
        request.setHeader(b"Content-Type", b"text/plain; charset=latin-1")
        return "caf\u00e9".encode("latin-1")


class Never(Leaf):
    def render_GET(self, request: Any) -> Any:
        return NOT_DONE_YET


def make_site(other: bytes = b"") -> Site:
    root = Resource()
    root.putChild(b"chain", Chain())
    root.putChild(b"loop", RedirectTo(302, b"/loop"))
    root.putChild(b"see-other", RedirectTo(303, b"/show"))
    root.putChild(b"moved", RedirectTo(301, b"/show"))
    root.putChild(b"found", RedirectTo(302, b"/show"))
    root.putChild(b"temporary", RedirectTo(307, b"/show"))
    root.putChild(b"nowhere", RedirectTo(302, b""))
    root.putChild(b"away", RedirectTo(302, other + b"/show"))
    root.putChild(b"show", Show())
    root.putChild(b"gzip", Compressed(b"gzip"))
    root.putChild(b"deflate", Compressed(b"deflate"))
    root.putChild(b"gzip-cut", Compressed(b"gzip-cut"))
    root.putChild(b"raw-deflate", Compressed(b"raw-deflate"))
    root.putChild(b"gzip-to-chain", RedirectTo(302, b"/gzip"))
    root.putChild(b"json", JSONEcho())
    root.putChild(b"never", Never())
    return Site(root)


def listen(reactor: Any, other: bytes = b"") -> tuple[Any, bytes]:
    port = reactor.listenTCP(0, make_site(other), interface="127.0.0.1")
    return port, b"http://127.0.0.1:%d" % port.getHost().port


class Body:
    """A tiny IBodyProducer for the tests."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.length = len(data)

    def startProducing(self, consumer: Any) -> Any:
        from deferred import succeed

        consumer.write(self.data)
        return succeed(None)

    def pauseProducing(self) -> None: ...
    def resumeProducing(self) -> None: ...
    def stopProducing(self) -> None: ...


# -- redirects -------------------------------------------------------------------------------


async def test_redirect_chain_is_recorded(reactor: Any) -> None:
    port, base = listen(reactor)
    pool = HTTPConnectionPool(reactor)
    agent = RedirectAgent(Agent(reactor, pool=pool))
    response = await agent.request(b"GET", base + b"/chain/3")
    assert response.code == 200
    assert await readBody(response) == b"landed"
    chain = []
    previous = response.previousResponse
    while previous is not None:
        chain.append((previous.code, previous.request.absoluteURI))
        previous = previous.previousResponse
    assert chain == [(302, base + b"/chain/1"), (302, base + b"/chain/2"),
                     (302, base + b"/chain/3")]
    assert response.request.absoluteURI == base + b"/chain/0"
    assert pool.cachedConnections() == 1  # redirect bodies were read: one connection
    await pool.closeCachedConnections()
    await port.stopListening()


async def test_redirect_limit(reactor: Any) -> None:
    port, base = listen(reactor)
    agent = RedirectAgent(Agent(reactor), redirectLimit=3)
    with pytest.raises(ResponseFailed) as info:
        await agent.request(b"GET", base + b"/loop")
    error = info.value.reasons[0].value
    assert isinstance(error, RedirectLimitError)
    assert isinstance(error, InfiniteRedirection)
    assert error.location == base + b"/loop"
    # Exactly at the limit is fine.
    response = await RedirectAgent(Agent(reactor), redirectLimit=3).request(
        b"GET", base + b"/chain/3")
    assert await readBody(response) == b"landed"
    with pytest.raises(ResponseFailed):
        await RedirectAgent(Agent(reactor)).request(b"GET", base + b"/nowhere")
    await port.stopListening()


async def test_redirect_methods(reactor: Any) -> None:
    port, base = listen(reactor)
    plain = RedirectAgent(Agent(reactor))
    browser = BrowserLikeRedirectAgent(Agent(reactor))
    # 303: any method becomes GET, the body is dropped.
    response = await plain.request(b"POST", base + b"/see-other", None, Body(b"data"))
    assert await readBody(response) == b"GET|-|"
    # 301/302 for POST: RedirectAgent refuses, the browser-like one switches to GET.
    with pytest.raises(ResponseFailed) as info:
        await plain.request(b"POST", base + b"/found", None, Body(b"data"))
    assert info.value.reasons[0].check(PageRedirect)
    for path in (b"/found", b"/moved"):
        response = await browser.request(b"POST", base + path, None, Body(b"data"))
        assert await readBody(response) == b"GET|-|"
    # 307 keeps the method: a GET stays a GET.
    response = await plain.request(b"GET", base + b"/temporary")
    assert await readBody(response) == b"GET|-|"
    await port.stopListening()


async def test_credentials_do_not_follow_a_redirect_to_another_origin(reactor: Any) -> None:
    other_port, other = listen(reactor)
    port, base = listen(reactor, other=other)
    agent = RedirectAgent(Agent(reactor))
    headers = Headers([(b"Authorization", b"Basic c2VjcmV0")])
    response = await agent.request(b"GET", base + b"/found", headers)
    assert await readBody(response) == b"GET|Basic c2VjcmV0|"  # same origin: kept
    response = await agent.request(b"GET", base + b"/away", headers)
    assert response.request.absoluteURI == other + b"/show"
    assert await readBody(response) == b"GET|-|"  # other origin: dropped
    await port.stopListening()
    await other_port.stopListening()


# -- content decoding -------------------------------------------------------------------------


async def test_gzip_and_deflate_are_decoded(reactor: Any) -> None:
    port, base = listen(reactor)
    agent = ContentDecoderAgent(Agent(reactor), [(b"gzip", GzipDecoder),
                                                 (b"deflate", DeflateDecoder)])
    for path in (b"/gzip", b"/deflate", b"/raw-deflate"):
        response = await agent.request(b"GET", base + path)
        assert response.headers.getRawHeaders(b"x-accept-encoding") == [b"gzip,deflate"]
        assert not response.headers.hasHeader(b"content-encoding")
        assert await readBody(response) == TEXT
    # An agent that knows only gzip leaves deflate alone.
    gzip_only = ContentDecoderAgent(Agent(reactor), [(b"gzip", GzipDecoder)])
    response = await gzip_only.request(b"GET", base + b"/deflate")
    assert response.headers.getRawHeaders(b"content-encoding") == [b"deflate"]
    assert await readBody(response) == zlib.compress(TEXT)
    await port.stopListening()


async def test_decompressed_size_is_bounded(reactor: Any) -> None:
    port, base = listen(reactor)

    def small_gzip(response: Any) -> GzipDecoder:
        return GzipDecoder(response, maxSize=1000)

    agent = ContentDecoderAgent(Agent(reactor), [(b"gzip", small_gzip)])
    response = await agent.request(b"GET", base + b"/gzip")
    with pytest.raises(ResponseFailed) as info:
        await readBody(response)
    assert info.value.reasons[0].check(DecompressionLimitError)
    await port.stopListening()


# -- the awaitable shortcuts ------------------------------------------------------------------


async def test_get_and_post_json(reactor: Any) -> None:
    port, base = listen(reactor)
    url = base.decode()
    result = await client.post(url + "/json", json={"a": [1, 2]})
    assert result.code == 200
    assert result.json() == {"got": {"a": [1, 2]}, "type": "application/json"}
    result = await client.get(url + "/json")
    assert result.text() == "caf\u00e9"  # the charset from Content-Type
    result = await client.get(url + "/gzip")
    assert result.content == TEXT  # decoded
    result = await client.get(url + "/gzip-to-chain")
    assert result.content == TEXT
    assert result.history == [(302, url + "/gzip-to-chain")]
    assert result.url == url + "/gzip"
    result = await client.post(url + "/found", data="x=1")
    assert result.text() == "GET|-|"  # browser-like: POST then GET
    result = await client.post(url + "/temporary", data=b"again")
    assert result.text() == "POST|-|again"  # 307: the body is sent again
    result = await client.request("PUT", url + "/show", data=b"put", headers={"X-A": "b"})
    assert result.content == b"PUT|-|put"
    with pytest.raises(RedirectLimitError):
        await client.get(url + "/loop")
    with pytest.raises(RequestTimeoutError):
        await client.get(url + "/never", timeout=0.1)
    await port.stopListening()


async def test_head_and_truncated_compressed_bodies(reactor: Any) -> None:
    port, base = listen(reactor)
    agent = ContentDecoderAgent(Agent(reactor), [(b"gzip", GzipDecoder)])
    response = await agent.request(b"HEAD", base + b"/gzip")
    assert response.headers.getRawHeaders(b"content-encoding") == [b"gzip"]
    assert await readBody(response) == b""
    response = await agent.request(b"GET", base + b"/gzip-cut")
    with pytest.raises(ResponseFailed) as info:
        await readBody(response)
    assert "truncated" in str(info.value)
    await port.stopListening()


async def test_shortcuts_keep_connections_alive(reactor: Any) -> None:
    counted: list[Any] = []
    site = make_site()
    build = site.buildProtocol

    def counting(addr: Any) -> Any:
        counted.append(addr)
        return build(addr)

    site.buildProtocol = counting  # type: ignore[method-assign]
    port = reactor.listenTCP(0, site, interface="127.0.0.1")
    url = f"http://127.0.0.1:{port.getHost().port}/show"
    for _ in range(3):
        assert (await client.get(url)).content == b"GET|-|"
    assert len(counted) == 1
    await port.stopListening()
