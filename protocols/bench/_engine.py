"""The load loop of ``torsion bench``: one thread, non-blocking sockets, one selector.

This is the hot path, written for the fewest Python operations per request
rather than on the reactor: each connection is a small state machine whose
bound method is the selector key's data, requests are bytes computed once,
and replies are framed by hand (HTTP: the status line, Content-Length,
chunked, or read-to-close; echo: a byte count; line: a newline). A
connection sends its next request as soon as the reply to the last one is
complete (closed-loop, like wrk), so with C connections at most C requests
are in flight.

Errors (see :data:`ERROR_KINDS`) never stop a run: the connection is closed
and opened again (after :data:`RETRY_DELAY` when the connect itself failed,
so a refused port is not hammered in a tight loop).
"""

from __future__ import annotations

import base64
import errno
import os
import re
import socket
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from time import perf_counter
from typing import Any

from . import _poller
from .histogram import Histogram

__all__ = ["ERROR_KINDS", "RETRY_DELAY", "Engine", "Outcome", "Workload"]

#: Error counters, in report order. ``status`` counts HTTP replies outside 2xx and 3xx.
ERROR_KINDS = ("connect", "read", "write", "timeout", "protocol", "mismatch", "status")
#: Seconds a connection waits before connecting again after a failed connect.
RETRY_DELAY = 0.02
#: How often the timeouts are checked.
_CHECK_EVERY = 0.1
#: A reply head (or line) longer than this is a protocol error, not a reason to buffer on.
_MAX_HEAD = 65536
_RECV = 262144
_READ = _poller.READ
_WRITE = _poller.WRITE
_READABLE = _poller.READABLE
_WRITABLE = _poller.WRITABLE
_INPROGRESS = (0, errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EALREADY)


