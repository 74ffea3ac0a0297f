"""TYPE A newline conversion, REST with STOR, and throttled transfers.

The converters and the throttle are tested with bytes and a fake clock alone;
the server against ftplib and raw data connections on every backend.
"""

from __future__ import annotations

import ftplib
import hashlib
import io
import os
import random
from pathlib import Path
from typing import Any

import pytest

from protocols.ftp._streams import (
    ChunkSender,
    FromNetworkNewlines,
    ThrottledUpload,
    ToNetworkNewlines,
    lineChunks,
)
from protocols.ftp.filesystem import LocalFilesystem
from reactor.sendfile import CHUNK_SIZE
from reactor.testing import Clock, StringTransport
from tests.protocols.ftp.test_server import code_of, run, session

# Every kind of line end, and a CR LF cut by the 256 KiB chunk boundary of the sender.
MIXED = b"a\nb\r\nc\rd\n\n\r\r\n" + b"x" * (CHUNK_SIZE - 14) + b"\r\n" + b"tail\n"


def wire(text: bytes) -> bytes:
    """What TYPE A sends for file bytes ``text`` (every LF preceded by CR)."""
    return text.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def _cuts(data: bytes, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    pieces, i = [], 0
    while i < len(data):
        n = rng.randint(1, 5)
        pieces.append(data[i:i + n])
        i += n
    return pieces


# -- converters, bytes only ---------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_to_network_newlines_does_not_depend_on_the_cuts(seed: int) -> None:
    data = MIXED[:40] + b"\r" + b"\n" * 3 + b"\r\r\n\n"
    convert = ToNetworkNewlines()
    assert b"".join(convert.feed(piece) for piece in _cuts(data, seed)) == wire(data)


@pytest.mark.parametrize("seed", range(5))
def test_from_network_newlines_does_not_depend_on_the_cuts(seed: int) -> None:
    data = b"one\r\ntwo\r\n\r\nlone\rcr\r\r\nend\r"
    convert = FromNetworkNewlines()
    out = b"".join(convert.feed(piece) for piece in _cuts(data, seed)) + convert.flush()
    assert out == b"one\ntwo\n\nlone\rcr\r\nend\r"


def test_line_chunks_are_bounded_and_lazy() -> None:
    made = []

    def lines() -> Any:
        for i in range(1000):
            made.append(i)
            yield f"line {i:04d}"

    source = lineChunks(lines(), size=100)
    first = source()
    assert first is not None and first.startswith(b"line 0000\r\nline 0001\r\n")
    assert 100 <= len(first) < 120 and len(made) < 20  # the rest is not made yet
    rest = b""
    while (chunk := source()) is not None:
        rest += chunk
    assert (first + rest).count(b"\r\n") == 1000


# -- the throttle, with a fake clock -----------------------------------------------------


def test_chunk_sender_keeps_to_the_limit() -> None:
    clock = Clock()
    transport = StringTransport()
    chunks = iter([b"a" * 100] * 5)
    sender = ChunkSender(transport, lambda: next(chunks, None), clock, limit=100)
    d = sender.start()
    # One chunk is a second's worth: the sender waits before the next.
    assert transport.value() == b"a" * 100 and not d.called
    clock.advance(0.5)
    assert len(transport.value()) == 100
    clock.advance(0.5)
    assert len(transport.value()) == 200
    clock.pump([1.0] * 4)
    assert len(transport.value()) == 500 and d.called
    assert transport.producer is None  # unregistered at the end


def test_chunk_sender_obeys_the_transport_and_fails_when_lost() -> None:
    clock = Clock()
    transport = StringTransport()
    count = 0

    def source() -> bytes:
        nonlocal count
        count += 1
        if count == 3:
            transport.producer.pauseProducing()  # type: ignore[union-attr]
        return b"x"

    sender = ChunkSender(transport, source, clock)
    d = sender.start()
    assert transport.value() == b"xxx"
    failures: list[Any] = []
    d.addErrback(failures.append)
    sender.stopProducing()
    assert len(failures) == 1 and "lost after 3 bytes" in str(failures[0].value)


def test_throttled_upload_waits_between_writes() -> None:
    from deferred import succeed

    clock = Clock()
    written: list[bytes] = []

    class Upload:
        def write(self, data: bytes) -> Any:
            written.append(data)
            return succeed(None)

        def commit(self) -> Any:
            return succeed(None)

        def abort(self) -> Any:
            return succeed(None)

    upload = ThrottledUpload(Upload(), clock, limit=1000)
    done: list[object] = []
    upload.write(b"x" * 500).addCallback(done.append)
    assert written == [b"x" * 500] and done == []
    clock.advance(0.4)
    assert done == []
    clock.advance(0.1)
    assert done == [None]


# -- TYPE A against the server -------------------------------------------------------------


def _download_raw(ftp: ftplib.FTP, command: str, rest: int | None = None) -> bytes:
    conn = ftp.transfercmd(command, rest)
    with conn:
        data = b""
        while piece := conn.recv(1 << 16):
            data += piece
    ftp.voidresp()
    return data


async def test_type_a_converts_downloads_and_listings(reactor: Any, tmp_path: Path) -> None:
    (tmp_path / "mixed.txt").write_bytes(MIXED)

    def client(number: int) -> list[Any]:
        ftp = session(number)
        out: list[Any] = [ftp.sendcmd("TYPE A"), _download_raw(ftp, "RETR mixed.txt")]
        try:
            ftp.sendcmd("SIZE mixed.txt")
        except ftplib.error_perm as e:
            out.append(str(e))
        out.append(_download_raw(ftp, "LIST"))
        out += [ftp.sendcmd("TYPE I"), _download_raw(ftp, "RETR mixed.txt"),
                ftp.sendcmd("SIZE mixed.txt")]
        ftp.quit()
        return out

    type_a, ascii, size_a, listing, type_i, binary, size_i = await run(reactor, tmp_path,
                                                                       client)
    assert (type_a, type_i) == ("200 Type set to A.", "200 Type set to I.")
    assert ascii == wire(MIXED)
    assert size_a == "550 SIZE not allowed in ASCII mode."
    assert listing.endswith(b" mixed.txt\r\n")
    assert binary == MIXED
    assert size_i == f"213 {len(MIXED)}"


async def test_type_a_converts_uploads(reactor: Any, tmp_path: Path) -> None:
    sent = b"one\r\ntwo\r\n" * 50000 + b"bare\nlone\rend\r"

    def client(number: int) -> None:
        ftp = session(number)
        ftp.voidcmd("TYPE A")
        for command in ("STOR a.txt", "APPE a.txt"):
            conn = ftp.transfercmd(command)
            with conn:
                for i in range(0, len(sent), 4093):  # cuts that split CR LF pairs
                    conn.sendall(sent[i:i + 4093])
            ftp.voidresp()
        ftp.voidcmd("TYPE I")
        ftp.storbinary("STOR b.bin", io.BytesIO(sent))
        ftp.quit()

    await run(reactor, tmp_path, client)
    converted = b"one\ntwo\n" * 50000 + b"bare\nlone\rend\r"
    assert (tmp_path / "a.txt").read_bytes() == converted * 2
    assert (tmp_path / "b.bin").read_bytes() == sent
    assert sorted(os.listdir(tmp_path)) == ["a.txt", "b.bin"]


# -- REST and STOR ---------------------------------------------------------------------


async def test_rest_stor_resumes_in_place_and_rest_is_reset(reactor: Any,
                                                            tmp_path: Path) -> None:
    (tmp_path / "part.bin").write_bytes(b"0123456789")
    (tmp_path / "cut.bin").write_bytes(b"0123456789")

    def client(number: int) -> list[str]:
        ftp = session(number)
        out = []
        ftp.voidcmd("TYPE I")
        ftp.storbinary("STOR part.bin", io.BytesIO(b"ABCDEF"), rest=4)
        ftp.storbinary("STOR cut.bin", io.BytesIO(b"xy"), rest=2)  # cut after the data
        try:
            ftp.storbinary("STOR cut.bin", io.BytesIO(b"z"), rest=99)
        except ftplib.error_perm as e:
            out.append(code_of(e))
        # REST is spent by a transfer: the next ones start at 0.
        ftp.sendcmd("REST 3")
        out.append(_download_raw(ftp, "RETR part.bin").decode())
        out.append(_download_raw(ftp, "RETR part.bin").decode())
        ftp.sendcmd("REST 3")
        _download_raw(ftp, "NLST")
        ftp.storbinary("STOR whole.bin", io.BytesIO(b"whole"))
        ftp.quit()
        return out

    got = await run(reactor, tmp_path, client)
    assert got == ["554", "3ABCDEF", "0123ABCDEF"]
    assert (tmp_path / "part.bin").read_bytes() == b"0123ABCDEF"
    assert (tmp_path / "cut.bin").read_bytes() == b"01xy"
    assert (tmp_path / "whole.bin").read_bytes() == b"whole"
    assert sorted(os.listdir(tmp_path)) == ["cut.bin", "part.bin", "whole.bin"]


async def test_an_aborted_resumed_upload_keeps_what_came(reactor: Any,
                                                         tmp_path: Path) -> None:
    # In place by design: what arrived stays, cut there, for the next REST.
    (tmp_path / "f").write_bytes(b"0123456789")
    fs = LocalFilesystem(tmp_path, reactor)
    upload = await fs.openForWriting("/f", offset=5)
    await upload.write(b"ABC")
    await upload.abort()
    assert (tmp_path / "f").read_bytes() == b"01234ABC"
    assert os.listdir(tmp_path) == ["f"]


# -- throttled transfers end to end -----------------------------------------------------------


async def test_throttled_transfers_arrive_whole(reactor: Any, tmp_path: Path) -> None:
    data = os.urandom(3 * CHUNK_SIZE // 2)
    (tmp_path / "down.bin").write_bytes(data)
    (tmp_path / "text.txt").write_bytes(MIXED)

    def client(number: int) -> tuple[str, bytes]:
        ftp = session(number)
        ftp.voidcmd("TYPE I")
        digest = hashlib.sha256()
        ftp.retrbinary("RETR down.bin", digest.update)
        ftp.storbinary("STOR up.bin", io.BytesIO(data), blocksize=1 << 16)
        ftp.voidcmd("TYPE A")
        text = _download_raw(ftp, "RETR text.txt")
        ftp.quit()
        return digest.hexdigest(), text

    got, text = await run(reactor, tmp_path, client, readLimit=4 << 20, writeLimit=4 << 20)
    assert got == hashlib.sha256(data).hexdigest()
    assert (tmp_path / "up.bin").read_bytes() == data
    assert text == wire(MIXED)
