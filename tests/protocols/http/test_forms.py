"""Tests for protocols.http.forms: bytes in, events out, no reactor.

Bodies come from the stdlib ``email`` package, from hand-built bodies shaped
like browsers send them, and from curl's own ``-F`` output captured by a tiny
blocking socket server; every body is also fed in random splits.
"""

from __future__ import annotations

import email
import email.policy
import io
import re
import socket
import subprocess
import tempfile
import threading
import tracemalloc
from email.charset import Charset
from email.encoders import encode_7or8bit
from email.message import Message
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qs, quote

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from protocols.http import forms
from protocols.http.forms import (
    FormError,
    FormLimits,
    MultipartError,
    MultipartEvent,
    MultipartParser,
    PartData,
    PartEnd,
    PartHead,
    get_boundary,
    parse_content_type,
    parse_multipart,
    parse_urlencoded,
)
from tests.tools import require_tool

BOUNDARY = b"----WebKitFormBoundary7MA4YWxkTrZu0gW"


def part(name: bytes, data: bytes, filename: bytes | None = None,
         content_type: bytes | None = None) -> bytes:
    """One part, headers as a browser writes them, without the delimiter."""
    disposition = b'Content-Disposition: form-data; name="' + name + b'"'
    if filename is not None:
        disposition += b'; filename="' + filename + b'"'
    head = disposition + b"\r\n"
    if content_type is not None:
        head += b"Content-Type: " + content_type + b"\r\n"
    return head + b"\r\n" + data


def body_of(*parts: bytes, boundary: bytes = BOUNDARY) -> bytes:
    """A whole body: each part after a delimiter, then the final delimiter."""
    out = b"".join(b"--" + boundary + b"\r\n" + p + b"\r\n" for p in parts)
    return out + b"--" + boundary + b"--\r\n"


def merge(events: list[MultipartEvent]) -> list[MultipartEvent]:
    """Join adjacent PartData, since how data is cut depends on the splits."""
    out: list[MultipartEvent] = []
    for event in events:
        if isinstance(event, PartData) and out and isinstance(out[-1], PartData):
            out[-1] = PartData(out[-1].data + event.data)
        else:
            out.append(event)
    return out


def parse(body: bytes, boundary: bytes = BOUNDARY, *pieces: int,
          limits: FormLimits = forms.DEFAULT_FORM_LIMITS) -> list[MultipartEvent]:
    """Feed ``body`` cut at the offsets ``pieces``, then close; merged events."""
    parser = MultipartParser(boundary, limits)
    events: list[MultipartEvent] = []
    start = 0
    for cut in [*sorted(pieces), len(body)]:
        events.extend(parser.feed(body[start:cut]))
        start = max(start, cut)
    events.extend(parser.close())
    assert not any(isinstance(e, PartData) and not e.data for e in events)
    return merge(events)


def fields(events: list[MultipartEvent]) -> list[tuple[bytes, str | None, bytes]]:
    """(name, filename, data) per part, checking the event grammar on the way."""
    out: list[tuple[bytes, str | None, bytes]] = []
    current: PartHead | None = None
    data = b""
    for event in events:
        if isinstance(event, PartHead):
            assert current is None
            current, data = event, b""
        elif isinstance(event, PartData):
            assert current is not None
            data += event.data
        else:
            assert current is not None
            out.append((current.name, current.filename, data))
            current = None
    assert current is None
    return out


