"""Sending a file over a transport, zero-copy where the transport allows it.

``sendFile(transport, file, offset, count)`` sends ``count`` bytes of an open
binary file, starting at ``offset``, and returns a Deferred firing with the
number of bytes sent. Two ways, chosen by :func:`canSendFile`:

- ``os.sendfile`` (the kernel copies from the page cache to the socket; no
  byte passes through Python) on plain TCP connections: the selector
  reactor's ``reactor.tcp.Connection`` queues the transfer in its write
  queue; on an asyncio loop ``loop.sendfile(..., fallback=False)`` does it.
- on uvloop, whose ``loop.sendfile`` is not implemented, mostly the same:
  the connection calls ``os.sendfile`` on its socket itself while the
  loop's write buffer is empty, and when the socket is full passes one
  small read chunk through the loop's transport, whose drain says when to
  go on (see ``reactor._aio_sendfile``). ``canSendFile`` still says False
  there, as the loop itself cannot.
- otherwise (TLS; UNIX sockets; files that are not regular files) a read
  loop: chunks of :data:`CHUNK_SIZE` read with ``os.pread`` and written by
  a push producer registered on the transport, so it reads only as fast as
  the peer takes the bytes and never holds more than a chunk plus the
  transport's buffer.

Either way the transfer keeps its place among writes: data written before
the call goes out first, data written after it (even while it runs) goes
out after it. Losing the connection fails the Deferred (``ConnectionLost``,
``ConnectionDone`` or ``ConnectionAborted``). The file's position is left
at ``offset`` plus the bytes sent, as asyncio's ``loop.sendfile`` leaves it;
the caller keeps the file open until the Deferred fires, and closes it.

Example::

    from reactor.sendfile import sendFile

    class Serve(Protocol):
        def connectionMade(self):
            f = open("big.iso", "rb")
            d = sendFile(self.transport, f, 0, os.fstat(f.fileno()).st_size)
            d.addBoth(lambda result: (f.close(), self.transport.loseConnection()))
"""

from __future__ import annotations

import logging
import os
import stat
from typing import Any

from deferred import Deferred, Failure
from reactor._malloc import raise_mmap_threshold
from reactor.error import ConnectionLost

__all__ = ["CHUNK_SIZE", "canSendFile", "sendFile"]

log = logging.getLogger("reactor")

#: Bytes read per chunk by the read loop. 256 KiB: the selector reactor's
#: read size, so a chunk is one system call each way without a large buffer.
CHUNK_SIZE = 256 * 1024


def canSendFile(transport: Any) -> bool:
    """Whether ``transport``'s own machinery sends files zero-copy.

    True for plain TCP connections of the selector reactor and of the
    asyncio backend (``loop.sendfile``); False for TLS, UNIX sockets and
    anything else, where :func:`sendFile` uses its read loop. False on uvloop
    too, whose loop cannot; :func:`sendFile` there still calls
    ``os.sendfile`` itself for nearly every byte (see the module docstring).
    """
    probe = getattr(transport, "_can_send_file", None)
    return bool(probe is not None and probe())


def _fileno(file: Any) -> int:
    return file if isinstance(file, int) else int(file.fileno())


def sendFile(transport: Any, file: Any, offset: int = 0,
             count: int | None = None) -> Deferred[int]:
    """Send ``count`` bytes of ``file`` from ``offset`` over ``transport``.

    Args:
        transport: a connected transport (``protocol.transport``).
        file: an open binary file (anything with ``fileno()``) or a descriptor.
        offset: where in the file to start.
        count: how many bytes; None sends to the end of the file.

    Returns:
        A Deferred firing with the number of bytes sent: ``count``, or fewer
        if the file ended first. It fails if the connection is lost first,
        or if reading the file fails (the connection is then left open: the
        caller decides, e.g. an HTTP server cuts the response).
    """
    d: Deferred[int]
    try:
        fd = _fileno(file)
        info = os.fstat(fd)
    except (OSError, ValueError, AttributeError) as e:
        d = Deferred()
        d.errback(Failure(e))
        return d
    if offset < 0 or (count is not None and count < 0):
        d = Deferred()
        d.errback(Failure(ValueError(f"negative offset or count: {offset}, {count}")))
        return d
    if count is None:
        count = max(0, info.st_size - offset)
    if getattr(transport, "disconnecting", False) or getattr(transport, "disconnected", False):
        d = Deferred()
        d.errback(Failure(ConnectionLost("the connection is closing")))
        return d
    if count == 0:
        d = Deferred()
        d.callback(0)
        return d
    if stat.S_ISREG(info.st_mode) and hasattr(transport, "_send_file") and (
            canSendFile(transport) or hasattr(transport, "_read_loop")):
        # The transport keeps the file in its own write queue: zero-copy, or
        # (asyncio-family transports on uvloop) its own read loop.
        d = transport._send_file(file, offset, count)
    else:
        d = _ReadLoop(transport, fd, offset, count).start()

    def keep_position(sent: int) -> int:
        try:
            os.lseek(fd, offset + sent, os.SEEK_SET)
        except OSError:
            pass  # closed by the caller meanwhile, or not seekable: nothing to keep
        return sent

    return d.addCallback(keep_position)


