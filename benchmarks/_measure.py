"""The method every server suite shares, from the repetition loop to the case records.

A server suite (echo, http, xmlrpc, ...) describes itself with a :class:`Suite`: its cases
(:class:`CaseSpec`: the unit of work and how to show it), the engines it compares with
(references), its targets, and a ``measure(engine, step)`` function that starts one fresh
server of ``engine``, warms each case up, measures each case once and returns one
:class:`Run` per case (server CPU seconds from ``/proc``, operations completed, wall
seconds, the client's CPU and latency percentiles). :func:`run_suite` does the rest, the
same way for every suite:

- engines run interleaved, in forward order on odd repetitions and reversed on even
  ones, so drift in clock speed or load hits all alike; each repetition starts a fresh
  server, so process-level luck (memory layout) shows in the spread instead of biasing
  one engine for the whole run;
- progress goes to stderr: suite, repetition i/N, engine j/M, then each case;
- an engine whose framework is missing is skipped with one line; one that fails in any
  repetition shows its error instead of a partial median;
- per case: the median over repetitions of the server's CPU per unit (the primary
  figure), throughput and p50/p99 latency beside it, paired ratios (each repetition's
  figure over the reference engine's in the same repetition, then the median), and a
  noise line (the spread between repetitions, and how much CPU other processes used);
- target verdicts (information, never a failure) and a JSON-ready report whose case
  records :mod:`benchmarks.report` turns into tables and charts.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from benchmarks._harness import progress, render_table
from benchmarks._servers import BenchError, EngineUnavailable

#: In a target, the torsion engine with the best median figure in that case.
BEST_TORSION = "torsion-best"


@dataclass(frozen=True)
class CaseSpec:
    """One workload of a suite and how its figures are named and scaled.

    ``Run.ops / ops_per_unit`` units were done; the primary figure is
    ``server_cpu / units * cpu_scale`` (``cpu_label`` names it, e.g. ``CPU µs/req``).
    """

    name: str
    description: str
    unit: str
    cpu_label: str
    rate_label: str
    cpu_scale: float = 1e6
    ops_per_unit: float = 1.0
    #: The line printed above the case's table.
    title: str = ""
    #: Latency columns in ms (True) or µs (False).
    latency_ms: bool = True
    #: The suite's historical JSON names of the primary figure and the throughput,
    #: written beside ``cpu`` and ``rate`` so older readers of the files still work.
    cpu_key: str = ""
    rate_key: str = ""


@dataclass(frozen=True)
class Run:
    """One measured run of one case against one server."""

    server_cpu: float  # seconds
    ops: int  # messages, requests, calls, bytes...: see CaseSpec.ops_per_unit
    seconds: float
    client_cpu: float  # seconds
    other_cpu: float  # seconds of CPU that neither the server nor the client used
    p50_us: float | None = None
    p99_us: float | None = None
    errors: dict[str, int] = field(default_factory=dict)  # only the non-zero counts
    first_error: str = ""

    def cpu(self, spec: CaseSpec) -> float:
        """The primary figure: server CPU per unit, in the case's scale."""
        return self.server_cpu / (self.ops / spec.ops_per_unit) * spec.cpu_scale

    def rate(self, spec: CaseSpec) -> float:
        """Units per second."""
        return self.ops / spec.ops_per_unit / self.seconds


@dataclass(frozen=True)
class Target:
    """A goal from the issue: ``engine``'s figure over ``reference``'s, paired.

    ``figure`` ``cpu``: met when the ratio is at most ``limit``; ``rate``: when above it.
    """

    case: str
    engine: str
    reference: str
    limit: float
    figure: str = "cpu"


#: samples[case][engine][rep]
Samples = dict[str, dict[str, dict[int, Run]]]
#: A table column of its own: header, and the cell made from an engine and its summary.
Column = tuple[str, Callable[[str, dict[str, Any]], str]]


