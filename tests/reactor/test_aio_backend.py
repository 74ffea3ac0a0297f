"""What only the asyncio/uvloop reactor does: loops it owns or borrows, attaching, its tweaks.

The transport semantics shared with the select reactor are in test_tcp.py.
"""

from __future__ import annotations

import asyncio
import logging
import platform
import subprocess
import sys
import textwrap
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import uvloop

from deferred import Deferred
from protocols import Factory
from reactor.aio import AsyncioReactor, drive
from reactor.error import ConnectionLost, ReactorNotRunning
from tests.reactor.conftest import Echo, Recorder, RecordingClientFactory, connected_pair

LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": uvloop.new_event_loop,
}


def tr(owner: Any) -> Any:
    """``owner.transport``, untyped (the protocol's attribute is Optional)."""
    return owner.transport


def run_on(name: str, main: Callable[[], Awaitable[Any]]) -> Any:
    """Run ``main()`` the way an application would: asyncio.run on a loop of ``name``."""
    with asyncio.Runner(loop_factory=LOOPS[name]) as runner:
        return runner.run(main())  # type: ignore[arg-type]


# -- owning a loop, or not ----------------------------------------------------------


@pytest.mark.parametrize("name", LOOPS)
def test_name_says_which_loop(name: str) -> None:
    r = AsyncioReactor(LOOPS[name](), owns_loop=True)
    try:
        assert r.name == name
        assert repr(r) == f"<AsyncioReactor ({name}) stopped>"
    finally:
        r.close()


def test_without_a_loop_it_makes_and_owns_one() -> None:
    r = AsyncioReactor()
    loop = r.loop
    assert isinstance(loop, asyncio.AbstractEventLoop) and r.name == "asyncio"
    r.close()
    assert loop.is_closed()
    r.close()  # twice is harmless


def test_close_leaves_a_borrowed_loop_open_and_its_handler_restored() -> None:
    loop = asyncio.new_event_loop()
    try:
        def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
            pass

        loop.set_exception_handler(handler)
        r = AsyncioReactor(loop)
        assert loop.get_exception_handler() == r._on_loop_exception
        r.close()
        assert not loop.is_closed()
        assert loop.get_exception_handler() is handler
    finally:
        loop.close()


@pytest.mark.parametrize("name", LOOPS)
def test_an_owned_loop_runs_again_after_stop(name: str) -> None:
    r = AsyncioReactor(LOOPS[name](), owns_loop=True)
    try:
        for turn in range(2):
            ran: list[int] = []
            r.callWhenRunning(ran.append, turn)
            r.callWhenRunning(r.stop)
            r.run(installSignalHandlers=False)
            assert ran == [turn] and not r.running
    finally:
        r.close()


# -- attaching to a loop the application runs ------------------------------------------


@pytest.mark.parametrize("name", LOOPS)
def test_run_inside_a_running_loop_points_to_attach(name: str) -> None:
    async def main() -> None:
        r = AsyncioReactor(asyncio.get_running_loop())
        with pytest.raises(RuntimeError, match="attach"):
            r.run(installSignalHandlers=False)
        assert not r.running

    run_on(name, main)


def test_attach_outside_the_loop_is_an_error() -> None:
    r = AsyncioReactor()
    try:
        with pytest.raises(RuntimeError, match="inside the reactor's loop"):
            r.attach()
    finally:
        r.close()


@pytest.mark.parametrize("name", LOOPS)
def test_attached_reactor_serves_tcp_echo_without_run(name: str) -> None:
    events: list[str] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        async with AsyncioReactor(loop) as r:
            assert r.running
            r.addSystemEventTrigger("before", "shutdown", events.append, "shutdown")
            started: Deferred[None] = Deferred()
            r.callWhenRunning(started.callback, None)
            await started  # a Deferred, awaited by an asyncio Task
            port = r.listenTCP(0, Factory.forProtocol(Echo), interface="127.0.0.1")
            number = port.getHost().port
            # A plain asyncio client against the torsion server...
            reader, writer = await asyncio.open_connection("127.0.0.1", number)
            writer.write(b"from asyncio")
            assert await reader.readexactly(12) == b"from asyncio"
            # ...and a torsion client, in the same loop.
            client = Recorder()
            r.connectTCP("127.0.0.1", number, RecordingClientFactory(lambda: client))
            await client.made
            tr(client).write(b"from torsion")
            assert await client.wait_for_bytes(12) == b"from torsion"
        # Leaving the block stopped the reactor, not the loop: the triggers
        # ran, the port and both server connections were closed.
        assert not r.running and loop.is_running()
        assert events == ["shutdown"]
        assert client.lost.called
        assert client.lost.result.check(ConnectionLost)
        assert await reader.read() == b""
        writer.close()
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", number)

    run_on(name, main)


