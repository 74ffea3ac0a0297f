"""The readiness loop under the load engine: epoll directly where there is one.

``selectors`` costs a key lookup and a tuple per event; on Linux the engine
asks epoll itself and calls the handler registered for the file descriptor.
Elsewhere :class:`SelectorPoller` wraps ``selectors.DefaultSelector``. Both
take ``READ``/``WRITE`` to register and hand handlers a mask to test with
``READABLE``/``WRITABLE`` (which, with epoll, include errors and hang-ups, so
a failed socket is always looked at).
"""

from __future__ import annotations

import select
import selectors
from collections.abc import Callable

__all__ = ["READ", "READABLE", "WRITABLE", "WRITE", "Poller"]

Handler = Callable[[int], None]


class SelectorPoller:
    """``selectors.DefaultSelector`` behind the poller interface."""

    READ = selectors.EVENT_READ
    WRITE = selectors.EVENT_WRITE
    READABLE = selectors.EVENT_READ
    WRITABLE = selectors.EVENT_WRITE

    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()

    def register(self, fd: int, events: int, handler: Handler) -> None:
        """Watch ``fd`` for ``events``; call ``handler(mask)`` when ready."""
        self._selector.register(fd, events, handler)

    def modify(self, fd: int, events: int, handler: Handler) -> None:
        """Change what ``fd`` is watched for, and its handler."""
        self._selector.modify(fd, events, handler)

    def unregister(self, fd: int) -> None:
        """Stop watching ``fd`` (no error if it was not watched)."""
        try:
            self._selector.unregister(fd)
        except (KeyError, ValueError):
            pass

    def dispatch(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds; call the handler of every ready descriptor."""
        for key, mask in self._selector.select(timeout):
            key.data(mask)

    def close(self) -> None:
        """Release the selector."""
        self._selector.close()


if hasattr(select, "epoll"):
    _ERRORS = select.EPOLLERR | select.EPOLLHUP

    class EpollPoller:
        """epoll, with a handler per file descriptor."""

        READ = select.EPOLLIN
        WRITE = select.EPOLLOUT
        READABLE = select.EPOLLIN | _ERRORS
        WRITABLE = select.EPOLLOUT | _ERRORS

        def __init__(self) -> None:
            self._epoll = select.epoll()
            self._handlers: dict[int, Handler] = {}

        def register(self, fd: int, events: int, handler: Handler) -> None:
            """Watch ``fd`` for ``events``; call ``handler(mask)`` when ready."""
            self._epoll.register(fd, events)
            self._handlers[fd] = handler

        def modify(self, fd: int, events: int, handler: Handler) -> None:
            """Change what ``fd`` is watched for, and its handler."""
            self._epoll.modify(fd, events)
            self._handlers[fd] = handler

        def unregister(self, fd: int) -> None:
            """Stop watching ``fd`` (no error if it was not watched)."""
            if self._handlers.pop(fd, None) is not None:
                try:
                    self._epoll.unregister(fd)
                except OSError:
                    pass

        def dispatch(self, timeout: float) -> None:
            """Wait up to ``timeout`` seconds; call the handler of every ready descriptor."""
            get = self._handlers.get
            for fd, mask in self._epoll.poll(timeout):
                handler = get(fd)
                if handler is not None:  # unregistered by an earlier handler of this batch
                    handler(mask)

        def close(self) -> None:
            """Release the epoll descriptor."""
            self._handlers.clear()
            self._epoll.close()

    Poller: type[EpollPoller] | type[SelectorPoller] = EpollPoller
else:  # pragma: no cover - not Linux
    Poller = SelectorPoller

READ = Poller.READ
WRITE = Poller.WRITE
READABLE = Poller.READABLE
WRITABLE = Poller.WRITABLE
