"""A receive buffer whose total work is linear in the bytes received.

Parsers that do ``self._buffer += data`` and then split or search the whole
buffer on every chunk go quadratic when a long message trickles in: a 1 MB line
fed one byte at a time is copied and rescanned a million times. This buffer
avoids both costs:

* Consuming moves a read offset; only the bytes handed out are copied.
* A chunk arriving at an empty buffer is kept as is (no copy), so the common
  case -- whole messages per chunk -- slices straight out of the caller's bytes.
* A chunk arriving behind unconsumed bytes is joined to them by one copy if
  the chunk is at least as large as they are (the copy is paid for by the new
  bytes) or they are short (at most ``_SMALL_REST`` bytes: a bounded cost per
  chunk); otherwise the buffer becomes a ``bytearray`` and grows in place
  (amortised O(1) per byte). A ``bytearray``'s consumed prefix is deleted only
  once it is at least as large as what remains, so compaction moves each byte
  at most once on average.
* :meth:`ReceiveBuffer.find` and :meth:`ReceiveBuffer.take_line` remember where
  an unsuccessful search ended and resume there (backing up
  ``len(delimiter) - 1`` bytes, in case the delimiter straddles two chunks), so
  each byte is searched about once.

``bytes_scanned`` counts the bytes searched, so tests check linearity by
counting work instead of timing it.

Example:
    >>> buf = ReceiveBuffer()
    >>> buf.append(b"hel"); buf.take_line(b"\\r\\n") is None
    True
    >>> buf.append(b"lo\\r\\nrest"); buf.take_line(b"\\r\\n")
    b'hello'
    >>> buf.take_all()
    b'rest'
"""

from __future__ import annotations

__all__ = ["ReceiveBuffer"]

# Compacting a small bytearray is no cheaper than leaving its prefix in place;
# waiting for this much consumed data keeps small messages from compacting.
_COMPACT_THRESHOLD = 4096

# Up to this many unconsumed bytes are simply joined with each new chunk. The
# copy is cheaper than managing a growable buffer, and bounded per chunk, so
# the total stays linear; longer rests switch to an in-place bytearray.
_SMALL_REST = 512


