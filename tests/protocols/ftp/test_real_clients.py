"""The FTP server against real clients nobody here wrote: lftp and curl, on every backend.

Each client runs as a subprocess from a worker thread (``reactor.deferToThread``), so
the reactor keeps serving while the client blocks. Every test compares file contents
(by hash) on both sides, never just an exit code.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from protocols.ftp.server import FTPFactory
from tests.tools import require_tool

USER, PASSWORD = "alice", "pw"
TIMEOUT = 30  # seconds a client process may take before the test fails

# Keep lftp fast and deterministic: no retries, passive mode, no TLS attempt, and a
# nonzero exit status as soon as any command fails.
LFTP_SETTINGS = (
    "set net:max-retries 1; set net:timeout 10; set ftp:passive-mode on; "
    "set ssl:verify-certificate no; set ftp:ssl-allow no; set cmd:fail-exit yes; "
    "set net:reconnect-interval-base 1"
)


def check(user: str, password: str) -> bool:
    return (user, password) == (USER, PASSWORD)


async def run(reactor: Any, root: Path, client: Callable[[int], Any]) -> Any:
    """Serve ``root``, run ``client(port_number)`` in a thread, return its result."""
    factory = FTPFactory(str(root), checker=check, failedLoginDelay=0.0)
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    try:
        return await reactor.deferToThread(client, port.getHost().port)
    finally:
        await port.stopListening()


def execute(argv: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(argv, cwd=cwd, capture_output=True, timeout=TIMEOUT, check=False)


def lftp(number: int, commands: str, cwd: Path | None = None) -> Any:
    """Run lftp's ``commands`` logged in to the server; ``--norc``: no user's settings."""
    script = f"{LFTP_SETTINGS}; open -u {USER},{PASSWORD} ftp://127.0.0.1:{number}; {commands}"
    return execute([require_tool("lftp"), "--norc", "-c", script], cwd=cwd)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree(root: Path) -> dict[str, str]:
    """Every file under ``root`` by relative path, with its hash; directories as "dir"."""
    out = {}
    for path in root.rglob("*"):
        name = path.relative_to(root).as_posix()
        out[name] = "dir" if path.is_dir() else digest(path)
    return out


def make_tree(root: Path) -> None:
    """Nested directories, a few small files, a name with a space and a 3 MiB file."""
    (root / "docs" / "deep" / "deeper").mkdir(parents=True)
    (root / "empty dir").mkdir()
    (root / "readme.txt").write_bytes(b"hello\r\nworld\n")
    (root / "docs" / "with space.txt").write_bytes(b"spaced out\n" * 100)
    (root / "docs" / "deep" / "zero.bin").write_bytes(b"")
    (root / "docs" / "deep" / "deeper" / "big.bin").write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    (root / "docs" / "deep" / "deeper" / "note.md").write_bytes(bytes(range(256)) * 4)


def ok(result: subprocess.CompletedProcess[bytes]) -> None:
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)


# -- lftp ------------------------------------------------------------------------------


async def test_lftp_mirrors_a_tree_down(reactor: Any, tmp_path: Path) -> None:
    served, local = tmp_path / "served", tmp_path / "local"
    served.mkdir()
    make_tree(served)

    def client(number: int) -> None:
        ok(lftp(number, f"mirror / '{local}'"))

    await run(reactor, served, client)
    assert tree(local) == tree(served)
    assert len(tree(served)) == 9


async def test_lftp_mirrors_a_tree_up(reactor: Any, tmp_path: Path) -> None:
    served, local = tmp_path / "served", tmp_path / "local"
    served.mkdir()
    local.mkdir()
    make_tree(local)

    def client(number: int) -> None:
        ok(lftp(number, f"mirror --reverse '{local}' /uploaded"))

    await run(reactor, served, client)
    assert tree(served / "uploaded") == tree(local)
    # Nothing but the uploaded tree: no temporary files left behind.
    assert os.listdir(served) == ["uploaded"]


async def test_lftp_resumes_an_interrupted_download(reactor: Any, tmp_path: Path) -> None:
    served, local = tmp_path / "served", tmp_path / "local"
    served.mkdir()
    local.mkdir()
    data = os.urandom(2 * 1024 * 1024 + 5)
    (served / "big.bin").write_bytes(data)
    # What an interrupted transfer left: the first part, and a wrong tail the resumed
    # download must not rewrite (proving it really started at REST, not at zero).
    partial = bytearray(data[:1_000_003])
    partial[:4] = b"MARK"
    (local / "big.bin").write_bytes(bytes(partial))

    def client(number: int) -> None:
        ok(lftp(number, "get -c big.bin", cwd=local))

    await run(reactor, served, client)
    got = (local / "big.bin").read_bytes()
    assert len(got) == len(data)
    assert got[:4] == b"MARK"  # the kept prefix: the server honoured REST
    assert got[4:] == data[4:]


# -- curl ------------------------------------------------------------------------------


def curl(*args: str) -> subprocess.CompletedProcess[bytes]:
    return execute([require_tool("curl"), "-s", "--max-time", "20", *args])


def url(number: int, path: str) -> str:
    return f"ftp://{USER}:{PASSWORD}@127.0.0.1:{number}/{path}"


async def test_curl_downloads_a_file(reactor: Any, tmp_path: Path) -> None:
    data = os.urandom(1024 * 1024 + 3)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "file.bin").write_bytes(data)

    def client(number: int) -> subprocess.CompletedProcess[bytes]:
        return curl(url(number, "sub/file.bin"))

    result = await run(reactor, tmp_path, client)
    ok(result)
    assert hashlib.sha256(result.stdout).hexdigest() == hashlib.sha256(data).hexdigest()


async def test_curl_uploads_a_file(reactor: Any, tmp_path: Path) -> None:
    served, local = tmp_path / "served", tmp_path / "local"
    (served / "dir").mkdir(parents=True)
    local.mkdir()
    data = os.urandom(512 * 1024 + 9)
    (local / "up.bin").write_bytes(data)

    def client(number: int) -> subprocess.CompletedProcess[bytes]:
        return curl("-T", str(local / "up.bin"), url(number, "dir/"))

    ok(await run(reactor, served, client))
    assert (served / "dir" / "up.bin").read_bytes() == data
    assert os.listdir(served / "dir") == ["up.bin"]


async def test_curl_lists_a_directory(reactor: Any, tmp_path: Path) -> None:
    (tmp_path / "dir" / "inner").mkdir(parents=True)
    for name in ("a.txt", "b c.txt", "z.bin"):
        (tmp_path / "dir" / name).write_bytes(name.encode())

    def client(number: int) -> subprocess.CompletedProcess[bytes]:
        return curl("--list-only", url(number, "dir/"))

    result = await run(reactor, tmp_path, client)
    ok(result)
    names = result.stdout.decode().splitlines()
    assert sorted(names) == ["a.txt", "b c.txt", "inner", "z.bin"]


async def test_curl_missing_file_is_an_error(reactor: Any, tmp_path: Path) -> None:
    (tmp_path / "present.txt").write_bytes(b"here")

    def client(number: int) -> list[subprocess.CompletedProcess[bytes]]:
        return [curl(url(number, "absent.txt")), curl(url(number, "present.txt"))]

    missing, present = await run(reactor, tmp_path, client)
    assert missing.returncode == 78, missing  # CURLE_REMOTE_FILE_NOT_FOUND: RETR got 550
    assert missing.stdout == b""
    ok(present)
    assert present.stdout == b"here"
