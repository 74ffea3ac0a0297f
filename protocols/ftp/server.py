"""The FTP server: :class:`FTPFactory` and the control-connection protocol :class:`FTP`.

Example::

    import reactor
    from protocols.ftp.server import FTPFactory

    reactor.listenTCP(2121, FTPFactory("/srv/ftp", anonymous=True))
    reactor.run()

Commands are parsed and checked by :mod:`protocols.ftp.commands`, files come
from an :class:`~protocols.ftp.filesystem.IFilesystem` (whose calls return
Deferreds), the data-connection commands live in :mod:`protocols.ftp._transfer`,
REIN/SITE/MFMT/OPTS MLST/STAT path in :mod:`protocols.ftp._extra`;
transfers are passive (PASV, EPSV; optionally in a port range) or active
(PORT, EPRT to the client only). Commands run one at a time, in order; while a
transfer runs, ABOR, STAT, NOOP and QUIT are still answered, and a client
pipelining more than ``maxPendingCommands`` is not read from until they drain.
Binary downloads go through ``reactor.sendfile.sendFile`` (zero-copy where the
backend allows, flow-controlled always), TYPE A and throttled ones through a
chunked producer; uploads go to a temporary file renamed into place only when
the transfer completed. A checker may answer an
:class:`~protocols.ftp.users.FTPAvatar`: the user's home becomes their ``/``,
and its permissions replace the factory's.
"""

from __future__ import annotations

import logging
import os
import ssl
import time
from collections.abc import Callable, Sequence
from typing import Any

from deferred import Deferred, Failure, maybeDeferred, succeed
from protocols.base import Factory, Protocol, connectionDone
from protocols.policies import TimeoutMixin

from ._extra import ExtraCommands
from ._tls import TLSCommands
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
    homeFilesystem,
    resolvePath,
)
from .users import FTPAvatar

__all__ = ["ALL_PERMISSIONS", "FTP", "FTPFactory"]

log = logging.getLogger("protocols.ftp")

#: Everything a user may be allowed to do.
ALL_PERMISSIONS = frozenset({"read", "write", "delete", "rename", "mkdir"})
_ANONYMOUS_NAMES = ("anonymous", "ftp")
# Commands between REST and the transfer that do not cancel the REST (clients
# send PASV or TYPE after REST as often as before it).
_KEEP_REST = frozenset({"REST", "RETR", "STOR", "APPE", "STOU", "STAT", "NOOP", "PASV", "EPSV",
                        "PORT", "EPRT", "TYPE"})
_DURING_TRANSFER = frozenset({"ABOR", "STAT", "NOOP", "QUIT"})
_FEATURES = ("EPSV", "MDTM", "PASV",
             "REST STREAM", "SIZE", "TVFS", "UTF8")

#: ``check(user, password)``: True or an :class:`~protocols.ftp.users.FTPAvatar`
#: (now or through a Deferred) logs the user in; anything else refuses them.
Checker = Callable[[str, str], "bool | FTPAvatar | Deferred[Any] | None"]


def _quote(path: str) -> str:
    # RFC 959 appendix II: a quote inside a quoted path name is doubled.
    return path.replace('"', '""')


