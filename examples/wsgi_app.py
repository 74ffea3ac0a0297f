"""A plain WSGI application (PEP 3333, standard library only) served by torsion.

Run it, from the repository root, either way:

    torsion web --wsgi examples.wsgi_app:application --port 8080
    python examples/wsgi_app.py --port 8080

The second form is the first with the target filled in: any other option of
``torsion web`` (``--reactor``, ``--listen``, ``--workers``) can follow. Then::

    curl http://127.0.0.1:8080/
    curl --data-binary 'some bytes' http://127.0.0.1:8080/echo

The application runs in the reactor's thread pool, so it may block (read a
file, query a database) without stopping the server. Any WSGI framework's
application object (Flask's ``app``, Django's ``get_wsgi_application()``)
is served the same way.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import Any

StartResponse = Callable[..., Any]


def application(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """``GET /``: a greeting with the request's details; ``POST /echo``: the body back."""
    path = environ.get("PATH_INFO", "") or "/"
    method = environ["REQUEST_METHOD"]
    if path == "/echo" and method == "POST":
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", str(len(body)))])
        return [body]
    if path == "/" and method in ("GET", "HEAD"):
        query = environ.get("QUERY_STRING", "")
        lines = [
            "Hello from a WSGI application.",
            f"method: {method}",
            f"path: {path}",
            f"query: {query}",
            f"server: {environ.get('SERVER_SOFTWARE', '?')}",
        ]
        body = ("\n".join(lines) + "\n").encode("utf-8")
        start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8"),
                                  ("Content-Length", str(len(body)))])
        return [body]
    body = f"no page at {method} {path}\n".encode()
    start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8"),
                                     ("Content-Length", str(len(body)))])
    return [body]


def main(argv: list[str] | None = None) -> int:
    """``torsion web --wsgi wsgi_app:application`` with the options given here."""
    from reactor.cli import main as torsion

    # This file's directory is sys.path[0] when run as a script, so the
    # command imports it again as "wsgi_app" (not "__main__").
    args = sys.argv[1:] if argv is None else argv
    return torsion(["web", "--wsgi", "wsgi_app:application", *args])


if __name__ == "__main__":
    sys.exit(main())
