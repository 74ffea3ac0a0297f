"""HTTP servers under wrk: server CPU time per request, torsion vs twisted.web, aiohttp, nginx.

Every engine is a separate server process (``benchmarks/http_servers.py``) on 127.0.0.1,
loaded by wrk (``wrk -t1 -c50 -d<N>s --latency``: one thread, 50 keep-alive connections,
each sending its next request when the previous response is complete). Two cases:

- ``hello``: ``GET /`` answered with the 11 bytes ``hello world``;
- ``file``: ``GET /file``, a 1 MiB static file (torsion: ``protocols.http.static.File``,
  measured only once that module can be imported; a line says so otherwise).

The primary figure is the server's CPU time (user + system, from ``/proc/PID/stat``) per
request: read just before wrk starts and just after it exits, divided by the requests
wrk completed. wrk's 50 connects and closes fall inside that window; beside thousands of
requests they are noise. On a 2-core machine wrk occupies one core, so req/s partly
measures wrk and the machine; CPU per request measures the server alone. req/s and wrk's
latency percentiles (p50, p99 from ``--latency``) stand beside it, and so do errors: wrk's
socket errors (connect, read, write, timeout) and non-2xx/3xx responses. A run with any
error is flagged in the table (``!``) and listed under it with the server's last words.

Before timing, each fresh server is checked with ``http.client``: two requests of each
case on one connection must return status 200 and the exact body, so a broken engine
fails instead of being timed as fast.

With two or more usable CPUs the server is pinned to one and wrk to another (see the
echo suite for why). Each repetition starts a fresh server per engine, warms each case up
with a 1-second wrk run, then measures it. Engines run interleaved, in forward order on
odd repetitions and reversed on even ones. Ratios are paired: each repetition's CPU per
request over the reference engine's in the same repetition, then the median of those.

``--engines select,twisted`` (short names, see ``benchmarks/README.md``) or the older
``TORSION_HTTP_ENGINES=torsion-select,twisted-web`` (full names, any of
``benchmarks.http_servers.ALL_ENGINES``) limits a run to some engines. wrk, and nginx
when it is among the engines, are installed with ``apt-get install -y`` when missing and
running as root; otherwise a line gives the command. The repetition loop, the ratios, the
tables and the noise line are :mod:`benchmarks._measure`'s, the same in every server
suite. Nothing here fails on a timing: the targets line is information.
"""

from __future__ import annotations

import http.client
import random
import re
import resource
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks._harness import Options, engine_info, select_engines
from benchmarks._measure import BEST_TORSION, CaseSpec, Run, Samples, Suite, Target, run_suite
from benchmarks._servers import (
    BenchError,
    Pins,
    Server,
    cpu_seconds,
    ensure_tool,
    machine_busy_seconds,
    pin,
)
from benchmarks.http_servers import ALL_ENGINES, HELLO, PATHS, nginx_binary
from benchmarks.http_servers import running_server as start_server

DESCRIPTION = (
    "HTTP servers under wrk (50 keep-alive connections): server CPU per request for a "
    "hello-world resource and a 1 MiB static file, torsion vs twisted.web, aiohttp, "
    "uvloop+httptools, nginx"
)

ENGINES_ENV = "TORSION_HTTP_ENGINES"
FILE_SIZE = 1024 * 1024
MIB = 1024 * 1024
CASES = ("hello", "file")

#: Run by default, in this order; the other engines of http_servers on request.
DEFAULT_ENGINES = (
    "torsion-select",
    "torsion-asyncio",
    "torsion-uvloop",
    "twisted-web",
    "aiohttp-asyncio",
    "aiohttp-uvloop",
    "uvloop-httptools",
    "nginx",
)
#: Modules each engine's server imports besides torsion's and the standard library.
REQUIRES = {
    "twisted-web": ("twisted",),
    "twisted-web-logged": ("twisted",),
    "aiohttp-asyncio": ("aiohttp",),
    "aiohttp-uvloop": ("aiohttp",),
}
#: Engines every other is compared with, as paired-ratio columns.
REFERENCES = ("uvloop-httptools", "twisted-web", "nginx")
WRK_TIMEOUT_MARGIN = 30.0  # seconds past -d before a hung wrk is killed

TARGETS = (
    Target("hello", "torsion-uvloop", "uvloop-httptools", 1.5),
    Target("hello", "torsion-select", "twisted-web", 0.6),
    Target("file", BEST_TORSION, "nginx", 1.3),
)

SPECS = (
    CaseSpec("hello", "GET / answered with 'hello world' (11 bytes)", "request",
             "CPU µs/req", "req/s", cpu_key="cpu_us_per_req", rate_key="req_per_sec",
             title="GET / -> 11-byte 'hello world'"),
    CaseSpec("file", f"GET /file, a {FILE_SIZE // MIB} MiB static file", "request",
             "CPU µs/req", "req/s", cpu_key="cpu_us_per_req", rate_key="req_per_sec",
             title=f"GET /file -> {FILE_SIZE // MIB} MiB static file"),
)


