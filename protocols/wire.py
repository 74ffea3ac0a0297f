"""The small RFC services: Echo, Discard, Chargen, QOTD, Daytime and Time.

===========  ====  =====================================  ======================
service      RFC   TCP (``Protocol``, factory)            UDP (``DatagramProtocol``)
===========  ====  =====================================  ======================
echo         862   :class:`Echo`, :class:`EchoFactory`        :class:`EchoUDP`
discard      863   :class:`Discard`, :class:`DiscardFactory`  :class:`DiscardUDP`
chargen      864   :class:`Chargen`, :class:`ChargenFactory`  :class:`ChargenUDP`
qotd         865   :class:`QOTD`, :class:`QOTDFactory`        :class:`QOTDUDP`
active users 866   :class:`Who` (Twisted's; says ``root``)    --
daytime      867   :class:`Daytime`, :class:`DaytimeFactory`  :class:`DaytimeUDP`
time         868   :class:`Time`, :class:`TimeFactory`        :class:`TimeUDP`
===========  ====  =====================================  ======================

Over UDP every datagram received, even an empty one, gets exactly one reply
datagram, except for discard, which never replies.

Time sources are injectable: Daytime and Time read ``clock.seconds()`` (seconds
since the Unix epoch) from the factory's or UDP protocol's ``clock``, by default
the system's wall clock. Not the reactor: its ``seconds()`` is monotonic.

Example:
    >>> from reactor.testing import Clock, StringTransport
    >>> clock = Clock(); clock.rightNow = 0.0
    >>> proto = TimeFactory(clock=clock).buildProtocol(None)
    >>> transport = StringTransport()
    >>> proto.makeConnection(transport)
    >>> transport.value().hex(), transport.disconnecting   # 1970 in 1900-based seconds
    ('83aa7e80', True)
"""

from __future__ import annotations

import logging
import math
import os
import random
import re
import struct
import time
from collections.abc import Callable
from typing import Any
from typing import Protocol as TypingProtocol

from .base import DatagramProtocol, Protocol, ServerFactory
from .policies import find_clock

__all__ = [
    "CHARGEN_CYCLE",
    "MAX_QUOTE_LENGTH",
    "QOTD",
    "QOTDUDP",
    "TIME_EPOCH_OFFSET",
    "Chargen",
    "ChargenFactory",
    "ChargenUDP",
    "Daytime",
    "DaytimeFactory",
    "DaytimeUDP",
    "Discard",
    "DiscardFactory",
    "DiscardUDP",
    "Echo",
    "EchoFactory",
    "EchoUDP",
    "QOTDFactory",
    "QuoteSource",
    "Time",
    "TimeFactory",
    "TimeUDP",
    "Who",
    "chargen_stream",
    "daytime_string",
    "decode_time",
    "encode_time",
    "format_quote",
]

log = logging.getLogger(__name__)


class WallClock(TypingProtocol):
    """Anything with ``seconds()`` returning seconds since the Unix epoch (a test ``Clock``)."""

    def seconds(self) -> float:
        """The current time."""
        ...


class _SystemClock:
    seconds = staticmethod(time.time)


_SYSTEM_CLOCK: WallClock = _SystemClock()


def _wall_clock(owner: Any) -> WallClock:
    clock = getattr(owner, "clock", None)
    return _SYSTEM_CLOCK if clock is None else clock


# --- echo and discard (RFC 862, 863) ---------------------------------------------------


class Echo(Protocol):
    """RFC 862: send back everything received."""

    def dataReceived(self, data: bytes) -> None:
        """Echo ``data``."""
        self.transport.write(data)  # type: ignore[union-attr]


class Discard(Protocol):
    """RFC 863: read everything, answer nothing."""

    def dataReceived(self, data: bytes) -> None:
        """Throw ``data`` away."""


class EchoFactory(ServerFactory[Echo]):
    """Builds :class:`Echo`. ``reactor.listenTCP(7, EchoFactory())``."""

    protocol = Echo


class DiscardFactory(ServerFactory[Discard]):
    """Builds :class:`Discard`."""

    protocol = Discard


class EchoUDP(DatagramProtocol):
    """RFC 862 over UDP: send each datagram back to its sender."""

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        """Echo ``datagram`` to ``addr``."""
        self.transport.write(datagram, addr)


