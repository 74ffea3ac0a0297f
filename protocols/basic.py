"""Framing protocols: lines, netstrings, length-prefixed strings; and FileSender.

Every receiver here parses through :class:`protocols._buffer.ReceiveBuffer`, so
the total work is linear in the bytes received however the bytes are split:
a 1 MB line arriving one byte per ``dataReceived`` is scanned once, not a
million times.

Call grammar (on top of ``Protocol``'s)::

    LineReceiver:        dataReceived -> (lineReceived | rawDataReceived)* [-> lineLengthExceeded]
    NetstringReceiver:   dataReceived -> stringReceived* [-> connection dropped on bad input]
    IntNStringReceiver:  dataReceived -> stringReceived* [-> lengthLimitExceeded]

Example:
    >>> from reactor.testing import StringTransport
    >>> class Upper(LineReceiver):
    ...     def lineReceived(self, line: bytes) -> None:
    ...         self.sendLine(line.upper())
    >>> proto, transport = Upper(), StringTransport()
    >>> proto.makeConnection(transport)
    >>> for byte in b"ab\\r\\ncd\\r\\n":
    ...     proto.dataReceived(bytes([byte]))
    >>> transport.value()
    b'AB\\r\\nCD\\r\\n'
"""

from __future__ import annotations

import struct
from struct import unpack_from
from typing import Any, cast
from typing import Protocol as TypingProtocol

from deferred import Deferred

from ._buffer import _SMALL_REST, ReceiveBuffer
from .base import Protocol

__all__ = [
    "FileSender",
    "Int8StringReceiver",
    "Int16StringReceiver",
    "Int32StringReceiver",
    "IntNStringReceiver",
    "LineOnlyReceiver",
    "LineReceiver",
    "NetstringParseError",
    "NetstringReceiver",
    "StringTooLongError",
]


class NetstringParseError(ValueError):
    """The received data is not a valid netstring."""


class StringTooLongError(AssertionError):
    """``sendString`` was given a string too long for the length prefix."""


# Returned by LineReceiver._split_chunk when the general loop must take over.
_KEEP_GOING = object()


class _PauseableProtocol(Protocol):
    """Adds Twisted's producer methods to a receiver.

    ``pauseProducing`` stops delivery of already-buffered messages as well as
    reading from the transport; ``resumeProducing`` delivers what is buffered.
    """

    paused = False
    _rbuf: ReceiveBuffer | None = None

    def _receive_buffer(self) -> ReceiveBuffer:
        # Created on first use rather than in __init__: Twisted-style subclasses
        # often define __init__ without calling ours.
        buf = self._rbuf
        if buf is None:
            buf = self._rbuf = ReceiveBuffer()
        return buf

    def pauseProducing(self) -> None:
        """Stop delivering messages and pause the transport."""
        self.paused = True
        cast(Any, self.transport).pauseProducing()

    def resumeProducing(self) -> None:
        """Resume the transport and deliver any buffered messages."""
        self.paused = False
        cast(Any, self.transport).resumeProducing()
        self.dataReceived(b"")

    def stopProducing(self) -> None:
        """Stop delivering messages and stop the transport."""
        self.paused = True
        cast(Any, self.transport).stopProducing()


# --- lines -----------------------------------------------------------------------------


