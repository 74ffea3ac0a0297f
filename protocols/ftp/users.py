"""A users file for the FTP server: names and salted scrypt password hashes.

The file is text, one user per line::

    # comments and blank lines are ignored
    alice:scrypt$16384$8$1$<salt, base64>$<hash, base64>
    bob:scrypt$16384$8$1$<salt, base64>$<hash, base64>:/bob
    carol:scrypt$16384$8$1$<salt, base64>$<hash, base64>:/shared:perms=read,write,mkdir
    dave:scrypt$16384$8$1$<salt, base64>$<hash, base64>::perms=read

Each line is ``NAME:HASH``, then optionally ``:HOME``, then optionally
``:perms=LIST``. ``HASH`` is ``scrypt$N$r$p$SALT$KEY``: the scrypt cost
parameters, then the salt and the derived key in standard base64
(``hashlib.scrypt``, the password encoded as UTF-8). ``NAME`` holds no ``:``
and no whitespace. ``HOME`` is everything after the second ``:`` up to a
final ``:perms=...`` field (so it may hold colons, but cannot end in
``:perms=...``); how the server maps it onto the served tree is said in
:func:`protocols.ftp.filesystem.homeFilesystem` (in short: a path inside the
served root, which becomes the user's ``/``). ``LIST`` is a comma-separated
list of :data:`PERMISSIONS` names (``read``, ``write``, ``delete``,
``rename``, ``mkdir``), or ``all``; an empty list allows nothing. A user
without a ``perms`` field gets the server's default (read-only, or
everything with ``torsion ftp --writable``). Files written before the
``perms`` field existed read exactly as before. Write entries with
:func:`add_user` (or ``torsion ftp --users FILE --add-user NAME``), which
keeps the file mode 0600 and replaces it atomically.

:class:`UsersFile` checks passwords against such a file; its ``check`` is a
checker for :class:`~protocols.ftp.server.FTPFactory`::

    users = UsersFile("ftp-users")
    factory = FTPFactory("/srv/ftp", checker=users.check)

``check`` blocks for the length of one scrypt (tens of milliseconds with the
default cost): :meth:`UsersFile.deferredCheck` runs it on the reactor's
thread pool instead. :meth:`UsersFile.deferredLogin` does the same but
answers with an :class:`FTPAvatar` carrying the user's home and permissions
(None for a failed login): that is the checker ``torsion ftp`` uses.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import secrets
import tempfile
from dataclasses import dataclass

from deferred import Deferred

__all__ = ["DEFAULT_N", "DEFAULT_P", "DEFAULT_R", "PERMISSIONS", "FTPAvatar", "UserEntry",
           "UsersFile", "add_user", "format_permissions", "hash_password",
           "parse_permissions", "parse_users", "verify_password"]

log = logging.getLogger("protocols.ftp")

#: scrypt's CPU/memory cost: 2**14, as the scrypt paper recommends for logins.
DEFAULT_N = 2 ** 14
#: scrypt's block size.
DEFAULT_R = 8
#: scrypt's parallelism.
DEFAULT_P = 1
_SALT_BYTES = 16
_KEY_BYTES = 32
# Bounds on the parameters a file may name: an absurd N in a hand-edited file
# must be an error, not a login that eats gigabytes of memory.
_MAX_N = 2 ** 20
_MAX_R = 32
_MAX_P = 16

#: Every permission a user can be given.
PERMISSIONS = frozenset({"read", "write", "delete", "rename", "mkdir"})
_PERMS_PREFIX = "perms="


@dataclass(frozen=True)
class FTPAvatar:
    """A logged-in user as a checker describes them to the FTP server.

    A checker returning one of these (instead of True) logs the user in with
    this home and these permissions; a field left None takes the server's
    default (the served root; the factory's ``permissions``).

    Attributes:
        home: The user's home in the served tree (it becomes their ``/``), or None.
        permissions: What the user may do (names from :data:`PERMISSIONS`), or None.
    """

    home: str | None = None
    permissions: frozenset[str] | None = None


def parse_permissions(text: str) -> frozenset[str]:
    """The permissions a comma-separated list names (``all`` is every one; empty is none).

    Raises:
        ValueError: an unknown name.

    Example:
        >>> sorted(parse_permissions("read, mkdir"))
        ['mkdir', 'read']
    """
    names = {word.strip().lower() for word in text.split(",") if word.strip()}
    if names == {"all"}:
        return PERMISSIONS
    unknown = names - PERMISSIONS
    if unknown:
        raise ValueError(f"unknown permission {sorted(unknown)[0]!r} (known: all, "
                         f"{', '.join(sorted(PERMISSIONS))})")
    return frozenset(names)


def format_permissions(permissions: frozenset[str]) -> str:
    """The comma-separated list :func:`parse_permissions` reads back (``all`` for all)."""
    if permissions >= PERMISSIONS:
        return "all"
    return ",".join(sorted(permissions))


@dataclass(frozen=True)
class UserEntry:
    """One line of a users file.

    Attributes:
        name: The login name.
        hash: The ``scrypt$N$r$p$SALT$KEY`` string.
        home: The user's home directory, or None for the served root.
        permissions: The user's permissions, or None for the server's default.
    """

    name: str
    hash: str
    home: str | None = None
    permissions: frozenset[str] | None = None

    def line(self) -> str:
        """The entry as a line of the file (without the newline)."""
        text = f"{self.name}:{self.hash}"
        if self.home is not None:
            text = f"{text}:{self.home}"
        if self.permissions is not None:
            if self.home is None:
                text += ":"
            text = f"{text}:{_PERMS_PREFIX}{format_permissions(self.permissions)}"
        return text

    def avatar(self) -> FTPAvatar:
        """What the server needs to know of this user once logged in."""
        return FTPAvatar(self.home, self.permissions)


def _check_name(name: str) -> None:
    if not name or ":" in name or any(c.isspace() for c in name) or name.startswith("#"):
        raise ValueError(f"a user name must be non-empty, without ':', '#' at the start "
                         f"or whitespace, got {name!r}")


def _maxmem(n: int, r: int, p: int) -> int:
    # scrypt needs about 128*r*(N + p) bytes; OpenSSL's default cap (32 MiB) is too
    # tight for some legal parameters, so ask for what they need plus slack.
    return 128 * r * (n + p) + 1024 ** 2


def _derive(password: str, salt: bytes, n: int, r: int, p: int, length: int) -> bytes:
    # surrogateescape: a password the server decoded from undecodable bytes still
    # hashes the same way every time.
    secret = password.encode("utf-8", "surrogateescape")
    return hashlib.scrypt(secret, salt=salt, n=n, r=r, p=p, dklen=length,
                          maxmem=_maxmem(n, r, p))


def hash_password(password: str, n: int = DEFAULT_N, r: int = DEFAULT_R,
                  p: int = DEFAULT_P) -> str:
    """A ``scrypt$N$r$p$SALT$KEY`` string for ``password`` with a fresh random salt.

    Raises:
        ValueError: the parameters are out of range (N a power of two from 2).

    Example:
        >>> h = hash_password("secret", n=16)
        >>> h.startswith("scrypt$16$8$1$"), verify_password("secret", h)
        (True, True)
    """
    _check_parameters(n, r, p)
    salt = secrets.token_bytes(_SALT_BYTES)
    key = _derive(password, salt, n, r, p, _KEY_BYTES)
    b64 = base64.b64encode
    return f"scrypt${n}${r}${p}${b64(salt).decode()}${b64(key).decode()}"


def _check_parameters(n: int, r: int, p: int) -> None:
    if not (2 <= n <= _MAX_N and n & (n - 1) == 0):
        raise ValueError(f"scrypt N must be a power of two from 2 to {_MAX_N}, got {n}")
    if not (1 <= r <= _MAX_R and 1 <= p <= _MAX_P):
        raise ValueError(f"scrypt r must be 1 to {_MAX_R} and p 1 to {_MAX_P}, "
                         f"got r={r}, p={p}")


def _parse_hash(text: str) -> tuple[int, int, int, bytes, bytes]:
    """(N, r, p, salt, key) of a hash string; ValueError when it is not one."""
    parts = text.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        raise ValueError("expected scrypt$N$r$p$SALT$KEY")
    try:
        n, r, p = (int(part) for part in parts[1:4])
        salt = base64.b64decode(parts[4], validate=True)
        key = base64.b64decode(parts[5], validate=True)
    except (ValueError, binascii.Error):
        raise ValueError("expected numbers N, r, p and base64 SALT and KEY") from None
    _check_parameters(n, r, p)
    if not salt or not key:
        raise ValueError("the salt and the key must not be empty")
    return n, r, p, salt, key


def verify_password(password: str, hashed: str) -> bool:
    """Whether ``password`` matches ``hashed`` (compared in constant time).

    Raises:
        ValueError: ``hashed`` is not a ``scrypt$N$r$p$SALT$KEY`` string.
    """
    n, r, p, salt, key = _parse_hash(hashed)
    return hmac.compare_digest(_derive(password, salt, n, r, p, len(key)), key)


def parse_users(text: str, source: str = "<users>") -> dict[str, UserEntry]:
    """The entries of a users file's text, by name.

    Raises:
        ValueError: a line is malformed or a name repeats; the message names
            ``source`` and the line number.
    """
    entries: dict[str, UserEntry] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split(":", 2)
        try:
            if len(fields) < 2:
                raise ValueError("expected NAME:HASH[:HOME][:perms=LIST]")
            name, hashed = fields[0], fields[1]
            _check_name(name)
            _parse_hash(hashed)
            if name in entries:
                raise ValueError(f"user {name!r} appears twice")
            home, permissions = _split_extra(fields[2] if len(fields) == 3 else "")
        except ValueError as e:
            raise ValueError(f"{source}, line {number}: {e}") from None
        entries[name] = UserEntry(name, hashed, home, permissions)
    return entries


def _split_extra(text: str) -> tuple[str | None, frozenset[str] | None]:
    # What follows NAME:HASH: "HOME", "HOME:perms=LIST", ":perms=LIST" or "perms=LIST".
    head, _, tail = text.rpartition(":")
    if tail.startswith(_PERMS_PREFIX):
        return head or None, parse_permissions(tail[len(_PERMS_PREFIX):])
    return text or None, None


class UsersFile:
    """Check passwords against a users file (see the module docstring).

    The file is read now (so a missing or malformed one is an error at
    start-up) and read again whenever its modification time or size changes,
    so an entry added while the server runs takes effect at the next login.

    Args:
        path: The users file.

    Raises:
        OSError: the file cannot be read.
        ValueError: the file is malformed.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._stamp: tuple[int, int] | None = None
        self.entries: dict[str, UserEntry] = {}
        self._dummy = ""
        self._reload()

    def _reload(self) -> None:
        stat = os.stat(self.path)
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp == self._stamp:
            return
        with open(self.path, encoding="utf-8") as f:
            entries = parse_users(f.read(), self.path)
        # A dummy hash with the parameters of a real entry: an unknown name then
        # costs what a known one does, so timing does not tell them apart.
        first = next(iter(entries.values()), None)
        default = (DEFAULT_N, DEFAULT_R, DEFAULT_P)
        n, r, p = default if first is None else _parse_hash(first.hash)[:3]
        self._dummy = hash_password(secrets.token_hex(8), n, r, p)
        self.entries, self._stamp = entries, stamp

    def _current(self) -> dict[str, UserEntry]:
        try:
            self._reload()
        except (OSError, ValueError):
            # A file broken while serving (half-edited by hand, removed): keep the
            # last good entries rather than locking everyone out; say so.
            log.warning(
                "can't reload the users file %s; using the entries read before",
                self.path, exc_info=True)
        return self.entries

    def check(self, user: str, password: str) -> bool:
        """Whether ``user`` exists and ``password`` is theirs (blocking: one scrypt)."""
        entry = self._current().get(user)
        if entry is None:
            verify_password(password, self._dummy)
            return False
        return verify_password(password, entry.hash)

    def deferredCheck(self, user: str, password: str) -> Deferred[bool]:
        """:meth:`check` on the installed reactor's thread pool, so no login stalls others."""
        import reactor

        d: Deferred[bool] = reactor.deferToThread(self.check, user, password)
        return d

    def login(self, user: str, password: str) -> FTPAvatar | None:
        """``user``'s :class:`FTPAvatar` if ``password`` is theirs, else None (blocking)."""
        # One lookup for the hash and the avatar: a reload in between cannot mix
        # an old password with a new home.
        entry = self._current().get(user)
        if entry is None:
            verify_password(password, self._dummy)
            return None
        return entry.avatar() if verify_password(password, entry.hash) else None

    def deferredLogin(self, user: str, password: str) -> Deferred[FTPAvatar | None]:
        """:meth:`login` on the installed reactor's thread pool: a checker for the server."""
        import reactor

        d: Deferred[FTPAvatar | None] = reactor.deferToThread(self.login, user, password)
        return d

    def home(self, user: str) -> str | None:
        """The home directory the file gives ``user``, or None (the served root)."""
        entry = self.entries.get(user)
        return None if entry is None else entry.home

    def permissions(self, user: str) -> frozenset[str] | None:
        """The permissions the file gives ``user``, or None (the server's default)."""
        entry = self.entries.get(user)
        return None if entry is None else entry.permissions

    def __repr__(self) -> str:
        return f"<UsersFile {self.path!r}: {len(self.entries)} users>"


def add_user(path: str | os.PathLike[str], name: str, password: str,
             home: str | None = None, n: int = DEFAULT_N, r: int = DEFAULT_R,
             p: int = DEFAULT_P, permissions: frozenset[str] | None = None) -> bool:
    """Write ``name``'s entry into the users file at ``path``: added, or updated in place.

    Other lines (comments included) are kept as they are. An updated entry
    keeps its home and permissions unless ``home`` or ``permissions`` is
    given. The new file is written beside the old one with mode 0600 and
    renamed over it, so a reader sees either the old file or the new one,
    never a half-written one.

    Returns:
        True when the user was added, False when an entry was updated.

    Raises:
        ValueError: the name is not valid, or the existing file is malformed.
        OSError: the file cannot be read or written.
    """
    _check_name(name)
    if home is not None and ("\n" in home or "\r" in home):
        raise ValueError("a home directory must be on one line")
    if home is not None and home.rpartition(":")[2].startswith(_PERMS_PREFIX):
        raise ValueError(f"a home directory cannot end in ':{_PERMS_PREFIX}...'")
    if permissions is not None and not permissions <= PERMISSIONS:
        raise ValueError(f"unknown permissions {sorted(permissions - PERMISSIONS)}")
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        text = ""
    existing = parse_users(text, path)  # refuse to rewrite a file we cannot read
    old = existing.get(name)
    if home is None and old is not None:
        home = old.home
    if permissions is None and old is not None:
        permissions = old.permissions
    entry = UserEntry(name, hash_password(password, n, r, p), home, permissions)
    lines = text.splitlines()
    if old is None:
        lines.append(entry.line())
    else:
        for i, raw in enumerate(lines):
            stripped = raw.strip()
            if not stripped.startswith("#") and stripped.split(":", 1)[0] == name:
                lines[i] = entry.line()
                break
    _write_atomically(path, "".join(line + "\n" for line in lines))
    return old is None


def _write_atomically(path: str, text: str) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    # mkstemp creates the file with mode 0600 already: the hashes are never readable
    # by others, not even for a moment.
    fd, temporary = tempfile.mkstemp(prefix=".users-", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        _remove_quietly(temporary)
        raise


def _remove_quietly(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass
