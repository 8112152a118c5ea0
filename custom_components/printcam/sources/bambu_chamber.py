"""Bambu Lab P1P / P1S / A1 / A1 mini chamber camera: JPEG frames over TLS, port 6000.

One `connect()` is one TLS connection: handshake, certificate checks, one
80-byte login packet, then frames, each a 16-byte little-endian header
(payload size, itrack, flags, reserved) and exactly that many bytes of JPEG
(docs/printers.md). Reads are exact whatever the TCP segmentation.

Trust: the printer's certificate comes from Bambu Lab's own CA, which this
project does not ship, so the certificate is not verified against a CA but
*pinned*: the config flow captures its SHA-256 fingerprint (trust on first
use, `fetch_certificate` or `peer_certificate`) and every connection
compares it **before** the access code is sent (`CertificateMismatch`). The
certificate's common name must also be the configured serial number
(`InvalidSerial`). A source without a pin (``cert_sha256=None``) is for the
config flow's capture step only.

Errors: refused port → `CameraPortClosed` (printer on, camera off); no
answer → `SourceTimeout`; other network failures → `CannotConnect`. A wrong
access code is not answered: the printer just closes the connection after
the login. One such close is a `CannotConnect` (it may be a glitch); two in a
row are `InvalidAuth`. A frame with size 0, a size over `MAX_FRAME_SIZE` or a
payload that is not a JPEG is counted as dropped and raises `ProtocolError`:
a length-prefixed stream out of step cannot be trusted, so the base loop
opens a fresh connection.

Connection discipline: the socket is closed and its close awaited (bounded,
then aborted) on every way out of `connect()`, because the printer keeps
feeding an orphaned socket for many minutes and must never see two. The
access code never appears in `host`, `repr`, log lines or error messages.

No Home Assistant imports.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
import hashlib
import hmac
import logging
import ssl
import struct
from typing import TYPE_CHECKING, Final

from cryptography import x509
from cryptography.x509.oid import NameOID

from custom_components.printcam.const import CONNECT_TIMEOUT, READ_TIMEOUT

from .base import (
    CameraPortClosed,
    CannotConnect,
    CertificateMismatch,
    FrameSource,
    InvalidAuth,
    InvalidSerial,
    ProtocolError,
    SourceError,
    SourceEvents,
    SourceTimeout,
    wait_despite_cancel,
)

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator

_LOGGER = logging.getLogger(__name__)

DEFAULT_PORT: Final = 6000
MAX_FRAME_SIZE: Final = 4 * 1024 * 1024
"""Largest payload accepted; stock frames are about 60 KB."""
CLOSE_TIMEOUT: Final = 2.0
"""How long a close waits for the TLS shutdown before aborting the socket."""
CLOSE_ITERATIONS: Final = 3
"""Loop iterations asyncio takes to close an aborted TLS connection's socket."""
AUTH_REJECT_WINDOW: Final = 5.0
"""A close this soon after the login, before any frame, looks like a wrong code.

The printer closes at once on a wrong access code; a close long after the
login (a reboot, a stalled camera) says nothing about the code.
"""

HEADER: Final = struct.Struct("<IIII")
"""Frame header: payload size, itrack (0), flags (1), reserved (0)."""
_AUTH_HEAD: Final = struct.Struct("<IIII")
_AUTH_USER: Final = b"bblp"
_AUTH_FIELD: Final = 32
_SOI: Final = b"\xff\xd8"
_EOI: Final = b"\xff\xd9"


@dataclass(frozen=True, slots=True)
class PrinterCertificate:
    """The TLS certificate a printer presented."""

    sha256: str
    """Lowercase hex SHA-256 of the DER certificate: the value to pin."""
    common_name: str | None
    """The subject's common name (a Bambu printer's serial), if any."""
    der: bytes = field(repr=False)


def fingerprint(der: bytes) -> str:
    """Return the lowercase hex SHA-256 fingerprint of a DER certificate."""
    return hashlib.sha256(der).hexdigest()


def normalize_fingerprint(value: str) -> str:
    """Return ``value`` as lowercase hex without ``:`` or blanks."""
    return "".join(ch for ch in value if ch not in ": \t\r\n").lower()


def auth_packet(access_code: str) -> bytes:
    """Return the 80-byte login packet for ``access_code``.

    Raises ValueError when the code does not fit its 32-byte field.
    """
    code = access_code.encode("utf-8")
    if len(code) > _AUTH_FIELD:
        raise ValueError("the access code is longer than 32 bytes")
    return (
        _AUTH_HEAD.pack(0x40, 0x3000, 0, 0)
        + _AUTH_USER.ljust(_AUTH_FIELD, b"\0")
        + code.ljust(_AUTH_FIELD, b"\0")
    )


