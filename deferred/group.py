"""``DeferredGroup``: structured concurrency for Deferreds.

A group owns a set of concurrent operations (its *members*) and has one
outcome: the list of their results once all have succeeded, or, as soon as
one fails, the cancellation of the rest and then an ``ExceptionGroup`` of
every error. Nothing started in a group outlives it unnoticed::

    async def fetch_all(urls):
        async with DeferredGroup() as group:
            for url in urls:
                group.start(fetch, url)           # fetch may be async def
        return group.results                      # every member succeeded

    try:
        pages = await fetch_all(urls)
    except* ConnectionError as eg:              # one member failed: the others
        ...                                       # were cancelled, and every
                                                  # error is in eg.exceptions

Without ``async with``, ``close()`` gives the outcome as a Deferred::

    group = DeferredGroup[bytes]()
    for url in urls:
        group.add(getPage(url))
    group.close().addCallbacks(show_pages, report_errors)

This is trio's nursery and asyncio's ``TaskGroup`` carried over to Deferreds:

- The group *finishes* when it has been closed (``close()``, or leaving the
  ``async with`` block) and no member is pending. Until then members may
  still be added, so a member may start siblings while it runs; once it has
  finished, ``add``/``start`` raise ``GroupFinishedError``.
- The first member to fail makes the group cancel every other member, and
  every member added after that. The ``CancelledError`` failures this causes
  are not errors of the group; every other failure is, including errors raised
  by members while they are being cancelled.
- Errors are collected in the order the members were added and raised as one
  ``ExceptionGroup`` (a ``BaseExceptionGroup`` if any is not an
  ``Exception``), never one alone, so ``except*`` handles them all.
- A member's failure is consumed by the group: callbacks added to the member
  after it joined see ``None`` (``DeferredList(consumeErrors=True)`` does the
  same). The group reports the error instead; if its failed outcome is never
  collected with ``wait()``/``close()``, it is logged when the group is
  garbage-collected, like any unhandled failure.
- ``cancel()`` cancels every member; the group then finishes (once closed) as
  the members settle, failing with ``CancelledError`` if a member's result was
  lost to the cancellation. Cancelling a Deferred returned by ``wait()`` or
  ``close()`` cancels the group the same way, and that Deferred then fires
  with the group's outcome, as ``DeferredList`` does.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from functools import partial
from types import TracebackType
from typing import Any, Generic, Literal, ParamSpec, Self, TypeVar, overload

from deferred._core import CancelledError, Deferred, succeed
from deferred._helpers import fail, maybeDeferred
from deferred.failure import Failure

__all__ = ["DeferredGroup", "GroupFinishedError"]

log = logging.getLogger(__name__)

_T = TypeVar("_T")
_R = TypeVar("_R")
_P = ParamSpec("_P")


class GroupFinishedError(RuntimeError):
    """A member was added to a ``DeferredGroup`` that has already finished."""


class _GroupWaiter(Deferred[_R]):
    """The Deferred returned by ``wait()``: cancelling it cancels the group.

    Like ``DeferredList.cancel``, cancelling does not fire it at once with a
    ``CancelledError``: it fires with the group's outcome once the members
    have reacted, so a waiter never reports a group as over while members of
    it still run.
    """

    def __init__(self, group: DeferredGroup[Any]) -> None:
        super().__init__()
        self._group: DeferredGroup[Any] | None = group

    def cancel(self) -> None:
        if self.called:
            super().cancel()  # forwards to a Deferred its callbacks wait on
        elif self._group is not None:
            self._group.cancel()


class DeferredGroup(Generic[_T]):
    """Run Deferreds as one unit: all succeed, or the rest are cancelled.

    ``DeferredGroup[T]`` collects results of type ``T``; use
    ``DeferredGroup[object]()`` for members of different types.

    Example::

        async def mirror(urls):
            async with DeferredGroup[bytes]() as group:
                for url in urls:
                    group.start(download, url)     # async def download(url)
            return group.results                   # [bytes, ...] in start order

        d = ensureDeferred(mirror(urls))
    """

    def __init__(self) -> None:
        # Slot i holds member i's result; the list is the group's result.
        self._results: list[Any] = []
        # Members still pending, by index: these are what ``cancel`` cancels.
        self._pending: dict[int, Deferred[Any]] = {}
        self._errors: list[tuple[int, BaseException]] = []
        self._closed = False
        self._finished = False
        # How many start() calls are running their function right now.
        self._starting = 0
        # Set by ``cancel()``: from then on members are cancelled on sight and
        # their CancelledErrors are the group's doing, not errors.
        self._cancelling = False
        # Whether a member's result was lost to the group's own cancellation.
        self._lostToCancel = False
        self._outcome: list[_T] | Failure | None = None
        self._waiters: list[_GroupWaiter[list[_T]]] = []
        # A failed outcome nobody has collected yet, kept in a fired Deferred
        # so that the core reports it if the group dies uncollected.
        self._uncollected: Deferred[Any] | None = None

    # -- state ---------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """Whether ``close()`` was called (the group finishes once no member is pending)."""
        return self._closed

    @property
    def finished(self) -> bool:
        """Whether the group has its outcome; it then accepts no new members."""
        return self._finished

    @property
    def results(self) -> list[_T]:
        """The members' results in the order they were added, once all succeeded.

        Raises:
            RuntimeError: the group has not finished, or it failed.
        """
        if not isinstance(self._outcome, list):
            state = "failed" if self._finished else "not finished"
            raise RuntimeError(f"DeferredGroup has {state}: it has no results")
        return list(self._outcome)

    def __len__(self) -> int:
        """How many members are still pending."""
        return len(self._pending)

    def __repr__(self) -> str:
        if self._finished:
            state = "failed" if isinstance(self._outcome, Failure) else "succeeded"
        else:
            state = "closed" if self._closed else "open"
            if self._cancelling:
                state += ", cancelling"
        return f"<DeferredGroup {state}, {len(self._pending)} of {len(self._results)} pending>"

    # -- adding members --------------------------------------------------------

    def add(self, d: Deferred[_T]) -> Deferred[_T]:
        """Make ``d`` a member of the group.

        If the group is cancelling (a member failed, or ``cancel()`` was
        called), ``d`` is cancelled at once.

        Returns:
            ``d``, for convenience. Callbacks added to it from now on see its
            result after the group has: a success unchanged, a failure as ``None``.

        Raises:
            GroupFinishedError: the group has finished.
        """
        self._checkNotFinished()
        index = len(self._results)
        self._results.append(None)
        self._watch(index, d)
        return d

    def _watch(self, index: int, d: Deferred[Any]) -> None:
        self._pending[index] = d
        args = (index,)
        d.addCallbacks(self._memberSucceeded, self._memberFailed,
                       callbackArgs=args, errbackArgs=args)
        if self._cancelling and index in self._pending:
            _cancel(d)

    @overload
    def start(
        self, f: Callable[_P, Deferred[_T]], /, *args: _P.args, **kwargs: _P.kwargs
    ) -> Deferred[_T]: ...

    @overload
    def start(
        self,
        f: Callable[_P, Coroutine[Any, Any, _T]],
        /,
        *args: _P.args,
        **kwargs: _P.kwargs,
    ) -> Deferred[_T]: ...

    @overload
    def start(
        self, f: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs
    ) -> Deferred[_T]: ...

    def start(self, f: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Deferred[Any]:
        """Call ``f(*args, **kwargs)`` and add its outcome as a member.

        ``f`` may return a value, a Deferred or a Failure, raise, or be an
        ``async def`` function (its coroutine is run with ``ensureDeferred``).
        On a group that is cancelling, ``f`` is not called: the member is a
        Deferred that is cancelled at once.

        Returns:
            The member's Deferred (see ``add``).

        Raises:
            GroupFinishedError: the group has finished (``f`` is not called).
        """
        self._checkNotFinished()
        # The slot is taken before ``f`` runs, so that members ``f`` starts
        # (an async crawler starting its children) come after it.
        index = len(self._results)
        self._results.append(None)
        d: Deferred[Any]
        if self._cancelling:
            d = Deferred()  # no point starting work only to cancel it
        else:
            # While ``f`` runs the group must not finish: its member is not
            # pending yet, but it will be.
            self._starting += 1
            try:
                # partial: ``kwargs`` may hold an "f", which maybeDeferred's
                # own parameter of that name would swallow.
                d = maybeDeferred(partial(f, *args, **kwargs))
            finally:
                self._starting -= 1
        self._watch(index, d)
        return d

    def _checkNotFinished(self) -> None:
        if self._finished:
            raise GroupFinishedError(
                "this DeferredGroup has finished and accepts no new members; "
                "members must be added before the last pending one settles"
            )

    # -- finishing -------------------------------------------------------------

    def close(self) -> Deferred[list[_T]]:
        """Declare the group complete and return ``wait()``.

        The group finishes as soon as no member is pending: at once if none
        is. Members may still be added until then (by members, typically).
        """
        self._closed = True
        self._maybeFinish()
        return self.wait()

    def wait(self) -> Deferred[list[_T]]:
        """A Deferred for the group's outcome, without closing it.

        It fires once the group has finished: with the list of results, in
        the order the members were added, if all succeeded; otherwise with a
        ``Failure`` of the ``ExceptionGroup`` of all the errors, or of
        ``CancelledError`` if the group was cancelled and lost a result to
        that. Each call returns a new Deferred, so waiters do not see each
        other's callbacks. Cancelling one cancels the group (see ``cancel``).
        """
        outcome = self._outcome
        if not self._finished:
            waiter: _GroupWaiter[list[_T]] = _GroupWaiter(self)
            self._waiters.append(waiter)
            return waiter
        if isinstance(outcome, Failure):
            self._collected()
            return fail(outcome)
        assert outcome is not None
        return succeed(list(outcome))

    def cancel(self) -> None:
        """Cancel every pending member, and every member added from now on.

        Their ``CancelledError`` failures are not errors of the group. Once
        closed, the group finishes when they have settled: failing with
        ``CancelledError`` if a result was lost to the cancellation, with an
        ``ExceptionGroup`` if some member failed otherwise, or with the results
        if every member succeeded anyway. After the group has finished this
        does nothing.
        """
        if self._finished or self._cancelling:
            return
        self._cancelling = True
        # A snapshot: cancelling a member settles it, which edits ``_pending``.
        for member in list(self._pending.values()):
            _cancel(member)

    def _memberSucceeded(self, result: _T, index: int) -> _T:
        del self._pending[index]
        self._results[index] = result
        self._maybeFinish()
        return result

    def _memberFailed(self, failure: Failure, index: int) -> None:
        del self._pending[index]
        if self._cancelling and failure.check(CancelledError):
            self._lostToCancel = True
        else:
            self._errors.append((index, failure.value))
            # The first error ends the group's hope of success: stop the rest.
            self.cancel()
        self._maybeFinish()
        # The group reports the failure, so the member's chain need not.
        return None

    def _maybeFinish(self) -> None:
        if self._pending or self._starting or not self._closed or self._finished:
            return
        self._finished = True
        outcome: list[_T] | Failure
        if self._errors:
            self._errors.sort(key=_first)
            errors = [error for _, error in self._errors]
            count = len(errors)
            members = len(self._results)
            message = f"{count} of {members} DeferredGroup members failed"
            outcome = Failure(BaseExceptionGroup(message, errors))
        elif self._lostToCancel:
            outcome = Failure(CancelledError("DeferredGroup was cancelled"))
        else:
            outcome = self._results
        self._outcome = outcome
        self._errors = []
        waiters, self._waiters = self._waiters, []
        delivered = False
        for waiter in waiters:
            waiter._group = None
            if waiter.called:  # fired by its owner: not ours to fire
                continue
            delivered = True
            if isinstance(outcome, Failure):
                waiter.errback(outcome)
            else:
                waiter.callback(list(outcome))
        if isinstance(outcome, Failure) and not delivered:
            # Nobody has the failure yet: park it where an unhandled failure
            # gets logged on garbage collection, unless wait() collects it.
            self._uncollected = fail(outcome)

    def _collected(self) -> None:
        uncollected = self._uncollected
        if uncollected is not None:
            self._uncollected = None
            uncollected.addErrback(_ignore)

    # -- async with ------------------------------------------------------------

    def __aenter__(self) -> Deferred[Self]:
        """``async with DeferredGroup() as group:`` gives the group itself."""
        if self._closed:
            raise RuntimeError("this DeferredGroup was already closed; use a new one")
        return succeed(self)

    def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> Deferred[Literal[False]]:
        """Close the group and wait for every member; raise its errors.

        An exception from the block cancels the members first. Leaving the
        block raises an ``ExceptionGroup`` of the block's exception (unless
        it is a ``CancelledError``) and the members' errors, if there are
        any; a ``CancelledError`` from the block, or from a cancelled group,
        propagates as it is. The members' errors are raised here even if the
        block already saw them through ``wait()``: the block's end is where
        the group reports, so there is no need to await it inside.
        """
        if exc_value is not None:
            self.cancel()
        body_errors: list[BaseException] = []
        if exc_value is not None and not isinstance(exc_value, CancelledError):
            body_errors.append(exc_value)

        def raise_errors(outcome: list[_T] | Failure) -> Literal[False] | Failure:
            member_errors: list[BaseException] = []
            if isinstance(outcome, Failure):
                if isinstance(outcome.value, BaseExceptionGroup):
                    member_errors = list(outcome.value.exceptions)
                    if not body_errors:
                        return outcome  # the members' errors, as reported
                elif exc_value is None:
                    return outcome  # the group was cancelled: CancelledError
            if not body_errors:
                # No errors to raise: the block's own CancelledError, if it
                # raised one, goes on unchanged.
                return False
            combined = BaseExceptionGroup(
                "unhandled errors in a DeferredGroup", body_errors + member_errors
            )
            # As asyncio's TaskGroup: the block's error is inside the group,
            # not repeated as its context.
            combined.__cause__ = None
            return Failure(combined)

        return self.close().addBoth(raise_errors)


def _cancel(member: Deferred[Any]) -> None:
    # Deferred.cancel already logs a canceller's exception; this is for
    # Deferred subclasses whose cancel() itself may raise.
    try:
        member.cancel()
    except Exception:
        log.error("Exception raised while cancelling %r", member, exc_info=True)


def _first(item: tuple[int, BaseException]) -> int:
    return item[0]


def _ignore(_: object) -> None:
    return None
