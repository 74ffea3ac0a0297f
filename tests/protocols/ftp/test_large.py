"""A 256 MiB file through our FTP server, both ways, in bounded server memory.

The file is generated: sparse on disk (a hole of zeros) with a 16-byte marker at the
start of every MiB, so a lost, repeated or misplaced chunk changes its checksum, yet
it costs no disk writes to make. The client is the stdlib's ftplib in a subprocess,
checksumming what it receives as it arrives and uploading from a generator, so
tracemalloc, started in the test process, traces the server's Python allocations
alone (its reactor and its thread pool), not the client's.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tracemalloc
import zlib
from pathlib import Path
from typing import Any

import pytest

from protocols.ftp.server import FTPFactory

SIZE = 256 << 20
MIB = 1 << 20
USER, PASSWORD = "big", "files"
#: The server's traced peak must stay below this, whatever the file's size: the
#: upload's write-behind bound (1 MiB), the chunks in flight and the session itself.
#: Measured: 3.7 to 5.8 MiB on the three backends; a file held whole would be 256.
PEAK_BOUND = 12 << 20


def marker(index: int) -> bytes:
    """The 16 bytes at the start of MiB number ``index``."""
    return b"MiB %011d\n" % index


# The client, run by ``python -c``: the same generator as above, inlined, since the
# child does not import the tests.
CLIENT = """
import ftplib, json, sys, zlib
port, size, mib = int(sys.argv[1]), int(sys.argv[2]), 1 << 20

class Generated:
    # A file-like object reading the test file's content without a file.
    def __init__(self):
        self.offset = 0
    def read(self, n):
        n = min(n, size - self.offset, mib - self.offset % mib)
        if n <= 0:
            return b""
        block = bytearray(n)
        if self.offset % mib == 0:
            block[:16] = b"MiB %011d\\n" % (self.offset // mib)
        self.offset += n
        return bytes(block)

state = {"crc": 0, "bytes": 0}
def received(data):
    state["crc"] = zlib.crc32(data, state["crc"])
    state["bytes"] += len(data)

ftp = ftplib.FTP(timeout=60)
ftp.connect("127.0.0.1", port)
ftp.login(sys.argv[3], sys.argv[4])
ftp.retrbinary("RETR big.bin", received, blocksize=1 << 20)
ftp.storbinary("STOR copy.bin", Generated(), blocksize=1 << 20)
ftp.quit()
print(json.dumps(state))
"""


def make_file(path: Path) -> int:
    """Write the sparse test file at ``path``; return its CRC-32."""
    crc = 0
    zeros = bytes(MIB - 16)
    with open(path, "wb") as f:
        f.truncate(SIZE)
        for index in range(SIZE // MIB):
            f.seek(index * MIB)
            f.write(marker(index))
            crc = zlib.crc32(zeros, zlib.crc32(marker(index), crc))
    return crc


def file_crc(path: Path) -> int:
    crc = 0
    with open(path, "rb") as f:
        while chunk := f.read(MIB):
            crc = zlib.crc32(chunk, crc)
    return crc


def run_client(port: int) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", CLIENT, str(port), str(SIZE), USER, PASSWORD],
        capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    result: dict[str, Any] = json.loads(done.stdout)
    return result


@pytest.mark.reactor_timeout(120)
async def test_256_mib_both_ways_in_bounded_server_memory(reactor: Any, tmp_path: Path
                                                          ) -> None:
    source, copy = tmp_path / "big.bin", tmp_path / "copy.bin"
    expected = make_file(source)
    factory = FTPFactory(str(tmp_path), checker=lambda u, p: (u, p) == (USER, PASSWORD),
                         reactor=reactor)
    try:
        tracemalloc.start()
        try:
            port = reactor.listenTCP(0, factory, interface="127.0.0.1")
            try:
                got = await reactor.deferToThread(run_client, port.getHost().port)
            finally:
                await port.stopListening()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert got == {"crc": expected, "bytes": SIZE}  # the download, checked as it came
        assert copy.stat().st_size == SIZE
        assert await reactor.deferToThread(file_crc, copy) == expected  # the upload
        assert peak < PEAK_BOUND, f"server peak {peak / MIB:.1f} MiB"
    finally:
        # 512 MiB per backend: pytest keeps the last runs' tmp_path, not this.
        for path in (source, copy):
            path.unlink(missing_ok=True)
