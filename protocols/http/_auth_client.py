"""The client side of HTTP authentication: :class:`AuthAgent` and :class:`PasswordManager`.

Import these from :mod:`protocols.http.auth`. ``AuthAgent`` wraps any object
with ``request(method, uri, headers=None, bodyProducer=None) -> Deferred[Response]``
(the :class:`~protocols.http.client.Agent`, or another wrapper) and answers a
``401`` once, with the strongest challenge it has a password for: Digest
SHA-256 (or SHA-512-256), then Digest MD5, then Basic::

    creds = PasswordManager()
    creds.add_password("staff", "http://127.0.0.1:8080/private/", "alice", "wonderland")
    agent = AuthAgent(Agent(reactor), creds)
    response = await agent.request(b"GET", b"http://127.0.0.1:8080/private/report")

After a success the protection space is remembered, so later requests under
the same directory send credentials at once (Digest: the same nonce with the
next nonce-count, or the server's ``nextnonce``); a ``401`` to such a
request (for example ``stale=true``) is answered once again.

Bodies: a request that may be retried must be sent twice. A body producer
whose ``length`` is known and at most ``bufferLimit`` bytes (1 MiB by
default) is read into memory first and replayed; one with a ``replay()``
method is asked for a fresh copy. A larger or unknown-length body is sent
once, and its ``401`` is returned as is, unless credentials were already
known for its URL (then they go with the first attempt). A request whose
headers already carry ``Authorization`` is passed through untouched.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

from deferred import Deferred, Failure, ensureDeferred, maybeDeferred, succeed
from protocols.base import Protocol

from ._digest import (
    ALGORITHMS,
    AuthHeaderError,
    Challenge,
    digest_ha1,
    digest_response,
    encode_basic,
    encode_ext_value,
    format_auth,
    parse_challenges,
    userhash,
)
from .headers import Headers

__all__ = ["AuthAgent", "PasswordManager"]

_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


def _text(value: str | bytes) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value


def _bytes(value: str | bytes) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else value


@dataclass(frozen=True)
class _Prefix:
    scheme: str | None
    host: str
    port: int | None
    path: str

    @classmethod
    def parse(cls, uri: str) -> _Prefix:
        if "://" not in uri:
            uri = "//" + uri  # "host:port/path": no scheme, so any scheme matches
        parts = urlsplit(uri)
        scheme = parts.scheme.lower() or None
        port = parts.port or (_DEFAULT_PORTS.get(scheme) if scheme else None)
        return cls(scheme, (parts.hostname or "").lower(), port, parts.path or "/")

    def covers(self, other: _Prefix) -> bool:
        if self.scheme is not None and self.scheme != other.scheme:
            return False
        if self.host != other.host or (self.port is not None and self.port != other.port):
            return False
        # Prefix by whole segments: "/a" covers "/a" and "/a/b", not "/ab".
        base = self.path if self.path.endswith("/") else self.path + "/"
        return other.path == self.path or other.path.startswith(base)


class PasswordManager:
    """User names and passwords by realm and URI prefix, like urllib's password managers.

    A realm of ``None`` matches any realm (``HTTPPasswordMgrWithDefaultRealm``);
    an entry for the exact realm wins over it, and a longer prefix over a
    shorter one. A prefix is ``"http://host:port/path"`` (the default port is
    implied by the scheme) or ``"host:port/path"`` (any scheme).

    Example:
        >>> creds = PasswordManager()
        >>> creds.add_password(None, "http://example.org/", "alice", "pw")
        >>> creds.find_user_password("any", "http://example.org/a/b")
        (b'alice', b'pw')
        >>> creds.find_user_password("any", "https://example.org/") is None
        True
    """

    def __init__(self) -> None:
        self._entries: list[tuple[str | None, _Prefix, bytes, bytes]] = []

    def add_password(self, realm: str | bytes | None, uri: str | bytes | Iterable[str | bytes],
                     user: str | bytes, password: str | bytes) -> None:
        """Register ``user``/``password`` for ``realm`` under one or more URI prefixes."""
        uris = [uri] if isinstance(uri, str | bytes) else list(uri)
        name = None if realm is None else _text(realm)
        for one in uris:
            self._entries.append((name, _Prefix.parse(_text(one)), _bytes(user),
                                  _bytes(password)))

    def find_user_password(self, realm: str | bytes | None,
                           uri: str | bytes) -> tuple[bytes, bytes] | None:
        """``(user, password)`` for ``realm`` at absolute ``uri``, or None."""
        target = _Prefix.parse(_text(uri))
        name = None if realm is None else _text(realm)
        best: tuple[tuple[bool, int], bytes, bytes] | None = None
        for entry_realm, prefix, user, password in self._entries:
            if entry_realm is not None and entry_realm != name:
                continue
            if not prefix.covers(target):
                continue
            rank = (entry_realm is not None, len(prefix.path))
            if best is None or rank > best[0]:
                best = (rank, user, password)
        return None if best is None else (best[1], best[2])


# -- what the agent remembers ---------------------------------------------------------


_RANK: Final = {"SHA-512-256": 3, "SHA-256": 3, "MD5": 2}


class _Space:
    """A protection space that accepted us: how to authorize requests inside it.

    Its paths: for Basic, the request's directory and below (RFC 7617 §2.2);
    for Digest, the challenge's ``domain`` list, or the whole origin when it
    has none (RFC 7616 §3.3).
    """

    def __init__(self, challenge: Challenge, path: str, user: bytes, password: bytes) -> None:
        self.challenge = challenge
        self.user = user
        self.password = password
        self.nc = 0
        if challenge.scheme == "basic":
            self.prefixes = [path[: path.rfind("/") + 1]]
        else:
            domain = challenge.params.get("domain", "").split()
            self.prefixes = [urlsplit(uri).path or "/" for uri in domain] or ["/"]

    def covers(self, path: str) -> bool:
        return any(path.startswith(prefix) for prefix in self.prefixes)

    def authorization(self, method: bytes, target: bytes) -> bytes:
        """The ``Authorization`` value for one request (next nonce-count for Digest)."""
        if self.challenge.scheme == "basic":
            return encode_basic(self.user, self.password)
        self.nc += 1
        return _digest_authorization(self.challenge.params, self.user, self.password,
                                     method, target, self.nc)


def _digest_authorization(params: dict[str, str], user: bytes, password: bytes,
                          method: bytes, target: bytes, nc: int) -> bytes:
    algorithm = params.get("algorithm", "MD5")
    realm = params["realm"].encode("latin-1")
    nonce = params["nonce"]
    offered = [q.strip() for q in params["qop"].split(",")] if "qop" in params else None
    cnonce = secrets.token_hex(16)
    ncvalue = f"{nc:08x}"
    response = digest_response(
        algorithm, digest_ha1(algorithm, user, realm, password), method=method, uri=target,
        nonce=nonce.encode("latin-1"), nc=ncvalue.encode(), cnonce=cnonce.encode(),
        qop=b"auth" if offered is not None else None)
    fields: list[tuple[str, str, bool]] = []
    if params.get("userhash", "").lower() == "true":
        fields += [("username", userhash(algorithm, user, realm), True),
                   ("userhash", "true", False)]
    elif user.isascii():
        fields.append(("username", user.decode("ascii"), True))
    else:
        fields.append(("username*", encode_ext_value(user), False))
    fields += [("realm", params["realm"], True), ("uri", target.decode("latin-1"), True),
               ("algorithm", algorithm, False), ("nonce", nonce, True)]
    if offered is not None:
        fields += [("nc", ncvalue, False), ("cnonce", cnonce, True), ("qop", "auth", False)]
    fields.append(("response", response, True))
    if "opaque" in params:
        fields.append(("opaque", params["opaque"], True))
    return format_auth("Digest", fields)


def _usable(challenge: Challenge) -> int:
    """How much we like ``challenge`` (0: we cannot answer it)."""
    if challenge.scheme == "basic":
        return 1 if "realm" in challenge.params else 0
    if challenge.scheme != "digest":
        return 0
    params = challenge.params
    if "realm" not in params or "nonce" not in params:
        return 0
    if "qop" in params and "auth" not in [q.strip() for q in params["qop"].split(",")]:
        return 0  # auth-int only: would need the body's hash
    base = params.get("algorithm", "MD5").upper().removesuffix("-SESS")
    return _RANK.get(base, 0) if base in ALGORITHMS else 0


class _Discard(Protocol):
    """Reads and drops a 401's body, so that its connection can be reused."""

    def __init__(self, done: Deferred[None], limit: int) -> None:
        self._done = done
        self._left = limit

    def dataReceived(self, data: bytes) -> None:
        self._left -= len(data)
        transport: Any = self.transport  # the body transport: it can stop producing
        if self._left < 0 and transport is not None:
            # A huge error page is not worth reading: drop the connection.
            transport.stopProducing()

    def connectionLost(self, reason: Failure | None = None) -> None:
        if not self._done.called:
            self._done.callback(None)