@dataclass
class Suite:
    """What :func:`run_suite` needs to know about a server suite."""

    name: str
    cases: Sequence[CaseSpec]
    #: ``measure(engine, step)``: one fresh server, each case warmed up and measured once;
    #: ``step(case)`` reports progress before each case.
    measure: Callable[[str, Callable[[str], None]], dict[str, Run]]
    references: Sequence[str] = ()
    targets: Sequence[Target] = ()
    #: What loads the server, for the headings ("load client", "wrk").
    client: str = "load client"
    #: Paired throughput ratios beside the CPU ratios (when throughput is a target).
    rate_ratios: bool = False
    columns: dict[str, Sequence[Column]] = field(default_factory=dict)
    #: JSON description of an engine (server, version).
    engine_info: Callable[[str], dict[str, str]] = lambda engine: {"server": engine}
    #: The legacy ``ratio`` of a case record: (numerator, denominator) engines of the
    #: paired CPU ratio, "how many times more work per CPU second" for the shared verdict.
    legacy_ratio: tuple[str, str] | None = None
    #: Lines printed under the tables (context ratios, notes).
    epilogue: Callable[[Samples], list[str]] | None = None


@dataclass
class Outcome:
    """Everything the repetitions produced."""

    samples: Samples
    skipped: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    flagged: list[str] = field(default_factory=list)


def interleave(suite: Suite, engines: Sequence[str], reps: int) -> Outcome:
    """Run ``suite.measure`` for every engine and repetition, engines interleaved."""
    out = Outcome({case.name: {e: {} for e in engines} for case in suite.cases})
    specs = {case.name: case for case in suite.cases}
    for rep in range(1, reps + 1):
        order = list(engines) if rep % 2 else list(engines)[::-1]
        for index, engine in enumerate(order, 1):
            if engine in out.skipped or engine in out.errors:
                continue
            where = f"[{suite.name} rep {rep}/{reps}, engine {index}/{len(order)}] {engine}"

            def step(case: str, where: str = where) -> None:
                progress(f"{where}: {case} ...")

            try:
                runs = suite.measure(engine, step)
            except EngineUnavailable as exc:
                out.skipped[engine] = str(exc) or "not importable"
                progress(f"{where}: skipped: {out.skipped[engine]}")
                continue
            except BenchError as exc:
                out.errors[engine] = str(exc)
                progress(f"{where}: FAILED: {exc}")
                continue
            shown = []
            for case, run in runs.items():
                spec = specs[case]
                out.samples[case][engine][rep] = run
                unit = spec.cpu_label.removeprefix("CPU ")
                shown.append(f"{case} {figure_text(run.cpu(spec))} {unit} "
                             f"{run.rate(spec):,.0f} {spec.rate_label}")
                if run.errors:
                    counts = ", ".join(f"{n} {kind}" for kind, n in run.errors.items())
                    first = f" (first: {run.first_error})" if run.first_error else ""
                    out.flagged.append(f"{engine} {case} rep {rep}: {counts} in {run.ops:,} "
                                       f"operations{first}")
            progress(f"{where}: " + "; ".join(shown))
    # An engine that failed in any repetition shows its error, not a partial median.
    for by_engine in out.samples.values():
        for engine in list(by_engine):
            if not by_engine[engine] or engine in out.errors:
                by_engine.pop(engine)
    return out


# --- figures ----------------------------------------------------------------------------


def spread(values: Sequence[float]) -> float:
    """``(max - min) / median``: the noise between repetitions (0 with one repetition)."""
    return (max(values) - min(values)) / statistics.median(values)


def paired_ratio(runs: dict[str, dict[int, Run]], engine: str, reference: str,
                 figure: Callable[[Run], float]) -> float | None:
    """Median over repetitions of engine's ``figure`` / reference's; None if unpaired."""
    mine, theirs = runs.get(engine, {}), runs.get(reference, {})
    ratios = [figure(mine[rep]) / figure(theirs[rep]) for rep in sorted(mine) if rep in theirs]
    return statistics.median(ratios) if ratios else None


