"""Sans-I/O parsing of HTML form submissions (RFC 7578, RFC 9110 §5.6.6).

Bytes in, events out, as in :mod:`protocols.http.parser`: no transport, reactor
or deferred is involved, so every function here is tested with bytes alone.

* :func:`parse_content_type` splits a ``Content-Type`` value into the media
  type and its parameters.
* :class:`MultipartParser` is a streaming ``multipart/form-data`` parser::

      parser = MultipartParser(boundary)
      for block in blocks:
          for event in parser.feed(block):
              match event:
                  case PartHead(name=name, filename=filename): ...
                  case PartData(data=chunk): ...   # part body, as it arrives
                  case PartEnd(): ...
      parser.close()    # MultipartError when the final boundary never came

  It holds back at most ``len(boundary) + 4`` body bytes (a possible
  delimiter), so its memory does not grow with the size of a part.
* :func:`parse_multipart` builds on it to read a whole (spooled) request body
  into ``args`` and ``files``, the way the server fills ``request.args`` and
  ``request.files``.
* :func:`parse_urlencoded` parses ``application/x-www-form-urlencoded``.

Every refusal is a :class:`FormError` (:class:`MultipartError` for multipart
bodies) whose message says what is wrong (never quoting the peer's bytes, so
it is safe to show) and whose ``code`` is the HTTP status to answer with: 400
for malformed input, 413 when a limit is exceeded.

What is deliberately not supported: ``Content-Transfer-Encoding`` (RFC 7578
§4.7 deprecates it; part bodies are passed on as sent) and nested
``multipart/mixed`` parts (RFC 7578 §4.3 dropped them; such a part is an
ordinary part whose body is the nested multipart).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from typing import IO, Final, TypeAlias
from urllib.parse import unquote_to_bytes

from ._params import decode_ext_value, parse_parameterized

__all__ = [
    "DEFAULT_FORM_LIMITS",
    "FormError",
    "FormLimits",
    "MultipartError",
    "MultipartEvent",
    "MultipartParser",
    "PartData",
    "PartEnd",
    "PartHead",
    "UploadedFile",
    "get_boundary",
    "parse_content_type",
    "parse_multipart",
    "parse_urlencoded",
]

Headers: TypeAlias = list[tuple[bytes, bytes]]

_OWS: Final = b" \t"


class FormError(ValueError):
    """A form body that cannot be parsed, or that exceeds a limit.

    Attributes:
        code: The HTTP status to answer with: 400 (malformed) or 413 (a limit).
    """

    def __init__(self, message: str, code: int = 400) -> None:
        super().__init__(message)
        self.code = code


class MultipartError(FormError):
    """A ``multipart/form-data`` body that cannot be parsed or is too large."""


@dataclass(frozen=True, slots=True)
class FormLimits:
    """Limits on form bodies; each breach raises a :class:`FormError` (413).

    Attributes:
        max_parts: Most parts in one multipart body.
        max_header_bytes: Most bytes in the header block of one part.
        max_total_bytes: Most bytes in a whole multipart body (preamble and
            epilogue included), or ``None`` when the server's own body limit
            is the only bound.
        max_field_bytes: Largest plain (non-file) field :func:`parse_multipart`
            keeps in memory, or ``None`` for no limit.
        max_file_arg_bytes: Largest file whose contents :func:`parse_multipart`
            also copies into ``args`` (as Twisted does for every file); larger
            files are only in ``files``.  ``0`` keeps files out of ``args``,
            ``None`` copies every file.
        max_fields: Most fields in an urlencoded body (:func:`parse_urlencoded`).
    """

    max_parts: int = 1000
    max_header_bytes: int = 8 * 1024
    max_total_bytes: int | None = None
    max_field_bytes: int | None = 1024 * 1024
    max_file_arg_bytes: int | None = 1024 * 1024
    max_fields: int = 1000


DEFAULT_FORM_LIMITS: Final = FormLimits()


# -- Content-Type --------------------------------------------------------------


def parse_content_type(value: bytes) -> tuple[bytes, dict[bytes, bytes]]:
    """Parse a ``Content-Type`` value (RFC 9110 §8.3.1, §5.6.6).

    Args:
        value: The raw header value.

    Returns:
        The media type lower-cased (``b""`` when absent) and its parameters,
        names lower-cased, quoted-strings unescaped.  Malformed parameters
        are skipped; of duplicate parameters the first wins.

    Example:
        >>> parse_content_type(b'Multipart/Form-Data; boundary="a \\\\"b"')
        (b'multipart/form-data', {b'boundary': b'a "b'})
    """
    return parse_parameterized(value)


def get_boundary(content_type: bytes) -> bytes:
    """The boundary of a ``multipart/form-data`` ``Content-Type`` value.

    Raises:
        MultipartError: The media type is not ``multipart/form-data`` or the
            boundary parameter is missing or invalid (RFC 2046 §5.1.1: 1 to 70
            characters).
    """
    kind, params = parse_content_type(content_type)
    if kind != b"multipart/form-data":
        raise MultipartError("not multipart/form-data")
    boundary = params.get(b"boundary", b"")
    _check_boundary(boundary)
    return boundary


def _check_boundary(boundary: bytes) -> None:
    if not boundary:
        raise MultipartError("missing boundary")
    if len(boundary) > 70 or b"\r" in boundary or b"\n" in boundary:
        raise MultipartError("invalid boundary")


# -- streaming multipart ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PartHead:
    """The headers of one part; its body follows as :class:`PartData` events.

    Attributes:
        headers: ``(name, value)`` pairs, names lower-cased, order kept.
        name: The form field name (``name`` of Content-Disposition).
        filename: The file name (``filename*`` when present and decodable,
            else ``filename`` decoded as UTF-8), or ``None`` for a plain
            field.  It comes from the client: never use it as a path.
            Browsers percent-encode ``"``, CR and LF in it (WHATWG HTML);
            that encoding is left as sent.
        content_type: The part's Content-Type, ``b"text/plain"`` when absent
            (RFC 7578 §4.4).
    """

    headers: Headers
    name: bytes
    filename: str | None
    content_type: bytes


@dataclass(frozen=True, slots=True)
class PartData:
    """Some bytes of the current part's body, in order."""

    data: bytes


