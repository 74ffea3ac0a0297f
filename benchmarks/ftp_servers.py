"""FTP servers and the load client for the ``ftp`` suite, each in its own process.

``python -m benchmarks.ftp_servers ENGINE ROOT`` serves the directory ``ROOT`` on an
ephemeral port of 127.0.0.1 to one user (``bench``/``bench``, every permission) and
prints the port on a line of its own once ready; it serves until SIGTERM or SIGINT.
Each server is the ordinary code its framework's users write, with logging at WARNING
everywhere (pyftpdlib logs every command at INFO by default; a log line per command
would measure logging) and a plain-text password check (no hashing in either).

Engines:

- ``torsion-select``, ``torsion-asyncio``, ``torsion-uvloop``:
  ``protocols.ftp.FTPFactory(ROOT, checker=...)`` on ``reactor.create(backend)``.
  Downloads go through ``reactor.sendfile`` (zero-copy where the backend allows it),
  uploads through the thread pool into a temporary file renamed into place.
- ``pyftpdlib``: ``pyftpdlib.servers.FTPServer`` with the stock ``FTPHandler`` (it uses
  ``os.sendfile`` for downloads) and a ``DummyAuthorizer`` user with permissions
  ``elradfmwMT``, on its default epoll loop.

``python -m benchmarks.ftp_servers load PORT`` is the load client (:func:`run_load`). It
follows pyftpdlib's ``ftpbench``: ftplib for the control connection (login, ``TYPE I``,
``PASV`` and the transfer command) and raw sockets for the data, discarding what it
receives and sending dummy bytes (``b"x"``) for uploads. The only change is the buffer
size: ``ftpbench`` moves 8 KiB per call, which on loopback makes the client, not the
server, the bottleneck; this client receives into (and sends from) one preallocated
1 MiB buffer, so the client costs a fraction of a core.

Starting, pinning and stopping the processes is ``benchmarks._servers``'s: an engine that
cannot be imported exits with its ``EXIT_UNAVAILABLE`` and one line on stderr saying
why, before printing a port, so the suite can skip it.
"""

from __future__ import annotations

import contextlib
import ftplib
import importlib
import json
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import IO, Any

from benchmarks._servers import (
    HOST,
    BenchError,
    LineReader,
    Unavailable,
    announce,
    exit_if_orphaned,
    serve_main,
    start_python,
)

USER = PASSWORD = "bench"
#: The load client's receive and send buffer.
BUFFER = 1 << 20


# --- servers ------------------------------------------------------------------------


def serve_torsion(backend: str, root: str) -> None:
    """``protocols.ftp.FTPFactory`` serving ``root`` on ``reactor.create(backend)``."""
    try:
        import reactor as torsion_reactor
        from protocols.ftp import FTPFactory

        if backend != "select":
            from reactor.aio import AsyncioReactor  # noqa: F401  (fail here, not later)
        if backend == "uvloop":
            import uvloop  # noqa: F401
    except Exception as exc:  # a package being written may fail in any way
        raise Unavailable(f"torsion-{backend}: {type(exc).__name__}: {exc}") from exc

    def check(user: str, password: str) -> bool:
        return (user, password) == (USER, PASSWORD)

    r = torsion_reactor.create(backend)
    factory = FTPFactory(root, checker=check, reactor=r)
    port = r.listenTCP(0, factory, interface=HOST)
    announce(port.getHost().port)
    r.run()  # installs SIGINT/SIGTERM handlers that stop it gracefully


def serve_pyftpdlib(root: str) -> None:
    """pyftpdlib's stock FTPHandler and FTPServer, one user with every permission."""
    try:
        # By name: pyftpdlib ships no type information.
        authorizers: Any = importlib.import_module("pyftpdlib.authorizers")
        handlers: Any = importlib.import_module("pyftpdlib.handlers")
        servers: Any = importlib.import_module("pyftpdlib.servers")
    except ImportError as exc:
        raise Unavailable(f"pyftpdlib: {exc} (pip install pyftpdlib)") from exc

    authorizer = authorizers.DummyAuthorizer()
    authorizer.add_user(USER, PASSWORD, root, perm="elradfmwMT")

    class Handler(handlers.FTPHandler):  # type: ignore[misc]
        pass

    Handler.authorizer = authorizer
    server = servers.FTPServer((HOST, 0), Handler)

    def stop(signum: int, frame: Any) -> None:
        # Once: a second SIGTERM must not interrupt the clean-up of the first.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise KeyboardInterrupt  # serve_forever(handle_exit=True) closes everything

    signal.signal(signal.SIGTERM, stop)
    announce(server.socket.getsockname()[1])
    server.serve_forever(handle_exit=True)


