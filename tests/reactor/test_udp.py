"""UDP ports over real loopback sockets, on every backend (select, asyncio, uvloop).

Only 127.0.0.1, ::1 and multicast groups on the loopback interface are used.
A datagram that must *not* arrive is checked with a later one that must: a
sender's datagrams go through loopback in order, so once the later one has
been delivered, the earlier one would have been too.
"""

from __future__ import annotations

import errno
import functools
import logging
import select
import socket
import struct
from typing import Any

import pytest

from deferred import Deferred
from protocols import DatagramProtocol
from reactor.address import IPv4Address, IPv6Address
from reactor.error import (
    CannotListenError,
    InvalidAddressError,
    MessageLengthError,
    MulticastJoinError,
)
from reactor.task import deferLater

pytestmark = pytest.mark.reactor_timeout(10)


class Collector(DatagramProtocol):
    """Records what happens to it, with Deferreds to wait for datagrams and refusals."""

    noisy = False

    def __init__(self) -> None:
        self.datagrams: list[tuple[bytes, Any]] = []
        self.events: list[str] = []
        self.refused: Deferred[None] = Deferred()
        self._waiting: list[tuple[int, Deferred[list[tuple[bytes, Any]]]]] = []

    def startProtocol(self) -> None:
        self.events.append("start")

    def stopProtocol(self) -> None:
        self.events.append("stop")

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        self.datagrams.append((datagram, addr))
        for item in list(self._waiting):
            count, d = item
            if len(self.datagrams) >= count:
                self._waiting.remove(item)
                d.callback(list(self.datagrams))

    def connectionRefused(self) -> None:
        self.events.append("refused")
        if not self.refused.called:
            self.refused.callback(None)

    def wait_for(self, count: int) -> Deferred[list[tuple[bytes, Any]]]:
        """Fires with every datagram so far once ``count`` have arrived."""
        d: Deferred[list[tuple[bytes, Any]]] = Deferred()
        if len(self.datagrams) >= count:
            d.callback(list(self.datagrams))
        else:
            self._waiting.append((count, d))
        return d


class Echo(DatagramProtocol):
    noisy = False

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        self.transport.write(datagram, addr)


def listen(reactor: Any, protocol: Any, interface: str = "127.0.0.1", **kw: Any) -> Any:
    return reactor.listenUDP(kw.pop("port", 0), protocol, interface=interface, **kw)


def address(port: Any) -> tuple[str, int]:
    host = port.getHost()
    return (host.host, host.port)


async def turn(reactor: Any) -> None:
    """Let the reactor go round once more."""
    await deferLater(reactor, 0, lambda: None)


async def round_trip(reactor: Any, sender: Any) -> None:
    """Send a datagram from ``sender`` to a fresh port and wait for it (see the module doc)."""
    probe = Collector()
    port = listen(reactor, probe, sender.getHost().host)
    sender.write(b"probe", address(port))
    await probe.wait_for(1)
    await turn(reactor)
    await port.stopListening()


# -- listening and stopping ---------------------------------------------------------------


async def test_port_zero_getHost_and_stopListening(reactor: Any) -> None:
    protocol = Collector()
    port = listen(reactor, protocol)
    host = port.getHost()
    assert host == IPv4Address("UDP", "127.0.0.1", host.port) and host.port > 0
    assert str(host.port) in repr(port)
    assert protocol.transport is port and protocol.events == ["start"]
    d = port.stopListening()
    # stopProtocol runs on a later turn, not inside stopListening (Twisted's rule).
    assert not d.called and protocol.events == ["start"]
    assert await d is None
    assert protocol.events == ["start", "stop"]
    assert protocol.transport is None and not port.connected
    assert await port.stopListening() is None
    port.write(b"ignored", ("127.0.0.1", host.port))  # after stopListening: dropped
    # The port number is free again.
    again = listen(reactor, Collector(), port=host.port)
    assert again.getHost().port == host.port
    await again.stopListening()


def test_listen_before_the_reactor_runs(reactor: Any) -> Deferred[None]:
    protocol = Collector()
    port = listen(reactor, protocol)
    assert protocol.events == ["start"]
    stopped: Deferred[None] = port.stopListening()
    return stopped


