"""An FTP server in a few lines: a directory, served to the users of a file or to anyone.

Run it from the repository root::

    python examples/ftp_server.py --root /srv/ftp                 # anonymous, read-only
    torsion ftp --users ftp-users --add-user alice                # make a users file
    python examples/ftp_server.py --root /srv/ftp --users ftp-users

then ``ftp -p 127.0.0.1 2121`` (or ``curl ftp://127.0.0.1:2121/``). Without
``--users``, anyone may log in as ``anonymous`` and download, nothing more. With
it, the users of the file (salted scrypt hashes, checked on the reactor's thread
pool so a login never stalls the other sessions) may also upload, rename and delete.
``torsion ftp`` is this program with more options (TLS, passive port ranges, ...).
"""

from __future__ import annotations

import argparse

import reactor
from protocols.ftp import FTPFactory
from protocols.ftp.users import UsersFile


def main(argv: list[str] | None = None) -> None:
    """Serve --root on --port (default 2121) until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=".", help="the directory to serve")
    parser.add_argument("--users", metavar="FILE", help="users file (default: anonymous)")
    parser.add_argument("--port", type=int, default=2121, help="0: any free port")
    parser.add_argument("--interface", default="127.0.0.1")
    args = parser.parse_args(argv)

    if args.users:
        factory = FTPFactory(args.root, checker=UsersFile(args.users).deferredCheck)
    else:
        factory = FTPFactory(args.root, anonymous=True)  # anonymous is always read-only
    port = reactor.listenTCP(args.port, factory, interface=args.interface)
    # Tells a user (or a test that asked for port 0) where to connect.
    print(f"serving {args.root} on ftp://{args.interface}:{port.getHost().port}/", flush=True)
    reactor.run()


if __name__ == "__main__":
    main()
