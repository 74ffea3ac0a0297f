"""FTP transfers over loopback: MiB/s and server CPU per GiB, torsion vs pyftpdlib.

Three cases, the workloads of pyftpdlib's ``ftpbench`` (``transfer`` and
``concurrence``) with fixed sizes instead of fixed durations:

- ``retr``: one session downloads a generated 1 GiB file (``RETR``), binary, passive;
- ``stor``: one session uploads 1 GiB (``STOR``) of dummy bytes;
- ``multi``: 50 sessions, logged in beforehand, each download the same 10 MiB file at
  once (the transfers are asked for one after another, then all are read together).

``--quick`` makes it a smoke run of a few seconds: 64 MiB files, 10 sessions x 2 MiB, one
repetition.

Every engine is a separate server process (``benchmarks/ftp_servers.py``) on 127.0.0.1,
serving a temporary directory that holds the generated files (removed afterwards):
torsion's ``FTPFactory`` on the select, asyncio and uvloop reactors, and pyftpdlib's stock
``FTPServer`` (skipped with a line when it is not installed). The load comes from another
process (``ftp_servers.py load``): ftplib for the control connection, raw sockets with a
1 MiB buffer for the data (ftpbench moves 8 KiB per call, which makes the client the
bottleneck on loopback). The client's CPU is measured too; "client busy" near 100% would
mean the client, not the server, set the pace.

The primary figure is the server's CPU time (user + system of all its threads, from
``/proc/PID/stat``) per GiB moved, read when the client is told to start (its sessions
already logged in) and again when the last ``226`` has arrived. MiB/s (wall clock, from
the first transfer command to the last ``226``) stands beside it. Kernel work that /proc
charges to no process (loopback softirqs, page-cache writeback) is in neither figure; the
"other max" column shows how much CPU everything else on the machine used meanwhile.

Before timing, each fresh server is checked: the small file is downloaded through ftplib
and its SHA-256 compared, and every timed transfer must move exactly the expected bytes
(an upload's file must have the right size on disk). With two or more usable CPUs the
server is pinned to one and the client to another. Each repetition starts a fresh server
per engine; engines run interleaved, forward on odd repetitions and reversed on even
ones. Ratios are paired: each repetition's figure over pyftpdlib's in the same
repetition, then the median of those.

``TORSION_FTP_ENGINES=torsion-uvloop,pyftpdlib`` limits a run. Nothing here fails on a
timing: the targets (issue 8: every torsion backend at least pyftpdlib's MiB/s and at
most its CPU per GiB, on every case) are information.
"""

from __future__ import annotations

import hashlib
import os
import statistics
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks._harness import Options, engine_info, select_engines
from benchmarks._measure import BEST_TORSION, CaseSpec, Run, Suite, Target, run_suite
from benchmarks._servers import (
    BenchError,
    Pins,
    Server,
    cpu_seconds,
    machine_busy_seconds,
    progress,
    running_server,
)
from benchmarks.ftp_servers import ENGINES, LoadClient, load_client

DESCRIPTION = (
    "FTP RETR and STOR of a 1 GiB file and 50 sessions downloading 10 MiB at once: "
    "server CPU per GiB and MiB/s, torsion (select/asyncio/uvloop) vs pyftpdlib"
)

ENGINES_ENV = "TORSION_FTP_ENGINES"
DEFAULT_ENGINES = tuple(ENGINES)
REFERENCE = "pyftpdlib"
#: Modules each engine's server imports besides torsion's and the standard library.
REQUIRES: dict[str, Sequence[str]] = {"pyftpdlib": ("pyftpdlib",)}
SERVERS = "benchmarks.ftp_servers"
BIG, SMALL, UPLOAD = "big.bin", "small.bin", "upload.bin"
MIB, GIB = 1 << 20, 1 << 30
#: A transfer slower than this is a broken server, not a slow one (sets the timeouts).
MIN_RATE = MIB
CASES = ("retr", "stor", "multi")
#: Issue 8: at least pyftpdlib's MiB/s and at most its CPU per GiB, on every case.
TARGETS = tuple(
    Target(case, BEST_TORSION, REFERENCE, 1.0, figure=figure)
    for case in CASES for figure in ("rate", "cpu"))


