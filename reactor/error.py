"""Exceptions raised by reactors, transports and timers.

The names and hierarchy follow ``twisted.internet.error`` so that code catching
those exceptions only needs its imports changed. The tree, in short::

    ConnectionClosed
        ConnectionDone            clean close; the usual connectionLost reason
            ProcessDone
        ConnectionLost            the connection broke (reset, abort, ...)
            ConnectionAborted     abortConnection() was called locally
            ProcessTerminated
    ConnectError                  a connection attempt failed
        ConnectionRefusedError, NoRouteError, TCPTimedOutError, UnknownHostError,
        UserError -> TimeoutError, ...
    BindError -> CannotListenError
    AlreadyCalled, AlreadyCancelled (DelayedCall misuse; both ValueErrors)

Example:
    >>> str(ConnectionRefusedError())
    'Connection was refused by other side.'
"""

from __future__ import annotations

import errno
import socket
from typing import ClassVar

__all__ = [
    "AlreadyCalled",
    "AlreadyCancelled",
    "BadFileError",
    "BindError",
    "CannotListenError",
    "ConnectBindError",
    "ConnectError",
    "ConnectInProgressError",
    "ConnectingCancelledError",
    "ConnectionAborted",
    "ConnectionClosed",
    "ConnectionDone",
    "ConnectionLost",
    "ConnectionRefusedError",
    "ConnectionTruncated",
    "DNSLookupError",
    "InvalidAddressError",
    "MessageLengthError",
    "MulticastJoinError",
    "NoProtocol",
    "NoRouteError",
    "NotConnectingError",
    "NotListeningError",
    "ProcessDone",
    "ProcessExitedAlready",
    "ProcessTerminated",
    "ReactorAlreadyInstalledError",
    "ReactorAlreadyRunning",
    "ReactorNotRunning",
    "SSLError",
    "ServiceNameUnknownError",
    "TCPTimedOutError",
    "TimeoutError",
    "UnknownHostError",
    "UnsupportedAddressFamily",
    "UnsupportedSocketType",
    "UserError",
    "getConnectError",
]


class _Described:
    """Mixin: ``str()`` is ``MESSAGE``, then the args joined by spaces, then a dot.

    Twisted formats most of its errors this way; users grep logs for these
    exact sentences, so we keep them.
    """

    MESSAGE: ClassVar[str] = ""
    args: tuple[object, ...]

    def __str__(self) -> str:
        text = self.MESSAGE
        if self.args:
            text = f"{text}: {' '.join(str(arg) for arg in self.args)}"
        return f"{text}."


# --- binding and listening -------------------------------------------------------------


class BindError(_Described, Exception):
    """An error occurred binding to an interface."""

    MESSAGE = "An error occurred binding to an interface"


class CannotListenError(BindError):
    """Raised by ``listenTCP`` and friends when the port cannot be listened on.

    Attributes:
        interface: The interface we tried to listen on (``""`` means all).
        port: The port we tried to listen on.
        socketError: The ``OSError`` the operating system gave us.

    Example:
        >>> import errno, os
        >>> e = OSError(errno.EADDRINUSE, os.strerror(errno.EADDRINUSE))
        >>> str(CannotListenError("127.0.0.1", 8080, e))
        "Couldn't listen on 127.0.0.1:8080: [Errno 98] Address already in use."
    """

    def __init__(self, interface: str | None, port: int | str, socketError: BaseException):
        super().__init__(interface, port, socketError)
        self.interface = interface
        self.port = port
        self.socketError = socketError

    def __str__(self) -> str:
        host = self.interface or "any"
        # An IPv6 literal needs brackets, or "::1:80" reads as an address.
        if ":" in host:
            host = f"[{host}]"
        return f"Couldn't listen on {host}:{self.port}: {self.socketError}."


class MulticastJoinError(Exception):
    """An attempt to join a multicast group failed."""


class MessageLengthError(_Described, Exception):
    """A datagram was too long to send."""

    MESSAGE = "Message is too long to send"


