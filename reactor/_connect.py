"""Connecting to a TCP server, for every backend: resolution, happy eyeballs, Connector.

``connectTCP(host, port, factory)`` returns a ``Connector``. Getting from a
host name to a connected socket is the same on every backend:

1. Resolve the name with ``getaddrinfo`` on the reactor's thread pool, so a
   slow DNS server never blocks the loop (an IP literal skips this).
2. Race the addresses, happy-eyeballs style (RFC 8305): addresses are
   interleaved by family, IPv6 first; a new attempt starts every 250 ms, or at
   once when the previous one fails; the first to connect wins and the others
   are cancelled.

Only two steps differ by backend, and the reactor provides them:
``_connect_socket(sock, address) -> Deferred[socket]`` and
``_adopt_socket(sock, protocol, on_lost)``, which starts the protocol.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from typing import Any

from deferred import CancelledError, Deferred, Failure
from reactor.address import IPv4Address, IPv6Address
from reactor.error import (
    ConnectError,
    DNSLookupError,
    NotConnectingError,
    TimeoutError,
    UserError,
)

__all__ = ["Connector", "happy_eyeballs"]

log = logging.getLogger("reactor")

#: RFC 8305's recommended "Connection Attempt Delay".
ATTEMPT_DELAY = 0.25


def _literal_family(host: str) -> int | None:
    try:
        return socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    except ValueError:
        return None


def _interleave(infos: list[tuple[int, Any]]) -> list[tuple[int, Any]]:
    """Alternate address families, starting with the first one listed (RFC 8305 §4)."""
    first = [i for i in infos if i[0] == infos[0][0]]
    other = [i for i in infos if i[0] != infos[0][0]]
    out: list[tuple[int, Any]] = []
    for pair in zip(first, other, strict=False):
        out.extend(pair)
    longer = first if len(first) > len(other) else other
    out.extend(longer[min(len(first), len(other)):])
    return out


def happy_eyeballs(reactor: Any, host: str, port: int,
                   bindAddress: tuple[str, int] | None = None) -> Deferred[socket.socket]:
    """Resolve ``host`` and connect to the first address that answers.

    Returns a Deferred firing with the connected socket; cancelling it
    cancels every attempt. Fails with DNSLookupError or the last connect error.
    """
    family = _literal_family(host)
    if family is not None:
        return _race(reactor, [(family, (host, port))], bindAddress)

    cancelled = False

    def cancel_lookup(d: Deferred[Any]) -> None:
        nonlocal cancelled
        cancelled = True  # the lookup thread cannot be stopped; its answer is ignored

    outer: Deferred[socket.socket] = Deferred(cancel_lookup)

    def resolved(infos: list[Any]) -> Any:
        if cancelled:
            return None
        addresses = _interleave([(info[0], info[4]) for info in infos])
        if not addresses:
            raise DNSLookupError(host)
        return _race(reactor, addresses, bindAddress)

    def lookup_failed(failure: Failure) -> Failure:
        if failure.check(socket.gaierror):
            return Failure(DNSLookupError(f"{host}: {failure.getErrorMessage()}"))
        return failure

    lookup = reactor.deferToThread(socket.getaddrinfo, host, port, 0, socket.SOCK_STREAM)
    lookup.addErrback(lookup_failed).addCallback(resolved).chainDeferred(outer)
    return outer


def _race(reactor: Any, addresses: list[tuple[int, Any]],
          bindAddress: tuple[str, int] | None) -> Deferred[socket.socket]:
    attempts: list[Deferred[socket.socket]] = []
    pending = list(addresses)
    errors: list[Failure] = []
    timer: Any = None
    done = False

    def cancel(d: Deferred[Any]) -> None:
        finish()

    result: Deferred[socket.socket] = Deferred(cancel)

    def finish() -> None:
        nonlocal done
        done = True
        if timer is not None and timer.active():
            timer.cancel()
        for attempt in attempts:
            if not attempt.called:
                attempt.cancel()

    def start_next() -> None:
        nonlocal timer
        timer = None
        if done or not pending:
            return
        family, address = pending.pop(0)
        try:
            sock = socket.socket(family, socket.SOCK_STREAM)
            if bindAddress is not None:
                sock.bind(bindAddress)
        except OSError as e:
            failed(Failure(ConnectError(f"{e.errno}: {e.strerror}")))
            return
        attempt = reactor._connect_socket(sock, address)
        attempts.append(attempt)
        attempt.addCallbacks(succeeded, failed)
        if pending and not done and timer is None:
            timer = reactor.callLater(ATTEMPT_DELAY, start_next)

    def succeeded(sock: socket.socket) -> None:
        if done:
            sock.close()
            return
        finish()
        result.callback(sock)

    def failed(failure: Failure) -> None:
        if done or failure.check(CancelledError):
            return
        errors.append(failure)
        if pending:
            if timer is not None and timer.active():
                timer.cancel()
            start_next()
        elif all(a.called for a in attempts):
            finish()
            result.errback(errors[-1])

    start_next()
    return result


class Connector:
    """An outgoing TCP connection attempt, and then the connection (Twisted's Connector).

    ``connectTCP`` returns one. ``ReconnectingClientFactory`` calls
    ``connector.connect()`` again to retry.

    Attributes:
        state: "disconnected", "connecting" or "connected".
        transport: the transport once connected.
    """

    def __init__(self, reactor: Any, host: str, port: int, factory: Any,
                 timeout: float | None, bindAddress: tuple[str, int] | None) -> None:
        self.reactor = reactor
        self.host = host
        self.port = port
        self.factory = factory
        self.timeout = timeout
        self.bindAddress = bindAddress
        self.state = "disconnected"
        self.transport: Any = None
        self._factory_started = False
        self._attempt: Deferred[socket.socket] | None = None
        self._timeout_call: Any = None
        self._stop_reason: Failure | None = None

    def connect(self) -> None:
        """Start connecting (again)."""
        if self.state != "disconnected":
            raise RuntimeError(f"can't connect in state {self.state}")
        self.state = "connecting"
        self._stop_reason = None
        if not self._factory_started:
            self.factory.doStart()
            self._factory_started = True
        self.factory.startedConnecting(self)
        if self.state != "connecting":
            return  # stopConnecting() was called from startedConnecting
        if self.timeout:
            self._timeout_call = self.reactor.callLater(self.timeout, self._timed_out)
        attempt = self._attempt = happy_eyeballs(self.reactor, self.host, self.port,
                                                 self.bindAddress)
        attempt.addCallbacks(self._connected, self._failed)

    def _timed_out(self) -> None:
        self._timeout_call = None
        self._stop_reason = Failure(TimeoutError())
        if self._attempt is not None:
            self._attempt.cancel()

    def stopConnecting(self) -> None:
        """Give up connecting; the factory hears ``clientConnectionFailed`` (UserError)."""
        if self.state != "connecting":
            raise NotConnectingError("we're not trying to connect")
        self._stop_reason = Failure(UserError())
        if self._attempt is not None:
            self._attempt.cancel()
        else:
            self._failed(self._stop_reason)

    def disconnect(self) -> None:
        """Stop connecting, or close the connection."""
        if self.state == "connecting":
            self.stopConnecting()
        elif self.state == "connected" and self.transport is not None:
            self.transport.loseConnection()

    def _cancel_timeout(self) -> None:
        if self._timeout_call is not None and self._timeout_call.active():
            self._timeout_call.cancel()
        self._timeout_call = None

    def _connected(self, sock: socket.socket) -> None:
        self._cancel_timeout()
        self._attempt = None
        try:
            peer = sock.getpeername()
        except OSError as e:
            sock.close()
            self._failed(Failure(ConnectError(f"{e.errno}: {e.strerror}")))
            return
        address: IPv4Address | IPv6Address
        if sock.family == socket.AF_INET6:
            address = IPv6Address("TCP", *peer)
        else:
            address = IPv4Address("TCP", *peer)
        try:
            protocol = self.factory.buildProtocol(address)
        except Exception:
            sock.close()
            self._failed(Failure())
            return
        if protocol is None:
            sock.close()
            self._failed(Failure(ConnectError("buildProtocol returned None")))
            return
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.state = "connected"
        self.reactor._adopt_socket(sock, protocol, self._lost, self._set_transport)

    def _set_transport(self, transport: Any) -> None:
        self.transport = transport

    def _failed(self, failure: Failure) -> None:
        self._cancel_timeout()
        self._attempt = None
        if failure.check(CancelledError) and self._stop_reason is not None:
            failure = self._stop_reason
        self.state = "disconnected"
        self.transport = None
        try:
            self.factory.clientConnectionFailed(self, failure)
        except Exception:
            log.exception("clientConnectionFailed of %r raised", self.factory)
        self._maybe_stop_factory()

    def _lost(self, reason: Failure) -> None:
        self.state = "disconnected"
        self.transport = None
        try:
            self.factory.clientConnectionLost(self, reason)
        except Exception:
            log.exception("clientConnectionLost of %r raised", self.factory)
        self._maybe_stop_factory()

    def _maybe_stop_factory(self) -> None:
        # The factory may have called connect() again (a retry).
        if self.state == "disconnected" and self._factory_started:
            self._factory_started = False
            self.factory.doStop()

    def getDestination(self) -> IPv4Address | IPv6Address:
        """Where this connector connects to."""
        if _literal_family(self.host) == socket.AF_INET6:
            return IPv6Address("TCP", self.host, self.port)
        return IPv4Address("TCP", self.host, self.port)

    def __repr__(self) -> str:
        return f"<Connector to {self.host}:{self.port} {self.state}>"
