"""Protocols: ``Protocol``/``Factory`` and the protocol implementations.

The base classes live in :mod:`protocols.base` and are re-exported here, so
Twisted code that imported ``twisted.internet.protocol`` imports ``protocols``::

    from protocols import Factory, Protocol

    class Echo(Protocol):
        def dataReceived(self, data: bytes) -> None:
            self.transport.write(data)

    factory = Factory.forProtocol(Echo)

Framing helpers (lines, netstrings, length prefixes) are in
:mod:`protocols.basic`; full protocols (HTTP, FTP, XML-RPC, ...) in their own
subpackages, imported only when asked for.
"""

from .base import (
    AbstractDatagramProtocol,
    BaseProtocol,
    ClientFactory,
    ConsumerToProtocolAdapter,
    DatagramProtocol,
    Factory,
    FileWrapper,
    ProcessProtocol,
    Protocol,
    ProtocolToConsumerAdapter,
    ReconnectingClientFactory,
    ServerFactory,
    connectionDone,
)

__all__ = [
    "AbstractDatagramProtocol",
    "BaseProtocol",
    "ClientFactory",
    "ConsumerToProtocolAdapter",
    "DatagramProtocol",
    "Factory",
    "FileWrapper",
    "ProcessProtocol",
    "Protocol",
    "ProtocolToConsumerAdapter",
    "ReconnectingClientFactory",
    "ServerFactory",
    "connectionDone",
]
