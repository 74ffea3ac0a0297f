"""Connection limits, the bound on pipelined commands, and big listings.

Real sockets on every backend for the limits; a StringTransport and a fake
clock for the command queue.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from deferred import Deferred
from protocols.ftp.server import FTPFactory
from reactor.testing import Clock, StringTransport
from tests.protocols.ftp.test_server import run, session


class _Address:
    def __init__(self, host: str) -> None:
        self.host = host


def _greeting(number: int) -> tuple[socket.socket, bytes]:
    sock = socket.create_connection(("127.0.0.1", number), timeout=10)
    return sock, sock.makefile("rb").readline()


def _refused(number: int) -> tuple[bytes, bytes]:
    with socket.create_connection(("127.0.0.1", number), timeout=10) as sock:
        reader = sock.makefile("rb")
        return reader.readline(), reader.read()


async def test_max_connections(reactor: Any, tmp_path: Path) -> None:
    def client(number: int) -> list[Any]:
        first = session(number)
        second, hello = _greeting(number)
        out: list[Any] = [hello[:3], _refused(number)]
        first.quit()  # the server closes first: its session is gone before our EOF
        first.close()
        third = session(number)
        out.append(third.pwd())
        third.quit()
        second.close()
        return out

    hello, (code, rest), pwd = await run(reactor, tmp_path, client, maxConnections=2)
    assert hello == b"220"
    assert code.startswith(b"421 Too many connections") and rest == b""
    assert pwd == "/"


async def test_max_connections_per_ip(reactor: Any, tmp_path: Path) -> None:
    def client(number: int) -> list[Any]:
        first = session(number)
        code, rest = _refused(number)
        first.quit()
        again = session(number)
        again.quit()
        return [code, rest]

    code, rest = await run(reactor, tmp_path, client, maxConnectionsPerIP=1)
    assert code.startswith(b"421 Too many connections from your address") and rest == b""


def test_per_ip_limit_counts_each_address(tmp_path: Path) -> None:
    factory = FTPFactory(tmp_path, maxConnectionsPerIP=2, reactor=Clock())
    built = [factory.buildProtocol(_Address(host))
             for host in ("192.0.2.1", "192.0.2.1", "192.0.2.2", "192.0.2.1", "192.0.2.2")]
    assert [p.refusal is None for p in built if p is not None] == [True, True, True, False,
                                                                   True]
    assert len(factory.sessions) == 4


def test_pipelined_commands_pause_reading_until_they_drain(tmp_path: Path) -> None:
    waiting: list[Deferred[bool]] = []

    def checker(user: str, password: str) -> Deferred[bool]:
        d: Deferred[bool] = Deferred()
        waiting.append(d)
        return d

    factory = FTPFactory(tmp_path, checker=checker, maxPendingCommands=4, reactor=Clock())
    protocol = factory.buildProtocol(_Address("192.0.2.1"))
    assert protocol is not None
    transport = StringTransport()
    protocol.makeConnection(transport)
    protocol.dataReceived(b"USER alice\r\nPASS pw\r\n")  # the checker keeps PASS busy
    protocol.dataReceived(b"NOOP\r\n" * 3)
    assert transport.producerState == "producing"
    protocol.dataReceived(b"NOOP\r\n")  # the fourth waiting command
    assert transport.producerState == "paused"
    assert len(protocol.queue) == 4
    transport.clear()
    waiting[0].callback(True)
    assert transport.value().count(b"200 NOOP ok.") == 4
    assert transport.producerState == "producing" and protocol.queue == []


async def test_a_big_directory_lists_completely(reactor: Any, tmp_path: Path) -> None:
    for i in range(1500):  # LIST sends it in three chunks or more
        (tmp_path / f"file-{i:05d}-{'x' * 40}").write_bytes(b"")

    def client(number: int) -> tuple[int, int, int]:
        ftp = session(number)
        names = ftp.nlst()
        lines: list[str] = []
        ftp.retrlines("LIST", lines.append)
        facts = list(ftp.mlsd())
        ftp.quit()
        return len(names), len(lines), len(facts)

    assert await run(reactor, tmp_path, client) == (1500, 1500, 1500)


async def test_refused_connections_are_not_sessions(reactor: Any, tmp_path: Path) -> None:
    factory = FTPFactory(tmp_path, maxConnections=1, reactor=reactor, failedLoginDelay=0.0)
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    number = port.getHost().port

    def client() -> list[Any]:
        first, hello = _greeting(number)
        refusals = [_refused(number)[0][:3] for _ in range(3)]
        first.close()
        return [hello[:3], refusals]

    try:
        got = await reactor.deferToThread(client)
    finally:
        await port.stopListening()
    assert got == [b"220", [b"421"] * 3]
