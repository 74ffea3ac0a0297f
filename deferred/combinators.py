"""Waiting on several Deferreds at once: ``DeferredList``, ``gatherResults``, ``race``.

All three work by adding one callback pair to each Deferred they are given, so
(as in Twisted) they see whatever result the chain has at that point, and
callbacks added afterwards see what these callbacks return::

    d1, d2 = Deferred(), Deferred()
    gatherResults([d1, d2]).addCallback(print)
    d1.callback("a")
    d2.callback("b")                    # prints ['a', 'b']

    race([slow(), fast()])              # fires with (1, <fast's result>),
                                        # and cancels slow()

``DeferredList`` is the general tool (a list of ``(success, result)`` pairs,
optionally firing on the first success or failure); ``gatherResults`` is the
common "all of them, or the first error" case; ``race`` is "the first success".

Many ``DeferredList`` and ``gatherResults`` calls are made with Deferreds that
have already fired, so the per-member path is kept short: one ``addCallbacks``
with bound methods and a shared argument tuple, no closure per member, and no
copy of a member's Failure.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any, Final, Literal, TypeVar, overload

from deferred._core import Deferred
from deferred.failure import Failure

__all__ = [
    "FAILURE",
    "SUCCESS",
    "DeferredList",
    "FailureGroup",
    "FirstError",
    "gatherResults",
    "race",
]

log = logging.getLogger(__name__)

_T = TypeVar("_T")
_T1 = TypeVar("_T1")
_T2 = TypeVar("_T2")
_T3 = TypeVar("_T3")
_R = TypeVar("_R")

# Twisted's names for the result types; code annotated against Twisted uses them.
_DeferredListResultItemT = tuple[bool, _T]
_DeferredListResultListT = list[tuple[bool, _T]]
_DeferredListSingleResultT = tuple[_T, int]

#: The first element of a ``DeferredList`` result pair for a member that succeeded.
SUCCESS: Final = True
#: The first element of a ``DeferredList`` result pair for a member that failed.
FAILURE: Final = False


class FirstError(Exception):
    """The first failure among the members of a ``DeferredList`` or ``gatherResults``.

    A ``DeferredList`` created with ``fireOnOneErrback=True`` (and so every
    ``gatherResults``) fails with a ``Failure`` wrapping this exception.

    Attributes:
        subFailure: the member's ``Failure``.
        index: the member's position in the list given to ``DeferredList``.

    Example::

        def on_error(failure):
            failure.trap(FirstError)
            first = failure.value
            print(f"member {first.index} failed: {first.subFailure.getErrorMessage()}")

        gatherResults([d1, d2]).addErrback(on_error)
    """

    def __init__(self, failure: Failure, index: int) -> None:
        super().__init__(failure, index)
        self.subFailure = failure
        self.index = index

    def __repr__(self) -> str:
        return f"FirstError[#{self.index}, {self.subFailure.value!r}]"

    def __str__(self) -> str:
        return f"FirstError[#{self.index}, {self.subFailure}]"

    def __eq__(self, other: object) -> bool:
        # Twisted compares (index, subFailure); anything else is never equal.
        if isinstance(other, FirstError):
            return self.index == other.index and self.subFailure == other.subFailure
        return False

    # Defining __eq__ would make instances unhashable; equal errors share an index.
    def __hash__(self) -> int:
        return hash((FirstError, self.index))


class DeferredList(Deferred[_R]):
    """A Deferred that fires once the Deferreds it is given have fired.

    By default it fires, when every member has fired, with a list of
    ``(success, result)`` pairs in the members' order: ``(SUCCESS, value)`` or
    ``(FAILURE, failure)``. It never fails in that mode.

    Args:
        deferredList: the Deferreds to wait for. The list is copied.
        fireOnOneCallback: fire as soon as one member succeeds, with
            ``(result, index)``; the other members are left alone. An empty
            list then never fires.
        fireOnOneErrback: fail as soon as one member fails, with a
            ``Failure`` of ``FirstError(failure, index)``.
        consumeErrors: a member's failure stops at this DeferredList: callbacks
            added to that member afterwards see ``None`` instead. Without it
            the failure continues down the member's chain (and is reported as
            unhandled if nothing there handles it).

    Attributes:
        resultList: one entry per member: ``None`` until it fires, then its
            ``(success, result)`` pair. The DeferredList fires with this list.
        finishedCount: how many members have fired.

    ``cancel()`` cancels every member (before the DeferredList has fired); the
    DeferredList then fires with whatever the members fired with.

    Example::

        dl = DeferredList([getPage(a), getPage(b)], consumeErrors=True)

        def report(results):
            for success, value in results:
                print("ok" if success else "failed", value)

        dl.addCallback(report)
    """

    fireOnOneCallback = False
    fireOnOneErrback = False
    consumeErrors = False

    # The result type depends on fireOnOneCallback, so it is chosen here through
    # the type of ``self``: DeferredList([d1, d2]) is a
    # DeferredList[list[tuple[bool, T | Failure]]].
    @overload
    def __init__(
        self: DeferredList[tuple[_T, int]],
        deferredList: Iterable[Deferred[_T]],
        fireOnOneCallback: Literal[True],
        fireOnOneErrback: bool = False,
        consumeErrors: bool = False,
    ) -> None: ...

    @overload
    def __init__(
        self: DeferredList[list[tuple[bool, _T | Failure]]],
        deferredList: Iterable[Deferred[_T]],
        fireOnOneCallback: Literal[False] = False,
        fireOnOneErrback: bool = False,
        consumeErrors: bool = False,
    ) -> None: ...

    @overload
    def __init__(
        self: DeferredList[Any],
        deferredList: Iterable[Deferred[Any]],
        fireOnOneCallback: bool = False,
        fireOnOneErrback: bool = False,
        consumeErrors: bool = False,
    ) -> None: ...

    def __init__(
        self,
        deferredList: Iterable[Deferred[Any]],
        fireOnOneCallback: bool = False,
        fireOnOneErrback: bool = False,
        consumeErrors: bool = False,
    ) -> None:
        members = self._deferredList = list(deferredList)
        count = len(members)
        self.resultList: list[Any] = [None] * count
        Deferred.__init__(self)
        if count == 0 and not fireOnOneCallback:
            self.callback([])  # type: ignore[arg-type]
        # The flags must be set before the members are watched: members that
        # already fired run our callbacks right away, and those read them.
        self.fireOnOneCallback = fireOnOneCallback
        self.fireOnOneErrback = fireOnOneErrback
        self.consumeErrors = consumeErrors
        self.finishedCount = 0
        self._remaining = count
        succeeded = self._cbSucceeded
        failed = self._cbFailed
        for index, member in enumerate(members):
            if (member.called and not member.paused and not member.callbacks
                    and not member._runningCallbacks):
                # Fast path for a member that has fired and is idle: do what
                # addCallbacks would (run our callback on its result, which
                # becomes the new result) without the chain machinery. This
                # is safe because our callbacks never raise or return a
                # Deferred, and while this constructor runs nobody can have
                # added callbacks to us, so firing us here runs no user code.
                result = member.result
                if isinstance(result, Failure):
                    if failed(result, index) is None:
                        # Consumed: the member no longer holds an unhandled error.
                        member.result = None
                        tracker = member._debugInfo
                        if tracker is not None:
                            tracker.failResult = None
                    continue
                if not isinstance(result, Deferred):
                    succeeded(result, index)  # returns ``result``: nothing to store
                    continue
            # One argument tuple serves both halves of the pair.
            args = (index,)
            member.addCallbacks(succeeded, failed, callbackArgs=args, errbackArgs=args)

    def _cbSucceeded(self, result: Any, index: int) -> Any:
        """Record a member's success; fire if it was the one we waited for."""
        self.resultList[index] = (SUCCESS, result)
        self.finishedCount += 1
        self._remaining -= 1
        if not self.called:
            if self.fireOnOneCallback:
                self.callback((result, index))  # type: ignore[arg-type]
            elif not self._remaining:
                self.callback(self.resultList)  # type: ignore[arg-type]
        return result

    def _cbFailed(self, failure: Failure, index: int) -> Failure | None:
        """Record a member's failure; fire if it completes or ends the list."""
        self.resultList[index] = (FAILURE, failure)
        self.finishedCount += 1
        self._remaining -= 1
        if not self.called:
            if self.fireOnOneErrback:
                self.errback(Failure(FirstError(failure, index)))
            elif not self._remaining:
                self.callback(self.resultList)  # type: ignore[arg-type]
        if self.consumeErrors:
            return None
        return failure

    def cancel(self) -> None:
        """Cancel every member, unless this DeferredList has already fired.

        The DeferredList itself fires as its members react: with their
        ``CancelledError`` failures, or with results if their cancellers
        chose to succeed. A canceller that raises is logged and the remaining
        members are still cancelled.
        """
        if self.called:
            return
        for member in self._deferredList:
            try:
                member.cancel()
            except Exception:
                log.error("Exception raised while cancelling %r", member, exc_info=True)