class DiscardUDP(DatagramProtocol):
    """RFC 863 over UDP: never replies."""

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        """Throw ``datagram`` away."""


# --- chargen (RFC 864) -----------------------------------------------------------------

_RING = bytes(range(32, 127))  # the 95 printable ASCII characters, space first
LINE_LENGTH = 72


def _build_cycle() -> bytes:
    # RFC 864's pattern: 72-character lines, each starting one character further
    # round the ring than the one before (the first starts at "!", as in the
    # RFC's example). After 95 lines it repeats, so one cycle is the stream.
    ring = _RING * 2
    return b"".join(ring[(n + 1) % 95:(n + 1) % 95 + LINE_LENGTH] + b"\r\n" for n in range(95))


CHARGEN_CYCLE = _build_cycle()
"""One period (95 lines of 74 bytes) of the endless chargen stream."""
_LINE = LINE_LENGTH + 2
# A few cycles back to back, so any chunk up to 16 KiB is one slice.
_TAPE = CHARGEN_CYCLE * 4


def chargen_stream(offset: int, size: int) -> bytes:
    """Return ``size`` bytes of the chargen stream starting at byte ``offset``.

    Example:
        >>> chargen_stream(0, 12)
        b'!"#$%&\\'()*+,'
        >>> chargen_stream(72, 5)   # the line end, then line 2 starts one character on
        b'\\r\\n"#$'
    """
    start = offset % len(CHARGEN_CYCLE)
    if start + size <= len(_TAPE):
        return _TAPE[start:start + size]
    repeats = (start + size) // len(CHARGEN_CYCLE) + 1
    return (CHARGEN_CYCLE * repeats)[start:start + size]


class Chargen(Protocol):
    """RFC 864 over TCP: an endless stream of rotating lines; input is ignored.

    A push producer registered on the transport (``streaming=True``): the
    transport pauses it when its buffer passes the high-water mark (a slow
    reader) and resumes it once drained, so memory stays bounded. While running
    it writes at most ``burst`` bytes per reactor turn, then yields.

    In tests, drive it with a transport that pauses it (as real ones do): a
    test ``Clock`` runs calls scheduled for "now" within the same ``advance``,
    so against a transport that never pauses, ``advance`` would never return.

    Attributes:
        burst: Bytes written per reactor turn at most.
        chunk: Bytes per ``write``.
        bytesSent: Bytes handed to the transport so far.
    """

    burst = 64 * 1024
    chunk = 16 * 1024
    bytesSent = 0
    _offset = 0
    _paused = False
    _stopped = False
    _call: Any = None

    def connectionMade(self) -> None:
        """Register as a push producer and start producing on the next turn."""
        self.transport.registerProducer(self, True)  # type: ignore[union-attr]
        self._schedule()

    def dataReceived(self, data: bytes) -> None:
        """RFC 864: "Any data received is thrown away"."""

    def pauseProducing(self) -> None:
        """The transport's buffer is full: stop writing."""
        self._paused = True
        self._cancel()

    def resumeProducing(self) -> None:
        """The transport drained: write again."""
        self._paused = False
        self._schedule()

    def stopProducing(self) -> None:
        """The connection is going away: stop for good."""
        self._stopped = True
        self._cancel()

    def connectionLost(self, reason: Any = None) -> None:
        """Stop producing."""
        self.stopProducing()

    def _schedule(self) -> None:
        if self._call is None and not (self._paused or self._stopped):
            self._call = find_clock(self).callLater(0, self._produce)

    def _cancel(self) -> None:
        if self._call is not None:
            self._call.cancel()
            self._call = None

    def _produce(self) -> None:
        self._call = None
        transport: Any = self.transport
        if transport.disconnecting:
            # Someone (a timeout, the server) is closing: the transport waits
            # for its producer to unregister before it can finish closing.
            self._stopped = True
            transport.unregisterProducer()
            return
        written = 0
        while written < self.burst and not (self._paused or self._stopped):
            data = chargen_stream(self._offset, self.chunk)
            self._offset = (self._offset + self.chunk) % len(CHARGEN_CYCLE)
            written += len(data)
            self.bytesSent += len(data)
            transport.write(data)  # may call pauseProducing before returning
        self._schedule()


