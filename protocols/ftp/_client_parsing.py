"""Sans-I/O parts of the FTP client: replies, errors, listings (see ``client``).

Nothing here does I/O, so it is tested with bytes and strings alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

__all__ = [
    "ENCODING",
    "FTPCommandError",
    "FTPEntry",
    "FTPError",
    "FTPProtocolError",
    "Reply",
    "ReplyParser",
    "parseListLine",
    "parseMlsdLine",
]

#: Paths and names travel as UTF-8 (RFC 2640); bytes that are not UTF-8 round-trip.
ENCODING = "utf-8"
_ERRORS = "surrogateescape"


# -- errors -------------------------------------------------------------------------------


class FTPError(Exception):
    """Base class of the FTP client's errors."""


class FTPCommandError(FTPError):
    """The server refused a command (a 4xx or 5xx reply, or one out of place).

    Attributes:
        code: The three-digit reply code, e.g. 550.
        text: The reply's text (lines joined by newlines, codes removed).
        lines: The reply's raw lines, decoded.
    """

    def __init__(self, code: int, lines: list[str]) -> None:
        self.code = code
        self.lines = lines
        self.text = "\n".join(_strip_code(line, code) for line in lines)
        super().__init__(f"{code} {self.text}")


class FTPProtocolError(FTPError):
    """The server sent something this client cannot understand."""


def _strip_code(line: str, code: int) -> str:
    prefix = str(code)
    if line.startswith(prefix) and len(line) >= 4 and line[3] in " -":
        return line[4:]
    return line.lstrip(" ")


# -- replies (sans I/O) -------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """One complete server reply.

    Attributes:
        code: The three-digit reply code.
        lines: Every line of the reply, decoded, as received.
    """

    code: int
    lines: list[str]

    @property
    def text(self) -> str:
        """The reply's text without the codes, lines joined by newlines."""
        return "\n".join(_strip_code(line, self.code) for line in self.lines)

    @property
    def preliminary(self) -> bool:
        """True for a 1xx reply: another reply follows."""
        return 100 <= self.code < 200

    def error(self) -> FTPCommandError:
        """This reply as an exception."""
        return FTPCommandError(self.code, self.lines)


_FIRST_LINE = re.compile(r"^([1-5]\d\d)([ -]?)")


class ReplyParser:
    """Turn received bytes into complete replies, multi-line ones included (RFC 959 4.2).

    A multi-line reply starts with ``123-`` and ends with a line starting
    ``123 `` (the same code and a space); lines between are taken as they are.
    Lines end with CRLF, or a bare LF from careless servers.

    Attributes:
        MAX_LINE: Longest line accepted; a longer one is a protocol error.
    """

    MAX_LINE = 65536

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._lines: list[str] = []
        self._code: int | None = None

    def feed(self, data: bytes) -> list[Reply]:
        """Add received bytes; return the replies they completed.

        Raises:
            FTPProtocolError: a line is too long or does not start with a code.
        """
        self._buffer += data
        replies: list[Reply] = []
        start = 0
        while True:
            end = self._buffer.find(b"\n", start)
            if end < 0:
                break
            raw = bytes(self._buffer[start:end]).rstrip(b"\r")
            start = end + 1
            reply = self._line(raw.decode(ENCODING, _ERRORS))
            if reply is not None:
                replies.append(reply)
        del self._buffer[:start]
        if len(self._buffer) > self.MAX_LINE:
            raise FTPProtocolError("reply line too long")
        return replies

    def _line(self, line: str) -> Reply | None:
        if self._code is None:
            match = _FIRST_LINE.match(line)
            if match is None:
                raise FTPProtocolError(f"not an FTP reply: {line[:80]!r}")
            code = int(match.group(1))
            if match.group(2) == "-":
                self._code = code
                self._lines = [line]
                return None
            return Reply(code, [line])
        self._lines.append(line)
        if len(self._lines) > 10000:
            raise FTPProtocolError("multi-line reply too long")
        if line.startswith(f"{self._code} "):
            reply = Reply(self._code, self._lines)
            self._code, self._lines = None, []
            return reply
        return None


# -- listings -----------------------------------------------------------------------------


@dataclass
class FTPEntry:
    """One entry of a directory listing.

    Attributes:
        name: The entry's name.
        type: ``"file"``, ``"dir"``, ``"link"``, ``"cdir"``/``"pdir"`` (MLSD's ``.``
            and ``..``), another MLSD type, or None when the line was not understood.
        size: Size in bytes, when the listing gave it.
        facts: MLSD facts (lower-case names), empty for LIST.
        target: A symbolic link's target, from LIST.
        raw: The line as received.
    """

    name: str
    type: str | None = None
    size: int | None = None
    facts: dict[str, str] = field(default_factory=dict)
    target: str | None = None
    raw: str = ""


