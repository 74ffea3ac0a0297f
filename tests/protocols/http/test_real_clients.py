"""Our Site against HTTP clients nobody here wrote: curl, wget, ab, urllib, http.client.

Every test runs on each reactor backend. The clients run in a worker thread
(``reactor.deferToThread``), as subprocesses or stdlib calls, so the reactor
keeps serving meanwhile; each test checks what arrived (bodies, hashes,
counts), so a misbehaving server fails it. External programs come from
``tests/tools.py: require_tool`` (skipped on a machine without them, fatal in CI).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from protocols.http.encoding import EncodingResourceWrapper, GzipEncoderFactory
from protocols.http.resource import NOT_DONE_YET, IResource, Resource
from protocols.http.server import HTTPChannel, Site
from protocols.http.static import File
from tests.tools import require_tool

TIMEOUT = 30.0


# -- what the tests serve --------------------------------------------------------------


class Hello(Resource):
    """``GET /hello/NAME``: ``hello NAME`` with a Content-Length."""

    isLeaf = True

    def render_GET(self, request: Any) -> bytes:
        return b"hello " + b"/".join(request.postpath)


class Digest(Resource):
    """``POST``/``PUT``: the body's length and SHA-256, so uploads are checked whole."""

    isLeaf = True

    def render_POST(self, request: Any) -> bytes:
        body = request.content.read()
        return b"%d %s" % (len(body), hashlib.sha256(body).hexdigest().encode("ascii"))

    render_PUT = render_POST


class Pieces(Resource):
    """``GET /pieces``: a body written in several pieces with no length: chunked."""

    isLeaf = True

    def __init__(self, reactor: Any) -> None:
        super().__init__()
        self.reactor = reactor

    def render_GET(self, request: Any) -> Any:
        def more(n: int) -> None:
            if request.finished or request.channel is None:
                return
            if n == 5:
                request.finish()
                return
            request.write(b"piece %d;" % n)
            self.reactor.callLater(0, more, n + 1)

        more(0)
        return NOT_DONE_YET


class CountingSite(Site):
    """A Site that counts the connections it accepted."""

    connections = 0

    def buildProtocol(self, addr: Any) -> HTTPChannel | None:
        self.connections += 1
        return super().buildProtocol(addr)


def serve(reactor: Any, root: IResource | None = None) -> tuple[CountingSite, Any, str]:
    """Listen on 127.0.0.1:0 with ``root`` (default: hello, digest, pieces)."""
    if root is None:
        tree = Resource()
        tree.putChild(b"hello", Hello())
        tree.putChild(b"digest", Digest())
        tree.putChild(b"pieces", Pieces(reactor))
        root = tree
    site = CountingSite(root)
    port = reactor.listenTCP(0, site, interface="127.0.0.1")
    return site, port, f"http://127.0.0.1:{port.getHost().port}"


