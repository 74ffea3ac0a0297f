"""Servers for the load generator's tests, all on the test's reactor."""

from __future__ import annotations

import socket
from typing import Any

from protocols import Factory, Protocol
from protocols.basic import LineReceiver
from protocols.http.resource import IRequest, Resource
from protocols.http.server import Site
from protocols.wire import EchoFactory
from tests.protocols.http.test_server import Streamed


class Hello(Resource):
    isLeaf = True

    def render_GET(self, request: IRequest) -> bytes:
        return b"hello"

    def render_POST(self, request: Any) -> bytes:
        return b"got " + str(len(request.content.read())).encode()


class Failing(Resource):
    isLeaf = True

    def render_GET(self, request: Any) -> bytes:
        request.setResponseCode(500)
        return b"nope"


def site(reactor: Any) -> Site:
    root = Resource()
    root.putChild(b"hello", Hello())
    root.putChild(b"fail", Failing())
    root.putChild(b"pieces", Streamed(reactor))  # chunked, from later turns
    return Site(root)


class Hangup(Protocol):
    """Reads a request, then closes without a reply."""

    def dataReceived(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.loseConnection()


class Silent(Protocol):
    """Reads and never replies."""

    def dataReceived(self, data: bytes) -> None:
        pass


class OneShotHTTP(Protocol):
    """A reply with ``Connection: close`` to each request, then a close."""

    def dataReceived(self, data: bytes) -> None:
        if b"\r\n\r\n" in data:
            assert self.transport is not None
            self.transport.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n"
                                 b"Content-Length: 2\r\n\r\nok")
            self.transport.loseConnection()


class Shouting(Protocol):
    """An echo that gets it wrong: upper case."""

    def dataReceived(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data.upper())


class KeyValue(LineReceiver):
    """``GET key`` -> ``VALUE 42``; anything else -> ``ERROR``."""

    def lineReceived(self, line: bytes) -> None:
        self.sendLine(b"VALUE 42" if line == b"GET key" else b"ERROR")


def listen(reactor: Any, factory: Any) -> int:
    """Listen on 127.0.0.1, a free port; the port number."""
    return int(reactor.listenTCP(0, factory, interface="127.0.0.1").getHost().port)


def listen_site(reactor: Any) -> int:
    return listen(reactor, site(reactor))


def listen_echo(reactor: Any) -> int:
    return listen(reactor, EchoFactory())


def listen_protocol(reactor: Any, protocol: type[Protocol]) -> int:
    return listen(reactor, Factory.forProtocol(protocol))


class RefusedPort:
    """A port nobody listens on (held bound, so no one else takes it meanwhile)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]

    def __enter__(self) -> int:
        return int(self.port)

    def __exit__(self, *exc: object) -> None:
        self.sock.close()
