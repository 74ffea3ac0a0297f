"""The HTTP/1.1 server core: :class:`Site`, :class:`HTTPChannel` and :class:`Request`.

``Site(root)`` is a factory: listen with it and every connection gets an
:class:`HTTPChannel`, which feeds received bytes to the sans-I/O
:class:`~protocols.http.parser.RequestParser` and turns its events into
:class:`Request` objects::

    from protocols.http import Resource, Site

    class Hello(Resource):
        isLeaf = True
        async def render_GET(self, request):
            return b"hello"

    reactor.listenTCP(8080, Site(Hello()))

Flow of one request: the head arrives -> a ``Request`` is built and the
resource located at once (so a resource is known before any body is read);
the body is buffered into ``request.content``; once it is complete, and every
earlier request on the connection has been answered, the resource renders.
Responses therefore leave strictly in request order (pipelining), and only a
bounded number of requests is queued before the channel stops reading.

Not here yet: bodies spooled to disk above a threshold (``content`` is a
``BytesIO``), streaming request bodies, producers for responses,
multipart forms, cookies, header-read/body-read timeouts, graceful shutdown.
"""

from __future__ import annotations

import collections
import email.utils
import http
import io
import logging
import time
from collections.abc import Iterator
from typing import Any, Final
from urllib.parse import parse_qs, unquote_to_bytes, urlsplit

from deferred import Deferred, Failure, ensureDeferred
from protocols.base import Protocol, ServerFactory, connectionDone
from protocols.policies import TimeoutMixin

from .parser import (
    BodyData,
    EndOfMessage,
    Limits,
    ParseError,
    RequestHead,
    RequestParser,
    Upgrade,
)
from .resource import NOT_DONE_YET, ErrorPage, IResource, getChildForRequest

__all__ = ["HTTPChannel", "Headers", "Request", "Site"]

log = logging.getLogger("protocols.http")
accessLog = logging.getLogger("protocols.http.access")

SERVER_HEADER: Final = b"Torsion"

# Status codes whose responses never carry a body (RFC 9110 §6.4.1).
_NO_BODY_CODES: Final = frozenset({204, 304})


def _reason(code: int) -> bytes:
    try:
        return http.HTTPStatus(code).phrase.encode("ascii")
    except ValueError:
        return b"Unknown Status"


_date_cache: tuple[int, bytes] = (0, b"")


def _http_date() -> bytes:
    """The ``Date`` header value, formatted at most once per second."""
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, email.utils.formatdate(now, usegmt=True).encode("ascii"))
    return _date_cache[1]


def _name(name: bytes | str) -> bytes:
    return name.encode("latin-1") if isinstance(name, str) else name


class Headers:
    """Case-insensitive, multi-valued HTTP header fields.

    Names keep the spelling they were first set with (for output); lookups
    ignore case. Values are bytes; ``str`` names are accepted and encoded.

    Example:
        >>> h = Headers()
        >>> h.addRawHeader(b"Set-Cookie", b"a=1")
        >>> h.addRawHeader(b"set-cookie", b"b=2")
        >>> h.getRawHeaders(b"SET-COOKIE")
        [b'a=1', b'b=2']
    """

    def __init__(self, rawHeaders: list[tuple[bytes, bytes]] | None = None) -> None:
        self._fields: dict[bytes, tuple[bytes, list[bytes]]] = {}
        for name, value in rawHeaders or ():
            self.addRawHeader(name, value)

    def hasHeader(self, name: bytes | str) -> bool:
        """Whether a field called ``name`` is present."""
        return _name(name).lower() in self._fields

    def getRawHeaders(
        self, name: bytes | str, default: list[bytes] | None = None
    ) -> list[bytes] | None:
        """All values of ``name`` in order, or ``default`` when absent."""
        field = self._fields.get(_name(name).lower())
        return list(field[1]) if field is not None else default

    def setRawHeaders(self, name: bytes | str, values: list[bytes]) -> None:
        """Replace every value of ``name`` with ``values``."""
        raw = _name(name)
        self._fields[raw.lower()] = (raw, list(values))

    def addRawHeader(self, name: bytes | str, value: bytes) -> None:
        """Append ``value`` to the values of ``name``."""
        raw = _name(name)
        field = self._fields.get(raw.lower())
        if field is None:
            self._fields[raw.lower()] = (raw, [value])
        else:
            field[1].append(value)

    def removeHeader(self, name: bytes | str) -> None:
        """Remove every value of ``name`` (no error if absent)."""
        self._fields.pop(_name(name).lower(), None)

    def getAllRawHeaders(self) -> Iterator[tuple[bytes, list[bytes]]]:
        """Yield ``(name, values)`` for each field, names as first spelled."""
        for raw, values in self._fields.values():
            yield raw, list(values)

    def __repr__(self) -> str:
        return f"Headers({dict(self.getAllRawHeaders())!r})"


