"""protocols.wire: the RFC 862-868 services, over fakes and over real sockets."""

from __future__ import annotations

import doctest
import importlib.util
import os
import random
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from deferred import Deferred
from protocols import DatagramProtocol, Factory, wire
from protocols.policies import TimeoutFactory
from protocols.wire import (
    CHARGEN_CYCLE,
    MAX_QUOTE_LENGTH,
    QOTD,
    QOTDUDP,
    TIME_EPOCH_OFFSET,
    Chargen,
    ChargenFactory,
    ChargenUDP,
    Daytime,
    DaytimeFactory,
    DaytimeUDP,
    Discard,
    DiscardFactory,
    DiscardUDP,
    Echo,
    EchoFactory,
    EchoUDP,
    QOTDFactory,
    QuoteSource,
    Time,
    TimeFactory,
    TimeUDP,
    Who,
    chargen_stream,
    daytime_string,
    decode_time,
    encode_time,
    format_quote,
)
from reactor.error import ConnectionDone
from reactor.task import deferLater
from reactor.tcp import HIGH_WATER
from reactor.testing import Clock, StringTransport, StringTransportWithDisconnection
from tests.reactor.conftest import Recorder, RecordingClientFactory

APPLE = b"An apple a day keeps the doctor away.\r\n"

# --- helpers ---------------------------------------------------------------------------


def serve(factory: Any, transport: Any = None) -> tuple[Any, Any]:
    proto = factory.buildProtocol(None)
    transport = StringTransport() if transport is None else transport
    proto.makeConnection(transport)
    return proto, transport


class UDPTransport:
    """A fake UDP transport: records ``(datagram, addr)`` per write."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, Any]] = []

    def write(self, packet: bytes, addr: Any = None) -> None:
        assert isinstance(packet, bytes)
        self.sent.append((packet, addr))


def udp(protocol: Any) -> UDPTransport:
    transport = UDPTransport()
    protocol.noisy = False
    protocol.makeConnection(transport)
    return transport


def at(seconds: float) -> Clock:
    clock = Clock()
    clock.rightNow = seconds
    return clock


class BufferedTransport(StringTransport):
    """Pauses a push producer once ``limit`` unsent bytes are buffered, like a real one."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit
        self.paused = False

    def write(self, data: bytes) -> None:
        super().write(data)
        if len(self.value()) > self.limit and self.producer is not None and not self.paused:
            self.paused = True
            self.producer.pauseProducing()  # type: ignore[attr-defined]

    def drain(self) -> bytes:
        sent = self.value()
        self.clear()
        if self.paused and self.producer is not None:
            self.paused = False
            self.producer.resumeProducing()  # type: ignore[attr-defined]
        return sent


ADDR = ("192.0.2.1", 4242)


def test_module_doctests() -> None:
    assert doctest.testmod(wire).failed == 0


# --- echo, discard, who ------------------------------------------------------------------


def test_echo_sends_everything_back() -> None:
    proto, transport = serve(EchoFactory())
    assert isinstance(proto, Echo)
    for chunk in (b"a", b"", b"bc\r\n", bytes(range(256))):
        proto.dataReceived(chunk)
    assert transport.value() == b"abc\r\n" + bytes(range(256))
    assert not transport.disconnecting


def test_discard_answers_nothing() -> None:
    proto, transport = serve(DiscardFactory())
    assert isinstance(proto, Discard)
    proto.dataReceived(b"x" * 10_000)
    assert transport.value() == b"" and not transport.disconnecting


def test_who_reports_root_and_closes() -> None:
    _, transport = serve(Factory.forProtocol(Who))
    assert transport.value() == b"root\r\n" and transport.disconnecting


def test_echo_udp_replies_once_per_datagram_even_empty() -> None:
    proto = EchoUDP()
    transport = udp(proto)
    proto.datagramReceived(b"one", ADDR)
    proto.datagramReceived(b"", ("192.0.2.2", 7))
    assert transport.sent == [(b"one", ADDR), (b"", ("192.0.2.2", 7))]


def test_discard_udp_never_replies() -> None:
    proto = DiscardUDP()
    transport = udp(proto)
    proto.datagramReceived(b"one", ADDR)
    proto.datagramReceived(b"", ADDR)
    assert transport.sent == []


