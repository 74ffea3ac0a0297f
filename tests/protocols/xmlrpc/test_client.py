"""The XML-RPC client (``Proxy``) against real servers on 127.0.0.1.

Servers: the stdlib's ``SimpleXMLRPCServer`` in a thread (interop), and our own
HTTP ``Site`` with small resources that answer XML-RPC by hand with the stdlib's
``loads``/``dumps`` (so these tests depend only on the HTTP server), some of them
misbehaving on purpose. Every test runs on each reactor backend.
"""

from __future__ import annotations

import datetime
import gzip
import ssl
import threading
import xmlrpc.client
from collections.abc import Callable, Iterator
from typing import Any
from xmlrpc.server import SimpleXMLRPCServer

import pytest
import trustme

from deferred import CancelledError, Deferred, gatherResults
from protocols.base import Factory, Protocol
from protocols.http.client import (
    ConnectTimeoutError,
    HTTPConnectionPool,
    RequestTimeoutError,
    TLSConnectError,
)
from protocols.http.resource import NOT_DONE_YET, Resource
from protocols.http.server import Site
from protocols.xmlrpc.client import (
    Fault,
    HTTPStatusError,
    MalformedResponseError,
    MultiCall,
    Proxy,
)
from reactor.error import ConnectionRefusedError

Binary = xmlrpc.client.Binary
DateTime = xmlrpc.client.DateTime

# -- the stdlib server in a thread -------------------------------------------------------


def refuse(code: int, text: str) -> None:
    raise Fault(code, text)


def explode() -> None:
    raise ValueError("kaboom")


@pytest.fixture
def stdlib_url(reactor: Any) -> Iterator[str]:
    """A SimpleXMLRPCServer serving in a thread; torn down before the reactor is."""
    server = SimpleXMLRPCServer(("127.0.0.1", 0), logRequests=False, allow_none=True)
    server.register_function(lambda a, b: a + b, "add")
    server.register_function(lambda *args: list(args), "echo")
    server.register_function(lambda x: x, "identity")
    server.register_function(lambda x: type(x).__name__, "typeof")
    functions: dict[str, Any] = {"refuse": refuse, "explode": explode, "math.pow": pow}
    for name, function in functions.items():
        server.register_function(function, name)
    server.register_multicall_functions()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01},
                              daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/RPC2"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


async def test_stdlib_scalars_and_containers(reactor: Any, stdlib_url: str) -> None:
    proxy = Proxy(stdlib_url, reactor=reactor)
    assert await proxy.callRemote("add", 2, 3) == 5
    assert await proxy.callRemote("add", "tor", "sion") == "torsion"
    assert await proxy.callRemote("identity", -7) == -7
    assert await proxy.callRemote("identity", 2.5) == 2.5
    assert await proxy.callRemote("identity", True) is True
    assert await proxy.callRemote("identity", "żółw ✓ <&>") == "żółw ✓ <&>"
    assert await proxy.callRemote("identity", [1, "a", [2.0]]) == [1, "a", [2.0]]
    assert await proxy.callRemote("identity", (1, 2)) == [1, 2]  # tuples travel as arrays
    struct = {"a": 1, "nested": {"list": [1, 2], "s": "x"}}
    assert await proxy.callRemote("identity", struct) == struct
    assert await proxy.callRemote("echo") == []
    big = list(range(20000))
    assert await proxy.callRemote("identity", big) == big


async def test_stdlib_none_needs_allow_none(reactor: Any, stdlib_url: str) -> None:
    strict = Proxy(stdlib_url, reactor=reactor)
    with pytest.raises(TypeError, match="None"):
        await strict.callRemote("identity", None)
    relaxed = Proxy(stdlib_url, allowNone=True, reactor=reactor)
    assert await relaxed.callRemote("identity", None) is None
    assert await relaxed.callRemote("echo", 1, None, [None]) == [1, None, [None]]
    # A None *result* is read whatever allowNone says (the server chose to send it).
    assert await strict.callRemote("echo", 1) == [1]
    assert await relaxed.callRemote("typeof", None) == "NoneType"


