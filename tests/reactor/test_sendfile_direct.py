"""reactor.sendfile's zero-copy path on every backend, uvloop's hybrid included.

uvloop has no ``loop.sendfile``: its connections call ``os.sendfile`` on the
socket themselves while the loop's write buffer is empty, and pass one small
read chunk through the transport when the socket is full (the loop's drain
says when it has room again). The same holds for asyncio when given a bare
descriptor. These tests count what ``os.sendfile`` carried, force the
socket-full case many times with a client that reads slowly, and check that
the bytes and their order survive it all, and that a lost connection fails
the transfer.
"""

from __future__ import annotations

import hashlib
import os
import socket
from pathlib import Path
from typing import Any

import pytest

from deferred import Deferred
from reactor.error import ConnectionDone, ConnectionLost
from reactor.sendfile import sendFile
from reactor.tcp import HIGH_WATER, LOW_WATER
from tests.reactor.test_sendfile import MIB, Sender, make_file, read_all, serve_once


class SendfileSpy:
    """Wraps ``os.sendfile``: bytes it carried, and how often the socket was full."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.real = os.sendfile
        self.sent = 0
        self.full = 0
        monkeypatch.setattr(os, "sendfile", self)

    def __call__(self, out_fd: int, in_fd: int, offset: Any, count: int, *args: Any,
                 **kwargs: Any) -> int:
        try:
            n: int = self.real(out_fd, in_fd, offset, count, *args, **kwargs)
        except BlockingIOError:
            self.full += 1
            raise
        self.sent += n
        return n


def read_slowly(port_number: int, piece: int = 4096, stop_after: int | None = None) -> bytes:
    """Connect with a small receive buffer and read in small pieces (in a thread).

    The server's socket fills again and again, and each time the reader
    drains a little. With ``stop_after``, reset the connection (unread data
    and SO_LINGER 0) once that many bytes were read.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: the window
        sock.settimeout(20)
        sock.connect(("127.0.0.1", port_number))
        chunks = []
        got = 0
        while stop_after is None or got < stop_after:
            data = sock.recv(piece)
            if not data:
                break
            chunks.append(data)
            got += len(data)
        if stop_after is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
        return b"".join(chunks)
    finally:
        sock.close()


def opener(path: Path, as_descriptor: bool) -> tuple[Any, Any]:
    """The file to send (object or bare descriptor) and how to close it."""
    if as_descriptor:
        fd = os.open(path, os.O_RDONLY)
        return fd, lambda: os.close(fd)
    f = open(path, "rb")  # noqa: SIM115 - closed by the caller when sent
    return f, f.close


def serve_with_small_send_buffer(reactor: Any, script: Any) -> tuple[Any, Sender]:
    """serve_once, with the server's send buffer fixed at 64 KiB.

    With autotuning the kernel may grow it to megabytes and take a whole file
    at once (it did, on select, in a full test run), and then the socket is
    never full: the paths these tests are about would not run.
    """
    def shrunk(proto: Sender) -> Any:
        handle = proto.transport.getHandle()
        handle.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
        return script(proto)

    return serve_once(reactor, shrunk)


@pytest.mark.parametrize("as_descriptor", [False, True], ids=["file", "fd"])
async def test_large_file_goes_out_by_sendfile_intact(
        reactor: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        as_descriptor: bool) -> None:
    data = make_file(tmp_path / "big", 24 * MIB + 4321)
    spy = SendfileSpy(monkeypatch)
    counts: list[int] = []

    def script(proto: Sender) -> Deferred[None]:
        t: Any = proto.transport
        f, close = opener(tmp_path / "big", as_descriptor)

        def sent(n: int) -> None:
            counts.append(n)
            close()
            t.loseConnection()

        return sendFile(t, f, 0, len(data)).addCallback(sent)

    port, sender = serve_once(reactor, script)
    got = await reactor.deferToThread(read_all, port.getHost().port)
    assert (await sender.done).value is None
    assert counts == [len(data)]
    assert hashlib.sha256(got).hexdigest() == hashlib.sha256(data).hexdigest()
    # Zero-copy on every backend now: most of the file never entered Python
    # (on uvloop only the small chunks sent while the socket was full did).
    assert spy.sent > len(data) // 2, (spy.sent, len(data))
    assert isinstance(await sender.lost, ConnectionDone)
    await port.stopListening()


