"""Echo servers for the ``echo`` suite, one engine per process.

``python -m benchmarks.echo_servers ENGINE`` listens on an ephemeral port of 127.0.0.1,
prints the port number on a line of its own, and echoes until SIGTERM or SIGINT. The suite
measures the process's CPU time, so each server does nothing but echo: the most ordinary
code its framework's users would write, with TCP_NODELAY on every accepted connection.

Engines:

- ``torsion-select``, ``torsion-asyncio``, ``torsion-uvloop``: a torsion ``Protocol`` on
  ``reactor.create(backend)``.
- ``asyncio``, ``uvloop``: a minimal ``asyncio.Protocol`` (``connection_made`` keeps the
  transport, ``data_received`` writes) on the default loop or on uvloop; asyncio already
  sets TCP_NODELAY on TCP transports.
- ``asyncio-64k``: diagnostic, not run by default. The same protocol on the default loop,
  reading 64 KiB at a time instead of 256 KiB (``transport.max_size``). A 256 KiB read
  buffer is above glibc's initial mmap threshold (128 KiB), so a fresh asyncio server on
  Python 3.11 does mmap + mremap + munmap for every read, three times the CPU of the echo
  itself on some machines, until the first connection closes: the empty read at EOF frees
  a whole 256 KiB buffer, glibc raises its threshold, and reads come from the heap from
  then on. The suite's warm-up closes connections, so it measures that steady state;
  this engine shows the difference that remains.
- ``twisted-epoll``, ``twisted-select``, ``twisted-asyncio-uvloop``: a Twisted
  ``Protocol`` on the epoll reactor, the select reactor, or the asyncio reactor over a
  uvloop loop.

An engine that cannot be imported exits with status ``EXIT_UNAVAILABLE`` and one line on
stderr saying why, before printing a port, so the suite can skip it.

The suite starts servers with ``running_server(engine, cpu)``, which reads the port,
pins the process, and stops it with SIGTERM (SIGKILL after 5 s) however its block ends;
the server also dies with its parent (``prctl(PR_SET_PDEATHSIG)``), so none outlives the
suite.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

HOST = "127.0.0.1"
#: Exit status meaning "this engine is not importable here" (the suite skips it).
EXIT_UNAVAILABLE = 3
#: Environment variable holding the suite's pid: the server exits if that parent is gone.
PARENT_ENV = "ECHO_BENCH_PARENT"
_PR_SET_PDEATHSIG = 1  # from <sys/prctl.h>


class Unavailable(Exception):
    """The engine's framework cannot be imported in this environment."""


def _announce(port: int) -> None:
    # The suite reads exactly one line: the port. Nothing else goes to stdout.
    print(port, flush=True)


# --- torsion --------------------------------------------------------------------------


def serve_torsion(backend: str) -> None:
    """A torsion Protocol echo server on a fresh reactor of ``backend``."""
    try:
        import reactor as torsion_reactor
        from protocols import Factory, Protocol

        if backend != "select":
            # reactor.create imports it lazily; import here so a missing aio backend
            # is reported as unavailable instead of failing after start-up.
            from reactor.aio import AsyncioReactor  # noqa: F401
        if backend == "uvloop":
            import uvloop  # noqa: F401
    except ImportError as exc:
        raise Unavailable(f"torsion-{backend}: {exc}") from exc

    class Echo(Protocol):
        def dataReceived(self, data: bytes) -> None:
            # The transport is set before any data arrives; no None check on the hot path.
            self.transport.write(data)  # type: ignore[union-attr]

    r = torsion_reactor.create(backend)
    # torsion's TCP port sets TCP_NODELAY on accepted connections itself.
    port = r.listenTCP(0, Factory.forProtocol(Echo), interface=HOST)
    _announce(port.getHost().port)
    r.run()  # installs SIGINT/SIGTERM handlers that stop it gracefully


# --- plain asyncio ---------------------------------------------------------------------


