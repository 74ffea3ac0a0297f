"""FTPS on the FTP server (RFC 4217): explicit AUTH TLS, PBSZ, PROT, implicit FTPS.

Against clients nobody here wrote (the stdlib's ``ftplib.FTP_TLS``, lftp, curl)
and our own ``FTPClient``, on every reactor backend. Blocking clients run in a
worker thread (``reactor.deferToThread``) while the reactor serves; certificates
come from a ``trustme`` CA. Every transfer compares the bytes on both sides.
"""

from __future__ import annotations

import argparse
import ftplib
import os
import re
import socket
import ssl
import struct
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trustme

from protocols.ftp.cli import ftp as ftp_service
from protocols.ftp.client import connectFTP
from protocols.ftp.server import FTPFactory
from reactor.tls import TLSConnection
from tests.console import ConsoleServer
from tests.tools import require_tool

USER, PASSWORD = "alice", "s3cret"
TIMEOUT = 30  # seconds a client process may take before the test fails
PAYLOAD = os.urandom(300 * 1024 + 7)  # several TLS records, not a multiple of anything


@dataclass
class Certs:
    ca: trustme.CA
    server: ssl.SSLContext  # the server's context, with its certificate
    client: ssl.SSLContext  # a client context trusting the CA (names checked)
    ca_file: str
    cert_file: str
    key_file: str


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    leaf.configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    where = tmp_path_factory.mktemp("certs")
    ca_file, cert_file, key_file = where / "ca.pem", where / "cert.pem", where / "key.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    leaf.cert_chain_pems[0].write_to_path(str(cert_file))
    leaf.private_key_pem.write_to_path(str(key_file))
    return Certs(ca, server, client, str(ca_file), str(cert_file), str(key_file))


def check(user: str, password: str) -> bool:
    return (user, password) == (USER, PASSWORD)


def factory_for(root: Path, certs: Certs | None, **kwargs: Any) -> FTPFactory:
    kwargs.setdefault("checker", check)
    kwargs.setdefault("failedLoginDelay", 0.0)
    if certs is not None:
        kwargs.setdefault("tlsContext", certs.server)
    return FTPFactory(str(root), **kwargs)


async def run(reactor: Any, root: Path, client: Callable[[int], Any], certs: Certs | None,
              implicit: bool = False, **kwargs: Any) -> Any:
    """Serve ``root`` (explicit FTPS, or implicit on a TLS port), run ``client(port)``
    in a thread, and return its result."""
    factory = factory_for(root, certs, **kwargs)
    if implicit:
        assert certs is not None
        port = reactor.listenSSL(0, factory, certs.server, interface="127.0.0.1")
    else:
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    try:
        return await reactor.deferToThread(client, port.getHost().port)
    finally:
        await port.stopListening()


def ftps(number: int, certs: Certs, login: bool = True) -> ftplib.FTP_TLS:
    """An ftplib FTP_TLS session that checked the server's certificate, logged in."""
    ftp = ftplib.FTP_TLS(context=certs.client, timeout=10)
    ftp.connect("127.0.0.1", number)
    if login:
        ftp.login(USER, PASSWORD)  # AUTH TLS first (FTP_TLS.login does it)
    return ftp


def code_of(error: BaseException) -> str:
    return str(error)[:3]


def retr(ftp: ftplib.FTP, name: str) -> bytes:
    chunks: list[bytes] = []
    ftp.retrbinary(f"RETR {name}", chunks.append)
    return b"".join(chunks)


# -- ftplib.FTP_TLS ---------------------------------------------------------------------------


async def test_ftplib_prot_p_list_retr_stor(reactor: Any, tmp_path: Path,
                                            certs: Certs) -> None:
    (tmp_path / "down.bin").write_bytes(PAYLOAD)

    def client(number: int) -> tuple[list[str], bytes]:
        ftp = ftps(number, certs)
        assert isinstance(ftp.sock, ssl.SSLSocket)
        assert ftp.prot_p().startswith("200")
        names = ftp.nlst()
        data = retr(ftp, "down.bin")
        lines: list[str] = []
        ftp.retrlines("LIST", lines.append)
        assert any("down.bin" in line for line in lines)
        ftp.storbinary("STOR up.bin", _Reader(PAYLOAD[::-1]))
        ftp.quit()
        return names, data

    names, data = await run(reactor, tmp_path, client, certs)
    assert names == ["down.bin"]
    assert data == PAYLOAD
    assert (tmp_path / "up.bin").read_bytes() == PAYLOAD[::-1]


