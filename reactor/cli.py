"""The ``torsion`` command (also ``python -m reactor``): run a service on the reactor.

::

    torsion qotd --quote "Simplicity is prerequisite for reliability." --port 8017
    torsion echo --listen tcp:8007:interface=127.0.0.1 --listen unix:/tmp/echo.sock
    torsion run myapp.server:factory --port 8080 --workers 4

Subcommands are the services registered under the entry-point group
``torsion.services`` (``protocols/services.py`` says what a service object
is), so another package adds subcommands by declaring entry points; this
module never imports ``protocols``.

What a user (or a script) may rely on:

- One line per listener on stdout once it listens, in this fixed format,
  with the real port when 0 was asked for::

      torsion SERVICE: listening on ENDPOINT (reactor: NAME)
      torsion SERVICE: listening on ENDPOINT (reactor: NAME, workers: N)

  ENDPOINT is ``reactor.endpoints.describe()``'s: ``tcp:0.0.0.0:8017``,
  ``tcp6:[::1]:8017``, ``udp:127.0.0.1:8017``, ``ssl:...``, ``unix:PATH``.
- A user mistake is one line on stderr (``torsion SERVICE: error: ...``) and
  exit status 2 for a bad option or endpoint string, 1 when the command
  cannot do what was asked (port in use, unreadable file). A traceback is
  shown only for an exception raised by the user's own code.
- SIGTERM or SIGINT stop gracefully (the reactor's signal handling); the
  exit status is then 0.
- Logs (stdlib ``logging``) go to stderr, as text or, with ``--log-format
  json``, one object per line: time, level, logger, message, pid, exc_info.

A service that listens on nothing (``torsion bench``, a load generator) is a
*command*: it has ``main(args) -> int`` instead of ``build``, gets none of the
listening options, and its ``main`` runs without a reactor; its return value
is the exit status and a ``ValueError`` it raises is a usage error (status 2).

The soft limit on open files is raised to the hard limit at start-up (many
systems default it to 1024, which caps a server near a thousand
connections; the reactors use epoll, so nothing needs the low limit).

``--workers N`` runs a supervisor and N worker processes sharing the
listening sockets (``SO_REUSEPORT``); see ``reactor._workers``.
"""

from __future__ import annotations

import argparse
import errno
import json
import logging
import os
import sys
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

import reactor as reactor_module
from deferred import Failure
from reactor.endpoints import describe, serverFromString
from reactor.error import CannotListenError

__all__ = ["JsonFormatter", "build_parser", "load_services", "main"]

log = logging.getLogger("torsion")

ENTRY_POINT_GROUP = "torsion.services"
#: In a worker's environment: JSON naming its inherited sockets (see reactor._workers).
WORKER_ENV = "TORSION_WORKER"
#: Endpoint types a worker can adopt from the supervisor.
WORKER_KINDS = ("tcp", "tcp6", "ssl", "udp")

EPILOG = """\
examples:
  torsion qotd --quote "Simplicity is prerequisite for reliability." --port 8017
  torsion echo --port 8007 --interface 127.0.0.1
  torsion echo --listen tcp:8007 --listen unix:/tmp/echo.sock
  torsion qotd --listen ssl:8443:certKey=cert.pem:privateKey=key.pem
  torsion run myapp.server:factory --port 8080 --workers 4

Without --port or --listen a service listens on the port its RFC assigns
(echo 7, discard 9, daytime 13, qotd 17, chargen 19, time 37) over TCP and
UDP on all interfaces; ports below 1024 need root, so the examples use high
ports. --port P listens on TCP port P on all interfaces (--interface to
restrict) and, for the services the RFCs define over UDP, on UDP port P too.

Each listener prints one line on stdout when it is ready:
  torsion SERVICE: listening on ENDPOINT (reactor: NAME)
SIGTERM or SIGINT stop gracefully. Exit status: 0 after such a stop,
1 for a runtime error (such as a port in use), 2 for a usage error
(a bad option or endpoint string). 'python -m reactor' is the same command.
"""


class UsageError(Exception):
    """A bad command line: one line on stderr, exit status 2."""

    status = 2

    def __init__(self, prog: str, message: str) -> None:
        super().__init__(message)
        self.prog = prog


class CommandError(UsageError):
    """The command could not do what was asked (a port in use...): exit status 1."""

    status = 1


# -- services and the command line ------------------------------------------------------


