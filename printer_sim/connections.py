"""Connection bookkeeping shared by the fake printers.

Both printers count their connections at the TCP level: the listening
socket is plain TCP, a `ForwardingProtocol` sees each connection's whole
life (the client's FIN, the socket closing) and forwards the bytes to the
printer's real protocol once that one is connected (for TLS, after
`loop.start_tls` ran the handshake on the counted connection). A
`CountingPrinter` keeps the records, the counters every printer has, the
waiters of `CountingPrinter.wait_for`, the listening socket
(`accept`/`refuse` on the same port) and the `close` that waits until every
accepted connection is closed.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
import asyncio
from collections.abc import Callable
import contextlib
from dataclasses import dataclass
import ssl
from typing import Any, Protocol, Self

__all__ = [
    "HANDSHAKE_TIMEOUT",
    "ConnectionHooks",
    "ConnectionState",
    "CountingPrinter",
    "ForwardingProtocol",
]

HANDSHAKE_TIMEOUT = 10.0
"""Seconds a client has to finish the TLS handshake."""


class ConnectionState(Protocol):
    """What the bookkeeping reads and writes of a connection record."""

    index: int
    peer: str
    open: bool
    """False once either side hung up."""
    closed: bool
    """True once the socket is fully closed."""
    hung_up_by: str | None
    """``"client"`` or ``"server"``: who ended the connection first."""


@dataclass(slots=True, frozen=True)
class ConnectionHooks[R: ConnectionState]:
    """The printer's connection bookkeeping callbacks, for the protocol."""

    made: Callable[[R, asyncio.Transport], None]
    hang_up: Callable[[R, str], None]
    lost: Callable[[R], None]


class ForwardingProtocol[R: ConnectionState, P: asyncio.Protocol](asyncio.Protocol):
    """Sees a connection's whole TCP life and forwards it to ``inner``.

    The subclass decides when ``inner`` is connected (`_start_inner`) and
    what happens to bytes before that; the end of the connection and flow
    control are forwarded only once it is.
    """

    def __init__(self, hooks: ConnectionHooks[R], record: R, inner: P) -> None:
        """Forward to ``inner`` (not connected yet) for ``record``."""
        self._hooks = hooks
        self.record = record
        self.inner = inner
        self._inner_made = False

    def _start_inner(self, transport: asyncio.Transport) -> None:
        self._inner_made = True
        self.inner.connection_made(transport)

    async def start_tls(
        self,
        tcp: asyncio.Transport,
        context: ssl.SSLContext,
        *,
        shutdown_timeout: float | None = None,
    ) -> asyncio.Transport | None:
        """Run the server side of the TLS handshake; None when it failed."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.start_tls(
                tcp,
                self,
                context,
                server_side=True,
                ssl_handshake_timeout=HANDSHAKE_TIMEOUT,
                ssl_shutdown_timeout=shutdown_timeout,
            )
        except (OSError, RuntimeError):
            return None

    async def handshake_failed(self, tcp: asyncio.Transport) -> None:
        """Count a failed handshake: no longer open at once, then closed."""
        self._hooks.hang_up(self.record, "client")
        tcp.close()
        await asyncio.sleep(0)  # the socket closes on this iteration
        self._hooks.lost(self.record)

    def eof_received(self) -> bool | None:
        """Mark the connection no longer open: the client hung up."""
        self._hooks.hang_up(self.record, "client")
        if self._inner_made:
            self.inner.eof_received()
        else:
            self._eof_before_inner()
        return None  # let the transport close itself

    def _eof_before_inner(self) -> None:
        """Handle the client's EOF before ``inner`` is connected (ignored)."""

    def connection_lost(self, exc: Exception | None) -> None:
        """Let ``inner`` clean up, then count the connection closed."""
        try:
            if self._inner_made:
                self.inner.connection_lost(exc)
        finally:
            self._hooks.lost(self.record)

    def pause_writing(self) -> None:
        """Forward flow control to ``inner``."""
        if self._inner_made:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        """Forward flow control to ``inner``."""
        if self._inner_made:
            self.inner.resume_writing()


