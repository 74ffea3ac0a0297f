"""Protocols and factories: the classes user code subclasses.

A :class:`Protocol` handles one connection. The reactor (or a test) drives it
through a fixed grammar::

    start -> makeConnection -> connectionMade [-> dataReceived*] -> connectionLost -> end

``makeConnection(transport)`` stores the transport and calls ``connectionMade``;
``dataReceived`` then gets bytes in chunks of any size (messages may arrive
split or merged); ``connectionLost(reason)`` is called exactly once, with
``Failure(ConnectionDone())`` for a clean close and a ``ConnectionLost`` failure
otherwise. Nothing is called after ``connectionLost``.

A :class:`Factory` builds one protocol per connection and is started/stopped by
the ports and connectors using it::

    start -> doStart (startFactory on the first) [-> buildProtocol*] -> doStop -> end

Client factories additionally hear ``startedConnecting``, then either
``clientConnectionFailed`` or (after the connection was made and ended)
``clientConnectionLost``.

A :class:`DatagramProtocol` follows ``makeConnection -> startProtocol
[-> datagramReceived*] -> stopProtocol``; a :class:`ProcessProtocol` follows
``makeConnection -> connectionMade [-> childDataReceived*] [-> childConnectionLost*]
-> processExited -> processEnded``.

Example:
    >>> from reactor.testing import StringTransport
    >>> class Echo(Protocol):
    ...     def dataReceived(self, data: bytes) -> None:
    ...         self.transport.write(data)
    >>> proto = Factory.forProtocol(Echo).buildProtocol(None)
    >>> transport = StringTransport()
    >>> proto.makeConnection(transport); proto.dataReceived(b"hi")
    >>> transport.value()
    b'hi'
"""

from __future__ import annotations

import importlib
import logging
import random
from collections.abc import Callable, Iterable
from typing import IO, Any, Generic, TypeVar, cast

