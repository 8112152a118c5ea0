"""Tests for the Bambu Lab port-6000 source (sources/bambu_chamber.py).

Against the fake printer of printer_sim (a real TLS server on 127.0.0.1):
frames byte-identical however the bytes are cut, certificate capture and
pinning (no login ever reaches an unpinned peer), serial check, the wrong
access code heuristic, the error mapping, drops that force a reconnect, and
the connection discipline: never two sockets, none left when the consumer
stops, the close awaited, the access code never shown.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
import contextlib
from datetime import UTC, datetime, timedelta
import logging
import random
import ssl
import struct
import time
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
import pytest

from custom_components.printcam import sources
from custom_components.printcam.sources import bambu_chamber
from custom_components.printcam.sources.bambu_chamber import (
    DEFAULT_PORT,
    BambuChamberSource,
    PrinterCertificate,
    auth_packet,
    build_ssl_context,
    fetch_certificate,
    fingerprint,
    normalize_fingerprint,
)
from custom_components.printcam.sources.base import (
    Backoff,
    CameraPortClosed,
    CannotConnect,
    CertificateMismatch,
    InvalidAuth,
    InvalidSerial,
    ProtocolError,
    SourceError,
    SourceTimeout,
)
from printer_sim import TINY_JPEG, numbered_jpeg, with_comment
from printer_sim.bambu_server import BambuPrinter
from printer_sim.certs import make_certificate, server_context

from .conftest import started_printers
from .recorder import Recorder, drain, take

CODE = "Xy7Secre"
WRONG = "Wr0ngC0d"
SERIAL = "01P00A392800174"
WAIT = 5.0

PrinterFactory = Callable[..., Awaitable[BambuPrinter]]


@pytest.fixture
async def make_printer(socket_enabled: None) -> AsyncIterator[PrinterFactory]:
    """Start fake printers; close them (and wait for their sockets) afterwards."""
    async with started_printers(
        BambuPrinter, fps=100.0, serial=SERIAL, access_code=CODE
    ) as make:
        yield make


def make_source(printer: BambuPrinter, **kwargs: Any) -> BambuChamberSource:
    kwargs.setdefault("cert_sha256", printer.cert_sha256)
    kwargs.setdefault("port", printer.port)
    kwargs.setdefault("connect_timeout", 2.0)
    kwargs.setdefault("read_timeout", 2.0)
    serial = kwargs.pop("serial", printer.serial)
    code = kwargs.pop("access_code", CODE)
    source = BambuChamberSource(printer.host, serial, code, **kwargs)
    source.backoff = Backoff(initial=0.01, cap=0.05, rng=random.Random(1))
    return source


@pytest.fixture
def sockets(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The socket of every connection the source opens (to check them later)."""
    opened: list[Any] = []
    real = asyncio.open_connection

    async def spy(
        *args: Any, **kwargs: Any
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await real(*args, **kwargs)
        opened.append(writer.transport.get_extra_info("socket"))
        return reader, writer

    monkeypatch.setattr(bambu_chamber.asyncio, "open_connection", spy)
    return opened


def socket_closed(sock: Any) -> bool:
    """Return True when the socket's file descriptor is closed."""
    return bool(sock.fileno() == -1)


def jpeg_of_size(size: int) -> bytes:
    """Return a valid JPEG of exactly ``size`` bytes (COM segments as filler)."""
    body = TINY_JPEG
    while len(body) < size:
        filler = min(65533, size - len(body) - 4)
        assert filler >= 0
        body = with_comment(body, b"x" * filler)
    assert len(body) == size
    return body


# ---------------------------------------------------------------- streaming


@pytest.mark.parametrize("mode", ["good", "split", "one_client"])
async def test_frames_are_byte_identical(
    make_printer: PrinterFactory, mode: str
) -> None:
    printer = await make_printer(mode=mode)
    events = Recorder()
    source = make_source(printer, events=events)
    frames = await take(source, 5)
    assert frames == printer.connections[0].frames[:5]
    assert frames == [numbered_jpeg(n) for n in range(5)]
    await printer.wait_for(lambda p: p.open_connections == 0)
    assert printer.total_connections == 1
    assert printer.auth_packets == [auth_packet(CODE)]
    assert printer.concurrent_violations == 0
    assert events.events == [("connected",)]
    assert source.stats.connects == 1
    assert source.stats.dropped == 0
    assert source.peer_certificate == PrinterCertificate(
        printer.cert_sha256, SERIAL, printer.cert_der
    )


async def test_large_frames_and_the_size_limit(
    make_printer: PrinterFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = jpeg_of_size(1_000_000)
    printer = await make_printer(frames=[big, numbered_jpeg(1)])
    source = make_source(printer)
    assert await take(source, 3) == [big, numbered_jpeg(1), big]

    monkeypatch.setattr(bambu_chamber, "MAX_FRAME_SIZE", 1000)
    exact, over = jpeg_of_size(1000), jpeg_of_size(1001)
    printer = await make_printer(frames=[exact, over])
    events = Recorder()
    source = make_source(printer, events=events)
    frames: list[bytes] = []

    async def read_all() -> None:
        async with contextlib.aclosing(source.connect()) as stream:
            async for item in stream:
                frames.append(item)

    with pytest.raises(ProtocolError, match="1001 bytes"):
        await read_all()
    assert frames == [exact]
    assert events.events[-1] == ("dropped", 1, "oversize")
    assert source.stats.dropped == 1
    await printer.wait_for(lambda p: p.open_connections == 0)


async def test_slow_printer(make_printer: PrinterFactory) -> None:
    printer = await make_printer(mode="slow")
    assert await take(make_source(printer), 1) == printer.frames_sent[:1]


# ------------------------------------------------------------ certificates


async def test_fetch_certificate(make_printer: PrinterFactory) -> None:
    printer = await make_printer()
    cert = await fetch_certificate(printer.host, printer.port, timeout=2.0)
    assert cert.sha256 == printer.cert_sha256 == fingerprint(printer.cert_der)
    assert cert.common_name == SERIAL
    assert cert.der == printer.cert_der
    assert "der" not in repr(cert)
    # Handshake only: no login, and the connection is already gone.
    await printer.wait_for(lambda p: p.live_connections == [])
    assert printer.auth_packets == []
    assert printer.auth_missing == 1
    assert printer.connections[0].hung_up_by == "client"


async def test_fetch_certificate_errors(make_printer: PrinterFactory) -> None:
    printer = await make_printer(mode="refuse")
    with pytest.raises(CameraPortClosed):
        await fetch_certificate(printer.host, printer.port, timeout=2.0)
    await printer.accept()
    printer.set_mode("accept_hang")
    start = time.monotonic()
    with pytest.raises(SourceTimeout):
        await fetch_certificate(printer.host, printer.port, timeout=0.2)
    assert time.monotonic() - start < 1.5
    await printer.wait_for(lambda p: p.live_connections == [])


async def test_pinned_fingerprint_mismatch_sends_no_login(
    make_printer: PrinterFactory, sockets: list[Any]
) -> None:
    printer = await make_printer()
    pinned = printer.cert_sha256
    printer.regenerate_certificate()  # a reset or replaced printer
    events = Recorder()
    source = make_source(printer, cert_sha256=pinned, events=events)
    with pytest.raises(CertificateMismatch) as caught:
        await drain(source)
    err = caught.value
    assert err.reason == "cert_mismatch"
    assert err.expected == pinned
    assert err.presented == printer.cert_sha256
    assert isinstance(err, SourceError)
    assert not isinstance(err, CannotConnect)
    assert socket_closed(sockets[-1])
    with pytest.raises(CertificateMismatch):
        await source.fetch_frame(2.0)
    await printer.wait_for(lambda p: p.live_connections == [])
    # The access code never went to the unknown peer.
    assert printer.auth_packets == []
    assert all(record.auth_packet is None for record in printer.connections)
    assert printer.total_connections == 2
    assert events.events == []
    assert source.peer_certificate is None


async def test_fingerprint_pins_in_any_notation(make_printer: PrinterFactory) -> None:
    printer = await make_printer()
    sha = printer.cert_sha256
    colons = ":".join(sha[i : i + 2] for i in range(0, 64, 2)).upper()
    source = make_source(printer, cert_sha256=colons)
    assert source.cert_sha256 == sha
    assert len(await take(source, 1)) == 1
    assert normalize_fingerprint(f" {sha.upper()}\n") == sha


async def test_without_a_pin_the_certificate_is_captured(
    make_printer: PrinterFactory,
) -> None:
    printer = await make_printer()
    source = make_source(printer, cert_sha256=None)
    assert source.cert_sha256 is None
    assert await source.fetch_frame(2.0) == printer.frames_sent[0]
    assert source.peer_certificate is not None
    assert source.peer_certificate.sha256 == printer.cert_sha256
    assert source.peer_certificate.common_name == SERIAL


async def test_certificate_of_another_serial_is_invalid_serial(
    make_printer: PrinterFactory,
) -> None:
    printer = await make_printer(cert_cn="01P00A000000999")
    source = make_source(printer)
    with pytest.raises(InvalidSerial) as caught:
        await drain(source)
    assert caught.value.reason == "invalid_serial"
    assert caught.value.serial == SERIAL
    assert caught.value.common_name == "01P00A000000999"
    with pytest.raises(InvalidSerial):
        await source.fetch_frame(2.0)
    # Also when nothing is pinned: the serial check runs anyway.
    with pytest.raises(InvalidSerial):
        await drain(make_source(printer, cert_sha256=None))
    await printer.wait_for(lambda p: p.live_connections == [])
    assert printer.auth_packets == []
    # The serial compares case-insensitively.
    assert len(await take(make_source(printer, serial="01p00a000000999"), 1)) == 1


def _certificate_without_cn() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "BBL")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.DER)


