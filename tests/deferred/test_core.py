"""Deferred's chain: callbacks, errbacks, chaining, pausing, cancelling, time-outs."""

from __future__ import annotations

import gc
import heapq
import logging
import sys
import warnings
from collections.abc import Callable
from typing import Any

import pytest

from deferred import (
    AlreadyCalledError,
    CancelledError,
    Deferred,
    Failure,
    NoCurrentExceptionError,
    TimeoutError,
    fail,
    getDebugging,
    logError,
    maybeDeferred,
    passthru,
    setDebugging,
    succeed,
)


def result_of(d: Deferred[Any]) -> Any:
    """The result a fired Deferred has now (failing the test if it has none)."""
    out: list[Any] = []
    d.addBoth(out.append)
    assert out, f"{d!r} has no result"
    return out[0]


class FakeClock:
    """The smallest clock addTimeout needs: callLater and advance."""

    def __init__(self) -> None:
        self.now = 0.0
        self.calls: list[tuple[float, int, FakeCall]] = []
        self.seq = 0

    def callLater(self, delay: float, f: Callable[..., Any], *a: Any, **kw: Any) -> FakeCall:
        call = FakeCall(f, a, kw)
        self.seq += 1
        heapq.heappush(self.calls, (self.now + delay, self.seq, call))
        return call

    def advance(self, seconds: float) -> None:
        self.now += seconds
        while self.calls and self.calls[0][0] <= self.now:
            _, _, call = heapq.heappop(self.calls)
            if call.live:
                call.live = False
                call.f(*call.a, **call.kw)


class FakeCall:
    def __init__(self, f: Callable[..., Any], a: tuple[Any, ...], kw: dict[str, Any]) -> None:
        self.f, self.a, self.kw, self.live = f, a, kw, True

    def active(self) -> bool:
        return self.live

    def cancel(self) -> None:
        assert self.live
        self.live = False


# -- callbacks and errbacks -------------------------------------------------------


def test_callbacks_run_in_order_with_extra_args() -> None:
    d: Deferred[int] = Deferred()
    seen: list[Any] = []
    d.addCallback(lambda r, a, b=0: r + a + b, 1, b=10)
    d.addCallback(lambda r: seen.append(r) or r * 2)
    d.callback(5)
    assert seen == [16]
    assert d.result == 32
    assert d.called


def test_callbacks_added_after_firing_run_at_once() -> None:
    d = succeed(3)
    assert result_of(d.addCallback(lambda r: r + 1)) == 4


def test_error_switches_to_errbacks_and_recovery_switches_back() -> None:
    d: Deferred[int] = Deferred()
    calls: list[str] = []

    def boom(r: int) -> int:
        calls.append("boom")
        raise ValueError("bad")

    d.addCallback(boom)
    d.addCallback(lambda r: calls.append("skipped"))
    d.addErrback(lambda f: calls.append(f"eb:{f.getErrorMessage()}") or 7)
    d.addCallback(lambda r: calls.append(f"cb:{r}"))
    d.callback(1)
    assert calls == ["boom", "eb:bad", "cb:7"]


def test_errback_returning_failure_stays_on_error_side() -> None:
    d = fail(KeyError("k"))
    d.addErrback(lambda f: f)
    d.addCallback(lambda r: pytest.fail("callback ran"))
    f = result_of(d)
    assert isinstance(f, Failure) and f.check(KeyError)


def test_callback_returning_failure_switches_to_errback() -> None:
    d = succeed(1)
    d.addCallback(lambda r: Failure(ValueError("x")))
    assert result_of(d).check(ValueError)


def test_addCallbacks_runs_only_one_and_errback_does_not_see_callback_errors() -> None:
    d: Deferred[int] = Deferred()
    calls: list[str] = []
    d.addCallbacks(lambda r: 1 / 0, lambda f: calls.append("eb"))
    d.callback(1)
    assert calls == []
    assert result_of(d).check(ZeroDivisionError)


