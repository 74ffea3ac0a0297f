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

``TORSION_XMLRPC_ENGINES=torsion-uvloop,twisted-xmlrpc`` limits a run. Nothing here fails
on a timing: the targets line (issue 8: torsion ahead of Twisted's and the stdlib's
calls/s) is information.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import xmlrpc.client
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from importlib import metadata
from typing import Any

from benchmarks._harness import Options, Unavailable, engines_from_env
from benchmarks.echo_servers import BenchError, EngineUnavailable
from benchmarks.echo_suite import cpu_pair, server_cpu_seconds
from benchmarks.http_suite import machine_busy_seconds
from benchmarks.xmlrpc_servers import (
    CALL,
    ENGINES,
    EXPECTED,
    HOST,
    RPC_PATH,
    LoadResult,
    Server,
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
TORSION_ENGINES = ("torsion-select", "torsion-asyncio", "torsion-uvloop")
#: Engines every other is compared with, as paired-ratio columns.
REFERENCES = ("twisted-xmlrpc", "stdlib-threading")
CONNECTIONS = 16
RESULT_TIMEOUT_MARGIN = 30.0  # seconds past the window before a hung client is killed


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


@dataclass(frozen=True)
class Run:
    """One measured load run against one server."""

    server_cpu: float  # seconds
    calls: int
    seconds: float
    p50_us: float
    p99_us: float
    client_cpu: float
    other_cpu: float  # seconds of CPU that neither the server nor the client used
    errors: int
    first_error: str

    @property
    def cpu_us_per_call(self) -> float:
        return self.server_cpu / self.calls * 1e6

    @property
    def calls_per_sec(self) -> float:
        return self.calls / self.seconds


#: samples[engine][rep]
Samples = dict[str, dict[int, Run]]


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


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
        before, machine_before = server_cpu_seconds(server.pid), machine_busy_seconds()
        client_before = server_cpu_seconds(proc.pid)
        proc.stdin.write(b"go\n")
        proc.stdin.flush()
        line = lines.readline(seconds + RESULT_TIMEOUT_MARGIN, "result")
        after, machine_after = server_cpu_seconds(server.pid), machine_busy_seconds()
        client_cpu = server_cpu_seconds(proc.pid) - client_before
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
    return Run(server_cpu, result.calls, result.seconds, result.p50_us, result.p99_us,
               client_cpu, max(0.0, other), result.errors, result.first_error)


def measure(engine: str, w: Workload) -> Run:
    """Start ``engine``'s server, check it, warm it up and measure one run."""
    server_cpu_id, client_cpu_id = CPU_PAIR if CPU_PAIR is not None else (None, None)
    with running_server(engine, server_cpu_id) as server:
        check_server(server)
        run_load(server, w, w.warmup_seconds, client_cpu_id)
        return run_load(server, w, w.seconds, client_cpu_id)


def selected_engines() -> list[str]:
    """The default engines, or those named in ``$TORSION_XMLRPC_ENGINES``."""
    return engines_from_env(ENGINES_ENV, DEFAULT_ENGINES, list(ENGINES))


# --- ratios and targets -------------------------------------------------------------


def paired_ratio(samples: Samples, engine: str, reference: str, figure: str) -> float | None:
    """Median over repetitions of engine's ``figure`` / reference's; None if unpaired.

    ``figure`` is ``cpu_us_per_call`` (lower is better) or ``calls_per_sec`` (higher).
    """
    mine, theirs = samples.get(engine, {}), samples.get(reference, {})
    ratios = [getattr(mine[rep], figure) / getattr(theirs[rep], figure)
              for rep in mine if rep in theirs]
    return statistics.median(ratios) if ratios else None


def best_torsion(samples: Samples) -> str | None:
    """The torsion engine with the highest median calls/s."""
    medians = {e: statistics.median(r.calls_per_sec for r in samples[e].values())
               for e in TORSION_ENGINES if samples.get(e)}
    return max(medians, key=medians.__getitem__) if medians else None


def check_targets(samples: Samples) -> list[dict[str, Any]]:
    """Issue 8: the best torsion engine's calls/s above Twisted's and the stdlib's."""
    engine = best_torsion(samples)
    verdicts = []
    for reference in REFERENCES:
        ratio = None if engine is None else paired_ratio(samples, engine, reference,
                                                         "calls_per_sec")
        verdicts.append({"engine": "torsion-best", "engine_measured": engine,
                         "reference": reference, "figure": "calls_per_sec", "above": 1.0,
                         "ratio": ratio, "met": None if ratio is None else ratio > 1.0})
    return verdicts


# --- reporting ----------------------------------------------------------------------


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                       for i, (c, w) in enumerate(zip(row, widths, strict=True)))
             for row in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def _x(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.2f}x"


