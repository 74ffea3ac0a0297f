"""Running a load: in this process, or split over worker processes; the Python API.

One Python process tops out well below what a fast server answers (each
request costs the client a few microseconds of interpreter time), so the
connections are split over ``processes`` worker processes, each running its
own :class:`~protocols.bench._engine.Engine`; their figures are merged. With
one process the engine runs in the calling thread.

Workers are ``python -m protocols.bench._worker`` children: the parent
writes the workload (JSON) on their stdin, waits until every one is ready,
says ``go``, reads progress lines and finally each one's figures from their
stdout. ``stop`` (or the parent's death, seen as EOF) ends a worker early.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ._engine import Engine, Outcome, Workload
from .result import BenchResult
from .targets import Target, http_request, parse_address, parse_url, resolve

__all__ = ["Progress", "default_processes", "run_echo", "run_http", "run_line",
           "run_workload"]

#: Seconds a worker may take to start, or to report after being told to stop.
WORKER_TIMEOUT = 30.0


@dataclass(frozen=True)
class Progress:
    """A progress report, about once a second.

    Attributes:
        elapsed: seconds since the start.
        requests: replies so far.
        errors: errors so far.
        rate: replies per second since the previous report.
    """

    elapsed: float
    requests: int
    errors: int
    rate: float

    def format(self, unit: str = "requests") -> str:
        """The progress line: ``3.0s  45,012 requests  15,004/s  0 errors``."""
        return (f"{self.elapsed:5.1f}s  {self.requests:,} {unit}  {self.rate:,.0f}/s  "
                f"{self.errors:,} errors")


ProgressCallback = Callable[[Progress], None]


def default_processes() -> int:
    """The CPUs this process may run on (the default number of worker processes)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _split(total: int, parts: int) -> list[int]:
    """``total`` split into ``parts`` near-equal whole numbers."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def run_workload(workload: Workload, processes: int = 1, *,
                 progress: ProgressCallback | None = None,
                 stop_on_interrupt: bool = False) -> Outcome:
    """Run ``workload`` (its connections and request budget split over processes).

    Args:
        workload: what to do, in all.
        processes: how many processes generate the load (at most one per connection).
        progress: called about once a second.
        stop_on_interrupt: on Ctrl-C, stop and return the partial figures
            (``outcome.interrupted``) instead of raising KeyboardInterrupt.
    """
    processes = max(1, min(processes, workload.connections))
    if processes == 1:
        tracker = _Tracker(progress)
        engine = Engine(workload, progress=tracker.engine_report if progress else None)
        return engine.run(catch_interrupt=stop_on_interrupt)
    connections = _split(workload.connections, processes)
    budgets: Sequence[int | None] = (
        _split(workload.requests, processes) if workload.requests is not None
        else [None] * processes)
    parts = [replace(workload, connections=c, requests=n)
             for c, n in zip(connections, budgets, strict=True)]
    return _Workers(parts, progress).run(stop_on_interrupt)


class _Tracker:
    """Turns cumulative figures into :class:`Progress` reports with a rate."""

    def __init__(self, callback: ProgressCallback | None) -> None:
        self.callback = callback
        self.last = (0.0, 0)

    def report(self, elapsed: float, requests: int, errors: int) -> None:
        if self.callback is None:
            return
        then, before = self.last
        rate = (requests - before) / (elapsed - then) if elapsed > then else 0.0
        self.last = (elapsed, requests)
        self.callback(Progress(elapsed, requests, errors, rate))

    def engine_report(self, outcome: Outcome, elapsed: float) -> None:
        self.report(elapsed, outcome.requests, sum(outcome.errors.values()))


class _Workers:
    """Worker processes running one part of the workload each."""

    def __init__(self, parts: list[Workload], progress: ProgressCallback | None) -> None:
        self.parts = parts
        self.tracker = _Tracker(progress)
        self.latest: dict[int, tuple[int, int]] = {}
        self.results: dict[int, Outcome] = {}
        self.buffers: dict[int, bytes] = {}
        self.processes: list[subprocess.Popen[bytes]] = []
        self.interrupted = False
        self.started = 0.0

    def run(self, stop_on_interrupt: bool) -> Outcome:
        selector = selectors.DefaultSelector()
        previous: Any = None
        if stop_on_interrupt and threading.current_thread() is threading.main_thread():
            # Ctrl-C as a flag rather than an exception, so that it cannot land
            # half-way through reading a worker's result.
            previous = signal.signal(signal.SIGINT, self._interrupt)
        try:
            self._start(selector)
            try:
                self._collect(selector)
            except KeyboardInterrupt:
                if not stop_on_interrupt or self.interrupted:
                    raise  # (a second Ctrl-C: the workers did not stop in time)
                self.interrupted = True
                self._tell("stop\n")
                self._collect(selector, WORKER_TIMEOUT)
            outcome = Outcome()
            for index in sorted(self.results):
                outcome.merge(self.results[index])
            outcome.interrupted = outcome.interrupted or self.interrupted
            return outcome
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
            selector.close()
            self._end()

    def _interrupt(self, signum: int, frame: Any) -> None:
        """SIGINT: tell the workers to stop (they report); a second one gives up."""
        if self.interrupted:
            raise KeyboardInterrupt
        self.interrupted = True
        self._tell("stop\n")

    def _start(self, selector: selectors.BaseSelector) -> None:
        env = dict(os.environ)
        # The workers import this package from where the parent found it
        # (a checkout that is not installed works too).
        root = str(Path(__file__).resolve().parent.parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
        for _ in self.parts:
            process = subprocess.Popen(
                [sys.executable, "-m", "protocols.bench._worker"], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, env=env)
            self.processes.append(process)
        for index, (part, process) in enumerate(zip(self.parts, self.processes, strict=True)):
            assert process.stdin is not None and process.stdout is not None
            process.stdin.write(json.dumps(part.to_json()).encode() + b"\n")
            process.stdin.flush()
            selector.register(process.stdout, selectors.EVENT_READ, index)
        ready: set[int] = set()
        deadline = time.monotonic() + WORKER_TIMEOUT
        while len(ready) < len(self.processes):
            for index, message in self._messages(selector, deadline):
                if message.get("ready"):
                    ready.add(index)
        self.started = time.monotonic()
        self._tell("go\n")

    def _tell(self, line: str) -> None:
        for process in self.processes:
            if process.stdin is not None and not process.stdin.closed:
                try:
                    process.stdin.write(line.encode())
                    process.stdin.flush()
                except OSError:
                    pass  # it has exited; its figures (or their absence) say why

    def _collect(self, selector: selectors.BaseSelector,
                 timeout: float | None = None) -> None:
        """Read progress and results until every worker has reported."""
        next_report = self.started + 1.0
        deadline = time.monotonic() + timeout if timeout is not None else None
        while len(self.results) < len(self.processes):
            wake = next_report if deadline is None else min(next_report, deadline)
            for index, message in self._messages(selector, wake, until=True):
                if "progress" in message:
                    requests, errors = message["progress"]
                    self.latest[index] = (requests, errors)
                elif "result" in message:
                    self.results[index] = Outcome.from_json(message["result"])
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                raise RuntimeError("the load worker processes did not report after a stop")
            if now >= next_report:
                self.tracker.report(now - self.started,
                                    sum(r for r, _ in self.latest.values()),
                                    sum(e for _, e in self.latest.values()))
                next_report += 1.0

    def _messages(self, selector: selectors.BaseSelector, deadline: float,
                  until: bool = False) -> Iterable[tuple[int, dict[str, Any]]]:
        """The JSON lines that arrive before ``deadline`` (one select's worth).

        Raises:
            RuntimeError: a worker exited without reporting, or (unless ``until``)
                none spoke before the deadline.
        """
        wait = deadline - time.monotonic()
        events = selector.select(max(wait, 0.0))
        if not events and not until and wait <= 0:
            raise RuntimeError("the load worker processes did not start")
        messages: list[tuple[int, dict[str, Any]]] = []
        for key, _ in events:
            index = key.data
            data = os.read(key.fd, 65536)
            if not data:
                selector.unregister(key.fileobj)
                if index not in self.results:
                    code = self.processes[index].wait(timeout=WORKER_TIMEOUT)
                    raise RuntimeError(f"a load worker process exited with status {code} "
                                       "without reporting (see its messages above)")
                continue
            lines = (self.buffers.pop(index, b"") + data).split(b"\n")
            if lines[-1]:
                self.buffers[index] = lines[-1]
            messages.extend((index, json.loads(line)) for line in lines[:-1] if line)
        return messages

    def _end(self) -> None:
        for process in self.processes:
            if process.stdin is not None:
                try:
                    process.stdin.close()
                except OSError:
                    pass
        for process in self.processes:
            try:
                process.wait(timeout=WORKER_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if process.stdout is not None:
                process.stdout.close()


# -- the Python API ----------------------------------------------------------------------


def _check(connections: int, duration: float | None, requests: int | None,
           timeout: float) -> None:
    if connections < 1:
        raise ValueError("connections must be at least 1")
    if duration is None and requests is None:
        raise ValueError("give a duration or a number of requests (or both)")
    if duration is not None and not 0 < duration < float("inf"):
        raise ValueError(f"the duration must be a positive number of seconds, not {duration}")
    if requests is not None and requests < 1:
        raise ValueError("the number of requests must be at least 1")
    if not 0 < timeout < float("inf"):
        raise ValueError(f"the timeout must be a positive number of seconds, not {timeout}")


def _run(mode: str, target: Target, request: bytes, *, connections: int,
         duration: float | None, requests: int | None, processes: int | None,
         timeout: float, progress: ProgressCallback | None, stop_on_interrupt: bool,
         no_body: bool = False, expect: bytes | None = None) -> BenchResult:
    _check(connections, duration, requests, timeout)
    family, address = resolve(target)
    workload = Workload(mode, family, address, connections, duration, requests, timeout,
                        request, no_body=no_body, expect=expect)
    count = max(1, min(processes or default_processes(), connections))
    outcome = run_workload(workload, count, progress=progress,
                           stop_on_interrupt=stop_on_interrupt)
    return BenchResult(mode, target.text, connections, count, duration, requests, outcome)


def run_http(url: str, *, connections: int = 50, duration: float | None = 10.0,
             requests: int | None = None, processes: int | None = None,
             method: str = "GET", headers: Sequence[tuple[str, str]] = (),
             body: bytes = b"", timeout: float = 5.0,
             progress: ProgressCallback | None = None,
             stop_on_interrupt: bool = False) -> BenchResult:
    """Load an HTTP server with keep-alive requests; block until done.

    Args:
        url: an ``http://`` URL.
        connections: connections, each with one request in flight at a time.
        duration: seconds to run (None: until ``requests`` are done).
        requests: stop after this many requests (replies and failures alike).
        processes: worker processes (None: one per CPU; 1: this thread).
        method: the request method (HEAD replies are read without a body).
        headers: extra ``(name, value)`` headers (Host and User-Agent replace ours).
        body: the request body (Content-Length is added).
        timeout: seconds a connect or a reply may take before it counts as an error.
        progress: called about once a second with a :class:`Progress`.
        stop_on_interrupt: Ctrl-C ends the run early and returns the partial result.

    Raises:
        ValueError: a bad URL, header, method or figure; a host that does not resolve.

    Example:
        >>> result = run_http("http://127.0.0.1:8080/", connections=10,
        ...                   duration=2, processes=1)        # doctest: +SKIP
        >>> result.requests_per_second, result.latency.percentile(99)  # doctest: +SKIP
    """
    target = parse_url(url)
    request = http_request(target, method, tuple(headers), body)
    return _run("http", target, request, connections=connections, duration=duration,
                requests=requests, processes=processes, timeout=timeout, progress=progress,
                stop_on_interrupt=stop_on_interrupt, no_body=method.upper() == "HEAD")


def _address(address: str | tuple[str, int]) -> Target:
    if isinstance(address, str):
        return parse_address(address)
    host, port = address
    return parse_address(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")


def run_echo(address: str | tuple[str, int], *, size: int = 64, connections: int = 50,
             duration: float | None = 10.0, requests: int | None = None,
             processes: int | None = None, timeout: float = 5.0,
             progress: ProgressCallback | None = None,
             stop_on_interrupt: bool = False) -> BenchResult:
    """Load an echo server: each connection sends ``size`` bytes and waits for them back.

    The echoed bytes are compared with those sent; a difference counts as a
    ``mismatch`` error. ``address`` is ``"HOST:PORT"`` or ``(host, port)``; the
    other arguments are :func:`run_http`'s.
    """
    if size < 1:
        raise ValueError("the message size must be at least 1 byte")
    target = _address(address)
    # A pattern that is not all one byte, so a reply shifted by a byte is caught.
    message = (bytes(range(33, 127)) * (size // 94 + 1))[:size]
    return _run("echo", target, message, connections=connections, duration=duration,
                requests=requests, processes=processes, timeout=timeout, progress=progress,
                stop_on_interrupt=stop_on_interrupt)


def run_line(address: str | tuple[str, int], request: str | bytes = "PING", *,
             expect: str | bytes | None = None, connections: int = 50,
             duration: float | None = 10.0, requests: int | None = None,
             processes: int | None = None, timeout: float = 5.0,
             progress: ProgressCallback | None = None,
             stop_on_interrupt: bool = False) -> BenchResult:
    """Load a line protocol: send ``request`` + CRLF, read one reply line, repeat.

    Args:
        request: the request line (without its CRLF).
        expect: a regular expression each reply line (without its line end) must
            contain (``re.search``); a reply that does not counts as ``mismatch``.

    The other arguments are :func:`run_http`'s.
    """
    import re

    line = request.encode() if isinstance(request, str) else request
    if b"\n" in line or b"\r" in line:
        raise ValueError("the request is one line: no CR or LF in it")
    pattern = expect.encode() if isinstance(expect, str) else expect
    if pattern is not None:
        try:
            re.compile(pattern)
        except re.error as e:
            raise ValueError(f"bad --expect regular expression: {e}") from None
    target = _address(address)
    return _run("line", target, line + b"\r\n", connections=connections, duration=duration,
                requests=requests, processes=processes, timeout=timeout, progress=progress,
                stop_on_interrupt=stop_on_interrupt, expect=pattern)
