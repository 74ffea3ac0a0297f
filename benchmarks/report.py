"""The Markdown page with PNG charts that ``python -m benchmarks --report`` writes.

``write_report(documents, directory)`` takes one or more result files as loaded from
``benchmarks/results/*.json`` and writes ``directory/benchmarks.md`` with its charts in
``directory/benchmarks/`` (``docs/`` of the checkout by default). When several documents
hold the same suite, the newest (by its ``created`` stamp) is shown.

Every suite's case records share one shape (see :mod:`benchmarks._measure` and
:func:`benchmarks._harness.compare`): per engine ``cpu`` (the primary figure, lower is
better: server CPU per unit, or the time per op of the in-process deferred suite),
``rate`` (throughput), ``p50_us``/``p99_us`` (None where there is no latency),
``spread``, and ``paired_cpu`` (ratios to the case's ``references``). The charts are
horizontal bars of ``cpu`` with each bar labelled by its ratio to the case's first
reference, and of ``rate`` beside them; a suite with several cases also gets one chart of
every engine's CPU ratio per case.

matplotlib is an optional extra (``pip install -e '.[bench]'``); without it the page is
written with its tables and a line saying the charts are missing. The Agg backend is
used, so no display is needed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

CHARTS_DIRNAME = "benchmarks"
PAGE_NAME = "benchmarks.md"
#: Bar colours: torsion's engines stand out, peers share muted ones.
TORSION_COLOUR = "#2b6cb0"
PEER_COLOUR = "#a0aec0"
REFERENCE_COLOUR = "#dd6b20"
#: Names of the primary figure and the throughput in result files written before every
#: suite recorded ``cpu`` and ``rate`` (``--report-from`` still reads them).
LEGACY_CPU = ("cpu_us_per_msg", "cpu_ms_per_mb", "cpu_us_per_req", "cpu_us_per_call")
LEGACY_RATE = ("msgs_per_sec", "mb_per_sec", "req_per_sec", "calls_per_sec")


def load(paths: Iterable[Path]) -> list[dict[str, Any]]:
    """Read result files; each document remembers the file it came from."""
    documents = []
    for path in paths:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
        document.setdefault("source", str(path))
        documents.append(document)
    return documents


def merge(documents: Sequence[dict[str, Any]]) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """``{suite: (suite report, its document)}``, the newest document winning a suite."""
    merged: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
    for document in sorted(documents, key=lambda d: str(d.get("created", ""))):
        for name, report in document.get("suites", {}).items():
            if report.get("cases"):
                merged[name] = (report, document)
            else:
                merged.setdefault(name, (report, document))
    return merged


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "case"


def _measured(record: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The engines of a case record that have figures (not errors), each with ``cpu``.

    A suite whose records give one ``median`` per engine instead (``scale``) is shown
    with that median as its figure.
    """
    out = {}
    for engine, s in record.get("engines", {}).items():
        if not isinstance(s, dict):
            continue
        if s.get("cpu") is not None:
            out[engine] = s
        elif "ops_per_sec" in s and s.get("median"):  # an older deferred file: ops/s
            out[engine] = {**s, "cpu": 1e6 / s["median"], "rate": s["median"]}
        elif isinstance(s.get("median"), int | float):
            out[engine] = {**s, "cpu": s["median"]}
        else:  # older server-suite files: the figures under their suite's own names
            cpu = next((s[k] for k in LEGACY_CPU if s.get(k) is not None), None)
            if cpu is not None:
                rate = next((s[k] for k in LEGACY_RATE if s.get(k) is not None), None)
                out[engine] = {**s, "cpu": cpu, "rate": rate}
    return out


def _reference(record: dict[str, Any]) -> str | None:
    engines = _measured(record)
    return next((r for r in record.get("references", []) if r in engines), None)


def ratio_to(record: dict[str, Any], engine: str, reference: str | None) -> float | None:
    """Engine's CPU over the reference's: the paired ratio when there is one."""
    engines = _measured(record)
    if reference is None or engine not in engines or reference not in engines:
        return None
    paired = engines[engine].get("paired_cpu", {}).get(reference)
    if paired is not None:
        return float(paired)
    return float(engines[engine]["cpu"] / engines[reference]["cpu"])


def _fig(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}" if value >= 1 else f"{value:.3f}"


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


# --- charts -------------------------------------------------------------------------


