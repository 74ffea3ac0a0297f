"""Mirror a directory tree of an FTP server into a local directory, with FTPClient.

Run it from the repository root::

    python examples/ftp_mirror.py ftp://127.0.0.1:2121/ ./copy
    python examples/ftp_mirror.py ftp://alice:secret@ftp.example.org/pub ./pub

Directories are walked recursively (MLSD; LIST for servers without it). A file
already present locally with the size the server lists is skipped, so running it
again fetches only what is new or has changed size; a download goes to
``NAME.part`` and is renamed into place once complete, so an interrupted run
never leaves a truncated file that a later run would take for finished. Names
the server lists are checked before they become local paths: a hostile server
cannot make the mirror write outside the target directory.
"""

from __future__ import annotations

import argparse
import os
import posixpath
import sys
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import reactor
from protocols.ftp import FTPClient, FTPCommandError, FTPEntry, connectFTP


@dataclass
class Stats:
    """What one run did."""

    downloaded: int = 0
    bytes: int = 0
    skipped: int = 0


async def listing(ftp: FTPClient, path: str) -> list[FTPEntry]:
    """The entries of remote directory ``path``."""
    try:
        return await ftp.mlsd(path)
    except FTPCommandError as e:
        if e.code not in (500, 501, 502):  # anything but "MLSD not understood"
            raise
        return await ftp.list(path)


def safe_name(name: str) -> bool:
    """Whether ``name`` is one plain file or directory name (no ``/``, ``..``, ...)."""
    return name not in ("", ".", "..") and "/" not in name and "\\" not in name \
        and "\0" not in name


async def mirror(ftp: FTPClient, remote: str, local: str, stats: Stats) -> None:
    """Copy the tree under remote directory ``remote`` into local directory ``local``."""
    os.makedirs(local, exist_ok=True)
    for entry in await listing(ftp, remote):
        if entry.type in ("cdir", "pdir"):
            continue  # MLSD's own "." and ".."
        if not safe_name(entry.name):
            print(f"skipping the unsafe name {entry.name!r} in {remote}", file=sys.stderr)
            continue
        remote_path = posixpath.join(remote, entry.name)
        local_path = os.path.join(local, entry.name)
        if entry.type == "dir":
            await mirror(ftp, remote_path, local_path, stats)
        elif entry.type == "file":
            await fetch(ftp, remote_path, local_path, entry.size, stats)
        else:
            print(f"skipping {remote_path} ({entry.type or 'unknown type'})", file=sys.stderr)


async def fetch(ftp: FTPClient, remote_path: str, local_path: str, size: int | None,
                stats: Stats) -> None:
    """Download one file, unless a local copy of the same size is there already."""
    if size is not None and os.path.isfile(local_path) and os.path.getsize(local_path) == size:
        stats.skipped += 1
        return
    partial = local_path + ".part"
    # The client writes each chunk as it arrives: the file never sits in memory.
    with open(partial, "wb") as f:
        await ftp.retrieveFile(remote_path, f)
    os.replace(partial, local_path)
    stats.downloaded += 1
    stats.bytes += os.path.getsize(local_path)
    print(f"got {remote_path}", flush=True)


async def main(r: Any, argv: list[str]) -> None:
    """Connect, log in, mirror, log out; print what was done."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="ftp://[USER[:PASSWORD]@]HOST[:PORT]/DIRECTORY")
    parser.add_argument("local", help="the local directory to mirror into")
    args = parser.parse_args(argv)
    url = urlsplit(args.url)
    if url.scheme != "ftp" or not url.hostname:
        parser.error(f"not an ftp:// URL: {args.url}")
    user = unquote(url.username) if url.username else "anonymous"
    password = unquote(url.password) if url.password else ""

    ftp = await connectFTP(r, url.hostname, url.port or 21, user, password)
    stats = Stats()
    try:
        await mirror(ftp, unquote(url.path) or "/", args.local, stats)
    finally:
        await ftp.quit()
    print(f"downloaded {stats.downloaded} files ({stats.bytes} bytes), "
          f"skipped {stats.skipped} already present", flush=True)


if __name__ == "__main__":
    reactor.react(main, [sys.argv[1:]])
