"""Command line: ``python -m benchmarks [options] SUITE...`` (or ``all``).

Runs the named suites one after the other, writes one JSON file for the run (under
``benchmarks/results/`` unless ``--json``), and with ``--report`` the Markdown page and
its charts (``docs/benchmarks.md`` unless ``--report-dir``). ``--report-from FILE...``
writes the page from earlier result files without running anything.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from benchmarks import SUITES
from benchmarks._harness import (
    RESULTS_DIR,
    Options,
    Unavailable,
    command_line,
    machine_info,
    progress,
    target_line,
)

#: Where ``--report`` writes by default: the checkout's docs/ (benchmarks.md + charts).
DOCS_DIR = Path(__file__).resolve().parent.parent / "docs"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Compare torsion's engines with their peers: server CPU per operation, "
        "throughput and latency, engines interleaved over repetitions.",
    )
    parser.add_argument(
        "suites", nargs="*", metavar="SUITE", help=f"one or more of: {', '.join(SUITES)}, or 'all'"
    )
    parser.add_argument("--list", action="store_true", help="list the suites and exit")
    parser.add_argument(
        "--engines",
        metavar="NAMES",
        help="comma-separated engines to run in every suite: short names (select, asyncio, "
        "uvloop, torsion, twisted, aiohttp, nginx, stdlib, httptools, pyftpdlib...) match "
        "every engine named after them; full names (torsion-select, asyncio-64k) too",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=5,
        metavar="N",
        help="timed repetitions per case and engine (default 5)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run: a few seconds per case, 1-3 reps"
    )
    parser.add_argument(
        "--json", type=Path, metavar="PATH",
        help="write results here instead of benchmarks/results/",
    )
    parser.add_argument(
        "--report",
        action="store_true",
        help="also write the Markdown report with PNG charts (docs/benchmarks.md)",
    )
    parser.add_argument(
        "--report-from",
        nargs="+",
        type=Path,
        metavar="JSON",
        help="write the report from these result files and run nothing",
    )
    parser.add_argument(
        "--report-dir",
        type=Path,
        default=DOCS_DIR,
        metavar="DIR",
        help="where the report goes: DIR/benchmarks.md and DIR/benchmarks/*.png "
        "(default: docs/ of the checkout)",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="exit with status 1 when a torsion engine failed or a suite could not run "
        "(CI); peers that fail or are not installed are reported either way",
    )
    parser.add_argument(
        "--torsion-module",
        metavar="MODULE",
        help="debug: run the deferred suite's torsion slot on another module, e.g. "
        "twisted.internet.defer to see the harness's noise floor",
    )
    return parser


def _select(parser: argparse.ArgumentParser, names: list[str]) -> list[str]:
    if not names:
        parser.error(f"name a suite: {', '.join(SUITES)}, or 'all' (see --list)")
    if "all" in names:
        return list(SUITES)
    unknown = [name for name in names if name not in SUITES]
    if unknown:
        parser.error(
            f"unknown suite {', '.join(map(repr, unknown))}; "
            f"known suites: {', '.join(SUITES)}, all"
        )
    return list(dict.fromkeys(names))  # keep order, drop repeats


def _report(documents: list[dict[str, Any]], directory: Path) -> None:
    from benchmarks import report

    page = report.write_report(documents, directory, command_line())
    print(f"report: {page} (charts in {page.parent / report.CHARTS_DIRNAME})")


def _run_suites(names: list[str], options: Options) -> tuple[dict[str, Any], list[str]]:
    """Run each suite; return the reports and the problems (``--strict`` fails on them)."""
    reports: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    for index, name in enumerate(names, 1):
        banner = f"=== suite {index}/{len(names)}: {name} ==="
        print(f"\n{banner}")
        progress(banner)
        start = time.monotonic()
        try:
            reports[name] = importlib.import_module(SUITES[name]).run(options)
        except Unavailable as exc:
            print(f"{name}: cannot run: {exc}")
            reports[name] = {"engines": {}, "cases": [], "skipped": str(exc)}
            problems.append(f"{name}: cannot run: {exc}")
        except ImportError as exc:  # a broken suite module: report it, run the others
            print(f"{name}: cannot import {SUITES[name]}: {exc}")
            reports[name] = {"engines": {}, "cases": [], "skipped": f"import failed: {exc}"}
            problems.append(f"{name}: import failed: {exc}")
        reports[name]["seconds"] = round(time.monotonic() - start, 1)
        # A peer failing on a loaded machine (a 1 s smoke run of a slow server can complete
        # nothing) is the environment; torsion failing is a bug.
        problems += [f"{name}: {engine}: {why}"
                     for engine, why in (reports[name].get("errors") or {}).items()
                     if engine.startswith("torsion")]
        progress(f"=== {name} done in {reports[name]['seconds']:.0f} s ===")
    return reports, problems


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv``, run the suites and/or write the report; return the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.list:
        for name, module in SUITES.items():
            try:
                description = importlib.import_module(module).DESCRIPTION
            except ImportError as exc:
                description = f"(cannot import {module}: {exc})"
            print(f"{name:10} {description}")
        return 0
    if args.report_from:
        if args.suites:
            parser.error("--report-from runs nothing: name no suite with it")
        from benchmarks import report

        _report(report.load(args.report_from), args.report_dir)
        return 0
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    names = _select(parser, args.suites)
    engines = tuple(e.strip() for e in (args.engines or "").split(",") if e.strip())
    options = Options(args.repeat, args.quick, args.json, args.torsion_module, engines)

    started = time.monotonic()
    machine = machine_info()  # before the run: the load average is the run's starting state
    reports, problems = _run_suites(names, options)

    stamp = datetime.now().strftime("%Y%m%dT%H%M%S")
    label = names[0] if len(names) == 1 else "+".join(names)
    if len(label) > 40:
        label = "all"
    path = options.json_path or RESULTS_DIR / f"{label}-{stamp}.json"
    document = {
        "created": stamp,
        "command": command_line(),
        "cwd": str(Path.cwd()),
        "options": {
            "repeat": options.repeat,
            "quick": options.quick,
            "engines": list(engines),
            "torsion_module": options.torsion_module,
        },
        "seconds": round(time.monotonic() - started, 1),
        "machine": machine,
        "suites": reports,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    document["source"] = str(path)

    # The server suites printed their own verdicts; the shared "1.5x Twisted" line is for
    # the in-process suites, which compare every case with Twisted. Case names carry
    # their suite when several share the line.
    cases = [
        (case["name"] if len(names) == 1 else f"{name}:{case['name']}", case)
        for name, suite_report in reports.items()
        if suite_report.get("kind") == "inprocess"
        for case in suite_report["cases"]
    ]
    print(f"\nresults: {path}")
    print(f"reproduce: {command_line()}")
    print(f"took {document['seconds']:.0f} s: "
          + ", ".join(f"{n} {r['seconds']:.0f} s" for n, r in reports.items()))
    if cases:
        print(target_line(cases))
    if args.report:
        _report([document], args.report_dir)
    for problem in problems:
        print(f"problem: {problem}")
    return 1 if args.strict and problems else 0


if __name__ == "__main__":
    sys.exit(main())
