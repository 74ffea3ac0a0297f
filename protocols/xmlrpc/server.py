"""XML-RPC server: the :class:`XMLRPC` resource and :class:`SimpleXMLRPCServer`.

Twisted style (mount it anywhere in a :class:`~protocols.http.Site`)::

    class Calculator(XMLRPC):
        def xmlrpc_add(self, a: int, b: int) -> int:
            "Add two integers."
            return a + b

        async def xmlrpc_slow(self) -> str:
            await deferLater(reactor, 1.0, lambda: None)
            return "done"

    root.putChild(b"RPC2", Calculator())

Standard-library style (the classic program, only its import changed)::

    from protocols.xmlrpc.server import SimpleXMLRPCServer

    server = SimpleXMLRPCServer(("localhost", 8000))
    server.register_function(is_even, "is_even")
    server.serve_forever()

A procedure may return a value, a Deferred, or be ``async def``: while one
call waits, others are served. Names are looked up in this order: functions
given to ``register_function`` (and ``system.*``), sub-handlers for dotted
names (``putSubHandler("math", handler)`` serves ``math.add``), ``xmlrpc_*``
methods, then the instance given to ``register_instance``.

Fault codes (Twisted's codes for unknown and failed procedures, so Twisted
clients keep working; the fault code interoperability specification for the
rest):

=======  =================================================================
code     when
=======  =================================================================
any      a procedure raised ``Fault(code, string)``: sent as it is
8001     no procedure of that name (``NOT_FOUND``)
8002     the procedure raised anything else, or returned something that
         cannot be marshalled (``FAILURE``); the string says nothing of
         the exception, which is logged with its traceback
-32700   the body is not well formed XML, or is refused: a DTD or entity
         declaration, values nested deeper than ``limits.max_depth``
         (``PARSE_ERROR``)
-32701   a ``Content-Encoding`` other than gzip, deflate or identity
         (``UNSUPPORTED_ENCODING``)
-32600   well formed, but not an XML-RPC call (``INVALID_XMLRPC``)
-32602   wrong number of parameters for the procedure (``INVALID_PARAMS``)
=======  =================================================================

HTTP-level refusals (no fault: the call was never read):

=======  =================================================================
405      any method but POST (with ``Allow: POST``)
413      a body larger than ``maxBodySize``, or a gzip/deflate body that
         inflates beyond ``limits.max_decompressed`` (a "zip bomb")
415      a ``Content-Type`` other than ``text/xml`` or ``application/xml``
         (also when there is none)
=======  =================================================================
"""

from __future__ import annotations

import functools
import gzip
import inspect
import logging
import socket
import sys
import weakref
import xmlrpc.client
from collections.abc import Awaitable, Callable
from typing import Any, Final, NamedTuple, TypeVar

from deferred import Deferred
from protocols.http.resource import ErrorPage, Resource
from protocols.http.server import Site

from ._introspection import help_of, signature_of
from ._marshal import (
    FAILURE,
    INVALID_PARAMS,
    INVALID_XMLRPC,
    NOT_FOUND,
    Fault,
    MarshalError,
    PayloadTooLarge,
    XMLRPCLimits,
    decompress,
    dumps_fault,
    dumps_response,
    loads_request,
)

__all__ = [
    "XMLRPC",
    "NoSuchFunction",
    "SimpleXMLRPCRequestHandler",
    "SimpleXMLRPCServer",
    "addIntrospection",
    "withRequest",
]

log = logging.getLogger("protocols.xmlrpc")

_F = TypeVar("_F", bound=Callable[..., Any])

_XML_TYPES: Final = frozenset({b"text/xml", b"application/xml"})


class NoSuchFunction(Fault):
    """No procedure by that name (fault code 8001), as Twisted's ``NoSuchFunction``."""


def withRequest(f: _F) -> _F:
    """Decorate a procedure to receive the HTTP request as its first argument.

    Example:
        >>> class Echo(XMLRPC):
        ...     @withRequest
        ...     def xmlrpc_peer(self, request: Any) -> str:
        ...         return str(request.getClientAddress())
    """
    f.withRequest = True  # type: ignore[attr-defined]
    return f