class CountingPrinter[R: ConnectionState](ABC):
    """A printer's connection counters, listening socket and `close()`.

    The subclass sets ``host`` and ``port``, creates its protocols in
    `_protocol_factory` (registering each record with `_add_connection`) and
    says how a connection is hung up on (`_hang_up`) and aborted (`_abort`).
    """

    host: str
    port: int

    def __init__(self) -> None:
        """Start with no connection; nothing listens before `start()`."""
        # Counters a test reads.
        self.connections: list[R] = []
        self.total_connections = 0
        self.max_open_connections = 0

        self._running = asyncio.Event()
        self._running.set()
        self._closing = False
        self._started = False
        self._waiters: set[asyncio.Future[None]] = set()
        self._listener: asyncio.Server | None = None
        self._old_listeners: list[asyncio.Server] = []
        self._hooks: ConnectionHooks[R] = ConnectionHooks(
            self._on_made, self._on_hang_up, self._on_lost
        )

    # ------------------------------------------------------------ lifecycle

    @abstractmethod
    async def start(self) -> None:
        """Start listening."""

    async def accept(self) -> None:
        """Listen (again, after `refuse()`) on the same port."""
        if not self._started:
            raise RuntimeError("not started")
        if self._listener is not None:
            return
        loop = asyncio.get_running_loop()
        self._listener = await loop.create_server(
            self._protocol_factory, self.host, self.port, reuse_address=True
        )
        self.port = self._listener.sockets[0].getsockname()[1]

    def refuse(self) -> None:
        """Stop listening: new connections are refused, open ones stay."""
        if self._listener is not None:
            self._listener.close()
            self._old_listeners.append(self._listener)
            self._listener = None

    async def close(self) -> None:
        """Stop serving, close every connection and wait until all are closed.

        Raises AssertionError (listing them) when a connection is still not
        closed after ``CLOSE_TIMEOUT`` seconds.
        """
        close_timeout, abort_after = self._close_timeouts()
        self._closing = True
        self._running.set()  # paused senders must see that we are closing
        self.refuse()
        self._changed()
        # Let accept callbacks already queued create their protocols, so a
        # connection accepted right now is counted (and closed) below.
        for _ in range(3):
            await asyncio.sleep(0)
        for record in self.connections:
            self._hang_up(record)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + close_timeout
        with contextlib.suppress(AssertionError):
            await self.wait_for(lambda _: self._all_done(), timeout=abort_after)
        # A client that stopped reading keeps a graceful (TLS) close pending.
        for record in self.connections:
            if not record.closed:
                self._abort(record)
        try:
            await self.wait_for(
                lambda _: self._all_done(), timeout=max(0.0, deadline - loop.time())
            )
        finally:
            await self._finish_tasks(max(0.1, deadline - loop.time()))
            for listener in self._old_listeners:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(0.1, deadline - loop.time())):
                        await listener.wait_closed()
            self._old_listeners.clear()

    @abstractmethod
    def _close_timeouts(self) -> tuple[float, float]:
        """Return how long `close()` waits in all and before aborting."""

    async def _finish_tasks(self, timeout: float) -> None:  # noqa: ASYNC109, B027
        """Wait for the printer's own tasks at the end of `close()` (none here)."""

    def _all_done(self) -> bool:
        """Return True when every connection is closed."""
        return all(record.closed for record in self.connections)

    async def __aenter__(self) -> Self:
        """Start the printer."""
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Close the printer."""
        await self.close()

    # ------------------------------------------------------------- controls

    def pause(self) -> None:
        """Hold frames back; connections stay open."""
        self._running.clear()
        self._changed()

    def resume(self) -> None:
        """Send frames again after `pause()`."""
        self._running.set()
        self._changed()

    # ------------------------------------------------------------- queries

    @property
    def listening(self) -> bool:
        """Return True while new connections are accepted."""
        return self._listener is not None

    @property
    def paused(self) -> bool:
        """Return True while `pause()` holds the frames back."""
        return not self._running.is_set()

    @property
    def open_connections(self) -> int:
        """Return how many connections neither side has hung up yet."""
        return sum(1 for record in self.connections if record.open)

    @property
    def live_connections(self) -> list[R]:
        """Return the connections whose socket is not fully closed yet."""
        return [record for record in self.connections if not record.closed]

    @abstractmethod
    def status(self) -> dict[str, Any]:
        """Return the counters."""

    async def wait_for(
        self,
        predicate: Callable[[Self], bool],
        timeout: float = 5.0,  # noqa: ASYNC109 - a test helper's bound
    ) -> None:
        """Wait until ``predicate(self)`` is true; AssertionError after ``timeout``.

        The predicate is checked again after every change of the counters
        (connections, requests or logins, frames), so no polling is involved.
        """
        try:
            async with asyncio.timeout(timeout):
                while not predicate(self):
                    await self._next_change()
        except TimeoutError:
            raise AssertionError(
                f"printer condition not met within {timeout:g} s: {self.status()}; "
                f"live connections: {self.live_connections}"
            ) from None

    async def _next_change(self) -> None:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.add(waiter)
        try:
            await waiter
        finally:
            self._waiters.discard(waiter)

    def _changed(self) -> None:
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)

    # ------------------------------------------------------ TCP accounting

    @abstractmethod
    def _protocol_factory(self) -> asyncio.Protocol:
        """Count an accepted connection and return its protocol."""

    def _add_connection(self, record: R) -> None:
        """Count ``record``, a connection just accepted."""
        self.connections.append(record)
        self.total_connections += 1
        self.max_open_connections = max(
            self.max_open_connections, self.open_connections
        )
        self._changed()

    @abstractmethod
    def _hang_up(self, record: R) -> None:
        """Close a connection from the printer's side."""

    @abstractmethod
    def _abort(self, record: R) -> None:
        """Abort a connection that is not closed yet."""

    def _on_made(self, record: R, transport: asyncio.Transport) -> None:
        peer = transport.get_extra_info("peername")
        record.peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        if self._closing:
            # Accepted while closing: hang up at once, close() waits for it.
            self._hang_up(record)

    def _on_hang_up(self, record: R, by: str) -> None:
        if record.open:
            record.open = False
            record.hung_up_by = by
            self._changed()

    def _on_lost(self, record: R) -> None:
        # Who closed first is unknown here: if the client did, eof_received
        # has already marked it; otherwise the server (or a reset) did.
        self._on_hang_up(record, "server")
        if not record.closed:
            record.closed = True
            self._changed()
