"""HTTP servers for the ``http`` suite, one engine per process.

``python -m benchmarks.http_servers ENGINE FILE`` listens on an ephemeral port of
127.0.0.1 and serves two resources until SIGTERM or SIGINT:

- ``GET /``: the 11 bytes ``hello world`` (status 200, keep-alive, Content-Length);
- ``GET /file``: the file ``FILE`` (the suite makes a 1 MiB one).

When ready it prints one line on stdout, the port followed by the cases it serves
(``41234 hello file``). A torsion engine leaves out ``file`` while
``protocols.http.static`` cannot be imported and says why on stderr. Each server is the
ordinary code its framework's users write, with two settings made equal everywhere:
no access log (nginx's ``access_log off``; a log line per request would measure
logging), and TCP_NODELAY on accepted connections (torsion, aiohttp and nginx set it
themselves; Twisted does not, so ``twisted-web`` turns it on as the echo suite does).

Engines:

- ``torsion-select``, ``torsion-asyncio``, ``torsion-uvloop``: ``protocols.http.server.Site``
  over a tree of ``Resource`` (a leaf ``render_GET`` returning the body at ``/``) and
  ``protocols.http.static.File`` at ``/file``, on ``reactor.create(backend)``.
- ``twisted-web``: ``twisted.web.server.Site`` with the same tree and
  ``twisted.web.static.File``, on Twisted's epoll reactor (its default on Linux).
  ``Site.log`` does nothing here: by default Twisted formats every access line and hands
  it to its global log buffer, which nobody reads in a benchmark.
- ``twisted-web-logged``: diagnostic, not run by default: Twisted's ``Site`` exactly as
  it comes, access lines included, to show what that default costs.
- ``aiohttp-asyncio``, ``aiohttp-uvloop``: an ``aiohttp.web.Application`` whose handlers
  return ``web.Response(body=...)`` and ``web.FileResponse(path)``, with
  ``AppRunner(access_log=None)``, on the default asyncio loop or on uvloop. FileResponse
  uses ``loop.sendfile``; uvloop has none, so there aiohttp falls back to reading and
  writing chunks.
- ``uvloop-httptools``: the floor. A minimal ``asyncio.Protocol`` on uvloop that feeds
  ``httptools.HttpRequestParser`` and, for each complete request, writes a response
  prepared at start-up: the file is read once into memory (head and body in one bytes
  object) and written with one ``transport.write`` per request; no sendfile.
- ``nginx``: not a Python process; the suite starts it (see :func:`running_server`) with
  a generated configuration, one process (``master_process off``), ``sendfile on`` and
  ``tcp_nopush on`` as in Debian's stock configuration, keep-alive without a request
  cap, ``return 200 "hello world"`` at ``/`` and the file at ``/file``.

An engine that cannot be imported exits with status ``EXIT_UNAVAILABLE`` and one line on
stderr saying why, before printing a port, so the suite can skip it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import importlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.echo_servers import (
    EXIT_UNAVAILABLE,
    BenchError,
    EngineUnavailable,
    LineReader,
)

HOST = "127.0.0.1"
HELLO = b"hello world"
#: The suite's paths for each case.
PATHS = {"hello": "/", "file": "/file"}
#: Environment variable holding the suite's pid: the server exits if that parent is gone.
PARENT_ENV = "HTTP_BENCH_PARENT"
_PR_SET_PDEATHSIG = 1  # from <sys/prctl.h>

log = logging.getLogger("benchmarks.http_servers")


class Unavailable(Exception):
    """The engine's framework cannot be imported in this environment."""


def _announce(port: int, cases: list[str]) -> None:
    # The suite reads exactly one line: the port and the cases served.
    print(port, *cases, flush=True)


# --- torsion --------------------------------------------------------------------------


def serve_torsion(backend: str, path: str) -> None:
    """torsion's Site with a hello Resource and, when importable, a static File."""
    try:
        import reactor as torsion_reactor
        from protocols.http.resource import Resource
        from protocols.http.server import Site

        if backend != "select":
            from reactor.aio import AsyncioReactor  # noqa: F401  (fail here, not later)
        if backend == "uvloop":
            import uvloop  # noqa: F401
    except ImportError as exc:
        raise Unavailable(f"torsion-{backend}: {exc}") from exc

    class Hello(Resource):
        isLeaf = True

        def render_GET(self, request: Any) -> bytes:
            return HELLO

    root = Resource()
    root.putChild(b"", Hello())
    cases = ["hello"]
    try:
        # By name: the module is being written, and mypy must not require it yet.
        static: Any = importlib.import_module("protocols.http.static")
        root.putChild(b"file", static.File(path))
        cases.append("file")
    except Exception as exc:  # a module being written may fail in any way: report, go on
        print(f"file: not available: protocols.http.static: {exc!r}", file=sys.stderr)

    r = torsion_reactor.create(backend)
    port = r.listenTCP(0, Site(root), interface=HOST)
    _announce(port.getHost().port, cases)
    r.run()  # installs SIGINT/SIGTERM handlers that stop it gracefully


