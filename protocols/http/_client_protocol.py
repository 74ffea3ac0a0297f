"""One HTTP/1.1 client connection: send a request, stream the response back.

:class:`HTTP11ClientProtocol` carries one request at a time (no pipelining)
over a TCP or TLS transport. It writes the request head, then the body from a
body producer (``Content-Length`` when the producer knows its length, chunked
otherwise), feeds what the server sends to the sans-I/O
:class:`~protocols.http.parser.ResponseParser`, and turns its events into a
:class:`Response`::

    request(req) -> write head [-> body producer -> (0-chunk)]
                 -> ResponseHead: the Deferred fires with the Response
                 -> BodyData*: response.deliverBody's protocol gets dataReceived
                 -> EndOfMessage: connectionLost(ResponseDone); the connection
                    goes back to the pool (quiescentCallback) or is closed

Flow control both ways: the body producer is registered on the transport (a
full socket buffer pauses it), and the body protocol's
``transport.pauseProducing()`` stops reading from the socket. Parser events
already decoded wait in a queue while reading is paused, so nothing is
delivered to a paused protocol.
"""

from __future__ import annotations

import logging
import re
from collections import deque
from collections.abc import Callable
from typing import Any, Final, Protocol

from deferred import CancelledError, Deferred, Failure, fail
from protocols.base import Protocol as BaseStreamProtocol
from protocols.base import connectionDone

from ._client_errors import (
    PotentialDataLoss,
    RequestGenerationFailed,
    RequestNotSent,
    RequestTimeoutError,
    RequestTransmissionFailed,
    ResponseDone,
    ResponseFailed,
    ResponseNeverReceived,
    ResponseParseError,
)
from ._client_response import (
    HOLD_BUFFER,
    HOLD_USER,
    RESPONSE_DONE,
    UNKNOWN_LENGTH,
    Length,
    Response,
)
from .parser import (
    BodyData,
    EndOfMessage,
    Event,
    ParseError,
    ResponseHead,
    ResponseParser,
    Upgrade,
)
from .server import Headers

__all__ = [
    "RESPONSE_DONE",
    "UNKNOWN_LENGTH",
    "HTTP11ClientProtocol",
    "IBodyProducer",
    "Request",
    "Response",
]

log = logging.getLogger("protocols.http.client")

_NO_BODY_CODES: Final = frozenset({204, 304})


class IBodyProducer(Protocol):
    """What ``Agent.request`` takes as ``bodyProducer`` (Twisted's IBodyProducer).

    ``startProducing(consumer)`` writes the body with ``consumer.write`` and
    returns a Deferred that fires when it is all written (or fails). The
    transport pauses/resumes the producer as its buffer fills and drains.
    """

    length: Length

    def startProducing(self, consumer: Any) -> Deferred[Any]:
        """Start writing the body to ``consumer``."""
        ...

    def pauseProducing(self) -> None:
        """Stop writing until ``resumeProducing``."""
        ...

    def resumeProducing(self) -> None:
        """Carry on writing."""
        ...

    def stopProducing(self) -> None:
        """Stop for good; the Deferred need not fire."""
        ...


# CR, LF or NUL would let a caller's data inject headers or requests.
_BAD_HEAD_BYTE: Final = re.compile(rb"[\r\n\0]")


def _check(value: bytes, what: str) -> bytes:
    # One search in C rather than three scans: this runs for every header sent.
    if _BAD_HEAD_BYTE.search(value) is not None:
        raise ValueError(f"invalid character in {what}: {value!r}")
    return value


