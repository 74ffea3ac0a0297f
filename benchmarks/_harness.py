"""Shared options, engine selection, tables and machine facts for ``python -m benchmarks``.

The server suites' method (processes, /proc CPU, interleaved repetitions, paired ratios)
lives in :mod:`benchmarks._measure` and :mod:`benchmarks._servers`; this module holds what
every suite uses, and the in-process timing of the ``deferred`` suite.

A suite writes each :class:`Case` once, as a builder that takes a module namespace
(``deferred`` or ``twisted.internet.defer``) and returns a zero-argument operation. The
harness builds every case on every :class:`Engine`, checks the operation's result once,
calibrates an iteration count, then times the engines interleaved (A B A B ...) in this
one process so drift in clock speed or machine load hits both alike. It reports medians
and never judges a timing, apart from the informational target line.
"""

from __future__ import annotations

import gc
import importlib
import importlib.util
import itertools
import os
import platform
import shlex
import statistics
import subprocess
import sys
import sysconfig
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"
TARGET_RATIO = 1.5
TWISTED_MISSING = "twisted not installed: pip install -e '.[bench]'"

Op = Callable[[], object]


class Unavailable(Exception):
    """An engine a suite cannot run without is missing; the message says how to fix it."""


@dataclass(frozen=True)
class Options:
    """Command-line settings shared by every suite."""

    repeat: int = 5
    quick: bool = False
    json_path: Path | None = None
    #: Debug aid: point the torsion slot at another module (an A/A run shows the noise floor).
    torsion_module: str | None = None
    #: ``--engines``: short names (``select``, ``twisted``...) or full engine names; empty
    #: runs each suite's default engines.
    engines: tuple[str, ...] = ()

    @property
    def rep_seconds(self) -> float:
        """Target duration of one timed repetition."""
        return 0.03 if self.quick else 0.2


@dataclass(frozen=True)
class Case:
    """One benchmark, written once against whatever module an engine supplies.

    Attributes:
        name: short slug shown in the table.
        description: one sentence for ``--list``, the README and the JSON file.
        build: takes the engine's module, returns the operation to time.
        check: called once with the operation's return value; raises if the operation
            did not do what the case claims (so a broken engine is not timed as fast).
        per_op: units of work inside one operation (links of a chain), for per-unit time.
        unit: name of that unit.
    """

    name: str
    description: str
    build: Callable[[ModuleType], Op]
    check: Callable[[object], None] | None = None
    per_op: int = 1
    unit: str = "op"


@dataclass(frozen=True)
class Engine:
    """A labelled implementation under test: ``torsion`` or ``twisted``."""

    label: str
    module: ModuleType
    version: str


def load_engine(label: str, module_name: str, names: Sequence[str]) -> Engine:
    """Import ``module_name`` and insist it exports ``names``.

    Raises:
        ImportError: the module is missing or lacks one of ``names`` (a package still
            being written shows up as the latter).
    """
    module = importlib.import_module(module_name)
    missing = [name for name in names if not hasattr(module, name)]
    if missing:
        raise ImportError(f"{module_name} does not export {', '.join(missing)}")
    return Engine(label, module, _version_of(module_name))


def describe(engines: Sequence[Engine]) -> dict[str, dict[str, str]]:
    """JSON-ready module name and version of each engine."""
    return {e.label: {"module": e.module.__name__, "version": e.version} for e in engines}


def _version_of(module_name: str) -> str:
    top = module_name.partition(".")[0]
    dists = metadata.packages_distributions().get(top, [top])
    try:
        return metadata.version(dists[0])
    except metadata.PackageNotFoundError:
        return "source tree"


def _time_batch(op: Op, n: int) -> float:
    # Every batch starts from the same heap state; gc stays enabled because the code
    # under test runs with it in real programs, and allocation-heavy engines should pay.
    gc.collect()
    loop = itertools.repeat(None, n)  # cheapest Python loop; its cost is the same for all
    start = time.perf_counter()
    for _ in loop:
        op()
    return time.perf_counter() - start