# -- Content-Type parameters ---------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"text/html", (b"text/html", {})),
        (b"Text/HTML; Charset=UTF-8", (b"text/html", {b"charset": b"UTF-8"})),
        (b"multipart/form-data; boundary=abc", (b"multipart/form-data", {b"boundary": b"abc"})),
        (b'a/b; x="q;uo\\"ted\\\\"; y=2', (b"a/b", {b"x": b'q;uo"ted\\', b"y": b"2"})),
        (b'a/b; x="\\a\\b"', (b"a/b", {b"x": b"ab"})),
        (b"a/b ;x=1 ;  y = 2 ;", (b"a/b", {b"x": b"1", b"y": b"2"})),
        (b"a/b; novalue; =empty; x=1", (b"a/b", {b"x": b"1"})),
        (b"a/b; x=1; X=2", (b"a/b", {b"x": b"1"})),  # first wins
        (b'a/b; x="unterminated', (b"a/b", {b"x": b"unterminated"})),
        (b'a/b; x="v"junk; y=1', (b"a/b", {b"x": b"v", b"y": b"1"})),
        (b'a/b; x=""', (b"a/b", {b"x": b""})),
        (b"", (b"", {})),
        (b";x=1", (b"", {b"x": b"1"})),
    ],
)
def test_parse_content_type(value: bytes, expected: tuple[bytes, dict[bytes, bytes]]) -> None:
    assert parse_content_type(value) == expected


def test_get_boundary() -> None:
    assert get_boundary(b'multipart/form-data; boundary="a b"') == b"a b"
    assert get_boundary(b"Multipart/Form-Data;boundary=" + BOUNDARY) == BOUNDARY
    for bad, message in [
        (b"multipart/form-data", "missing boundary"),
        (b"multipart/form-data; boundary=", "missing boundary"),
        (b"multipart/form-data; boundary=" + b"x" * 71, "invalid boundary"),
        (b"multipart/mixed; boundary=x", "not multipart/form-data"),
    ]:
        with pytest.raises(MultipartError, match=message) as info:
            get_boundary(bad)
        assert info.value.code == 400


def test_parser_rejects_bad_boundary() -> None:
    with pytest.raises(MultipartError, match="missing boundary"):
        MultipartParser(b"")
    with pytest.raises(MultipartError, match="invalid boundary"):
        MultipartParser(b"a\r\nb")


# -- well-formed bodies --------------------------------------------------------------


def test_browser_body() -> None:
    data = b"line one\r\n--" + BOUNDARY[:-1] + b"\r\n-- not it\r\n\r\n"
    body = body_of(
        part(b"title", b"Hello"),
        part(b"empty", b""),
        part(b"upload", data, b"r\xc3\xa9sum\xc3\xa9 \xe2\x82\xac.txt", b"text/plain"),
        part(b"blank", b"", b"", b"application/octet-stream"),
        part(b"title", b"again"),
    )
    events = parse(body)
    assert fields(events) == [
        (b"title", None, b"Hello"),
        (b"empty", None, b""),
        (b"upload", "résumé €.txt", data),
        (b"blank", "", b""),
        (b"title", None, b"again"),
    ]
    heads = [e for e in events if isinstance(e, PartHead)]
    assert heads[0].content_type == b"text/plain"  # RFC 7578 default
    assert heads[3].content_type == b"application/octet-stream"
    assert heads[2].headers == [
        (b"content-disposition",
         b'form-data; name="upload"; filename="r\xc3\xa9sum\xc3\xa9 \xe2\x82\xac.txt"'),
        (b"content-type", b"text/plain"),
    ]


def test_preamble_epilogue_padding_and_no_headers() -> None:
    body = (
        b"This is a preamble.\r\n--" + BOUNDARY + b"   \t\r\n"
        + part(b"a", b"1") + b"\r\n--" + BOUNDARY + b"--  \r\nepilogue --" + BOUNDARY
        + b"\r\n garbage"
    )
    assert fields(parse(body)) == [(b"a", None, b"1")]
    # A part without headers fails for want of Content-Disposition, after its
    # header block was correctly found empty.
    with pytest.raises(MultipartError, match="without Content-Disposition"):
        parse(b"--b\r\n\r\ndata\r\n--b--", b"b")


def test_empty_form() -> None:
    assert parse(b"--" + BOUNDARY + b"--\r\n") == []
    assert parse(b"--" + BOUNDARY + b"--") == []