class LineReceiver(_PauseableProtocol):
    """Receives lines, or raw data after :meth:`setRawMode`.

    Override :meth:`lineReceived` (and :meth:`rawDataReceived` if you switch to
    raw mode). A line longer than ``MAX_LENGTH`` (without its delimiter) goes to
    :meth:`lineLengthExceeded`, which drops the connection by default. Once the
    transport is disconnecting, no further lines are delivered.

    Switching modes from inside a callback takes effect for the very next byte:
    after ``setRawMode()`` in ``lineReceived`` the rest of the buffer goes to
    ``rawDataReceived``; ``setLineMode(extra)`` in ``rawDataReceived`` parses
    ``extra`` as lines.

    Attributes:
        delimiter: The line terminator (``b"\\r\\n"``).
        MAX_LENGTH: The longest line accepted (16384).
        line_mode: 1 in line mode, 0 in raw mode.
        paused: True while paused as a producer.
    """

    line_mode = 1
    delimiter = b"\r\n"
    MAX_LENGTH = 16384
    _busyReceiving = False

    def dataReceived(self, data: bytes) -> Any:
        """Split received bytes into ``lineReceived`` / ``rawDataReceived`` calls.

        Returns:
            Whatever a callback returned that was true (Twisted's old way for a
            callback to abort parsing), else None.
        """
        buf = self._rbuf
        if buf is None:
            buf = self._rbuf = ReceiveBuffer()
        buf.append(data)  # no copy when the buffer was empty
        if self._busyReceiving:
            # Called from inside a callback (setLineMode(extra), resumeProducing):
            # the loop below is already running and will see the new bytes.
            return None
        self._busyReceiving = True
        try:
            if data and self.line_mode and not self.paused and buf._start == 0:
                why = self._split_chunk(buf)
                if why is not _KEEP_GOING:
                    return why
            while not self.paused:
                if self.line_mode:
                    line = buf.take_line(self.delimiter)
                    if line is None:
                        if len(buf) >= self.MAX_LENGTH + len(self.delimiter):
                            return self.lineLengthExceeded(buf.take_all())
                        return None
                    if len(line) > self.MAX_LENGTH:
                        # Twisted hands over the long line, its delimiter and the rest.
                        return self.lineLengthExceeded(line + self.delimiter + buf.take_all())
                    why = self.lineReceived(line)
                    if why:
                        return why
                    transport = self.transport
                    if transport is not None and transport.disconnecting:
                        return None
                elif buf:
                    # Raw mode: a chunk that arrived at an empty buffer is
                    # handed over as the same object, uncopied.
                    why = self.rawDataReceived(buf.take_all())
                    if why:
                        return why
                else:
                    return None
            return None
        finally:
            self._busyReceiving = False

    def _split_chunk(self, buf: ReceiveBuffer) -> Any:
        """The fast path: deliver the lines of a fresh chunk with one C ``split``.

        Called at most once per ``dataReceived``, on a buffer whose bytes (a
        short rest of the previous chunk plus the new one, see
        ``ReceiveBuffer.append``) start at offset 0, so each byte is split about
        once. It reads and advances the buffer's fields directly, keeping the
        buffer truthful before every callback: ``clearLineBuffer``,
        ``setRawMode``, pausing or reentrant data all act on the real buffer.
        As soon as any of them happens, or a line is too long, it returns
        ``_KEEP_GOING`` and the general loop (one ``take_line`` per line)
        carries on from the buffer's state.
        """
        chunk = buf._data
        if type(chunk) is not bytes:
            return _KEEP_GOING  # a long line trickling into a bytearray
        delimiter = self.delimiter
        max_length = self.MAX_LENGTH
        lines = chunk.split(delimiter)
        buf.bytes_scanned += len(chunk)
        tail = lines.pop()
        step = len(delimiter)
        end = len(chunk)
        pos = 0
        for line in lines:
            if len(line) > max_length:
                return _KEEP_GOING
            pos += len(line) + step
            if pos < end:
                buf._start = pos
            else:
                buf.clear()
            why = self.lineReceived(line)
            if why:
                return why
            transport = self.transport
            if transport is not None and transport.disconnecting:
                return None
            if (
                self.paused
                or not self.line_mode
                or self.delimiter is not delimiter
                or buf._data is not chunk
                or buf._start != pos
            ):
                return _KEEP_GOING
        if len(tail) >= max_length + step:
            return self.lineLengthExceeded(buf.take_all())
        return None

    def clearLineBuffer(self) -> bytes:
        """Discard the buffered, not yet delivered bytes and return them."""
        buf = self._rbuf
        return b"" if buf is None else buf.take_all()

    def setLineMode(self, extra: bytes = b"") -> Any:
        """Deliver further data as lines; ``extra`` is parsed first.

        Pass ``extra`` only from ``rawDataReceived`` (bytes you received but did
        not consume), never from ``lineReceived``.
        """
        self.line_mode = 1
        if extra:
            return self.dataReceived(extra)
        return None

    def setRawMode(self) -> None:
        """Deliver further data, including what is buffered, to ``rawDataReceived``."""
        self.line_mode = 0

    def lineReceived(self, line: bytes) -> Any:
        """Called with each line, delimiter removed. Override this."""
        raise NotImplementedError

    def rawDataReceived(self, data: bytes) -> Any:
        """Called with data received in raw mode. Override if you use raw mode."""
        raise NotImplementedError

    def sendLine(self, line: bytes) -> None:
        """Write ``line`` followed by the delimiter."""
        transport = self.transport
        assert transport is not None, "sendLine() before makeConnection()"
        transport.write(line + self.delimiter)

    def lineLengthExceeded(self, line: bytes) -> Any:
        """Called with the buffered data when a line is too long; drops the connection.

        ``line`` starts with (part of) the long line and may hold more after it.
        """
        transport = self.transport
        assert transport is not None
        return transport.loseConnection()


