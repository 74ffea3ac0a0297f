"""HTTP authentication: Basic (RFC 7617) and Digest (RFC 7616), server and client.

Server: wrap any resource (or subtree) in an :class:`AuthWrapper`. Requests
without valid credentials get ``401`` with one ``WWW-Authenticate`` challenge
per offered scheme; the others are rendered by the wrapped tree, with
``request.getUser()`` giving the authenticated user name and
``request.avatarId`` what the checker returned::

    from protocols.http import Resource, Site
    from protocols.http.auth import AuthWrapper, InMemoryUsernamePasswordDatabase

    users = InMemoryUsernamePasswordDatabase({"alice": "wonderland"})
    site = Site(AuthWrapper(root, users, realm="staff"))   # Digest + Basic

A checker is either an object with ``requestAvatarId(credentials)`` (Twisted's
``ICredentialsChecker``: return the avatar id, or raise / fail with
:class:`UnauthorizedLogin`; a Deferred or coroutine is waited for), or a plain
callable ``check(username: bytes, password: bytes) -> bool`` (or an awaitable
of bool), which can only serve Basic: a Digest check needs the password or its
hash on the server side. Credentials reach ``requestAvatarId`` as
:class:`UsernamePassword` (Basic) or :class:`DigestedCredentials` (Digest);
both have ``checkPassword(password)``, and the Digest ones also
``checkHash(ha1)`` for servers that store ``H(user:realm:password)`` only
(:class:`InMemoryDigestHashDatabase`).

Client: :class:`AuthAgent` (in :mod:`protocols.http._auth_client`, exported
here) wraps an ``Agent`` and answers ``401`` challenges with passwords from a
:class:`PasswordManager`.

Digest algorithms offered default to ``("SHA-256", "MD5")``, one challenge
each, most preferred first as RFC 7616 §3.7 asks. Python's ``urllib``
``HTTPDigestAuthHandler`` only reads the *first* challenge and knows only MD5:
pass ``digestAlgorithms=("MD5",)`` (or ``("MD5", "SHA-256")``) to serve it.

Limitations: credentials are checked when the request renders, i.e. after
its body was read; the wrapped subtree is traversed at that point too, so
head-time attributes of inner resources (``streamRequestBody``,
``maxBodySize``) are not seen by the server. Digest ``qop=auth-int`` and
``userhash`` are not offered by the server.
"""

from __future__ import annotations

import hmac
import inspect
import logging
import re
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol, cast, runtime_checkable

from deferred import Deferred, Failure, ensureDeferred, maybeDeferred

from ._auth_client import AuthAgent, PasswordManager
from ._digest import (
    AuthHeaderError,
    Challenge,
    NonceManager,
    NonceStatus,
    decode_basic,
    decode_ext_value,
    digest_ha1,
    digest_response,
    format_auth,
    parse_credentials,
)
from .resource import NOT_DONE_YET, ErrorPage, IRequest, IResource, RenderResult, Resource
from .resource import getChildForRequest as _traverse

__all__ = [
    "AuthAgent",
    "AuthWrapper",
    "BasicCredentialFactory",
    "DigestCredentialFactory",
    "DigestedCredentials",
    "ICredentialsChecker",
    "InMemoryDigestHashDatabase",
    "InMemoryUsernamePasswordDatabase",
    "LoginFailed",
    "MalformedCredentials",
    "PasswordManager",
    "UnauthorizedLogin",
    "UsernamePassword",
]

log = logging.getLogger("protocols.http.auth")


# -- errors and credentials ------------------------------------------------------------


class LoginFailed(Exception):
    """Authentication did not succeed (base class, as in Twisted's ``cred``)."""


class UnauthorizedLogin(LoginFailed):
    """The credentials are not valid: answered with ``401`` and fresh challenges."""


class MalformedCredentials(LoginFailed):
    """The ``Authorization`` header breaks the scheme's syntax: answered with ``400``."""


def _bytes(value: str | bytes) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else value


