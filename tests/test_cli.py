"""The ``torsion`` command end to end: real processes, real sockets, real signals.

Every server here is the real command (``python -m reactor`` or the
``torsion`` console script) in a subprocess, on 127.0.0.1 and port 0; the
tests learn the port from its start-up line and wait on lines, never on
sleeps. Each process is killed in a ``finally`` (the ``torsion`` fixture).
"""

from __future__ import annotations

import json
import logging
import os
import queue
import re
import signal
import socket
import ssl
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from reactor.cli import JsonFormatter, build_parser, load_services, main

BACKENDS = ["select", "asyncio", "uvloop"]
LISTENING = re.compile(
    r"^torsion (\w+): listening on (tcp|tcp6|udp|ssl|unix):(\S+) "
    r"\(reactor: (\w+)(, workers: \d+)?\)$")
TIMEOUT = 30.0


class Torsion:
    """A ``torsion`` process, with its stdout and stderr read line by line in threads."""

    def __init__(self, args: list[str], script: bool = False, cwd: Path | None = None,
                 env: dict[str, str] | None = None) -> None:
        command = ([str(Path(sys.executable).parent / "torsion")] if script
                   else [sys.executable, "-m", "reactor"])
        self.process = subprocess.Popen(
            command + args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, cwd=cwd, env={**os.environ, **(env or {})})
        self.out: queue.Queue[str | None] = queue.Queue()
        self.err: queue.Queue[str | None] = queue.Queue()
        self.stderr_seen: list[str] = []
        self._threads = [threading.Thread(target=self._pump, args=(stream, lines), daemon=True)
                         for stream, lines in ((self.process.stdout, self.out),
                                               (self.process.stderr, self.err))]
        for thread in self._threads:
            thread.start()

    @staticmethod
    def _pump(stream: Any, lines: queue.Queue[str | None]) -> None:
        for line in stream:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    def line(self) -> str:
        """The next stdout line (fails on EOF or timeout)."""
        line = self.out.get(timeout=TIMEOUT)
        assert line is not None, f"stdout closed; stderr: {self.drain_stderr()}"
        return line

    def listeners(self, count: int) -> list[tuple[str, str, int]]:
        """Read ``count`` start-up lines: (kind, host, port) each."""
        found = []
        for _ in range(count):
            line = self.line()
            match = LISTENING.match(line)
            assert match, f"not a start-up line: {line!r}"
            if match.group(2) == "unix":
                found.append(("unix", match.group(3), 0))
                continue
            host, _, port = match.group(3).rpartition(":")
            found.append((match.group(2), host.strip("[]"), int(port)))
        return found

    def wait_stderr(self, pattern: str) -> re.Match[str]:
        """Read stderr until a line matches ``pattern``."""
        while True:
            line = self.err.get(timeout=TIMEOUT)
            assert line is not None, f"stderr closed before {pattern!r}: {self.stderr_seen}"
            self.stderr_seen.append(line)
            match = re.search(pattern, line)
            if match:
                return match

    def drain_stderr(self) -> list[str]:
        """Everything on stderr until it closes (the process has exited)."""
        while True:
            line = self.err.get(timeout=TIMEOUT)
            if line is None:
                return self.stderr_seen
            self.stderr_seen.append(line)

    def signal(self, signum: int = signal.SIGTERM) -> int:
        """Send a signal and wait for the exit status."""
        self.process.send_signal(signum)
        return self.process.wait(timeout=TIMEOUT)

    def finish(self) -> tuple[int, list[str]]:
        """Wait for the exit: (status, stderr lines)."""
        code = self.process.wait(timeout=TIMEOUT)
        return code, self.drain_stderr()

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=TIMEOUT)
        for thread in self._threads:
            thread.join(timeout=TIMEOUT)


@pytest.fixture
def torsion() -> Iterator[Callable[..., Torsion]]:
    """Start ``torsion`` processes; all are killed at the end of the test."""
    started: list[Torsion] = []

    def start(*args: str, **kw: Any) -> Torsion:
        process = Torsion(list(args), **kw)
        started.append(process)
        return process

    try:
        yield start
    finally:
        for process in started:
            process.close()


