"""A Resource whose ``render_GET`` is ``async def``: it awaits, then answers.

Run it, from the repository root, either way:

    python examples/async_resource.py --port 8080
    torsion web --app examples.async_resource:root --port 8080

then ``curl 'http://127.0.0.1:8080/?name=you'``. The first form is a whole
program (listen, print the address, run the reactor); the second lets the
``torsion`` command do that part, with its options (--reactor, --listen,
--workers, TLS) and its access log.

While one request awaits, the reactor keeps serving the others: the await
stands in for real I/O, such as a database query or a call to another server.
"""

from __future__ import annotations

import argparse
import hashlib
from typing import Any

import reactor
from protocols.http import Resource, Site
from reactor.task import deferLater


def _digest(data: bytes) -> str:
    # Runs in a thread of the reactor's pool: CPU work that would stall the loop.
    return hashlib.sha256(data).hexdigest()


class Greeting(Resource):
    """``GET /?name=NAME``: a greeting, sent after two asynchronous waits."""

    isLeaf = True

    async def render_GET(self, request: Any) -> bytes:
        """Wait on a timer and on a thread, then return the body."""
        name = request.args.get(b"name", [b"world"])[0]
        # A timer: the reactor serves other requests for these 50 ms.
        await deferLater(reactor, 0.05)
        # A blocking function, run in a thread; awaiting its Deferred.
        digest = await reactor.deferToThread(_digest, name)
        request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
        return b"Hello, %s!\nsha256(name) = %s\n" % (name, digest.encode("ascii"))


#: What ``torsion web --app examples.async_resource:root`` serves.
root = Greeting()


def main(argv: list[str] | None = None) -> None:
    """Serve ``root`` on --port (default 8080) until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8080, help="0: any free port")
    parser.add_argument("--interface", default="127.0.0.1")
    args = parser.parse_args(argv)
    port = reactor.listenTCP(args.port, Site(root), interface=args.interface)
    # Tells a user (or a test that asked for port 0) where to connect.
    print(f"serving on http://{args.interface}:{port.getHost().port}/", flush=True)
    reactor.run()


if __name__ == "__main__":
    main()
