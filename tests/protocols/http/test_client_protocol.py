"""HTTP11ClientProtocol and Response without sockets: StringTransport and a Clock."""

from __future__ import annotations

import io
import logging
from typing import Any

import pytest

from deferred import CancelledError, Deferred, Failure
from protocols.base import Protocol
from protocols.http._client_response import BUFFER_LIMIT
from protocols.http.client import (
    UNKNOWN_LENGTH,
    FileBodyProducer,
    HTTP11ClientProtocol,
    Request,
    RequestGenerationFailed,
    RequestNotSent,
    RequestTimeoutError,
    ResponseDone,
    ResponseFailed,
    readBody,
)
from protocols.http.server import Headers
from reactor.task import Cooperator
from reactor.testing import Clock, StringTransport

RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello")


def connect(clock: Clock) -> tuple[HTTP11ClientProtocol, StringTransport, list[Any]]:
    quiet: list[Any] = []
    protocol = HTTP11ClientProtocol(quiet.append, reactor=clock)
    transport = StringTransport()
    protocol.makeConnection(transport)
    return protocol, transport, quiet


def get(path: bytes = b"/", persistent: bool = True, body: Any = None,
        method: bytes = b"GET") -> Request:
    return Request(method, path, Headers([(b"Host", b"example")]), body, persistent)


class Recorder(Protocol):
    def __init__(self, events: list[Any]) -> None:
        self.events = events

    def dataReceived(self, data: bytes) -> None:
        self.events.append(data)

    def connectionLost(self, reason: Failure) -> None:  # type: ignore[override]
        self.events.append(reason)


def test_request_bytes_and_a_response_fed_one_byte_at_a_time(clock: Clock) -> None:
    protocol, transport, quiet = connect(clock)
    d = protocol.request(get(b"/x?y=1"))
    assert transport.value() == b"GET /x?y=1 HTTP/1.1\r\nHost: example\r\n\r\n"
    responses: list[Any] = []
    d.addCallback(responses.append)
    for i in range(len(RESPONSE)):
        protocol.dataReceived(RESPONSE[i:i + 1])
        if i < RESPONSE.index(b"\r\n\r\n") + 3:
            assert not responses
    (response,) = responses
    assert (response.code, response.length) == (200, 5)
    events: list[Any] = []
    pool_at_end: list[Any] = []

    class Checking(Recorder):
        def connectionLost(self, reason: Failure) -> None:  # type: ignore[override]
            # The connection was handed back before the body protocol heard the end.
            pool_at_end.extend(quiet)
            super().connectionLost(reason)

    response.deliverBody(Checking(events))
    assert b"".join(e for e in events if isinstance(e, bytes)) == b"hello"
    assert events[-1].check(ResponseDone)
    assert pool_at_end == [protocol]
    assert protocol.state == "QUIESCENT"


def test_not_persistent_says_connection_close_and_closes(clock: Clock) -> None:
    protocol, transport, quiet = connect(clock)
    d = protocol.request(get(persistent=False))
    assert b"Connection: close\r\n" in transport.value()
    protocol.dataReceived(RESPONSE)
    assert d.called
    assert quiet == []
    assert transport.disconnecting


def test_informational_responses_are_skipped(clock: Clock) -> None:
    protocol, _, _ = connect(clock)
    d = protocol.request(get())
    protocol.dataReceived(b"HTTP/1.1 100 Continue\r\n\r\n" + RESPONSE)
    body = readBody(d.result)
    assert d.result.code == 200
    assert body.result == b"hello"


def test_busy_connection_refuses_a_second_request(clock: Clock) -> None:
    protocol, _, _ = connect(clock)
    protocol.request(get())
    failures: list[Failure] = []
    protocol.request(get()).addErrback(failures.append)
    assert failures[0].check(RequestNotSent)


