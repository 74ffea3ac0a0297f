"""Waking a sleeping selector from another thread.

One end of a socket pair sits in the selector; ``wake()`` writes a byte to
the other. A flag keeps it to one byte per sleep, so a thread calling
``callFromThread`` in a tight loop never fills the pipe.
"""

from __future__ import annotations

import socket


class Waker:
    """A socket pair whose reading end makes ``select()`` return."""

    def __init__(self) -> None:
        self._reader, self._writer = socket.socketpair()
        self._reader.setblocking(False)
        self._writer.setblocking(False)
        self._pending = False

    def fileno(self) -> int:
        return self._reader.fileno()

    def wake(self) -> None:
        """Make the selector return (safe from any thread, cheap when repeated)."""
        if self._pending:
            return
        self._pending = True
        try:
            self._writer.send(b"\0")
        except (BlockingIOError, InterruptedError):
            pass  # already full: the reader will wake anyway
        except OSError:
            pass  # closed during shutdown

    def drain(self) -> None:
        """Empty the pipe (called in the reactor thread when it is readable)."""
        try:
            while self._reader.recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass
        # Only now: a wake() between clearing the flag and emptying the pipe
        # would have its byte read away while the flag stayed set, and every
        # later wake() would then skip writing: a lost wake-up.
        self._pending = False

    def close(self) -> None:
        self._reader.close()
        self._writer.close()
