"""Many concurrent TCP connections on one reactor, on every backend (select, asyncio, uvloop).

A thousand clients connect to one echo server at once (a scaled-down version of the
benchmark suite's 10,000 idle connections), each proves the server serves it with one
echo, and all stay open together; meanwhile one more client is still served. Then every
client closes, every connection ends cleanly on both sides, and the process holds exactly
as many sockets as it held before.
"""

from __future__ import annotations

import os
import resource
from collections.abc import Iterator
from typing import Any

import pytest

from deferred import Deferred, gatherResults
from protocols import ClientFactory, Factory, Protocol
from reactor.error import ConnectionDone
from reactor.task import deferLater
from tests.reactor.conftest import Echo, Reason

#: Connections held open at once.
CONNECTIONS = 1000
#: Each connection costs two descriptors here (client and server side in one process).
FDS_NEEDED = 2 * CONNECTIONS + 200


def _open_sockets() -> int:
    """How many of this process's file descriptors are sockets."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
        except OSError:  # the descriptor listdir itself used, closed by now
            pass
    return count


@pytest.fixture(autouse=True)
def enough_file_descriptors() -> Iterator[None]:
    """Raise the soft RLIMIT_NOFILE for the test (many systems default to 1024)."""
    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("counts descriptors through /proc/self/fd (Linux)")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < FDS_NEEDED:
        if hard != resource.RLIM_INFINITY and hard < FDS_NEEDED:
            pytest.skip(f"RLIMIT_NOFILE hard limit {hard} is below the {FDS_NEEDED} needed")
        resource.setrlimit(resource.RLIMIT_NOFILE, (FDS_NEEDED, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


class CountingEcho(Echo):
    """The server side: an echo protocol that tells its factory when it starts and ends."""

    factory: ServerFactory

    def connectionMade(self) -> None:
        self.factory.open += 1

    def connectionLost(self, reason: Any = None) -> None:
        self.factory.open -= 1
        self.factory.reasons.append(Reason(reason))
        if self.factory.open == 0 and self.factory.all_closed is not None:
            d, self.factory.all_closed = self.factory.all_closed, None
            d.callback(None)


class ServerFactory(Factory[CountingEcho]):
    """Counts the server's open connections and collects how each one ended."""

    protocol = CountingEcho

    def __init__(self) -> None:
        self.open = 0
        self.reasons: list[Reason] = []
        self.all_closed: Deferred[None] | None = None

    def when_all_closed(self) -> Deferred[None]:
        """Fires once no server-side connection is open any more."""
        d: Deferred[None] = Deferred()
        if self.open == 0:
            d.callback(None)
        else:
            self.all_closed = d
        return d


class Greeter(Protocol):
    """A client: sends its greeting on connect; ``echoed`` fires when it is all back."""

    def __init__(self, greeting: bytes) -> None:
        self.greeting = greeting
        self.received = b""
        self._expected = len(greeting)
        self.echoed: Deferred[bytes] = Deferred()
        self.made: Deferred[None] = Deferred()
        self.lost: Deferred[Reason] = Deferred()

    def connectionMade(self) -> None:
        self.transport.write(self.greeting)  # type: ignore[union-attr]
        self.made.callback(None)

    def send(self, data: bytes) -> Deferred[bytes]:
        """Send ``data`` once the last echo is complete; fires with its echo."""
        self.received = b""
        self._expected = len(data)
        self.echoed = Deferred()
        self.transport.write(data)  # type: ignore[union-attr]
        return self.echoed

    def dataReceived(self, data: bytes) -> None:
        self.received += data
        if len(self.received) >= self._expected and not self.echoed.called:
            self.echoed.callback(self.received)

    def connectionLost(self, reason: Any = None) -> None:
        if self._expected and not self.echoed.called:  # an echo was awaited in vain
            self.echoed.errback(reason)
        self.lost.callback(Reason(reason))


class GreeterFactory(ClientFactory[Greeter]):
    """Builds one given Greeter; a failed connect fails that Greeter's ``echoed``."""

    def __init__(self, greeter: Greeter) -> None:
        self.greeter = greeter

    def buildProtocol(self, addr: Any) -> Greeter:
        return self.greeter

    def clientConnectionFailed(self, connector: Any, reason: Any) -> None:
        self.greeter.echoed.errback(reason)


def connect(reactor: Any, port: int, greeting: bytes) -> Greeter:
    """Connect a Greeter with ``greeting`` to 127.0.0.1:``port``."""
    greeter = Greeter(greeting)
    reactor.connectTCP("127.0.0.1", port, GreeterFactory(greeter))
    return greeter