def run(*command: str, cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run a client program to completion (in the calling thread)."""
    return subprocess.run(command, capture_output=True, timeout=TIMEOUT, cwd=cwd,
                          stdin=subprocess.DEVNULL, check=False)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A tree of files: nested directories, binary and text, and HTML links."""
    root = tmp_path / "tree"
    (root / "a" / "b" / "c").mkdir(parents=True)
    (root / "empty-dir").mkdir()
    (root / "index.html").write_text(
        '<html><body><a href="a/">a</a> <a href="top.txt">top</a> '
        '<a href="page.html">page</a></body></html>\n')
    (root / "top.txt").write_text("top level\n")
    (root / "page.html").write_text('<a href="a/b/linked.bin">linked</a>\n')
    (root / "a" / "one.txt").write_text("one\n" * 100)
    (root / "a" / "b" / "linked.bin").write_bytes(os.urandom(70_000))
    (root / "a" / "b" / "c" / "deep.bin").write_bytes(os.urandom(200_000))
    (root / "a" / "b" / "c" / "with space.txt").write_text("spaced name\n")
    (root / "a" / "alias.txt").symlink_to("one.txt")  # a link inside the root is served
    return root


def files_under(root: Path) -> dict[str, bytes]:
    """Every regular file under ``root``: relative path -> content."""
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def serve_tree(reactor: Any, root: Path) -> tuple[CountingSite, Any, str]:
    """Listen with ``File(root)`` as the site's root."""
    return serve(reactor, File(str(root)))


def curl_get(curl: str, url: str, *options: str) -> tuple[int, dict[str, str], bytes]:
    """(status, lower-cased headers, body) of one curl request."""
    done = run(curl, "-sS", "-i", *options, url)  # -i: the head, then the body, on stdout
    assert done.returncode == 0, done.stderr
    raw_head, _, body = done.stdout.partition(b"\r\n\r\n")
    lines = raw_head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, body


# -- curl ------------------------------------------------------------------------------


async def test_curl_reuses_one_connection_for_two_urls(reactor: Any) -> None:
    curl = require_tool("curl")
    site, port, url = serve(reactor)
    done = await reactor.deferToThread(run, curl, "-sSv", url + "/hello/one",
                                       url + "/hello/two")
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"hello onehello two"
    assert re.search(rb"(?i)re-?using existing connection", done.stderr), done.stderr
    assert site.connections == 1
    await port.stopListening()


async def test_curl_chunked_upload_arrives_whole(reactor: Any, tmp_path: Path) -> None:
    curl = require_tool("curl")
    payload = os.urandom(300_000)
    (tmp_path / "upload.bin").write_bytes(payload)
    _site, port, url = serve(reactor)
    done = await reactor.deferToThread(
        run, curl, "-sS", "-H", "Transfer-Encoding: chunked", "-H",
        "Content-Type: application/octet-stream", "--data-binary", "@upload.bin",
        url + "/digest", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"%d %s" % (len(payload), hashlib.sha256(payload).hexdigest().encode())
    await port.stopListening()


async def test_curl_reads_a_chunked_response(reactor: Any) -> None:
    curl = require_tool("curl")
    _site, port, url = serve(reactor)
    # --raw shows the chunk framing as sent; without it curl decodes it.
    raw, decoded = await reactor.deferToThread(
        lambda: (run(curl, "-sS", "--raw", url + "/pieces"), run(curl, "-sS", url + "/pieces")))
    assert decoded.returncode == 0, decoded.stderr
    assert decoded.stdout == b"piece 0;piece 1;piece 2;piece 3;piece 4;"
    # Framed as chunks (how the server groups them is its business), then the last one.
    assert raw.stdout.startswith(b"8\r\npiece 0;\r\n"), raw.stdout
    assert raw.stdout.endswith(b"piece 4;\r\n0\r\n\r\n"), raw.stdout
    await port.stopListening()


# -- the standard library's clients ------------------------------------------------------


async def test_http_client_keep_alive_get_post_head_chunked(reactor: Any) -> None:
    site, port, _url = serve(reactor)
    upload = os.urandom(100_000)

    def client() -> list[tuple[int, bytes, dict[str, str]]]:
        conn = http.client.HTTPConnection("127.0.0.1", port.getHost().port, timeout=TIMEOUT)
        out = []
        try:
            for method, path, body in [("GET", "/hello/a", None),
                                       ("POST", "/digest", upload),
                                       ("HEAD", "/hello/bb", None),
                                       ("GET", "/pieces", None),
                                       ("PUT", "/digest", b""),
                                       ("GET", "/hello/last", None)]:
                conn.request(method, path, body=body)
                response = conn.getresponse()
                out.append((response.status, response.read(),
                            {k.lower(): v for k, v in response.getheaders()}))
        finally:
            conn.close()
        return out

    results = await reactor.deferToThread(client)
    assert [r[:2] for r in results] == [
        (200, b"hello a"),
        (200, b"%d %s" % (len(upload), hashlib.sha256(upload).hexdigest().encode())),
        (200, b""),
        (200, b"piece 0;piece 1;piece 2;piece 3;piece 4;"),
        (200, b"0 " + hashlib.sha256(b"").hexdigest().encode()),
        (200, b"hello last"),
    ]
    assert results[2][2]["content-length"] == "8"  # HEAD: the GET's length, no body
    assert results[3][2]["transfer-encoding"] == "chunked"
    assert site.connections == 1  # all six on one connection
    await port.stopListening()


async def test_urllib_get_and_post(reactor: Any) -> None:
    _site, port, url = serve(reactor)
    upload = os.urandom(50_000)

    def client() -> tuple[bytes, bytes, bytes]:
        with urllib.request.urlopen(url + "/hello/urllib", timeout=TIMEOUT) as response:
            got = response.read()
        request = urllib.request.Request(url + "/digest", data=upload,
                                         headers={"Content-Type": "application/x-data"})
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            posted = response.read()
        with urllib.request.urlopen(url + "/pieces", timeout=TIMEOUT) as response:
            pieces = response.read()
        return got, posted, pieces

    got, posted, pieces = await reactor.deferToThread(client)
    assert got == b"hello urllib"
    assert posted == b"%d %s" % (len(upload), hashlib.sha256(upload).hexdigest().encode())
    assert pieces == b"piece 0;piece 1;piece 2;piece 3;piece 4;"
    await port.stopListening()


# -- static files: wget and curl -----------------------------------------------------------


async def test_wget_recursive_fetch_copies_the_tree(reactor: Any, tree: Path,
                                                     tmp_path: Path) -> None:
    wget = require_tool("wget")
    _site, port, url = serve_tree(reactor, tree)
    out = tmp_path / "download"
    done = await reactor.deferToThread(run, wget, "-r", "-np", "-nH", "-nv", "-e", "robots=off",
                                       "-P", str(out), url + "/")
    assert done.returncode == 0, done.stderr.decode()
    got = files_under(out)
    # Every file arrived, byte for byte (wget also keeps the listings it read).
    for name, content in files_under(tree).items():
        assert name in got, (name, sorted(got))
        assert hashlib.sha256(got[name]).digest() == hashlib.sha256(content).digest(), name
    await port.stopListening()


async def test_curl_ranges_and_conditional_requests(reactor: Any, tree: Path) -> None:
    curl = require_tool("curl")
    data = (tree / "a" / "b" / "c" / "deep.bin").read_bytes()
    _site, port, url = serve_tree(reactor, tree)
    url += "/a/b/c/deep.bin"

    def client() -> dict[str, tuple[int, dict[str, str], bytes]]:
        full = curl_get(curl, url)
        etag, modified = full[1]["etag"], full[1]["last-modified"]
        return {
            "full": full,
            "first": curl_get(curl, url, "-r", "0-99"),
            "middle": curl_get(curl, url, "-r", "1000-1999"),
            "open": curl_get(curl, url, "-r", "199950-"),
            "suffix": curl_get(curl, url, "-r", "-50"),
            "beyond": curl_get(curl, url, "-r", "300000-300010"),
            "two": curl_get(curl, url, "-r", "0-9,100-109"),
            "etag-match": curl_get(curl, url, "-H", f"If-None-Match: {etag}"),
            "etag-other": curl_get(curl, url, "-H", 'If-None-Match: "other"'),
            "not-modified": curl_get(curl, url, "-H", f"If-Modified-Since: {modified}"),
            "modified": curl_get(curl, url, "-H",
                                 "If-Modified-Since: Mon, 01 Jan 2001 00:00:00 GMT"),
            "if-range-same": curl_get(curl, url, "-r", "0-9", "-H", f"If-Range: {etag}"),
            "if-range-old": curl_get(curl, url, "-r", "0-9", "-H", 'If-Range: "stale"'),
        }

    got = await reactor.deferToThread(client)
    status, headers, body = got["full"]
    assert (status, body) == (200, data)
    assert headers["content-length"] == str(len(data))
    assert headers["accept-ranges"] == "bytes"
    assert got["first"][0] == 206 and got["first"][2] == data[:100]
    assert got["first"][1]["content-range"] == f"bytes 0-99/{len(data)}"
    assert got["middle"][0] == 206 and got["middle"][2] == data[1000:2000]
    assert got["open"][0] == 206 and got["open"][2] == data[199950:]
    assert got["suffix"][0] == 206 and got["suffix"][2] == data[-50:]
    assert got["beyond"][0] == 416
    assert got["beyond"][1]["content-range"] == f"bytes */{len(data)}"
    status, headers, body = got["two"]
    assert status == 206
    boundary = re.fullmatch(r"multipart/byteranges; ?boundary=(\S+)", headers["content-type"])
    assert boundary, headers["content-type"]
    parts = body.split(b"--" + boundary.group(1).strip('"').encode())
    assert parts[-1].startswith(b"--")  # the closing delimiter
    assert [p.partition(b"\r\n\r\n")[2][:-2] for p in parts[1:-1]] == [data[:10],
                                                                       data[100:110]]
    assert [re.findall(rb"(?im)^content-range: ([^\r]*)", p) for p in parts[1:-1]] == [
        [b"bytes 0-9/200000"], [b"bytes 100-109/200000"]]
    assert got["etag-match"][0] == 304 and got["etag-match"][2] == b""
    assert got["etag-other"][:3:2] == (200, data)
    assert got["not-modified"][0] == 304 and got["not-modified"][2] == b""
    assert got["modified"][:3:2] == (200, data)
    assert got["if-range-same"][:3:2] == (206, data[:10])
    assert got["if-range-old"][:3:2] == (200, data)
    await port.stopListening()


async def test_ab_2000_keep_alive_requests_to_a_file_all_succeed(reactor: Any,
                                                                   tree: Path) -> None:
    ab = require_tool("ab")
    size = (tree / "index.html").stat().st_size
    site, port, url = serve_tree(reactor, tree)
    done = await reactor.deferToThread(run, ab, "-k", "-n", "2000", "-c", "50", url + "/")
    out = done.stdout.decode()
    assert done.returncode == 0, out + done.stderr.decode()
    assert re.search(r"^Complete requests:\s+2000$", out, re.M), out
    assert re.search(r"^Failed requests:\s+0$", out, re.M), out
    assert "Non-2xx responses" not in out, out
    assert re.search(rf"^Document Length:\s+{size} bytes$", out, re.M), out
    assert re.search(rf"^HTML transferred:\s+{2000 * size} bytes$", out, re.M), out
    # Every request kept its connection alive: ab never had to open more than its 50.
    assert re.search(r"^Keep-Alive requests:\s+2000$", out, re.M), out
    assert site.connections <= 50, site.connections
    await port.stopListening()


async def test_curl_compressed_through_the_gzip_wrapper(reactor: Any, tree: Path) -> None:
    curl = require_tool("curl")
    text = (tree / "a" / "one.txt").read_bytes()
    _site, port, url = serve(reactor, EncodingResourceWrapper(File(str(tree)),
                                                              [GzipEncoderFactory()]))

    def client() -> tuple[tuple[int, dict[str, str], bytes], ...]:
        return (curl_get(curl, url + "/a/one.txt", "--compressed"),
                curl_get(curl, url + "/a/one.txt"),
                curl_get(curl, url + "/a/b/linked.bin", "--compressed"))

    compressed, plain, binary = await reactor.deferToThread(client)
    # curl asked for gzip, got it, and decoded it back to the file's bytes.
    assert compressed[0] == 200 and compressed[1]["content-encoding"] == "gzip"
    assert compressed[2] == text
    assert plain[0] == 200 and "content-encoding" not in plain[1] and plain[2] == text
    # Random bytes are not worth compressing: sent as they are.
    assert "content-encoding" not in binary[1]
    assert binary[2] == (tree / "a" / "b" / "linked.bin").read_bytes()
    await port.stopListening()
