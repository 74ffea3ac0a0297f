"""Coroutines over Deferreds: ensureDeferred, fromCoroutine, inlineCallbacks."""

from __future__ import annotations

import contextvars
import gc
import logging
import warnings
from collections.abc import Generator
from typing import Any

import pytest

from deferred import (
    CancelledError,
    Deferred,
    Failure,
    NotACoroutineError,
    ensureDeferred,
    fail,
    inlineCallbacks,
    returnValue,
    succeed,
)


def result_of(d: Deferred[Any]) -> Any:
    out: list[Any] = []
    d.addBoth(out.append)
    assert out, f"{d!r} has no result"
    return out[0]


# -- ensureDeferred / fromCoroutine ---------------------------------------------


def test_coroutine_awaiting_fired_deferreds_finishes_at_once() -> None:
    async def add() -> int:
        return await succeed(1) + await succeed(2)

    d = ensureDeferred(add())
    assert d.result == 3


def test_coroutine_waits_for_unfired_deferreds() -> None:
    first: Deferred[int] = Deferred()
    second: Deferred[int] = Deferred()

    async def add() -> int:
        return await first + await second

    d = ensureDeferred(add())
    assert not d.called
    first.callback(10)
    assert not d.called
    second.callback(5)
    assert d.result == 15
    # awaiting consumes the result, as in Twisted
    assert first.result is None and second.result is None


def test_awaited_failure_raises_inside_the_coroutine() -> None:
    waiting: Deferred[int] = Deferred()

    async def guarded() -> str:
        try:
            await waiting
        except KeyError as e:
            return f"caught {e.args[0]}"
        return "no error"

    d = ensureDeferred(guarded())
    waiting.errback(KeyError("k"))
    assert d.result == "caught k"


def test_exception_in_coroutine_fails_the_deferred() -> None:
    async def broken() -> None:
        await succeed(None)
        raise ValueError("broken")

    f = result_of(ensureDeferred(broken()))
    assert isinstance(f, Failure) and f.check(ValueError)
    assert "broken" in f.getTraceback()


def test_fromCoroutine_and_ensureDeferred_of_a_deferred() -> None:
    async def one() -> int:
        return 1

    assert Deferred.fromCoroutine(one()).result == 1
    d: Deferred[int] = Deferred()
    assert ensureDeferred(d) is d


def test_not_a_coroutine() -> None:
    with pytest.raises(NotACoroutineError):
        ensureDeferred(42)  # type: ignore[arg-type]
    with pytest.raises(NotACoroutineError):
        Deferred.fromCoroutine(lambda: None)  # type: ignore[arg-type]


def test_long_run_of_awaits_needs_no_stack() -> None:
    ds: list[Deferred[int]] = [Deferred() for _ in range(5000)]

    async def walk() -> int:
        total = 0
        for d in ds:
            total += await d
        return total

    result = ensureDeferred(walk())
    for d in reversed(ds[1:]):
        d.callback(1)  # fired before the coroutine reaches them
    ds[0].callback(1)
    assert result.result == 5000


def test_coroutines_awaiting_coroutines() -> None:
    gate: Deferred[int] = Deferred()

    async def inner() -> int:
        return await gate * 2

    async def outer() -> int:
        return await ensureDeferred(inner()) + 1

    d = ensureDeferred(outer())
    gate.callback(20)
    assert d.result == 41


def test_yield_from_deferred_in_generator_coroutine() -> None:
    gate: Deferred[int] = Deferred()

    def gen() -> Generator[Any, Any, int]:
        value = yield from gate
        return value + 1

    d = ensureDeferred(gen())
    gate.callback(1)
    assert d.result == 2


def test_bare_yield_is_a_pause_not_an_error() -> None:
    import asyncio

    async def sleepy() -> str:
        await asyncio.sleep(0)
        return "awake"

    assert ensureDeferred(sleepy()).result == "awake"


