"""Command line: ``python -m benchmarks [--quick] [--repeat N] [--json PATH] SUITE...``."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
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
    target_line,
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Time torsion against Twisted, interleaved in one process.",
    )
    parser.add_argument(
        "suites", nargs="*", metavar="SUITE", help=f"one or more of: {', '.join(SUITES)}, or 'all'"
    )
    parser.add_argument("--list", action="store_true", help="list the suites and exit")
    parser.add_argument(
        "--repeat",
        type=int,
        default=5,
        metavar="N",
        help="timed repetitions per case and engine (default 5)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="~0.03 s repetitions instead of ~0.2 s (a smoke run)"
    )
    parser.add_argument(
        "--json",
        type=Path,
        metavar="PATH",
        help="write results here instead of benchmarks/results/",
    )
    parser.add_argument(
        "--torsion-module",
        metavar="MODULE",
        help="debug: run the torsion slot on another module, e.g. "
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


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.list:
        for name, module in SUITES.items():
            print(f"{name:10} {importlib.import_module(module).DESCRIPTION}")
        return 0
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    names = _select(parser, args.suites)
    options = Options(args.repeat, args.quick, args.json, args.torsion_module)

    reports: dict[str, dict[str, Any]] = {}
    for name in names:
        try:
            reports[name] = importlib.import_module(SUITES[name]).run(options)
        except Unavailable as exc:
            print(f"{name}: cannot run: {exc}", file=sys.stderr)
            return 2

    stamp = datetime.now().strftime("%Y%m%dT%H%M%S")
    label = names[0] if len(names) == 1 else "+".join(names)
    path = options.json_path or RESULTS_DIR / f"{label}-{stamp}.json"
    document = {
        "created": stamp,
        "command": command_line(),
        "cwd": str(Path.cwd()),
        "options": {
            "repeat": options.repeat,
            "quick": options.quick,
            "torsion_module": options.torsion_module,
        },
        "machine": machine_info(),
        "suites": reports,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")

    # A suite with targets of its own (echo: CPU ratios against named peers)
    # printed its verdict already; the shared "1.5x Twisted" line is for the
    # suites that compare every case with Twisted.
    # Case names carry their suite only when several suites share the verdict.
    cases = [
        (case["name"] if len(names) == 1 else f"{name}:{case['name']}", case)
        for name, report in reports.items() if "targets" not in report
        for case in report["cases"]
    ]
    print(f"\nresults: {path}")
    print(f"reproduce: {command_line()}")
    if cases:
        print(target_line(cases))
    return 0


if __name__ == "__main__":
    sys.exit(main())