def _check_header_value(value: bytes) -> bytes:
    # A CR or LF in a value would let a handler (or data it echoes) inject
    # headers or a whole response: refuse rather than send it.
    if b"\r" in value or b"\n" in value:
        raise ValueError(f"header value contains CR or LF: {value!r}")
    return value


class Request:
    """One HTTP request and the response being built for it.

    Attributes:
        method: The method, e.g. ``b"GET"``.
        uri: The request target as sent, e.g. ``b"/a/b?x=1"``.
        path: The path part of ``uri`` (no query), still percent-encoded.
        args: Query (and urlencoded form body) arguments: name -> values.
        prepath: Path segments already consumed by traversal.
        postpath: Path segments left (decoded); a leaf sees its rest here.
        clientproto: ``b"HTTP/1.0"`` or ``b"HTTP/1.1"``.
        requestHeaders: The request's :class:`Headers`.
        responseHeaders: The response's :class:`Headers`.
        content: The request body, a ``BytesIO`` positioned at 0 when the
            resource renders (kept in memory: spooling to disk is to do).
        code: The response status code (200 until changed).
        code_message: The reason phrase.
        startedWriting: True once the response head was sent.
        finished: True once :meth:`finish` was called.
        sentLength: Body bytes written so far.
        channel: The :class:`HTTPChannel`, or None once the connection is gone.
        site: The :class:`Site`.
    """

    def __init__(self, channel: HTTPChannel, head: RequestHead) -> None:
        self.channel: HTTPChannel | None = channel
        self.site: Site = channel.factory
        self.method = head.method
        self.uri = head.target
        self.clientproto = b"HTTP/" + head.version
        self.requestHeaders = Headers(head.headers)
        self.responseHeaders = Headers()
        self.content = io.BytesIO()
        self.code = 200
        self.code_message = b"OK"
        self.startedWriting = False
        self.finished = False
        self.sentLength = 0
        self.prepath: list[bytes] = []
        self.resource: IResource | None = None
        self._head = head
        self._bodyDone = False
        self._continueSent = False
        self._chunked = False
        self._persistent = head.keep_alive
        self._lost: Failure | None = None
        self._finishWaiters: list[Deferred[None]] = []
        self._started = time.time()
        # Kept here: the address is still wanted (access log) after the
        # request lets go of its channel.
        self.client: Any = channel.peer

        target = head.target
        if not target.startswith(b"/") and b"://" in target:
            # Absolute form (RFC 9112 §3.2.2), as sent to proxies: keep the path.
            parts = urlsplit(target)
            target = (parts.path or b"/") + (b"?" + parts.query if parts.query else b"")
        path, _, query = target.partition(b"?")
        self.path = path
        self.args: dict[bytes, list[bytes]] = parse_qs(query, keep_blank_values=True)
        self.postpath = [unquote_to_bytes(seg) for seg in path[1:].split(b"/")]

    # -- reading the request --------------------------------------------------

    def getHeader(self, name: bytes | str) -> bytes | None:
        """The last value of request header ``name``, or None."""
        values = self.requestHeaders.getRawHeaders(name)
        return values[-1] if values else None

    def getClientAddress(self) -> Any:
        """The peer's address (an ``IPv4Address``/``IPv6Address`` for TCP)."""
        return self.client

    def getAllHeaders(self) -> dict[bytes, bytes]:
        """Request headers as a dict of lower-cased name -> last value."""
        return {name.lower(): values[-1]
                for name, values in self.requestHeaders.getAllRawHeaders()}

    # -- building the response ------------------------------------------------

    def setResponseCode(self, code: int, message: bytes | None = None) -> None:
        """Set the status code and reason phrase (default: the standard one)."""
        if self.startedWriting:
            raise RuntimeError("response code set after the response started")
        self.code = code
        self.code_message = message if message is not None else _reason(code)

    def setHeader(self, name: bytes | str, value: bytes | str) -> None:
        """Set response header ``name`` to ``value``, replacing earlier values."""
        raw = value.encode("latin-1") if isinstance(value, str) else value
        self.responseHeaders.setRawHeaders(name, [_check_header_value(raw)])

    def redirect(self, url: bytes | str) -> None:
        """Answer with ``302 Found`` pointing at ``url`` (the caller finishes)."""
        self.setResponseCode(302)
        self.setHeader(b"Location", url)

    def notifyFinish(self) -> Deferred[None]:
        """A Deferred firing with None when the response is finished, or
        failing with the connection-lost reason if the client goes away first."""
        d: Deferred[None] = Deferred()
        if self.finished:
            d.callback(None)
        elif self._lost is not None:
            d.errback(self._lost)
        else:
            self._finishWaiters.append(d)
        return d

    def write(self, data: bytes) -> None:
        """Send ``data`` as part of the body, sending the head first if needed.

        Without a Content-Length header an HTTP/1.1 response is chunked and an
        HTTP/1.0 one is delimited by closing the connection. Writes after the
        connection was lost are dropped (see :meth:`notifyFinish`).
        """
        if self.finished:
            raise RuntimeError("Request.write called after Request.finish")
        if self.channel is None:
            return
        out = [] if self.startedWriting else [self._head_bytes(None)]
        if data and self.method != b"HEAD" and self.code not in _NO_BODY_CODES:
            self.sentLength += len(data)
            if self._chunked:
                out.append(b"%x\r\n" % len(data) + data + b"\r\n")
            else:
                out.append(data)
        if out:
            self.channel.writeSequence(out)

    def finish(self) -> None:
        """End the response; the channel then moves on to the next request."""
        if self.finished:
            raise RuntimeError("Request.finish called twice")
        if self.channel is None:
            return  # the client left; notifyFinish already failed
        if not self.startedWriting:
            self.channel.writeSequence([self._head_bytes(0)])
        elif self._chunked and self.method != b"HEAD":
            self.channel.writeSequence([b"0\r\n\r\n"])
        self.finished = True
        channel, self.channel = self.channel, None
        channel.requestDone(self)
        waiters, self._finishWaiters = self._finishWaiters, []
        for d in waiters:
            d.callback(None)

    def _head_bytes(self, length: int | None) -> bytes:
        """The status line and headers; decides framing and persistence."""
        self.startedWriting = True
        headers = self.responseHeaders
        no_body = self.code in _NO_BODY_CODES or 100 <= self.code < 200
        if length is not None and not no_body and not headers.hasHeader(b"content-length"):
            headers.setRawHeaders(b"Content-Length", [b"%d" % length])
        if not no_body and not headers.hasHeader(b"content-length"):
            if self.clientproto == b"HTTP/1.1":
                self._chunked = True
                headers.setRawHeaders(b"Transfer-Encoding", [b"chunked"])
            elif self.method != b"HEAD":
                # HTTP/1.0 has no chunking: only closing can end this body.
                self._persistent = False
        channel = self.channel
        if channel is not None and channel.closing:
            self._persistent = False
        if not self._persistent:
            headers.setRawHeaders(b"Connection", [b"close"])
        elif self.clientproto == b"HTTP/1.0":
            headers.setRawHeaders(b"Connection", [b"keep-alive"])
        if not headers.hasHeader(b"date"):
            headers.setRawHeaders(b"Date", [_http_date()])
        if not headers.hasHeader(b"server"):
            headers.setRawHeaders(b"Server", [self.site.serverHeader])
        lines = [b"HTTP/1.1 %d %s\r\n" % (self.code, self.code_message)]
        for name, values in headers.getAllRawHeaders():
            for value in values:
                lines.append(name + b": " + value + b"\r\n")
        lines.append(b"\r\n")
        return b"".join(lines)

    # -- driven by the channel ------------------------------------------------

    def _render(self) -> None:
        """Render the located resource and deal with what it returned."""
        assert self.resource is not None
        try:
            result = self.resource.render(self)
        except Exception:
            self.processingFailed(Failure())
            return
        self._handleResult(result)

    def _handleResult(self, result: object) -> None:
        if result is NOT_DONE_YET:
            return  # the resource calls write()/finish() itself
        if isinstance(result, bytes):
            self._finishWith(result)
            return
        if isinstance(result, Deferred) or hasattr(result, "send"):
            # A coroutine from an ``async def render_*``, or a Deferred.
            d: Deferred[Any] = ensureDeferred(result)  # type: ignore[arg-type]
            d.addCallbacks(self._handleResult, self.processingFailed)
            return
        self.processingFailed(Failure(TypeError(
            f"{self.resource!r} render returned {type(result).__name__}, not bytes")))

    def _finishWith(self, body: bytes) -> None:
        if self.channel is None or self.finished:
            return
        if self.startedWriting:
            self.write(body)
        else:
            head = self._head_bytes(len(body))
            send_body = self.method != b"HEAD" and self.code not in _NO_BODY_CODES
            self.sentLength = len(body) if send_body else 0
            self.channel.writeSequence([head, body] if send_body and body else [head])
        self.finish()

    def processingFailed(self, failure: Failure) -> None:
        """Log ``failure`` and answer 500 without internals (or cut the response).

        When the head was already sent the status cannot change, so the
        connection is closed: a truncated response must not look complete.
        """
        log.error("Exception rendering %s %r", self.method.decode("ascii", "replace"),
                  self.uri, exc_info=(failure.type, failure.value, failure.getTracebackObject()))
        if self.channel is None or self.finished:
            return
        if self.startedWriting:
            channel, self.channel = self.channel, None
            channel.cutResponse()
            return
        self.responseHeaders = Headers()
        page = ErrorPage(500, "Internal Server Error",
                         "An error occurred while processing the request.")
        self._finishWith(page.render(self))

    def _connectionLost(self, reason: Failure) -> None:
        if self.finished or self._lost is not None:
            return
        self._lost = reason
        self.channel = None
        waiters, self._finishWaiters = self._finishWaiters, []
        for d in waiters:
            d.errback(reason)

    def _logAccess(self) -> None:
        """One line in Combined Log Format on ``protocols.http.access``."""
        if not accessLog.isEnabledFor(logging.INFO):
            return
        peer = self.getClientAddress()
        host = getattr(peer, "host", "-")
        when = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(self._started))
        line = b"%s %s %s" % (self.method, self.uri, self.clientproto)
        accessLog.info('%s - - [%s] "%s" %d %s "%s" "%s"', host, when, _escape(line),
                       self.code, self.sentLength or "-",
                       _escape(self.getHeader(b"referer") or b"-"),
                       _escape(self.getHeader(b"user-agent") or b"-"))


