"""Our ends of a child's pipes, and the selector reactor's child watchers.

This module owns what ``reactor.process`` builds a ``ProcessTransport``
from: the pipes (``_ReadPipe``, ``_WritePipe``, ``_PtyPipe``: non-blocking
reads, buffered and flow-controlled writes, closing), shared by every
backend, and the selector backend's ways of noticing a child's exit and
reaping it (``_PidfdChild``; without pidfds, ``_PolledChild``: ``waitpid``
polling, prompted by SIGCHLD). It is separate only to keep
``reactor.process`` (spawning, the trampoline, the transport) to a
readable size; nothing here is public.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from collections import deque
from typing import TYPE_CHECKING, Any, Literal

from reactor.error import ProcessExitedAlready
from reactor.tcp import HIGH_WATER, LOW_WATER, READ_SIZE

if TYPE_CHECKING:
    from reactor.process import ProcessTransport

log = logging.getLogger("reactor")

_READ = 1
_WRITE = 2
#: The most buffers handed to one writev (well under every IOV_MAX).
_MAX_IOV = 512


# -- pipes -----------------------------------------------------------------------------


class _Poller:
    """Readiness for the selector reactor (``reactor._set_interest``).

    ``reactor._aio_process.LoopPoller`` is the same for a loop.
    """

    def __init__(self, reactor: Any) -> None:
        self._reactor = reactor

    def set(self, handler: Any, fd: int, events: int) -> None:
        self._reactor._set_interest(handler, fd, events)


class _Pipe:
    """Our end of one pipe to the child: the common part of reading and writing ends."""

    def __init__(self, transport: ProcessTransport, poller: Any, fd: int,
                 child_fd: int) -> None:
        self.transport = transport
        self.poller = poller
        self.fd = fd
        self.child_fd = child_fd
        self.closing = False
        self.closed = False
        self._interest = 0

    def fileno(self) -> int:
        return self.fd

    def _set_interest(self, events: int) -> None:
        if events != self._interest and not self.closed:
            self._interest = events
            self.poller.set(self, self.fd, events)

    def start(self) -> None:
        self._update()

    def _update(self) -> None:
        raise NotImplementedError

    def _on_readable(self) -> None:
        raise NotImplementedError

    def _on_writable(self) -> None:
        pass

    def write(self, data: bytes) -> None:
        raise ValueError(f"child fd {self.child_fd} is a pipe the child writes to")

    def pause(self) -> None:
        pass

    def resume(self) -> None:
        pass

    def loseConnection(self) -> None:
        """Twisted's name for ``lose``."""
        self.lose()

    def lose(self) -> None:
        """Close soon (next loop turn), as Twisted's ``loseConnection``."""
        if not self.closing and not self.closed:
            self.closing = True
            self._set_interest(0)
            self.transport.reactor.callLater(0, self.close_now)

    def close_now(self) -> None:
        """Close our end and tell the transport, exactly once."""
        if self.closed:
            return
        self.close_quietly()
        self.transport._pipe_lost(self)

    def close_quietly(self) -> None:
        if not self.closed:
            self._set_interest(0)
            self.closed = True
            os.close(self.fd)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} child fd {self.child_fd} fd={self.fd}>"


class _ReadPipe(_Pipe):
    """A pipe the child writes (its stdout, stderr, or any "r" descriptor)."""

    def _update(self) -> None:
        reading = not (self.transport._paused or self.closing or not self.transport._started)
        self._set_interest(_READ if reading else 0)

    def pause(self) -> None:
        self._update()

    def resume(self) -> None:
        self._update()

    def _on_readable(self) -> None:
        _read(self)


def _read(pipe: _Pipe) -> None:
    """Read what the child wrote to ``pipe`` and hand it to the protocol."""
    try:
        data = os.read(pipe.fd, READ_SIZE)
    except (BlockingIOError, InterruptedError):
        return
    except OSError:
        data = b""  # EIO and friends: the other side is gone
    if not data:
        pipe.close_now()
        return
    try:
        pipe.transport.proto.childDataReceived(pipe.child_fd, data)
    except Exception:
        # As in Twisted: the error is logged and closes this pipe only.
        log.exception("Unhandled error in childDataReceived of %r; closing child fd %d",
                      pipe.transport.proto, pipe.child_fd)
        pipe.close_now()


