"""The XML-RPC server against the stdlib's ServerProxy and raw HTTP posts.

Every socket test runs on each reactor backend; the blocking clients run in
worker threads (``reactor.deferToThread``) so the reactor keeps serving.
"""

from __future__ import annotations

import datetime
import gzip
import http.client
import io
import json
import logging
import os
import selectors
import subprocess
import sys
import xmlrpc.client
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from deferred import Deferred
from protocols.http.resource import Resource
from protocols.http.server import Site
from protocols.xmlrpc import (
    FAILURE,
    INVALID_PARAMS,
    NOT_FOUND,
    PARSE_ERROR,
    UNSUPPORTED_ENCODING,
    XMLRPC,
    Fault,
    SimpleXMLRPCRequestHandler,
    SimpleXMLRPCServer,
    XMLRPCLimits,
    addIntrospection,
    withRequest,
)
from protocols.xmlrpc._introspection import signature_of, xmlrpc_type_name
from reactor.task import deferLater

ROOT = Path(__file__).resolve().parents[3]

# -- the service under test --------------------------------------------------------


class MathHandler(XMLRPC):
    def xmlrpc_add(self, a: int, b: int) -> int:
        """Add two integers."""
        return a + b


class Service(XMLRPC):
    def __init__(self, clock: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.clock = clock
        self.waiting: list[Deferred[str]] = []
        self.arrived: Deferred[None] = Deferred()
        self.putSubHandler("math", MathHandler())

    def xmlrpc_add(self, a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    def xmlrpc_echo(self, value):  # type: ignore[no-untyped-def]
        return value

    def xmlrpc_kind(self, value: Any) -> str:
        return type(value).__name__

    def xmlrpc_fault(self) -> None:
        raise Fault(42, "the answer is a fault")

    def xmlrpc_returned_fault(self) -> Fault:
        return Fault(43, "returned, not raised")

    def xmlrpc_boom(self) -> None:
        raise RuntimeError("secret internals 12345")

    def xmlrpc_typeerror(self, x: int) -> None:
        raise TypeError("raised inside the method")

    def xmlrpc_nothing(self) -> None:
        return None

    def xmlrpc_huge(self) -> int:
        return 2**40  # XML-RPC ints are 32 bits: cannot be marshalled

    def xmlrpc_later(self, x: int) -> Deferred[int]:
        return deferLater(self.clock, 0.01, lambda: x * 2)

    async def xmlrpc_coro(self, x: int) -> int:
        await deferLater(self.clock, 0.01, lambda: None)
        return x + 1

    async def xmlrpc_coro_fault(self) -> None:
        await deferLater(self.clock, 0, lambda: None)
        raise Fault(7, "async fault")

    def xmlrpc_wait(self) -> Deferred[str]:
        """Answer only when ``release`` is called."""
        d: Deferred[str] = Deferred()
        self.waiting.append(d)
        if not self.arrived.called:
            self.arrived.callback(None)
        return d

    def xmlrpc_release(self) -> int:
        waiting, self.waiting = self.waiting, []
        for d in waiting:
            d.callback("released")
        return len(waiting)

    @withRequest
    def xmlrpc_method(self, request: Any) -> str:
        return request.method.decode()  # type: ignore[no-any-return]


def serve(reactor: Any, resource: XMLRPC, **site: Any) -> tuple[Any, int]:
    root = Resource()
    root.putChild(b"RPC2", resource)
    port = reactor.listenTCP(0, Site(root, **site), interface="127.0.0.1")
    return port, port.getHost().port


def make_service(reactor: Any, **kwargs: Any) -> Service:
    service = Service(reactor, **kwargs)
    service.register_introspection_functions()
    service.register_multicall_functions()
    return service


class TimeoutTransport(xmlrpc.client.Transport):
    """The stdlib transport with a socket timeout, so a hang fails instead."""

    def make_connection(self, host: Any) -> http.client.HTTPConnection:
        conn = super().make_connection(host)
        conn.timeout = 10
        return conn


def proxy(number: int, path: str = "/RPC2", **kwargs: Any) -> xmlrpc.client.ServerProxy:
    # ServerProxy ignores use_datetime/use_builtin_types when given a transport.
    transport = TimeoutTransport(use_datetime=kwargs.get("use_datetime", False),
                                 use_builtin_types=kwargs.get("use_builtin_types", False))
    return xmlrpc.client.ServerProxy(f"http://127.0.0.1:{number}{path}", transport=transport,
                                     **kwargs)


def fault_of(call: Callable[[], Any]) -> tuple[int, str]:
    try:
        call()
    except xmlrpc.client.Fault as fault:
        return fault.faultCode, fault.faultString
    raise AssertionError("no fault")


def post(number: int, body: bytes, headers: dict[str, str] | None = None,
         method: str = "POST", path: str = "/RPC2") -> tuple[int, dict[str, str], bytes]:
    """One raw request with http.client: (status, headers, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", number, timeout=10)
    try:
        sent = {"Content-Type": "text/xml"} if headers is None else headers
        conn.request(method, path, body=body if method == "POST" else None, headers=sent)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def fault_in(body: bytes) -> tuple[int, str]:
    return fault_of(lambda: xmlrpc.client.loads(body))


@pytest.fixture
def errors(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level(logging.ERROR, logger="protocols.xmlrpc"):
        yield caplog


# -- calls and faults ---------------------------------------------------------------


async def test_calls_subhandlers_and_with_request(reactor: Any) -> None:
    port, number = serve(reactor, make_service(reactor))

    def client() -> list[Any]:
        p = proxy(number)
        return [p.add(2, 3), p.math.add(4, 5), p.echo("héllo ✓"), p.method(),
                p.echo([1, 2.5, True, {"k": ["v"]}])]

    assert await reactor.deferToThread(client) == [
        5, 9, "héllo ✓", "POST", [1, 2.5, True, {"k": ["v"]}]]
    await port.stopListening()


async def test_faults_carry_the_documented_codes(reactor: Any,
                                                 errors: pytest.LogCaptureFixture) -> None:
    port, number = serve(reactor, make_service(reactor))

    def client() -> dict[str, tuple[int, str]]:
        p = proxy(number)
        return {
            "fault": fault_of(p.fault),
            "returned": fault_of(p.returned_fault),
            "unknown": fault_of(p.nope),
            "unknown_sub": fault_of(lambda: p.nosuch.add(1, 2)),
            "private": fault_of(p._private),
            "boom": fault_of(p.boom),
            "arity": fault_of(lambda: p.add(1)),
            "too_many": fault_of(lambda: p.add(1, 2, 3)),
            "inner_typeerror": fault_of(lambda: p.typeerror(1)),
            "none": fault_of(p.nothing),
            "huge": fault_of(p.huge),
            "async_fault": fault_of(p.coro_fault),
        }

    got = await reactor.deferToThread(client)
    assert got["fault"] == (42, "the answer is a fault")
    assert got["returned"] == (43, "returned, not raised")
    assert got["async_fault"] == (7, "async fault")
    assert got["unknown"][0] == NOT_FOUND == 8001
    assert got["unknown_sub"][0] == NOT_FOUND
    assert got["private"][0] == NOT_FOUND
    assert got["boom"][0] == FAILURE == 8002
    assert "secret" not in got["boom"][1] and "RuntimeError" not in got["boom"][1]
    assert got["arity"][0] == INVALID_PARAMS == -32602
    assert got["too_many"][0] == INVALID_PARAMS
    # A TypeError raised inside the method is a failure, not bad parameters.
    assert got["inner_typeerror"][0] == FAILURE
    assert got["none"][0] == FAILURE  # None without allowNone
    assert got["huge"][0] == FAILURE
    logged = "\n".join(r.getMessage() + (str(r.exc_info[1]) if r.exc_info else "")
                       for r in errors.records)
    assert "secret internals 12345" in logged
    assert any(r.exc_info and r.exc_info[2] is not None for r in errors.records)
    await port.stopListening()


async def test_malformed_xml_is_a_parse_error_fault(reactor: Any) -> None:
    port, number = serve(reactor, make_service(reactor))
    status, headers, body = await reactor.deferToThread(post, number, b"<methodCall><oops")
    assert status == 200
    assert headers["content-type"].startswith("text/xml")
    assert fault_in(body)[0] == PARSE_ERROR == -32700
    await port.stopListening()


async def test_deferred_and_async_methods(reactor: Any) -> None:
    port, number = serve(reactor, make_service(reactor))

    def client() -> tuple[int, int]:
        p = proxy(number)
        return p.later(21), p.coro(41)

    assert await reactor.deferToThread(client) == (42, 42)
    await port.stopListening()


async def test_a_slow_method_does_not_block_a_fast_one(reactor: Any) -> None:
    service = make_service(reactor)
    port, number = serve(reactor, service)
    slow = reactor.deferToThread(lambda: proxy(number).wait())
    await service.arrived  # the slow call is in progress...
    # ...and a second client is answered meanwhile (its call ends the slow one).
    released = await reactor.deferToThread(lambda: proxy(number).release())
    assert released == 1
    assert await slow == "released"
    await port.stopListening()


async def test_200_concurrent_calls_from_threads(reactor: Any) -> None:
    port, number = serve(reactor, make_service(reactor))

    def one(i: int) -> int:
        return proxy(number).add(i, i)  # type: ignore[no-any-return]

    def many() -> list[int]:
        with ThreadPoolExecutor(max_workers=25) as pool:
            return list(pool.map(one, range(200)))

    assert await reactor.deferToThread(many) == [2 * i for i in range(200)]
    await port.stopListening()


TWISTED_CLIENT = """
import json, sys
from twisted.internet import defer, task
from twisted.web.xmlrpc import Proxy

@defer.inlineCallbacks
def main(reactor, url):
    proxy = Proxy(url.encode())
    out = {"add": (yield proxy.callRemote("add", 2, 3)),
           "math": (yield proxy.callRemote("math.add", 1, 1)),
           "later": (yield proxy.callRemote("later", 4))}
    for name in ("nope", "boom", "fault"):
        try:
            yield proxy.callRemote(name)
        except Exception as e:
            out[name] = [e.faultCode, e.faultString]
    print(json.dumps(out))

task.react(main, sys.argv[1:])
"""


async def test_twisted_proxy_sees_twisteds_fault_codes(reactor: Any, tmp_path: Path,
                                                       errors: pytest.LogCaptureFixture) -> None:
    pytest.importorskip("twisted.web.xmlrpc")  # a benchmark extra, not a test dependency
    port, number = serve(reactor, make_service(reactor))
    script = tmp_path / "twisted_client.py"
    script.write_text(TWISTED_CLIENT)
    done = await reactor.deferToThread(
        subprocess.run, [sys.executable, str(script), f"http://127.0.0.1:{number}/RPC2"],
        capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    assert (got["add"], got["math"], got["later"]) == (5, 2, 8)
    assert got["nope"][0] == 8001 and got["boom"] == [8002, "error"]
    assert got["fault"] == [42, "the answer is a fault"]
    await port.stopListening()


# -- introspection and multicall ----------------------------------------------------


async def test_introspection(reactor: Any) -> None:
    port, number = serve(reactor, make_service(reactor))

    def client() -> tuple[Any, ...]:
        p = proxy(number)
        return (p.system.listMethods(), p.system.methodHelp("add"),
                p.system.methodHelp("math.add"), p.system.methodSignature("add"),
                p.system.methodSignature("echo"), p.system.methodSignature("kind"),
                fault_of(lambda: p.system.methodHelp("nope")))

    names, help_add, help_sub, sig_add, sig_echo, sig_kind, unknown = \
        await reactor.deferToThread(client)
    assert names == sorted(names)
    assert {"add", "echo", "math.add", "system.listMethods", "system.methodHelp",
            "system.methodSignature", "system.multicall", "coro"} <= set(names)
    assert help_add == help_sub == "Add two integers."
    assert sig_add == [["int", "int", "int"]]
    assert sig_echo == "signatures not supported"
    assert sig_kind == [["string", "undef"]]
    assert unknown[0] == NOT_FOUND
    await port.stopListening()


async def test_multicall(reactor: Any, errors: pytest.LogCaptureFixture) -> None:
    port, number = serve(reactor, make_service(reactor))

    def client() -> tuple[list[Any], list[Any]]:
        p = proxy(number)
        multi = xmlrpc.client.MultiCall(p)
        multi.add(1, 2)
        multi.coro(1)
        multi.fault()
        results = multi()
        collected: list[Any] = [results[0], results[1]]
        try:
            results[2]
        except xmlrpc.client.Fault as fault:
            collected.append(fault.faultCode)
        raw = p.system.multicall([
            {"methodName": "later", "params": [5]},
            {"methodName": "nope", "params": []},
            {"methodName": "boom", "params": []},
            {"methodName": "add", "params": [1]},
            {"methodName": "system.multicall", "params": [[]]},
            "not a struct",
            {"methodName": "add", "params": [2, 2]},
            {"methodName": "returned_fault", "params": []},
            {"methodName": "method", "params": []},
        ])
        return collected, raw

    collected, raw = await reactor.deferToThread(client)
    assert collected == [3, 2, 42]
    assert raw[0] == [10]
    assert raw[1]["faultCode"] == NOT_FOUND
    assert raw[2] == {"faultCode": FAILURE, "faultString": "error"}
    assert raw[3]["faultCode"] == INVALID_PARAMS
    assert "faultCode" in raw[4] and "faultCode" in raw[5]
    assert raw[6] == [4]
    assert raw[7] == {"faultCode": 43, "faultString": "returned, not raised"}
    assert raw[8] == ["POST"]  # withRequest procedures get the request in a multicall too
    await port.stopListening()


# -- types ---------------------------------------------------------------------------


async def test_allow_none(reactor: Any) -> None:
    port, number = serve(reactor, make_service(reactor, allowNone=True))

    def client() -> tuple[Any, Any, Any]:
        p = proxy(number, allow_none=True)
        return p.nothing(), p.echo(None), p.echo([None, {"k": None}])

    assert await reactor.deferToThread(client) == (None, None, [None, {"k": None}])
    await port.stopListening()


async def test_datetime_and_binary(reactor: Any) -> None:
    port, number = serve(reactor, make_service(reactor))
    when = datetime.datetime(2026, 11, 25, 23, 59, 58)

    def client() -> tuple[Any, ...]:
        p = proxy(number, use_datetime=True)
        blob = xmlrpc.client.Binary(bytes(range(256)))
        return (p.echo(when), p.kind(when), p.echo(blob), p.kind(blob))

    echoed, kind, blob, blob_kind = await reactor.deferToThread(client)
    assert echoed == when
    assert kind == "DateTime"  # the stdlib's type, unless useDateTime
    assert blob.data == bytes(range(256))
    assert blob_kind == "Binary"
    await port.stopListening()


async def test_use_datetime_and_builtin_types_on_the_server(reactor: Any) -> None:
    port, number = serve(reactor, make_service(reactor, useDateTime=True,
                                               useBuiltinTypes=True))

    def client() -> tuple[Any, ...]:
        p = proxy(number, use_builtin_types=True)
        return (p.kind(datetime.datetime(2000, 1, 1)), p.kind(b"\x00\x01"),
                p.echo(b"\x00\x01"))

    assert await reactor.deferToThread(client) == ("datetime", "bytes", b"\x00\x01")
    await port.stopListening()


async def test_large_structs_and_arrays(reactor: Any) -> None:
    port, number = serve(reactor, make_service(reactor))
    # Large, not huge: the stdlib's unmarshalling (both sides) costs ~10 µs a value.
    struct = {f"key{i}": [i, str(i)] for i in range(3_000)}
    array = list(range(30_000))

    def client() -> tuple[Any, Any]:
        p = proxy(number)
        return p.echo(struct), p.echo(array)

    got_struct, got_array = await reactor.deferToThread(client)
    assert got_struct == struct
    assert got_array == array
    await port.stopListening()


async def test_response_encoding(reactor: Any) -> None:
    port, number = serve(reactor, make_service(reactor, encoding="iso-8859-1"))
    status, headers, body = await reactor.deferToThread(
        post, number, xmlrpc.client.dumps(("é",), "echo").encode())
    assert status == 200
    assert headers["content-type"] == "text/xml; charset=iso-8859-1"
    assert "é".encode("iso-8859-1") in body
    assert xmlrpc.client.loads(body)[0] == ("é",)
    await port.stopListening()


async def test_large_responses_are_gzipped_for_clients_that_accept_it(reactor: Any) -> None:
    service = make_service(reactor)
    port, number = serve(reactor, service)
    big = call_body("echo", ("x" * 5000,))
    small = call_body("add", (1, 2))

    def client() -> list[tuple[int, str | None, Any]]:
        out = []
        for body, accept in ((big, "gzip"), (big, "gzip;q=0"), (big, None), (small, "gzip"),
                             (big, "deflate, GZIP;q=0.5")):
            headers = {"Content-Type": "text/xml"}
            if accept is not None:
                headers["Accept-Encoding"] = accept
            status, got, answer = post(number, body, headers)
            if got.get("content-encoding") == "gzip":
                answer = gzip.decompress(answer)
            out.append((status, got.get("content-encoding"), xmlrpc.client.loads(answer)[0]))
        # The stdlib client asks for gzip and decodes it.
        out.append((200, None, (proxy(number).echo("y" * 5000),)))
        return out

    got = await reactor.deferToThread(client)
    assert [g[1] for g in got] == ["gzip", None, None, None, "gzip", None]
    assert got[0][2] == got[1][2] == ("x" * 5000,) and got[3][2] == (3,)
    assert got[5][2] == ("y" * 5000,)
    service.encodeThreshold = None
    _, headers, _ = await reactor.deferToThread(
        post, number, big, {"Content-Type": "text/xml", "Accept-Encoding": "gzip"})
    assert "content-encoding" not in headers
    await port.stopListening()


# -- hardening ------------------------------------------------------------------------


def call_body(method: str = "add", params: tuple[Any, ...] = (1, 2)) -> bytes:
    return xmlrpc.client.dumps(params, method).encode()


async def test_oversized_body_is_413_and_server_keeps_serving(reactor: Any) -> None:
    port, number = serve(reactor, make_service(reactor, limits=XMLRPCLimits(max_body=1000)))
    big = call_body("echo", ("x" * 5000,))

    def client() -> tuple[int, int, Any]:
        status, _, _ = post(number, big)
        ok, _, body = post(number, call_body())
        return status, ok, xmlrpc.client.loads(body)[0]

    assert await reactor.deferToThread(client) == (413, 200, (3,))
    await port.stopListening()


async def test_gzip_requests_and_the_zip_bomb(reactor: Any) -> None:
    limits = XMLRPCLimits(max_decompressed=100_000)
    port, number = serve(reactor, make_service(reactor, limits=limits))
    bomb = gzip.compress(b"<methodCall>" + b" " * 5_000_000)

    def client() -> tuple[Any, ...]:
        gz = {"Content-Type": "text/xml", "Content-Encoding": "gzip"}
        _, _, good = post(number, gzip.compress(call_body()), gz)
        bomb_status, _, _ = post(number, bomb, gz)
        corrupt = post(number, b"not gzip", gz)
        unknown = post(number, call_body(), {"Content-Type": "text/xml",
                                             "Content-Encoding": "br"})
        return good, bomb_status, corrupt, unknown

    good, bomb_status, corrupt, unknown = await reactor.deferToThread(client)
    assert xmlrpc.client.loads(good)[0] == (3,)
    assert bomb_status == 413
    assert corrupt[0] == 200 and fault_in(corrupt[2])[0] == PARSE_ERROR
    assert unknown[0] == 200 and fault_in(unknown[2])[0] == UNSUPPORTED_ENCODING
    await port.stopListening()


async def test_deep_nesting_is_refused(reactor: Any) -> None:
    port, number = serve(reactor, make_service(reactor, limits=XMLRPCLimits(max_depth=20)))
    ok_value: Any = 1
    for _ in range(20):
        ok_value = [ok_value]
    deep = (b"<methodCall><methodName>echo</methodName><params><param><value>"
            + b"<array><data><value>" * 50_000)

    def client() -> tuple[Any, tuple[int, str]]:
        echoed = proxy(number).echo(ok_value)
        _, _, body = post(number, deep)
        return echoed, fault_in(body)

    echoed, fault = await reactor.deferToThread(client)
    assert echoed == ok_value
    assert fault[0] == PARSE_ERROR
    await port.stopListening()


@pytest.mark.parametrize("body", [
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
    b'<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
    b"<methodCall><methodName>echo</methodName><params><param><value>"
    b"<string>&lol3;</string></value></param></params></methodCall>",
    b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    b"<methodCall><methodName>echo</methodName><params><param><value>"
    b"<string>&xxe;</string></value></param></params></methodCall>",
], ids=["billion-laughs", "external-entity"])
async def test_doctype_and_entities_are_refused(reactor: Any, body: bytes) -> None:
    port, number = serve(reactor, make_service(reactor))
    status, _, answer = await reactor.deferToThread(post, number, body)
    assert status == 200
    assert fault_in(answer)[0] == PARSE_ERROR
    assert b"lollol" not in answer and b"root:" not in answer
    await port.stopListening()


async def test_only_post_is_allowed(reactor: Any) -> None:
    port, number = serve(reactor, make_service(reactor))

    def client() -> list[tuple[int, str | None]]:
        out = []
        for method in ("GET", "PUT", "DELETE"):
            status, headers, _ = post(number, b"", method=method)
            out.append((status, headers.get("allow")))
        return out

    assert await reactor.deferToThread(client) == [(405, "POST")] * 3
    await port.stopListening()


async def test_content_type_is_checked(reactor: Any) -> None:
    port, number = serve(reactor, make_service(reactor))

    def client() -> list[int]:
        statuses = []
        for ctype in ("application/json", "text/plain", "application/x-www-form-urlencoded",
                      None, "application/xml", "text/xml; charset=utf-8", "TEXT/XML"):
            headers = {} if ctype is None else {"Content-Type": ctype}
            statuses.append(post(number, call_body(), headers)[0])
        return statuses

    assert await reactor.deferToThread(client) == [415, 415, 415, 415, 200, 200, 200]
    await port.stopListening()


async def test_wrong_content_type_is_refused_before_the_body(reactor: Any) -> None:
    port, number = serve(reactor, make_service(reactor))

    def client() -> tuple[int, str | None]:
        conn = http.client.HTTPConnection("127.0.0.1", number, timeout=10)
        try:
            # A head announcing 10 MB that never come: only a refusal that does
            # not wait for the body answers before the timeout.
            conn.putrequest("POST", "/RPC2")
            conn.putheader("Content-Type", "application/json")
            conn.putheader("Content-Length", str(10_000_000))
            conn.endheaders()
            resp = conn.getresponse()
            resp.read()
            return resp.status, resp.getheader("Connection")
        finally:
            conn.close()

    assert await reactor.deferToThread(client) == (415, "close")
    await port.stopListening()


class FakeRequest:
    """Just what render_POST reads and writes, for the paths no server reaches."""

    method = b"POST"

    def __init__(self, body: bytes, headers: dict[bytes, bytes]) -> None:
        self.content = io.BytesIO(body)
        self.headers = headers
        self.code = 200
        self.responseHeaders: dict[bytes, bytes] = {}

    def getHeader(self, name: bytes) -> bytes | None:
        return self.headers.get(name.lower())

    def setResponseCode(self, code: int, message: bytes | None = None) -> None:
        self.code = code

    def setHeader(self, name: bytes, value: bytes) -> None:
        self.responseHeaders[name.lower()] = value


def test_render_post_checks_content_type_without_the_head_hook() -> None:
    rpc = XMLRPC()
    rpc.register_function(lambda: 1, "one")
    request = FakeRequest(call_body("one", ()), {b"content-type": b"text/plain"})
    rpc.render_POST(request)
    assert request.code == 415
    request = FakeRequest(call_body("one", ()), {b"content-type": b"text/xml"})
    assert xmlrpc.client.loads(rpc.render_POST(request))[0] == (1,)
    assert request.responseHeaders[b"content-type"] == b"text/xml; charset=utf-8"


# -- SimpleXMLRPCServer ----------------------------------------------------------------


async def test_simple_server_in_process_answers_on_root_and_rpc2(reactor: Any) -> None:
    server = SimpleXMLRPCServer(("127.0.0.1", 0), logRequests=False, allow_none=True,
                                reactor=reactor)
    assert server.server_address[0] == "127.0.0.1" and server.server_address[1] > 0

    @server.register_function
    def is_even(n: int) -> bool:
        """Is n even?"""
        return n % 2 == 0

    server.register_function(lambda: None, "nothing")
    server.register_introspection_functions()
    server.register_multicall_functions()
    number = server.server_address[1]

    def client() -> tuple[Any, ...]:
        root, rpc2 = proxy(number, "/"), proxy(number, "/RPC2", allow_none=True)
        missing = post(number, call_body("is_even", (2,)), path="/other")[0]
        return (root.is_even(4), rpc2.is_even(3), rpc2.nothing(),
                root.system.methodSignature("is_even"), missing)

    assert await reactor.deferToThread(client) == (
        True, False, None, [["boolean", "int"]], 404)
    server.server_close()


async def test_simple_server_bind_later_localhost_and_encoding(reactor: Any) -> None:
    server = SimpleXMLRPCServer(("localhost", 0), logRequests=False, encoding="iso-8859-1",
                                bind_and_activate=False, reactor=reactor)
    assert server.port is None and server.server_address == ("localhost", 0)
    server.server_bind()
    server.server_activate()
    host, number = server.server_address
    assert host == "127.0.0.1" and number > 0
    server.register_function(lambda s: s + "é", "accent")

    def client() -> tuple[str, str]:
        status, headers, body = post(number, call_body("accent", ("e",)))
        assert status == 200
        return headers["content-type"], xmlrpc.client.loads(body)[0][0]

    assert await reactor.deferToThread(client) == ("text/xml; charset=iso-8859-1", "eé")
    server.server_close()
    server.server_close()  # twice is harmless, as with the stdlib


async def test_the_stdlib_documentation_example_with_a_request_handler(reactor: Any) -> None:
    # The stdlib documentation's longer example, imports changed, port 0.
    class RequestHandler(SimpleXMLRPCRequestHandler):
        rpc_paths = ("/RPC2",)

    with SimpleXMLRPCServer(("127.0.0.1", 0), requestHandler=RequestHandler,
                            logRequests=False, reactor=reactor) as server:
        server.register_introspection_functions()
        server.register_function(pow)

        def adder_function(x: int, y: int) -> int:
            return x + y

        server.register_function(adder_function, "add")

        @server.register_function(name="mul")
        def multiply(x: int, y: int) -> int:
            return x * y

        class MyFuncs:
            def div(self, x: int, y: int) -> int:
                return x // y

        server.register_instance(MyFuncs())
        number = server.server_address[1]

        def client() -> tuple[Any, ...]:
            s = proxy(number)
            return (s.pow(2, 3), s.add(2, 3), s.mul(5, 2), s.div(7, 2),
                    "mul" in s.system.listMethods() and "div" in s.system.listMethods(),
                    post(number, call_body("add", (1, 1)), path="/")[0])

        assert await reactor.deferToThread(client) == (8, 5, 10, 3, True, 404)


async def test_register_instance_styles(reactor: Any) -> None:
    class Inner:
        def hello(self) -> str:
            return "inner"

    class Plain:
        inner = Inner()

        def shout(self, s: str) -> str:
            return s.upper()

        def _hidden(self) -> str:
            return "hidden"

    class Dispatching:
        def _dispatch(self, method: str, params: tuple[Any, ...]) -> Any:
            return [method, list(params)]

    plain = XMLRPC()
    plain.register_instance(Plain())
    plain.register_introspection_functions()
    dotted = XMLRPC()
    dotted.register_instance(Plain(), allow_dotted_names=True)
    dispatching = XMLRPC()
    dispatching.register_instance(Dispatching())
    root = Resource()
    root.putChild(b"plain", plain)
    root.putChild(b"dotted", dotted)
    root.putChild(b"dispatch", dispatching)
    port = reactor.listenTCP(0, Site(root), interface="127.0.0.1")
    number = port.getHost().port

    def client() -> tuple[Any, ...]:
        p, d, x = proxy(number, "/plain"), proxy(number, "/dotted"), proxy(number, "/dispatch")
        return (p.shout("hi"), fault_of(p._hidden)[0], fault_of(p.inner.hello)[0],
                d.inner.hello(), fault_of(d.inner._hidden)[0], x.any.name(1, 2),
                p.system.listMethods())

    got = await reactor.deferToThread(client)
    assert got[:6] == ("HI", NOT_FOUND, NOT_FOUND, "inner", NOT_FOUND, ["any.name", [1, 2]])
    assert "shout" in got[6] and "_hidden" not in got[6]
    await port.stopListening()


def wait_for_line(process: subprocess.Popen[str], timeout: float = 30.0) -> str:
    """The first line the process prints, or fail (never hang)."""
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            raise AssertionError("the server printed nothing")
    return process.stdout.readline().strip()


def start_script(source: str, tmp_path: Path, backend: str) -> subprocess.Popen[str]:
    script = tmp_path / "server.py"
    script.write_text(source)
    env = dict(os.environ, TORSION_REACTOR=backend, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=str(tmp_path))


BACKENDS = ["select", "asyncio"] + (["uvloop"] if sys.platform != "win32" else [])


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_classic_example_program_runs(tmp_path: Path, backend: str) -> None:
    if backend == "uvloop":
        pytest.importorskip("uvloop")
    source = (ROOT / "examples" / "xmlrpc_server.py").read_text()
    classic = 'server = SimpleXMLRPCServer(("localhost", 8000))\n'
    assert classic in source
    # Port 0 and the port printed; the rest of the program is run unchanged.
    source = source.replace(classic, 'server = SimpleXMLRPCServer(("localhost", 0))\n'
                            "print(server.server_address[1], flush=True)\n")
    process = start_script(source, tmp_path, backend)
    try:
        number = int(wait_for_line(process))
        with proxy(number) as p, proxy(number, "/") as root:
            assert (p.is_even(4), p.is_even(7)) == (True, False)
            assert root.is_even(0) is True
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=30)
    # logRequests=True (the default) logs each request to stderr, as the stdlib does.
    assert stderr.count('"POST /RPC2 HTTP/1.1" 200') == 2
    assert stderr.count('"POST / HTTP/1.1" 200') == 1


SHUTDOWN_SCRIPT = """
import threading
from protocols.xmlrpc.server import SimpleXMLRPCServer

with SimpleXMLRPCServer(("127.0.0.1", 0), logRequests=False) as server:
    def stop() -> str:
        threading.Thread(target=server.shutdown).start()
        return "stopping"
    server.register_function(stop)
    print(server.server_address[1], flush=True)
    server.serve_forever()
print("stopped", flush=True)
"""


@pytest.mark.parametrize("backend", BACKENDS)
def test_shutdown_from_another_thread_ends_serve_forever(tmp_path: Path, backend: str) -> None:
    if backend == "uvloop":
        pytest.importorskip("uvloop")
    process = start_script(SHUTDOWN_SCRIPT, tmp_path, backend)
    try:
        number = int(wait_for_line(process))
        with proxy(number) as p:
            assert p.stop() == "stopping"
        assert wait_for_line(process) == "stopped"
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=30)


# -- introspection without sockets ---------------------------------------------------


def test_signature_mapping() -> None:
    def typed(a: int, b: float, c: str, d: bool, e: bytes, f: xmlrpc.client.Binary,
              g: datetime.datetime, h: list[int], i: dict[str, int], j: tuple[int, ...],
              k: Any, m: int | None, *rest: int) -> dict[str, Any]:
        return {}

    def partly(a, b: int):  # type: ignore[no-untyped-def]
        return a

    assert signature_of(typed) == [["struct", "int", "double", "string", "boolean",
                                    "base64", "base64", "dateTime.iso8601", "array",
                                    "struct", "array", "undef", "undef"]]
    assert signature_of(partly) == [["undef", "undef", "int"]]
    assert signature_of(len) == "signatures not supported"
    assert xmlrpc_type_name("list[int]") == "array"
    assert xmlrpc_type_name("Unknown") == "undef"


def test_twisted_style_signature_and_help_attributes_win() -> None:
    def f(x: int) -> int:
        """Docstring."""
        return x

    f.signature = [["string", "string"]]  # type: ignore[attr-defined]
    f.help = "Declared help."  # type: ignore[attr-defined]
    rpc = XMLRPC()
    rpc.register_function(f)
    addIntrospection(rpc)
    assert rpc.lookupProcedure("system.methodSignature")("f") == [["string", "string"]]
    assert rpc.lookupProcedure("system.methodHelp")("f") == "Declared help."


def test_twisted_names() -> None:
    service = Service(clock=None)
    assert service.getSubHandlerPrefixes() == ["math"]
    assert isinstance(service.getSubHandler("math"), MathHandler)
    assert service.getSubHandler("nope") is None
    assert "add" in service.listProcedures() and "wait" in service.listProcedures()
    assert service.lookupProcedure("math.add")(1, 1) == 2
    with pytest.raises(Fault) as info:
        service.lookupProcedure("math.nope")
    assert info.value.faultCode == XMLRPC.NOT_FOUND == 8001
    assert XMLRPC.FAILURE == 8002

    rpc = XMLRPC()

    @rpc.register_function(name="renamed")
    def original() -> int:
        return 1

    assert rpc.lookupProcedure("renamed") is original
    assert "original" not in rpc.funcs


def test_argument_check_counts_like_signature_bind() -> None:
    # The cached counts decide; Signature.bind only words the error.
    from protocols.xmlrpc.server import _check_arguments

    def two(a: int, b: int) -> None: ...
    def defaults(a: int, b: int = 1, /) -> None: ...
    def star(a: int, *rest: int) -> None: ...
    def keyword_needed(a: int, *, k: int) -> None: ...
    def keyword_optional(a: int, *, k: int = 0, **extra: int) -> None: ...

    class Holder:
        def method(self, a: int) -> None: ...

    cases: list[tuple[Callable[..., Any], tuple[int, ...], bool]] = [
        (two, (1, 2), True), (two, (1,), False), (two, (1, 2, 3), False),
        (defaults, (1,), True), (defaults, (1, 2), True), (defaults, (), False),
        (defaults, (1, 2, 3), False),
        (star, (1,), True), (star, (1, 2, 3, 4), True), (star, (), False),
        (keyword_needed, (1,), False),
        (keyword_optional, (1,), True), (keyword_optional, (1, 2), False),
        (Holder().method, (1,), True), (Holder().method, (), False),
        (Holder().method, (1, 2), False),
    ]
    for function, params, fits in cases * 2:  # the second round uses the cache
        if fits:
            _check_arguments(function, params)
        else:
            with pytest.raises(TypeError):
                _check_arguments(function, params)
