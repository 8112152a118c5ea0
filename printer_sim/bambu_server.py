"""A fake Bambu Lab P1 / A1 chamber camera: JPEG frames over TLS on 127.0.0.1.

`BambuPrinter` speaks the port-6000 protocol of docs/printers.md: a TLS
server with a self-signed certificate whose CN is the serial, an 80-byte
login packet (no reply; a wrong access code makes it hang up), then frames,
each a 16-byte little-endian header (payload size, itrack 0, flags 1,
reserved 0) and the JPEG payload. One *mode* per connection, taken when the
connection is accepted (`set_mode` affects new connections only):

=========== ===============================================================
mode        what the printer does
=========== ===============================================================
good        a frame every ``1 / fps`` seconds, the first one at once
wrong_code  reads the login, then hangs up without a byte (any code)
slow        one frame every 5 s (0.2 fps), whatever ``fps`` says
split       header and payload written in tiny pieces (1 to 13 bytes),
            draining and yielding between pieces
oversize    a header claiming 5 MiB, then 4 KiB of garbage, then nothing
bad_markers correct headers, payloads without ``FF D8`` / ``FF D9``
zero_size   headers of size 0 without payload
garbage     random bytes where headers belong
stall       accepts the login, then sends nothing; keeps the connection
refuse      stops listening, like `refuse()` (`accept()` listens again)
accept_hang accepts the TCP connection, never answers the TLS handshake
one_client  like good; a connection accepted while another one is open
            counts in `concurrent_violations`
=========== ===============================================================

``max_clients`` mimics the real limit: a connection accepted while that
many are open completes TLS and the login, then stalls (no frames). With
``over_limit="close"`` (the demo's choice) it is refused clearly instead:
the printer hangs up right after the TLS handshake, before the login, and
counts it in `refused_connections`.

``certificate`` (a `Certificate`, e.g. one kept in a file across runs like a
real printer keeps its own) is presented instead of a fresh one made by
`start()`; `regenerate_certificate()` still replaces it.

Connections are counted at the TCP level (the listening socket is plain TCP
and `loop.start_tls` runs the handshake on the counted connection), so a
client that hangs up before or during the handshake is counted too. A
connection stops being *open* as soon as either side hangs up, and is
*closed* once its socket is; `close()` waits until every accepted
connection is closed and every handler has finished.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Sequence
import contextlib
from dataclasses import dataclass, field
import logging
import random
import secrets
import ssl
import struct
from typing import Any, Final, cast

from .certs import Certificate, make_certificate, server_context
from .connections import ConnectionHooks, CountingPrinter, ForwardingProtocol
from .jpeg import numbered_jpeg

__all__ = ["MODES", "BambuConnection", "BambuPrinter"]

_LOGGER = logging.getLogger(__name__)

MODES: Final = frozenset(
    {
        "good",
        "wrong_code",
        "slow",
        "split",
        "oversize",
        "bad_markers",
        "zero_size",
        "garbage",
        "stall",
        "refuse",
        "accept_hang",
        "one_client",
    }
)
AUTH_SIZE: Final = 80
HEADER: Final = struct.Struct("<IIII")
SLOW_FPS: Final = 0.2
OVERSIZE: Final = 5 * 1024 * 1024
CLOSE_TIMEOUT: Final = 5.0
"""How long `close()` waits for the connections to close."""
_ABORT_AFTER: Final = 1.0
"""In `close()`: abort connections that a graceful close did not end by then."""
_SHUTDOWN_TIMEOUT: Final = 2.0
_SPLIT_SIZES: Final = (1, 2, 3, 5, 7, 11, 13)
_AUTH_HEAD: Final = struct.pack("<IIII", 0x40, 0x3000, 0, 0)
_AUTH_USER: Final = b"bblp".ljust(32, b"\0")
_STREAMING_MODES: Final = frozenset({"good", "slow", "split", "one_client"})
OVER_LIMIT_POLICIES: Final = frozenset({"stall", "close"})
"""What a connection beyond ``max_clients`` gets (see the module docstring)."""


@dataclass(slots=True)
class BambuConnection:
    """One TCP connection the printer accepted."""

    index: int
    """1 for the first connection the printer ever accepted."""
    mode: str
    """The printer's mode when the connection was accepted."""
    peer: str = ""
    open: bool = True
    """False once either side hung up."""
    closed: bool = False
    """True once the socket is fully closed."""
    hung_up_by: str | None = None
    """``"client"`` or ``"server"``: who ended the connection first."""
    handshake: str = "pending"
    """``pending``, ``done``, ``failed`` or ``never`` (accept_hang)."""
    over_limit: bool = False
    """Accepted beyond ``max_clients``: it gets no frames."""
    auth_packet: bytes | None = field(default=None, repr=False)
    """The 80 login bytes received (None: none arrived)."""
    authenticated: bool = False
    frames: list[bytes] = field(default_factory=list, repr=False)
    """Frames written on this connection, in order."""
    tcp: asyncio.Transport | None = field(default=None, repr=False)
    tls: asyncio.Transport | None = field(default=None, repr=False)