def test_stdlib_email_body() -> None:
    """A body written by the stdlib email package, read back by both parsers."""
    utf8 = Charset("utf-8")
    utf8.body_encoding = None  # type: ignore[assignment]  # 8bit: part bodies are not decoded by us (RFC 7578 §4.7)
    message = MIMEMultipart("form-data", boundary="=====stdlib-boundary====")
    # The boundary as a prefix of a longer token is data, for both parsers.
    text = MIMEText("héllo\nworld\n\n--=====stdlib-boundary====X\n", "plain", cast(Any, utf8))
    text.add_header("Content-Disposition", "form-data", name="greeting")
    message.attach(text)
    blob = MIMEApplication(b"\x00\x01binary\r\n", "octet-stream", encode_7or8bit)
    blob.add_header("Content-Disposition", "form-data", name="blob", filename="b.bin")
    message.attach(blob)
    raw = message.as_bytes(policy=email.policy.HTTP)
    head, _, body = raw.partition(b"\r\n\r\n")
    content_type = [line for line in head.split(b"\r\n") if line.startswith(b"Content-Type")]
    boundary = get_boundary(content_type[0].partition(b":")[2])
    assert boundary == b"=====stdlib-boundary===="
    events = parse(body, boundary)
    stdlib_parts = cast(list[Message], email.message_from_bytes(raw).get_payload())
    assert fields(events) == [
        (b"greeting", None, stdlib_parts[0].get_payload(decode=True)),
        (b"blob", "b.bin", stdlib_parts[1].get_payload(decode=True)),
    ]
    assert fields(events)[0][2] == "héllo\r\nworld\r\n\r\n--=====stdlib-boundary====X\r\n".encode()
    heads = [e for e in events if isinstance(e, PartHead)]
    assert heads[0].content_type == b'text/plain; charset="utf-8"'
    assert heads[1].content_type == b"application/octet-stream"


def test_filename_forms() -> None:
    body = body_of(
        # RFC 8187 filename* wins over filename.
        b"Content-Disposition: form-data; name=f; filename=\"fallback.txt\"; "
        b"filename*=UTF-8''%E2%82%AC%20rates.txt\r\n\r\nx",
        b"Content-Disposition: form-data; name=g; filename*=iso-8859-1'en'%E9t%E9\r\n\r\ny",
        # Unknown charset or malformed ext-value: fall back to filename.
        b"Content-Disposition: form-data; name=h; filename=plain; filename*=nope'x'a\r\n\r\nz",
        b"Content-Disposition: form-data; name=i; filename=p; filename*=broken\r\n\r\nz",
        # Bare backslashes (Windows paths) stay; \" and \\ are unescaped.
        b'Content-Disposition: form-data; name=j; filename="C:\\dir\\a\\"b\\\\.txt"\r\n\r\n',
        b"content-disposition: FORM-DATA; NAME=k; FileName=raw\xff\r\n\r\n",
    )
    assert [(n, f) for n, f, _ in fields(parse(body))] == [
        (b"f", "€ rates.txt"),
        (b"g", "été"),
        (b"h", "plain"),
        (b"i", "p"),
        (b"j", 'C:\\dir\\a"b\\.txt'),
        (b"k", "raw\ufffd"),
    ]


def test_folded_header_and_extra_headers() -> None:
    body = body_of(
        b"Content-Disposition: form-data;\r\n\tname=\"folded\"\r\nX-Extra: 1\r\n\r\nv"
    )
    events = parse(body)
    assert fields(events) == [(b"folded", None, b"v")]
    head = events[0]
    assert isinstance(head, PartHead)
    assert head.headers == [
        (b"content-disposition", b'form-data; name="folded"'),
        (b"x-extra", b"1"),
    ]


# -- streaming -------------------------------------------------------------------------


