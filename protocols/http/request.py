"""One HTTP request and the response being built for it: :class:`Request`.

The channel (``server.py``) creates a ``Request`` when a request head
arrives, feeds it the body, and calls :meth:`Request._render` when the
request's turn comes. Everything a resource touches is here: the request's
fields, the response's status and headers, and the ways to send a body —
return bytes, :meth:`Request.write` then :meth:`Request.finish`, a producer
(:meth:`Request.registerProducer`), or a file (:meth:`Request.sendFile`).
"""

from __future__ import annotations

import base64
import binascii
import http
import logging
import time
from time import time as _time
from typing import IO, Any, Protocol
from urllib.parse import unquote_to_bytes, urlsplit

from deferred import Deferred, Failure, ensureDeferred, fail, succeed
from reactor.error import ConnectionDone
from reactor.sendfile import sendFile

from .body import BodyError, BodyStream, FileSender
from .forms import FormError, parse_urlencoded
from .headers import Headers, check_header_value, http_date, reason_phrase
from .parser import RequestHead
from .resource import NOT_DONE_YET, ErrorPage, IResource

__all__ = ["Request"]

log = logging.getLogger("protocols.http")
accessLog = logging.getLogger("protocols.http.access")

# Status codes whose responses never carry a body (RFC 9110 §6.4.1).
_NO_BODY_CODES = frozenset({204, 304})

# ``clientproto`` for the versions llhttp accepts, made once.
_PROTOCOLS = {b"1.1": b"HTTP/1.1", b"1.0": b"HTTP/1.0"}


class IEncoder(Protocol):
    """A body transformation the server applies as the body is written (gzip).

    ``start`` (optional) is called just before the head is formatted and may
    return False to decline (e.g. the content type is not compressible); it
    may change response headers. ``encode`` takes body bytes, ``finish``
    returns whatever is left at the end.
    """

    def encode(self, data: bytes) -> bytes: ...

    def finish(self) -> bytes: ...