def test_header_injection_is_refused(clock: Clock) -> None:
    protocol, transport, _ = connect(clock)
    request = Request(b"GET", b"/", Headers([(b"X-A", b"b\r\nEvil: 1")]), None, True)
    failures: list[Failure] = []
    protocol.request(request).addErrback(failures.append)
    assert failures[0].check(RequestGenerationFailed)
    assert transport.value() == b""
    assert protocol.state == "QUIESCENT"


def test_data_on_an_idle_connection_aborts_it(clock: Clock) -> None:
    protocol, transport, _ = connect(clock)
    protocol.dataReceived(b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n")
    assert transport.disconnected


def test_unread_body_is_buffered_then_reading_pauses(clock: Clock) -> None:
    protocol, transport, _ = connect(clock)
    d = protocol.request(get())
    size = BUFFER_LIMIT + 100_000
    protocol.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
    protocol.dataReceived(b"a" * (BUFFER_LIMIT + 1))
    assert transport.producerState == "paused"
    body = readBody(d.result)
    assert transport.producerState == "producing"
    protocol.dataReceived(b"a" * (size - BUFFER_LIMIT - 1))
    assert len(body.result) == size


def test_paused_body_protocol_gets_nothing_until_resumed(clock: Clock) -> None:
    protocol, transport, _ = connect(clock)
    d = protocol.request(get())
    protocol.dataReceived(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    events: list[Any] = []
    recorder = Recorder(events)
    d.result.deliverBody(recorder)
    recorder.transport.pauseProducing()  # type: ignore[union-attr]
    assert transport.producerState == "paused"
    protocol.dataReceived(b"3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n")
    assert events == []  # parsed, but held back
    recorder.transport.resumeProducing()  # type: ignore[union-attr]
    assert events[:2] == [b"abc", b"def"]
    assert events[2].check(ResponseDone)
    assert transport.producerState == "producing"


def test_timeout_before_the_response(clock: Clock) -> None:
    protocol, transport, _ = connect(clock)
    failures: list[Failure] = []
    protocol.request(get(), timeout=5).addErrback(failures.append)
    clock.advance(4.9)
    assert not failures
    clock.advance(0.2)
    assert failures[0].check(RequestTimeoutError)
    assert transport.disconnected


def test_timeout_during_the_body(clock: Clock) -> None:
    protocol, transport, _ = connect(clock)
    d = protocol.request(get(), timeout=5)
    protocol.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
    events: list[Any] = []
    d.result.deliverBody(Recorder(events))
    clock.advance(5)
    assert events[0] == b"abc"
    assert events[1].check(ResponseFailed)
    assert events[1].value.reasons[0].check(RequestTimeoutError)
    assert transport.disconnected


def test_lost_connection_mid_body(clock: Clock) -> None:
    protocol, _, quiet = connect(clock)
    d = protocol.request(get())
    protocol.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
    events: list[Any] = []
    d.result.deliverBody(Recorder(events))
    protocol.connectionLost(Failure(ConnectionResetError("reset")))
    assert events[1].check(ResponseFailed)
    assert quiet == []
    assert protocol.state == "CONNECTION_LOST"


class ManualProducer:
    """A body producer the test drives by hand."""

    def __init__(self, length: Any) -> None:
        self.length = length
        self.consumer: Any = None
        self.done: Deferred[None] = Deferred()
        self.stopped = False

    def startProducing(self, consumer: Any) -> Deferred[None]:
        self.consumer = consumer
        return self.done

    def pauseProducing(self) -> None: ...
    def resumeProducing(self) -> None: ...

    def stopProducing(self) -> None:
        self.stopped = True


def test_chunked_request_body_framing(clock: Clock) -> None:
    protocol, transport, _ = connect(clock)
    producer = ManualProducer(UNKNOWN_LENGTH)
    protocol.request(get(body=producer, method=b"POST"))
    assert transport.producer is producer
    assert protocol.state == "TRANSMITTING"
    producer.consumer.write(b"hello")
    producer.consumer.write(b"")  # an empty write must not end the body
    producer.consumer.write(b" world!")
    producer.done.callback(None)
    assert transport.value().endswith(
        b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n7\r\n world!\r\n0\r\n\r\n")
    assert transport.producer is None
    assert protocol.state == "WAITING"


def test_body_producer_failure_and_wrong_length(clock: Clock) -> None:
    protocol, transport, _ = connect(clock)
    producer = ManualProducer(10)
    failures: list[Failure] = []
    protocol.request(get(body=producer, method=b"PUT")).addErrback(failures.append)
    producer.done.errback(OSError("disk on fire"))
    assert failures[0].check(RequestGenerationFailed)
    assert "disk on fire" in str(failures[0].value)
    assert transport.disconnected

    protocol, transport, _ = connect(clock)
    producer = ManualProducer(10)
    failures = []
    protocol.request(get(body=producer, method=b"PUT")).addErrback(failures.append)
    producer.consumer.write(b"short")
    producer.done.callback(None)
    assert failures[0].check(RequestGenerationFailed)
    assert "5 bytes less" in str(failures[0].value)


def test_early_response_stops_the_body_producer(clock: Clock) -> None:
    protocol, transport, quiet = connect(clock)
    producer = ManualProducer(1_000_000)
    d = protocol.request(get(body=producer, method=b"POST"))
    protocol.dataReceived(b"HTTP/1.1 413 Too Large\r\nContent-Length: 0\r\n\r\n")
    assert d.result.code == 413
    assert producer.stopped
    assert quiet == []  # half a body went out: the connection cannot be reused
    assert transport.disconnecting


def test_body_protocol_errors_are_logged_and_fail_the_body(
        clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    protocol, transport, _ = connect(clock)
    d = protocol.request(get())
    protocol.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
    lost: list[Failure] = []

    class Broken(Protocol):
        def dataReceived(self, data: bytes) -> None:
            raise RuntimeError("bug in the body protocol")

        def connectionLost(self, reason: Failure) -> None:  # type: ignore[override]
            lost.append(reason)

    with caplog.at_level(logging.ERROR, logger="protocols.http.client"):
        d.result.deliverBody(Broken())
    assert "bug in the body protocol" in caplog.text
    assert lost[0].check(ResponseFailed)
    assert transport.disconnected


def test_stop_producing_abandons_the_body(clock: Clock) -> None:
    protocol, transport, _ = connect(clock)
    d = protocol.request(get())
    protocol.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
    body = readBody(d.result)
    body.cancel()
    assert transport.disconnected
    failures: list[Failure] = []
    body.addErrback(failures.append)
    assert failures[0].check(CancelledError)


def test_file_body_producer_steps_with_its_cooperator(clock: Clock) -> None:
    cooperator = Cooperator(scheduler=lambda tick: clock.callLater(0, tick))
    source = io.BytesIO(b"abcdefghij")
    producer = FileBodyProducer(source, cooperator=cooperator, readSize=4)
    assert producer.length == 10
    written: list[bytes] = []

    class Consumer:
        def write(self, data: bytes) -> None:
            written.append(data)

    d = producer.startProducing(Consumer())
    clock.advance(0)
    producer.pauseProducing()
    before = list(written)
    clock.advance(1)
    assert written == before
    producer.resumeProducing()
    while not d.called:
        clock.advance(0)
    assert b"".join(written) == b"abcdefghij"
    assert source.closed


def test_file_body_producer_stopped_never_fires(clock: Clock) -> None:
    cooperator = Cooperator(scheduler=lambda tick: clock.callLater(0, tick))
    source = io.BytesIO(b"x" * 100)
    producer = FileBodyProducer(source, cooperator=cooperator, readSize=10)
    d = producer.startProducing(type("C", (), {"write": lambda self, data: None})())
    producer.stopProducing()
    clock.advance(1)
    assert not d.called
    assert source.closed
