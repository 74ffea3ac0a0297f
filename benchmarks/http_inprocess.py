"""The HTTP server's pure-Python cost per request, measured in-process (no sockets).

``python -m benchmarks.http_inprocess [-n 50000] [--repeat 5] [--clock fake|uvloop]
[--transport string|null] [--profile FILE]`` feeds a keep-alive ``GET / HTTP/1.1`` to
one :class:`~protocols.http.server.HTTPChannel` over a ``reactor.testing.StringTransport``
``n`` times, the resource tree being the ``http`` suite's (a root ``Resource`` whose
``b""`` child is a leaf rendering ``b"hello"``), and prints the CPU time per request
(``time.process_time``: the machine is shared, so wall time would measure neighbours).
Repetitions are independent; the median and the spread are printed.

What it isolates: everything torsion does in Python between a transport's
``dataReceived`` and its ``write`` (parser callbacks, Request, traversal, rendering,
response head, timers, access log check). What it leaves out: the event loop, the
socket system calls and the kernel — the part that bare uvloop+httptools also pays,
so ``in-process us/req + floor us/req`` approximates torsion-uvloop under wrk.

``--floor`` times the same loop over the floor's Python part instead (httptools
calling one ``on_message_complete`` that writes a prepared response): what any
Python server on httptools pays at least.

``--clock uvloop`` gives the channel a real (not running) uvloop reactor for its
timers, so ``callLater``/``reset`` cost what they cost in production; ``--transport
null`` replaces StringTransport's checked BytesIO write with a bare counter, to tell
the transport double's own cost apart. ``--profile FILE`` runs one repetition under
cProfile and writes the stats (``python -m pstats FILE``), printing the top entries.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import pstats
import statistics
import sys
import time
from typing import Any

from protocols.http.resource import Resource
from protocols.http.server import Site
from reactor.testing import Clock, StringTransport

REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n"
EXPECTED_BODY = b"hello"


class Hello(Resource):
    """The suite's leaf: ``GET`` answers ``hello``."""

    isLeaf = True

    def render_GET(self, request: Any) -> bytes:
        """Return the body."""
        return EXPECTED_BODY


class NullTransport(StringTransport):
    """StringTransport that only counts writes (the cheapest possible transport)."""

    writes = 0

    def write(self, data: bytes) -> None:
        """Count the write and drop the bytes."""
        self.writes += 1


def make_site() -> Site:
    """The ``http`` suite's tree: ``/`` is a leaf returning ``hello``."""
    root = Resource()
    root.putChild(b"", Hello())
    return Site(root)


def make_clock(kind: str) -> Any:
    """A fake Clock, or a real uvloop reactor (never run) for realistic timer costs."""
    if kind == "fake":
        return Clock()
    import reactor

    return reactor.create(kind)


class FloorProtocol:
    """The ``uvloop-httptools`` floor's Python part: httptools and one prepared write."""

    RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n"
                b"\r\n" + EXPECTED_BODY)

    def __init__(self, transport: Any) -> None:
        import httptools

        self.transport = transport
        self.parser = httptools.HttpRequestParser(self)

    def on_message_complete(self) -> None:
        """One response per request, as the floor server writes it."""
        self.transport.write(self.RESPONSE)

    def dataReceived(self, data: bytes) -> None:
        """Feed httptools."""
        self.parser.feed_data(data)


def run_floor(n: int, transport_kind: str) -> tuple[float, int]:
    """The same loop over :class:`FloorProtocol` (what torsion is compared with)."""
    transport = NullTransport() if transport_kind == "null" else StringTransport()
    received = FloorProtocol(transport).dataReceived
    gc.collect()
    start = time.process_time()
    for i in range(n):
        received(REQUEST)
        if transport_kind == "string" and i % 1000 == 999:
            transport.clear()
    return time.process_time() - start, getattr(transport, "writes", 0)