def build_ssl_context() -> ssl.SSLContext:
    """Return the client context: TLS 1.2+, no CA verification (we pin instead).

    No CA store is loaded (that would block the event loop, and the printer's
    CA is not a public one); `VERIFY_X509_STRICT` is cleared, as Bambu's
    certificates need on Python 3.13 should verification ever be turned on.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_flags &= ~ssl.VERIFY_X509_STRICT
    return context


def _format_host(host: str, port: int) -> str:
    if ":" in host and not host.startswith("["):  # IPv6 literal
        host = f"[{host}]"
    return f"{host}:{port}"


def _common_name(der: bytes) -> str | None:
    """Return the certificate's subject CN, None without one (or unparsable)."""
    try:
        certificate = x509.load_der_x509_certificate(der)
        attributes = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    except ValueError:
        return None
    if not attributes:
        return None
    value = attributes[0].value
    return value.decode("latin-1") if isinstance(value, bytes) else value


def _peer_der(writer: asyncio.StreamWriter, target: str) -> bytes:
    ssl_object: ssl.SSLObject | None = writer.get_extra_info("ssl_object")
    der = ssl_object.getpeercert(binary_form=True) if ssl_object else None
    if not der:
        raise ProtocolError(f"{target} presented no TLS certificate")
    return der


