"""Bodies: request bodies read as a stream with back-pressure, body files, file senders.

A resource whose class sets ``streamRequestBody = True`` is rendered as soon
as its request head has arrived (and every earlier request on the connection
was answered). ``request.content`` is then None; the body arrives through
one of two doors, each flow-controlled, so an upload of any size never sits in
memory:

* ``request.deliverBody(protocol)``: Twisted's shape. The protocol gets
  ``makeConnection(bodyTransport)``, then ``dataReceived(chunk)`` for each
  piece, then ``connectionLost(reason)`` where ``reason`` is a
  :class:`~reactor.error.ConnectionDone` failure when the body is complete
  (anything else means it was cut short). Calling
  ``bodyTransport.pauseProducing()`` stops the server reading the socket
  until ``resumeProducing()``.
* ``async for chunk in request.iterBody():``, which pauses the socket
  whenever a chunk is waiting for the loop to take it.

Example::

    class Upload(Resource):
        isLeaf = True
        streamRequestBody = True
        maxBodySize = 1 << 30

        async def render_PUT(self, request):
            digest = hashlib.sha256()
            async for chunk in request.iterBody():
                digest.update(chunk)
            return digest.hexdigest().encode()
"""

from __future__ import annotations

import collections
import io
import os
import tempfile
from collections.abc import AsyncIterator, Callable
from typing import IO, TYPE_CHECKING, Any

from deferred import Deferred, Failure
from reactor.error import ConnectionDone

if TYPE_CHECKING:
    from .parser import RequestHead

__all__ = ["BodyError", "BodyStream", "BodyTooLarge", "FileSender", "new_body_file"]

# How much of a file one flow-controlled read takes (no sendfile).
_FILE_CHUNK = 64 * 1024


class BodyError(Exception):
    """A streamed request body could not be read to its end.

    Raised out of ``iterBody`` and given to ``deliverBody`` protocols; when it
    reaches the server unhandled, the client gets the status in ``code``
    (400 for a malformed body, 408 when the client went quiet).
    """

    code = 400

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class BodyTooLarge(BodyError):
    """The request body passed the resource's (or the site's) size limit (413)."""

    code = 413


class BodyStream:
    """Body chunks from the channel to one consumer (the body's "transport").

    Args:
        pause: Called with True to stop reading the socket, False to resume.
    """

    def __init__(self, pause: Callable[[bool], None]) -> None:
        self._pause = pause
        self._chunks: collections.deque[bytes] = collections.deque()
        self._protocol: Any = None
        self._ended: Failure | None = None
        self._reported = False
        self._consumerPaused = False
        self._holding = False
        self._delivering = False
        self.disconnecting = False

    # -- fed by the channel ---------------------------------------------------

    def feed(self, data: bytes) -> None:
        """A piece of body arrived."""
        if self._ended is not None:
            return
        if self._protocol is not None and not self._consumerPaused and not self._chunks:
            self._protocol.dataReceived(data)
            return
        self._chunks.append(data)
        self._hold(True)

    def end(self, reason: Failure | None = None) -> None:
        """The body is complete (``reason`` None) or was cut short."""
        if self._ended is not None:
            return
        self._ended = reason if reason is not None else Failure(ConnectionDone())
        self._flush()

    @property
    def complete(self) -> bool:
        """True once the whole body arrived."""
        return self._ended is not None and self._ended.check(ConnectionDone) is not None

    # -- the consumer's side --------------------------------------------------

    def deliverBody(self, protocol: Any) -> None:
        """Send the body to ``protocol`` (see the module docstring)."""
        if self._protocol is not None:
            raise RuntimeError("the request body is already being delivered")
        self._protocol = protocol
        protocol.makeConnection(self)
        self._flush()

    def iterBody(self) -> AsyncIterator[bytes]:
        """An async iterator over the body's chunks (see the module docstring)."""
        reader = _BodyReader()
        self.deliverBody(reader)
        return reader

    def pauseProducing(self) -> None:
        """Stop reading the body from the socket for now."""
        self._consumerPaused = True
        self._hold(True)

    def resumeProducing(self) -> None:
        """Read the body again."""
        self._consumerPaused = False
        self._flush()

    def stopProducing(self) -> None:
        """Not interested in the rest: it is still read (and dropped)."""
        self._protocol = _Discard()
        self._consumerPaused = False
        self._chunks.clear()
        self._flush()

    def loseConnection(self) -> None:
        """Same as :meth:`stopProducing` (the body has no connection of its own)."""
        self.stopProducing()

    # -- internals --------------------------------------------------------------

    def _hold(self, hold: bool) -> None:
        if hold != self._holding:
            self._holding = hold
            self._pause(hold)

    def _flush(self) -> None:
        if self._delivering or self._protocol is None:
            return
        self._delivering = True
        try:
            while self._chunks and not self._consumerPaused:
                self._protocol.dataReceived(self._chunks.popleft())
            if self._chunks or self._consumerPaused:
                return
            if self._ended is not None:
                self._hold(False)
                if not self._reported:
                    self._reported = True
                    self._protocol.connectionLost(self._ended)
            else:
                self._hold(False)
        finally:
            self._delivering = False