class AsyncioEcho(asyncio.Protocol):
    """The textbook asyncio echo protocol."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


class SmallReadEcho(AsyncioEcho):
    """AsyncioEcho with 64 KiB reads (diagnostic: see the module docstring)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        # A class attribute of the selector transport, read on every recv; not part of
        # the BaseTransport interface, hence the ignore.
        transport.max_size = 64 * 1024  # type: ignore[attr-defined]


def serve_asyncio(
    loop_factory: Callable[[], asyncio.AbstractEventLoop],
    protocol: type[asyncio.Protocol] = AsyncioEcho,
) -> None:
    """A plain asyncio.Protocol echo server on a loop from ``loop_factory``."""
    loop = loop_factory()
    asyncio.set_event_loop(loop)
    try:
        server = loop.run_until_complete(loop.create_server(protocol, HOST, 0))
        _announce(server.sockets[0].getsockname()[1])
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, loop.stop)
        loop.run_forever()
        server.close()
        loop.run_until_complete(server.wait_closed())
    finally:
        loop.close()


def _uvloop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    try:
        import uvloop
    except ImportError as exc:
        raise Unavailable(f"uvloop: {exc}") from exc
    return uvloop.new_event_loop


# --- Twisted -------------------------------------------------------------------------


def serve_twisted(flavour: str) -> None:
    """A Twisted Protocol echo server on the reactor named by ``flavour``."""
    try:
        # Twisted's reactor modules are typed through zope interfaces that mypy cannot
        # follow; they are handled as Any here.
        install: Callable[..., None]
        args: list[Any] = []
        if flavour == "epoll":
            from twisted.internet.epollreactor import install
        elif flavour == "select":
            from twisted.internet.selectreactor import install
        else:  # asyncio-uvloop: Twisted's asyncio reactor driving a uvloop loop
            from twisted.internet.asyncioreactor import install

            args = [_uvloop_factory()()]
            asyncio.set_event_loop(args[0])
        install(*args)
        from twisted.internet import protocol
        from twisted.internet import reactor as installed
    except ImportError as exc:
        raise Unavailable(f"twisted-{flavour}: {exc}") from exc
    twisted_reactor: Any = installed

    class Echo(protocol.Protocol):
        transport: Any  # an ITCPTransport once connected

        def connectionMade(self) -> None:
            # Twisted leaves Nagle on; the other engines turn it off.
            self.transport.setTcpNoDelay(True)

        def dataReceived(self, data: bytes) -> None:
            self.transport.write(data)

    port = twisted_reactor.listenTCP(0, protocol.Factory.forProtocol(Echo), interface=HOST)
    _announce(port.getHost().port)
    twisted_reactor.run()  # SIGTERM stops it


ENGINES: dict[str, Callable[[], None]] = {
    "torsion-select": lambda: serve_torsion("select"),
    "torsion-asyncio": lambda: serve_torsion("asyncio"),
    "torsion-uvloop": lambda: serve_torsion("uvloop"),
    "asyncio": lambda: serve_asyncio(asyncio.new_event_loop),
    "uvloop": lambda: serve_asyncio(_uvloop_factory()),
    "asyncio-64k": lambda: serve_asyncio(asyncio.new_event_loop, SmallReadEcho),
    "twisted-epoll": lambda: serve_twisted("epoll"),
    "twisted-select": lambda: serve_twisted("select"),
    "twisted-asyncio-uvloop": lambda: serve_twisted("asyncio-uvloop"),
}


# --- starting a server (used by the suite, in the parent process) -----------------------

#: Seconds for a server to import its framework and listen.
SERVER_START_TIMEOUT = 30.0
ROOT = Path(__file__).resolve().parent.parent


class BenchError(Exception):
    """A run went wrong (server died, client error, timeout); the message says how."""


class EngineUnavailable(Exception):
    """The server reported that its framework cannot be imported here."""