@dataclass(frozen=True, slots=True)
class PartEnd:
    """The current part's body is complete."""


MultipartEvent: TypeAlias = PartHead | PartData | PartEnd

# Parser states.
_PREAMBLE: Final = 0        # looking for the first delimiter
_AFTER_DELIMITER: Final = 1  # just past "--boundary": "--", or padding + CRLF
_HEADERS: Final = 2         # buffer starts with the CRLF ending the boundary line
_BODY: Final = 3            # in a part body, looking for the next delimiter
_EPILOGUE: Final = 4        # after the final delimiter: input ignored
_FAILED: Final = 5          # an error was raised: input refused

# What a delimiter match turns out to be (MultipartParser._classify).
_REAL: Final = 0
_DATA: Final = 1
_WAIT: Final = 2

# Transport padding after a boundary (RFC 2046 §5.1.1) is whitespace that we
# drop as it arrives; this bounds how much we accept.
_MAX_PADDING: Final = 256


class MultipartParser:
    """A streaming ``multipart/form-data`` parser (RFC 7578, RFC 2046 §5.1).

    Feed it the body in pieces of any size; each :meth:`feed` returns the
    events it completed.  The result does not depend on how the body is cut:
    joining adjacent :class:`PartData` gives the same events for any split.
    Part bodies are handed out as they arrive, keeping back at most
    ``len(boundary) + 4`` bytes that might be a delimiter.  Preamble and
    epilogue are ignored.  ``--boundary`` followed by anything but ``--``,
    whitespace or CR is data, not a delimiter (see :meth:`_classify`).

    After a :class:`MultipartError` the parser is dead: :meth:`feed` and
    :meth:`close` raise the same error again.

    Args:
        boundary: The boundary parameter of the Content-Type (see
            :func:`get_boundary`).
        limits: Size limits (:attr:`FormLimits.max_parts`,
            :attr:`~FormLimits.max_header_bytes`,
            :attr:`~FormLimits.max_total_bytes`).

    Raises:
        MultipartError: The boundary is empty or longer than 70 bytes.
    """

    def __init__(self, boundary: bytes, limits: FormLimits = DEFAULT_FORM_LIMITS) -> None:
        _check_boundary(boundary)
        self.limits = limits
        self._delimiter = b"\r\n--" + boundary
        # The first delimiter may open the body without a CRLF before it:
        # starting the buffer with one makes that case the ordinary one.
        self._buffer = bytearray(b"\r\n")
        self._state = _PREAMBLE
        self._total = 0
        self._parts = 0
        self._padding = 0
        self._error: MultipartError | None = None

    def feed(self, data: bytes) -> list[MultipartEvent]:
        """Parse the next piece of the body; return the events it completed.

        Raises:
            MultipartError: The body is malformed or exceeds a limit.
        """
        if self._error is not None:
            raise self._error
        events: list[MultipartEvent] = []
        self._total += len(data)
        limit = self.limits.max_total_bytes
        try:
            if limit is not None and self._total > limit:
                raise MultipartError(f"multipart body larger than {limit} bytes", 413)
            if self._state != _EPILOGUE:
                self._buffer += data
                while self._step(events):
                    pass
        except MultipartError as error:
            self._die(error)
            raise
        return events

    def close(self) -> list[MultipartEvent]:
        """Signal the end of the body.

        Returns:
            The events still pending (always empty today; kept for symmetry
            with :meth:`feed`).

        Raises:
            MultipartError: The body had no delimiter at all, or ended before
                the final delimiter.
        """
        if self._error is None and self._state != _EPILOGUE:
            self._die(MultipartError(
                "no multipart boundary found in the body" if self._state == _PREAMBLE
                else "multipart body ended before the final boundary"))
        if self._error is not None:
            raise self._error
        return []

    def _die(self, error: MultipartError) -> None:
        self._state = _FAILED
        self._error = error
        self._buffer.clear()

    def _step(self, events: list[MultipartEvent]) -> bool:
        """Make one move of the state machine; ``False`` when it needs input."""
        state = self._state
        if state == _BODY:
            return self._step_body(events)
        if state == _HEADERS:
            return self._step_headers(events)
        if state == _AFTER_DELIMITER:
            return self._step_after_delimiter()
        if state == _PREAMBLE:
            return self._step_preamble()
        return False

    def _classify(self, found: int) -> int:
        """Whether the delimiter match at ``found`` is one: _REAL, _DATA or _WAIT.

        A boundary line may only go on with ``--``, padding or CRLF (RFC 2046
        §5.1.1).  Any other byte means the boundary was the prefix of a longer
        token in the data (``--abc`` inside ``--abcdef``), which the stdlib
        email parser also reads as data.  One byte decides, so no more than
        the delimiter is ever held back to wait for it.
        """
        after = found + len(self._delimiter)
        if after >= len(self._buffer):
            return _WAIT
        return _REAL if self._buffer[after] in b"-\r \t" else _DATA

    def _step_preamble(self) -> bool:
        buffer = self._buffer
        found = buffer.find(self._delimiter)
        if found < 0:
            # Nothing before the last len(delimiter)-1 bytes can start one.
            del buffer[: max(0, len(buffer) - len(self._delimiter) + 1)]
            return False
        kind = self._classify(found)
        if kind == _WAIT:
            del buffer[:found]
            return False
        del buffer[: found + len(self._delimiter)]
        if kind == _REAL:
            self._state = _AFTER_DELIMITER
        return True

    def _step_after_delimiter(self) -> bool:
        buffer = self._buffer
        if not self._padding:
            if buffer[:2] == b"--":
                self._state = _EPILOGUE
                buffer.clear()
                return False
            if buffer == b"-":
                return False
        # Padding is dropped as it arrives, and counted across feeds.
        padding = 0
        while padding < len(buffer) and buffer[padding] in _OWS:
            padding += 1
        del buffer[:padding]
        self._padding += padding
        if self._padding > _MAX_PADDING:
            raise MultipartError("malformed boundary line")
        if not buffer or buffer == b"\r":
            return False
        if buffer[:2] != b"\r\n":
            raise MultipartError("malformed boundary line")
        # Keep the CRLF: the header block then ends at the first CRLFCRLF,
        # even when the part has no headers at all.
        self._padding = 0
        self._parts += 1
        if self._parts > self.limits.max_parts:
            raise MultipartError(f"more than {self.limits.max_parts} parts", 413)
        self._state = _HEADERS
        return True

    def _step_headers(self, events: list[MultipartEvent]) -> bool:
        buffer = self._buffer
        limit = self.limits.max_header_bytes
        # The buffer is CRLF, at most `limit` header bytes, CRLFCRLF.
        end = buffer.find(b"\r\n\r\n", 0, limit + 6)
        if end < 0:
            if len(buffer) >= limit + 6:
                raise MultipartError(f"part headers larger than {limit} bytes", 413)
            return False
        block = bytes(buffer[2:end])
        del buffer[: end + 4]
        events.append(_make_head(_parse_headers(block)))
        self._state = _BODY
        return True

    def _step_body(self, events: list[MultipartEvent]) -> bool:
        buffer = self._buffer
        delimiter = self._delimiter
        found = buffer.find(delimiter)
        if found >= 0:
            kind = self._classify(found)
            end = found + len(delimiter)
            if kind == _DATA:
                events.append(PartData(bytes(buffer[:end])))
                del buffer[:end]
                return True
            if found:
                events.append(PartData(bytes(buffer[:found])))
            if kind == _WAIT:
                del buffer[:found]
                return False
            del buffer[:end]
            events.append(PartEnd())
            self._state = _AFTER_DELIMITER
            return True
        # A delimiter starts with CR: hand out everything before the first CR
        # that is close enough to the end to begin a partial delimiter.
        cut = buffer.find(b"\r", max(0, len(buffer) - len(delimiter) + 1))
        if cut < 0:
            cut = len(buffer)
        if cut:
            events.append(PartData(bytes(buffer[:cut])))
            del buffer[:cut]
        return False


