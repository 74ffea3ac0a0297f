"""TCP echo servers under load: server CPU time per message and per MB, torsion vs peers.

Every engine is a separate server process (``benchmarks/echo_servers.py``) on 127.0.0.1,
driven by a small C load client (``benchmarks/echo_client.c``, built here with gcc into
``benchmarks/.build/``) so the load costs less than any server it drives. Two workloads:

- ping-pong: 64-byte messages over 50 connections, each connection sending one message
  and waiting for its whole echo before the next, for a fixed total of messages;
- stream: 64 KiB chunks over 8 connections, each keeping up to 256 KiB unanswered, for a
  fixed total of bytes echoed.

The primary figure is the server's CPU time (user + system, from ``/proc/PID/stat``) per
message or per MB, read just before and just after the workload: the client connects and
makes one round trip per connection first, says "ready", and keeps its connections open
until the second reading, so neither accept nor teardown is counted. On a 2-core machine
the client occupies one core, so messages/s partly measures the client and the machine;
CPU per message measures the server alone. Throughput, latency (from the client) and how
busy each process was stand beside it.

With two or more usable CPUs the server is pinned to one and the client to another. Left
to the scheduler, the pair sometimes shares a core (whenever anything else runs) and
sometimes not, and that alone moves streaming CPU per MB by half: on one core the server
finds bigger batches in each read. Pinned, every engine meets the same arrangement.

Each repetition starts a fresh server per engine (process-level luck such as memory layout
then shows in the spread instead of biasing one engine for the whole run), runs a short
warm-up of each workload, then the measured one. The warm-up matters beyond caches: a
fresh plain asyncio server on Python 3.11 costs about three times its steady-state CPU per
message until its first connection closes (see ``asyncio-64k`` in echo_servers), and the
warm-up's connections close before anything is measured. Engines run interleaved, in forward order
on odd repetitions and reversed on even ones, so drift hits all alike. Ratios are paired:
each repetition's figure over the reference engine's in the same repetition, then the
median of those ratios.

``--engines select,asyncio`` (short names, see ``benchmarks/README.md``) or the older
``TORSION_ECHO_ENGINES=torsion-select,asyncio`` (full names, any of
``benchmarks.echo_servers.ENGINES``) limits a run to some engines. The repetition loop,
the ratios, the tables and the noise line are :mod:`benchmarks._measure`'s, the same in
every server suite. Nothing here fails on a timing: the targets line is information.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks._harness import Options, Unavailable, engine_info, progress, select_engines
from benchmarks._measure import CaseSpec, Run, Samples, Suite, Target, paired_ratio, run_suite
from benchmarks._servers import (
    BenchError,
    LineReader,
    Pins,
    Server,
    cpu_seconds,
    machine_busy_seconds,
    pin,
)
from benchmarks.echo_servers import ENGINES as SERVER_ENGINES
from benchmarks.echo_servers import running_server

DESCRIPTION = (
    "TCP echo servers: server CPU per 64-byte ping-pong message (50 connections) "
    "and per MB streamed in 64 KiB chunks, torsion vs asyncio, uvloop, Twisted"
)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CLIENT_SOURCE = HERE / "echo_client.c"
BUILD_DIR = HERE / ".build"
ENGINES_ENV = "TORSION_ECHO_ENGINES"
MB = 1_000_000  # throughput and CPU per MB use decimal megabytes of echoed payload
MIB = 1024 * 1024

#: Run by default, in this order; the other engines of echo_servers on request.
DEFAULT_ENGINES = (
    "torsion-select",
    "torsion-asyncio",
    "torsion-uvloop",
    "asyncio",
    "uvloop",
    "twisted-epoll",
)
#: Modules each engine's server imports besides torsion's and the standard library.
REQUIRES = {e: ("twisted",) for e in SERVER_ENGINES if e.startswith("twisted")}
#: Engines every other is compared with, as paired-ratio columns.
REFERENCES = ("asyncio", "uvloop", "twisted-epoll")
#: Server CPU µs per 64-byte ping-pong message measured on the issue's machine.
ISSUE_FIGURES = {
    "uvloop": 6.2,
    "asyncio": 7.8,
    "twisted-select": 13.0,
    "twisted-epoll": 17.7,
    "twisted-asyncio-uvloop": 22.4,
}
CLIENT_READY_TIMEOUT = 30.0  # seconds to connect and prime every connection

TARGETS = (
    Target("pingpong", "torsion-uvloop", "uvloop", 1.10),
    Target("pingpong", "torsion-select", "asyncio", 1.00),
    # The issue chains it: torsion-select <= asyncio, "which is at most 0.5x Twisted's
    # epollreactor"; checked directly, since on some machines asyncio is not.
    Target("pingpong", "torsion-select", "twisted-epoll", 0.50),
    Target("stream", "torsion-select", "asyncio", 1.15),
    Target("stream", "torsion-asyncio", "asyncio", 1.15),
    Target("stream", "torsion-uvloop", "uvloop", 1.15),
)


@dataclass(frozen=True)
class Workload:
    """How much each measured run does; warm-ups do a tenth of it."""

    reps: int
    messages: int
    stream_bytes: int
    connections: int = 50
    size: int = 64
    stream_connections: int = 8
    chunk: int = 64 * 1024
    #: The client's own wall-clock cap per run, so a stuck server cannot hang the suite.
    cap: float = 120.0


def workload_for(options: Options) -> Workload:
    """The full workload, or a smoke-sized one under ``--quick``."""
    # /proc CPU times come in 10 ms ticks, so each measured run must keep the server busy
    # for 200+ ticks (full) or it mostly measures rounding: streaming costs ~0.4 ms of
    # server CPU per MB, ping-pong ~10 µs per message. --quick is a smoke run (~10 ticks
    # per run, ±10%) that must leave room for every other suite in CI's 5 minutes: about
    # 20 s on a quiet 2-core machine, two repetitions so the noise line has a spread.
    if options.quick:
        return Workload(
            reps=min(options.repeat, 2), messages=10_000, stream_bytes=256 * MIB, cap=30.0
        )
    return Workload(reps=options.repeat, messages=200_000, stream_bytes=2048 * MIB)


def case_specs(w: Workload) -> tuple[CaseSpec, CaseSpec]:
    """The two workloads as the harness's cases."""
    return (
        CaseSpec("pingpong", f"{w.size}-byte ping-pong over {w.connections} connections",
                 "message", "CPU µs/msg", "msgs/s", latency_ms=False,
                 cpu_key="cpu_us_per_msg", rate_key="msgs_per_sec",
                 title=f"{w.size}-byte messages, {w.connections} connections, "
                       f"{w.messages:,} messages per run"),
        CaseSpec("stream", f"{w.chunk // 1024} KiB chunks streamed over "
                 f"{w.stream_connections} connections", "MB", "CPU ms/MB", "MB/s",
                 cpu_scale=1e3, ops_per_unit=MB, cpu_key="cpu_ms_per_mb", rate_key="mb_per_sec",
                 title=f"{w.chunk // 1024} KiB chunks, {w.stream_connections} connections, "
                       f"{w.stream_bytes // MIB:,} MiB echoed per run (MB = 10^6 bytes)"),
    )