def run_once(n: int, clock: Any, transport_kind: str, floor: bool = False) -> tuple[float, int]:
    """Feed ``n`` requests; return (CPU seconds, writes made)."""
    if floor:
        return run_floor(n, transport_kind)
    site = make_site()
    site.clock = clock  # type: ignore[attr-defined]
    channel = site.buildProtocol(None)
    assert channel is not None
    transport = NullTransport() if transport_kind == "null" else StringTransport()
    channel.makeConnection(transport)
    received = channel.dataReceived
    # Check that the channel answers correctly before timing.
    received(REQUEST)
    if transport_kind == "string":
        first = transport.value()
        if not (first.startswith(b"HTTP/1.1 200 OK\r\n") and first.endswith(EXPECTED_BODY)):
            raise SystemExit(f"unexpected response: {first!r}")
        transport.clear()
    writes_before = getattr(transport, "writes", 0)
    gc.collect()
    start = time.process_time()
    if transport_kind == "string":
        # Empty the BytesIO now and then, as a socket would, so it does not grow.
        done = 0
        while done < n:
            step = min(1000, n - done)
            for _ in range(step):
                received(REQUEST)
            transport.clear()
            done += step
    else:
        for _ in range(n):
            received(REQUEST)
    elapsed = time.process_time() - start
    writes = getattr(transport, "writes", 0) - writes_before
    channel.connectionLost()
    return elapsed, writes


# --- XML-RPC -------------------------------------------------------------------------

XMLRPC_BODY = (b"<?xml version='1.0'?>\n<methodCall>\n<methodName>add</methodName>\n<params>\n"
               b"<param>\n<value><int>2</int></value>\n</param>\n<param>\n"
               b"<value><int>3</int></value>\n</param>\n</params>\n</methodCall>\n")
XMLRPC_REQUEST = (b"POST /RPC2 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: torsion-bench\r\n"
                  b"Content-Type: text/xml\r\nContent-Length: %d\r\n\r\n"
                  % len(XMLRPC_BODY) + XMLRPC_BODY)


def run_xmlrpc_parse(n: int) -> float:
    """``loads_request`` of the ``xmlrpc`` suite's ``add(2, 3)`` body, ``n`` times."""
    from protocols.xmlrpc._marshal import XMLRPCLimits, loads_request

    limits = XMLRPCLimits()
    if loads_request(XMLRPC_BODY, limits) != ((2, 3), "add"):
        raise SystemExit("loads_request is wrong")
    gc.collect()
    start = time.process_time()
    for _ in range(n):
        loads_request(XMLRPC_BODY, limits)
    return time.process_time() - start


def run_xmlrpc_server(n: int, clock: Any) -> float:
    """The ``xmlrpc`` suite's server: ``add(2, 3)`` POSTed to an XMLRPC resource at /RPC2."""
    from protocols.xmlrpc.server import XMLRPC

    class Calculator(XMLRPC):
        def xmlrpc_add(self, a: int, b: int) -> int:
            return a + b

    root = Resource()
    root.putChild(b"RPC2", Calculator())
    site = Site(root)
    site.clock = clock  # type: ignore[attr-defined]
    channel = site.buildProtocol(None)
    assert channel is not None
    transport = StringTransport()
    channel.makeConnection(transport)
    received = channel.dataReceived
    received(XMLRPC_REQUEST)
    if b"<int>5</int>" not in transport.value():
        raise SystemExit(f"unexpected response: {transport.value()!r}")
    transport.clear()
    gc.collect()
    start = time.process_time()
    for i in range(n):
        received(XMLRPC_REQUEST)
        if i % 1000 == 999:
            transport.clear()
    elapsed = time.process_time() - start
    channel.connectionLost()
    return elapsed


