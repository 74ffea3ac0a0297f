"""``torsion ftp`` end to end: the real console script, and stdlib ftplib as the client.

Each server is the ``torsion`` console script in a subprocess on 127.0.0.1,
port 0; the test learns the port from the line it prints once listening and
talks to it with ``ftplib``, waiting on lines and replies, never on sleeps.
Every process is killed in a ``finally`` (the ``start`` fixture).
"""

from __future__ import annotations

import argparse
import ftplib
import io
import os
import re
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from protocols.ftp.cli import ftp
from protocols.ftp.users import UsersFile
from tests.console import TIMEOUT, ConsoleServer

TORSION = str(Path(sys.executable).parent / "torsion")
BACKENDS = ["select", "asyncio", "uvloop"]
LOCAL = ["--port", "0", "--interface", "127.0.0.1"]


class Server(ConsoleServer):
    """A ``torsion ftp`` process."""

    def __init__(self, args: list[str]) -> None:
        super().__init__([TORSION, "ftp", *args])
        self.backend = self.match.group(2)

    def connect(self) -> ftplib.FTP:
        """A connected (not logged in) ftplib client."""
        client = ftplib.FTP(timeout=TIMEOUT)
        client.connect("127.0.0.1", self.port)
        return client


@pytest.fixture
def start() -> Iterator[Callable[..., Server]]:
    """``start(*args)`` runs ``torsion ftp ARGS``; every server is killed at the end."""
    started: list[Server] = []

    def run(*args: str) -> Server:
        server = Server([*args, *LOCAL])
        started.append(server)
        return server

    try:
        yield run
    finally:
        for server in started:
            server.close()