def calibrate(op: Op, seconds: float) -> int:
    """Return an iteration count that makes one batch of ``op`` last about ``seconds``."""
    n = 1
    while True:
        elapsed = _time_batch(op, n)
        if elapsed >= seconds / 4:
            return max(1, round(n * seconds / elapsed))
        # At most 10x per step: a tiny batch's time is mostly timer noise, and trusting it
        # could make the next batch far longer than a whole repetition.
        n *= int(min(10.0, max(2.0, seconds / 2 / max(elapsed, 1e-9))))


def _spread(rates: Sequence[float]) -> float:
    return (max(rates) - min(rates)) / statistics.median(rates)


def progress(message: str) -> None:
    """A progress line on stderr (stdout carries the tables)."""
    print(message, file=sys.stderr, flush=True)



def render_table(rows: Sequence[Sequence[str]]) -> str:
    """Aligned plain text: the first column left-aligned, the others right-aligned."""
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


def compare(
    suite: str, cases: Sequence[Case], engines: Sequence[Engine], options: Options
) -> list[dict[str, Any]]:
    """Time every case on every engine; return one JSON-ready record per case.

    Besides the ops/s figures, each record carries the fields every suite's records
    share (``cpu`` in µs per op, ``rate``, ``spread``, ``paired_cpu``, ``noise``), so the
    report reads them like a server suite's. Everything runs in one thread, so on a quiet
    machine the wall time of a batch is this process's CPU time.
    """
    records = []
    for index, case in enumerate(cases, 1):
        tag = f"[{suite} case {index}/{len(cases)}] {case.name}"
        runs: dict[str, dict[str, Any]] = {}
        ops: dict[str, tuple[Op, int]] = {}
        for engine in engines:
            runs[engine.label] = {"module": engine.module.__name__}
            try:
                op = case.build(engine.module)
                if case.check is not None:
                    case.check(op())
                progress(f"{tag}: calibrating {engine.label}")
                ops[engine.label] = (op, calibrate(op, options.rep_seconds))
            except Exception as exc:  # report and keep going: the other cases still count
                runs[engine.label]["error"] = f"{type(exc).__name__}: {exc}"
                progress(f"{tag}: {engine.label} FAILED: {runs[engine.label]['error']}")
        rates: dict[str, list[float]] = {label: [] for label in ops}
        for rep in range(1, options.repeat + 1):
            for label, (op, n) in ops.items():  # interleaved: A B A B ...
                rates[label].append(n / _time_batch(op, n))
            shown = "  ".join(f"{label} {_rate(rates[label][-1])}/s" for label in rates)
            progress(f"{tag}: rep {rep}/{options.repeat}  {shown}")
        reference = "twisted" if "twisted" in rates else None
        for label, values in rates.items():
            median = statistics.median(values)
            runs[label].update(
                iterations=ops[label][1],
                ops_per_sec=values,
                median=median,
                spread=_spread(values),
                ns_per_unit=1e9 / (median * case.per_op),
                cpu=1e6 / median,
                rate=median,
                p50_us=None,
                p99_us=None,
                paired_cpu={} if reference is None else {
                    reference: _paired(rates[reference], values)},
            )
        spreads = {label: runs[label]["spread"] for label in rates}
        worst = max(spreads, key=spreads.__getitem__) if spreads else None
        records.append(
            {
                "name": case.name,
                "description": case.description,
                "per_op": case.per_op,
                "unit": case.unit,
                "cpu_label": "µs/op",
                "rate_label": "ops/s",
                "references": [] if reference is None else [reference],
                "noise": {
                    "reps": options.repeat,
                    "spread_median": statistics.median(spreads.values()) if spreads else None,
                    "spread_max": spreads[worst] if worst else None,
                    "spread_max_engine": worst,
                    "other_max": None,
                },
                "engines": runs,
                "ratio": _ratio(rates),
            }
        )
    return records


def _paired(reference: Sequence[float], values: Sequence[float]) -> float:
    """Median of per-repetition time-per-op ratios (engine over reference)."""
    return statistics.median(ref / mine for mine, ref in zip(values, reference, strict=True))


