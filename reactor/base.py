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
import types
from collections.abc import Callable, Mapping
from typing import Any

from deferred import Deferred, DeferredList, Failure, maybeDeferred
from reactor.error import ReactorAlreadyRunning, ReactorNotRunning
from reactor.threads import ThreadPool
from reactor.timers import DelayedCall

__all__ = ["ReactorBase"]

log = logging.getLogger("reactor")

_PHASES = ("before", "during", "after")
#: spawnProcess's default environment: empty, as in Twisted.
_EMPTY_ENV: Mapping[str, str] = types.MappingProxyType({})


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

    #: How long a graceful stop (SIGINT/SIGTERM, ``stopGracefully``) lets open
    #: connections finish on their own before closing them.
    gracePeriod = 5.0
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

    def stopGracefully(self, gracePeriod: float | None = None) -> None:
        """Stop as a server should: stop listening, let connections finish, then stop.

        Listening ports close at once; open connections get ``gracePeriod``
        seconds (default: the ``gracePeriod`` attribute) to close on their
        own, and then the usual ``stop()`` closes whatever is left. SIGINT and
        SIGTERM call this; a second signal stops at once.
        """
        if not self.running or self._stopping:
            raise ReactorNotRunning("Can't stop reactor that isn't running.")
        grace = self.gracePeriod if gracePeriod is None else gracePeriod
        # First in the "before" phase: nothing new is accepted while the other
        # shutdown triggers run.
        self._events["shutdown"].triggers["before"].insert(0, (self._drain, (grace,), {}))
        self.stop()

    def _tracked(self) -> Any:
        """Every port and connection the backend knows of (for shutdown)."""
        return ()

    def _open_connections(self) -> list[Any]:
        return [t for t in list(self._tracked())
                if hasattr(t, "loseConnection") and not hasattr(t, "stopListening")
                and not getattr(t, "disconnected", False)]

    def _drain(self, grace: float) -> Deferred[None]:
        """Stop listening; fire once the connections are gone or ``grace`` has passed."""
        for tracked in list(self._tracked()):
            if hasattr(tracked, "stopListening"):
                try:
                    tracked.stopListening()
                except Exception:
                    log.exception("stopListening of %r failed during shutdown", tracked)
        drained: Deferred[None] = Deferred()
        deadline = self.seconds() + grace

        def check() -> None:
            remaining = deadline - self.seconds()
            if not self._open_connections() or remaining <= 0:
                drained.callback(None)
            else:
                # Polling a set's size a few times a second costs nothing and
                # needs no cooperation from every transport type.
                self.callLater(min(0.05, remaining), check)

        check()
        return drained

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

    # -- the rest of the reactor API: each lives in its own module, which
    # -- knows how to do it on every backend ------------------------------------

    def listenUDP(self, port: int, protocol: Any, interface: str = "",
                  maxPacketSize: int = 8192) -> Any:
        """Bind a UDP port for a ``DatagramProtocol``; see ``reactor.udp``."""
        from reactor.udp import listen_udp

        return listen_udp(self, port, protocol, interface, maxPacketSize)

    def listenMulticast(self, port: int, protocol: Any, interface: str = "",
                        maxPacketSize: int = 8192, listenMultiple: bool = False) -> Any:
        """Bind a UDP port that can join multicast groups; see ``reactor.udp``."""
        from reactor.udp import listen_multicast

        return listen_multicast(self, port, protocol, interface, maxPacketSize,
                                listenMultiple)

    def listenUNIX(self, address: str, factory: Any, backlog: int = 50,
                   mode: int = 0o666, wantPID: bool = False) -> Any:
        """Listen on a Unix stream socket; see ``reactor.unix``."""
        from reactor.unix import listen_unix

        return listen_unix(self, address, factory, backlog, mode, wantPID)

    def connectUNIX(self, address: str, factory: Any, timeout: float = 30,
                    checkPID: bool = False) -> Any:
        """Connect to a Unix stream socket; see ``reactor.unix``."""
        from reactor.unix import connect_unix

        return connect_unix(self, address, factory, timeout, checkPID)

    def listenSSL(self, port: int, factory: Any, contextFactory: Any, backlog: int = 50,
                  interface: str = "") -> Any:
        """Listen for TLS connections (an ``ssl.SSLContext``); see ``reactor.tls``."""
        from reactor.tls import listen_ssl

        return listen_ssl(self, port, factory, contextFactory, backlog, interface)

    def connectSSL(self, host: str, port: int, factory: Any, contextFactory: Any,
                   timeout: float = 30, bindAddress: tuple[str, int] | None = None) -> Any:
        """Connect with TLS (an ``ssl.SSLContext``); see ``reactor.tls``."""
        from reactor.tls import connect_ssl

        return connect_ssl(self, host, port, factory, contextFactory, timeout, bindAddress)

    def spawnProcess(self, processProtocol: Any, executable: str | bytes,
                     args: Any = (), env: Any = _EMPTY_ENV, path: str | None = None,
                     uid: int | None = None, gid: int | None = None, usePTY: bool = False,
                     childFDs: dict[int, Any] | None = None) -> Any:
        """Start a child process talking to ``processProtocol``; see ``reactor.process``.

        As in Twisted, ``env`` defaults to an empty environment; pass None to
        give the child this process's ``os.environ``.
        """
        from reactor.process import spawn_process

        return spawn_process(self, processProtocol, executable, args, env, path, uid, gid,
                             usePTY, childFDs)

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
            self.callFromThread(self._force_stop)
            return
        log.info("Received signal %d, shutting down (grace period %.1fs)", signum,
                 self.gracePeriod)
        self.callFromThread(self._stop_if_running)

    def _force_stop(self) -> None:
        """Close every connection now and leave the loop; workers are not waited for."""
        self._close_all_connections()
        pool, self._thread_pool = self._thread_pool, None
        if pool is not None:
            pool.stop(wait=False)
        self.crash()

    def _stop_if_running(self) -> None:
        if self.running and not self._stopping:
            self.stopGracefully()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<{type(self).__name__} {state}>"