async def _open_tls(
    host: str, port: int, context: ssl.SSLContext, within: float, target: str
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect and run the TLS handshake within ``within`` s; raise typed errors."""
    error: SourceError
    # The connection is made in a task of its own: a cancellation (or the
    # timeout) arriving just as it completes would otherwise drop the
    # finished connection unclosed, an open socket nobody holds.
    opening = asyncio.ensure_future(asyncio.open_connection(host, port, ssl=context))
    try:
        async with asyncio.timeout(within):
            return await asyncio.shield(opening)
    except asyncio.CancelledError:
        # Cancelled (a restart): close whatever the attempt got to, and let
        # asyncio close the socket, or the next connection would overlap
        # this one at a printer that serves one client.
        await _abandon(opening)
        raise
    except TimeoutError as err:
        await _abandon(opening)
        cause: BaseException = err
        error = SourceTimeout(f"{target} did not answer within {within:g} s")
    except ConnectionRefusedError as err:
        cause = err
        error = CameraPortClosed(
            f"{target} refuses connections: the printer is on, but its camera "
            "port is closed (turn on LAN mode liveview)"
        )
    except ssl.SSLError as err:
        cause = err
        error = CannotConnect(
            f"TLS handshake with {target} failed ({err.reason or type(err).__name__})"
        )
    except (OSError, ValueError, OverflowError) as err:
        cause = err
        detail = (err.strerror if isinstance(err, OSError) else None) or type(
            err
        ).__name__
        error = CannotConnect(f"cannot connect to {target}: {detail}")
    # A failed connect closes its socket on the next loop iteration; let it,
    # so that a retry never overlaps it.
    await _let_close()
    raise error from cause


async def _abandon(
    opening: asyncio.Future[tuple[asyncio.StreamReader, asyncio.StreamWriter]],
) -> None:
    """Stop a connection attempt; close the connection if it was made anyway."""
    opening.cancel()
    try:
        await wait_despite_cancel(opening)
    finally:
        if not opening.cancelled() and opening.exception() is None:
            _reader, writer = opening.result()
            writer.transport.abort()
        await _let_close()


async def _let_close() -> None:
    """Let asyncio close an aborted connection's socket.

    It does so on the next loop iterations: the TLS layer, then the socket.
    """
    for _ in range(CLOSE_ITERATIONS):
        await asyncio.sleep(0)


async def _close_writer(writer: asyncio.StreamWriter) -> None:
    """Close the connection and wait until the socket is really closed.

    The TLS shutdown is waited for at most `CLOSE_TIMEOUT` seconds; then (or
    when cancelled meanwhile) the socket is aborted, never left open.
    """
    writer.close()
    try:
        async with asyncio.timeout(CLOSE_TIMEOUT):
            await writer.wait_closed()
    except asyncio.CancelledError:
        # Cancelled while closing (a restart): abort, and still let the
        # socket close before the next connection may open.
        writer.transport.abort()
        await _let_close()
        raise
    except (OSError, TimeoutError):
        # A reset or TLS error while closing, or a peer that never finishes
        # the TLS shutdown: drop the socket (closed on the next iterations).
        writer.transport.abort()
        await _let_close()


async def fetch_certificate(
    host: str,
    port: int = DEFAULT_PORT,
    timeout: float = 10.0,  # noqa: ASYNC109 - one bound for connect and handshake
) -> PrinterCertificate:
    """Return the certificate the printer presents (TLS handshake only).

    Nothing is sent after the handshake: no login, no access code. The
    connection is closed, and its close awaited, before this returns. Raises
    `CameraPortClosed`, `SourceTimeout`, `CannotConnect` or `ProtocolError`
    (no certificate).
    """
    target = _format_host(host, port)
    _reader, writer = await _open_tls(host, port, build_ssl_context(), timeout, target)
    try:
        der = _peer_der(writer, target)
        return PrinterCertificate(fingerprint(der), _common_name(der), der)
    finally:
        await _close_writer(writer)


def verify_peer(
    writer: asyncio.StreamWriter,
    target: str,
    *,
    serial: str,
    cert_sha256: str | None,
) -> PrinterCertificate:
    """Check the pinned fingerprint, then the serial; return the certificate.

    Call it right after the handshake, before any credential is sent.
    ``cert_sha256`` is the normalized pin (None: not pinned, capture only).
    Raises `CertificateMismatch`, `InvalidSerial` or `ProtocolError` (no
    certificate).
    """
    der = _peer_der(writer, target)
    presented = fingerprint(der)
    if cert_sha256 is not None and not hmac.compare_digest(presented, cert_sha256):
        raise CertificateMismatch(
            f"{target} presented another TLS certificate than the one "
            f"trusted at setup (sha256 {presented[:16]}..., expected "
            f"{cert_sha256[:16]}...): the printer was reset or "
            "replaced, or something else answers at this address",
            expected=cert_sha256,
            presented=presented,
        )
    common_name = _common_name(der)
    if (
        common_name is not None
        and common_name.strip().casefold() != serial.strip().casefold()
    ):
        raise InvalidSerial(
            f"{target} is printer {common_name}, not {serial}",
            serial=serial,
            common_name=common_name,
        )
    return PrinterCertificate(presented, common_name, der)


# Public names for the other TLS sources (sources/rtsps_relay.py); the
# private ones stay what this module calls (and what its tests patch).
format_host = _format_host
open_tls = _open_tls
close_writer = _close_writer
let_close = _let_close


class _ClosedBeforeFrame(CannotConnect):
    """The printer closed the connection right after the login, before a frame."""

    conclusive = False  # a second close in a row is InvalidAuth


class _HungUp(Exception):
    """The printer closed or reset the connection at a frame boundary."""


class BambuChamberSource(FrameSource):
    """The port-6000 chamber camera of a Bambu Lab P1 / A1 printer."""

    family = "bambu"

    def __init__(
        self,
        host: str,
        serial: str,
        access_code: str,
        *,
        cert_sha256: str | None,
        port: int = DEFAULT_PORT,
        connect_timeout: float = CONNECT_TIMEOUT,
        read_timeout: float = READ_TIMEOUT,
        events: SourceEvents | None = None,
    ) -> None:
        """Set up the source; nothing is sent before `connect()`.

        ``cert_sha256`` is the pinned certificate fingerprint (hex, any case,
        ``:`` allowed); None skips pinning and is meant only for capturing
        the certificate in the config flow.
        """
        super().__init__(events)
        self._hostname = host
        self._port = port
        self._serial = serial
        try:
            self._auth: bytes | None = auth_packet(access_code)
        except ValueError:
            self._auth = None  # reported by connect(), without connecting
        self._cert_sha256 = (
            normalize_fingerprint(cert_sha256) if cert_sha256 is not None else None
        )
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._ssl: ssl.SSLContext | None = None
        self._closed_early = 0
        """Consecutive connections closed right after the login, before a frame."""
        self.peer_certificate: PrinterCertificate | None = None
        """The certificate of the last connection that passed the checks."""

    def __repr__(self) -> str:
        """Return a description without the access code."""
        return f"<{type(self).__name__} {self.host} serial={self._serial}>"

    @property
    def host(self) -> str:
        """Return ``host:port`` (never the access code)."""
        return _format_host(self._hostname, self._port)

    @property
    def serial(self) -> str:
        """Return the configured serial number."""
        return self._serial

    @property
    def cert_sha256(self) -> str | None:
        """Return the pinned fingerprint (lowercase hex), None when not pinned."""
        return self._cert_sha256

    def _context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = build_ssl_context()
        return self._ssl

    # -------------------------------------------------------------- stream

    async def connect(self) -> AsyncGenerator[bytes]:
        """Open one connection and yield its JPEG frames until it ends.

        Raises `CameraPortClosed`, `SourceTimeout`, `CannotConnect`,
        `CertificateMismatch`, `InvalidSerial`, `InvalidAuth` (the second
        connection in a row closed right after the login) or `ProtocolError`.
        The socket is closed, and the close awaited, whichever way this ends.
        """
        # Any other outcome than "closed after the login" breaks the streak.
        streak, self._closed_early = self._closed_early, 0
        if self._auth is None:
            raise InvalidAuth("the access code is longer than 32 bytes")
        reader, writer = await _open_tls(
            self._hostname,
            self._port,
            self._context(),
            self._connect_timeout,
            self.host,
        )
        try:
            self._check_peer(writer)
            # 80 bytes into an empty transport buffer are sent at once; a
            # failed send shows up as a hang-up on the first read.
            writer.write(self._auth)
            loop = asyncio.get_running_loop()
            logged_in_at = loop.time()
            self._mark_connected()
            _LOGGER.debug("%s: logged in, waiting for frames", self.host)
            got_frame = False
            while True:
                try:
                    header = await self._read(reader, HEADER.size)
                except _HungUp as err:
                    if got_frame:
                        raise CannotConnect(f"{self.host} {err}") from None
                    raise self._closed_before_frame(
                        streak, loop.time() - logged_in_at
                    ) from None
                size = HEADER.unpack(header)[0]
                if size == 0:
                    raise self._dropped("empty", "sent a frame header of size 0")
                if size > MAX_FRAME_SIZE:
                    raise self._dropped(
                        "oversize",
                        f"sent a frame header of {size} bytes "
                        f"(more than {MAX_FRAME_SIZE})",
                    )
                try:
                    payload = await self._read(reader, size)
                except _HungUp as err:
                    raise CannotConnect(f"{self.host} {err} mid-frame") from None
                if not (payload.startswith(_SOI) and payload.endswith(_EOI)):
                    raise self._dropped("not_jpeg", "sent a frame that is not a JPEG")
                got_frame = True
                yield payload
        finally:
            await _close_writer(writer)

    def _check_peer(self, writer: asyncio.StreamWriter) -> None:
        """Check the pinned fingerprint, then the serial: before any credential."""
        self.peer_certificate = verify_peer(
            writer, self.host, serial=self._serial, cert_sha256=self._cert_sha256
        )

    async def _read(self, reader: asyncio.StreamReader, size: int) -> bytes:
        """Read exactly ``size`` bytes within the read timeout.

        Raises `_HungUp` when the printer closed or reset the connection
        before the first of them, `CannotConnect` when it closed after some.
        """
        try:
            async with asyncio.timeout(self._read_timeout):
                return await reader.readexactly(size)
        except asyncio.IncompleteReadError as err:
            if err.partial:
                raise CannotConnect(
                    f"{self.host} closed the connection mid-frame"
                ) from None
            raise _HungUp("closed the connection") from None
        except TimeoutError:
            raise SourceTimeout(
                f"no data from {self.host} in {self._read_timeout:g} s"
            ) from None
        except OSError as err:
            raise _HungUp(
                f"broke the connection ({err.strerror or type(err).__name__})"
            ) from None

    def _closed_before_frame(self, streak: int, after: float) -> SourceError:
        if after > AUTH_REJECT_WINDOW:
            return CannotConnect(
                f"{self.host} closed the connection {after:.0f} s after the "
                "login, before the first frame"
            )
        self._closed_early = streak + 1
        if self._closed_early >= 2:
            return InvalidAuth(
                f"{self.host} closed the connection right after the login, "
                f"{self._closed_early} times in a row: the access code is wrong"
            )
        return _ClosedBeforeFrame(f"{self.host} closed before the first frame")

    def _dropped(self, reason: str, message: str) -> ProtocolError:
        self.stats.dropped += 1
        self.events.on_frame_dropped(1, reason)
        _LOGGER.debug("%s: %s; reconnecting", self.host, message)
        return ProtocolError(f"{self.host} {message}")

    # --------------------------------------------------------------- probe

    async def fetch_frame(self, timeout: float) -> bytes:  # noqa: ASYNC109
        """Open a connection, return its first frame, close it.

        For validation and the startup probe: a connection closed right
        after the login is tried once more (within ``timeout``), and a second
        such close is `InvalidAuth`. Raises `SourceTimeout` when no frame
        arrives within ``timeout`` seconds, and the errors of `connect()`.
        """
        try:
            async with asyncio.timeout(timeout):
                try:
                    return await self._first_frame()
                except _ClosedBeforeFrame:
                    _LOGGER.debug(
                        "%s: closed after the login; trying once more", self.host
                    )
                    return await self._first_frame()
        except TimeoutError as err:
            raise SourceTimeout(
                f"no frame from {self.host} within {timeout:g} s"
            ) from err

    async def _first_frame(self) -> bytes:
        frames = self.connect()
        try:
            return await anext(frames)
        except StopAsyncIteration:  # pragma: no cover - connect() never ends so
            raise CannotConnect(f"{self.host} sent no frame") from None
        finally:
            await frames.aclose()
            self._connected_at = None