def test_holds_back_only_a_possible_delimiter() -> None:
    parser = MultipartParser(b"boundary")
    assert parser.feed(b"--boundary\r\n" + part(b"a", b"")) == [
        PartHead([(b"content-disposition", b'form-data; name="a"')], b"a", None,
                 b"text/plain")
    ]
    assert parser.feed(b"x" * 1000) == [PartData(b"x" * 1000)]
    # Could be the start of "\r\n--boundary": held back, nothing else.
    assert parser.feed(b"yy\r\n--bound") == [PartData(b"yy")]
    # It was not: handed out with what follows (up to a new possible start).
    assert parser.feed(b"less\r") == [PartData(b"\r\n--boundless")]
    # The boundary as the prefix of a longer token is data.
    assert parser.feed(b"\n--boundary") == []
    assert merge(parser.feed(b"X")) == [PartData(b"\r\n--boundaryX")]
    assert parser.feed(b"\r\n--boundary--") == [PartEnd()]
    assert parser.close() == []
    # Input after the final boundary is ignored.
    assert parser.feed(b"\r\n--boundary\r\n") == []


def test_hold_back_never_exceeds_delimiter() -> None:
    parser = MultipartParser(BOUNDARY)
    parser.feed(b"--" + BOUNDARY + b"\r\n" + part(b"a", b""))
    emitted = 0
    fed = 0
    pieces = [b"\r", b"\n", b"-", b"-", BOUNDARY[:-1], b"x", b"\r\n\r\n", b"\r\n--",
              BOUNDARY, b"X", b"\r\n--" + BOUNDARY, b"Y"]
    for piece in pieces * 50:
        fed += len(piece)
        emitted += sum(len(e.data) for e in parser.feed(piece) if isinstance(e, PartData))
        assert fed - emitted <= len(BOUNDARY) + 4
    assert emitted == fed  # the last "Y" showed the held-back bytes were data
    assert parser.feed(b"\r\n--" + BOUNDARY + b"--") == [PartEnd()]


REAL_DELIMITER = re.compile(b"\r\n--" + re.escape(BOUNDARY) + b"([- \t\r]|$)")

part_data = st.lists(
    st.sampled_from([b"\r\n", b"\r", b"\n", b"-", b"--", b"x", b"\x00", BOUNDARY[:10],
                     b"--" + BOUNDARY[:-1], b"\r\n--" + BOUNDARY + b"X"]) | st.binary(max_size=8),
    max_size=20,
).map(b"".join)

form_parts = st.lists(
    st.tuples(st.binary(min_size=1, max_size=8).filter(lambda n: b'"' not in n
                                                       and b"\\" not in n
                                                       and b"\r" not in n
                                                       and b"\n" not in n),
              st.none() | st.sampled_from([b"", b"f.txt", b"\xc3\xa9.bin"]),
              part_data),
    max_size=5,
)


@given(form_parts, st.lists(st.integers(min_value=0, max_value=2000), max_size=12))
def test_any_split_gives_the_same_events(
    parts: list[tuple[bytes, bytes | None, bytes]], cuts: list[int]
) -> None:
    # A real delimiter inside data cannot round-trip; "\r\n--BOUNDARYX" can.
    assume(not any(REAL_DELIMITER.search(d) for _, _, d in parts))
    body = b"preamble\r\n" + body_of(*(part(n, d, f) for n, f, d in parts))
    whole = parse(body)
    assert parse(body, BOUNDARY, *cuts) == whole
    assert fields(whole) == [
        (n, None if f is None else f.decode("utf-8", "replace"), d) for n, f, d in parts
    ]


@given(st.binary(max_size=300), st.lists(st.integers(min_value=0, max_value=300)))
def test_garbage_only_raises_multipart_error(junk: bytes, cuts: list[int]) -> None:
    body = b"--b\r\nContent-Disposition: form-data; name=x\r\n" + junk
    try:
        parse(body, b"b", *cuts)
    except MultipartError:
        pass


def test_byte_at_a_time() -> None:
    body = body_of(part(b"a", b"1\r\n--x"), part(b"b", b"data", b"n.txt"))
    assert parse(body, BOUNDARY, *range(len(body))) == parse(body)