class _GatherResults(DeferredList[list[Any]]):
    """The DeferredList behind ``gatherResults``: it collects plain values.

    Storing each value bare, instead of a ``(SUCCESS, value)`` pair to be
    unpacked by a second pass, saves a tuple and a list per call. So here
    ``resultList`` holds plain values; everything else is a DeferredList's.
    """

    def _cbSucceeded(self, result: Any, index: int) -> Any:
        self.resultList[index] = result
        self.finishedCount += 1
        self._remaining -= 1
        if not self._remaining and not self.called:
            self.callback(self.resultList)
        return result


@overload
def gatherResults(
    deferredList: tuple[Deferred[_T1], Deferred[_T2]], consumeErrors: bool = False
) -> Deferred[list[_T1 | _T2]]: ...


@overload
def gatherResults(
    deferredList: tuple[Deferred[_T1], Deferred[_T2], Deferred[_T3]],
    consumeErrors: bool = False,
) -> Deferred[list[_T1 | _T2 | _T3]]: ...


@overload
def gatherResults(
    deferredList: Iterable[Deferred[_T]], consumeErrors: bool = False
) -> Deferred[list[_T]]: ...


def gatherResults(
    deferredList: Iterable[Deferred[Any]], consumeErrors: bool = False
) -> Deferred[list[Any]]:
    """A Deferred for the list of the results of ``deferredList``, in order.

    It fires once every member has succeeded, or fails as soon as one member
    fails, with a ``Failure`` of ``FirstError`` (the member's failure is its
    ``subFailure``). The other members are not cancelled then; cancelling
    the returned Deferred (a ``DeferredList``) cancels them all.

    Args:
        deferredList: the Deferreds to wait for.
        consumeErrors: a failing member's failure stops here: callbacks added to
            that member later see ``None``. Without it the failure stays on the
            member's chain, where it must still be handled.

    Example::

        d = gatherResults([fetch("a"), fetch("b")], consumeErrors=True)
        d.addCallback(lambda pages: b"".join(pages))
    """
    return _GatherResults(deferredList, fireOnOneErrback=True, consumeErrors=consumeErrors)


