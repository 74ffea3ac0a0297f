"""Timed calls: ``DelayedCall`` and the ``TimerHeap`` that reactors and ``Clock`` share.

``reactor.callLater(delay, f, *args)`` returns a :class:`DelayedCall`, which can be
cancelled, moved (``reset``/``delay``) and inspected (``active``, ``getTime``), with
Twisted's semantics: cancelling or moving a call that already ran raises
:class:`~reactor.error.AlreadyCalled`, one already cancelled raises
:class:`~reactor.error.AlreadyCancelled`.

A call runs in the ``contextvars`` context that was current when it was scheduled,
so context-local state (request ids, log context) follows the work the way it does
with asyncio's ``loop.call_later``.

How the heap stays cheap (every operation O(log n) or better):

* Entries are ``(when, order, call)`` tuples; ``order`` comes from one counter, so
  calls due at the same time run in the order they were scheduled, and tuples
  never compare the calls themselves.
* Cancelling does not search the heap. The call forgets its entry; the entry is
  *stale* and is dropped when it reaches the top. When stale entries outnumber
  live ones the heap is rebuilt once (amortised O(1) per cancel), so a server
  that sets and cancels a timeout per request does not grow without bound.
* Moving a call *later* (the common ``resetTimeout`` pattern) is O(1): only the
  call's time changes, and its entry is re-filed when it surfaces at the top.
  Moving a call *earlier* pushes a new entry and leaves the old one stale.

Example:
    >>> heap = TimerHeap(lambda: 0.0)
    >>> call = heap.schedule(5.0, print, ("hello",), {})
    >>> heap.next_deadline()
    5.0
    >>> heap.pop_due(4.0) is None
    True
    >>> heap.pop_due(5.0).invoke()
    hello
"""

from __future__ import annotations

import contextvars
import heapq
import itertools
import time as _time
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from .error import AlreadyCalled, AlreadyCancelled

__all__ = ["DelayedCall", "TimerHeap"]

# A heap entry: (when, order, call). A tuple, not a class, because heapq compares
# tuples in C; ``order`` is unique, so the comparison never reaches ``call``.
_Entry = tuple[float, int, "DelayedCall"]

# Below this many stale entries we never rebuild: rebuilding a small heap buys
# nothing and would make the cost of cancel() jumpy for tiny programs.
_COMPACT_MIN_STALE = 64


def _noop_hook(call: DelayedCall) -> None:
    """A canceller/resetter for calls that belong to no heap."""


