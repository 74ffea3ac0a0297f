"""``torsion ftp``: serve a directory over FTP.

::

    torsion ftp --root /srv/ftp --anonymous              # read-only, anonymous, port 2121
    torsion ftp --root /srv/ftp --users ftp-users --writable
    torsion ftp --users ftp-users --add-user alice       # prompts for the password, exits
    torsion ftp --users ftp-users --add-user alice --password s3cret
    torsion ftp --root /srv/ftp --anonymous --masquerade 203.0.113.7

Who may log in:

- ``--anonymous``: the names ``anonymous`` and ``ftp`` with any password.
  Anonymous sessions are always read-only (the server allows them nothing else).
- ``--users FILE``: the users of a users file (``protocols.ftp.users``: one
  ``NAME:scrypt$N$r$p$SALT$KEY[:HOME]`` line each). They are read-only too unless
  ``--writable`` is given, which lets them upload, delete, rename and make
  directories; ``--writable`` never applies to anonymous sessions. The file is
  read again when it changes, so users added while the server runs can log in
  at once. Passwords are checked on the reactor's thread pool (scrypt takes
  tens of milliseconds), so a login never stalls the other sessions.

At least one of the two is needed. Every user's home is the served root: the
server does not yet give users their own directory, so a ``HOME`` field in the
file is logged and otherwise ignored. The passive data ports are any free
ports (the server has no port range option yet); ``--masquerade ADDR`` is the
IPv4 address PASV replies announce when the server is behind NAT.

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
        "the IPv4 address PASV replies announce behind NAT. Listens on port 2121 unless "
        "--port or --listen says otherwise.")
    examples = [
        "torsion ftp --root /srv/ftp --anonymous --port 2121",
        "torsion ftp --users ftp-users --add-user alice",
        "torsion ftp --root /srv/ftp --users ftp-users --writable",
        "torsion ftp --root /srv/ftp --anonymous --masquerade 203.0.113.7",
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
        what.add_argument("--masquerade", metavar="ADDR",
                          help="the IPv4 address PASV replies announce (behind NAT)")
        users = parser.add_argument_group("managing the users file")
        users.add_argument("--add-user", metavar="NAME",
                           help="add NAME to the --users file, or set their password, "
                                "then exit")
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
        if args.password is not None:
            raise ValueError("--password goes with --add-user")
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
            checker = users.deferredCheck
            homes = sorted(e.name for e in users.entries.values() if e.home is not None)
            if homes:
                log.warning("home directories in %s are not supported yet; %s will see "
                            "the served root", args.users, ", ".join(homes))
        permissions = ALL_PERMISSIONS if args.writable else frozenset({"read"})
        log.info("serving the directory %s", root)
        factory = FTPFactory(root, checker=checker, anonymous=args.anonymous,
                             permissions=permissions, masquerade=masquerade)
        return factory, None

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
        from .users import add_user

        if args.users is None:
            raise ValueError("--add-user needs --users FILE (the file to write)")
        password = args.password
        if password is None:
            password = _read_password(args.add_user)
        if not password:
            raise ValueError("the password must not be empty")
        try:
            added = add_user(args.users, args.add_user, password)
        except OSError as e:
            raise ValueError(f"--users {args.users}: {e.strerror or e}") from None
        verb = "added" if added else "updated the password of"
        print(f"torsion ftp: {verb} {args.add_user} in {args.users}", flush=True)

    def __repr__(self) -> str:
        return "<torsion service 'ftp'>"


ftp = FTPService()
