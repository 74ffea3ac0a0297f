"""The FTP client: reply and listing parsing alone, then against a real pyftpdlib server.

pyftpdlib (a test-only dependency) runs its own loop in a thread of the test
process, on 127.0.0.1 and a port chosen by the system; every socket test runs
once per reactor backend.
"""

from __future__ import annotations

import hashlib
import io
import os
import ssl
import threading
import tracemalloc
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import trustme

with warnings.catch_warnings():  # pyftpdlib imports asyncore/asynchat
    warnings.simplefilter("ignore", DeprecationWarning)
    from pyftpdlib.authorizers import DummyAuthorizer
    from pyftpdlib.handlers import FTPHandler
    from pyftpdlib.ioloop import IOLoop
    from pyftpdlib.servers import FTPServer

from deferred import CancelledError, Deferred, gatherResults
from protocols.base import Factory, Protocol
from protocols.basic import LineReceiver
from protocols.ftp.client import (
    FTPClient,
    FTPCommandError,
    FTPEntry,
    FTPProtocolError,
    Reply,
    ReplyParser,
    connectFTP,
    parseListLine,
    parseMlsdLine,
)
from reactor.error import ConnectionDone
from reactor.testing import StringTransport

# -- without sockets ----------------------------------------------------------------------


def test_single_and_multi_line_replies() -> None:
    parser = ReplyParser()
    assert parser.feed(b"220 hello\r\n") == [Reply(220, ["220 hello"])]
    assert parser.feed(b"211-Features:\r\n EPSV\r\n 211 x\r\n211-y\r\n") == []
    assert parser.feed(b"211 End\r\n") == [
        Reply(211, ["211-Features:", " EPSV", " 211 x", "211-y", "211 End"])]


def test_reply_split_anywhere_and_bare_lf() -> None:
    parser = ReplyParser()
    data = b"150-one\r\n150 two\n226 done\r\n"
    replies = [r for i in range(len(data)) for r in parser.feed(data[i:i + 1])]
    assert [(r.code, r.text) for r in replies] == [(150, "one\ntwo"), (226, "done")]
    assert replies[0].preliminary and not replies[1].preliminary


def test_garbage_and_overlong_replies_are_errors() -> None:
    with pytest.raises(FTPProtocolError):
        ReplyParser().feed(b"hello there\r\n")
    with pytest.raises(FTPProtocolError):
        ReplyParser().feed(b"2" * (ReplyParser.MAX_LINE + 1))


def test_command_error_carries_code_and_text() -> None:
    error = Reply(550, ["550-No such", "550 file."]).error()
    assert isinstance(error, FTPCommandError)
    assert (error.code, error.text) == (550, "No such\nfile.")
    assert str(error) == "550 No such\nfile."


def test_parse_mlsd_line() -> None:
    entry = parseMlsdLine("type=file;Size=12;modify=20240102030405; a name; with;semis")
    assert entry.name == "a name; with;semis"
    assert (entry.type, entry.size) == ("file", 12)
    assert entry.facts == {"type": "file", "size": "12", "modify": "20240102030405"}
    assert parseMlsdLine("type=dir;perm=el; sub").type == "dir"
    with pytest.raises(FTPProtocolError):
        parseMlsdLine("nospace")


def test_parse_list_lines() -> None:
    assert parseListLine("total 12") is None
    entry = parseListLine("-rw-r--r--   1 owner group   1234 Jan  5 12:00 my file.txt")
    assert entry == FTPEntry(name="my file.txt", type="file", size=1234, raw=entry.raw
                             if entry else "")
    entry = parseListLine("drwxr-xr-x 2 1000 1000 4096 Mar 10  2020 sub")
    assert entry is not None and (entry.name, entry.type, entry.size) == ("sub", "dir", 4096)
    entry = parseListLine("lrwxrwxrwx 1 u 3 Jan 1 2001 link -> target")
    assert entry is not None
    assert (entry.name, entry.type, entry.target) == ("link", "link", "target")
    entry = parseListLine("01-02-24  10:11AM       <DIR>          Docs")
    assert entry is not None and (entry.name, entry.type, entry.size) == ("Docs", "dir", None)
    entry = parseListLine("01-02-24  10:11PM              77 a.txt")
    assert entry is not None and (entry.name, entry.type, entry.size) == ("a.txt", "file", 77)
    entry = parseListLine("something odd")
    assert entry is not None and (entry.name, entry.type) == ("something odd", None)


