"""Connecting to HTTP servers, and keeping idle connections for reuse.

:class:`HTTPConnectionPool` (Twisted's name and knobs) hands out connections
by key ``(scheme, host, port)``: an idle cached one when there is one, else a
new one. A connection comes back to the cache only after a complete response
that allowed keep-alive (the protocol's quiescent callback); at most
``maxPersistentPerHost`` idle ones are kept per key, each for at most
``cachedConnectionTimeout`` seconds. A cached connection the server closes
leaves the cache at once.

:class:`_Endpoint` makes the connections: ``connectTCP``, or ``connectSSL``
with a context that checks the certificate and host name.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Hashable
from typing import Any

from deferred import CancelledError, Deferred, Failure, fail, gatherResults, succeed
from protocols.base import ClientFactory
from reactor.error import TimeoutError as ReactorTimeoutError
from reactor.tls import as_context

from ._client_errors import ConnectTimeoutError, TLSConnectError
from ._client_protocol import HTTP11ClientProtocol

__all__ = ["HTTPConnectionPool"]

log = logging.getLogger("protocols.http.client")


def _tls_context(contextFactory: Any, host: bytes, port: int) -> ssl.SSLContext:
    """The ``ssl.SSLContext`` for a connection to ``host:port``.

    ``contextFactory`` may be None (the system default: chain and host name
    checked), an ``ssl.SSLContext``, a Twisted-style policy with
    ``creatorForNetloc(host, port)``, or an object with ``getContext()``.
    """
    creator = getattr(contextFactory, "creatorForNetloc", None)
    if creator is not None:
        contextFactory = creator(host, port)
    return as_context(contextFactory, server_side=False)


class _ConnectFactory(ClientFactory[HTTP11ClientProtocol]):
    """Builds one HTTP11ClientProtocol; fires ``deferred`` once it is connected."""

    noisy = False

    def __init__(self, deferred: Deferred[HTTP11ClientProtocol], reactor: Any,
                 quiescent: Any, where: str) -> None:
        self.deferred = deferred
        self.reactor = reactor
        self.quiescent = quiescent
        self.where = where
        self.timed_out = False
        self.cancelled = False

    def buildProtocol(self, addr: Any) -> HTTP11ClientProtocol:
        protocol = HTTP11ClientProtocol(self.quiescent, self.reactor)
        protocol.connectedCallback = self._connected
        return protocol

    def _connected(self, protocol: HTTP11ClientProtocol) -> None:
        if not self.deferred.called:
            self.deferred.callback(protocol)
        else:
            protocol._abort()  # cancelled meanwhile

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        if self.deferred.called:
            return
        if self.timed_out or reason.check(ReactorTimeoutError):
            reason = Failure(ConnectTimeoutError(None, self.where))
        elif self.cancelled:
            reason = Failure(CancelledError(f"connecting to {self.where} was cancelled"))
        elif reason.check(ssl.SSLError):
            reason = Failure(TLSConnectError(self.where, reason))
        self.deferred.errback(reason)

    def clientConnectionLost(self, connector: Any, reason: Failure) -> None:
        # Lost before connectionMade: during the TLS handshake.
        self.clientConnectionFailed(connector, reason)


class _Endpoint:
    """How to reach one server: scheme, host, port, TLS context, timeouts."""

    def __init__(self, reactor: Any, scheme: bytes, host: bytes, port: int,
                 contextFactory: Any = None, connectTimeout: float | None = None,
                 bindAddress: Any = None) -> None:
        self.reactor = reactor
        self.scheme = scheme
        self.host = host
        self.port = port
        self.contextFactory = contextFactory
        self.connectTimeout = connectTimeout
        self.bindAddress = bindAddress

    def connect(self, quiescent: Any) -> Deferred[HTTP11ClientProtocol]:
        """Connect; the Deferred fires with the protocol once it is usable.

        Cancelling it abandons the attempt. Fails with ``ConnectTimeoutError``
        after ``connectTimeout`` (the TLS handshake included),
        ``TLSConnectError`` when the certificate does not verify, or the
        reactor's ``ConnectError`` (refused, DNS failure...).
        """
        host = self.host.decode("utf-8")
        if not host.isascii():
            host = host.encode("idna").decode("ascii")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        where = f"{host}:{self.port}"
        connector: Any = None
        timer: Any = None

        def cancel(d: Deferred[HTTP11ClientProtocol]) -> None:
            factory.cancelled = True
            stop()

        def stop() -> None:
            if connector is None:
                return
            if connector.state == "connecting":
                connector.stopConnecting()
            elif connector.transport is not None:
                connector.transport.abortConnection()  # e.g. during the TLS handshake

        def timed_out() -> None:
            nonlocal timer
            timer = None
            factory.timed_out = True
            stop()

        def done(result: Any) -> Any:
            if timer is not None and timer.active():
                timer.cancel()
            return result

        d: Deferred[HTTP11ClientProtocol] = Deferred(cancel)
        factory = _ConnectFactory(d, self.reactor, quiescent, where)
        timeout = self.connectTimeout if self.connectTimeout is not None else 30.0
        if self.connectTimeout is not None:
            timer = self.reactor.callLater(self.connectTimeout, timed_out)
        if self.scheme == b"https":
            try:
                context = _tls_context(self.contextFactory, self.host, self.port)
            except Exception:
                if timer is not None:
                    timer.cancel()
                return fail(Failure())
            connector = self.reactor.connectSSL(host, self.port, factory, context,
                                                timeout + 1, self.bindAddress)
        else:
            connector = self.reactor.connectTCP(host, self.port, factory, timeout + 1,
                                                self.bindAddress)
        d.addBoth(done)
        return d


class HTTPConnectionPool:
    """Keeps idle HTTP connections for reuse (Twisted's ``HTTPConnectionPool``).

    Args:
        reactor: The reactor connections are made with.
        persistent: False makes every connection carry one request and close
            (requests then say ``Connection: close``).

    Attributes:
        maxPersistentPerHost: Most idle connections kept per (scheme, host, port).
        cachedConnectionTimeout: Seconds an idle connection is kept.
        retryAutomatically: Retry once, on a new connection, an idempotent
            bodiless request whose reused connection failed before any
            response arrived (the server had closed it meanwhile).
    """

    maxPersistentPerHost = 2
    cachedConnectionTimeout = 240.0
    retryAutomatically = True

    def __init__(self, reactor: Any, persistent: bool = True) -> None:
        self._reactor = reactor
        self.persistent = persistent
        self._connections: dict[Hashable, list[HTTP11ClientProtocol]] = {}
        # One idle timer per connection, kept while the connection is lent
        # out: a keep-alive client takes and returns a connection on every
        # request, and cancelling and scheduling a timer each time cost more
        # than the rest of the pool's work. When a timer fires it checks
        # how long the connection has really been idle (_idleSince).
        self._timeouts: dict[HTTP11ClientProtocol, Any] = {}
        self._idleSince: dict[HTTP11ClientProtocol, float] = {}

    def getConnection(self, key: Hashable, endpoint: _Endpoint) -> Deferred[HTTP11ClientProtocol]:
        """An idle cached connection for ``key``, else a new one from ``endpoint``.

        A cached connection has ``reused`` set to True.
        """
        cached = self._connections.get(key)
        while cached:
            connection = cached.pop(0)
            if not cached:
                del self._connections[key]
            if connection.state == "QUIESCENT":
                self._idleSince.pop(connection, None)  # its timer stays; see __init__
                # Lost while lent out: its timer has nothing left to do.
                connection.lostCallback = self._forget_timer
                connection.reused = True
                return succeed(connection)
            self._forget_timer(connection)
            connection.lostCallback = None
            cached = self._connections.get(key)
        return self._newConnection(key, endpoint)

    def _newConnection(self, key: Hashable,
                       endpoint: _Endpoint) -> Deferred[HTTP11ClientProtocol]:
        def quiescent(connection: HTTP11ClientProtocol) -> None:
            self._putConnection(key, connection)

        return endpoint.connect(quiescent)

    def _putConnection(self, key: Hashable, connection: HTTP11ClientProtocol) -> None:
        """Cache ``connection`` (it just completed a response), or close it."""
        transport = connection.transport
        if transport is None:
            return
        cached = self._connections.setdefault(key, [])
        if not self.persistent or len(cached) >= self.maxPersistentPerHost:
            if not cached:
                del self._connections[key]
            transport.loseConnection()
            return
        cached.append(connection)
        connection.reused = False

        def lost(conn: HTTP11ClientProtocol) -> None:
            self._remove(key, conn)

        connection.lostCallback = lost
        self._idleSince[connection] = self._reactor.seconds()
        if connection not in self._timeouts:
            self._timeouts[connection] = self._reactor.callLater(
                self.cachedConnectionTimeout, self._expire, key, connection)

    def _expire(self, key: Hashable, connection: HTTP11ClientProtocol) -> None:
        self._timeouts.pop(connection, None)
        since = self._idleSince.get(connection)
        if since is None:
            return  # lent out: armed again when it comes back
        remaining = since + self.cachedConnectionTimeout - self._reactor.seconds()
        if remaining > 0:  # it was used meanwhile: idle for less than the timeout
            self._timeouts[connection] = self._reactor.callLater(
                remaining, self._expire, key, connection)
            return
        self._remove(key, connection)
        if connection.transport is not None:
            connection.transport.loseConnection()

    def _remove(self, key: Hashable, connection: HTTP11ClientProtocol) -> None:
        self._forget_timer(connection)
        cached = self._connections.get(key)
        if cached and connection in cached:
            cached.remove(connection)
            if not cached:
                del self._connections[key]

    def _forget_timer(self, connection: HTTP11ClientProtocol) -> None:
        self._idleSince.pop(connection, None)
        timer = self._timeouts.pop(connection, None)
        if timer is not None and timer.active():
            timer.cancel()

    def cachedConnections(self, key: Hashable | None = None) -> int:
        """How many idle connections are cached (for ``key``, or in total)."""
        if key is not None:
            return len(self._connections.get(key, ()))
        return sum(len(c) for c in self._connections.values())

    def closeCachedConnections(self) -> Deferred[None]:
        """Close every idle connection; the Deferred fires once all have closed."""
        waiting = []
        connections, self._connections = self._connections, {}
        for cached in connections.values():
            for connection in cached:
                self._forget_timer(connection)
                connection.lostCallback = None
                waiting.append(connection.whenClosed())
                if connection.transport is not None:
                    connection.transport.loseConnection()
        return gatherResults(waiting).addCallback(lambda _: None)