_SHADOWED = ("write", "writeSequence", "loseConnection", "loseWriteConnection")
_CLOSE = "loseConnection"
_HALF_CLOSE = "loseWriteConnection"


class _ReadLoop:
    """A push producer reading the file chunk by chunk into the transport.

    The transport pauses it when its buffer passes the high-water mark and
    resumes it below the low one, so memory stays bounded by one chunk plus
    the transport's buffer whatever the file's size.

    While it runs it stands in for the transport's ``write``,
    ``writeSequence``, ``loseConnection`` and ``loseWriteConnection``
    (instance attributes shadowing the methods): what the application writes
    or closes meanwhile is kept, in order, and done once the file is sent,
    so the file keeps its place in the stream. A second file sent meanwhile
    waits in the same place.
    """

    def __init__(self, transport: Any, fd: int, offset: int, count: int) -> None:
        self.transport = transport
        self.fd = fd
        self.offset = offset
        self.remaining = count
        self.sent = 0
        self.paused = False
        self.done = False
        self.pumping = False
        self.held: list[Any] = []  # bytes, _CLOSE/_HALF_CLOSE, or a _ReadLoop
        self.saved: dict[str, Any] = {}
        self.real_write: Any = None
        self.d: Deferred[int] = Deferred()

    def start(self) -> Deferred[int]:
        """Begin, or wait behind a read loop already running on the transport."""
        # Chunks come and go by the megabyte: keep them in the heap, or glibc
        # trims and refaults the memory for every chunk (see reactor._malloc).
        raise_mmap_threshold(4 * CHUNK_SIZE)
        running = getattr(getattr(self.transport, "write", None), "__self__", None)
        if isinstance(running, _ReadLoop) and not running.done:
            running.held.append(self)
            return self.d
        self._begin()
        return self.d

    def _begin(self) -> None:
        transport = self.transport
        self.real_write = transport.write
        try:
            transport.registerProducer(self, True)
        except Exception:
            self.done = True
            self.d.errback(Failure())
            return
        if self.done:  # registering on a lost connection stops us at once
            return
        own = vars(transport)
        self.saved = {name: own[name] for name in _SHADOWED if name in own}
        transport.write = self._hold
        transport.writeSequence = self._hold_sequence
        transport.loseConnection = self._hold_close
        transport.loseWriteConnection = self._hold_half_close
        self._pump()

    # -- standing in for the transport ------------------------------------------

    def _hold(self, data: bytes) -> None:
        if isinstance(data, str):
            raise TypeError("Data must be bytes, not str")
        if data:
            self.held.append(bytes(data))

    def _hold_sequence(self, data: Any) -> None:
        for chunk in data:
            self._hold(chunk)

    def _hold_close(self) -> None:
        self.held.append(_CLOSE)

    def _hold_half_close(self) -> None:
        self.held.append(_HALF_CLOSE)

    def _restore(self) -> None:
        own = vars(self.transport)
        for name in _SHADOWED:
            current = own.get(name)
            if getattr(current, "__self__", None) is not self:
                continue  # the transport replaced it itself (e.g. on abort)
            if name in self.saved:
                own[name] = self.saved[name]
            else:
                del own[name]

    # -- producing -----------------------------------------------------------------

    def _pump(self) -> None:
        if self.pumping:
            return  # resumed from inside our own write: the loop below goes on
        self.pumping = True
        try:
            while not self.paused and not self.done and self.remaining > 0:
                try:
                    data = os.pread(self.fd, min(CHUNK_SIZE, self.remaining), self.offset)
                except OSError:
                    self._finish(Failure())
                    return
                if not data:
                    break  # the file is shorter than asked
                self.offset += len(data)
                self.remaining -= len(data)
                self.sent += len(data)
                self.real_write(data)
            if not self.done and (self.remaining <= 0 or not self.paused):
                self._finish(None)
        finally:
            self.pumping = False

    def _finish(self, failure: Failure | None) -> None:
        """Give the transport back, replay what was held, then report."""
        self.done = True
        self._restore()
        self.transport.unregisterProducer()
        held, self.held = self.held, []
        for i, item in enumerate(held):
            if isinstance(item, _ReadLoop):
                item.held.extend(held[i + 1:])
                item._begin()
                break
            if item == _CLOSE:
                self.transport.loseConnection()
            elif item == _HALF_CLOSE:
                self.transport.loseWriteConnection()
            else:
                self.transport.write(item)
        if failure is None:
            self.d.callback(self.sent)
        else:
            self.d.errback(failure)

    def pauseProducing(self) -> None:
        """The transport's buffer is full: stop reading."""
        self.paused = True

    def resumeProducing(self) -> None:
        """The transport's buffer drained: read on."""
        self.paused = False
        if not self.done:
            self._pump()

    def stopProducing(self) -> None:
        """The connection is gone: this transfer, and those waiting, failed."""
        if self.done:
            return
        self.done = True
        self._restore()
        reason = Failure(ConnectionLost(
            f"the connection was lost after {self.sent} bytes of the file"))
        waiting = [item for item in self.held if isinstance(item, _ReadLoop)]
        self.held = []
        self.d.errback(reason)
        for loop in waiting:
            loop.done = True
            loop.d.errback(reason)
