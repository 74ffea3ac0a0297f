"""Framing receivers and FileSender, fed whole, byte by byte and in random splits."""

from __future__ import annotations

import doctest
import io
import struct
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deferred import Failure
from protocols import _buffer, basic
from protocols.basic import (
    FileSender,
    Int8StringReceiver,
    Int16StringReceiver,
    Int32StringReceiver,
    IntNStringReceiver,
    LineOnlyReceiver,
    LineReceiver,
    NetstringParseError,
    NetstringReceiver,
    StringTooLongError,
)
from reactor.testing import StringTransport, connectedPair

# --- helpers ---------------------------------------------------------------------------


def split_at(data: bytes, cuts: list[int]) -> Iterator[bytes]:
    """Yield ``data`` cut at the given offsets (sorted, clipped, may be empty pieces)."""
    previous = 0
    for cut in sorted(min(max(c, 0), len(data)) for c in cuts):
        yield data[previous:cut]
        previous = cut
    yield data[previous:]


def chunkings(data: bytes) -> dict[str, list[bytes]]:
    return {
        "whole": [data],
        "bytes": [data[i : i + 1] for i in range(len(data))],
        "pairs": [data[i : i + 2] for i in range(0, len(data), 2)],
    }


CHUNKINGS = ["whole", "bytes", "pairs"]
cuts = st.lists(st.integers(min_value=0, max_value=400), max_size=12)


class Lines(LineReceiver):
    """Records every callback."""

    def __init__(self) -> None:
        self.lines: list[bytes] = []
        self.raw: list[bytes] = []
        self.exceeded: list[bytes] = []

    def lineReceived(self, line: bytes) -> None:
        self.lines.append(line)

    def rawDataReceived(self, data: bytes) -> None:
        self.raw.append(data)

    def lineLengthExceeded(self, line: bytes) -> Any:
        self.exceeded.append(line)
        return super().lineLengthExceeded(line)


class OnlyLines(LineOnlyReceiver):
    def __init__(self) -> None:
        self.lines: list[bytes] = []
        self.exceeded: list[bytes] = []

    def lineReceived(self, line: bytes) -> None:
        self.lines.append(line)
        if line == b"QUIT":
            self.transport.loseConnection()

    def lineLengthExceeded(self, line: bytes) -> Any:
        self.exceeded.append(line)
        return super().lineLengthExceeded(line)


def connect(proto: Any) -> StringTransport:
    transport = StringTransport()
    proto.makeConnection(transport)
    return transport


def feed(proto: Any, chunks: list[bytes] | Iterator[bytes]) -> None:
    for chunk in chunks:
        proto.dataReceived(chunk)


# --- ReceiveBuffer ---------------------------------------------------------------------

buffer_ops = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.binary(max_size=700)),
        st.tuples(st.just("append"), st.sampled_from([b"\r", b"\n", b"\r\n", b"x" * 600])),
        st.tuples(st.just("take_line"), st.sampled_from([b"\r\n", b"\n", b"ab"])),
        st.tuples(st.just("find"), st.sampled_from([b"\r\n", b"\n"])),
        st.tuples(st.just("take"), st.integers(0, 5000)),
        st.tuples(st.just("skip"), st.integers(0, 5000)),
        st.tuples(st.just("take_all"), st.none()),
        st.tuples(st.just("peek"), st.integers(0, 100)),
        st.tuples(st.just("clear"), st.none()),
    ),
    max_size=60,
)


@settings(max_examples=400, deadline=None)
@given(buffer_ops)
def test_receive_buffer_matches_a_bytes_model(operations: list[Any]) -> None:
    """Every branch (zero-copy, join, bytearray growth, compaction) keeps FIFO semantics."""
    buf = _buffer.ReceiveBuffer()
    model = b""
    for op, arg in operations:
        if op == "append":
            buf.append(arg)
            model += arg
        elif op == "take_line":
            index = model.find(arg)
            got = buf.take_line(arg)
            if index < 0:
                assert got is None
            else:
                assert got == model[:index] and type(got) is bytes
                model = model[index + len(arg) :]
        elif op == "find":
            assert buf.find(arg) == model.find(arg)
        elif op == "take":
            got = buf.take(arg)
            assert got == model[:arg] and type(got) is bytes
            model = model[arg:]
        elif op == "skip":
            buf.skip(arg)
            model = model[arg:]
        elif op == "take_all":
            assert buf.take_all() == model
            model = b""
        elif op == "peek":
            assert buf.peek(arg) == model[:arg]
        else:
            buf.clear()
            model = b""
        assert len(buf) == len(model) and bool(buf) == bool(model)
        assert (buf._data == b"") == (model == b"")  # the invariant parsers rely on


