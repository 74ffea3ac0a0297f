"""The figures of a ``torsion bench`` run: :class:`BenchResult`, as text or JSON."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ._engine import ERROR_KINDS, Outcome
from .histogram import Histogram

__all__ = ["PERCENTILES", "SCHEMA", "BenchResult", "format_latency"]

#: The ``schema`` field of the JSON document; bumped when a field changes meaning.
SCHEMA = "torsion-bench/1"
#: Latency percentiles reported, with their JSON names.
PERCENTILES = (("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p999", 99.9))

_UNITS = {"http": "requests", "echo": "messages", "line": "requests"}


@dataclass
class BenchResult:
    """What a run measured, with what was asked.

    Attributes:
        mode: ``"http"``, ``"echo"`` or ``"line"``.
        target: the URL or ``HOST:PORT``.
        connections: connections kept busy, in all processes.
        processes: load-generating processes.
        duration: the seconds asked for (None with only a request count).
        request_limit: the request count asked for (``-n``), or None.
        outcome: the figures (see the properties).
    """

    mode: str
    target: str
    connections: int
    processes: int
    duration: float | None
    request_limit: int | None
    outcome: Outcome

    @property
    def requests(self) -> int:
        """Complete replies received (right or wrong: 4xx/5xx and mismatches count too)."""
        return self.outcome.requests

    @property
    def elapsed(self) -> float:
        """Seconds the run took (the slowest process's)."""
        return self.outcome.elapsed

    @property
    def interrupted(self) -> bool:
        """True when Ctrl-C (or a stop) ended the run early."""
        return self.outcome.interrupted

    @property
    def requests_per_second(self) -> float:
        """Replies per second over the whole run."""
        return self.requests / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def bytes_per_second(self) -> float:
        """Bytes received per second."""
        return self.outcome.bytes_received / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def latency(self) -> Histogram:
        """Latencies in microseconds, from the first byte sent to the last received."""
        return self.outcome.latency

    @property
    def errors(self) -> dict[str, int]:
        """Errors by kind (:data:`~protocols.bench._engine.ERROR_KINDS`)."""
        return self.outcome.errors

    @property
    def error_count(self) -> int:
        """All errors together."""
        return sum(self.outcome.errors.values())

    @property
    def statuses(self) -> dict[int, int]:
        """HTTP: replies by status code."""
        return self.outcome.statuses

    def to_json(self) -> dict[str, Any]:
        """The JSON document ``--json`` prints (schema: the package docstring)."""
        h = self.latency
        latency: dict[str, Any] = {"min": h.min, "mean": round(h.mean, 1)}
        latency.update((name, h.percentile(p)) for name, p in PERCENTILES)
        latency["max"] = h.max
        errors: dict[str, int] = {kind: self.errors.get(kind, 0) for kind in ERROR_KINDS}
        errors["total"] = self.error_count
        return {
            "schema": SCHEMA,
            "mode": self.mode,
            "target": self.target,
            "connections": self.connections,
            "processes": self.processes,
            "duration": self.duration,
            "request_limit": self.request_limit,
            "elapsed": round(self.elapsed, 6),
            "interrupted": self.interrupted,
            "requests": self.requests,
            "requests_per_second": round(self.requests_per_second, 1),
            "bytes_received": self.outcome.bytes_received,
            "bytes_sent": self.outcome.bytes_sent,
            "bytes_received_per_second": round(self.bytes_per_second, 1),
            "latency_us": latency,
            "errors": errors,
            "statuses": {str(code): n for code, n in sorted(self.statuses.items())},
        }

    def format(self) -> str:
        """The plain-text report."""
        unit = _UNITS.get(self.mode, "requests")
        h = self.latency
        how = (f"{self.duration:g} s" if self.duration is not None else "") + (
            f"{', ' if self.duration is not None else ''}at most {self.request_limit:,} {unit}"
            if self.request_limit is not None else "")
        lines = [
            f"torsion bench {self.mode} {self.target}",
            f"  {self.connections} connections, {self.processes} "
            f"process{'es' if self.processes != 1 else ''}, {how}"
            + (" (interrupted)" if self.interrupted else ""),
            f"  {unit:<12}{self.requests:,} in {self.elapsed:.2f} s, "
            f"{self.requests_per_second:,.1f}/s",
            f"  {'received':<12}{_bytes(self.outcome.bytes_received)}, "
            f"{_bytes(self.bytes_per_second)}/s (sent {_bytes(self.outcome.bytes_sent)})",
        ]
        if h.count:
            figures = "  ".join(f"{name} {format_latency(h.percentile(p))}"
                                for name, p in PERCENTILES[:3])
            lines.append(f"  {'latency':<12}{figures}  max {format_latency(h.max)}  "
                         f"mean {format_latency(round(h.mean))}")
        else:
            lines.append(f"  {'latency':<12}no replies")
        if self.mode == "http" and self.statuses:
            lines.append(f"  {'statuses':<12}" + ", ".join(
                f"{code}: {n:,}" for code, n in sorted(self.statuses.items())))
        failed = [(kind, n) for kind, n in self.errors.items() if n]
        lines.append(f"  {'errors':<12}" + (", ".join(
            f"{_ERROR_NAMES.get(kind, kind)} {n:,}" for kind, n in failed) if failed else "none"))
        return "\n".join(lines)


_ERROR_NAMES = {"status": "HTTP 4xx/5xx", "mismatch": "wrong reply"}


def format_latency(us: float) -> str:
    """A latency in µs, in the unit that suits it: ``850us``, ``3.21ms``, ``1.20s``."""
    if us < 1000:
        return f"{us:.0f}us"
    if us < 1_000_000:
        return f"{us / 1000:.2f}ms"
    return f"{us / 1_000_000:.2f}s"


def _bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")
