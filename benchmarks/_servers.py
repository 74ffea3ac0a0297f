"""Processes for the server suites: starting, pinning, measuring and stopping them.

Both sides of a server suite use this module:

- the server side (``python -m benchmarks.<suite>_servers ENGINE ...``) calls
  :func:`serve_main` with its table of engines and :func:`announce` once it listens:
  one line on stdout, the port first (words after it are the suite's business). An
  engine whose framework cannot be imported raises :class:`Unavailable`, and the process
  exits with :data:`EXIT_UNAVAILABLE` before announcing anything;
- the suite side starts it with :func:`running_server`, which pins it to a CPU, ties its
  life to ours (``prctl(PR_SET_PDEATHSIG)``: no orphan servers even if the suite is
  killed), reads the port, and always stops it (SIGTERM, SIGKILL after 5 s).

It also holds what every suite reads from ``/proc`` (a process's CPU time, the machine's
busy time), the CPU pair server and client are pinned to, and :func:`ensure_tool`, which
installs a missing Debian package (wrk, nginx) when running as root.

Only the standard library is imported here: every server process imports this module
before its framework, and a server's start-up must not pay for the suite's imports.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

HOST = "127.0.0.1"
ROOT = Path(__file__).resolve().parent.parent
#: Exit status meaning "this engine is not importable here" (the suite skips it).
EXIT_UNAVAILABLE = 3
#: Environment variable holding the suite's pid: a server exits if that parent is gone.
PARENT_ENV = "TORSION_BENCH_PARENT"
#: Seconds for a server to import its framework and listen.
SERVER_START_TIMEOUT = 30.0
BENCH_EXTRA = "pip install -e '.[bench]'"
_PR_SET_PDEATHSIG = 1  # from <sys/prctl.h>


class Unavailable(Exception):
    """Raised inside a server process: the engine's framework cannot be imported here."""


class BenchError(Exception):
    """A run went wrong (server died, client error, timeout); the message says how."""


class EngineUnavailable(Exception):
    """The server reported that its framework cannot be imported here (suite side)."""


def progress(message: str) -> None:
    """A progress line on stderr (stdout carries the tables)."""
    print(message, file=sys.stderr, flush=True)


# --- the server side ----------------------------------------------------------------


def announce(port: int, *words: str) -> None:
    """Tell the suite we listen: one line, the port and then ``words``."""
    print(port, *words, flush=True)


def serve_main(engines: dict[str, Callable[..., None]], argv: list[str], usage: str,
               nargs: int = 1) -> int:
    """Run ``engines[argv[0]](*argv[1:])`` in a server process; return the exit status.

    ``nargs`` counts the engine name and its arguments (http: the file to serve).
    """
    import logging

    if len(argv) != nargs or argv[0] not in engines:
        print(f"usage: {usage}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(name)s %(levelname)s %(message)s")
    exit_if_orphaned()
    try:
        engines[argv[0]](*argv[1:])
    except Unavailable as exc:
        print(f"unavailable: {exc}", file=sys.stderr, flush=True)
        return EXIT_UNAVAILABLE
    return 0


def exit_if_orphaned() -> None:
    """Exit at once if the suite that started us died before our prctl took effect."""
    parent = os.environ.get(PARENT_ENV)
    if parent is not None and os.getppid() != int(parent):
        sys.exit(1)


def uvloop_factory() -> Callable[[], Any]:
    """``uvloop.new_event_loop``, or :class:`Unavailable` when uvloop is missing."""
    try:
        import uvloop
    except ImportError as exc:
        raise Unavailable(f"uvloop: {exc}") from exc
    return uvloop.new_event_loop


