"""DelayedCall and TimerHeap: Twisted's DelayedCall contract, heap laziness, contexts."""

from __future__ import annotations

import contextvars
import doctest
import heapq
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reactor import timers
from reactor.error import AlreadyCalled, AlreadyCancelled
from reactor.testing import Clock
from reactor.timers import DelayedCall, TimerHeap


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def make_heap() -> tuple[TimerHeap, FakeTime]:
    now = FakeTime()
    return TimerHeap(now), now


def drain(heap: TimerHeap, now: float) -> None:
    while (call := heap.pop_due(now)) is not None:
        call.invoke()


# --- DelayedCall -----------------------------------------------------------------------


def test_active_until_called() -> None:
    clock = Clock()
    call = clock.callLater(1, lambda: None)
    assert call.active() and not call.called and not call.cancelled
    clock.advance(1)
    assert not call.active()
    assert call.called == 1


def test_not_active_inside_its_own_function() -> None:
    clock = Clock()
    seen: list[bool] = []
    call = clock.callLater(1, lambda: seen.append(call.active()))
    clock.advance(1)
    assert seen == [False]


def test_cancel_prevents_the_call() -> None:
    clock = Clock()
    ran: list[int] = []
    call = clock.callLater(1, ran.append, 1)
    call.cancel()
    assert call.cancelled == 1 and not call.active()
    clock.advance(10)
    assert ran == []
    assert clock.getDelayedCalls() == []


@pytest.mark.parametrize("action", ["cancel", "reset", "delay"])
def test_after_cancel_everything_raises_already_cancelled(action: str) -> None:
    call = Clock().callLater(1, lambda: None)
    call.cancel()
    with pytest.raises(AlreadyCancelled):
        getattr(call, action)(*(() if action == "cancel" else (1,)))


@pytest.mark.parametrize("action", ["cancel", "reset", "delay"])
def test_after_call_everything_raises_already_called(action: str) -> None:
    clock = Clock()
    call = clock.callLater(1, lambda: None)
    clock.advance(1)
    with pytest.raises(AlreadyCalled):
        getattr(call, action)(*(() if action == "cancel" else (1,)))


def test_cancel_from_inside_raises_already_called() -> None:
    clock = Clock()
    errors: list[BaseException] = []

    def f() -> None:
        try:
            call.cancel()
        except AlreadyCalled as e:
            errors.append(e)

    call = clock.callLater(0, f)
    clock.advance(0)
    assert len(errors) == 1
    assert str(errors[0]) == "Tried to cancel an already-called event."


def test_reset_is_relative_to_now() -> None:
    clock = Clock()
    ran: list[float] = []
    call = clock.callLater(10, lambda: ran.append(clock.seconds()))
    clock.advance(3)
    call.reset(2)
    assert call.getTime() == 5
    clock.advance(1.9)
    assert ran == []
    clock.advance(0.1)
    assert ran == [5]


def test_reset_later() -> None:
    clock = Clock()
    ran: list[float] = []
    call = clock.callLater(1, lambda: ran.append(clock.seconds()))
    call.reset(5)
    clock.advance(4)
    assert ran == []
    clock.advance(1)
    assert ran == [5]


def test_delay_moves_relative_to_scheduled_time() -> None:
    clock = Clock()
    ran: list[float] = []
    call = clock.callLater(2, lambda: ran.append(clock.seconds()))
    clock.advance(1)
    call.delay(3)  # 2 + 3, not now + 3
    assert call.getTime() == 5
    clock.advance(3)
    assert ran == []
    clock.advance(1)
    assert ran == [5]


def test_negative_delay_moves_earlier() -> None:
    clock = Clock()
    ran: list[float] = []
    call = clock.callLater(10, lambda: ran.append(clock.seconds()))
    call.delay(-7)
    clock.advance(3)
    assert ran == [3]


def test_repeated_reset_runs_once() -> None:
    clock = Clock()
    ran: list[float] = []
    call = clock.callLater(1, lambda: ran.append(clock.seconds()))
    for _ in range(1, 50):
        clock.advance(0.5)
        call.reset(1)  # the TimeoutMixin pattern: keep pushing the deadline
        assert len(clock.getDelayedCalls()) == 1
    clock.advance(1)
    assert ran == [pytest.approx(0.5 * 49 + 1)]


def test_reset_earlier_then_later_again() -> None:
    clock = Clock()
    ran: list[float] = []
    call = clock.callLater(10, lambda: ran.append(clock.seconds()))
    call.reset(2)
    call.reset(20)
    call.reset(4)
    clock.advance(3.9)
    assert ran == []
    clock.advance(0.1)
    assert ran == [4]
    clock.advance(100)
    assert ran == [4]


