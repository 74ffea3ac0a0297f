"""XML-RPC servers under load: server CPU per call and calls/s, torsion vs Twisted, stdlib.

One case, ``add``: the call ``add(2, 3)`` (a 170-byte request, a 130-byte response)
made back to back by N = 16 concurrent callers, each on its own keep-alive connection.

Every engine is a separate server process (``benchmarks/xmlrpc_servers.py``) on
127.0.0.1: torsion's ``XMLRPC`` resource on the select, asyncio and uvloop reactors,
Twisted's ``twisted.web.xmlrpc.XMLRPC`` (skipped with a line when Twisted is not
installed), and the stdlib's ``SimpleXMLRPCServer`` with ``ThreadingMixIn``.

The load comes from another process (``xmlrpc_servers.py load``), in one of two modes:

- ``raw`` (the default): asyncio streams on uvloop, one connection per caller, writing
  request bytes prepared once and reading each response by its Content-Length (every
  connection's first response is parsed in full and checked; later ones are checked for
  the ``<int>5</int>`` they must carry). It costs a few µs per call, so the server, not
  the client, is the bottleneck, which is what calls/s must show.
- ``proxy``: torsion's own client, ``protocols.xmlrpc.client.Proxy``, on the uvloop
  reactor, N callers each calling again when its call returns, over a connection pool
  keeping N connections alive. It is a full client (headers, marshalling, parsing), so
  on a 2-core machine it saturates before the fastest servers do: calls/s then measures
  the client. Choose it with ``TORSION_XMLRPC_CLIENT=proxy``.

The primary figure is the server's CPU time (user + system, from ``/proc/PID/stat``) per
call: read when the client is told to start its measured window and again when it has
stopped and every call in flight has returned, divided by the calls completed in that
window. calls/s and the client's latency percentiles (p50, p99) stand beside it, with the
client's CPU share (near 100% means the client, not the server, set the pace).

Before timing, each fresh server is checked with the stdlib's ``ServerProxy``: two calls
of ``add(2, 3)`` on one connection must return 5. With two or more usable CPUs the server
is pinned to one and the client to another. Each repetition starts a fresh server per
engine, warms it up with a 1-second load run, then measures one run (5 s; ``--quick``: one
repetition of 1 s). Engines run interleaved, forward on odd repetitions and reversed on
even ones. Ratios are paired: each repetition's figure over the reference engine's in the
same repetition, then the median of those.

``--engines uvloop,twisted`` (short names, see ``benchmarks/README.md``) or the older
``TORSION_XMLRPC_ENGINES=torsion-uvloop,twisted-xmlrpc`` (full names) limits a run. The
repetition loop, the ratios, the tables and the noise line are
:mod:`benchmarks._measure`'s, the same in every server suite. Nothing here fails on a
timing: the targets line (issue 8: torsion ahead of Twisted's and the stdlib's calls/s)
is information.
"""

from __future__ import annotations

import json
import os
import sys
import xmlrpc.client
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from benchmarks._harness import Options, Unavailable, engine_info, select_engines
from benchmarks._measure import BEST_TORSION, CaseSpec, Run, Suite, Target, run_suite
from benchmarks._servers import (
    HOST,
    BenchError,
    Pins,
    Server,
    cpu_seconds,
    machine_busy_seconds,
)
from benchmarks.xmlrpc_servers import (
    CALL,
    ENGINES,
    EXPECTED,
    RPC_PATH,
    LoadResult,
    load_client,
    running_server,
)

DESCRIPTION = (
    "XML-RPC add(2, 3) over keep-alive, 16 concurrent callers: server CPU per call and "
    "calls/s, torsion (select/asyncio/uvloop) vs Twisted's XMLRPC and the stdlib's "
    "threading SimpleXMLRPCServer"
)

ENGINES_ENV = "TORSION_XMLRPC_ENGINES"
CLIENT_ENV = "TORSION_XMLRPC_CLIENT"
CLIENT_MODES = ("raw", "proxy")
DEFAULT_ENGINES = tuple(ENGINES)
#: Modules each engine's server imports besides torsion's and the standard library.
REQUIRES = {"twisted-xmlrpc": ("twisted",)}
#: Engines every other is compared with, as paired-ratio columns.
REFERENCES = ("twisted-xmlrpc", "stdlib-threading")
CONNECTIONS = 16
RESULT_TIMEOUT_MARGIN = 30.0  # seconds past the window before a hung client is killed
#: Issue 8: the best torsion engine's calls/s above Twisted's and the stdlib's.
TARGETS = tuple(Target("add", BEST_TORSION, ref, 1.0, figure="rate") for ref in REFERENCES)


@dataclass(frozen=True)
class Workload:
    """The load's settings and how many repetitions."""

    reps: int
    seconds: float
    warmup_seconds: float = 1.0
    connections: int = CONNECTIONS
    client: str = "raw"


