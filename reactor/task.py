"""Scheduling helpers: repeating calls, delayed calls, cooperative iteration, ``react``.

The names and semantics of ``twisted.internet.task``: :class:`LoopingCall`,
:func:`deferLater`, :class:`Cooperator` with :func:`cooperate`/:func:`coiterate`,
:func:`react`, and ``Clock`` (re-exported from :mod:`reactor.testing`). Importing
this module never chooses or installs a backend: where no clock or reactor is
given, the installed one is looked up when first needed.

Example:
    >>> from reactor.testing import Clock
    >>> clock, ticks = Clock(), []
    >>> loop = LoopingCall(lambda: ticks.append(clock.seconds()))
    >>> loop.clock = clock
    >>> _ = loop.start(1.0)
    >>> clock.pump([1, 1]); ticks
    [0.0, 1.0, 2.0]
"""

from __future__ import annotations

import logging
import sys
import time
import typing
from collections.abc import Callable, Coroutine, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Generic, Literal, NoReturn, Protocol, Self, TypeVar, cast

from deferred import Deferred, Failure, maybeDeferred

from .error import ReactorNotRunning

if TYPE_CHECKING:
    from .interfaces import IDelayedCall
    from .testing import Clock

__all__ = [
    "Clock", "CooperativeTask", "Cooperator", "LoopingCall", "NotPaused", "SchedulerError",
    "SchedulerStopped", "TaskDone", "TaskFailed", "TaskFinished", "TaskStopped",
    "coiterate", "cooperate", "deferLater", "react",
]

_T = TypeVar("_T")
_It = TypeVar("_It", bound=Iterator[object])

log = logging.getLogger("reactor")


# What each function needs of a clock or reactor: less than IReactorTime and
# IReactorCore, so small fakes qualify. callLater's names must be Twisted's (a
# **kw could otherwise collide with them); the others are positional-only.
class _Scheduler(Protocol):
    def callLater(
        self, delay: float, callable: Callable[..., object], *args: object, **kw: object
    ) -> IDelayedCall: ...


class _Clock(_Scheduler, Protocol):
    def seconds(self) -> float: ...


class _ReactorCore(Protocol):
    def run(self) -> None: ...
    def stop(self) -> None: ...
    def callWhenRunning(self, callable: Callable[..., object], /, *args: object) -> object: ...
    def addSystemEventTrigger(
        self, phase: str, event: str, callable: Callable[..., object], /, *args: object
    ) -> object: ...


def _installed_reactor() -> Any:
    # Imported at call time: ``import reactor.task`` must not pick a backend,
    # and the module's API (``reactor.callLater`` ...) installs one on first use.
    import reactor as _reactor_module

    return _reactor_module


def __getattr__(name: str) -> object:
    # Clock lives in reactor.testing; loaded lazily so programs that never use
    # it skip the test fakes, and so the two modules can never import-cycle.
    if name == "Clock":
        from .testing import Clock

        return Clock
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _safe_repr(obj: object) -> str:
    # A LoopingCall's repr must not fail because an argument's repr does.
    try:
        return repr(obj)
    except Exception as e:
        return f"<repr of {type(obj).__name__} failed: {e!r}>"


# --- LoopingCall -----------------------------------------------------------------------