async def test_ftplib_prot_c_goes_back_to_clear_data(reactor: Any, tmp_path: Path,
                                                     certs: Certs) -> None:
    (tmp_path / "a.txt").write_bytes(b"clear data\n")

    def client(number: int) -> tuple[bytes, bytes]:
        ftp = ftps(number, certs)
        ftp.prot_p()
        secured = retr(ftp, "a.txt")
        assert ftp.prot_c().startswith("200")
        # A clear data connection now: a plain socket reads plain bytes.
        conn = ftp.transfercmd("RETR a.txt")
        assert not isinstance(conn, ssl.SSLSocket)
        clear = b""
        while chunk := conn.recv(65536):
            clear += chunk
        conn.close()
        ftp.voidresp()
        ftp.quit()
        return secured, clear

    assert await run(reactor, tmp_path, client, certs) == (b"clear data\n", b"clear data\n")


async def test_ftplib_active_mode_prot_p(reactor: Any, tmp_path: Path, certs: Certs) -> None:
    (tmp_path / "down.bin").write_bytes(PAYLOAD)

    def client(number: int) -> bytes:
        ftp = ftps(number, certs)
        ftp.prot_p()
        ftp.set_pasv(False)  # PORT: the server connects, and still takes TLS's server side
        data = retr(ftp, "down.bin")
        ftp.storbinary("STOR up.bin", _Reader(PAYLOAD))
        ftp.quit()
        return data

    assert await run(reactor, tmp_path, client, certs) == PAYLOAD
    assert (tmp_path / "up.bin").read_bytes() == PAYLOAD


async def test_abor_and_reset_mid_upload_over_tls_keep_the_old_file(
        reactor: Any, tmp_path: Path, certs: Certs) -> None:
    (tmp_path / "f").write_bytes(b"old")

    def client(number: int) -> list[str]:
        ftp = ftps(number, certs)
        ftp.prot_p()
        conn = ftp.transfercmd("STOR f")
        assert isinstance(conn, ssl.SSLSocket)
        conn.sendall(b"partial" * 10000)
        ftp.putcmd("ABOR")
        replies = [ftp.getmultiline()[:3], ftp.getmultiline()[:3]]
        conn.close()
        conn = ftp.transfercmd("STOR f")
        conn.sendall(b"partial" * 10000)
        # A reset is no end of the upload, TLS or not.
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()
        try:
            replies.append(ftp.voidresp()[:3])
        except ftplib.error_temp as e:
            replies.append(str(e)[:3])
        replies.append(ftp.sendcmd("NOOP")[:3])
        ftp.quit()
        return replies

    assert await run(reactor, tmp_path, client, certs) == ["426", "226", "426", "200"]
    assert (tmp_path / "f").read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["f"]