def load_services() -> dict[str, Any]:
    """The services registered under ``torsion.services``, by subcommand name.

    One that fails to load is reported on stderr and left out, so a broken
    plug-in does not take the command down.
    """
    services: dict[str, Any] = {}
    for entry in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        if entry.name in services:
            continue
        try:
            service = entry.load()
        except Exception as e:
            print(f"torsion: warning: can't load the service {entry.name!r} "
                  f"({entry.value}): {type(e).__name__}: {e}", file=sys.stderr)
            continue
        needed = ("help", "add_arguments", "main" if _is_command(service) else "build")
        missing = [a for a in needed if not hasattr(service, a)]
        if missing:
            print(f"torsion: warning: the service {entry.name!r} ({entry.value}) has no "
                  f"{', '.join(missing)}; skipped", file=sys.stderr)
            continue
        services[entry.name] = service
    return services


def _is_command(service: Any) -> bool:
    # A command runs and exits (bench); a server service builds a factory.
    return callable(getattr(service, "main", None))


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:
        raise UsageError(self.prog, f"{message} (see '{self.prog} --help')")


def _number(low: int, high: int, what: str) -> Any:
    def convert(text: str) -> int:
        if not (text.isascii() and text.isdigit() and low <= int(text) <= high):
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
        return int(text)

    return convert


def seconds_argument(text: str) -> float:
    """argparse type: a finite number of seconds, 0 or more."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of seconds, got {text!r}")
    return value


def build_parser(services: dict[str, Any]) -> argparse.ArgumentParser:
    """The argparse parser: one subcommand per service, each with the common options."""
    raw = argparse.RawDescriptionHelpFormatter
    parser = _Parser(prog="torsion", formatter_class=raw, epilog=EPILOG,
                     description="Run a network service on the torsion reactor.")
    try:
        version = metadata.version("torsion")
    except metadata.PackageNotFoundError:
        version = "unknown"
    parser.add_argument("--version", action="version", version=f"torsion {version}")
    commands = parser.add_subparsers(dest="service", metavar="SERVICE", title="services")
    for name, service in services.items():
        examples = list(getattr(service, "examples", ()))
        sub = commands.add_parser(
            name, help=service.help, formatter_class=raw,
            description=textwrap.fill(getattr(service, "description", service.help), 79),
            epilog="examples:\n" + "".join(f"  {e}\n" for e in examples) if examples else None)
        service.add_arguments(sub)
        if not _is_command(service):
            _add_common_options(sub, service)
    return parser


def _add_common_options(parser: argparse.ArgumentParser, service: Any) -> None:
    default_port = getattr(service, "default_port", None)
    udp = " and UDP" if getattr(service, "udp", False) else ""
    where = parser.add_argument_group("where to listen")
    where.add_argument(
        "-p", "--port", type=_number(0, 65535, "a port number (0-65535)"), metavar="PORT",
        help=f"listen on TCP{udp} port PORT (0: any free port)"
             + (f"; default {default_port}" if default_port else "")
             + (", which needs root" if default_port and default_port < 1024 else ""))
    where.add_argument(
        "--interface", metavar="ADDRESS",
        help="the address --port listens on (default: all interfaces, 0.0.0.0; "
             "127.0.0.1 for this machine only)")
    where.add_argument(
        "-l", "--listen", action="append", default=[], metavar="ENDPOINT",
        help="listen on an endpoint string, e.g. tcp:8080:interface=127.0.0.1, tcp6:8080, "
             "unix:/tmp/s.sock, ssl:8443:certKey=cert.pem:privateKey=key.pem"
             + (", udp:8017" if udp else "") + "; repeatable")
    running = parser.add_argument_group("running")
    running.add_argument(
        "--reactor", choices=reactor_module.BACKENDS,
        help="the event loop (default: $TORSION_REACTOR, else uvloop if installed, else select)")
    running.add_argument(
        "--workers", type=_number(1, 4096, "a number of processes (1 or more)"), metavar="N",
        help="serve from N processes sharing the listening sockets (SO_REUSEPORT); a worker "
             "that dies is restarted (tcp, tcp6, ssl and udp endpoints)")
    running.add_argument(
        "--grace-period", type=seconds_argument, metavar="SECONDS",
        help="on SIGTERM/SIGINT, how long open connections may take to finish before they "
             "are closed (default: 5)")
    running.add_argument("--log-level", default="info", type=str.lower,
                         choices=["debug", "info", "warning", "error", "critical"],
                         help="the least important log messages shown (default: info)")
    running.add_argument("--log-format", default="text", choices=["text", "json"],
                         help="logs on stderr as text, or one JSON object per line")


# -- logging -------------------------------------------------------------------------------


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, pid, and exc_info text."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(level: str, log_format: str) -> None:
    """Send every log record at ``level`` or above to stderr, as text or JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.captureWarnings(True)


