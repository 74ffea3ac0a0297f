"""Tests for protocols.http.parser: bytes in, events out, no sockets."""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.http import (
    BodyData,
    EndOfMessage,
    Event,
    Limits,
    ParseError,
    RequestHead,
    RequestParser,
    ResponseHead,
    ResponseParser,
    Upgrade,
)

GET = (
    b"GET /index.html?q=1 HTTP/1.1\r\nHost: example.com\r\n"
    b"User-Agent: test\r\nAccept: */*\r\nX-Dup: a\r\nX-Dup: b\r\n\r\n"
)
POST = b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"
CHUNKED = (
    b"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"
)


def feed_all(parser: RequestParser | ResponseParser, *parts: bytes) -> list[Event]:
    events: list[Event] = []
    for part in parts:
        events.extend(parser.feed(part))
    return events


def merge(events: list[Event]) -> list[Event]:
    """Join adjacent BodyData, since splits change how the body is cut."""
    out: list[Event] = []
    for event in events:
        if isinstance(event, BodyData) and out and isinstance(out[-1], BodyData):
            out[-1] = BodyData(out[-1].data + event.data)
        else:
            out.append(event)
    return out


def test_get_whole() -> None:
    events = RequestParser().feed(GET)
    assert len(events) == 2
    head, end = events
    assert isinstance(head, RequestHead)
    assert head.method == b"GET"
    assert head.target == b"/index.html?q=1"
    assert head.version == b"1.1"
    assert head.headers == [
        (b"host", b"example.com"),
        (b"user-agent", b"test"),
        (b"accept", b"*/*"),
        (b"x-dup", b"a"),
        (b"x-dup", b"b"),
    ]
    assert head.keep_alive and not head.chunked and not head.upgrade
    assert head.content_length is None and not head.expect_continue
    assert end == EndOfMessage([])


def test_events_are_frozen() -> None:
    event = BodyData(b"x")
    with pytest.raises(AttributeError):
        event.data = b"y"  # type: ignore[misc]


def test_post_body() -> None:
    events = merge(RequestParser().feed(POST))
    assert isinstance(events[0], RequestHead)
    assert events[0].content_length == 5
    assert events[1:] == [BodyData(b"hello"), EndOfMessage([])]


def test_chunked_with_trailers() -> None:
    events = merge(RequestParser().feed(CHUNKED))
    head = events[0]
    assert isinstance(head, RequestHead) and head.chunked
    assert head.headers == [(b"host", b"h"), (b"transfer-encoding", b"chunked")]
    assert events[1:] == [BodyData(b"hello world"), EndOfMessage([(b"x-trailer", b"t")])]


@pytest.mark.parametrize("message", [GET, POST, CHUNKED])
def test_one_byte_at_a_time(message: bytes) -> None:
    whole = merge(RequestParser().feed(message))
    parser = RequestParser()
    assert merge(feed_all(parser, *(message[i : i + 1] for i in range(len(message))))) == whole


@given(st.lists(st.integers(min_value=0, max_value=len(GET + POST + CHUNKED)), max_size=12))
def test_random_splits(cuts: list[int]) -> None:
    data = GET + POST + CHUNKED
    bounds = [0, *sorted(cuts), len(data)]
    parts = [data[a:b] for a, b in pairwise(bounds)]
    assert merge(feed_all(RequestParser(), *parts)) == merge(RequestParser().feed(data))


def test_three_pipelined_requests() -> None:
    events = merge(RequestParser().feed(GET + POST + CHUNKED))
    heads = [e for e in events if isinstance(e, RequestHead)]
    assert [h.target for h in heads] == [b"/index.html?q=1", b"/p", b"/c"]
    kinds = [type(e).__name__ for e in events]
    assert kinds == [
        "RequestHead", "EndOfMessage",
        "RequestHead", "BodyData", "EndOfMessage",
        "RequestHead", "BodyData", "EndOfMessage",
    ]