class LineOnlyReceiver(Protocol):
    """A LineReceiver without raw mode or pausing; slightly faster.

    As in Twisted, the lines following a too-long line, or following a line
    whose handler closed the connection, in the same chunk are discarded.

    Attributes:
        delimiter: The line terminator (``b"\\r\\n"``).
        MAX_LENGTH: The longest line accepted (16384).
    """

    delimiter = b"\r\n"
    MAX_LENGTH = 16384
    _rbuf: ReceiveBuffer | None = None

    def dataReceived(self, data: bytes) -> Any:
        """Split received bytes into ``lineReceived`` calls."""
        buf = self._rbuf
        if buf is None:
            buf = self._rbuf = ReceiveBuffer()
        delimiter = self.delimiter
        pending = buf._data
        if type(pending) is bytes and len(pending) <= _SMALL_REST:
            # The common case: a short unterminated rest (always at offset 0
            # here) plus the new chunk, split in C. Re-splitting a rest this
            # short costs a bounded amount per chunk, so the total is linear.
            chunk = pending + data if pending else data
            lines = chunk.split(delimiter)
            buf.bytes_scanned += len(chunk)
        else:
            buf.append(data)
            first = buf.take_line(delimiter)
            if first is None:
                # A long line trickling in: the buffer searched only the new bytes.
                if len(buf) > self.MAX_LENGTH:
                    return self.lineLengthExceeded(buf.take_all())
                return None
            lines = buf.take_all().split(delimiter)
            lines.insert(0, first)
        # Keep the unterminated tail as the buffer's whole content. Written to
        # the fields directly: this class exists to be fast, and a call per
        # chunk is a measurable part of its cost on small chunks.
        # (Both branches leave _start and _scan_from at 0.)
        tail = lines.pop()
        buf._data = tail
        transport = self.transport
        max_length = self.MAX_LENGTH
        for line in lines:
            if transport is not None and transport.disconnecting:
                # A line asked to close; as in Twisted, the rest of this chunk
                # is not acted on.
                return None
            if len(line) > max_length:
                return self.lineLengthExceeded(line)
            self.lineReceived(line)
        if len(tail) > max_length:
            return self.lineLengthExceeded(buf.take_all())
        return None

    def lineReceived(self, line: bytes) -> None:
        """Called with each line, delimiter removed. Override this."""
        raise NotImplementedError

    def sendLine(self, line: bytes) -> None:
        """Write ``line`` followed by the delimiter."""
        transport = self.transport
        assert transport is not None, "sendLine() before makeConnection()"
        transport.writeSequence((line, self.delimiter))

    def lineLengthExceeded(self, line: bytes) -> Any:
        """Called with a too-long line; drops the connection by default."""
        transport = self.transport
        assert transport is not None
        return transport.loseConnection()


# --- netstrings ------------------------------------------------------------------------


