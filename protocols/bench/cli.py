"""``torsion bench``: the load generator's command line (see :mod:`protocols.bench`).

::

    torsion bench http http://127.0.0.1:8080/ -c 50 -d 10s
    torsion bench echo 127.0.0.1:8007 --size 64 -c 50 -d 10s --json
    torsion bench line 127.0.0.1:6379 --request PING --expect PONG -n 100000

Registered as the ``bench`` entry point of ``torsion.services``. It listens
on nothing, so it is a *command* service (``reactor.cli``): it has
:meth:`BenchService.main` instead of ``build``, the ``torsion`` command gives
it none of the listening options and returns what ``main`` returns as the
exit status.

Exit status: 0 after a run that got at least one reply (errors or not, and
also after Ctrl-C, which prints the partial report); 1 when not a single
reply came back; 2 for a usage error.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import textwrap
from typing import Any

from reactor.cli import seconds_argument

__all__ = ["BenchService", "bench", "count_argument", "duration_argument"]

_DURATION = re.compile(r"\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(ms|s|m|h)?\s*")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
_COUNT = re.compile(r"\s*([0-9]+)\s*([kKmM]?)\s*")
_SIZE = re.compile(r"\s*([0-9]+)\s*([kKmM]?)(?:i?[bB])?\s*")

def duration_argument(text: str) -> float:
    """argparse type: a positive duration, ``10``, ``10s``, ``500ms``, ``2m`` or ``1h``."""
    match = _DURATION.fullmatch(text)
    if match is None:
        raise argparse.ArgumentTypeError(
            f"must be a duration such as 10s, 500ms or 2m, got {text!r}")
    seconds = seconds_argument(match.group(1)) * _DURATION_UNITS[match.group(2)]
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, got {text!r}")
    return seconds


def count_argument(text: str) -> int:
    """argparse type: a count of 1 or more: ``200``, ``10k`` (10,000), ``1M``."""
    match = _COUNT.fullmatch(text)
    if match is None or int(match.group(1)) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of 1 or more, got {text!r}")
    return int(match.group(1)) * {"": 1, "k": 1000, "m": 1000000}[match.group(2).lower()]


def _size_argument(text: str) -> int:
    """argparse type: a message size in bytes, ``64``, ``4K``, ``1M`` (binary units)."""
    match = _SIZE.fullmatch(text)
    if match is None or int(match.group(1)) < 1:
        raise argparse.ArgumentTypeError(f"must be a size in bytes such as 64 or 4K, "
                                         f"got {text!r}")
    return int(match.group(1)) * {"": 1, "k": 1024, "m": 1024 ** 2}[match.group(2).lower()]


def _connections_argument(text: str) -> int:
    if not (text.isascii() and text.isdigit() and 1 <= int(text) <= 100_000):
        raise argparse.ArgumentTypeError(f"must be from 1 to 100000, got {text!r}")
    return int(text)


def _processes_argument(text: str) -> int:
    if not (text.isascii() and text.isdigit() and 1 <= int(text) <= 1024):
        raise argparse.ArgumentTypeError(f"must be from 1 to 1024, got {text!r}")
    return int(text)


def _fill(text: str) -> str:
    return textwrap.fill(text, 79)


_MODES_HELP = """\
usage by mode:
  http URL        keep-alive HTTP/1.1 requests (GET unless --method), like wrk
  echo HOST:PORT  send --size bytes, wait for the same bytes back, repeat
  line HOST:PORT  send a request line (CRLF), wait for one reply line, repeat

'torsion bench MODE --help' lists a mode's options. Every mode keeps -c
connections busy (one request in flight each) for -d seconds (default 10s) or
until -n requests are done, prints a progress line on stderr every second
(unless --quiet), then a report on stdout, or a JSON document with --json.
Ctrl-C stops early and still prints the report. The load comes from one
process per CPU (--processes N to choose; one Python process generates a
few tens of thousands of requests a second at most).

