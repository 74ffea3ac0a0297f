"""The HTTP server against real clients (http.client, urllib, curl) and raw sockets.

Every test runs on each reactor backend; the clients run in a worker thread
(``reactor.deferToThread``) so that the reactor keeps serving meanwhile.
"""

from __future__ import annotations

import http.client
import logging
import shutil
import socket
import subprocess
import urllib.error
import urllib.request
from typing import Any

import pytest

from deferred import Deferred, Failure
from protocols.http.resource import NOT_DONE_YET, IRequest, Resource
from protocols.http.server import Headers, Request, Site
from reactor.error import ConnectionDone, ConnectionLost
from reactor.task import deferLater

# -- resources ----------------------------------------------------------------------


class Hello(Resource):
    isLeaf = True

    def render_GET(self, request: IRequest) -> bytes:
        return b"hello " + b"/".join(request.postpath)


class Echo(Resource):
    """POST: echo the body and the args it saw."""

    isLeaf = True

    def render_POST(self, request: Any) -> bytes:
        body = request.content.read()
        args = b";".join(k + b"=" + b",".join(v) for k, v in sorted(request.args.items()))
        return body + b"|" + args


class Boom(Resource):
    isLeaf = True

    def render_GET(self, request: IRequest) -> bytes:
        raise RuntimeError("secret internals 12345")


class Streamed(Resource):
    """NOT_DONE_YET: three pieces written later from the reactor."""

    isLeaf = True

    def __init__(self, clock: Any) -> None:
        super().__init__()
        self.clock = clock

    def render_GET(self, request: Any) -> Any:
        def more(n: int) -> None:
            if n == 3:
                request.finish()
                return
            request.write(b"part%d;" % n)
            self.clock.callLater(0.01, more, n + 1)

        self.clock.callLater(0, more, 0)
        return NOT_DONE_YET


class AsyncRender(Resource):
    isLeaf = True

    def __init__(self, clock: Any) -> None:
        super().__init__()
        self.clock = clock

    async def render_GET(self, request: Any) -> bytes:
        await deferLater(self.clock, 0.01, lambda: None)
        request.setHeader(b"X-Async", b"yes")
        return b"async done"


class DeferredRender(Resource):
    isLeaf = True

    def __init__(self, clock: Any) -> None:
        super().__init__()
        self.clock = clock

    def render_GET(self, request: Any) -> Deferred[bytes]:
        return deferLater(self.clock, 0.01, lambda: b"deferred done")


class Slow(Resource):
    """Answers after a delay, to show pipelined answers are not reordered."""

    isLeaf = True

    def __init__(self, clock: Any) -> None:
        super().__init__()
        self.clock = clock

    def render_GET(self, request: Any) -> Deferred[bytes]:
        return deferLater(self.clock, 0.05, lambda: b"slow")


class Redirect(Resource):
    isLeaf = True

    def render_GET(self, request: Any) -> bytes:
        request.redirect(b"/hello/there")
        return b""


def make_site(reactor: Any, **kwargs: Any) -> Site:
    root = Resource()
    root.putChild(b"hello", Hello())
    root.putChild(b"echo", Echo())
    root.putChild(b"boom", Boom())
    root.putChild(b"stream", Streamed(reactor))
    root.putChild(b"async", AsyncRender(reactor))
    root.putChild(b"deferred", DeferredRender(reactor))
    root.putChild(b"slow", Slow(reactor))
    root.putChild(b"redirect", Redirect())
    return Site(root, **kwargs)


def listen(reactor: Any, **kwargs: Any) -> tuple[Any, int]:
    port = reactor.listenTCP(0, make_site(reactor, **kwargs), interface="127.0.0.1")
    return port, port.getHost().port


def raw_exchange(number: int, data: bytes, timeout: float = 5.0) -> bytes:
    """Send ``data`` on a fresh socket, read until the server closes."""
    with socket.create_connection(("127.0.0.1", number), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)


# -- Headers ------------------------------------------------------------------------


