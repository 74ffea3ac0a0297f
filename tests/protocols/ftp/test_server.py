"""The FTP server against the stdlib's ftplib and raw sockets, on every reactor backend.

ftplib blocks, so each client runs in a worker thread (``reactor.deferToThread``)
while the reactor serves; the served root is a fresh ``tmp_path``.
"""

from __future__ import annotations

import ftplib
import hashlib
import os
import socket
import stat
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

from deferred import Deferred
from protocols.ftp.server import FTPFactory

USER, PASSWORD = "alice", "s3cret"


def check(user: str, password: str) -> bool | Deferred[bool]:
    if user == "slow":  # a checker answering later, through a Deferred
        d: Deferred[bool] = Deferred()
        import reactor
        reactor.callLater(0, d.callback, password == PASSWORD)
        return d
    return (user, password) == (USER, PASSWORD)


def serve(reactor: Any, root: Path, **kwargs: Any) -> tuple[Any, int]:
    kwargs.setdefault("checker", check)
    kwargs.setdefault("failedLoginDelay", 0.0)
    factory = FTPFactory(str(root), **kwargs)
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    return port, port.getHost().port


def session(number: int, user: str = USER, password: str = PASSWORD) -> ftplib.FTP:
    ftp = ftplib.FTP(timeout=10)
    ftp.connect("127.0.0.1", number)
    if user:
        ftp.login(user, password)
    return ftp


async def run(reactor: Any, root: Path, client: Callable[[int], Any], **kwargs: Any) -> Any:
    """Serve ``root``, run ``client(port_number)`` in a thread, return its result."""
    port, number = serve(reactor, root, **kwargs)
    try:
        return await reactor.deferToThread(client, number)
    finally:
        await port.stopListening()


def code_of(error: BaseException) -> str:
    return str(error)[:3]


def raw_exchange(number: int, lines: list[bytes]) -> list[str]:
    """Send each line and read one reply per line; return the reply codes and texts."""
    with socket.create_connection(("127.0.0.1", number), timeout=10) as sock:
        reader = sock.makefile("rb")
        replies = [reader.readline().decode()]
        for line in lines:
            sock.sendall(line)
            replies.append(reader.readline().decode())
        return replies


# -- login ---------------------------------------------------------------------------


async def test_login_ok_bad_and_through_a_deferred(reactor: Any, tmp_path: Path) -> None:
    def client(number: int) -> list[str]:
        out = []
        ftp = session(number, user="")
        out.append(ftp.getwelcome()[:3])
        try:
            ftp.login(USER, "wrong")
        except ftplib.error_perm as e:
            out.append(code_of(e))
        out.append(ftp.login(USER, PASSWORD)[:3])
        out.append(ftp.pwd())
        ftp.quit()
        ftp = session(number, user="slow")
        out.append(ftp.pwd())
        ftp.quit()
        return out

    assert await run(reactor, tmp_path, client) == ["220", "530", "230", "/", "/"]


async def test_repeated_failed_logins_close_the_connection(reactor: Any, tmp_path: Path) -> None:
    def client(number: int) -> list[str]:
        ftp = session(number, user="")
        codes = []
        for _ in range(3):
            try:
                ftp.login(USER, "wrong")
            except ftplib.error_perm as e:
                codes.append(code_of(e))
        try:
            ftp.sendcmd("NOOP")
        except (EOFError, OSError):
            codes.append("closed")
        ftp.close()
        return codes

    assert await run(reactor, tmp_path, client) == ["530", "530", "530", "closed"]