def run(*args: str, **kw: Any) -> tuple[int, list[str], str]:
    """Run a command that should end by itself: (status, stderr lines, stdout)."""
    done = subprocess.run([sys.executable, "-m", "reactor", *args], capture_output=True,
                          text=True, timeout=TIMEOUT, stdin=subprocess.DEVNULL, **kw)
    return done.returncode, done.stderr.splitlines(), done.stdout


def tcp_read_all(port: int, send: bytes = b"", family: int = socket.AF_INET,
                 host: str = "127.0.0.1") -> bytes:
    with socket.socket(family, socket.SOCK_STREAM) as client:
        client.settimeout(TIMEOUT)
        client.connect((host, port))
        if send:
            client.sendall(send)
        chunks = []
        while chunk := client.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def udp_ask(port: int, data: bytes = b"") -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.settimeout(TIMEOUT)
        client.sendto(data, ("127.0.0.1", port))
        reply, sender = client.recvfrom(65536)
        assert sender == ("127.0.0.1", port)
        return reply


def echo_once(port: int, data: bytes = b"ping") -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as client:
        client.sendall(data)
        received = b""
        while len(received) < len(data):
            chunk = client.recv(65536)
            assert chunk, "closed before echoing"
            received += chunk
        return received


# -- serving, on every backend ------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_qotd_over_tcp_and_udp_then_sigterm(torsion: Any, backend: str) -> None:
    server = torsion("qotd", "--quote", "Simplicity is prerequisite for reliability.",
                     "--port", "0", "--interface", "127.0.0.1", "--reactor", backend)
    first = server.line()
    match = re.fullmatch(rf"torsion qotd: listening on tcp:127\.0\.0\.1:(\d+) "
                         rf"\(reactor: {backend}\)", first)
    assert match, first
    port = int(match.group(1))
    assert server.line() == f"torsion qotd: listening on udp:127.0.0.1:{port} " \
                            f"(reactor: {backend})"  # --port 0: one number for both
    quote = b"Simplicity is prerequisite for reliability.\r\n"
    assert tcp_read_all(port) == quote
    assert udp_ask(port) == quote
    assert udp_ask(port, b"anything") == quote
    assert server.signal(signal.SIGTERM) == 0
    assert not any("Traceback" in line for line in server.drain_stderr())


@pytest.mark.parametrize("backend", BACKENDS)
def test_echo_from_listen_strings_with_the_console_script(torsion: Any, backend: str) -> None:
    server = torsion("echo", "--listen", "tcp:0:interface=127.0.0.1", "--reactor", backend,
                     script=True)
    (kind, host, port), = server.listeners(1)
    assert (kind, host) == ("tcp", "127.0.0.1")
    assert echo_once(port, b"hello torsion") == b"hello torsion"
    assert server.signal(signal.SIGINT) == 0


def test_several_listeners_ipv6_and_unix(torsion: Any, tmp_path: Path) -> None:
    path = tmp_path / "echo.sock"
    server = torsion("echo", "--listen", "tcp6:0:interface=[::1]", "--listen",
                     f"unix:{path}", "--listen", "udp:0:interface=127.0.0.1",
                     "--listen", "udp:0:interface=127.0.0.1")
    (kind6, host6, port6), unix, (_, _, udp1), (_, _, udp2) = server.listeners(4)
    assert (kind6, host6) == ("tcp6", "::1")
    assert unix == ("unix", str(path), 0)
    with socket.create_connection(("::1", port6), timeout=TIMEOUT) as client:
        client.sendall(b"six")
        assert client.recv(10) == b"six"
    with socket.socket(socket.AF_UNIX) as client:
        client.settimeout(TIMEOUT)
        client.connect(str(path))
        client.sendall(b"local")
        assert client.recv(10) == b"local"
    # Each UDP listener has a protocol of its own.
    assert udp_ask(udp1, b"one") == b"one"
    assert udp_ask(udp2, b"two") == b"two"
    assert server.signal() == 0
    assert not path.exists()


