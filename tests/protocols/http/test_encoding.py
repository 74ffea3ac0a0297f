"""Gzip response encoding: negotiation and decisions on a fake request, then
end to end through the server on every backend."""

from __future__ import annotations

import gzip
import http.client
import os
import zlib
from typing import Any

import pytest

from protocols.http.encoding import (
    EncodingResourceWrapper,
    GzipEncoderFactory,
    acceptedCodings,
)
from protocols.http.resource import NOT_DONE_YET, Resource
from protocols.http.server import Headers, Site

# -- a request double -----------------------------------------------------------


class FakeRequest:
    """The fields the encoder reads, and a server-like ``send`` that calls
    the hook the way server.py does: start() right before the head, then
    encode() per write and finish() at the end."""

    def __init__(self, accept: bytes | None = b"gzip", method: bytes = b"GET") -> None:
        self.method = method
        self.code = 200
        self.requestHeaders = Headers()
        if accept is not None:
            self.requestHeaders.setRawHeaders(b"Accept-Encoding", [accept])
        self.responseHeaders = Headers()
        self.encoder: Any = None
        self.prepath: list[bytes] = []
        self.postpath: list[bytes] = []

    def getHeader(self, name: bytes) -> bytes | None:
        values = self.requestHeaders.getRawHeaders(name)
        return values[-1] if values else None

    def setHeader(self, name: bytes, value: bytes) -> None:
        self.responseHeaders.setRawHeaders(name, [value])

    def setResponseCode(self, code: int, message: bytes | None = None) -> None:
        self.code = code

    def send(self, chunks: list[bytes]) -> bytes:
        encoder = self.encoder
        if encoder is not None and not encoder.start(self):
            encoder = None
        out = [encoder.encode(c) if encoder else c for c in chunks]
        if encoder is not None:
            out.append(encoder.finish())
        return b"".join(out)


def header(request: FakeRequest, name: bytes) -> list[bytes] | None:
    return request.responseHeaders.getRawHeaders(name)


def encoded(request: FakeRequest, ctype: bytes = b"text/html; charset=utf-8") -> FakeRequest:
    """``request`` after a wrapper installed its encoder and the resource set a type."""
    wrapper = EncodingResourceWrapper(Resource(), [GzipEncoderFactory()])
    request.encoder = wrapper._choose(request)
    if ctype:
        request.setHeader(b"Content-Type", ctype)
    return request


TEXT = b"".join(b"line %d of a very compressible text body\n" % i for i in range(2000))

# -- Accept-Encoding ----------------------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [
    (b"gzip", {b"gzip": 1.0}),
    (b"gzip, deflate, br", {b"gzip": 1.0, b"deflate": 1.0, b"br": 1.0}),
    (b"GZIP;Q=0.5 , identity; q=0", {b"gzip": 0.5, b"identity": 0.0}),
    (b"x-gzip", {b"gzip": 1.0}),
    (b"gzip;q=bad, br", {b"br": 1.0}),
    (b"gzip;q=2", {}),
    (b"gzip;q=0, gzip", {b"gzip": 0.0}),
    (b"", {}),
    (b" , ;q=1", {}),
])
def test_accepted_codings_parses_q_values(value: bytes, expected: dict[bytes, float]) -> None:
    assert acceptedCodings(value) == expected


@pytest.mark.parametrize(("accept", "compressed"), [
    (b"gzip", True),
    (b"deflate, gzip;q=0.1", True),
    (b"*", True),
    (b"x-gzip", True),
    (b"gzip;q=0", False),
    (b"gzip;q=0.000", False),
    (b"*;q=0", False),
    (b"gzip;q=0, *", False),  # the explicit refusal beats the wildcard
    (b"identity", False),
    (b"br", False),
    (None, False),  # no header: we only compress when asked
])
def test_negotiation(accept: bytes | None, compressed: bool) -> None:
    request = encoded(FakeRequest(accept))
    body = request.send([TEXT])
    assert (header(request, b"content-encoding") == [b"gzip"]) is compressed
    assert (gzip.decompress(body) if compressed else body) == TEXT
    # Either way the content depended on Accept-Encoding: caches must know.
    assert header(request, b"vary") == [b"Accept-Encoding"]


# -- what is compressed -------------------------------------------------------------


@pytest.mark.parametrize("ctype", [
    b"text/plain", b"text/css", b"application/json", b"application/javascript",
    b"application/xml", b"image/svg+xml", b"application/ld+json", b"application/atom+xml",
    b"TEXT/HTML; charset=latin-1",
])
def test_compressible_types(ctype: bytes) -> None:
    request = encoded(FakeRequest(), ctype)
    assert gzip.decompress(request.send([TEXT])) == TEXT
    assert header(request, b"content-encoding") == [b"gzip"]


@pytest.mark.parametrize("ctype", [
    b"image/png", b"application/zip", b"video/mp4", b"application/octet-stream",
    b"text/event-stream", b"",
])
def test_incompressible_types_are_untouched(ctype: bytes) -> None:
    request = encoded(FakeRequest(), ctype)
    request.setHeader(b"Content-Length", b"%d" % len(TEXT))
    assert request.send([TEXT]) == TEXT
    assert header(request, b"content-encoding") is None
    assert header(request, b"vary") is None
    assert header(request, b"content-length") == [b"%d" % len(TEXT)]


