"""Deferred: a result that is not there yet, and the chain of callbacks waiting for it.

A ``Deferred`` holds a list of (callback, errback) pairs. When it fires with a
result, the result flows down the list: each callback receives the previous
one's return value; a raised exception (or a returned ``Failure``) switches the
flow to the errbacks, and an errback that returns normally switches it back::

    d = Deferred()
    d.addCallback(lambda page: len(page))
    d.addErrback(lambda failure: 0)        # any error above becomes 0
    d.callback(b"<html>...")               # runs the chain now

A callback may return another Deferred; the outer chain then pauses until that
one fires and continues with its result. Such chains can be arbitrarily deep:
``_runCallbacks`` walks them with an explicit stack, never by recursion.

This module is the hot path of everything built on it, so the loop is written
for speed: callbacks live in one flat tuple each, a pass-through half of a pair
is skipped without a call, and a Deferred that already has a result is taken
over directly instead of being waited on.
"""

from __future__ import annotations

import logging
import traceback
import warnings
from collections.abc import Callable, Coroutine, Generator
from types import CoroutineType, GeneratorType
from typing import (
    TYPE_CHECKING,
    Any,
    Concatenate,
    Generic,
    ParamSpec,
    Protocol,
    TypeVar,
    overload,
)

from deferred.failure import Failure

if TYPE_CHECKING:
    from deferred.aio import _AwaitBridge

__all__ = [
    "AlreadyCalledError",
    "CancelledError",
    "Deferred",
    "NotACoroutineError",
    "TimeoutError",
    "passthru",
    "succeed",
]

log = logging.getLogger("deferred")

T = TypeVar("T")
N = TypeVar("N")
P = ParamSpec("P")


class AlreadyCalledError(Exception):
    """``callback`` or ``errback`` was called on a Deferred that already fired."""


class CancelledError(Exception):
    """The Deferred was cancelled (``d.cancel()``) before it had a result."""


class TimeoutError(Exception):
    """The Deferred did not fire within the time given to ``addTimeout``."""


class NotACoroutineError(TypeError):
    """``ensureDeferred`` or ``Deferred.fromCoroutine`` was given something else."""


class _Clock(Protocol):
    """What ``addTimeout`` needs of a reactor or ``reactor.testing.Clock``."""

    def callLater(self, delay: float, callable: Callable[..., Any], /,
                  *args: Any, **kwargs: Any) -> Any: ...


def passthru(arg: T) -> T:
    """Return ``arg`` unchanged: the half of a callback pair that does nothing."""
    return arg


class _Continue:
    """Marks the callback a waited-on Deferred uses to resume the waiting one."""


_CONTINUE: Any = _Continue()
_NO_RESULT: Any = object()
_EMPTY_KWARGS: dict[str, Any] = {}


class _FailureTracker:
    """Reports a Failure nobody handled when its Deferred is garbage-collected.

    This lives apart from the Deferred because an object with ``__del__`` in a
    reference cycle delays collection; the tracker is never part of a cycle.
    """

    __slots__ = ("creator", "failResult", "invoker")

    def __init__(self) -> None:
        self.failResult: Failure | None = None
        self.creator: list[str] | None = None
        self.invoker: list[str] | None = None

    def _debugTracebacks(self) -> str:
        info = ""
        if self.creator is not None:
            info += " C: Deferred was created:\n C:"
            info += "".join(self.creator).rstrip().replace("\n", "\n C:") + "\n"
        if self.invoker is not None:
            info += " I: First Invoker was:\n I:"
            info += "".join(self.invoker).rstrip().replace("\n", "\n I:") + "\n"
        return info

    def __del__(self) -> None:
        failure = self.failResult
        if failure is None:
            return
        try:
            debug = self._debugTracebacks()
            extra = f"\n(debug: {debug})" if debug else ""
            log.error(
                "Unhandled error in Deferred:%s", extra,
                exc_info=(failure.type, failure.value, failure.getTracebackObject()),
            )
        except Exception:  # pragma: no cover - logging during interpreter shutdown
            pass