class UsernamePassword:
    """Basic credentials: a user name and the password the client sent.

    Example:
        >>> UsernamePassword(b"alice", b"pw").checkPassword("pw")
        True
    """

    def __init__(self, username: bytes, password: bytes) -> None:
        self.username = username
        self.password = password

    def checkPassword(self, password: str | bytes) -> bool:
        """Whether the sent password equals ``password`` (constant time)."""
        return hmac.compare_digest(self.password, _bytes(password))


class DigestedCredentials:
    """Digest credentials: what the client proved, checkable against a password or HA1.

    Attributes:
        username: The user name (UTF-8 bytes when sent as ``username*``).
        method: The request method, part of the hashed data.
        realm: The realm the client answered.
        algorithm: The algorithm the client used, e.g. ``"SHA-256"``.
        fields: Every parameter the client sent, by lower-cased name.
        nonceStatus: What the server's nonce manager said about the nonce.
    """

    def __init__(self, username: bytes, method: bytes, realm: bytes, algorithm: str,
                 fields: Mapping[str, str], nonceStatus: NonceStatus = NonceStatus.VALID
                 ) -> None:
        self.username = username
        self.method = method
        self.realm = realm
        self.algorithm = algorithm
        self.fields = dict(fields)
        self.nonceStatus = nonceStatus

    def checkPassword(self, password: str | bytes) -> bool:
        """Whether the client's response was computed with ``password``."""
        ha1 = digest_ha1(self.algorithm, self.username, self.realm, _bytes(password))
        return self.checkHash(ha1)

    def checkHash(self, digestHash: str | bytes) -> bool:
        """Whether the client's response matches ``digestHash`` = ``H(user:realm:password)``.

        Example:
            >>> from protocols.http._digest import digest_ha1
            >>> creds = DigestedCredentials(b"u", b"GET", b"r", "MD5", {"response": "x"})
            >>> creds.checkHash(digest_ha1("MD5", b"u", b"r", b"pw"))
            False
        """
        ha1 = digestHash.decode("ascii") if isinstance(digestHash, bytes) else digestHash
        f = self.fields
        qop = f.get("qop")
        expected = digest_response(
            self.algorithm, ha1.lower(), method=self.method,
            uri=f.get("uri", "").encode("latin-1"), nonce=f.get("nonce", "").encode("latin-1"),
            nc=f.get("nc", "").encode("latin-1"), cnonce=f.get("cnonce", "").encode("latin-1"),
            qop=qop.encode("latin-1") if qop is not None else None)
        # Bytes, not str: compare_digest refuses non-ASCII str, and the
        # client's value is untrusted text.
        return hmac.compare_digest(expected.encode("ascii"),
                                   f.get("response", "").lower().encode("latin-1"))


# -- checkers ---------------------------------------------------------------------------


@runtime_checkable
class ICredentialsChecker(Protocol):
    """Twisted's checker contract: credentials in, avatar id (or a Deferred of it) out.

    Fail with :class:`UnauthorizedLogin` (raise it, or fail the Deferred) when
    the credentials are wrong. Any other exception is a bug: it is logged and
    the client gets a 500.
    """

    def requestAvatarId(self, credentials: Any) -> Any:
        """The avatar id for ``credentials``, or a Deferred/awaitable of it."""


class InMemoryUsernamePasswordDatabase:
    """Users and plain-text passwords in a dict; serves both Basic and Digest.

    The avatar id is the user name (bytes). ``str`` names and passwords are
    stored UTF-8 encoded.

    Example:
        >>> db = InMemoryUsernamePasswordDatabase({"alice": "pw"})
        >>> db.requestAvatarId(UsernamePassword(b"alice", b"pw"))
        b'alice'
    """

    credentialInterfaces = (UsernamePassword, DigestedCredentials)

    def __init__(self, users: Mapping[str | bytes, str | bytes] | None = None) -> None:
        self.users: dict[bytes, bytes] = {}
        for username, password in (users or {}).items():
            self.addUser(username, password)

    def addUser(self, username: str | bytes, password: str | bytes) -> None:
        """Add (or replace) a user."""
        self.users[_bytes(username)] = _bytes(password)

    def requestAvatarId(self, credentials: UsernamePassword | DigestedCredentials) -> bytes:
        """The user name if the credentials match, else raise :class:`UnauthorizedLogin`."""
        password = self.users.get(credentials.username)
        if password is not None and credentials.checkPassword(password):
            return credentials.username
        raise UnauthorizedLogin("bad user name or password")


