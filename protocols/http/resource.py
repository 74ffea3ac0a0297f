"""The Twisted-style resource tree: ``Resource``, traversal and error pages.

A site is a tree of :class:`Resource` objects. The server (not this module)
splits the request path into segments, stores them in ``request.postpath``,
calls :func:`getChildForRequest` to find the resource that owns the request,
and then calls that resource's :meth:`Resource.render`.

This module imports nothing from the server: it only needs the handful of
request fields described by :class:`IRequest`, so it can be tested (and
reused) with any object that has them.

What ``render`` may return, and who deals with it::

    bytes                     the whole body; the server writes it and finishes
    NOT_DONE_YET              the resource writes and finishes the request later
    Deferred[bytes]           the server waits for it, then treats it as bytes
    coroutine (async def)     the server runs it with ensureDeferred, then as above

``render`` itself never waits: it hands back whatever the ``render_<METHOD>``
method returned, so an ``async def render_GET`` comes back as a coroutine.

Example:
    >>> class Hello(Resource):
    ...     isLeaf = True
    ...     def render_GET(self, request: IRequest) -> bytes:
    ...         return b"hello"
    >>> root = Resource()
    >>> root.putChild(b"hello", Hello())
    >>> root.getStaticEntity(b"hello").isLeaf
    True
"""

from __future__ import annotations

import enum
import html
from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol, TypeAlias

if TYPE_CHECKING:
    from deferred import Deferred

__all__ = [
    "NOT_DONE_YET",
    "ErrorPage",
    "ForbiddenResource",
    "IRequest",
    "IResource",
    "NoResource",
    "RenderResult",
    "Resource",
    "computeAllowedMethods",
    "getChildForRequest",
]


class _NotDoneYet(enum.IntEnum):
    """Type of the :data:`NOT_DONE_YET` marker.

    An ``IntEnum`` equal to 1, Twisted's value, so old code comparing with
    ``== 1`` keeps working, while mypy can still tell it apart from bytes.
    """

    NOT_DONE_YET = 1


NOT_DONE_YET: Final = _NotDoneYet.NOT_DONE_YET
"""Returned by ``render`` when the resource will write and finish the request itself."""

RenderResult: TypeAlias = (
    "bytes | Literal[_NotDoneYet.NOT_DONE_YET] | Deferred[Any] | Coroutine[Any, Any, Any]"
)
"""Everything a render method may return; the server interprets each kind."""


class IRequest(Protocol):
    """The part of a request that resources in this module use.

    The server's ``Request`` provides much more; anything with these members
    (such as a test double) can be traversed and rendered.
    """

    method: bytes
    prepath: list[bytes]
    postpath: list[bytes]

    def setResponseCode(self, code: int, message: bytes | None = None) -> None:
        """Set the status code (and optionally the reason phrase)."""

    def setHeader(self, name: bytes, value: bytes) -> None:
        """Set a response header, replacing any previous value."""


class IResource(Protocol):
    """What traversal and rendering need from a node of the tree."""

    isLeaf: bool

    def getChildWithDefault(self, path: bytes, request: IRequest) -> IResource:
        """Return the child for one path segment (explicit children first)."""

    def putChild(self, path: bytes, child: IResource) -> None:
        """Register ``child`` under the path segment ``path``."""

    def render(self, request: IRequest) -> RenderResult:
        """Produce the response body, or promise to produce it later."""


def getChildForRequest(resource: IResource, request: IRequest) -> IResource:
    """Walk ``request.postpath`` from ``resource`` down to the resource to render.

    Each segment consumed moves from ``postpath`` to ``prepath``, so a leaf
    resource sees what is left of the path in ``postpath``. A trailing slash
    is an empty last segment (``b""``), looked up like any other name, which
    is how ``/dir/`` and ``/dir`` reach different resources.

    Example:
        >>> root = Resource()
        >>> root.putChild(b"a", Resource())
        >>> # with request.postpath == [b"a", b""] the walk visits b"a", then b"".
    """
    # Segments move one at a time so that getChild implementations see an
    # accurate prepath/postpath for the segment being resolved.
    while request.postpath and not resource.isLeaf:
        segment = request.postpath.pop(0)
        request.prepath.append(segment)
        resource = resource.getChildWithDefault(segment, request)
    return resource