class _Collect:
    """A consumer that buffers what a body producer writes."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.parts.append(data)

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        """Nothing to do: everything is kept in memory."""

    def unregisterProducer(self) -> None:
        """See :meth:`registerProducer`."""


class _Replay:
    """A body producer for bytes buffered from the caller's producer."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.length = len(data)

    def startProducing(self, consumer: Any) -> Deferred[None]:
        consumer.write(self.data)
        return succeed(None)

    def pauseProducing(self) -> None:
        """Nothing to pause: the body is written at once."""

    def resumeProducing(self) -> None:
        """See :meth:`pauseProducing`."""

    def stopProducing(self) -> None:
        """See :meth:`pauseProducing`."""


class AuthAgent:
    """An agent wrapper that answers ``401`` challenges with registered passwords.

    Args:
        agent: Anything with ``request(method, uri, headers, bodyProducer)``.
        credentials: A :class:`PasswordManager`.
        bufferLimit: Largest request body (known length) buffered for a retry.

    Example:
        >>> class Fake:
        ...     def request(self, method, uri, headers=None, bodyProducer=None): ...
        >>> agent = AuthAgent(Fake(), PasswordManager())
    """

    def __init__(self, agent: Any, credentials: PasswordManager,
                 bufferLimit: int = 1 << 20) -> None:
        self._agent = agent
        self.credentials = credentials
        self._bufferLimit = bufferLimit
        self._spaces: dict[tuple[str, str, int], list[_Space]] = {}

    def request(self, method: bytes, uri: bytes, headers: Headers | None = None,
                bodyProducer: Any = None) -> Deferred[Any]:
        """Send the request; on a ``401`` retry once with credentials. Fires with the Response."""
        if headers is not None and headers.hasHeader(b"authorization"):
            return maybeDeferred(self._agent.request, method, uri, headers, bodyProducer)
        return ensureDeferred(self._request(method, uri, headers, bodyProducer))

    async def _request(self, method: bytes, uri: bytes, headers: Headers | None,
                       body: Any) -> Any:
        parts = urlsplit(uri.decode("latin-1"))
        scheme = parts.scheme.lower()
        origin = (scheme, (parts.hostname or "").lower(),
                  parts.port or _DEFAULT_PORTS.get(scheme, 0))
        path = parts.path or "/"
        target = (path + ("?" + parts.query if parts.query else "")).encode("latin-1")
        first, again = await self._bodies(body)

        space = next((s for s in self._spaces.get(origin, []) if s.covers(path)), None)
        auth = space.authorization(method, target) if space is not None else None
        response = await self._agent.request(method, uri, _with(headers, auth), first)
        if response.code != 401:
            if space is not None:
                self._nextNonce(space, response)
            return response
        if space is not None:
            self._spaces[origin].remove(space)
        if again is None:
            return response
        found = self._choose(response, uri)
        if found is None:
            return response
        challenge, user, password = found
        await self._discard(response)
        space = _Space(challenge, path, user, password)
        response = await self._agent.request(
            method, uri, _with(headers, space.authorization(method, target)), again())
        if response.code != 401:
            self._spaces.setdefault(origin, []).insert(0, space)
            self._nextNonce(space, response)
        return response

    async def _bodies(self, body: Any) -> tuple[Any, Any]:
        """The producer to send first, and a maker of one for the retry (None: can't)."""
        if body is None:
            return None, lambda: None
        if callable(getattr(body, "replay", None)):
            return body, body.replay
        length = getattr(body, "length", None)
        if not isinstance(length, int) or length > self._bufferLimit:
            return body, None
        sink = _Collect()
        await maybeDeferred(body.startProducing, sink)
        data = b"".join(sink.parts)
        return _Replay(data), lambda: _Replay(data)

    def _choose(self, response: Any, uri: bytes) -> tuple[Challenge, bytes, bytes] | None:
        """The best challenge we hold a password for, with that user and password."""
        best: tuple[int, Challenge, bytes, bytes] | None = None
        for value in response.headers.getRawHeaders(b"www-authenticate", []):
            try:
                found = parse_challenges(value)
            except AuthHeaderError:
                continue  # one bad header must not hide the good ones
            for challenge in found:
                rank = _usable(challenge)
                if not rank or (best is not None and rank <= best[0]):
                    continue
                creds = self.credentials.find_user_password(
                    challenge.params["realm"], uri.decode("latin-1"))
                if creds is not None:
                    best = (rank, challenge, creds[0], creds[1])
        return None if best is None else best[1:]

    @staticmethod
    def _nextNonce(space: _Space, response: Any) -> None:
        """Follow ``Authentication-Info: nextnonce=...`` (RFC 7616 §3.5)."""
        if space.challenge.scheme != "digest":
            return
        for value in response.headers.getRawHeaders(b"authentication-info", []):
            try:
                (info,) = parse_challenges(b"Info " + value)
            except (AuthHeaderError, ValueError):
                continue
            if "nextnonce" in info.params:
                space.challenge.params["nonce"] = info.params["nextnonce"]
                space.nc = 0

    def _discard(self, response: Any) -> Deferred[None]:
        done: Deferred[None] = Deferred()
        try:
            response.deliverBody(_Discard(done, 1 << 20))
        except RuntimeError:
            return succeed(None)  # the caller's wrapped agent already read it
        return done


def _with(headers: Headers | None, authorization: bytes | None) -> Headers | None:
    """A copy of ``headers`` with ``Authorization`` set (the caller's is not changed)."""
    if authorization is None:
        return headers
    out = Headers(list(_pairs(headers)))
    out.setRawHeaders(b"Authorization", [authorization])
    return out


def _pairs(headers: Headers | None) -> Iterable[tuple[bytes, bytes]]:
    if headers is None:
        return
    for name, values in headers.getAllRawHeaders():
        for value in values:
            yield name, value
