"""How many requests a server loses when it is stopped under load.

``python -m benchmarks.shutdown_loss [--runs N]``: for each server, 50 clients
send requests back to back on keep-alive connections; once 500 answers have
come back the server gets SIGTERM (nginx also SIGQUIT, its graceful stop).
A request counts as *unanswered* when it was fully sent and no complete
response came back (reset, or closed without an answer), *truncated* when
its response was cut. A request refused because the listener had closed was
never sent and counts as neither. Torsion's own figure is asserted in
``tests/protocols/http/test_shutdown.py``; this script puts the others beside
it. Not a timing benchmark: the counts are what matter.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
from pathlib import Path

from benchmarks.http_servers import nginx_binary
from tests.protocols.http.test_shutdown import CLIENTS, SERVER, Tally, keep_asking

ROOT = Path(__file__).resolve().parents[1]

TWISTED = textwrap.dedent('''
    from twisted.internet import reactor
    from twisted.web import resource, server

    class Busy(resource.Resource):
        isLeaf = True

        def render_GET(self, request):
            def done():
                request.write(b"x" * 4000)
                request.finish()
            reactor.callLater(0.002, done)
            return server.NOT_DONE_YET

    port = reactor.listenTCP(0, server.Site(Busy()), interface="127.0.0.1")
    print(port.getHost().port, flush=True)
    reactor.run()
''')

AIOHTTP = textwrap.dedent('''
    import asyncio, socket
    from aiohttp import web

    async def busy(request):
        await asyncio.sleep(0.002)
        return web.Response(body=b"x" * 4000)

    app = web.Application()
    app.router.add_get("/", busy)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    print(sock.getsockname()[1], flush=True)
    web.run_app(app, sock=sock, print=None)
''')

NGINX_CONF = """\
daemon off;
master_process off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location = / {{ root {root}; try_files /{name} =404; }}
    }}
}}
"""


def measure(command: list[str], env: dict[str, str] | None, stop: int,
            port: int | None = None) -> Tally:
    """Run the server, load it, signal it, and count what the clients saw."""
    server = subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True)
    try:
        assert server.stdout is not None
        number = port if port is not None else int(server.stdout.readline())
        if port is not None:
            _wait_listening(port)
        tally = Tally(threshold=CLIENTS * 10)
        threads = [threading.Thread(target=keep_asking, args=(number, tally))
                   for _ in range(CLIENTS)]
        for thread in threads:
            thread.start()
        if not tally.busy.wait(60):
            raise RuntimeError("the clients never got going")
        server.send_signal(stop)
        for thread in threads:
            thread.join(60)
        server.wait(30)
        return tally
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def _wait_listening(port: int) -> None:
    import socket
    import time

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"nothing listens on {port}")


def servers(tmp: Path) -> list[tuple[str, list[str], dict[str, str] | None, int,
                                   int | None]]:
    """(name, command, env, signal, fixed port) for every server available here."""
    python = sys.executable
    out: list[tuple[str, list[str], dict[str, str] | None, int, int | None]] = []
    for backend in ("select", "asyncio", "uvloop"):
        env = dict(os.environ, TORSION_REACTOR=backend, PYTHONPATH=str(ROOT))
        out.append((f"torsion-{backend}", [python, "-c", SERVER], env, signal.SIGTERM, None))
    out.append(("twisted.web", [python, "-c", TWISTED], None, signal.SIGTERM, None))
    out.append(("aiohttp", [python, "-c", AIOHTTP], None, signal.SIGTERM, None))
    binary = nginx_binary()
    if binary is not None:
        body = tmp / "x"
        body.write_bytes(b"x" * 4000)
        for name, signum in (("nginx (SIGTERM)", signal.SIGTERM),
                             ("nginx (SIGQUIT)", signal.SIGQUIT)):
            import socket

            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                port = int(probe.getsockname()[1])
            conf = tmp / f"nginx-{signum}.conf"
            conf.write_text(NGINX_CONF.format(tmp=tmp, port=port, root=tmp, name=body.name))
            out.append((name, [binary, "-p", str(tmp), "-c", str(conf)], None, signum, port))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.shutdown_loss",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per server (default 3)")
    args = parser.parse_args()
    print(f"{CLIENTS} keep-alive clients, signal after {CLIENTS * 10} answers; per run: "
          "answered / unanswered (sent, no answer) / truncated")
    with tempfile.TemporaryDirectory() as scratch:
        for name, command, env, signum, port in servers(Path(scratch)):
            results = []
            for _ in range(args.runs):
                try:
                    tally = measure(command, env, signum, port)
                except (RuntimeError, OSError, ValueError) as e:
                    results.append(f"failed: {e}")
                    continue
                results.append(f"{tally.answered}/{tally.unanswered}/{tally.truncated}")
            print(f"{name:18} " + "  ".join(results), flush=True)


if __name__ == "__main__":
    main()