# -- planning the listeners ----------------------------------------------------------------


@dataclass
class _Planned:
    """One listener to open: its endpoint string and type.

    ``follows`` is set for the UDP half of ``--port 0``: it binds the port the
    TCP listener at that index got, so both halves share one number.
    """

    description: str
    kind: str
    follows: int | None = None
    interface: str = ""

    def text_for(self, port: int) -> str:
        """The description, with the followed listener's real port when it follows one."""
        if self.follows is None:
            return self.description
        return f"udp:{port}" + _interface_field(self.interface)


def _interface_field(interface: str) -> str:
    if not interface:
        return ""
    return f":interface=[{interface}]" if ":" in interface else f":interface={interface}"


def _plan(prog: str, service: Any, args: argparse.Namespace) -> list[_Planned]:
    """The listeners the options ask for: validated, not opened."""
    has_udp = bool(getattr(service, "udp", False))
    plan: list[_Planned] = []
    for text in args.listen:
        try:
            endpoint = serverFromString(None, text)
        except ValueError as e:
            raise UsageError(prog, f"bad endpoint {text!r}: {e}") from None
        kind = text.split(":", 1)[0]
        if kind == "udp" and not has_udp:
            raise UsageError(prog, f"{service.name} has no UDP protocol, so it can't listen "
                                   f"on {endpoint.describe()}")
        plan.append(_Planned(text, kind))
    port = args.port
    if port is None and not args.listen:
        port = getattr(service, "default_port", None)
        if port is None:
            raise UsageError(prog, f"{service.name} has no standard port: give --port or "
                                   "--listen")
    if args.interface is not None and port is None:
        raise UsageError(prog, "--interface goes with --port; with --listen, put "
                               "interface=ADDRESS in the endpoint string")
    if port is not None:
        interface = args.interface or ""
        where = _interface_field(interface)
        plan.append(_Planned(f"tcp:{port}{where}", "tcp"))
        if has_udp:
            follows = len(plan) - 1 if port == 0 else None
            plan.append(_Planned(f"udp:{port}{where}", "udp", follows, interface))
    if args.workers:
        for item in plan:
            if item.kind not in WORKER_KINDS:
                raise UsageError(prog, f"--workers works with {', '.join(WORKER_KINDS)} "
                                       f"endpoints, not {item.description!r}")
    return plan


def _why(e: BaseException, port: int) -> str:
    """Why a listen failed, as the end of a sentence."""
    err = e.socketError if isinstance(e, CannotListenError) else e
    if isinstance(err, OSError) and err.strerror:
        text = err.strerror[:1].lower() + err.strerror[1:]
        if err.errno == errno.EACCES and 0 < port < 1024:
            text += f" (ports below 1024 need root; try --port {8000 + port})"
        return text
    return str(err)


def _in_use(e: BaseException) -> bool:
    err = e.socketError if isinstance(e, CannotListenError) else e
    return isinstance(err, OSError) and err.errno == errno.EADDRINUSE


def _build(prog: str, service: Any, args: argparse.Namespace) -> tuple[Any, Any]:
    """``service.build(args)``, its errors turned into one-line messages."""
    try:
        factory, udp = service.build(args)
    except ValueError as e:
        raise UsageError(prog, str(e)) from None
    except OSError as e:
        what = f"{e.filename}: " if e.filename else ""
        raise CommandError(prog, f"{what}{e.strerror or e}") from None
    except Exception as e:
        # Not a mistake on the command line: the traceback helps.
        log.error("building the %s service failed", service.name, exc_info=True)
        raise CommandError(prog, f"building the service failed: {e}") from None
    return factory, udp


def _reactor_name(prog: str, asked: str | None) -> str:
    """The backend to use, checked to be importable."""
    try:
        name = asked or reactor_module._default_name()
        reactor_module.create(name).close()
    except ImportError as e:
        raise UsageError(prog, f"the {asked} reactor is not available: {e}") from None
    except ValueError as e:
        raise UsageError(prog, str(e)) from None
    return name


# -- serving in this process -----------------------------------------------------------------