class DelayedCall:
    """A call scheduled to run at a given time; returned by ``callLater``.

    Args:
        time: When to run, in the units of ``seconds`` (usually seconds since the
            epoch, or since the ``Clock`` started).
        func: The callable to run.
        args: Positional arguments for ``func``.
        kw: Keyword arguments for ``func``.
        cancel: Called with this call just before it is marked cancelled; the
            owner (a ``TimerHeap``) uses it to forget the call.
        reset: Called with this call after its time changed; the owner uses it to
            move the call.
        seconds: The owner's clock, used by :meth:`reset` and ``repr``.

    Attributes:
        time: The time at which the call will run.
        called: 1 once the call has started running, else 0 (Twisted uses ints).
        cancelled: 1 once the call has been cancelled, else 0.
        debug: Class-wide switch; when true, each call records the stack that
            created it and shows it in its repr.

    Example:
        >>> from reactor.testing import Clock
        >>> clock = Clock()
        >>> call = clock.callLater(10, print, "late")
        >>> call.delay(5); call.getTime()
        15.0
        >>> call.cancel(); call.active()
        False
    """

    __slots__ = (
        "_context",
        "_entry",
        "_order",
        "args",
        "called",
        "cancelled",
        "canceller",
        "creator",
        "func",
        "kw",
        "resetter",
        "seconds",
        "time",
    )

    debug = False

    def __init__(
        self,
        time: float,
        func: Callable[..., object],
        args: Sequence[object],
        kw: dict[str, Any],
        cancel: Callable[[DelayedCall], None] = _noop_hook,
        reset: Callable[[DelayedCall], None] = _noop_hook,
        seconds: Callable[[], float] = _time.time,
    ) -> None:
        self.time = time
        self.func = func
        self.args = args
        self.kw = kw
        self.canceller = cancel
        self.resetter = reset
        self.seconds = seconds
        self.called = 0
        self.cancelled = 0
        # copy_context() is O(1): contexts are immutable mappings shared on copy.
        self._context = contextvars.copy_context()
        # Owned by TimerHeap: the call's live heap entry (None when not in a heap)
        # and its place among calls due at the same time.
        self._entry: _Entry | None = None
        self._order = 0
        self.creator: list[str] | None = traceback.format_stack()[:-2] if self.debug else None

    def getTime(self) -> float:
        """Return the time at which this call will run."""
        return self.time

    def active(self) -> bool:
        """Return True until the call has run or been cancelled."""
        return not (self.cancelled or self.called)

    def _check_pending(self) -> None:
        if self.cancelled:
            raise AlreadyCancelled()
        if self.called:
            raise AlreadyCalled()

    def cancel(self) -> None:
        """Unschedule the call.

        Raises:
            AlreadyCancelled: The call was already cancelled.
            AlreadyCalled: The call has already run.
        """
        self._check_pending()
        self.canceller(self)
        self.cancelled = 1
        # Drop references so a cancelled timeout does not keep a protocol (or
        # everything its context refers to) alive for as long as the call object.
        del self.func, self.args, self.kw, self._context

    def reset(self, secondsFromNow: float) -> None:
        """Reschedule the call to run ``secondsFromNow`` seconds from now.

        Raises:
            AlreadyCancelled: The call was cancelled.
            AlreadyCalled: The call has already run.
        """
        self._check_pending()
        self.time = self.seconds() + secondsFromNow
        self.resetter(self)

    def delay(self, secondsLater: float) -> None:
        """Move the call ``secondsLater`` seconds later (earlier if negative).

        Raises:
            AlreadyCancelled: The call was cancelled.
            AlreadyCalled: The call has already run.
        """
        self._check_pending()
        self.time += secondsLater
        self.resetter(self)

    def invoke(self) -> None:
        """Run the call now, in the context current when it was scheduled.

        For reactors and clocks: they call this on what ``TimerHeap.pop_due``
        returns. It does nothing if the call was cancelled or rescheduled after
        being popped (another call due at the same moment may have done that),
        so a batch of popped calls can be run blindly. Exceptions from the
        function propagate to the caller, which decides whether to log them.
        """
        if self.cancelled or self.called or self._entry is not None:
            return
        self.called = 1
        self._context.run(self.func, *self.args, **self.kw)

    def __lt__(self, other: DelayedCall) -> bool:
        return self.time < other.time

    def __le__(self, other: DelayedCall) -> bool:
        return self.time <= other.time

    def __repr__(self) -> str:
        func = getattr(self, "func", None)
        parts = [
            f"<DelayedCall 0x{id(self):x} [{self.time - self.seconds()}s]"
            f" called={self.called} cancelled={self.cancelled}"
        ]
        if func is not None:
            name = getattr(func, "__qualname__", None) or getattr(func, "__name__", None)
            shown = [_safe_repr(arg) for arg in self.args]
            shown += [f"{key}={_safe_repr(value)}" for key, value in self.kw.items()]
            parts.append(f" {name or _safe_repr(func)}({', '.join(shown)})")
        if self.creator is not None:
            parts.append("\n\ntraceback at creation: \n\n" + "    ".join(self.creator))
        parts.append(">")
        return "".join(parts)


def _safe_repr(obj: object) -> str:
    # repr() of user objects can raise; a repr of a DelayedCall must not.
    try:
        return repr(obj)
    except Exception as e:  # any failure only changes the text
        return f"<repr of {type(obj).__name__} failed: {e!r}>"