@dataclass(frozen=True)
class Workload:
    """What one engine does: where to connect, what to send, when to stop.

    Attributes:
        mode: ``"http"``, ``"echo"`` or ``"line"``.
        family: the socket address family (``socket.AF_INET``...).
        address: the resolved socket address to connect to.
        connections: connections this engine keeps busy.
        duration: seconds to run, or None for no time limit.
        requests: requests to make in all (replies and failures alike), or None.
        timeout: seconds a connect or a reply may take before it counts as failed.
        request: the bytes sent per request (HTTP: the whole request; echo: the
            message; line: the line with its CRLF).
        no_body: HTTP: the replies have no body (a HEAD request).
        expect: line: a regular expression (bytes) every reply line must match.
    """

    mode: str
    family: int
    address: tuple[Any, ...]
    connections: int
    duration: float | None
    requests: int | None
    timeout: float
    request: bytes
    no_body: bool = False
    expect: bytes | None = None

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict (bytes as base64) for a worker process."""
        data = asdict(self)
        data["address"] = list(self.address)
        data["request"] = base64.b64encode(self.request).decode("ascii")
        if self.expect is not None:
            data["expect"] = base64.b64encode(self.expect).decode("ascii")
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Workload:
        """The workload :meth:`to_json` described."""
        data = dict(data)
        data["address"] = tuple(data["address"])
        data["request"] = base64.b64decode(data["request"])
        if data.get("expect") is not None:
            data["expect"] = base64.b64decode(data["expect"])
        return cls(**data)


@dataclass
class Outcome:
    """What one engine measured."""

    requests: int = 0
    bytes_received: int = 0
    bytes_sent: int = 0
    elapsed: float = 0.0
    interrupted: bool = False
    errors: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ERROR_KINDS, 0))
    statuses: dict[int, int] = field(default_factory=dict)
    latency: Histogram = field(default_factory=Histogram)

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict, read back by :meth:`from_json`."""
        return {"requests": self.requests, "bytes_received": self.bytes_received,
                "bytes_sent": self.bytes_sent, "elapsed": self.elapsed,
                "interrupted": self.interrupted, "errors": self.errors,
                "statuses": {str(k): v for k, v in self.statuses.items()},
                "latency": self.latency.to_dict()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Outcome:
        """The outcome :meth:`to_json` described."""
        return cls(requests=data["requests"], bytes_received=data["bytes_received"],
                   bytes_sent=data["bytes_sent"], elapsed=data["elapsed"],
                   interrupted=data["interrupted"], errors=dict(data["errors"]),
                   statuses={int(k): v for k, v in data["statuses"].items()},
                   latency=Histogram.from_dict(data["latency"]))

    def merge(self, other: Outcome) -> None:
        """Add another engine's figures (elapsed: the longer of the two)."""
        self.requests += other.requests
        self.bytes_received += other.bytes_received
        self.bytes_sent += other.bytes_sent
        self.elapsed = max(self.elapsed, other.elapsed)
        self.interrupted = self.interrupted or other.interrupted
        for kind, n in other.errors.items():
            self.errors[kind] = self.errors.get(kind, 0) + n
        for status, n in other.statuses.items():
            self.statuses[status] = self.statuses.get(status, 0) + n
        self.latency.merge(other.latency)


# Connection states.
_CLOSED, _CONNECTING, _IDLE, _BUSY = range(4)


class _Connection:
    """One client connection: connect, send a request, frame the reply, repeat."""

    __slots__ = ("engine", "pending", "request", "sent_at", "sock", "state")

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.request = engine.workload.request
        self.sock: socket.socket | None = None
        self.state = _CLOSED
        self.sent_at = 0.0
        self.pending: memoryview | None = None

    # -- connecting ------------------------------------------------------------------

    def connect(self) -> None:
        """Open the socket and start a non-blocking connect."""
        engine = self.engine
        if engine.stopping:
            return
        w = engine.workload
        sock = socket.socket(w.family, socket.SOCK_STREAM)
        sock.setblocking(False)
        if w.family != getattr(socket, "AF_UNIX", None):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sock
        self.state = _CONNECTING
        self.sent_at = perf_counter()
        code = sock.connect_ex(w.address)
        if code not in _INPROGRESS:
            self.fail("connect")
            return
        engine.poller.register(sock.fileno(), _WRITE, self.connected)

    def connected(self, mask: int) -> None:
        """The connect finished: fail, or switch to reading and send the first request."""
        sock = self.sock
        if sock is None or not mask & _WRITABLE:
            return  # a stale event for an earlier socket with the same number
        if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
            self.fail("connect")
            return
        self.engine.poller.modify(sock.fileno(), _READ, self.readable)
        self.reset()
        self.state = _IDLE
        self.send()

    # -- requests --------------------------------------------------------------------

    def send(self) -> None:
        """Send the next request, if the run still wants one."""
        engine = self.engine
        if engine.stopping or not engine.take():
            return
        sock = self.sock
        assert sock is not None
        request = self.request
        self.sent_at = perf_counter()
        try:
            sent = sock.send(request)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            engine.in_flight += 1
            self.state = _BUSY
            self.fail("write")
            return
        engine.in_flight += 1
        engine.outcome.bytes_sent += sent
        self.state = _BUSY
        if sent < len(request):
            self.pending = memoryview(request)[sent:]
            engine.poller.modify(sock.fileno(), _READ | _WRITE, self.writable)

    def writable(self, mask: int) -> None:
        """Send more of a request that did not fit the socket buffer; read if readable."""
        pending = self.pending
        sock = self.sock
        if mask & _WRITABLE and pending is not None and sock is not None:
            try:
                sent = sock.send(pending)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                self.fail("write")
                return
            self.engine.outcome.bytes_sent += sent
            if sent == len(pending):
                self.pending = None
                self.engine.poller.modify(sock.fileno(), _READ, self.readable)
            else:
                self.pending = pending[sent:]
        if mask & _READABLE:
            self.readable(mask)

    def readable(self, mask: int) -> None:
        """Read what arrived and give it to the framing (:meth:`received`)."""
        sock = self.sock
        if sock is None:
            return
        try:
            data = sock.recv(_RECV)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.fail("read")
            return
        if not data:
            self.closed_by_peer()
            return
        self.engine.outcome.bytes_received += len(data)
        if self.state == _BUSY:
            self.received(data)
        else:
            # Bytes nobody asked for: the framing is lost.
            self.fail("protocol")

    def done(self, good: bool = True) -> None:
        """The reply is complete: record it, then send the next request."""
        now = perf_counter()
        engine = self.engine
        outcome = engine.outcome
        outcome.latency.record(int((now - self.sent_at) * 1e6))
        outcome.requests += 1
        engine.in_flight -= 1
        self.state = _IDLE
        if not good:
            outcome.errors["mismatch"] += 1
        if self.pending is not None:
            # Replied before the whole request went out: nothing sane follows.
            self.fail("protocol")
            return
        self.send()

    def closed_by_peer(self) -> None:
        """The server closed the connection: an error if a reply was awaited."""
        if self.state == _BUSY:
            self.fail("read")
        else:
            self.close()
            self.engine.reconnect(self, 0.0)

    # -- failures and closing ------------------------------------------------------------

    def fail(self, kind: str) -> None:
        """Count an error of ``kind``, close, and connect again."""
        engine = self.engine
        if self.state == _BUSY:
            engine.in_flight -= 1
            engine.outcome.errors[kind] += 1
        elif self.state != _CONNECTING or engine.take():
            # A failed connect is a failed request and uses up one of -n; once
            # they are all used up the run is over, and the failure is not counted.
            engine.outcome.errors[kind] += 1
        self.close()
        engine.reconnect(self, RETRY_DELAY if kind == "connect" else 0.0)

    def close(self) -> None:
        """Close the socket (if open) and forget any partial reply."""
        sock = self.sock
        if sock is not None:
            self.sock = None
            self.engine.poller.unregister(sock.fileno())
            sock.close()
        self.state = _CLOSED
        self.pending = None

    def reset(self) -> None:
        """Forget the framing state of a reply (a fresh connection)."""

    def received(self, data: bytes) -> None:
        """Frame ``data``, part of the reply awaited; call :meth:`done` when complete."""
        raise NotImplementedError


class _EchoConnection(_Connection):
    """Echo: the reply is the message, byte for byte."""

    __slots__ = ("got",)

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self.got = b""

    def reset(self) -> None:
        self.got = b""

    def received(self, data: bytes) -> None:
        request = self.request
        if self.got:
            data = self.got + data
        if len(data) < len(request):
            self.got = data
            return
        self.got = b""
        if len(data) > len(request):
            self.fail("protocol")
            return
        self.done(data == request)


class _LineConnection(_Connection):
    """A line protocol: the reply is one line ending in LF (CRLF or LF)."""

    __slots__ = ("expect", "got")

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self.got = b""
        pattern = engine.workload.expect
        self.expect = re.compile(pattern) if pattern is not None else None

    def reset(self) -> None:
        self.got = b""

    def received(self, data: bytes) -> None:
        if self.got:
            data = self.got + data
        end = data.find(b"\n")
        if end < 0:
            if len(data) > _MAX_HEAD:
                self.fail("protocol")
            else:
                self.got = data
            return
        self.got = b""
        if end != len(data) - 1:
            self.fail("protocol")  # more than one line: the replies are not one line each
            return
        expect = self.expect
        self.done(expect is None or expect.search(data.rstrip(b"\r\n")) is not None)


# HTTP reply phases.
_HEAD, _LENGTH, _CHUNKED, _TRAILER, _TO_CLOSE = range(5)


class _HTTPConnection(_Connection):
    """HTTP/1.1 keep-alive: frames replies by Content-Length, chunked, or close."""

    __slots__ = ("body_left", "got", "keep_alive", "no_body", "phase", "status")

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self.no_body = engine.workload.no_body
        self.reset()

    def reset(self) -> None:
        self.got = b""
        self.phase = _HEAD
        self.body_left = 0
        self.status = 0
        self.keep_alive = True

    def received(self, data: bytes) -> None:
        if self.got:
            data = self.got + data
            self.got = b""
        phase = self.phase
        if phase == _HEAD:
            self.head(data)
        elif phase == _LENGTH:
            self.length_body(data, 0)
        elif phase in (_CHUNKED, _TRAILER):
            self.chunked_body(data, 0)
        # _TO_CLOSE: the body runs to the end of the connection; just count bytes.

    def head(self, data: bytes) -> None:
        """Parse the status line and the framing headers; go on with the body."""
        while True:
            end = data.find(b"\r\n\r\n")
            if end < 0:
                if len(data) > _MAX_HEAD:
                    self.fail("protocol")
                else:
                    self.got = data
                return
            head = data[:end].lower()
            if not head.startswith(b"http/1.") or head[12:13] not in (b" ", b"\r", b""):
                self.fail("protocol")
                return
            try:
                status = int(head[9:12])
            except ValueError:
                self.fail("protocol")
                return
            if 100 <= status < 200 and status != 101:
                data = data[end + 4:]  # an interim reply: the real one follows
                continue
            break
        self.status = status
        if head[7:8] == b"0":  # HTTP/1.0: open only if it says keep-alive
            self.keep_alive = b"\r\nconnection: keep-alive" in head
        else:
            self.keep_alive = b"\r\nconnection: close" not in head
        start = end + 4
        if self.no_body or status == 204 or status == 304:
            self.finish(data, start)
            return
        at = head.find(b"\r\ncontent-length:")
        if at >= 0:
            line_end = head.find(b"\r\n", at + 17)
            try:
                length = int(head[at + 17:line_end if line_end >= 0 else len(head)])
            except ValueError:
                self.fail("protocol")
                return
            self.body_left = length
            self.phase = _LENGTH
            self.length_body(data, start)
            return
        at = head.find(b"\r\ntransfer-encoding:")
        line_end = head.find(b"\r\n", at + 2) if at >= 0 else -1
        if at >= 0 and b"chunked" in head[at:line_end if line_end >= 0 else len(head)]:
            self.phase = _CHUNKED
            self.body_left = 0
            self.chunked_body(data, start)
            return
        self.phase = _TO_CLOSE
        self.keep_alive = False

    def length_body(self, data: bytes, start: int) -> None:
        """Count Content-Length body bytes (they are not kept)."""
        have = len(data) - start
        if have < self.body_left:
            self.body_left -= have
            return
        self.finish(data, start + self.body_left)

    def chunked_body(self, data: bytes, pos: int) -> None:
        """Skip over chunks; ``body_left`` is what is left of the current chunk + CRLF."""
        size_end = len(data)
        while True:
            if self.phase == _TRAILER:
                # After the last chunk: optional trailer lines, then an empty line.
                if data.startswith(b"\r\n", pos):
                    self.finish(data, pos + 2)
                    return
                end = data.find(b"\r\n\r\n", pos)
                if end < 0:
                    self.keep(data, pos)
                    return
                self.finish(data, end + 4)
                return
            left = self.body_left
            if left:
                if size_end - pos < left:
                    self.body_left = left - (size_end - pos)
                    return
                pos += left
                self.body_left = 0
            eol = data.find(b"\r\n", pos)
            if eol < 0:
                self.keep(data, pos)
                return
            try:
                size = int(data[pos:eol].split(b";", 1)[0], 16)
            except ValueError:
                self.fail("protocol")
                return
            pos = eol + 2
            if size == 0:
                self.phase = _TRAILER
            else:
                self.body_left = size + 2

    def keep(self, data: bytes, pos: int) -> None:
        """Keep an incomplete framing line for the next read (within reason)."""
        if len(data) - pos > _MAX_HEAD:
            self.fail("protocol")
        else:
            self.got = data[pos:]

    def finish(self, data: bytes, end: int) -> None:
        """The reply ended at ``data[end]``: count it; anything after it is an error."""
        if end < len(data):
            self.fail("protocol")
            return
        status = self.status
        outcome = self.engine.outcome
        outcome.statuses[status] = outcome.statuses.get(status, 0) + 1
        if not 200 <= status < 400:  # as wrk: a redirect or a 304 is a fine reply
            outcome.errors["status"] += 1
        keep_alive = self.keep_alive
        self.reset()
        if keep_alive:
            self.done()
            return
        # The server closes after this reply: count it, then use a new connection.
        self.request_done_then_reconnect()

    def request_done_then_reconnect(self) -> None:
        """Count the reply, then connect again (Connection: close) without an error."""
        now = perf_counter()
        engine = self.engine
        engine.outcome.latency.record(int((now - self.sent_at) * 1e6))
        engine.outcome.requests += 1
        engine.in_flight -= 1
        self.close()
        engine.reconnect(self, 0.0)

    def closed_by_peer(self) -> None:
        if self.state == _BUSY and self.phase == _TO_CLOSE:
            self.finish(b"", 0)
            return
        super().closed_by_peer()


_KINDS: dict[str, type[_Connection]] = {
    "http": _HTTPConnection, "echo": _EchoConnection, "line": _LineConnection}


class Engine:
    """Runs one :class:`Workload` in this thread and measures it.

    Args:
        workload: what to do.
        progress: called about every ``progress_every`` seconds with the outcome
            so far and the seconds elapsed.
        progress_every: seconds between ``progress`` calls.
        control: a file descriptor to watch: any input or EOF on it stops the run
            (a worker process's stdin).
    """

    def __init__(self, workload: Workload,
                 progress: Callable[[Outcome, float], None] | None = None,
                 progress_every: float = 1.0, control: int | None = None) -> None:
        if workload.mode not in _KINDS:
            raise ValueError(f"unknown mode {workload.mode!r}")
        self.workload = workload
        self.outcome = Outcome()
        self.poller = _poller.Poller()
        self.requests_left = workload.requests
        self.in_flight = 0
        self.stopping = False
        self._progress = progress
        self._progress_every = progress_every
        self._control = control
        self._retry: deque[tuple[float, _Connection]] = deque()
        kind = _KINDS[workload.mode]
        self._connections = [kind(self) for _ in range(workload.connections)]

    def take(self) -> bool:
        """Use up one request of the ``requests`` budget; False when none is left."""
        left = self.requests_left
        if left is None:
            return True
        if left <= 0:
            return False
        self.requests_left = left - 1
        return True

    def stop(self) -> None:
        """Make the run end at its next turn (safe from a signal handler)."""
        self.stopping = True

    def reconnect(self, connection: _Connection, delay: float) -> None:
        """Open ``connection`` again, now or after ``delay`` seconds."""
        if self.stopping or self.requests_left == 0:
            return
        if delay:
            self._retry.append((perf_counter() + delay, connection))
        else:
            connection.connect()

    def run(self, catch_interrupt: bool = False) -> Outcome:
        """Run until the duration passes, the requests are done, or :meth:`stop`.

        Args:
            catch_interrupt: on KeyboardInterrupt, end the run and return what was
                measured (``outcome.interrupted``) instead of raising.
        """
        w = self.workload
        outcome = self.outcome
        start = perf_counter()
        deadline = start + w.duration if w.duration is not None else float("inf")
        next_check = start + _CHECK_EVERY
        next_progress = start + self._progress_every
        dispatch = self.poller.dispatch
        retry = self._retry
        if self._control is not None:
            self.poller.register(self._control, _READ, self._control_input)
        try:
            for connection in self._connections:
                connection.connect()
            while not self.stopping:
                now = perf_counter()
                if now >= deadline or (self.requests_left == 0 and self.in_flight == 0):
                    break
                while retry and retry[0][0] <= now:
                    retry.popleft()[1].connect()
                if now >= next_check:
                    self._check_timeouts(now)
                    next_check = now + _CHECK_EVERY
                    if now >= next_progress and self._progress is not None:
                        outcome.elapsed = now - start
                        self._progress(outcome, now - start)
                        next_progress += self._progress_every
                wake = min(deadline, next_check)
                if retry:
                    wake = min(wake, retry[0][0])
                dispatch(max(wake - now, 0.0))
        except KeyboardInterrupt:
            if not catch_interrupt:
                raise
            outcome.interrupted = True
        finally:
            outcome.elapsed = perf_counter() - start
            self.close()
        return outcome

    def _check_timeouts(self, now: float) -> None:
        limit = now - self.workload.timeout
        for connection in self._connections:
            state = connection.state
            if state in (_BUSY, _CONNECTING) and connection.sent_at < limit:
                connection.fail("timeout" if state == _BUSY else "connect")

    def _control_input(self, mask: int) -> None:
        assert self._control is not None
        try:
            os.read(self._control, 4096)
        except OSError:
            pass
        # Whatever was written (the parent writes "stop"), or EOF: time to stop.
        self.stopping = True

    def close(self) -> None:
        """Close every connection and the poller."""
        self._retry.clear()
        for connection in self._connections:
            connection.close()
        if self._control is not None:
            self.poller.unregister(self._control)
        self.poller.close()
