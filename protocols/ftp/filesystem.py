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

A user with a home directory sees a filesystem rooted there
(:func:`homeFilesystem`): their ``/`` is their home, and nothing above it
can be named.
"""

from __future__ import annotations

import dataclasses
import grp
import os
import posixpath
import pwd
import secrets
import stat
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import IO, Any, Protocol, TypeVar

from deferred import Deferred, fail, succeed

__all__ = [
    "FACTS",
    "ChrootFilesystem",
    "FileInfo",
    "IFilesystem",
    "IUpload",
    "LocalFilesystem",
    "formatFacts",
    "formatListLine",
    "homeFilesystem",
    "homePath",
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
    """A file being written; nothing is visible at its path until :meth:`commit`.

    An upload may also offer ``writeSequence(chunks) -> Deferred[None]``, used
    for the batches a data connection collects (the local one writes them
    with writev(2), without joining them first).
    """

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

    def openForWriting(self, path: str, append: bool = False,
                       offset: int = 0) -> Deferred[IUpload]:
        """Start writing file ``path``: replacing it on commit, appending, or from ``offset``.

        A non-zero ``offset`` (REST before STOR) resumes an upload in place: the
        existing file (at least ``offset`` bytes long) is written from there, and
        cut at the end of what was written, on commit and on abort alike.
        """

    def openUnique(self, path: str) -> Deferred[tuple[str, IUpload]]:
        """Start writing a new file named like ``path`` that no file has yet (STOU).

        Returns the chosen virtual path and the upload; the name is reserved
        at once and only ever names this upload's file.
        """

    def makeDirectory(self, path: str) -> Deferred[None]:
        """Create directory ``path``."""

    def removeDirectory(self, path: str) -> Deferred[None]:
        """Remove empty directory ``path``."""

    def removeFile(self, path: str) -> Deferred[None]:
        """Remove file ``path``."""

    def rename(self, fromPath: str, toPath: str) -> Deferred[None]:
        """Rename ``fromPath`` to ``toPath``."""

    def chmod(self, path: str, mode: int) -> Deferred[None]:
        """Set the permission bits of ``path`` (SITE CHMOD)."""

    def setModificationTime(self, path: str, mtime: float) -> Deferred[None]:
        """Set the modification time of ``path`` (MFMT)."""

    def subFilesystem(self, path: str) -> Deferred[IFilesystem]:
        """The filesystem rooted at directory ``path`` (a user's home)."""


#: Buffers one writev(2) may take (the POSIX IOV_MAX, 1024 on Linux).
_IOV_MAX = os.sysconf("SC_IOV_MAX") if hasattr(os, "sysconf") else 16


def _process_umask() -> int:
    # Read without changing it where Linux shows it (os.umask can only be read
    # by setting it, which would race with the pool's threads).
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _new_temp(directory: str, name: str, target: str, umask: int) -> tuple[int, str]:
    # mkstemp makes a 0600 file; give the upload the mode a plain create would
    # (0666 less the umask), or the mode of the file it replaces, as pyftpdlib
    # and open(2) would.
    fd, temp = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=directory)
    try:
        try:
            mode = stat.S_IMODE(os.stat(target).st_mode)
        except FileNotFoundError:
            mode = 0o666 & ~umask
        os.fchmod(fd, mode)
    except BaseException:
        os.close(fd)
        os.unlink(temp)
        raise
    return fd, temp


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


#: The MLST/MLSD facts this server knows, in the order it writes them.
FACTS = ("type", "size", "modify", "perm", "unique")


# RFC 3659 perm fact letters each permission grants, in the RFC's order.
_DIR_PERM_LETTERS = (("read", "el"), ("write", "c"), ("delete", "dp"), ("rename", "f"),
                     ("mkdir", "m"))
_FILE_PERM_LETTERS = (("read", "r"), ("write", "aw"), ("delete", "d"), ("rename", "f"))