class TimerHeap:
    """A priority queue of DelayedCalls, shared by the reactors and ``Clock``.

    The owner creates calls with :meth:`schedule` (which wires the calls'
    cancel/reset hooks to this heap), asks :meth:`next_deadline` how long it may
    sleep, and takes due calls with :meth:`pop_due` and runs them with
    ``call.invoke()``.

    Two ways to drain, for two semantics:

    * A reactor takes a batch with :meth:`pop_all_due` and runs it; calls
      scheduled while the batch runs wait for the next loop iteration, even
      ``callLater(0, ...)`` (so a call that reschedules itself cannot starve I/O).
    * ``Clock.advance`` calls :meth:`pop_due` until it returns ``None``; a call
      scheduled for "now" while advancing runs in the same ``advance``.

    Args:
        seconds: The owner's time function; given to every DelayedCall for
            ``reset``.
    """

    __slots__ = ("_counter", "_heap", "_seconds", "_stale")

    def __init__(self, seconds: Callable[[], float]) -> None:
        self._seconds = seconds
        self._heap: list[_Entry] = []
        self._stale = 0
        self._counter = itertools.count()

    def __len__(self) -> int:
        """The number of pending (not cancelled, not popped) calls."""
        return len(self._heap) - self._stale

    def schedule(
        self,
        when: float,
        func: Callable[..., object],
        args: Sequence[object] = (),
        kw: dict[str, Any] | None = None,
    ) -> DelayedCall:
        """Create a DelayedCall that runs ``func(*args, **kw)`` at time ``when``.

        Returns:
            The DelayedCall; its ``cancel``/``reset``/``delay`` update this heap.
        """
        call = DelayedCall(
            when, func, args, {} if kw is None else kw, self._cancel, self._reset, self._seconds
        )
        self.push(call)
        return call

    def push(self, call: DelayedCall) -> None:
        """Add a call (created with this heap's hooks) at ``call.time``."""
        call._order = next(self._counter)
        entry: _Entry = (call.time, call._order, call)
        call._entry = entry
        heapq.heappush(self._heap, entry)

    def next_deadline(self) -> float | None:
        """Return the time of the earliest pending call, or None if there is none."""
        entry = self._settle_top()
        return None if entry is None else entry[0]

    def pop_due(self, now: float) -> DelayedCall | None:
        """Remove and return the earliest call due at or before ``now``, or None."""
        entry = self._settle_top()
        if entry is None or entry[0] > now:
            return None
        heapq.heappop(self._heap)
        call = entry[2]
        call._entry = None
        return call

    def pop_all_due(self, now: float) -> list[DelayedCall]:
        """Remove and return every call due at or before ``now``, earliest first."""
        due = []
        while (call := self.pop_due(now)) is not None:
            due.append(call)
        return due

    def getDelayedCalls(self) -> list[DelayedCall]:
        """Return the pending calls, earliest first (O(n log n); for inspection)."""
        calls = [entry[2] for entry in self._heap if entry[2]._entry is entry]
        calls.sort(key=lambda call: (call.time, call._order))
        return calls

    def _settle_top(self) -> _Entry | None:
        """Drop stale entries from the top, re-file moved ones; return the top."""
        heap = self._heap
        while heap:
            entry = heap[0]
            call = entry[2]
            if call._entry is not entry:
                # Cancelled, or moved earlier (a newer entry exists): discard.
                heapq.heappop(heap)
                self._stale -= 1
            elif entry[1] != call._order:
                # Moved later since this entry was made: file it at its new time.
                fresh: _Entry = (call.time, call._order, call)
                call._entry = fresh
                heapq.heapreplace(heap, fresh)
            else:
                return entry
        return None

    def _cancel(self, call: DelayedCall) -> None:
        # A call popped as due but not yet run has no entry; nothing to forget.
        if call._entry is not None:
            call._entry = None
            self._stale += 1
            self._maybe_compact()

    def _reset(self, call: DelayedCall) -> None:
        entry = call._entry
        if entry is not None and call.time >= entry[0]:
            # Later than the entry says: leave the entry where it is and let
            # _settle_top re-file it (the new order marks it as moved).
            call._order = next(self._counter)
            return
        if entry is not None:
            self._stale += 1
        # Earlier than its entry, or popped as due but not yet run: new entry.
        self.push(call)
        self._maybe_compact()

    def _maybe_compact(self) -> None:
        stale = self._stale
        if stale > _COMPACT_MIN_STALE and stale * 2 > len(self._heap):
            live = [entry for entry in self._heap if entry[2]._entry is entry]
            heapq.heapify(live)
            self._heap = live
            self._stale = 0
