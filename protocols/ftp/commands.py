"""FTP control-channel parsing and reply formatting, sans I/O.

Bytes in, values out: :class:`LineSplitter` cuts the control stream into
command lines, :func:`parse_command` turns a line into a :class:`Command`,
:func:`check_command` applies the :data:`COMMANDS` table (login needed,
argument rule, permission), and :func:`format_reply` makes the bytes of a
single or RFC 959 multi-line reply. Nothing here touches a socket, the
reactor or a Deferred, so it is tested with bytes alone.

Example:
    >>> splitter = LineSplitter()
    >>> [parse_command(line) for line in splitter.feed(b"user bob\\r\\nNOOP\\n")]
    [Command(name='USER', arg='bob'), Command(name='NOOP', arg='')]
    >>> format_reply(211, "Features:\\n MDTM\\nEnd")
    b'211-Features:\\r\\n MDTM\\r\\n211 End\\r\\n'
"""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass
from typing import NamedTuple

__all__ = [
    "COMMANDS",
    "MAX_LINE_LENGTH",
    "TOO_LONG",
    "Arg",
    "Command",
    "CommandError",
    "CommandSpec",
    "LineSplitter",
    "check_command",
    "format_epsv",
    "format_pasv",
    "format_reply",
    "parse_command",
    "parse_eprt",
    "parse_port",
]

#: The longest command line accepted, without its line end. RFC 959 sets no
#: limit; 2048 leaves room for long UTF-8 path names (pyftpdlib also uses 2048).
MAX_LINE_LENGTH = 2048