async def test_stopListening_in_startProtocol_does_not_reenter(reactor: Any) -> None:
    class StopsAtOnce(Collector):
        def startProtocol(self) -> None:
            super().startProtocol()
            self.stopped = self.transport.stopListening()

    protocol = StopsAtOnce()
    listen(reactor, protocol)
    assert protocol.events == ["start"]
    await protocol.stopped
    assert protocol.events == ["start", "stop"]


def test_exception_in_startProtocol_propagates_and_closes_the_socket(reactor: Any) -> None:
    class Fails(Collector):
        def startProtocol(self) -> None:
            raise ValueError("cannot start")

    protocol = Fails()
    with pytest.raises(ValueError, match="cannot start"):
        listen(reactor, protocol)
    assert protocol.transport is None and protocol.numPorts == 0
    # (the fixture checks that the socket was closed)


def test_reactor_shutdown_stops_the_protocol(reactor: Any) -> None:
    protocol = Collector()
    listen(reactor, protocol)
    reactor.callWhenRunning(reactor.stop)
    reactor.run(installSignalHandlers=False)
    assert protocol.events == ["start", "stop"]


def test_cannot_listen_names_the_address(reactor: Any) -> None:
    taken = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    taken.bind(("127.0.0.1", 0))
    try:
        number = taken.getsockname()[1]
        with pytest.raises(CannotListenError) as info:
            listen(reactor, Collector(), port=number)
        assert f"127.0.0.1:{number}" in str(info.value) and "in use" in str(info.value)
    finally:
        taken.close()
    with pytest.raises(InvalidAddressError):
        listen(reactor, Collector(), "localhost")


# -- datagrams --------------------------------------------------------------------------


async def test_echo_both_ways(reactor: Any) -> None:
    server_port = listen(reactor, Echo())
    client = Collector()
    client_port = listen(reactor, client)
    client_port.write(b"hello", address(server_port))
    client_port.writeSequence([b"wor", b"ld"], address(server_port))
    got = await client.wait_for(2)
    assert got == [(b"hello", address(server_port)), (b"world", address(server_port))]
    await server_port.stopListening()
    await client_port.stopListening()


async def test_empty_datagram(reactor: Any) -> None:
    server_port = listen(reactor, Echo())
    client = Collector()
    client_port = listen(reactor, client)
    client_port.write(b"", address(server_port))
    assert await client.wait_for(1) == [(b"", address(server_port))]
    await server_port.stopListening()
    await client_port.stopListening()


@pytest.mark.parametrize("size", [10, 4000])
async def test_many_datagrams_arrive_in_order(reactor: Any, size: int) -> None:
    # More than one wake-up's worth on the selector reactor: by count, then by bytes.
    server = Collector()
    server_port = listen(reactor, server)
    server_port.getHandle().setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2 << 20)
    client_port = listen(reactor, Collector())
    sent = [b"%05d" % i + bytes(size - 5) for i in range(100)]
    for datagram in sent:
        client_port.write(datagram, address(server_port))
    got = await server.wait_for(100)
    assert [data for data, _ in got] == sent
    await server_port.stopListening()
    await client_port.stopListening()


async def test_maxPacketSize_truncates(reactor: Any) -> None:
    server = Collector()
    server_port = listen(reactor, server, maxPacketSize=100)
    client_port = listen(reactor, Collector())
    client_port.write(bytes(range(250)), address(server_port))
    client_port.write(b"short", address(server_port))
    got = await server.wait_for(2)
    assert [data for data, _ in got] == [bytes(range(100)), b"short"]
    await server_port.stopListening()
    await client_port.stopListening()


async def test_too_big_datagram_raises_and_the_port_still_works(reactor: Any) -> None:
    server = Collector()
    server_port = listen(reactor, server)
    client_port = listen(reactor, Collector())
    with pytest.raises(MessageLengthError):
        client_port.write(b"x" * 70000, address(server_port))
    client_port.write(b"fits", address(server_port))
    assert (await server.wait_for(1))[0][0] == b"fits"
    await server_port.stopListening()
    await client_port.stopListening()


async def test_write_checks_addresses(reactor: Any) -> None:
    port = listen(reactor, Collector())
    with pytest.raises(InvalidAddressError):
        port.write(b"x")  # no address, not connected
    with pytest.raises(InvalidAddressError):
        port.write(b"x", ("localhost", 9))
    with pytest.raises(InvalidAddressError):
        port.write(b"x", ("::1", 9))
    await port.stopListening()


