"""SIGTERM/SIGINT: a graceful stop on every backend, and a forced one on the second signal."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest

from reactor.testing import Clock

SERVER = """
    import sys
    import reactor
    from protocols import Factory, Protocol

    class Echo(Protocol):
        def dataReceived(self, data):
            self.transport.write(data)
        def connectionLost(self, reason):
            print("lost", reason.type.__name__, flush=True)

    r = reactor.create(sys.argv[1])
    r.gracePeriod = float(sys.argv[2])
    r.addSystemEventTrigger("before", "shutdown", print, "shutdown triggers", flush=True)
    port = r.listenTCP(0, Factory.forProtocol(Echo), interface="127.0.0.1")
    r.callWhenRunning(print, port.getHost().port, flush=True)
    r.run()
    print("stopped", flush=True)
"""

BACKENDS = ["select", "asyncio", "uvloop"]


class Server:
    def __init__(self, backend: str, grace: float) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(SERVER), backend, str(grace)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.port = int(self.line())

    def line(self) -> str:
        assert self.process.stdout is not None
        return self.process.stdout.readline().strip()

    def connect(self) -> socket.socket:
        client = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        client.sendall(b"hello")
        assert client.recv(100) == b"hello"
        return client

    def signal(self, signum: int = signal.SIGTERM) -> None:
        self.process.send_signal(signum)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)
        if self.process.stdout:
            self.process.stdout.close()


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for server in started:
        server.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_sigterm_stops_listening_and_lets_connections_finish(
        backend: str, servers: list[Server]) -> None:
    server = Server(backend, grace=30)
    servers.append(server)
    client = server.connect()
    server.signal(signal.SIGTERM)
    assert server.line() == "shutdown triggers"
    # No longer listening...
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", server.port), timeout=10).close()
    # ...but the open connection is still served during the grace period.
    client.sendall(b"still")
    assert client.recv(100) == b"still"
    client.close()
    # Once it has closed the server stops, long before the 30 s grace period.
    assert server.line() == "lost ConnectionDone"
    assert server.line() == "stopped"
    assert server.process.wait(timeout=10) == 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_grace_period_over_closes_the_rest(backend: str, servers: list[Server]) -> None:
    server = Server(backend, grace=0.2)
    servers.append(server)
    client = server.connect()
    server.signal(signal.SIGINT)
    assert server.line() == "shutdown triggers"
    assert server.line() == "lost ConnectionLost"  # closed by the server after the grace
    assert server.line() == "stopped"
    assert client.recv(100) == b""
    client.close()
    assert server.process.wait(timeout=10) == 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_second_signal_stops_at_once(backend: str, servers: list[Server]) -> None:
    server = Server(backend, grace=60)
    servers.append(server)
    client = server.connect()
    server.signal(signal.SIGTERM)
    assert server.line() == "shutdown triggers"
    server.signal(signal.SIGTERM)
    assert server.line() == "lost ConnectionLost"
    assert server.line() == "stopped"
    assert server.process.wait(timeout=10) == 0
    client.close()


def test_run_without_signal_handlers_leaves_them_alone(reactor: Any) -> None:
    before = signal.getsignal(signal.SIGTERM)
    seen: list[Any] = []
    reactor.callWhenRunning(lambda: seen.append(signal.getsignal(signal.SIGTERM)))
    reactor.callWhenRunning(reactor.stop)
    reactor.run(installSignalHandlers=False)
    assert seen == [before]
    assert signal.getsignal(signal.SIGTERM) == before


def test_drain_waits_for_connections_up_to_the_grace_period() -> None:
    from reactor.base import ReactorBase

    class Tracked:
        def __init__(self) -> None:
            self.disconnected = False

        def loseConnection(self) -> None:
            self.disconnected = True

    class Listener:
        stopped = False

        def stopListening(self) -> None:
            self.stopped = True

    class FakeReactor(ReactorBase):
        def __init__(self) -> None:
            super().__init__()
            self.clock = Clock()
            self.things: list[Any] = [Listener(), Tracked()]

        def seconds(self) -> float:
            return self.clock.seconds()

        def callLater(self, delay: float, f: Any, *a: Any, **kw: Any) -> Any:
            return self.clock.callLater(delay, f, *a, **kw)

        def _tracked(self) -> Any:
            return self.things

    r = FakeReactor()
    done = r._drain(1.0)
    assert r.things[0].stopped
    assert not done.called
    r.clock.advance(0.5)
    assert not done.called
    r.things[1].disconnected = True
    r.clock.advance(0.05)
    assert done.called
    late = FakeReactor()
    d2 = late._drain(1.0)
    late.clock.pump([0.05] * 25)
    assert d2.called  # gave up waiting after the grace period