def test_compressing_fixes_the_representation_headers() -> None:
    request = encoded(FakeRequest())
    request.setHeader(b"Content-Length", b"%d" % len(TEXT))
    request.setHeader(b"ETag", b'"abc"')
    request.setHeader(b"Accept-Ranges", b"bytes")
    request.setHeader(b"Vary", b"Cookie")
    body = request.send([TEXT])
    assert gzip.decompress(body) == TEXT
    assert len(body) < len(TEXT) // 10
    assert header(request, b"content-length") is None  # the server chunks instead
    assert header(request, b"etag") == [b'W/"abc"']
    assert header(request, b"accept-ranges") is None
    assert header(request, b"vary") == [b"Cookie", b"Accept-Encoding"]


def test_vary_is_not_repeated_and_star_is_kept() -> None:
    for existing in (b"accept-encoding", b"Cookie, Accept-Encoding", b"*"):
        request = encoded(FakeRequest())
        request.setHeader(b"Vary", existing)
        request.send([TEXT])
        assert header(request, b"vary") == [existing]


def test_already_encoded_response_is_untouched() -> None:
    request = encoded(FakeRequest())
    precompressed = gzip.compress(TEXT)
    request.setHeader(b"Content-Encoding", b"gzip")
    assert request.send([precompressed]) == precompressed
    assert header(request, b"vary") is None


@pytest.mark.parametrize("code", [204, 206, 304, 101])
def test_status_codes_without_a_compressible_body(code: int) -> None:
    request = encoded(FakeRequest())
    request.setResponseCode(code)
    assert request.send([]) == b""
    assert header(request, b"content-encoding") is None


def test_head_is_not_compressed_but_varies() -> None:
    request = encoded(FakeRequest(method=b"HEAD"))
    request.setHeader(b"Content-Length", b"123")
    assert request.send([]) == b""
    assert header(request, b"content-encoding") is None
    assert header(request, b"content-length") == [b"123"]
    assert header(request, b"vary") == [b"Accept-Encoding"]


def test_no_transform_is_respected() -> None:
    request = encoded(FakeRequest())
    request.setHeader(b"Cache-Control", b"public, No-Transform")
    assert request.send([TEXT]) == TEXT


def test_error_pages_are_compressed() -> None:
    request = encoded(FakeRequest())
    request.setResponseCode(404)
    assert gzip.decompress(request.send([TEXT])) == TEXT


def test_streaming_many_chunks_decompresses_and_stays_small() -> None:
    request = encoded(FakeRequest(), b"application/json")
    encoder = request.encoder
    assert encoder.start(request)
    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
    total_in = total_out = 0
    restored = []
    for i in range(5000):
        chunk = b'{"n": %d, "payload": "%s"}\n' % (i, b"x" * (i % 100))
        total_in += len(chunk)
        piece = encoder.encode(chunk)
        total_out += len(piece)
        restored.append(decompressor.decompress(piece))
    tail = encoder.finish()
    restored.append(decompressor.decompress(tail) + decompressor.flush())
    assert decompressor.eof
    assert b"".join(restored) == b"".join(
        b'{"n": %d, "payload": "%s"}\n' % (i, b"x" * (i % 100)) for i in range(5000))
    assert total_out + len(tail) < total_in // 5
    # Compressed bytes come out while streaming, not only at the end.
    assert total_out > 0


def test_incompressible_random_bytes_still_round_trip() -> None:
    request = encoded(FakeRequest(), b"text/plain")
    data = os.urandom(200_000)
    assert gzip.decompress(request.send([data[:1000], data[1000:]])) == data


def test_encoder_decides_lazily_without_start() -> None:
    # A server that calls encode()/finish() before writing the head needs no start().
    request = encoded(FakeRequest())
    encoder = request.encoder
    body = encoder.encode(TEXT) + encoder.finish()
    assert gzip.decompress(body) == TEXT
    assert header(request, b"content-encoding") == [b"gzip"]
    assert encoder.start(request) is False  # finished: nothing more to encode


def test_refused_encoder_passes_bytes_through_lazily() -> None:
    request = encoded(FakeRequest(b"gzip;q=0"))
    encoder = request.encoder
    assert encoder.encode(b"abc") == b"abc"
    assert encoder.finish() == b""
    assert encoder.start(request) is False


def test_compress_level_is_checked() -> None:
    with pytest.raises(ValueError):
        GzipEncoderFactory(compressLevel=10)
    assert GzipEncoderFactory(1).compressLevel == 1


# -- the wrapper --------------------------------------------------------------------


class Text(Resource):
    isLeaf = True

    def __init__(self, body: bytes, ctype: bytes = b"text/plain") -> None:
        super().__init__()
        self.body = body
        self.ctype = ctype

    def render_GET(self, request: Any) -> bytes:
        request.setHeader(b"Content-Type", self.ctype)
        return self.body


