"""The shortcuts the callback loop takes for speed behave like the general path.

Each test pins down one fast path in ``deferred._core``: calls spelled out by
the number of extra arguments, a resumed Deferred with nothing left to run
(never put back on the loop's stack), and ``_chainedTo`` kept off the loop.
"""

from __future__ import annotations

import gc
import itertools
import logging
from typing import Any

import pytest

from deferred import Deferred, Failure


def result_of(d: Deferred[Any]) -> Any:
    """The result a fired Deferred has now (failing the test if it has none)."""
    out: list[Any] = []
    d.addBoth(out.append)
    assert out, f"{d!r} has no result"
    return out[0]


def record(result: Any, *args: Any, **kwargs: Any) -> tuple[Any, tuple[Any, ...], dict[str, Any]]:
    return (result, args, kwargs)


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [((), {}), ((1,), {}), ((1, 2), {}), ((1, 2, 3), {}), ((), {"k": 1}), ((1,), {"k": 2})],
    ids=["none", "one", "two", "three", "kwargs-only", "args-and-kwargs"],
)
def test_callback_gets_its_extra_arguments_whatever_their_number(
    args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    d: Deferred[str] = Deferred()
    d.addCallback(record, *args, **kwargs)
    d.callback("r")
    assert result_of(d) == ("r", args, kwargs)


@pytest.mark.parametrize("args", [(), (1,), (1, 2)], ids=["none", "one", "two"])
def test_errback_and_addBoth_get_their_extra_arguments(args: tuple[Any, ...]) -> None:
    d: Deferred[str] = Deferred()
    d.addErrback(lambda f, *a: (f.check(KeyError), a), *args)
    d.errback(KeyError("k"))
    assert result_of(d) == (KeyError, args)
    both: Deferred[str] = Deferred()
    both.addBoth(record, *args, tag="x")
    both.callback("r")
    assert result_of(both) == ("r", args, {"tag": "x"})


def raise_in_callback(result: Any, *args: Any, **kwargs: Any) -> Any:
    raise ValueError(f"raised with {len(args)} args")


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [((), {}), ((1,), {}), ((1, 2), {}), ((1,), {"k": 1})],
    ids=["none", "one", "two", "kwargs"],
)
def test_exception_in_any_call_form_becomes_a_failure_with_its_traceback(
    args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    d: Deferred[int] = Deferred()
    d.addCallback(raise_in_callback, *args, **kwargs)
    d.callback(0)
    failure = result_of(d)
    assert isinstance(failure, Failure)
    assert failure.check(ValueError)
    assert failure.getErrorMessage() == f"raised with {len(args)} args"
    # The frame that raised is kept (live or as a tuple), so the report shows it.
    assert "raise_in_callback" in [frame[0] for frame in failure.frames]
    assert "raise_in_callback" in failure.getTraceback()


def test_wrong_number_of_arguments_is_a_failure_not_a_crash() -> None:
    d: Deferred[int] = Deferred()
    takes_one: Any = abs
    d.addCallback(takes_one, "unexpected")
    d.callback(0)
    failure = result_of(d)
    assert isinstance(failure, Failure) and failure.check(TypeError)


def test_chain_fired_front_to_back_unwinds_to_the_first() -> None:
    # The benchmark's shape: each callback returns the next, still unfired,
    # Deferred; firing the last resumes every waiter, none keeping a result.
    links: list[Deferred[int]] = [Deferred() for _ in range(2_000)]
    for current, following in itertools.pairwise(links):
        current.addCallback(lambda _, nxt: nxt, following)
    links[-1].addCallback(lambda value: value + 1)
    for d in links[:-1]:
        d.callback(0)
        assert d.paused == 1
    links[-1].callback(0)
    assert result_of(links[0]) == 1
    for d in links[1:]:
        assert d.paused == 0
        assert d.callbacks == []
        assert d.result is None
        assert d._chainedTo is None


def test_resumed_deferred_with_callbacks_left_still_runs_them() -> None:
    inner: Deferred[int] = Deferred()
    middle: Deferred[int] = Deferred()
    outer: Deferred[int] = Deferred()
    seen: list[Any] = []
    outer.addCallback(lambda _: middle).addCallback(lambda v: v * 10)
    middle.addCallback(lambda _: inner)
    outer.callback(0)
    middle.callback(0)
    # Added to ``inner`` after ``middle`` waits on it: runs after the hand-over.
    inner.addBoth(seen.append)
    inner.callback(4)
    assert result_of(outer) == 40
    assert seen == [None]


def test_failure_handed_to_the_waiter_is_not_reported_by_the_inner(
    caplog: pytest.LogCaptureFixture,
) -> None:
    inner: Deferred[int] = Deferred()
    outer: Deferred[int] = Deferred()
    outer.addCallback(lambda _, waited: waited, inner)
    handled: list[Failure] = []
    outer.addErrback(handled.append)
    outer.callback(0)
    inner.errback(ValueError("inner failed"))
    assert handled and handled[0].check(ValueError)
    assert inner.result is None
    with caplog.at_level(logging.ERROR, logger="deferred"):
        del inner, outer
        gc.collect()
    assert "Unhandled error" not in caplog.text


def test_unhandled_failure_reaching_a_waiter_is_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    inner: Deferred[int] = Deferred()
    outer: Deferred[int] = Deferred()
    outer.addCallback(lambda _, waited: waited, inner)
    outer.callback(0)
    inner.errback(ValueError("nobody handles this"))
    assert isinstance(outer.result, Failure)
    with caplog.at_level(logging.ERROR, logger="deferred"):
        del inner, outer
        gc.collect()
    assert "Unhandled error in Deferred" in caplog.text
    assert "nobody handles this" in caplog.text


def test_repr_says_waiting_only_while_waiting() -> None:
    inner: Deferred[int] = Deferred()
    outer: Deferred[int] = Deferred()
    outer.addCallback(lambda _: inner)
    outer.callback(0)
    assert f"waiting on Deferred at 0x{id(inner):x}" in repr(outer)
    inner.callback(5)
    assert "waiting" not in repr(outer)
    assert "current result: 5" in repr(outer)


def test_chainDeferred_target_fired_directly_does_not_claim_to_wait() -> None:
    source: Deferred[int] = Deferred()
    target: Deferred[int] = Deferred()
    source.chainDeferred(target)
    assert f"waiting on Deferred at 0x{id(source):x}" in repr(target)
    target.callback(1)
    assert "waiting" not in repr(target)
    assert "current result: 1" in repr(target)


def test_chainDeferred_passes_failures_and_leaves_the_source_with_none() -> None:
    source: Deferred[int] = Deferred()
    target: Deferred[int] = Deferred()
    source.chainDeferred(target)
    source.errback(KeyError("k"))
    failure = result_of(target)
    assert isinstance(failure, Failure) and failure.check(KeyError)
    assert target._chainedTo is None
    assert result_of(source) is None
