"""XML-RPC client: :class:`Proxy`, as Twisted's ``twisted.web.xmlrpc.Proxy``.

::

    from protocols.xmlrpc.client import Proxy, Fault

    proxy = Proxy("https://user:secret@rpc.example/RPC2")
    total = await proxy.callRemote("add", 2, 3)        # a Deferred; awaitable
    try:
        await proxy.callRemote("explode")
    except Fault as fault:
        print(fault.faultCode, fault.faultString)

Calls are ``POST`` requests (``Content-Type: text/xml``) made with the HTTP
client (:mod:`protocols.http.client`): connections are kept alive in a
persistent :class:`~protocols.http.client.HTTPConnectionPool` shared by every
Proxy on the same reactor (pass ``pool=`` to use your own), ``https`` URLs
verify the server's certificate and host name, and gzip-encoded responses are
decoded (with a bound on the decoded size).

How a call can fail (the Deferred's Failure wraps):

=================================  ============================================
``xmlrpc.client.Fault``            The server answered with a fault;
                                   ``faultCode`` and ``faultString`` say which.
:class:`HTTPStatusError`           The server answered with a status other
                                   than 200 (a ``ValueError``, as Twisted).
:class:`MalformedResponseError`    The body is not an XML-RPC response
                                   (bad XML, no single return value, a DTD,
                                   too large; a ``ValueError`` too).
``ConnectTimeoutError``            Connecting (TLS handshake included) took
                                   longer than ``connectTimeout``.
``RequestTimeoutError``            The whole call took longer than ``timeout``.
``TLSConnectError``                The certificate did not verify.
``ConnectionRefusedError``, ...    As the HTTP client reports them.
``TypeError``                      An argument cannot be marshalled (e.g.
                                   None without ``allowNone``).
=================================  ============================================

:meth:`Proxy.multicall` batches calls into one ``system.multicall`` request;
see :class:`MultiCall`.
"""

from __future__ import annotations

import base64
import xmlrpc.client
from collections.abc import Callable
from functools import partial
from typing import Any, Final
from urllib.parse import unquote, urlsplit, urlunsplit
from xml.sax.saxutils import escape

from deferred import CancelledError, Deferred, Failure, fail, succeed
from protocols.http.client import (
    Agent,
    BytesBodyProducer,
    ContentDecoderAgent,
    DecompressionLimitError,
    GzipDecoder,
    Headers,
    HTTPConnectionPool,
    PotentialDataLoss,
    RequestTimeoutError,
    RequestTransmissionFailed,
    Response,
    ResponseDone,
    ResponseFailed,
    ResponseNeverReceived,
)

from ._marshal import MarshalError, XMLRPCLimits, loads_response

__all__ = [
    "DEFAULT_MAX_RESPONSE_SIZE",
    "DEFAULT_TIMEOUT",
    "Fault",
    "HTTPStatusError",
    "MalformedResponseError",
    "MultiCall",
    "Proxy",
]

#: The stdlib's Fault: what a fault response raises (Twisted raises it too).
Fault = xmlrpc.client.Fault

#: Seconds a whole call may take by default (connecting to the last body byte).
DEFAULT_TIMEOUT: Final = 120.0
#: Largest response body accepted by default (after gzip decoding), in bytes.
DEFAULT_MAX_RESPONSE_SIZE: Final = 64 * 1024 * 1024

USER_AGENT: Final = b"torsion-xmlrpc"


class HTTPStatusError(ValueError):
    """The server answered with an HTTP status other than 200.

    A ``ValueError`` whose ``args`` are ``(status, message)`` as bytes, like
    the one Twisted's Proxy raises, so Twisted code that catches it works.

    Attributes:
        status: The status code (an int, e.g. 404).
        message: The reason phrase (bytes).
        body: The start of the response body (at most 1024 bytes).
    """

    def __init__(self, status: int, message: bytes, body: bytes = b"") -> None:
        super().__init__(b"%d" % status, message)
        self.status = status
        self.message = message
        self.body = body[:1024]

    def __str__(self) -> str:
        return f"XML-RPC server answered HTTP {self.status} {self.message.decode('latin-1')}"