def best_torsion(spec: CaseSpec, runs: dict[str, dict[int, Run]], figure: str) -> str | None:
    """The torsion engine with the lowest median CPU (``cpu``) or highest rate (``rate``)."""
    medians = {
        e: statistics.median((r.cpu(spec) if figure == "cpu" else -r.rate(spec))
                             for r in reps.values())
        for e, reps in runs.items() if e.startswith("torsion-") and reps
    }
    return min(medians, key=medians.__getitem__) if medians else None


def summarize(spec: CaseSpec, runs: dict[str, dict[int, Run]], refs: Sequence[str]
              ) -> dict[str, dict[str, Any]]:
    """JSON-ready medians, spread, error totals and paired ratios of each engine."""
    def cpu(r: Run) -> float:
        return r.cpu(spec)

    def rate(r: Run) -> float:
        return r.rate(spec)

    out = {}
    for engine, by_rep in runs.items():
        rs = [by_rep[rep] for rep in sorted(by_rep)]
        errors: dict[str, int] = {}
        for r in rs:
            for kind, count in r.errors.items():
                errors[kind] = errors.get(kind, 0) + count
        p50 = [r.p50_us for r in rs if r.p50_us is not None]
        p99 = [r.p99_us for r in rs if r.p99_us is not None]
        entry: dict[str, Any] = {
            "runs": [{**asdict(r), "cpu": cpu(r), "rate": rate(r)} for r in rs],
            "cpu": statistics.median(map(cpu, rs)),
            "rate": statistics.median(map(rate, rs)),
            "p50_us": statistics.median(p50) if p50 else None,
            "p99_us": statistics.median(p99) if p99 else None,
            "server_busy": statistics.median(r.server_cpu / r.seconds for r in rs),
            "client_busy": statistics.median(r.client_cpu / r.seconds for r in rs),
            "other_busy": max(r.other_cpu / r.seconds for r in rs),
            "spread": spread([cpu(r) for r in rs]),
            "errors": errors,
            "runs_with_errors": sum(1 for r in rs if r.errors),
            "paired_cpu": {ref: paired_ratio(runs, engine, ref, cpu) for ref in refs},
            "paired_rate": {ref: paired_ratio(runs, engine, ref, rate) for ref in refs},
        }
        if spec.cpu_key:
            entry[spec.cpu_key] = entry["cpu"]
        if spec.rate_key:
            entry[spec.rate_key] = entry["rate"]
        out[engine] = entry
    return out


def figure_text(value: float) -> str:
    """A figure with three or four significant digits and fixed decimals per magnitude."""
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}" if value >= 1 else f"{value:.3f}"


def ratio_text(ratio: float | None) -> str:
    """``0.45x``, or ``-`` when there is no ratio."""
    return "-" if ratio is None else f"{ratio:.2f}x"


def render(spec: CaseSpec, summary: dict[str, dict[str, Any]], refs: Sequence[str],
           suite: Suite) -> str:
    """``engine | CPU | vs ref... | rate | [vs ref...] | columns | latency | busy | noise``."""
    lat = "ms" if spec.latency_ms else "µs"
    scale = 1e3 if spec.latency_ms else 1.0
    extra = suite.columns.get(spec.name, ())
    header = ["engine", spec.cpu_label, *(f"vs {r}" for r in refs), spec.rate_label]
    if suite.rate_ratios:
        header += [f"{spec.rate_label} vs {r}" for r in refs]
    header += [h for h, _ in extra]
    header += [f"p50 {lat}", f"p99 {lat}", "server busy", f"{suite.client} busy",
               "other max", "spread", "errors"]
    rows = [header]
    for engine, s in summary.items():
        cells = [engine + ("!" if s["errors"] else ""), figure_text(s["cpu"])]
        cells += [ratio_text(s["paired_cpu"][r]) for r in refs]
        cells.append(f"{s['rate']:,.0f}")
        if suite.rate_ratios:
            cells += [ratio_text(s["paired_rate"][r]) for r in refs]
        cells += [fn(engine, s) for _, fn in extra]
        cells += ["-" if s[k] is None else f"{s[k] / scale:,.2f}" for k in ("p50_us", "p99_us")]
        cells += [f"{s['server_busy']:.0%}", f"{s['client_busy']:.0%}",
                  f"{s['other_busy']:.0%}", f"{s['spread']:.1%}",
                  str(sum(s["errors"].values()))]
        rows.append(cells)
    return render_table(rows)