def computeAllowedMethods(resource: object) -> list[bytes]:
    """List the methods ``resource`` can render, from its ``render_*`` methods.

    ``HEAD`` is included whenever ``GET`` is, because :meth:`Resource.render`
    answers HEAD with ``render_GET`` when there is no ``render_HEAD``.

    Example:
        >>> class R(Resource):
        ...     def render_POST(self, request: IRequest) -> bytes:
        ...         return b""
        ...     def render_GET(self, request: IRequest) -> bytes:
        ...         return b""
        >>> computeAllowedMethods(R())
        [b'GET', b'HEAD', b'POST']
    """
    methods: set[bytes] = set()
    for name in dir(type(resource)):
        if not name.startswith("render_") or len(name) == len("render_"):
            continue
        if not callable(getattr(type(resource), name, None)):
            continue
        try:
            methods.add(name[len("render_") :].encode("ascii"))
        except UnicodeEncodeError:
            # A method name that can't go on the wire can't be requested either.
            continue
    if b"GET" in methods:
        methods.add(b"HEAD")
    return sorted(methods)


class Resource:
    """A node of the resource tree; subclass it and add ``render_<METHOD>`` methods.

    Attributes:
        isLeaf: When true, traversal stops here and the rest of the path is
            left in ``request.postpath`` for this resource to interpret.
        children: Explicit children by path segment (bytes), set by
            :meth:`putChild`; they take precedence over :meth:`getChild`.
        allowedMethods: When set, the methods advertised in the ``Allow``
            header of a 405; when ``None``, computed from ``render_*`` methods.

    What the server reads from the resource a request is for, as soon as the
    request head arrives (before any body byte):

    Attributes:
        maxBodySize: The largest request body accepted (413 above it), or
            None for the site's ``max_body``.
        streamRequestBody: Render before the body arrives and read it with
            ``request.iterBody()``/``deliverBody`` (see ``protocols.http.body``).
        parseForms: Parse urlencoded/multipart bodies into ``request.args``
            and ``request.files`` (True).
        requestHeadReceived: None, or a method ``(request) -> None`` that may
            call ``request.refuse(code)`` to answer without reading the body.

    Example:
        >>> class Greeting(Resource):
        ...     isLeaf = True
        ...     async def render_GET(self, request: IRequest) -> bytes:
        ...         return b"hi"
        >>> root = Resource()
        >>> root.putChild(b"greet", Greeting())
    """

    isLeaf: bool = False
    allowedMethods: Sequence[bytes] | None = None
    maxBodySize: int | None = None
    streamRequestBody: bool = False
    parseForms: bool = True
    requestHeadReceived: Callable[[Any], None] | None = None

    def __init__(self) -> None:
        self.children: dict[bytes, IResource] = {}

    def putChild(self, path: bytes, child: IResource) -> None:
        """Register ``child`` under the path segment ``path``.

        Raises:
            TypeError: If ``path`` is not bytes. Paths on the wire are bytes,
                so a str key would silently never match.

        Example:
            >>> Resource().putChild(b"", Resource())  # the "/" of a directory
        """
        if not isinstance(path, bytes):
            raise TypeError(f"path segment must be bytes, not {type(path).__name__}: {path!r}")
        self.children[path] = child

    def getStaticEntity(self, name: bytes) -> IResource | None:
        """Return the explicit child registered as ``name``, or ``None``."""
        return self.children.get(name)

    def getChild(self, path: bytes, request: IRequest) -> IResource:
        """Return a child computed on the fly; override for dynamic children.

        Called only for names that are not in :attr:`children`. The default
        answers every name with a 404 page.

        Example:
            >>> class Users(Resource):
            ...     def getChild(self, path: bytes, request: IRequest) -> IResource:
            ...         return ErrorPage(200, "User", path.decode("utf-8", "replace"))
        """
        return NoResource()

    def getChildWithDefault(self, path: bytes, request: IRequest) -> IResource:
        """Return the explicit child ``path`` if there is one, else :meth:`getChild`."""
        child = self.children.get(path)
        if child is not None:
            return child
        return self.getChild(path, request)

    def getChildForRequest(self, request: IRequest) -> IResource:
        """Traverse from this resource; see :func:`getChildForRequest`."""
        return getChildForRequest(self, request)

    def render(self, request: IRequest) -> RenderResult:
        """Dispatch to ``render_<METHOD>`` and return its result unchanged.

        ``HEAD`` falls back to ``render_GET`` (the server drops the body). A
        method with no ``render_`` method gets ``405 Method Not Allowed`` with
        an ``Allow`` header, rendered here rather than raised so the server
        needs no special case.

        Example:
            >>> class Echo(Resource):
            ...     def render_POST(self, request: IRequest) -> bytes:
            ...         return b"posted"
        """
        # The usual case inline (a method seen before, with its render_
        # method defined): one call less per request.
        attribute = _RENDER_NAMES.get(request.method)
        if attribute is not None:
            found = getattr(self, attribute, None)
            if found is not None and callable(found):
                return found(request)  # type: ignore[no-any-return]
        handler = self._findRenderMethod(request.method)
        if handler is None:
            return self._methodNotAllowed(request)
        return handler(request)

    def _findRenderMethod(self, method: bytes) -> Callable[[IRequest], RenderResult] | None:
        attribute = _RENDER_NAMES.get(method)
        if attribute is None:
            attribute = _render_name(method)
            if attribute is None:
                return None
        handler: Callable[[IRequest], RenderResult] | None = getattr(self, attribute, None)
        if handler is None and attribute == "render_HEAD":
            handler = getattr(self, "render_GET", None)
        # No typing.cast here: it is a function call, on every request.
        return handler if callable(handler) else None

    def _methodNotAllowed(self, request: IRequest) -> bytes:
        if self.allowedMethods is not None:
            allowed = sorted(set(self.allowedMethods))
        else:
            allowed = computeAllowedMethods(self)
        request.setHeader(b"Allow", b", ".join(allowed))
        page = ErrorPage(
            405,
            "Method Not Allowed",
            "This resource does not support the request method.",
        )
        return page.render(request)


