"""The reactor core on every backend: run/stop, system events, time, threads, contexts."""

from __future__ import annotations

import asyncio
import contextvars
import subprocess
import sys
import textwrap
import threading
from typing import Any

import pytest

import reactor as reactor_module
from deferred import Deferred, ensureDeferred
from reactor.error import ReactorAlreadyInstalledError, ReactorNotRunning


def stop_soon(reactor: Any, delay: float = 0) -> None:
    reactor.callLater(delay, reactor.stop)


# -- run and stop -------------------------------------------------------------------


def test_run_stop_and_run_again(reactor: Any) -> None:
    events: list[str] = []
    reactor.callWhenRunning(events.append, "first run")
    reactor.callWhenRunning(reactor.stop)
    reactor.run(installSignalHandlers=False)
    assert not reactor.running
    reactor.callWhenRunning(events.append, "second run")
    reactor.callWhenRunning(reactor.stop)
    reactor.run(installSignalHandlers=False)
    assert events == ["first run", "second run"]


def test_stop_when_not_running(reactor: Any) -> None:
    with pytest.raises(ReactorNotRunning):
        reactor.stop()


def test_stop_twice_raises(reactor: Any) -> None:
    errors: list[Exception] = []

    def stop_twice() -> None:
        reactor.stop()
        try:
            reactor.stop()
        except ReactorNotRunning as e:
            errors.append(e)

    reactor.callWhenRunning(stop_twice)
    reactor.run(installSignalHandlers=False)
    assert len(errors) == 1


def test_callWhenRunning_while_running_calls_now(reactor: Any) -> None:
    calls: list[str] = []

    def started() -> None:
        reactor.callWhenRunning(calls.append, "now")
        calls.append("after")
        reactor.stop()

    reactor.callWhenRunning(started)
    reactor.run(installSignalHandlers=False)
    assert calls == ["now", "after"]


def test_system_event_phases_and_before_deferred_delays_shutdown(reactor: Any) -> None:
    order: list[str] = []
    gate: Deferred[None] = Deferred()

    def before() -> Deferred[None]:
        order.append("before")
        reactor.callLater(0.01, lambda: (order.append("gate"), gate.callback(None)))
        return gate

    reactor.addSystemEventTrigger("after", "shutdown", order.append, "after")
    reactor.addSystemEventTrigger("during", "shutdown", order.append, "during")
    reactor.addSystemEventTrigger("before", "shutdown", before)
    reactor.addSystemEventTrigger("before", "startup", order.append, "startup-before")
    reactor.addSystemEventTrigger("after", "startup", order.append, "startup-after")
    reactor.callWhenRunning(reactor.stop)
    reactor.run(installSignalHandlers=False)
    assert order == ["startup-before", "startup-after", "before", "gate", "during", "after"]


def test_removeSystemEventTrigger(reactor: Any) -> None:
    calls: list[str] = []
    trigger = reactor.addSystemEventTrigger("during", "shutdown", calls.append, "x")
    reactor.removeSystemEventTrigger(trigger)
    reactor.callWhenRunning(reactor.stop)
    reactor.run(installSignalHandlers=False)
    assert calls == []
    with pytest.raises(ValueError):
        reactor.removeSystemEventTrigger(trigger)


def test_failing_trigger_is_logged_and_shutdown_continues(
        reactor: Any, caplog: pytest.LogCaptureFixture) -> None:
    def broken() -> None:
        raise RuntimeError("trigger broke")

    reactor.addSystemEventTrigger("before", "shutdown", broken)
    reactor.callWhenRunning(reactor.stop)
    reactor.run(installSignalHandlers=False)
    assert "trigger broke" in caplog.text


# -- time ------------------------------------------------------------------------------


def test_callLater_order_cancel_and_reset(reactor: Any) -> None:
    calls: list[str] = []
    reactor.callLater(0.02, calls.append, "b")
    reactor.callLater(0.01, calls.append, "a")
    cancelled = reactor.callLater(0.015, calls.append, "cancelled")
    moved = reactor.callLater(0.005, calls.append, "moved")
    cancelled.cancel()
    moved.reset(0.03)
    assert not cancelled.active() and moved.active()
    assert moved in reactor.getDelayedCalls()
    reactor.callLater(0.04, reactor.stop)
    reactor.run(installSignalHandlers=False)
    assert calls == ["a", "b", "moved"]


def test_exception_in_delayed_call_is_logged_not_fatal(
        reactor: Any, caplog: pytest.LogCaptureFixture) -> None:
    def broken() -> None:
        raise ValueError("timer broke")

    reactor.callLater(0, broken)
    reactor.callLater(0.01, reactor.stop)
    reactor.run(installSignalHandlers=False)
    assert "timer broke" in caplog.text


def test_seconds_is_monotonic(reactor: Any) -> None:
    a = reactor.seconds()
    b = reactor.seconds()
    assert b >= a


def test_callLater_runs_in_the_scheduling_context(reactor: Any) -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    seen: list[str] = []
    var.set("at schedule time")
    reactor.callLater(0, lambda: seen.append(var.get()))
    var.set("later")
    reactor.callLater(0.01, reactor.stop)
    reactor.run(installSignalHandlers=False)
    assert seen == ["at schedule time"]


# -- threads -----------------------------------------------------------------------------


