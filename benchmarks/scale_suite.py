"""Scale: 10,000 idle TCP connections held by each echo server, and a normal client served.

Each engine is the echo suite's server (``benchmarks/echo_servers.py``), one process per
engine and repetition. Against it, in order:

1. warm-up: one connection, a few dozen echoes, closed (first-use allocations are then
   not charged to the idle connections);
2. unloaded latency: a normal client (this process, a blocking socket with TCP_NODELAY)
   times ``echoes`` round trips of 64 bytes on a fresh connection, then closes it;
3. baseline: the server's RSS (``VmRSS`` in ``/proc/PID/status``) and open descriptors;
4. load: a holder process (``benchmarks/scale_client.py``) opens N connections, each
   sending one byte and waiting for its echo, so every one is proven accepted and served;
   "accept time" is from the first connect to the last echo. The server's descriptor
   count must then be exactly the baseline plus N;
5. after half a second to settle, the server's RSS again: memory per connection is
   (RSS held - RSS baseline) / N. RSS is user-space memory only: the kernel's socket
   buffers and structures are not in it (they are the same for every engine);
6. idle: the server's CPU time (all threads, nanoseconds from ``/proc/PID/task/*/
   schedstat``) and context switches over a few seconds while the N connections sit
   idle; a reactor that does not poll them busily uses ~0 CPU and ~0 wake-ups;
7. loaded latency: the normal client again, with all N connections held;
8. release: the holder closes everything; the server's descriptors must return to the
   baseline (RSS then is reported too: how much memory the engine gives back).

The normal client's loaded/unloaded ratio is the median of per-repetition ratios, both
taken against the same server process. Engines run interleaved (forward order on odd
repetitions, reversed on even ones). With two usable CPUs the server is pinned to one, the
holder and this process to the other.

File descriptors: each connection is one descriptor in the server and one in the holder,
so N = 10,000 needs a soft RLIMIT_NOFILE above that in both. The suite raises its own soft
limit to the hard limit before starting anything (servers inherit it; the holder raises
its own too) and reads each server's limit back from ``/proc/PID/limits``. When the hard
limit is too low, N is lowered to fit and the report says so. Neither torsion's reactors
nor the ``torsion`` command raise the limit themselves (nor do asyncio, uvloop or Twisted).

``TORSION_SCALE_ENGINES=torsion-select,asyncio`` limits a run to some engines (any of
``benchmarks.echo_servers.ENGINES``). Nothing here fails on a timing: the targets are
information.
"""

from __future__ import annotations

import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from benchmarks._harness import Options, engine_info, progress, render_table, select_engines
from benchmarks._servers import (
    HOST,
    BenchError,
    EngineUnavailable,
    LineReader,
    Pins,
    start_python,
)
from benchmarks.echo_servers import ENGINES as SERVER_ENGINES
from benchmarks.echo_servers import running_server

DESCRIPTION = (
    "10,000 idle TCP connections per echo server: RSS per connection, accept time, "
    "idle CPU, and a normal client's latency loaded vs unloaded"
)

ENGINES_ENV = "TORSION_SCALE_ENGINES"
DEFAULT_ENGINES = (
    "torsion-select",
    "torsion-asyncio",
    "torsion-uvloop",
    "asyncio",
    "uvloop",
    "twisted-epoll",
)
#: Modules each engine's server imports besides torsion's and the standard library.
REQUIRES: dict[str, Sequence[str]] = {
    e: ("twisted",) for e in SERVER_ENGINES if e.startswith("twisted")
}
#: Descriptors a server needs beyond its N connections (listener, epoll, pipes, stdio).
FD_MARGIN = 64
#: Informational targets: a normal client's median round trip with N idle connections
#: at most this many times the unloaded one, and idle CPU at most this share of a core.
LATENCY_LIMIT = 1.5
IDLE_CPU_LIMIT = 0.01


@dataclass(frozen=True)
class Workload:
    """How much one repetition does."""

    connections: int
    reps: int
    idle_seconds: float
    echoes: int = 200
    warmup_echoes: int = 20
    size: int = 64
    window: int = 32  # connects in flight at once: below every server's listen backlog
    cap: float = 120.0  # seconds the holder may take to open them all


