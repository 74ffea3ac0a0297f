"""A server started as a real process (``torsion SERVICE ...``) for CLI tests.

Its first stdout line announces where it listens; the tests read the port
from it (servers listen on port 0). stderr is collected for assertions.
"""

from __future__ import annotations

import queue
import re
import signal
import subprocess
import threading
from pathlib import Path

__all__ = ["LISTENING", "TIMEOUT", "ConsoleServer"]

TIMEOUT = 30.0
#: What ``torsion`` prints per listener, e.g. "listening on tcp:127.0.0.1:4321 (reactor: uvloop)".
LISTENING = re.compile(r"listening on tcp:127\.0\.0\.1:(\d+) \(reactor: (\w+)\)$")


class ConsoleServer:
    """A server process: its first stdout line gives the port; stderr is kept.

    Attributes:
        port: the port read from the start-up line (group 1 of ``pattern``).
        match: that line's match (``match.group(2)`` is the reactor for ``LISTENING``).
        stderr: every stderr line so far.
    """

    def __init__(self, command: list[str], cwd: Path | None = None,
                 pattern: re.Pattern[str] = LISTENING) -> None:
        self.process = subprocess.Popen(
            command, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        self._lines: queue.Queue[str | None] = queue.Queue()
        self.stderr: list[str] = []
        self._threads = [threading.Thread(target=self._pump_out, daemon=True),
                         threading.Thread(target=self._pump_err, daemon=True)]
        for thread in self._threads:
            thread.start()
        line = self._lines.get(timeout=TIMEOUT)
        if line is None:
            self.process.wait(timeout=TIMEOUT)
            self._threads[1].join(timeout=TIMEOUT)
            raise AssertionError(f"exited {self.process.returncode}: {self.stderr}")
        match = pattern.search(line)
        assert match, f"not a start-up line: {line!r}"
        self.match = match
        self.port = int(match.group(1))
        self.url = f"http://127.0.0.1:{self.port}"

    def _pump_out(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def _pump_err(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.stderr.append(line.rstrip("\n"))

    def stop(self) -> list[str]:
        """SIGTERM, check the graceful exit, and return everything on stderr."""
        self.process.send_signal(signal.SIGTERM)
        assert self.process.wait(timeout=TIMEOUT) == 0, self.stderr
        self._threads[1].join(timeout=TIMEOUT)
        return self.stderr

    def close(self) -> None:
        """Kill the process if it still runs, and reap it."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=TIMEOUT)
        for thread in self._threads:
            thread.join(timeout=TIMEOUT)
