"""The runnable FTP examples: ``examples/ftp_server.py`` and ``examples/ftp_mirror.py``.

The server example runs as a real process on 127.0.0.1, port 0 (the test reads the
port from the line it prints), driven by the stdlib's ftplib. The mirror example runs
as a process against our server, served in the test process on each reactor backend
(and the mirror uses that same backend, through ``TORSION_REACTOR``).
"""

from __future__ import annotations

import ftplib
import io
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from protocols.ftp.server import FTPFactory
from protocols.ftp.users import add_user
from tests.console import ConsoleServer

REPO = Path(__file__).resolve().parents[3]
EXAMPLES = REPO / "examples"
SERVING = re.compile(r"^serving .* on ftp://127\.0\.0\.1:(\d+)/$")
TIMEOUT = 30


@pytest.fixture
def example_server(tmp_path: Path) -> Iterator[Any]:
    """``start(*args)`` runs ``python examples/ftp_server.py --port 0 ARGS``; killed after."""
    started: list[ConsoleServer] = []

    def start(*args: str) -> ConsoleServer:
        command = [sys.executable, str(EXAMPLES / "ftp_server.py"), "--port", "0", *args]
        server = ConsoleServer(command, REPO, SERVING)
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.close()


def connect(port: int) -> ftplib.FTP:
    ftp = ftplib.FTP(timeout=TIMEOUT)
    ftp.connect("127.0.0.1", port)
    return ftp


def download(ftp: ftplib.FTP, name: str) -> bytes:
    out = io.BytesIO()
    ftp.retrbinary(f"RETR {name}", out.write)
    return out.getvalue()


def test_server_example_anonymous_is_read_only(example_server: Any, tmp_path: Path) -> None:
    (tmp_path / "hello.txt").write_bytes(b"hello\n")
    server = example_server("--root", str(tmp_path))
    ftp = connect(server.port)
    ftp.login()  # anonymous
    assert ftp.nlst() == ["hello.txt"]
    assert download(ftp, "hello.txt") == b"hello\n"
    with pytest.raises(ftplib.error_perm, match=r"^55\d"):
        ftp.storbinary("STOR new.txt", io.BytesIO(b"x"))
    with pytest.raises(ftplib.error_perm, match=r"^55\d"):
        ftp.delete("hello.txt")
    ftp.quit()
    assert sorted(os.listdir(tmp_path)) == ["hello.txt"]
    server.stop()  # SIGTERM: a clean exit, status 0


def test_server_example_with_a_users_file(example_server: Any, tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    users = tmp_path / "ftp-users"
    add_user(users, "alice", "s3cret", n=16)  # a cheap scrypt: the test's, not a real one
    server = example_server("--root", str(root), "--users", str(users))
    ftp = connect(server.port)
    ftp.login("alice", "s3cret")
    ftp.storbinary("STOR up.txt", io.BytesIO(b"uploaded"))
    ftp.rename("up.txt", "renamed.txt")
    assert download(ftp, "renamed.txt") == b"uploaded"
    ftp.quit()
    assert (root / "renamed.txt").read_bytes() == b"uploaded"
    # With a users file, anonymous may not log in at all.
    refused = connect(server.port)
    with pytest.raises(ftplib.error_perm, match=r"^530"):
        refused.login()
    refused.close()
    server.stop()


def make_tree(root: Path) -> None:
    (root / "a" / "b").mkdir(parents=True)
    (root / "empty").mkdir()
    (root / "top.txt").write_bytes(b"top\n")
    (root / "a" / "one.bin").write_bytes(bytes(range(256)) * 1000)
    (root / "a" / "b" / "deep.txt").write_bytes(b"deep\n")


def tree(root: Path) -> dict[str, bytes | None]:
    """Every path under ``root``: a file's content, None for a directory."""
    found: dict[str, bytes | None] = {}
    for path in sorted(root.rglob("*")):
        found[path.relative_to(root).as_posix()] = None if path.is_dir() else path.read_bytes()
    return found


def run_mirror(backend: str, port: int, local: Path) -> list[str]:
    """Run the mirror example; return its stdout lines."""
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "ftp_mirror.py"), f"ftp://127.0.0.1:{port}/",
         str(local)],
        cwd=REPO, env=dict(os.environ, TORSION_REACTOR=backend), capture_output=True,
        text=True, timeout=TIMEOUT, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


async def test_mirror_example_copies_a_tree_then_only_what_changed(
        reactor: Any, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    backend = request.node.callspec.params["reactor"]
    remote, local = tmp_path / "remote", tmp_path / "local"
    remote.mkdir()
    make_tree(remote)
    port = reactor.listenTCP(0, FTPFactory(str(remote), anonymous=True, reactor=reactor),
                             interface="127.0.0.1")
    number = port.getHost().port
    try:
        first = await reactor.deferToThread(run_mirror, backend, number, local)
        assert tree(local) == tree(remote)
        assert first[-1] == "downloaded 3 files (256009 bytes), skipped 0 already present"

        # Nothing changed: nothing is fetched again.
        again = await reactor.deferToThread(run_mirror, backend, number, local)
        assert again == ["downloaded 0 files (0 bytes), skipped 3 already present"]

        # A file whose size changed, and a new one, are fetched; the rest is not.
        (remote / "top.txt").write_bytes(b"top, longer now\n")
        (remote / "a" / "b" / "new.txt").write_bytes(b"new\n")
        third = await reactor.deferToThread(run_mirror, backend, number, local)
        assert sorted(third[:-1]) == ["got /a/b/new.txt", "got /top.txt"]
        assert third[-1] == "downloaded 2 files (20 bytes), skipped 2 already present"
        assert tree(local) == tree(remote)
        assert not list(local.rglob("*.part"))
    finally:
        await port.stopListening()