def test_a_peer_without_certificate_is_a_protocol_error() -> None:
    class Writer:
        def get_extra_info(self, name: str) -> None:
            return None

    with pytest.raises(ProtocolError, match="no TLS certificate"):
        bambu_chamber._peer_der(Writer(), "printer:6000")  # type: ignore[arg-type]


def test_common_name_parsing() -> None:
    der = make_certificate("ABC").der
    assert bambu_chamber._common_name(der) == "ABC"
    assert bambu_chamber._common_name(_certificate_without_cn()) is None
    assert bambu_chamber._common_name(b"not a certificate") is None


# ------------------------------------------------------------- access code


async def test_wrong_code_is_cannot_connect_then_invalid_auth(
    make_printer: PrinterFactory,
) -> None:
    printer = await make_printer(access_code="87654321")
    events = Recorder()
    source = make_source(printer, events=events)
    disconnect = asyncio.Event()

    async def run() -> None:
        async with asyncio.timeout(WAIT):
            async for _ in source.frames(disconnect):
                pytest.fail("no frame expected")

    with pytest.raises(InvalidAuth, match="access code is wrong"):
        await run()
    first, second = events.errors()
    assert type(first) is bambu_chamber._ClosedBeforeFrame
    assert isinstance(first, CannotConnect)
    assert first.reason == "cannot_connect"
    assert "closed before the first frame" in str(first)
    assert isinstance(second, InvalidAuth)
    assert events.events[-1] == ("disconnected", second, None)
    assert printer.auth_failures == 2
    assert source.stats.last_error is not None
    assert source.stats.last_error.startswith("invalid_auth")
    await printer.wait_for(lambda p: p.live_connections == [])
    assert printer.max_open_connections == 1