def workload_for(options: Options) -> Workload:
    """5 x 5 s measured per engine, or 1 x 1 s under ``--quick`` (a smoke run)."""
    client = os.environ.get(CLIENT_ENV, "raw").strip() or "raw"
    if client not in CLIENT_MODES:
        raise Unavailable(f"{CLIENT_ENV} must be one of {', '.join(CLIENT_MODES)}, "
                          f"not {client!r}")
    if options.quick:
        return Workload(reps=1, seconds=1.0, client=client)
    return Workload(reps=options.repeat, seconds=5.0, client=client)


# --- checking and measuring ---------------------------------------------------------


def check_server(server: Server) -> None:
    """Two ``add(2, 3)`` calls through the stdlib's ServerProxy (one connection) return 5."""
    proxy = xmlrpc.client.ServerProxy(f"http://{HOST}:{server.port}{RPC_PATH}")
    try:
        with proxy:
            for _ in range(2):
                got = getattr(proxy, CALL[0])(*CALL[1])
                if got != EXPECTED:
                    raise BenchError(f"{CALL[0]}{CALL[1]} returned {got!r}, not {EXPECTED}")
    except (OSError, xmlrpc.client.Error) as exc:
        raise BenchError(
            f"checking the server failed: {type(exc).__name__}: {exc}; {server.last_words()}"
        ) from None


def run_load(server: Server, w: Workload, seconds: float, cpu: int | None) -> Run:
    """One load run; the server's and the client's CPU are read around its window."""
    with load_client(w.client, server.port, w.connections, seconds, cpu) as (proc, lines):
        assert proc.stdin is not None
        before, machine_before = cpu_seconds(server.pid), machine_busy_seconds()
        client_before = cpu_seconds(proc.pid)
        proc.stdin.write(b"go\n")
        proc.stdin.flush()
        line = lines.readline(seconds + RESULT_TIMEOUT_MARGIN, "result")
        after, machine_after = cpu_seconds(server.pid), machine_busy_seconds()
        client_cpu = cpu_seconds(proc.pid) - client_before
    if not server.alive():
        raise BenchError(f"the server died during the run; {server.last_words()}")
    try:
        result = LoadResult(**json.loads(line))
    except (ValueError, TypeError) as exc:
        raise BenchError(f"the load client printed {line[:200]!r}: {exc}") from None
    if result.calls == 0:
        raise BenchError(f"no call completed; client: {result.first_error or 'no error'}; "
                         f"{server.last_words()}")
    server_cpu = after - before
    other = machine_after - machine_before - server_cpu - client_cpu
    errors = {"calls": result.errors} if result.errors else {}
    return Run(server_cpu, result.calls, result.seconds, client_cpu, max(0.0, other),
               result.p50_us, result.p99_us, errors, result.first_error)


def measurer(w: Workload, pins: Pins) -> Callable[[str, Callable[[str], None]], dict[str, Run]]:
    """``measure(engine, step)`` for :func:`benchmarks._measure.run_suite`."""

    def measure(engine: str, step: Callable[[str], None]) -> dict[str, Run]:
        """Start ``engine``'s server, check it, warm it up and measure one run."""
        with running_server(engine, pins.server) as server:
            check_server(server)
            step("add")
            run_load(server, w, w.warmup_seconds, pins.client)
            return {"add": run_load(server, w, w.seconds, pins.client)}

    return measure


def run(options: Options) -> dict[str, Any]:
    """Measure every available engine; print the table and the targets.

    Returns:
        The suite's JSON-ready report: engines, workload, one case record, skips,
        errors, the machine's load and the target verdicts.
    """
    if not sys.platform.startswith("linux"):
        print("xmlrpc: skipped: needs Linux (/proc CPU times)")
        return {"engines": {}, "cases": [], "skipped": "not Linux"}
    if options.torsion_module:
        print("xmlrpc: note: --torsion-module applies to the deferred suite only")
    engines, skipped = select_engines("xmlrpc", DEFAULT_ENGINES, list(ENGINES), options,
                                      ENGINES_ENV, REQUIRES)
    w = workload_for(options)
    pins = Pins.choose()
    print(f"xmlrpc: {pins.describe('load client')}")
    print(f"xmlrpc: load client: {w.client} ({w.connections} concurrent keep-alive callers)")
    spec = CaseSpec(
        "add", f"add(2, 3) over keep-alive, {w.connections} concurrent callers", "call",
        "CPU µs/call", "calls/s", cpu_key="cpu_us_per_call", rate_key="calls_per_sec",
        title=f"add(2, 3), {w.connections} concurrent callers over keep-alive, {w.client} "
              "client")
    suite = Suite("xmlrpc", (spec,), measurer(w, pins), REFERENCES, TARGETS, client="client",
                  rate_ratios=True,
                  engine_info=lambda e: engine_info(e, "benchmarks.xmlrpc_servers"),
                  legacy_ratio=("twisted-xmlrpc", "torsion-select"))
    heading = (f"xmlrpc: {w.seconds:g} s measured after {w.warmup_seconds:g} s of warm-up; "
               f"medians of {w.reps} run{'s' if w.reps > 1 else ''} per engine, engines "
               "interleaved")
    report = run_suite(suite, engines, w.reps, heading, skipped)
    report["workload"] = asdict(w)
    return report
