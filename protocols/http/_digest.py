"""Sans-I/O HTTP authentication: header grammar, Basic and Digest arithmetic, nonces.

Nothing here does I/O or imports the reactor: :mod:`protocols.http.auth` (the
server wrapper and the client agent) is the glue. What is here:

- :func:`parse_challenges` / :func:`parse_credentials` read ``WWW-Authenticate``
  and ``Authorization`` values (RFC 7235 §2.1: a scheme, then a token68 or a
  list of ``name=value`` auth-params); :func:`format_auth` writes them.
- :func:`encode_basic` / :func:`decode_basic`: RFC 7617's ``user:password`` in
  base64.
- :func:`digest_ha1`, :func:`digest_response`: RFC 7616's KD/H computations
  for MD5, SHA-256 and SHA-512-256, their ``-sess`` variants, ``qop=auth``
  and the RFC 2069 form without qop. :func:`userhash` and the RFC 8187
  ``username*`` encoding (:func:`encode_ext_value`, :func:`decode_ext_value`).
- :class:`NonceManager`: issues nonces a server can verify without keeping
  them (an HMAC over time and randomness), expires them, and refuses a
  nonce-count it already accepted for a nonce (replay protection).

Header values are handled as ``str`` decoded from latin-1, which maps each
byte to one character, so ``value.encode("latin-1")`` gives the wire bytes
back unchanged (UTF-8 usernames included).

Example:
    >>> [c.scheme for c in parse_challenges('Basic realm="a", Digest realm="b", nonce="n"')]
    ['basic', 'digest']
    >>> decode_basic(encode_basic(b"alice", b"pw"))
    (b'alice', b'pw')
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import re
import secrets
import struct
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import quote, unquote_to_bytes

__all__ = [
    "ALGORITHMS",
    "AuthHeaderError",
    "Challenge",
    "NonceManager",
    "NonceStatus",
    "decode_basic",
    "decode_ext_value",
    "digest_ha1",
    "digest_response",
    "encode_basic",
    "encode_ext_value",
    "format_auth",
    "parse_challenges",
    "parse_credentials",
    "userhash",
]


class AuthHeaderError(ValueError):
    """An ``Authorization`` or ``WWW-Authenticate`` value that breaks the grammar."""


# -- RFC 7235 grammar ---------------------------------------------------------------

_TCHAR: Final = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]"
_TOKEN_RE: Final = re.compile(_TCHAR + "+")
_OWS_RE: Final = re.compile(r"[ \t]*")
# token68 must be followed by the end or a comma, else it was the first
# auth-param's name (e.g. ``realm=`` in ``realm="x"``).
_TOKEN68_RE: Final = re.compile(r"([A-Za-z0-9\-._~+/]+=*)[ \t]*(?=,|$)")
# quoted-string: qdtext or a quoted-pair; HTAB is allowed, other controls are not.
_CTL: Final = r"\x00-\x08\x0a-\x1f\x7f"
_QUOTED: Final = r'"((?:[^"\\' + _CTL + r"]|\\[^" + _CTL + r'])*)"'
_PARAM_RE: Final = re.compile(
    "(" + _TCHAR + r"+)[ \t]*=[ \t]*(?:" + _QUOTED + "|(" + _TCHAR + "+))")
_PARAM_START_RE: Final = re.compile(_TCHAR + r"+[ \t]*=")
_UNESCAPE_RE: Final = re.compile(r"\\(.)")


@dataclass
class Challenge:
    """One challenge (``WWW-Authenticate``) or credentials (``Authorization``).

    Attributes:
        scheme: The auth-scheme, lower-cased (``"basic"``, ``"digest"``).
        params: Auth-params by lower-cased name, values unquoted.
        token68: The token68 form's value (Basic credentials), else None.
    """

    scheme: str
    params: dict[str, str] = field(default_factory=dict)
    token68: str | None = None


def _skip_ows(value: str, pos: int) -> int:
    match = _OWS_RE.match(value, pos)
    assert match is not None  # [ \t]* always matches
    return match.end()


def _skip_separators(value: str, pos: int) -> int:
    # A list may hold empty elements ("a, , b"): RFC 9110 §5.6.1 says ignore them.
    while True:
        pos = _skip_ows(value, pos)
        if pos < len(value) and value[pos] == ",":
            pos += 1
            continue
        return pos


def parse_challenges(value: str | bytes) -> list[Challenge]:
    """Parse a ``WWW-Authenticate`` value: one or more comma-separated challenges.

    Raises:
        AuthHeaderError: On anything outside the RFC 7235 grammar, or an
            auth-param repeated within one challenge.

    Example:
        >>> c, = parse_challenges('Digest realm="a b", qop="auth", algorithm=MD5')
        >>> c.scheme, c.params["realm"], c.params["algorithm"]
        ('digest', 'a b', 'MD5')
    """
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    found: list[Challenge] = []
    pos = _skip_separators(value, 0)
    end = len(value)
    while pos < end:
        scheme = _TOKEN_RE.match(value, pos)
        if scheme is None:
            raise AuthHeaderError(f"expected an auth-scheme at offset {pos}")
        challenge = Challenge(scheme.group().lower())
        found.append(challenge)
        pos = scheme.end()
        if pos < end and value[pos] not in " \t,":
            raise AuthHeaderError(f"unexpected {value[pos]!r} after the scheme")
        pos = _skip_ows(value, pos)
        if pos >= end or value[pos] == ",":
            pos = _skip_separators(value, pos)
            continue
        token68 = _TOKEN68_RE.match(value, pos)
        if token68 is not None:
            challenge.token68 = token68.group(1)
            pos = _skip_separators(value, token68.end())
            continue
        pos = _parse_params(value, pos, challenge.params)
    return found


def _parse_params(value: str, pos: int, params: dict[str, str]) -> int:
    """Read auth-params from ``pos`` until the next challenge or the end."""
    end = len(value)
    while True:
        match = _PARAM_RE.match(value, pos)
        if match is None:
            raise AuthHeaderError(f"malformed auth-param at offset {pos}")
        name = match.group(1).lower()
        if name in params:
            raise AuthHeaderError(f"auth-param {name!r} given twice")
        quoted, token = match.group(2), match.group(3)
        params[name] = _UNESCAPE_RE.sub(r"\1", quoted) if quoted is not None else token
        pos = _skip_ows(value, match.end())
        if pos >= end:
            return pos
        if value[pos] != ",":
            raise AuthHeaderError(f"expected ',' at offset {pos}")
        pos = _skip_separators(value, pos)
        # After a comma comes either another param (``name=``) or the next
        # challenge's scheme (a token followed by a space, a comma or the end).
        if pos >= end or _PARAM_START_RE.match(value, pos) is None:
            return pos


def parse_credentials(value: str | bytes) -> Challenge:
    """Parse an ``Authorization`` value: exactly one scheme with its credentials.

    Raises:
        AuthHeaderError: When the value is malformed or holds several schemes.

    Example:
        >>> parse_credentials("Basic YTpi").token68
        'YTpi'
    """
    found = parse_challenges(value)
    if len(found) != 1:
        raise AuthHeaderError(f"expected one set of credentials, found {len(found)}")
    return found[0]


def _quote(text: str) -> str:
    if any((ord(c) < 0x20 and c != "\t") or ord(c) == 0x7F for c in text):
        # A CR/LF would split the header: refuse rather than inject.
        raise ValueError(f"control character in auth-param value: {text!r}")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def format_auth(scheme: str, params: Iterable[tuple[str, str, bool]]) -> bytes:
    """Format a challenge or credentials: ``scheme name="value", name=token``.

    ``params`` are ``(name, value, quoted)`` in output order. RFC 7616 fixes
    which Digest parameters are quoted (``algorithm``, ``qop`` in credentials,
    ``nc``, ``stale`` and ``userhash`` are not), hence the explicit flag.

    Raises:
        ValueError: If a value holds a control character, or an unquoted value
            is not a token.

    Example:
        >>> format_auth("Digest", [("realm", 'a"b', True), ("algorithm", "MD5", False)])
        b'Digest realm="a\\\\"b", algorithm=MD5'
    """
    parts = []
    for name, value, quoted in params:
        if quoted:
            parts.append(f"{name}={_quote(value)}")
        elif _TOKEN_RE.fullmatch(value):
            parts.append(f"{name}={value}")
        else:
            raise ValueError(f"auth-param {name}={value!r} must be quoted")
    return (scheme + " " + ", ".join(parts)).encode("latin-1")


# -- Basic (RFC 7617) ---------------------------------------------------------------


def encode_basic(username: bytes, password: bytes) -> bytes:
    """The ``Authorization`` value for Basic credentials.

    Raises:
        ValueError: If ``username`` contains a colon (RFC 7617 §2 forbids it:
            the server could not tell where the password starts).

    Example:
        >>> encode_basic(b"Aladdin", b"open sesame")
        b'Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=='
    """
    if b":" in username:
        raise ValueError("a Basic user-id cannot contain ':'")
    return b"Basic " + base64.b64encode(username + b":" + password)


def decode_basic(value: str | bytes) -> tuple[bytes, bytes]:
    """``(username, password)`` from a Basic ``Authorization`` value.

    Raises:
        AuthHeaderError: If the scheme is not Basic, the base64 is invalid or
            there is no colon.

    Example:
        >>> decode_basic(b"Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==")
        (b'Aladdin', b'open sesame')
    """
    creds = parse_credentials(value)
    if creds.scheme != "basic" or creds.token68 is None:
        raise AuthHeaderError("not Basic credentials")
    try:
        raw = base64.b64decode(creds.token68.encode("ascii"), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise AuthHeaderError("invalid base64 in Basic credentials") from exc
    username, colon, password = raw.partition(b":")
    if not colon:
        raise AuthHeaderError("Basic credentials without ':'")
    return username, password


# -- Digest (RFC 7616) --------------------------------------------------------------


def _hasher(name: str) -> Callable[[bytes], str]:
    def digest(data: bytes) -> str:
        return hashlib.new(name, data).hexdigest()

    return digest


def _available(name: str) -> bool:
    try:
        hashlib.new(name)
    except ValueError:
        return False
    return True


ALGORITHMS: Final[Mapping[str, Callable[[bytes], str]]] = {
    name: _hasher(impl)
    for name, impl in (("MD5", "md5"), ("SHA-256", "sha256"), ("SHA-512-256", "sha512_256"))
    if _available(impl)
}
"""Digest ``algorithm`` names (without ``-sess``) -> hex digest function."""


def _split_algorithm(algorithm: str) -> tuple[Callable[[bytes], str], bool]:
    """The hash function for ``algorithm`` and whether it is a ``-sess`` variant."""
    upper = algorithm.upper()
    session = upper.endswith("-SESS")
    base = upper[: -len("-SESS")] if session else upper
    try:
        return ALGORITHMS[base], session
    except KeyError:
        raise ValueError(f"unsupported Digest algorithm {algorithm!r}") from None


def digest_ha1(algorithm: str, username: bytes, realm: bytes, password: bytes) -> str:
    """``H(username:realm:password)``, what a server may store instead of the password.

    For a ``-sess`` algorithm this is still the plain value; the session key
    is derived per nonce by :func:`digest_response`.

    Example:
        >>> digest_ha1("MD5", b"Mufasa", b"http-auth@example.org", b"Circle of Life")
        '3d78807defe7de2157e2b0b6573a855f'
    """
    hash_, _ = _split_algorithm(algorithm)
    return hash_(b":".join((username, realm, password)))


def userhash(algorithm: str, username: bytes, realm: bytes) -> str:
    """``H(username:realm)``, sent as the username when the server asks ``userhash=true``."""
    hash_, _ = _split_algorithm(algorithm)
    return hash_(username + b":" + realm)


def digest_response(
    algorithm: str,
    ha1: str,
    *,
    method: bytes,
    uri: bytes,
    nonce: bytes,
    nc: bytes = b"",
    cnonce: bytes = b"",
    qop: bytes | None = b"auth",
) -> str:
    """The ``response`` parameter: ``KD(HA1, nonce:nc:cnonce:qop:H(method:uri))``.

    ``ha1`` is :func:`digest_ha1`'s value; for ``-sess`` algorithms the session
    key ``H(HA1:nonce:cnonce)`` is derived here. ``qop=None`` gives RFC 2069's
    ``KD(HA1, nonce:H(method:uri))``, for servers that offer no qop. Only
    ``qop=auth`` is supported (``auth-int`` would hash the body).

    Raises:
        ValueError: For an unknown algorithm or a qop other than auth/None.
    """
    hash_, session = _split_algorithm(algorithm)
    key = ha1.encode("ascii")
    if session:
        key = hash_(b":".join((key, nonce, cnonce))).encode("ascii")
    ha2 = hash_(method + b":" + uri).encode("ascii")
    if qop is None:
        return hash_(b":".join((key, nonce, ha2)))
    if qop != b"auth":
        raise ValueError(f"unsupported qop {qop!r}")
    return hash_(b":".join((key, nonce, nc, cnonce, qop, ha2)))


def encode_ext_value(text: bytes) -> str:
    """RFC 8187 ``ext-value`` for a UTF-8 parameter: ``UTF-8''J%C3%A4s%C3%B8n``.

    Example:
        >>> encode_ext_value("Jäsøn Doe".encode())
        "UTF-8''J%C3%A4s%C3%B8n%20Doe"
    """
    return "UTF-8''" + quote(text, safe="!#$&+-.^_`|~")


def decode_ext_value(value: str) -> bytes:
    """The UTF-8 bytes of an RFC 8187 ``ext-value`` (only the UTF-8 charset).

    Raises:
        AuthHeaderError: For another charset or a malformed value.
    """
    charset, sep1, rest = value.partition("'")
    _language, sep2, encoded = rest.partition("'")
    if not (sep1 and sep2) or charset.upper() != "UTF-8":
        raise AuthHeaderError("ext-value must be UTF-8''<percent-encoded>")
    if re.fullmatch(r"(?:[!#$&+\-.^_`|~0-9A-Za-z]|%[0-9A-Fa-f]{2})*", encoded) is None:
        raise AuthHeaderError("malformed percent-encoding in ext-value")
    raw = unquote_to_bytes(encoded)
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AuthHeaderError("ext-value is not UTF-8") from exc
    return raw


# -- nonces -------------------------------------------------------------------------


class NonceStatus(enum.Enum):
    """What :meth:`NonceManager.check` found."""

    VALID = "valid"
    """Issued by us and not expired."""
    STALE = "stale"
    """Issued by us but expired (or its replay window was forgotten)."""
    INVALID = "invalid"
    """Not one of ours: forged, truncated, or from another secret."""


@dataclass
class _Seen:
    """Nonce-counts accepted for one nonce: a sliding window, as IPsec's anti-replay.

    ``highest`` is the largest count accepted; bit ``i`` of ``window`` says
    whether ``highest - i`` was. Counts may arrive slightly out of order (a
    client with several connections), so a count below ``highest`` is still
    accepted once, if it is within the window.
    """

    issued: float
    highest: int = 0
    window: int = 0


class NonceManager:
    """Issue Digest nonces and decide whether a client's (nonce, nc) may be used.

    A nonce is ``base64url(issued-time | 12 random bytes | HMAC-SHA256 tag)``:
    it proves itself to be ours and tells its age without any stored state,
    so unauthenticated clients asking for challenges cost no memory. State is
    kept only for nonces that authenticated successfully: the nonce-counts
    seen, to refuse a replayed request (RFC 7616 §5.12).

    Args:
        lifetime: Seconds a nonce is accepted after it was issued.
        seconds: The clock (``reactor.seconds`` or a test ``Clock.seconds``).
        secret: HMAC key; random by default (nonces then die with the process).
        window: How far below the highest nonce-count an unseen count is
            still accepted.
        max_tracked: Bound on nonces with replay state; when exceeded the
            oldest are forgotten and become stale (clients re-authenticate).

    Example:
        >>> nonces = NonceManager(lifetime=60, seconds=lambda: 1000.0)
        >>> n = nonces.issue()
        >>> nonces.check(n), nonces.use(n, 1), nonces.use(n, 1)
        (<NonceStatus.VALID: 'valid'>, True, False)
    """

    _FORMAT: Final = struct.Struct(">d12s")
    _TAG_SIZE: Final = 16

    def __init__(
        self,
        lifetime: float = 300.0,
        seconds: Callable[[], float] = time.time,
        secret: bytes | None = None,
        window: int = 64,
        max_tracked: int = 100_000,
    ) -> None:
        self.lifetime = lifetime
        self._seconds = seconds
        self._secret = secret if secret is not None else secrets.token_bytes(32)
        self._window = window
        self._max_tracked = max_tracked
        self._seen: dict[str, _Seen] = {}
        # Nonces issued at or before this time lost their state to eviction:
        # accepting them again could accept a replay, so they count as stale.
        self._forgotten_before = float("-inf")

    def _tag(self, body: bytes) -> bytes:
        return hmac.new(self._secret, body, hashlib.sha256).digest()[: self._TAG_SIZE]

    def issue(self) -> str:
        """A fresh nonce (URL-safe base64, no padding, 48 characters)."""
        body = self._FORMAT.pack(self._seconds(), secrets.token_bytes(12))
        return base64.urlsafe_b64encode(body + self._tag(body)).decode("ascii")

    def _issued_at(self, nonce: str) -> float | None:
        """When ``nonce`` was issued, or None when it is not authentic."""
        try:
            raw = base64.urlsafe_b64decode(nonce.encode("ascii"))
        except (binascii.Error, ValueError, UnicodeEncodeError):
            return None
        size = self._FORMAT.size
        if len(raw) != size + self._TAG_SIZE:
            return None
        body, tag = raw[:size], raw[size:]
        if not hmac.compare_digest(tag, self._tag(body)):
            return None
        issued: float = self._FORMAT.unpack(body)[0]
        return issued

    def check(self, nonce: str) -> NonceStatus:
        """Whether ``nonce`` is ours and still fresh (nonce-counts aside)."""
        issued = self._issued_at(nonce)
        if issued is None:
            return NonceStatus.INVALID
        now = self._seconds()
        if now - issued > self.lifetime or issued > now + 1.0:
            return NonceStatus.STALE
        if nonce not in self._seen and issued <= self._forgotten_before:
            return NonceStatus.STALE
        return NonceStatus.VALID

    def use(self, nonce: str, nc: int) -> bool:
        """Record nonce-count ``nc`` for ``nonce``; False if stale or already used.

        Call it only once the request's response digest proved correct, so
        that a forger cannot burn counts a real client is about to use.
        """
        if nc < 1 or self.check(nonce) is not NonceStatus.VALID:
            return False
        seen = self._seen.get(nonce)
        if seen is None:
            issued = self._issued_at(nonce)
            assert issued is not None
            self._prune()
            seen = self._seen[nonce] = _Seen(issued)
        if nc > seen.highest:
            shift = nc - seen.highest
            # Counts are up to 2**32: never shift by more than the window.
            kept = seen.window << shift if shift < self._window else 0
            seen.window = (kept | 1) & ((1 << self._window) - 1)
            seen.highest = nc
            return True
        offset = seen.highest - nc
        if offset >= self._window or seen.window >> offset & 1:
            return False
        seen.window |= 1 << offset
        return True

    def _prune(self) -> None:
        if len(self._seen) < self._max_tracked:
            return
        oldest_fresh = self._seconds() - self.lifetime
        for nonce in [n for n, s in self._seen.items() if s.issued < oldest_fresh]:
            del self._seen[nonce]
        while len(self._seen) >= self._max_tracked:
            # Dicts keep insertion order: the first entry is the oldest state.
            state = self._seen.pop(next(iter(self._seen)))
            self._forgotten_before = max(self._forgotten_before, state.issued)
