"""The sans-I/O FTP command layer and path arithmetic, with bytes alone."""

from __future__ import annotations

import stat

import pytest

from protocols.ftp.commands import (
    COMMANDS,
    TOO_LONG,
    Arg,
    Command,
    CommandError,
    LineSplitter,
    check_command,
    format_epsv,
    format_pasv,
    format_reply,
    parse_command,
    parse_eprt,
    parse_port,
)
from protocols.ftp.filesystem import FileInfo, formatFacts, formatListLine, resolvePath


def test_lines_end_in_crlf_or_lf_and_may_arrive_byte_by_byte() -> None:
    splitter = LineSplitter()
    out = []
    for byte in b"USER a\r\nPASS b\nNOOP":
        out += splitter.feed(bytes([byte]))
    assert out == [b"USER a", b"PASS b"]
    assert splitter.feed(b"\r\n") == [b"NOOP"]


def test_an_overlong_line_is_reported_once_and_the_next_line_survives() -> None:
    splitter = LineSplitter(max_length=10)
    assert splitter.feed(b"A" * 11 + b"\r\nNOOP\r\n") == [TOO_LONG, b"NOOP"]
    # Unterminated: reported as soon as it passes the bound, then dropped.
    assert splitter.feed(b"B" * 30) == [TOO_LONG]
    assert splitter.feed(b"B" * 30) == []
    assert splitter.feed(b"BB\r\nPWD\r\n") == [b"PWD"]
    assert len(splitter._buffer) == 0


def test_parse_command_uppercases_the_verb_and_keeps_the_argument() -> None:
    assert parse_command(b"retr My File.txt") == Command("RETR", "My File.txt")
    assert parse_command(b"PWD") == Command("PWD", "")
    assert parse_command("STOR caf\u00e9".encode()) == Command("STOR", "caf\u00e9")
    # Telnet IP/Synch before ABOR (RFC 959 4.1.3) is skipped.
    assert parse_command(b"\xff\xf4\xff\xf2ABOR") == Command("ABOR", "")


@pytest.mark.parametrize("line", [b"", b" ", b"X", b"TOOLONG x", b"12 3", b"\x00\x01\x02",
                                  b"US\xffR x"])
def test_garbage_is_500(line: bytes) -> None:
    with pytest.raises(CommandError) as info:
        parse_command(line)
    assert info.value.code == 500


@pytest.mark.parametrize("line", [b"RETR a\x00b", b"RETR \xff\xfe"])
def test_bad_argument_bytes_are_501(line: bytes) -> None:
    with pytest.raises(CommandError) as info:
        parse_command(line)
    assert info.value.code == 501


@pytest.mark.parametrize(("command", "logged_in", "perms", "code"), [
    (Command("XYZ", ""), True, None, 500),
    (Command("SMNT", "/mnt"), True, None, 502),
    (Command("ACCT", "x"), True, None, 502),
    (Command("RETR", "x"), False, None, 530),
    (Command("LIST", ""), False, None, 530),
    (Command("RETR", ""), True, None, 501),
    (Command("PWD", "x"), True, None, 501),
    (Command("STOR", "x"), True, frozenset({"read"}), 550),
    (Command("DELE", "x"), True, frozenset({"read", "write"}), 550),
    (Command("MKD", "x"), True, frozenset({"read"}), 550),
])
def test_check_command_refusals(command: Command, logged_in: bool,
                                perms: frozenset[str] | None, code: int) -> None:
    with pytest.raises(CommandError) as info:
        check_command(command, logged_in, perms)
    assert info.value.code == code


def test_check_command_accepts_and_returns_the_row() -> None:
    assert check_command(Command("USER", "bob"), False).name == "USER"
    assert check_command(Command("LIST", ""), True, frozenset({"read"})).arg is Arg.OPTIONAL
    assert check_command(Command("STOR", "f"), True, frozenset({"write"})).perm == "write"
    assert all(spec.name == name for name, spec in COMMANDS.items())


def test_single_and_multi_line_replies() -> None:
    assert format_reply(200, "OK.") == b"200 OK.\r\n"
    assert format_reply(211, "Features:\n EPSV\n123 looks like a code\nEnd") == (
        b"211-Features:\r\n EPSV\r\n 123 looks like a code\r\n211 End\r\n")
    # A CR or LF inside a name cannot forge a reply line of its own.
    assert format_reply(550, "no\r\n230 fake") == b"550-no\r\n550 230 fake\r\n"
    with pytest.raises(ValueError):
        format_reply(42, "x")


def test_passive_replies_and_port_arguments() -> None:
    assert format_pasv("127.0.0.1", 0x1234) == "Entering Passive Mode (127,0,0,1,18,52)."
    assert format_epsv(2121) == "Entering Extended Passive Mode (|||2121|)."
    assert parse_port("127,0,0,1,18,52") == ("127.0.0.1", 0x1234)
    assert parse_eprt("|1|127.0.0.1|2121|") == ("127.0.0.1", 2121)
    assert parse_eprt("|2|::1|2121|") == ("::1", 2121)
    for bad in ("1,2,3", "1,2,3,4,5,256", "a,b,c,d,e,f"):
        with pytest.raises(CommandError):
            parse_port(bad)
    for bad in ("|1|::1|21|", "|1|127.0.0.1|0|", "|3|x|1|", "1|127.0.0.1|21|", "|1|x|y|"):
        with pytest.raises(CommandError):
            parse_eprt(bad)


@pytest.mark.parametrize(("cwd", "arg", "expected"), [
    ("/", "a", "/a"),
    ("/a/b", "..", "/a"),
    ("/a", "../../..", "/"),
    ("/a", "../../etc/passwd", "/etc/passwd"),
    ("/a", "/x/./y/", "/x/y"),
    ("/a", "//etc", "/etc"),
    ("/", "", "/"),
])
def test_resolve_path_never_climbs_above_root(cwd: str, arg: str, expected: str) -> None:
    assert resolvePath(cwd, arg) == expected


def test_resolve_path_refuses_nul() -> None:
    with pytest.raises(ValueError):
        resolvePath("/", "a\x00b")


def test_list_line_and_facts() -> None:
    info = FileInfo(name="a.txt", isDirectory=False, size=1234, mtime=0.0,
                    mode=stat.S_IFREG | 0o644, nlink=1, owner="bob", group="staff",
                    unique="1g2")
    line = formatListLine(info, now=10.0)
    assert line.startswith("-rw-r--r--   1 bob      staff        1234 Jan 01 00:00 a.txt")
    assert formatListLine(info, now=400 * 86400.0).endswith("Jan 01  1970 a.txt")
    assert formatFacts(info, frozenset({"read"})) == (
        "type=file;size=1234;modify=19700101000000;perm=r;unique=1g2; a.txt")
    directory = FileInfo(name="d", isDirectory=True, size=0, mtime=0.0,
                         mode=stat.S_IFDIR | 0o755, nlink=2, owner="0", group="0",
                         unique="1g3")
    assert "type=dir;" in formatFacts(directory, frozenset({"read", "mkdir"}))
    assert "perm=elm;" in formatFacts(directory, frozenset({"read", "mkdir"}))
    every = frozenset({"read", "write", "delete", "rename", "mkdir"})
    assert "perm=elcdpfm;" in formatFacts(directory, every)
    assert "perm=rawdf;" in formatFacts(info, every)
