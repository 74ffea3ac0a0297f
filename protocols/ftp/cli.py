"""``torsion ftp``: serve a directory over FTP.

::

    torsion ftp --root /srv/ftp --anonymous              # read-only, anonymous, port 2121
    torsion ftp --root /srv/ftp --users ftp-users --writable
    torsion ftp --users ftp-users --add-user alice       # prompts for the password, exits
    torsion ftp --users ftp-users --add-user alice --password s3cret
    torsion ftp --root /srv/ftp --anonymous --masquerade 203.0.113.7
    torsion ftp --root /srv/ftp --anonymous --passive-ports 60000-60100 --max-connections 50
    torsion ftp --root /srv/ftp --users ftp-users --tls-cert cert.pem --tls-key key.pem \
        --require-tls                                    # explicit FTPS only
    torsion ftp --root /srv/ftp --users ftp-users \
        --listen ssl:990:certKey=cert.pem:privateKey=key.pem  # implicit FTPS

Who may log in:

- ``--anonymous``: the names ``anonymous`` and ``ftp`` with any password.
  Anonymous sessions are always read-only (the server allows them nothing else).
- ``--users FILE``: the users of a users file (``protocols.ftp.users``: one
  ``NAME:scrypt$N$r$p$SALT$KEY[:HOME][:perms=LIST]`` line each). They are read-only
  too unless ``--writable`` is given, which lets them upload, delete, rename and
  make directories; ``--writable`` never applies to anonymous sessions. A user
  whose line has a ``perms=`` field (``read,write,delete,rename,mkdir`` or
  ``all``) gets exactly those permissions, with or without ``--writable``. The file is
  read again when it changes, so users added while the server runs can log in
  at once. Passwords are checked on the reactor's thread pool (scrypt takes
  tens of milliseconds), so a login never stalls the other sessions.

At least one of the two is needed. A user's home is the served root, unless
their line has a ``HOME``: a directory of the served tree (``/alice`` or
``alice``; an absolute path under ``--root`` names the same directory), which
becomes that user's ``/`` (they cannot see or name anything above it). A home
with ``..`` in it, or one that is missing or not a directory at login, refuses
the login (and is logged); homes missing at start-up are warned about.

The passive data ports are any free ports, or free ports of
``--passive-ports FIRST-LAST`` (for a firewall; 425 when all are taken);
``--masquerade ADDR`` is the IPv4 address PASV replies announce when the server
is behind NAT. ``--max-connections N`` and ``--max-connections-per-ip N`` cap
the sessions at once, in all and from one address: one more connection gets
421 and is closed.

FTPS (RFC 4217): ``--tls-cert FILE [--tls-key FILE]`` lets clients secure the
session with AUTH TLS, then their transfers with PBSZ 0 / PROT P (explicit
FTPS, on the ordinary port). Implicit FTPS (TLS from the first byte, port 990
style) is an ``ssl:`` listener: ``--listen ssl:990:certKey=cert.pem:privateKey=key.pem``;
its data connections are TLS unless the client sends PROT C. ``--require-tls``
refuses logins over a clear control connection and transfers without PROT P.

``--users FILE --add-user NAME [--password PW]`` writes or updates NAME's entry
(prompting for the password, twice, when ``--password`` is not given) and exits
without serving. The rest of the command line (``--port``, ``--listen``,
``--reactor``, logging) is the ``torsion`` command's (``reactor.cli``).
Registered as the ``ftp`` entry point of ``torsion.services``; the FTP modules
are imported only when the service is built.
"""

from __future__ import annotations

import argparse
import getpass
import ipaddress
import logging
import os
from typing import Any

__all__ = ["FTPService", "ftp"]

log = logging.getLogger("protocols.ftp.cli")


_RATE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def _rate(flag: str, text: str) -> int:
    """Bytes per second from ``text`` like ``65536``, ``512K``, ``2M`` (binary units)."""
    number, unit = text.strip(), ""
    if number[-1:].upper() in _RATE_UNITS:
        number, unit = number[:-1], number[-1].upper()
    try:
        value = int(float(number) * _RATE_UNITS[unit])
    except ValueError:
        raise ValueError(f"{flag} wants bytes per second like 512K or 2M, got {text!r}") from None
    if value < 1024:
        raise ValueError(f"{flag} must be at least 1K (1024 bytes per second), got {text!r}")
    return value


def _read_password(name: str) -> str:
    """The new password for ``name``, typed twice at the terminal."""
    try:
        first = getpass.getpass(f"Password for {name}: ")
        second = getpass.getpass("Again: ")
    except EOFError:
        raise ValueError("no password given (use --password PW, or type one)") from None
    if first != second:
        raise ValueError("the two passwords differ; nothing written")
    return first


def _home_exists(root: str, home: str) -> bool:
    """Whether ``home`` (a users-file HOME) is a directory under ``root`` now."""
    from .filesystem import LocalFilesystem

    filesystem = LocalFilesystem(root)
    try:
        return os.path.isdir(filesystem.realPath(filesystem.homePath(home)))
    except (PermissionError, ValueError):
        return False