async def test_stdlib_datetime(reactor: Any, stdlib_url: str) -> None:
    when = datetime.datetime(2026, 11, 25, 23, 59, 1)
    plain = Proxy(stdlib_url, reactor=reactor)
    got = await plain.callRemote("identity", when)
    assert isinstance(got, DateTime) and got.value == "20261125T23:59:01"
    assert await plain.callRemote("typeof", when) == "DateTime"
    assert await Proxy(stdlib_url, useDateTime=True, reactor=reactor).callRemote(
        "identity", when) == when
    assert await Proxy(stdlib_url, useBuiltinTypes=True, reactor=reactor).callRemote(
        "identity", when) == when


async def test_stdlib_binary(reactor: Any, stdlib_url: str) -> None:
    data = bytes(range(256)) * 4
    plain = Proxy(stdlib_url, reactor=reactor)
    got = await plain.callRemote("identity", Binary(data))
    assert isinstance(got, Binary) and got.data == data
    assert (await plain.callRemote("identity", data)).data == data  # bytes go as base64
    builtin = Proxy(stdlib_url, useBuiltinTypes=True, reactor=reactor)
    assert await builtin.callRemote("identity", Binary(data)) == data


async def test_stdlib_fault_from_a_method(reactor: Any, stdlib_url: str) -> None:
    proxy = Proxy(stdlib_url, reactor=reactor)
    with pytest.raises(Fault) as info:
        await proxy.callRemote("refuse", 42, "not today")
    assert (info.value.faultCode, info.value.faultString) == (42, "not today")
    # The failure is an errback carrying the Fault, as in Twisted.
    failures: list[Any] = []
    await proxy.callRemote("refuse", 7, "again").addErrback(failures.append)
    assert failures[0].check(Fault) and failures[0].value.faultCode == 7
    with pytest.raises(Fault) as info:
        await proxy.callRemote("explode")
    assert "kaboom" in info.value.faultString


async def test_stdlib_unknown_method_and_odd_names(reactor: Any, stdlib_url: str) -> None:
    proxy = Proxy(stdlib_url, reactor=reactor)
    with pytest.raises(Fault) as info:
        await proxy.callRemote("no.such.method")
    assert 'method "no.such.method" is not supported' in info.value.faultString
    # The name is escaped: markup in it cannot break the request document.
    with pytest.raises(Fault) as info:
        await proxy.callRemote("a<b>&c")
    assert 'method "a<b>&c" is not supported' in info.value.faultString
    assert await proxy.callRemote("math.pow", 2, 10) == 1024
    with pytest.raises(TypeError):
        await proxy.callRemote("", 1)


async def test_stdlib_connections_close_each_time(reactor: Any, stdlib_url: str) -> None:
    # The stdlib handler speaks HTTP/1.0 and closes after each response: calls
    # still work one after another, and nothing stale is kept for reuse.
    pool = HTTPConnectionPool(reactor)
    proxy = Proxy(stdlib_url, reactor=reactor, pool=pool)
    for n in range(3):
        assert await proxy.callRemote("add", n, 1) == n + 1
        assert pool.cachedConnections() == 0
    await pool.closeCachedConnections()


async def test_stdlib_concurrent_calls(reactor: Any, stdlib_url: str) -> None:
    proxy = Proxy(stdlib_url, reactor=reactor)
    # A handful: the stdlib server is single-threaded with a listen backlog of 5.
    results = await gatherResults([proxy.callRemote("add", n, n) for n in range(5)])
    assert results == [2 * n for n in range(5)]


async def test_stdlib_multicall(reactor: Any, stdlib_url: str) -> None:
    proxy = Proxy(stdlib_url, reactor=reactor)
    mc = proxy.multicall()
    assert isinstance(mc, MultiCall)
    mc.add(1, 2)
    mc.refuse(5, "five")
    mc.math.pow(2, 8)
    mc.callRemote("echo", "x", [1])
    mc.nope()
    assert len(mc) == 5
    results = await mc()
    assert results[0] == 3
    assert isinstance(results[1], Fault)
    assert (results[1].faultCode, results[1].faultString) == (5, "five")
    assert results[2] == 256
    assert results[3] == ["x", [1]]
    assert isinstance(results[4], Fault) and "nope" in results[4].faultString
    assert await proxy.multicall()() == []  # nothing queued: nothing sent


