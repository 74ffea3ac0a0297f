"""STOU, REIN, SITE CHMOD/HELP, MFMT, OPTS MLST and STAT with a path, on every backend.

The parsing helpers are tested with values alone; the commands against
ftplib and raw control connections.
"""

from __future__ import annotations

import ftplib
import io
import os
import socket
import stat
from pathlib import Path
from typing import Any

import pytest

from protocols.ftp._extra import parseMfmtTime, selectFacts
from protocols.ftp.commands import Command, CommandError, check_command
from protocols.ftp.filesystem import FileInfo, formatFacts
from tests.protocols.ftp.test_server import PASSWORD, USER, code_of, raw_exchange, run, session

LOGIN = [f"USER {USER}\r\n".encode(), f"PASS {PASSWORD}\r\n".encode()]


# -- values alone ----------------------------------------------------------------------


def test_parse_mfmt_time() -> None:
    assert parseMfmtTime("19700101000000") == 0
    assert parseMfmtTime("20200229235959.25") == 1583020799.25
    for bad in ("2020", "20201301000000", "20200431000000", "2020010100000x", "",
                "20200101000000.", "202001010000001"):
        with pytest.raises(CommandError) as info:
            parseMfmtTime(bad)
        assert info.value.code == 501


def test_select_facts_and_format() -> None:
    assert selectFacts("size;TYPE;nonsense;") == ("type", "size")
    assert selectFacts("") == ()
    info = FileInfo("a", False, 3, 0.0, 0o100644, 1, "o", "g", "1g2")
    assert formatFacts(info, frozenset({"read"}), facts=("size", "type")) == \
        "type=file;size=3; a"
    assert formatFacts(info, frozenset(), facts=()) == " a"


@pytest.mark.parametrize(("command", "logged_in", "perms", "code"), [
    (Command("MFMT", "20200101000000 x"), True, frozenset({"read"}), 550),
    (Command("MFMT", ""), True, None, 501),
    (Command("SITE", "HELP"), False, None, 530),
    (Command("SITE", ""), True, None, 501),
    (Command("STOU", ""), True, frozenset({"read"}), 550),
    (Command("REIN", "x"), True, None, 501),
])
def test_table_rows_of_the_new_commands(command: Command, logged_in: bool,
                                        perms: frozenset[str] | None, code: int) -> None:
    with pytest.raises(CommandError) as info:
        check_command(command, logged_in, perms)
    assert info.value.code == code


def test_table_accepts_the_new_commands() -> None:
    for command in (Command("REIN", ""), Command("STAT", "/pub"), Command("STOU", ""),
                    Command("SITE", "HELP"), Command("MFMT", "20200101000000 x")):
        check_command(command, True, frozenset({"read", "write"}))


# -- STOU ------------------------------------------------------------------------------


async def test_stou_picks_unused_names(reactor: Any, tmp_path: Path) -> None:
    (tmp_path / "taken").write_bytes(b"old")

    def client(number: int) -> list[str]:
        ftp = session(number)
        ftp.voidcmd("TYPE I")
        replies = []
        for command, data in (("STOU new", b"1"), ("STOU taken", b"2"), ("STOU", b"3"),
                              ("STOU", b"4")):
            conn = ftp.transfercmd(command)
            replies.append(ftp.lastresp + " " + _last_preliminary(ftp))
            conn.sendall(data)
            conn.close()
            ftp.voidresp()
        ftp.sendcmd("REST 1")
        try:
            ftp.transfercmd("STOU x")
        except ftplib.error_perm as e:
            replies.append(code_of(e))
        ftp.quit()
        return replies

    replies = await run(reactor, tmp_path, client)
    names = [r.split("FILE: ", 1)[1] for r in replies[:4]]
    assert all(r.startswith("150 ") for r in replies[:4])
    assert names[0] == "new"
    assert names[1].startswith("taken.") and names[2] == "file"
    assert names[3].startswith("file.") and len(set(names)) == 4
    assert replies[4] == "554"
    assert (tmp_path / "taken").read_bytes() == b"old"
    contents = {name: (tmp_path / name).read_bytes() for name in names}
    assert contents == dict(zip(names, [b"1", b"2", b"3", b"4"], strict=True))
    assert sorted(os.listdir(tmp_path)) == sorted([*names, "taken"])


_LAST: dict[int, str] = {}


def _last_preliminary(ftp: ftplib.FTP) -> str:
    return _LAST.get(id(ftp), "")


