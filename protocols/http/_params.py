"""Header values with parameters: ``type; name=value; name="quoted"``.

RFC 9110 §5.6.6 (parameters), §5.6.4 (quoted-string) and RFC 8187 (the
``name*=charset'lang'pct-encoded`` ext-value).  Shared by the form parsers
(``Content-Type``, ``Content-Disposition``); bytes only, no I/O.
"""

from __future__ import annotations

import codecs
from typing import Final
from urllib.parse import unquote_to_bytes

__all__ = ["decode_ext_value", "parse_parameterized"]

_OWS: Final = b" \t"
_QUOTE: Final = 0x22
_BACKSLASH: Final = 0x5C


def _read_quoted(value: bytes, pos: int, full_escapes: bool) -> tuple[bytes, int]:
    """Read a quoted-string whose opening quote is just before ``pos``.

    Returns the unescaped content and the index after the closing quote.  An
    unterminated string runs to the end of ``value`` (lenient, like browsers).
    With ``full_escapes`` every quoted-pair is undone (RFC 9110 §5.6.4);
    without it only ``\\"`` and ``\\\\`` are, because browsers send Windows
    paths in ``filename`` with bare backslashes (``C:\\dir\\f.txt``) and the
    stdlib ``email`` package reads them the same way.
    """
    out = bytearray()
    end = len(value)
    while pos < end:
        char = value[pos]
        if char == _QUOTE:
            return bytes(out), pos + 1
        if char == _BACKSLASH and pos + 1 < end:
            following = value[pos + 1]
            if full_escapes or following in (_QUOTE, _BACKSLASH):
                out.append(following)
                pos += 2
                continue
        out.append(char)
        pos += 1
    return bytes(out), end


def parse_parameterized(
    value: bytes, full_escapes: bool = True
) -> tuple[bytes, dict[bytes, bytes]]:
    """Split ``type; name=value; name="quoted"`` into the type and parameters.

    The type and the parameter names are lower-cased (both are
    case-insensitive); values are kept as sent, quotes removed.  Malformed
    parameters (no ``=``, empty name) are skipped; of duplicates the first
    wins, so a later copy cannot override what an earlier check looked at.
    """
    semi = value.find(b";")
    if semi < 0:
        return value.strip(_OWS).lower(), {}
    kind = value[:semi].strip(_OWS).lower()
    params: dict[bytes, bytes] = {}
    end = len(value)
    pos = semi + 1
    while pos < end:
        while pos < end and value[pos] in b" \t;":
            pos += 1
        if pos >= end:
            break
        equals = value.find(b"=", pos)
        semi = value.find(b";", pos)
        if equals < 0 or 0 <= semi < equals:
            pos = end if semi < 0 else semi + 1
            continue
        name = value[pos:equals].strip(_OWS).lower()
        pos = equals + 1
        while pos < end and value[pos] in _OWS:
            pos += 1
        if pos < end and value[pos] == _QUOTE:
            param, pos = _read_quoted(value, pos + 1, full_escapes)
            # Whatever follows the closing quote up to the next ";" is junk.
            semi = value.find(b";", pos)
            pos = end if semi < 0 else semi + 1
        else:
            semi = value.find(b";", pos)
            stop = end if semi < 0 else semi
            param = value[pos:stop].strip(_OWS)
            pos = stop + 1
        if name and name not in params:
            params[name] = param
    return kind, params


def decode_ext_value(value: bytes) -> str | None:
    """Decode an RFC 8187 (ex-5987) ext-value: ``charset'lang'pct-encoded``.

    Returns ``None`` when it is malformed or names an unknown charset, so the
    caller falls back to the plain parameter.
    """
    pieces = value.split(b"'", 2)
    if len(pieces) != 3:
        return None
    charset = pieces[0].decode("ascii", "replace")
    try:
        codecs.lookup(charset)
        return unquote_to_bytes(pieces[2]).decode(charset)
    except (LookupError, UnicodeDecodeError):
        return None