class Deferred(Generic[T]):
    """A result that will arrive later, and the callbacks waiting for it.

    Args:
        canceller: called with the Deferred when ``cancel()`` is called before
            it fired; it should stop the pending work. If it does not fire the
            Deferred itself, the Deferred fails with ``CancelledError``.

    Attributes:
        called: whether ``callback``/``errback`` has been called.
        paused: how many unmatched ``pause()`` calls there are.
        result: the current result (only once called).
        callbacks: the pairs still to run.

    Example::

        d: Deferred[int] = Deferred()
        d.addCallback(lambda n: n * 2).addCallback(print)
        d.callback(21)          # prints 42
    """

    # Deferred is Awaitable by structure (``__await__``), deliberately not by
    # inheriting collections.abc.Awaitable: that would make its metaclass
    # ABCMeta, and every ``isinstance(x, Deferred)`` on the hot path would go
    # through ABCMeta.__instancecheck__ (several times slower).
    #
    # Class-level defaults, for code that reads them off the class.
    called = False
    paused = 0
    debug = False
    _canceller: Callable[[Deferred[Any]], None] | None = None
    _chainedTo: Deferred[Any] | None = None
    _runningCallbacks = False
    _suppressAlreadyCalled = False
    _debugInfo: _FailureTracker | None = None
    result: Any

    def __init__(self, canceller: Callable[[Deferred[Any]], None] | None = None) -> None:
        self.callbacks: list[tuple[Any, ...]] = []
        # Every attribute the loop reads is set here, although the class has
        # the same defaults: reading an instance attribute is about three times
        # faster than falling through to the class, and the loop reads many.
        # ``_chainedTo`` is not read by the loop, but storing it here is still
        # cheaper than adding it later, when a Deferred first waits (callgrind:
        # ~9% of the 10,000-link chain).
        self.called = False
        self.paused = 0
        self._canceller = canceller
        self._chainedTo = None
        self._runningCallbacks = False
        self._debugInfo = None
        if self.debug:
            self._debugInfo = _FailureTracker()
            self._debugInfo.creator = traceback.format_stack()[:-1]

    # -- adding callbacks -------------------------------------------------------

    def addCallbacks(
        self,
        callback: Callable[..., Any],
        errback: Callable[..., Any] | None = None,
        callbackArgs: tuple[Any, ...] = (),
        callbackKeywords: dict[str, Any] = _EMPTY_KWARGS,
        errbackArgs: tuple[Any, ...] = (),
        errbackKeywords: dict[str, Any] = _EMPTY_KWARGS,
    ) -> Deferred[Any]:
        """Add a callback and an errback as one step of the chain.

        Only one of the two runs for any result: ``callback`` on success,
        ``errback`` on a Failure. Unlike ``addCallback(cb).addErrback(eb)``,
        the errback does not see errors raised by ``callback``.

        Returns:
            self, so calls can be chained.
        """
        if errback is None:
            errback = passthru
        if not callable(callback) or not callable(errback):
            raise TypeError("callback and errback must be callable")
        self.callbacks.append(
            (callback, callbackArgs, callbackKeywords, errback, errbackArgs, errbackKeywords)
        )
        if self.called:
            self._runCallbacks()
        return self

    @overload
    def addCallback(
        self, callback: Callable[Concatenate[T, P], Deferred[N]], /,
        *args: P.args, **kwargs: P.kwargs,
    ) -> Deferred[N]: ...

    @overload
    def addCallback(
        self, callback: Callable[Concatenate[T, P], Failure | N], /,
        *args: P.args, **kwargs: P.kwargs,
    ) -> Deferred[N]: ...

    def addCallback(self, callback: Any, /, *args: Any, **kwargs: Any) -> Deferred[Any]:
        """Add a callback for success; errors pass by it unchanged.

        Extra arguments are passed to ``callback`` after the result::

            d.addCallback(operator.add, 1)   # result + 1
        """
        if not callable(callback):
            raise TypeError(f"callback must be callable, not {callback!r}")
        self.callbacks.append((callback, args, kwargs, passthru, (), _EMPTY_KWARGS))
        if self.called:
            self._runCallbacks()
        return self

    @overload
    def addErrback(
        self, errback: Callable[Concatenate[Failure, P], Deferred[N]], /,
        *args: P.args, **kwargs: P.kwargs,
    ) -> Deferred[T | N]: ...

    @overload
    def addErrback(
        self, errback: Callable[Concatenate[Failure, P], Failure | N], /,
        *args: P.args, **kwargs: P.kwargs,
    ) -> Deferred[T | N]: ...

    def addErrback(self, errback: Any, /, *args: Any, **kwargs: Any) -> Deferred[Any]:
        """Add an errback, called with a ``Failure``; successes pass by it.

        Returning normally recovers: the chain continues on the success side
        with the returned value. Raising, or returning a Failure, keeps it on
        the error side.
        """
        if not callable(errback):
            raise TypeError(f"errback must be callable, not {errback!r}")
        self.callbacks.append((passthru, (), _EMPTY_KWARGS, errback, args, kwargs))
        if self.called:
            self._runCallbacks()
        return self

    @overload
    def addBoth(
        self, callback: Callable[Concatenate[T | Failure, P], Deferred[N]], /,
        *args: P.args, **kwargs: P.kwargs,
    ) -> Deferred[N]: ...

    @overload
    def addBoth(
        self, callback: Callable[Concatenate[T | Failure, P], Failure | N], /,
        *args: P.args, **kwargs: P.kwargs,
    ) -> Deferred[N]: ...

    def addBoth(self, callback: Any, /, *args: Any, **kwargs: Any) -> Deferred[Any]:
        """Add one function as both callback and errback (like ``finally``)."""
        if not callable(callback):
            raise TypeError(f"callback must be callable, not {callback!r}")
        self.callbacks.append((callback, args, kwargs, callback, args, kwargs))
        if self.called:
            self._runCallbacks()
        return self

    def addTimeout(
        self,
        timeout: float,
        clock: _Clock,
        onTimeoutCancel: Callable[[Any, float], Any] | None = None,
    ) -> Deferred[T]:
        """Cancel this Deferred if it has not fired within ``timeout`` seconds.

        On a time-out the Deferred is cancelled and the resulting
        ``CancelledError`` becomes a ``TimeoutError``, unless
        ``onTimeoutCancel(result, timeout)`` is given to decide instead. The
        time-out covers the callbacks added before this call, not after.

        Args:
            timeout: seconds.
            clock: anything with ``callLater``: a reactor, the ``reactor``
                module, or ``reactor.testing.Clock``.
            onTimeoutCancel: translates the result after a time-out.
        """
        timed_out = False

        def time_it_out() -> None:
            nonlocal timed_out
            timed_out = True
            self.cancel()

        delayed_call = clock.callLater(timeout, time_it_out)

        def convert_cancelled(result: Any) -> Any:
            if timed_out:
                return (onTimeoutCancel or _cancelledToTimedOutError)(result, timeout)
            return result

        def cancel_timeout(result: Any) -> Any:
            if delayed_call.active():
                delayed_call.cancel()
            return result

        self.addBoth(convert_cancelled)
        self.addBoth(cancel_timeout)
        return self

    def chainDeferred(self, d: Deferred[T]) -> Deferred[None]:
        """Fire ``d`` with whatever this Deferred's chain produces at this point.

        Shorthand for ``self.addCallbacks(d.callback, d.errback)``.
        """
        d._chainedTo = self
        # Not ``d.callback`` itself: ``d`` stops "waiting on" us when it fires.
        return self.addCallbacks(
            _fireChained, _fireChained, callbackArgs=(d,), errbackArgs=(d,)
        )

    # -- firing -----------------------------------------------------------------

    def callback(self, result: T | Failure) -> None:
        """Fire the chain with a success value (a ``Failure`` starts it as an error).

        Raises:
            AlreadyCalledError: the Deferred has already fired.
        """
        # With debugging on, every Deferred has a tracker from birth, so this
        # test also sends debugging to the slow path.
        if self.called or self._debugInfo is not None or isinstance(result, Deferred):
            if isinstance(result, Deferred):
                raise TypeError("a Deferred cannot be fired with another Deferred")
            self._startRunCallbacks(result)
            return
        # The common case, inlined: first firing, no debugging.
        self.called = True
        if self._canceller is not None:
            self._canceller = None
        self.result = result
        self._runCallbacks()

    def errback(self, fail: Failure | BaseException | None = None) -> None:
        """Fire the chain with an error.

        Args:
            fail: a Failure, an exception (wrapped in a Failure), or None to
                capture the exception being handled.

        Raises:
            AlreadyCalledError: the Deferred has already fired.
            NoCurrentExceptionError: ``fail`` is None outside an ``except`` block.
        """
        if fail is None:
            fail = Failure(captureVars=self.debug)
        elif not isinstance(fail, Failure):
            fail = Failure._withoutTraceback(fail)
        self._startRunCallbacks(fail)

    def _startRunCallbacks(self, result: object) -> None:
        if self.called:
            if self._suppressAlreadyCalled:
                # Cancelled without a canceller: the real result arrives late
                # and is dropped, as promised in ``cancel``.
                self._suppressAlreadyCalled = False
                return
            if self.debug and self._debugInfo is not None:
                raise AlreadyCalledError("\n" + self._debugInfo._debugTracebacks())
            # As in Twisted, no arguments without debugging (code checks
            # ``e.args``); the note still says which Deferred it was.
            error = AlreadyCalledError()
            error.add_note(f"{self!r} has already been called")
            raise error
        if self.debug:
            if self._debugInfo is None:
                self._debugInfo = _FailureTracker()
            self._debugInfo.invoker = traceback.format_stack()[:-2]
        self.called = True
        # The canceller is never needed again; dropping it breaks a likely cycle.
        if self._canceller is not None:
            self._canceller = None
        self.result = result
        self._runCallbacks()

    def pause(self) -> None:
        """Stop running callbacks until a matching ``unpause()``."""
        self.paused += 1

    def unpause(self) -> None:
        """Undo one ``pause()``; the last one runs the callbacks added meanwhile."""
        self.paused -= 1
        if self.paused:
            return
        if self.called:
            self._runCallbacks()

    def cancel(self) -> None:
        """Cancel the work behind this Deferred.

        Before it fires: run the canceller, and if that did not fire the
        Deferred, errback it with ``CancelledError``. A result that arrives
        later is then ignored (not an ``AlreadyCalledError``). While it waits
        on a Deferred returned by one of its callbacks: cancel that one.
        After it fired: nothing.
        """
        if not self.called:
            canceller = self._canceller
            if canceller is not None:
                try:
                    canceller(self)
                except Exception:
                    log.error("Exception raised by the canceller of %r", self, exc_info=True)
            else:
                self._suppressAlreadyCalled = True
            if not self.called:
                self.errback(Failure(CancelledError()))
        elif isinstance(self.result, Deferred):
            self.result.cancel()

    # -- the loop -------------------------------------------------------------

    def _runCallbacks(self) -> None:
        """Run the callbacks, following returned Deferreds without recursion.

        When a callback returns a Deferred that has not fired, the current one
        pauses and leaves a ``_CONTINUE`` marker in the inner one. When the
        inner one later reaches that marker it hands its result over and the
        loop moves on to the outer one, remembering the inner one on ``chain``
        (an explicit stack) to finish its remaining callbacks afterwards. So
        resuming costs a list append, never a stack frame.
        """
        if self._runningCallbacks:
            # A callback of ours fired or unpaused us again: the loop below,
            # already on the stack, will pick up the new state.
            return
        current = self
        chain: list[Deferred[Any]] | None = None
        while True:
            if current.paused:
                return
            callbacks = current.callbacks
            result = current.result
            if callbacks:
                done = 0
                handoff: Deferred[Any] | None = None
                waiting = False
                # While the flag is up, a callback that adds callbacks to (or
                # unpauses) ``current`` only appends to the list; the ``for``
                # below picks new items up as it goes.
                current._runningCallbacks = True
                try:
                    for item in callbacks:
                        done += 1
                        if isinstance(result, Failure):
                            _, _, _, fn, args, kwargs = item
                        else:
                            fn, args, kwargs, _, _, _ = item
                        if fn is passthru:
                            continue
                        if fn is _CONTINUE:
                            # The Deferred waiting on us: hand it our result.
                            handoff = args
                            handoff._chainedTo = None
                            handoff.result = result
                            handoff.paused -= 1
                            result = None
                            tracker = current._debugInfo
                            if tracker is not None:
                                tracker.failResult = None
                            break
                        try:
                            # Spelled out by arity: ``fn(result, *args, **kwargs)``
                            # would build a list, a tuple and a dict per call and
                            # reach Python callbacks through a slower C call path.
                            if kwargs:
                                result = fn(result, *args, **kwargs)
                            elif not args:
                                result = fn(result)
                            elif len(args) == 1:
                                result = fn(result, args[0])
                            else:
                                result = fn(result, *args)
                        except BaseException:
                            result = Failure(captureVars=self.debug)
                            continue
                        if isinstance(result, Deferred):
                            inner = result
                            if inner is current:
                                try:
                                    _warnCircular(fn)
                                except BaseException:
                                    # Warnings turned into errors: the error
                                    # becomes the result, like any raised in
                                    # a callback.
                                    result = Failure(captureVars=self.debug)
                                    continue
                            # (A Deferred waiting on another is always paused,
                            # so called-and-not-paused means a real result.)
                            if not inner.called or inner.paused:
                                # Wait for it: keep it as our result (so
                                # cancel() reaches it); the marker resumes us.
                                current.paused += 1
                                current._chainedTo = inner
                                # The marker's "args" slot holds the waiting
                                # Deferred itself (no tuple to allocate).
                                inner.callbacks.append(
                                    (_CONTINUE, current, None, _CONTINUE, current, None)
                                )
                                waiting = True
                                break
                            # Fired already: take its result over, and with it
                            # the duty of handling a failure.
                            result = inner.result
                            inner.result = None
                            tracker = inner._debugInfo
                            if tracker is not None:
                                tracker.failResult = None
                finally:
                    current._runningCallbacks = False
                    current.result = result
                if done == len(callbacks):
                    callbacks.clear()
                    if handoff is not None:
                        # Nothing left to finish here, and its result went to
                        # the waiter (the marker's branch above already said no
                        # failure of its own is pending): go straight on, with
                        # nothing to come back to.
                        current = handoff
                        continue
                else:
                    del callbacks[:done]
                if handoff is not None:
                    if chain is None:
                        chain = [current]
                    else:
                        chain.append(current)
                    current = handoff
                    continue
                if waiting:
                    # Its result is now the Deferred it waits on: no failure
                    # of its own is left unhandled (an errback may have just
                    # returned that Deferred). Deferreds on ``chain`` that
                    # handed it their result still have callbacks to finish.
                    tracker = current._debugInfo
                    if tracker is not None:
                        tracker.failResult = None
                    if not chain:
                        return
                    current = chain.pop()
                    continue
            tracker = current._debugInfo
            if isinstance(result, Failure):
                # Nobody handled it (yet): drop the frames, keep the story,
                # and report it if the Deferred dies in this state.
                result.cleanFailure()
                if tracker is None:
                    tracker = current._debugInfo = _FailureTracker()
                tracker.failResult = result
            elif tracker is not None:
                tracker.failResult = None
            if not chain:
                return
            current = chain.pop()

    # -- awaiting ---------------------------------------------------------------

    def __await__(self) -> Generator[Any, Any, T]:
        """``await d`` in a coroutine run by ``ensureDeferred``, or in an asyncio task.

        A Deferred that has fired gives its result (or raises its error) at
        once. Otherwise the coroutine is suspended on a small bridge object
        that both ``ensureDeferred`` and asyncio's Task know how to wait on.
        """
        # ``called and not paused`` means a real result: a Deferred waiting on
        # an inner one is always paused.
        if self.called and not self.paused:
            result = self.result
            if isinstance(result, Failure):
                tracker = self._debugInfo
                if tracker is not None:
                    tracker.failResult = None
                result.raiseException()
            return result  # type: ignore[no-any-return]
        bridge = _bridge(self)
        yield bridge
        return bridge.outcome_value()  # type: ignore[no-any-return]

    __iter__ = __await__

    # -- bridges, implemented elsewhere to keep this module about the chain -----

    def asFuture(self, loop: Any) -> Any:
        """An asyncio Future on ``loop`` that completes with this Deferred's result.

        The Deferred's result is consumed (it continues with None);
        cancelling the Future cancels the Deferred. See ``deferred.aio``.
        """
        from deferred.aio import as_future

        return as_future(self, loop)

    @classmethod
    def fromFuture(cls, future: Any) -> Deferred[Any]:
        """A Deferred that fires with an asyncio Future's result.

        Cancelling the Deferred cancels the Future. See ``deferred.aio``.
        """
        from deferred.aio import from_future

        return from_future(cls, future)

    @classmethod
    def fromCoroutine(cls, coro: Coroutine[Any, Any, N] | Generator[Any, Any, N]) -> Deferred[N]:
        """Run a coroutine, returning a Deferred for its result.

        The coroutine may await Deferreds (and, on an asyncio reactor, asyncio
        futures); cancelling the Deferred cancels what it is waiting on.

        Raises:
            NotACoroutineError: ``coro`` is not a coroutine or generator.
        """
        from deferred._inline import run_coroutine

        if isinstance(coro, (CoroutineType, GeneratorType)) or (
            hasattr(coro, "send") and hasattr(coro, "throw")
        ):
            return run_coroutine(coro)
        raise NotACoroutineError(f"{coro!r} is not a coroutine")

    def __str__(self) -> str:
        name = type(self).__name__
        result = self.__dict__.get("result", _NO_RESULT)
        chained = self._chainedTo
        # A Deferred fired directly after ``chainDeferred`` still names the
        # other one; only one without a result (or waiting) is waiting on it.
        if chained is not None and (not self.called or self.paused):
            state = f" waiting on Deferred at 0x{id(chained):x}"
        elif result is _NO_RESULT:
            state = ""
        else:
            state = f" current result: {result!r}"
        return f"<{name} at 0x{id(self):x}{state}>"

    __repr__ = __str__


