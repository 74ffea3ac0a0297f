"""Cookies on the server side: parsing ``Cookie``, formatting ``Set-Cookie``.

Sans-I/O and Twisted-compatible: :func:`parse_cookie_header` gives what
Twisted's ``Request.received_cookies`` holds for the same header, and
:func:`format_set_cookie` produces byte for byte what Twisted's
``Request.addCookie`` puts in ``Set-Cookie`` (the tests compare the two).

Parsing follows Twisted rather than RFC 6265 §5.2 where they differ, because
Twisted applications read ``received_cookies`` and must see the same values:

* pairs are split on ``;``; leading whitespace of a pair is dropped, trailing
  whitespace and any quotes are kept (RFC 6265 §4.1.1 makes the quotes part of
  the cookie value, and browsers send them back as stored);
* a pair without ``=`` is skipped; ``=v`` gives the name ``b""``;
* when a name repeats, the **last** occurrence wins.  Browsers send the
  cookie with the longest path first (RFC 6265 §5.4), so Django/Flask-style
  "first wins" would differ; Twisted's behaviour is the contract here.
"""

from __future__ import annotations

import email.utils
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Final

__all__ = ["format_set_cookie", "parse_cookie_header", "parse_cookies"]

_SAME_SITE: Final = (b"lax", b"strict", b"none")


def parse_cookie_header(value: bytes) -> dict[bytes, bytes]:
    """Parse one ``Cookie`` request header value into ``{name: value}``.

    See the module docstring for the rules (Twisted's, last occurrence wins).

    Example:
        >>> parse_cookie_header(b'a=1; b="x y"; junk; a=2; c=')
        {b'a': b'2', b'b': b'"x y"', b'c': b''}
    """
    cookies: dict[bytes, bytes] = {}
    for pair in value.split(b";"):
        name, equals, cookie = pair.lstrip().partition(b"=")
        if equals:
            cookies[name] = cookie
    return cookies


def parse_cookies(values: Iterable[bytes] | None) -> dict[bytes, bytes]:
    """Merge every ``Cookie`` header of a request, as ``received_cookies``.

    Args:
        values: The raw header values in order (``getRawHeaders(b"cookie")``),
            or ``None`` when there is none.
    """
    cookies: dict[bytes, bytes] = {}
    for value in values or ():
        cookies.update(parse_cookie_header(value))
    return cookies


def _to_bytes(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode("utf-8")


def _sanitize(value: bytes | str) -> bytes:
    """Replace line breaks and ``;`` with spaces, as Twisted does.

    Twisted replaces rather than rejects (so a Twisted program that passes a
    value with ``;`` keeps working), and either way no header can be split or
    an attribute injected.  ``bytes.splitlines`` breaks on CR, LF and CRLF,
    each becoming one space; a trailing line break disappears.
    """
    return b" ".join(_to_bytes(value).splitlines()).replace(b";", b" ")


def _http_date(value: datetime | float) -> bytes:
    """IMF-fixdate (RFC 9110 §5.6.7); a naive datetime is taken as UTC."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return email.utils.format_datetime(
            value.astimezone(UTC), usegmt=True
        ).encode("ascii")
    return email.utils.formatdate(value, usegmt=True).encode("ascii")


def format_set_cookie(
    name: bytes | str,
    value: bytes | str,
    expires: bytes | str | datetime | float | None = None,
    domain: bytes | str | None = None,
    path: bytes | str | None = None,
    max_age: bytes | str | int | None = None,
    comment: bytes | str | None = None,
    secure: bool | None = None,
    httpOnly: bool = False,  # Twisted's addCookie keyword
    sameSite: bytes | str | None = None,  # Twisted's addCookie keyword
) -> bytes:
    """A ``Set-Cookie`` header value, exactly as Twisted's ``addCookie`` builds it.

    Text is encoded as UTF-8; CR, LF and ``;`` in any text become spaces (see
    :func:`_sanitize`).  Attributes come in Twisted's order: Expires, Domain,
    Path, Max-Age, Comment, Secure, HttpOnly, SameSite.

    Beyond Twisted (whose ``expires`` must already be formatted text):
    ``expires`` may also be a :class:`~datetime.datetime` (naive means UTC) or
    a POSIX timestamp, formatted as an IMF-fixdate, and ``max_age`` may be an
    ``int``.

    Raises:
        ValueError: ``sameSite`` is not ``lax``, ``strict`` or ``none`` (any
            case), or is ``none`` without ``secure`` (browsers reject that).

    Example:
        >>> format_set_cookie("id", "a1", path="/", httpOnly=True, sameSite="Lax")
        b'id=a1; Path=/; HttpOnly; SameSite=lax'
    """
    parts = [_sanitize(name) + b"=" + _sanitize(value)]
    if expires is not None:
        if not isinstance(expires, bytes | str):
            expires = _http_date(expires)
        parts.append(b"Expires=" + _sanitize(expires))
    if domain is not None:
        parts.append(b"Domain=" + _sanitize(domain))
    if path is not None:
        parts.append(b"Path=" + _sanitize(path))
    if max_age is not None:
        if isinstance(max_age, int):
            max_age = str(max_age)
        parts.append(b"Max-Age=" + _sanitize(max_age))
    if comment is not None:
        parts.append(b"Comment=" + _sanitize(comment))
    if secure:
        parts.append(b"Secure")
    if httpOnly:
        parts.append(b"HttpOnly")
    if sameSite:
        same_site = _to_bytes(sameSite).lower()
        if same_site not in _SAME_SITE:
            raise ValueError(f"Invalid value for sameSite: {same_site!r}")
        if same_site == b"none" and not secure:
            raise ValueError(
                f"Invalid value for sameSite: {same_site!r}. Missing the \"secure\" attribute"
            )
        parts.append(b"SameSite=" + same_site)
    return b"; ".join(parts)