class LoopingCall:
    """Call ``f(*a, **kw)`` every ``interval`` seconds until stopped.

    Calls fall on a grid anchored at the start time: when a call (or the
    reactor) runs late, missed slots are skipped and the next call lands on the
    next grid point still in the future. If ``f`` returns a Deferred (or is a
    coroutine function) the next call is scheduled only once that has fired.

    Attributes:
        clock: Schedules the calls (``callLater``/``seconds``); default: the
            installed reactor, looked up when first used. Set before ``start``.
        running: True from ``start`` until ``stop`` or a failure of ``f``.
        interval: The interval given to ``start``; may be changed while running.
        call: The pending ``DelayedCall`` for the next run, or None.

    Example:
        >>> from reactor.testing import Clock
        >>> clock, seen = Clock(), []
        >>> loop = LoopingCall(seen.append, "tick")
        >>> loop.clock = clock
        >>> done = loop.start(5, now=False)
        >>> clock.advance(5); seen
        ['tick']
        >>> loop.stop(); done.called
        True
    """

    call: IDelayedCall | None = None
    running = False
    interval: float | None = None
    starttime: float | None = None
    _deferred: Deferred[LoopingCall] | None = None
    _clock: _Clock | None = None
    _runAtStart = False
    _realLastTime: float | None = None  # withCount: when the callable last ran

    def __init__(self, f: Callable[..., object], *a: object, **kw: object) -> None:
        self.f = f
        self.a = a
        self.kw = kw

    @property
    def clock(self) -> _Clock:
        """The clock that schedules the calls (default: the installed reactor)."""
        if self._clock is None:
            return cast(_Clock, _installed_reactor())
        return self._clock

    @clock.setter
    def clock(self, clock: _Clock) -> None:
        self._clock = clock

    @classmethod
    def withCount(cls, countCallable: Callable[[int], object]) -> Self:
        """Make a LoopingCall that calls ``countCallable(intervals elapsed since last call)``.

        The count is 1 normally and more when slots were skipped (``f``, its
        Deferred or the reactor ran late); with interval 0 it is always 1.

        Example:
            >>> from reactor.testing import Clock
            >>> clock, counts = Clock(), []
            >>> loop = LoopingCall.withCount(counts.append)
            >>> loop.clock = clock
            >>> _ = loop.start(1)
            >>> clock.advance(3.5); counts
            [1, 3]
        """

        def counter() -> object:
            now = loop.clock.seconds()
            if loop.interval == 0:
                loop._realLastTime = now
                return countCallable(1)
            last = loop._realLastTime
            if last is None:
                assert loop.starttime is not None and loop.interval is not None
                last = loop.starttime
                if loop._runAtStart:
                    last -= loop.interval  # the call at start was slot 0's
            count = loop._intervalOf(now) - loop._intervalOf(last)
            # 0 when float rounding runs a call just before its slot boundary:
            # that is no new slot, and a count of 0 must never be reported.
            if count > 0:
                loop._realLastTime = now
                return countCallable(count)
            return None

        loop = cls(counter)
        return loop

    def _intervalOf(self, t: float) -> int:
        assert self.starttime is not None and self.interval is not None
        return int((t - self.starttime) / self.interval)

    def start(self, interval: float, now: bool = True) -> Deferred[LoopingCall]:
        """Start calling ``f`` every ``interval`` seconds (0: as often as possible).

        Args:
            interval: Seconds between calls.
            now: Call ``f`` at once; otherwise first after one interval.

        Returns:
            A Deferred firing with this LoopingCall once :meth:`stop` is called,
            or failing with the error ``f`` raised or its Deferred failed with.
            Either way the loop is no longer running when it fires.

        Raises:
            AssertionError: The loop is already running.
            ValueError: ``interval`` is negative.
        """
        if self.running:
            raise AssertionError("Tried to start an already running LoopingCall.")
        if interval < 0:
            raise ValueError("interval must be >= 0")
        self.running = True
        # Also kept in a local: a failing first call clears self._deferred.
        deferred = self._deferred = Deferred()
        self.starttime = self.clock.seconds()
        self.interval = interval
        self._runAtStart = now
        self._realLastTime = None
        if now:
            self()
        else:
            self._scheduleFrom(self.starttime)
        return deferred

    def stop(self) -> None:
        """Stop the loop; the Deferred from :meth:`start` fires with ``self``.

        If ``f`` is running or its Deferred is pending, that happens once it
        is done. Raises AssertionError if the loop is not running.
        """
        if not self.running:
            raise AssertionError("Tried to stop a LoopingCall that was not running.")
        self.running = False
        if self.call is not None:
            self.call.cancel()
            self.call = None
            d, self._deferred = self._deferred, None
            assert d is not None
            d.callback(self)

    def reset(self) -> None:
        """Skip the pending call and restart the grid from now (AssertionError if stopped)."""
        if not self.running:
            raise AssertionError("Tried to reset a LoopingCall that was not running.")
        if self.call is not None:
            self.call.cancel()
            self.call = None
            self.starttime = self.clock.seconds()
            self._scheduleFrom(self.starttime)

    def __call__(self) -> None:
        """Run ``f`` once, then schedule the next run when it is done (for the clock)."""
        self.call = None
        # The start Deferred this run belongs to: if the loop is stopped and
        # restarted while f's Deferred is pending, this run ends the old loop
        # and must not schedule a second chain of calls for the new one.
        mine = self._deferred
        assert mine is not None

        def succeeded(result: object) -> None:
            if self._deferred is not mine:
                mine.callback(self)
            elif self.running:
                self._scheduleFrom(self.clock.seconds())
            else:
                self._deferred = None
                mine.callback(self)

        def failed(failure: Failure) -> None:
            if self._deferred is mine:
                self.running = False
                self._deferred = None
            mine.errback(failure)

        maybeDeferred(self.f, *self.a, **self.kw).addCallbacks(succeeded, failed)

    def _scheduleFrom(self, when: float) -> None:
        interval = self.interval
        assert interval is not None and self.starttime is not None
        delay = 0.0
        if interval:
            delay = interval - ((when - self.starttime) % interval)
            # A remainder too small to change ``when`` (large clock values)
            # means we are on a grid point already: aim for the next one.
            if when == when + delay:
                delay = interval
        self.call = self.clock.callLater(delay, self)

    def __repr__(self) -> str:
        f = self.f
        name = getattr(f, "__qualname__", None) or getattr(f, "__name__", None)
        return (
            f"LoopingCall<{self.interval!r}>({name or _safe_repr(f)},"
            f" *{_safe_repr(self.a)}, **{_safe_repr(self.kw)})"
        )