def run_xmlrpc_proxy(n: int) -> float:
    """``n`` sequential ``Proxy.callRemote("add", 2, 3)`` against a server in this process
    over 127.0.0.1 on the uvloop reactor: client, server, loop and system calls together
    (the ``xmlrpc-server`` case is the server's share)."""
    import reactor
    from protocols.xmlrpc.client import Proxy
    from protocols.xmlrpc.server import XMLRPC

    class Calculator(XMLRPC):
        def xmlrpc_add(self, a: int, b: int) -> int:
            return a + b

    r = reactor.create("uvloop")
    root = Resource()
    root.putChild(b"RPC2", Calculator())
    port = r.listenTCP(0, Site(root), interface="127.0.0.1")
    proxy = Proxy(f"http://127.0.0.1:{port.getHost().port}/RPC2", reactor=r)
    result: dict[str, float] = {}

    def call(remaining: int) -> None:
        if remaining == n:
            result["start"] = time.process_time()
        if remaining == 0:
            result["elapsed"] = time.process_time() - result["start"]
            r.stop()
            return
        d = proxy.callRemote("add", 2, 3)
        d.addCallback(lambda value: call(remaining - 1) if value == 5 else r.stop())
        d.addErrback(lambda failure: (print(failure), r.stop()))

    # A few calls first: the connection is made and kept alive before timing.
    r.callWhenRunning(lambda: proxy.callRemote("add", 2, 3).addBoth(lambda _: call(n)))
    r.run(installSignalHandlers=False)
    if "elapsed" not in result:
        raise SystemExit("the calls did not complete")
    return result["elapsed"]


def main(argv: list[str] | None = None) -> int:
    """Command line entry: print the median CPU microseconds per request."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.http_inprocess",
                                     description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("-n", type=int, default=50_000, help="requests per repetition")
    parser.add_argument("--repeat", type=int, default=5, help="repetitions")
    parser.add_argument("--clock", default="fake", help="fake, or a backend: uvloop, asyncio")
    parser.add_argument("--transport", choices=("string", "null"), default="string")
    parser.add_argument("--case", default="hello",
                        choices=("hello", "xmlrpc-parse", "xmlrpc-server", "xmlrpc-proxy"),
                        help="hello (default); XML-RPC add(2, 3): request parsing only, "
                        "the server through HTTPChannel, or Proxy calls over loopback")
    parser.add_argument("--floor", action="store_true",
                        help="time the floor's Python part (httptools + one write) instead")
    parser.add_argument("--profile", metavar="FILE", help="write cProfile stats of one run")
    args = parser.parse_args(argv)
    clock = make_clock(args.clock)
    if args.case != "hello":
        return xmlrpc_main(args, clock)
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        run_once(args.n, clock, args.transport, args.floor)
        profiler.disable()
        profiler.dump_stats(args.profile)
        pstats.Stats(args.profile).sort_stats("tottime").print_stats(25)
        return 0
    per_request: list[float] = []
    for _ in range(args.repeat):
        elapsed, writes = run_once(args.n, clock, args.transport, args.floor)
        per_request.append(elapsed / args.n * 1e6)
        if args.transport == "null" and writes != args.n:
            print(f"note: {writes / args.n:.2f} transport writes per request")
    median = statistics.median(per_request)
    spread = (max(per_request) - min(per_request)) / median * 100
    print(f"http in-process: {median:.2f} us/request CPU (median of {args.repeat} x "
          f"{args.n}; min {min(per_request):.2f}, spread {spread:.0f}%; "
          f"clock={args.clock}, transport={args.transport}"
          f"{', FLOOR (httptools + one write)' if args.floor else ''})")
    return 0


def xmlrpc_main(args: Any, clock: Any) -> int:
    """The XML-RPC cases: median CPU microseconds per call."""
    def once() -> float:
        if args.case == "xmlrpc-parse":
            return run_xmlrpc_parse(args.n)
        if args.case == "xmlrpc-server":
            return run_xmlrpc_server(args.n, clock)
        return run_xmlrpc_proxy(args.n)

    if args.profile:
        profiler = cProfile.Profile()
        profiler.runcall(once)
        profiler.dump_stats(args.profile)
        pstats.Stats(args.profile).sort_stats("tottime").print_stats(25)
        return 0
    per_call = [once() / args.n * 1e6 for _ in range(args.repeat)]
    median = statistics.median(per_call)
    spread = (max(per_call) - min(per_call)) / median * 100
    print(f"{args.case}: {median:.2f} us/call CPU (median of {args.repeat} x {args.n}; "
          f"min {min(per_call):.2f}, spread {spread:.0f}%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
