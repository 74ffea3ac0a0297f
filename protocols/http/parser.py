"""Sans-I/O HTTP/1.x parsing over httptools (llhttp, strict mode).

Bytes in, events out: :meth:`RequestParser.feed` takes whatever the transport
delivered and returns the events it completed, in order::

    parser = RequestParser()
    for event in parser.feed(data):
        match event:
            case RequestHead(): ...
            case BodyData(data=chunk): ...
            case EndOfMessage(): ...
            case Upgrade(data=rest): ...     # hand ``rest`` to the new protocol
            case ParseError(status_code=code): ...  # answer ``code``, then close

No transport, reactor or deferred is involved, so both reactors reuse it and
the tests need only bytes.

Strictness: no llhttp leniency flag is enabled.  llhttp itself rejects
Content-Length together with Transfer-Encoding, duplicate Content-Length (even
equal duplicates: a proxy may pick either copy, so we never guess), invalid
Content-Length, bad chunk sizes, control characters in header values, obs-fold,
whitespace before the colon and invalid header names.  On top of llhttp this
module rejects Transfer-Encoding in HTTP/1.0 messages (400: RFC 9112 §6.1 says
their framing is faulty; rejecting is the safe reading) and transfer codings
other than a single final ``chunked`` (501, RFC 9112 §6.1), and enforces the
size limits in :class:`Limits`.

After a :class:`ParseError` the parser refuses further input: every later
:meth:`feed` returns the same error again and parses nothing.

Events are named tuples: immutable, cheap to make (a frozen dataclass costs
three times more, and a server makes two or three per request).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, NamedTuple, TypeAlias

import httptools

__all__ = [
    "BodyData",
    "EndOfMessage",
    "Event",
    "Limits",
    "ParseError",
    "RequestHead",
    "RequestParser",
    "ResponseHead",
    "ResponseParser",
    "Upgrade",
]

Headers: TypeAlias = list[tuple[bytes, bytes]]


class RequestHead(NamedTuple):
    """The request line and headers of one request.

    Attributes:
        method: The method, e.g. ``b"GET"``.
        target: The request target as sent, e.g. ``b"/a?b=c"``.
        version: ``b"1.0"`` or ``b"1.1"``.
        headers: ``(name, value)`` pairs, names lower-cased, order and
            duplicates kept.
        keep_alive: Whether the connection may carry another request
            (RFC 9112 §9.3).
        chunked: Whether the body uses chunked transfer coding.
        content_length: The declared body length, or ``None``.
        expect_continue: Whether the client sent ``Expect: 100-continue``.
        upgrade: Whether an :class:`Upgrade` event follows (Upgrade header
            or CONNECT).
    """

    method: bytes
    target: bytes
    version: bytes
    headers: Headers
    keep_alive: bool
    chunked: bool
    content_length: int | None
    expect_continue: bool
    upgrade: bool


class ResponseHead(NamedTuple):
    """The status line and headers of one response.

    Attributes:
        status: The status code, e.g. ``200``.
        reason: The reason phrase as sent.
        version: ``b"1.0"`` or ``b"1.1"``.
        headers: ``(name, value)`` pairs, names lower-cased.
        keep_alive: Whether the connection may carry another response.
        chunked: Whether the body uses chunked transfer coding.
        content_length: The declared body length, or ``None``.
        upgrade: Whether an :class:`Upgrade` event follows (101).
    """

    status: int
    reason: bytes
    version: bytes
    headers: Headers
    keep_alive: bool
    chunked: bool
    content_length: int | None
    upgrade: bool


class BodyData(NamedTuple):
    """A piece of the message body (chunk framing already removed)."""

    data: bytes


class EndOfMessage(NamedTuple):
    """The message is complete; ``trailers`` holds chunked trailer fields."""

    trailers: Headers


class Upgrade(NamedTuple):
    """The connection switches protocol; parsing has stopped.

    Attributes:
        protocol: The Upgrade header value, or ``b"CONNECT"`` for a tunnel.
        data: The bytes after the message: they belong to the new protocol.
    """

    protocol: bytes
    data: bytes


class ParseError(NamedTuple):
    """The peer sent something we refuse; the connection must close.

    Attributes:
        status_code: The status to answer with (400, 413, 414, 431, 501).
        reason: A short human-readable cause (do not echo peer bytes raw).
    """

    status_code: int
    reason: str


Event: TypeAlias = (
    RequestHead | ResponseHead | BodyData | EndOfMessage | Upgrade | ParseError
)


@dataclass(frozen=True, slots=True)
class Limits:
    """Size limits; each breach gives a :class:`ParseError`.

    Attributes:
        max_request_line: Longest request target in bytes (414).
        max_header_bytes: Total bytes of header names and values (431).
        max_header_count: Most header fields (431).
        max_body: Largest body in bytes, or ``None`` for no limit (413).
    """

    max_request_line: int = 8 * 1024
    max_header_bytes: int = 64 * 1024
    max_header_count: int = 100
    max_body: int | None = None


DEFAULT_LIMITS: Final = Limits()


# Named tuples made on the hot path skip their Python-level __new__ (a
# function call with keyword handling): tuple.__new__ with the field tuple
# builds the same object in half the time.
_new_tuple: Final = tuple.__new__

# llhttp's version strings as the bytes events carry.
_VERSIONS: Final = {"1.1": b"1.1", "1.0": b"1.0"}

# Header fields the parser itself acts on (framing, 100-continue, upgrades).
_SPECIAL_FIELDS: Final = frozenset(
    {b"content-length", b"transfer-encoding", b"expect", b"upgrade"})


class _Reject(Exception):
    """Raised inside a callback to stop llhttp; carries the error event."""

    def __init__(self, error: ParseError) -> None:
        super().__init__(error.reason)
        self.error = error


# States of the parser, ints because they are compared on the hot path.
_HEAD: Final = 0      # between messages or reading a head
_BODY: Final = 1      # head done, reading the body or trailers
_CLOSED: Final = 2    # the last message ended the connection; input ignored
_FAILED: Final = 3    # a ParseError was emitted; input refused
_UPGRADED: Final = 4  # an Upgrade was emitted; input belongs elsewhere


class _Parser:
    """Shared machinery: llhttp callbacks that append events to a list."""

    _llhttp: httptools.HttpRequestParser | httptools.HttpResponseParser

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        # Read on every header; Limits is frozen, so these cannot go stale.
        self._max_header_bytes = limits.max_header_bytes
        self._max_header_count = limits.max_header_count
        # The few fields framing and upgrades depend on, gathered as headers
        # arrive so the head is not scanned a second time.
        self._special: Headers = []
        self._events: list[Event] = []
        self._state = _HEAD
        self._error: ParseError | None = None
        self._headers: Headers = []
        self._header_bytes = 0
        self._head_fed = 0
        self._body_seen = 0
        self._in_head = False
        self._content_length: int | None = None
        self._chunked = False
        self._upgrade_protocol = b""

    # -- public ---------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once the parser accepts no more messages."""
        return self._state >= _CLOSED

    @property
    def in_head(self) -> bool:
        """True while a message head has begun arriving but is not complete.

        The server uses it to tell an idle keep-alive connection (no byte of
        the next request yet) from one trickling a head (slowloris).
        """
        return self._in_head

    def feed(self, data: bytes) -> list[Event]:
        """Parse ``data`` and return the events it completed, in order.

        Pipelined messages in one buffer are all parsed.  The list ends early
        with a :class:`ParseError` or an :class:`Upgrade` when one occurs.

        Args:
            data: Bytes as received from the peer (any split is fine).

        Returns:
            The completed events.

        Raises:
            RuntimeError: If called after an :class:`Upgrade`.
        """
        state = self._state
        if state != _HEAD and state != _BODY:
            if state == _FAILED:
                assert self._error is not None
                return [self._error]
            if state == _UPGRADED:
                raise RuntimeError("parser upgraded: bytes belong elsewhere")
            return []  # after Connection: close, RFC 9112 §9.6: ignore
        events: list[Event] = []
        self._events = events
        if self._in_head:
            # A head spanning feeds: every byte of this feed up to the end of
            # the head is head.  httptools buffers partial header values
            # itself, so this bounds what a trickling peer makes us hold.
            self._head_fed += len(data)
        try:
            self._llhttp.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            self._state = _UPGRADED
            events.append(Upgrade(self._upgrade_protocol, data[exc.args[0]:]))
        except httptools.HttpParserError as exc:
            if self._state == _CLOSED:
                pass  # llhttp's "data after Connection: close": ignored
            elif isinstance(exc.__context__, _Reject):
                self._fail(exc.__context__.error)
            else:
                self._fail(ParseError(400, str(exc) or "malformed message"))
        else:
            if self._in_head and self._head_fed > self._head_budget():
                self._fail(ParseError(431, "request header fields too large"))
        return events

    # -- internals ------------------------------------------------------------

    def _head_budget(self) -> int:
        return self.limits.max_header_bytes + self.limits.max_request_line

    def _fail(self, error: ParseError) -> None:
        self._state = _FAILED
        self._error = error
        self._events.append(error)

    def _reject(self, status_code: int, reason: str) -> _Reject:
        return _Reject(ParseError(status_code, reason))

    def on_message_begin(self) -> None:
        self._in_head = True
        self._head_fed = 0
        self._headers = []
        self._special = []
        self._header_bytes = 0
        self._body_seen = 0

    def on_header(self, name: bytes, value: bytes) -> None:
        headers = self._headers
        if self._state == _BODY:
            # After the head, on_header reports chunked trailer fields.
            headers.append((name.lower(), value))
            return
        self._header_bytes += len(name) + len(value) + 4
        if self._header_bytes > self._max_header_bytes:
            raise self._reject(431, "request header fields too large")
        if len(headers) >= self._max_header_count:
            raise self._reject(431, "too many header fields")
        name = name.lower()
        headers.append((name, value))
        if name in _SPECIAL_FIELDS:
            self._special.append((name, value))

    def _framing(self, version: bytes) -> tuple[bool, int | None]:
        """Work out chunked/content-length from the head, or reject it."""
        chunked = False
        length: int | None = None
        codings: list[bytes] = []
        for name, value in self._special:
            if name == b"content-length":
                # llhttp already refused duplicates and non-digits.
                length = int(value)
            elif name == b"transfer-encoding":
                codings.extend(c.strip().lower() for c in value.split(b","))
        if codings:
            if version == b"1.0":
                raise self._reject(400, "Transfer-Encoding in HTTP/1.0")
            if codings[-1] != b"chunked" or codings.count(b"chunked") > 1:
                raise self._reject(400, "chunked must be the final coding")
            if len(codings) > 1:
                raise self._reject(501, "unsupported transfer coding")
            chunked = True
        max_body = self.limits.max_body
        if max_body is not None and length is not None and length > max_body:
            raise self._reject(413, "content too large")
        return chunked, length

    def on_body(self, body: bytes) -> None:
        max_body = self.limits.max_body
        if max_body is not None:
            # Content-Length was checked up front; this catches chunked and
            # read-until-close bodies as they grow.
            self._body_seen += len(body)
            if self._body_seen > max_body:
                raise self._reject(413, "content too large")
        self._events.append(_new_tuple(BodyData, (body,)))

    def on_message_complete(self) -> None:
        # self._headers is not reset here: on_message_begin does it.
        trailers = self._headers if self._state == _BODY else []
        self._events.append(_new_tuple(EndOfMessage, (trailers,)))
        self._in_head = False
        self._state = _HEAD if self._llhttp.should_keep_alive() else _CLOSED
        if self._upgrade_protocol:
            self._state = _HEAD  # llhttp pauses next and raises the upgrade


