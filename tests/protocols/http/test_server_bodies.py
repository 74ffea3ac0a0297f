"""Request and response bodies: spooling, streaming both ways, limits, forms, cookies.

Every test runs on each reactor backend, with real sockets; the clients run
in worker threads.
"""

from __future__ import annotations

import hashlib
import http.client
import socket
import tracemalloc
from typing import Any

import pytest

from deferred import Deferred
from protocols.http import Resource, Site
from protocols.http import request as request_module
from protocols.http.resource import NOT_DONE_YET
from reactor.testing import StringTransport
from tests.protocols.http.test_server import raw_exchange

MiB = 1024 * 1024
PATTERN = bytes(range(256)) * 256  # 64 KiB, not all one byte (no lucky compression)


def pattern_digest(total: int) -> str:
    digest = hashlib.sha256()
    for _ in range(total // len(PATTERN)):
        digest.update(PATTERN)
    return digest.hexdigest()


def listen(reactor: Any, root: Resource, **kwargs: Any) -> tuple[Any, int]:
    port = reactor.listenTCP(0, Site(root, **kwargs), interface="127.0.0.1")
    return port, port.getHost().port


def tree(**children: Resource) -> Resource:
    root = Resource()
    for name, child in children.items():
        root.putChild(name.encode(), child)
    return root


# -- resources ----------------------------------------------------------------------


class Digest(Resource):
    """Buffered body: answers its sha256 and whether it went to disk."""

    isLeaf = True

    def render_POST(self, request: Any) -> bytes:
        digest = hashlib.sha256(request.content.read()).hexdigest()
        # A BytesIO (no _rolled) for a body announced small; spooled otherwise.
        rolled = getattr(request.content, "_rolled", False)
        return f"{digest} {rolled}".encode()


class StreamDigest(Resource):
    """Streamed body: hashed chunk by chunk, never held whole."""

    isLeaf = True
    streamRequestBody = True
    maxBodySize = 512 * MiB

    def __init__(self) -> None:
        super().__init__()
        self.largest_chunk = 0

    async def render_PUT(self, request: Any) -> bytes:
        assert request.content is None
        digest = hashlib.sha256()
        async for chunk in request.iterBody():
            self.largest_chunk = max(self.largest_chunk, len(chunk))
            digest.update(chunk)
        return digest.hexdigest().encode()


class DeliverCount(Resource):
    """deliverBody with a protocol that pauses the body after each chunk."""

    isLeaf = True
    streamRequestBody = True

    def render_POST(self, request: Any) -> Any:
        done: Deferred[bytes] = Deferred()

        class Counter:
            received = 0

            def makeConnection(self, transport: Any) -> None:
                self.transport = transport

            def dataReceived(self, data: bytes) -> None:
                self.received += len(data)
                self.transport.pauseProducing()
                request.site.reactor_for_tests.callLater(0, self.transport.resumeProducing)

            def connectionLost(self, reason: Any) -> None:
                done.callback(b"%d %s" % (self.received, reason.type.__name__.encode()))

        request.deliverBody(Counter())
        return done


class PushDownload(Resource):
    """A push producer generating ``size`` bytes of PATTERN."""

    isLeaf = True

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def render_GET(self, request: Any) -> Any:
        size = self.size

        class Producer:
            sent = 0
            paused = False
            pumping = False

            def pump(self) -> None:
                if self.pumping:
                    return
                self.pumping = True
                try:
                    while not self.paused and self.sent < size and request.channel is not None:
                        request.write(PATTERN)
                        self.sent += len(PATTERN)
                finally:
                    self.pumping = False
                if self.sent >= size and not request.finished and request.channel is not None:
                    request.finish()

            def pauseProducing(self) -> None:
                self.paused = True

            def resumeProducing(self) -> None:
                self.paused = False
                self.pump()

            def stopProducing(self) -> None:
                self.paused = True

        request.setHeader(b"Content-Length", b"%d" % size)
        producer = Producer()
        request.registerProducer(producer, True)
        producer.pump()
        return NOT_DONE_YET


class PullDownload(Resource):
    """A pull producer: one PATTERN each time the transport asks."""

    isLeaf = True

    def render_GET(self, request: Any) -> Any:
        class Producer:
            count = 0

            def resumeProducing(self) -> None:
                self.count += 1
                if self.count > 16:
                    request.unregisterProducer()
                    request.finish()
                    return
                request.write(PATTERN)

            def stopProducing(self) -> None:
                pass

        request.registerProducer(Producer(), False)
        return NOT_DONE_YET


class FilePart(Resource):
    """request.sendFile of a byte range of a file."""

    isLeaf = True

    def __init__(self, path: Any) -> None:
        super().__init__()
        self.path = path

    def render_GET(self, request: Any) -> Any:
        handle = open(self.path, "rb")  # noqa: SIM115 - closed when sent
        request.setHeader(b"Content-Length", b"%d" % 100_000)

        def done(result: object) -> object:
            handle.close()
            if request.channel is not None:
                request.finish()
            return result

        request.sendFile(handle, 1000, 100_000).addBoth(done)
        return NOT_DONE_YET


class Small(Resource):
    """Accepts at most 10 body bytes (below the site's limit)."""

    isLeaf = True
    maxBodySize = 10

    def render_POST(self, request: Any) -> bytes:
        return request.content.read()


class Guarded(Resource):
    """Refuses, from the head hook, requests without X-Token: before any body."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.bodies_read = 0

    def requestHeadReceived(self, request: Any) -> None:
        if request.getHeader(b"x-token") != b"ok":
            request.refuse(403)

    def render_POST(self, request: Any) -> bytes:
        self.bodies_read += 1
        return b"got " + request.content.read()


class Form(Resource):
    isLeaf = True

    def render_POST(self, request: Any) -> bytes:
        names = sorted(request.files)
        upload = request.files[b"upload"][0] if names else None
        body = upload.file.read() if upload is not None else b""
        return b"%r|%r|%s|%d" % (request.args.get(b"field"), names,
                                   (upload.filename or "").encode(), len(body))


class Cookies(Resource):
    isLeaf = True

    def render_GET(self, request: Any) -> bytes:
        request.addCookie(b"session", b"abc", path=b"/", httpOnly=True, sameSite="lax")
        return repr(sorted(request.received_cookies.items())).encode()


# -- buffered bodies ------------------------------------------------------------------


async def test_large_body_is_spooled_to_disk_small_stays_in_memory(reactor: Any) -> None:
    port, number = listen(reactor, tree(d=Digest()), spoolThreshold=4096)

    def client() -> list[bytes]:
        out = []
        for size in (100, 200_000):
            conn = http.client.HTTPConnection("127.0.0.1", number, timeout=10)
            conn.request("POST", "/d", body=PATTERN[:size] if size < len(PATTERN)
                         else PATTERN * 3 + PATTERN[: size - 3 * len(PATTERN)])
            out.append(conn.getresponse().read())
            conn.close()
        return out

    small, large = await reactor.deferToThread(client)
    assert small == f"{hashlib.sha256(PATTERN[:100]).hexdigest()} False".encode()
    big = PATTERN * 3 + PATTERN[: 200_000 - 3 * len(PATTERN)]
    assert large == f"{hashlib.sha256(big).hexdigest()} True".encode()
    await port.stopListening()


# -- streamed request bodies ------------------------------------------------------------


@pytest.mark.reactor_timeout(120)
async def test_256_mib_upload_streams_in_bounded_memory(reactor: Any) -> None:
    total = 256 * MiB
    resource = StreamDigest()
    port, number = listen(reactor, tree(up=resource))

    def client() -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", number, timeout=60)

        def body() -> Any:
            for _ in range(total // len(PATTERN)):
                yield PATTERN

        conn.request("PUT", "/up", body=body(), headers={"Content-Length": str(total)})
        response = conn.getresponse()
        result = response.status, response.read()
        conn.close()
        return result

    tracemalloc.start()
    try:
        status, answer = await reactor.deferToThread(client)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert status == 200
    assert answer.decode() == pattern_digest(total)
    # The whole body never sits in memory: a few reads' worth at most.
    assert peak < 16 * MiB, f"peak traced memory {peak / MiB:.1f} MiB"
    await port.stopListening()


async def test_chunked_streamed_upload_and_deliver_body_with_pauses(reactor: Any) -> None:
    site_root = tree(count=DeliverCount())
    site = Site(site_root)
    site.reactor_for_tests = reactor  # type: ignore[attr-defined]
    port = reactor.listenTCP(0, site, interface="127.0.0.1")
    number = port.getHost().port

    def client() -> bytes:
        conn = http.client.HTTPConnection("127.0.0.1", number, timeout=10)
        conn.request("POST", "/count", body=iter([PATTERN] * 40),
                     headers={"Transfer-Encoding": "chunked"}, encode_chunked=True)
        answer = conn.getresponse().read()
        conn.close()
        return answer

    assert await reactor.deferToThread(client) == b"%d ConnectionDone" % (40 * len(PATTERN))
    await port.stopListening()


async def test_streamed_body_over_the_limit_gets_413(reactor: Any) -> None:
    resource = StreamDigest()
    resource.maxBodySize = 100_000
    port, number = listen(reactor, tree(up=resource))
    head = (b"PUT /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"%x\r\n" % len(PATTERN) + PATTERN + b"\r\n"
            + b"%x\r\n" % len(PATTERN) + PATTERN + b"\r\n")
    answer = await reactor.deferToThread(raw_exchange, number, head)
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert b"Connection: close" in answer
    await port.stopListening()


# -- responses from producers and files ------------------------------------------------


@pytest.mark.reactor_timeout(120)
async def test_256_mib_download_from_a_push_producer_in_bounded_memory(reactor: Any) -> None:
    total = 256 * MiB
    port, number = listen(reactor, tree(big=PushDownload(total)))

    def client() -> tuple[int, str, int]:
        with socket.create_connection(("127.0.0.1", number), timeout=60) as sock:
            sock.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
            reader = sock.makefile("rb")
            status = int(reader.readline().split()[1])
            while reader.readline() not in (b"\r\n", b""):
                pass
            digest = hashlib.sha256()
            received = 0
            while received < total:
                chunk = reader.read(min(len(PATTERN), total - received))
                if not chunk:
                    break
                received += len(chunk)
                digest.update(chunk)
            return status, digest.hexdigest(), received

    tracemalloc.start()
    try:
        status, digest, received = await reactor.deferToThread(client)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (status, received) == (200, total)
    assert digest == pattern_digest(total)
    assert peak < 16 * MiB, f"peak traced memory {peak / MiB:.1f} MiB"
    await port.stopListening()


async def test_pull_producer_response_is_chunked_and_complete(reactor: Any) -> None:
    port, number = listen(reactor, tree(pull=PullDownload()))

    def client() -> tuple[str | None, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", number, timeout=10)
        conn.request("GET", "/pull")
        response = conn.getresponse()
        result = response.getheader("Transfer-Encoding"), response.read()
        conn.close()
        return result

    encoding, body = await reactor.deferToThread(client)
    assert encoding == "chunked"
    assert body == PATTERN * 16
    await port.stopListening()


@pytest.mark.parametrize("zero_copy", [True, False], ids=["native", "read-loop"])
async def test_send_file_sends_the_range_and_keeps_the_connection(
        reactor: Any, tmp_path: Any, zero_copy: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    if not zero_copy:
        monkeypatch.setattr(request_module, "_can_send_file", lambda transport: False)
    path = tmp_path / "data.bin"
    path.write_bytes(PATTERN * 4)
    port, number = listen(reactor, tree(f=FilePart(path)))

    def client() -> list[bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", number, timeout=10)
        bodies = []
        for _ in range(2):  # the second request shows the connection is still good
            conn.request("GET", "/f")
            bodies.append(conn.getresponse().read())
        conn.close()
        return bodies

    bodies = await reactor.deferToThread(client)
    assert bodies == [(PATTERN * 4)[1000:101_000]] * 2
    await port.stopListening()


# -- limits and refusals before the body ------------------------------------------------


async def test_per_resource_limit_refuses_by_content_length_and_by_chunks(
        reactor: Any) -> None:
    root = tree(small=Small(), d=Digest())
    port, number = listen(reactor, root, max_body=1000)
    by_length = b"POST /small HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n"
    by_chunks = (b"POST /small HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                 b"6\r\nabcdef\r\n6\r\nghijkl\r\n0\r\n\r\n")
    fits = b"POST /small HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789"
    site_limit = b"POST /d HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\r\n"

    def client() -> list[bytes]:
        return [raw_exchange(number, data + b"") for data in (by_length, by_chunks)] + [
            raw_exchange(number, fits.replace(b"HTTP/1.1\r\n", b"HTTP/1.1\r\nConnection: "
                                               b"close\r\n")),
            raw_exchange(number, site_limit)]

    length, chunks, ok, site = await reactor.deferToThread(client)
    assert length.startswith(b"HTTP/1.1 413 ")  # before any body byte was sent
    assert chunks.startswith(b"HTTP/1.1 413 ")
    assert ok.startswith(b"HTTP/1.1 200 ") and ok.endswith(b"0123456789")
    assert site.startswith(b"HTTP/1.1 413 ")
    await port.stopListening()


async def test_head_hook_refuses_expect_100_continue_without_reading_the_body(
        reactor: Any) -> None:
    guarded = Guarded()
    port, number = listen(reactor, tree(g=guarded))

    def client() -> tuple[bytes, bytes]:
        head = (b"POST /g HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                b"Expect: 100-continue\r\n")
        refused = raw_exchange(number, head + b"\r\n")
        # Accepted: 100 Continue first, then the body is read and answered.
        with socket.create_connection(("127.0.0.1", number), timeout=10) as sock:
            sock.sendall(head + b"X-Token: ok\r\nConnection: close\r\n\r\n")
            interim = b""
            while b"\r\n\r\n" not in interim:
                interim += sock.recv(1)
            sock.sendall(b"hello")
            rest = b""
            while chunk := sock.recv(65536):
                rest += chunk
        return refused, interim + rest

    refused, accepted = await reactor.deferToThread(client)
    assert refused.startswith(b"HTTP/1.1 403 ")  # no "100 Continue" before it
    assert b"100 Continue" not in refused
    assert accepted.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 ")
    assert accepted.endswith(b"got hello")
    assert guarded.bodies_read == 1
    await port.stopListening()


# -- forms and cookies ----------------------------------------------------------------


async def test_multipart_form_fills_args_and_files(reactor: Any) -> None:
    port, number = listen(reactor, tree(form=Form()), spoolThreshold=1000)
    boundary = b"----torsion-boundary"
    upload = PATTERN[:5000]
    body = (b"--" + boundary + b"\r\n"
            b'Content-Disposition: form-data; name="field"\r\n\r\nvalue 1\r\n'
            b"--" + boundary + b"\r\n"
            b'Content-Disposition: form-data; name="upload"; filename="a.bin"\r\n'
            b"Content-Type: application/octet-stream\r\n\r\n" + upload + b"\r\n"
            b"--" + boundary + b"--\r\n")

    def client() -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", number, timeout=10)
        conn.request("POST", "/form", body=body, headers={
            "Content-Type": "multipart/form-data; boundary=" + boundary.decode()})
        response = conn.getresponse()
        result = response.status, response.read()
        conn.close()
        return result

    status, answer = await reactor.deferToThread(client)
    assert status == 200
    assert answer == b"[b'value 1']|[b'upload']|a.bin|5000"
    await port.stopListening()


async def test_malformed_multipart_gets_400(reactor: Any) -> None:
    port, number = listen(reactor, tree(form=Form()))
    body = b"--b\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\nno end"
    data = (b"POST /form HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; "
            b"boundary=b\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    answer = await reactor.deferToThread(raw_exchange, number, data)
    assert answer.startswith(b"HTTP/1.1 400 ")
    await port.stopListening()


async def test_cookies_in_and_out(reactor: Any) -> None:
    port, number = listen(reactor, tree(c=Cookies()))

    def client() -> tuple[bytes, list[str]]:
        conn = http.client.HTTPConnection("127.0.0.1", number, timeout=10)
        conn.request("GET", "/c", headers={"Cookie": "a=1; b=two"})
        response = conn.getresponse()
        result = response.read(), response.headers.get_all("Set-Cookie") or []
        conn.close()
        return result

    body, set_cookies = await reactor.deferToThread(client)
    assert body == repr([(b"a", b"1"), (b"b", b"two")]).encode()
    assert len(set_cookies) == 1
    assert set_cookies[0].startswith("session=abc")
    assert "HttpOnly" in set_cookies[0] and "Path=/" in set_cookies[0]
    await port.stopListening()


# -- lingering close, without sockets ------------------------------------------------------


class HalfClosingTransport(StringTransport):
    """A StringTransport that records a half-close (loseWriteConnection)."""

    writeClosed = False

    def loseWriteConnection(self) -> None:
        self.writeClosed = True


def test_a_streamed_body_over_the_limit_in_a_later_read_lingers(clock: Any) -> None:
    # The head and the first chunk in one read: rendering starts and waits for
    # more. The chunk crossing the limit in the next read ends the request
    # with 413; the channel must then linger (half-close, keep reading), never
    # close outright while the client may still be sending: that reset used
    # to destroy the 413 before the client read it.
    resource = StreamDigest()
    resource.maxBodySize = 100_000
    site = Site(tree(up=resource))
    site.clock = clock
    channel = site.buildProtocol(("127.0.0.1", 1))
    assert channel is not None
    transport = HalfClosingTransport()
    channel.makeConnection(transport)
    channel.dataReceived(b"PUT /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                         + b"%x\r\n" % len(PATTERN) + PATTERN + b"\r\n")
    assert transport.value() == b""  # rendering, waiting for more body
    channel.dataReceived(b"%x\r\n" % len(PATTERN) + PATTERN + b"\r\n")
    assert transport.value().startswith(b"HTTP/1.1 413 ")
    assert transport.writeClosed and not transport.disconnecting
    channel.dataReceived(b"%x\r\n" % len(PATTERN) + PATTERN + b"\r\n")  # read and dropped
    assert not transport.disconnecting
    clock.advance(site.lingerTimeout)  # then the connection is closed after all
    assert transport.disconnecting