# --- deferLater ------------------------------------------------------------------------


def deferLater(
    clock: _Scheduler,
    delay: float,
    callable: Callable[..., _T] | None = None,
    *args: object,
    **kw: object,
) -> Deferred[_T]:
    """Return a Deferred firing with ``callable(*args, **kw)`` after ``delay`` seconds.

    With no callable it fires with None. Cancelling it cancels the timer; it
    then fails with ``CancelledError`` and the callable is never called.

    Args:
        clock: Schedules the call: a reactor, the ``reactor`` module, a Clock.
        delay: Seconds to wait.
        callable: What to call; its result (or error) is the Deferred's.
        *args: Positional arguments for ``callable``.
        **kw: Keyword arguments for ``callable``.

    Example:
        >>> from reactor.testing import Clock
        >>> clock = Clock()
        >>> d = deferLater(clock, 2, str.upper, "hi")
        >>> clock.advance(2); d.result
        'HI'
    """

    def cancel_timer(_: Deferred[_T]) -> None:
        timer.cancel()

    def run(_: object) -> _T:
        if callable is None:
            return None  # type: ignore[return-value]  # Deferred[None] without a callable
        return callable(*args, **kw)

    d: Deferred[_T] = Deferred(cancel_timer)
    d.addCallback(run)
    timer = clock.callLater(delay, d.callback, None)
    return d


# --- Cooperator ------------------------------------------------------------------------


class SchedulerError(Exception):
    """A scheduler or one of its tasks was in the wrong state for the operation."""


class SchedulerStopped(SchedulerError):
    """The Cooperator was stopped before or while running the task."""


class TaskFinished(SchedulerError):
    """The task has finished (done, stopped or failed) and cannot be changed."""


class TaskDone(TaskFinished):
    """The task had already run to completion."""


class TaskStopped(TaskFinished):
    """The task had been stopped."""


class TaskFailed(TaskFinished):
    """The task had died with an error from its iterator."""


class NotPaused(SchedulerError):
    """``resume()`` was called on a task that was not paused."""


class _Timer:
    """The default termination predicate: true once a 10 ms slice is used up."""

    MAX_SLICE = 0.01

    def __init__(self) -> None:
        # Monotonic, unlike Twisted's time.time(): a wall-clock jump must not
        # make one slice last for hours.
        self.end = time.monotonic() + self.MAX_SLICE

    def __call__(self) -> bool:
        return time.monotonic() >= self.end


