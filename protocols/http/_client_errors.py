"""The HTTP client's exceptions, under Twisted's names where Twisted has them.

Failures that can have several causes carry them all: the ``*Failed`` and
``ResponseNeverReceived`` errors hold ``reasons``, a list of
:class:`deferred.Failure`, as in Twisted, and their ``str()`` names every
reason so a log line says what happened without a traceback dive.

Timeouts are also builtin :class:`TimeoutError`, so ``except TimeoutError``
catches both the connect and the total-request timeout.
"""

from __future__ import annotations

import builtins
from typing import Any

from deferred import Failure
from reactor.error import SSLError
from reactor.error import TimeoutError as ReactorTimeoutError

__all__ = [
    "ConnectTimeoutError",
    "DecompressionLimitError",
    "InfiniteRedirection",
    "PageRedirect",
    "PartialDownloadError",
    "PotentialDataLoss",
    "RedirectLimitError",
    "RedirectWithNoLocation",
    "RequestGenerationFailed",
    "RequestNotSent",
    "RequestTimeoutError",
    "RequestTransmissionFailed",
    "ResponseDone",
    "ResponseFailed",
    "ResponseNeverReceived",
    "ResponseParseError",
    "SchemeNotSupported",
    "TLSConnectError",
]


def _describe(failure: Failure) -> str:
    return f"{failure.type.__name__}: {failure.getErrorMessage()}"


class _WrapperException(Exception):
    """An error caused by one or more earlier failures.

    Attributes:
        reasons: The :class:`Failure` objects that caused it.
    """

    MESSAGE = "request failed"

    def __init__(self, reasons: list[Failure]) -> None:
        super().__init__(reasons)
        self.reasons = reasons

    def __str__(self) -> str:
        causes = "; ".join(_describe(reason) for reason in self.reasons)
        return f"{self.MESSAGE}: {causes}" if causes else self.MESSAGE


class RequestGenerationFailed(_WrapperException):
    """The request body producer failed while the request was being sent."""

    MESSAGE = "generating the request failed"


class RequestTransmissionFailed(_WrapperException):
    """The connection failed while the request was being sent."""

    MESSAGE = "sending the request failed"


class ResponseNeverReceived(_WrapperException):
    """The connection ended (or was cancelled) before any response arrived."""

    MESSAGE = "no response was received"


class ResponseFailed(_WrapperException):
    """The response could not be read completely (bad syntax, lost connection...).

    Attributes:
        response: The :class:`Response` when its head had arrived, else None.
    """

    MESSAGE = "the response failed"

    def __init__(self, reasons: list[Failure], response: Any = None) -> None:
        super().__init__(reasons)
        self.response = response


class RequestNotSent(Exception):
    """The connection was busy or closed, so the request was never written."""

    def __str__(self) -> str:
        return "the request was not sent: the connection is busy or closed"


class ResponseDone(Exception):
    """The ``reason`` given to a body protocol's ``connectionLost`` on success."""

    def __str__(self) -> str:
        return "the response body was received completely"


class PotentialDataLoss(Exception):
    """The body ended when the server closed the connection (no length, not chunked).

    The body may be complete or cut short: HTTP cannot tell. Given as the
    ``reason`` to a body protocol's ``connectionLost`` (as in Twisted).
    """

    def __str__(self) -> str:
        return "the body ended with the connection: it may be incomplete"


class PartialDownloadError(Exception):
    """:func:`readBody` saw :class:`PotentialDataLoss`; the bytes it did get are here.

    Attributes:
        status: The response code as bytes (Twisted's convention).
        message: The reason phrase.
        response: The body bytes received.
    """

    def __init__(self, status: bytes, message: bytes | None = None,
                 response: bytes | None = None) -> None:
        super().__init__(status, message, response)
        self.status = status
        self.message = message
        self.response = response

    def __str__(self) -> str:
        size = len(self.response or b"")
        return (f"{self.status.decode('ascii', 'replace')}: the body ({size} bytes) ended "
                "with the connection and may be incomplete")


class ResponseParseError(Exception):
    """The server sent bytes that are not a valid HTTP/1.x response.

    Attributes:
        reason: What the parser objected to.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def __str__(self) -> str:
        return f"malformed HTTP response: {self.reason}"


class SchemeNotSupported(Exception):
    """The URL's scheme is neither ``http`` nor ``https``."""


class ConnectTimeoutError(ReactorTimeoutError, builtins.TimeoutError):
    """Connecting (TCP, and the TLS handshake for https) took longer than allowed.

    A :class:`reactor.error.TimeoutError` (so a ``ConnectError``) and a builtin
    ``TimeoutError``.
    """


class RequestTimeoutError(builtins.TimeoutError):
    """The whole request (connect, send, response head and body) took too long.

    Attributes:
        timeout: The limit in seconds.
        uri: The request's URI.
    """

    def __init__(self, timeout: float, uri: bytes = b"") -> None:
        super().__init__(timeout, uri)
        self.timeout = timeout
        self.uri = uri

    def __str__(self) -> str:
        where = f" for {self.uri.decode('ascii', 'replace')}" if self.uri else ""
        return f"no complete response{where} within {self.timeout:g} seconds"


class TLSConnectError(SSLError):
    """The TLS handshake failed: most often the certificate did not verify.

    ``str()`` includes ssl's own explanation (e.g. "Hostname mismatch" or
    "unable to get local issuer certificate").

    Attributes:
        reason: The :class:`Failure` from the handshake (an ``ssl.SSLError``).
    """

    def __init__(self, where: str, reason: Failure) -> None:
        super().__init__(None, f"{where}: {reason.getErrorMessage()}")
        self.reason = reason


class DecompressionLimitError(Exception):
    """A compressed response body decompressed to more than the allowed size."""

    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self.limit = limit

    def __str__(self) -> str:
        return f"the decoded response body exceeds {self.limit} bytes"


class _HTTPError(Exception):
    """Base of the redirect errors: a code, a message and where it pointed.

    Attributes:
        status: The response code as bytes (Twisted's convention).
        message: A short description.
        location: The Location the redirect named, if any.
        response: The :class:`Response` concerned, if any.
    """

    def __init__(self, code: int | bytes, message: bytes | None = None,
                 location: bytes | None = None, response: Any = None) -> None:
        status = code if isinstance(code, bytes) else str(code).encode("ascii")
        super().__init__(status, message, location)
        self.status = status
        self.message = message
        self.location = location
        self.response = response

    def __str__(self) -> str:
        text = self.status.decode("ascii", "replace")
        if self.message:
            text += " " + self.message.decode("latin-1")
        if self.location:
            text += " to " + self.location.decode("latin-1")
        return text


class PageRedirect(_HTTPError):
    """A redirect was not followed (a method that must not be redirected silently)."""


class InfiniteRedirection(_HTTPError):
    """More redirects in a row than the agent's ``redirectLimit`` allows."""


class RedirectLimitError(InfiniteRedirection):
    """The redirect limit was reached (an :class:`InfiniteRedirection`)."""


class RedirectWithNoLocation(_HTTPError):
    """A redirect response without a usable ``Location`` header.

    Attributes:
        uri: The URI of the request that got it.
    """

    def __init__(self, code: int | bytes, message: bytes | None, uri: bytes) -> None:
        super().__init__(code, message)
        self.uri = uri
