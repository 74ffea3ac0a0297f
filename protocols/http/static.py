"""Serving files and directory trees: :class:`File`, Twisted's static resource.

``File(path)`` is a resource for a file or a directory. Put it in a tree
(``root.putChild(b"static", File("/srv/www"))``) or make it the site's root
(``Site(File("/srv/www"))``). What it answers:

- a file: its bytes, with ``Content-Type`` (``mimetypes`` plus the defaults
  in :data:`DEFAULT_TYPES`), ``Content-Length``, ``ETag``, ``Last-Modified``
  and ``Accept-Ranges``; conditional requests and byte ranges (below).
  Compressed files (``.gz``, ``.bz2``) are sent as what they are, without a
  ``Content-Encoding`` (Twisted adds one; set ``contentEncodings`` for that).
- a directory: ``301`` to the same path with a slash if it has none; then its
  ``index.html`` if there is one, else an HTML listing (:class:`DirectoryLister`).
- children added with ``putChild`` come before files of the same name.
- only GET and HEAD (``405`` with ``Allow`` otherwise, from ``Resource``).

The body leaves through ``request.sendFile``: ``os.sendfile`` where the
transport allows it, otherwise a flow-controlled read loop, so a file is never
read whole into memory. Multiple ranges go out as ``multipart/byteranges``,
one ``sendFile`` per part.

Paths cannot leave the root: a segment that is ``.`` or ``..`` (also when
sent percent-encoded), that holds a slash or backslash (``%2f``, ``%5c``) or
a NUL byte, or a symlink resolving outside the root directory (unless
``allowSymlinksOutside``), answers ``404``; a file the server may not read
answers ``403``. Devices, FIFOs and sockets are never opened for reading.

Validators: the ``ETag`` is strong, ``"<size>-<mtime in ns>"`` in hex. A
strong tag is what ``If-Range`` needs (a weak one never matches there, RFC
9110 §13.1.5), so resumed downloads work; nanosecond mtimes make an
undetected same-size rewrite unlikely, the trade nginx and Apache make too.
Preconditions are evaluated in RFC 9110 §13.2.2 order: If-Match,
If-Unmodified-Since, If-None-Match, If-Modified-Since, then If-Range.

Example::

    from protocols.http.server import Site
    from protocols.http.static import File

    reactor.listenTCP(8080, Site(File("/srv/www")))
"""

from __future__ import annotations

import email.utils
import html
import logging
import mimetypes
import os
import secrets
import stat
from collections.abc import Sequence
from typing import Any, Final
from urllib.parse import quote

from deferred import Deferred, Failure
from reactor.error import ConnectionDone, ConnectionLost

from .resource import (
    NOT_DONE_YET,
    ErrorPage,
    ForbiddenResource,
    IResource,
    NoResource,
    RenderResult,
    Resource,
)

__all__ = [
    "DEFAULT_TYPES",
    "DirectoryLister",
    "File",
    "getTypeAndEncoding",
    "loadMimeTypes",
    "parseRange",
]

log = logging.getLogger("protocols.http")

#: Content types that matter on the web and that ``mimetypes`` gets wrong,
#: lacks on some systems, or gives without a charset.
DEFAULT_TYPES: Final[dict[str, str]] = {
    ".html": "text/html; charset=utf-8",
    ".htm": "text/html; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".text": "text/plain; charset=utf-8",
    ".md": "text/markdown; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".csv": "text/csv; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".json": "application/json",
    ".gz": "application/gzip",
    ".tgz": "application/gzip",
    ".bz2": "application/x-bzip2",
    ".xz": "application/x-xz",
    ".zst": "application/zstd",
    ".map": "application/json",
    ".xml": "application/xml",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".avif": "image/avif",
    ".ico": "image/vnd.microsoft.icon",
    ".wasm": "application/wasm",
    ".pdf": "application/pdf",
    ".zip": "application/zip",
    ".tar": "application/x-tar",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".mp4": "video/mp4",
    ".webm": "video/webm",
    ".mp3": "audio/mpeg",
    ".ogg": "audio/ogg",
    ".py": "text/plain; charset=utf-8",
}

