"""HTTP/1.1 client: ``Agent`` and friends, as in ``twisted.web.client``.

A request gives a Deferred that fires with the :class:`Response` head; the
body streams to a protocol given to ``response.deliverBody`` (or is
collected by :func:`readBody`)::

    from protocols.http.client import Agent, HTTPConnectionPool, readBody

    agent = Agent(reactor, pool=HTTPConnectionPool(reactor))
    response = await agent.request(b"GET", b"https://example.org/")
    body = await readBody(response)

Wrappers add behaviour and take the same ``request`` call:
:class:`RedirectAgent`, :class:`BrowserLikeRedirectAgent`,
:class:`ContentDecoderAgent`. For scripts there are awaitable shortcuts,
:func:`get`, :func:`post` and :func:`request`, which follow redirects,
decode gzip and keep connections alive per reactor.

Timeouts: ``connectTimeout`` bounds connecting (TCP and TLS handshake,
``ConnectTimeoutError``); ``timeout`` (an ``Agent`` option, or
``Agent.request(..., timeout=...)`` for one request) bounds the whole
exchange, from connecting to the last byte of the response body
(``RequestTimeoutError``: the request Deferred fails with it, or the body
protocol gets ``ResponseFailed([RequestTimeoutError])``).

TLS: ``https`` URLs verify the server's certificate chain and host name, with
the system's CAs by default. ``contextFactory`` may be an
``ssl.SSLContext``, or a policy with ``creatorForNetloc(host, port)``
returning one (as Twisted's ``BrowserLikePolicyForHTTPS``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from typing import IO, Any, Final
from urllib.parse import urlsplit

from deferred import CancelledError, Deferred, Failure, fail, succeed
from protocols.base import Protocol
from reactor.task import Cooperator, NotPaused, TaskFinished, TaskStopped

from ._client_errors import (
    ConnectTimeoutError,
    DecompressionLimitError,
    InfiniteRedirection,
    PageRedirect,
    PartialDownloadError,
    PotentialDataLoss,
    RedirectLimitError,
    RedirectWithNoLocation,
    RequestGenerationFailed,
    RequestNotSent,
    RequestTimeoutError,
    RequestTransmissionFailed,
    ResponseDone,
    ResponseFailed,
    ResponseNeverReceived,
    ResponseParseError,
    SchemeNotSupported,
    TLSConnectError,
)
from ._client_protocol import (
    RESPONSE_DONE,
    UNKNOWN_LENGTH,
    HTTP11ClientProtocol,
    IBodyProducer,
    Request,
    Response,
)
from ._client_response import Length
from ._client_simple import HTTPResult, get, post, request
from ._client_wrappers import (
    BrowserLikeRedirectAgent,
    ContentDecoderAgent,
    DeflateDecoder,
    GzipDecoder,
    RedirectAgent,
)
from ._pool import HTTPConnectionPool, _Endpoint
from .server import Headers

__all__ = [
    "UNKNOWN_LENGTH",
    "URI",
    "Agent",
    "BrowserLikeRedirectAgent",
    "BytesBodyProducer",
    "ConnectTimeoutError",
    "ContentDecoderAgent",
    "DecompressionLimitError",
    "DeflateDecoder",
    "FileBodyProducer",
    "GzipDecoder",
    "HTTP11ClientProtocol",
    "HTTPConnectionPool",
    "HTTPResult",
    "Headers",
    "IBodyProducer",
    "InfiniteRedirection",
    "PageRedirect",
    "PartialDownloadError",
    "PotentialDataLoss",
    "RedirectAgent",
    "RedirectLimitError",
    "RedirectWithNoLocation",
    "Request",
    "RequestGenerationFailed",
    "RequestNotSent",
    "RequestTimeoutError",
    "RequestTransmissionFailed",
    "Response",
    "ResponseDone",
    "ResponseFailed",
    "ResponseNeverReceived",
    "ResponseParseError",
    "SchemeNotSupported",
    "TLSConnectError",
    "get",
    "post",
    "readBody",
    "request",
]

log = logging.getLogger("protocols.http.client")

_DEFAULT_PORTS: Final = {b"http": 80, b"https": 443}
# Whitespace and control characters have no place in a URL (searched in C:
# a generator over every byte cost microseconds per request).
_BAD_URL_BYTE: Final = re.compile(rb"[\x00-\x20\x7f]")
#: Methods safe to send twice (RFC 9110 §9.2.2), so retried on a stale connection.
_IDEMPOTENT: Final = frozenset({b"GET", b"HEAD", b"OPTIONS", b"DELETE", b"TRACE"})


class URI:
    """An ``http``/``https`` URL split into what a request needs.

    Attributes:
        scheme: ``b"http"`` or ``b"https"`` (lower case).
        host: The host name or address, without IPv6 brackets.
        port: The port, defaulted from the scheme.
        path: The request target: path (at least ``/``) and query.
    """

    def __init__(self, scheme: bytes, host: bytes, port: int, path: bytes) -> None:
        self.scheme = scheme
        self.host = host
        self.port = port
        self.path = path

    @classmethod
    def fromBytes(cls, uri: bytes) -> URI:
        """Parse ``uri``.

        Raises:
            SchemeNotSupported: Not http or https.
            ValueError: No host, a bad port, or whitespace/control characters.
        """
        if _BAD_URL_BYTE.search(uri) is not None:
            raise ValueError(f"invalid character in URL {uri!r}")
        parts = urlsplit(uri)
        scheme = parts.scheme.lower()
        if scheme not in _DEFAULT_PORTS:
            raise SchemeNotSupported(f"unsupported scheme {scheme.decode('latin-1')!r} "
                                     f"in {uri.decode('latin-1')!r}")
        host = parts.hostname
        if not host:
            raise ValueError(f"no host in URL {uri!r}")
        port = parts.port or _DEFAULT_PORTS[scheme]
        path = parts.path or b"/"
        if parts.query:
            path += b"?" + parts.query
        return cls(scheme, host, port, path)

    @property
    def hostHeader(self) -> bytes:
        """The ``Host`` header value: host, and the port unless the default."""
        host = b"[" + self.host + b"]" if b":" in self.host else self.host
        if self.port != _DEFAULT_PORTS[self.scheme]:
            host += b":%d" % self.port
        return host

    def toBytes(self) -> bytes:
        """The absolute URI again."""
        return self.scheme + b"://" + self.hostHeader + self.path


class Agent:
    """Makes HTTP/1.1 requests (Twisted's ``Agent``).

    Args:
        reactor: The reactor to connect with.
        contextFactory: TLS settings for https: None (system CAs, names
            checked), an ``ssl.SSLContext``, or a policy object with
            ``creatorForNetloc(host, port)``.
        connectTimeout: Seconds allowed to connect (TLS handshake included);
            None means the reactor's default (30 s).
        bindAddress: Local ``(host, port)`` to connect from.
        pool: The :class:`HTTPConnectionPool`; by default a non-persistent one
            (one connection per request), as in Twisted.
        timeout: Seconds allowed for each whole request (to the end of the
            response body); None for no limit. ``request(timeout=...)``
            overrides it per request.
    """

    def __init__(self, reactor: Any, contextFactory: Any = None,
                 connectTimeout: float | None = None, bindAddress: Any = None,
                 pool: HTTPConnectionPool | None = None, *,
                 timeout: float | None = None) -> None:
        self._reactor = reactor
        self._contextFactory = contextFactory
        self._connectTimeout = connectTimeout
        self._bindAddress = bindAddress
        self._pool = pool if pool is not None else HTTPConnectionPool(reactor, persistent=False)
        self._timeout = timeout
        self._uris: dict[bytes, URI] = {}

    def request(self, method: bytes, uri: bytes, headers: Headers | None = None,
                bodyProducer: IBodyProducer | None = None, *,
                timeout: float | object | None = ...) -> Deferred[Response]:
        """Send a request; the Deferred fires with the :class:`Response` head.

        Args:
            method: e.g. ``b"GET"``.
            uri: An absolute ``http://`` or ``https://`` URL.
            headers: Extra header fields (``Host`` is added when missing).
            bodyProducer: The body; its ``length`` gives ``Content-Length``,
                or :data:`UNKNOWN_LENGTH` for a chunked body.
            timeout: Overrides the agent's ``timeout`` for this request.

        Returns:
            A Deferred for the Response. Failures: ``SchemeNotSupported``,
            ``ConnectError`` subclasses (``ConnectTimeoutError``,
            ``TLSConnectError``, ``ConnectionRefusedError``...),
            ``RequestTimeoutError``, ``ResponseNeverReceived``,
            ``ResponseFailed``, ``RequestGenerationFailed``,
            ``RequestTransmissionFailed``. Cancelling it aborts the request.
        """
        parsed = self._uris.get(uri)
        if parsed is None:
            try:
                parsed = URI.fromBytes(uri)
            except (ValueError, SchemeNotSupported):
                return fail(Failure())
            # Clients call the same few URLs again and again (an XML-RPC
            # Proxy always the same one): parse each once. Bounded, since
            # URLs may come from anywhere.
            if len(self._uris) >= 64:
                self._uris.clear()
            self._uris[uri] = parsed
        sent = _copied(headers)
        if not sent.hasHeader(b"host"):
            sent.setRawHeaders(b"Host", [parsed.hostHeader])
        pool = self._pool
        req = Request(method, parsed.path, sent, bodyProducer, pool.persistent, parsed.toBytes())
        key = (parsed.scheme, parsed.host, parsed.port,
               id(self._contextFactory) if parsed.scheme == b"https" else 0)
        endpoint = _Endpoint(self._reactor, parsed.scheme, parsed.host, parsed.port,
                             self._contextFactory, self._connectTimeout, self._bindAddress)
        limit = self._timeout if timeout is ... else timeout
        assert limit is None or isinstance(limit, int | float)
        return _Attempt(self._reactor, pool, key, endpoint, req, limit).start()


def _copied(headers: Headers | None) -> Headers:
    """A copy of ``headers`` without fields that have no value (they send nothing)."""
    fields = getattr(headers, "_fields", None)
    if fields is None:  # None, or another object with getAllRawHeaders
        return Headers(list(_pairs(headers)))
    # Our Headers: copied by its dict, not value by value through addRawHeader.
    copy = Headers()
    copy._fields = {key: (name, list(values))
                    for key, (name, values) in fields.items() if values}
    return copy


def _pairs(headers: Headers | None) -> Iterator[tuple[bytes, bytes]]:
    if headers is None:
        return
    for name, values in headers.getAllRawHeaders():
        for value in values:
            yield name, value


def _should_retry(request: Request, failure: Failure) -> bool:
    """Twisted's rule: idempotent, bodiless, nothing received, not cancelled."""
    if request.method not in _IDEMPOTENT or request.bodyProducer is not None:
        return False
    error = failure.value
    if isinstance(error, RequestNotSent):
        return True
    if isinstance(error, ResponseNeverReceived | RequestTransmissionFailed):
        return not any(reason.check(CancelledError) for reason in error.reasons)
    return False


class _Attempt:
    """One ``Agent.request``: get a connection, send, retry once if it was stale."""

    def __init__(self, reactor: Any, pool: HTTPConnectionPool, key: Any, endpoint: _Endpoint,
                 request: Request, timeout: float | None) -> None:
        self.reactor = reactor
        self.pool = pool
        self.key = key
        self.endpoint = endpoint
        self.request = request
        self.timeout = timeout
        self.deadline = reactor.seconds() + timeout if timeout is not None else None
        self.result: Deferred[Response] = Deferred(self._cancel)
        self.current: Deferred[Any] | None = None
        self.timer: Any = None
        self.timed_out = False
        self.handed_over = False  # the connection's own timer covers the rest

    def start(self) -> Deferred[Response]:
        self._connect(self.pool.getConnection(self.key, self.endpoint), retried=False)
        if self.deadline is not None and not self.handed_over and not self.result.called:
            # Still connecting. A cached connection takes the request at once
            # (no timer needed here then: arming and cancelling one on every
            # keep-alive request was a measurable part of a small call).
            self.timer = self.reactor.callLater(
                max(self.deadline - self.reactor.seconds(), 0.0), self._time_out)
        return self.result

    def _connect(self, connecting: Deferred[HTTP11ClientProtocol], retried: bool) -> None:
        self.current = connecting
        connecting.addCallbacks(self._connected, self._failed,
                                callbackArgs=(retried,), errbackArgs=(None, retried))

    def _connected(self, connection: HTTP11ClientProtocol, retried: bool) -> None:
        self.current = None
        if self.result.called:  # cancelled or timed out meanwhile: give it back
            if connection.transport is not None:
                connection.transport.loseConnection()
            return
        remaining = None
        if self.deadline is not None:
            remaining = max(self.deadline - self.reactor.seconds(), 0.0)
            # From here on the connection's own timer covers the deadline.
            self._cancel_timer()
        self.handed_over = True
        sending = self.current = connection.request(self.request, remaining, self.timeout)
        sending.addCallbacks(self._done, self._failed,
                             errbackArgs=(connection, retried))

    def _done(self, response: Response) -> None:
        self.current = None
        self._cancel_timer()
        if not self.result.called:
            self.result.callback(response)

    def _failed(self, failure: Failure, connection: HTTP11ClientProtocol | None,
                retried: bool) -> None:
        self.current = None
        if self.result.called:
            return
        if (connection is not None and connection.reused and not retried
                and self.pool.retryAutomatically and _should_retry(self.request, failure)):
            log.debug("retrying %s %s on a new connection after %s", self.request.method,
                      self.request.absoluteURI, failure.getErrorMessage())
            self._connect(self.pool._newConnection(self.key, self.endpoint), retried=True)
            return
        if self.timed_out:
            failure = Failure(RequestTimeoutError(self.timeout or 0.0,
                                                  self.request.absoluteURI or b""))
        self._cancel_timer()
        self.result.errback(failure)

    def _time_out(self) -> None:
        self.timer = None
        self.timed_out = True
        if self.current is not None:
            self.current.cancel()

    def _cancel_timer(self) -> None:
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
        self.timer = None

    def _cancel(self, d: Deferred[Response]) -> None:
        self._cancel_timer()
        current = self.current
        if current is not None:
            current.cancel()


# -- bodies --------------------------------------------------------------------------


class _ReadBodyProtocol(Protocol):
    transport: Any = None
    def __init__(self, response: Response, deferred: Deferred[bytes]) -> None:
        self._response = response
        self._deferred = deferred
        self._chunks: list[bytes] = []
        self.cancelled = False

    def dataReceived(self, data: bytes) -> None:
        self._chunks.append(data)

    def connectionLost(self, reason: Failure = RESPONSE_DONE) -> None:
        if self._deferred.called or self.cancelled:
            return  # a cancelled Deferred fails with CancelledError by itself
        body = b"".join(self._chunks)
        if reason.check(ResponseDone):
            self._deferred.callback(body)
        elif reason.check(PotentialDataLoss):
            status = str(self._response.code).encode("ascii")
            self._deferred.errback(PartialDownloadError(status, self._response.phrase, body))
        else:
            self._deferred.errback(reason)


def readBody(response: Response) -> Deferred[bytes]:
    """Collect the whole body of ``response``.

    Fails with ``ResponseFailed`` if the body is cut short, and with
    :class:`PartialDownloadError` (holding the bytes in ``.response``) when the
    body ended with the connection and so may be incomplete, as Twisted does.
    Cancelling it abandons the body and closes the connection
    (``CancelledError``).
    """
    def cancel(d: Deferred[bytes]) -> None:
        protocol.cancelled = True
        if protocol.transport is not None:
            protocol.transport.stopProducing()

    d: Deferred[bytes] = Deferred(cancel)
    protocol = _ReadBodyProtocol(response, d)
    response.deliverBody(protocol)
    return d


class FileBodyProducer:
    """Sends an open binary file as a request body (Twisted's ``FileBodyProducer``).

    The length is found by seeking (``UNKNOWN_LENGTH``, so a chunked body,
    when the file cannot seek). ``readSize`` bytes are read per step, one step
    per reactor turn, and the transport pauses it when its buffer is full. The
    file is closed when the body is sent or the producer stopped.

    Args:
        inputFile: A binary file object open for reading.
        cooperator: A ``reactor.task.Cooperator`` (or anything with
            ``cooperate``); by default a private one that schedules with the
            installed reactor.
        readSize: Bytes read per step.
    """

    def __init__(self, inputFile: IO[bytes], cooperator: Any = None,
                 readSize: int = 2 ** 16) -> None:
        self._inputFile = inputFile
        self._cooperator = cooperator
        self._readSize = readSize
        self._task: Any = None
        self.length: Length = self._determineLength(inputFile)

    @staticmethod
    def _determineLength(fileobj: IO[bytes]) -> Length:
        try:
            original = fileobj.tell()
            end = fileobj.seek(0, 2)
            fileobj.seek(original, 0)
        except (AttributeError, OSError, ValueError):
            return UNKNOWN_LENGTH
        return max(end - original, 0)

    def startProducing(self, consumer: Any) -> Deferred[None]:
        """Write the file to ``consumer``; the Deferred fires when all is written."""
        cooperator = self._cooperator
        if cooperator is None:
            import reactor as reactor_module

            clock = reactor_module.getReactor()
            cooperator = Cooperator(scheduler=lambda tick: clock.callLater(0, tick))
        self._task = cooperator.cooperate(self._writeloop(consumer))
        done: Deferred[None] = Deferred()

        def finished(_: object) -> None:
            done.callback(None)

        def failed(failure: Failure) -> None:
            if not failure.check(TaskStopped):  # stopProducing: never fires, as Twisted
                done.errback(failure)

        self._task.whenDone().addCallbacks(finished, failed)
        return done

    def _writeloop(self, consumer: Any) -> Iterator[None]:
        while True:
            data = self._inputFile.read(self._readSize)
            if not data:
                self._inputFile.close()
                return
            consumer.write(data)
            yield None

    def pauseProducing(self) -> None:
        """Stop reading the file until :meth:`resumeProducing`."""
        if self._task is not None:
            try:
                self._task.pause()
            except TaskFinished:
                pass

    def resumeProducing(self) -> None:
        """Carry on reading."""
        if self._task is not None:
            try:
                self._task.resume()
            except NotPaused:
                pass

    def stopProducing(self) -> None:
        """Stop for good and close the file."""
        self._inputFile.close()
        if self._task is not None:
            try:
                self._task.stop()
            except TaskFinished:
                pass


class BytesBodyProducer:
    """A request body held in memory, written in one go (``length`` is known).

    Example:
        >>> BytesBodyProducer(b"payload").length
        7
    """

    def __init__(self, data: bytes) -> None:
        self._data = data
        self.length: Length = len(data)

    def startProducing(self, consumer: Any) -> Deferred[None]:
        consumer.write(self._data)
        return succeed(None)

    def pauseProducing(self) -> None:
        """Nothing to pause: everything was written at once."""

    def resumeProducing(self) -> None:
        """See :meth:`pauseProducing`."""

    def stopProducing(self) -> None:
        """See :meth:`pauseProducing`."""

    def replay(self) -> BytesBodyProducer:
        """A fresh producer of the same body (to resend it after a 307/308)."""
        return BytesBodyProducer(self._data)