# -- our own HTTP server, answering XML-RPC by hand ---------------------------------------


class HandRPC(Resource):
    """Answers XML-RPC calls from a dict of functions, recording each request."""

    isLeaf = True

    def __init__(self, functions: dict[str, Callable[..., Any]], multicall: bool = True,
                 ) -> None:
        super().__init__()
        self.functions = functions
        self.multicall = multicall
        self.requests: list[Any] = []

    def render_POST(self, request: Any) -> bytes:
        self.requests.append(request)
        params: Any
        name: Any
        params, name = xmlrpc.client.loads(request.content.read())
        request.setHeader(b"Content-Type", b"text/xml")
        try:
            if name == "system.multicall" and self.multicall:
                result: Any = [self._one(call["methodName"], call["params"])
                               for call in params[0]]
            else:
                result = self._call(name, params)
        except Fault as fault:
            return xmlrpc.client.dumps(fault, methodresponse=True).encode()
        return xmlrpc.client.dumps((result,), methodresponse=True, allow_none=True).encode()

    def _call(self, name: str, params: Any) -> Any:
        if name not in self.functions:
            raise Fault(8001, f"no such method {name}")
        return self.functions[name](*params)

    def _one(self, name: str, params: list[Any]) -> Any:
        try:
            return [self._call(name, params)]
        except Fault as fault:
            return {"faultCode": fault.faultCode, "faultString": fault.faultString}


class Fixed(Resource):
    """Always answers with the same status, headers and body."""

    isLeaf = True

    def __init__(self, body: bytes, code: int = 200, headers: dict[bytes, bytes] | None = None,
                 ) -> None:
        super().__init__()
        self.body = body
        self.code = code
        self.headers = headers or {}
        self.requests: list[Any] = []

    def render_POST(self, request: Any) -> bytes:
        self.requests.append(request)
        request.setResponseCode(self.code)
        for name, value in self.headers.items():
            request.setHeader(name, value)
        return self.body


class Never(Resource):
    """Takes the call and never answers."""

    isLeaf = True

    def render_POST(self, request: Any) -> Any:
        return NOT_DONE_YET


class BasicAuth(Resource):
    """Answers with the user name when the Basic credentials are right, else 401."""

    isLeaf = True

    def __init__(self, user: bytes, password: bytes) -> None:
        super().__init__()
        self.user = user
        self.password = password

    def render_POST(self, request: Any) -> bytes:
        if (request.getUser(), request.getPassword()) != (self.user, self.password):
            request.setResponseCode(401)
            request.setHeader(b"WWW-Authenticate", b'Basic realm="rpc"')
            return b"who are you?"
        return response(request.getUser().decode())


