"""Endpoints: strings parsed (every form, every error), and listen/connect over real sockets."""

from __future__ import annotations

import socket
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import reactor as reactor_module
from protocols import DatagramProtocol, Factory, Protocol
from reactor.address import UNIXAddress
from reactor.endpoints import (
    HostnameEndpoint,
    SSL4ClientEndpoint,
    SSL4ServerEndpoint,
    TCP4ClientEndpoint,
    TCP4ServerEndpoint,
    TCP6ClientEndpoint,
    TCP6ServerEndpoint,
    UDPServerEndpoint,
    UNIXClientEndpoint,
    UNIXServerEndpoint,
    clientFromString,
    connectProtocol,
    describe,
    serverFromString,
)
from reactor.error import (
    CannotListenError,
    ConnectingCancelledError,
    ConnectionRefusedError,
    NoProtocol,
)
from tests.reactor.conftest import Echo, Recorder

# -- parsing: servers ---------------------------------------------------------------


def test_importing_endpoints_chooses_no_backend() -> None:
    code = ("import reactor, reactor.endpoints, reactor.cli; "
            "reactor.endpoints.serverFromString(reactor, 'tcp:80'); "
            "assert reactor.installed_name() is None")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def attrs(endpoint: Any) -> dict[str, Any]:
    """The parameters an endpoint was built with (its private attributes)."""
    return {k.lstrip("_"): v for k, v in vars(endpoint).items() if k != "_reactor"}


def test_tcp_server_positional_port_and_defaults() -> None:
    endpoint = serverFromString(None, "tcp:8080")
    assert type(endpoint) is TCP4ServerEndpoint
    assert attrs(endpoint) == {"port": 8080, "backlog": 50, "interface": ""}


def test_tcp_server_keywords() -> None:
    endpoint = serverFromString(None, "tcp:port=8080:interface=127.0.0.1:backlog=7")
    assert attrs(endpoint) == {"port": 8080, "backlog": 7, "interface": "127.0.0.1"}


def test_the_reactor_is_kept_as_given() -> None:
    assert serverFromString(reactor_module, "tcp:1")._reactor is reactor_module


def test_tcp6_server_defaults_to_all_ipv6_interfaces() -> None:
    endpoint = serverFromString(None, "tcp6:8080")
    assert type(endpoint) is TCP6ServerEndpoint
    assert attrs(endpoint)["interface"] == "::"


@pytest.mark.parametrize("text", ["tcp6:8080:interface=[::1]", r"tcp6:8080:interface=\:\:1"])
def test_ipv6_interface_in_brackets_or_escaped(text: str) -> None:
    assert attrs(serverFromString(None, text))["interface"] == "::1"


def test_unix_server() -> None:
    endpoint = serverFromString(None, "unix:/run/app.sock:mode=660:backlog=9:lockfile=0")
    assert type(endpoint) is UNIXServerEndpoint
    assert attrs(endpoint) == {"address": "/run/app.sock", "backlog": 9, "mode": 0o660,
                               "wantPID": False}


def test_unix_server_defaults_as_in_twisted() -> None:
    assert attrs(serverFromString(None, "unix:address=/s")) == {
        "address": "/s", "backlog": 50, "mode": 0o666, "wantPID": True}


def test_backslash_escapes_colon_equals_and_backslash() -> None:
    endpoint = serverFromString(None, r"unix:/tmp/a\:b\=c\\d")
    assert attrs(endpoint)["address"] == "/tmp/a:b=c\\d"


