"""The HTTP/1.1 server: :class:`Site` (the factory) and :class:`HTTPChannel`.

``Site(root)`` is a factory: listen with it and every connection gets an
:class:`HTTPChannel`, which feeds received bytes to the sans-I/O
:class:`~protocols.http.parser.RequestParser` and turns its events into
:class:`~protocols.http.request.Request` objects::

    from protocols.http import Resource, Site

    class Hello(Resource):
        isLeaf = True
        async def render_GET(self, request):
            return b"hello"

    reactor.listenTCP(8080, Site(Hello()))

Flow of one request: the head arrives -> a ``Request`` is built and the
resource located at once, so that its ``requestHeadReceived(request)`` hook
(if any) and its ``maxBodySize`` act before any body is read (a refused
``Expect: 100-continue`` never sees a body byte); the body is spooled into
``request.content`` (memory, then disk) or streamed to a resource that sets
``streamRequestBody``; urlencoded and multipart form bodies are parsed into
``request.args``/``request.files`` unless the resource sets ``parseForms =
False``; when every earlier request on the connection has been answered, the
resource renders. Responses leave strictly in request order
(pipelining), and only a bounded number of requests is queued before the
channel stops reading.

Timeouts, each a :class:`Site` argument: ``headerTimeout`` bounds the time
from a request's first byte (or the connection's start) to the end of its
head, whatever trickles in meanwhile (slowloris); ``bodyTimeout`` bounds the
silence between two pieces of body; ``timeout`` is the keep-alive idle time.

Shutdown: when the reactor stops (``stopGracefully`` on SIGTERM), every
channel answers the request in flight, or the next one to arrive, with
``Connection: close`` and then closes; the reactor closes connections still
idle when the grace period ends.
"""

from __future__ import annotations

import collections
import logging
import weakref
from io import BytesIO
from typing import Any, Final

from deferred import Failure
from protocols.base import Protocol, ServerFactory, connectionDone
from protocols.policies import find_clock

from .body import BodyError, BodyStream, BodyTooLarge, new_body_file
from .forms import FormLimits
from .headers import SERVER_HEADER, Headers, http_date, reason_phrase
from .parser import (
    BodyData,
    EndOfMessage,
    Limits,
    ParseError,
    RequestHead,
    RequestParser,
    Upgrade,
)
from .request import Request, accessLog
from .resource import IResource, getChildForRequest

__all__ = ["HTTPChannel", "Headers", "Request", "Site"]

log = logging.getLogger("protocols.http")

# What the single timer of a channel is counting down to.
_IDLE: Final = 1     # keep-alive: waiting for the next request
_HEAD: Final = 2     # a head is arriving (absolute deadline)
_BODY: Final = 3     # a body is arriving (reset by each piece)


