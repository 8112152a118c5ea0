"""A fake printer camera: a real MJPEG-over-HTTP server on 127.0.0.1.

`MjpegPrinter` serves ``/stream`` (``multipart/x-mixed-replace``),
``/snapshot`` (one JPEG) and ``/status`` (JSON counters) and reproduces the
quirks of real printer cameras listed in docs/printers.md, one *mode* each
(modes combine with ``+``, e.g. ``"lf_only+no_content_length"``):

================== ==========================================================
mode               what the stream does
================== ==========================================================
good               CRLF, ``--frame`` delimiters, Content-Type and
                   Content-Length per part, ``boundary=frame`` (HTTP/1.1
                   chunked, aiohttp's default for a body without length)
chunked            same bytes as ``good`` (named for tests that mean it)
no_dashes_in_header / space
                   same as ``good``: ``multipart/x-mixed-replace; boundary=frame``
dashes_in_header   ``boundary=--frame`` in the header, ``--frame`` delimiters
quoted_boundary    ``boundary="frame"``
no_space           ``multipart/x-mixed-replace;boundary=frame``
no_boundary        ``multipart/x-mixed-replace`` without a boundary parameter
wrong_content_type a multipart body sent as ``text/plain``
lf_only            LF line ends inside the body
no_content_length  parts without Content-Length
header_case        ``Multipart/X-Mixed-Replace; BOUNDARY=frame``, part
                   headers ``CONTENT-TYPE`` / ``content-length``
preamble           blank lines and preamble text before the first delimiter
extra_headers      an ``X-Timestamp`` header in every part
http10_close       HTTP/1.0 response, no chunking, no Content-Length: the
                   body ends when the connection closes
text_error_part    a ``text/plain`` part before every second JPEG part
garbage            random bytes between parts
slow               1 frame per second (whatever ``fps`` says)
drop_after:N       hang up after N frames on each stream
one_client         a second concurrent stream gets 503 (``max_clients=1``)
status_401/403/500 that status for ``/stream`` and ``/snapshot``
not_mjpeg          a ``text/html`` page
single_jpeg        ``/stream`` answers one ``image/jpeg`` body
header_drip        a hostile camera: the status line, then one more header
                   line every `HEADER_DRIP_INTERVAL` seconds, never ending
                   the head
header_flood       a hostile camera: the status line, then
                   ``header_flood_bytes`` of header lines (each under
                   aiohttp's 8190-byte line limit) as fast as the client
                   reads, then a normal stream
gzip_bomb          a hostile camera: ``Content-Encoding: gzip`` whatever the
                   request accepts; the body inflates to one good part and
                   then ``gzip_bomb_size`` zero bytes (256 MiB from about
                   255 KB)
================== ==========================================================

Authentication (``username``/``password``): ``auth="basic"`` or
``auth="digest"`` (RFC 7616, ``qop=auth`` and MD5 by default, or
``digest_qop=None`` / ``digest_algorithm="SHA-256"``), with real challenges,
nonce bookkeeping (``nc`` must grow: replays fail) and `expire_nonces()` to
make the next request meet ``stale=true``; or ``auth="query"``: the
credentials in the URL's query string, ``?user=...&pwd=...`` (as Foscam-style
IP cameras take them; 401 without a challenge otherwise). ``auth`` may be
changed between requests (a camera that stops offering digest).

Connections are counted at the TCP level by wrapping the protocol factory
given to ``loop.create_server``: a client that connects and hangs up without
sending a request is counted too. A connection stops being *open* as soon as
either side hangs up (the client's FIN or the server's close);
`close()` waits until every accepted connection is fully closed.

Every frame sent is recorded in send order (`frames_sent`) and per
connection (`ConnectionRecord.frames`), so a test can compare the bytes a
client received with exactly what this connection carried
(``record_frames=False`` keeps only `frames_count`, for long demo runs).

By default each stream keeps its own frame clock and sends its first frame
at once. ``shared_clock=True`` models a camera that captures at ``fps`` and
sends each capture to every client (mjpg-streamer, ustreamer): every stream
sends on the same ticks, and a new stream waits for the next one. The
benchmark uses it, with ``max_clients=None``, so one upstream or fifty see
the same timing.
``ssl_context`` (e.g. `self_signed_ssl_context()`) serves HTTPS.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
import functools
import hashlib
import json
import logging
import math
import random
import secrets
import ssl
from typing import TYPE_CHECKING, Any, Final, cast
import zlib

from aiohttp import web
from aiohttp.http import StreamWriter
from aiohttp.web_protocol import RequestHandler

from custom_components.printcam.mjpeg import read_header_value

from .certs import make_certificate, server_context
from .connections import ConnectionHooks, CountingPrinter, ForwardingProtocol
from .jpeg import numbered_jpeg

if TYPE_CHECKING:
    from aiohttp.abc import AbstractStreamWriter

__all__ = [
    "MODES",
    "ConnectionRecord",
    "MjpegPrinter",
    "RequestRecord",
    "gzip_bomb",
    "self_signed_ssl_context",
]

_LOGGER = logging.getLogger(__name__)

MODES: Final = frozenset(
    {
        "good",
        "chunked",
        "space",
        "no_dashes_in_header",
        "dashes_in_header",
        "quoted_boundary",
        "no_space",
        "no_boundary",
        "wrong_content_type",
        "lf_only",
        "no_content_length",
        "header_case",
        "preamble",
        "extra_headers",
        "http10_close",
        "text_error_part",
        "garbage",
        "slow",
        "drop_after",
        "one_client",
        "status_401",
        "status_403",
        "status_500",
        "not_mjpeg",
        "single_jpeg",
        "header_drip",
        "header_flood",
        "gzip_bomb",
    }
)
"""Every mode name (``drop_after`` is written ``drop_after:N``)."""

PREAMBLE: Final = b"\r\n\r\nThis is the preamble of a multipart body.\r\n\r\n"
TEXT_ERROR_PART: Final = b"camera error!"
HTML_PAGE: Final = (
    b"<!DOCTYPE html><html><head><title>Printer</title></head>"
    b"<body><h1>Printer web interface</h1></body></html>\n"
)
SLOW_FPS: Final = 1.0
HEADER_DRIP_INTERVAL: Final = 0.3
"""``header_drip``: seconds between two header lines."""
HEADER_FLOOD_BYTES: Final = 64 * 1024 * 1024
"""``header_flood``: bytes of header lines by default."""
GZIP_BOMB_SIZE: Final = 256 * 1024 * 1024
"""``gzip_bomb``: zero bytes the body inflates to after its part, by default."""
_FLOOD_LINE: Final = b"X-Flood: " + b"f" * 8000 + b"\r\n"
_AUTH_SCHEMES: Final = ("basic", "digest", "query")
CLOSE_TIMEOUT: Final = 5.0
"""How long `close()` waits for the connections to close."""
_ABORT_AFTER: Final = 1.0
"""In `close()`: abort connections that a graceful close did not end by then."""

_HASHES: Final[dict[str, Callable[[bytes], Any]]] = {
    "MD5": lambda data: hashlib.md5(data, usedforsecurity=False),
    "SHA-256": hashlib.sha256,
}


@dataclass(slots=True)
class RequestRecord:
    """One HTTP request the printer received."""

    connection: int
    """`ConnectionRecord.index` of the connection that carried it."""
    method: str
    path: str
    """The raw request target (path and query)."""
    headers: dict[str, str]
    status: int | None = None
    """The status answered (None while a stream is still running)."""


@dataclass(slots=True)
class ConnectionRecord:
    """One TCP connection the printer accepted."""

    index: int
    """1 for the first connection the printer ever accepted."""
    peer: str = ""
    open: bool = True
    """False once either side hung up."""
    closed: bool = False
    """True once the socket is fully closed (``connection_lost``)."""
    hung_up_by: str | None = None
    """``"client"`` or ``"server"``: who ended the connection first."""
    requests: list[RequestRecord] = field(default_factory=list)
    frames: list[bytes] = field(default_factory=list, repr=False)
    """Stream frames written on this connection, in order."""
    stills: list[bytes] = field(default_factory=list, repr=False)
    """Snapshot JPEGs written on this connection."""
    transport: asyncio.Transport | None = field(default=None, repr=False)


class _CountingProtocol(ForwardingProtocol[ConnectionRecord, RequestHandler]):
    """Wraps aiohttp's protocol to see a connection's whole TCP life.

    With TLS it sits under the TLS layer too: the listening socket is plain
    TCP and `loop.start_tls` runs the handshake on the counted connection.
    (``create_server(ssl=...)`` would only create this protocol after a
    successful handshake and never tell it about a failed one, so such a
    connection would look open forever.)
    """

    def __init__(
        self,
        hooks: ConnectionHooks[ConnectionRecord],
        record: ConnectionRecord,
        inner: RequestHandler,
        ssl_context: ssl.SSLContext | None,
    ) -> None:
        super().__init__(hooks, record, inner)
        self._ssl_context = ssl_context
        self._tls_task: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Count the TCP connection, then start TLS or aiohttp."""
        tcp = cast("asyncio.Transport", transport)
        self._hooks.made(self.record, tcp)
        if self._ssl_context is None:
            self._start_inner(tcp)
            return
        # No request bytes may reach aiohttp before the handshake is done.
        tcp.pause_reading()
        self._tls_task = asyncio.get_running_loop().create_task(
            self._start_tls(tcp, self._ssl_context)
        )

    async def _start_tls(self, tcp: asyncio.Transport, context: ssl.SSLContext) -> None:
        if tcp.is_closing():
            return  # hung up before the handshake could start
        tls = await self.start_tls(tcp, context)
        if tls is None:
            # Failed handshake (e.g. the client distrusts the certificate).
            await self.handshake_failed(tcp)
            return
        self._hooks.made(self.record, tls)
        self._start_inner(tls)

    def data_received(self, data: bytes) -> None:
        """Forward request bytes to aiohttp."""
        self.inner.data_received(data)


