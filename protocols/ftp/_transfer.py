"""The FTP server's data-connection commands: PORT/EPRT/PASV/EPSV, listings, RETR, STOR, ABOR.

A mixin of :class:`protocols.ftp.server.FTP`, kept apart so that each
module stays small. Binary downloads go through ``reactor.sendfile.sendFile``
(zero-copy where the backend allows, flow-controlled always); TYPE A and
throttled ones, and listings, through a ``_streams.ChunkSender``; uploads go to
a temporary file renamed into place only when the transfer completed, and
an aborted or failed upload is discarded before its data connection closes.
"""

from __future__ import annotations

import logging
import os
import posixpath
import time
from collections.abc import Callable, Iterable
from typing import IO, Any

from deferred import CancelledError, Deferred, Failure, succeed
from deferred import TimeoutError as DeferredTimeout

from ._ports import NoFreePort
from ._streams import ChunkSender, lineChunks, sendData, wrapUpload
from .commands import CommandError, format_epsv, format_pasv, parse_eprt, parse_port
from .data import ActiveConnector, DataChannel, DataProtocol, PassiveListener, UploadSink
from .filesystem import FileInfo, IFilesystem, IUpload, formatFacts, formatListLine

__all__ = ["TransferCommands"]

log = logging.getLogger("protocols.ftp")


def _describe(error: BaseException) -> str:
    # The strerror only: a message with the real path would reveal the server's layout.
    if isinstance(error, OSError) and error.strerror:
        return error.strerror + "."
    if isinstance(error, PermissionError):
        return "Permission denied."
    return "Requested action not taken."


def _transferError(failure: Failure) -> tuple[int, str]:
    if failure.check(CommandError):
        error: Any = failure.value
        return error.code, error.message
    if failure.check(CancelledError, DeferredTimeout, TimeoutError):
        return 425, "Can't open data connection."
    if failure.check(OSError) and not failure.check(ConnectionError):
        return 451, "Requested action aborted: " + _describe(failure.value)
    return 426, "Connection closed; transfer aborted."


class _Transfer:
    """The transfer in progress: what ABOR or a lost control connection must undo."""

    def __init__(self, listener: DataChannel) -> None:
        self.listener = listener
        self.upload: IUpload | None = None
        self.sink: UploadSink | None = None
        self.file: IO[bytes] | None = None
        self.aborted = False