class MalformedResponseError(ValueError):
    """The response body is not a usable XML-RPC response.

    Attributes:
        reason: What is wrong with it.
        body: The start of the body (at most 1024 bytes), for diagnosis.
    """

    def __init__(self, reason: str, body: bytes = b"") -> None:
        super().__init__(reason)
        self.reason = reason
        self.body = body[:1024]

    def __str__(self) -> str:
        return f"malformed XML-RPC response: {self.reason}"


# -- parsing -----------------------------------------------------------------------


def _parse_response(body: bytes, limits: XMLRPCLimits, use_datetime: bool,
                    use_builtin_types: bool) -> Any:
    """The return value of a methodResponse, or raise.

    The server side's hardened reader does the work: size and nesting
    limits, DTDs and entity declarations refused.

    Raises:
        Fault: The response is a fault.
        MalformedResponseError: Anything that is not exactly one return value.
    """
    try:
        return loads_response(body, limits, use_datetime, use_builtin_types)
    except Fault:
        raise
    except MarshalError as e:
        raise MalformedResponseError(e.faultString, body) from e
    except Exception as e:  # whatever else the unmarshaller trips on
        raise MalformedResponseError(f"{type(e).__name__}: {e}", body) from e


# -- the proxy ---------------------------------------------------------------------

_WRAPPERS: Final = (ResponseFailed, ResponseNeverReceived, RequestTransmissionFailed)

_pools: dict[Any, HTTPConnectionPool] = {}


def _shared_pool(reactor: Any) -> HTTPConnectionPool:
    """The persistent pool every Proxy on ``reactor`` shares (closed at shutdown)."""
    pool = _pools.get(reactor)
    if pool is None:
        pool = _pools[reactor] = HTTPConnectionPool(reactor, persistent=True)

        def shutdown() -> Deferred[None]:
            # Close idle connections before the reactor stops, so no socket
            # outlives it; a later call builds a new pool.
            _pools.pop(reactor, None)
            return pool.closeCachedConnections()

        reactor.addSystemEventTrigger("before", "shutdown", shutdown)
    return pool


def _as_bytes(value: str | bytes | None) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    return value.encode("utf-8")