class NetstringReceiver(Protocol):
    """Sends and receives netstrings (``b"5:hello,"``; http://cr.yp.to/proto/netstrings.txt).

    Invalid input (no length, leading zeros, a length over ``MAX_LENGTH``, a
    missing comma) drops the connection and sets ``brokenPeer``; nothing more is
    parsed after that.

    Attributes:
        MAX_LENGTH: The longest payload accepted (99999).
        brokenPeer: 1 once invalid input was received.
    """

    MAX_LENGTH = 99999
    brokenPeer = 0

    _MISSING_LENGTH = "The received netstring does not start with a length specification."
    _TOO_LONG = "The received netstring is longer than the maximum %s specified by self.MAX_LENGTH"
    _MISSING_COMMA = "The received netstring is not terminated by a comma."

    _PARSING_LENGTH, _PARSING_PAYLOAD = range(2)
    _state = _PARSING_LENGTH
    _expectedPayloadSize = 0  # payload length plus one for the comma
    _rbuf: ReceiveBuffer | None = None

    def makeConnection(self, transport: Any) -> None:
        """Reset the parser and connect."""
        self._rbuf = ReceiveBuffer()
        self._state = self._PARSING_LENGTH
        self._expectedPayloadSize = 0
        self.brokenPeer = 0
        super().makeConnection(transport)

    def sendString(self, string: bytes) -> None:
        """Write ``string`` as a netstring."""
        transport = self.transport
        assert transport is not None, "sendString() before makeConnection()"
        transport.write(b"%d:%s," % (len(string), string))

    def stringReceived(self, string: bytes) -> None:
        """Called with each payload. Override this."""
        raise NotImplementedError

    def dataReceived(self, data: bytes) -> None:
        """Parse netstrings out of received bytes."""
        if self.brokenPeer:
            return
        buf = self._rbuf
        if buf is None:
            buf = self._rbuf = ReceiveBuffer()
        buf.append(data)
        # As in IntNStringReceiver, the loop walks the buffer's fields and writes
        # the read offset back before each callback.
        chunk, start = buf._data, buf._start
        try:
            while True:
                if self._state == self._PARSING_LENGTH:
                    length, start = self._parse_length(chunk, start)
                    if length < 0:
                        break
                    self._expectedPayloadSize = length + 1
                    self._state = self._PARSING_PAYLOAD
                # The payload is cut only once it is complete, so a long payload
                # trickling in costs a length check per chunk, not a copy.
                end = start + self._expectedPayloadSize
                if end > len(chunk):
                    break
                if chunk[end - 1] != 0x2C:  # b","
                    raise NetstringParseError(self._MISSING_COMMA)
                payload = chunk[start : end - 1]
                if type(payload) is not bytes:
                    payload = bytes(payload)
                self._state = self._PARSING_LENGTH
                if end < len(chunk):
                    buf._start = start = end
                else:
                    buf.clear()
                self.stringReceived(payload)
                if self.brokenPeer:
                    return
                chunk, start = buf._data, buf._start
        except NetstringParseError:
            self._handleParseError()
            return
        if start < len(chunk):
            buf._start = start
            buf.skip(0)  # let a bytearray compact its consumed prefix
        else:
            buf.clear()

    def _parse_length(self, chunk: bytes | bytearray, start: int) -> tuple[int, int]:
        """Parse ``digits:`` at ``chunk[start:]``.

        Returns:
            ``(length, offset after the colon)``, or ``(-1, start)`` if more
            bytes are needed.

        Raises:
            NetstringParseError: The bytes cannot start a valid netstring.
        """
        max_digits = len(str(self.MAX_LENGTH))
        # Only max_digits + 1 bytes can matter, so this is O(1) per call however
        # slowly the length arrives.
        colon = chunk.find(b":", start, start + max_digits + 1)
        digits = chunk[start : start + max_digits + 1] if colon < 0 else chunk[start:colon]
        if not digits:
            if colon == start:
                raise NetstringParseError(self._MISSING_LENGTH)
            return -1, start
        if not digits.isdigit() or (digits[0] == 0x30 and len(digits) > 1):  # b"0"
            raise NetstringParseError(self._MISSING_LENGTH)
        if len(digits) > max_digits or int(digits) > self.MAX_LENGTH:
            raise NetstringParseError(self._TOO_LONG % (self.MAX_LENGTH,))
        if colon < 0:
            return -1, start
        return int(digits), colon + 1

    def _handleParseError(self) -> None:
        """Drop the connection and mark the peer broken."""
        self.brokenPeer = 1
        if self._rbuf is not None:
            self._rbuf.clear()
        transport = self.transport
        assert transport is not None
        transport.loseConnection()


# --- length-prefixed strings -----------------------------------------------------------