def _parse_headers(block: bytes) -> Headers:
    """Parse a part's header block (CRLF-separated, final CRLFCRLF removed)."""
    headers: Headers = []
    if not block:
        return headers
    for line in block.split(b"\r\n"):
        if line[:1] in (b" ", b"\t"):
            # obs-fold (RFC 5322 §2.2.3): some old clients still fold.
            if not headers:
                raise MultipartError("malformed part headers: continuation first")
            name, value = headers[-1]
            headers[-1] = (name, value + b" " + line.strip(_OWS))
            continue
        colon = line.find(b":")
        name = line[:colon]
        if colon <= 0 or name.strip(_OWS) != name or any(c < 0x21 for c in name):
            raise MultipartError("malformed part header line")
        headers.append((name.lower(), line[colon + 1 :].strip(_OWS)))
    return headers


def _make_head(headers: Headers) -> PartHead:
    disposition = None
    content_type = b"text/plain"
    for name, value in headers:
        if name == b"content-disposition" and disposition is None:
            disposition = value
        elif name == b"content-type":
            content_type = value
    if disposition is None:
        raise MultipartError("part without Content-Disposition")
    kind, params = parse_parameterized(disposition, full_escapes=False)
    if kind != b"form-data":
        raise MultipartError("Content-Disposition is not form-data")
    field_name = params.get(b"name")
    if field_name is None:
        raise MultipartError("Content-Disposition form-data without a name")
    filename = None
    if b"filename*" in params:
        filename = decode_ext_value(params[b"filename*"])
    if filename is None and b"filename" in params:
        filename = params[b"filename"].decode("utf-8", "replace")
    return PartHead(headers, field_name, filename, content_type)


