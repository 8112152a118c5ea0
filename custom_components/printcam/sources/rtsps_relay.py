"""A pinned TLS relay for the RTSPS camera of Bambu Lab X1 / H2 / P2S printers.

`RtspsRelay.start()` opens the TLS connection to the printer (port 322) and
checks it like the P1 source does (`bambu_chamber.verify_peer`): the pinned
SHA-256 fingerprint, then CN == serial, **before a single byte is sent**.
Only then does it listen on ``127.0.0.1:0`` and return a plain
``rtsp://127.0.0.1:<port>/streaming/live/1`` URL for ffmpeg. The listener
accepts exactly one connection (from the loopback address) and closes at
once, so a second client is refused by the kernel.

Relaying: both streams are parsed as RTSP, never regex'd over as a whole.
A message is either an interleaved binary frame (``$``, channel, 16-bit
length, payload: passed through untouched) or a head (start line and headers
up to an empty line, at most the reader limit of 64 KiB) plus a body of
``Content-Length`` bytes (at most `MAX_BODY`).

- ffmpeg -> printer: the request URL and URL-bearing header values are moved
  from ``rtsp://127.0.0.1:<port>`` to ``rtsps://<host>:<port>`` (the
  printer's own address); ffmpeg's ``Authorization`` is dropped and the
  relay's own added.
- printer -> ffmpeg: absolute ``rtsp(s)://`` URLs in ``Content-Base``,
  ``Content-Location``, ``Location``, ``RTP-Info`` and SDP bodies are moved
  to the local URL, so ffmpeg's SETUP / PLAY stay on the relay (whatever
  address the printer believes it has).

Authentication: ffmpeg's URL carries no credentials (the access code never
appears on its command line). The relay sends ``Basic bblp:<code>`` inside
the pinned TLS connection; when the printer answers 401 with a Digest
challenge, the relay answers it itself (`mjpeg_http._DigestAuth`, the
request-URI as digest ``uri``) and resends the request with the same CSeq,
so ffmpeg never sees that 401; from then on only Digest is sent (no
downgrade). A 401 the relay cannot answer is passed to ffmpeg and recorded
as `InvalidAuth` in `RtspsRelay.error`.

Lifetime: everything (listener, both sockets, both relay tasks) is closed
when either side closes, on a protocol error, when no client connects within
``accept_timeout``, on `close()` and on cancellation; `wait_closed()` returns
once it is. No Home Assistant imports.
"""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass, field
import logging
import re
import socket
import ssl
from types import TracebackType
from typing import Final, Self

from yarl import URL

from custom_components.printcam.const import CONNECT_TIMEOUT

from .bambu_chamber import (
    PrinterCertificate,
    build_ssl_context,
    close_writer,
    format_host,
    let_close,
    normalize_fingerprint,
    open_tls,
    verify_peer,
)
from .base import (
    CameraPortClosed,
    CannotConnect,
    InvalidAuth,
    LiveviewDisabled,
    ProtocolError,
    SourceError,
    SourceTimeout,
    wait_despite_cancel,
)
from .mjpeg_http import _DigestAuth, _parse_challenges, _pick_digest

_LOGGER = logging.getLogger(__name__)

DEFAULT_PORT: Final = 322
STREAM_PATH: Final = "/streaming/live/1"
USERNAME: Final = "bblp"
LOOPBACK: Final = "127.0.0.1"
SETTLE_TIME: Final = 0.25
"""How long `start()` watches the printer for an immediate close (liveview off)."""
ACCEPT_TIMEOUT: Final = 15.0
"""How long the relay waits for ffmpeg to connect before closing."""
MAX_BODY: Final = 1024 * 1024
"""Largest RTSP message body relayed (SDP and parameters are a few KB)."""

_HEAD_END: Final = b"\r\n\r\n"
_INTERLEAVED: Final = b"$"
_URL_HEADERS: Final = frozenset(
    {"content-base", "content-location", "location", "rtp-info"}
)
_ABSOLUTE_RTSP: Final = re.compile(r"rtsps?://[^/\s;,\"]+", re.IGNORECASE)


@dataclass(slots=True)
class RelayStats:
    """What went through a relay."""

    bytes_to_printer: int = 0
    bytes_to_client: int = 0
    requests: int = 0
    """RTSP requests from ffmpeg."""
    requests_rewritten: int = 0
    """Requests whose URL was moved to the printer's address."""
    responses_rewritten: int = 0
    """Printer messages whose URLs were moved to the local address."""
    interleaved_frames: int = 0
    """Binary ``$`` frames relayed, both ways."""
    auth_retries: int = 0
    """Requests resent with an answer to a Digest challenge."""


