"""Tests for deferred.combinators: DeferredList, gatherResults, race, FirstError.

Twisted's test_defer.py is the specification; these tests restate its cases
for pytest, plus the corners it leaves out (already-fired members on the fast
path, consumed errors and unhandled-error logging, typing-visible results).
"""

from __future__ import annotations

import gc
import logging
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deferred import CancelledError, Deferred, fail, succeed
from deferred.combinators import (
    FAILURE,
    SUCCESS,
    DeferredList,
    FailureGroup,
    FirstError,
    gatherResults,
    race,
)
from deferred.failure import Failure


class GenericError(Exception):
    pass


# -- helpers -----------------------------------------------------------------


def result_of(d: Deferred[Any]) -> Any:
    """The success result of a fired Deferred (consumed, as trial's successResultOf)."""
    box: list[Any] = []
    d.addBoth(box.append)
    assert box, f"{d!r} has no result"
    assert not isinstance(box[0], Failure), f"{d!r} failed: {box[0]!r}"
    return box[0]


def failure_of(d: Deferred[Any], *types: type[BaseException]) -> Failure:
    """The Failure of a failed Deferred (consumed), checked against ``types``."""
    box: list[Any] = []
    d.addBoth(box.append)
    assert box, f"{d!r} has no result"
    f = box[0]
    assert isinstance(f, Failure), f"{d!r} succeeded with {f!r}"
    if types:
        assert f.check(*types), f"{f!r} is not one of {types}"
    return f


def assert_no_result(d: Deferred[Any]) -> None:
    """Check that ``d`` has no result yet, leaving it untouched."""
    box: list[Any] = []

    def peek(result: Any) -> Any:
        box.append(result)
        return result

    d.addBoth(peek)
    assert not box, f"{d!r} has a result: {box!r}"


def callback_canceller(d: Deferred[Any]) -> None:
    """A canceller that succeeds instead of failing."""
    d.callback("Callback Result")


@pytest.fixture
def unhandled(caplog: pytest.LogCaptureFixture) -> Any:
    """A function returning the 'Unhandled error' records logged so far (after a GC)."""
    caplog.set_level(logging.ERROR, logger="deferred")

    def records() -> list[logging.LogRecord]:
        gc.collect()
        return [r for r in caplog.records if "Unhandled error" in r.getMessage()]

    return records


# -- DeferredList ------------------------------------------------------------


def test_constants() -> None:
    assert SUCCESS is True
    assert FAILURE is False


def test_results_in_member_order() -> None:
    d1: Deferred[str] = Deferred()
    d2: Deferred[str] = Deferred()
    d3: Deferred[str] = Deferred()
    dl = DeferredList([d1, d2, d3])
    got: list[Any] = []
    dl.addCallback(got.append)
    d3.callback("3")
    d2.addErrback(lambda f: None)  # runs after the DeferredList's errback
    d2.errback(GenericError("2"))
    assert got == []
    d1.callback("1")
    [results] = got
    assert results[0] == (SUCCESS, "1")
    assert results[1][0] is FAILURE
    assert isinstance(results[1][1], Failure)
    assert str(results[1][1].value) == "2"
    assert results[2] == (SUCCESS, "3")


def test_attributes_track_progress() -> None:
    d1: Deferred[int] = Deferred()
    d2: Deferred[int] = Deferred()
    dl = DeferredList([d1, d2])
    assert dl.resultList == [None, None]
    assert dl.finishedCount == 0
    d2.callback(2)
    assert dl.resultList == [None, (SUCCESS, 2)]
    assert dl.finishedCount == 1
    assert not dl.called
    d1.callback(1)
    assert dl.finishedCount == 2
    assert result_of(dl) == [(SUCCESS, 1), (SUCCESS, 2)]


def test_is_a_deferred() -> None:
    dl = DeferredList([succeed(1)])
    assert isinstance(dl, Deferred)
    assert result_of(dl.addCallback(len)) == 1


def test_empty_fires_with_empty_list() -> None:
    assert result_of(DeferredList([])) == []
    assert result_of(DeferredList([], fireOnOneErrback=True)) == []


def test_empty_with_fire_on_one_callback_never_fires() -> None:
    assert_no_result(DeferredList([], fireOnOneCallback=True))


