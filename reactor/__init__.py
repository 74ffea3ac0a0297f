"""The reactor: torsion's event loop, as a module you can call.

The classic Twisted program runs unchanged but for its import::

    import reactor
    reactor.listenTCP(8007, QOTDFactory())
    reactor.run()

``import reactor`` chooses nothing: the first use of a reactor method
installs the default backend, ``uvloop`` when it is importable, else
``select`` (our own loop), unless the ``TORSION_REACTOR`` environment variable
names one (``select``, ``asyncio`` or ``uvloop``). To choose in code, call
``install`` before anything else uses the reactor::

    import reactor
    reactor.install("select")

Reactors are ordinary objects too: ``reactor.selector.SelectorReactor()`` and
``reactor.aio.AsyncioReactor(loop)`` make independent ones (one per thread,
or several in a test), and a stopped reactor can run again. The module is
accepted wherever a clock or reactor is taken (``d.addTimeout(5, reactor)``).

Submodules that import without choosing a backend: ``reactor.error``,
``reactor.address``, ``reactor.task``, ``reactor.threads``,
``reactor.testing``, ``reactor.interfaces``, ``reactor.timers``,
``reactor.endpoints``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from reactor.error import ReactorAlreadyInstalledError

__all__ = ["getReactor", "install", "installed_name", "react"]

BACKENDS = ("select", "asyncio", "uvloop")

_installed: Any = None
_installed_name: str | None = None
_lock = threading.Lock()

# Names looked up on the installed reactor when read from this module. Methods
# are cached in the module's namespace after the first look-up (so
# ``reactor.callLater`` costs a dict hit); ``running`` is read afresh each time.
_METHODS = (
    "addSystemEventTrigger", "callFromThread", "callInThread", "callLater",
    "callWhenRunning", "connectSSL", "connectTCP", "connectUNIX", "crash", "listenMulticast",
    "deferToThread", "fireSystemEvent", "getDelayedCalls", "getThreadPool",
    "listenSSL", "listenTCP", "listenUDP", "listenUNIX", "removeSystemEventTrigger",
    "run", "seconds", "spawnProcess", "startRunning", "stop", "suggestThreadPoolSize",
)


def _default_name() -> str:
    name = os.environ.get("TORSION_REACTOR", "").strip().lower()
    if name:
        if name not in BACKENDS:
            raise ValueError(
                f"TORSION_REACTOR={name!r} is not a reactor; choose one of {', '.join(BACKENDS)}")
        return name
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "select"
    return "uvloop"


def create(name: str) -> Any:
    """A new, independent reactor of the named backend ("select", "asyncio", "uvloop")."""
    if name == "select":
        from reactor.selector import SelectorReactor

        return SelectorReactor()
    if name == "asyncio":
        import asyncio

        from reactor.aio import AsyncioReactor

        return AsyncioReactor(asyncio.new_event_loop(), owns_loop=True)
    if name == "uvloop":
        import uvloop

        from reactor.aio import AsyncioReactor

        return AsyncioReactor(uvloop.new_event_loop(), owns_loop=True)
    raise ValueError(f"no reactor called {name!r}; choose one of {', '.join(BACKENDS)}")


def install(name: str | Any | None = None) -> Any:
    """Choose the reactor behind this module: a backend name, or a reactor object.

    Must come before anything uses the reactor.

    Raises:
        ReactorAlreadyInstalledError: a reactor is already installed (perhaps
            by an earlier use, which installs the default).
    """
    global _installed, _installed_name
    with _lock:
        if _installed is not None:
            raise ReactorAlreadyInstalledError(
                f"the {_installed_name!r} reactor is already installed (reactor.install() "
                "must be called before anything uses the reactor)")
        if name is None:
            name = _default_name()
        if isinstance(name, str):
            chosen, chosen_name = create(name), name
        else:
            chosen, chosen_name = name, getattr(name, "name", type(name).__name__)
        _set(chosen, chosen_name)
        return chosen


def getReactor() -> Any:
    """The installed reactor object, installing the default one on first use."""
    reactor = _installed
    if reactor is None:
        try:
            return install()
        except ReactorAlreadyInstalledError:
            return _installed  # another thread won the race
    return reactor


def installed_name() -> str | None:
    """The name of the installed backend, or None when none is installed yet."""
    return _installed_name


def _set(reactor: Any, name: str | None) -> None:
    global _installed, _installed_name
    _installed, _installed_name = reactor, name
    namespace = globals()
    for method in _METHODS:
        namespace.pop(method, None)


@contextmanager
def installed(reactor: Any) -> Iterator[Any]:
    """Make ``reactor`` the installed one for the duration of a ``with`` block.

    For tests and embedders; the previous state is restored afterwards.
    """
    with _lock:
        saved = (_installed, _installed_name)
        _set(reactor, getattr(reactor, "name", type(reactor).__name__))
    try:
        yield reactor
    finally:
        with _lock:
            _set(*saved)


def react(main: Callable[..., Any], argv: Any = (), _reactor: Any = None,
          **kwargs: Any) -> Any:
    """Run ``main(reactor, *argv)`` to completion; see ``reactor.task.react``."""
    from reactor.task import react as task_react

    return task_react(main, argv, _reactor, **kwargs)


def __getattr__(name: str) -> Any:
    if name in _METHODS:
        value = getattr(getReactor(), name)
        globals()[name] = value
        return value
    if name == "running":
        return getReactor().running
    raise AttributeError(f"module 'reactor' has no attribute {name!r}")