def noise(summary: dict[str, dict[str, Any]], reps: int) -> dict[str, Any]:
    """The noise of one case: spreads between repetitions and other processes' CPU."""
    spreads = {e: s["spread"] for e, s in summary.items()}
    worst = max(spreads, key=spreads.__getitem__) if spreads else None
    return {
        "reps": reps,
        "spread_median": statistics.median(spreads.values()) if spreads else None,
        "spread_max": spreads[worst] if worst else None,
        "spread_max_engine": worst,
        "other_max": max((s["other_busy"] for s in summary.values()), default=None),
    }


def noise_line(info: dict[str, Any], what: str = "CPU per op") -> str:
    """One line on the noise seen in a case (the same wording in every suite)."""
    other = info.get("other_max")
    tail = "" if other is None else f"; other processes used up to {other:.0%} of a core"
    if info["reps"] < 2 or info.get("spread_max") is None:
        return (f"noise: {info['reps']} repetition, no spread to show (a smoke run: do not "
                f"compare these figures){tail}")
    return (f"noise: spread (max-min)/median of {what} over {info['reps']} repetitions: "
            f"median {info['spread_median']:.1%}, worst {info['spread_max']:.1%} "
            f"({info['spread_max_engine']}){tail}")


# --- targets ----------------------------------------------------------------------------


def check_targets(suite: Suite, samples: Samples) -> list[dict[str, Any]]:
    """Each target's paired ratio and verdict (None: an engine or the case did not run)."""
    specs = {case.name: case for case in suite.cases}
    verdicts = []
    for t in suite.targets:
        spec, runs = specs[t.case], samples.get(t.case, {})
        engine = best_torsion(spec, runs, t.figure) if t.engine == BEST_TORSION else t.engine

        def figure(r: Run, spec: CaseSpec = spec, kind: str = t.figure) -> float:
            return r.cpu(spec) if kind == "cpu" else r.rate(spec)

        ratio = None if engine is None else paired_ratio(runs, engine, t.reference, figure)
        met = None if ratio is None else (ratio <= t.limit if t.figure == "cpu"
                                          else ratio > t.limit)
        verdicts.append({**asdict(t), "engine_measured": engine, "ratio": ratio, "met": met})
    return verdicts


def target_lines(verdicts: Sequence[dict[str, Any]]) -> list[str]:
    """One line per target and a final ``targets: N of M MET ...`` verdict."""
    lines = ["targets (paired ratios, medians over repetitions; information, not a test):"]
    misses, unchecked = [], []
    for v in verdicts:
        shown = v["engine"]
        if v["engine"] == BEST_TORSION and v["engine_measured"]:
            shown = f"{BEST_TORSION} ({v['engine_measured']})"
        name = f"{v['case']} {shown} / {v['reference']}"
        bound = (f"<= {v['limit']:.2f}x" if v["figure"] == "cpu" else f">  {v['limit']:.2f}x")
        if v["met"] is None:
            state = "NOT CHECKED (an engine did not run)"
            unchecked.append(f"{v['case']} {v['engine']} / {v['reference']}")
        else:
            state = "MET" if v["met"] else "NOT MET"
            if not v["met"]:
                misses.append(f"{name} {v['ratio']:.2f}x")
        figure = "CPU" if v["figure"] == "cpu" else "rate"
        lines.append(f"  {figure:4} {name:52} {ratio_text(v['ratio']):>7}  {bound}  {state}")
    met = sum(1 for v in verdicts if v["met"])
    verdict = f"targets: {met} of {len(verdicts)} MET"
    if misses:
        verdict += f"; NOT MET: {', '.join(misses)}"
    if unchecked:
        verdict += f"; NOT CHECKED: {', '.join(unchecked)}"
    return [*lines, verdict]


