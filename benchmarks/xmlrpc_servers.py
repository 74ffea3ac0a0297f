"""XML-RPC servers and the load client for the ``xmlrpc`` suite, one per process.

``python -m benchmarks.xmlrpc_servers ENGINE`` listens on an ephemeral port of 127.0.0.1,
serves one method, ``add(a, b)``, at ``/RPC2``, and prints the port on a line of its own
once ready; it serves until SIGTERM or SIGINT. Each server is the ordinary code its
framework's users write, with the same two settings everywhere: no access log and
TCP_NODELAY on accepted connections (torsion sets it itself; Twisted and the stdlib get
it turned on here, as in the echo and http suites).

Engines:

- ``torsion-select``, ``torsion-asyncio``, ``torsion-uvloop``: ``protocols.xmlrpc``'s
  ``XMLRPC`` resource with an ``xmlrpc_add`` method, at ``/RPC2`` of a
  ``protocols.http.server.Site``, on ``reactor.create(backend)``.
- ``twisted-xmlrpc``: ``twisted.web.xmlrpc.XMLRPC`` with the same ``xmlrpc_add``, at
  ``/RPC2`` of ``twisted.web.server.Site`` (``Site.log`` silenced), epoll reactor.
- ``stdlib-threading``: ``xmlrpc.server.SimpleXMLRPCServer`` with
  ``socketserver.ThreadingMixIn`` (a thread per connection), ``logRequests=False``,
  ``register_function(add)``. Its request handler speaks HTTP/1.0 by default, which
  closes the connection after every call; the handler here sets
  ``protocol_version = "HTTP/1.1"`` (the documented switch to keep-alive) and
  ``disable_nagle_algorithm = True``: it writes the head and the body in two sends, and
  with Nagle on, each call would wait for the client's delayed ACK (~40 ms).

``python -m benchmarks.xmlrpc_servers load MODE PORT CONNECTIONS SECONDS`` is the load
client (see :func:`run_load`): ``MODE`` ``raw`` (the default of the suite) or ``proxy``.

An engine that cannot be imported exits with status ``EXIT_UNAVAILABLE`` and one line on
stderr saying why, before printing a port, so the suite can skip it.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import xmlrpc.client
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from benchmarks import _servers
from benchmarks._servers import (
    HOST,
    BenchError,
    LineReader,
    Server,
    Unavailable,
    announce,
    start_python,
    tail,
)

RPC_PATH = "/RPC2"
#: The call every client makes, and what it must return.
CALL = ("add", (2, 3))
EXPECTED = 5

def add(a: Any, b: Any) -> Any:
    """The benchmark's method: the smallest call that still marshals arguments."""
    return a + b


# --- servers ------------------------------------------------------------------------


def serve_torsion(backend: str) -> None:
    """torsion's XMLRPC resource (Twisted style, ``xmlrpc_add``) at /RPC2 of a Site."""
    try:
        import reactor as torsion_reactor
        from protocols.http.resource import Resource
        from protocols.http.server import Site

        # By name: the package is being written, and mypy must not require it yet.
        xmlrpc_module: Any = importlib.import_module("protocols.xmlrpc.server")
        if backend != "select":
            from reactor.aio import AsyncioReactor  # noqa: F401  (fail here, not later)
        if backend == "uvloop":
            import uvloop  # noqa: F401
    except Exception as exc:  # a package being written may fail in any way
        raise Unavailable(f"torsion-{backend}: {type(exc).__name__}: {exc}") from exc

    class Calculator(xmlrpc_module.XMLRPC):  # type: ignore[misc]
        def xmlrpc_add(self, a: int, b: int) -> int:
            return a + b

    root = Resource()
    root.putChild(RPC_PATH.strip("/").encode(), Calculator())
    r = torsion_reactor.create(backend)
    port = r.listenTCP(0, Site(root), interface=HOST)
    announce(port.getHost().port)
    r.run()  # installs SIGINT/SIGTERM handlers that stop it gracefully