def _render_name(method: bytes) -> str | None:
    """``"render_" + method`` for a real method token, else None (remembered)."""
    try:
        name = method.decode("ascii")
    except UnicodeDecodeError:
        return None
    # Only real method tokens: this keeps getattr from reaching anything
    # other than a render_ attribute chosen by the resource's author.
    if not name or not all(c.isalnum() or c in "-_" for c in name):
        return None
    attribute = "render_" + name
    if len(_RENDER_NAMES) < 256:  # bounded: methods are the client's choice
        _RENDER_NAMES[method] = attribute
    return attribute


_RENDER_NAMES: dict[bytes, str] = {}

_PAGE_TEMPLATE: Final = (
    "<!DOCTYPE html>\n"
    "<html>\n"
    '<head><meta charset="utf-8"><title>{code} - {brief}</title></head>\n'
    "<body>\n<h1>{brief}</h1>\n<p>{detail}</p>\n</body>\n"
    "</html>\n"
)


class ErrorPage(Resource):
    """A small HTML page with a status code, for any method and any sub-path.

    ``brief`` and ``detail`` are escaped, so text that came from a request
    (a path, a header) cannot inject markup. Keep internals (exceptions,
    file paths) out of them: the page is sent to the client.

    Example:
        >>> page = ErrorPage(410, "Gone", "This page was removed.")
    """

    def __init__(self, status: int, brief: str, detail: str) -> None:
        super().__init__()
        self.code = status
        self.brief = brief
        self.detail = detail

    def render(self, request: IRequest) -> bytes:
        """Set the status and content type and return the page."""
        request.setResponseCode(self.code)
        request.setHeader(b"Content-Type", b"text/html; charset=utf-8")
        page = _PAGE_TEMPLATE.format(
            code=self.code,
            brief=html.escape(self.brief),
            detail=html.escape(self.detail),
        )
        return page.encode("utf-8")

    def getChild(self, path: bytes, request: IRequest) -> IResource:
        """Every child of an error page is the same error page, as in Twisted."""
        return self


class NoResource(ErrorPage):
    """A 404 page. It does not repeat the requested path back to the client.

    Example:
        >>> NoResource().code
        404
    """

    def __init__(self, message: str = "Sorry. No luck finding that resource.") -> None:
        super().__init__(404, "No Such Resource", message)


class ForbiddenResource(ErrorPage):
    """A 403 page.

    Example:
        >>> ForbiddenResource().code
        403
    """

    def __init__(self, message: str = "Sorry, resource is forbidden.") -> None:
        super().__init__(403, "Forbidden Resource", message)
