"""Abuse over raw sockets: smuggling vectors, limits, slowloris and body timeouts.

Every test runs on each reactor backend. Clients are raw sockets in worker
threads, so the server sees exactly the bytes written here.
"""

from __future__ import annotations

import http.client
import socket
from typing import Any

from protocols.http import Resource, Site
from protocols.http.parser import Limits
from tests.protocols.http.test_parser import SMUGGLING
from tests.protocols.http.test_server import raw_exchange


class Counter(Resource):
    """Counts renders: a smuggled request must never reach it."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.renders = 0

    def render_GET(self, request: Any) -> bytes:
        self.renders += 1
        return b"counted"

    render_POST = render_GET


def listen(reactor: Any, resource: Resource, **kwargs: Any) -> tuple[Any, int]:
    port = reactor.listenTCP(0, Site(resource, **kwargs), interface="127.0.0.1")
    return port, port.getHost().port


def read_until_closed(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


async def test_every_smuggling_vector_gets_one_400_and_the_connection_closes(
        reactor: Any) -> None:
    counter = Counter()
    port, number = listen(reactor, counter)
    smuggled = b"GET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n"

    def client() -> dict[str, bytes]:
        return {name: raw_exchange(number, data + smuggled)
                for name, data in sorted(SMUGGLING.items())}

    answers = await reactor.deferToThread(client)
    for name, answer in answers.items():
        assert answer.startswith(b"HTTP/1.1 400 "), (name, answer[:80])
        assert answer.count(b"HTTP/1.1 ") == 1, (name, answer)  # nothing after it
        assert b"\r\nConnection: close\r\n" in answer, name
    assert counter.renders == 0
    await port.stopListening()


async def test_unknown_transfer_coding_is_501(reactor: Any) -> None:
    port, number = listen(reactor, Counter())
    data = (b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
            b"0\r\n\r\n")
    answer = await reactor.deferToThread(raw_exchange, number, data)
    assert answer.startswith(b"HTTP/1.1 501 ")
    await port.stopListening()


async def test_limits_give_414_431_and_a_normal_request_still_works(reactor: Any) -> None:
    counter = Counter()
    limits = Limits(max_request_line=100, max_header_bytes=200, max_header_count=5)
    port, number = listen(reactor, counter, limits=limits)
    long_uri = b"GET /" + b"a" * 200 + b" HTTP/1.1\r\nHost: h\r\n\r\n"
    big_header = b"GET / HTTP/1.1\r\nHost: h\r\nX: " + b"b" * 300 + b"\r\n\r\n"
    many = b"GET / HTTP/1.1\r\n" + b"".join(b"X%d: v\r\n" % i for i in range(10)) + b"\r\n"
    fine = b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"

    def client() -> list[bytes]:
        return [raw_exchange(number, data) for data in (long_uri, big_header, many, fine)]

    uri, header, count, ok = await reactor.deferToThread(client)
    assert uri.startswith(b"HTTP/1.1 414 ")
    assert header.startswith(b"HTTP/1.1 431 ")
    assert count.startswith(b"HTTP/1.1 431 ")
    assert ok.startswith(b"HTTP/1.1 200 ") and ok.endswith(b"counted")
    assert counter.renders == 1
    await port.stopListening()


async def test_trickled_head_is_cut_off_by_the_header_timeout(reactor: Any) -> None:
    """A client sending a byte at a time never completes its head: 408, closed.

    The trickle keeps going until the server closes, so the test ends on that
    event whatever the machine's speed.
    """
    port, number = listen(reactor, Counter(), headerTimeout=0.5)

    def client() -> tuple[int, bytes]:
        sent = 0
        with socket.create_connection(("127.0.0.1", number), timeout=10) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\n")
            sock.settimeout(0.05)
            answer = b""
            while True:
                try:
                    sock.sendall(b"X")  # one more byte of a never-ending header name
                    sent += 1
                except OSError:
                    break
                try:
                    chunk = sock.recv(65536)
                except TimeoutError:
                    continue
                except OSError:
                    break
                if not chunk:
                    break
                answer += chunk
            return sent, answer

    sent, answer = await reactor.deferToThread(client)
    assert sent > 1  # the data kept flowing: only the absolute deadline ended it
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:80]
    await port.stopListening()


async def test_fifty_slow_clients_do_not_stop_a_normal_one(reactor: Any) -> None:
    counter = Counter()
    port, number = listen(reactor, counter, headerTimeout=1.0)

    def client() -> tuple[int, bytes, list[bytes]]:
        slow = []
        for _ in range(50):
            sock = socket.create_connection(("127.0.0.1", number), timeout=10)
            sock.sendall(b"GET / HTTP/1.1\r\nHost: h\r\nX-Slow: ")  # never finished
            slow.append(sock)
        try:
            conn = http.client.HTTPConnection("127.0.0.1", number, timeout=10)
            conn.request("GET", "/")
            response = conn.getresponse()
            status, body = response.status, response.read()
            conn.close()
            # Then each slow client is cut off by the header timeout.
            endings = [read_until_closed(sock) for sock in slow]
        finally:
            for sock in slow:
                sock.close()
        return status, body, endings

    status, body, endings = await reactor.deferToThread(client)
    assert (status, body) == (200, b"counted")
    assert len(endings) == 50
    assert all(e.startswith(b"HTTP/1.1 408 ") for e in endings), endings[:3]
    await port.stopListening()


async def test_stalled_body_gets_408(reactor: Any) -> None:
    counter = Counter()
    port, number = listen(reactor, counter, bodyTimeout=0.3)

    def client() -> bytes:
        with socket.create_connection(("127.0.0.1", number), timeout=10) as sock:
            sock.sendall(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc")
            return read_until_closed(sock)

    answer = await reactor.deferToThread(client)
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert counter.renders == 0
    await port.stopListening()


async def test_connection_that_sends_nothing_is_closed_by_the_header_timeout(
        reactor: Any) -> None:
    port, number = listen(reactor, Counter(), headerTimeout=0.3)

    def client() -> bytes:
        with socket.create_connection(("127.0.0.1", number), timeout=10) as sock:
            return read_until_closed(sock)

    answer = await reactor.deferToThread(client)
    assert answer.startswith(b"HTTP/1.1 408 ")
    await port.stopListening()