def test_accepts_any_iterable_and_copies_it() -> None:
    ds = [succeed(1), succeed(2)]
    dl = DeferredList(d for d in ds)
    assert result_of(dl) == [(SUCCESS, 1), (SUCCESS, 2)]


def test_fire_on_one_callback() -> None:
    d1: Deferred[str] = Deferred()
    d2: Deferred[str] = Deferred()
    dl = DeferredList([d1, d2], fireOnOneCallback=True)
    d2.callback("two")
    assert result_of(dl) == ("two", 1)
    # The others are left alone, and still recorded.
    assert_no_result(d1)
    d1.callback("one")
    assert dl.resultList == [(SUCCESS, "one"), (SUCCESS, "two")]


def test_fire_on_one_callback_waits_past_failures() -> None:
    d1: Deferred[str] = Deferred()
    d2: Deferred[str] = Deferred()
    dl = DeferredList([d1, d2], fireOnOneCallback=True, consumeErrors=True)
    d1.errback(GenericError())
    assert_no_result(dl)
    d2.callback("ok")
    assert result_of(dl) == ("ok", 1)


def test_fire_on_one_callback_all_fail_gives_list() -> None:
    d1: Deferred[str] = Deferred()
    dl = DeferredList([d1], fireOnOneCallback=True, consumeErrors=True)
    d1.errback(GenericError())
    [(success, f)] = result_of(dl)
    assert success is FAILURE
    assert f.check(GenericError)


def test_fire_on_one_errback() -> None:
    d1: Deferred[str] = Deferred()
    d2: Deferred[str] = Deferred()
    d3: Deferred[str] = Deferred()
    dl = DeferredList([d1, d2, d3], fireOnOneErrback=True)
    errors: list[Failure] = []
    dl.addErrback(errors.append)
    d2.addErrback(lambda f: None)
    d1.callback("1")
    assert errors == []
    d2.errback(GenericError("from d2"))
    [f] = errors
    assert f.check(FirstError)
    first = f.value
    assert isinstance(first, FirstError)
    assert first.subFailure.type is GenericError
    assert first.subFailure.value.args == ("from d2",)
    assert first.index == 1


def test_fire_on_one_errback_with_already_failed_member() -> None:
    d1: Deferred[None] = Deferred()
    d2: Deferred[None] = Deferred()
    d1.errback(GenericError("Bang"))
    dl = DeferredList([d1, d2], fireOnOneErrback=True)
    f = failure_of(dl, FirstError)
    assert f.value.index == 0
    d1.addErrback(lambda f: None)


def test_fire_on_one_errback_all_succeed_gives_list() -> None:
    dl = DeferredList([succeed(1), succeed(2)], fireOnOneErrback=True)
    assert result_of(dl) == [(SUCCESS, 1), (SUCCESS, 2)]


def test_both_flags_first_event_wins() -> None:
    d1: Deferred[int] = Deferred()
    d2: Deferred[int] = Deferred()
    dl = DeferredList([d1, d2], fireOnOneCallback=True, fireOnOneErrback=True,
                      consumeErrors=True)
    d2.errback(GenericError())
    assert failure_of(dl, FirstError).value.index == 1
    d1.callback(1)  # too late: ignored by the DeferredList
    assert dl.resultList[0] == (SUCCESS, 1)


def test_both_flags_with_fired_members_first_in_order_wins() -> None:
    bad = fail(GenericError())
    dl = DeferredList([bad, succeed(1)], fireOnOneCallback=True, fireOnOneErrback=True,
                      consumeErrors=True)
    assert failure_of(dl, FirstError).value.index == 0
    dl = DeferredList([succeed(1), fail(GenericError())], fireOnOneCallback=True,
                      fireOnOneErrback=True, consumeErrors=True)
    assert result_of(dl) == (1, 0)


def test_already_fired_members() -> None:
    d1: Deferred[int] = Deferred()
    d2: Deferred[int] = Deferred()
    d1.errback(GenericError("Bang"))
    d2.callback(2)
    dl = DeferredList([d1, d2])
    results = result_of(dl)
    assert results[0][0] is FAILURE
    assert results[1] == (SUCCESS, 2)
    d1.addErrback(lambda f: None)


