"""reactor.sendfile: files over real loopback connections, on every backend.

The server side writes with ``sendFile``; a blocking client in a worker
thread reads everything and the bytes are compared. On select and asyncio
the transfer is zero-copy (``os.sendfile``); on uvloop, whose
``loop.sendfile`` is not implemented, the read loop carries it, and the same
tests hold.
"""

from __future__ import annotations

import hashlib
import os
import socket
import struct
from pathlib import Path
from typing import Any

import pytest

from deferred import Deferred
from protocols import Factory, Protocol
from reactor.error import ConnectionAborted, ConnectionDone, ConnectionLost
from reactor.sendfile import canSendFile, sendFile

MIB = 1024 * 1024


def make_file(path: Path, size: int) -> bytes:
    """A file of ``size`` bytes that no two offsets confuse (a counter pattern)."""
    block = b"".join(struct.pack(">I", i) for i in range(MIB // 4))
    data = (block * (size // len(block) + 1))[:size]
    data = hashlib.sha256(b"salt").digest() + data[32:]  # not even block-aligned
    path.write_bytes(data)
    return data


class Box:
    def __init__(self, value: Any) -> None:
        self.value = value


class Sender(Protocol):
    """On connect: run ``script(self)``, which returns a Deferred; record its outcome."""

    def __init__(self, script: Any) -> None:
        self.script = script
        self.done: Deferred[Any] = Deferred()
        self.lost: Deferred[Any] = Deferred()

    def connectionMade(self) -> None:
        d = self.script(self)
        d.addBoth(self._finished)

    def _finished(self, result: Any) -> None:
        # Boxed, so a failure is delivered as a value for the test to inspect.
        self.done.callback(Box(result))

    def connectionLost(self, reason: Any) -> None:
        self.lost.callback(reason.value)


def serve_once(reactor: Any, script: Any) -> tuple[Any, Sender]:
    sender = Sender(script)
    factory = Factory()
    factory.buildProtocol = lambda addr: sender  # type: ignore[method-assign]
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    return port, sender


def read_all(port_number: int) -> bytes:
    """Connect, read until the server closes, return everything (in a thread)."""
    with socket.create_connection(("127.0.0.1", port_number), timeout=20) as sock:
        chunks = []
        while True:
            data = sock.recv(1 << 20)
            if not data:
                return b"".join(chunks)
            chunks.append(data)


def test_can_send_file_per_backend(reactor: Any) -> Deferred[None]:
    """Zero-copy where the loop has it; uvloop's loop.sendfile is not implemented."""
    seen: list[bool] = []

    def script(proto: Sender) -> Deferred[None]:
        seen.append(canSendFile(proto.transport))
        proto.transport.loseConnection()
        return _fired()

    port, _sender = serve_once(reactor, script)
    d = reactor.deferToThread(read_all, port.getHost().port)

    def check(_: Any) -> Any:
        assert seen == [reactor.name != "uvloop"]
        assert canSendFile(object()) is False
        return port.stopListening()

    return d.addCallback(check)


def _fired() -> Deferred[None]:
    d: Deferred[None] = Deferred()
    d.callback(None)
    return d


async def test_multi_mib_file_with_writes_before_during_and_after(
        reactor: Any, tmp_path: Path) -> None:
    data = make_file(tmp_path / "big", 6 * MIB + 12345)
    sizes: list[int] = []

    def script(proto: Sender) -> Deferred[None]:
        t = proto.transport
        f = open(tmp_path / "big", "rb")  # noqa: SIM115 - closed when sent
        t.write(b"BEFORE")
        d = sendFile(t, f, 0, len(data))
        t.write(b"DURING")  # must wait behind the whole file
        t.writeSequence([b"SEQ1", b"SEQ2"])

        def sent(n: int) -> None:
            sizes.append(n)
            assert f.tell() == len(data)
            f.close()
            t.write(b"AFTER")
            t.loseConnection()

        return d.addCallback(sent)

    port, sender = serve_once(reactor, script)
    got = await reactor.deferToThread(read_all, port.getHost().port)
    assert (await sender.done).value is None
    assert sizes == [len(data)]
    assert len(got) == len(data) + 25
    assert got == b"BEFORE" + data + b"DURINGSEQ1SEQ2AFTER"
    assert isinstance(await sender.lost, ConnectionDone)
    await port.stopListening()


async def test_offsets_counts_and_files_back_to_back(reactor: Any, tmp_path: Path) -> None:
    data = make_file(tmp_path / "f", 3 * MIB)
    pieces = [(0, 10), (MIB - 3, 2 * MIB), (len(data) - 1, 1), (5, 0), (100, None)]
    results: list[int] = []

    def script(proto: Sender) -> Deferred[Any]:
        t = proto.transport
        f = open(tmp_path / "f", "rb")  # noqa: SIM115 - closed when sent
        ds = []
        for offset, count in pieces:
            ds.append(sendFile(t, f, offset, count).addCallback(results.append))
            t.write(b"|")

        def close(_: Any) -> None:
            f.close()
            t.loseConnection()

        return ds[-1].addCallback(close)

    port, sender = serve_once(reactor, script)
    got = await reactor.deferToThread(read_all, port.getHost().port)
    await sender.done
    expected = b"|".join(data[o:] if c is None else data[o:o + c] for o, c in pieces) + b"|"
    assert got == expected
    # The pieces report in order; an empty one is done at once (so where it
    # lands among the others depends on how fast the socket drained).
    assert [n for n in results if n] == [10, 2 * MIB, 1, len(data) - 100]
    assert results.count(0) == 1
    await port.stopListening()


async def test_count_past_the_end_sends_what_there_is(reactor: Any, tmp_path: Path) -> None:
    data = make_file(tmp_path / "f", 1000)
    results: list[int] = []

    def script(proto: Sender) -> Deferred[Any]:
        f = open(tmp_path / "f", "rb")  # noqa: SIM115 - closed when sent

        def close(n: int) -> None:
            results.append(n)
            f.close()
            proto.transport.loseConnection()

        return sendFile(proto.transport, f, 900, 5000).addCallback(close)

    port, sender = serve_once(reactor, script)
    got = await reactor.deferToThread(read_all, port.getHost().port)
    await sender.done
    assert got == data[900:] and results == [100]
    await port.stopListening()


def reset_after_a_little(port_number: int) -> int:
    """Read a little, then close with unread data (the kernel answers with RST)."""
    sock = socket.create_connection(("127.0.0.1", port_number), timeout=20)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        got = 0
        while got < 100_000:
            chunk = sock.recv(65536)
            if not chunk:
                break
            got += len(chunk)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        return got
    finally:
        sock.close()


async def test_peer_closing_mid_transfer_fails_the_deferred(
        reactor: Any, tmp_path: Path) -> None:
    make_file(tmp_path / "f", 48 * MIB)
    files: list[Any] = []

    def script(proto: Sender) -> Deferred[Any]:
        f = open(tmp_path / "f", "rb")  # noqa: SIM115 - closed when sent
        files.append(f)
        return sendFile(proto.transport, f, 0, 48 * MIB)

    port, sender = serve_once(reactor, script)
    got = await reactor.deferToThread(reset_after_a_little, port.getHost().port)
    assert got >= 100_000
    outcome = (await sender.done).value
    # A failure, never a count: 48 MiB cannot fit in the socket buffers.
    assert hasattr(outcome, "check"), outcome
    assert outcome.check(ConnectionLost, ConnectionDone)
    assert isinstance(await sender.lost, (ConnectionLost, ConnectionDone))
    files[0].close()
    await port.stopListening()
    # The reactor fixture then checks that no descriptor was leaked.


async def test_abort_during_transfer_fails_the_deferred(reactor: Any, tmp_path: Path) -> None:
    make_file(tmp_path / "f", 48 * MIB)
    files: list[Any] = []

    def script(proto: Sender) -> Deferred[Any]:
        # A small, fixed send buffer and the abort on the next loop turn: only
        # the reactor's thread moves file bytes into the socket, so however
        # busy the machine, 48 MiB cannot all be out by then (a timer of a
        # millisecond could be late enough for a fast reader to get it all).
        proto.transport.getHandle().setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
        f = open(tmp_path / "f", "rb")  # noqa: SIM115 - closed when sent
        files.append(f)
        d = sendFile(proto.transport, f, 0, 48 * MIB)
        proto.transport.write(b"never sent")
        reactor.callLater(0, proto.transport.abortConnection)
        return d

    port, sender = serve_once(reactor, script)
    got = await reactor.deferToThread(read_all, port.getHost().port)
    outcome = (await sender.done).value
    assert hasattr(outcome, "check"), outcome
    assert outcome.check(ConnectionAborted, ConnectionLost)
    assert len(got) < 48 * MIB and b"never sent" not in got
    await sender.lost
    files[0].close()
    await port.stopListening()


async def test_sendfile_after_close_fails(reactor: Any, tmp_path: Path) -> None:
    make_file(tmp_path / "f", 100)
    outcomes: list[Any] = []

    def script(proto: Sender) -> Deferred[Any]:
        proto.transport.loseConnection()
        with open(tmp_path / "f", "rb") as f:
            d = sendFile(proto.transport, f, 0, 100)
        d.addErrback(outcomes.append)
        return _fired()

    port, _sender = serve_once(reactor, script)
    got = await reactor.deferToThread(read_all, port.getHost().port)
    assert got == b""
    assert len(outcomes) == 1 and outcomes[0].check(ConnectionLost)
    await port.stopListening()


@pytest.mark.parametrize("size", [0, 1])
def test_tiny_files(reactor: Any, tmp_path: Path, size: int) -> Deferred[None]:
    data = make_file(tmp_path / "f", 64)[:size]
    (tmp_path / "f").write_bytes(data)

    def script(proto: Sender) -> Deferred[Any]:
        f = open(tmp_path / "f", "rb")  # noqa: SIM115 - closed when sent

        def close(n: int) -> None:
            assert n == size
            f.close()
            proto.transport.loseConnection()

        return sendFile(proto.transport, f).addCallback(close)

    port, _sender = serve_once(reactor, script)
    d = reactor.deferToThread(read_all, port.getHost().port)

    def check(got: bytes) -> Any:
        assert got == data
        return port.stopListening()

    return d.addCallback(check)


def test_read_loop_for_files_that_are_not_regular(reactor: Any) -> Deferred[None]:
    """A pipe cannot be sendfile'd from: the read loop serves it on every backend."""
    read_end, write_end = os.pipe()
    os.write(write_end, b"piped bytes")
    os.close(write_end)

    def script(proto: Sender) -> Deferred[Any]:
        def close(n: int) -> None:
            assert n == 11
            os.close(read_end)
            proto.transport.loseConnection()

        # pread does not work on a pipe: this fails, the connection stays open.
        return sendFile(proto.transport, read_end, 0, 11).addBoth(
            lambda r: (proto.transport.write(b"fallback failed"), os.close(read_end),
                       proto.transport.loseConnection()) if hasattr(r, "check") else close(r))

    port, _sender = serve_once(reactor, script)
    d = reactor.deferToThread(read_all, port.getHost().port)

    def check(got: bytes) -> Any:
        assert got == b"fallback failed"
        return port.stopListening()

    return d.addCallback(check)


async def test_tls_uses_the_read_loop_in_order(reactor: Any, tmp_path: Path) -> None:
    """Under TLS bytes must pass through the cipher: no sendfile, same guarantees."""
    trustme = pytest.importorskip("trustme")
    import ssl

    ca = trustme.CA()
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("localhost").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    data = make_file(tmp_path / "f", 3 * MIB + 7)
    seen: list[bool] = []

    def script(proto: Sender) -> Deferred[Any]:
        t = proto.transport
        seen.append(canSendFile(t))
        f = open(tmp_path / "f", "rb")  # noqa: SIM115 - closed when sent
        t.write(b"<")
        d1 = sendFile(t, f, 0, len(data))
        t.write(b"|")
        d2 = sendFile(t, f, 0, 10)
        t.write(b">")
        t.loseConnection()  # after everything above

        def sent(_: Any) -> None:
            f.close()

        return d1.addCallback(lambda _: d2).addCallback(sent)

    sender = Sender(script)
    factory = Factory()
    factory.buildProtocol = lambda addr: sender  # type: ignore[method-assign]
    port = reactor.listenSSL(0, factory, server_ctx, interface="127.0.0.1")

    def read_tls(number: int) -> bytes:
        with socket.create_connection(("127.0.0.1", number), timeout=20) as raw, \
                client_ctx.wrap_socket(raw, server_hostname="localhost") as sock:
            chunks = []
            while True:
                chunk = sock.recv(1 << 20)
                if not chunk:
                    return b"".join(chunks)
                chunks.append(chunk)

    got = await reactor.deferToThread(read_tls, port.getHost().port)
    assert (await sender.done).value is None
    assert seen == [False]
    assert got == b"<" + data + b"|" + data[:10] + b">"
    await port.stopListening()
