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

The suite starts servers with ``running_server(engine, cpu)`` (``benchmarks._servers``
does the work: it reads the port, pins the process, stops it with SIGTERM, SIGKILL after
5 s, however its block ends; the server also dies with its parent, so none outlives the
suite).
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from benchmarks import _servers
from benchmarks._servers import (
    HOST,
    BenchError,
    EngineUnavailable,
    Server,
    Unavailable,
    announce,
    uvloop_factory,
)

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
    announce(port.getHost().port)
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
        announce(server.sockets[0].getsockname()[1])
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, loop.stop)
        loop.run_forever()
        server.close()
        loop.run_until_complete(server.wait_closed())
    finally:
        loop.close()


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

            args = [uvloop_factory()()]
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
    announce(port.getHost().port)
    twisted_reactor.run()  # SIGTERM stops it


ENGINES: dict[str, Callable[[], None]] = {
    "torsion-select": lambda: serve_torsion("select"),
    "torsion-asyncio": lambda: serve_torsion("asyncio"),
    "torsion-uvloop": lambda: serve_torsion("uvloop"),
    "asyncio": lambda: serve_asyncio(asyncio.new_event_loop),
    "uvloop": lambda: serve_asyncio(uvloop_factory()),
    "asyncio-64k": lambda: serve_asyncio(asyncio.new_event_loop, SmallReadEcho),
    "twisted-epoll": lambda: serve_twisted("epoll"),
    "twisted-select": lambda: serve_twisted("select"),
    "twisted-asyncio-uvloop": lambda: serve_twisted("asyncio-uvloop"),
}


# --- starting a server (used by the suite, in the parent process) -----------------------


@contextmanager
def running_server(engine: str, cpu: int | None = None) -> Iterator[Server]:
    """Start ``engine``'s server pinned to ``cpu``; yield it once it listens; always stop it.

    Raises:
        EngineUnavailable: the engine's framework cannot be imported here.
        BenchError: the server did not start (the message has its stderr's tail).
    """
    with _servers.running_server("benchmarks.echo_servers", engine, cpu=cpu) as server:
        yield server


def main(argv: list[str]) -> int:
    """Run the engine named in ``argv``; return the exit status."""
    return _servers.serve_main(
        ENGINES, argv, f"python -m benchmarks.echo_servers {{{','.join(ENGINES)}}}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))


__all__ = ["ENGINES", "BenchError", "EngineUnavailable", "running_server"]