def _pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend, or None when matplotlib is missing."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _colour(engine: str, reference: str | None) -> str:
    if engine.startswith("torsion"):
        return TORSION_COLOUR
    return REFERENCE_COLOUR if engine == reference else PEER_COLOUR


def _cpu_label(record: dict[str, Any]) -> str:
    if "cpu_label" in record:
        return f"{record['cpu_label']} (lower is better)"
    return str(record.get("unit", "median"))


def case_chart(plt: Any, suite: str, record: dict[str, Any], path: Path) -> None:
    """Two panels: CPU per unit with ratio labels, and throughput, one bar per engine."""
    engines = _measured(record)
    names = list(engines)[::-1]  # barh draws bottom-up: keep the table's order top-down
    reference = _reference(record)
    cpu = [engines[e]["cpu"] for e in names]
    rate = [engines[e].get("rate") or 0.0 for e in names]
    colours = [_colour(e, reference) for e in names]
    height = 1.2 + 0.45 * len(names)
    if not any(rate):
        fig, left = plt.subplots(figsize=(8, height))
        right = None
    else:
        fig, (left, right) = plt.subplots(1, 2, figsize=(11, height), sharey=True,
                                          gridspec_kw={"width_ratios": [3, 2]})
    left.barh(names, cpu, color=colours)
    for y, engine in enumerate(names):
        ratio = ratio_to(record, engine, reference)
        label = _fig(engines[engine]["cpu"])
        if ratio is not None:
            label += f"  ({ratio:.2f}x {reference})"
        left.text(engines[engine]["cpu"], y, " " + label, va="center", fontsize=8)
    left.set_xlim(0, (max(cpu) or 1.0) * 1.6)
    left.set_xlabel(_cpu_label(record))
    if right is not None:
        right.barh(names, rate, color=colours)
        for y, value in enumerate(rate):
            right.text(value, y, " " + _fig(value), va="center", fontsize=8)
        right.set_xlim(0, (max(rate) or 1.0) * 1.35)
        right.set_xlabel(f"{record.get('rate_label', 'ops/s')} (higher is better)")
    fig.suptitle(f"{suite} {record['name']}: {record.get('description', '')}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def suite_chart(plt: Any, suite: str, records: Sequence[dict[str, Any]], path: Path) -> bool:
    """Each engine's CPU ratio to its case's reference, grouped by case; False if none."""
    rows = []
    for record in records:
        reference = _reference(record)
        for engine in _measured(record):
            if engine != reference:
                ratio = ratio_to(record, engine, reference)
                if ratio is not None:
                    rows.append((f"{record['name']}  {engine} / {reference}", ratio, engine))
    if not rows:
        return False
    rows.reverse()
    fig, ax = plt.subplots(figsize=(9, 1.0 + 0.32 * len(rows)))
    ax.barh([r[0] for r in rows], [r[1] for r in rows],
            color=[_colour(r[2], None) for r in rows])
    for y, (_, ratio, _) in enumerate(rows):
        ax.text(ratio, y, f" {ratio:.2f}x", va="center", fontsize=8)
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xlim(0, max(r[1] for r in rows) * 1.25)
    ax.set_xlabel("CPU per unit over the reference's (paired; < 1 uses less CPU)")
    ax.tick_params(axis="y", labelsize=8)
    ax.set_title(f"{suite}: CPU ratio to the reference, per case", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def render_charts(merged: dict[str, tuple[dict[str, Any], dict[str, Any]]],
                  charts_dir: Path) -> dict[str, str] | None:
    """Write every chart; return ``{key: file name}`` (None: matplotlib is missing).

    Keys are ``suite`` for a suite's overview and ``suite/case`` for a case.
    """
    plt = _pyplot()
    if plt is None:
        return None
    charts_dir.mkdir(parents=True, exist_ok=True)
    for old in charts_dir.glob("*.png"):  # charts of suites no longer in the report
        old.unlink()
    written: dict[str, str] = {}
    for suite, (report, _) in merged.items():
        records = [r for r in report.get("cases", []) if _measured(r)]
        if len(records) > 1:
            name = f"{_slug(suite)}.png"
            if suite_chart(plt, suite, records, charts_dir / name):
                written[suite] = name
        for record in records:
            if suite in written and len(_measured(record)) < 3:
                continue  # two bars say no more than the overview's ratio and the table
            name = f"{_slug(suite)}-{_slug(record['name'])}.png"
            case_chart(plt, suite, record, charts_dir / name)
            written[f"{suite}/{record['name']}"] = name
    return written


# --- markdown -----------------------------------------------------------------------


def _table(rows: Sequence[Sequence[str]], numeric: bool = True) -> list[str]:
    """A Markdown table; columns after the first right-aligned when ``numeric``."""
    align = "---:" if numeric else "---"
    lines = ["| " + " | ".join(rows[0]) + " |",
             "|" + "|".join("---" if i == 0 else align for i in range(len(rows[0]))) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows[1:]]
    return lines


def machine_lines(documents: Sequence[dict[str, Any]]) -> list[str]:
    """The machine each run was made on (one table when they all ran on one machine)."""
    seen: dict[str, dict[str, Any]] = {}
    for document in documents:
        machine = document.get("machine", {})
        key = json.dumps({k: machine.get(k) for k in ("cpu_model", "kernel", "python")})
        seen.setdefault(key, machine)
    lines = []
    for machine in seen.values():
        build = machine.get("python_build") or {}
        peers = machine.get("peer_versions") or {"twisted": machine.get("twisted_version")}
        rows = [
            ["", ""],
            ["CPU", f"{machine.get('cpu_model', 'unknown')}: {machine.get('cpu_count')} "
                    f"logical CPUs, {machine.get('cpus_usable')} usable"],
            ["Memory", f"{machine.get('memory_gib')} GiB"],
            ["Kernel", f"{machine.get('kernel', '?')} ({machine.get('platform', '?')})"],
            ["Python", " ".join(str(machine.get("python", "?")).split())],
            ["Python build flags", f"`{build.get('config_args') or '-'}`"],
            ["Peers", ", ".join(f"{k} {v}" for k, v in peers.items() if v) or "none"],
            ["torsion commit", str(machine.get("torsion_commit") or "unknown")],
        ]
        load = machine.get("load_average")
        if load:
            rows.append(["Load average at start", " ".join(f"{x:.2f}" for x in load)])
        lines += [*_table(rows, numeric=False), ""]
    return lines


def case_lines(suite: str, record: dict[str, Any], chart: str | None) -> list[str]:
    """A case's heading, chart, table and noise line."""
    engines = record.get("engines", {})
    measured = _measured(record)
    refs = [r for r in record.get("references", []) if r in measured]
    lines = [f"### {suite} {record['name']}", "", record.get("description", ""), ""]
    if chart:
        lines += [f"![{suite} {record['name']}]({CHARTS_DIRNAME}/{chart})", ""]
    if measured:
        cpu_label = record.get("cpu_label") or record.get("unit", "median")
        header = ["engine", cpu_label, *(f"vs {r}" for r in refs),
                  record.get("rate_label", "ops/s"), "p50 ms", "p99 ms", "spread"]
        rows = [header]
        for engine, s in measured.items():
            rows.append([
                f"**{engine}**" if engine.startswith("torsion") else engine,
                _fig(s["cpu"]), *(_x(ratio_to(record, engine, r)) for r in refs),
                _fig(s.get("rate")),
                *(_fig(s[k] / 1e3) if s.get(k) is not None else "-"
                  for k in ("p50_us", "p99_us")),
                _pct(s.get("spread")),
            ])
        # Columns nobody filled (no latency in a streaming case) are left out.
        keep = [i for i in range(len(header)) if any(row[i] != "-" for row in rows[1:])]
        lines += [*_table([[row[i] for i in keep] for row in rows]), ""]
    for engine, s in engines.items():
        if isinstance(s, dict) and "error" in s:
            lines.append(f"- {engine}: error: {s['error']}")
    noise = record.get("noise") or {}
    if noise.get("reps", 0) >= 2 and noise.get("spread_max") is not None:
        other = noise.get("other_max")
        lines.append(
            f"Noise: spread (max-min)/median between {noise['reps']} repetitions: median "
            f"{_pct(noise.get('spread_median'))}, worst {_pct(noise['spread_max'])} "
            f"({noise.get('spread_max_engine')})"
            + ("" if other is None else f"; other processes used up to {other:.0%} of a core")
            + ".")
    elif noise:
        lines.append(f"Noise: {noise.get('reps', 1)} repetition, no spread measured.")
    return [*lines, ""]


def suite_lines(suite: str, report: dict[str, Any], document: dict[str, Any],
                charts: dict[str, str]) -> list[str]:
    """A suite's section: where it came from, charts and tables, skips, targets."""
    lines = [f"## {suite}", ""]
    options = document.get("options", {})
    lines.append(f"From `{document.get('source', '?')}` ({document.get('created', '?')}, "
                 f"{'--quick, ' if options.get('quick') else ''}command "
                 f"`{document.get('command', '?')}`).")
    lines.append("")
    workload = report.get("workload")
    if isinstance(workload, dict) and workload:
        shown = ", ".join(f"{key} {value}" for key, value in workload.items())
        lines += [f"Workload: {shown}.", ""]
    if suite in charts:
        lines += [f"![{suite} overview]({CHARTS_DIRNAME}/{charts[suite]})", ""]
    skipped = report.get("skipped")
    if isinstance(skipped, str):
        lines += [f"Not run: {skipped}.", ""]
    for record in report.get("cases", []):
        lines += case_lines(suite, record, charts.get(f"{suite}/{record['name']}"))
    if isinstance(skipped, dict):
        lines += [f"- skipped {engine}: {why}" for engine, why in skipped.items()]
    for engine, why in (report.get("errors") or {}).items():
        lines.append(f"- error {engine}: {why}")
    verdicts = report.get("targets") or []
    if verdicts:
        lines += ["", "Targets (information, not a test):", ""]
        for v in verdicts:
            state = {True: "met", False: "NOT MET", None: "not checked"}.get(v.get("met"), "?")
            if "reference" not in v:  # a suite's own kind of target: show what it holds
                facts = ", ".join(f"{k} {val}" for k, val in v.items() if k != "met")
                lines.append(f"- {facts} — {state}")
                continue
            engine = v.get("engine_measured") or v.get("engine")
            bound = "≤" if v.get("figure", "cpu") == "cpu" else ">"
            case = v.get("case") or v.get("workload") or ""
            lines.append(f"- {case} {engine} / {v.get('reference')} "
                         f"{v.get('figure', 'cpu')}: {_x(v.get('ratio'))} "
                         f"{bound} {_x(v.get('limit', v.get('above')))} — {state}")
    return [*lines, ""]


METHOD = """\
How to read it: every server suite runs each engine's server in its own process, pinned
to one CPU, with the load client pinned to the other. The primary figure is the server's
CPU time (user + system from `/proc/PID/stat`) per unit of work, lower is better;
throughput and the client's p50/p99 latency stand beside it. Engines run interleaved over
repetitions (forward, then reversed), each repetition on a fresh server; figures are
medians, and ratios (`vs X`, the chart labels) are paired: each repetition's figure over
the reference engine's in the same repetition, then the median. *Spread* is
(max - min) / median between repetitions: when it is as large as a gap between engines,
the gap means little. The `deferred` suite has no server: it times Deferred operations in
one process (time per op) against Twisted's. Method and workloads: `benchmarks/README.md`.
"""


def markdown(merged: dict[str, tuple[dict[str, Any], dict[str, Any]]],
             documents: Sequence[dict[str, Any]], charts: dict[str, str] | None,
             command: str) -> str:
    """The whole page."""
    quick = any(d.get("options", {}).get("quick") for d in documents)
    sources = ", ".join(f"`{d.get('source', '?')}`" for d in documents)
    lines = ["# Torsion benchmarks", "",
             f"Generated {datetime.now().strftime('%Y-%m-%d %H:%M')} by `{command}` from "
             f"{sources}.", ""]
    if quick:
        lines += ["> **Smoke run (`--quick`)**: short runs, most of them a single repetition; "
                  "these figures show that every suite runs, not how the engines compare.", ""]
    lines += ["## Machine", "", *machine_lines(documents), METHOD]
    if charts is None:
        lines += ["Charts: not drawn, matplotlib is not installed "
                  "(`pip install -e '.[bench]'`).", ""]
    for suite, (report, document) in merged.items():
        lines += suite_lines(suite, report, document, charts or {})
    return "\n".join(lines).rstrip() + "\n"


def write_report(documents: Sequence[dict[str, Any]], directory: Path, command: str) -> Path:
    """Write ``directory/benchmarks.md`` and its charts; return the page's path."""
    merged = merge(documents)
    directory.mkdir(parents=True, exist_ok=True)
    charts = render_charts(merged, directory / CHARTS_DIRNAME)
    page = directory / PAGE_NAME
    page.write_text(markdown(merged, documents, charts, command), encoding="utf-8")
    return page
