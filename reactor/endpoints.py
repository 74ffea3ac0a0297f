"""Endpoints: where to listen or connect, as objects and as strings (Twisted's syntax).

An endpoint is a place to listen (``listen(factory)`` -> Deferred[port]) or
to connect to (``connect(factory)`` -> Deferred[protocol]). Strings make
them configurable, so a command line or a config file can say where a
server listens without the code knowing::

    from reactor.endpoints import serverFromString, clientFromString, connectProtocol

    port = await serverFromString(reactor, "tcp:8080:interface=127.0.0.1").listen(factory)
    proto = await clientFromString(reactor, "tcp:example.com:80").connect(factory)

The string syntax is Twisted's: fields separated by ``:``, the first naming
the type; a field ``key=value`` is a named parameter, any other is
positional; a backslash makes the next character literal (``\\:``, ``\\=``,
``\\\\``). One addition: a value in square brackets is taken literally, so an
IPv6 address needs no escaping (``tcp6:8080:interface=[::1]``).

Server strings::

    tcp:PORT[:interface=ADDR][:backlog=N]          IPv4 (an IPv6 interface works too)
    tcp6:PORT[:interface=ADDR][:backlog=N]         IPv6, all interfaces ("::") by default
    unix:PATH[:mode=OCTAL][:backlog=N][:lockfile=0|1]   lockfile (default 1, as in
                                                   Twisted): a PATH.lock pid lock
    ssl:PORT:certKey=PEM[:privateKey=PEM][:extraCertChain=PEM][:dhParameters=PEM]
        [:interface=ADDR][:backlog=N]
    udp:PORT[:interface=ADDR][:maxPacketSize=N]    listen(DatagramProtocol)

Client strings::

    tcp:HOST:PORT  or  tcp:host=HOST:port=PORT  [:timeout=S][:bindAddress=ADDR]
    tcp6:HOST:PORT ...                             the same; an IPv6 literal in [ ]
    unix:PATH  or  unix:path=PATH  [:timeout=S][:lockfile=0|1]
    ssl:HOST:PORT [:trustRoots=CAFILE][:caCertsDir=DIR][:certKey=PEM][:privateKey=PEM]
        [:timeout=S][:bindAddress=ADDR]           the server's certificate and host
                                                   name are checked (system CAs by default)

A bad string raises ValueError naming the bad part, e.g. ``unknown endpoint
type 'tpc' in 'tpc:80'`` or ``port must be a number, got 'abc'``.

``describe(port)`` gives the canonical string of a listening port, with the
real port number (``tcp:127.0.0.1:8017``, ``tcp6:[::1]:8017``,
``udp:0.0.0.0:8017``, ``unix:/run/app.sock``); for TCP, TLS and Unix ports it
is also a client string that connects to it.

The ``reactor`` argument everywhere may be the ``reactor`` module (the
installed reactor) or a reactor object. This module chooses no backend.
"""

from __future__ import annotations

import os
import re
import ssl
import tempfile
from collections.abc import Callable
from typing import Any

from deferred import Deferred, Failure, fail, maybeDeferred
from reactor._endpoint_parser import parse
from reactor.address import IPv6Address, UNIXAddress
from reactor.error import ConnectingCancelledError, NoProtocol

__all__ = [
    "HostnameEndpoint",
    "SSL4ClientEndpoint",
    "SSL4ServerEndpoint",
    "TCP4ClientEndpoint",
    "TCP4ServerEndpoint",
    "TCP6ClientEndpoint",
    "TCP6ServerEndpoint",
    "UDPServerEndpoint",
    "UNIXClientEndpoint",
    "UNIXServerEndpoint",
    "clientFromString",
    "connectProtocol",
    "describe",
    "serverFromString",
    "server_context",
]