#: Most ranges served from one request; past this the Range header is ignored
#: (a 200 with the whole file), so a request cannot ask for a file in
#: thousands of tiny overlapping pieces.
MAX_RANGES: Final = 64


def loadMimeTypes() -> dict[str, str]:
    """Extension (lower case, with the dot) -> content type: ``mimetypes``,
    then :data:`DEFAULT_TYPES` over it."""
    mimetypes.init()
    types = dict(mimetypes.types_map)
    types.update(DEFAULT_TYPES)
    return types


def getTypeAndEncoding(filename: str, types: dict[str, str], encodings: dict[str, str],
                       defaultType: str) -> tuple[str, str | None]:
    """The content type and content encoding for ``filename``, as Twisted does.

    Example:
        >>> getTypeAndEncoding("a.txt.gz", {".txt": "text/plain"}, {".gz": "gzip"}, "x/y")
        ('text/plain', 'gzip')
    """
    base, ext = os.path.splitext(filename)
    ext = ext.lower()
    encoding = encodings.get(ext)
    if encoding is not None:
        ext = os.path.splitext(base)[1].lower()
    return types.get(ext, defaultType), encoding


def parseRange(header: bytes, size: int) -> list[tuple[int, int]] | None:
    """The byte ranges of a ``Range`` header as ``(first, last)`` pairs, inclusive.

    Returns None for a header to ignore (not ``bytes=``, bad syntax, too
    many ranges), ``[]`` when it is valid but no range is satisfiable (416),
    else the satisfiable ranges, clipped to the file, in the order asked.

    Example:
        >>> parseRange(b"bytes=0-99, -10", 1000)
        [(0, 99), (990, 999)]
        >>> parseRange(b"bytes=2000-", 1000)
        []
        >>> parseRange(b"bytes=5-1", 1000) is None
        True
    """
    unit, sep, spec = header.partition(b"=")
    if not sep or unit.strip().lower() != b"bytes":
        return None
    ranges: list[tuple[int, int]] = []
    items = [item.strip() for item in spec.split(b",")]
    if len(items) > MAX_RANGES or not any(items):
        return None
    for item in items:
        if not item:
            continue  # "bytes=0-1,,2-3": empty list elements are allowed
        first_text, dash, last_text = item.partition(b"-")
        first_text, last_text = first_text.strip(), last_text.strip()
        if not dash or not _digits(first_text, True) or not _digits(last_text, True):
            return None
        if not first_text:
            if not last_text:
                return None
            suffix = int(last_text)  # "-N": the last N bytes
            if suffix > 0 and size > 0:
                ranges.append((max(0, size - suffix), size - 1))
            continue
        first = int(first_text)
        if last_text and int(last_text) < first:
            return None  # "5-1" is invalid syntax, not an empty range
        last = min(int(last_text), size - 1) if last_text else size - 1
        if first < size:
            ranges.append((first, last))
    return ranges


def _digits(text: bytes, empty_ok: bool) -> bool:
    return (not text and empty_ok) or (text.isdigit() and len(text) <= 19)


def _http_date(timestamp: float) -> bytes:
    # Last-Modified of the same few files, again and again: remember some.
    cached = _DATES.get(timestamp)
    if cached is None:
        cached = email.utils.formatdate(timestamp, usegmt=True).encode("ascii")
        if len(_DATES) >= 1024:
            _DATES.clear()
        _DATES[timestamp] = cached
    return cached


_DATES: dict[float, bytes] = {}


def _lstat(path: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None


def _parse_date(value: bytes | None) -> int | None:
    """Seconds since the epoch of an HTTP date, or None when absent or invalid."""
    if value is None:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value.decode("latin-1"))
    except (TypeError, ValueError, IndexError):
        return None
    if parsed.tzinfo is None:
        return None
    return int(parsed.timestamp())


def _etags(request: Any, name: bytes) -> list[bytes] | None:
    """The entity tags of a list header (If-Match / If-None-Match), or None if absent."""
    values = request.requestHeaders.getRawHeaders(name)
    if values is None:
        return None
    tags: list[bytes] = []
    for value in values:
        tags.extend(tag.strip() for tag in value.split(b",") if tag.strip())
    return tags