class HTTPChannel(Protocol):
    """One HTTP connection: parses requests and answers them in order.

    Attributes:
        factory: The :class:`Site`.
        closing: True once the connection will close after the current
            response; bytes received from then on are ignored.
        draining: True once the server is shutting down (see the module
            docstring).
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
        self._pauses: set[str] = set()
        self._clock: Any = None
        self._timer: Any = None
        self._timerKind = 0
        self._deadline = 0.0
        self._timerAt = 0.0
        self.closing = False
        self.draining = False
        self._inData = False
        self._lingering = False
        self._lingerCall: Any = None
        self.peer: Any = None
        self.host: Any = None
        self.secure = False

    # -- connection events ----------------------------------------------------

    def connectionMade(self) -> None:
        """Start the parser and the header timer."""
        site = self.factory
        transport = self.transport
        assert transport is not None
        self.peer = transport.getPeer()
        self.host = transport.getHost()
        self.secure = hasattr(transport, "getPeerCertificate")
        self._parser = RequestParser(site.limits)
        self._clock = find_clock(self)
        site._channelOpened(self)
        # A connection that sends nothing is held to the header timeout too.
        self._arm(_HEAD, site.headerTimeout)

    def dataReceived(self, data: bytes) -> None:
        """Feed the parser and act on each event."""
        parser = self._parser
        if parser is None or self._error is not None or self.closing:
            # Closing (after an Upgrade, a refusal or a cut response): later
            # bytes are not HTTP we will answer.
            return
        for event in parser.feed(data):
            # Ordered by frequency: every request has a head and an end.
            kind = type(event)
            if kind is RequestHead:
                self._headReceived(event)  # type: ignore[arg-type]
            elif kind is EndOfMessage:
                self._bodyReceived()
            elif kind is BodyData:
                request = self._receiving
                if request is not None:
                    self._bodyData(request, event.data)  # type: ignore[union-attr]
            elif kind is ParseError:
                self._parseError(event)  # type: ignore[arg-type]
            elif kind is Upgrade:
                # Protocol switching is not supported: answer what was asked
                # and close rather than misread the new protocol's bytes.
                self.closing = True
            if self.closing or self._error is not None:
                break
        if len(self._queue) >= self.factory.maxPipeline:
            # Too many requests waiting for earlier responses: stop reading
            # until the queue drains, so a client cannot make us buffer more.
            self._pause("pipeline", True)
        # Requests that render synchronously finish inside _advance; the timer
        # is set once, after them, not once per request.
        self._inData = True
        try:
            self._advance()
        finally:
            self._inData = False
        self._updateTimer()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """Tell every request still waiting that its client went away."""
        self._disarm()
        linger, self._lingerCall = self._lingerCall, None
        if linger is not None and linger.active():
            linger.cancel()
        self.factory._channelClosed(self)
        queue, self._queue = self._queue, collections.deque()
        receiving, self._receiving = self._receiving, None
        for request in queue:
            request._connectionLost(reason)
        if receiving is not None and receiving not in queue:
            receiving._connectionLost(reason)
        self.transport = None

    # -- requests ---------------------------------------------------------------

    def _headReceived(self, head: RequestHead) -> None:
        request = Request(self, head)
        site = self.factory
        self._queue.append(request)
        try:
            # Located now, before the body: see the module docstring.
            resource = request.resource = site.getResourceFor(request)
            limit = getattr(resource, "maxBodySize", None)
            if limit is not None:
                request.maxBodySize = limit
            hook = getattr(resource, "requestHeadReceived", None)
            if hook is not None:
                hook(request)
            if request._badQuery is not None:
                request.refuse(400, detail=request._badQuery)
        except Exception:
            log.exception("Exception locating the resource for %r", head.target)
            request.refuse(500, "Internal Server Error",
                           "An error occurred while processing the request.")
        if not request._refused:
            length = head.content_length
            limit = request.maxBodySize
            if length is not None and limit is not None and length > limit:
                request.refuse(413, "Content Too Large", "The request body is too large.")
        if request._refused:
            # Its body (if the client sends it regardless) is not read:
            # answer what is queued, then this refusal, then close.
            self.closing = True
            return
        if getattr(request.resource, "streamRequestBody", False):
            request._stream = BodyStream(self._pauseForBody)
        elif head.content_length is None and not head.chunked:
            request.content = BytesIO()  # no body (most GETs): new_body_file's answer
        else:
            request.content = new_body_file(site.spoolThreshold, head)
        self._receiving = request

    def _bodyData(self, request: Request, data: bytes) -> None:
        request._bodyLength += len(data)
        limit = request.maxBodySize
        if limit is not None and request._bodyLength > limit:
            self._bodyTooLarge(request)
            return
        stream = request._stream
        if stream is not None:
            stream.feed(data)
        else:
            assert request.content is not None
            request.content.write(data)

    def _bodyTooLarge(self, request: Request) -> None:
        stream = request._stream
        if stream is not None:
            self._receiving = None
            # Rendering already: the resource hears of it (BodyTooLarge from
            # iterBody becomes 413 if nothing was sent yet); stop reading.
            stream.end(Failure(BodyTooLarge(f"body larger than {request.maxBodySize}")))
            request._persistent = False
            self.closing = True
            return
        self._parseError(ParseError(413, "content too large"))

    def _bodyReceived(self) -> None:
        request = self._receiving
        if request is None:
            return
        self._receiving = None
        request._bodyDone = True
        if request._stream is not None:
            request._stream.end()
            return
        if request._bodyLength:  # else nothing was written: still at 0
            content = request.content
            assert content is not None
            content.seek(0)
            if getattr(request.resource, "parseForms", True):
                ctype = request.getHeader(b"content-type")
                if ctype is not None:
                    self._parseForm(request, ctype)

    def _parseForm(self, request: Request, ctype: bytes) -> None:
        from .forms import FormError, get_boundary, parse_multipart, parse_urlencoded

        kind = ctype.split(b";", 1)[0].strip().lower()
        content = request.content
        assert content is not None
        limits = self.factory.formLimits
        try:
            if kind == b"application/x-www-form-urlencoded":
                fields = parse_urlencoded(content.read(), max_fields=limits.max_fields)
                content.seek(0)
                files: dict[bytes, list[Any]] = {}
            elif kind == b"multipart/form-data":
                fields, files = parse_multipart(content, get_boundary(ctype), limits=limits,
                                                spool_threshold=self.factory.spoolThreshold)
                content.seek(0)
            else:
                return
        except FormError as e:
            request._answerWith(e.code, detail=str(e))
            self.closing = True
            return
        for key, values in fields.items():
            request.args.setdefault(key, []).extend(values)
        request.files = files

    def _parseError(self, error: ParseError) -> None:
        partial, self._receiving = self._receiving, None
        if partial is not None and partial._stream is not None and self._rendering \
                and self._queue and self._queue[0] is partial:
            # Rendering with a streamed body: the resource hears of it (and
            # the error becomes its response if it lets the error escape).
            partial._persistent = False
            self.closing = True
            partial._stream.end(Failure(BodyError(error.reason, error.status_code)))
            return
        self._error = error
        if partial is None:
            return
        # Its body will never complete: it is answered by the error.
        if partial in self._queue:
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
            streaming = request._stream is not None
            if (request._head.expect_continue and not request._continueSent
                    and not request._bodyDone and request.clientproto == b"HTTP/1.1"
                    and (streaming or request is self._receiving)):
                request._continueSent = True
                transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            if request._bodyDone or streaming:
                self._rendering = True
                request._render()
            return
        if self._error is not None:
            self._sendError(self._error)
        elif self.closing:
            self._close(linger=True)

    def _sendError(self, error: ParseError) -> None:
        code = error.status_code
        body = reason_phrase(code) + b"\n"
        self.writeSequence([
            b"HTTP/1.1 %d %s\r\n" % (code, reason_phrase(code)),
            b"Content-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n" % len(body),
            b"Connection: close\r\nDate: %s\r\nServer: %s\r\n\r\n"
            % (http_date(), self.factory.serverHeader),
            body,
        ])
        self.closing = True
        self._close(linger=True)

    def _close(self, linger: bool) -> None:
        """Close after what was written.

        With ``linger``, the client may still be sending (a refused or
        too-large body, bytes after an error): closing a socket with unread
        input makes the kernel send a reset, which can destroy the response
        before the client reads it. So send FIN, keep reading and dropping
        for up to ``Site.lingerTimeout`` seconds, then close, as nginx's
        lingering close does.
        """
        transport: Any = self.transport
        if transport is None:
            return
        self.closing = True
        self._disarm()
        if self._lingering:
            # Already closing this way. A full close now would reset the
            # connection while the client may still be sending, destroying
            # the response (it happened when a streamed body went over its
            # limit in a later read than its head: the request finished,
            # lingering began, then the channel's next step closed again).
            return
        half_close = getattr(transport, "loseWriteConnection", None)
        if not linger or half_close is None:
            transport.loseConnection()
            return
        self._lingering = True
        if self._pauses:
            self._pauses.clear()
            transport.resumeProducing()
        half_close()
        self._lingerCall = self._clock.callLater(self.factory.lingerTimeout,
                                                 transport.loseConnection)

    def readConnectionLost(self) -> None:
        """The client stopped sending: it has gone (as Twisted treats it).

        Only half-closeable so that a lingering close sees the client's
        FIN. Otherwise a client that half-closes is taken to have left: the
        connection is aborted at once (a graceful close would wait for a
        response producer that nobody reads), so in-flight requests'
        ``notifyFinish`` fail and their producers are stopped.
        """
        transport: Any = self.transport
        if transport is None:
            return
        if self._lingering:
            transport.loseConnection()
        else:
            transport.abortConnection()

    # -- called by requests -----------------------------------------------------

    def writeSequence(self, data: list[bytes]) -> None:
        """Write response bytes (one syscall-friendly join)."""
        if self.transport is not None:
            self.transport.write(b"".join(data) if len(data) > 1 else data[0])

    def keepAliveAfter(self, request: Request) -> bool:
        """Whether the connection may carry another request after ``request``.

        False once closing, and while draining for the last request we know
        of (nothing queued behind it, nothing arriving): the server answers
        it with ``Connection: close``.
        """
        if self.closing:
            return False
        if not self.draining:
            return True
        parser = self._parser
        return len(self._queue) > 1 or self._receiving is not None or (
            parser is not None and parser.in_head)

    def requestDone(self, request: Request) -> None:
        """Called when a request finished: log, then move to the next one."""
        if accessLog.isEnabledFor(logging.INFO):
            request._logAccess()
        if self._queue and self._queue[0] is request:
            self._queue.popleft()
        self._rendering = False
        transport = self.transport
        if transport is None:
            return
        if not request._persistent or not (request._bodyDone or request._refused):
            # Not persistent, or a streamed body the resource left unread.
            self._queue.clear()
            self._close(linger=request._refused or not request._bodyDone)
            return
        if "pipeline" in self._pauses and len(self._queue) < self.factory.maxPipeline:
            self._pause("pipeline", False)
        if not self._inData:
            self._updateTimer()
        if self._queue or self._error is not None or self.closing:
            # Otherwise there is nothing for _step to do: skip the call.
            self._advance()

    def cutResponse(self) -> None:
        """Close after what was written, leaving the response visibly truncated.

        Not an abort: bytes already written are delivered, and the missing
        chunked terminator (or the short Content-Length body) tells the
        client the response is incomplete.
        """
        self._rendering = False
        self._close(linger=True)

    def drain(self) -> None:
        """The server is stopping: close once the work in hand is answered."""
        self.draining = True
        self._updateTimer()

    # -- flow control -----------------------------------------------------------

    def _pause(self, reason: str, paused: bool) -> None:
        """Pause reading for ``reason`` (True) or lift that reason (False)."""
        transport: Any = self.transport
        was = bool(self._pauses)
        if paused:
            self._pauses.add(reason)
        else:
            self._pauses.discard(reason)
        now = bool(self._pauses)
        if transport is not None and was != now:
            if now:
                transport.pauseProducing()
            else:
                transport.resumeProducing()

    def _pauseForBody(self, paused: bool) -> None:
        self._pause("body", paused)

    # -- timeouts ---------------------------------------------------------------

    def _updateTimer(self) -> None:
        """Pick the timeout that applies now (see the module docstring)."""
        site = self.factory
        if self.closing or self.transport is None:
            self._disarm()
        elif self._receiving is not None:
            self._arm(_BODY, site.bodyTimeout)
        elif self._queue:
            self._timerKind = 0  # rendering: the resource's business (timer kept, idle)
        elif self._parser is not None and self._parser._in_head:
            self._arm(_HEAD, site.headerTimeout)
        else:
            seconds = site.timeout
            timer = self._timer
            if timer is not None and seconds is not None:
                # _arm's commonest case inline (after each keep-alive response):
                # the timer stays, only the deadline moves.
                deadline = self._clock.seconds() + seconds
                if self._timerAt <= deadline:
                    self._timerKind = _IDLE
                    self._deadline = deadline
                    return
            self._arm(_IDLE, seconds)

    def _arm(self, kind: int, seconds: float | None) -> None:
        # One DelayedCall per connection, moved lazily: most requests only
        # move the deadline, which costs a clock read, not a reschedule.
        if seconds is None:
            self._disarm()
            return
        if kind == _HEAD and self._timerKind == _HEAD:
            return  # absolute: more trickling bytes do not extend it
        clock = self._clock
        self._timerKind = kind
        deadline = self._deadline = clock.seconds() + seconds
        if self._timer is None:
            self._timer = clock.callLater(seconds, self._timedOut)
            self._timerAt = deadline
        elif self._timerAt > deadline:
            # _timerAt mirrors the timer's getTime(), without the call.
            self._timer.reset(seconds)
            self._timerAt = deadline

    def _disarm(self) -> None:
        self._timerKind = 0
        timer, self._timer = self._timer, None
        if timer is not None and timer.active():
            timer.cancel()

    def _timedOut(self) -> None:
        self._timer = None
        kind = self._timerKind
        if kind == 0 or self.transport is None:
            return
        remaining = self._deadline - self._clock.seconds()
        if remaining > 0:
            self._timer = self._clock.callLater(remaining, self._timedOut)
            self._timerAt = self._deadline
            return
        self._timerKind = 0
        if kind == _IDLE:
            self.closing = True
            self.transport.loseConnection()
        elif kind == _HEAD:
            log.info("Header timeout: closing the connection from %s", self.peer)
            self._parseError(ParseError(408, "request header timeout"))
            self._advance()
        else:
            log.info("Body timeout: closing the connection from %s", self.peer)
            self._parseError(ParseError(408, "request body timeout"))
            self._advance()


class Site(ServerFactory[HTTPChannel]):
    """An HTTP server factory serving the resource tree rooted at ``resource``.

    Args:
        resource: The root :class:`~protocols.http.resource.Resource`.
        timeout: Seconds an idle keep-alive connection stays open (None: forever).
        max_body: Largest request body accepted, in bytes (413 above it);
            a resource may allow more or less with a ``maxBodySize`` attribute.
        maxPipeline: Requests queued on one connection before it stops reading.
        headerTimeout: Seconds a client has to send a whole request head.
        bodyTimeout: Seconds of silence allowed while a body is arriving.
        spoolThreshold: Bodies (and uploaded files) larger than this many
            bytes are kept in temporary files, not in memory.
        limits: Request-line and header limits (414/431), see
            :class:`~protocols.http.parser.Limits`.
        formLimits: Limits on form bodies and query strings (fields, parts,
            sizes), see :class:`~protocols.http.forms.FormLimits`.

    Attributes:
        lingerTimeout: Seconds a connection closed on an error keeps reading
            (and dropping) what the client still sends, so that the answer
            is not destroyed by a reset (see ``HTTPChannel._close``).

    Example:
        >>> from protocols.http.resource import Resource
        >>> site = Site(Resource(), timeout=5)
    """

    protocol = HTTPChannel
    serverHeader: bytes = SERVER_HEADER
    noisy = False

    def __init__(self, resource: IResource, timeout: float | None = 60.0,
                 max_body: int | None = 16 * 1024 * 1024, maxPipeline: int = 16,
                 headerTimeout: float | None = 20.0, bodyTimeout: float | None = 60.0,
                 spoolThreshold: int = 1024 * 1024, limits: Limits | None = None,
                 formLimits: FormLimits | None = None) -> None:
        self.resource = resource
        self.timeout = timeout
        self.max_body = max_body
        self.maxPipeline = maxPipeline
        self.headerTimeout = headerTimeout
        self.bodyTimeout = bodyTimeout
        self.spoolThreshold = spoolThreshold
        self.lingerTimeout = 2.0
        self.formLimits = formLimits if formLimits is not None else FormLimits()
        self.limits = limits if limits is not None else Limits()
        self.draining = False
        self._channels: weakref.WeakSet[HTTPChannel] = weakref.WeakSet()
        self._watched: weakref.WeakSet[Any] = weakref.WeakSet()

    def getResourceFor(self, request: Request) -> IResource:
        """Traverse the tree for ``request`` (its postpath is consumed)."""
        return getChildForRequest(self.resource, request)

    def drain(self) -> None:
        """Stop keeping connections alive: each closes once its work is answered.

        Called by the reactor's shutdown (the "before" phase); call it
        yourself to retire a site while the reactor keeps running.
        """
        self.draining = True
        for channel in list(self._channels):
            channel.drain()

    def _channelOpened(self, channel: HTTPChannel) -> None:
        self._channels.add(channel)
        if self.draining:
            channel.draining = True
        reactor = channel._clock
        add_trigger = getattr(reactor, "addSystemEventTrigger", None)
        if add_trigger is not None and reactor not in self._watched:
            self._watched.add(reactor)
            add_trigger("before", "shutdown", self.drain)

    def _channelClosed(self, channel: HTTPChannel) -> None:
        self._channels.discard(channel)

