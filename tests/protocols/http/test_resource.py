"""Tests for protocols.http.resource: traversal, render dispatch, error pages."""

from __future__ import annotations

import doctest
import inspect
from typing import Any

import pytest

import protocols.http.resource as resource_module
from deferred import Deferred, ensureDeferred
from protocols.http.resource import (
    NOT_DONE_YET,
    ErrorPage,
    ForbiddenResource,
    IRequest,
    IResource,
    NoResource,
    Resource,
    computeAllowedMethods,
    getChildForRequest,
)


class FakeRequest:
    """Just the fields resource.py needs, recording what the resource sets."""

    def __init__(self, method: bytes = b"GET", path: list[bytes] | None = None) -> None:
        self.method = method
        self.prepath: list[bytes] = []
        self.postpath: list[bytes] = list(path or [])
        self.code: int | None = None
        self.message: bytes | None = None
        self.headers: dict[bytes, bytes] = {}

    def setResponseCode(self, code: int, message: bytes | None = None) -> None:
        self.code = code
        self.message = message

    def setHeader(self, name: bytes, value: bytes) -> None:
        self.headers[name] = value


def request_for(path: bytes, method: bytes = b"GET") -> FakeRequest:
    """A request whose postpath is what the server would make of ``path``."""
    return FakeRequest(method, path.split(b"/")[1:])


class Text(Resource):
    """A resource answering GET with a fixed body."""

    def __init__(self, body: bytes) -> None:
        super().__init__()
        self.body = body

    def render_GET(self, request: IRequest) -> bytes:
        return self.body


class Leaf(Text):
    isLeaf = True


class GetPost(Resource):
    def render_GET(self, request: IRequest) -> bytes:
        return b"get"

    def render_POST(self, request: IRequest) -> bytes:
        return b"post"


def test_request_double_satisfies_protocol() -> None:
    request: IRequest = FakeRequest()
    assert request.method == b"GET"


def test_child_lookup_moves_segments_to_prepath() -> None:
    root = Resource()
    a = Resource()
    b = Text(b"b")
    root.putChild(b"a", a)
    a.putChild(b"b", b)
    request = request_for(b"/a/b")
    assert getChildForRequest(root, request) is b
    assert request.prepath == [b"a", b"b"]
    assert request.postpath == []


def test_method_form_of_getChildForRequest() -> None:
    root = Resource()
    child = Text(b"x")
    root.putChild(b"x", child)
    assert root.getChildForRequest(request_for(b"/x")) is child


def test_putChild_takes_precedence_over_getChild() -> None:
    explicit = Text(b"explicit")
    dynamic = Text(b"dynamic")

    class Dynamic(Resource):
        def getChild(self, path: bytes, request: IRequest) -> IResource:
            return dynamic

    root = Dynamic()
    root.putChild(b"fixed", explicit)
    assert getChildForRequest(root, request_for(b"/fixed")) is explicit
    assert getChildForRequest(root, request_for(b"/other")) is dynamic
    assert root.getStaticEntity(b"fixed") is explicit
    assert root.getStaticEntity(b"other") is None


def test_getChild_override_sees_segment_and_request() -> None:
    seen: list[tuple[bytes, list[bytes], list[bytes]]] = []

    class Users(Resource):
        def getChild(self, path: bytes, request: IRequest) -> IResource:
            seen.append((path, list(request.prepath), list(request.postpath)))
            return Leaf(b"user " + path)

    root = Resource()
    root.putChild(b"users", Users())
    request = request_for(b"/users/alice/photos")
    found = getChildForRequest(root, request)
    assert isinstance(found, Leaf)
    assert found.body == b"user alice"
    assert seen == [(b"alice", [b"users", b"alice"], [b"photos"])]


def test_isLeaf_stops_traversal() -> None:
    root = Resource()
    leaf = Leaf(b"leaf")
    root.putChild(b"app", leaf)
    request = request_for(b"/app/x/y")
    assert getChildForRequest(root, request) is leaf
    assert request.prepath == [b"app"]
    assert request.postpath == [b"x", b"y"]


def test_leaf_root_consumes_nothing() -> None:
    leaf = Leaf(b"all")
    request = request_for(b"/a/b")
    assert getChildForRequest(leaf, request) is leaf
    assert request.prepath == []
    assert request.postpath == [b"a", b"b"]


def test_trailing_slash_is_an_empty_segment() -> None:
    root = Resource()
    directory = Resource()
    index = Text(b"index")
    root.putChild(b"dir", directory)
    directory.putChild(b"", index)

    with_slash = request_for(b"/dir/")
    assert getChildForRequest(root, with_slash) is index
    assert with_slash.prepath == [b"dir", b""]

    without_slash = request_for(b"/dir")
    assert getChildForRequest(root, without_slash) is directory


def test_root_slash_maps_to_empty_child() -> None:
    root = Resource()
    home = Text(b"home")
    root.putChild(b"", home)
    assert getChildForRequest(root, request_for(b"/")) is home


def test_missing_child_is_404() -> None:
    root = Resource()
    request = request_for(b"/nope/deeper")
    found = getChildForRequest(root, request)
    assert isinstance(found, NoResource)
    # An error page swallows the rest of the path, as Twisted's does.
    assert request.postpath == []
    body = found.render(request)
    assert request.code == 404
    assert request.headers[b"Content-Type"] == b"text/html; charset=utf-8"
    assert isinstance(body, bytes)
    assert b"No Such Resource" in body


