"""URLs, HOST:PORT strings and the precomputed HTTP request."""

from __future__ import annotations

import pytest

from protocols.bench.targets import (
    Target,
    http_request,
    parse_address,
    parse_header,
    parse_url,
    resolve,
)


def test_parse_url() -> None:
    t = parse_url("http://127.0.0.1:8080/a/b?x=1#frag")
    assert (t.host, t.port, t.path) == ("127.0.0.1", 8080, "/a/b?x=1")
    assert t.host_header == "127.0.0.1:8080"
    t = parse_url("http://example.test")
    assert (t.port, t.path, t.host_header) == (80, "/", "example.test")
    assert parse_url("http://[::1]:81/").host_header == "[::1]:81"


@pytest.mark.parametrize("url, message", [
    ("https://127.0.0.1/", "https is not supported"),
    ("ftp://127.0.0.1/", "is not an http:// URL"),
    ("127.0.0.1:8080", "is not an http:// URL"),
    ("http:///path", "has no host"),
    ("http://127.0.0.1:99999/", "bad URL"),
    ("http://u:p@127.0.0.1/", "credentials"),
    ("http://127.0.0.1/a b", "white space"),
])
def test_bad_urls(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_url(url)


def test_parse_address() -> None:
    assert parse_address("127.0.0.1:7") == Target("127.0.0.1", 7, text="127.0.0.1:7")
    assert parse_address("[::1]:8007").host == "::1"
    assert parse_address("localhost:9").host == "localhost"
    assert parse_address("8007") == Target("127.0.0.1", 8007, text="8007")


@pytest.mark.parametrize("text", ["127.0.0.1", "127.0.0.1:", "127.0.0.1:0",
                                  "127.0.0.1:65536", ":80", "::1:80", "host:http"])
def test_bad_addresses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_address(text)


def test_resolve() -> None:
    _, address = resolve(parse_address("127.0.0.1:7"))
    assert address[:2] == ("127.0.0.1", 7)
    with pytest.raises(ValueError, match="can't resolve"):
        resolve(Target("no-such-host.invalid", 80))


def test_http_request_defaults() -> None:
    request = http_request(parse_url("http://127.0.0.1:8080/x?y=1"))
    assert request == (b"GET /x?y=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
                       b"User-Agent: torsion-bench\r\n\r\n")


def test_http_request_headers_and_body() -> None:
    request = http_request(parse_url("http://127.0.0.1/"), "POST",
                           [("Host", "example.test"), ("X-A", "1")], b"data")
    assert request == (b"POST / HTTP/1.1\r\nHost: example.test\r\nX-A: 1\r\n"
                       b"User-Agent: torsion-bench\r\nContent-Length: 4\r\n\r\ndata")
    assert b"Content-Length: 0\r\n" in http_request(parse_url("http://h/"), "PUT")


@pytest.mark.parametrize("method, headers", [
    ("GE T", []), ("", []), ("GET\r\n", []),
    ("GET", [("X-A", "1\r\nX-B: 2")]), ("GET", [("X A", "1")]),
    ("GET", [("Content-Length", "5")]), ("GET", [("X-A", "\u20ac")]),
])
def test_http_request_refuses_what_would_break_framing(
        method: str, headers: list[tuple[str, str]]) -> None:
    with pytest.raises(ValueError):
        http_request(parse_url("http://h/"), method, headers)


def test_parse_header() -> None:
    assert parse_header("Accept:  text/html ") == ("Accept", "text/html")
    assert parse_header("X-Empty:") == ("X-Empty", "")
    for bad in ("no colon", ": value"):
        with pytest.raises(ValueError):
            parse_header(bad)
