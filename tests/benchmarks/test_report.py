"""The report generator and the shared method, on synthetic result files (no servers).

Nothing here runs a benchmark: the figures are made up, and what is checked is what the
page and the charts are built from them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from benchmarks import __main__ as cli
from benchmarks import report
from benchmarks._harness import Options, select_engines
from benchmarks._measure import CaseSpec, Run, Suite, Target, check_targets, summarize

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SERVER_ENGINES = ("torsion-select", "torsion-uvloop", "twisted-web", "aiohttp-asyncio")


def _server_case(name: str, base: float) -> dict[str, Any]:
    engines = {}
    for index, engine in enumerate(SERVER_ENGINES):
        cpu = base * (1 + index)
        engines[engine] = {
            "cpu": cpu, "rate": 1e6 / cpu, "p50_us": 500.0 + index, "p99_us": 900.0 + index,
            "spread": 0.02 * (index + 1),
            "paired_cpu": {"twisted-web": cpu / (base * 3)},
        }
    engines["nginx"] = {"error": "nginx did not listen"}
    return {
        "name": name, "description": f"the {name} case", "unit": "request",
        "cpu_label": "CPU µs/req", "rate_label": "req/s", "references": ["twisted-web"],
        "noise": {"reps": 3, "spread_median": 0.04, "spread_max": 0.08,
                  "spread_max_engine": "aiohttp-asyncio", "other_max": 0.05},
        "engines": engines,
    }


def _document(created: str = "20260101T000000") -> dict[str, Any]:
    inprocess = {
        "name": "callbacks-3", "description": "three callbacks", "unit": "op",
        "cpu_label": "µs/op", "rate_label": "ops/s", "references": ["twisted"],
        "noise": {"reps": 5, "spread_median": 0.01, "spread_max": 0.02,
                  "spread_max_engine": "torsion", "other_max": None},
        "engines": {
            "torsion": {"cpu": 1.0, "rate": 1e6, "spread": 0.01, "paired_cpu": {"twisted": 0.5}},
            "twisted": {"cpu": 2.0, "rate": 5e5, "spread": 0.02, "paired_cpu": {"twisted": 1.0}},
        },
    }
    return {
        "created": created,
        "command": "python -m benchmarks http deferred",
        "options": {"repeat": 3, "quick": False},
        "machine": {"cpu_model": "Synthetic CPU 9000", "cpu_count": 2, "cpus_usable": 2,
                    "kernel": "6.1.0-test", "python": "3.11.9 (main) [GCC 12]",
                    "python_build": {"config_args": "'--enable-optimizations'"},
                    "peer_versions": {"twisted": "24.3.0"}},
        "suites": {
            "http": {"kind": "server", "cases": [_server_case("hello", 10.0),
                                                 _server_case("file", 100.0)],
                     "skipped": {"uvloop-httptools": "httptools is not installed"},
                     "targets": [{"case": "hello", "engine": "torsion-select",
                                  "engine_measured": "torsion-select",
                                  "reference": "twisted-web", "figure": "cpu", "limit": 0.6,
                                  "ratio": 0.33, "met": True}]},
            "deferred": {"kind": "inprocess", "cases": [inprocess]},
        },
    }


def _charts_possible() -> None:
    # matplotlib comes with the bench extra (and CI's bench step installs it); the page
    # without charts is tested below either way.
    pytest.importorskip("matplotlib")


def test_report_writes_charts_and_names_every_engine(tmp_path: Path) -> None:
    _charts_possible()
    page = report.write_report([_document()], tmp_path, "python -m benchmarks --report")

    text = page.read_text(encoding="utf-8")
    charts = sorted(p.name for p in (tmp_path / "benchmarks").iterdir())
    assert charts == ["deferred-callbacks-3.png", "http-file.png", "http-hello.png", "http.png"]
    for chart in charts:
        assert (tmp_path / "benchmarks" / chart).read_bytes().startswith(PNG_MAGIC)
        assert f"(benchmarks/{chart})" in text
    for engine in (*SERVER_ENGINES, "torsion", "twisted"):
        assert engine in text, engine
    assert "nginx: error: nginx did not listen" in text
    assert "skipped uvloop-httptools: httptools is not installed" in text
    # The machine and the command that made the figures.
    for fact in ("Synthetic CPU 9000", "6.1.0-test", "3.11.9", "--enable-optimizations",
                 "python -m benchmarks http deferred", "twisted 24.3.0"):
        assert fact in text, fact
    # Paired ratios in the table, the noise line, the target verdict.
    assert "| **torsion-select** | 10.0 | 0.33x |" in text
    assert "worst 8.0% (aiohttp-asyncio)" in text
    assert "hello torsion-select / twisted-web cpu: 0.33x" in text


def test_report_without_matplotlib_still_writes_the_page(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(report, "_pyplot", lambda: None)
    page = report.write_report([_document()], tmp_path, "cmd")
    assert "matplotlib is not installed" in page.read_text(encoding="utf-8")
    assert not (tmp_path / "benchmarks").exists()


def test_newest_document_wins_a_suite() -> None:
    old, new = _document("20250101T000000"), _document("20260101T000000")
    new["suites"]["http"]["cases"][0]["description"] = "newer"
    merged = report.merge([new, old])
    assert merged["http"][0]["cases"][0]["description"] == "newer"


def test_report_from_json_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _charts_possible()
    results = tmp_path / "results.json"
    results.write_text(json.dumps(_document()), encoding="utf-8")
    out = tmp_path / "docs"
    assert cli.main(["--report-from", str(results), "--report-dir", str(out)]) == 0
    text = (out / "benchmarks.md").read_text(encoding="utf-8")
    assert str(results) in text
    assert (out / "benchmarks" / "http-hello.png").exists()
    assert "report:" in capsys.readouterr().out


def test_engines_option_maps_short_names(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = ["torsion-select", "torsion-uvloop", "twisted-web", "aiohttp-uvloop", "nginx"]
    known = [*defaults, "twisted-web-logged"]
    monkeypatch.delenv("TORSION_HTTP_ENGINES", raising=False)

    def pick(*names: str) -> list[str]:
        return select_engines("http", defaults, known, Options(engines=names))[0]

    assert pick("select", "twisted") == ["torsion-select", "twisted-web"]
    assert pick("uvloop") == ["torsion-uvloop", "aiohttp-uvloop"]
    assert pick("twisted-web-logged") == ["twisted-web-logged"]
    assert pick() == defaults
    # The older per-suite variable still chooses the base list.
    monkeypatch.setenv("TORSION_HTTP_ENGINES", "nginx,torsion-select")
    assert select_engines("http", defaults, known, Options(), "TORSION_HTTP_ENGINES")[0] == [
        "nginx", "torsion-select"]


def test_missing_peer_is_skipped_with_a_line(capsys: pytest.CaptureFixture[str]) -> None:
    engines, skipped = select_engines(
        "echo", ["torsion-select", "ghost"], ["torsion-select", "ghost"], Options(),
        requires={"ghost": ("no_such_module_for_torsion_tests",)})
    assert engines == ["torsion-select"]
    assert "no_such_module_for_torsion_tests is not installed" in skipped["ghost"]
    assert "echo: skipped ghost:" in capsys.readouterr().err


def test_summary_pairs_repetitions_and_checks_targets() -> None:
    spec = CaseSpec("hello", "GET /", "request", "CPU µs/req", "req/s")
    # CPU per request: torsion 10 then 20 µs, twisted 20 then 40: paired ratio 0.5 each
    # time although the spread is wide; twisted took twice as long: half the rate.
    runs = {
        "torsion-select": {1: Run(0.01, 1000, 1.0, 0.5, 0.0), 2: Run(0.02, 1000, 1.0, 0.5, 0.0)},
        "twisted-web": {1: Run(0.02, 1000, 2.0, 0.5, 0.0), 2: Run(0.04, 1000, 2.0, 0.5, 0.0)},
    }
    summary = summarize(spec, runs, ["twisted-web"])
    assert summary["torsion-select"]["cpu"] == pytest.approx(15.0)
    assert summary["torsion-select"]["paired_cpu"]["twisted-web"] == pytest.approx(0.5)
    assert summary["torsion-select"]["spread"] == pytest.approx(10 / 15)
    suite = Suite("http", [spec], lambda engine, step: {},
                  targets=[Target("hello", "torsion-best", "twisted-web", 0.6),
                           Target("hello", "torsion-select", "twisted-web", 2.5, "rate")])
    cpu, rate = check_targets(suite, {"hello": runs})
    assert (cpu["engine_measured"], cpu["met"]) == ("torsion-select", True)
    assert rate["ratio"] == pytest.approx(2.0) and rate["met"] is False


def test_missing_wrk_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    from benchmarks import _servers

    monkeypatch.setattr(_servers, "find_binary", lambda name: None)
    monkeypatch.setattr(_servers.os, "geteuid", lambda: 1000)  # not root: no apt-get run
    path, why = _servers.ensure_tool("wrk")
    assert path is None
    assert "sudo apt-get install -y wrk" in why


def test_noise_line_with_one_repetition_says_so() -> None:
    from benchmarks._measure import noise, noise_line

    spec = CaseSpec("hello", "GET /", "request", "CPU µs/req", "req/s")
    summary = summarize(spec, {"torsion-select": {1: Run(0.01, 1000, 1.0, 0.5, 0.25)}}, [])
    line = noise_line(noise(summary, 1))
    assert line.startswith("noise: 1 repetition, no spread")
    assert "25% of a core" in line


def test_a_real_run_writes_json_and_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _charts_possible()
    results = tmp_path / "run.json"
    argv = ["deferred", "--quick", "--repeat", "1", "--engines", "torsion,twisted",
            "--json", str(results), "--report", "--report-dir", str(tmp_path / "docs")]
    assert cli.main(argv) == 0
    document = json.loads(results.read_text(encoding="utf-8"))
    assert document["options"]["engines"] == ["torsion", "twisted"]
    assert document["machine"]["cpu_model"]
    cases = document["suites"]["deferred"]["cases"]
    assert [set(c["engines"]) for c in cases] == [{"torsion", "twisted"}] * len(cases)
    page = (tmp_path / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    assert "### deferred chain-10000" in page
    assert (tmp_path / "docs" / "benchmarks" / "deferred.png").exists()
    assert "[deferred case 7/7] chain-10000: rep 1/1" in capsys.readouterr().err