def test_addCallbacks_args_and_keywords() -> None:
    d: Deferred[int] = Deferred()
    d.addCallbacks(lambda r, a, k: (r, a, k), None, callbackArgs=(1,),
                   callbackKeywords={"k": 2})
    d.addCallbacks(passthru, lambda f, a, k: pytest.fail("no"), errbackArgs=(1,),
                   errbackKeywords={"k": 2})
    d.callback(0)
    assert d.result == (0, 1, 2)
    e = fail(ValueError())
    e.addCallbacks(lambda r: r, lambda f, a, k: (a, k), errbackArgs=(3,),
                   errbackKeywords={"k": 4})
    assert result_of(e) == (3, 4)


def test_addBoth_sees_success_and_failure() -> None:
    assert result_of(succeed(1).addBoth(lambda r: ("both", r))) == ("both", 1)
    out = result_of(fail(ValueError("v")).addBoth(lambda r: type(r).__name__))
    assert out == "Failure"


def test_non_callable_callbacks_are_rejected() -> None:
    d: Deferred[int] = Deferred()
    with pytest.raises(TypeError):
        d.addCallback(1)  # type: ignore[call-overload]
    with pytest.raises(TypeError):
        d.addErrback(None)  # type: ignore[call-overload]


def test_callback_adding_callbacks_to_its_own_deferred() -> None:
    d: Deferred[int] = Deferred()
    seen: list[int] = []

    def add_more(r: int) -> int:
        d.addCallback(lambda r2: seen.append(r2) or r2 + 1)
        return r * 10

    d.addCallback(add_more)
    d.callback(1)
    assert seen == [10]
    assert d.result == 11


# -- firing twice -----------------------------------------------------------------


def test_second_fire_raises_already_called() -> None:
    d: Deferred[int] = Deferred()
    d.callback(1)
    with pytest.raises(AlreadyCalledError):
        d.callback(2)
    with pytest.raises(AlreadyCalledError):
        d.errback(ValueError())


def test_already_called_error_has_no_args_without_debugging() -> None:
    # Twisted code checks ``e.args`` to tell debugging output apart; which
    # Deferred it was goes in a note instead.
    d: Deferred[int] = Deferred()
    d.callback(1)
    with pytest.raises(AlreadyCalledError) as info:
        d.callback(2)
    assert info.value.args == ()
    assert any("has already been called" in note for note in info.value.__notes__)


def test_callback_with_a_deferred_is_refused() -> None:
    with pytest.raises(TypeError):
        Deferred().callback(Deferred())


def test_errback_without_exception_raises_no_current_exception() -> None:
    with pytest.raises(NoCurrentExceptionError):
        Deferred().errback()


def test_errback_inside_except_captures_current_exception() -> None:
    d: Deferred[int] = Deferred()
    try:
        {}["missing"]
    except KeyError:
        d.errback()
    f = result_of(d)
    assert f.check(KeyError)
    assert "test_errback_inside_except_captures_current_exception" in f.getTraceback()


def test_errback_with_plain_exception_wraps_it() -> None:
    d: Deferred[int] = Deferred()
    err = OSError("disk")
    d.errback(err)
    assert result_of(d).value is err


# -- chaining: callbacks returning Deferreds -----------------------------------------


def test_returned_unfired_deferred_pauses_the_chain() -> None:
    outer: Deferred[int] = Deferred()
    inner: Deferred[int] = Deferred()
    seen: list[int] = []
    outer.addCallback(lambda r: inner)
    outer.addCallback(seen.append)
    outer.callback(1)
    assert seen == []
    assert "waiting on Deferred" in repr(outer)
    inner.callback(2)
    assert seen == [2]
    assert inner.result is None  # the result moved to the outer chain


def test_returned_fired_deferred_result_is_taken_over() -> None:
    holder = [fail(ValueError("inner"))]
    outer = succeed(0).addCallback(lambda r: holder[0])
    assert result_of(outer).check(ValueError)
    assert holder[0].result is None  # the inner one handed its failure over


