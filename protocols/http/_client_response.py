"""The client's :class:`Response`: status, headers, and a body that streams.

The connection (``_client_protocol.HTTP11ClientProtocol``) feeds a Response
with ``_data`` and ``_finish``; the user takes the body with
:meth:`Response.deliverBody`. Until then the body is buffered, up to
``BUFFER_LIMIT`` bytes, beyond which the connection stops reading. The
body protocol's transport (:class:`_BodyTransport`) pauses and resumes the
connection's reading, which is how back-pressure reaches the socket.
"""

from __future__ import annotations

import enum
import logging
from collections import deque
from typing import TYPE_CHECKING, Any, Final, Literal, TypeAlias

from deferred import CancelledError, Failure

from ._client_errors import ResponseDone, ResponseFailed
from .server import Headers

if TYPE_CHECKING:
    from ._client_protocol import HTTP11ClientProtocol, Request

__all__ = ["BUFFER_LIMIT", "RESPONSE_DONE", "UNKNOWN_LENGTH", "Length", "Response"]

log = logging.getLogger("protocols.http.client")


class _UnknownLength(enum.Enum):
    UNKNOWN_LENGTH = "UNKNOWN_LENGTH"

    def __repr__(self) -> str:
        return "UNKNOWN_LENGTH"


#: A body producer's ``length`` (and a ``Response.length``) when it is not known
#: in advance: the request body is then sent chunked.
UNKNOWN_LENGTH: Final = _UnknownLength.UNKNOWN_LENGTH
Length: TypeAlias = int | Literal[_UnknownLength.UNKNOWN_LENGTH]

#: Body bytes kept for a Response whose ``deliverBody`` was not called yet;
#: beyond this, reading from the socket pauses until it is.
BUFFER_LIMIT = 1024 * 1024

#: The ``reason`` of a body that ended well (shared: it carries no traceback).
RESPONSE_DONE: Final = Failure(ResponseDone())
RESPONSE_DONE.cleanFailure()

HOLD_USER: Final = 1    # the body protocol paused the connection
HOLD_BUFFER: Final = 2  # deliverBody not called yet and the buffer is full


class _BodyTransport:
    """The ``transport`` a body protocol gets: flow control over the response.

    ``pauseProducing`` stops reading from the socket until ``resumeProducing``;
    ``stopProducing`` abandons the response (the connection is aborted and the
    protocol's ``connectionLost`` gets a ``ResponseFailed``).
    """

    def __init__(self, response: Response) -> None:
        self._response = response

    def pauseProducing(self) -> None:
        """Deliver no more body data until :meth:`resumeProducing`."""
        self._response._pause()

    def resumeProducing(self) -> None:
        """Deliver body data again."""
        self._response._resume()

    def stopProducing(self) -> None:
        """Abandon the rest of the body and close the connection."""
        self._response._stop()

    loseConnection = stopProducing

    def getPeer(self) -> Any:
        """The server's address."""
        connection = self._response._connection
        return connection.transport.getPeer() if connection and connection.transport else None

    def getHost(self) -> Any:
        """Our end's address."""
        connection = self._response._connection
        return connection.transport.getHost() if connection and connection.transport else None