class InMemoryDigestHashDatabase:
    """Digest-only users stored as ``H(user:realm:password)`` (like htdigest), no passwords.

    Args:
        realm: The realm the hashes were computed for.

    Example:
        >>> db = InMemoryDigestHashDatabase("staff")
        >>> db.addUser("alice", "pw")           # stores SHA-256 and MD5 hashes only
        >>> sorted(db.hashes[b"alice"])
        ['MD5', 'SHA-256']
    """

    credentialInterfaces = (DigestedCredentials,)

    def __init__(self, realm: str | bytes) -> None:
        self.realm = _bytes(realm)
        self.hashes: dict[bytes, dict[str, str]] = {}

    def addHash(self, username: str | bytes, algorithm: str, ha1: str) -> None:
        """Store a precomputed HA1 for ``algorithm`` (``"MD5"``, ``"SHA-256"``...)."""
        self.hashes.setdefault(_bytes(username), {})[algorithm.upper()] = ha1.lower()

    def addUser(self, username: str | bytes, password: str | bytes,
                algorithms: Iterable[str] = ("SHA-256", "MD5")) -> None:
        """Hash ``password`` for each algorithm and store only the hashes."""
        for algorithm in algorithms:
            self.addHash(username, algorithm,
                         digest_ha1(algorithm, _bytes(username), self.realm, _bytes(password)))

    def requestAvatarId(self, credentials: Any) -> bytes:
        """The user name if the Digest response matches the stored hash."""
        if isinstance(credentials, DigestedCredentials) and credentials.realm == self.realm:
            base = credentials.algorithm.upper().removesuffix("-SESS")
            ha1 = self.hashes.get(credentials.username, {}).get(base)
            if ha1 is not None and credentials.checkHash(ha1):
                return credentials.username
        raise UnauthorizedLogin("bad user name or password")


class _CallableChecker:
    """Adapts ``check(username, password) -> bool`` (or awaitable) to a checker."""

    credentialInterfaces = (UsernamePassword,)

    def __init__(self, check: Callable[[bytes, bytes], Any]) -> None:
        self._check = check

    def requestAvatarId(self, credentials: Any) -> Deferred[bytes]:
        if not isinstance(credentials, UsernamePassword):
            raise UnauthorizedLogin("this checker only knows Basic credentials")
        username = credentials.username

        def decide(ok: object) -> bytes:
            if ok is True:
                return username
            raise UnauthorizedLogin("bad user name or password")

        def call() -> Any:
            result = self._check(username, credentials.password)
            if isinstance(result, Deferred) or not inspect.isawaitable(result):
                return result
            async def wait() -> Any:  # any awaitable, e.g. an asyncio future
                return await result

            return ensureDeferred(wait())

        d: Deferred[Any] = maybeDeferred(call)
        return d.addCallback(decide)


def _as_checker(checker: Any) -> Any:
    if hasattr(checker, "requestAvatarId"):
        return checker
    if callable(checker):
        return _CallableChecker(checker)
    raise TypeError(f"not a checker (no requestAvatarId) nor a callable: {checker!r}")


# -- credential factories: one per offered challenge -------------------------------------


