"""An FTP client (RFC 959, 2389, 2428, 3659) whose operations return Deferreds.

Example::

    from protocols.ftp.client import connectFTP

    async def fetch(reactor):
        ftp = await connectFTP(reactor, "127.0.0.1", 2121, "alice", "secret")
        print(await ftp.pwd())
        for entry in await ftp.mlsd("/"):
            print(entry.name, entry.type, entry.size)
        with open("copy.bin", "wb") as f:
            await ftp.retrieveFile("big.bin", f)
        await ftp.quit()

Every operation is queued: one runs at a time, in the order they were asked
for, so several may be started without waiting. Data transfers are passive
by default (EPSV, falling back to PASV when the server refuses it) and
binary (TYPE I). A refused command fails with ``FTPCommandError``, carrying
the server's reply code and text.

The client keeps its own reply parsing (``ReplyParser``, in the sans-I/O
module ``_client_parsing``) apart from the server's, so that it depends on
nothing but the core packages.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from deferred import Deferred, DeferredLock, Failure, ensureDeferred
from protocols.base import Protocol, connectionDone
from protocols.ftp._client_data import (
    IBodyProducer,
    _ActiveFactory,
    _DataProtocol,
    _FileProducer,
    _sink_for,
)
from protocols.ftp._client_parsing import (
    _ERRORS,
    ENCODING,
    FTPCommandError,
    FTPEntry,
    FTPError,
    FTPProtocolError,
    Reply,
    ReplyParser,
    _parse_epsv,
    _parse_mdtm,
    _parse_pasv,
    _parse_pwd,
    parseListLine,
    parseMlsdLine,
)
from reactor.error import ConnectionDone

__all__ = [
    "FTPClient",
    "FTPCommandError",
    "FTPEntry",
    "FTPError",
    "FTPProtocolError",
    "IBodyProducer",
    "Reply",
    "ReplyParser",
    "connectFTP",
    "parseListLine",
    "parseMlsdLine",
]

log = logging.getLogger(__name__)

# Aliases: inside FTPClient the name ``list`` is the LIST operation.
_Entries = list[FTPEntry]
_Names = list[str]

def _check_argument(*texts: str) -> None:
    # A CR or LF inside an argument would let it smuggle in a second command.
    for text in texts:
        if "\r" in text or "\n" in text:
            raise ValueError(f"FTP arguments cannot contain line breaks: {text!r}")


# -- the protocol -------------------------------------------------------------------------


class FTPClient(Protocol):
    """The control connection of an FTP session.

    Usually made by ``connectFTP``. Every public operation returns a
    Deferred (awaitable) and is queued behind those already asked for.

    Args:
        reactor: Used to open data connections; the installed reactor when None.
        passive: Open data connections passively (EPSV, else PASV); when
            False, actively (the server connects to us: EPRT, else PORT).
        timeout: Seconds allowed to open a data connection.

    Attributes:
        greeting: Fires with the server's welcome reply once it arrives.
        welcome: The welcome reply, once received.
    """

    @property
    def _transport(self) -> Any:
        return self.transport

    def __init__(self, reactor: Any = None, passive: bool = True,
                 timeout: float = 30.0) -> None:
        self._reactor = reactor
        self.passive = passive
        self.timeout = timeout
        self.greeting: Deferred[Reply] = Deferred()
        self.welcome: Reply | None = None
        self._parser = ReplyParser()
        self._replies: deque[Reply] = deque()
        self._waiters: deque[Deferred[Reply]] = deque()
        self._lock = DeferredLock()
        self._lost: Failure | None = None
        self._closed: Deferred[None] = Deferred()
        self._epsv = True
        self._eprt = True
        self._tls: Any = None  # the SSLContext, once the control connection is secured
        self._tlsHostname: str | None = None
        self._protected = False  # PROT P: data connections use TLS too
        self._binary = False

    # -- connection events --

    def dataReceived(self, data: bytes) -> None:
        if self._lost is not None:
            return  # after garbage: the connection is being aborted
        try:
            replies = self._parser.feed(data)
        except FTPProtocolError as e:
            log.warning("FTP server sent garbage, closing: %s", e)
            self._fail(Failure(e))
            self._transport.abortConnection()
            return
        for reply in replies:
            self._replyReceived(reply)

    def _replyReceived(self, reply: Reply) -> None:
        if not self.greeting.called:
            self.welcome = reply
            if reply.code == 220:
                self.greeting.callback(reply)
            elif not reply.preliminary:  # 120 "ready soon" is followed by 220
                self.greeting.errback(reply.error())
            return
        if not self._waiters:
            self._replies.append(reply)
            return
        waiter = self._waiters.popleft()
        if waiter.called:
            # Whoever waited was cancelled: the reply is still theirs (so the
            # session stays in step), and so is the final reply after a 1xx.
            if reply.preliminary:
                self._waiters.appendleft(waiter)
            return
        waiter.callback(reply)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._fail(reason)
        if not self._closed.called:
            self._closed.callback(None)

    def _fail(self, reason: Failure) -> None:
        if self._lost is None:
            self._lost = reason
        if not self.greeting.called:
            self.greeting.errback(reason)
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.called:
                waiter.errback(reason)

    # -- the command machinery --

    def _nextReply(self) -> Deferred[Reply]:
        if self._replies:
            d: Deferred[Reply] = Deferred()
            d.callback(self._replies.popleft())
            return d
        if self._lost is not None:
            d = Deferred()
            d.errback(self._lost)
            return d
        d = Deferred()
        self._waiters.append(d)
        return d

    async def _command(self, line: str) -> Reply:
        """Send one command and return its first reply (which may be a 1xx)."""
        while self._replies:
            # Only a reply nobody asked for (a 421 on idle, say) can be left over.
            log.info("FTP: ignoring unexpected reply %s", self._replies.popleft().lines)
        if self._lost is not None:
            self._lost.raiseException()
        self._transport.write(line.encode(ENCODING, _ERRORS) + b"\r\n")
        return await self._nextReply()

    async def _final(self, reply: Reply) -> Reply:
        """Skip preliminary replies: the one that completes the command."""
        while reply.preliminary:
            reply = await self._nextReply()
        return reply

    async def _expect(self, line: str, *ok: int) -> Reply:
        """Send a command; its final reply must start with one of ``ok`` (digit or code)."""
        reply = await self._final(await self._command(line))
        if not _matches(reply.code, ok):
            raise reply.error()
        return reply

    def _queue(self, operation: Callable[[], Any]) -> Deferred[Any]:
        """Run ``operation`` (an async function) once every earlier operation is done."""
        async def run() -> Any:
            await self._lock.acquire()
            try:
                return await operation()
            finally:
                self._lock.release()
        return ensureDeferred(run())

    # -- session --

    def login(self, user: str = "anonymous", password: str = "") -> Deferred[Reply]:
        """USER then, when asked, PASS. Fires with the 230 reply; 530 fails."""
        _check_argument(user, password)
        async def op() -> Reply:
            reply = await self._final(await self._command(f"USER {user}"))
            if reply.code == 331:
                reply = await self._final(
                    await self._command(f"PASS {password}"))
            if reply.code // 100 != 2:
                raise reply.error()
            return reply
        return self._queue(op)

    def quit(self) -> Deferred[None]:
        """QUIT, then close the connection; fires once it is closed."""
        async def op() -> None:
            if self._lost is None:
                try:
                    await self._expect("QUIT", 2)
                finally:
                    self._transport.loseConnection()
            await self._closed
        return self._queue(op)

    def noop(self) -> Deferred[Reply]:
        """NOOP: keeps the session alive."""
        return self._queue(lambda: self._expect("NOOP", 2))

    def authTLS(self, context: Any, hostname: str | None = None) -> Deferred[Reply]:
        """Secure the control connection: AUTH TLS, then the TLS handshake (RFC 4217).

        Call before ``login`` so the password is never sent in the clear; then
        call ``protectData`` (after logging in) to encrypt the transfers too.

        Args:
            context: A client ``ssl.SSLContext`` (it decides what is verified).
            hostname: The name the certificate must carry; by default the
                server's IP address.
        """
        async def op() -> Reply:
            reply = await self._expect("AUTH TLS", 234)
            # Set here too: when connected through an endpoint, startTLS
            # updates the endpoint's wrapper protocol, not this one.
            self.transport = self._transport.startTLS(context, server_side=False,
                                                      server_hostname=hostname)
            self._tls, self._tlsHostname = context, hostname
            return reply
        return self._queue(op)

    def protectData(self) -> Deferred[Reply]:
        """PBSZ 0 and PROT P: every data connection from now on uses TLS."""
        async def op() -> Reply:
            if self._tls is None:
                raise FTPError("call authTLS first: the control connection is not secured")
            await self._expect("PBSZ 0", 2)
            reply = await self._expect("PROT P", 2)
            self._protected = True
            return reply
        return self._queue(op)

    def quote(self, line: str) -> Deferred[Reply]:
        """Send any command; fires with its final reply (any code, no error raised)."""
        _check_argument(line)
        async def op() -> Reply:
            return await self._final(await self._command(line))
        return self._queue(op)

    # -- directories --

    def pwd(self) -> Deferred[str]:
        """PWD: the current directory."""
        async def op() -> str:
            return _parse_pwd(await self._expect("PWD", 257))
        return self._queue(op)

    def cwd(self, path: str) -> Deferred[Reply]:
        """CWD: change directory."""
        _check_argument(path)
        return self._queue(lambda: self._expect(f"CWD {path}", 2))

    def cdup(self) -> Deferred[Reply]:
        """CDUP: go to the parent directory."""
        return self._queue(lambda: self._expect("CDUP", 2))

    def makeDirectory(self, path: str) -> Deferred[str]:
        """MKD: fires with the new directory's path as the server names it."""
        _check_argument(path)
        async def op() -> str:
            reply = await self._expect(f"MKD {path}", 2)
            try:
                return _parse_pwd(reply)
            except FTPProtocolError:
                return path
        return self._queue(op)

    def removeDirectory(self, path: str) -> Deferred[Reply]:
        """RMD: remove an (empty) directory."""
        _check_argument(path)
        return self._queue(lambda: self._expect(f"RMD {path}", 2))

    # -- files --

    def delete(self, path: str) -> Deferred[Reply]:
        """DELE: remove a file."""
        _check_argument(path)
        return self._queue(lambda: self._expect(f"DELE {path}", 2))

    removeFile = delete

    def rename(self, pathFrom: str, pathTo: str) -> Deferred[Reply]:
        """RNFR then RNTO."""
        _check_argument(pathFrom, pathTo)
        async def op() -> Reply:
            await self._expect(f"RNFR {pathFrom}", 350)
            return await self._expect(f"RNTO {pathTo}", 2)
        return self._queue(op)

    def size(self, path: str) -> Deferred[int]:
        """SIZE (in binary mode, so it is the byte count)."""
        _check_argument(path)
        async def op() -> int:
            await self._setBinary()
            reply = await self._expect(f"SIZE {path}", 213)
            try:
                return int(reply.text.strip())
            except ValueError:
                raise FTPProtocolError(f"bad SIZE reply: {reply.text[:80]!r}") from None
        return self._queue(op)

    def modificationTime(self, path: str) -> Deferred[datetime]:
        """MDTM: the file's modification time, as an aware UTC datetime."""
        _check_argument(path)
        async def op() -> datetime:
            return _parse_mdtm(await self._expect(f"MDTM {path}", 213))
        return self._queue(op)

    # -- listings --

    def list(self, path: str | None = None) -> Deferred[_Entries]:
        """LIST, parsed line by line (``parseListLine``)."""
        _check_argument(path or "")
        async def op() -> _Entries:
            lines = await self._listing("LIST", path)
            return [e for e in map(parseListLine, lines) if e is not None]
        return self._queue(op)

    def nlst(self, path: str | None = None) -> Deferred[_Names]:
        """NLST: the names only."""
        _check_argument(path or "")
        return self._queue(lambda: self._listing("NLST", path))

    def mlsd(self, path: str | None = None) -> Deferred[_Entries]:
        """MLSD: entries with their facts (RFC 3659)."""
        _check_argument(path or "")
        async def op() -> _Entries:
            return [parseMlsdLine(line) for line in await self._listing("MLSD", path)]
        return self._queue(op)

    async def _listing(self, verb: str, path: str | None) -> _Names:
        chunks: list[bytes] = []
        line = verb if path is None else f"{verb} {path}"
        await self._transfer(line, sink=chunks.append)
        text = b"".join(chunks).decode(ENCODING, _ERRORS)
        return [item.rstrip("\r") for item in text.split("\n") if item.strip("\r")]

    # -- transfers --

    def retrieveFile(self, path: str, consumer: Any, offset: int = 0) -> Deferred[Reply]:
        """RETR ``path`` into ``consumer``; with ``offset``, REST first (resume).

        Args:
            path: The remote file.
            consumer: A file opened for binary writing, an ``IConsumer`` (it is
                given the data connection as its producer, so it can pause the
                download), or a protocol (its ``dataReceived`` gets the data).
            offset: Start this many bytes into the file.

        Returns:
            A Deferred firing with the final (226) reply.
        """
        _check_argument(path)
        sink = _sink_for(consumer)

        async def op() -> Reply:
            await self._setBinary()
            rest = [f"REST {offset}"] if offset else []
            return await self._transfer(f"RETR {path}", sink=sink,
                                        consumer=consumer, before=rest)
        return self._queue(op)

    def storeFile(self, path: str, source: Any, append: bool = False) -> Deferred[Reply]:
        """STOR (or APPE with ``append``) ``source`` to ``path``.

        Args:
            path: The remote file.
            source: A binary file (read a chunk at a time, only as fast as the
                connection takes it, so it never sits whole in memory) or a
                body producer (``startProducing(consumer) -> Deferred``).
            append: Append to the remote file instead of replacing it.

        Returns:
            A Deferred firing with the final (226) reply.
        """
        _check_argument(path)
        if not hasattr(source, "read") and not isinstance(source, IBodyProducer):
            raise TypeError(f"cannot upload {source!r}: need read() or startProducing()")

        async def op() -> Reply:
            await self._setBinary()
            verb = "APPE" if append else "STOR"
            return await self._transfer(f"{verb} {path}", source=source)
        return self._queue(op)

    async def _setBinary(self) -> None:
        if not self._binary:
            await self._expect("TYPE I", 2)
            self._binary = True

    async def _openPassive(self, protocol: _DataProtocol) -> None:
        port = None
        if self._epsv:
            reply = await self._final(await self._command("EPSV"))
            if reply.code == 229:
                port = _parse_epsv(reply)
            elif reply.code // 100 == 5:
                self._epsv = False  # not understood: use PASV from now on
            else:
                raise reply.error()
        if port is None:
            port = _parse_pasv(await self._expect("PASV", 227))
        # The control connection's peer, not the address in the reply: a server
        # behind NAT often names its private address there.
        host = self._transport.getPeer().host
        from reactor.endpoints import TCP4ClientEndpoint, connectProtocol
        endpoint = TCP4ClientEndpoint(self._getReactor(), host, port, timeout=self.timeout)
        await connectProtocol(endpoint, protocol)

    async def _openActive(self, protocol: _DataProtocol) -> Any:
        """Listen on the control connection's local address; EPRT, else PORT."""
        local = self._transport.getHost().host
        factory = _ActiveFactory(protocol, self._transport.getPeer().host)
        listening = self._getReactor().listenTCP(0, factory, interface=local)
        try:
            port = listening.getHost().port
            if self._eprt:
                family = 2 if ":" in local else 1
                reply = await self._final(await self._command(f"EPRT |{family}|{local}|{port}|"))
                if reply.code // 100 == 2:
                    return listening
                if reply.code // 100 != 5 or family == 2:
                    raise reply.error()
                self._eprt = False  # not understood: use PORT from now on
            numbers = local.replace(".", ",")
            await self._expect(f"PORT {numbers},{port >> 8},{port & 255}", 2)
            return listening
        except BaseException:
            await listening.stopListening()
            raise

    async def _transfer(self, line: str, sink: Callable[[bytes], object] | None = None,
                        consumer: Any = None, source: Any = None,
                        before: Sequence[str] = ()) -> Reply:
        """Open a data connection, send ``before`` then ``line``, move the data."""
        tls = self._tls if self._protected else None
        data = _DataProtocol(sink, consumer, tls, self._tlsHostname)
        listening = None
        if self.passive:
            await self._openPassive(data)
        else:
            listening = await self._openActive(data)
        pending: Reply | None = None  # a 1xx whose final reply is still to be read
        complete = True
        try:
            for command in before:
                await self._expect(command, 3)
            first = await self._command(line)
            if not first.preliminary:
                if first.code // 100 == 2:  # finished without a data exchange
                    return first
                raise first.error()
            pending = first
            if not data.connected:
                made = data.whenMade()
                made.addTimeout(self.timeout, self._getReactor())
                await made
            if listening is not None:
                await listening.stopListening()
                listening = None
            if source is not None:
                complete = await self._send(data, source)
                data._transport.loseConnection()
            await data.whenLost()
            pending = None
            final = await self._final(first)
        except BaseException:
            if data.connected:
                data.abort()
                await data.whenLost()
            if pending is not None:
                await self._drain(pending)
            raise
        finally:
            if listening is not None:
                await listening.stopListening()
        if final.code // 100 != 2:
            raise final.error()
        reason = data.reason
        if not complete:
            raise FTPProtocolError("the server closed the data connection during the upload")
        if reason is not None and not reason.check(ConnectionDone):
            raise FTPProtocolError(f"data connection lost: {reason.getErrorMessage()}")
        return final

    async def _drain(self, pending: Reply) -> None:
        """After a transfer failed on our side, read the server's closing reply
        (426 or so), so that it is not taken for the next command's reply."""
        final: Deferred[Reply] = ensureDeferred(self._final(pending))
        final.addTimeout(self.timeout, self._getReactor())
        try:
            await final
        except Exception as e:
            log.debug("FTP: no reply after a failed transfer: %s", e)

    async def _send(self, data: _DataProtocol, source: Any) -> bool:
        """Copy ``source`` to the data connection at the pace the connection takes it.

        Returns:
            False when the server closed the data connection before the end.
        """
        producer = _FileProducer(source) if hasattr(source, "read") else source
        sent = producer.startProducing(data._transport)
        # Whichever comes first: the producer is done, or the connection closed
        # (the transport then calls stopProducing, and a stopped producer's
        # Deferred never fires).
        done: Deferred[bool] = Deferred()

        def finished(result: object) -> None:
            if done.called:
                return  # already lost: nothing more to report
            if isinstance(result, Failure):
                done.errback(result)
            else:
                done.callback(True)

        def lost(_: None) -> None:
            if not done.called:
                producer.stopProducing()
                done.callback(False)

        sent.addBoth(finished)
        data.whenLost().addCallback(lost)
        return await done

    def _getReactor(self) -> Any:
        if self._reactor is None:
            import reactor
            self._reactor = reactor
        return self._reactor