class _DoneResponse(web.StreamResponse):
    """Returned by a handler that already wrote (or dropped) everything itself.

    aiohttp then neither writes a response nor keeps the connection alive: it
    closes the transport, which ends an HTTP/1.0 close-delimited body.
    """

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        """Write nothing: the handler wrote to the transport itself."""
        return None

    async def write_eof(self, data: bytes = b"") -> None:
        """Write nothing."""


class _HangUp(Exception):
    """The stream's connection is gone or was hung up on purpose."""


class _Flags:
    """A parsed mode string."""

    def __init__(self, mode: str) -> None:
        names = {name.strip() for name in mode.split("+") if name.strip()}
        self.drop_after: int | None = None
        for name in list(names):
            if name.startswith("drop_after:"):
                self.drop_after = int(name.partition(":")[2])
                names.discard(name)
                names.add("drop_after")
        unknown = names - MODES
        if unknown or not names:
            raise ValueError(f"unknown mode(s): {sorted(unknown) or mode!r}")
        self.names = frozenset(names)

    def __contains__(self, name: str) -> bool:
        return name in self.names


class MjpegPrinter(CountingPrinter[ConnectionRecord]):
    """A fake MJPEG printer camera on a real socket (see the module docstring)."""

    def __init__(
        self,
        *,
        frames: Sequence[bytes] | Callable[[int], bytes] | None = None,
        fps: float = 20.0,
        mode: str = "good",
        boundary: str = "frame",
        username: str | None = None,
        password: str | None = None,
        auth: str = "basic",
        digest_algorithm: str = "MD5",
        digest_qop: str | None = "auth",
        realm: str = "printer",
        max_clients: int | None = None,
        host: str = "127.0.0.1",
        ssl_context: ssl.SSLContext | None = None,
        port: int = 0,
        seed: int = 0,
        record_frames: bool = True,
        shared_clock: bool = False,
        header_flood_bytes: int = HEADER_FLOOD_BYTES,
        gzip_bomb_size: int = GZIP_BOMB_SIZE,
    ) -> None:
        """Configure the printer; nothing listens before `start()`.

        ``frames`` is a sequence played in a loop, a function of the frame
        number (0, 1, 2, ... across all connections), or None for
        `numbered_jpeg`. ``fps`` must be positive.
        """
        if fps <= 0:
            raise ValueError("fps must be positive")
        if auth not in _AUTH_SCHEMES:
            raise ValueError("auth must be 'basic', 'digest' or 'query'")
        if digest_algorithm not in _HASHES:
            raise ValueError(f"digest_algorithm must be one of {sorted(_HASHES)}")
        self._frames = frames
        self.fps = fps
        self._flags = _Flags(mode)
        self.mode = mode
        self.boundary = boundary
        self.username = username
        self.password = password
        self.auth = auth
        self.digest_algorithm = digest_algorithm
        self.digest_qop = digest_qop
        self.realm = realm
        self.max_clients = max_clients
        self.host = host
        self.ssl_context = ssl_context
        self.port = port
        self._rng = random.Random(seed)  # noqa: S311 - garbage bytes, not crypto
        self.record_frames = record_frames
        """Keep every frame sent (tests); a long-running demo turns it off."""
        self.shared_clock = shared_clock
        """Send on one clock's ticks for every stream (see the module docstring)."""
        self.header_flood_bytes = header_flood_bytes
        self.gzip_bomb_size = gzip_bomb_size
        self._clock_epoch: float | None = None

        super().__init__()
        # Counters a test reads (the connection counters: `CountingPrinter`).
        self.requests: list[RequestRecord] = []
        self.stream_requests = 0
        self.still_requests = 0
        self.rejected_connections = 0
        """Streams answered 503 because `max_clients` streams were running."""
        self.auth_failures = 0
        self.active_streams = 0
        self.max_active_streams = 0
        self.frames_sent: list[bytes] = []
        """Every stream frame sent, in send order, over all connections."""
        self.stills_sent: list[bytes] = []
        self.frames_count = 0
        """Stream frames sent (also counted when `record_frames` is off)."""
        self.hostile_head_bytes = 0
        """Bytes of never-ending or flooding response heads sent
        (``header_drip``, ``header_flood``)."""

        self._frame_index = 0
        self._timestamp = 1_700_000_000.0
        self._by_transport: dict[asyncio.Transport, ConnectionRecord] = {}
        self._nonces: dict[str, int] = {}
        """Valid digest nonces and the highest ``nc`` seen for each."""
        self._stale_nonces: set[str] = set()
        self._opaque = secrets.token_hex(8)
        self._streams: dict[int, asyncio.Transport] = {}
        self._web_server: web.Server | None = None

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Start listening (on a random free port when ``port`` is 0)."""
        if self._started:
            raise RuntimeError("already started")
        self._started = True
        # handler_cancellation: a client that hangs up cancels its handler, so
        # a paused stream does not linger after its connection is gone.
        self._web_server = web.Server(
            self._handle, handler_cancellation=True, access_log=None
        )
        await self.accept()

    def _close_timeouts(self) -> tuple[float, float]:
        # Read when closing: tests shorten them on this module.
        return CLOSE_TIMEOUT, _ABORT_AFTER

    # ------------------------------------------------------------- controls

    def drop_all(self) -> int:
        """Hang up every running stream mid-stream; return how many."""
        transports = list(self._streams.values())
        for transport in transports:
            transport.close()
        return len(transports)

    def set_mode(self, mode: str) -> None:
        """Use ``mode`` for the requests that arrive from now on."""
        self._flags = _Flags(mode)
        self.mode = mode

    def expire_nonces(self) -> None:
        """Make every digest nonce issued so far stale."""
        self._stale_nonces.update(self._nonces)
        self._nonces.clear()

    # ------------------------------------------------------------- queries

    @property
    def base_url(self) -> str:
        """Return ``http://host:port`` (``https`` with an ``ssl_context``)."""
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """Return the stream URL."""
        return f"{self.base_url}/stream"

    @property
    def still_url(self) -> str:
        """Return the snapshot URL."""
        return f"{self.base_url}/snapshot"

    @property
    def status_url(self) -> str:
        """Return the URL of the JSON counters."""
        return f"{self.base_url}/status"

    def status(self) -> dict[str, Any]:
        """Return the counters (what ``/status`` serves)."""
        return {
            "mode": self.mode,
            "total_connections": self.total_connections,
            "open_connections": self.open_connections,
            "max_open_connections": self.max_open_connections,
            "stream_requests": self.stream_requests,
            "still_requests": self.still_requests,
            "rejected_connections": self.rejected_connections,
            "auth_failures": self.auth_failures,
            "active_streams": self.active_streams,
            "frames_sent": self.frames_count,
            "hostile_head_bytes": self.hostile_head_bytes,
            "paused": self.paused,
        }

    # ------------------------------------------------------ TCP accounting

    def _protocol_factory(self) -> asyncio.Protocol:
        """Count an accepted connection and wrap aiohttp's protocol for it."""
        if self._web_server is None:  # pragma: no cover - listening implies started
            raise RuntimeError("not started")
        record = ConnectionRecord(index=len(self.connections) + 1)
        self._add_connection(record)
        return _CountingProtocol(
            self._hooks, record, self._web_server(), self.ssl_context
        )

    def _on_made(self, record: ConnectionRecord, transport: asyncio.Transport) -> None:
        # Called again with the TLS transport once the handshake is done.
        if record.transport is not None:
            self._by_transport.pop(record.transport, None)
        record.transport = transport
        self._by_transport[transport] = record
        super()._on_made(record, transport)

    def _hang_up(self, record: ConnectionRecord) -> None:
        if record.transport is not None and not record.closed:
            self._on_hang_up(record, "server")
            record.transport.close()

    def _abort(self, record: ConnectionRecord) -> None:
        if record.transport is not None:
            record.transport.abort()

    def _on_lost(self, record: ConnectionRecord) -> None:
        if record.transport is not None:
            self._by_transport.pop(record.transport, None)
        record.transport = None
        super()._on_lost(record)

    # ------------------------------------------------------------ handlers

    def _record_for(self, request: web.BaseRequest) -> ConnectionRecord:
        transport = request.transport
        record = self._by_transport.get(transport) if transport is not None else None
        # Every connection comes through the counting factory; a request whose
        # connection is already gone gets a detached record.
        return record or ConnectionRecord(index=0, open=False, closed=True)

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        """Serve one request (aiohttp low-level server handler)."""
        record = self._record_for(request)
        entry = RequestRecord(
            connection=record.index,
            method=request.method,
            path=request.raw_path,
            headers=dict(request.headers),
        )
        record.requests.append(entry)
        self.requests.append(entry)
        self._changed()
        flags = self._flags
        response: web.StreamResponse
        try:
            if request.path == "/status":
                response = web.Response(
                    text=json.dumps(self.status()), content_type="application/json"
                )
            elif request.path in ("/stream", "/snapshot"):
                response = await self._handle_camera(request, record, flags, entry)
            else:
                response = web.Response(status=404, text="not found")
        finally:
            self._changed()
        if entry.status is None:
            entry.status = response.status
        return response

    async def _handle_camera(
        self,
        request: web.BaseRequest,
        record: ConnectionRecord,
        flags: _Flags,
        entry: RequestRecord,
    ) -> web.StreamResponse:
        stream = request.path == "/stream"
        if stream:
            self.stream_requests += 1
        else:
            self.still_requests += 1
        if (denied := self._check_auth(request)) is not None:
            return denied
        for status in (401, 403, 500):
            if f"status_{status}" in flags:
                headers = {}
                if status == 401:
                    headers["WWW-Authenticate"] = f'Basic realm="{self.realm}"'
                return web.Response(
                    status=status, text=f"error {status}", headers=headers
                )
        if "header_drip" in flags:
            return await self._drip(request, record)
        if "gzip_bomb" in flags:
            return self._gzip_bomb(record, flags, stream=stream)
        if "not_mjpeg" in flags:
            return web.Response(body=HTML_PAGE, content_type="text/html")
        if "header_flood" in flags and not stream:
            return await self._flood(request, record, flags, stream=False)
        if not stream or "single_jpeg" in flags:
            jpeg = self._next_frame()
            if self.record_frames:
                record.stills.append(jpeg)
                self.stills_sent.append(jpeg)
            return web.Response(body=jpeg, content_type="image/jpeg")
        limit = 1 if "one_client" in flags else self.max_clients
        if limit is not None and self.active_streams >= limit:
            self.rejected_connections += 1
            return web.Response(status=503, text="too many clients")
        entry.status = 200
        if "header_flood" in flags:
            return await self._flood(request, record, flags, stream=True)
        return await self._stream(request, record, flags)

    # ------------------------------------------------------ hostile cameras

    async def _drip(
        self, request: web.BaseRequest, record: ConnectionRecord
    ) -> web.StreamResponse:
        """Send a response head one line at a time, never ending it."""
        writer = StreamWriter(request.protocol, asyncio.get_running_loop())
        line = b"HTTP/1.1 200 OK\r\n"
        count = 0
        try:
            while not self._closing:
                await self._write_head(writer, line)
                count += 1
                line = f"X-Drip-{count}: {count}\r\n".encode()
                await asyncio.sleep(HEADER_DRIP_INTERVAL)
        except _HangUp:
            pass
        return self._hang_up_raw(request, record)

    async def _flood(
        self,
        request: web.BaseRequest,
        record: ConnectionRecord,
        flags: _Flags,
        *,
        stream: bool,
    ) -> web.StreamResponse:
        """Send ``header_flood_bytes`` of header lines, then the stream or a still.

        Written as the client reads (it is a client's memory being tested,
        not the simulator's).
        """
        writer = StreamWriter(request.protocol, asyncio.get_running_loop())
        block = _FLOOD_LINE * 32
        try:
            await self._write_head(writer, b"HTTP/1.0 200 OK\r\n")
            left = self.header_flood_bytes
            while left > 0 and not self._closing:
                data = block[:left]
                await self._write_head(writer, data)
                left -= len(data)
            if not stream:
                jpeg = self._next_frame()
                if self.record_frames:
                    record.stills.append(jpeg)
                    self.stills_sent.append(jpeg)
                await self._write_head(
                    writer,
                    b"Content-Type: image/jpeg\r\nContent-Length: "
                    + str(len(jpeg)).encode()
                    + b"\r\n\r\n"
                    + jpeg,
                )
                return self._hang_up_raw(request, record)
        except _HangUp:
            return self._hang_up_raw(request, record)
        return await self._stream(request, record, flags, head_sent=True)

    async def _write_head(self, writer: StreamWriter, data: bytes) -> None:
        try:
            await writer.write(data)
        except ConnectionError as err:
            raise _HangUp from err
        self.hostile_head_bytes += len(data)
        self._changed()

    def _hang_up_raw(
        self, request: web.BaseRequest, record: ConnectionRecord
    ) -> web.StreamResponse:
        self._on_hang_up(record, "server")
        if request.transport is not None:
            request.transport.close()
        return _DoneResponse()

    def _gzip_bomb(
        self, record: ConnectionRecord, flags: _Flags, *, stream: bool
    ) -> web.StreamResponse:
        """Answer a gzip body that inflates to one frame and a sea of zeros."""
        jpeg = numbered_jpeg(0)
        if self.record_frames:
            (record.frames if stream else record.stills).append(jpeg)
            (self.frames_sent if stream else self.stills_sent).append(jpeg)
        if stream:
            self.frames_count += 1
            content_type = self._content_type(flags)
            prefix = self._encode_part(jpeg, flags, b"image/jpeg")
        else:
            content_type, prefix = "image/jpeg", jpeg
        return web.Response(
            body=gzip_bomb(prefix, self.gzip_bomb_size),
            headers={"Content-Type": content_type, "Content-Encoding": "gzip"},
        )

    def _check_auth(self, request: web.BaseRequest) -> web.Response | None:
        """Return a 401 response unless the request carries the right credentials."""
        if self.username is None:
            return None
        header = request.headers.get("Authorization", "")
        stale = False
        if self.auth == "query":
            if self._query_ok(request):
                return None
            self.auth_failures += 1
            return web.Response(status=401, text="unauthorized")
        if self.auth == "basic":
            ok = self._basic_ok(header)
            challenge = f'Basic realm="{self.realm}"'
        else:
            ok, stale = self._digest_ok(header, request.method, request.raw_path)
            challenge = self._digest_challenge(stale)
        if ok:
            return None
        self.auth_failures += 1
        return web.Response(
            status=401, text="unauthorized", headers={"WWW-Authenticate": challenge}
        )

    def _query_ok(self, request: web.BaseRequest) -> bool:
        user = request.query.get("user", "")
        password = request.query.get("pwd", "")
        return secrets.compare_digest(
            user.encode(), (self.username or "").encode()
        ) and secrets.compare_digest(password.encode(), (self.password or "").encode())

    def _basic_ok(self, header: str) -> bool:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except ValueError:
            return False
        username, _, password = decoded.partition(":")
        return secrets.compare_digest(
            username.encode(), (self.username or "").encode()
        ) and (
            secrets.compare_digest(password.encode(), (self.password or "").encode())
        )

    def _digest_challenge(self, stale: bool) -> str:
        nonce = secrets.token_hex(16)
        self._nonces[nonce] = 0
        parts = [f'Digest realm="{self.realm}"']
        if self.digest_qop:
            parts.append(f'qop="{self.digest_qop}"')
        parts += [
            f"algorithm={self.digest_algorithm}",
            f'nonce="{nonce}"',
            f'opaque="{self._opaque}"',
        ]
        if stale:
            parts.append("stale=true")
        return ", ".join(parts)

    def _digest_ok(self, header: str, method: str, uri: str) -> tuple[bool, bool]:
        """Check a digest Authorization header; return (ok, stale nonce)."""
        scheme, _, rest = header.partition(" ")
        if scheme.lower() != "digest":
            return False, False
        params = _parse_params(rest)
        nonce = params.get("nonce", "")
        if nonce in self._stale_nonces:
            return False, True
        if (
            nonce not in self._nonces
            or params.get("username") != self.username
            or params.get("realm") != self.realm
            or params.get("uri") != uri
            or params.get("opaque") != self._opaque
            or params.get("algorithm", "MD5").upper() != self.digest_algorithm
        ):
            return False, False

        def digest(text: str) -> str:
            return str(_HASHES[self.digest_algorithm](text.encode()).hexdigest())

        ha1 = digest(f"{self.username}:{self.realm}:{self.password or ''}")
        ha2 = digest(f"{method}:{uri}")
        if self.digest_qop:
            nc_text = params.get("nc", "")
            cnonce = params.get("cnonce", "")
            try:
                nc = int(nc_text, 16)
            except ValueError:
                return False, False
            # nc must grow for each request with the same nonce (replays fail).
            if (
                params.get("qop") != self.digest_qop
                or not cnonce
                or nc <= self._nonces[nonce]
            ):
                return False, False
            expected = digest(
                f"{ha1}:{nonce}:{nc_text}:{cnonce}:{self.digest_qop}:{ha2}"
            )
            ok = secrets.compare_digest(params.get("response", ""), expected)
            if ok:
                self._nonces[nonce] = nc
            return ok, False
        expected = digest(f"{ha1}:{nonce}:{ha2}")
        return secrets.compare_digest(params.get("response", ""), expected), False

    # --------------------------------------------------------------- stream

    def _next_frame(self) -> bytes:
        index = self._frame_index
        self._frame_index += 1
        if self._frames is None:
            return numbered_jpeg(index)
        if callable(self._frames):
            return self._frames(index)
        return self._frames[index % len(self._frames)]

    def content_type(self, mode: str | None = None) -> str:
        """Return the stream's Content-Type header for ``mode`` (default: current)."""
        return self._content_type(self._flags if mode is None else _Flags(mode))

    def encode_part(
        self, body: bytes, mode: str | None = None, content_type: bytes = b"image/jpeg"
    ) -> bytes:
        """Return the bytes of one part carrying ``body`` in ``mode`` (default: current)."""
        return self._encode_part(
            body, self._flags if mode is None else _Flags(mode), content_type
        )

    def _content_type(self, flags: _Flags) -> str:
        if "header_case" in flags:
            return f"Multipart/X-Mixed-Replace; BOUNDARY={self.boundary}"
        if "no_boundary" in flags:
            return "multipart/x-mixed-replace"
        if "wrong_content_type" in flags:
            return "text/plain"
        value = self.boundary
        if "dashes_in_header" in flags:
            value = f"--{value}"
        if "quoted_boundary" in flags:
            value = f'"{value}"'
        separator = ";" if "no_space" in flags else "; "
        return f"multipart/x-mixed-replace{separator}boundary={value}"

    def _encode_part(self, body: bytes, flags: _Flags, content_type: bytes) -> bytes:
        eol = b"\n" if "lf_only" in flags else b"\r\n"
        if "header_case" in flags:
            ct_name, cl_name = b"CONTENT-TYPE", b"content-length"
        else:
            ct_name, cl_name = b"Content-Type", b"Content-Length"
        lines = [b"--" + self.boundary.encode(), ct_name + b": " + content_type]
        if "no_content_length" not in flags:
            lines.append(cl_name + b": " + str(len(body)).encode())
        if "extra_headers" in flags:
            self._timestamp += 0.05
            lines.append(f"X-Timestamp: {self._timestamp:.3f}".encode())
        return eol.join(lines) + eol + eol + body + eol

    def _garbage(self) -> bytes:
        """Random bytes for between parts: no dashes, so never a delimiter."""
        size = self._rng.randint(8, 64)
        data = bytes(
            self._rng.choice(b"\x00\x01\x02ABCxyz \xff\xd8\xd9\r\n")
            for _ in range(size)
        )
        return data + b"\r\n"

    def _next_tick(self, now: float, fps: float) -> float:
        """Return the shared clock's first tick after ``now`` (loop time)."""
        if self._clock_epoch is None:
            self._clock_epoch = now
        # The tolerance keeps a time that is a tick (but for float rounding)
        # from meaning that same tick.
        ticks = math.floor((now - self._clock_epoch) * fps + 1e-6) + 1
        return self._clock_epoch + ticks / fps

    async def _stream(
        self,
        request: web.BaseRequest,
        record: ConnectionRecord,
        flags: _Flags,
        *,
        head_sent: bool = False,
    ) -> web.StreamResponse:
        """Send frames until the client or a control hangs up.

        ``head_sent``: an HTTP/1.0 status line and headers were written
        already (``header_flood``); the head is ended here.
        """
        transport = request.transport
        if transport is None:  # the client is already gone
            return _DoneResponse()
        fps = SLOW_FPS if "slow" in flags else self.fps
        raw = head_sent or "http10_close" in flags
        response: web.StreamResponse | None = None
        if raw:
            # aiohttp answers an HTTP/1.1 request with HTTP/1.1 (chunked), so
            # write the close-delimited HTTP/1.0 response to the socket.
            status = b"" if head_sent else b"HTTP/1.0 200 OK\r\n"
            transport.write(
                status
                + b"Server: printer-sim\r\nContent-Type: "
                + self._content_type(flags).encode()
                + b"\r\n\r\n"
            )
        else:
            response = web.StreamResponse(
                headers={"Content-Type": self._content_type(flags)}
            )
            await response.prepare(request)

        async def write(data: bytes) -> None:
            if transport.is_closing():
                raise _HangUp
            if response is None:
                transport.write(data)
            else:
                try:
                    await response.write(data)
                except ConnectionError as err:
                    raise _HangUp from err

        key = id(transport)
        self._streams[key] = transport
        self.active_streams += 1
        self.max_active_streams = max(self.max_active_streams, self.active_streams)
        loop = asyncio.get_running_loop()
        sent = 0
        try:
            if "preamble" in flags:
                await write(PREAMBLE)
            next_time = loop.time()
            while True:
                # Paused: hold frames back but keep the connection.
                await self._running.wait()
                if self._closing:
                    break
                if self.shared_clock:
                    # Wait for the camera's next capture.
                    await asyncio.sleep(self._next_tick(loop.time(), fps) - loop.time())
                    if self._closing:
                        break
                jpeg = self._next_frame()
                data = b""
                if "text_error_part" in flags and sent % 2 == 1:
                    data += self._encode_part(TEXT_ERROR_PART, flags, b"text/plain")
                data += self._encode_part(jpeg, flags, b"image/jpeg")
                if "garbage" in flags:
                    data += self._garbage()
                await write(data)
                if self.record_frames:
                    record.frames.append(jpeg)
                    self.frames_sent.append(jpeg)
                self.frames_count += 1
                sent += 1
                self._changed()
                if flags.drop_after is not None and sent >= flags.drop_after:
                    break
                if not self.shared_clock:
                    next_time = max(next_time + 1 / fps, loop.time())
                    await asyncio.sleep(next_time - loop.time())
        except _HangUp:
            pass
        finally:
            self._streams.pop(key, None)
            self.active_streams -= 1
            self._changed()
        # Hang up: the client sees the body end mid-stream.
        self._on_hang_up(record, "server")
        transport.close()
        return _DoneResponse()


