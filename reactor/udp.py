"""UDP: the datagram port behind ``listenUDP`` and ``listenMulticast``, on every backend.

A port is a bound socket and a ``DatagramProtocol``; it is also the
protocol's transport. Its life::

    listenUDP -> bind (CannotListenError here) -> makeConnection -> startProtocol
      [-> datagramReceived* | connectionRefused*] -> stopListening
      -> (a later loop turn) doStop -> stopProtocol -> the Deferred fires

What must behave the same on every backend lives in ``_UDPPort``: writing
(``write`` calls ``sendto`` itself, on the asyncio backends too, so errors
are raised alike), ``connect``, addresses, options, and the handling of a
datagram once read. Reading is the backend's: ``Port`` below drains the
socket from the selector loop; ``reactor._aio_udp.Port`` lets the asyncio
loop's datagram transport read it.

As in Twisted: ``write`` takes IP literals only and raises
``MessageLengthError`` for a datagram too big to send; after ``connect``,
only the peer's datagrams arrive and an ICMP "port unreachable" becomes
``protocol.connectionRefused()``; a datagram longer than ``maxPacketSize``
arrives truncated; an exception in ``datagramReceived`` is logged (logger
"reactor", with the traceback) and the port goes on serving; while paused
(``pauseProducing``), datagrams wait in the kernel's buffer.

Multicast (``listenMulticast``) adds group membership, TTL, loopback mode,
the outgoing interface and ``listenMultiple``. Where the loopback interface
has no multicast route, sending to a group through it raises
``OSError(ENETUNREACH)`` from ``write``: so it is for IPv6 on Linux's
``lo``, which lacks the MULTICAST flag.
"""

from __future__ import annotations

import errno
import logging
import socket
import struct
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from deferred import Deferred, fail, succeed
from reactor.address import IPv4Address, IPv6Address
from reactor.error import (
    CannotListenError,
    InvalidAddressError,
    MessageLengthError,
    MulticastJoinError,
)

if TYPE_CHECKING:
    from reactor.base import ReactorBase
    from reactor.selector import SelectorReactor

__all__ = ["MulticastMixin", "MulticastPort", "Port", "listen_multicast", "listen_udp"]

log = logging.getLogger("reactor")

_READ = 1

#: The most datagrams one wake-up of the selector loop reads from a port...
MAX_DATAGRAMS_PER_READ = 64
#: ...and the most bytes (Twisted's ``maxThroughput``): a busy port must not
#: starve the other files the loop watches.
MAX_BYTES_PER_READ = 256 * 1024


# -- addresses --------------------------------------------------------------------


def _is_ipv4(host: str) -> bool:
    """A dotted-quad IPv4 literal (not a host name, not "127.1")."""
    try:
        socket.inet_pton(socket.AF_INET, host)
    except (OSError, TypeError, ValueError):
        return False
    return True


def _is_ipv6(host: str) -> bool:
    """An IPv6 literal, optionally with a "%scope" suffix."""
    try:
        socket.inet_pton(socket.AF_INET6, host.split("%", 1)[0])
    except (AttributeError, OSError, ValueError):
        return False
    return True


def _family_of(interface: str) -> socket.AddressFamily:
    if _is_ipv6(interface):
        return socket.AF_INET6
    if not interface or _is_ipv4(interface):
        return socket.AF_INET
    raise InvalidAddressError(interface, "not an IPv4 or IPv6 address.")


def _sockaddr(host: str, port: int, family: int) -> Any:
    """The socket address for ``(host, port)``, with an IPv6 "%scope" resolved.

    Python's 2-tuple IPv6 addresses carry no scope (the scope id of a
    2-tuple is 0 whatever the string says), so a scoped literal goes through
    a numeric ``getaddrinfo``, which fills in the 4-tuple.
    """
    if family == socket.AF_INET6 and "%" in host:
        info = socket.getaddrinfo(host, port, socket.AF_INET6, socket.SOCK_DGRAM, 0,
                                  socket.AI_NUMERICHOST)
        return info[0][4]
    return (host, port)


def udp_address(sockaddr: Any, family: int) -> IPv4Address | IPv6Address:
    """The Twisted-style UDP address for a socket address."""
    if family == socket.AF_INET6:
        host, port, flowinfo, scope = sockaddr
        return IPv6Address("UDP", host, port, flowinfo, scope)
    host, port = sockaddr
    return IPv4Address("UDP", host, port)