def test_udp_server() -> None:
    endpoint = serverFromString(None, "udp:8017:interface=127.0.0.1:maxPacketSize=512")
    assert type(endpoint) is UDPServerEndpoint
    assert attrs(endpoint) == {"port": 8017, "interface": "127.0.0.1", "maxPacketSize": 512}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A trustme CA and a certificate for 127.0.0.1/localhost, as PEM files."""
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    base = tmp_path_factory.mktemp("pki")
    paths = {"ca": base / "ca.pem", "cert": base / "cert.pem", "key": base / "key.pem",
             "combined": base / "both.pem", "leaf": base / "leaf.pem",
             "chain": base / "chain.pem"}
    ca.cert_pem.write_to_path(str(paths["ca"]))
    cert.cert_chain_pems[0].write_to_path(str(paths["cert"]))
    cert.private_key_pem.write_to_path(str(paths["key"]))
    cert.private_key_and_cert_chain_pem.write_to_path(str(paths["combined"]))
    # An intermediate CA: the leaf alone plus a separate chain file.
    intermediate = ca.create_child_ca()
    leaf = intermediate.issue_cert("127.0.0.1")
    leaf.cert_chain_pems[0].write_to_path(str(paths["leaf"]))
    leaf.private_key_pem.write_to_path(str(paths["leaf"]), append=True)
    with open(paths["chain"], "wb") as f:
        for pem in leaf.cert_chain_pems[1:]:
            f.write(pem.bytes())
    return {name: str(path) for name, path in paths.items()}


def test_ssl_server(pki: dict[str, str]) -> None:
    endpoint = serverFromString(
        None, f"ssl:8443:certKey={pki['cert']}:privateKey={pki['key']}:interface=127.0.0.1")
    assert type(endpoint) is SSL4ServerEndpoint
    assert isinstance(endpoint._context, ssl.SSLContext)
    assert endpoint.describe() == "ssl:127.0.0.1:8443"


def test_ssl_server_key_and_cert_in_one_file(pki: dict[str, str]) -> None:
    for key in ("certKey", "privateKey"):
        assert type(serverFromString(None, f"ssl:8443:{key}={pki['combined']}")) \
            is SSL4ServerEndpoint


def test_ssl_server_with_extra_cert_chain(pki: dict[str, str]) -> None:
    endpoint = serverFromString(
        None, f"ssl:8443:certKey={pki['leaf']}:extraCertChain={pki['chain']}")
    assert type(endpoint) is SSL4ServerEndpoint


# -- parsing: clients -----------------------------------------------------------------


@pytest.mark.parametrize("text", ["tcp:example.com:80", "tcp:host=example.com:port=80",
                                  "tcp:example.com:port=80"])
def test_tcp_client_positional_or_keywords(text: str) -> None:
    endpoint = clientFromString(None, text)
    assert type(endpoint) is TCP4ClientEndpoint
    assert attrs(endpoint) == {"host": "example.com", "port": 80, "timeout": 30.0,
                               "bindAddress": None}


def test_tcp_client_timeout_and_bind_address() -> None:
    endpoint = clientFromString(None, "tcp:h:1:timeout=2.5:bindAddress=127.0.0.2")
    assert attrs(endpoint)["timeout"] == 2.5
    assert attrs(endpoint)["bindAddress"] == ("127.0.0.2", 0)


def test_tcp6_client_takes_a_bracketed_address() -> None:
    endpoint = clientFromString(None, "tcp6:[::1]:80")
    assert type(endpoint) is TCP6ClientEndpoint
    assert attrs(endpoint)["host"] == "::1"
    assert endpoint.describe() == "tcp6:[::1]:80"


@pytest.mark.parametrize("text", ["unix:/s.sock:timeout=3:lockfile=1",
                                  "unix:path=/s.sock:timeout=3:checkPID=1"])
def test_unix_client(text: str) -> None:
    endpoint = clientFromString(None, text)
    assert type(endpoint) is UNIXClientEndpoint
    assert attrs(endpoint) == {"path": "/s.sock", "timeout": 3.0, "checkPID": True}


def test_ssl_client_checks_certificates_by_default() -> None:
    endpoint = clientFromString(None, "ssl:example.com:443")
    assert type(endpoint) is SSL4ClientEndpoint
    assert endpoint._context.verify_mode == ssl.CERT_REQUIRED
    assert endpoint._context.check_hostname


def test_ssl_client_with_trust_roots_and_client_certificate(pki: dict[str, str]) -> None:
    endpoint = clientFromString(
        None, f"ssl:host=localhost:port=443:trustRoots={pki['ca']}:certKey={pki['cert']}"
              f":privateKey={pki['key']}:timeout=4")
    assert attrs(endpoint)["timeout"] == 4.0
    assert endpoint._context.get_ca_certs()  # the trustme CA, and only it
    assert len(endpoint._context.get_ca_certs()) == 1


# -- parsing: errors --------------------------------------------------------------------


SERVER_ERRORS = [
    ("tpc:80", "unknown endpoint type 'tpc' in 'tpc:80'"),
    ("tcp:abc", "port must be a number, got 'abc'"),
    ("tcp:-1", "port must be a number, got '-1'"),
    ("tcp:70000", "port must be between 0 and 65535, got 70000"),
    ("tcp:80:intrface=127.0.0.1", "unknown parameter 'intrface' for tcp (did you mean "
                                  "'interface'?)"),
    ("tcp:80:colour=red", "unknown parameter 'colour' for tcp (known: port, interface, "
                          "backlog)"),
    ("tcp", "tcp needs a port, as in 'tcp:8080:interface=127.0.0.1'"),
    ("tcp:80:81", "unexpected value '81' for tcp in 'tcp:80:81'"),
    ("tcp:80:port=81", "port given twice"),
    ("tcp6:80:interface=::1", "an IPv6 address goes in square brackets"),
    ("tcp:80:backlog=many", "backlog must be a number, got 'many'"),
    ("tcp:80:backlog=0", "backlog must be at least 1, got 0"),
    ("tcp:80:interface=1:interface=2", "parameter 'interface' given twice"),
    ("", "empty endpoint description"),
    ("port=80", "an endpoint description starts with its type"),
    ("tcp:80:=x", "a parameter without a name"),
    ("tcp:80\\", "trailing backslash in 'tcp:80\\\\'"),
    ("tcp6:80:interface=[::1", "'[' without its ']'"),
    ("unix:/s:mode=999", "mode must be an octal file mode such as 660, got '999'"),
    ("unix:/s:lockfile=maybe", "lockfile must be 0 or 1, got 'maybe'"),
    ("unix", "unix needs an address, as in 'unix:/run/app.sock:mode=660'"),
    ("ssl:443", "ssl needs certKey=CERT.pem"),
    ("ssl:443:certKey=/nonexistent.pem", "can't load the certificate or key "
                                         "'/nonexistent.pem, /nonexistent.pem': No such file"),
    ("udp:53:backlog=5", "unknown parameter 'backlog' for udp"),
]


@pytest.mark.parametrize(("text", "message"), SERVER_ERRORS)
def test_bad_server_strings_name_the_bad_part(text: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        serverFromString(None, text)
    assert message in str(info.value)


CLIENT_ERRORS = [
    ("udp:h:53", "unknown endpoint type 'udp' in 'udp:h:53' (client types: tcp, tcp6, "
                 "unix, ssl)"),
    ("tcp:example.com", "tcp needs a port, as in 'tcp:example.com:80'"),
    ("tcp:example.com:http", "port must be a number, got 'http'"),
    ("tcp:h:80:timeout=soon", "timeout must be a number of seconds, got 'soon'"),
    ("tcp:h:80:timeout=0", "timeout must be a number of seconds, got '0'"),
    ("tcp:h:80:bindAdress=x", "unknown parameter 'bindAdress' for tcp (did you mean "
                              "'bindAddress'?)"),
    ("tcp::80", "host must not be empty"),
    ("ssl:h:443:trustRoots=/nonexistent.pem", "can't load trustRoots '/nonexistent.pem'"),
    ("ssl:h:443:certKey=/nonexistent.pem", "can't load the client certificate"),
]


@pytest.mark.parametrize(("text", "message"), CLIENT_ERRORS)
def test_bad_client_strings_name_the_bad_part(text: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        clientFromString(None, text)
    assert message in str(info.value)


def test_a_description_must_be_a_str() -> None:
    with pytest.raises(TypeError):
        serverFromString(None, b"tcp:80")  # type: ignore[arg-type]


# -- describing --------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "described"), [
    ("tcp:80", "tcp:0.0.0.0:80"),
    ("tcp:80:interface=127.0.0.1", "tcp:127.0.0.1:80"),
    ("tcp6:80", "tcp6:[::]:80"),
    ("udp:17:interface=[::1]", "udp:[::1]:17"),
    (r"unix:/tmp/a\:b", r"unix:/tmp/a\:b"),
])
def test_a_server_endpoint_describes_where_it_listens(text: str, described: str) -> None:
    assert serverFromString(None, text).describe() == described


# -- listening and connecting over real sockets ----------------------------------------------


async def test_tcp_listen_and_connect_from_strings(reactor: Any) -> None:
    port = await serverFromString(reactor, "tcp:0:interface=127.0.0.1").listen(
        Factory.forProtocol(Echo))
    number = port.getHost().port
    assert describe(port) == f"tcp:127.0.0.1:{number}"
    client = await clientFromString(reactor, describe(port)).connect(
        Factory.forProtocol(Recorder))
    assert isinstance(client, Recorder)
    assert client.events == ["made"]  # fired on connectionMade, with the user's protocol
    client.transport.write(b"hello")
    assert await client.wait_for_bytes(5) == b"hello"
    client.transport.loseConnection()
    await client.lost
    await port.stopListening()


async def test_the_reactor_module_works_as_the_reactor(reactor: Any) -> None:
    # The fixture installs its reactor as the module's for the test.
    port = await serverFromString(reactor_module, "tcp:0:interface=127.0.0.1").listen(
        Factory.forProtocol(Echo))
    assert port.reactor is reactor
    client = await clientFromString(reactor_module, describe(port)).connect(
        Factory.forProtocol(Recorder))
    client.transport.loseConnection()
    await client.lost
    await port.stopListening()


async def test_data_goes_straight_to_the_users_protocol(reactor: Any) -> None:
    port = reactor.listenTCP(0, Factory.forProtocol(Echo), interface="127.0.0.1")
    client = await TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port).connect(
        Factory.forProtocol(Recorder))
    wrapper = client.transport.protocol
    # The transport's protocol is the endpoint's wrapper; what it reads goes
    # to the user's bound dataReceived, with no wrapper frame in between.
    assert wrapper is not client
    assert wrapper.dataReceived == client.dataReceived
    assert wrapper.logPrefix() == client.logPrefix()
    client.transport.loseConnection()
    await client.lost
    await port.stopListening()


async def test_ipv6_listen_and_connect(reactor: Any) -> None:
    port = await serverFromString(reactor, "tcp6:0:interface=[::1]").listen(
        Factory.forProtocol(Echo))
    assert describe(port) == f"tcp6:[::1]:{port.getHost().port}"
    client = await clientFromString(reactor, describe(port)).connect(
        Factory.forProtocol(Recorder))
    client.transport.write(b"six")
    assert await client.wait_for_bytes(3) == b"six"
    client.transport.loseConnection()
    await client.lost
    await port.stopListening()


async def test_listen_on_a_taken_port_fails_with_CannotListenError(reactor: Any) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    try:
        number = taken.getsockname()[1]
        with pytest.raises(CannotListenError) as info:
            await serverFromString(reactor, f"tcp:{number}:interface=127.0.0.1").listen(
                Factory.forProtocol(Echo))
        assert "in use" in str(info.value)
    finally:
        taken.close()


async def test_connect_refused_fails_the_deferred(reactor: Any) -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    number = closed.getsockname()[1]
    closed.close()
    with pytest.raises(ConnectionRefusedError):
        await clientFromString(reactor, f"tcp:127.0.0.1:{number}").connect(
            Factory.forProtocol(Recorder))


async def test_cancelling_connect_gives_up(reactor: Any) -> None:
    port = reactor.listenTCP(0, Factory.forProtocol(Echo), interface="127.0.0.1")
    factory = Factory.forProtocol(Recorder)
    # A host name: the look-up runs in a thread, so the attempt is surely in flight.
    d = HostnameEndpoint(reactor, b"localhost", port.getHost().port).connect(factory)
    d.cancel()
    with pytest.raises(ConnectingCancelledError):
        await d
    assert factory.numPorts == 0  # doStart/doStop paired
    await port.stopListening()


async def test_hostname_endpoint_connects(reactor: Any) -> None:
    port = reactor.listenTCP(0, Factory.forProtocol(Echo), interface="127.0.0.1")
    client = await HostnameEndpoint(reactor, b"localhost", port.getHost().port,
                                    timeout=10).connect(Factory.forProtocol(Recorder))
    client.transport.write(b"name")
    assert await client.wait_for_bytes(4) == b"name"
    client.transport.loseConnection()
    await client.lost
    await port.stopListening()


class Broken(Factory):
    def buildProtocol(self, addr: Any) -> Any:
        raise ZeroDivisionError("no protocol for you")


class Nothing(Factory):
    def buildProtocol(self, addr: Any) -> Any:
        return None


@pytest.mark.parametrize(("factory", "error"), [(Broken, ZeroDivisionError),
                                                (Nothing, NoProtocol)])
async def test_a_factory_that_builds_no_protocol_fails_connect(reactor: Any, factory: Any,
                                                               error: Any) -> None:
    port = reactor.listenTCP(0, Factory.forProtocol(Echo), interface="127.0.0.1")
    with pytest.raises(error):
        await TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port).connect(factory())
    await port.stopListening()


class FailsToStart(Protocol):
    def connectionMade(self) -> None:
        raise KeyError("connectionMade broke")


async def test_an_error_in_connectionMade_fails_connect(reactor: Any, caplog: Any) -> None:
    port = reactor.listenTCP(0, Factory.forProtocol(Echo), interface="127.0.0.1")
    with pytest.raises(KeyError):
        await TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port).connect(
            Factory.forProtocol(FailsToStart))
    await port.stopListening()


async def test_connectProtocol_connects_that_instance(reactor: Any) -> None:
    port = reactor.listenTCP(0, Factory.forProtocol(Echo), interface="127.0.0.1")
    mine = Recorder()
    endpoint = clientFromString(reactor, f"tcp:127.0.0.1:{port.getHost().port}")
    assert await connectProtocol(endpoint, mine) is mine
    mine.transport.loseConnection()
    await mine.lost
    await port.stopListening()


async def test_unix_listen_and_connect(reactor: Any, tmp_path: Path) -> None:
    pytest.importorskip("reactor.unix")
    path = str(tmp_path / "e.sock")
    port = await serverFromString(reactor, f"unix:{path}:mode=600").listen(
        Factory.forProtocol(Echo))
    assert describe(port) == f"unix:{path}"
    assert isinstance(port.getHost(), UNIXAddress)
    assert (tmp_path / "e.sock").stat().st_mode & 0o777 == 0o600
    client = await clientFromString(reactor, f"unix:{path}:timeout=5").connect(
        Factory.forProtocol(Recorder))
    client.transport.write(b"local")
    assert await client.wait_for_bytes(5) == b"local"
    client.transport.loseConnection()
    await client.lost
    await port.stopListening()
    assert not (tmp_path / "e.sock").exists()


class EchoDatagram(DatagramProtocol):
    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        self.transport.write(datagram.upper(), addr)


async def test_udp_listen(reactor: Any) -> None:
    pytest.importorskip("reactor.udp")
    port = await serverFromString(reactor, "udp:0:interface=127.0.0.1").listen(EchoDatagram())
    number = port.getHost().port
    assert describe(port) == f"udp:127.0.0.1:{number}"
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        client.settimeout(10)
        client.sendto(b"ping", ("127.0.0.1", number))
        reply = await reactor.deferToThread(client.recvfrom, 100)
        assert reply == (b"PING", ("127.0.0.1", number))
    finally:
        client.close()
    await port.stopListening()


async def test_ssl_listen_and_connect(reactor: Any, pki: dict[str, str]) -> None:
    pytest.importorskip("reactor.tls")
    port = await serverFromString(
        reactor, f"ssl:0:interface=127.0.0.1:certKey={pki['cert']}:privateKey={pki['key']}"
    ).listen(Factory.forProtocol(Echo))
    number = port.getHost().port
    assert describe(port) == f"ssl:127.0.0.1:{number}"
    client = await clientFromString(
        reactor, f"{describe(port)}:trustRoots={pki['ca']}").connect(
        Factory.forProtocol(Recorder))
    client.transport.write(b"secret")
    assert await client.wait_for_bytes(6) == b"secret"
    client.transport.loseConnection()
    await client.lost
    await port.stopListening()


async def test_ssl_connect_to_an_untrusted_server_fails(reactor: Any,
                                                        pki: dict[str, str]) -> None:
    pytest.importorskip("reactor.tls")
    port = await serverFromString(
        reactor, f"ssl:0:interface=127.0.0.1:certKey={pki['combined']}").listen(
        Factory.forProtocol(Echo))
    # No trustRoots: the system's CAs do not know the trustme CA.
    with pytest.raises(ssl.SSLCertVerificationError):
        await clientFromString(reactor, f"ssl:127.0.0.1:{port.getHost().port}").connect(
            Factory.forProtocol(Recorder))
    await port.stopListening()