class FTP(ExtraCommands, TLSCommands, TransferCommands, TimeoutMixin, Protocol):
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
        # The logged-in user's filesystem when it is not the factory's (a home).
        self.sessionFilesystem: IFilesystem | None = None
        self.failedLogins = 0
        self.cwd = "/"
        self.restOffset = 0
        self.renameFrom: str | None = None
        self.passive: DataChannel | None = None
        self.transfer: _Transfer | None = None
        self.disconnected = False
        # Why buildProtocol refused this connection (a connection limit), or None.
        self.refusal: str | None = None
        self.peerHost: str | None = None
        self.readPaused = False
        self.epsvAll = False
        # TYPE A (RFC 959's default): newlines converted; TYPE I: bytes as they are.
        self.binary = False

    # -- the control connection ------------------------------------------------------

    def connectionMade(self) -> None:
        """Greet, and start the idle timer (or refuse: 421, over a connection limit)."""
        if self.refusal is not None:
            self.reply(421, self.refusal)
            self.disconnected = True  # nothing more is read or answered
            self.transport.loseConnection()
            return
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
        if len(self.queue) >= self.factory.maxPendingCommands and not self.readPaused:
            # A client this far ahead of the replies waits: no more is read until
            # the queue drains, so the queue stays bounded (bar one read's lines).
            self.readPaused = True
            self.transport.pauseProducing()
        self._next()

    def _next(self) -> None:
        while not self.busy and self.queue and not self.disconnected:
            if self.transfer is not None:
                return  # the rest waits until the transfer ends
            line = self.queue.pop(0)
            if self.readPaused and len(self.queue) <= self.factory.maxPendingCommands // 2:
                self.readPaused = False
                self.transport.resumeProducing()
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
            self._checkSecurity(command.name)
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
            if isinstance(ok, FTPAvatar):
                return self._loginAvatar(user, ok)
            return self._loginFailed()

        result: Deferred[Any] = maybeDeferred(checker, user, arg)
        return result.addCallback(checked)

    def _loginAvatar(self, user: str, avatar: FTPAvatar) -> Deferred[None]:
        # A checker's avatar: its home becomes the session's "/".
        permissions = self.factory.permissions if avatar.permissions is None \
            else frozenset(avatar.permissions)
        if avatar.home is None:
            self._login(user, permissions)
            return succeed(None)

        def rooted(filesystem: IFilesystem) -> None:
            self._login(user, permissions, filesystem)

        def unusable(failure: Failure) -> Deferred[None]:
            log.error("FTP user %s: home directory %r is unusable: %s", user, avatar.home,
                      failure.getErrorMessage())
            return self._loginFailed()

        d = self.factory.filesystemFor(avatar)
        return d.addCallbacks(rooted, unusable)

    def _login(self, user: str, permissions: frozenset[str],
               filesystem: IFilesystem | None = None) -> None:
        self.sessionFilesystem = filesystem
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
        features = sorted([*_FEATURES, *self._tlsFeatures(), *self._extraFeatures()])
        self.reply(211, "\n".join(["Features:", *(" " + f for f in features), "End"]))

    def ftp_OPTS(self, arg: str) -> None:
        """Accept ``OPTS UTF8 ON`` (names are always UTF-8 here) and ``OPTS MLST facts``."""
        name, _, rest = arg.partition(" ")
        if name.upper() == "MLST":
            self._optsMlst(rest)
        elif arg.upper().split() in (["UTF8", "ON"], ["UTF8"]):
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

    def ftp_STAT(self, arg: str) -> Deferred[None] | None:
        """Report the session's state; with a path, list it (see ``_extra``)."""
        if arg:
            return self._statPath(arg)
        state = "transferring" if self.transfer is not None else "idle"
        who = self.user if self.loggedIn else "not logged in"
        self.reply(211, "\n".join(["Torsion FTP server status:", f" User: {who}",
                                   f" Working directory: {self.cwd}",
                                   f" Data connection: {state}", "End of status."]))
        return None

    def ftp_TYPE(self, arg: str) -> None:
        """TYPE A (CRLF newlines on the wire, LF in files) or I (bytes unchanged)."""
        kind = arg.upper().replace(" ", "")
        if kind in ("A", "AN", "L8", "I"):
            self.binary = kind in ("L8", "I")
            self.reply(200, f"Type set to {'I' if self.binary else 'A'}.")
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
        """The size of a file, in TYPE I only.

        In TYPE A the size would be the converted one (RFC 3659 4), which only
        reading the whole file can tell: refused with 550, as pyftpdlib does.
        """
        if not self.binary:
            raise CommandError(550, "SIZE not allowed in ASCII mode.")

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
            line = self._facts(info, name=path)
            self.reply(250, "\n".join([f"Listing {path}", " " + line, "End."]))

        return self.filesystem.stat(path).addCallback(facts)