def _ratio(rates: dict[str, list[float]]) -> float | None:
    """torsion's ops/s over Twisted's, paired per repetition (interleaved, so comparable)."""
    torsion, twisted = rates.get("torsion"), rates.get("twisted")
    if torsion and twisted:
        return statistics.median(t / w for t, w in zip(torsion, twisted, strict=True))
    return None


def _rate(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def _duration(ns: float) -> str:
    for scale, unit in ((1e9, "s"), (1e6, "ms"), (1e3, "µs")):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns:.3g} ns"


def format_table(records: Sequence[dict[str, Any]], labels: Sequence[str]) -> str:
    """Render ``case | <label> ops/s ... | ratio | spread`` as aligned plain text."""
    header = ["case", *(f"{label} ops/s" for label in labels)]
    if len(labels) > 1:
        header.append("ratio (torsion/twisted)")
    header.append("spread (" + "/".join(labels) + ")")
    rows, notes = [header], []
    for record in records:
        runs = record["engines"]
        cells = [record["name"]]
        cells += [_rate(runs[lb]["median"]) if "median" in runs[lb] else "error" for lb in labels]
        if len(labels) > 1:
            cells.append("-" if record["ratio"] is None else f"{record['ratio']:.2f}x")
        spreads = [f"{runs[lb]['spread']:.1%}" if "spread" in runs[lb] else "-" for lb in labels]
        rows.append([*cells, " / ".join(spreads)])
        if record["per_op"] > 1:
            per = ", ".join(
                f"{lb} {_duration(runs[lb]['ns_per_unit'])}"
                for lb in labels
                if "median" in runs[lb]
            )
            notes.append(f"  {record['name']}: per {record['unit']} {per}")
        notes += [
            f"  {record['name']}: {lb} error: {runs[lb]['error']}"
            for lb in labels
            if "error" in runs[lb]
        ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines + notes)


def target_line(records: Sequence[tuple[str, dict[str, Any]]]) -> str:
    """The final verdict: does torsion reach TARGET_RATIO x twisted on every case?

    ``records`` pairs a display name with each case record; a case without a ratio
    (twisted missing, or an engine failed) counts as not met.
    """
    prefix = f"targets: at least {TARGET_RATIO:g}x twisted on every case: "
    if not records:
        return prefix + "NOT CHECKED (no cases ran)"
    if all(
        record["ratio"] is None and "twisted" not in record["engines"] for _, record in records
    ):
        return prefix + f"NOT CHECKED ({TWISTED_MISSING})"
    misses = [
        f"{name} {'no result' if r['ratio'] is None else format(r['ratio'], '.2f') + 'x'}"
        for name, r in records
        if r["ratio"] is None or r["ratio"] < TARGET_RATIO
    ]
    return prefix + (f"NOT MET ({', '.join(misses)})" if misses else "MET")


