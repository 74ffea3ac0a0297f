"""Our FTP client against our FTP server, on every backend."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import pytest

from protocols.ftp import FTPCommandError, FTPFactory, connectFTP

MIB = 1024 * 1024


def serve(reactor: Any, root: Path) -> tuple[Any, int]:
    factory = FTPFactory(str(root), checker=lambda u, p: (u, p) == ("alice", "s3cret"),
                         failedLoginDelay=0.0, reactor=reactor)
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    return port, port.getHost().port


async def test_upload_list_download_rename_delete(reactor: Any, tmp_path: Path) -> None:
    data = bytes(range(256)) * (3 * MIB // 256)
    port, number = serve(reactor, tmp_path)
    client = await connectFTP(reactor, "127.0.0.1", number, "alice", "s3cret")
    try:
        await client.makeDirectory("/up")
        await client.cwd("/up")
        await client.storeFile("data.bin", io.BytesIO(data))
        assert (tmp_path / "up" / "data.bin").read_bytes() == data
        entries = await client.mlsd()
        assert [(e.name, e.size) for e in entries] == [("data.bin", len(data))]
        assert await client.nlst() == ["data.bin"]
        assert await client.size("data.bin") == len(data)
        sink = io.BytesIO()
        await client.retrieveFile("data.bin", sink)
        assert hashlib.sha256(sink.getvalue()).digest() == hashlib.sha256(data).digest()
        tail = io.BytesIO()
        await client.retrieveFile("data.bin", tail, offset=len(data) - 10)
        assert tail.getvalue() == data[-10:]
        await client.rename("data.bin", "renamed.bin")
        await client.delete("renamed.bin")
        assert not any((tmp_path / "up").iterdir())
        with pytest.raises(FTPCommandError) as caught:
            await client.retrieveFile("/../../etc/passwd", io.BytesIO())
        assert caught.value.code == 550
    finally:
        await client.quit()
        await port.stopListening()


async def test_bad_login_is_530(reactor: Any, tmp_path: Path) -> None:
    port, number = serve(reactor, tmp_path)
    with pytest.raises(FTPCommandError) as caught:
        await connectFTP(reactor, "127.0.0.1", number, "alice", "wrong")
    assert caught.value.code == 530
    await port.stopListening()