def test_qotd_quotes_file(torsion: Any, tmp_path: Path) -> None:
    quotes = tmp_path / "quotes.txt"
    quotes.write_text("First quote.\n\nSecond quote,\non two lines.\n")
    server = torsion("qotd", "--quotes-file", str(quotes), "--listen",
                     "tcp:0:interface=127.0.0.1")
    (_, _, port), = server.listeners(1)
    seen = {tcp_read_all(port) for _ in range(40)}
    assert seen <= {b"First quote.\r\n", b"Second quote,\r\non two lines.\r\n"}
    assert len(seen) == 2  # chosen at random: 2**-39 odds of a false failure
    assert server.signal() == 0


def test_graceful_stop_lets_an_open_connection_finish(torsion: Any) -> None:
    server = torsion("echo", "--listen", "tcp:0:interface=127.0.0.1", "--grace-period", "30")
    (_, _, port), = server.listeners(1)
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as client:
        client.sendall(b"before")
        assert client.recv(10) == b"before"
        server.process.send_signal(signal.SIGTERM)
        server.wait_stderr(r"Received signal 15, shutting down \(grace period 30\.0s\)")
        server.wait_stderr(r"Stopping factory")  # the port has stopped listening
        # Listening has stopped, but the open connection is still served...
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT).close()
        client.sendall(b"during")
        assert client.recv(10) == b"during"
        assert server.process.poll() is None
    # ...and once it closes, the process exits at once, well before the grace period.
    assert server.process.wait(timeout=TIMEOUT) == 0


def test_grace_period_ends_with_the_connections_closed(torsion: Any) -> None:
    server = torsion("echo", "--listen", "tcp:0:interface=127.0.0.1", "--grace-period", "0.2")
    (_, _, port), = server.listeners(1)
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as client:
        assert echo_once(port) == b"ping"
        assert server.signal() == 0
        assert client.recv(10) == b""  # closed by the server when the grace period ended


def test_json_logs(torsion: Any) -> None:
    server = torsion("echo", "--listen", "tcp:0:interface=127.0.0.1", "--log-format", "json",
                     "--log-level", "debug")
    server.listeners(1)
    assert server.signal() == 0
    lines = server.drain_stderr()
    assert lines
    for line in lines:
        entry = json.loads(line)
        assert {"time", "level", "logger", "message", "pid"} <= set(entry)
    assert any(json.loads(line)["message"].startswith("Received signal 15") for line in lines)