async def test_anonymous_is_off_by_default_and_read_only(reactor: Any, tmp_path: Path) -> None:
    (tmp_path / "pub.txt").write_bytes(b"public")

    def client(number: int) -> list[Any]:
        out: list[Any] = []
        try:
            session(number, user="anonymous", password="me@example.org")
        except ftplib.error_perm as e:
            out.append(code_of(e))
        return out

    assert await run(reactor, tmp_path, client) == ["530"]

    def anonymous(number: int) -> list[Any]:
        ftp = session(number, user="anonymous", password="me@example.org")
        out: list[Any] = [ftp.nlst()]
        chunks: list[bytes] = []
        ftp.retrbinary("RETR pub.txt", chunks.append)
        out.append(b"".join(chunks))
        for command in ("MKD new", "DELE pub.txt", "RNFR pub.txt"):
            try:
                ftp.sendcmd(command)
            except ftplib.error_perm as e:
                out.append(code_of(e))
        try:
            ftp.storbinary("STOR up.txt", _bytes_io(b"x"))
        except ftplib.error_perm as e:
            out.append(code_of(e))
        ftp.quit()
        return out

    got = await run(reactor, tmp_path, anonymous, anonymous=True)
    assert got == [["pub.txt"], b"public", "550", "550", "550", "550"]
    assert sorted(os.listdir(tmp_path)) == ["pub.txt"]


async def test_commands_before_login_get_530(reactor: Any, tmp_path: Path) -> None:
    lines = [b"PWD\r\n", b"LIST\r\n", b"RETR x\r\n", b"CWD /\r\n", b"PASV\r\n", b"NOOP\r\n",
             b"PASS x\r\n", b"SYST\r\n"]
    replies = await run(reactor, tmp_path, lambda n: raw_exchange(n, lines))
    assert [r[:3] for r in replies] == ["220", "530", "530", "530", "530", "530", "200",
                                        "503", "215"]


async def test_garbage_overlong_and_unknown_lines(reactor: Any, tmp_path: Path) -> None:
    lines = [b"\x00\x01\x02garbage\r\n", b"A" * 5000 + b"\r\n", b"XYZZY\r\n",
             b"ACCT x\r\n", b"USER\r\n", b"NOOP\n"]
    replies = await run(reactor, tmp_path, lambda n: raw_exchange(n, lines))
    assert [r[:3] for r in replies] == ["220", "500", "500", "500", "502", "501", "200"]


# -- commands on the control connection ---------------------------------------------------


async def test_feat_syst_help_stat_opts_type(reactor: Any, tmp_path: Path) -> None:
    def client(number: int) -> list[str]:
        ftp = session(number)
        out = [ftp.sendcmd("FEAT"), ftp.sendcmd("SYST"), ftp.sendcmd("HELP"),
               ftp.sendcmd("HELP RETR"), ftp.sendcmd("STAT"), ftp.sendcmd("OPTS UTF8 ON"),
               ftp.sendcmd("TYPE I"), ftp.sendcmd("TYPE A"), ftp.sendcmd("MODE S"),
               ftp.sendcmd("STRU F")]
        for bad in ("TYPE E", "MODE B", "STRU R", "OPTS FOO"):
            try:
                ftp.sendcmd(bad)
            except ftplib.error_perm as e:
                out.append(code_of(e))
        ftp.quit()
        return out

    feat, syst, help_, help_retr, stat, *rest = await run(reactor, tmp_path, client)
    assert feat.startswith("211-Features:") and feat.endswith("211 End")
    assert " MLST type*;size*;modify*;perm*;unique*;" in feat.split("\n")
    assert " EPSV" in feat.split("\n") and " UTF8" in feat.split("\n")
    assert syst == "215 UNIX Type: L8"
    assert help_.startswith("214-") and "RETR" in help_ and help_.endswith("214 Help OK.")
    assert help_retr.startswith("214 Syntax: RETR")
    assert stat.startswith("211-") and " User: alice" in stat
    assert [r[:3] for r in rest] == ["200"] * 5 + ["504", "504", "504", "501"]