# Just above zero, as in Twisted, so the tick is an ordinary timer that runs
# after pending I/O rather than starving it.
_EPSILON = 0.00000001


def _defaultScheduler(callable: Callable[[], None]) -> IDelayedCall:
    return cast(_Scheduler, _installed_reactor()).callLater(_EPSILON, callable)


class CooperativeTask(Generic[_It]):
    """An iterator being run by a :class:`Cooperator`; made by ``cooperate``.

    Each ``next()`` is one unit of work. A yielded Deferred pauses the task
    until it fires, and fails the task if it fails; so does the iterator raising.

    Example:
        >>> from reactor.testing import Clock
        >>> clock = Clock()
        >>> coop = Cooperator(scheduler=lambda tick: clock.callLater(0, tick))
        >>> task = coop.cooperate(iter(range(3)))
        >>> task.pause(); clock.advance(1); task.whenDone().called
        False
        >>> task.resume(); clock.advance(0); task.whenDone().called
        True
    """

    def __init__(self, iterator: _It, cooperator: Cooperator) -> None:
        self._iterator = iterator
        self._cooperator = cooperator
        self._deferreds: list[Deferred[_It]] = []
        self._pauseCount = 0
        self._completionState: SchedulerError | None = None
        self._completionResult: _It | Failure | None = None
        cooperator._addTask(self)

    def whenDone(self) -> Deferred[_It]:
        """Return a new Deferred firing with the iterator once it is exhausted.

        It fails with the iterator's error, ``TaskStopped`` after :meth:`stop`,
        or ``SchedulerStopped`` when the Cooperator stops.
        """
        d: Deferred[_It] = Deferred()
        if self._completionState is None:
            self._deferreds.append(d)
        else:
            d.callback(cast("_It | Failure", self._completionResult))
        return d

    def pause(self) -> None:
        """Do no work until a matching :meth:`resume`; raises TaskFinished if finished."""
        self._checkFinish()
        self._pauseCount += 1
        if self._pauseCount == 1:
            self._cooperator._removeTask(self)

    def resume(self) -> None:
        """Undo one :meth:`pause` (pauses nest); raises NotPaused if not paused."""
        if self._pauseCount == 0:
            raise NotPaused()
        self._pauseCount -= 1
        if self._pauseCount == 0 and self._completionState is None:
            self._cooperator._addTask(self)

    def stop(self) -> None:
        """Stop for good: ``whenDone`` fails with ``TaskStopped`` (TaskFinished if finished)."""
        self._checkFinish()
        self._completeWith(TaskStopped(), Failure(TaskStopped()))

    def _checkFinish(self) -> None:
        if self._completionState is not None:
            raise self._completionState

    def _completeWith(self, state: SchedulerError, result: _It | Failure) -> None:
        self._completionState = state
        self._completionResult = result
        if not self._pauseCount:
            self._cooperator._removeTask(self)
        # Fire only once off the Cooperator's list: a callback may stop the
        # Cooperator or change other tasks, and must find this one gone.
        for d in self._deferreds:
            d.callback(result)

    def _oneWorkUnit(self) -> None:
        try:
            result = next(self._iterator)
        except StopIteration:
            self._completeWith(TaskDone(), self._iterator)
        except BaseException:
            self._completeWith(TaskFailed(), Failure())
        else:
            if isinstance(result, Deferred):
                self.pause()
                result.addCallbacks(self._resumeAfter, self._failAfter)

    def _resumeAfter(self, _: object) -> None:
        self.resume()

    def _failAfter(self, failure: Failure) -> Failure | None:
        if self._completionState is not None:
            # Stopped while waiting: whenDone has fired already. Pass the error
            # on, to be logged as unhandled rather than lost.
            return failure
        self._completeWith(TaskFailed(), failure)
        return None


