"""Sending files on the asyncio backend's TCP transport (see ``reactor.sendfile``).

A mixin of ``reactor._aio_tcp.Connection``, kept apart so that module stays
small. ``loop.sendfile`` sends zero-copy where the loop can (asyncio's own
socket transports); where it cannot (uvloop) a read loop does, with the
same ordering guarantee: the loop's transport refuses writes while it
sends a file, so until it is done our writes, and further files, are held
here in order.
"""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING, Any

from deferred import Deferred, Failure
from reactor._malloc import raise_mmap_threshold
from reactor.error import ConnectionLost
from reactor.tcp import HIGH_WATER

if TYPE_CHECKING:
    from reactor.aio import AsyncioReactor

__all__ = ["FileSending"]


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
        """Send a file by reading it: a chunk at a time, waiting for the buffer
        to drain below its low-water mark whenever it passes the high one."""
        from reactor.sendfile import CHUNK_SIZE

        # Several chunks in flight at once: keep their memory in the heap, or
        # glibc trims and refaults it for every chunk (page faults dominated).
        raise_mmap_threshold(4 * CHUNK_SIZE)
        fd = job.file if isinstance(job.file, int) else job.file.fileno()
        transport = self._transport
        offset, remaining, sent = job.offset, job.count, 0
        while remaining > 0:
            if self._lost or transport.is_closing():
                raise ConnectionLost(f"the connection was lost after {sent} bytes of the file")
            if self._writing_paused:
                waiter = self._drain_waiter = self.reactor._loop.create_future()
                try:
                    await waiter
                finally:
                    self._drain_waiter = None
                continue
            data = os.pread(fd, min(CHUNK_SIZE, remaining), offset)
            if not data:
                break  # the file is shorter than asked
            transport.write(data)
            offset += len(data)
            remaining -= len(data)
            sent += len(data)
        return sent

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