class CountingSite(Site):
    """A Site that counts the connections it accepted."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.connections = 0

    def buildProtocol(self, addr: Any) -> Any:
        self.connections += 1
        return super().buildProtocol(addr)


def response(value: Any) -> bytes:
    return xmlrpc.client.dumps((value,), methodresponse=True, allow_none=True).encode()


def add(a: Any, b: Any) -> Any:
    return a + b


def listen(reactor: Any, resources: dict[bytes, Resource]) -> tuple[Any, CountingSite, str]:
    root = Resource()
    for name, child in resources.items():
        root.putChild(name, child)
    site = CountingSite(root)
    port = reactor.listenTCP(0, site, interface="127.0.0.1")
    return port, site, f"http://127.0.0.1:{port.getHost().port}"


async def test_post_headers_and_keep_alive(reactor: Any) -> None:
    rpc = HandRPC({"add": add})
    port, site, url = listen(reactor, {b"RPC2": rpc})
    proxy = Proxy(url + "/RPC2", reactor=reactor)
    for n in range(4):
        assert await proxy.callRemote("add", n, 10) == n + 10
    assert site.connections == 1  # one kept-alive connection carried every call
    request = rpc.requests[0]
    assert request.method == b"POST"
    assert request.path == b"/RPC2"
    assert request.getHeader(b"content-type").startswith(b"text/xml")
    assert b"gzip" in request.getHeader(b"accept-encoding")
    assert request.getHeader(b"authorization") is None
    # A second Proxy on the same reactor shares the pool, so the connection too.
    assert await Proxy(url + "/RPC2", reactor=reactor).callRemote("add", 1, 1) == 2
    assert site.connections == 1
    await port.stopListening()


async def test_concurrent_calls_then_reuse(reactor: Any) -> None:
    rpc = HandRPC({"add": add})
    port, site, url = listen(reactor, {b"RPC2": rpc})
    pool = HTTPConnectionPool(reactor)
    proxy = Proxy(url + "/RPC2", reactor=reactor, pool=pool)
    results = await gatherResults([proxy.callRemote("add", n, 1) for n in range(30)])
    assert results == [n + 1 for n in range(30)]
    assert len(rpc.requests) == 30
    assert 1 <= site.connections <= 30
    kept = pool.cachedConnections()
    assert kept == pool.maxPersistentPerHost
    before = site.connections
    await gatherResults([proxy.callRemote("add", 1, 1) for _ in range(kept)])
    assert site.connections == before  # the kept ones served these
    await pool.closeCachedConnections()
    await port.stopListening()


async def test_multicall_shape(reactor: Any) -> None:
    def refuse_(code: int) -> None:
        raise Fault(code, f"refused {code}")

    port, _site, url = listen(reactor, {b"RPC2": HandRPC({"add": add, "refuse": refuse_})})
    mc = Proxy(url + "/RPC2", reactor=reactor).multicall()
    mc.add(1, 1)
    mc.callRemote("refuse", 3)
    mc.add("a", "b")
    results = await mc()
    assert results[0] == 2 and results[2] == "ab"
    assert isinstance(results[1], Fault) and results[1].faultCode == 3
    assert len(await mc()) == 3  # the queue is kept: it can be sent again
    with pytest.raises(AttributeError):
        mc._private
    await port.stopListening()


async def test_multicall_malformed_reply(reactor: Any) -> None:
    port, _site, url = listen(reactor, {
        b"short": Fixed(response([[1]])),
        b"odd": Fixed(response([[1], "what?"])),
        b"missing": HandRPC({}, multicall=False)})
    for path in ("short", "odd"):
        mc = Proxy(f"{url}/{path}", reactor=reactor).multicall()
        mc.a()
        mc.b()
        with pytest.raises(MalformedResponseError):
            await mc()
    # A server without system.multicall: the whole batch fails.
    mc = Proxy(f"{url}/missing", reactor=reactor).multicall()
    mc.a()
    with pytest.raises(Fault) as info:
        await mc()
    assert info.value.faultCode == 8001
    await port.stopListening()


async def test_basic_auth(reactor: Any) -> None:
    port, _site, url = listen(reactor, {b"rpc": BasicAuth(b"al@ice", b"s3:cret")})
    host = url.removeprefix("http://")
    # From the URL (percent-encoded), never sent in the request line.
    proxy = Proxy(f"http://al%40ice:s3%3Acret@{host}/rpc", reactor=reactor)
    assert proxy.url == f"{url}/rpc".encode()
    assert await proxy.callRemote("whoami") == "al@ice"
    # Arguments override the URL's credentials.
    assert await Proxy(f"http://x:y@{host}/rpc", user="al@ice", password=b"s3:cret",
                       reactor=reactor).callRemote("whoami") == "al@ice"
    with pytest.raises(HTTPStatusError) as info:
        await Proxy(f"{url}/rpc", user="al@ice", password="wrong",
                    reactor=reactor).callRemote("whoami")
    assert info.value.status == 401
    with pytest.raises(HTTPStatusError):
        await Proxy(f"{url}/rpc", reactor=reactor).callRemote("whoami")
    await port.stopListening()


async def test_non_200_status(reactor: Any) -> None:
    port, _site, url = listen(reactor, {b"err": Fixed(b"internal trouble", 500),
                                        b"huge": Fixed(b"z" * 200_000, 503)})
    with pytest.raises(HTTPStatusError) as info:
        await Proxy(url + "/err", reactor=reactor).callRemote("add", 1, 2)
    error = info.value
    assert error.status == 500 and error.message == b"Internal Server Error"
    assert error.body == b"internal trouble"
    assert isinstance(error, ValueError)  # as Twisted's Proxy: ValueError(status, message)
    assert error.args == (b"500", b"Internal Server Error")
    assert "500" in str(error)
    with pytest.raises(HTTPStatusError) as info:  # no such resource
        await Proxy(url + "/missing", reactor=reactor).callRemote("add", 1, 2)
    assert info.value.status == 404
    # A big error page is cut short, not read whole: the status is what matters.
    with pytest.raises(HTTPStatusError) as info:
        await Proxy(url + "/huge", reactor=reactor).callRemote("add", 1, 2)
    assert info.value.status == 503 and info.value.body == b"z" * 1024
    await port.stopListening()


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;">]>
<methodResponse><params><param><value><string>&lol2;</string></value></param></params>
</methodResponse>"""