def test_receive_buffer_zero_copy_for_a_whole_chunk() -> None:
    buf = _buffer.ReceiveBuffer()
    chunk = b"complete chunk"
    buf.append(chunk)
    assert buf.take_all() is chunk


def test_receive_buffer_compacts_a_long_trickle() -> None:
    buf = _buffer.ReceiveBuffer()
    buf.append(b"y" * 10_000)
    for _ in range(100):
        buf.append(b"z")  # small chunks behind a big rest: grows in place
    assert type(buf._data) is bytearray
    buf.skip(9_000)
    assert buf._start == 0 and len(buf._data) == 1_100  # the consumed prefix went
    assert buf.take_all() == b"y" * 1_000 + b"z" * 100


# --- LineReceiver ----------------------------------------------------------------------


@pytest.mark.parametrize("how", CHUNKINGS)
def test_lines_with_trailing_partial_line(how: str) -> None:
    proto = Lines()
    connect(proto)
    feed(proto, chunkings(b"a\r\nbb\r\n\r\nccc")[how])
    assert proto.lines == [b"a", b"bb", b""]
    proto.dataReceived(b"\r\n")
    assert proto.lines == [b"a", b"bb", b"", b"ccc"]


line_lists = st.lists(
    st.binary(max_size=30).filter(lambda b: b"\r\n" not in b and not b.endswith(b"\r")),
    max_size=15,
)


@settings(max_examples=200, deadline=None)
@given(lines=line_lists, tail=st.binary(max_size=10), cut=cuts)
def test_lines_random_splits(lines: list[bytes], tail: bytes, cut: list[int]) -> None:
    tail = tail.replace(b"\r", b"").replace(b"\n", b"")
    data = b"".join(line + b"\r\n" for line in lines) + tail
    proto = Lines()
    connect(proto)
    feed(proto, split_at(data, cut))
    assert proto.lines == lines
    assert proto.clearLineBuffer() == tail


@pytest.mark.parametrize("how", CHUNKINGS)
@pytest.mark.parametrize("delimiter", [b"\n", b"<END>", b"\r\n\r\n"])
def test_other_delimiters(how: str, delimiter: bytes) -> None:
    proto = Lines()
    proto.delimiter = delimiter
    connect(proto)
    data = delimiter.join([b"one", b"two", b"three", b""])
    feed(proto, chunkings(data)[how])
    assert proto.lines == [b"one", b"two", b"three"]


def test_delimiter_changed_between_lines() -> None:
    class Switch(Lines):
        def lineReceived(self, line: bytes) -> None:
            super().lineReceived(line)
            self.delimiter = b"\n"

    proto = Switch()
    connect(proto)
    proto.dataReceived(b"first\r\nsec")  # the search for \r\n scanned "sec"
    proto.dataReceived(b"ond\nthird\n")
    assert proto.lines == [b"first", b"second", b"third"]


def test_send_line() -> None:
    proto = Lines()
    transport = connect(proto)
    proto.sendLine(b"hello")
    assert transport.value() == b"hello\r\n"


@pytest.mark.parametrize("how", CHUNKINGS)
def test_line_at_max_length_is_accepted(how: str) -> None:
    proto = Lines()
    proto.MAX_LENGTH = 5
    transport = connect(proto)
    feed(proto, chunkings(b"12345\r\n")[how])
    assert proto.lines == [b"12345"] and proto.exceeded == []
    assert not transport.disconnecting


def test_too_long_line_with_delimiter_gets_line_and_rest() -> None:
    proto = Lines()
    proto.MAX_LENGTH = 5
    transport = connect(proto)
    proto.dataReceived(b"ok\r\n123456\r\nmore\r\n")
    assert proto.lines == [b"ok"]
    assert proto.exceeded == [b"123456\r\nmore\r\n"]
    assert transport.disconnecting
    assert proto.clearLineBuffer() == b""


def test_too_long_unterminated_line_is_detected_without_delimiter() -> None:
    proto = Lines()
    proto.MAX_LENGTH = 5
    transport = connect(proto)
    proto.dataReceived(b"12345\r")  # could still be a valid line
    assert proto.exceeded == []
    proto.dataReceived(b"6")
    assert proto.exceeded == [b"12345\r6"] and transport.disconnecting