def test_commands_are_queued_one_at_a_time() -> None:
    client = FTPClient(reactor=object())
    transport = StringTransport()
    client.makeConnection(transport)
    client.dataReceived(b"220 welcome\r\n")
    first, second = client.pwd(), client.cwd("/x")
    assert transport.value() == b"PWD\r\n"  # CWD waits for PWD's reply
    client.dataReceived(b'257 "/a ""q"" b" is current\r\n')
    assert transport.value() == b"PWD\r\nCWD /x\r\n"
    client.dataReceived(b"550 no\r\n")
    results: list[Any] = []
    first.addCallback(results.append)
    second.addErrback(lambda f: results.append(f.value.code))
    assert results == ['/a "q" b', 550]


def test_line_breaks_in_arguments_are_refused() -> None:
    client = FTPClient(reactor=object())
    client.makeConnection(StringTransport())
    with pytest.raises(ValueError):
        client.cwd("a\r\nDELE b")


# -- against pyftpdlib --------------------------------------------------------------------


@dataclass
class Server:
    home: Path
    port: int
    handler: type[FTPHandler]


def _start_server(home: Path, handler: type[FTPHandler]) -> Iterator[Server]:
    authorizer = DummyAuthorizer()
    authorizer.add_user("alice", "secret", str(home), perm="elradfmwMT")
    handler.authorizer = authorizer
    handler.auth_failed_timeout = 0  # answer a bad password at once
    server = FTPServer(("127.0.0.1", 0), handler, ioloop=IOLoop())
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            server.serve_forever(timeout=0.02, blocking=False, handle_exit=False)

    thread = threading.Thread(target=serve, name="pyftpdlib", daemon=True)
    thread.start()
    try:
        yield Server(home, server.socket.getsockname()[1], handler)
    finally:
        stop.set()
        thread.join()
        server.close_all()


class Handler(FTPHandler):  # type: ignore[misc]
    pass


class NoEpsvHandler(FTPHandler):  # type: ignore[misc]
    """A server that does not know EPSV, so the client must fall back to PASV."""

    pasv_seen = 0

    def ftp_EPSV(self, line: str) -> None:
        self.respond("500 Command not understood.")

    def ftp_PASV(self, line: str) -> None:
        type(self).pasv_seen += 1
        super().ftp_PASV(line)


# Depending on `reactor` makes the server start after, and stop before, the
# reactor fixture checks for leaked threads and descriptors.
@pytest.fixture
def ftpd(reactor: Any, tmp_path: Path) -> Iterator[Server]:
    home = tmp_path / "home"
    home.mkdir()
    yield from _start_server(home, Handler)


@pytest.fixture
def ftpd_no_epsv(reactor: Any, tmp_path: Path) -> Iterator[Server]:
    home = tmp_path / "home"
    home.mkdir()
    yield from _start_server(home, NoEpsvHandler)


async def login(reactor: Any, server: Server) -> FTPClient:
    return await connectFTP(reactor, "127.0.0.1", server.port, "alice", "secret")


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def test_login_and_directories(reactor: Any, ftpd: Server) -> None:
    ftp = await login(reactor, ftpd)
    assert ftp.welcome is not None and ftp.welcome.code == 220
    assert await ftp.pwd() == "/"
    assert await ftp.makeDirectory("sub dir") == "/sub dir"
    assert (ftpd.home / "sub dir").is_dir()
    await ftp.cwd("sub dir")
    assert await ftp.pwd() == "/sub dir"
    await ftp.cdup()
    assert await ftp.pwd() == "/"
    await ftp.removeDirectory("sub dir")
    assert not (ftpd.home / "sub dir").exists()
    await ftp.quit()


async def test_bad_login_is_530(reactor: Any, ftpd: Server) -> None:
    with pytest.raises(FTPCommandError) as info:
        await connectFTP(reactor, "127.0.0.1", ftpd.port, "alice", "wrong")
    assert info.value.code == 530