class Request:
    """One HTTP request and the response being built for it.

    Attributes:
        method: The method, e.g. ``b"GET"``.
        uri: The request target as sent, e.g. ``b"/a/b?x=1"``.
        path: The path part of ``uri`` (no query), still percent-encoded.
        args: Query arguments, plus fields of an urlencoded or multipart form
            body: name -> values, added after the query's (Twisted parses
            bodies of POST only; here any method's form body counts).
            Multipart file parts are in ``files``; small ones in ``args`` too.
        files: Multipart file parts: name -> ``UploadedFile`` list.
        prepath: Path segments already consumed by traversal.
        postpath: Path segments left (decoded); a leaf sees its rest here.
        clientproto: ``b"HTTP/1.0"`` or ``b"HTTP/1.1"``.
        requestHeaders: The request's :class:`Headers`.
        responseHeaders: The response's :class:`Headers`.
        received_cookies: Cookies the client sent: name -> value.
        content: The body, a file positioned at 0 when the resource renders:
            in memory up to the site's ``spoolThreshold``, on disk above. None
            for resources that stream the body (see :mod:`protocols.http.body`).
        maxBodySize: The largest body accepted (413 above); a resource may set
            its own with a ``maxBodySize`` attribute.
        encoder: None, or an :class:`IEncoder` the body is written through.
        code: The response status code (200 until changed).
        code_message: The reason phrase.
        startedWriting: True once the response head was sent.
        finished: True once :meth:`finish` was called.
        sentLength: Body bytes written so far.
        channel: The :class:`HTTPChannel`, or None once finished or the
            connection is gone.
        site: The :class:`Site`.
    """

    # Defaults as class attributes: most requests never change them, and
    # skipping ~20 assignments per request is measurable on a hello-world.
    content: IO[bytes] | None = None
    code = 200
    code_message = b"OK"
    startedWriting = False
    finished = False
    sentLength = 0
    resource: IResource | None = None
    maxBodySize: int | None = None
    encoder: IEncoder | None = None
    # Set by an authentication wrapper once the client proved who it is
    # (any scheme); getUser/getPassword then report these.
    user: bytes | None = None
    password: bytes | None = None
    _bodyDone = False
    _bodyLength = 0
    _stream: BodyStream | None = None
    _refused = False
    _continueSent = False
    _chunked = False
    _producer: Any = None
    _lost: Failure | None = None
    _finishWaiters: list[Deferred[None]] | None = None
    _badQuery: str | None = None
    _requestHeaders: Headers | None = None
    _cookies: dict[bytes, bytes] | None = None
    _customMessage = False
    # Made on first use (most responses set no header, most requests carry
    # no upload): the properties below.
    _responseHeaders: Headers | None = None
    _files: dict[bytes, list[Any]] | None = None

    def __init__(self, channel: Any, head: RequestHead) -> None:
        self.channel: Any = channel
        site = self.site = channel.factory
        self.method = head.method
        self.uri = target = head.target
        self.clientproto = _PROTOCOLS.get(head.version) or b"HTTP/" + head.version
        self.prepath: list[bytes] = []
        self.maxBodySize = site.max_body
        self._head = head
        self._persistent = head.keep_alive
        self._started = _time()
        # Kept here: the address is still wanted (access log) after the
        # request lets go of its channel.
        self.client: Any = channel.peer
        self.host: Any = channel.host
        self._secure: bool = channel.secure

        if target[:1] != b"/" and b"://" in target:
            # Absolute form (RFC 9112 §3.2.2), as sent to proxies: keep the path.
            parts = urlsplit(target)
            target = (parts.path or b"/") + (b"?" + parts.query if parts.query else b"")
        path, _, query = target.partition(b"?")
        self.path = path
        self.args: dict[bytes, list[bytes]] = {}
        if query:
            try:
                self.args = parse_urlencoded(query, max_fields=site.formLimits.max_fields)
            except FormError as e:
                self._badQuery = str(e)
        segments = path[1:].split(b"/")
        self.postpath = ([unquote_to_bytes(seg) for seg in segments] if b"%" in path
                         else segments)

    @property
    def requestHeaders(self) -> Headers:
        """The request's :class:`Headers` (built on first use)."""
        headers = self._requestHeaders
        if headers is None:
            headers = self._requestHeaders = Headers.fromLowered(self._head.headers)
        return headers

    @requestHeaders.setter
    def requestHeaders(self, headers: Headers) -> None:
        self._requestHeaders = headers

    @property
    def responseHeaders(self) -> Headers:
        """The response's :class:`Headers` (made on first use)."""
        headers = self._responseHeaders
        if headers is None:
            headers = self._responseHeaders = Headers()
        return headers

    @responseHeaders.setter
    def responseHeaders(self, headers: Headers) -> None:
        self._responseHeaders = headers

    @property
    def files(self) -> dict[bytes, list[Any]]:
        """Multipart file parts: name -> ``UploadedFile`` list (made on first use)."""
        files = self._files
        if files is None:
            files = self._files = {}
        return files

    @files.setter
    def files(self, files: dict[bytes, list[Any]]) -> None:
        self._files = files

    @property
    def received_cookies(self) -> dict[bytes, bytes]:
        """Cookies the client sent: name -> value (parsed on first use)."""
        cookies = self._cookies
        if cookies is None:
            values = self.requestHeaders.getRawHeaders(b"cookie")
            if values:
                from .cookies import parse_cookie_header

                cookies = parse_cookie_header(b"; ".join(values))
            else:
                cookies = {}
            self._cookies = cookies
        return cookies

    @received_cookies.setter
    def received_cookies(self, cookies: dict[bytes, bytes]) -> None:
        self._cookies = cookies

    # -- reading the request --------------------------------------------------

    def getHeader(self, name: bytes | str) -> bytes | None:
        """The last value of request header ``name``, or None."""
        if self._requestHeaders is None:
            # Most requests ask for a header or two: scan the parsed pairs
            # (names already lower-cased) rather than build Headers.
            key = (name.encode("latin-1") if isinstance(name, str) else name).lower()
            found = None
            for field, value in self._head.headers:
                if field == key:
                    found = value
            return found
        values = self._requestHeaders.getRawHeaders(name)
        return values[-1] if values else None

    def getAllHeaders(self) -> dict[bytes, bytes]:
        """Request headers as a dict of lower-cased name -> last value."""
        return {name.lower(): values[-1]
                for name, values in self.requestHeaders.getAllRawHeaders()}

    def getCookie(self, name: bytes) -> bytes | None:
        """The value of the cookie ``name`` the client sent, or None."""
        return self.received_cookies.get(name)

    def getClientAddress(self) -> Any:
        """The peer's address (an ``IPv4Address``/``IPv6Address`` for TCP)."""
        return self.client

    def getHost(self) -> Any:
        """The address the request arrived on (ours)."""
        return self.host

    def isSecure(self) -> bool:
        """True when the request came over TLS."""
        return self._secure

    def getRequestHostname(self) -> bytes:
        """The host the client asked for: the Host header without its port,
        else our own address."""
        host = self.getHeader(b"host")
        if host:
            if host.startswith(b"["):  # an IPv6 literal: [::1]:8080
                return host[1:host.find(b"]")] if b"]" in host else host
            return host.rsplit(b":", 1)[0] if host.count(b":") == 1 else host
        return str(getattr(self.host, "host", "")).encode("ascii", "replace")

    def _credentials(self) -> tuple[bytes, bytes]:
        header = self.getHeader(b"authorization") or b""
        scheme, _, value = header.partition(b" ")
        if scheme.lower() != b"basic":
            return b"", b""
        try:
            decoded = base64.b64decode(value.strip(), validate=True)
        except (binascii.Error, ValueError):
            return b"", b""
        user, _, password = decoded.partition(b":")
        return user, password

    def getUser(self) -> bytes:
        """The authenticated user, else the user name of Basic credentials sent (or b"")."""
        return self.user if self.user is not None else self._credentials()[0]

    def getPassword(self) -> bytes:
        """The password an authentication wrapper recorded, else the Basic one (or b"")."""
        return self.password if self.password is not None else self._credentials()[1]

    # -- streaming bodies (see protocols.http.body) -------------------------

    def deliverBody(self, protocol: Any) -> None:
        """Stream the body to ``protocol``; needs ``streamRequestBody`` on the resource."""
        if self._stream is None:
            raise RuntimeError("deliverBody needs a resource with streamRequestBody = True")
        self._stream.deliverBody(protocol)

    def iterBody(self) -> Any:
        """``async for chunk in request.iterBody()``; needs ``streamRequestBody``."""
        if self._stream is None:
            raise RuntimeError("iterBody needs a resource with streamRequestBody = True")
        return self._stream.iterBody()

    def refuse(self, code: int, brief: str | None = None, detail: str = "") -> None:
        """Answer ``code`` without reading the body (from ``requestHeadReceived``).

        A resource's ``requestHeadReceived(request)`` hook runs as soon as the
        head arrives; refusing there means no ``100 Continue`` is sent and no
        body byte is read. The connection closes after the answer.
        """
        if self._bodyLength or self.startedWriting:
            raise RuntimeError("refuse() is for the head hook, before the body")
        self._answerWith(code, brief, detail)

    def _answerWith(self, code: int, brief: str | None = None, detail: str = "") -> None:
        """Render an error page instead of the resource, then close."""
        self._refused = True
        self._persistent = False
        self._bodyDone = True
        self.resource = ErrorPage(code, brief or reason_phrase(code).decode("ascii"), detail)

    # -- building the response ------------------------------------------------

    def setResponseCode(self, code: int, message: bytes | None = None) -> None:
        """Set the status code and reason phrase (default: the standard one)."""
        if self.startedWriting:
            raise RuntimeError("response code set after the response started")
        self.code = code
        self.code_message = message if message is not None else reason_phrase(code)
        self._customMessage = message is not None

    def setHeader(self, name: bytes | str, value: bytes | str) -> None:
        """Set response header ``name`` to ``value``, replacing earlier values."""
        raw = value.encode("latin-1") if isinstance(value, str) else value
        self.responseHeaders.setRawHeaders(name, [check_header_value(raw)])

    def addCookie(self, k: bytes | str, v: bytes | str, expires: Any = None,
                  domain: bytes | str | None = None, path: bytes | str | None = None,
                  max_age: Any = None, comment: bytes | str | None = None,
                  secure: bool | None = None, httpOnly: bool = False,
                  sameSite: str | None = None) -> None:
        """Add a ``Set-Cookie`` header (Twisted's signature and output)."""
        from .cookies import format_set_cookie

        self.responseHeaders.addRawHeader(b"Set-Cookie", format_set_cookie(
            k, v, expires=expires, domain=domain, path=path, max_age=max_age,
            comment=comment, secure=secure, httpOnly=httpOnly, sameSite=sameSite))

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
        elif self._finishWaiters is None:
            self._finishWaiters = [d]
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
        channel = self.channel
        if channel is None:
            return
        out = []
        if not self.startedWriting:
            if self.encoder is not None:
                self._startEncoder()
            out.append(self._head_bytes(None))
        if self.encoder is not None and data:
            data = self.encoder.encode(data)
        if data and self.method != b"HEAD" and self.code not in _NO_BODY_CODES:
            self.sentLength += len(data)
            if self._chunked:
                out.append(b"%x\r\n" % len(data) + data + b"\r\n")
            else:
                out.append(data)
        if out:
            channel.writeSequence(out)

    def finish(self) -> None:
        """End the response; the channel then moves on to the next request."""
        if self.finished:
            raise RuntimeError("Request.finish called twice")
        if self.channel is None:
            return  # the client left; notifyFinish already failed
        if self._producer is not None:
            self.unregisterProducer()
        if not self.startedWriting:
            body = b""
            if self.encoder is not None:
                self._startEncoder()
            if self.encoder is not None:
                body, self.encoder = self.encoder.finish(), None
            self._writeWhole(body)
        else:
            if self.encoder is not None:
                tail, self.encoder = self.encoder.finish(), None
                if tail:
                    self.write(tail)
            if self._chunked and self.method != b"HEAD" and self.channel is not None:
                self.channel.writeSequence([b"0\r\n\r\n"])
        self._complete()

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        """Let ``producer`` write the body, paused and resumed by the transport.

        As Twisted's ``Request.registerProducer``: ``streaming`` True for a
        push producer (``pauseProducing``/``resumeProducing``), False for a
        pull producer (``resumeProducing`` is called for each chunk wanted).
        """
        if self._producer is not None:
            raise RuntimeError(f"a producer is already registered: {self._producer!r}")
        self._producer = producer
        channel = self.channel
        if channel is None or channel.transport is None:
            producer.stopProducing()
            return
        channel.transport.registerProducer(producer, streaming)

    def unregisterProducer(self) -> None:
        """Forget the producer registered with :meth:`registerProducer`."""
        if self._producer is None:
            return
        self._producer = None
        channel = self.channel
        if channel is not None and channel.transport is not None:
            channel.transport.unregisterProducer()

    def sendFile(self, file: IO[bytes], offset: int, count: int) -> Deferred[None]:
        """Send ``count`` bytes of ``file`` from ``offset`` as (part of) the body.

        Sends the head first if needed (set Content-Length before, or the
        body is chunked). Uses sendfile(2) where the transport allows it
        (plain TCP, no encoder), else reads the file in flow-controlled
        pieces; either way the file never sits in memory. Call
        :meth:`finish` when the returned Deferred fires.
        """
        channel = self.channel
        if channel is None:
            return fail(self._lost or Failure(ConnectionDone()))
        if not self.startedWriting:
            if self.encoder is not None:
                self._startEncoder()
            channel.writeSequence([self._head_bytes(None)])
        if count <= 0 or self.method == b"HEAD" or self.code in _NO_BODY_CODES:
            return succeed(None)
        transport = channel.transport
        if (not self._chunked and self.encoder is None and transport is not None
                and _can_send_file(transport)):
            # reactor.sendfile picks os.sendfile where it can and otherwise
            # its own read loop, sized for the transport (uvloop, TLS).

            def sent(n: int) -> None:
                self.sentLength += n

            return sendFile(transport, file, offset, count).addCallback(sent)
        sender = FileSender(self, file, offset, count)
        sender.start()
        return sender.deferred

    # -- internals ------------------------------------------------------------

    def _startEncoder(self) -> None:
        encoder = self.encoder
        if encoder is not None:
            start = getattr(encoder, "start", None)
            if start is not None and start(self) is False:
                self.encoder = None

    def _head_bytes(self, length: int | None) -> bytes:
        """The status line and headers; decides framing and persistence.

        Framing (Content-Length or chunked), Connection, Date and Server are
        added to the bytes sent, not stored in ``responseHeaders``, as in
        Twisted; a value the resource set itself wins, except Connection
        when the connection must close.
        """
        return b"".join(self._head_lines(length))

    def _head_lines(self, length: int | None) -> list[bytes]:
        """:meth:`_head_bytes` as a list of lines, to be joined with the body."""
        self.startedWriting = True
        headers = self._responseHeaders
        fields = headers._fields if headers is not None else None
        code = self.code
        lines = [_status_line(code, self.code_message) if self._customMessage
                 else _STATUS_LINES.get(code) or _status_line(code, self.code_message)]
        no_body = code in _NO_BODY_CODES or 100 <= code < 200
        if not no_body and (not fields or b"content-length" not in fields):
            if length is not None:
                line = _LENGTH_LINES.get(length)
                if line is None:
                    line = b"Content-Length: %d\r\n" % length
                    if len(_LENGTH_LINES) < 4096:  # bounded: bodies are any size
                        _LENGTH_LINES[length] = line
                lines.append(line)
            elif self.clientproto == b"HTTP/1.1":
                self._chunked = True
                lines.append(b"Transfer-Encoding: chunked\r\n")
            elif self.method != b"HEAD":
                # HTTP/1.0 has no chunking: only closing can end this body.
                self._persistent = False
        channel = self.channel
        if self._persistent and channel is not None and (channel.closing or channel.draining) \
                and not channel.keepAliveAfter(self):
            self._persistent = False
        connection = None
        if not self._persistent:
            connection = b"Connection: close\r\n"
        elif self.clientproto == b"HTTP/1.0":
            connection = b"Connection: keep-alive\r\n"
        if connection is not None:
            lines.append(connection)
        if not fields:
            lines.append(_date_server(self.site.serverHeader))
            lines.append(b"\r\n")
            return lines
        for key, (name, values) in fields.items():
            if connection is not None and key == b"connection":
                continue
            for value in values:
                lines.append(name + b": " + value + b"\r\n")
        if b"date" in fields or b"server" in fields:
            if b"date" not in fields:
                lines.append(b"Date: " + http_date() + b"\r\n")
            if b"server" not in fields:
                lines.append(b"Server: " + self.site.serverHeader + b"\r\n")
        else:
            lines.append(_date_server(self.site.serverHeader))
        lines.append(b"\r\n")
        return lines

    def _writeWhole(self, body: bytes) -> None:
        """Head with Content-Length, then the body, in one write (one join)."""
        lines = self._head_lines(len(body))
        if body and self.method != b"HEAD" and self.code not in _NO_BODY_CODES:
            self.sentLength = len(body)
            lines.append(body)
        else:
            self.sentLength = 0
        assert self.channel is not None
        self.channel.writeSequence(lines)

    def _closeUploads(self) -> None:
        # Uploaded files may be on disk: free them as soon as the request ends.
        for uploads in (self._files or {}).values():
            for upload in uploads:
                upload.file.close()

    def _complete(self) -> None:
        self.finished = True
        if self._files:
            self._closeUploads()
        channel, self.channel = self.channel, None
        if channel is not None:
            channel.requestDone(self)
        waiters = self._finishWaiters
        if waiters:
            self._finishWaiters = None
            for d in waiters:
                d.callback(None)

    def _render(self) -> None:
        """Render the located resource and deal with what it returned."""
        assert self.resource is not None
        try:
            result = self.resource.render(self)
        except Exception:
            self.processingFailed(Failure())
            return
        if (type(result) is bytes and self.encoder is None and not self.startedWriting
                and self.channel is not None and not self.finished):
            # The common case, a whole body returned at once: straight to the
            # one write of head and body.
            self._writeWhole(result)
            self._complete()
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
            self.finish()
            return
        if self.encoder is not None:
            self._startEncoder()
        if self.encoder is not None:
            body = self.encoder.encode(body) + self.encoder.finish()
            self.encoder = None
        self._writeWhole(body)
        self._complete()

    def processingFailed(self, failure: Failure) -> None:
        """Log ``failure`` and answer 500 without internals (or cut the response).

        A :class:`~protocols.http.body.BodyError` escaping the resource (a
        streamed body too large, malformed or too slow) becomes its status
        (413, 400, 408) and is not logged as an error. When the head was
        already sent the status cannot change, so the connection is closed: a
        truncated response must not look complete.
        """
        body_error = failure.value if isinstance(failure.value, BodyError) else None
        if body_error is None:
            log.error("Exception rendering %s %r", self.method.decode("ascii", "replace"),
                      self.uri, exc_info=(failure.type, failure.value,
                                          failure.getTracebackObject()))
        if self.channel is None or self.finished:
            return
        if self._producer is not None:
            self.unregisterProducer()
        if self.startedWriting:
            channel, self.channel = self.channel, None
            channel.cutResponse()
            return
        self.responseHeaders = Headers()
        self.encoder = None
        if body_error is not None:
            page = ErrorPage(body_error.code, reason_phrase(body_error.code).decode(),
                             str(body_error))
        else:
            page = ErrorPage(500, "Internal Server Error",
                             "An error occurred while processing the request.")
        self._persistent = self._persistent and self._bodyDone
        self._finishWith(page.render(self))

    def _connectionLost(self, reason: Failure) -> None:
        if self._stream is not None:
            self._stream.end(reason)
        if self.finished or self._lost is not None:
            return
        self._lost = reason
        self.channel = None
        if self._files:
            self._closeUploads()
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                producer.stopProducing()
            except Exception:
                log.exception("Error in stopProducing of %r", producer)
        waiters, self._finishWaiters = self._finishWaiters, None
        for d in waiters or ():
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


