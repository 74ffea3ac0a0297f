"""Helpers shared by the reactor tests: recording protocols and connection set-up."""

from __future__ import annotations

from typing import Any

import pytest

from deferred import Deferred, Failure
from protocols import ClientFactory, Factory, Protocol


class Reason:
    """A connectionLost reason, delivered as a value (a Failure would errback)."""

    def __init__(self, failure: Failure) -> None:
        self.failure = failure

    def check(self, *types: Any) -> Any:
        return self.failure.check(*types)

    def __repr__(self) -> str:
        return f"<Reason {self.failure!r}>"


class Recorder(Protocol):
    """A protocol that records what happens to it and exposes Deferreds for it.

    Attributes:
        made: fires with the protocol on connectionMade.
        lost: fires with the reason Failure on connectionLost.
        received: bytes received so far.
    """

    def __init__(self) -> None:
        self.made: Deferred[Recorder] = Deferred()
        self.lost: Deferred[Reason] = Deferred()
        self.received = bytearray()
        self.events: list[str] = []
        self._waiting: list[tuple[int, Deferred[bytes]]] = []

    def connectionMade(self) -> None:
        self.events.append("made")
        self.made.callback(self)

    def dataReceived(self, data: bytes) -> None:
        if "data" not in self.events:
            self.events.append("data")
        self.received += data
        for item in list(self._waiting):
            size, d = item
            if len(self.received) >= size:
                self._waiting.remove(item)
                d.callback(bytes(self.received))

    def wait_for_bytes(self, size: int) -> Deferred[bytes]:
        """Fires with everything received once at least ``size`` bytes arrived."""
        d: Deferred[bytes] = Deferred()
        if len(self.received) >= size:
            d.callback(bytes(self.received))
        else:
            self._waiting.append((size, d))
        return d

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.events.append("lost")
        self.lost.callback(Reason(reason))


class Echo(Protocol):
    def dataReceived(self, data: bytes) -> None:
        self.transport.write(data)


class RecordingClientFactory(ClientFactory):
    """A ClientFactory recording its callbacks, with Deferreds for them."""

    def __init__(self, protocol_factory: Any = Recorder) -> None:
        self.protocol = protocol_factory
        self.started: list[Any] = []
        self.failed: Deferred[Reason] = Deferred()
        self.connection_lost: Deferred[Reason] = Deferred()
        self.built: Deferred[Any] = Deferred()

    def startedConnecting(self, connector: Any) -> None:
        self.started.append(connector)

    def buildProtocol(self, addr: Any) -> Any:
        protocol = super().buildProtocol(addr)
        self.built.callback(protocol)
        return protocol

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        self.failed.callback(Reason(reason))

    def clientConnectionLost(self, connector: Any, reason: Failure) -> None:
        self.connection_lost.callback(Reason(reason))


class SingleServerFactory(Factory):
    """Builds one given protocol instance (or instances from a list, in order)."""

    def __init__(self, *protocols: Any) -> None:
        self._protocols = list(protocols)
        self.built: list[Any] = []

    def buildProtocol(self, addr: Any) -> Any:
        protocol = self._protocols.pop(0)
        protocol.factory = self
        self.built.append(protocol)
        return protocol


async def connected_pair(reactor: Any, server: Any, client: Any,
                         interface: str = "127.0.0.1") -> tuple[Any, Any, Any]:
    """Listen with ``server``, connect ``client`` to it; return (port, server, client)
    once both sides have seen connectionMade."""
    port = reactor.listenTCP(0, SingleServerFactory(server), interface=interface)
    factory = RecordingClientFactory(lambda: client)
    reactor.connectTCP(interface, port.getHost().port, factory)
    await client.made
    await server.made
    return port, server, client


@pytest.fixture
def recorder_factory() -> type[Recorder]:
    return Recorder