class Pattern(io.RawIOBase):
    """A readable body of ``size`` bytes made of one reused block: no big buffers."""

    def __init__(self, head: bytes, block: bytes, count: int, tail: bytes) -> None:
        self._pieces = iter([head, *([block] * count), tail])
        self._current = b""

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if not self._current:
            self._current = next(self._pieces, b"")
        piece, self._current = self._current[:size], self._current[size:]
        return piece


# Data full of near-delimiters, and a CR at the very end of every block.
BLOCK = (b"abc\r\n--" + BOUNDARY[:-2] + b"\r\n" + b"z" * 1000) * 63 + b"\r"
FIFTY_MIB = 50 * 1024 * 1024 // len(BLOCK)


def test_fifty_mib_part_streams_in_constant_memory() -> None:
    head = b"--" + BOUNDARY + b"\r\n" + part(b"big", b"", b"big.bin")
    tail = b"\r\n--" + BOUNDARY + b"--\r\n"
    source = Pattern(head, BLOCK, FIFTY_MIB, tail)
    parser = MultipartParser(BOUNDARY)
    total = 0
    ends = 0
    tracemalloc.start()
    try:
        while block := source.read(len(BLOCK)):
            for event in parser.feed(block):
                if isinstance(event, PartData):
                    total += len(event.data)
                elif isinstance(event, PartEnd):
                    ends += 1
        parser.close()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert total == len(BLOCK) * FIFTY_MIB >= 50 * 1024 * 1024 - len(BLOCK)
    assert ends == 1
    # A few blocks' worth (the buffer, the data handed out), never the part.
    assert peak < 8 * len(BLOCK), peak


def test_fifty_mib_file_spools_to_disk_in_bounded_memory() -> None:
    head = b"--" + BOUNDARY + b"\r\n" + part(b"big", b"", b"big.bin") + b"\r\n"
    body = Pattern(head[:-2], BLOCK, FIFTY_MIB, b"\r\n--" + BOUNDARY + b"--\r\n")
    tracemalloc.start()
    try:
        args, files = parse_multipart(
            cast(Any, body), BOUNDARY, spool_threshold=256 * 1024, block_size=len(BLOCK)
        )
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    [upload] = files[b"big"]
    try:
        assert upload.size == len(BLOCK) * FIFTY_MIB
        assert upload.file._rolled  # type: ignore[attr-defined]  # on disk
        assert upload.file.tell() == 0
        assert upload.read(len(BLOCK)) == BLOCK
        # Too big for args (Twisted compatibility stops at the cap).
        assert args == {}
    finally:
        upload.close()
    assert peak < 4 * 1024 * 1024, peak


# -- malformed input -------------------------------------------------------------------

GOOD_PART = part(b"a", b"1")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "no multipart boundary"),
        (b"no delimiter here at all\r\n", "no multipart boundary"),
        (b"--" + BOUNDARY[:-1] + b"\r\n", "no multipart boundary"),
        (b"--" + BOUNDARY + b"\r\n" + GOOD_PART, "before the final boundary"),
        (b"--" + BOUNDARY + b"\r\n" + GOOD_PART + b"\r\n--" + BOUNDARY, "final boundary"),
        (b"--" + BOUNDARY + b"\r\nContent-Disposition: form-data; name=a\r\n", "final"),
        # "--BOUNDARYX" is data (a longer token), so no delimiter is found.
        (b"--" + BOUNDARY + b"X\r\n" + GOOD_PART, "no multipart boundary"),
        (body_of(GOOD_PART)[:-4] + b"X\r\n", "before the final boundary"),
        (b"--" + BOUNDARY + b" x\r\n", "malformed boundary line"),
        (b"--" + BOUNDARY + b"\rx", "malformed boundary line"),
        (b"--" + BOUNDARY + b"-x", "malformed boundary line"),
        (b"--" + BOUNDARY + b" --\r\n", "malformed boundary line"),
        (b"--" + BOUNDARY + b" " * 300 + b"\r\n", "malformed boundary line"),
        (body_of(b"no colon here\r\n\r\n"), "malformed part header line"),
        (body_of(b": empty name\r\n\r\n"), "malformed part header line"),
        (body_of(b"Bad Name: x\r\n\r\n"), "malformed part header line"),
        (body_of(b" folded first\r\n\r\n"), "continuation first"),
        (body_of(b"Content-Type: text/plain\r\n\r\nx"), "without Content-Disposition"),
        (body_of(b"Content-Disposition: attachment; name=a\r\n\r\nx"), "not form-data"),
        (body_of(b"Content-Disposition: form-data; filename=a\r\n\r\nx"), "without a name"),
    ],
)
def test_malformed(body: bytes, message: str) -> None:
    for cuts in ([], list(range(len(body)))):
        with pytest.raises(MultipartError, match=message) as info:
            parse(body, BOUNDARY, *cuts)
        assert info.value.code == 400


