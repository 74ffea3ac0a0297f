"""``run_echo`` against our echo service and ``run_line`` against a line service."""

from __future__ import annotations

from typing import Any

import pytest

from protocols.bench import run_echo, run_line

from .servers import Hangup, KeyValue, RefusedPort, Shouting, listen_echo, listen_protocol


async def test_echo_round_trips(reactor: Any) -> None:
    port = listen_echo(reactor)
    result = await reactor.deferToThread(
        run_echo, f"127.0.0.1:{port}", size=64, connections=4, duration=None, requests=200,
        processes=1)
    assert result.mode == "echo"
    assert result.requests == 200
    assert result.error_count == 0
    assert result.outcome.bytes_sent == result.outcome.bytes_received == 200 * 64
    assert result.statuses == {}


async def test_large_echo_messages_go_out_and_come_back_in_pieces(reactor: Any) -> None:
    port = listen_echo(reactor)
    size = 3 * 1024 * 1024  # more than a socket buffer takes at once
    result = await reactor.deferToThread(
        run_echo, ("127.0.0.1", port), size=size, connections=2, duration=None, requests=4,
        processes=1)
    assert (result.requests, result.error_count) == (4, 0)
    assert result.outcome.bytes_received == 4 * size


async def test_wrong_echoes_are_mismatches(reactor: Any) -> None:
    port = listen_protocol(reactor, Shouting)
    result = await reactor.deferToThread(
        run_echo, f"127.0.0.1:{port}", size=100, connections=2, duration=None, requests=20,
        processes=1)
    assert result.requests == 20
    assert result.errors["mismatch"] == 20
    assert result.error_count == 20


async def test_echo_against_a_server_that_hangs_up(reactor: Any) -> None:
    port = listen_protocol(reactor, Hangup)
    result = await reactor.deferToThread(
        run_echo, f"127.0.0.1:{port}", connections=2, duration=None, requests=10,
        processes=1)
    assert (result.requests, result.errors["read"], result.error_count) == (0, 10, 10)


async def test_echo_from_two_processes(reactor: Any) -> None:
    port = listen_echo(reactor)
    result = await reactor.deferToThread(
        run_echo, f"127.0.0.1:{port}", size=10, connections=3, duration=None, requests=99,
        processes=2)
    assert (result.requests, result.error_count, result.processes) == (99, 0, 2)


def test_echo_refused() -> None:
    with RefusedPort() as port:
        result = run_echo(f"127.0.0.1:{port}", connections=2, duration=None, requests=6,
                          processes=1)
    assert (result.requests, result.errors["connect"], result.error_count) == (0, 6, 6)


async def test_line_requests_with_expectations(reactor: Any) -> None:
    port = listen_protocol(reactor, KeyValue)
    good = await reactor.deferToThread(
        run_line, f"127.0.0.1:{port}", "GET key", expect=r"^VALUE \d+$", connections=3,
        duration=None, requests=150, processes=1)
    assert good.mode == "line"
    assert (good.requests, good.error_count) == (150, 0)
    assert good.outcome.bytes_received == 150 * len(b"VALUE 42\r\n")
    wrong = await reactor.deferToThread(
        run_line, f"127.0.0.1:{port}", "GET other", expect="^VALUE", connections=3,
        duration=None, requests=30, processes=1)
    assert (wrong.requests, wrong.errors["mismatch"], wrong.error_count) == (30, 30, 30)


async def test_line_without_expectation_takes_any_reply(reactor: Any) -> None:
    port = listen_protocol(reactor, KeyValue)
    result = await reactor.deferToThread(
        run_line, f"127.0.0.1:{port}", b"HELLO", connections=2, duration=None,
        requests=20, processes=1)
    assert (result.requests, result.error_count) == (20, 0)


def test_bad_line_arguments() -> None:
    with pytest.raises(ValueError, match="one line"):
        run_line("127.0.0.1:1", "A\r\nB", requests=1)
    with pytest.raises(ValueError, match="regular expression"):
        run_line("127.0.0.1:1", "A", expect="(", requests=1)
    with pytest.raises(ValueError, match="size"):
        run_echo("127.0.0.1:1", size=0, requests=1)
    with pytest.raises(ValueError, match="HOST:PORT"):
        run_echo("127.0.0.1", requests=1)
