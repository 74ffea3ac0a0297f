"""Agents that wrap an agent: redirects and content decoding (as Twisted's).

Each takes an agent and offers the same ``request(method, uri, headers,
bodyProducer)``, so they stack::

    agent = ContentDecoderAgent(
        BrowserLikeRedirectAgent(Agent(reactor, pool=pool)),
        [(b"gzip", GzipDecoder), (b"deflate", DeflateDecoder)])
"""

from __future__ import annotations

import zlib
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Final
from urllib.parse import urljoin, urlsplit

from deferred import Deferred, Failure
from protocols.base import Protocol

from ._client_errors import (
    DecompressionLimitError,
    PageRedirect,
    RedirectLimitError,
    RedirectWithNoLocation,
    ResponseDone,
    ResponseFailed,
    ResponseParseError,
)
from ._client_protocol import RESPONSE_DONE, UNKNOWN_LENGTH, Response
from .server import Headers

__all__ = [
    "BrowserLikeRedirectAgent",
    "ContentDecoderAgent",
    "DeflateDecoder",
    "GzipDecoder",
    "RedirectAgent",
]

_REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})
#: Headers that must not follow a redirect to another origin (credentials).
_SENSITIVE: Final = frozenset({b"authorization", b"cookie", b"cookie2",
                               b"proxy-authorization", b"www-authenticate"})


def _copy(headers: Headers | None) -> Headers:
    copied = Headers()
    fields = getattr(headers, "_fields", None)
    if fields is not None:  # our Headers: copied by its dict, not field by field
        copied._fields = {key: (name, list(values)) for key, (name, values) in fields.items()}
    elif headers is not None:
        for name, values in headers.getAllRawHeaders():
            copied.setRawHeaders(name, values)
    return copied


def _origin(uri: bytes) -> tuple[bytes, bytes | None, int | None]:
    parts = urlsplit(uri)
    default = 443 if parts.scheme.lower() == b"https" else 80
    return parts.scheme.lower(), parts.hostname, parts.port or default


#: A redirect body longer than this is not read to the end: its connection is
#: closed instead of being kept for reuse.
_DISCARD_LIMIT: Final = 64 * 1024


class _Discard(Protocol):
    """Reads a redirect's body and drops it, so its connection can be reused;
    ``done`` fires when the body has ended (however it ended)."""

    transport: Any = None

    def __init__(self) -> None:
        self.done: Deferred[None] = Deferred()
        self._seen = 0

    def dataReceived(self, data: bytes) -> None:
        """Count and drop; give up on bodies too long to be worth reading."""
        self._seen += len(data)
        if self._seen > _DISCARD_LIMIT and self.transport is not None:
            self.transport.stopProducing()

    def connectionLost(self, reason: Failure = RESPONSE_DONE) -> None:
        """The body ended: the next request may go (on the same connection)."""
        if not self.done.called:
            self.done.callback(None)


class RedirectAgent:
    """Follows redirects (Twisted's ``RedirectAgent``).

    303 turns any method into GET (HEAD stays HEAD). 301, 302, 307 and 308
    are followed for GET and HEAD; for other methods they fail with
    ``ResponseFailed([PageRedirect])``, except 307/308 when the body can be
    sent again (a producer with ``replay()``, as the convenience functions
    use). Credentials headers are dropped when a redirect leaves the origin.

    The final response's ``previousResponse`` chain holds each redirect
    response (code, headers, ``request.absoluteURI``); their bodies are read
    and discarded so the connections are reused.

    Args:
        agent: The agent to send each request with.
        redirectLimit: Most redirects followed; one more fails with
            ``ResponseFailed([RedirectLimitError])`` (an
            ``InfiniteRedirection``).
        sensitiveHeaderNames: More header names to drop across origins.
    """

    _redirectToGet: frozenset[int] = frozenset({303})

    def __init__(self, agent: Any, redirectLimit: int = 20,
                 sensitiveHeaderNames: Sequence[bytes] = ()) -> None:
        self._agent = agent
        self._redirectLimit = redirectLimit
        self._sensitive = _SENSITIVE | {name.lower() for name in sensitiveHeaderNames}

    def request(self, method: bytes, uri: bytes, headers: Headers | None = None,
                bodyProducer: Any = None) -> Deferred[Response]:
        """Send the request, following redirects; see ``Agent.request``."""
        d: Deferred[Response] = self._agent.request(method, uri, headers, bodyProducer)
        d.addCallback(self._handleResponse, method, uri, headers, bodyProducer, 0)
        return d

    def _handleResponse(self, response: Response, method: bytes, uri: bytes,
                        headers: Headers | None, bodyProducer: Any,
                        redirectCount: int) -> Response | Deferred[Response]:
        code = response.code
        if code not in _REDIRECTS:
            return response
        if code in self._redirectToGet:
            if method != b"HEAD":
                method = b"GET"
            bodyProducer = None
            headers = _copy(headers)
            for name in (b"content-type", b"content-length", b"content-encoding",
                         b"transfer-encoding"):
                headers.removeHeader(name)
        elif method not in (b"GET", b"HEAD"):
            replay = getattr(bodyProducer, "replay", None)
            if code in (307, 308) and (bodyProducer is None or replay is not None):
                bodyProducer = replay() if replay is not None else None
            else:
                location = (response.headers.getRawHeaders(b"location") or [b""])[0]
                raise ResponseFailed([Failure(PageRedirect(
                    code, b"not redirecting a " + method + b" request", location,
                    response))], response)
        return self._handleRedirect(response, method, uri, headers, bodyProducer,
                                    redirectCount)

    def _handleRedirect(self, response: Response, method: bytes, uri: bytes,
                        headers: Headers | None, bodyProducer: Any,
                        redirectCount: int) -> Deferred[Response]:
        if redirectCount >= self._redirectLimit:
            raise ResponseFailed([Failure(RedirectLimitError(
                response.code, b"Infinite redirection detected", uri, response))], response)
        locations = response.headers.getRawHeaders(b"location") or []
        if not locations or not locations[0].strip():
            raise ResponseFailed([Failure(RedirectWithNoLocation(
                response.code, b"No location header field", uri))], response)
        location = urljoin(uri, locations[0].strip()).partition(b"#")[0]
        discard = _Discard()
        response.deliverBody(discard)
        if headers is not None and _origin(location) != _origin(uri):
            headers = _copy(headers)
            for name in self._sensitive:
                headers.removeHeader(name)

        def chain(new: Response) -> Response:
            new.setPreviousResponse(response)
            return new

        def follow(_: object) -> Deferred[Response]:
            result: Deferred[Response] = self._agent.request(method, location, headers,
                                                             bodyProducer)
            return result

        # Follow once the redirect's body is read, so its connection is reused.
        d: Deferred[Response] = discard.done.addCallback(follow)
        d.addCallback(chain)
        d.addCallback(self._handleResponse, method, location, headers, bodyProducer,
                      redirectCount + 1)
        return d