# --- processes --------------------------------------------------------------------------


def run_client(
    client: Path, server: Server, args: Sequence[str], cap: float, cpu: int | None
) -> tuple[dict[str, Any], float, float]:
    """Run one client workload against ``server``.

    Returns:
        The client's JSON result, the server's CPU seconds during the workload, and the
        CPU seconds everything else on the machine used meanwhile (a noise gauge).
    """
    proc = subprocess.Popen(
        [str(client), "-r", "-p", str(server.port), "-t", f"{cap:g}", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        pin(proc.pid, cpu)
        lines = LineReader(proc.stdout)
        line = lines.readline(CLIENT_READY_TIMEOUT, "ready line")
        if line != "ready":
            raise BenchError(f"load client: {_client_error(line)}")
        before, machine_before = cpu_seconds(server.pid), machine_busy_seconds()
        proc.stdin.write(b"go\n")
        proc.stdin.flush()
        line = lines.readline(cap + 30, "result")
        # Read before the client closes its connections: teardown is not the workload.
        after, machine_after = cpu_seconds(server.pid), machine_busy_seconds()
        proc.stdin.write(b"done\n")
        proc.stdin.flush()
        proc.wait(timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BenchError(f"load client: {exc}") from exc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdin.close()
        proc.stdout.close()
    try:
        result = json.loads(line)
    except ValueError:
        raise BenchError(f"load client printed {line!r}, not a JSON result") from None
    if "error" in result:
        raise BenchError(f"load client: {result['error']}")
    if result["timed_out"]:
        raise BenchError(f"load client hit its {cap:g} s cap: the server is stuck or far too slow")
    used = after - before
    other = machine_after - machine_before - used - result["client_cpu_seconds"]
    return result, used, max(0.0, other)


def _client_error(line: str) -> str:
    try:
        return str(json.loads(line).get("error", line))
    except ValueError:
        return line or "no output"


def build_client() -> Path | None:
    """Compile the load client when missing or older than its source; None without gcc."""
    binary = BUILD_DIR / "echo_client"
    if binary.exists() and binary.stat().st_mtime >= CLIENT_SOURCE.stat().st_mtime:
        return binary
    compiler = shutil.which("gcc") or shutil.which("cc")
    if compiler is None:
        return None
    BUILD_DIR.mkdir(exist_ok=True)
    # Build under a private name and rename: two suites starting at once never run a
    # half-written binary.
    partial = BUILD_DIR / f"echo_client.{os.getpid()}.partial"
    progress(f"[echo] building {binary.relative_to(ROOT)} with {compiler} -O2")
    done = subprocess.run(
        [compiler, "-O2", "-Wall", "-o", str(partial), str(CLIENT_SOURCE)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        partial.unlink(missing_ok=True)
        raise Unavailable(f"building the load client failed:\n{done.stderr.strip()}")
    os.replace(partial, binary)
    return binary


# --- measuring --------------------------------------------------------------------------


def measurer(client: Path, w: Workload, pins: Pins
             ) -> Callable[[str, Callable[[str], None]], dict[str, Run]]:
    """``measure(engine, step)`` for :func:`benchmarks._measure.run_suite`."""
    pingpong = ["-m", "pingpong", "-c", str(w.connections), "-s", str(w.size)]
    stream = ["-m", "stream", "-c", str(w.stream_connections), "-k", str(w.chunk)]

    def measure(engine: str, step: Callable[[str], None]) -> dict[str, Run]:
        """Start ``engine``'s server, warm it up, and measure one run of each workload."""
        with running_server(engine, pins.server) as server:
            step("pingpong")
            run_client(client, server, [*pingpong, "-n", str(w.messages // 10)], w.cap,
                       pins.client)
            result, cpu, other = run_client(
                client, server, [*pingpong, "-n", str(w.messages)], w.cap, pins.client)
            latency = result["latency_us"]
            pp = Run(cpu, result["messages"], result["seconds"],
                     result["client_cpu_seconds"], other, latency["p50"], latency["p99"])
            step("stream")
            run_client(client, server, [*stream, "-b", str(w.stream_bytes // 10)], w.cap,
                       pins.client)
            result, cpu, other = run_client(
                client, server, [*stream, "-b", str(w.stream_bytes)], w.cap, pins.client)
            st = Run(cpu, result["bytes"], result["seconds"], result["client_cpu_seconds"],
                     other)
        return {"pingpong": pp, "stream": st}

    return measure


def _context_lines(specs: Sequence[CaseSpec]) -> Callable[[Samples], list[str]]:
    """Ratios that explain the targets without being targets, and a busy-client note."""
    pp = specs[0]

    def lines(samples: Samples) -> list[str]:
        runs = samples["pingpong"]

        def cpu(r: Run) -> float:
            return r.cpu(pp)

        out = []
        busy = [e for e, reps in runs.items()
                if sorted(r.client_cpu / r.seconds for r in reps.values())[len(reps) // 2] > 0.9]
        if busy:
            out.append(f"note: the load client was over 90% busy against {', '.join(busy)}: "
                       "msgs/s there measures the client; CPU per message is still valid")
        for engine, reference, why in (
            ("asyncio", "twisted-epoll", "(issue's machine: 0.44x; the issue assumes at most "
             "0.5x)"),
            ("asyncio-64k", "asyncio", ": what 64 KiB reads instead of asyncio's 256 KiB "
             "change"),
            ("torsion-select", "asyncio-64k", ""),
        ):
            ratio = paired_ratio(runs, engine, reference, cpu)
            if ratio is not None:
                out.append(f"context: ping-pong {engine} / {reference} {ratio:.2f}x {why}"
                           .rstrip())
        return out

    return lines


def _issue_figure(engine: str, summary: dict[str, Any]) -> str:
    figure = ISSUE_FIGURES.get(engine)
    return "-" if figure is None else f"{figure:.1f}"


def run(options: Options) -> dict[str, Any]:
    """Measure every available engine; print the tables and the targets.

    Returns:
        The suite's JSON-ready report: engines, workload, one record per workload
        (``pingpong``, ``stream``) and the target verdicts.
    """
    if not sys.platform.startswith("linux"):
        print("echo: skipped: needs Linux (/proc CPU times and the epoll load client)")
        return {"engines": {}, "cases": [], "skipped": "not Linux"}
    client = build_client()
    if client is None:
        print("echo: skipped: gcc not found, so the C load client cannot be built "
              "(apt-get install gcc)")
        return {"engines": {}, "cases": [], "skipped": "gcc not found"}
    if options.torsion_module:
        print("echo: note: --torsion-module applies to the deferred suite only")
    engines, skipped = select_engines("echo", DEFAULT_ENGINES, list(SERVER_ENGINES), options,
                                      ENGINES_ENV, REQUIRES)
    w = workload_for(options)
    pins = Pins.choose()
    print(f"echo: {pins.describe('load client')}")
    specs = case_specs(w)
    suite = Suite(
        "echo", specs, measurer(client, w, pins), REFERENCES, TARGETS,
        client="client",
        # The issue's figures for the same engines, beside ours.
        columns={"pingpong": [("issue µs/msg", _issue_figure)]},
        engine_info=lambda e: engine_info(e, "benchmarks.echo_servers"),
        legacy_ratio=("twisted-epoll", "torsion-select"),
        epilogue=_context_lines(specs),
    )
    heading = (f"echo: medians of {w.reps} run{'s' if w.reps > 1 else ''} per engine, "
               "engines interleaved, a warm-up of a tenth of each workload first")
    report = run_suite(suite, engines, w.reps, heading, skipped)
    report["workload"] = asdict(w)
    return report
