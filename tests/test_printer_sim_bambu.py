"""Tests for the fake Bambu Lab port-6000 camera (printer_sim/bambu_server.py).

Raw TLS clients (not the integration's source) check the bytes of the
protocol per mode, the counters (a connection that hangs up before or
during the handshake too), close() waiting for every connection, the
one-client and max-clients behaviour, refuse/accept on the same port and
certificate regeneration.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
import contextlib
from datetime import UTC, datetime, timedelta
import hashlib
import ssl
import struct

from cryptography import x509
from cryptography.x509.oid import NameOID
import pytest

from printer_sim import bambu_server, numbered_jpeg
from printer_sim.bambu_server import BambuConnection, BambuPrinter
from printer_sim.certs import make_certificate, server_context

from .conftest import started_printers

PrinterFactory = Callable[..., Awaitable[BambuPrinter]]
CODE = "12345678"
HEADER = struct.Struct("<IIII")


@pytest.fixture
async def make_printer(socket_enabled: None) -> AsyncIterator[PrinterFactory]:
    """Start fake printers; close them (and wait for their sockets) afterwards."""
    async with started_printers(BambuPrinter, fps=100.0) as make:
        yield make


def client_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def login_packet(code: str = CODE, user: bytes = b"bblp") -> bytes:
    """The 80-byte login, built here independently of the integration."""
    return (
        struct.pack("<IIII", 0x40, 0x3000, 0, 0)
        + user.ljust(32, b"\0")
        + code.encode().ljust(32, b"\0")
    )


@contextlib.asynccontextmanager
async def tls_client(
    printer: BambuPrinter, code: str | None = CODE
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """Connect with TLS, send the login (unless ``code`` is None), close after."""
    reader, writer = await asyncio.open_connection(
        printer.host, printer.port, ssl=client_context()
    )
    try:
        if code is not None:
            writer.write(login_packet(code))
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            async with asyncio.timeout(5):
                await writer.wait_closed()


async def read_frame(reader: asyncio.StreamReader) -> tuple[tuple[int, ...], bytes]:
    async with asyncio.timeout(5):
        header = HEADER.unpack(await reader.readexactly(HEADER.size))
        return header, await reader.readexactly(header[0])


async def nothing_arrives(reader: asyncio.StreamReader, within: float = 0.2) -> bool:
    """Return True when no byte arrives within ``within`` seconds."""
    try:
        async with asyncio.timeout(within):
            await reader.read(1)
    except TimeoutError:
        return True
    return False


# ---------------------------------------------------------------- protocol


async def test_good_mode_bytes(make_printer: PrinterFactory) -> None:
    printer = await make_printer()
    async with tls_client(printer) as (reader, _):
        received = [await read_frame(reader) for _ in range(3)]
    assert [header for header, _ in received] == [
        (len(numbered_jpeg(n)), 0, 1, 0) for n in range(3)
    ]
    assert [payload for _, payload in received] == [numbered_jpeg(n) for n in range(3)]
    await printer.wait_for(lambda p: p.open_connections == 0)
    record = printer.connections[0]
    assert record.frames == printer.frames_sent[: len(record.frames)]
    assert printer.frames_sent[:3] == [numbered_jpeg(n) for n in range(3)]
    assert record.auth_packet == login_packet()
    assert printer.auth_packets == [login_packet()]
    assert record.authenticated
    assert printer.auth_ok == 1
    assert printer.handshakes == 1
    assert record.handshake == "done"
    assert record.hung_up_by == "client"
    assert printer.status()["frames_sent"] == printer.frames_count >= 3


@pytest.mark.parametrize(
    "packet",
    [
        login_packet("87654321"),
        login_packet(CODE, user=b"root"),
        struct.pack("<IIII", 0x40, 0x3001, 0, 0) + login_packet()[16:],
    ],
    ids=["wrong_code", "wrong_user", "wrong_type"],
)
async def test_a_bad_login_is_answered_by_hanging_up(
    make_printer: PrinterFactory, packet: bytes
) -> None:
    printer = await make_printer()
    async with tls_client(printer, code=None) as (reader, writer):
        writer.write(packet)
        assert await reader.read() == b""
    await printer.wait_for(lambda p: p.live_connections == [])
    assert printer.auth_failures == 1
    assert printer.auth_ok == 0
    assert printer.frames_sent == []
    assert printer.connections[0].hung_up_by == "server"


async def test_wrong_code_mode_refuses_the_right_code(
    make_printer: PrinterFactory,
) -> None:
    printer = await make_printer(mode="wrong_code", access_code="abcdefgh")
    async with tls_client(printer, "abcdefgh") as (reader, _):
        assert await reader.read() == b""
    assert printer.auth_failures == 1
    printer.set_mode("good")
    async with tls_client(printer, "abcdefgh") as (reader, _):
        assert (await read_frame(reader))[1] == printer.frames_sent[0]


async def test_split_mode_sends_tiny_pieces(make_printer: PrinterFactory) -> None:
    printer = await make_printer(mode="split")
    async with tls_client(printer) as (reader, _):
        data = b""
        reads = 0
        async with asyncio.timeout(5):
            while (
                len(data) < HEADER.size
                or len(data) < HEADER.size + HEADER.unpack(data[: HEADER.size])[0]
            ):
                chunk = await reader.read(65536)
                assert chunk
                data += chunk
                reads += 1
    frame = printer.frames_sent[0]
    assert data[: HEADER.size + len(frame)] == HEADER.pack(len(frame), 0, 1, 0) + frame
    # The header alone took several reads: the pieces really arrive apart.
    assert reads > 3


async def test_broken_modes_bytes(make_printer: PrinterFactory) -> None:
    printer = await make_printer(mode="oversize")
    async with tls_client(printer) as (reader, _):
        header = HEADER.unpack(await reader.readexactly(HEADER.size))
        assert header == (5 * 1024 * 1024, 0, 1, 0)
        assert len(await reader.readexactly(4096)) == 4096
        assert await nothing_arrives(reader)

    printer.set_mode("zero_size")
    async with tls_client(printer) as (reader, _):
        assert await reader.readexactly(32) == HEADER.pack(0, 0, 1, 0) * 2

    printer.set_mode("bad_markers")
    async with tls_client(printer) as (reader, _):
        (size, *_), payload = await read_frame(reader)
        assert size == len(payload) > 4
        assert not payload.startswith(b"\xff\xd8")
        assert not payload.endswith(b"\xff\xd9")
        assert payload[2:-2] in {numbered_jpeg(n)[2:-2] for n in range(5)}

    printer.set_mode("garbage")
    async with tls_client(printer) as (reader, _):
        data = await reader.readexactly(2048)
        assert HEADER.unpack(data[:16])[1:] != (0, 1, 0)

    assert printer.frames_sent == []
    assert printer.bad_frames_sent >= 5
    assert printer.auth_ok == 4


async def test_stall_and_slow_modes(make_printer: PrinterFactory) -> None:
    printer = await make_printer(mode="stall")
    async with tls_client(printer) as (reader, _):
        await printer.wait_for(lambda p: p.auth_ok == 1)
        assert await nothing_arrives(reader)
    printer.set_mode("slow")
    async with tls_client(printer) as (reader, _):
        _, first = await read_frame(reader)
        assert first == printer.frames_sent[0]
        # The next one is 5 s away.
        assert await nothing_arrives(reader)
    await printer.wait_for(lambda p: p.open_connections == 0)
    assert printer.frames_count == 1


async def test_accept_hang_never_answers_the_handshake(
    make_printer: PrinterFactory,
) -> None:
    printer = await make_printer(mode="accept_hang")
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            await asyncio.open_connection(
                printer.host, printer.port, ssl=client_context()
            )
    await printer.wait_for(lambda p: p.live_connections == [])
    record = printer.connections[0]
    assert record.handshake == "never"
    assert record.hung_up_by == "client"
    assert printer.handshakes == 0
    # While it hangs, close() still ends it.
    _, writer = await asyncio.open_connection(printer.host, printer.port)
    writer.write(b"\x16\x03\x01 not really a ClientHello")
    await printer.wait_for(lambda p: p.open_connections == 1)
    await printer.close()
    assert printer.live_connections == []
    assert printer.connections[1].hung_up_by == "server"
    writer.close()


async def test_frames_from_a_sequence_or_a_function(
    make_printer: PrinterFactory,
) -> None:
    frames = [numbered_jpeg(10), numbered_jpeg(11)]
    printer = await make_printer(frames=frames)
    async with tls_client(printer) as (reader, _):
        received = [(await read_frame(reader))[1] for _ in range(3)]
    assert received == [frames[0], frames[1], frames[0]]

    printer = await make_printer(frames=lambda n: numbered_jpeg(n * 2))
    async with tls_client(printer) as (reader, _):
        received = [(await read_frame(reader))[1] for _ in range(2)]
    assert received == [numbered_jpeg(0), numbered_jpeg(2)]

    printer = await make_printer(record_frames=False)
    async with tls_client(printer) as (reader, _):
        await read_frame(reader)
    assert printer.frames_sent == []
    assert printer.frames_count >= 1


# ------------------------------------------------------------- connections


async def test_counts_a_connection_that_hangs_up_before_the_handshake(
    make_printer: PrinterFactory,
) -> None:
    printer = await make_printer()
    _, writer = await asyncio.open_connection(printer.host, printer.port)
    writer.close()
    await writer.wait_closed()
    await printer.wait_for(lambda p: p.total_connections == 1)
    await printer.wait_for(lambda p: p.live_connections == [])
    record = printer.connections[0]
    assert record.hung_up_by == "client"
    assert record.handshake == "failed"
    assert printer.handshake_failures == 1
    assert printer.max_open_connections == 1


async def test_counts_a_connection_that_hangs_up_after_the_handshake(
    make_printer: PrinterFactory,
) -> None:
    printer = await make_printer()
    async with tls_client(printer, code=None):
        await printer.wait_for(lambda p: p.handshakes == 1)
    await printer.wait_for(lambda p: p.live_connections == [])
    assert printer.auth_missing == 1
    assert printer.auth_packets == []
    assert printer.connections[0].auth_packet is None
    assert printer.connections[0].hung_up_by == "client"


async def test_close_closes_every_kind_of_connection_and_waits(
    make_printer: PrinterFactory,
) -> None:
    printer = await make_printer()
    # Stalled in the handshake (sends nothing), logged in but paused, streaming.
    raw_reader, raw_writer = await asyncio.open_connection(printer.host, printer.port)
    async with (
        tls_client(printer, code=None) as (silent_reader, _),
        tls_client(printer) as (stream_reader, _),
    ):
        await printer.wait_for(lambda p: p.frames_count >= 1)
        printer.pause()
        assert printer.paused
        await printer.wait_for(lambda p: p.open_connections == 3)

        await printer.close()

        assert printer.open_connections == 0
        assert printer.live_connections == []
        assert all(r.hung_up_by == "server" for r in printer.connections)
        assert await raw_reader.read() == b""
        assert await silent_reader.read() == b""
        await stream_reader.read()  # EOF after whatever was sent
    raw_writer.close()
    with pytest.raises(OSError):
        await asyncio.open_connection(printer.host, printer.port)
    # Closing twice is harmless.
    await printer.close()


async def test_close_aborts_a_client_that_never_finishes_the_tls_shutdown(
    make_printer: PrinterFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bambu_server, "_ABORT_AFTER", 0.05)
    printer = await make_printer()
    async with tls_client(printer) as (reader, writer):
        await printer.wait_for(lambda p: p.frames_count >= 1)
        # The client stops reading: its TCP window fills, no close_notify
        # exchange can finish.
        writer.transport.pause_reading()
        await printer.wait_for(lambda p: p.frames_count >= 3)
        await printer.close()
        assert printer.live_connections == []
        assert printer.connections[0].hung_up_by == "server"
        writer.transport.abort()
        del reader


async def test_close_reports_a_connection_that_never_closes(
    make_printer: PrinterFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    printer = await make_printer()
    monkeypatch.setattr(bambu_server, "CLOSE_TIMEOUT", 0.1)
    monkeypatch.setattr(bambu_server, "_ABORT_AFTER", 0.05)
    printer.connections.append(BambuConnection(index=99, mode="good", peer="ghost"))
    with pytest.raises(AssertionError, match="ghost"):
        await printer.close()
    printer.connections.clear()


async def test_wait_for_times_out_with_the_state(make_printer: PrinterFactory) -> None:
    printer = await make_printer()
    with pytest.raises(AssertionError, match="total_connections"):
        await printer.wait_for(lambda p: p.total_connections == 5, timeout=0.05)


async def test_one_client_records_a_second_concurrent_connection(
    make_printer: PrinterFactory,
) -> None:
    printer = await make_printer(mode="one_client")
    async with tls_client(printer) as (reader, _):
        await read_frame(reader)
    await printer.wait_for(lambda p: p.open_connections == 0)
    async with tls_client(printer) as (reader, _):
        await read_frame(reader)
    await printer.wait_for(lambda p: p.open_connections == 0)
    assert printer.concurrent_violations == 0
    assert printer.max_open_connections == 1

    async with tls_client(printer) as (first, _), tls_client(printer) as (second, _):
        await read_frame(first)
        await read_frame(second)  # served anyway: the test asserts the counter
    assert printer.concurrent_violations == 1
    assert printer.max_open_connections == 2


async def test_max_clients_stalls_the_extra_connection(
    make_printer: PrinterFactory,
) -> None:
    printer = await make_printer(max_clients=2)
    async with (
        tls_client(printer) as (first, _),
        tls_client(printer) as (second, _),
        tls_client(printer) as (third, _),
    ):
        await read_frame(first)
        await read_frame(second)
        await printer.wait_for(lambda p: p.auth_ok == 3)
        assert await nothing_arrives(third)
    assert printer.over_limit_connections == 1
    assert printer.connections[2].over_limit
    assert printer.connections[2].frames == []


async def test_pause_resume_and_drop_all(make_printer: PrinterFactory) -> None:
    printer = await make_printer()
    async with tls_client(printer) as (reader, _):
        await read_frame(reader)
        printer.pause()
        sent = printer.frames_count
        # Whatever was in flight, then nothing.
        async with asyncio.timeout(5):
            while not await nothing_arrives(reader, 0.1):
                pass
        assert printer.frames_count <= sent + 1
        printer.resume()
        assert not printer.paused
        await printer.wait_for(lambda p: p.frames_count >= sent + 3)
        assert printer.drop_all() == 1
        await reader.read()  # the rest, then EOF
        assert printer.drop_all() == 0
    await printer.wait_for(lambda p: p.live_connections == [])
    assert printer.connections[0].hung_up_by == "server"


async def test_refuse_and_accept_on_the_same_port(make_printer: PrinterFactory) -> None:
    printer = await make_printer()
    port = printer.port
    printer.refuse()
    printer.refuse()  # idempotent
    assert not printer.listening
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection(printer.host, port)
    await printer.accept()
    await printer.accept()  # idempotent
    assert printer.port == port
    async with tls_client(printer) as (reader, _):
        await read_frame(reader)
    printer.set_mode("refuse")
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection(printer.host, port)
    await printer.accept()
    printer.set_mode("good")
    async with tls_client(printer) as (reader, _):
        await read_frame(reader)
    with pytest.raises(RuntimeError):
        await printer.start()

    refusing = await make_printer(mode="refuse")
    assert refusing.port
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection(refusing.host, refusing.port)


async def test_certificate_and_regeneration(make_printer: PrinterFactory) -> None:
    printer = await make_printer(serial="01S00C123456789")
    first = printer.cert_sha256
    assert first == hashlib.sha256(printer.cert_der).hexdigest()
    assert len(first) == 64
    assert first == first.lower()

    async def presented() -> bytes:
        async with tls_client(printer, code=None) as (_, writer):
            der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
            assert isinstance(der, bytes)
            return der

    assert await presented() == printer.cert_der
    cert = x509.load_der_x509_certificate(printer.cert_der)
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert cn == "01S00C123456789"
    now = datetime.now(UTC)
    assert cert.not_valid_before_utc < now - timedelta(hours=23)
    assert cert.not_valid_after_utc > now + timedelta(days=3600)

    second = printer.regenerate_certificate()
    assert second == printer.cert_sha256 != first
    assert await presented() == printer.cert_der
    cert = x509.load_der_x509_certificate(printer.cert_der)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == cn

    other = await make_printer(cert_cn="SOMEONE-ELSE")
    assert other.certificate.common_name == "SOMEONE-ELSE"
    assert other.serial == "01P00A000000001"


def test_certs_module() -> None:
    certificate = make_certificate("X1", valid_days=1)
    assert certificate.sha256 == hashlib.sha256(certificate.der).hexdigest()
    assert "X1" in repr(certificate)
    assert b"PRIVATE KEY" not in repr(certificate).encode()
    context = server_context(certificate)
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2


async def test_async_context_manager(socket_enabled: None) -> None:
    async with (
        BambuPrinter(fps=100.0) as printer,
        tls_client(printer) as (reader, _),
    ):
        await read_frame(reader)
    assert printer.live_connections == []


async def test_before_start_and_bad_arguments() -> None:
    printer = BambuPrinter()
    with pytest.raises(RuntimeError):
        await printer.accept()
    with pytest.raises(RuntimeError):
        _ = printer.cert_sha256
    with pytest.raises(ValueError):
        BambuPrinter(fps=0)
    with pytest.raises(ValueError):
        BambuPrinter(mode="nonsense")
    with pytest.raises(ValueError):
        BambuPrinter(max_clients=0)
    with pytest.raises(ValueError):
        printer.set_mode("nonsense")