def test_callFromThread_wakes_the_reactor(reactor: Any) -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    seen: list[Any] = []

    def in_thread() -> None:
        var.set("thread's")
        reactor.callFromThread(lambda: seen.append((var.get(), threading.get_ident())))
        reactor.callFromThread(reactor.stop)

    reactor.callWhenRunning(threading.Thread(target=in_thread).start)
    reactor.run(installSignalHandlers=False)
    assert seen == [("thread's", threading.get_ident())]


def test_deferToThread_and_pool_stopped_at_shutdown(reactor: Any) -> Any:
    def blocking(x: int) -> tuple[int, str]:
        return x * 2, threading.current_thread().name

    async def main() -> None:
        value, name = await reactor.deferToThread(blocking, 21)
        assert value == 42 and name != threading.current_thread().name
        try:
            await reactor.deferToThread(lambda: 1 / 0)
        except ZeroDivisionError:
            pass
        else:
            raise AssertionError("the error did not cross")

    d = ensureDeferred(main())
    pool = reactor.getThreadPool()
    return d.addCallback(lambda _: pool)


def test_thread_pool_is_bounded(reactor: Any) -> Any:
    reactor.suggestThreadPoolSize(2)
    release = threading.Event()
    started = threading.Semaphore(0)

    def wait() -> None:
        started.release()
        release.wait(10)

    ds = [reactor.deferToThread(wait) for _ in range(5)]
    pool = reactor.getThreadPool()

    def check() -> None:
        started.acquire()
        started.acquire()
        assert pool.workers == 2
        release.set()

    reactor.callInThread(lambda: None)  # queued behind the blocked ones
    threading.Thread(target=check).start()
    from deferred import gatherResults

    return gatherResults(ds)


def test_callInThread_errors_are_logged(reactor: Any,
                                        caplog: pytest.LogCaptureFixture) -> Any:
    done: Deferred[None] = Deferred()

    def broken() -> None:
        try:
            raise KeyError("in a thread")
        finally:
            reactor.callFromThread(reactor.callLater, 0.01, done.callback, None)

    reactor.callInThread(broken)
    return done.addCallback(lambda _: ("in a thread" in caplog.text) or pytest.fail("not logged"))


# -- several reactors ------------------------------------------------------------------------


def test_two_select_reactors_in_two_threads() -> None:
    results: dict[str, Any] = {}

    def run_one(name: str) -> None:
        r = reactor_module.create("select")
        try:
            r.callLater(0.01, lambda: results.__setitem__(name, threading.get_ident()))
            r.callLater(0.02, r.stop)
            r.run(installSignalHandlers=False)
        finally:
            r.close()

    threads = [threading.Thread(target=run_one, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert set(results) == {"a", "b"} and results["a"] != results["b"]


# -- awaiting asyncio objects ------------------------------------------------------------------


async def test_coroutines_await_asyncio_on_asyncio_backends(reactor: Any) -> None:
    if reactor.name == "select":
        async def uses_asyncio() -> None:
            await asyncio.sleep(0.001)

        try:
            await ensureDeferred(uses_asyncio())
        except RuntimeError as e:
            # asyncio's own message, plus a note naming the backends to use
            assert any("asyncio or uvloop reactor" in n for n in e.__notes__)
        else:
            raise AssertionError("awaiting asyncio on the select reactor did not fail")
        return
    await asyncio.sleep(0.001)
    task = asyncio.ensure_future(asyncio.sleep(0.001, result="slept"))
    assert await task == "slept"


# -- the module-level API --------------------------------------------------------------------


def run_program(code: str, backend: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin"}
    if backend is not None:
        env["TORSION_REACTOR"] = backend
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("backend", ["select", "asyncio", "uvloop"])
def test_classic_program_with_module_level_reactor(backend: str) -> None:
    result = run_program("""
        import reactor
        from protocols import Factory, Protocol

        class QOTD(Protocol):
            def connectionMade(self):
                self.transport.write(b"An apple a day keeps the doctor away\\r\\n")
                self.transport.loseConnection()

        port = reactor.listenTCP(0, Factory.forProtocol(QOTD), interface="127.0.0.1")

        def fetch():
            import socket
            with socket.create_connection(("127.0.0.1", port.getHost().port)) as s:
                data = b""
                while chunk := s.recv(100):
                    data += chunk
            reactor.callFromThread(print, data.decode().strip(), reactor.installed_name())
            reactor.callFromThread(reactor.stop)

        reactor.callInThread(fetch)
        reactor.run()
    """, backend)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"An apple a day keeps the doctor away {backend}"


def test_install_after_use_is_a_clear_error() -> None:
    result = run_program("""
        import reactor
        reactor.callLater(0, print)
        try:
            reactor.install("select")
        except Exception as e:
            print(type(e).__name__, e)
    """)
    assert "ReactorAlreadyInstalledError" in result.stdout
    assert "before anything uses the reactor" in result.stdout


def test_install_chooses_the_backend() -> None:
    result = run_program("""
        import reactor
        r = reactor.install("select")
        print(type(r).__name__, reactor.getReactor() is r, reactor.installed_name())
    """, backend="uvloop")
    assert result.stdout.split() == ["SelectorReactor", "True", "select"]


def test_bad_backend_name() -> None:
    with pytest.raises(ValueError, match="no reactor called"):
        reactor_module.create("tornado")
    assert issubclass(ReactorAlreadyInstalledError, Exception)