def test_returned_failing_deferred_goes_to_errback() -> None:
    outer: Deferred[int] = Deferred()
    inner: Deferred[int] = Deferred()
    outer.addCallback(lambda r: inner)
    outer.addErrback(lambda f: f"recovered {f.getErrorMessage()}")
    outer.callback(0)
    inner.errback(RuntimeError("late"))
    assert outer.result == "recovered late"


def test_hundred_thousand_chained_deferreds_without_recursion() -> None:
    n = 100_000
    ds: list[Deferred[Any]] = [Deferred() for _ in range(n)]
    for i in range(n - 1):
        ds[i].addCallback(lambda _, nxt=ds[i + 1]: nxt)
    results: list[Any] = []
    ds[0].addCallback(results.append)
    # Fire the first n-1: each now waits on its successor. Firing the last
    # unwinds all 100,000 waits at once.
    for i in range(n - 1):
        ds[i].callback(i)
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(200)  # proves the unwinding is iterative
    try:
        ds[-1].callback("end")
    finally:
        sys.setrecursionlimit(old)
    assert results == ["end"]


def test_deep_chain_of_already_fired_deferreds() -> None:
    d = succeed(0)
    for _ in range(10_000):
        d.addCallback(lambda r: succeed(r + 1))
    assert d.result == 10_000


def test_chainDeferred_fires_the_other() -> None:
    a: Deferred[int] = Deferred()
    b: Deferred[int] = Deferred()
    a.chainDeferred(b)
    assert b._chainedTo is a
    a.callback(3)
    assert b.result == 3
    assert b._chainedTo is None
    c: Deferred[int] = Deferred()
    e: Deferred[int] = Deferred()
    c.chainDeferred(e)
    c.errback(ValueError())
    assert result_of(e).check(ValueError)


def test_callback_returning_own_deferred_warns() -> None:
    d: Deferred[Any] = Deferred()
    d.addCallback(lambda r: d)
    with pytest.warns(DeprecationWarning, match="returned the Deferred"):
        d.callback(1)


def test_circular_callback_warning_points_at_the_callback() -> None:
    d: Deferred[Any] = Deferred()

    def circular(result: object) -> Deferred[Any]:
        return d

    d.addCallback(circular)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        d.callback(1)
    assert len(caught) == 1
    warning = caught[0]
    assert warning.category is DeprecationWarning
    assert "Callback returned the Deferred it was attached to" in str(warning.message)
    assert warning.filename == circular.__code__.co_filename
    assert warning.lineno == circular.__code__.co_firstlineno


def test_circular_callback_warning_as_error_becomes_the_failure() -> None:
    d: Deferred[Any] = Deferred()
    d.addCallback(lambda r: d)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        d.callback(1)  # does not raise: the error goes down the chain
    assert result_of(d).check(DeprecationWarning)


def test_deferred_that_resumed_another_finishes_its_chain_when_that_one_waits() -> None:
    # ``inner`` hands its result to ``outer``, whose next callback then
    # waits on a third Deferred: inner's own later callbacks must still run.
    inner: Deferred[str] = Deferred()
    outer: Deferred[Any] = Deferred()
    later: Deferred[str] = Deferred()
    outer.addCallback(lambda _: inner)
    outer.callback(None)
    seen: list[Any] = []
    inner.addCallback(seen.append)  # after the marker that resumes ``outer``
    outer.addCallback(lambda _: later)
    inner.callback("inner")
    assert seen == [None]  # inner's result went to outer; its chain went on
    assert inner.callbacks == []
    later.callback("later")
    assert outer.result == "later"


def test_failure_recovered_by_waiting_on_a_deferred_is_not_logged(
        caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="deferred"):
        bad = fail(Exception("handled by the errback"))
        bad.addErrback(lambda _: Deferred())  # the failure is consumed here
        del bad
        gc.collect()
    assert not [r for r in caplog.records if r.name == "deferred"]


# -- pause / unpause ---------------------------------------------------------------


def test_pause_holds_callbacks_until_unpause() -> None:
    d: Deferred[int] = Deferred()
    seen: list[int] = []
    d.pause()
    d.addCallback(seen.append)
    d.callback(1)
    assert seen == []
    d.pause()
    d.unpause()
    assert seen == []
    d.unpause()
    assert seen == [1]