def run_until_signalled(loop: Any) -> None:
    """Run an asyncio loop in a server process until SIGINT or SIGTERM."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, loop.stop)
    loop.run_forever()


# --- the suite side: CPUs and /proc -------------------------------------------------


@dataclass(frozen=True)
class Pins:
    """The CPUs the server and its load client are pinned to (None: not pinned)."""

    server: int | None = None
    client: int | None = None

    @classmethod
    def choose(cls) -> Pins:
        """Two distinct usable CPUs, or no pinning when there is only one."""
        usable = sorted(os.sched_getaffinity(0))
        return cls(usable[0], usable[1]) if len(usable) >= 2 else cls()

    def describe(self, client: str) -> str:
        """One line saying where server and ``client`` run."""
        if self.server is None:
            return (f"note: 1 usable CPU: the {client} and the server share it; CPU per "
                    "operation is still the server's own")
        return f"server pinned to CPU {self.server}, {client} to CPU {self.client}"


def pin(pid: int, cpu: int | None) -> None:
    """Keep process ``pid`` on ``cpu`` (None: leave it to the scheduler)."""
    if cpu is not None:
        os.sched_setaffinity(pid, {cpu})


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
        stat = f.read()
    # The command name (field 2) is in parentheses and may hold spaces: split after it.
    fields = stat.rpartition(")")[2].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU seconds all CPUs spent busy since boot, less interrupt and softirq time.

    Only a noise gauge ("other max"): the server's and the client's CPU are subtracted to
    show how much else ran. Loopback TCP is largely processed in softirq context, which
    /proc charges to no process, so counting it would make an idle machine look busy.
    """
    with open("/proc/stat", encoding="ascii") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal: keep user, nice, system, steal
    busy = fields[0] + fields[1] + fields[2] + fields[7]
    return busy / os.sysconf("SC_CLK_TCK")


# --- the suite side: tools ----------------------------------------------------------


def apt_install(package: str) -> str:
    """``apt-get install -y package`` when root (refreshing the lists once if that
    fails); return '' or why it was not installed, with the command to run."""
    if os.geteuid() != 0:
        return f"not root, so not installing it; run: sudo apt-get install -y {package}"
    if shutil.which("apt-get") is None:
        return f"no apt-get here: install {package} with the system's package manager"
    progress(f"installing {package}: apt-get install -y {package}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    done: subprocess.CompletedProcess[str] | None = None
    for attempt in range(2):
        if attempt:
            subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True,
                           check=False)
        done = subprocess.run(["apt-get", "install", "-y", "-qq", package], env=env,
                              capture_output=True, text=True, check=False)
        if done.returncode == 0:
            return ""
    assert done is not None
    return f"apt-get install -y {package} failed: {done.stderr.strip()[-300:]}"


def find_binary(name: str) -> str | None:
    """``name`` on PATH or in an sbin directory (often outside a non-root PATH)."""
    return shutil.which(name) or next(
        (p for d in ("/usr/sbin", "/usr/local/sbin", "/sbin")
         if os.access(p := f"{d}/{name}", os.X_OK)), None)


def ensure_tool(name: str, package: str | None = None) -> tuple[str | None, str]:
    """The path of program ``name``, installed from Debian's ``package`` when missing.

    Returns:
        ``(path, "")``, or ``(None, why)`` where ``why`` names the command to run.
    """
    found = find_binary(name)
    if found:
        return found, ""
    why = apt_install(package or name)
    found = find_binary(name)
    return found, ("" if found else why or f"{name} not found after installing it")


def missing_module(names: Sequence[str]) -> str | None:
    """The first of the importable top-level ``names`` that is not installed, or None."""
    for name in names:
        if importlib.util.find_spec(name) is None:
            return name
    return None


# --- the suite side: server processes ------------------------------------------------


