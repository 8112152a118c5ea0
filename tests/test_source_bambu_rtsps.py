"""The X1/H2/P2S source (sources/bambu_rtsps.py) against a real RTSPS server.

Debian's GStreamer RTSP server (printer_sim.rtsps) plays the printer's port
322; the source reaches it through the pinned relay and Debian's ffmpeg.
Each test checks that no ffmpeg is left and that the server never saw two
clients at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
import contextlib
import os
from pathlib import Path
import signal

import pytest

from custom_components.printcam.sources import (
    CertificateMismatch,
    InvalidAuth,
    LiveviewDisabled,
    bambu_rtsps,
)
from custom_components.printcam.sources.bambu_rtsps import BambuRtspsSource
from custom_components.printcam.sources.base import Backoff, SourceTimeout
from printer_sim.rtsps import RtspsPrinter

from .rtsps_support import FFMPEG, SKIP_REASON, reaped

if SKIP_REASON is not None:
    pytest.skip(SKIP_REASON, allow_module_level=True)

WAIT = 30.0  # ffmpeg probes the stream first; CI machines are loaded


@pytest.fixture(autouse=True)
def _sockets(socket_enabled: None) -> None:
    """Real loopback connections (pytest-socket allows them on request)."""


@contextlib.asynccontextmanager
async def _printer(**kwargs: object) -> AsyncIterator[RtspsPrinter]:
    printer = RtspsPrinter(**kwargs)  # type: ignore[arg-type]
    await printer.start()
    try:
        yield printer
    finally:
        await printer.stop()
        assert printer.status.get("max_open", 0) <= 1, printer.status


def _source(printer: RtspsPrinter, **changes: str) -> BambuRtspsSource:
    options = {
        "serial": printer.serial,
        "access_code": printer.access_code,
        "cert_sha256": printer.cert_sha256,
        **changes,
    }
    source = BambuRtspsSource(
        printer.host,
        options["serial"],
        options["access_code"],
        cert_sha256=options["cert_sha256"],
        ffmpeg=FFMPEG,
        port=printer.port,
        fps=5,
    )
    source.backoff = Backoff(initial=0.1, cap=0.3)
    return source


async def test_frames_through_one_pinned_relay_and_one_ffmpeg() -> None:
    async with _printer() as printer:
        source = _source(printer)
        frames: list[bytes] = []
        async with asyncio.timeout(WAIT):
            async with contextlib.aclosing(source.connect()) as stream:
                async for frame in stream:
                    frames.append(frame)
                    if len(frames) == 3:
                        break
        assert all(
            f.startswith(b"\xff\xd8") and f.endswith(b"\xff\xd9") for f in frames
        )
        assert source.processes_started == 1
        assert reaped(source.last_pid)
        assert "12345678" not in " ".join(source.ffmpeg_args("rtsp://x/"))
        await printer.wait_for(lambda s: s.get("connections_open", 0) == 0)
        assert printer.status["connections_total"] == 1


async def test_wrong_code_is_invalid_auth() -> None:
    async with _printer() as printer:
        source = _source(printer, access_code="87654321")
        with pytest.raises(InvalidAuth):
            async with asyncio.timeout(WAIT):
                await source.fetch_frame(WAIT)
        assert reaped(source.last_pid)


async def test_liveview_off_is_said_before_ffmpeg_starts() -> None:
    async with _printer(mode="liveview_off") as printer:
        source = _source(printer)
        with pytest.raises(LiveviewDisabled):
            await source.fetch_frame(WAIT)
        assert source.processes_started == 0


async def test_another_certificate_gets_no_rtsp_byte() -> None:
    async with _printer() as printer:
        source = _source(printer, cert_sha256="00" * 32)
        with pytest.raises(CertificateMismatch):
            await source.fetch_frame(WAIT)
        assert source.processes_started == 0
        assert printer.status.get("sessions", 0) == 0


async def test_ffmpeg_killed_mid_stream_is_replaced_and_frames_go_on() -> None:
    async with _printer() as printer:
        source = _source(printer)
        disconnect = asyncio.Event()
        got = 0
        first_pid: int | None = None
        async with asyncio.timeout(WAIT * 2):
            async with contextlib.aclosing(source.frames(disconnect)) as frames:
                async for _frame in frames:
                    got += 1
                    if got == 2:
                        first_pid = source.last_pid
                        assert first_pid is not None
                        os.kill(first_pid, signal.SIGKILL)
                    if source.processes_started == 2 and got >= 4:
                        break
        assert first_pid is not None
        assert reaped(first_pid)
        assert reaped(source.last_pid)
        assert source.processes_started == 2


def test_ffmpeg_command_line_per_model_and_options() -> None:
    source = BambuRtspsSource(
        "printer.lan",
        "01P00A000000001",
        "12345678",
        cert_sha256="00" * 32,
        model="P2S",
        fps=0,
        size="1280x720",
    )
    args = source.ffmpeg_args("rtsp://127.0.0.1:5000/streaming/live/1")
    assert "-use_wallclock_as_timestamps" in args  # the P2S timestamp fix
    assert args[args.index("-vf") + 1] == (
        "scale=1280:720:force_original_aspect_ratio=decrease:force_divisible_by=2"
    )
    assert "-r" not in args  # every frame
    assert args[-2:] == ["mpjpeg", "-"]
    assert "12345678" not in " ".join(args)
    assert "12345678" not in repr(source)
    assert source.host == "printer.lan:322"

    # Options change the next ffmpeg; an unchanged transcode needs no restart.
    assert source.configure(fps=5, quality=10, size=None)
    assert not source.configure(fps=5, quality=10, size=None)
    args = source.ffmpeg_args("rtsp://127.0.0.1:5000/streaming/live/1")
    assert "-vf" not in args
    assert args[args.index("-r") + 1] == "5"
    assert args[args.index("-q:v") + 1] == "10"
    ffmpeg = source.diagnostics()["ffmpeg"]
    assert ffmpeg["command"][args.index("-q:v") + 1] == "10"
    assert ffmpeg["processes_started"] == 0
    assert ffmpeg["stderr_tail"] == []
    assert "12345678" not in str(ffmpeg)


@pytest.fixture
def stubborn_ffmpeg(tmp_path: Path) -> str:
    """An "ffmpeg" that never writes and ignores SIGTERM (a wedged one)."""
    script = tmp_path / "ffmpeg"
    script.write_text("#!/bin/sh\ntrap '' TERM\nwhile :; do sleep 0.05; done\n")
    script.chmod(0o755)
    return str(script)


async def test_a_wedged_ffmpeg_times_out_and_is_killed(
    stubborn_ffmpeg: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bambu_rtsps, "FIRST_FRAME_TIMEOUT", 0.3)
    monkeypatch.setattr(bambu_rtsps, "STOP_TIMEOUT", 0.3)
    async with _printer() as printer:
        source = _source(printer)
        source._ffmpeg = stubborn_ffmpeg
        with pytest.raises(SourceTimeout, match="no picture"):
            await source.fetch_frame(WAIT)
        assert reaped(source.last_pid)  # SIGTERM ignored: killed, reaped


async def test_cancelled_while_stopping_ffmpeg_still_reaps_it(
    stubborn_ffmpeg: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bambu_rtsps, "FIRST_FRAME_TIMEOUT", 0.2)
    monkeypatch.setattr(bambu_rtsps, "STOP_TIMEOUT", 2.0)
    stopping = asyncio.Event()
    stop = bambu_rtsps._stop

    async def spy(proc: asyncio.subprocess.Process) -> None:
        stopping.set()
        await stop(proc)

    monkeypatch.setattr(bambu_rtsps, "_stop", spy)
    async with _printer() as printer:
        source = _source(printer)
        source._ffmpeg = stubborn_ffmpeg
        task = asyncio.create_task(source.fetch_frame(WAIT))
        # Cancel exactly while ffmpeg is being stopped (it ignores SIGTERM).
        await asyncio.wait_for(stopping.wait(), WAIT)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert reaped(source.last_pid)


async def test_missing_ffmpeg_is_a_clear_permanent_error(tmp_path: Path) -> None:
    async with _printer() as printer:
        source = _source(printer)
        source._ffmpeg = str(tmp_path / "no-ffmpeg")
        with pytest.raises(bambu_rtsps.FfmpegMissing, match="cannot run ffmpeg") as err:
            await source.fetch_frame(WAIT)
        assert err.value.permanent
        assert err.value.reason == "ffmpeg_missing"
        assert source.processes_started == 0
