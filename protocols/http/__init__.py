"""HTTP/1.x for Torsion.

The sans-I/O parser (:mod:`protocols.http.parser`), the resource tree
(:mod:`protocols.http.resource`) and the server core
(:mod:`protocols.http.server`: :class:`Site`, :class:`Request`).  The client
comes later.
"""

from .parser import (
    BodyData,
    EndOfMessage,
    Event,
    Limits,
    ParseError,
    RequestHead,
    RequestParser,
    ResponseHead,
    ResponseParser,
    Upgrade,
)
from .resource import (
    NOT_DONE_YET,
    ErrorPage,
    ForbiddenResource,
    NoResource,
    Resource,
)
from .server import Headers, HTTPChannel, Request, Site

__all__ = [
    "NOT_DONE_YET",
    "BodyData",
    "EndOfMessage",
    "ErrorPage",
    "Event",
    "ForbiddenResource",
    "HTTPChannel",
    "Headers",
    "Limits",
    "NoResource",
    "ParseError",
    "Request",
    "RequestHead",
    "RequestParser",
    "Resource",
    "ResponseHead",
    "ResponseParser",
    "Site",
    "Upgrade",
]