# -- whole bodies -------------------------------------------------------------


@dataclass(eq=False)
class UploadedFile:
    """One file part of a multipart form, as :func:`parse_multipart` gives it.

    Attributes:
        name: The form field name.
        filename: The client's file name (may be ``""`` when a browser submits
            an empty file input).  Untrusted: never use it as a path.
        content_type: The part's Content-Type (``b"text/plain"`` when absent).
        file: The contents, a :class:`tempfile.SpooledTemporaryFile` (in
            memory up to the spool threshold, on disk above it), positioned
            at 0.  Close it (or :meth:`close`) when done with it.
        size: The number of bytes in ``file``.
        headers: All headers of the part, names lower-cased.
    """

    name: bytes
    filename: str
    content_type: bytes
    file: IO[bytes]
    size: int = 0
    headers: Headers = field(default_factory=list)

    def read(self, size: int = -1) -> bytes:
        """Read from :attr:`file` (a convenience)."""
        return self.file.read(size)

    def close(self) -> None:
        """Close :attr:`file`, deleting its temporary file if any."""
        self.file.close()


def parse_multipart(
    fileobj: IO[bytes],
    boundary: bytes,
    *,
    spool_threshold: int = 1024 * 1024,
    limits: FormLimits = DEFAULT_FORM_LIMITS,
    block_size: int = 64 * 1024,
) -> tuple[dict[bytes, list[bytes]], dict[bytes, list[UploadedFile]]]:
    """Read a whole ``multipart/form-data`` body into fields and files.

    ``fileobj`` is read from its current position to EOF in blocks of
    ``block_size`` bytes, through :class:`MultipartParser`.

    What goes where (Twisted compatibility):

    * ``args`` maps each field name to its values in body order, as Twisted's
      ``request.args`` does: plain fields (no ``filename``) as bytes, each at
      most ``limits.max_field_bytes`` (larger ones raise 413), **and** the
      contents of file parts of at most ``limits.max_file_arg_bytes`` bytes,
      because Twisted code reads uploads from ``request.args``.  Larger files
      are left out of ``args`` rather than loaded into memory.
    * ``files`` maps each field name to :class:`UploadedFile` objects for the
      parts that have a ``filename``, whatever their size, each spooled to a
      temporary file above ``spool_threshold`` bytes.  The caller owns them
      and should close them (the server does when the request ends).

    Raises:
        MultipartError: Malformed body or a limit exceeded (files opened so
            far are closed first).
    """
    parser = MultipartParser(boundary, limits)
    args: dict[bytes, list[bytes]] = {}
    files: dict[bytes, list[UploadedFile]] = {}
    opened: list[UploadedFile] = []
    field_limit = limits.max_field_bytes
    file_arg_limit = limits.max_file_arg_bytes
    head: PartHead | None = None
    value = bytearray()
    upload: UploadedFile | None = None
    try:
        while True:
            block = fileobj.read(block_size)
            events = parser.feed(block) if block else parser.close()
            for event in events:
                if isinstance(event, PartData):
                    if upload is not None:
                        upload.file.write(event.data)
                        upload.size += len(event.data)
                        continue
                    value += event.data
                    if field_limit is not None and len(value) > field_limit:
                        raise MultipartError(
                            f"form field larger than {field_limit} bytes", 413
                        )
                elif isinstance(event, PartHead):
                    head = event
                    if event.filename is not None:
                        # Not a `with`: the file outlives this call (the caller owns it).
                        spool = tempfile.SpooledTemporaryFile(  # noqa: SIM115
                            max_size=spool_threshold
                        )
                        upload = UploadedFile(
                            event.name, event.filename, event.content_type, spool,
                            headers=event.headers,
                        )
                        opened.append(upload)
                elif head is not None:  # PartEnd
                    if upload is None:
                        args.setdefault(head.name, []).append(bytes(value))
                        value.clear()
                    else:
                        upload.file.seek(0)
                        files.setdefault(head.name, []).append(upload)
                        if file_arg_limit is None or upload.size <= file_arg_limit:
                            args.setdefault(head.name, []).append(upload.file.read())
                            upload.file.seek(0)
                        upload = None
                    head = None
            if not block:
                return args, files
    except BaseException:
        for upload in opened:
            upload.close()
        raise


