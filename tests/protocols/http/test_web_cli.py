"""``torsion web`` end to end, and the runnable examples under ``examples/``.

Each server is the real ``torsion`` console script (or an example script) in
a subprocess on 127.0.0.1, port 0; the test learns the port from the line it
prints on start-up and fetches with urllib, waiting on lines and replies,
never on sleeps. Every process is killed in a ``finally`` (``start`` fixture).
"""

from __future__ import annotations

import gzip
import hashlib
import re
import socket
import ssl
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from protocols.http.web import load_object, parse_size, web
from reactor.cli import UsageError, build_parser
from tests.console import ConsoleServer

REPO = Path(__file__).resolve().parents[3]
TORSION = str(Path(sys.executable).parent / "torsion")
BACKENDS = ["select", "asyncio", "uvloop"]
TIMEOUT = 30.0
LISTENING = re.compile(
    r"listening on (?:tcp|ssl):127\.0\.0\.1:(\d+) \(reactor: (\w+)(, workers: \d+)?\)$")
EXAMPLE_LISTENING = re.compile(r"^serving on http://127\.0\.0\.1:(\d+)/$")
LOCAL = ["--port", "0", "--interface", "127.0.0.1"]


class Server(ConsoleServer):
    """A ``torsion web`` (or example) process."""


@pytest.fixture
def start() -> Iterator[Callable[..., Server]]:
    """``start(*args, cwd=...)`` runs ``torsion web ARGS``; ``start(..., example=...)``
    runs ``python examples/NAME.py ARGS``. All are killed at the end."""
    started: list[Server] = []

    def run(*args: str, cwd: Path = REPO, example: str | None = None) -> Server:
        if example is None:
            command, pattern = [TORSION, "web", *args], LISTENING
        else:
            command = [sys.executable, str(REPO / "examples" / example), *args]
            pattern = EXAMPLE_LISTENING if example != "wsgi_app.py" else LISTENING
        server = Server(command, cwd, pattern)
        started.append(server)
        return server

    try:
        yield run
    finally:
        for server in started:
            server.close()


def fetch(url: str, data: bytes | None = None, headers: dict[str, str] | None = None,
          context: ssl.SSLContext | None = None) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of one request; an HTTP error status is returned too."""
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT, context=context) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as e:
        with e:
            return e.code, dict(e.headers), e.read()


def run_web(*args: str, cwd: Path) -> tuple[int, list[str], str]:
    """``torsion web ARGS`` expected to exit by itself: (status, stderr lines, stdout)."""
    done = subprocess.run([TORSION, "web", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=TIMEOUT, stdin=subprocess.DEVNULL)
    return done.returncode, done.stderr.splitlines(), done.stdout


APP = textwrap.dedent('''\
    import reactor
    from protocols.http import Resource
    from reactor.task import deferLater

    class Hello(Resource):
        isLeaf = True

        async def render_GET(self, request):
            await deferLater(reactor, 0)
            return b"hello " + b"/".join(request.postpath)

        def render_POST(self, request):
            return b"posted %d bytes" % len(request.content.read())

    root = Hello()

    def make_root():
        return Hello()

    not_a_resource = 42

    def application(environ, start_response):
        body = ("wsgi " + environ["PATH_INFO"] + "?" + environ["QUERY_STRING"]).encode()
        start_response("200 OK", [("Content-Type", "text/plain"),
                                  ("Content-Length", str(len(body)))])
        return [body]
    ''')


@pytest.fixture
def app(tmp_path: Path) -> Path:
    """A directory holding ``webapp.py``, to run ``torsion web`` from."""
    (tmp_path / "webapp.py").write_text(APP)
    return tmp_path


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A small site: an index, a nested directory and a binary file."""
    root = tmp_path / "site"
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "index.html").write_text("<h1>home</h1>\n")
    (root / "sub" / "deeper" / "notes.txt").write_text("nested text\n")
    (root / "data.bin").write_bytes(bytes(range(256)) * 1000)
    return root


# -- what to serve -------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_path_serves_a_directory(start: Any, tree: Path, backend: str) -> None:
    server = start("--path", str(tree), *LOCAL, "--reactor", backend)
    assert fetch(server.url + "/")[2] == b"<h1>home</h1>\n"
    status, _headers, body = fetch(server.url + "/data.bin")
    assert status == 200
    assert hashlib.sha256(body).digest() == hashlib.sha256(bytes(range(256)) * 1000).digest()
    assert fetch(server.url + "/sub/deeper/notes.txt")[2] == b"nested text\n"
    assert fetch(server.url + "/missing.txt")[0] == 404
    log = server.stop()
    # The access log, on stderr at INFO: one Combined Log Format line per request.
    assert any('"GET /data.bin HTTP/1.1" 200 256000' in line for line in log), log
    assert any('"GET /missing.txt HTTP/1.1" 404' in line for line in log), log


