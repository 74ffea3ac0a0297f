"""TLS (listenSSL, connectSSL, startTLS) over real loopback sockets, on every backend."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import ssl
import subprocess
from typing import Any

import pytest
import trustme

from deferred import Deferred, race
from protocols import Factory, Protocol
from reactor import tls as tls_module
from reactor.error import (
    ConnectError,
    ConnectionAborted,
    ConnectionDone,
    ConnectionLost,
    ConnectionTruncated,
)
from reactor.tls import TLSConnection, as_context
from tests.reactor.conftest import (
    Echo,
    Recorder,
    RecordingClientFactory,
    SingleServerFactory,
)

OPENSSL = shutil.which("openssl")


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def cert(ca: trustme.CA) -> trustme.LeafCert:
    return ca.issue_cert("localhost", "127.0.0.1", "::1")


@pytest.fixture
def server_ctx(cert: trustme.LeafCert) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert.configure_cert(ctx)
    return ctx


@pytest.fixture
def client_ctx(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context()  # verifies the chain and the host name
    ca.configure_trust(ctx)
    return ctx


async def tls_pair(reactor: Any, server: Any, client: Any, server_ctx: ssl.SSLContext,
                   client_ctx: Any, host: str = "127.0.0.1",
                   interface: str = "127.0.0.1") -> tuple[Any, RecordingClientFactory]:
    """listenSSL with ``server``, connectSSL ``client``; return once both are made."""
    port = reactor.listenSSL(0, SingleServerFactory(server), server_ctx, interface=interface)
    factory = RecordingClientFactory(lambda: client)
    reactor.connectSSL(host, port.getHost().port, factory, client_ctx)
    await client.made
    await server.made
    return port, factory


def _in_thread(reactor: Any, f: Any, *args: Any) -> Deferred[Any]:
    return reactor.deferToThread(f, *args)


# -- echo and closing --------------------------------------------------------------


async def test_echo_and_clean_close(reactor: Any, server_ctx: Any, client_ctx: Any) -> None:
    port = reactor.listenSSL(0, Factory.forProtocol(Echo), server_ctx, interface="127.0.0.1")
    factory = RecordingClientFactory()
    reactor.connectSSL("localhost", port.getHost().port, factory, client_ctx)
    client = await factory.built
    await client.made
    assert isinstance(client.transport, TLSConnection)
    client.transport.write(b"hello")
    client.transport.writeSequence([b" ", b"world"])
    assert await client.wait_for_bytes(11) == b"hello world"
    client.transport.loseConnection()
    reason = await client.lost
    assert reason.check(ConnectionDone)
    assert (await factory.connection_lost).check(ConnectionDone)
    assert client.events == ["made", "data", "lost"]
    await port.stopListening()


async def test_peer_sees_ConnectionDone_both_ways(reactor: Any, server_ctx: Any,
                                                  client_ctx: Any) -> None:
    server, client = Recorder(), Recorder()
    port, _ = await tls_pair(reactor, server, client, server_ctx, client_ctx)
    server.transport.write(b"bye")
    server.transport.loseConnection()
    assert await client.wait_for_bytes(3) == b"bye"
    assert (await client.lost).check(ConnectionDone)
    assert (await server.lost).check(ConnectionDone)
    await port.stopListening()


async def test_tls_1_2(reactor: Any, server_ctx: Any, client_ctx: Any) -> None:
    client_ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    server, client = Recorder(), Recorder()
    port, _ = await tls_pair(reactor, server, client, server_ctx, client_ctx)
    assert client.transport.getHandle().version() == "TLSv1.2"
    client.transport.write(b"old")
    assert await server.wait_for_bytes(3) == b"old"
    server.transport.loseConnection()
    assert (await client.lost).check(ConnectionDone)
    assert (await server.lost).check(ConnectionDone)
    await port.stopListening()


async def test_connection_left_open_is_closed_by_the_reactor(
        reactor: Any, server_ctx: Any, client_ctx: Any) -> None:
    # The fixture shuts the reactor down after the test, and fails it if a
    # file descriptor is left open.
    server, client = Recorder(), Recorder()
    await tls_pair(reactor, server, client, server_ctx, client_ctx)


@pytest.mark.reactor_timeout(60)
async def test_multi_megabyte_echo(reactor: Any, server_ctx: Any, client_ctx: Any) -> None:
    server, client = Echo(), Recorder()
    server.made = Deferred()  # type: ignore[attr-defined]
    server.connectionMade = lambda: server.made.callback(None)  # type: ignore[attr-defined]
    port, _ = await tls_pair(reactor, server, client, server_ctx, client_ctx)
    payload = os.urandom(6 * 1024 * 1024 + 7)
    for i in range(0, len(payload), 1024 * 1024):
        client.transport.write(payload[i:i + 1024 * 1024])
    assert await client.wait_for_bytes(len(payload)) == payload
    client.transport.loseConnection()
    assert (await client.lost).check(ConnectionDone)
    await port.stopListening()


async def test_writes_then_loseConnection_flushes_everything(
        reactor: Any, server_ctx: Any, client_ctx: Any) -> None:
    server, client = Recorder(), Recorder()
    port, _ = await tls_pair(reactor, server, client, server_ctx, client_ctx)
    payload = os.urandom(2 * 1024 * 1024)
    client.transport.write(payload)
    client.transport.loseConnection()
    client.transport.write(b"ignored")
    assert (await server.lost).check(ConnectionDone)
    assert bytes(server.received) == payload
    await port.stopListening()


async def test_abortConnection(reactor: Any, server_ctx: Any, client_ctx: Any) -> None:
    server, client = Recorder(), Recorder()
    port, _ = await tls_pair(reactor, server, client, server_ctx, client_ctx)
    client.transport.abortConnection()
    assert (await client.lost).check(ConnectionAborted)
    # No close_notify came: the server cannot tell this from a truncation.
    assert (await server.lost).check(ConnectionLost)
    await port.stopListening()


async def test_tcp_close_without_close_notify_is_ConnectionLost(
        reactor: Any, server_ctx: Any, client_ctx: Any) -> None:
    server = Recorder()
    port = reactor.listenSSL(0, SingleServerFactory(server), server_ctx,
                             interface="127.0.0.1")
    number = port.getHost().port

    def client() -> None:
        with socket.create_connection(("127.0.0.1", number)) as raw:
            tls = client_ctx.wrap_socket(raw, server_hostname="localhost")
            tls.sendall(b"partial")
            tls.recv(1)  # until the server sees the data: it answers below
            tls.close()  # TCP FIN, no close_notify

    server_saw = server.wait_for_bytes(7).addCallback(lambda _: server.transport.write(b"!"))
    await _in_thread(reactor, client)
    await server_saw
    reason = await server.lost
    assert reason.check(ConnectionTruncated)  # a ConnectionLost, saying why
    assert reason.check(ConnectionLost)
    assert "close_notify" in reason.failure.getErrorMessage()
    await port.stopListening()


async def test_unanswered_close_notify_closes_after_the_timeout(
        reactor: Any, server_ctx: Any, client_ctx: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tls_module, "SHUTDOWN_TIMEOUT", 0.2)
    server, client = Recorder(), Recorder()
    port, _ = await tls_pair(reactor, server, client, server_ctx, client_ctx)
    client.transport.pauseProducing()  # so the client cannot answer
    server.transport.loseConnection()
    assert (await server.lost).check(ConnectionDone)
    client.transport.resumeProducing()
    assert (await client.lost).check(ConnectionDone)
    await port.stopListening()


# -- verification -------------------------------------------------------------------


async def test_untrusted_ca_fails_naming_verification(
        reactor: Any, server_ctx: Any, caplog: pytest.LogCaptureFixture) -> None:
    server = Recorder()
    port = reactor.listenSSL(0, SingleServerFactory(server), server_ctx,
                             interface="127.0.0.1")
    factory = RecordingClientFactory()
    with caplog.at_level(logging.INFO, logger="reactor"):
        # None: ssl.create_default_context(), the system's CAs, which do not
        # include our test CA.
        reactor.connectSSL("localhost", port.getHost().port, factory, None)
        reason = await factory.failed
        assert reason.check(ssl.SSLCertVerificationError)
        assert "certificate verify failed" in reason.failure.getErrorMessage()
        # The server never built a protocol for it, and logged why.
        while "TLS handshake" not in caplog.text:
            await _next_turn(reactor)
    assert not factory.built.called and not server.made.called
    assert "unknown ca" in caplog.text.lower()
    await port.stopListening()


async def test_wrong_hostname_fails_naming_the_mismatch(
        reactor: Any, ca: trustme.CA, client_ctx: Any) -> None:
    other = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("example.org").configure_cert(other)
    port = reactor.listenSSL(0, Factory.forProtocol(Echo), other, interface="127.0.0.1")
    factory = RecordingClientFactory()
    reactor.connectSSL("localhost", port.getHost().port, factory, client_ctx)
    reason = await factory.failed
    assert reason.check(ssl.SSLCertVerificationError)
    assert "Hostname mismatch" in reason.failure.getErrorMessage()
    assert "'localhost'" in reason.failure.getErrorMessage()
    await port.stopListening()


async def test_ip_literal_is_verified_against_the_certificate(
        reactor: Any, ca: trustme.CA, server_ctx: Any, client_ctx: Any) -> None:
    server, client = Recorder(), Recorder()
    port, _ = await tls_pair(reactor, server, client, server_ctx, client_ctx,
                             host="127.0.0.1")
    client.transport.loseConnection()
    await server.lost
    await port.stopListening()
    # A certificate without the IP address is refused.
    name_only = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("localhost").configure_cert(name_only)
    port = reactor.listenSSL(0, Factory.forProtocol(Echo), name_only, interface="127.0.0.1")
    factory = RecordingClientFactory()
    reactor.connectSSL("127.0.0.1", port.getHost().port, factory, client_ctx)
    reason = await factory.failed
    assert reason.check(ssl.SSLCertVerificationError)
    assert "IP address mismatch" in reason.failure.getErrorMessage()
    await port.stopListening()


async def test_ipv6_literal(reactor: Any, server_ctx: Any, client_ctx: Any) -> None:
    server, client = Recorder(), Recorder()
    port, _ = await tls_pair(reactor, server, client, server_ctx, client_ctx,
                             host="::1", interface="::1")
    client.transport.write(b"six")
    assert await server.wait_for_bytes(3) == b"six"
    client.transport.loseConnection()
    await server.lost
    await port.stopListening()


async def test_not_a_tls_server_is_a_handshake_failure(reactor: Any, client_ctx: Any) -> None:
    port = reactor.listenTCP(0, Factory.forProtocol(Echo), interface="127.0.0.1")
    factory = RecordingClientFactory()
    # The plain echo server sends our ClientHello back: a protocol error.
    reactor.connectSSL("127.0.0.1", port.getHost().port, factory, client_ctx)
    reason = await factory.failed
    assert reason.check(ssl.SSLError)
    assert not factory.built.called
    await port.stopListening()


async def test_server_closing_during_handshake(reactor: Any, client_ctx: Any) -> None:
    class Closer(Protocol):
        def connectionMade(self) -> None:
            self.transport.loseConnection()

    port = reactor.listenTCP(0, Factory.forProtocol(Closer), interface="127.0.0.1")
    factory = RecordingClientFactory()
    reactor.connectSSL("127.0.0.1", port.getHost().port, factory, client_ctx)
    reason = await factory.failed
    assert reason.check(ConnectionLost)
    assert "handshake" in reason.failure.getErrorMessage()
    await port.stopListening()


# -- what the handshake settled -----------------------------------------------------------


async def test_peer_certificates_with_client_authentication(
        reactor: Any, ca: trustme.CA, server_ctx: Any, client_ctx: Any) -> None:
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    ca.configure_trust(server_ctx)
    ca.issue_cert("client.example").configure_cert(client_ctx)
    seen: list[Any] = []

    class Peek(Recorder):
        def connectionMade(self) -> None:
            # Already known here: the handshake is over before connectionMade.
            seen.append(self.transport.getPeerCertificate())
            super().connectionMade()

        def handshakeCompleted(self) -> None:
            self.events.append("handshake")

    server, client = Peek(), Recorder()
    port, _ = await tls_pair(reactor, server, client, server_ctx, client_ctx)
    server_cert = client.transport.getPeerCertificate()
    assert ("DNS", "localhost") in server_cert["subjectAltName"]
    assert ("IP Address", "127.0.0.1") in server_cert["subjectAltName"]
    assert ("DNS", "client.example") in seen[0]["subjectAltName"]
    der = client.transport.getpeercert(binary_form=True)
    assert isinstance(der, bytes) and der[:1] == b"\x30"  # a DER SEQUENCE
    assert client.transport.getHandle().version() in ("TLSv1.2", "TLSv1.3")
    assert client.transport.getPeer() == server.transport.getHost()
    client.transport.loseConnection()
    await server.lost
    assert server.events == ["made", "handshake", "lost"]
    await port.stopListening()


async def test_server_requiring_a_client_certificate_refuses_none(
        reactor: Any, ca: trustme.CA, server_ctx: Any, client_ctx: Any) -> None:
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    ca.configure_trust(server_ctx)
    port = reactor.listenSSL(0, Factory.forProtocol(Echo), server_ctx, interface="127.0.0.1")
    factory = RecordingClientFactory()
    reactor.connectSSL("127.0.0.1", port.getHost().port, factory, client_ctx)
    # TLS 1.3: the client finishes its handshake first and hears the alert
    # after (connection lost); TLS 1.2: the handshake itself fails.
    _, reason = await race([factory.failed, factory.connection_lost])
    assert reason.check(ssl.SSLError)
    assert "certificate" in reason.failure.getErrorMessage().lower()
    await port.stopListening()


@pytest.mark.parametrize(("server_alpn", "client_alpn", "expected"), [
    (["h2", "http/1.1"], ["http/1.1"], b"http/1.1"),
    (["h2", "http/1.1"], ["h2", "http/1.1"], b"h2"),
    (None, ["h2"], None),
])
async def test_alpn(reactor: Any, server_ctx: Any, client_ctx: Any, server_alpn: Any,
                    client_alpn: Any, expected: bytes | None) -> None:
    if server_alpn:
        server_ctx.set_alpn_protocols(server_alpn)
    client_ctx.set_alpn_protocols(client_alpn)
    server, client = Recorder(), Recorder()
    port, _ = await tls_pair(reactor, server, client, server_ctx, client_ctx)
    assert client.transport.negotiatedProtocol == expected
    assert server.transport.negotiatedProtocol == expected
    client.transport.loseConnection()
    await server.lost
    await port.stopListening()


# -- startTLS ------------------------------------------------------------------------------


class StartTLSServer(Recorder):
    """Plaintext until "STARTTLS", then answers "GO" and turns into a TLS echo server."""

    def __init__(self, ctx: ssl.SSLContext) -> None:
        super().__init__()
        self.ctx = ctx
        self.tls = False
        self.handshakes = 0

    def connectionMade(self) -> None:
        super().connectionMade()
        self.transport.write(b"HELLO plain\n")

    def dataReceived(self, data: bytes) -> None:
        if self.tls:
            super().dataReceived(data)
            self.transport.write(data)
        elif data == b"STARTTLS\n":
            self.transport.write(b"GO\n")  # plaintext, sent before the handshake
            self.transport.startTLS(self.ctx)
            self.tls = True

    def handshakeCompleted(self) -> None:
        self.handshakes += 1


class StartTLSClient(Recorder):
    def __init__(self, ctx: ssl.SSLContext, hostname: str | None = None) -> None:
        super().__init__()
        self.ctx = ctx
        self.hostname = hostname
        self.plain = b""

    def dataReceived(self, data: bytes) -> None:
        if isinstance(self.transport, TLSConnection):
            super().dataReceived(data)
            return
        self.plain += data
        if self.plain == b"HELLO plain\n":
            self.transport.write(b"STARTTLS\n")
        elif self.plain.endswith(b"GO\n"):
            tcp = self.transport
            tcp.startTLS(self.ctx, server_hostname=self.hostname)
            assert self.transport is not tcp
            # Buffered until the handshake is done, then encrypted.
            self.transport.write(b"secret")


async def test_startTLS_on_both_sides(reactor: Any, server_ctx: Any, client_ctx: Any) -> None:
    server = StartTLSServer(server_ctx)
    client = StartTLSClient(client_ctx, hostname="localhost")
    port = reactor.listenTCP(0, SingleServerFactory(server), interface="127.0.0.1")
    reactor.connectTCP("127.0.0.1", port.getHost().port, RecordingClientFactory(lambda: client))
    assert await server.wait_for_bytes(6) == b"secret"
    assert await client.wait_for_bytes(6) == b"secret"
    assert isinstance(server.transport, TLSConnection) and server.transport.server
    assert not client.transport.server
    assert server.handshakes == 1
    cert = client.transport.getPeerCertificate()
    assert ("DNS", "localhost") in cert["subjectAltName"]
    payload = os.urandom(1024 * 1024)
    client.transport.write(payload)
    assert await client.wait_for_bytes(6 + len(payload)) == b"secret" + payload
    client.transport.loseConnection()
    assert (await client.lost).check(ConnectionDone)
    assert (await server.lost).check(ConnectionDone)
    assert client.events == ["made", "data", "lost"]
    await port.stopListening()


async def test_startTLS_client_checks_the_peer_address_by_default(
        reactor: Any, server_ctx: Any, client_ctx: Any) -> None:
    server = StartTLSServer(server_ctx)
    client = StartTLSClient(client_ctx)  # the certificate has 127.0.0.1 in it
    port = reactor.listenTCP(0, SingleServerFactory(server), interface="127.0.0.1")
    reactor.connectTCP("127.0.0.1", port.getHost().port, RecordingClientFactory(lambda: client))
    assert await client.wait_for_bytes(6) == b"secret"
    client.transport.loseConnection()
    await server.lost
    await port.stopListening()


async def test_startTLS_handshake_failure_reaches_connectionLost(
        reactor: Any, server_ctx: Any) -> None:
    server = StartTLSServer(server_ctx)
    untrusting = ssl.create_default_context()
    client = StartTLSClient(untrusting, hostname="localhost")
    port = reactor.listenTCP(0, SingleServerFactory(server), interface="127.0.0.1")
    reactor.connectTCP("127.0.0.1", port.getHost().port, RecordingClientFactory(lambda: client))
    reason = await client.lost
    assert reason.check(ssl.SSLCertVerificationError)
    assert "certificate verify failed" in reason.failure.getErrorMessage()
    server_reason = await server.lost
    assert server_reason.check(ssl.SSLError)
    assert "unknown ca" in server_reason.failure.getErrorMessage().lower()
    await port.stopListening()


async def test_startTLS_twice_is_refused(reactor: Any, server_ctx: Any,
                                         client_ctx: Any) -> None:
    server, client = Recorder(), Recorder()
    port, _ = await tls_pair(reactor, server, client, server_ctx, client_ctx)
    with pytest.raises(RuntimeError):
        client.transport.transport.startTLS(client_ctx)
    client.transport.loseConnection()
    await server.lost
    await port.stopListening()


# -- flow control -------------------------------------------------------------------------


class PushProducer:
    def __init__(self, transport: Any, total: int) -> None:
        self.transport = transport
        self.remaining = total
        self.paused = False
        self.pauses = 0
        self.stopped = False
        self.done: Deferred[None] = Deferred()

    def pump(self) -> None:
        while not self.paused and self.remaining > 0:
            chunk = min(self.remaining, 16384)
            self.remaining -= chunk
            self.transport.write(b"p" * chunk)
        if self.remaining == 0 and not self.done.called:
            self.transport.unregisterProducer()
            self.transport.loseConnection()
            self.done.callback(None)

    def pauseProducing(self) -> None:
        self.paused = True
        self.pauses += 1

    def resumeProducing(self) -> None:
        self.paused = False
        self.transport.reactor.callLater(0, self.pump)

    def stopProducing(self) -> None:
        self.stopped = True


async def test_push_producer_is_paused_and_resumed(reactor: Any, server_ctx: Any,
                                                   client_ctx: Any) -> None:
    server, client = Recorder(), Recorder()
    port, _ = await tls_pair(reactor, server, client, server_ctx, client_ctx)
    total = 8 * 1024 * 1024
    client.transport.pauseProducing()
    producer = PushProducer(server.transport, total)
    server.transport.registerProducer(producer, True)
    producer.pump()
    assert producer.pauses >= 1 and producer.remaining > 0
    client.transport.resumeProducing()
    await producer.done
    assert (await client.lost).check(ConnectionDone)
    assert len(client.received) == total
    await port.stopListening()


class PullProducer:
    def __init__(self, transport: Any, chunks: int) -> None:
        self.transport = transport
        self.chunks = chunks
        self.calls = 0

    def resumeProducing(self) -> None:
        self.calls += 1
        if self.chunks == 0:
            self.transport.unregisterProducer()
            self.transport.loseConnection()
            return
        self.chunks -= 1
        self.transport.write(b"q" * 65536)

    def stopProducing(self) -> None:
        pass


async def test_pull_producer_and_loseConnection_waiting_for_it(
        reactor: Any, server_ctx: Any, client_ctx: Any) -> None:
    server, client = Recorder(), Recorder()
    port, _ = await tls_pair(reactor, server, client, server_ctx, client_ctx)
    producer = PullProducer(server.transport, 16)
    server.transport.registerProducer(producer, False)
    with pytest.raises(RuntimeError):
        server.transport.registerProducer(PullProducer(server.transport, 0), False)
    assert (await client.lost).check(ConnectionDone)
    assert len(client.received) == 16 * 65536
    assert producer.calls == 17
    await port.stopListening()


async def test_lost_connection_stops_the_producer(reactor: Any, server_ctx: Any,
                                                  client_ctx: Any) -> None:
    server, client = Recorder(), Recorder()
    port, _ = await tls_pair(reactor, server, client, server_ctx, client_ctx)
    producer = PushProducer(server.transport, 0)
    server.transport.registerProducer(producer, True)
    client.transport.loseConnection()
    assert (await server.lost).check(ConnectionDone)
    assert producer.stopped
    await port.stopListening()


async def test_pause_holds_back_decrypted_data(reactor: Any, server_ctx: Any,
                                               client_ctx: Any) -> None:
    class PausesAfterFirst(Recorder):
        def dataReceived(self, data: bytes) -> None:
            if not self.received:
                self.transport.pauseProducing()
            super().dataReceived(data)  # may run the test on: pause first

    server, client = PausesAfterFirst(), Recorder()
    port, _ = await tls_pair(reactor, server, client, server_ctx, client_ctx)
    client.transport.write(b"one")
    await server.wait_for_bytes(3)
    client.transport.write(b"two")
    await _next_turn(reactor)
    await _next_turn(reactor)
    assert bytes(server.received) == b"one"
    server.transport.resumeProducing()
    assert await server.wait_for_bytes(6) == b"onetwo"
    client.transport.loseConnection()
    await server.lost
    await port.stopListening()


# -- factories and user errors ---------------------------------------------------------------


async def test_client_buildProtocol_None_fails_the_connection(
        reactor: Any, server_ctx: Any, client_ctx: Any) -> None:
    class Refuses(RecordingClientFactory):
        def buildProtocol(self, addr: Any) -> Any:
            return None

    port = reactor.listenSSL(0, Factory.forProtocol(Echo), server_ctx, interface="127.0.0.1")
    factory = Refuses()
    reactor.connectSSL("127.0.0.1", port.getHost().port, factory, client_ctx)
    reason = await factory.failed
    assert reason.check(ConnectError)
    await port.stopListening()


async def test_exception_in_dataReceived_is_logged_and_closes(
        reactor: Any, server_ctx: Any, client_ctx: Any,
        caplog: pytest.LogCaptureFixture) -> None:
    class Explodes(Recorder):
        def dataReceived(self, data: bytes) -> None:
            raise ValueError("user code exploded")

    server, client = Explodes(), Recorder()
    port, _ = await tls_pair(reactor, server, client, server_ctx, client_ctx)
    with caplog.at_level(logging.ERROR):
        client.transport.write(b"boom")
        reason = await server.lost
    assert reason.check(ValueError)
    assert "user code exploded" in caplog.text
    await client.lost
    await port.stopListening()


def test_contexts_are_checked_up_front(server_ctx: Any, client_ctx: Any) -> None:
    class TwistedStyle:
        def getContext(self) -> ssl.SSLContext:
            return server_ctx

    assert as_context(TwistedStyle(), server_side=True) is server_ctx
    assert as_context(None, server_side=False).check_hostname
    with pytest.raises(ValueError, match="server"):
        as_context(None, server_side=True)
    with pytest.raises(ValueError):
        as_context(client_ctx, server_side=True)
    with pytest.raises(ValueError):
        as_context(server_ctx, server_side=False)
    with pytest.raises(TypeError):
        as_context("cert.pem", server_side=True)


# -- real stdlib and OpenSSL peers ----------------------------------------------------------


async def test_stdlib_blocking_client_against_listenSSL(
        reactor: Any, server_ctx: Any, client_ctx: Any) -> None:
    port = reactor.listenSSL(0, Factory.forProtocol(Echo), server_ctx, interface="127.0.0.1")
    number = port.getHost().port
    payload = os.urandom(300_000)

    def client() -> tuple[bytes, str | None]:
        with socket.create_connection(("127.0.0.1", number), timeout=20) as raw:
            tls = client_ctx.wrap_socket(raw, server_hostname="localhost")
            tls.sendall(payload)
            got = b""
            while len(got) < len(payload):
                got += tls.recv(65536)
            version = tls.version()
            tls.unwrap()  # close_notify both ways: our server answers it
            return got, version

    got, version = await _in_thread(reactor, client)
    assert got == payload
    assert version is not None
    await port.stopListening()


@pytest.mark.skipif(OPENSSL is None, reason="no openssl binary")
async def test_openssl_s_client_against_listenSSL(
        reactor: Any, cert: trustme.LeafCert, ca: trustme.CA, server_ctx: Any,
        tmp_path: Any) -> None:
    class Greeter(Protocol):
        def dataReceived(self, data: bytes) -> None:
            if b"\n" in data:
                self.transport.write(b"hello, " + data)
                self.transport.loseConnection()

    server_ctx.set_alpn_protocols(["torsion"])
    port = reactor.listenSSL(0, Factory.forProtocol(Greeter), server_ctx,
                             interface="127.0.0.1")
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    command = [OPENSSL, "s_client", "-connect", f"127.0.0.1:{port.getHost().port}",
               "-servername", "localhost", "-verify_hostname", "localhost",
               "-CAfile", str(ca_file), "-verify_return_error", "-alpn", "torsion",
               "-quiet"]

    def run() -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(command, input=b"openssl\n", capture_output=True, timeout=20)

    result = await _in_thread(reactor, run)
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"hello, openssl\n"
    await port.stopListening()


def _next_turn(reactor: Any) -> Deferred[None]:
    d: Deferred[None] = Deferred()
    reactor.callLater(0.01, d.callback, None)
    return d