class RequestParser(_Parser):
    """Server side: parses requests.

    Args:
        limits: Size limits; the defaults are safe for a public server.
    """

    def __init__(self, limits: Limits = DEFAULT_LIMITS) -> None:
        super().__init__(limits)
        self._target = b""
        self._llhttp = self._request_llhttp = httptools.HttpRequestParser(self)

    def on_message_begin(self) -> None:
        # _Parser.on_message_begin, inlined: this runs for every request.
        self._in_head = True
        self._head_fed = 0
        self._headers = []
        self._special = []
        self._header_bytes = 0
        self._body_seen = 0
        self._target = b""

    def on_url(self, url: bytes) -> None:
        # Usually one call; several only when the target spans feeds.
        target = self._target + url if self._target else url
        if len(target) > self.limits.max_request_line:
            raise self._reject(414, "URI too long")
        self._target = target

    def on_headers_complete(self) -> None:
        llhttp = self._request_llhttp
        # httptools formats the version with str.format on every call: once.
        text = llhttp.get_http_version()
        version = _VERSIONS.get(text) or text.encode("ascii")
        method = llhttp.get_method()
        upgrade = llhttp.should_upgrade() or method == b"CONNECT"
        special = self._special
        if not special and not upgrade:
            # Most heads have no framing fields: no body, nothing to check.
            self._events.append(_new_tuple(RequestHead, (
                method, self._target, version, self._headers,
                llhttp.should_keep_alive(), False, None, False, False)))
        else:
            chunked, length = self._framing(version) if special else (False, None)
            expect = False
            protocol = b""
            for name, value in special:
                if name == b"expect":
                    expect = value.lower() == b"100-continue"
                elif name == b"upgrade":
                    protocol = value
            if upgrade:
                self._upgrade_protocol = protocol or b"CONNECT"
            self._events.append(_new_tuple(RequestHead, (
                method, self._target, version, self._headers,
                llhttp.should_keep_alive(), chunked, length, expect, upgrade)))
        self._headers = []  # trailers, if any, go in a fresh list
        self._state = _BODY
        self._in_head = False