def test_without_path_serves_the_current_directory(start: Any, tree: Path) -> None:
    server = start(*LOCAL, cwd=tree / "sub" / "deeper")
    assert fetch(server.url + "/notes.txt")[:3:2] == (200, b"nested text\n")
    server.stop()


@pytest.mark.parametrize("target", ["webapp:root", "webapp:make_root", "webapp:Hello"])
def test_app_serves_a_resource_from_the_current_directory(start: Any, app: Path,
                                                          target: str) -> None:
    server = start("--app", target, *LOCAL, "--no-access-log", cwd=app)
    assert fetch(server.url + "/a/b")[:3:2] == (200, b"hello a/b")
    assert fetch(server.url + "/", data=b"x" * 1000)[2] == b"posted 1000 bytes"
    log = server.stop()
    assert not any("protocols.http.access" in line for line in log), log


def test_wsgi_serves_an_application(start: Any, app: Path) -> None:
    server = start("--wsgi", "webapp:application", *LOCAL, cwd=app)
    status, _, body = fetch(server.url + "/some/path?x=1")
    assert (status, body) == (200, b"wsgi /some/path?x=1")
    server.stop()


def read_response(sock: socket.socket) -> bytes:
    """One response with a Content-Length, read whole from ``sock``."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed before the head ended: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    match = re.search(rb"(?im)^content-length: *(\d+)", head)
    assert match, head
    length = int(match.group(1))
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "closed before the body ended"
        body += chunk
    return head + b"\r\n\r\n" + body


def test_limits_and_timeouts_reach_the_site(start: Any, app: Path) -> None:
    server = start("--app", "webapp:root", "--max-body", "1K", "--timeout", "0.2",
                   "--header-timeout", "0.5", *LOCAL, cwd=app)
    assert fetch(server.url + "/", data=b"x" * 1024)[2] == b"posted 1024 bytes"
    assert fetch(server.url + "/", data=b"x" * 1025)[0] == 413
    # Once its request is answered, an idle keep-alive connection is closed by
    # the server: recv sees EOF, well before the socket's own timeout.
    with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as idle:
        idle.sendall(b"GET /idle HTTP/1.1\r\nHost: t\r\n\r\n")
        assert read_response(idle).endswith(b"\r\n\r\nhello idle")
        assert idle.recv(100) == b""
    # A head that never ends gets 408.
    with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as slow:
        slow.sendall(b"GET /slow HTTP/1.1\r\nHost: t\r\n")
        assert read_response(slow).startswith(b"HTTP/1.1 408 ")
    server.stop()


def test_https_from_an_ssl_endpoint(start: Any, app: Path, tmp_path: Path) -> None:
    ca = trustme.CA()
    pem = tmp_path / "server.pem"
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(pem))
    server = start("--app", "webapp:root", "--listen",
                   f"ssl:0:interface=127.0.0.1:certKey={pem}", cwd=app)
    context = ssl.create_default_context()
    ca.configure_trust(context)
    url = f"https://127.0.0.1:{server.port}"
    assert fetch(url + "/secure", context=context)[2] == b"hello secure"
    # A client that does not trust the certificate refuses the server.
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        fetch(url + "/", context=ssl.create_default_context())
    server.stop()


# -- mistakes ------------------------------------------------------------------------------


# The whole path, in a real process: status 2 and one line on stderr.
@pytest.mark.parametrize(("args", "message"), [
    (["--app", "nosuchmodule:root"], "can't import 'nosuchmodule': no module named"),
    (["--path", "no/such/dir"], "does not exist"),
    (["--max-body", "lots"], "expected a size"),
])
def test_mistakes_are_one_line_and_status_2(app: Path, args: list[str], message: str) -> None:
    code, stderr, stdout = run_web(*args, *LOCAL, cwd=app)
    assert code == 2, stderr
    assert stdout == ""
    assert len(stderr) == 1, stderr
    assert stderr[0].startswith("torsion web: error: "), stderr
    assert message in stderr[0]


@pytest.fixture
def in_app(app: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Run in the ``app`` directory, undoing the import of ``webapp`` afterwards."""
    monkeypatch.chdir(app)
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield app
    sys.modules.pop("webapp", None)