examples:
  torsion bench http http://127.0.0.1:8080/ -c 50 -d 10s
  torsion bench http http://127.0.0.1:8080/api -H 'Accept: application/json' --json
  torsion bench echo 127.0.0.1:8007 --size 64 -c 50 -d 5s
  torsion bench line 127.0.0.1:6379 --request PING --expect PONG -n 100k
"""

_COMMON_HELP = """\
The report gives replies per second, bytes received per second, latency
percentiles (from the first byte of a request sent to the last byte of its
reply) and errors by kind: connect (refused, unreachable, timed out), read
(reset, or closed before the reply was complete), write, timeout (no reply
within --timeout), protocol (a reply that cannot be framed), wrong reply
(echo: different bytes; line: no --expect match) and HTTP 4xx/5xx. A
connection that fails is opened again; -n counts failed requests too, so a
run against a dead server ends. Exit status: 0 after a run with at least one
reply, 1 when nothing replied, 2 for a usage error.
"""


class BenchService:
    """The ``bench`` subcommand: generate load against a server and report on it."""

    name = "bench"
    help = "load-test a server (HTTP, echo or a line protocol): throughput, latency, errors"
    description = ("Generates load against a server, yours or ours: keep-alive HTTP "
                   "requests, echo round trips or request/response lines, and reports "
                   "throughput, latency percentiles and errors.")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """The modes (``http``, ``echo``, ``line``) and their options."""
        parser.formatter_class = argparse.RawDescriptionHelpFormatter
        parser.epilog = _MODES_HELP
        parser.usage = "torsion bench [-h] {http,echo,line} ..."
        modes = parser.add_subparsers(dest="bench_mode", metavar="MODE", required=True,
                                      title="modes")
        raw = argparse.RawDescriptionHelpFormatter
        http = modes.add_parser(
            "http", prog="torsion bench http", help="keep-alive HTTP/1.1 load, like wrk",
            formatter_class=raw,
            description=_fill("Sends HTTP/1.1 requests over keep-alive connections, each "
                              "connection sending its next request when the reply to the "
                              "last is complete."), epilog=_COMMON_HELP + """
examples:
  torsion bench http http://127.0.0.1:8080/ -c 50 -d 10s
  torsion bench http http://127.0.0.1:8080/ -n 100k --processes 4 --json
  torsion bench http http://127.0.0.1:8080/upload --method POST --body data.bin \\
      -H 'Content-Type: application/octet-stream'
""")
        http.add_argument("url", metavar="URL", help="an http:// URL (https is not "
                                                      "supported yet)")
        group = http.add_argument_group("request")
        group.add_argument("--method", "-X", default="GET", metavar="M",
                           help="the request method (default GET)")
        group.add_argument("-H", "--header", action="append", default=[],
                           metavar="'NAME: VALUE'",
                           help="add a request header (repeatable); Host and User-Agent "
                                "replace ours")
        group.add_argument("--body", metavar="FILE",
                           help="send FILE's bytes as the request body ('-': stdin)")
        self._common(http)

        echo = modes.add_parser(
            "echo", prog="torsion bench echo", help="echo round trips (ping-pong)",
            formatter_class=raw,
            description=_fill("Each connection sends a SIZE-byte message, waits for the "
                              "same bytes to come back (they are compared), and sends "
                              "again."),
            epilog=_COMMON_HELP + """
examples:
  torsion bench echo 127.0.0.1:8007 --size 64 -c 50 -d 10s
  torsion bench echo [::1]:8007 --size 16K -c 10 -n 50k
""")
        echo.add_argument("address", metavar="HOST:PORT",
                          help="the echo server (a bare PORT means 127.0.0.1:PORT)")
        echo.add_argument("--size", "-s", type=_size_argument, default=64, metavar="SIZE",
                          help="bytes per message, e.g. 64 or 4K (default 64)")
        self._common(echo)

        line = modes.add_parser(
            "line", prog="torsion bench line", help="request/response lines (CRLF)",
            formatter_class=raw,
            description=_fill("Each connection sends the request line (with CRLF), waits "
                              "for one reply line (ending in LF or CRLF), and sends again."),
            epilog=_COMMON_HELP + """