class ResponseParser(_Parser):
    """Client side: parses responses.

    Args:
        limits: Size limits.
        head: Set to True while the response answers a HEAD request, so that
            it has no body whatever its Content-Length says (RFC 9110 §9.3.2).
            Settable between responses.
    """

    def __init__(self, limits: Limits = DEFAULT_LIMITS, *, head: bool = False) -> None:
        super().__init__(limits)
        self.head = head
        self._reason = b""
        self._pending = b""
        self._llhttp = httptools.HttpResponseParser(self)

    def feed(self, data: bytes) -> list[Event]:
        """Parse ``data``; see :meth:`_Parser.feed`.

        A response to HEAD is handled by hand: llhttp would wait for the body
        that Content-Length announces, and httptools cannot tell it to skip
        it, so the head is cut at the blank line and the parser replaced.
        """
        if not self.head or self._state != _HEAD:
            return super().feed(data)
        buffered = self._pending + data
        end = buffered.find(b"\r\n\r\n")
        if end < 0:
            self._pending = buffered
            if len(buffered) > self._head_budget():
                self._fail(ParseError(431, "response header fields too large"))
                return [self._error] if self._error else []
            return []
        self._pending = b""
        events = super().feed(buffered[: end + 4])
        if self._state == _BODY:  # head parsed; it has no body
            events.append(EndOfMessage([]))
            self._state = _HEAD
            self._in_head = False
            self.head = False  # one HEAD at a time; the caller sets it again
            self._llhttp = httptools.HttpResponseParser(self)
            rest = buffered[end + 4 :]
            if rest:
                events.extend(self.feed(rest))
        return events

    def feed_eof(self) -> list[Event]:
        """Tell the parser the peer closed; ends a read-until-close body.

        Returns:
            ``[EndOfMessage]`` if a body delimited by close ends here, a
            :class:`ParseError` if a message was cut short, else ``[]``.
        """
        if self._state == _BODY:
            if self._content_length is None and not self._chunked:
                self._state = _CLOSED
                return [EndOfMessage([])]
            self._events = []
            self._fail(ParseError(400, "message truncated"))
            return self._events
        if self._in_head:
            self._events = []
            self._fail(ParseError(400, "message truncated"))
            return self._events
        return []

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._reason = b""

    def on_status(self, reason: bytes) -> None:
        self._reason = self._reason + reason if self._reason else reason
        if len(self._reason) > self.limits.max_request_line:
            raise self._reject(400, "reason phrase too long")

    def on_headers_complete(self) -> None:
        llhttp = self._llhttp
        assert isinstance(llhttp, httptools.HttpResponseParser)
        version = llhttp.get_http_version().encode("ascii")
        chunked, length = self._framing(version)
        self._chunked = chunked
        self._content_length = length
        status = llhttp.get_status_code()
        upgrade = status == 101
        protocol = b""
        if upgrade:
            for name, value in self._special:
                if name == b"upgrade":
                    protocol = value
            self._upgrade_protocol = protocol or b"unknown"
        self._events.append(
            ResponseHead(
                status,
                self._reason,
                version,
                self._headers,
                llhttp.should_keep_alive(),
                chunked,
                length,
                upgrade,
            )
        )
        self._headers = []  # trailers, if any, go in a fresh list
        self._state = _BODY
        self._in_head = False