# In this process, faster: what build() refuses is a ValueError (the command's
# status 2); what argparse refuses is a UsageError.
@pytest.mark.parametrize(("args", "message"), [
    (["--app", "webapp:missing"], "'webapp' has no attribute 'missing'"),
    (["--app", "webapp"], "expected MODULE:RESOURCE"),
    (["--app", "webapp:not_a_resource"], "not a Resource"),
    (["--wsgi", "webapp:nope"], "'webapp' has no attribute 'nope'"),
    (["--wsgi", "webapp:not_a_resource"], "not a WSGI application"),
    (["--wsgi", "nosuch.module:app"], "no module named 'nosuch'"),
    (["--path", "webapp.py"], "is not a directory"),
])
def test_build_refuses_with_a_clear_message(in_app: Path, args: list[str],
                                            message: str) -> None:
    options = build_parser({"web": web}).parse_args(["web", *args])
    with pytest.raises(ValueError, match=re.escape(message)):
        web.build(options)


@pytest.mark.parametrize(("args", "message"), [
    (["--timeout", "-1"], "must be a number of seconds"),
    (["--header-timeout", "soon"], "must be a number of seconds"),
    (["--max-body", "12X"], "expected a size"),
    (["--path", ".", "--app", "webapp:root"], "not allowed with argument"),
])
def test_bad_options_are_usage_errors(args: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=re.escape(message)):
        build_parser({"web": web}).parse_args(["web", *args])


def test_user_code_that_raises_is_not_a_usage_error(in_app: Path) -> None:
    (in_app / "broken.py").write_text("raise RuntimeError('oops in user code')\n")
    try:
        with pytest.raises(RuntimeError, match="oops in user code"):
            load_object("broken:root", "RESOURCE")
    finally:
        sys.modules.pop("broken", None)


def test_sizes() -> None:
    assert [parse_size(t) for t in ("0", "512", "1k", "1KiB", "16M", "2 GB")] == [
        0, 512, 1024, 1024, 16 * 1024 ** 2, 2 * 1024 ** 3]
    for bad in ("", "-1", "1.5M", "M", "1T"):
        with pytest.raises(ValueError):
            parse_size(bad)


# -- the examples ----------------------------------------------------------------------------


def test_example_site(start: Any) -> None:
    server = start("--path", "examples/site", *LOCAL)
    status, headers, body = fetch(server.url + "/")
    assert status == 200
    assert b"Hello from torsion web" in body
    assert headers["Content-Type"].startswith("text/html")
    assert b"<h1>Docs</h1>" in fetch(server.url + "/docs/")[2]
    assert fetch(server.url + "/style.css")[2] == (REPO / "examples/site/style.css").read_bytes()
    server.stop()


GREETING = (b"Hello, you!\nsha256(name) = %s\n"
            % hashlib.sha256(b"you").hexdigest().encode("ascii"))


def test_example_async_resource_as_a_script(start: Any) -> None:
    server = start("--port", "0", example="async_resource.py")
    assert fetch(server.url + "/?name=you")[2] == GREETING
    assert fetch(server.url + "/")[2].startswith(b"Hello, world!\n")


@pytest.mark.parametrize("backend", BACKENDS)
def test_example_async_resource_with_torsion_web(start: Any, backend: str) -> None:
    server = start("--app", "examples.async_resource:root", *LOCAL, "--reactor", backend)
    assert fetch(server.url + "/?name=you")[2] == GREETING
    server.stop()


def test_example_wsgi_app(start: Any) -> None:
    server = start(*LOCAL, example="wsgi_app.py")
    status, _, body = fetch(server.url + "/?q=1")
    assert status == 200
    assert body.startswith(b"Hello from a WSGI application.\nmethod: GET\npath: /\nquery: q=1\n")
    payload = bytes(range(256)) * 64
    assert fetch(server.url + "/echo", data=payload)[2] == payload
    assert fetch(server.url + "/nowhere")[0] == 404
    server.stop()


def test_example_wsgi_app_with_torsion_web_and_workers(start: Any) -> None:
    server = start("--wsgi", "examples.wsgi_app:application", *LOCAL, "--workers", "2")
    for _ in range(4):
        assert fetch(server.url + "/")[2].startswith(b"Hello from a WSGI application.\n")
    log = server.stop()
    assert sum('"GET / HTTP/1.1" 200' in line for line in log) == 4, log


def test_gzip_option(start: Any, tree: Path) -> None:
    text = b"compressible text, many times over\n" * 2000
    (tree / "big.txt").write_bytes(text)
    server = start("--path", str(tree), "--gzip", *LOCAL)
    status, headers, body = fetch(server.url + "/big.txt", headers={"Accept-Encoding": "gzip"})
    assert status == 200
    assert headers.get("Content-Encoding") == "gzip"
    assert len(body) < len(text) // 10
    assert gzip.decompress(body) == text
    # A client that does not ask for it gets the plain bytes.
    status, headers, body = fetch(server.url + "/big.txt")
    assert "Content-Encoding" not in headers
    assert body == text
    server.stop()