def test_too_long_line_trickled_byte_by_byte() -> None:
    proto = Lines()
    proto.MAX_LENGTH = 10
    connect(proto)
    feed(proto, chunkings(b"x" * 50)["bytes"])
    # As in Twisted, input keeps arriving until the transport really closes, and
    # each further MAX_LENGTH + len(delimiter) bytes is reported again.
    assert proto.exceeded == [b"x" * 12] * 4


def test_set_raw_mode_mid_buffer_delivers_the_rest_raw() -> None:
    class Switcher(Lines):
        def lineReceived(self, line: bytes) -> None:
            super().lineReceived(line)
            if line == b"RAW":
                self.setRawMode()

    data = b"a\r\nRAW\r\nraw\r\nbytes"
    for how, chunks in chunkings(data).items():
        proto = Switcher()
        connect(proto)
        feed(proto, chunks)
        assert proto.lines == [b"a", b"RAW"], how
        assert b"".join(proto.raw) == b"raw\r\nbytes", how
        assert all(proto.raw), how  # never called with empty data
        proto.dataReceived(b"!")
        assert proto.raw[-1] == b"!"


def test_set_line_mode_with_extra_from_raw_data() -> None:
    class Body(Lines):
        """A header line gives a body length; the body is raw; then lines again."""

        remaining = 0

        def lineReceived(self, line: bytes) -> None:
            super().lineReceived(line)
            if line.startswith(b"LEN "):
                self.remaining = int(line[4:])
                self.setRawMode()

        def rawDataReceived(self, data: bytes) -> None:
            body, extra = data[: self.remaining], data[self.remaining :]
            self.remaining -= len(body)
            self.raw.append(body)
            if self.remaining == 0:
                self.setLineMode(extra)

    data = b"LEN 7\r\nbody\r\n!after\r\nend\r\n"
    for how, chunks in chunkings(data).items():
        proto = Body()
        connect(proto)
        feed(proto, chunks)
        assert b"".join(proto.raw) == b"body\r\n!", how
        assert proto.lines == [b"LEN 7", b"after", b"end"], how


@settings(max_examples=100, deadline=None)
@given(cut=cuts)
def test_mode_switching_random_splits(cut: list[int]) -> None:
    class Body(Lines):
        remaining = 0

        def lineReceived(self, line: bytes) -> None:
            super().lineReceived(line)
            if line.startswith(b"LEN "):
                self.remaining = int(line[4:])
                self.setRawMode()

        def rawDataReceived(self, data: bytes) -> None:
            body, extra = data[: self.remaining], data[self.remaining :]
            self.remaining -= len(body)
            self.raw.append(body)
            if self.remaining == 0:
                self.setLineMode(extra)

    data = b"LEN 3\r\nabcLEN 0\r\nLEN 4\r\n\r\n\r\nline\r\n"
    proto = Body()
    connect(proto)
    feed(proto, split_at(data, cut))
    assert b"".join(proto.raw) == b"abc\r\n\r\n"
    assert proto.lines == [b"LEN 3", b"LEN 0", b"LEN 4", b"line"]


def test_clear_line_buffer_from_line_received() -> None:
    class Clearing(Lines):
        def lineReceived(self, line: bytes) -> None:
            super().lineReceived(line)
            self.cleared = self.clearLineBuffer()

    proto = Clearing()
    connect(proto)
    proto.dataReceived(b"one\r\ntwo\r\nthree")
    assert proto.lines == [b"one"]
    assert proto.cleared == b"two\r\nthree"
    assert proto.clearLineBuffer() == b""
    assert Lines().clearLineBuffer() == b""


def test_lose_connection_stops_delivery() -> None:
    class Quitter(Lines):
        def lineReceived(self, line: bytes) -> None:
            super().lineReceived(line)
            if line == b"QUIT":
                self.transport.loseConnection()

    proto = Quitter()
    connect(proto)
    proto.dataReceived(b"a\r\nQUIT\r\nb\r\nc\r\n")
    assert proto.lines == [b"a", b"QUIT"]


def test_true_return_value_stops_parsing() -> None:
    class Stopper(Lines):
        def lineReceived(self, line: bytes) -> Any:
            super().lineReceived(line)
            return "stop" if line == b"stop" else None

    proto = Stopper()
    connect(proto)
    assert proto.dataReceived(b"a\r\nstop\r\nb\r\n") == "stop"
    assert proto.lines == [b"a", b"stop"]