async def test_listings(reactor: Any, ftpd: Server) -> None:
    (ftpd.home / "a.txt").write_bytes(b"x" * 10)
    (ftpd.home / "b c.bin").write_bytes(b"")
    (ftpd.home / "d").mkdir()
    ftp = await login(reactor, ftpd)
    assert sorted(await ftp.nlst()) == ["a.txt", "b c.bin", "d"]
    listed = {e.name: (e.type, e.size) for e in await ftp.list()}
    assert listed["a.txt"] == ("file", 10)
    assert listed["b c.bin"] == ("file", 0)
    assert listed["d"][0] == "dir"
    entries = {e.name: e for e in await ftp.mlsd("/")}
    assert {"a.txt", "b c.bin", "d"} <= set(entries)
    assert (entries["a.txt"].type, entries["a.txt"].size) == ("file", 10)
    assert entries["d"].type == "dir"
    assert "modify" in entries["a.txt"].facts
    assert await ftp.nlst("d") == []
    await ftp.quit()


async def test_upload_and_download_by_hash(reactor: Any, ftpd: Server,
                                           tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    source = tmp_path / "source.bin"
    source.write_bytes(data)
    ftp = await login(reactor, ftpd)
    with source.open("rb") as f:
        reply = await ftp.storeFile("up.bin", f)
    assert reply.code == 226
    assert digest((ftpd.home / "up.bin").read_bytes()) == digest(data)
    target = tmp_path / "down.bin"
    with target.open("wb") as f:
        await ftp.retrieveFile("up.bin", f)
    assert digest(target.read_bytes()) == digest(data)
    assert await ftp.size("up.bin") == len(data)
    await ftp.quit()


class CountingReader(io.BytesIO):
    """Remembers the largest read, to show the upload never reads the file whole."""

    largest = 0
    reads = 0

    def read(self, size: int | None = -1, /) -> bytes:
        assert size is not None and size > 0
        self.largest = max(self.largest, size)
        self.reads += 1
        return super().read(size)


async def test_upload_reads_in_chunks(reactor: Any, ftpd: Server) -> None:
    data = os.urandom(1024 * 1024)
    reader = CountingReader(data)
    ftp = await login(reactor, ftpd)
    await ftp.storeFile("chunks.bin", reader)
    assert (ftpd.home / "chunks.bin").read_bytes() == data
    assert reader.largest <= 65536 and reader.reads > 10
    await ftp.quit()


async def test_resume_download_with_offset(reactor: Any, ftpd: Server) -> None:
    data = os.urandom(200_000)
    (ftpd.home / "r.bin").write_bytes(data)
    ftp = await login(reactor, ftpd)
    out = io.BytesIO()
    await ftp.retrieveFile("r.bin", out, offset=123_456)
    assert out.getvalue() == data[123_456:]
    await ftp.quit()


async def test_append(reactor: Any, ftpd: Server) -> None:
    (ftpd.home / "log.txt").write_bytes(b"first;")
    ftp = await login(reactor, ftpd)
    await ftp.storeFile("log.txt", io.BytesIO(b"second;"), append=True)
    await ftp.storeFile("new.txt", io.BytesIO(b"alone"), append=True)
    assert (ftpd.home / "log.txt").read_bytes() == b"first;second;"
    assert (ftpd.home / "new.txt").read_bytes() == b"alone"
    await ftp.quit()


async def test_rename_delete_size_mtime(reactor: Any, ftpd: Server) -> None:
    path = ftpd.home / "f.txt"
    path.write_bytes(b"12345")
    os.utime(path, (1_600_000_000, 1_600_000_000))
    ftp = await login(reactor, ftpd)
    assert await ftp.size("f.txt") == 5
    assert await ftp.modificationTime("f.txt") == datetime.fromtimestamp(1_600_000_000, UTC)
    await ftp.rename("f.txt", "g.txt")
    assert not path.exists() and (ftpd.home / "g.txt").read_bytes() == b"12345"
    await ftp.delete("g.txt")
    assert not (ftpd.home / "g.txt").exists()
    await ftp.quit()


async def test_errors_carry_codes_and_session_survives(reactor: Any, ftpd: Server) -> None:
    ftp = await login(reactor, ftpd)
    for attempt in (lambda: ftp.retrieveFile("missing", io.BytesIO()),
                    lambda: ftp.size("missing"), lambda: ftp.delete("missing"),
                    lambda: ftp.cwd("missing"), lambda: ftp.rename("missing", "x"),
                    lambda: ftp.modificationTime("missing")):
        with pytest.raises(FTPCommandError) as info:
            await attempt()
        assert info.value.code == 550, info.value
        assert info.value.text
    # Still in step with the server after all those failures.
    (ftpd.home / "here.txt").write_bytes(b"ok")
    out = io.BytesIO()
    await ftp.retrieveFile("here.txt", out)
    assert out.getvalue() == b"ok"
    await ftp.quit()


async def test_operations_started_together_run_in_order(reactor: Any, ftpd: Server) -> None:
    ftp = await login(reactor, ftpd)
    results = await gatherResults([
        ftp.makeDirectory("q"), ftp.cwd("q"),
        ftp.storeFile("in-q.txt", io.BytesIO(b"hi")), ftp.nlst(), ftp.pwd()])
    assert results[0] == "/q"
    assert results[3] == ["in-q.txt"]
    assert results[4] == "/q"
    await ftp.quit()


class BytesProducer:
    """A body producer: writes its pieces, one per reactor turn."""

    def __init__(self, reactor: Any, pieces: list[bytes]) -> None:
        self.reactor = reactor
        self.pieces = list(pieces)
        self.done: Deferred[None] = Deferred()

    def startProducing(self, consumer: Any) -> Deferred[None]:
        def more() -> None:
            if not self.pieces:
                self.done.callback(None)
                return
            consumer.write(self.pieces.pop(0))
            self.reactor.callLater(0, more)
        more()
        return self.done

    def stopProducing(self) -> None:
        self.pieces = []


async def test_store_from_producer(reactor: Any, ftpd: Server) -> None:
    ftp = await login(reactor, ftpd)
    await ftp.storeFile("p.txt", BytesProducer(reactor, [b"a" * 1000, b"b", b"c" * 5]))
    assert (ftpd.home / "p.txt").read_bytes() == b"a" * 1000 + b"b" + b"c" * 5
    await ftp.quit()


class PausingConsumer:
    """An IConsumer that pauses the download once, and resumes it on the next turn."""

    def __init__(self, reactor: Any) -> None:
        self.reactor = reactor
        self.data = bytearray()
        self.producer: Any = None
        self.pauses = 0

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        assert streaming
        self.producer = producer

    def unregisterProducer(self) -> None:
        self.producer = None

    def write(self, data: bytes) -> None:
        self.data += data
        if self.pauses == 0 and self.producer is not None:
            self.pauses += 1
            self.producer.pauseProducing()
            self.reactor.callLater(0, self.producer.resumeProducing)


async def test_retrieve_into_consumer(reactor: Any, ftpd: Server) -> None:
    data = os.urandom(500_000)
    (ftpd.home / "c.bin").write_bytes(data)
    ftp = await login(reactor, ftpd)
    consumer = PausingConsumer(reactor)
    await ftp.retrieveFile("c.bin", consumer)
    assert bytes(consumer.data) == data
    assert consumer.pauses == 1 and consumer.producer is None
    await ftp.quit()


async def test_pasv_fallback_when_epsv_refused(reactor: Any, ftpd_no_epsv: Server) -> None:
    NoEpsvHandler.pasv_seen = 0
    (ftpd_no_epsv.home / "x.txt").write_bytes(b"via pasv")
    ftp = await login(reactor, ftpd_no_epsv)
    out = io.BytesIO()
    await ftp.retrieveFile("x.txt", out)
    assert await ftp.nlst() == ["x.txt"]
    assert out.getvalue() == b"via pasv"
    assert NoEpsvHandler.pasv_seen == 2
    await ftp.quit()


async def test_connection_refused(reactor: Any) -> None:
    # A port that was listening a moment ago and is closed now.
    port = reactor.listenTCP(0, Factory.forProtocol(Protocol), interface="127.0.0.1")
    number = port.getHost().port
    await port.stopListening()
    with pytest.raises(Exception) as info:
        await connectFTP(reactor, "127.0.0.1", number, timeout=5)
    assert "refused" in str(info.value).lower() or "refused" in type(info.value).__name__.lower()


class NoEprtHandler(FTPHandler):  # type: ignore[misc]
    """A server that does not know EPRT, so an active client must fall back to PORT."""

    port_seen = 0

    def ftp_EPRT(self, line: str) -> None:
        self.respond("500 Command not understood.")

    def ftp_PORT(self, line: str) -> None:
        type(self).port_seen += 1
        super().ftp_PORT(line)


@pytest.fixture
def ftpd_no_eprt(reactor: Any, tmp_path: Path) -> Iterator[Server]:
    home = tmp_path / "home"
    home.mkdir()
    yield from _start_server(home, NoEprtHandler)


async def test_active_mode_transfers(reactor: Any, ftpd: Server) -> None:
    data = os.urandom(700_000)
    ftp = await connectFTP(reactor, "127.0.0.1", ftpd.port, "alice", "secret", passive=False)
    await ftp.storeFile("act.bin", io.BytesIO(data))
    assert digest((ftpd.home / "act.bin").read_bytes()) == digest(data)
    out = io.BytesIO()
    await ftp.retrieveFile("act.bin", out, offset=5)
    assert out.getvalue() == data[5:]
    assert [e.name for e in await ftp.mlsd()] == ["act.bin"]
    with pytest.raises(FTPCommandError) as info:
        await ftp.retrieveFile("missing", io.BytesIO())
    assert info.value.code == 550
    await ftp.quit()


async def test_port_fallback_when_eprt_refused(reactor: Any, ftpd_no_eprt: Server) -> None:
    NoEprtHandler.port_seen = 0
    (ftpd_no_eprt.home / "y.txt").write_bytes(b"via port")
    ftp = await connectFTP(reactor, "127.0.0.1", ftpd_no_eprt.port, "alice", "secret",
                           passive=False)
    out = io.BytesIO()
    await ftp.retrieveFile("y.txt", out)
    assert await ftp.nlst() == ["y.txt"]
    assert out.getvalue() == b"via port"
    assert NoEprtHandler.port_seen == 2
    await ftp.quit()


def test_active_port_accepts_only_the_server() -> None:
    from protocols.ftp._client_data import _ActiveFactory, _DataProtocol
    from reactor.address import IPv4Address
    protocol = _DataProtocol(None)
    factory = _ActiveFactory(protocol, "127.0.0.1")
    assert factory.buildProtocol(IPv4Address("TCP", "127.0.0.2", 5000)) is None
    assert factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 5000)) is protocol
    assert factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 5001)) is None