class Cooperator:
    """Runs iterators a step at a time, round-robin, in time slices.

    Each tick runs steps until the termination predicate says the slice is
    used up (10 ms by default), then asks the scheduler for another tick.

    Args:
        terminationPredicateFactory: Called at the start of each tick; returns
            a no-argument callable that is true when the tick should end.
        scheduler: Called with the tick; must call it later and return an
            object with ``cancel()``. Default: the installed reactor's
            ``callLater``, looked up when first needed.
        started: Run tasks as they are added; else wait for :meth:`start`.

    Example:
        >>> from reactor.testing import Clock
        >>> clock = Clock()
        >>> coop = Cooperator(scheduler=lambda tick: clock.callLater(0, tick))
        >>> d = coop.coiterate(iter("ab"))
        >>> clock.advance(0); d.called
        True
    """

    def __init__(
        self,
        terminationPredicateFactory: Callable[[], Callable[[], bool]] = _Timer,
        scheduler: Callable[[Callable[[], None]], Any] = _defaultScheduler,
        started: bool = True,
    ) -> None:
        self._tasks: list[CooperativeTask[Any]] = []
        self._metarator: Iterator[CooperativeTask[Any]] = iter(())
        self._terminationPredicateFactory = terminationPredicateFactory
        self._scheduler = scheduler
        self._delayedCall: Any = None
        self._stopped = False
        self._started = started
        self._mustScheduleOnStart = False

    def coiterate(self, iterator: _It, doneDeferred: Deferred[_It] | None = None) -> Deferred[_It]:
        """Run ``iterator`` as a task; return a Deferred (or fire ``doneDeferred``) when done."""
        if doneDeferred is None:
            doneDeferred = Deferred()
        CooperativeTask(iterator, self).whenDone().chainDeferred(doneDeferred)
        return doneDeferred

    def cooperate(self, iterator: _It) -> CooperativeTask[_It]:
        """Run ``iterator`` as a task; return it, to pause, resume, stop or wait on."""
        return CooperativeTask(iterator, self)

    def _addTask(self, task: CooperativeTask[Any]) -> None:
        if self._stopped:
            task._completeWith(SchedulerStopped(), Failure(SchedulerStopped()))
        else:
            self._tasks.append(task)
            self._reschedule()

    def _removeTask(self, task: CooperativeTask[Any]) -> None:
        if task in self._tasks:  # stop() empties the list before failing its tasks
            self._tasks.remove(task)
        if not self._tasks and self._delayedCall is not None:
            self._delayedCall.cancel()  # nothing left to do: no idle wake-ups
            self._delayedCall = None

    def _tasksWhileNotStopped(self) -> Iterator[CooperativeTask[Any]]:
        # _metarator outlives the tick so the next tick carries on the
        # round-robin where this one stopped, instead of favouring task one.
        terminator = self._terminationPredicateFactory()
        while self._tasks:
            for task in self._metarator:
                yield task
                if terminator():
                    return
            self._metarator = iter(self._tasks)

    def _tick(self) -> None:
        self._delayedCall = None
        for task in self._tasksWhileNotStopped():
            task._oneWorkUnit()
        self._reschedule()

    def _reschedule(self) -> None:
        if not self._started:
            self._mustScheduleOnStart = True
        elif self._delayedCall is None and self._tasks:
            self._delayedCall = self._scheduler(self._tick)

    def start(self) -> None:
        """Begin running tasks (after :meth:`stop`: accept tasks again)."""
        self._stopped = False
        self._started = True
        if self._mustScheduleOnStart:
            self._mustScheduleOnStart = False
            self._reschedule()

    def stop(self) -> None:
        """Fail every task with ``SchedulerStopped``, and new ones until :meth:`start`."""
        self._stopped = True
        # Detach the list first: failing a task removes it from the list,
        # which must not happen under this loop.
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task._completeWith(SchedulerStopped(), Failure(SchedulerStopped()))
        if self._delayedCall is not None:
            self._delayedCall.cancel()
            self._delayedCall = None

    @property
    def running(self) -> bool:
        """True if started and not stopped."""
        return self._started and not self._stopped


_theCooperator = Cooperator()