def workload_for(options: Options) -> Workload:
    """10,000 connections, up to 3 repetitions; ``--quick``: 1,000 once (~5 s per engine)."""
    if options.quick:
        return Workload(connections=1000, reps=1, idle_seconds=1.0, cap=30.0)
    return Workload(connections=10_000, reps=min(options.repeat, 3), idle_seconds=3.0,
                    echoes=1000)



@dataclass(frozen=True)
class Sample:
    """One repetition against one engine."""

    connections: int
    accept_seconds: float
    rss_before: int  # bytes
    rss_held: int
    rss_released: int
    fds_before: int
    fds_held: int
    idle_seconds: float
    idle_cpu_seconds: float
    idle_switches: int  # context switches of the server's threads while idle
    unloaded_p50_us: float
    unloaded_p99_us: float
    loaded_p50_us: float
    loaded_p99_us: float
    close_seconds: float  # until the server had closed every connection
    nofile_soft: int

    @property
    def bytes_per_conn(self) -> float:
        return (self.rss_held - self.rss_before) / self.connections

    @property
    def accepts_per_sec(self) -> float:
        return self.connections / self.accept_seconds

    @property
    def idle_cpu_share(self) -> float:
        return self.idle_cpu_seconds / self.idle_seconds

    @property
    def wakeups_per_sec(self) -> float:
        return self.idle_switches / self.idle_seconds

    @property
    def p50_ratio(self) -> float:
        return self.loaded_p50_us / self.unloaded_p50_us

    @property
    def p99_ratio(self) -> float:
        return self.loaded_p99_us / self.unloaded_p99_us


# --- reading a process from /proc ----------------------------------------------------------


def rss_bytes(pid: int) -> int:
    """Resident set size of ``pid`` (VmRSS), in bytes."""
    with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise BenchError(f"no VmRSS for process {pid}")


def fd_count(pid: int) -> int:
    """How many descriptors ``pid`` has open."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def nofile_soft_limit(pid: int) -> int:
    """The soft RLIMIT_NOFILE of ``pid`` (-1: unlimited)."""
    with open(f"/proc/{pid}/limits", encoding="ascii") as f:
        for line in f:
            if line.startswith("Max open files"):
                soft = line.split()[3]
                return -1 if soft == "unlimited" else int(soft)
    raise BenchError(f"no open-files limit for process {pid}")


def _per_thread(pid: int, read: Callable[[str], int]) -> int:
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            total += read(f"/proc/{pid}/task/{tid}")
        except (FileNotFoundError, ProcessLookupError):
            pass  # the thread ended between the listing and the read
    return total


def _schedstat_ns(task: str) -> int:
    with open(f"{task}/schedstat", encoding="ascii") as f:
        return int(f.read().split()[0])  # time spent on a CPU, in nanoseconds


def _switches(task: str) -> int:
    count = 0
    with open(f"{task}/status", encoding="ascii", errors="replace") as f:
        for line in f:
            if line.startswith(("voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:")):
                count += int(line.split()[1])
    return count


def cpu_ns(pid: int) -> int:
    """CPU time of all of ``pid``'s threads, in nanoseconds (finer than /proc/PID/stat)."""
    return _per_thread(pid, _schedstat_ns)


def context_switches(pid: int) -> int:
    """Voluntary + involuntary context switches of all of ``pid``'s threads so far."""
    return _per_thread(pid, _switches)


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll ``check`` every 5 ms until true; return the seconds it took, or BenchError."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            raise BenchError(f"{what} not within {timeout:g} s")
        time.sleep(0.005)
    return time.monotonic() - start


# --- the clients ----------------------------------------------------------------------------


def round_trips(port: int, count: int, size: int) -> list[float]:
    """Time ``count`` echoes of ``size`` bytes on a new connection; microseconds each."""
    message = b"x" * size
    times = []
    with socket.create_connection((HOST, port), timeout=10) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(count):
            start = time.perf_counter()
            sock.sendall(message)
            got = 0
            while got < size:
                chunk = sock.recv(size - got)
                if not chunk:
                    raise BenchError("the server closed the normal client's connection")
                got += len(chunk)
            times.append((time.perf_counter() - start) * 1e6)
    return times


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (``fraction`` 0.5 is the median, 0.99 the p99)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def _latency(port: int, w: Workload) -> tuple[float, float]:
    round_trips(port, w.warmup_echoes, w.size)
    times = round_trips(port, w.echoes, w.size)
    return percentile(times, 0.5), percentile(times, 0.99)


