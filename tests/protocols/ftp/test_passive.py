"""Passive data ports: a configured range, exhaustion, and the masquerade address.

The port ranges are found free at test time (never hard-coded): bind port 0,
then take the ports after it that can be bound too.
"""

from __future__ import annotations

import contextlib
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from protocols.ftp._ports import NoFreePort, listenInRange, parsePortRange
from protocols.ftp.cli import ftp as ftp_service
from tests.protocols.ftp.test_server import raw_exchange, run

LOGIN = [b"USER alice\r\n", b"PASS s3cret\r\n"]


def _bound(port: int) -> socket.socket | None:
    sock = socket.socket()
    # As the server's listeners do: a port whose old connections linger in
    # TIME_WAIT (plenty after a load test) is free for listening.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError:
        sock.close()
        return None
    sock.listen(1)
    return sock


@contextlib.contextmanager
def free_range(count: int) -> Iterator[tuple[range, list[socket.socket]]]:
    """``count`` consecutive ports free now, each held by a listening socket until released."""
    for _ in range(50):
        first = _bound(0)
        assert first is not None
        start = first.getsockname()[1]
        held = [first]
        for port in range(start + 1, start + count):
            sock = _bound(port) if port < 65536 else None
            if sock is None:
                break
            held.append(sock)
        if len(held) == count:
            try:
                yield range(start, start + count), held
            finally:
                for sock in held:
                    sock.close()
            return
        for sock in held:
            sock.close()
    pytest.fail(f"found no {count} consecutive free ports")


def _pasv_port(reply: str) -> int:
    numbers = re.search(r"\((\d+),(\d+),(\d+),(\d+),(\d+),(\d+)\)", reply)
    assert numbers is not None, reply
    return int(numbers.group(5)) * 256 + int(numbers.group(6))


async def test_pasv_and_epsv_use_the_range(reactor: Any, tmp_path: Path) -> None:
    with free_range(4) as (ports, held):
        for sock in held:
            sock.close()
        lines = [*LOGIN, b"PASV\r\n", b"EPSV\r\n", b"PASV\r\n"]
        replies = await run(reactor, tmp_path, lambda n: raw_exchange(n, lines),
                            passivePorts=ports)
    pasv1, epsv, pasv2 = replies[3:]
    assert pasv1.startswith("227 ") and epsv.startswith("229 ") and pasv2.startswith("227 ")
    assert _pasv_port(pasv1) in ports and _pasv_port(pasv2) in ports
    epsv_port = re.search(r"\(\|\|\|(\d+)\|\)", epsv)
    assert epsv_port is not None and int(epsv_port.group(1)) in ports


async def test_ports_in_use_are_skipped_and_a_full_range_is_425(
        reactor: Any, tmp_path: Path) -> None:
    with free_range(3) as (ports, held):
        # Free only the middle port: whatever the random start, PASV must find it.
        held[1].close()
        lines = [*LOGIN, *[b"PASV\r\n"] * 3]
        replies = await run(reactor, tmp_path, lambda n: raw_exchange(n, lines),
                            passivePorts=ports)
        assert [_pasv_port(r) for r in replies[3:]] == [ports[1]] * 3
        # Now a second session holds the middle port: no port is left.

        def two_sessions(number: int) -> list[str]:
            with socket.create_connection(("127.0.0.1", number), timeout=10) as sock:
                reader = sock.makefile("rb")
                reader.readline()
                for line in [*LOGIN, b"PASV\r\n"]:
                    sock.sendall(line)
                    last = reader.readline().decode()
                assert _pasv_port(last) == ports[1]
                return raw_exchange(number, [*LOGIN, b"PASV\r\n", b"NOOP\r\n"])

        replies = await run(reactor, tmp_path, two_sessions, passivePorts=ports)
    assert replies[3].startswith("425 ") and replies[4].startswith("200 ")


def test_listen_in_range_raises_no_free_port(reactor: Any) -> None:
    from protocols.base import Factory

    with free_range(2) as (ports, _held), pytest.raises(NoFreePort):
        listenInRange(reactor, Factory(), "127.0.0.1", ports)


async def test_pasv_announces_the_masquerade_address(reactor: Any, tmp_path: Path) -> None:
    lines = [*LOGIN, b"PASV\r\n", b"EPSV\r\n"]
    replies = await run(reactor, tmp_path, lambda n: raw_exchange(n, lines),
                        masquerade="203.0.113.7")
    assert replies[3].startswith("227 Entering Passive Mode (203,0,113,7,")
    assert replies[4].startswith("229 ")  # EPSV names no address


def test_parse_port_range() -> None:
    assert parsePortRange("60000-60100") == range(60000, 60101)
    assert parsePortRange("2121") == range(2121, 2122)
    for bad in ("", "a-b", "10-5", "0-10", "60000-70000", "1-2-3"):
        with pytest.raises(ValueError):
            parsePortRange(bad)


def test_cli_limits_options(tmp_path: Path) -> None:
    import argparse

    parser = argparse.ArgumentParser()
    ftp_service.add_arguments(parser)
    args = parser.parse_args(["--root", str(tmp_path), "--anonymous",
                              "--passive-ports", "60000-60100", "--max-connections", "5",
                              "--max-connections-per-ip", "2", "--read-limit", "512K",
                              "--write-limit", "1.5M"])
    factory, _ = ftp_service.build(args)
    assert factory.passivePorts == range(60000, 60101)
    assert (factory.maxConnections, factory.maxConnectionsPerIP) == (5, 2)
    assert (factory.readLimit, factory.writeLimit) == (512 << 10, 3 << 19)
    for bad, message in ((["--passive-ports", "9-1"], "--passive-ports: expected"),
                         (["--max-connections", "0"], "--max-connections must be"),
                         (["--read-limit", "fast"], "--read-limit wants bytes"),
                         (["--write-limit", "100"], "--write-limit must be at least")):
        args = parser.parse_args(["--root", str(tmp_path), "--anonymous", *bad])
        with pytest.raises(ValueError, match=message):
            ftp_service.build(args)