class BasicCredentialFactory:
    """Issues ``Basic`` challenges and decodes Basic credentials (RFC 7617).

    Example:
        >>> BasicCredentialFactory("staff").challenge()
        b'Basic realm="staff", charset="UTF-8"'
    """

    scheme = "basic"

    def __init__(self, realm: str | bytes) -> None:
        self.realm = _bytes(realm)

    def challenge(self, stale: bool = False) -> bytes:
        """The ``WWW-Authenticate`` value (``stale`` means nothing to Basic)."""
        return format_auth("Basic", [("realm", self.realm.decode("latin-1"), True),
                                     ("charset", "UTF-8", True)])

    def accepts(self, parsed: Challenge) -> bool:
        """Whether ``parsed`` credentials are meant for this factory."""
        return parsed.scheme == "basic"

    def decode(self, parsed: Challenge, request: Any) -> UsernamePassword:
        """The :class:`UsernamePassword` sent.

        Raises:
            MalformedCredentials: Bad base64 or no colon.
        """
        if parsed.token68 is None:
            raise MalformedCredentials("Basic credentials must be a token68")
        try:
            username, password = decode_basic("Basic " + parsed.token68)
        except AuthHeaderError as exc:
            raise MalformedCredentials(str(exc)) from None
        return UsernamePassword(username, password)


_NC_RE = re.compile(r"[0-9a-fA-F]{8}")


class DigestCredentialFactory:
    """Issues ``Digest`` challenges for one algorithm and decodes Digest credentials.

    Several factories (one per algorithm) should share a :class:`NonceManager`
    and ``opaque``, as :class:`AuthWrapper` arranges.

    Args:
        algorithm: ``"SHA-256"``, ``"MD5"``, ``"SHA-512-256"`` or a ``-sess`` variant.
        realm: The protection space's name.
        nonces: Where nonces come from and are checked.
        opaque: Sent in the challenge; a client returning another value is refused.
    """

    scheme = "digest"

    def __init__(self, algorithm: str, realm: str | bytes,
                 nonces: NonceManager | None = None, opaque: str = "") -> None:
        digest_ha1(algorithm, b"", b"", b"")  # raises ValueError when unsupported
        self.algorithm = algorithm
        self.realm = _bytes(realm)
        self.nonces = nonces if nonces is not None else NonceManager()
        self.opaque = opaque

    def challenge(self, stale: bool = False) -> bytes:
        """The ``WWW-Authenticate`` value, with a fresh nonce."""
        params = [("realm", self.realm.decode("latin-1"), True), ("qop", "auth", True),
                  ("algorithm", self.algorithm, False), ("nonce", self.nonces.issue(), True)]
        if self.opaque:
            params.append(("opaque", self.opaque, True))
        params.append(("charset", "UTF-8", False))
        if stale:
            params.append(("stale", "true", False))
        return format_auth("Digest", params)

    def accepts(self, parsed: Challenge) -> bool:
        """Whether ``parsed`` is Digest credentials for this factory's algorithm."""
        algorithm = parsed.params.get("algorithm", "MD5")
        return parsed.scheme == "digest" and algorithm.upper() == self.algorithm.upper()

    def decode(self, parsed: Challenge, request: Any) -> DigestedCredentials:
        """Check the parameters' syntax and context; the checker checks the response.

        Raises:
            MalformedCredentials: Missing or malformed parameters, or a ``uri``
                that is not this request's target (RFC 7616 §3.4.6 asks for 400).
            UnauthorizedLogin: Another realm or opaque, a nonce we never issued.
        """
        fields = parsed.params
        if parsed.token68 is not None:
            raise MalformedCredentials("Digest credentials must be auth-params")
        for name in ("realm", "nonce", "uri", "response", "qop", "nc", "cnonce"):
            if name not in fields:
                raise MalformedCredentials(f"Digest credentials without {name}")
        if fields["qop"] != "auth":
            raise MalformedCredentials("only qop=auth is offered")
        if not _NC_RE.fullmatch(fields["nc"]):
            raise MalformedCredentials("nc must be 8 hex digits")
        username = self._username(fields)
        if not _same_target(fields["uri"].encode("latin-1"), request.uri):
            raise MalformedCredentials("Digest uri is not the request target")
        if fields["realm"].encode("latin-1") != self.realm:
            raise UnauthorizedLogin("credentials for another realm")
        if self.opaque and fields.get("opaque", self.opaque) != self.opaque:
            raise UnauthorizedLogin("opaque does not match")
        status = self.nonces.check(fields["nonce"])
        if status is NonceStatus.INVALID:
            raise UnauthorizedLogin("unknown nonce")
        return DigestedCredentials(username, request.method, self.realm, self.algorithm,
                                   fields, status)

    @staticmethod
    def _username(fields: Mapping[str, str]) -> bytes:
        if fields.get("userhash", "false").lower() == "true":
            raise UnauthorizedLogin("userhash was not offered")
        if "username*" in fields:
            if "username" in fields:
                raise MalformedCredentials("both username and username*")
            try:
                return decode_ext_value(fields["username*"])
            except AuthHeaderError as exc:
                raise MalformedCredentials(str(exc)) from None
        if "username" not in fields:
            raise MalformedCredentials("Digest credentials without username")
        return fields["username"].encode("latin-1")

    def use(self, credentials: DigestedCredentials) -> bool:
        """After the checker accepted ``credentials``: record the nonce-count.

        False when the nonce went stale or this count was already used (a
        replay); the client is then challenged again with ``stale=true``.
        """
        return self.nonces.use(credentials.fields["nonce"], int(credentials.fields["nc"], 16))


