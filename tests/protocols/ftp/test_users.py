"""The FTP users file (``protocols.ftp.users``): hashing, parsing, checking, writing.

scrypt runs with N=16 here so the tests stay fast; the code is the same.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from protocols.ftp.users import (
    UsersFile,
    add_user,
    hash_password,
    parse_users,
    verify_password,
)

N = 16


def test_hash_format_and_verify() -> None:
    hashed = hash_password("s3cret", n=N)
    kind, n, r, p, salt, key = hashed.split("$")
    assert (kind, n, r, p) == ("scrypt", "16", "8", "1")
    assert salt and key
    assert verify_password("s3cret", hashed)
    assert not verify_password("s3cret ", hashed)
    assert not verify_password("", hashed)


def test_salt_is_fresh_each_time() -> None:
    assert hash_password("same", n=N) != hash_password("same", n=N)


def test_non_ascii_password() -> None:
    hashed = hash_password("pässwörd", n=N)
    assert verify_password("pässwörd", hashed)
    assert not verify_password("passwort", hashed)


@pytest.mark.parametrize("n", [0, 1, 3, 2 ** 21])
def test_bad_cost_refused(n: int) -> None:
    with pytest.raises(ValueError, match="power of two"):
        hash_password("x", n=n)


@pytest.mark.parametrize("hashed", [
    "md5$16$8$1$AAAA$AAAA", "scrypt$16$8$1$AAAA", "scrypt$x$8$1$AAAA$AAAA",
    "scrypt$16$8$1$not base64!$AAAA", "scrypt$16$8$1$$AAAA", "scrypt$1048577$8$1$AAAA$AAAA",
])
def test_verify_rejects_malformed_hashes(hashed: str) -> None:
    with pytest.raises(ValueError):
        verify_password("x", hashed)


def test_parse_users_fields_comments_and_home() -> None:
    a, b = hash_password("a", n=N), hash_password("b", n=N)
    text = f"# users\n\nalice:{a}\n  bob:{b}:/srv/ftp:odd/bob  \ncarol:{a}:\n"
    entries = parse_users(text)
    assert sorted(entries) == ["alice", "bob", "carol"]
    assert entries["alice"].home is None
    assert entries["bob"].home == "/srv/ftp:odd/bob"
    assert entries["carol"].home is None
    assert entries["bob"].hash == b


@pytest.mark.parametrize("line, message", [
    ("alice", "NAME:HASH"),
    ("alice:plain-password", "scrypt"),
    (":scrypt$16$8$1$AAAA$AAAA", "user name"),
    ("al ice:scrypt$16$8$1$AAAA$AAAA", "user name"),
])
def test_parse_users_reports_the_line(line: str, message: str) -> None:
    with pytest.raises(ValueError, match=f"users.txt, line 2: .*{message}"):
        parse_users(f"# first\n{line}\n", "users.txt")


def test_parse_users_refuses_duplicates() -> None:
    hashed = hash_password("a", n=N)
    with pytest.raises(ValueError, match="line 2: user 'alice' appears twice"):
        parse_users(f"alice:{hashed}\nalice:{hashed}\n")


def test_add_user_creates_a_private_file(tmp_path: Path) -> None:
    path = tmp_path / "users"
    assert add_user(path, "alice", "wonderland", n=N) is True
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    users = UsersFile(path)
    assert users.check("alice", "wonderland")
    assert not users.check("alice", "Wonderland")
    assert not users.check("bob", "wonderland")
    assert users.home("alice") is None
    assert os.listdir(tmp_path) == ["users"]  # no temporary file left behind


def test_add_user_updates_in_place_keeping_other_lines(tmp_path: Path) -> None:
    path = tmp_path / "users"
    other = hash_password("b", n=N)
    path.write_text(f"# header\nbob:{other}\nalice:{hash_password('old', n=N)}:/home/a\n")
    path.chmod(0o644)
    assert add_user(path, "alice", "new", n=N) is False
    lines = path.read_text().splitlines()
    assert lines[0] == "# header"
    assert lines[1] == f"bob:{other}"
    assert lines[2].startswith("alice:scrypt$16$") and lines[2].endswith(":/home/a")
    assert len(lines) == 3
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    users = UsersFile(path)
    assert users.check("alice", "new")
    assert not users.check("alice", "old")
    assert users.check("bob", "b")
    assert users.home("alice") == "/home/a"


def test_add_user_sets_a_home(tmp_path: Path) -> None:
    path = tmp_path / "users"
    add_user(path, "alice", "pw", home="/srv/alice", n=N)
    assert UsersFile(path).home("alice") == "/srv/alice"


def test_add_user_refuses_bad_names_and_malformed_files(tmp_path: Path) -> None:
    path = tmp_path / "users"
    with pytest.raises(ValueError, match="user name"):
        add_user(path, "a:b", "pw", n=N)
    assert not path.exists()
    path.write_text("garbage\n")
    with pytest.raises(ValueError, match="line 1"):
        add_user(path, "alice", "pw", n=N)
    assert path.read_text() == "garbage\n"  # left as it was


def test_users_file_errors_at_start(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        UsersFile(tmp_path / "missing")
    bad = tmp_path / "bad"
    bad.write_text("alice:nope\n")
    with pytest.raises(ValueError, match="line 1"):
        UsersFile(bad)


def test_users_file_reloads_when_changed(tmp_path: Path) -> None:
    path = tmp_path / "users"
    add_user(path, "alice", "one", n=N)
    users = UsersFile(path)
    assert not users.check("bob", "two")
    add_user(path, "bob", "two", n=N)
    assert users.check("bob", "two")
    assert users.check("alice", "one")


def test_users_file_keeps_entries_when_the_file_breaks(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "users"
    add_user(path, "alice", "one", n=N)
    users = UsersFile(path)
    path.write_text("half-written line that is longer than before\n")
    assert users.check("alice", "one")
    assert "can't reload the users file" in caplog.text


def test_unknown_user_still_costs_a_hash(tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "users"
    add_user(path, "alice", "one", n=N)
    users = UsersFile(path)
    calls: list[int] = []
    import protocols.ftp.users as module

    real = module._derive

    def counting(password: str, salt: bytes, n: int, r: int, p: int, length: int) -> bytes:
        calls.append(n)
        return real(password, salt, n, r, p, length)

    monkeypatch.setattr(module, "_derive", counting)
    assert not users.check("nobody", "one")
    assert not users.check("alice", "two")
    # The same scrypt work, with the same cost, whether the name exists or not.
    assert calls == [N, N]


def test_deferred_check_runs_on_the_thread_pool(tmp_path: Path, reactor: object) -> object:
    path = tmp_path / "users"
    add_user(path, "alice", "one", n=N)
    users = UsersFile(path)
    import threading

    main = threading.get_ident()
    seen: list[int] = []
    real = users.check

    def check(user: str, password: str) -> bool:
        seen.append(threading.get_ident())
        return real(user, password)

    users.check = check  # type: ignore[method-assign]
    d = users.deferredCheck("alice", "one")

    def done(ok: bool) -> None:
        assert ok is True
        assert seen and seen[0] != main

    return d.addCallback(done)


# -- per-user permissions and avatars --------------------------------------------------


def test_parse_users_perms_field_is_optional_and_backward_compatible() -> None:
    from protocols.ftp.users import PERMISSIONS

    h = hash_password("a", n=N)
    text = (f"old:{h}:/srv/ftp:odd/bob\n"       # an old line: HOME with a colon
            f"homeperms:{h}:/alice:perms=read,mkdir\n"
            f"permsonly:{h}::perms=all\n"
            f"bare:{h}:perms=\n"                 # no home, nothing allowed
            f"spaced:{h}:/x:perms=Read, write\n")
    entries = parse_users(text)
    assert (entries["old"].home, entries["old"].permissions) == ("/srv/ftp:odd/bob", None)
    assert entries["homeperms"].home == "/alice"
    assert entries["homeperms"].permissions == frozenset({"read", "mkdir"})
    assert (entries["permsonly"].home, entries["permsonly"].permissions) == (None, PERMISSIONS)
    assert (entries["bare"].home, entries["bare"].permissions) == (None, frozenset())
    assert entries["spaced"].permissions == frozenset({"read", "write"})
    # Each entry writes back to the line it came from (up to spelling of the list).
    for entry in entries.values():
        assert parse_users(entry.line())[entry.name] == entry


def test_parse_users_refuses_unknown_permissions() -> None:
    with pytest.raises(ValueError, match="line 1: unknown permission 'fly'"):
        parse_users(f"a:{hash_password('a', n=N)}:/h:perms=read,fly\n")


def test_add_user_writes_and_keeps_permissions(tmp_path: Path) -> None:
    path = tmp_path / "users"
    add_user(path, "alice", "pw", home="/alice", permissions=frozenset({"read"}), n=N)
    assert path.read_text().strip().endswith(":/alice:perms=read")
    add_user(path, "alice", "new", n=N)  # a password change keeps home and permissions
    users = UsersFile(path)
    assert users.home("alice") == "/alice"
    assert users.permissions("alice") == frozenset({"read"})
    add_user(path, "bob", "pw", permissions=frozenset(), n=N)
    assert UsersFile(path).entries["bob"].line().endswith("::perms=")
    with pytest.raises(ValueError, match="unknown permissions"):
        add_user(path, "carol", "pw", permissions=frozenset({"fly"}), n=N)
    with pytest.raises(ValueError, match="cannot end in"):
        add_user(path, "carol", "pw", home="/x:perms=all", n=N)
    assert "carol" not in UsersFile(path).entries


def test_login_answers_an_avatar_or_none(tmp_path: Path) -> None:
    from protocols.ftp.users import FTPAvatar

    path = tmp_path / "users"
    add_user(path, "alice", "pw", home="/alice", permissions=frozenset({"read"}), n=N)
    add_user(path, "bob", "pw", n=N)
    users = UsersFile(path)
    assert users.login("alice", "pw") == FTPAvatar("/alice", frozenset({"read"}))
    assert users.login("bob", "pw") == FTPAvatar(None, None)
    assert users.login("alice", "wrong") is None
    assert users.login("nobody", "pw") is None


def test_deferred_login_runs_on_the_thread_pool(reactor: object, tmp_path: Path) -> object:
    from protocols.ftp.users import FTPAvatar

    path = tmp_path / "users"
    add_user(path, "alice", "pw", home="/a", n=N)
    d = UsersFile(path).deferredLogin("alice", "pw")
    return d.addCallback(lambda avatar: _equal(avatar, FTPAvatar("/a", None)))


def _equal(got: object, expected: object) -> None:
    assert got == expected