class ChargenFactory(ServerFactory[Chargen]):
    """Builds :class:`Chargen`.

    Args:
        clock: Where chargen schedules its writes (a test ``Clock``); None: the
            transport's reactor.
    """

    protocol = Chargen

    def __init__(self, clock: Any = None) -> None:
        self.clock = clock


class ChargenUDP(DatagramProtocol):
    """RFC 864 over UDP: answer each datagram with 0 to 512 bytes of chargen lines.

    Each reply starts at the beginning of a line, and each starts one
    character further round the ring than the previous reply.

    Args:
        rng: Chooses the lengths; pass ``random.Random(seed)`` for repeatable tests.
    """

    maxLength = 512

    def __init__(self, rng: random.Random | None = None) -> None:
        self.rng = random.Random() if rng is None else rng
        self._line = 0

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        """Reply with a random-length slice of the stream."""
        size = self.rng.randint(0, self.maxLength)
        self.transport.write(chargen_stream(self._line * _LINE, size), addr)
        self._line = (self._line + 1) % 95


# --- quote of the day (RFC 865) --------------------------------------------------------

MAX_QUOTE_LENGTH = 512
"""The most bytes a QOTD reply (quote plus CRLF) has; RFC 865 asks for under 512."""
_DEFAULT_QUOTE = "An apple a day keeps the doctor away."
_NEWLINES = re.compile(rb"\r\n|\r|\n")
_PARAGRAPHS = re.compile(r"\n[ \t]*\n")


def format_quote(quote: str | bytes) -> bytes:
    """Return ``quote`` as a QOTD reply: UTF-8, CRLF line ends, CRLF-terminated.

    Truncation rule: a reply longer than :data:`MAX_QUOTE_LENGTH` bytes is cut
    so that the text plus ``...`` plus CRLF fits; the cut is at the last space
    or line break in the final quarter of the allowance when there is one (so
    words stay whole), else at a UTF-8 character boundary.

    Example:
        >>> format_quote("Two\\nlines")
        b'Two\\r\\nlines\\r\\n'
        >>> reply = format_quote("word " * 200)
        >>> len(reply) <= MAX_QUOTE_LENGTH, reply[-9:]
        (True, b'word...\\r\\n')
    """
    data = quote.encode("utf-8") if isinstance(quote, str) else bytes(quote)
    data = _NEWLINES.sub(b"\r\n", data).strip(b"\r\n")
    if len(data) + 2 > MAX_QUOTE_LENGTH:
        room = MAX_QUOTE_LENGTH - 5  # for "..." and CRLF
        cut = room
        while cut and data[cut] & 0xC0 == 0x80:  # never split a UTF-8 character
            cut -= 1
        space = max(data.rfind(b" ", 0, cut + 1), data.rfind(b"\n", 0, cut + 1))
        if space >= room * 3 // 4:
            cut = space
        data = data[:cut].rstrip() + b"..."
    return data + b"\r\n"


class QuoteSource:
    """Where QOTD quotes come from; calling it returns one formatted reply.

    Give at most one of the three sources; with none, the quote is Twisted's
    "An apple a day keeps the doctor away."

    Args:
        quote: A fixed quote.
        quotes_file: A UTF-8 text file of quotes, one per paragraph (paragraphs
            are separated by blank lines). One is chosen at random per call.
            The file is re-read when its size or modification time changes;
            if it then cannot be read or holds no quote, the previous quotes
            are kept (and the problem logged).
        quote_source: A callable returning a quote (str or bytes) per call.
        rng: Chooses among the file's quotes (``random.Random(seed)`` in tests).

    Raises:
        ValueError: More than one source given, or the file holds no quote.
        OSError: The file cannot be read.

    Example:
        >>> QuoteSource(quote="Carpe diem.")()
        b'Carpe diem.\\r\\n'
    """

    def __init__(self, quote: str | bytes | None = None,
                 quotes_file: str | os.PathLike[str] | None = None,
                 quote_source: Callable[[], str | bytes] | None = None,
                 rng: random.Random | None = None) -> None:
        if sum(source is not None for source in (quote, quotes_file, quote_source)) > 1:
            raise ValueError("give at most one of quote, quotes_file and quote_source")
        self.rng = random.Random() if rng is None else rng
        self._fixed = format_quote(_DEFAULT_QUOTE if quote is None else quote)
        self._source = quote_source
        self._path = None if quotes_file is None else os.fspath(quotes_file)
        self._stamp: tuple[int, int] | None = None
        self._quotes: list[bytes] = []
        if self._path is not None:
            self._reload(strict=True)

    def _reload(self, strict: bool) -> None:
        assert self._path is not None
        try:
            stat = os.stat(self._path)
            stamp = (stat.st_mtime_ns, stat.st_size)
            if stamp == self._stamp:
                return
            with open(self._path, encoding="utf-8", errors="replace") as f:
                text = f.read().replace("\r\n", "\n")
        except OSError:
            if strict:
                raise
            log.warning("cannot re-read quotes from %s; keeping the old ones",
                        self._path, exc_info=True)
            return
        quotes = [format_quote(p.strip()) for p in _PARAGRAPHS.split(text) if p.strip()]
        if not quotes:
            if strict:
                raise ValueError(f"no quotes in {self._path}")
            log.warning("%s holds no quotes now; keeping the old ones", self._path)
            return
        self._stamp, self._quotes = stamp, quotes

    def __call__(self) -> bytes:
        """Return the next reply (quote + CRLF, at most ``MAX_QUOTE_LENGTH`` bytes)."""
        if self._source is not None:
            return format_quote(self._source())
        if self._path is not None:
            self._reload(strict=False)
            return self.rng.choice(self._quotes)
        return self._fixed


