"""Data-connection streams: ASCII newline conversion, throttling, chunked sending.

TYPE A (RFC 959 3.1.1.1) sends lines ending in CRLF whatever the host's
convention. This server's host is POSIX, where lines end in LF, so a
download in TYPE A turns every LF not already preceded by CR into CRLF
(:class:`ToNetworkNewlines`) and an upload turns every CRLF into LF
(:class:`FromNetworkNewlines`); a lone CR is kept. Both convert chunk by
chunk, carrying a CR at the end of a chunk over to the next one, so the
result does not depend on how the bytes were cut.

:class:`ChunkSender` writes chunks from a source function into a transport as a
push producer: the transport pauses it when its buffer is full and, with a
``limit``, it pauses itself (``callLater``) whenever it is ahead of
``limit`` bytes per second since the start. :class:`ThrottledUpload` holds
back an upload's writes in the same way, which, through the upload's
backlog bound, pauses reading from the data connection. Either way no more
than a chunk and the transport's buffer is in memory, throttled or not.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any

from deferred import Deferred, Failure, succeed
from reactor.error import ConnectionLost
from reactor.sendfile import CHUNK_SIZE, sendFile

from .filesystem import IUpload

__all__ = ["ChunkSender", "FromNetworkNewlines", "ThrottledUpload", "ToNetworkNewlines",
           "fileChunks", "lineChunks", "sendData", "wrapUpload"]


class ToNetworkNewlines:
    """LF to CRLF for an ASCII download (CRLF already there is kept as it is).

    Example:
        >>> convert = ToNetworkNewlines()
        >>> convert.feed(b"a\\nb\\r") + convert.feed(b"\\nc\\n")
        b'a\\r\\nb\\r\\nc\\r\\n'
    """

    def __init__(self) -> None:
        self._after_cr = False

    def feed(self, data: bytes) -> bytes:
        """The converted bytes of ``data`` (nothing is held back)."""
        if not data:
            return data
        head = b""
        if self._after_cr and data.startswith(b"\n"):
            head, data = b"\n", data[1:]  # the CR of this CRLF went out last time
        self._after_cr = data.endswith(b"\r")
        return head + data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


class FromNetworkNewlines:
    """CRLF to LF for an ASCII upload; a CR not followed by LF is kept.

    Example:
        >>> convert = FromNetworkNewlines()
        >>> convert.feed(b"a\\r\\nb\\r") + convert.feed(b"\\nc\\rd") + convert.flush()
        b'a\\nb\\nc\\rd'
    """

    def __init__(self) -> None:
        self._cr = False

    def feed(self, data: bytes) -> bytes:
        """The converted bytes of ``data``; a final CR is held until the next bytes."""
        if self._cr:
            data = b"\r" + data
            self._cr = False
        if data.endswith(b"\r"):
            self._cr = True
            data = data[:-1]
        return data.replace(b"\r\n", b"\n")

    def flush(self) -> bytes:
        """What is held at the end of the upload (a final lone CR)."""
        held, self._cr = self._cr, False
        return b"\r" if held else b""


class _Rate:
    """Where a transfer stands against ``limit`` bytes per second since its start."""

    def __init__(self, clock: Any, limit: int) -> None:
        self.clock = clock
        self.limit = limit
        self.start = clock.seconds()
        self.count = 0

    def add(self, amount: int) -> float:
        """Count ``amount`` bytes; the seconds to wait before the next ones (0: none)."""
        self.count += amount
        allowed_at: float = self.start + self.count / self.limit
        now: float = self.clock.seconds()
        return max(0.0, allowed_at - now)


class ChunkSender:
    """Writes the chunks ``source()`` returns into ``transport`` as a push producer.

    ``source`` returns the next bytes to send, or None at the end. With
    ``limit``, the sender pauses itself to keep at ``limit`` bytes per second.

    Args:
        transport: The data connection.
        source: The chunks; it may raise (the transfer then fails).
        clock: For the throttle's pauses (``seconds`` and ``callLater``).
        limit: Bytes per second, or None.
    """

    def __init__(self, transport: Any, source: Callable[[], bytes | None], clock: Any,
                 limit: int | None = None) -> None:
        self.transport = transport
        self.source = source
        self.clock = clock
        self.rate = None if not limit else _Rate(clock, limit)
        self.sent = 0
        self.paused = False
        self.done = False
        self._pumping = False
        self._wakeup: Any = None
        self.d: Deferred[int] = Deferred()

    def start(self) -> Deferred[int]:
        """Begin; the Deferred fires with the bytes sent, or fails if the connection is lost."""
        try:
            self.transport.registerProducer(self, True)
        except Exception:
            self.done = True
            self.d.errback(Failure())
            return self.d
        if not self.done:
            self._pump()
        return self.d

    def _pump(self) -> None:
        if self._pumping:
            return  # resumed from inside our own write: the loop below goes on
        self._pumping = True
        try:
            while not self.paused and not self.done and self._wakeup is None:
                try:
                    data = self.source()
                except Exception:
                    self._finish(Failure())
                    return
                if data is None:
                    self._finish(None)
                    return
                self.sent += len(data)
                self.transport.write(data)
                if self.rate is not None:
                    delay = self.rate.add(len(data))
                    if delay > 0:
                        self._wakeup = self.clock.callLater(delay, self._wake)
        finally:
            self._pumping = False

    def _wake(self) -> None:
        self._wakeup = None
        self._pump()

    def _finish(self, failure: Failure | None) -> None:
        self.done = True
        self.transport.unregisterProducer()
        if failure is None:
            self.d.callback(self.sent)
        else:
            self.d.errback(failure)

    def pauseProducing(self) -> None:
        """The transport's buffer is full."""
        self.paused = True

    def resumeProducing(self) -> None:
        """The transport's buffer drained."""
        self.paused = False
        if not self.done:
            self._pump()

    def stopProducing(self) -> None:
        """The connection is gone: the transfer failed."""
        if self.done:
            return
        self.done = True
        if self._wakeup is not None and self._wakeup.active():
            self._wakeup.cancel()
        self._wakeup = None
        self.d.errback(Failure(ConnectionLost(
            f"the connection was lost after {self.sent} bytes")))


