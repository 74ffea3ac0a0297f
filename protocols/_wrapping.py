"""The plumbing of ``protocols.policies``: a protocol wrapped between it and its transport.

``ProtocolWrapper`` and ``WrappingFactory`` are re-exported by
``protocols.policies``; they live here so the policies built on them
(timeouts and limits there, throttling in ``protocols._throttle``) can share
them without importing each other.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Iterable
from typing import Any, cast

from deferred import Failure
from reactor.interfaces import IConnector, IReactorTime

from .base import ClientFactory, Protocol, connectionDone

__all__ = ["ProtocolWrapper", "WrappingFactory", "find_clock"]

log = logging.getLogger(__name__)

# Looked up on the wrapped protocol, not the transport: a wrapper is
# half-closeable exactly when the protocol inside it is (transports look for
# these names to decide whether a FIN closes the connection).
_HALF_CLOSE = frozenset({"readConnectionLost", "writeConnectionLost"})


def find_clock(protocol: Any) -> IReactorTime:
    """Return the clock ``protocol`` (or a factory) should schedule its timers on.

    The first found of ``protocol.clock``, ``protocol.factory.clock``,
    ``protocol.transport.reactor``, ``protocol.factory.reactor``; else the
    installed reactor, imported only now so that importing a protocol never
    picks a reactor behind the user's back.

    Example:
        >>> from reactor.testing import Clock
        >>> class P: clock = Clock()
        >>> find_clock(P()) is P.clock
        True
    """
    factory = getattr(protocol, "factory", None)
    for owner, name in ((protocol, "clock"), (factory, "clock"),
                        (getattr(protocol, "transport", None), "reactor"),
                        (factory, "reactor")):
        found = getattr(owner, name, None)
        if found is not None:
            return cast(IReactorTime, found)
    return cast(IReactorTime, importlib.import_module("reactor"))


def _prefix(inner: Any, outer: object) -> str:
    name = inner.logPrefix() if hasattr(inner, "logPrefix") else type(inner).__name__
    return f"{name} ({type(outer).__name__})"


# --- the plumbing ----------------------------------------------------------------------


class ProtocolWrapper(Protocol):
    """Sits between a transport and ``wrappedProtocol``, forwarding both ways.

    To the wrapped protocol it is the transport: ``write``, ``loseConnection``,
    ``getPeer``, producers... go through it, and other attributes (``reactor``,
    ``pauseProducing``, ``setTcpNoDelay``...) are the real transport's. It tells
    ``factory`` about the connection (``registerProtocol`` when made,
    ``unregisterProtocol`` when lost).
    """

    _disconnecting = False

    def __init__(self, factory: Any, wrappedProtocol: Any) -> None:
        self.factory = factory
        self.wrappedProtocol = wrappedProtocol

    @property
    def disconnecting(self) -> bool:
        """True once this wrapper or the real transport started closing."""
        return self._disconnecting or bool(getattr(self.transport, "disconnecting", False))

    def logPrefix(self) -> str:
        """The wrapped protocol's prefix, marked as wrapped."""
        return _prefix(self.wrappedProtocol, self)

    def makeConnection(self, transport: Any) -> None:
        """Attach ``transport``, register with the factory, then start the wrapped protocol."""
        Protocol.makeConnection(self, transport)
        self.factory.registerProtocol(self)
        self.wrappedProtocol.makeConnection(self)

    # -- the transport, as the wrapped protocol sees it ------------------------------

    def write(self, data: bytes) -> None:
        """Write ``data`` to the transport."""
        self.transport.write(data)  # type: ignore[union-attr]

    def writeSequence(self, data: Iterable[bytes]) -> None:
        """Write the items of ``data`` to the transport."""
        self.transport.writeSequence(data)  # type: ignore[union-attr]

    def loseConnection(self) -> None:
        """Close the transport once it has sent what is queued."""
        self._disconnecting = True
        self.transport.loseConnection()  # type: ignore[union-attr]

    def abortConnection(self) -> None:
        """Close the transport at once, dropping what is queued."""
        self._disconnecting = True
        self.transport.abortConnection()  # type: ignore[union-attr]

    def getPeer(self) -> Any:
        """The transport's remote address."""
        return self.transport.getPeer()  # type: ignore[union-attr]

    def getHost(self) -> Any:
        """The transport's local address."""
        return self.transport.getHost()  # type: ignore[union-attr]

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        """Register ``producer`` with the transport."""
        self.transport.registerProducer(producer, streaming)  # type: ignore[union-attr]

    def unregisterProducer(self) -> None:
        """Unregister the transport's producer."""
        self.transport.unregisterProducer()  # type: ignore[union-attr]

    def stopConsuming(self) -> None:
        """Unregister the producer and close."""
        self.unregisterProducer()
        self.loseConnection()

    def __getattr__(self, name: str) -> Any:
        # Called only for names not found on the wrapper: the rest of the
        # transport API comes from the transport itself.
        if name in _HALF_CLOSE:
            return getattr(self.__dict__.get("wrappedProtocol"), name)
        transport = self.__dict__.get("transport")
        if transport is None or name.startswith("__"):
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        return getattr(transport, name)

    # -- the protocol, as the transport sees it -------------------------------------

    def dataReceived(self, data: bytes) -> None:
        """Pass ``data`` to the wrapped protocol."""
        self.wrappedProtocol.dataReceived(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """Unregister from the factory, then tell the wrapped protocol."""
        self.factory.unregisterProtocol(self)
        self.wrappedProtocol.connectionLost(reason)
        # As in Twisted: break the wrapper <-> protocol cycle (the protocol's
        # transport is this wrapper) so both are freed without the cycle GC.
        self.wrappedProtocol = None


class WrappingFactory(ClientFactory[ProtocolWrapper]):
    """Wraps each protocol ``wrappedFactory`` builds in a ``self.protocol`` wrapper.

    Start/stop and client-connection events go on to the wrapped factory;
    ``protocols`` holds the live wrappers (a dict used as a set, as in Twisted).

    Example:
        >>> from protocols import Factory, Protocol
        >>> factory = WrappingFactory(Factory.forProtocol(Protocol))
        >>> factory.buildProtocol(None).wrappedProtocol.factory is factory.wrappedFactory
        True
    """

    protocol: Callable[..., ProtocolWrapper] = ProtocolWrapper

    def __init__(self, wrappedFactory: Any) -> None:
        self.wrappedFactory = wrappedFactory
        self.protocols: dict[ProtocolWrapper, int] = {}

    def logPrefix(self) -> str:
        """The wrapped factory's prefix, marked as wrapped."""
        return _prefix(self.wrappedFactory, self)

    def doStart(self) -> None:
        """Start the wrapped factory, then this one."""
        self.wrappedFactory.doStart()
        super().doStart()

    def doStop(self) -> None:
        """Stop the wrapped factory, then this one."""
        self.wrappedFactory.doStop()
        super().doStop()

    def startedConnecting(self, connector: IConnector) -> None:
        """Forwarded to the wrapped factory."""
        self.wrappedFactory.startedConnecting(connector)

    def clientConnectionFailed(self, connector: IConnector, reason: Failure) -> None:
        """Forwarded to the wrapped factory."""
        self.wrappedFactory.clientConnectionFailed(connector, reason)

    def clientConnectionLost(self, connector: IConnector, reason: Failure) -> None:
        """Forwarded to the wrapped factory."""
        self.wrappedFactory.clientConnectionLost(connector, reason)

    def buildProtocol(self, addr: Any) -> ProtocolWrapper | None:
        """Wrap the wrapped factory's protocol; None if it refused the connection."""
        wrapped = self.wrappedFactory.buildProtocol(addr)
        return None if wrapped is None else self.protocol(self, wrapped)

    def registerProtocol(self, p: ProtocolWrapper) -> None:
        """Called by a wrapper once connected."""
        self.protocols[p] = 1

    def unregisterProtocol(self, p: ProtocolWrapper) -> None:
        """Called by a wrapper once its connection is lost."""
        self.protocols.pop(p, None)


