"""Safe XML-RPC (un)marshalling shared by the server and the client; no I/O.

The values themselves are converted by the standard library's
:mod:`xmlrpc.client` (``dumps`` and its ``Unmarshaller``); what this module
adds is the hardening the standard library leaves out when it reads
untrusted bytes:

- a limit on the body size, and on the size a gzip body inflates to
  (:func:`decompress`), so a small "zip bomb" cannot exhaust memory;
- no ``<!DOCTYPE`` and no ``<!ENTITY``: DTDs are refused outright, which
  rules out entity expansion ("billion laughs") and external entities;
- a limit on how deeply arrays and structs nest (and on element depth).

Errors found in a document raise :class:`MarshalError`, which carries the
fault code of the fault code interoperability specification that describes
it; the server turns it into a fault response, the client into a failure.

Example:
    >>> body = dumps_request("add", (1, 2))
    >>> loads_request(body, XMLRPCLimits())
    ((1, 2), 'add')
    >>> loads_response(dumps_response(3), XMLRPCLimits())
    3
"""

from __future__ import annotations

import dataclasses
import xmlrpc.client
import zlib
from typing import Any, Final, NoReturn
from xml.parsers import expat

__all__ = [
    "APPLICATION_ERROR",
    "FAILURE",
    "INTERNAL_ERROR",
    "INVALID_CHARACTER",
    "INVALID_PARAMS",
    "INVALID_XMLRPC",
    "METHOD_NOT_FOUND",
    "NOT_FOUND",
    "PARSE_ERROR",
    "SYSTEM_ERROR",
    "TRANSPORT_ERROR",
    "UNSUPPORTED_ENCODING",
    "Fault",
    "Limits",
    "MarshalError",
    "PayloadTooLarge",
    "XMLRPCLimits",
    "decompress",
    "dumps_fault",
    "dumps_request",
    "dumps_response",
    "loads_request",
    "loads_response",
]

Fault = xmlrpc.client.Fault
"""The stdlib's fault exception: ``Fault(faultCode, faultString)``."""

# Twisted's codes (twisted.web.xmlrpc), kept so Twisted clients keep working.
NOT_FOUND: Final = 8001
"""No procedure of that name (Twisted's code)."""
FAILURE: Final = 8002
"""The procedure failed unexpectedly (Twisted's code); no internals are sent."""

# The fault code interoperability specification (xmlrpc-epi), version 20010516.
PARSE_ERROR: Final = -32700
"""Parse error: not well formed XML (or refused: DTD, entity, too deep)."""
UNSUPPORTED_ENCODING: Final = -32701
"""Parse error: unsupported encoding."""
INVALID_CHARACTER: Final = -32702
"""Parse error: invalid character for encoding."""
INVALID_XMLRPC: Final = -32600
"""Server error: well formed XML that is not a valid XML-RPC call."""
METHOD_NOT_FOUND: Final = -32601
"""Server error: requested method not found (this server uses 8001 instead)."""
INVALID_PARAMS: Final = -32602
"""Server error: invalid method parameters (wrong number or kind)."""
INTERNAL_ERROR: Final = -32603
"""Server error: internal XML-RPC error."""
APPLICATION_ERROR: Final = -32500
"""Application error."""
SYSTEM_ERROR: Final = -32400
"""System error."""
TRANSPORT_ERROR: Final = -32300
"""Transport error."""


@dataclasses.dataclass(frozen=True)
class XMLRPCLimits:
    """How much untrusted XML-RPC input is accepted.

    Attributes:
        max_body: Largest body accepted as received (bytes), or None.
        max_decompressed: Largest size a compressed body may inflate to.
        max_depth: Deepest nesting of arrays and structs in one value.

    Example:
        >>> XMLRPCLimits(max_depth=8).max_depth
        8
    """

    max_body: int | None = 8 * 1024 * 1024
    max_decompressed: int = 32 * 1024 * 1024
    max_depth: int = 64

    @property
    def max_element_depth(self) -> int:
        """XML element depth allowed: each container level costs three elements."""
        return 3 * self.max_depth + 8


