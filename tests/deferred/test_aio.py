"""Deferreds and asyncio, both ways, on the default loop and on uvloop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
import uvloop

from deferred import CancelledError, Deferred, Failure, ensureDeferred, fail, succeed

LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": uvloop.new_event_loop,
}


@pytest.fixture(params=sorted(LOOPS))
def run(request: pytest.FixtureRequest) -> Callable[[Coroutine[Any, Any, Any]], Any]:
    """Run a coroutine to completion on a fresh loop of each kind."""

    def runner(coro: Coroutine[Any, Any, Any]) -> Any:
        with asyncio.Runner(loop_factory=LOOPS[request.param]) as r:
            return r.run(coro)

    return runner


def result_of(d: Deferred[Any]) -> Any:
    out: list[Any] = []
    d.addBoth(out.append)
    assert out
    return out[0]


# -- await a Deferred inside asyncio -------------------------------------------------


@pytest.mark.asyncio
async def test_await_deferred_in_plain_asyncio_code() -> None:
    d: Deferred[str] = Deferred()
    asyncio.get_running_loop().call_later(0.01, d.callback, "ready")
    assert await d == "ready"


@pytest.mark.asyncio
async def test_await_fired_and_failed_deferreds() -> None:
    assert await succeed(5) == 5
    with pytest.raises(KeyError):
        await fail(KeyError("k"))


def test_awaited_failure_raises_in_task(run: Callable[..., Any]) -> None:
    async def main() -> str:
        d: Deferred[int] = Deferred()
        asyncio.get_running_loop().call_soon(d.errback, ValueError("later"))
        try:
            await d
        except ValueError as e:
            return str(e)
        return "no error"

    assert run(main()) == "later"


def test_cancelling_the_task_cancels_the_deferred(run: Callable[..., Any]) -> None:
    cancelled: list[Deferred[Any]] = []

    async def main() -> tuple[bool, list[Deferred[Any]]]:
        d: Deferred[int] = Deferred(cancelled.append)

        async def waiter() -> int:
            return await d

        task = asyncio.ensure_future(waiter())
        await asyncio.sleep(0)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        return task.cancelled(), cancelled

    was_cancelled, calls = run(main())
    assert was_cancelled
    assert len(calls) == 1


def test_asyncio_wait_for_times_out_a_deferred(run: Callable[..., Any]) -> None:
    async def main() -> bool:
        cancelled: list[Deferred[Any]] = []
        d: Deferred[int] = Deferred(cancelled.append)
        try:
            await asyncio.wait_for(d, 0.01)
        except TimeoutError:
            # wait_for cancelled its task, which cancelled the Deferred; the
            # awaiting side consumed the CancelledError, as awaiting does.
            return cancelled == [d] and d.called
        return False

    assert run(main())


# -- asFuture / fromFuture --------------------------------------------------------


def test_asFuture_result_and_error(run: Callable[..., Any]) -> None:
    async def main() -> tuple[Any, str]:
        loop = asyncio.get_running_loop()
        good: Deferred[int] = Deferred()
        bad: Deferred[int] = Deferred()
        f1, f2 = good.asFuture(loop), bad.asFuture(loop)
        loop.call_soon(good.callback, 7)
        loop.call_soon(bad.errback, RuntimeError("no"))
        value = await f1
        try:
            await f2
        except RuntimeError as e:
            return value, str(e)
        return value, ""

    assert run(main()) == (7, "no")


def test_cancelling_asFuture_cancels_the_deferred(run: Callable[..., Any]) -> None:
    async def main() -> bool:
        cancelled: list[Deferred[Any]] = []
        d: Deferred[int] = Deferred(cancelled.append)
        future = d.asFuture(asyncio.get_running_loop())
        future.cancel()
        await asyncio.sleep(0)
        # asFuture consumes the result (as in Twisted): d continues with None.
        return cancelled == [d] and d.called and d.result is None

    assert run(main())


def test_fromFuture_result_error_and_cancel(run: Callable[..., Any]) -> None:
    async def main() -> tuple[Any, Any, bool]:
        loop = asyncio.get_running_loop()
        f1: asyncio.Future[int] = loop.create_future()
        f2: asyncio.Future[int] = loop.create_future()
        f3: asyncio.Future[int] = loop.create_future()
        d1, d2, d3 = (Deferred.fromFuture(f) for f in (f1, f2, f3))
        f1.set_result(1)
        f2.set_exception(ValueError("v"))
        d3.cancel()
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return result_of(d1), result_of(d2).value, f3.cancelled()

    one, err, f3_cancelled = run(main())
    assert one == 1 and isinstance(err, ValueError) and f3_cancelled


# -- coroutines run by ensureDeferred awaiting asyncio objects ---------------------


def test_ensureDeferred_coroutine_awaits_asyncio_sleep_and_tasks(
        run: Callable[..., Any]) -> None:
    async def helper() -> int:
        await asyncio.sleep(0.001)
        return 20

    async def mixed() -> int:
        await asyncio.sleep(0.001)
        a = await asyncio.ensure_future(helper())
        b = await succeed(1)
        return a + b

    async def main() -> int:
        return await ensureDeferred(mixed())

    assert run(main()) == 21


def test_cancelling_ensureDeferred_cancels_the_awaited_future(
        run: Callable[..., Any]) -> None:
    async def main() -> tuple[bool, Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()

        async def waits() -> int:
            return await future

        d = ensureDeferred(waits())
        d.cancel()
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return future.cancelled(), result_of(d)

    future_cancelled, outcome = run(main())
    assert future_cancelled
    assert isinstance(outcome, Failure) and outcome.check(CancelledError)


def test_asyncio_object_without_a_running_loop_names_the_backends() -> None:
    async def needs_asyncio() -> None:
        await asyncio.sleep(1)

    f = result_of(ensureDeferred(needs_asyncio()))
    assert isinstance(f, Failure) and f.check(RuntimeError)
    assert "asyncio or uvloop reactor" in f.getTraceback() or any(
        "asyncio or uvloop reactor" in note for note in getattr(f.value, "__notes__", []))

    loop = asyncio.new_event_loop()
    try:
        future = loop.create_future()

        async def awaits_foreign_future() -> None:
            await future

        g = result_of(ensureDeferred(awaits_foreign_future()))
        assert "asyncio or uvloop reactor" in g.getErrorMessage()
    finally:
        loop.close()