def _matches(code: int, ok: tuple[int, ...]) -> bool:
    return any(code == want or (want < 10 and code // 100 == want) for want in ok)


# -- connecting ---------------------------------------------------------------------------


def connectFTP(reactor: Any, host: str, port: int = 21, user: str | None = "anonymous",
               password: str = "", passive: bool = True, timeout: float = 30.0,
               tls: Any = None, tlsHostname: str | None = None) -> Deferred[FTPClient]:
    """Connect, wait for the welcome, log in; fires with the ready ``FTPClient``.

    Args:
        reactor: The reactor (or the ``reactor`` module).
        host: Server host name or address.
        port: Server port.
        user: User name; None skips logging in.
        password: Password.
        passive: Passive data connections (EPSV/PASV); False for active ones
            (EPRT/PORT), where the server connects back to this host.
        timeout: Seconds for the connection, the welcome and the login.
        tls: A client ``ssl.SSLContext``: explicit FTPS (AUTH TLS before the
            login, then PBSZ 0 and PROT P after it, so transfers are encrypted
            too). A server that refuses AUTH TLS makes the connection fail;
            nothing is ever sent in the clear instead.
        tlsHostname: The name the server's certificate must carry (default:
            ``host``).

    Returns:
        A Deferred firing with the client, or failing with the connection
        error, ``FTPCommandError`` (530 for a bad login), or ``TimeoutError``.
    """
    from reactor.endpoints import TCP4ClientEndpoint, connectProtocol

    client = FTPClient(reactor, passive=passive, timeout=timeout)

    async def run() -> FTPClient:
        endpoint = TCP4ClientEndpoint(reactor, host, port, timeout=timeout)
        await connectProtocol(endpoint, client)
        try:
            await client.greeting
            if tls is not None:
                await client.authTLS(tls, host if tlsHostname is None else tlsHostname)
            if user is not None:
                await client.login(user, password)
            if tls is not None:
                await client.protectData()
        except BaseException:
            client._transport.abortConnection()
            raise
        return client

    d = ensureDeferred(run())
    d.addTimeout(timeout, reactor)
    return d
