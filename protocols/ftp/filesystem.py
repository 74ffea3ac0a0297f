"""The files an FTP server serves: an interface returning Deferreds, and a rooted local one.

Paths given to an :class:`IFilesystem` are virtual: absolute POSIX paths
such as ``"/pub/a.txt"`` in the served tree, made by :func:`resolvePath`
from the session's working directory and a client's argument.
:class:`LocalFilesystem` maps them under its root and refuses every path
whose real location (``..``, absolute paths, symlinks all resolved) lies
outside it. Its blocking calls run on the reactor's thread pool, so a slow
disk delays only the session waiting for it.

Errors are ``OSError`` subclasses (``FileNotFoundError``,
``PermissionError``, ...); the server answers them with 550.
"""

from __future__ import annotations

import grp
import os
import posixpath
import pwd
import stat
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any, Protocol, TypeVar

from deferred import Deferred

__all__ = [
    "FileInfo",
    "IFilesystem",
    "IUpload",
    "LocalFilesystem",
    "formatFacts",
    "formatListLine",
    "resolvePath",
]

_T = TypeVar("_T")


def resolvePath(cwd: str, path: str) -> str:
    """The virtual absolute path that ``path`` names from directory ``cwd``.

    ``..`` never climbs above ``/``: ``resolvePath("/a", "../../etc")`` is
    ``"/etc"``, inside the served tree.

    Raises:
        ValueError: ``path`` contains a NUL byte.
    """
    if "\x00" in path:
        raise ValueError("NUL in path")
    joined = posixpath.join(cwd, path)
    # normpath keeps a leading "//" (POSIX allows it a meaning): strip it.
    normal = posixpath.normpath("/" + joined.lstrip("/"))
    return "/" + normal.lstrip("/")


@dataclass(frozen=True)
class FileInfo:
    """What a listing says about one file.

    Attributes:
        name: The file's name (no directory part).
        isDirectory: True for directories.
        size: Size in bytes.
        mtime: Modification time, seconds since the epoch.
        mode: ``st_mode`` (type and permission bits).
        nlink: Number of hard links.
        owner: Owner's name (or number).
        group: Group's name (or number).
        unique: An identifier unique to the file (device and inode).
    """

    name: str
    isDirectory: bool
    size: int
    mtime: float
    mode: int
    nlink: int
    owner: str
    group: str
    unique: str


class IUpload(Protocol):
    """A file being written; nothing is visible at its path until :meth:`commit`."""

    def write(self, data: bytes) -> Deferred[None]:
        """Write ``data`` at the end; the Deferred fires once written."""

    def commit(self) -> Deferred[None]:
        """Close the file and put it into place."""

    def abort(self) -> Deferred[None]:
        """Close and remove what was written; any older file stays as it was."""


class IFilesystem(Protocol):
    """Operations on virtual paths; each returns a Deferred."""

    def stat(self, path: str) -> Deferred[FileInfo]:
        """The facts of ``path``."""

    def listDirectory(self, path: str) -> Deferred[list[FileInfo]]:
        """The entries of directory ``path``, sorted by name."""

    def openForReading(self, path: str) -> Deferred[IO[bytes]]:
        """Open regular file ``path`` for reading (binary)."""

    def openForWriting(self, path: str, append: bool = False) -> Deferred[IUpload]:
        """Start writing file ``path`` (replacing it on commit, or appending)."""

    def makeDirectory(self, path: str) -> Deferred[None]:
        """Create directory ``path``."""

    def removeDirectory(self, path: str) -> Deferred[None]:
        """Remove empty directory ``path``."""

    def removeFile(self, path: str) -> Deferred[None]:
        """Remove file ``path``."""

    def rename(self, fromPath: str, toPath: str) -> Deferred[None]:
        """Rename ``fromPath`` to ``toPath``."""


def _name_of(table: Callable[[int], Any], number: int, cache: dict[int, str]) -> str:
    name = cache.get(number)
    if name is None:
        try:
            name = str(table(number)[0])
        except (KeyError, OverflowError):
            name = str(number)
        cache[number] = name
    return name


_owners: dict[int, str] = {}
_groups: dict[int, str] = {}


def _info(name: str, st: os.stat_result) -> FileInfo:
    return FileInfo(
        name=name,
        isDirectory=stat.S_ISDIR(st.st_mode),
        size=st.st_size,
        mtime=st.st_mtime,
        mode=st.st_mode,
        nlink=st.st_nlink,
        owner=_name_of(pwd.getpwuid, st.st_uid, _owners),
        group=_name_of(grp.getgrgid, st.st_gid, _groups),
        unique=f"{st.st_dev:x}g{st.st_ino:x}",
    )


_SIX_MONTHS = 180 * 24 * 3600


def formatListLine(info: FileInfo, now: float | None = None) -> str:
    """One line of ``LIST`` output, as ``ls -l`` prints it (without the line end).

    Files changed within six months show the time of day, older ones the year.
    """
    now = time.time() if now is None else now
    when = time.gmtime(info.mtime)
    if abs(now - info.mtime) < _SIX_MONTHS:
        date = time.strftime("%b %d %H:%M", when)
    else:
        date = time.strftime("%b %d  %Y", when)
    return (f"{stat.filemode(info.mode)} {info.nlink:3d} {info.owner:<8} {info.group:<8} "
            f"{info.size:>8d} {date} {info.name}")