@pytest.mark.parametrize("mode", ["wrong_code", "good"])
async def test_fetch_frame_with_a_wrong_code_is_invalid_auth(
    make_printer: PrinterFactory, mode: str
) -> None:
    printer = await make_printer(mode=mode)
    source = make_source(printer, access_code=CODE if mode == "wrong_code" else WRONG)
    with pytest.raises(InvalidAuth):
        await source.fetch_frame(WAIT)
    assert printer.auth_failures == 2
    assert printer.total_connections == 2
    assert not source.connected
    await printer.wait_for(lambda p: p.live_connections == [])
    assert printer.max_open_connections == 1


async def test_fetch_frame_retries_one_early_close(
    make_printer: PrinterFactory,
) -> None:
    printer = await make_printer(mode="wrong_code")
    events = Recorder()
    # The first connection is accepted in wrong_code mode; the retry is good.
    events.hook = lambda event: printer.set_mode("good")
    source = make_source(printer, events=events)
    assert await source.fetch_frame(WAIT) == printer.frames_sent[0]
    assert (printer.auth_failures, printer.auth_ok) == (1, 1)
    assert not source.connected


async def test_a_frame_or_another_error_resets_the_early_close_count(
    make_printer: PrinterFactory,
) -> None:
    printer = await make_printer(mode="wrong_code")
    source = make_source(printer)
    with pytest.raises(CannotConnect, match="before the first frame"):
        await drain(source)
    printer.set_mode("good")
    await take(source, 1)
    printer.set_mode("wrong_code")
    with pytest.raises(CannotConnect, match="before the first frame"):
        await drain(source)
    printer.set_mode("stall")
    with pytest.raises(SourceTimeout):
        await drain(make_source(printer, read_timeout=0.05))
    with pytest.raises(SourceTimeout):
        await drain(source := make_source(printer, read_timeout=0.05))
    printer.set_mode("wrong_code")
    with pytest.raises(CannotConnect, match="before the first frame"):
        await drain(source)
    with pytest.raises(InvalidAuth):
        await drain(source)
    # Consecutive: stays InvalidAuth while the printer keeps hanging up.
    with pytest.raises(InvalidAuth, match="3 times"):
        await drain(source)