async def test_directories_rename_delete_size_mdtm(reactor: Any, tmp_path: Path) -> None:
    (tmp_path / "f.txt").write_bytes(b"12345")
    os.utime(tmp_path / "f.txt", (0, 86400))

    def client(number: int) -> list[str]:
        ftp = session(number)
        ftp.voidcmd("TYPE I")  # SIZE is refused in TYPE A, the default
        out = [ftp.mkd("sub"), ftp.cwd("sub"), ftp.pwd(), ftp.mkd('q"uote'), ftp.sendcmd("CDUP"),
               ftp.pwd(), str(ftp.size("f.txt")), ftp.sendcmd("MDTM f.txt"),
               ftp.rename("f.txt", "sub/g.txt")]
        for command in ("RNTO x", "RNFR missing", "SIZE sub", "CWD nowhere", "RMD sub",
                        "DELE sub", "MKD sub"):
            try:
                ftp.sendcmd(command)
            except ftplib.error_perm as e:
                out.append(code_of(e))
        # RNTO must come right after RNFR.
        ftp.sendcmd("RNFR sub/g.txt")
        ftp.sendcmd("NOOP")
        try:
            ftp.sendcmd("RNTO h.txt")
        except ftplib.error_perm as e:
            out.append(code_of(e))
        out += [ftp.delete("sub/g.txt"), ftp.rmd('sub/q"uote'), ftp.rmd("sub")]
        ftp.quit()
        return out

    got = await run(reactor, tmp_path, client)
    assert got[:9] == ["/sub", "250 Directory changed to \"/sub\".", "/sub", '/sub/q"uote',
                       "250 Directory changed to \"/\".", "/", "5", "213 19700102000000",
                       "250 Renamed."]
    assert got[9:] == ["503", "550", "550", "550", "550", "550", "550", "503",
                       "250 File removed.", "250 Directory removed.", "250 Directory removed."]
    assert os.listdir(tmp_path) == []


# -- listings ----------------------------------------------------------------------


async def test_nlst_mlsd_dir_and_mlst(reactor: Any, tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_bytes(b"a" * 10)
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "inner").write_bytes(b"")

    def client(number: int) -> list[Any]:
        ftp = session(number)
        lines: list[str] = []
        ftp.dir(lines.append)
        ftp.set_pasv(True)
        out: list[Any] = [ftp.nlst(), ftp.nlst("d"), list(ftp.mlsd()), lines,
                          ftp.sendcmd("MLST a.txt")]
        ftp.quit()
        return out

    nlst, nlst_d, mlsd, lines, mlst = await run(reactor, tmp_path, client)
    assert nlst == ["a.txt", "d"]
    assert nlst_d == ["inner"]
    facts = dict(mlsd)
    assert facts["a.txt"]["type"] == "file" and facts["a.txt"]["size"] == "10"
    assert facts["a.txt"]["perm"] == "rawdf" and len(facts["a.txt"]["modify"]) == 14
    assert facts["d"]["type"] == "dir" and facts["a.txt"]["unique"] != facts["d"]["unique"]
    assert lines[0].startswith("-rw") and lines[0].endswith(" a.txt")
    assert lines[1].startswith("d") and lines[1].endswith(" d")
    assert mlst.startswith("250-") and "type=file;size=10;" in mlst and " /a.txt" in mlst


async def test_transfer_without_pasv_is_425(reactor: Any, tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"x")
    replies = await run(reactor, tmp_path, lambda n: raw_exchange(
        n, [b"USER alice\r\n", b"PASS s3cret\r\n", b"RETR a\r\n", b"LIST\r\n"]))
    assert [r[:3] for r in replies] == ["220", "331", "230", "425", "425"]


# -- transfers ----------------------------------------------------------------------


def _bytes_io(data: bytes) -> Any:
    import io
    return io.BytesIO(data)


def _file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 16):
            digest.update(block)
    return digest.hexdigest()