class Proxy:
    """Calls methods on an XML-RPC server (Twisted's ``Proxy``).

    Args:
        url: The server's URL, ``http://`` or ``https://`` (str or bytes); it
            may carry credentials: ``http://user:password@host/RPC2``.
        user: Basic-auth user name; overrides the URL's.
        password: Basic-auth password; overrides the URL's.
        allowNone: Allow None in arguments (the ``<nil/>`` extension).
        useDateTime: Return ``dateTime.iso8601`` values as ``datetime.datetime``
            rather than ``xmlrpc.client.DateTime``.
        connectTimeout: Seconds allowed to connect (TLS handshake included).
        reactor: The reactor; by default the installed one, found at the first
            call. (Seventh, as in Twisted, so Twisted's positional calls work.)
        timeout: Seconds allowed for a whole call, from connecting to the
            last byte of the response; None for no limit.
        contextFactory: TLS settings for https: None verifies against the
            system's CAs; an ``ssl.SSLContext`` or a policy with
            ``creatorForNetloc(host, port)`` replaces that.
        useBuiltinTypes: Return ``bytes`` for base64 and ``datetime`` for
            dateTime values (as the stdlib's ``use_builtin_types``).
        pool: An :class:`HTTPConnectionPool` of your own; by default one
            persistent pool per reactor, shared by all proxies, whose idle
            connections close when the reactor shuts down.
        maxResponseSize: Largest (decoded) response body accepted, in bytes.
    """

    def __init__(self, url: str | bytes, user: str | bytes | None = None,
                 password: str | bytes | None = None, allowNone: bool = False,
                 useDateTime: bool = False, connectTimeout: float | None = 30.0,
                 reactor: Any = None, timeout: float | None = DEFAULT_TIMEOUT,
                 contextFactory: Any = None, useBuiltinTypes: bool = False, *,
                 pool: HTTPConnectionPool | None = None,
                 maxResponseSize: int = DEFAULT_MAX_RESPONSE_SIZE) -> None:
        raw = url.decode("utf-8") if isinstance(url, bytes) else url
        parts = urlsplit(raw)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {raw!r}")
        netloc = parts.netloc.rpartition("@")[2]  # credentials go in a header
        target = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
        #: The URL calls are posted to, without credentials (bytes, as Twisted).
        self.url: bytes = target.encode("utf-8")
        self.user: bytes | None = _as_bytes(user)
        if self.user is None and parts.username is not None:
            self.user = unquote(parts.username).encode("utf-8")
        self.password: bytes | None = _as_bytes(password)
        if self.password is None and parts.password is not None:
            self.password = unquote(parts.password).encode("utf-8")
        self.allowNone = allowNone
        self.useDateTime = useDateTime
        self.useBuiltinTypes = useBuiltinTypes
        self.connectTimeout = connectTimeout
        self.timeout = timeout
        self.contextFactory = contextFactory
        self.maxResponseSize = maxResponseSize
        self._reactor = reactor
        self._pool = pool
        self._agent: Any = None
        self._sentHeaders: tuple[tuple[bytes | None, bytes | None], Headers] | None = None
        self._limits = XMLRPCLimits(max_body=maxResponseSize,
                                    max_decompressed=maxResponseSize)

    def __repr__(self) -> str:
        return f"<Proxy {self.url.decode('utf-8')}>"

    @property
    def reactor(self) -> Any:
        """The reactor calls run on (the installed one unless one was given)."""
        if self._reactor is None:
            import reactor as reactor_module

            self._reactor = reactor_module.getReactor()
        return self._reactor

    def _get_agent(self) -> Any:
        if self._agent is None:
            reactor = self.reactor
            pool = self._pool if self._pool is not None else _shared_pool(reactor)
            agent = Agent(reactor, contextFactory=self.contextFactory,
                          connectTimeout=self.connectTimeout, pool=pool,
                          timeout=self.timeout)
            gzip = partial(GzipDecoder, maxSize=self.maxResponseSize)
            self._agent = ContentDecoderAgent(agent, [(b"gzip", gzip)])
        return self._agent

    def _headers(self) -> Headers:
        # The same for every call while the credentials stay: made once. The
        # Agent copies what it is given, so sharing it between calls is safe.
        key = (self.user, self.password)
        if self._sentHeaders is None or self._sentHeaders[0] != key:
            self._sentHeaders = (key, self._makeHeaders())
        return self._sentHeaders[1]

    def _makeHeaders(self) -> Headers:
        headers = Headers()
        headers.setRawHeaders(b"Content-Type", [b"text/xml; charset=utf-8"])
        headers.setRawHeaders(b"User-Agent", [USER_AGENT])
        if self.user is not None or self.password is not None:
            credentials = (self.user or b"") + b":" + (self.password or b"")
            headers.setRawHeaders(b"Authorization",
                                  [b"Basic " + base64.b64encode(credentials)])
        return headers

    def callRemote(self, method: str, *args: Any) -> Deferred[Any]:
        """Call ``method(*args)`` on the server.

        Args:
            method: The method name, e.g. ``"add"`` or ``"math.add"``.
            *args: Marshallable arguments: int, float, bool, str, bytes /
                ``Binary``, datetime / ``DateTime``, list, tuple, dict with
                str keys, and None when ``allowNone`` is set.

        Returns:
            A Deferred (awaitable) for the method's return value; its
            failures are listed in the module docstring. Cancelling it
            aborts the call.
        """
        try:
            payload = self._payload(method, args)
        except Exception:
            return fail(Failure())
        return self._post(payload).addCallback(self._decode)

    def _payload(self, method: str, args: tuple[Any, ...]) -> bytes:
        if not isinstance(method, str) or not method:
            raise TypeError(f"method name must be a non-empty str, not {method!r}")
        # The stdlib writes the method name unescaped; escape it ourselves so
        # a name can never break (or inject into) the request document.
        body = xmlrpc.client.dumps(args, allow_none=self.allowNone, encoding="utf-8")
        return (f"<?xml version='1.0'?>\n<methodCall>\n<methodName>{escape(method)}"
                f"</methodName>\n{body}</methodCall>\n").encode()

    def _decode(self, body: bytes) -> Any:
        return _parse_response(body, self._limits, self.useDateTime,
                               self.useBuiltinTypes)

    def _post(self, payload: bytes) -> Deferred[bytes]:
        """POST ``payload``; the Deferred fires with the 200 response's body."""
        try:
            agent = self._get_agent()
        except Exception:
            return fail(Failure())
        current: list[Deferred[Any]] = []

        def cancel(d: Deferred[bytes]) -> None:
            if current:
                current[-1].cancel()

        result: Deferred[bytes] = Deferred(cancel)
        requesting: Deferred[Response] = agent.request(b"POST", self.url, self._headers(),
                                                       BytesBodyProducer(payload))
        current.append(requesting)

        def got_response(response: Response) -> None:
            if response.code == 200:
                reading = _read_limited(response, self.maxResponseSize)
            else:  # only for the error's ``body``: keep the start, drop the rest
                reading = _read_limited(response, _ERROR_BODY, truncate=True)
            current.append(reading)
            reading.addCallbacks(partial(got_body, response), failed)

        def got_body(response: Response, body: bytes) -> None:
            if result.called:
                return
            if response.code != 200:
                result.errback(HTTPStatusError(response.code, response.phrase, body))
            else:
                result.callback(body)

        def failed(failure: Failure) -> None:
            if not result.called:
                result.errback(_unwrap(failure))

        requesting.addCallbacks(got_response, failed)
        return result

    def multicall(self) -> MultiCall:
        """Start a batch of calls sent together as one ``system.multicall``.

        Example:
            >>> mc = proxy.multicall()                 # doctest: +SKIP
            >>> mc.add(1, 2); mc.math.pow(2, 8); mc.callRemote("echo", "x")
            >>> results = await mc()                   # [3, 256, 'x']
        """
        return MultiCall(self)


