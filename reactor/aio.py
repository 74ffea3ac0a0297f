"""AsyncioReactor: the reactor on an asyncio event loop (stdlib asyncio or uvloop).

Everything runs on the loop's own machinery: ``callLater`` is a loop timer,
``callFromThread`` is ``call_soon_threadsafe``, and TCP uses the loop's
native transports (``create_server``/``create_connection``) behind one thin
adapter (``reactor._aio_tcp.Connection``), so on uvloop the bytes move in C
and the loop calls the protocol's ``dataReceived`` directly.

Running it the Twisted way, on a loop of its own::

    from reactor.aio import AsyncioReactor
    r = AsyncioReactor()                  # a new asyncio loop, owned by the reactor
    r.listenTCP(8007, EchoFactory())
    r.run()                               # until r.stop()
    r.close()

Inside an application that already runs the loop (``asyncio.run``, aiohttp,
FastAPI...), attach instead of ``run()``; the reactor then never stops or
closes the loop, which belongs to the application::

    async def main():
        async with AsyncioReactor(asyncio.get_running_loop()) as r:
            port = r.listenTCP(0, EchoFactory(), interface="127.0.0.1")
            ...                           # serve while the application runs
        # leaving the block ran the shutdown triggers and closed the port

    asyncio.run(main())

``async with`` is ``r.attach()`` on entry (mark the reactor running; the
startup triggers fire on the next loop turn) and ``await r.stop_async()`` on
exit (fire the shutdown triggers, close the reactor's connections and ports,
and wait for all of that). ``r.stop()`` does the same without waiting.
Listening, connecting, timers and threads work on an attached loop even
before ``attach()``; ``callWhenRunning`` waits for it.

Coroutines mix both worlds: one run by ``ensureDeferred`` may await asyncio
futures and Deferreds alike, and asyncio code may ``await`` a Deferred.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import socket
from collections.abc import Callable, Coroutine
from typing import Any

from deferred import CancelledError, Deferred, Failure
from reactor._aio_tcp import Connection, Port
from reactor._malloc import raise_mmap_threshold
from reactor.base import ReactorBase
from reactor.tcp import connect_error
from reactor.timers import DelayedCall

__all__ = ["AsyncioReactor", "drive"]

log = logging.getLogger("reactor")


def _noop() -> None:
    pass


def _run_thread_call(f: Callable[..., Any], args: tuple[Any, ...],
                     kw: dict[str, Any]) -> None:
    try:
        f(*args, **kw)
    except Exception:
        log.exception("Error in callFromThread call %r", f)


class AsyncioReactor(ReactorBase):
    """A reactor running on an asyncio event loop (see the module docstring).

    Args:
        loop: the loop to run on; None creates a new asyncio loop, owned by
            the reactor.
        owns_loop: the reactor may close the loop (``close()``). True
            whenever ``loop`` is None.

    Attributes:
        name: "uvloop" on a uvloop loop, else "asyncio".
    """

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None,
                 owns_loop: bool = False) -> None:
        super().__init__()
        if loop is None:
            loop, owns_loop = asyncio.new_event_loop(), True
        self._loop = loop
        self._owns_loop = owns_loop
        self.name = "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"
        if isinstance(loop, asyncio.selector_events.BaseSelectorEventLoop):
            transport_class = getattr(asyncio.selector_events, "_SelectorTransport", None)
            raise_mmap_threshold(getattr(transport_class, "max_size", 256 * 1024))
        # Connections and ports (closed at shutdown), and connects in flight
        # (cancelled then).
        self._live: set[Connection | Port] = set()
        self._connecting: set[asyncio.Future[Any]] = set()
        # DelayedCall -> the loop handle that will run it.
        self._timers: dict[DelayedCall, asyncio.Handle] = {}
        self._attached = False
        self._stop_waiters: list[asyncio.Future[None]] = []
        self._previous_handler = loop.get_exception_handler()
        loop.set_exception_handler(self._on_loop_exception)

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The asyncio loop the reactor runs on."""
        return self._loop

    # -- time ----------------------------------------------------------------------

    def seconds(self) -> float:
        """The loop's clock (``loop.time()``; millisecond resolution on uvloop)."""
        return self._loop.time()

    def callLater(self, delay: float, callable: Callable[..., Any], /,
                  *args: Any, **kw: Any) -> DelayedCall:
        """Call ``callable(*args, **kw)`` in ``delay`` seconds (see DelayedCall)."""
        if delay < 0:
            raise ValueError(f"delay must not be negative: {delay!r}")
        loop = self._loop
        call = DelayedCall(loop.time() + delay, callable, args, kw,
                           self._cancel_call, self._reset_call, loop.time)
        if delay == 0:
            # call_soon keeps callLater(0) calls in order (timers due at the
            # same time have no defined order in asyncio).
            self._timers[call] = loop.call_soon(self._run_call, call)
        else:
            self._timers[call] = loop.call_at(call.time, self._run_call, call)
        return call

    def _run_call(self, call: DelayedCall) -> None:
        del self._timers[call]
        try:
            call.invoke()
        except Exception:
            log.exception("Unhandled error in delayed call %r", call)

    def _cancel_call(self, call: DelayedCall) -> None:
        handle = self._timers.pop(call, None)
        if handle is not None:
            handle.cancel()

    def _reset_call(self, call: DelayedCall) -> None:
        self._timers.pop(call).cancel()
        self._timers[call] = self._loop.call_at(call.time, self._run_call, call)

    def getDelayedCalls(self) -> list[DelayedCall]:
        """The pending DelayedCalls."""
        return list(self._timers)

    # -- threads ---------------------------------------------------------------------

    def callFromThread(self, callable: Callable[..., Any], /,
                       *args: Any, **kw: Any) -> None:
        """Run ``callable`` in the loop's thread, soon; safe from any thread.

        The call runs in a copy of the caller's ``contextvars`` context;
        exceptions are logged.
        """
        self._loop.call_soon_threadsafe(_run_thread_call, callable, args, kw,
                                        context=contextvars.copy_context())

    # -- the loop --------------------------------------------------------------------

    def run(self, installSignalHandlers: bool = True) -> None:
        """Run the loop until ``stop()`` and the shutdown that follows it have finished.

        Raises:
            RuntimeError: the loop (or another loop in this thread) is already
                running; use ``attach()`` there instead.
        """
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is not None or self._loop.is_running():
            raise RuntimeError(
                "an asyncio loop is already running here, so the reactor cannot run it: "
                "use reactor.attach() (or 'async with reactor:') to use the reactor "
                "on the running loop")
        super().run(installSignalHandlers)

    def _run_loop(self) -> None:
        self._loop.run_forever()

    def _exit_loop(self) -> None:
        waiters, self._stop_waiters = self._stop_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
        if self._attached:
            # The loop is the application's: only the reactor stops.
            self._attached = False
            self._finish_run()
        elif self._loop.is_running():
            # One more turn first: transports aborted at shutdown close their
            # sockets in callbacks the loop has already queued.
            self._loop.call_soon(self._loop.stop)

    def _wake(self) -> None:
        self._loop.call_soon_threadsafe(_noop)

    def _tracked(self) -> Any:
        return self._live

    def _close_all_connections(self) -> None:
        for live in list(self._live):
            live._reactor_shutdown()
        for connecting in list(self._connecting):
            connecting.cancel()

    def attach(self, installSignalHandlers: bool = False) -> None:
        """Start the reactor on its loop, which the application is already running.

        Marks the reactor running and fires the startup triggers on the next
        loop turn; the loop itself is left alone (``stop()`` will not stop
        it). Call it from a coroutine or callback on that loop.

        Args:
            installSignalHandlers: stop the reactor on SIGINT/SIGTERM (off by
                default: the application usually owns the signals).

        Raises:
            RuntimeError: not called from inside the reactor's running loop.
        """
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is not self._loop:
            raise RuntimeError(
                "attach() must be called from inside the reactor's loop while it runs; "
                "use run() to run the loop yourself")
        self.startRunning(installSignalHandlers)
        self._attached = True

    async def stop_async(self) -> None:
        """Stop an attached reactor and wait until its shutdown has finished.

        Fires the shutdown triggers (waiting for Deferreds from "before"
        ones), closes the reactor's connections and ports, and stops its
        thread pool; the loop keeps running.
        """
        if not self.running:
            return
        waiter: asyncio.Future[None] = self._loop.create_future()
        self._stop_waiters.append(waiter)
        if not self._stopping:
            self.stop()
        await waiter

    async def __aenter__(self) -> AsyncioReactor:
        self.attach()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop_async()

    def close(self) -> None:
        """Release the loop, if the reactor owns it (it cannot run again after)."""
        loop = self._loop
        if loop.is_closed():
            return
        loop.set_exception_handler(self._previous_handler)
        if not self._owns_loop or loop.is_running():
            return
        # Like asyncio.run's ending: cancel what is left and let transports
        # and connects that were closed or cancelled finish (they close their
        # sockets in callbacks), so nothing leaks past close().
        tasks = asyncio.all_tasks(loop)
        for task in tasks:
            task.cancel()

        async def settle() -> None:
            await asyncio.gather(*tasks, return_exceptions=True)
            for _ in range(3):
                await asyncio.sleep(0)

        try:
            loop.run_until_complete(settle())
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()

    def _on_loop_exception(self, loop: asyncio.AbstractEventLoop,
                           context: dict[str, Any]) -> None:
        """The loop's exception handler: our connections' errors go to the "reactor" log."""
        protocol = context.get("protocol")
        if isinstance(protocol, Connection) and protocol.reactor is self:
            protocol._loop_error(context)
            return
        sock = context.get("socket")
        if sock is not None:
            for live in self._live:
                if isinstance(live, Port) and live._fd == sock.fileno():
                    live._accept_failed(context.get("exception"))
                    return
        if self._previous_handler is not None:
            self._previous_handler(loop, context)
        else:
            loop.default_exception_handler(context)

    # -- TCP -----------------------------------------------------------------------

    def listenTCP(self, port: int, factory: Any, backlog: int = 50,
                  interface: str = "") -> Port:
        """Listen on a TCP port (bound before this returns); see ``reactor._aio_tcp.Port``."""
        listening = Port(self, port, factory, backlog, interface)
        listening.startListening()
        return listening

    def connectTCP(self, host: str, port: int, factory: Any, timeout: float = 30,
                   bindAddress: tuple[str, int] | None = None) -> Any:
        """Connect to a TCP server; see ``reactor._connect.Connector``."""
        from reactor._connect import Connector

        connector = Connector(self, host, port, factory, timeout, bindAddress)
        connector.connect()
        return connector

    def _serve(self, protocol_factory: Callable[[], Connection], sock: socket.socket,
               backlog: int) -> Any:
        """Serve a bound, listening socket with ``loop.create_server``, now."""
        loop = self._loop
        return drive(loop, loop.create_server(protocol_factory, sock=sock, backlog=backlog))

    def _adopt_accepted(self, protocol_factory: Callable[[], Connection],
                        sock: socket.socket) -> None:
        """Serve a socket accepted outside the loop (see ``Port.stopListening``)."""
        loop = self._loop
        drive(loop, loop.connect_accepted_socket(protocol_factory, sock=sock))

    def _unserve(self, server: Any) -> None:
        """Close what ``_serve`` returned: the listening socket closes at once."""
        if isinstance(server, asyncio.Future):
            # Only if create_server really waited (see drive): close it once it is up.
            server.add_done_callback(_close_server)
        else:
            server.close()  # closes the listening socket now, on asyncio and uvloop

    def _connect_socket(self, sock: socket.socket, address: Any) -> Deferred[socket.socket]:
        """Connect with ``loop.sock_connect``; a Deferred firing with the connected socket.

        Cancelling the Deferred cancels the connect; the socket is closed on
        any failure.
        """
        sock.setblocking(False)
        loop = self._loop
        future = asyncio.ensure_future(loop.sock_connect(sock, address), loop=loop)
        self._connecting.add(future)

        def connected(_: object) -> socket.socket:
            self._connecting.discard(future)
            return sock

        def failed(failure: Failure) -> Failure:
            self._connecting.discard(future)
            sock.close()
            if failure.check(asyncio.CancelledError):
                return Failure(CancelledError())
            if isinstance(failure.value, OSError):
                return Failure(connect_error(failure.value))
            return failure

        return Deferred.fromFuture(future).addCallbacks(connected, failed)

    def _adopt_socket(self, sock: socket.socket, protocol: Any,
                      on_lost: Callable[..., Any] | None = None,
                      on_transport: Callable[[Any], None] | None = None) -> Connection:
        """Hand a connected socket to the loop; the protocol starts on a later turn.

        ``on_transport`` receives the transport before the protocol starts.
        """
        connection = Connection(self, protocol, on_lost)
        if on_transport is not None:
            on_transport(connection)
        connection._open(sock)
        return connection

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<AsyncioReactor ({self.name}) {state}>"


def _close_server(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is None:
        task.result().close()


def drive(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any]) -> Any:
    """Run ``coro`` to completion now, if it never waits for a future.

    ``create_server(sock=...)`` only registers the socket with the loop (asyncio
    then yields once, bare, "so that add_reader goes through"), so running it
    here makes ``listenTCP`` synchronous whether or not the loop is running,
    and a port never exists half-started. Should a loop's ``create_server``
    really wait, the rest runs as a Task, which is returned instead.
    """
    try:
        while True:
            waiting_on = coro.send(None)
            if waiting_on is not None:
                break
    except StopIteration as done:
        return done.value
    return loop.create_task(_carry_on(coro, waiting_on))


async def _carry_on(coro: Coroutine[Any, Any, Any], waiting_on: Any) -> Any:
    """Finish a coroutine ``drive`` started, playing its Task: wait, then resume it."""
    while True:
        await asyncio.wait([waiting_on])
        try:
            waiting_on = coro.send(None)
        except StopIteration as done:
            return done.value