class BrowserLikeRedirectAgent(RedirectAgent):
    """Redirects as browsers do: 301, 302 and 303 turn any method into GET.

    307 and 308 keep the method (see :class:`RedirectAgent`).
    """

    _redirectToGet = frozenset({301, 302, 303})


class ContentDecoderAgent:
    """Asks for compressed responses and decodes them (Twisted's name).

    Sends ``Accept-Encoding`` with the decoders' names; a response whose
    ``Content-Encoding`` names them is wrapped by the decoders (last coding
    first), its ``Content-Encoding`` header removed and its length unknown.

    Args:
        agent: The agent to wrap.
        decoders: ``(coding, factory)`` pairs, e.g. ``[(b"gzip", GzipDecoder)]``;
            ``factory(response)`` returns the decoding response.
    """

    def __init__(self, agent: Any,
                 decoders: Sequence[tuple[bytes, Callable[[Any], Any]]]) -> None:
        self._agent = agent
        self._decoders = {name.lower(): factory for name, factory in decoders}
        self._supported = b",".join(name for name, _ in decoders)

    def request(self, method: bytes, uri: bytes, headers: Headers | None = None,
                bodyProducer: Any = None) -> Deferred[Any]:
        """Send the request with ``Accept-Encoding``; decode the response."""
        sent = _copy(headers)
        sent.setRawHeaders(b"Accept-Encoding", [self._supported])
        d: Deferred[Any] = self._agent.request(method, uri, sent, bodyProducer)
        d.addCallback(self._handleResponse)
        return d

    def _handleResponse(self, response: Any) -> Any:
        if response.length == 0:
            return response  # HEAD, 204, 304 or empty: nothing to decode
        values = response.headers.getRawHeaders(b"content-encoding") or []
        codings = [c.strip().lower() for v in values for c in v.split(b",") if c.strip()]
        if not codings or codings[-1] not in self._decoders:
            return response
        while codings and codings[-1] in self._decoders:
            response = self._decoders[codings.pop()](response)
        if codings:
            response.headers.setRawHeaders(b"content-encoding", [b",".join(codings)])
        else:
            response.headers.removeHeader(b"content-encoding")
        return response


#: Output produced per ``decompress`` call: bounds memory for a decompression bomb.
_PIECE = 64 * 1024


class _DecodedResponse:
    """A response whose body is decompressed on its way to ``deliverBody``.

    Args:
        response: The compressed response.
        maxSize: Fail the body with ``DecompressionLimitError`` past this many
            decoded bytes (None: no limit).
    """

    _wbits = 16 + zlib.MAX_WBITS

    def __init__(self, response: Any, maxSize: int | None = None) -> None:
        self.original = response
        self.maxSize = maxSize
        self.version = response.version
        self.code = response.code
        self.phrase = response.phrase
        self.headers = _copy(response.headers)
        self.length = UNKNOWN_LENGTH
        self.request = response.request
        self.previousResponse = response.previousResponse

    def setPreviousResponse(self, response: Any) -> None:
        """Record the redirect response that led here."""
        self.previousResponse = response

    def deliverBody(self, protocol: Any) -> None:
        """Deliver the decoded body to ``protocol`` (see ``Response.deliverBody``)."""
        self.original.deliverBody(_DecodingProtocol(protocol, self._wbits, self.maxSize))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {self.original!r}>"