class ReceiveBuffer:
    """A FIFO of received bytes with an incremental delimiter search.

    The parsers in :mod:`protocols.basic` also read its fields directly in their
    hot loops, where a method call per message would cost more than the
    parsing. The rules they rely on:

    * ``_data[_start:]`` is the unconsumed bytes, and ``_data`` is ``b""``
      exactly when nothing is buffered.
    * A ``bytes`` ``_data`` is never changed; a ``bytearray`` one only grows
      in place, except that the methods may compact it.
    * A parser may consume by moving ``_start`` forward, calling ``clear()``
      instead when it reaches the end, and ``skip(0)`` when done so that a
      ``bytearray`` can compact. It must write ``_start`` back before calling
      user code, which may use the buffer too (``clearLineBuffer``, reentrant
      ``dataReceived``).

    Attributes:
        bytes_scanned: Total bytes examined by delimiter searches (a work
            counter for tests and benchmarks; it never affects behaviour).
    """

    __slots__ = ("_data", "_delimiter", "_scan_from", "_start", "bytes_scanned")

    def __init__(self) -> None:
        self._data: bytes | bytearray = b""
        self._start = 0  # read offset: _data[:_start] has been consumed
        self._scan_from = 0  # index where the next search for _delimiter may start
        self._delimiter = b""
        self.bytes_scanned = 0

    def __len__(self) -> int:
        """The number of unconsumed bytes."""
        return len(self._data) - self._start

    def __bool__(self) -> bool:
        """True if any byte is unconsumed."""
        return len(self._data) > self._start

    def append(self, data: bytes) -> None:
        """Add received bytes at the end."""
        current = self._data
        if not current:
            # Empty (clear() keeps _start and _scan_from at 0): keep a reference
            # instead of copying, since most chunks are consumed entirely
            # before the next one arrives.
            self._data = data if type(data) is bytes else bytes(data)
            return
        if not data:
            return
        start = self._start
        remaining = len(current) - start
        if remaining <= _SMALL_REST or remaining <= len(data):
            # Join the rest and the new bytes with one copy. It is paid for by
            # the new bytes, or is bounded by _SMALL_REST per chunk.
            if type(current) is bytes:
                self._data = current[start:] + data
            else:
                self._data = b"".join((memoryview(current)[start:], data))
        elif type(current) is bytes:
            # A small chunk behind a big rest (a long message trickling in):
            # copy the rest once into a buffer that then grows in place.
            grown = bytearray(memoryview(current)[start:])
            grown += data
            self._data = grown
        else:
            current += data  # a bytearray: grows in place
            return
        # The rest now starts at offset 0; keep the search's resume point on it.
        scan_from = self._scan_from - start
        self._scan_from = scan_from if scan_from > 0 else 0
        self._start = 0

    def _search(self, delimiter: bytes) -> int:
        """Return the absolute index of ``delimiter`` after the read offset, or -1."""
        data, start = self._data, self._start
        scan_from = self._scan_from
        if scan_from < start or delimiter != self._delimiter:
            scan_from = start
        index = data.find(delimiter, scan_from)
        if index < 0:
            end = len(data)
            self.bytes_scanned += end - scan_from
            self._delimiter = delimiter
            # The delimiter may begin in the last len-1 bytes and end in the next
            # chunk, so the next search starts that far back.
            resume = end - len(delimiter) + 1
            self._scan_from = resume if resume > start else start
            return -1
        self.bytes_scanned += index + len(delimiter) - scan_from
        return index

    def find(self, delimiter: bytes) -> int:
        """Return the offset of ``delimiter`` in the unconsumed bytes, or -1.

        Repeated calls with the same delimiter and no consumption in between
        only examine bytes appended since the previous call (plus
        ``len(delimiter) - 1`` bytes of overlap).
        """
        index = self._search(delimiter)
        return index if index < 0 else index - self._start

    def take_line(self, delimiter: bytes) -> bytes | None:
        """Consume and return the bytes before ``delimiter`` (dropping it), or None.

        The same as ``find`` + ``take`` + ``skip`` in one call. Line parsers call
        this once per line, so it repeats ``_search`` inline rather than calling
        it: a Python call costs about as much as the rest of this method.
        """
        data = self._data
        if not data:
            return None
        start = self._start
        scan_from = self._scan_from
        if scan_from < start:
            scan_from = start
        elif delimiter != self._delimiter:
            # Only a failed search moves _scan_from past _start, and it proved
            # those bytes free of *its* delimiter, not of this one.
            scan_from = start
        index = data.find(delimiter, scan_from)
        if index < 0:
            end = len(data)
            self.bytes_scanned += end - scan_from
            self._delimiter = delimiter
            resume = end - len(delimiter) + 1
            self._scan_from = resume if resume > start else start
            return None
        end = index + len(delimiter)
        self.bytes_scanned += end - scan_from
        line = data[start:index]
        if type(line) is bytes:
            if end < len(data):
                self._start = end
            else:
                # Everything consumed (the usual end of a chunk): start afresh.
                self._data = b""
                self._start = self._scan_from = 0
            return line
        self._consumed(end)
        return bytes(line)

    def peek(self, size: int) -> bytes:
        """Return up to ``size`` unconsumed bytes without consuming them."""
        return bytes(self._data[self._start : self._start + size])

    def take(self, size: int) -> bytes:
        """Consume and return the next ``size`` bytes (fewer if fewer remain)."""
        data, start = self._data, self._start
        if start == 0 and size >= len(data) and type(data) is bytes:
            self.clear()
            return data  # the whole chunk as received: no copy
        chunk = data[start : start + size]
        if type(chunk) is not bytes:
            chunk = bytes(chunk)
        self._consumed(start + len(chunk))
        return chunk

    def skip(self, size: int) -> None:
        """Consume and discard the next ``size`` bytes."""
        self._consumed(min(self._start + size, len(self._data)))

    def take_all(self) -> bytes:
        """Consume and return every unconsumed byte."""
        return self.take(len(self._data))

    def clear(self) -> None:
        """Discard every unconsumed byte."""
        self._data = b""
        self._start = self._scan_from = 0

    def _consumed(self, new_start: int) -> None:
        data = self._data
        if new_start >= len(data):
            self.clear()
            return
        if (
            new_start >= _COMPACT_THRESHOLD
            and new_start * 2 >= len(data)
            and type(data) is bytearray
        ):
            # The rest is no bigger than what was consumed since the last
            # compaction, so this memmove is paid for by those bytes.
            del data[:new_start]
            self._scan_from = max(self._scan_from - new_start, 0)
            new_start = 0
        self._start = new_start
