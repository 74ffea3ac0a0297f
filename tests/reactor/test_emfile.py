"""Running out of file descriptors on accept(): back off, keep serving, never spin."""

from __future__ import annotations

import errno
import socket
import subprocess
import sys
import textwrap
import time
from typing import Any

import pytest

from protocols import Factory
from reactor.selector import SelectorReactor
from reactor.tcp import ACCEPT_BACKOFF, Port
from reactor.testing import Clock
from tests.reactor.conftest import Echo


class EmfileSocket:
    """A listening socket whose accept() fails with EMFILE."""

    def __init__(self) -> None:
        self.accepts = 0

    def accept(self) -> Any:
        self.accepts += 1
        raise OSError(errno.EMFILE, "Too many open files")

    def fileno(self) -> int:
        return 99


class RecordingReactor:
    """Just enough reactor for Port._on_readable: interest changes and a clock."""

    def __init__(self) -> None:
        self.clock = Clock()
        self.interest: list[int] = []
        self._selectables: set[Any] = set()

    def _set_interest(self, handler: Any, fd: int, events: int) -> None:
        self.interest.append(events)

    def callLater(self, delay: float, f: Any, *a: Any, **kw: Any) -> Any:
        return self.clock.callLater(delay, f, *a, **kw)


def test_emfile_stops_accepting_for_a_while_then_resumes() -> None:
    fake = RecordingReactor()
    port = Port(fake, 0, Factory.forProtocol(Echo))  # type: ignore[arg-type]
    listening = EmfileSocket()
    port.socket = listening  # type: ignore[assignment]
    port._fd = 99
    port._on_readable()
    assert listening.accepts == 1  # one failure, not a spin
    assert fake.interest == [0]  # stopped watching the socket
    fake.clock.advance(ACCEPT_BACKOFF)
    assert fake.interest == [0, 1]  # watching again after the back-off


SERVER = """
    import logging, resource, sys
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr,
                        format="%(levelname)s %(message)s")
    import reactor
    from protocols import Factory, Protocol

    class Echo(Protocol):
        def dataReceived(self, data):
            self.transport.write(data)

    r = reactor.create(sys.argv[1])
    port = r.listenTCP(0, Factory.forProtocol(Echo), interface="127.0.0.1", backlog=100)
    # Room for what is open now plus a handful of connections.
    import os
    used = len(os.listdir("/proc/self/fd"))
    resource.setrlimit(resource.RLIMIT_NOFILE, (used + 5, resource.getrlimit(
        resource.RLIMIT_NOFILE)[1]))
    print(port.getHost().port, flush=True)
    r.run()
"""


def late_client_is_served(port: int, clients: list[socket.socket]) -> bool:
    """Connect and echo, as a real client would: retrying when reset.

    While the server works through the dead connections left in its backlog
    it may still be out of descriptors for a moment. The select and asyncio
    backends then leave the new connection waiting in the backlog; libuv
    (uvloop) accepts and closes it at once, so the client sees a reset and,
    like any client, tries again. The attempts are bounded.
    """
    for _ in range(200):
        late = socket.create_connection(("127.0.0.1", port), timeout=10)
        clients.append(late)
        try:
            late.sendall(b"after")
            data = b""
            while len(data) < 5:
                chunk = late.recv(100)
                if not chunk:
                    break
                data += chunk
        except ConnectionError:
            data = b""
        if data == b"after":
            return True
        time.sleep(0.01)  # a reset: give the server a moment, then retry
    return False


@pytest.mark.parametrize("backend", ["select", "asyncio", "uvloop"])
def test_server_out_of_descriptors_keeps_serving(backend: str, tmp_path: Any) -> None:
    # The server logs every failed accept: its stderr goes to a file, as a
    # pipe nobody reads would fill up and block it.
    log_file = open(tmp_path / "server.log", "w")  # noqa: SIM115 - closed below
    server = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(SERVER), backend],
        stdout=subprocess.PIPE, stderr=log_file, text=True)
    clients: list[socket.socket] = []
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        # More connections than the server has descriptors for: the kernel
        # completes them (backlog), the server cannot accept them all.
        for _ in range(20):
            clients.append(socket.create_connection(("127.0.0.1", port), timeout=10))
        # The first few are served.
        clients[0].sendall(b"first")
        assert clients[0].recv(100) == b"first"
        # Free descriptors: close everything, then a new client is served.
        for c in clients:
            c.close()
        clients.clear()
        assert late_client_is_served(port, clients)
    finally:
        for c in clients:
            c.close()
        server.terminate()
        server.wait(timeout=10)
        if server.stdout:
            server.stdout.close()
        log_file.close()
    assert server.returncode is not None
    assert "Too many open files" in (tmp_path / "server.log").read_text() or backend == "uvloop"


def test_selector_reactor_type() -> None:
    assert SelectorReactor.name == "select"