class CommandError(Exception):
    """A command the server must refuse with ``code`` and ``message``."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message


class Arg(enum.Enum):
    """Whether a command takes an argument."""

    NONE = "none"
    REQUIRED = "required"
    OPTIONAL = "optional"


@dataclass(frozen=True)
class CommandSpec:
    """One row of the command table.

    Attributes:
        name: The command verb, upper case.
        needs_login: Refused with 530 before a successful login.
        arg: Whether an argument is forbidden, required or optional.
        perm: The permission a user needs (``read``, ``write``, ``delete``,
            ``rename``, ``mkdir``), or None.
        help: The syntax shown by ``HELP``.
    """

    name: str
    needs_login: bool
    arg: Arg
    perm: str | None
    help: str


def _table(*rows: tuple[str, bool, Arg, str | None, str]) -> dict[str, CommandSpec]:
    return {row[0]: CommandSpec(*row) for row in rows}


_N, _R, _O = Arg.NONE, Arg.REQUIRED, Arg.OPTIONAL

#: Every command the server implements, by name.
COMMANDS: dict[str, CommandSpec] = _table(
    ("ABOR", True, _N, None, "ABOR (abort the transfer)"),
    ("ALLO", True, _R, None, "ALLO <SP> bytes (a no-op)"),
    ("APPE", True, _R, "write", "APPE <SP> file-name (append)"),
    ("AUTH", False, _R, None, "AUTH <SP> TLS (secure the control connection)"),
    ("CCC", False, _N, None, "CCC (refused: the control connection stays secure)"),
    ("CDUP", True, _N, "read", "CDUP (go to the parent directory)"),
    ("CWD", True, _R, "read", "CWD <SP> dir-name"),
    ("DELE", True, _R, "delete", "DELE <SP> file-name"),
    ("EPSV", True, _O, None, "EPSV [<SP> proto/ALL] (extended passive mode)"),
    ("EPRT", True, _R, None, "EPRT <SP> |proto|addr|port| (extended active mode)"),
    ("FEAT", False, _N, None, "FEAT (list the extensions)"),
    ("HELP", False, _O, None, "HELP [<SP> command]"),
    ("LIST", True, _O, "read", "LIST [<SP> path] (ls -l style listing)"),
    ("MDTM", True, _R, "read", "MDTM <SP> file-name (modification time)"),
    ("MFMT", True, _R, "write", "MFMT <SP> YYYYMMDDHHMMSS <SP> path (set the time)"),
    ("MKD", True, _R, "mkdir", "MKD <SP> dir-name"),
    ("MLSD", True, _O, "read", "MLSD [<SP> dir-name] (machine listing)"),
    ("MLST", True, _O, "read", "MLST [<SP> path] (facts of one path)"),
    ("MODE", True, _R, None, "MODE <SP> S"),
    ("NLST", True, _O, "read", "NLST [<SP> path] (names only)"),
    ("NOOP", False, _N, None, "NOOP"),
    ("OPTS", False, _R, None, "OPTS <SP> UTF8 ON / MLST fact;fact;"),
    ("PASS", False, _O, None, "PASS <SP> password"),
    ("PASV", True, _N, None, "PASV (passive mode)"),
    ("PBSZ", False, _R, None, "PBSZ <SP> 0 (after AUTH TLS)"),
    ("PORT", True, _R, None, "PORT <SP> h1,h2,h3,h4,p1,p2 (active mode)"),
    ("PROT", False, _R, None, "PROT <SP> P/C (protect the data connections or not)"),
    ("PWD", True, _N, None, "PWD (print the working directory)"),
    ("QUIT", False, _N, None, "QUIT"),
    ("REST", True, _R, None, "REST <SP> offset (restart RETR or STOR there)"),
    ("REIN", False, _N, None, "REIN (log out, keep the connection)"),
    ("RETR", True, _R, "read", "RETR <SP> file-name (download)"),
    ("RMD", True, _R, "delete", "RMD <SP> dir-name"),
    ("RNFR", True, _R, "rename", "RNFR <SP> file-name (rename from)"),
    ("RNTO", True, _R, "rename", "RNTO <SP> file-name (rename to)"),
    ("SITE", True, _R, None, "SITE <SP> CHMOD mode path / HELP"),
    ("SIZE", True, _R, "read", "SIZE <SP> file-name"),
    ("STAT", False, _O, None, "STAT [<SP> path] (the session's status, or a listing)"),
    ("STOR", True, _R, "write", "STOR <SP> file-name (upload)"),
    ("STOU", True, _O, "write", "STOU [<SP> file-name] (upload under a new name)"),
    ("STRU", True, _R, None, "STRU <SP> F"),
    ("SYST", False, _N, None, "SYST"),
    ("TYPE", True, _R, None, "TYPE <SP> A/I"),
    ("USER", False, _R, None, "USER <SP> user-name"),
    ("XCUP", True, _N, "read", "XCUP (CDUP)"),
    ("XCWD", True, _R, "read", "XCWD <SP> dir-name (CWD)"),
    ("XMKD", True, _R, "mkdir", "XMKD <SP> dir-name (MKD)"),
    ("XPWD", True, _N, None, "XPWD (PWD)"),
    ("XRMD", True, _R, "delete", "XRMD <SP> dir-name (RMD)"),
)

#: Commands of the RFCs a server may leave out: answered 502, not 500.
NOT_IMPLEMENTED = frozenset({
    "ACCT", "SMNT",
    "ADAT", "MIC", "CONF", "ENC", "LANG", "MFCT", "MFF", "HOST",
})


class Command(NamedTuple):
    """A parsed command line: the verb in upper case and its argument text."""

    name: str
    arg: str


class _TooLong:
    def __repr__(self) -> str:
        return "TOO_LONG"


#: Yielded by :meth:`LineSplitter.feed` in place of a line over the limit.
TOO_LONG = _TooLong()


class LineSplitter:
    """Cuts the control stream into lines ending in CRLF or a bare LF.

    A line over ``max_length`` is reported once as :data:`TOO_LONG` and its
    bytes are dropped up to its line end, so that the session goes on with
    the next command (and memory stays bounded whatever the peer sends).
    """

    def __init__(self, max_length: int = MAX_LINE_LENGTH) -> None:
        self.max_length = max_length
        self._buffer = bytearray()
        self._discarding = False

    def feed(self, data: bytes) -> list[bytes | _TooLong]:
        """Add received bytes; return the complete lines (without line ends)."""
        out: list[bytes | _TooLong] = []
        buf = self._buffer
        start = len(buf)
        buf += data
        pos = 0
        while True:
            # Search only the new bytes: a line dribbled in byte by byte is
            # scanned once, not once per byte.
            end = buf.find(b"\n", max(pos, start))
            if end < 0:
                break
            line = bytes(buf[pos:end])
            pos = end + 1
            start = pos
            if self._discarding:
                self._discarding = False
                continue
            if line.endswith(b"\r"):
                line = line[:-1]
            if len(line) > self.max_length:
                out.append(TOO_LONG)
            else:
                out.append(line)
        del buf[:pos]
        if len(buf) > self.max_length + 1:
            if not self._discarding:
                out.append(TOO_LONG)
                self._discarding = True
            buf.clear()
        return out


# Telnet IP and Synch (IAC IP, IAC DM), which clients send before ABOR.
_TELNET = (b"\xff\xf4", b"\xff\xf2", b"\xff")


def parse_command(line: bytes) -> Command:
    """Parse one command line (its line end already removed).

    Raises:
        CommandError: 500 for an empty line, a verb that is not 3 or 4
            ASCII letters, or an argument that is not UTF-8.
    """
    for prefix in _TELNET:
        while line.startswith(prefix):
            line = line[len(prefix):]
    verb, _, rest = line.partition(b" ")
    if not (3 <= len(verb) <= 4 and verb.isalpha() and verb.isascii()):
        raise CommandError(500, "Syntax error, command unrecognized.")
    if b"\x00" in rest:
        raise CommandError(501, "Syntax error in parameters or arguments.")
    try:
        arg = rest.decode("utf-8")
    except UnicodeDecodeError:
        raise CommandError(501, "Arguments are not valid UTF-8.") from None
    return Command(verb.decode("ascii").upper(), arg)


def check_command(command: Command, logged_in: bool,
                  permissions: frozenset[str] | None = None) -> CommandSpec:
    """Apply the command table to ``command``.

    Args:
        command: The parsed command.
        logged_in: Whether the session has logged in.
        permissions: The user's permissions; None skips the check.

    Returns:
        The command's table row.

    Raises:
        CommandError: 502 (known but not implemented), 500 (unknown),
            530 (needs login), 501 (argument missing or unexpected),
            550 (permission denied).
    """
    spec = COMMANDS.get(command.name)
    if spec is None:
        if command.name in NOT_IMPLEMENTED:
            raise CommandError(502, f"Command {command.name} not implemented.")
        raise CommandError(500, f"Command {command.name} not understood.")
    if spec.needs_login and not logged_in:
        raise CommandError(530, "Please log in with USER and PASS first.")
    if spec.arg is Arg.REQUIRED and not command.arg:
        raise CommandError(501, f"Syntax: {spec.help}")
    if spec.arg is Arg.NONE and command.arg:
        raise CommandError(501, f"{command.name} takes no argument.")
    if spec.perm is not None and permissions is not None and spec.perm not in permissions:
        raise CommandError(550, "Permission denied.")
    return spec


def format_reply(code: int, text: str) -> bytes:
    """The bytes of a reply; several lines of ``text`` make an RFC 959 multi-line reply.

    The first line is ``"123-..."``, the last ``"123 ..."``; lines between
    that begin with a digit are indented by a space so that no client takes
    one for the end of the reply. CR and LF in ``text`` only split lines:
    a file name cannot inject a reply of its own.
    """
    if not 100 <= code <= 599:
        raise ValueError(f"not a reply code: {code}")
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if len(lines) == 1:
        return f"{code} {lines[0]}\r\n".encode()
    middle = [" " + line if line[:1].isdigit() else line for line in lines[1:-1]]
    out = [f"{code}-{lines[0]}", *middle, f"{code} {lines[-1]}"]
    return ("\r\n".join(out) + "\r\n").encode()


def format_pasv(host: str, port: int) -> str:
    """The text of a 227 reply: ``Entering Passive Mode (h1,h2,h3,h4,p1,p2).``"""
    parts = ipaddress.IPv4Address(host).packed
    numbers = [*parts, port >> 8, port & 0xFF]
    return f"Entering Passive Mode ({','.join(str(n) for n in numbers)})."


def format_epsv(port: int) -> str:
    """The text of a 229 reply (RFC 2428): ``Entering Extended Passive Mode (|||port|).``"""
    return f"Entering Extended Passive Mode (|||{port}|)."


def parse_port(arg: str) -> tuple[str, int]:
    """Parse a PORT argument ``h1,h2,h3,h4,p1,p2`` into ``(host, port)``.

    Raises:
        CommandError: 501 when malformed.
    """
    try:
        numbers = [int(n) for n in arg.split(",")]
    except ValueError:
        raise CommandError(501, "Bad PORT argument.") from None
    if len(numbers) != 6 or not all(0 <= n <= 255 for n in numbers):
        raise CommandError(501, "Bad PORT argument.")
    host = ".".join(str(n) for n in numbers[:4])
    return host, numbers[4] << 8 | numbers[5]


def parse_eprt(arg: str) -> tuple[str, int]:
    """Parse an EPRT argument ``|proto|host|port|`` (RFC 2428) into ``(host, port)``.

    Raises:
        CommandError: 501 when malformed, 522 for an unknown protocol.
    """
    if len(arg) < 7 or arg[0] != arg[-1]:
        raise CommandError(501, "Bad EPRT argument.")
    fields = arg[1:-1].split(arg[0])
    if len(fields) != 3:
        raise CommandError(501, "Bad EPRT argument.")
    proto, host, port_text = fields
    if proto not in ("1", "2"):
        raise CommandError(522, "Network protocol not supported, use (1,2).")
    try:
        address = ipaddress.ip_address(host)
        port = int(port_text)
    except ValueError:
        raise CommandError(501, "Bad EPRT argument.") from None
    if address.version != (4 if proto == "1" else 6) or not 0 < port < 65536:
        raise CommandError(501, "Bad EPRT argument.")
    return str(address), port
