"""The bridge between Deferreds and asyncio.

Three crossings, each cancelling the other side when cancelled:

- ``await d`` inside an asyncio Task: ``Deferred.__await__`` yields an
  ``_AwaitBridge``, which quacks like an asyncio Future (asyncio's Task, the C
  one included, accepts any object with ``_asyncio_future_blocking``,
  ``get_loop``, ``add_done_callback``, ``cancel`` and ``result``). The same
  bridge is understood by ``ensureDeferred``, so one ``__await__`` serves both.
- ``d.asFuture(loop)``: a Future that completes with the Deferred's result.
- ``Deferred.fromFuture(future)``: a Deferred that fires with the Future's.

Example, in plain asyncio code::

    async def main():
        d = Deferred()
        asyncio.get_running_loop().call_later(0.1, d.callback, "ready")
        print(await d)        # "ready"
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable
from typing import Any, TypeVar

from deferred._core import CancelledError, Deferred
from deferred.failure import Failure

__all__ = ["as_future", "from_future"]

T = TypeVar("T")
_PENDING: Any = object()


class _AwaitBridge:
    """What a suspended ``await d`` waits on; holds the Deferred's outcome once fired.

    The waiter (``ensureDeferred``'s runner or an asyncio Task) resumes the
    coroutine after the outcome arrives; ``Deferred.__await__`` then takes it
    from here with ``outcome_value()``.
    """

    __slots__ = ("_asyncio_future_blocking", "_cancel_message", "_cancel_requested",
                 "_loop", "_waiters", "deferred", "outcome")

    def __init__(self, d: Deferred[Any]) -> None:
        self.deferred = d
        self.outcome: Any = _PENDING
        # asyncio's Task reads this to recognise a future-like object.
        self._asyncio_future_blocking = True
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiters: list[tuple[Callable[..., Any], contextvars.Context | None]] | None = None
        self._cancel_requested = False
        self._cancel_message: Any = None

    # -- the waiting side, used by ensureDeferred's runner ---------------------

    def store(self, result: Any) -> None:
        """Record the Deferred's outcome (consuming it, as Twisted's waiters do)."""
        self.outcome = result

    def outcome_value(self) -> Any:
        """The awaited result, or raise the awaited error."""
        outcome = self.outcome
        if isinstance(outcome, Failure):
            outcome.raiseException()
        return outcome

    # -- the asyncio Future protocol, used by asyncio's Task --------------------

    def get_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    def add_done_callback(self, fn: Callable[..., Any], *,
                          context: contextvars.Context | None = None) -> None:
        loop = self.get_loop()
        if self._waiters is None:
            self._waiters = []
            self.deferred.addBoth(self._fired_for_asyncio)
        if self.outcome is not _PENDING:
            loop.call_soon(fn, self, context=context)
        else:
            self._waiters.append((fn, context))

    def remove_done_callback(self, fn: Callable[..., Any]) -> int:
        if not self._waiters:
            return 0
        before = len(self._waiters)
        self._waiters = [(f, c) for f, c in self._waiters if f != fn]
        return before - len(self._waiters)

    def _fired_for_asyncio(self, result: Any) -> None:
        self.outcome = result
        loop = self.get_loop()
        # Deferreds are fired on the loop's thread in the normal course, but a
        # reactor in another thread may fire one: then the loop must be woken.
        on_loop = asyncio._get_running_loop() is loop
        schedule = loop.call_soon if on_loop else loop.call_soon_threadsafe
        for fn, context in self._waiters or ():
            schedule(fn, self, context=context)
        self._waiters = []

    def done(self) -> bool:
        return self.outcome is not _PENDING

    def cancelled(self) -> bool:
        return self._cancel_requested and self._is_cancellation()

    def cancel(self, msg: Any = None) -> bool:
        """An asyncio Task awaiting us was cancelled: cancel the Deferred."""
        if self.outcome is not _PENDING:
            return False
        self._cancel_requested = True
        self._cancel_message = msg
        self.deferred.cancel()
        return True

    def _is_cancellation(self) -> bool:
        outcome = self.outcome
        return isinstance(outcome, Failure) and outcome.check(CancelledError) is not None

    def result(self) -> None:
        """Called by the Task on wake-up; raising here cancels the Task properly."""
        if self._cancel_requested and self._is_cancellation():
            raise asyncio.CancelledError(self._cancel_message)

    def exception(self) -> BaseException | None:
        outcome = self.outcome
        return outcome.value if isinstance(outcome, Failure) else None

    def __await__(self) -> Any:  # pragma: no cover - never awaited directly
        raise TypeError("an _AwaitBridge is internal to Deferred.__await__")


def as_future(d: Deferred[T], loop: asyncio.AbstractEventLoop) -> asyncio.Future[T]:
    """An asyncio Future on ``loop`` completing with ``d``'s result.

    The result is consumed: ``d`` continues with None. Cancelling the Future
    cancels ``d``.
    """
    future: asyncio.Future[T] = loop.create_future()

    def check_cancel(fut: asyncio.Future[T]) -> None:
        if fut.cancelled():
            d.cancel()

    def succeed(result: T) -> None:
        if not future.done():
            future.set_result(result)

    def failed(failure: Failure) -> None:
        if not future.done():
            future.set_exception(failure.value)

    d.addCallbacks(succeed, failed)
    future.add_done_callback(check_cancel)
    return future


def from_future(cls: type[Deferred[Any]], future: asyncio.Future[Any]) -> Deferred[Any]:
    """A Deferred (of class ``cls``) firing with ``future``'s result.

    Cancelling the Deferred cancels the Future, then waits for the Future to
    say how it ended: a Task may catch the cancellation and return a value.
    """
    cancelled_marker = object()
    actual: Deferred[Any]

    def adapt(fut: asyncio.Future[Any]) -> None:
        try:
            extracted: Any = fut.result()
        except BaseException:
            extracted = Failure()
        actual.callback(extracted)

    def cancel(self: Deferred[Any]) -> None:
        future.cancel()
        self.callback(cancelled_marker)

    def uncancel(result: Any) -> Any:
        nonlocal actual
        if result is cancelled_marker:
            actual = Deferred()
            return actual
        return result

    d = cls(cancel)
    actual = d
    d.addCallback(uncancel)
    future.add_done_callback(adapt)
    return d
