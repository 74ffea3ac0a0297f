"""Tests for deferred.group: DeferredGroup, structured concurrency for Deferreds.

Coroutines are driven by ``ensureDeferred``; the Deferreds involved fire
synchronously, so no event loop is needed.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable
from typing import Any

import pytest

from deferred import CancelledError, Deferred, ensureDeferred, fail, succeed
from deferred.failure import Failure
from deferred.group import DeferredGroup, GroupFinishedError


class GenericError(Exception):
    pass


class OtherError(Exception):
    pass


def result_of(d: Deferred[Any]) -> Any:
    box: list[Any] = []
    d.addBoth(box.append)
    assert box, f"{d!r} has no result"
    assert not isinstance(box[0], Failure), f"{d!r} failed: {box[0]!r}"
    return box[0]


def failure_of(d: Deferred[Any], *types: type[BaseException]) -> Failure:
    box: list[Any] = []
    d.addBoth(box.append)
    assert box, f"{d!r} has no result"
    f = box[0]
    assert isinstance(f, Failure), f"{d!r} succeeded with {f!r}"
    if types:
        assert f.check(*types), f"{f!r} is not one of {types}"
    return f


def has_result(d: Deferred[Any]) -> bool:
    box: list[Any] = []

    def peek(result: Any) -> Any:
        box.append(result)
        return result

    d.addBoth(peek)
    return bool(box)


def group_errors(d: Deferred[Any]) -> list[BaseException]:
    """The exceptions inside the ExceptionGroup that ``d`` failed with."""
    f = failure_of(d, BaseExceptionGroup)
    assert isinstance(f.value, BaseExceptionGroup)
    return list(f.value.exceptions)


def tracked(log: list[str], name: str) -> Deferred[Any]:
    """A pending Deferred whose canceller notes that it was cancelled."""
    return Deferred(lambda _: log.append(f"cancel {name}"))


@pytest.fixture
def unhandled(caplog: pytest.LogCaptureFixture) -> Callable[[], list[logging.LogRecord]]:
    caplog.set_level(logging.ERROR, logger="deferred")

    def records() -> list[logging.LogRecord]:
        gc.collect()
        return [r for r in caplog.records if "Unhandled error" in r.getMessage()]

    return records


# -- success ------------------------------------------------------------------


def test_results_in_order_added() -> None:
    group: DeferredGroup[str] = DeferredGroup()
    d1: Deferred[str] = Deferred()
    d2: Deferred[str] = Deferred()
    group.add(d1)
    group.add(d2)
    done = group.close()
    d2.callback("b")
    assert not has_result(done)
    d1.callback("a")
    assert result_of(done) == ["a", "b"]
    assert group.results == ["a", "b"]
    assert group.finished


def test_empty_group_finishes_on_close() -> None:
    group: DeferredGroup[int] = DeferredGroup()
    assert result_of(group.close()) == []
    assert group.finished


def test_already_fired_members() -> None:
    group: DeferredGroup[int] = DeferredGroup()
    group.add(succeed(1))
    group.add(succeed(2))
    assert result_of(group.close()) == [1, 2]


def test_add_returns_the_member_with_its_result() -> None:
    group: DeferredGroup[int] = DeferredGroup()
    d = succeed(3)
    assert group.add(d) is d
    assert result_of(d) == 3


def test_wait_does_not_close() -> None:
    group: DeferredGroup[int] = DeferredGroup()
    waiting = group.wait()
    group.add(succeed(1))
    assert not has_result(waiting)
    assert not group.closed
    group.close()
    assert result_of(waiting) == [1]


def test_every_waiter_gets_its_own_list() -> None:
    group: DeferredGroup[int] = DeferredGroup()
    member: Deferred[int] = Deferred()
    group.add(member)
    w1, w2 = group.wait(), group.close()
    w1.addCallback(lambda results: results.append(99))
    member.callback(1)
    assert result_of(w2) == [1]
    assert result_of(group.wait()) == [1]  # after finishing, too


def test_members_added_while_closing() -> None:
    # A running member may start siblings: the group waits for them as well.
    group: DeferredGroup[str] = DeferredGroup()
    parent: Deferred[str] = Deferred()
    child: Deferred[str] = Deferred()
    group.add(parent)
    done = group.close()
    group.add(child)
    parent.callback("parent")
    assert not has_result(done)
    child.callback("child")
    assert result_of(done) == ["parent", "child"]


def test_add_after_finish_raises() -> None:
    group: DeferredGroup[int] = DeferredGroup()
    group.close()
    with pytest.raises(GroupFinishedError, match="finished"):
        group.add(succeed(1))
    called: list[int] = []
    with pytest.raises(GroupFinishedError):
        group.start(called.append, 1)
    assert called == []


def test_results_before_finish_raises() -> None:
    group: DeferredGroup[int] = DeferredGroup()
    with pytest.raises(RuntimeError, match="not finished"):
        group.results


def test_len_counts_pending_members() -> None:
    group: DeferredGroup[int] = DeferredGroup()
    d: Deferred[int] = Deferred()
    group.add(d)
    group.add(succeed(1))
    assert len(group) == 1
    assert "open" in repr(group)
    d.callback(2)
    assert len(group) == 0
    group.close()
    assert "succeeded" in repr(group)


# -- start ----------------------------------------------------------------------


def test_start_with_plain_function() -> None:
    group: DeferredGroup[int] = DeferredGroup()
    d = group.start(lambda a, b: a + b, 1, b=2)
    assert result_of(group.close()) == [3]
    assert result_of(d) == 3


def test_start_with_deferred_returning_function() -> None:
    group: DeferredGroup[str] = DeferredGroup()
    gate: Deferred[str] = Deferred()
    group.start(lambda: gate)
    done = group.close()
    gate.callback("x")
    assert result_of(done) == ["x"]


def test_start_with_coroutine_function() -> None:
    group: DeferredGroup[int] = DeferredGroup()
    gate: Deferred[int] = Deferred()

    async def work(n: int) -> int:
        return n + await gate

    group.start(work, 1)
    done = group.close()
    gate.callback(41)
    assert result_of(done) == [42]


def test_start_with_raising_function() -> None:
    group: DeferredGroup[None] = DeferredGroup()

    def boom() -> None:
        raise GenericError("sync")

    group.start(boom)
    [error] = group_errors(group.close())
    assert isinstance(error, GenericError)


def test_group_does_not_finish_while_start_runs_f() -> None:
    group: DeferredGroup[int] = DeferredGroup()
    last: Deferred[int] = Deferred()
    group.add(last)
    done = group.close()

    def settle_the_others() -> int:
        last.callback(1)  # the only pending member settles while f runs
        assert not group.finished
        return 2

    group.start(settle_the_others)
    assert result_of(done) == [1, 2]


def test_start_keyword_named_f() -> None:
    group: DeferredGroup[int] = DeferredGroup()
    group.start(lambda f: f * 2, f=21)
    assert result_of(group.close()) == [42]


# -- failure --------------------------------------------------------------------


def test_first_failure_cancels_the_others() -> None:
    log: list[str] = []
    group: DeferredGroup[Any] = DeferredGroup()
    a = group.add(tracked(log, "a"))
    b = group.add(tracked(log, "b"))
    c = group.add(tracked(log, "c"))
    done = group.close()
    b.errback(GenericError("b failed"))
    assert log == ["cancel a", "cancel c"]
    assert a.called and c.called
    errors = group_errors(done)
    assert [type(e) for e in errors] == [GenericError]
    assert str(errors[0]) == "b failed"


def test_all_errors_are_collected_in_member_order() -> None:
    group: DeferredGroup[Any] = DeferredGroup()

    def refuse(d: Deferred[Any]) -> None:
        d.errback(OtherError("while cancelled"))

    first: Deferred[Any] = Deferred(refuse)
    second: Deferred[Any] = Deferred()
    group.add(first)
    group.add(second)
    done = group.close()
    second.errback(GenericError("trigger"))
    errors = group_errors(done)
    assert [type(e) for e in errors] == [OtherError, GenericError]
    f = failure_of(group.wait(), ExceptionGroup)
    assert "2 of 2 DeferredGroup members failed" in str(f.value)


def test_failure_waits_for_members_that_ignore_cancellation() -> None:
    group: DeferredGroup[Any] = DeferredGroup()
    inner: Deferred[str] = Deferred()

    def ignore_cancel(f: Failure) -> str:
        f.trap(CancelledError)
        return "finished anyway"

    # Cancelling ``stubborn`` cancels ``inner``, which recovers.
    inner.addErrback(ignore_cancel)
    stubborn = succeed(None).addCallback(lambda _: inner)
    slow: Deferred[str] = Deferred(lambda _: None)  # its canceller does nothing
    group.add(stubborn)
    group.add(slow)
    bad = group.add(Deferred())
    done = group.close()
    bad.errback(GenericError())
    [error] = group_errors(done)
    assert isinstance(error, GenericError)


def test_external_cancellation_of_a_member_is_an_error() -> None:
    group: DeferredGroup[Any] = DeferredGroup()
    victim: Deferred[Any] = Deferred()
    other: Deferred[Any] = Deferred()
    group.add(victim)
    group.add(other)
    done = group.close()
    victim.cancel()  # not the group's doing
    [error] = group_errors(done)
    assert isinstance(error, CancelledError)
    assert other.called  # cancelled by the group in response


def test_already_failed_member() -> None:
    group: DeferredGroup[Any] = DeferredGroup()
    pending: Deferred[Any] = Deferred()
    group.add(pending)
    group.add(fail(GenericError()))
    assert pending.called  # cancelled at once
    [error] = group_errors(group.close())
    assert isinstance(error, GenericError)


def test_member_added_after_failure_is_cancelled() -> None:
    group: DeferredGroup[Any] = DeferredGroup()
    group.add(fail(GenericError()))
    log: list[str] = []
    late = group.add(tracked(log, "late"))
    assert log == ["cancel late"]
    assert late.called
    called: list[int] = []
    group.start(called.append, 1)
    assert called == []  # not even started
    [error] = group_errors(group.close())
    assert isinstance(error, GenericError)


def test_base_exceptions_make_a_base_exception_group() -> None:
    group: DeferredGroup[Any] = DeferredGroup()
    group.add(fail(KeyboardInterrupt()))
    f = failure_of(group.close(), BaseExceptionGroup)
    assert not isinstance(f.value, ExceptionGroup)
    assert isinstance(f.value, BaseExceptionGroup)
    assert isinstance(f.value.exceptions[0], KeyboardInterrupt)


def test_exceptions_make_an_exception_group() -> None:
    group: DeferredGroup[Any] = DeferredGroup()
    group.add(fail(GenericError()))
    failure_of(group.close(), ExceptionGroup)


def test_member_failures_are_consumed(unhandled: Any) -> None:
    group: DeferredGroup[Any] = DeferredGroup()
    member: Deferred[Any] = Deferred()
    group.add(member)
    member.errback(GenericError())
    assert result_of(member) is None
    failure_of(group.close(), ExceptionGroup)
    del member, group
    assert unhandled() == []


def test_uncollected_group_failure_is_logged(unhandled: Any) -> None:
    group: DeferredGroup[Any] = DeferredGroup()
    member: Deferred[Any] = Deferred()
    group.add(member)
    group.close().addErrback(lambda f: None)  # handled here: not logged
    member.errback(GenericError())
    del group, member
    assert unhandled() == []

    group = DeferredGroup()
    group.add(fail(GenericError()))
    group.close()  # the returned Deferred holds the failure, unhandled
    del group
    [record] = unhandled()
    assert record.exc_info is not None
    assert issubclass(record.exc_info[0], BaseExceptionGroup)


def test_waiter_fired_by_its_owner_is_left_alone(unhandled: Any) -> None:
    group: DeferredGroup[Any] = DeferredGroup()
    waiter = group.wait()
    waiter.callback(["mine"])  # its owner fired it: the group must not
    member: Deferred[Any] = Deferred()
    group.add(member)
    done = group.close()
    member.errback(GenericError())
    assert result_of(waiter) == ["mine"]
    group_errors(done)
    del waiter, done, member, group
    assert unhandled() == []


def test_late_wait_collects_the_failure(unhandled: Any) -> None:
    group: DeferredGroup[Any] = DeferredGroup()
    group.add(fail(GenericError()))
    group.close().addErrback(lambda f: None)
    late = group.wait()
    group_errors(late)  # a fresh Deferred with the same failure
    del late, group
    assert unhandled() == []


# -- cancellation ---------------------------------------------------------------


def test_cancel_cancels_every_member() -> None:
    log: list[str] = []
    group: DeferredGroup[Any] = DeferredGroup()
    group.add(tracked(log, "a"))
    group.add(tracked(log, "b"))
    done = group.close()
    group.cancel()
    assert log == ["cancel a", "cancel b"]
    f = failure_of(done, CancelledError)
    assert not isinstance(f.value, BaseExceptionGroup)


def test_cancelling_the_waiter_cancels_the_group() -> None:
    log: list[str] = []
    group: DeferredGroup[Any] = DeferredGroup()
    group.add(tracked(log, "a"))
    done = group.close()
    done.cancel()
    assert log == ["cancel a"]
    failure_of(done, CancelledError)
    assert group.finished


def test_cancelled_waiter_fires_with_the_outcome_later() -> None:
    # Like DeferredList: the waiter is not failed at once, it reports the
    # group's real outcome once the members have reacted.
    group: DeferredGroup[str] = DeferredGroup()
    inner: Deferred[str] = Deferred()
    inner.addErrback(lambda f: "recovered")  # handles its cancellation
    member = succeed("").addCallback(lambda _: inner)
    group.add(member)
    done = group.close()
    done.cancel()
    assert result_of(done) == ["recovered"]


def test_cancel_with_callback_canceller_gives_results() -> None:
    group: DeferredGroup[str] = DeferredGroup()
    group.add(Deferred(lambda d: d.callback("from canceller")))
    done = group.close()
    group.cancel()
    assert result_of(done) == ["from canceller"]


def test_cancel_then_other_error_is_reported() -> None:
    group: DeferredGroup[Any] = DeferredGroup()
    group.add(Deferred(lambda d: d.errback(GenericError("cleanup failed"))))
    group.add(Deferred())
    done = group.close()
    group.cancel()
    [error] = group_errors(done)
    assert isinstance(error, GenericError)


def test_cancel_after_finish_does_nothing() -> None:
    group: DeferredGroup[int] = DeferredGroup()
    d = group.add(succeed(1))
    done = group.close()
    group.cancel()
    assert result_of(done) == [1]
    assert result_of(d) == 1


def test_cancel_before_close_waits_for_close() -> None:
    group: DeferredGroup[Any] = DeferredGroup()
    group.add(Deferred())
    waiting = group.wait()
    group.cancel()
    assert not has_result(waiting)
    group.close()
    failure_of(waiting, CancelledError)


def test_cancel_survives_raising_cancel(caplog: pytest.LogCaptureFixture) -> None:
    class Stubborn(Deferred[None]):
        def cancel(self) -> None:
            raise RuntimeError("no")

    group: DeferredGroup[Any] = DeferredGroup()
    stubborn = group.add(Stubborn())
    log: list[str] = []
    group.add(tracked(log, "b"))
    done = group.close()
    with caplog.at_level(logging.ERROR, logger="deferred"):
        group.cancel()
    assert log == ["cancel b"]
    assert any(r.exc_info and r.exc_info[0] is RuntimeError for r in caplog.records)
    stubborn.callback(None)
    failure_of(done, CancelledError)


# -- async with -------------------------------------------------------------------


def test_async_with_waits_for_members() -> None:
    gate: Deferred[str] = Deferred()

    async def body() -> list[str]:
        async with DeferredGroup[str]() as group:
            group.start(lambda: gate)
            group.add(succeed("now"))
        return group.results

    d = ensureDeferred(body())
    assert not has_result(d)
    gate.callback("later")
    assert result_of(d) == ["later", "now"]


def test_async_with_raises_member_errors() -> None:
    async def failing() -> None:
        raise GenericError("member")

    async def body() -> None:
        async with DeferredGroup[None]() as group:
            group.start(failing)

    d = ensureDeferred(body())
    [error] = group_errors(d)
    assert isinstance(error, GenericError)


def test_async_with_except_star() -> None:
    gate: Deferred[None] = Deferred()
    log: list[str] = []

    async def body() -> str:
        outcome = "not raised"
        try:
            async with DeferredGroup[None]() as group:
                group.add(tracked(log, "slow"))
                group.start(lambda: gate)
        except* GenericError as eg:
            outcome = f"caught {len(eg.exceptions)}"
        return outcome

    d = ensureDeferred(body())
    gate.errback(GenericError())
    assert log == ["cancel slow"]
    assert result_of(d) == "caught 1"


def test_async_with_body_exception_cancels_members() -> None:
    log: list[str] = []

    async def body() -> None:
        async with DeferredGroup[None]() as group:
            group.add(tracked(log, "a"))
            raise GenericError("body")

    d = ensureDeferred(body())
    assert log == ["cancel a"]
    errors = group_errors(d)
    assert [str(e) for e in errors] == ["body"]


def test_async_with_body_exception_and_member_errors() -> None:
    async def body() -> None:
        async with DeferredGroup[None]() as group:
            group.add(Deferred(lambda d: d.errback(OtherError("member"))))
            raise GenericError("body")

    d = ensureDeferred(body())
    f = failure_of(d, ExceptionGroup)
    assert [type(e) for e in f.value.exceptions] == [GenericError, OtherError]
    assert f.value.__cause__ is None and f.value.__suppress_context__


def test_async_with_cancelled_body_propagates_cancellation() -> None:
    gate: Deferred[None] = Deferred()
    log: list[str] = []

    async def body() -> None:
        async with DeferredGroup[None]() as group:
            group.add(tracked(log, "member"))
            await gate  # the coroutine is cancelled here

    d = ensureDeferred(body())
    d.cancel()
    assert log == ["cancel member"]
    f = failure_of(d, CancelledError)
    assert not isinstance(f.value, BaseExceptionGroup)


def test_async_with_cancelled_while_waiting_for_members() -> None:
    log: list[str] = []

    async def body() -> None:
        async with DeferredGroup[None]() as group:
            group.add(tracked(log, "member"))

    d = ensureDeferred(body())
    assert not has_result(d)
    d.cancel()
    assert log == ["cancel member"]
    failure_of(d, CancelledError)


def test_async_with_group_cancelled_in_body_raises_cancelled() -> None:
    async def body() -> None:
        async with DeferredGroup[None]() as group:
            group.add(Deferred())
            group.cancel()

    failure_of(ensureDeferred(body()), CancelledError)


def test_async_with_members_start_siblings() -> None:
    seen: list[int] = []

    async def body() -> list[int]:
        async with DeferredGroup[int]() as group:

            async def crawl(n: int) -> int:
                seen.append(n)
                if n < 3:
                    group.start(crawl, n + 1)
                return n

            group.start(crawl, 0)
        return group.results

    assert result_of(ensureDeferred(body())) == [0, 1, 2, 3]
    assert seen == [0, 1, 2, 3]


def test_async_with_reentry_rejected() -> None:
    group: DeferredGroup[None] = DeferredGroup()

    async def body() -> None:
        async with group:
            pass
        async with group:
            pass

    failure_of(ensureDeferred(body()), RuntimeError)


def test_async_with_no_unhandled_errors(unhandled: Any) -> None:
    async def body() -> None:
        async with DeferredGroup[None]() as group:
            group.add(fail(GenericError()))
            group.add(Deferred())

    d = ensureDeferred(body())
    failure_of(d, ExceptionGroup)
    del d
    assert unhandled() == []


def test_exported_from_package() -> None:
    import deferred

    assert deferred.DeferredGroup is DeferredGroup