@dataclass(frozen=True)
class Workload:
    """The sizes and how many repetitions."""

    reps: int
    big: int = GIB
    small: int = 10 * MIB
    sessions: int = 50


def workload_for(options: Options) -> Workload:
    """1 GiB and 50 x 10 MiB, or 64 MiB and 10 x 2 MiB once under ``--quick``."""
    if options.quick:
        return Workload(reps=1, big=64 * MIB, small=2 * MIB, sessions=10)
    return Workload(reps=options.repeat)


def _size(n: int) -> str:
    return f"{n // GIB} GiB" if n >= GIB and n % GIB == 0 else f"{n // MIB} MiB"


def case_specs(w: Workload) -> tuple[CaseSpec, ...]:
    """The three cases. A run's ``ops`` are bytes: rates come out in MiB/s
    (``ops_per_unit`` is a MiB) and CPU in seconds per GiB (``cpu_scale`` 1024)."""
    common: dict[str, Any] = {"unit": "GiB", "cpu_label": "CPU s/GiB", "rate_label": "MiB/s",
                              "cpu_scale": 1024.0, "ops_per_unit": float(MIB),
                              "cpu_key": "cpu_s_per_gib", "rate_key": "mib_per_sec"}
    return (
        CaseSpec("retr", f"RETR of a {_size(w.big)} file, one session", **common,
                 title=f"RETR of a generated {_size(w.big)} file, one session, passive"),
        CaseSpec("stor", f"STOR of {_size(w.big)}, one session", **common,
                 title=f"STOR of {_size(w.big)} of dummy bytes, one session, passive"),
        CaseSpec("multi", f"{w.sessions} sessions each RETR {_size(w.small)} at once",
                 **common, title=f"{w.sessions} logged-in sessions each RETR the same "
                 f"{_size(w.small)} file at once (p50/p99: time for a session to finish)"),
    )


# --- the files ----------------------------------------------------------------------


def generate(path: Path, size: int, digest: bool = False) -> str:
    """Write ``size`` bytes that differ from MiB to MiB; return their SHA-256 if asked."""
    block = bytearray(os.urandom(MIB))
    sha = hashlib.sha256()
    with open(path, "wb") as f:
        for index in range(0, size, MIB):
            block[:8] = index.to_bytes(8, "big")  # no two MiB alike
            chunk = block[: min(MIB, size - index)]
            f.write(chunk)
            if digest:
                sha.update(chunk)
    return sha.hexdigest() if digest else ""


# --- measuring ----------------------------------------------------------------------


@dataclass(frozen=True)
class CPUReading:
    """A process's CPU time, read two ways: per thread in ns, and in clock ticks."""

    thread_ns: dict[int, int]
    ticks_seconds: float