# --- chargen -------------------------------------------------------------------------------


def test_chargen_cycle_is_rfc_864s_pattern() -> None:
    lines = CHARGEN_CYCLE.split(b"\r\n")
    assert lines[-1] == b"" and len(lines) == 96
    lines = lines[:-1]
    assert all(len(line) == 72 for line in lines)
    assert lines[0] == (b"!\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                        b"[\\]^_`abcdefgh")
    assert lines[1].startswith(b'"#$%') and lines[1].endswith(b"ghi")
    printable = bytes(range(32, 127))
    for n, line in enumerate(lines):
        start = (n + 1) % 95
        assert line == (printable * 2)[start:start + 72]
    # every printable character starts exactly one line
    assert sorted(line[0] for line in lines) == list(range(32, 127))


@given(st.integers(0, 100_000), st.integers(0, 40_000), st.integers(0, 40_000))
def test_chargen_stream_is_continuous(offset: int, first: int, second: int) -> None:
    whole = chargen_stream(offset, first + second)
    assert len(whole) == first + second
    assert whole == chargen_stream(offset, first) + chargen_stream(offset + first, second)
    assert whole == chargen_stream(offset + len(CHARGEN_CYCLE), first + second)


def chargen(limit: int = 10**9) -> tuple[Chargen, BufferedTransport, Clock]:
    clock = Clock()
    proto, transport = serve(ChargenFactory(clock=clock), BufferedTransport(limit))
    return proto, transport, clock


def test_chargen_is_a_streaming_producer_and_writes_on_the_next_turn() -> None:
    proto, transport, clock = chargen(limit=1)
    assert transport.producer is proto and transport.streaming is True
    assert transport.value() == b""
    clock.advance(0)
    assert transport.value() == chargen_stream(0, Chargen.chunk)
    assert transport.paused and proto.bytesSent == Chargen.chunk


def test_chargen_stops_while_paused_and_continues_the_pattern() -> None:
    proto, transport, clock = chargen(limit=100_000)
    clock.advance(0)
    sent = transport.drain()
    # it stopped at the pause, after passing the limit by at most one chunk
    assert 100_000 < len(sent) <= 100_000 + Chargen.chunk
    clock.advance(0)
    clock.advance(0)
    sent += transport.drain()
    assert sent == chargen_stream(0, len(sent))
    assert proto.bytesSent == len(sent)


def test_chargen_writes_at_most_a_burst_per_turn() -> None:
    proto, transport, clock = chargen(limit=Chargen.burst * 3)
    clock.advance(0)  # one advance runs the re-scheduled turns too (Clock semantics)
    assert transport.paused
    for _ in range(5):
        transport.drain()
        clock.advance(0)
    assert proto.bytesSent <= 6 * (Chargen.burst * 3 + Chargen.chunk)


def test_chargen_ignores_input_and_stops_for_good() -> None:
    proto, transport, clock = chargen(limit=1)
    proto.dataReceived(b"ignored")
    proto.stopProducing()
    clock.advance(0)
    assert transport.value() == b""
    proto.resumeProducing()
    clock.advance(0)
    assert transport.value() == b"" and clock.getDelayedCalls() == []


def test_chargen_connection_lost_cancels_the_next_turn() -> None:
    clock = Clock()
    transport = StringTransportWithDisconnection()
    proto: Any = ChargenFactory(clock=clock).buildProtocol(None)
    transport.protocol = proto
    proto.makeConnection(transport)
    assert len(clock.getDelayedCalls()) == 1
    proto.connectionLost(None)
    assert clock.getDelayedCalls() == []


def test_chargen_unregisters_when_the_connection_is_closing() -> None:
    # A transport waits for its producer to unregister before closing; chargen
    # never finishes by itself, so it must notice the close.
    _proto, transport, clock = chargen(limit=1)
    clock.advance(0)
    transport.loseConnection()
    transport.drain()
    clock.advance(0)
    assert transport.producer is None
    assert clock.getDelayedCalls() == []


def test_chargen_under_a_timeout_wrapper_closes() -> None:
    clock = Clock()
    factory = TimeoutFactory(ChargenFactory(clock=clock), timeoutPeriod=5, clock=clock)
    transport = BufferedTransport(limit=1)
    _proto, _ = serve(factory, transport)
    clock.advance(0)
    clock.advance(5)
    assert transport.disconnecting
    transport.drain()
    clock.advance(0)
    assert transport.producer is None


def test_chargen_udp_replies_with_0_to_512_bytes_of_lines() -> None:
    proto = ChargenUDP(rng=random.Random(864))
    transport = udp(proto)
    for n in range(300):
        proto.datagramReceived(b"" if n % 2 else b"anything", ADDR)
    assert len(transport.sent) == 300
    sizes = [len(data) for data, _ in transport.sent]
    assert min(sizes) >= 0 and max(sizes) <= 512
    assert len(set(sizes)) > 50  # random lengths
    for n, (data, addr) in enumerate(transport.sent):
        assert addr == ADDR
        assert data == chargen_stream((n % 95) * 74, len(data))


def test_chargen_udp_can_send_an_empty_reply() -> None:
    class Zero(random.Random):
        def randint(self, a: int, b: int) -> int:
            return 0

    proto = ChargenUDP(rng=Zero())
    transport = udp(proto)
    proto.datagramReceived(b"", ADDR)
    assert transport.sent == [(b"", ADDR)]


# --- QOTD ----------------------------------------------------------------------------------


def test_qotd_default_quote_and_close() -> None:
    proto, transport = serve(Factory.forProtocol(QOTD))
    assert transport.value() == APPLE and transport.disconnecting
    assert proto.getQuote() == APPLE
    _, transport = serve(QOTDFactory())
    assert transport.value() == APPLE


def test_qotd_get_quote_can_be_overridden_twisted_style() -> None:
    class Mine(QOTD):
        def getQuote(self) -> bytes:
            return b"Mine.\r\n"

    _, transport = serve(Factory.forProtocol(Mine))
    assert transport.value() == b"Mine.\r\n" and transport.disconnecting


@pytest.mark.parametrize("quote", ["Less is more.", b"Less is more.", "Less is more.\n"])
def test_qotd_fixed_quote(quote: Any) -> None:
    _, transport = serve(QOTDFactory(quote=quote))
    assert transport.value() == b"Less is more.\r\n"


def test_qotd_quote_source_called_per_connection() -> None:
    counter = iter(range(100))
    factory = QOTDFactory(quote_source=lambda: f"quote {next(counter)}")
    assert serve(factory)[1].value() == b"quote 0\r\n"
    assert serve(factory)[1].value() == b"quote 1\r\n"


def test_qotd_only_one_source() -> None:
    with pytest.raises(ValueError):
        QOTDFactory(quote="a", quote_source=lambda: "b")


def write_quotes(path: Path, text: str, mtime: int) -> None:
    path.write_text(text, encoding="utf-8")
    os.utime(path, ns=(mtime, mtime))  # file systems may have coarse timestamps


def test_qotd_file_one_quote_per_paragraph_at_random(tmp_path: Path) -> None:
    path = tmp_path / "quotes.txt"
    write_quotes(path, "\n\nFirst quote,\nover two lines.\n  \t\nSecond.\n\n\n\nThird.", 1)
    factory = QOTDFactory(quotes_file=path, rng=random.Random(1))
    seen = {serve(factory)[1].value() for _ in range(60)}
    assert seen == {b"First quote,\r\nover two lines.\r\n", b"Second.\r\n", b"Third.\r\n"}


def test_qotd_file_is_reread_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "quotes.txt"
    write_quotes(path, "Old.", 1_000_000_000)
    factory = QOTDFactory(quotes_file=str(path))
    assert serve(factory)[1].value() == b"Old.\r\n"
    write_quotes(path, "New.", 2_000_000_000)
    assert serve(factory)[1].value() == b"New.\r\n"


def test_qotd_file_problems_later_keep_the_old_quotes(tmp_path: Path,
                                                      caplog: Any) -> None:
    path = tmp_path / "quotes.txt"
    write_quotes(path, "Kept.", 1_000_000_000)
    factory = QOTDFactory(quotes_file=path)
    write_quotes(path, "\n\n", 2_000_000_000)
    assert serve(factory)[1].value() == b"Kept.\r\n"
    path.unlink()
    assert serve(factory)[1].value() == b"Kept.\r\n"
    assert "keeping the old ones" in caplog.text


def test_qotd_file_problems_at_start_raise(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        QOTDFactory(quotes_file=tmp_path / "missing.txt")
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n\n")
    with pytest.raises(ValueError, match="no quotes"):
        QOTDFactory(quotes_file=empty)


def test_quotes_are_truncated_to_512_bytes() -> None:
    reply = format_quote("x" * 2000)
    assert len(reply) == MAX_QUOTE_LENGTH
    assert reply == b"x" * 507 + b"...\r\n"
    exact = format_quote("y" * 510)
    assert exact == b"y" * 510 + b"\r\n"
    assert len(format_quote("y" * 511)) <= MAX_QUOTE_LENGTH


def test_truncation_prefers_a_word_boundary() -> None:
    reply = format_quote("word " * 300)
    assert reply.endswith(b" word...\r\n") and len(reply) <= MAX_QUOTE_LENGTH


@given(st.text(min_size=0, max_size=1500))
def test_any_quote_gives_a_valid_short_crlf_reply(text: str) -> None:
    reply = format_quote(text)
    assert len(reply) <= MAX_QUOTE_LENGTH and reply.endswith(b"\r\n")
    body = reply[:-2].decode("utf-8")  # no character was split
    assert "\n" not in body.replace("\r\n", "")  # every line break is CRLF
    assert "\r" not in body.replace("\r\n", "")


def test_qotd_udp_replies_once_per_datagram() -> None:
    proto = QOTDUDP(quote="Short.")
    transport = udp(proto)
    proto.datagramReceived(b"", ADDR)
    proto.datagramReceived(b"ignored", ADDR)
    assert transport.sent == [(b"Short.\r\n", ADDR)] * 2
    assert QuoteSource()() == APPLE


# --- daytime and time ----------------------------------------------------------------------


def test_daytime_string() -> None:
    assert daytime_string(0) == "Thursday, January 01, 1970 00:00:00-UTC"
    assert daytime_string(383247463) == "Monday, February 22, 1982 17:37:43-UTC"
    assert daytime_string(2085978496.9) == "Thursday, February 07, 2036 06:28:16-UTC"


def test_daytime_tcp_uses_the_factory_clock() -> None:
    _, transport = serve(DaytimeFactory(clock=at(383247463)))
    assert transport.value() == b"Monday, February 22, 1982 17:37:43-UTC\r\n"
    assert transport.disconnecting


def test_daytime_defaults_to_the_system_clock() -> None:
    _, transport = serve(Factory.forProtocol(Daytime))
    text = transport.value().decode()
    assert text.endswith("-UTC\r\n")
    assert str(time.gmtime().tm_year) in text


def test_daytime_udp() -> None:
    proto = DaytimeUDP(clock=at(0))
    transport = udp(proto)
    proto.datagramReceived(b"", ADDR)
    assert transport.sent == [(b"Thursday, January 01, 1970 00:00:00-UTC\r\n", ADDR)]


@pytest.mark.parametrize(("unix", "wire_value"), [
    (0, TIME_EPOCH_OFFSET),
    (-TIME_EPOCH_OFFSET, 0),  # 1900-01-01
    (2085978495, 2**32 - 1),  # the last second before the 2036 wrap
    (2085978496, 0),  # the wrap
    (2085978497.7, 1),
    (1_700_000_000, 1_700_000_000 + TIME_EPOCH_OFFSET),
])
def test_time_encoding(unix: float, wire_value: int) -> None:
    assert encode_time(unix) == wire_value.to_bytes(4, "big")


@given(st.integers(-TIME_EPOCH_OFFSET, 4 * 2**32), st.integers(-2**30, 2**30))
def test_time_decodes_to_the_era_nearest_the_reference(unix: int, skew: int) -> None:
    assert decode_time(encode_time(unix), near=unix + skew) == unix


def test_time_tcp_and_udp_use_the_clock() -> None:
    _, transport = serve(TimeFactory(clock=at(1_000_000_000.5)))
    assert decode_time(transport.value(), near=1e9) == 1_000_000_000
    assert transport.disconnecting
    proto = TimeUDP(clock=at(2085978496))
    sent = udp(proto)
    proto.datagramReceived(b"", ADDR)
    assert sent.sent == [(b"\x00\x00\x00\x00", ADDR)]


def test_time_defaults_to_the_system_clock() -> None:
    _, transport = serve(Factory.forProtocol(Time))
    assert abs(decode_time(transport.value()) - time.time()) < 5
    proto = TimeUDP()
    sent = udp(proto)
    proto.datagramReceived(b"", ADDR)
    assert abs(decode_time(sent.sent[0][0]) - time.time()) < 5


# --- real sockets: TCP ---------------------------------------------------------------------


async def fetch(reactor: Any, factory: Any, send: bytes = b"") -> tuple[bytes, Any]:
    """Connect, send ``send``, and read until the server closes."""
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    client_factory = RecordingClientFactory()
    reactor.connectTCP("127.0.0.1", port.getHost().port, client_factory)
    client: Recorder = await client_factory.built
    await client.made
    if send:
        client.transport.write(send)  # type: ignore[union-attr]
    reason = await client.lost
    await port.stopListening()
    return bytes(client.received), reason


async def test_qotd_over_tcp(reactor: Any) -> None:
    data, reason = await fetch(reactor, QOTDFactory(quote="Real sockets, real quote."))
    assert data == b"Real sockets, real quote.\r\n"
    assert reason.check(ConnectionDone)


async def test_daytime_over_tcp(reactor: Any) -> None:
    data, reason = await fetch(reactor, DaytimeFactory(clock=at(0)))
    assert data == b"Thursday, January 01, 1970 00:00:00-UTC\r\n"
    assert reason.check(ConnectionDone)


async def test_time_over_tcp_decodes_to_now(reactor: Any) -> None:
    data, reason = await fetch(reactor, TimeFactory())
    assert len(data) == 4 and reason.check(ConnectionDone)
    assert abs(decode_time(data) - time.time()) < 5


async def test_echo_over_tcp(reactor: Any) -> None:
    port = reactor.listenTCP(0, EchoFactory(), interface="127.0.0.1")
    client_factory = RecordingClientFactory()
    reactor.connectTCP("127.0.0.1", port.getHost().port, client_factory)
    client: Recorder = await client_factory.built
    await client.made
    payload = os.urandom(300_000)
    client.transport.write(payload)  # type: ignore[union-attr]
    assert await client.wait_for_bytes(len(payload)) == payload
    client.transport.loseConnection()  # type: ignore[union-attr]
    assert (await client.lost).check(ConnectionDone)
    await port.stopListening()


class WatchedChargen(Chargen):
    """Chargen that reports its first pause."""

    def __init__(self) -> None:
        self.first_pause: Deferred[None] = Deferred()
        self.lost: Deferred[None] = Deferred()

    def pauseProducing(self) -> None:
        super().pauseProducing()
        if not self.first_pause.called:
            self.first_pause.callback(None)

    def connectionLost(self, reason: Any = None) -> None:
        super().connectionLost(reason)
        self.lost.callback(None)


class SlowReader(Recorder):
    """Stops reading as soon as it is connected."""

    def connectionMade(self) -> None:
        self.transport.pauseProducing()  # type: ignore[union-attr]
        super().connectionMade()


def queued_bytes(transport: Any) -> int:
    """Bytes a server transport holds in user space, on either backend."""
    if hasattr(transport, "_queued"):  # the selector reactor's TCP transport
        return int(transport._queued)
    return int(transport._transport.get_write_buffer_size())  # the loop's transport


@pytest.mark.reactor_timeout(60)
async def test_chargen_is_flow_controlled_against_a_slow_reader(reactor: Any) -> None:
    server = WatchedChargen()
    factory = ChargenFactory()
    factory.protocol = lambda: server  # type: ignore[assignment]
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    client_factory = RecordingClientFactory(SlowReader)
    reactor.connectTCP("127.0.0.1", port.getHost().port, client_factory)
    client: SlowReader = await client_factory.built
    await client.made
    await server.first_pause
    # Let the kernel buffers between the two fill up; however long that
    # takes, chargen only runs while the transport is below its high-water mark.
    for _ in range(20):
        await deferLater(reactor, 0.01)
        assert queued_bytes(server.transport) <= HIGH_WATER + Chargen.chunk
    produced = server.bytesSent
    # Bounded by the transport's buffer plus the kernel's socket buffers:
    # a few MB at most, where an unthrottled writer would be at gigabytes.
    assert produced < 32 * 1024 * 1024
    assert bytes(client.received) == b""
    # Reading again drains everything and chargen resumes, pattern intact.
    client.transport.resumeProducing()  # type: ignore[union-attr]
    data = await client.wait_for_bytes(produced + 1_000_000)
    assert data[:len(CHARGEN_CYCLE) * 3] == CHARGEN_CYCLE * 3
    assert data == chargen_stream(0, len(data))
    client.transport.loseConnection()  # type: ignore[union-attr]
    await client.lost
    await server.lost
    await port.stopListening()


# --- real sockets: UDP (needs reactor/udp.py) -------------------------------------------

needs_udp = pytest.mark.skipif(importlib.util.find_spec("reactor.udp") is None,
                               reason="reactor/udp.py is not written yet")


class UDPClient(DatagramProtocol):
    """Collects replies; ``wait(n)`` fires once ``n`` have arrived."""

    noisy = False

    def __init__(self) -> None:
        self.replies: list[bytes] = []
        self._waiting: list[tuple[int, Deferred[list[bytes]]]] = []

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        self.replies.append(datagram)
        for item in list(self._waiting):
            if len(self.replies) >= item[0]:
                self._waiting.remove(item)
                item[1].callback(list(self.replies))

    def wait(self, count: int) -> Deferred[list[bytes]]:
        d: Deferred[list[bytes]] = Deferred()
        if len(self.replies) >= count:
            d.callback(list(self.replies))
        else:
            self._waiting.append((count, d))
        return d


async def ask_udp(reactor: Any, server: Any, datagrams: list[bytes]) -> list[bytes]:
    server.noisy = False
    server_port = reactor.listenUDP(0, server, interface="127.0.0.1")
    client = UDPClient()
    client_port = reactor.listenUDP(0, client, interface="127.0.0.1")
    try:
        for datagram in datagrams:
            client.transport.write(datagram, ("127.0.0.1", server_port.getHost().port))
        return await client.wait(len(datagrams))
    finally:
        await client_port.stopListening()
        await server_port.stopListening()


@needs_udp
async def test_echo_over_udp(reactor: Any) -> None:
    replies = await ask_udp(reactor, EchoUDP(), [b"one", b""])
    assert sorted(replies) == [b"", b"one"]


@needs_udp
async def test_qotd_daytime_time_chargen_over_udp(reactor: Any) -> None:
    assert await ask_udp(reactor, QOTDUDP(quote="Datagram."), [b""]) == [b"Datagram.\r\n"]
    assert await ask_udp(reactor, DaytimeUDP(clock=at(0)), [b"x"]) == [
        b"Thursday, January 01, 1970 00:00:00-UTC\r\n"]
    (stamp,) = await ask_udp(reactor, TimeUDP(), [b""])
    assert abs(decode_time(stamp) - time.time()) < 5
    replies = await ask_udp(reactor, ChargenUDP(rng=random.Random(5)), [b"", b"", b""])
    assert len(replies) == 3 and all(len(r) <= 512 for r in replies)


@needs_udp
async def test_discard_over_udp_never_replies(reactor: Any) -> None:
    received: Deferred[None] = Deferred()

    class Watched(DiscardUDP):
        def datagramReceived(self, datagram: bytes, addr: Any) -> None:
            super().datagramReceived(datagram, addr)
            received.callback(None)

    discard, echo, client = Watched(), EchoUDP(), UDPClient()
    for proto in (discard, echo):
        proto.noisy = False
    discard_port = reactor.listenUDP(0, discard, interface="127.0.0.1")
    echo_port = reactor.listenUDP(0, echo, interface="127.0.0.1")
    client_port = reactor.listenUDP(0, client, interface="127.0.0.1")
    client.transport.write(b"into the void", ("127.0.0.1", discard_port.getHost().port))
    await received
    client.transport.write(b"ping", ("127.0.0.1", echo_port.getHost().port))
    assert await client.wait(1) == [b"ping"]
    for port in (client_port, echo_port, discard_port):
        await port.stopListening()