class FTPFactory(Factory[FTP]):
    """Builds :class:`FTP` sessions.

    Args:
        filesystem: An :class:`IFilesystem`, or a directory to serve with
            :class:`LocalFilesystem`.
        checker: ``check(user, password)``, answering (now or through a
            Deferred) True to log the user in with the defaults, an
            :class:`~protocols.ftp.users.FTPAvatar` to log them in with its
            home and permissions, anything else to refuse; None accepts no
            user (only anonymous, if allowed).
        anonymous: Allow ``anonymous``/``ftp`` logins, read-only.
        permissions: What checked users may do (all by default) unless their
            avatar says otherwise.
        greeting: The 220 greeting's text.
        failedLoginDelay: Seconds before a failed login is answered.
        maxLoginAttempts: Failed logins after which the connection is closed.
        dataTimeout: Seconds to wait for the client's data connection.
        idleTimeout: Seconds of silence on the control connection (no
            transfer running) after which the session is closed; None: never.
        masquerade: The IPv4 address a PASV reply announces (behind NAT).
        tlsContext: A server ``ssl.SSLContext`` (certificate loaded) for
            explicit FTPS: AUTH TLS, PBSZ, PROT (see ``protocols.ftp._tls``).
            Implicit FTPS needs none: serve the factory on an ``ssl:``
            endpoint, whose certificate the data connections then use too.
        requireTLS: Refuse USER and PASS (530) on a clear control connection.
        requireProtectedData: Refuse transfers (521) unless PROT P is in force.
        passivePorts: The ports passive data connections listen on (a free
            one is picked from a random start; 425 when all are in use), e.g.
            ``range(60000, 60101)``; None: any free port.
        maxConnections: Sessions at once; one more gets 421 and is closed.
        maxConnectionsPerIP: Sessions at once from one client address.
        readLimit: Upload bytes per second, per data connection; None: no limit.
        writeLimit: Download bytes per second, per data connection; None: no limit.
        maxPendingCommands: Commands a client may pipeline ahead of the
            replies before the server stops reading from it until they drain.
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
                 tlsContext: ssl.SSLContext | None = None, requireTLS: bool = False,
                 requireProtectedData: bool = False,
                 passivePorts: Sequence[int] | None = None,
                 maxConnections: int | None = None, maxConnectionsPerIP: int | None = None,
                 readLimit: int | None = None, writeLimit: int | None = None,
                 maxPendingCommands: int = 32,
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
        self.tlsContext = tlsContext
        self.requireTLS = requireTLS
        self.requireProtectedData = requireProtectedData
        self.passivePorts = passivePorts
        self.maxConnections = maxConnections
        self.maxConnectionsPerIP = maxConnectionsPerIP
        self.readLimit = readLimit
        self.writeLimit = writeLimit
        self.maxPendingCommands = maxPendingCommands
        self._reactor = reactor
        self.sessions: set[FTP] = set()

    @property
    def reactor(self) -> Any:
        """The reactor in use."""
        if self._reactor is None:
            import reactor
            return reactor.getReactor()
        return self._reactor

    def filesystemFor(self, avatar: FTPAvatar) -> Deferred[IFilesystem]:
        """The filesystem a user with ``avatar`` sees: rooted at their home.

        The home is a directory of the served tree (see
        :func:`~protocols.ftp.filesystem.homePath`); it becomes the user's ``/``.
        A failing Deferred (no such directory, a ``..``, a link out of the
        root) refuses the login. Override to map users to filesystems otherwise.
        """
        if avatar.home is None:
            return succeed(self.filesystem)
        return homeFilesystem(self.filesystem, avatar.home)

    def buildProtocol(self, addr: Any) -> FTP | None:
        """A new session, or over a connection limit one that answers 421 and closes.

        The limits are ``maxConnections`` and ``maxConnectionsPerIP`` (pyftpdlib's
        ``max_cons`` and ``max_cons_per_ip``); a refused connection is not a session.
        """
        protocol = FTP()
        protocol.factory = self
        protocol.peerHost = host = getattr(addr, "host", None)
        if self.maxConnections is not None and len(self.sessions) >= self.maxConnections:
            protocol.refusal = "Too many connections, try again later."
        elif self.maxConnectionsPerIP is not None and sum(
                1 for s in self.sessions if s.peerHost == host) >= self.maxConnectionsPerIP:
            protocol.refusal = "Too many connections from your address."
        if protocol.refusal is not None:
            # info, not warning: a connection storm must not become a log storm.
            log.info("FTP connection from %s refused: %s", host, protocol.refusal)
        else:
            self.sessions.add(protocol)
        return protocol