from deferred import Failure
from reactor.error import ConnectionDone, NotConnectingError
from reactor.interfaces import (
    IConnector,
    IConsumer,
    IDelayedCall,
    IProducer,
    IProtocol,
    IReactorTime,
    ITransport,
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

log = logging.getLogger(__name__)

_P = TypeVar("_P", bound=IProtocol)
_Q = TypeVar("_Q", bound=IProtocol)


connectionDone: Failure = Failure(ConnectionDone())
"""The ``reason`` for a clean close; also ``Protocol.connectionLost``'s default."""
# A module-level failure lives forever: drop its traceback and frames now.
connectionDone.cleanFailure()


class BaseProtocol:
    """What stream and process protocols share: ``makeConnection`` and friends.

    Attributes:
        connected: 1 once ``makeConnection`` was called (Twisted uses an int).
        transport: The transport, once connected; None before.
    """

    connected = 0
    transport: ITransport | None = None

    def makeConnection(self, transport: Any) -> None:
        """Attach ``transport``, set ``connected = 1`` and call ``connectionMade``."""
        self.connected = 1
        self.transport = transport
        self.connectionMade()

    def connectionMade(self) -> None:
        """Called once the connection is up; override to send a greeting."""


class Protocol(BaseProtocol):
    """The base class for stream protocols (TCP, UNIX, TLS, in-memory).

    Override :meth:`dataReceived` and, if needed, :meth:`connectionMade` and
    :meth:`connectionLost`. Write replies with ``self.transport.write``.

    Attributes:
        factory: The factory that built this protocol (set by ``buildProtocol``).
    """

    factory: Any = None

    def logPrefix(self) -> str:
        """Return the class name, used to label log messages about this protocol."""
        return self.__class__.__name__

    def dataReceived(self, data: bytes) -> None:
        """Called with each chunk of received bytes; chunks follow no message boundaries."""

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """Called once when the connection ends; drop references to the connection here."""


class ProtocolToConsumerAdapter:
    """Makes a protocol usable as a consumer: ``write`` feeds ``dataReceived``.

    Args:
        original: The protocol to feed.
    """

    def __init__(self, original: IProtocol) -> None:
        self.original = original

    def write(self, data: bytes) -> None:
        """Pass ``data`` to the protocol's ``dataReceived``."""
        self.original.dataReceived(data)

    def registerProducer(self, producer: IProducer, streaming: bool) -> None:
        """Ignored: a protocol cannot throttle a producer."""

    def unregisterProducer(self) -> None:
        """Ignored."""


class ConsumerToProtocolAdapter:
    """Makes a consumer usable as a protocol: ``dataReceived`` calls ``write``.

    Args:
        original: The consumer to write to.
    """

    def __init__(self, original: IConsumer) -> None:
        self.original = original

    def makeConnection(self, transport: Any) -> None:
        """Ignored."""

    def connectionMade(self) -> None:
        """Ignored."""

    def dataReceived(self, data: bytes) -> None:
        """Write ``data`` to the consumer."""
        self.original.write(data)

    def connectionLost(self, reason: Failure) -> None:
        """Ignored."""


# --- factories -------------------------------------------------------------------------


class Factory(Generic[_P]):
    """Builds a protocol for each connection.

    Set ``protocol`` to a Protocol class (or any callable returning a protocol)
    and ``buildProtocol`` will call it and set ``protocol.factory = self``.
    State shared by all connections lives on the factory.

    Attributes:
        protocol: The protocol class (or callable) to build.
        numPorts: How many ports/connectors are using this factory now.
        noisy: Log "Starting factory"/"Stopping factory" at INFO level.

    Example:
        >>> class Count(Protocol):
        ...     def connectionMade(self) -> None:
        ...         self.factory.connections += 1
        >>> class CountFactory(Factory[Count]):
        ...     protocol = Count
        ...     connections = 0
        >>> factory = CountFactory()
        >>> factory.buildProtocol(None).makeConnection(None)
        >>> factory.connections
        1
    """

    protocol: Callable[..., _P] | None = None
    numPorts = 0
    noisy = True

    @classmethod
    def forProtocol(
        cls, protocol: Callable[..., _Q], *args: Any, **kwargs: Any
    ) -> Factory[_Q]:
        """Create a factory (passing ``args``/``kwargs``) whose ``protocol`` is ``protocol``.

        Example:
            >>> Factory.forProtocol(Protocol).protocol is Protocol
            True
        """
        factory = cast("Factory[_Q]", cls(*args, **kwargs))
        factory.protocol = protocol
        return factory

    def logPrefix(self) -> str:
        """Return the class name, used to label log messages about this factory."""
        return self.__class__.__name__

    def doStart(self) -> None:
        """Count a new user; call ``startFactory`` for the first. Called by ports."""
        if not self.numPorts:
            if self.noisy:
                log.info("Starting factory %r", self)
            self.startFactory()
        self.numPorts += 1

    def doStop(self) -> None:
        """Count a user leaving; call ``stopFactory`` after the last. Called by ports."""
        if self.numPorts == 0:
            # Unbalanced doStop: a bug elsewhere, but not worth crashing a port over.
            return
        self.numPorts -= 1
        if not self.numPorts:
            if self.noisy:
                log.info("Stopping factory %r", self)
            self.stopFactory()

    def startFactory(self) -> None:
        """Called once before the first port/connector uses this factory."""

    def stopFactory(self) -> None:
        """Called once after the last port/connector stopped using this factory."""

    def buildProtocol(self, addr: Any) -> _P | None:
        """Build the protocol for a connection from/to ``addr``.

        Returns:
            A new protocol with ``factory`` set, or None to refuse the connection.
        """
        assert self.protocol is not None, f"{self!r} has no protocol to build"
        proto = self.protocol()
        proto.factory = self  # type: ignore[attr-defined]
        return proto


class ServerFactory(Factory[_P]):
    """A factory meant for servers (``listenTCP`` and friends)."""


class ClientFactory(Factory[_P]):
    """A factory for outgoing connections, with hooks about the attempt."""

    def startedConnecting(self, connector: IConnector) -> None:
        """A connection attempt started; ``connector.stopConnecting()`` cancels it."""

    def clientConnectionFailed(self, connector: IConnector, reason: Failure) -> None:
        """The attempt failed; ``connector.connect()`` would try again."""

    def clientConnectionLost(self, connector: IConnector, reason: Failure) -> None:
        """An established connection ended; ``connector.connect()`` would reconnect."""


class ReconnectingClientFactory(ClientFactory[_P]):
    """A client factory that reconnects with exponential back-off and jitter.

    After each failed attempt or lost connection the delay is multiplied by
    ``factor`` (up to ``maxDelay``) and perturbed by a normal distribution with
    relative spread ``jitter``, so many clients do not reconnect in lockstep.
    Call :meth:`resetDelay` once a connection succeeds, :meth:`stopTrying` to
    give up.

    Attributes:
        maxDelay: The longest wait between attempts, in seconds.
        initialDelay: The first wait.
        factor: How much the wait grows per attempt (e).
        jitter: Relative standard deviation of the random perturbation; 0 for
            none.
        maxRetries: Give up after this many consecutive failures (None: never).
        clock: The ``IReactorTime`` used to wait. None means the connector's
            reactor, else the installed reactor (looked up only when needed).
        rng: A ``random.Random`` for the jitter (None: the ``random`` module);
            set ``random.Random(seed)`` for repeatable tests.
        retries: Consecutive failed attempts so far.
        delay: The wait before the next attempt.

    Example:
        >>> from reactor.testing import Clock
        >>> factory = ReconnectingClientFactory()
        >>> factory.clock, factory.jitter, factory.noisy = Clock(), 0, False
        >>> class Connector:
        ...     def connect(self) -> None: print("connecting")
        >>> factory.clientConnectionFailed(Connector(), None)
        >>> factory.clock.advance(1.0)
        connecting
    """

    maxDelay: float = 3600
    initialDelay = 1.0
    factor = 2.7182818284590451  # e: grows fast, and is what Twisted users expect
    jitter = 0.119626565582
    delay = initialDelay
    retries = 0
    maxRetries: int | None = None
    continueTrying = 1
    clock: IReactorTime | None = None
    connector: IConnector | None = None
    rng: random.Random | None = None
    _callID: IDelayedCall | None = None

    def clientConnectionFailed(self, connector: IConnector, reason: Failure) -> None:
        """Schedule another attempt (unless :meth:`stopTrying` was called)."""
        if self.continueTrying:
            self.connector = connector
            self.retry()

    def clientConnectionLost(self, connector: IConnector, reason: Failure) -> None:
        """Schedule a reconnection (unless :meth:`stopTrying` was called)."""
        if self.continueTrying:
            self.connector = connector
            self.retry()

    def retry(self, connector: IConnector | None = None) -> None:
        """Call ``connector.connect()`` again after the current delay, then grow it.

        Raises:
            ValueError: No connector was given and none is remembered.
        """
        if not self.continueTrying:
            if self.noisy:
                log.info("Abandoning %s on explicit request", connector)
            return
        if connector is None:
            if self.connector is None:
                raise ValueError("no connector to retry")
            connector = self.connector

        self.retries += 1
        if self.maxRetries is not None and self.retries > self.maxRetries:
            if self.noisy:
                log.info("Abandoning %s after %d retries.", connector, self.retries)
            return

        if self.jitter:
            normal = random.normalvariate if self.rng is None else self.rng.normalvariate
            self.delay = normal(self.delay, self.delay * self.jitter)
        # The normal distribution is unbounded; never wait less than 0 or more
        # than maxDelay, whatever the dice say.
        wait = min(max(self.delay, 0.0), self.maxDelay)
        if self.noisy:
            log.info("%s will retry in %d seconds", connector, wait)

        def reconnect() -> None:
            self._callID = None
            connector.connect()

        self._callID = self._clock_for(connector).callLater(wait, reconnect)
        self.delay = min(self.delay * self.factor, self.maxDelay)

    def _clock_for(self, connector: IConnector) -> IReactorTime:
        if self.clock is not None:
            return self.clock
        # Prefer the reactor that made this connector: there may be several.
        owner = getattr(connector, "reactor", None)
        if owner is not None:
            return cast(IReactorTime, owner)
        # Imported here, never at module import: importing must not choose a
        # reactor behind the user's back.
        return cast(IReactorTime, importlib.import_module("reactor"))

    def stopTrying(self) -> None:
        """Cancel any scheduled attempt and stop reconnecting."""
        if self._callID is not None:
            if self._callID.active():
                self._callID.cancel()
            self._callID = None
        self.continueTrying = 0
        if self.connector is not None:
            try:
                self.connector.stopConnecting()
            except NotConnectingError:
                pass

    def resetDelay(self) -> None:
        """Call after a successful connection: back to ``initialDelay``, zero retries."""
        self.delay = self.initialDelay
        self.retries = 0
        self._callID = None
        self.continueTrying = 1

    def __getstate__(self) -> dict[str, Any]:
        """Pickle only the configuration, not the state of a reconnection in progress."""
        state = self.__dict__.copy()
        for key in ("connector", "retries", "delay", "continueTrying", "_callID", "clock"):
            state.pop(key, None)
        return state


# --- datagrams -------------------------------------------------------------------------


class AbstractDatagramProtocol:
    """The base of datagram protocols: start/stop counting like a factory.

    Attributes:
        transport: The UDP transport while connected; None otherwise.
        numPorts: How many ports use this protocol now.
        noisy: Log "Starting protocol"/"Stopping protocol" at INFO level.
    """

    transport: Any = None
    numPorts = 0
    noisy = True

    def doStart(self) -> None:
        """Count a new port; call ``startProtocol`` for the first. Called by ports."""
        if not self.numPorts:
            if self.noisy:
                log.info("Starting protocol %r", self)
            self.startProtocol()
        self.numPorts += 1

    def doStop(self) -> None:
        """Count a port leaving; call ``stopProtocol`` after the last. Called by ports."""
        assert self.numPorts > 0, "doStop() without doStart()"
        self.numPorts -= 1
        self.transport = None
        if not self.numPorts:
            if self.noisy:
                log.info("Stopping protocol %r", self)
            self.stopProtocol()

    def startProtocol(self) -> None:
        """Called when the first transport is attached."""

    def stopProtocol(self) -> None:
        """Called after the last transport is detached."""

    def makeConnection(self, transport: Any) -> None:
        """Attach ``transport`` and call :meth:`doStart`."""
        assert self.transport is None, "DatagramProtocol already has a transport"
        self.transport = transport
        self.doStart()

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        """Called with each datagram and its sender's address."""


class DatagramProtocol(AbstractDatagramProtocol):
    """The base class for UDP protocols; override ``datagramReceived``.

    Example:
        >>> class Echo(DatagramProtocol):
        ...     def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        ...         self.transport.write(datagram, addr)
    """

    def logPrefix(self) -> str:
        """Return the class name, used to label log messages."""
        return self.__class__.__name__

    def connectionRefused(self) -> None:
        """A previous write to the connected peer was refused (an ICMP error)."""


# --- processes -------------------------------------------------------------------------


class ProcessProtocol(BaseProtocol):
    """Receives a child process's output and exit (``reactor.spawnProcess``).

    ``childDataReceived``/``childConnectionLost`` dispatch file descriptors 0, 1
    and 2 to the ``in``/``out``/``err`` methods; override whichever you need.
    """

    transport: Any = None

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        """Output arrived on ``childFD``; 1 goes to outReceived, 2 to errReceived."""
        if childFD == 1:
            self.outReceived(data)
        elif childFD == 2:
            self.errReceived(data)

    def outReceived(self, data: bytes) -> None:
        """The child wrote ``data`` to stdout."""

    def errReceived(self, data: bytes) -> None:
        """The child wrote ``data`` to stderr."""

    def childConnectionLost(self, childFD: int) -> None:
        """The pipe for ``childFD`` closed; dispatched to in/out/errConnectionLost."""
        if childFD == 0:
            self.inConnectionLost()
        elif childFD == 1:
            self.outConnectionLost()
        elif childFD == 2:
            self.errConnectionLost()

    def inConnectionLost(self) -> None:
        """The child's stdin was closed."""

    def outConnectionLost(self) -> None:
        """The child's stdout was closed."""

    def errConnectionLost(self) -> None:
        """The child's stderr was closed."""

    def processExited(self, reason: Failure) -> None:
        """The child exited (``ProcessDone`` or ``ProcessTerminated`` in ``reason``)."""

    def processEnded(self, reason: Failure) -> None:
        """The child exited and all its pipes are closed; the last call."""


# --- a file as a transport -------------------------------------------------------------


class FileWrapper:
    """A transport that writes to a file; handy for debugging a protocol's output.

    Args:
        file: A binary file-like object.

    Example:
        >>> import io
        >>> out = io.BytesIO()
        >>> proto = Protocol(); proto.makeConnection(FileWrapper(out))
        >>> proto.transport.write(b"logged")
        >>> out.getvalue()
        b'logged'
    """

    closed = 0
    disconnecting = False
    producer: Any = None
    streamingProducer = False

    def __init__(self, file: IO[bytes]) -> None:
        self.file = file

    def write(self, data: bytes) -> None:
        """Write ``data`` to the file."""
        try:
            self.file.write(data)
        except BaseException:
            self.handleException()

    def writeSequence(self, iovec: Iterable[bytes]) -> None:
        """Write each item of ``iovec``."""
        self.write(b"".join(iovec))

    def loseConnection(self) -> None:
        """Close the file."""
        self.closed = 1
        try:
            self.file.close()
        except OSError:
            self.handleException()

    def getPeer(self) -> Any:
        """Return ``("file", "file")`` (files have no address)."""
        return ("file", "file")

    def getHost(self) -> Any:
        """Return ``"file"``."""
        return "file"

    def handleException(self) -> None:
        """Called when writing or closing fails; ignores the error by default."""

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        """Register a producer; a pull producer is asked for data at once."""
        self.producer = producer
        self.streamingProducer = streaming
        if not streaming:
            producer.resumeProducing()

    def unregisterProducer(self) -> None:
        """Forget the producer."""
        self.producer = None

    def stopConsuming(self) -> None:
        """Forget the producer and close."""
        self.unregisterProducer()
        self.loseConnection()

    def resumeProducing(self) -> None:
        """Nothing to do: a file never produces data."""

    def pauseProducing(self) -> None:
        """Nothing to do: a file never produces data."""

    def stopProducing(self) -> None:
        """Close the file."""
        self.loseConnection()