class XMLRPC(Resource):
    """A resource answering XML-RPC calls POSTed to it.

    Args:
        allowNone: Marshal None as ``<nil/>`` in results (else a None result
            is a fault 8002, as in the stdlib).
        useDateTime: Give procedures ``datetime.datetime`` for
            ``dateTime.iso8601`` values (else ``xmlrpc.client.DateTime``).
        useBuiltinTypes: Also give ``bytes`` for ``base64`` (else ``Binary``).
        encoding: The response's character encoding (UTF-8 by default).
        limits: Body, inflated-body and nesting limits; ``maxBodySize`` is
            set from ``limits.max_body``.

    Attributes:
        NOT_FOUND: Fault code for an unknown procedure (8001).
        FAILURE: Fault code for an unexpected failure (8002).
        separator: Separates a sub-handler prefix from the rest of a name.
        encodeThreshold: Responses larger than this many bytes are gzipped
            for clients that send ``Accept-Encoding: gzip`` (the stdlib's
            ``encode_threshold``); None never compresses.
        funcs: Procedures registered by name (``register_function``).

    Example:
        >>> rpc = XMLRPC(allowNone=True)
        >>> @rpc.register_function
        ... def is_even(n: int) -> bool:
        ...     return n % 2 == 0
        >>> rpc.lookupProcedure("is_even")(4)
        True
    """

    isLeaf = True
    parseForms = False  # an XML body is never a form
    NOT_FOUND: Final = NOT_FOUND
    FAILURE: Final = FAILURE
    separator = "."
    encodeThreshold: int | None = 1400

    def __init__(self, allowNone: bool = False, useDateTime: bool = False, *,
                 useBuiltinTypes: bool = False, encoding: str | None = None,
                 limits: XMLRPCLimits | None = None) -> None:
        super().__init__()
        self.allowNone = allowNone
        self.useDateTime = useDateTime
        self.useBuiltinTypes = useBuiltinTypes
        self.encoding = encoding
        self.limits = limits if limits is not None else XMLRPCLimits()
        # Read by the server as soon as the head arrives: 413 before the body.
        self.maxBodySize = self.limits.max_body
        self.funcs: dict[str, Callable[..., Any]] = {}
        self.subHandlers: dict[str, XMLRPC] = {}
        self._instance: Any = None
        self._allowDottedNames = False
        charset = (encoding or "utf-8").encode("ascii")
        self._contentType = b"text/xml; charset=" + charset

    # -- Twisted's API --------------------------------------------------------------

    def putSubHandler(self, prefix: str, handler: XMLRPC) -> None:
        """Serve ``handler``'s procedures as ``prefix.<name>``."""
        self.subHandlers[prefix] = handler

    def getSubHandler(self, prefix: str) -> XMLRPC | None:
        """The sub-handler registered for ``prefix``, or None."""
        return self.subHandlers.get(prefix)

    def getSubHandlerPrefixes(self) -> list[str]:
        """The prefixes that have a sub-handler."""
        return list(self.subHandlers)

    def lookupProcedure(self, procedurePath: str) -> Callable[..., Any]:
        """The callable serving ``procedurePath``.

        Raises:
            NoSuchFunction: No procedure has that name (fault 8001).
        """
        function = self.funcs.get(procedurePath)
        if function is not None:
            return function
        if self.separator in procedurePath:
            prefix, rest = procedurePath.split(self.separator, 1)
            handler = self.getSubHandler(prefix)
            if handler is not None:
                return handler.lookupProcedure(rest)
        else:
            method = getattr(self, "xmlrpc_" + procedurePath, None)
            if callable(method):
                return method  # type: ignore[no-any-return]
        if self._instance is not None:
            found = self._lookupInInstance(procedurePath)
            if found is not None:
                return found
        raise NoSuchFunction(self.NOT_FOUND, f"procedure {procedurePath} not found")

    def listProcedures(self) -> list[str]:
        """The names of this resource's ``xmlrpc_*`` methods (Twisted's meaning)."""
        names = []
        for attribute in dir(type(self)):
            if attribute.startswith("xmlrpc_") and callable(getattr(self, attribute, None)):
                names.append(attribute[len("xmlrpc_"):])
        return names

    # -- the standard library's API -------------------------------------------------

    def register_function(self, function: Callable[..., Any] | None = None,
                          name: str | None = None) -> Any:
        """Serve ``function`` as ``name`` (its ``__name__`` by default).

        Usable as a decorator, bare or with a name (``@register_function(name="x")``).
        """
        if function is None:
            return functools.partial(self.register_function, name=name)
        self.funcs[name if name is not None else function.__name__] = function
        return function

    def register_instance(self, instance: Any, allow_dotted_names: bool = False) -> None:
        """Serve ``instance``'s public methods (names starting with ``_`` never are).

        As in the stdlib, an instance with a ``_dispatch(method, params)``
        method receives every call that nothing else answered, and
        ``allow_dotted_names`` lets ``a.b`` reach attributes of attributes
        (only for trusted networks: it exposes more than the methods).
        """
        self._instance = instance
        self._allowDottedNames = allow_dotted_names

    def register_introspection_functions(self) -> None:
        """Serve ``system.listMethods``, ``system.methodHelp`` and ``system.methodSignature``."""
        self.funcs["system.listMethods"] = self._listMethods
        self.funcs["system.methodHelp"] = self._methodHelp
        self.funcs["system.methodSignature"] = self._methodSignature

    def register_multicall_functions(self) -> None:
        """Serve ``system.multicall``: several calls in one request."""
        self.funcs["system.multicall"] = self._multicall

    # -- introspection and multicall ------------------------------------------------

    def _allMethods(self) -> list[str]:
        names = set(self.funcs)
        names.update(self.listProcedures())
        for prefix, handler in self.subHandlers.items():
            names.update(prefix + self.separator + name for name in handler._allMethods())
        instance = self._instance
        if instance is not None:
            listed = getattr(instance, "_listMethods", None)
            if callable(listed):
                names.update(listed())
            elif not hasattr(instance, "_dispatch"):
                names.update(n for n in dir(instance)
                              if not n.startswith("_") and callable(getattr(instance, n, None)))
        return sorted(names)

    def _listMethods(self) -> list[str]:
        """Return the names of every method this server answers."""
        return self._allMethods()

    def _methodHelp(self, method: str) -> str:
        """Return the help text (docstring) of a method."""
        instance = self._instance
        if method not in self.funcs and instance is not None \
                and callable(getattr(instance, "_methodHelp", None)):
            return str(instance._methodHelp(method))
        return help_of(self.lookupProcedure(method))

    def _methodSignature(self, method: str) -> list[list[str]] | str:
        """Return the signatures of a method: lists of [return type, parameter types...]."""
        return signature_of(self.lookupProcedure(method))

    @withRequest
    async def _multicall(self, request: Any, calls: list[Any]) -> list[Any]:
        """Make several calls; each result is [value] or a fault struct."""
        results: list[Any] = []
        for call in calls:
            try:
                if not isinstance(call, dict) or not isinstance(call.get("methodName"), str) \
                        or not isinstance(call.get("params", []), (list, tuple)):
                    raise Fault(INVALID_XMLRPC, "a call is {'methodName': ..., 'params': [...]}")
                name = call["methodName"]
                if name == "system.multicall":
                    # No recursion: one request must not fan out without bound.
                    raise Fault(INVALID_XMLRPC, "system.multicall cannot be nested")
                value = await _settle(self._call(request, name, tuple(call.get("params", ()))))
                if isinstance(value, Fault):
                    raise value
                # Checked now so that one bad result spoils only its own entry.
                dumps_response(value, self.allowNone)
                results.append([value])
            except Exception as e:
                fault = self._faultFor(e, call)
                results.append({"faultCode": fault.faultCode, "faultString": fault.faultString})
        return results

    # -- HTTP -----------------------------------------------------------------------

    def requestHeadReceived(self, request: Any) -> None:
        """Refuse a POST that is not XML (415) as soon as its head arrives.

        The server calls this before reading the body, so a large upload of
        the wrong kind is never read.
        """
        if request.method == b"POST" and not _is_xml(request.getHeader(b"content-type")):
            request.refuse(415, "Unsupported Media Type", "XML-RPC calls are sent as text/xml.")

    def render_POST(self, request: Any) -> bytes | Any:
        """Read the call, run the procedure, answer with its result or a fault."""
        if not _is_xml(request.getHeader(b"content-type")):
            # Also here for servers (and test doubles) that skip the head hook.
            page = ErrorPage(415, "Unsupported Media Type",
                             "XML-RPC calls are sent as text/xml.")
            return page.render(request)
        body = request.content.read() if request.content is not None else b""
        coding = (request.getHeader(b"content-encoding") or b"").decode("latin-1")
        try:
            body = decompress(body, coding, self.limits)
            params, name = loads_request(body, self.limits, self.useDateTime,
                                         self.useBuiltinTypes)
        except PayloadTooLarge:
            page = ErrorPage(413, "Content Too Large", "The request body is too large.")
            return page.render(request)
        except MarshalError as e:
            request.setHeader(b"Content-Type", self._contentType)
            return dumps_fault(e.toFault(), self.encoding)
        request.setHeader(b"Content-Type", self._contentType)
        try:
            result = self._call(request, name, params)
        except Exception as e:
            return dumps_fault(self._faultFor(e, name), self.encoding)
        if type(result) not in _PLAIN_RESULTS and (
                isinstance(result, Deferred) or inspect.isawaitable(result)):
            return self._later(request, result, name)
        return self._compressed(request, self._marshal(result, name))

    async def _later(self, request: Any, result: Any, name: str) -> bytes:
        try:
            value = await _settle(result)
        except Exception as e:
            return dumps_fault(self._faultFor(e, name), self.encoding)
        return self._compressed(request, self._marshal(value, name))

    def _compressed(self, request: Any, body: bytes) -> bytes:
        """Gzip a large response for a client that accepts it, as the stdlib server does."""
        threshold = self.encodeThreshold
        if threshold is None:
            return body
        request.setHeader(b"Vary", b"Accept-Encoding")
        if len(body) <= threshold or not _accepts_gzip(request.getHeader(b"accept-encoding")):
            return body
        request.setHeader(b"Content-Encoding", b"gzip")
        # Level 5: most of level 9's ratio on XML at a fraction of its time.
        return gzip.compress(body, compresslevel=5)

    def _call(self, request: Any, name: str, params: tuple[Any, ...]) -> Any:
        """Find and call the procedure; raises Fault for unknown names or bad arity."""
        function = self.lookupProcedure(name)
        if getattr(function, "withRequest", False):
            params = (request, *params)
        try:
            _check_arguments(function, params)
        except TypeError as e:
            raise Fault(INVALID_PARAMS, f"invalid parameters for {name}: {e}") from None
        return function(*params)

    def _marshal(self, value: Any, name: str) -> bytes:
        if isinstance(value, Fault):
            # Returning a Fault (rather than raising it) answers with it, as in Twisted.
            return dumps_fault(value, self.encoding)
        try:
            return dumps_response(value, self.allowNone, self.encoding)
        except Exception as e:
            log.error("The result of XML-RPC procedure %r cannot be marshalled",
                      name, exc_info=e)
            return dumps_fault(Fault(self.FAILURE, "the result cannot be marshalled"),
                               self.encoding)

    def _faultFor(self, error: Exception, call: object) -> xmlrpc.client.Fault:
        """The fault to send for ``error``; anything but a Fault is logged, not sent."""
        if isinstance(error, Fault):
            return error
        if isinstance(error, MarshalError):
            return error.toFault()
        log.error("Exception in XML-RPC procedure %r", call, exc_info=error)
        return Fault(self.FAILURE, "error")

    def _lookupInInstance(self, name: str) -> Callable[..., Any] | None:
        instance = self._instance
        dispatch = getattr(instance, "_dispatch", None)
        if callable(dispatch):
            def dispatched(*params: Any) -> Any:
                return dispatch(name, params)
            return dispatched
        parts = name.split(".") if self._allowDottedNames else [name]
        target = instance
        for part in parts:
            # Private attributes are never reachable, dotted or not.
            if part.startswith("_"):
                return None
            target = getattr(target, part, None)
            if target is None:
                return None
        return target if callable(target) else None