def _escape(value: bytes) -> str:
    # Peer bytes go into a log line: keep it one line and unambiguous.
    # unicode_escape turns backslashes, controls and non-ASCII into escapes.
    return value.decode("latin-1").encode("unicode_escape").decode("ascii").replace(
        '"', '\\"')


class HTTPChannel(TimeoutMixin, Protocol):
    """One HTTP connection: parses requests and answers them in order.

    Attributes:
        factory: The :class:`Site`.
        closing: True once the connection will close after the current response.
    """

    factory: Site

    def __init__(self) -> None:
        self._parser: RequestParser | None = None
        self._queue: collections.deque[Request] = collections.deque()
        self._receiving: Request | None = None
        self._error: ParseError | None = None
        self._rendering = False
        self._advancing = False
        self._again = False
        self._paused = False
        self.closing = False
        self.peer: Any = None

    def connectionMade(self) -> None:
        """Start the parser and the idle timer."""
        site = self.factory
        assert self.transport is not None
        self.peer = self.transport.getPeer()
        self._parser = RequestParser(Limits(max_body=site.max_body))
        self.setTimeout(site.timeout)

    def dataReceived(self, data: bytes) -> None:
        """Feed the parser and act on each event."""
        parser = self._parser
        if parser is None or self._error is not None or self.closing:
            # Closing (after an Upgrade or a cut response): later bytes are
            # not HTTP we will answer, and the parser refuses them anyway.
            return
        self.resetTimeout()
        for event in parser.feed(data):
            if isinstance(event, RequestHead):
                self._headReceived(event)
            elif isinstance(event, BodyData):
                if self._receiving is not None:
                    self._receiving.content.write(event.data)
            elif isinstance(event, EndOfMessage):
                self._bodyReceived()
            elif isinstance(event, ParseError):
                self._parseError(event)
            elif isinstance(event, Upgrade):
                # Protocol switching is not supported: answer what was asked
                # and close rather than misread the new protocol's bytes.
                self.closing = True
        if len(self._queue) >= self.factory.maxPipeline and not self._paused:
            # Too many requests waiting for earlier responses: stop reading
            # until the queue drains, so a client cannot make us buffer more.
            self._paused = True
            assert self.transport is not None
            self.transport.pauseProducing()
        self._advance()

    def _headReceived(self, head: RequestHead) -> None:
        request = Request(self, head)
        # Located now, before the body: see the module docstring.
        request.resource = self.factory.getResourceFor(request)
        self._receiving = request
        self._queue.append(request)
        if self.timeOut is not None:
            self.setTimeout(None)  # a request is in flight: not idle

    def _bodyReceived(self) -> None:
        request = self._receiving
        if request is None:
            return
        self._receiving = None
        request._bodyDone = True
        request.content.seek(0)
        ctype = (request.getHeader(b"content-type") or b"").split(b";")[0].strip().lower()
        if request.method == b"POST" and ctype == b"application/x-www-form-urlencoded":
            for key, values in parse_qs(request.content.getvalue(),
                                        keep_blank_values=True).items():
                request.args.setdefault(key, []).extend(values)

    def _parseError(self, error: ParseError) -> None:
        self._error = error
        partial = self._receiving
        if partial is not None:
            # Its body will never complete: it is answered by the error.
            self._receiving = None
            self._queue.remove(partial)
            partial.channel = None

    def _advance(self) -> None:
        """Start the next request if it is ready; runs as a loop, not
        recursively, because synchronous renders finish inside it."""
        if self._advancing:
            self._again = True
            return
        self._advancing = True
        try:
            self._again = True
            while self._again:
                self._again = False
                self._step()
        finally:
            self._advancing = False

    def _step(self) -> None:
        transport = self.transport
        if transport is None or self._rendering:
            return
        if self._queue:
            request = self._queue[0]
            if request._bodyDone:
                self._rendering = True
                request._render()
            elif (request._head.expect_continue and not request._continueSent
                  and request.clientproto == b"HTTP/1.1"):
                request._continueSent = True
                transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            return
        if self._error is not None:
            self._sendError(self._error)
        elif self.closing:
            transport.loseConnection()

    def _sendError(self, error: ParseError) -> None:
        body = _reason(error.status_code) + b"\n"
        self.writeSequence([
            b"HTTP/1.1 %d %s\r\n" % (error.status_code, _reason(error.status_code)),
            b"Content-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n" % len(body),
            b"Connection: close\r\nDate: %s\r\nServer: %s\r\n\r\n"
            % (_http_date(), self.factory.serverHeader),
            body,
        ])
        self.closing = True
        assert self.transport is not None
        self.transport.loseConnection()

    def writeSequence(self, data: list[bytes]) -> None:
        """Write response bytes (one syscall-friendly join)."""
        if self.transport is not None:
            self.transport.write(b"".join(data) if len(data) > 1 else data[0])

    def requestDone(self, request: Request) -> None:
        """Called by :meth:`Request.finish`: log, then move to the next request."""
        request._logAccess()
        if self._queue and self._queue[0] is request:
            self._queue.popleft()
        self._rendering = False
        transport = self.transport
        if transport is None:
            return
        if not request._persistent:
            self.closing = True
            self._queue.clear()
            transport.loseConnection()
            return
        if self._paused and len(self._queue) < self.factory.maxPipeline:
            self._paused = False
            transport.resumeProducing()
        if not self._queue and self.timeOut is None and not self.closing:
            self.setTimeout(self.factory.timeout)
        self._advance()

    def cutResponse(self) -> None:
        """Close after what was written, leaving the response visibly truncated.

        Not an abort: bytes already written are delivered, and the missing
        chunked terminator (or the short Content-Length body) tells the
        client the response is incomplete.
        """
        self.closing = True
        if self.transport is not None:
            self.transport.loseConnection()

    def timeoutConnection(self) -> None:
        """Idle keep-alive timeout: close the connection."""
        if not self._queue:
            self.closing = True
            assert self.transport is not None
            self.transport.loseConnection()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """Tell every request still waiting that its client went away."""
        self.setTimeout(None)
        queue, self._queue = self._queue, collections.deque()
        for request in queue:
            request._connectionLost(reason)
        self._receiving = None
        self.transport = None


class Site(ServerFactory[HTTPChannel]):
    """An HTTP server factory serving the resource tree rooted at ``resource``.

    Args:
        resource: The root :class:`~protocols.http.resource.Resource`.
        timeout: Seconds an idle keep-alive connection stays open (None: forever).
        max_body: Largest request body accepted, in bytes (413 above it).
        maxPipeline: Requests queued on one connection before it stops reading.

    Example:
        >>> from protocols.http.resource import Resource
        >>> site = Site(Resource(), timeout=5)
    """

    protocol = HTTPChannel
    serverHeader: bytes = SERVER_HEADER
    noisy = False

    def __init__(self, resource: IResource, timeout: float | None = 60.0,
                 max_body: int | None = 16 * 1024 * 1024, maxPipeline: int = 16) -> None:
        self.resource = resource
        self.timeout = timeout
        self.max_body = max_body
        self.maxPipeline = maxPipeline

    def getResourceFor(self, request: Request) -> IResource:
        """Traverse the tree for ``request`` (its postpath is consumed)."""
        return getChildForRequest(self.resource, request)