def _spread(values: Sequence[float]) -> float:
    return (max(values) - min(values)) / statistics.median(values)


def summarize(samples: Samples, engines: Sequence[str], refs: Sequence[str]
              ) -> dict[str, dict[str, Any]]:
    """JSON-ready medians, spreads, error totals and paired ratios per engine."""
    out = {}
    for engine in engines:
        if not samples.get(engine):
            continue
        rs = [samples[engine][rep] for rep in sorted(samples[engine])]
        cpu = [r.cpu_us_per_call for r in rs]
        out[engine] = {
            "runs": [{**asdict(r), "cpu_us_per_call": r.cpu_us_per_call,
                      "calls_per_sec": r.calls_per_sec} for r in rs],
            "cpu_us_per_call": statistics.median(cpu),
            "calls_per_sec": statistics.median(r.calls_per_sec for r in rs),
            "p50_us": statistics.median(r.p50_us for r in rs),
            "p99_us": statistics.median(r.p99_us for r in rs),
            "server_busy": statistics.median(r.server_cpu / r.seconds for r in rs),
            "client_busy": statistics.median(r.client_cpu / r.seconds for r in rs),
            "other_busy": max(r.other_cpu / r.seconds for r in rs),
            "spread": _spread(cpu),
            "errors": sum(r.errors for r in rs),
            "paired_cpu": {ref: paired_ratio(samples, engine, ref, "cpu_us_per_call")
                           for ref in refs},
            "paired_calls": {ref: paired_ratio(samples, engine, ref, "calls_per_sec")
                             for ref in refs},
        }
    return out


def render(summary: dict[str, dict[str, Any]], refs: Sequence[str]) -> str:
    """``engine | CPU µs/call | vs ref | calls/s | vs ref | latency | busy | spread``."""
    short = {"twisted-xmlrpc": "twisted", "stdlib-threading": "stdlib"}
    header = ["engine", "CPU µs/call", *(f"CPU vs {short.get(r, r)}" for r in refs),
              "calls/s", *(f"calls vs {short.get(r, r)}" for r in refs),
              "p50 ms", "p99 ms", "server busy", "client busy", "other max", "spread",
              "errors"]
    rows = [header]
    for engine, s in summary.items():
        rows.append([
            engine + ("!" if s["errors"] else ""),
            f"{s['cpu_us_per_call']:.1f}",
            *(_x(s["paired_cpu"][r]) for r in refs),
            f"{s['calls_per_sec']:,.0f}",
            *(_x(s["paired_calls"][r]) for r in refs),
            f"{s['p50_us'] / 1e3:.2f}",
            f"{s['p99_us'] / 1e3:.2f}",
            f"{s['server_busy']:.0%}",
            f"{s['client_busy']:.0%}",
            f"{s['other_busy']:.0%}",
            f"{s['spread']:.1%}",
            str(s["errors"]),
        ])
    return _table(rows)


def _target_lines(verdicts: list[dict[str, Any]]) -> list[str]:
    lines = ["targets (calls/s, paired ratios, medians over repetitions):"]
    misses, unchecked = [], []
    for v in verdicts:
        shown = f"torsion-best ({v['engine_measured']})" if v["engine_measured"] else (
            "torsion-best")
        name = f"{shown} / {v['reference']}"
        if v["met"] is None:
            state = "NOT CHECKED (an engine did not run)"
            unchecked.append(f"torsion-best / {v['reference']}")
        else:
            state = "MET" if v["met"] else "NOT MET"
            if not v["met"]:
                misses.append(f"{name} {v['ratio']:.2f}x")
        lines.append(f"  {name:48} {_x(v['ratio']):>7}  > {v['above']:.2f}x  {state}")
    met = sum(1 for v in verdicts if v["met"])
    verdict = f"targets: {met} of {len(verdicts)} MET"
    if misses:
        verdict += f"; NOT MET: {', '.join(misses)}"
    if unchecked:
        verdict += f"; NOT CHECKED: {', '.join(unchecked)}"
    return [*lines, verdict]