def pin(pid: int, cpu: int | None) -> None:
    """Keep process ``pid`` on ``cpu`` (None: leave it to the scheduler)."""
    if cpu is not None:
        os.sched_setaffinity(pid, {cpu})


class LineReader:
    """Reads whole lines from a child's stdout pipe, each with a deadline."""

    def __init__(self, pipe: IO[bytes]) -> None:
        self._fd = pipe.fileno()
        self._buffer = b""

    def readline(self, timeout: float, what: str) -> str:
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


class _Server:
    """One echo server subprocess; ``stop()`` always reaps it."""

    def __init__(self, engine: str, stderr: IO[bytes], cpu: int | None) -> None:
        self.engine = engine
        self._stderr = stderr
        # The server exits if we die (prctl PDEATHSIG, keyed to our pid).
        env = dict(os.environ, **{PARENT_ENV: str(os.getpid())})
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.echo_servers", engine],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
        )
        # Pinned before it has imported anything: its start-up is not measured anyway.
        pin(self.proc.pid, cpu)

    def wait_for_port(self) -> int:
        assert self.proc.stdout is not None
        try:
            line = LineReader(self.proc.stdout).readline(SERVER_START_TIMEOUT, "port")
            return int(line)
        except (BenchError, ValueError) as exc:
            try:
                code = self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                code = None
            if code == EXIT_UNAVAILABLE:
                raise EngineUnavailable(self.stderr_text().strip()) from None
            raise BenchError(f"server did not start ({exc}); {self.stderr_tail()}") from None

    def stderr_text(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")

    def stderr_tail(self, lines: int = 5) -> str:
        text = self.stderr_text().strip().splitlines()[-lines:]
        return "server stderr: " + (" | ".join(text) if text else "(empty)")

    def stop(self) -> str:
        """SIGTERM (a graceful stop), SIGKILL after 5 s; return anything it printed."""
        try:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            return self.stderr_text().strip()
        finally:
            if self.proc.stdout is not None:
                self.proc.stdout.close()


@contextmanager
def running_server(engine: str, cpu: int | None = None) -> Iterator[tuple[int, int]]:
    """Start ``engine``'s server (pinned to ``cpu``); yield ``(pid, port)``; always stop it.

    Raises:
        EngineUnavailable: the engine's framework cannot be imported here.
        BenchError: the server did not start (the message has its stderr's tail).
    """
    # The server's stderr goes to a file: a pipe nobody reads could fill and stall it.
    with tempfile.TemporaryFile() as stderr:
        server = _Server(engine, stderr, cpu)
        unavailable = False
        try:
            yield server.proc.pid, server.wait_for_port()
        except EngineUnavailable:
            unavailable = True  # its stderr is the exception's message: say it once
            raise
        finally:
            printed = server.stop()
            if printed and not unavailable:
                tail = " | ".join(printed.splitlines()[-5:])
                print(f"  {engine} server said: {tail}", file=sys.stderr, flush=True)


def _die_with_parent() -> None:
    """Exit when the suite that started us dies, even by SIGKILL: no orphan servers."""
    parent = os.environ.get(PARENT_ENV)
    if parent is None or not sys.platform.startswith("linux"):
        return
    try:
        libc: Any = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        return
    # The parent may have died before prctl took effect: then we were re-parented.
    if os.getppid() != int(parent):
        sys.exit(1)


def main(argv: list[str]) -> int:
    """Run the engine named in ``argv``; return the exit status."""
    if len(argv) != 1 or argv[0] not in ENGINES:
        print(f"usage: python -m benchmarks.echo_servers {{{','.join(ENGINES)}}}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(name)s %(levelname)s %(message)s")
    _die_with_parent()
    try:
        ENGINES[argv[0]]()
    except Unavailable as exc:
        print(f"unavailable: {exc}", file=sys.stderr, flush=True)
        return EXIT_UNAVAILABLE
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