# --- Twisted -------------------------------------------------------------------------


def serve_twisted(path: str, quiet: bool = True) -> None:
    """twisted.web's Site with a hello Resource and static.File, on the epoll reactor."""
    # Twisted's modules are typed through zope interfaces that mypy cannot follow; they
    # are handled as Any here.
    try:
        install: Callable[[], None]
        from twisted.internet.epollreactor import install

        install()
        twisted_reactor: Any = importlib.import_module("twisted.internet.reactor")
        resource: Any = importlib.import_module("twisted.web.resource")
        server: Any = importlib.import_module("twisted.web.server")
        static: Any = importlib.import_module("twisted.web.static")
    except ImportError as exc:
        raise Unavailable(f"twisted-web: {exc}") from exc

    class Hello(resource.Resource):  # type: ignore[misc]
        isLeaf = True

        def render_GET(self, request: Any) -> bytes:
            return HELLO

    class BenchSite(server.Site):  # type: ignore[misc]
        """Site with TCP_NODELAY, and without access lines when ``quiet``."""

        def buildProtocol(self, addr: Any) -> Any:
            proto: Any = super().buildProtocol(addr)
            # Site's protocol is a wrapper that keeps the transport on the channel
            # inside it; the transport passes through makeConnection on the way there.
            make = proto.makeConnection

            def makeConnection(transport: Any) -> None:
                transport.setTcpNoDelay(True)
                make(transport)

            proto.makeConnection = makeConnection
            return proto

        def log(self, request: Any) -> None:
            if not quiet:
                super().log(request)

    root = resource.Resource()
    root.putChild(b"", Hello())
    root.putChild(b"file", static.File(path))
    port = twisted_reactor.listenTCP(0, BenchSite(root), interface=HOST)
    _announce(port.getHost().port, ["hello", "file"])
    twisted_reactor.run()  # SIGTERM stops it


# --- asyncio loops: aiohttp and the httptools floor ------------------------------------


def _uvloop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    try:
        import uvloop
    except ImportError as exc:
        raise Unavailable(f"uvloop: {exc}") from exc
    return uvloop.new_event_loop


def _run_until_signalled(loop: asyncio.AbstractEventLoop) -> None:
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, loop.stop)
    loop.run_forever()


def serve_aiohttp(loop_factory: Callable[[], asyncio.AbstractEventLoop], path: str) -> None:
    """An aiohttp.web Application: a Response at /, a FileResponse at /file."""
    try:
        from aiohttp import web
    except ImportError as exc:
        raise Unavailable(f"aiohttp: {exc} (pip install -e '.[bench]')") from exc

    async def hello(request: web.Request) -> web.Response:
        return web.Response(body=HELLO)

    async def file(request: web.Request) -> web.FileResponse:
        return web.FileResponse(path)

    app = web.Application()
    app.router.add_get("/", hello)
    app.router.add_get("/file", file)
    loop = loop_factory()
    asyncio.set_event_loop(loop)
    runner = web.AppRunner(app, access_log=None)
    try:
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, HOST, 0)
        loop.run_until_complete(site.start())
        _announce(runner.addresses[0][1], ["hello", "file"])
        _run_until_signalled(loop)
        loop.run_until_complete(runner.cleanup())
    finally:
        loop.close()


def _response(body: bytes, status: bytes = b"200 OK") -> bytes:
    return b"HTTP/1.1 %s\r\nContent-Length: %d\r\nContent-Type: %s\r\n\r\n%s" % (
        status,
        len(body),
        b"text/plain" if len(body) < 1024 else b"application/octet-stream",
        body,
    )


