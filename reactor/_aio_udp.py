"""UDP for the asyncio/uvloop reactor: the loop's datagram transport reads, the port writes.

The semantics are those of ``reactor/udp.py`` (read its docstring); this
module only supplies reading, through ``loop.create_datagram_endpoint``,
so on uvloop the datagrams are read in C. Three facts about the loops shape
it:

- Neither loop's ``sendto`` can give Twisted's write semantics: both drop
  an empty datagram, and hand errors (EMSGSIZE, ECONNREFUSED) to
  ``error_received`` instead of raising them; asyncio's cannot send on a
  socket connected after the transport was made. So ``write`` is the
  shared one, ``sendto`` on the port's own socket, and the transport only
  reads.
- uvloop's datagram transport cannot pause reading (asyncio's can), and
  only closing it stops it. So the transport runs over a *duplicate* of the
  port's socket (``socket.dup()``: the same kernel socket, another
  descriptor): pausing closes that transport, the kernel socket stays open
  with its queued datagrams, and resuming starts a new transport over a
  new duplicate. One code path serves both loops; an ``_Endpoint`` is one
  reading period. (uvloop starts reading a transport closed inside
  ``connection_made`` all the same, until the close completes: what it
  reads while the port is paused is held and delivered on resuming.)
- uvloop reads into a 256 KiB buffer whatever ``maxPacketSize`` is, so a
  longer datagram is cut to ``maxPacketSize`` here, which is what
  ``recvfrom(maxPacketSize)`` does on the selector reactor. (asyncio is
  told the size, and reads no more.)

Binding happens in ``startListening`` (``CannotListenError`` is raised
there, synchronously); the transport is connected on a later loop turn,
and datagrams arriving meanwhile wait in the kernel.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from reactor.udp import MulticastMixin, _UDPPort

if TYPE_CHECKING:
    from reactor.aio import AsyncioReactor

__all__ = ["MulticastPort", "Port"]

log = logging.getLogger("reactor")


class _Endpoint(asyncio.DatagramProtocol):
    """The asyncio protocol of one reading period of a ``Port``."""

    def __init__(self, port: Port) -> None:
        self.port = port
        self.transport: asyncio.BaseTransport | None = None
        self.closing = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        if self.closing:
            transport.close()  # paused or stopped before the loop got here
            return
        try:
            # asyncio's transport reads max_size bytes per datagram (256 KiB
            # by default, an allocation each time); uvloop's has no such knob.
            transport.max_size = self.port.maxPacketSize  # type: ignore[attr-defined]
        except AttributeError:
            pass

    def datagram_received(self, data: bytes, addr: Any) -> None:
        port = self.port
        if not port.connected:
            return
        size = port.maxPacketSize
        if len(data) > size:
            data = data[:size]
        if port._paused or port._held:
            port._hold(data, addr)
        else:
            port._deliver(data, addr)

    def error_received(self, exc: Exception) -> None:
        if isinstance(exc, OSError):
            self.port._read_error(exc)
        else:
            log.error("Reading from %r failed: %r", self.port, exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.port._endpoint_lost(self, exc)

    def close(self) -> None:
        """Stop reading; the transport closes its descriptor on a later loop turn."""
        self.closing = True
        if self.transport is not None:
            self.transport.close()


class Port(_UDPPort):
    """A UDP port read by the loop's datagram transport (``listenUDP`` returns one)."""

    reactor: AsyncioReactor

    def __init__(self, reactor: AsyncioReactor, port: int, protocol: Any,
                 interface: str = "", maxPacketSize: int = 8192,
                 listenMultiple: bool = False) -> None:
        super().__init__(reactor, port, protocol, interface, maxPacketSize, listenMultiple)
        self._endpoint: _Endpoint | None = None  # the one reading now
        self._endpoints: set[_Endpoint] = set()  # every one not yet closed
        # Datagrams read while paused, delivered (first) on resuming; see _hold.
        self._held: list[tuple[bytes, Any]] = []
        self._flush_call: Any = None

    def _live(self) -> set[Any]:
        # The reactor closes everything in _live at shutdown; the set is
        # annotated for its TCP objects, but only _reactor_shutdown is called.
        live: set[Any] = self.reactor._live
        return live

    def _track(self) -> None:
        self._live().add(self)

    def _untrack(self) -> None:
        self._live().discard(self)

    def _resume_reading(self) -> None:
        from reactor.aio import drive

        assert self.socket is not None
        if self._held:
            self._flush_soon()  # before anything the new transport reads
        loop = self.reactor._loop
        endpoint = _Endpoint(self)
        duplicate = self.socket.dup()
        try:
            opening = drive(loop, loop.create_datagram_endpoint(lambda: endpoint,
                                                                sock=duplicate))
        except BaseException:
            duplicate.close()
            raise
        self._endpoint = endpoint
        self._endpoints.add(endpoint)
        if isinstance(opening, asyncio.Future):
            # Still waiting for connection_made (on every loop today): the
            # transport exists and owns the duplicate; only report failures.
            opening.add_done_callback(self._opened)

    def _opened(self, task: asyncio.Future[Any]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("Starting to read %r failed", self, exc_info=task.exception())

    def _hold(self, data: bytes, addr: Any) -> None:
        """Keep a datagram that was read while paused, in order.

        A transport closed before the loop called its ``connection_made``
        (paused in the same turn as listened or resumed) is still started
        by uvloop, which reads until the close completes a turn later; what
        it reads then would otherwise be delivered while paused, or lost.
        """
        self._held.append((data, addr))
        if not self._paused:
            self._flush_soon()

    def _flush_soon(self) -> None:
        if self._flush_call is None:
            self._flush_call = self.reactor.callLater(0, self._flush)

    def _flush(self) -> None:
        self._flush_call = None
        held = self._held
        while held and self.connected and not self._paused:
            data, addr = held.pop(0)
            self._deliver(data, addr)

    def _pause_reading(self) -> None:
        endpoint, self._endpoint = self._endpoint, None
        if endpoint is not None:
            endpoint.close()

    def _release(self) -> None:
        self._pause_reading()
        self._held.clear()  # as the kernel drops what is queued on a closed socket
        if self.socket is not None:
            # The duplicates keep the kernel socket until their transports close.
            self.socket.close()
        if not self._endpoints:
            self._finish_soon()

    def _endpoint_lost(self, endpoint: _Endpoint, exc: Exception | None) -> None:
        self._endpoints.discard(endpoint)
        if endpoint is self._endpoint:
            # Closed by the loop, not by us: reading has stopped for good.
            self._endpoint = None
            log.error("The loop closed the transport of %r; no longer reading", self,
                      exc_info=exc)
        if not self.connected and not self._endpoints:
            # The loop closes the descriptor right after connection_lost returns.
            self._finish_soon()


class MulticastPort(MulticastMixin, Port):
    """An asyncio-reactor UDP port that can join multicast groups (``listenMulticast``)."""