class Holder:
    """The holder process: opens N connections, holds them until ``release()``."""

    def __init__(self, port: int, w: Workload, cpu: int | None) -> None:
        # Pinned and tied to our life (it dies with us) like a server; its stderr is ours.
        self.proc = start_python(
            "benchmarks.scale_client",
            ["--port", str(port), "--connections", str(w.connections),
             "--window", str(w.window), "--cap", f"{w.cap:g}"],
            cpu, sys.stderr.buffer, stdin=subprocess.PIPE)
        assert self.proc.stdout is not None
        self._lines = LineReader(self.proc.stdout)
        self._cap = w.cap

    def _result(self, timeout: float, what: str) -> dict[str, Any]:
        line = self._lines.readline(timeout, what)
        try:
            result: dict[str, Any] = json.loads(line)
        except ValueError:
            raise BenchError(f"the holder printed {line!r}, not JSON") from None
        if "error" in result:
            raise BenchError(f"holder: {result['error']}")
        return result

    def connected(self) -> tuple[int, float]:
        """Wait until every connection is served: (how many, seconds it took)."""
        result = self._result(self._cap + 30, "connected line")
        return result["connected"], result["seconds"]

    def release(self) -> None:
        """Close every connection and let the process exit."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"close\n")
        self.proc.stdin.flush()
        self._result(60, "closed line")
        self.proc.wait(timeout=10)

    def kill(self) -> None:
        """Make sure the process is gone (its connections close with it)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()


# --- one repetition ---------------------------------------------------------------------


def measure(engine: str, w: Workload, pins: Pins) -> Sample:
    """Start ``engine``'s server and take one Sample (see the module docstring)."""
    with running_server(engine, pins.server) as server:
        pid, port = server.pid, server.port
        soft = nofile_soft_limit(pid)
        if soft != -1 and soft < w.connections + FD_MARGIN:
            raise BenchError(f"the server's RLIMIT_NOFILE is {soft}, too low for "
                             f"{w.connections} connections")
        start_fds = fd_count(pid)
        round_trips(port, 50, w.size)  # warm-up
        wait_until(lambda: fd_count(pid) == start_fds, 10, "warm-up connection closed")
        unloaded = _latency(port, w)
        wait_until(lambda: fd_count(pid) == start_fds, 10, "latency connection closed")
        rss_before, fds_before = rss_bytes(pid), fd_count(pid)

        holder = Holder(port, w, pins.client)
        try:
            count, accept_seconds = holder.connected()
            if count != w.connections:
                raise BenchError(f"the holder opened {count} of {w.connections}")
            # Each was echoed, so each was accepted: the descriptors must all be there.
            wait_until(lambda: fd_count(pid) >= fds_before + count, 10,
                       f"{count} connections in the server's descriptor table")
            fds_held = fd_count(pid)
            if fds_held != fds_before + count:
                raise BenchError(f"the server holds {fds_held - fds_before} descriptors "
                                 f"more than before, for {count} connections")
            time.sleep(0.5)  # let anything the burst set in motion finish
            rss_held = rss_bytes(pid)

            cpu0, switches0, t0 = cpu_ns(pid), context_switches(pid), time.monotonic()
            time.sleep(w.idle_seconds)
            cpu1, switches1, t1 = cpu_ns(pid), context_switches(pid), time.monotonic()

            loaded = _latency(port, w)
            wait_until(lambda: fd_count(pid) == fds_held, 10, "latency connection closed")
            holder.release()
            close_seconds = wait_until(lambda: fd_count(pid) == fds_before, 60,
                                       "every connection closed by the server")
        finally:
            holder.kill()
        return Sample(
            connections=count,
            accept_seconds=accept_seconds,
            rss_before=rss_before,
            rss_held=rss_held,
            rss_released=rss_bytes(pid),
            fds_before=fds_before,
            fds_held=fds_held,
            idle_seconds=t1 - t0,
            idle_cpu_seconds=(cpu1 - cpu0) / 1e9,
            idle_switches=switches1 - switches0,
            unloaded_p50_us=unloaded[0],
            unloaded_p99_us=unloaded[1],
            loaded_p50_us=loaded[0],
            loaded_p99_us=loaded[1],
            close_seconds=close_seconds,
            nofile_soft=soft,
        )