def serve_httptools(path: str) -> None:
    """The floor: uvloop, httptools' parser and canned responses."""
    try:
        import httptools
    except ImportError as exc:
        raise Unavailable(f"uvloop-httptools: {exc}") from exc
    factory = _uvloop_factory()
    responses = {
        PATHS["hello"].encode(): _response(HELLO),
        PATHS["file"].encode(): _response(Path(path).read_bytes()),
    }
    not_found = _response(b"not found", b"404 Not Found")
    bad_request = _response(b"bad request", b"400 Bad Request")

    class Floor(asyncio.Protocol):
        """Parse with httptools; answer each complete request with a prepared response."""

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport: asyncio.Transport = transport  # type: ignore[assignment]
            self.parser = httptools.HttpRequestParser(self)
            self.url = b""

        def data_received(self, data: bytes) -> None:
            try:
                self.parser.feed_data(data)
            except httptools.HttpParserError:
                self.transport.write(bad_request)
                self.transport.close()

        # httptools callbacks (it looks them up by name on the object given to the parser)
        def on_message_begin(self) -> None:
            self.url = b""

        def on_url(self, url: bytes) -> None:
            self.url += url  # the URL may arrive in pieces

        def on_message_complete(self) -> None:
            self.transport.write(responses.get(self.url, not_found))
            if not self.parser.should_keep_alive():
                self.transport.close()

    loop = factory()
    asyncio.set_event_loop(loop)
    try:
        server = loop.run_until_complete(loop.create_server(Floor, HOST, 0))
        _announce(server.sockets[0].getsockname()[1], ["hello", "file"])
        _run_until_signalled(loop)
        server.close()
        loop.run_until_complete(server.wait_closed())
    finally:
        loop.close()


ENGINES: dict[str, Callable[[str], None]] = {
    "torsion-select": lambda path: serve_torsion("select", path),
    "torsion-asyncio": lambda path: serve_torsion("asyncio", path),
    "torsion-uvloop": lambda path: serve_torsion("uvloop", path),
    "twisted-web": lambda path: serve_twisted(path),
    "twisted-web-logged": lambda path: serve_twisted(path, quiet=False),
    "aiohttp-asyncio": lambda path: serve_aiohttp(asyncio.new_event_loop, path),
    "aiohttp-uvloop": lambda path: serve_aiohttp(_uvloop_factory(), path),
    "uvloop-httptools": serve_httptools,
}
#: Every engine the suite can start: the Python ones above, and nginx.
ALL_ENGINES = (*ENGINES, "nginx")


# --- starting a server (used by the suite, in the parent process) -----------------------

#: Seconds for a server to import its framework and listen.
SERVER_START_TIMEOUT = 30.0
ROOT = Path(__file__).resolve().parent.parent


def child_setup(cpu: int | None) -> Callable[[], None]:
    """What the child runs between fork and exec: pin it, tie its life to ours."""

    def setup() -> None:
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})
        if sys.platform.startswith("linux"):
            # The server gets SIGTERM if the suite dies, even by SIGKILL: no orphans.
            with contextlib.suppress(OSError, AttributeError):
                ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)

    return setup


@dataclass
class Server:
    """A running server process: its pid, port, the cases it serves."""

    engine: str
    pid: int
    port: int
    cases: tuple[str, ...]
    #: What the server said on stderr at start-up (a torsion engine's "not available").
    notes: str
    proc: subprocess.Popen[bytes]
    #: The server's stderr (nginx: its error log).
    log_path: Path

    def alive(self) -> bool:
        """Whether the process is still running."""
        return self.proc.poll() is None

    def last_words(self, lines: int = 5) -> str:
        """The tail of what the server printed since start-up, for error reports."""
        said = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        said = said.strip().removeprefix(self.notes).strip()
        state = "" if self.alive() else f"exited with status {self.proc.returncode}; "
        return f"server {state}stderr: {_tail(said, lines)}"


def nginx_binary() -> str | None:
    """Path of nginx (often in /usr/sbin, outside a non-root PATH), or None."""
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )


def free_port() -> int:
    """A port of 127.0.0.1 free a moment ago (for nginx, which cannot report one)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


NGINX_CONF = """\
daemon off;
master_process off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_requests 100000000;
    keepalive_timeout 75s;
    default_type application/octet-stream;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen {host}:{port};
        location = / {{ default_type text/plain; return 200 "hello world"; }}
        location = /file {{ alias {file}; }}
    }}
}}
"""


def _wait_for_listener(proc: subprocess.Popen[bytes], port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"nginx exited with status {proc.returncode}")
        try:
            with socket.create_connection((HOST, port), timeout=1.0):
                return
        except OSError:
            time.sleep(0.02)
    raise BenchError(f"nginx did not listen on port {port} within {timeout:g} s")


def _start_nginx(path: Path, cpu: int | None, tmp: Path) -> tuple[subprocess.Popen[bytes], int]:
    binary = nginx_binary()
    if binary is None:
        raise EngineUnavailable("nginx not installed (apt-get install nginx)")
    port = free_port()
    conf = tmp / "nginx.conf"
    conf.write_text(NGINX_CONF.format(tmp=tmp, host=HOST, port=port, file=path))
    proc = subprocess.Popen(
        [binary, "-p", str(tmp), "-c", str(conf), "-e", str(tmp / "error.log")],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        preexec_fn=child_setup(cpu),
    )
    return proc, port


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM (a graceful stop), SIGKILL after 5 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _tail(text: str, lines: int = 5) -> str:
    kept = text.strip().splitlines()[-lines:]
    return " | ".join(kept) if kept else "(empty)"


@contextlib.contextmanager
def running_server(engine: str, path: Path, cpu: int | None = None) -> Iterator[Server]:
    """Start ``engine`` serving ``path`` at /file, pinned to ``cpu``; always stop it.

    Raises:
        EngineUnavailable: the engine's framework (or nginx) is not installed here.
        BenchError: the server did not start (the message has its stderr's tail).
    """
    with tempfile.TemporaryDirectory(prefix="torsion-http-") as tmpdir:
        tmp = Path(tmpdir)
        tmp.chmod(0o755)  # nginx run as root may drop to another user for files
        log_path = tmp / ("error.log" if engine == "nginx" else "stderr.txt")
        if engine == "nginx":
            proc, port = _start_nginx(path, cpu, tmp)
        else:
            proc, port = _start_python(engine, path, cpu, log_path), 0
        server: Server | None = None
        try:
            server = _ready(engine, proc, port, log_path)
            yield server
        finally:
            _stop(proc)
            if proc.stdout is not None:
                proc.stdout.close()
            said = log_path.read_text(errors="replace").strip() if log_path.exists() else ""
            if server is not None and said and said != server.notes:
                print(f"  {engine} server said: {_tail(said)}", file=sys.stderr, flush=True)


def _start_python(
    engine: str, path: Path, cpu: int | None, log_path: Path
) -> subprocess.Popen[bytes]:
    env = dict(os.environ, **{PARENT_ENV: str(os.getpid())})
    # stderr goes to a file: a pipe nobody reads could fill and stall the server.
    with open(log_path, "wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.http_servers", engine, str(path)],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            preexec_fn=child_setup(cpu),
        )
    return proc


def _ready(engine: str, proc: subprocess.Popen[bytes], port: int, log_path: Path) -> Server:
    """Wait until the server listens; return what the suite needs to know about it."""

    def said() -> str:
        return log_path.read_text(errors="replace").strip() if log_path.exists() else ""

    if engine == "nginx":
        try:
            _wait_for_listener(proc, port, SERVER_START_TIMEOUT)
        except BenchError as exc:
            raise BenchError(f"{exc}; nginx error log: {_tail(said())}") from None
        return Server(engine, proc.pid, port, ("hello", "file"), "", proc, log_path)
    assert proc.stdout is not None
    try:
        words = LineReader(proc.stdout).readline(SERVER_START_TIMEOUT, "port").split()
        port = int(words[0])
    except (BenchError, ValueError, IndexError) as exc:
        try:
            code = proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            code = None
        if code == EXIT_UNAVAILABLE:
            raise EngineUnavailable(said()) from None
        raise BenchError(f"server did not start ({exc}); server stderr: {_tail(said())}") from None
    return Server(engine, proc.pid, port, tuple(words[1:]), said(), proc, log_path)


def _die_with_parent() -> None:
    """Exit at once if the suite that started us died before our prctl took effect."""
    parent = os.environ.get(PARENT_ENV)
    if parent is not None and os.getppid() != int(parent):
        sys.exit(1)


def main(argv: list[str]) -> int:
    """Run the engine named in ``argv`` on the file named there; return the exit status."""
    if len(argv) != 2 or argv[0] not in ENGINES:
        print(
            f"usage: python -m benchmarks.http_servers {{{','.join(ENGINES)}}} FILE",
            file=sys.stderr,
        )
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(name)s %(levelname)s %(message)s")
    _die_with_parent()
    try:
        ENGINES[argv[0]](argv[1])
    except Unavailable as exc:
        print(f"unavailable: {exc}", file=sys.stderr, flush=True)
        return EXIT_UNAVAILABLE
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))


__all__ = [
    "ALL_ENGINES",
    "ENGINES",
    "PATHS",
    "Server",
    "nginx_binary",
    "running_server",
]