def test_pause_and_resume_producing() -> None:
    class Pausing(Lines):
        def lineReceived(self, line: bytes) -> None:
            super().lineReceived(line)
            if line == b"pause":
                self.pauseProducing()

    proto = Pausing()
    transport = connect(proto)
    proto.dataReceived(b"a\r\npause\r\nb\r\nc")
    assert proto.lines == [b"a", b"pause"]
    assert proto.paused and transport.producerState == "paused"
    proto.dataReceived(b"\r\n")  # buffered while paused
    assert proto.lines == [b"a", b"pause"]
    proto.resumeProducing()
    assert proto.lines == [b"a", b"pause", b"b", b"c"]
    assert transport.producerState == "producing"
    proto.stopProducing()
    assert proto.paused and transport.producerState == "stopped"


def test_resume_from_inside_line_received() -> None:
    class Bounce(Lines):
        def lineReceived(self, line: bytes) -> None:
            super().lineReceived(line)
            self.pauseProducing()
            self.resumeProducing()

    proto = Bounce()
    connect(proto)
    proto.dataReceived(b"1\r\n2\r\n3\r\n")
    assert proto.lines == [b"1", b"2", b"3"]


def test_raw_mode_fast_path_passes_chunks_through() -> None:
    proto = Lines()
    connect(proto)
    proto.setRawMode()
    chunk = b"x" * 1000
    proto.dataReceived(chunk)
    proto.dataReceived(b"")
    assert proto.raw == [chunk]


def test_line_receiver_over_the_loopback() -> None:
    class Echo(LineReceiver):
        def lineReceived(self, line: bytes) -> None:
            self.sendLine(line[::-1])

    client = Lines()
    pump = connectedPair(Echo(), client)
    client.sendLine(b"abc")
    client.sendLine(b"xyz")
    pump.flush()
    assert client.lines == [b"cba", b"zyx"]


def scanning_work(proto: Any, size: int) -> int:
    """Feed a ``size``-byte line one byte at a time; return the bytes searched."""
    proto.MAX_LENGTH = 2 * size
    connect(proto)
    data = b"x" * size + b"\r\n"
    for i in range(len(data)):
        proto.dataReceived(data[i : i + 1])
    assert proto.lines == [b"x" * size]
    assert proto._rbuf is not None
    return int(proto._rbuf.bytes_scanned)


# Each new byte is searched once, plus len(delimiter) - 1 bytes of overlap per
# call (a delimiter may straddle chunks), plus the bounded re-split of rests
# shorter than _SMALL_REST. A rescanning parser (Twisted's) does size**2 / 2.
def work_bound(size: int, delimiter: bytes = b"\r\n") -> int:
    return (size + len(delimiter)) * len(delimiter) + _buffer._SMALL_REST**2


def test_linear_scanning_of_a_1mb_line_trickled_byte_by_byte() -> None:
    """A 1 MB line fed one byte at a time is searched about once, not a million times.

    The work is counted (bytes examined by the delimiter search), not timed, so
    the test cannot flake on a slow machine.
    """
    size = 1 << 20
    assert scanning_work(Lines(), size) <= work_bound(size)


@pytest.mark.parametrize("cls", [Lines, OnlyLines])
def test_doubling_the_input_doubles_the_work(cls: Any) -> None:
    small, large = scanning_work(cls(), 1 << 16), scanning_work(cls(), 1 << 17)
    assert large <= work_bound(1 << 17)
    # The marginal cost of the extra 64 KiB is len(delimiter) scans per byte.
    assert large - small <= 2 * (1 << 16) + 2


def test_linear_scanning_with_many_lines_and_a_long_delimiter() -> None:
    proto = Lines()
    proto.delimiter = b"--boundary--"
    connect(proto)
    data = b"".join(b"line %d--boundary--" % i for i in range(5000))
    for i in range(0, len(data), 7):
        proto.dataReceived(data[i : i + 7])
    assert len(proto.lines) == 5000
    assert proto._rbuf is not None
    calls = len(range(0, len(data), 7))
    assert proto._rbuf.bytes_scanned <= len(data) + calls * len(proto.delimiter)


# --- LineOnlyReceiver ------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(lines=line_lists, cut=cuts)
def test_line_only_random_splits(lines: list[bytes], cut: list[int]) -> None:
    proto = OnlyLines()
    proto.MAX_LENGTH = 1000
    connect(proto)
    feed(proto, split_at(b"".join(line + b"\r\n" for line in lines), cut))
    assert proto.lines == [line for line in lines]


