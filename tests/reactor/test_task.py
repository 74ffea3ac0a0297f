"""reactor.task: LoopingCall, deferLater, Cooperator/coiterate and react, on fake time.

Many cases follow ``twisted/test/test_task.py`` so the semantics match Twisted's.
"""

from __future__ import annotations

import doctest
import logging
import subprocess
import sys
from collections.abc import Callable, Generator, Iterator
from typing import Any, cast

import pytest

import reactor as reactor_module
from deferred import CancelledError, Deferred, Failure, fail, succeed
from reactor import task
from reactor.error import ReactorNotRunning
from reactor.task import (
    Cooperator,
    LoopingCall,
    NotPaused,
    SchedulerStopped,
    TaskDone,
    TaskFailed,
    TaskFinished,
    TaskStopped,
    deferLater,
    react,
)
from reactor.testing import Clock


class Boom(Exception):
    pass


def result_of(d: Deferred[Any]) -> Any:
    """The value a fired Deferred holds, consuming it (like trial's successResultOf)."""
    box: list[Any] = []
    d.addBoth(box.append)
    assert box, "Deferred has not fired"
    if isinstance(box[0], Failure):
        box[0].raiseException()
    return box[0]


def failure_of(d: Deferred[Any]) -> Failure:
    """The Failure a fired Deferred holds, consuming it (like trial's failureResultOf)."""
    box: list[Any] = []
    d.addBoth(box.append)
    assert box and isinstance(box[0], Failure), f"expected a failure, got {box}"
    return box[0]


def looping(clock: Clock, f: Callable[..., object], *a: object, **kw: object) -> LoopingCall:
    loop = LoopingCall(f, *a, **kw)
    loop.clock = clock
    return loop


def test_doctests() -> None:
    assert doctest.testmod(task).failed == 0


# --- LoopingCall: basics ---------------------------------------------------------------


def test_calls_immediately_then_every_interval_with_arguments() -> None:
    clock, seen = Clock(), []
    loop = looping(clock, lambda *a, **kw: seen.append((a, kw)), "a", "b", d="d")
    done = loop.start(0.1)
    clock.pump([0.05, 0.1, 0.1])
    assert seen == [(("a", "b"), {"d": "d"})] * 3
    assert not done.called
    loop.stop()
    assert result_of(done) is loop
    assert not loop.running and clock.getDelayedCalls() == []


def test_now_false_waits_one_interval() -> None:
    clock, seen = Clock(), []
    loop = looping(clock, lambda: seen.append(clock.seconds()))
    done = loop.start(0.1, now=False)
    clock.pump([0.05, 0.1, 0.1])
    assert len(seen) == 2
    loop.stop()
    assert result_of(done) is loop and clock.getDelayedCalls() == []


def test_negative_interval_is_rejected() -> None:
    loop = looping(Clock(), lambda: None)
    with pytest.raises(ValueError):
        loop.start(-1)
    assert not loop.running


@pytest.mark.parametrize("interval", [0, 10])
def test_stop_before_first_call(interval: float) -> None:
    clock, ran = Clock(), list[None]()
    loop = looping(clock, ran.append, None)
    done = loop.start(interval, now=False)
    loop.stop()
    clock.advance(20)
    assert ran == [] and clock.getDelayedCalls() == []
    assert result_of(done) is loop


def test_misuse_raises_assertion_error() -> None:
    loop = looping(Clock(), lambda: None)
    with pytest.raises(AssertionError):
        loop.stop()
    with pytest.raises(AssertionError):
        loop.reset()
    loop.start(1)
    with pytest.raises(AssertionError, match="already running"):
        loop.start(1)


def test_reset_restarts_the_interval() -> None:
    clock, ran = Clock(), list[None]()
    loop = looping(clock, ran.append, None)
    loop.start(2, now=False)
    clock.advance(1)
    loop.reset()
    clock.advance(1)
    assert ran == []
    clock.advance(1)
    assert ran == [None]