def test_error_is_sticky() -> None:
    parser = MultipartParser(b"b")
    with pytest.raises(MultipartError, match="malformed boundary line"):
        parser.feed(b"--b x")
    with pytest.raises(MultipartError, match="malformed boundary line"):
        parser.feed(b"\r\n--b--")
    with pytest.raises(MultipartError, match="malformed boundary line"):
        parser.close()


@pytest.mark.parametrize(
    ("limits", "body", "message"),
    [
        (FormLimits(max_parts=2), body_of(GOOD_PART, GOOD_PART, GOOD_PART), "more than 2 parts"),
        (FormLimits(max_header_bytes=40), body_of(part(b"a" * 30, b"")), "headers larger"),
        (FormLimits(max_header_bytes=40), b"--b\r\n" + b"x" * 100, "headers larger"),
        (FormLimits(max_total_bytes=100), body_of(part(b"a", b"x" * 100)), "larger than 100"),
        (FormLimits(max_total_bytes=100), b"preamble " * 20, "larger than 100"),
    ],
)
def test_limits(limits: FormLimits, body: bytes, message: str) -> None:
    for cuts in ([], list(range(0, len(body), 7))):
        with pytest.raises(MultipartError, match=message) as info:
            parse(body, b"b" if body.startswith(b"--b\r\n") else BOUNDARY, *cuts,
                  limits=limits)
        assert info.value.code == 413


def test_limits_at_the_edge_pass() -> None:
    headers = b'Content-Disposition: form-data; name="a"'
    body = body_of(headers + b"\r\n\r\nv", headers + b"\r\n\r\nw")
    limits = FormLimits(max_parts=2, max_header_bytes=len(headers), max_total_bytes=len(body))
    assert fields(parse(body, BOUNDARY, limits=limits)) == [(b"a", None, b"v"),
                                                            (b"a", None, b"w")]
    with pytest.raises(MultipartError, match="headers larger"):
        parse(body, limits=FormLimits(max_header_bytes=len(headers) - 1))


# -- parse_multipart ---------------------------------------------------------------------


def test_parse_multipart_args_and_files() -> None:
    body = body_of(
        part(b"title", b"Hello\r\nWorld"),
        part(b"upload", b"file\r\ncontents", b"a.txt", b"text/plain"),
        part(b"upload", b"second", b"b.bin", b"application/octet-stream"),
        part(b"title", b""),
        part(b"none", b"", b""),
    )
    args, files = parse_multipart(io.BytesIO(body), BOUNDARY, block_size=7)
    try:
        # Twisted compatibility: file contents are in args too, in body order.
        assert args == {
            b"title": [b"Hello\r\nWorld", b""],
            b"upload": [b"file\r\ncontents", b"second"],
            b"none": [b""],
        }
        assert [(u.name, u.filename, u.content_type, u.size) for u in files[b"upload"]] == [
            (b"upload", "a.txt", b"text/plain", 14),
            (b"upload", "b.bin", b"application/octet-stream", 6),
        ]
        first = files[b"upload"][0]
        assert first.file.tell() == 0
        assert not first.file._rolled  # type: ignore[attr-defined]  # small: in memory
        assert first.read() == b"file\r\ncontents"
        assert files[b"none"][0].filename == ""
        assert set(files) == {b"upload", b"none"}
    finally:
        for uploads in files.values():
            for upload in uploads:
                upload.close()


