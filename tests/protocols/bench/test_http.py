"""``run_http`` against our HTTP server and against misbehaving servers.

Each networked test runs on every backend: the server on the test's reactor,
the load (in this process, ``processes=1``, unless said otherwise) in a
thread. Runs are bounded by a request count, so they take a moment; only
counts and structure are asserted, never a timing.
"""

from __future__ import annotations

from typing import Any

from protocols.bench import BenchResult, run_http

from .servers import (
    Hangup,
    OneShotHTTP,
    RefusedPort,
    Silent,
    listen_protocol,
    listen_site,
)


def no_errors(result: BenchResult) -> bool:
    return result.error_count == 0 and set(result.errors.values()) == {0}


async def test_get_load_on_our_server(reactor: Any) -> None:
    port = listen_site(reactor)
    result = await reactor.deferToThread(
        run_http, f"http://127.0.0.1:{port}/hello", connections=4, duration=None,
        requests=200, processes=1)
    assert result.requests == 200
    assert result.statuses == {200: 200}
    assert no_errors(result)
    assert result.latency.count == 200
    assert result.outcome.bytes_received > 200 * len(b"HTTP/1.1 200 OK\r\n\r\nhello")
    assert result.outcome.bytes_sent == 200 * len(
        f"GET /hello HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        "User-Agent: torsion-bench\r\n\r\n")
    assert not result.interrupted


async def test_post_with_a_body_and_headers(reactor: Any) -> None:
    port = listen_site(reactor)
    result = await reactor.deferToThread(
        run_http, f"http://127.0.0.1:{port}/hello", method="POST", body=b"x" * 3000,
        headers=[("X-Test", "1")], connections=2, duration=None, requests=20, processes=1)
    assert (result.requests, result.statuses) == (20, {200: 20})
    assert no_errors(result)


async def test_head_requests(reactor: Any) -> None:
    port = listen_site(reactor)
    result = await reactor.deferToThread(
        run_http, f"http://127.0.0.1:{port}/hello", method="HEAD", connections=2,
        duration=None, requests=20, processes=1)
    assert (result.requests, result.statuses) == (20, {200: 20})
    assert no_errors(result)


async def test_streamed_chunked_replies(reactor: Any) -> None:
    port = listen_site(reactor)
    result = await reactor.deferToThread(
        run_http, f"http://127.0.0.1:{port}/pieces", connections=3, duration=None,
        requests=30, processes=1)
    assert (result.requests, result.statuses) == (30, {200: 30})
    assert no_errors(result)


async def test_server_errors_are_counted_by_status(reactor: Any) -> None:
    port = listen_site(reactor)
    result = await reactor.deferToThread(
        run_http, f"http://127.0.0.1:{port}/fail", connections=2, duration=None,
        requests=40, processes=1)
    assert result.requests == 40
    assert result.statuses == {500: 40}
    assert result.errors["status"] == 40
    assert result.error_count == 40


async def test_not_found_is_counted_too(reactor: Any) -> None:
    port = listen_site(reactor)
    result = await reactor.deferToThread(
        run_http, f"http://127.0.0.1:{port}/missing", connections=2, duration=None,
        requests=10, processes=1)
    assert (result.statuses, result.errors["status"]) == ({404: 10}, 10)


async def test_connection_close_replies_are_not_errors(reactor: Any) -> None:
    port = listen_protocol(reactor, OneShotHTTP)
    result = await reactor.deferToThread(
        run_http, f"http://127.0.0.1:{port}/", connections=3, duration=None, requests=30,
        processes=1)
    assert (result.requests, result.statuses) == (30, {200: 30})
    assert no_errors(result)


async def test_a_server_that_hangs_up_gives_read_errors(reactor: Any) -> None:
    port = listen_protocol(reactor, Hangup)
    result = await reactor.deferToThread(
        run_http, f"http://127.0.0.1:{port}/", connections=3, duration=None, requests=30,
        processes=1)
    assert result.requests == 0
    assert result.errors["read"] == 30
    assert result.error_count == 30


async def test_a_silent_server_gives_timeouts(reactor: Any) -> None:
    port = listen_protocol(reactor, Silent)
    result = await reactor.deferToThread(
        run_http, f"http://127.0.0.1:{port}/", connections=2, duration=None, requests=4,
        timeout=0.2, processes=1)
    assert result.requests == 0
    assert result.errors["timeout"] == 4
    assert result.error_count == 4


def test_refused_connections_are_connect_errors_and_the_run_ends() -> None:
    with RefusedPort() as port:
        result = run_http(f"http://127.0.0.1:{port}/", connections=5, duration=None,
                          requests=25, processes=1)
    assert result.requests == 0
    assert result.errors["connect"] == 25
    assert result.error_count == 25
    assert "connect 25" in result.format()


def test_refused_connections_within_a_duration() -> None:
    with RefusedPort() as port:
        result = run_http(f"http://127.0.0.1:{port}/", connections=2, duration=0.3,
                          processes=1)
    assert result.requests == 0
    assert result.errors["connect"] >= 2
    assert result.error_count == result.errors["connect"]


async def test_two_worker_processes(reactor: Any) -> None:
    port = listen_site(reactor)
    result = await reactor.deferToThread(
        run_http, f"http://127.0.0.1:{port}/hello", connections=4, duration=None,
        requests=101, processes=2)
    assert result.processes == 2
    assert (result.requests, result.statuses) == (101, {200: 101})
    assert result.latency.count == 101
    assert no_errors(result)


async def test_progress_reports_while_running(reactor: Any) -> None:
    port = listen_site(reactor)
    seen: list[Any] = []
    result = await reactor.deferToThread(
        run_http, f"http://127.0.0.1:{port}/hello", connections=2, duration=1.3,
        processes=1, progress=seen.append)
    assert len(seen) >= 1
    assert all(p.requests <= result.requests and p.errors == 0 for p in seen)
    assert "requests" in seen[0].format()


def test_bad_arguments() -> None:
    import pytest

    for kwargs, message in [
        (dict(url="https://127.0.0.1/"), "https"),
        (dict(url="http://127.0.0.1:1/", connections=0), "connections"),
        (dict(url="http://127.0.0.1:1/", duration=None), "duration or a number"),
        (dict(url="http://127.0.0.1:1/", duration=-1.0), "duration"),
        (dict(url="http://127.0.0.1:1/", requests=0), "requests"),
        (dict(url="http://127.0.0.1:1/", timeout=0.0), "timeout"),
        (dict(url="http://127.0.0.1:1/", method="G T"), "method"),
    ]:
        with pytest.raises(ValueError, match=message):
            run_http(**kwargs)  # type: ignore[arg-type]