def test_line_only_stops_after_lose_connection() -> None:
    proto = OnlyLines()
    connect(proto)
    proto.dataReceived(b"a\r\nQUIT\r\nb\r\n")
    assert proto.lines == [b"a", b"QUIT"]


def test_line_only_max_length() -> None:
    proto = OnlyLines()
    proto.MAX_LENGTH = 3
    transport = connect(proto)
    proto.dataReceived(b"abc\r\nabcd\r\nnext\r\n")
    assert proto.lines == [b"abc"] and proto.exceeded == [b"abcd"]
    assert transport.disconnecting
    proto2 = OnlyLines()
    proto2.MAX_LENGTH = 3
    connect(proto2)
    proto2.dataReceived(b"ab")
    proto2.dataReceived(b"cd")
    assert proto2.exceeded == [b"abcd"]


def test_line_only_send_line() -> None:
    proto = OnlyLines()
    transport = connect(proto)
    proto.sendLine(b"out")
    assert transport.value() == b"out\r\n"


# --- NetstringReceiver -----------------------------------------------------------------


class Strings(NetstringReceiver):
    def __init__(self) -> None:
        self.strings: list[bytes] = []

    def stringReceived(self, string: bytes) -> None:
        self.strings.append(string)


@pytest.mark.parametrize("how", CHUNKINGS)
def test_netstrings(how: str) -> None:
    proto = Strings()
    transport = connect(proto)
    feed(proto, chunkings(b"5:hello,0:,3:a,c,12:")[how])
    assert proto.strings == [b"hello", b"", b"a,c"]
    assert not proto.brokenPeer and not transport.disconnecting


@settings(max_examples=200, deadline=None)
@given(strings=st.lists(st.binary(max_size=40), max_size=10), cut=cuts)
def test_netstrings_round_trip_random_splits(strings: list[bytes], cut: list[int]) -> None:
    sender, receiver = Strings(), Strings()
    out = connect(sender)
    connect(receiver)
    for s in strings:
        sender.sendString(s)
    feed(receiver, split_at(out.value(), cut))
    assert receiver.strings == strings


def test_send_netstring_format() -> None:
    proto = Strings()
    transport = connect(proto)
    proto.sendString(b"hello")
    proto.sendString(b"")
    assert transport.value() == b"5:hello,0:,"


@pytest.mark.parametrize(
    "data",
    [
        b"hello",  # no length
        b":hello,",  # empty length
        b"05:hello,",  # leading zero
        b"00:,",
        b"1a:x,",  # not a number
        b"-1:x,",
        b"5:hello!",  # missing comma
        b"100000:",  # longer than MAX_LENGTH
        b"999999999999999999999",  # absurd length, no colon yet
        b" 5:hello,",
    ],
)
@pytest.mark.parametrize("how", CHUNKINGS)
def test_netstring_errors_drop_the_connection(data: bytes, how: str) -> None:
    proto = Strings()
    transport = connect(proto)
    feed(proto, chunkings(b"2:ok," + data)[how])
    assert proto.strings == [b"ok"]
    assert proto.brokenPeer == 1 and transport.disconnecting
    proto.dataReceived(b"3:abc,")  # nothing is parsed after a broken peer
    assert proto.strings == [b"ok"]


def test_netstring_partial_length_is_checked_early() -> None:
    proto = Strings()
    proto.MAX_LENGTH = 50
    connect(proto)
    proto.dataReceived(b"5")
    assert not proto.brokenPeer
    proto.dataReceived(b"1")  # "51" already exceeds 50
    assert proto.brokenPeer


def test_netstring_max_length_boundary() -> None:
    proto = Strings()
    proto.MAX_LENGTH = 3
    connect(proto)
    proto.dataReceived(b"3:abc,")
    assert proto.strings == [b"abc"]
    proto.dataReceived(b"4:abcd,")
    assert proto.brokenPeer


def test_netstring_parse_error_type() -> None:
    assert issubclass(NetstringParseError, ValueError)


def test_netstring_without_make_connection_still_parses() -> None:
    proto = Strings()
    proto.dataReceived(b"1:x,")
    assert proto.strings == [b"x"]


# --- Int*StringReceiver ----------------------------------------------------------------


def recorder(base: type[IntNStringReceiver]) -> IntNStringReceiver:
    class Recorder(base):  # type: ignore[valid-type,misc]
        def __init__(self) -> None:
            self.strings: list[bytes] = []
            self.exceeded: list[int] = []

        def stringReceived(self, string: bytes) -> None:
            self.strings.append(string)

        def lengthLimitExceeded(self, length: int) -> None:
            self.exceeded.append(length)
            super().lengthLimitExceeded(length)

    return Recorder()  # type: ignore[no-any-return]


