"""Per-user home directories and permissions in the FTP server, on every backend.

Users come from a users file (``UsersFile.deferredLogin`` answers avatars) or
from a checker returning :class:`~protocols.ftp.users.FTPAvatar` itself.
"""

from __future__ import annotations

import ftplib
import io
import os
from pathlib import Path
from typing import Any

import pytest

from protocols.ftp.filesystem import ChrootFilesystem, LocalFilesystem, homePath
from protocols.ftp.server import FTPFactory
from protocols.ftp.users import FTPAvatar, UsersFile, add_user
from tests.protocols.ftp.test_server import code_of, run, session

N = 16  # a cheap scrypt: the code path is the same


def _tree(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    for name in ("alice", "bob", "shared"):
        (root / name).mkdir(parents=True)
    (root / "top.txt").write_bytes(b"top")
    (root / "bob" / "b.txt").write_bytes(b"bob's")
    (root / "alice" / "a.txt").write_bytes(b"alice's")
    (root / "alice" / "tobob").symlink_to(root / "bob")
    return root


def _users(tmp_path: Path, root: Path) -> UsersFile:
    path = tmp_path / "users"
    add_user(path, "alice", "pw", home="/alice", n=N)
    add_user(path, "bob", "pw", home=f"{root}/bob", permissions=frozenset({"read"}), n=N)
    add_user(path, "carol", "pw", permissions=frozenset({"read", "mkdir"}), n=N)
    add_user(path, "dave", "pw", home="/shared/../alice", n=N)
    add_user(path, "eve", "pw", home="/missing", n=N)
    add_user(path, "fay", "pw", home="top.txt", n=N)
    return UsersFile(path)


async def test_a_home_becomes_the_users_root(reactor: Any, tmp_path: Path) -> None:
    root = _tree(tmp_path)
    users = _users(tmp_path, root)

    def client(number: int) -> list[Any]:
        ftp = session(number, "alice", "pw")
        out: list[Any] = [ftp.pwd(), ftp.nlst(), ftp.cwd(".."), ftp.pwd(), ftp.nlst()]
        for command in ("RETR ../top.txt", "RETR /top.txt", "RETR tobob/b.txt",
                        "CWD tobob", "RMD /"):
            try:
                if command.startswith("RETR"):
                    ftp.retrbinary(command, lambda data: None)
                else:
                    ftp.sendcmd(command)
                out.append("accepted: " + command)
            except ftplib.error_perm as e:
                out.append(code_of(e))
        ftp.sendcmd("RNFR /")
        try:
            ftp.sendcmd("RNTO /x")
        except ftplib.error_perm as e:
            out.append(code_of(e))
        ftp.storbinary("STOR new.txt", io.BytesIO(b"uploaded"))
        out.append(ftp.sendcmd("MLST /")[:4])
        ftp.quit()
        return out

    got = await run(reactor, root, client, checker=users.deferredLogin)
    assert got[:5] == ["/", ["a.txt"], '250 Directory changed to "/".', "/", ["a.txt"]]
    # the link to bob's home is neither listed nor followed; "/" cannot go
    assert got[5:11] == ["550"] * 6
    assert got[11] == "250-"
    assert (root / "alice" / "new.txt").read_bytes() == b"uploaded"
    assert sorted(os.listdir(root)) == ["alice", "bob", "shared", "top.txt"]


async def test_permissions_from_the_users_file(reactor: Any, tmp_path: Path) -> None:
    root = _tree(tmp_path)
    users = _users(tmp_path, root)

    def client(number: int) -> list[Any]:
        out: list[Any] = []
        ftp = session(number, "bob", "pw")  # home given as a real path; read-only
        out.append(ftp.nlst())
        chunks: list[bytes] = []
        ftp.retrbinary("RETR b.txt", chunks.append)
        out.append(b"".join(chunks))
        for command in ("MKD d", "DELE b.txt", "RNFR b.txt"):
            try:
                ftp.sendcmd(command)
            except ftplib.error_perm as e:
                out.append(code_of(e))
        try:
            ftp.storbinary("STOR x", io.BytesIO(b"x"))
        except ftplib.error_perm as e:
            out.append(code_of(e))
        out.append(dict(ftp.mlsd())["b.txt"]["perm"])
        ftp.quit()
        ftp = session(number, "carol", "pw")  # no home: the served root; read and mkdir
        out += [ftp.nlst(), ftp.mkd("made")]
        try:
            ftp.delete("top.txt")
        except ftplib.error_perm as e:
            out.append(code_of(e))
        ftp.quit()
        return out

    got = await run(reactor, root, client, checker=users.deferredLogin,
                    permissions=frozenset({"read", "write", "delete", "rename", "mkdir"}))
    assert got == [["b.txt"], b"bob's", "550", "550", "550", "550", "r",
                   ["alice", "bob", "shared", "top.txt"], "/made", "550"]
    assert (root / "made").is_dir()


@pytest.mark.parametrize("user", ["dave", "eve", "fay"])
async def test_an_unusable_home_refuses_the_login(reactor: Any, tmp_path: Path,
                                                  user: str) -> None:
    root = _tree(tmp_path)
    users = _users(tmp_path, root)

    def client(number: int) -> str:
        try:
            session(number, user, "pw")
        except ftplib.error_perm as e:
            return code_of(e)
        return "logged in"

    assert await run(reactor, root, client, checker=users.deferredLogin) == "530"


async def test_a_checker_avatar_over_any_filesystem(reactor: Any, tmp_path: Path) -> None:
    # Not a LocalFilesystem: the home is wrapped in a ChrootFilesystem.
    root = _tree(tmp_path)
    filesystem = ChrootFilesystem(LocalFilesystem(root, reactor), "/")

    def check(user: str, password: str) -> FTPAvatar | bool:
        return FTPAvatar(home="alice", permissions=frozenset({"read", "write"}))

    def client(number: int) -> list[Any]:
        ftp = session(number, "anyone", "pw")
        out: list[Any] = [ftp.nlst(), ftp.cwd("/.."), ftp.nlst()]
        ftp.storbinary("STOR up.txt", io.BytesIO(b"x"))
        ftp.storbinary("STOU up.txt", io.BytesIO(b"y"))  # taken: another name
        out.append(sorted(ftp.nlst()))
        ftp.quit()
        return out

    port = reactor.listenTCP(0, FTPFactory(filesystem, checker=check, failedLoginDelay=0.0,
                                           reactor=reactor), interface="127.0.0.1")
    try:
        got = await reactor.deferToThread(client, port.getHost().port)
    finally:
        await port.stopListening()
    assert got[:3] == [["a.txt", "tobob"], '250 Directory changed to "/".',
                       ["a.txt", "tobob"]]
    assert (root / "alice" / "up.txt").read_bytes() == b"x"
    names = got[3]
    assert names[:3] == ["a.txt", "tobob", "up.txt"] and names[3].startswith("up.txt.")
    assert (root / "alice" / names[3]).read_bytes() == b"y"


def test_home_path_rules() -> None:
    assert homePath("bob") == homePath("/bob") == homePath("/bob/") == "/bob"
    assert homePath("/srv/ftp/bob", "/srv/ftp") == "/bob"
    assert homePath("/srv/ftp", "/srv/ftp") == "/"
    assert homePath("/srv/ftpx", "/srv/ftp") == "/srv/ftpx"  # not under the root
    with pytest.raises(PermissionError):
        homePath("/a/../../etc")
