"""Awaitable one-liners over the Agent: ``await get(url)``, ``await post(url, json=...)``.

They run on the installed reactor (``reactor.getReactor()``) unless given
one, follow redirects (browser-like), ask for and decode gzip/deflate, and
share one keep-alive :class:`HTTPConnectionPool` per reactor, closed when
that reactor shuts down. The whole exchange, body included, is bounded by
``timeout`` (:class:`RequestTimeoutError`)::

    result = await get("http://127.0.0.1:8080/status")
    result.code, result.headers.getRawHeaders(b"content-type"), result.json()

Unlike :func:`readBody`, a body that ends with the connection (no length,
not chunked) counts as complete here, as in most HTTP libraries.
"""

from __future__ import annotations

import json as jsonlib
import weakref
from collections.abc import Mapping
from typing import Any, Final

from deferred import Deferred, Failure

from ._client_errors import (
    PotentialDataLoss,
    RedirectLimitError,
    RequestTimeoutError,
    ResponseDone,
    ResponseFailed,
)
from ._client_protocol import Response
from ._pool import HTTPConnectionPool
from .server import Headers

__all__ = ["HTTPResult", "get", "post", "request"]

DEFAULT_TIMEOUT: Final = 30.0
USER_AGENT: Final = b"torsion"

_agents: weakref.WeakKeyDictionary[Any, tuple[Any, HTTPConnectionPool]] = (
    weakref.WeakKeyDictionary())


class HTTPResult:
    """A complete response: status, headers and the whole (decoded) body.

    Attributes:
        code: The status code.
        phrase: The reason phrase.
        headers: The response :class:`Headers`.
        content: The body bytes (decompressed when it was gzip/deflate).
        url: The URL that answered (after redirects), as ``str``.
        history: ``(code, url)`` for each redirect followed, oldest first.
    """

    def __init__(self, code: int, phrase: bytes, headers: Headers, content: bytes,
                 url: str, history: list[tuple[int, str]]) -> None:
        self.code = code
        self.phrase = phrase
        self.headers = headers
        self.content = content
        self.url = url
        self.history = history

    def text(self, encoding: str | None = None) -> str:
        """The body decoded with ``encoding``, the Content-Type charset, or UTF-8."""
        if encoding is None:
            encoding = "utf-8"
            for value in self.headers.getRawHeaders(b"content-type") or []:
                for param in value.split(b";")[1:]:
                    name, _, charset = param.strip().partition(b"=")
                    if name.lower() == b"charset" and charset:
                        encoding = charset.strip(b"\"' ").decode("ascii", "replace")
        return self.content.decode(encoding, errors="replace")

    def json(self) -> Any:
        """The body parsed as JSON (raises ``ValueError`` if it is not)."""
        return jsonlib.loads(self.content)

    def __repr__(self) -> str:
        return f"<HTTPResult {self.code} {self.url} {len(self.content)} bytes>"


def _agent_for(reactor: Any) -> Any:
    entry = _agents.get(reactor)
    if entry is None:
        from .client import (
            Agent,
            BrowserLikeRedirectAgent,
            ContentDecoderAgent,
            DeflateDecoder,
            GzipDecoder,
        )

        pool = HTTPConnectionPool(reactor, persistent=True)
        agent = ContentDecoderAgent(BrowserLikeRedirectAgent(Agent(reactor, pool=pool)),
                                    [(b"gzip", GzipDecoder), (b"deflate", DeflateDecoder)])
        entry = _agents[reactor] = (agent, pool)

        def shutdown() -> Deferred[None]:
            # Close the idle connections before the reactor stops, so no
            # socket outlives it; a later request builds a new pool.
            _agents.pop(reactor, None)
            return pool.closeCachedConnections()

        reactor.addSystemEventTrigger("before", "shutdown", shutdown)
    return entry[0]


def _headers(headers: Mapping[Any, Any] | Headers | None) -> Headers:
    result = Headers()
    if isinstance(headers, Headers):
        for name, raw in headers.getAllRawHeaders():
            result.setRawHeaders(name, raw)
    elif headers is not None:
        for name, value in headers.items():
            values: list[Any] = list(value) if isinstance(value, list | tuple) else [value]
            result.setRawHeaders(name, [v.encode("latin-1") if isinstance(v, str) else v
                                        for v in values])
    if not result.hasHeader(b"user-agent"):
        result.setRawHeaders(b"User-Agent", [USER_AGENT])
    return result