async def test_a_late_close_before_any_frame_is_not_a_wrong_code(
    make_printer: PrinterFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bambu_chamber, "AUTH_REJECT_WINDOW", -1.0)
    printer = await make_printer(mode="wrong_code")
    source = make_source(printer)
    for _ in range(3):
        with pytest.raises(CannotConnect, match="s after the login") as caught:
            await drain(source)
        assert not isinstance(caught.value, InvalidAuth)


def test_auth_packet_layout() -> None:
    packet = auth_packet("12345678")
    assert len(packet) == 80
    assert struct.unpack("<IIII", packet[:16]) == (0x40, 0x3000, 0, 0)
    assert packet[16:48] == b"bblp" + b"\0" * 28
    assert packet[48:80] == b"12345678" + b"\0" * 24
    with pytest.raises(ValueError, match="32 bytes"):
        auth_packet("x" * 33)


async def test_an_impossible_access_code_never_connects(
    make_printer: PrinterFactory,
) -> None:
    printer = await make_printer()
    source = make_source(printer, access_code="x" * 33)
    with pytest.raises(InvalidAuth, match="longer than 32 bytes"):
        await source.fetch_frame(WAIT)
    assert printer.total_connections == 0


# ------------------------------------------------------------------ errors


async def test_refused_port_is_camera_port_closed(
    make_printer: PrinterFactory,
) -> None:
    printer = await make_printer()
    printer.refuse()
    source = make_source(printer)
    with pytest.raises(CameraPortClosed) as caught:
        await drain(source)
    assert caught.value.reason == "camera_port_closed"
    assert isinstance(caught.value, CannotConnect)
    with pytest.raises(CameraPortClosed):
        await source.fetch_frame(2.0)