def test_json_formatter_includes_the_traceback() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("torsion", logging.ERROR, __file__, 1, "it %s", ("failed",),
                                   sys.exc_info())
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "it failed" and entry["level"] == "ERROR"
    assert entry["logger"] == "torsion"
    assert "ValueError: boom" in entry["exc_info"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", entry["time"])


# -- run MODULE:FACTORY -----------------------------------------------------------------------


PID_SERVER = """\
    import os
    from protocols import Factory, Protocol

    class Pid(Protocol):
        def connectionMade(self):
            self.transport.write(b"%d\\n" % os.getpid())
            self.transport.loseConnection()

    factory = Factory.forProtocol(Pid)

    def make_factory():
        return Factory.forProtocol(Pid)

    def broken():
        raise ValueError("user code went wrong")

    def only_in_the_supervisor():
        # The supervisor is the test's child; a worker is the supervisor's.
        if os.getppid() != int(os.environ["TEST_PID"]):
            os._exit(3)
        return factory
"""


@pytest.fixture
def app(tmp_path: Path) -> Path:
    (tmp_path / "pidapp.py").write_text(textwrap.dedent(PID_SERVER))
    return tmp_path


@pytest.mark.parametrize("target", ["pidapp:factory", "pidapp:make_factory", "pidapp:Pid"])
def test_run_serves_a_user_factory(torsion: Any, app: Path, target: str) -> None:
    server = torsion("run", target, "--port", "0", "--interface", "127.0.0.1", cwd=app,
                     script=True)
    (kind, _, port), = server.listeners(1)  # no UDP for run
    assert kind == "tcp"
    assert tcp_read_all(port) == b"%d\n" % server.process.pid
    assert server.signal() == 0


def test_run_error_in_user_code_shows_its_traceback(app: Path) -> None:
    code, stderr, _ = run("run", "pidapp:broken", "--port", "0", cwd=app)
    assert code == 1
    assert stderr[-1] == ("torsion run: error: building the service failed: pidapp:broken() "
                          "raised ValueError: user code went wrong")
    assert any("Traceback" in line for line in stderr)


# -- user mistakes: one line, no traceback, status 2 or 1 --------------------------------------


@pytest.mark.parametrize(("args", "status", "message"), [
    (["echo", "--listen", "tpc:80"], 2,
     "torsion echo: error: bad endpoint 'tpc:80': unknown endpoint type 'tpc' in 'tpc:80'"),
    (["echo", "--listen", "tcp:abc"], 2,
     "torsion echo: error: bad endpoint 'tcp:abc': port must be a number, got 'abc'"),
    (["echo", "--listen", "tcp:0:intrface=127.0.0.1"], 2,
     "unknown parameter 'intrface' for tcp (did you mean 'interface'?)"),
    (["echo", "--port", "http"], 2,
     "torsion echo: error: argument -p/--port: must be a port number (0-65535), got 'http'"),
    (["echo", "--bogus"], 2, "unrecognized arguments: --bogus"),
    (["ehco"], 2, "torsion: error: argument SERVICE: invalid choice: 'ehco'"),
    ([], 2, "torsion: error: choose a service (bench, chargen, daytime, discard, echo, ftp, "
          "qotd, run"),
    (["run", "pidapp:factory"], 2,
     "torsion run: error: run has no standard port: give --port or --listen"),
    (["run", "nosuchmodule:factory", "--port", "0"], 2,
     "torsion run: error: can't import 'nosuchmodule': no module named 'nosuchmodule'"),
    (["run", "pidapp:nothing", "--port", "0"], 2,
     "torsion run: error: 'pidapp' has no attribute 'nothing'"),
    (["run", "pidapp", "--port", "0"], 2, "expected MODULE:FACTORY"),
    (["run", "pidapp:factory", "--listen", "udp:0"], 2, "run has no UDP protocol"),
    (["run", "pidapp:factory", "--listen", "tcp:0", "--interface", "127.0.0.1"], 2,
     "--interface goes with --port"),
    (["echo", "--listen", "unix:/tmp/x.sock", "--workers", "2"], 2,
     "--workers works with tcp, tcp6, ssl, udp endpoints, not 'unix:/tmp/x.sock'"),
    (["echo", "--workers", "0"], 2, "must be a number of processes (1 or more)"),
    (["qotd", "--quotes-file", "/nonexistent/quotes", "--port", "0"], 1,
     "torsion qotd: error: /nonexistent/quotes: No such file or directory"),
    (["qotd", "--quote", "x", "--quotes-file", "y"], 2, "not allowed with argument"),
    (["echo", "--listen", "ssl:0:certKey=/nonexistent.pem"], 2, "can't load the certificate"),
])
def test_user_mistakes_are_one_line(app: Path, args: list[str], status: int,
                                    message: str) -> None:
    code, stderr, stdout = run(*args, cwd=app)
    assert code == status
    assert message in stderr[-1]
    assert len(stderr) == (2 if not args else 1)  # the bare command shows the usage too
    assert stdout == ""


@pytest.mark.parametrize("workers", [[], ["--workers", "2"]])
def test_port_in_use_is_one_line(workers: list[str]) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    try:
        number = taken.getsockname()[1]
        code, stderr, stdout = run("echo", "--port", str(number), "--interface", "127.0.0.1",
                                   *workers)
    finally:
        taken.close()
    assert code == 1
    assert stderr == [f"torsion echo: error: can't listen on tcp:127.0.0.1:{number}: "
                      "address already in use"]
    assert stdout == ""


def test_help_explains_ports_examples_and_exit_status() -> None:
    code, _, stdout = run("--help")
    assert code == 0
    assert 'torsion qotd --quote "Simplicity is prerequisite for reliability." --port 8017' \
        in stdout
    assert "need root" in stdout
    assert "torsion SERVICE: listening on ENDPOINT (reactor: NAME)" in stdout
    for service in ("echo", "discard", "chargen", "qotd", "daytime", "time", "run"):
        assert re.search(rf"^\s+{service}\s+\S", stdout, re.M)
    code, _, stdout = run("qotd", "--help")
    assert code == 0
    assert "--quotes-file FILE" in stdout and "--workers N" in stdout
    assert "needs root" in stdout and "--port 8017" in stdout


def test_services_come_from_entry_points() -> None:
    services = load_services()
    assert {"echo", "discard", "chargen", "qotd", "daytime", "time", "run"} <= set(services)
    assert {name: services[name].default_port for name in ("echo", "discard", "chargen",
                                                           "qotd", "daytime", "time")} == {
        "echo": 7, "discard": 9, "chargen": 19, "qotd": 17, "daytime": 13, "time": 37}
    assert services["run"].default_port is None and not services["run"].udp
    build_parser(services)  # every service's options coexist with the common ones


class _Countdown:
    """A command service: it runs, prints and exits; it listens on nothing."""

    help = "count down"

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("start", type=int)

    def main(self, args: Any) -> int:
        if args.start < 0:
            raise ValueError("start must be 0 or more")
        print(" ".join(str(n) for n in range(args.start, -1, -1)))
        return 3


def test_a_command_service_runs_without_listening_options(monkeypatch: Any,
                                                          capsys: Any) -> None:
    monkeypatch.setattr("reactor.cli.load_services", lambda: {"countdown": _Countdown()})
    assert main(["countdown", "2"]) == 3  # its own exit status
    assert capsys.readouterr().out == "2 1 0\n"
    assert main(["countdown", "-1"]) == 2
    assert capsys.readouterr().err == "torsion countdown: error: start must be 0 or more\n"
    assert main(["countdown", "1", "--port", "5"]) == 2
    assert "unrecognized arguments: --port 5" in capsys.readouterr().err


def test_the_open_files_limit_is_raised_to_the_hard_limit() -> None:
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    lowered = min(hard, 256) if hard != resource.RLIM_INFINITY else 256
    code = ("import resource, sys; from reactor.cli import _raise_open_files_limit; "
            f"resource.setrlimit(resource.RLIMIT_NOFILE, ({lowered}, {hard})); "
            "_raise_open_files_limit(); print(*resource.getrlimit(resource.RLIMIT_NOFILE))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=60)
    new_soft, new_hard = map(int, done.stdout.split())
    assert new_hard == hard
    assert new_soft == (hard if hard != resource.RLIM_INFINITY else 1 << 20)


def test_permission_denied_suggests_a_high_port() -> None:
    from reactor.cli import _why
    from reactor.error import CannotListenError

    denied = CannotListenError("", 17, PermissionError(13, "Permission denied"))
    assert _why(denied, 17) == ("permission denied (ports below 1024 need root; "
                                "try --port 8017)")


def test_main_in_process_reports_usage_errors(capsys: Any) -> None:
    assert main(["echo", "--listen", "tcp:nope"]) == 2
    assert capsys.readouterr().err == (
        "torsion echo: error: bad endpoint 'tcp:nope': port must be a number, got 'nope'\n")


# -- the wire services over TCP and UDP --------------------------------------------------------


def test_the_other_wire_services(torsion: Any) -> None:
    servers = {name: torsion(name, "--port", "0", "--interface", "127.0.0.1")
               for name in ("daytime", "time", "chargen", "discard")}
    ports = {name: server.listeners(2)[0][2] for name, server in servers.items()}
    assert re.search(rb"\d\d:\d\d:\d\d", tcp_read_all(ports["daytime"]))
    assert len(tcp_read_all(ports["time"])) == 4
    assert len(udp_ask(ports["time"])) == 4
    with socket.create_connection(("127.0.0.1", ports["chargen"]), timeout=TIMEOUT) as client:
        assert len(client.recv(100)) > 0
    assert udp_ask(ports["chargen"])
    with socket.create_connection(("127.0.0.1", ports["discard"]), timeout=TIMEOUT) as client:
        client.sendall(b"into the void")
    for server in servers.values():
        assert server.signal() == 0


# -- TLS ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("workers", [[], ["--workers", "2"]])
def test_echo_over_tls(torsion: Any, tmp_path: Path, workers: list[str]) -> None:
    pytest.importorskip("reactor.tls")
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "server.pem"))
    server = torsion("echo", "--listen",
                     f"ssl:0:interface=127.0.0.1:certKey={tmp_path / 'server.pem'}", *workers)
    (kind, host, port), = server.listeners(1)
    assert (kind, host) == ("ssl", "127.0.0.1")
    context = ssl.create_default_context()
    ca.configure_trust(context)
    for _ in range(4):
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw, \
                context.wrap_socket(raw, server_hostname="127.0.0.1") as client:
            client.sendall(b"encrypted")
            assert client.recv(100) == b"encrypted"
    assert server.signal() == 0


