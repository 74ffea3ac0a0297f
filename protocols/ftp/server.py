"""The FTP server: :class:`FTPFactory` and the control-connection protocol :class:`FTP`.

Example::

    import reactor
    from protocols.ftp.server import FTPFactory

    reactor.listenTCP(2121, FTPFactory("/srv/ftp", anonymous=True))
    reactor.run()

Commands are parsed and checked by :mod:`protocols.ftp.commands`, files come
from an :class:`~protocols.ftp.filesystem.IFilesystem` (whose calls return
Deferreds), the data-connection commands live in :mod:`protocols.ftp._transfer`;
transfers are passive (PASV, EPSV) or active (PORT, EPRT to the client only).
Commands run one at a time, in order; while a transfer runs, ABOR, STAT,
NOOP and QUIT are still answered. Downloads go through ``reactor.sendfile.sendFile`` (zero-copy
where the backend allows, flow-controlled always); uploads go to a temporary
file renamed into place only when the transfer completed.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import Any

from deferred import Deferred, Failure, maybeDeferred, succeed
from protocols.base import Factory, Protocol, connectionDone
from protocols.policies import TimeoutMixin

from ._transfer import TransferCommands, _describe, _Transfer
from .commands import (
    COMMANDS,
    TOO_LONG,
    Command,
    CommandError,
    LineSplitter,
    check_command,
    format_reply,
    parse_command,
)
from .data import DataChannel
from .filesystem import (
    FileInfo,
    IFilesystem,
    LocalFilesystem,
    formatFacts,
    resolvePath,
)

__all__ = ["ALL_PERMISSIONS", "FTP", "FTPFactory"]

log = logging.getLogger("protocols.ftp")

#: Everything a user may be allowed to do.
ALL_PERMISSIONS = frozenset({"read", "write", "delete", "rename", "mkdir"})
_ANONYMOUS_NAMES = ("anonymous", "ftp")
# Commands between REST and the transfer that do not cancel the REST (clients
# send PASV or TYPE after REST as often as before it).
_KEEP_REST = frozenset({"REST", "RETR", "STOR", "APPE", "STAT", "NOOP", "PASV", "EPSV", "PORT",
                        "EPRT", "TYPE"})
_DURING_TRANSFER = frozenset({"ABOR", "STAT", "NOOP", "QUIT"})
_FEATURES = ("EPSV", "MDTM", "MLST type*;size*;modify*;perm*;unique*;", "PASV",
             "REST STREAM", "SIZE", "TVFS", "UTF8")

Checker = Callable[[str, str], "bool | Deferred[bool]"]


def _quote(path: str) -> str:
    # RFC 959 appendix II: a quote inside a quoted path name is doubled.
    return path.replace('"', '""')


class FTP(TransferCommands, TimeoutMixin, Protocol):
    """One FTP control connection (built by :class:`FTPFactory`).

    A session silent for the factory's ``idleTimeout`` (a transfer running
    does not count as silence) gets 421 and is closed.
    """

    factory: FTPFactory
    transport: Any

    def __init__(self) -> None:
        self.splitter = LineSplitter()
        self.queue: list[bytes | object] = []
        self.busy = False
        self.user: str | None = None
        self.loggedIn = False
        self.permissions: frozenset[str] = frozenset()
        self.failedLogins = 0
        self.cwd = "/"
        self.restOffset = 0
        self.renameFrom: str | None = None
        self.passive: DataChannel | None = None
        self.transfer: _Transfer | None = None
        self.disconnected = False
        self.epsvAll = False

    # -- the control connection ------------------------------------------------------

    def connectionMade(self) -> None:
        """Greet, and start the idle timer."""
        self.clock = self.factory.reactor
        self.setTimeout(self.factory.idleTimeout)
        self.reply(220, self.factory.greeting)

    def timeoutConnection(self) -> None:
        """Close a session idle too long; a running transfer keeps it alive."""
        if self.transfer is not None:
            self.setTimeout(self.factory.idleTimeout)
            return
        self.reply(421, "Idle timeout, closing the control connection.")
        self.transport.loseConnection()

    def reply(self, code: int, text: str) -> None:
        """Send a reply (several lines of ``text`` make a multi-line reply)."""
        if not self.disconnected:
            self.transport.write(format_reply(code, text))

    def dataReceived(self, data: bytes) -> None:
        """Split lines; run them in order."""
        self.resetTimeout()
        for line in self.splitter.feed(data):
            if self.transfer is not None and line is not TOO_LONG:
                # Transfer-time commands jump the queue: ABOR must not wait
                # behind the transfer it aborts.
                try:
                    command = parse_command(line)  # type: ignore[arg-type]
                except CommandError:
                    command = None
                if command is not None and command.name in _DURING_TRANSFER:
                    self._run(command)
                    continue
            self.queue.append(line)
        self._next()

    def _next(self) -> None:
        while not self.busy and self.queue and not self.disconnected:
            if self.transfer is not None:
                return  # the rest waits until the transfer ends
            line = self.queue.pop(0)
            if line is TOO_LONG:
                self.reply(500, "Command line too long.")
                continue
            try:
                command = parse_command(line)  # type: ignore[arg-type]
            except CommandError as e:
                self.reply(e.code, e.message)
                continue
            self.busy = True
            d = self._run(command)
            d.addBoth(self._done)

    def _done(self, _: object) -> None:
        self.busy = False
        self._next()

    def _run(self, command: Command) -> Deferred[None]:
        def failed(failure: Failure) -> None:
            if failure.check(CommandError):
                error: Any = failure.value
                self.reply(error.code, error.message)
            elif failure.check(FileNotFoundError, NotADirectoryError, IsADirectoryError,
                               PermissionError, FileExistsError, OSError, ValueError):
                self.reply(550, _describe(failure.value))
            else:
                log.error("FTP command %s failed", command.name,
                          exc_info=failure.value)
                self.reply(451, "Requested action aborted: local error in processing.")

        try:
            if command.name not in ("RNFR", "RNTO"):
                self.renameFrom = None  # RNTO must come right after RNFR
            perms = self.permissions if self.loggedIn else None
            check_command(command, self.loggedIn, perms)
            if command.name not in _KEEP_REST:
                self.restOffset = 0
            handler = getattr(self, "ftp_" + command.name)
            d: Deferred[None] = maybeDeferred(handler, command.arg)
        except Exception:
            d = Deferred()
            d.errback(Failure())
        return d.addErrback(failed)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """Abort any transfer and drop the passive listener."""
        self.disconnected = True
        self.setTimeout(None)
        self.queue.clear()
        self._abortTransfer()
        if self.passive is not None:
            self.passive.close()
            self.passive = None
        self.factory.sessions.discard(self)

    def path(self, arg: str) -> str:
        """The virtual path ``arg`` names from the working directory."""
        return resolvePath(self.cwd, arg)

    # -- login -----------------------------------------------------------------

    def ftp_USER(self, arg: str) -> None:
        """Start a login."""
        if self.loggedIn:
            raise CommandError(503, "Already logged in.")
        self.user = arg
        if arg.lower() in _ANONYMOUS_NAMES and self.factory.anonymous:
            self.reply(331, "Anonymous login ok, send your e-mail address as password.")
        else:
            self.reply(331, f"Password required for {arg}.")

    def ftp_PASS(self, arg: str) -> Deferred[None] | None:
        """Finish a login through the checker (or as anonymous)."""
        if self.loggedIn:
            raise CommandError(503, "Already logged in.")
        user, self.user = self.user, None
        if user is None:
            raise CommandError(503, "Login with USER first.")
        if user.lower() in _ANONYMOUS_NAMES and self.factory.anonymous:
            self._login(user, self.factory.anonymousPermissions)
            return None
        checker = self.factory.checker
        if checker is None:
            return self._loginFailed()

        def checked(ok: object) -> Deferred[None]:
            if ok is True:
                self._login(user, self.factory.permissions)
                return succeed(None)
            return self._loginFailed()

        result: Deferred[Any] = maybeDeferred(checker, user, arg)
        return result.addCallback(checked)

    def _login(self, user: str, permissions: frozenset[str]) -> None:
        self.loggedIn = True
        self.user = user
        self.permissions = permissions
        self.reply(230, "Login successful.")

    def _loginFailed(self) -> Deferred[None]:
        self.failedLogins += 1
        d: Deferred[None] = Deferred()

        def answer() -> None:
            self.reply(530, "Login incorrect.")
            if self.failedLogins >= self.factory.maxLoginAttempts:
                self.transport.loseConnection()
            d.callback(None)

        # The delay slows a password-guessing loop; the queue waits meanwhile.
        self.factory.reactor.callLater(self.factory.failedLoginDelay, answer)
        return d

    # -- simple commands ------------------------------------------------------------

    def ftp_QUIT(self, arg: str) -> None:
        """Say goodbye and close."""
        self.reply(221, "Goodbye.")
        self.transport.loseConnection()

    def ftp_NOOP(self, arg: str) -> None:
        """Do nothing."""
        self.reply(200, "NOOP ok.")

    def ftp_SYST(self, arg: str) -> None:
        """Report the system type, as servers conventionally do."""
        self.reply(215, "UNIX Type: L8")

    def ftp_FEAT(self, arg: str) -> None:
        """List the extensions (RFC 2389)."""
        self.reply(211, "\n".join(["Features:", *(" " + f for f in _FEATURES), "End"]))

    def ftp_OPTS(self, arg: str) -> None:
        """Accept ``OPTS UTF8 ON`` (names are always UTF-8 here)."""
        if arg.upper().split() in (["UTF8", "ON"], ["UTF8"]):
            self.reply(200, "Always in UTF8 mode.")
        else:
            raise CommandError(501, "Unsupported option.")

    def ftp_HELP(self, arg: str) -> None:
        """List the commands, or the syntax of one."""
        if arg:
            spec = COMMANDS.get(arg.upper())
            if spec is None:
                raise CommandError(501, "Unknown command.")
            self.reply(214, f"Syntax: {spec.help}")
            return
        names = sorted(COMMANDS)
        rows = [" " + " ".join(f"{n:<5}" for n in names[i:i + 8])
                for i in range(0, len(names), 8)]
        self.reply(214, "\n".join(["The following commands are recognized:", *rows,
                                   "Help OK."]))

    def ftp_STAT(self, arg: str) -> None:
        """Report the session's state."""
        state = "transferring" if self.transfer is not None else "idle"
        who = self.user if self.loggedIn else "not logged in"
        self.reply(211, "\n".join(["Torsion FTP server status:", f" User: {who}",
                                   f" Working directory: {self.cwd}",
                                   f" Data connection: {state}", "End of status."]))

    def ftp_TYPE(self, arg: str) -> None:
        """Accept TYPE A and I (both transfer the bytes unchanged)."""
        kind = arg.upper().replace(" ", "")
        if kind in ("A", "AN", "L8", "I"):
            self.reply(200, f"Type set to {kind[0] if kind != 'L8' else 'I'}.")
        else:
            raise CommandError(504, "Type not supported.")

    def ftp_MODE(self, arg: str) -> None:
        """Only stream mode."""
        if arg.upper() != "S":
            raise CommandError(504, "Only MODE S is supported.")
        self.reply(200, "Mode set to S.")

    def ftp_STRU(self, arg: str) -> None:
        """Only file structure."""
        if arg.upper() != "F":
            raise CommandError(504, "Only STRU F is supported.")
        self.reply(200, "Structure set to F.")

    def ftp_ALLO(self, arg: str) -> None:
        """Nothing to reserve."""
        self.reply(202, "No storage allocation necessary.")

    def ftp_REST(self, arg: str) -> None:
        """Set the offset the next RETR starts from."""
        try:
            offset = int(arg)
        except ValueError:
            raise CommandError(501, "REST needs a byte offset.") from None
        if offset < 0:
            raise CommandError(501, "REST needs a byte offset.")
        self.restOffset = offset
        self.reply(350, f"Restarting at {offset}. Send RETR to start the transfer.")

    # -- directories -----------------------------------------------------------------

    def ftp_PWD(self, arg: str) -> None:
        """Print the working directory (quotes doubled, RFC 959)."""
        self.reply(257, f'"{_quote(self.cwd)}" is the current directory.')

    ftp_XPWD = ftp_PWD

    def ftp_CWD(self, arg: str) -> Deferred[None]:
        """Change the working directory."""
        path = self.path(arg)

        def changed(info: FileInfo) -> None:
            if not info.isDirectory:
                raise CommandError(550, "Not a directory.")
            self.cwd = path
            self.reply(250, f'Directory changed to "{path}".')

        return self.filesystem.stat(path).addCallback(changed)

    ftp_XCWD = ftp_CWD

    def ftp_CDUP(self, arg: str) -> Deferred[None]:
        """Go to the parent directory."""
        return self.ftp_CWD("..")

    ftp_XCUP = ftp_CDUP

    def ftp_MKD(self, arg: str) -> Deferred[None]:
        """Make a directory."""
        path = self.path(arg)
        return self.filesystem.makeDirectory(path).addCallback(
            lambda _: self.reply(257, f'"{_quote(path)}" created.'))

    ftp_XMKD = ftp_MKD

    def ftp_RMD(self, arg: str) -> Deferred[None]:
        """Remove an empty directory."""
        return self.filesystem.removeDirectory(self.path(arg)).addCallback(
            lambda _: self.reply(250, "Directory removed."))

    ftp_XRMD = ftp_RMD

    def ftp_DELE(self, arg: str) -> Deferred[None]:
        """Remove a file."""
        return self.filesystem.removeFile(self.path(arg)).addCallback(
            lambda _: self.reply(250, "File removed."))

    def ftp_RNFR(self, arg: str) -> Deferred[None]:
        """Remember what to rename (after checking it exists)."""
        path = self.path(arg)

        def found(_: FileInfo) -> None:
            self.renameFrom = path
            self.reply(350, "Ready for RNTO.")

        return self.filesystem.stat(path).addCallback(found)

    def ftp_RNTO(self, arg: str) -> Deferred[None]:
        """Rename what RNFR named."""
        source, self.renameFrom = self.renameFrom, None
        if source is None:
            raise CommandError(503, "RNFR required first.")
        return self.filesystem.rename(source, self.path(arg)).addCallback(
            lambda _: self.reply(250, "Renamed."))

    def ftp_SIZE(self, arg: str) -> Deferred[None]:
        """The size of a file."""
        def sized(info: FileInfo) -> None:
            if info.isDirectory:
                raise CommandError(550, "Not a regular file.")
            self.reply(213, str(info.size))
        return self.filesystem.stat(self.path(arg)).addCallback(sized)

    def ftp_MDTM(self, arg: str) -> Deferred[None]:
        """The modification time of a file (UTC, RFC 3659)."""
        def dated(info: FileInfo) -> None:
            if info.isDirectory:
                raise CommandError(550, "Not a regular file.")
            self.reply(213, time.strftime("%Y%m%d%H%M%S", time.gmtime(info.mtime)))
        return self.filesystem.stat(self.path(arg)).addCallback(dated)

    def ftp_MLST(self, arg: str) -> Deferred[None]:
        """The facts of one path, on the control connection."""
        path = self.path(arg or ".")

        def facts(info: FileInfo) -> None:
            line = formatFacts(info, self.permissions, name=path)
            self.reply(250, "\n".join([f"Listing {path}", " " + line, "End."]))

        return self.filesystem.stat(path).addCallback(facts)