def _accepts_gzip(accept: bytes | None) -> bool:
    """Whether an Accept-Encoding value allows gzip (``gzip;q=0`` does not)."""
    for item in (accept or b"").split(b","):
        coding, _, params = item.partition(b";")
        if coding.strip().lower() not in (b"gzip", b"x-gzip"):
            continue
        q = params.strip().lower()
        if q.startswith(b"q="):
            try:
                return float(q[2:]) > 0
            except ValueError:
                return False
        return True
    return False


def _is_xml(content_type: bytes | None) -> bool:
    # Asked twice per call (head hook, render) with one of a few values:
    # remembered, in a bounded dict since the value is the client's.
    known = _IS_XML.get(content_type)
    if known is not None:
        return known
    kind = (content_type or b"").split(b";", 1)[0]
    known = kind.strip().lower() in _XML_TYPES
    if len(_IS_XML) < 64:
        _IS_XML[content_type] = known
    return known


_IS_XML: dict[bytes | None, bool] = {}

# Results that are surely not awaitable: inspect.isawaitable, a handful of
# checks in Python, is skipped for them.
_PLAIN_RESULTS: Final = frozenset({int, str, float, bool, list, dict, tuple, bytes,
                                   type(None)})


class _Arity(NamedTuple):
    """What a signature accepts from positional arguments alone (XML-RPC's only kind)."""

    signature: inspect.Signature
    required: int          # positional parameters without a default
    maximum: int | None    # positional parameters in all; None with *args
    keyword_required: bool  # a keyword-only parameter without a default


