"""Tests for protocols.http.cookies: bytes only, compared with Twisted.

Twisted is a test-only reference here: the comparisons import it with
``pytest.importorskip`` and build a real ``twisted.web.http.Request`` on
Twisted's own ``DummyChannel``, then compare ``received_cookies`` and the
``Set-Cookie`` values with ours.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.http.cookies import format_set_cookie, parse_cookie_header, parse_cookies


def twisted_request() -> Any:
    http = pytest.importorskip("twisted.web.http")
    requesthelper = pytest.importorskip("twisted.web.test.requesthelper")
    return http.Request(requesthelper.DummyChannel(), False)


def twisted_received(headers: list[bytes]) -> dict[bytes, bytes]:
    request = twisted_request()
    request.requestHeaders.setRawHeaders(b"cookie", headers)
    request.parseCookies()
    return dict(request.received_cookies)


def twisted_set_cookie(*args: Any, **kwargs: Any) -> bytes:
    request = twisted_request()
    request.addCookie(*args, **kwargs)
    [cookie] = request.cookies
    assert isinstance(cookie, bytes)
    return cookie


# -- parsing ------------------------------------------------------------------

PARSE_VECTORS = [
    (b"a=1", {b"a": b"1"}),
    (b"a=1; b=2", {b"a": b"1", b"b": b"2"}),
    (b"a=1;b=2", {b"a": b"1", b"b": b"2"}),
    (b"  a=1;   b=2", {b"a": b"1", b"b": b"2"}),
    # Trailing spaces and quotes are part of what Twisted keeps.
    (b"a=1 ; b=2 ", {b"a": b"1 ", b"b": b"2 "}),
    (b'a="quoted value"; b=""', {b"a": b'"quoted value"', b"b": b'""'}),
    (b"a=; b=", {b"a": b"", b"b": b""}),
    (b"a=x=y", {b"a": b"x=y"}),
    (b"=v", {b"": b"v"}),
    # Pairs without "=" are skipped, the rest kept.
    (b"junk; a=1; ;;  ; other junk; b=2", {b"a": b"1", b"b": b"2"}),
    (b"a=1; a=2; a=3", {b"a": b"3"}),
    (b"", {}),
    (b";;;", {}),
    (b"\xff\xfe=\x00\x01", {b"\xff\xfe": b"\x00\x01"}),
    (b"a = 1", {b"a ": b" 1"}),
]


@pytest.mark.parametrize(("header", "expected"), PARSE_VECTORS)
def test_parse_vectors(header: bytes, expected: dict[bytes, bytes]) -> None:
    assert parse_cookie_header(header) == expected


@pytest.mark.parametrize(("header", "expected"), PARSE_VECTORS)
def test_parse_vectors_match_twisted(header: bytes, expected: dict[bytes, bytes]) -> None:
    assert twisted_received([header]) == expected


def test_parse_cookies_merges_headers_last_wins() -> None:
    headers = [b"a=1; b=2", b"", b" c=3;a=4"]
    assert parse_cookies(headers) == {b"a": b"4", b"b": b"2", b"c": b"3"}
    assert parse_cookies(headers) == twisted_received(headers)
    assert parse_cookies(None) == {}
    assert parse_cookies([]) == {}


# Header values never hold CR or LF (the HTTP parser rejects them, and
# Twisted's Headers would rewrite them), so neither does this input.
cookie_text = (
    st.binary(max_size=40) | st.lists(
        st.sampled_from([b"a", b"b", b"=", b";", b" ", b"\t", b'"', b"x=1", b"\x0b"]),
        max_size=12,
    ).map(b"".join)
).map(lambda value: value.replace(b"\r", b"").replace(b"\n", b""))


@given(st.lists(cookie_text, min_size=1, max_size=3))
def test_parse_matches_twisted_on_any_bytes(headers: list[bytes]) -> None:
    assert parse_cookies(headers) == twisted_received(headers)


# -- formatting ----------------------------------------------------------------

FORMAT_VECTORS: list[tuple[tuple[Any, ...], dict[str, Any], bytes]] = [
    ((b"a", b"1"), {}, b"a=1"),
    (("name", "välue"), {}, "name=välue".encode()),
    (
        (b"a", b"1"),
        {
            "expires": b"Wed, 21 Oct 2015 07:28:00 GMT",
            "domain": b"example.com",
            "path": b"/p",
            "max_age": b"3600",
            "comment": b"hi there",
            "secure": True,
            "httpOnly": True,
            "sameSite": b"Strict",
        },
        b"a=1; Expires=Wed, 21 Oct 2015 07:28:00 GMT; Domain=example.com; Path=/p;"
        b" Max-Age=3600; Comment=hi there; Secure; HttpOnly; SameSite=strict",
    ),
    ((b"a", b"1"), {"path": "/", "sameSite": "lax"}, b"a=1; Path=/; SameSite=lax"),
    ((b"a", b"1"), {"secure": True, "sameSite": "NONE"}, b"a=1; Secure; SameSite=none"),
    ((b"a", b"1"), {"secure": False, "httpOnly": False}, b"a=1"),
    ((b"a", b"1"), {"sameSite": ""}, b"a=1"),
    ((b"a", b""), {"domain": "", "path": ""}, b"a=; Domain=; Path="),
    # Line breaks and semicolons become spaces everywhere (header injection).
    ((b"a;b", b"v\r\nSet-Cookie: evil=1"), {}, b"a b=v Set-Cookie: evil=1"),
    ((b"a", b"x\ry\nz\r\n"), {}, b"a=x y z"),
    ((b"a", b"1"), {"path": b"/;Domain=evil", "comment": "c\n;"}, b"a=1; Path=/ Domain=evil;"
     b" Comment=c  "),
    ((b"a", b"1"), {"expires": "never;\r\nX: y"}, b"a=1; Expires=never  X: y"),
]


@pytest.mark.parametrize(("args", "kwargs", "expected"), FORMAT_VECTORS)
def test_format_vectors(args: tuple[Any, ...], kwargs: dict[str, Any], expected: bytes) -> None:
    assert format_set_cookie(*args, **kwargs) == expected


@pytest.mark.parametrize(("args", "kwargs", "expected"), FORMAT_VECTORS)
def test_format_matches_twisted(
    args: tuple[Any, ...], kwargs: dict[str, Any], expected: bytes
) -> None:
    assert twisted_set_cookie(*args, **kwargs) == expected


attr_text = st.none() | st.binary(max_size=20) | st.text(max_size=10)


@given(
    name=st.binary(max_size=10) | st.text(max_size=10),
    value=st.binary(max_size=20) | st.text(max_size=10),
    expires=attr_text,
    domain=attr_text,
    path=attr_text,
    max_age=attr_text,
    comment=attr_text,
    secure=st.none() | st.booleans(),
    http_only=st.booleans(),
    same_site=st.sampled_from([None, "", "lax", "Strict", b"LAX", "none", b"bogus", "x"]),
)
def test_format_matches_twisted_on_any_input(**kw: Any) -> None:
    kwargs = {
        key: kw[key] for key in ("expires", "domain", "path", "max_age", "comment", "secure")
    }
    kwargs["httpOnly"] = kw["http_only"]
    kwargs["sameSite"] = kw["same_site"]
    try:
        theirs: bytes | type[Exception] = twisted_set_cookie(kw["name"], kw["value"], **kwargs)
    except ValueError:
        theirs = ValueError
    try:
        ours: bytes | type[Exception] = format_set_cookie(kw["name"], kw["value"], **kwargs)
    except ValueError:
        ours = ValueError
    assert ours == theirs


@pytest.mark.parametrize(
    "kwargs",
    [
        {"sameSite": "bogus"},
        {"sameSite": b"lax "},
        {"sameSite": "none"},  # none needs secure
        {"sameSite": "none", "secure": False},
    ],
)
def test_bad_same_site_rejected(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="sameSite"):
        format_set_cookie(b"a", b"1", **kwargs)
    with pytest.raises(ValueError, match="sameSite"):
        twisted_set_cookie(b"a", b"1", **kwargs)


# -- extensions beyond Twisted (Twisted takes only preformatted text) ------------


def test_expires_datetime_is_imf_fixdate() -> None:
    when = datetime(2015, 10, 21, 7, 28, tzinfo=UTC)
    assert format_set_cookie(b"a", b"1", expires=when) == (
        b"a=1; Expires=Wed, 21 Oct 2015 07:28:00 GMT"
    )
    # A naive datetime is UTC; an aware one is converted to GMT.
    assert format_set_cookie(b"a", b"1", expires=when.replace(tzinfo=None)) == (
        b"a=1; Expires=Wed, 21 Oct 2015 07:28:00 GMT"
    )
    paris = when.astimezone(timezone(timedelta(hours=2)))
    assert paris.hour == 9
    assert format_set_cookie(b"a", b"1", expires=paris) == (
        b"a=1; Expires=Wed, 21 Oct 2015 07:28:00 GMT"
    )


def test_expires_timestamp_and_int_max_age() -> None:
    assert format_set_cookie(b"a", b"1", expires=0) == (
        b"a=1; Expires=Thu, 01 Jan 1970 00:00:00 GMT"
    )
    assert format_set_cookie(b"a", b"1", expires=1445412480.7, max_age=0) == (
        b"a=1; Expires=Wed, 21 Oct 2015 07:28:00 GMT; Max-Age=0"
    )
    assert format_set_cookie(b"a", b"1", max_age=3600) == b"a=1; Max-Age=3600"


def test_docstring_examples() -> None:
    import doctest

    from protocols.http import cookies

    assert doctest.testmod(cookies).attempted == 2
    assert doctest.testmod(cookies).failed == 0