class Response:
    """An HTTP response whose body streams to :meth:`deliverBody`'s protocol.

    Attributes:
        version: ``(b"HTTP", major, minor)``.
        code: The status code, e.g. 200.
        phrase: The reason phrase, e.g. ``b"OK"``.
        headers: The response :class:`Headers`.
        length: The body length from ``Content-Length`` (0 for HEAD, 204,
            304), or :data:`UNKNOWN_LENGTH`.
        request: The :class:`Request` this answers.
        previousResponse: The redirect response that led here, or None.
    """

    def __init__(self, version: tuple[bytes, int, int], code: int, phrase: bytes,
                 headers: Headers, length: Length, request: Request | None = None,
                 connection: HTTP11ClientProtocol | None = None) -> None:
        self.version = version
        self.code = code
        self.phrase = phrase
        self.headers = headers
        self.length = length
        self.request = request
        self.previousResponse: Response | None = None
        self._connection = connection
        self._protocol: Any = None
        self._buffer: deque[bytes] = deque()
        self._buffered = 0
        self._final: Failure | None = None
        self._done = False  # the protocol got connectionLost
        self._paused = False

    def setPreviousResponse(self, response: Response) -> None:
        """Record the redirect response that led to this one."""
        self.previousResponse = response

    def deliverBody(self, protocol: Any) -> None:
        """Send the body to ``protocol``; call once.

        The protocol gets ``makeConnection(transport)`` (a transport with
        ``pauseProducing``/``resumeProducing``/``stopProducing``), then
        ``dataReceived`` per piece, then ``connectionLost(reason)``: a
        :class:`ResponseDone` on success, :class:`PotentialDataLoss` when the
        body ended with the connection, else :class:`ResponseFailed`.

        Raises:
            RuntimeError: If called twice.
        """
        if self._protocol is not None:
            raise RuntimeError("deliverBody was already called for this response")
        self._protocol = protocol
        protocol.makeConnection(_BodyTransport(self))
        self._flush()
        connection = self._connection
        if connection is not None and connection._current_response() is self:
            connection._hold(HOLD_BUFFER, False)

    def __repr__(self) -> str:
        return f"<Response {self.code} {self.phrase.decode('latin-1')!r} length={self.length!r}>"

    # -- fed by the connection --------------------------------------------------

    def _data(self, data: bytes) -> None:
        if self._final is not None:
            return  # abandoned: what is still queued is dropped
        if self._protocol is None or self._buffer or self._paused:
            self._buffer.append(data)
            self._buffered += len(data)
            connection = self._connection
            if self._protocol is None and self._buffered > BUFFER_LIMIT and connection:
                connection._hold(HOLD_BUFFER, True)
            return
        self._deliver(data)

    def _finish(self, reason: Failure) -> None:
        if self._final is not None:
            return
        self._final = reason
        self._connection_done()
        if self._protocol is not None and not self._buffer:
            self._deliver_final()

    def _connection_done(self) -> None:
        # The connection moves on (or is gone): this response must no longer
        # pause or hold it.
        connection, self._connection = self._connection, None
        if connection is not None and self._paused:
            connection._hold(HOLD_USER, False)

    # -- delivery ---------------------------------------------------------------

    def _deliver(self, data: bytes) -> None:
        try:
            self._protocol.dataReceived(data)
        except Exception:
            failure = Failure()
            log.error("the body protocol %r raised in dataReceived", self._protocol,
                      exc_info=failure.value)
            self._abandon(Failure(ResponseFailed([failure], self)))

    def _deliver_final(self) -> None:
        if self._done:
            return
        self._done = True
        reason = self._final
        try:
            self._protocol.connectionLost(reason)
        except Exception:
            log.exception("the body protocol %r raised in connectionLost", self._protocol)

    def _flush(self) -> None:
        while self._buffer and not self._paused and self._protocol is not None:
            chunk = self._buffer.popleft()
            self._buffered -= len(chunk)
            self._deliver(chunk)
        if not self._buffer and self._final is not None and self._protocol is not None:
            self._deliver_final()

    def _pause(self) -> None:
        if self._paused or self._done:
            return
        self._paused = True
        if self._connection is not None:
            self._connection._hold(HOLD_USER, True)

    def _resume(self) -> None:
        if not self._paused:
            return
        self._paused = False
        self._flush()
        if not self._paused and self._connection is not None:
            self._connection._hold(HOLD_USER, False)

    def _stop(self) -> None:
        self._abandon(Failure(ResponseFailed(
            [Failure(CancelledError("the body protocol stopped producing"))], self)))

    def _abandon(self, failure: Failure) -> None:
        """End the body now with ``failure``, dropping what is buffered; abort."""
        if self._done:
            return
        connection = self._connection
        if connection is not None:
            connection._abort()
        self._buffer.clear()
        self._buffered = 0
        if self._final is None:
            self._final = failure
            self._connection_done()  # releases our hold on the connection
        else:
            self._final = failure
        self._paused = False
        if self._protocol is not None:
            self._deliver_final()