async def test_broadcast_allowed(reactor: Any) -> None:
    port = listen(reactor, Collector())
    assert port.getBroadcastAllowed() is False
    port.setBroadcastAllowed(True)
    assert port.getBroadcastAllowed() is True
    await port.stopListening()


async def test_ipv6(reactor: Any) -> None:
    server_port = listen(reactor, Echo(), "::1")
    host = server_port.getHost()
    assert isinstance(host, IPv6Address) and host.type == "UDP" and host.host == "::1"
    client = Collector()
    client_port = listen(reactor, client, "::1")
    client_port.write(b"six", ("::1", host.port))
    assert await client.wait_for(1) == [(b"six", ("::1", host.port))]
    with pytest.raises(InvalidAddressError):
        client_port.write(b"x", ("127.0.0.1", host.port))
    with pytest.raises(InvalidAddressError):
        client_port.connect("127.0.0.1", host.port)
    await server_port.stopListening()
    await client_port.stopListening()


async def test_exception_in_datagramReceived_is_logged_and_the_port_stays(
        reactor: Any, caplog: pytest.LogCaptureFixture) -> None:
    class Explodes(Collector):
        def datagramReceived(self, datagram: bytes, addr: Any) -> None:
            super().datagramReceived(datagram, addr)
            if datagram == b"boom":
                raise ValueError("user code exploded")

    server = Explodes()
    server_port = listen(reactor, server)
    client_port = listen(reactor, Collector())
    with caplog.at_level(logging.ERROR, logger="reactor"):
        client_port.write(b"boom", address(server_port))
        client_port.write(b"after", address(server_port))
        got = await server.wait_for(2)
    assert [data for data, _ in got] == [b"boom", b"after"]
    errors = [r for r in caplog.records if r.name == "reactor" and r.exc_info]
    assert errors and errors[0].exc_info is not None
    assert errors[0].exc_info[0] is ValueError and "datagramReceived" in errors[0].getMessage()
    assert server_port.connected
    await server_port.stopListening()
    await client_port.stopListening()


# -- connected UDP --------------------------------------------------------------------------


async def test_connected_port_talks_to_its_peer_only(reactor: Any) -> None:
    server = Collector()
    server_port = listen(reactor, server)
    client = Collector()
    client_port = listen(reactor, client)
    stranger_port = listen(reactor, Collector())
    with pytest.raises(ValueError, match="IP addresses"):
        client_port.connect("localhost", server_port.getHost().port)
    client_port.connect(*address(server_port))
    with pytest.raises(RuntimeError):
        client_port.connect(*address(server_port))
    stranger_port.write(b"stranger", address(client_port))  # the kernel drops it
    server_port.write(b"peer", address(client_port))
    assert await client.wait_for(1) == [(b"peer", address(server_port))]
    client_port.write(b"no address needed")
    client_port.write(b"or the peer's", address(server_port))
    with pytest.raises(InvalidAddressError):
        client_port.write(b"x", address(stranger_port))
    got = await server.wait_for(2)
    assert got == [(b"no address needed", address(client_port)),
                   (b"or the peer's", address(client_port))]
    await round_trip(reactor, server_port)
    assert len(client.datagrams) == 1
    for port in (server_port, client_port, stranger_port):
        await port.stopListening()


async def test_connectionRefused(reactor: Any) -> None:
    nobody = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    nobody.bind(("127.0.0.1", 0))
    dead = nobody.getsockname()[1]
    nobody.close()
    client = Collector()
    port = listen(reactor, client)
    port.connect("127.0.0.1", dead)
    port.write(b"anyone?")
    await client.refused
    assert port.connected  # refusal is news, not the end of the port
    await port.stopListening()


async def test_connectionRefused_reported_by_the_next_write(reactor: Any) -> None:
    # While paused nothing reads the socket's pending error, so the next write gets it.
    nobody = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    nobody.bind(("127.0.0.1", 0))
    dead = nobody.getsockname()[1]
    nobody.close()
    client = Collector()
    port = listen(reactor, client)
    port.connect("127.0.0.1", dead)
    port.pauseProducing()
    await turn(reactor)
    await turn(reactor)  # the asyncio backends' transport has closed
    port.write(b"anyone?")
    other_port = listen(reactor, Collector())
    await round_trip(reactor, other_port)  # the ICMP error has come back by now
    assert client.events == ["start"]
    port.write(b"still there?")
    assert client.events == ["start", "refused"]
    await other_port.stopListening()
    await port.stopListening()


