"""Address values returned by ``transport.getPeer()`` / ``getHost()``.

They are frozen attrs classes: immutable, hashable, compared by value, and their
repr reads like the constructor call (as in Twisted).

Example:
    >>> IPv4Address("TCP", "127.0.0.1", 8080)
    IPv4Address(type='TCP', host='127.0.0.1', port=8080)
    >>> IPv4Address("TCP", "127.0.0.1", 8080) == IPv4Address("TCP", "127.0.0.1", 8080)
    True
"""

from __future__ import annotations

import os
from typing import Literal

import attrs

__all__ = ["HostnameAddress", "IPv4Address", "IPv6Address", "UNIXAddress"]

_TRANSPORT_TYPES = attrs.validators.in_(("TCP", "UDP"))


@attrs.frozen
class IPv4Address:
    """The address of one end of an IPv4 socket.

    Attributes:
        type: ``"TCP"`` or ``"UDP"``.
        host: A dotted-quad string such as ``"127.0.0.1"``.
        port: The port number.
    """

    type: Literal["TCP", "UDP"] = attrs.field(validator=_TRANSPORT_TYPES)
    host: str
    port: int


@attrs.frozen
class IPv6Address:
    """The address of one end of an IPv6 socket.

    Attributes:
        type: ``"TCP"`` or ``"UDP"``.
        host: A colon-separated hexadecimal address such as ``"::1"``.
        port: The port number.
        flowInfo: The IPv6 flow label (QoS routers use it; usually 0).
        scopeID: The scope (roughly: which interface) for link-local addresses.
    """

    type: Literal["TCP", "UDP"] = attrs.field(validator=_TRANSPORT_TYPES)
    host: str
    port: int
    flowInfo: int = 0
    scopeID: str | int = 0


@attrs.frozen
class HostnameAddress:
    """A host name and port, before resolution (used by endpoints).

    Attributes:
        hostname: The host name as bytes, e.g. ``b"example.com"``.
        port: The port number.
    """

    hostname: bytes
    port: int


def _to_filesystem_bytes(name: str | bytes | None) -> bytes | None:
    # Twisted stores UNIX socket paths as bytes; str paths are encoded the way
    # the OS would encode them, so both spellings compare equal.
    if name is None or isinstance(name, bytes):
        return name
    return os.fsencode(name)


@attrs.frozen(repr=False)
class UNIXAddress:
    """The address of one end of a UNIX socket.

    Attributes:
        name: The socket's path as bytes (``str`` is accepted and encoded), or
            ``None`` for an unnamed socket.

    Example:
        >>> UNIXAddress("/tmp/sock")
        UNIXAddress('/tmp/sock')
        >>> UNIXAddress("/tmp/sock").name
        b'/tmp/sock'
    """

    name: bytes | None = attrs.field(converter=_to_filesystem_bytes)

    def __repr__(self) -> str:
        shown = None if self.name is None else os.fsdecode(self.name)
        return f"UNIXAddress({shown!r})"