class _Discard:
    def dataReceived(self, data: bytes) -> None:
        pass

    def connectionLost(self, reason: Failure) -> None:
        pass


class _BodyReader:
    """The ``iterBody`` consumer: one chunk waits at most; then the socket pauses."""

    def __init__(self) -> None:
        self._transport: BodyStream | None = None
        self._ready: collections.deque[bytes] = collections.deque()
        self._waiting: Deferred[bytes | None] | None = None
        self._end: Failure | None = None

    def makeConnection(self, transport: BodyStream) -> None:
        self._transport = transport

    def dataReceived(self, data: bytes) -> None:
        waiting, self._waiting = self._waiting, None
        if waiting is not None:
            waiting.callback(data)
            return
        self._ready.append(data)
        assert self._transport is not None
        self._transport.pauseProducing()

    def connectionLost(self, reason: Failure) -> None:
        self._end = reason
        waiting, self._waiting = self._waiting, None
        if waiting is not None:
            self._fire_end(waiting)

    def _fire_end(self, d: Deferred[bytes | None]) -> None:
        assert self._end is not None
        if self._end.check(ConnectionDone):
            d.callback(None)
        else:
            d.errback(self._end)

    def __aiter__(self) -> _BodyReader:
        return self

    async def __anext__(self) -> bytes:
        if self._ready:
            chunk = self._ready.popleft()
            if not self._ready and self._transport is not None:
                self._transport.resumeProducing()
            return chunk
        d: Deferred[bytes | None] = Deferred()
        if self._end is not None:
            self._fire_end(d)
        else:
            self._waiting = d
        result = await d
        if result is None:
            raise StopAsyncIteration
        return result


def new_body_file(threshold: int, head: RequestHead) -> IO[bytes]:
    """A file for a request body: in memory up to ``threshold`` bytes, then on disk.

    A request announcing a body that fits (or none, as most GETs) gets a
    plain ``BytesIO``: a spooled file costs several times more to create.
    """
    length = head.content_length
    if not head.chunked and (length is None or length <= threshold):
        return io.BytesIO()
    return tempfile.SpooledTemporaryFile(max_size=threshold)


class FileSender:
    """Push producer sending part of a file through ``request.write`` (encoded or
    chunked bodies, which ``reactor.sendfile`` cannot carry)."""

    def __init__(self, request: Any, file: IO[bytes], offset: int, count: int) -> None:
        self.request = request
        self.file = file
        self.offset = offset
        self.remaining = count
        self.deferred: Deferred[None] = Deferred()
        self._paused = False
        self._pumping = False
        self._done = False
        try:
            self._fd: int | None = file.fileno()
        except (AttributeError, OSError, ValueError):
            self._fd = None

    def start(self) -> None:
        self.request.registerProducer(self, True)
        self._pump()

    def _read(self, size: int) -> bytes:
        if self._fd is not None:
            return os.pread(self._fd, size, self.offset)
        self.file.seek(self.offset)
        return self.file.read(size)

    def _pump(self) -> None:
        if self._pumping or self._done:
            return
        self._pumping = True
        try:
            while not self._paused and self.remaining > 0 and not self._done:
                data = self._read(min(_FILE_CHUNK, self.remaining))
                if not data:
                    self._end(Failure(EOFError("file ended before the announced length")))
                    return
                self.offset += len(data)
                self.remaining -= len(data)
                self.request.write(data)
            if self.remaining == 0 and not self._done:
                self._end(None)
        except Exception:
            self._end(Failure())
        finally:
            self._pumping = False

    def _end(self, failure: Failure | None) -> None:
        self._done = True
        if self.request._producer is self:
            self.request.unregisterProducer()
        if failure is None:
            self.deferred.callback(None)
        else:
            self.deferred.errback(failure)

    def pauseProducing(self) -> None:
        self._paused = True

    def resumeProducing(self) -> None:
        self._paused = False
        self._pump()

    def stopProducing(self) -> None:
        if not self._done:
            self._done = True
            self.deferred.errback(self.request._lost or Failure(ConnectionDone()))