def _strong_match(tags: list[bytes], etag: bytes) -> bool:
    return b"*" in tags or any(tag == etag and not tag.startswith(b"W/") for tag in tags)


def _weak_match(tags: list[bytes], etag: bytes) -> bool:
    bare = etag.removeprefix(b"W/")
    return b"*" in tags or any(tag.removeprefix(b"W/") == bare for tag in tags)


class File(Resource):
    """A file or directory on disk as a resource (Twisted's ``static.File``).

    Args:
        path: the file or directory (str, bytes or path-like).
        defaultType: the content type of files whose extension is unknown.
        ignoredExts: extensions tried when a name is not found (``(".html",)``
            lets ``/about`` serve ``about.html``).
        registry: accepted for Twisted compatibility (its script processors
            are not supported); kept as ``self.registry``.
        allowSymlinksOutside: follow symlinks that resolve outside the root
            directory (off: such a link answers 404).

    Attributes:
        path: the absolute path served.
        indexNames: names served for a directory's own URL, first found wins.
        contentTypes / contentEncodings: extension -> header value.
        childNotFound / forbidden: the resources rendered for 404 and 403.
    """

    contentTypes: dict[str, str] = loadMimeTypes()
    # Empty, unlike Twisted ({".gz": "gzip", ...}): announcing a .tar.gz as
    # Content-Encoding: gzip makes browsers and curl --compressed unpack it,
    # so the download is not the file on disk. nginx sends it as is too.
    contentEncodings: dict[str, str] = {}
    indexNames: list[str] = ["index.html", "index.htm"]
    childNotFound: IResource = NoResource("File not found.")
    forbidden: IResource = ForbiddenResource()

    def __init__(self, path: str | bytes | os.PathLike[str],
                 defaultType: str = "application/octet-stream",
                 ignoredExts: Sequence[str] = (), registry: Any = None,
                 allowSymlinksOutside: bool = False) -> None:
        super().__init__()
        self.path = os.path.abspath(os.fsdecode(path))
        self.defaultType = defaultType
        self.ignoredExts = list(ignoredExts)
        self.registry = registry
        self.allowSymlinksOutside = allowSymlinksOutside
        # The directory symlinks must not escape (children inherit it), and
        # this file's own resolved path: both resolved on first use, so a
        # child made during traversal costs no realpath() walk.
        self._rootPath: str | None = None
        self._real: str | None = None

    @property
    def _root(self) -> str:
        root = self._rootPath
        if root is None:
            root = self._rootPath = os.path.realpath(self.path)
        return root

    @_root.setter
    def _root(self, value: str) -> None:
        self._rootPath = value

    # -- Twisted's FilePath-like helpers ---------------------------------------

    def exists(self) -> bool:
        """Whether the path exists (a dangling symlink does not)."""
        return os.path.exists(self.path)

    def isdir(self) -> bool:
        """Whether the path is a directory (following symlinks)."""
        return os.path.isdir(self.path)

    def ignoreExt(self, ext: str) -> None:
        """Also try ``name + ext`` for names that are not found."""
        self.ignoredExts.append(ext)

    def listNames(self) -> list[str]:
        """The directory's entry names, sorted (empty for a file)."""
        try:
            return sorted(os.listdir(self.path))
        except OSError:
            return []

    def createSimilarFile(self, path: str) -> File:
        """A ``File`` for ``path`` with this one's settings and root."""
        child = type(self)(path, self.defaultType, self.ignoredExts, self.registry,
                           self.allowSymlinksOutside)
        child._root = self._root
        child.indexNames = self.indexNames
        child.contentTypes = self.contentTypes
        child.contentEncodings = self.contentEncodings
        return child

    def directoryListing(self) -> DirectoryLister:
        """The resource that lists this directory."""
        return DirectoryLister(self.path, self.listNames(), self.contentTypes,
                               self.contentEncodings, self.defaultType)

    # -- traversal -------------------------------------------------------------------

    def getChild(self, path: bytes, request: Any) -> IResource:
        """The file or directory ``path`` inside this directory, if allowed.

        Explicit children (``putChild``) never get here: ``Resource`` looks
        them up first.
        """
        if not os.path.isdir(self.path):
            return self.childNotFound  # a file has no children
        if path == b"":
            # The directory's own URL ("/dir/"); an empty segment in the
            # middle ("/dir//x") names nothing.
            if request.postpath:
                return self.childNotFound
            return self._index()
        name = self._safe_name(path)
        if name is None:
            return self.childNotFound
        child = os.path.join(self.path, name)
        info = _lstat(child)
        if info is None:
            for ext in self.ignoredExts:
                info = _lstat(child + ext)
                if info is not None:
                    child += ext
                    name += ext
                    break
            else:
                return self.childNotFound
        if stat.S_ISLNK(info.st_mode):
            if not self._inside_root(child):
                return self.childNotFound
            real = None
        else:
            # Not a link, in a directory already known to be inside the
            # root: it is inside too, and its real path follows from ours.
            parent = self._real
            if parent is None:
                parent = self._real = os.path.realpath(self.path)
            real = os.path.join(parent, name)
        similar = self.createSimilarFile(child)
        similar._real = real
        return similar

    @staticmethod
    def _safe_name(segment: bytes) -> str | None:
        """``segment`` as a file name, or None if it could name anything else."""
        # The server has percent-decoded the segment: "%2e%2e" is "..",
        # "%2f" a slash here. Backslashes are refused too (a separator on
        # Windows), and NUL (which os functions reject with ValueError).
        if segment in (b".", b"..") or any(c in segment for c in (b"/", b"\\", b"\x00")):
            return None
        return os.fsdecode(segment)

    def _inside_root(self, path: str) -> bool:
        if self.allowSymlinksOutside:
            return True
        real = os.path.realpath(path)
        return real == self._root or real.startswith(self._root.rstrip(os.sep) + os.sep)

    def _index(self) -> IResource:
        for name in self.indexNames:
            candidate = os.path.join(self.path, name)
            if os.path.isfile(candidate) and self._inside_root(candidate):
                return self.createSimilarFile(candidate)
        return self.directoryListing()

    # -- rendering ------------------------------------------------------------------

    def render_GET(self, request: Any) -> RenderResult:
        """Serve the file (HEAD too: ``Resource`` routes it here, the server
        sends no body), or redirect a directory to its slash form."""
        try:
            info = os.stat(self.path)
        except (FileNotFoundError, NotADirectoryError):
            return self.childNotFound.render(request)
        except OSError:
            return self.forbidden.render(request)
        if stat.S_ISDIR(info.st_mode):
            return self._redirect_to_slash(request)
        if not stat.S_ISREG(info.st_mode):
            return self.forbidden.render(request)  # never open a FIFO or a device
        try:
            file = self.openForReading()
        except FileNotFoundError:
            return self.childNotFound.render(request)
        except OSError:
            return self.forbidden.render(request)
        try:
            info = os.fstat(file.fileno())  # of what was opened, not what was looked at
            if not stat.S_ISREG(info.st_mode):
                file.close()
                return self.forbidden.render(request)
            result = _Response(self, request, file, info).start()
        except BaseException:
            file.close()
            raise
        return result

    def openForReading(self) -> Any:
        """Open the file, unbuffered and binary (O_NONBLOCK: a FIFO swapped in
        after the stat must not block the reactor in open())."""
        fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        return os.fdopen(fd, "rb", buffering=0)

    def _redirect_to_slash(self, request: Any) -> bytes:
        # A single leading slash: "//host/" would be a scheme-relative URL.
        location = b"/" + request.path.lstrip(b"/") + b"/"
        query = request.uri.partition(b"?")[2]
        if query:
            location += b"?" + query
        request.setResponseCode(301)
        request.setHeader(b"Location", location)
        request.setHeader(b"Content-Type", b"text/html; charset=utf-8")
        href = html.escape(location.decode("latin-1"))
        return (f'<!DOCTYPE html>\n<html><body><a href="{href}">{href}</a></body></html>\n'
                .encode())

    def __repr__(self) -> str:
        return f"<File {self.path!r}>"


