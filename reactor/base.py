"""What every reactor backend shares: run/stop, system events, thread calls.

A backend (``SelectorReactor``, ``AsyncioReactor``) supplies the loop itself
through five methods:

    seconds()          the reactor's clock (monotonic)
    callLater(...)     a timed call, as a DelayedCall
    _run_loop()        run until ``_exit_loop()`` is called
    _exit_loop()       make ``_run_loop`` return soon
    _wake()            wake the loop from another thread

and everything else here is written once: the ``startup``/``shutdown`` system
events with their three phases, ``callWhenRunning``, the thread-call queue
behind ``callFromThread``, the thread pool behind ``callInThread`` and
``deferToThread``, and the rule that reactors are ordinary objects: several
may exist (one per thread), and a stopped reactor may run again.

The life of a reactor::

    run() -> fire "startup" (before, during, after) -> loop ...
    stop() -> fire "shutdown": before (its Deferreds are waited for),
              during (connections closed, thread pool stopped), after
           -> loop exits -> run() returns; run() may be called again
"""

from __future__ import annotations

import builtins
import collections
import contextvars
import logging
import signal
import threading
from collections.abc import Callable
from typing import Any

from deferred import Deferred, DeferredList, Failure, maybeDeferred
from reactor.error import ReactorAlreadyRunning, ReactorNotRunning
from reactor.threads import ThreadPool
from reactor.timers import DelayedCall

__all__ = ["ReactorBase"]

log = logging.getLogger("reactor")

_PHASES = ("before", "during", "after")


class _SystemEvent:
    """One system event ("startup" or "shutdown") and its three phases of triggers.

    Triggers are consumed when the event fires, so each ``run()`` fires the
    triggers registered since the last one (that is what makes a reactor
    restartable). Deferreds returned by "before" triggers are waited for
    before "during" runs.
    """

    def __init__(self) -> None:
        self.triggers: dict[str, list[tuple[Callable[..., Any], tuple[Any, ...],
                                             dict[str, Any]]]] = {p: [] for p in _PHASES}
        self.state = "idle"  # idle -> before -> during/after -> idle

    def add(self, phase: str, f: Callable[..., Any], args: tuple[Any, ...],
            kw: dict[str, Any]) -> tuple[str, tuple[Any, ...]]:
        if phase not in self.triggers:
            raise KeyError(f"phase must be one of {_PHASES}, not {phase!r}")
        entry = (f, args, kw)
        # A trigger added while its phase is running in this firing runs in
        # it ("before" is drained in a loop); one added after its phase has
        # passed waits for the next firing, since triggers are consumed.
        self.triggers[phase].append(entry)
        return (phase, entry)

    def remove(self, handle: tuple[str, tuple[Any, ...]]) -> None:
        phase, entry = handle
        try:
            self.triggers[phase].remove(entry)
        except (KeyError, ValueError):
            raise ValueError(f"no such trigger: {handle!r}") from None

    def fire(self, done: Callable[[], None] | None = None) -> None:
        """Run the triggers: "before" (waiting for its Deferreds), then the rest."""
        self.state = "before"
        waits: list[Deferred[Any]] = []
        before = self.triggers["before"]
        while before:
            f, args, kw = before.pop(0)
            waits.append(maybeDeferred(f, *args, **kw).addErrback(_log_trigger_failure))
        if waits:
            DeferredList(waits).addCallback(lambda _: self._finish(done))
        else:
            self._finish(done)

    def _finish(self, done: Callable[[], None] | None) -> None:
        for phase in ("during", "after"):
            self.state = phase
            triggers = self.triggers[phase]
            while triggers:
                f, args, kw = triggers.pop(0)
                try:
                    f(*args, **kw)
                except Exception:
                    log.exception("Error in %s system event trigger %r", phase, f)
        self.state = "idle"
        if done is not None:
            done()


def _log_trigger_failure(failure: Failure) -> None:
    log.error("Error in a 'before' system event trigger",
              exc_info=(failure.type, failure.value, failure.getTracebackObject()))