class LineReader:
    """Reads whole lines from a child's stdout pipe, each with a deadline."""

    def __init__(self, pipe: IO[bytes]) -> None:
        self._fd = pipe.fileno()
        self._buffer = b""

    def readline(self, timeout: float, what: str) -> str:
        """The next line, stripped; :class:`BenchError` after ``timeout`` or at EOF."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BenchError(f"no {what} within {timeout:g} s")
            ready, _, _ = select.select([self._fd], [], [], remaining)
            if ready:
                chunk = os.read(self._fd, 4096)
                if not chunk:
                    raise BenchError(f"the process exited before printing its {what}")
                self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode(errors="replace").strip()


def child_setup(cpu: int | None) -> Callable[[], None]:
    """What a child runs between fork and exec: pin it, tie its life to ours."""

    def setup() -> None:
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})
        if sys.platform.startswith("linux"):
            # The child gets SIGTERM if the suite dies, even by SIGKILL: no orphans.
            with contextlib.suppress(OSError, AttributeError):
                ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)

    return setup


def start_python(module: str, args: Sequence[str], cpu: int | None, stderr: IO[bytes],
                 stdin: Any = subprocess.DEVNULL) -> subprocess.Popen[bytes]:
    """``python -m module args...`` from the checkout, pinned, dying with us."""
    env = dict(os.environ, **{PARENT_ENV: str(os.getpid())})
    return subprocess.Popen(
        [sys.executable, "-m", module, *args], cwd=ROOT, env=env, stdin=stdin,
        stdout=subprocess.PIPE, stderr=stderr, preexec_fn=child_setup(cpu))


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM (a graceful stop), SIGKILL after 5 s; close its stdout."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


def tail(text: str, lines: int = 5) -> str:
    """The last ``lines`` lines of ``text`` on one line."""
    kept = text.strip().splitlines()[-lines:]
    return " | ".join(kept) if kept else "(empty)"


@dataclass
class Server:
    """A running server process: its pid, port, the words after its port, its stderr."""

    engine: str
    pid: int
    port: int
    words: tuple[str, ...]
    #: What the server said on stderr at start-up (a torsion engine's "not available").
    notes: str
    proc: subprocess.Popen[bytes]
    #: The server's stderr (nginx: its error log).
    log_path: Path

    def alive(self) -> bool:
        """Whether the process is still running."""
        return self.proc.poll() is None

    def said(self) -> str:
        """Everything the server printed on stderr so far."""
        return self.log_path.read_text(errors="replace").strip() if self.log_path.exists() else ""

    def last_words(self, lines: int = 5) -> str:
        """The tail of what the server printed since start-up, for error reports."""
        said = self.said().removeprefix(self.notes).strip()
        state = "" if self.alive() else f"exited with status {self.proc.returncode}; "
        return f"server {state}stderr: {tail(said, lines)}"


def wait_ready(engine: str, proc: subprocess.Popen[bytes], log_path: Path) -> Server:
    """Read the server's announcement; :class:`EngineUnavailable` or :class:`BenchError`."""
    assert proc.stdout is not None

    def said() -> str:
        return log_path.read_text(errors="replace").strip() if log_path.exists() else ""

    try:
        words = LineReader(proc.stdout).readline(SERVER_START_TIMEOUT, "port").split()
        port = int(words[0])
    except (BenchError, ValueError, IndexError) as exc:
        try:
            code = proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            code = None
        if code == EXIT_UNAVAILABLE:
            raise EngineUnavailable(said().removeprefix("unavailable: ")) from None
        raise BenchError(f"server did not start ({exc}); server stderr: {tail(said())}"
                         ) from None
    return Server(engine, proc.pid, port, tuple(words[1:]), said(), proc, log_path)


@contextlib.contextmanager
def running_server(module: str, engine: str, args: Sequence[str] = (),
                   cpu: int | None = None) -> Iterator[Server]:
    """Start ``python -m module engine args...`` pinned to ``cpu``; always stop it.

    Anything the server printed on stderr beyond its start-up notes is shown when it
    stops (a traceback in a server is worth seeing even when the run went through).

    Raises:
        EngineUnavailable: the engine's framework cannot be imported here.
        BenchError: the server did not start (the message has its stderr's tail).
    """
    with tempfile.TemporaryDirectory(prefix="torsion-bench-") as tmpdir:
        log_path = Path(tmpdir) / "stderr.txt"
        # stderr goes to a file: a pipe nobody reads could fill and stall the server.
        with open(log_path, "wb") as stderr:
            proc = start_python(module, [engine, *args], cpu, stderr)
        server: Server | None = None
        try:
            server = wait_ready(engine, proc, log_path)
            yield server
        finally:
            stop(proc)
            if server is not None:
                said = server.said()
                if said and said != server.notes:
                    progress(f"  {engine} server said: {tail(said)}")

