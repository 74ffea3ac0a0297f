"""Endpoint descriptions (Twisted's string syntax) to a type and parameters; no I/O.

``parse("tcp:8080:interface=127.0.0.1", "server")`` gives
``("tcp", {"port": 8080, "interface": "127.0.0.1", "backlog": 50})``.
The syntax: fields separated by ``:``, the first naming the type; a field
``key=value`` is a named parameter, any other is positional; a backslash
makes the next character literal; a value in square brackets is taken
literally (for IPv6 addresses). ``reactor.endpoints`` documents each type's
parameters and builds the endpoints.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CLIENT_SPECS", "SERVER_SPECS", "parse"]


def _fields(description: str) -> list[tuple[str | None, str]]:
    """Split a description into (key or None, value) fields, honouring escapes."""
    fields: list[tuple[str | None, str]] = []
    key: str | None = None
    chars: list[str] = []
    value_start = True  # a "[" here opens a literal bracketed value
    i, n = 0, len(description)
    while i < n:
        c = description[i]
        if c == "\\":
            if i + 1 == n:
                raise ValueError(f"trailing backslash in {description!r}")
            chars.append(description[i + 1])
            i += 2
        elif c == "[" and value_start:
            end = description.find("]", i + 1)
            if end < 0:
                raise ValueError(f"'[' without its ']' in {description!r}")
            chars.append(description[i + 1:end])
            i = end + 1
        elif c == ":":
            fields.append((key, "".join(chars)))
            key, chars = None, []
            value_start = True
            i += 1
            continue
        elif c == "=" and key is None:
            key, chars = "".join(chars), []
            if not key:
                raise ValueError(f"a parameter without a name ('=' at the start of a "
                                 f"field) in {description!r}")
            value_start = True
            i += 1
            continue
        else:
            chars.append(c)
            i += 1
        value_start = False
    fields.append((key, "".join(chars)))
    return fields


def _split(description: str) -> tuple[str, list[str], dict[str, str]]:
    """The endpoint type, positional values and named values of a description."""
    if not isinstance(description, str):
        raise TypeError(f"an endpoint description is a str, not {type(description).__name__}")
    if not description.strip():
        raise ValueError("empty endpoint description")
    fields = _fields(description)
    first_key, kind = fields[0]
    if first_key is not None or not kind:
        raise ValueError(f"an endpoint description starts with its type, as in "
                         f"'tcp:8080', not {description!r}")
    args: list[str] = []
    kwargs: dict[str, str] = {}
    for key, value in fields[1:]:
        if key is None:
            args.append(value)
        elif key in kwargs:
            raise ValueError(f"parameter {key!r} given twice in {description!r}")
        else:
            kwargs[key] = value
    return kind, args, kwargs


_DIGITS = re.compile(r"[0-9]+")
# An unbracketed IPv6 address (its colons split it into several fields).
_IPV6 = re.compile(r"(^|[:=])[0-9A-Fa-f]{0,4}::")


def _number(name: str, text: str) -> int:
    if not _DIGITS.fullmatch(text):
        raise ValueError(f"{name} must be a number, got {text!r}")
    return int(text)


def _port(name: str, text: str) -> int:
    value = _number(name, text)
    if value > 65535:
        raise ValueError(f"{name} must be between 0 and 65535, got {value}")
    return value


def _positive(name: str, text: str) -> int:
    value = _number(name, text)
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}")
    return value


def _octal(name: str, text: str) -> int:
    try:
        value = int(text, 8)
    except ValueError:
        value = -1
    if not 0 <= value <= 0o7777:
        raise ValueError(f"{name} must be an octal file mode such as 660, got {text!r}")
    return value


def _flag(name: str, text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name} must be 0 or 1, got {text!r}")


def _seconds(name: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0 or value == float("inf"):
        raise ValueError(f"{name} must be a number of seconds, got {text!r}")
    return value


def _text(name: str, text: str) -> str:
    if not text:
        raise ValueError(f"{name} must not be empty")
    return text


def _any_text(name: str, text: str) -> str:
    return text


@dataclass(frozen=True)
class _Spec:
    """The parameters one endpoint type takes in a string."""

    positional: tuple[str, ...]
    params: dict[str, Callable[[str, str], Any]]  # name -> converter(name, text)
    required: tuple[str, ...]
    example: str
    defaults: dict[str, Any] = field(default_factory=dict)

    def bind(self, kind: str, args: list[str], kwargs: dict[str, str],
             description: str) -> dict[str, Any]:
        if len(args) > len(self.positional):
            extra = args[len(self.positional)]
            hint = (f"a named parameter needs 'name=value', as in {self.example!r}"
                    if not _IPV6.search(description) else
                    "an IPv6 address goes in square brackets, as in interface=[::1]")
            raise ValueError(f"unexpected value {extra!r} for {kind} in {description!r} "
                             f"({hint})")
        raw = dict(zip(self.positional, args, strict=False))
        for key, value in kwargs.items():
            if key not in self.params:
                close = difflib.get_close_matches(key, list(self.params), n=1)
                also = f"did you mean {close[0]!r}?" if close else (
                    "known: " + ", ".join(self.params))
                raise ValueError(f"unknown parameter {key!r} for {kind} ({also})")
            if key in raw:
                raise ValueError(f"{key} given twice (by position and as {key}=) "
                                 f"in {description!r}")
            raw[key] = value
        for name in self.required:
            if name not in raw:
                article = "an" if name[0] in "aeiou" else "a"
                raise ValueError(f"{kind} needs {article} {name}, as in {self.example!r}")
        bound = dict(self.defaults)
        for name, value in raw.items():
            bound[name] = self.params[name](name, value)
        return bound


_Converter = Callable[[str, str], Any]

_INTERFACE: dict[str, _Converter] = {"interface": _any_text, "backlog": _positive}

SERVER_SPECS: dict[str, _Spec] = {
    "tcp": _Spec(("port",), {"port": _port, **_INTERFACE}, ("port",),
                 "tcp:8080:interface=127.0.0.1", {"interface": "", "backlog": 50}),
    "tcp6": _Spec(("port",), {"port": _port, **_INTERFACE}, ("port",),
                  "tcp6:8080:interface=[::1]", {"interface": "::", "backlog": 50}),
    "unix": _Spec(("address",), {"address": _text, "mode": _octal, "backlog": _positive,
                                 "lockfile": _flag}, ("address",),
                  "unix:/run/app.sock:mode=660",
                  {"mode": 0o666, "backlog": 50, "lockfile": True}),
    "ssl": _Spec(("port",), {"port": _port, "certKey": _text, "privateKey": _text,
                             "extraCertChain": _text, "dhParameters": _text, **_INTERFACE},
                 ("port",), "ssl:8443:certKey=cert.pem:privateKey=key.pem",
                 {"interface": "", "backlog": 50}),
    "udp": _Spec(("port",), {"port": _port, "interface": _any_text,
                             "maxPacketSize": _positive}, ("port",),
                 "udp:8017:interface=127.0.0.1", {"interface": "", "maxPacketSize": 8192}),
}

_CLIENT_TCP: dict[str, _Converter] = {"host": _text, "port": _port, "timeout": _seconds,
                                      "bindAddress": _text}

CLIENT_SPECS: dict[str, _Spec] = {
    "tcp": _Spec(("host", "port"), _CLIENT_TCP, ("host", "port"), "tcp:example.com:80",
                 {"timeout": 30.0}),
    "tcp6": _Spec(("host", "port"), _CLIENT_TCP, ("host", "port"), "tcp6:[::1]:80",
                  {"timeout": 30.0}),
    "unix": _Spec(("path",), {"path": _text, "timeout": _seconds, "lockfile": _flag,
                              "checkPID": _flag}, ("path",), "unix:/run/app.sock",
                  {"timeout": 30.0}),
    "ssl": _Spec(("host", "port"), {**_CLIENT_TCP, "trustRoots": _text, "caCertsDir": _text,
                                    "certKey": _text, "privateKey": _text},
                 ("host", "port"), "ssl:example.com:443", {"timeout": 30.0}),
}


def parse(description: str, role: str) -> tuple[str, dict[str, Any]]:
    """The type of a description and its parameters, converted and with defaults.

    Args:
        description: e.g. ``"tcp:8080:interface=127.0.0.1"``.
        role: "server" or "client" (they take different types and parameters).

    Raises:
        ValueError: the message names the bad part.
    """
    specs = SERVER_SPECS if role == "server" else CLIENT_SPECS
    kind, args, kwargs = _split(description)
    spec = specs.get(kind)
    if spec is None:
        raise ValueError(f"unknown endpoint type {kind!r} in {description!r} "
                         f"({role} types: {', '.join(specs)})")
    return kind, spec.bind(kind, args, kwargs, description)
