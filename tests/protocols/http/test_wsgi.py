"""WSGIResource: PEP 3333 applications served by the HTTP server, on every backend.

Clients are blocking (http.client, raw sockets) and run in a worker thread via
``reactor.deferToThread``; the applications run in the same reactor thread pool
(the pool has room for both).
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import http.client
import json
import logging
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any
from wsgiref.validate import validator

import pytest

from protocols.http import wsgi
from protocols.http.encoding import EncodingResourceWrapper, GzipEncoderFactory
from protocols.http.resource import Resource
from protocols.http.server import Site
from protocols.http.wsgi import WSGIResource

App = Callable[[dict[str, Any], Any], Any]

# -- helpers ------------------------------------------------------------------------


def serve(reactor: Any, app: App, at_root: bool = False) -> tuple[Any, int]:
    resource = WSGIResource(reactor, reactor.getThreadPool(), app)
    if at_root:
        site = Site(resource)
    else:
        root = Resource()
        root.putChild(b"app", resource)
        site = Site(root)
    port = reactor.listenTCP(0, site, interface="127.0.0.1")
    return port, port.getHost().port


def raw_exchange(number: int, data: bytes) -> bytes:
    """Send ``data`` on a fresh socket and read until the server closes."""
    with socket.create_connection(("127.0.0.1", number), timeout=10) as sock:
        sock.sendall(data)
        chunks: list[bytes] = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)


def fetch(number: int, requests: list[tuple[str, str, bytes | None, dict[str, str]]],
          ) -> list[tuple[int, str, dict[str, str], bytes]]:
    """Requests on one keep-alive connection: (status, reason, headers, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", number, timeout=10)
    out = []
    try:
        for method, path, body, headers in requests:
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            out.append((resp.status, resp.reason,
                        {k.lower(): v for k, v in resp.getheaders()}, resp.read()))
    finally:
        conn.close()
    return out


def get(number: int, path: str) -> tuple[int, str, dict[str, str], bytes]:
    return fetch(number, [("GET", path, None, {})])[0]


def hello_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-App", "yes")])
    return [b"hello " + environ["PATH_INFO"].encode("latin-1")]


# -- plain requests -----------------------------------------------------------------


async def test_plain_app(reactor: Any) -> None:
    port, number = serve(reactor, hello_app)
    (s1, _, h1, b1), (s2, _, _, b2) = await reactor.deferToThread(fetch, number, [
        ("GET", "/app/x/y", None, {}), ("GET", "/app/z", None, {})])
    assert (s1, b1, s2, b2) == (200, b"hello /x/y", 200, b"hello /z")
    assert h1["content-type"] == "text/plain" and h1["x-app"] == "yes"
    # A one-item list is the whole body: sent with a length, not chunked.
    assert h1["content-length"] == str(len(b1)) and "transfer-encoding" not in h1
    await port.stopListening()


def dump_environ(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    body = environ["wsgi.input"].read()
    environ["wsgi.errors"].write("a note from the app\n")
    out: dict[str, Any] = {k: v for k, v in environ.items() if isinstance(v, str)}
    out.update({
        "body": body.decode("latin-1"),
        "wsgi.version": list(environ["wsgi.version"]),
        "wsgi.multithread": environ["wsgi.multithread"],
        "wsgi.multiprocess": environ["wsgi.multiprocess"],
        "wsgi.run_once": environ["wsgi.run_once"],
    })
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(out).encode()]


async def test_environ_of_a_known_request(reactor: Any,
                                          caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="protocols.http.wsgi")
    port, number = serve(reactor, dump_environ)
    request = (b"POST /app/a%20b/%C3%A9?x=1&y=%20 HTTP/1.1\r\n"
               b"Host: example.test:8080\r\n"
               b"Content-Type: text/plain; charset=utf-8\r\n"
               b"Content-Length: 11\r\n"
               b"X-Multi: a\r\n"
               b"X-Multi: b\r\n"
               b"X_Multi: spoofed\r\n"
               b"Cookie: a=1\r\n"
               b"Cookie: b=2\r\n"
               b"Connection: close\r\n\r\n"
               b"hello world")
    data = await reactor.deferToThread(raw_exchange, number, request)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK")
    env = json.loads(body)
    expected = {
        "REQUEST_METHOD": "POST",
        "SCRIPT_NAME": "/app",
        "PATH_INFO": "/a b/\xc3\xa9",  # percent-decoded, bytes carried as latin-1
        "QUERY_STRING": "x=1&y=%20",
        "REQUEST_URI": "/app/a%20b/%C3%A9?x=1&y=%20",
        "CONTENT_TYPE": "text/plain; charset=utf-8",
        "CONTENT_LENGTH": "11",
        "SERVER_NAME": "example.test",
        "SERVER_PORT": str(number),
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "example.test:8080",
        "HTTP_X_MULTI": "a, b",
        "HTTP_COOKIE": "a=1; b=2",
        "HTTP_CONNECTION": "close",
        "wsgi.url_scheme": "http",
        "wsgi.version": [1, 0],
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "body": "hello world",
    }
    assert {k: env.get(k) for k in expected} == expected
    assert env["PATH_INFO"].encode("latin-1").decode("utf-8") == "/a b/é"
    assert int(env["REMOTE_PORT"]) > 0
    assert "HTTP_CONTENT_TYPE" not in env and "HTTP_CONTENT_LENGTH" not in env
    # The underscore spelling never reaches the application.
    assert not any("spoofed" in v for v in env.values() if isinstance(v, str))
    assert "a note from the app" in caplog.messages
    await port.stopListening()


async def test_script_name_and_path_info_at_root_and_mount_point(reactor: Any) -> None:
    def paths(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [])
        return [f"{environ['SCRIPT_NAME']}|{environ['PATH_INFO']}".encode()]

    port, number = serve(reactor, paths)
    root_port, root_number = serve(reactor, paths, at_root=True)
    got = await reactor.deferToThread(fetch, number, [
        ("GET", "/app", None, {}), ("GET", "/app/", None, {}), ("GET", "/app/a/b/", None, {})])
    assert [r[3] for r in got] == [b"/app|", b"/app|/", b"/app|/a/b/"]
    got = await reactor.deferToThread(fetch, root_number, [
        ("GET", "/", None, {}), ("GET", "/x/y", None, {})])
    assert [r[3] for r in got] == [b"|/", b"|/x/y"]
    await port.stopListening()
    await root_port.stopListening()


def echo_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    stream = environ["wsgi.input"]
    first = stream.readline()
    rest = stream.read()
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return [environ["CONTENT_LENGTH"].encode() + b"|" + first + b"|" + rest]


async def test_post_bodies(reactor: Any) -> None:
    port, number = serve(reactor, echo_app)
    big = bytes(range(256)) * 4000  # 1 MB: spooled to disk by the server
    results = await reactor.deferToThread(fetch, number, [
        ("POST", "/app", b"line1\nline2", {"Content-Type": "text/plain"}),
        ("POST", "/app", b"a=1&b=2", {"Content-Type": "application/x-www-form-urlencoded"}),
        ("PUT", "/app", big, {}),
        ("GET", "/app", None, {}),
    ])
    assert [r[3] for r in results[:2]] == [b"11|line1\n|line2", b"7|a=1&b=2|"]
    length, _, rest = results[2][3].partition(b"|")
    assert int(length) == len(big)
    first, _, tail = rest.partition(b"|")
    assert first + tail == big
    assert results[3][3] == b"||"  # no body: CONTENT_LENGTH is empty
    await port.stopListening()


async def test_chunked_request_body_gets_its_real_length(reactor: Any) -> None:
    port, number = serve(reactor, echo_app)
    data = await reactor.deferToThread(
        raw_exchange, number,
        b"POST /app HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
        b"Connection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
    assert data.endswith(b"\r\n\r\n11|hello world|")
    await port.stopListening()


# -- PEP 3333 conformance -----------------------------------------------------------


def chatty_app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
    stream = environ["wsgi.input"]
    lines = stream.readlines()
    for _ in stream:
        pass
    environ["wsgi.errors"].write("checked\n")
    environ["wsgi.errors"].writelines(["a", "b\n"])
    environ["wsgi.errors"].flush()
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"from write;")
    yield b"lines=%d;" % len(lines)
    yield b""
    yield environ["REQUEST_METHOD"].encode()


@pytest.mark.filterwarnings("error::wsgiref.validate.WSGIWarning")
async def test_wsgiref_validator_accepts_what_we_pass(reactor: Any) -> None:
    port, number = serve(reactor, validator(chatty_app))
    results = await reactor.deferToThread(fetch, number, [
        ("GET", "/app/x?q=1", None, {}),
        ("POST", "/app/", b"one\ntwo\n", {"Content-Type": "text/plain"}),
        ("HEAD", "/app/x", None, {}),
        ("GET", "/app", None, {}),
    ])
    assert [(r[0], r[3]) for r in results] == [
        (200, b"from write;lines=0;GET"), (200, b"from write;lines=2;POST"), (200, b""),
        (200, b"from write;lines=0;GET")]
    await port.stopListening()


def test_status_and_header_validation() -> None:
    assert wsgi._parse_status("200 OK") == (200, b"OK")
    assert wsgi._parse_status("404") == (404, b"")
    assert wsgi._parse_status("599 Caf\xe9") == (599, b"Caf\xe9")
    for bad in ("OK", "20 OK", "200OK", "200 OK\r\nX: y", "099 Low"):
        with pytest.raises(ValueError):
            wsgi._parse_status(bad)
    with pytest.raises(TypeError):
        wsgi._parse_status(b"200 OK")
    assert wsgi._parse_headers([("A", "1"), ("Content-Length", "5")]) == (
        [(b"A", b"1"), (b"Content-Length", b"5")], 5)
    for bad_headers in ([("Connection", "close")], [("Transfer-Encoding", "chunked")],
                        [("Keep-Alive", "5")], [("Bad Name", "x")], [("X", "a\nb")],
                        [("Content-Length", "-1")]):
        with pytest.raises(ValueError):
            wsgi._parse_headers(bad_headers)
    for bad_type in ((("A", "1"),), [("A", b"1")], [("A",)], [["A", "1"]]):
        with pytest.raises(TypeError):
            wsgi._parse_headers(bad_type)


def test_error_stream_logs_lines(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="protocols.http.wsgi")
    stream = wsgi._ErrorStream()
    stream.write("one\ntw")
    stream.write("o\nthree")
    assert caplog.messages == ["one", "two"]
    stream.flush()
    assert caplog.messages == ["one", "two", "three"]
    with pytest.raises(TypeError):
        stream.write(b"bytes")  # type: ignore[arg-type]


# -- write(), Content-Length, HEAD --------------------------------------------------


async def test_write_callable_and_content_length(reactor: Any) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        path = environ["PATH_INFO"]
        if path == "/write":
            write = start_response("201 Created", [("Content-Type", "text/plain")])
            write(b"a")
            write(b"b")
            return [b"c", b"d"]
        if path == "/long":
            start_response("200 OK", [("Content-Length", "5")])
            return [b"hel", b"lo world", b"never"]
        if path == "/empty":
            start_response("204 No Content", [])
            return []
        start_response("200 OK", [("Content-Length", "3")])
        return [b"abc"]

    port, number = serve(reactor, app)
    results = await reactor.deferToThread(fetch, number, [
        ("GET", "/app/write", None, {}), ("GET", "/app/long", None, {}),
        ("HEAD", "/app/head", None, {}), ("GET", "/app/empty", None, {}),
        ("GET", "/app/head", None, {})])
    (s1, r1, h1, b1), (s2, _, h2, b2), (s3, _, h3, b3), (s4, _, _, b4), (s5, *_, b5) = results
    assert (s1, r1, b1, h1["transfer-encoding"]) == (201, "Created", b"abcd", "chunked")
    # Never more than the announced length; the connection stays in step.
    assert (s2, b2, h2["content-length"]) == (200, b"hello", "5")
    assert (s3, b3, h3["content-length"]) == (200, b"", "3")
    assert (s4, b4) == (204, b"")
    assert (s5, b5) == (200, b"abc")
    await port.stopListening()


async def test_body_shorter_than_content_length_cuts_the_connection(
        reactor: Any, caplog: pytest.LogCaptureFixture) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Length", "10")])
        return [b"short"]

    port, number = serve(reactor, app)
    data = await reactor.deferToThread(
        raw_exchange, number, b"GET /app HTTP/1.1\r\nHost: t\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 200 OK") and data.endswith(b"\r\n\r\nshort")
    assert any("fewer than its Content-Length" in str(r.exc_info[1])
               for r in caplog.records if r.exc_info)
    await port.stopListening()


# -- errors ------------------------------------------------------------------------


def failing_app(environ: dict[str, Any], start_response: Any) -> Any:
    path = environ["PATH_INFO"]
    if path == "/raise":
        raise RuntimeError("secret internals 4242")
    if path == "/hop":
        start_response("200 OK", [("Connection", "keep-alive")])
        return [b"x"]
    if path == "/str":
        start_response("200 OK", [])
        return ["not bytes"]
    if path == "/twice":
        start_response("200 OK", [])
        start_response("200 OK", [])
        return [b"x"]
    if path == "/nostart":
        return [b"x"]
    if path == "/status":
        start_response("OK", [])
        return [b"x"]
    if path == "/generator":
        def gen() -> Iterator[bytes]:
            start_response("200 OK", [])
            raise RuntimeError("secret internals 4242")
            yield b""  # a generator: the error comes on the first next()
        return gen()
    if path == "/replace":
        start_response("200 OK", [("Content-Type", "text/plain")])
        try:
            raise ValueError("boom")
        except ValueError:
            start_response("503 Try Later", [("Content-Type", "text/plain")], sys.exc_info())
        return [b"the app's own error page"]
    raise AssertionError(path)


@pytest.mark.parametrize("path", [
    "/raise", "/hop", "/str", "/twice", "/nostart", "/status", "/generator"])
async def test_exception_before_headers_is_a_500_without_internals(
        reactor: Any, caplog: pytest.LogCaptureFixture, path: str) -> None:
    port, number = serve(reactor, failing_app)
    (status, _, headers, body), (status2, *_, body2) = await reactor.deferToThread(
        fetch, number, [("GET", "/app" + path, None, {}), ("GET", "/app/replace", None, {})])
    assert status == 500
    assert b"secret" not in body and b"Traceback" not in body
    assert "x-app" not in headers
    # The traceback is logged, not lost.
    assert any(r.exc_info for r in caplog.records if r.levelno >= logging.ERROR)
    if path in ("/raise", "/generator"):
        assert "secret internals 4242" in caplog.text
    # start_response(..., exc_info) before the head: the new status wins.
    assert (status2, body2) == (503, b"the app's own error page")
    await port.stopListening()


async def test_exception_after_headers_cuts_the_response(
        reactor: Any, caplog: pytest.LogCaptureFixture) -> None:
    closed = []

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        try:
            yield b"first part;"
            if environ["PATH_INFO"] == "/exc_info":
                try:
                    raise KeyError("late")
                except KeyError:
                    # Headers are out: PEP 3333 says start_response re-raises.
                    start_response("500 Oops", [], sys.exc_info())
            raise RuntimeError("late failure")
        finally:
            closed.append(environ["PATH_INFO"])

    port, number = serve(reactor, app)
    for path in (b"/plain", b"/exc_info"):
        data = await reactor.deferToThread(
            raw_exchange, number, b"GET /app%s HTTP/1.1\r\nHost: t\r\n\r\n" % path)
        head, _, body = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK") and b"chunked" in head.lower()
        assert body == b"b\r\nfirst part;\r\n"  # no terminating chunk: visibly truncated
    assert closed == ["/plain", "/exc_info"]
    assert "late failure" in caplog.text and "KeyError: 'late'" in caplog.text
    await port.stopListening()


# -- close(), streaming, back-pressure, disconnects ---------------------------------


class Closing:
    """An iterable that records its close()."""

    def __init__(self, chunks: list[bytes], fail_at: int | None = None) -> None:
        self.chunks = chunks
        self.fail_at = fail_at
        self.closed = threading.Event()

    def __iter__(self) -> Iterator[bytes]:
        for i, chunk in enumerate(self.chunks):
            if i == self.fail_at:
                raise RuntimeError("iteration failed")
            yield chunk

    def close(self) -> None:
        self.closed.set()


async def test_close_is_called_on_success_and_failure(reactor: Any) -> None:
    bodies: list[Closing] = []

    def app(environ: dict[str, Any], start_response: Any) -> Closing:
        start_response("200 OK", [])
        fail_at = 0 if environ["PATH_INFO"] == "/fail" else None
        bodies.append(Closing([b"a", b"b"], fail_at))
        return bodies[-1]

    port, number = serve(reactor, app)
    results = await reactor.deferToThread(fetch, number, [
        ("GET", "/app/ok", None, {}), ("GET", "/app/fail", None, {})])
    assert [(r[0], r[3]) for r in results] == [(200, b"ab"), (500, results[1][3])]
    assert all(body.closed.is_set() for body in bodies) and len(bodies) == 2
    await port.stopListening()


CHUNK = 64 * 1024
COUNT = 512  # 32 MiB in all


async def test_streaming_blocks_the_worker_while_the_client_is_slow(
        reactor: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    produced = [0]
    closed = threading.Event()
    blocked_paused = threading.Event()

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        try:
            for i in range(COUNT):
                produced[0] += 1
                yield bytes([i % 251]) * CHUNK
        finally:
            closed.set()

    # Spy on the worker's waits: record the moment it waits because the
    # transport paused the response (the client stopped reading).
    original_init = wsgi._WSGIResponse.__init__

    def init(self: Any, *args: Any) -> None:
        original_init(self, *args)
        response = self

        class SpyCondition(threading.Condition):
            def wait(self, timeout: float | None = None) -> bool:
                if response._paused:
                    blocked_paused.set()
                return super().wait(timeout)

        self._cond = SpyCondition()

    monkeypatch.setattr(wsgi._WSGIResponse, "__init__", init)
    port, number = serve(reactor, app)

    def client() -> tuple[int, int, str]:
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
            sock.settimeout(20)
            sock.connect(("127.0.0.1", number))
            sock.sendall(b"GET /app HTTP/1.1\r\nHost: t\r\n\r\n")
            # Read nothing until the worker is stuck behind a paused transport.
            if not blocked_paused.wait(20):
                raise AssertionError("the worker never waited for the client")
            ahead = produced[0]
            resp = http.client.HTTPResponse(sock)
            resp.begin()
            digest = hashlib.sha256()
            received = 0
            while chunk := resp.read(256 * 1024):
                digest.update(chunk)
                received += len(chunk)
            return ahead, received, digest.hexdigest()

    ahead, received, digest = await reactor.deferToThread(client)
    expected = hashlib.sha256()
    for i in range(COUNT):
        expected.update(bytes([i % 251]) * CHUNK)
    assert received == COUNT * CHUNK and digest == expected.hexdigest()
    # While the client read nothing, the application was held to what the
    # socket buffers, the transport's buffer and our queue hold: a few MiB.
    assert ahead * CHUNK <= 12 * 1024 * 1024, ahead
    assert closed.is_set()
    await port.stopListening()


async def test_client_disconnect_mid_stream_stops_the_iteration(reactor: Any) -> None:
    closed = threading.Event()
    produced = [0]

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        try:
            while True:  # endless: only a disconnect ends it
                produced[0] += 1
                yield b"x" * 16384
        finally:
            closed.set()

    port, number = serve(reactor, app)

    def client() -> bool:
        with socket.create_connection(("127.0.0.1", number), timeout=10) as sock:
            sock.sendall(b"GET /app HTTP/1.1\r\nHost: t\r\n\r\n")
            received = 0
            while received < 200_000:
                received += len(sock.recv(65536))
        return closed.wait(20)

    assert await reactor.deferToThread(client)
    await port.stopListening()


def test_reactor_shutdown_releases_a_worker_waiting_for_a_slow_client(
        reactor: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # Shutdown joins the pool's threads: a worker waiting for a transport
    # that will never resume must be released first, or stop() hangs.
    closed = threading.Event()
    waiting = threading.Event()
    responses: list[Any] = []

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [])
        try:
            while True:
                yield b"y" * CHUNK
        finally:
            closed.set()

    original_init = wsgi._WSGIResponse.__init__

    def init(self: Any, *args: Any) -> None:
        original_init(self, *args)
        responses.append(self)
        response = self

        class SpyCondition(threading.Condition):
            def wait(self, timeout: float | None = None) -> bool:
                if response._paused:
                    waiting.set()
                return super().wait(timeout)

        self._cond = SpyCondition()

    monkeypatch.setattr(wsgi._WSGIResponse, "__init__", init)
    port, number = serve(reactor, app)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    rescued = []

    def client() -> None:
        sock.connect(("127.0.0.1", number))
        sock.sendall(b"GET /app HTTP/1.1\r\nHost: t\r\n\r\n")
        if waiting.wait(20):
            reactor.callFromThread(reactor.stop)
        if not closed.wait(20):
            # Without the fix stop() would hang for ever: rescue the worker
            # so the test fails instead.
            rescued.append(True)
            for response in responses:
                response.stopProducing()

    thread = threading.Thread(target=client)
    thread.start()
    try:
        reactor.run(installSignalHandlers=False)
    finally:
        thread.join()
        sock.close()
    assert waiting.is_set() and closed.is_set() and not rescued
    del port


async def test_the_application_runs_off_the_reactor_thread(reactor: Any) -> None:
    idents: list[int] = []

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        idents.append(threading.get_ident())
        start_response("200 OK", [])
        idents.append(threading.get_ident())
        yield b"ok"

    port, number = serve(reactor, app)
    status, *_, body = await reactor.deferToThread(get, number, "/app")
    assert (status, body) == (200, b"ok")
    assert len(idents) == 2 and threading.get_ident() not in idents
    await port.stopListening()


async def test_many_concurrent_requests(reactor: Any) -> None:
    together = threading.Barrier(5, timeout=20)

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        if environ["PATH_INFO"] == "/together":
            # Only passes if five applications run at the same time.
            together.wait()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [environ["QUERY_STRING"].encode()]

    port, number = serve(reactor, app)

    def clients() -> list[bytes]:
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            firsts = [pool.submit(get, number, f"/app/together?t{i}") for i in range(5)]
            rest = [pool.submit(fetch, number, [("GET", f"/app/n?{i}-{j}", None, {})
                                                for j in range(10)])
                    for i in range(10)]
            out = [f.result()[3] for f in firsts]
            for f in rest:
                out.extend(r[3] for r in f.result())
        return out

    bodies = await reactor.deferToThread(clients)
    assert sorted(bodies[:5]) == [b"t%d" % i for i in range(5)]
    assert sorted(bodies[5:]) == sorted(f"{i}-{j}".encode()
                                        for i in range(10) for j in range(10))
    await port.stopListening()


async def test_gzip_wrapper_over_a_streamed_wsgi_response(reactor: Any) -> None:
    import gzip

    lines = [b"line %d\n" % i for i in range(5000)]

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield from lines

    resource = WSGIResource(reactor, reactor.getThreadPool(), app)
    site = Site(EncodingResourceWrapper(resource, [GzipEncoderFactory()]))
    port = reactor.listenTCP(0, site, interface="127.0.0.1")
    status, _, headers, body = (await reactor.deferToThread(
        fetch, port.getHost().port, [("GET", "/", None, {"Accept-Encoding": "gzip"})]))[0]
    assert status == 200 and headers["content-encoding"] == "gzip"
    assert gzip.decompress(body) == b"".join(lines)
    await port.stopListening()


def test_a_wsgi_resource_has_no_children() -> None:
    resource = WSGIResource(None, None, hello_app)
    assert resource.isLeaf
    with pytest.raises(RuntimeError):
        resource.putChild(b"x", Resource())
    with pytest.raises(RuntimeError):
        resource.getChildWithDefault(b"x", None)


# -- a real framework ----------------------------------------------------------------


def make_flask_app() -> Any:
    import flask

    app = flask.Flask("torsion_wsgi_test")

    @app.route("/hello/<name>")
    def hello(name: str) -> Any:
        return flask.jsonify(greeting=f"hello {name}", url=flask.request.url,
                             script=flask.request.script_root,
                             secure=flask.request.is_secure)

    @app.route("/echo", methods=["POST"])
    def echo() -> Any:
        data = flask.request.get_json()
        return flask.jsonify(got=data, form=None)

    @app.route("/form", methods=["POST"])
    def form() -> Any:
        return flask.jsonify(dict(flask.request.form))

    @app.route("/stream")
    def stream() -> Any:
        def generate() -> Iterator[str]:
            for i in range(100):
                yield f"row {i}\n"
        return flask.Response(generate(), mimetype="text/plain")

    @app.route("/fail")
    def fail() -> Any:
        raise RuntimeError("flask secret")

    @app.route("/cookie")
    def cookie() -> Any:
        resp = flask.make_response(flask.request.cookies.get("who", "nobody"))
        resp.set_cookie("seen", "1")
        return resp

    return app


async def test_flask(reactor: Any) -> None:
    port, number = serve(reactor, make_flask_app().wsgi_app)
    results = await reactor.deferToThread(fetch, number, [
        ("GET", "/app/hello/w%C3%B6rld?x=1", None, {}),
        ("POST", "/app/echo", json.dumps({"a": [1, 2]}).encode(),
         {"Content-Type": "application/json"}),
        ("POST", "/app/form", b"k=v&k2=v2", {"Content-Type": "application/x-www-form-urlencoded"}),
        ("GET", "/app/stream", None, {}),
        ("GET", "/app/missing", None, {}),
        ("GET", "/app/fail", None, {}),
        ("GET", "/app/cookie", None, {"Cookie": "who=me"}),
    ])
    (s1, _, _, b1), (s2, _, _, b2), (s3, _, _, b3), (s4, _, h4, b4), (s5, *_), \
        (s6, _, _, b6), (s7, _, h7, b7) = results
    assert s1 == 200 and json.loads(b1) == {
        "greeting": "hello wörld", "url": f"http://127.0.0.1:{number}/app/hello/wörld?x=1",
        "script": "/app", "secure": False}
    assert s2 == 200 and json.loads(b2)["got"] == {"a": [1, 2]}
    assert s3 == 200 and json.loads(b3) == {"k": "v", "k2": "v2"}
    assert s4 == 200 and h4["transfer-encoding"] == "chunked"
    assert b4 == b"".join(b"row %d\n" % i for i in range(100))
    assert s5 == 404
    assert s6 == 500 and b"flask secret" not in b6
    assert s7 == 200 and b7 == b"me" and "seen=1" in h7["set-cookie"]
    await port.stopListening()
