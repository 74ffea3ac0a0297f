"""TCP for the selector reactor: the connection transport, the listening port, connecting.

``Connection`` is the transport a protocol writes to. Its fast paths:

- ``write()`` sends at once when nothing is queued; only what the kernel will
  not take is queued, and only then is the socket watched for writability.
- queued data goes out with one ``sendmsg`` (a gathered write) per wake-up.
- a read asks for 256 KiB, served from the heap (see ``reactor._malloc``).

Closing follows Twisted: ``loseConnection`` closes after the queue is sent
(and after a registered producer has unregistered), ``abortConnection`` at
once; ``connectionLost`` is called exactly once, later, from the loop, with
``ConnectionDone`` for a clean close and ``ConnectionLost`` otherwise. An
exception in the protocol's ``dataReceived`` or ``connectionMade`` is logged
with its traceback and closes that connection only.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
from collections import deque
from typing import TYPE_CHECKING, Any

from deferred import Deferred, Failure, succeed
from reactor._sockets import TCPOptions, bind_tcp_listener
from reactor.address import IPv4Address, IPv6Address
from reactor.error import (
    ConnectError,
    ConnectionAborted,
    ConnectionDone,
    ConnectionLost,
    ConnectionRefusedError,
    NoRouteError,
    TCPTimedOutError,
)

if TYPE_CHECKING:
    from reactor.selector import SelectorReactor

__all__ = ["Connection", "FileJob", "Port", "address_of", "connect_error"]

log = logging.getLogger("reactor")

#: Bytes asked for per read. 256 KiB, as asyncio: a stream then needs a quarter
#: of the system calls and dataReceived calls that 64 KiB reads need (measured
#: 1.4x less CPU per MB); ``raise_mmap_threshold`` keeps these buffers out of
#: mmap, which is what made large reads slow in a fresh process.
READ_SIZE = 256 * 1024
#: Above this many queued bytes a streaming producer is paused...
HIGH_WATER = 64 * 1024
#: ...and below this many it is resumed.
LOW_WATER = 16 * 1024
#: The most buffers handed to one sendmsg (well under every IOV_MAX).
_MAX_IOV = 512
#: How long a port stops accepting after running out of file descriptors.
ACCEPT_BACKOFF = 0.1
#: The write queue of every connection that has not yet had to queue anything: shared,
#: so never appended to (a connection gets a deque of its own the first time a write
#: does not go out whole). An empty deque is ~760 bytes, over a third of an idle
#: connection's memory: most connections never need one.
_NO_QUEUE: deque[Any] = deque()

_READ = 1
_WRITE = 2
_DISCONNECT_ERRNOS = {errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED, errno.ETIMEDOUT,
                      errno.ENOTCONN, errno.ESHUTDOWN}


def address_of(sockaddr: Any, family: int) -> IPv4Address | IPv6Address:
    """The Twisted-style address for a socket address."""
    if family == socket.AF_INET6:
        host, port, flowinfo, scope = sockaddr
        return IPv6Address("TCP", host, port, flowinfo, scope)
    host, port = sockaddr
    return IPv4Address("TCP", host, port)


def connect_error(err: OSError) -> ConnectError:
    """The Twisted error for a failed connect() (refused, unreachable, timed out...)."""
    code = err.errno
    text = err.strerror or str(err)
    if code == errno.ECONNREFUSED:
        return ConnectionRefusedError(text)
    if code in (errno.ENETUNREACH, errno.EHOSTUNREACH):
        return NoRouteError(text)
    if code == errno.ETIMEDOUT:
        return TCPTimedOutError(text)
    return ConnectError(f"{code}: {text}")


class FileJob:
    """One ``os.sendfile`` transfer waiting in a connection's write queue.

    Attributes:
        d: fires with the number of bytes sent (fewer than asked only when
            the file ended first), or fails if the connection is lost.
    """

    __slots__ = ("d", "fd", "offset", "remaining", "sent")

    #: Bytes asked of one sendfile call; the kernel sends what the socket
    #: buffer takes, so this only bounds the work of one loop turn.
    CHUNK = 4 * 1024 * 1024

    def __init__(self, fd: int, offset: int, count: int) -> None:
        self.fd = fd
        self.offset = offset
        self.remaining = count
        self.sent = 0
        self.d: Deferred[int] = Deferred()

    def __len__(self) -> int:
        return 0  # a queued job holds no bytes in memory

    def step(self, sock_fd: int) -> bool:
        """Send what the socket takes now; True once finished. OSError on failure."""
        while self.remaining > 0:
            try:
                n = os.sendfile(sock_fd, self.fd, self.offset, min(self.remaining, self.CHUNK))
            except (BlockingIOError, InterruptedError):
                return False
            if n == 0:
                break  # the file is shorter than asked
            self.offset += n
            self.sent += n
            self.remaining -= n
        return True


class Connection(TCPOptions):
    """A connected TCP socket as a transport (Twisted's ``ITCPTransport``).

    Created by the reactor for accepted and connected sockets; protocols see
    it as ``self.transport``.
    """

    def __init__(self, reactor: SelectorReactor, sock: socket.socket, protocol: Any,
                 on_lost: Any = None, server: bool = False) -> None:
        sock.setblocking(False)
        self.reactor = reactor
        self.socket = sock
        self.protocol = protocol
        self._fd = sock.fileno()
        self._family = sock.family
        self._on_lost = on_lost
        self.server = server
        self.connected = True
        self.disconnecting = False
        self.disconnected = False
        # Outgoing data not yet accepted by the kernel.
        self._queue: deque[Any] = _NO_QUEUE  # bytes, memoryviews and FileJobs
        self._queued = 0
        self._file_jobs = 0  # FileJobs in the queue (see reactor.sendfile)
        self._interest = 0
        self._reading_paused = False
        self._read_closed = False
        self._write_closing = False  # loseWriteConnection asked for
        self._write_closed = False
        self._lost = False
        self._reason: Failure | None = None
        self.producer: Any = None
        self._streaming = False
        self._producer_paused = False
        self._half_closeable = callable(getattr(protocol, "readConnectionLost", None))
        # Hoisted for the hot paths.
        self._send = sock.send
        self._recv = sock.recv
        self._data_received = protocol.dataReceived

    def _swap_protocol(self, protocol: Any) -> None:
        """Deliver what is read to ``protocol`` from now on (e.g. a TLS layer)."""
        self.protocol = protocol
        self._data_received = protocol.dataReceived
        self._half_closeable = callable(getattr(protocol, "readConnectionLost", None))

    def startTLS(self, contextFactory: Any, server_side: bool | None = None,
                 server_hostname: str | None = None) -> Any:
        """Switch this connection to TLS from here on (STARTTLS); see ``reactor.tls.start_tls``."""
        from reactor.tls import start_tls

        return start_tls(self, contextFactory,
                         self.server if server_side is None else server_side, server_hostname)

    # -- starting ------------------------------------------------------------

    def _start(self) -> None:
        try:
            self._peer = address_of(self.socket.getpeername(), self._family)
            self._host = address_of(self.socket.getsockname(), self._family)
        except OSError as e:
            # Reset before we got to it: the protocol never starts.
            self.socket.close()
            if self._on_lost is not None:
                self._on_lost(Failure(ConnectionLost(f"{e.errno}: {e.strerror}")))
            return
        self.reactor._selectables.add(self)
        self._set_interest(_READ)
        try:
            self.protocol.makeConnection(self)
        except Exception:
            self._user_error("connectionMade")

    def fileno(self) -> int:
        return self._fd

    def _set_interest(self, interest: int) -> None:
        if interest != self._interest:
            self._interest = interest
            self.reactor._set_interest(self, self._fd, interest)

    # -- reading ----------------------------------------------------------------

    def _on_readable(self) -> None:
        try:
            data = self._recv(READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            self._close_now(Failure(ConnectionLost(f"{e.errno}: {e.strerror}")))
            return
        if data:
            try:
                self._data_received(data)
            except Exception:
                self._user_error("dataReceived")
            return
        self._read_eof()

    def _read_eof(self) -> None:
        """The peer sent FIN."""
        if self._half_closeable and not self.disconnecting:
            self._read_closed = True
            self._set_interest(self._interest & ~_READ)
            try:
                self.protocol.readConnectionLost()
            except Exception:
                self._user_error("readConnectionLost")
            return
        self._close_now(Failure(ConnectionDone()))

    def _user_error(self, where: str) -> None:
        """Protocol code raised: log it with its traceback, close this connection only."""
        failure = Failure()
        log.error("Unhandled error in %s of %r; closing the connection", where,
                  self.protocol, exc_info=(failure.type, failure.value, failure.tb))
        if not self._lost:
            self._close_now(failure)

    # -- writing ----------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Send ``data``: at once if possible, else queued in order."""
        if self.disconnecting or self._write_closing or self._lost:
            return
        if type(data) is not bytes:
            if isinstance(data, str):
                raise TypeError("Data must be bytes, not str")
            data = bytes(data)
        if not data:
            return
        queue = self._queue
        if not queue:
            try:
                sent = self._send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError as e:
                self._write_failed(e)
                return
            if sent == len(data):
                return
            data = memoryview(data)[sent:]  # type: ignore[assignment]
            self._set_interest(self._interest | _WRITE)
            if queue is _NO_QUEUE:
                queue = self._queue = deque()
        queue.append(data)
        self._queued += len(data)
        if self._queued > HIGH_WATER and self._streaming and not self._producer_paused:
            self._producer_paused = True
            self.producer.pauseProducing()

    def writeSequence(self, data: Any) -> None:
        """Send several byte strings, gathered into one system call where possible."""
        if self._queue or self.disconnecting or self._write_closing or self._lost:
            for chunk in data:
                self.write(chunk)
            return
        self.write(b"".join(data))

    def _on_writable(self) -> None:
        queue = self._queue
        # A sendfile is queued: the slower path that stops at it.
        if self._file_jobs and (not self._flush_with_files() or queue or self._lost):
            return
        if queue:
            try:
                if len(queue) == 1:
                    sent = self._send(queue[0])
                else:
                    buffers = list(queue) if len(queue) <= _MAX_IOV else [
                        queue[i] for i in range(_MAX_IOV)]
                    sent = self.socket.sendmsg(buffers)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                self._write_failed(e)
                return
            self._queued -= sent
            while sent:
                head = queue[0]
                if sent >= len(head):
                    sent -= len(head)
                    queue.popleft()
                else:
                    queue[0] = memoryview(head)[sent:]
                    sent = 0
            if queue:
                if self._producer_paused and self._queued <= LOW_WATER:
                    self._producer_paused = False
                    self.producer.resumeProducing()
                return
        # Everything is sent.
        producer = self.producer
        if producer is not None and not self._streaming:
            # A pull producer is asked for more each time the socket can take
            # it, so we keep watching for writability until it unregisters.
            producer.resumeProducing()
            return
        self._set_interest(self._interest & ~_WRITE)
        if producer is not None:
            if self._producer_paused and self._queued <= LOW_WATER:
                self._producer_paused = False
                producer.resumeProducing()
            return
        if self.disconnecting:
            self._close_now(Failure(ConnectionDone()))
        elif self._write_closing and not self._write_closed:
            self._shutdown_write()

    def _write_failed(self, e: OSError) -> None:
        self._close_now(Failure(ConnectionLost(f"{e.errno}: {e.strerror}")))

    # -- sendfile (driven by reactor.sendfile) -------------------------------------

    def _can_send_file(self) -> bool:
        """Whether ``_send_file`` may be used: plain TCP only (not under TLS)."""
        from reactor.tls import TLSConnection

        return (hasattr(os, "sendfile") and not self._lost and not self.disconnecting
                and not isinstance(self.protocol, TLSConnection))

    def _send_file(self, file: Any, offset: int, count: int) -> Deferred[int]:
        """Queue ``count`` bytes of ``file`` (or descriptor) from ``offset`` for os.sendfile.

        The job takes its place in the write queue: what was written before
        goes first, what is written after waits behind it.
        """
        job = FileJob(file if isinstance(file, int) else file.fileno(), offset, count)
        if self._lost or self.disconnecting or self._write_closing:
            job.d.errback(Failure(ConnectionLost("the connection is closing")))
            return job.d
        if not self._queue:
            # Nothing ahead of it: the socket is probably writable now, and
            # a whole response often fits its buffer. Trying at once saves
            # two selector changes (write interest on, then off) per file.
            try:
                finished = job.step(self._fd)
            except OSError as e:
                self._write_failed(e)
                job.d.errback(Failure(ConnectionLost(f"sendfile failed: {e}")))
                return job.d
            if finished:
                job.d.callback(job.sent)
                return job.d
        if self._queue is _NO_QUEUE:
            self._queue = deque()
        self._queue.append(job)
        self._file_jobs += 1
        self._set_interest(self._interest | _WRITE)
        return job.d

    def _flush_with_files(self) -> bool:
        """Send the queue up to and through file jobs; False if the socket is full."""
        queue = self._queue
        while queue:
            head = queue[0]
            if type(head) is FileJob:
                try:
                    finished = head.step(self._fd)
                except OSError as e:
                    self._write_failed(e)
                    return False
                if not finished:
                    return False
                queue.popleft()
                self._file_jobs -= 1
                head.d.callback(head.sent)  # may write, close or abort
                if self._lost or not self._interest & _WRITE:
                    return False
                continue
            buffers: list[bytes | memoryview] = []
            for item in queue:
                if type(item) is FileJob or len(buffers) == _MAX_IOV:
                    break
                buffers.append(item)
            try:
                sent = self.socket.sendmsg(buffers)
            except (BlockingIOError, InterruptedError):
                return False
            except OSError as e:
                self._write_failed(e)
                return False
            self._queued -= sent
            while sent:
                head = queue[0]
                if sent >= len(head):
                    sent -= len(head)
                    queue.popleft()
                else:
                    queue[0] = memoryview(head)[sent:]
                    sent = 0
            if queue and type(queue[0]) is not FileJob:
                return False  # the kernel took only part of it
        return True

    def _fail_file_jobs(self, reason: Failure) -> None:
        """Fail the sendfile jobs still queued (the queue is being dropped)."""
        if not self._file_jobs:
            return
        jobs = [item for item in self._queue if type(item) is FileJob]
        self._file_jobs = 0
        for job in jobs:
            job.d.errback(reason)

    # -- producers (we consume a producer's data; we produce what we read) --

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        """Take data from ``producer``: push (streaming) or pull (``resumeProducing`` asked)."""
        if self.producer is not None:
            raise RuntimeError(
                f"Cannot register producer {producer!r}, because producer "
                f"{self.producer!r} was never unregistered.")
        if self._lost:
            producer.stopProducing()
            return
        self.producer = producer
        self._streaming = bool(streaming)
        self._producer_paused = False
        if not streaming:
            # A pull producer is asked for data whenever the queue is empty.
            self._set_interest(self._interest | _WRITE)
        elif self._queued > HIGH_WATER:
            self._producer_paused = True
            producer.pauseProducing()

    def unregisterProducer(self) -> None:
        """Stop consuming from the producer; a pending ``loseConnection`` can now finish."""
        self.producer = None
        if (self.disconnecting or self._write_closing) and not self._lost:
            self._set_interest(self._interest | _WRITE)

    def pauseProducing(self) -> None:
        """Stop reading from the socket (the peer is sending faster than we consume)."""
        self._reading_paused = True
        if not self._lost:
            self._set_interest(self._interest & ~_READ)

    def resumeProducing(self) -> None:
        """Start reading again after ``pauseProducing``."""
        self._reading_paused = False
        if not self._lost and not self._read_closed and not self.disconnecting:
            self._set_interest(self._interest | _READ)

    def stopProducing(self) -> None:
        """Close the connection (the consumer of our data is gone)."""
        self.loseConnection()

    # -- closing ----------------------------------------------------------------

    def loseConnection(self) -> None:
        """Close once everything queued is sent (and a producer has unregistered)."""
        if self.disconnecting or self._lost:
            return
        self.disconnecting = True
        # Watching for writability: an empty queue makes the socket writable
        # at once, so the close happens on the next loop turn, as in Twisted.
        self._set_interest(_WRITE)

    def abortConnection(self) -> None:
        """Close at once, dropping anything queued."""
        if self._lost:
            return
        reason = Failure(ConnectionAborted())
        self._fail_file_jobs(reason)
        self._queue.clear()
        self._queued = 0
        self.disconnecting = True
        self._set_interest(0)
        self.reactor.callLater(0, self._close_now, reason)

    def loseWriteConnection(self) -> None:
        """Half-close: send FIN after the queue is sent; keep reading."""
        if self._write_closing or self._lost:
            return
        self._write_closing = True
        self._set_interest(self._interest | _WRITE)

    def _shutdown_write(self) -> None:
        self._write_closed = True
        try:
            self.socket.shutdown(socket.SHUT_WR)
        except OSError as e:
            self._write_failed(e)
            return
        writeConnectionLost = getattr(self.protocol, "writeConnectionLost", None)
        if writeConnectionLost is not None:
            try:
                writeConnectionLost()
            except Exception:
                self._user_error("writeConnectionLost")

    def _reactor_shutdown(self) -> None:
        self._close_now(Failure(ConnectionLost("The reactor shut down.")))

    def _close_now(self, reason: Failure) -> None:
        """Close the socket and tell the protocol, exactly once."""
        if self._lost:
            return
        self._lost = True
        self.connected = False
        self.disconnected = True
        self.disconnecting = True
        reactor = self.reactor
        reactor._forget(self._fd)
        reactor._selectables.discard(self)
        self._interest = 0
        try:
            self.socket.close()
        except OSError:
            pass
        self._fail_file_jobs(reason)
        self._queue.clear()
        producer, self.producer = self.producer, None
        if producer is not None:
            try:
                producer.stopProducing()
            except Exception:
                log.exception("Error in stopProducing of %r", producer)
        try:
            self.protocol.connectionLost(reason)
        except Exception:
            log.exception("Unhandled error in connectionLost of %r", self.protocol)
        if self._on_lost is not None:
            on_lost, self._on_lost = self._on_lost, None
            on_lost(reason)

    # -- addresses and options ----------------------------------------------------

    def getPeer(self) -> IPv4Address | IPv6Address:
        """The remote address (still known after the connection closed)."""
        return self._peer

    def getHost(self) -> IPv4Address | IPv6Address:
        """The local address (still known after the connection closed)."""
        return self._host

    def getHandle(self) -> socket.socket:
        return self.socket

    def logPrefix(self) -> str:
        return type(self.protocol).__name__

    def __repr__(self) -> str:
        state = "closed" if self._lost else "open"
        return f"<TCP transport fd={self._fd} {state} for {self.protocol!r}>"


class Port:
    """A listening TCP socket (``listenTCP`` returns one).

    Attributes:
        factory: builds a protocol for every accepted connection.
    """

    def __init__(self, reactor: SelectorReactor, port: int, factory: Any, backlog: int = 50,
                 interface: str = "") -> None:
        self.reactor = reactor
        self.port = port
        self.factory = factory
        self.backlog = backlog
        self.interface = interface
        self.connected = False
        self.socket: socket.socket | None = None
        self._fd = -1
        self._family = socket.AF_INET6 if ":" in interface else socket.AF_INET
        self._backoff_call: Any = None
        self._bound_port = 0

    def startListening(self) -> None:
        """Bind and listen; raises CannotListenError naming the address and the error."""
        sock = bind_tcp_listener(self._family, self.interface, self.port, self.backlog)
        self.socket = sock
        self._fd = sock.fileno()
        self._bound_port = sock.getsockname()[1]
        self.connected = True
        self.factory.doStart()
        self.reactor._selectables.add(self)
        self.reactor._set_interest(self, self._fd, _READ)

    def fileno(self) -> int:
        return self._fd

    def _on_readable(self) -> None:
        sock = self.socket
        if sock is None:
            return
        # Accept a batch per wake-up: under a connection storm this halves
        # the select() calls without starving established connections.
        for _ in range(64):
            try:
                conn, addr = sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                if e.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    self._back_off(e)
                    return
                if e.errno in (errno.ECONNABORTED, errno.EPROTO):
                    continue  # the client gave up before we accepted it
                log.error("accept() on %r failed: %s", self, e)
                return
            self._serve(conn, addr)

    def _serve(self, conn: socket.socket, addr: Any) -> None:
        try:
            protocol = self.factory.buildProtocol(address_of(addr, self._family))
        except Exception:
            log.exception("buildProtocol of %r raised; dropping the connection", self.factory)
            protocol = None
        if protocol is None:
            conn.close()
            return
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        Connection(self.reactor, conn, protocol, None, True)._start()

    def _back_off(self, e: OSError) -> None:
        """Out of file descriptors: stop accepting for a moment instead of spinning."""
        log.error("accept() on %r failed (%s); not accepting for %.1fs",
                  self, e.strerror, ACCEPT_BACKOFF)
        self.reactor._set_interest(self, self._fd, 0)

        def resume() -> None:
            self._backoff_call = None
            if self.socket is not None:
                self.reactor._set_interest(self, self._fd, _READ)

        self._backoff_call = self.reactor.callLater(ACCEPT_BACKOFF, resume)

    def _on_writable(self) -> None:  # pragma: no cover - never registered for writing
        pass

    def stopListening(self) -> Deferred[None]:
        """Stop accepting; existing connections stay. Fires once the socket is closed."""
        if self.socket is None:
            return succeed(None)
        self.reactor._forget(self._fd)
        self.reactor._selectables.discard(self)
        if self._backoff_call is not None and self._backoff_call.active():
            self._backoff_call.cancel()
        else:
            # Clients whose handshake the kernel already completed are in the
            # backlog and think they are connected: closing now would reset
            # them, losing requests they already sent. Serve them instead.
            for _ in range(self.backlog // 64 + 2):
                self._on_readable()
        self.socket.close()
        self.socket = None
        self.connected = False
        try:
            self.factory.doStop()
        except Exception:
            log.exception("doStop of %r raised", self.factory)
        return succeed(None)

    loseConnection = stopListening

    def _reactor_shutdown(self) -> None:
        self.stopListening()

    def getHost(self) -> IPv4Address | IPv6Address:
        """The bound address (the real port when listening on port 0)."""
        if self.socket is None:
            raise RuntimeError("the port is not listening")
        return address_of(self.socket.getsockname(), self._family)

    def __repr__(self) -> str:
        where = f"{self.interface or '*'}:{self._bound_port or self.port}"
        return f"<{type(self.factory).__name__} on TCP {where}>"


class _Connecting:
    """A non-blocking connect() in flight: the selectable that waits for it."""

    def __init__(self, reactor: SelectorReactor, sock: socket.socket,
                 d: Deferred[socket.socket]) -> None:
        self.reactor = reactor
        self.sock = sock
        self.d = d
        self._fd = sock.fileno()

    def fileno(self) -> int:
        return self._fd

    def _on_readable(self) -> None:  # pragma: no cover - only watched for writing
        pass

    def _on_writable(self) -> None:
        self.reactor._forget(self._fd)
        self.reactor._selectables.discard(self)
        code = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            self.sock.close()
            self.d.errback(connect_error(OSError(code, errno.errorcode.get(code, str(code)))))
        else:
            self.d.callback(self.sock)

    def cancel(self) -> None:
        self.reactor._forget(self._fd)
        self.reactor._selectables.discard(self)
        self.sock.close()

    def _reactor_shutdown(self) -> None:
        if not self.d.called:
            self.d.cancel()


def connect_socket(reactor: SelectorReactor, sock: socket.socket,
                   address: Any) -> Deferred[socket.socket]:
    """Start a non-blocking connect; a Deferred firing with the connected socket."""
    sock.setblocking(False)
    waiter: _Connecting | None = None

    def cancel(d: Deferred[socket.socket]) -> None:
        if waiter is not None:
            waiter.cancel()
        else:
            sock.close()

    d: Deferred[socket.socket] = Deferred(cancel)
    code = sock.connect_ex(address)
    if code == 0:
        d.callback(sock)
    elif code in (errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN):
        waiter = _Connecting(reactor, sock, d)
        reactor._selectables.add(waiter)
        reactor._set_interest(waiter, waiter._fd, _WRITE)
    else:
        sock.close()
        d.errback(connect_error(OSError(code, errno.errorcode.get(code, str(code)))))
    return d