# -- workers -------------------------------------------------------------------------------------


def pids_until(port: int, want: set[int] | int, tries: int = 400) -> set[int]:
    """Connect until the replies came from ``want`` (a set of pids, or a count of them)."""
    seen: set[int] = set()
    for _ in range(tries):
        seen.add(int(tcp_read_all(port)))
        if (len(seen) >= want) if isinstance(want, int) else want <= seen:
            return seen
    raise AssertionError(f"after {tries} connections only pids {seen} answered")


@pytest.mark.parametrize("backend", BACKENDS)
def test_two_workers_serve_and_a_killed_one_is_restarted(torsion: Any, app: Path,
                                                        backend: str) -> None:
    server = torsion("run", "pidapp:factory", "--port", "0", "--interface", "127.0.0.1",
                     "--workers", "2", "--reactor", backend, cwd=app)
    line = server.line()
    assert line.endswith(f"(reactor: {backend}, workers: 2)")
    port = int(line.split()[4].rsplit(":", 1)[1])
    started = {int(server.wait_stderr(r"worker \d started \(pid (\d+)\)").group(1))
               for _ in range(2)}
    assert pids_until(port, 2) == started  # two processes, and only the workers
    victim = min(started)
    os.kill(victim, signal.SIGKILL)
    server.wait_stderr(rf"worker \d \(pid {victim}\) was killed by signal 9 \(SIGKILL\); "
                       "restarting it")
    replacement = int(server.wait_stderr(r"worker \d started \(pid (\d+)\)").group(1))
    assert pids_until(port, {replacement, *started - {victim}}) >= {replacement}
    assert server.signal() == 0
    stderr = server.drain_stderr()
    assert sum("exited with status 0" in line for line in stderr) == 2
    for pid in (*started, replacement):
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_the_supervisor_gives_up_on_workers_that_cannot_start(torsion: Any,
                                                             app: Path) -> None:
    server = torsion("run", "pidapp:only_in_the_supervisor", "--port", "0", "--interface",
                     "127.0.0.1", "--workers", "2", cwd=app, env={"TEST_PID": str(os.getpid())})
    server.listeners(1)
    code, stderr = server.finish()
    assert code == 1
    assert "exited with status 3 at start-up 5 times in a row; giving up" in "\n".join(stderr)
    assert stderr[-1] == ("torsion run: error: a worker keeps exiting at start-up; stopped "
                          "(see the log)")


