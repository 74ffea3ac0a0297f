"""reactor.spawnProcess and the process transport, with real children, on every backend."""

from __future__ import annotations

import errno
import logging
import os
import shutil
import signal
import sys
import threading
from collections import defaultdict
from typing import Any

import pytest

import reactor.process as process_module
from deferred import Deferred, gatherResults
from protocols import ProcessProtocol
from reactor.error import ProcessDone, ProcessExitedAlready, ProcessTerminated
from tests.reactor.conftest import Reason

PY = sys.executable
ENV_PROGRAM = shutil.which("env") or "/usr/bin/env"


class Child(ProcessProtocol):
    """Records everything a child does; Deferreds for connectionMade, processExited/Ended."""

    def __init__(self) -> None:
        self.made: Deferred[Child] = Deferred()
        self.exited: Deferred[Reason] = Deferred()
        self.ended: Deferred[Reason] = Deferred()
        self.data: dict[int, bytearray] = defaultdict(bytearray)
        self.events: list[Any] = []
        self.pid: int | None = None

    def connectionMade(self) -> None:
        self.pid = self.transport.pid
        self.events.append("made")
        self.made.callback(self)

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        self.data[childFD] += data

    def childConnectionLost(self, childFD: int) -> None:
        self.events.append(("lost", childFD))

    def processExited(self, reason: Any) -> None:
        self.events.append("exited")
        self.exited.callback(Reason(reason))

    def processEnded(self, reason: Any) -> None:
        self.events.append("ended")
        self.ended.callback(Reason(reason))

    @property
    def out(self) -> bytes:
        return bytes(self.data[1])

    @property
    def err(self) -> bytes:
        return bytes(self.data[2])


def python(reactor: Any, proto: Any, code: str, **kw: Any) -> Any:
    """Run ``python -c code`` as a child (with an empty environment unless told)."""
    kw.setdefault("env", {})
    return reactor.spawnProcess(proto, PY, [PY, "-c", code], **kw)


# -- output, exit status, ordering -------------------------------------------------------


async def test_stdout_and_stderr_are_captured(reactor: Any) -> None:
    child = Child()
    transport = python(reactor, child, "import sys; sys.stdout.write('to out'); "
                                       "sys.stderr.write('to err')")
    reason = await child.ended
    assert child.out == b"to out" and child.err == b"to err"
    assert reason.check(ProcessDone)
    assert reason.failure.value.exitCode == 0 and reason.failure.value.status == 0
    assert isinstance(child.pid, int) and child.pid > 0
    # Twisted: the pid is forgotten once the child has exited; status is kept.
    assert transport.pid is None and transport.status == 0


async def test_processExited_comes_before_processEnded_and_pipes_close_first(
        reactor: Any) -> None:
    child = Child()
    python(reactor, child, "print('hi')")
    await child.ended
    assert child.events[0] == "made"
    assert child.events[-1] == "ended"
    assert child.events.index("exited") < child.events.index("ended")
    assert {e for e in child.events if isinstance(e, tuple)} == {
        ("lost", 0), ("lost", 1), ("lost", 2)}
    assert child.exited.called


async def test_nonzero_exit_code_is_ProcessTerminated(reactor: Any) -> None:
    child = Child()
    python(reactor, child, "import sys; sys.exit(3)")
    exited = await child.exited
    reason = await child.ended
    for r in (exited, reason):
        assert r.check(ProcessTerminated)
        assert r.failure.value.exitCode == 3 and r.failure.value.signal is None
        assert os.WEXITSTATUS(r.failure.value.status) == 3


@pytest.mark.parametrize("how, number", [("KILL", 9), ("TERM", 15), (signal.SIGINT, 2)])
async def test_signalProcess_kills_the_child(reactor: Any, how: Any, number: int) -> None:
    child = Child()
    transport = python(reactor, child, "import sys, signal; "
                                       "signal.signal(signal.SIGINT, signal.SIG_DFL); "
                                       "sys.stdin.read()")
    await child.made
    transport.signalProcess(how)
    reason = await child.ended
    assert reason.check(ProcessTerminated)
    assert reason.failure.value.signal == number and reason.failure.value.exitCode is None