async def test_accept_hang_times_out_within_the_connect_timeout(
    make_printer: PrinterFactory,
) -> None:
    printer = await make_printer(mode="accept_hang")
    source = make_source(printer, connect_timeout=0.2)
    start = time.monotonic()
    with pytest.raises(SourceTimeout, match="did not answer within 0.2 s"):
        await drain(source)
    assert 0.15 < time.monotonic() - start < 1.5
    # The half-open connection is gone (closed on our side first).
    await printer.wait_for(lambda p: p.live_connections == [])
    assert printer.connections[0].hung_up_by == "client"


async def test_stall_times_out_after_the_read_timeout(
    make_printer: PrinterFactory,
) -> None:
    printer = await make_printer(mode="stall")
    events = Recorder()
    source = make_source(printer, read_timeout=0.2, events=events)
    start = time.monotonic()
    with pytest.raises(SourceTimeout, match="no data"):
        await drain(source)
    assert 0.15 < time.monotonic() - start < 1.5
    assert events.events == [("connected",)]
    await printer.wait_for(lambda p: p.live_connections == [])
    # fetch_frame's own bound wins when it is shorter.
    source = make_source(printer, read_timeout=5.0)
    with pytest.raises(SourceTimeout, match="no frame from .* within 0.2 s"):
        await source.fetch_frame(0.2)
    assert not source.connected