def test_repr_mentions_function_and_arguments() -> None:
    clock = Clock()

    def greet(name: str, punctuation: str = "!") -> None:
        pass

    call = clock.callLater(1.5, greet, "bob", punctuation="?")
    text = repr(call)
    assert text.startswith("<DelayedCall 0x")
    assert "[1.5s]" in text and "called=0 cancelled=0" in text
    assert "greet('bob', punctuation='?')" in text
    call.cancel()
    assert "cancelled=1" in repr(call) and "greet" not in repr(call)


def test_repr_survives_broken_argument_repr() -> None:
    class Bad:
        def __repr__(self) -> str:
            raise RuntimeError("no")

    text = repr(Clock().callLater(1, print, Bad()))
    assert "repr of Bad failed" in text


def test_debug_records_creator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(DelayedCall, "debug", True)
    call = Clock().callLater(1, print)
    assert call.creator is not None
    assert "traceback at creation" in repr(call)


def test_twisted_style_construction_and_ordering() -> None:
    canceled: list[DelayedCall] = []
    call = DelayedCall(5, print, (), {}, canceled.append, lambda c: None, lambda: 0.0)
    other = DelayedCall(6, print, (), {}, lambda c: None, lambda c: None, lambda: 0.0)
    assert call < other and call <= other and not other < call
    call.cancel()
    assert canceled == [call]


def test_cancel_releases_references() -> None:
    call = Clock().callLater(1, print, object())
    call.cancel()
    assert not hasattr(call, "func") and not hasattr(call, "args")


# --- contextvars -----------------------------------------------------------------------

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="none")


def test_call_runs_in_the_context_it_was_scheduled_in() -> None:
    clock = Clock()
    seen: list[str] = []

    def schedule(value: str) -> None:
        request_id.set(value)
        clock.callLater(1, lambda: seen.append(request_id.get()))

    contextvars.copy_context().run(schedule, "a")
    contextvars.copy_context().run(schedule, "b")
    token = request_id.set("outer")
    clock.advance(1)
    assert seen == ["a", "b"]
    assert request_id.get() == "outer"
    request_id.reset(token)


def test_changes_made_by_a_call_stay_in_its_context() -> None:
    clock = Clock()
    clock.callLater(0, request_id.set, "leaked?")
    clock.advance(0)
    assert request_id.get() == "none"


def test_context_is_snapshotted_at_schedule_time() -> None:
    clock = Clock()
    seen: list[str] = []
    token = request_id.set("first")
    clock.callLater(1, lambda: seen.append(request_id.get()))
    request_id.set("second")
    clock.advance(1)
    request_id.reset(token)
    assert seen == ["first"]


# --- TimerHeap -------------------------------------------------------------------------


def test_next_deadline_and_len() -> None:
    heap, _ = make_heap()
    assert heap.next_deadline() is None and len(heap) == 0
    a = heap.schedule(3.0, print)
    heap.schedule(1.0, print)
    assert heap.next_deadline() == 1.0 and len(heap) == 2
    a.cancel()
    assert len(heap) == 1


def test_cancelled_top_is_skipped_by_next_deadline() -> None:
    heap, _ = make_heap()
    first = heap.schedule(1.0, print)
    heap.schedule(2.0, print)
    first.cancel()
    assert heap.next_deadline() == 2.0


def test_delayed_top_is_refiled() -> None:
    heap, _ = make_heap()
    first = heap.schedule(1.0, print)
    heap.schedule(2.0, print)
    first.delay(5)
    assert heap.next_deadline() == 2.0
    assert heap.pop_due(2.0) is not first
    assert heap.next_deadline() == 6.0


def test_equal_times_pop_in_scheduling_order() -> None:
    heap, _ = make_heap()
    calls = [heap.schedule(1.0, print, (i,)) for i in range(20)]
    assert heap.pop_all_due(1.0) == calls


def test_moved_call_counts_as_scheduled_when_moved() -> None:
    heap, _ = make_heap()
    a = heap.schedule(5.0, print)
    b = heap.schedule(3.0, print)
    b.reset(5.0)  # now 0 -> time 5, same as a, but rescheduled after a
    assert heap.pop_all_due(5.0) == [a, b]


def test_batch_skips_calls_cancelled_by_an_earlier_call_in_the_batch() -> None:
    heap, _ = make_heap()
    ran: list[str] = []
    heap.schedule(1.0, lambda: (ran.append("a"), b.cancel()))
    b = heap.schedule(1.0, ran.append, ("b",))
    for call in heap.pop_all_due(1.0):
        call.invoke()
    assert ran == ["a"]
    assert len(heap) == 0