def test_mixed_fired_and_pending_members() -> None:
    pending: Deferred[int] = Deferred()
    dl = DeferredList([succeed(0), pending, succeed(2)])
    assert_no_result(dl)
    pending.callback(1)
    assert result_of(dl) == [(SUCCESS, 0), (SUCCESS, 1), (SUCCESS, 2)]


def test_member_results_pass_through() -> None:
    d: Deferred[int] = Deferred()
    DeferredList([d])
    d.callback(5)
    assert result_of(d) == 5
    fired = succeed(6)
    DeferredList([fired])
    assert result_of(fired) == 6


def test_paused_member_is_waited_for() -> None:
    d = succeed(1)
    d.pause()
    dl = DeferredList([d])
    assert_no_result(dl)
    d.unpause()
    assert result_of(dl) == [(SUCCESS, 1)]


def test_member_waiting_on_inner_deferred() -> None:
    inner: Deferred[int] = Deferred()
    outer = succeed(0).addCallback(lambda _: inner)
    dl = DeferredList([outer])
    assert_no_result(dl)
    inner.callback(7)
    assert result_of(dl) == [(SUCCESS, 7)]


def test_created_inside_a_members_callback() -> None:
    # The member is running its callbacks: ours must run after the current one.
    d: Deferred[int] = Deferred()
    seen: list[Any] = []

    def make_list(value: int) -> int:
        DeferredList([d]).addCallback(seen.append)
        return value + 1

    d.addCallback(make_list)
    d.callback(1)
    assert seen == [[(SUCCESS, 2)]]


def test_callbacks_before_the_list_change_its_view() -> None:
    d: Deferred[int] = Deferred()
    d.addCallback(lambda v: v * 10)
    dl = DeferredList([d])
    d.addCallback(lambda v: v + 1)
    d.callback(1)
    assert result_of(dl) == [(SUCCESS, 10)]
    assert result_of(d) == 11


def test_dont_consume_errors() -> None:
    d1: Deferred[None] = Deferred()
    dl = DeferredList([d1])
    trapped: list[Failure] = []
    d1.addErrback(trapped.append)
    d1.errback(GenericError("Bang"))
    assert trapped[0].value.args[0] == "Bang"
    [(success, f)] = result_of(dl)
    assert success is FAILURE
    assert f.value.args[0] == "Bang"


def test_consume_errors() -> None:
    d1: Deferred[None] = Deferred()
    dl = DeferredList([d1], consumeErrors=True)
    trapped: list[Any] = []
    d1.addBoth(trapped.append)
    d1.errback(GenericError("Bang"))
    assert trapped == [None]
    [(success, f)] = result_of(dl)
    assert success is FAILURE
    assert f.value.args[0] == "Bang"


def test_consume_errors_on_already_failed_member() -> None:
    d1 = fail(GenericError("Bang"))
    dl = DeferredList([d1], consumeErrors=True)
    assert result_of(d1) is None
    assert result_of(dl)[0][1].check(GenericError)


def test_consumed_errors_are_not_logged(unhandled: Any) -> None:
    pending: Deferred[None] = Deferred()
    dl = DeferredList([fail(GenericError("fired")), pending], consumeErrors=True)
    pending.errback(GenericError("later"))
    assert [ok for ok, _ in result_of(dl)] == [FAILURE, FAILURE]
    del dl, pending
    assert unhandled() == []


def test_unconsumed_errors_stay_on_the_member(unhandled: Any) -> None:
    member = fail(GenericError("kept"))
    dl = DeferredList([member])
    result_of(dl)
    del dl
    assert unhandled() == []  # the member is still alive, holding it
    del member
    [record] = unhandled()
    assert record.exc_info is not None and record.exc_info[0] is GenericError


def test_unconsumed_errors_stay_on_pending_member(unhandled: Any) -> None:
    member: Deferred[None] = Deferred()
    DeferredList([member]).addCallback(lambda _: None)
    member.errback(GenericError("kept"))
    del member
    assert len(unhandled()) == 1


