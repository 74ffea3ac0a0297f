"""Shared timing, reporting and result files for ``python -m benchmarks`` suites.

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
import itertools
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Sequence
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


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def compare(
    suite: str, cases: Sequence[Case], engines: Sequence[Engine], options: Options
) -> list[dict[str, Any]]:
    """Time every case on every engine; return one JSON-ready record per case."""
    records = []
    for index, case in enumerate(cases, 1):
        tag = f"[{suite} {index}/{len(cases)}] {case.name}"
        runs: dict[str, dict[str, Any]] = {}
        ops: dict[str, tuple[Op, int]] = {}
        for engine in engines:
            runs[engine.label] = {"module": engine.module.__name__}
            try:
                op = case.build(engine.module)
                if case.check is not None:
                    case.check(op())
                _progress(f"{tag}: calibrating {engine.label}")
                ops[engine.label] = (op, calibrate(op, options.rep_seconds))
            except Exception as exc:  # report and keep going: the other cases still count
                runs[engine.label]["error"] = f"{type(exc).__name__}: {exc}"
                _progress(f"{tag}: {engine.label} FAILED: {runs[engine.label]['error']}")
        rates: dict[str, list[float]] = {label: [] for label in ops}
        for rep in range(1, options.repeat + 1):
            for label, (op, n) in ops.items():  # interleaved: A B A B ...
                rates[label].append(n / _time_batch(op, n))
            shown = "  ".join(f"{label} {_rate(rates[label][-1])}/s" for label in rates)
            _progress(f"{tag}: rep {rep}/{options.repeat}  {shown}")
        for label, values in rates.items():
            median = statistics.median(values)
            runs[label].update(
                iterations=ops[label][1],
                ops_per_sec=values,
                median=median,
                spread=_spread(values),
                ns_per_unit=1e9 / (median * case.per_op),
            )
        records.append(
            {
                "name": case.name,
                "description": case.description,
                "per_op": case.per_op,
                "unit": case.unit,
                "engines": runs,
                "ratio": _ratio(runs),
            }
        )
    return records


def _ratio(runs: dict[str, dict[str, Any]]) -> float | None:
    torsion, twisted = runs.get("torsion", {}), runs.get("twisted", {})
    if "median" in torsion and "median" in twisted:
        return float(torsion["median"] / twisted["median"])
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
    """What a reader needs to compare two result files."""
    usable: int | None
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on every platform
        usable = os.cpu_count()
    try:
        twisted_version: str | None = metadata.version("twisted")
    except metadata.PackageNotFoundError:
        twisted_version = None
    return {
        "python": sys.version,
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        "twisted_version": twisted_version,
    }


def command_line() -> str:
    """The shell command that repeats this run (argv[0] under -m is a file path)."""
    return shlex.join([sys.executable, "-m", "benchmarks", *sys.argv[1:]])


def engines_from_env(variable: str, defaults: Sequence[str], known: Sequence[str]) -> list[str]:
    """The engines named in ``$variable`` (comma-separated), else ``defaults``.

    Raises:
        Unavailable: the variable names an engine not in ``known``.
    """
    chosen = os.environ.get(variable, "").strip()
    if not chosen:
        return list(defaults)
    names = [name.strip() for name in chosen.split(",") if name.strip()]
    unknown = [name for name in names if name not in known]
    if unknown:
        raise Unavailable(
            f"{variable} names unknown engines {', '.join(unknown)}; known: {', '.join(known)}"
        )
    return list(dict.fromkeys(names))
