"""Run a WSGI (PEP 3333) application inside the resource tree: :class:`WSGIResource`.

``WSGIResource(reactor, threadpool, application)`` is a leaf resource. Each
request it renders becomes one call of ``application(environ, start_response)``
in a worker thread of ``threadpool``; the reactor thread never runs application
code, so a slow or blocking application only ties up its own worker::

    from protocols.http import Site
    from protocols.http.wsgi import WSGIResource

    resource = WSGIResource(reactor, reactor.getThreadPool(), flask_app)
    reactor.listenTCP(8080, Site(resource))

How the two threads cooperate (one request)::

    reactor thread                         worker thread
    render: build environ, register   ->   application(environ, start_response)
            a push producer                for chunk in result:
                                               wait while paused / too much queued
    _flush: send head, request.write  <-       hand chunk over (callFromThread)
    pause/resumeProducing (transport)  ->  (the wait above)
    _finish: request.finish()         <-   result.close(); done

Every call on the request happens in the reactor thread. The worker hands body
bytes over through a small queue guarded by a condition variable and waits
while the transport has paused the response or while more than
``_QUEUE_LIMIT`` bytes are queued, so a large streamed response occupies a
bounded amount of memory however slowly the client reads.

Errors: an exception before the head is sent becomes a ``500`` page without
internals (the traceback goes to the ``protocols.http`` logger); after it, the
connection is closed so the client sees a truncated response. A client that
goes away stops the iteration; ``close()`` of the application's iterable is
called in every case.

Not here: ``wsgi.file_wrapper`` (the application's iterable is always read in
the worker thread), and the ``Expect: 100-continue`` handshake is the server's
business, not the application's.
"""

from __future__ import annotations

import io
import logging
import re
import threading
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any, Final, TypeAlias

from deferred import Failure

from .resource import NOT_DONE_YET, RenderResult

__all__ = ["WSGIResource"]

log = logging.getLogger("protocols.http.wsgi")

ExcInfo: TypeAlias = tuple[type[BaseException], BaseException, TracebackType | None]
WSGIApplication: TypeAlias = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

# Connection-level fields belong to the server (RFC 9110 §7.6.1; PEP 3333
# forbids an application to set them).
_HOP_BY_HOP: Final = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
    "trailer", "trailers", "transfer-encoding", "upgrade",
})
_TOKEN: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_STATUS: Final = re.compile(r"([1-9][0-9][0-9])(?: ([^\r\n]*))?\Z")
_NO_BODY_CODES: Final = frozenset({204, 304})

#: Body bytes handed to the reactor but not yet written to the transport,
#: above which the worker thread waits. Big enough that many small chunks
#: travel in one reactor wake-up, small enough to bound memory per response.
_QUEUE_LIMIT: Final = 64 * 1024


class _ClientGone(Exception):
    """Raised in the worker when the response can no longer be delivered."""


class _ErrorStream:
    """``wsgi.errors``: a text stream whose complete lines are logged.

    Lines go to the ``protocols.http.wsgi`` logger at ERROR level; a partial
    line waits for its newline or for :meth:`flush`.
    """

    def __init__(self) -> None:
        self._buffer: list[str] = []
        self._lock = threading.Lock()  # an application may write from several threads

    def write(self, text: str) -> int:
        """Buffer ``text``; log each line it completes."""
        if not isinstance(text, str):
            raise TypeError(f"wsgi.errors takes str, not {type(text).__name__}")
        with self._lock:
            self._buffer.append(text)
            if "\n" not in text:
                return len(text)
            lines = "".join(self._buffer).split("\n")
            self._buffer = [lines.pop()] if lines[-1] else []
        for line in lines:
            log.error("%s", line)
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        """Write each of ``lines``."""
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        """Log a pending partial line."""
        with self._lock:
            rest, self._buffer = "".join(self._buffer), []
        if rest:
            log.error("%s", rest)


def _latin1(value: bytes) -> str:
    # PEP 3333 "native strings": bytes carried into str one byte per code point.
    return value.decode("latin-1")


def _body_length(body: Any) -> int:
    """The size of the request body file, leaving its position where it was."""
    position = body.tell()
    size: int = body.seek(0, 2)
    body.seek(position)
    return size