def torsion_ftp(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``torsion ftp ARGS`` to completion (no server expected to stay up)."""
    return subprocess.run([TORSION, "ftp", *args], input=stdin, capture_output=True,
                          text=True, timeout=TIMEOUT)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "docs").mkdir(parents=True)
    (root / "hello.txt").write_bytes(b"hello over ftp\n")
    (root / "docs" / "data.bin").write_bytes(bytes(range(256)) * 64)
    return root


@pytest.mark.parametrize("backend", BACKENDS)
def test_anonymous_listing_and_download(start: Callable[..., Server], tree: Path,
                                        backend: str) -> None:
    server = start("--root", str(tree), "--anonymous", "--reactor", backend)
    assert server.backend == backend
    client = server.connect()
    try:
        assert client.login().startswith("230")
        assert sorted(client.nlst()) == ["docs", "hello.txt"]
        listing: list[str] = []
        client.retrlines("LIST", listing.append)
        assert any(line.endswith(" hello.txt") and line.startswith("-") for line in listing)
        assert any(line.endswith(" docs") and line.startswith("d") for line in listing)
        got = io.BytesIO()
        client.retrbinary("RETR docs/data.bin", got.write)
        assert got.getvalue() == bytes(range(256)) * 64
        # Anonymous is read-only, whatever the client tries.
        with pytest.raises(ftplib.error_perm, match=r"^550"):
            client.storbinary("STOR new.txt", io.BytesIO(b"nope"))
        client.quit()
    finally:
        client.close()
    assert not (tree / "new.txt").exists()
    server.stop()


def test_added_user_logs_in_and_uploads(start: Callable[..., Server], tree: Path,
                                        tmp_path: Path) -> None:
    users = tmp_path / "ftp-users"
    done = torsion_ftp("--users", str(users), "--add-user", "alice", "--password", "s3cret")
    assert done.returncode == 0, done.stderr
    assert "added alice" in done.stdout
    assert stat.S_IMODE(os.stat(users).st_mode) == 0o600
    server = start("--root", str(tree), "--users", str(users), "--writable")
    client = server.connect()
    try:
        assert client.login("alice", "s3cret").startswith("230")
        client.storbinary("STOR docs/upload.bin", io.BytesIO(b"\x00uploaded\r\n" * 1000))
        client.mkd("made")
        client.quit()
    finally:
        client.close()
    assert (tree / "docs" / "upload.bin").read_bytes() == b"\x00uploaded\r\n" * 1000
    assert (tree / "made").is_dir()
    server.stop()


def test_added_user_with_a_home_and_permissions(start: Callable[..., Server], tree: Path,
                                                tmp_path: Path) -> None:
    users = tmp_path / "ftp-users"
    done = torsion_ftp("--users", str(users), "--add-user", "carol", "--password", "pw",
                       "--home", "docs", "--perms", "read,mkdir")
    assert done.returncode == 0, done.stderr
    # --writable would give everyone everything; carol's own list wins.
    server = start("--root", str(tree), "--users", str(users), "--writable")
    client = server.connect()
    try:
        assert client.login("carol", "pw").startswith("230")
        assert client.pwd() == "/"
        assert client.nlst() == ["data.bin"]  # docs/ is her /
        client.mkd("mine")
        with pytest.raises(ftplib.error_perm, match=r"^550"):
            client.storbinary("STOR up.bin", io.BytesIO(b"no write permission"))
        client.quit()
    finally:
        client.close()
    assert (tree / "docs" / "mine").is_dir()
    assert not (tree / "docs" / "up.bin").exists()
    server.stop()


def test_wrong_password_and_unknown_user_get_530(start: Callable[..., Server], tree: Path,
                                                 tmp_path: Path) -> None:
    users = tmp_path / "ftp-users"
    assert torsion_ftp("--users", str(users), "--add-user", "alice",
                       "--password", "right").returncode == 0
    server = start("--root", str(tree), "--users", str(users))
    for user, password in [("alice", "wrong"), ("mallory", "right"), ("anonymous", "x@y")]:
        client = server.connect()
        try:
            with pytest.raises(ftplib.error_perm, match=r"^530"):
                client.login(user, password)
        finally:
            client.close()
    server.stop()


def test_users_are_read_only_without_writable(start: Callable[..., Server], tree: Path,
                                              tmp_path: Path) -> None:
    users = tmp_path / "ftp-users"
    assert torsion_ftp("--users", str(users), "--add-user", "bob",
                       "--password", "pw").returncode == 0
    server = start("--root", str(tree), "--users", str(users))
    client = server.connect()
    try:
        client.login("bob", "pw")
        got = io.BytesIO()
        client.retrbinary("RETR hello.txt", got.write)
        assert got.getvalue() == b"hello over ftp\n"
        with pytest.raises(ftplib.error_perm, match=r"^550"):
            client.delete("hello.txt")
        client.quit()
    finally:
        client.close()
    assert (tree / "hello.txt").exists()
    server.stop()


def test_a_user_added_while_serving_logs_in(start: Callable[..., Server], tree: Path,
                                            tmp_path: Path) -> None:
    users = tmp_path / "ftp-users"
    assert torsion_ftp("--users", str(users), "--add-user", "first",
                       "--password", "1").returncode == 0
    server = start("--root", str(tree), "--users", str(users))
    assert torsion_ftp("--users", str(users), "--add-user", "second",
                       "--password", "2").returncode == 0
    client = server.connect()
    try:
        assert client.login("second", "2").startswith("230")
        client.quit()
    finally:
        client.close()
    server.stop()


def test_add_user_updates_the_password(tmp_path: Path) -> None:
    users = tmp_path / "ftp-users"
    assert torsion_ftp("--users", str(users), "--add-user", "alice",
                       "--password", "old").returncode == 0
    done = torsion_ftp("--users", str(users), "--add-user", "alice", "--password", "new")
    assert done.returncode == 0, done.stderr
    assert "updated the password of alice" in done.stdout
    checker = UsersFile(users)
    assert list(checker.entries) == ["alice"]
    assert checker.check("alice", "new") and not checker.check("alice", "old")


@pytest.mark.parametrize("args, message", [
    (["--root", "{tmp}/missing", "--anonymous"], "--root {tmp}/missing: .* does not exist"),
    (["--root", "{tmp}/file", "--anonymous"], "is not a directory"),
    (["--root", "{tmp}", "--users", "{tmp}/missing"],
     "--users {tmp}/missing: No such file or directory"),
    (["--root", "{tmp}", "--users", "{tmp}/file"], "--users: {tmp}/file, line 1: "),
    (["--root", "{tmp}"], "nobody could log in"),
    (["--root", "{tmp}", "--anonymous", "--writable"], "--writable applies to"),
    (["--root", "{tmp}", "--anonymous", "--masquerade", "host.example"],
     "--masquerade wants an IPv4 address"),
    (["--add-user", "alice", "--password", "x"], "--add-user needs --users FILE"),
    (["--users", "{tmp}/u", "--add-user", "a:b", "--password", "x"], "user name"),
    (["--users", "{tmp}/u", "--add-user", "alice", "--password", ""], "must not be empty"),
    (["--root", "{tmp}", "--anonymous", "--password", "x"], "--password goes with"),
    (["--root", "{tmp}", "--anonymous", "--home", "x"], "--home goes with"),
    (["--users", "{tmp}/u", "--add-user", "alice", "--password", "x", "--perms", "fly"],
     "--perms: unknown permission 'fly'"),
])
def test_errors_exit_2_with_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "file").write_text("not a users file\n")
    done = torsion_ftp(*(a.format(tmp=tmp_path) for a in args), *LOCAL)
    assert done.returncode == 2, done
    lines = done.stderr.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("torsion ftp: error: ")
    assert re.search(message.format(tmp=re.escape(str(tmp_path))), lines[0]), lines[0]
    assert not (tmp_path / "u").exists()


def _namespace(tmp_path: Path, **options: object) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    ftp.add_arguments(parser)
    args = parser.parse_args([])
    vars(args).update(options)
    return args


def test_add_user_prompts_twice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:
    answers = iter(["typed", "typed"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    users = tmp_path / "u"
    with pytest.raises(SystemExit) as exit_:
        ftp.build(_namespace(tmp_path, users=str(users), add_user="carol"))
    assert exit_.value.code == 0
    assert "added carol" in capsys.readouterr().out
    assert UsersFile(users).check("carol", "typed")


def test_add_user_prompt_mismatch_writes_nothing(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    answers = iter(["one", "two"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    users = tmp_path / "u"
    with pytest.raises(ValueError, match="differ"):
        ftp.build(_namespace(tmp_path, users=str(users), add_user="carol"))
    assert not users.exists()


def test_build_options_reach_the_factory(tmp_path: Path) -> None:
    factory, udp = ftp.build(_namespace(tmp_path, root=str(tmp_path), anonymous=True,
                                        masquerade="203.0.113.7"))
    assert udp is None
    assert factory.anonymous is True
    assert factory.checker is None
    assert factory.masquerade == "203.0.113.7"
    assert factory.permissions == frozenset({"read"})
    assert factory.filesystem.root == os.path.realpath(tmp_path)


def test_missing_home_directories_are_logged(tmp_path: Path,
                                            caplog: pytest.LogCaptureFixture) -> None:
    from protocols.ftp.users import add_user

    users = tmp_path / "u"
    add_user(users, "dora", "pw", home="/elsewhere", n=16)
    factory, _ = ftp.build(_namespace(tmp_path, root=str(tmp_path), users=str(users),
                                      writable=True))
    assert factory.permissions == frozenset({"read", "write", "delete", "rename", "mkdir"})
    assert "home directories in" in caplog.text and "dora" in caplog.text
