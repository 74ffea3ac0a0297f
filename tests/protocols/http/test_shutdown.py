"""Graceful shutdown loses nothing: every request fully sent is answered whole.

In process, ``Site.drain`` (what the reactor's shutdown calls): the request in
flight, or the next to arrive, is answered with ``Connection: close``. In a
subprocess, SIGTERM under 50 busy keep-alive clients: each request either was
never sent (the listener had closed) or got its whole response.
"""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest

from deferred import Deferred
from protocols.http import Resource, Site
from protocols.http.resource import NOT_DONE_YET

ROOT = Path(__file__).resolve().parents[3]


class Gate(Resource):
    """Answers when the test opens the gate (a request held in flight)."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.arrived: Deferred[None] = Deferred()
        self.held: list[Any] = []

    def render_GET(self, request: Any) -> Any:
        if request.postpath == [b"hold"]:
            self.held.append(request)
            self.arrived.callback(None)
            return NOT_DONE_YET
        return b"quick"


async def test_drain_answers_in_flight_and_next_request_with_connection_close(
        reactor: Any) -> None:
    gate = Gate()
    site = Site(gate)
    port = reactor.listenTCP(0, site, interface="127.0.0.1")
    number = port.getHost().port
    idle = http.client.HTTPConnection("127.0.0.1", number, timeout=10)
    busy = http.client.HTTPConnection("127.0.0.1", number, timeout=10)

    def warm_up() -> str | None:
        idle.request("GET", "/")
        response = idle.getresponse()
        response.read()
        busy.request("GET", "/hold")  # answered only when the gate opens
        return response.getheader("Connection")

    assert await reactor.deferToThread(warm_up) is None  # kept alive before the drain
    await gate.arrived
    site.drain()
    [held] = gate.held
    held.write(b"in flight")
    held.finish()

    def after() -> list[tuple[bytes, str | None, bool]]:
        out = []
        for conn in (busy, idle):
            if conn is idle:
                conn.request("GET", "/")  # the next request on an idle connection
            response = conn.getresponse()
            body = response.read()
            out.append((body, response.getheader("Connection"), response.will_close))
            conn.close()
        return out

    answers = await reactor.deferToThread(after)
    assert answers == [(b"in flight", "close", True), (b"quick", "close", True)]
    await port.stopListening()


SERVER = textwrap.dedent('''
    import reactor
    from protocols.http import Resource, Site
    from reactor.task import deferLater

    class Busy(Resource):
        isLeaf = True

        async def render_GET(self, request):
            await deferLater(reactor.getReactor(), 0.002, lambda: None)
            return b"x" * 4000

    port = reactor.listenTCP(0, Site(Busy()), interface="127.0.0.1")
    print(port.getHost().port, flush=True)
    reactor.run()
''')

CLIENTS = 50


class Tally:
    """What the clients saw, shared between their threads."""

    def __init__(self, threshold: int) -> None:
        self.lock = threading.Lock()
        self.answered = 0
        self.unanswered = 0
        self.truncated = 0
        self.errors: list[str] = []
        self.busy = threading.Event()
        self.threshold = threshold

    def ok(self) -> None:
        with self.lock:
            self.answered += 1
            if self.answered >= self.threshold:
                self.busy.set()


def keep_asking(number: int, tally: Tally) -> None:
    """Requests back to back on keep-alive until the server is gone."""
    conn = http.client.HTTPConnection("127.0.0.1", number, timeout=30)
    while True:
        try:
            conn.request("GET", "/")
        except OSError:
            return  # refused or reset before the request was sent: never sent
        try:
            response = conn.getresponse()
            body = response.read()
        except http.client.IncompleteRead:
            with tally.lock:
                tally.truncated += 1
            return
        except (OSError, http.client.HTTPException) as e:
            with tally.lock:
                tally.unanswered += 1
                tally.errors.append(repr(e))
            return
        if body != b"x" * 4000:
            with tally.lock:
                tally.truncated += 1
            return
        tally.ok()
        if response.will_close:
            conn.close()  # the next request reconnects (and is refused once stopped)


@pytest.mark.parametrize("backend", ["select", "asyncio", "uvloop"])
def test_sigterm_under_fifty_busy_clients_loses_no_request(backend: str) -> None:
    env = dict(os.environ, TORSION_REACTOR=backend, PYTHONPATH=str(ROOT))
    server = subprocess.Popen([sys.executable, "-c", SERVER], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        number = int(server.stdout.readline())
        tally = Tally(threshold=CLIENTS * 10)
        threads = [threading.Thread(target=keep_asking, args=(number, tally))
                   for _ in range(CLIENTS)]
        for thread in threads:
            thread.start()
        assert tally.busy.wait(60), "the clients never got going"
        server.send_signal(signal.SIGTERM)
        for thread in threads:
            thread.join(60)
        assert not any(thread.is_alive() for thread in threads)
        assert server.wait(30) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    print(f"[{backend}] answered={tally.answered} unanswered={tally.unanswered} "
          f"truncated={tally.truncated}")
    assert (tally.unanswered, tally.truncated) == (0, 0), tally.errors[:5]
    assert tally.answered >= CLIENTS * 10