class FailureGroup(Exception):
    """Every Deferred given to ``race`` failed.

    Attributes:
        failures: their ``Failure``s, in the order of the Deferreds.

    Example::

        def none_won(failure):
            failure.trap(FailureGroup)
            for f in failure.value.failures:
                print(f.getErrorMessage())
    """

    def __init__(self, failures: Sequence[Failure]) -> None:
        super().__init__()
        self.failures = failures

    def __str__(self) -> str:
        # Twisted's is empty; saying what failed costs nothing and helps logs.
        messages = "; ".join(
            f"{f.type.__name__}: {f.getErrorMessage()}" for f in self.failures
        )
        return f"{len(self.failures)} failures: {messages}" if messages else ""


def race(ds: Sequence[Deferred[_T]]) -> Deferred[tuple[int, _T]]:
    """Fire with the first success among ``ds``, and cancel all the others.

    Returns:
        A Deferred firing with ``(index, result)`` of the first member to
        succeed. If every member fails it fails with ``FailureGroup`` holding
        their failures in order. Cancelling it cancels every member. The
        winner's own chain continues with ``None`` (its result was taken); the
        losers' failures, including their ``CancelledError``, are consumed.

    Example::

        d = race([query(primary), query(replica)])
        d.addCallback(lambda won: print(f"server {won[0]} answered {won[1]!r}"))
    """
    members = list(ds)
    winner: Deferred[_T] | None = None
    failures: list[tuple[int, Failure]] = []

    def cancel_all(_: Deferred[tuple[int, _T]]) -> None:
        # Nobody can receive a result any more; the members' CancelledErrors
        # then fail ``result`` with a FailureGroup through ``failed``.
        for member in members:
            member.cancel()

    result: Deferred[tuple[int, _T]] = Deferred(canceller=cancel_all)

    def succeeded(value: _T, index: int) -> None:
        # A second success is possible only if a loser's canceller succeeds
        # instead of failing; the first one won, so later ones are dropped.
        nonlocal winner
        if winner is not None:
            return
        winner = members[index]
        # The winner is not cancelled: its caller may still be using it.
        for member in members:
            if member is not winner:
                member.cancel()
        # ``result`` has fired already if it was cancelled and a member then
        # ignored its own cancellation for a while; the late result is dropped.
        if not result.called:
            result.callback((index, value))

    def failed(failure: Failure, index: int) -> None:
        failures.append((index, failure))
        if len(failures) == len(members) and not result.called:
            failures.sort(key=_first)
            result.errback(FailureGroup([f for _, f in failures]))

    for index, member in enumerate(members):
        args = (index,)
        member.addCallbacks(succeeded, failed, callbackArgs=args, errbackArgs=args)
    return result


def _first(item: tuple[int, Failure]) -> int:
    return item[0]