class DNSLookupError(_Described, OSError):
    """A host name could not be resolved."""

    MESSAGE = "DNS lookup failed"


# --- connecting ------------------------------------------------------------------------


class ConnectInProgressError(Exception):
    """A connect operation was started and isn't done yet."""


class ConnectError(Exception):
    """A connection attempt failed.

    Args:
        osError: The errno (or OS error object) behind the failure, if any.
        string: Extra human-readable detail.
    """

    MESSAGE: ClassVar[str] = "An error occurred while connecting"

    def __init__(self, osError: object = None, string: object = "") -> None:
        super().__init__(string)
        self.osError = osError

    def __str__(self) -> str:
        text = self.MESSAGE
        if self.osError:
            text = f"{text}: {self.osError}"
        if self.args[0]:
            text = f"{text}: {self.args[0]}"
        return f"{text}."


class ConnectBindError(ConnectError):
    """Binding the local end of an outgoing connection failed."""

    MESSAGE = "Couldn't bind"


class UnknownHostError(ConnectError):
    """The host name given to connect to could not be looked up."""

    MESSAGE = "Hostname couldn't be looked up"


class NoRouteError(ConnectError):
    """There is no route to the host."""

    MESSAGE = "No route to host"


class ConnectionRefusedError(ConnectError):
    """The other side refused the connection (nothing listening there)."""

    MESSAGE = "Connection was refused by other side"


class TCPTimedOutError(ConnectError):
    """The operating system's TCP connect timed out."""

    MESSAGE = "TCP connection timed out"


class BadFileError(ConnectError):
    """The file given for a UNIX socket is unusable."""

    MESSAGE = "File used for UNIX socket is no good"


class ServiceNameUnknownError(ConnectError):
    """A service name given as a port is not known."""

    MESSAGE = "Service name given as port is unknown"


class UserError(ConnectError):
    """The user aborted the connection attempt."""

    MESSAGE = "User aborted connection"


class TimeoutError(UserError):  # shadows the builtin on purpose: Twisted's name
    """The connection attempt took longer than the timeout the user gave."""

    MESSAGE = "User timeout caused connection failure"


class SSLError(ConnectError):
    """A TLS error occurred while connecting."""

    MESSAGE = "An SSL error occurred"


class ConnectingCancelledError(Exception):
    """A connection attempt was cancelled before it completed.

    Attributes:
        address: The destination (an address object) of the cancelled attempt.
    """

    def __init__(self, address: object) -> None:
        super().__init__(address)
        self.address = address


class NoProtocol(Exception):
    """A client factory's ``buildProtocol`` returned ``None``."""


_ERRNO_TO_CONNECT_ERROR: dict[int, type[ConnectError]] = {
    errno.ENETUNREACH: NoRouteError,
    errno.EHOSTUNREACH: NoRouteError,
    errno.ECONNREFUSED: ConnectionRefusedError,
    errno.ETIMEDOUT: TCPTimedOutError,
}


def getConnectError(e: BaseException | tuple[int, str]) -> ConnectError:
    """Translate a socket error into the matching ``ConnectError`` subclass.

    Args:
        e: An ``OSError`` (or an ``(errno, text)`` pair) from a failed connect.

    Returns:
        A ``ConnectError`` instance; ``ConnectionRefusedError`` for
        ``ECONNREFUSED``, ``UnknownHostError`` for resolver errors, and so on.

    Example:
        >>> import errno
        >>> type(getConnectError(OSError(errno.ECONNREFUSED, "refused"))).__name__
        'ConnectionRefusedError'
    """
    args = e.args if isinstance(e, BaseException) else e
    try:
        number, text = args
    except ValueError:
        return ConnectError(string=e)
    if isinstance(e, socket.gaierror):
        return UnknownHostError(number, text)
    return _ERRNO_TO_CONNECT_ERROR.get(number, ConnectError)(number, text)