class _Response:
    """One GET or HEAD of a regular file: preconditions, ranges, the body."""

    def __init__(self, resource: File, request: Any, file: Any, info: os.stat_result) -> None:
        self.resource = resource
        self.request = request
        self.file = file
        self.size = info.st_size
        self.mtime = int(info.st_mtime)
        self.etag = b'"%x-%x"' % (info.st_size, info.st_mtime_ns)
        self.type, self.encoding = getTypeAndEncoding(
            resource.path, resource.contentTypes, resource.contentEncodings,
            resource.defaultType)

    def start(self) -> RenderResult:
        request = self.request
        request.setHeader(b"ETag", self.etag)
        request.setHeader(b"Last-Modified", _http_date(self.mtime))
        request.setHeader(b"Accept-Ranges", b"bytes")
        status = self._preconditions()
        if status is not None:
            self.file.close()
            request.setResponseCode(status)
            if status == 412:
                return ErrorPage(412, "Precondition Failed",
                                 "A precondition of the request was not met.").render(request)
            return b""
        request.setHeader(b"Content-Type", self.type.encode("latin-1"))
        if self.encoding is not None:
            request.setHeader(b"Content-Encoding", self.encoding.encode("latin-1"))
        ranges = self._ranges()
        if ranges is not None and not ranges:
            self.file.close()
            request.setHeader(b"Content-Range", b"bytes */%d" % self.size)
            return ErrorPage(416, "Range Not Satisfiable",
                             "None of the requested ranges is in the file.").render(request)
        if request.method == b"HEAD":
            self.file.close()
            request.setHeader(b"Content-Length", b"%d" % self.size)
            return b""
        if ranges is None:
            request.setHeader(b"Content-Length", b"%d" % self.size)
            self._send([(b"", 0, self.size)], b"")
        elif len(ranges) == 1:
            first, last = ranges[0]
            request.setResponseCode(206)
            request.setHeader(b"Content-Range", b"bytes %d-%d/%d" % (first, last, self.size))
            request.setHeader(b"Content-Length", b"%d" % (last - first + 1))
            self._send([(b"", first, last - first + 1)], b"")
        else:
            self._send_multipart(ranges)
        return NOT_DONE_YET

    # -- RFC 9110 §13.2.2 ----------------------------------------------------------

    def _preconditions(self) -> int | None:
        """The status a failed precondition answers with, or None to go on."""
        request = self.request
        safe = request.method in (b"GET", b"HEAD")
        if_match = _etags(request, b"if-match")
        if if_match is not None:
            if not _strong_match(if_match, self.etag):
                return 412
        else:
            since = _parse_date(request.getHeader(b"if-unmodified-since"))
            if since is not None and self.mtime > since:
                return 412
        if_none_match = _etags(request, b"if-none-match")
        if if_none_match is not None:
            if _weak_match(if_none_match, self.etag):
                return 304 if safe else 412
        elif safe:
            since = _parse_date(request.getHeader(b"if-modified-since"))
            if since is not None and self.mtime <= since:
                return 304
        return None

    def _ranges(self) -> list[tuple[int, int]] | None:
        """The ranges to send, ``[]`` for 416, or None for the whole file."""
        request = self.request
        header = request.getHeader(b"range")
        if header is None or request.method != b"GET":
            return None  # Range is defined for GET only (RFC 9110 §14.2)
        if_range = request.getHeader(b"if-range")
        if if_range is not None and not self._if_range_matches(if_range.strip()):
            return None
        return parseRange(header, self.size)

    def _if_range_matches(self, value: bytes) -> bool:
        if value.startswith((b'"', b"W/")):
            return value == self.etag  # strong comparison: a weak tag never matches
        date = _parse_date(value)
        return date is not None and date == self.mtime

    # -- the body ------------------------------------------------------------------

    def _send_multipart(self, ranges: list[tuple[int, int]]) -> None:
        request = self.request
        boundary = secrets.token_hex(16).encode("ascii")
        parts = []
        for first, last in ranges:
            head = b"\r\n--%s\r\nContent-Type: %s\r\nContent-Range: bytes %d-%d/%d\r\n\r\n" % (
                boundary, self.type.encode("latin-1"), first, last, self.size)
            parts.append((head, first, last - first + 1))
        tail = b"\r\n--%s--\r\n" % boundary
        length = sum(len(head) + count for head, _, count in parts) + len(tail)
        request.setResponseCode(206)
        request.setHeader(b"Content-Type", b"multipart/byteranges; boundary=" + boundary)
        request.setHeader(b"Content-Length", b"%d" % length)
        self._send(parts, tail)

    def _send(self, parts: list[tuple[bytes, int, int]], tail: bytes) -> None:
        """Send each part's head and file bytes in turn, then ``tail``; finish."""
        request = self.request
        todo = iter(parts)

        def next_part(_: object = None) -> Deferred[Any] | None:
            if request.channel is None or request.finished:
                self.file.close()  # the client left: nothing more to send
                return None
            for head, offset, count in todo:
                if head:
                    request.write(head)
                d: Deferred[Any] = request.sendFile(self.file, offset, count)
                return d.addCallback(next_part)
            if tail:
                request.write(tail)
            self.file.close()
            request.finish()
            return None

        d: Deferred[Any] = Deferred()
        d.addCallback(next_part)
        d.addErrback(self._failed)
        d.callback(None)

    def _failed(self, failure: Failure) -> None:
        self.file.close()
        request = self.request
        if request.channel is None or request.finished:
            return  # the client went away mid-transfer: nothing to report
        if failure.check(ConnectionDone, ConnectionLost) is not None:
            # The same, noticed by the transfer before the request heard:
            # close without logging an error (wrk does this by the dozen).
            request.channel.cutResponse()
            return
        request.processingFailed(failure)


