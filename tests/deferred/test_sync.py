"""Tests for deferred.sync: DeferredLock, DeferredSemaphore, DeferredQueue.

Twisted's OtherPrimitivesTests and its ``async with`` tests restated for
pytest, plus waiter cancellation, ordering and the limits in detail.
Coroutines are driven by ``ensureDeferred``; every Deferred involved fires
synchronously, so no event loop is needed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from deferred import ensureDeferred
from deferred._core import CancelledError, Deferred, succeed
from deferred.failure import Failure
from deferred.sync import (
    DeferredLock,
    DeferredQueue,
    DeferredSemaphore,
    QueueOverflow,
    QueueUnderflow,
)


class GenericError(Exception):
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


AnyPrimitive = DeferredLock | DeferredSemaphore


@pytest.fixture(params=["lock", "semaphore"])
def primitive(request: pytest.FixtureRequest) -> AnyPrimitive:
    """A lock, or a semaphore with one token: they behave the same."""
    if request.param == "lock":
        return DeferredLock()
    return DeferredSemaphore(1)


def is_held(p: AnyPrimitive) -> bool:
    return p.locked if isinstance(p, DeferredLock) else p.tokens == 0


# -- DeferredLock ------------------------------------------------------------


def test_lock_acquire_and_release() -> None:
    lock = DeferredLock()
    assert not lock.locked
    first = lock.acquire()
    assert lock.locked
    assert result_of(first) is lock
    second = lock.acquire()
    assert not has_result(second)
    assert lock.waiting == [second]
    lock.release()
    assert lock.locked  # handed straight to the waiter
    assert result_of(second) is lock
    assert lock.waiting == []
    lock.release()
    assert not lock.locked


def test_lock_waiters_served_in_order() -> None:
    lock = DeferredLock()
    lock.acquire()
    order: list[int] = []
    for i in range(3):
        lock.acquire().addCallback(lambda _, i=i: order.append(i))
    for _ in range(3):
        lock.release()
    assert order == [0, 1, 2]
    assert lock.locked
    lock.release()
    assert not lock.locked


def test_lock_release_unlocked_raises() -> None:
    lock = DeferredLock()
    with pytest.raises(AssertionError):
        lock.release()


def test_lock_twisted_sequence() -> None:
    # Twisted's testLock, step by step.
    counter = 0

    def incr(_: object) -> None:
        nonlocal counter
        counter += 1

    lock = DeferredLock()
    lock.acquire().addCallback(incr)
    assert lock.locked and counter == 1
    lock.acquire().addCallback(incr)
    assert lock.locked and counter == 1
    lock.release()
    assert lock.locked and counter == 2
    lock.release()
    assert not lock.locked and counter == 2

    with pytest.raises(TypeError):
        lock.run()  # type: ignore[call-overload]

    first, second = object(), object()
    control: Deferred[object] = Deferred()
    seen: object = None

    def helper(resultValue: object, returnValue: object = None) -> object:
        nonlocal seen
        seen = resultValue
        return returnValue

    result = lock.run(helper, resultValue=first, returnValue=control)
    assert lock.locked and seen is first
    result.addCallback(helper)
    lock.acquire().addCallback(incr)
    assert lock.locked and counter == 2
    control.callback(second)
    assert seen is second
    assert lock.locked and counter == 3

    d = lock.acquire().addBoth(helper)
    d.cancel()
    assert isinstance(seen, Failure)
    assert seen.type is CancelledError
    lock.release()
    assert not lock.locked


def test_cancel_lock_after_acquired_does_nothing() -> None:
    lock = DeferredLock()
    d = lock.acquire()
    d.addErrback(lambda f: pytest.fail("unexpected errback"))
    d.cancel()
    assert lock.locked


def test_cancel_lock_waiter() -> None:
    lock = DeferredLock()
    lock.acquire()
    d = lock.acquire()
    d.cancel()
    failure_of(d, CancelledError)
    assert lock.waiting == []
    lock.release()
    assert not lock.locked  # nobody got it: the waiter was gone


def test_cancel_middle_waiter_keeps_order() -> None:
    lock = DeferredLock()
    lock.acquire()
    got: list[str] = []
    lock.acquire().addCallback(lambda _: got.append("a"))
    b = lock.acquire()
    b.addErrback(lambda f: got.append("b cancelled"))
    lock.acquire().addCallback(lambda _: got.append("c"))
    b.cancel()
    lock.release()
    lock.release()
    assert got == ["b cancelled", "a", "c"]


# -- run (lock and semaphore) ---------------------------------------------------


def test_run_sync_function(primitive: AnyPrimitive) -> None:
    d = primitive.run(lambda a, b=0: a + b, 1, b=2)
    assert result_of(d) == 3
    assert not is_held(primitive)


def test_run_releases_on_exception(primitive: AnyPrimitive) -> None:
    def boom() -> None:
        raise GenericError("x")

    failure_of(primitive.run(boom), GenericError)
    assert not is_held(primitive)


def test_run_releases_on_returned_failure(primitive: AnyPrimitive) -> None:
    failure_of(primitive.run(lambda: Failure(GenericError())), GenericError)
    assert not is_held(primitive)


def test_run_waits_for_returned_deferred(primitive: AnyPrimitive) -> None:
    control: Deferred[str] = Deferred()
    d = primitive.run(lambda: control)
    assert is_held(primitive)
    assert not has_result(d)
    control.callback("done")
    assert result_of(d) == "done"
    assert not is_held(primitive)


def test_run_releases_when_returned_deferred_fails(primitive: AnyPrimitive) -> None:
    control: Deferred[str] = Deferred()
    d = primitive.run(lambda: control)
    control.errback(GenericError())
    failure_of(d, GenericError)
    assert not is_held(primitive)


def test_run_coroutine_function(primitive: AnyPrimitive) -> None:
    gate: Deferred[int] = Deferred()

    async def work(n: int) -> int:
        return n + await gate

    d = primitive.run(work, 1)
    assert is_held(primitive)
    gate.callback(41)
    assert result_of(d) == 42
    assert not is_held(primitive)


def test_run_waits_its_turn(primitive: AnyPrimitive) -> None:
    primitive.acquire()
    calls: list[int] = []
    d = primitive.run(calls.append, 1)
    assert calls == []
    primitive.release()
    assert calls == [1]
    assert result_of(d) is None
    assert not is_held(primitive)


def test_run_cancelled_while_waiting_never_calls(primitive: AnyPrimitive) -> None:
    primitive.acquire()
    calls: list[int] = []
    d = primitive.run(calls.append, 1)
    d.cancel()
    failure_of(d, CancelledError)
    primitive.release()
    assert calls == []
    assert not is_held(primitive)


def test_run_cancelled_while_running_cancels_work(primitive: AnyPrimitive) -> None:
    cancelled: list[bool] = []
    work: Deferred[None] = Deferred(lambda _: cancelled.append(True))
    d = primitive.run(lambda: work)
    d.cancel()
    assert cancelled == [True]
    failure_of(d, CancelledError)  # work's failure, handed on to d
    assert not is_held(primitive)


def test_run_f_may_be_passed_as_keyword_to_itself(primitive: AnyPrimitive) -> None:
    # ``f`` is positional-only, so a keyword argument named f reaches the callee.
    assert result_of(primitive.run(lambda f: f * 2, f=21)) == 42


# -- DeferredSemaphore -------------------------------------------------------


def test_semaphore_counts_tokens() -> None:
    sem = DeferredSemaphore(3)
    assert (sem.tokens, sem.limit) == (3, 3)
    ds = [sem.acquire() for _ in range(3)]
    assert sem.tokens == 0
    assert all(result_of(d) is sem for d in ds)
    waiter = sem.acquire()
    assert not has_result(waiter)
    assert sem.waiting == [waiter]
    sem.release()
    assert sem.tokens == 0  # the token went straight to the waiter
    assert result_of(waiter) is sem
    for _ in range(3):
        sem.release()
    assert sem.tokens == 3


def test_semaphore_twisted_sequence() -> None:
    n = 13
    sem = DeferredSemaphore(n)
    counter = 0

    def incr(_: object) -> None:
        nonlocal counter
        counter += 1

    control: Deferred[None] = Deferred()
    arg_seen: list[object] = []

    def helper(arg: object) -> Deferred[None]:
        arg_seen.append(arg)
        return control

    unique = object()
    results: list[object] = []
    d = sem.run(helper, arg=unique)
    d.addCallback(results.append)
    d.addCallback(incr)
    assert results == [] and arg_seen == [unique]
    control.callback(None)
    assert results == [None] and counter == 1

    counter = 0
    for i in range(1, 1 + n):
        sem.acquire().addCallback(incr)
        assert counter == i

    outcome: list[bool] = []
    d = sem.acquire().addCallbacks(lambda r: outcome.append(False),
                                   lambda f: outcome.append(True))
    d.cancel()
    assert outcome == [True]

    sem.acquire().addCallback(incr)
    assert counter == n
    sem.release()
    assert counter == n + 1
    for _ in range(n):
        sem.release()
        assert counter == n + 1


@pytest.mark.parametrize("tokens", [0, -1])
def test_semaphore_invalid_tokens(tokens: int) -> None:
    with pytest.raises(ValueError):
        DeferredSemaphore(tokens)


def test_semaphore_release_too_many_raises() -> None:
    sem = DeferredSemaphore(2)
    with pytest.raises(AssertionError):
        sem.release()
    sem.acquire()
    sem.release()
    assert sem.tokens == 2


def test_cancel_semaphore_after_acquired_does_nothing() -> None:
    sem = DeferredSemaphore(1)
    d = sem.acquire()
    d.addErrback(lambda f: pytest.fail("unexpected errback"))
    d.cancel()
    assert sem.tokens == 0


def test_cancel_semaphore_waiter() -> None:
    sem = DeferredSemaphore(1)
    sem.acquire()
    d = sem.acquire()
    d.cancel()
    failure_of(d, CancelledError)
    assert sem.waiting == []
    sem.release()
    assert sem.tokens == 1


def test_semaphore_limits_concurrency() -> None:
    sem = DeferredSemaphore(2)
    gates: list[Deferred[None]] = [Deferred() for _ in range(5)]
    running: list[int] = []
    peak = 0

    def job(i: int) -> Deferred[None]:
        nonlocal peak
        running.append(i)
        peak = max(peak, len(running))
        return gates[i].addCallback(lambda _: running.remove(i))

    ds = [sem.run(job, i) for i in range(5)]
    assert running == [0, 1]
    for gate in gates:
        gate.callback(None)
    assert peak == 2
    assert all(has_result(d) for d in ds)
    assert sem.tokens == 2


# -- async with ----------------------------------------------------------------


def run(coro_fn: Callable[[], Any]) -> Any:
    """Run an ``async def`` test body to completion; return its result."""
    return result_of(ensureDeferred(coro_fn()))


def test_async_with_lock() -> None:
    async def body() -> None:
        lock = DeferredLock()
        async with lock:
            assert lock.locked
            d = lock.acquire()
            d.addCallback(lambda _: lock.release())
            assert lock.locked
            assert not d.called
        assert d.called
        await d
        assert not lock.locked

    run(body)


def test_async_with_semaphore() -> None:
    async def body() -> None:
        sem = DeferredSemaphore(3)
        async with sem:
            assert sem.tokens == 2
            async with sem:
                assert sem.tokens == 1
                d1 = sem.acquire()
                d2 = sem.acquire()
                assert sem.tokens == 0
                assert d1.called
                assert not d2.called
            assert sem.tokens == 0
            assert d2.called
            d1.addCallback(lambda _: sem.release())
            d2.addCallback(lambda _: sem.release())
            await d1
            await d2
            assert sem.tokens == 2
        assert sem.tokens == 3

    run(body)


def test_async_with_releases_and_propagates_exception(primitive: AnyPrimitive) -> None:
    async def body() -> None:
        async with primitive:
            assert is_held(primitive)
            raise GenericError("some specific exception")

    f = failure_of(ensureDeferred(body()), GenericError)
    assert f.getErrorMessage() == "some specific exception"
    assert not is_held(primitive)


def test_async_with_waits_for_the_lock() -> None:
    lock = DeferredLock()
    lock.acquire()
    events: list[str] = []

    async def body() -> str:
        async with lock:
            events.append("inside")
        events.append("after")
        return "done"

    d = ensureDeferred(body())
    assert events == []
    lock.release()
    assert events == ["inside", "after"]
    assert result_of(d) == "done"
    assert not lock.locked


def test_async_with_cancelled_while_waiting_leaves_the_line() -> None:
    lock = DeferredLock()
    lock.acquire()
    entered: list[bool] = []

    async def body() -> None:
        async with lock:
            entered.append(True)

    d = ensureDeferred(body())
    assert len(lock.waiting) == 1
    d.cancel()
    failure_of(d, CancelledError)
    assert lock.waiting == []
    lock.release()
    assert not lock.locked
    assert entered == []


def test_aenter_gives_the_primitive(primitive: AnyPrimitive) -> None:
    async def body() -> object:
        async with primitive as held:
            return held

    assert run(body) is primitive


# -- DeferredQueue -------------------------------------------------------------


def test_queue_twisted_sequence() -> None:
    n, m = 2, 2
    queue: DeferredQueue[int] = DeferredQueue(n, m)
    gotten: list[int] = []
    for _ in range(m):
        queue.get().addCallback(gotten.append)
    with pytest.raises(QueueUnderflow):
        queue.get()
    for i in range(m):
        queue.put(i)
        assert gotten == list(range(i + 1))
    for i in range(n):
        queue.put(n + i)
        assert gotten == list(range(m))
    with pytest.raises(QueueOverflow):
        queue.put(None)  # type: ignore[arg-type]
    gotten = []
    for i in range(n):
        queue.get().addCallback(gotten.append)
        assert gotten == list(range(n, n + i + 1))

    queue = DeferredQueue()
    gotten = []
    for _ in range(n):
        queue.get().addCallback(gotten.append)
    for i in range(n):
        queue.put(i)
    assert gotten == list(range(n))

    with pytest.raises(QueueOverflow):
        DeferredQueue(size=0).put(None)
    with pytest.raises(QueueUnderflow):
        DeferredQueue(backlog=0).get()


def test_queue_fifo_and_lists() -> None:
    queue: DeferredQueue[str] = DeferredQueue()
    queue.put("a")
    queue.put("b")
    assert queue.pending == ["a", "b"]
    assert result_of(queue.get()) == "a"
    assert queue.pending == ["b"]
    assert result_of(queue.get()) == "b"
    w1, w2 = queue.get(), queue.get()
    assert queue.waiting == [w1, w2]
    queue.put("c")
    assert result_of(w1) == "c"
    assert queue.waiting == [w2]
    assert queue.pending == []


def test_queue_size_counts_only_kept_items() -> None:
    queue: DeferredQueue[int] = DeferredQueue(size=1)
    waiter = queue.get()
    queue.put(1)  # goes to the waiter, not into the queue
    queue.put(2)
    with pytest.raises(QueueOverflow):
        queue.put(3)
    assert result_of(waiter) == 1
    assert queue.pending == [2]


def test_queue_backlog_counts_only_waiting_gets() -> None:
    queue: DeferredQueue[int] = DeferredQueue(backlog=1)
    queue.put(1)
    queue.put(2)
    assert result_of(queue.get()) == 1  # served at once: not in the backlog
    assert result_of(queue.get()) == 2
    waiter = queue.get()
    with pytest.raises(QueueUnderflow):
        queue.get()
    waiter.cancel()
    failure_of(waiter, CancelledError)
    queue.get()  # room again


def test_cancel_queue_get_after_synchronous_get() -> None:
    queue: DeferredQueue[None] = DeferredQueue()
    d = queue.get()
    d.addErrback(lambda f: pytest.fail("unexpected errback"))
    queue.put(None)
    d.cancel()


def test_cancel_queue_get_removes_waiter() -> None:
    queue: DeferredQueue[None] = DeferredQueue()
    d = queue.get()
    d.cancel()
    failure_of(d, CancelledError)
    assert queue.waiting == []
    queue.put(None)
    assert queue.pending == [None]


def test_cancelled_get_passes_item_to_next_waiter() -> None:
    queue: DeferredQueue[str] = DeferredQueue()
    first, second = queue.get(), queue.get()
    first.cancel()
    queue.put("x")
    failure_of(first, CancelledError)
    assert result_of(second) == "x"


def test_cancelled_get_is_unlinked_from_the_queue() -> None:
    # Twisted's test_cancelQueueAfterGet: after the cancellation, a put must
    # not try to fire the cancelled Deferred (that would be AlreadyCalledError).
    queue: DeferredQueue[None] = DeferredQueue()
    d = queue.get()
    d.cancel()
    failure_of(d, CancelledError)  # handled: d continues with None

    def again(_: object) -> Deferred[None]:
        queue.put(None)
        return queue.get()

    d.addCallback(again)
    done: list[None] = []
    d.addCallback(done.append)
    assert done == [None]


def test_queue_async_worker() -> None:
    queue: DeferredQueue[int] = DeferredQueue()
    seen: list[int] = []

    async def worker() -> None:
        while True:
            item = await queue.get()
            if item < 0:
                return
            seen.append(item)

    d = ensureDeferred(worker())
    for item in (1, 2, 3, -1):
        queue.put(item)
    assert result_of(d) is None
    assert seen == [1, 2, 3]


def test_queue_get_returns_fired_deferred_when_items_kept() -> None:
    queue: DeferredQueue[int] = DeferredQueue()
    queue.put(5)
    d = queue.get()
    assert d.called
    assert result_of(d) == 5
    assert result_of(succeed(1)) == 1


def test_exported_from_package() -> None:
    import deferred

    for name in ("DeferredLock", "DeferredSemaphore", "DeferredQueue", "QueueOverflow",
                 "QueueUnderflow"):
        assert getattr(deferred, name) is globals()[name]