def test_fire_on_one_errback_failure_is_the_lists_to_handle(unhandled: Any) -> None:
    member: Deferred[None] = Deferred()
    dl = DeferredList([member], fireOnOneErrback=True, consumeErrors=True)
    member.errback(GenericError())
    del dl, member
    [record] = unhandled()
    assert record.exc_info is not None and record.exc_info[0] is FirstError


@settings(max_examples=200, deadline=None)
@given(
    outcomes=st.lists(st.booleans(), max_size=6),
    fire_on_one_callback=st.booleans(),
    fire_on_one_errback=st.booleans(),
    consume_errors=st.booleans(),
)
def test_fired_members_same_as_members_firing_later(
    outcomes: list[bool],
    fire_on_one_callback: bool,
    fire_on_one_errback: bool,
    consume_errors: bool,
) -> None:
    # Members that have fired take a fast path; it must be indistinguishable
    # from the ordinary one, taken by members that fire afterwards in order.
    flags = {"fireOnOneCallback": fire_on_one_callback,
             "fireOnOneErrback": fire_on_one_errback, "consumeErrors": consume_errors}

    def fire(d: Deferred[Any], i: int, ok: bool) -> None:
        if ok:
            d.callback(i)
        else:
            d.errback(GenericError(str(i)))

    def outcome(d: Deferred[Any]) -> Any:
        box: list[Any] = []
        d.addBoth(box.append)
        if not box:
            return "pending"
        if isinstance(box[0], Failure):
            box[0].trap(FirstError, GenericError)
            value = box[0].value
            if isinstance(value, FirstError):
                return ("FirstError", value.index, value.subFailure.getErrorMessage())
            return ("error", str(value))
        return _plain(box[0])

    early: list[Deferred[Any]] = []
    for i, ok in enumerate(outcomes):
        d: Deferred[Any] = Deferred()
        fire(d, i, ok)
        early.append(d)
    early_list = DeferredList(early, **flags)

    late: list[Deferred[Any]] = [Deferred() for _ in outcomes]
    late_list = DeferredList(late, **flags)
    for i, (d, ok) in enumerate(zip(late, outcomes, strict=True)):
        fire(d, i, ok)

    assert outcome(early_list) == outcome(late_list)
    assert _plain(early_list.resultList) == _plain(late_list.resultList)
    assert early_list.finishedCount == late_list.finishedCount == len(outcomes)
    assert [outcome(d) for d in early] == [outcome(d) for d in late]


def _plain(value: Any) -> Any:
    """``value`` with each Failure replaced by its message, for comparisons."""
    if isinstance(value, Failure):
        return ("failure", value.getErrorMessage())
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    return value


# -- DeferredList.cancel -------------------------------------------------------


def test_cancel_cancels_every_member() -> None:
    d1: Deferred[None] = Deferred()
    d2: Deferred[None] = Deferred()
    dl = DeferredList([d1, d2])
    dl.cancel()
    failure_of(d1, CancelledError)
    failure_of(d2, CancelledError)
    results = result_of(dl)
    assert [ok for ok, _ in results] == [FAILURE, FAILURE]


def test_cancel_member_that_succeeds_in_canceller() -> None:
    d1: Deferred[str] = Deferred(callback_canceller)
    d2: Deferred[str] = Deferred()
    dl = DeferredList([d1, d2])
    dl.cancel()
    failure_of(d2, CancelledError)
    results = result_of(dl)
    assert results[0] == (SUCCESS, "Callback Result")
    assert results[1][0] is FAILURE
    assert results[1][1].check(CancelledError)


def test_cancel_with_fire_on_one_callback() -> None:
    d1: Deferred[None] = Deferred()
    d2: Deferred[None] = Deferred()
    dl = DeferredList([d1, d2], fireOnOneCallback=True)
    dl.cancel()
    failure_of(d1, CancelledError)
    failure_of(d2, CancelledError)


def test_cancel_with_fire_on_one_callback_and_callback_canceller() -> None:
    d1: Deferred[str] = Deferred(callback_canceller)
    d2: Deferred[str] = Deferred()
    dl = DeferredList([d1, d2], fireOnOneCallback=True)
    dl.cancel()
    failure_of(d2, CancelledError)
    assert result_of(dl) == ("Callback Result", 0)