@dataclass(slots=True)
class _Message:
    """One RTSP request or response, head decoded as latin-1 (lossless)."""

    start: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        """Return the first value of header ``name`` (any case), None without."""
        name = name.lower()
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None

    def header_values(self, name: str) -> list[str]:
        """Return every value of header ``name`` (any case)."""
        name = name.lower()
        return [value for key, value in self.headers if key.lower() == name]

    def encode(self) -> bytes:
        """Return the wire form; ``Content-Length`` follows the body."""
        lines = [self.start]
        for key, value in self.headers:
            if key.lower() == "content-length":
                value = str(len(self.body))  # noqa: PLW2901
            lines.append(f"{key}: {value}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + self.body


@dataclass(slots=True)
class _Request:
    """A request as sent to the printer (kept until its response, for 401s)."""

    method: str
    uri: str
    version: str
    headers: list[tuple[str, str]]
    body: bytes
    retried: bool = field(default=False)


async def _read_message(reader: asyncio.StreamReader) -> _Message | bytes | None:
    """Read one interleaved frame (bytes) or RTSP message; None at a clean EOF.

    Raises `ProtocolError` for a head over the reader's limit, a bad or too
    large ``Content-Length``; `asyncio.IncompleteReadError` for an EOF inside
    a message, OSError for a broken connection.
    """
    first = b"\r"
    while first in (b"\r", b"\n"):  # stray line ends between messages
        try:
            first = await reader.readexactly(1)
        except asyncio.IncompleteReadError:
            return None
    if first == _INTERLEAVED:
        head = await reader.readexactly(3)
        return first + head + await reader.readexactly(int.from_bytes(head[1:3]))
    try:
        raw = first + await reader.readuntil(_HEAD_END)
    except asyncio.LimitOverrunError:
        raise ProtocolError("an RTSP message head is too large") from None
    lines = raw[: -len(_HEAD_END)].decode("latin-1").split("\r\n")
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        key, sep, value = line.partition(":")
        if not sep:
            raise ProtocolError("an RTSP header line has no ':'")
        headers.append((key.strip(), value.strip()))
    message = _Message(lines[0], headers, b"")
    length = message.header("content-length")
    if length is not None:
        try:
            size = int(length)
        except ValueError:
            size = -1
        if not 0 <= size <= MAX_BODY:
            raise ProtocolError("an RTSP message has a bad Content-Length")
        message.body = await reader.readexactly(size)
    return message


class RtspsRelay:
    """One pinned RTSPS connection to a printer, offered to one local client."""

    def __init__(
        self,
        host: str,
        serial: str,
        access_code: str,
        *,
        cert_sha256: str,
        port: int = DEFAULT_PORT,
        path: str = STREAM_PATH,
        username: str = USERNAME,
        connect_timeout: float = CONNECT_TIMEOUT,
        settle_time: float = SETTLE_TIME,
        accept_timeout: float = ACCEPT_TIMEOUT,
    ) -> None:
        """Set up the relay; nothing is opened before `start()`."""
        self._host = host
        self._port = port
        self._serial = serial
        self._username = username
        self._password = access_code
        self._basic = "Basic " + base64.b64encode(
            f"{username}:{access_code}".encode()
        ).decode("ascii")
        self._digest: _DigestAuth | None = None
        self._cert_sha256 = normalize_fingerprint(cert_sha256)
        self._path = path
        self._connect_timeout = connect_timeout
        self._settle_time = settle_time
        self._accept_timeout = accept_timeout
        self._printer_prefix = f"rtsps://{format_host(host, port)}"
        self._local_prefix = ""
        self._local_re: re.Pattern[str] | None = None
        self._printer_reader: asyncio.StreamReader | None = None
        self._printer_writer: asyncio.StreamWriter | None = None
        self._client_writer: asyncio.StreamWriter | None = None
        self._listener: socket.socket | None = None
        self._pending: dict[str, _Request] = {}
        self._task: asyncio.Task[None] | None = None
        self._started = False
        self._closed = asyncio.Event()
        self.stats = RelayStats()
        self.url: str | None = None
        """The local URL for ffmpeg (no credentials), set by `start()`."""
        self.error: SourceError | None = None
        """Why the relay ended, if not a normal close (first error only)."""
        self.peer_certificate: PrinterCertificate | None = None

    def __repr__(self) -> str:
        """Return a description without the access code."""
        return f"<{type(self).__name__} {self.host} serial={self._serial}>"

    @property
    def host(self) -> str:
        """Return ``host:port`` of the printer (never the access code)."""
        return format_host(self._host, self._port)

    @property
    def closed(self) -> bool:
        """Return True once everything is closed."""
        return self._closed.is_set()

    async def __aenter__(self) -> Self:
        """Start the relay."""
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the relay."""
        await self.close()

    # --------------------------------------------------------------- start

    async def start(self) -> str:
        """Connect and check the printer, listen locally; return the local URL.

        Nothing is sent to the printer. Raises `CameraPortClosed` (refused),
        `LiveviewDisabled` (closed at once), `SourceTimeout`,
        `CertificateMismatch`, `InvalidSerial`, `CannotConnect` or
        `ProtocolError`; the relay is closed then.
        """
        if self._started:
            raise RuntimeError("a relay starts once")
        self._started = True
        try:
            reader, writer = await self._open()
            self._printer_reader, self._printer_writer = reader, writer
            self.peer_certificate = verify_peer(
                writer, self.host, serial=self._serial, cert_sha256=self._cert_sha256
            )
            await self._settle(reader)
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self._listener = listener
            listener.setblocking(False)
            listener.bind((LOOPBACK, 0))
            listener.listen(1)
        except BaseException:
            await self.close()
            raise
        port = listener.getsockname()[1]
        self._local_prefix = f"rtsp://{LOOPBACK}:{port}"
        self._local_re = re.compile(
            re.escape(self._local_prefix) + r"(?![0-9])", re.IGNORECASE
        )
        self.url = self._local_prefix + self._path
        self._task = asyncio.get_running_loop().create_task(
            self._serve(listener), name=f"printcam rtsps relay {self.host}"
        )
        return self.url

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            return await open_tls(
                self._host,
                self._port,
                build_ssl_context(),
                self._connect_timeout,
                self.host,
            )
        except CameraPortClosed:
            raise
        except CannotConnect as err:
            cause = err.__cause__
            if isinstance(cause, ConnectionError | ssl.SSLEOFError):
                raise self._liveview_off() from cause
            raise

    def _liveview_off(self) -> LiveviewDisabled:
        return LiveviewDisabled(
            f"{self.host} closes its camera port at once: turn on LAN Mode "
            "Liveview on the printer"
        )

    async def _settle(self, reader: asyncio.StreamReader) -> None:
        """Raise `LiveviewDisabled` if the printer closes within the settle time."""
        try:
            async with asyncio.timeout(self._settle_time):
                data = await reader.read(1)
        except TimeoutError:
            return
        except OSError as err:
            raise self._liveview_off() from err
        if not data:
            raise self._liveview_off()
        raise ProtocolError(f"{self.host} sent data before any request")

    # --------------------------------------------------------------- close

    async def close(self) -> None:
        """Close the listener, both connections and the relay task; wait."""
        task = self._task
        if task is None:
            self._closed.set()  # before start(), or start() failed
            await self._release()
            return
        task.cancel()
        await wait_despite_cancel(task)
        if not self._closed.is_set():  # cancelled before it ever ran
            try:
                await self._release()
            finally:
                self._closed.set()

    async def wait_closed(self) -> None:
        """Wait until everything is closed (after `close()` or either side)."""
        await self._closed.wait()

    async def _release(self) -> None:
        if self._listener is not None:
            self._listener.close()
        writers = [
            writer
            for writer in (self._client_writer, self._printer_writer)
            if writer is not None
        ]
        try:
            for writer in writers:
                await close_writer(writer)
        except BaseException:
            for writer in writers:
                writer.transport.abort()
            await let_close()  # before anyone may connect again
            raise

    def _fail(self, error: SourceError) -> None:
        if self.error is None:
            self.error = error
        _LOGGER.debug("%s: relay ends: %s", self.host, error)

    # --------------------------------------------------------------- relay

    async def _serve(self, listener: socket.socket) -> None:
        try:
            client = await self._accept(listener)
            if client is None:
                return
            reader, self._client_writer = client
            loop = asyncio.get_running_loop()
            relays = {
                loop.create_task(self._pump_requests(reader)),
                loop.create_task(self._pump_responses()),
            }
            try:
                await asyncio.wait(relays, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for relay in relays:
                    relay.cancel()
                await asyncio.gather(*relays, return_exceptions=True)
        finally:
            try:
                await self._release()
            finally:
                self._closed.set()

    async def _accept(
        self, listener: socket.socket
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        """Accept one loopback connection, then stop listening."""
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._accept_timeout):
                connection, peer = await loop.sock_accept(listener)
        except TimeoutError:
            self._fail(
                SourceTimeout(f"no client connected within {self._accept_timeout:g} s")
            )
            return None
        finally:
            listener.close()  # a second client is refused
        try:
            if peer[0] != LOOPBACK:
                connection.close()
                self._fail(ProtocolError(f"refused a client from {peer[0]}"))
                return None
            return await asyncio.open_connection(sock=connection)
        except OSError as err:
            connection.close()
            self._fail(CannotConnect(f"cannot relay the local client ({err!r})"))
            return None
        except BaseException:
            connection.close()
            raise

    async def _pump_requests(self, reader: asyncio.StreamReader) -> None:
        """Relay ffmpeg -> printer until ffmpeg closes."""
        writer = self._printer_writer
        assert writer is not None  # noqa: S101 - set by start()
        try:
            while (message := await _read_message(reader)) is not None:
                if isinstance(message, bytes):
                    self.stats.interleaved_frames += 1
                    data = message
                else:
                    data = self._request(message)
                await self._send_printer(writer, data)
        except SourceError as err:
            self._fail(err)
        except (OSError, asyncio.IncompleteReadError) as err:
            _LOGGER.debug("%s: the local client broke off (%r)", self.host, err)

    async def _pump_responses(self) -> None:
        """Relay printer -> ffmpeg until the printer closes."""
        reader = self._printer_reader
        writer = self._client_writer
        assert reader is not None  # noqa: S101 - set by start()
        assert writer is not None  # noqa: S101 - set by _serve()
        try:
            while (message := await _read_message(reader)) is not None:
                if isinstance(message, bytes):
                    self.stats.interleaved_frames += 1
                    data = message
                elif await self._answered_challenge(message):
                    continue
                else:
                    data = self._inward(message)
                writer.write(data)
                self.stats.bytes_to_client += len(data)
                await writer.drain()
            self._fail(CannotConnect(f"{self.host} ended the RTSP session"))
        except SourceError as err:
            self._fail(err)
        except (OSError, asyncio.IncompleteReadError) as err:
            self._fail(CannotConnect(f"the connection to {self.host} broke ({err!r})"))

    async def _send_printer(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        writer.write(data)
        self.stats.bytes_to_printer += len(data)
        await writer.drain()

    # ------------------------------------------------------------ rewrites

    def _request(self, message: _Message) -> bytes:
        """Return ``message`` moved to the printer's address, with our auth."""
        assert self._local_re is not None  # noqa: S101 - set by start()
        parts = message.start.split(" ")
        if len(parts) != 3 or not parts[2].startswith("RTSP/"):
            raise ProtocolError("the local client sent something that is not RTSP")
        method, uri, version = parts
        if match := self._local_re.match(uri):
            uri = self._printer_prefix + uri[match.end() :]
            self.stats.requests_rewritten += 1
        headers = [
            (key, self._local_re.sub(self._printer_prefix, value))
            for key, value in message.headers
            if key.lower() != "authorization"
        ]
        request = _Request(method, uri, version, headers, message.body)
        cseq = message.header("cseq")
        if cseq is not None:
            self._pending[cseq] = request
        self.stats.requests += 1
        return self._encode(request)

    def _encode(self, request: _Request) -> bytes:
        if self._digest is not None:
            authorization = self._digest.authorization(
                request.method, URL.build(path=request.uri, encoded=True)
            )
        else:
            authorization = self._basic
        message = _Message(
            f"{request.method} {request.uri} {request.version}",
            [*request.headers, ("Authorization", authorization)],
            request.body,
        )
        return message.encode()

    async def _answered_challenge(self, message: _Message) -> bool:
        """Resend the request of a 401 with Digest; False to pass the 401 on."""
        parts = message.start.split(" ", 2)
        if len(parts) < 2 or parts[0][:5] != "RTSP/":
            return False  # a request from the printer
        cseq = message.header("cseq") or ""
        request = self._pending.pop(cseq, None)
        if parts[1] != "401" or request is None:
            return False
        params = None
        if not request.retried:
            params = _pick_digest(
                _parse_challenges(message.header_values("www-authenticate"))
            )
        if params is None:
            self._fail(InvalidAuth(f"{self.host} refused the access code (RTSP 401)"))
            return False
        self._digest = _DigestAuth(self._username, self._password, params)
        request.retried = True
        self._pending[cseq] = request
        self.stats.auth_retries += 1
        writer = self._printer_writer
        assert writer is not None  # noqa: S101 - set by start()
        await self._send_printer(writer, self._encode(request))
        return True

    def _inward(self, message: _Message) -> bytes:
        """Return a printer message with its URLs moved to the local address."""
        local = self._local_prefix
        headers = [
            (key, _ABSOLUTE_RTSP.sub(local, value))
            if key.lower() in _URL_HEADERS
            else (key, value)
            for key, value in message.headers
        ]
        body = message.body
        content_type = message.header("content-type") or ""
        if content_type.lower().startswith("application/sdp"):
            body = _ABSOLUTE_RTSP.sub(local, body.decode("latin-1")).encode("latin-1")
        if headers != message.headers or body != message.body:
            self.stats.responses_rewritten += 1
            message = _Message(message.start, headers, body)
        return message.encode()