async def test_upload_refused_leaves_session_usable(reactor: Any, ftpd: Server) -> None:
    ftp = await login(reactor, ftpd)
    with pytest.raises(FTPCommandError) as info:
        await ftp.storeFile("no/such/dir/f.txt", io.BytesIO(b"data"))
    assert info.value.code == 550
    await ftp.storeFile("ok.txt", io.BytesIO(b"data"))
    assert (ftpd.home / "ok.txt").read_bytes() == b"data"
    await ftp.quit()


# -- against a scripted server, for what pyftpdlib will not do on request ------------------


class ScriptedFTP(LineReceiver):
    """A tiny FTP server: logs anyone in, and on STOR slams the data connection
    shut after the first bytes, then answers 426."""

    def connectionMade(self) -> None:
        self.data_port: Any = None
        self.sendLine(self.factory.greeting)

    def lineReceived(self, line: bytes) -> None:
        verb = line.split(b" ")[0].upper()
        replies = {b"USER": b"331 password", b"PASS": b"230 in", b"TYPE": b"200 ok",
                   b"NOOP": b"200 ok", b"STOR": b"150 go", b"PWD": b'257 "/"'}
        if verb == b"EPSV":
            self.data_port = self.factory.reactor.listenTCP(
                0, Factory.forProtocol(lambda: Slammer(self)), interface="127.0.0.1")
            self.sendLine(b"229 ok (|||%d|)" % self.data_port.getHost().port)
        elif verb == b"QUIT":
            self.sendLine(b"221 bye")
            self.transport.loseConnection()
        else:
            self.sendLine(replies.get(verb, b"502 no"))