def test_batch_skips_calls_rescheduled_by_an_earlier_call_in_the_batch() -> None:
    heap, now = make_heap()
    ran: list[str] = []
    heap.schedule(1.0, lambda: (ran.append("a"), b.reset(5)))
    b = heap.schedule(1.0, ran.append, ("b",))
    now.now = 1.0
    for call in heap.pop_all_due(1.0):
        call.invoke()
    assert ran == ["a"] and b.active()
    assert heap.next_deadline() == 6.0
    drain(heap, 6.0)
    assert ran == ["a", "b"]


def test_calls_scheduled_during_a_batch_wait_for_the_next_batch() -> None:
    heap, _ = make_heap()
    ran: list[str] = []
    heap.schedule(1.0, lambda: (ran.append("a"), heap.schedule(1.0, ran.append, ("b",))))
    for call in heap.pop_all_due(1.0):
        call.invoke()
    assert ran == ["a"]
    for call in heap.pop_all_due(1.0):
        call.invoke()
    assert ran == ["a", "b"]


def test_mass_cancellation_compacts_the_heap() -> None:
    heap, _ = make_heap()
    keep = heap.schedule(1e9, print)
    for i in range(10_000):
        heap.schedule(float(i), print).cancel()
    # Stale entries never outnumber live ones by more than the small threshold.
    assert len(heap._heap) <= 2 * (timers._COMPACT_MIN_STALE + 1)
    assert len(heap) == 1
    assert heap.pop_due(1e9) is keep


def test_repeated_early_resets_do_not_grow_the_heap() -> None:
    heap, _ = make_heap()
    call = heap.schedule(1e6, print)
    for i in range(10_000):
        call.reset(1e6 - i)  # always earlier: pushes a new entry each time
    assert len(heap._heap) <= 2 * (timers._COMPACT_MIN_STALE + 1)
    assert heap.getDelayedCalls() == [call]


def test_repeated_late_resets_are_lazy() -> None:
    heap, _ = make_heap()
    call = heap.schedule(1.0, print)
    for _ in range(1000):
        call.delay(1)
    assert len(heap._heap) == 1  # no entry was pushed: the move is O(1)
    assert heap.next_deadline() == 1001.0


def test_get_delayed_calls_is_sorted_and_live_only() -> None:
    heap, _ = make_heap()
    c = heap.schedule(3.0, print)
    a = heap.schedule(1.0, print)
    b = heap.schedule(2.0, print)
    heap.schedule(0.5, print).cancel()
    c.reset(0.0)
    assert heap.getDelayedCalls() == [c, a, b]


ops = st.lists(
    st.one_of(
        st.tuples(st.just("schedule"), st.integers(0, 20)),
        st.tuples(st.just("cancel"), st.integers(0, 50)),
        st.tuples(st.just("reset"), st.integers(0, 50), st.integers(0, 20)),
        st.tuples(st.just("advance"), st.integers(0, 5)),
    ),
    max_size=80,
)


@settings(max_examples=300, deadline=None)
@given(ops)
def test_heap_matches_a_naive_model(operations: list[Any]) -> None:
    """Random schedule/cancel/reset/advance sequences run calls in model order."""
    clock = Clock()
    ran: list[int] = []
    calls: list[DelayedCall] = []
    model: dict[int, tuple[float, int]] = {}  # id -> (time, order)
    order = 0
    expected: list[int] = []
    for op in operations:
        if op[0] == "schedule":
            ident = len(calls)
            calls.append(clock.callLater(op[1], ran.append, ident))
            model[ident] = (clock.seconds() + op[1], order)
            order += 1
        elif op[0] == "cancel" and op[1] < len(calls) and op[1] in model:
            calls[op[1]].cancel()
            del model[op[1]]
        elif op[0] == "reset" and op[1] < len(calls) and op[1] in model:
            calls[op[1]].reset(op[2])
            model[op[1]] = (clock.seconds() + op[2], order)
            order += 1
        elif op[0] == "advance":
            clock.advance(op[1])
            due = [(t, o, i) for i, (t, o) in model.items() if t <= clock.seconds()]
            heapq.heapify(due)
            while due:
                _, _, ident = heapq.heappop(due)
                expected.append(ident)
                del model[ident]
            assert ran == expected
    assert sorted(c.getTime() for c in clock.getDelayedCalls()) == sorted(
        t for t, _ in model.values()
    )


def test_module_doctests() -> None:
    assert doctest.testmod(timers).failed == 0