class QOTD(Protocol):
    """RFC 865 over TCP: send a quote, then close.

    The quote comes from the factory's ``getQuote()`` when it has one (see
    :class:`QOTDFactory`), else from this class's :meth:`getQuote`.
    """

    def connectionMade(self) -> None:
        """Write the quote and close."""
        self.transport.write(self.getQuote())  # type: ignore[union-attr]
        self.transport.loseConnection()  # type: ignore[union-attr]

    def getQuote(self) -> bytes:
        """Return the reply (quote + CRLF); override for a fixed quote, as in Twisted."""
        factory_quote = getattr(self.factory, "getQuote", None)
        if factory_quote is not None:
            return bytes(factory_quote())
        return format_quote(_DEFAULT_QUOTE)


class QOTDFactory(ServerFactory[QOTD]):
    """Builds :class:`QOTD`, quoting from a string, a file or a callable.

    The arguments are those of :class:`QuoteSource`.

    Example:
        >>> from reactor.testing import StringTransport
        >>> proto = QOTDFactory(quote="Less is more.").buildProtocol(None)
        >>> transport = StringTransport(); proto.makeConnection(transport)
        >>> transport.value()
        b'Less is more.\\r\\n'
    """

    protocol = QOTD

    def __init__(self, quote: str | bytes | None = None,
                 quotes_file: str | os.PathLike[str] | None = None,
                 quote_source: Callable[[], str | bytes] | None = None,
                 rng: random.Random | None = None) -> None:
        self.quotes = QuoteSource(quote, quotes_file, quote_source, rng)

    def getQuote(self) -> bytes:
        """Return one reply (a quote, chosen anew for each connection)."""
        return self.quotes()


class QOTDUDP(DatagramProtocol):
    """RFC 865 over UDP: answer each datagram with a quote.

    The arguments are those of :class:`QuoteSource`.
    """

    def __init__(self, quote: str | bytes | None = None,
                 quotes_file: str | os.PathLike[str] | None = None,
                 quote_source: Callable[[], str | bytes] | None = None,
                 rng: random.Random | None = None) -> None:
        self.quotes = QuoteSource(quote, quotes_file, quote_source, rng)

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        """Reply with a quote (the datagram's content is ignored)."""
        self.transport.write(self.quotes(), addr)


class Who(Protocol):
    """RFC 866 (active users), as in Twisted: reports ``users``, one per line, and closes."""

    users: tuple[str, ...] = ("root",)

    def connectionMade(self) -> None:
        """Write the user list and close."""
        self.transport.write(  # type: ignore[union-attr]
            b"".join(user.encode() + b"\r\n" for user in self.users))
        self.transport.loseConnection()  # type: ignore[union-attr]


# --- daytime and time (RFC 867, 868) ---------------------------------------------------

_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December")


