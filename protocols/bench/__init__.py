"""``torsion bench``: a load generator for your own servers, and its Python API.

::

    torsion bench http http://127.0.0.1:8080/ -c 50 -d 10s
    torsion bench echo 127.0.0.1:8007 --size 64 -c 50 -d 10s
    torsion bench line 127.0.0.1:6379 --request PING --expect PONG -n 100k --json

Modes:

- ``http URL``: keep-alive HTTP/1.1 requests (``GET`` unless ``--method``;
  ``-H 'Name: value'`` adds headers, ``--body FILE`` a body), like wrk.
  Replies are framed by Content-Length, chunked encoding, or the end of the
  connection; ``Connection: close`` replies are followed by a new connection
  (not an error). http only: https is not supported yet.
- ``echo HOST:PORT``: each connection sends ``--size`` bytes, waits for the
  same bytes back (compared), and repeats (ping-pong).
- ``line HOST:PORT``: each connection sends ``--request`` + CRLF and waits for
  one reply line; ``--expect REGEX`` checks each reply (``re.search``).

Every mode keeps ``-c`` connections busy, one request in flight on each
(closed loop: a slow server gets fewer requests, as with wrk), for ``-d``
(``10s``, ``500ms``, ``2m``; default 10 s) or until ``-n`` requests have been
made, whichever comes first. A progress line goes to stderr every second
(``--quiet`` silences it), then the report to stdout. Ctrl-C ends the run
early and still prints the report (marked interrupted).

How fast: one Python process spends tens of microseconds of CPU per request
(about half of it in the kernel: send, recv, epoll), several times what wrk
spends, so it generates at most a few tens of thousands of requests a second;
the connections are split over worker processes, one per CPU by
default (``--processes N``; ``-t N`` is accepted for wrk users). On a machine
where the server under test runs too, the load generator competes with it for
the CPUs: give it fewer processes than CPUs, or run it on another machine, and
prefer the server's CPU time per request as the figure of merit.

What is measured:

- requests (messages): complete replies, right or wrong; requests per second
  over the whole run; bytes received (and sent).
- latency: from the request's first byte sent to its reply's last byte
  received, in microseconds, in a fixed-size histogram (1.6 % resolution,
  :mod:`protocols.bench.histogram`), so long runs take no more memory.
- errors by kind: ``connect`` (refused, failed or timed out connecting),
  ``read`` (reset, or closed before the reply was complete), ``write``,
  ``timeout`` (no complete reply within ``--timeout``, default 5 s),
  ``protocol`` (a reply that cannot be framed, or bytes nobody asked for),
  ``mismatch`` (echo: different bytes; line: no ``--expect`` match) and
  ``status`` (HTTP replies outside 2xx and 3xx, as wrk counts them;
  ``statuses`` counts every code). A
  failed connection is opened again (20 ms later after a failed connect); a
  failed request counts towards ``-n``, so a run against a dead server ends.

JSON (``--json``; :meth:`BenchResult.to_json`), schema ``torsion-bench/1``::

    {
      "schema": "torsion-bench/1",
      "mode": "http",                      # "http" | "echo" | "line"
      "target": "http://127.0.0.1:8080/",  # the URL or HOST:PORT as given
      "connections": 50,                   # in all processes
      "processes": 2,
      "duration": 10.0,                    # seconds asked for, or null
      "request_limit": null,               # -n, or null
      "elapsed": 10.002,                   # seconds the run took
      "interrupted": false,                # Ctrl-C ended it early
      "requests": 151234,                  # complete replies
      "requests_per_second": 15120.4,
      "bytes_received": 21173760,
      "bytes_sent": 8165000,
      "bytes_received_per_second": 2116953.2,
      "latency_us": {"min": 180, "mean": 3301.2, "p50": 3106, "p90": 4030,
                     "p99": 7200, "p999": 12100, "max": 21000},
      "errors": {"connect": 0, "read": 0, "write": 0, "timeout": 0, "protocol": 0,
                 "mismatch": 0, "status": 0, "total": 0},
      "statuses": {"200": 151234}          # HTTP replies by code; {} otherwise
    }

Python API (from an installed torsion or a checkout; the ``benchmarks/``
suites use it)::

    from protocols.bench import run_http, run_echo, run_line
    result = run_http("http://127.0.0.1:8080/", connections=50, duration=5)
    print(result.requests_per_second, result.latency.percentile(99), result.errors)
    print(result.format())            # the text report; result.to_json() the JSON

Each returns a :class:`BenchResult`; ``processes=1`` runs the load in the
calling thread (no child processes). Nothing here is imported by the
``torsion`` command until ``bench`` runs.
"""

from .histogram import Histogram
from .result import SCHEMA, BenchResult
from .runner import Progress, default_processes, run_echo, run_http, run_line

__all__ = ["SCHEMA", "BenchResult", "Histogram", "Progress", "default_processes",
           "run_echo", "run_http", "run_line"]