def serverFromString(reactor: Any, description: str) -> Any:
    """The server endpoint a string describes (see the module docstring for the syntax).

    Args:
        reactor: the ``reactor`` module or a reactor object.
        description: e.g. ``"tcp:8080:interface=127.0.0.1"``.

    Returns:
        A server endpoint: ``listen(factory)`` (``listen(protocol)`` for udp)
        returns a Deferred firing with the listening port.

    Raises:
        ValueError: the string is malformed, or names a TLS file that cannot
            be loaded; the message names the bad part.
    """
    kind, p = parse(description, "server")
    if kind == "tcp":
        return TCP4ServerEndpoint(reactor, p["port"], p["backlog"], p["interface"])
    if kind == "tcp6":
        return TCP6ServerEndpoint(reactor, p["port"], p["backlog"], p["interface"])
    if kind == "unix":
        return UNIXServerEndpoint(reactor, p["address"], p["backlog"], p["mode"],
                                  p["lockfile"])
    if kind == "udp":
        return UDPServerEndpoint(reactor, p["port"], p["interface"], p["maxPacketSize"])
    certKey = p.get("certKey") or p.get("privateKey")
    if certKey is None:
        raise ValueError("ssl needs certKey=CERT.pem (and privateKey=KEY.pem unless the "
                         "key is in the same file), as in "
                         "'ssl:8443:certKey=cert.pem:privateKey=key.pem'")
    context = server_context(certKey, p.get("privateKey") or certKey,
                              p.get("extraCertChain"), p.get("dhParameters"))
    return SSL4ServerEndpoint(reactor, p["port"], context, p["backlog"], p["interface"])


def clientFromString(reactor: Any, description: str) -> Any:
    """The client endpoint a string describes (see the module docstring for the syntax).

    Args:
        reactor: the ``reactor`` module or a reactor object.
        description: e.g. ``"tcp:example.com:80"`` or ``"tcp:host=example.com:port=80"``.

    Returns:
        A client endpoint: ``connect(factory)`` returns a Deferred firing
        with the protocol once it is connected.

    Raises:
        ValueError: the string is malformed, or names a TLS file that cannot
            be loaded; the message names the bad part.
    """
    kind, p = parse(description, "client")
    if kind == "unix":
        checkPID = p.get("checkPID", p.get("lockfile", False))
        return UNIXClientEndpoint(reactor, p["path"], p["timeout"], checkPID)
    bind = (p["bindAddress"], 0) if "bindAddress" in p else None
    if kind == "tcp":
        return TCP4ClientEndpoint(reactor, p["host"], p["port"], p["timeout"], bind)
    if kind == "tcp6":
        return TCP6ClientEndpoint(reactor, p["host"], p["port"], p["timeout"], bind)
    context = _client_context(p.get("trustRoots"), p.get("caCertsDir"), p.get("certKey"),
                              p.get("privateKey"))
    return SSL4ClientEndpoint(reactor, p["host"], p["port"], context, p["timeout"], bind)


# -- TLS contexts from files ----------------------------------------------------------


def _load_error(what: str, path: str, e: Exception) -> ValueError:
    reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
    return ValueError(f"can't load {what} {path!r}: {reason}")


def server_context(certKey: str, privateKey: str | None = None,
                   extraCertChain: str | None = None,
                   dhParameters: str | None = None) -> ssl.SSLContext:
    """A server SSLContext from PEM files (loaded now, so a bad file is reported early).

    The same context an ``ssl:`` endpoint string builds: ``server_context("cert.pem",
    "key.pem")``; the key may be in the certificate's file (``privateKey`` None).
    """
    privateKey = privateKey or certKey
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        if extraCertChain is None:
            context.load_cert_chain(certKey, privateKey)
        else:
            # load_cert_chain reads the chain from the certificate file only,
            # so the two are joined in a private temporary file.
            with open(certKey, "rb") as cert, open(extraCertChain, "rb") as chain:
                joined = cert.read().rstrip(b"\n") + b"\n" + chain.read()
            with tempfile.TemporaryDirectory() as tmp:
                path = os.path.join(tmp, "chain.pem")
                with open(path, "wb") as out:
                    out.write(joined)
                context.load_cert_chain(path, privateKey)
    except (OSError, ssl.SSLError) as e:
        raise _load_error("the certificate or key", f"{certKey}, {privateKey}", e) from e
    if dhParameters is not None:
        try:
            context.load_dh_params(dhParameters)
        except (OSError, ssl.SSLError) as e:
            raise _load_error("dhParameters", dhParameters, e) from e
    return context