async def test_signalProcess_after_exit_raises_ProcessExitedAlready(reactor: Any) -> None:
    child = Child()
    transport = python(reactor, child, "pass")
    await child.exited
    with pytest.raises(ProcessExitedAlready):
        transport.signalProcess("TERM")
    await child.ended
    with pytest.raises(ProcessExitedAlready):
        transport.signalProcess("KILL")


async def test_a_signal_sent_at_once_is_delivered(reactor: Any) -> None:
    # On the asyncio backends the loop has not reported the child yet.
    child = Child()
    transport = python(reactor, child, "import sys; sys.stdin.read()")
    transport.signalProcess("KILL")
    reason = await child.ended
    assert reason.failure.value.signal == signal.SIGKILL


def test_spawn_before_the_reactor_runs(reactor: Any) -> Deferred[None]:
    child = Child()
    python(reactor, child, "print(6 * 7)")

    def check(reason: Reason) -> None:
        assert reason.check(ProcessDone) and child.out.strip() == b"42"

    return child.ended.addCallback(check)


async def test_no_zombies_are_left(reactor: Any) -> None:
    child = Child()
    python(reactor, child, "import sys; sys.exit(1)")
    await child.ended
    assert child.pid is not None
    with pytest.raises(ChildProcessError):
        os.waitpid(child.pid, os.WNOHANG)


async def test_fifty_children_at_once(reactor: Any) -> None:
    children = [Child() for _ in range(50)]
    for i, child in enumerate(children):
        python(reactor, child, f"import sys; print({i}); sys.exit({i % 3})")
    reasons = await gatherResults([child.ended for child in children])
    for i, (child, reason) in enumerate(zip(children, reasons, strict=True)):
        assert child.out == f"{i}\n".encode()
        assert (reason.failure.value.exitCode or 0) == i % 3
    for child in children:
        with pytest.raises(ChildProcessError):
            os.waitpid(child.pid, os.WNOHANG)  # type: ignore[arg-type]


# -- writing to the child -------------------------------------------------------------------


async def test_writes_reach_stdin_and_closeStdin_ends_it(reactor: Any) -> None:
    child = Child()
    transport = python(reactor, child,
                       "import sys; sys.stdout.buffer.write(sys.stdin.buffer.read())")
    await child.made
    transport.write(b"hello ")
    transport.writeSequence([b"wor", b"ld"])
    transport.writeToChild(0, b"!")
    transport.closeStdin()
    transport.write(b"ignored after closeStdin")
    reason = await child.ended
    assert reason.check(ProcessDone)
    assert child.out == b"hello world!"
    assert ("lost", 0) in child.events
    with pytest.raises(KeyError):
        transport.writeToChild(0, b"no stdin any more")


async def test_writes_before_connectionMade_are_kept(reactor: Any) -> None:
    child = Child()
    transport = python(reactor, child,
                       "import sys; sys.stdout.buffer.write(sys.stdin.buffer.read())")
    transport.write(b"early")
    transport.closeStdin()
    await child.ended
    assert child.out == b"early"


async def test_a_child_that_exits_without_reading_stdin_ends(reactor: Any) -> None:
    # Nothing is ever written: we notice the closed stdin from its readiness.
    child = Child()
    python(reactor, child, "pass")
    reason = await child.ended
    assert reason.check(ProcessDone) and ("lost", 0) in child.events


async def test_loseConnection_closes_all_three(reactor: Any) -> None:
    child = Child()
    transport = python(reactor, child, "import sys; sys.stdin.read()")
    await child.made
    transport.loseConnection()
    reason = await child.ended
    assert reason.check(ProcessDone)
    assert {("lost", 0), ("lost", 1), ("lost", 2)} <= set(child.events)


class Pusher:
    """A streaming producer writing ``total`` bytes to a process's stdin."""

    def __init__(self, transport: Any, total: int, chunk: int = 16384) -> None:
        self.transport = transport
        self.total = total
        self.chunk = b"p" * chunk
        self.sent = 0
        self.paused = False
        self.pauses = 0

    def pauseProducing(self) -> None:
        self.paused = True
        self.pauses += 1

    def resumeProducing(self) -> None:
        self.paused = False
        self.produce()

    def stopProducing(self) -> None:
        self.paused = True

    def produce(self) -> None:
        while not self.paused and self.sent < self.total:
            self.transport.write(self.chunk)
            self.sent += len(self.chunk)
        if self.sent >= self.total and not self.paused:
            self.paused = True
            self.transport.unregisterProducer()
            self.transport.closeStdin()