def coiterate(iterator: _It) -> Deferred[_It]:
    """Run ``iterator`` on the global Cooperator; the Deferred fires with it when done.

    Example:
        >>> def work(rows):
        ...     for row in rows:
        ...         yield  # one row per step; other work runs in between
        >>> d = coiterate(work(range(10_000)))  # doctest: +SKIP
    """
    return _theCooperator.coiterate(iterator)


def cooperate(iterator: _It) -> CooperativeTask[_It]:
    """Run ``iterator`` on the global Cooperator and return its task.

    Example:
        >>> task = cooperate(iter(range(10)))  # doctest: +SKIP
        >>> task.pause(); task.resume()  # doctest: +SKIP
    """
    return _theCooperator.cooperate(iterator)


# --- react -----------------------------------------------------------------------------

_Argv = Iterable[object]
_Core = _ReactorCore | None


# One overload per kind of main, so mypy infers the result type for exit=False.
@typing.overload
def react(
    main: Callable[..., object], argv: _Argv = (), _reactor: _Core = None,
    *, exit: Literal[True] = True,
) -> NoReturn: ...
@typing.overload
def react(
    main: Callable[..., Deferred[_T]], argv: _Argv = (), _reactor: _Core = None, *, exit: bool
) -> _T: ...
@typing.overload
def react(
    main: Callable[..., Coroutine[Any, Any, _T]], argv: _Argv = (), _reactor: _Core = None,
    *, exit: bool,
) -> _T: ...
@typing.overload
def react(
    main: Callable[..., _T], argv: _Argv = (), _reactor: _Core = None, *, exit: bool
) -> _T: ...
def react(
    main: Callable[..., object], argv: _Argv = (), _reactor: _Core = None, *, exit: bool = True
) -> Any:
    """Run ``main(reactor, *argv)`` under the reactor until its result is ready.

    ``main`` may return a Deferred, a coroutine or a plain value, or raise.
    The reactor is stopped once the result is ready (not again if something
    else stopped it).

    Args:
        main: Called with the reactor, then the items of ``argv``.
        argv: Extra positional arguments for ``main``.
        _reactor: The reactor to run (``run``, ``stop``, ``callWhenRunning``,
            ``addSystemEventTrigger``); default: the installed one.
        exit: True (Twisted's behaviour): never return; ``sys.exit(0)`` on
            success, ``sys.exit(code)`` for ``SystemExit(code)``, else log the
            error (logger ``reactor``) and ``sys.exit(1)``. A reactor stopped
            by someone else before main finished exits 0, as in Twisted.
            False: return main's result or raise its error, like ``asyncio.run``
            (``ReactorNotRunning`` if the reactor stopped first).

    Example:
        >>> async def main(reactor, name):
        ...     await deferLater(reactor, 1)
        ...     return f"hello {name}"
        >>> react(main, ["world"], exit=False)  # doctest: +SKIP
        'hello world'
    """
    r = _reactor if _reactor is not None else cast(_ReactorCore, _installed_reactor())
    # Called before run(), as in Twisted, so main may use callWhenRunning.
    finished = maybeDeferred(main, r, *argv)
    outcome: list[object] = []
    stopping = False

    def on_shutdown() -> None:
        nonlocal stopping
        stopping = True

    def stop_reactor() -> None:
        try:
            r.stop()
        except ReactorNotRunning:
            pass

    def finish(result: object) -> None:
        outcome.append(result)
        # A result arriving during shutdown needs no stop (a second stop()
        # would raise); otherwise stop once running (now, if it is).
        if not stopping:
            r.callWhenRunning(stop_reactor)

    r.addSystemEventTrigger("before", "shutdown", on_shutdown)
    finished.addBoth(finish)
    r.run()

    if not outcome:
        if exit:
            sys.exit(0)
        raise ReactorNotRunning("the reactor stopped before main() completed")
    result = outcome[0]
    if isinstance(result, Failure):
        if not exit:
            result.raiseException()
        if result.check(SystemExit):
            sys.exit(cast(SystemExit, result.value).code)
        log.error(
            "main function encountered error",
            exc_info=(result.type, result.value, result.getTracebackObject()),
        )
        sys.exit(1)
    if exit:
        sys.exit(0)
    return result