class DirectoryLister(Resource):
    """An HTML listing of a directory (Twisted's ``static.DirectoryLister``).

    Names are HTML-escaped and links percent-encoded, so any file name (with
    ``<``, ``"``, ``#``, ``?``, spaces or bytes that are not UTF-8) shows as
    itself and links to itself.
    """

    isLeaf = True

    def __init__(self, pathname: str, dirs: list[str] | None = None,
                 contentTypes: dict[str, str] | None = None,
                 contentEncodings: dict[str, str] | None = None,
                 defaultType: str = "text/html") -> None:
        super().__init__()
        self.path = pathname
        self.dirs = dirs
        self.contentTypes = contentTypes if contentTypes is not None else File.contentTypes
        self.contentEncodings = (contentEncodings if contentEncodings is not None
                                 else File.contentEncodings)
        self.defaultType = defaultType

    def render_GET(self, request: Any) -> bytes:
        """The listing page (HEAD: its headers)."""
        names = self.dirs if self.dirs is not None else sorted(os.listdir(self.path))
        rows = []
        for name in names:
            full = os.path.join(self.path, name)
            try:
                info = os.stat(full)
            except OSError:
                continue  # a dangling symlink, or removed meanwhile
            href = quote(os.fsencode(name), safe="")
            shown = html.escape(name.encode("utf-8", "surrogateescape").decode("utf-8",
                                                                             "replace"))
            if stat.S_ISDIR(info.st_mode):
                href += "/"
                shown += "/"
                size, kind = "", "[Directory]"
            else:
                size = _human_size(info.st_size)
                ctype, encoding = getTypeAndEncoding(name, self.contentTypes,
                                                     self.contentEncodings, self.defaultType)
                kind = ctype + (f" ({encoding})" if encoding else "")
            rows.append(f'<tr><td><a href="{href}">{shown}</a></td><td>{size}</td>'
                        f"<td>{html.escape(kind)}</td></tr>")
        where = html.escape(request.path.decode("utf-8", "replace"))
        page = (
            "<!DOCTYPE html>\n<html>\n<head><meta charset=\"utf-8\">"
            f"<title>Directory listing for {where}</title></head>\n<body>\n"
            f"<h1>Directory listing for {where}</h1>\n<table>\n"
            "<tr><th>Filename</th><th>Size</th><th>Content type</th></tr>\n"
            + "\n".join(rows) + "\n</table>\n</body>\n</html>\n")
        request.setHeader(b"Content-Type", b"text/html; charset=utf-8")
        return page.encode("utf-8")

    def __repr__(self) -> str:
        return f"<DirectoryLister {self.path!r}>"


def _human_size(size: int) -> str:
    for unit in ("B", "K", "M", "G"):
        if size < 1024:
            return f"{size}{unit}"
        size //= 1024
    return f"{size}T"