def test_each_coroutine_runs_in_its_own_context_copy() -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="outer")
    gate: Deferred[None] = Deferred()

    async def task() -> str:
        var.set("inside")
        await gate
        return var.get()

    d = ensureDeferred(task())
    assert var.get() == "outer"  # the coroutine's set() stayed in its copy
    gate.callback(None)
    assert d.result == "inside"


# -- cancellation -------------------------------------------------------------------


def test_cancel_cancels_what_the_coroutine_waits_on() -> None:
    inner_cancelled: list[Any] = []
    inner: Deferred[int] = Deferred(inner_cancelled.append)

    async def waits() -> int:
        return await inner

    d = ensureDeferred(waits())
    d.cancel()
    assert inner_cancelled == [inner]
    assert result_of(d).check(CancelledError)


def test_coroutine_may_handle_cancellation_and_return() -> None:
    async def stubborn() -> str:
        try:
            await Deferred()
        except CancelledError:
            return "handled"
        return "not cancelled"

    d = ensureDeferred(stubborn())
    d.cancel()
    assert d.result == "handled"


def test_coroutine_handling_cancellation_asynchronously_decides_the_result() -> None:
    cleanup: Deferred[str] = Deferred()

    async def tidy() -> str:
        try:
            await Deferred()
        except CancelledError:
            return await cleanup  # still busy after cancel() returns
        return "not cancelled"

    d = ensureDeferred(tidy())
    d.cancel()
    assert not d.called or isinstance(d.result, Deferred)
    cleanup.callback("cleaned up")
    assert result_of(d) == "cleaned up"


def test_second_cancel_reaches_the_new_wait() -> None:
    async def tidy() -> str:
        try:
            await Deferred()
        except CancelledError:
            await Deferred()  # cancelled again below
        return "unreachable"

    d = ensureDeferred(tidy())
    d.cancel()
    d.cancel()
    assert result_of(d).check(CancelledError)


# -- inlineCallbacks --------------------------------------------------------------


def test_inlineCallbacks_return_and_returnValue() -> None:
    gate: Deferred[int] = Deferred()

    @inlineCallbacks
    def modern() -> Generator[Any, Any, int]:
        a = yield succeed(1)
        b = yield gate
        return a + b

    @inlineCallbacks
    def classic() -> Generator[Any, Any, None]:
        value = yield succeed(5)
        returnValue(value * 2)

    d = modern()
    gate.callback(2)
    assert d.result == 3
    assert classic().result == 10


def test_inlineCallbacks_sends_plain_values_back() -> None:
    @inlineCallbacks
    def plain() -> Generator[Any, Any, Any]:
        x = yield 5
        return x

    assert plain().result == 5


def test_inlineCallbacks_errors_both_ways() -> None:
    @inlineCallbacks
    def handles() -> Generator[Any, Any, str]:
        try:
            yield fail(ValueError("v"))
        except ValueError:
            return "handled"
        return "missed"

    @inlineCallbacks
    def raises() -> Generator[Any, Any, None]:
        yield succeed(None)
        raise KeyError("k")

    assert handles().result == "handled"
    assert result_of(raises()).check(KeyError)


def test_inlineCallbacks_requires_a_generator() -> None:
    @inlineCallbacks
    def not_gen() -> Any:
        return 1

    @inlineCallbacks
    def return_value_outside() -> Any:
        returnValue(1)

    with pytest.raises(TypeError, match="produce a generator"):
        not_gen()
    with pytest.raises(TypeError, match="returnValue"):
        return_value_outside()


def test_inlineCallbacks_cancel() -> None:
    @inlineCallbacks
    def waits() -> Generator[Any, Any, None]:
        yield Deferred()

    d = waits()
    d.cancel()
    assert result_of(d).check(CancelledError)