class _WritePipe(_Pipe):
    """A pipe the child reads (its stdin, or any "w" descriptor): buffered, flow-controlled.

    While open it is also watched for *readability*: a write-only pipe end
    never has data, so readable means the child's end was closed (epoll and
    libuv report that as an error on the descriptor). That is how we notice a
    child that exits without reading its stdin, without writing to it first.
    """

    def __init__(self, transport: ProcessTransport, poller: Any, fd: int,
                 child_fd: int) -> None:
        super().__init__(transport, poller, fd, child_fd)
        self._queue: deque[bytes | memoryview] = deque()
        self._queued = 0
        self.producer: Any = None
        self._streaming = False
        self._producer_paused = False

    def _read_interest(self) -> int:
        return _READ

    def _update(self) -> None:
        events = self._read_interest() if self.transport._started else 0
        if self._queue or (self.producer is not None and (
                not self._streaming and self.transport._started)) or (
                self.closing and self.producer is None):
            events |= _WRITE
        self._set_interest(events)

    def _on_readable(self) -> None:
        self.close_now()

    def write(self, data: bytes) -> None:
        if self.closing or self.closed:
            return
        if type(data) is not bytes:
            if isinstance(data, str):
                raise TypeError("Data must be bytes, not str")
            data = bytes(data)
        if not data:
            return
        if not self._queue:
            try:
                sent = os.write(self.fd, data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                self._broken()
                return
            if sent == len(data):
                return
            data = memoryview(data)[sent:]  # type: ignore[assignment]
        self._queue.append(data)
        self._queued += len(data)
        if self._queued > HIGH_WATER and self._streaming and not self._producer_paused:
            self._producer_paused = True
            self.producer.pauseProducing()
        self._update()

    def _broken(self) -> None:
        """The child closed its end while we were writing (EPIPE): close next turn."""
        self._queue.clear()
        self._queued = 0
        self.lose()

    def _on_writable(self) -> None:
        if self.closed:
            return
        queue = self._queue
        if queue:
            try:
                if len(queue) == 1:
                    sent = os.write(self.fd, queue[0])
                else:
                    sent = os.writev(self.fd, [queue[i] for i in range(min(len(queue),
                                                                           _MAX_IOV))])
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self._broken()
                return
            self._queued -= sent
            while sent:
                head = queue[0]
                if sent >= len(head):
                    sent -= len(head)
                    queue.popleft()
                else:
                    queue[0] = memoryview(head)[sent:]
                    sent = 0
            if self._producer_paused and self._queued <= LOW_WATER:
                self._producer_paused = False
                self.producer.resumeProducing()
            if queue:
                return
        if self.producer is not None and not self._streaming:
            self.producer.resumeProducing()  # a pull producer: ask for more
            return
        if self.closing and self.producer is None:
            self.close_now()
            return
        self._update()

    def lose(self) -> None:
        if self.closing or self.closed:
            return
        self.closing = True
        self._update()  # writable at once when empty: closes on the next turn

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        if self.producer is not None:
            raise RuntimeError(f"Cannot register producer {producer!r}, because producer "
                               f"{self.producer!r} was never unregistered.")
        if self.closed:
            producer.stopProducing()
            return
        self.producer = producer
        self._streaming = bool(streaming)
        self._producer_paused = False
        if streaming and self._queued > HIGH_WATER:
            self._producer_paused = True
            producer.pauseProducing()
        self._update()

    def unregisterProducer(self) -> None:
        self.producer = None
        self._update()

    def close_quietly(self) -> None:
        if self.closed:
            return
        super().close_quietly()
        self._queue.clear()
        self._queued = 0
        producer, self.producer = self.producer, None
        if producer is not None:
            try:
                producer.stopProducing()
            except Exception:
                log.exception("Error in stopProducing of %r", producer)


class _PtyPipe(_WritePipe):
    """The master side of the child's pseudo-terminal: we read and write the one descriptor.

    Output is delivered as ``childDataReceived(1, ...)``; Linux reports EIO
    once the child's side is closed, which ends it. As in Twisted, closing
    it calls no ``childConnectionLost``.
    """

    def _read_interest(self) -> int:
        return 0 if self.transport._paused else _READ

    def pause(self) -> None:
        self._update()

    def resume(self) -> None:
        self._update()

    def _on_readable(self) -> None:
        _read(self)


# -- the selector backend's child watchers: a pidfd, or polling, to reap ----------


class _PidfdChild:
    """Waits for one child through its pidfd, which turns readable when the child exits."""

    def __init__(self, reactor: Any, transport: ProcessTransport, popen: subprocess.Popen[bytes],
                 pidfd: int) -> None:
        self._reactor = reactor
        self._transport = transport
        self._popen = popen
        self._fd = pidfd

    def fileno(self) -> int:
        return self._fd

    def watch(self) -> None:
        self._reactor._set_interest(self, self._fd, _READ)

    def _on_readable(self) -> None:
        self.reap()

    def _on_writable(self) -> None:  # pragma: no cover - never watched for writing
        pass

    def reap(self) -> bool:
        """Collect the child's status if it has exited; True if it had."""
        status = _wait(self._popen)
        if status is False:
            return False
        self._reactor._forget(self._fd)
        os.close(self._fd)
        self._fd = -1
        self._transport._child_exited(status)
        return True

    def send_signal(self, number: int) -> None:
        try:
            signal.pidfd_send_signal(self._fd, number)
        except ProcessLookupError:
            raise ProcessExitedAlready() from None


def _wait(popen: subprocess.Popen[bytes]) -> int | Literal[False] | None:
    """``waitpid(WNOHANG)``: the wait status, False if still running, None if lost.

    The status is lost when someone else reaped our child (a
    ``waitpid(-1)`` elsewhere, or SIGCHLD set to SIG_IGN).
    """
    try:
        pid, status = os.waitpid(popen.pid, os.WNOHANG)
    except ChildProcessError:
        log.warning("Child process %d was reaped by someone else; its exit status is lost",
                    popen.pid)
        popen.returncode = -1
        return None
    if pid == 0:
        return False
    # Keeps Popen from warning, or waiting, about a child it thinks still runs.
    popen.returncode = os.waitstatus_to_exitcode(status)
    return status


class _PolledChild:
    """Without pidfds: ``waitpid(pid, WNOHANG)`` on a timer, and on every SIGCHLD.

    The timer backs off from 5 ms to 1 s. The SIGCHLD handler makes exits
    prompt by polling every such child at once; it is removed when the last
    one has exited. It is installed only from the main thread, over the
    default disposition, and not once uvloop is imported: libuv sets its own
    SIGCHLD handler from C, which ``signal.getsignal`` cannot see.
    """

    _live: set[_PolledChild] = set()
    _handler_installed = False
    _lock = threading.Lock()

    def __init__(self, reactor: Any, transport: ProcessTransport,
                 popen: subprocess.Popen[bytes]) -> None:
        self._reactor = reactor
        self._transport = transport
        self._popen = popen
        self._delay = 0.005
        self._timer: Any = None

    def watch(self) -> None:
        with self._lock:
            _PolledChild._live.add(self)
            if not _PolledChild._handler_installed:
                _PolledChild._install_handler()
        self.poll()

    def poll(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        if self._transport._exited:
            return
        status = _wait(self._popen)
        if status is False:
            self._timer = self._reactor.callLater(self._delay, self.poll)
            self._delay = min(self._delay * 2, 1.0)
            return
        with self._lock:
            _PolledChild._live.discard(self)
            if not _PolledChild._live and _PolledChild._handler_installed:
                _PolledChild._restore_handler()
        self._transport._child_exited(status)

    def reap(self) -> bool:
        self.poll()
        return self._transport._exited

    def send_signal(self, number: int) -> None:
        # Safe by pid: until we reap it, the child's pid cannot be reused.
        try:
            os.kill(self._popen.pid, number)
        except ProcessLookupError:
            raise ProcessExitedAlready() from None

    @classmethod
    def _install_handler(cls) -> None:
        if (threading.current_thread() is not threading.main_thread()
                or "uvloop" in sys.modules):
            return
        current = signal.getsignal(signal.SIGCHLD)
        if current == cls._on_sigchld:
            cls._handler_installed = True
            return
        if current != signal.SIG_DFL:
            return
        signal.signal(signal.SIGCHLD, cls._on_sigchld)
        cls._handler_installed = True

    @classmethod
    def _restore_handler(cls) -> None:
        cls._handler_installed = False
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGCHLD) == cls._on_sigchld):
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)

    @classmethod
    def _on_sigchld(cls, signum: int, frame: Any) -> None:
        # Runs between bytecodes of the main thread: hand the work to each
        # child's reactor (callFromThread is safe here, and wakes it).
        for child in list(cls._live):
            child._reactor.callFromThread(child.poll)
