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

``TORSION_HTTP_ENGINES=torsion-select,twisted-web`` limits a run to some engines (any of
``benchmarks.http_servers.ALL_ENGINES``). wrk, and nginx when it is among the engines,
are installed with apt-get when missing and running as root. Nothing here fails on a
timing: the targets line is information.
"""

from __future__ import annotations

import http.client
import os
import random
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks._harness import Options, engines_from_env
from benchmarks.echo_servers import BenchError, EngineUnavailable, pin
from benchmarks.echo_suite import cpu_pair, server_cpu_seconds
from benchmarks.http_servers import ALL_ENGINES, HELLO, PATHS, Server, nginx_binary
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
TORSION_ENGINES = ("torsion-select", "torsion-asyncio", "torsion-uvloop")
#: Engines every other is compared with, as paired-ratio columns.
REFERENCES = ("uvloop-httptools", "twisted-web", "nginx")
#: In a target, the torsion engine with the lowest median CPU per request in that case.
BEST_TORSION = "torsion-best"
WRK_TIMEOUT_MARGIN = 30.0  # seconds past -d before a hung wrk is killed


@dataclass(frozen=True)
class Target:
    """A goal from the issue: ``engine``'s server CPU per request <= ``limit`` x reference's."""

    case: str
    engine: str
    reference: str
    limit: float


TARGETS = (
    Target("hello", "torsion-uvloop", "uvloop-httptools", 1.5),
    Target("hello", "torsion-select", "twisted-web", 0.6),
    Target("file", BEST_TORSION, "nginx", 1.3),
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


@dataclass(frozen=True)
class Run:
    """One measured wrk run against one server."""

    server_cpu: float  # seconds
    requests: int
    seconds: float
    p50_us: float
    p99_us: float
    wrk_cpu: float
    other_cpu: float  # seconds of CPU that neither the server nor wrk used
    errors: dict[str, int] = field(default_factory=dict)  # only the non-zero counts

    @property
    def cpu_us_per_req(self) -> float:
        return self.server_cpu / self.requests * 1e6

    @property
    def req_per_sec(self) -> float:
        return self.requests / self.seconds


#: samples[case][engine][rep]
Samples = dict[str, dict[str, dict[int, Run]]]


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- tools --------------------------------------------------------------------------


def _apt_install(package: str) -> str:
    """apt-get install ``package`` (refreshing the lists once if that fails); '' or why not."""
    if os.geteuid() != 0:
        return f"not root, so not installing it: apt-get install {package}"
    if shutil.which("apt-get") is None:
        return "no apt-get here: install it with the system's package manager"
    _progress(f"[http] installing {package} with apt-get")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for attempt in range(2):
        if attempt:
            subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, check=False)
        done = subprocess.run(
            ["apt-get", "install", "-y", "-qq", package],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode == 0:
            return ""
    return f"apt-get install {package} failed: {done.stderr.strip()[-300:]}"


def ensure_wrk() -> tuple[str | None, str]:
    """The wrk binary (installed when missing and root), or None and why not."""
    found = shutil.which("wrk")
    if found:
        return found, ""
    why = _apt_install("wrk")
    return shutil.which("wrk"), why


def ensure_nginx() -> str:
    """Install nginx when missing and root; return '' or why it is not there."""
    if nginx_binary():
        return ""
    return _apt_install("nginx") or ("" if nginx_binary() else "nginx not found after install")


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


def machine_busy_seconds() -> float:
    """CPU seconds all CPUs spent busy since boot, less interrupt and softirq time.

    Only a noise gauge ("other max"): the server's and wrk's CPU are subtracted to show
    how much else ran. Loopback TCP is largely processed in softirq context, which /proc
    charges to no process, so counting it would make an idle machine look a third busy.
    """
    with open("/proc/stat", encoding="ascii") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal: keep user, nice, system, steal
    busy = fields[0] + fields[1] + fields[2] + fields[7]
    return busy / os.sysconf("SC_CLK_TCK")


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_wrk(
    wrk: str, server: Server, case: str, w: Workload, seconds: int, cpu: int | None
) -> Run:
    """One wrk run of ``case`` against ``server``; its CPU is read around the run."""
    url = f"http://127.0.0.1:{server.port}{PATHS[case]}"
    command = [wrk, f"-t{w.threads}", f"-c{w.connections}", f"-d{seconds}s", "--latency", url]
    # wrk's CPU comes from the reaped-children total: nothing else is reaped meanwhile.
    children_before = _children_cpu()
    before, machine_before = server_cpu_seconds(server.pid), machine_busy_seconds()
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
    after, machine_after = server_cpu_seconds(server.pid), machine_busy_seconds()
    wrk_cpu = _children_cpu() - children_before
    text = output.decode(errors="replace")
    if proc.returncode != 0:
        raise BenchError(f"wrk exited with status {proc.returncode}: {text.strip()[-300:]}")
    parsed = parse_wrk(text)
    if parsed["requests"] == 0:
        raise BenchError(f"wrk completed no request of {case}: {text.strip()[-300:]}")
    server_cpu = after - before
    other = machine_after - machine_before - server_cpu - wrk_cpu
    return Run(
        server_cpu,
        parsed["requests"],
        parsed["seconds"],
        parsed["p50_us"],
        parsed["p99_us"],
        wrk_cpu,
        max(0.0, other),
        parsed["errors"],
    )


# --- checking and measuring ---------------------------------------------------------


def check_responses(server: Server, expected: dict[str, bytes]) -> None:
    """Two requests of each served case on one keep-alive connection: 200, exact body."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        for case in (c for c in CASES if c in server.cases):
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