@functools.lru_cache(maxsize=4)
def gzip_bomb(prefix: bytes, size: int) -> bytes:
    """Return gzip data that inflates to ``prefix`` and then ``size`` zero bytes.

    At the strongest compression 256 MiB of zeros take about 255 KB.
    """
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    out = [compressor.compress(prefix)]
    block = bytes(min(size, 1 << 20))
    left = size
    while left > 0:
        out.append(compressor.compress(block[:left]))
        left -= len(block)
    out.append(compressor.flush())
    return b"".join(out)


def self_signed_ssl_context(common_name: str = "printer.local") -> ssl.SSLContext:
    """Return a server SSL context with a fresh self-signed certificate.

    Like the certificates printers make for themselves: a client that
    verifies certificates refuses it.
    """
    return server_context(make_certificate(common_name, valid_days=30))


def _parse_params(text: str) -> dict[str, str]:
    """Parse ``name=value, name="quoted value"`` auth parameters."""
    params: dict[str, str] = {}
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in " \t,":
            i += 1
        start = i
        while i < n and text[i] not in "=, \t":
            i += 1
        name = text[start:i].lower()
        while i < n and text[i] in " \t":
            i += 1
        if i >= n or text[i] != "=":
            if name:
                params[name] = ""
            continue
        params[name], i = read_header_value(text, i + 1, ",")
    return params
