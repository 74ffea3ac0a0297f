"""HTTP/1.1 for Torsion: server, resources, static files, WSGI, authentication, client.

What most programs need is importable from here::

    from protocols.http import File, Resource, Site          # serving
    from protocols.http import Agent, readBody, get, post    # fetching

The modules, each owning one thing:

- :mod:`~protocols.http.parser`: the sans-I/O parser (bytes in, events out).
- :mod:`~protocols.http.server`: :class:`Site` and the connection;
  :mod:`~protocols.http.request`: :class:`Request`;
  :mod:`~protocols.http.body`: request bodies read as streams.
- :mod:`~protocols.http.resource`: the :class:`Resource` tree.
- :mod:`~protocols.http.static` (:class:`File`), :mod:`~protocols.http.wsgi`
  (:class:`WSGIResource`), :mod:`~protocols.http.encoding` (gzip),
  :mod:`~protocols.http.auth` (Basic and Digest, both sides).
- :mod:`~protocols.http.forms`, :mod:`~protocols.http.cookies`,
  :mod:`~protocols.http.headers`: sans-I/O helpers.
- :mod:`~protocols.http.client`: :class:`Agent`, the pool, redirects,
  decoding, and the ``get``/``post`` shortcuts (``client.request`` for other
  methods; it is not re-exported here, where ``request`` is a module).
"""

from .auth import (
    AuthAgent,
    AuthWrapper,
    InMemoryDigestHashDatabase,
    InMemoryUsernamePasswordDatabase,
    PasswordManager,
)
from .body import BodyError, BodyTooLarge
from .client import (
    Agent,
    BrowserLikeRedirectAgent,
    ContentDecoderAgent,
    FileBodyProducer,
    GzipDecoder,
    HTTPConnectionPool,
    RedirectAgent,
    Response,
    ResponseFailed,
    get,
    post,
    readBody,
)
from .encoding import EncodingResourceWrapper, GzipEncoderFactory
from .headers import Headers
from .parser import (
    BodyData,
    EndOfMessage,
    Event,
    Limits,
    ParseError,
    RequestHead,
    RequestParser,
    ResponseHead,
    ResponseParser,
    Upgrade,
)
from .request import Request
from .resource import (
    NOT_DONE_YET,
    ErrorPage,
    ForbiddenResource,
    NoResource,
    Resource,
)
from .server import HTTPChannel, Site
from .static import File
from .wsgi import WSGIResource

__all__ = [
    "NOT_DONE_YET",
    "Agent",
    "AuthAgent",
    "AuthWrapper",
    "BodyData",
    "BodyError",
    "BodyTooLarge",
    "BrowserLikeRedirectAgent",
    "ContentDecoderAgent",
    "EncodingResourceWrapper",
    "EndOfMessage",
    "ErrorPage",
    "Event",
    "File",
    "FileBodyProducer",
    "ForbiddenResource",
    "GzipDecoder",
    "GzipEncoderFactory",
    "HTTPChannel",
    "HTTPConnectionPool",
    "Headers",
    "InMemoryDigestHashDatabase",
    "InMemoryUsernamePasswordDatabase",
    "Limits",
    "NoResource",
    "ParseError",
    "PasswordManager",
    "RedirectAgent",
    "Request",
    "RequestHead",
    "RequestParser",
    "Resource",
    "Response",
    "ResponseFailed",
    "ResponseHead",
    "ResponseParser",
    "Site",
    "Upgrade",
    "WSGIResource",
    "get",
    "post",
    "readBody",
]