Limits = XMLRPCLimits
"""Short alias of :class:`XMLRPCLimits`."""


class MarshalError(ValueError):
    """A document was refused or could not be read as XML-RPC.

    Attributes:
        faultCode: The interoperability fault code describing the problem.
        faultString: A message that is safe to send back to the peer.

    Example:
        >>> MarshalError(PARSE_ERROR, "not well formed").toFault().faultCode
        -32700
    """

    def __init__(self, faultCode: int, faultString: str) -> None:
        super().__init__(faultCode, faultString)
        self.faultCode = faultCode
        self.faultString = faultString

    def __str__(self) -> str:
        return f"{self.faultString} ({self.faultCode})"

    def toFault(self) -> xmlrpc.client.Fault:
        """The fault to answer with."""
        return xmlrpc.client.Fault(self.faultCode, self.faultString)


class PayloadTooLarge(MarshalError):
    """A body (or what it inflates to) is larger than the limits allow.

    The server answers it with HTTP 413 rather than a fault: the document was
    never read, so there is no call to answer.
    """

    def __init__(self, faultString: str) -> None:
        super().__init__(PARSE_ERROR, faultString)


def decompress(body: bytes, encoding: str, limits: XMLRPCLimits) -> bytes:
    """Inflate a ``gzip`` or ``deflate`` body, never beyond ``limits.max_decompressed``.

    ``identity`` (or an empty encoding) returns ``body`` unchanged.

    Raises:
        PayloadTooLarge: The body inflates beyond the limit.
        MarshalError: Unknown encoding (-32701) or corrupt data (-32700).

    Example:
        >>> import gzip
        >>> decompress(gzip.compress(b"abc"), "gzip", XMLRPCLimits())
        b'abc'
    """
    kind = encoding.strip().lower()
    if kind in ("", "identity"):
        return body
    if kind in ("gzip", "x-gzip"):
        wbits = 16 + zlib.MAX_WBITS
    elif kind == "deflate":
        wbits = zlib.MAX_WBITS
    else:
        raise MarshalError(UNSUPPORTED_ENCODING, f"unsupported content encoding {kind!r}")
    limit = limits.max_decompressed
    out: list[bytes] = []
    total = 0
    data = body
    try:
        # A loop because gzip allows several members one after the other.
        while data:
            inflater = zlib.decompressobj(wbits)
            # max_length bounds the memory used whatever the ratio: one byte
            # past the limit is enough to know the body is too large.
            chunk = inflater.decompress(data, limit - total + 1)
            total += len(chunk)
            if total > limit or inflater.unconsumed_tail:
                raise PayloadTooLarge(f"body inflates beyond {limit} bytes")
            out.append(chunk)
            if not inflater.eof:
                raise MarshalError(PARSE_ERROR, "truncated compressed body")
            data = inflater.unused_data
    except zlib.error as e:
        raise MarshalError(PARSE_ERROR, "corrupt compressed body") from e
    return b"".join(out)


class _Refused(Exception):
    """Raised inside an expat handler to stop parsing with a MarshalError."""

    def __init__(self, error: MarshalError) -> None:
        super().__init__(error)
        self.error = error


def _refuse_dtd(*args: object) -> NoReturn:
    raise _Refused(MarshalError(PARSE_ERROR, "DTDs and entity declarations are not accepted"))


_CONTAINERS: Final = frozenset({"array", "struct"})