def _unwrap(failure: Failure) -> Failure:
    """Report the one meaningful cause rather than the HTTP client's wrapper.

    A timeout, a cancellation or an oversized body inside ``ResponseFailed``
    (or its siblings) is raised as itself.
    """
    error = failure.value
    if not isinstance(error, _WRAPPERS):
        return failure
    reason: Failure
    for reason in error.reasons:
        if reason.check(RequestTimeoutError, MalformedResponseError, CancelledError):
            return reason
        if reason.check(DecompressionLimitError):
            return Failure(MalformedResponseError(str(reason.value)))
    return failure


#: Bytes of a non-200 response body kept (for ``HTTPStatusError.body``).
_ERROR_BODY: Final = 1024


class _LimitedBody:
    """Body protocol: collects at most ``limit`` bytes.

    Beyond that the body is abandoned (the connection closes) and the call
    fails, or, with ``truncate``, succeeds with the first ``limit`` bytes.
    """

    def __init__(self, deferred: Deferred[bytes], limit: int, truncate: bool) -> None:
        self.deferred = deferred
        self.limit = limit
        self.truncate = truncate
        self.chunks: list[bytes] = []
        self.size = 0
        self.transport: Any = None

    def makeConnection(self, transport: Any) -> None:
        self.transport = transport

    def dataReceived(self, data: bytes) -> None:
        if self.deferred.called:
            return
        self.size += len(data)
        if self.size <= self.limit:
            self.chunks.append(data)
            return
        if self.truncate:
            self.chunks.append(data)
            self.deferred.callback(b"".join(self.chunks)[:self.limit])
        else:
            self.deferred.errback(
                MalformedResponseError(f"response larger than {self.limit} bytes"))
        self.transport.stopProducing()

    def connectionLost(self, reason: Failure) -> None:
        if self.deferred.called:
            return
        # PotentialDataLoss: an HTTP/1.0 body ended by closing the connection
        # (the stdlib server's way); the XML parser notices a truncated one.
        if reason.check(ResponseDone, PotentialDataLoss):
            self.deferred.callback(b"".join(self.chunks))
        else:
            self.deferred.errback(reason)