class Slammer(Protocol):
    def __init__(self, control: ScriptedFTP) -> None:
        self.control = control
        self.received = 0

    def dataReceived(self, data: bytes) -> None:
        self.received += len(data)
        if self.control.factory.slam and self.control.data_port is not None:
            port, self.control.data_port = self.control.data_port, None
            port.stopListening()
            self.transport.abortConnection()
            self.control.sendLine(b"426 connection closed; transfer aborted")

    def connectionLost(self, reason: Any = None) -> None:
        if self.control.data_port is not None:  # the client gave up first
            self.control.data_port.stopListening()
            self.control.data_port = None
            self.control.sendLine(b"426 transfer aborted")


def scripted_server(reactor: Any, greeting: bytes = b"220 scripted", slam: bool = True) -> int:
    factory = Factory.forProtocol(ScriptedFTP)
    factory.slam = slam  # type: ignore[attr-defined]
    factory.reactor = reactor  # type: ignore[attr-defined]
    factory.greeting = greeting  # type: ignore[attr-defined]
    return int(reactor.listenTCP(0, factory, interface="127.0.0.1").getHost().port)


async def test_server_closing_during_upload(reactor: Any) -> None:
    port = scripted_server(reactor)
    ftp = await connectFTP(reactor, "127.0.0.1", port, "u", "p")
    reader = CountingReader(b"z" * (16 * 1024 * 1024))
    with pytest.raises(FTPCommandError) as info:
        await ftp.storeFile("big", reader)
    assert info.value.code == 426
    assert reader.tell() < len(reader.getvalue())  # stopped reading the file
    assert await ftp.pwd() == "/"  # the 426 was not taken for PWD's reply
    await ftp.quit()


