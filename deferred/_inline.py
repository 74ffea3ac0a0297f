"""Coroutines over Deferreds: ``ensureDeferred``, ``inlineCallbacks`` and their runner.

Both styles are driven by one runner, which sends each awaited result back
into the coroutine::

    async def fetch_both(a, b):
        return (await get(a), await get(b))
    d = ensureDeferred(fetch_both("x", "y"))

    @inlineCallbacks
    def fetch_both(a, b):
        first = yield get(a)
        second = yield get(b)
        return (first, second)

The runner waits on what the coroutine yields:

- a Deferred (``yield d`` in an inlineCallbacks generator, or ``await d`` via
  the bridge that ``Deferred.__await__`` yields). A Deferred that has already
  fired is taken at once, in a loop rather than by recursion, so a long run
  of ready results costs no stack.
- an asyncio Future (``await asyncio.sleep(1)`` on the asyncio or uvloop
  reactor): woken by the Future's done callback.
- a coroutine or generator object (``yield other()`` in an inlineCallbacks
  generator, where ``other`` is ``async def`` or undecorated): it is run
  like ``ensureDeferred`` would, and waited on.
- in an inlineCallbacks generator, any other value is sent straight back.

Each coroutine runs in its own copy of the ``contextvars`` context, taken
when it starts, as an asyncio Task does.

Cancelling the returned Deferred cancels whatever the coroutine is waiting on;
the coroutine sees the ``CancelledError`` there and may handle it, and the
Deferred then follows the coroutine's own outcome.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import warnings
from collections.abc import Callable, Coroutine, Generator
from types import CoroutineType, GeneratorType
from typing import Any, NoReturn, ParamSpec, TypeVar

from deferred._core import CancelledError, Deferred, NotACoroutineError, succeed
from deferred._helpers import fail
from deferred.aio import _AwaitBridge
from deferred.failure import Failure

__all__ = ["ensureDeferred", "inlineCallbacks", "returnValue"]

T = TypeVar("T")
P = ParamSpec("P")

_ASYNCIO_ON_SELECT = (
    "this coroutine awaited an asyncio object, which needs a running asyncio loop: "
    "use the asyncio or uvloop reactor (reactor.install('asyncio') or "
    "TORSION_REACTOR=uvloop) to mix asyncio and Deferreds"
)


class _DefGen_Return(BaseException):
    """Raised by ``returnValue`` to carry a generator's result out of it."""

    def __init__(self, value: object) -> None:
        super().__init__(value)
        self.value = value


def returnValue(val: object) -> NoReturn:
    """Return ``val`` from an ``inlineCallbacks`` generator (old style of ``return``).

    Call it in the decorated generator itself: called in a function that
    generator calls, it still ends the generator, with a DeprecationWarning
    pointing at the call, because that is almost always a mistake.
    """
    raise _DefGen_Return(val)


_RETURN_VALUE_CODE = returnValue.__code__


def _warn_if_returned_from_elsewhere(ret: _DefGen_Return, coro: Any) -> None:
    """Warn if ``returnValue`` was called outside the generator ``ret`` ends."""
    tb = ret.__traceback__
    caller = None
    while tb is not None and tb.tb_next is not None:
        caller = tb
        tb = tb.tb_next
    if caller is None or tb is None or tb.tb_frame.f_code is not _RETURN_VALUE_CODE:
        return
    code = caller.tb_frame.f_code
    if code is getattr(coro, "gi_code", None) or code is getattr(coro, "cr_code", None):
        return
    generator = getattr(coro, "__name__", repr(coro))
    warnings.warn_explicit(
        f"returnValue() was called in {code.co_name!r}, not in the inlineCallbacks "
        f"generator {generator!r}, and made that generator exit: call it only in "
        "functions decorated with inlineCallbacks",
        DeprecationWarning, code.co_filename, caller.tb_lineno,
    )


