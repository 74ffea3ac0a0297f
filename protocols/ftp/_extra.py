"""More FTP server commands: REIN, SITE (CHMOD, HELP), MFMT, OPTS MLST, STAT with a path.

A mixin of :class:`protocols.ftp.server.FTP`, kept apart so that each module
stays small.

- ``REIN`` (RFC 959) returns the session to just after the greeting: logged
  out, working directory, type, REST, RNFR, data-connection setup and MLST
  fact selection all reset; the connection stays, and so does the count of
  failed logins (REIN must not reset the cap on password guesses).
- ``SITE CHMOD mode path`` sets permission bits (octal, up to ``7777``); it
  needs the ``write`` permission. ``SITE HELP`` lists the SITE commands.
- ``MFMT YYYYMMDDHHMMSS[.sss] path`` (draft-somers-ftp-mfxx) sets a file's
  modification time (UTC) and answers ``213 Modify=...; path``; it needs ``write``.
- ``OPTS MLST fact;fact;`` (RFC 3659 7.9) selects the facts MLST and MLSD
  show; unknown facts are ignored; FEAT marks the selected ones with ``*``.
- ``STAT path`` (RFC 959) sends the ``LIST`` lines of ``path`` over the control
  connection as a 213 multi-line reply; it needs the ``read`` permission.
"""

from __future__ import annotations

import calendar
import re
import time
from typing import Any

from deferred import Deferred, succeed

from .commands import CommandError
from .filesystem import FACTS, FileInfo, IFilesystem, formatListLine

__all__ = ["ExtraCommands"]

_MFMT_TIME = re.compile(r"(\d{4})(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)(?:\.(\d{1,9}))?")
_SITE_HELP = ("CHMOD <SP> mode <SP> path (set permission bits, octal)",
              "HELP (this list)")


def parseMfmtTime(text: str) -> float:
    """Seconds since the epoch of an MFMT time ``YYYYMMDDHHMMSS[.fraction]`` (UTC).

    Raises:
        CommandError: 501 when it is not a valid time.

    Example:
        >>> parseMfmtTime("19700102000000.5")
        86400.5
    """
    match = _MFMT_TIME.fullmatch(text)
    if match is None:
        raise CommandError(501, "Bad time: expected YYYYMMDDHHMMSS.")
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    fraction = float("0." + match.group(7)) if match.group(7) else 0.0
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60
            and second < 61):
        raise CommandError(501, "Bad time: expected YYYYMMDDHHMMSS.")
    try:
        time.strptime(f"{year:04d}{month:02d}{day:02d}", "%Y%m%d")  # e.g. no 31 April
    except ValueError:
        raise CommandError(501, "Bad time: no such date.") from None
    return calendar.timegm((year, month, day, hour, minute, min(second, 59))) + fraction


def selectFacts(text: str) -> tuple[str, ...]:
    """The known facts ``OPTS MLST`` text selects, in the server's order.

    Example:
        >>> selectFacts("Size;type;bogus;")
        ('type', 'size')
    """
    asked = {fact.strip().lower() for fact in text.split(";") if fact.strip()}
    return tuple(fact for fact in FACTS if fact in asked)