class BrokenReader(io.BytesIO):
    def read(self, size: int | None = -1, /) -> bytes:
        if self.tell() > 100_000:
            raise OSError("disk on fire")
        return super().read(size)


async def test_source_read_error_fails_the_upload(reactor: Any) -> None:
    port = scripted_server(reactor, slam=False)
    ftp = await connectFTP(reactor, "127.0.0.1", port, "u", "p")
    with pytest.raises(OSError, match="disk on fire"):
        await ftp.storeFile("big", BrokenReader(b"z" * 1_000_000))
    assert await ftp.pwd() == "/"
    await ftp.quit()


async def test_refused_greeting(reactor: Any) -> None:
    port = scripted_server(reactor, greeting=b"421 too many users")
    with pytest.raises(FTPCommandError) as info:
        await connectFTP(reactor, "127.0.0.1", port)
    assert (info.value.code, info.value.text) == (421, "too many users")


async def test_garbage_greeting(reactor: Any) -> None:
    port = scripted_server(reactor, greeting=b"SSH-2.0-OpenSSH")
    with pytest.raises(FTPProtocolError):
        await connectFTP(reactor, "127.0.0.1", port)


async def test_silent_server_times_out(reactor: Any) -> None:
    port = reactor.listenTCP(0, Factory.forProtocol(Protocol), interface="127.0.0.1")
    with pytest.raises(Exception) as info:
        await connectFTP(reactor, "127.0.0.1", port.getHost().port, timeout=0.2)
    assert "timeout" in type(info.value).__name__.lower() or "timed out" in str(info.value)


# -- explicit FTPS (RFC 4217), against a scripted TLS server --------------------------------


@dataclass
class TLSSetup:
    server: ssl.SSLContext
    client: ssl.SSLContext


@pytest.fixture(scope="module")
def tls_contexts() -> TLSSetup:
    ca = trustme.CA()
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1").configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return TLSSetup(server, client)


class ScriptedFTPS(LineReceiver):
    """Logs anyone in; AUTH TLS, PBSZ, PROT; EPSV then one RETR or STOR per data connection.

    Every command is recorded with whether TLS was on when it arrived.
    """

    def connectionMade(self) -> None:
        self.tls_on = False
        self.protected = False
        self.data: TLSData | None = None
        self.data_port: Any = None
        self.action: tuple[str, str] | None = None
        self.sendLine(b"220 scripted ftps")

    def lineReceived(self, line: bytes) -> None:
        text = line.decode()
        verb, _, arg = text.partition(" ")
        verb = verb.upper()
        self.factory.seen.append((verb, self.tls_on))
        if verb == "AUTH" and self.factory.tls is not None:
            self.sendLine(b"234 go ahead")
            self.transport.startTLS(self.factory.tls, server_side=True)
            self.tls_on = True
        elif verb == "PROT":
            self.protected = arg == "P"
            self.sendLine(b"200 ok")
        elif verb == "EPSV":
            self.data_port = self.factory.reactor.listenTCP(
                0, Factory.forProtocol(lambda: TLSData(self)), interface="127.0.0.1")
            self.sendLine(b"229 ok (|||%d|)" % self.data_port.getHost().port)
        elif verb in ("RETR", "STOR"):
            self.sendLine(b"150 go")
            self.action = (verb, arg)
            self.go()
        elif verb == "QUIT":
            self.sendLine(b"221 bye")
            self.transport.loseConnection()
        else:
            replies = {"USER": b"331 password", "PASS": b"230 in", "TYPE": b"200 ok",
                       "PBSZ": b"200 ok"}
            self.sendLine(replies.get(verb, b"502 no"))

    def go(self) -> None:
        """Start the transfer once both the command and the data connection are here."""
        if self.data is None or self.action is None:
            return
        verb, name = self.action
        if verb == "RETR":
            self.data.transport.write(self.factory.files[name])
            self.data.transport.loseConnection()

    def dataDone(self, data: TLSData, reason: Any) -> None:
        self.data_port.stopListening()
        self.data = None
        if self.action is not None and self.action[0] == "STOR":
            self.factory.files[self.action[1]] = bytes(data.received)
        self.action = None
        if reason.check(ConnectionDone):
            self.sendLine(b"226 done")
        else:
            self.sendLine(b"426 " + reason.getErrorMessage().encode())


