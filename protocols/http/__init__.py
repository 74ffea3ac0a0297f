"""HTTP/1.x for Torsion.

The sans-I/O parser (:mod:`protocols.http.parser`), the resource tree
(:mod:`protocols.http.resource`), the server (:mod:`protocols.http.server`:
:class:`Site`; :mod:`protocols.http.request`: :class:`Request`), streamed
request bodies (:mod:`protocols.http.body`) and header helpers
(:mod:`protocols.http.headers`).
"""

from .body import BodyError, BodyTooLarge
from .headers import Headers
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
from .request import Request
from .resource import (
    NOT_DONE_YET,
    ErrorPage,
    ForbiddenResource,
    NoResource,
    Resource,
)
from .server import HTTPChannel, Site

__all__ = [
    "NOT_DONE_YET",
    "BodyData",
    "BodyError",
    "BodyTooLarge",
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