def _arity(signature: inspect.Signature) -> _Arity:
    required = 0
    maximum: int | None = 0
    keyword_required = False
    for parameter in signature.parameters.values():
        kind = parameter.kind
        if kind is parameter.VAR_POSITIONAL:
            maximum = None
        elif kind is parameter.KEYWORD_ONLY:
            keyword_required = keyword_required or parameter.default is parameter.empty
        elif kind is not parameter.VAR_KEYWORD:
            if maximum is not None:
                maximum += 1
            if parameter.default is parameter.empty:
                required += 1
    return _Arity(signature, required, maximum, keyword_required)


_SIGNATURES: weakref.WeakKeyDictionary[Any, _Arity | None] = weakref.WeakKeyDictionary()


def _check_arguments(function: Callable[..., Any], params: tuple[Any, ...]) -> None:
    """Raise TypeError if ``function`` cannot take ``params``, without calling it.

    Checked before the call so that a TypeError raised *inside* a procedure
    is a failure (8002), not "bad parameters" (-32602). Signatures are
    cached per function (inspect.signature costs more than a small call),
    with the counts that decide a positional call: ``Signature.bind``, which
    costs several microseconds, runs only to word the error of a call that
    does not fit.
    """
    target = getattr(function, "__func__", None)
    owner = getattr(function, "__self__", None)
    bound = target is not None and owner is not None
    key: Any = target if bound else function
    try:
        arity = _SIGNATURES[key]
    except (KeyError, TypeError):
        try:
            arity = _arity(inspect.signature(key))
        except (TypeError, ValueError):
            arity = None  # some builtins have none: let the call decide
        try:
            _SIGNATURES[key] = arity
        except TypeError:
            pass  # not weakly referenceable (a builtin): computed each time
    if arity is None:
        return
    count = len(params) + 1 if bound else len(params)
    if (count < arity.required or (arity.maximum is not None and count > arity.maximum)
            or arity.keyword_required):
        arity.signature.bind(*((owner, *params) if bound else params))


