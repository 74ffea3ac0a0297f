"""``torsion xmlrpc`` end to end, with the stdlib's ``xmlrpc.client`` as the client.

Each server is the real ``torsion`` console script in a subprocess on 127.0.0.1, port 0;
the test learns the port from the line it prints on start-up and calls it with
``xmlrpc.client.ServerProxy``, waiting on lines and replies, never on sleeps. Every
process is killed in a ``finally`` (``start`` fixture).
"""

from __future__ import annotations

import re
import ssl
import subprocess
import sys
import textwrap
import xmlrpc.client
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from protocols.xmlrpc.cli import public_callables
from protocols.xmlrpc.cli import xmlrpc as service_object
from reactor.cli import UsageError, build_parser
from tests.console import ConsoleServer

TORSION = str(Path(sys.executable).parent / "torsion")
BACKENDS = ["select", "asyncio", "uvloop"]
TIMEOUT = 30.0
LISTENING = re.compile(r"listening on (?:tcp|ssl):127\.0\.0\.1:(\d+) \(reactor: (\w+)\)$")
LOCAL = ["--port", "0", "--interface", "127.0.0.1"]

SERVICE = textwrap.dedent('''\
    """Procedures for the torsion xmlrpc tests."""
    from os.path import join  # imported, not defined here: never served

    from protocols.xmlrpc.server import XMLRPC
    from reactor.task import deferLater
    import reactor


    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b


    def nothing():
        return None


    async def later(text: str) -> str:
        """Answer after a turn of the reactor."""
        await deferLater(reactor, 0)
        return text.upper()


    def _private():
        return "secret"


    class Calculator:
        """Served as an object: its public methods."""

        def __init__(self):
            self.base = 100

        def mul(self, a: int, b: int) -> int:
            """Multiply."""
            return a * b

        def plus_base(self, n: int) -> int:
            return self.base + n

        def _internal(self):
            return "secret"


    calc = Calculator()


    class Echo(XMLRPC):
        def xmlrpc_echo(self, value):
            """Send the value back."""
            return value


    echo = Echo()

    class Empty:
        pass

    empty = Empty()
    ''')


class Server(ConsoleServer):
    """A ``torsion xmlrpc`` process."""

    def __init__(self, command: list[str], cwd: Path) -> None:
        super().__init__(command, cwd, LISTENING)
        self.reactor = self.match.group(2)

    def proxy(self, path: str = "/RPC2", **kwargs: Any) -> xmlrpc.client.ServerProxy:
        """A stdlib client for ``path`` on this server."""
        return xmlrpc.client.ServerProxy(self.url + path, **kwargs)


@pytest.fixture
def service(tmp_path: Path) -> Path:
    """A directory holding ``rpcsvc.py``, to run ``torsion xmlrpc`` from."""
    (tmp_path / "rpcsvc.py").write_text(SERVICE)
    return tmp_path


@pytest.fixture
def start(service: Path) -> Iterator[Callable[..., Server]]:
    """``start(*args)`` runs ``torsion xmlrpc ARGS`` in ``service``; all killed at the end."""
    started: list[Server] = []

    def run(*args: str) -> Server:
        server = Server([TORSION, "xmlrpc", *args], service)
        started.append(server)
        return server

    try:
        yield run
    finally:
        for server in started:
            server.close()


def run_xmlrpc(*args: str, cwd: Path) -> tuple[int, list[str], str]:
    """``torsion xmlrpc ARGS`` expected to exit by itself: (status, stderr lines, stdout)."""
    done = subprocess.run([TORSION, "xmlrpc", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=TIMEOUT, stdin=subprocess.DEVNULL)
    return done.returncode, done.stderr.splitlines(), done.stdout


# -- what is served ------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_module_s_functions_with_introspection_and_multicall(
        start: Any, backend: str) -> None:
    server = start("--app", "rpcsvc", *LOCAL, "--reactor", backend)
    assert server.reactor == backend
    with server.proxy() as proxy:
        assert proxy.add(2, 3) == 5
        assert proxy.later("abc") == "ABC"  # an async def function
        assert proxy.system.listMethods() == [
            "add", "later", "nothing", "system.listMethods", "system.methodHelp",
            "system.methodSignature", "system.multicall"]
        assert proxy.system.methodHelp("add") == "Add two integers."
        assert proxy.system.methodSignature("add") == [["int", "int", "int"]]
        multi = xmlrpc.client.MultiCall(proxy)
        multi.add(1, 2)
        multi.later("x")
        multi.add(40, 2)
        results = multi()
        assert [results[i] for i in range(3)] == [3, "X", 42]
        # Private names and functions the module only imports are not served.
        for name in ("_private", "join", "Calculator"):
            with pytest.raises(xmlrpc.client.Fault) as caught:
                getattr(proxy, name)()
            assert caught.value.faultCode == 8001
    server.stop()