def _payload(size: int) -> bytes:
    return hashlib.sha256(b"seed").digest() * (size // 32) + b"tail"


async def test_upload_then_download_a_few_mib_by_hash(reactor: Any, tmp_path: Path) -> None:
    data = _payload(5 << 20)

    def client(number: int) -> tuple[str, str, int]:
        ftp = session(number)
        ftp.storbinary("STOR big.bin", _bytes_io(data), blocksize=1 << 16)
        digest = hashlib.sha256()
        ftp.retrbinary("RETR big.bin", digest.update)
        # EPSV as well as PASV.
        ftp.af = socket.AF_INET6  # makes ftplib use EPSV
        digest2 = hashlib.sha256()
        ftp.retrbinary("RETR big.bin", digest2.update)
        size = ftp.size("big.bin")
        ftp.quit()
        return digest.hexdigest(), digest2.hexdigest(), size or 0

    first, second, size = await run(reactor, tmp_path, client)
    assert first == second == hashlib.sha256(data).hexdigest()
    assert size == len(data)
    assert (tmp_path / "big.bin").read_bytes() == data
    assert os.listdir(tmp_path) == ["big.bin"]


async def test_rest_resumes_a_download_and_appe_appends(reactor: Any, tmp_path: Path) -> None:
    data = _payload(1 << 20)
    (tmp_path / "f.bin").write_bytes(data)

    def client(number: int) -> tuple[bytes, str, str]:
        ftp = session(number)
        chunks: list[bytes] = []
        ftp.retrbinary("RETR f.bin", chunks.append, rest=1000)
        ftp.storbinary("APPE f.bin", _bytes_io(b"more"))
        try:
            ftp.sendcmd("REST x")
        except ftplib.error_perm as e:
            bad = code_of(e)
        refused = []
        for command in ("STOR missing.bin", "APPE f.bin"):
            ftp.sendcmd("REST 10")
            try:
                ftp.storbinary(command, _bytes_io(b"x"))
            except ftplib.error_perm as e:
                refused.append(code_of(e))
        ftp.quit()
        return b"".join(chunks), bad, refused

    tail, bad, refused = await run(reactor, tmp_path, client)
    assert tail == data[1000:]
    assert (tmp_path / "f.bin").read_bytes() == data + b"more"
    # REST then STOR resumes an existing file only; REST then APPE is refused
    assert (bad, refused) == ("501", ["550", "554"])
    assert sorted(os.listdir(tmp_path)) == ["f.bin"]


async def test_stor_replaces_an_existing_file(reactor: Any, tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"old")
    os.chmod(tmp_path / "f", 0o640)

    def client(number: int) -> None:
        ftp = session(number)
        ftp.storbinary("STOR f", _bytes_io(b"new contents"))
        ftp.storbinary("STOR g", _bytes_io(b"a new file"))
        ftp.quit()

    await run(reactor, tmp_path, client)
    assert (tmp_path / "f").read_bytes() == b"new contents"
    assert sorted(os.listdir(tmp_path)) == ["f", "g"]
    # The replaced file keeps its mode; a new one gets what open(2) would
    # give it (not the 0600 of the temporary file it was written to).
    assert stat.S_IMODE(os.stat(tmp_path / "f").st_mode) == 0o640
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE(os.stat(tmp_path / "g").st_mode) == 0o666 & ~umask


async def test_reset_upload_leaves_the_old_file_and_no_litter(
        reactor: Any, tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"old")

    def client(number: int) -> tuple[str, list[str]]:
        ftp = session(number)
        conn = ftp.transfercmd("STOR f")
        conn.sendall(b"partial" * 10000)
        # Reset, not a clean close (which in stream mode means "complete").
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()
        try:
            reply = ftp.voidresp()
        except ftplib.error_temp as e:
            reply = str(e)
        listing = ftp.nlst()
        ftp.quit()
        return reply[:3], listing

    code, listing = await run(reactor, tmp_path, client)
    assert code == "426"
    assert listing == ["f"]
    assert (tmp_path / "f").read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["f"]


async def test_abor_mid_upload_leaves_the_old_file_and_no_litter(
        reactor: Any, tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"old")

    def client(number: int) -> list[str]:
        ftp = session(number)
        conn = ftp.transfercmd("STOR f")
        conn.sendall(b"partial" * 10000)
        ftp.putcmd("ABOR")
        replies = [ftp.getmultiline()[:3], ftp.getmultiline()[:3]]
        conn.close()
        replies.append(ftp.sendcmd("NOOP")[:3])
        ftp.quit()
        return replies

    assert await run(reactor, tmp_path, client) == ["426", "226", "200"]
    assert (tmp_path / "f").read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["f"]


async def test_control_connection_lost_mid_upload_leaves_no_litter(
        reactor: Any, tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"old")

    def client(number: int) -> None:
        ftp = session(number)
        conn = ftp.transfercmd("STOR f")
        conn.sendall(b"partial" * 10000)
        ftp.sock.close()
        ftp.file.close()
        # The server closes the data connection once the temporary file is gone.
        conn.settimeout(10)
        try:
            assert conn.recv(1) == b""
        except ConnectionResetError:
            pass
        conn.close()

    await run(reactor, tmp_path, client)
    assert (tmp_path / "f").read_bytes() == b"old"
    assert sorted(os.listdir(tmp_path)) == ["f"]


# -- staying inside the root ----------------------------------------------------------


async def test_traversal_attempts_are_refused(reactor: Any, tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (tmp_path / "secret.txt").write_bytes(b"secret")
    (root / "link").symlink_to(tmp_path / "secret.txt")
    (root / "dirlink").symlink_to(tmp_path)
    (root / "ok").write_bytes(b"fine")

    def client(number: int) -> list[Any]:
        ftp = session(number)
        out: list[Any] = [ftp.cwd("../.."), ftp.pwd(), ftp.nlst()]
        for command in ("RETR ../../secret.txt", "RETR ../secret.txt", "RETR link",
                        f"RETR {tmp_path}/secret.txt", "RETR /etc/passwd",
                        "RETR ../../etc/passwd", "CWD dirlink", "SIZE link",
                        "LIST dirlink", "MLSD dirlink", "STOR dirlink/x", "DELE ../secret.txt",
                        "RMD /", "RNFR link"):
            try:
                if command.split()[0] in ("RETR", "LIST", "MLSD"):
                    ftp.retrlines(command, lambda line: None)
                elif command.startswith("STOR"):
                    ftp.storbinary(command, _bytes_io(b"x"))
                else:
                    ftp.sendcmd(command)
                out.append("accepted: " + command)
            except ftplib.error_perm as e:
                out.append(code_of(e))
        ftp.quit()
        return out

    got = await run(reactor, root, client)
    assert got[:3] == ["250 Directory changed to \"/\".", "/", ["ok", "sub"]]
    assert got[3:] == ["550"] * 14
    assert (tmp_path / "secret.txt").read_bytes() == b"secret"
    assert sorted(os.listdir(tmp_path)) == ["root", "secret.txt"]


# -- active mode ---------------------------------------------------------------------


async def test_active_mode_port_and_eprt(reactor: Any, tmp_path: Path) -> None:
    data = _payload(1 << 20)
    (tmp_path / "f.bin").write_bytes(data)

    def client(number: int) -> tuple[bytes, bytes, list[str]]:
        ftp = session(number)
        ftp.set_pasv(False)  # PORT
        chunks: list[bytes] = []
        ftp.retrbinary("RETR f.bin", chunks.append)
        ftp.storbinary("STOR up.bin", _bytes_io(b"uploaded actively"))
        names = ftp.nlst()
        # EPRT by hand: ftplib only sends it on IPv6 connections.
        with socket.create_server(("127.0.0.1", 0)) as server:
            ftp.sendcmd(f"EPRT |1|127.0.0.1|{server.getsockname()[1]}|")
            ftp.sendcmd("TYPE I")
            assert ftp.sendcmd("RETR up.bin").startswith("150")
            conn, _ = server.accept()
            with conn:
                received = b""
                while piece := conn.recv(65536):
                    received += piece
            ftp.voidresp()
        ftp.quit()
        return b"".join(chunks), received, names

    got, received, names = await run(reactor, tmp_path, client)
    assert got == data
    assert received == b"uploaded actively"
    assert names == ["f.bin", "up.bin"]


async def test_ftp_bounce_is_refused(reactor: Any, tmp_path: Path) -> None:
    lines = [b"USER alice\r\n", b"PASS s3cret\r\n",
             b"PORT 10,0,0,1,4,0\r\n",            # someone else's address
             b"PORT 127,0,0,1,0,25\r\n",          # a privileged port
             b"EPRT |1|10.0.0.1|2000|\r\n",
             b"EPRT |1|127.0.0.1|80|\r\n",
             b"EPRT |2|::1|2000|\r\n",            # not the client's address either
             b"PORT 1,2,3\r\n", b"EPRT |9|x|1|\r\n",
             b"RETR x\r\n"]                         # no data channel was set up
    replies = await run(reactor, tmp_path, lambda n: raw_exchange(n, lines))
    assert [r[:3] for r in replies] == ["220", "331", "230", "504", "504", "504", "504", "504",
                                        "501", "522", "425"]


async def test_an_idle_session_gets_421_and_is_closed(reactor: Any, tmp_path: Path) -> None:
    def client(number: int) -> list[bytes]:
        with socket.create_connection(("127.0.0.1", number), timeout=10) as sock:
            reader = sock.makefile("rb")
            return [reader.readline()[:3], reader.readline()[:3], reader.read()]

    assert await run(reactor, tmp_path, client, idleTimeout=0.05) == [b"220", b"421", b""]


async def test_big_transfers_do_not_sit_in_memory(reactor: Any, tmp_path: Path) -> None:
    import tracemalloc

    size = 64 << 20
    source = tmp_path / "source.bin"
    with open(source, "wb") as f:
        block = _payload(1 << 20)
        for _ in range(size // len(block)):
            f.write(block)
    expected = _file_hash(source)
    root = tmp_path / "root"
    root.mkdir()

    def client(number: int) -> tuple[str, str]:
        ftp = session(number)
        with open(source, "rb") as f:
            ftp.storbinary("STOR big.bin", f, blocksize=1 << 16)
        digest = hashlib.sha256()
        ftp.retrbinary("RETR big.bin", digest.update, blocksize=1 << 16)
        ftp.quit()
        return digest.hexdigest(), _file_hash(root / "big.bin")

    tracemalloc.start()
    try:
        port, number = serve(reactor, root)
        try:
            got = await reactor.deferToThread(client, number)
        finally:
            await port.stopListening()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert got == (expected, expected)
    # Server and client together, for a 64 MiB file each way: the upload's
    # backlog bound (1 MiB, plus the batch being written) and a few chunks.
    assert peak < 16 << 20, f"peak {peak / 2**20:.1f} MiB"


async def test_after_epsv_all_only_epsv_sets_up_data(reactor: Any, tmp_path: Path) -> None:
    lines = [b"USER alice\r\n", b"PASS s3cret\r\n", b"EPSV ALL\r\n", b"PASV\r\n",
             b"PORT 127,0,0,1,4,0\r\n", b"EPSV\r\n"]
    replies = await run(reactor, tmp_path, lambda n: raw_exchange(n, lines))
    assert [r[:3] for r in replies] == ["220", "331", "230", "200", "503", "503", "229"]


async def test_passive_listener_accepts_only_the_control_peer(reactor: Any) -> None:
    from protocols.ftp.data import PassiveListener

    # The control connection's peer is another host: our connection from
    # 127.0.0.1 must be dropped, not taken for the transfer.
    listener = PassiveListener(reactor, "127.0.0.1", "192.0.2.7")
    connected = listener.connection()

    def intruder() -> bytes:
        with socket.create_connection(("127.0.0.1", listener.port), timeout=10) as sock:
            try:
                return sock.recv(1)
            except ConnectionResetError:
                return b""

    assert await reactor.deferToThread(intruder) == b""
    assert listener.protocol is None and not connected.called
    listener.close()
    assert connected.called
    connected.addErrback(lambda _: None)
