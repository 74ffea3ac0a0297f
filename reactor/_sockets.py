"""Socket plumbing shared by the TCP transports of every backend.

Both backends bind listening sockets themselves (so that ``listenTCP`` fails
synchronously with ``CannotListenError``, and port 0 is known at once), and
both transports offer Twisted's TCP option methods over the same socket
calls: they live here once.
"""

from __future__ import annotations

import socket

from reactor.error import CannotListenError

__all__ = ["TCPOptions", "bind_tcp_listener"]


def bind_tcp_listener(family: int, interface: str, port: int, backlog: int,
                      proto: int = 0) -> socket.socket:
    """A non-blocking listening TCP socket, or CannotListenError naming the address.

    SO_REUSEADDR lets a restarted server bind while old connections linger in
    TIME_WAIT; an IPv6 socket is IPv6-only, so "::" and "0.0.0.0" can be
    listened on side by side, as Twisted does.
    """
    sock = socket.socket(family, socket.SOCK_STREAM, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((interface, port))
        sock.listen(backlog)
    except OSError as e:
        sock.close()
        raise CannotListenError(interface, port, e) from e
    sock.setblocking(False)
    return sock


class TCPOptions:
    """Twisted's TCP option methods, over whatever ``getHandle()`` returns."""

    def getHandle(self) -> socket.socket:
        raise NotImplementedError

    def setTcpNoDelay(self, enabled: bool) -> None:
        """Turn Nagle's algorithm off (True) or on."""
        self.getHandle().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, int(enabled))

    def getTcpNoDelay(self) -> bool:
        """Whether Nagle's algorithm is off."""
        return bool(self.getHandle().getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

    def setTcpKeepAlive(self, enabled: bool) -> None:
        """Turn TCP keep-alive probes on or off."""
        self.getHandle().setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, int(enabled))

    def getTcpKeepAlive(self) -> bool:
        """Whether TCP keep-alive probes are on."""
        return bool(self.getHandle().getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE))