# -- pausing ----------------------------------------------------------------------------------


async def test_pause_and_resume(reactor: Any) -> None:
    server = Collector()
    server_port = listen(reactor, server)
    client_port = listen(reactor, Collector())
    server_port.pauseProducing()
    client_port.write(b"held", address(server_port))
    await round_trip(reactor, client_port)
    assert server.datagrams == []
    server_port.resumeProducing()
    assert [d for d, _ in await server.wait_for(1)] == [b"held"]
    await server_port.stopListening()
    await client_port.stopListening()


async def test_pause_from_datagramReceived_stops_at_once(reactor: Any) -> None:
    class PausesOnFirst(Collector):
        def datagramReceived(self, datagram: bytes, addr: Any) -> None:
            super().datagramReceived(datagram, addr)
            if len(self.datagrams) == 1:
                self.transport.pauseProducing()

    server = PausesOnFirst()
    server_port = listen(reactor, server)
    client_port = listen(reactor, Collector())
    for data in (b"one", b"two", b"three"):
        client_port.write(data, address(server_port))
    await server.wait_for(1)
    await round_trip(reactor, client_port)
    assert [d for d, _ in server.datagrams] == [b"one"]
    server_port.resumeProducing()
    assert [d for d, _ in await server.wait_for(3)] == [b"one", b"two", b"three"]
    await server_port.stopListening()
    await client_port.stopListening()


async def test_paused_port_stops_listening(reactor: Any) -> None:
    protocol = Collector()
    port = listen(reactor, protocol)
    port.pauseProducing()
    await port.stopListening()
    assert protocol.events == ["start", "stop"]


# -- multicast -----------------------------------------------------------------------------

GROUPS: dict[int, str] = {socket.AF_INET: "239.255.91.17", socket.AF_INET6: "ff01::9117"}
LOOPBACK: dict[int, str] = {socket.AF_INET: "127.0.0.1", socket.AF_INET6: "::1"}


def _loopback_interface(family: int) -> Any:
    """What joinGroup/setOutgoingInterface take for the loopback interface."""
    return "127.0.0.1" if family == socket.AF_INET else socket.if_nametoindex("lo")


def _bind_group(family: int) -> str:
    """The address a group's receiver binds to (IPv6 multicast needs the scope)."""
    return GROUPS[family] if family == socket.AF_INET else GROUPS[family] + "%lo"


@functools.cache
def loopback_multicast(family: int) -> tuple[str, int]:
    """Can this kernel do multicast on loopback? Probed once, with plain sockets.

    Returns ("ok", 0), or the step that failed and its errno: ("join", e)
    or ("send", e); ("lost", 0) if the datagram silently never arrived.
    """
    group, iface = GROUPS[family], _loopback_interface(family)
    receiver = socket.socket(family, socket.SOCK_DGRAM)
    sender = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if family == socket.AF_INET:
            receiver.bind((group, 0))
            request = socket.inet_aton(group) + socket.inet_aton(iface)
            level, join = socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP
            out, out_value = socket.IP_MULTICAST_IF, socket.inet_aton(iface)
        else:
            receiver.bind((group, 0, 0, iface))
            request = socket.inet_pton(family, group) + struct.pack("@I", iface)
            level, join = socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP
            out, out_value = socket.IPV6_MULTICAST_IF, iface
        try:
            receiver.setsockopt(level, join, request)
        except OSError as e:
            return ("join", e.errno or 0)
        sender.bind((LOOPBACK[family], 0))
        sender.setsockopt(level, out, out_value)
        try:
            sender.sendto(b"probe", (group, receiver.getsockname()[1]))
        except OSError as e:
            return ("send", e.errno or 0)
        if not select.select([receiver], [], [], 2)[0]:
            return ("lost", 0)
        return ("ok", 0)
    finally:
        receiver.close()
        sender.close()


FAMILIES = [pytest.param(socket.AF_INET, id="ipv4"), pytest.param(socket.AF_INET6, id="ipv6")]