def machine_info() -> dict[str, Any]:
    """What a reader needs to compare two result files: CPU, cores, kernel, Python build."""
    usable: int | None
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on every platform
        usable = os.cpu_count()
    versions: dict[str, str | None] = {}
    for dist in ("twisted", "aiohttp", "uvloop", "httptools", "pyftpdlib"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    config = sysconfig.get_config_vars()
    return {
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        "kernel": platform.release(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "memory_gib": _memory_gib(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "python": sys.version,
        "implementation": platform.python_implementation(),
        "python_build": {
            "config_args": config.get("CONFIG_ARGS"),
            "cflags": config.get("CFLAGS"),
            "py_debug": bool(config.get("Py_DEBUG")),
            "compiler": platform.python_compiler(),
        },
        "twisted_version": versions["twisted"],
        "peer_versions": versions,
        "torsion_commit": _git_commit(),
    }


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "cpu model"):
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float | None:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None


def _git_commit() -> str | None:
    """The checkout's commit, with ``+dirty`` when files differ from it (None: no git)."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root,
                              capture_output=True, text=True, timeout=10, check=False)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=root, capture_output=True, text=True, timeout=10,
                               check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def command_line() -> str:
    """The shell command that repeats this run (argv[0] under -m is a file path)."""
    return shlex.join([sys.executable, "-m", "benchmarks", *sys.argv[1:]])


#: What to run when a peer is missing.
BENCH_EXTRA = "pip install -e '.[bench]'"


def engine_info(engine: str, module: str,
                dists: Mapping[str, str | None] | None = None) -> dict[str, str]:
    """What a server suite records about ``engine``: its module and the version it ran.

    The distribution is the engine's first word (``torsion-uvloop`` -> torsion),
    unless ``dists`` maps that word elsewhere; None there (or the words asyncio and
    stdlib) means the interpreter's own library. An engine running on uvloop also
    names uvloop's version.
    """
    framework = engine.partition("-")[0]
    table: dict[str, str | None] = {"asyncio": None, "stdlib": None, **(dists or {})}
    dist = table.get(framework, framework)
    if dist is None:
        version = f"python {sys.version.split()[0]}"
    else:
        try:
            version = metadata.version(dist)
        except metadata.PackageNotFoundError:
            version = "source tree"
    if engine.endswith("uvloop") and dist != "uvloop":
        try:
            version += f" (uvloop {metadata.version('uvloop')})"
        except metadata.PackageNotFoundError:
            pass
    return {"module": module, "server": engine, "version": version}


def tags_of(engine: str) -> set[str]:
    """The short names ``--engines`` matches ``engine`` by: the engine and its parts.

    ``aiohttp-uvloop`` answers to ``aiohttp``, ``uvloop`` and its full name.
    """
    return {engine, *engine.split("-")}


def select_engines(
    suite: str,
    defaults: Sequence[str],
    known: Sequence[str],
    options: Options,
    env_var: str | None = None,
    requires: Mapping[str, Sequence[str]] | None = None,
    tags: Callable[[str], set[str]] = tags_of,
) -> tuple[list[str], dict[str, str]]:
    """The engines a suite runs, and those skipped because a peer is not installed.

    The suite's ``defaults`` (or the exact names in ``$env_var``, the older per-suite
    switch) are filtered by ``--engines``: an engine stays when one of the given names
    is among its :func:`tags_of` (``select`` keeps ``torsion-select``; ``twisted`` keeps
    every Twisted engine); a full engine name from ``known`` adds an engine the defaults
    leave out. ``requires`` maps an engine to the modules it imports; one missing is a
    skip with one line saying what to install, never an error.

    Raises:
        Unavailable: ``$env_var`` names an engine not in ``known``.
    """
    base = list(defaults)
    chosen = os.environ.get(env_var, "").strip() if env_var else ""
    if chosen:
        names = [name.strip() for name in chosen.split(",") if name.strip()]
        unknown = [name for name in names if name not in known]
        if unknown:
            raise Unavailable(f"{env_var} names unknown engines {', '.join(unknown)}; "
                              f"known: {', '.join(known)}")
        base = list(dict.fromkeys(names))
    if options.engines:
        wanted = set(options.engines)
        extra = [name for name in options.engines if name in known and name not in base]
        base = [e for e in [*base, *extra] if wanted & tags(e)]
        unmatched = [t for t in options.engines if not any(t in tags(e) for e in known)]
        if unmatched:
            progress(f"{suite}: --engines {','.join(unmatched)}: no such engine in this suite "
                     f"(it has {', '.join(known)})")
    skipped: dict[str, str] = {}
    for engine in base:
        missing = next((m for m in (requires or {}).get(engine, ())
                        if importlib.util.find_spec(m) is None), None)
        if missing is not None:
            skipped[engine] = f"{missing} is not installed ({BENCH_EXTRA})"
            progress(f"{suite}: skipped {engine}: {skipped[engine]}")
    return [e for e in base if e not in skipped], skipped


def engines_from_env(variable: str, defaults: Sequence[str], known: Sequence[str]) -> list[str]:
    """The engines named in ``$variable`` (comma-separated), else ``defaults``.

    Older form of :func:`select_engines`, without ``--engines`` and the peer check; new
    suites call that instead.

    Raises:
        Unavailable: the variable names an engine not in ``known``.
    """
    engines, _ = select_engines("", defaults, known, Options(), variable)
    return engines