def test_unpause_before_firing_is_harmless() -> None:
    d: Deferred[int] = Deferred()
    d.pause()
    d.unpause()
    d.callback(1)
    assert d.result == 1


# -- cancellation -----------------------------------------------------------------


def test_cancel_without_canceller_errbacks_and_ignores_late_result() -> None:
    d: Deferred[int] = Deferred()
    d.cancel()
    assert result_of(d).check(CancelledError)
    d.callback(1)  # the real result arrives later: silently dropped
    with pytest.raises(AlreadyCalledError):
        d.callback(2)  # ...but only once


def test_canceller_is_called_with_the_deferred() -> None:
    calls: list[Deferred[Any]] = []
    d: Deferred[int] = Deferred(calls.append)
    d.cancel()
    assert calls == [d]
    assert result_of(d).check(CancelledError)
    with pytest.raises(AlreadyCalledError):
        d.callback(1)  # with a canceller, a late result is an error


def test_canceller_that_fires_decides_the_result() -> None:
    d: Deferred[str] = Deferred(lambda d: d.callback("cancelled nicely"))
    d.cancel()
    assert d.result == "cancelled nicely"
    e: Deferred[str] = Deferred(lambda d: d.errback(KeyError("own")))
    e.cancel()
    assert result_of(e).check(KeyError)


def test_cancel_after_firing_does_nothing() -> None:
    calls: list[Any] = []
    d: Deferred[int] = Deferred(calls.append)
    d.callback(1)
    d.cancel()
    assert calls == [] and d.result == 1


def test_cancel_reaches_the_inner_deferred_being_waited_on() -> None:
    inner_cancelled: list[Any] = []
    inner: Deferred[int] = Deferred(inner_cancelled.append)
    outer: Deferred[int] = Deferred()
    outer.addCallback(lambda r: inner)
    outer.callback(0)
    outer.cancel()
    assert inner_cancelled == [inner]
    assert result_of(outer).check(CancelledError)


def test_raising_canceller_is_logged_and_cancel_still_happens(
        caplog: pytest.LogCaptureFixture) -> None:
    def bad(d: Deferred[Any]) -> None:
        raise RuntimeError("canceller broke")

    d: Deferred[int] = Deferred(bad)
    with caplog.at_level(logging.ERROR, logger="deferred"):
        d.cancel()
    assert result_of(d).check(CancelledError)
    assert any(r.exc_info and "canceller broke" in str(r.exc_info[1]) for r in caplog.records)


# -- time-outs ----------------------------------------------------------------------


def test_addTimeout_times_out_with_TimeoutError() -> None:
    clock = FakeClock()
    d: Deferred[int] = Deferred()
    d.addTimeout(5, clock)
    clock.advance(4.9)
    assert not d.called
    clock.advance(0.2)
    f = result_of(d)
    assert f.check(TimeoutError)
    assert f.value.args == (5, "Deferred")


def test_addTimeout_cancels_its_timer_when_fired_in_time() -> None:
    clock = FakeClock()
    d: Deferred[int] = Deferred()
    d.addTimeout(5, clock)
    d.callback(1)
    assert not clock.calls[0][2].active()
    assert d.result == 1


def test_addTimeout_onTimeoutCancel_translates() -> None:
    clock = FakeClock()
    d: Deferred[int] = Deferred()
    d.addTimeout(1, clock, onTimeoutCancel=lambda result, timeout: ("late", timeout))
    clock.advance(1)
    assert d.result == ("late", 1)


def test_addTimeout_plain_cancel_stays_CancelledError() -> None:
    clock = FakeClock()
    d: Deferred[int] = Deferred()
    d.addTimeout(1, clock)
    d.cancel()
    assert result_of(d).check(CancelledError)


def test_addTimeout_canceller_that_callbacks_wins() -> None:
    clock = FakeClock()
    d: Deferred[str] = Deferred(lambda d: d.callback("ok"))
    d.addTimeout(1, clock)
    clock.advance(1)
    assert d.result == "ok"