class ReactorBase:
    """The backend-independent half of a reactor (see the module docstring).

    Attributes:
        running: True between the start of ``run()`` and the end of shutdown.
    """

    #: Seconds a graceful stop waits for a "before shutdown" trigger; used by
    #: the signal handlers of a later layer.
    _thread_pool_size = 10

    def __init__(self) -> None:
        self.running = False
        self._stopping = False
        self._startup_done = False
        self._events = {"startup": _SystemEvent(), "shutdown": _SystemEvent()}
        self._thread_calls: collections.deque[
            tuple[contextvars.Context, Callable[..., Any], tuple[Any, ...], dict[str, Any]]
        ] = collections.deque()
        self._thread_pool: ThreadPool | None = None
        self._thread_ident: int | None = None
        self._old_signal_handlers: dict[int, Any] = {}

    # -- the backend's part ------------------------------------------------------

    def seconds(self) -> float:
        """The reactor's current time (monotonic seconds)."""
        raise NotImplementedError

    def callLater(self, delay: float, callable: Callable[..., Any], /,
                  *args: Any, **kw: Any) -> DelayedCall:
        """Call ``callable(*args, **kw)`` in ``delay`` seconds; returns a DelayedCall."""
        raise NotImplementedError

    def getDelayedCalls(self) -> list[DelayedCall]:
        """The pending DelayedCalls."""
        raise NotImplementedError

    def _run_loop(self) -> None:
        raise NotImplementedError

    def _exit_loop(self) -> None:
        raise NotImplementedError

    def _wake(self) -> None:
        raise NotImplementedError

    def _close_all_connections(self) -> None:
        """Close every connection and listening port (the "during shutdown" step)."""

    # -- running and stopping --------------------------------------------------

    def run(self, installSignalHandlers: bool = True) -> None:
        """Run until ``stop()`` and the shutdown that follows it have finished.

        Args:
            installSignalHandlers: stop gracefully on SIGINT/SIGTERM (only
                possible in the main thread; pass False when embedding).
        """
        self.startRunning(installSignalHandlers)
        try:
            self._run_loop()
        finally:
            self._finish_run()

    def startRunning(self, installSignalHandlers: bool = True) -> None:
        """Do everything ``run()`` does before the loop (for embedding backends)."""
        if self.running:
            raise ReactorAlreadyRunning("the reactor is already running")
        self.running = True
        self._stopping = False
        self._startup_done = False
        self._thread_ident = threading.get_ident()
        if installSignalHandlers:
            self._install_signal_handlers()

        def started() -> None:
            # From here on callWhenRunning calls at once, as in Twisted, where
            # the reactor counts as running from the "during" phase on.
            self._startup_done = True

        startup = self._events["startup"]
        startup.triggers["during"].insert(0, (started, (), {}))
        # Startup triggers run from inside the loop, so a "before startup"
        # trigger's Deferred can wait for I/O.
        self.callLater(0, startup.fire)

    def stop(self) -> None:
        """Stop the reactor: fire the shutdown triggers, close connections, return from run().

        Raises:
            ReactorNotRunning: it is not running, or already stopping.
        """
        if not self.running or self._stopping:
            raise ReactorNotRunning("Can't stop reactor that isn't running.")
        self._stopping = True
        shutdown = self._events["shutdown"]
        shutdown.add("during", self._shutdown_during, (), {})
        self.callLater(0, shutdown.fire, self._exit_loop)

    def crash(self) -> None:
        """Stop the loop at once, without the shutdown triggers (for tests)."""
        self._stopping = True
        self._exit_loop()

    def _finish_run(self) -> None:
        self._restore_signal_handlers()
        self.running = False
        self._stopping = False
        self._thread_ident = None

    def _shutdown_during(self) -> None:
        self._close_all_connections()
        if self._thread_pool is not None:
            self._thread_pool.stop()
            self._thread_pool = None

    # -- system events --------------------------------------------------------

    def addSystemEventTrigger(self, phase: str, eventType: str,
                              callable: Callable[..., Any], /,
                              *args: Any, **kw: Any) -> Any:
        """Call ``callable`` when ``eventType`` ("startup"/"shutdown") reaches ``phase``.

        A "before" trigger may return a Deferred; the next phase waits for it.
        Returns an ID for ``removeSystemEventTrigger``.
        """
        if not builtins.callable(callable):
            raise TypeError(f"{callable!r} is not callable")
        event = self._events.get(eventType)
        if event is None:
            event = self._events[eventType] = _SystemEvent()
        return (eventType, event.add(phase, callable, args, kw))

    def removeSystemEventTrigger(self, triggerID: Any) -> None:
        """Remove a trigger added with ``addSystemEventTrigger``."""
        eventType, handle = triggerID
        self._events[eventType].remove(handle)

    def fireSystemEvent(self, eventType: str) -> None:
        """Fire a system event's triggers now (rarely needed: run/stop do it)."""
        event = self._events.get(eventType)
        if event is not None:
            event.fire()

    def callWhenRunning(self, callable: Callable[..., Any], /,
                        *args: Any, **kw: Any) -> Any:
        """Call now if running (and started up), else once the reactor has started."""
        if self.running and self._startup_done:
            callable(*args, **kw)
            return None
        return self.addSystemEventTrigger("during", "startup", callable, *args, **kw)

    # -- threads ----------------------------------------------------------------

    def callFromThread(self, callable: Callable[..., Any], /,
                       *args: Any, **kw: Any) -> None:
        """Run ``callable`` in the reactor's thread, soon; safe from any thread.

        The call runs in a copy of the caller's ``contextvars`` context.
        """
        self._thread_calls.append((contextvars.copy_context(), callable, args, kw))
        self._wake()

    def _run_thread_calls(self) -> None:
        """Run the thread calls queued so far (not those they queue)."""
        calls = self._thread_calls
        for _ in range(len(calls)):
            context, f, args, kw = calls.popleft()
            try:
                context.run(f, *args, **kw)
            except Exception:
                log.exception("Error in callFromThread call %r", f)

    def getThreadPool(self) -> ThreadPool:
        """The reactor's thread pool, started on first use, stopped at shutdown."""
        pool = self._thread_pool
        if pool is None:
            pool = self._thread_pool = ThreadPool(self._thread_pool_size)
        return pool

    def suggestThreadPoolSize(self, size: int) -> None:
        """Set the maximum number of worker threads."""
        self._thread_pool_size = size
        if self._thread_pool is not None:
            self._thread_pool.adjust(size)

    def callInThread(self, callable: Callable[..., Any], /,
                     *args: Any, **kw: Any) -> None:
        """Run ``callable`` in the thread pool; errors are logged."""
        self.getThreadPool().callInThread(callable, *args, **kw)

    def deferToThread(self, callable: Callable[..., Any], /,
                      *args: Any, **kw: Any) -> Deferred[Any]:
        """Run ``callable`` in the thread pool; a Deferred for its result, fired here."""
        d: Deferred[Any] = Deferred()

        def done(ok: bool, result: Any) -> None:
            if ok:
                self.callFromThread(d.callback, result)
            else:
                self.callFromThread(d.errback, result)

        self.getThreadPool().callInThreadWithCallback(done, callable, *args, **kw)
        return d

    # -- signals ------------------------------------------------------------

    def _install_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._old_signal_handlers[signum] = signal.signal(signum, self._on_signal)

    def _restore_signal_handlers(self) -> None:
        for signum, handler in self._old_signal_handlers.items():
            signal.signal(signum, handler)
        self._old_signal_handlers.clear()

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self._stopping:
            # A second signal: stop now, without waiting for shutdown triggers.
            log.warning("Received signal %d again, stopping at once", signum)
            self.callFromThread(self.crash)
            return
        log.info("Received signal %d, shutting down", signum)
        self.callFromThread(self._stop_if_running)

    def _stop_if_running(self) -> None:
        if self.running and not self._stopping:
            self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<{type(self).__name__} {state}>"