def _status_line(code: int, message: bytes) -> bytes:
    return b"HTTP/1.1 %d %s\r\n" % (code, message)


# Status lines with the standard reason phrase, made once.
_STATUS_LINES: dict[int, bytes] = {
    int(status): _status_line(int(status), reason_phrase(int(status)))
    for status in http.HTTPStatus
}

# Content-Length lines by length: a server sends the same few sizes again and
# again, and a dict lookup costs a tenth of formatting the line.
_LENGTH_LINES: dict[int, bytes] = {}

_date_server_cache: tuple[int, bytes, bytes] = (-1, b"", b"")


def _date_server(server: bytes) -> bytes:
    """``Date`` and ``Server`` header lines, remade when the second changes."""
    global _date_server_cache
    # The second is compared here rather than by calling http_date(): one
    # clock read and no call on the hot path.
    now = int(_time())
    cached_now, cached_server, lines = _date_server_cache
    if now != cached_now or server is not cached_server:
        lines = b"Date: " + http_date() + b"\r\nServer: " + server + b"\r\n"
        _date_server_cache = (now, server, lines)
    return lines


def _escape(value: bytes) -> str:
    # Peer bytes go into a log line: keep it one line and unambiguous.
    # unicode_escape turns backslashes, controls and non-ASCII into escapes.
    return value.decode("latin-1").encode("unicode_escape").decode("ascii").replace(
        '"', '\\"')


def _can_send_file(transport: Any) -> bool:
    """Whether ``reactor.sendfile`` carries a transfer on ``transport``: always (it
    picks os.sendfile or its own read loop). The request's read loop
    (:class:`~protocols.http.body.FileSender`) remains for bodies it cannot carry
    (chunked or encoded); tests switch this off to exercise that loop."""
    return True