class _Runner:
    """Drives one coroutine or generator to completion, firing ``deferred``."""

    __slots__ = ("bridge", "cancel_pending", "cancelled", "context", "coro", "deferred",
                 "is_generator", "waiting_on")

    def __init__(self, coro: Any, is_generator: bool, context: contextvars.Context) -> None:
        self.coro = coro
        self.is_generator = is_generator
        self.context = context
        self.deferred: Deferred[Any] = Deferred(self._cancel)
        self.waiting_on: Any = None
        self.bridge: _AwaitBridge | None = None
        self.cancel_pending = False
        self.cancelled = False

    def step(self, value: Any, failure: Failure | None) -> None:
        """Send ``value`` (or throw ``failure``) in; go on until a real wait or the end."""
        coro = self.coro
        run = self.context.run
        while True:
            try:
                if failure is not None:
                    yielded = run(failure.throwExceptionIntoGenerator, coro)
                else:
                    yielded = run(coro.send, value)
            except StopIteration as stop:
                outcome = stop.value
            except _DefGen_Return as ret:
                _warn_if_returned_from_elsewhere(ret, coro)
                outcome = ret.value
            except BaseException as exc:
                outcome = _coroutine_failure(exc, self.cancelled)
            else:
                ready = self.handle_yield(yielded)
                if ready is None:
                    return
                value, failure = ready
                continue
            # Fired outside the ``except`` blocks: the callbacks this runs
            # (other coroutines resuming) must not see StopIteration or
            # _DefGen_Return as the context of their own exceptions.
            self._finish(outcome)
            return

    def handle_yield(self, yielded: Any) -> tuple[Any, Failure | None] | None:
        """Wait on what the coroutine yielded; return what to send back if it is ready."""
        if type(yielded) is _AwaitBridge:
            target = yielded.deferred
            bridge: _AwaitBridge | None = yielded
        elif isinstance(yielded, Deferred):
            target = yielded
            bridge = None
        elif getattr(yielded, "_asyncio_future_blocking", None) is not None:
            return self._wait_on_future(yielded)
        elif isinstance(yielded, (CoroutineType, GeneratorType)):
            # ``yield some_coroutine()`` in inlineCallbacks (as in Twisted):
            # run it, and wait for its outcome like a Deferred's.
            target = run_coroutine(yielded)
            bridge = None
        elif self.is_generator or yielded is None:
            # inlineCallbacks sends plain values straight back; a bare
            # ``yield`` (asyncio.sleep(0)) is only a pause: nothing to wait for.
            return yielded, None
        else:
            return None, Failure(TypeError(f"coroutine yielded an unexpected {yielded!r}"))
        if self.cancel_pending:
            self.cancel_pending = False
            target.cancel()
        if target.called and not target.paused:
            # Fired already (a Deferred waiting on another is always paused):
            # take the result over and go round again, without recursion.
            outcome = target.result
            target.result = None
            tracker = target._debugInfo
            if tracker is not None:
                tracker.failResult = None
            if bridge is not None:
                bridge.store(outcome)
                return None, None
            if isinstance(outcome, Failure):
                return None, outcome
            return outcome, None
        self.waiting_on = target
        self.bridge = bridge
        target.addBoth(self._resume)
        return None

    def _resume(self, result: Any) -> None:
        """The awaited Deferred fired: continue the coroutine; consume the result."""
        self.waiting_on = None
        bridge = self.bridge
        if bridge is not None:
            self.bridge = None
            bridge.store(result)
            self.step(None, None)
        elif isinstance(result, Failure):
            self.step(None, result)
        else:
            self.step(result, None)

    def _wait_on_future(self, future: Any) -> tuple[Any, Failure | None] | None:
        loop = future.get_loop()
        if not loop.is_running():
            return None, Failure(RuntimeError(_ASYNCIO_ON_SELECT))
        future._asyncio_future_blocking = False
        self.waiting_on = future
        if self.cancel_pending:
            self.cancel_pending = False
            future.cancel()
        future.add_done_callback(self._future_done)
        return None

    def _future_done(self, future: Any) -> None:
        # The future's own __await__ returns or raises its result on resume.
        self.waiting_on = None
        self.step(None, None)

    def _finish(self, outcome: Any) -> None:
        """The coroutine ended: with its return value, or a Failure if it raised."""
        self.coro = None
        self.deferred.callback(outcome)

    def _cancel(self, d: Deferred[Any]) -> None:
        """The canceller of our Deferred: cancel what the coroutine waits on."""
        self.cancelled = True
        waiting = self.waiting_on
        if waiting is None:
            if self.coro is not None:
                # Cancelled from inside the coroutine itself: cancel the next wait.
                self.cancel_pending = True
                self._defer_outcome(d)
            return
        waiting.cancel()
        if not d.called:
            # The coroutine is handling the cancellation and still running:
            # keep our Deferred waiting for its real outcome.
            self._defer_outcome(d)

    def _defer_outcome(self, d: Deferred[Any]) -> None:
        """Make ``d`` wait on a fresh Deferred that the coroutine's end will fire.

        ``Deferred.cancel`` errbacks with CancelledError unless the canceller
        fired it; firing it now with a Deferred-returning first step keeps it
        pending (and its further cancels reach us through the new one).
        """
        later: Deferred[Any] = Deferred(self._cancel)
        self.deferred = later
        d.callbacks.insert(0, (_return_value, (later,), {}, _return_value, (later,), {}))
        d.callback(None)


