"""``torsion bench`` as a user runs it: the console script in a subprocess.

The server runs on the test's reactor (every backend); the command runs in a
thread so the reactor keeps serving. Output structure is asserted, never a
timing figure.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from protocols.bench.cli import bench as bench_service
from protocols.bench.cli import count_argument, duration_argument
from reactor.cli import UsageError, build_parser, load_services

from .servers import KeyValue, RefusedPort, listen_echo, listen_protocol, listen_site

TORSION = str(Path(sys.executable).parent / "torsion")
TIMEOUT = 60.0
PROGRESS = re.compile(r"^torsion bench: +\d+\.\ds  [\d,]+ (requests|messages)  [\d,]+/s  "
                      r"[\d,]+ errors$")


def bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([TORSION, "bench", *args], capture_output=True, text=True,
                          timeout=TIMEOUT, stdin=subprocess.DEVNULL)


JSON_KEYS = {"schema", "mode", "target", "connections", "processes", "duration",
             "request_limit", "elapsed", "interrupted", "requests", "requests_per_second",
             "bytes_received", "bytes_sent", "bytes_received_per_second", "latency_us",
             "errors", "statuses"}


async def test_http_json_document(reactor: Any) -> None:
    port = listen_site(reactor)
    url = f"http://127.0.0.1:{port}/hello"
    done = await reactor.deferToThread(
        bench, "http", url, "-n", "200", "-c", "4", "--processes", "2", "--json", "-q",
        "-H", "X-From: test")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    doc = json.loads(done.stdout)
    assert set(doc) == JSON_KEYS
    assert doc["schema"] == "torsion-bench/1"
    assert (doc["mode"], doc["target"], doc["connections"], doc["processes"]) == (
        "http", url, 4, 2)
    assert (doc["duration"], doc["request_limit"], doc["interrupted"]) == (None, 200, False)
    assert doc["requests"] == 200
    assert doc["statuses"] == {"200": 200}
    assert doc["errors"] == {"connect": 0, "read": 0, "write": 0, "timeout": 0,
                             "protocol": 0, "mismatch": 0, "status": 0, "total": 0}
    assert set(doc["latency_us"]) == {"min", "mean", "p50", "p90", "p99", "p999", "max"}
    lat = doc["latency_us"]
    assert lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["p999"] <= lat["max"]
    assert all(isinstance(doc[k], (int, float)) for k in (
        "elapsed", "requests_per_second", "bytes_received", "bytes_sent",
        "bytes_received_per_second"))


async def test_echo_report_and_progress_lines(reactor: Any) -> None:
    port = listen_echo(reactor)
    done = await reactor.deferToThread(
        bench, "echo", f"127.0.0.1:{port}", "--size", "1K", "-c", "2", "-d", "1200ms",
        "--processes", "1")
    assert done.returncode == 0, done.stderr
    progress = done.stderr.splitlines()
    assert progress and all(PROGRESS.match(line) for line in progress), progress
    lines = done.stdout.splitlines()
    assert lines[0] == f"torsion bench echo 127.0.0.1:{port}"
    assert lines[1] == "  2 connections, 1 process, 1.2 s"
    assert re.match(r"  messages +[\d,]+ in \d+\.\d\d s, [\d,.]+/s$", lines[2])
    assert re.match(r"  latency +p50 \S+  p90 \S+  p99 \S+  max \S+  mean \S+$", lines[4])
    assert lines[-1] == "  errors      none"


async def test_line_report_counts_wrong_replies(reactor: Any) -> None:
    port = listen_protocol(reactor, KeyValue)
    done = await reactor.deferToThread(
        bench, "line", f"127.0.0.1:{port}", "--request", "GET nothing", "--expect",
        "^VALUE", "-n", "40", "-c", "2", "-q", "-t", "1")
    assert done.returncode == 0, done.stderr
    assert "requests    40 in " in done.stdout
    assert done.stdout.rstrip().endswith("errors      wrong reply 40")


def interrupted_run(args: list[str]) -> tuple[int, str, list[str]]:
    """Start a long run, wait for its first progress line, press Ctrl-C."""
    process = subprocess.Popen([TORSION, "bench", *args], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    try:
        assert process.stderr is not None
        first = process.stderr.readline()
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=TIMEOUT)
        return process.returncode, out, [first, *err.splitlines()]
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


async def test_ctrl_c_prints_the_partial_report_from_worker_processes(reactor: Any) -> None:
    port = listen_site(reactor)
    code, out, err = await reactor.deferToThread(
        interrupted_run, ["http", f"http://127.0.0.1:{port}/hello", "-c", "2", "-d", "60s",
                          "--processes", "2", "--json"])
    assert PROGRESS.match(err[0].rstrip("\n")), err
    assert code == 0, err
    doc = json.loads(out)
    assert doc["interrupted"] is True
    assert doc["requests"] > 0
    assert doc["requests"] == doc["statuses"]["200"]


async def test_ctrl_c_in_a_single_process_run(reactor: Any) -> None:
    port = listen_echo(reactor)
    code, out, err = await reactor.deferToThread(
        interrupted_run, ["echo", f"127.0.0.1:{port}", "-c", "2", "-d", "60s",
                          "--processes", "1"])
    assert code == 0, err
    assert "(interrupted)" in out.splitlines()[1]
    assert "errors      none" in out


def test_nothing_answering_exits_with_status_1() -> None:
    with RefusedPort() as port:
        done = bench("echo", f"127.0.0.1:{port}", "-n", "5", "-c", "1", "-q")
    assert done.returncode == 1
    assert "errors      connect 5" in done.stdout


def parse(*args: str) -> argparse.Namespace:
    """The ``torsion bench`` command line, parsed in this process."""
    return build_parser({"bench": bench_service}).parse_args(["bench", *args])


def test_a_usage_error_exits_with_status_2() -> None:
    done = bench("http", "https://127.0.0.1/")
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr == ("torsion bench: error: https://127.0.0.1/: https is not "
                           "supported yet; load the server over http\n")


@pytest.mark.parametrize("args, message", [
    (["http", "http://127.0.0.1:1/", "-d", "10x"], "must be a duration"),
    (["http", "http://127.0.0.1:1/", "-d", "0s"], "more than 0 seconds"),
    (["http", "http://127.0.0.1:1/", "-c", "0"], "from 1 to 100000"),
    (["http", "http://127.0.0.1:1/", "-n", "-3"], "whole number"),
    (["http", "http://127.0.0.1:1/", "--timeout", "soon"], "must be a duration"),
    (["echo", "127.0.0.1:1", "--size", "0"], "size in bytes"),
    (["echo", "127.0.0.1:1", "--port", "0"], "unrecognized arguments"),
    ([], "required: MODE"),
])
def test_bad_options(args: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=re.escape(message)):
        parse(*args)


@pytest.mark.parametrize("args, message", [
    (["http", "127.0.0.1:80"], "not an http:// URL"),
    (["http", "http://127.0.0.1:1/", "-H", "nocolon"], "Name: value"),
    (["http", "http://127.0.0.1:1/", "--body", "/nonexistent/file"], "--body"),
    (["http", "http://127.0.0.1:1/", "-X", "GE T"], "method"),
    (["echo", "localhost"], "HOST:PORT"),
    (["line", "127.0.0.1:1", "--expect", "("], "regular expression"),
    (["line", "127.0.0.1:1", "--request", "A\rB"], "one line"),
])
def test_bad_arguments(args: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        bench_service.main(parse(*args))


def test_listening_options_do_not_exist() -> None:
    # bench is a command service: the torsion command gives it no listening options.
    with pytest.raises(UsageError, match="unrecognized arguments: --port"):
        build_parser({"bench": bench_service}).parse_args(
            ["bench", "echo", "127.0.0.1:1", "--port", "5"])


def test_durations_and_counts() -> None:
    assert [duration_argument(t) for t in ("10", "10s", "500ms", "2m", "1h", "0.5s")] == [
        10.0, 10.0, 0.5, 120.0, 3600.0, 0.5]
    assert [count_argument(t) for t in ("200", "10k", "1M")] == [200, 10000, 1000000]
    args = parse("echo", "9", "--size", "4K", "-t", "3")
    assert (args.size, args.processes, args.duration, args.requests) == (4096, 3, None, None)


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    def helptext(*args: str) -> str:
        with pytest.raises(SystemExit):
            parse(*args, "--help")
        return capsys.readouterr().out

    top = helptext()
    for text in ("http URL", "echo HOST:PORT", "line HOST:PORT", "--processes", "examples:",
                 "usage: torsion bench [-h] {http,echo,line} ..."):
        assert text in top
    for hidden in ("--listen", "--port", "--workers", "--reactor", "--log-level"):
        assert hidden not in top
    http = helptext("http")
    for text in ("-c N, --connections N", "-d TIME, --duration TIME", "-n N, --requests N",
                 "--json", "--quiet", "-H 'NAME: VALUE'", "--method", "--body FILE",
                 "--timeout", "usage: torsion bench http"):
        assert text in http, text
    assert "--size" in helptext("echo")
    assert "--expect" in helptext("line")
    listing = build_parser(load_services()).format_help()
    assert re.search(r"^\s+bench\s+load-test a server", listing, re.M)