def test_cancel_with_fire_on_one_errback() -> None:
    d1: Deferred[None] = Deferred()
    d2: Deferred[None] = Deferred()
    dl = DeferredList([d1, d2], fireOnOneErrback=True)
    dl.cancel()
    failure_of(d1, CancelledError)
    failure_of(d2, CancelledError)
    first = failure_of(dl, FirstError).value
    assert first.subFailure.check(CancelledError)


def test_cancel_with_fire_on_one_errback_all_callback_cancellers() -> None:
    d1: Deferred[str] = Deferred(callback_canceller)
    d2: Deferred[str] = Deferred(callback_canceller)
    dl = DeferredList([d1, d2], fireOnOneErrback=True)
    dl.cancel()
    assert result_of(dl) == [(SUCCESS, "Callback Result"), (SUCCESS, "Callback Result")]


def test_cancel_only_original_members() -> None:
    d1: Deferred[None] = Deferred()
    d2: Deferred[None] = Deferred()
    members = [d1, d2]
    dl = DeferredList(members)
    d3: Deferred[None] = Deferred()
    members.append(d3)
    dl.cancel()
    failure_of(d1, CancelledError)
    failure_of(d2, CancelledError)
    assert_no_result(d3)


def test_cancel_survives_raising_canceller(caplog: pytest.LogCaptureFixture) -> None:
    def raising(d: Deferred[Any]) -> None:
        raise RuntimeError("test")

    d1: Deferred[None] = Deferred(raising)
    d2: Deferred[None] = Deferred()
    dl = DeferredList([d1, d2])
    with caplog.at_level(logging.ERROR, logger="deferred"):
        dl.cancel()
    failure_of(d2, CancelledError)
    failure_of(d1)
    logged = [r for r in caplog.records if r.exc_info and r.exc_info[0] is RuntimeError]
    assert len(logged) == 1


def test_cancel_survives_raising_cancel_method(caplog: pytest.LogCaptureFixture) -> None:
    class Stubborn(Deferred[None]):
        def cancel(self) -> None:
            raise RuntimeError("no")

    d1 = Stubborn()
    d2: Deferred[None] = Deferred()
    dl = DeferredList([d1, d2])
    with caplog.at_level(logging.ERROR, logger="deferred"):
        dl.cancel()
    failure_of(d2, CancelledError)
    assert any(r.exc_info and r.exc_info[0] is RuntimeError for r in caplog.records)
    d1.callback(None)
    assert [ok for ok, _ in result_of(dl)] == [SUCCESS, FAILURE]


def test_cancel_after_fire_on_one_callback_does_nothing() -> None:
    d1: Deferred[None] = Deferred()
    d2: Deferred[None] = Deferred()
    dl = DeferredList([d1, d2], fireOnOneCallback=True)
    d1.callback(None)
    dl.cancel()
    assert_no_result(d2)


def test_cancel_after_fire_on_one_errback_does_nothing() -> None:
    d1: Deferred[None] = Deferred()
    d2: Deferred[None] = Deferred()
    dl = DeferredList([d1, d2], fireOnOneErrback=True)
    d1.errback(GenericError("test"))
    dl.cancel()
    assert_no_result(d2)
    failure_of(d1, GenericError)
    failure_of(dl, FirstError)


# -- gatherResults -------------------------------------------------------------


def test_gather_results() -> None:
    assert result_of(gatherResults([succeed(1), succeed(2)])) == [1, 2]


def test_gather_results_empty() -> None:
    assert result_of(gatherResults([])) == []


def test_gather_results_order_follows_members() -> None:
    d1: Deferred[str] = Deferred()
    d2: Deferred[str] = Deferred()
    gathered = gatherResults([d1, d2])
    d2.callback("b")
    assert_no_result(gathered)
    d1.callback("a")
    assert result_of(gathered) == ["a", "b"]


def test_gather_results_failure() -> None:
    ds = [succeed(1), fail(ValueError())]
    f = failure_of(gatherResults(ds), FirstError)
    assert f.value.index == 1
    assert f.value.subFailure.check(ValueError)
    ds[1].addErrback(lambda f: 1)


