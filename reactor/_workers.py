"""``torsion --workers N``: the supervisor, and the workers' adoption of its sockets.

The supervisor binds every listener before starting a worker (so port 0
works and is reported once) and the workers inherit the sockets: on Linux
one socket per worker, all bound with ``SO_REUSEPORT`` so that the kernel
spreads connections evenly; elsewhere one socket shared by all. The
supervisor keeps its copies open, so what arrives while a worker restarts
waits in that socket's queue instead of being refused.

A worker is ``python -m reactor`` with the same arguments and, in the
environment, ``TORSION_WORKER``: JSON with its number, the inherited
descriptors (one per listener, in the order of the plan both derive from
the arguments) and the read end of a pipe whose other end only the
supervisor holds, so a worker notices a vanished supervisor (EOF) and stops.

A worker that exits is restarted, after a growing delay when it keeps
dying at start-up; after five such deaths in a row the supervisor gives up.
SIGTERM/SIGINT to the supervisor stop every worker gracefully (a second one
forces them); workers run in their own process group, so that a terminal's
^C reaches only the supervisor and each worker is told once.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

import reactor as reactor_module
from reactor import _aio_tcp, tcp
from reactor.cli import (
    WORKER_ENV,
    CommandError,
    _build,
    _in_use,
    _plan,
    _Planned,
    _reactor_name,
    _Retry,
    _why,
)
from reactor.endpoints import describe, serverFromString

__all__ = ["adoptDatagramPort", "adoptStreamPort", "run_worker", "supervise"]

log = logging.getLogger("torsion")

#: How long stopping workers may take, beyond their grace period, before the
#: supervisor kills them.
STOP_MARGIN = 10.0
#: A worker exiting sooner than this after its start failed to start...
QUICK_EXIT = 1.0
#: ...and after this many such exits in a row the supervisor gives up.
MAX_QUICK_EXITS = 5


# -- workers: adopting inherited sockets -------------------------------------------------------
#
# The reactor's ports bind their own sockets in startListening(); these
# subclasses replay the rest of it on a socket that is already bound. A hook
# in the ports (a method returning the bound socket) would make them a few
# lines each.


class _AdoptedSelectorPort(tcp.Port):
    def __init__(self, r: Any, sock: socket.socket, factory: Any, backlog: int) -> None:
        host, port = sock.getsockname()[:2]
        super().__init__(r, port, factory, backlog, host)
        self._family = sock.family
        self._adopted = sock

    def startListening(self) -> None:
        sock = self._adopted
        sock.setblocking(False)
        self.socket, self._fd, self._bound_port = sock, sock.fileno(), sock.getsockname()[1]
        self.connected = True
        self.factory.doStart()
        self.reactor._selectables.add(self)
        self.reactor._set_interest(self, self._fd, tcp._READ)


class _AdoptedAsyncioPort(_aio_tcp.Port):
    def __init__(self, r: Any, sock: socket.socket, factory: Any, backlog: int) -> None:
        host, port = sock.getsockname()[:2]
        super().__init__(r, port, factory, backlog, host)
        self._family = sock.family
        self._adopted = sock

    def startListening(self) -> None:
        sock = self._adopted
        sock.setblocking(False)
        self.socket, self._fd = sock, sock.fileno()
        self._host = tcp.address_of(sock.getsockname(), sock.family)
        self.connected = True
        self.factory.doStart()
        self.reactor._live.add(self)
        try:
            self._server = self.reactor._serve(self._build, sock, self.backlog)
        except BaseException:
            self.socket, self.connected = None, False
            self.reactor._live.discard(self)
            self.factory.doStop()
            raise


def adoptStreamPort(r: Any, sock: socket.socket, factory: Any, backlog: int = 50) -> Any:
    """Serve ``factory`` on a listening TCP socket (Twisted's ``adoptStreamPort``).

    The port owns the socket from then on: ``stopListening`` closes it.
    """
    from reactor.selector import SelectorReactor

    cls = _AdoptedSelectorPort if isinstance(r, SelectorReactor) else _AdoptedAsyncioPort
    port = cls(r, sock, factory, backlog)
    port.startListening()
    return port


def adoptDatagramPort(r: Any, sock: socket.socket, protocol: Any,
                      maxPacketSize: int = 8192) -> Any:
    """Serve ``protocol`` on a bound UDP socket (Twisted's ``adoptDatagramPort``).

    The port owns the socket from then on: ``stopListening`` closes it.
    """
    from reactor import udp

    base = udp._port_class(r, multicast=False)

    class AdoptedUDPPort(base):  # type: ignore[misc, valid-type]
        def startListening(self) -> None:
            # udp._UDPPort.startListening after its bind_socket().
            sock.setblocking(False)
            self.socket = sock
            self._host = udp.udp_address(sock.getsockname(), sock.family)
            self.connected = True
            self._track()
            try:
                self.protocol.makeConnection(self)
            except BaseException:
                self.connected, self._finished = False, True
                self._untrack()
                sock.close()
                raise
            if self.connected and not self._paused:
                self._resume_reading()

    host, number = sock.getsockname()[:2]
    port = AdoptedUDPPort(r, number, protocol, host, maxPacketSize)
    port.addressFamily = sock.family
    port.startListening()
    return port


def _watch_supervisor(r: Any, fd: int) -> None:
    """Stop the reactor once the supervisor is gone (its end of the pipe closes)."""

    def stop() -> None:
        if r.running and not r._stopping:
            log.warning("the supervisor is gone; stopping")
            r.stop()

    def wait() -> None:
        try:
            while os.read(fd, 64):
                pass
        except OSError:
            pass
        r.callFromThread(stop)

    threading.Thread(target=wait, name="torsion-supervisor-watch", daemon=True).start()


def run_worker(prog: str, service: Any, args: argparse.Namespace, spec: dict[str, Any]) -> int:
    """Serve on the sockets the supervisor handed down (``spec["fds"]``, one per listener)."""
    plan = _plan(prog, service, args)  # the supervisor's plan: same arguments, same order
    r = reactor_module.create(_reactor_name(prog, args.reactor))
    with reactor_module.installed(r):
        factory, udp = _build(prog, service, args)
        ports: list[Any] = []
        udp_used = False
        for item, fd in zip(plan, spec["fds"], strict=True):
            sock = socket.socket(fileno=fd)
            endpoint = serverFromString(None, item.text_for(sock.getsockname()[1]))
            if item.kind == "udp":
                if udp_used:  # a DatagramProtocol serves one port
                    udp = _build(prog, service, args)[1]
                udp_used = True
                ports.append(adoptDatagramPort(r, sock, udp, endpoint._maxPacketSize))
            elif item.kind == "ssl":
                from reactor.tls import TLSServerFactory

                ports.append(adoptStreamPort(r, sock, TLSServerFactory(factory,
                                                                       endpoint._context),
                                             endpoint._backlog))
            else:
                ports.append(adoptStreamPort(r, sock, factory, endpoint._backlog))
        if args.grace_period is not None:
            r.gracePeriod = args.grace_period
        _watch_supervisor(r, spec["supervisor"])
        log.info("worker %d serving %s", spec["index"], ", ".join(map(describe, ports)))
        r.run(installSignalHandlers=True)
    r.close()
    return 0


# -- workers: the supervisor -------------------------------------------------------------------


def _bind(kind: str, interface: str, port: int, backlog: int, reuse_port: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in interface else socket.AF_INET
    if kind == "udp":
        sock = socket.socket(family, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    else:  # IPPROTO_TCP, as _aio_tcp.Port does: asyncio turns Nagle off only then.
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        if kind != "udp":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((interface, port))
        if kind != "udp":
            sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    return sock


def _describe_socket(kind: str, sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    if sock.family == socket.AF_INET6:
        return f"{'tcp6' if kind == 'tcp' else kind}:[{host}]:{port}"
    return f"{kind}:{host}:{port}"


def _open_shared(prog: str, plan: list[_Planned], workers: int) -> list[list[socket.socket]]:
    """Bind each planned listener: one socket per worker (Linux), or one for all."""
    # Linux spreads connections over SO_REUSEPORT sockets; elsewhere the last
    # socket bound would get them all, so the workers share one.
    copies = workers if sys.platform.startswith("linux") else 1
    for attempt in range(5):
        shared: list[list[socket.socket]] = []
        try:
            for item in plan:
                followed = shared[item.follows][0].getsockname()[1] \
                    if item.follows is not None else 0
                endpoint = serverFromString(None, item.text_for(followed))
                sockets: list[socket.socket] = []
                shared.append(sockets)
                port = endpoint._port
                try:
                    for _ in range(copies):
                        sockets.append(_bind(item.kind, endpoint._interface, port,
                                             getattr(endpoint, "_backlog", 50), copies > 1))
                        port = sockets[0].getsockname()[1]  # the others join its port
                except OSError as e:
                    if (item.follows is not None or endpoint._port == 0) and _in_use(e) \
                            and attempt < 4:
                        raise _Retry() from None
                    raise CommandError(prog, f"can't listen on {endpoint.describe()}: "
                                             f"{_why(e, endpoint._port)}") from None
            return shared
        except _Retry:
            _close_all(shared)
        except BaseException:
            _close_all(shared)
            raise
    raise AssertionError("unreachable")


def _close_all(shared: list[list[socket.socket]]) -> None:
    for sockets in shared:
        for sock in sockets:
            sock.close()


def _exit_text(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by signal {-code} ({signal.Signals(-code).name})"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with status {code}"


@dataclass
class _Worker:
    index: int
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    quick_exits: int = 0
    restart_at: float | None = None


class _Supervisor:
    """Starts the workers, restarts those that exit, and stops them all on a signal."""

    def __init__(self, argv: list[str], shared: list[list[socket.socket]], count: int,
                 stop_timeout: float) -> None:
        self.argv = argv
        self.stop_timeout = stop_timeout
        self.shared = shared
        self.workers = [_Worker(i + 1) for i in range(count)]
        self.stopping = False
        self.deadline = 0.0
        self.failed = False
        self._signals: list[int] = []
        self._life_r = -1

    def run(self, lines: list[str]) -> int:
        """Print ``lines``, supervise until stopped; 1 if the workers could not start."""
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        # The workers hold the read end: when we are gone, even by SIGKILL, it reads EOF.
        self._life_r, life_w = os.pipe()
        old_wakeup = signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        handlers = {s: signal.signal(s, self._on_signal)
                    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD)}
        try:
            # Once our handlers are in place: a SIGTERM after the lines is graceful.
            print("\n".join(lines), flush=True)
            for worker in self.workers:
                self._spawn(worker)
            while not self.stopping or any(w.process for w in self.workers):
                select.select([wake_r], [], [], self._timeout())
                try:
                    while os.read(wake_r, 512):
                        pass
                except BlockingIOError:
                    pass
                while self._signals:
                    if self._signals.pop(0) in (signal.SIGTERM, signal.SIGINT):
                        self._stop()
                self._reap()
                if self.stopping and time.monotonic() >= self.deadline:
                    self._kill_all()
                elif not self.stopping:
                    self._restart_due()
        finally:
            signal.set_wakeup_fd(old_wakeup)
            for signum, handler in handlers.items():
                signal.signal(signum, handler)
            self._kill_all()
            for fd in (wake_r, wake_w, self._life_r, life_w):
                os.close(fd)
            _close_all(self.shared)
        return 1 if self.failed else 0

    def _on_signal(self, signum: int, frame: Any) -> None:
        self._signals.append(signum)  # acted on by the loop, which the wake-up fd wakes

    def _timeout(self) -> float:
        # Also poll once a second, in case a SIGCHLD was merged with another.
        now = time.monotonic()
        due = [1.0, *(w.restart_at - now for w in self.workers if w.restart_at is not None)]
        if self.stopping:
            due.append(self.deadline - now)
        return max(0.0, min(due))

    def _spawn(self, worker: _Worker) -> None:
        worker.restart_at = None
        fds = [sockets[(worker.index - 1) % len(sockets)].fileno() for sockets in self.shared]
        spec = {"index": worker.index, "fds": fds, "supervisor": self._life_r}
        worker.started = time.monotonic()
        try:
            # Its own process group, so that a terminal's ^C reaches only us
            # and each worker is told to stop exactly once.
            worker.process = subprocess.Popen(
                [sys.executable, "-m", "reactor", *self.argv], stdin=subprocess.DEVNULL,
                env={**os.environ, WORKER_ENV: json.dumps(spec)},
                pass_fds=[*fds, self._life_r], process_group=0)
        except OSError as e:
            log.error("can't start worker %d: %s", worker.index, e)
            self._exited(worker, 127, None)
            return
        log.info("worker %d started (pid %d)", worker.index, worker.process.pid)

    def _reap(self) -> None:
        for worker in self.workers:
            process = worker.process
            if process is None or process.poll() is None:
                continue
            worker.process = None
            code = process.returncode
            if not self.stopping:
                self._exited(worker, code, process.pid)
                continue
            clean = code in (0, -signal.SIGTERM, -signal.SIGINT)
            log.log(logging.INFO if clean else logging.WARNING, "worker %d (pid %d) %s",
                    worker.index, process.pid, _exit_text(code))

    def _exited(self, worker: _Worker, code: int, pid: int | None) -> None:
        """An unexpected exit: restart the worker, later if it keeps dying at start-up."""
        quick = time.monotonic() - worker.started < QUICK_EXIT
        worker.quick_exits = worker.quick_exits + 1 if quick else 0
        if worker.quick_exits >= MAX_QUICK_EXITS:
            log.error("worker %d %s at start-up %d times in a row; giving up", worker.index,
                      _exit_text(code), worker.quick_exits)
            self.failed = True
            self._stop()
            return
        delay = min(5.0, 0.1 * 2 ** worker.quick_exits) if worker.quick_exits else 0.0
        log.warning("worker %d (pid %s) %s; restarting it%s", worker.index, pid,
                    _exit_text(code), f" in {delay:.1f}s" if delay else "")
        worker.restart_at = time.monotonic() + delay

    def _restart_due(self) -> None:
        now = time.monotonic()
        for worker in self.workers:
            if worker.process is None and worker.restart_at is not None \
                    and worker.restart_at <= now:
                self._spawn(worker)

    def _stop(self) -> None:
        if not self.stopping:
            log.info("stopping the workers")
            self.stopping = True
            self.deadline = time.monotonic() + self.stop_timeout
        else:  # a second signal: the workers' reactors take a second SIGTERM as "now"
            log.warning("stopping the workers at once")
        for worker in self.workers:
            worker.restart_at = None
            if worker.process is not None and worker.process.poll() is None:
                worker.process.send_signal(signal.SIGTERM)

    def _kill_all(self) -> None:
        for worker in self.workers:
            process = worker.process
            if process is not None and process.poll() is None:
                log.warning("worker %d (pid %d) did not stop; killing it", worker.index,
                            process.pid)
                process.kill()
                process.wait()
                worker.process = None


def supervise(prog: str, argv: list[str], plan: list[_Planned], name: str, count: int,
              grace_period: float | None) -> int:
    """Bind the listeners, print their lines, run ``count`` workers until stopped."""
    shared = _open_shared(prog, plan, count)
    lines = [f"{prog}: listening on {_describe_socket(item.kind, sockets[0])} "
             f"(reactor: {name}, workers: {count})" for item, sockets in zip(plan, shared,
                                                                             strict=True)]
    stop_timeout = (5.0 if grace_period is None else grace_period) + STOP_MARGIN
    if _Supervisor(argv, shared, count, stop_timeout).run(lines):
        raise CommandError(prog, "a worker keeps exiting at start-up; stopped (see the log)")
    return 0