def serve_twisted() -> None:
    """twisted.web.xmlrpc.XMLRPC with ``xmlrpc_add`` at /RPC2, on the epoll reactor."""
    try:
        install: Callable[[], None]
        from twisted.internet.epollreactor import install

        install()
        twisted_reactor: Any = importlib.import_module("twisted.internet.reactor")
        resource: Any = importlib.import_module("twisted.web.resource")
        server: Any = importlib.import_module("twisted.web.server")
        txmlrpc: Any = importlib.import_module("twisted.web.xmlrpc")
    except ImportError as exc:
        raise Unavailable(f"twisted-xmlrpc: {exc} (pip install -e '.[bench]')") from exc

    class Calculator(txmlrpc.XMLRPC):  # type: ignore[misc]
        def xmlrpc_add(self, a: int, b: int) -> int:
            return a + b

    class BenchSite(server.Site):  # type: ignore[misc]
        """Site with TCP_NODELAY and without access lines (as in the http suite)."""

        def buildProtocol(self, addr: Any) -> Any:
            proto: Any = super().buildProtocol(addr)
            make = proto.makeConnection

            def makeConnection(transport: Any) -> None:
                transport.setTcpNoDelay(True)
                make(transport)

            proto.makeConnection = makeConnection
            return proto

        def log(self, request: Any) -> None:
            pass

    root = resource.Resource()
    root.putChild(RPC_PATH.strip("/").encode(), Calculator())
    port = twisted_reactor.listenTCP(0, BenchSite(root), interface=HOST)
    announce(port.getHost().port)
    twisted_reactor.run()  # SIGTERM stops it