class Request:
    """A request as sent on the wire (Twisted's ``_newclient.Request``).

    Attributes:
        method: e.g. ``b"GET"``.
        uri: The request target, e.g. ``b"/path?q=1"``.
        headers: The header fields (the Agent adds ``Host``).
        bodyProducer: An :class:`IBodyProducer`, or None for no body.
        persistent: False to ask the server to close after answering.
        absoluteURI: The full URI (for redirects and errors), if known.
    """

    def __init__(self, method: bytes, uri: bytes, headers: Headers,
                 bodyProducer: IBodyProducer | None, persistent: bool = False,
                 absoluteURI: bytes | None = None) -> None:
        self.method = method
        self.uri = uri
        self.headers = headers
        self.bodyProducer = bodyProducer
        self.persistent = persistent
        self.absoluteURI = absoluteURI

    def _head(self, length: Length | None) -> bytes:
        """The request line and headers; ``length`` None means no body."""
        out = [_check(self.method, "method"), b" ", _check(self.uri, "URI"), b" HTTP/1.1\r\n"]
        for name, values in self.headers.getAllRawHeaders():
            lower = name.lower()
            # Framing is ours to decide: a caller's value could contradict the body.
            if lower in (b"content-length", b"transfer-encoding"):
                continue
            if not self.persistent and lower == b"connection":
                continue
            _check(name, "header name")
            for value in values:
                out += [name, b": ", _check(value, "header value"), b"\r\n"]
        if length is UNKNOWN_LENGTH:
            out.append(b"Transfer-Encoding: chunked\r\n")
        elif length is not None:
            out.append(b"Content-Length: %d\r\n" % length)
        elif self.method in (b"POST", b"PUT", b"PATCH"):
            out.append(b"Content-Length: 0\r\n")  # some servers want it (RFC 9110 §8.6)
        if not self.persistent:
            out.append(b"Connection: close\r\n")
        out.append(b"\r\n")
        return b"".join(out)


class _LengthConsumer:
    """Passes body bytes through, checking they add up to the promised length."""

    def __init__(self, transport: Any, length: int) -> None:
        self._transport = transport
        self.remaining = length
        self.closed = False

    def write(self, data: bytes) -> None:
        if self.closed:
            return  # the exchange ended early (e.g. the server answered already)
        if len(data) > self.remaining:
            raise ValueError(f"the body producer wrote more than its length "
                             f"({len(data) - self.remaining} bytes too many)")
        self.remaining -= len(data)
        self._transport.write(data)

    def finish(self) -> None:
        if self.remaining:
            raise ValueError(f"the body producer wrote {self.remaining} bytes less "
                             "than its length")

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        """Already registered on the transport by the connection: nothing to do."""

    def unregisterProducer(self) -> None:
        """See :meth:`registerProducer`."""


class _ChunkedConsumer(_LengthConsumer):
    """Frames each write as one chunk (chunked transfer coding)."""

    def __init__(self, transport: Any) -> None:
        super().__init__(transport, 0)

    def write(self, data: bytes) -> None:
        if self.closed or not data:
            return  # an empty chunk would end the body
        self._transport.writeSequence([b"%x\r\n" % len(data), data, b"\r\n"])

    def finish(self) -> None:
        self._transport.write(b"0\r\n\r\n")


class _Lost:
    """Queued after the parser's events: the connection ended for ``reason``."""

    __slots__ = ("reason",)

    def __init__(self, reason: Failure) -> None:
        self.reason = reason


class _Exchange:
    """One request/response on the connection, while it is in progress."""

    __slots__ = ("close_delimited", "consumer", "deferred", "informational", "keep_alive",
                 "request", "response", "sending", "timer")

    def __init__(self, request: Request, deferred: Deferred[Response]) -> None:
        self.request = request
        self.deferred = deferred
        self.response: Response | None = None
        self.sending = False
        self.consumer: _LengthConsumer | None = None
        self.keep_alive = False
        self.close_delimited = False
        self.informational = False
        self.timer: Any = None