def read_cpu(pid: int) -> CPUReading:
    """The CPU time of each live thread of ``pid`` (``schedstat``), and ``/proc/PID/stat``'s."""
    threads = {}
    for name in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{name}/schedstat", encoding="ascii") as f:
                threads[int(name)] = int(f.read().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            continue  # the thread ended meanwhile
    return CPUReading(threads, cpu_seconds(pid))


def cpu_between(before: CPUReading, after: CPUReading) -> float:
    """CPU seconds used between two readings.

    ``/proc/PID/stat`` counts in clock ticks (10 ms): too coarse for the short
    transfers of ``--quick``. The per-thread ``schedstat`` times are in nanoseconds but
    forget a thread that ended; when one did, the ticks are used instead.
    """
    if before.thread_ns and before.thread_ns.keys() <= after.thread_ns.keys():
        return sum(after.thread_ns[t] - ns for t, ns in before.thread_ns.items()) / 1e9 + sum(
            ns for t, ns in after.thread_ns.items() if t not in before.thread_ns) / 1e9
    return after.ticks_seconds - before.ticks_seconds


def measure_once(server: Server, client: LoadClient, request: str, nbytes: int) -> Run:
    """Prepare ``request`` in the client, then time it with both processes' CPU."""
    client.send(request)
    ready = client.read(120, "ready line")
    if ready != "ready":
        raise BenchError(f"load client said {ready!r} to {request!r}")
    before, machine_before = read_cpu(server.pid), machine_busy_seconds()
    client_before = read_cpu(client.pid)
    client.send("go")
    result = client.result(60 + nbytes / MIN_RATE, f"result of {request!r}")
    after, machine_after = read_cpu(server.pid), machine_busy_seconds()
    client_cpu = cpu_between(client_before, read_cpu(client.pid))
    if not server.alive():
        raise BenchError(f"the server died during {request!r}; {server.last_words()}")
    if result["bytes"] != nbytes:
        raise BenchError(f"{request!r} moved {result['bytes']} bytes, not {nbytes}")
    server_cpu = cpu_between(before, after)
    other = machine_after - machine_before - server_cpu - client_cpu
    return Run(server_cpu, nbytes, result["seconds"], client_cpu, max(0.0, other),
               result.get("p50_us"), result.get("p99_us"))


def measurer(w: Workload, root: Path, digest: str, pins: Pins
             ) -> Callable[[str, Callable[[str], None]], dict[str, Run]]:
    """``measure(engine, step)`` for :func:`benchmarks._measure.run_suite`."""

    def measure(engine: str, step: Callable[[str], None]) -> dict[str, Run]:
        """Start ``engine``'s server, check it, and time the three cases on it."""
        upload = root / UPLOAD
        with running_server(SERVERS, engine, [str(root)], pins.server) as server, \
                load_client(server.port, pins.client) as client:
            client.send(f"check {SMALL} {digest}")
            client.result(60, "check result")  # also warms the server up
            step("retr")
            runs = {"retr": measure_once(server, client, f"retr {BIG} {w.big}", w.big)}
            step("stor")
            try:
                runs["stor"] = measure_once(server, client, f"stor {UPLOAD} {w.big}", w.big)
                stored = upload.stat().st_size
                if stored != w.big:
                    raise BenchError(f"STOR left a file of {stored} bytes, not {w.big}")
            finally:
                # At once: its pages are dropped before writeback has them hit the disk.
                upload.unlink(missing_ok=True)
            step("multi")
            runs["multi"] = measure_once(
                server, client, f"multi {SMALL} {w.small} {w.sessions}", w.small * w.sessions)
            client.send("quit")
            return runs

    return measure


def _client_per_gib(engine: str, summary: dict[str, Any]) -> str:
    # The load client's CPU per GiB: that it stays well below the server's shows the
    # client was not what limited the rate.
    return f"{statistics.median(r['client_cpu'] / (r['ops'] / GIB) for r in summary['runs']):.3f}"


def run(options: Options) -> dict[str, Any]:
    """Measure every available engine; print the tables and the targets.

    Returns:
        The suite's JSON-ready report (:func:`benchmarks._measure.run_suite`'s) with the
        workload.
    """
    if not sys.platform.startswith("linux"):
        print("ftp: skipped: needs Linux (/proc CPU times)")
        return {"engines": {}, "cases": [], "skipped": "not Linux"}
    if options.torsion_module:
        print("ftp: note: --torsion-module applies to the deferred suite only")
    engines, skipped = select_engines("ftp", DEFAULT_ENGINES, list(ENGINES), options,
                                      ENGINES_ENV, REQUIRES)
    w = workload_for(options)
    pins = Pins.choose()
    print(f"ftp: {pins.describe('load client')}")
    print("ftp: load client: ftplib control connections, raw data sockets with 1 MiB "
          "buffers (ftpbench's workload)", flush=True)
    with tempfile.TemporaryDirectory(prefix="torsion-ftp-bench-") as tmp:
        root = Path(tmp)
        progress(f"ftp: generating {_size(w.big)} and {_size(w.small)} files in {root}")
        generate(root / BIG, w.big)
        digest = generate(root / SMALL, w.small, digest=True)
        suite = Suite("ftp", case_specs(w), measurer(w, root, digest, pins), (REFERENCE,),
                      TARGETS, client="client", rate_ratios=True,
                      columns={case: (("client s/GiB", _client_per_gib),) for case in CASES},
                      engine_info=lambda e: engine_info(e, SERVERS),
                      legacy_ratio=(REFERENCE, "torsion-select"))
        heading = (f"ftp: retr and stor {_size(w.big)}, multi {w.sessions} x {_size(w.small)}; "
                   f"medians of {w.reps} run{'s' if w.reps > 1 else ''} per engine, engines "
                   "interleaved; on a shared machine these figures are noisy")
        report = run_suite(suite, engines, w.reps, heading, skipped)
    report["workload"] = asdict(w)
    return report