def test_headers_are_case_insensitive_and_multi_valued() -> None:
    h = Headers([(b"x-a", b"1")])
    h.addRawHeader(b"X-A", b"2")
    assert h.getRawHeaders(b"X-a") == [b"1", b"2"]
    assert h.hasHeader("x-A")
    h.setRawHeaders(b"x-a", [b"3"])
    assert h.getRawHeaders(b"x-a") == [b"3"]
    h.removeHeader(b"X-A")
    assert h.getRawHeaders(b"x-a", [b"d"]) == [b"d"]


# -- real clients -------------------------------------------------------------------


async def test_keep_alive_reuses_one_connection_for_three_requests(reactor: Any) -> None:
    port, number = listen(reactor)

    def client() -> list[tuple[int, bytes, str | None, str | None]]:
        conn = http.client.HTTPConnection("127.0.0.1", number, timeout=5)
        out = []
        try:
            socks = set()
            for name in (b"a", b"b", b"c"):
                conn.request("GET", "/hello/" + name.decode())
                resp = conn.getresponse()
                out.append((resp.status, resp.read(), resp.getheader("Date"),
                            resp.getheader("Server")))
                socks.add(id(conn.sock))
            assert len(socks) == 1  # one connection served all three
        finally:
            conn.close()
        return out

    results = await reactor.deferToThread(client)
    assert [r[:2] for r in results] == [(200, b"hello a"), (200, b"hello b"), (200, b"hello c")]
    assert all(r[2] and r[2].endswith("GMT") for r in results)
    assert all(r[3] == "Torsion" for r in results)
    await port.stopListening()


async def test_urllib_get_post_and_404(reactor: Any) -> None:
    port, number = listen(reactor)
    base = f"http://127.0.0.1:{number}"

    def client() -> tuple[bytes, bytes, int]:
        with urllib.request.urlopen(base + "/hello/x", timeout=5) as resp:
            got = resp.read()
        req = urllib.request.Request(base + "/echo?q=1&q=2&e=", data=b"payload")
        req.add_header("Content-Type", "application/octet-stream")
        with urllib.request.urlopen(req, timeout=5) as resp:
            posted = resp.read()
        try:
            urllib.request.urlopen(base + "/nope", timeout=5)
        except urllib.error.HTTPError as exc:
            code = exc.code
            exc.close()
        return got, posted, code

    got, posted, code = await reactor.deferToThread(client)
    assert got == b"hello x"
    assert posted == b"payload|e=;q=1,2"
    assert code == 404
    await port.stopListening()


async def test_urlencoded_form_body_merges_into_args(reactor: Any) -> None:
    port, number = listen(reactor)

    def client() -> bytes:
        req = urllib.request.Request(f"http://127.0.0.1:{number}/echo?a=1", data=b"b=2&a=3")
        with urllib.request.urlopen(req, timeout=5) as resp:
            return bytes(resp.read())

    assert await reactor.deferToThread(client) == b"b=2&a=3|a=1,3;b=2"
    await port.stopListening()


async def test_405_has_allow_header(reactor: Any) -> None:
    port, number = listen(reactor)

    def client() -> tuple[int, str | None]:
        conn = http.client.HTTPConnection("127.0.0.1", number, timeout=5)
        try:
            conn.request("DELETE", "/hello")
            resp = conn.getresponse()
            resp.read()
            return resp.status, resp.getheader("Allow")
        finally:
            conn.close()

    assert await reactor.deferToThread(client) == (405, "GET, HEAD")
    await port.stopListening()