class GzipDecoder(_DecodedResponse):
    """Decodes a ``gzip`` body (Twisted's ``GzipDecoder``), streaming."""


class DeflateDecoder(_DecodedResponse):
    """Decodes a ``deflate`` body: zlib format, or raw deflate as some servers send."""

    _wbits = zlib.MAX_WBITS


class _DecodingProtocol(Protocol):
    """Sits between the response and the user's body protocol, inflating.

    It honours the user's pause: compressed input not yet inflated waits
    while the user protocol is paused (one small input can inflate a lot).
    """

    def __init__(self, protocol: Any, wbits: int, maxSize: int | None) -> None:
        self._protocol = protocol
        self._wbits = wbits
        self._inflater = zlib.decompressobj(wbits)
        self._maxSize = maxSize
        self._produced = 0
        self._consumed = 0  # compressed bytes seen
        self._pending: deque[bytes] = deque()
        self._paused = False
        self._error: Failure | None = None
        self._final: Failure | None = None
        self._done = False
        self._upstream: Any = None

    def makeConnection(self, transport: Any) -> None:
        """Give the user protocol a transport whose pause also holds our backlog."""
        self._upstream = transport
        self.transport = transport
        self._protocol.makeConnection(_DecodingTransport(self))

    def dataReceived(self, data: bytes) -> None:
        """Compressed bytes in: inflate them unless the user protocol is paused."""
        self._consumed += len(data)
        self._pending.append(data)
        self._pump()

    def connectionLost(self, reason: Failure = RESPONSE_DONE) -> None:
        """The compressed body ended: flush, check the stream ended, pass it on."""
        if self._error is not None:
            reason = Failure(ResponseFailed([self._error]))
        self._final = reason
        self._pump()

    def _pump(self) -> None:
        while self._pending and not self._paused and self._error is None:
            data = self._pending.popleft()
            try:
                out = self._inflate(data)
            except zlib.error as e:
                self._fail(ResponseParseError(f"bad compressed body: {e}"))
                return
            if out:
                self._produced += len(out)
                if self._maxSize is not None and self._produced > self._maxSize:
                    self._fail(DecompressionLimitError(self._maxSize))
                    return
                self._protocol.dataReceived(out)
            tail = self._inflater.unconsumed_tail
            if tail:
                self._pending.appendleft(tail)
        if self._final is not None and not self._pending and not self._done:
            self._finish()

    def _inflate(self, data: bytes) -> bytes:
        try:
            return self._inflater.decompress(data, _PIECE)
        except zlib.error:
            if self._wbits != zlib.MAX_WBITS or self._produced or self._inflater.eof:
                raise
            # "deflate" sent as raw deflate (no zlib header), as some servers do.
            self._wbits = -zlib.MAX_WBITS
            self._inflater = zlib.decompressobj(self._wbits)
            return self._inflater.decompress(data, _PIECE)

    def _finish(self) -> None:
        self._done = True
        reason = self._final
        assert reason is not None
        if reason.check(ResponseDone) and self._error is None:
            try:
                rest = self._inflater.flush()
            except zlib.error as e:
                rest = b""
                reason = Failure(ResponseFailed([Failure(ResponseParseError(str(e)))]))
            if rest:
                self._protocol.dataReceived(rest)
            if self._consumed and not self._inflater.eof and self._wbits > 0:
                reason = Failure(ResponseFailed([Failure(ResponseParseError(
                    "the compressed body is truncated"))]))
        self._protocol.connectionLost(reason)

    def _fail(self, error: Exception) -> None:
        self._error = Failure(error)
        self._pending.clear()
        if self._final is None and self._upstream is not None:
            self._upstream.stopProducing()  # comes back as connectionLost
        else:
            self._final = Failure(ResponseFailed([self._error]))
            if not self._done:
                self._done = True
                self._protocol.connectionLost(self._final)

    def _pause(self) -> None:
        self._paused = True
        self._upstream.pauseProducing()

    def _resume(self) -> None:
        self._paused = False
        self._pump()
        if not self._paused and not self._done:
            self._upstream.resumeProducing()


class _DecodingTransport:
    """The user protocol's transport under a decoder."""

    def __init__(self, decoder: _DecodingProtocol) -> None:
        self._decoder = decoder

    def pauseProducing(self) -> None:
        """Deliver nothing more until :meth:`resumeProducing`."""
        self._decoder._pause()

    def resumeProducing(self) -> None:
        """Deliver again."""
        self._decoder._resume()

    def stopProducing(self) -> None:
        """Abandon the body."""
        self._decoder._upstream.stopProducing()

    loseConnection = stopProducing