def test_parse_multipart_caps() -> None:
    body = body_of(part(b"small", b"12345", b"s"), part(b"large", b"123456", b"l"))
    limits = FormLimits(max_file_arg_bytes=5)
    args, files = parse_multipart(io.BytesIO(body), BOUNDARY, limits=limits,
                                  spool_threshold=5)
    assert args == {b"small": [b"12345"]}
    assert files[b"large"][0].file._rolled  # type: ignore[attr-defined]
    assert files[b"large"][0].read() == b"123456"
    args, files = parse_multipart(io.BytesIO(body), BOUNDARY,
                                  limits=FormLimits(max_file_arg_bytes=0))
    assert args == {}
    args, files = parse_multipart(io.BytesIO(body), BOUNDARY,
                                  limits=FormLimits(max_file_arg_bytes=None))
    assert args == {b"small": [b"12345"], b"large": [b"123456"]}

    big_field = body_of(part(b"f", b"x" * 11))
    assert parse_multipart(io.BytesIO(big_field), BOUNDARY,
                           limits=FormLimits(max_field_bytes=11))[0] == {b"f": [b"x" * 11]}
    with pytest.raises(MultipartError, match="field larger than 10") as info:
        parse_multipart(io.BytesIO(big_field), BOUNDARY, limits=FormLimits(max_field_bytes=10))
    assert info.value.code == 413


def test_parse_multipart_closes_files_on_error(monkeypatch: pytest.MonkeyPatch) -> None:
    created: list[Any] = []
    original = tempfile.SpooledTemporaryFile

    def spy(*args: Any, **kwargs: Any) -> Any:
        created.append(original(*args, **kwargs))
        return created[-1]

    monkeypatch.setattr(tempfile, "SpooledTemporaryFile", spy)
    body = body_of(part(b"f", b"data", b"f.txt"), part(b"g", b"more", b"g.txt"))[:-10]
    with pytest.raises(MultipartError, match="final boundary"):
        parse_multipart(io.BytesIO(body), BOUNDARY)
    assert len(created) == 2
    assert all(f.closed for f in created)


def test_parse_multipart_reads_from_current_position() -> None:
    body = io.BytesIO(b"ignored" + body_of(part(b"a", b"1")))
    body.seek(7)
    assert parse_multipart(body, BOUNDARY) == ({b"a": [b"1"]}, {})


# -- curl -F ---------------------------------------------------------------------------