def test_unhandled_coroutine_failure_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    async def broken() -> None:
        raise ValueError("from a coroutine")

    with caplog.at_level(logging.ERROR, logger="deferred"):
        ensureDeferred(broken())
        gc.collect()
    assert "from a coroutine" in caplog.text


# -- inlineCallbacks yielding coroutines and generators -----------------------------


def test_inlineCallbacks_runs_a_yielded_coroutine_and_waits_for_it() -> None:
    gate: Deferred[int] = Deferred()

    async def double() -> int:
        return 2 * await gate

    @inlineCallbacks
    def caller() -> Generator[Any, Any, int]:
        value = yield double()
        return value + 1

    d = caller()
    assert not d.called
    gate.callback(20)
    assert result_of(d) == 41


def test_inlineCallbacks_yielded_coroutine_error_is_raised_at_the_yield() -> None:
    async def broken() -> None:
        raise KeyError("inside")

    @inlineCallbacks
    def caller() -> Generator[Any, Any, str]:
        try:
            yield broken()
        except KeyError:
            return "caught"
        return "missed"

    assert result_of(caller()) == "caught"


def test_inlineCallbacks_runs_a_yielded_plain_generator() -> None:
    def inner() -> Generator[Any, Any, int]:
        value = yield succeed(5)
        return value * 3

    @inlineCallbacks
    def caller() -> Generator[Any, Any, int]:
        return (yield inner())

    assert result_of(caller()) == 15


def test_cancelling_inlineCallbacks_cancels_the_yielded_coroutine() -> None:
    waited: Deferred[int] = Deferred()

    async def stacked() -> int:
        return await waited

    @inlineCallbacks
    def caller() -> Generator[Any, Any, int]:
        return (yield stacked())

    d = caller()
    d.cancel()
    assert waited.called  # cancelled (its CancelledError went to ``stacked``)
    assert result_of(d).check(CancelledError)


def test_errors_keep_their_frames_through_stacked_inlineCallbacks() -> None:
    @inlineCallbacks
    def erroring() -> Generator[Any, Any, None]:
        yield "not a Deferred"
        raise ValueError("first raised here")

    async def middle() -> None:
        await erroring()

    @inlineCallbacks
    def outer() -> Generator[Any, Any, None]:
        yield middle()

    report = result_of(outer()).getTraceback()
    for name in ("in erroring", "in middle", "in outer", "first raised here"):
        assert name in report


# -- flow control stays out of sight ------------------------------------------------


@pytest.mark.parametrize("use_returnValue", [False, True])
def test_inner_return_is_not_the_context_of_the_callers_errors(use_returnValue: bool) -> None:
    gate: Deferred[None] = Deferred()

    @inlineCallbacks
    def returns() -> Generator[Any, Any, int]:
        yield gate
        if use_returnValue:
            returnValue(1)
        return 1

    @inlineCallbacks
    def raises() -> Generator[Any, Any, BaseException | None]:
        try:
            yield returns()
            raise RuntimeError("the caller's own error")
        except RuntimeError as e:
            return e.__context__

    d = raises()
    gate.callback(None)  # ``returns`` ends, and ``raises`` resumes from there
    assert result_of(d) is None


def test_returnValue_in_a_called_function_warns_at_the_call() -> None:
    def helper() -> None:
        returnValue("from the helper")  # line noted below

    line = helper.__code__.co_firstlineno + 1

    @inlineCallbacks
    def inline() -> Generator[Any, Any, str]:
        helper()
        yield succeed(None)
        return "not reached"

    with pytest.warns(DeprecationWarning, match="returnValue") as caught:
        d = inline()
    assert result_of(d) == "from the helper"
    [warning] = caught.list
    assert warning.filename == helper.__code__.co_filename
    assert warning.lineno == line


def test_returnValue_in_the_generator_itself_does_not_warn() -> None:
    @inlineCallbacks
    def inline() -> Generator[Any, Any, None]:
        yield succeed(None)
        returnValue("fine")

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert result_of(inline()) == "fine"