ENGINES: dict[str, Callable[[str], None]] = {
    "torsion-select": lambda root: serve_torsion("select", root),
    "torsion-asyncio": lambda root: serve_torsion("asyncio", root),
    "torsion-uvloop": lambda root: serve_torsion("uvloop", root),
    "pyftpdlib": serve_pyftpdlib,
}


# --- the load client -------------------------------------------------------------------


@dataclass
class LoadResult:
    """What one measured transfer saw, from the client's side."""

    bytes: int
    seconds: float
    sessions: int
    #: With several sessions: the median and 99th percentile of the time each took to
    #: receive its whole file, from the start of the window.
    p50_us: float | None = None
    p99_us: float | None = None


#: A prepared transfer: the step to time, and the sessions to log out afterwards.
Prepared = tuple[Callable[[], LoadResult], list[ftplib.FTP]]


def _session(port: int) -> ftplib.FTP:
    ftp = ftplib.FTP(timeout=60)
    ftp.connect(HOST, port)
    ftp.login(USER, PASSWORD)
    ftp.voidcmd("TYPE I")
    return ftp


def _quit(sessions: list[ftplib.FTP]) -> None:
    for ftp in sessions:
        with contextlib.suppress(OSError, ftplib.Error):
            ftp.quit()
        ftp.close()


def _receive_all(conn: socket.socket, buffer: bytearray) -> int:
    view = memoryview(buffer)
    received = 0
    while True:
        n = conn.recv_into(view)
        if not n:
            return received
        received += n


def retrieve(port: int, name: str, size: int) -> Prepared:
    """Prepare one session; the returned step RETRs ``name`` and discards the data."""
    ftp = _session(port)
    buffer = bytearray(BUFFER)

    def go() -> LoadResult:
        start = time.perf_counter()
        with contextlib.closing(ftp.transfercmd(f"RETR {name}")) as conn:
            received = _receive_all(conn, buffer)
        ftp.voidresp()
        elapsed = time.perf_counter() - start
        if received != size:
            raise BenchError(f"RETR {name}: got {received} bytes, not {size}")
        return LoadResult(received, elapsed, 1)

    return go, [ftp]


def store(port: int, name: str, size: int) -> Prepared:
    """Prepare one session; the returned step STORs ``size`` bytes of ``b"x"`` as ``name``."""
    ftp = _session(port)
    chunk = memoryview(b"x" * BUFFER)

    def go() -> LoadResult:
        start = time.perf_counter()
        with contextlib.closing(ftp.transfercmd(f"STOR {name}")) as conn:
            left = size
            while left:
                n = min(left, BUFFER)
                conn.sendall(chunk[:n])
                left -= n
        ftp.voidresp()  # the 226 comes once the server has the whole file in place
        elapsed = time.perf_counter() - start
        return LoadResult(size, elapsed, 1)

    return go, [ftp]


def retrieve_many(port: int, name: str, size: int, count: int) -> Prepared:
    """Prepare ``count`` logged-in sessions; the step has each RETR ``name`` at once.

    As ``ftpbench``'s concurrence case: the transfers are asked for one after another
    (PASV, connect, RETR, 150), then every data connection is read together.
    """
    sessions = [_session(port) for _ in range(count)]
    buffer = bytearray(BUFFER)
    view = memoryview(buffer)

    def go() -> LoadResult:
        start = time.perf_counter()
        received: dict[socket.socket, int] = {}
        finished: list[float] = []
        with selectors.DefaultSelector() as selector:
            for ftp in sessions:
                conn = ftp.transfercmd(f"RETR {name}")
                conn.setblocking(False)
                selector.register(conn, selectors.EVENT_READ)
                received[conn] = 0
            while selector.get_map():
                for key, _ in selector.select():
                    conn = key.fileobj  # type: ignore[assignment]
                    try:
                        n = conn.recv_into(view)
                    except BlockingIOError:
                        continue
                    if n:
                        received[conn] += n
                    else:
                        finished.append(time.perf_counter() - start)
                        selector.unregister(conn)
                        conn.close()
        for ftp in sessions:
            ftp.voidresp()
        elapsed = time.perf_counter() - start
        short = [n for n in received.values() if n != size]
        if short:
            raise BenchError(f"{len(short)} of {count} RETRs were short: {short[:3]} bytes")
        finished.sort()
        p50, p99 = (finished[min(count - 1, int(q * count))] * 1e6 for q in (0.50, 0.99))
        return LoadResult(sum(received.values()), elapsed, count, p50, p99)

    return go, sessions


