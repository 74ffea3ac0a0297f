"""Coordination without threads: ``DeferredLock``, ``DeferredSemaphore``, ``DeferredQueue``.

Nothing here blocks. Where a threading primitive would make the caller wait,
these return a Deferred that fires when the wait is over: ``acquire()`` fires
with the lock once it is yours, ``get()`` with the next item once there is
one. Waiters are served first come, first served, and cancelling a waiter's
Deferred takes it out of the line::

    lock = DeferredLock()

    async def update(key):
        async with lock:                     # one update at a time
            value = await read(key)
            await write(key, value + 1)

    lock.run(write, key, 0)                  # the same, for plain functions

Twisted's API, with ``async with`` on the lock and the semaphore.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Coroutine
from functools import partial
from types import TracebackType
from typing import Any, Generic, Literal, ParamSpec, Self, TypeVar, overload

from deferred._core import Deferred, succeed
from deferred._helpers import maybeDeferred

__all__ = [
    "DeferredLock",
    "DeferredQueue",
    "DeferredSemaphore",
    "QueueOverflow",
    "QueueUnderflow",
]

_T = TypeVar("_T")
_P = ParamSpec("_P")


class _ConcurrencyPrimitive(ABC):
    """What the lock and the semaphore share: ``run`` and ``async with``.

    Attributes:
        waiting: the Deferreds of pending ``acquire()`` calls, oldest first.
    """

    def __init__(self) -> None:
        self.waiting: list[Deferred[Self]] = []

    @abstractmethod
    def acquire(self) -> Deferred[Self]:
        """A Deferred that fires with ``self`` once it is acquired."""

    @abstractmethod
    def release(self) -> None:
        """Give back what ``acquire`` gave; the next waiter, if any, gets it."""

    def _cancelAcquire(self, d: Deferred[Self]) -> None:
        # A canceller only runs for a Deferred that has not fired, and a waiter
        # leaves ``waiting`` exactly when it is fired: so it is still there.
        self.waiting.remove(d)

    def _releaseAndReturn(self, result: _T) -> _T:
        self.release()
        return result

    @overload
    def run(
        self, f: Callable[_P, Deferred[_T]], /, *args: _P.args, **kwargs: _P.kwargs
    ) -> Deferred[_T]: ...

    @overload
    def run(
        self,
        f: Callable[_P, Coroutine[Any, Any, _T]],
        /,
        *args: _P.args,
        **kwargs: _P.kwargs,
    ) -> Deferred[_T]: ...

    @overload
    def run(self, f: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> Deferred[_T]: ...

    def run(self, f: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Deferred[Any]:
        """Acquire, call ``f(*args, **kwargs)``, and release when it is done.

        ``f`` may return a value, a Deferred or a coroutine; in the last two
        cases the release waits for it to finish. It is released whether ``f``
        succeeds or fails.

        Returns:
            A Deferred for ``f``'s result. Cancelling it before the acquisition
            gives up the place in line (``f`` is not called); afterwards it
            cancels what ``f`` returned.

        Example::

            sem = DeferredSemaphore(4)
            ds = [sem.run(fetch, url) for url in urls]   # at most 4 at a time
        """

        # Bound up front because ``kwargs`` may hold a key "f", which would
        # clash with maybeDeferred's own parameter of that name.
        call = partial(f, *args, **kwargs)

        def execute(_: object) -> Deferred[Any]:
            return maybeDeferred(call).addBoth(self._releaseAndReturn)

        return self.acquire().addCallback(execute)

    def __aenter__(self) -> Deferred[Self]:
        """``async with lock:`` acquires (awaiting the Deferred ``acquire`` returns)."""
        return self.acquire()

    def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> Deferred[Literal[False]]:
        """Release on leaving the block; an exception from the block propagates."""
        self.release()
        return succeed(False)


class DeferredLock(_ConcurrencyPrimitive):
    """A lock for code that runs callbacks instead of blocking.

    Attributes:
        locked: whether the lock is held. Read it, never set it: it is the
            non-blocking way to ask "would ``acquire`` wait?".
        waiting: the Deferreds of pending ``acquire()`` calls, oldest first.

    Example::

        lock = DeferredLock()
        lock.run(work)                      # acquire, work(), release

        async with lock:                    # the same, in a coroutine
            await work()
    """

    locked = False

    def acquire(self) -> Deferred[Self]:
        """A Deferred that fires with this lock once the caller holds it.

        If the lock is free it is taken and the Deferred has already fired;
        otherwise it waits in line. Cancelling a waiting Deferred leaves the line.
        """
        d: Deferred[Self] = Deferred(canceller=self._cancelAcquire)
        if self.locked:
            self.waiting.append(d)
        else:
            self.locked = True
            d.callback(self)
        return d

    def release(self: Self) -> None:
        """Release the lock; the first waiter, if any, gets it at once.

        Raises:
            AssertionError: the lock is not held (as in Twisted; raised even
                under ``python -O``).
        """
        if not self.locked:
            raise AssertionError("Tried to release an unlocked lock")
        if self.waiting:
            # Hand over without ever showing the lock as free in between.
            self.waiting.pop(0).callback(self)
        else:
            self.locked = False


class DeferredSemaphore(_ConcurrencyPrimitive):
    """A semaphore for code that runs callbacks instead of blocking.

    Args:
        tokens: how many holders may hold it at once (at least 1).

    Attributes:
        limit: that number.
        tokens: how many more may acquire it right now without waiting.
        waiting: the Deferreds of pending ``acquire()`` calls, oldest first.

    Raises:
        ValueError: ``tokens`` is less than 1.

    Example::

        sem = DeferredSemaphore(10)

        async def polite_fetch(url):
            async with sem:                 # at most 10 requests in flight
                return await fetch(url)
    """

    def __init__(self, tokens: int) -> None:
        super().__init__()
        if tokens < 1:
            raise ValueError("DeferredSemaphore requires tokens >= 1")
        self.tokens = tokens
        self.limit = tokens

    def acquire(self) -> Deferred[Self]:
        """A Deferred that fires with this semaphore once a token is the caller's.

        With a token free, it is taken and the Deferred has already fired;
        otherwise it waits in line. Cancelling a waiting Deferred leaves the line.
        """
        d: Deferred[Self] = Deferred(canceller=self._cancelAcquire)
        if self.tokens:
            self.tokens -= 1
            d.callback(self)
        else:
            self.waiting.append(d)
        return d

    def release(self: Self) -> None:
        """Return a token; the first waiter, if any, gets it at once.

        Raises:
            AssertionError: more releases than acquisitions (as in Twisted;
                raised even under ``python -O``).
        """
        if self.tokens >= self.limit:
            raise AssertionError("Someone released me too many times: too many tokens!")
        if self.waiting:
            # The token goes straight to the waiter; ``tokens`` does not change.
            self.waiting.pop(0).callback(self)
        else:
            self.tokens += 1


class QueueOverflow(Exception):
    """``DeferredQueue.put`` on a queue that already holds ``size`` items."""


class QueueUnderflow(Exception):
    """``DeferredQueue.get`` when ``backlog`` gets are already waiting."""


class DeferredQueue(Generic[_T]):
    """A queue whose ``get`` returns a Deferred, fired when an item is there.

    Args:
        size: the most items it holds; ``put`` beyond that raises
            ``QueueOverflow``. ``None``: no limit.
        backlog: the most ``get`` calls that may wait at once; one more raises
            ``QueueUnderflow``. ``None``: no limit.

    Attributes:
        pending: items put and not yet taken, oldest first.
        waiting: Deferreds of gets waiting for an item, oldest first.

    Example::

        queue: DeferredQueue[bytes] = DeferredQueue()
        queue.get().addCallback(handle)     # waits
        queue.put(b"job")                   # handle(b"job") runs now

        async def worker():
            while True:
                handle(await queue.get())
    """

    def __init__(self, size: int | None = None, backlog: int | None = None) -> None:
        self.waiting: list[Deferred[_T]] = []
        self.pending: list[_T] = []
        self.size = size
        self.backlog = backlog

    def _cancelGet(self, d: Deferred[_T]) -> None:
        # Only an unfired get is cancelled, and those are all in ``waiting``.
        self.waiting.remove(d)

    def put(self, obj: _T) -> None:
        """Add an item: give it to the oldest waiting get, or keep it.

        Raises:
            QueueOverflow: ``size`` items are already kept.
        """
        if self.waiting:
            self.waiting.pop(0).callback(obj)
        elif self.size is None or len(self.pending) < self.size:
            self.pending.append(obj)
        else:
            raise QueueOverflow()

    def get(self) -> Deferred[_T]:
        """A Deferred for the next item: already fired if one is kept.

        Cancelling a waiting get leaves the line, and the item it would have
        had goes to the next one.

        Raises:
            QueueUnderflow: ``backlog`` gets are already waiting.
        """
        if self.pending:
            return succeed(self.pending.pop(0))
        if self.backlog is None or len(self.waiting) < self.backlog:
            d: Deferred[_T] = Deferred(canceller=self._cancelGet)
            self.waiting.append(d)
            return d
        raise QueueUnderflow()
