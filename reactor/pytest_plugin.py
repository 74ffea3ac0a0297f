"""pytest support: ``clock`` and ``reactor`` fixtures, and tests returning Deferreds.

Installed with torsion (entry point ``pytest11``), so any project's tests can
use it::

    def test_echo(reactor):                 # runs once per backend
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        d = connect_and_talk(reactor, port.getHost().port)
        return d                            # the reactor runs until d fires

    async def test_async(reactor):          # async tests run on the reactor too
        assert await deferLater(reactor, 0, lambda: 3) == 3

- ``clock``: a ``reactor.testing.Clock`` (deterministic time).
- ``reactor``: a fresh reactor per test, parametrised over the backends
  (select, asyncio, uvloop); installed as the module-level ``reactor`` for
  the test's duration, and torn down afterwards with every connection,
  port and worker thread closed. A test that leaves file descriptors or
  threads behind fails.

A test using ``reactor`` that returns a Deferred, or is ``async def``, is run
by starting the reactor until the result is ready (failing after
``@pytest.mark.reactor_timeout(seconds)``, 30 s by default); then the reactor
is stopped, which runs its shutdown triggers.
"""

from __future__ import annotations

import inspect
import os
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import reactor as reactor_module
from deferred import Deferred, Failure, ensureDeferred
from reactor.testing import Clock

BACKENDS = ("select", "asyncio", "uvloop")
DEFAULT_TIMEOUT = 30.0


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "reactor_timeout(seconds): how long a Deferred/async test may run")
    config.addinivalue_line(
        "markers", "backends(*names): run the reactor fixture only on these backends")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Drop (not skip) the backend variants a ``backends(...)`` marker excludes."""
    kept, dropped = [], []
    for item in items:
        marker = item.get_closest_marker("backends")
        callspec = getattr(item, "callspec", None)
        backend = callspec.params.get("reactor") if callspec is not None else None
        if marker is not None and backend is not None and backend not in marker.args:
            dropped.append(item)
        else:
            kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.fixture
def clock() -> Clock:
    """A deterministic clock: ``clock.advance(seconds)`` runs what is due."""
    return Clock()


def _open_fds() -> set[int]:
    try:
        return {int(fd) for fd in os.listdir("/proc/self/fd")}
    except FileNotFoundError:  # not Linux: nothing to compare
        return set()


@pytest.fixture(params=BACKENDS)
def reactor(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh reactor of each backend, installed for the test, torn down after it."""
    name = request.param
    _warm_up(name)
    threads_before = set(threading.enumerate())
    fds_before = _open_fds()
    r = reactor_module.create(name)
    with reactor_module.installed(r):
        yield r
    _tear_down(r)
    leaked_threads = [t for t in threading.enumerate()
                      if t not in threads_before and t.is_alive()]
    for thread in leaked_threads:
        thread.join(timeout=5)
    leaked_threads = [t for t in leaked_threads if t.is_alive()]
    leaked_fds = _open_fds() - fds_before
    problems = []
    if leaked_threads:
        problems.append(f"threads left running: {leaked_threads}")
    if leaked_fds:
        problems.append(f"file descriptors left open: {sorted(leaked_fds)} "
                        f"({[_describe_fd(fd) for fd in sorted(leaked_fds)]})")
    if problems:
        pytest.fail(f"the {name} reactor was not torn down cleanly: " + "; ".join(problems))


_warmed: set[str] = set()


def _warm_up(name: str) -> None:
    """Create and close one reactor of a backend, so process-wide state that a
    backend creates once (uvloop's signal pipe) is not counted as a leak."""
    if name not in _warmed:
        _warmed.add(name)
        _tear_down(reactor_module.create(name))


def _describe_fd(fd: int) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return "?"


def _tear_down(r: Any) -> None:
    """Close everything the reactor holds, whatever state the test left it in."""
    if r.running:
        r.crash()
    r._shutdown_during()
    close = getattr(r, "close", None)
    if close is not None:
        close()


def run_until_fired(r: Any, d: Deferred[Any], timeout: float = DEFAULT_TIMEOUT) -> Any:
    """Run reactor ``r`` until ``d`` fires (or ``timeout`` passes); return or raise its result."""
    outcome: list[Any] = []

    def fired(result: Any) -> None:
        outcome.append(result)
        if r.running and not r._stopping:
            r.stop()

    d.addBoth(fired)
    if not outcome:
        def too_slow() -> None:
            if not outcome:
                d.cancel()
                if not outcome:
                    fired(Failure(TimeoutError(f"test did not finish within {timeout}s")))

        timer = r.callLater(timeout, too_slow)
        r.run(installSignalHandlers=False)
        if timer.active():
            timer.cancel()
    if not outcome:
        raise RuntimeError("the reactor stopped before the test's Deferred fired")
    result = outcome[0]
    if isinstance(result, Failure):
        result.raiseException()
    return result


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run tests that use ``reactor`` and return a Deferred (or are async) on it."""
    funcargs = pyfuncitem.funcargs
    if "reactor" not in funcargs or pyfuncitem.get_closest_marker("asyncio"):
        return None
    r: Any = funcargs["reactor"]
    if not hasattr(r, "callLater"):
        return None  # a fixture of the same name from elsewhere
    names = pyfuncitem._fixtureinfo.argnames
    result = pyfuncitem.obj(**{name: funcargs[name] for name in names})
    if inspect.iscoroutine(result):
        # Started from inside the running reactor, so that on the asyncio
        # backends the coroutine finds a running loop from its first line.
        coro, result = result, Deferred()
        r.callWhenRunning(lambda: ensureDeferred(coro).chainDeferred(result))
    if isinstance(result, Deferred):
        marker = pyfuncitem.get_closest_marker("reactor_timeout")
        timeout = float(marker.args[0]) if marker is not None else DEFAULT_TIMEOUT
        run_until_fired(r, result, timeout)
    return True