def bind_socket(interface: str, port: int, family: int,
                listen_multiple: bool = False) -> socket.socket:
    """A non-blocking UDP socket bound to ``interface:port``.

    Raises:
        CannotListenError: the bind failed (names the address and the error).
    """
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if listen_multiple:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if hasattr(socket, "SO_REUSEPORT"):
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                except OSError as e:
                    # Some kernels define the option and then refuse it;
                    # SO_REUSEADDR alone still shares a multicast port there.
                    if e.errno != errno.ENOPROTOOPT:
                        raise
        if family == socket.AF_INET6:
            # "::" means IPv6 only, as for listenTCP: an IPv4 port on the
            # same number is then a separate socket, not a bind conflict.
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(_sockaddr(interface, port, family))
    except OSError as e:
        sock.close()
        raise CannotListenError(interface, port, e) from e
    sock.setblocking(False)
    return sock


# -- the port, backend-independent half -------------------------------------------------


class _UDPPort:
    """A bound UDP socket and its ``DatagramProtocol``; the protocol's transport.

    Subclasses (one per backend) supply reading: ``_resume_reading``,
    ``_pause_reading``, ``_release`` (stop reading and close the socket,
    then call ``_finish`` once everything is closed), ``_track``/``_untrack``
    (membership of the reactor's shutdown list).

    Attributes:
        reactor: the reactor the port belongs to.
        protocol: the ``DatagramProtocol``.
        port: the port number asked for (0: any; see ``getHost()``).
        interface: the address asked for ("" is every IPv4 address).
        maxPacketSize: room for each datagram read; longer ones are truncated.
        addressFamily: ``socket.AF_INET`` or ``socket.AF_INET6``.
        connected: True from binding until ``stopListening`` (Twisted's name
            for "listening").
        socket: the socket.
    """

    def __init__(self, reactor: ReactorBase, port: int, protocol: Any, interface: str = "",
                 maxPacketSize: int = 8192, listenMultiple: bool = False) -> None:
        self.reactor = reactor
        self.port = port
        self.protocol = protocol
        self.interface = interface
        self.maxPacketSize = maxPacketSize
        self.listenMultiple = listenMultiple
        self.addressFamily = _family_of(interface)
        self.connected = False
        self.socket: socket.socket | None = None
        self._host: IPv4Address | IPv6Address | None = None
        self._connected_addr: tuple[str, int] | None = None
        self._paused = False
        self._finished = False
        self._stop_waiters: list[Deferred[None]] = []
        self._finish_call: Any = None

    # -- the backend's part (see the class docstring) ------------------------------

    def _resume_reading(self) -> None:
        raise NotImplementedError

    _pause_reading = _release = _track = _untrack = _resume_reading

    # -- starting and stopping ------------------------------------------------------

    def startListening(self) -> None:
        """Bind (raising ``CannotListenError`` here), start the protocol, start reading."""
        sock = bind_socket(self.interface, self.port, self.addressFamily,
                           self.listenMultiple)
        self.socket = sock
        self._host = udp_address(sock.getsockname(), self.addressFamily)
        self.connected = True
        self._track()
        try:
            self.protocol.makeConnection(self)
        except BaseException:
            # The protocol did not start (doStart counts a port only once
            # startProtocol has returned), so it must not be stopped either.
            self.connected = False
            self._finished = True
            self._untrack()
            sock.close()
            if getattr(self.protocol, "transport", None) is self:
                self.protocol.transport = None
            raise
        # startProtocol may have paused us, or even stopped listening.
        if self.connected and not self._paused:
            try:
                self._resume_reading()
            except BaseException:
                self._reactor_shutdown()
                raise

    def stopListening(self) -> Deferred[None]:
        """Stop reading and close the socket.

        Returns:
            A Deferred that fires on a later loop turn, once the socket is
            closed and ``protocol.doStop()`` (so ``stopProtocol``) has run.
        """
        if self._finished:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._stop_waiters.append(d)
        if self.connected:
            self.connected = False
            self._release()
        return d

    # Twisted's older name, and IPushProducer's (the consumer is gone).
    loseConnection = stopListening
    stopProducing = stopListening

    def _reactor_shutdown(self) -> None:
        """The reactor is shutting down: close now and stop the protocol now."""
        if self.connected:
            self.connected = False
            self._release()
        self._finish()

    def _finish_soon(self) -> None:
        # A later loop turn, never inside the caller: Twisted's rule (stopListening
        # called in startProtocol must not re-enter the protocol).
        if not self._finished and self._finish_call is None:
            self._finish_call = self.reactor.callLater(0, self._finish)

    def _finish(self) -> None:
        """Everything is closed: stop the protocol and fire ``stopListening``'s Deferreds."""
        if self._finished:
            return
        self._finished = True
        call, self._finish_call = self._finish_call, None
        if call is not None and call.active():
            call.cancel()
        self._untrack()
        try:
            self.protocol.doStop()
        except Exception:
            log.exception("Unhandled error in doStop of %r", self.protocol)
        waiters, self._stop_waiters = self._stop_waiters, []
        for d in waiters:
            d.callback(None)

    # -- reading: what happens to what was read ----------------------------------------

    def pauseProducing(self) -> None:
        """Stop reading; datagrams wait in the kernel's buffer until ``resumeProducing``."""
        if not self._paused:
            self._paused = True
            if self.connected:
                self._pause_reading()

    def resumeProducing(self) -> None:
        """Start reading again after ``pauseProducing``."""
        if self._paused:
            self._paused = False
            if self.connected:
                self._resume_reading()

    # Twisted's FileDescriptor names, which UDP protocols call too.
    stopReading = pauseProducing
    startReading = resumeProducing

    def _deliver(self, data: bytes, addr: Any) -> None:
        """Hand one datagram to the protocol; an exception is logged, not fatal."""
        if self.addressFamily == socket.AF_INET6:
            # (host, port), as Twisted gives it, rather than the 4-tuple.
            addr = addr[:2]
        try:
            self.protocol.datagramReceived(data, addr)
        except Exception:
            self._user_error("datagramReceived")

    def _user_error(self, where: str) -> None:
        log.exception("Unhandled error in %s of %r; the port stays open", where,
                      self.protocol)

    def _read_error(self, exc: OSError) -> None:
        """Reading (or the loop's read) failed with ``exc``."""
        if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR):
            return
        if exc.errno == errno.ECONNREFUSED:
            # Without connect() the kernel reports no ICMP errors, and a
            # stale one is meaningless: only a connected port is told.
            if self._connected_addr is not None:
                self._refused()
            return
        log.error("Reading from %r failed: %s", self, exc)

    def _refused(self) -> None:
        try:
            self.protocol.connectionRefused()
        except Exception:
            self._user_error("connectionRefused")

    # -- writing --------------------------------------------------------------------

    def write(self, datagram: bytes, addr: Any = None) -> None:
        """Send one datagram (possibly empty) now; ignored after ``stopListening``.

        Args:
            datagram: the bytes to send.
            addr: ``(host, port)``, ``host`` an IP literal (or "<broadcast>"
                on IPv4); None (or the peer) once connected.

        Raises:
            InvalidAddressError: no address, a host name, the other family,
                or (once connected) not the peer.
            MessageLengthError: the datagram is too long to send.
            OSError: any other error (``BlockingIOError``: the kernel's buffer
                is full); but a refusal by the connected peer goes to
                ``protocol.connectionRefused()``.
        """
        sock = self.socket
        if not self.connected or sock is None:
            return
        peer = self._connected_addr
        try:
            if peer is not None:
                if addr is not None and tuple(addr) != peer:
                    raise InvalidAddressError(
                        addr, f"this port is connected to {peer}; write to it only")
                sock.send(datagram)
            else:
                sock.sendto(datagram, self._check_destination(addr))
        except OSError as e:
            if e.errno == errno.EMSGSIZE:
                raise MessageLengthError("message too long") from e
            if e.errno == errno.ECONNREFUSED:
                # An ICMP error from an earlier datagram, reported now; it
                # means something only on a connected port.
                if peer is not None:
                    self._refused()
                return
            raise

    def _check_destination(self, addr: Any) -> Any:
        if addr is None:
            raise InvalidAddressError(None, "write() needs an address unless connected")
        host, port = addr[0], addr[1]
        if host == "<broadcast>" or _is_ipv4(host):
            if self.addressFamily == socket.AF_INET6:
                raise InvalidAddressError(
                    host, "IPv6 port write() called with IPv4 or broadcast address")
            return addr
        if _is_ipv6(host):
            if self.addressFamily == socket.AF_INET:
                raise InvalidAddressError(host, "IPv4 port write() called with IPv6 address")
            return _sockaddr(host, port, socket.AF_INET6) if len(addr) == 2 else addr
        raise InvalidAddressError(host, "write() only accepts IP addresses, not hostnames")

    def writeSequence(self, seq: Iterable[bytes], addr: Any = None) -> None:
        """Send the concatenation of ``seq`` as one datagram (see ``write``)."""
        self.write(b"".join(seq), addr)

    def connect(self, host: str, port: int) -> None:
        """Talk to one peer only: ``write`` without an address goes there, and
        only its datagrams are delivered.

        Raises:
            InvalidAddressError: ``host`` is not an IP literal (a ``ValueError``:
                pass only IP addresses, not host names), or of the other family.
            RuntimeError: already connected (reconnecting is not supported).
        """
        if self._connected_addr is not None:
            raise RuntimeError("already connected, reconnecting is not currently supported")
        if _is_ipv4(host):
            family = socket.AF_INET
        elif _is_ipv6(host):
            family = socket.AF_INET6
        else:
            raise InvalidAddressError(
                host, "not an IPv4 or IPv6 address; please pass only IP addresses")
        if family != self.addressFamily:
            raise InvalidAddressError(host, "of the other address family than this port")
        if self.socket is None or not self.connected:
            raise RuntimeError("the port is not listening")
        self.socket.connect(_sockaddr(host, port, family))
        self._connected_addr = (host, port)

    # -- addresses and options ------------------------------------------------------

    def getHost(self) -> IPv4Address | IPv6Address:
        """The bound address (the real port on port 0); still known after stopListening."""
        if self._host is None:
            raise RuntimeError("the port is not bound")
        return self._host

    def setBroadcastAllowed(self, enabled: bool) -> None:
        """Allow (or forbid) sending to broadcast addresses; forbidden by default."""
        self._sock().setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, int(enabled))

    def getBroadcastAllowed(self) -> bool:
        """Whether sending to broadcast addresses is allowed."""
        return bool(self._sock().getsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST))

    def _sock(self) -> socket.socket:
        if self.socket is None:
            raise RuntimeError("the port is not bound")
        return self.socket

    def getHandle(self) -> socket.socket | None:
        """The socket."""
        return self.socket

    def logPrefix(self) -> str:
        """The protocol's log prefix, marked as UDP."""
        prefix = getattr(self.protocol, "logPrefix", None)
        name = prefix() if callable(prefix) else type(self.protocol).__name__
        return f"{name} (UDP)"

    def __repr__(self) -> str:
        if self._host is None:
            return f"<{type(self.protocol).__name__} not connected>"
        host = self.interface or "*"
        where = f"[{host}]:{self._host.port}" if ":" in host else f"{host}:{self._host.port}"
        state = "" if self.connected else " (closed)"
        return f"<{type(self.protocol).__name__} on UDP {where}{state}>"


