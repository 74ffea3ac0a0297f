"""UNIX stream sockets over real socket files, on every backend (select, asyncio, uvloop)."""

from __future__ import annotations

import errno
import logging
import os
import socket
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from deferred import Deferred
from protocols import Factory
from reactor.address import UNIXAddress
from reactor.error import (
    BadFileError,
    CannotListenError,
    ConnectError,
    ConnectionAborted,
    ConnectionDone,
    ConnectionLost,
    ConnectionRefusedError,
    NotConnectingError,
    TimeoutError,
    UserError,
)
from tests.reactor.conftest import Echo, Recorder, RecordingClientFactory, SingleServerFactory
from tests.reactor.test_tcp import Explodes, HalfCloser, PushProducer, WriteCloser

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="Linux-only feature")


@pytest.fixture
def path(tmp_path: Path) -> Iterator[str]:
    """A socket path that fits in sun_path (107 bytes), in a directory removed afterwards."""
    if len(str(tmp_path)) < 90:
        yield str(tmp_path / "s")
        return
    with tempfile.TemporaryDirectory(dir="/tmp") as short:
        yield os.path.join(short, "s")


async def unix_pair(reactor: Any, path: str, server: Any, client: Any) -> tuple[Any, Any]:
    """Listen on ``path`` with ``server``, connect ``client``; (port, client factory)
    once both sides have seen connectionMade."""
    port = reactor.listenUNIX(path, SingleServerFactory(server))
    factory = RecordingClientFactory(lambda: client)
    reactor.connectUNIX(path, factory)
    await client.made
    await server.made
    return port, factory


