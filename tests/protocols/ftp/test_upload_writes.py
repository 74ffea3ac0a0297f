"""Uploads to the local filesystem: writev batches, short writes, resumed uploads."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from protocols.ftp.filesystem import LocalFilesystem


async def test_write_sequence_survives_short_writes(reactor: Any, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    real_writev = os.writev
    calls: list[int] = []

    def short_writev(fd: int, buffers: Any) -> int:
        # At most 7 bytes a call: every batch is cut mid-buffer.
        calls.append(len(buffers))
        head = b"".join(bytes(b) for b in buffers)[:7]
        return real_writev(fd, [head])

    monkeypatch.setattr(os, "writev", short_writev)
    fs = LocalFilesystem(tmp_path, reactor)
    upload = await fs.openForWriting("/f.bin")
    chunks = [bytes([n]) * (n + 1) for n in range(40)] + [b"", b"end"]
    await upload.writeSequence(chunks)
    await upload.write(b"+tail")
    await upload.commit()
    assert (tmp_path / "f.bin").read_bytes() == b"".join(chunks) + b"+tail"
    assert len(calls) > 100  # the short writes really happened


async def test_resumed_upload_is_cut_at_the_end_of_what_came(reactor: Any,
                                                             tmp_path: Path) -> None:
    (tmp_path / "f.bin").write_bytes(b"0123456789" * 10)
    fs = LocalFilesystem(tmp_path, reactor)
    upload = await fs.openForWriting("/f.bin", offset=20)
    await upload.writeSequence([b"abc", b"def"])
    await upload.commit()
    assert (tmp_path / "f.bin").read_bytes() == b"0123456789" * 2 + b"abcdef"