# -- helpers ------------------------------------------------------------------------


def test_succeed_is_the_same_as_firing_a_new_deferred() -> None:
    d: Deferred[str] = Deferred()
    d.callback("same")
    assert succeed("same").__dict__ == d.__dict__


def test_succeed_and_fail() -> None:
    assert succeed(1).result == 1
    f = fail(ValueError("x")).result
    assert isinstance(f, Failure) and f.check(ValueError)
    try:
        raise IndexError("now")
    except IndexError:
        d = fail()
    assert result_of(d).check(IndexError)


def test_maybeDeferred_every_shape() -> None:
    assert result_of(maybeDeferred(lambda: 1)) == 1
    d = Deferred[int]()
    assert maybeDeferred(lambda: d) is d
    assert result_of(maybeDeferred(lambda: 1 / 0)).check(ZeroDivisionError)
    assert result_of(maybeDeferred(lambda: Failure(KeyError()))).check(KeyError)

    async def coro(x: int) -> int:
        return x * 2

    assert result_of(maybeDeferred(coro, 4)) == 8
    assert result_of(maybeDeferred(lambda a, b=0: a + b, 1, b=2)) == 3


def test_logError_logs_and_passes_the_failure_on(caplog: pytest.LogCaptureFixture) -> None:
    d = fail(ValueError("logged"))
    with caplog.at_level(logging.ERROR, logger="deferred"):
        d.addErrback(logError)
    assert result_of(d).check(ValueError)
    assert any("logged" in r.getMessage() for r in caplog.records)


def test_generic_subscript_and_repr() -> None:
    d = Deferred[int]()
    assert repr(d).startswith("<Deferred at 0x")
    d.callback(3)
    assert "current result: 3" in repr(d)


# -- unhandled errors ------------------------------------------------------------------


def test_unhandled_failure_is_logged_with_traceback_on_collection(
        caplog: pytest.LogCaptureFixture) -> None:
    def failing_function() -> None:
        raise ValueError("nobody handled me")

    with caplog.at_level(logging.ERROR, logger="deferred"):
        d = maybeDeferred(failing_function)
        del d
        gc.collect()
    records = [r for r in caplog.records if r.name == "deferred"]
    assert len(records) == 1
    record = records[0]
    assert "Unhandled error in Deferred" in record.getMessage()
    assert record.exc_info is not None and isinstance(record.exc_info[1], ValueError)
    text = caplog.text
    assert "nobody handled me" in text
    assert "failing_function" in text  # the original frame survives cleanFailure


def test_handled_failure_is_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="deferred"):
        d = fail(ValueError())
        d.addErrback(lambda f: None)
        del d
        gc.collect()
    assert not [r for r in caplog.records if r.name == "deferred"]


def test_failure_handled_later_is_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="deferred"):
        d = fail(ValueError())
        gc.collect()
        d.addErrback(lambda f: None)
        del d
        gc.collect()
    assert not [r for r in caplog.records if r.name == "deferred"]


def test_failure_left_at_end_does_not_keep_frames_alive() -> None:
    import weakref

    class Big:
        pass

    def fails() -> None:
        big = Big()
        ref.append(weakref.ref(big))
        raise ValueError("x")

    ref: list[weakref.ref[Big]] = []
    d = maybeDeferred(fails)
    gc.collect()
    assert ref[0]() is None  # the frame holding ``big`` was let go
    assert "fails" in d.result.getTraceback()
    d.addErrback(lambda f: None)


# -- debugging ---------------------------------------------------------------------


def test_debugging_records_creator_and_invoker() -> None:
    assert getDebugging() is False
    setDebugging(True)
    try:
        d: Deferred[int] = Deferred()
        d.callback(1)
        with pytest.raises(AlreadyCalledError) as info:
            d.callback(2)
    finally:
        setDebugging(False)
    message = str(info.value)
    assert "C: Deferred was created" in message
    assert "I: First Invoker was" in message
