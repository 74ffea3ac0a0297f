"""Compressed responses: :class:`EncodingResourceWrapper` and :class:`GzipEncoderFactory`.

Wrap a resource (or the root of a tree: children are wrapped as they are
found) and its compressible responses go out gzip-compressed to clients that
accept it::

    from protocols.http.encoding import EncodingResourceWrapper, GzipEncoderFactory

    site = Site(EncodingResourceWrapper(root, [GzipEncoderFactory()]))

How it works: at render time the wrapper only looks at ``Accept-Encoding``
and puts an *encoder* on ``request.encoder``. Whether to compress depends on
the response (its type, status, existing encoding), which the resource
decides while rendering, so the encoder decides later, in
:meth:`_GzipEncoder.start`, which the server calls once, right before it
formats the response head::

    encoder.start(request) -> bool   adjust the headers and say yes, or say no
    encoder.encode(data)   -> bytes  body bytes in, compressed bytes out (maybe b"")
    encoder.finish()       -> bytes  the rest of the compressed stream

On yes the encoder has set ``Content-Encoding: gzip``, added
``Vary: Accept-Encoding``, removed ``Content-Length`` (so the server chunks the
body, or closes after it on HTTP/1.0), removed ``Accept-Ranges`` and weakened
a strong ``ETag`` (the compressed bytes are another representation). On no
the server drops the encoder and sends the body as it is. An encoder whose
``start`` was never called decides on its first ``encode``/``finish`` call,
which is just as good for a server that calls those before writing the head.

Not compressed: HEAD requests, 1xx/204/206/304 responses, responses that
already have a ``Content-Encoding`` or a ``Content-Range``, responses marked
``Cache-Control: no-transform``, types that do not compress (images other than
SVG, audio, video, archives) and ``text/event-stream`` (zlib holds small
writes back, which would stall a stream of events).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any, Final, Protocol

from .resource import IResource, RenderResult

__all__ = [
    "EncodingResourceWrapper",
    "GzipEncoderFactory",
    "IEncoderFactory",
    "acceptedCodings",
]

#: Types compressed besides ``text/*``; ``+json`` and ``+xml`` suffixes count too.
COMPRESSIBLE_TYPES: Final = frozenset({
    b"application/json", b"application/javascript", b"application/x-javascript",
    b"application/ecmascript", b"application/xml", b"application/wasm",
    b"application/x-yaml", b"application/yaml", b"application/toml",
    b"application/graphql", b"application/x-ndjson", b"application/vnd.ms-fontobject",
    b"font/ttf", b"font/otf", b"image/svg+xml", b"image/x-icon", b"image/bmp",
})
_NEVER: Final = frozenset({b"text/event-stream"})
_SKIP_CODES: Final = frozenset({204, 206, 304})


class IEncoderFactory(Protocol):
    """Makes an encoder for a request whose ``Accept-Encoding`` allows it (Twisted's name)."""

    def encoderForRequest(self, request: Any) -> Any:
        """An encoder (``start``/``encode``/``finish``), or None if the client refuses."""


def acceptedCodings(header: bytes | None) -> dict[bytes, float]:
    """Parse an ``Accept-Encoding`` value into ``{coding: q}`` (RFC 9110 §12.5.3).

    Codings are lower-cased; ``x-gzip`` counts as ``gzip``; an item with a
    malformed ``q`` is ignored. When a coding is listed twice the first wins.

    Example:
        >>> acceptedCodings(b"gzip;q=0.5, br, *;q=0")
        {b'gzip': 0.5, b'br': 1.0, b'*': 0.0}
    """
    result: dict[bytes, float] = {}
    for item in (header or b"").split(b","):
        coding, *params = (part.strip() for part in item.split(b";"))
        coding = coding.lower()
        if not coding:
            continue
        if coding == b"x-gzip":
            coding = b"gzip"
        q = 1.0
        for param in params:
            key, _, value = param.partition(b"=")
            if key.strip().lower() == b"q":
                try:
                    q = float(value.strip())
                except ValueError:
                    q = -1.0
                if not 0.0 <= q <= 1.0:
                    q = -1.0
        if q >= 0.0:
            result.setdefault(coding, q)
    return result


def _accepts(header: bytes | None, coding: bytes) -> bool:
    codings = acceptedCodings(header)
    q = codings.get(coding, codings.get(b"*", 0.0))
    return q > 0.0


def _media_type(request: Any) -> bytes:
    values = request.responseHeaders.getRawHeaders(b"content-type")
    if not values:
        return b""
    return bytes(values[-1].split(b";")[0].strip().lower())


def _compressible(request: Any) -> bool:
    """Whether the response being built could be compressed (method aside)."""
    code = request.code
    if code < 200 or code in _SKIP_CODES:
        return False
    headers = request.responseHeaders
    encodings = headers.getRawHeaders(b"content-encoding") or []
    if any(v.strip().lower() not in (b"", b"identity") for v in encodings):
        return False
    if headers.hasHeader(b"content-range"):
        return False
    for value in headers.getRawHeaders(b"cache-control") or []:
        if b"no-transform" in value.lower():
            return False
    media = _media_type(request)
    if media in _NEVER:
        return False
    return (media.startswith(b"text/") or media in COMPRESSIBLE_TYPES
            or media.endswith((b"+json", b"+xml")))


def _add_vary(request: Any) -> None:
    headers = request.responseHeaders
    values = headers.getRawHeaders(b"vary") or []
    tokens = {t.strip().lower() for v in values for t in v.split(b",")}
    if b"accept-encoding" not in tokens and b"*" not in tokens:
        headers.addRawHeader(b"Vary", b"Accept-Encoding")


class _GzipEncoder:
    """A streaming gzip encoder for one response; decides in :meth:`start`."""

    def __init__(self, request: Any, compressLevel: int) -> None:
        self._request = request
        self._level = compressLevel
        self._compressor: Any = None
        self._decided = False

    @property
    def active(self) -> bool:
        """True once :meth:`start` said yes (and until :meth:`finish`)."""
        return self._compressor is not None

    def start(self, request: Any = None) -> bool:
        """Decide, just before the head goes out; on yes, fix the headers."""
        if self._decided:
            return self._compressor is not None
        self._decided = True
        request = self._request if request is None else request
        if not _compressible(request):
            return False
        _add_vary(request)
        if request.method == b"HEAD":
            return False
        headers = request.responseHeaders
        headers.setRawHeaders(b"Content-Encoding", [b"gzip"])
        headers.removeHeader(b"content-length")
        headers.removeHeader(b"accept-ranges")  # ranges would address the identity bytes
        etags = headers.getRawHeaders(b"etag")
        if etags and not etags[-1].startswith(b"W/"):
            # The same strong validator on two representations would let a
            # cache combine bytes of both (RFC 9110 §8.8.1).
            headers.setRawHeaders(b"ETag", [b"W/" + etags[-1]])
        self._compressor = zlib.compressobj(self._level, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        return True

    def encode(self, data: bytes) -> bytes:
        """Compress ``data``; often returns b"" while zlib gathers a block."""
        if not self._decided:
            self.start()
        if self._compressor is None:
            return data
        out: bytes = self._compressor.compress(data)
        return out

    def finish(self) -> bytes:
        """The end of the gzip stream (b"" when not compressing)."""
        if not self._decided:
            self.start()
        compressor, self._compressor = self._compressor, None
        if compressor is None:
            return b""
        tail: bytes = compressor.flush()
        return tail


class _VaryOnly:
    """Installed when the client accepts no offered coding: adds ``Vary`` to
    compressible responses (their content did depend on Accept-Encoding),
    and never encodes."""

    def __init__(self, request: Any) -> None:
        self._request = request
        self._decided = False

    def start(self, request: Any = None) -> bool:
        """Add ``Vary: Accept-Encoding`` if the response could have been compressed."""
        if not self._decided:
            self._decided = True
            request = self._request if request is None else request
            if _compressible(request):
                _add_vary(request)
        return False

    def encode(self, data: bytes) -> bytes:
        """Pass ``data`` through."""
        self.start()
        return data

    def finish(self) -> bytes:
        """Nothing to add."""
        self.start()
        return b""


class GzipEncoderFactory:
    """Gzip for clients whose ``Accept-Encoding`` allows it (Twisted's name).

    Args:
        compressLevel: zlib level 1 (fast) to 9 (small). Default 6, zlib's own
            default: nearly the size of 9 for much less CPU on text.
    """

    def __init__(self, compressLevel: int = 6) -> None:
        if not 0 <= compressLevel <= 9:
            raise ValueError(f"compressLevel must be 0..9, not {compressLevel}")
        self.compressLevel = compressLevel

    def encoderForRequest(self, request: Any) -> _GzipEncoder | None:
        """An encoder when the request accepts gzip with q > 0, else None."""
        if not _accepts(request.getHeader(b"accept-encoding"), b"gzip"):
            return None
        return _GzipEncoder(request, self.compressLevel)


class EncodingResourceWrapper:
    """Wrap ``resource`` so its responses are encoded by the first factory
    the client accepts (Twisted's name and arguments).

    Children found under a wrapped resource are wrapped too, so wrapping the
    root compresses the whole site. A request that already has an encoder
    (from a wrapper higher up) keeps it.

    Args:
        resource: The resource (or tree root) to wrap.
        encoders: Encoder factories in order of preference.
    """

    def __init__(self, resource: IResource, encoders: Sequence[IEncoderFactory]) -> None:
        self._original = resource
        self._encoders = list(encoders)
        self.isLeaf: bool = resource.isLeaf

    def getChildWithDefault(self, path: bytes, request: Any) -> IResource:
        """The wrapped resource's child, wrapped the same way."""
        child = self._original.getChildWithDefault(path, request)
        return EncodingResourceWrapper(child, self._encoders)

    def putChild(self, path: bytes, child: IResource) -> None:
        """Add a child to the wrapped resource."""
        self._original.putChild(path, child)

    def render(self, request: Any) -> RenderResult:
        """Install an encoder for ``request``, then render the wrapped resource."""
        if getattr(request, "encoder", None) is None:
            request.encoder = self._choose(request)
        return self._original.render(request)

    def _choose(self, request: Any) -> Any:
        for factory in self._encoders:
            encoder = factory.encoderForRequest(request)
            if encoder is not None:
                return encoder
        return _VaryOnly(request)

    def __repr__(self) -> str:
        return f"EncodingResourceWrapper({self._original!r}, {self._encoders!r})"