class _CheckedUnmarshaller(xmlrpc.client.Unmarshaller):
    """The stdlib Unmarshaller with the root and depth checks in its own handlers.

    expat calls ``start`` and ``end`` once per element. Checking in wrappers
    that then call the Unmarshaller's handlers made that two Python calls per
    event, about a quarter of a small call's parse time; here the check and
    the Unmarshaller's bookkeeping share one call. ``start`` and ``end`` do
    what ``xmlrpc.client.Unmarshaller``'s do (namespace prefixes dropped,
    container marks, the value flag, dispatch on the end tag), after the
    checks, in the same order as before. The text buffer is one list for the
    whole document, emptied at each start tag, so that expat can append to it
    directly (``data`` is never called).
    """

    def __init__(self, limits: XMLRPCLimits, root: str, use_datetime: bool,
                 use_builtin_types: bool) -> None:
        super().__init__(use_datetime=use_datetime, use_builtin_types=use_builtin_types)
        self.root = root
        self.first: str | None = None
        self._depth = 0
        self._containers = 0
        self._max_containers = limits.max_depth
        self._max_elements = limits.max_element_depth

    def start(self, tag: str, attrs: Any) -> None:
        """An element opens: check, then note containers and values."""
        if self.first is None:
            self.first = tag
            if tag != self.root:
                raise _Refused(MarshalError(INVALID_XMLRPC, f"expected <{self.root}>"))
        depth = self._depth = self._depth + 1
        if tag in _CONTAINERS:
            self._containers += 1
        if self._containers > self._max_containers or depth > self._max_elements:
            raise _Refused(MarshalError(PARSE_ERROR, "values nested too deeply"))
        name = tag.rpartition(":")[2] if ":" in tag else tag
        if name == "array" or name == "struct":
            self._marks.append(len(self._stack))
        # Emptied, not replaced: expat appends to this very list (see _parse).
        self._data.clear()
        if self._value and name not in self.dispatch:
            raise xmlrpc.client.ResponseError(f"unknown tag {name!r}")
        self._value = name == "value"

    def end(self, tag: str) -> None:
        """An element closes: convert what it held."""
        self._depth -= 1
        if tag in _CONTAINERS:
            self._containers -= 1
        handler = self.dispatch.get(tag)
        if handler is None:
            if ":" not in tag:
                return  # an unknown element: ignored, as the stdlib does
            handler = self.dispatch.get(tag.rpartition(":")[2])
            if handler is None:
                return
        handler(self, "".join(self._data))


def _parse(body: bytes, limits: XMLRPCLimits, root: str, use_datetime: bool,
           use_builtin_types: bool) -> tuple[xmlrpc.client.Unmarshaller, str | None]:
    """Feed ``body`` through expat into the stdlib Unmarshaller, with the checks."""
    if limits.max_body is not None and len(body) > limits.max_body:
        raise PayloadTooLarge(f"body larger than {limits.max_body} bytes")
    target = _CheckedUnmarshaller(limits, root, use_datetime, use_builtin_types)
    # expat hands out str already: tell the Unmarshaller not to decode again.
    target.xml("", None)
    parser = expat.ParserCreate(None, None)
    # No DTD at all: no internal entities to expand, no external ones to fetch.
    parser.StartDoctypeDeclHandler = _refuse_dtd
    parser.EntityDeclHandler = _refuse_dtd
    parser.UnparsedEntityDeclHandler = _refuse_dtd
    parser.ExternalEntityRefHandler = _refuse_dtd
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.buffer_text = True
    parser.StartElementHandler = target.start
    parser.EndElementHandler = target.end
    # Text goes straight into the Unmarshaller's buffer, a C call: most text
    # is the whitespace between elements, a Python call each otherwise.
    parser.CharacterDataHandler = target._data.append
    try:
        parser.Parse(body, True)
    except _Refused as e:
        raise e.error from None
    except expat.ExpatError as e:
        raise MarshalError(PARSE_ERROR, f"not well formed: {expat.ErrorString(e.code)}") from None
    except (ValueError, TypeError, KeyError, IndexError, OverflowError, AttributeError,
            xmlrpc.client.ResponseError) as e:
        # The Unmarshaller found a value it cannot read (bad int, bad date...).
        raise MarshalError(INVALID_XMLRPC, f"invalid value: {type(e).__name__}") from e
    return target, target.first


