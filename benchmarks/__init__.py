"""Runnable benchmark suites for torsion: ``python -m benchmarks SUITE [SUITE...]``.

``SUITES`` maps each suite name to the module that implements it. A suite module
provides ``DESCRIPTION: str`` and ``run(options: Options) -> dict`` which prints its own
table and returns a JSON-ready report (``{"engines": ..., "cases": [...]}`` with one
record per case as built by ``benchmarks._measure.run_suite`` for a server suite or
``benchmarks._harness.compare`` in-process; ``benchmarks/README.md`` says how to add
one). Modules are imported only when their suite runs, so one suite's missing peer
library never breaks another.
"""

SUITES: dict[str, str] = {
    "deferred": "benchmarks.deferred_suite",
    "echo": "benchmarks.echo_suite",
    "http": "benchmarks.http_suite",
    "xmlrpc": "benchmarks.xmlrpc_suite",
    "ftp": "benchmarks.ftp_suite",
    "scale": "benchmarks.scale_suite",
}