def parseMlsdLine(line: str) -> FTPEntry:
    """Parse one MLSD line, ``fact=value;fact=value; name`` (RFC 3659 7.2).

    Raises:
        FTPProtocolError: the line has no name part.
    """
    facts_text, sep, name = line.partition(" ")
    if not sep:
        raise FTPProtocolError(f"bad MLSD line: {line[:80]!r}")
    facts: dict[str, str] = {}
    for fact in facts_text.split(";"):
        key, eq, value = fact.partition("=")
        if eq:
            facts[key.lower()] = value
    size_text = facts.get("size", facts.get("sizd"))
    size = int(size_text) if size_text is not None and size_text.isdigit() else None
    kind = facts.get("type")
    return FTPEntry(name=name, type=kind.lower() if kind else None, size=size,
                    facts=facts, raw=line)


_UNIX_LINE = re.compile(
    r"^(?P<mode>[-dlbcps][-rwxsStTl]{9})\S*\s+.*?\s(?P<size>\d+)\s+"
    r"(?P<date>[A-Za-z]{3}\s+\d{1,2}\s+(?:\d{1,2}:\d{2}|\d{4}))\s(?P<name>.+)$")
_DOS_LINE = re.compile(
    r"^\d{2}-\d{2}-\d{2,4}\s+\d{1,2}:\d{2}\s*[AaPp][Mm]\s+(?P<size><DIR>|\d+)\s+(?P<name>.+)$")
_UNIX_TYPES = {"-": "file", "d": "dir", "l": "link"}


def parseListLine(line: str) -> FTPEntry | None:
    """Parse one LIST line in ``ls -l`` (Unix) or DOS format.

    Returns:
        The entry; one with ``type=None`` and the whole line as its name when
        the format is unknown; None for a ``total N`` line.
    """
    if re.match(r"^total\s+\d+\s*$", line):
        return None
    match = _UNIX_LINE.match(line)
    if match is not None:
        kind = _UNIX_TYPES.get(match.group("mode")[0], "other")
        name, target = match.group("name"), None
        if kind == "link" and " -> " in name:
            name, target = name.split(" -> ", 1)
        return FTPEntry(name=name, type=kind, size=int(match.group("size")),
                        target=target, raw=line)
    match = _DOS_LINE.match(line)
    if match is not None:
        size_text = match.group("size")
        if size_text == "<DIR>":
            return FTPEntry(name=match.group("name"), type="dir", raw=line)
        return FTPEntry(name=match.group("name"), type="file", size=int(size_text),
                        raw=line)
    return FTPEntry(name=line, raw=line)


def _parse_pwd(reply: Reply) -> str:
    """The quoted path of a 257 reply; a doubled quote inside stands for one."""
    text = reply.text
    start = text.find('"')
    if start < 0:
        raise FTPProtocolError(f"no path in reply: {text[:80]!r}")
    chars: list[str] = []
    i = start + 1
    while i < len(text):
        if text[i] == '"':
            if text[i + 1:i + 2] == '"':
                chars.append('"')
                i += 2
                continue
            return "".join(chars)
        chars.append(text[i])
        i += 1
    raise FTPProtocolError(f"unterminated path in reply: {text[:80]!r}")


def _parse_epsv(reply: Reply) -> int:
    match = re.search(r"\((.)\1\1(\d+)\1\)", reply.text)
    if match is None:
        raise FTPProtocolError(f"bad EPSV reply: {reply.text[:80]!r}")
    return int(match.group(2))


def _parse_pasv(reply: Reply) -> int:
    match = re.search(r"(\d+),\s*(\d+),\s*(\d+),\s*(\d+),\s*(\d+),\s*(\d+)", reply.text)
    if match is None:
        raise FTPProtocolError(f"bad PASV reply: {reply.text[:80]!r}")
    high, low = int(match.group(5)), int(match.group(6))
    if high > 255 or low > 255:
        raise FTPProtocolError(f"bad PASV reply: {reply.text[:80]!r}")
    return high * 256 + low


def _parse_mdtm(reply: Reply) -> datetime:
    match = re.fullmatch(r"\s*(\d{14})(?:\.(\d{1,6}))?\s*", reply.text)
    if match is None:
        raise FTPProtocolError(f"bad MDTM reply: {reply.text[:80]!r}")
    stamp = datetime.strptime(match.group(1), "%Y%m%d%H%M%S")
    micro = int((match.group(2) or "0").ljust(6, "0"))
    return stamp.replace(microsecond=micro, tzinfo=UTC)