# -- multicast ----------------------------------------------------------------------


class MulticastMixin(_UDPPort):
    """Multicast options and group membership (mixed into each backend's port).

    IPv4 interfaces are given by address ("127.0.0.1"); IPv6 ones by index
    (an int), by name ("lo"), or "" / "::" for the kernel's choice. Groups
    and interfaces must be IP literals (Twisted would resolve host names).
    """

    def _option(self, ipv4: int, ipv6: int) -> tuple[int, int]:
        """The (level, option) pair of a multicast socket option for our family."""
        if self.addressFamily == socket.AF_INET6:
            return socket.IPPROTO_IPV6, ipv6
        return socket.IPPROTO_IP, ipv4

    def getTTL(self) -> int:
        """The time-to-live (IPv6: hop limit) of multicast datagrams sent; 1 by default."""
        return self._sock().getsockopt(*self._option(socket.IP_MULTICAST_TTL,
                                                     socket.IPV6_MULTICAST_HOPS))

    def setTTL(self, ttl: int) -> None:
        """Set how many routers multicast datagrams sent may cross (1: this link only)."""
        self._sock().setsockopt(*self._option(socket.IP_MULTICAST_TTL,
                                              socket.IPV6_MULTICAST_HOPS), ttl)

    def getLoopbackMode(self) -> bool:
        """Whether this host's own members of a group get what is sent to it (on by default)."""
        return bool(self._sock().getsockopt(*self._option(socket.IP_MULTICAST_LOOP,
                                                          socket.IPV6_MULTICAST_LOOP)))

    def setLoopbackMode(self, mode: bool | int) -> None:
        """Deliver (or not) what is sent to a group to this host's own members too."""
        self._sock().setsockopt(*self._option(socket.IP_MULTICAST_LOOP,
                                              socket.IPV6_MULTICAST_LOOP), int(bool(mode)))

    def getOutgoingInterface(self) -> str | int:
        """The interface multicast goes out of: an IPv4 address, or an IPv6 index."""
        if self.addressFamily == socket.AF_INET6:
            return self._sock().getsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF)
        return socket.inet_ntoa(
            self._sock().getsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, 4))

    def setOutgoingInterface(self, addr: str | int) -> Deferred[int]:
        """Send multicast out of ``addr`` (IPv4: its address; IPv6: index or name).

        Returns:
            A Deferred firing with 1, or failing with ``MulticastJoinError``
            (not an interface) or the ``OSError``.
        """
        v6 = self.addressFamily == socket.AF_INET6
        try:
            value = self._if_index(addr) if v6 else self._pack_ipv4(addr)
            self._sock().setsockopt(*self._option(socket.IP_MULTICAST_IF,
                                                  socket.IPV6_MULTICAST_IF), value)
        except (MulticastJoinError, OSError) as e:
            return fail(e)
        return succeed(1)

    def joinGroup(self, addr: str, interface: str | int = "") -> Deferred[None]:
        """Join multicast group ``addr`` on ``interface`` ("" lets the kernel choose).

        Returns:
            A Deferred firing with None once joined, or failing with
            ``MulticastJoinError`` (not a group, not an interface, or the
            kernel's refusal, with its errno).
        """
        return self._membership(addr, interface, join=True)

    def leaveGroup(self, addr: str, interface: str | int = "") -> Deferred[None]:
        """Leave a group joined with ``joinGroup``; a Deferred as for ``joinGroup``."""
        return self._membership(addr, interface, join=False)

    def _membership(self, addr: str, interface: str | int, join: bool) -> Deferred[None]:
        try:
            if self.addressFamily == socket.AF_INET6:
                group = addr.split("%", 1)[0] if isinstance(addr, str) else addr
                if interface in ("", "::") and group != addr:
                    interface = addr.split("%", 1)[1]  # "ff02::1%lo": the scope is the interface
                option = socket.IPV6_JOIN_GROUP if join else socket.IPV6_LEAVE_GROUP
                level = socket.IPPROTO_IPV6
                request = self._pack_ipv6(group) + struct.pack("@I", self._if_index(interface))
            else:
                option = socket.IP_ADD_MEMBERSHIP if join else socket.IP_DROP_MEMBERSHIP
                level = socket.IPPROTO_IP
                request = self._pack_ipv4(addr) + self._pack_ipv4(interface or "0.0.0.0")
            self._sock().setsockopt(level, option, request)
        except MulticastJoinError as e:
            return fail(e)
        except OSError as e:
            return fail(MulticastJoinError(addr, interface, e.errno, e.strerror))
        return succeed(None)

    @staticmethod
    def _pack_ipv4(addr: object) -> bytes:
        if not isinstance(addr, str) or not _is_ipv4(addr):
            raise MulticastJoinError(f"invalid address literal for AF_INET: {addr!r}")
        return socket.inet_aton(addr)

    @staticmethod
    def _pack_ipv6(addr: object) -> bytes:
        if not isinstance(addr, str) or not _is_ipv6(addr) or "%" in addr:
            raise MulticastJoinError(f"invalid address literal for AF_INET6: {addr!r}")
        return socket.inet_pton(socket.AF_INET6, addr)

    @staticmethod
    def _if_index(interface: object) -> int:
        """An IPv6 interface index from an int, a number, a name, or "" / "::" (0)."""
        if isinstance(interface, int):
            return interface
        if interface in ("", "::"):
            return 0
        if isinstance(interface, str) and interface.isdigit():
            return int(interface)
        try:
            return socket.if_nametoindex(interface)  # type: ignore[arg-type]
        except (OSError, TypeError):
            raise MulticastJoinError(
                f"not an IPv6 interface (index or name): {interface!r}") from None


