"""Happy eyeballs (RFC 8305) in the shared connector, driven by a Clock: no sockets, no waits."""

from __future__ import annotations

import socket
from typing import Any

from deferred import CancelledError, Deferred, Failure
from reactor._connect import ATTEMPT_DELAY, _interleave, _race
from reactor.error import ConnectionRefusedError
from reactor.testing import Clock


class FakeSocket:
    def __init__(self, family: int) -> None:
        self.family = family
        self.closed = False

    def bind(self, address: Any) -> None:
        pass

    def close(self) -> None:
        self.closed = True


class AttemptReactor:
    """Records connect attempts; the test fires or fails each one by hand."""

    def __init__(self) -> None:
        self.clock = Clock()
        self.attempts: list[tuple[Any, Deferred[Any]]] = []

    def callLater(self, delay: float, f: Any, *a: Any, **kw: Any) -> Any:
        return self.clock.callLater(delay, f, *a, **kw)

    def _connect_socket(self, sock: Any, address: Any) -> Deferred[Any]:
        d: Deferred[Any] = Deferred(lambda d: sock.close())
        self.attempts.append((address, d))
        return d


def race(reactor: AttemptReactor, addresses: list[tuple[int, Any]],
         monkeypatch: Any) -> Deferred[Any]:
    monkeypatch.setattr(socket, "socket", lambda family, kind: FakeSocket(family))
    return _race(reactor, addresses, None)


V6 = (socket.AF_INET6, ("::1", 80, 0, 0))
V4 = (socket.AF_INET, ("127.0.0.1", 80))


def test_interleaves_families_starting_with_the_first() -> None:
    a6, b6, a4, b4 = ((socket.AF_INET6, "a6"), (socket.AF_INET6, "b6"),
                      (socket.AF_INET, "a4"), (socket.AF_INET, "b4"))
    assert _interleave([a6, b6, a4, b4]) == [a6, a4, b6, b4]
    assert _interleave([a4, a6, b6]) == [a4, a6, b6]


def test_next_attempt_starts_after_the_delay_and_the_winner_cancels_the_rest(
        monkeypatch: Any) -> None:
    reactor = AttemptReactor()
    result = race(reactor, [V6, V4], monkeypatch)
    assert [a for a, _ in reactor.attempts] == [V6[1]]  # one at a time...
    reactor.clock.advance(ATTEMPT_DELAY)
    assert [a for a, _ in reactor.attempts] == [V6[1], V4[1]]  # ...until the delay
    winner = FakeSocket(socket.AF_INET)
    reactor.attempts[1][1].callback(winner)
    outcome: list[Any] = []
    result.addBoth(outcome.append)
    assert outcome == [winner]
    slow = reactor.attempts[0][1]
    assert slow.called  # the losing attempt was cancelled
    slow.addErrback(lambda f: f.trap(CancelledError))


def test_a_failure_starts_the_next_attempt_at_once(monkeypatch: Any) -> None:
    reactor = AttemptReactor()
    result = race(reactor, [V6, V4], monkeypatch)
    reactor.attempts[0][1].errback(ConnectionRefusedError())
    assert len(reactor.attempts) == 2  # no waiting for the delay
    reactor.attempts[1][1].callback(FakeSocket(socket.AF_INET))
    assert result.called


def test_all_failing_reports_the_last_error(monkeypatch: Any) -> None:
    reactor = AttemptReactor()
    result = race(reactor, [V6, V4], monkeypatch)
    reactor.attempts[0][1].errback(ConnectionRefusedError("first"))
    reactor.attempts[1][1].errback(ConnectionRefusedError("second"))
    outcome: list[Any] = []
    result.addBoth(outcome.append)
    assert isinstance(outcome[0], Failure)
    assert outcome[0].check(ConnectionRefusedError)
    assert "second" in str(outcome[0].value)


def test_cancelling_the_race_cancels_every_attempt(monkeypatch: Any) -> None:
    reactor = AttemptReactor()
    result = race(reactor, [V6, V4], monkeypatch)
    reactor.clock.advance(ATTEMPT_DELAY)
    result.cancel()
    assert all(d.called for _, d in reactor.attempts)
    for _, d in reactor.attempts:
        d.addErrback(lambda f: f.trap(CancelledError))
    result.addErrback(lambda f: f.trap(CancelledError))
    assert reactor.clock.getDelayedCalls() == []