@pytest.mark.parametrize("body", [
    b"<methodResponse><params><param><value><int>1",  # truncated
    b"this is not XML at all",
    b"",
    b"<methodResponse><params></params></methodResponse>",  # no value
    response(1).replace(b"</params>", b"<param><value>2</value></param></params>"),
    b"<methodResponse><params><param><value><int>x</int></value></param></params>"
    b"</methodResponse>",
    BILLION_LAUGHS,
], ids=["truncated", "not-xml", "empty", "no-value", "two-values", "bad-int", "dtd"])
async def test_malformed_response(reactor: Any, body: bytes) -> None:
    port, _site, url = listen(reactor, {b"bad": Fixed(body, headers={b"content-type":
                                                                    b"text/xml"})})
    with pytest.raises(MalformedResponseError) as info:
        await Proxy(url + "/bad", reactor=reactor).callRemote("add", 1, 2)
    assert isinstance(info.value, ValueError)
    assert info.value.body == body[:1024]
    await port.stopListening()


async def test_deep_nesting_refused(reactor: Any) -> None:
    value: Any = 1
    for _ in range(200):
        value = [value]
    port, _site, url = listen(reactor, {b"deep": Fixed(response(value))})
    with pytest.raises(MalformedResponseError):
        await Proxy(url + "/deep", reactor=reactor).callRemote("f")
    await port.stopListening()


async def test_response_size_limit(reactor: Any) -> None:
    port, _site, url = listen(reactor, {b"big": Fixed(response("x" * 100_000))})
    proxy = Proxy(url + "/big", reactor=reactor, maxResponseSize=10_000)
    with pytest.raises(MalformedResponseError, match="larger than 10000"):
        await proxy.callRemote("f")
    assert await Proxy(url + "/big", reactor=reactor).callRemote("f") == "x" * 100_000
    await port.stopListening()


async def test_gzip_response(reactor: Any) -> None:
    payload = "compressible " * 5000
    gz = Fixed(gzip.compress(response(payload)), headers={b"content-encoding": b"gzip"})
    port, _site, url = listen(reactor, {b"gz": gz})
    assert await Proxy(url + "/gz", reactor=reactor).callRemote("f") == payload
    assert b"gzip" in gz.requests[0].getHeader(b"accept-encoding")
    await port.stopListening()


async def test_gzip_bomb_refused(reactor: Any) -> None:
    bomb = gzip.compress(b"<methodResponse>" + b" " * (4 * 1024 * 1024))
    assert len(bomb) < 10_000
    port, _site, url = listen(reactor, {
        b"bomb": Fixed(bomb, headers={b"content-encoding": b"gzip"})})
    with pytest.raises(MalformedResponseError):
        await Proxy(url + "/bomb", reactor=reactor,
                    maxResponseSize=1024 * 1024).callRemote("f")
    await port.stopListening()