async def test_slow_reader_many_full_sockets_order_kept(
        reactor: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = make_file(tmp_path / "f", 6 * MIB + 99)
    spy = SendfileSpy(monkeypatch)
    limits: list[Any] = []

    def script(proto: Sender) -> Deferred[None]:
        t: Any = proto.transport
        f, close = opener(tmp_path / "f", reactor.name == "asyncio")
        # A large write first: the loop still holds some of it when the file
        # starts, so the file must wait behind it, not overtake it.
        t.write(b"A" * (3 * MIB))
        d1 = sendFile(t, f, 0, len(data))
        t.write(b"between")
        d2 = sendFile(t, f, 10, 1000)

        def sent(_: Any) -> None:
            close()
            t.write(b"after")
            loop_transport = getattr(t, "_transport", None)
            if loop_transport is not None:  # asyncio/uvloop: their own limits again
                limits.append(loop_transport.get_write_buffer_limits())
            t.loseConnection()

        return d1.addCallback(lambda _: d2).addCallback(sent)

    port, sender = serve_with_small_send_buffer(reactor, script)
    got = await reactor.deferToThread(read_slowly, port.getHost().port)
    assert (await sender.done).value is None
    assert len(got) == 3 * MIB + len(data) + 7 + 1000 + 5
    assert got == b"A" * (3 * MIB) + data + b"between" + data[10:1010] + b"after"
    assert spy.full >= 3, spy.full  # the socket was full again and again
    assert spy.sent > 0
    assert limits == ([] if reactor.name == "select" else [(LOW_WATER, HIGH_WATER)])
    await port.stopListening()


async def test_reset_while_the_socket_is_full_fails_everything_queued(
        reactor: Any, tmp_path: Path) -> None:
    make_file(tmp_path / "f", 32 * MIB)
    files: list[Any] = []
    outcomes: list[Any] = []
    # The queued file's outcome: on the asyncio backends it may come a loop
    # turn after connectionLost (the loop tells the protocol first).
    settled: Deferred[None] = Deferred()

    def settle(result: Any) -> None:
        outcomes.append(result)
        settled.callback(None)

    def script(proto: Sender) -> Deferred[Any]:
        t: Any = proto.transport
        f = open(tmp_path / "f", "rb")  # noqa: SIM115 - closed by the test
        files.append(f)
        d1 = sendFile(t, f, 0, 32 * MIB)
        t.write(b"held until the file is sent")
        d2 = sendFile(t, f, 0, 10)
        d2.addBoth(settle)
        return d1

    port, sender = serve_with_small_send_buffer(reactor, script)
    try:
        got = await reactor.deferToThread(read_slowly, port.getHost().port, 4096, 200_000)
        assert len(got) >= 200_000
        outcome = (await sender.done).value
        # A failure, never a count: 32 MiB cannot fit in the socket buffers.
        assert hasattr(outcome, "check"), outcome
        assert outcome.check(ConnectionLost, ConnectionDone)
        lost = await sender.lost
        assert isinstance(lost, (ConnectionLost, ConnectionDone))
        await settled
        assert len(outcomes) == 1 and outcomes[0].check(ConnectionLost, ConnectionDone)
        assert getattr(sender.transport, "disconnected", None) is True
    finally:
        for f in files:
            f.close()
        await port.stopListening()
    # The reactor fixture then checks that no descriptor was leaked.


async def test_writes_interleaved_with_files_keep_their_order(
        reactor: Any, tmp_path: Path) -> None:
    data = make_file(tmp_path / "f", 2 * MIB + 3)
    expected: list[bytes] = []

    def script(proto: Sender) -> Deferred[Any]:
        t: Any = proto.transport
        f = open(tmp_path / "f", "rb")  # noqa: SIM115 - closed when sent
        ds = []
        for i in range(6):
            # Alternate small and large writes, so the loop's buffer is
            # sometimes empty and sometimes not when a file starts.
            before = (b"%d<" % i) * (1 if i % 2 else 200_000)
            t.write(before)
            offset, count = i * 1000, len(data) - i * 3000
            ds.append(sendFile(t, f, offset, count))
            t.writeSequence([b">", b"%d" % i])
            expected.extend([before, data[offset:offset + count], b">%d" % i])

        def close(_: Any) -> None:
            f.close()
            t.write(b"end")
            t.loseConnection()

        return ds[-1].addCallback(close)

    port, sender = serve_with_small_send_buffer(reactor, script)
    got = await reactor.deferToThread(read_slowly, port.getHost().port, 65536)
    assert (await sender.done).value is None
    want = b"".join(expected) + b"end"
    assert len(got) == len(want)
    assert got == want
    await port.stopListening()


def file_in_flight(transport: Any) -> bool:
    """Whether the transport is still sending a file (backend internals)."""
    if hasattr(transport, "_file_task"):  # asyncio/uvloop
        return transport._file_task is not None
    return bool(transport._file_jobs)  # select


class Flood:
    """A push producer writing 32 KiB pieces for as long as it is not paused."""

    PIECE = 32 * 1024

    def __init__(self, transport: Any, total: int) -> None:
        self.transport = transport
        self.total = total
        self.written = 0
        self.paused = False
        self.resumed_during_file = 0

    def resumeProducing(self) -> None:
        if self.written and file_in_flight(self.transport):
            self.resumed_during_file += 1
        self.paused = False
        while not self.paused and self.written < self.total:
            self.transport.write(b"p" * self.PIECE)
            self.written += self.PIECE
        if self.written >= self.total and self.transport.producer is self:
            self.transport.unregisterProducer()
            self.transport.loseConnection()

    def pauseProducing(self) -> None:
        self.paused = True

    def stopProducing(self) -> None:
        self.paused = True


async def test_producer_writing_behind_a_file_stays_bounded(
        reactor: Any, tmp_path: Path) -> None:
    """Writes held behind a file pause a push producer until the file is sent,
    however often the socket drains meanwhile (memory stays bounded)."""
    data = make_file(tmp_path / "f", 4 * MIB)
    floods: list[Flood] = []
    first_burst: list[int] = []

    def script(proto: Sender) -> Deferred[None]:
        t: Any = proto.transport
        f = open(tmp_path / "f", "rb")  # noqa: SIM115 - closed when sent
        d = sendFile(t, f, 0, len(data))
        assert file_in_flight(t)
        flood = Flood(t, 2 * MIB)
        floods.append(flood)
        t.registerProducer(flood, True)
        flood.resumeProducing()
        first_burst.append(flood.written)
        return d.addCallback(lambda _: f.close())

    port, sender = serve_with_small_send_buffer(reactor, script)
    got = await reactor.deferToThread(read_slowly, port.getHost().port)
    assert (await sender.done).value is None
    assert got == data + b"p" * (2 * MIB)
    # Paused once past the high-water mark (at most the mark plus one piece
    # held behind the file), and not resumed until the file was out.
    assert 0 < first_burst[0] <= HIGH_WATER + Flood.PIECE, first_burst
    assert floods[0].resumed_during_file == 0
    await port.stopListening()