def test_a_module_named_as_module_colon_name_too(start: Any, service: Path) -> None:
    (service / "pkg").mkdir()
    (service / "pkg" / "__init__.py").write_text("from . import procs\n")
    (service / "pkg" / "procs.py").write_text("def twice(x):\n    return 2 * x\n")
    server = start("--app", "pkg:procs", *LOCAL)
    with server.proxy() as proxy:
        assert proxy.twice(21) == 42
    server.stop()


@pytest.mark.parametrize("target", ["rpcsvc:calc", "rpcsvc:Calculator"])
def test_an_object_s_public_methods(start: Any, target: str) -> None:
    server = start("--app", target, *LOCAL)
    with server.proxy() as proxy:
        assert proxy.mul(6, 7) == 42
        assert proxy.plus_base(1) == 101  # bound methods: the instance's state
        assert proxy.system.methodHelp("mul") == "Multiply."
        assert "_internal" not in proxy.system.listMethods()
        with pytest.raises(xmlrpc.client.Fault) as caught:
            proxy._internal()
        assert caught.value.faultCode == 8001
        multi = xmlrpc.client.MultiCall(proxy)
        multi.mul(2, 2)
        multi.missing()
        results = multi()
        assert results[0] == 4
        with pytest.raises(xmlrpc.client.Fault):
            results[1]
    server.stop()


def test_an_xmlrpc_resource_is_served_as_it_is(start: Any) -> None:
    server = start("--app", "rpcsvc:echo", *LOCAL)
    with server.proxy() as proxy:
        assert proxy.echo({"a": [1, 2.5, "x"]}) == {"a": [1, 2.5, "x"]}
        assert "echo" in proxy.system.listMethods()  # introspection turned on
        assert proxy.system.multicall([{"methodName": "echo", "params": [7]}]) == [[7]]
    server.stop()


# -- options -------------------------------------------------------------------------------


def test_default_paths_are_root_and_rpc2_like_the_stdlib(start: Any) -> None:
    server = start("--app", "rpcsvc", *LOCAL)
    for path in ("/", "/RPC2"):
        with server.proxy(path) as proxy:
            assert proxy.add(1, 1) == 2
    with server.proxy("/elsewhere") as proxy, pytest.raises(
            xmlrpc.client.ProtocolError) as caught:
        proxy.add(1, 1)
    assert caught.value.errcode == 404
    log = server.stop()
    # The access log, on stderr at INFO: one Combined Log Format line per request.
    assert any('"POST /RPC2 HTTP/1.1" 200' in line for line in log), log
    assert any('"POST /elsewhere HTTP/1.1" 404' in line for line in log), log


def test_rpc_path_moves_the_service(start: Any) -> None:
    server = start("--app", "rpcsvc", "--rpc-path", "/api/rpc", "--rpc-path", "v2",
                   "--no-access-log", *LOCAL)
    for path in ("/api/rpc", "/v2"):
        with server.proxy(path) as proxy:
            assert proxy.add(2, 2) == 4
    for path in ("/", "/RPC2", "/api", "/api/rpc/more"):
        with server.proxy(path) as proxy, pytest.raises(
                xmlrpc.client.ProtocolError) as caught:
            proxy.add(1, 1)
        assert caught.value.errcode == 404, path
    log = server.stop()
    assert not any("protocols.http.access" in line for line in log), log