# --- connections ending ----------------------------------------------------------------


class ConnectionClosed(Exception):
    """The connection was closed, cleanly or not."""


class ConnectionLost(_Described, ConnectionClosed):
    """The connection to the other side was lost in a non-clean fashion."""

    MESSAGE = "Connection to the other side was lost in a non-clean fashion"


class ConnectionTruncated(ConnectionLost):
    """A TLS connection's TCP closed without the peer's close_notify.

    The data received may have been cut short by someone between the peers;
    a protocol that frames its own data (HTTP with Content-Length, FTP after
    an upload) may decide it was a normal end anyway.
    """

    MESSAGE = "the peer closed the connection without a TLS close_notify"


class ConnectionAborted(ConnectionLost):
    """The connection was aborted locally with ``transport.abortConnection()``."""

    MESSAGE = "Connection was aborted locally using ITCPTransport.abortConnection"


class ConnectionDone(_Described, ConnectionClosed):
    """The connection was closed cleanly."""

    MESSAGE = "Connection was closed cleanly"


class ProcessDone(ConnectionDone):
    """A child process exited with status 0.

    Attributes:
        exitCode: Always 0.
        signal: Always ``None``.
        status: The raw wait status.
    """

    MESSAGE = "A process has ended without apparent errors"

    def __init__(self, status: int | None) -> None:
        super().__init__("process finished with exit code 0")
        self.exitCode = 0
        self.signal: int | None = None
        self.status = status


class ProcessTerminated(ConnectionLost):
    """A child process exited with a non-zero status or was killed by a signal.

    Attributes:
        exitCode: The exit code, or ``None`` if a signal ended the process.
        signal: The signal number, or ``None`` if the process exited.
        status: The raw wait status.
    """

    MESSAGE = "A process has ended with a probable error condition"

    def __init__(
        self, exitCode: int | None = None, signal: int | None = None, status: int | None = None
    ) -> None:
        text = "process ended"
        if exitCode is not None:
            text += f" with exit code {exitCode}"
        if signal is not None:
            text += f" by signal {signal}"
        super().__init__(text)
        self.exitCode = exitCode
        self.signal = signal
        self.status = status


class ProcessExitedAlready(Exception):
    """The process has exited; the requested operation is no longer possible."""


# --- misuse of objects -----------------------------------------------------------------


class AlreadyCalled(_Described, ValueError):
    """Tried to cancel or reschedule a DelayedCall that has already run."""

    MESSAGE = "Tried to cancel an already-called event"


class AlreadyCancelled(_Described, ValueError):
    """Tried to cancel or reschedule a DelayedCall that was already cancelled."""

    MESSAGE = "Tried to cancel an already-cancelled event"


class NotConnectingError(_Described, RuntimeError):
    """``stopConnecting()`` was called on a connector that was not connecting."""

    MESSAGE = "The Connector was not connecting when it was asked to stop connecting"


class NotListeningError(_Described, RuntimeError):
    """``stopListening()`` was called on a port that was not listening."""

    MESSAGE = "The Port was not listening when it was asked to stop listening"


class ReactorNotRunning(RuntimeError):
    """``reactor.stop()`` was called on a reactor that is not running."""


class ReactorAlreadyRunning(RuntimeError):
    """``reactor.run()`` was called on a reactor that is already running."""


class ReactorAlreadyInstalledError(AssertionError):
    """A reactor was already installed; another cannot be chosen any more."""


class UnsupportedAddressFamily(Exception):
    """The reactor does not support this address family (``AF_*``)."""


class UnsupportedSocketType(Exception):
    """The reactor does not support this socket type (``SOCK_*``)."""


class InvalidAddressError(ValueError):
    """An address was neither valid IPv4 nor IPv6, or was the wrong one of the two.

    Attributes:
        address: The address that was given.
        message: Extra detail from the caller.
    """

    def __init__(self, address: object, message: str) -> None:
        super().__init__(address, message)
        self.address = address
        self.message = message