@pytest.mark.parametrize("name", LOOPS)
def test_timers_and_threads_work_before_attach(name: str) -> None:
    async def main() -> None:
        r = AsyncioReactor(asyncio.get_running_loop())
        fired: Deferred[str] = Deferred()
        call = r.callLater(0.001, fired.callback, "timer")
        assert r.getDelayedCalls() == [call]
        assert await fired == "timer"
        assert r.getDelayedCalls() == []
        assert await r.deferToThread(lambda: "thread") == "thread"
        # stop() needs a running reactor; stop_async() of a stopped one is a no-op.
        with pytest.raises(ReactorNotRunning):
            r.stop()
        await r.stop_async()
        r.attach()
        await r.stop_async()  # stops the thread pool too
        assert r._thread_pool is None

    run_on(name, main)


@pytest.mark.asyncio
async def test_attach_under_pytest_asyncio() -> None:
    r = AsyncioReactor(asyncio.get_running_loop())
    r.attach()
    server, client = Recorder(), Recorder()
    await connected_pair(r, server, client)
    tr(client).write(b"hi")
    assert await server.wait_for_bytes(2) == b"hi"
    await r.stop_async()
    assert server.lost.called and client.lost.called


def test_foreign_loop_errors_go_to_the_previous_handler() -> None:
    seen: list[str] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda loop, context: seen.append(context["message"]))
        r = AsyncioReactor(loop)
        loop.call_exception_handler({"message": "not ours"})
        r.close()

    run_on("asyncio", main)
    assert seen == ["not ours"]


# -- transport details that only exist on the loop's transports ------------------------------


class PausedAtStart(Recorder):
    def connectionMade(self) -> None:
        super().connectionMade()
        tr(self).pauseProducing()


@pytest.mark.backends("asyncio", "uvloop")
async def test_pause_inside_connectionMade_holds_data(reactor: Any) -> None:
    # uvloop starts reading when connection_made returns, even if the
    # protocol paused inside it: the transport must hold what arrives.
    server, client = PausedAtStart(), Recorder()
    port, _, _ = await connected_pair(reactor, server, client)
    tr(client).write(b"held")
    # A full round trip on a second connection: the server's loop has seen
    # the first client's bytes arrive by the time it answers this one.
    probe = Recorder()
    reactor.connectTCP("127.0.0.1", port.getHost().port, RecordingClientFactory(lambda: probe))
    await probe.made
    assert bytes(server.received) == b""
    tr(server).resumeProducing()
    assert await server.wait_for_bytes(4) == b"held"
    for c in (client, probe):
        tr(c).loseConnection()
        await c.lost
    await port.stopListening()


class RaisesOSError(Recorder):
    def dataReceived(self, data: bytes) -> None:
        super().dataReceived(data)
        raise OSError(5, "raised by the protocol")


@pytest.mark.backends("asyncio", "uvloop")
async def test_oserror_from_user_code_is_a_user_error(
        reactor: Any, caplog: pytest.LogCaptureFixture) -> None:
    # The loop reports it like a socket error; the reactor tells them apart.
    server, client = RaisesOSError(), Recorder()
    port, _, _ = await connected_pair(reactor, server, client)
    with caplog.at_level(logging.ERROR, logger="reactor"):
        tr(client).write(b"x")
        reason = await server.lost
    assert reason.check(OSError) and not reason.check(ConnectionLost)
    assert "raised by the protocol" in caplog.text
    await client.lost
    await port.stopListening()