async def _settle(result: Any) -> Any:
    """Wait for a Deferred or awaitable, and for whatever it resolves to."""
    while isinstance(result, Deferred) or inspect.isawaitable(result):
        result = await _as_awaitable(result)
    return result


def _as_awaitable(result: Deferred[Any] | Awaitable[Any]) -> Awaitable[Any]:
    return result


def addIntrospection(xmlrpc: XMLRPC) -> None:
    """Add ``system.listMethods``, ``methodHelp`` and ``methodSignature`` (Twisted's name)."""
    xmlrpc.register_introspection_functions()


class SimpleXMLRPCRequestHandler:
    """Stands in for the stdlib's request handler: only its settings are read.

    Subclass it to change the settings, as with the stdlib::

        class RequestHandler(SimpleXMLRPCRequestHandler):
            rpc_paths = ("/RPC2",)

        server = SimpleXMLRPCServer(("localhost", 8000), requestHandler=RequestHandler)

    Attributes:
        rpc_paths: The URL paths answered (others get 404).
        encode_threshold: Gzip responses larger than this for clients that
            accept it; None never compresses.
    """

    rpc_paths: tuple[str, ...] = ("/", "/RPC2")
    encode_threshold: int | None = 1400


class SimpleXMLRPCServer:
    """The stdlib's ``xmlrpc.server.SimpleXMLRPCServer``, served by the reactor.

    Takes the stdlib constructor's arguments; the address is bound at once
    (unless ``bind_and_activate`` is false: then :meth:`server_bind` and
    :meth:`server_activate` do it), and :meth:`serve_forever` runs the
    reactor. Calls are answered on the paths of ``requestHandler.rpc_paths``
    (``/`` and ``/RPC2`` by default, as in the stdlib).

    Args:
        addr: ``(host, port)``; port 0 picks a free port, see :attr:`server_address`.
        requestHandler: Only its ``rpc_paths`` and ``encode_threshold``
            attributes are used (a stdlib ``SimpleXMLRPCRequestHandler``
            subclass keeps its meaning for those).
        logRequests: Log each request (Combined Log Format) to stderr.
        allow_none: Marshal None as ``<nil/>``.
        encoding: The response's character encoding.
        bind_and_activate: Listen now.
        use_builtin_types: ``bytes`` and ``datetime`` for base64 and dates.
        reactor: The reactor to use (the installed one by default).

    Example:
        >>> server = SimpleXMLRPCServer(("127.0.0.1", 0), logRequests=False)
        >>> server.register_function(pow)
        <built-in function pow>
        >>> server.server_address[1] > 0
        True
        >>> server.server_close()
    """

    rpc_paths: tuple[str, ...] = ("/", "/RPC2")

    def __init__(self, addr: tuple[str, int], requestHandler: Any = None,
                 logRequests: bool = True, allow_none: bool = False,
                 encoding: str | None = None, bind_and_activate: bool = True,
                 use_builtin_types: bool = False, *, reactor: Any = None) -> None:
        if reactor is None:
            import reactor as installed
            reactor = installed
        self.reactor = reactor
        self.logRequests = logRequests
        self.resource = XMLRPC(allowNone=allow_none, useDateTime=use_builtin_types,
                               useBuiltinTypes=use_builtin_types, encoding=encoding)
        paths = getattr(requestHandler, "rpc_paths", None) or self.rpc_paths
        if requestHandler is not None and hasattr(requestHandler, "encode_threshold"):
            self.resource.encodeThreshold = requestHandler.encode_threshold
        root = Resource()
        for path in paths:
            # "/" is the empty first segment; "/RPC2" the segment "RPC2".
            root.putChild(path.strip("/").encode("utf-8"), self.resource)
        self.site = Site(root)
        self.server_address: tuple[Any, ...] = tuple(addr)
        self.port: Any = None
        if logRequests:
            _log_requests_to_stderr()
        if bind_and_activate:
            self.server_bind()
            self.server_activate()

    # -- what the stdlib's dispatcher offers ----------------------------------------

    @property
    def funcs(self) -> dict[str, Callable[..., Any]]:
        """Procedures registered by name."""
        return self.resource.funcs

    def register_function(self, function: Callable[..., Any] | None = None,
                          name: str | None = None) -> Any:
        """See :meth:`XMLRPC.register_function` (also a decorator)."""
        return self.resource.register_function(function, name)

    def register_instance(self, instance: Any, allow_dotted_names: bool = False) -> None:
        """See :meth:`XMLRPC.register_instance`."""
        self.resource.register_instance(instance, allow_dotted_names)

    def register_introspection_functions(self) -> None:
        """See :meth:`XMLRPC.register_introspection_functions`."""
        self.resource.register_introspection_functions()

    def register_multicall_functions(self) -> None:
        """See :meth:`XMLRPC.register_multicall_functions`."""
        self.resource.register_multicall_functions()

    # -- what the stdlib's socketserver offers --------------------------------------

    def server_bind(self) -> None:
        """Listen on :attr:`server_address` (the stdlib binds here, then listens)."""
        host, number = self.server_address[0], int(self.server_address[1])
        interface = _resolve(host, number)
        self.port = self.reactor.listenTCP(number, self.site, interface=interface)
        address = self.port.getHost()
        self.server_address = (address.host, address.port)

    def server_activate(self) -> None:
        """Nothing left to do: :meth:`server_bind` already listens."""

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        """Run the reactor until :meth:`shutdown` (or a signal) stops it."""
        self.reactor.run()

    def shutdown(self) -> None:
        """Stop :meth:`serve_forever`; safe to call from any thread."""
        self.reactor.callFromThread(self.reactor.stop)

    def server_close(self) -> None:
        """Stop listening."""
        port, self.port = self.port, None
        if port is not None:
            port.stopListening()

    def __enter__(self) -> SimpleXMLRPCServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server_close()


def _resolve(host: str, number: int) -> str:
    """An address listenTCP accepts for ``host`` ("" stays "": every interface)."""
    if not host:
        return ""
    try:
        infos = socket.getaddrinfo(host, number, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except socket.gaierror:
        return host  # let listenTCP report it as it does for any bad address
    # IPv4 first, as the stdlib's server (AF_INET) would bind "localhost".
    infos.sort(key=lambda info: info[0] != socket.AF_INET)
    return str(infos[0][4][0])


def _log_requests_to_stderr() -> None:
    """Show access lines on stderr, as the stdlib server does, unless logging is set up."""
    access = logging.getLogger("protocols.http.access")
    if access.handlers or logging.getLogger().handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    access.addHandler(handler)
    if access.level == logging.NOTSET or access.level > logging.INFO:
        access.setLevel(logging.INFO)