def capture_curl(arguments: list[str]) -> tuple[bytes, bytes]:
    """Run curl against a one-shot 127.0.0.1 server; return (Content-Type, body)."""
    curl = require_tool("curl")
    captured: dict[str, bytes] = {}
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(30)
        port = server.getsockname()[1]

        def serve() -> None:
            connection, _ = server.accept()
            with connection:
                connection.settimeout(30)
                data = b""
                while b"\r\n\r\n" not in data:
                    data += connection.recv(65536)
                head, _, body = data.partition(b"\r\n\r\n")
                lines = {k.strip().lower(): v.strip() for k, _, v in
                         (line.partition(b":") for line in head.split(b"\r\n")[1:])}
                while len(body) < int(lines[b"content-length"]):
                    body += connection.recv(65536)
                captured["type"], captured["body"] = lines[b"content-type"], body
                connection.sendall(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")

        thread = threading.Thread(target=serve)
        thread.start()
        try:
            subprocess.run(
                [curl, "-sS", "--noproxy", "*", "-H", "Expect:", *arguments,
                 f"http://127.0.0.1:{port}/"],
                check=True, timeout=30, capture_output=True,
            )
        finally:
            thread.join(timeout=30)
    return captured["type"], captured["body"]


def test_curl_form(tmp_path: Path) -> None:
    data = b"first line\r\n--\r\n--not-the-boundary\r\n" + bytes(range(256)) * 40
    upload = tmp_path / "data.bin"
    upload.write_bytes(data)
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    content_type, body = capture_curl([
        "-F", "text=hello world",
        "-F", "multi=a", "-F", "multi=b",
        "-F", "blank=",
        "-F", f"file=@{upload}",
        "-F", f"typed=@{upload};type=image/png;filename=naïve ü.png",
        "-F", f"empty=@{empty}",
    ])
    boundary = get_boundary(content_type)
    events = parse(body, boundary)
    assert parse(body, boundary, *range(0, len(body), 97)) == events
    assert fields(events) == [
        (b"text", None, b"hello world"),
        (b"multi", None, b"a"),
        (b"multi", None, b"b"),
        (b"blank", None, b""),
        (b"file", "data.bin", data),
        (b"typed", "naïve ü.png", data),
        (b"empty", "empty.txt", b""),
    ]
    heads = [e for e in events if isinstance(e, PartHead)]
    assert heads[5].content_type == b"image/png"
    args, files = parse_multipart(io.BytesIO(body), boundary)
    assert args[b"multi"] == [b"a", b"b"]
    assert args[b"typed"] == [data]
    assert files[b"typed"][0].read() == data


# -- urlencoded --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"", {}),
        (b"a=1&b=2&a=3", {b"a": [b"1", b"3"], b"b": [b"2"]}),
        (b"a=x+y%20z%2B", {b"a": [b"x y z+"]}),
        (b"a&&b=&=c&", {b"a": [b""], b"b": [b""], b"": [b"c"]}),
        (b"a=1;b=2", {b"a": [b"1;b=2"]}),  # ";" is not a separator
        (b"k%C3%A9=%E9%ff\xff", {b"k\xc3\xa9": [b"\xe9\xff\xff"]}),  # raw bytes kept
        (b"a=%zz%4", {b"a": [b"%zz%4"]}),  # bad escapes left alone
        (b"a=b=c", {b"a": [b"b=c"]}),
    ],
)
def test_parse_urlencoded(body: bytes, expected: dict[bytes, list[bytes]]) -> None:
    assert parse_urlencoded(body) == expected


no_surrogates = st.text(st.characters(blacklist_categories=["Cs"]), max_size=5)


@given(st.lists(st.tuples(no_surrogates, no_surrogates), max_size=10))
def test_urlencoded_matches_stdlib_on_utf8(pairs: list[tuple[str, str]]) -> None:
    body = "&".join(quote(k, safe="") + "=" + quote(v, safe=" ").replace(" ", "+")
                    for k, v in pairs)
    # The stdlib on str (its bytes mode fails on non-ASCII), re-encoded.
    expected = {
        k.encode(): [v.encode() for v in vs]
        for k, vs in parse_qs(body, keep_blank_values=True).items()
    }
    assert parse_urlencoded(body.encode()) == expected


def test_urlencoded_field_limit() -> None:
    assert len(parse_urlencoded(b"&".join([b"a=1"] * 5), max_fields=5)[b"a"]) == 5
    assert parse_urlencoded(b"&" * 100 + b"a", max_fields=1) == {b"a": [b""]}
    with pytest.raises(FormError, match="more than 5 form fields") as info:
        parse_urlencoded(b"&".join([b"a=1"] * 6), max_fields=5)
    assert info.value.code == 413


def test_docstring_examples() -> None:
    import doctest

    results = doctest.testmod(forms)
    assert results.attempted == 2
    assert results.failed == 0