def _client_context(trustRoots: str | None, caCertsDir: str | None, certKey: str | None,
                    privateKey: str | None) -> ssl.SSLContext:
    """A client SSLContext that checks the server's certificate and host name."""
    try:
        context = ssl.create_default_context(cafile=trustRoots, capath=caCertsDir)
    except (OSError, ssl.SSLError) as e:
        raise _load_error("trustRoots", trustRoots or caCertsDir or "", e) from e
    if certKey is not None or privateKey is not None:
        cert = certKey or privateKey
        assert cert is not None
        try:
            context.load_cert_chain(cert, privateKey or cert)
        except (OSError, ssl.SSLError) as e:
            raise _load_error("the client certificate", cert, e) from e
    return context


# -- describing addresses ---------------------------------------------------------------


def _escape(text: str) -> str:
    return re.sub(r"([\\:=\[])", r"\\\1", text)


def _host_port(scheme: str, host: str, port: int) -> str:
    if ":" in host:
        return f"{scheme}:[{host}]:{port}"
    return f"{scheme}:{host or '0.0.0.0'}:{port}"


def describe(port: Any) -> str:
    """The canonical string of a listening port, with its real port number.

    Examples: ``tcp:127.0.0.1:8017``, ``tcp6:[::1]:8017``, ``ssl:0.0.0.0:8443``,
    ``udp:127.0.0.1:8017``, ``unix:/run/app.sock``.
    """
    host = port.getHost()
    if isinstance(host, UNIXAddress):
        name = "" if host.name is None else os.fsdecode(host.name)
        return f"unix:{_escape(name)}"
    if getattr(host, "type", "TCP") == "UDP":
        scheme = "udp"
    elif _is_tls(port):
        scheme = "ssl"
    else:
        scheme = "tcp6" if isinstance(host, IPv6Address) else "tcp"
    return _host_port(scheme, host.host, host.port)


def _is_tls(port: Any) -> bool:
    # listenSSL is listenTCP with reactor.tls's wrapping factory.
    return type(getattr(port, "factory", None)).__module__ == "reactor.tls"


# -- server endpoints -------------------------------------------------------------------


class TCP4ServerEndpoint:
    """Listen on a TCP port (``listenTCP``); an IPv6 ``interface`` works too.

    Args:
        reactor: the ``reactor`` module or a reactor object.
        port: the port number; 0 picks a free one.
        backlog: the listen queue length.
        interface: the address to listen on; "" means all IPv4 interfaces.
    """

    _scheme = "tcp"

    def __init__(self, reactor: Any, port: int, backlog: int = 50,
                 interface: str = "") -> None:
        self._reactor = reactor
        self._port = port
        self._backlog = backlog
        self._interface = interface

    def listen(self, protocolFactory: Any) -> Deferred[Any]:
        """Start listening; a Deferred firing with the port, or failing with CannotListenError."""
        return maybeDeferred(self._reactor.listenTCP, self._port, protocolFactory,
                             backlog=self._backlog, interface=self._interface)

    def describe(self) -> str:
        """This endpoint as a string (with the port asked for, which may be 0)."""
        return _host_port(self._scheme, self._interface, self._port)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"


class TCP6ServerEndpoint(TCP4ServerEndpoint):
    """Listen on a TCP port over IPv6 (all interfaces, "::", by default)."""

    _scheme = "tcp6"

    def __init__(self, reactor: Any, port: int, backlog: int = 50,
                 interface: str = "::") -> None:
        super().__init__(reactor, port, backlog, interface)


