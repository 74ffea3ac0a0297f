"""protocols.http.static.File over real sockets, on every reactor backend.

Clients (http.client, raw sockets, curl) run in a worker thread so the
reactor keeps serving. Traversal attempts use raw sockets, so that no client
library normalises the path before it reaches the server.
"""

from __future__ import annotations

import email.utils
import hashlib
import http.client
import os
import re
import socket
import struct
import subprocess
import time
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from deferred import Deferred
from protocols.http.resource import IRequest, Resource
from protocols.http.server import Site
from protocols.http.static import DirectoryLister, File, parseRange
from tests.tools import require_tool

MIB = 1024 * 1024
BODY = bytes(range(256)) * 40  # 10240 bytes, every offset distinguishable


# -- fixtures and helpers -------------------------------------------------------------


@pytest.fixture
def www(tmp_path: Path) -> Path:
    root = tmp_path / "www"
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "docs").mkdir()
    (root / "page.html").write_text("<h1>page</h1>")
    (root / "notes.txt").write_text("plain notes")
    (root / "style.css").write_text("body{}")
    (root / "data.json").write_text("{}")
    (root / "image.png").write_bytes(b"\x89PNG....")
    (root / "blob.unknownext").write_bytes(b"??")
    (root / "body.bin").write_bytes(BODY)
    (root / "sub" / "index.html").write_text("sub index")
    (root / "sub" / "deeper" / "x.txt").write_text("deep x")
    (root / "docs" / "a.txt").write_text("a")
    (tmp_path / "secret.txt").write_text("TOP SECRET")
    return root


def serve(reactor: Any, resource: Any) -> tuple[Any, int]:
    port = reactor.listenTCP(0, Site(resource), interface="127.0.0.1")
    return port, port.getHost().port


