"""What ``torsion bench`` talks to: URLs and ``HOST:PORT`` strings, checked and resolved.

Everything here raises ValueError with a message fit for the user, so the
command can print it as a usage error.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

__all__ = ["Target", "http_request", "parse_address", "parse_header", "parse_url", "resolve"]


@dataclass(frozen=True)
class Target:
    """A server to load.

    Attributes:
        host: the host name or address as given (without IPv6 brackets).
        port: the TCP port.
        path: HTTP only: the request target (path and query), ``/`` at least.
        text: how the report names it (the URL, or ``HOST:PORT``).
    """

    host: str
    port: int
    path: str = "/"
    text: str = ""

    @property
    def host_header(self) -> str:
        """The HTTP Host header's value: the host, and the port unless it is 80."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == 80 else f"{host}:{self.port}"


def parse_url(url: str) -> Target:
    """The target of an ``http://`` URL.

    Raises:
        ValueError: not an http URL, no host, a bad port, or credentials in it.

    Example:
        >>> parse_url("http://127.0.0.1:8080/index.html?x=1")
        Target(host='127.0.0.1', port=8080, path='/index.html?x=1', text='http://127.0.0.1:8080/index.html?x=1')
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise ValueError(f"bad URL {url!r}: {e}") from None
    scheme = parts.scheme.lower()
    if scheme == "https":
        raise ValueError(f"{url}: https is not supported yet; load the server over http")
    if scheme != "http":
        raise ValueError(f"{url!r} is not an http:// URL")
    if not parts.hostname:
        raise ValueError(f"{url!r} has no host")
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"{url}: credentials in the URL are not supported; "
                         "send them with -H 'Authorization: ...'")
    if any(c in url for c in " \r\n\t"):
        raise ValueError(f"{url!r} contains white space")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(parts.hostname, port if port is not None else 80, path, url)


def parse_address(text: str) -> Target:
    """The target of ``HOST:PORT``, ``[IPV6]:PORT`` or a bare ``PORT`` (127.0.0.1).

    Raises:
        ValueError: no port, or a port outside 1-65535.

    Example:
        >>> parse_address("[::1]:7").host
        '::1'
    """
    host, sep, port_text = text.rpartition(":")
    if not sep:
        host, port_text = "127.0.0.1", text
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"{text!r}: write an IPv6 address in brackets, e.g. [::1]:8007")
    if not host:
        raise ValueError(f"{text!r} has no host (e.g. 127.0.0.1:{port_text or '8007'})")
    if not (port_text.isascii() and port_text.isdigit() and 0 < int(port_text) < 65536):
        raise ValueError(f"{text!r}: expected HOST:PORT with a port from 1 to 65535")
    return Target(host, int(port_text), text=text)


def resolve(target: Target) -> tuple[int, tuple[Any, ...]]:
    """The address family and socket address to connect to (the first one found).

    Raises:
        ValueError: the host name does not resolve.
    """
    try:
        infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise ValueError(f"can't resolve {target.host!r}: {e.strerror}") from None
    family, _, _, _, address = infos[0]
    return int(family), tuple(address)


def http_request(target: Target, method: str = "GET",
                 headers: list[tuple[str, str]] | tuple[tuple[str, str], ...] = (),
                 body: bytes = b"") -> bytes:
    """The request bytes sent again and again: request line, headers, body.

    Host and User-Agent are added unless ``headers`` has them; Content-Length
    when there is a body (or the method usually has one).

    Raises:
        ValueError: a method or header that would break the request's framing.
    """
    if not method or not method.isascii() or not all(c.isalnum() or c in "-_" for c in method):
        raise ValueError(f"bad HTTP method {method!r}")
    names = set()
    lines = [f"{method} {target.path} HTTP/1.1"]
    for name, value in headers:
        if not name or any(c in name for c in ": \t\r\n") or any(c in value for c in "\r\n"):
            raise ValueError(f"bad header {name!r}: {value!r}")
        lowered = name.lower()
        if lowered in ("content-length", "transfer-encoding"):
            raise ValueError(f"the {name} header is computed from --body; don't give it")
        names.add(lowered)
        lines.append(f"{name}: {value}")
    if "host" not in names:
        lines.insert(1, f"Host: {target.host_header}")
    if "user-agent" not in names:
        lines.append("User-Agent: torsion-bench")
    if body or method.upper() in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    try:
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError("headers must be Latin-1 text") from None
    return head + body


def parse_header(text: str) -> tuple[str, str]:
    """``Name: value`` (from ``-H``) as a pair.

    Raises:
        ValueError: no colon, or no name.
    """
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        raise ValueError(f"expected 'Name: value', got {text!r}")
    return name.strip(), value.strip()