class SSL4ServerEndpoint(TCP4ServerEndpoint):
    """Listen for TLS connections (``listenSSL``) with an ``ssl.SSLContext``.

    Args:
        reactor: the ``reactor`` module or a reactor object.
        port: the port number; 0 picks a free one.
        sslContextFactory: a server-side ``ssl.SSLContext``.
        backlog: the listen queue length.
        interface: the address to listen on; "" means all IPv4 interfaces.
    """

    _scheme = "ssl"

    def __init__(self, reactor: Any, port: int, sslContextFactory: ssl.SSLContext,
                 backlog: int = 50, interface: str = "") -> None:
        super().__init__(reactor, port, backlog, interface)
        self._context = sslContextFactory

    def listen(self, protocolFactory: Any) -> Deferred[Any]:
        """Start listening; a Deferred firing with the port, or failing with CannotListenError."""
        return maybeDeferred(self._reactor.listenSSL, self._port, protocolFactory,
                             self._context, backlog=self._backlog, interface=self._interface)


class UNIXServerEndpoint:
    """Listen on a Unix stream socket (``listenUNIX``).

    Args:
        reactor: the ``reactor`` module or a reactor object.
        address: the socket's path.
        backlog: the listen queue length.
        mode: the socket file's permissions.
        wantPID: keep a ``PATH.lock`` file holding our pid, so a second
            server cannot take over a live socket (a stale one is replaced).
    """

    def __init__(self, reactor: Any, address: str, backlog: int = 50, mode: int = 0o666,
                 wantPID: bool = False) -> None:
        self._reactor = reactor
        self._address = address
        self._backlog = backlog
        self._mode = mode
        self._wantPID = wantPID

    def listen(self, protocolFactory: Any) -> Deferred[Any]:
        """Start listening; a Deferred firing with the port, or failing with CannotListenError."""
        return maybeDeferred(self._reactor.listenUNIX, self._address, protocolFactory,
                             backlog=self._backlog, mode=self._mode, wantPID=self._wantPID)

    def describe(self) -> str:
        """This endpoint as a string."""
        return f"unix:{_escape(self._address)}"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"


class UDPServerEndpoint:
    """Bind a UDP port for a ``DatagramProtocol`` (``listenUDP``).

    ``listen`` takes the protocol itself (UDP has no connections, so no factory).

    Args:
        reactor: the ``reactor`` module or a reactor object.
        port: the port number; 0 picks a free one.
        interface: the address to bind; "" means all IPv4 interfaces.
        maxPacketSize: the largest datagram read.
    """

    def __init__(self, reactor: Any, port: int, interface: str = "",
                 maxPacketSize: int = 8192) -> None:
        self._reactor = reactor
        self._port = port
        self._interface = interface
        self._maxPacketSize = maxPacketSize

    def listen(self, protocol: Any) -> Deferred[Any]:
        """Bind; a Deferred firing with the port, or failing with CannotListenError."""
        return maybeDeferred(self._reactor.listenUDP, self._port, protocol,
                             interface=self._interface, maxPacketSize=self._maxPacketSize)

    def describe(self) -> str:
        """This endpoint as a string (with the port asked for, which may be 0)."""
        return _host_port("udp", self._interface, self._port)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"


# -- client endpoints -------------------------------------------------------------------