async def test_a_streaming_producer_on_stdin_is_flow_controlled(reactor: Any) -> None:
    child = Child()
    # produce() writes until paused: 2 MiB outruns the 64 KiB pipe at once,
    # so the pause happens whether or not the child has started reading.
    transport = python(reactor, child, "import sys; print(len(sys.stdin.buffer.read()))")
    await child.made
    pusher = Pusher(transport, 2 * 1024 * 1024)
    transport.registerProducer(pusher, True)
    pusher.produce()
    reason = await child.ended
    assert reason.check(ProcessDone)
    assert int(child.out) == pusher.sent == 2 * 1024 * 1024
    assert pusher.pauses >= 1


async def test_a_pull_producer_on_stdin_is_asked_for_more(reactor: Any) -> None:
    child = Child()
    transport = python(reactor, child, "import sys; print(len(sys.stdin.buffer.read()))")
    await child.made
    asked: list[int] = []

    class Puller:
        def resumeProducing(self) -> None:
            asked.append(1)
            transport.write(b"x" * 1000)
            if len(asked) == 100:
                transport.unregisterProducer()
                transport.closeStdin()

        def stopProducing(self) -> None:
            pass

    transport.registerProducer(Puller(), False)
    await child.ended
    assert int(child.out) == 100 * 1000


# -- reading from the child: flow control, errors --------------------------------------------