def stale_socket_file(path: str) -> None:
    """Leave a socket file nobody listens on, as a server that crashed does."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    sock.close()


def next_turn(reactor: Any) -> Deferred[None]:
    d: Deferred[None] = Deferred()
    reactor.callLater(0, d.callback, None)
    return d


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


# -- the life of a connection -------------------------------------------------------------


async def test_echo_round_trip_and_clean_close(reactor: Any, path: str) -> None:
    port = reactor.listenUNIX(path, Factory.forProtocol(Echo))
    factory = RecordingClientFactory()
    connector = reactor.connectUNIX(path, factory)
    assert factory.started == [connector]
    assert connector.state == "connecting"
    client = await factory.built
    await client.made
    assert connector.state == "connected"
    client.transport.write(b"hello")
    client.transport.writeSequence([b" ", b"world"])
    assert await client.wait_for_bytes(11) == b"hello world"
    client.transport.loseConnection()
    assert (await client.lost).check(ConnectionDone)
    assert (await factory.connection_lost).check(ConnectionDone)
    assert client.events == ["made", "data", "lost"]
    assert connector.state == "disconnected"
    await port.stopListening()


async def test_addresses(reactor: Any, path: str) -> None:
    built_for: list[Any] = []

    class Noting(RecordingClientFactory):
        def buildProtocol(self, addr: Any) -> Any:
            built_for.append(addr)
            return super().buildProtocol(addr)

    server, client = Recorder(), Recorder()
    port = reactor.listenUNIX(path, SingleServerFactory(server))
    connector = reactor.connectUNIX(path, Noting(lambda: client))
    await client.made
    await server.made
    here = UNIXAddress(path)
    assert built_for == [here] == [connector.getDestination()]
    assert port.getHost() == here
    assert server.transport.getHost() == here
    assert client.transport.getPeer() == here
    # The client did not bind: its end has no name.
    assert client.transport.getHost() == UNIXAddress(None)
    assert server.transport.getPeer() == UNIXAddress(None)
    assert port.factory.built == [server]
    client.transport.loseConnection()
    await server.lost
    assert server.transport.getHost() == here  # still known after the close
    await port.stopListening()


async def test_a_bound_client_is_named_to_the_server(reactor: Any, path: str,
                                                      tmp_path: Path) -> None:
    seen: list[Any] = []

    class Naming(Factory):
        def buildProtocol(self, addr: Any) -> Any:
            seen.append(addr)
            return server

    server = Recorder()
    port = reactor.listenUNIX(path, Naming())
    raw = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client_path = path + "c"
    raw.bind(client_path)
    raw.connect(path)
    try:
        await server.made
        assert seen == [UNIXAddress(client_path)]
        assert server.transport.getPeer() == UNIXAddress(client_path)
    finally:
        raw.close()
    await server.lost
    await port.stopListening()


async def test_large_transfer_arrives_whole_and_in_order(reactor: Any, path: str) -> None:
    server, client = Recorder(), Recorder()
    port, _ = await unix_pair(reactor, path, server, client)
    payload = os.urandom(4 * 1024 * 1024)
    for i in range(0, len(payload), 1024 * 1024):
        client.transport.write(payload[i:i + 1024 * 1024])
    client.transport.writeSequence([b"tail-", b"end"])
    client.transport.loseConnection()  # flushes everything first
    assert (await server.lost).check(ConnectionDone)
    assert bytes(server.received) == payload + b"tail-end"
    await port.stopListening()


async def test_half_close_both_ways(reactor: Any, path: str) -> None:
    server, client = HalfCloser(), WriteCloser()
    port, _ = await unix_pair(reactor, path, server, client)
    client.transport.write(b"request")
    client.transport.loseWriteConnection()
    reason = await client.lost
    assert bytes(client.received) == b"got request"
    assert "writeLost" in client.events and "readLost" in client.events
    assert reason.check(ConnectionDone)
    assert server.events[:3] == ["made", "data", "readLost"]
    await server.lost
    await port.stopListening()


async def test_abortConnection(reactor: Any, path: str) -> None:
    server, client = Recorder(), Recorder()
    port, _ = await unix_pair(reactor, path, server, client)
    client.transport.write(b"x" * 100)
    client.transport.abortConnection()
    assert (await client.lost).check(ConnectionAborted)
    assert (await server.lost).check(ConnectionDone, ConnectionLost)
    assert client.events.count("lost") == 1
    await port.stopListening()


async def test_push_producer_is_paused_and_resumed(reactor: Any, path: str) -> None:
    server, client = Recorder(), Recorder()
    port, _ = await unix_pair(reactor, path, server, client)
    total = 8 * 1024 * 1024
    client.transport.pauseProducing()  # the server's buffer fills up
    producer = PushProducer(server.transport, total)
    server.transport.registerProducer(producer, True)
    producer.pump()
    assert producer.pauses >= 1 and producer.remaining > 0
    client.transport.resumeProducing()
    await producer.done
    await client.lost
    assert len(client.received) == total
    assert producer.resumes >= 1
    await port.stopListening()


async def test_peer_credentials_are_our_own(reactor: Any, path: str) -> None:
    if not hasattr(socket, "SO_PEERCRED"):
        pytest.skip("no SO_PEERCRED here")
    server, client = Recorder(), Recorder()
    port, _ = await unix_pair(reactor, path, server, client)
    ours = (os.getpid(), os.getuid(), os.getgid())
    assert server.transport.getPeerCredentials() == ours
    assert client.transport.getPeerCredentials() == ours
    client.transport.loseConnection()
    await server.lost
    await port.stopListening()


async def test_tcp_only_options_are_harmless(reactor: Any, path: str) -> None:
    server, client = Recorder(), Recorder()
    port, _ = await unix_pair(reactor, path, server, client)
    client.transport.setTcpNoDelay(True)
    assert client.transport.getTcpNoDelay() is False
    assert "UNIX" in repr(client.transport)
    client.transport.loseConnection()
    await server.lost
    await port.stopListening()


async def test_exception_in_dataReceived_closes_only_that_connection(
        reactor: Any, path: str, caplog: pytest.LogCaptureFixture) -> None:
    bad_server, good_server = Explodes(), Recorder()
    port = reactor.listenUNIX(path, SingleServerFactory(bad_server, good_server))
    bad_client, good_client = Recorder(), Recorder()
    for client in (bad_client, good_client):
        reactor.connectUNIX(path, RecordingClientFactory(lambda c=client: c))
        await client.made
    with caplog.at_level(logging.ERROR):
        bad_client.transport.write(b"boom")
        reason = await bad_server.lost
    assert reason.check(ValueError)
    await bad_client.lost
    assert "user code exploded" in caplog.text
    assert any(r.exc_info for r in caplog.records)
    good_client.transport.write(b"still here")
    assert await good_server.wait_for_bytes(10) == b"still here"
    good_client.transport.loseConnection()
    await good_server.lost
    await port.stopListening()


def test_server_buildProtocol_returning_None_drops_the_connection(
        reactor: Any, path: str) -> Deferred[Any]:
    class Refuser(Factory):
        def buildProtocol(self, addr: Any) -> None:
            return None

    port = reactor.listenUNIX(path, Refuser())
    factory = RecordingClientFactory()
    reactor.connectUNIX(path, factory)

    def check(reason: Any) -> Any:
        assert reason.check(ConnectionDone, ConnectionLost)
        return port.stopListening()

    return factory.connection_lost.addCallback(check)


# -- listening and the socket file ----------------------------------------------------------


def test_listen_creates_the_socket_file_with_the_mode(reactor: Any, path: str) -> None:
    port = reactor.listenUNIX(path, Factory.forProtocol(Echo), mode=0o600)
    assert stat.S_ISSOCK(os.stat(path).st_mode)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    port.stopListening()
    other = reactor.listenUNIX(path, Factory.forProtocol(Echo))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o666  # the default
    other.stopListening()


async def test_stopListening_removes_the_file_and_refuses(reactor: Any, path: str) -> None:
    factory = Factory.forProtocol(Echo)
    port = reactor.listenUNIX(path, factory)
    assert factory.numPorts == 1
    assert "on UNIX" in repr(port)
    d = port.stopListening()
    assert isinstance(d, Deferred)
    await d
    assert not os.path.exists(path)
    assert factory.numPorts == 0
    assert "not listening" in repr(port)
    await port.stopListening()  # twice is harmless
    client_factory = RecordingClientFactory()
    reactor.connectUNIX(path, client_factory)
    assert (await client_factory.failed).check(ConnectError)


def test_stopListening_leaves_a_file_that_replaced_ours(reactor: Any, path: str) -> None:
    port = reactor.listenUNIX(path, Factory.forProtocol(Echo))
    os.unlink(path)
    Path(path).write_text("someone else's")
    port.stopListening()
    assert Path(path).read_text() == "someone else's"


def test_a_stale_socket_file_is_replaced(reactor: Any, path: str) -> None:
    stale_socket_file(path)
    port = reactor.listenUNIX(path, Factory.forProtocol(Echo))
    assert port.connected
    port.stopListening()


@pytest.mark.parametrize("live", ["raw", "ours"])
def test_a_live_socket_is_address_in_use(reactor: Any, path: str, live: str) -> None:
    if live == "raw":
        other: Any = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        other.bind(path)
        other.listen(1)
    else:
        other = reactor.listenUNIX(path, Factory.forProtocol(Echo))
    try:
        with pytest.raises(CannotListenError) as info:
            reactor.listenUNIX(path, Factory.forProtocol(Echo))
        assert "in use" in str(info.value)
        assert path in str(info.value)
        assert info.value.socketError.errno == errno.EADDRINUSE  # type: ignore[attr-defined]
        assert stat.S_ISSOCK(os.stat(path).st_mode)  # the live server's file stays
    finally:
        if live == "raw":
            other.close()
        else:
            other.stopListening()


def test_a_file_that_is_not_a_socket_is_left_alone(reactor: Any, path: str) -> None:
    Path(path).write_text("precious")
    with pytest.raises(CannotListenError) as info:
        reactor.listenUNIX(path, Factory.forProtocol(Echo))
    assert "not a socket" in str(info.value)
    assert Path(path).read_text() == "precious"


def test_a_path_too_long_cannot_listen(reactor: Any, tmp_path: Path) -> None:
    factory = Factory.forProtocol(Echo)
    with pytest.raises(CannotListenError):
        reactor.listenUNIX(str(tmp_path / ("x" * 120)), factory)
    assert factory.numPorts == 0


def test_reactor_shutdown_removes_the_socket_file(reactor: Any, path: str) -> None:
    reactor.listenUNIX(path, Factory.forProtocol(Echo))
    reactor.callWhenRunning(reactor.stop)
    reactor.run(installSignalHandlers=False)
    assert not os.path.exists(path)


async def test_bytes_path(reactor: Any, path: str) -> None:
    raw_path = os.fsencode(path)
    port = reactor.listenUNIX(raw_path, Factory.forProtocol(Echo))
    assert port.getHost() == UNIXAddress(path)
    factory = RecordingClientFactory()
    reactor.connectUNIX(raw_path, factory)
    client = await factory.built
    await client.made
    assert client.transport.getPeer() == UNIXAddress(path)
    client.transport.loseConnection()
    await client.lost
    await port.stopListening()
    assert not os.path.exists(path)


@linux_only
async def test_abstract_namespace(reactor: Any, path: str) -> None:
    name = f"\0torsion-test-{os.getpid()}-{id(reactor)}"
    server, client = Recorder(), Recorder()
    port, _ = await unix_pair(reactor, name, server, client)
    assert port.getHost() == UNIXAddress(name)
    assert server.transport.getHost() == UNIXAddress(name)
    assert "@torsion-test" in repr(port)
    client.transport.write(b"abstract")
    assert await server.wait_for_bytes(8) == b"abstract"
    client.transport.loseConnection()
    await server.lost
    await port.stopListening()


# -- the pid lock (wantPID / checkPID) ------------------------------------------------------


async def test_wantPID_keeps_a_pid_lock_while_listening(reactor: Any, path: str) -> None:
    lock = path + ".lock"
    port = reactor.listenUNIX(path, Factory.forProtocol(Echo), wantPID=True)
    assert os.readlink(lock) == str(os.getpid())
    with pytest.raises(CannotListenError) as info:
        reactor.listenUNIX(path, Factory.forProtocol(Echo), wantPID=True)
    assert "Cannot acquire lock" in str(info.value)
    assert os.readlink(lock) == str(os.getpid())  # the failed attempt left it alone
    factory = RecordingClientFactory()
    reactor.connectUNIX(path, factory, checkPID=True)
    client = await factory.built
    await client.made
    client.transport.loseConnection()
    await client.lost
    await port.stopListening()
    assert not os.path.lexists(lock)


def test_wantPID_takes_over_from_a_dead_server(reactor: Any, path: str) -> None:
    stale_socket_file(path)
    os.symlink(str(dead_pid()), path + ".lock")
    port = reactor.listenUNIX(path, Factory.forProtocol(Echo), wantPID=True)
    assert os.readlink(path + ".lock") == str(os.getpid())
    port.stopListening()
    assert not os.path.lexists(path + ".lock")


def test_a_failed_listen_releases_the_lock(reactor: Any, path: str) -> None:
    Path(path).write_text("not a socket")
    with pytest.raises(CannotListenError):
        reactor.listenUNIX(path, Factory.forProtocol(Echo), wantPID=True)
    assert not os.path.lexists(path + ".lock")


async def test_checkPID_without_a_live_lock_is_BadFileError(reactor: Any, path: str) -> None:
    port = reactor.listenUNIX(path, Factory.forProtocol(Echo))  # no wantPID
    factory = RecordingClientFactory()
    reactor.connectUNIX(path, factory, checkPID=True)
    assert (await factory.failed).check(BadFileError)
    os.symlink(str(dead_pid()), path + ".lock")
    factory = RecordingClientFactory()
    reactor.connectUNIX(path, factory, checkPID=True)
    assert (await factory.failed).check(BadFileError)
    os.unlink(path + ".lock")
    await port.stopListening()


# -- connecting -----------------------------------------------------------------------------


async def test_nobody_listening_is_ConnectionRefusedError(reactor: Any, path: str) -> None:
    stale_socket_file(path)
    factory = RecordingClientFactory()
    connector = reactor.connectUNIX(path, factory)
    reason = await factory.failed
    assert reason.check(ConnectionRefusedError)
    assert connector.state == "disconnected"
    assert connector.getDestination() == UNIXAddress(path)


async def test_a_missing_path_is_ConnectError(reactor: Any, path: str) -> None:
    factory = RecordingClientFactory()
    reactor.connectUNIX(path, factory)
    reason = await factory.failed
    assert reason.check(ConnectError)
    assert not reason.check(ConnectionRefusedError)
    assert "No such file" in str(reason.failure.value)


async def test_failure_is_reported_later_and_stops_the_factory(reactor: Any, path: str) -> None:
    factory = RecordingClientFactory()
    reactor.connectUNIX(path, factory)
    assert not factory.failed.called  # never from inside connectUNIX
    assert factory.numPorts == 1
    await factory.failed  # resumes us from inside clientConnectionFailed...
    await next_turn(reactor)
    assert factory.numPorts == 0  # ...after which doStop was called


async def test_stopConnecting_reports_UserError(reactor: Any, path: str) -> None:
    port = reactor.listenUNIX(path, Factory.forProtocol(Echo))
    factory = RecordingClientFactory()
    connector = reactor.connectUNIX(path, factory)
    connector.stopConnecting()
    assert (await factory.failed).check(UserError)
    assert connector.state == "disconnected"
    with pytest.raises(NotConnectingError):
        connector.stopConnecting()
    await port.stopListening()


async def test_connector_disconnect_closes_the_connection(reactor: Any, path: str) -> None:
    port = reactor.listenUNIX(path, Factory.forProtocol(Echo))
    factory = RecordingClientFactory()
    connector = reactor.connectUNIX(path, factory)
    client = await factory.built
    await client.made
    connector.disconnect()
    assert (await factory.connection_lost).check(ConnectionDone)
    await port.stopListening()


def _full_listener(path: str) -> tuple[socket.socket, socket.socket]:
    """A listener whose backlog is full (it never accepts), and the client filling it."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(0)
    filler = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    filler.setblocking(False)
    for _ in range(8):  # how many fit in "0" differs between kernels
        if filler.connect_ex(path) != 0:
            break
        filler.close()
        filler = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        filler.setblocking(False)
    else:  # pragma: no cover - a kernel with no backlog limit
        pytest.skip("cannot fill the listen backlog here")
    return listener, filler


@linux_only
async def test_full_backlog_times_out(reactor: Any, path: str) -> None:
    listener, filler = _full_listener(path)
    try:
        factory = RecordingClientFactory()
        reactor.connectUNIX(path, factory, timeout=0.2)
        assert (await factory.failed).check(TimeoutError)
    finally:
        filler.close()
        listener.close()


@linux_only
async def test_full_backlog_connects_once_there_is_room(reactor: Any, path: str) -> None:
    listener, filler = _full_listener(path)
    accepted: list[socket.socket] = []
    try:
        factory = RecordingClientFactory()
        connector = reactor.connectUNIX(path, factory, timeout=10)

        def make_room() -> None:
            listener.setblocking(False)
            while True:
                try:
                    accepted.append(listener.accept()[0])
                except BlockingIOError:
                    return

        reactor.callLater(0.05, make_room)
        client = await factory.built
        await client.made
        assert connector.state == "connected"
        client.transport.loseConnection()
        await client.lost
    finally:
        for sock in [*accepted, filler, listener]:
            sock.close()