class FTPService:
    """The ``ftp`` subcommand: an :class:`~protocols.ftp.server.FTPFactory` from the options."""

    name = "ftp"
    help = "FTP: serve a directory (anonymous and/or users from a file)"
    default_port = 2121
    udp = False
    description = (
        "Serves the files under --root (default: the current directory) over FTP. "
        "--anonymous lets anyone log in as anonymous or ftp, read-only; --users FILE "
        "lets the users of FILE log in (salted scrypt hashes), read-only unless "
        "--writable. --users FILE --add-user NAME [--password PW] adds or updates a user "
        "(prompting for the password when not given) and exits. --masquerade ADDR is "
        "the IPv4 address PASV replies announce behind NAT; --passive-ports FIRST-LAST "
        "keeps passive data connections in a port range; --max-connections and "
        "--max-connections-per-ip limit sessions. Listens on port 2121 unless "
        "--port or --listen says otherwise.")
    examples = [
        "torsion ftp --root /srv/ftp --anonymous --port 2121",
        "torsion ftp --users ftp-users --add-user alice",
        "torsion ftp --root /srv/ftp --users ftp-users --writable",
        "torsion ftp --root /srv/ftp --anonymous --masquerade 203.0.113.7",
        "torsion ftp --root /srv/ftp --users ftp-users --tls-cert cert.pem --tls-key key.pem "
        "--require-tls",
        "torsion ftp --root /srv/ftp --anonymous --listen ssl:990:certKey=cert.pem:"
        "privateKey=key.pem",
    ]

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """What to serve, who may log in, and the users-file maintenance options."""
        what = parser.add_argument_group("FTP")
        what.add_argument("--root", metavar="DIR",
                          help="serve the files under DIR (default: the current directory)")
        what.add_argument("--anonymous", action="store_true",
                          help="allow anonymous logins (read-only)")
        what.add_argument("--users", metavar="FILE",
                          help="allow the users of FILE (lines NAME:scrypt$...); see "
                               "--add-user")
        what.add_argument("--writable", action="store_true",
                          help="let the --users users upload, delete, rename and make "
                               "directories (anonymous stays read-only)")
        what.add_argument("--passive-ports", metavar="FIRST-LAST",
                          help="listen for passive data connections on free ports of "
                               "this range only (default: any free port)")
        what.add_argument("--max-connections", metavar="N", type=int,
                          help="sessions at once; more get 421 (default: no limit)")
        what.add_argument("--max-connections-per-ip", metavar="N", type=int,
                          help="sessions at once from one address (default: no limit)")
        what.add_argument("--read-limit", metavar="RATE",
                          help="bytes per second each upload may arrive at, e.g. 512K or "
                               "2M (default: no limit)")
        what.add_argument("--write-limit", metavar="RATE",
                          help="bytes per second each download is sent at (default: no "
                               "limit; a limited download is not sent with sendfile)")
        what.add_argument("--masquerade", metavar="ADDR",
                          help="the IPv4 address PASV replies announce (behind NAT)")
        tls = parser.add_argument_group("FTPS (implicit FTPS: --listen ssl:990:certKey=...)")
        tls.add_argument("--tls-cert", metavar="FILE",
                         help="the server certificate (PEM) for AUTH TLS (explicit FTPS); "
                              "the key too unless --tls-key")
        tls.add_argument("--tls-key", metavar="FILE",
                         help="the private key (PEM) of --tls-cert")
        tls.add_argument("--require-tls", action="store_true",
                         help="refuse logins on a clear control connection (530) and "
                              "clear data connections (521: PROT P needed)")
        users = parser.add_argument_group("managing the users file")
        users.add_argument("--add-user", metavar="NAME",
                           help="add NAME to the --users file, or set their password, "
                                "then exit")
        users.add_argument("--home", metavar="DIR",
                           help="with --add-user: the user's home, a directory of the "
                                "served tree (their / once logged in)")
        users.add_argument("--perms", metavar="LIST",
                           help="with --add-user: what the user may do, a comma list of "
                                "read,write,delete,rename,mkdir or 'all' (default: what "
                                "--writable gives everyone)")
        users.add_argument("--password", metavar="PW",
                           help="the password for --add-user (default: ask for it)")

    def build(self, args: argparse.Namespace) -> tuple[Any, Any]:
        """The FTPFactory the options describe; no UDP.

        With ``--add-user`` it writes the entry and exits the process (status 0).

        Raises:
            ValueError: a bad option, a missing root, an unreadable or malformed
                users file (the command prints it and exits with status 2).
        """
        if args.add_user is not None:
            self.add_user(args)
            raise SystemExit(0)
        for option in ("password", "home", "perms"):
            if getattr(args, option, None) is not None:
                raise ValueError(f"--{option} goes with --add-user")
        from .server import ALL_PERMISSIONS, FTPFactory

        root = os.path.abspath(args.root if args.root is not None else os.curdir)
        if not os.path.isdir(root):
            what = "does not exist" if not os.path.exists(root) else "is not a directory"
            raise ValueError(f"--root {args.root or os.curdir}: {root} {what}")
        if not args.anonymous and args.users is None:
            raise ValueError("nobody could log in: give --anonymous, --users FILE or both")
        if args.writable and args.users is None:
            raise ValueError("--writable applies to the --users users (anonymous is always "
                             "read-only): give --users FILE")
        masquerade = None
        if args.masquerade is not None:
            try:
                masquerade = str(ipaddress.IPv4Address(args.masquerade))
            except ValueError:
                raise ValueError(f"--masquerade wants an IPv4 address, got "
                                 f"{args.masquerade!r}") from None
        checker = None
        if args.users is not None:
            users = self.users_file(args.users)
            checker = users.deferredLogin
            missing = sorted(e.name for e in users.entries.values()
                             if e.home is not None and not _home_exists(root, e.home))
            if missing:
                log.warning("home directories in %s missing under %s (those users cannot "
                            "log in until they exist): %s", args.users, root,
                            ", ".join(missing))
        permissions = ALL_PERMISSIONS if args.writable else frozenset({"read"})
        log.info("serving the directory %s", root)
        factory = FTPFactory(root, checker=checker, anonymous=args.anonymous,
                             permissions=permissions, masquerade=masquerade,
                             **self.limits(args), **self.tls_options(args))
        return factory, None

    def tls_options(self, args: argparse.Namespace) -> dict[str, Any]:
        """The FTPFactory arguments of ``--tls-cert``, ``--tls-key`` and ``--require-tls``.

        The certificate is loaded as for an ``ssl:`` endpoint (now, so a bad
        file is reported at start-up). ``--require-tls`` without a
        certificate is only allowed when every listener is ``ssl:``
        (implicit FTPS), or nobody could ever log in.
        """
        cert = getattr(args, "tls_cert", None)
        key = getattr(args, "tls_key", None)
        require = bool(getattr(args, "require_tls", False))
        out: dict[str, Any] = {}
        if key is not None and cert is None:
            raise ValueError("--tls-key goes with --tls-cert")
        if cert is not None:
            from reactor.endpoints import server_context

            out["tlsContext"] = server_context(cert, key)
        elif require:
            listen = getattr(args, "listen", None) or []
            implicit_only = bool(listen) and getattr(args, "port", None) is None and all(
                text.startswith("ssl:") for text in listen)
            if not implicit_only:
                raise ValueError("--require-tls needs --tls-cert FILE (for AUTH TLS), or "
                                 "only ssl: listeners (implicit FTPS)")
        if require:
            out["requireTLS"] = out["requireProtectedData"] = True
        return out

    def limits(self, args: argparse.Namespace) -> dict[str, Any]:
        """The FTPFactory arguments of ``--passive-ports`` and the connection limits."""
        from ._ports import parsePortRange

        out: dict[str, Any] = {}
        if getattr(args, "passive_ports", None) is not None:
            try:
                out["passivePorts"] = parsePortRange(args.passive_ports)
            except ValueError as e:
                raise ValueError(f"--passive-ports: {e}") from None
        for option, name in (("max_connections", "maxConnections"),
                             ("max_connections_per_ip", "maxConnectionsPerIP")):
            value = getattr(args, option, None)
            if value is not None:
                if value < 1:
                    flag = "--" + option.replace("_", "-")
                    raise ValueError(f"{flag} must be at least 1, got {value}")
                out[name] = value
        for option, name in (("read_limit", "readLimit"), ("write_limit", "writeLimit")):
            text = getattr(args, option, None)
            if text is not None:
                out[name] = _rate("--" + option.replace("_", "-"), text)
        return out

    def users_file(self, path: str) -> Any:
        """The :class:`~protocols.ftp.users.UsersFile` at ``path``; ValueError if unusable."""
        from .users import UsersFile

        try:
            return UsersFile(path)
        except OSError as e:
            raise ValueError(f"--users {path}: {e.strerror or e}") from None
        except ValueError as e:
            raise ValueError(f"--users: {e}") from None

    def add_user(self, args: argparse.Namespace) -> None:
        """Write the ``--add-user`` entry into the ``--users`` file."""
        from .users import add_user, parse_permissions

        if args.users is None:
            raise ValueError("--add-user needs --users FILE (the file to write)")
        password = args.password
        if password is None:
            password = _read_password(args.add_user)
        if not password:
            raise ValueError("the password must not be empty")
        permissions = None
        if getattr(args, "perms", None) is not None:
            try:
                permissions = parse_permissions(args.perms)
            except ValueError as e:
                raise ValueError(f"--perms: {e}") from None
        try:
            added = add_user(args.users, args.add_user, password,
                             home=getattr(args, "home", None), permissions=permissions)
        except OSError as e:
            raise ValueError(f"--users {args.users}: {e.strerror or e}") from None
        verb = "added" if added else "updated the password of"
        print(f"torsion ftp: {verb} {args.add_user} in {args.users}", flush=True)

    def __repr__(self) -> str:
        return "<torsion service 'ftp'>"


ftp = FTPService()
