"""A Bambu Lab X1-style RTSPS camera for tests: Debian's GStreamer RTSP server.

`RtspsPrinter` makes a self-signed certificate whose CN is the serial,
writes it to a temporary directory and runs ``rtsps_server.py`` (next to
this file) with the system Python, ``/usr/bin/python3``, which has Debian's
``python3-gi`` and GStreamer RTSP server (``scripts/setup`` installs them;
`rtsps_available` tells whether they are there). The server serves an H.264
test pattern at ``rtsps://bblp:<access code>@127.0.0.1:<port>/streaming/live/1``
to one client at a time; see ``rtsps_server.py`` for its modes and counters.

The server prints JSON lines on stdout; a reader task keeps the latest
counters in `status` and wakes `wait_for`. `stop()` sends SIGTERM to the
server's process group, waits, kills it if needed, reaps it and ends the
reader task, so a test leaves no process, task or socket behind::

    async with RtspsPrinter(mode="good") as printer:
        url = printer.url
        await printer.wait_for(lambda s: s["plays"] >= 1)
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
import contextlib
import json
import os
from pathlib import Path
import signal
import subprocess
import tempfile
import time
from types import TracebackType
from typing import Any, Final, Self

from .certs import Certificate, make_certificate

__all__ = [
    "RTSPS_PACKAGES",
    "SYSTEM_PYTHON",
    "RtspsPrinter",
    "rtsps_available",
]

SYSTEM_PYTHON: Final = "/usr/bin/python3"
SERVER_SCRIPT: Final = Path(__file__).with_name("rtsps_server.py")
RTSPS_PACKAGES: Final = (
    "gir1.2-gst-rtsp-server-1.0",
    "python3-gi",
    "gstreamer1.0-plugins-base",
    "gstreamer1.0-plugins-good",
    "gstreamer1.0-plugins-bad",
    "gstreamer1.0-plugins-ugly",
    "gstreamer1.0-rtsp",
)
_PROBE: Final = (
    "import gi; gi.require_version('Gst', '1.0'); "
    "gi.require_version('GstRtspServer', '1.0'); "
    "from gi.repository import Gst, GstRtspServer; Gst.init(None); "
    "missing = [e for e in ('videotestsrc', 'x264enc', 'h264parse', "
    "'rtph264pay', 'videoconvert') if Gst.ElementFactory.find(e) is None]; "
    "print(' '.join(missing)); raise SystemExit(1 if missing else 0)"
)


def rtsps_available() -> str | None:
    """Return None if the server can run here, else the reason it cannot.

    Blocking (runs the system Python once, ~0.2 s): call it at import time
    or in an executor.
    """
    if not Path(SYSTEM_PYTHON).exists():
        return f"{SYSTEM_PYTHON} is missing"
    try:
        result = subprocess.run(  # noqa: S603
            [SYSTEM_PYTHON, "-c", _PROBE],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"{SYSTEM_PYTHON} failed: {err}"
    if result.returncode:
        detail = result.stdout.strip() or result.stderr.strip().splitlines()[-1:]
        return (
            f"GStreamer RTSP server not usable by {SYSTEM_PYTHON} ({detail}); "
            f"scripts/setup installs: {' '.join(RTSPS_PACKAGES)}"
        )
    return None


class RtspsPrinter:
    """A GStreamer RTSPS server in its own process, like an X1C's port 322."""

    def __init__(
        self,
        *,
        mode: str = "good",
        serial: str = "00M00A000000001",
        access_code: str = "12345678",
        size: str = "320x240",
        fps: int = 15,
        bitrate_kbps: int = 300,
        auth: str = "basic",
        pattern: str = "ball",
        port: int = 0,
        certificate: Certificate | None = None,
        start_timeout: float = 20.0,
    ) -> None:
        """Describe the server; `start()` (or ``async with``) runs it."""
        self.mode = mode
        self.serial = serial
        self.access_code = access_code
        self.size = size
        self.fps = fps
        self.bitrate_kbps = bitrate_kbps
        self.auth = auth
        self.pattern = pattern
        self.requested_port = port
        self.certificate = certificate or make_certificate(serial)
        self.start_timeout = start_timeout
        self.port = 0
        self.status: dict[str, int] = {}
        """The latest counters the server printed (see rtsps_server.py)."""
        self.events: list[dict[str, Any]] = []
        """Every JSON line the server printed, in order."""
        self.start_seconds: float | None = None
        """How long the last `start()` took until the server was ready."""
        self.stderr_tail: list[str] = []
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._stderr_reader: asyncio.Task[None] | None = None
        self._changed = asyncio.Condition()
        self._eof = False
        self._directory: tempfile.TemporaryDirectory[str] | None = None

    # --- what a client needs ----------------------------------------------

    @property
    def host(self) -> str:
        """Return the address the server listens on."""
        return "127.0.0.1"

    @property
    def url(self) -> str:
        """Return the stream URL with user bblp and the access code."""
        return self.url_with_code(self.access_code)

    def url_with_code(self, code: str) -> str:
        """Return the stream URL with another access code."""
        return f"rtsps://bblp:{code}@{self.host}:{self.port}/streaming/live/1"

    @property
    def cert_sha256(self) -> str:
        """Return the SHA-256 fingerprint of the certificate it presents."""
        return self.certificate.sha256

    @property
    def pid(self) -> int | None:
        """Return the server's process id while it runs."""
        return self._process.pid if self._process else None

    # --- life cycle ----------------------------------------------------------

    async def __aenter__(self) -> Self:
        """Start the server."""
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Stop the server."""
        await self.stop()

    async def start(self) -> None:
        """Run the server and wait until it listens (its ready line)."""
        if self._process is not None:
            raise RuntimeError("already started")
        started = time.monotonic()
        self._directory = tempfile.TemporaryDirectory(prefix="printcam-rtsps-")
        cert_path = Path(self._directory.name, "cert.pem")
        key_path = Path(self._directory.name, "key.pem")
        cert_path.write_bytes(self.certificate.cert_pem)
        key_path.write_bytes(self.certificate.key_pem)
        key_path.chmod(0o600)
        self.status = {}
        self.events = []
        self.stderr_tail = []
        self._eof = False
        # The access code is on this command line: fine for a test server
        # on loopback.
        self._process = await asyncio.create_subprocess_exec(
            SYSTEM_PYTHON,
            str(SERVER_SCRIPT),
            "--cert",
            str(cert_path),
            "--key",
            str(key_path),
            "--access-code",
            self.access_code,
            "--port",
            str(self.requested_port),
            "--mode",
            self.mode,
            "--size",
            self.size,
            "--fps",
            str(self.fps),
            "--bitrate",
            str(self.bitrate_kbps),
            "--auth",
            self.auth,
            "--pattern",
            self.pattern,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
            env=_system_env(),
        )
        stdout, stderr = self._process.stdout, self._process.stderr
        if stdout is None or stderr is None:  # pragma: no cover - PIPE given
            raise RuntimeError("no pipes to the RTSPS server")
        self._reader = asyncio.create_task(self._read_stdout(stdout))
        self._stderr_reader = asyncio.create_task(self._read_stderr(stderr))
        try:
            await self.wait_for_event("ready", timeout=self.start_timeout)
        except BaseException:
            await self.stop()
            raise
        self.start_seconds = time.monotonic() - started

    async def stop(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Stop the server (SIGTERM, then SIGKILL) and reap it; idempotent."""
        process, self._process = self._process, None
        if process is not None:
            if process.returncode is None:
                _signal_group(process.pid, signal.SIGTERM)
                try:
                    await asyncio.wait_for(process.wait(), timeout)
                except TimeoutError:
                    _signal_group(process.pid, signal.SIGKILL)
                    await process.wait()
            # Anything left in the group (there should be nothing).
            _signal_group(process.pid, signal.SIGKILL)
        for task in (self._reader, self._stderr_reader):
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait_for(task, timeout)
        self._reader = self._stderr_reader = None
        if self._directory is not None:
            self._directory.cleanup()
            self._directory = None

    @property
    def returncode(self) -> int | None:
        """Return the exit status once the server has exited."""
        return self._process.returncode if self._process else None

    # --- counters ------------------------------------------------------------

    async def wait_for(
        self,
        predicate: Callable[[dict[str, int]], bool],
        timeout: float = 10.0,  # noqa: ASYNC109
    ) -> dict[str, int]:
        """Wait until ``predicate(status)`` holds; return that status."""
        async with asyncio.timeout(timeout):
            async with self._changed:
                await self._changed.wait_for(lambda: predicate(self.status))
                return dict(self.status)

    async def wait_for_event(
        self,
        event: str,
        count: int = 1,
        timeout: float = 10.0,  # noqa: ASYNC109
    ) -> dict[str, Any]:
        """Wait until the server printed ``event`` ``count`` times."""

        def seen() -> list[dict[str, Any]]:
            return [e for e in self.events if e.get("event") == event]

        async with asyncio.timeout(timeout):
            async with self._changed:
                await self._changed.wait_for(lambda: len(seen()) >= count or self._eof)
        found = seen()
        if len(found) < count:
            raise RuntimeError(
                f"RTSPS server exited before {event!r}: "
                + " | ".join(self.stderr_tail[-5:])
            )
        return found[count - 1]

    async def _read_stdout(self, stdout: asyncio.StreamReader) -> None:
        while line := await stdout.readline():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            async with self._changed:
                self.events.append(event)
                if event.get("event") == "ready":
                    self.port = int(event["port"])
                self.status = dict(event.get("status", self.status))
                self._changed.notify_all()
        async with self._changed:
            self._eof = True
            self._changed.notify_all()

    async def _read_stderr(self, stderr: asyncio.StreamReader) -> None:
        while line := await stderr.readline():
            self.stderr_tail.append(line.decode(errors="replace").rstrip())
            del self.stderr_tail[:-50]


def _signal_group(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)


def _system_env() -> dict[str, str]:
    """Return an environment for the system Python, without the venv's."""
    return {
        key: value
        for key, value in os.environ.items()
        if key not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"}
    }
