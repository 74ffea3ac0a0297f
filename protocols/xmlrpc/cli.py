"""``torsion xmlrpc``: serve a module's functions or an object's methods over XML-RPC.

::

    torsion xmlrpc --app myapp.rpc --port 8000 --interface 127.0.0.1
    torsion xmlrpc --app myapp.rpc:service --port 8000
    torsion xmlrpc --app myapp.rpc:Service --rpc-path /api --allow-none
    torsion xmlrpc --app myapp.rpc:service --listen ssl:8443:certKey=server.pem

``--app MODULE:OBJ`` names what to serve:

- a module (``--app myapp.rpc``, a bare module name): its public functions, those
  whose name does not start with ``_`` and that the module defines itself (a function
  it merely imports is left out, unless its ``__all__`` lists it); ``MODULE:NAME``
  naming a module does the same;
- a class: an instance made with no arguments, then as an object;
- an object: its public methods (callable attributes not starting with ``_``);
- an :class:`~protocols.xmlrpc.server.XMLRPC` resource (or a subclass instance): served
  as it is, so its own ``xmlrpc_`` methods and registrations decide.

Introspection (``system.listMethods``, ``system.methodHelp``,
``system.methodSignature``) and ``system.multicall`` are always on. The service answers
POSTs on ``/`` and ``/RPC2``, as the stdlib's ``SimpleXMLRPCServer`` does, or only on
the paths given with ``--rpc-path`` (repeatable); any other path gets 404. (``--path``
is not used here: in ``torsion web`` it names the directory served.)

The rest of the command line (``--port``, ``--listen`` endpoint strings including
``ssl:`` for HTTPS, ``--reactor``, ``--workers``, logging) is the ``torsion`` command's
(``reactor.cli``). Registered as the ``xmlrpc`` entry point of ``torsion.services``;
the XML-RPC and HTTP modules are imported only when the service is built.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import logging
from types import ModuleType
from typing import Any

from protocols.http.web import load_object, parse_size
from reactor.cli import seconds_argument

__all__ = ["XMLRPCService", "public_callables", "xmlrpc"]

log = logging.getLogger("protocols.xmlrpc.cli")

#: The paths answered without --rpc-path, as the stdlib's SimpleXMLRPCRequestHandler.
DEFAULT_RPC_PATHS = ("/", "/RPC2")


def _size_argument(text: str) -> int:
    """argparse type: a byte count such as 1048576, 512K or 16M (``parse_size``)."""
    try:
        return parse_size(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _rpc_path_argument(text: str) -> str:
    """argparse type: a URL path; a missing leading slash is added."""
    if not text or any(c in text for c in "?# \t\r\n"):
        raise argparse.ArgumentTypeError(f"must be a URL path such as /RPC2, got {text!r}")
    return text if text.startswith("/") else "/" + text


def _load_target(target: str) -> Any:
    """What ``--app`` names: ``MODULE:NAME`` as for ``torsion web``, or a bare module.

    A bare ``MODULE`` (no colon) is that module. ``load_object`` wants
    ``MODULE:NAME``: asking it for the module's ``__name__`` imports the module
    with its rules (the current directory on ``sys.path``, the same messages for
    a missing module), and the module is then taken from ``sys.modules``.
    """
    if ":" in target:
        return load_object(target, "OBJECT")
    if not target or not all(part.isidentifier() for part in target.split(".")):
        raise ValueError(f"expected MODULE or MODULE:OBJECT (e.g. myapp.rpc:service), "
                         f"got {target!r}")
    load_object(f"{target}:__name__", "OBJECT")
    return importlib.import_module(target)


def public_callables(obj: Any) -> dict[str, Any]:
    """The callables ``obj`` exposes over XML-RPC, by method name.

    For a module: functions (and other callables that are not classes or
    modules) whose name does not start with ``_`` and that the module defines
    (``__module__`` is the module), or that its ``__all__`` lists. For any
    other object: its callable attributes whose name does not start with
    ``_``, classes excepted.

    Example:
        >>> import types
        >>> m = types.ModuleType("m")
        >>> exec("def add(a, b): return a + b\\ndef _hidden(): pass", m.__dict__)
        >>> sorted(public_callables(m))
        ['add']
    """
    if isinstance(obj, ModuleType):
        listed = getattr(obj, "__all__", None)
        names = list(listed) if listed is not None else list(vars(obj))
        found = {}
        for name in names:
            value = getattr(obj, name, None)
            if name.startswith("_") or not _servable(value):
                continue
            # Without __all__, only what the module defines: "from os import remove"
            # must not publish remove().
            if listed is None and getattr(value, "__module__", None) != obj.__name__:
                continue
            found[name] = value
        return found
    found = {}
    for name in dir(obj):
        if name.startswith("_"):
            continue
        try:
            value = getattr(obj, name)
        except Exception:  # a property that raises: not a method, and not ours to fix
            log.debug("skipping %s: reading it raised", name, exc_info=True)
            continue
        if _servable(value):
            found[name] = value
    return found


def _servable(value: Any) -> bool:
    return callable(value) and not isinstance(value, (type, ModuleType))


def _is_xmlrpc_resource(obj: Any) -> bool:
    from .server import XMLRPC

    return isinstance(obj, XMLRPC)


def build_resource(target: str, allow_none: bool = False,
                   max_body: int | None = None) -> Any:
    """The XMLRPC resource serving what ``target`` names, introspection and multicall on.

    Args:
        target: ``MODULE``, or ``MODULE:NAME`` naming an object, a class or an
            XMLRPC resource (see the module docstring).
        allow_none: Allow None in arguments and results (``<nil/>``).
        max_body: The largest request body (bytes); None keeps the resource's limit.

    Raises:
        ValueError: the target cannot be imported, or names nothing servable.
        RuntimeError: the user's code raised while importing or instantiating.
    """
    from .server import XMLRPC

    obj = _load_target(target)
    if _is_xmlrpc_resource(obj):
        resource = obj
        if allow_none:
            resource.allowNone = True
    else:
        if isinstance(obj, type):
            try:
                obj = obj()
            except Exception as e:
                raise RuntimeError(f"{target}() raised {type(e).__name__}: {e}") from e
        functions = public_callables(obj)
        if not functions:
            what = "module" if isinstance(obj, ModuleType) else f"object {obj!r}"
            raise ValueError(f"{target}: the {what} has no public functions or methods to "
                             "serve (names starting with _ are private)")
        resource = XMLRPC(allowNone=allow_none)
        for name, function in sorted(functions.items()):
            resource.register_function(function, name)
    if max_body is not None:
        # A gzip-encoded body may inflate beyond the limit on what is received, but
        # never to less than it.
        inflated = max(resource.limits.max_decompressed, max_body)
        resource.limits = dataclasses.replace(resource.limits, max_body=max_body,
                                              max_decompressed=inflated)
        resource.maxBodySize = max_body
    resource.register_introspection_functions()
    resource.register_multicall_functions()
    return resource


def _router(resource: Any, paths: tuple[str, ...]) -> Any:
    """A root resource that hands exactly ``paths`` to ``resource`` and 404s the rest."""
    from protocols.http.resource import NoResource, Resource

    wanted = {p.encode("utf-8") for p in paths}

    class RPCPaths(Resource):
        """Routes on the whole request path: the XML-RPC resource is a leaf."""

        def getChildWithDefault(self, path: bytes, request: Any) -> Any:
            if request.path in wanted:
                return resource
            return NoResource()

        def render(self, request: Any) -> Any:
            # Only reached for a request with no path segment at all (never, with
            # a well-formed target); answer as for any other unknown path.
            return NoResource().render(request)

    return RPCPaths()


class XMLRPCService:
    """The ``xmlrpc`` subcommand: a Site serving an :class:`XMLRPC` resource."""

    name = "xmlrpc"
    help = "XML-RPC: serve a module's functions or an object's methods"
    default_port = 8000
    udp = False
    description = (
        "Serves XML-RPC over HTTP/1.1. --app MODULE:OBJECT names what to serve: a "
        "module's public functions, an object's public methods (a class is instantiated "
        "with no arguments), or an XMLRPC resource as it is; a bare MODULE serves that "
        "module. Names starting with _ are never served. Introspection (system.listMethods, "
        "system.methodHelp, system.methodSignature) and system.multicall are on. Answers "
        "on / and /RPC2 (as the stdlib's SimpleXMLRPCServer) unless --rpc-path says "
        "otherwise. Listens on port 8000 unless --port or --listen says otherwise; for "
        "HTTPS, listen on an ssl: endpoint. MODULE is searched for in the current "
        "directory too.")
    examples = [
        "torsion xmlrpc --app myapp.rpc:service --port 8000 --interface 127.0.0.1",
        "torsion xmlrpc --app myapp.rpc --rpc-path /RPC2 --allow-none",
        "torsion xmlrpc --app myapp.rpc:Service --listen ssl:8443:certKey=server.pem",
    ]

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """What to serve (--app), where (--rpc-path), and the HTTP limits."""
        what = parser.add_argument_group("what to serve")
        what.add_argument("--app", required=True, metavar="MODULE[:OBJECT]",
                          help="the module, object, class or XMLRPC resource to serve, "
                               "e.g. myapp.rpc:service")
        what.add_argument("--rpc-path", action="append", type=_rpc_path_argument,
                          metavar="PATH", dest="rpc_paths",
                          help="the URL path answering XML-RPC calls; repeatable "
                               "(default: / and /RPC2)")
        what.add_argument("--allow-none", action="store_true",
                          help="allow None (the <nil/> extension) in arguments and results")
        http = parser.add_argument_group("HTTP")
        http.add_argument("--max-body", type=_size_argument, metavar="SIZE",
                          help="largest request body accepted, e.g. 1048576, 512K, 16M; "
                               "larger ones get 413 (default: 8M, or the limit of the "
                               "XMLRPC resource --app names)")
        http.add_argument("--timeout", type=seconds_argument, default=60.0,
                          metavar="SECONDS",
                          help="close a keep-alive connection idle this long "
                               "(default: 60; 0: never)")
        http.add_argument("--no-access-log", action="store_true",
                          help="don't log each request to stderr")

    def build(self, args: argparse.Namespace) -> tuple[Any, Any]:
        """The Site serving ``--app`` on the chosen paths; no UDP."""
        from protocols.http.server import Site

        resource = build_resource(args.app, allow_none=args.allow_none,
                                  max_body=args.max_body)
        paths = tuple(dict.fromkeys(args.rpc_paths or DEFAULT_RPC_PATHS))
        if args.no_access_log:
            logging.getLogger("protocols.http.access").setLevel(logging.WARNING)
        # The Site's limit applies to the other paths (404s): the same one.
        site = Site(_router(resource, paths), timeout=args.timeout or None,
                    max_body=resource.maxBodySize)
        return site, None

    def __repr__(self) -> str:
        return "<torsion service 'xmlrpc'>"


xmlrpc = XMLRPCService()