def fileChunks(file: IO[bytes], offset: int, count: int,
               ascii: bool = False) -> Callable[[], bytes | None]:
    """A :class:`ChunkSender` source: ``count`` bytes of ``file`` from ``offset``.

    With ``ascii``, newlines are converted for the network.
    """
    fd = file.fileno()
    position = offset
    end = offset + count
    convert = ToNetworkNewlines() if ascii else None

    def next_chunk() -> bytes | None:
        nonlocal position
        if position >= end:
            return None
        data = os.pread(fd, min(CHUNK_SIZE, end - position), position)
        if not data:
            return None  # the file shrank meanwhile
        position += len(data)
        return convert.feed(data) if convert is not None else data

    return next_chunk


def lineChunks(lines: Iterable[str], size: int = 64 * 1024) -> Callable[[], bytes | None]:
    """A :class:`ChunkSender` source: ``lines`` ending in CRLF, about ``size`` bytes a chunk.

    Lines are made as the transport takes them, so a big listing is never
    one big string.
    """
    iterator: Iterator[str] = iter(lines)

    def next_chunk() -> bytes | None:
        parts: list[bytes] = []
        total = 0
        for line in iterator:
            part = (line + "\r\n").encode("utf-8", "surrogateescape")
            parts.append(part)
            total += len(part)
            if total >= size:
                break
        return b"".join(parts) if parts else None

    return next_chunk


def sendData(transport: Any, file: IO[bytes], offset: int, count: int, clock: Any,
             ascii: bool = False, limit: int | None = None) -> Deferred[int]:
    """Send a file's bytes: with ``sendFile`` (zero-copy) when binary and unthrottled."""
    if not ascii and not limit:
        return sendFile(transport, file, offset, count)
    return ChunkSender(transport, fileChunks(file, offset, count, ascii), clock,
                       limit).start()


class ThrottledUpload:
    """An :class:`IUpload` whose writes complete no faster than ``limit`` bytes per second.

    The upload's writer (:class:`~protocols.ftp.data.UploadSink`) waits for
    each write, and pauses the data connection while its backlog is full.
    """

    def __init__(self, upload: IUpload, clock: Any, limit: int) -> None:
        self.upload = upload
        self.clock = clock
        self.rate = _Rate(clock, limit)

    def write(self, data: bytes) -> Deferred[None]:
        """Write ``data``; fire once written and the rate allows more."""
        delay = self.rate.add(len(data))

        def wait(_: object) -> Deferred[None]:
            d: Deferred[None] = Deferred()
            if delay <= 0:
                d.callback(None)
                return d
            self.clock.callLater(delay, d.callback, None)
            return d

        return self.upload.write(data).addCallback(wait)

    def commit(self) -> Deferred[None]:
        """Commit the upload."""
        return self.upload.commit()

    def abort(self) -> Deferred[None]:
        """Abort the upload."""
        return self.upload.abort()


class AsciiUpload:
    """An :class:`IUpload` receiving network newlines and writing LF ones."""

    def __init__(self, upload: IUpload) -> None:
        self.upload = upload
        self.convert = FromNetworkNewlines()

    def write(self, data: bytes) -> Deferred[None]:
        """Convert and write ``data``."""
        converted = self.convert.feed(data)
        return self.upload.write(converted) if converted else succeed(None)

    def commit(self) -> Deferred[None]:
        """Write a held final CR, then commit."""
        tail = self.convert.flush()
        if not tail:
            return self.upload.commit()
        return self.upload.write(tail).addCallback(lambda _: self.upload.commit())

    def abort(self) -> Deferred[None]:
        """Abort the upload."""
        return self.upload.abort()


def wrapUpload(upload: IUpload, clock: Any, ascii: bool = False,
               limit: int | None = None) -> IUpload:
    """``upload`` with ASCII conversion and/or a throttle as asked."""
    if ascii:
        upload = AsciiUpload(upload)
    if limit:
        upload = ThrottledUpload(upload, clock, limit)
    return upload
