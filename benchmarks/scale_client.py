"""The idle-connection holder of the ``scale`` suite, one process of its own.

``python -m benchmarks.scale_client --port PORT --connections N`` opens N TCP connections
to 127.0.0.1:PORT and proves each one is served: it sends one byte and waits for its echo.
Then it prints one JSON line (``{"connected": N, "seconds": ..., ...}``) and holds every
connection open, idle, until a line arrives on stdin (or stdin closes); it then closes
them all, prints ``{"closed": N, "seconds": ...}`` and exits.

Connecting is nonblocking, on epoll, with a sliding window of at most ``--window``
connections between ``connect()`` and their echo. The window stays below the servers'
listen backlogs (torsion's and Twisted's default is 50, asyncio's 100): were the accept
queue to overflow, the kernel would drop SYNs and each dropped client would wait a
second for its retransmission, measuring the backlog instead of the server. On a
failure (refused, reset, timed out, the cap passed) it prints ``{"error": "..."}`` and
exits with status 1.

The soft RLIMIT_NOFILE is raised to the hard limit first: each connection is a
descriptor here as it is in the server.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import resource
import selectors
import socket
import sys
import time

HOST = "127.0.0.1"
PROBE = b"s"  # the one byte each connection sends; the echo proves it was accepted


def raise_nofile_limit() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard limit; return the (soft, hard) now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass  # e.g. an unlimited hard limit the kernel caps lower: keep the soft one
    return resource.getrlimit(resource.RLIMIT_NOFILE)


class Failed(Exception):
    """A connection could not be opened or was not served."""


def open_connections(port: int, count: int, window: int, cap: float) -> list[socket.socket]:
    """Open ``count`` connections, each served with one echo; raise Failed otherwise."""
    selector = selectors.DefaultSelector()
    held: list[socket.socket] = []
    in_flight = 0
    started = 0
    deadline = time.monotonic() + cap
    try:
        while len(held) < count:
            while in_flight < window and started < count:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.setblocking(False)
                code = sock.connect_ex((HOST, port))
                if code not in (0, errno.EINPROGRESS):
                    sock.close()
                    raise Failed(f"connect #{started + 1}: {os.strerror(code)}")
                selector.register(sock, selectors.EVENT_WRITE)
                started += 1
                in_flight += 1
            timeout = deadline - time.monotonic()
            if timeout <= 0:
                raise Failed(
                    f"only {len(held)} of {count} connections served within {cap:g} s "
                    f"({in_flight} still waiting)"
                )
            for key, mask in selector.select(timeout):
                sock = key.fileobj  # type: ignore[assignment]
                if mask & selectors.EVENT_WRITE:
                    code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if code:
                        raise Failed(f"connect #{started}: {os.strerror(code)}")
                    sock.send(PROBE)  # an empty socket buffer always takes one byte
                    selector.modify(sock, selectors.EVENT_READ)
                    continue
                try:
                    echoed = sock.recv(16)
                except OSError as exc:
                    raise Failed(f"connection {len(held) + 1}: {exc}") from None
                if echoed != PROBE:
                    what = "closed" if not echoed else f"answered {echoed!r}"
                    raise Failed(f"the server {what} instead of echoing")
                selector.unregister(sock)
                held.append(sock)
                in_flight -= 1
    except BaseException:
        for sock in held:
            sock.close()
        for key in list(selector.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]
        raise
    finally:
        selector.close()
    return held


def main(argv: list[str] | None = None) -> int:
    """Open, report, hold, close; see the module docstring."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scale_client")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--connections", type=int, required=True)
    parser.add_argument("--window", type=int, default=32)
    parser.add_argument("--cap", type=float, default=120.0, help="seconds to open them all")
    args = parser.parse_args(argv)
    soft, _hard = raise_nofile_limit()
    if soft != resource.RLIM_INFINITY and soft < args.connections + 32:
        print(json.dumps({"error": f"RLIMIT_NOFILE {soft} is too low for "
                                   f"{args.connections} connections"}), flush=True)
        return 1
    start = time.perf_counter()
    try:
        held = open_connections(args.port, args.connections, args.window, args.cap)
    except Failed as exc:
        print(json.dumps({"error": str(exc)}), flush=True)
        return 1
    seconds = time.perf_counter() - start
    print(json.dumps({"connected": len(held), "seconds": seconds, "window": args.window}),
          flush=True)
    sys.stdin.readline()  # idle until the suite has measured
    start = time.perf_counter()
    for sock in held:
        sock.close()
    print(json.dumps({"closed": len(held), "seconds": time.perf_counter() - start}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