class _Reader:
    """A file-like object ftplib's storbinary reads from."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def read(self, size: int = -1) -> bytes:
        end = len(self.data) if size < 0 else self.pos + size
        chunk = self.data[self.pos:end]
        self.pos += len(chunk)
        return chunk


class ImplicitFTP_TLS(ftplib.FTP_TLS):
    """ftplib speaking implicit FTPS: the control socket is wrapped before the greeting."""

    _raw: Any = None

    @property  # type: ignore[override]
    def sock(self) -> Any:
        return self._raw

    @sock.setter
    def sock(self, value: Any) -> None:
        if value is not None and not isinstance(value, ssl.SSLSocket):
            value = self.context.wrap_socket(value, server_hostname=self.host)
        self._raw = value


async def test_ftplib_implicit_ftps_defaults_to_protected_data(
        reactor: Any, tmp_path: Path, certs: Certs) -> None:
    (tmp_path / "down.bin").write_bytes(PAYLOAD)

    def client(number: int) -> tuple[str, bytes, bytes, list[str]]:
        ftp = ImplicitFTP_TLS(context=certs.client, timeout=10)
        welcome = ftp.connect("127.0.0.1", number)
        ftp.login(USER, PASSWORD)  # no AUTH: the socket is TLS already
        # No PBSZ, no PROT (as port-990 clients do): data connections are TLS
        # from the start. ftplib's own flag makes it wrap them.
        ftp._prot_p = True  # type: ignore[attr-defined]
        data = retr(ftp, "down.bin")
        # PBSZ/PROT P are accepted too (curl sends them), and AUTH is not.
        ftp.prot_p()
        again = retr(ftp, "down.bin")
        with pytest.raises(ftplib.error_perm) as auth:
            ftp.sendcmd("AUTH TLS")
        features = ftp.sendcmd("FEAT").splitlines()
        ftp.quit()
        return welcome, data, again, [code_of(auth.value), *features]

    welcome, data, again, rest = await run(reactor, tmp_path, client, certs, implicit=True,
                                           tlsContext=None)
    assert welcome.startswith("220")
    assert data == again == PAYLOAD
    assert rest[0] == "503"
    assert " PBSZ" in rest and " PROT" in rest and " AUTH TLS" not in rest


# -- the commands, one by one --------------------------------------------------------------


class Control:
    """A raw control connection: send one line, read one (maybe multi-line) reply."""

    def __init__(self, number: int) -> None:
        self.sock: Any = socket.create_connection(("127.0.0.1", number), timeout=10)
        self.reader = self.sock.makefile("rb")
        self.greeting = self.read()

    def read(self) -> str:
        lines = [self.reader.readline().decode()]
        code = lines[0][:3]
        if lines[0][3:4] == "-":
            while not lines[-1].startswith(code + " "):
                line = self.reader.readline().decode()
                if not line:
                    break
                lines.append(line)
        return "".join(lines)

    def send(self, line: str) -> str:
        self.sock.sendall(line.encode() + b"\r\n")
        return self.read()

    def starttls(self, context: ssl.SSLContext) -> None:
        self.sock = context.wrap_socket(self.sock, server_hostname="127.0.0.1")
        self.reader = self.sock.makefile("rb")

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


async def test_auth_pbsz_prot_ccc_replies(reactor: Any, tmp_path: Path, certs: Certs) -> None:
    def client(number: int) -> dict[str, str]:
        c = Control(number)
        out = {
            "PBSZ before AUTH": c.send("PBSZ 0"),
            "PROT before AUTH": c.send("PROT P"),
            "AUTH KERBEROS": c.send("AUTH KERBEROS_V4"),
            "AUTH": c.send("AUTH TLS"),
        }
        c.starttls(certs.client)
        out["PROT before PBSZ"] = c.send("PROT P")
        out["PBSZ x"] = c.send("PBSZ x")
        out["PBSZ 1024"] = c.send("PBSZ 1024")
        out["PROT S"] = c.send("PROT S")
        out["PROT E"] = c.send("PROT E")
        out["PROT Q"] = c.send("PROT Q")
        out["PROT P"] = c.send("PROT P")
        out["PROT C"] = c.send("PROT C")
        out["AUTH again"] = c.send("AUTH TLS")
        out["CCC"] = c.send("CCC")
        out["USER"] = c.send(f"USER {USER}")
        out["PASS"] = c.send(f"PASS {PASSWORD}")
        out["NOOP"] = c.send("NOOP")
        c.close()
        return out

    out = await run(reactor, tmp_path, client, certs)
    codes = {name: reply[:3] for name, reply in out.items()}
    assert codes == {
        "PBSZ before AUTH": "503", "PROT before AUTH": "503", "AUTH KERBEROS": "504",
        "AUTH": "234", "PROT before PBSZ": "503", "PBSZ x": "501", "PBSZ 1024": "200",
        "PROT S": "536", "PROT E": "536", "PROT Q": "504", "PROT P": "200", "PROT C": "200",
        "AUTH again": "503", "CCC": "534", "USER": "331", "PASS": "230", "NOOP": "200",
    }
    assert out["PBSZ 1024"].strip() == "200 PBSZ=0"  # the size in force is told


async def test_auth_ssl_is_a_synonym(reactor: Any, tmp_path: Path, certs: Certs) -> None:
    def client(number: int) -> str:
        c = Control(number)
        assert c.send("AUTH SSL")[:3] == "234"
        c.starttls(certs.client)
        reply = c.send("PBSZ 0")
        c.close()
        return reply

    assert (await run(reactor, tmp_path, client, certs)).startswith("200")


async def test_auth_without_a_certificate_is_refused(reactor: Any, tmp_path: Path) -> None:
    def client(number: int) -> tuple[str, str, str]:
        c = Control(number)
        auth = c.send("AUTH TLS")
        features = c.send("FEAT")
        # Still a working plain session.
        user = c.send(f"USER {USER}")
        c.close()
        return auth, features, user

    auth, features, user = await run(reactor, tmp_path, client, None)
    assert auth.startswith("502 ")
    assert "AUTH" not in features and "PBSZ" not in features and "PROT" not in features
    assert user.startswith("331")


async def test_feat_lists_auth_tls_pbsz_prot(reactor: Any, tmp_path: Path,
                                             certs: Certs) -> None:
    def client(number: int) -> list[str]:
        c = Control(number)
        features = c.send("FEAT")
        c.close()
        return features.splitlines()

    lines = await run(reactor, tmp_path, client, certs)
    assert lines[0] == "211-Features:" and lines[-1] == "211 End"
    for feature in (" AUTH TLS", " PBSZ", " PROT", " EPSV", " SIZE"):
        assert feature in lines


async def test_commands_pipelined_behind_auth_are_dropped(reactor: Any, tmp_path: Path,
                                                          certs: Certs) -> None:
    """STARTTLS command injection (CVE-2011-0411): what came in the clear with AUTH
    must not run as if it had come over TLS."""
    def client(number: int) -> str:
        c = Control(number)
        c.sock.sendall(f"AUTH TLS\r\nUSER {USER}\r\nPASS {PASSWORD}\r\n".encode())
        assert c.read()[:3] == "234"
        c.starttls(certs.client)
        reply = c.send("PWD")  # not logged in: the USER/PASS above were dropped
        c.close()
        return reply

    assert (await run(reactor, tmp_path, client, certs)).startswith("530")


async def test_user_after_auth_keeps_tls(reactor: Any, tmp_path: Path, certs: Certs) -> None:
    def client(number: int) -> list[str]:
        c = Control(number)
        c.send("AUTH TLS")
        c.starttls(certs.client)
        replies = [c.send("USER nobody"), c.send("PASS wrong"),
                   c.send(f"USER {USER}"), c.send(f"PASS {PASSWORD}"), c.send("PBSZ 0"),
                   c.send("PROT P")]
        assert c.sock.version() is not None  # still TLS after the failed login
        c.close()
        return [reply[:3] for reply in replies]

    assert await run(reactor, tmp_path, client, certs) == [
        "331", "530", "331", "230", "200", "200"]


async def test_rein_keeps_tls_and_prot(reactor: Any, tmp_path: Path, certs: Certs) -> None:
    (tmp_path / "a.txt").write_bytes(b"after REIN\n")

    def client(number: int) -> tuple[str, bytes]:
        ftp = ftps(number, certs)
        ftp.prot_p()
        rein = ftp.sendcmd("REIN")  # logged out, but the TLS session goes on
        assert isinstance(ftp.sock, ssl.SSLSocket)
        ftp.login(USER, PASSWORD)  # no second AUTH (FTP_TLS.login sees TLS on)
        data = retr(ftp, "a.txt")  # PROT P still in force: TLS data connection
        ftp.quit()
        return rein, data

    rein, data = await run(reactor, tmp_path, client, certs, requireTLS=True,
                           requireProtectedData=True)
    assert rein.startswith("220") and data == b"after REIN\n"


# -- requiring TLS ---------------------------------------------------------------------------


async def test_require_tls_refuses_a_clear_login(reactor: Any, tmp_path: Path,
                                                 certs: Certs) -> None:
    (tmp_path / "a.txt").write_bytes(b"secret\n")

    def client(number: int) -> tuple[str, str, bytes]:
        clear = ftplib.FTP(timeout=10)
        clear.connect("127.0.0.1", number)
        with pytest.raises(ftplib.error_perm) as user:
            clear.login(USER, PASSWORD)
        with pytest.raises(ftplib.error_perm) as pass_:
            clear.sendcmd(f"PASS {PASSWORD}")
        clear.quit()
        ftp = ftps(number, certs)  # AUTH TLS first: fine
        ftp.prot_p()
        data = retr(ftp, "a.txt")
        ftp.quit()
        return str(user.value), str(pass_.value), data

    user, pass_, data = await run(reactor, tmp_path, client, certs, requireTLS=True)
    assert user.startswith("530 ") and "AUTH TLS" in user
    assert pass_.startswith("530 ")
    assert data == b"secret\n"


async def test_require_protected_data_refuses_prot_c(reactor: Any, tmp_path: Path,
                                                     certs: Certs) -> None:
    (tmp_path / "a.txt").write_bytes(b"secret\n")

    def client(number: int) -> tuple[str, str, bytes]:
        ftp = ftps(number, certs)
        with pytest.raises(ftplib.error_perm) as before:  # no PROT yet: C
            ftp.retrbinary("RETR a.txt", lambda _: None)
        ftp.prot_p()
        data = retr(ftp, "a.txt")
        ftp.prot_c()
        with pytest.raises(ftplib.error_perm) as after:
            ftp.storbinary("STOR b.txt", _Reader(b"clear"))
        ftp.quit()
        return str(before.value), str(after.value), data

    before, after, data = await run(reactor, tmp_path, client, certs, requireTLS=True,
                                    requireProtectedData=True)
    assert before.startswith("521 ") and after.startswith("521 ")
    assert data == b"secret\n"
    assert not (tmp_path / "b.txt").exists()


# -- our own client ---------------------------------------------------------------------------


async def test_ftpclient_auth_tls_and_prot_p(reactor: Any, tmp_path: Path,
                                             certs: Certs) -> None:
    (tmp_path / "down.bin").write_bytes(PAYLOAD)
    factory = factory_for(tmp_path, certs, requireTLS=True, requireProtectedData=True)
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    try:
        client = await connectFTP(reactor, "127.0.0.1", port.getHost().port, user=USER,
                                  password=PASSWORD, tls=certs.client)
        session = next(iter(factory.sessions))
        assert isinstance(session.transport, TLSConnection)
        assert session.dataProtection == "P"
        sink = _Sink()
        await client.retrieveFile("down.bin", sink)
        assert sink.data == PAYLOAD
        await client.storeFile("up.bin", _Reader(PAYLOAD[:1000]))
        names = await client.nlst()
        await client.quit()
    finally:
        await port.stopListening()
    assert sorted(names) == ["down.bin", "up.bin"]
    assert (tmp_path / "up.bin").read_bytes() == PAYLOAD[:1000]


class _Sink:
    def __init__(self) -> None:
        self.data = b""

    def write(self, data: bytes) -> None:
        self.data += data


# -- broken TLS never kills the server --------------------------------------------------------


async def test_garbage_during_handshakes_spares_the_server(reactor: Any, tmp_path: Path,
                                                           certs: Certs) -> None:
    (tmp_path / "a.txt").write_bytes(b"still here\n")

    def client(number: int) -> tuple[str, bytes]:
        # Control connection: garbage instead of a ClientHello after 234.
        c = Control(number)
        assert c.send("AUTH TLS")[:3] == "234"
        c.sock.sendall(b"\x16\x03\x01\x00\x05hello, not TLS at all\r\n" * 20)
        try:
            while c.sock.recv(100):
                pass  # an alert maybe, then the server closes
        except OSError:
            pass  # or a reset
        c.close()
        # Data connection: PROT P, but the client speaks in the clear on it.
        ftp = ftps(number, certs)
        ftp.prot_p()
        ftp.set_pasv(True)
        host, port = ftp.makepasv()
        raw = socket.create_connection((host, port), timeout=10)
        raw.sendall(b"GET / HTTP/1.0\r\n\r\n")
        with pytest.raises(ftplib.error_perm) as data_reply:
            ftp.sendcmd("RETR a.txt")  # 150, then the failure
            ftp.voidresp()
        raw.close()
        # And another client is still served, with TLS.
        again = retr(ftp, "a.txt")
        ftp.quit()
        return str(data_reply.value), again

    data_reply, again = await run(reactor, tmp_path, client, certs)
    assert data_reply.startswith("522 ")
    assert again == b"still here\n"


async def test_garbage_on_an_implicit_port(reactor: Any, tmp_path: Path, certs: Certs) -> None:
    def client(number: int) -> str:
        with socket.create_connection(("127.0.0.1", number), timeout=10) as raw:
            raw.sendall(b"USER alice\r\n")
            while raw.recv(100):
                pass  # the server closes (after a TLS alert)
        ftp = ImplicitFTP_TLS(context=certs.client, timeout=10)
        welcome = ftp.connect("127.0.0.1", number)
        ftp.quit()
        return welcome

    assert (await run(reactor, tmp_path, client, certs, implicit=True)).startswith("220")


# -- lftp and curl -----------------------------------------------------------------------------


def execute(argv: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(argv, cwd=cwd, capture_output=True, timeout=TIMEOUT, check=False)


def ok(result: subprocess.CompletedProcess[bytes]) -> None:
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)


def lftp(number: int, certs: Certs, commands: str, cwd: Path | None = None) -> Any:
    """lftp forced to explicit FTPS with protected data, checking the certificate."""
    settings = (
        "set net:max-retries 1; set net:timeout 10; set ftp:passive-mode on; "
        "set cmd:fail-exit yes; set net:reconnect-interval-base 1; "
        "set ftp:ssl-force true; set ftp:ssl-protect-data true; set ftp:ssl-protect-list true; "
        f"set ssl:ca-file '{certs.ca_file}'; set ssl:verify-certificate yes"
    )
    script = f"{settings}; open -u {USER},{PASSWORD} ftp://127.0.0.1:{number}; {commands}"
    return execute([require_tool("lftp"), "--norc", "-c", script], cwd=cwd)


def make_tree(root: Path) -> dict[str, bytes]:
    files = {
        "readme.txt": b"hello\r\nworld\n",
        "docs/with space.txt": b"spaced out\n" * 100,
        "docs/deep/zero.bin": b"",
        "docs/deep/big.bin": PAYLOAD * 4,
    }
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return files


def read_tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*")
            if p.is_file()}


async def test_lftp_mirrors_both_ways_over_ftps(reactor: Any, tmp_path: Path,
                                                certs: Certs) -> None:
    served, down, up = tmp_path / "served", tmp_path / "down", tmp_path / "up"
    served.mkdir()
    up.mkdir()
    files = make_tree(served)
    make_tree(up)

    def client(number: int) -> None:
        ok(lftp(number, certs, f"mirror / '{down}'"))
        ok(lftp(number, certs, f"mirror --reverse '{up}' /uploaded"))

    # Requiring TLS and PROT P proves lftp really used them.
    await run(reactor, served, client, certs, requireTLS=True, requireProtectedData=True)
    assert read_tree(down) == files
    assert read_tree(served / "uploaded") == files


def curl(certs: Certs, *args: str) -> subprocess.CompletedProcess[bytes]:
    return execute([require_tool("curl"), "-sS", "--max-time", "20", "--cacert",
                    certs.ca_file, *args])


async def test_curl_explicit_ftps_download_and_upload(reactor: Any, tmp_path: Path,
                                                      certs: Certs) -> None:
    served, local = tmp_path / "served", tmp_path / "local"
    served.mkdir()
    local.mkdir()
    (served / "down.bin").write_bytes(PAYLOAD)
    (local / "up.bin").write_bytes(PAYLOAD[::-1])
    base = f"ftp://{USER}:{PASSWORD}@127.0.0.1"

    def client(number: int) -> list[subprocess.CompletedProcess[bytes]]:
        return [
            curl(certs, "--ssl-reqd", f"{base}:{number}/down.bin"),
            curl(certs, "--ssl-reqd", "-T", str(local / "up.bin"), f"{base}:{number}/"),
            curl(certs, "--ssl-reqd", "--list-only", f"{base}:{number}/"),
        ]
        # No active mode (-P) here: curl 7.87 and 7.88 never start TLS on an
        # accepted data connection (curl/curl#10666); ftplib covers active PROT P.

    down, upload, listing = await run(reactor, served, client, certs,
                                      requireTLS=True, requireProtectedData=True)
    for result in (down, upload, listing):
        ok(result)
    assert down.stdout == PAYLOAD
    assert (served / "up.bin").read_bytes() == PAYLOAD[::-1]
    assert sorted(listing.stdout.decode().split()) == ["down.bin", "up.bin"]


async def test_curl_implicit_ftps(reactor: Any, tmp_path: Path, certs: Certs) -> None:
    served, local = tmp_path / "served", tmp_path / "local"
    served.mkdir()
    local.mkdir()
    (served / "down.bin").write_bytes(PAYLOAD)
    (local / "up.bin").write_bytes(PAYLOAD[:5000])
    base = f"ftps://{USER}:{PASSWORD}@127.0.0.1"

    def client(number: int) -> list[subprocess.CompletedProcess[bytes]]:
        return [curl(certs, f"{base}:{number}/down.bin"),
                curl(certs, "-T", str(local / "up.bin"), f"{base}:{number}/")]

    down, upload = await run(reactor, served, client, certs, implicit=True, tlsContext=None,
                             requireTLS=True, requireProtectedData=True)
    ok(down)
    ok(upload)
    assert down.stdout == PAYLOAD
    assert (served / "up.bin").read_bytes() == PAYLOAD[:5000]


# -- torsion ftp --tls-cert / --require-tls / --listen ssl: -------------------------------------


def _namespace(**options: object) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    ftp_service.add_arguments(parser)
    args = parser.parse_args([])
    vars(args).update(options)
    return args


def test_cli_tls_options_reach_the_factory(tmp_path: Path, certs: Certs) -> None:
    factory, _ = ftp_service.build(_namespace(
        root=str(tmp_path), anonymous=True, tls_cert=certs.cert_file,
        tls_key=certs.key_file, require_tls=True))
    assert isinstance(factory.tlsContext, ssl.SSLContext)
    assert factory.requireTLS is True and factory.requireProtectedData is True
    plain, _ = ftp_service.build(_namespace(root=str(tmp_path), anonymous=True))
    assert plain.tlsContext is None and plain.requireTLS is False
    # Implicit only: --require-tls needs no --tls-cert.
    implicit, _ = ftp_service.build(_namespace(
        root=str(tmp_path), anonymous=True, require_tls=True, port=None,
        listen=[f"ssl:0:certKey={certs.cert_file}:privateKey={certs.key_file}"]))
    assert implicit.tlsContext is None and implicit.requireTLS is True


@pytest.mark.parametrize(("options", "message"), [
    ({"require_tls": True}, "--require-tls needs --tls-cert"),
    ({"require_tls": True, "port": None, "listen": ["tcp:0", "ssl:0:certKey=x"]},
     "--require-tls needs --tls-cert"),
    ({"tls_key": "key.pem"}, "--tls-key goes with --tls-cert"),
    ({"tls_cert": "/nonexistent/cert.pem"}, "can't load the certificate"),
])
def test_cli_tls_option_errors(tmp_path: Path, options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ftp_service.build(_namespace(root=str(tmp_path), anonymous=True, **options))


LISTENING_ANY = re.compile(r"listening on (?:tcp|ssl):127\.0\.0\.1:(\d+) \(reactor: (\w+)\)$")


@pytest.mark.parametrize("backend", ["select", "asyncio", "uvloop"])
def test_torsion_ftp_explicit_and_implicit(tmp_path: Path, certs: Certs, backend: str) -> None:
    (tmp_path / "hello.txt").write_bytes(b"hello over ftps\n")
    torsion = str(Path(sys.executable).parent / "torsion")
    common = [torsion, "ftp", "--root", str(tmp_path), "--anonymous", "--reactor", backend]
    explicit = ConsoleServer([*common, "--tls-cert", certs.cert_file, "--tls-key",
                              certs.key_file, "--require-tls", "--port", "0",
                              "--interface", "127.0.0.1"], pattern=LISTENING_ANY)
    try:
        clear = ftplib.FTP(timeout=10)
        clear.connect("127.0.0.1", explicit.port)
        with pytest.raises(ftplib.error_perm, match=r"^530"):
            clear.login()
        clear.close()
        ftp = ftplib.FTP_TLS(context=certs.client, timeout=10)
        ftp.connect("127.0.0.1", explicit.port)
        ftp.login()
        ftp.prot_p()
        assert retr(ftp, "hello.txt") == b"hello over ftps\n"
        ftp.quit()
    finally:
        explicit.close()
    implicit = ConsoleServer([*common, "--listen", f"ssl:0:interface=127.0.0.1:certKey="
                              f"{certs.cert_file}:privateKey={certs.key_file}"],
                             pattern=LISTENING_ANY)
    try:
        ftp = ImplicitFTP_TLS(context=certs.client, timeout=10)
        ftp.connect("127.0.0.1", implicit.port)
        ftp.login()
        ftp.prot_p()
        assert retr(ftp, "hello.txt") == b"hello over ftps\n"
        ftp.quit()
    finally:
        implicit.close()
