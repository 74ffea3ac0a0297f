"""HTTP authentication: the sans-I/O Digest/Basic parts, the AuthWrapper server
resource against real clients (urllib, curl, raw sockets), and the AuthAgent client.

Socket tests run on every reactor backend; blocking clients run in a worker
thread (``reactor.deferToThread``) so that the reactor keeps serving.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import http.server
import io
import logging
import socket
import subprocess
import threading
import urllib.error
import urllib.request
from typing import Any

import pytest

from deferred import Deferred, Failure, succeed
from protocols.http._digest import (
    AuthHeaderError,
    NonceManager,
    NonceStatus,
    decode_basic,
    decode_ext_value,
    digest_ha1,
    digest_response,
    encode_basic,
    encode_ext_value,
    format_auth,
    parse_challenges,
    parse_credentials,
    userhash,
)
from protocols.http.auth import (
    AuthAgent,
    AuthWrapper,
    DigestedCredentials,
    InMemoryDigestHashDatabase,
    InMemoryUsernamePasswordDatabase,
    PasswordManager,
    UnauthorizedLogin,
    UsernamePassword,
)
from protocols.http.client import (
    UNKNOWN_LENGTH,
    Agent,
    FileBodyProducer,
    HTTPConnectionPool,
    readBody,
)
from protocols.http.headers import Headers
from protocols.http.resource import Resource
from protocols.http.server import Site
from reactor.task import deferLater
from reactor.testing import Clock, StringTransport
from tests.tools import require_tool

# -- RFC 7616 §3.9 worked examples ---------------------------------------------------------

RFC_REALM = b"http-auth@example.org"
RFC_NONCE = b"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
RFC_CNONCE = b"f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
RFC_OPAQUE = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"


@pytest.mark.parametrize(("algorithm", "expected"), [
    ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
    ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
])
def test_rfc7616_example_responses(algorithm: str, expected: str) -> None:
    ha1 = digest_ha1(algorithm, b"Mufasa", RFC_REALM, b"Circle of Life")
    got = digest_response(algorithm, ha1, method=b"GET", uri=b"/dir/index.html",
                          nonce=RFC_NONCE, nc=b"00000001", cnonce=RFC_CNONCE, qop=b"auth")
    assert got == expected


def test_rfc7616_example_checked_through_credentials() -> None:
    header = (
        'Digest username="Mufasa", realm="http-auth@example.org", uri="/dir/index.html", '
        f'algorithm=SHA-256, nonce="{RFC_NONCE.decode()}", nc=00000001, '
        f'cnonce="{RFC_CNONCE.decode()}", qop=auth, '
        'response="753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1", '
        f'opaque="{RFC_OPAQUE}"')
    parsed = parse_credentials(header)
    assert parsed.scheme == "digest"
    assert parsed.params["nc"] == "00000001" and parsed.params["opaque"] == RFC_OPAQUE
    creds = DigestedCredentials(b"Mufasa", b"GET", RFC_REALM, "SHA-256", parsed.params)
    assert creds.checkPassword("Circle of Life")
    assert not creds.checkPassword("Circle of Lies")
    assert creds.checkHash(digest_ha1("SHA-256", b"Mufasa", RFC_REALM, b"Circle of Life"))


def test_rfc7616_utf8_user_name_forms() -> None:
    # §3.9.2's user name, as username* (RFC 8187) and as a userhash. (That
    # section's published hash values are disputed by RFC erratum 4897, so
    # the hash is checked against hashlib directly instead.)
    name = "Jäsøn Doe".encode()
    assert encode_ext_value(name) == "UTF-8''J%C3%A4s%C3%B8n%20Doe"
    assert decode_ext_value("UTF-8''J%C3%A4s%C3%B8n%20Doe") == name
    assert decode_ext_value("utf-8'en'J%c3%a4s") == "Jäs".encode()
    assert userhash("SHA-512-256", name, b"api@example.org") == hashlib.new(
        "sha512_256", name + b":api@example.org").hexdigest()


def test_sess_and_rfc2069_forms() -> None:
    md5 = lambda data: hashlib.md5(data).hexdigest()  # noqa: E731
    ha1 = md5(b"u:r:p")
    ha2 = md5(b"GET:/x")
    session = md5(f"{ha1}:n:c".encode())
    assert digest_response("MD5-sess", ha1, method=b"GET", uri=b"/x", nonce=b"n",
                           nc=b"00000001", cnonce=b"c") == md5(
        f"{session}:n:00000001:c:auth:{ha2}".encode())
    assert digest_response("MD5", ha1, method=b"GET", uri=b"/x", nonce=b"n",
                           qop=None) == md5(f"{ha1}:n:{ha2}".encode())
    with pytest.raises(ValueError, match="unsupported Digest algorithm"):
        digest_ha1("SHA-1", b"u", b"r", b"p")
    with pytest.raises(ValueError, match="qop"):
        digest_response("MD5", ha1, method=b"GET", uri=b"/", nonce=b"n", qop=b"auth-int")


# -- header grammar ---------------------------------------------------------------------


def test_parse_several_challenges_in_one_value() -> None:
    found = parse_challenges(
        'Newauth realm="apps", type=1, title="Login to \\"apps\\"", Basic realm="simple",'
        ' Bearer abc/+==, Negotiate')
    assert [(c.scheme, c.params, c.token68) for c in found] == [
        ("newauth", {"realm": "apps", "type": "1", "title": 'Login to "apps"'}, None),
        ("basic", {"realm": "simple"}, None),
        ("bearer", {}, "abc/+=="),
        ("negotiate", {}, None),
    ]


def test_parse_tolerates_empty_list_elements_and_case() -> None:
    found = parse_challenges(b' , DIGEST Realm = "r" ,, Nonce=abc , ')
    assert [(c.scheme, c.params) for c in found] == [("digest", {"realm": "r", "nonce": "abc"})]


@pytest.mark.parametrize("value", [
    'Digest realm="x" nonce="y"',           # missing comma
    'Digest realm="x", realm="y"',          # repeated param
    'Digest realm="unterminated',
    'Digest realm="ctl\x01"',
    '"Digest" realm="x"',
    'Basic a b',
    'Digest =x',
    'Digest realm=x,, =y',
])
def test_parse_rejects_malformed(value: str) -> None:
    with pytest.raises(AuthHeaderError):
        parse_challenges(value)


def test_parse_credentials_wants_exactly_one() -> None:
    with pytest.raises(AuthHeaderError):
        parse_credentials("Basic YTpi, Basic YTpj")
    with pytest.raises(AuthHeaderError):
        parse_credentials("")


def test_format_round_trips_and_refuses_injection() -> None:
    value = format_auth("Digest", [("realm", 'we "quote" \\ here', True),
                                   ("algorithm", "SHA-256", False), ("stale", "true", False)])
    assert value == b'Digest realm="we \\"quote\\" \\\\ here", algorithm=SHA-256, stale=true'
    (challenge,) = parse_challenges(value)
    assert challenge.params == {"realm": 'we "quote" \\ here', "algorithm": "SHA-256",
                                "stale": "true"}
    with pytest.raises(ValueError):
        format_auth("Digest", [("realm", "a\r\nSet-Cookie: x", True)])
    with pytest.raises(ValueError):
        format_auth("Digest", [("algorithm", "needs quoting", False)])


def test_basic_encoding_rfc7617_example() -> None:
    assert encode_basic(b"Aladdin", b"open sesame") == b"Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
    assert decode_basic("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==") == (b"Aladdin", b"open sesame")
    assert decode_basic(encode_basic(b"u", b"p:w:d")) == (b"u", b"p:w:d")
    with pytest.raises(ValueError):
        encode_basic(b"a:b", b"p")
    for bad in ("Basic !!!!", "Basic " + base64.b64encode(b"nocolon").decode(), 'Basic realm="x"',
                "Digest abc"):
        with pytest.raises(AuthHeaderError):
            decode_basic(bad)


def test_ext_value_rejects_other_charsets_and_bad_escapes() -> None:
    for bad in ("ISO-8859-1''abc", "UTF-8''%zz", "UTF-8''%ff", "noquotes"):
        with pytest.raises(AuthHeaderError):
            decode_ext_value(bad)


# -- nonces ------------------------------------------------------------------------------


def test_nonce_expires_and_forgeries_are_invalid() -> None:
    clock = Clock()
    nonces = NonceManager(lifetime=10, seconds=clock.seconds)
    nonce = nonces.issue()
    assert nonces.check(nonce) is NonceStatus.VALID
    other = NonceManager(lifetime=10, seconds=clock.seconds).issue()
    assert nonces.check(other) is NonceStatus.INVALID       # another secret
    assert nonces.check(nonce[:-2] + "AA") is NonceStatus.INVALID
    assert nonces.check("not base64 at all!") is NonceStatus.INVALID
    assert nonces.check("é") is NonceStatus.INVALID
    clock.advance(11)
    assert nonces.check(nonce) is NonceStatus.STALE
    assert not nonces.use(nonce, 1)


def test_nonce_count_replay_window() -> None:
    nonces = NonceManager(lifetime=10, seconds=Clock().seconds, window=4)
    nonce = nonces.issue()
    assert nonces.use(nonce, 1)
    assert not nonces.use(nonce, 1)            # replay
    assert nonces.use(nonce, 3)
    assert nonces.use(nonce, 2)                # late, but unseen and within the window
    assert not nonces.use(nonce, 2)
    assert nonces.use(nonce, 0xFFFFFFFF)       # a huge jump costs nothing
    assert not nonces.use(nonce, 3)            # now far below the window
    assert not nonces.use(nonce, 0)


def test_evicted_nonces_become_stale() -> None:
    clock = Clock()
    nonces = NonceManager(lifetime=100, seconds=clock.seconds, max_tracked=2)
    first = nonces.issue()
    assert nonces.use(first, 1)
    clock.advance(1)
    second, third = nonces.issue(), nonces.issue()
    assert nonces.use(second, 1)
    assert nonces.use(third, 1)                # evicts the state of ``first``
    assert nonces.check(first) is NonceStatus.STALE
    assert not nonces.use(first, 2)
    assert nonces.use(second, 2) and nonces.use(third, 2)


# -- checkers ----------------------------------------------------------------------------


def test_in_memory_databases() -> None:
    db = InMemoryUsernamePasswordDatabase({"alice": "pw", b"bob": b"x"})
    assert db.requestAvatarId(UsernamePassword(b"alice", b"pw")) == b"alice"
    with pytest.raises(UnauthorizedLogin):
        db.requestAvatarId(UsernamePassword(b"alice", b"wrong"))
    with pytest.raises(UnauthorizedLogin):
        db.requestAvatarId(UsernamePassword(b"carol", b""))
    hashes = InMemoryDigestHashDatabase("r")
    hashes.addUser("alice", "pw", algorithms=("MD5",))
    fields = {"uri": "/", "nonce": "n", "nc": "00000001", "cnonce": "c", "qop": "auth"}
    fields["response"] = digest_response(
        "MD5", digest_ha1("MD5", b"alice", b"r", b"pw"), method=b"GET", uri=b"/",
        nonce=b"n", nc=b"00000001", cnonce=b"c")
    good = DigestedCredentials(b"alice", b"GET", b"r", "MD5", fields)
    assert hashes.requestAvatarId(good) == b"alice"
    assert db.requestAvatarId(DigestedCredentials(b"alice", b"GET", b"r", "MD5", fields))
    with pytest.raises(UnauthorizedLogin):
        hashes.requestAvatarId(DigestedCredentials(b"alice", b"POST", b"r", "MD5", fields))
    with pytest.raises(UnauthorizedLogin):
        hashes.requestAvatarId(UsernamePassword(b"alice", b"pw"))


def test_digest_needs_a_checker_that_can_check_it() -> None:
    with pytest.raises(ValueError, match="Digest"):
        AuthWrapper(Resource(), lambda user, password: True)
    with pytest.raises(ValueError, match="scheme"):
        AuthWrapper(Resource(), InMemoryUsernamePasswordDatabase(), schemes=("ntlm",))
    with pytest.raises(TypeError):
        AuthWrapper(Resource(), object(), schemes=("basic",))
    AuthWrapper(Resource(), lambda user, password: True, schemes=("basic",))


# -- the server: resources and helpers --------------------------------------------------


class Whoami(Resource):
    """Leaf: says who is logged in and what is left of the path."""

    isLeaf = True

    def render_GET(self, request: Any) -> bytes:
        return b"user=" + request.getUser() + b" rest=" + b"/".join(request.postpath)

    def render_POST(self, request: Any) -> bytes:
        return b"user=" + request.getUser() + b" posted=" + request.content.read()


class AsyncLeaf(Resource):
    isLeaf = True

    def __init__(self, clock: Any) -> None:
        super().__init__()
        self.clock = clock

    async def render_GET(self, request: Any) -> bytes:
        await deferLater(self.clock, 0, lambda: None)
        return b"async " + request.getUser()


class Recording:
    """A checker that records what it was asked, then asks the real one."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.seen: list[Any] = []

    def requestAvatarId(self, credentials: Any) -> Any:
        self.seen.append(credentials)
        return self.inner.requestAvatarId(credentials)