class _WrappingProtocol:
    """Stands between the transport and the user's protocol to fire ``connect()``'s Deferred.

    Only ``makeConnection`` and ``connectionLost`` pass through here: the
    user's ``dataReceived`` is copied onto this object, so the transports
    (which hoist it) call it with no frame of ours in between, and any other
    attribute is looked up on the user's protocol.
    """

    dataReceived: Callable[[bytes], None]

    def __init__(self, made: Deferred[Any], wrapped: Any) -> None:
        self._made = made
        self._wrapped = wrapped
        self._started = False
        self.transport: Any = None
        self.dataReceived = wrapped.dataReceived

    def makeConnection(self, transport: Any) -> None:
        self.transport = transport
        if self._made.called:
            # connect() was cancelled while the transport was being set up.
            transport.abortConnection()
            return
        self._started = True
        try:
            self._wrapped.makeConnection(transport)
        except BaseException:
            # The transport logs it and closes the connection; the caller
            # of connect() hears of it too.
            self._made.errback(Failure())
            raise
        self._made.callback(self._wrapped)

    def connectionLost(self, reason: Failure) -> None:
        if self._started:
            self._wrapped.connectionLost(reason)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("_wrapped", "_made", "_started"):
            raise AttributeError(name)
        return getattr(self._wrapped, name)

    def __repr__(self) -> str:
        return f"<endpoint wrapper of {self._wrapped!r}>"


class _WrappingFactory:
    """The client factory behind ``connect()``: builds the wrapper, reports failures."""

    def __init__(self, wrapped: Any, destination: str) -> None:
        self._wrapped = wrapped
        self._destination = destination
        self._connector: Any = None
        self._cancelled = False
        self.made: Deferred[Any] = Deferred(self._cancel)

    def doStart(self) -> None:
        self._wrapped.doStart()

    def doStop(self) -> None:
        self._wrapped.doStop()

    def startedConnecting(self, connector: Any) -> None:
        self._connector = connector

    def buildProtocol(self, addr: Any) -> _WrappingProtocol | None:
        try:
            protocol = self._wrapped.buildProtocol(addr)
            if protocol is None:
                raise NoProtocol(f"{self._wrapped!r}.buildProtocol returned None")
        except BaseException:
            if not self.made.called:
                self.made.errback(Failure())
            return None  # the connector closes the socket
        return _WrappingProtocol(self.made, protocol)

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        if not self.made.called and not self._cancelled:
            self.made.errback(reason)

    def clientConnectionLost(self, connector: Any, reason: Failure) -> None:
        # Lost before the protocol started (a reset during set-up): a failure to connect.
        if not self.made.called and not self._cancelled:
            self.made.errback(reason)

    def _cancel(self, d: Deferred[Any]) -> None:
        # stopConnecting reports through clientConnectionFailed: not to the caller.
        self._cancelled = True
        connector = self._connector
        destination: Any = self._destination
        if connector is not None:
            if getattr(connector, "state", "connecting") == "connecting":
                try:
                    connector.stopConnecting()
                except Exception:  # it finished connecting meanwhile
                    pass
            transport = getattr(connector, "transport", None)
            if transport is not None:
                transport.abortConnection()
            getDestination = getattr(connector, "getDestination", None)
            if getDestination is not None:
                destination = getDestination()
        d.errback(ConnectingCancelledError(destination))


class _ClientEndpoint:
    """What every client endpoint does: connect through a wrapping factory."""

    def connect(self, protocolFactory: Any) -> Deferred[Any]:
        """Connect; a Deferred firing with the protocol once its ``connectionMade`` ran.

        It fails with the reason the connection could not be made (refused,
        timed out, DNS lookup failed, TLS handshake failed...). Cancelling it
        gives up the attempt (``ConnectingCancelledError``).
        """
        factory = _WrappingFactory(protocolFactory, self.describe())
        try:
            self._start(factory)
        except Exception:
            return fail(Failure())
        return factory.made

    def _start(self, factory: _WrappingFactory) -> None:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"


def _host_text(host: str | bytes) -> str:
    return host.decode("idna") if isinstance(host, bytes) else host


