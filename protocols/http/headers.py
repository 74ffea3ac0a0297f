"""HTTP header fields: the case-insensitive :class:`Headers` and value helpers.

Shared by the server (``server.py``, ``request.py``), the client and the
resources that build responses (``static.py``); nothing here does I/O.
"""

from __future__ import annotations

import email.utils
import http
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Final

__all__ = ["SERVER_HEADER", "Headers", "check_header_value", "http_date", "reason_phrase"]

SERVER_HEADER: Final = b"Torsion"


def reason_phrase(code: int) -> bytes:
    """The standard reason phrase for ``code`` (``b"Unknown Status"`` if none).

    Example:
        >>> reason_phrase(404)
        b'Not Found'
    """
    try:
        return http.HTTPStatus(code).phrase.encode("ascii")
    except ValueError:
        return b"Unknown Status"


_date_cache: tuple[int, bytes] = (0, b"")


def http_date() -> bytes:
    """The ``Date`` header value, formatted at most once per second."""
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, email.utils.formatdate(now, usegmt=True).encode("ascii"))
    return _date_cache[1]


def _name(name: bytes | str) -> bytes:
    return name.encode("latin-1") if isinstance(name, str) else name


class Headers:
    """Case-insensitive, multi-valued HTTP header fields.

    Names keep the spelling they were first set with (for output); lookups
    ignore case. Values are bytes; ``str`` names are accepted and encoded.

    Built empty, from Twisted's ``{name: [values]}`` or from ``(name, value)``
    pairs.

    Example:
        >>> Headers({b"Accept": [b"text/html"]}).getRawHeaders("accept")
        [b'text/html']
        >>> h = Headers()
        >>> h.addRawHeader(b"Set-Cookie", b"a=1")
        >>> h.addRawHeader(b"set-cookie", b"b=2")
        >>> h.getRawHeaders(b"SET-COOKIE")
        [b'a=1', b'b=2']
    """

    def __init__(self, rawHeaders: Mapping[bytes | str, Sequence[bytes]]
                 | Iterable[tuple[bytes, bytes]] | None = None) -> None:
        # Twisted's form, {name: [values]}, or (name, value) pairs as parsed.
        self._fields: dict[bytes, tuple[bytes, list[bytes]]] = {}
        if rawHeaders is None:
            # Every response starts from an empty Headers: skip the ABC
            # isinstance check below, which costs half a microsecond.
            return
        if isinstance(rawHeaders, Mapping):
            for name, values in rawHeaders.items():
                for value in values:
                    self.addRawHeader(name, value)
            return
        for name, value in rawHeaders:
            self.addRawHeader(name, value)

    @classmethod
    def fromLowered(cls, pairs: Iterable[tuple[bytes, bytes]]) -> Headers:
        """Headers from ``(name, value)`` pairs whose names are already lower
        case, as the parser gives them (a faster path than the constructor)."""
        headers = cls.__new__(cls)
        fields: dict[bytes, tuple[bytes, list[bytes]]] = {}
        for name, value in pairs:
            field = fields.get(name)
            if field is None:
                fields[name] = (name, [value])
            else:
                field[1].append(value)
        headers._fields = fields
        return headers

    def hasHeader(self, name: bytes | str) -> bool:
        """Whether a field called ``name`` is present."""
        return _name(name).lower() in self._fields

    def getRawHeaders(
        self, name: bytes | str, default: list[bytes] | None = None
    ) -> list[bytes] | None:
        """All values of ``name`` in order, or ``default`` when absent."""
        field = self._fields.get(_name(name).lower())
        return list(field[1]) if field is not None else default

    def setRawHeaders(self, name: bytes | str, values: list[bytes]) -> None:
        """Replace every value of ``name`` with ``values``."""
        raw = _name(name)
        self._fields[raw.lower()] = (raw, list(values))

    def addRawHeader(self, name: bytes | str, value: bytes) -> None:
        """Append ``value`` to the values of ``name``."""
        raw = _name(name)
        field = self._fields.get(raw.lower())
        if field is None:
            self._fields[raw.lower()] = (raw, [value])
        else:
            field[1].append(value)

    def removeHeader(self, name: bytes | str) -> None:
        """Remove every value of ``name`` (no error if absent)."""
        self._fields.pop(_name(name).lower(), None)

    def getAllRawHeaders(self) -> Iterator[tuple[bytes, list[bytes]]]:
        """Yield ``(name, values)`` for each field, names as first spelled."""
        for raw, values in self._fields.values():
            yield raw, list(values)

    def __repr__(self) -> str:
        return f"Headers({dict(self.getAllRawHeaders())!r})"


def check_header_value(value: bytes) -> bytes:
    """Return ``value``, or raise ValueError if it holds a CR or LF."""
    # A CR or LF in a value would let a handler (or data it echoes) inject
    # headers or a whole response: refuse rather than send it.
    if b"\r" in value or b"\n" in value:
        raise ValueError(f"header value contains CR or LF: {value!r}")
    return value