@pytest.mark.parametrize("family", FAMILIES)
async def test_multicast_on_loopback(reactor: Any, family: int) -> None:
    """Join a group on loopback and send to it; where the kernel cannot, the
    documented error is what the user gets (MulticastJoinError, or OSError
    from write, with the errno the probe saw)."""
    outcome, code = loopback_multicast(family)
    group, iface = GROUPS[family], _loopback_interface(family)
    server = Collector()
    server_port = reactor.listenMulticast(0, server, interface=_bind_group(family))
    number = server_port.getHost().port
    client = Collector()
    client_port = reactor.listenMulticast(0, client, interface=LOOPBACK[family])
    assert await client_port.setOutgoingInterface(iface) == 1
    assert client_port.getOutgoingInterface() == iface
    assert client_port.getTTL() == 1
    client_port.setTTL(2)
    assert client_port.getTTL() == 2
    assert client_port.getLoopbackMode() is True
    try:
        if outcome == "join":
            with pytest.raises(MulticastJoinError) as join_error:
                await server_port.joinGroup(group, iface)
            assert code in join_error.value.args
            return
        await server_port.joinGroup(group, iface)
        if outcome == "send":
            with pytest.raises(OSError) as send_error:
                client_port.write(b"hello group", (group, number))
            assert send_error.value.errno == code
            return
        if outcome == "lost":
            pytest.skip("this kernel accepts loopback multicast but never delivers it")
        client_port.write(b"hello group", (group, number))
        got = await server.wait_for(1)
        assert got == [(b"hello group", address(client_port))]
        await server_port.leaveGroup(group, iface)
    finally:
        await server_port.stopListening()
        await client_port.stopListening()


async def test_multicast_loopback_mode_delivers_to_the_sender(reactor: Any) -> None:
    outcome, code = loopback_multicast(socket.AF_INET)
    group = GROUPS[socket.AF_INET]
    protocol = Collector()
    port = reactor.listenMulticast(0, protocol, interface=group)
    try:
        await port.setOutgoingInterface("127.0.0.1")
        port.setLoopbackMode(False)
        assert port.getLoopbackMode() is False
        port.setLoopbackMode(True)
        if outcome != "ok":
            pytest.skip(f"no IPv4 multicast on loopback here ({outcome}: "
                        f"{errno.errorcode.get(code, code)}); see test_multicast_on_loopback")
        await port.joinGroup(group, "127.0.0.1")
        port.write(b"to myself", (group, port.getHost().port))
        got = await protocol.wait_for(1)
        assert got[0][0] == b"to myself"
    finally:
        await port.stopListening()


async def test_multicast_join_errors(reactor: Any) -> None:
    port = reactor.listenMulticast(0, Collector(), interface="127.0.0.1")
    with pytest.raises(MulticastJoinError):
        await port.joinGroup("127.0.0.1", "127.0.0.1")  # not a group
    with pytest.raises(MulticastJoinError):
        await port.joinGroup(GROUPS[socket.AF_INET], "::1")  # the wrong family
    with pytest.raises(MulticastJoinError):
        await port.joinGroup("all-systems.mcast.net", "127.0.0.1")  # literals only
    await port.stopListening()


async def test_listenMultiple_shares_a_port(reactor: Any) -> None:
    outcome, _ = loopback_multicast(socket.AF_INET)
    group = GROUPS[socket.AF_INET]
    first, second = Collector(), Collector()
    first_port = reactor.listenMulticast(0, first, interface=group, listenMultiple=True)
    number = first_port.getHost().port
    second_port = reactor.listenMulticast(number, second, interface=group,
                                          listenMultiple=True)
    with pytest.raises(CannotListenError):
        reactor.listenMulticast(number, Collector(), interface=group)
    sender_port = reactor.listenMulticast(0, Collector(), interface="127.0.0.1")
    try:
        if outcome != "ok":
            pytest.skip(f"no IPv4 multicast on loopback here ({outcome}); "
                        "see test_multicast_on_loopback")
        await sender_port.setOutgoingInterface("127.0.0.1")
        for port in (first_port, second_port):
            await port.joinGroup(group, "127.0.0.1")
        sender_port.write(b"to both", (group, number))
        assert (await first.wait_for(1))[0][0] == b"to both"
        assert (await second.wait_for(1))[0][0] == b"to both"
    finally:
        for port in (first_port, second_port, sender_port):
            await port.stopListening()