# -- urlencoded ---------------------------------------------------------------


def _unquote_plus(data: bytes) -> bytes:
    if b"+" in data:
        data = data.replace(b"+", b" ")
    if b"%" in data:
        data = unquote_to_bytes(data)
    return data


def parse_urlencoded(
    body: bytes, max_fields: int = DEFAULT_FORM_LIMITS.max_fields
) -> dict[bytes, list[bytes]]:
    """Parse an ``application/x-www-form-urlencoded`` body (WHATWG URL §5.1).

    Fields are separated by ``&`` only (not ``;``: splitting on it enabled
    web-cache poisoning, CVE-2021-23336); empty fields are skipped; a field
    without ``=`` has an empty value; ``+`` is a space; percent escapes are
    decoded to raw bytes (no charset guessing: ``%E9`` stays ``b"\\xe9"``, as
    in Twisted).  Values keep their order under each name.

    Raises:
        FormError: More than ``max_fields`` fields (413).

    Example:
        >>> parse_urlencoded(b"a=1&b=x+y&a=%41&c")
        {b'a': [b'1', b'A'], b'b': [b'x y'], b'c': [b'']}
    """
    args: dict[bytes, list[bytes]] = {}
    count = 0
    start = 0
    end = len(body)
    # A scan instead of body.split(b"&"): a hostile body of ampersands must
    # hit the limit before a million-item list is built.
    while start <= end:
        stop = body.find(b"&", start)
        if stop < 0:
            stop = end
        if stop > start:
            count += 1
            if count > max_fields:
                raise FormError(f"more than {max_fields} form fields", 413)
            name, _, value = body[start:stop].partition(b"=")
            args.setdefault(_unquote_plus(name), []).append(_unquote_plus(value))
        start = stop + 1
    return args