def test_workers_serve_udp_too(torsion: Any) -> None:
    server = torsion("qotd", "--quote", "Shared.", "--port", "0", "--interface", "127.0.0.1",
                     "--workers", "2")
    (_, _, tcp_port), (kind, _, udp_port) = server.listeners(2)
    assert kind == "udp" and udp_port == tcp_port
    for _ in range(5):
        assert udp_ask(udp_port) == b"Shared.\r\n"
        assert tcp_read_all(tcp_port) == b"Shared.\r\n"
    assert server.signal(signal.SIGINT) == 0


def test_workers_stop_when_the_supervisor_is_killed(torsion: Any, app: Path) -> None:
    server = torsion("run", "pidapp:factory", "--port", "0", "--interface", "127.0.0.1",
                     "--workers", "2", cwd=app)
    server.listeners(1)
    pids = [int(server.wait_stderr(r"worker \d started \(pid (\d+)\)").group(1))
            for _ in range(2)]
    for _ in pids:
        server.wait_stderr(r"worker \d serving tcp:127\.0\.0\.1:\d+")
    server.process.kill()
    server.process.wait(timeout=TIMEOUT)
    # stderr closes once every process holding it has exited: the workers too.
    stderr = server.drain_stderr()
    assert sum("the supervisor is gone; stopping" in line for line in stderr) == 2
