"""A load worker process: ``python -m protocols.bench._worker`` (started by the runner).

stdin: one JSON line (the :class:`~protocols.bench._engine.Workload`), then
``go``; later ``stop`` or EOF ends the run early. stdout: JSON lines,
``{"ready": true}``, ``{"progress": [requests, errors]}`` four times a
second, and ``{"result": {...}}`` (an :class:`~protocols.bench._engine.Outcome`).
SIGINT (Ctrl-C reaches the whole process group) stops the run gracefully: the
parent prints the partial report.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from typing import Any

from ._engine import Engine, Outcome, Workload


def _read_line() -> bytes:
    """One line from stdin, read unbuffered (what follows is the engine's to read)."""
    data = b""
    while not data.endswith(b"\n"):
        chunk = os.read(0, 1)
        if not chunk:
            raise SystemExit(1)
        data += chunk
    return data


def _send(message: dict[str, Any]) -> None:
    os.write(1, json.dumps(message).encode() + b"\n")


def main() -> int:
    """Run one workload as told on stdin; report on stdout."""
    workload = Workload.from_json(json.loads(_read_line()))
    engine = Engine(workload, progress=_progress, progress_every=0.25, control=0)
    signal.signal(signal.SIGINT, lambda signum, frame: engine.stop())
    _send({"ready": True})
    if _read_line().strip() != b"go":
        return 1
    outcome = engine.run()
    outcome.interrupted = engine.stopping  # told to stop (or SIGINT) before the end
    _send({"result": outcome.to_json()})
    return 0


def _progress(outcome: Outcome, elapsed: float) -> None:
    _send({"progress": [outcome.requests, sum(outcome.errors.values())]})


if __name__ == "__main__":
    sys.exit(main())
