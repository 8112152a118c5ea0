"""Tests for the fake printers in printer_sim (the tools other tests rely on).

The fake must count connections exactly (also one that never sends a
request), wait on close, produce the documented bytes per mode, enforce its
client limit and refuse/accept on the same port; its JPEGs must decode.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
import contextlib
import hashlib
import io
import json
import zlib

import aiohttp
from PIL import Image
import pytest

from printer_sim import (
    TINY_JPEG,
    ConnectionRecord,
    MjpegPrinter,
    block_jpeg,
    frame_number,
    mjpeg_server,
    numbered_jpeg,
    self_signed_ssl_context,
    solid_jpeg,
    with_comment,
)

PrinterFactory = Callable[..., Awaitable[MjpegPrinter]]
PASSWORD = "p4ss"


async def raw_get(
    printer: MjpegPrinter,
    path: str,
    *,
    parts: int | None = None,
    limit: int = 2**16,
) -> tuple[bytes, bytes]:
    """Send an HTTP/1.0 request; return (head, body).

    The body is read to EOF, or until it holds ``parts`` complete parts (the
    delimiter after them has arrived). HTTP/1.0 keeps the body free of chunk
    framing, so it shows the exact bytes of the multipart stream.
    """
    reader, writer = await asyncio.open_connection(
        printer.host, printer.port, limit=limit
    )
    try:
        writer.write(f"GET {path} HTTP/1.0\r\nHost: x\r\n\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        if parts is None:
            return head, await reader.read()
        body = b""
        while body.count(b"--frame") <= parts:
            chunk = await reader.read(65536)
            assert chunk, f"EOF after {body!r}"
            body += chunk
        return head, body
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def part(jpeg: bytes, *, eol: bytes = b"\r\n", length: bool = True) -> bytes:
    """The bytes of one `good` part, written out by hand."""
    lines = [b"--frame", b"Content-Type: image/jpeg"]
    if length:
        lines.append(b"Content-Length: " + str(len(jpeg)).encode())
    return eol.join(lines) + eol + eol + jpeg + eol


# --------------------------------------------------------------------- JPEG


def decode(jpeg: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(jpeg))
    image.load()
    return image


def test_tiny_and_numbered_jpegs_decode() -> None:
    image = decode(TINY_JPEG)
    assert image.size == (16, 16)
    assert image.format == "JPEG"
    assert image.getpixel((0, 0)) == 32
    assert image.getpixel((15, 15)) == 224
    first, second = numbered_jpeg(1), numbered_jpeg(2)
    assert first != second
    assert decode(first).tobytes() == image.tobytes()
    assert frame_number(first) == 1
    assert frame_number(numbered_jpeg(12345)) == 12345
    assert frame_number(TINY_JPEG) is None
    assert first.startswith(b"\xff\xd8\xff\xfe")
    assert first.endswith(b"\xff\xd9")


def test_big_and_odd_sized_jpegs_decode_with_turbojpeg() -> None:
    turbojpeg = pytest.importorskip("turbojpeg")
    try:
        decoder = turbojpeg.TurboJPEG()
    except (OSError, RuntimeError):  # pragma: no cover - library missing
        pytest.skip("libturbojpeg not installed")
    big = solid_jpeg(1280, 720, 200)
    assert decode(big).size == (1280, 720)
    pixels = decoder.decode(big)
    assert pixels.shape == (720, 1280, 3)
    assert int(pixels[0, 0, 0]) == 200
    odd = block_jpeg([[0, 255, 1], [254, 128, 127]], width=20, height=9)
    assert decode(odd).size == (20, 9)
    assert list(decode(odd).getdata())[:10] == [0] * 8 + [255] * 2


def test_entropy_data_with_ff_bytes_is_stuffed() -> None:
    jpeg = block_jpeg([[255, 0] * 4])
    entropy = jpeg[jpeg.index(b"\xff\xda") + 10 : -2]
    assert b"\xff\x00" in entropy  # a data FF followed by the stuffed 00
    image = decode(jpeg)
    assert [image.getpixel((x, 0)) for x in range(0, 64, 8)] == [255, 0] * 4


def test_jpeg_helpers_reject_bad_input() -> None:
    with pytest.raises(ValueError):
        block_jpeg([])
    with pytest.raises(ValueError):
        block_jpeg([[1, 2], [3]])
    with pytest.raises(ValueError):
        block_jpeg([[1]], width=9)
    with pytest.raises(ValueError):
        block_jpeg([[256]])
    with pytest.raises(ValueError):
        block_jpeg([[0]] * 8193)
    with pytest.raises(ValueError):
        with_comment(b"not a jpeg", b"x")


# -------------------------------------------------------------- connections


async def test_counts_a_connection_that_never_sends_a_request(
    make_mjpeg_printer: PrinterFactory,
) -> None:
    printer = await make_mjpeg_printer()
    _, writer = await asyncio.open_connection(printer.host, printer.port)
    writer.close()
    await writer.wait_closed()
    await printer.wait_for(
        lambda p: p.total_connections == 1 and p.open_connections == 0
    )
    record = printer.connections[0]
    await printer.wait_for(lambda p: record.closed)
    assert record.requests == []
    assert record.hung_up_by == "client"
    assert printer.max_open_connections == 1
    assert printer.requests == []


async def test_close_closes_idle_and_streaming_connections_and_waits(
    make_mjpeg_printer: PrinterFactory,
) -> None:
    printer = await make_mjpeg_printer()
    idle_reader, idle_writer = await asyncio.open_connection(printer.host, printer.port)
    stream_reader, stream_writer = await asyncio.open_connection(
        printer.host, printer.port
    )
    stream_writer.write(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
    await printer.wait_for(lambda p: len(p.frames_sent) >= 1)
    printer.pause()
    assert printer.paused
    await printer.wait_for(lambda p: p.open_connections == 2)

    await printer.close()

    assert printer.open_connections == 0
    assert printer.live_connections == []
    assert all(record.hung_up_by == "server" for record in printer.connections)
    assert await idle_reader.read() == b""
    await stream_reader.read()  # EOF after whatever was sent
    for writer in (idle_writer, stream_writer):
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    # Closed for good: nothing listens any more.
    with pytest.raises(OSError):
        await asyncio.open_connection(printer.host, printer.port)


async def test_close_reports_a_connection_that_never_closes(
    make_mjpeg_printer: PrinterFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    printer = await make_mjpeg_printer()
    monkeypatch.setattr(mjpeg_server, "CLOSE_TIMEOUT", 0.1)
    monkeypatch.setattr(mjpeg_server, "_ABORT_AFTER", 0.05)
    printer.connections.append(ConnectionRecord(index=99, peer="ghost"))
    with pytest.raises(AssertionError, match="ghost"):
        await printer.close()
    printer.connections.clear()


async def test_wait_for_times_out_with_the_state(
    make_mjpeg_printer: PrinterFactory,
) -> None:
    printer = await make_mjpeg_printer()
    with pytest.raises(AssertionError, match="total_connections"):
        await printer.wait_for(lambda p: p.total_connections == 5, timeout=0.05)


async def test_refuse_and_accept_on_the_same_port(
    make_mjpeg_printer: PrinterFactory, session: aiohttp.ClientSession
) -> None:
    printer = await make_mjpeg_printer()
    port = printer.port
    async with session.get(printer.status_url) as response:
        assert response.status == 200
    printer.refuse()
    printer.refuse()  # idempotent
    with pytest.raises(OSError):
        await asyncio.open_connection(printer.host, port)
    await printer.accept()
    await printer.accept()  # idempotent
    assert printer.port == port
    async with session.get(printer.status_url) as response:
        assert response.status == 200
    with pytest.raises(RuntimeError):
        await printer.start()


async def test_accept_before_start_fails() -> None:
    with pytest.raises(RuntimeError):
        await MjpegPrinter().accept()


def test_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        MjpegPrinter(fps=0)
    with pytest.raises(ValueError, match="'basic', 'digest' or 'query'"):
        MjpegPrinter(auth="ntlm")
    with pytest.raises(ValueError):
        MjpegPrinter(digest_algorithm="SHA-1")
    with pytest.raises(ValueError):
        MjpegPrinter(mode="bogus")
    with pytest.raises(ValueError):
        MjpegPrinter(mode="")
    with pytest.raises(ValueError):
        MjpegPrinter().set_mode("good+bogus")


async def test_async_context_manager(socket_enabled: None) -> None:
    async with MjpegPrinter() as printer:
        reader, writer = await asyncio.open_connection(printer.host, printer.port)
    assert printer.live_connections == []
    assert await reader.read() == b""
    writer.close()


# -------------------------------------------------------------- the bytes


async def test_good_mode_bytes(make_mjpeg_printer: PrinterFactory) -> None:
    printer = await make_mjpeg_printer(mode="good")
    head, body = await raw_get(printer, "/stream", parts=1)
    assert head.startswith(b"HTTP/1.0 200 OK\r\n")
    assert b"Content-Type: multipart/x-mixed-replace; boundary=frame\r\n" in head
    assert body.startswith(part(numbered_jpeg(0)) + b"--frame\r\n")
    await printer.wait_for(lambda p: p.open_connections == 0)
    assert printer.connections[0].frames[0] == numbered_jpeg(0)
    assert printer.stream_requests == 1


@pytest.mark.parametrize(
    ("mode", "content_type"),
    [
        ("good", "multipart/x-mixed-replace; boundary=frame"),
        ("space", "multipart/x-mixed-replace; boundary=frame"),
        ("no_dashes_in_header", "multipart/x-mixed-replace; boundary=frame"),
        ("dashes_in_header", "multipart/x-mixed-replace; boundary=--frame"),
        ("quoted_boundary", 'multipart/x-mixed-replace; boundary="frame"'),
        ("no_space", "multipart/x-mixed-replace;boundary=frame"),
        ("no_boundary", "multipart/x-mixed-replace"),
        ("header_case", "Multipart/X-Mixed-Replace; BOUNDARY=frame"),
        ("wrong_content_type", "text/plain"),
        ("quoted_boundary+no_space", 'multipart/x-mixed-replace;boundary="frame"'),
    ],
)
async def test_content_type_per_mode(
    make_mjpeg_printer: PrinterFactory, mode: str, content_type: str
) -> None:
    printer = await make_mjpeg_printer(mode=mode)
    head, _ = await raw_get(printer, "/stream", parts=1)
    assert f"Content-Type: {content_type}\r\n".encode() in head
    assert printer.content_type() == content_type
    assert printer.content_type("good") == "multipart/x-mixed-replace; boundary=frame"


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("lf_only", part(numbered_jpeg(0), eol=b"\n")),
        ("no_content_length", part(numbered_jpeg(0), length=False)),
        (
            "lf_only+no_content_length",
            part(numbered_jpeg(0), eol=b"\n", length=False),
        ),
        (
            "header_case",
            b"--frame\r\nCONTENT-TYPE: image/jpeg\r\ncontent-length: "
            + str(len(numbered_jpeg(0))).encode()
            + b"\r\n\r\n"
            + numbered_jpeg(0)
            + b"\r\n",
        ),
        ("preamble", mjpeg_server.PREAMBLE + part(numbered_jpeg(0))),
    ],
)
async def test_part_bytes_per_mode(
    make_mjpeg_printer: PrinterFactory, mode: str, expected: bytes
) -> None:
    printer = await make_mjpeg_printer(mode=mode)
    _, body = await raw_get(printer, "/stream", parts=1)
    assert body.startswith(expected)
    assert printer.encode_part(numbered_jpeg(0)) == expected.removeprefix(
        mjpeg_server.PREAMBLE
    )


async def test_extra_headers_text_parts_and_garbage(
    make_mjpeg_printer: PrinterFactory,
) -> None:
    printer = await make_mjpeg_printer(mode="extra_headers")
    _, body = await raw_get(printer, "/stream", parts=1)
    assert body.startswith(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: ")
    assert b"\r\nX-Timestamp: " in body.split(b"\r\n\r\n")[0]

    printer.set_mode("text_error_part")
    _, body = await raw_get(printer, "/stream", parts=6)
    parts = body.split(b"--frame\r\n")[1:7]
    # A text part before every second frame: JPEG, text, JPEG, JPEG, text, JPEG.
    assert [p.split(b"\r\n")[0] for p in parts] == [
        b"Content-Type: image/jpeg",
        b"Content-Type: text/plain",
        b"Content-Type: image/jpeg",
        b"Content-Type: image/jpeg",
        b"Content-Type: text/plain",
        b"Content-Type: image/jpeg",
    ]
    assert parts[1] == (
        b"Content-Type: text/plain\r\nContent-Length: 13\r\n\r\ncamera error!\r\n"
    )
    frames = printer.connections[-1].frames
    assert parts[2] == part(frames[1]).removeprefix(b"--frame\r\n")

    printer.set_mode("garbage")
    _, body = await raw_get(printer, "/stream", parts=3)
    first = part(printer.connections[-1].frames[0])
    assert body.startswith(first)
    between = body[len(first) : body.index(b"--frame", len(first))]
    assert len(between) >= 8 + 2
    assert between.endswith(b"\r\n")
    assert b"-" not in between


async def test_http10_close_mode_is_close_delimited(
    make_mjpeg_printer: PrinterFactory, session: aiohttp.ClientSession
) -> None:
    printer = await make_mjpeg_printer(mode="http10_close+drop_after:3")
    reader, writer = await asyncio.open_connection(printer.host, printer.port)
    writer.write(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
    data = await reader.read()  # until the printer hangs up
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200 OK\r\n")
    assert b"Transfer-Encoding" not in head
    assert b"Content-Length" not in head
    assert body == b"".join(part(frame) for frame in printer.connections[0].frames)
    assert len(printer.connections[0].frames) == 3
    # aiohttp's client sees an HTTP/1.0 body that ends at EOF.
    async with session.get(printer.url) as response:
        assert response.version == aiohttp.HttpVersion10
        assert "Transfer-Encoding" not in response.headers
        assert await response.read() == b"".join(
            part(frame) for frame in printer.connections[1].frames
        )


async def test_chunked_mode_uses_chunked_encoding(
    make_mjpeg_printer: PrinterFactory, session: aiohttp.ClientSession
) -> None:
    printer = await make_mjpeg_printer(mode="chunked+drop_after:2")
    reader, writer = await asyncio.open_connection(printer.host, printer.port)
    writer.write(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
    data = await reader.read()
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"Transfer-Encoding: chunked" in head
    first = part(numbered_jpeg(0))
    assert body.startswith(f"{len(first):x}\r\n".encode() + first + b"\r\n")
    async with session.get(printer.url) as response:
        assert response.headers["Transfer-Encoding"] == "chunked"
        with pytest.raises(aiohttp.ClientPayloadError):
            await response.read()  # hung up mid-stream: no final chunk


async def test_drop_after_hangs_up_after_n_frames(
    make_mjpeg_printer: PrinterFactory,
) -> None:
    printer = await make_mjpeg_printer(mode="http10_close+drop_after:2")
    _, body = await raw_get(printer, "/stream")
    assert body == part(numbered_jpeg(0)) + part(numbered_jpeg(1))
    await printer.wait_for(lambda p: p.connections[0].closed)
    assert printer.connections[0].hung_up_by == "server"


@pytest.mark.parametrize("status", [401, 403, 500])
async def test_status_modes(make_mjpeg_printer: PrinterFactory, status: int) -> None:
    printer = await make_mjpeg_printer(mode=f"status_{status}")
    for path in ("/stream", "/snapshot"):
        head, body = await raw_get(printer, path)
        assert head.startswith(f"HTTP/1.0 {status} ".encode())
        assert body == f"error {status}".encode()
        assert (b"WWW-Authenticate: Basic" in head) == (status == 401)
    assert printer.frames_sent == []
    assert [r.status for r in printer.requests] == [status, status]


async def test_not_mjpeg_single_jpeg_snapshot_status_and_404(
    make_mjpeg_printer: PrinterFactory,
) -> None:
    printer = await make_mjpeg_printer(mode="not_mjpeg")
    head, body = await raw_get(printer, "/stream")
    assert b"Content-Type: text/html" in head
    assert body == mjpeg_server.HTML_PAGE

    printer.set_mode("single_jpeg")
    head, body = await raw_get(printer, "/stream")
    assert b"Content-Type: image/jpeg" in head
    assert body == printer.stills_sent[-1]
    assert decode(body).size == (16, 16)

    printer.set_mode("good")
    head, body = await raw_get(printer, "/snapshot")
    assert b"Content-Type: image/jpeg" in head
    assert body == printer.stills_sent[-1] == printer.connections[-1].stills[0]
    assert printer.still_requests == 1

    head, body = await raw_get(printer, "/nope")
    assert head.startswith(b"HTTP/1.0 404")

    head, body = await raw_get(printer, "/status")
    status = json.loads(body)
    assert status["still_requests"] == 1
    assert status["stream_requests"] == 2
    assert status["total_connections"] == 5
    assert status["mode"] == "good"


# ------------------------------------------------------- hostile cameras


async def read_head_lines(reader: asyncio.StreamReader, count: int) -> list[bytes]:
    return [await reader.readline() for _ in range(count)]


async def test_header_drip_sends_a_head_that_never_ends(
    make_mjpeg_printer: PrinterFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mjpeg_server, "HEADER_DRIP_INTERVAL", 0.01)
    printer = await make_mjpeg_printer(mode="header_drip")
    for path in ("/stream", "/snapshot"):
        reader, writer = await asyncio.open_connection(printer.host, printer.port)
        writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        lines = await read_head_lines(reader, 4)
        assert lines == [
            b"HTTP/1.1 200 OK\r\n",
            b"X-Drip-1: 1\r\n",
            b"X-Drip-2: 2\r\n",
            b"X-Drip-3: 3\r\n",
        ]
        writer.close()
        await printer.wait_for(lambda p: p.open_connections == 0)
    assert printer.hostile_head_bytes >= 2 * sum(map(len, lines))
    assert printer.frames_sent == []
    assert printer.status()["hostile_head_bytes"] == printer.hostile_head_bytes


async def test_header_drip_ends_when_the_printer_closes(
    make_mjpeg_printer: PrinterFactory,
) -> None:
    printer = await make_mjpeg_printer(mode="header_drip")
    reader, writer = await asyncio.open_connection(printer.host, printer.port)
    writer.write(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
    assert await reader.readline() == b"HTTP/1.1 200 OK\r\n"
    await printer.close()
    assert printer.live_connections == []
    writer.close()


async def test_header_flood_then_a_stream_or_a_still(
    make_mjpeg_printer: PrinterFactory,
) -> None:
    flood = 1024 * 1024
    printer = await make_mjpeg_printer(mode="header_flood", header_flood_bytes=flood)
    head, body = await raw_get(printer, "/stream", parts=2, limit=2 * flood)
    assert head.startswith(b"HTTP/1.0 200 OK\r\nX-Flood: ffff")
    assert len(head) > flood
    # Every line stays under aiohttp's 8190-byte limit: only their number floods.
    assert max(map(len, head.split(b"\r\n"))) < 8190
    assert head.endswith(
        b"Content-Type: multipart/x-mixed-replace; boundary=frame\r\n\r\n"
    )
    assert body.startswith(part(printer.frames_sent[0]) + part(printer.frames_sent[1]))
    head, body = await raw_get(printer, "/snapshot", limit=2 * flood)
    assert len(head) > flood
    assert head.endswith(
        f"Content-Type: image/jpeg\r\nContent-Length: {len(body)}\r\n\r\n".encode()
    )
    assert body == printer.stills_sent[0]
    assert printer.hostile_head_bytes > 2 * flood


async def test_header_flood_stops_when_the_client_hangs_up(
    make_mjpeg_printer: PrinterFactory,
) -> None:
    printer = await make_mjpeg_printer(mode="header_flood")
    reader, writer = await asyncio.open_connection(printer.host, printer.port)
    writer.write(b"GET /stream HTTP/1.0\r\n\r\n")
    assert len(await reader.readexactly(100_000)) == 100_000
    writer.close()
    await printer.wait_for(lambda p: p.open_connections == 0)
    # Written as the client read: nowhere near the 64 MiB.
    assert printer.hostile_head_bytes < mjpeg_server.HEADER_FLOOD_BYTES // 4
    assert printer.frames_sent == []


async def test_gzip_bomb_inflates_to_a_part_and_zeros(
    make_mjpeg_printer: PrinterFactory, session: aiohttp.ClientSession
) -> None:
    size = 1024 * 1024
    printer = await make_mjpeg_printer(mode="gzip_bomb", gzip_bomb_size=size)
    for url, prefix in (
        (printer.url, part(numbered_jpeg(0))),
        (printer.still_url, numbered_jpeg(0)),
    ):
        # Advertised as gzip whatever the client accepts.
        async with session.get(
            url, auto_decompress=False, headers={"Accept-Encoding": "identity"}
        ) as response:
            assert response.headers["Content-Encoding"] == "gzip"
            compressed = await response.read()
        assert len(compressed) < size // 500
        inflated = zlib.decompress(compressed, 16 + zlib.MAX_WBITS)
        assert inflated == prefix + bytes(size)
    assert (
        response.headers["Content-Type"] == "image/jpeg"
    )  # the still; the stream was multipart
    assert printer.frames_sent == printer.stills_sent == [numbered_jpeg(0)]
    assert printer.frames_count == 1


def test_the_default_gzip_bomb_is_255_kb_for_256_mib() -> None:
    bomb = mjpeg_server.gzip_bomb(b"x", mjpeg_server.GZIP_BOMB_SIZE)
    assert 250_000 < len(bomb) < 270_000
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    total = 0
    data = bomb
    while data:
        total += len(inflater.decompress(data, 1 << 24))
        data = inflater.unconsumed_tail
    assert total == 1 + 256 * 1024 * 1024


async def test_frames_from_a_sequence_or_a_function(
    make_mjpeg_printer: PrinterFactory,
) -> None:
    frames = [numbered_jpeg(100), numbered_jpeg(200)]
    printer = await make_mjpeg_printer(frames=frames, mode="http10_close+drop_after:3")
    _, body = await raw_get(printer, "/stream")
    assert body == part(frames[0]) + part(frames[1]) + part(frames[0])

    printer = await make_mjpeg_printer(
        frames=lambda n: numbered_jpeg(n * 10), mode="http10_close+drop_after:2"
    )
    _, body = await raw_get(printer, "/stream")
    assert body == part(numbered_jpeg(0)) + part(numbered_jpeg(10))
    assert printer.frames_sent == [numbered_jpeg(0), numbered_jpeg(10)]


async def test_frames_can_go_unrecorded_for_long_runs(
    make_mjpeg_printer: PrinterFactory,
) -> None:
    printer = await make_mjpeg_printer(
        record_frames=False, mode="http10_close+drop_after:3"
    )
    _, body = await raw_get(printer, "/stream")
    assert body == b"".join(part(numbered_jpeg(n)) for n in range(3))
    _, still = await raw_get(printer, "/snapshot")
    assert still == numbered_jpeg(3)
    assert printer.frames_count == 3
    assert printer.frames_sent == printer.stills_sent == []
    assert printer.connections[0].frames == []
    assert printer.status()["frames_sent"] == 3


async def test_slow_mode_sends_one_frame_per_second(
    make_mjpeg_printer: PrinterFactory,
) -> None:
    printer = await make_mjpeg_printer(mode="slow", fps=1000)
    reader, writer = await asyncio.open_connection(printer.host, printer.port)
    writer.write(b"GET /stream HTTP/1.0\r\n\r\n")
    await printer.wait_for(lambda p: len(p.frames_sent) == 1)
    with pytest.raises(AssertionError):
        await printer.wait_for(lambda p: len(p.frames_sent) > 1, timeout=0.3)
    writer.close()
    await printer.wait_for(lambda p: p.open_connections == 0)


# ------------------------------------------------------------- controls


async def test_pause_resume_and_drop_all(
    make_mjpeg_printer: PrinterFactory, session: aiohttp.ClientSession
) -> None:
    printer = await make_mjpeg_printer()
    async with session.get(printer.url) as response:
        await printer.wait_for(lambda p: len(p.frames_sent) >= 2)
        printer.pause()
        sent = len(printer.frames_sent)
        with pytest.raises(AssertionError):
            await printer.wait_for(lambda p: len(p.frames_sent) > sent + 1, timeout=0.1)
        assert printer.open_connections == 1
        printer.resume()
        await printer.wait_for(lambda p: len(p.frames_sent) > sent + 2)
        assert printer.drop_all() == 1
        with pytest.raises(aiohttp.ClientPayloadError):
            await response.read()
    await printer.wait_for(lambda p: p.active_streams == 0 and p.open_connections == 0)
    assert printer.connections[0].hung_up_by == "server"
    assert printer.drop_all() == 0


@pytest.mark.parametrize(("mode", "limit"), [("one_client", None), ("good", 2)])
async def test_client_limit_answers_503(
    make_mjpeg_printer: PrinterFactory,
    session: aiohttp.ClientSession,
    mode: str,
    limit: int | None,
) -> None:
    printer = await make_mjpeg_printer(mode=mode, max_clients=limit)
    allowed = limit or 1
    responses = [await session.get(printer.url) for _ in range(allowed)]
    try:
        await printer.wait_for(lambda p: p.active_streams == allowed)
        async with session.get(printer.url) as rejected:
            assert rejected.status == 503
        assert printer.rejected_connections == 1
        assert printer.max_active_streams == allowed
    finally:
        for response in responses:
            response.close()
    await printer.wait_for(lambda p: p.active_streams == 0)
    async with session.get(printer.url) as accepted:
        assert accepted.status == 200
    assert printer.rejected_connections == 1


# ------------------------------------------------------------------ auth


async def test_basic_auth(
    make_mjpeg_printer: PrinterFactory, session: aiohttp.ClientSession
) -> None:
    printer = await make_mjpeg_printer(
        username="maker", password=PASSWORD, mode="single_jpeg"
    )
    async with session.get(printer.url) as response:
        assert response.status == 401
        assert response.headers["WWW-Authenticate"] == 'Basic realm="printer"'
    for auth, status in [
        (aiohttp.BasicAuth("maker", "wrong"), 401),
        (aiohttp.BasicAuth("other", "p4ss"), 401),
        (aiohttp.BasicAuth("maker", "p4ss"), 200),
    ]:
        async with session.get(printer.url, auth=auth) as response:
            assert response.status == status
    for header in ("Basic !!!notbase64", "Bearer x"):
        async with session.get(
            printer.url, headers={"Authorization": header}
        ) as response:
            assert response.status == 401
    assert printer.auth_failures == 5


async def test_query_auth(
    make_mjpeg_printer: PrinterFactory, session: aiohttp.ClientSession
) -> None:
    printer = await make_mjpeg_printer(
        username="maker", password=PASSWORD, auth="query", mode="single_jpeg"
    )
    for query, status in [
        ("", 401),
        ("?user=maker&pwd=wrong", 401),
        ("?user=other&pwd=p4ss", 401),
        ("?user=maker&pwd=p4ss", 200),
    ]:
        async with session.get(printer.url + query) as response:
            assert response.status == status
            assert "WWW-Authenticate" not in response.headers
    # Basic does not count here.
    async with session.get(
        printer.url, auth=aiohttp.BasicAuth("maker", "p4ss")
    ) as response:
        assert response.status == 401
    assert printer.auth_failures == 4
    assert printer.requests[3].path == "/stream?user=maker&pwd=p4ss"


def digest_header(
    challenge: str,
    username: str,
    password: str,
    uri: str,
    nc: int,
    algorithm: str = "MD5",
) -> str:
    """An independent digest answer (qop=auth or none) for the fake's checks."""
    params = dict(
        item.strip().split("=", 1)
        for item in challenge.removeprefix("Digest ").split(",")
    )
    params = {key: value.strip('"') for key, value in params.items()}

    def h(text: str) -> str:
        return hashlib.new(
            algorithm.lower().replace("-", ""), text.encode()
        ).hexdigest()

    ha1 = h(f"{username}:{params['realm']}:{password}")
    ha2 = h(f"GET:{uri}")
    nonce = params["nonce"]
    fields = (
        f'username="{username}", realm="{params["realm"]}", nonce="{nonce}", '
        f'uri="{uri}", opaque="{params["opaque"]}", algorithm={algorithm}'
    )
    if "qop" in params:
        response = h(f"{ha1}:{nonce}:{nc:08x}:abc:auth:{ha2}")
        return f'Digest {fields}, qop=auth, nc={nc:08x}, cnonce="abc", response="{response}"'
    return f'Digest {fields}, response="{h(f"{ha1}:{nonce}:{ha2}")}"'