class _CountingProtocol(
    ForwardingProtocol[BambuConnection, asyncio.StreamReaderProtocol]
):
    """Sees a connection's whole TCP life; under TLS it feeds a StreamReader.

    It is the TCP protocol until `loop.start_tls` takes the transport over,
    then the application protocol of the TLS layer, forwarding to a
    `StreamReaderProtocol` (bytes that arrive before that one is connected
    are kept for it).
    """

    def __init__(
        self,
        hooks: ConnectionHooks[BambuConnection],
        record: BambuConnection,
        context: ssl.SSLContext,
        serve: Callable[[_CountingProtocol, asyncio.Transport], None],
    ) -> None:
        self.reader = asyncio.StreamReader()
        super().__init__(hooks, record, asyncio.StreamReaderProtocol(self.reader))
        self.context = context
        self._serve = serve
        self._early = bytearray()
        self._early_eof = False
        self._swallow = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Count the TCP connection, then start the TLS handshake (or not)."""
        tcp = cast("asyncio.Transport", transport)
        self._hooks.made(self.record, tcp)
        if tcp.is_closing():
            return  # accepted while the printer closes
        if self.record.mode == "accept_hang":
            self.record.handshake = "never"
            self._swallow = True
            return  # keep reading (and ignoring) so a hang-up is seen
        tcp.pause_reading()  # no byte may be read before the handshake
        self._serve(self, tcp)

    def start_inner(self, tls: asyncio.Transport) -> None:
        """Connect the StreamReader to the TLS transport."""
        self._start_inner(tls)
        if self._early:
            self.inner.data_received(bytes(self._early))
            self._early.clear()
        if self._early_eof:
            self.inner.eof_received()

    def data_received(self, data: bytes) -> None:
        """Forward login bytes (accept_hang: ignore them)."""
        if self._inner_made:
            self.inner.data_received(data)
        elif not self._swallow:
            # Decrypted bytes that arrive between the end of the handshake
            # and `start_inner`.
            self._early += data

    def _eof_before_inner(self) -> None:
        # The client hung up (FIN or close_notify) before `start_inner`.
        self._early_eof = True


class BambuPrinter(CountingPrinter[BambuConnection]):
    """A fake Bambu Lab port-6000 camera on a real socket (see the module doc)."""

    def __init__(
        self,
        *,
        serial: str = "01P00A000000001",
        access_code: str = "12345678",
        frames: Sequence[bytes] | Callable[[int], bytes] | None = None,
        fps: float = 2.0,
        mode: str = "good",
        max_clients: int | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        cert_cn: str | None = None,
        record_frames: bool = True,
        seed: int = 0,
        over_limit: str = "stall",
        certificate: Certificate | None = None,
    ) -> None:
        """Configure the printer; nothing listens before `start()`.

        ``frames`` is a sequence played in a loop, a function of the frame
        number (0, 1, 2, ... across all connections), or None for
        `numbered_jpeg`. ``cert_cn`` defaults to ``serial``.
        """
        if fps <= 0:
            raise ValueError("fps must be positive")
        if max_clients is not None and max_clients < 1:
            raise ValueError("max_clients must be at least 1")
        self._check_mode(mode)
        if over_limit not in OVER_LIMIT_POLICIES:
            raise ValueError(
                f"unknown over_limit {over_limit!r}; one of {sorted(OVER_LIMIT_POLICIES)}"
            )
        self.over_limit = over_limit
        self.serial = serial
        self.access_code = access_code
        self._frames = frames
        self.fps = fps
        self.mode = mode
        self.max_clients = max_clients
        self.host = host
        self.port = port
        self.cert_cn = serial if cert_cn is None else cert_cn
        self.record_frames = record_frames
        """Keep every frame sent (tests); a long-running demo turns it off."""
        self._rng = random.Random(seed)  # noqa: S311 - garbage bytes, not crypto

        super().__init__()
        # Counters a test reads (the connection counters: `CountingPrinter`).
        self.handshakes = 0
        """TLS handshakes completed."""
        self.handshake_failures = 0
        self.auth_packets: list[bytes] = []
        """Every login packet received, in order (they hold the access code)."""
        self.auth_ok = 0
        self.auth_failures = 0
        self.auth_missing = 0
        """Connections that completed TLS but closed before a whole login."""
        self.concurrent_violations = 0
        """one_client mode: connections accepted while another was open."""
        self.over_limit_connections = 0
        self.refused_connections = 0
        """over_limit="close": connections hung up on after the handshake."""
        self.frames_sent: list[bytes] = []
        """Every valid frame sent, in send order, over all connections."""
        self.frames_count = 0
        """Valid frames sent (also counted when `record_frames` is off)."""
        self.bad_frames_sent = 0
        """Broken headers or payloads sent (oversize, zero_size, ...)."""

        self._certificate: Certificate | None = certificate
        self._context: ssl.SSLContext | None = None
        self._frame_index = 0
        self._tasks: set[asyncio.Task[None]] = set()

    @staticmethod
    def _check_mode(mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; one of {sorted(MODES)}")

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Make the certificate and listen (on a free port when ``port`` is 0)."""
        if self._started:
            raise RuntimeError("already started")
        self._started = True
        if self._certificate is None:
            self.regenerate_certificate()
        else:
            self._context = server_context(self._certificate)
        await self.accept()
        if self.mode == "refuse":
            self.refuse()

    def _close_timeouts(self) -> tuple[float, float]:
        # Read when closing: tests shorten them on this module.
        return CLOSE_TIMEOUT, _ABORT_AFTER

    async def _finish_tasks(self, timeout: float) -> None:  # noqa: ASYNC109
        """Wait for the handlers, cancelling those still running after ``timeout``."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)
        for task in list(self._tasks):  # pragma: no cover - handlers end by then
            task.cancel()
        if self._tasks:  # pragma: no cover
            await asyncio.wait(set(self._tasks))

    # ------------------------------------------------------------- controls

    def drop_all(self) -> int:
        """Hang up every open connection; return how many."""
        count = 0
        for record in self.connections:
            if record.open:
                self._hang_up(record)
                count += 1
        return count

    def set_mode(self, mode: str) -> None:
        """Use ``mode`` for connections accepted from now on.

        ``refuse`` stops listening at once; call `accept()` to listen again.
        """
        self._check_mode(mode)
        self.mode = mode
        if mode == "refuse":
            self.refuse()

    def regenerate_certificate(self) -> str:
        """Use a new key and certificate (same CN) for new connections.

        Like a printer that was reset or replaced. Returns the new fingerprint.
        """
        self._certificate = make_certificate(self.cert_cn)
        self._context = server_context(self._certificate)
        return self._certificate.sha256

    # ------------------------------------------------------------- queries

    @property
    def certificate(self) -> Certificate:
        """Return the current certificate (after `start()`)."""
        if self._certificate is None:
            raise RuntimeError("not started")
        return self._certificate

    @property
    def cert_der(self) -> bytes:
        """Return the current certificate, DER encoded."""
        return self.certificate.der

    @property
    def cert_sha256(self) -> str:
        """Return the lowercase hex SHA-256 of the current DER certificate."""
        return self.certificate.sha256

    def status(self) -> dict[str, Any]:
        """Return the counters."""
        return {
            "mode": self.mode,
            "listening": self.listening,
            "total_connections": self.total_connections,
            "open_connections": self.open_connections,
            "max_open_connections": self.max_open_connections,
            "handshakes": self.handshakes,
            "handshake_failures": self.handshake_failures,
            "auth_ok": self.auth_ok,
            "auth_failures": self.auth_failures,
            "auth_missing": self.auth_missing,
            "concurrent_violations": self.concurrent_violations,
            "over_limit_connections": self.over_limit_connections,
            "refused_connections": self.refused_connections,
            "frames_sent": self.frames_count,
            "bad_frames_sent": self.bad_frames_sent,
            "paused": self.paused,
        }

    def _all_done(self) -> bool:
        """Return True when every connection is closed and every handler done."""
        return not self._tasks and super()._all_done()

    # ------------------------------------------------------ TCP accounting

    def _protocol_factory(self) -> asyncio.Protocol:
        """Count an accepted connection."""
        if self._context is None:  # pragma: no cover - listening implies started
            raise RuntimeError("not started")
        others = self.open_connections
        record = BambuConnection(index=len(self.connections) + 1, mode=self.mode)
        if self.mode == "one_client" and others:
            self.concurrent_violations += 1
            _LOGGER.warning(
                "one_client printer: connection %d while %d open",
                record.index,
                others,
            )
        if self.max_clients is not None and others >= self.max_clients:
            record.over_limit = True
            self.over_limit_connections += 1
        self._add_connection(record)
        return _CountingProtocol(
            self._hooks, record, self._context, self._start_serving
        )

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._changed()

    def _start_serving(
        self, protocol: _CountingProtocol, tcp: asyncio.Transport
    ) -> None:
        self._spawn(self._serve(protocol, tcp))

    def _on_made(self, record: BambuConnection, tcp: asyncio.Transport) -> None:
        record.tcp = tcp
        super()._on_made(record, tcp)

    def _hang_up(self, record: BambuConnection) -> None:
        self._on_hang_up(record, "server")
        transport = record.tls or record.tcp
        if transport is not None and not record.closed:
            transport.close()

    def _abort(self, record: BambuConnection) -> None:
        if record.tcp is not None:
            record.tcp.abort()

    def _on_lost(self, record: BambuConnection) -> None:
        if not record.closed:
            record.tcp = record.tls = None
        super()._on_lost(record)

    # ------------------------------------------------------------ handlers

    async def _serve(self, protocol: _CountingProtocol, tcp: asyncio.Transport) -> None:
        """Run the TLS handshake, then the connection's session."""
        record = protocol.record
        loop = asyncio.get_running_loop()
        if tcp.is_closing():
            return  # closed before the handshake could start
        tls = await protocol.start_tls(
            tcp, protocol.context, shutdown_timeout=_SHUTDOWN_TIMEOUT
        )
        if tls is None:
            # The client hung up during the handshake (or never finished it).
            record.handshake = "failed"
            self.handshake_failures += 1
            await protocol.handshake_failed(tcp)
            return
        record.handshake = "done"
        record.tls = tls
        self.handshakes += 1
        self._changed()
        writer = asyncio.StreamWriter(tls, protocol.inner, protocol.reader, loop)
        protocol.start_inner(tls)
        try:
            await self._session(record, protocol.reader, writer)
        finally:
            self._hang_up(record)

    async def _session(
        self,
        record: BambuConnection,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        if record.over_limit and self.over_limit == "close":
            # A clear refusal: TLS done, then the printer hangs up at once.
            self.refused_connections += 1
            self._changed()
            return
        try:
            packet = await reader.readexactly(AUTH_SIZE)
        except (asyncio.IncompleteReadError, OSError):
            self.auth_missing += 1
            self._changed()
            return
        record.auth_packet = packet
        self.auth_packets.append(packet)
        if record.mode == "wrong_code" or not self._login_ok(packet):
            self.auth_failures += 1
            self._changed()
            return  # hang up without a byte
        record.authenticated = True
        self.auth_ok += 1
        self._changed()
        if record.over_limit or record.mode == "stall":
            await self._wait(record)
            return
        await self._stream(record, writer)

    def _login_ok(self, packet: bytes) -> bool:
        code = self.access_code.encode("utf-8").ljust(32, b"\0")
        return (
            packet[:16] == _AUTH_HEAD
            and packet[16:48] == _AUTH_USER
            and secrets.compare_digest(packet[48:80], code)
        )

    async def _wait(
        self,
        record: BambuConnection,
        predicate: Callable[[], bool] = lambda: False,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> bool:
        """Wait for ``predicate`` (or ``timeout``); False once the connection is gone."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while record.open and not predicate():
                    await self._next_change()
        return record.open

    async def _stream(
        self, record: BambuConnection, writer: asyncio.StreamWriter
    ) -> None:
        """Send what the connection's mode sends, paced at fps."""
        mode = record.mode
        fps = SLOW_FPS if mode == "slow" else self.fps
        loop = asyncio.get_running_loop()
        next_time = loop.time()
        while await self._wait(record, self._running.is_set):
            jpeg: bytes | None = None
            if mode == "oversize":
                data = HEADER.pack(OVERSIZE, 0, 1, 0) + self._rng.randbytes(4096)
            elif mode == "zero_size":
                data = HEADER.pack(0, 0, 1, 0)
            elif mode == "garbage":
                data = self._rng.randbytes(1024)
            elif mode == "bad_markers":
                frame = self._next_frame()
                payload = b"\0\0" + frame[2:-2] + b"\0\0"
                data = HEADER.pack(len(payload), 0, 1, 0) + payload
            else:
                jpeg = self._next_frame()
                data = HEADER.pack(len(jpeg), 0, 1, 0) + jpeg
            if not await self._send(record, writer, data, split=mode == "split"):
                return
            if jpeg is None:
                self.bad_frames_sent += 1
            else:
                if self.record_frames:
                    record.frames.append(jpeg)
                    self.frames_sent.append(jpeg)
                self.frames_count += 1
            self._changed()
            if mode == "oversize":
                await self._wait(record)  # the rest of "5 MiB" never comes
                return
            next_time = max(next_time + 1 / fps, loop.time())
            if not await self._wait(record, timeout=next_time - loop.time()):
                return

    async def _send(
        self,
        record: BambuConnection,
        writer: asyncio.StreamWriter,
        data: bytes,
        *,
        split: bool,
    ) -> bool:
        """Write ``data`` (in tiny pieces when ``split``); False once gone."""
        pieces = [data]
        if split:
            pieces = []
            offset = 0
            while offset < len(data):
                size = _SPLIT_SIZES[len(pieces) % len(_SPLIT_SIZES)]
                pieces.append(data[offset : offset + size])
                offset += size
        try:
            for piece in pieces:
                if not record.open:
                    return False
                writer.write(piece)
                await writer.drain()
                if split:
                    await asyncio.sleep(0)  # let the client read this piece alone
        except OSError:
            return False
        return True

    def _next_frame(self) -> bytes:
        index = self._frame_index
        self._frame_index += 1
        if self._frames is None:
            return numbered_jpeg(index)
        if callable(self._frames):
            return self._frames(index)
        return self._frames[index % len(self._frames)]