def protected_tree(reactor: Any) -> Resource:
    tree = Resource()
    tree.putChild(b"", Whoami())
    tree.putChild(b"who", Whoami())
    tree.putChild(b"async", AsyncLeaf(reactor))
    sub = Resource()
    sub.putChild(b"deep", Whoami())
    tree.putChild(b"sub", sub)
    return tree


def serve(reactor: Any, checker: Any = None, **kwargs: Any) -> tuple[Any, int, Recording]:
    """Listen with ``/open`` public and ``/private/...`` behind an AuthWrapper."""
    recorder = Recording(checker or InMemoryUsernamePasswordDatabase(
        {"alice": "wonderland", "jäsøn": "sekrit"}))
    kwargs.setdefault("realm", "staff")
    root = Resource()
    root.putChild(b"open", Whoami())
    # A plain check(user, password) callable is given as is, not recorded.
    guard = recorder if hasattr(recorder.inner, "requestAvatarId") else recorder.inner
    root.putChild(b"private", AuthWrapper(protected_tree(reactor), guard, **kwargs))
    port = reactor.listenTCP(0, Site(root), interface="127.0.0.1")
    return port, port.getHost().port, recorder


def fetch(number: int, path: str, headers: dict[str, str] | None = None,
          method: str = "GET") -> tuple[int, list[tuple[str, str]], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", number, timeout=5)
    try:
        conn.request(method, path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.getheaders(), resp.read()
    finally:
        conn.close()


def challenges(headers: list[tuple[str, str]]) -> list[Any]:
    return [c for name, value in headers if name.lower() == "www-authenticate"
            for c in parse_challenges(value)]


def answer(challenge: Any, user: bytes, password: bytes, uri: str, nc: int = 1,
           method: bytes = b"GET", **override: str) -> str:
    """A Digest Authorization value for ``challenge`` (as a well-behaved client)."""
    p = challenge.params
    algorithm = p.get("algorithm", "MD5")
    ha1 = digest_ha1(algorithm, user, p["realm"].encode(), password)
    fields = {"username": user.decode("latin-1"), "realm": p["realm"], "nonce": p["nonce"],
              "uri": uri, "algorithm": algorithm, "qop": "auth", "nc": f"{nc:08x}",
              "cnonce": "0a4f113b", "opaque": p.get("opaque", "")}
    fields["response"] = digest_response(
        algorithm, ha1, method=method, uri=uri.encode(), nonce=p["nonce"].encode(),
        nc=fields["nc"].encode(), cnonce=b"0a4f113b")
    fields.update(override)
    unquoted = {"algorithm", "qop", "nc"}
    return format_auth("Digest", [(k, v, k not in unquoted)
                                  for k, v in fields.items()]).decode("latin-1")


# -- the server: stdlib clients ---------------------------------------------------------


async def test_urllib_basic_success_and_failure(reactor: Any) -> None:
    port, number, recorder = serve(reactor)
    base = f"http://127.0.0.1:{number}/private/"

    def client(password: str, path: str) -> tuple[int, bytes]:
        mgr = urllib.request.HTTPPasswordMgrWithDefaultRealm()
        mgr.add_password(None, base, "alice", password)
        opener = urllib.request.build_opener(urllib.request.HTTPBasicAuthHandler(mgr))
        try:
            with opener.open(base + path, timeout=5) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, exc.read()

    assert await reactor.deferToThread(client, "wonderland", "sub/deep/x") == (
        200, b"user=alice rest=x")
    assert isinstance(recorder.seen[-1], UsernamePassword)
    status, body = await reactor.deferToThread(client, "wrong", "who")
    assert status == 401 and b"Unauthorized" in body
    await port.stopListening()


async def test_urllib_digest_success_and_failure(reactor: Any) -> None:
    # urllib reads only the first challenge and knows only MD5: offer that first.
    port, number, recorder = serve(reactor, digestAlgorithms=("MD5", "SHA-256"))
    base = f"http://127.0.0.1:{number}/private/"

    def client(password: str) -> tuple[int, bytes]:
        mgr = urllib.request.HTTPPasswordMgrWithDefaultRealm()
        mgr.add_password("staff", base, "alice", password)
        opener = urllib.request.build_opener(urllib.request.HTTPDigestAuthHandler(mgr))
        try:
            with opener.open(base + "who/a?q=1", timeout=5) as resp:
                first = resp.read()
            with opener.open(base, timeout=5) as resp:  # challenged again: a new nonce
                return resp.status, first + b"|" + resp.read()
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, exc.read()

    assert await reactor.deferToThread(client, "wonderland") == (
        200, b"user=alice rest=a|user=alice rest=")
    digests = [c for c in recorder.seen if isinstance(c, DigestedCredentials)]
    assert [(c.algorithm, c.fields["nc"]) for c in digests] == [
        ("MD5", "00000001"), ("MD5", "00000001")]
    assert digests[0].fields["nonce"] != digests[1].fields["nonce"]
    status, _ = await reactor.deferToThread(client, "wrong")
    assert status == 401
    await port.stopListening()


async def test_challenges_offered_in_order_with_stale_flag_absent(reactor: Any) -> None:
    port, number, _ = serve(reactor)
    status, headers, body = await reactor.deferToThread(fetch, number, "/private/who")
    assert status == 401 and b"requires authentication" in body
    found = challenges(headers)
    assert [(c.scheme, c.params.get("algorithm")) for c in found] == [
        ("digest", "SHA-256"), ("digest", "MD5"), ("basic", None)]
    assert all(c.params["realm"] == "staff" and "stale" not in c.params for c in found)
    assert found[0].params["qop"] == "auth" and found[0].params["opaque"]
    assert found[0].params["nonce"] != found[1].params["nonce"]
    # The public part of the site needs nothing.
    assert (await reactor.deferToThread(fetch, number, "/open"))[0] == 200
    await port.stopListening()


# -- the server: curl ---------------------------------------------------------------------


def curl(number: int, path: str, *args: str) -> tuple[int, bytes, bytes]:
    exe = require_tool("curl")
    done = subprocess.run(
        [exe, "-sS", "-v", "-o", "-", "-w", "\n%{http_code}", *args,
         f"http://127.0.0.1:{number}{path}"],
        capture_output=True, timeout=20, check=False)
    body, _, code = done.stdout.rpartition(b"\n")
    return int(code), body, done.stderr


@pytest.mark.parametrize("mode", ["--digest", "--basic"])
async def test_curl_success_and_failure(reactor: Any, mode: str) -> None:
    require_tool("curl")
    port, number, recorder = serve(reactor)
    code, body, _ = await reactor.deferToThread(
        curl, number, "/private/sub/deep/z", mode, "-u", "alice:wonderland")
    assert (code, body) == (200, b"user=alice rest=z")
    if mode == "--digest":
        (creds,) = [c for c in recorder.seen if isinstance(c, DigestedCredentials)]
        assert creds.algorithm == "SHA-256"  # the first (preferred) challenge
    code, _, _ = await reactor.deferToThread(
        curl, number, "/private/who", mode, "-u", "alice:nope")
    assert code == 401
    await port.stopListening()


async def test_curl_digest_with_utf8_user(reactor: Any) -> None:
    require_tool("curl")
    port, number, _ = serve(reactor)
    code, body, _ = await reactor.deferToThread(
        curl, number, "/private/who", "--digest", "-u", "jäsøn:sekrit")
    assert (code, body) == (200, "user=jäsøn rest=".encode())
    await port.stopListening()


# -- the server: raw and hand-made headers ------------------------------------------------


BAD_AUTHORIZATION = [
    ("Basic", 400),
    ("Basic !!!", 400),
    ("Basic " + base64.b64encode(b"nocolon").decode(), 400),
    ('Basic realm="x"', 400),
    ("Bearer abcdef", 401),
    ('Digest username="alice"', 400),
    ('Digest username="alice", realm="staff", nonce="x", uri="/private/who", '
     'response="00", qop=auth, nc=1, cnonce="c", algorithm=SHA-256', 400),
    ('Digest username="alice", realm="staff", nonce="forged", uri="/private/who", '
     'response="00", qop=auth, nc=00000001, cnonce="c", algorithm=SHA-256', 401),
    ('Digest username="alice", realm="staff", nonce="x", uri="/private/who", '
     'response="00", qop=auth-int, nc=00000001, cnonce="c"', 400),
    ('Digest username="alice", realm="staff", nonce="x", uri="/private/who", '
     'response="00", qop=auth, nc=00000001, cnonce="c", algorithm=FOO', 401),
    ('Digest username*="ISO-8859-1\'\'x", realm="staff", nonce="x", uri="/private/who", '
     'response="00", qop=auth, nc=00000001, cnonce="c", algorithm=MD5', 400),
    ("Digest username=\"a\" realm=\"b\"", 400),
    ("Digest ,,,", 400),
    ("\x00\x01garbage", 400),
]


@pytest.mark.parametrize(("value", "expected"), BAD_AUTHORIZATION)
async def test_malformed_authorization_is_400_or_401_never_500(
        reactor: Any, value: str, expected: int) -> None:
    port, number, _ = serve(reactor)
    request = (b"GET /private/who HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
               b"Authorization: " + value.encode("latin-1") + b"\r\n\r\n")

    def raw() -> bytes:
        with socket.create_connection(("127.0.0.1", number), timeout=5) as sock:
            sock.sendall(request)
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
            return b"".join(chunks)

    data = await reactor.deferToThread(raw)
    assert data.startswith(b"HTTP/1.1 %d " % expected), data[:200]
    assert (b"WWW-Authenticate: Digest" in data) == (expected == 401)
    await port.stopListening()


async def test_digest_nonce_replay_is_refused_as_stale(reactor: Any) -> None:
    port, number, _ = serve(reactor)
    _, headers, _ = await reactor.deferToThread(fetch, number, "/private/who")
    sha256 = challenges(headers)[0]
    auth = answer(sha256, b"alice", b"wonderland", "/private/who")
    status, _, body = await reactor.deferToThread(
        fetch, number, "/private/who", {"Authorization": auth})
    assert (status, body) == (200, b"user=alice rest=")
    status, headers, _ = await reactor.deferToThread(
        fetch, number, "/private/who", {"Authorization": auth})
    assert status == 401
    assert [c.params.get("stale") for c in challenges(headers)] == ["true", "true", None]
    # The next count on the same nonce is fine.
    auth2 = answer(sha256, b"alice", b"wonderland", "/private/who", nc=2)
    assert (await reactor.deferToThread(
        fetch, number, "/private/who", {"Authorization": auth2}))[0] == 200
    await port.stopListening()


async def test_digest_checks_uri_realm_opaque_and_method(reactor: Any) -> None:
    port, number, _ = serve(reactor)
    _, headers, _ = await reactor.deferToThread(fetch, number, "/private/who")
    md5 = challenges(headers)[1]
    cases = [
        (answer(md5, b"alice", b"wonderland", "/private/other"), 400),   # uri mismatch
        (answer(md5, b"alice", b"wonderland", "/private/who", realm="elsewhere"), 401),
        (answer(md5, b"alice", b"wonderland", "/private/who", opaque="changed"), 401),
        (answer(md5, b"alice", b"wonderland", "/private/who", method=b"POST"), 401),
        (answer(md5, b"mallory", b"wonderland", "/private/who"), 401),
        (answer(md5, b"alice", b"wonderland", "/private/who", response="ZZ\u00e9"), 401),
        (answer(md5, b"alice", b"wonderland", "/private/who", nc=7), 200),
    ]
    for auth, expected in cases:
        status, got, _ = await reactor.deferToThread(
            fetch, number, "/private/who", {"Authorization": auth})
        assert status == expected, auth
        if expected == 401:
            assert all("stale" not in c.params for c in challenges(got))
    await port.stopListening()


async def test_expired_nonce_is_stale_only_with_the_right_password(reactor: Any) -> None:
    clock = Clock()
    port, number, _ = serve(reactor, nonceLifetime=30, clock=clock)
    _, headers, _ = await reactor.deferToThread(fetch, number, "/private/who")
    sha256 = challenges(headers)[0]
    clock.advance(31)
    for password, stale in ((b"wonderland", "true"), (b"wrong", None)):
        auth = answer(sha256, b"alice", password, "/private/who")
        status, got, _ = await reactor.deferToThread(
            fetch, number, "/private/who", {"Authorization": auth})
        assert status == 401
        assert challenges(got)[0].params.get("stale") == stale
    await port.stopListening()


# -- the server: checkers -----------------------------------------------------------------


class LaterChecker:
    """Answers after a reactor turn, as a database lookup would."""

    credentialInterfaces = (UsernamePassword, DigestedCredentials)

    def __init__(self, reactor: Any) -> None:
        self.reactor = reactor
        self.db = InMemoryUsernamePasswordDatabase({"alice": "wonderland"})

    def requestAvatarId(self, credentials: Any) -> Deferred[Any]:
        return deferLater(self.reactor, 0.01, self.db.requestAvatarId, credentials)


async def test_checker_returning_a_deferred_that_fires_later(reactor: Any) -> None:
    port, number, _ = serve(reactor, LaterChecker(reactor))
    good = "Basic " + base64.b64encode(b"alice:wonderland").decode()
    bad = "Basic " + base64.b64encode(b"alice:nope").decode()
    status, _, body = await reactor.deferToThread(
        fetch, number, "/private/async", {"Authorization": good})
    assert (status, body) == (200, b"async alice")
    assert (await reactor.deferToThread(
        fetch, number, "/private/who", {"Authorization": bad}))[0] == 401
    # Digest through the slow checker too.
    _, headers, _ = await reactor.deferToThread(fetch, number, "/private/sub/deep/q")
    auth = answer(challenges(headers)[0], b"alice", b"wonderland", "/private/sub/deep/q")
    assert (await reactor.deferToThread(
        fetch, number, "/private/sub/deep/q", {"Authorization": auth}))[2] == (
        b"user=alice rest=q")
    await port.stopListening()


async def test_callable_checker_sync_and_async(reactor: Any) -> None:
    calls: list[tuple[bytes, bytes]] = []

    async def check(user: bytes, password: bytes) -> bool:
        calls.append((user, password))
        await deferLater(reactor, 0, lambda: None)
        return password == b"ok"

    port, number, _ = serve(reactor, schemes=("basic",), checker=check)
    ok = "Basic " + base64.b64encode(b"bob:ok").decode()
    status, headers, body = await reactor.deferToThread(
        fetch, number, "/private/who", {"Authorization": ok})
    assert (status, body) == (200, b"user=bob rest=")
    no = "Basic " + base64.b64encode(b"bob:no").decode()
    status, headers, _ = await reactor.deferToThread(
        fetch, number, "/private/who", {"Authorization": no})
    assert status == 401
    assert [c.scheme for c in challenges(headers)] == ["basic"]
    assert calls == [(b"bob", b"ok"), (b"bob", b"no")]
    await port.stopListening()


async def test_checker_bug_is_logged_and_answered_500(
        reactor: Any, caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        def requestAvatarId(self, credentials: Any) -> Any:
            raise RuntimeError("checker exploded")

    port, number, _ = serve(reactor, Broken(), schemes=("basic",))
    auth = "Basic " + base64.b64encode(b"alice:x").decode()
    with caplog.at_level(logging.ERROR):
        status, _, body = await reactor.deferToThread(
            fetch, number, "/private/who", {"Authorization": auth})
    assert status == 500 and b"exploded" not in body
    assert any("checker exploded" in str(r.exc_info) for r in caplog.records)
    await port.stopListening()


# -- the client: against a fake agent (no sockets) -----------------------------------------


class FakeResponse:
    def __init__(self, code: int, headers: list[tuple[bytes, bytes]] = ()) -> None:  # type: ignore[assignment]
        self.code = code
        self.headers = Headers(list(headers))
        self.delivered = False

    def deliverBody(self, protocol: Any) -> None:
        self.delivered = True
        protocol.makeConnection(StringTransport())
        protocol.dataReceived(b"error page")
        protocol.connectionLost(None)


class FakeAgent:
    """Answers from a script; records each request's Authorization and body."""

    def __init__(self, *responses: FakeResponse) -> None:
        self.responses = list(responses)
        self.sent: list[tuple[bytes | None, bytes | None]] = []

    def request(self, method: bytes, uri: bytes, headers: Any = None,
                bodyProducer: Any = None) -> Deferred[Any]:
        auth = headers.getRawHeaders(b"authorization", [None])[0] if headers else None
        body = None
        if bodyProducer is not None:
            sink = Collector()
            bodyProducer.startProducing(sink)
            body = b"".join(sink.parts)
        self.sent.append((auth, body))
        return succeed(self.responses.pop(0))


class Collector:
    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.parts.append(data)


class ChunkProducer:
    """A body producer writing its chunks at once (FileBodyProducer needs a reactor)."""

    def __init__(self, chunks: list[bytes], length: Any = None) -> None:
        self.chunks = chunks
        self.length = sum(map(len, chunks)) if length is None else length
        self.started = 0

    def startProducing(self, consumer: Any) -> Deferred[None]:
        self.started += 1
        for chunk in self.chunks:
            consumer.write(chunk)
        return succeed(None)

    def stopProducing(self) -> None:
        pass


def www(*values: str) -> list[tuple[bytes, bytes]]:
    return [(b"WWW-Authenticate", v.encode()) for v in values]


def result(d: Deferred[Any]) -> Any:
    box: list[Any] = []
    d.addBoth(box.append)
    assert box, "the Deferred did not fire"
    if isinstance(box[0], Failure):
        box[0].raiseException()
    return box[0]


def test_password_manager_matching() -> None:
    creds = PasswordManager()
    creds.add_password(None, "http://h:8080/", "any", "1")
    creds.add_password("r", "http://h:8080/a", "deep", "2")
    creds.add_password("r", ["h:8080/"], "realm", "3")
    assert creds.find_user_password("r", "http://h:8080/a/x") == (b"deep", b"2")
    assert creds.find_user_password("r", "http://h:8080/ab") == (b"realm", b"3")
    assert creds.find_user_password("other", "http://h:8080/a") == (b"any", b"1")
    assert creds.find_user_password("other", "http://h:8081/a") is None
    assert creds.find_user_password("r", "https://H:8080/a") == (b"realm", b"3")  # any scheme
    assert creds.find_user_password("other", "https://h:8080/") is None


def test_client_prefers_digest_sha256_then_md5_then_basic() -> None:
    creds = PasswordManager()
    creds.add_password(None, "http://h/", "alice", "pw")
    challenge = www('Basic realm="r"', 'Digest realm="r", nonce="n1", algorithm=MD5, qop="auth"',
                    'Digest realm="r", nonce="n2", algorithm=SHA-256, qop="auth,auth-int", '
                    'opaque="o"', 'Digest realm="r", nonce="n3", algorithm=SHA-1')
    fake = FakeAgent(FakeResponse(401, challenge), FakeResponse(200))
    response = result(AuthAgent(fake, creds).request(b"GET", b"http://h/dir/x?y=1"))
    assert response.code == 200
    sent = parse_credentials(fake.sent[1][0])
    assert sent.scheme == "digest"
    assert sent.params["algorithm"] == "SHA-256" and sent.params["nonce"] == "n2"
    assert sent.params["uri"] == "/dir/x?y=1" and sent.params["opaque"] == "o"
    creds_obj = DigestedCredentials(b"alice", b"GET", b"r", "SHA-256", sent.params)
    assert creds_obj.checkPassword("pw")
    # Without the Digest challenges, Basic is used.
    fake = FakeAgent(FakeResponse(401, challenge[:1]), FakeResponse(200))
    result(AuthAgent(fake, creds).request(b"GET", b"http://h/x"))
    assert fake.sent[1][0] == encode_basic(b"alice", b"pw")


def test_client_reuses_the_nonce_and_follows_nextnonce() -> None:
    creds = PasswordManager()
    creds.add_password("r", "http://h/", "alice", "pw")
    challenge = www('Digest realm="r", nonce="n1", algorithm=MD5, qop="auth", '
                    'domain="/d/ http://h/x/"')
    fake = FakeAgent(FakeResponse(401, challenge), FakeResponse(200), FakeResponse(200),
                     FakeResponse(200, [(b"Authentication-Info", b'nextnonce="n2"')]),
                     FakeResponse(200), FakeResponse(200))
    agent = AuthAgent(fake, creds)
    result(agent.request(b"GET", b"http://h/d/a"))
    result(agent.request(b"GET", b"http://h/d/b"))         # preemptive, same nonce
    result(agent.request(b"POST", b"http://h/d/sub/c"))
    result(agent.request(b"GET", b"http://h/d/e"))         # nextnonce taken from here on
    result(agent.request(b"GET", b"http://h/other"))       # outside the domain: no header
    params = [parse_credentials(a).params for a, _ in fake.sent[1:5]]
    assert [(p["nonce"], p["nc"]) for p in params] == [
        ("n1", "00000001"), ("n1", "00000002"), ("n1", "00000003"), ("n2", "00000001")]
    assert len({p["cnonce"] for p in params}) == 4
    assert fake.sent[5][0] is None


def test_client_gives_up_without_credentials_or_after_one_retry() -> None:
    creds = PasswordManager()
    creds.add_password("r", "http://h/", "alice", "pw")
    for challenges_sent in (www('Basic realm="elsewhere"'), www("Negotiate"),
                            www('Digest realm="r", nonce="n", qop="auth-int"'), []):
        first = FakeResponse(401, challenges_sent)
        fake = FakeAgent(first)
        assert result(AuthAgent(fake, creds).request(b"GET", b"http://h/")) is first
        assert not first.delivered  # the caller can still read the 401's body
    second = FakeResponse(401, www('Basic realm="r"'))
    fake = FakeAgent(FakeResponse(401, www('Basic realm="r"')), second)
    assert result(AuthAgent(fake, creds).request(b"GET", b"http://h/")) is second
    assert len(fake.sent) == 2
    # An explicit Authorization header is the caller's business.
    own = Headers([(b"Authorization", b"Bearer t")])
    fake = FakeAgent(FakeResponse(401, www('Basic realm="r"')))
    assert result(AuthAgent(fake, creds).request(b"GET", b"http://h/", own)).code == 401
    assert fake.sent == [(b"Bearer t", None)]


def test_client_buffers_small_bodies_and_not_large_ones() -> None:
    creds = PasswordManager()
    creds.add_password("r", "http://h/", "alice", "pw")
    fake = FakeAgent(FakeResponse(401, www('Basic realm="r"')), FakeResponse(200))
    agent = AuthAgent(fake, creds, bufferLimit=100)
    body = ChunkProducer([b"pay", b"load"])
    assert result(agent.request(b"POST", b"http://h/", None, body)).code == 200
    assert fake.sent == [(None, b"payload"), (encode_basic(b"alice", b"pw"), b"payload")]
    assert body.started == 1  # read once, replayed from memory
    for big in (ChunkProducer([b"x" * 101]), ChunkProducer([b"x"], UNKNOWN_LENGTH)):
        fake = FakeAgent(FakeResponse(401, www('Basic realm="r"')))
        agent = AuthAgent(fake, creds, bufferLimit=100)
        assert result(agent.request(b"POST", b"http://h/", None, big)).code == 401
        assert len(fake.sent) == 1 and big.started == 1


# -- the client: real sockets ---------------------------------------------------------------


async def test_auth_agent_against_our_server(reactor: Any) -> None:
    clock = Clock()
    port, number, recorder = serve(reactor, nonceLifetime=60, clock=clock)
    pool = HTTPConnectionPool(reactor)
    creds = PasswordManager()
    creds.add_password("staff", f"http://127.0.0.1:{number}/private/", "alice", "wonderland")
    agent = AuthAgent(Agent(reactor, pool=pool), creds)
    base = f"http://127.0.0.1:{number}/private/".encode()
    try:
        response = await agent.request(b"GET", base + b"who/1")
        assert (response.code, await readBody(response)) == (200, b"user=alice rest=1")
        response = await agent.request(b"GET", base + b"sub/deep/2")
        assert (response.code, await readBody(response)) == (200, b"user=alice rest=2")
        clock.advance(61)  # the nonce goes stale: answered once more with a fresh one
        response = await agent.request(b"GET", base + b"who/3")
        assert (response.code, await readBody(response)) == (200, b"user=alice rest=3")
        digests = [(c.algorithm, c.fields["nc"]) for c in recorder.seen]
        assert digests == [("SHA-256", "00000001"), ("SHA-256", "00000002"),
                           ("SHA-256", "00000003"), ("SHA-256", "00000001")]
        # A wrong password ends with the server's 401, after one retry.
        wrong = PasswordManager()
        wrong.add_password(None, base.decode(), "alice", "nope")
        response = await AuthAgent(Agent(reactor, pool=pool), wrong).request(
            b"GET", base + b"who")
        assert response.code == 401
        await readBody(response)
    finally:
        await pool.closeCachedConnections()
        await port.stopListening()


async def test_auth_agent_basic_with_a_buffered_post_body(reactor: Any) -> None:
    port, number, recorder = serve(reactor, schemes=("basic",))
    creds = PasswordManager()
    creds.add_password(None, f"127.0.0.1:{number}", "alice", "wonderland")
    agent = AuthAgent(Agent(reactor), creds)
    url = f"http://127.0.0.1:{number}/private/who/x".encode()
    response = await agent.request(b"GET", url)
    assert (response.code, await readBody(response)) == (200, b"user=alice rest=x")
    body = FileBodyProducer(io.BytesIO(b"form=data"))
    response = await agent.request(b"POST", url, None, body)   # preemptive: no 401 first
    assert (response.code, await readBody(response)) == (200, b"user=alice posted=form=data")
    assert len(recorder.seen) == 2
    # A fresh agent must buffer the body to send it again after the 401.
    agent = AuthAgent(Agent(reactor), creds)
    response = await agent.request(b"POST", url, None, FileBodyProducer(io.BytesIO(b"again")))
    assert (response.code, await readBody(response)) == (200, b"user=alice posted=again")
    await port.stopListening()


class StdlibDigestHandler(http.server.BaseHTTPRequestHandler):
    """A Digest (MD5, qop=auth) server written with hashlib alone, for cross-checking."""

    nonce = "c3RkbGliLW5vbmNl"

    def do_GET(self) -> None:
        header = self.headers.get("Authorization", "")
        fields = dict(urllib.request.parse_keqv_list(
            urllib.request.parse_http_list(header.partition(" ")[2])))
        if header.startswith("Digest ") and fields.get("nonce") == self.nonce:
            md5 = lambda text: hashlib.md5(text.encode()).hexdigest()  # noqa: E731
            ha1 = md5(f"{fields['username']}:test-realm:s3cret")
            ha2 = md5(f"GET:{fields['uri']}")
            expected = md5(f"{ha1}:{self.nonce}:{fields['nc']}:{fields['cnonce']}:auth:{ha2}")
            if fields["response"] == expected and fields["uri"] == self.path:
                body = f"hello {fields['username']}".encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
        self.send_response(401)
        self.send_header("WWW-Authenticate", f'Digest realm="test-realm", nonce="{self.nonce}", '
                         'qop="auth", algorithm="MD5"')
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


async def test_auth_agent_against_a_stdlib_digest_server(reactor: Any) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), StdlibDigestHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        number = server.server_address[1]
        creds = PasswordManager()
        creds.add_password("test-realm", f"http://127.0.0.1:{number}/", "bob", "s3cret")
        response = await AuthAgent(Agent(reactor), creds).request(
            b"GET", f"http://127.0.0.1:{number}/x?y=1".encode())
        assert (response.code, await readBody(response)) == (200, b"hello bob")
    finally:
        await reactor.deferToThread(server.shutdown)
        server.server_close()
        thread.join()