def _coroutine_failure(exc: BaseException, cancelled: bool) -> Failure:
    """The Failure for an exception that ended a coroutine (call inside ``except``)."""
    if cancelled and isinstance(exc, asyncio.CancelledError):
        # We cancelled an asyncio future and the coroutine let it through:
        # report it as the Deferred's own cancellation.
        return Failure(CancelledError())
    if isinstance(exc, RuntimeError) and "no running event loop" in str(exc):
        exc.add_note(_ASYNCIO_ON_SELECT)
    return Failure()


def _return_value(_ignored: Any, value: Any) -> Any:
    return value


def run_coroutine(coro: Any) -> Deferred[Any]:
    """Start ``coro`` and return the Deferred for its outcome (internal).

    The first step runs here, before any runner exists: a coroutine that
    finishes without waiting (all its awaits already fired) costs no more
    than a fired Deferred.
    """
    context = contextvars.copy_context()
    try:
        yielded = context.run(coro.send, None)
    except StopIteration as stop:
        return succeed(stop.value)
    except _DefGen_Return as ret:
        _warn_if_returned_from_elsewhere(ret, coro)
        return succeed(ret.value)
    except BaseException as exc:
        return fail(_coroutine_failure(exc, False))
    runner = _Runner(coro, type(coro) is GeneratorType, context)
    deferred = runner.deferred
    ready = runner.handle_yield(yielded)
    if ready is not None:
        runner.step(*ready)
    return deferred


def ensureDeferred(
    coro: Deferred[T] | Coroutine[Any, Any, T] | Generator[Any, Any, T],
) -> Deferred[T]:
    """Run a coroutine and return a Deferred for its result; pass a Deferred through.

    Example::

        async def double(d):
            return 2 * await d
        ensureDeferred(double(succeed(21))).addCallback(print)   # 42

    Raises:
        NotACoroutineError: ``coro`` is neither a Deferred nor a coroutine.
    """
    if isinstance(coro, Deferred):
        return coro
    if isinstance(coro, (CoroutineType, GeneratorType)) or inspect.iscoroutine(coro):
        return run_coroutine(coro)
    raise NotACoroutineError(f"{coro!r} is not a coroutine or a Deferred")


def inlineCallbacks(
    f: Callable[P, Generator[Any, Any, T]],
) -> Callable[P, Deferred[T]]:
    """Write Deferred-using code as a generator: ``result = yield d``.

    The decorated function returns a Deferred firing with the generator's
    ``return`` value (or ``returnValue(v)``), or with the error it raises::

        @inlineCallbacks
        def login(user):
            token = yield fetch_token(user)
            return token.upper()
    """

    @functools.wraps(f)
    def unwind_generator(*args: P.args, **kwargs: P.kwargs) -> Deferred[T]:
        try:
            gen = f(*args, **kwargs)
        except _DefGen_Return:
            raise TypeError(
                f"inlineCallbacks requires {f!r} to produce a generator; "
                "instead caught returnValue being used in a non-generator"
            )
        if not isinstance(gen, GeneratorType):
            raise TypeError(
                f"inlineCallbacks requires {f!r} to produce a generator; instead got {gen!r}"
            )
        return run_coroutine(gen)

    return unwind_generator