def test_wrapper_wraps_children_and_keeps_an_existing_encoder() -> None:
    root = Resource()
    leaf = Text(b"x")
    root.putChild(b"leaf", leaf)
    wrapped = EncodingResourceWrapper(root, [GzipEncoderFactory()])
    assert wrapped.isLeaf is False
    request = FakeRequest()
    child = wrapped.getChildWithDefault(b"leaf", request)
    assert isinstance(child, EncodingResourceWrapper)
    assert child.isLeaf is True
    assert child.render(request) == b"x"
    first = request.encoder
    assert first is not None
    # A second wrapper (nested wrapping) leaves the chosen encoder alone.
    EncodingResourceWrapper(child, [GzipEncoderFactory()]).render(request)
    assert request.encoder is first
    wrapped.putChild(b"other", Text(b"y"))
    assert root.getStaticEntity(b"other") is not None


# -- end to end ---------------------------------------------------------------------


class Streamer(Resource):
    """NOT_DONE_YET: many writes from the reactor, then finish."""

    isLeaf = True

    def __init__(self, clock: Any, pieces: list[bytes]) -> None:
        super().__init__()
        self.clock = clock
        self.pieces = pieces

    def render_GET(self, request: Any) -> Any:
        request.setHeader(b"Content-Type", b"text/plain")

        def more(i: int) -> None:
            batch = self.pieces[i:i + 50]
            if not batch:
                request.finish()
                return
            for piece in batch:
                request.write(piece)
            self.clock.callLater(0, more, i + 50)

        more(0)
        return NOT_DONE_YET


class NotModified(Resource):
    isLeaf = True

    def render_GET(self, request: Any) -> bytes:
        request.setHeader(b"Content-Type", b"text/plain")
        request.setResponseCode(304)
        return b""


PIECES = [b"piece %d: %s\n" % (i, b"abc" * (i % 40)) for i in range(3000)]


def listen(reactor: Any) -> tuple[Any, int]:
    root = Resource()
    root.putChild(b"text", Text(TEXT))
    root.putChild(b"png", Text(TEXT, b"image/png"))
    root.putChild(b"stream", Streamer(reactor, PIECES))
    root.putChild(b"304", NotModified())
    site = Site(EncodingResourceWrapper(root, [GzipEncoderFactory()]))
    port = reactor.listenTCP(0, site, interface="127.0.0.1")
    return port, port.getHost().port


def fetch(number: int, requests: list[tuple[str, str, dict[str, str]]],
          ) -> list[tuple[int, dict[str, str], bytes]]:
    """Requests on one keep-alive connection: (status, headers, raw body)."""
    conn = http.client.HTTPConnection("127.0.0.1", number, timeout=10)
    out = []
    try:
        for method, path, headers in requests:
            conn.request(method, path, headers=headers)
            resp = conn.getresponse()
            out.append((resp.status, {k.lower(): v for k, v in resp.getheaders()},
                        resp.read()))
    finally:
        conn.close()
    return out


async def test_end_to_end_gzip(reactor: Any) -> None:
    port, number = listen(reactor)
    gz = {"Accept-Encoding": "gzip"}
    results = await reactor.deferToThread(fetch, number, [
        ("GET", "/text", gz),
        ("GET", "/text", {"Accept-Encoding": "gzip;q=0"}),
        ("GET", "/png", gz),
        ("GET", "/stream", {"Accept-Encoding": "br, gzip;q=0.8"}),
        ("HEAD", "/text", gz),
        ("GET", "/304", gz),
        ("GET", "/text", gz),  # the connection is still in step after all that
    ])
    (s1, h1, b1), (s2, h2, b2), (s3, h3, b3), (s4, h4, b4), (s5, h5, b5), \
        (s6, h6, b6), (s7, _, b7) = results
    # A rendered bytes body: compressed whole, sent with the compressed length.
    assert s1 == 200 and h1["content-encoding"] == "gzip"
    assert h1["vary"] == "Accept-Encoding"
    assert gzip.decompress(b1) == TEXT
    assert h1["content-length"] == str(len(b1)) and "transfer-encoding" not in h1
    # Refused: identity with the original length.
    assert s2 == 200 and "content-encoding" not in h2 and b2 == TEXT
    assert h2["content-length"] == str(len(TEXT))
    # Not compressible.
    assert s3 == 200 and "content-encoding" not in h3 and b3 == TEXT and "vary" not in h3
    # Streamed: chunked gzip that decompresses to what was written.
    assert s4 == 200 and h4["content-encoding"] == "gzip"
    assert h4["transfer-encoding"] == "chunked"
    assert "content-length" not in h4
    assert gzip.decompress(b4) == b"".join(PIECES)
    assert len(b4) < len(b"".join(PIECES)) // 5
    # HEAD: no body, not encoded.
    assert s5 == 200 and b5 == b"" and "content-encoding" not in h5
    # 304: no body, not encoded.
    assert s6 == 304 and b6 == b"" and "content-encoding" not in h6
    assert s7 == 200 and gzip.decompress(b7) == TEXT
    await port.stopListening()
