"""TLS for every backend: one layer on ``ssl.MemoryBIO`` + ``ssl.SSLObject``.

``TLSConnection`` sits between a TCP transport and the user's protocol
(Twisted's ``TLSMemoryBIOProtocol`` idea), and is two things at once: the
TCP transport's *protocol* (ciphertext in through ``dataReceived`` goes into
the incoming BIO, the ``SSLObject`` is pumped, whatever it leaves in the
outgoing BIO is written to TCP) and the user protocol's *transport*
(``write`` encrypts, ``loseConnection`` sends close_notify,
``getPeerCertificate``/``negotiatedProtocol`` tell what the handshake settled).
The same code runs on the selector reactor and on asyncio/uvloop (whose own
TLS is then unused), so TLS behaves the same everywhere. The life of a
connection::

    TCP up -> handshake -> [buildProtocol] -> connectionMade -> handshakeCompleted?
           -> dataReceived* -> close_notify both ways -> connectionLost

Choices, and why:

- **Handshake first.** The user's protocol is built, and ``connectionMade``
  called, once the handshake has succeeded (Twisted calls it at TCP connect
  and buffers). ``getPeerCertificate()`` and ``negotiatedProtocol`` work in
  ``connectionMade``, code expecting a verified peer never meets another, and
  ``buildProtocol``/``connectionLost`` stay paired for factories that count.
- **Where a handshake failure goes.** ``connectSSL``: the factory's
  ``clientConnectionFailed``, with the ``ssl.SSLError`` (a bad certificate
  gives ``ssl.SSLCertVerificationError`` naming why, e.g. "Hostname
  mismatch"). ``listenSSL``: logged (INFO, logger "reactor"); there is no
  protocol yet. After ``startTLS``: the protocol's ``connectionLost``. The peer
  gets the TLS alert.
- **Closing.** ``loseConnection`` sends what is buffered, then close_notify,
  and waits (at most ``SHUTDOWN_TIMEOUT``) for the peer's before closing TCP,
  so a peer still sending is not answered with a RST that destroys data in
  flight. ``ConnectionDone`` when TLS was closed cleanly by either side; a TCP
  close without close_notify (maybe a truncation) is ``ConnectionTruncated``
  (a ``ConnectionLost``); ``closeNotifyReceived`` says whether the peer's
  close_notify arrived, whatever TCP reported after it. No half-close over TLS.
- **startTLS** keeps the protocol object and replaces its ``transport`` with
  the ``TLSConnection``. Whoever else holds the TCP transport must not write
  to it any more: that would put plaintext in the middle of the TLS stream.
- Writes before the end of the handshake are buffered, and a producer
  registered then is handed to TCP after it. No renegotiation (TLS 1.3 has
  none).
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Iterable
from functools import cache
from typing import Any

from deferred import Failure
from reactor.error import (
    ConnectError,
    ConnectionAborted,
    ConnectionDone,
    ConnectionLost,
    ConnectionTruncated,
)

__all__ = [
    "SHUTDOWN_TIMEOUT",
    "TLSClientFactory",
    "TLSConnection",
    "TLSServerFactory",
    "as_context",
    "connect_ssl",
    "listen_ssl",
    "start_tls",
]

log = logging.getLogger("reactor")

#: How long ``loseConnection`` waits for the peer's close_notify (asyncio's default).
SHUTDOWN_TIMEOUT = 30.0
#: One ``SSLObject.read`` asks for this much. OpenSSL returns at most one
#: record (16 KiB) per call whatever the size; 16 and 64 KiB measured the same.
READ_SIZE = 65536


@cache
def _default_client_context() -> ssl.SSLContext:
    # Loading the system's CA store takes milliseconds: do it once per process.
    return ssl.create_default_context()


def as_context(contextFactory: Any, server_side: bool) -> ssl.SSLContext:
    """The ``ssl.SSLContext`` to use: ``contextFactory`` itself, what its
    ``getContext()`` returns (Twisted style), or for a client None:
    ``ssl.create_default_context()`` (the system's CAs; names checked).

    Raises:
        TypeError: no ``ssl.SSLContext`` in sight.
        ValueError: a context for the other side, or none for a server.
    """
    if contextFactory is None:
        if server_side:
            raise ValueError("a TLS server needs an ssl.SSLContext with its certificate")
        return _default_client_context()
    context = contextFactory
    if not isinstance(context, ssl.SSLContext):
        get_context = getattr(contextFactory, "getContext", None)
        if get_context is None:
            raise TypeError(f"expected an ssl.SSLContext, not {contextFactory!r}")
        context = get_context()
        if not isinstance(context, ssl.SSLContext):
            raise TypeError(
                f"{contextFactory!r}.getContext() returned {context!r}; torsion needs an "
                "ssl.SSLContext (it uses the stdlib ssl module, not pyOpenSSL)")
    wrong = ssl.PROTOCOL_TLS_CLIENT if server_side else ssl.PROTOCOL_TLS_SERVER
    if context.protocol == wrong:
        side = "server" if server_side else "client"
        raise ValueError(f"{context.protocol.name} context cannot be used on the {side} side")
    return context


class TLSConnection:
    """TLS over a TCP transport: its protocol, and the user protocol's transport.

    Built by ``TLSServerFactory``/``TLSClientFactory`` (the user's protocol is
    then built from ``factory`` once the handshake succeeds) or by
    ``start_tls`` (``protocol`` given, already connected).

    Attributes:
        transport: the TCP transport underneath (as in Twisted).
        wrappedProtocol: the user's protocol (None until built).
        reactor: the TCP transport's reactor.
        server: True on the server side of the handshake.
        connected / disconnecting / disconnected: Twisted's state flags.
        producer: the registered producer, or None.
    """

    def __init__(self, context: ssl.SSLContext, server_side: bool,
                 server_hostname: str | None = None, *, factory: Any = None,
                 addr: Any = None, protocol: Any = None) -> None:
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._sslobj = context.wrap_bio(self._incoming, self._outgoing,
                                        server_side=server_side,
                                        server_hostname=None if server_side else server_hostname)
        self.server = server_side
        self._factory = factory
        self._addr = addr
        # Set once the user's protocol is made (so connectionLost is owed).
        self.wrappedProtocol: Any = protocol
        self.transport: Any = None
        self.reactor: Any = None
        self.connected = False
        self.disconnecting = False
        self.disconnected = False
        self.producer: Any = None
        self._streaming = False
        self._producer_on_raw = False  # registered on the TCP transport too
        self._handshake_done = False
        self._pending: list[bytes] = []  # plaintext waiting for the handshake
        self._paused = False  # the user paused reading
        self._resume_call: Any = None
        self._close_sent = False  # our close_notify is out (or we gave up on TLS)
        self._close_received = False  # the peer's close_notify arrived
        self._shutdown_call: Any = None
        self._reason: Failure | None = None  # why we closed it, when we know better
        self.lost_reason: Failure | None = None  # what connectionLost finally said

    # -- the TCP transport's protocol ------------------------------------------------

    def makeConnection(self, transport: Any) -> None:
        """The TCP connection is up: a client starts the handshake."""
        self._attach(transport)

    def _attach(self, transport: Any) -> None:
        self.transport = transport
        self.reactor = transport.reactor
        self.connected = True
        if not self.server:
            self._handshake()  # sends ClientHello

    def dataReceived(self, data: bytes) -> None:
        """Ciphertext from the peer: advance the handshake, then deliver plaintext."""
        self._incoming.write(data)
        if not self._handshake_done:
            self._handshake()
            if not self._handshake_done or self._lost_or_failed():
                return
        if not self._paused or self._close_sent:
            self._read()

    def connectionLost(self, reason: Failure) -> None:
        """TCP closed: tell the user's protocol why, in TLS terms."""
        self.connected = False
        self.disconnected = True
        self.disconnecting = True
        self._cancel_timers()
        if self._reason is not None:
            final = self._reason
        elif not self._handshake_done and not reason.check(ConnectionAborted):
            why = "" if reason.check(ConnectionDone) else f" ({reason.getErrorMessage()})"
            final = Failure(ConnectionLost(f"the connection closed during the TLS handshake{why}"))
        elif not reason.check(ConnectionDone) or self._close_received or self._close_sent:
            final = reason
        else:
            final = Failure(ConnectionTruncated())
        self.lost_reason = final
        producer, self.producer = self.producer, None
        if producer is not None and not self._producer_on_raw:
            # The TCP transport stops only a producer registered with it.
            try:
                producer.stopProducing()
            except Exception:
                log.exception("Error in stopProducing of %r", producer)
        if self.wrappedProtocol is not None:
            try:
                self.wrappedProtocol.connectionLost(final)
            except Exception:
                log.exception("Unhandled error in connectionLost of %r", self.wrappedProtocol)
        elif self.server and self._factory is not None:
            level = logging.INFO if isinstance(final.value, ssl.SSLError) else logging.DEBUG
            log.log(level, "TLS handshake with %s failed: %s", self._addr,
                    final.getErrorMessage())

    # -- the pump ------------------------------------------------------------------------

    def _handshake(self) -> None:
        try:
            self._sslobj.do_handshake()
        except ssl.SSLWantReadError:
            self._flush()
            return
        except ssl.SSLError as e:
            self._fail(e)  # sends the alert, so the peer learns why too
            return
        self._flush()
        self._handshake_done = True
        self._handshake_finished()

    def _handshake_finished(self) -> None:
        """Start the user's protocol, then do what was asked during the handshake."""
        if self.wrappedProtocol is None:
            try:
                protocol = self._factory.buildProtocol(self._addr)
            except Exception:
                log.exception("buildProtocol of %r raised; dropping the connection",
                              self._factory)
                self._refuse(Failure())
                return
            if protocol is None:
                self._refuse(Failure(ConnectError("buildProtocol returned None")))
                return
            self.wrappedProtocol = protocol
            try:
                protocol.makeConnection(self)
            except Exception:
                self._user_error("connectionMade")
                return
        listener = getattr(self.wrappedProtocol, "handshakeCompleted", None)
        if listener is not None:
            try:
                listener()
            except Exception:
                self._user_error("handshakeCompleted")
                return
        if self._lost_or_failed():
            return
        if self.producer is not None and not self._producer_on_raw:
            self._producer_on_raw = True
            self.transport.registerProducer(self.producer, self._streaming)
        if self._pending:
            self._write_pending()
        if self.disconnecting and self.producer is None:
            self._shutdown()

    def _read(self) -> None:
        """Decrypt everything buffered and deliver it in one ``dataReceived``."""
        read = self._sslobj.read
        chunks: list[bytes] = []
        closed = False
        error: ssl.SSLError | None = None
        try:
            while True:
                chunk = read(READ_SIZE)
                if not chunk:  # close_notify (b"" the first time, an error after)
                    closed = True
                    break
                chunks.append(chunk)
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLZeroReturnError:
            closed = True
        except ssl.SSLError as e:
            error = e
        if self._outgoing.pending:  # a key update or an alert wants answering
            self.transport.write(self._outgoing.read())
        # After loseConnection nothing more is delivered, as with plain TCP.
        if chunks and not self.disconnecting:
            try:
                self.wrappedProtocol.dataReceived(
                    chunks[0] if len(chunks) == 1 else b"".join(chunks))
            except Exception:
                self._user_error("dataReceived")
                return
        if error is not None:
            self._fail(error)
        elif closed:
            self._peer_closed()
        elif self._pending and not self.disconnecting:
            self._write_pending()

    def _flush(self) -> None:
        """Send what the SSLObject has produced (one TCP write per pump)."""
        if self._outgoing.pending:
            self.transport.write(self._outgoing.read())

    def _write_pending(self) -> None:
        data = b"".join(self._pending)
        self._pending = []
        try:
            self._sslobj.write(data)
        except ssl.SSLWantReadError:
            self._pending.append(data)  # mid-renegotiation: try after the next read
        except ssl.SSLError as e:
            self._fail(e)
            return
        self._flush()

    def _lost_or_failed(self) -> bool:
        return self.disconnected or self._reason is not None

    # -- the user protocol's transport ---------------------------------------------------

    def write(self, data: bytes) -> None:
        """Encrypt and send ``data`` (buffered until the handshake is done)."""
        if self.disconnecting or self.disconnected:
            return
        if isinstance(data, str):
            raise TypeError("Data must be bytes, not str")
        if not data:
            return
        if self._pending or not self._handshake_done:
            self._pending.append(bytes(data))
            return
        try:
            self._sslobj.write(data)
        except ssl.SSLWantReadError:
            self._pending.append(bytes(data))
            return
        except ssl.SSLError as e:
            self._fail(e)
            return
        self.transport.write(self._outgoing.read())

    def writeSequence(self, data: Iterable[bytes]) -> None:
        """Encrypt and send several byte strings, as one write."""
        self.write(b"".join(data))

    def loseConnection(self) -> None:
        """Close cleanly: send what is buffered, then close_notify, then close TCP.

        Waits for a registered producer to unregister, and for the handshake
        to finish, first.
        """
        if self.disconnecting or self.disconnected:
            return
        self.disconnecting = True
        if self._handshake_done and self.producer is None:
            self._shutdown()

    def abortConnection(self) -> None:
        """Close TCP at once, without close_notify, dropping anything unsent."""
        if self.disconnected:
            return
        self.disconnecting = True
        self._pending.clear()
        self.transport.abortConnection()

    def stopProducing(self) -> None:
        """The consumer of our data is gone: close."""
        self.loseConnection()

    def pauseProducing(self) -> None:
        """Stop delivering data (and stop reading from TCP)."""
        self._paused = True
        if not self.disconnected:
            self.transport.pauseProducing()

    def resumeProducing(self) -> None:
        """Deliver data again; what was decrypted meanwhile comes on the next turn."""
        self._paused = False
        if self.disconnected:
            return
        self.transport.resumeProducing()
        # Plaintext may wait in the SSLObject (or ciphertext in the BIO) from
        # before the pause. Delivered from the loop, not from inside this call.
        if self._handshake_done and self._resume_call is None and (
                self._sslobj.pending() or self._incoming.pending):
            self._resume_call = self.reactor.callLater(0, self._resume_reading)

    def _resume_reading(self) -> None:
        self._resume_call = None
        if not self._paused and not self.disconnected:
            self._read()

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        """Take data from ``producer``, with the TCP transport's flow control.

        Ciphertext lands in the TCP transport's buffer at once, so its water
        marks pause a push producer, and its draining asks a pull producer.
        """
        if self.producer is not None:
            raise RuntimeError(
                f"Cannot register producer {producer!r}, because producer "
                f"{self.producer!r} was never unregistered.")
        if self.disconnected:
            producer.stopProducing()
            return
        self.producer = producer
        self._streaming = bool(streaming)
        # Before the handshake, writes are only buffered here: a pull producer
        # registered below would be asked for more forever.
        if self._handshake_done and not self._close_sent:
            self._producer_on_raw = True
            self.transport.registerProducer(producer, streaming)

    def unregisterProducer(self) -> None:
        """Stop taking data from the producer; a pending ``loseConnection`` goes ahead."""
        if self.producer is None:
            return
        self.producer = None
        if self._producer_on_raw:
            self._producer_on_raw = False
            self.transport.unregisterProducer()
        if self.disconnecting and self._handshake_done and not self.disconnected:
            self._shutdown()

    # -- closing -----------------------------------------------------------------------

    def _shutdown(self) -> None:
        """Send close_notify after everything written; wait for the peer's."""
        if self._close_sent or self.disconnected:
            return
        self._close_sent = True
        if self._pending:
            self._write_pending()
            if self._reason is not None:
                return
        try:
            self._sslobj.unwrap()
            both_closed = True
        except ssl.SSLWantReadError:
            both_closed = self._close_received
        except ssl.SSLError:
            both_closed = True  # TLS is broken anyway: just close TCP
        self._flush()
        if both_closed:
            self._close_raw()
            return
        if self._paused:
            # Nothing more is delivered, but the peer's close_notify must be read.
            self.transport.resumeProducing()
        self._shutdown_call = self.reactor.callLater(SHUTDOWN_TIMEOUT, self._close_raw)

    def _peer_closed(self) -> None:
        """The peer's close_notify arrived: answer it (once), then close TCP."""
        self._close_received = True
        if not self._close_sent:
            self.disconnecting = True
            self._close_sent = True
            if self._pending:
                self._write_pending()
            try:
                self._sslobj.unwrap()
            except ssl.SSLError:
                pass
            self._flush()
        self._close_raw()

    def _fail(self, error: ssl.SSLError) -> None:
        """TLS failed: send the alert OpenSSL produced, close TCP, report ``error``."""
        if self._reason is None:
            self._reason = Failure(error)
        self.disconnecting = True
        self._close_sent = True
        self._pending.clear()
        self._flush()
        self._close_raw()

    def _refuse(self, reason: Failure) -> None:
        """The factory gave no protocol: close TLS politely; report ``reason``."""
        self._reason = reason
        self.disconnecting = True
        self._shutdown()

    def _close_raw(self) -> None:
        self._cancel_timers()
        if self.disconnected:
            return
        if self._producer_on_raw:
            # The TCP transport would wait for it; we are done sending.
            self._producer_on_raw = False
            self.transport.unregisterProducer()
        self.transport.loseConnection()

    def _user_error(self, where: str) -> None:
        """Protocol code raised: log it with its traceback and abort this connection."""
        failure = Failure()
        log.error("Unhandled error in %s of %r; closing the connection", where,
                  self.wrappedProtocol, exc_info=(failure.type, failure.value, failure.tb))
        if self._reason is None:
            self._reason = failure
        self.disconnecting = True
        if not self.disconnected:
            self.transport.abortConnection()

    def _cancel_timers(self) -> None:
        for call in (self._shutdown_call, self._resume_call):
            if call is not None and call.active():
                call.cancel()
        self._shutdown_call = self._resume_call = None

    # -- what the handshake settled, and the TCP transport's knobs --------------------

    @property
    def closeNotifyReceived(self) -> bool:
        """Whether the peer's TLS close_notify arrived (it meant to stop sending)."""
        return self._close_received

    def getPeerCertificate(self) -> dict[str, Any] | None:
        """The peer's certificate as ``ssl.SSLObject.getpeercert()`` gives it.

        None before the handshake or when the peer sent none; an empty dict
        when it was not verified (``verify_mode`` CERT_NONE).
        """
        if not self._handshake_done:
            return None
        return self._sslobj.getpeercert()

    def getpeercert(self, binary_form: bool = False) -> Any:
        """``ssl.SSLSocket.getpeercert``: a dict, or the DER bytes with ``binary_form``."""
        if not self._handshake_done:
            return None
        return self._sslobj.getpeercert(binary_form)

    @property
    def negotiatedProtocol(self) -> bytes | None:
        """The ALPN protocol agreed on (bytes, as in Twisted: ``b"h2"``), or None."""
        if not self._handshake_done:
            return None
        selected = self._sslobj.selected_alpn_protocol()
        return None if selected is None else selected.encode("ascii")

    def getHandle(self) -> ssl.SSLObject:
        """The ``ssl.SSLObject`` (``cipher()``, ``version()``...), like Twisted's."""
        return self._sslobj

    def getPeer(self) -> Any:
        """The remote address (the TCP connection's)."""
        return self.transport.getPeer()

    def getHost(self) -> Any:
        """The local address (the TCP connection's)."""
        return self.transport.getHost()

    # The TCP options are the TCP transport's.

    def setTcpNoDelay(self, enabled: bool) -> None:
        self.transport.setTcpNoDelay(enabled)

    def getTcpNoDelay(self) -> bool:
        return bool(self.transport.getTcpNoDelay())

    def setTcpKeepAlive(self, enabled: bool) -> None:
        self.transport.setTcpKeepAlive(enabled)

    def getTcpKeepAlive(self) -> bool:
        return bool(self.transport.getTcpKeepAlive())

    def logPrefix(self) -> str:
        """The user protocol's class name, for log messages."""
        return type(self.wrappedProtocol).__name__

    def __repr__(self) -> str:
        side = "server" if self.server else "client"
        state = ("closed" if self.disconnected else "open" if self._handshake_done
                 else "handshaking")
        return f"<TLS {side} {state} for {self.wrappedProtocol!r}>"


# -- factories: listenSSL and connectSSL are listenTCP/connectTCP with these ------------


class _TLSFactory:
    """What both wrapping factories share: the user's factory and the context.

    Attributes:
        wrappedFactory: the user's factory; its ``buildProtocol`` runs once
            the handshake has succeeded.
        context: the ``ssl.SSLContext``.
    """

    def __init__(self, factory: Any, context: ssl.SSLContext) -> None:
        self.wrappedFactory = factory
        self.context = context

    def doStart(self) -> None:
        self.wrappedFactory.doStart()

    def doStop(self) -> None:
        self.wrappedFactory.doStop()

    def logPrefix(self) -> str:
        return f"{type(self.wrappedFactory).__name__} (TLS)"

    def __repr__(self) -> str:
        return f"<TLS {self.wrappedFactory!r}>"


class TLSServerFactory(_TLSFactory):
    """Wraps a server factory (``listenSSL``): each accepted connection gets a TLS layer."""

    def buildProtocol(self, addr: Any) -> TLSConnection:
        """A TLS layer for a new connection; the user's protocol comes later."""
        return TLSConnection(self.context, True, factory=self.wrappedFactory, addr=addr)


class TLSClientFactory(_TLSFactory):
    """Wraps a client factory (``connectSSL``) and translates its callbacks.

    A connection whose handshake failed was never made as far as the user is
    concerned: the wrapped factory hears ``clientConnectionFailed`` with the
    TLS error, not ``clientConnectionLost``.

    Attributes:
        hostname: what the server's certificate is checked against (an IP
            literal is checked against its IP addresses, and sends no SNI).
    """

    def __init__(self, factory: Any, context: ssl.SSLContext, hostname: str) -> None:
        super().__init__(factory, context)
        self.hostname = hostname
        self._connection: TLSConnection | None = None

    def startedConnecting(self, connector: Any) -> None:
        started = getattr(self.wrappedFactory, "startedConnecting", None)
        if started is not None:
            started(connector)

    def buildProtocol(self, addr: Any) -> TLSConnection:
        """A TLS layer for the new connection; the user's protocol comes later."""
        connection = TLSConnection(self.context, False, self.hostname,
                                   factory=self.wrappedFactory, addr=addr)
        self._connection = connection
        return connection

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        self._tell("clientConnectionFailed", connector, reason)

    def clientConnectionLost(self, connector: Any, reason: Failure) -> None:
        connection, self._connection = self._connection, None
        if connection is None:  # pragma: no cover - the connector always built one
            self._tell("clientConnectionLost", connector, reason)
            return
        final = connection.lost_reason or reason
        made = connection.wrappedProtocol is not None
        self._tell("clientConnectionLost" if made else "clientConnectionFailed", connector,
                   final)

    def _tell(self, name: str, connector: Any, reason: Failure) -> None:
        method = getattr(self.wrappedFactory, name, None)
        if method is not None:
            method(connector, reason)


def listen_ssl(reactor: Any, port: int, factory: Any, contextFactory: Any,
               backlog: int = 50, interface: str = "") -> Any:
    """``reactor.listenSSL``: listen on TCP; each connection speaks TLS as the server.

    ``contextFactory`` is an ``ssl.SSLContext`` holding the certificate (or
    has a ``getContext()`` giving one, called once, now). Returns the port.
    """
    context = as_context(contextFactory, server_side=True)
    return reactor.listenTCP(port, TLSServerFactory(factory, context), backlog, interface)


def connect_ssl(reactor: Any, host: str, port: int, factory: Any, contextFactory: Any,
                timeout: float = 30, bindAddress: tuple[str, int] | None = None) -> Any:
    """``reactor.connectSSL``: connect over TCP, then speak TLS as the client.

    The certificate is checked against ``host`` if the context says so (None
    gives ``ssl.create_default_context()``, which checks chain and name; a
    context passed in is used as it is). Returns the connector.
    """
    # An IP literal works as server_hostname: ssl then checks the
    # certificate's IP addresses instead of names, and sends no SNI.
    context = as_context(contextFactory, server_side=False)
    return reactor.connectTCP(host, port, TLSClientFactory(factory, context, host),
                              timeout, bindAddress)


def start_tls(transport: Any, contextFactory: Any, server_side: bool,
              server_hostname: str | None = None) -> TLSConnection:
    """Switch an established TCP connection to TLS (``transport.startTLS``).

    What was written so far goes out in plaintext, ahead of the handshake;
    from now on everything goes through TLS. The protocol stays the same
    object; its ``transport`` becomes the returned ``TLSConnection``, its
    ``handshakeCompleted()`` (if any) is called after the handshake, and a
    failed handshake ends in its ``connectionLost`` with the error.

    Args:
        server_side: take the server's part in the handshake.
        server_hostname: what a client checks the certificate against; by
            default the peer's IP address (the transport knows no name).

    Raises:
        RuntimeError: TLS is already on, a producer is registered, or the
            connection is closing.
    """
    if isinstance(transport.protocol, TLSConnection):
        raise RuntimeError("TLS has already been started on this connection")
    if transport.producer is not None:
        raise RuntimeError("unregister the producer before starting TLS")
    if transport.disconnecting or not transport.connected:
        raise RuntimeError("cannot start TLS on a connection that is closing")
    context = as_context(contextFactory, server_side)
    if not server_side and server_hostname is None:
        server_hostname = transport.getPeer().host
    protocol = transport.protocol
    tls = TLSConnection(context, server_side, server_hostname, protocol=protocol)
    transport._swap_protocol(tls)
    protocol.transport = tls
    tls._attach(transport)
    return tls
