"""Tests for the MJPEG-over-HTTP source (sources/mjpeg_http.py) and base.py.

Against the fake printer of printer_sim (a real server on 127.0.0.1): frames
come out byte-identical in every streaming quirk mode, auth and error
mapping, the reconnect loop with its events, and the connection discipline
(never more than one open connection; none left when the consumer stops).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
import contextlib
import logging
import random
import re
import tracemalloc
from typing import Any

import aiohttp
from aiohttp.client_proto import ResponseHandler
from aiohttp.client_reqrep import ConnectionKey
import pytest
from yarl import URL

from custom_components.printcam.redact import REDACTED
from custom_components.printcam.sources import base, mjpeg_http
from custom_components.printcam.sources.base import (
    AuthDowngrade,
    Backoff,
    CannotConnect,
    FrameSource,
    InvalidAuth,
    NotMjpeg,
    ProtocolError,
    SourceError,
    SourceEvents,
    SourceTimeout,
)
from custom_components.printcam.sources.mjpeg_http import (
    MjpegHttpSource,
    _BodyScanner,
    _parse_challenges,
    _pick_digest,
)
from printer_sim import (
    MjpegPrinter,
    mjpeg_server,
    numbered_jpeg,
    self_signed_ssl_context,
    with_comment,
)

from .recorder import Recorder, drain, take

PASSWORD = "s3cr3t-Pa55word"
OTHER = "changed"
WAIT = 5.0

PrinterFactory = Callable[..., Awaitable[MjpegPrinter]]


def make_source(
    session: aiohttp.ClientSession, url: str, **kwargs: Any
) -> MjpegHttpSource:
    kwargs.setdefault("read_timeout", 2.0)
    kwargs.setdefault("connect_timeout", 2.0)
    source = MjpegHttpSource(session, url, **kwargs)
    source.backoff = Backoff(initial=0.01, cap=0.05, rng=random.Random(1))
    return source


class CannedServer:
    """A tiny raw HTTP server for replies the fake printer does not make.

    `reply(writer)` writes whatever it likes after the request head was read.
    Tracks its handler tasks and connections so `close()` leaves nothing.
    """

    def __init__(
        self, reply: Callable[[asyncio.StreamWriter], Awaitable[None]]
    ) -> None:
        self._reply = reply
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.requests: list[bytes] = []
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/stream"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _handle(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            self.requests.append(await reader.readuntil(b"\r\n\r\n"))
            await self._reply(writer)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        async with asyncio.timeout(WAIT):
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._server.wait_closed()


@pytest.fixture
async def canned(
    socket_enabled: None,
) -> AsyncIterator[Callable[..., Awaitable[CannedServer]]]:
    servers: list[CannedServer] = []

    async def make(
        reply: Callable[[asyncio.StreamWriter], Awaitable[None]] | bytes,
    ) -> CannedServer:
        if isinstance(reply, bytes):
            data = reply

            async def write(writer: asyncio.StreamWriter) -> None:
                writer.write(data)

            reply = write
        server = CannedServer(reply)
        await server.start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        await server.close()


def multipart_head(
    content_type: str = "multipart/x-mixed-replace; boundary=frame",
) -> bytes:
    return f"HTTP/1.0 200 OK\r\nContent-Type: {content_type}\r\n\r\n".encode()


def part(body: bytes, content_type: bytes = b"image/jpeg") -> bytes:
    return (
        b"--frame\r\nContent-Type: "
        + content_type
        + b"\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
        + b"\r\n"
    )


# ---------------------------------------------------------------- streaming

STREAMING_MODES = [
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
    "one_client",
    "lf_only+no_content_length",
    "header_case+lf_only+no_content_length+preamble+extra_headers",
    "http10_close+no_content_length+garbage",
]


@pytest.mark.parametrize("mode", STREAMING_MODES)
async def test_frames_are_byte_identical_in_every_mode(
    make_mjpeg_printer: PrinterFactory, session: aiohttp.ClientSession, mode: str
) -> None:
    printer = await make_mjpeg_printer(mode=mode)
    events = Recorder()
    source = make_source(session, printer.url, events=events)
    frames = await take(source, 5)
    assert frames == printer.connections[0].frames[:5]
    assert [int(f.split(b"frame ")[1][:1]) for f in frames] == [0, 1, 2, 3, 4]
    await printer.wait_for(lambda p: p.open_connections == 0)
    assert printer.total_connections == 1
    assert printer.rejected_connections == 0
    assert events.names()[0] == "connected"
    dropped = [event for event in events.events if event[0] == "dropped"]
    if "text_error_part" in mode:
        assert dropped
        assert {event[2] for event in dropped} == {"not_jpeg"}
        assert source.stats.dropped == sum(event[1] for event in dropped)
    else:
        assert dropped == []
        assert source.stats.dropped == 0


async def test_slow_printer(
    make_mjpeg_printer: PrinterFactory, session: aiohttp.ClientSession
) -> None:
    printer = await make_mjpeg_printer(mode="slow")
    source = make_source(session, printer.url)
    assert await take(source, 2) == printer.frames_sent[:2]


async def test_large_frames_and_oversize_drops(
    make_mjpeg_printer: PrinterFactory, session: aiohttp.ClientSession
) -> None:
    big = (
        numbered_jpeg(1)[:2] + b"\xff\xfe\xff\xff" + b"x" * 65533 + numbered_jpeg(1)[2:]
    )
    frames = [numbered_jpeg(0), big, numbered_jpeg(2)]
    printer = await make_mjpeg_printer(frames=frames)
    events = Recorder()
    source = make_source(session, printer.url, events=events, max_frame_size=1000)
    received = await take(source, 3)
    assert received == [frames[0], frames[2], frames[0]]
    assert ("dropped", 1, "oversize") in events.events
    assert source.stats.dropped >= 1
    # Without the cap the big frame goes through intact.
    assert (
        await take(make_source(session, printer.url), 3)
        == printer.connections[1].frames[:3]
    )


async def test_stream_ends_when_the_printer_closes_an_http10_body(
    make_mjpeg_printer: PrinterFactory, session: aiohttp.ClientSession
) -> None:
    printer = await make_mjpeg_printer(mode="http10_close+drop_after:3")
    source = make_source(session, printer.url)
    assert await drain(source) == printer.frames_sent == printer.connections[0].frames


async def test_printer_hanging_up_mid_chunked_stream_is_cannot_connect(
    make_mjpeg_printer: PrinterFactory, session: aiohttp.ClientSession
) -> None:
    printer = await make_mjpeg_printer(mode="drop_after:3")
    source = make_source(session, printer.url)
    frames: list[bytes] = []

    async def read_all() -> None:
        async with contextlib.aclosing(source.connect()) as stream:
            async for frame in stream:
                frames.append(frame)

    with pytest.raises(CannotConnect, match="cut the stream off"):
        await read_all()
    assert frames == printer.frames_sent


# -------------------------------------------------------------- not MJPEG


async def test_not_mjpeg_page(
    make_mjpeg_printer: PrinterFactory, session: aiohttp.ClientSession
) -> None:
    printer = await make_mjpeg_printer(mode="not_mjpeg")
    events = Recorder()
    source = make_source(session, printer.url, events=events)
    with pytest.raises(NotMjpeg, match="text/html"):
        await drain(source)
    assert events.events == []
    with pytest.raises(NotMjpeg):
        await source.fetch_frame(WAIT)


async def test_single_jpeg_stream_url_is_not_mjpeg(
    make_mjpeg_printer: PrinterFactory, session: aiohttp.ClientSession
) -> None:
    printer = await make_mjpeg_printer(mode="single_jpeg")
    source = make_source(session, printer.url)
    with pytest.raises(NotMjpeg, match="still image URL"):
        await drain(source)
    await printer.wait_for(lambda p: p.open_connections == 0)


async def test_long_text_body_without_jpeg_is_not_mjpeg(
    canned: Callable[..., Awaitable[CannedServer]], session: aiohttp.ClientSession
) -> None:
    async def reply(writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n")
        for _ in range(20):  # 80 KiB of text, then hold the connection
            writer.write(b"log line\n" * 455)
            await writer.drain()
        await asyncio.sleep(WAIT)

    server = await canned(reply)
    with pytest.raises(NotMjpeg, match="text/plain"):
        await drain(make_source(session, server.url))


async def test_jpeg_bytes_without_parts_are_not_mjpeg_in_the_end(
    canned: Callable[..., Awaitable[CannedServer]], session: aiohttp.ClientSession
) -> None:
    # A JPEG start in an octet stream, but never a delimiter to infer from.
    server = await canned(
        b"HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n"
        + numbered_jpeg(0) * 3
    )
    with pytest.raises(NotMjpeg, match="no parsable JPEG"):
        await drain(make_source(session, server.url))


async def test_endless_jpeg_bytes_without_parts_give_up(
    canned: Callable[..., Awaitable[CannedServer]], session: aiohttp.ClientSession
) -> None:
    async def reply(writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.0 200 OK\r\n\r\n" + numbered_jpeg(0))
        for _ in range(100):
            writer.write(b"\x00" * 1024)
            await writer.drain()
        await asyncio.sleep(WAIT)

    server = await canned(reply)
    source = make_source(session, server.url, max_frame_size=16 * 1024)
    with pytest.raises(NotMjpeg, match="no content type"):
        await drain(source)


async def test_multipart_with_only_text_parts_is_not_mjpeg(
    canned: Callable[..., Awaitable[CannedServer]], session: aiohttp.ClientSession
) -> None:
    server = await canned(multipart_head() + part(b"offline", b"text/plain") * 3)
    events = Recorder()
    with pytest.raises(NotMjpeg, match="without JPEG parts"):
        await drain(make_source(session, server.url, events=events))
    assert events.names() == ["connected"]
    assert ("dropped", 3, "not_jpeg") in events.events or sum(
        event[1] for event in events.events if event[0] == "dropped"
    ) == 3


async def test_multipart_that_ends_without_frames_just_ends(
    canned: Callable[..., Awaitable[CannedServer]], session: aiohttp.ClientSession
) -> None:
    server = await canned(multipart_head() + b"--frame--\r\n")
    source = make_source(session, server.url)
    assert await drain(source) == []
    # fetch_frame reports the connection that closed before a frame.
    with pytest.raises(CannotConnect, match="before a frame"):
        await source.fetch_frame(WAIT)
    assert not source.connected


async def test_bytes_without_frames_hit_the_frame_timeout(
    canned: Callable[..., Awaitable[CannedServer]], session: aiohttp.ClientSession
) -> None:
    async def reply(writer: asyncio.StreamWriter) -> None:
        writer.write(multipart_head())
        for _ in range(100):
            writer.write(b"noise\r\n")
            await writer.drain()
            await asyncio.sleep(0.02)

    server = await canned(reply)
    source = make_source(session, server.url, read_timeout=0.2)
    with pytest.raises(SourceTimeout, match="no frame"):
        await drain(source)


async def test_invalid_http_response_is_a_protocol_error(
    canned: Callable[..., Awaitable[CannedServer]], session: aiohttp.ClientSession
) -> None:
    server = await canned(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
    with pytest.raises(ProtocolError):
        await drain(make_source(session, server.url))


# ------------------------------------------------------------ HTTP errors


@pytest.mark.parametrize(
    ("mode", "error", "match"),
    [
        ("status_401", InvalidAuth, "needs a username"),
        ("status_403", InvalidAuth, "HTTP 403"),
        ("status_500", CannotConnect, "HTTP 500"),
    ],
)
async def test_http_status_errors(
    make_mjpeg_printer: PrinterFactory,
    session: aiohttp.ClientSession,
    mode: str,
    error: type[SourceError],
    match: str,
) -> None:
    printer = await make_mjpeg_printer(mode=mode)
    with pytest.raises(error, match=match):
        await drain(make_source(session, printer.url))
    await printer.wait_for(lambda p: p.open_connections == 0)


async def test_404_is_cannot_connect(
    make_mjpeg_printer: PrinterFactory, session: aiohttp.ClientSession
) -> None:
    printer = await make_mjpeg_printer()
    with pytest.raises(CannotConnect, match="HTTP 404 Not Found"):
        await drain(make_source(session, printer.base_url + "/webcam"))


async def test_refused_port_is_cannot_connect(
    make_mjpeg_printer: PrinterFactory, session: aiohttp.ClientSession
) -> None:
    printer = await make_mjpeg_printer()
    printer.refuse()
    source = make_source(session, printer.url)
    with pytest.raises(
        CannotConnect, match=f"cannot connect to 127.0.0.1:{printer.port}"
    ):
        await drain(source)
    assert printer.total_connections == 0


@pytest.mark.parametrize(
    "url", ["ftp://printer/stream", "not a url", "http://", "http://[::1"]
)
async def test_unusable_urls(session: aiohttp.ClientSession, url: str) -> None:
    source = make_source(session, url)
    with pytest.raises(CannotConnect, match="http:// or https://"):
        await drain(source)


async def test_tls_certificate_verification(
    make_mjpeg_printer: PrinterFactory, session: aiohttp.ClientSession
) -> None:
    printer = await make_mjpeg_printer(ssl_context=self_signed_ssl_context())
    assert printer.url.startswith("https://127.0.0.1:")
    with pytest.raises(CannotConnect, match="certificate"):
        await drain(make_source(session, printer.url))
    source = make_source(session, printer.url, verify_ssl=False)
    assert await take(source, 2) == printer.frames_sent[:2]
    assert await source.fetch_still(printer.still_url, WAIT) == printer.stills_sent[0]
    await printer.wait_for(lambda p: p.open_connections == 0)
    assert printer.max_open_connections == 1


async def test_no_answer_within_read_timeout(
    make_mjpeg_printer: PrinterFactory, session: aiohttp.ClientSession
) -> None:
    printer = await make_mjpeg_printer()
    printer.pause()  # headers go out, frames do not
    source = make_source(session, printer.url, read_timeout=0.2)
    with pytest.raises(SourceTimeout):
        await drain(source)
    await printer.wait_for(lambda p: p.open_connections == 0)


async def test_fetch_frame_timeout(
    make_mjpeg_printer: PrinterFactory, session: aiohttp.ClientSession
) -> None:
    printer = await make_mjpeg_printer()
    printer.pause()
    source = make_source(session, printer.url, read_timeout=30)
    with pytest.raises(SourceTimeout, match="no frame within 0.2 s"):
        await source.fetch_frame(0.2)
    await printer.wait_for(lambda p: p.open_connections == 0)
    assert not source.connected


async def test_fetch_frame_returns_the_first_frame_and_closes(
    make_mjpeg_printer: PrinterFactory, session: aiohttp.ClientSession
) -> None:
    printer = await make_mjpeg_printer(mode="one_client")
    source = make_source(session, printer.url)
    for index in range(3):
        frame = await source.fetch_frame(WAIT)
        assert frame == printer.connections[index].frames[0]
        assert not source.connected
        await printer.wait_for(lambda p: p.open_connections == 0)
    assert printer.max_open_connections == 1
    assert printer.rejected_connections == 0
    assert source.stats.connects == 3
    # The request asked for no keep-alive.
    assert printer.requests[0].headers["Connection"] == "close"


# ------------------------------------------------------------------ auth


@pytest.mark.parametrize("auth", ["basic", "digest"])
async def test_auth_succeeds_with_the_right_credentials(
    make_mjpeg_printer: PrinterFactory, session: aiohttp.ClientSession, auth: str
) -> None:
    printer = await make_mjpeg_printer(
        username="maker", password=PASSWORD, auth=auth, mode="one_client"
    )
    source = make_source(session, printer.url, username="maker", password=PASSWORD)
    assert await take(source, 2) == printer.frames_sent[:2]
    # First connect: challenge, then the answer.
    assert [r.status for r in printer.requests] == [401, 200]
    # Later connects answer at once with what worked (digest: nc grows).
    assert await take(source, 1) == [printer.connections[-1].frames[0]]
    assert await take(source, 1) == [printer.connections[-1].frames[0]]
    assert [r.status for r in printer.requests] == [401, 200, 200, 200]
    authorizations = [r.headers.get("Authorization", "") for r in printer.requests]
    if auth == "digest":
        assert [a.split("nc=")[1][:8] for a in authorizations[1:]] == [
            "00000001",
            "00000002",
            "00000003",
        ]
    else:
        assert authorizations[1].startswith("Basic ")
    await printer.wait_for(lambda p: p.open_connections == 0)
    assert printer.max_open_connections == 1
    assert printer.rejected_connections == 0


@pytest.mark.parametrize(
    ("algorithm", "qop"), [("SHA-256", "auth"), ("MD5", None), ("SHA-256", None)]
)
async def test_digest_variants(
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
    )
    source = make_source(session, printer.url, username="maker", password=PASSWORD)
    assert await take(source, 1) == printer.frames_sent[:1]
    assert f"algorithm={algorithm}" in printer.requests[-1].headers["Authorization"]


@pytest.mark.parametrize("auth", ["basic", "digest"])
@pytest.mark.parametrize(
    ("username", "password"), [("maker", "wrong"), ("", ""), ("other", PASSWORD)]
)
async def test_auth_fails_with_wrong_or_missing_credentials(
    make_mjpeg_printer: PrinterFactory,
    session: aiohttp.ClientSession,
    auth: str,
    username: str,
    password: str,
) -> None:
    printer = await make_mjpeg_printer(username="maker", password=PASSWORD, auth=auth)
    source = make_source(session, printer.url, username=username, password=password)
    with pytest.raises(InvalidAuth) as err:
        await drain(source)
    assert PASSWORD not in str(err.value)
    # One challenge and one answer at most: no hammering.
    assert len(printer.requests) <= 2
    assert printer.frames_sent == []
    await printer.wait_for(lambda p: p.open_connections == 0)
    assert printer.max_open_connections == 1


async def test_stale_nonce_is_answered_again(
    make_mjpeg_printer: PrinterFactory, session: aiohttp.ClientSession
) -> None:
    printer = await make_mjpeg_printer(
        username="maker", password=PASSWORD, auth="digest"
    )
    source = make_source(session, printer.url, username="maker", password=PASSWORD)
    await take(source, 1)
    printer.expire_nonces()
    assert await take(source, 1) == [printer.connections[-1].frames[0]]
    # Remembered (stale) answer, the stale challenge, the fresh answer.
    assert [r.status for r in printer.requests] == [401, 200, 401, 200]


async def test_remembered_auth_that_stops_working(
    make_mjpeg_printer: PrinterFactory, session: aiohttp.ClientSession
) -> None:
    printer = await make_mjpeg_printer(
        username="maker", password=PASSWORD, auth="basic"
    )
    source = make_source(session, printer.url, username="maker", password=PASSWORD)
    await take(source, 1)
    printer.password = OTHER
    with pytest.raises(InvalidAuth):
        await drain(source)
    # Basic was remembered; the 401 made the source forget it.
    printer.password = PASSWORD
    await take(source, 1)
    assert [r.status for r in printer.requests] == [401, 200, 401, 401, 200]


async def test_digest_preferred_over_basic_and_challenge_loop_bounded(
    canned: Callable[..., Awaitable[CannedServer]], session: aiohttp.ClientSession
) -> None:
    # A broken server: always 401, each time with a new stale nonce.
    server = await canned(
        b"HTTP/1.0 401 Unauthorized\r\n"
        b'WWW-Authenticate: Basic realm="x", Digest realm="x", nonce="n1", stale=true\r\n'
        b"Content-Length: 0\r\n\r\n"
    )
    source = make_source(session, server.url, username="u", password=PASSWORD)
    with pytest.raises(InvalidAuth, match="refused the credentials"):
        await drain(source)
    assert len(server.requests) == mjpeg_http._MAX_AUTH_ROUNDS
    assert all(b"Authorization: Digest" in request for request in server.requests[1:])


async def test_unsupported_auth_schemes(
    canned: Callable[..., Awaitable[CannedServer]], session: aiohttp.ClientSession
) -> None:
    server = await canned(
        b'HTTP/1.0 401 Unauthorized\r\nWWW-Authenticate: Digest realm="x", nonce="n", '
        b"algorithm=SHA-512-256\r\nContent-Length: 0\r\n\r\n"
    )
    with pytest.raises(InvalidAuth, match="unsupported digest algorithm"):
        await drain(make_source(session, server.url, username="u", password=OTHER))
    server = await canned(
        b"HTTP/1.0 401 Unauthorized\r\nWWW-Authenticate: Negotiate\r\nContent-Length: 0\r\n\r\n"
    )
    with pytest.raises(InvalidAuth):
        await drain(make_source(session, server.url, username="u", password=OTHER))
    assert len(server.requests) == 1


async def test_credentials_in_the_url(
    make_mjpeg_printer: PrinterFactory,
    session: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    printer = await make_mjpeg_printer(
        username="maker", password=PASSWORD, auth="digest"
    )
    url = f"http://maker:{PASSWORD}@127.0.0.1:{printer.port}/stream"
    source = make_source(session, url)
    assert source.host == f"127.0.0.1:{printer.port}"
    assert await take(source, 1) == printer.frames_sent[:1]
    assert printer.requests[0].path == "/stream"
    # Explicit credentials win over the URL's.
    wrong = make_source(session, url, username="maker", password=OTHER)
    with pytest.raises(InvalidAuth) as err:
        await drain(wrong)
    assert PASSWORD not in str(err.value)
    assert PASSWORD not in caplog.text


async def test_secrets_never_leak_into_errors_or_logs(
    make_mjpeg_printer: PrinterFactory,
    canned: Callable[..., Awaitable[CannedServer]],
    session: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    printer = await make_mjpeg_printer(username="maker", password=PASSWORD)
    errors: list[BaseException] = []
    printer.refuse()
    garbage = await canned(b"garbage\r\n\r\n")
    for url in (
        f"http://maker:{PASSWORD}@127.0.0.1:{printer.port}/stream",
        f"http://maker:{PASSWORD}@127.0.0.1:{garbage.port}/stream",
        f"ftp://maker:{PASSWORD}@127.0.0.1/stream",
    ):
        source = make_source(session, url)
        assert PASSWORD not in source.host
        with pytest.raises(SourceError) as err:
            await drain(source)
        errors.append(err.value)
        assert PASSWORD not in (source.stats.last_error or "")
    for error in errors:
        assert PASSWORD not in str(error)
        assert PASSWORD not in repr(error)
    assert PASSWORD not in caplog.text


def test_host_property(session: aiohttp.ClientSession) -> None:
    assert make_source(session, "http://cam.local/stream").host == "cam.local"
    assert make_source(session, "https://u:p@cam.local:8443/x").host == "cam.local:8443"
    assert make_source(session, "http://[fe80::1]:8080/").host == "[fe80::1]:8080"
    assert make_source(session, "http://[::1").host == "invalid URL"
    assert make_source(session, "/relative").host == "invalid URL"
    assert MjpegHttpSource.family == "mjpeg"


def test_redaction_of_error_messages(session: aiohttp.ClientSession) -> None:
    source = make_source(session, f"http://me:{PASSWORD}@cam/")
    error = source._translate(OSError(f"boom {PASSWORD}"))
    assert str(error) == "cannot talk to cam: OSError"
    source._secrets.append("cam")
    assert source._redact("cam cam") == f"{REDACTED} {REDACTED}"


@pytest.mark.parametrize(
    ("error", "expected", "match"),
    [
        (aiohttp.ConnectionTimeoutError("x"), SourceTimeout, "did not answer in time"),
        (aiohttp.SocketTimeoutError("x"), SourceTimeout, "did not answer in time"),
        (TimeoutError(), SourceTimeout, "did not answer in time"),
        (
            aiohttp.ClientConnectorCertificateError(
                ConnectionKey("cam", 443, True, True, None, None, None),
                Exception("bad cert"),
            ),
            CannotConnect,
            "certificate",
        ),
        (
            aiohttp.ClientSSLError(
                ConnectionKey("cam", 443, True, True, None, None, None),
                OSError(1, "ssl"),
            ),
            CannotConnect,
            "TLS",
        ),
        (
            aiohttp.ClientConnectorError(
                ConnectionKey("cam", 80, False, True, None, None, None),
                OSError(111, "Connection refused"),
            ),
            CannotConnect,
            "Connection refused",
        ),
        (
            aiohttp.ClientConnectorDNSError(
                ConnectionKey("cam", 80, False, True, None, None, None),
                OSError("no such host"),
            ),
            CannotConnect,
            "cannot connect to cam: OSError",
        ),
        (aiohttp.ClientPayloadError("x"), CannotConnect, "cut the stream off"),
        (aiohttp.ServerDisconnectedError(), CannotConnect, "closed the connection"),
        (aiohttp.TooManyRedirects(None, ()), CannotConnect, "redirects"),  # type: ignore[arg-type]
        (aiohttp.ClientResponseError(None, ()), ProtocolError, "invalid HTTP"),  # type: ignore[arg-type]
        (aiohttp.ClientOSError(), CannotConnect, "ClientOSError"),
        (ConnectionResetError(), CannotConnect, "ConnectionResetError"),
    ],
)
def test_error_translation(
    session: aiohttp.ClientSession,
    error: BaseException,
    expected: type[SourceError],
    match: str,
) -> None:
    source = make_source(session, "http://cam/stream")
    translated = source._translate(error)
    assert type(translated) is expected
    assert match in str(translated)


# ------------------------------------------------------------------ digest


def test_digest_rfc2617_example(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mjpeg_http.secrets, "token_hex", lambda n: "0a4f113b")
    challenge = mjpeg_http._parse_challenges(
        [
            'Digest realm="testrealm@host.com", qop="auth,auth-int", '
            'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", '
            'opaque="5ccc069c403ebaf9f0171e9517f40e41"'
        ]
    )
    digest = mjpeg_http._pick_digest(challenge)
    assert digest is not None
    auth = mjpeg_http._DigestAuth("Mufasa", "Circle Of Life", digest)
    header = auth.authorization("GET", URL("http://h/dir/index.html"))
    assert 'response="6629fae49393a05397450978507c4ef1"' in header
    assert "nc=00000001" in header
    assert 'opaque="5ccc069c403ebaf9f0171e9517f40e41"' in header
    assert "algorithm" not in header
    assert "nc=00000002" in auth.authorization("GET", URL("http://h/dir/index.html"))


@pytest.mark.parametrize(
    ("algorithm", "response"),
    [
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ],
)
def test_digest_rfc7616_examples(
    monkeypatch: pytest.MonkeyPatch, algorithm: str, response: str
) -> None:
    monkeypatch.setattr(
        mjpeg_http.secrets,
        "token_hex",
        lambda n: "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
    )
    challenges = mjpeg_http._parse_challenges(
        [
            'Digest realm="http-auth@example.org", qop="auth, auth-int", '
            f"algorithm={algorithm}, "
            'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", '
            'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"'
        ]
    )
    digest = mjpeg_http._pick_digest(challenges)
    assert digest is not None
    header = mjpeg_http._DigestAuth("Mufasa", "Circle of Life", digest).authorization(
        "GET", URL("http://www.example.org/dir/index.html")
    )
    assert f'response="{response}"' in header
    assert f"algorithm={algorithm}" in header


def test_digest_sess_auth_int_and_quoting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mjpeg_http.secrets, "token_hex", lambda n: "c0ffee")
    challenge = {"realm": "r", "nonce": "n", "algorithm": "MD5-sess", "qop": "auth-int"}
    header = mjpeg_http._DigestAuth('we"ird\\', "pw", challenge).authorization(
        "GET", URL("http://h/a?b=c")
    )
    md5 = mjpeg_http._md5
    ha1 = md5(f"{md5(b'we"ird\\:r:pw').__str__()}:n:c0ffee".encode())
    ha2 = md5(f"GET:/a?b=c:{md5(b'')}".encode())
    expected = md5(f"{ha1}:n:00000001:c0ffee:auth-int:{ha2}".encode())
    assert f'response="{expected}"' in header
    assert 'username="we\\"ird\\\\"' in header
    assert 'uri="/a?b=c"' in header
    assert "qop=auth-int" in header
    # -sess without qop still sends its cnonce.
    no_qop = mjpeg_http._DigestAuth(
        "u", "p", {"realm": "r", "nonce": "n", "algorithm": "MD5-sess"}
    )
    header = no_qop.authorization("GET", URL("http://h/"))
    assert 'cnonce="c0ffee"' in header
    assert "nc=" not in header


def test_parse_challenges() -> None:
    parse = mjpeg_http._parse_challenges
    assert parse(['Basic realm="cam"']) == [("basic", {"realm": "cam"})]
    assert parse(
        ['Digest realm="a, b", nonce=xyz , qop="auth", Basic realm="c\\"d"']
    ) == [
        ("digest", {"realm": "a, b", "nonce": "xyz", "qop": "auth"}),
        ("basic", {"realm": 'c"d'}),
    ]
    assert parse(['Digest realm= "x" ,nonce = y']) == [
        ("digest", {"realm": "x", "nonce": "y"})
    ]
    assert parse(["Negotiate", "NTLM"]) == [("negotiate", {}), ("ntlm", {})]
    assert parse(['Digest realm="x", @@@']) == [("digest", {"realm": "x"})]
    assert parse([""]) == []
    assert mjpeg_http._pick_digest(parse(["Basic realm=x"])) is None
    # The strongest offered algorithm wins.
    picked = mjpeg_http._pick_digest(
        parse(
            ['Digest nonce="1", algorithm=MD5', 'Digest nonce="2", algorithm=SHA-256']
        )
    )
    assert picked is not None
    assert picked["nonce"] == "2"


# ------------------------------------------------------------------ stills


async def test_fetch_still(
    make_mjpeg_printer: PrinterFactory, session: aiohttp.ClientSession
) -> None:
    printer = await make_mjpeg_printer(
        username="maker", password=PASSWORD, auth="digest"
    )
    source = make_source(session, printer.url, username="maker", password=PASSWORD)
    still = await source.fetch_still(printer.still_url, WAIT)
    assert still == printer.stills_sent[-1]
    # Relative to the stream URL; the remembered digest answers at once.
    still = await source.fetch_still("/snapshot", WAIT)
    assert still == printer.stills_sent[-1]
    assert [r.status for r in printer.requests] == [401, 200, 200]
    # A stream URL used as still URL gives its first frame.
    frame = await source.fetch_still(printer.url, WAIT)
    assert frame == printer.connections[-1].frames[0]
    await printer.wait_for(lambda p: p.open_connections == 0)
    assert printer.max_open_connections == 1
    assert source.stats.connects == 0  # stills are not stream connections


async def test_fetch_still_with_credentials_in_its_url(
    make_mjpeg_printer: PrinterFactory, session: aiohttp.ClientSession
) -> None:
    printer = await make_mjpeg_printer(username="maker", password=PASSWORD)
    source = make_source(session, printer.url)
    url = f"http://maker:{PASSWORD}@127.0.0.1:{printer.port}/snapshot"
    # The source has no credentials; those of the still URL are not used
    # but are redacted from everything.
    with pytest.raises(InvalidAuth) as err:
        await source.fetch_still(url, WAIT)
    assert PASSWORD not in str(err.value)
    assert PASSWORD in source._secrets


async def test_fetch_still_errors(
    make_mjpeg_printer: PrinterFactory,
    canned: Callable[..., Awaitable[CannedServer]],
    session: aiohttp.ClientSession,
) -> None:
    printer = await make_mjpeg_printer(mode="not_mjpeg")
    source = make_source(session, printer.url, max_frame_size=100)
    with pytest.raises(NotMjpeg, match="does not return a JPEG"):
        await source.fetch_still(printer.still_url, WAIT)
    printer.set_mode("status_403")
    with pytest.raises(InvalidAuth):
        await source.fetch_still(printer.still_url, WAIT)
    printer.set_mode("good")
    with pytest.raises(ProtocolError, match="larger than 100 bytes"):
        await source.fetch_still(printer.still_url, WAIT)
    with pytest.raises(CannotConnect, match="not a valid URL"):
        await source.fetch_still("http://[::1", WAIT)
    with pytest.raises(CannotConnect, match="http:// or https://"):
        await source.fetch_still("ftp://x/y", WAIT)
    # The stream URL (multipart) while paused: no frame in time.
    printer.pause()
    with pytest.raises(SourceTimeout, match="no still image"):
        await source.fetch_still(printer.url, 0.2)

    source = make_source(session, printer.url)
    truncated = await canned(
        b"HTTP/1.0 200 OK\r\nContent-Type: image/jpeg\r\n\r\n" + numbered_jpeg(0)[:-10]
    )
    with pytest.raises(ProtocolError, match="incomplete JPEG"):
        await source.fetch_still(truncated.url, WAIT)
    padded = await canned(b"HTTP/1.0 200 OK\r\n\r\n" + numbered_jpeg(0) + b"\r\n\x00")
    assert await source.fetch_still(padded.url, WAIT) == numbered_jpeg(0)
    empty_stream = await canned(multipart_head() + b"--frame--\r\n")
    with pytest.raises(CannotConnect, match="before a frame"):
        await source.fetch_still(empty_stream.url, WAIT)
    cut = await canned(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n\xff\xd8")
    with pytest.raises(CannotConnect, match="cut the stream off"):
        await source.fetch_still(cut.url, WAIT)
    await printer.wait_for(lambda p: p.open_connections == 0)


# -------------------------------------------------------- reconnect loop


async def collect(
    source: FrameSource, disconnect: asyncio.Event, count: int
) -> list[bytes]:
    frames: list[bytes] = []
    async with (
        asyncio.timeout(WAIT),
        contextlib.aclosing(source.frames(disconnect)) as stream,
    ):
        async for frame in stream:
            frames.append(frame)
            if len(frames) == count:
                break
    return frames


async def test_reconnects_after_drops_with_backoff_and_events(
    make_mjpeg_printer: PrinterFactory, session: aiohttp.ClientSession
) -> None:
    printer = await make_mjpeg_printer(mode="one_client+drop_after:2")
    events = Recorder()
    source = make_source(session, printer.url, events=events)
    frames = await collect(source, asyncio.Event(), 6)
    # Byte-identical, in order, across three connections.
    assert (
        frames
        == [frame for record in printer.connections for frame in record.frames][:6]
    )
    assert printer.total_connections == 3
    await printer.wait_for(lambda p: p.open_connections == 0)
    assert printer.max_open_connections == 1
    assert printer.rejected_connections == 0
    assert events.names() == [
        "connecting",
        "connected",
        "disconnected",
        "connecting",
        "connected",
        "disconnected",
        "connecting",
        "connected",
    ]
    # A connection that delivered frames starts the attempts over.
    assert [e[1] for e in events.events if e[0] == "connecting"] == [1, 1, 1]
    disconnects = [e for e in events.events if e[0] == "disconnected"]
    assert all(
        isinstance(e[1], CannotConnect) and 0.01 <= e[2] <= 0.05 for e in disconnects
    )
    assert disconnects[1][2] > disconnects[0][2]  # backing off
    assert source.stats.connects == 3
    assert source.stats.attempts == 3
    assert source.stats.frames == 6
    assert source.stats.last_error is not None
    assert source.stats.last_error.startswith("cannot_connect: ")


async def test_a_body_that_ends_is_retried(
    make_mjpeg_printer: PrinterFactory, session: aiohttp.ClientSession
) -> None:
    printer = await make_mjpeg_printer(mode="http10_close+drop_after:1")
    events = Recorder()
    source = make_source(session, printer.url, events=events)
    frames = await collect(source, asyncio.Event(), 3)
    assert frames == printer.frames_sent[:3]
    disconnects = [e for e in events.events if e[0] == "disconnected"]
    assert str(disconnects[0][1]) == "the camera ended the stream"
    assert printer.max_open_connections == 1


async def test_failed_attempts_count_up_until_the_printer_is_back(
    make_mjpeg_printer: PrinterFactory, session: aiohttp.ClientSession
) -> None:
    printer = await make_mjpeg_printer()
    printer.refuse()
    events = Recorder()
    source = make_source(session, printer.url, events=events)
    disconnect = asyncio.Event()
    stream = source.frames(disconnect)
    try:
        async with asyncio.timeout(WAIT):
            first = asyncio.ensure_future(anext(stream))
            await events.wait_for(lambda r: r.count("disconnected") >= 3)
            await printer.accept()
            frame = await first
    finally:
        await stream.aclose()
    assert frame == printer.frames_sent[0]
    attempts = [e[1] for e in events.events if e[0] == "connecting"]
    assert attempts[:3] == [1, 2, 3]
    refused = [e[1] for e in events.events if e[0] == "disconnected"]
    assert all(isinstance(error, CannotConnect) for error in refused)
    await printer.wait_for(lambda p: p.open_connections == 0)


async def test_invalid_auth_mid_loop_is_raised(
    make_mjpeg_printer: PrinterFactory, session: aiohttp.ClientSession
) -> None:
    printer = await make_mjpeg_printer(username="maker", password=PASSWORD)
    events = Recorder()
    source = make_source(
        session, printer.url, username="maker", password=PASSWORD, events=events
    )
    frames: list[bytes] = []

    async def consume() -> None:
        async with (
            asyncio.timeout(WAIT),
            contextlib.aclosing(source.frames(asyncio.Event())) as stream,
        ):
            async for frame in stream:
                frames.append(frame)
                if len(frames) == 2:
                    printer.password = OTHER
                    printer.drop_all()

    with pytest.raises(InvalidAuth):
        await consume()
    assert frames == printer.frames_sent[: len(frames)]
    last = events.events[-1]
    assert last[0] == "disconnected"
    assert isinstance(last[1], InvalidAuth)
    assert last[2] is None
    assert source.stats.last_error is not None
    assert source.stats.last_error.startswith("invalid_auth")
    await printer.wait_for(lambda p: p.open_connections == 0)
    assert printer.max_open_connections == 1


async def test_disconnect_event_stops_the_loop_and_closes(
    make_mjpeg_printer: PrinterFactory, session: aiohttp.ClientSession
) -> None:
    printer = await make_mjpeg_printer()
    source = make_source(session, printer.url)
    disconnect = asyncio.Event()
    frames: list[bytes] = []
    async with asyncio.timeout(WAIT):
        async for frame in source.frames(disconnect):
            frames.append(frame)
            if len(frames) == 3:
                disconnect.set()
    assert len(frames) == 3
    assert not source.connected
    await printer.wait_for(lambda p: p.open_connections == 0)


async def test_disconnect_during_backoff_ends_the_loop(
    make_mjpeg_printer: PrinterFactory, session: aiohttp.ClientSession
) -> None:
    printer = await make_mjpeg_printer(mode="drop_after:1")
    events = Recorder()
    source = make_source(session, printer.url, events=events)
    source.backoff = Backoff(initial=10, cap=10)
    disconnect = asyncio.Event()
    frames: list[bytes] = []

    async def consume() -> None:
        async for frame in source.frames(disconnect):
            frames.append(frame)

    task = asyncio.create_task(consume())
    async with asyncio.timeout(WAIT):
        await events.wait_for(lambda r: r.count("disconnected") == 1)
        disconnect.set()
        await task  # ends at once, not after the 10 s backoff
    assert len(frames) == 1
    await printer.wait_for(lambda p: p.open_connections == 0)


async def test_disconnect_while_connecting_ends_without_retry(
    make_mjpeg_printer: PrinterFactory, session: aiohttp.ClientSession
) -> None:
    printer = await make_mjpeg_printer()
    printer.refuse()
    events = Recorder()

    class StopOnConnecting(Recorder):
        def on_connecting(self, attempt: int) -> None:
            super().on_connecting(attempt)
            disconnect.set()

    disconnect = asyncio.Event()
    events = StopOnConnecting()
    source = make_source(session, printer.url, events=events)
    async with asyncio.timeout(WAIT):
        assert [frame async for frame in source.frames(disconnect)] == []
    assert events.names() == ["connecting"]


async def test_aclose_mid_stream_closes_the_connection(
    make_mjpeg_printer: PrinterFactory, session: aiohttp.ClientSession
) -> None:
    printer = await make_mjpeg_printer()
    source = make_source(session, printer.url)
    stream = source.frames(asyncio.Event())
    async with asyncio.timeout(WAIT):
        await anext(stream)
        await anext(stream)
        assert source.connected
        assert printer.open_connections == 1
        await stream.aclose()
    await printer.wait_for(lambda p: p.open_connections == 0)
    assert printer.connections[0].hung_up_by == "client"
    assert not source.connected


async def test_cancelling_the_consumer_closes_the_connection(
    make_mjpeg_printer: PrinterFactory, session: aiohttp.ClientSession
) -> None:
    printer = await make_mjpeg_printer()
    printer.pause()
    source = make_source(session, printer.url)
    got_headers = asyncio.Event()

    class Connected(SourceEvents):
        def on_connected(self) -> None:
            got_headers.set()

    source.events = Connected()

    async def consume() -> None:
        async with contextlib.aclosing(source.frames(asyncio.Event())) as stream:
            async for _ in stream:
                pass

    task = asyncio.create_task(consume())
    async with asyncio.timeout(WAIT):
        await got_headers.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await printer.wait_for(lambda p: p.open_connections == 0)


async def test_backoff_reset_after_a_stable_connection(
    make_mjpeg_printer: PrinterFactory,
    session: aiohttp.ClientSession,
) -> None:
    printer = await make_mjpeg_printer(mode="drop_after:1")
    events = Recorder()
    source = make_source(session, printer.url, events=events)
    source.backoff.stable_after = 0.0
    await collect(source, asyncio.Event(), 3)
    delays = [e[2] for e in events.events if e[0] == "disconnected"]
    # Reset each time, so every delay is the initial one (plus jitter).
    assert all(0.01 <= delay <= 0.012 for delay in delays)


def test_backoff() -> None:
    backoff = Backoff(initial=1, cap=4, rng=random.Random(0))
    delays = [backoff.next_delay() for _ in range(5)]
    assert 1 <= delays[0] <= 1.2
    assert 2 <= delays[1] <= 2.4
    assert delays[2:] == [4, 4, 4]  # capped, jitter included
    backoff.reset_if_stable(10)
    assert backoff.next_delay() == 4
    backoff.reset_if_stable(base.BACKOFF_RESET_AFTER)
    assert backoff.next_delay() <= 1.2
    default = Backoff()
    assert default.initial == base.BACKOFF_INITIAL
    assert default.cap == base.BACKOFF_CAP
    assert default.stable_after == base.BACKOFF_RESET_AFTER
    quick = Backoff(initial=0.2, stable_after=3.0, rng=random.Random(0))
    quick.next_delay()
    quick.next_delay()
    quick.reset_if_stable(2.9)
    assert quick.next_delay() >= 0.8
    quick.reset_if_stable(3.0)
    assert quick.next_delay() <= 0.24


def test_default_events_are_no_ops() -> None:
    events = SourceEvents()
    events.on_connecting(1)
    events.on_connected()
    events.on_frame_dropped(1, "x")
    events.on_disconnected(None, None)
    assert SourceError.reason == "cannot_connect"
    assert {
        cls.reason
        for cls in (CannotConnect, InvalidAuth, NotMjpeg, SourceTimeout, ProtocolError)
    } == {
        "cannot_connect",
        "invalid_auth",
        "not_mjpeg",
        "timeout",
        "protocol_error",
    }


def test_body_scanner_sniffing_in_small_chunks() -> None:
    limit = mjpeg_http.SNIFF_LIMIT
    # Not multipart, a JPEG start early on, then only filler in small chunks:
    # keeps going past the sniff limit (a big first frame may be coming) and
    # gives up after the limit plus one maximal frame.
    scanner = mjpeg_http._BodyScanner("application/octet-stream", 10_000, "cam")
    assert scanner.feed(numbered_jpeg(0)[:20]) == []
    fed = 20
    for _ in range((limit + 10_000) // 1000):
        scanner.feed(b"\x00" * 1000)
        fed += 1000
    assert fed > limit
    with pytest.raises(NotMjpeg, match="no parsable JPEG"):
        scanner.feed(b"\x00" * 1000)
    # Multipart: filler alone is not conclusive; only non-JPEG parts are
    # (up to the bound on bytes without a frame).
    scanner = mjpeg_http._BodyScanner(
        "multipart/x-mixed-replace;boundary=frame", 10_000, "cam"
    )
    for _ in range(60):
        scanner.feed(b"\r\n" * 500)
    scanner.finish()
    scanner = mjpeg_http._BodyScanner("multipart/x-mixed-replace", 10_000, "cam")
    scanner.feed(part(b"x" * 20_000))  # oversize: a camera after all
    scanner.feed(b" " * (limit // 2))
    # A frame settles it for good.
    scanner = mjpeg_http._BodyScanner("text/html", 10_000, "cam")
    assert scanner.feed(part(numbered_jpeg(7)) + b"--frame\r\n") == [numbered_jpeg(7)]
    scanner.feed(b"<html>" * 10_000)
    scanner.finish()


# -------------------------------------------------------- hostile cameras

MEMORY_BOUND = 4 * 1024 * 1024
"""Peak Python allocation a hostile camera may cost a connection attempt
(unbounded, a 64 MiB header flood cost about 130 MB, a 255 KB gzip bomb
130 to 280 MB)."""


@contextlib.contextmanager
def peak_allocation() -> Iterator[list[int]]:
    """Measure the peak of traced allocations in the block, above its start."""
    tracing = tracemalloc.is_tracing()
    if not tracing:
        tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    result: list[int] = []
    try:
        yield result
    finally:
        result.append(tracemalloc.get_traced_memory()[1] - base)
        if not tracing:
            tracemalloc.stop()


async def run_loop(source: FrameSource) -> AsyncIterator[asyncio.Task[None]]:
    """Run the reconnect loop in a task (cancelled when the test is done)."""

    async def consume() -> None:
        async for _ in source.frames(asyncio.Event()):
            pass

    task = asyncio.create_task(consume())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, SourceError):
            await task


looping = contextlib.asynccontextmanager(run_loop)


async def test_header_drip_ends_at_the_head_deadline_and_backs_off(
    make_mjpeg_printer: PrinterFactory, session: aiohttp.ClientSession
) -> None:
    # One line every 0.3 s: each read comes well within the read timeout.
    printer = await make_mjpeg_printer(mode="header_drip")
    events = Recorder()
    source = make_source(
        session, printer.url, connect_timeout=0.5, read_timeout=1.0, events=events
    )
    loop = asyncio.get_running_loop()
    start = loop.time()
    async with looping(source):
        await events.wait_for(lambda r: r.count("disconnected") >= 1)
        ended = loop.time()
        # The normal backoff, then a new attempt.
        await events.wait_for(lambda r: r.count("connecting") >= 2)
    error, retry_in = events.events[1][1:]
    assert isinstance(error, SourceTimeout)
    assert str(error) == (
        f"127.0.0.1:{printer.port} sent no complete response head in 1.5 s"
    )
    assert retry_in is not None
    assert 1.5 <= ended - start < 1.5 + WAIT
    assert printer.hostile_head_bytes > 0
    assert events.count("connected") == 0
    await printer.wait_for(lambda p: p.open_connections == 0)
    assert printer.max_open_connections == 1


async def test_header_drip_over_auth_rounds_shares_one_deadline(
    canned: Callable[..., Awaitable[CannedServer]], session: aiohttp.ClientSession
) -> None:
    async def reply(writer: asyncio.StreamWriter) -> None:
        if len(server.requests) == 1:
            writer.write(
                b'HTTP/1.0 401 Unauthorized\r\nWWW-Authenticate: Basic realm="x"\r\n'
                b"Content-Length: 0\r\n\r\n"
            )
            return
        writer.write(b"HTTP/1.0 200 OK\r\n")
        while True:
            await asyncio.sleep(0.1)
            writer.write(b"X-Drip: 1\r\n")

    server = await canned(reply)
    source = make_source(
        session, server.url, username="u", password=OTHER, read_timeout=0.5
    )
    source._head_timeout = 1.0
    with pytest.raises(SourceTimeout, match="no complete response head in 1 s"):
        await drain(source)
    assert len(server.requests) == 2


async def test_header_flood_is_a_protocol_error_in_bounded_memory(
    make_mjpeg_printer: PrinterFactory, session: aiohttp.ClientSession
) -> None:
    printer = await make_mjpeg_printer(mode="header_flood")
    events = Recorder()
    source = make_source(session, printer.url, events=events)
    with (
        peak_allocation() as peak,
        pytest.raises(ProtocolError, match="response head over 65536 bytes"),
    ):
        await drain(source)
    assert peak[0] < MEMORY_BOUND
    with pytest.raises(ProtocolError, match="response head over"):
        await source.fetch_still(printer.still_url, WAIT)
    await printer.wait_for(lambda p: p.open_connections == 0)
    # The 64 MiB flood stopped as soon as the client hung up.
    assert printer.hostile_head_bytes < mjpeg_server.HEADER_FLOOD_BYTES // 4
    # In the loop: a typed error and the normal backoff.
    async with looping(source):
        await events.wait_for(lambda r: r.count("connecting") >= 2)
    error, retry_in = events.events[1][1:]
    assert isinstance(error, ProtocolError)
    assert retry_in is not None


async def test_a_big_head_under_the_limit_with_a_body_in_the_same_read(
    canned: Callable[..., Awaitable[CannedServer]], session: aiohttp.ClientSession
) -> None:
    # 60 KiB of headers, then 600 KB of frames written at once: what follows
    # a complete head is body, not head.
    headers = b"".join(f"X-Pad-{i}: {'p' * 1000}\r\n".encode() for i in range(60))
    frames = [with_comment(numbered_jpeg(i), b"c" * 60_000) for i in range(10)]
    server = await canned(
        b"HTTP/1.0 200 OK\r\n"
        + headers
        + b"Content-Type: multipart/x-mixed-replace; boundary=frame\r\n\r\n"
        + b"".join(part(frame) for frame in frames)
    )
    assert await drain(make_source(session, server.url)) == frames
    assert len(headers) < mjpeg_http.MAX_HEAD_BYTES


async def test_endless_informational_responses_are_bounded_too(
    canned: Callable[..., Awaitable[CannedServer]], session: aiohttp.ClientSession
) -> None:
    async def reply(writer: asyncio.StreamWriter) -> None:
        hint = b"HTTP/1.1 103 Early Hints\r\nLink: </x>; rel=preload\r\n\r\n"
        while True:
            writer.write(hint * 100)
            await writer.drain()

    server = await canned(reply)
    source = make_source(session, server.url)
    with pytest.raises(ProtocolError, match="response head over"):
        await drain(source)
    # A few informational heads before the real one are fine.
    server = await canned(
        b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n" * 3
        + multipart_head()
        + part(numbered_jpeg(1))
    )
    assert await drain(make_source(session, server.url)) == [numbered_jpeg(1)]


async def test_gzip_bomb_is_refused_unread_in_bounded_memory(
    make_mjpeg_printer: PrinterFactory, session: aiohttp.ClientSession
) -> None:
    # About 255 KB that inflate to one good part and 256 MiB of zeros.
    printer = await make_mjpeg_printer(mode="gzip_bomb")
    events = Recorder()
    source = make_source(session, printer.url, events=events)
    message = (
        f"127.0.0.1:{printer.port} sends a compressed body "
        "(Content-Encoding: gzip) although PrintCam asks for none"
    )
    with pytest.raises(ProtocolError, match=re.escape(message)):
        await source.fetch_frame(WAIT)  # the printer builds its bomb once
    with (
        peak_allocation() as peak,
        pytest.raises(ProtocolError, match=re.escape(message)),
    ):
        await source.fetch_frame(WAIT)
    assert peak[0] < MEMORY_BOUND
    # Asked for no encoding at all.
    assert {r.headers["Accept-Encoding"] for r in printer.requests} == {"identity"}
    with pytest.raises(ProtocolError, match="compressed body"):
        await source.fetch_still(printer.still_url, WAIT)
    # In the loop: the normal backoff, never a frame.
    async with looping(source):
        await events.wait_for(lambda r: r.count("connecting") >= 2)
    assert events.count("connected") == 0
    assert isinstance(events.errors()[0], ProtocolError)
    await printer.wait_for(lambda p: p.open_connections == 0)


@pytest.mark.parametrize(
    ("encoding", "refused"),
    [
        ("identity", False),
        (" Identity ", False),
        ("", False),
        ("deflate", True),
        ("br", True),
        ("gzip, identity", True),
    ],
)
async def test_content_encodings(
    canned: Callable[..., Awaitable[CannedServer]],
    session: aiohttp.ClientSession,
    encoding: str,
    refused: bool,
) -> None:
    server = await canned(
        f"HTTP/1.0 200 OK\r\nContent-Encoding: {encoding}\r\nContent-Type: "
        "multipart/x-mixed-replace; boundary=frame\r\n\r\n".encode()
        + part(numbered_jpeg(2))
    )
    source = make_source(session, server.url)
    if refused:
        with pytest.raises(
            ProtocolError, match=re.escape(f"(Content-Encoding: {encoding.strip()})")
        ):
            await drain(source)
    else:
        assert await drain(source) == [numbered_jpeg(2)]
    assert b"Accept-Encoding: identity\r\n" in server.requests[0]


async def test_a_refused_content_encoding_is_shown_short_and_redacted(
    canned: Callable[..., Awaitable[CannedServer]], session: aiohttp.ClientSession
) -> None:
    server = await canned(
        f"HTTP/1.0 200 OK\r\nContent-Encoding: {PASSWORD}{'x' * 500}\r\n\r\n".encode()
    )
    source = make_source(session, server.url, username="maker", password=PASSWORD)
    with pytest.raises(ProtocolError) as err:
        await drain(source)
    assert f"(Content-Encoding: {REDACTED}{'x' * 25})" in str(err.value)


async def test_a_closed_session_is_cannot_connect(
    make_mjpeg_printer: PrinterFactory,
) -> None:
    printer = await make_mjpeg_printer()
    async with aiohttp.ClientSession() as closed:
        pass
    with pytest.raises(CannotConnect, match="session is closed"):
        await drain(make_source(closed, printer.url))
    assert printer.total_connections == 0


async def test_requests_keep_the_sessions_headers_and_pool(
    make_mjpeg_printer: PrinterFactory,
) -> None:
    printer = await make_mjpeg_printer(mode="one_client")
    connector = aiohttp.TCPConnector()
    async with aiohttp.ClientSession(
        connector=connector, headers={"User-Agent": "HomeAssistant/test"}
    ) as session:
        source = make_source(session, printer.url)
        assert len(await take(source, 2)) == 2
        assert printer.requests[0].headers["User-Agent"] == "HomeAssistant/test"
        await printer.wait_for(lambda p: p.open_connections == 0)
        # The per-request sessions owned nothing: the pool lives on.
        assert not connector.closed
        assert len(await take(source, 1)) == 1
    assert connector.closed


# ------------------------------------------------------ no auth downgrade


def authorizations(printer: MjpegPrinter) -> list[str]:
    return [r.headers.get("Authorization", "").split(" ")[0] for r in printer.requests]


async def test_no_basic_after_digest_for_that_origin(
    make_mjpeg_printer: PrinterFactory,
    session: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    printer = await make_mjpeg_printer(
        username="maker", password=PASSWORD, auth="digest"
    )
    events = Recorder()
    source = make_source(
        session, printer.url, username="maker", password=PASSWORD, events=events
    )
    await take(source, 1)
    # Something now answers for the printer and asks for basic only.
    printer.auth = "basic"
    with pytest.raises(AuthDowngrade, match="basic authentication after offering"):
        await drain(source)
    with pytest.raises(AuthDowngrade):
        await source.fetch_still(printer.still_url, WAIT)
    # In the loop: not permanent (no reauth asking for the password again),
    # retried with backoff, and still never basic.
    async with looping(source):
        await events.wait_for(lambda r: r.count("disconnected") >= 2)
    assert all(isinstance(error, AuthDowngrade) for error in events.errors())
    retries = [event[2] for event in events.events if event[0] == "disconnected"]
    assert None not in retries
    assert "Basic" not in authorizations(printer)
    assert "not sending the password readable" in caplog.text
    # The printer does take basic: a source that never saw digest there sends it.
    fresh = make_source(session, printer.url, username="maker", password=PASSWORD)
    assert len(await take(fresh, 1)) == 1
    assert authorizations(printer)[-1] == "Basic"
    assert issubclass(AuthDowngrade, ProtocolError)
    assert not AuthDowngrade.permanent


async def test_remembered_basic_is_not_sent_after_the_origin_offered_digest(
    canned: Callable[..., Awaitable[CannedServer]], session: aiohttp.ClientSession
) -> None:
    challenges = [
        b'Basic realm="x"',  # 1: plain request
        None,  # 2: basic answer accepted
        b'Digest realm="x", nonce="n", algorithm=SHA-512-256',  # 3: to remembered basic
        b'Basic realm="x"',  # 4: plain request (basic no longer remembered)
    ]

    async def reply(writer: asyncio.StreamWriter) -> None:
        challenge = challenges[len(server.requests) - 1]
        if challenge is None:
            writer.write(multipart_head() + part(numbered_jpeg(0)))
        else:
            writer.write(
                b"HTTP/1.0 401 Unauthorized\r\nWWW-Authenticate: "
                + challenge
                + b"\r\nContent-Length: 0\r\n\r\n"
            )

    server = await canned(reply)
    source = make_source(session, server.url, username="u", password=PASSWORD)
    assert await drain(source) == [numbered_jpeg(0)]
    with pytest.raises(InvalidAuth, match="unsupported digest"):
        await drain(source)
    with pytest.raises(AuthDowngrade):
        await drain(source)
    sent = [b"Authorization: Basic" in request for request in server.requests]
    assert sent == [False, True, True, False]


async def test_basic_still_works_where_digest_was_never_offered(
    make_mjpeg_printer: PrinterFactory, session: aiohttp.ClientSession
) -> None:
    stream = await make_mjpeg_printer(
        username="maker", password=PASSWORD, auth="digest"
    )
    stills = await make_mjpeg_printer(username="maker", password=PASSWORD)
    source = make_source(session, stream.url, username="maker", password=PASSWORD)
    await take(source, 1)
    # Another origin: its own rules.
    assert await source.fetch_still(stills.still_url, WAIT) == stills.stills_sent[0]
    assert authorizations(stills) == ["", "Basic"]
    # Remembered per origin: basic at once there, digest at once here.
    await source.fetch_still(stills.still_url, WAIT)
    await take(source, 1)
    assert authorizations(stills) == ["", "Basic", "Basic"]
    assert authorizations(stream) == ["", "Digest", "Digest"]


# ------------------------------------------------ credentials in the query


async def test_credentials_in_the_query_string_never_show(
    make_mjpeg_printer: PrinterFactory,
    canned: Callable[..., Awaitable[CannedServer]],
    session: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    printer = await make_mjpeg_printer(
        username="admin", password=PASSWORD, auth="query"
    )
    query = f"?user=admin&pwd={PASSWORD}"
    source = make_source(session, printer.url + query)
    assert source.host == f"127.0.0.1:{printer.port}"
    # Sent as they are: the camera needs them.
    assert len(await take(source, 1)) == 1
    assert printer.requests[-1].path == f"/stream{query}"
    assert await source.fetch_still(printer.still_url + query, WAIT)
    errors: list[SourceError] = []
    with pytest.raises(InvalidAuth) as err:
        await drain(make_source(session, printer.url + "?user=admin&pwd=wrong-one"))
    errors.append(err.value)
    # A camera echoing the URL in its reason phrase.
    echo = await canned(
        f"HTTP/1.0 500 no stream at /stream{query}\r\nContent-Length: 0\r\n\r\n".encode()
    )
    source = make_source(session, echo.url + query)
    with pytest.raises(CannotConnect) as err:
        await drain(source)
    errors.append(err.value)
    assert str(err.value) == (
        f"127.0.0.1:{echo.port} answered HTTP 500 no stream at "
        f"/stream?user={REDACTED}&pwd={REDACTED}"
    )
    printer.refuse()
    source = make_source(session, printer.url + query)
    with pytest.raises(CannotConnect) as err:
        await drain(source)
    errors.append(err.value)
    for error in errors:
        assert PASSWORD not in str(error)
    assert PASSWORD not in (source.stats.last_error or "")
    assert PASSWORD not in caplog.text


async def test_a_password_with_a_raw_at_sign(
    make_mjpeg_printer: PrinterFactory,
    canned: Callable[..., Awaitable[CannedServer]],
    session: aiohttp.ClientSession,
) -> None:
    password = "p@ss@w0rd-9"
    printer = await make_mjpeg_printer(
        username="maker", password=password, auth="digest"
    )
    source = make_source(
        session, f"http://maker:{password}@127.0.0.1:{printer.port}/stream"
    )
    assert source.host == f"127.0.0.1:{printer.port}"
    assert len(await take(source, 1)) == 1
    echo = await canned(
        f"HTTP/1.0 500 see http://maker:{password}@cam/\r\n\r\n".encode()
    )
    source = make_source(session, f"http://maker:{password}@127.0.0.1:{echo.port}/s")
    with pytest.raises(CannotConnect) as err:
        await drain(source)
    assert str(err.value).endswith(f"see http://{REDACTED}@cam/")
    for piece in ("p@ss", "ss@w0rd", "w0rd"):
        assert piece not in str(err.value)


async def test_head_guard_trips_once_and_ignores_the_rest() -> None:
    protocol = ResponseHandler(asyncio.get_running_loop())  # no transport
    guard = mjpeg_http._HeadGuard(protocol)
    guard(b"x" * mjpeg_http.MAX_HEAD_BYTES)
    assert protocol.exception() is None
    guard(b"y")
    assert isinstance(protocol.exception(), mjpeg_http._HeadTooLarge)
    guard(b"z")  # after the trip: nothing reaches the parser
    assert mjpeg_http._HeadTooLarge.__mro__[1] is aiohttp.ClientError


def test_digest_challenge_with_bytes_that_are_not_utf8() -> None:
    """aiohttp decodes header bytes with surrogateescape (found by tests/fuzz).

    Such a challenge can be neither hashed nor sent back: a typed error, and
    never Basic instead of the Digest the camera asked for.
    """
    value = b'Digest realm="\xff", nonce="abc", qop="auth"'.decode(
        "utf-8", "surrogateescape"
    )
    with pytest.raises(ProtocolError, match="not valid text"):
        _pick_digest(_parse_challenges([value]))
    good = 'Digest realm="caf\u00e9", nonce="abc", qop="auth"'  # UTF-8 is fine
    assert _pick_digest(_parse_challenges([value, good])) is not None


def test_a_body_without_frames_is_dropped_after_a_bound() -> None:
    """Hostile bytes cost loop time to parse: bounded per connection."""
    scanner = _BodyScanner(
        "multipart/x-mixed-replace;boundary=frame", max_frame_size=100_000, host="cam"
    )
    part = b"--frame\r\nContent-Type: image/jpeg\r\n\r\n" + numbered_jpeg(1) + b"\r\n"
    assert scanner.feed(part + b"--frame\r\n") == [numbered_jpeg(1)]
    garbage = b"\n" * 16384
    limit = mjpeg_http.GARBAGE_FRAMES * 100_000 + mjpeg_http.SNIFF_LIMIT
    for _ in range(limit // len(garbage)):
        assert scanner.feed(garbage) == []  # within the bound: parsed, dropped
    with pytest.raises(ProtocolError, match="without a frame"):
        scanner.feed(garbage)