def test_expect_continue() -> None:
    head = RequestParser().feed(
        b"PUT / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n"
    )[0]
    assert isinstance(head, RequestHead) and head.expect_continue


# -- keep-alive (RFC 9112 §9.3) -----------------------------------------------


@pytest.mark.parametrize(
    ("request_bytes", "keep_alive"),
    [
        (b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", True),
        (b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", False),
        (b"GET / HTTP/1.0\r\n\r\n", False),
        (b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", True),
    ],
)
def test_keep_alive_rules(request_bytes: bytes, keep_alive: bool) -> None:
    head = RequestParser().feed(request_bytes)[0]
    assert isinstance(head, RequestHead) and head.keep_alive is keep_alive


def test_data_after_close_is_ignored() -> None:
    parser = RequestParser()
    events = parser.feed(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n" + GET)
    assert [type(e) for e in events] == [RequestHead, EndOfMessage]
    assert parser.closed
    assert parser.feed(GET) == []


# -- upgrade ------------------------------------------------------------------


def test_upgrade_returns_trailing_bytes() -> None:
    parser = RequestParser()
    events = parser.feed(
        b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
        b"\x81\x05hello"
    )
    head, end, upgrade = events
    assert isinstance(head, RequestHead) and head.upgrade
    assert end == EndOfMessage([])
    assert upgrade == Upgrade(b"websocket", b"\x81\x05hello")
    with pytest.raises(RuntimeError):
        parser.feed(b"more")


def test_connect_is_an_upgrade() -> None:
    events = RequestParser().feed(b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\nTLS")
    assert events[-1] == Upgrade(b"CONNECT", b"TLS")


# -- smuggling vectors: 400 and no more input ---------------------------------

SMUGGLING = {
    "cl_and_te": b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "duplicate_cl_equal": b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n"
    b"Content-Length: 3\r\n\r\nabc",
    "duplicate_cl_differ": b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n"
    b"Content-Length: 4\r\n\r\nabcd",
    "invalid_cl": b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +3\r\n\r\nabc",
    "negative_cl": b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n",
    "bad_chunk_size": b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"zz\r\nabc\r\n0\r\n\r\n",
    "control_char": b"GET / HTTP/1.1\r\nHost: h\r\nX: a\x01b\r\n\r\n",
    "obs_fold": b"GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n",
    "space_before_colon": b"GET / HTTP/1.1\r\nHost : h\r\n\r\n",
    "invalid_name": b"GET / HTTP/1.1\r\nHo(st: h\r\n\r\n",
    "bare_lf": b"GET / HTTP/1.1\nHost: h\n\n",
    "http10_chunked": b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"1\r\na\r\n0\r\n\r\n",
    "te_not_final_chunked": b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n",
    "te_chunked_twice": b"POST / HTTP/1.1\r\nHost: h\r\n"
    b"Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
}


@pytest.mark.parametrize("name", sorted(SMUGGLING))
def test_smuggling_rejected(name: str) -> None:
    parser = RequestParser()
    events = parser.feed(SMUGGLING[name])
    error = events[-1]
    assert isinstance(error, ParseError) and error.status_code == 400
    assert not any(isinstance(e, EndOfMessage) for e in events)
    assert parser.closed
    assert parser.feed(GET) == [error]  # refuses further input


@pytest.mark.parametrize("name", sorted(SMUGGLING))
def test_smuggling_rejected_byte_by_byte(name: str) -> None:
    data = SMUGGLING[name]
    events = feed_all(RequestParser(), *(data[i : i + 1] for i in range(len(data))))
    assert isinstance(events[-1], ParseError) and events[-1].status_code == 400


def test_unknown_transfer_coding_is_501() -> None:
    events = RequestParser().feed(
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"
    )
    assert events == [ParseError(501, "unsupported transfer coding")]


def test_error_after_good_request_keeps_earlier_events() -> None:
    events = RequestParser().feed(GET + SMUGGLING["obs_fold"])
    assert [type(e) for e in events] == [RequestHead, EndOfMessage, ParseError]


# -- limits ---------------------------------------------------------------------


def status(events: list[Event]) -> int:
    assert isinstance(events[-1], ParseError), events
    return events[-1].status_code


def test_long_target_is_414() -> None:
    target = b"/" + b"a" * 8 * 1024
    assert status(RequestParser().feed(b"GET " + target + b" HTTP/1.1\r\n\r\n")) == 414


def test_long_target_trickled_is_414() -> None:
    parser = RequestParser(Limits(max_request_line=100))
    events = feed_all(parser, b"GET /", *([b"a" * 10] * 20))
    assert status(events) == 414


def test_large_headers_are_431() -> None:
    data = b"GET / HTTP/1.1\r\n" + b"X-A: " + b"v" * 70_000 + b"\r\n\r\n"
    assert status(RequestParser().feed(data)) == 431


def test_large_header_trickled_is_431() -> None:
    parser = RequestParser(Limits(max_header_bytes=1000, max_request_line=100))
    events = feed_all(parser, b"GET / HTTP/1.1\r\nX-A: ", *([b"v" * 100] * 20))
    assert status(events) == 431


def test_too_many_headers_are_431() -> None:
    data = b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(101)) + b"\r\n"
    assert status(RequestParser().feed(data)) == 431
    ok = b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(100)) + b"\r\n"
    assert isinstance(RequestParser().feed(ok)[-1], EndOfMessage)


def test_content_length_over_limit_is_413_before_body() -> None:
    parser = RequestParser(Limits(max_body=10))
    events = parser.feed(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\n")
    assert status(events) == 413


def test_chunked_over_limit_is_413() -> None:
    parser = RequestParser(Limits(max_body=8))
    events = parser.feed(CHUNKED)
    assert status(events) == 413
    assert sum(len(e.data) for e in events if isinstance(e, BodyData)) <= 8


# -- responses ----------------------------------------------------------------


def test_response_with_body() -> None:
    parser = ResponseParser()
    events = merge(parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"))
    head = events[0]
    assert isinstance(head, ResponseHead)
    assert (head.status, head.reason, head.version) == (200, b"OK", b"1.1")
    assert head.content_length == 2 and head.keep_alive
    assert events[1:] == [BodyData(b"hi"), EndOfMessage([])]


def test_head_response_has_no_body() -> None:
    parser = ResponseParser(head=True)
    response = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"
    follow = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"
    events = parser.feed(response + follow)
    kinds = [type(e).__name__ for e in merge(events)]
    assert kinds == ["ResponseHead", "EndOfMessage", "ResponseHead", "BodyData", "EndOfMessage"]


def test_head_response_split() -> None:
    parser = ResponseParser(head=True)
    data = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"
    events = feed_all(parser, *(data[i : i + 1] for i in range(len(data))))
    assert [type(e) for e in events] == [ResponseHead, EndOfMessage]


def test_response_read_until_close() -> None:
    parser = ResponseParser()
    events = parser.feed(b"HTTP/1.0 200 OK\r\n\r\nsome body")
    assert [type(e) for e in events] == [ResponseHead, BodyData]
    assert parser.feed_eof() == [EndOfMessage([])]


def test_response_truncated() -> None:
    parser = ResponseParser()
    parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab")
    assert status(parser.feed_eof()) == 400


def test_response_chunked_and_no_body_statuses() -> None:
    data = (
        b"HTTP/1.1 204 No Content\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n"
    )
    events = merge(ResponseParser().feed(data))
    assert [type(e) for e in events] == [
        ResponseHead, EndOfMessage, ResponseHead, BodyData, EndOfMessage
    ]


def test_response_switching_protocols() -> None:
    events = ResponseParser().feed(
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
        b"Upgrade: websocket\r\n\r\nframes"
    )
    assert events[-1] == Upgrade(b"websocket", b"frames")