class IntNStringReceiver(_PauseableProtocol):
    """Receives strings prefixed by a fixed-size big-endian length.

    Subclasses set ``structFormat`` and ``prefixLength``; use
    :class:`Int32StringReceiver`, :class:`Int16StringReceiver` or
    :class:`Int8StringReceiver`. A length over ``MAX_LENGTH`` calls
    :meth:`lengthLimitExceeded`, which drops the connection by default.

    Twisted's deprecated ``recvd`` attribute (the raw parse buffer) is not
    provided.

    Attributes:
        MAX_LENGTH: The longest string accepted (99999).
        structFormat: The ``struct`` format of the prefix, e.g. ``"!I"``.
        prefixLength: The size of the prefix in bytes.
    """

    MAX_LENGTH = 99999
    structFormat: str
    prefixLength: int

    def stringReceived(self, string: bytes) -> None:
        """Called with each string, prefix removed. Override this."""
        raise NotImplementedError

    def lengthLimitExceeded(self, length: int) -> None:
        """Called with a prefix over ``MAX_LENGTH``; drops the connection by default."""
        transport = self.transport
        assert transport is not None
        transport.loseConnection()

    def dataReceived(self, data: bytes) -> None:
        """Parse length-prefixed strings out of received bytes."""
        buf = self._receive_buffer()
        buf.append(data)
        fmt, prefix, max_length = self.structFormat, self.prefixLength, self.MAX_LENGTH
        # The loop walks the buffer's fields directly (a call per message would
        # cost more than the parsing) and writes the read offset back before
        # every callback, so reentrant calls see a truthful buffer.
        chunk, start = buf._data, buf._start
        while len(chunk) - start >= prefix and not self.paused:
            (length,) = unpack_from(fmt, chunk, start)
            if length > max_length:
                self.lengthLimitExceeded(length)
                return
            end = start + prefix + length
            if end > len(chunk):
                break
            packet = chunk[start + prefix : end]
            if type(packet) is not bytes:
                packet = bytes(packet)
            if end < len(chunk):
                buf._start = start = end
            else:
                buf.clear()
            self.stringReceived(packet)
            chunk, start = buf._data, buf._start
        buf.skip(0)  # let a bytearray compact its consumed prefix

    def sendString(self, string: bytes) -> None:
        """Write ``string`` with its length prefix.

        Raises:
            StringTooLongError: The length does not fit in the prefix.
        """
        limit = 2 ** (8 * self.prefixLength)
        if len(string) >= limit:
            raise StringTooLongError(
                f"Try to send {len(string)} bytes whereas maximum is {limit}"
            )
        transport = self.transport
        assert transport is not None, "sendString() before makeConnection()"
        transport.write(struct.pack(self.structFormat, len(string)) + string)


class Int32StringReceiver(IntNStringReceiver):
    """Strings prefixed by a 4-byte big-endian length."""

    structFormat = "!I"
    prefixLength = struct.calcsize(structFormat)


class Int16StringReceiver(IntNStringReceiver):
    """Strings prefixed by a 2-byte big-endian length."""

    structFormat = "!H"
    prefixLength = struct.calcsize(structFormat)


class Int8StringReceiver(IntNStringReceiver):
    """Strings prefixed by a 1-byte length."""

    structFormat = "!B"
    prefixLength = struct.calcsize(structFormat)


# --- sending files ---------------------------------------------------------------------


class _Readable(TypingProtocol):
    def read(self, size: int, /) -> bytes: ...


class FileSender:
    """A pull producer that copies a file to a consumer, one chunk per request.

    Example:
        >>> import io
        >>> from reactor.testing import StringTransport
        >>> transport = StringTransport()
        >>> d = FileSender().beginFileTransfer(io.BytesIO(b"data"), transport)
        >>> while transport.producer is not None:
        ...     transport.producer.resumeProducing()
        >>> transport.value()
        b'data'

    Attributes:
        CHUNK_SIZE: Bytes read per ``resumeProducing`` (16 KiB).
        lastSent: The last byte written so far.
    """

    CHUNK_SIZE = 2**14
    lastSent = b""
    deferred: Deferred[bytes] | None = None

    def beginFileTransfer(
        self, file: _Readable, consumer: Any, transform: Any = None
    ) -> Deferred[bytes]:
        """Start sending ``file`` to ``consumer`` (registered as a pull producer).

        Args:
            file: Anything with ``read(size) -> bytes``.
            consumer: An ``IConsumer``, e.g. a transport.
            transform: Optional ``bytes -> bytes`` applied to each chunk.

        Returns:
            A Deferred firing with the last byte sent once the file is done; it
            fails if the consumer calls ``stopProducing`` first.
        """
        self.file: _Readable | None = file
        self.consumer = consumer
        self.transform = transform
        self.deferred = deferred = Deferred[bytes]()
        consumer.registerProducer(self, False)
        return deferred

    def resumeProducing(self) -> None:
        """Write the next chunk, or finish: unregister and fire the Deferred."""
        chunk = b""
        if self.file is not None:
            chunk = self.file.read(self.CHUNK_SIZE)
        if not chunk:
            self.file = None
            self.consumer.unregisterProducer()
            if self.deferred is not None:
                deferred, self.deferred = self.deferred, None
                deferred.callback(self.lastSent)
            return
        if self.transform is not None:
            chunk = self.transform(chunk)
        self.consumer.write(chunk)
        self.lastSent = chunk[-1:]

    def pauseProducing(self) -> None:
        """Nothing to do: a pull producer writes only when asked."""

    def stopProducing(self) -> None:
        """The consumer gave up: fail the Deferred."""
        if self.deferred is not None:
            deferred, self.deferred = self.deferred, None
            deferred.errback(Exception("Consumer asked us to stop producing"))
