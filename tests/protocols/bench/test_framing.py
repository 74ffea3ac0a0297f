"""Reply framing of the load engine, fed byte strings without sockets.

Each reply is fed whole, one byte at a time, and split at every point, so
framing never depends on how TCP happens to cut the bytes.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

from protocols.bench import _engine
from protocols.bench._engine import Engine, Workload


def _probe_class(base: type[Any]) -> type[Any]:
    class Probe(base):  # type: ignore[misc]
        """Counts the requests it would send instead of sending them."""

        sends = 0

        def send(self) -> None:
            self.sends += 1

    return Probe


def make(mode: str, request: bytes = b"GET / HTTP/1.1\r\n\r\n", **kw: Any) -> tuple[Engine, Any]:
    """An engine (never run) and one busy connection of ``mode``, awaiting a reply."""
    workload = Workload(mode, socket.AF_INET, ("127.0.0.1", 9), 1, 1.0, None, 5.0,
                        request, **kw)
    engine = Engine(workload)
    engine.stopping = True  # a failed connection is not opened again
    kind = {"http": _engine._HTTPConnection, "echo": _engine._EchoConnection,
            "line": _engine._LineConnection}[mode]
    connection = _probe_class(kind)(engine)
    connection.state = _engine._BUSY
    engine.in_flight = 1
    return engine, connection


def splits(data: bytes) -> Iterator[list[bytes]]:
    yield [data]
    yield [data[i:i + 1] for i in range(len(data))]
    for cut in range(1, len(data)):
        yield [data[:cut], data[cut:]]


def feed(mode: str, data: bytes, **kw: Any) -> Iterator[tuple[Engine, Any]]:
    """``(engine, connection)`` after feeding ``data`` cut each way."""
    for pieces in splits(data):
        engine, connection = make(mode, **kw)
        try:
            for piece in pieces:
                if connection.state == _engine._CLOSED:
                    break  # the engine reads no more from a closed connection
                if connection.state == _engine._BUSY:
                    connection.received(piece)
                else:  # what the engine does with bytes nobody asked for
                    connection.fail("protocol")
            yield engine, connection
        finally:
            engine.close()


def errors(engine: Engine) -> dict[str, int]:
    return {kind: n for kind, n in engine.outcome.errors.items() if n}


# -- HTTP ---------------------------------------------------------------------------------

GOOD = [
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
    b"HTTP/1.1 200 OK\r\ncontent-length:0\r\nServer: x\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n"
    b"10\r\n" + b"x" * 16 + b"\r\n0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n"
    b"X-Trailer: 1\r\nX-Other: 2\r\n\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.1 204 No Content\r\n\r\n",
    b"HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n",
    b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nx",
    b"HTTP/1.1 200\r\nContent-Length: 1\r\n\r\nx",
]


@pytest.mark.parametrize("reply", GOOD)
def test_complete_replies_are_counted_and_the_next_request_sent(reply: bytes) -> None:
    # (304 included: as with wrk, only 4xx and 5xx count as errors)
    for engine, connection in feed("http", reply):
        assert engine.outcome.requests == 1
        assert sum(engine.outcome.statuses.values()) == 1
        assert errors(engine) == {}
        assert connection.sends == 1
        assert engine.in_flight == 0
        assert engine.outcome.latency.count == 1


def test_head_replies_have_no_body() -> None:
    for engine, connection in feed("http", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
                                   no_body=True):
        assert (engine.outcome.requests, connection.sends) == (1, 1)


@pytest.mark.parametrize("reply", [
    b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
])
def test_a_closing_reply_counts_and_the_connection_is_replaced(reply: bytes) -> None:
    for engine, connection in feed("http", reply):
        assert engine.outcome.requests == 1
        assert errors(engine) == {}
        assert connection.sends == 0
        assert connection.state == _engine._CLOSED


def test_non_2xx_replies_count_as_requests_and_as_status_errors() -> None:
    for engine, connection in feed("http", b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n"):
        assert engine.outcome.requests == 1
        assert engine.outcome.statuses == {503: 1}
        assert errors(engine) == {"status": 1}
        assert connection.sends == 1


def test_a_body_running_to_the_end_of_the_connection() -> None:
    for engine, connection in feed("http", b"HTTP/1.1 200 OK\r\n\r\nbody without length"):
        assert engine.outcome.requests == 0
        connection.closed_by_peer()
        assert engine.outcome.requests == 1
        assert errors(engine) == {}
        assert connection.sends == 0


@pytest.mark.parametrize("reply", [
    b"SSH-2.0-OpenSSH_9.2\r\n\r\n",
    b"HTTP/1.1 2x0 OK\r\n\r\n",
    b"HTTP/1.1 2000 OK\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: five\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
])
def test_unframeable_replies_are_protocol_errors(reply: bytes) -> None:
    for engine, connection in feed("http", reply):
        if connection.state == _engine._BUSY:
            continue  # not yet decidable with this cut: the last pieces decide
        assert errors(engine) == {"protocol": 1}
        assert engine.outcome.requests == 0
        assert engine.in_flight == 0
        assert connection.state == _engine._CLOSED
    engine, connection = make("http")
    connection.received(reply)
    assert errors(engine) == {"protocol": 1}
    engine.close()


def test_bytes_after_the_reply_are_a_protocol_error() -> None:
    reply = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx"
    for engine, connection in feed("http", reply + b"EXTRA"):
        assert errors(engine) == {"protocol": 1}
        assert engine.outcome.requests == (0 if connection.sends == 0 else 1)
        assert connection.state == _engine._CLOSED


def test_a_head_that_never_ends_is_a_protocol_error() -> None:
    engine, connection = make("http")
    connection.received(b"HTTP/1.1 200 OK\r\n")
    for _ in range(10):
        if connection.state != _engine._BUSY:
            break
        connection.received(b"X-Filler: " + b"y" * 10000 + b"\r\n")
    assert errors(engine) == {"protocol": 1}
    engine.close()


def test_eof_in_the_middle_of_a_reply_is_a_read_error() -> None:
    engine, connection = make("http")
    connection.received(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf")
    connection.closed_by_peer()
    assert errors(engine) == {"read": 1}
    assert (engine.outcome.requests, engine.in_flight) == (0, 0)
    engine.close()


def test_eof_on_an_idle_connection_is_no_error() -> None:
    engine, connection = make("http")
    connection.state = _engine._IDLE
    engine.in_flight = 0
    connection.closed_by_peer()
    assert errors(engine) == {}
    assert connection.state == _engine._CLOSED
    engine.close()


# -- echo and line --------------------------------------------------------------------------


def test_echo_replies_are_compared_with_the_message() -> None:
    for engine, connection in feed("echo", b"0123456789", request=b"0123456789"):
        assert (engine.outcome.requests, connection.sends, errors(engine)) == (1, 1, {})
    for engine, _ in feed("echo", b"0123456788", request=b"0123456789"):
        assert (engine.outcome.requests, errors(engine)) == (1, {"mismatch": 1})


def test_an_echo_reply_longer_than_the_message_is_a_protocol_error() -> None:
    engine, connection = make("echo", request=b"abc")
    connection.received(b"abcd")
    assert (engine.outcome.requests, errors(engine)) == (0, {"protocol": 1})
    engine.close()


@pytest.mark.parametrize("reply", [b"+PONG\r\n", b"+PONG\n"])
def test_line_replies(reply: bytes) -> None:
    for engine, connection in feed("line", reply, request=b"PING\r\n", expect=rb"^\+PONG$"):
        assert (engine.outcome.requests, connection.sends, errors(engine)) == (1, 1, {})
    for engine, _ in feed("line", reply, request=b"PING\r\n", expect=b"PANG"):
        assert (engine.outcome.requests, errors(engine)) == (1, {"mismatch": 1})


def test_two_lines_for_one_request_are_a_protocol_error() -> None:
    engine, connection = make("line", request=b"PING\r\n")
    connection.received(b"one\r\ntwo\r\n")
    assert (engine.outcome.requests, errors(engine)) == (0, {"protocol": 1})
    engine.close()


def test_a_line_without_end_is_a_protocol_error_past_the_limit() -> None:
    engine, connection = make("line", request=b"PING\r\n")
    while connection.state == _engine._BUSY:
        connection.received(b"z" * 20000)
    assert errors(engine) == {"protocol": 1}
    engine.close()


def test_workload_json_round_trip() -> None:
    workload = Workload("line", socket.AF_INET6, ("::1", 7, 0, 0), 3, None, 10, 1.5,
                        b"\x00\xffPING\r\n", expect=b"^\\+")
    assert Workload.from_json(workload.to_json()) == workload