@pytest.mark.parametrize(
    ("algorithm", "qop"), [("MD5", "auth"), ("SHA-256", "auth"), ("MD5", None)]
)
async def test_digest_auth(
    make_mjpeg_printer: PrinterFactory,
    session: aiohttp.ClientSession,
    algorithm: str,
    qop: str | None,
) -> None:
    printer = await make_mjpeg_printer(
        username="maker",
        password=PASSWORD,
        auth="digest",
        digest_algorithm=algorithm,
        digest_qop=qop,
        mode="single_jpeg",
    )

    async def get(authorization: str | None) -> aiohttp.ClientResponse:
        headers = {"Authorization": authorization} if authorization else {}
        async with session.get(printer.url, headers=headers) as response:
            await response.read()
            return response

    challenge = (await get(None)).headers["WWW-Authenticate"]
    assert challenge.startswith('Digest realm="printer"')
    assert f"algorithm={algorithm}" in challenge
    assert ('qop="auth"' in challenge) == (qop is not None)
    ok = digest_header(challenge, "maker", "p4ss", "/stream", 1, algorithm)
    assert (await get(ok)).status == 200
    if qop:
        # The same nc again is a replay.
        assert (await get(ok)).status == 401
        assert (
            await get(
                digest_header(challenge, "maker", "p4ss", "/stream", 2, algorithm)
            )
        ).status == 200
        bad_nc = ok.replace("nc=00000001", "nc=zz")
        assert (await get(bad_nc)).status == 401
    assert (
        await get(digest_header(challenge, "maker", "nope", "/stream", 3, algorithm))
    ).status == 401
    assert (
        await get(digest_header(challenge, "maker", "p4ss", "/other", 4, algorithm))
    ).status == 401
    assert (await get("Basic bWFrZXI6cDRzcw==")).status == 401
    printer.expire_nonces()
    stale = await get(
        digest_header(challenge, "maker", "p4ss", "/stream", 5, algorithm)
    )
    assert stale.status == 401
    assert "stale=true" in stale.headers["WWW-Authenticate"]


