"""A users file for the FTP server: names and salted scrypt password hashes.

The file is text, one user per line::

    # comments and blank lines are ignored
    alice:scrypt$16384$8$1$<salt, base64>$<hash, base64>
    bob:scrypt$16384$8$1$<salt, base64>$<hash, base64>:/srv/ftp/bob

Each line is ``NAME:HASH`` with an optional ``:HOME`` after it. ``HASH`` is
``scrypt$N$r$p$SALT$KEY``: the scrypt cost parameters, then the salt and the
derived key in standard base64 (``hashlib.scrypt``, the password encoded as
UTF-8). ``NAME`` holds no ``:`` and no whitespace; ``HOME`` is everything after
the second ``:`` (so it may hold colons). Write entries with :func:`add_user`
(or ``torsion ftp --users FILE --add-user NAME``), which keeps the file mode
0600 and replaces it atomically.

:class:`UsersFile` checks passwords against such a file; its ``check`` is a
checker for :class:`~protocols.ftp.server.FTPFactory`::

    users = UsersFile("ftp-users")
    factory = FTPFactory("/srv/ftp", checker=users.check)

``check`` blocks for the length of one scrypt (tens of milliseconds with the
default cost): :meth:`UsersFile.deferredCheck` runs it on the reactor's
thread pool instead, which is what ``torsion ftp`` uses.
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

__all__ = ["DEFAULT_N", "DEFAULT_P", "DEFAULT_R", "UserEntry", "UsersFile", "add_user",
           "hash_password", "parse_users", "verify_password"]

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


@dataclass(frozen=True)
class UserEntry:
    """One line of a users file.

    Attributes:
        name: The login name.
        hash: The ``scrypt$N$r$p$SALT$KEY`` string.
        home: The user's home directory, or None for the served root.
    """

    name: str
    hash: str
    home: str | None = None

    def line(self) -> str:
        """The entry as a line of the file (without the newline)."""
        text = f"{self.name}:{self.hash}"
        return text if self.home is None else f"{text}:{self.home}"


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
                raise ValueError("expected NAME:HASH[:HOME]")
            name, hashed = fields[0], fields[1]
            _check_name(name)
            _parse_hash(hashed)
            if name in entries:
                raise ValueError(f"user {name!r} appears twice")
        except ValueError as e:
            raise ValueError(f"{source}, line {number}: {e}") from None
        home = fields[2] if len(fields) == 3 and fields[2] else None
        entries[name] = UserEntry(name, hashed, home)
    return entries


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

    def home(self, user: str) -> str | None:
        """The home directory the file gives ``user``, or None (the served root)."""
        entry = self.entries.get(user)
        return None if entry is None else entry.home

    def __repr__(self) -> str:
        return f"<UsersFile {self.path!r}: {len(self.entries)} users>"


def add_user(path: str | os.PathLike[str], name: str, password: str,
             home: str | None = None, n: int = DEFAULT_N, r: int = DEFAULT_R,
             p: int = DEFAULT_P) -> bool:
    """Write ``name``'s entry into the users file at ``path``: added, or updated in place.

    Other lines (comments included) are kept as they are. An updated entry
    keeps its home unless ``home`` is given. The new file is written beside
    the old one with mode 0600 and renamed over it, so a reader sees either
    the old file or the new one, never a half-written one.

    Returns:
        True when the user was added, False when an entry was updated.

    Raises:
        ValueError: the name is not valid, or the existing file is malformed.
        OSError: the file cannot be read or written.
    """
    _check_name(name)
    if home is not None and ("\n" in home or "\r" in home):
        raise ValueError("a home directory must be on one line")
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
    entry = UserEntry(name, hash_password(password, n, r, p), home)
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