def test_gather_results_first_failure_wins_and_others_run_on() -> None:
    d1: Deferred[int] = Deferred()
    d2: Deferred[int] = Deferred()
    gathered = gatherResults([d1, d2], consumeErrors=True)
    d2.errback(GenericError("second"))
    f = failure_of(gathered, FirstError)
    assert f.value.index == 1
    assert_no_result(d1)  # not cancelled
    d1.errback(GenericError("first"))  # no AlreadyCalledError, nothing changes


def test_gather_results_consume_errors() -> None:
    good = succeed(1)
    bad = fail(RuntimeError("oh noes"))
    gathered = gatherResults([good, bad], consumeErrors=True)
    unconsumed: list[Any] = []
    bad.addErrback(unconsumed.append)
    assert unconsumed == []
    first = failure_of(gathered, FirstError).value
    assert isinstance(first.subFailure.value, RuntimeError)


def test_gather_results_keeps_errors_without_consume(unhandled: Any) -> None:
    bad: Deferred[int] = Deferred()
    gathered = gatherResults([bad])
    bad.errback(GenericError())
    failure_of(gathered, FirstError)
    assert failure_of(bad, GenericError)
    del bad, gathered
    assert unhandled() == []


def test_gather_results_consumed_errors_are_not_logged(unhandled: Any) -> None:
    pending: Deferred[int] = Deferred()
    gathered = gatherResults([fail(GenericError()), pending], consumeErrors=True)
    pending.errback(GenericError())
    failure_of(gathered, FirstError)
    del gathered, pending
    assert unhandled() == []


def test_gather_results_is_a_deferred_list() -> None:
    gathered = gatherResults([succeed(1)])
    assert isinstance(gathered, DeferredList)


def test_cancel_gather_results() -> None:
    d1: Deferred[None] = Deferred()
    d2: Deferred[None] = Deferred()
    gathered = gatherResults([d1, d2])
    gathered.cancel()
    failure_of(d1, CancelledError)
    failure_of(d2, CancelledError)
    first = failure_of(gathered, FirstError).value
    assert first.subFailure.check(CancelledError)


def test_cancel_gather_results_all_callback_cancellers() -> None:
    d1: Deferred[str] = Deferred(callback_canceller)
    d2: Deferred[str] = Deferred(callback_canceller)
    gathered = gatherResults([d1, d2])
    gathered.cancel()
    assert result_of(gathered) == ["Callback Result", "Callback Result"]


def test_gather_results_many_fired() -> None:
    ds = [succeed(i) for i in range(1000)]
    assert result_of(gatherResults(ds)) == list(range(1000))
    # The members keep their results.
    assert [result_of(d) for d in ds[:3]] == [0, 1, 2]


# -- FirstError ----------------------------------------------------------------


def _failure(exc: BaseException) -> Failure:
    try:
        raise exc
    except BaseException:
        return Failure()


def test_first_error_repr() -> None:
    exc = ValueError("some text")
    error = FirstError(_failure(exc), 3)
    assert repr(error) == f"FirstError[#3, {exc!r}]"


def test_first_error_str() -> None:
    f = _failure(ValueError("some text"))
    error = FirstError(f, 5)
    assert str(error) == f"FirstError[#5, {f}]"


def test_first_error_attributes_and_args() -> None:
    f = _failure(ValueError())
    error = FirstError(f, 2)
    assert error.subFailure is f
    assert error.index == 2
    assert error.args == (f, 2)


def test_first_error_comparison() -> None:
    first = _failure(ZeroDivisionError())
    one = FirstError(first, 13)
    another_one = FirstError(first, 13)
    other = FirstError(_failure(ValueError("bar")), 9)
    assert one == another_one
    assert not one == other  # noqa: SIM201 - testing __eq__ itself
    assert one != other
    assert not one != another_one  # noqa: SIM202 - testing __ne__ itself
    assert not one == 10  # noqa: SIM201
    assert one != 10
    assert FirstError(first, 1) != FirstError(first, 2)


def test_first_error_is_hashable() -> None:
    f = _failure(ValueError())
    assert len({FirstError(f, 1), FirstError(f, 1)}) <= 2
    assert hash(FirstError(f, 1)) == hash(FirstError(f, 1))


# -- race ----------------------------------------------------------------------


def _race_state(n: int) -> tuple[list[int], list[Deferred[object]]]:
    cancelled = [0] * n
    ds: list[Deferred[object]] = []
    for i in range(n):

        def cancel(d: Deferred[object], i: int = i) -> None:
            cancelled[i] += 1

        ds.append(Deferred(canceller=cancel))
    return cancelled, ds


@pytest.mark.parametrize("before", range(4))
@pytest.mark.parametrize("after", range(4))
def test_race_success(before: int, after: int) -> None:
    cancelled, ds = _race_state(before + 1 + after)
    raced = race(ds)
    expected = object()
    ds[before].callback(expected)
    assert result_of(raced) == (before, expected)
    assert cancelled == [1] * before + [0] + [1] * after


@pytest.mark.parametrize("before", range(4))
@pytest.mark.parametrize("after", range(4))
def test_race_failure(before: int, after: int) -> None:
    cancelled, ds = _race_state(before + 1 + after)
    failure = Failure(Exception("The test demands failures."))
    raced = race(ds)
    for d in ds:
        d.errback(failure)
    f = failure_of(raced, FailureGroup)
    assert f.value.failures == [failure] * len(ds)
    assert cancelled == [0] * len(ds)


def test_race_failures_in_member_order() -> None:
    ds: list[Deferred[int]] = [Deferred(), Deferred(), Deferred()]
    raced = race(ds)
    for i in (2, 0, 1):
        ds[i].errback(GenericError(str(i)))
    f = failure_of(raced, FailureGroup)
    assert [x.getErrorMessage() for x in f.value.failures] == ["0", "1", "2"]
    assert "3 failures" in str(f.value)


@pytest.mark.parametrize("before", range(3))
@pytest.mark.parametrize("after", range(3))
def test_race_result_after_cancel_goes_nowhere(
    before: int, after: int, unhandled: Any
) -> None:
    ds: list[Deferred[None]] = [Deferred() for _ in range(before + 2 + after)]
    raced = race(ds)
    ds[before].callback(None)
    ds[before + 1].callback(None)  # cancelled without a canceller: dropped
    result_of(raced)
    del ds, raced
    assert unhandled() == []


def test_race_result_from_cancel() -> None:
    winner: Deferred[object] = Deferred()
    ds: list[Deferred[object]] = [winner, Deferred(canceller=lambda d: d.callback(object()))]
    expected = object()
    raced = race(ds)
    winner.callback(expected)
    assert result_of(raced) == (0, expected)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_race_cancel(n: int) -> None:
    cancelled, ds = _race_state(n)
    raced = race(ds)
    raced.cancel()
    assert cancelled == [1] * n
    failure_of(raced, FailureGroup)


def test_race_with_already_fired_member() -> None:
    cancelled, ds = _race_state(2)
    raced = race([*ds, succeed("now")])
    assert result_of(raced) == (2, "now")
    assert cancelled == [1, 1]


def test_race_consumes_loser_failures(unhandled: Any) -> None:
    loser: Deferred[int] = Deferred()
    winner: Deferred[int] = Deferred()
    raced = race([loser, winner])
    winner.callback(1)
    assert result_of(raced) == (1, 1)
    assert result_of(loser) is None  # its CancelledError was consumed
    del loser, winner, raced
    assert unhandled() == []


def test_race_late_member_after_cancel_is_ignored() -> None:
    # A member that ignores cancellation and succeeds later must not cause
    # AlreadyCalledError once race's own Deferred has failed.
    inner: Deferred[int] = Deferred()
    slow = succeed(0).addCallback(lambda _: inner)  # cancel() reaches ``inner``
    raced = race([slow])
    raced.cancel()
    failure_of(raced, FailureGroup)
    assert result_of(slow) is None  # its CancelledError went to race


def test_failure_group_holds_failures() -> None:
    fs = [Failure(GenericError("a"))]
    group = FailureGroup(fs)
    assert group.failures is fs
    assert str(group) == "1 failures: GenericError: a"
    assert str(FailureGroup([])) == ""


def test_exported_from_package() -> None:
    import deferred

    for name in ("DeferredList", "gatherResults", "race", "FirstError", "FailureGroup",
                 "SUCCESS", "FAILURE"):
        assert getattr(deferred, name) is globals()[name]
