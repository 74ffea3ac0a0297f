"""Child processes on the asyncio and uvloop reactors: the loop starts and reaps them.

The loop's own ``subprocess_exec`` starts the child and tells us when it has
exited: uvloop owns SIGCHLD (a handler of ours would never hear of the exit),
and asyncio has its child watcher. ``_LoopChild`` is the
``asyncio.SubprocessProtocol`` it reports to. The pipes are not the loop's:
they are ``reactor._process_io``'s own, handed to the loop as plain descriptors,
and watched with ``add_reader``/``add_writer`` (``LoopPoller``), so reading,
writing and flow control are the selector reactor's code, on every loop.

The loop reports the new child (``connection_made``) on a later loop turn, so
``makeConnection`` waits for it, and with it the pid; a signal sent before
then is sent as soon as it arrives.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, cast

from reactor.aio import drive
from reactor.error import ProcessExitedAlready

if TYPE_CHECKING:
    from reactor.process import ProcessTransport, _Plan

__all__ = ["LoopPoller", "spawn_on_loop"]

log = logging.getLogger("reactor")

_READ = 1
_WRITE = 2


def spawn_on_loop(reactor: Any, transport: ProcessTransport, plan: _Plan) -> None:
    """Start the child with ``loop.subprocess_exec``; errors starting it raise here.

    The loop starts the child before ``subprocess_exec`` first waits, so
    ``drive`` runs that far now: a bad ``path`` raises from ``spawnProcess``,
    as on the selector reactor. What is left (waiting for the loop to report
    the child) runs as a task.
    """
    loop: asyncio.AbstractEventLoop = reactor._loop
    child = _LoopChild(transport)
    transport._child = child
    # asyncio starts children with Popen; uvloop with libuv.
    argv, kwargs = plan.spawn_args(popen=reactor.name != "uvloop")
    # asyncio's child watcher reports to the *running* loop. Before ``run()``
    # (Twisted programs spawn, then run) there is none, or another one, so
    # ours stands in for the call; the watcher only keeps a reference to it.
    running = asyncio.events._get_running_loop()
    if running is not loop:
        asyncio.events._set_running_loop(loop)
    try:
        started = drive(loop, loop.subprocess_exec(lambda: child, *argv, **kwargs))
    finally:
        if running is not loop:
            asyncio.events._set_running_loop(running)
    if isinstance(started, asyncio.Future):
        started.add_done_callback(_check_started)
    reactor._tracked().add(transport)


def _check_started(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("Starting a child process failed", exc_info=task.exception())


class _LoopChild(asyncio.SubprocessProtocol):
    """What the loop tells about one child, passed on to its ``ProcessTransport``."""

    def __init__(self, transport: ProcessTransport) -> None:
        self._transport = transport
        self._loop_transport: asyncio.SubprocessTransport | None = None
        self._early_signals: list[int] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transport has the methods without the base class.
        transport = cast(asyncio.SubprocessTransport, transport)
        self._loop_transport = transport
        # Never raises: an exception here would make the loop kill the child.
        self._transport._start(transport.get_pid())
        signals, self._early_signals = self._early_signals, []
        for number in signals:
            try:
                transport.send_signal(number)
            except ProcessLookupError:
                pass  # it exited before the signal could be sent; nobody to tell

    def process_exited(self) -> None:
        loop_transport = self._loop_transport
        assert loop_transport is not None
        code = loop_transport.get_returncode()
        loop_transport.close()  # releases the loop's handle; the child is gone
        self._transport._child_exited(_status(code))

    def send_signal(self, number: int) -> None:
        if self._loop_transport is None:
            self._early_signals.append(number)
            return
        try:
            self._loop_transport.send_signal(number)
        except ProcessLookupError:
            raise ProcessExitedAlready() from None

    def reap(self) -> bool:
        """Nothing to do: the loop reaps, and reports through ``process_exited``."""
        return False


def _status(returncode: int | None) -> int | None:
    """A wait status rebuilt from a return code (negative: killed by that signal)."""
    if returncode is None:
        return None
    if returncode < 0:
        return -returncode
    return (returncode & 0xFF) << 8


class LoopPoller:
    """Readiness on an asyncio loop, in the selector reactor's terms (1 read, 2 write)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._events: dict[int, int] = {}

    def set(self, handler: Any, fd: int, events: int) -> None:
        loop = self._loop
        old = self._events.get(fd, 0)
        changed = old ^ events
        if changed & _READ:
            if events & _READ:
                loop.add_reader(fd, handler._on_readable)
            else:
                loop.remove_reader(fd)
        if changed & _WRITE:
            if events & _WRITE:
                loop.add_writer(fd, handler._on_writable)
            else:
                loop.remove_writer(fd)
        if events:
            self._events[fd] = events
        else:
            self._events.pop(fd, None)
