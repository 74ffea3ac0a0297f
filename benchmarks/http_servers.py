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
import importlib
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from benchmarks import _servers
from benchmarks._servers import (
    HOST,
    BenchError,
    EngineUnavailable,
    Server,
    Unavailable,
    announce,
    child_setup,
    run_until_signalled,
    stop,
    tail,
    uvloop_factory,
)

HELLO = b"hello world"
#: The suite's paths for each case.
PATHS = {"hello": "/", "file": "/file"}


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
    announce(port.getHost().port, *cases)
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
    announce(port.getHost().port, "hello", "file")
    twisted_reactor.run()  # SIGTERM stops it


# --- asyncio loops: aiohttp and the httptools floor ------------------------------------


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
        announce(runner.addresses[0][1], "hello", "file")
        run_until_signalled(loop)
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
    factory = uvloop_factory()
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
        announce(server.sockets[0].getsockname()[1], "hello", "file")
        run_until_signalled(loop)
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
    "aiohttp-uvloop": lambda path: serve_aiohttp(uvloop_factory(), path),
    "uvloop-httptools": serve_httptools,
}
#: Every engine the suite can start: the Python ones above, and nginx.
ALL_ENGINES = (*ENGINES, "nginx")


# --- starting a server (used by the suite, in the parent process) -----------------------


def nginx_binary() -> str | None:
    """Path of nginx (often in /usr/sbin, outside a non-root PATH), or None."""
    return _servers.find_binary("nginx")


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


@contextlib.contextmanager
def running_server(engine: str, path: Path, cpu: int | None = None) -> Iterator[Server]:
    """Start ``engine`` serving ``path`` at /file, pinned to ``cpu``; always stop it.

    The server's ``words`` are the cases it serves.

    Raises:
        EngineUnavailable: the engine's framework (or nginx) is not installed here.
        BenchError: the server did not start (the message has its stderr's tail).
    """
    if engine != "nginx":
        with _servers.running_server("benchmarks.http_servers", engine, [str(path)], cpu) as s:
            yield s
        return
    with tempfile.TemporaryDirectory(prefix="torsion-http-") as tmpdir:
        tmp = Path(tmpdir)
        tmp.chmod(0o755)  # nginx run as root may drop to another user for files
        proc, port = _start_nginx(path, cpu, tmp)
        server = Server(engine, proc.pid, port, ("hello", "file"), "", proc, tmp / "error.log")
        try:
            try:
                _wait_for_listener(proc, port, _servers.SERVER_START_TIMEOUT)
            except BenchError as exc:
                raise BenchError(f"{exc}; nginx error log: {tail(server.said())}") from None
            yield server
        finally:
            stop(proc)
            if server.said():
                _servers.progress(f"  nginx said: {tail(server.said())}")


def main(argv: list[str]) -> int:
    """Run the engine named in ``argv`` on the file named there; return the exit status."""
    usage = f"python -m benchmarks.http_servers {{{','.join(ENGINES)}}} FILE"
    return _servers.serve_main(ENGINES, argv, usage, nargs=2)


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