@pytest.fixture(autouse=True)
def _record_preliminary_replies(monkeypatch: pytest.MonkeyPatch) -> None:
    # ftplib's transfercmd swallows the 150 text: keep it for the test to read.
    real = ftplib.FTP.getresp

    def getresp(self: ftplib.FTP) -> str:
        response = real(self)
        if response.startswith("150"):
            _LAST[id(self)] = response
        return response

    monkeypatch.setattr(ftplib.FTP, "getresp", getresp)


async def test_an_aborted_stou_leaves_no_reserved_name(reactor: Any, tmp_path: Path) -> None:
    def client(number: int) -> list[str]:
        ftp = session(number)
        conn = ftp.transfercmd("STOU gone")
        ftp.putcmd("ABOR")
        replies = [ftp.getmultiline()[:3], ftp.getmultiline()[:3]]
        conn.close()
        ftp.quit()
        return replies

    assert await run(reactor, tmp_path, client) == ["426", "226"]
    assert os.listdir(tmp_path) == []


# -- REIN ------------------------------------------------------------------------------


async def test_rein_logs_out_and_keeps_the_connection(reactor: Any, tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    lines = [*LOGIN, b"CWD sub\r\n", b"TYPE I\r\n", b"OPTS MLST size;\r\n", b"PASV\r\n",
             b"REIN\r\n", b"PWD\r\n", *LOGIN, b"PWD\r\n", b"SIZE sub\r\n", b"MLST\r\n"]

    def client(number: int) -> list[str]:
        with socket.create_connection(("127.0.0.1", number), timeout=10) as sock:
            reader = sock.makefile("rb")
            replies = [reader.readline().decode()]
            for line in lines:
                sock.sendall(line)
                reply = reader.readline().decode()
                while reply[3:4] == "-":  # the rest of a multi-line reply
                    more = reader.readline().decode()
                    reply += more
                    if more[:4] == reply[:3] + " ":
                        break
                replies.append(reply)
            return replies

    replies = await run(reactor, tmp_path, client)
    codes = [r[:3] for r in replies]
    assert codes == ["220", "331", "230", "250", "200", "200", "227", "220", "530", "331",
                     "230", "257", "550", "250"]
    assert replies[11].startswith('257 "/"')          # the working directory was reset
    assert "ASCII" in replies[12]                      # and the type (SIZE refused in A)
    assert "type=dir;size=" in replies[13]              # and the MLST facts


async def test_rein_does_not_reset_the_failed_login_count(reactor: Any,
                                                          tmp_path: Path) -> None:
    lines = [b"USER alice\r\n", b"PASS no\r\n", b"USER alice\r\n", b"PASS no\r\n",
             b"REIN\r\n", b"USER alice\r\n", b"PASS no\r\n"]

    def client(number: int) -> tuple[list[str], bytes]:
        replies = []
        with socket.create_connection(("127.0.0.1", number), timeout=10) as sock:
            reader = sock.makefile("rb")
            replies.append(reader.readline().decode()[:3])
            for line in lines:
                sock.sendall(line)
                replies.append(reader.readline().decode()[:3])
            return replies, reader.read()

    replies, rest = await run(reactor, tmp_path, client)
    assert replies == ["220", "331", "530", "331", "530", "220", "331", "530"]
    assert rest == b""  # closed after the third failure


# -- SITE ---------------------------------------------------------------------------------


async def test_site_chmod_and_help(reactor: Any, tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"x")
    (tmp_path / "f").chmod(0o644)

    def client(number: int) -> list[str]:
        ftp = session(number)
        out = [ftp.sendcmd("SITE HELP"), ftp.sendcmd("SITE CHMOD 600 f"),
               ftp.sendcmd("site chmod 0755 f")]
        for command in ("SITE CHMOD 999 f", "SITE CHMOD 600", "SITE CHMOD 600 missing",
                        "SITE FROB", "SITE CHMOD 600 ../../etc/passwd"):
            try:
                ftp.sendcmd(command)
            except ftplib.error_perm as e:
                out.append(code_of(e))
        ftp.quit()
        return out

    help_, chmod1, chmod2, *errors = await run(reactor, tmp_path, client)
    assert help_.startswith("214-") and "CHMOD" in help_ and help_.endswith("214 Help OK.")
    assert chmod1 == chmod2 == "200 SITE CHMOD successful."
    assert stat.S_IMODE((tmp_path / "f").stat().st_mode) == 0o755
    assert errors == ["501", "501", "550", "501", "550"]


async def test_site_chmod_needs_write(reactor: Any, tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"x")
    (tmp_path / "f").chmod(0o644)
    lines = [*LOGIN, b"SITE CHMOD 600 f\r\n", b"SITE HELP\r\n"]
    replies = await run(reactor, tmp_path, lambda n: raw_exchange(n, lines),
                        permissions=frozenset({"read"}))
    assert replies[3][:3] == "550" and replies[4][:4] == "214-"
    assert stat.S_IMODE((tmp_path / "f").stat().st_mode) == 0o644


# -- MFMT ----------------------------------------------------------------------------------


async def test_mfmt_sets_the_modification_time(reactor: Any, tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"x")

    def client(number: int) -> list[str]:
        ftp = session(number)
        out = [ftp.sendcmd("MFMT 20200102030405 f"), ftp.sendcmd("MDTM f"),
               ftp.sendcmd("FEAT")]
        for command in ("MFMT 2020 f", "MFMT 20200102030405 missing", "MFMT 20200102030405"):
            try:
                ftp.sendcmd(command)
            except ftplib.error_perm as e:
                out.append(code_of(e))
        ftp.quit()
        return out

    mfmt, mdtm, feat, *errors = await run(reactor, tmp_path, client)
    assert mfmt == "213 Modify=20200102030405; f"
    assert mdtm == "213 20200102030405"
    assert " MFMT" in feat.split("\n")
    assert errors == ["501", "550", "501"]
    assert (tmp_path / "f").stat().st_mtime == 1577934245


# -- OPTS MLST -----------------------------------------------------------------------------


async def test_opts_mlst_selects_the_facts(reactor: Any, tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"abc")

    def client(number: int) -> list[Any]:
        ftp = session(number)
        out: list[Any] = [ftp.sendcmd("OPTS MLST size;type;bogus;"), ftp.sendcmd("MLST f"),
                          list(ftp.mlsd()), ftp.sendcmd("FEAT"), ftp.sendcmd("OPTS MLST"),
                          ftp.sendcmd("MLST f")]
        ftp.quit()
        return out

    opts, mlst, mlsd, feat, none, bare = await run(reactor, tmp_path, client)
    assert opts == "200 MLST OPTS type;size;"
    assert " type=file;size=3; /f" in mlst.split("\n")
    assert mlsd == [("f", {"type": "file", "size": "3"})]
    assert " MLST type*;size*;modify;perm;unique;" in feat.split("\n")
    assert none == "200 MLST OPTS"
    assert "  /f" in bare.split("\n")


# -- STAT with a path -------------------------------------------------------------------------


async def test_stat_lists_a_path_on_the_control_connection(reactor: Any,
                                                           tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "1st").write_bytes(b"12345")
    (tmp_path / "d" / "two").write_bytes(b"")

    def client(number: int) -> list[str]:
        ftp = session(number)
        out = [ftp.sendcmd("STAT d"), ftp.sendcmd("STAT -la d/two"), ftp.sendcmd("STAT")]
        try:
            ftp.sendcmd("STAT missing")
        except ftplib.error_perm as e:
            out.append(code_of(e))
        ftp.quit()
        return out

    directory, one, session_status, missing = await run(reactor, tmp_path, client)
    lines = directory.split("\n")
    assert lines[0] == "213-Status of /d:" and lines[-1] == "213 End of status."
    assert lines[1].startswith("-rw") and lines[1].endswith(" 1st")
    assert lines[2].endswith(" two") and len(lines) == 4
    assert one.split("\n")[1].endswith(" two")
    assert session_status.startswith("211-")
    assert missing == "550"


async def test_stat_with_a_path_needs_login(reactor: Any, tmp_path: Path) -> None:
    replies = await run(reactor, tmp_path, lambda n: raw_exchange(n, [b"STAT /\r\n"]))
    assert replies[1][:3] == "530"


async def test_stor_via_stou_in_ascii(reactor: Any, tmp_path: Path) -> None:
    def client(number: int) -> None:
        ftp = session(number)
        ftp.storlines("STOU t.txt", io.BytesIO(b"a\r\nb\r\n"))
        ftp.quit()

    await run(reactor, tmp_path, client)
    assert (tmp_path / "t.txt").read_bytes() == b"a\nb\n"