class TLSData(Protocol):
    def __init__(self, control: ScriptedFTPS) -> None:
        self.control = control
        self.received = bytearray()

    def connectionMade(self) -> None:
        if self.control.protected:
            self.transport.startTLS(self.control.factory.tls, server_side=True)
        self.control.data = self
        self.control.go()

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: Any = None) -> None:
        self.control.dataDone(self, reason)


def ftps_server(reactor: Any, tls: ssl.SSLContext | None) -> Any:
    factory = Factory.forProtocol(ScriptedFTPS)
    factory.reactor = reactor  # type: ignore[attr-defined]
    factory.tls = tls  # type: ignore[attr-defined]
    factory.seen = []  # type: ignore[attr-defined]
    factory.files = {}  # type: ignore[attr-defined]
    factory.port = reactor.listenTCP(0, factory, interface="127.0.0.1")  # type: ignore[attr-defined]
    return factory


async def test_explicit_tls(reactor: Any, tls_contexts: TLSSetup) -> None:
    server = ftps_server(reactor, tls_contexts.server)
    data = os.urandom(600_000)
    ftp = await connectFTP(reactor, "127.0.0.1", server.port.getHost().port, "u", "pw",
                           tls=tls_contexts.client)
    await ftp.storeFile("up.bin", io.BytesIO(data))
    assert server.files["up.bin"] == data
    out = io.BytesIO()
    await ftp.retrieveFile("up.bin", out)
    assert out.getvalue() == data
    await ftp.quit()
    verbs = [verb for verb, _ in server.seen]
    assert verbs[:6] == ["AUTH", "USER", "PASS", "PBSZ", "PROT", "TYPE"]
    assert all(tls_on for verb, tls_on in server.seen if verb != "AUTH")


async def test_tls_refused_sends_no_password(reactor: Any, tls_contexts: TLSSetup) -> None:
    server = ftps_server(reactor, None)
    with pytest.raises(FTPCommandError) as info:
        await connectFTP(reactor, "127.0.0.1", server.port.getHost().port, "u", "pw",
                         tls=tls_contexts.client)
    assert info.value.code == 502
    assert [verb for verb, _ in server.seen] == ["AUTH"]


async def test_tls_with_untrusted_certificate_fails(reactor: Any,
                                                    tls_contexts: TLSSetup) -> None:
    server = ftps_server(reactor, tls_contexts.server)
    with pytest.raises(Exception, match=r"(?i)certificate"):
        await connectFTP(reactor, "127.0.0.1", server.port.getHost().port, "u", "pw",
                         tls=ssl.create_default_context())
    assert [verb for verb, _ in server.seen] == ["AUTH"]


def test_protect_data_needs_auth_tls() -> None:
    client = FTPClient(reactor=object())
    client.makeConnection(StringTransport())
    client.dataReceived(b"220 welcome\r\n")
    failures: list[Any] = []
    client.protectData().addErrback(failures.append)
    assert len(failures) == 1 and "authTLS" in str(failures[0].value)


# -- cancelling ---------------------------------------------------------------------------


class CancellingSink:
    """Cancels the download it is given as soon as the first bytes arrive."""

    def __init__(self) -> None:
        self.download: Deferred[Any] | None = None
        self.received = 0

    def write(self, data: bytes) -> None:
        self.received += len(data)
        if self.download is not None:
            download, self.download = self.download, None
            download.cancel()