class HTTP11ClientProtocol(BaseStreamProtocol):
    """An HTTP/1.1 client connection, one request at a time.

    Args:
        quiescentCallback: Called with this protocol when a response completed
            and the connection may carry another request (the pool's hook).
        reactor: For timers; defaults to the transport's reactor.

    Attributes:
        reused: Set by the pool when the connection came from its cache (a
            failure then may just mean the server had closed it: retry).
        lostCallback: Called with this protocol once the connection is gone.
    """

    transport: Any = None  # TCP or TLS: also a producer/consumer, and abortable

    def __init__(self, quiescentCallback: Callable[[HTTP11ClientProtocol], None] | None = None,
                 reactor: Any = None) -> None:
        self._quiescentCallback = quiescentCallback
        self._reactor = reactor
        self._parser = ResponseParser()
        self._queue: deque[Event | _Lost] = deque()
        self._exchange: _Exchange | None = None
        self._holds = 0
        self._draining = False
        self._lost = False  # the transport reported connectionLost
        self._finished = False  # the _Lost marker was processed
        self._aborting = False  # abortConnection was called: never reuse
        self._waiters: list[Deferred[None]] = []
        self.reused = False
        self.lostCallback: Callable[[HTTP11ClientProtocol], None] | None = None
        self.connectedCallback: Callable[[HTTP11ClientProtocol], None] | None = None

    def connectionMade(self) -> None:
        """Connected (after the TLS handshake, for https): tell whoever waits."""
        callback, self.connectedCallback = self.connectedCallback, None
        if callback is not None:
            callback(self)

    @property
    def state(self) -> str:
        """``QUIESCENT``, ``TRANSMITTING``, ``WAITING`` or ``CONNECTION_LOST``."""
        if self._lost:
            return "CONNECTION_LOST"
        exchange = self._exchange
        if exchange is None:
            return "QUIESCENT"
        return "TRANSMITTING" if exchange.sending else "WAITING"

    def whenClosed(self) -> Deferred[None]:
        """A Deferred firing once the connection has closed."""
        d: Deferred[None] = Deferred()
        if self._finished:
            d.callback(None)
        else:
            self._waiters.append(d)
        return d

    def request(self, request: Request, timeout: float | None = None,
                reportedTimeout: float | None = None) -> Deferred[Response]:
        """Send ``request``; the Deferred fires with the :class:`Response` head.

        Args:
            request: What to send.
            timeout: Seconds until the whole exchange (to the end of the
                response body) fails with :class:`RequestTimeoutError`.
            reportedTimeout: The limit the error names, when ``timeout`` is
                what is left of a longer one (the Agent's, after connecting).

        Returns:
            A Deferred firing with the Response once its head arrived; failing
            with ``RequestNotSent`` (connection busy or closed),
            ``RequestGenerationFailed``, ``RequestTransmissionFailed``,
            ``ResponseNeverReceived`` or ``ResponseFailed``. Cancelling it
            before the response arrives aborts the connection.
        """
        transport = self.transport
        if (self._exchange is not None or self._lost or self._aborting or transport is None
                or getattr(transport, "disconnecting", False)):
            return fail(RequestNotSent())
        producer = request.bodyProducer
        try:
            length = producer.length if producer is not None else None
            head = request._head(length)
        except Exception:
            return fail(RequestGenerationFailed([Failure()]))
        d: Deferred[Response] = Deferred(self._cancel)
        exchange = self._exchange = _Exchange(request, d)
        self._parser.head = request.method == b"HEAD"
        if timeout is not None:
            clock: Any = self._reactor or transport.reactor
            exchange.timer = clock.callLater(timeout, self._timed_out, exchange,
                                             reportedTimeout or timeout)
        transport.write(head)
        if producer is not None and length is not None:
            self._send_body(exchange, producer, length)
        return d

    # -- sending the body ---------------------------------------------------------

    def _send_body(self, exchange: _Exchange, producer: IBodyProducer, length: Length) -> None:
        transport = self.transport
        assert transport is not None
        consumer = (_ChunkedConsumer(transport) if length is UNKNOWN_LENGTH
                    else _LengthConsumer(transport, length))
        exchange.consumer = consumer
        exchange.sending = True
        transport.registerProducer(producer, True)
        try:
            done = producer.startProducing(consumer)
        except Exception:
            self._body_failed(Failure(), exchange)
            return
        done.addCallbacks(self._body_sent, self._body_failed,
                          callbackArgs=(exchange,), errbackArgs=(exchange,))

    def _body_sent(self, _: object, exchange: _Exchange) -> None:
        if self._exchange is not exchange or not exchange.sending:
            return
        consumer = exchange.consumer
        assert consumer is not None
        try:
            consumer.finish()
        except ValueError:
            self._body_failed(Failure(), exchange)
            return
        consumer.closed = True
        exchange.sending = False
        transport = self.transport
        if transport is not None and not self._lost:
            transport.unregisterProducer()

    def _body_failed(self, failure: Failure, exchange: _Exchange) -> None:
        if self._exchange is not exchange or not exchange.sending:
            if not failure.check(CancelledError):
                log.error("a body producer failed after its request ended: %s",
                          failure.getErrorMessage())
            return
        exchange.sending = False
        if exchange.consumer is not None:
            exchange.consumer.closed = True
        if self.transport is not None and not self._lost:
            self.transport.unregisterProducer()
        self._fail_exchange(exchange, Failure(RequestGenerationFailed([failure])))
        self._abort()

    def _stop_sending(self, exchange: _Exchange) -> None:
        """The response ended before the body was sent: stop the producer."""
        exchange.sending = False
        if exchange.consumer is not None:
            exchange.consumer.closed = True
        if self.transport is not None and not self._lost:
            self.transport.unregisterProducer()
        producer = exchange.request.bodyProducer
        if producer is not None:
            try:
                producer.stopProducing()
            except Exception:
                log.exception("stopProducing of %r raised", producer)

    # -- receiving ------------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        """Bytes from the server: parse, then act on the events."""
        self._queue.extend(self._parser.feed(data))
        self._drain()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """The connection ended; anything still queued is delivered first."""
        self._lost = True
        self._queue.append(_Lost(reason))
        self._drain()

    def _drain(self) -> None:
        if self._draining:
            return  # re-entered from a callback: the outer loop carries on
        self._draining = True
        try:
            queue = self._queue
            while queue and not self._holds:
                self._handle(queue.popleft())
        finally:
            self._draining = False

    def _handle(self, event: Event | _Lost) -> None:
        exchange = self._exchange
        if isinstance(event, _Lost):
            self._handle_lost(event.reason)
            return
        if exchange is None:
            # Bytes nobody asked for (say a 408 before an idle close): this
            # connection's framing can no longer be trusted.
            log.debug("unexpected data from the server on an idle connection: closing it")
            self._queue.clear()
            self._abort()
            return
        if isinstance(event, BodyData):
            if exchange.response is not None:
                exchange.response._data(event.data)
        elif isinstance(event, ResponseHead):
            self._head_received(exchange, event)
        elif isinstance(event, EndOfMessage):
            if exchange.informational:
                exchange.informational = False
            else:
                self._response_complete(exchange, RESPONSE_DONE)
        elif isinstance(event, ParseError):
            self._fail_exchange(exchange, Failure(ResponseParseError(event.reason)))
            self._abort()
        elif isinstance(event, Upgrade):
            self._fail_exchange(exchange, Failure(ResponseParseError(
                "the server switched protocols (101), which this client does not support")))
            self._abort()

    def _head_received(self, exchange: _Exchange, head: ResponseHead) -> None:
        status = head.status
        if 100 <= status < 200 and status != 101:
            exchange.informational = True  # 100 Continue and friends: skipped
            return
        no_body = exchange.request.method == b"HEAD" or status in _NO_BODY_CODES
        length: Length
        if no_body:
            length = 0
        elif head.chunked or head.content_length is None:
            length = UNKNOWN_LENGTH
        else:
            length = head.content_length
        major, _, minor = head.version.partition(b".")
        response = Response((b"HTTP", int(major), int(minor or b"0")), status, head.reason,
                            Headers(head.headers), length, exchange.request, self)
        exchange.response = response
        exchange.keep_alive = head.keep_alive
        exchange.close_delimited = not no_body and not head.chunked and (
            head.content_length is None)
        if not exchange.deferred.called:
            exchange.deferred.callback(response)

    def _response_complete(self, exchange: _Exchange, reason: Failure) -> None:
        response = exchange.response
        assert response is not None
        reusable = (exchange.keep_alive and exchange.request.persistent and not self._lost
                    and not self._aborting
                    and not self._parser.closed and not self._queue)
        if exchange.sending:
            self._stop_sending(exchange)
            reusable = False
        self._end_exchange(exchange)
        # Back to the pool before the body protocol hears of the end, so that a
        # request made from its connectionLost can reuse this connection.
        if reusable:
            if self._quiescentCallback is not None:
                self._quiescentCallback(self)
        elif not self._lost and self.transport is not None:
            self.transport.loseConnection()
        response._finish(reason)

    def _handle_lost(self, reason: Failure) -> None:
        self._finished = True
        exchange = self._exchange
        if exchange is not None:
            for event in self._parser.feed_eof():
                if isinstance(event, EndOfMessage) and exchange.response is not None:
                    loss = PotentialDataLoss() if exchange.close_delimited else ResponseDone()
                    self._response_complete(exchange, Failure(loss))
                    break
                if isinstance(event, ParseError):
                    reason = Failure(ResponseParseError(
                        f"{event.reason} (the connection closed: {reason.getErrorMessage()})"))
        exchange = self._exchange
        if exchange is not None:
            if exchange.sending:
                self._stop_sending(exchange)
                self._fail_exchange(exchange, Failure(RequestTransmissionFailed([reason])))
            else:
                self._fail_exchange(exchange, reason, never=True)
        if self.lostCallback is not None:
            self.lostCallback(self)
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            d.callback(None)

    # -- ending an exchange ------------------------------------------------------------

    def _end_exchange(self, exchange: _Exchange) -> None:
        if self._exchange is exchange:
            self._exchange = None
        if exchange.timer is not None and exchange.timer.active():
            exchange.timer.cancel()
        exchange.timer = None
        self._hold(HOLD_BUFFER | HOLD_USER, False)

    def _fail_exchange(self, exchange: _Exchange, reason: Failure, never: bool = False) -> None:
        """End ``exchange`` with ``reason``, wrapped as Twisted wraps it.

        Before the response head: the request Deferred fails (with
        ResponseNeverReceived when ``never``, else ResponseFailed unless the
        reason is already one of ours). After it: the body protocol gets
        ``ResponseFailed``.
        """
        response = exchange.response
        if exchange.sending:
            self._stop_sending(exchange)
        self._end_exchange(exchange)
        if response is None:
            if not exchange.deferred.called:
                if never:
                    reason = Failure(ResponseNeverReceived([reason]))
                elif not reason.check(RequestGenerationFailed, RequestTransmissionFailed,
                                      RequestTimeoutError, ResponseNeverReceived):
                    reason = Failure(ResponseFailed([reason]))
                exchange.deferred.errback(reason)
        else:
            if not reason.check(ResponseFailed):
                reason = Failure(ResponseFailed([reason], response))
            response._finish(reason)

    def _timed_out(self, exchange: _Exchange, timeout: float) -> None:
        exchange.timer = None
        if self._exchange is not exchange:
            return
        uri = exchange.request.absoluteURI or exchange.request.uri
        self._fail_exchange(exchange, Failure(RequestTimeoutError(timeout, uri)))
        self._abort()

    def _cancel(self, d: Deferred[Response]) -> None:
        exchange = self._exchange
        if exchange is None or exchange.deferred is not d or exchange.response is not None:
            return
        self._fail_exchange(exchange, Failure(CancelledError()), never=True)
        self._abort()

    def _abort(self) -> None:
        """Close the connection at once; it will not be reused."""
        self._aborting = True
        # Parsed events concern nobody now; only the end of the connection does.
        lost = [event for event in self._queue if isinstance(event, _Lost)]
        self._queue.clear()
        self._queue.extend(lost)
        transport = self.transport
        if transport is not None and not self._lost:
            transport.abortConnection()

    # -- flow control of the response body -----------------------------------------------

    def _current_response(self) -> Response | None:
        return self._exchange.response if self._exchange is not None else None

    def _hold(self, bits: int, on: bool) -> None:
        """Set or clear reasons to stop reading; reading resumes when none is left."""
        before = self._holds
        self._holds = before | bits if on else before & ~bits
        transport = self.transport
        if before and not self._holds:
            if transport is not None and not self._lost:
                transport.resumeProducing()
            self._drain()
        elif not before and self._holds and transport is not None and not self._lost:
            transport.pauseProducing()