def serve_stdlib() -> None:
    """SimpleXMLRPCServer + ThreadingMixIn, keep-alive (HTTP/1.1) and TCP_NODELAY."""
    import socketserver
    from xmlrpc.server import SimpleXMLRPCRequestHandler, SimpleXMLRPCServer

    class Handler(SimpleXMLRPCRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive; HTTP/1.0 closes after each call
        disable_nagle_algorithm = True
        rpc_paths = (RPC_PATH,)

    class Server(socketserver.ThreadingMixIn, SimpleXMLRPCServer):
        daemon_threads = True

    server = Server((HOST, 0), requestHandler=Handler, logRequests=False)
    server.register_function(add, "add")

    def stop(signum: int, frame: Any) -> None:
        # shutdown() waits for serve_forever to return: run it beside, not inside it.
        import threading

        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    announce(server.server_address[1])
    try:
        server.serve_forever()
    finally:
        server.server_close()


ENGINES: dict[str, Callable[[], None]] = {
    "torsion-select": lambda: serve_torsion("select"),
    "torsion-asyncio": lambda: serve_torsion("asyncio"),
    "torsion-uvloop": lambda: serve_torsion("uvloop"),
    "twisted-xmlrpc": serve_twisted,
    "stdlib-threading": serve_stdlib,
}


# --- the load client -------------------------------------------------------------------


def request_bytes(port: int) -> bytes:
    """The whole HTTP request of one ``add(2, 3)`` call, as a client library sends it."""
    body = xmlrpc.client.dumps(CALL[1], CALL[0]).encode()
    head = (
        f"POST {RPC_PATH} HTTP/1.1\r\nHost: {HOST}:{port}\r\nUser-Agent: torsion-bench\r\n"
        f"Content-Type: text/xml\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    raise BenchError(f"response without Content-Length: {head[:200]!r}")


def _check_body(body: bytes) -> None:
    (result,), _ = xmlrpc.client.loads(body)
    if result != EXPECTED:
        raise BenchError(f"add(2, 3) returned {result!r}")


@dataclass
class LoadResult:
    """What one measured load run saw (the client's side)."""

    calls: int
    seconds: float
    p50_us: float
    p99_us: float
    errors: int
    first_error: str


class _Window:
    """Shared state of the callers: whether to keep calling, and what was measured."""

    def __init__(self) -> None:
        self.measuring = False
        self.running = True
        self.latencies: list[float] = []
        self.errors = 0
        self.first_error = ""

    def error(self, exc: BaseException) -> None:
        self.errors += 1
        if not self.first_error:
            self.first_error = f"{type(exc).__name__}: {exc}"


async def _raw_caller(port: int, request: bytes, window: _Window) -> None:
    """One keep-alive connection calling back to back with prepared request bytes."""
    reader, writer = await asyncio.open_connection(HOST, port)
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    checked = False
    clock = time.perf_counter
    try:
        while window.running:
            start = clock()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200 "):
                status = head.partition(b"\r\n")[0]
                raise BenchError(f"status line {status!r}")
            body = await reader.readexactly(_content_length(head))
            if not checked:  # the first answer of each connection is parsed in full
                _check_body(body)
                checked = True
            elif b"<int>5</int>" not in body and b"<i4>5</i4>" not in body:
                _check_body(body)
            if window.measuring:
                window.latencies.append(clock() - start)
    finally:
        writer.close()


def run_load(mode: str, port: int, connections: int, seconds: float) -> int:
    """Load ``port`` with ``connections`` concurrent keep-alive callers; talk over stdio.

    Protocol with the suite: after every caller has made its first call, print
    ``ready``; on a ``go`` line from stdin, measure for ``seconds``, then stop the
    callers, let the calls in flight finish, and print one JSON :class:`LoadResult`.

    ``raw`` runs asyncio streams on uvloop, one connection per caller, writing the
    prepared request bytes and reading head and body by Content-Length: cheap enough to
    keep one core's worth of Python server busy. ``proxy`` runs torsion's
    ``protocols.xmlrpc.Proxy`` on the uvloop reactor (its connection pool keeps up to
    ``connections`` connections alive).
    """
    if mode == "raw":
        import uvloop

        return uvloop.run(_run_raw(port, connections, seconds))
    if mode == "proxy":
        return _run_proxy(port, connections, seconds)
    raise SystemExit(f"unknown load mode {mode!r}")


async def _read_line() -> str:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, sys.stdin.readline)


async def _run_raw(port: int, connections: int, seconds: float) -> int:
    window = _Window()
    request = request_bytes(port)
    tasks = [asyncio.ensure_future(_raw_caller(port, request, window))
             for _ in range(connections)]
    return await _drive(window, tasks, seconds)


async def _drive(window: _Window, tasks: list[Any], seconds: float) -> int:
    # Warm: every caller connects and completes calls while we wait for "go".
    await asyncio.sleep(0.2)
    for task in tasks:
        if task.done():
            task.result()  # a caller that failed at once: report it
    print("ready", flush=True)
    if (await _read_line()).strip() != "go":
        return 1
    window.measuring = True
    start = time.perf_counter()
    await asyncio.sleep(seconds)
    window.running = False
    results = await asyncio.gather(*tasks, return_exceptions=True)
    elapsed = time.perf_counter() - start
    for result in results:
        if isinstance(result, BaseException):
            window.error(result)
    latencies = sorted(window.latencies)
    result = LoadResult(
        len(latencies), elapsed,
        _percentile(latencies, 0.50) * 1e6, _percentile(latencies, 0.99) * 1e6,
        window.errors, window.first_error)
    print(json.dumps(result.__dict__), flush=True)
    return 0


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    return values[min(len(values) - 1, int(q * len(values)))]


def _run_proxy(port: int, connections: int, seconds: float) -> int:
    """The ``proxy`` mode: callbacks on Proxy Deferreds, on the uvloop reactor."""
    import reactor as torsion_reactor
    from protocols.http.client import HTTPConnectionPool
    from protocols.xmlrpc.client import Proxy

    # Diagnostic: another backend for the client (the suite always uses uvloop).
    r = torsion_reactor.create(os.environ.get("XMLRPC_BENCH_CLIENT_REACTOR", "uvloop"))
    window = _Window()
    clock = time.perf_counter
    stopped: list[int] = []
    timing: dict[str, float] = {}
    status = [1]

    def finish() -> None:
        elapsed = clock() - timing["start"]
        latencies = sorted(window.latencies)
        result = LoadResult(
            len(latencies), elapsed,
            _percentile(latencies, 0.50) * 1e6, _percentile(latencies, 0.99) * 1e6,
            window.errors, window.first_error)
        print(json.dumps(result.__dict__), flush=True)
        status[0] = 0
        r.stop()

    with torsion_reactor.installed(r):
        pool = HTTPConnectionPool(r, persistent=True)
        pool.maxPersistentPerHost = connections  # one kept-alive connection per caller
        proxy = Proxy(f"http://{HOST}:{port}{RPC_PATH}", pool=pool)

        def call() -> None:
            if not window.running:
                stopped.append(1)
                if len(stopped) == connections:
                    finish()
                return
            start = clock()
            proxy.callRemote(CALL[0], *CALL[1]).addCallbacks(returned, failed,
                                                             callbackArgs=(start,))

        def returned(result: Any, start: float) -> None:
            if result != EXPECTED:
                window.error(BenchError(f"add(2, 3) returned {result!r}"))
            elif window.measuring:
                window.latencies.append(clock() - start)
            call()

        def failed(failure: Any) -> None:
            window.error(failure.value)
            call()

        def go(line: str) -> None:
            if line.strip() != "go":
                r.stop()
                return
            window.measuring = True
            timing["start"] = clock()
            r.callLater(seconds, setattr, window, "running", False)

        def ready() -> None:
            print("ready", flush=True)
            r.deferToThread(sys.stdin.readline).addCallback(go)

        for _ in range(connections):
            r.callWhenRunning(call)
        r.callLater(0.3, ready)
        r.run()
    return status[0]


# --- starting a server (used by the suite, in the parent process) -----------------------


@contextlib.contextmanager
def running_server(engine: str, cpu: int | None = None) -> Iterator[Server]:
    """Start ``engine`` pinned to ``cpu``; yield it once it listens; always stop it.

    Raises:
        EngineUnavailable: the engine's framework cannot be imported here.
        BenchError: the server did not start (the message has its stderr's tail).
    """
    with _servers.running_server("benchmarks.xmlrpc_servers", engine, cpu=cpu) as server:
        yield server


@contextlib.contextmanager
def load_client(mode: str, port: int, connections: int, seconds: float,
                cpu: int | None) -> Iterator[tuple[subprocess.Popen[bytes], LineReader]]:
    """Start the load client; yield it once ``ready`` (every caller connected and called)."""
    with tempfile.TemporaryFile() as stderr:
        proc = start_python("benchmarks.xmlrpc_servers",
                            ["load", mode, str(port), str(connections), str(seconds)], cpu,
                            stderr, stdin=subprocess.PIPE)
        try:
            assert proc.stdout is not None
            lines = LineReader(proc.stdout)
            try:
                line = lines.readline(_servers.SERVER_START_TIMEOUT, "ready line")
            except BenchError as exc:
                proc.kill()
                proc.wait()
                stderr.seek(0)
                said = stderr.read().decode(errors="replace")
                raise BenchError(f"load client: {exc}: {tail(said, 3)}") from None
            if line != "ready":
                raise BenchError(f"load client said {line!r}, not 'ready'")
            yield proc, lines
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            for pipe in (proc.stdin, proc.stdout):
                if pipe is not None:
                    pipe.close()


def main(argv: list[str]) -> int:
    """Run the engine (or the load client) named in ``argv``; return the exit status."""
    if len(argv) == 5 and argv[0] == "load":
        _servers.exit_if_orphaned()
        return run_load(argv[1], int(argv[2]), int(argv[3]), float(argv[4]))
    usage = (f"python -m benchmarks.xmlrpc_servers {{{','.join(ENGINES)}}}\n"
             "       python -m benchmarks.xmlrpc_servers load {raw,proxy} PORT N SECONDS")
    return _servers.serve_main(ENGINES, argv, usage)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))


__all__ = ["ENGINES", "LoadResult", "Server", "load_client", "running_server"]