def test_restart_after_stop() -> None:
    clock, seen = Clock(), []
    loop = looping(clock, lambda: seen.append(clock.seconds()))
    first = loop.start(1)
    loop.stop()
    assert result_of(first) is loop
    clock.advance(5)
    second = loop.start(2)
    clock.advance(2)
    assert seen == [0.0, 5.0, 7.0]
    loop.stop()
    assert result_of(second) is loop


def test_repr() -> None:
    def installReactor(*a: object) -> None:
        pass

    assert repr(LoopingCall(installReactor, 1, key=2)) == (
        "LoopingCall<None>(test_repr.<locals>.installReactor, *(1,), **{'key': 2})"
    )
    assert repr(LoopingCall(Clock.advance)) == "LoopingCall<None>(Clock.advance, *(), **{})"


def test_default_clock_is_the_reactor_module() -> None:
    loop = LoopingCall(lambda: None)
    assert cast(object, loop.clock) is reactor_module
    clock = Clock()
    loop.clock = clock
    assert cast(object, loop.clock) is clock


def test_import_installs_no_backend() -> None:
    code = (
        "import sys, reactor.task\n"
        "loaded = [m for m in ('reactor.selector', 'reactor.aio', 'uvloop') if m in sys.modules]\n"
        "assert not loaded, loaded\n"
        "import reactor\n"
        "assert reactor.installed_name() is None\n"
        "from reactor.task import Clock\n"
        "from reactor.testing import Clock as C\n"
        "assert Clock is C\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_clock_reexported() -> None:
    assert task.Clock is Clock
    with pytest.raises(AttributeError):
        _ = task.NoSuchName


# --- LoopingCall: skipped intervals ----------------------------------------------------


def test_slow_call_skips_to_next_future_slot() -> None:
    clock, times = Clock(), []
    duration = [2.0]

    def slow() -> None:
        times.append(clock.seconds())
        clock.advance(duration[0])

    looping(clock, slow).start(0.5)
    assert times == [0] and clock.seconds() == 2
    clock.advance(0)  # the slot at 2.0 is "now", not the future: skipped
    assert times == [0]
    duration[0] = 1
    clock.advance(0.5)
    assert times == [0, 2.5] and clock.seconds() == 3.5
    clock.advance(0)
    assert times == [0, 2.5]
    duration[0] = 0
    clock.advance(0.5)
    assert times == [0, 2.5, 4]


def test_late_reactor_skips_missed_slots() -> None:
    clock, times = Clock(), []
    looping(clock, lambda: times.append(clock.seconds())).start(0.5)
    clock.advance(2)
    assert times == [0, 2]
    clock.advance(1)
    assert times == [0, 2, 3]
    clock.advance(0)
    assert times == [0, 2, 3]


def test_with_count_reports_skipped_slots() -> None:
    clock, seen = Clock(), []
    loop = LoopingCall.withCount(lambda n: seen.append((clock.seconds(), n)))
    loop.clock = clock
    loop.start(0.5)
    clock.advance(0.51)
    clock.advance(1.51)
    clock.advance(0)
    assert seen == [(0, 1), (0.51, 1), (pytest.approx(2.02), 3)]


def test_with_count_lengthy_interval_counts_whole_slots_only() -> None:
    clock, seen = Clock(), []
    loop = LoopingCall.withCount(lambda n: seen.append((clock.seconds(), n)))
    loop.clock = clock
    loop.start(0.5)
    clock.advance(0.51)
    clock.advance(0.5 * 1.75)
    clock.advance(0.5 * 0.25)
    assert [n for _, n in seen] == [1, 1, 1, 1]
    assert seen[-1][0] == pytest.approx(1.51)


def test_with_count_float_boundary_never_reports_zero() -> None:
    clock, counts = Clock(), list[int]()
    loop = LoopingCall.withCount(counts.append)
    loop.clock = clock
    interval = 1.0 / 10
    loop.start(interval, now=False)
    for _ in range(10):
        clock.advance(interval)
    total = 0.0
    for _ in range(10):
        total += interval
    epsilon = 1.0 - total
    assert epsilon != 0  # otherwise this test exercises nothing
    clock.advance(epsilon)
    assert sum(counts) == 10 and 0 not in counts


def test_with_count_deferred_blocks_then_counts_missed() -> None:
    clock, counts = Clock(), []
    waiting: Deferred[None] = Deferred()

    def tracker(n: int) -> Deferred[None] | None:
        counts.append(n)
        return waiting if len(counts) == 1 else None

    loop = LoopingCall.withCount(tracker)
    loop.clock = clock
    loop.start(0.2, now=False)
    clock.pump([0.2, 0.4])
    assert counts == [1]
    waiting.callback(None)
    clock.pump([0.2])
    assert counts == [1, 3]


def test_with_count_interval_zero_counts_one() -> None:
    clock, counts = Clock(), []
    waiting: Deferred[None] = Deferred()

    def foo(n: int) -> Deferred[None] | None:
        counts.append(n)
        if len(counts) == 2:
            return waiting
        if len(counts) > 4:
            loop.stop()
        return None

    loop = LoopingCall.withCount(foo)
    loop.clock = clock
    done = loop.start(0, now=False)
    clock.pump([0, 0])
    assert counts == [1, 1]
    clock.pump([1, 1])  # blocked on the Deferred, however much time passes
    assert counts == [1, 1]
    waiting.callback(None)
    clock.pump([0] * 4)
    assert counts == [1] * 5
    assert result_of(done) is loop


def test_with_count_interval_zero_then_nonzero_interval() -> None:
    clock, counts = Clock(), []
    waiting: Deferred[None] = Deferred()

    def foo(n: int) -> Deferred[None] | None:
        counts.append(n)
        return waiting if len(counts) == 2 else None

    loop = LoopingCall.withCount(foo)
    loop.clock = clock
    loop.start(0, now=False)
    clock.pump([1] * 7)
    assert counts == [1, 1]
    loop.interval = 2
    waiting.callback(None)
    clock.advance(9)
    # Twisted's expectation, including its #5962 fudge: (5 + 9) // 2 + 1.
    assert counts == [1, 1, 8]
    clock.advance(2)
    assert counts == [1, 1, 8, 1]
    clock.advance(4)
    assert counts == [1, 1, 8, 1, 2]


# --- LoopingCall: Deferreds and errors -------------------------------------------------


def test_interval_zero_runs_every_iteration() -> None:
    clock, ran = Clock(), list[None]()

    def foo() -> None:
        ran.append(None)
        if len(ran) > 5:
            loop.stop()

    loop = looping(clock, foo)
    done = loop.start(0)
    clock.advance(0)
    assert len(ran) == 6 and result_of(done) is loop


def test_waits_for_returned_deferred() -> None:
    clock, starts = Clock(), []

    def foo() -> Deferred[None]:
        starts.append(clock.seconds())
        d: Deferred[None] = Deferred()
        clock.callLater(1, d.callback, None)
        return d

    loop = looping(clock, foo)
    loop.start(0.2)
    clock.pump([0.2, 0.8])
    assert starts == [0]
    clock.advance(0.2)  # the Deferred fired at 1.0; next slot is 1.2
    assert starts == [0, 1.2]
    loop.stop()
    clock.advance(1)  # the pending Deferred fires the start Deferred
    assert clock.getDelayedCalls() == []


def test_stop_inside_deferred_callback() -> None:
    clock = Clock()

    def foo() -> Deferred[None]:
        d: Deferred[None] = Deferred()
        d.addCallback(lambda _: loop.stop())
        clock.callLater(1, d.callback, None)
        return d

    loop = looping(clock, foo)
    done = loop.start(0.2)
    clock.pump([0.2, 0.8])
    assert clock.getDelayedCalls() == [] and result_of(done) is loop


def test_coroutine_function() -> None:
    clock, ran = Clock(), []

    async def tick() -> None:
        await deferLater(clock, 0.5)
        ran.append(clock.seconds())

    loop = looping(clock, tick)
    loop.start(1)
    clock.pump([0.5, 0.5, 0.5])
    assert ran == [0.5, 1.5]


def test_exception_stops_loop_and_errbacks() -> None:
    clock = Clock()

    def foo(x: str) -> None:
        if clock.seconds() >= 2:
            raise Boom(x)

    loop = looping(clock, foo, "bar")
    done = loop.start(1)
    clock.pump([1, 1, 1])
    failure = failure_of(done)
    assert failure.check(Boom) and failure.value.args == ("bar",)
    assert not loop.running and clock.getDelayedCalls() == []


def test_exception_on_first_call_fails_start_deferred() -> None:
    def foo() -> None:
        raise Boom()

    loop = looping(Clock(), foo)
    assert failure_of(loop.start(1)).check(Boom)
    assert not loop.running
    loop.start(1, now=False)  # restartable after a failure
    assert loop.running


def test_fail_and_stop() -> None:
    def foo() -> None:
        loop.stop()
        raise Boom()

    loop = looping(Clock(), foo)
    assert failure_of(loop.start(0.1)).check(Boom)


def test_failing_deferred_propagates() -> None:
    clock = Clock()

    def foo() -> Deferred[None]:
        d: Deferred[None] = Deferred()
        clock.callLater(0.3, d.errback, Boom())
        return d

    loop = looping(clock, foo)
    done = loop.start(1)
    clock.pump([0.3])
    assert failure_of(done).check(Boom)
    assert clock.getDelayedCalls() == [] and not loop.running


def test_restart_while_previous_deferred_pending() -> None:
    clock, pending, starts = Clock(), [], []

    def foo() -> Deferred[None] | None:
        starts.append(clock.seconds())
        if len(starts) == 1:
            d: Deferred[None] = Deferred()
            pending.append(d)
            return d
        return None

    loop = looping(clock, foo)
    first = loop.start(1)
    loop.stop()
    assert not first.called  # waits for f's Deferred
    second = loop.start(1, now=False)
    pending[0].callback(None)
    assert result_of(first) is loop
    assert loop.running and len(clock.getDelayedCalls()) == 1  # one loop, not two
    clock.advance(1)
    assert starts == [0, 1]
    loop.stop()
    assert result_of(second) is loop


# --- deferLater ------------------------------------------------------------------------


def test_defer_later_calls_after_delay() -> None:
    clock, calls = Clock(), []
    flag = object()

    def callable(foo: str, bar: str) -> object:
        calls.append((foo, bar))
        return flag

    d = deferLater(clock, 3, callable, "foo", bar="bar")
    clock.advance(2)
    assert calls == [] and not d.called
    clock.advance(1)
    assert calls == [("foo", "bar")] and result_of(d) is flag


def test_defer_later_errback() -> None:
    def callable() -> None:
        raise Boom()

    clock = Clock()
    d = deferLater(clock, 1, callable)
    clock.advance(1)
    assert failure_of(d).check(Boom)


def test_defer_later_cancel() -> None:
    clock, called = Clock(), list[None]()
    d = deferLater(clock, 1, called.append, None)
    d.cancel()
    assert failure_of(d).check(CancelledError)
    assert clock.getDelayedCalls() == []
    clock.advance(2)
    assert called == []


def test_defer_later_without_callable_fires_none() -> None:
    clock = Clock()
    d: Deferred[None] = deferLater(clock, 2.0)
    assert not d.called
    clock.advance(2.0)
    assert result_of(d) is None


# --- Cooperator ------------------------------------------------------------------------


class FakeCall:
    def __init__(self, scheduler: FakeScheduler, f: Callable[[], None]) -> None:
        self.scheduler, self.f = scheduler, f

    def cancel(self) -> None:
        self.scheduler.calls.remove(self)


class FakeScheduler:
    """Records the ticks a Cooperator asks for; ``run_all`` runs them."""

    def __init__(self) -> None:
        self.calls: list[FakeCall] = []

    def __call__(self, f: Callable[[], None]) -> FakeCall:
        call = FakeCall(self, f)
        self.calls.append(call)
        return call

    def run_all(self) -> None:
        calls, self.calls = self.calls, []
        for call in calls:
            call.f()


def steps(n: int) -> Callable[[], Callable[[], bool]]:
    """A termination predicate factory that ends each tick after ``n`` steps."""

    def factory() -> Callable[[], bool]:
        left = [n]

        def done() -> bool:
            left[0] -= 1
            return left[0] <= 0

        return done

    return factory


def make_cooperator(per_tick: int = 1) -> tuple[Cooperator, FakeScheduler]:
    sched = FakeScheduler()
    return Cooperator(terminationPredicateFactory=steps(per_tick), scheduler=sched), sched


def test_coiterate_fires_with_iterator() -> None:
    coop, sched = make_cooperator()
    it = iter(range(3))
    d = coop.coiterate(it)
    for _ in range(3):
        sched.run_all()
        assert not d.called
    sched.run_all()
    assert result_of(d) is it and sched.calls == []


def test_round_robin_between_tasks() -> None:
    coop, sched = make_cooperator(per_tick=3)
    order: list[str] = []

    def work(name: str, n: int) -> Iterator[None]:
        for _ in range(n):
            order.append(name)
            yield None

    coop.coiterate(work("a", 3))
    coop.coiterate(work("b", 3))
    sched.run_all()
    assert order == ["a", "b", "a"]
    sched.run_all()
    assert order == ["a", "b", "a", "b", "a", "b"]


def test_yielded_deferred_pauses_task() -> None:
    coop, sched = make_cooperator(per_tick=10)
    gate: Deferred[None] = Deferred()
    progress: list[int] = []

    def work() -> Generator[Deferred[None] | None, None, None]:
        progress.append(1)
        yield gate
        progress.append(2)

    d = coop.coiterate(work())
    sched.run_all()
    assert progress == [1] and sched.calls == []  # paused: no tick wanted
    gate.callback(None)
    sched.run_all()
    assert progress == [1, 2] and d.called


def test_yielded_failing_deferred_fails_task() -> None:
    coop, sched = make_cooperator()
    gate: Deferred[None] = Deferred()
    t = coop.cooperate(iter([gate]))
    done = t.whenDone()
    sched.run_all()
    gate.errback(Boom())
    assert failure_of(done).check(Boom)
    with pytest.raises(TaskFailed):
        t.pause()


def test_iterator_error_fails_task() -> None:
    coop, sched = make_cooperator()

    def work() -> Iterator[None]:
        yield None
        raise Boom()

    t = coop.cooperate(work())
    done = t.whenDone()
    sched.run_all()
    sched.run_all()
    assert failure_of(done).check(Boom)
    with pytest.raises(TaskFailed):
        t.stop()


def test_pause_resume_and_not_paused() -> None:
    coop, sched = make_cooperator()
    seen: list[int] = []

    def work() -> Iterator[None]:
        for i in range(2):
            seen.append(i)
            yield None

    t = coop.cooperate(work())
    t.pause()
    t.pause()
    sched.run_all()
    assert seen == []
    t.resume()
    sched.run_all()
    assert seen == []  # pauses nest
    t.resume()
    sched.run_all()
    assert seen == [0]
    with pytest.raises(NotPaused):
        t.resume()


def test_stop_task() -> None:
    coop, sched = make_cooperator()
    t = coop.cooperate(iter(range(5)))
    done = t.whenDone()
    t.stop()
    assert failure_of(done).check(TaskStopped)
    assert sched.calls == []  # the only task left: its tick is cancelled
    with pytest.raises(TaskFinished):
        t.stop()
    assert failure_of(t.whenDone()).check(TaskStopped)


def test_when_done_after_completion() -> None:
    coop, sched = make_cooperator()
    it = iter(())
    t = coop.cooperate(it)
    sched.run_all()
    assert result_of(t.whenDone()) is it
    with pytest.raises(TaskDone):
        t.pause()


def test_stop_cooperator_fails_every_task() -> None:
    coop, sched = make_cooperator()
    dones = [coop.coiterate(iter(range(5))) for _ in range(3)]
    coop.stop()
    assert all(failure_of(d).check(SchedulerStopped) for d in dones)
    assert sched.calls == [] and not coop.running
    assert failure_of(coop.coiterate(iter(range(1)))).check(SchedulerStopped)
    coop.start()
    d = coop.coiterate(iter(range(1)))
    sched.run_all()
    sched.run_all()
    assert d.called and coop.running


def test_not_started_waits_for_start() -> None:
    sched = FakeScheduler()
    coop = Cooperator(scheduler=sched, started=False)
    d = coop.coiterate(iter(range(2)))
    assert sched.calls == [] and not coop.running
    coop.start()
    sched.run_all()
    assert d.called


def test_default_cooperator_uses_installed_reactor() -> None:
    clock = Clock()
    with reactor_module.installed(clock):
        it = iter(range(3))
        d = task.coiterate(it)
        assert not d.called
        clock.advance(1)
        assert result_of(d) is it
        t = task.cooperate(iter(range(3)))
        clock.advance(1)
        assert t.whenDone().called


# --- react -----------------------------------------------------------------------------


class FakeReactor:
    """Twisted's ``_FakeReactor``: a Clock that runs timed calls until stopped."""

    def __init__(self) -> None:
        self.running = False
        self.clock = Clock()
        self.callLater = self.clock.callLater
        self.seconds = self.clock.seconds
        self._whenRunning: list[tuple[Callable[..., object], tuple[object, ...]]] | None = []
        self._triggers: dict[str, list[tuple[Callable[..., object], tuple[object, ...]]]] = {
            "before": [],
            "during": [],
        }

    def callWhenRunning(self, f: Callable[..., object], *args: object) -> None:
        if self._whenRunning is None:
            f(*args)
        else:
            self._whenRunning.append((f, args))

    def addSystemEventTrigger(
        self, phase: str, event: str, f: Callable[..., object], *args: object
    ) -> None:
        assert event == "shutdown"
        self._triggers[phase].append((f, args))

    def run(self) -> None:
        self.running = True
        pending, self._whenRunning = self._whenRunning, None
        for f, args in pending or ():
            f(*args)
        while self.running:
            calls = self.clock.getDelayedCalls()
            if not calls:
                raise RuntimeError("No DelayedCalls left")
            self.clock.advance(calls[0].getTime() - self.seconds())
        for f, args in self._triggers["before"] + self._triggers["during"]:
            f(*args)

    def stop(self) -> None:
        if not self.running:
            raise ReactorNotRunning()
        self.running = False


def exit_code(main: Callable[..., Any], argv: Any = (), r: Any = None) -> Any:
    with pytest.raises(SystemExit) as info:
        react(main, argv, r if r is not None else FakeReactor())
    return info.value.code


def test_react_runs_until_async_callback() -> None:
    passed: list[bool] = []
    r = FakeReactor()

    def main(reactor: FakeReactor) -> Deferred[None]:
        finished: Deferred[None] = Deferred()
        reactor.callLater(1, passed.append, True)
        reactor.callLater(2, finished.callback, None)
        return finished

    assert exit_code(main, r=r) == 0
    assert passed == [True] and r.seconds() == 2 and not r.running


def test_react_sync_success_and_arguments() -> None:
    args: list[object] = []

    def main(reactor: FakeReactor, *a: object) -> Deferred[None]:
        args.extend(a)
        return succeed(None)

    r = FakeReactor()
    assert exit_code(main, [1, 2, 3], r) == 0
    assert args == [1, 2, 3] and r.seconds() == 0


@pytest.mark.parametrize("sync", [True, False])
def test_react_failure_logs_and_exits_1(sync: bool, caplog: pytest.LogCaptureFixture) -> None:
    def main(reactor: FakeReactor) -> Deferred[None]:
        if sync:
            return fail(Boom("bad"))
        finished: Deferred[None] = Deferred()
        reactor.callLater(1, finished.errback, Boom("bad"))
        return finished

    with caplog.at_level(logging.ERROR, logger="reactor"):
        assert exit_code(main) == 1
    [record] = [rec for rec in caplog.records if rec.name == "reactor"]
    assert record.exc_info is not None and record.exc_info[0] is Boom
    assert "main function encountered error" in record.getMessage()


def test_react_main_raising_synchronously(caplog: pytest.LogCaptureFixture) -> None:
    def main(reactor: FakeReactor) -> None:
        raise Boom()

    with caplog.at_level(logging.ERROR, logger="reactor"):
        assert exit_code(main) == 1
    assert any(rec.exc_info and rec.exc_info[0] is Boom for rec in caplog.records)


def test_react_system_exit_code() -> None:
    def raises(reactor: FakeReactor) -> None:
        raise SystemExit(3)

    async def coro(reactor: FakeReactor) -> None:
        await deferLater(reactor, 1)
        raise SystemExit(4)

    assert exit_code(raises) == 3
    assert exit_code(coro) == 4
    assert exit_code(lambda reactor: fail(SystemExit(23))) == 23


def test_react_coroutine_main() -> None:
    r = FakeReactor()

    async def main(reactor: FakeReactor, name: str) -> str:
        await deferLater(reactor, 5)
        return f"hello {name}"

    assert exit_code(main, ["world"], r) == 0
    assert r.seconds() == 5
    assert react(main, ["you"], FakeReactor(), exit=False) == "hello you"


def test_react_exit_false_returns_or_raises() -> None:
    assert react(lambda reactor: 42, (), FakeReactor(), exit=False) == 42
    assert react(lambda reactor: succeed("x"), (), FakeReactor(), exit=False) == "x"

    async def bad(reactor: FakeReactor) -> None:
        await deferLater(reactor, 1)
        raise Boom("raised")

    with pytest.raises(Boom, match="raised"):
        react(bad, (), FakeReactor(), exit=False)
    with pytest.raises(SystemExit) as info:
        react(lambda reactor: fail(SystemExit(5)), (), FakeReactor(), exit=False)
    assert info.value.code == 5


@pytest.mark.parametrize("outcome", ["callback", "errback"])
def test_react_result_during_shutdown_does_not_stop_twice(outcome: str) -> None:
    r = FakeReactor()

    def main(reactor: FakeReactor) -> Deferred[None]:
        reactor.callLater(1, reactor.stop)
        finished: Deferred[None] = Deferred()
        if outcome == "callback":
            reactor.addSystemEventTrigger("during", "shutdown", finished.callback, None)
        else:
            reactor.addSystemEventTrigger("during", "shutdown", finished.errback, Boom())
        return finished

    assert exit_code(main, r=r) == (0 if outcome == "callback" else 1)
    assert r.seconds() == 1


def test_react_reactor_stopped_just_before_result() -> None:
    def main(reactor: FakeReactor) -> Deferred[None]:
        d: Deferred[None] = Deferred()

        def stop() -> None:
            reactor.stop()
            d.callback(None)

        reactor.callWhenRunning(stop)
        return d

    assert exit_code(main) == 0


def test_react_reactor_stopped_before_main_finished() -> None:
    def main(reactor: FakeReactor) -> Deferred[None]:
        reactor.callLater(1, reactor.stop)
        return Deferred()

    assert exit_code(main) == 0  # Twisted's behaviour
    with pytest.raises(ReactorNotRunning, match="before main"):
        react(main, (), FakeReactor(), exit=False)


def test_react_default_reactor_is_the_module() -> None:
    fake = FakeReactor()
    passed: list[object] = []

    async def main(reactor: Any) -> int:
        passed.append(reactor)
        await deferLater(reactor, 1)
        return 7

    with reactor_module.installed(fake):
        assert react(main, exit=False) == 7
    assert passed == [reactor_module] and fake.seconds() == 1
