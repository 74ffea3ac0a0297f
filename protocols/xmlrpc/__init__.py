"""XML-RPC for Torsion: a server resource and a client, over :mod:`protocols.http`.

::

    from protocols.xmlrpc import XMLRPC, Proxy, SimpleXMLRPCServer, Fault

- :mod:`~protocols.xmlrpc.server`: :class:`XMLRPC` (a resource: ``xmlrpc_*``
  methods, ``register_function``, introspection, multicall; its module
  docstring has the table of fault codes) and :class:`SimpleXMLRPCServer`
  (the stdlib's class, on the reactor).
- :mod:`~protocols.xmlrpc.client`: :class:`Proxy` (``callRemote`` returns a
  Deferred).
- :mod:`~protocols.xmlrpc._marshal`: safe parsing of untrusted bodies
  (limits, no DTDs) shared by both, and the fault code constants.

Marshalling of values is the standard library's :mod:`xmlrpc.client`, so
``Fault``, ``Binary``, ``DateTime`` and ``Boolean`` are its classes.
"""

from xmlrpc.client import Binary, Boolean, DateTime

from ._marshal import (
    APPLICATION_ERROR,
    FAILURE,
    INTERNAL_ERROR,
    INVALID_CHARACTER,
    INVALID_PARAMS,
    INVALID_XMLRPC,
    METHOD_NOT_FOUND,
    NOT_FOUND,
    PARSE_ERROR,
    SYSTEM_ERROR,
    TRANSPORT_ERROR,
    UNSUPPORTED_ENCODING,
    Fault,
    MarshalError,
    PayloadTooLarge,
    XMLRPCLimits,
)
from .client import HTTPStatusError, MalformedResponseError, MultiCall, Proxy
from .server import (
    XMLRPC,
    NoSuchFunction,
    SimpleXMLRPCRequestHandler,
    SimpleXMLRPCServer,
    addIntrospection,
    withRequest,
)

__all__ = [
    "APPLICATION_ERROR",
    "FAILURE",
    "INTERNAL_ERROR",
    "INVALID_CHARACTER",
    "INVALID_PARAMS",
    "INVALID_XMLRPC",
    "METHOD_NOT_FOUND",
    "NOT_FOUND",
    "PARSE_ERROR",
    "SYSTEM_ERROR",
    "TRANSPORT_ERROR",
    "UNSUPPORTED_ENCODING",
    "XMLRPC",
    "Binary",
    "Boolean",
    "DateTime",
    "Fault",
    "HTTPStatusError",
    "MalformedResponseError",
    "MarshalError",
    "MultiCall",
    "NoSuchFunction",
    "PayloadTooLarge",
    "Proxy",
    "SimpleXMLRPCRequestHandler",
    "SimpleXMLRPCServer",
    "XMLRPCLimits",
    "addIntrospection",
    "withRequest",
]