class _Collect:
    """Body protocol for the convenience API: close-delimited bodies count as whole."""

    def __init__(self, deferred: Deferred[bytes], limit: int | None) -> None:
        self.deferred = deferred
        self.limit = limit
        self.chunks: list[bytes] = []
        self.size = 0
        self.transport: Any = None

    def makeConnection(self, transport: Any) -> None:
        self.transport = transport

    def dataReceived(self, data: bytes) -> None:
        self.chunks.append(data)
        self.size += len(data)
        if self.limit is not None and self.size > self.limit and not self.deferred.called:
            self.deferred.errback(ValueError(f"response body larger than {self.limit} bytes"))
            self.transport.stopProducing()

    def connectionLost(self, reason: Failure) -> None:
        if self.deferred.called:
            return
        if reason.check(ResponseDone, PotentialDataLoss):
            self.deferred.callback(b"".join(self.chunks))
        else:
            self.deferred.errback(reason)


def _unwrap(failure: Failure) -> Failure:
    """Raise the one meaningful cause rather than a wrapper around it."""
    error = failure.value
    if isinstance(error, ResponseFailed) and len(error.reasons) == 1:
        inner = error.reasons[0]
        if inner.check(RequestTimeoutError, RedirectLimitError):
            return inner
    return failure


async def request(method: str | bytes, url: str | bytes, *,
                  headers: Mapping[Any, Any] | Headers | None = None,
                  data: bytes | str | None = None, json: Any = None,
                  timeout: float | None = DEFAULT_TIMEOUT, max_size: int | None = None,
                  reactor: Any = None) -> HTTPResult:
    """Make a request and read the whole response.

    Args:
        method: e.g. ``"GET"``.
        url: An absolute http(s) URL.
        headers: Extra headers, a mapping (values str/bytes or lists) or Headers.
        data: The body (str is sent as UTF-8).
        json: An object sent as JSON (sets ``Content-Type: application/json``).
        timeout: Seconds for everything (connect to last body byte); None: no limit.
        max_size: Fail (``ValueError``) when the body exceeds this many bytes.
        reactor: The reactor to use; default the installed one.

    Raises:
        RequestTimeoutError: ``timeout`` passed.
        ResponseFailed, ResponseNeverReceived, ConnectError...: as ``Agent.request``.
    """
    if reactor is None:
        import reactor as reactor_module

        reactor = reactor_module.getReactor()
    from .client import BytesBodyProducer

    method_b = method.encode("ascii") if isinstance(method, str) else method
    url_b = url.encode("utf-8") if isinstance(url, str) else url
    sent = _headers(headers)
    body: bytes | None = data.encode("utf-8") if isinstance(data, str) else data
    if json is not None:
        body = jsonlib.dumps(json).encode("utf-8")
        if not sent.hasHeader(b"content-type"):
            sent.setRawHeaders(b"Content-Type", [b"application/json"])
    producer = BytesBodyProducer(body) if body is not None else None

    current: list[Deferred[Any]] = []
    timed_out = False

    def expire() -> None:
        nonlocal timed_out
        timed_out = True
        if current:
            current[-1].cancel()

    timer = reactor.callLater(timeout, expire) if timeout is not None else None
    try:
        pending: Deferred[Any] = _agent_for(reactor).request(method_b, url_b, sent, producer)
        current.append(pending)
        response = await pending
        collected: Deferred[bytes] = Deferred(lambda d: collector.transport.stopProducing())
        collector = _Collect(collected, max_size)
        current.append(collected)
        response.deliverBody(collector)
        content = await collected
    except Exception as e:
        if timed_out:
            raise RequestTimeoutError(timeout or 0.0, url_b) from e
        failure = _unwrap(Failure(e))
        if failure.value is not e:
            raise failure.value from e
        raise
    finally:
        if timer is not None and timer.active():
            timer.cancel()
    history: list[tuple[int, str]] = []
    previous = response.previousResponse
    while previous is not None:
        history.insert(0, (previous.code, _url_of(previous)))
        previous = previous.previousResponse
    return HTTPResult(response.code, response.phrase, response.headers, content,
                      _url_of(response) or url_b.decode("utf-8"), history)


def _url_of(response: Response) -> str:
    request = response.request
    uri = request.absoluteURI if request is not None else None
    return uri.decode("utf-8", "replace") if uri else ""


async def get(url: str | bytes, headers: Mapping[Any, Any] | Headers | None = None,
              timeout: float | None = DEFAULT_TIMEOUT, **kwargs: Any) -> HTTPResult:
    """``await get(url)``: a GET; see :func:`request`."""
    return await request("GET", url, headers=headers, timeout=timeout, **kwargs)


async def post(url: str | bytes, data: bytes | str | None = None, json: Any = None,
               headers: Mapping[Any, Any] | Headers | None = None,
               timeout: float | None = DEFAULT_TIMEOUT, **kwargs: Any) -> HTTPResult:
    """``await post(url, json={...})``: a POST; see :func:`request`."""
    return await request("POST", url, headers=headers, data=data, json=json,
                         timeout=timeout, **kwargs)