# -- the selector reactor's port -----------------------------------------------------------


class Port(_UDPPort):
    """A UDP port read by the selector reactor's loop (``listenUDP`` returns one).

    Each wake-up reads datagrams until the socket is empty, or
    ``MAX_DATAGRAMS_PER_READ`` datagrams or ``MAX_BYTES_PER_READ`` bytes
    have been read, or the protocol paused or stopped the port.
    """

    reactor: SelectorReactor

    def __init__(self, reactor: SelectorReactor, port: int, protocol: Any,
                 interface: str = "", maxPacketSize: int = 8192,
                 listenMultiple: bool = False) -> None:
        super().__init__(reactor, port, protocol, interface, maxPacketSize, listenMultiple)
        self._fd = -1

    def fileno(self) -> int:
        return self._fd

    def _track(self) -> None:
        assert self.socket is not None
        self._fd = self.socket.fileno()
        self.reactor._selectables.add(self)

    def _untrack(self) -> None:
        self.reactor._selectables.discard(self)

    def _resume_reading(self) -> None:
        self.reactor._set_interest(self, self._fd, _READ)

    def _pause_reading(self) -> None:
        self.reactor._set_interest(self, self._fd, 0)

    def _release(self) -> None:
        self.reactor._forget(self._fd)
        if self.socket is not None:
            self.socket.close()
        self._finish_soon()

    def _on_readable(self) -> None:
        sock = self.socket
        if sock is None or self._paused or not self.connected:
            return  # closed or paused by a handler earlier in this loop turn
        recvfrom = sock.recvfrom
        size = self.maxPacketSize
        received = self.protocol.datagramReceived
        v6 = self.addressFamily == socket.AF_INET6
        budget = MAX_BYTES_PER_READ
        for _ in range(MAX_DATAGRAMS_PER_READ):
            try:
                data, addr = recvfrom(size)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                self._read_error(e)
                return
            if v6:
                addr = addr[:2]
            try:
                received(data, addr)
            except Exception:
                self._user_error("datagramReceived")
            if self._paused or not self.connected:
                return  # the protocol paused or closed us
            budget -= len(data)
            if budget <= 0:
                return

    def _on_writable(self) -> None:
        # Never asked for; called when epoll reports an error on the socket
        # (EPOLLERR counts as both readable and writable), which the read handles.
        pass


