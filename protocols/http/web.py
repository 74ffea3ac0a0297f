"""``torsion web``: serve a directory, a Resource tree or a WSGI application over HTTP.

::

    torsion web                                   # the current directory, port 8080
    torsion web --path site --port 8000 --interface 127.0.0.1
    torsion web --app myapp.web:root --port 8000  # a Resource (or a callable making one)
    torsion web --wsgi myapp.wsgi:application --port 8000
    torsion web --path site --listen ssl:8443:certKey=cert.pem:privateKey=key.pem

The command line around this (``--port``, ``--listen`` endpoint strings
including ``ssl:``, ``--reactor``, ``--workers``, logging) is the ``torsion``
command's (``reactor.cli``); this module only turns the web options into a
:class:`~protocols.http.server.Site`. It is registered as the ``web`` entry
point of ``torsion.services`` and imports the HTTP modules only when the
service is built, so listing the services stays cheap.

Every finished request is logged in Combined Log Format on the
``protocols.http.access`` logger at INFO, which the command sends to stderr
(``--no-access-log`` silences it).
"""

from __future__ import annotations

import argparse
import logging
import os
import re
from typing import Any

from protocols.services import load_object
from reactor.cli import seconds_argument

__all__ = ["WebService", "load_object", "parse_size", "web"]

log = logging.getLogger("protocols.http.web")

_SIZE = re.compile(r"(\d+)\s*([kmg]?)i?b?", re.IGNORECASE)
_UNITS = {"": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3}


def parse_size(text: str) -> int:
    """A byte count from ``text``: a plain number or one with a K, M or G suffix.

    Suffixes are binary (``1K`` is 1024 bytes); ``KB``, ``KiB`` and ``k`` are
    all accepted.

    Raises:
        ValueError: ``text`` is not such a size.

    Example:
        >>> parse_size("16M")
        16777216
        >>> parse_size("512")
        512
    """
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"expected a size such as 1048576, 512K or 16M, got {text!r}")
    return int(match.group(1)) * _UNITS[match.group(2).lower()]


def _size_argument(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _is_resource(obj: Any) -> bool:
    return not isinstance(obj, type) and all(
        hasattr(obj, name) for name in ("render", "getChildWithDefault", "isLeaf"))


def _as_resource(obj: Any, target: str) -> Any:
    """``obj`` if it is a Resource, else what calling it returns (a class, a factory)."""
    if _is_resource(obj):
        return obj
    if not callable(obj):
        raise ValueError(f"{target} is {obj!r}, not a Resource or a callable returning one")
    try:
        made = obj()
    except Exception as e:
        raise RuntimeError(f"{target}() raised {type(e).__name__}: {e}") from e
    if not _is_resource(made):
        raise ValueError(f"{target}() returned {made!r}, not a Resource")
    return made


class WebService:
    """The ``web`` subcommand: a :class:`~protocols.http.server.Site` from the options."""

    name = "web"
    help = "HTTP: serve a directory, a Resource or a WSGI app"
    default_port = 8080
    udp = False
    description = (
        "Serves HTTP/1.1. By default it serves the current directory (--path DIR for "
        "another) with ranges, conditional requests and directory listings; --app "
        "MODULE:RESOURCE serves your own Resource tree (an object, or a callable "
        "returning one) and --wsgi MODULE:APP a WSGI application, run in the reactor's "
        "thread pool. MODULE is searched for in the current directory too. Listens on "
        "port 8080 unless --port or --listen says otherwise; for HTTPS, listen on an "
        "ssl: endpoint. Each request is logged to stderr in Combined Log Format.")
    examples = [
        "torsion web --port 8000 --interface 127.0.0.1",
        "torsion web --path examples/site --port 8000",
        "torsion web --app examples.async_resource:root --port 8000",
        "torsion web --wsgi examples.wsgi_app:application --port 8000",
        "torsion web --path site --gzip --listen ssl:8443:certKey=cert.pem:privateKey=key.pem",
    ]

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """What to serve (one of --path, --app, --wsgi) and the Site's limits."""
        what = parser.add_argument_group("what to serve (one of)")
        source = what.add_mutually_exclusive_group()
        source.add_argument("--path", metavar="DIR",
                            help="serve the files under DIR (default: the current directory)")
        source.add_argument("--app", metavar="MODULE:RESOURCE",
                            help="serve a Resource, or what a callable of no arguments "
                                 "returns, e.g. myapp.web:root")
        source.add_argument("--wsgi", metavar="MODULE:APP",
                            help="serve a WSGI application, e.g. myapp.wsgi:application")
        http = parser.add_argument_group("HTTP")
        http.add_argument("--gzip", action="store_true",
                          help="gzip responses for clients that accept it")
        http.add_argument("--timeout", type=seconds_argument, default=60.0,
                          metavar="SECONDS",
                          help="close a keep-alive connection idle this long "
                               "(default: 60; 0: never)")
        http.add_argument("--header-timeout", type=seconds_argument, default=20.0,
                          metavar="SECONDS",
                          help="time a client has to send a whole request head; 408 after "
                               "it (default: 20; 0: no limit)")
        http.add_argument("--body-timeout", type=seconds_argument, default=60.0,
                          metavar="SECONDS",
                          help="longest silence while a request body arrives; 408 after it "
                               "(default: 60; 0: no limit)")
        http.add_argument("--max-body", type=_size_argument, default=16 * 1024 ** 2,
                          metavar="SIZE",
                          help="largest request body accepted, e.g. 1048576, 512K, 16M; "
                               "larger ones get 413 (default: 16M)")
        http.add_argument("--no-access-log", action="store_true",
                          help="don't log each request to stderr")

    def build(self, args: argparse.Namespace) -> tuple[Any, Any]:
        """The Site serving what the options name; no UDP."""
        from .server import Site

        root = self.root_resource(args)
        if args.gzip:
            from .encoding import EncodingResourceWrapper, GzipEncoderFactory

            root = EncodingResourceWrapper(root, [GzipEncoderFactory()])
        if args.no_access_log:
            logging.getLogger("protocols.http.access").setLevel(logging.WARNING)
        # 0 means "no limit" on the command line, None in the Site.
        site = Site(root, timeout=args.timeout or None, max_body=args.max_body,
                    headerTimeout=args.header_timeout or None,
                    bodyTimeout=args.body_timeout or None)
        return site, None

    def root_resource(self, args: argparse.Namespace) -> Any:
        """The resource at the root of the site, before any wrapping."""
        if args.app is not None:
            return _as_resource(load_object(args.app, "RESOURCE"), args.app)
        if args.wsgi is not None:
            application = load_object(args.wsgi, "APP")
            if not callable(application):
                raise ValueError(f"{args.wsgi} is {application!r}, not a WSGI application "
                                 "(a callable taking environ and start_response)")
            import reactor

            from .wsgi import WSGIResource

            # The module, not the reactor: it reaches the installed reactor (and
            # its thread pool, via callInThread) only when a request comes, so
            # building the service to check the options (as the --workers
            # supervisor does) installs no reactor and starts no thread.
            return WSGIResource(reactor, reactor, application)
        path = os.path.abspath(args.path if args.path is not None else os.curdir)
        if not os.path.isdir(path):
            what = "does not exist" if not os.path.exists(path) else "is not a directory"
            raise ValueError(f"--path {args.path or os.curdir}: {path} {what}")
        from .static import File

        log.info("serving the directory %s", path)
        return File(path)

    def __repr__(self) -> str:
        return "<torsion service 'web'>"


web = WebService()