async def test_total_timeout(reactor: Any) -> None:
    port, _site, url = listen(reactor, {b"never": Never()})
    proxy = Proxy(url + "/never", reactor=reactor, timeout=0.2)
    with pytest.raises(RequestTimeoutError):
        await proxy.callRemote("add", 1, 2)
    await port.stopListening()


async def test_cancel_a_call(reactor: Any) -> None:
    port, _site, url = listen(reactor, {b"never": Never()})
    d = Proxy(url + "/never", reactor=reactor).callRemote("add", 1, 2)
    reactor.callLater(0, d.cancel)
    with pytest.raises(CancelledError):
        await d
    await port.stopListening()


async def test_connection_refused(reactor: Any) -> None:
    port, _site, url = listen(reactor, {})
    await port.stopListening()
    with pytest.raises(ConnectionRefusedError):
        await Proxy(url + "/RPC2", reactor=reactor).callRemote("add", 1, 2)


def test_bad_urls() -> None:
    with pytest.raises(ValueError):
        Proxy("ftp://127.0.0.1/")
    with pytest.raises(ValueError):
        Proxy("http:///RPC2")
    proxy = Proxy(b"http://127.0.0.1:8/x?y=1")
    assert proxy.url == b"http://127.0.0.1:8/x?y=1"
    assert repr(proxy) == "<Proxy http://127.0.0.1:8/x?y=1>"
    assert Proxy("http://127.0.0.1").url == b"http://127.0.0.1/"


# -- TLS and connect timeouts ------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def listen_tls(reactor: Any, ca: trustme.CA) -> tuple[Any, CountingSite, str]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    root = Resource()
    root.putChild(b"RPC2", HandRPC({"add": add}))
    site = CountingSite(root)
    port = reactor.listenSSL(0, site, context, interface="127.0.0.1")
    return port, site, f"https://127.0.0.1:{port.getHost().port}/RPC2"