def formatFacts(info: FileInfo, permissions: frozenset[str], name: str | None = None,
                facts: Sequence[str] | None = None) -> str:
    """One ``MLSD``/``MLST`` line (RFC 3659): ``type=file;size=..;...; name``.

    ``perm`` is what this user may do (``permissions``: read, write, delete,
    rename, mkdir), within what the file's mode allows. ``facts`` selects
    which facts appear (``OPTS MLST``); all of :data:`FACTS` by default.
    """
    kind = "dir" if info.isDirectory else "file"
    letters = _DIR_PERM_LETTERS if info.isDirectory else _FILE_PERM_LETTERS
    perm = "".join(code for name, code in letters if name in permissions)
    values = {
        "type": kind,
        "size": str(info.size),
        "modify": time.strftime("%Y%m%d%H%M%S", time.gmtime(info.mtime)),
        "perm": perm,
        "unique": info.unique,
    }
    wanted = FACTS if facts is None else facts
    text = "".join(f"{fact}={values[fact]};" for fact in FACTS if fact in wanted)
    return f"{text} {info.name if name is None else name}"


class _LocalUpload:
    """An upload to a local file.

    Three kinds: to a temporary file beside the target, renamed into place on
    commit (``temp`` set); in place (APPE, or a resumed STOR, ``temp`` None),
    where a resumed upload cuts the file at the end of what it wrote
    (``truncate``); and a STOU upload, whose reserved empty file at the target
    (``placeholder``) is replaced on commit and removed on abort.
    """

    def __init__(self, fs: LocalFilesystem, file: IO[bytes], temp: str | None,
                 target: str, truncate: bool = False, placeholder: bool = False) -> None:
        self._fs = fs
        self._file = file
        self._temp = temp
        self._target = target
        self._truncate = truncate
        self._placeholder = placeholder

    def write(self, data: bytes) -> Deferred[None]:
        return self._fs._run(self._write_all, [data])

    def writeSequence(self, chunks: list[bytes]) -> Deferred[None]:
        """Write ``chunks`` in order with writev(2): one thread call, no joined copy."""
        return self._fs._run(self._write_all, chunks)

    def _write_all(self, chunks: list[bytes]) -> None:
        # Straight to the descriptor (the file object's buffer stays empty),
        # at most IOV_MAX buffers a call, resuming after a short write.
        fd = self._file.fileno()
        views = [memoryview(c) for c in chunks if c]
        while views:
            batch = views[:_IOV_MAX]
            written = os.writev(fd, batch)
            done = 0
            while done < len(batch) and written >= len(batch[done]):
                written -= len(batch[done])
                done += 1
            views = views[done:]
            if written:
                views[0] = views[0][written:]

    def _close(self) -> None:
        if self._truncate:
            # At the current position: the end of what came.
            fd = self._file.fileno()
            os.ftruncate(fd, os.lseek(fd, 0, os.SEEK_CUR))
        self._file.close()

    def commit(self) -> Deferred[None]:
        def finish() -> None:
            self._close()
            if self._temp is not None:
                os.replace(self._temp, self._target)
        return self._fs._run(finish)

    def abort(self) -> Deferred[None]:
        def discard() -> None:
            self._close()
            for path, wanted in ((self._temp, True), (self._target, self._placeholder)):
                if path is not None and wanted:
                    try:
                        os.unlink(path)
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
        #: The root as given (made absolute), before symlinks were resolved.
        self.configuredRoot = os.path.abspath(os.fspath(root))
        self._reactor = reactor
        self._umask = _process_umask()  # new files get 0666 less it, like open(2)

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

    def openForWriting(self, path: str, append: bool = False,
                       offset: int = 0) -> Deferred[IUpload]:
        """Start writing ``path``: to a temporary file beside it, appending, or from ``offset``.

        See :meth:`IFilesystem.openForWriting`; an ``offset`` beyond the end of
        the file (or naming a file that does not exist) is a ValueError.
        """
        def work() -> IUpload:
            real = self.realPath(path)
            if os.path.isdir(real):
                raise IsADirectoryError("is a directory")
            if offset:
                f = open(real, "r+b")  # noqa: SIM115 - the upload closes it
                if offset > os.fstat(f.fileno()).st_size:
                    f.close()
                    raise ValueError("restart offset beyond the end of the file")
                f.seek(offset)
                return _LocalUpload(self, f, None, real, truncate=True)
            if append:
                return _LocalUpload(self, open(real, "ab"), None, real)
            directory, name = os.path.split(real)
            fd, temp = _new_temp(directory, name, real, self._umask)
            return _LocalUpload(self, os.fdopen(fd, "wb"), temp, real)
        return self._run(work)

    def openUnique(self, path: str) -> Deferred[tuple[str, IUpload]]:
        """Reserve a new name like ``path`` (``path`` itself if free, else with a suffix).

        The name is reserved with an empty file made with ``O_EXCL``; the data
        goes to a temporary file renamed over it on commit.
        """
        def work() -> tuple[str, IUpload]:
            virtual = resolvePath("/", path)
            directory = posixpath.dirname(virtual)
            base = posixpath.basename(virtual) or "file"
            self.realPath(directory)  # the directory must be inside the root
            for attempt in range(100):
                name = base if attempt == 0 else f"{base}.{secrets.token_hex(4)}"
                candidate = posixpath.join(directory, name)
                real = self.realPath(candidate)
                try:
                    os.close(os.open(real, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
                except FileExistsError:
                    continue
                try:
                    fd, temp = _new_temp(os.path.dirname(real), name, real, self._umask)
                except BaseException:
                    os.unlink(real)
                    raise
                return candidate, _LocalUpload(self, os.fdopen(fd, "wb"), temp, real,
                                               placeholder=True)
            raise FileExistsError("no unique name found")
        return self._run(work)

    def chmod(self, path: str, mode: int) -> Deferred[None]:
        """Set the permission bits of ``path`` (links are not followed past the root)."""
        return self._run(lambda: os.chmod(self.realPath(path), mode & 0o7777))

    def setModificationTime(self, path: str, mtime: float) -> Deferred[None]:
        """Set the modification time of ``path`` (the access time is kept)."""
        def work() -> None:
            real = self.realPath(path)
            os.utime(real, (os.stat(real).st_atime, mtime))
        return self._run(work)

    def homePath(self, home: str) -> str:
        """:func:`homePath` of ``home``, an absolute one under the root as given or real."""
        for root in (self.root, self.configuredRoot):
            if home == root or home.startswith(root.rstrip("/") + "/"):
                return homePath(home, root)
        return homePath(home)

    def subFilesystem(self, path: str) -> Deferred[IFilesystem]:
        """A :class:`LocalFilesystem` rooted at directory ``path``.

        Links inside it that point above it are refused from then on, like
        links out of the served root.
        """
        def work() -> IFilesystem:
            real = self.realPath(path)
            if not os.path.isdir(real):
                raise NotADirectoryError("not a directory")
            return LocalFilesystem(real, self._reactor)
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


class ChrootFilesystem:
    """Any :class:`IFilesystem` seen from one of its directories: its ``/`` is ``home``.

    Every virtual path is resolved against ``/`` first (``..`` stops at the new
    root) and then prefixed with ``home``. :meth:`LocalFilesystem.subFilesystem`
    is preferred for local files (it also confines symlinks to the home).

    Args:
        filesystem: The filesystem to wrap.
        home: The virtual directory of ``filesystem`` that becomes ``/``.
    """

    def __init__(self, filesystem: IFilesystem, home: str) -> None:
        self.filesystem = filesystem
        self.home = resolvePath("/", home)

    def _map(self, path: str) -> str:
        return posixpath.join(self.home, resolvePath("/", path).lstrip("/")).rstrip("/") or "/"

    def stat(self, path: str) -> Deferred[FileInfo]:
        """The facts of ``path``."""
        d = self.filesystem.stat(self._map(path))
        if resolvePath("/", path) == "/":
            # The home's own name would reveal the layout above it.
            d.addCallback(lambda info: dataclasses.replace(info, name="/"))
        return d

    def listDirectory(self, path: str) -> Deferred[list[FileInfo]]:
        """The entries of directory ``path``."""
        return self.filesystem.listDirectory(self._map(path))

    def openForReading(self, path: str) -> Deferred[IO[bytes]]:
        """Open file ``path`` for reading."""
        return self.filesystem.openForReading(self._map(path))

    def openForWriting(self, path: str, append: bool = False,
                       offset: int = 0) -> Deferred[IUpload]:
        """Start writing file ``path``."""
        return self.filesystem.openForWriting(self._map(path), append, offset)

    def openUnique(self, path: str) -> Deferred[tuple[str, IUpload]]:
        """Start writing a new uniquely named file; its path is given from the home."""
        def unmap(result: tuple[str, IUpload]) -> tuple[str, IUpload]:
            chosen, upload = result
            relative = posixpath.relpath(chosen, self.home)
            return "/" + ("" if relative == "." else relative), upload
        return self.filesystem.openUnique(self._map(path)).addCallback(unmap)

    def makeDirectory(self, path: str) -> Deferred[None]:
        """Create directory ``path``."""
        return self.filesystem.makeDirectory(self._map(path))

    def removeDirectory(self, path: str) -> Deferred[None]:
        """Remove empty directory ``path`` (never the home itself)."""
        if resolvePath("/", path) == "/":
            return fail(PermissionError("cannot remove the root"))
        return self.filesystem.removeDirectory(self._map(path))

    def removeFile(self, path: str) -> Deferred[None]:
        """Remove file ``path``."""
        return self.filesystem.removeFile(self._map(path))

    def rename(self, fromPath: str, toPath: str) -> Deferred[None]:
        """Rename ``fromPath`` to ``toPath`` (never the home itself)."""
        if "/" in (resolvePath("/", fromPath), resolvePath("/", toPath)):
            return fail(PermissionError("cannot rename the root"))
        return self.filesystem.rename(self._map(fromPath), self._map(toPath))

    def chmod(self, path: str, mode: int) -> Deferred[None]:
        """Set the permission bits of ``path``."""
        return self.filesystem.chmod(self._map(path), mode)

    def setModificationTime(self, path: str, mtime: float) -> Deferred[None]:
        """Set the modification time of ``path``."""
        return self.filesystem.setModificationTime(self._map(path), mtime)

    def subFilesystem(self, path: str) -> Deferred[IFilesystem]:
        """The filesystem rooted at ``path`` under the home."""
        return self.filesystem.subFilesystem(self._map(path))


def homePath(home: str, root: str | None = None) -> str:
    """The virtual path of a user's ``home`` in the served tree.

    ``home`` names a directory of the served tree: ``"bob"`` and ``"/bob"``
    are both ``<root>/bob``. As a convenience for files that name real
    directories, an absolute ``home`` under the real directory ``root`` (the
    served root of a :class:`LocalFilesystem`) is taken as that directory:
    with ``root="/srv/ftp"``, ``"/srv/ftp/bob"`` is ``"/bob"`` too. A home
    with a ``..`` component is refused rather than clamped: it is a mistake
    in the users file, not a path to guess at.

    Raises:
        PermissionError: ``home`` climbs with ``..``.
        ValueError: ``home`` holds a NUL.

    Example:
        >>> homePath("/srv/ftp/bob", "/srv/ftp"), homePath("bob"), homePath("/")
        ('/bob', '/bob', '/')
    """
    if root is not None:
        root = root.rstrip("/")
        if root and (home == root or home.startswith(root + "/")):
            home = home[len(root):] or "/"
    if ".." in home.split("/"):
        raise PermissionError("a home directory must not climb with '..'")
    return resolvePath("/", home)


def homeFilesystem(filesystem: IFilesystem, home: str) -> Deferred[IFilesystem]:
    """The filesystem a user whose home is ``home`` sees (see :func:`homePath`).

    For a :class:`LocalFilesystem` the home is resolved (symlinks too) and must
    be a directory inside the served root; any other filesystem is wrapped in
    a :class:`ChrootFilesystem` once ``home`` is found to be a directory.
    The Deferred fails (PermissionError, FileNotFoundError,
    NotADirectoryError) when the home is unusable.
    """
    try:
        virtual = homePath(home)
        if isinstance(filesystem, LocalFilesystem):
            virtual = filesystem.homePath(home)
    except (PermissionError, ValueError) as e:
        return fail(e)
    if virtual == "/":
        return succeed(filesystem)
    if isinstance(filesystem, LocalFilesystem):
        return filesystem.subFilesystem(virtual)

    def found(info: FileInfo) -> IFilesystem:
        if not info.isDirectory:
            raise NotADirectoryError("not a directory")
        return ChrootFilesystem(filesystem, virtual)

    return filesystem.stat(virtual).addCallback(found)