# --- the run ------------------------------------------------------------------------------


def raise_nofile_limit() -> tuple[int, int]:
    """Raise this process's soft RLIMIT_NOFILE to its hard limit (servers inherit it).

    Returns:
        The (soft, hard) limits now in force; RLIM_INFINITY is -1.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass  # an unlimited hard limit the kernel caps lower: keep the soft one
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def fitted(w: Workload, soft: int) -> Workload:
    """``w`` with fewer connections if the descriptor limit cannot hold them all."""
    if soft == resource.RLIM_INFINITY or soft >= w.connections + FD_MARGIN:
        return w
    fits = max(100, (soft - FD_MARGIN) // 100 * 100)
    return Workload(fits, w.reps, w.idle_seconds, w.echoes, w.warmup_echoes, w.size,
                    w.window, w.cap)


def _median(values: Sequence[float]) -> float:
    return statistics.median(values)


def _spread(values: Sequence[float]) -> float:
    middle = statistics.median(values)
    return (max(values) - min(values)) / middle if middle else 0.0


#: Per-engine summary fields: name -> how to get it from one Sample (medians are taken).
FIELDS: dict[str, Callable[[Sample], float]] = {
    "bytes_per_conn": lambda s: s.bytes_per_conn,
    "rss_before": lambda s: s.rss_before,
    "rss_held": lambda s: s.rss_held,
    "rss_released": lambda s: s.rss_released,
    "accept_seconds": lambda s: s.accept_seconds,
    "accepts_per_sec": lambda s: s.accepts_per_sec,
    "idle_cpu_share": lambda s: s.idle_cpu_share,
    "wakeups_per_sec": lambda s: s.wakeups_per_sec,
    "unloaded_p50_us": lambda s: s.unloaded_p50_us,
    "loaded_p50_us": lambda s: s.loaded_p50_us,
    "p50_ratio": lambda s: s.p50_ratio,
    "unloaded_p99_us": lambda s: s.unloaded_p99_us,
    "loaded_p99_us": lambda s: s.loaded_p99_us,
    "p99_ratio": lambda s: s.p99_ratio,
    "close_seconds": lambda s: s.close_seconds,
}


def summarise(samples: Sequence[Sample]) -> dict[str, Any]:
    """JSON-ready medians of every field, the runs, and the spread of memory per connection."""
    out: dict[str, Any] = {name: _median([get(s) for s in samples])
                           for name, get in FIELDS.items()}
    out["kib_per_conn"] = out["bytes_per_conn"] / 1024
    out["connections"] = samples[0].connections
    out["nofile_soft"] = samples[0].nofile_soft
    out["spread"] = _spread([s.bytes_per_conn for s in samples])
    out["runs"] = [asdict(s) for s in samples]
    return out


MIB = 1024 * 1024

#: Columns of the two tables: header, summary key, format.
MEMORY_COLUMNS: tuple[tuple[str, str, Callable[[float], str]], ...] = (
    ("conns", "connections", lambda v: f"{v:,.0f}"),
    ("RSS before MiB", "rss_before", lambda v: f"{v / MIB:.1f}"),
    ("RSS held MiB", "rss_held", lambda v: f"{v / MIB:.1f}"),
    ("bytes/conn", "bytes_per_conn", lambda v: f"{v:,.0f}"),
    ("KiB/conn", "kib_per_conn", lambda v: f"{v:.2f}"),
    ("spread", "spread", lambda v: f"{v:.1%}"),
    ("accept s", "accept_seconds", lambda v: f"{v:.2f}"),
    ("conns/s", "accepts_per_sec", lambda v: f"{v:,.0f}"),
    ("idle CPU", "idle_cpu_share", lambda v: f"{v:.2%}"),
    ("wakeups/s", "wakeups_per_sec", lambda v: f"{v:.1f}"),
    ("RSS after close MiB", "rss_released", lambda v: f"{v / MIB:.1f}"),
)
LATENCY_COLUMNS: tuple[tuple[str, str, Callable[[float], str]], ...] = (
    ("p50 µs unloaded", "unloaded_p50_us", lambda v: f"{v:.0f}"),
    ("p50 µs loaded", "loaded_p50_us", lambda v: f"{v:.0f}"),
    ("p50 ratio", "p50_ratio", lambda v: f"{v:.2f}x"),
    ("p99 µs unloaded", "unloaded_p99_us", lambda v: f"{v:.0f}"),
    ("p99 µs loaded", "loaded_p99_us", lambda v: f"{v:.0f}"),
    ("p99 ratio", "p99_ratio", lambda v: f"{v:.2f}x"),
)


def render(summary: dict[str, dict[str, Any]],
           columns: Sequence[tuple[str, str, Callable[[float], str]]]) -> str:
    """One row per engine."""
    rows = [["engine", *(c[0] for c in columns)]]
    rows += [[engine, *(fmt(s[key]) for _, key, fmt in columns)]
             for engine, s in summary.items()]
    return render_table(rows)


def check_targets(summary: dict[str, dict[str, Any]], w: Workload,
                  errors: dict[str, str]) -> list[dict[str, Any]]:
    """Per engine: all N held, a normal client served promptly, idle CPU ~0."""
    verdicts = []
    for engine, why in errors.items():
        verdicts.append({"engine": engine, "held": False, "prompt": None, "idle": None,
                         "met": False, "note": why})
    for engine, s in summary.items():
        held = s["connections"] == w.connections
        prompt = s["p50_ratio"] <= LATENCY_LIMIT
        idle = s["idle_cpu_share"] <= IDLE_CPU_LIMIT
        verdicts.append({"engine": engine, "held": held, "prompt": prompt, "idle": idle,
                         "met": held and prompt and idle})
    return verdicts


def _target_lines(verdicts: list[dict[str, Any]], w: Workload) -> list[str]:
    lines = [f"targets: {w.connections:,} idle connections held, a normal client's p50 "
             f"at most {LATENCY_LIMIT:g}x unloaded, idle CPU at most {IDLE_CPU_LIMIT:.0%}:"]
    for v in verdicts:
        if "note" in v:
            lines.append(f"  {v['engine']:16} NOT MET ({v['note']})")
            continue
        misses = [name for name in ("held", "prompt", "idle") if not v[name]]
        lines.append(f"  {v['engine']:16} " + ("MET" if not misses else
                                                 "NOT MET: " + ", ".join(misses)))
    met = sum(1 for v in verdicts if v["met"])
    return [*lines, f"targets: {met} of {len(verdicts)} engines MET"]


def _case(name: str, description: str, unit: str, key: str,
          summary: dict[str, dict[str, Any]], errors: dict[str, str]) -> dict[str, Any]:
    """A harness-style case record of one figure; ``ratio`` is twisted-epoll's figure
    over torsion-select's for lower-is-better figures (higher ratio: torsion better)."""
    engines: dict[str, Any] = {e: {"median": s[key], "spread": s["spread"], "unit": unit}
                               for e, s in summary.items()}
    engines.update({e: {"error": why} for e, why in errors.items()})
    ratio = None
    ours, theirs = summary.get("torsion-select"), summary.get("twisted-epoll")
    if ours is not None and theirs is not None and ours[key] > 0:
        ratio = theirs[key] / ours[key]
    return {"name": name, "description": description, "per_op": 1, "unit": unit,
            "engines": engines, "ratio": ratio}