# --- the whole suite --------------------------------------------------------------------


def run_suite(suite: Suite, engines: Sequence[str], reps: int, heading: str,
              skipped: dict[str, str] | None = None) -> dict[str, Any]:
    """Measure ``engines`` over ``reps`` repetitions; print tables; return the report.

    ``heading`` (the workload, in words) is printed above the tables; ``skipped`` holds
    engines left out before the run (peers not installed), with why.
    """
    if not engines:
        for engine, why in (skipped or {}).items():
            print(f"skipped {engine}: {why}")
        print(f"{suite.name}: skipped: no engine left to run (see --engines and the lines "
              "above)")
        return {"kind": "server", "engines": {}, "cases": [], "skipped": skipped or {},
                "errors": {}, "targets": []}
    load_before = os.getloadavg()
    progress(f"{suite.name}: load average before the run {load_before[0]:.2f} "
             f"{load_before[1]:.2f} {load_before[2]:.2f} (1/5/15 min)")
    out = interleave(suite, engines, reps)
    out.skipped = {**(skipped or {}), **out.skipped}
    load_after = os.getloadavg()

    print(f"\n{heading}")
    print("  CPU = server user+sys per unit (lower is better); vs X = median of paired "
          "per-repetition ratios;\n  busy = CPU/wall of the process; other max = the most "
          "CPU anything else on the machine used in one run;\n  spread = (max-min)/median of "
          "CPU per unit; errors: ! marks an engine with any")
    records = []
    for spec in suite.cases:
        runs = out.samples[spec.name]
        ordered = {e: runs[e] for e in engines if e in runs}
        refs = [r for r in suite.references if r in ordered]
        summary = summarize(spec, ordered, refs)
        info = noise(summary, reps)
        print(f"\n{suite.name} {spec.name}: {spec.title or spec.description}\n")
        if summary:
            print(render(spec, summary, refs, suite))
            print(noise_line(info, f"CPU per {spec.unit}"))
        else:
            print("no engine measured this case")
        records.append(case_record(suite, spec, summary, refs, info, out))
    print()
    for engine, why in out.skipped.items():
        print(f"skipped {engine}: {why}")
    for engine, why in out.errors.items():
        print(f"error {engine}: {why}")
    for line in out.flagged:
        print(f"errors during a run: {line}")
    print(f"machine: load average {load_after[0]:.2f} {load_after[1]:.2f} "
          f"{load_after[2]:.2f} after the run (was {load_before[0]:.2f})")
    if suite.epilogue is not None:
        for line in suite.epilogue(out.samples):
            print(line)
    verdicts = check_targets(suite, out.samples)
    if verdicts:
        print()
        for line in target_lines(verdicts):
            print(line)
    ran = [e for e in engines if any(e in runs for runs in out.samples.values())]
    return {
        "kind": "server",
        "engines": {e: suite.engine_info(e) for e in ran},
        "references": list(suite.references),
        "skipped": out.skipped,
        "errors": out.errors,
        "runs_with_errors": out.flagged,
        "load_average": {"before": load_before, "after": load_after},
        "cases": records,
        "targets": verdicts,
    }


def case_record(suite: Suite, spec: CaseSpec, summary: dict[str, dict[str, Any]],
                refs: Sequence[str], info: dict[str, Any], out: Outcome) -> dict[str, Any]:
    """One case as the JSON record the report reads (the same shape in every suite)."""
    engines: dict[str, Any] = dict(summary)
    engines.update({engine: {"error": why} for engine, why in out.errors.items()})
    legacy = None
    if suite.legacy_ratio is not None:
        legacy = paired_ratio(out.samples[spec.name], *suite.legacy_ratio,
                              lambda r: r.cpu(spec))
    return {
        "name": spec.name,
        "description": spec.description,
        "unit": spec.unit,
        "per_op": 1,
        "cpu_label": spec.cpu_label,
        "rate_label": spec.rate_label,
        "references": list(refs),
        "noise": info,
        "engines": engines,
        "ratio": legacy,
    }