async def test_a_thousand_concurrent_connections_are_all_served(reactor: Any) -> None:
    sockets_before = _open_sockets()
    factory = ServerFactory()
    # A backlog for the burst: all the connects start in one loop turn.
    port = reactor.listenTCP(0, factory, backlog=CONNECTIONS, interface="127.0.0.1")
    number = port.getHost().port

    clients = [connect(reactor, number, b"client %d\n" % i) for i in range(CONNECTIONS)]
    echoes = await gatherResults([c.echoed for c in clients])
    assert echoes == [c.greeting for c in clients]  # each got its own bytes back, whole
    assert factory.open == CONNECTIONS
    # Every connection is really held: a socket on each side.
    assert _open_sockets() >= sockets_before + 2 * CONNECTIONS + 1

    # With all of them open, a newcomer is served too, several times over.
    normal = connect(reactor, number, b"normal client\n")
    assert await normal.echoed == b"normal client\n"
    for i in range(5):
        assert await normal.send(b"again %d\n" % i) == b"again %d\n" % i
    assert factory.open == CONNECTIONS + 1

    everyone = [*clients, normal]
    server_done = factory.when_all_closed()
    for client in everyone:
        client.transport.loseConnection()  # type: ignore[union-attr]
    client_reasons = await gatherResults([c.lost for c in everyone])
    await server_done
    assert all(r.check(ConnectionDone) for r in client_reasons)
    assert len(factory.reasons) == CONNECTIONS + 1
    assert all(r.check(ConnectionDone) for r in factory.reasons)

    await port.stopListening()
    # On the asyncio backends the loop closes a socket just after connectionLost
    # returns, and the last one resumed this test from inside it: one more turn.
    await deferLater(reactor, 0, lambda: None)
    # Nothing left behind: as many sockets as before. (Sockets only: uvloop keeps a
    # spare descriptor on /dev/null per loop, for running out of them, until it closes;
    # the fixture checks every descriptor once the reactor is closed.)
    assert _open_sockets() == sockets_before



class Sluggish(Protocol):
    """The server side: reads nothing until ``resume()``; counts bytes in its factory."""

    factory: SluggishFactory

    def connectionMade(self) -> None:
        self.transport.pauseProducing()  # type: ignore[union-attr]
        self.factory.connected(self)

    def resume(self) -> None:
        self.transport.resumeProducing()  # type: ignore[union-attr]

    def dataReceived(self, data: bytes) -> None:
        self.factory.received(len(data))


class SluggishFactory(Factory[Sluggish]):
    """Fires ``all_connected`` after ``count`` connections, ``all_received`` after
    ``expected`` bytes in all."""

    protocol = Sluggish

    def __init__(self, count: int, expected: int) -> None:
        self.count = count
        self.expected = expected
        self.total = 0
        self.built: list[Sluggish] = []
        self.all_connected: Deferred[None] = Deferred()
        self.all_received: Deferred[int] = Deferred()

    def connected(self, protocol: Sluggish) -> None:
        self.built.append(protocol)
        if len(self.built) == self.count:
            self.all_connected.callback(None)

    def received(self, size: int) -> None:
        self.total += size
        if self.total >= self.expected and not self.all_received.called:
            self.all_received.callback(self.total)


@pytest.mark.backends("select")
async def test_only_a_connection_that_must_queue_gets_a_write_queue(reactor: Any) -> None:
    # An idle connection shares one empty queue (reactor.tcp._NO_QUEUE) to save memory;
    # a connection whose write does not go out whole must get its own, and the shared
    # one must stay empty whatever is queued elsewhere.
    from reactor.tcp import _NO_QUEUE

    big = 16 * 1024 * 1024  # far beyond what the socket buffers of both ends hold
    factory = SluggishFactory(2, big + 5)
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    number = port.getHost().port
    blocked, light = Greeter(b""), Greeter(b"")
    reactor.connectTCP("127.0.0.1", number, GreeterFactory(blocked))
    reactor.connectTCP("127.0.0.1", number, GreeterFactory(light))
    await gatherResults([blocked.made, light.made, factory.all_connected])

    blocked.transport.write(b"x" * big)  # type: ignore[union-attr]
    light.transport.write(b"hello")  # type: ignore[union-attr]
    queue = blocked.transport._queue  # type: ignore[union-attr]
    assert queue is not _NO_QUEUE and len(queue) == 1
    assert light.transport._queue is _NO_QUEUE  # type: ignore[union-attr]
    assert len(_NO_QUEUE) == 0

    for protocol in factory.built:
        protocol.resume()
    assert await factory.all_received == big + 5
    assert len(queue) == 0 and len(_NO_QUEUE) == 0
    for client in (blocked, light):
        client.transport.loseConnection()  # type: ignore[union-attr]
    await gatherResults([blocked.lost, light.lost])
    await port.stopListening()