def fetch(number: int, path: str, method: str = "GET",
          headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """One request with http.client: (status, lower-cased headers, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", number, timeout=10)
    try:
        conn.request(method, path, headers=headers or {})
        resp = conn.getresponse()
        body = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body
    finally:
        conn.close()


def raw(number: int, target: bytes) -> tuple[int, bytes]:
    """GET ``target`` exactly as given; (status, whole response)."""
    request = b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    with socket.create_connection(("127.0.0.1", number), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    response = b"".join(chunks)
    return int(response.split(b" ", 2)[1]), response


async def run(reactor: Any, resource: Any, client: Any) -> Any:
    """Serve ``resource``, run ``client(port_number)`` in a thread, return its result."""
    port, number = serve(reactor, resource)
    try:
        return await reactor.deferToThread(client, number)
    finally:
        await port.stopListening()


# -- content types, index, listing, redirect -------------------------------------------


async def test_content_types(reactor: Any, www: Path) -> None:
    names = ["page.html", "notes.txt", "style.css", "data.json", "image.png",
             "blob.unknownext"]

    def client(number: int) -> list[tuple[int, str, bytes]]:
        out = []
        for name in names:
            status, headers, body = fetch(number, "/" + name)
            out.append((status, headers["content-type"], body))
        return out

    got = await run(reactor, File(www), client)
    assert [g[1] for g in got] == [
        "text/html; charset=utf-8", "text/plain; charset=utf-8", "text/css; charset=utf-8",
        "application/json", "image/png", "application/octet-stream"]
    assert all(g[0] == 200 for g in got)
    assert got[0][2] == b"<h1>page</h1>" and got[5][2] == b"??"
    custom = await run(reactor, File(www, defaultType="text/x-custom"),
                       lambda n: fetch(n, "/blob.unknownext")[1]["content-type"])
    assert custom == "text/x-custom"


async def test_index_html_listing_and_redirect(reactor: Any, www: Path) -> None:
    def client(number: int) -> Any:
        return (fetch(number, "/sub/"), fetch(number, "/docs/"),
                fetch(number, "/sub?x=1"), fetch(number, "/"), fetch(number, "/sub/deeper/x.txt"))

    index, listing, redirect, top, deep = await run(reactor, File(www), client)
    assert index[0] == 200 and index[2] == b"sub index"
    assert listing[0] == 200 and listing[1]["content-type"] == "text/html; charset=utf-8"
    assert b'<a href="a.txt">a.txt</a>' in listing[2]
    assert redirect[0] == 301 and redirect[1]["location"] == "/sub/?x=1"
    assert top[0] == 200 and b'href="sub/"' in top[2] and b'href="page.html"' in top[2]
    assert deep[:1] == (200,) and deep[2] == b"deep x"


async def test_listing_escapes_names_and_encodes_links(reactor: Any, tmp_path: Path) -> None:
    root = tmp_path / "esc"
    root.mkdir()
    nasty = '<script>alert("x")<script>&.txt'
    (root / nasty).write_text("n")
    (root / "a b#c?d%.txt").write_text("spaces")
    (root / "ünï.txt").write_text("utf8")

    def client(number: int) -> Any:
        listing = fetch(number, "/")
        # Follow each link as a browser would: it must reach the file.
        links = re.findall(rb'href="([^"]+)"', listing[2])
        return listing, [fetch(number, "/" + link.decode("ascii")) for link in links]

    listing, followed = await run(reactor, File(root), client)
    page = listing[2].decode("utf-8")
    assert "<script>" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;script&gt;&amp;.txt" in page
    assert 'href="a%20b%23c%3Fd%25.txt"' in page
    assert 'href="%C3%BCn%C3%AF.txt"' in page and ">ünï.txt<" in page
    assert sorted(f[2] for f in followed) == [b"n", b"spaces", b"utf8"]


# -- ranges ---------------------------------------------------------------------------


async def test_single_suffix_and_open_ended_ranges(reactor: Any, www: Path) -> None:
    size = len(BODY)

    def client(number: int) -> Any:
        return [fetch(number, "/body.bin", headers={"Range": r})
                for r in ("bytes=0-99", "bytes=-10", "bytes=10200-", "bytes=100-999999",
                          "bytes=5-1", "lines=0-1", "bytes=20000-", "bytes=-0", "bytes=x-y")]

    got = await run(reactor, File(www), client)
    first, suffix, open_ended, clipped, invalid, unit, unsatisfiable, zero, junk = got
    assert first[0] == 206 and first[2] == BODY[:100]
    assert first[1]["content-range"] == f"bytes 0-99/{size}"
    assert first[1]["content-length"] == "100"
    assert suffix[0] == 206 and suffix[2] == BODY[-10:]
    assert suffix[1]["content-range"] == f"bytes {size - 10}-{size - 1}/{size}"
    assert open_ended[0] == 206 and open_ended[2] == BODY[10200:]
    assert clipped[0] == 206 and clipped[2] == BODY[100:]
    for ignored in (invalid, unit, junk):
        assert ignored[0] == 200 and ignored[2] == BODY
    for bad in (unsatisfiable, zero):
        assert bad[0] == 416 and bad[1]["content-range"] == f"bytes */{size}"


async def test_multiple_ranges_are_multipart(reactor: Any, www: Path) -> None:
    def client(number: int) -> Any:
        return fetch(number, "/body.bin", headers={"Range": "bytes=0-9, 500-509, -5"})

    status, headers, body = await run(reactor, File(www), client)
    assert status == 206
    ctype = headers["content-type"]
    assert ctype.startswith("multipart/byteranges; boundary=")
    boundary = ctype.split("boundary=")[1].encode()
    assert int(headers["content-length"]) == len(body)
    parts = body.split(b"--" + boundary)
    assert parts[0] == b"\r\n" and parts[-1] == b"--\r\n"
    got = []
    for part in parts[1:-1]:
        head, _, data = part.partition(b"\r\n\r\n")
        assert data.endswith(b"\r\n")
        assert b"Content-Type: application/octet-stream" in head
        got.append((re.search(rb"Content-Range: (.*)", head).group(1).strip(),  # type: ignore
                    data[:-2]))
    size = len(BODY)
    assert got == [(b"bytes 0-9/%d" % size, BODY[:10]),
                   (b"bytes 500-509/%d" % size, BODY[500:510]),
                   (b"bytes %d-%d/%d" % (size - 5, size - 1, size), BODY[-5:])]


def test_parse_range_edge_cases() -> None:
    assert parseRange(b"bytes=0-0", 1) == [(0, 0)]
    assert parseRange(b"bytes=-5", 3) == [(0, 2)]
    assert parseRange(b"bytes=0-", 0) == []
    assert parseRange(b"bytes=", 10) is None
    assert parseRange(b"bytes=1-2-3", 10) is None
    assert parseRange(b"bytes=" + b",".join([b"0-1"] * 65), 10) is None
    assert parseRange(b"Bytes = 1-2", 10) == [(1, 2)]
    assert parseRange(b"bytes=+1-2", 10) is None


# -- conditional requests ------------------------------------------------------------------


async def test_conditionals_in_rfc_order(reactor: Any, www: Path) -> None:
    path = www / "body.bin"
    mtime = int(path.stat().st_mtime)
    later = email.utils.formatdate(mtime + 3600, usegmt=True)
    earlier = email.utils.formatdate(mtime - 3600, usegmt=True)
    exact = email.utils.formatdate(mtime, usegmt=True)

    def client(number: int) -> Any:
        plain = fetch(number, "/body.bin")
        etag = plain[1]["etag"]

        def status(headers: dict[str, str], method: str = "GET") -> int:
            return fetch(number, "/body.bin", method, headers)[0]

        results = {
            "inm-match": status({"If-None-Match": etag}),
            "inm-list": status({"If-None-Match": '"nope", ' + etag}),
            "inm-weak": status({"If-None-Match": "W/" + etag}),
            "inm-star": status({"If-None-Match": "*"}),
            "inm-other": status({"If-None-Match": '"other"'}),
            "inm-head": status({"If-None-Match": etag}, "HEAD"),
            "ims-later": status({"If-Modified-Since": later}),
            "ims-exact": status({"If-Modified-Since": exact}),
            "ims-earlier": status({"If-Modified-Since": earlier}),
            "ims-garbage": status({"If-Modified-Since": "not a date"}),
            # If-None-Match present: If-Modified-Since is not looked at.
            "inm-other+ims-later": status({"If-None-Match": '"other"',
                                           "If-Modified-Since": later}),
            "im-match": status({"If-Match": etag}),
            "im-star": status({"If-Match": "*"}),
            "im-other": status({"If-Match": '"other"'}),
            "im-weak": status({"If-Match": "W/" + etag}),
            "ius-earlier": status({"If-Unmodified-Since": earlier}),
            "ius-later": status({"If-Unmodified-Since": later}),
            # If-Match present and passing: If-Unmodified-Since is not looked at.
            "im-match+ius-earlier": status({"If-Match": etag,
                                            "If-Unmodified-Since": earlier}),
            # If-Match fails first: 412, whatever If-None-Match says.
            "im-other+inm-match": status({"If-Match": '"other"', "If-None-Match": etag}),
            "ir-etag": status({"Range": "bytes=0-9", "If-Range": etag}),
            "ir-other": status({"Range": "bytes=0-9", "If-Range": '"other"'}),
            "ir-weak": status({"Range": "bytes=0-9", "If-Range": "W/" + etag}),
            "ir-date": status({"Range": "bytes=0-9", "If-Range": exact}),
            "ir-old-date": status({"Range": "bytes=0-9", "If-Range": earlier}),
        }
        not_modified = fetch(number, "/body.bin", headers={"If-None-Match": etag})
        return plain, results, not_modified

    plain, results, not_modified = await run(reactor, File(www), client)
    assert plain[0] == 200
    assert re.fullmatch(r'"[0-9a-f]+-[0-9a-f]+"', plain[1]["etag"])
    assert plain[1]["last-modified"] == exact
    assert plain[1]["accept-ranges"] == "bytes"
    assert results == {
        "inm-match": 304, "inm-list": 304, "inm-weak": 304, "inm-star": 304,
        "inm-other": 200, "inm-head": 304,
        "ims-later": 304, "ims-exact": 304, "ims-earlier": 200, "ims-garbage": 200,
        "inm-other+ims-later": 200,
        "im-match": 200, "im-star": 200, "im-other": 412, "im-weak": 412,
        "ius-earlier": 412, "ius-later": 200, "im-match+ius-earlier": 200,
        "im-other+inm-match": 412,
        "ir-etag": 206, "ir-other": 200, "ir-weak": 200, "ir-date": 206, "ir-old-date": 200,
    }
    status, headers, body = not_modified
    assert status == 304
    assert body == b"" and headers["etag"] == plain[1]["etag"]
    assert "content-length" not in headers or headers["content-length"] == "0"


async def test_etag_changes_when_the_file_changes(reactor: Any, www: Path) -> None:
    def client(number: int) -> Any:
        before = fetch(number, "/notes.txt")[1]["etag"]
        (www / "notes.txt").write_text("changed notes, longer")
        after = fetch(number, "/notes.txt")
        return before, after

    before, after = await run(reactor, File(www), client)
    assert after[1]["etag"] != before and after[2] == b"changed notes, longer"


# -- methods --------------------------------------------------------------------------------


async def test_head_sends_headers_only(reactor: Any, www: Path) -> None:
    def client(number: int) -> Any:
        return fetch(number, "/body.bin", "HEAD"), raw_head(number)

    (status, headers, body), wire = await run(reactor, File(www), client)
    assert status == 200 and body == b""
    assert headers["content-length"] == str(len(BODY))
    assert headers["content-type"] == "application/octet-stream"
    assert wire.endswith(b"\r\n\r\n")  # nothing after the head on the wire


def raw_head(number: int) -> bytes:
    with socket.create_connection(("127.0.0.1", number), timeout=10) as sock:
        sock.sendall(b"HEAD /body.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


async def test_other_methods_get_405_with_allow(reactor: Any, www: Path) -> None:
    def client(number: int) -> Any:
        return [fetch(number, path, method) for method in ("POST", "PUT", "DELETE")
                for path in ("/body.bin", "/sub/deeper")]

    for status, headers, _ in await run(reactor, File(www), client):
        assert status == 405 and headers["allow"] == "GET, HEAD"


# -- no escape from the root -------------------------------------------------------------


TRAVERSALS = [
    b"/../secret.txt",
    b"/sub/../../secret.txt",
    b"/%2e%2e/secret.txt",
    b"/%2E%2E/secret.txt",
    b"/.%2e/secret.txt",
    b"/sub/%2e%2e/%2e%2e/secret.txt",
    b"/..%2fsecret.txt",
    b"/%2e%2e%2fsecret.txt",
    b"/sub%2f..%2f..%2fsecret.txt",
    b"/..%5csecret.txt",
    b"/..\\secret.txt",
    b"/sub\\..\\..\\secret.txt",
    b"/notes.txt%00.html",
    b"/%00",
    b"/./notes.txt",
    b"//secret.txt",
    b"/%2fetc%2fpasswd",
    b"/sub//index.html",
    b"/notes.txt/anything",
]


async def test_traversal_vectors_answer_404(reactor: Any, www: Path) -> None:
    def client(number: int) -> list[tuple[bytes, int, bytes]]:
        return [(target, *raw(number, target)) for target in TRAVERSALS]

    for target, status, response in await run(reactor, File(www), client):
        assert b"TOP SECRET" not in response, target
        assert b"plain notes" not in response, target
        # 400 when the parser refuses the request line itself; never served.
        assert status in (400, 404), (target, status)
    # The same requests, well-formed, do reach files: the 404s above are not an accident.
    ok = await run(reactor, File(www), lambda n: (raw(n, b"/notes.txt")[0],
                                                  raw(n, b"/sub/deeper/x.txt")[0]))
    assert ok == (200, 200)


async def test_symlinks_outside_the_root(reactor: Any, www: Path, tmp_path: Path) -> None:
    (www / "escape.txt").symlink_to(tmp_path / "secret.txt")
    (www / "escape_dir").symlink_to(tmp_path)
    (www / "inside.txt").symlink_to(www / "notes.txt")

    def client(number: int) -> Any:
        return [fetch(number, p)[0::2] for p in ("/escape.txt", "/escape_dir/secret.txt",
                                                 "/inside.txt", "/")]

    denied = await run(reactor, File(www), client)
    assert denied[0] == (404, denied[0][1]) and b"TOP SECRET" not in denied[0][1]
    assert denied[1][0] == 404 and b"TOP SECRET" not in denied[1][1]
    assert denied[2] == (200, b"plain notes")
    allowed = await run(reactor, File(www, allowSymlinksOutside=True), client)
    assert allowed[0] == (200, b"TOP SECRET")
    assert allowed[1] == (200, b"TOP SECRET")


async def test_unreadable_and_special_files(reactor: Any, www: Path) -> None:
    os.mkfifo(www / "fifo")

    def client(number: int) -> Any:
        return fetch(number, "/fifo")[0], fetch(number, "/missing.txt")[0]

    fifo, missing = await run(reactor, File(www), client)
    assert fifo == 403  # never opened: opening a FIFO would block the reactor
    assert missing == 404


# -- the tree -----------------------------------------------------------------------------


class Dynamic(Resource):
    isLeaf = True

    def render_GET(self, request: IRequest) -> bytes:
        return b"dynamic child"


async def test_putChild_takes_precedence_over_files(reactor: Any, www: Path) -> None:
    root = File(www)
    root.putChild(b"notes.txt", Dynamic())
    root.putChild(b"virtual", Dynamic())
    mounted = Resource()
    mounted.putChild(b"static", File(www, ignoredExts=(".html",)))

    def client(number: int) -> Any:
        return fetch(number, "/notes.txt")[2], fetch(number, "/virtual")[2]

    assert await run(reactor, root, client) == (b"dynamic child", b"dynamic child")

    def mounted_client(number: int) -> Any:
        return (fetch(number, "/static/notes.txt")[0::2], fetch(number, "/static/page")[0::2],
                fetch(number, "/static")[1].get("location"))

    notes, page, location = await run(reactor, mounted, mounted_client)
    assert notes == (200, b"plain notes")
    assert page == (200, b"<h1>page</h1>")  # ignoredExts
    assert location == "/static/"


def test_twisted_names() -> None:
    f = File("/nonexistent-dir-for-test")
    assert not f.exists() and not f.isdir()
    assert f.listNames() == []
    child = f.createSimilarFile("/nonexistent-dir-for-test/x")
    assert isinstance(child, File) and child.defaultType == f.defaultType
    assert isinstance(File(".").directoryListing(), DirectoryLister)


# -- large files and memory ------------------------------------------------------------------


def read_big(number: int, size: int, buffer: bytearray) -> tuple[bytes, str]:
    """GET /big over a raw socket into a preallocated buffer: (head, sha256)."""
    view = memoryview(buffer)
    digest = hashlib.sha256()
    with socket.create_connection(("127.0.0.1", number), timeout=30) as sock:
        sock.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:
            n = sock.recv_into(view)
            head += bytes(view[:n])
        head, _, rest = head.partition(b"\r\n\r\n")
        digest.update(rest)
        remaining = size - len(rest)
        while remaining:
            n = sock.recv_into(view, min(remaining, len(view)))
            assert n, "the server closed early"
            digest.update(view[:n])
            remaining -= n
    return head, digest.hexdigest()


@pytest.mark.reactor_timeout(60)
async def test_large_file_streams_without_holding_it(reactor: Any, tmp_path: Path) -> None:
    size = 64 * MIB + 3
    big = tmp_path / "big"
    digest = hashlib.sha256()
    with open(big, "wb") as f:
        block = os.urandom(MIB)
        for i in range(64):
            chunk = block[i:] + block[:i]
            f.write(chunk)
            digest.update(chunk)
        f.write(b"end")
        digest.update(b"end")
    buffer = bytearray(256 * 1024)
    port, number = serve(reactor, File(tmp_path))
    tracemalloc.start()
    try:
        started = time.monotonic()
        head, got = await reactor.deferToThread(read_big, number, size, buffer)
        elapsed = time.monotonic() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        await port.stopListening()
    assert b"200 OK" in head and b"Content-Length: %d" % size in head
    assert got == digest.hexdigest()
    # The server process (this one) never held more than a few MiB of the file.
    assert peak < 4 * MIB, f"peak traced allocation {peak / MIB:.1f} MiB"
    print(f"{reactor.name}: 64 MiB in {elapsed:.2f}s, peak traced {peak / 1024:.0f} KiB")


# -- curl ------------------------------------------------------------------------------------


async def test_curl_range_conditional_and_keep_alive(reactor: Any, www: Path) -> None:
    curl = require_tool("curl")
    future = www / "future-stamp"
    future.write_text("")
    stamp = int((www / "body.bin").stat().st_mtime) + 3600
    os.utime(future, (stamp, stamp))

    def client(number: int) -> Any:
        base = f"http://127.0.0.1:{number}"

        def run_curl(*args: str) -> subprocess.CompletedProcess[bytes]:
            return subprocess.run([curl, "-sS", "--max-time", "20", *args],
                                  capture_output=True, timeout=30, check=True)

        ranged = run_curl("-r", "0-99", "-D", "-", base + "/body.bin")
        conditional = run_curl("-z", str(future), "-o", "/dev/null", "-w", "%{http_code}",
                               base + "/body.bin")
        unconditional = run_curl("-o", "/dev/null", "-w", "%{http_code}",
                                 base + "/body.bin")
        both = run_curl("-v", base + "/notes.txt", base + "/sub/deeper/x.txt")
        return ranged, conditional, unconditional, both

    ranged, conditional, unconditional, both = await run(reactor, File(www), client)
    head, _, body = ranged.stdout.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 206") and body == BODY[:100]
    assert conditional.stdout == b"304"
    assert unconditional.stdout == b"200"
    assert both.stdout == b"plain notesdeep x"
    assert re.search(rb"Re-?using existing connection", both.stderr), both.stderr


class TrackedFile(File):
    """A File whose opened files report their closing (and count as open until then)."""

    closed: Any = None

    def openForReading(self) -> Any:
        file = super().openForReading()
        tracker = type(self)
        real_close = file.close

        class Closing:
            def __getattr__(self, name: str) -> Any:
                return getattr(file, name)

            def close(self) -> None:
                real_close()
                if tracker.closed is not None and not tracker.closed.called:
                    tracker.closed.callback(None)

        return Closing()


def reset_after_head(number: int) -> int:
    """Ask for /big, read a little of the body, then close with unread data (RST)."""
    sock = socket.create_connection(("127.0.0.1", number), timeout=20)
    try:
        sock.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        got = 0
        while got < 200_000:
            chunk = sock.recv(65536)
            if not chunk:
                break
            got += len(chunk)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        return got
    finally:
        sock.close()


async def test_client_leaving_mid_transfer_closes_the_file(reactor: Any, tmp_path: Path) -> None:
    big = tmp_path / "big"
    with open(big, "wb") as f:
        f.truncate(48 * MIB)  # more than any socket buffers hold
    TrackedFile.closed = Deferred()
    try:
        port, number = serve(reactor, TrackedFile(tmp_path))
        got = await reactor.deferToThread(reset_after_head, number)
        assert got >= 200_000
        await TrackedFile.closed  # the server noticed, and let go of the file
        # ...and still serves others.
        status = await reactor.deferToThread(lambda: fetch(number, "/")[0])
        assert status == 200
        await port.stopListening()
    finally:
        TrackedFile.closed = None
    # The reactor fixture then fails the test if a descriptor was left open.