def _engine_info(engine: str) -> dict[str, str]:
    framework = engine.partition("-")[0]
    if framework == "stdlib":
        version = f"python {sys.version.split()[0]}"
    else:
        try:
            version = metadata.version(framework)
        except metadata.PackageNotFoundError:
            version = "source tree"
    if engine.endswith("uvloop"):
        try:
            version += f" (uvloop {metadata.version('uvloop')})"
        except metadata.PackageNotFoundError:
            pass
    return {"module": "benchmarks.xmlrpc_servers", "server": engine, "version": version}


#: CPUs the server and the client are pinned to, or None (fewer than 2 usable CPUs).
CPU_PAIR: tuple[int, int] | None = None


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
    engines = selected_engines()
    w = workload_for(options)
    global CPU_PAIR
    CPU_PAIR = cpu_pair()
    load_before = os.getloadavg()
    if CPU_PAIR is None:
        print("xmlrpc: note: 1 usable CPU: the client and the server share it; CPU/call is "
              "still the server's own")
    else:
        print(f"xmlrpc: server pinned to CPU {CPU_PAIR[0]}, load client to CPU {CPU_PAIR[1]}")
    print(f"xmlrpc: load client: {w.client} ({w.connections} concurrent keep-alive callers)")
    print(f"xmlrpc: load average before the run {load_before[0]:.2f} {load_before[1]:.2f} "
          f"{load_before[2]:.2f} (1/5/15 min)")

    samples: Samples = {e: {} for e in engines}
    skipped: dict[str, str] = {}
    errors: dict[str, str] = {}
    for rep in range(1, w.reps + 1):
        order = engines if rep % 2 else engines[::-1]
        for engine in order:
            if engine in skipped or engine in errors:
                continue
            tag = f"[xmlrpc {rep}/{w.reps}] {engine}"
            try:
                r = measure(engine, w)
            except EngineUnavailable as exc:
                skipped[engine] = str(exc) or "not importable"
                _progress(f"{tag}: skipped: {skipped[engine]}")
                continue
            except BenchError as exc:
                errors[engine] = str(exc)
                _progress(f"{tag}: FAILED: {exc}")
                continue
            samples[engine][rep] = r
            note = f"; {r.errors} errors, first: {r.first_error}" if r.errors else ""
            _progress(f"{tag}: {r.cpu_us_per_call:.1f} µs/call {r.calls_per_sec:,.0f} "
                      f"calls/s p50 {r.p50_us / 1e3:.2f} ms{note}")
    load_after = os.getloadavg()

    # An engine that failed in any repetition shows its error, not a partial median.
    for engine in list(samples):
        if not samples[engine] or engine in errors:
            samples.pop(engine)
    ran = [e for e in engines if e in samples]
    refs = [r for r in REFERENCES if r in ran]
    summary = summarize(samples, ran, refs)
    verdicts = check_targets(samples)
    print(f"\nxmlrpc add(2, 3): {w.connections} concurrent callers over keep-alive, "
          f"{w.client} client; {w.seconds:g} s measured after {w.warmup_seconds:g} s of "
          f"warm-up; medians of {w.reps} run{'s' if w.reps > 1 else ''} per engine, engines "
          "interleaved")
    print("  CPU = server user+sys per call; vs X = median of paired per-run ratios (CPU: "
          "lower is better,\n  calls: higher is better); busy = CPU/wall of the process; "
          "other max = the most CPU anything\n  else used in one run (noise); spread = "
          "(max-min)/median of CPU per call\n")
    if summary:
        print(render(summary, refs))
    print()
    for engine, why in skipped.items():
        print(f"skipped {engine}: {why}")
    for engine, why in errors.items():
        print(f"error {engine}: {why}")
    print(f"machine: load average {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f} "
          f"after the run (was {load_before[0]:.2f})")
    print()
    for line in _target_lines(verdicts):
        print(line)

    engines_run: dict[str, Any] = dict(summary)
    engines_run.update({engine: {"error": why} for engine, why in errors.items()})
    record = {
        "name": "add",
        "description": f"add(2, 3) over keep-alive, {w.connections} concurrent callers; "
                       "unit: server CPU µs per call",
        "per_op": 1,
        "unit": "call",
        "engines": engines_run,
        # The harness's "torsion over twisted, higher is better": twisted's CPU per call
        # over torsion-select's (paired median).
        "ratio": paired_ratio(samples, "twisted-xmlrpc", "torsion-select", "cpu_us_per_call"),
    }
    return {
        "engines": {e: _engine_info(e) for e in ran},
        "workload": asdict(w),
        "skipped": skipped,
        "errors": errors,
        "load_average": {"before": load_before, "after": load_after},
        "cases": [record],
        "targets": verdicts,
    }