@pytest.mark.backends("asyncio", "uvloop")
async def test_writes_before_the_loop_made_the_connection_are_sent(reactor: Any) -> None:
    server = Recorder()
    port = reactor.listenTCP(0, Factory.forProtocol(lambda: server), interface="127.0.0.1")
    factory = RecordingClientFactory()
    connector = reactor.connectTCP("127.0.0.1", port.getHost().port, factory)
    client = await factory.built
    await _next_turn(reactor)  # connector.transport exists; connectionMade has not run
    assert client.events == []
    tr(connector).write(b"early")
    tr(connector).loseConnection()
    assert await server.wait_for_bytes(5) == b"early"
    await client.lost
    await port.stopListening()


def _next_turn(reactor: Any) -> Deferred[None]:
    d: Deferred[None] = Deferred()
    reactor.callLater(0, d.callback, None)
    return d


# -- running coroutines that never wait now ------------------------------------------------------


def test_drive_finishes_a_coroutine_that_only_yields_bare() -> None:
    async def quick() -> str:
        await asyncio.sleep(0)  # a bare yield, as in asyncio's create_server
        return "done"

    loop = asyncio.new_event_loop()
    try:
        assert drive(loop, quick()) == "done"
    finally:
        loop.close()


def test_drive_hands_a_real_wait_to_a_task() -> None:
    loop = asyncio.new_event_loop()
    try:
        future: asyncio.Future[str] = loop.create_future()

        async def waits() -> str:
            return "got " + await future

        task = drive(loop, waits())
        assert isinstance(task, asyncio.Task)
        loop.call_soon(future.set_result, "it")
        assert loop.run_until_complete(task) == "got it"
    finally:
        loop.close()


# -- asyncio's 256 KiB reads and glibc -----------------------------------------------------------

def _glibc_with_mallinfo2() -> bool:
    if platform.libc_ver()[0] != "glibc":
        return False
    import ctypes

    return hasattr(ctypes.CDLL(None), "mallinfo2")


@pytest.mark.skipif(not _glibc_with_mallinfo2(), reason="needs glibc >= 2.33")
def test_raise_mmap_threshold_makes_256k_reads_come_from_the_heap() -> None:
    # Each measurement runs in a fresh, isolated interpreter that imports
    # only ctypes and the helper: anything bigger (compiling large modules)
    # may itself free a large block and raise the threshold, hiding the effect.
    code = textwrap.dedent("""
        import ctypes, importlib.util, sys

        class Mallinfo2(ctypes.Structure):
            _fields_ = [(n, ctypes.c_size_t) for n in (
                "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
                "uordblks", "fordblks", "keepcost")]

        mallinfo2 = ctypes.CDLL(None).mallinfo2
        mallinfo2.restype = Mallinfo2
        if sys.argv[1] == "raised":
            spec = importlib.util.spec_from_file_location("m", sys.argv[2])
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            module.raise_mmap_threshold(256 * 1024)
        before = mallinfo2().hblkhd
        buf = bytes(256 * 1024 + 64)  # what recv(256 KiB) allocates
        print(mallinfo2().hblkhd - before)
    """)
    helper = str(Path(__file__).resolve().parents[2] / "reactor" / "_malloc.py")

    def mmapped(arg: str) -> int:
        out = subprocess.run([sys.executable, "-I", "-S", "-c", code, arg, helper],
                             capture_output=True, text=True, check=True)
        return int(out.stdout)

    assert mmapped("control") > 0  # glibc's initial threshold is 128 KiB: mmap
    assert mmapped("raised") == 0  # after the helper: from the heap


def test_both_backends_raise_the_threshold_for_their_read_size(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    import reactor.aio
    import reactor.selector

    calls: list[int] = []
    monkeypatch.setattr(reactor.aio, "raise_mmap_threshold", calls.append)
    monkeypatch.setattr(reactor.selector, "raise_mmap_threshold", calls.append)
    r = reactor.selector.SelectorReactor()
    r.close()
    loop = asyncio.new_event_loop()
    a = reactor.aio.AsyncioReactor(loop, owns_loop=True)
    a.close()
    assert calls == [256 * 1024, 256 * 1024]