examples:
  torsion bench line 127.0.0.1:6379 --request PING --expect '^\\+PONG$'
  torsion bench line 127.0.0.1:11211 --request 'get key' --expect '^(VALUE|END)' -c 20
""")
        line.add_argument("address", metavar="HOST:PORT",
                          help="the server (a bare PORT means 127.0.0.1:PORT)")
        line.add_argument("--request", "-r", default="PING", metavar="TEXT",
                          help="the request line, without its CRLF (default PING)")
        line.add_argument("--expect", "-e", metavar="REGEX",
                          help="a regular expression every reply line must contain "
                               "(re.search); other replies count as wrong")
        self._common(line)

    def _common(self, parser: argparse.ArgumentParser) -> None:
        load = parser.add_argument_group("load")
        load.add_argument("-c", "--connections", type=_connections_argument, default=50,
                          metavar="N", help="connections kept busy (default 50)")
        load.add_argument("-d", "--duration", type=duration_argument, metavar="TIME",
                          help="how long to run: 10s, 500ms, 2m (default 10s, or no limit "
                               "with -n)")
        load.add_argument("-n", "--requests", type=count_argument, metavar="N",
                          help="stop after N requests, failed ones included (e.g. 200, 10k)")
        load.add_argument("--processes", "-t", "--threads", dest="processes",
                          type=_processes_argument, metavar="N",
                          help="processes generating the load (default: one per CPU, "
                               "at most one per connection); -t/--threads is an alias, "
                               "for wrk users")
        load.add_argument("--timeout", type=duration_argument, default=5.0, metavar="TIME",
                          help="a connect or reply taking longer fails (default 5s)")
        out = parser.add_argument_group("output")
        out.add_argument("--json", action="store_true",
                         help="print the result as JSON (schema: 'pydoc protocols.bench')")
        out.add_argument("--quiet", "-q", action="store_true",
                         help="no progress lines on stderr")

    def main(self, args: argparse.Namespace) -> int:
        """Run the benchmark the options describe; print the report; the exit status.

        Raises:
            ValueError: a bad argument.
        """
        from .runner import run_echo, run_http, run_line
        from .targets import parse_header

        duration = args.duration
        if duration is None and args.requests is None:
            duration = 10.0
        common: dict[str, Any] = dict(
            connections=args.connections, duration=duration, requests=args.requests,
            processes=args.processes, timeout=args.timeout, stop_on_interrupt=True)
        mode = args.bench_mode
        unit = "messages" if mode == "echo" else "requests"
        if not args.quiet:
            common["progress"] = lambda p: print(f"torsion bench: {p.format(unit)}",
                                                 file=sys.stderr, flush=True)
        if mode == "http":
            headers = [parse_header(h) for h in args.header]
            result = run_http(args.url, method=args.method, headers=headers,
                              body=self._body(args.body), **common)
        elif mode == "echo":
            result = run_echo(args.address, size=args.size, **common)
        else:
            result = run_line(args.address, args.request, expect=args.expect, **common)
        if args.json:
            print(json.dumps(result.to_json(), indent=2), flush=True)
        else:
            print(result.format(), flush=True)
        return 0 if result.requests else 1

    @staticmethod
    def _body(path: str | None) -> bytes:
        if path is None:
            return b""
        if path == "-":
            return sys.stdin.buffer.read()
        try:
            with open(path, "rb") as f:
                return f.read()
        except OSError as e:
            raise ValueError(f"--body {path}: {e.strerror or e}") from None

    def __repr__(self) -> str:
        return "<torsion service 'bench'>"


bench = BenchService()