def measure(
    engine: str, wrk: str, path: Path, expected: dict[str, bytes], w: Workload
) -> tuple[dict[str, Run], Server]:
    """Start ``engine``'s server, check it, warm each case up and measure it once."""
    server_cpu_id, client_cpu_id = CPU_PAIR if CPU_PAIR is not None else (None, None)
    runs: dict[str, Run] = {}
    with start_server(engine, path, server_cpu_id) as server:
        check_responses(server, expected)
        for case in (c for c in CASES if c in server.cases):
            run_wrk(wrk, server, case, w, w.warmup_seconds, client_cpu_id)
            runs[case] = run_wrk(wrk, server, case, w, w.seconds, client_cpu_id)
    return runs, server


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


def selected_engines() -> list[str]:
    """The default engines, or those named in ``$TORSION_HTTP_ENGINES``."""
    return engines_from_env(ENGINES_ENV, DEFAULT_ENGINES, ALL_ENGINES)


# --- ratios and targets -------------------------------------------------------------


def paired_ratio(runs: dict[str, dict[int, Run]], engine: str, reference: str) -> float | None:
    """Median over repetitions of engine's CPU per request / reference's; None if unpaired."""
    mine, theirs = runs.get(engine, {}), runs.get(reference, {})
    ratios = [
        mine[rep].cpu_us_per_req / theirs[rep].cpu_us_per_req for rep in mine if rep in theirs
    ]
    return statistics.median(ratios) if ratios else None


def best_torsion(runs: dict[str, dict[int, Run]]) -> str | None:
    """The torsion engine with the lowest median CPU per request in these runs."""
    medians = {
        e: statistics.median(r.cpu_us_per_req for r in runs[e].values())
        for e in TORSION_ENGINES
        if runs.get(e)
    }
    return min(medians, key=medians.__getitem__) if medians else None


def check_targets(samples: Samples) -> list[dict[str, Any]]:
    """Each target's paired ratio and verdict (None: an engine or the case did not run)."""
    verdicts = []
    for t in TARGETS:
        runs = samples.get(t.case, {})
        engine = best_torsion(runs) if t.engine == BEST_TORSION else t.engine
        ratio = None if engine is None else paired_ratio(runs, engine, t.reference)
        verdicts.append(
            {
                **asdict(t),
                "engine_measured": engine,
                "ratio": ratio,
                "met": None if ratio is None else ratio <= t.limit,
            }
        )
    return verdicts