def daytime_string(seconds: float) -> str:
    """Format Unix time ``seconds`` in RFC 867's suggested style, in UTC.

    English names whatever the locale (unlike ``strftime``'s ``%A``/``%B``).

    Example:
        >>> daytime_string(0)
        'Thursday, January 01, 1970 00:00:00-UTC'
    """
    t = time.gmtime(seconds)
    return (f"{_DAYS[t.tm_wday]}, {_MONTHS[t.tm_mon - 1]} {t.tm_mday:02d}, {t.tm_year} "
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}-UTC")


TIME_EPOCH_OFFSET = 2208988800
"""Seconds from RFC 868's epoch (1900-01-01 00:00 UTC) to the Unix epoch."""
_WRAP = 2**32


def encode_time(seconds: float) -> bytes:
    """Encode Unix time ``seconds`` as RFC 868's 32-bit big-endian count since 1900.

    The count wraps modulo 2**32 (first on 2036-02-07 06:28:16 UTC); a client
    resolves the era by choosing the value nearest its own idea of now (see
    :func:`decode_time`).

    Example:
        >>> encode_time(2085978496).hex()   # the wrap: 2**32 seconds after 1900
        '00000000'
    """
    return struct.pack("!I", (math.floor(seconds) + TIME_EPOCH_OFFSET) % _WRAP)


def decode_time(data: bytes, near: float | None = None) -> int:
    """Decode an RFC 868 reply to Unix seconds, choosing the 2**32-second era nearest ``near``.

    Args:
        data: The 4 bytes received.
        near: Unix time the answer should be close to (default: now).

    Example:
        >>> decode_time(encode_time(2**31 + 12345), near=2**31)
        2147495993
        >>> decode_time(bytes(4), near=2.1e9)   # just past the 2036 wrap
        2085978496
    """
    (value,) = struct.unpack("!I", data)
    reference = time.time() if near is None else near
    era = round((reference + TIME_EPOCH_OFFSET - value) / _WRAP)
    return int(value + era * _WRAP - TIME_EPOCH_OFFSET)


class Daytime(Protocol):
    """RFC 867 over TCP: send the date and time as text (UTC), then close.

    The time comes from the factory's ``clock`` (see :class:`DaytimeFactory`),
    else from the system clock.
    """

    def connectionMade(self) -> None:
        """Write the time and close."""
        now = _wall_clock(self.factory).seconds()
        self.transport.write(daytime_string(now).encode("ascii") + b"\r\n")  # type: ignore[union-attr]
        self.transport.loseConnection()  # type: ignore[union-attr]


class Time(Protocol):
    """RFC 868 over TCP: send the time as 4 bytes (seconds since 1900), then close.

    The time comes from the factory's ``clock``, else from the system clock.
    """

    def connectionMade(self) -> None:
        """Write the time and close."""
        self.transport.write(encode_time(_wall_clock(self.factory).seconds()))  # type: ignore[union-attr]
        self.transport.loseConnection()  # type: ignore[union-attr]


class DaytimeFactory(ServerFactory[Daytime]):
    """Builds :class:`Daytime`.

    Args:
        clock: ``clock.seconds()`` gives Unix time (a test ``Clock``); None: the system's.
    """

    protocol = Daytime

    def __init__(self, clock: WallClock | None = None) -> None:
        self.clock = clock


class TimeFactory(ServerFactory[Time]):
    """Builds :class:`Time`.

    Args:
        clock: ``clock.seconds()`` gives Unix time (a test ``Clock``); None: the system's.
    """

    protocol = Time

    def __init__(self, clock: WallClock | None = None) -> None:
        self.clock = clock


class DaytimeUDP(DatagramProtocol):
    """RFC 867 over UDP: answer each datagram with the date and time.

    Args:
        clock: ``clock.seconds()`` gives Unix time; None: the system's.
    """

    def __init__(self, clock: WallClock | None = None) -> None:
        self.clock = clock

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        """Reply with the time as text."""
        now = _wall_clock(self).seconds()
        self.transport.write(daytime_string(now).encode("ascii") + b"\r\n", addr)


class TimeUDP(DatagramProtocol):
    """RFC 868 over UDP: answer each datagram with the time as 4 bytes.

    Args:
        clock: ``clock.seconds()`` gives Unix time; None: the system's.
    """

    def __init__(self, clock: WallClock | None = None) -> None:
        self.clock = clock

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        """Reply with the time as 4 bytes."""
        self.transport.write(encode_time(_wall_clock(self).seconds()), addr)