def test_allow_none(start: Any) -> None:
    strict = start("--app", "rpcsvc", *LOCAL)
    with strict.proxy() as proxy, pytest.raises(xmlrpc.client.Fault):
        proxy.nothing()
    strict.stop()
    lenient = start("--app", "rpcsvc", "--allow-none", *LOCAL)
    with lenient.proxy(allow_none=True) as proxy:
        assert proxy.nothing() is None
    lenient.stop()


def test_max_body(start: Any) -> None:
    server = start("--app", "rpcsvc:echo", "--max-body", "2K", *LOCAL)
    with server.proxy() as proxy:
        assert proxy.echo("x" * 1000) == "x" * 1000
    with server.proxy() as proxy, pytest.raises(xmlrpc.client.ProtocolError) as caught:
        proxy.echo("x" * 4000)
    assert caught.value.errcode == 413
    server.stop()


def test_https_from_an_ssl_endpoint(start: Any, tmp_path: Path) -> None:
    ca = trustme.CA()
    pem = tmp_path / "server.pem"
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(pem))
    server = start("--app", "rpcsvc", "--listen", f"ssl:0:interface=127.0.0.1:certKey={pem}")
    context = ssl.create_default_context()
    ca.configure_trust(context)
    url = f"https://127.0.0.1:{server.port}/RPC2"
    with xmlrpc.client.ServerProxy(url, context=context) as proxy:
        assert proxy.add(20, 22) == 42
    # A client that does not trust the certificate refuses the server.
    with xmlrpc.client.ServerProxy(url, context=ssl.create_default_context()) as proxy, \
            pytest.raises(ssl.SSLCertVerificationError):
        proxy.add(1, 1)
    server.stop()


# -- mistakes ------------------------------------------------------------------------------


@pytest.mark.parametrize(("args", "message"), [
    (["--app", "nosuchmodule:thing"], "can't import 'nosuchmodule': no module named"),
    (["--app", "nosuchmodule"], "can't import 'nosuchmodule': no module named"),
    (["--app", "rpcsvc:missing"], "'rpcsvc' has no attribute 'missing'"),
    (["--app", "rpcsvc:empty"], "no public functions or methods"),
    (["--app", "rpcsvc", "--max-body", "lots"], "expected a size"),
    (["--app", "rpcsvc", "--path", "/RPC2"], "unrecognized arguments: --path"),
    ([], "the following arguments are required: --app"),
])
def test_mistakes_are_one_line_and_status_2(service: Path, args: list[str],
                                            message: str) -> None:
    code, stderr, stdout = run_xmlrpc(*args, *LOCAL, cwd=service)
    assert code == 2, stderr
    assert stdout == ""
    assert len(stderr) == 1, stderr
    # argparse's top parser reports arguments no subcommand knows ("torsion: error:").
    assert re.match(r"torsion( xmlrpc)?: error: ", stderr[0]), stderr
    assert message in stderr[0]


# -- in this process -----------------------------------------------------------------------


def test_public_callables_of_a_module_and_an_object() -> None:
    import types

    module = types.ModuleType("m")
    exec("from os.path import join\ndef f(): pass\ndef _g(): pass\nclass C: pass\n"
         "value = 3\n", module.__dict__)
    assert sorted(public_callables(module)) == ["f"]
    module.__all__ = ["f", "join"]  # type: ignore[attr-defined]
    assert sorted(public_callables(module)) == ["f", "join"]

    class Thing:
        attribute = 1

        def method(self) -> int:
            return 1

        @property
        def broken(self) -> int:
            raise RuntimeError("no")

        def _hidden(self) -> None:
            pass

    assert sorted(public_callables(Thing())) == ["method"]


@pytest.mark.parametrize(("args", "message"), [
    (["--rpc-path", "/a?b"], "must be a URL path"),
    (["--max-body", "12X"], "expected a size"),
    (["--timeout", "-1"], "must be a number of seconds"),
])
def test_bad_options_are_usage_errors(args: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=re.escape(message)):
        build_parser({"xmlrpc": service_object}).parse_args(["xmlrpc", "--app", "m", *args])


def test_defaults() -> None:
    options = build_parser({"xmlrpc": service_object}).parse_args(["xmlrpc", "--app", "m:x"])
    assert service_object.default_port == 8000
    assert options.rpc_paths is None  # build() then serves / and /RPC2
    assert options.allow_none is False
