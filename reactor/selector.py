"""SelectorReactor: torsion's own event loop on the stdlib ``selectors`` module.

The whole loop is ``_run_loop``, read top to bottom: work out how long it may
sleep (the next timer, or not at all when thread calls wait), sleep in
``select``, hand each ready file straight to its handler's ``_on_readable`` /
``_on_writable``, then run the thread calls and the timers that are due.

Two facts shape the transports (``reactor/tcp.py``), measured against
Twisted and asyncio: a write is sent at once inside ``write()`` and the file
is registered for writability only when the kernel buffer is full (Twisted
registers and unregisters on every message: two ``epoll_ctl`` calls), and
reads of 256 KiB are cheap only once the allocator serves them from the heap
(``reactor._malloc``; before that, every read costs an mmap/munmap pair).
"""

from __future__ import annotations

import logging
import selectors
import time
from collections.abc import Callable
from typing import Any, Protocol

from reactor._malloc import raise_mmap_threshold
from reactor._waker import Waker
from reactor.base import ReactorBase
from reactor.timers import DelayedCall, TimerHeap

__all__ = ["SelectorReactor"]

log = logging.getLogger("reactor")

EVENT_READ = selectors.EVENT_READ
EVENT_WRITE = selectors.EVENT_WRITE


class Selectable(Protocol):
    """What the loop calls on a registered file: its transport or port."""

    def fileno(self) -> int: ...
    def _on_readable(self) -> None: ...
    def _on_writable(self) -> None: ...


class _WakerHandler:
    def __init__(self, waker: Waker) -> None:
        self._waker = waker

    def fileno(self) -> int:
        return self._waker.fileno()

    def _on_readable(self) -> None:
        self._waker.drain()

    def _on_writable(self) -> None:  # pragma: no cover - never registered for writing
        pass


class SelectorReactor(ReactorBase):
    """The pure-Python reactor: ``selectors`` (epoll on Linux) and a timer heap.

    Example::

        from reactor.selector import SelectorReactor
        r = SelectorReactor()
        r.callLater(0.1, r.stop)
        r.run(installSignalHandlers=False)
    """

    name = "select"

    def __init__(self) -> None:
        super().__init__()
        self._selector = selectors.DefaultSelector()
        self._timers = TimerHeap(self.seconds)
        self._waker = Waker()
        self._selector.register(self._waker.fileno(), EVENT_READ, _WakerHandler(self._waker))
        # Registered interest per fd, so (un)registering is one dict look-up.
        self._interest: dict[int, int] = {}
        # Everything that must be closed when the reactor shuts down.
        self._selectables: set[Any] = set()
        self._exiting = False
        from reactor.tcp import READ_SIZE

        raise_mmap_threshold(READ_SIZE)

    # -- time ------------------------------------------------------------------

    seconds = staticmethod(time.monotonic)

    def callLater(self, delay: float, callable: Callable[..., Any], /,
                  *args: Any, **kw: Any) -> DelayedCall:
        """Call ``callable(*args, **kw)`` in ``delay`` seconds (see DelayedCall)."""
        if delay < 0:
            raise ValueError(f"delay must not be negative: {delay!r}")
        return self._timers.schedule(time.monotonic() + delay, callable, args, kw)

    def getDelayedCalls(self) -> list[DelayedCall]:
        return self._timers.getDelayedCalls()

    # -- registering files -------------------------------------------------------

    def _set_interest(self, handler: Selectable, fd: int, events: int) -> None:
        """Make the selector watch ``fd`` for ``events`` (0 stops watching it)."""
        current = self._interest.get(fd, 0)
        if events == current:
            return
        if events == 0:
            del self._interest[fd]
            self._selector.unregister(fd)
        elif current == 0:
            self._interest[fd] = events
            self._selector.register(fd, events, handler)
        else:
            self._interest[fd] = events
            self._selector.modify(fd, events, handler)

    def _forget(self, fd: int) -> None:
        """Stop watching ``fd`` (which is about to be closed), whatever it was watched for."""
        if self._interest.pop(fd, 0):
            self._selector.unregister(fd)

    # -- the loop ----------------------------------------------------------------

    def _run_loop(self) -> None:
        self._exiting = False
        select = self._selector.select
        timers = self._timers
        thread_calls = self._thread_calls
        monotonic = time.monotonic
        while not self._exiting:
            if thread_calls:
                timeout: float | None = 0
            else:
                deadline = timers.next_deadline()
                if deadline is None:
                    timeout = None
                else:
                    timeout = deadline - monotonic()
                    if timeout < 0:
                        timeout = 0
            for key, mask in select(timeout):
                handler = key.data
                if mask & EVENT_READ:
                    handler._on_readable()
                if mask & EVENT_WRITE:
                    handler._on_writable()
            if thread_calls:
                self._run_thread_calls()
            if timers:
                for call in timers.pop_all_due(monotonic()):
                    try:
                        call.invoke()
                    except Exception:
                        log.exception("Unhandled error in delayed call %r", call)

    def _exit_loop(self) -> None:
        self._exiting = True
        self._wake()

    def _wake(self) -> None:
        self._waker.wake()

    def _tracked(self) -> Any:
        return self._selectables

    def _close_all_connections(self) -> None:
        for selectable in list(self._selectables):
            selectable._reactor_shutdown()

    def close(self) -> None:
        """Release the selector and the waker (the reactor cannot run again)."""
        self._selector.close()
        self._waker.close()

    # -- TCP --------------------------------------------------------------------

    def listenTCP(self, port: int, factory: Any, backlog: int = 50,
                  interface: str = "") -> Any:
        """Listen on a TCP port; see ``reactor.tcp.Port``."""
        from reactor.tcp import Port

        listening = Port(self, port, factory, backlog, interface)
        listening.startListening()
        return listening

    def connectTCP(self, host: str, port: int, factory: Any, timeout: float = 30,
                   bindAddress: tuple[str, int] | None = None) -> Any:
        """Connect to a TCP server; see ``reactor.tcp.Connector``."""
        from reactor._connect import Connector

        connector = Connector(self, host, port, factory, timeout, bindAddress)
        connector.connect()
        return connector

    def _connect_socket(self, sock: Any, address: Any) -> Any:
        """Start a non-blocking connect; a Deferred firing with the connected socket."""
        from reactor.tcp import connect_socket

        return connect_socket(self, sock, address)

    def _adopt_socket(self, sock: Any, protocol: Any, on_lost: Any = None,
                      on_transport: Any = None) -> Any:
        """Wrap a connected socket in a transport and start the protocol on it.

        ``on_transport`` receives the transport before the protocol starts (a
        Connector must know its transport inside ``connectionMade``).
        """
        from reactor.tcp import Connection

        transport = Connection(self, sock, protocol, on_lost)
        if on_transport is not None:
            on_transport(transport)
        transport._start()
        return transport