async def test_large_output_with_pause_and_resume(reactor: Any) -> None:
    size = 8 * 1024 * 1024
    pattern = bytes(range(256))

    class Slow(Child):
        paused = False
        pauses = 0

        def outReceived(self, data: bytes) -> None:
            assert not self.paused, "data arrived while paused"
            before = len(self.data[1]) - len(data)
            if before // (1024 * 1024) != len(self.data[1]) // (1024 * 1024):
                self.paused = True
                self.pauses += 1
                self.transport.pauseProducing()
                reactor.callLater(0.01, self.resume)

        def childDataReceived(self, childFD: int, data: bytes) -> None:
            self.data[childFD] += data
            if childFD == 1:
                self.outReceived(data)

        def resume(self) -> None:
            self.paused = False
            self.transport.resumeProducing()

    child = Slow()
    python(reactor, child, "import sys; p = bytes(range(256)) * 4096\n"
                           f"for _ in range({size} // len(p)): sys.stdout.buffer.write(p)")
    reason = await child.ended
    assert reason.check(ProcessDone)
    assert child.out == pattern * (size // len(pattern))
    assert child.pauses >= 7


async def test_closeStdout_stops_reading(reactor: Any) -> None:
    child = Child()
    transport = python(reactor, child, "import sys; sys.stdin.read(); print('late')")
    await child.made
    transport.closeStdout()
    transport.closeStdin()
    reason = await child.ended
    # The child's print found no reader: it died of SIGPIPE or failed writing.
    assert reason.check(ProcessTerminated)
    assert child.out == b""
    assert ("lost", 1) in child.events


async def test_an_error_in_childDataReceived_is_logged_and_closes_that_pipe(
        reactor: Any, caplog: pytest.LogCaptureFixture) -> None:
    class Broken(Child):
        def childDataReceived(self, childFD: int, data: bytes) -> None:
            if childFD == 2:
                raise RuntimeError("protocol exploded")
            super().childDataReceived(childFD, data)

    child = Broken()
    with caplog.at_level(logging.ERROR):
        python(reactor, child, "import sys; sys.stderr.write('x'); sys.stderr.flush(); "
                               "sys.stdout.write('still read')")
        await child.ended
    assert "protocol exploded" in caplog.text
    assert child.out == b"still read"
    assert ("lost", 2) in child.events


# -- what the child gets: argv, environment, directory, descriptors ------------------------


async def test_args0_is_the_childs_argv0(reactor: Any) -> None:
    child = Child()
    reactor.spawnProcess(child, PY, ["pretend-name", "-c", "import sys; sys.stdout.buffer."
                                     "write(open('/proc/self/cmdline','rb').read())"], env={})
    await child.ended
    assert child.out.split(b"\0")[:2] == [b"pretend-name", b"-c"]


async def test_env_is_the_whole_environment(reactor: Any) -> None:
    child = Child()
    reactor.spawnProcess(child, ENV_PROGRAM, ["env"], env={"TORSION_A": "1", b"B": b"two"})
    await child.ended
    assert sorted(child.out.splitlines()) == [b"B=two", b"TORSION_A=1"]


async def test_env_defaults_to_empty(reactor: Any) -> None:
    child = Child()
    reactor.spawnProcess(child, ENV_PROGRAM, ["env"])
    await child.ended
    assert child.out == b""


async def test_env_None_passes_our_environment(reactor: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("TORSION_INHERITED", "yes")
    child = Child()
    reactor.spawnProcess(child, ENV_PROGRAM, ["env"], env=None)
    await child.ended
    assert b"TORSION_INHERITED=yes" in child.out.splitlines()


async def test_path_is_the_working_directory(reactor: Any, tmp_path: Any) -> None:
    child = Child()
    python(reactor, child, "import os; print(os.getcwd())", path=str(tmp_path))
    await child.ended
    assert child.out.strip() == str(tmp_path).encode()


async def test_an_executable_is_found_in_PATH(reactor: Any) -> None:
    child = Child()
    reactor.spawnProcess(child, "env", ["env"], env={"PATH": os.path.dirname(ENV_PROGRAM)})
    await child.ended
    assert child.out == f"PATH={os.path.dirname(ENV_PROGRAM)}\n".encode()


def test_a_missing_or_unrunnable_executable_raises(reactor: Any, tmp_path: Any) -> None:
    with pytest.raises(FileNotFoundError):
        reactor.spawnProcess(Child(), "/nonexistent/program", ["program"])
    with pytest.raises(FileNotFoundError):
        reactor.spawnProcess(Child(), "no-such-program-anywhere", ["x"], env={})
    script = tmp_path / "not-executable"
    script.write_text("#!/bin/sh\n")
    with pytest.raises(PermissionError):
        reactor.spawnProcess(Child(), str(script), ["x"])
    with pytest.raises(ValueError):
        reactor.spawnProcess(Child(), PY, [PY], childFDs={0: "x"})
    with pytest.raises(ValueError):
        reactor.spawnProcess(Child(), PY, [PY], usePTY=True, childFDs={0: "w"})


async def test_childFDs_extra_pipes_both_ways(reactor: Any) -> None:
    child = Child()
    transport = python(reactor, child, (
        "import os\n"
        "os.write(3, b'on three'); os.close(3)\n"
        "data = b''\n"
        "while chunk := os.read(4, 100): data += chunk\n"
        "os.write(1, b'fd 4 said ' + data)\n"),
        childFDs={0: "w", 1: "r", 2: "r", 3: "r", 4: "w"})
    await child.made
    assert set(transport.pipes) == {0, 1, 2, 3, 4}
    transport.writeToChild(4, b"four")
    transport.closeChildFD(4)
    reason = await child.ended
    assert reason.check(ProcessDone), child.err
    assert bytes(child.data[3]) == b"on three"
    assert child.out == b"fd 4 said four"
    assert ("lost", 3) in child.events and ("lost", 4) in child.events


async def test_childFDs_inherit_our_descriptors_and_close_the_rest(reactor: Any) -> None:
    read_end, write_end = os.pipe()
    stray = os.open(os.devnull, os.O_RDONLY)
    os.set_inheritable(stray, True)  # still not passed: it is not named in childFDs
    try:
        child = Child()
        python(reactor, child, (
            "import os\n"
            "def is_open(fd):\n"
            "    try:\n"
            "        os.fstat(fd)\n"
            "    except OSError:\n"
            "        return False\n"
            "    return True\n"
            f"os.write(1, repr([is_open(0), is_open(2), is_open({stray})]).encode())\n"),
            childFDs={1: write_end})
        reason = await child.ended
        os.close(write_end)
        write_end = -1
        assert reason.check(ProcessDone)
        assert os.read(read_end, 1000) == b"[False, False, False]"
        assert child.events == ["made", "exited", "ended"]
    finally:
        for fd in (read_end, write_end, stray):
            if fd >= 0:
                os.close(fd)


async def test_descriptors_not_named_are_closed_in_the_child(reactor: Any) -> None:
    stray = os.open(os.devnull, os.O_RDONLY)
    os.set_inheritable(stray, True)
    try:
        child = Child()
        python(reactor, child, f"import os\ntry:\n    os.fstat({stray})\nexcept OSError:\n"
                               "    print('closed')\nelse:\n    print('open')")
        await child.ended
        assert child.out == b"closed\n"
    finally:
        os.close(stray)


# -- PTYs, users, the fallback reaper, shutdown -----------------------------------------------


async def test_usePTY_runs_the_child_on_a_terminal(reactor: Any) -> None:
    child = Child()
    transport = python(reactor, child, (
        "import os, sys\n"
        "line = sys.stdin.readline()\n"
        "print(os.isatty(0), os.isatty(1), os.getsid(0) == os.getpid(), line.strip())\n"),
        usePTY=True)
    await child.made
    assert transport.pipes == {}
    transport.write(b"typed\n")
    reason = await child.ended
    assert reason.check(ProcessDone)
    assert b"True True True typed" in child.out
    with pytest.raises(NotImplementedError):
        transport.writeToChild(0, b"x")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch users")
async def test_uid_and_gid(reactor: Any) -> None:
    child = Child()
    reactor.spawnProcess(child, "/bin/sh", ["sh", "-c", "id -u; id -g; id -G"], env={},
                         uid=65534, gid=65534)
    reason = await child.ended
    assert reason.check(ProcessDone), child.err
    assert child.out.split() == [b"65534", b"65534", b"65534"]


@pytest.mark.backends("select")
async def test_without_pidfd_children_are_still_reaped(reactor: Any, monkeypatch: Any) -> None:
    def no_pidfd(pid: int, flags: int = 0) -> int:
        raise OSError(errno.ENOSYS, "pidfd_open is not available")

    monkeypatch.setattr(process_module.os, "pidfd_open", no_pidfd)
    # (With uvloop imported the SIGCHLD handler is not installed: see _PolledChild.)
    monkeypatch.delitem(sys.modules, "uvloop", raising=False)
    children = [Child(), Child()]
    python(reactor, children[0], "import sys; sys.exit(5)")
    killed = python(reactor, children[1], "import sys; sys.stdin.read()")
    if threading.current_thread() is threading.main_thread():
        assert signal.getsignal(signal.SIGCHLD) == process_module._PolledChild._on_sigchld
    await children[1].made
    killed.signalProcess("KILL")
    first, second = await gatherResults([c.ended for c in children])
    assert first.failure.value.exitCode == 5
    assert second.failure.value.signal == signal.SIGKILL
    assert signal.getsignal(signal.SIGCHLD) == signal.SIG_DFL
    for child in children:
        with pytest.raises(ChildProcessError):
            os.waitpid(child.pid, os.WNOHANG)  # type: ignore[arg-type]


async def test_reactor_shutdown_closes_the_pipes_and_still_reports_the_exit(
        reactor: Any) -> None:
    child = Child()
    transport = python(reactor, child, "import sys; sys.stdin.read()")
    await child.made
    transport._reactor_shutdown()
    assert {("lost", 0), ("lost", 1), ("lost", 2)} <= set(child.events)
    reason = await child.ended  # the child saw EOF on stdin and exited
    assert reason.check(ProcessDone)


async def test_a_graceful_stop_waits_for_running_children(reactor: Any) -> None:
    child = Child()
    # The child runs until we close its stdin, after the stop has begun.
    transport = python(reactor, child, "import sys; sys.stdin.read(); print('finished')")
    await child.made
    reactor.stopGracefully(10)
    transport.closeStdin()
    reason = await child.ended  # the reactor kept running until the child was done
    assert reason.check(ProcessDone) and child.out == b"finished\n"
