"""Bambu Lab X1 / X1C / X1E / H2D / H2S / P2S / X2D camera: RTSPS through one ffmpeg.

One connection is one pinned `RtspsRelay` (TLS to port 322, certificate and
serial checked before any byte, credentials injected by the relay so the
access code never appears on ffmpeg's command line) and one ffmpeg process
reading the relay's loopback URL and writing multipart JPEG (`-f mpjpeg`) on
stdout, cut into frames by the project's parser. On every way out (stop,
restart, error, cancellation) ffmpeg is terminated, killed if it lingers,
and reaped, and the relay is closed: zombie ffmpeg processes of ~240 MB
each are a known failure of other tools. No Home Assistant imports: the
ffmpeg binary comes from the caller (Home Assistant's ffmpeg manager).
"""

from __future__ import annotations

import asyncio
from collections import deque
import contextlib
import logging
import os
import signal
from typing import TYPE_CHECKING, Any, Final

from custom_components.printcam.mjpeg import MjpegParser

from .base import (
    Backoff,
    CannotConnect,
    FrameSource,
    SourceError,
    SourceTimeout,
    wait_despite_cancel,
)
from .rtsps_relay import RtspsRelay

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator

_LOGGER = logging.getLogger(__name__)

DEFAULT_PORT: Final = 322
BOUNDARY: Final = "ffmpeg"
"""The boundary ffmpeg's mpjpeg muxer writes."""
FIRST_FRAME_TIMEOUT: Final = 20.0
"""ffmpeg probes the H.264 stream before its first JPEG (about 2 s)."""
READ_TIMEOUT: Final = 15.0
"""No byte from ffmpeg for this long: the session is dead, restart it."""
STOP_TIMEOUT: Final = 2.0
"""How long ffmpeg may take to exit after SIGTERM before it is killed."""
RESPAWN_DELAY: Final = 0.2
"""First delay before a new session after the printer ended one (a P2S ends
its session every few seconds); it doubles while sessions keep failing."""
RESPAWN_STABLE_AFTER: Final = 0.0
"""A session that delivered any frame was good: respawn quickly again. (ffmpeg
takes about 2 s to its first frame, so a P2S ending its session every few
seconds delivers only a second or two; counting that as failing doubled the
delay up to 30 s.)"""
STDERR_LINES: Final = 20
"""Last ffmpeg stderr lines kept for diagnostics."""
P2S_INPUT_FLAGS: Final = (
    "-probesize",
    "1000000",
    "-analyzeduration",
    "500000",
    "-use_wallclock_as_timestamps",
    "1",
)
"""P2S firmware 01.02 sends equal timestamps: without these ffmpeg keeps the
first frame and drops every later one."""


class FfmpegMissing(SourceError):
    """Home Assistant's ffmpeg binary cannot be run: retrying cannot help."""

    reason = "ffmpeg_missing"
    permanent = True