def _now(d: Any) -> Any:
    """The result of a fired Deferred (listening is synchronous on every backend)."""
    box: list[Any] = []
    d.addBoth(box.append)
    if not box:
        raise RuntimeError("listening did not finish at once")
    if isinstance(box[0], Failure):
        box[0].raiseException()
    return box[0]


class _Retry(Exception):
    """The UDP half of ``--port 0`` found its port taken: open a new pair."""


def _listen_all(prog: str, r: Any, plan: list[_Planned], factory: Any,
                udp_protocols: list[Any]) -> list[Any]:
    """Open every planned listener: all of them, or none and a CommandError."""
    for attempt in range(5):
        ports: list[Any] = []
        protocols = iter(udp_protocols)
        try:
            for item in plan:
                followed = ports[item.follows].getHost().port if item.follows is not None else 0
                endpoint = serverFromString(r, item.text_for(followed))
                try:
                    target = next(protocols) if item.kind == "udp" else factory
                    ports.append(_now(endpoint.listen(target)))
                except (CannotListenError, OSError) as e:
                    if item.follows is not None and _in_use(e) and attempt < 4:
                        raise _Retry() from None
                    raise CommandError(prog, f"can't listen on {endpoint.describe()}: "
                                             f"{_why(e, getattr(endpoint, '_port', 0))}"
                                       ) from None
            return ports
        except _Retry:
            pass
        finally:
            if len(ports) < len(plan):
                for port in ports:
                    port.stopListening()
    raise AssertionError("unreachable")


def _serve(prog: str, service: Any, args: argparse.Namespace, plan: list[_Planned],
           name: str) -> int:
    r = reactor_module.create(name)
    try:
        with reactor_module.installed(r):
            factory, udp = _build(prog, service, args)
            # A DatagramProtocol serves one port: build one per UDP listener.
            udp_protocols = [udp if i == 0 else _build(prog, service, args)[1]
                             for i in range(sum(item.kind == "udp" for item in plan))]
            ports = _listen_all(prog, r, plan, factory, udp_protocols)
            lines = [f"{prog}: listening on {describe(port)} (reactor: {name})"
                     for port in ports]
            # Printed once running, when SIGTERM already means a graceful stop:
            # a script that signals as soon as it reads the lines gets one.
            r.callWhenRunning(print, "\n".join(lines), flush=True)
            if args.grace_period is not None:
                r.gracePeriod = args.grace_period
            r.run(installSignalHandlers=True)
    finally:
        if not r.running:
            r.close()
    return 0


# -- main -----------------------------------------------------------------------------------


def _raise_open_files_limit() -> None:
    # Soft to hard: a server should not stop accepting at ~1,000 connections
    # because of a default meant for select(2) programs.
    try:
        import resource
    except ImportError:  # not POSIX
        return
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        # An unlimited hard limit still has the kernel's ceiling (nr_open).
        wanted = (1 << 20) if hard == resource.RLIM_INFINITY else hard
        if soft != resource.RLIM_INFINITY and soft < wanted:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    except (OSError, ValueError) as e:
        log.debug("could not raise the open files limit: %s", e)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``torsion`` command; returns the exit status (see the module docstring)."""
    try:
        return _main(list(sys.argv[1:] if argv is None else argv))
    except UsageError as e:  # and CommandError
        print(f"{e.prog}: error: {e}", file=sys.stderr, flush=True)
        return e.status
    except KeyboardInterrupt:  # ^C before the reactor, which handles it, was running
        return 130


def _main(argv: list[str]) -> int:
    services = load_services()
    parser = build_parser(services)
    args = parser.parse_args(argv)
    if args.service is None:
        parser.print_usage(sys.stderr)
        names = ", ".join(services) or "none installed"
        raise UsageError("torsion", f"choose a service ({names}); 'torsion --help' explains")
    service = services[args.service]
    prog = f"torsion {args.service}"
    _raise_open_files_limit()
    if _is_command(service):
        try:
            return int(service.main(args))
        except ValueError as e:
            raise UsageError(prog, str(e)) from None
    configure_logging(args.log_level, args.log_format)
    worker = os.environ.pop(WORKER_ENV, None)
    if worker is not None:
        from reactor._workers import run_worker

        return run_worker(prog, service, args, json.loads(worker))
    plan = _plan(prog, service, args)
    name = _reactor_name(prog, args.reactor)
    if args.workers:
        _build(prog, service, args)  # a bad argument is reported now, not once per worker
        from reactor._workers import supervise

        return supervise(prog, argv, plan, name, args.workers, args.grace_period)
    return _serve(prog, service, args, plan, name)