async def test_tls_printer_counts_failed_and_stalled_handshakes(
    make_mjpeg_printer: PrinterFactory, session: aiohttp.ClientSession
) -> None:
    printer = await make_mjpeg_printer(ssl_context=self_signed_ssl_context())
    assert printer.status_url.startswith("https://")
    with pytest.raises(aiohttp.ClientConnectorCertificateError):
        await session.get(printer.status_url)
    await printer.wait_for(lambda p: p.live_connections == [])
    assert printer.connections[0].requests == []
    # (Connection: close, or aiohttp would keep the connection in its pool.)
    async with session.get(
        printer.still_url, ssl=False, headers={"Connection": "close"}
    ) as response:
        assert await response.read() == printer.stills_sent[0]
    # Hangs up before the handshake.
    _, writer = await asyncio.open_connection(printer.host, printer.port)
    writer.close()
    await printer.wait_for(
        lambda p: p.total_connections == 3 and p.live_connections == []
    )
    # Stalls in the handshake: close() still ends it.
    reader, writer = await asyncio.open_connection(printer.host, printer.port)
    await printer.wait_for(lambda p: p.open_connections == 1)
    await printer.close()
    assert printer.live_connections == []
    assert await reader.read() == b""
    writer.close()
    assert printer.max_open_connections == 1