class BambuRtspsSource(FrameSource):
    """An X1/H2/P2S printer camera: one pinned relay and one ffmpeg."""

    family = "bambu"

    def __init__(
        self,
        host: str,
        serial: str,
        access_code: str,
        *,
        cert_sha256: str,
        ffmpeg: str = "ffmpeg",
        port: int = DEFAULT_PORT,
        model: str | None = None,
        fps: float = 15.0,
        quality: int = 5,
        size: str | None = None,
    ) -> None:
        """Describe the printer and the transcode; nothing runs yet."""
        super().__init__()
        self.backoff = Backoff(RESPAWN_DELAY, stable_after=RESPAWN_STABLE_AFTER)
        self._hostname = host
        self._port = port
        self._serial = serial
        self._access_code = access_code
        self._cert_sha256 = cert_sha256
        self._ffmpeg = ffmpeg
        self._model = model
        self._fps = fps
        self._quality = quality
        self._size = size
        self.stderr_tail: deque[str] = deque(maxlen=STDERR_LINES)
        """ffmpeg's last stderr lines (no secret: its URL has none)."""
        self.processes_started = 0
        self.last_pid: int | None = None
        """The pid of the latest ffmpeg (tests check it was reaped)."""

    def __repr__(self) -> str:
        """Return a description without the access code."""
        return f"<{type(self).__name__} {self.host} serial={self._serial}>"

    @property
    def host(self) -> str:
        """Return ``host:port`` (never the access code)."""
        return f"{self._hostname}:{self._port}"

    def configure(self, *, fps: float, quality: int, size: str | None) -> bool:
        """Change the transcode: frame rate (0: the printer's), ``-q:v``, size.

        Applies from the next ffmpeg on; returns True if anything changed
        (the caller restarts a running session to apply it now).
        """
        new = (fps, quality, size)
        if new == (self._fps, self._quality, self._size):
            return False
        self._fps, self._quality, self._size = new
        return True

    def diagnostics(self) -> dict[str, Any]:
        """Return the transcode and ffmpeg's recent messages (no secret in them)."""
        return {
            "ffmpeg": {
                "command": self.ffmpeg_args("rtsp://127.0.0.1:<relay>/"),
                "processes_started": self.processes_started,
                "running": self.connected,
                "stderr_tail": list(self.stderr_tail),
            }
        }

    def ffmpeg_args(self, url: str) -> list[str]:
        """Return ffmpeg's command line for the relay's local `url`."""
        args = [
            self._ffmpeg,
            "-hide_banner",
            "-nostdin",
            "-loglevel",
            "error",
            "-rtsp_transport",
            "tcp",
        ]
        if self._model == "P2S":
            args += P2S_INPUT_FLAGS
        args += ["-i", url, "-an"]
        if self._size:
            # Fit inside the size, keeping the picture's aspect ratio.
            width, height = self._size.split("x")
            args += [
                "-vf",
                f"scale={width}:{height}:force_original_aspect_ratio=decrease"
                ":force_divisible_by=2",
            ]
        if self._fps > 0:
            args += ["-r", f"{self._fps:g}"]
        args += ["-q:v", str(self._quality), "-f", "mpjpeg", "-"]
        return args

    async def connect(self) -> AsyncGenerator[bytes]:
        """Open the relay and ffmpeg; yield JPEG frames until either ends."""
        relay = RtspsRelay(
            self._hostname,
            self._serial,
            self._access_code,
            cert_sha256=self._cert_sha256,
            port=self._port,
        )
        proc: asyncio.subprocess.Process | None = None
        stderr_task: asyncio.Task[None] | None = None
        try:
            url = await relay.start()  # raises before any byte is sent
            try:
                proc = await asyncio.create_subprocess_exec(
                    *self.ffmpeg_args(url),
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                    start_new_session=True,  # its own group: nothing survives it
                )
            except OSError as err:  # not installed, not executable
                raise FfmpegMissing(
                    f"cannot run ffmpeg ({self._ffmpeg}): {err.strerror or err}"
                ) from None
            self.processes_started += 1
            self.last_pid = proc.pid
            assert proc.stdout is not None  # noqa: S101 - PIPE above
            assert proc.stderr is not None  # noqa: S101 - PIPE above
            stderr_task = asyncio.get_running_loop().create_task(
                self._drain(proc.stderr), name=f"printcam ffmpeg stderr {self.host}"
            )
            parser = MjpegParser(BOUNDARY)
            timeout = FIRST_FRAME_TIMEOUT
            while True:
                try:
                    async with asyncio.timeout(timeout):
                        chunk = await proc.stdout.read(65536)
                except TimeoutError:
                    raise SourceTimeout(
                        f"no picture from {self.host} in {timeout:g} s"
                    ) from None
                if not chunk:
                    raise self._ended(relay, proc)
                for frame in parser.feed(chunk):
                    self._mark_connected()
                    timeout = READ_TIMEOUT
                    yield frame
        finally:
            # Each step runs even if an earlier one was cancelled.
            try:
                if proc is not None:
                    await _stop(proc)
            finally:
                try:
                    if stderr_task is not None:
                        await wait_despite_cancel(stderr_task)
                finally:
                    await relay.close()

    def _ended(
        self, relay: RtspsRelay, proc: asyncio.subprocess.Process
    ) -> SourceError:
        """Explain why ffmpeg's output ended: the relay knows the printer's side."""
        if relay.error is not None:  # e.g. InvalidAuth after an RTSP 401
            return relay.error
        tail = self.stderr_tail[-1] if self.stderr_tail else "no message"
        return CannotConnect(
            f"ffmpeg for {self.host} ended ({proc.returncode}): {tail}"
        )

    async def _drain(self, stream: asyncio.StreamReader) -> None:
        """Keep ffmpeg's last stderr lines; never let the pipe fill up."""
        while line := await stream.readline():
            self.stderr_tail.append(line.decode("utf-8", "replace").rstrip())


async def _stop(proc: asyncio.subprocess.Process) -> None:
    """Terminate ffmpeg (its whole group), kill it if it lingers, reap it.

    Shielded: a cancellation arriving meanwhile still leaves no process.
    """

    async def stop() -> None:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                async with asyncio.timeout(STOP_TIMEOUT):
                    await proc.wait()
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()

    task = asyncio.get_running_loop().create_task(stop(), name="printcam ffmpeg stop")
    await wait_despite_cancel(task)