def test_forbidden_resource() -> None:
    request = FakeRequest()
    body = ForbiddenResource().render(request)
    assert request.code == 403
    assert b"Forbidden" in body


def test_render_dispatches_on_method() -> None:
    resource = GetPost()
    assert resource.render(FakeRequest(b"GET")) == b"get"
    assert resource.render(FakeRequest(b"POST")) == b"post"


def test_head_falls_back_to_get() -> None:
    request = FakeRequest(b"HEAD")
    assert GetPost().render(request) == b"get"
    assert request.code is None


def test_explicit_render_HEAD_wins() -> None:
    class WithHead(GetPost):
        def render_HEAD(self, request: IRequest) -> bytes:
            return b"head"

    assert WithHead().render(FakeRequest(b"HEAD")) == b"head"


def test_missing_method_is_405_with_sorted_allow() -> None:
    request = FakeRequest(b"DELETE")
    body = GetPost().render(request)
    assert request.code == 405
    assert request.headers[b"Allow"] == b"GET, HEAD, POST"
    assert isinstance(body, bytes)
    assert b"Method Not Allowed" in body


def test_405_without_get_has_no_head() -> None:
    class PostOnly(Resource):
        def render_PUT(self, request: IRequest) -> bytes:
            return b""

        def render_POST(self, request: IRequest) -> bytes:
            return b""

    request = FakeRequest(b"GET")
    PostOnly().render(request)
    assert request.code == 405
    assert request.headers[b"Allow"] == b"POST, PUT"
    assert computeAllowedMethods(PostOnly()) == [b"POST", b"PUT"]
    head = FakeRequest(b"HEAD")
    PostOnly().render(head)
    assert head.code == 405


def test_plain_resource_allows_nothing() -> None:
    request = FakeRequest(b"GET")
    Resource().render(request)
    assert request.code == 405
    assert request.headers[b"Allow"] == b""


def test_explicit_allowedMethods_is_advertised() -> None:
    class Declared(GetPost):
        allowedMethods = (b"POST", b"GET")

    request = FakeRequest(b"PATCH")
    Declared().render(request)
    assert request.headers[b"Allow"] == b"GET, POST"


@pytest.mark.parametrize("method", [b"get", b"__class__", b"GET.x", b"", b"\xff", b"render_GET"])
def test_odd_methods_are_405(method: bytes) -> None:
    request = FakeRequest(method)
    GetPost().render(request)
    assert request.code == 405


def test_not_done_yet_is_returned_unchanged() -> None:
    class Later(Resource):
        def render_GET(self, request: IRequest) -> Any:
            return NOT_DONE_YET

    assert Later().render(FakeRequest()) is NOT_DONE_YET
    # Twisted's value, for code that compares with the number.
    assert int(NOT_DONE_YET) == 1


def test_deferred_is_returned_unchanged() -> None:
    d: Deferred[bytes] = Deferred()

    class Deferring(Resource):
        def render_GET(self, request: IRequest) -> Deferred[bytes]:
            return d

    assert Deferring().render(FakeRequest()) is d


def test_async_render_returns_coroutine() -> None:
    class Async(Resource):
        async def render_GET(self, request: IRequest) -> bytes:
            request.setHeader(b"X-Async", b"yes")
            return b"async body"

    request = FakeRequest()
    result = Async().render(request)
    assert inspect.iscoroutine(result)
    # Nothing ran yet: render does not drive the coroutine.
    assert request.headers == {}
    results: list[bytes] = []
    ensureDeferred(result).addCallback(results.append)
    assert results == [b"async body"]
    assert request.headers == {b"X-Async": b"yes"}


def test_async_head_falls_back_to_async_get() -> None:
    class Async(Resource):
        async def render_GET(self, request: IRequest) -> bytes:
            return b"async"

    result = Async().render(FakeRequest(b"HEAD"))
    assert inspect.iscoroutine(result)
    results: list[bytes] = []
    ensureDeferred(result).addCallback(results.append)
    assert results == [b"async"]


def test_error_page_escapes_html() -> None:
    request = FakeRequest()
    body = ErrorPage(500, "<b>bold</b>", "<script>alert('x')</script> & more").render(request)
    assert request.code == 500
    assert b"<script>" not in body
    assert b"<b>" not in body
    assert b"&lt;script&gt;" in body
    assert b"&amp; more" in body


def test_missing_child_name_is_not_reflected() -> None:
    root = Resource()
    request = FakeRequest(b"GET", [b"<script>alert(1)</script>"])
    found = getChildForRequest(root, request)
    body = found.render(request)
    assert isinstance(body, bytes)
    assert request.code == 404
    assert b"<script>" not in body
    assert b"alert(1)" not in body


def test_error_page_any_method() -> None:
    request = FakeRequest(b"DELETE")
    NoResource().render(request)
    assert request.code == 404


def test_putChild_with_str_raises_TypeError() -> None:
    root = Resource()
    with pytest.raises(TypeError, match="bytes"):
        root.putChild("child", Resource())  # type: ignore[arg-type]
    assert root.children == {}


def test_children_are_per_instance() -> None:
    first, second = Resource(), Resource()
    first.putChild(b"x", Resource())
    assert second.children == {}


def test_docstring_examples() -> None:
    failures, tried = doctest.testmod(resource_module)
    assert tried > 0
    assert failures == 0