async def test_tls_failures_are_cannot_connect(socket_enabled: None) -> None:
    accepted: list[asyncio.StreamWriter] = []

    async def not_tls(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        accepted.append(writer)
        writer.write(b"HTTP/1.0 400 Bad Request\r\n\r\n" * 10)
        writer.close()

    server = await asyncio.start_server(not_tls, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        source = BambuChamberSource(
            "127.0.0.1", SERIAL, CODE, cert_sha256=None, port=port
        )
        with pytest.raises(CannotConnect, match="TLS handshake with 127.0.0.1"):
            await drain(source)
        with pytest.raises(CannotConnect, match="cannot connect to"):
            await drain(
                BambuChamberSource(
                    "127.0.0.1", SERIAL, CODE, cert_sha256=None, port=70000
                )
            )
    finally:
        server.close()
        for writer in accepted:
            writer.close()
        async with asyncio.timeout(WAIT):
            await server.wait_closed()


class CannedTls:
    """A raw TLS server: reads the login, writes canned bytes, then closes."""

    def __init__(self, reply: bytes, *, reset: bool = False) -> None:
        self._reply = reply
        self._reset = reset
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.certificate = make_certificate(SERIAL)
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._handle, "127.0.0.1", 0, ssl=server_context(self.certificate)
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def _handle(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await reader.readexactly(80)
            writer.write(self._reply)
            await writer.drain()
            if self._reset:
                writer.transport.abort()
                return
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self._tasks.discard(task)
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()

    def source(self) -> BambuChamberSource:
        return BambuChamberSource(
            "127.0.0.1",
            SERIAL,
            CODE,
            cert_sha256=self.certificate.sha256,
            port=self.port,
            read_timeout=2.0,
        )

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        async with asyncio.timeout(WAIT):
            while self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._server.wait_closed()


@pytest.fixture
async def canned(
    socket_enabled: None,
) -> AsyncIterator[Callable[..., Awaitable[CannedTls]]]:
    servers: list[CannedTls] = []

    async def make(reply: bytes, **kwargs: Any) -> CannedTls:
        server = CannedTls(reply, **kwargs)
        await server.start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        await server.close()


def frame(payload: bytes) -> bytes:
    return struct.pack("<IIII", len(payload), 0, 1, 0) + payload


async def test_hang_ups_at_every_point(
    canned: Callable[..., Awaitable[CannedTls]],
) -> None:
    jpeg = numbered_jpeg(7)
    # After a frame: the stream ended.
    server = await canned(frame(jpeg))
    frames: list[bytes] = []

    async def read_into(source: BambuChamberSource) -> None:
        async with contextlib.aclosing(source.connect()) as stream:
            async for item in stream:
                frames.append(item)

    with pytest.raises(CannotConnect, match="closed the connection$"):
        await read_into(server.source())
    assert frames == [jpeg]
    # In a header, in a payload.
    for reply in (frame(jpeg)[:9], frame(jpeg)[:16], frame(jpeg)[:40]):
        server = await canned(reply)
        with pytest.raises(CannotConnect, match="mid-frame"):
            await drain(server.source())
    # Reset after a frame.
    server = await canned(frame(jpeg), reset=True)
    frames.clear()
    with pytest.raises(CannotConnect) as caught:
        await read_into(server.source())
    assert not isinstance(caught.value, InvalidAuth)
    assert frames == [jpeg]


async def test_read_maps_stream_errors(socket_enabled: None) -> None:
    source = BambuChamberSource("127.0.0.1", SERIAL, CODE, cert_sha256=None)
    reader = asyncio.StreamReader()
    reader.set_exception(ConnectionResetError(104, "Connection reset by peer"))
    with pytest.raises(bambu_chamber._HungUp, match="Connection reset by peer"):
        await source._read(reader, 16)
    reader = asyncio.StreamReader()
    reader.feed_data(b"abc")
    reader.feed_eof()
    with pytest.raises(CannotConnect, match="mid-frame"):
        await source._read(reader, 16)
    reader = asyncio.StreamReader()
    reader.feed_eof()
    with pytest.raises(bambu_chamber._HungUp):
        await source._read(reader, 16)


# ------------------------------------------------------- drops and reconnect


async def run_until_dropped_then_good(
    printer: BambuPrinter, source: BambuChamberSource, events: Recorder, drops: int
) -> list[bytes]:
    """Run frames() until ``drops`` drops, switch the printer to good, take 3."""
    disconnect = asyncio.Event()
    frames: list[bytes] = []

    async def consume() -> None:
        async with contextlib.aclosing(source.frames(disconnect)) as stream:
            async for item in stream:
                frames.append(item)
                if len(frames) == 3:
                    return

    task = asyncio.get_running_loop().create_task(consume())
    try:
        await events.wait_for(lambda e: e.count("dropped") >= drops)
        printer.set_mode("good")
        async with asyncio.timeout(WAIT):
            await asyncio.shield(task)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return frames


@pytest.mark.parametrize(
    ("mode", "reasons"),
    [
        ("oversize", {"oversize"}),
        ("zero_size", {"empty"}),
        ("bad_markers", {"not_jpeg"}),
        ("garbage", {"oversize", "not_jpeg", "empty"}),
    ],
)
async def test_bad_frames_are_dropped_and_reconnected(
    make_printer: PrinterFactory, mode: str, reasons: set[str]
) -> None:
    printer = await make_printer(mode=mode)
    events = Recorder()
    source = make_source(printer, events=events)
    frames = await run_until_dropped_then_good(printer, source, events, drops=2)
    good = [record for record in printer.connections if record.mode == "good"]
    assert good
    assert frames == good[0].frames[:3]
    dropped = [event for event in events.events if event[0] == "dropped"]
    assert len(dropped) >= 2
    assert {event[1] for event in dropped} == {1}
    assert {event[2] for event in dropped} <= reasons
    assert source.stats.dropped == len(dropped)
    errors = events.errors()
    assert len(errors) >= 2
    assert all(isinstance(error, ProtocolError) for error in errors[:2])
    # Each drop closed its connection before the next one opened.
    await printer.wait_for(lambda p: p.live_connections == [])
    assert printer.max_open_connections == 1
    assert source.stats.frames == 3


async def test_reconnect_loop_never_opens_two_connections(
    make_printer: PrinterFactory, sockets: list[Any]
) -> None:
    printer = await make_printer(mode="one_client")
    events = Recorder()
    source = make_source(printer, events=events)
    disconnect = asyncio.Event()
    frames: list[bytes] = []
    async with (
        asyncio.timeout(WAIT),
        contextlib.aclosing(source.frames(disconnect)) as stream,
    ):
        async for item in stream:
            frames.append(item)
            if len(frames) % 3 == 0:
                # Printer-side hang-ups, then a drop by a bad frame.
                if len(frames) in (3, 6):
                    assert printer.drop_all() == 1
                elif len(frames) == 9:
                    # The next connection sends a bad frame; the one after
                    # that is good again.
                    printer.set_mode("bad_markers")
                    events.hook = lambda event: (
                        event[0] == "dropped" and printer.set_mode("one_client")
                    )
                    assert printer.drop_all() == 1
                elif len(frames) >= 15:
                    break
    # aclose() returned: the socket is closed already, not just asked to.
    assert all(socket_closed(sock) for sock in sockets)
    await printer.wait_for(lambda p: p.live_connections == [])
    assert printer.concurrent_violations == 0
    assert printer.max_open_connections == 1
    assert printer.total_connections >= 4
    assert len(sockets) == printer.total_connections
    disconnects = events.errors()
    assert any(
        isinstance(e, CannotConnect) and "closed the connection" in str(e)
        for e in disconnects
    )
    assert any(isinstance(e, ProtocolError) for e in disconnects)


async def test_disconnect_event_ends_frames(make_printer: PrinterFactory) -> None:
    printer = await make_printer()
    source = make_source(printer)
    disconnect = asyncio.Event()
    count = 0
    async with asyncio.timeout(WAIT):
        async for _ in source.frames(disconnect):
            count += 1
            if count == 2:
                disconnect.set()
    assert count == 2
    await printer.wait_for(lambda p: p.live_connections == [])


async def test_aclose_mid_stream_closes_and_awaits(
    make_printer: PrinterFactory, sockets: list[Any]
) -> None:
    printer = await make_printer()
    source = make_source(printer)
    stream = source.connect()
    assert await anext(stream) == printer.frames_sent[0]
    await stream.aclose()
    assert socket_closed(sockets[0])
    # Our close_notify reached the printer before our close finished.
    assert printer.open_connections == 0
    await printer.wait_for(lambda p: p.live_connections == [])
    assert printer.connections[0].hung_up_by == "client"


@pytest.mark.parametrize("mode", ["good", "stall", "accept_hang"])
async def test_cancelling_the_consumer_closes_the_connection(
    make_printer: PrinterFactory, sockets: list[Any], mode: str
) -> None:
    printer = await make_printer(mode=mode)
    source = make_source(printer, read_timeout=30.0, connect_timeout=30.0)
    got_frame = asyncio.Event()

    async def consume() -> None:
        async for _ in source.frames(asyncio.Event()):
            got_frame.set()

    task = asyncio.get_running_loop().create_task(consume())
    if mode == "good":
        async with asyncio.timeout(WAIT):
            await got_frame.wait()
    else:
        await printer.wait_for(
            lambda p: p.auth_ok == 1 if mode == "stall" else p.open_connections == 1
        )
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert all(socket_closed(sock) for sock in sockets)
    await printer.wait_for(lambda p: p.live_connections == [])
    assert printer.total_connections == 1
    assert not source.connected


async def test_close_writer_aborts_when_the_shutdown_hangs_or_is_cancelled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Transport:
        aborted = 0

        def abort(self) -> None:
            self.aborted += 1

    class Writer:
        def __init__(self, error: BaseException | None = None) -> None:
            self.transport = Transport()
            self.closed = False
            self.error = error
            self.waiting = asyncio.Event()

        def close(self) -> None:
            self.closed = True

        async def wait_closed(self) -> None:
            self.waiting.set()
            if self.error is not None:
                raise self.error
            await asyncio.Event().wait()  # a peer that never finishes

    monkeypatch.setattr(bambu_chamber, "CLOSE_TIMEOUT", 0.05)
    hanging = Writer()
    await bambu_chamber._close_writer(hanging)  # type: ignore[arg-type]
    assert hanging.closed
    assert hanging.transport.aborted == 1

    failing = Writer(ssl.SSLError("bad record mac"))
    await bambu_chamber._close_writer(failing)  # type: ignore[arg-type]
    assert failing.transport.aborted == 1

    monkeypatch.setattr(bambu_chamber, "CLOSE_TIMEOUT", 30.0)
    cancelled = Writer()
    task = asyncio.get_running_loop().create_task(
        bambu_chamber._close_writer(cancelled)  # type: ignore[arg-type]
    )
    await cancelled.waiting.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cancelled.transport.aborted == 1


# ------------------------------------------------------ secrets and basics


async def test_the_access_code_never_shows(
    make_printer: PrinterFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "S3cr3t!9"
    printer = await make_printer(access_code=secret)
    seen: list[str] = []

    def note(err: BaseException) -> None:
        seen.extend((str(err), repr(err), str(err.args)))

    source = make_source(printer, access_code=secret)
    seen += [source.host, repr(source)]
    for mode in ("wrong_code", "oversize", "bad_markers", "zero_size", "stall"):
        printer.set_mode(mode)
        with pytest.raises(SourceError) as caught:
            await drain(make_source(printer, access_code=secret, read_timeout=0.1))
        note(caught.value)
    printer.set_mode("good")
    with pytest.raises(InvalidAuth) as caught:
        await make_source(printer, access_code="00000000").fetch_frame(WAIT)
    note(caught.value)
    with pytest.raises(CertificateMismatch) as caught:
        await drain(make_source(printer, access_code=secret, cert_sha256="00" * 32))
    note(caught.value)
    printer.refuse()
    with pytest.raises(CameraPortClosed) as caught:
        await source.fetch_frame(WAIT)
    note(caught.value)
    seen.append(str(source.stats.last_error))
    assert printer.auth_packets  # the code did travel, in the login only
    for text in [*seen, caplog.text]:
        assert secret not in text
        assert secret.encode().hex() not in text


async def test_ssl_context_is_built_once_per_source(
    make_printer: PrinterFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    context = build_ssl_context()
    assert context.check_hostname is False
    assert context.verify_mode == ssl.CERT_NONE
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert not context.verify_flags & ssl.VERIFY_X509_STRICT
    assert context.get_ca_certs() == []

    built: list[ssl.SSLContext] = []

    def counting() -> ssl.SSLContext:
        built.append(build_ssl_context())
        return built[-1]

    monkeypatch.setattr(bambu_chamber, "build_ssl_context", counting)
    printer = await make_printer()
    source = make_source(printer)
    await take(source, 1)
    await take(source, 1)
    assert await source.fetch_frame(WAIT)
    assert len(built) == 1


def test_host_repr_and_exports() -> None:
    source = BambuChamberSource("192.168.1.20", SERIAL, CODE, cert_sha256=None)
    assert source.host == f"192.168.1.20:{DEFAULT_PORT}"
    assert source.family == "bambu"
    assert source.serial == SERIAL
    assert repr(source) == f"<BambuChamberSource 192.168.1.20:6000 serial={SERIAL}>"
    assert (
        BambuChamberSource("fe80::1", SERIAL, CODE, cert_sha256=None, port=7).host
        == "[fe80::1]:7"
    )
    assert CODE not in repr(source) + source.host
    assert sources.CameraPortClosed is CameraPortClosed
    assert sources.CertificateMismatch is CertificateMismatch
    assert sources.InvalidSerial is InvalidSerial
    assert CameraPortClosed.reason == "camera_port_closed"
    assert CertificateMismatch.reason == "cert_mismatch"
    assert InvalidSerial.reason == "invalid_serial"