class FTPFactory(Factory[FTP]):
    """Builds :class:`FTP` sessions.

    Args:
        filesystem: An :class:`IFilesystem`, or a directory to serve with
            :class:`LocalFilesystem`.
        checker: ``check(user, password) -> bool | Deferred[bool]``; None
            accepts no user (only anonymous, if allowed).
        anonymous: Allow ``anonymous``/``ftp`` logins, read-only.
        permissions: What checked users may do (all by default).
        greeting: The 220 greeting's text.
        failedLoginDelay: Seconds before a failed login is answered.
        maxLoginAttempts: Failed logins after which the connection is closed.
        dataTimeout: Seconds to wait for the client's data connection.
        idleTimeout: Seconds of silence on the control connection (no
            transfer running) after which the session is closed; None: never.
        masquerade: The IPv4 address a PASV reply announces (behind NAT).
        reactor: The reactor for listening, timers and threads (the
            installed one by default).
    """

    protocol = FTP

    def __init__(self, filesystem: IFilesystem | str | os.PathLike[str],
                 checker: Checker | None = None, anonymous: bool = False,
                 permissions: frozenset[str] = ALL_PERMISSIONS,
                 greeting: str = "Torsion FTP server ready.",
                 failedLoginDelay: float = 1.0, maxLoginAttempts: int = 3,
                 dataTimeout: float = 30.0, idleTimeout: float | None = 600.0,
                 masquerade: str | None = None,
                 reactor: Any = None) -> None:
        if isinstance(filesystem, (str, os.PathLike)):
            filesystem = LocalFilesystem(filesystem, reactor)
        self.filesystem: IFilesystem = filesystem
        self.checker = checker
        self.anonymous = anonymous
        self.permissions = frozenset(permissions)
        self.anonymousPermissions = frozenset({"read"})
        self.greeting = greeting
        self.failedLoginDelay = failedLoginDelay
        self.maxLoginAttempts = maxLoginAttempts
        self.dataTimeout = dataTimeout
        self.idleTimeout = idleTimeout
        self.masquerade = masquerade
        self._reactor = reactor
        self.sessions: set[FTP] = set()

    @property
    def reactor(self) -> Any:
        """The reactor in use."""
        if self._reactor is None:
            import reactor
            return reactor.getReactor()
        return self._reactor

    def buildProtocol(self, addr: Any) -> FTP | None:
        """A new session."""
        protocol = FTP()
        protocol.factory = self
        self.sessions.add(protocol)
        return protocol