# --- reporting ----------------------------------------------------------------------


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def _x(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.2f}x"


def _spread(values: Sequence[float]) -> float:
    return (max(values) - min(values)) / statistics.median(values)


def summarize(
    runs: dict[str, dict[int, Run]], engines: Sequence[str], refs: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """JSON-ready medians, spreads, error totals and paired ratios of one case."""
    out = {}
    for engine in engines:
        if not runs.get(engine):
            continue
        rs = [runs[engine][rep] for rep in sorted(runs[engine])]
        cpu = [r.cpu_us_per_req for r in rs]
        errors: dict[str, int] = {}
        for r in rs:
            for name, count in r.errors.items():
                errors[name] = errors.get(name, 0) + count
        out[engine] = {
            "runs": [{**asdict(r), "cpu_us_per_req": r.cpu_us_per_req} for r in rs],
            "cpu_us_per_req": statistics.median(cpu),
            "req_per_sec": statistics.median(r.req_per_sec for r in rs),
            "p50_us": statistics.median(r.p50_us for r in rs),
            "p99_us": statistics.median(r.p99_us for r in rs),
            "server_busy": statistics.median(r.server_cpu / r.seconds for r in rs),
            "wrk_busy": statistics.median(r.wrk_cpu / r.seconds for r in rs),
            "other_busy": max(r.other_cpu / r.seconds for r in rs),
            "spread": _spread(cpu),
            "errors": errors,
            "runs_with_errors": sum(1 for r in rs if r.errors),
            "paired": {ref: paired_ratio(runs, engine, ref) for ref in refs},
        }
    return out


def render(case: str, summary: dict[str, dict[str, Any]], refs: Sequence[str]) -> str:
    """``engine | CPU µs/req | vs <ref>... | req/s | latency | busy | spread | errors``."""
    header = ["engine", "CPU µs/req", *(f"vs {r}" for r in refs), "req/s"]
    if case == "file":
        header.append("MiB/s")
    header += ["p50 ms", "p99 ms", "server busy", "wrk busy", "other max", "spread", "errors"]
    rows = [header]
    for engine, s in summary.items():
        flag = "!" if s["errors"] else ""
        cells = [engine + flag, f"{s['cpu_us_per_req']:.1f}"]
        cells += [_x(s["paired"][r]) for r in refs]
        cells.append(f"{s['req_per_sec']:,.0f}")
        if case == "file":
            cells.append(f"{s['req_per_sec'] * FILE_SIZE / MIB:,.0f}")
        cells += [
            f"{s['p50_us'] / 1e3:.2f}",
            f"{s['p99_us'] / 1e3:.2f}",
            f"{s['server_busy']:.0%}",
            f"{s['wrk_busy']:.0%}",
            f"{s['other_busy']:.0%}",
            f"{s['spread']:.1%}",
            str(sum(s["errors"].values())),
        ]
        rows.append(cells)
    return _table(rows)


def _target_lines(verdicts: list[dict[str, Any]]) -> list[str]:
    lines = ["targets (server CPU per request, paired ratios, medians over repetitions):"]
    misses, unchecked = [], []
    for v in verdicts:
        shown = v["engine"]
        if v["engine"] == BEST_TORSION and v["engine_measured"]:
            shown = f"{BEST_TORSION} ({v['engine_measured']})"
        name = f"{v['case']} {shown} / {v['reference']}"
        if v["met"] is None:
            why = "no torsion engine served it" if v["engine_measured"] is None else (
                "an engine did not run")
            state = f"NOT CHECKED ({why})"
            unchecked.append(f"{v['case']} {v['engine']} / {v['reference']}")
        else:
            state = "MET" if v["met"] else "NOT MET"
            if not v["met"]:
                misses.append(f"{name} {v['ratio']:.2f}x")
        lines.append(f"  {name:52} {_x(v['ratio']):>7}  <= {v['limit']:.2f}x  {state}")
    met = sum(1 for v in verdicts if v["met"])
    verdict = f"targets: {met} of {len(verdicts)} MET"
    if misses:
        verdict += f"; NOT MET: {', '.join(misses)}"
    if unchecked:
        verdict += f"; NOT CHECKED: {', '.join(unchecked)}"
    return [*lines, verdict]


def _engine_info(engine: str) -> dict[str, str]:
    if engine == "nginx":
        binary = nginx_binary()
        version = "not installed"
        if binary:
            done = subprocess.run([binary, "-v"], capture_output=True, text=True, check=False)
            version = done.stderr.strip().rpartition("/")[2] or "unknown"
        return {"module": "nginx", "server": engine, "version": version}
    framework = engine.partition("-")[0]
    dist = {"uvloop": "httptools"}.get(framework, framework)
    try:
        version = metadata.version(dist)
    except metadata.PackageNotFoundError:
        version = "source tree"
    if engine.endswith("uvloop"):
        try:
            version += f" (uvloop {metadata.version('uvloop')})"
        except metadata.PackageNotFoundError:
            pass
    return {"module": "benchmarks.http_servers", "server": engine, "version": version}


#: CPUs the server and wrk are pinned to, or None (fewer than 2 usable CPUs).
CPU_PAIR: tuple[int, int] | None = None


def run(options: Options) -> dict[str, Any]:
    """Measure every available engine on both cases; print the tables and the targets.

    Returns:
        The suite's JSON-ready report: engines, workload, one record per case, skips,
        errors, runs with wrk-reported errors, the machine's load and the target verdicts.
    """
    if not sys.platform.startswith("linux"):
        print("http: skipped: needs Linux (/proc CPU times)")
        return {"engines": {}, "cases": [], "skipped": "not Linux"}
    wrk, why = ensure_wrk()
    if wrk is None:
        print(f"http: skipped: wrk not found ({why})")
        return {"engines": {}, "cases": [], "skipped": f"wrk not found: {why}"}
    if options.torsion_module:
        print("http: note: --torsion-module applies to the deferred suite only")
    engines = selected_engines()
    skipped: dict[str, str] = {}
    if "nginx" in engines:
        why = ensure_nginx()
        if why:
            skipped["nginx"] = why
    w = workload_for(options)
    global CPU_PAIR
    CPU_PAIR = cpu_pair()
    load_before = os.getloadavg()
    if CPU_PAIR is None:
        print("http: note: 1 usable CPU: wrk and the server share it; CPU/req is still the "
              "server's own")
    else:
        print(f"http: server pinned to CPU {CPU_PAIR[0]}, wrk to CPU {CPU_PAIR[1]}")
    print(f"http: load average before the run {load_before[0]:.2f} {load_before[1]:.2f} "
          f"{load_before[2]:.2f} (1/5/15 min)")

    samples: Samples = {case: {e: {} for e in engines} for case in CASES}
    errors: dict[str, str] = {}
    not_served: dict[str, set[str]] = {}  # engine -> cases its server did not offer
    flagged: list[str] = []  # runs during which wrk saw errors
    with static_file() as (path, data):
        expected = {"hello": HELLO, "file": data}
        for rep in range(1, w.reps + 1):
            order = engines if rep % 2 else engines[::-1]
            for engine in order:
                if engine in skipped or engine in errors:
                    continue
                tag = f"[http {rep}/{w.reps}] {engine}"
                try:
                    measured, server = measure(engine, wrk, path, expected, w)
                except EngineUnavailable as exc:
                    skipped[engine] = str(exc) or "not importable"
                    _progress(f"{tag}: skipped: {skipped[engine]}")
                    continue
                except BenchError as exc:
                    errors[engine] = str(exc)
                    _progress(f"{tag}: FAILED: {exc}")
                    continue
                missing = set(CASES) - set(server.cases)
                if missing:
                    not_served[engine] = missing
                shown = []
                for case, r in measured.items():
                    samples[case][engine][rep] = r
                    shown.append(
                        f"{case} {r.cpu_us_per_req:.1f} µs/req {r.req_per_sec:,.0f} req/s"
                    )
                    if r.errors:
                        counts = ", ".join(f"{n} {k}" for k, n in r.errors.items())
                        flagged.append(
                            f"{engine} {case} rep {rep} (GET {PATHS[case]}): wrk saw {counts}"
                            f" in {r.requests:,} requests; {server.last_words()}"
                        )
                _progress(f"{tag}: " + "; ".join(shown))
    load_after = os.getloadavg()

    # An engine that failed in any repetition shows its error, not a partial median.
    for case in CASES:
        for engine in list(samples[case]):
            if not samples[case][engine] or engine in errors:
                samples[case].pop(engine)
    verdicts = check_targets(samples)
    records = []
    print(
        f"\nwrk -t{w.threads} -c{w.connections} -d{w.seconds}s --latency, keep-alive; "
        f"medians of {w.reps} run{'s' if w.reps > 1 else ''} per engine, engines interleaved,"
        f" {w.warmup_seconds} s warm-up before each"
    )
    print(
        "  CPU = server user+sys per request; vs X = median of paired per-run ratios (lower "
        "is better);\n  busy = CPU/wall of the process; other max = the most CPU anything "
        "else on the machine used in one run (noise);\n  spread = (max-min)/median of CPU per "
        "request; errors = wrk socket errors + non-2xx/3xx, summed (! marks them)"
    )
    for case in CASES:
        runs = samples[case]
        ran = [e for e in engines if e in runs]
        refs = [r for r in REFERENCES if r in ran]
        summary = summarize(runs, ran, refs)
        title = "GET / -> 11-byte 'hello world'" if case == "hello" else (
            f"GET /file -> {FILE_SIZE // MIB} MiB static file")
        print(f"\nhttp {case}: {title}\n")
        if summary:
            print(render(case, summary, refs))
        for engine in engines:
            if case in not_served.get(engine, set()):
                print(f"{engine}: {case}: not available "
                      "(protocols.http.static not importable yet; see the server's note)")
        records.append(_case(case, summary, runs, errors))
    print()
    for engine, why in skipped.items():
        print(f"skipped {engine}: {why}")
    for engine, why in errors.items():
        print(f"error {engine}: {why}")
    for line in flagged:
        print(f"errors during a run: {line}")
    noisy = max(
        (s["other_busy"] for record in records for s in record["engines"].values()
         if "other_busy" in s),
        default=0.0,
    )
    print(f"machine: load average {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f} "
          f"after the run (was {load_before[0]:.2f}); other processes used up to "
          f"{noisy:.0%} of a core during a measured run")
    print()
    for line in _target_lines(verdicts):
        print(line)

    return {
        "engines": {e: _engine_info(e) for e in engines if e not in skipped and e not in errors},
        "workload": asdict(w),
        "file_size": FILE_SIZE,
        "skipped": skipped,
        "errors": errors,
        "not_served": {e: sorted(c) for e, c in not_served.items()},
        "runs_with_errors": flagged,
        "load_average": {"before": load_before, "after": load_after},
        "cases": records,
        "targets": verdicts,
    }


def _case(
    name: str,
    summary: dict[str, Any],
    runs: dict[str, dict[int, Run]],
    errors: dict[str, str],
) -> dict[str, Any]:
    """One case as a harness case record.

    ``ratio`` follows the harness's "torsion over twisted, higher is better" convention:
    twisted-web's CPU per request over torsion-select's (paired median).
    """
    description = (
        "GET / answered with 'hello world' (11 bytes)" if name == "hello"
        else f"GET /file, a {FILE_SIZE // MIB} MiB static file"
    )
    engines: dict[str, Any] = dict(summary)
    engines.update({engine: {"error": why} for engine, why in errors.items()})
    return {
        "name": name,
        "description": description + "; unit: server CPU µs per request",
        "per_op": 1,
        "unit": "request",
        "engines": engines,
        "ratio": paired_ratio(runs, "twisted-web", "torsion-select"),
    }