INT_RECEIVERS = [
    (Int8StringReceiver, "!B", 1),
    (Int16StringReceiver, "!H", 2),
    (Int32StringReceiver, "!I", 4),
]


@pytest.mark.parametrize(("cls", "fmt", "size"), INT_RECEIVERS)
@pytest.mark.parametrize("how", CHUNKINGS)
def test_int_prefixed_strings(cls: Any, fmt: str, size: int, how: str) -> None:
    assert cls.prefixLength == size
    proto = recorder(cls)
    connect(proto)
    data = b"".join(struct.pack(fmt, len(s)) + s for s in (b"abc", b"", b"z" * 200))
    feed(proto, chunkings(data + struct.pack(fmt, 5) + b"par")[how])
    assert proto.strings == [b"abc", b"", b"z" * 200]  # type: ignore[attr-defined]
    proto.dataReceived(b"ts")
    assert proto.strings[-1] == b"parts"  # type: ignore[attr-defined]


@pytest.mark.parametrize(("cls", "fmt", "size"), INT_RECEIVERS)
def test_int_send_string_prefix(cls: Any, fmt: str, size: int) -> None:
    proto = recorder(cls)
    transport = connect(proto)
    proto.sendString(b"hey")
    assert transport.value() == struct.pack(fmt, 3) + b"hey"
    assert transport.value()[:size] == (3).to_bytes(size, "big")


@settings(max_examples=100, deadline=None)
@given(strings=st.lists(st.binary(max_size=300), max_size=8), cut=cuts)
def test_int16_round_trip_random_splits(strings: list[bytes], cut: list[int]) -> None:
    sender, receiver = recorder(Int16StringReceiver), recorder(Int16StringReceiver)
    out = connect(sender)
    connect(receiver)
    for s in strings:
        sender.sendString(s)
    feed(receiver, split_at(out.value(), cut))
    assert receiver.strings == strings  # type: ignore[attr-defined]


def test_int8_string_too_long() -> None:
    proto = recorder(Int8StringReceiver)
    transport = connect(proto)
    proto.sendString(b"x" * 255)
    with pytest.raises(StringTooLongError):
        proto.sendString(b"x" * 256)
    assert len(transport.value()) == 256
    assert issubclass(StringTooLongError, AssertionError)


def test_int_length_limit_exceeded() -> None:
    proto = recorder(Int32StringReceiver)
    proto.MAX_LENGTH = 10
    transport = connect(proto)
    proto.dataReceived(struct.pack("!I", 3) + b"abc" + struct.pack("!I", 11) + b"x")
    assert proto.strings == [b"abc"]  # type: ignore[attr-defined]
    assert proto.exceeded == [11]  # type: ignore[attr-defined]
    assert transport.disconnecting


def test_int_pause_and_resume() -> None:
    class Pausing(Int8StringReceiver):
        def __init__(self) -> None:
            self.strings: list[bytes] = []

        def stringReceived(self, string: bytes) -> None:
            self.strings.append(string)
            if string == b"p":
                self.pauseProducing()

    proto = Pausing()
    transport = connect(proto)
    proto.dataReceived(b"\x01a\x01p\x01b\x01c")
    assert proto.strings == [b"a", b"p"] and transport.producerState == "paused"
    proto.resumeProducing()
    assert proto.strings == [b"a", b"p", b"b", b"c"]


def test_int_trickled_large_string() -> None:
    proto = recorder(Int32StringReceiver)
    proto.MAX_LENGTH = 1 << 20
    connect(proto)
    payload = bytes(range(256)) * 1024
    data = struct.pack("!I", len(payload)) + payload
    for i in range(0, len(data), 3):
        proto.dataReceived(data[i : i + 3])
    assert proto.strings == [payload]  # type: ignore[attr-defined]


# --- FileSender ------------------------------------------------------------------------


def pull_all(transport: StringTransport, limit: int = 10_000) -> None:
    for _ in range(limit):
        if transport.producer is None:
            return
        assert transport.streaming is False  # a pull producer
        transport.producer.resumeProducing()  # type: ignore[attr-defined]
    raise AssertionError("producer never finished")