@dataclass(frozen=True)
class Workload:
    """wrk's settings and how many repetitions."""

    reps: int
    seconds: int  # wrk -d of a measured run (wrk takes whole seconds)
    warmup_seconds: int = 1
    connections: int = 50
    threads: int = 1


def workload_for(options: Options) -> Workload:
    """5 x 5 s measured per case and engine, or 1 x 1 s under ``--quick`` (a smoke run)."""
    # /proc CPU times come in 10 ms ticks: a 1 s run of a busy server is ~100 ticks (±1%).
    if options.quick:
        return Workload(reps=1, seconds=1)
    return Workload(reps=options.repeat, seconds=5)


# --- wrk ----------------------------------------------------------------------------

_UNITS = {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 60e6, "h": 3600e6}


def _microseconds(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if match is None:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(match[1]) * _UNITS[match[2]]


def parse_wrk(output: str) -> dict[str, Any]:
    """Requests, seconds, p50/p99 latency (µs) and error counts from ``wrk --latency``.

    Example:
        >>> parse_wrk('''  Latency Distribution
        ...      50%  627.00us
        ...      99%    1.56ms
        ...   62349 requests in 1.00s, 9.45MB read
        ...   Socket errors: connect 0, read 3, write 0, timeout 0
        ...   Non-2xx or 3xx responses: 5''')["errors"]
        {'read': 3, 'non-2xx/3xx': 5}
    """
    total = re.search(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h),", output, re.M)
    if total is None:
        raise BenchError(f"wrk printed no request total: {output.strip()[-300:]!r}")
    percentiles = dict(re.findall(r"^\s*(50|99)%\s+(\S+)$", output, re.M))
    if int(total[1]) == 0:  # wrk prints no distribution then; the caller says why
        percentiles = {"50": "0us", "99": "0us"}
    if set(percentiles) != {"50", "99"}:
        raise BenchError("wrk printed no latency distribution (--latency)")
    errors: dict[str, int] = {}
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    if socket_errors is not None:
        for name, count in zip(("connect", "read", "write", "timeout"), socket_errors.groups(),
                               strict=True):
            if int(count):
                errors[name] = int(count)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if non_2xx is not None and int(non_2xx[1]):
        errors["non-2xx/3xx"] = int(non_2xx[1])
    return {
        "requests": int(total[1]),
        "seconds": _microseconds(total[2] + total[3]) / 1e6,
        "p50_us": _microseconds(percentiles["50"]),
        "p99_us": _microseconds(percentiles["99"]),
        "errors": errors,
    }


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_wrk(wrk: str, server: Server, case: str, w: Workload, seconds: int, cpu: int | None
            ) -> Run:
    """One wrk run of ``case`` against ``server``; its CPU is read around the run."""
    url = f"http://127.0.0.1:{server.port}{PATHS[case]}"
    command = [wrk, f"-t{w.threads}", f"-c{w.connections}", f"-d{seconds}s", "--latency", url]
    # wrk's CPU comes from the reaped-children total: nothing else is reaped meanwhile.
    children_before = _children_cpu()
    before, machine_before = cpu_seconds(server.pid), machine_busy_seconds()
    proc = subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        pin(proc.pid, cpu)  # wrk starts its thread after parsing: it inherits the CPU
        output, _ = proc.communicate(timeout=seconds + WRK_TIMEOUT_MARGIN)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise BenchError(f"wrk did not finish within {seconds + WRK_TIMEOUT_MARGIN:g} s") from None
    if not server.alive():
        raise BenchError(f"the server died during {case}; {server.last_words()}")
    after, machine_after = cpu_seconds(server.pid), machine_busy_seconds()
    wrk_cpu = _children_cpu() - children_before
    text = output.decode(errors="replace")
    if proc.returncode != 0:
        raise BenchError(f"wrk exited with status {proc.returncode}: {text.strip()[-300:]}")
    parsed = parse_wrk(text)
    if parsed["requests"] == 0:
        raise BenchError(f"wrk completed no request of {case}: {text.strip()[-300:]}")
    server_cpu = after - before
    other = machine_after - machine_before - server_cpu - wrk_cpu
    return Run(server_cpu, parsed["requests"], parsed["seconds"], wrk_cpu, max(0.0, other),
               parsed["p50_us"], parsed["p99_us"], parsed["errors"],
               server.last_words() if parsed["errors"] else "")


# --- checking and measuring -----------------------------------------------------------


def check_responses(server: Server, expected: dict[str, bytes]) -> None:
    """Two requests of each served case on one keep-alive connection: 200, exact body."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        for case in (c for c in CASES if c in server.words):
            for _ in range(2):
                connection.request("GET", PATHS[case])
                response = connection.getresponse()
                body = response.read()
                if response.status != 200 or body != expected[case]:
                    raise BenchError(
                        f"GET {PATHS[case]} answered {response.status} with "
                        f"{len(body)} bytes {body[:40]!r}, not 200 with the "
                        f"{len(expected[case])}-byte {case} body"
                    )
    except (OSError, http.client.HTTPException) as exc:
        raise BenchError(
            f"checking the responses failed: {type(exc).__name__}: {exc}; {server.last_words()}"
        ) from None
    finally:
        connection.close()


def measurer(wrk: str, path: Path, expected: dict[str, bytes], w: Workload, pins: Pins,
             not_served: dict[str, set[str]]
             ) -> Callable[[str, Callable[[str], None]], dict[str, Run]]:
    """``measure(engine, step)`` for :func:`benchmarks._measure.run_suite`."""

    def measure(engine: str, step: Callable[[str], None]) -> dict[str, Run]:
        """Start ``engine``'s server, check it, warm each case up and measure it once."""
        runs: dict[str, Run] = {}
        with start_server(engine, path, pins.server) as server:
            check_responses(server, expected)
            missing = set(CASES) - set(server.words)
            if missing:
                not_served[engine] = missing
            for case in (c for c in CASES if c in server.words):
                step(case)
                run_wrk(wrk, server, case, w, w.warmup_seconds, pins.client)
                runs[case] = run_wrk(wrk, server, case, w, w.seconds, pins.client)
        return runs

    return measure


@contextmanager
def static_file() -> Iterator[tuple[Path, bytes]]:
    """A 1 MiB file of fixed pseudo-random bytes in a directory every server can read."""
    with tempfile.TemporaryDirectory(prefix="torsion-http-file-") as tmpdir:
        directory = Path(tmpdir)
        directory.chmod(0o755)  # nginx may read it as another user
        data = random.Random(1).randbytes(FILE_SIZE)  # incompressible, same every run
        path = directory / "file.bin"
        path.write_bytes(data)
        path.chmod(0o644)
        yield path, data


def _engine_info(engine: str) -> dict[str, str]:
    if engine == "nginx":
        binary = nginx_binary()
        version = "not installed"
        if binary:
            done = subprocess.run([binary, "-v"], capture_output=True, text=True, check=False)
            version = done.stderr.strip().rpartition("/")[2] or "unknown"
        return {"module": "nginx", "server": engine, "version": version}
    return engine_info(engine, "benchmarks.http_servers", {"uvloop": "httptools"})


def run(options: Options) -> dict[str, Any]:
    """Measure every available engine on both cases; print the tables and the targets.

    Returns:
        The suite's JSON-ready report: engines, workload, one record per case, skips,
        errors, runs with wrk-reported errors, the machine's load and the target verdicts.
    """
    if not sys.platform.startswith("linux"):
        print("http: skipped: needs Linux (/proc CPU times)")
        return {"engines": {}, "cases": [], "skipped": "not Linux"}
    wrk, why = ensure_tool("wrk")
    if wrk is None:
        print(f"http: skipped: wrk not found ({why})")
        return {"engines": {}, "cases": [], "skipped": f"wrk not found: {why}"}
    if options.torsion_module:
        print("http: note: --torsion-module applies to the deferred suite only")
    engines, skipped = select_engines("http", DEFAULT_ENGINES, ALL_ENGINES, options,
                                      ENGINES_ENV, REQUIRES)
    if "nginx" in engines:
        nginx, why = ensure_tool("nginx")
        if nginx is None:
            skipped["nginx"] = why
            engines.remove("nginx")
    w = workload_for(options)
    pins = Pins.choose()
    print(f"http: {pins.describe('wrk')}")
    not_served: dict[str, set[str]] = {}

    def epilogue(samples: Samples) -> list[str]:
        return [f"{engine}: {case}: not available (protocols.http.static not importable; "
                "see the server's note)" for engine, cases in not_served.items()
                for case in sorted(cases)]

    with static_file() as (path, data):
        expected = {"hello": HELLO, "file": data}
        suite = Suite(
            "http", SPECS, measurer(wrk, path, expected, w, pins, not_served), REFERENCES,
            TARGETS, client="wrk",
            columns={"file": [("MiB/s", lambda e, s: f"{s['rate'] * FILE_SIZE / MIB:,.0f}")]},
            engine_info=_engine_info,
            legacy_ratio=("twisted-web", "torsion-select"),
            epilogue=epilogue,
        )
        heading = (f"wrk -t{w.threads} -c{w.connections} -d{w.seconds}s --latency, keep-alive; "
                   f"medians of {w.reps} run{'s' if w.reps > 1 else ''} per engine, engines "
                   f"interleaved, {w.warmup_seconds} s warm-up before each")
        report = run_suite(suite, engines, w.reps, heading, skipped)
    report.update(workload=asdict(w), file_size=FILE_SIZE,
                  not_served={e: sorted(c) for e, c in not_served.items()})
    return report