class MulticastPort(MulticastMixin, Port):
    """A selector-reactor UDP port that can join multicast groups (``listenMulticast``)."""


# -- the reactor's entry points ------------------------------------------------------------


def listen_udp(reactor: ReactorBase, port: int, protocol: Any, interface: str = "",
               maxPacketSize: int = 8192) -> _UDPPort:
    """Bind ``interface:port`` and serve ``protocol`` on it (``reactor.listenUDP``).

    Raises:
        CannotListenError: the address cannot be bound.
        InvalidAddressError: ``interface`` is not an IP literal.
    """
    listening: _UDPPort = _port_class(reactor, multicast=False)(
        reactor, port, protocol, interface, maxPacketSize)
    listening.startListening()
    return listening


def listen_multicast(reactor: ReactorBase, port: int, protocol: Any, interface: str = "",
                     maxPacketSize: int = 8192, listenMultiple: bool = False) -> _UDPPort:
    """Like ``listen_udp``, with multicast methods; ``listenMultiple`` shares the port.

    To receive a group's datagrams, bind to the group address (or to all
    addresses) and ``joinGroup`` it.
    """
    listening: _UDPPort = _port_class(reactor, multicast=True)(
        reactor, port, protocol, interface, maxPacketSize, listenMultiple)
    listening.startListening()
    return listening


def _port_class(reactor: ReactorBase, multicast: bool) -> Any:
    from reactor.selector import SelectorReactor

    if isinstance(reactor, SelectorReactor):
        return MulticastPort if multicast else Port
    from reactor.aio import AsyncioReactor

    if isinstance(reactor, AsyncioReactor):
        from reactor import _aio_udp

        return _aio_udp.MulticastPort if multicast else _aio_udp.Port
    raise TypeError(f"UDP is not supported on {reactor!r}")
