"""What ``system.methodHelp`` and ``system.methodSignature`` say about a function.

Signatures come from type annotations (the stdlib server has none to offer
and answers ``"signatures not supported"``); a Twisted-style ``signature``
attribute on the function (a list of lists of type names) wins when present,
as does a ``help`` attribute for the help text.

Example:
    >>> def add(a: int, b: int) -> int:
    ...     "Add two integers."
    ...     return a + b
    >>> signature_of(add)
    [['int', 'int', 'int']]
    >>> help_of(add)
    'Add two integers.'
"""

from __future__ import annotations

import datetime
import inspect
import types
import typing
import xmlrpc.client
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

__all__ = ["SIGNATURES_NOT_SUPPORTED", "help_of", "signature_of", "xmlrpc_type_name"]

SIGNATURES_NOT_SUPPORTED: Final = "signatures not supported"
"""The stdlib's answer for a method without annotations (kept for its clients)."""

# Checked in order: bool before int, since bool is a subclass of int.
_TYPE_NAMES: Final[tuple[tuple[type, str], ...]] = (
    (bool, "boolean"),
    (int, "int"),
    (float, "double"),
    (str, "string"),
    (bytes, "base64"),
    (bytearray, "base64"),
    (xmlrpc.client.Binary, "base64"),
    (datetime.datetime, "dateTime.iso8601"),
    (xmlrpc.client.DateTime, "dateTime.iso8601"),
    (list, "array"),
    (tuple, "array"),
    (dict, "struct"),
    (type(None), "nil"),
)

# Annotations that could not be evaluated stay strings; these are read by name.
_STRING_NAMES: Final = {
    "bool": "boolean", "int": "int", "float": "double", "str": "string",
    "bytes": "base64", "Binary": "base64", "xmlrpc.client.Binary": "base64",
    "datetime": "dateTime.iso8601", "datetime.datetime": "dateTime.iso8601",
    "DateTime": "dateTime.iso8601", "list": "array", "tuple": "array", "dict": "struct",
    "None": "nil",
}


def xmlrpc_type_name(annotation: Any) -> str:
    """The XML-RPC type name for a Python annotation, ``"undef"`` when there is none.

    Example:
        >>> xmlrpc_type_name(list[int]), xmlrpc_type_name(dict[str, int])
        ('array', 'struct')
        >>> xmlrpc_type_name(int | str)
        'undef'
    """
    if annotation is inspect.Parameter.empty or annotation is Any:
        return "undef"
    if annotation is None:
        return "nil"
    if isinstance(annotation, str):
        base = annotation.split("[", 1)[0].strip()
        return _STRING_NAMES.get(base, "undef")
    origin = typing.get_origin(annotation)
    if origin is not None and not isinstance(annotation, types.UnionType) \
            and origin is not typing.Union:
        annotation = origin
    if isinstance(annotation, type):
        for kind, name in _TYPE_NAMES:
            if issubclass(annotation, kind):
                return name
        if issubclass(annotation, Mapping):
            return "struct"
        if issubclass(annotation, Sequence):
            return "array"
    return "undef"


def signature_of(function: Callable[..., Any]) -> list[list[str]] | str:
    """``[[return, arg1, arg2, ...]]`` from annotations, or ``"signatures not supported"``.

    Only positional parameters count (XML-RPC has no keywords); ``*args``
    cannot be described and is left out.

    Example:
        >>> signature_of(lambda x: x)
        'signatures not supported'
    """
    declared = getattr(function, "signature", None)
    if isinstance(declared, list):
        return declared
    try:
        sig = inspect.signature(function)
    except (TypeError, ValueError):
        return SIGNATURES_NOT_SUPPORTED
    try:
        hints = typing.get_type_hints(function)
    except Exception:
        # Names the annotations use are not importable here: read them as text.
        hints = dict(getattr(function, "__annotations__", {}) or {})
    if not hints:
        return SIGNATURES_NOT_SUPPORTED
    params = [p for p in sig.parameters.values()
              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    names = [xmlrpc_type_name(hints.get("return", inspect.Parameter.empty))]
    names.extend(xmlrpc_type_name(hints.get(p.name, inspect.Parameter.empty)) for p in params)
    return [names]


def help_of(function: Callable[..., Any]) -> str:
    """The help text: a ``help`` attribute (Twisted style), else the docstring.

    Example:
        >>> help_of(lambda: None)
        ''
    """
    declared = getattr(function, "help", None)
    if isinstance(declared, str):
        return declared
    return inspect.getdoc(function) or ""