def check_file(port: int, name: str, digest: str) -> str:
    """RETR ``name`` through ftplib and compare its SHA-256; '' when right, else why."""
    import hashlib

    ftp = _session(port)
    try:
        h = hashlib.sha256()
        ftp.retrbinary(f"RETR {name}", h.update, blocksize=1 << 16)
        size = ftp.size(name)
    finally:
        _quit([ftp])
    if h.hexdigest() != digest:
        return f"RETR {name}: wrong content (sha256 {h.hexdigest()[:16]}...)"
    return "" if size is not None else f"SIZE {name} failed"


def run_load(port: int) -> int:
    """Serve the suite's requests over stdio until EOF or ``quit``.

    Each request is one line: ``retr NAME SIZE``, ``stor NAME SIZE``,
    ``multi NAME SIZE COUNT`` or ``check NAME SHA256``. For a transfer, the client
    opens and logs in its sessions, prints ``ready``, waits for a ``go`` line, makes
    the transfer and prints one JSON :class:`LoadResult` (or ``{"error": ...}``), then
    logs out. ``check`` prints ``{"error": ""}`` when the file came back intact.
    """
    for line in sys.stdin:
        words = line.split()
        if not words or words[0] == "quit":
            return 0
        try:
            if words[0] == "check":
                print(json.dumps({"error": check_file(port, words[1], words[2])}), flush=True)
                continue
            name, size = words[1], int(words[2])
            if words[0] == "retr":
                step, sessions = retrieve(port, name, size)
            elif words[0] == "stor":
                step, sessions = store(port, name, size)
            elif words[0] == "multi":
                step, sessions = retrieve_many(port, name, size, int(words[3]))
            else:
                raise BenchError(f"unknown request {line.strip()!r}")
            try:
                print("ready", flush=True)
                if sys.stdin.readline().strip() != "go":
                    return 1
                print(json.dumps(asdict(step())), flush=True)
            finally:
                _quit(sessions)  # outside the measured window
        except (OSError, EOFError, ftplib.Error, BenchError, ValueError, IndexError) as exc:
            print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}), flush=True)
    return 0


# --- the load client process (used by the suite, in the parent process) ------------------


class LoadClient:
    """The load client process, driven one request at a time."""

    def __init__(self, proc: subprocess.Popen[bytes], stderr: IO[bytes]) -> None:
        self.proc = proc
        self.pid = proc.pid
        self._stderr = stderr
        assert proc.stdout is not None
        self._lines = LineReader(proc.stdout)

    def send(self, line: str) -> None:
        """Write one request line."""
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(line.encode() + b"\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            raise BenchError(f"the load client exited; {self.last_words()}") from None

    def read(self, timeout: float, what: str) -> str:
        """The client's next line (``ready`` or JSON)."""
        try:
            return self._lines.readline(timeout, what)
        except BenchError as exc:
            raise BenchError(f"load client: {exc}; {self.last_words()}") from None

    def result(self, timeout: float, what: str) -> dict[str, Any]:
        """The client's next JSON line; BenchError if it reports an error."""
        line = self.read(timeout, what)
        try:
            result: dict[str, Any] = json.loads(line)
        except ValueError:
            raise BenchError(f"the load client printed {line[:200]!r}") from None
        if result.get("error"):
            raise BenchError(f"load client: {result['error']}")
        return result

    def last_words(self) -> str:
        """The tail of the client's stderr."""
        self._stderr.seek(0)
        said = self._stderr.read().decode(errors="replace").strip().splitlines()[-3:]
        return f"client stderr: {' | '.join(said) if said else '(empty)'}"


@contextlib.contextmanager
def load_client(port: int, cpu: int | None) -> Iterator[LoadClient]:
    """Start the load client for the server on ``port``, pinned to ``cpu``."""
    with tempfile.TemporaryFile() as stderr:
        proc = start_python("benchmarks.ftp_servers", ["load", str(port)], cpu, stderr,
                            stdin=subprocess.PIPE)
        try:
            yield LoadClient(proc, stderr)
        finally:
            if proc.stdin is not None:
                with contextlib.suppress(OSError):
                    proc.stdin.close()  # EOF: the client exits
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()


def main(argv: list[str]) -> int:
    """Run the engine (or the load client) named in ``argv``; return the exit status."""
    if len(argv) == 2 and argv[0] == "load":
        exit_if_orphaned()
        return run_load(int(argv[1]))
    # serve_main sets every logger to WARNING, pyftpdlib's included (it would log each
    # command at INFO).
    return serve_main(ENGINES, argv, f"python -m benchmarks.ftp_servers "
                      f"{{{','.join(ENGINES)}}} ROOT\n"
                      "       python -m benchmarks.ftp_servers load PORT", nargs=2)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))


__all__ = ["ENGINES", "LoadClient", "LoadResult", "load_client"]