async def test_head_sends_headers_without_body(reactor: Any) -> None:
    port, number = listen(reactor)
    data = await reactor.deferToThread(
        raw_exchange, number,
        b"HEAD /hello/x HTTP/1.1\r\nHost: t\r\n\r\n"
        b"GET /hello/y HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    first, _, rest = data.partition(b"\r\n\r\n")
    assert first.startswith(b"HTTP/1.1 200 OK")
    assert b"Content-Length: 7" in first
    # No body after the HEAD response: the next response follows at once.
    assert rest.startswith(b"HTTP/1.1 200 OK")
    assert rest.endswith(b"\r\n\r\nhello y")
    await port.stopListening()


async def test_redirect(reactor: Any) -> None:
    port, number = listen(reactor)

    def client() -> bytes:
        with urllib.request.urlopen(f"http://127.0.0.1:{number}/redirect", timeout=5) as r:
            return bytes(r.read())

    assert await reactor.deferToThread(client) == b"hello there"
    await port.stopListening()


# -- pipelining ---------------------------------------------------------------------


async def test_pipelined_requests_are_answered_in_order(reactor: Any) -> None:
    port, number = listen(reactor)
    data = await reactor.deferToThread(
        raw_exchange, number,
        b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n"
        b"GET /hello/2 HTTP/1.1\r\nHost: t\r\n\r\n"
        b"GET /deferred HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    assert data.count(b"HTTP/1.1 200 OK") == 3
    bodies = [part.split(b"\r\n\r\n", 1)[1] for part in data.split(b"HTTP/1.1 ")[1:]]
    assert bodies == [b"slow", b"hello 2", b"deferred done"]
    assert b"Connection: close" in data.split(b"HTTP/1.1 ")[3]
    await port.stopListening()


async def test_pipeline_beyond_the_bound_is_still_answered(reactor: Any) -> None:
    port, number = listen(reactor, maxPipeline=2)
    requests = b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n" * 5
    requests += b"GET /hello/end HTTP/1.1\r\nConnection: close\r\n\r\n"
    data = await reactor.deferToThread(raw_exchange, number, requests)
    assert data.count(b"HTTP/1.1 200 OK") == 6
    assert data.endswith(b"hello end")
    await port.stopListening()


# -- errors -------------------------------------------------------------------------


async def test_malformed_request_gets_400_and_close(reactor: Any) -> None:
    port, number = listen(reactor)
    data = await reactor.deferToThread(
        raw_exchange, number, b"GET /hello HTTP/1.1\r\nBad Header\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"Connection: close" in data
    await port.stopListening()


async def test_error_after_good_pipelined_request_answers_the_good_one_first(
        reactor: Any) -> None:
    port, number = listen(reactor)
    data = await reactor.deferToThread(
        raw_exchange, number,
        b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\nGET / HTTP/1.1\r\nA: b\r\nA\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 200 OK")
    assert data.index(b"slow") < data.index(b"HTTP/1.1 400")
    await port.stopListening()


async def test_body_over_max_body_gets_413(reactor: Any) -> None:
    port, number = listen(reactor, max_body=10)
    data = await reactor.deferToThread(
        raw_exchange, number,
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\n" + b"x" * 11)
    assert data.startswith(b"HTTP/1.1 413 ")
    assert b"Connection: close" in data
    await port.stopListening()


async def test_render_exception_gives_500_without_internals_and_logs(
        reactor: Any, caplog: pytest.LogCaptureFixture) -> None:
    port, number = listen(reactor)

    def client() -> tuple[int, bytes, int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", number, timeout=5)
        try:
            conn.request("GET", "/boom")
            resp = conn.getresponse()
            first = (resp.status, resp.read())
            # The connection is still usable after the 500.
            conn.request("GET", "/hello/after")
            resp = conn.getresponse()
            return (*first, resp.status, resp.read())
        finally:
            conn.close()

    with caplog.at_level(logging.ERROR, logger="protocols.http"):
        status, body, status2, body2 = await reactor.deferToThread(client)
    assert status == 500
    assert b"secret" not in body and b"Traceback" not in body
    assert (status2, body2) == (200, b"hello after")
    errors = [r for r in caplog.records if r.name == "protocols.http"]
    assert errors and errors[0].exc_info is not None
    assert "secret internals 12345" in caplog.text
    await port.stopListening()


# -- render results -----------------------------------------------------------------


async def test_not_done_yet_streams_chunked(reactor: Any) -> None:
    port, number = listen(reactor)
    data = await reactor.deferToThread(
        raw_exchange, number, b"GET /stream HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"Transfer-Encoding: chunked" in head
    assert body == b"6\r\npart0;\r\n6\r\npart1;\r\n6\r\npart2;\r\n0\r\n\r\n"

    def client() -> bytes:  # and http.client decodes it
        with urllib.request.urlopen(f"http://127.0.0.1:{number}/stream", timeout=5) as r:
            return bytes(r.read())

    assert await reactor.deferToThread(client) == b"part0;part1;part2;"
    await port.stopListening()


async def test_not_done_yet_on_http_1_0_is_close_delimited(reactor: Any) -> None:
    port, number = listen(reactor)
    data = await reactor.deferToThread(
        raw_exchange, number, b"GET /stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"chunked" not in head and b"Connection: close" in head
    assert body == b"part0;part1;part2;"
    await port.stopListening()


async def test_async_def_render(reactor: Any) -> None:
    port, number = listen(reactor)

    def client() -> tuple[bytes, str | None]:
        with urllib.request.urlopen(f"http://127.0.0.1:{number}/async", timeout=5) as r:
            return bytes(r.read()), r.headers.get("X-Async")

    assert await reactor.deferToThread(client) == (b"async done", "yes")
    await port.stopListening()


async def test_deferred_render(reactor: Any) -> None:
    port, number = listen(reactor)

    def client() -> bytes:
        with urllib.request.urlopen(f"http://127.0.0.1:{number}/deferred", timeout=5) as r:
            return bytes(r.read())

    assert await reactor.deferToThread(client) == b"deferred done"
    await port.stopListening()


async def test_notify_finish_errbacks_when_client_leaves(reactor: Any) -> None:
    seen: Deferred[Any] = Deferred()

    class Hang(Resource):
        isLeaf = True

        def render_GET(self, request: Any) -> Any:
            request.notifyFinish().addBoth(lambda r: seen.callback([r]))
            return NOT_DONE_YET

    port = reactor.listenTCP(0, Site(Hang()), interface="127.0.0.1")

    def client() -> None:
        with socket.create_connection(("127.0.0.1", port.getHost().port)) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            sock.settimeout(0.2)
            with pytest.raises(TimeoutError):
                sock.recv(10)

    await reactor.deferToThread(client)
    [outcome] = await seen
    assert isinstance(outcome, Failure) and outcome.check(ConnectionDone, ConnectionLost)
    await port.stopListening()


async def test_idle_keep_alive_connection_times_out(reactor: Any) -> None:
    port, number = listen(reactor, timeout=0.2)

    def client() -> bytes:
        with socket.create_connection(("127.0.0.1", number), timeout=5) as sock:
            sock.sendall(b"GET /hello/t HTTP/1.1\r\nHost: t\r\n\r\n")
            data = b""
            while chunk := sock.recv(65536):  # ends when the server closes
                data += chunk
            return data

    data = await reactor.deferToThread(client)
    assert data.endswith(b"hello t")
    await port.stopListening()


async def test_access_log_uses_combined_format(
        reactor: Any, caplog: pytest.LogCaptureFixture) -> None:
    port, number = listen(reactor)
    with caplog.at_level(logging.INFO, logger="protocols.http.access"):
        await reactor.deferToThread(
            raw_exchange, number,
            b'GET /hello/a?x=1 HTTP/1.1\r\nUser-Agent: t"ua\r\nReferer: r\r\n'
            b"Connection: close\r\n\r\n")
    lines = [r.getMessage() for r in caplog.records if r.name == "protocols.http.access"]
    assert len(lines) == 1
    assert lines[0].startswith("127.0.0.1 - - [")
    assert lines[0].endswith('] "GET /hello/a?x=1 HTTP/1.1" 200 7 "r" "t\\"ua"')
    await port.stopListening()


def test_request_path_parsing() -> None:
    from protocols.http.parser import RequestHead

    class FakeChannel:
        peer = host = None
        secure = False
        factory = Site(Resource())

    head = RequestHead(b"GET", b"http://h/a%2Fb/c?x=1&x=2&y", b"1.1", [], True,
                       False, None, False, False)
    request = Request(FakeChannel(), head)  # type: ignore[arg-type]
    assert request.path == b"/a%2Fb/c"
    assert request.postpath == [b"a/b", b"c"]
    assert request.args == {b"x": [b"1", b"2"], b"y": [b""]}
    with pytest.raises(ValueError):
        request.setHeader(b"X", b"a\r\nInjected: 1")


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
async def test_curl_keep_alive(reactor: Any) -> None:
    port, number = listen(reactor)
    url = f"http://127.0.0.1:{number}"

    def client() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["curl", "-s", "-i", "-v", url + "/hello/1", url + "/stream"],
            capture_output=True, text=True, timeout=10, check=True)

    result = await reactor.deferToThread(client)
    assert "HTTP/1.1 200 OK" in result.stdout
    assert "hello 1" in result.stdout and "part0;part1;part2;" in result.stdout
    assert "Re-using existing connection" in result.stderr or "Reusing" in result.stderr
    await port.stopListening()


async def test_chunked_upload_and_expect_100_continue(reactor: Any) -> None:
    port, number = listen(reactor)

    def client() -> tuple[bytes, bytes]:
        with socket.create_connection(("127.0.0.1", number), timeout=5) as sock:
            sock.sendall(b"POST /echo?k=v HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
                         b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
            interim = sock.recv(1024)  # the body is sent only after the 100
            sock.sendall(b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
            return interim, data

    interim, data = await reactor.deferToThread(client)
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert data.startswith(b"HTTP/1.1 200 OK") and data.endswith(b"\r\n\r\nabcde|k=v")
    await port.stopListening()


async def test_http_1_0_keep_alive(reactor: Any) -> None:
    port, number = listen(reactor)
    data = await reactor.deferToThread(
        raw_exchange, number,
        b"GET /hello/1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /hello/2 HTTP/1.0\r\n\r\n")
    first, second = data.split(b"HTTP/1.1 200 OK")[1:]
    assert b"Connection: keep-alive" in first and first.endswith(b"hello 1")
    assert b"Connection: close" in second and second.endswith(b"hello 2")
    await port.stopListening()


async def test_bad_render_result_and_failure_after_write(
        reactor: Any, caplog: pytest.LogCaptureFixture) -> None:
    class Wrong(Resource):
        isLeaf = True

        def render_GET(self, request: Any) -> Any:
            return "a str, not bytes"

    class Half(Resource):
        isLeaf = True

        async def render_GET(self, request: Any) -> bytes:
            request.write(b"partial")
            raise ValueError("late failure")

    root = Resource()
    root.putChild(b"wrong", Wrong())
    root.putChild(b"half", Half())
    port = reactor.listenTCP(0, Site(root), interface="127.0.0.1")
    number = port.getHost().port
    with caplog.at_level(logging.ERROR, logger="protocols.http"):
        wrong = await reactor.deferToThread(
            raw_exchange, number, b"GET /wrong HTTP/1.1\r\nConnection: close\r\n\r\n")
        half = await reactor.deferToThread(
            raw_exchange, number, b"GET /half HTTP/1.1\r\nHost: t\r\n\r\n")
    assert wrong.startswith(b"HTTP/1.1 500 ")
    # Already started: the connection is cut, with no chunked terminator.
    assert half.startswith(b"HTTP/1.1 200 OK") and b"partial" in half
    assert not half.endswith(b"0\r\n\r\n")
    assert "late failure" in caplog.text
    await port.stopListening()


async def test_upgrade_request_is_answered_then_closed(reactor: Any) -> None:
    port, number = listen(reactor)
    data = await reactor.deferToThread(
        raw_exchange, number,
        b"GET /hello/u HTTP/1.1\r\nHost: t\r\nConnection: upgrade\r\nUpgrade: x\r\n\r\n"
        b"not http at all")
    assert data.startswith(b"HTTP/1.1 200 OK") and data.endswith(b"hello u")
    assert b"Connection: close" in data
    await port.stopListening()