class ExtraCommands:
    """REIN, SITE, MFMT, OPTS MLST and STAT with a path, mixed into the FTP protocol."""

    factory: Any
    transport: Any
    passive: Any
    transfer: Any
    user: str | None
    loggedIn: bool
    permissions: frozenset[str]
    sessionFilesystem: IFilesystem | None
    cwd: str
    restOffset: int
    renameFrom: str | None
    epsvAll: bool
    binary: bool
    #: The facts MLST and MLSD show (OPTS MLST); None: all of them.
    mlstFacts: tuple[str, ...] | None = None

    filesystem: IFilesystem

    def reply(self, code: int, text: str) -> None:
        """Send a reply (the protocol implements it)."""
        raise NotImplementedError

    def path(self, arg: str) -> str:
        """The virtual path of ``arg`` (the protocol implements it)."""
        raise NotImplementedError

    def _extraFeatures(self) -> list[str]:
        """This mixin's FEAT lines: MFMT, and MLST with the selected facts starred."""
        selected = FACTS if self.mlstFacts is None else self.mlstFacts
        mlst = "".join(f"{fact}{'*' if fact in selected else ''};" for fact in FACTS)
        return ["MFMT", f"MLST {mlst}"]

    # -- REIN ------------------------------------------------------------------------

    def ftp_REIN(self, arg: str) -> None:
        """Log out and start over on the same connection."""
        self.user = None
        self.loggedIn = False
        self.permissions = frozenset()
        self.sessionFilesystem = None
        self.cwd = "/"
        self.restOffset = 0
        self.renameFrom = None
        self.epsvAll = False
        self.binary = False
        self.mlstFacts = None
        if self.passive is not None:
            self.passive.close()
            self.passive = None
        self.reply(220, "Service ready for new user.")

    # -- SITE -----------------------------------------------------------------------

    def ftp_SITE(self, arg: str) -> Deferred[None] | None:
        """SITE CHMOD and SITE HELP."""
        name, _, rest = arg.strip().partition(" ")
        name = name.upper()
        if name == "HELP":
            self.reply(214, "\n".join(["SITE commands recognized:",
                                       *(" " + line for line in _SITE_HELP), "Help OK."]))
            return None
        if name == "CHMOD":
            return self._chmod(rest.strip())
        raise CommandError(501, f"Unknown SITE command {name!r}; try SITE HELP.")

    def _chmod(self, arg: str) -> Deferred[None]:
        if "write" not in self.permissions:
            raise CommandError(550, "Permission denied.")
        mode_text, _, target = arg.partition(" ")
        if not target or not re.fullmatch(r"[0-7]{1,4}", mode_text):
            raise CommandError(501, "Syntax: SITE CHMOD <SP> octal-mode <SP> path")
        return self.filesystem.chmod(self.path(target), int(mode_text, 8)).addCallback(
            lambda _: self.reply(200, "SITE CHMOD successful."))

    # -- MFMT ----------------------------------------------------------------------

    def ftp_MFMT(self, arg: str) -> Deferred[None]:
        """Set a file's modification time: ``MFMT YYYYMMDDHHMMSS path``."""
        stamp, _, target = arg.partition(" ")
        if not target:
            raise CommandError(501, "Syntax: MFMT <SP> YYYYMMDDHHMMSS <SP> path")
        when = parseMfmtTime(stamp)
        path = self.path(target)
        modify = time.strftime("%Y%m%d%H%M%S", time.gmtime(when))
        return self.filesystem.setModificationTime(path, when).addCallback(
            lambda _: self.reply(213, f"Modify={modify}; {target}"))

    # -- OPTS MLST -------------------------------------------------------------------

    def _optsMlst(self, arg: str) -> None:
        self.mlstFacts = selectFacts(arg)
        # RFC 3659 7.9: "MLST OPTS", then a space and the facts only if there are any.
        selected = "".join(f + ";" for f in self.mlstFacts)
        self.reply(200, f"MLST OPTS {selected}" if selected else "MLST OPTS")

    # -- STAT path -------------------------------------------------------------------

    def _statPath(self, arg: str) -> Deferred[None]:
        if not self.loggedIn:
            raise CommandError(530, "Please log in with USER and PASS first.")
        if "read" not in self.permissions:
            raise CommandError(550, "Permission denied.")
        # Like LIST: options such as "-la" are ignored.
        words = [w for w in arg.split(" ") if w and not w.startswith("-")]
        path = self.path(" ".join(words) or ".")
        now = time.time()

        def got(info: FileInfo) -> Deferred[list[FileInfo]]:
            if info.isDirectory:
                return self.filesystem.listDirectory(path)
            return succeed([info])

        def answer(infos: list[FileInfo]) -> None:
            lines = [formatListLine(info, now) for info in infos]
            self.reply(213, "\n".join([f"Status of {path}:", *lines, "End of status."]))

        return self.filesystem.stat(path).addCallback(got).addCallback(answer)
