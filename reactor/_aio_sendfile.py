"""Sending files on the asyncio backend's TCP transport (see ``reactor.sendfile``).

A mixin of ``reactor._aio_tcp.Connection``, kept apart so that module stays
small. ``loop.sendfile`` sends zero-copy where the loop can (asyncio's own
socket transports); where it cannot (uvloop) ``_read_loop`` does, with the
same ordering guarantee: the loop's transport refuses writes while it
sends a file, so until it is done our writes, and further files, are held
here in order.

``_read_loop`` is mostly zero-copy too. While the loop's write buffer is
empty (uvloop's ``get_write_buffer_size`` counts its own buffer and libuv's
write queue) nothing of ours is waiting ahead of the socket, so it calls
``os.sendfile`` on the socket's descriptor directly. When the socket is full
(EAGAIN) it reads one small chunk (:data:`_NUDGE`) and writes it through
the transport: the loop now holds bytes, so the direct path stops, and
with the write-buffer limits at 0/0 for the transfer the loop pauses us
(``pause_writing``) and resumes us (``resume_writing``) exactly when its
buffer is empty again, i.e. when the socket took the chunk and has room.
Never under TLS. Memory stays bounded by one chunk; cancellation and a lost
connection end it at its next step, before any further write to the socket.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
from typing import TYPE_CHECKING, Any

from deferred import Deferred, Failure
from reactor._malloc import raise_mmap_threshold
from reactor.error import ConnectionLost
from reactor.tcp import HIGH_WATER, LOW_WATER

if TYPE_CHECKING:
    from reactor.aio import AsyncioReactor

__all__ = ["FileSending"]

#: Bytes asked of one ``os.sendfile`` call of the read loop's direct path; the
#: kernel sends what the socket buffer takes, so this bounds one call's work.
_SENDFILE_STEP = 4 * 1024 * 1024

#: Bytes read and written through the loop's transport when the socket is
#: full: the loop then tells us when it drained. Small, because these bytes
#: are copied; the socket's next turn of room goes to ``os.sendfile``.
_NUDGE = 16 * 1024

#: Bytes sent in one go before letting the loop run other callbacks.
_TURN = 16 * 1024 * 1024

#: ``os.sendfile`` errors that mean "not from this file" (a file system that
#: cannot), not a broken connection: the read loop reads the file instead.
_NO_SENDFILE = frozenset({errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP,
                          errno.EOVERFLOW, errno.ESPIPE})


def _lost_reason(exc: OSError) -> ConnectionLost:
    if exc.errno:
        return ConnectionLost(f"{exc.errno}: {exc.strerror}")
    return ConnectionLost(str(exc) or type(exc).__name__)


class _HeldFile:
    """A file to send, and the Deferred that reports it."""

    __slots__ = ("count", "d", "file", "offset")

    def __init__(self, file: Any, offset: int, count: int) -> None:
        self.file = file
        self.offset = offset
        self.count = count
        self.d: Deferred[int] = Deferred()


class FileSending:
    """The sendfile half of the asyncio TCP ``Connection``."""

    # Provided by Connection.
    reactor: AsyncioReactor
    protocol: Any
    producer: Any
    disconnecting: bool
    _transport: Any
    _lost: bool
    _reason: Failure | None
    _streaming: bool
    _producer_paused: bool
    _writing_paused: bool
    _reading_paused: bool
    _write_closing: bool
    _eof_pending: bool

    #: The read loop set the write-buffer limits to 0/0 (restored when it ends).
    _file_limits = False

    def _init_file_sending(self) -> None:
        # A loop.sendfile (or read loop) in progress, and what was written
        # or sent meanwhile, in order, to go out after it.
        self._file_task: asyncio.Task[int] | None = None
        self._file_held: list[bytes | _HeldFile] = []
        self._held_bytes = 0
        self._drain_waiter: asyncio.Future[None] | None = None

    if TYPE_CHECKING:
        def _write_closed(self) -> bool: ...
        def _unbind_write(self) -> None: ...
        def _send_eof(self) -> None: ...
        def _schedule_pull(self) -> None: ...

    def _can_send_file(self) -> bool:
        """Whether files go out zero-copy here: asyncio's own socket transports
        can (``loop.sendfile``); uvloop's cannot, nor can TLS."""
        from reactor.tls import TLSConnection

        if self._lost or self._write_closed() or isinstance(self.protocol, TLSConnection):
            return False
        return self._loop_sends_files()

    def _loop_sends_files(self) -> bool:
        # asyncio's own test (BaseEventLoop.sendfile reads this attribute);
        # uvloop's transports lack it and its loop.sendfile is not implemented.
        from asyncio import constants

        native = getattr(constants, "_SendfileMode", None)
        return (native is not None and hasattr(os, "sendfile")
                and getattr(self._transport, "_sendfile_compatible", None)
                is native.TRY_NATIVE)

    def _send_file(self, file: Any, offset: int, count: int) -> Deferred[int]:
        """Send ``count`` bytes of ``file`` from ``offset``: ``loop.sendfile``, or
        where the loop cannot (uvloop) a flow-controlled read loop.

        The loop's transport refuses writes while it sends a file, so until
        it is done our writes (and further files) are held here, in order.
        """
        job = _HeldFile(file, offset, count)
        if self._lost or self._write_closed() or self._transport is None:
            job.d.errback(Failure(ConnectionLost("the connection is closing")))
        elif self._file_task is not None:
            self._file_held.append(job)
        else:
            self._start_file(job)
        return job.d

    def _start_file(self, job: _HeldFile) -> None:
        if not self._write_closed():
            self.write = self._hold_write
        loop = self.reactor._loop
        if self._loop_sends_files() and not isinstance(job.file, int):
            coro = loop.sendfile(self._transport, job.file, job.offset, job.count,
                                 fallback=False)
        else:
            coro = self._read_loop(job)
        task = loop.create_task(coro)
        self._file_task = task
        task.add_done_callback(lambda task: self._file_done(task, job))

    async def _read_loop(self, job: _HeldFile) -> int:
        """Send a file where ``loop.sendfile`` cannot (uvloop): ``os.sendfile``
        straight to the socket while the loop's buffer is empty, a read chunk
        through the transport when the socket is full (see ``_direct_fd``)."""
        from reactor.sendfile import CHUNK_SIZE

        # Several chunks in flight at once: keep their memory in the heap, or
        # glibc trims and refaults it for every chunk (page faults dominated).
        raise_mmap_threshold(4 * CHUNK_SIZE)
        fd = job.file if isinstance(job.file, int) else job.file.fileno()
        transport = self._transport
        sock_fd = -1 if self._lost or transport.is_closing() else self._direct_fd()
        if sock_fd >= 0:
            # Limits of 0/0: any byte left in the loop's buffer pauses us and
            # its full drain resumes us, the moment the socket is ours again.
            self._file_limits = True
            transport.set_write_buffer_limits(0, 0)
        offset, remaining, sent = job.offset, job.count, 0
        turn = 0  # bytes sent since we last let the loop run
        while remaining > 0:
            if self._lost or transport.is_closing():
                raise ConnectionLost(f"the connection was lost after {sent} bytes of the file")
            if self._writing_paused:
                waiter = self._drain_waiter = self.reactor._loop.create_future()
                try:
                    await waiter
                finally:
                    self._drain_waiter = None
                turn = 0
                continue
            if turn >= _TURN:
                # The socket keeps taking bytes: let other connections have a go.
                await asyncio.sleep(0)
                turn = 0
                continue
            size = CHUNK_SIZE
            if sock_fd >= 0 and not transport.get_write_buffer_size():
                # Nothing of ours queued in the loop: the socket is next in
                # line, so bytes written to it directly keep their order.
                try:
                    n = os.sendfile(sock_fd, fd, offset, min(remaining, _SENDFILE_STEP))
                except (BlockingIOError, InterruptedError):
                    n = -1
                except OSError as e:
                    if e.errno not in _NO_SENDFILE:
                        raise
                    sock_fd = -1  # this file cannot be sendfile'd from: read it
                    continue
                if n == 0:
                    break  # the file is shorter than asked
                if n > 0:
                    offset += n
                    remaining -= n
                    sent += n
                    turn += n
                    continue
                # The socket is full. One small chunk through the loop's
                # transport: the loop waits for the socket to take it, and its
                # drain (resume_writing) says the socket has room again.
                size = _NUDGE
            data = os.pread(fd, min(size, remaining), offset)
            if not data:
                break  # the file is shorter than asked
            transport.write(data)
            offset += len(data)
            remaining -= len(data)
            sent += len(data)
            turn += len(data)
        return sent

    def _direct_fd(self) -> int:
        """The socket's descriptor, if ``os.sendfile`` may write to it directly.

        Only a plain TCP connection (never under TLS, whose bytes must pass
        the cipher) of a loop whose ``get_write_buffer_size`` counts every
        byte it holds: uvloop counts its own buffer and libuv's write queue,
        asyncio its buffer. Writing to the socket only while that is 0 keeps
        the stream in order. -1 when not.
        """
        from reactor.tls import TLSConnection

        if not hasattr(os, "sendfile") or isinstance(self.protocol, TLSConnection):
            return -1
        sock = self._transport.get_extra_info("socket")
        if sock is None or getattr(sock, "type", None) != socket.SOCK_STREAM:
            return -1
        try:
            return int(sock.fileno())
        except (OSError, ValueError):
            return -1

    def _restore_write_limits(self) -> None:
        """After a file sent by ``_read_loop``: the limits the connection's state asks for."""
        if not self._file_limits:
            return
        self._file_limits = False
        transport = self._transport
        if self._lost or transport is None or transport.is_closing():
            return
        if (self.producer is not None and not self._streaming) or self._eof_pending:
            transport.set_write_buffer_limits(0, 0)  # see Connection._start_pulling
        else:
            transport.set_write_buffer_limits(HIGH_WATER, LOW_WATER)

    def _wake_read_loop(self) -> None:
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _hold_write(self, data: bytes) -> None:
        """``write`` while a file is being sent: keep the data for after it."""
        if isinstance(data, str):
            raise TypeError("Data must be bytes, not str")
        if not data:
            return
        self._file_held.append(bytes(data))
        self._held_bytes += len(data)
        producer = self.producer
        if (self._held_bytes > HIGH_WATER and producer is not None and self._streaming
                and not self._producer_paused):
            self._producer_paused = True
            producer.pauseProducing()

    def _cancel_file(self) -> None:
        """Stop a sendfile before the transport closes the socket under it."""
        if self._file_task is not None:
            self._file_task.cancel()

    def _file_done(self, task: asyncio.Task[int], job: _HeldFile) -> None:
        self._file_task = None
        self._restore_write_limits()
        transport = self._transport
        if task.cancelled():
            exc: BaseException | None = asyncio.CancelledError()
        else:
            exc = task.exception()
        if exc is not None:
            reason = self._reason
            if reason is None:
                reason = Failure(_lost_reason(exc) if isinstance(exc, OSError)
                                 else ConnectionLost(str(exc) or type(exc).__name__))
            held, self._file_held = self._file_held, []
            self._held_bytes = 0
            if not self._lost:
                self._reason = reason
                self.disconnecting = True
                self._unbind_write()
                transport.abort()
            job.d.errback(reason)
            for item in held:
                if isinstance(item, _HeldFile):
                    item.d.errback(reason)
            return
        if self._reading_paused and not self._lost:
            transport.pause_reading()  # the loop resumed it; we were asked not to read
        self._release_held()
        job.d.callback(task.result())

    def _release_held(self) -> None:
        """Send what was held during a sendfile; start the next file, if any."""
        transport = self._transport
        held, self._file_held = self._file_held, []
        self._held_bytes = 0
        if self._lost:
            reason = self._reason or Failure(ConnectionLost("the connection was lost"))
            for item in held:
                if isinstance(item, _HeldFile):
                    item.d.errback(reason)
            return
        if "write" in self.__dict__:
            self.write = transport.write
        for i, item in enumerate(held):
            if isinstance(item, _HeldFile):
                self._file_held = held[i + 1:]
                self._held_bytes = sum(len(x) for x in self._file_held if isinstance(x, bytes))
                self._start_file(item)
                return
            transport.write(item)
        producer = self.producer
        if producer is None:
            if self.disconnecting:
                transport.close()
            elif self._write_closing:
                self._send_eof()
        elif not self._streaming:
            self._schedule_pull()
        elif self._producer_paused and not self._writing_paused:
            self._producer_paused = False
            producer.resumeProducing()