def run(options: Options) -> dict[str, Any]:
    """Measure every available engine; print the tables and the targets.

    Returns:
        The suite's JSON-ready report: engines, workload, per-engine summaries, one
        case record per figure, and the target verdicts.
    """
    if not sys.platform.startswith("linux"):
        print("scale: skipped: needs Linux (/proc for RSS, descriptors and CPU)")
        return {"engines": {}, "cases": [], "skipped": "not Linux", "targets": []}
    if options.torsion_module:
        print("scale: note: --torsion-module applies to the deferred suite only")
    soft, hard = raise_nofile_limit()
    wanted = workload_for(options)
    w = fitted(wanted, soft)
    if w.connections != wanted.connections:
        print(f"scale: note: RLIMIT_NOFILE hard limit {hard} holds only {w.connections:,} "
              f"of {wanted.connections:,} connections (raise it: ulimit -Hn, limits.conf)")
    engines, skipped = select_engines("scale", DEFAULT_ENGINES, list(SERVER_ENGINES), options,
                                      ENGINES_ENV, REQUIRES)
    pins = Pins.choose()
    affinity = os.sched_getaffinity(0)
    if pins.client is not None:
        os.sched_setaffinity(0, {pins.client})  # the normal client runs in this process
    print(f"scale: {pins.describe('idle-connection holder and the normal client')}")
    samples: dict[str, list[Sample]] = {e: [] for e in engines}
    errors: dict[str, str] = {}
    try:
        for rep in range(1, w.reps + 1):
            for engine in engines if rep % 2 else engines[::-1]:
                if engine in skipped or engine in errors:
                    continue
                tag = f"[scale {rep}/{w.reps}] {engine}"
                progress(f"{tag}: {w.connections:,} connections ...")
                try:
                    s = measure(engine, w, pins)
                except EngineUnavailable as exc:
                    skipped[engine] = str(exc) or "not importable"
                    progress(f"{tag}: skipped: {skipped[engine]}")
                    continue
                except (BenchError, OSError, subprocess.TimeoutExpired) as exc:
                    errors[engine] = f"{type(exc).__name__}: {exc}"
                    progress(f"{tag}: FAILED: {errors[engine]}")
                    continue
                samples[engine].append(s)
                progress(f"{tag}: {s.bytes_per_conn:,.0f} B/conn, accept "
                         f"{s.accept_seconds:.2f} s, idle CPU {s.idle_cpu_share:.2%}, "
                         f"p50 {s.unloaded_p50_us:.0f} -> {s.loaded_p50_us:.0f} µs")
    finally:
        os.sched_setaffinity(0, affinity)

    ran = [e for e in engines if samples[e] and e not in errors]
    summary = {e: summarise(samples[e]) for e in ran}
    verdicts = check_targets(summary, w, errors)
    print(f"\nscale: {w.connections:,} idle connections per server (each served one echo), "
          f"medians of {w.reps} run(s), engines interleaved")
    print("  bytes/conn = (RSS held - RSS before) / connections (user-space memory; kernel "
          "socket memory is not in RSS);\n  accept s = first connect to last echo, "
          f"{w.window} connects in flight; idle CPU = server CPU / wall over "
          f"{w.idle_seconds:g} s idle;\n  wakeups/s = server context switches while idle; "
          "spread = (max-min)/median of bytes/conn\n")
    if ran:
        print(render(summary, MEMORY_COLUMNS))
        print(f"\nscale: a normal client's {w.echoes} echoes of {w.size} bytes, with no idle "
              f"connections (unloaded) and with {w.connections:,} held (loaded); ratio = "
              "median of per-run loaded/unloaded\n")
        print(render(summary, LATENCY_COLUMNS))
    for engine, why in skipped.items():
        print(f"skipped {engine}: {why}")
    for engine, why in errors.items():
        print(f"error {engine}: {why}")
    print()
    for line in _target_lines(verdicts, w):
        print(line)

    described = (f"{w.connections:,} idle connections on one server")
    return {
        "engines": {e: engine_info(e, "benchmarks.echo_servers") for e in ran},
        "workload": asdict(w),
        "nofile": {"soft": soft, "hard": hard},
        "skipped": skipped,
        "errors": errors,
        "summary": summary,
        "cases": [
            _case("memory", f"{described}: RSS delta per connection", "bytes/connection",
                  "bytes_per_conn", summary, errors),
            _case("accept", f"{described}: seconds to accept and echo once on all",
                  "seconds", "accept_seconds", summary, errors),
            _case("idle-cpu", f"{described}: server CPU share while they sit idle",
                  "CPU share", "idle_cpu_share", summary, errors),
            _case("latency-p50", f"{described}: a normal client's p50, loaded/unloaded",
                  "ratio", "p50_ratio", summary, errors),
            _case("latency-p99", f"{described}: a normal client's p99, loaded/unloaded",
                  "ratio", "p99_ratio", summary, errors),
        ],
        "targets": verdicts,
    }