def test_file_sender_sends_everything_and_fires_with_last_byte() -> None:
    data = bytes(range(256)) * 200  # several chunks
    transport = StringTransport()
    sender = FileSender()
    results: list[Any] = []
    sender.beginFileTransfer(io.BytesIO(data), transport).addCallback(results.append)
    assert transport.producer is sender
    writes = []
    original_write = transport.write

    def counting_write(chunk: bytes) -> None:
        writes.append(len(chunk))
        original_write(chunk)

    transport.write = counting_write  # type: ignore[method-assign]
    pull_all(transport)
    assert transport.value() == data
    assert results == [data[-1:]]
    assert max(writes) == FileSender.CHUNK_SIZE
    assert len(writes) == -(-len(data) // FileSender.CHUNK_SIZE)


def test_file_sender_transform() -> None:
    transport = StringTransport()
    results: list[Any] = []
    d = FileSender().beginFileTransfer(io.BytesIO(b"abc"), transport, bytes.upper)
    d.addCallback(results.append)
    pull_all(transport)
    assert transport.value() == b"ABC" and results == [b"C"]


def test_file_sender_empty_file() -> None:
    transport = StringTransport()
    results: list[Any] = []
    FileSender().beginFileTransfer(io.BytesIO(b""), transport).addCallback(results.append)
    pull_all(transport)
    assert results == [b""] and transport.value() == b""


def test_file_sender_stop_producing_fails_the_deferred() -> None:
    transport = StringTransport()
    sender = FileSender()
    errors: list[Failure] = []
    sender.beginFileTransfer(io.BytesIO(b"x" * 100), transport).addErrback(errors.append)
    sender.pauseProducing()  # a no-op for a pull producer
    sender.stopProducing()
    sender.stopProducing()  # only fails once
    assert len(errors) == 1
    assert "stop producing" in errors[0].getErrorMessage()


def test_file_sender_over_the_loopback() -> None:
    from protocols.base import Protocol

    class Collector(Protocol):
        received = b""

        def dataReceived(self, data: bytes) -> None:
            self.received += data

    class Server(Protocol):
        def connectionMade(self) -> None:
            sender = FileSender()
            sender.CHUNK_SIZE = 1000
            d = sender.beginFileTransfer(io.BytesIO(b"q" * 10_000), self.transport)
            d.addCallback(lambda _: self.transport.loseConnection())  # type: ignore[union-attr]

    client = Collector()
    pump = connectedPair(Server(), client, greet=False)
    pump.flush()
    assert client.received == b"q" * 10_000
    assert not client.transport.connected  # type: ignore[union-attr]


# --- differential tests against Twisted (skipped when Twisted is not installed) --------


def twisted_basic() -> Any:
    return pytest.importorskip("twisted.protocols.basic")


def run_lines(base: Any, transport: Any, data: bytes, cut: list[int]) -> list[Any]:
    events: list[Any] = []

    class P(base):  # type: ignore[misc,valid-type]
        MAX_LENGTH = 8

        def lineReceived(self, line: bytes) -> None:
            events.append(("line", line))
            if line == b"raw":
                self.setRawMode()
            elif line == b"quit":
                self.transport.loseConnection()
            elif line == b"pause":
                self.pauseProducing()
            elif line == b"clear":
                events.append(("cleared", self.clearLineBuffer()))
            elif line == b"lf":
                self.delimiter = b"\n"
            elif line == b"feed":
                self.dataReceived(b"fed\r\n")

        def rawDataReceived(self, data: bytes) -> None:
            events.append(("raw", data))
            if b"!" in data:
                index = data.index(b"!")
                self.setLineMode(data[index + 1 :])

        def lineLengthExceeded(self, line: bytes) -> None:
            events.append(("exceeded", line))
            self.transport.loseConnection()

    proto = P()
    proto.makeConnection(transport)
    for chunk in split_at(data, cut):
        proto.dataReceived(chunk)
        if proto.paused:
            proto.resumeProducing()
    # Raw chunk boundaries depend on the splits in both implementations; merge them.
    merged: list[Any] = []
    for event in events:
        if merged and event[0] == "raw" == merged[-1][0]:
            merged[-1] = ("raw", merged[-1][1] + event[1])
        else:
            merged.append(event)
    return merged


@settings(max_examples=1000, deadline=None)
@given(
    data=st.lists(
        st.sampled_from(
            [
                *(b"a", b"bc", b"\r", b"\n", b"\r\n", b"raw\r\n", b"!", b"quit\r\n"),
                *(b"pause\r\n", b"clear\r\n", b"lf\r\n", b"feed\r\n", b"x" * 9),
            ]
        ),
        max_size=40,
    ).map(b"".join),
    cut=cuts,
)
def test_line_receiver_matches_twisted(data: bytes, cut: list[int]) -> None:
    twisted = twisted_basic()
    from twisted.internet.testing import StringTransport as TwistedTransport

    # Lenient: a "pause" line may come after a "quit" line.
    ours = run_lines(LineReceiver, StringTransport(lenient=True), data, cut)
    theirs = run_lines(twisted.LineReceiver, TwistedTransport(lenient=True), data, cut)
    assert ours == theirs


@settings(max_examples=300, deadline=None)
@given(
    data=st.lists(
        st.sampled_from([b"1", b"0", b"5", b":", b",", b"ab", b"3:abc,", b"0:,"]), max_size=30
    ).map(b"".join),
    cut=cuts,
)
def test_netstring_receiver_matches_twisted_until_the_first_error(
    data: bytes, cut: list[int]
) -> None:
    twisted = twisted_basic()
    from twisted.internet.testing import StringTransport as TwistedTransport

    def run(base: Any, transport: Any) -> tuple[list[bytes], bool]:
        got: list[bytes] = []

        class P(base):  # type: ignore[misc,valid-type]
            MAX_LENGTH = 20

            def stringReceived(self, string: bytes) -> None:
                got.append(string)

        proto = P()
        proto.makeConnection(transport)
        for chunk in split_at(data, cut):
            proto.dataReceived(chunk)
            if proto.brokenPeer:
                break  # Twisted keeps re-parsing garbage after an error; we stop
        return got, bool(proto.brokenPeer)

    assert run(NetstringReceiver, StringTransport()) == run(
        twisted.NetstringReceiver, TwistedTransport()
    )


@settings(max_examples=500, deadline=None)
@given(
    data=st.lists(
        st.sampled_from([b"a", b"bc", b"\r", b"\n", b"\r\n", b"quit\r\n", b"y" * 7]),
        max_size=40,
    ).map(b"".join),
    cut=cuts,
)
def test_line_only_receiver_matches_twisted_until_a_line_is_too_long(
    data: bytes, cut: list[int]
) -> None:
    twisted = twisted_basic()
    from twisted.internet.testing import StringTransport as TwistedTransport

    def run(base: Any, transport: Any) -> list[Any]:
        events: list[Any] = []

        class P(base):  # type: ignore[misc,valid-type]
            MAX_LENGTH = 10

            def lineReceived(self, line: bytes) -> None:
                events.append(("line", line))
                if line == b"quit":
                    self.transport.loseConnection()

            def lineLengthExceeded(self, line: bytes) -> None:
                events.append(("exceeded", line))

        proto = P()
        proto.makeConnection(transport)
        for chunk in split_at(data, cut):
            proto.dataReceived(chunk)
            if events and events[-1][0] == "exceeded":
                break  # Twisted keeps the long tail and re-reports it; we drop it
        return events

    assert run(LineOnlyReceiver, StringTransport()) == run(
        twisted.LineOnlyReceiver, TwistedTransport()
    )


@settings(max_examples=300, deadline=None)
@given(
    strings=st.lists(st.binary(max_size=20), max_size=8),
    cut=cuts,
    pause_after=st.integers(0, 8),
)
def test_int16_receiver_matches_twisted(
    strings: list[bytes], cut: list[int], pause_after: int
) -> None:
    twisted = twisted_basic()
    from twisted.internet.testing import StringTransport as TwistedTransport

    data = b"".join(struct.pack("!H", len(s)) + s for s in strings) + b"\x00\x30tail"

    def run(base: Any, transport: Any) -> list[Any]:
        got: list[Any] = []

        class P(base):  # type: ignore[misc,valid-type]
            MAX_LENGTH = 15

            def stringReceived(self, string: bytes) -> None:
                got.append(string)
                if len(got) == pause_after:
                    self.pauseProducing()

            def lengthLimitExceeded(self, length: int) -> None:
                got.append(("exceeded", length))

        proto = P()
        proto.makeConnection(transport)
        for chunk in split_at(data, cut):
            proto.dataReceived(chunk)
            if got and isinstance(got[-1], tuple):
                # Twisted then forgets what it had consumed from that chunk and
                # delivers those strings again; we do not copy that bug.
                return got
        if proto.paused:
            proto.resumeProducing()
        return got

    assert run(Int16StringReceiver, StringTransport()) == run(
        twisted.Int16StringReceiver, TwistedTransport()
    )


def test_module_doctests() -> None:
    assert doctest.testmod(basic).failed == 0
    assert doctest.testmod(_buffer).failed == 0