def _read_limited(response: Response, limit: int, truncate: bool = False) -> Deferred[bytes]:
    def cancel(d: Deferred[bytes]) -> None:
        if collector.transport is not None:
            collector.transport.stopProducing()

    d: Deferred[bytes] = Deferred(cancel)
    collector = _LimitedBody(d, limit, truncate)
    response.deliverBody(collector)
    return d


# -- multicall ---------------------------------------------------------------------


class _QueuedMethod:
    """``mc.name`` (and ``mc.a.b``): calling it queues ``name(*args)``."""

    def __init__(self, queue: Callable[..., None], name: str) -> None:
        self._queue = queue
        self._name = name

    def __getattr__(self, name: str) -> _QueuedMethod:
        if name.startswith("_"):
            raise AttributeError(name)
        return _QueuedMethod(self._queue, f"{self._name}.{name}")

    def __call__(self, *args: Any) -> None:
        self._queue(self._name, *args)


class MultiCall:
    """Calls queued on a :class:`Proxy`, sent as one ``system.multicall``.

    Queue calls with ``mc.method(*args)`` (dotted names: ``mc.math.add(1, 2)``)
    or ``mc.callRemote("method", *args)``; then ``mc()`` sends them and
    returns a Deferred (awaitable) for a list with one entry per call, in
    order: the call's return value, or an ``xmlrpc.client.Fault`` instance
    (returned, not raised) when that call faulted. The Deferred itself fails
    only when the batch as a whole does (transport errors, a server without
    ``system.multicall``, a malformed reply). The queue is kept, so ``mc()``
    may be sent again.
    """

    def __init__(self, proxy: Proxy) -> None:
        self._proxy = proxy
        self._calls: list[dict[str, Any]] = []

    def __getattr__(self, name: str) -> _QueuedMethod:
        if name.startswith("_"):
            raise AttributeError(name)
        return _QueuedMethod(self.callRemote, name)

    def __len__(self) -> int:
        return len(self._calls)

    def callRemote(self, method: str, *args: Any) -> None:
        """Queue ``method(*args)`` (sent by ``mc()``)."""
        if not isinstance(method, str) or not method:
            raise TypeError(f"method name must be a non-empty str, not {method!r}")
        self._calls.append({"methodName": method, "params": list(args)})

    def __call__(self) -> Deferred[list[Any]]:
        """Send the queued calls; see the class docstring for the result."""
        if not self._calls:
            return succeed([])
        d = self._proxy.callRemote("system.multicall", list(self._calls))
        return d.addCallback(self._results)

    def _results(self, raw: Any) -> list[Any]:
        if not isinstance(raw, list) or len(raw) != len(self._calls):
            raise MalformedResponseError(
                f"system.multicall returned {type(raw).__name__} for {len(self._calls)} calls")
        results: list[Any] = []
        for entry in raw:
            if isinstance(entry, list) and len(entry) == 1:
                results.append(entry[0])
            elif isinstance(entry, dict) and "faultCode" in entry:
                results.append(Fault(entry["faultCode"], entry.get("faultString", "")))
            else:
                raise MalformedResponseError(f"bad system.multicall entry {entry!r:.100}")
        return results