async def test_cancel_mid_download_keeps_session_in_step(reactor: Any, ftpd: Server) -> None:
    (ftpd.home / "big.bin").write_bytes(b"b" * (32 * 1024 * 1024))
    (ftpd.home / "small.txt").write_bytes(b"small")
    ftp = await login(reactor, ftpd)
    sink = CancellingSink()
    download = sink.download = ftp.retrieveFile("big.bin", sink)
    with pytest.raises(CancelledError):
        await download
    assert 0 < sink.received < 32 * 1024 * 1024
    out = io.BytesIO()
    await ftp.retrieveFile("small.txt", out)
    assert out.getvalue() == b"small"
    assert await ftp.pwd() == "/"
    await ftp.quit()


async def test_cancel_before_the_reply(reactor: Any, ftpd: Server) -> None:
    ftp = await login(reactor, ftpd)
    first = ftp.makeDirectory("m")  # sent at once
    queued = ftp.size("nothing")  # waits behind it
    first.cancel()  # MKD's reply arrives later and must not be taken for SIZE's
    with pytest.raises(CancelledError):
        await first
    with pytest.raises(FTPCommandError) as info:
        await queued
    assert info.value.code == 550
    assert await ftp.pwd() == "/"
    assert await ftp.nlst() == ["m"]
    await ftp.quit()


async def test_cancel_while_queued_sends_nothing(reactor: Any, ftpd: Server) -> None:
    ftp = await login(reactor, ftpd)
    first = ftp.pwd()
    queued = ftp.makeDirectory("never")
    queued.cancel()
    with pytest.raises(CancelledError):
        await queued
    assert await first == "/"
    assert await ftp.nlst() == []
    await ftp.quit()


async def test_upload_and_download_stay_small_in_memory(reactor: Any, ftpd: Server,
                                                        tmp_path: Path) -> None:
    size = 32 * 1024 * 1024
    source = tmp_path / "big-source.bin"
    with source.open("wb") as f:
        for _ in range(size // (1024 * 1024)):
            f.write(os.urandom(1024 * 1024))
    ftp = await login(reactor, ftpd)
    tracemalloc.start()
    try:
        with source.open("rb") as f:
            await ftp.storeFile("big.bin", f)
        with (tmp_path / "big-copy.bin").open("wb") as f:
            await ftp.retrieveFile("big.bin", f)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * 1024 * 1024, peak  # no whole file in memory (the server included)
    assert (ftpd.home / "big.bin").stat().st_size == size
    assert (tmp_path / "big-copy.bin").stat().st_size == size
    await ftp.quit()


async def test_tls_hostname_is_checked(reactor: Any, tls_contexts: TLSSetup) -> None:
    server = ftps_server(reactor, tls_contexts.server)
    with pytest.raises(Exception, match=r"(?i)hostname|certificate"):
        await connectFTP(reactor, "127.0.0.1", server.port.getHost().port, "u", "pw",
                         tls=tls_contexts.client, tlsHostname="other.example")


def test_unsolicited_reply_is_not_taken_for_the_next_one() -> None:
    client = FTPClient(reactor=object())
    transport = StringTransport()
    client.makeConnection(transport)
    client.dataReceived(b"220 welcome\r\n421-idle for too long\r\n421 bye soon\r\n")
    results: list[str] = []
    client.pwd().addCallback(results.append)
    client.dataReceived(b'257 "/here"\r\n')
    assert results == ["/here"]
    assert transport.value() == b"PWD\r\n"


class Collector(Protocol):
    def __init__(self) -> None:
        self.received = bytearray()

    def dataReceived(self, data: bytes) -> None:
        self.received += data


async def test_retrieve_into_protocol_noop_and_quote(reactor: Any, ftpd: Server) -> None:
    (ftpd.home / "p.txt").write_bytes(b"to a protocol")
    ftp = await login(reactor, ftpd)
    collector = Collector()
    await ftp.retrieveFile("p.txt", collector)
    assert bytes(collector.received) == b"to a protocol"
    assert (await ftp.noop()).code == 200
    assert (await ftp.quote("SYST")).code == 215
    assert (await ftp.quote("BOGUS")).code == 500  # quote reports, never raises
    with pytest.raises(TypeError):
        ftp.retrieveFile("p.txt", object())
    with pytest.raises(TypeError):
        ftp.storeFile("p.txt", object())
    await ftp.quit()


def test_make_directory_without_a_quoted_path() -> None:
    client = FTPClient(reactor=object())
    client.makeConnection(StringTransport())
    client.dataReceived(b"220 welcome\r\n")
    made: list[str] = []
    client.makeDirectory("plain").addCallback(made.append)
    client.dataReceived(b"257 directory created\r\n")
    assert made == ["plain"]