class TCP4ClientEndpoint(_ClientEndpoint):
    """Connect over TCP (``connectTCP``).

    A host name is resolved off the loop and its addresses are raced
    happy-eyeballs style (RFC 8305), so it may reach the host over IPv6 too.

    Args:
        reactor: the ``reactor`` module or a reactor object.
        host: a host name or an IP address.
        port: the port number.
        timeout: seconds before the attempt fails with TimeoutError.
        bindAddress: a local (host, port) to connect from.
    """

    _scheme = "tcp"

    def __init__(self, reactor: Any, host: str | bytes, port: int, timeout: float = 30,
                 bindAddress: tuple[str, int] | None = None) -> None:
        self._reactor = reactor
        self._host = _host_text(host)
        self._port = port
        self._timeout = timeout
        self._bindAddress = bindAddress

    def _start(self, factory: _WrappingFactory) -> None:
        self._reactor.connectTCP(self._host, self._port, factory, timeout=self._timeout,
                                 bindAddress=self._bindAddress)

    def describe(self) -> str:
        """This endpoint as a client string."""
        return _host_port(self._scheme, self._host, self._port)


class TCP6ClientEndpoint(TCP4ClientEndpoint):
    """Connect over TCP to an IPv6 address or a host name (the same as TCP4ClientEndpoint)."""

    _scheme = "tcp6"


class HostnameEndpoint(TCP4ClientEndpoint):
    """Connect over TCP to a host name, racing its IPv4 and IPv6 addresses (RFC 8305).

    Args:
        reactor: the ``reactor`` module or a reactor object.
        host: the host name (str, or bytes as in Twisted).
        port: the port number.
        timeout: seconds before the attempt fails with TimeoutError.
        bindAddress: a local (host, port) to connect from.
    """


class SSL4ClientEndpoint(TCP4ClientEndpoint):
    """Connect with TLS (``connectSSL``) using a client ``ssl.SSLContext``.

    Args:
        reactor: the ``reactor`` module or a reactor object.
        host: the host name, also checked against the server's certificate
            when the context says so (the default contexts do).
        port: the port number.
        sslContextFactory: a client-side ``ssl.SSLContext``.
        timeout: seconds before the attempt fails with TimeoutError.
        bindAddress: a local (host, port) to connect from.
    """

    _scheme = "ssl"

    def __init__(self, reactor: Any, host: str | bytes, port: int,
                 sslContextFactory: ssl.SSLContext, timeout: float = 30,
                 bindAddress: tuple[str, int] | None = None) -> None:
        super().__init__(reactor, host, port, timeout, bindAddress)
        self._context = sslContextFactory

    def _start(self, factory: _WrappingFactory) -> None:
        self._reactor.connectSSL(self._host, self._port, factory, self._context,
                                 timeout=self._timeout, bindAddress=self._bindAddress)


class UNIXClientEndpoint(_ClientEndpoint):
    """Connect to a Unix stream socket (``connectUNIX``).

    Args:
        reactor: the ``reactor`` module or a reactor object.
        path: the socket's path.
        timeout: seconds before the attempt fails with TimeoutError.
        checkPID: refuse to connect when the server's lock file names a dead process.
    """

    def __init__(self, reactor: Any, path: str, timeout: float = 30,
                 checkPID: bool = False) -> None:
        self._reactor = reactor
        self._path = path
        self._timeout = timeout
        self._checkPID = checkPID

    def _start(self, factory: _WrappingFactory) -> None:
        self._reactor.connectUNIX(self._path, factory, timeout=self._timeout,
                                  checkPID=self._checkPID)

    def describe(self) -> str:
        """This endpoint as a client string."""
        return f"unix:{_escape(self._path)}"


class _OneShotFactory:
    """A factory whose only protocol is the one it was given (for connectProtocol)."""

    def __init__(self, protocol: Any) -> None:
        self._protocol = protocol

    def doStart(self) -> None:
        pass

    def doStop(self) -> None:
        pass

    def buildProtocol(self, addr: Any) -> Any:
        self._protocol.factory = self
        return self._protocol


def connectProtocol(endpoint: Any, protocol: Any) -> Deferred[Any]:
    """Connect ``endpoint`` to this protocol instance; a Deferred firing with it, connected."""
    return endpoint.connect(_OneShotFactory(protocol))  # type: ignore[no-any-return]
