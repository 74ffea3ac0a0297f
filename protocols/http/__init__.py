"""HTTP/1.x for Torsion.

For now this package holds the sans-I/O parser (:mod:`protocols.http.parser`):
bytes in, typed events out, no transport.  The server and client come later.
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

__all__ = [
    "BodyData",
    "EndOfMessage",
    "Event",
    "Limits",
    "ParseError",
    "RequestHead",
    "RequestParser",
    "ResponseHead",
    "ResponseParser",
    "Upgrade",
]