def formatFacts(info: FileInfo, permissions: frozenset[str], name: str | None = None) -> str:
    """One ``MLSD``/``MLST`` line (RFC 3659): ``type=file;size=..;...; name``.

    ``perm`` is what this user may do (``permissions``: read, write, delete,
    rename, mkdir), within what the file's mode allows.
    """
    perm = ""
    if info.isDirectory:
        kind = "dir"
        if "read" in permissions:
            perm += "el"
        if "write" in permissions:
            perm += "c"
        if "delete" in permissions:
            perm += "dp"
        if "rename" in permissions:
            perm += "f"
        if "mkdir" in permissions:
            perm += "m"
    else:
        kind = "file"
        if "read" in permissions:
            perm += "r"
        if "write" in permissions:
            perm += "aw"
        if "delete" in permissions:
            perm += "d"
        if "rename" in permissions:
            perm += "f"
    modify = time.strftime("%Y%m%d%H%M%S", time.gmtime(info.mtime))
    facts = (f"type={kind};size={info.size};modify={modify};perm={perm};"
             f"unique={info.unique};")
    return f"{facts} {info.name if name is None else name}"


class _LocalUpload:
    """An upload to a temporary file beside its target, renamed into place on commit."""

    def __init__(self, fs: LocalFilesystem, file: IO[bytes], temp: str | None,
                 target: str) -> None:
        self._fs = fs
        self._file = file
        self._temp = temp  # None when appending in place
        self._target = target

    def write(self, data: bytes) -> Deferred[None]:
        return self._fs._run(self._file.write, data).addCallback(lambda _: None)

    def commit(self) -> Deferred[None]:
        def finish() -> None:
            self._file.close()
            if self._temp is not None:
                os.replace(self._temp, self._target)
        return self._fs._run(finish)

    def abort(self) -> Deferred[None]:
        def discard() -> None:
            self._file.close()
            if self._temp is not None:
                try:
                    os.unlink(self._temp)
                except FileNotFoundError:
                    pass
        return self._fs._run(discard)


class LocalFilesystem:
    """A directory of the local disk, served as ``/``.

    Args:
        root: The directory to serve.
        reactor: Whose thread pool runs the blocking calls; the installed
            reactor by default.
    """

    def __init__(self, root: str | os.PathLike[str], reactor: Any = None) -> None:
        self.root = os.path.realpath(os.fspath(root))
        self._reactor = reactor

    def _run(self, f: Callable[..., _T], *args: Any) -> Deferred[_T]:
        r = self._reactor
        if r is None:
            import reactor as r
        d: Deferred[_T] = r.deferToThread(f, *args)
        return d

    def realPath(self, path: str) -> str:
        """The real path of virtual ``path``; PermissionError if it resolves outside the root.

        Blocking (it resolves symlinks): call it on a worker thread.
        """
        virtual = resolvePath("/", path)
        real = os.path.realpath(os.path.join(self.root, virtual.lstrip("/")))
        if real != self.root and not real.startswith(self.root + os.sep):
            raise PermissionError("path outside the served root")
        return real

    def stat(self, path: str) -> Deferred[FileInfo]:
        """The facts of ``path``."""
        def work() -> FileInfo:
            real = self.realPath(path)
            return _info(posixpath.basename(resolvePath("/", path)) or "/", os.stat(real))
        return self._run(work)

    def listDirectory(self, path: str) -> Deferred[list[FileInfo]]:
        """The entries of directory ``path`` sorted by name; links leading outside are left out."""
        def work() -> list[FileInfo]:
            real = self.realPath(path)
            out = []
            with os.scandir(real) as entries:
                for entry in entries:
                    try:
                        if entry.is_symlink():
                            self.realPath(posixpath.join(path, entry.name))
                        out.append(_info(entry.name, entry.stat()))
                    except OSError:
                        continue  # vanished, dangling, or pointing outside the root
            out.sort(key=lambda info: info.name)
            return out
        return self._run(work)

    def openForReading(self, path: str) -> Deferred[IO[bytes]]:
        """Open regular file ``path`` for binary reading."""
        def work() -> IO[bytes]:
            real = self.realPath(path)
            f = open(real, "rb")  # noqa: SIM115 - the caller closes it after the transfer
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                f.close()
                raise IsADirectoryError("not a regular file")
            return f
        return self._run(work)

    def openForWriting(self, path: str, append: bool = False) -> Deferred[IUpload]:
        """Start writing ``path``: to a temporary file beside it, or appending in place."""
        def work() -> IUpload:
            real = self.realPath(path)
            if os.path.isdir(real):
                raise IsADirectoryError("is a directory")
            if append:
                return _LocalUpload(self, open(real, "ab"), None, real)
            directory, name = os.path.split(real)
            fd, temp = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=directory)
            return _LocalUpload(self, os.fdopen(fd, "wb"), temp, real)
        return self._run(work)

    def makeDirectory(self, path: str) -> Deferred[None]:
        """Create directory ``path``."""
        return self._run(lambda: os.mkdir(self.realPath(path)))

    def removeDirectory(self, path: str) -> Deferred[None]:
        """Remove empty directory ``path`` (never the root)."""
        def work() -> None:
            real = self.realPath(path)
            if real == self.root:
                raise PermissionError("cannot remove the root")
            os.rmdir(real)
        return self._run(work)

    def removeFile(self, path: str) -> Deferred[None]:
        """Remove file ``path``."""
        def work() -> None:
            real = self.realPath(path)
            if os.path.isdir(real):
                raise IsADirectoryError("is a directory")
            os.unlink(real)
        return self._run(work)

    def rename(self, fromPath: str, toPath: str) -> Deferred[None]:
        """Rename ``fromPath`` to ``toPath`` (the root itself cannot move)."""
        def work() -> None:
            source, target = self.realPath(fromPath), self.realPath(toPath)
            if self.root in (source, target):
                raise PermissionError("cannot rename the root")
            os.rename(source, target)
        return self._run(work)