def trusting(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


async def test_https_verified(reactor: Any, ca: trustme.CA) -> None:
    port, site, url = listen_tls(reactor, ca)
    proxy = Proxy(url, contextFactory=trusting(ca), reactor=reactor)
    assert await proxy.callRemote("add", 20, 22) == 42
    assert await proxy.callRemote("add", 1, 2) == 3
    assert site.connections == 1  # kept alive over TLS too
    await port.stopListening()


async def test_https_untrusted_certificate_fails(reactor: Any, ca: trustme.CA) -> None:
    port, _site, url = listen_tls(reactor, ca)
    # By default the system's CAs are used, and trustme's CA is not among them.
    with pytest.raises(TLSConnectError) as info:
        await Proxy(url, reactor=reactor).callRemote("add", 1, 2)
    assert "certificate verify failed" in str(info.value)
    # Another CA's trust store does not help either.
    with pytest.raises(TLSConnectError):
        await Proxy(url, contextFactory=trusting(trustme.CA()),
                    reactor=reactor).callRemote("add", 1, 2)
    await port.stopListening()


class Silent(Protocol):
    """Accepts the connection and never says a word (no TLS handshake)."""


async def test_connect_timeout(reactor: Any, ca: trustme.CA) -> None:
    # Connecting includes the TLS handshake, which this server never answers.
    factory = Factory.forProtocol(Silent)
    factory.noisy = False
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    proxy = Proxy(f"https://127.0.0.1:{port.getHost().port}/", connectTimeout=0.2,
                  contextFactory=trusting(ca), reactor=reactor)
    with pytest.raises(ConnectTimeoutError):
        await proxy.callRemote("add", 1, 2)
    await port.stopListening()


async def test_twisted_positional_arguments_and_ipv6(reactor: Any) -> None:
    root = Resource()
    root.putChild(b"RPC2", HandRPC({"add": add}))
    port = reactor.listenTCP(0, Site(root), interface="::1")
    url = f"http://[::1]:{port.getHost().port}/RPC2".encode()
    # Twisted's order: url, user, password, allowNone, useDateTime, connectTimeout, reactor.
    proxy = Proxy(url, None, None, True, False, 5.0, reactor)
    assert proxy.reactor is reactor and proxy.allowNone
    assert await proxy.callRemote("add", 1, 2) == 3
    await port.stopListening()


def test_default_reactor_is_the_installed_one(reactor: Any) -> None:
    assert Proxy("http://127.0.0.1:1/").reactor is reactor


# -- our own XML-RPC server (protocols.xmlrpc.server) ----------------------------------


def make_server(reactor: Any) -> tuple[Any, CountingSite, str]:
    """Our XMLRPC resource with Twisted-style methods, a sub-handler and the stdlib's API."""
    from protocols.xmlrpc.server import XMLRPC
    from reactor.task import deferLater

    class Calculator(XMLRPC):
        def xmlrpc_add(self, a: int, b: int) -> int:
            """Add two integers."""
            return a + b

        def xmlrpc_echo(self, *args: Any) -> list[Any]:
            return list(args)

        def xmlrpc_refuse(self, code: int) -> None:
            raise Fault(code, "refused")

        def xmlrpc_boom(self) -> None:
            raise RuntimeError("secret internals")

        async def xmlrpc_later(self, value: Any) -> Any:
            return await deferLater(reactor, 0, lambda: value)

        def xmlrpc_stall(self) -> Deferred[None]:
            return stalled

    stalled: Deferred[None] = Deferred()
    rpc = Calculator(allowNone=True, useDateTime=True)
    math = XMLRPC()
    math.register_function(pow, "pow")
    rpc.putSubHandler("math", math)
    rpc.register_introspection_functions()
    rpc.register_multicall_functions()
    return listen(reactor, {b"RPC2": rpc})


async def test_our_server_calls_and_faults(reactor: Any) -> None:
    port, site, url = make_server(reactor)
    proxy = Proxy(url + "/RPC2", allowNone=True, useDateTime=True, reactor=reactor)
    when = datetime.datetime(2026, 1, 2, 3, 4, 5)
    assert await proxy.callRemote("add", 2, 3) == 5
    values = [None, when, Binary(b"\x00\xff"), {"k": [1.5, "v"]}, "✓"]
    got = await proxy.callRemote("echo", *values)
    assert got[:2] == [None, when] and got[2].data == b"\x00\xff" and got[3:] == values[3:]
    assert await proxy.callRemote("later", "async") == "async"
    assert await proxy.callRemote("math.pow", 3, 3) == 27
    assert "add" in await proxy.callRemote("system.listMethods")
    assert await proxy.callRemote("system.methodHelp", "add") == "Add two integers."
    with pytest.raises(Fault) as info:
        await proxy.callRemote("refuse", 99)
    assert (info.value.faultCode, info.value.faultString) == (99, "refused")
    with pytest.raises(Fault) as info:
        await proxy.callRemote("nope")
    assert info.value.faultCode == 8001
    with pytest.raises(Fault) as info:
        await proxy.callRemote("boom")
    assert info.value.faultCode == 8002
    assert "secret" not in info.value.faultString
    assert site.connections == 1  # every call above on one kept-alive connection
    await port.stopListening()


async def test_our_server_multicall_and_concurrency(reactor: Any) -> None:
    port, _site, url = make_server(reactor)
    proxy = Proxy(url + "/RPC2", reactor=reactor)
    mc = proxy.multicall()
    mc.add(1, 2)
    mc.refuse(4)
    mc.math.pow(2, 5)
    mc.nope()
    results = await mc()
    assert results[0] == 3 and results[2] == 32
    assert isinstance(results[1], Fault) and results[1].faultCode == 4
    assert isinstance(results[3], Fault) and results[3].faultCode == 8001
    # A stalled call does not hold up the others.
    stalled = proxy.callRemote("stall")
    results = await gatherResults([proxy.callRemote("later", n) for n in range(40)])
    assert results == list(range(40))
    assert not stalled.called
    stalled.cancel()
    with pytest.raises(CancelledError):
        await stalled
    await port.stopListening()
