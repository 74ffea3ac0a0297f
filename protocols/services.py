"""The services the ``torsion`` command ships: the RFC wire services, and ``run``.

Each object here is registered in ``pyproject.toml`` under the entry-point
group ``torsion.services``; the command finds them there, the same way it
finds a third-party package's services (``reactor`` never imports
``protocols``). A service is any object with:

    name            the subcommand ("qotd")
    help            one line for ``torsion --help``
    default_port    the port used without --port/--listen (None: one is required)
    udp             True when the service also speaks UDP (--port then binds both)
    add_arguments(parser)   add the service's own options to its argparse parser
    build(args)     -> (factory for TCP-like streams, DatagramProtocol or None)

Optional: ``description`` (a paragraph for ``torsion NAME --help``) and
``examples`` (command lines shown there).

``build`` raises ValueError for a bad argument (the command prints the
message and exits with status 2) and OSError for a file it cannot read
(status 1). Nothing here imports ``protocols.wire`` until a service is
built, so listing the services stays cheap.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Any

from protocols.base import Factory

__all__ = ["RunService", "WireService", "chargen", "daytime", "discard", "echo",
           "load_factory", "load_object", "qotd", "run", "time"]

_ROOT_NOTE = ("Its RFC port ({port}) is below 1024, so using it needs root; "
              "use --port with a high port (e.g. {high}) otherwise.")


class WireService:
    """One of the small RFC services of ``protocols.wire``, on TCP and UDP.

    Args:
        name: the subcommand.
        help: one line for the service list.
        rfc: the RFC number, for the description.
        default_port: the port the RFC assigns (TCP and UDP).
        factory: the name of the TCP factory class in ``protocols.wire``.
        udp_protocol: the name of its UDP ``DatagramProtocol`` class there.
        details: what the service does, for ``torsion NAME --help``.
    """

    def __init__(self, name: str, help: str, rfc: int, default_port: int, factory: str,
                 udp_protocol: str, details: str) -> None:
        self.name = name
        self.help = help
        self.rfc = rfc
        self.default_port = default_port
        self.udp = True
        self._factory = factory
        self._udp_protocol = udp_protocol
        high = 8000 + default_port
        self.description = (f"{details} (RFC {rfc}, TCP and UDP.) "
                            + _ROOT_NOTE.format(port=default_port, high=high))
        self.examples = [f"torsion {name} --port {high}",
                         f"torsion {name} --port {high} --interface 127.0.0.1",
                         f"torsion {name} --listen tcp:{high}:interface=127.0.0.1"]

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """The plain wire services take no options of their own."""

    def build(self, args: argparse.Namespace) -> tuple[Any, Any]:
        """A factory for the TCP protocol and an instance of the UDP one."""
        from protocols import wire

        return getattr(wire, self._factory)(), getattr(wire, self._udp_protocol)()

    def __repr__(self) -> str:
        return f"<torsion service {self.name!r}>"


class QOTDService(WireService):
    """The Quote of the Day service (RFC 865), with the quote from the command line."""

    def __init__(self) -> None:
        super().__init__(
            "qotd", "Quote of the Day: send a quote and close (RFC 865)", 865, 17,
            "QOTDFactory", "QOTDUDP",
            "Sends a short message to every client (over TCP, then closes; over UDP, "
            "one datagram in reply to any datagram). The quote comes from --quote, or "
            "is picked at random from --quotes-file (quotes separated by blank lines).")
        self.examples = [
            'torsion qotd --quote "Simplicity is prerequisite for reliability." '
            "--port 8017",
            "torsion qotd --quotes-file quotes.txt --port 8017 --interface 127.0.0.1",
        ]

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """--quote TEXT and --quotes-file FILE (one of them, or the built-in quote)."""
        source = parser.add_mutually_exclusive_group()
        source.add_argument("--quote", metavar="TEXT",
                            help="the quote to send (default: a built-in one)")
        source.add_argument("--quotes-file", metavar="FILE",
                            help="send a random quote from FILE (blank-line separated)")

    def build(self, args: argparse.Namespace) -> tuple[Any, Any]:
        """The QOTD factory and UDP protocol, both serving the chosen quotes."""
        from protocols import wire

        options: dict[str, Any] = {}
        if args.quote is not None:
            if not args.quote.strip():
                raise ValueError("--quote must not be empty")
            options["quote"] = args.quote
        elif args.quotes_file is not None:
            options["quotes_file"] = args.quotes_file
        # Both read the file now: a missing or empty one is an error at start-up
        # (OSError, ValueError), not at the first connection.
        factory = wire.QOTDFactory(**options)
        udp = wire.QOTDUDP(**options)
        return factory, udp


class RunService:
    """``torsion run MODULE:FACTORY``: serve any user factory over TCP-like endpoints."""

    name = "run"
    help = "serve your own factory: torsion run MODULE:FACTORY --port N"
    default_port = None
    udp = False
    description = (
        "Imports FACTORY from MODULE and serves it. FACTORY may be a Factory instance, "
        "a Factory class, a Protocol class (served with Factory.forProtocol), or a "
        "callable returning a Factory. The current directory is searched for MODULE. "
        "There is no standard port: give --port or --listen.")
    examples = ["torsion run myapp.server:factory --port 8080",
                "torsion run myapp.server:make_factory --port 8080 --workers 4",
                "torsion run myapp.server:Echo --listen unix:/tmp/echo.sock"]

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """The one positional argument, MODULE:FACTORY."""
        parser.add_argument("target", metavar="MODULE:FACTORY",
                            help="what to serve, e.g. myapp.server:factory")

    def build(self, args: argparse.Namespace) -> tuple[Any, Any]:
        """Import the target and make a factory of it; no UDP."""
        return load_factory(args.target), None

    def __repr__(self) -> str:
        return "<torsion service 'run'>"


def load_object(target: str, what: str) -> Any:
    """The object ``MODULE:NAME`` names, importing MODULE (the current directory too).

    ``NAME`` may be dotted (``app:server.root``). ``what`` names the kind of
    object in messages (``"RESOURCE"``, ``"APP"``).

    Raises:
        ValueError: the target is malformed, its module cannot be found, or
            the module has no such attribute (the user's typo).
        RuntimeError: the user's module raised while importing (chained to the
            original exception, so the command shows its traceback).
    """
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"expected MODULE:{what} (e.g. myapp.web:{what.lower()}), "
                         f"got {target!r}")
    # As "python -m" does, so "torsion run app:factory" finds ./app.py.
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        # Only the target (or a package above it) missing is the user's typo; a
        # missing import inside their module is a bug whose traceback helps.
        if e.name is not None and (module_name + ".").startswith(e.name + "."):
            raise ValueError(f"can't import {module_name!r}: no module named {e.name!r}"
                             ) from None
        raise RuntimeError(f"importing {module_name!r} failed: {e}") from e
    except Exception as e:
        raise RuntimeError(f"importing {module_name!r} failed: {e}") from e
    obj: Any = module
    for part in attribute.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ValueError(f"{module_name!r} has no attribute {attribute!r}") from None
    return obj


def load_factory(target: str) -> Any:
    """The factory ``MODULE:NAME`` names (see RunService for what NAME may be).

    Raises:
        ValueError: the target is malformed, its module does not exist, or it
            names no factory.
        RuntimeError: the user's code raised while importing or building
            (chained to the original exception, for the traceback).
    """
    return _as_factory(load_object(target, "FACTORY"), target)


def _as_factory(obj: Any, target: str) -> Any:
    if isinstance(obj, type):
        if hasattr(obj, "buildProtocol"):
            return _call(obj, target)
        if hasattr(obj, "dataReceived"):
            return Factory.forProtocol(obj)
        raise ValueError(f"{target} is the class {obj.__name__}, which is neither a "
                         "Factory nor a Protocol")
    if hasattr(obj, "buildProtocol"):
        return obj
    if callable(obj):
        made = _call(obj, target)
        if hasattr(made, "buildProtocol"):
            return made
        raise ValueError(f"{target}() returned {made!r}, not a Factory "
                         "(an object with buildProtocol)")
    raise ValueError(f"{target} is {obj!r}, not a Factory, a Protocol class or a "
                     "callable returning a Factory")


def _call(f: Any, target: str) -> Any:
    try:
        return f()
    except Exception as e:
        raise RuntimeError(f"{target}() raised {type(e).__name__}: {e}") from e


echo = WireService("echo", "Echo: send back whatever is received (RFC 862)", 862, 7,
                   "EchoFactory", "EchoUDP",
                   "Sends back every byte it receives; over UDP, each datagram.")
discard = WireService("discard", "Discard: read and throw away everything (RFC 863)", 863,
                      9, "DiscardFactory", "DiscardUDP",
                      "Reads and ignores everything; never replies.")
chargen = WireService("chargen", "Character Generator: stream text until closed (RFC 864)",
                      864, 19, "ChargenFactory", "ChargenUDP",
                      "Sends a rotating pattern of printable characters as fast as the "
                      "client reads it; over UDP, one datagram of them per datagram "
                      "received. UDP chargen amplifies traffic: on a public host, listen "
                      "on 127.0.0.1 or use --listen tcp:...")
qotd = QOTDService()
daytime = WireService("daytime", "Daytime: send the date and time as text (RFC 867)", 867,
                      13, "DaytimeFactory", "DaytimeUDP",
                      "Sends the current date and time as a line of text, then closes.")
time = WireService("time", "Time: send the time as 32-bit seconds since 1900 (RFC 868)",
                   868, 37, "TimeFactory", "TimeUDP",
                   "Sends the time as a 4-byte big-endian count of seconds since "
                   "1900-01-01, then closes.")
run = RunService()