class TransferCommands:
    """Data-connection commands, mixed into the FTP protocol (which provides the rest)."""

    factory: Any
    transport: Any
    passive: DataChannel | None
    transfer: _Transfer | None
    restOffset: int
    epsvAll: bool
    disconnected: bool
    binary: bool
    permissions: frozenset[str]

    @property
    def filesystem(self) -> IFilesystem:
        """The session's filesystem: the user's home, or the factory's."""
        fs: IFilesystem | None = getattr(self, "sessionFilesystem", None)
        if fs is None:
            fs = self.factory.filesystem
        return fs

    def reply(self, code: int, text: str) -> None:
        """Send a reply (the protocol implements it)."""
        raise NotImplementedError

    def path(self, arg: str) -> str:
        """The virtual path of ``arg`` (the protocol implements it)."""
        raise NotImplementedError

    def _next(self) -> None:
        raise NotImplementedError

    def _dataContext(self) -> Any:
        """The TLS context of new data connections (PROT P; see ``_tls``), or None."""
        return None

    def _listen(self) -> PassiveListener:
        if self.passive is not None:
            self.passive.close()
        self.passive = None
        host = self.transport.getHost().host
        try:
            listener = PassiveListener(self.factory.reactor, host,
                                       self.transport.getPeer().host,
                                       self.factory.passivePorts)
        except NoFreePort:
            log.warning("FTP: no free passive port in %s", self.factory.passivePorts)
            raise CommandError(425, "Can't open data connection: no free port.") from None
        listener.tls = self._dataContext()
        self.passive = listener
        return listener

    def _refuseAfterEpsvAll(self) -> None:
        if self.epsvAll:
            # RFC 2428: after EPSV ALL, only EPSV may set up data connections.
            raise CommandError(503, "Only EPSV after EPSV ALL.")

    def _active(self, host: str, port: int) -> None:
        self._refuseAfterEpsvAll()
        # No FTP bounce: data goes only to the client's own address, and not to
        # a privileged port (RFC 2577).
        if host != self.transport.getPeer().host:
            raise CommandError(504, "Data connections only to your own address.")
        if port < 1024:
            raise CommandError(504, "Data connections only to ports from 1024.")
        if self.passive is not None:
            self.passive.close()
        self.passive = ActiveConnector(self.factory.reactor, host, port,
                                       self.factory.dataTimeout)
        self.passive.tls = self._dataContext()

    def ftp_PORT(self, arg: str) -> None:
        """Active mode (IPv4): the server will connect to the client."""
        self._active(*parse_port(arg))
        self.reply(200, "PORT command successful.")

    def ftp_EPRT(self, arg: str) -> None:
        """Active mode (RFC 2428)."""
        self._active(*parse_eprt(arg))
        self.reply(200, "EPRT command successful.")

    def ftp_PASV(self, arg: str) -> None:
        """Open a passive data listener (IPv4 only: use EPSV on IPv6)."""
        self._refuseAfterEpsvAll()
        if ":" in self.transport.getHost().host:
            raise CommandError(425, "Use EPSV on IPv6.")
        listener = self._listen()
        host = self.factory.masquerade or self.transport.getHost().host
        self.reply(227, format_pasv(host, listener.port))

    def ftp_EPSV(self, arg: str) -> None:
        """Open a passive data listener (RFC 2428)."""
        if arg.upper() == "ALL":
            self.epsvAll = True
            self.reply(200, "EPSV ALL ok.")
            return
        if arg and arg not in ("1", "2"):
            raise CommandError(522, "Network protocol not supported, use (1,2).")
        listener = self._listen()
        self.reply(229, format_epsv(listener.port))

    def _startTransfer(self) -> tuple[_Transfer, Deferred[DataProtocol]]:
        listener = self.passive
        if listener is None:
            raise CommandError(425, "Use PORT, EPRT, PASV or EPSV first.")
        self.passive = None
        transfer = self.transfer = _Transfer(listener)
        d = listener.connection()
        d.addTimeout(self.factory.dataTimeout, self.factory.reactor)
        return transfer, d

    def _endTransfer(self, transfer: _Transfer, code: int, text: str) -> None:
        if self.transfer is transfer:
            self.transfer = None
        transfer.listener.close()
        if transfer.file is not None:
            transfer.file.close()
            transfer.file = None
        if not transfer.aborted:
            self.reply(code, text)
        self._next()

    def _abortTransfer(self) -> Deferred[None] | None:
        """Stop the transfer; None if there was none, else a Deferred fired once undone.

        An upload's temporary file is removed before the data connection is
        closed, so a client that sees the close sees no litter.
        """
        transfer, self.transfer = self.transfer, None
        if transfer is None:
            return None
        transfer.aborted = True
        transfer.listener.stop()
        protocol = transfer.listener.protocol
        if protocol is not None and protocol.transport is not None and not protocol.lost:
            protocol.transport.pauseProducing()
        done: Deferred[None] = succeed(None)
        upload, transfer.upload = transfer.upload, None
        if upload is not None:
            sink = transfer.sink
            if sink is not None:
                done = sink.stop()
            done.addCallback(lambda _: upload.abort())
        done.addErrback(lambda f: log.error("discarding an aborted upload failed",
                                            exc_info=f.value))
        done.addCallback(lambda _: transfer.listener.close())
        return done

    def ftp_ABOR(self, arg: str) -> Deferred[None] | None:
        """Abort the transfer in progress, if any."""
        aborted = self._abortTransfer()
        if aborted is None:
            self.reply(225, "No transfer to abort.")
            return None

        def answer(_: object) -> None:
            self.reply(426, "Connection closed; transfer aborted.")
            self.reply(226, "ABOR successful.")
            self._next()

        return aborted.addCallback(answer)

    def _sendLines(self, lines: Iterable[str]) -> Deferred[None]:
        transfer, connected = self._startTransfer()
        self.reply(150, "Here comes the listing.")

        def send(protocol: DataProtocol) -> Deferred[None]:
            # Lines are formatted as the connection takes them: a directory of a
            # million entries is never one string in memory.
            sender = ChunkSender(protocol.transport, lineChunks(lines), self.factory.reactor,
                                 self.factory.writeLimit)

            def sent(_: int) -> Deferred[None]:
                protocol.transport.loseConnection()
                return protocol.closed
            return sender.start().addCallback(sent)

        connected.addCallback(send).addCallbacks(
            lambda _: self._endTransfer(transfer, 226, "Transfer complete."),
            lambda f: self._endTransfer(transfer, *_transferError(f)))
        return succeed(None)

    def _list(self, arg: str, format: Callable[[FileInfo], str]) -> Deferred[None]:
        # Clients send "LIST -la"; options are not supported, so ignore them.
        words = [w for w in arg.split(" ") if w and not w.startswith("-")] if arg else []
        path = self.path(" ".join(words) or ".")
        if self.passive is None:
            raise CommandError(425, "Use PORT, EPRT, PASV or EPSV first.")

        def got(info: FileInfo) -> Deferred[list[FileInfo]]:
            if info.isDirectory:
                return self.filesystem.listDirectory(path)
            return succeed([info])

        return self.filesystem.stat(path).addCallback(got).addCallback(
            lambda infos: self._sendLines(format(info) for info in infos))

    def ftp_LIST(self, arg: str) -> Deferred[None]:
        """``ls -l`` style listing over the data connection."""
        now = time.time()
        return self._list(arg, lambda info: formatListLine(info, now))

    def ftp_NLST(self, arg: str) -> Deferred[None]:
        """Names only over the data connection."""
        return self._list(arg, lambda info: info.name)

    def ftp_MLSD(self, arg: str) -> Deferred[None]:
        """Machine-readable listing of a directory (RFC 3659)."""
        path = self.path(arg or ".")
        if self.passive is None:
            raise CommandError(425, "Use PORT, EPRT, PASV or EPSV first.")

        def got(info: FileInfo) -> Deferred[list[FileInfo]]:
            if not info.isDirectory:
                raise CommandError(501, "Not a directory.")
            return self.filesystem.listDirectory(path)

        return self.filesystem.stat(path).addCallback(got).addCallback(
            lambda infos: self._sendLines(
                self._facts(info) for info in infos))

    def ftp_RETR(self, arg: str) -> Deferred[None]:
        """Send a file, from the REST offset, with sendfile where possible."""
        offset, self.restOffset = self.restOffset, 0
        if self.passive is None:
            raise CommandError(425, "Use PORT, EPRT, PASV or EPSV first.")

        def opened(file: IO[bytes]) -> None:
            if self.disconnected or self.passive is None:
                file.close()
                return
            size = os.fstat(file.fileno()).st_size
            if offset > size:
                file.close()
                raise CommandError(554, "Restart offset beyond the end of the file.")
            transfer, connected = self._startTransfer()
            transfer.file = file
            mode = "BINARY" if self.binary else "ASCII"
            self.reply(150, f"Opening {mode} mode data connection ({size - offset} bytes).")

            def send(protocol: DataProtocol) -> Deferred[None]:
                def sent(_: int) -> Deferred[None]:
                    protocol.transport.loseConnection()
                    return protocol.closed
                # sendfile (zero-copy) for binary, unthrottled transfers.
                return sendData(protocol.transport, file, offset, size - offset,
                                self.factory.reactor, ascii=not self.binary,
                                limit=self.factory.writeLimit).addCallback(sent)

            connected.addCallback(send).addCallbacks(
                lambda _: self._endTransfer(transfer, 226, "Transfer complete."),
                lambda f: self._endTransfer(transfer, *_transferError(f)))

        return self.filesystem.openForReading(self.path(arg)).addCallback(opened)

    def _store(self, arg: str, append: bool, offset: int = 0,
               unique: bool = False) -> Deferred[None]:
        if self.passive is None:
            raise CommandError(425, "Use PORT, EPRT, PASV or EPSV first.")

        def opened(result: tuple[str, IUpload]) -> None:
            preface, raw = result
            if self.disconnected or self.passive is None:
                raw.abort()
                return
            upload = wrapUpload(raw, self.factory.reactor, ascii=not self.binary,
                                limit=self.factory.readLimit)
            transfer, connected = self._startTransfer()
            transfer.upload = upload
            self.reply(150, preface)

            def receive(protocol: DataProtocol) -> Deferred[None]:
                # A throttled upload keeps a smaller backlog: about a second's worth.
                backlog = min(1 << 20, max(self.factory.readLimit or 1 << 20, 1 << 14))
                sink = transfer.sink = UploadSink(upload, protocol.transport, backlog)
                protocol.attach(sink)
                return protocol.closed.addCallback(lambda _: sink.drain())

            def completed(_: object) -> Deferred[None] | None:
                if transfer.upload is None:
                    return None  # aborted meanwhile, already discarded
                transfer.upload = None
                return upload.commit()

            def failed(failure: Failure) -> Deferred[None] | Failure:
                if transfer.upload is None:
                    return failure
                transfer.upload = None
                # No write may still run when the file is closed and removed.
                stopped = transfer.sink.stop() if transfer.sink is not None else succeed(None)
                return stopped.addCallback(lambda _: upload.abort()).addBoth(lambda _: failure)

            connected.addCallback(receive).addCallback(completed).addErrback(
                failed).addCallbacks(
                lambda _: self._endTransfer(transfer, 226, "Transfer complete."),
                lambda f: self._endTransfer(transfer, *_transferError(f)))

        opening: Deferred[tuple[str, IUpload]]
        if unique:
            opening = self.filesystem.openUnique(self.path(arg or "file")).addCallback(
                lambda chosen: (f"FILE: {posixpath.basename(chosen[0])}", chosen[1]))
        else:
            opening = self.filesystem.openForWriting(self.path(arg), append, offset).addCallback(
                lambda upload: ("Ready to receive the data.", upload))
        return opening.addCallback(opened)

    def ftp_STOR(self, arg: str) -> Deferred[None]:
        """Receive a file; it replaces the old one only once complete.

        After ``REST n`` the upload resumes in place instead: the file (at
        least n bytes long, else 554) is written from byte n and cut where the
        upload ends, complete or not, so the client can resume again from
        ``SIZE``. The offset counts bytes of the file, in TYPE A too.
        """
        offset, self.restOffset = self.restOffset, 0
        d = self._store(arg, append=False, offset=offset)

        def beyond(failure: Failure) -> None:
            failure.trap(ValueError)
            raise CommandError(554, "Restart offset beyond the end of the file.")

        return d.addErrback(beyond) if offset else d

    def ftp_APPE(self, arg: str) -> Deferred[None]:
        """Receive bytes appended to a file (REST before it is refused: 554)."""
        if self.restOffset:
            self.restOffset = 0
            raise CommandError(554, "REST is not allowed with APPE, which always appends.")
        return self._store(arg, append=True)

    def ftp_STOU(self, arg: str) -> Deferred[None]:
        """Receive a file under a new name (``150 FILE: name``, RFC 1123 4.1.2.9).

        The name is the argument if no file has it, else the argument (or
        ``file``) with a random suffix.
        """
        if self.restOffset:
            self.restOffset = 0
            raise CommandError(554, "REST is not allowed with STOU.")
        return self._store(arg, append=False, unique=True)

    def _facts(self, info: FileInfo, name: str | None = None) -> str:
        """An MLSD/MLST line with the facts the client selected (OPTS MLST)."""
        return formatFacts(info, self.permissions, name, getattr(self, "mlstFacts", None))