def loads_request(body: bytes, limits: XMLRPCLimits, use_datetime: bool = False,
                  use_builtin_types: bool = False) -> tuple[tuple[Any, ...], str]:
    """Read a ``<methodCall>`` from untrusted bytes: ``(params, method_name)``.

    Raises:
        PayloadTooLarge: ``body`` is larger than ``limits.max_body``.
        MarshalError: Not well formed or refused (-32700), or not a valid
            call (-32600).

    Example:
        >>> loads_request(dumps_request("ping", ()), XMLRPCLimits())
        ((), 'ping')
    """
    target, _ = _parse(body, limits, "methodCall", use_datetime, use_builtin_types)
    try:
        params = target.close()
    except (xmlrpc.client.ResponseError, xmlrpc.client.Fault, TypeError):
        raise MarshalError(INVALID_XMLRPC, "not a complete XML-RPC call") from None
    method = target.getmethodname()
    if not isinstance(method, str) or not method:
        raise MarshalError(INVALID_XMLRPC, "the call has no method name")
    return params, method


def loads_response(body: bytes, limits: XMLRPCLimits, use_datetime: bool = False,
                   use_builtin_types: bool = False) -> Any:
    """Read a ``<methodResponse>`` from untrusted bytes and return its value.

    Raises:
        Fault: The response is a fault (its code and string as sent).
        PayloadTooLarge: ``body`` is larger than ``limits.max_body``.
        MarshalError: Not well formed, refused, or not a valid response.

    Example:
        >>> loads_response(dumps_fault(Fault(4, "no")), XMLRPCLimits())
        Traceback (most recent call last):
        ...
        xmlrpc.client.Fault: <Fault 4: 'no'>
    """
    target, _ = _parse(body, limits, "methodResponse", use_datetime, use_builtin_types)
    try:
        params = target.close()
    except xmlrpc.client.Fault as fault:
        if not isinstance(fault.faultCode, int) or not isinstance(fault.faultString, str):
            raise MarshalError(INVALID_XMLRPC, "malformed fault") from None
        raise
    except (xmlrpc.client.ResponseError, TypeError):
        raise MarshalError(INVALID_XMLRPC, "not a complete XML-RPC response") from None
    if len(params) != 1:
        raise MarshalError(INVALID_XMLRPC, "a response must hold exactly one value")
    return params[0]


def dumps_request(method: str, params: tuple[Any, ...], allow_none: bool = False,
                  encoding: str | None = None) -> bytes:
    """Marshal a call to ``method`` with ``params`` (stdlib ``dumps``).

    Example:
        >>> dumps_request("f", (None,), allow_none=True).count(b"<nil/>")
        1
    """
    text = xmlrpc.client.dumps(params, method, encoding=encoding, allow_none=allow_none)
    return text.encode(encoding or "utf-8", "xmlcharrefreplace")


def dumps_response(value: Any, allow_none: bool = False, encoding: str | None = None) -> bytes:
    """Marshal a successful response holding ``value``.

    Raises:
        TypeError: ``value`` cannot be marshalled (e.g. None without allow_none).
        OverflowError: An int does not fit in XML-RPC's 32 bits.

    Example:
        >>> b"<int>3</int>" in dumps_response(3)
        True
    """
    if type(value) is int and _MININT <= value <= _MAXINT and encoding is None:
        # The commonest answer, byte for byte what the stdlib writes for it,
        # without building a Marshaller.
        return _INT_RESPONSE % value
    text = xmlrpc.client.dumps((value,), methodresponse=True, encoding=encoding,
                               allow_none=allow_none)
    return text.encode(encoding or "utf-8", "xmlcharrefreplace")


_MININT: Final = xmlrpc.client.MININT
_MAXINT: Final = xmlrpc.client.MAXINT
_INT_RESPONSE: Final = (b"<?xml version='1.0'?>\n<methodResponse>\n<params>\n<param>\n"
                        b"<value><int>%d</int></value>\n</param>\n</params>\n"
                        b"</methodResponse>\n")


def dumps_fault(fault: xmlrpc.client.Fault, encoding: str | None = None) -> bytes:
    """Marshal a fault response.

    Example:
        >>> b"<int>8001</int>" in dumps_fault(Fault(8001, "nope"))
        True
    """
    text = xmlrpc.client.dumps(fault, methodresponse=True, encoding=encoding)
    return text.encode(encoding or "utf-8", "xmlcharrefreplace")
