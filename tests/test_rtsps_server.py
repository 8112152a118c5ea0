"""The RTSPS test printer (printer_sim.rtsps): Debian's GStreamer RTSP server.

Checked with the real ffmpeg (/usr/bin/ffmpeg): every mode behaves like an
X1C's port 322 does for ffmpeg, and the server's counters see what a test
of PrintCam needs to see (one client at a time, sessions, refusals).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
import contextlib
import hashlib
import os
import signal
import socket
import ssl
import time

import pytest

from printer_sim.rtsps import RtspsPrinter

from .rtsps_support import FFMPEG, SKIP_REASON

if SKIP_REASON is not None:
    pytest.skip(SKIP_REASON, allow_module_level=True)


@pytest.fixture(autouse=True)
def _sockets(socket_enabled: None) -> None:
    """These tests open real loopback connections (pytest-socket allows them)."""


def _soi_count(data: bytes) -> int:
    return data.count(b"\xff\xd8\xff")


async def _ffmpeg(
    url: str,
    frames: int,
    *,
    input_flags: Sequence[str] = (),
    timeout: float = 20.0,
) -> tuple[int | None, bytes, str]:
    """Run ffmpeg RTSP-over-TCP -> MJPEG on stdout; kill it after ``timeout``.

    Returns (exit status or None if it had to be killed, stdout, stderr).
    """
    process = await asyncio.create_subprocess_exec(
        FFMPEG,
        "-hide_banner",
        "-nostdin",
        "-loglevel",
        "error",
        "-rtsp_transport",
        "tcp",
        *input_flags,
        "-i",
        url,
        "-an",
        "-f",
        "mjpeg",
        "-frames:v",
        str(frames),
        "-",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        stdout, stderr = await process.communicate()
        return None, stdout, stderr.decode(errors="replace")
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    return process.returncode, stdout, stderr.decode(errors="replace")


@contextlib.asynccontextmanager
async def _printer(**kwargs: object) -> AsyncIterator[RtspsPrinter]:
    printer = RtspsPrinter(**kwargs)  # type: ignore[arg-type]
    await printer.start()
    try:
        yield printer
    finally:
        pid = printer.pid
        port = printer.port
        await printer.stop()
        assert pid is not None
        _assert_gone(pid, port)


def _assert_gone(pid: int, port: int) -> None:
    """No process (group) left and nothing listening on the port."""
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with (
        pytest.raises(ConnectionRefusedError),
        socket.create_connection(("127.0.0.1", port), timeout=5),
    ):
        pass


async def test_good_delivers_jpeg_frames_one_connection() -> None:
    async with _printer(serial="00M09A350100123") as printer:
        assert printer.start_seconds is not None
        assert printer.start_seconds < 15
        assert printer.url == (
            f"rtsps://bblp:12345678@127.0.0.1:{printer.port}/streaming/live/1"
        )
        code, out, err = await _ffmpeg(printer.url, 3)
        assert code == 0, err
        assert _soi_count(out) == 3
        assert out.startswith(b"\xff\xd8")
        status = await printer.wait_for(lambda s: s["connections_open"] == 0)
        assert status["connections_total"] == 1
        assert status["max_open"] == 1
        assert status["refused"] == 0
        assert status["sessions"] == 1
        assert status["plays"] == 1


async def test_certificate_cn_is_the_serial() -> None:
    async with _printer(serial="00M09A350100124") as printer:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        reader, writer = await asyncio.open_connection(
            printer.host, printer.port, ssl=context
        )
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        writer.close()
        await writer.wait_closed()
        assert reader is not None
        assert hashlib.sha256(der).hexdigest() == printer.cert_sha256
        assert printer.certificate.common_name == "00M09A350100124"
        await printer.wait_for(lambda s: s["connections_open"] == 0)


@pytest.mark.parametrize(("mode", "use_wrong"), [("wrong_code", False), ("good", True)])
async def test_wrong_code_is_401(mode: str, use_wrong: bool) -> None:
    async with _printer(mode=mode) as printer:
        url = printer.url_with_code("87654321") if use_wrong else printer.url
        code, out, err = await _ffmpeg(url, 3)
        assert code not in (0, None)
        assert "401" in err
        assert out == b""
        status = await printer.wait_for(lambda s: s["connections_open"] == 0)
        assert status["sessions"] == 0


async def test_digest_auth_works() -> None:
    async with _printer(auth="digest") as printer:
        code, out, err = await _ffmpeg(printer.url, 2)
        assert code == 0, err
        assert _soi_count(out) == 2


async def test_liveview_off_fails_at_once() -> None:
    async with _printer(mode="liveview_off") as printer:
        started = time.monotonic()
        code, out, err = await _ffmpeg(printer.url, 3)
        assert time.monotonic() - started < 5
        assert code not in (0, None)
        assert out == b""
        assert err
        status = await printer.wait_for(lambda s: s["refused"] == 1)
        assert status["connections_total"] == 1
        assert status["sessions"] == 0


async def test_second_concurrent_client_is_refused_and_counted() -> None:
    async with _printer() as printer:
        first = asyncio.create_task(_ffmpeg(printer.url, 100_000, timeout=30))
        try:
            await printer.wait_for(lambda s: s["plays"] == 1, timeout=20)
            started = time.monotonic()
            code, out, _err = await _ffmpeg(printer.url, 3)
            assert time.monotonic() - started < 5
            assert code not in (0, None)
            assert out == b""
            status = await printer.wait_for(lambda s: s["refused"] == 1)
            assert status["max_open"] == 1
            assert status["connections_open"] == 1
            assert status["connections_total"] == 2
            assert not first.done()
        finally:
            first.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await first
        await printer.wait_for(lambda s: s["connections_open"] == 0)


async def test_drop_every_ends_the_session() -> None:
    async with _printer(mode="drop_every:1.5") as printer:
        started = time.monotonic()
        code, out, _err = await _ffmpeg(printer.url, 100_000, timeout=20)
        assert code is not None, "ffmpeg still running: the session was not dropped"
        assert time.monotonic() - started < 15
        assert _soi_count(out) >= 1
        status = await printer.wait_for(lambda s: s["connections_open"] == 0)
        assert status["dropped"] == 1


async def test_p2s_timestamps_need_wallclock() -> None:
    """Every RTP packet has one timestamp: ffmpeg stalls without the P2S flags."""
    async with _printer(mode="p2s_timestamps") as printer:
        code, out, err = await _ffmpeg(
            printer.url,
            10,
            input_flags=(
                "-probesize",
                "1000000",
                "-analyzeduration",
                "500000",
                "-use_wallclock_as_timestamps",
                "1",
            ),
        )
        assert code == 0, err
        assert _soi_count(out) == 10
        await printer.wait_for(lambda s: s["connections_open"] == 0)
        # Without them, ffmpeg keeps the first frame and drops the later
        # ones: at 15 fps, 10 frames take well under a second normally.
        code, out, _err = await _ffmpeg(printer.url, 10, timeout=4)
        assert code is None
        assert _soi_count(out) < 10


async def test_stop_kills_a_server_ignoring_sigterm_and_leaves_nothing() -> None:
    printer = RtspsPrinter()
    await printer.start()
    pid, port = printer.pid, printer.port
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)  # SIGTERM stays pending: stop() must kill
    await printer.stop(timeout=1)
    _assert_gone(pid, port)
    await printer.stop()  # idempotent