_new_deferred = object.__new__


def _fireChained(result: Any, d: Deferred[Any]) -> None:
    """``chainDeferred``'s callback and errback: fire ``d`` with ``result``."""
    d._chainedTo = None
    d.callback(result)


def _warnCircular(fn: Callable[..., Any]) -> None:
    """Warn that callback ``fn`` returned the Deferred it was attached to.

    The warning is attributed to the callback's own definition (where the
    mistake is), not to whoever fired the Deferred.
    """
    message = (
        "Callback returned the Deferred it was attached to, which breaks "
        f"the callback chain: {fn!r}"
    )
    code = getattr(fn, "__code__", None)
    if code is None:
        warnings.warn(message, DeprecationWarning, stacklevel=4)
        return
    warnings.warn_explicit(
        message, DeprecationWarning, code.co_filename, code.co_firstlineno,
        module=getattr(fn, "__module__", None),
    )


def _bridge(d: Deferred[Any]) -> _AwaitBridge:
    from deferred.aio import _AwaitBridge

    return _AwaitBridge(d)


def _cancelledToTimedOutError(value: Any, timeout: float) -> Any:
    """Turn the CancelledError that a time-out causes into a TimeoutError."""
    if isinstance(value, Failure):
        value.trap(CancelledError)
        raise TimeoutError(timeout, "Deferred")
    return value


def succeed(result: T) -> Deferred[T]:
    """A Deferred that has already fired with ``result``.

    For code that must return a Deferred but has its answer at hand::

        def lookup(key): return succeed(cache[key])
    """
    if Deferred.debug:
        d: Deferred[T] = Deferred()
        d.callback(result)
        return d
    # Skipping __init__ is measurably faster, and this is called a lot. The
    # attributes are those ``Deferred(); d.callback(result)`` leaves (the
    # loop reads them, and instance attributes read faster than the class's).
    d = _new_deferred(Deferred)
    d.callbacks = []
    d.called = True
    d.paused = 0
    d._canceller = None
    d._chainedTo = None
    d._runningCallbacks = False
    d._debugInfo = None
    d.result = result
    return d