def _build_environ(request: Any) -> dict[str, Any]:
    """The WSGI environ for ``request`` (read in the reactor thread)."""
    script = b"/" + b"/".join(request.prepath) if request.prepath else b""
    path_info = b"/" + b"/".join(request.postpath) if request.postpath else b""
    query = request.uri.partition(b"?")[2]
    body = request.content if request.content is not None else io.BytesIO()
    size = _body_length(body)
    declared = request.getHeader(b"content-length")
    peer = request.getClientAddress()
    host = request.getHost()
    environ: dict[str, Any] = {
        "REQUEST_METHOD": _latin1(request.method),
        "SCRIPT_NAME": _latin1(script),
        "PATH_INFO": _latin1(path_info),
        "QUERY_STRING": _latin1(query),
        "REQUEST_URI": _latin1(request.uri),
        "CONTENT_TYPE": _latin1(request.getHeader(b"content-type") or b""),
        # The body is complete when rendering starts: its real size is the
        # right answer even for a chunked request, which has no header.
        "CONTENT_LENGTH": str(size) if size or declared is not None else "",
        "SERVER_NAME": _latin1(request.getRequestHostname()),
        "SERVER_PORT": str(getattr(host, "port", "")),
        "SERVER_PROTOCOL": _latin1(request.clientproto),
        "REMOTE_ADDR": str(getattr(peer, "host", "")),
        "REMOTE_PORT": str(getattr(peer, "port", "")),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "https" if request.isSecure() else "http",
        "wsgi.input": body,
        "wsgi.input_terminated": True,
        "wsgi.errors": _ErrorStream(),
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    for raw_name, values in request.requestHeaders.getAllRawHeaders():
        name = _latin1(raw_name)
        if "_" in name:
            # "X_Forwarded_For" would land on the same key as
            # "X-Forwarded-For": drop it rather than let a client spoof the
            # header a proxy in front of us vouches for.
            continue
        key = name.upper().replace("-", "_")
        if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            continue
        # Repeated fields fold into one value (RFC 9110 §5.3); cookies fold
        # with "; " (RFC 6265 §5.4).
        separator = "; " if key == "COOKIE" else ", "
        environ["HTTP_" + key] = separator.join(_latin1(v) for v in values)
    return environ


def _parse_status(status: object) -> tuple[int, bytes]:
    if not isinstance(status, str):
        raise TypeError(f"WSGI status must be str, not {type(status).__name__}")
    match = _STATUS.match(status)
    if match is None:
        raise ValueError(f"WSGI status must look like '200 OK', not {status!r}")
    return int(match.group(1)), (match.group(2) or "").encode("latin-1")


def _parse_headers(headers: object) -> tuple[list[tuple[bytes, bytes]], int | None]:
    """Validate ``start_response`` headers; return them as bytes and the Content-Length."""
    if not isinstance(headers, list):
        raise TypeError(f"WSGI response headers must be a list, not {type(headers).__name__}")
    out: list[tuple[bytes, bytes]] = []
    length: int | None = None
    for item in headers:
        if not (isinstance(item, tuple) and len(item) == 2
                and isinstance(item[0], str) and isinstance(item[1], str)):
            raise TypeError(f"WSGI response header must be a (str, str) tuple: {item!r}")
        name, value = item
        if not _TOKEN.match(name):
            raise ValueError(f"invalid WSGI response header name {name!r}")
        if name.lower() in _HOP_BY_HOP:
            raise ValueError(f"hop-by-hop header {name!r} is not allowed from WSGI")
        if "\r" in value or "\n" in value or "\0" in value:
            raise ValueError(f"WSGI response header {name!r} has CR, LF or NUL: {value!r}")
        if name.lower() == "content-length":
            if not value.strip().isdigit():
                raise ValueError(f"invalid Content-Length {value!r}")
            length = int(value)
        out.append((name.encode("latin-1"), value.encode("latin-1")))
    return out, length


class _WSGIResponse:
    """One request's run of the application; see the module docstring.

    Fields marked (worker) are only touched in the worker thread, (reactor)
    only in the reactor thread; the rest are guarded by ``_cond``.
    """

    def __init__(self, reactor: Any, threadpool: Any, application: WSGIApplication,
                 request: Any) -> None:
        self.reactor = reactor
        self.threadpool = threadpool
        self.application = application
        self.request = request
        self.environ = _build_environ(request)
        self._cond = threading.Condition()
        self._paused = False
        self._stopped = False
        self._queued: list[bytes] = []
        self._queued_bytes = 0
        self._flush_scheduled = False
        # (worker) what start_response stored, and whether the head went out.
        self._status: tuple[int, bytes] | None = None
        self._headers: list[tuple[bytes, bytes]] = []
        self._remaining: int | None = None
        self._headers_sent = False
        # (reactor)
        self._head_written = False
        self._done = False
        self._trigger: Any = None

    # -- reactor thread -------------------------------------------------------

    def start(self) -> None:
        """Hook up to the request and hand the application to a worker."""
        request = self.request
        request.registerProducer(self, True)
        request.notifyFinish().addErrback(self._client_gone)
        # A shutdown closes connections and then joins the pool's threads: a
        # worker waiting for a resume that will never come must wake first.
        self._trigger = self.reactor.addSystemEventTrigger(
            "during", "shutdown", self.stopProducing)
        try:
            self.threadpool.callInThread(self._run)
        except BaseException:
            self._cleanup()
            raise

    def pauseProducing(self) -> None:
        """The transport's buffer is full: the worker waits before its next chunk."""
        with self._cond:
            self._paused = True

    def resumeProducing(self) -> None:
        """The transport drained: let the worker go on."""
        with self._cond:
            self._paused = False
            self._cond.notify_all()

    def stopProducing(self) -> None:
        """The response cannot be delivered any more: the worker stops iterating."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    def _client_gone(self, failure: Failure) -> None:
        log.debug("WSGI client went away: %s", failure.getErrorMessage())
        self.stopProducing()

    def _cleanup(self) -> None:
        self._done = True
        try:
            self.request.unregisterProducer()
        except Exception:  # the lost connection already dropped it
            log.debug("unregisterProducer failed", exc_info=True)
        if self._trigger is not None:
            trigger, self._trigger = self._trigger, None
            try:
                self.reactor.removeSystemEventTrigger(trigger)
            except ValueError:
                pass  # shutdown already fired (and consumed) it

    def _write_head(self) -> None:
        if self._head_written:
            return
        self._head_written = True
        assert self._status is not None
        code, reason = self._status
        self.request.setResponseCode(code, reason or None)
        for name, value in self._headers:
            self.request.responseHeaders.addRawHeader(name, value)

    def _flush(self) -> None:
        """Write what the worker queued (runs once per batch, not per chunk)."""
        with self._cond:
            chunks, self._queued = self._queued, []
            self._flush_scheduled = False
        size = sum(map(len, chunks))
        channel = self.request.channel
        if getattr(getattr(channel, "transport", None), "disconnecting", False):
            # Closing (the client half-closed, or the server is shutting
            # down): the transport drops writes and waits for us to
            # unregister, so an endless iterable would spin forever.
            self.stopProducing()
        try:
            if chunks and not self._done and channel is not None:
                self._write_head()
                # This may pause us at once (the transport passed its high-water mark).
                self.request.write(b"".join(chunks))
        finally:
            with self._cond:
                self._queued_bytes -= size
                self._cond.notify_all()

    def _finish(self) -> None:
        """The application is done and closed: end the response."""
        self._flush()
        if self._done:
            return
        self._cleanup()
        request = self.request
        if request.channel is None:
            return  # the client left (or the response was cut)
        assert self._status is not None
        code = self._status[0]
        if (self._remaining and request.method != b"HEAD"
                and code >= 200 and code not in _NO_BODY_CODES):
            # Ending here would leave the client waiting for bytes that
            # will never come, and the connection unusable.
            request.processingFailed(Failure(RuntimeError(
                f"WSGI application {self.application!r} sent {self._remaining} bytes "
                "fewer than its Content-Length")))
            return
        self._write_head()
        request.finish()

    def _fail(self, failure: Failure) -> None:
        """The application raised: 500 page, or a cut response if the head went out."""
        self._flush()
        if self._done:
            log.error("WSGI application %r failed", self.application,
                      exc_info=(failure.type, failure.value, failure.getTracebackObject()))
            return
        self._cleanup()
        # Logs the traceback; answers 500 when nothing was written yet, else
        # closes the connection so the truncation is visible.
        self.request.processingFailed(failure)

    def _abandon(self) -> None:
        """The worker stopped because the client left: only tidy up."""
        self._flush()
        if not self._done:
            self._cleanup()

    # -- worker thread ----------------------------------------------------------

    def _start_response(self, status: str, headers: list[tuple[str, str]],
                        exc_info: ExcInfo | None = None) -> Callable[[bytes], None]:
        """PEP 3333 ``start_response``; returns the ``write`` callable."""
        if exc_info is not None:
            try:
                if self._headers_sent:
                    # Too late to change the status: let the error end the response.
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None  # no reference cycle through the traceback
        elif self._status is not None:
            raise RuntimeError("start_response() called a second time without exc_info")
        status_pair = _parse_status(status)
        parsed, length = _parse_headers(headers)
        self._status, self._headers, self._remaining = status_pair, parsed, length
        return self._write

    def _write(self, data: bytes) -> None:
        """Queue ``data`` for the reactor, waiting while the client is behind.

        This is also the ``write`` callable that ``start_response`` returns.
        """
        if not isinstance(data, bytes):
            raise TypeError(f"WSGI body must be bytes, not {type(data).__name__}")
        if self._status is None:
            raise RuntimeError("WSGI body written before start_response()")
        if self._remaining is not None:
            # Never send more than the Content-Length promised (PEP 3333).
            data = data[:self._remaining]
            self._remaining -= len(data)
        if not data:
            return
        with self._cond:
            while not self._stopped and (self._paused or self._queued_bytes >= _QUEUE_LIMIT):
                self._cond.wait()
            if self._stopped:
                raise _ClientGone()
            self._headers_sent = True
            self._queued.append(data)
            self._queued_bytes += len(data)
            schedule = not self._flush_scheduled
            self._flush_scheduled = True
        if schedule:
            self.reactor.callFromThread(self._flush)

    def _run(self) -> None:
        """The whole application call, in a worker thread."""
        result: Any = None
        outcome: Callable[..., None] = self._finish
        args: tuple[Any, ...] = ()
        try:
            result = self.application(self.environ, self._start_response)
            self._guess_length(result)
            for chunk in result:
                if self._stopped:
                    raise _ClientGone()
                self._write(chunk)
                if self._remaining == 0:
                    break  # Content-Length reached: stop iterating (PEP 3333)
            if self._status is None:
                raise RuntimeError("WSGI application returned without calling start_response()")
        except _ClientGone:
            outcome = self._abandon
        except BaseException:
            outcome, args = self._fail, (Failure(),)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                try:
                    close()
                except BaseException:
                    if outcome is not self._fail:
                        outcome, args = self._fail, (Failure(),)
                    else:
                        log.exception("close() of a failed WSGI response raised too")
            self.environ["wsgi.errors"].flush()
        self.reactor.callFromThread(outcome, *args)

    def _guess_length(self, result: object) -> None:
        # PEP 3333 suggests it: a one-item list is the whole body, so the
        # response can carry a Content-Length instead of being chunked.
        if (self._status is not None and self._remaining is None and not self._headers_sent
                and type(result) in (list, tuple) and len(result) == 1  # type: ignore[arg-type]
                and isinstance(result[0], bytes)  # type: ignore[index]
                and self._status[0] >= 200 and self._status[0] not in _NO_BODY_CODES):
            size = len(result[0])  # type: ignore[index]
            self._headers.append((b"Content-Length", b"%d" % size))
            self._remaining = size


class WSGIResource:
    """A leaf resource that runs a PEP 3333 application in a thread pool.

    Args:
        reactor: The reactor (or the ``reactor`` module) serving the requests.
        threadpool: Where the application runs; anything with
            ``callInThread``, usually ``reactor.getThreadPool()``.
        application: The WSGI application callable.

    The environ's ``SCRIPT_NAME`` is the path consumed to reach this
    resource and ``PATH_INFO`` the rest, both percent-decoded and carried as
    latin-1 strings (PEP 3333). Request header fields whose names contain
    ``_`` are not passed on (they would collide with their ``-`` spelling).

    Example:
        >>> def app(environ, start_response):
        ...     start_response("200 OK", [("Content-Type", "text/plain")])
        ...     return [b"hello"]
        >>> # root.putChild(b"app", WSGIResource(reactor, reactor.getThreadPool(), app))
    """

    isLeaf = True
    # The application reads wsgi.input itself: the server leaves form bodies alone.
    parseForms = False

    def __init__(self, reactor: Any, threadpool: Any, application: WSGIApplication) -> None:
        self._reactor = reactor
        self._threadpool = threadpool
        self._application = application

    def render(self, request: Any) -> RenderResult:
        """Start the application for ``request``; the response follows from its thread."""
        _WSGIResponse(self._reactor, self._threadpool, self._application, request).start()
        return NOT_DONE_YET

    def getChildWithDefault(self, path: bytes, request: Any) -> Any:
        """Never called for a leaf; the whole remaining path goes to the application."""
        raise RuntimeError("a WSGIResource has no children: the application owns the path")

    def putChild(self, path: bytes, child: Any) -> None:
        """Refused: the application owns every path below this resource."""
        raise RuntimeError("a WSGIResource has no children: the application owns the path")

