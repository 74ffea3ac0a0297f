"""Threads: the reactor's worker pool, and ``deferToThread``.

Blocking work (a DNS lookup, a slow disk, a C library without an async API)
runs in a worker thread so the reactor keeps serving::

    from reactor.threads import deferToThread
    d = deferToThread(hashlib.scrypt, password, salt=salt, n=2**14, r=8, p=1)

Workers are started on demand up to the pool's size and stopped when the
reactor shuts down. Each job runs in a copy of the submitting thread's
``contextvars`` context, as ``asyncio.to_thread`` does.

This module imports without choosing a reactor backend.
"""

from __future__ import annotations

import contextvars
import logging
import queue
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from deferred import Failure

if TYPE_CHECKING:
    from deferred import Deferred

__all__ = ["ThreadPool", "deferToThread"]

log = logging.getLogger("reactor")

_Job = tuple[contextvars.Context, Callable[..., Any], tuple[Any, ...], dict[str, Any],
             Callable[[bool, Any], None] | None]
_STOP: Any = None


class ThreadPool:
    """A bounded pool of worker threads (Twisted's ``ThreadPool`` API, trimmed).

    Args:
        maxthreads: the most threads that run at once.
        name: prefix of the threads' names.
    """

    def __init__(self, maxthreads: int = 10, name: str = "torsion-worker") -> None:
        if maxthreads < 1:
            raise ValueError("a thread pool needs at least one thread")
        self.max = maxthreads
        self.name = name
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._stopped = False

    def callInThread(self, func: Callable[..., Any], /, *args: Any, **kw: Any) -> None:
        """Run ``func(*args, **kw)`` in a worker; an exception is logged."""
        self.callInThreadWithCallback(None, func, *args, **kw)

    def callInThreadWithCallback(self, onResult: Callable[[bool, Any], None] | None,
                                 func: Callable[..., Any], /, *args: Any,
                                 **kw: Any) -> None:
        """Run ``func`` in a worker, then ``onResult(True, result)`` or
        ``onResult(False, failure)`` in that worker thread."""
        if self._stopped:
            raise RuntimeError("the thread pool has been stopped")
        self._jobs.put((contextvars.copy_context(), func, args, kw, onResult))
        with self._lock:
            if self._idle > 0:
                self._idle -= 1
                return
            if len(self._threads) < self.max:
                thread = threading.Thread(target=self._worker, daemon=True,
                                          name=f"{self.name}-{len(self._threads)}")
                self._threads.append(thread)
                thread.start()

    def _worker(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:  # _STOP
                return
            context, func, args, kw, on_result = job
            try:
                result = context.run(func, *args, **kw)
                ok = True
            except BaseException:
                result = Failure()
                ok = False
            if on_result is not None:
                try:
                    on_result(ok, result)
                except Exception:
                    log.exception("Error in thread pool result callback")
            elif not ok:
                log.error("Error in thread pool job %r", func,
                          exc_info=(result.type, result.value, result.getTracebackObject()))
            del job, result
            with self._lock:
                self._idle += 1

    def adjust(self, maxthreads: int) -> None:
        """Change the most threads that may run at once (new jobs only)."""
        if maxthreads < 1:
            raise ValueError("a thread pool needs at least one thread")
        self.max = maxthreads

    @property
    def workers(self) -> int:
        """How many worker threads exist now."""
        return len(self._threads)

    def stop(self, wait: bool = True) -> None:
        """Let queued jobs finish, then end every worker; ``wait`` for them to end."""
        self._stopped = True
        with self._lock:
            threads = list(self._threads)
            self._threads.clear()
        for _ in threads:
            self._jobs.put(_STOP)
        if wait:
            for thread in threads:
                thread.join()


def deferToThread(f: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Deferred[Any]:
    """Run ``f`` in the installed reactor's thread pool; a Deferred for its result."""
    from reactor import getReactor

    d: Deferred[Any] = getReactor().deferToThread(f, *args, **kwargs)
    return d
