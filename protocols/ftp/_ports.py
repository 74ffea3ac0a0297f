"""Listening for passive data connections inside a configured port range.

A firewall in front of an FTP server usually opens a fixed range of ports
for passive data connections (``FTPFactory(passivePorts=range(60000, 60101))``,
``torsion ftp --passive-ports 60000-60100``). :func:`listenInRange` starts
at a random port of the range, so that concurrent sessions do not all race
for its first port and a data port is harder to guess, and takes the next one
whenever a port is in use, wrapping around once.
"""

from __future__ import annotations

import errno
import random
from collections.abc import Sequence
from typing import Any

from reactor.error import CannotListenError

__all__ = ["NoFreePort", "listenInRange", "parsePortRange"]

# The errors that mean "this port, not the next one": in use, or reserved.
_TRY_NEXT = frozenset({errno.EADDRINUSE, errno.EACCES})


class NoFreePort(Exception):
    """Every port of the passive range is in use."""


def listenInRange(reactor: Any, factory: Any, interface: str,
                  ports: Sequence[int] | None) -> Any:
    """Listen on a free port of ``ports`` (any free port when None or empty).

    Raises:
        NoFreePort: every port of ``ports`` is taken.
        CannotListenError: listening failed for another reason.
    """
    if not ports:
        return reactor.listenTCP(0, factory, interface=interface)
    count = len(ports)
    start = random.randrange(count)
    for i in range(count):
        port = ports[(start + i) % count]
        try:
            return reactor.listenTCP(port, factory, interface=interface)
        except CannotListenError as e:
            if getattr(e.socketError, "errno", None) not in _TRY_NEXT:
                raise
    raise NoFreePort(f"all {count} passive ports are in use")


def parsePortRange(text: str) -> range:
    """The ports ``FIRST-LAST`` (both included) names; a single ``PORT`` is a range of one.

    Raises:
        ValueError: not a range of ports from 1 to 65535, first <= last.

    Example:
        >>> parsePortRange("60000-60100")
        range(60000, 60101)
    """
    first_text, _, last_text = text.partition("-")
    try:
        first = int(first_text)
        last = int(last_text) if last_text else first
    except ValueError:
        raise ValueError(f"expected FIRST-LAST, got {text!r}") from None
    if not 1 <= first <= last <= 65535:
        raise ValueError(f"expected ports 1-65535 with FIRST <= LAST, got {text!r}")
    return range(first, last + 1)