def _same_target(digest_uri: bytes, target: bytes) -> bool:
    if digest_uri == target:
        return True
    # An absolute-form target (proxies) may be answered with its path, or
    # the reverse: compare path and query only in that case.
    if b"://" in target and not target.startswith(b"/"):
        rest = target.split(b"://", 1)[1]
        slash = rest.find(b"/")
        return digest_uri == (rest[slash:] if slash >= 0 else b"/")
    return False


# -- the wrapper resource --------------------------------------------------------------


CredentialFactory = BasicCredentialFactory | DigestCredentialFactory


class AuthWrapper(Resource):
    """Guard a resource and its subtree with HTTP authentication.

    Args:
        resource: The resource (and subtree) to protect.
        checker: An :class:`ICredentialsChecker` or a ``check(user, password)`` callable.
        realm: The protection space's name shown to users.
        schemes: Offered schemes, in the order challenges are sent.
        digestAlgorithms: One Digest challenge per algorithm, in this order.
        nonceLifetime: Seconds a Digest nonce is accepted (then ``stale=true``).
        clock: Anything with ``seconds()`` (the reactor, a test ``Clock``);
            by default ``time.time``.
        credentialFactories: Replaces ``schemes``/``digestAlgorithms`` with
            explicit factories, for full control.

    Raises:
        ValueError: Digest offered with a checker that cannot check it (a
            plain callable, or one whose ``credentialInterfaces`` lack
            :class:`DigestedCredentials`), or an unknown scheme or algorithm.

    Example:
        >>> users = InMemoryUsernamePasswordDatabase({"alice": "pw"})
        >>> guarded = AuthWrapper(Resource(), users, realm="staff", schemes=("basic",))
        >>> [f.scheme for f in guarded.credentialFactories]
        ['basic']
    """

    isLeaf = True  # traversal of the subtree happens after authentication

    def __init__(self, resource: IResource, checker: Any, realm: str | bytes = "torsion",
                 schemes: Iterable[str] = ("digest", "basic"), *,
                 digestAlgorithms: Iterable[str] = ("SHA-256", "MD5"),
                 nonceLifetime: float = 300.0, clock: Any = None,
                 credentialFactories: Iterable[CredentialFactory] | None = None) -> None:
        super().__init__()
        self.resource = resource
        self.checker = _as_checker(checker)
        if credentialFactories is None:
            credentialFactories = self._factories(realm, schemes, digestAlgorithms,
                                                  nonceLifetime, clock)
        self.credentialFactories = list(credentialFactories)
        accepted = getattr(self.checker, "credentialInterfaces", None)
        if accepted is not None and DigestedCredentials not in accepted and any(
                isinstance(f, DigestCredentialFactory) for f in self.credentialFactories):
            raise ValueError("Digest needs a checker that handles DigestedCredentials "
                             "(a password or HA1 database), not a check(user, password)")

    @staticmethod
    def _factories(realm: str | bytes, schemes: Iterable[str], algorithms: Iterable[str],
                   lifetime: float, clock: Any) -> list[CredentialFactory]:
        seconds = clock.seconds if clock is not None else time.time
        nonces = NonceManager(lifetime=lifetime, seconds=seconds)
        opaque = secrets.token_urlsafe(24)
        out: list[CredentialFactory] = []
        for scheme in schemes:
            if scheme.lower() == "basic":
                out.append(BasicCredentialFactory(realm))
            elif scheme.lower() == "digest":
                out.extend(DigestCredentialFactory(a, realm, nonces, opaque) for a in algorithms)
            else:
                raise ValueError(f"unknown authentication scheme {scheme!r}")
        return out

    def render(self, request: IRequest) -> RenderResult:
        """Authenticate, then traverse the wrapped subtree and render what it finds."""
        req = cast(Any, request)
        header = req.getHeader(b"authorization")
        if header is None:
            return self._unauthorized(req)
        try:
            parsed = parse_credentials(header)
        except AuthHeaderError:
            return self._badRequest(req)
        factory = next((f for f in self.credentialFactories if f.accepts(parsed)), None)
        if factory is None:
            return self._unauthorized(req)
        try:
            credentials = factory.decode(parsed, req)
        except MalformedCredentials:
            return self._badRequest(req)
        except UnauthorizedLogin:
            return self._unauthorized(req)
        d: Deferred[Any] = maybeDeferred(self._requestAvatarId, credentials)
        d.addCallbacks(self._loggedIn, self._loginFailed,
                       callbackArgs=(req, factory, credentials), errbackArgs=(req,))
        return d

    def _requestAvatarId(self, credentials: Any) -> Any:
        result = self.checker.requestAvatarId(credentials)
        return ensureDeferred(result) if inspect.iscoroutine(result) else result

    def _loggedIn(self, avatarId: Any, request: Any, factory: CredentialFactory,
                  credentials: Any) -> Any:
        if request.finished or request.channel is None:
            return NOT_DONE_YET  # the client left while the checker was thinking
        if isinstance(factory, DigestCredentialFactory) and not factory.use(credentials):
            return self._unauthorized(request, stale=True)
        _set_user(request, credentials, avatarId)
        resource = _traverse(self.resource, request)
        result = resource.render(request)
        return ensureDeferred(result) if inspect.iscoroutine(result) else result

    def _loginFailed(self, failure: Failure, request: Any) -> Any:
        failure.trap(LoginFailed)  # anything else is a bug: logged, then a 500
        if request.finished or request.channel is None:
            return NOT_DONE_YET
        return self._unauthorized(request)

    def _unauthorized(self, request: Any, stale: bool = False) -> bytes:
        for factory in self.credentialFactories:
            request.responseHeaders.addRawHeader(b"WWW-Authenticate", factory.challenge(stale))
        page = ErrorPage(401, "Unauthorized", "This resource requires authentication.")
        return page.render(request)

    def _badRequest(self, request: Any) -> bytes:
        page = ErrorPage(400, "Bad Request", "The Authorization header is malformed.")
        return page.render(request)


def _set_user(request: Any, credentials: Any, avatarId: Any) -> None:
    """Make ``request.getUser()`` (and ``getPassword()``) answer for these credentials."""
    username: bytes = credentials.username
    password: bytes = getattr(credentials, "password", b"")
    request.avatarId = avatarId
    # Request.getUser()/getPassword() report these once set (any scheme).
    request.user = username
    request.password = password
