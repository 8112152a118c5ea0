"""A real OctoPrint 1.11 on 127.0.0.1 for tests, in its own process.

`OctoPrintServer` runs OctoPrint from ``.venv-octoprint`` (``scripts/setup``
installs ``requirements/octoprint.txt`` there; `octoprint_available` says
why it cannot run) with a generated base directory, kept off the network,
on a free port of 127.0.0.1::

    async with OctoPrintServer() as octoprint:
        await octoprint.set_webcams(ClassicWebcam(stream="/webcam/?action=stream"))
        # octoprint.url, octoprint.api_key (header X-Api-Key)

or, for one server per test module or session (a synchronous fixture),
``with OctoPrintServer() as octoprint: ...`` (`start_sync` / `stop_sync`).
The async helpers open their own HTTP session per call, so a server
started synchronously can be used from any test's event loop.

What the base directory holds (facts checked against OctoPrint 1.11.8):

- ``users.yaml``: the admin user `USERNAME` with password `PASSWORD`
  (a precomputed argon2id hash, no ``octoprint user add`` run: 1 s saved)
  and its API key (``apikey:``), which has every permission.
- ``config.yaml``: ``server.firstRun: false``; the online check
  (``server.onlineCheck``, else it resolves octoprint.org and connects to
  1.1.1.1:53 every 15 minutes) and the plugin blacklist fetch
  (``server.pluginBlacklist``) off; ``serial.autoconnect: false``;
  ``devel.enableRateLimiter`` from ``rate_limit``; and in
  ``plugins._disabled`` every bundled plugin that reaches the internet or
  the LAN: ``discovery`` (zeroconf and SSDP multicast on every interface),
  ``tracking``, ``announcements``, ``softwareupdate``, ``pluginmanager``,
  ``errortracking`` (Sentry), ``health_check`` (fetches PyPI and Python
  end-of-life data), ``backup`` (fetches the plugin repository when
  restoring); ``pi_support`` too. Under strace a started server made no
  connection but to 127.0.0.1 (and nscd's Unix socket).
  ``plugins.discovery.upnpUuid`` holds `uuid` (see below).
- ``plugins/printcam_webcams.py``: ``octoprint_plugin/printcam_webcams.py``
  beside this file, a webcam provider plugin for several webcams.

Webcams: ``GET /api/settings`` (with an API key whose user has the WEBCAM
permission; else ``"webcam": {}``) has ``webcam.webcams[]``, one entry per
webcam from every webcam provider plugin, in plugin order (``classicwebcam``
first, then ``printcam_webcams``)::

    {"name": "classic", "displayName": "Classic Webcam",
     "provider": "classicwebcam", "canSnapshot": true,
     "snapshotDisplay": "http://...", "flipH": true, "flipV": false,
     "rotate90": true,
     "compat": {"stream": "/webcam/?action=stream", "snapshot": "http://...",
                "streamRatio": "16:9", "streamTimeout": 5,
                "snapshotTimeout": 5, "snapshotSslValidation": true,
                "cacheBuster": false,
                "streamWebrtcIceServers": ["stun:stun.l.google.com:19302"]},
     "extras": {"stream": ..., "streamRatio": ..., ...}}

``compat`` is null for a webcam whose provider gives none (no URL a
client can play). Beside ``webcams``: ``webcamEnabled``,
``defaultWebcam`` and ``snapshotWebcam`` (names), and the deprecated copies
of the default webcam (``streamUrl``, ``snapshotUrl``, ``flipH``, ``flipV``,
``rotate90``, ``streamRatio``, ...). The classic webcam is always listed
while its plugin is enabled, with ``stream: ""`` when unset;
``classic_webcam=False`` disables that plugin.

Application Keys (bundled ``appkeys`` plugin, 1.11.8 source and tests):

1. ``GET /plugin/appkeys/probe``: 204 when the workflow is supported.
2. ``POST /plugin/appkeys/request`` ``{"app": NAME}`` (optional ``"user"``),
   no key needed: 201 ``{"app_token": T, "auth_dialog": URL}``, ``Location``
   the poll URL. Rate limited per client address to 3 a minute, 5 in 10
   minutes, 10 an hour (429 beyond) unless ``rate_limit=False``.
3. ``GET /plugin/appkeys/request/<T>``: 202 ``{"message": "Awaiting
   decision"}`` while pending, then once 200 ``{"api_key": KEY}``, then 404;
   404 too when denied or expired. A pending request not polled for 5 s
   expires (each poll restarts that timer), and any after 10 minutes.
4. A user decides by user token, which only OctoPrint's UI sees (pushed over
   its socket) and ``GET /api/plugin/appkeys`` lists under ``pending``
   (``{USER_TOKEN: {"app_id", "user_id", "user_token", "remote_address"}}``)
   for the key's user: ``POST /plugin/appkeys/decision/<USER_TOKEN>``
   ``{"decision": true}`` with the admin's ``X-Api-Key`` answers 204 (an API
   key skips the CSRF check and the "credentials seen recently" check that
   a browser session needs). There is no ``"decide"`` command: the
   ``/api/plugin/appkeys`` commands are ``generate`` (``{"command":
   "generate", "app": NAME}`` returns ``{"api_key": ...}`` for the caller
   at once) and ``revoke``.

`approve_app_key_request` takes the app token (mapped to user tokens by the
helper plugin) or the app name (matched in the pending list);
`wait_for_app_key_request` waits until a client (Home Assistant) asked.

UUID and version (what zeroconf's ``_octoprint._tcp`` TXT record carries):
``version`` is ``GET /api/version`` ``server`` (also ``GET /api/server``
``version``) and ``api`` its ``api``; ``path`` is ``/``. ``uuid`` is the
``discovery`` plugin's ``upnpUuid`` setting, generated by that plugin on
first use; with the plugin enabled, ``GET /plugin/discovery/discovery.xml``
(no key, UPnP ``<UDN>uuid:...</UDN>``) and the admin's ``/api/settings``
(``plugins.discovery.upnpUuid``) show it. With the plugin disabled, as
here, no endpoint reveals it (``/api/settings`` lists enabled plugins'
settings only; ``/api/server`` has ``version`` and ``safemode``): `uuid` is
the value this harness wrote to ``plugins.discovery.upnpUuid``, i.e. what
the TXT record would carry. Checked by enabling the plugin inside a network
namespace that had nothing but loopback: the browsed TXT record was ``path``
``/``, ``version`` ``1.11.8``, ``api`` ``0.1``, ``uuid`` the configured one,
the same as ``discovery.xml`` and ``/api/settings`` showed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
import contextlib
from dataclasses import dataclass, field
import http.client
import json
import os
from pathlib import Path
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from types import TracebackType
from typing import Any, ClassVar, Final, Self
import urllib.error
import urllib.request
import uuid as uuid_module

import aiohttp

__all__ = [
    "OCTOPRINT_VENV",
    "ClassicWebcam",
    "OctoPrintServer",
    "OctoPrintWebcam",
    "ServerError",
    "ServerProcess",
    "octoprint_available",
]

ROOT: Final = Path(__file__).resolve().parent.parent
OCTOPRINT_VENV: Final = ROOT / ".venv-octoprint"
PLUGIN_SOURCE: Final = Path(__file__).with_name("octoprint_plugin") / (
    "printcam_webcams.py"
)
PLUGIN_ID: Final = "printcam_webcams"

# The bundled plugins that talk to the internet or the LAN (see the module
# docstring), and pi_support (Raspberry Pi checks).
DISABLED_PLUGINS: Final = (
    "announcements",
    "backup",
    "discovery",
    "errortracking",
    "health_check",
    "pi_support",
    "pluginmanager",
    "softwareupdate",
    "tracking",
)

# argon2id of PASSWORD, made once with OctoPrint's own hasher (passlib's
# argon2 in .venv-octoprint): writing users.yaml saves `octoprint user add`.
_PASSWORD_HASH: Final = "$argon2id$v=19$m=65536,t=3,p=4$upfSeq81Zqw1xpjTGqN07g$vlGSJUpNMnT1Y/7KD6I9qTPlYOkvmZkHLIoD4GCQbhE"  # noqa: S105 - a test user's


def octoprint_available() -> str | None:
    """Return None if OctoPrint can run here, else the reason it cannot."""
    python = OCTOPRINT_VENV / "bin" / "python"
    if not python.exists():
        return f"{OCTOPRINT_VENV.name} missing (scripts/setup creates it)"
    if not (OCTOPRINT_VENV / "bin" / "octoprint").exists():
        return f"octoprint not installed in {OCTOPRINT_VENV.name} (run scripts/setup)"
    if not (OCTOPRINT_VENV / ".requirements.sha256").exists():
        # scripts/setup writes it once the install succeeded.
        return f"{OCTOPRINT_VENV.name} incomplete (run scripts/setup)"
    return None


class ServerError(RuntimeError):
    """A server did not start, or answered an unexpected status."""


# --- a server process ---------------------------------------------------------


class ServerProcess:
    """A real server in its own process group on 127.0.0.1, in a temporary dir.

    Subclasses write their files (`_prepare`), name their command
    (`_command`) and say when the server is ready (`_probe`). Output goes to
    ``process.log`` in the directory (`log_tail`). Started with `start`
    (polls with the running event loop; no task, thread or timer is left)
    or `start_sync` (blocking, for synchronous module or session fixtures);
    `stop` / `stop_sync` send SIGTERM to the process group, wait, SIGKILL
    the group if it is still there, reap the process and remove the
    directory. Both are idempotent.
    """

    label: ClassVar[str] = "server"
    port_attempts: ClassVar[int] = 3
    """Tries with another free port when the chosen one was taken."""

    def __init__(
        self,
        *,
        start_timeout: float = 60.0,
        stop_timeout: float = 15.0,
        keep_directory: bool = False,
        port: int = 0,
    ) -> None:
        """Describe the server; `start()` (or ``async with``) runs it.

        `port` 0 takes a free port (another one if it was taken meanwhile).
        """
        self.host: Final = "127.0.0.1"
        self.requested_port = port
        self.port = 0
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.keep_directory = keep_directory
        self.directory: Path | None = None
        """The temporary directory while the server runs."""
        self.start_seconds: float | None = None
        """How long the last start took until the server answered."""
        self.stop_seconds: float | None = None
        """How long the last stop took until the process was reaped."""
        self.killed = False
        """Whether the last stop needed SIGKILL."""
        self._process: subprocess.Popen[bytes] | None = None
        self._log_file: Any = None

    # --- for subclasses ------------------------------------------------------

    def _prepare(self, directory: Path) -> None:
        """Write what the server needs into `directory` (port is chosen)."""
        raise NotImplementedError

    def _command(self, directory: Path) -> list[str]:
        """Return the command line."""
        raise NotImplementedError

    def _probe(self) -> tuple[str, dict[str, str], frozenset[int]]:
        """Return the path, headers and statuses that mean "ready"."""
        raise NotImplementedError

    def _after_ready(self) -> None:
        """Run after the probe succeeded (`start_sync`)."""

    async def _after_ready_async(self) -> None:
        """Run after the probe succeeded (`start`)."""
        self._after_ready()

    # --- what a client needs -------------------------------------------------

    api_key: str = ""
    """The key a client sends as ``X-Api-Key`` ("" when none is needed)."""

    @property
    def headers(self) -> dict[str, str]:
        """Return the API key header."""
        return {"X-Api-Key": self.api_key}

    async def request(
        self,
        method: str,
        path: str,
        json_body: Any = None,
        *,
        api_key: str | None = None,
        expect: int | Sequence[int] | None = None,
    ) -> tuple[int, Any]:
        """Send a request with the server's key (or `api_key`; "" for none).

        With `expect`, a status outside it raises `ServerError`.
        """
        key = self.api_key if api_key is None else api_key
        headers = {"X-Api-Key": key} if key else {}
        status, body = await http_request(
            method, self.url + path, headers=headers, json_body=json_body
        )
        _check_status(method, path, status, body, expect)
        return status, body

    @property
    def url(self) -> str:
        """Return the base URL, without a trailing slash."""
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        """Return the server's process id (also its process group id)."""
        return self._process.pid if self._process else None

    @property
    def running(self) -> bool:
        """Return whether the process was started and has not exited."""
        return self._process is not None and self._process.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        """Return the last lines the server printed."""
        if self.directory is None:
            return ""
        try:
            text = (self.directory / "process.log").read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    # --- life cycle (async) --------------------------------------------------

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
        """Run the server and wait until it answers."""
        started = time.monotonic()
        try:
            await self._start(started)
            await self._after_ready_async()
        except BaseException:
            await self.stop()
            raise
        self.start_seconds = time.monotonic() - started

    async def _start(self, started: float) -> None:
        for _ in range(self.port_attempts):
            process = self._launch()
            if await self._wait_ready_async(process, started):
                return
            await self.stop()
        raise ServerError(f"{self.label}: no free port after retries")

    async def stop(self) -> None:
        """Stop the server and its process group, reap it; idempotent."""
        process = self._process
        if process is not None:
            began = time.monotonic()
            if process.poll() is None:
                _signal_group(process.pid, signal.SIGTERM)
                if not await _wait_exit(process, self.stop_timeout):
                    self.killed = True
                    _signal_group(process.pid, signal.SIGKILL)
                    await _wait_exit(process, None)
            self.stop_seconds = time.monotonic() - began
        self._finish()

    # --- life cycle (sync) ---------------------------------------------------

    def __enter__(self) -> Self:
        """Start the server (blocking)."""
        self.start_sync()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Stop the server (blocking)."""
        self.stop_sync()

    def start_sync(self) -> None:
        """Run the server and wait until it answers (blocking)."""
        started = time.monotonic()
        try:
            self._start_sync(started)
            self._after_ready()
        except BaseException:
            self.stop_sync()
            raise
        self.start_seconds = time.monotonic() - started

    def _start_sync(self, started: float) -> None:
        for _ in range(self.port_attempts):
            process = self._launch()
            if self._wait_ready_sync(process, started):
                return
            self.stop_sync()
        raise ServerError(f"{self.label}: no free port after retries")

    def stop_sync(self) -> None:
        """Stop the server and its process group, reap it (blocking)."""
        process = self._process
        if process is not None:
            began = time.monotonic()
            if process.poll() is None:
                _signal_group(process.pid, signal.SIGTERM)
                try:
                    process.wait(self.stop_timeout)
                except subprocess.TimeoutExpired:
                    self.killed = True
                    _signal_group(process.pid, signal.SIGKILL)
                    process.wait()
            self.stop_seconds = time.monotonic() - began
        self._finish()

    # --- internals -----------------------------------------------------------

    def _launch(self) -> subprocess.Popen[bytes]:
        if self._process is not None:
            raise RuntimeError(f"{self.label} already started")
        self.killed = False
        self.directory = Path(tempfile.mkdtemp(prefix=f"printcam-{self.label}-"))
        self.port = self.requested_port or free_port()
        self._prepare(self.directory)
        self._log_file = (self.directory / "process.log").open("wb")
        self._process = subprocess.Popen(  # noqa: S603
            self._command(self.directory),
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            cwd=self.directory,
            start_new_session=True,
            env=_server_env(),
        )
        return self._process

    def _port_taken(self) -> bool:
        """Return whether the server said its port was taken."""
        tail = self.log_tail()
        return "Address already in use" in tail or "Errno 98" in tail

    def _failed(self, process: subprocess.Popen[bytes]) -> bool:
        """Return True to retry on another port, False to go on waiting.

        Raise if the server exited for another reason. The port was free
        a moment before: another process may have taken it since. OctoPrint
        then exits; Moonraker runs on without HTTP (so the log decides).
        """
        if self._port_taken():
            return True
        if process.poll() is None:
            return False
        raise ServerError(
            f"{self.label} exited with {process.returncode} before answering:\n"
            + self.log_tail()
        )

    async def _wait_ready_async(
        self, process: subprocess.Popen[bytes], started: float
    ) -> bool:
        """Poll the server until it answers (nothing to wait on but polls)."""
        path, headers, ok = self._probe()
        timeout = aiohttp.ClientTimeout(total=3)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                if self._failed(process):
                    return False
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with session.get(self.url + path, headers=headers) as resp:
                        if resp.status in ok and not self._port_taken():
                            return True
                self._check_deadline(started)
                await asyncio.sleep(0.05)

    def _wait_ready_sync(
        self, process: subprocess.Popen[bytes], started: float
    ) -> bool:
        path, headers, ok = self._probe()
        while True:
            if self._failed(process):
                return False
            status, _ = http_request_sync(
                "GET", self.url + path, headers=headers, timeout=3
            )
            if status in ok and not self._port_taken():
                return True
            self._check_deadline(started)
            time.sleep(0.05)

    def _check_deadline(self, started: float) -> None:
        if time.monotonic() - started > self.start_timeout:
            raise ServerError(
                f"{self.label} did not answer within {self.start_timeout} s:\n"
                + self.log_tail()
            )

    def _finish(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            # Anything left in the group (there should be nothing).
            _signal_group(process.pid, signal.SIGKILL)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        if self.directory is not None and not self.keep_directory:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None


# --- HTTP helpers ----------------------------------------------------------------


async def http_request(
    method: str,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    json_body: Any = None,
    timeout: float = 10.0,  # noqa: ASYNC109
) -> tuple[int, Any]:
    """Send one request in its own session; return (status, JSON or text)."""
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
        session.request(
            method, url, headers=dict(headers or {}), json=json_body
        ) as response,
    ):
        text = await response.text()
        try:
            return response.status, json.loads(text) if text else None
        except ValueError:
            return response.status, text


def http_request_sync(
    method: str,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    json_body: Any = None,
    timeout: float = 5.0,
) -> tuple[int, Any]:
    """Send one request (blocking); return (status, JSON or text), 0 if none."""
    data = None
    all_headers = dict(headers or {})
    if json_body is not None:
        data = json.dumps(json_body).encode()
        all_headers["Content-Type"] = "application/json"
    request = urllib.request.Request(  # noqa: S310
        url, data=data, headers=all_headers, method=method
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            status, body = response.status, response.read()
    except urllib.error.HTTPError as err:
        status, body = err.code, err.read()
    except (OSError, http.client.HTTPException):
        # While it starts, OctoPrint's "intermediary" server holds the port
        # and answers unknown paths with the bare bytes "Not found" (no
        # status line: its 404 never sends its headers).
        return 0, None
    text = body.decode(errors="replace")
    try:
        return status, json.loads(text) if text else None
    except ValueError:
        return status, text


async def _wait_exit(
    process: subprocess.Popen[bytes],
    timeout: float | None,  # noqa: ASYNC109
) -> bool:
    """Wait until `process` exits (its pidfd turns readable); reap it.

    Return False if it still runs after `timeout` seconds. No thread, and
    the reader is removed on every path.
    """
    if process.poll() is not None:
        return True
    loop = asyncio.get_running_loop()
    exited = asyncio.Event()
    pidfd = os.pidfd_open(process.pid)
    loop.add_reader(pidfd, exited.set)
    try:
        async with asyncio.timeout(timeout):
            await exited.wait()
    except TimeoutError:
        return False
    finally:
        loop.remove_reader(pidfd)
        os.close(pidfd)
    process.wait()  # exited: reaps at once
    return True


def free_port() -> int:
    """Return a TCP port of 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _signal_group(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)


def _server_env() -> dict[str, str]:
    """Return an environment for another virtualenv's Python."""
    return {
        key: value
        for key, value in os.environ.items()
        if key not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"}
    }


# --- OctoPrint -------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ClassicWebcam:
    """The bundled classic webcam's settings (``plugins.classicwebcam``)."""

    stream: str = ""
    snapshot: str = ""
    flip_h: bool = False
    flip_v: bool = False
    rotate90: bool = False
    """90 degrees counter-clockwise."""
    stream_ratio: str = "16:9"
    """``16:9`` or ``4:3``."""

    def as_settings(self) -> dict[str, Any]:
        """Return the plugin settings ``POST /api/settings`` takes."""
        return {
            "stream": self.stream,
            "snapshot": self.snapshot,
            "flipH": self.flip_h,
            "flipV": self.flip_v,
            "rotate90": self.rotate90,
            "streamRatio": self.stream_ratio,
        }


@dataclass(frozen=True, kw_only=True)
class OctoPrintWebcam:
    """A webcam provided by the helper plugin (`octoprint.schema.webcam.Webcam`)."""

    name: str
    display_name: str | None = None
    """Defaults to `name`."""
    stream: str = ""
    snapshot: str = ""
    flip_h: bool = False
    flip_v: bool = False
    rotate90: bool = False
    can_snapshot: bool | None = None
    """Defaults to whether `snapshot` is set."""
    stream_ratio: str = "16:9"
    compat: bool = True
    """False: no ``compat`` section (``null``): a webcam without a stream URL
    a client could play (its URLs then only appear in ``extras``)."""
    extras: Mapping[str, Any] = field(default_factory=dict)

    def as_settings(self) -> dict[str, Any]:
        """Return the entry of the helper plugin's ``webcams`` setting."""
        can_snapshot = (
            bool(self.snapshot) if self.can_snapshot is None else (self.can_snapshot)
        )
        # OctoPrint's schema validates its defaults: ``snapshotDisplay`` and
        # ``compat.snapshot`` default to None but must be strings.
        entry: dict[str, Any] = {
            "name": self.name,
            "displayName": self.display_name or self.name,
            "canSnapshot": can_snapshot,
            "snapshotDisplay": self.snapshot,
            "flipH": self.flip_h,
            "flipV": self.flip_v,
            "rotate90": self.rotate90,
            "extras": {"stream": self.stream, **self.extras},
        }
        if self.compat:
            entry["compat"] = {
                "stream": self.stream,
                "snapshot": self.snapshot,
                "streamRatio": self.stream_ratio,
            }
        return entry


class OctoPrintServer(ServerProcess):
    """OctoPrint 1.11 from ``.venv-octoprint`` on 127.0.0.1 (see the module doc)."""

    label = "octoprint"
    USERNAME: ClassVar[str] = "admin"
    PASSWORD: ClassVar[str] = "printcam-octoprint"  # noqa: S105 - a test server's

    def __init__(
        self,
        *,
        classic_webcam: bool = True,
        rate_limit: bool = True,
        server_uuid: str | None = None,
        api_key: str | None = None,
        port: int = 0,
        start_timeout: float = 60.0,
        stop_timeout: float = 15.0,
        keep_directory: bool = False,
    ) -> None:
        """Describe the server.

        `classic_webcam` False disables the classic webcam plugin (no
        ``classic`` webcam at all); `rate_limit` False turns off OctoPrint's
        rate limiter (app key requests: 3 a minute per client address),
        for one server shared by many tests; `server_uuid` is the uuid the
        discovery plugin would announce (default: a new uuid4); `api_key`
        the admin's key (default: a new one) and `port` its port (0: a free
        one): the demo keeps both across runs, as a real OctoPrint does.
        """
        super().__init__(
            start_timeout=start_timeout,
            stop_timeout=stop_timeout,
            keep_directory=keep_directory,
            port=port,
        )
        self.classic_webcam = classic_webcam
        self.rate_limit = rate_limit
        self.uuid = server_uuid or str(uuid_module.uuid4())
        """What the zeroconf TXT ``uuid`` would carry (see the module doc)."""
        self.api_key = api_key or uuid_module.uuid4().hex.upper()
        """The admin's API key: every permission."""

    # --- files -----------------------------------------------------------------

    def _prepare(self, directory: Path) -> None:
        disabled = list(DISABLED_PLUGINS)
        if not self.classic_webcam:
            disabled.append("classicwebcam")
        config = {
            "server": {
                "firstRun": False,
                "onlineCheck": {"enabled": False},
                "pluginBlacklist": {"enabled": False},
            },
            "serial": {"autoconnect": False},
            "devel": {"enableRateLimiter": self.rate_limit},
            "plugins": {
                "_disabled": sorted(disabled),
                "discovery": {"upnpUuid": self.uuid},
            },
        }
        users = {
            "_version": 2,
            self.USERNAME: {
                "active": True,
                "apikey": self.api_key,
                "groups": ["admins"],
                "password": _PASSWORD_HASH,
                "permissions": [],
                "roles": ["user", "admin"],
                "settings": {},
            },
        }
        # JSON is YAML: no YAML writer needed in Home Assistant's venv.
        (directory / "config.yaml").write_text(json.dumps(config, indent=1))
        (directory / "users.yaml").write_text(json.dumps(users, indent=1))
        (directory / "config.yaml").chmod(0o600)
        (directory / "users.yaml").chmod(0o600)
        plugins = directory / "plugins"
        plugins.mkdir()
        shutil.copyfile(PLUGIN_SOURCE, plugins / PLUGIN_SOURCE.name)

    def _command(self, directory: Path) -> list[str]:
        return [
            str(OCTOPRINT_VENV / "bin" / "octoprint"),
            "--basedir",
            str(directory),
            "serve",
            "--iknowwhatimdoing",
            "--host",
            self.host,
            "--port",
            str(self.port),
        ]

    def _probe(self) -> tuple[str, dict[str, str], frozenset[int]]:
        return "/api/version", self.headers, frozenset({200})

    # --- REST --------------------------------------------------------------------

    async def settings(self, *, api_key: str | None = None) -> dict[str, Any]:
        """Return ``GET /api/settings``."""
        _, body = await self.request(
            "GET", "/api/settings", api_key=api_key, expect=200
        )
        return as_dict(body)

    async def webcam_settings(self, *, api_key: str | None = None) -> dict[str, Any]:
        """Return the ``webcam`` section of ``GET /api/settings``."""
        return as_dict((await self.settings(api_key=api_key))["webcam"])

    async def set_webcams(
        self,
        classic: ClassicWebcam | None = None,
        webcams: Sequence[OctoPrintWebcam] = (),
        *,
        default: str | None = None,
        snapshot_webcam: str | None = None,
        enabled: bool = True,
    ) -> dict[str, Any]:
        """Configure every webcam through ``POST /api/settings``.

        `classic` sets the classic webcam (None: empty URLs, no flips, as on
        a fresh OctoPrint); `webcams` replaces the helper plugin's list;
        `default` and `snapshot_webcam` name ``webcam.defaultWebcam`` and
        ``webcam.snapshotWebcam`` (OctoPrint's default: ``classic``, falling
        back to the first webcam with a stream, resp. snapshot); `enabled`
        is ``webcam.webcamEnabled``. Returns the resulting ``webcam`` section
        of ``GET /api/settings``.
        """
        plugins: dict[str, Any] = {
            PLUGIN_ID: {"webcams": [webcam.as_settings() for webcam in webcams]}
        }
        if self.classic_webcam:
            plugins["classicwebcam"] = (classic or ClassicWebcam()).as_settings()
        elif classic is not None:
            raise ValueError("the classic webcam plugin is disabled")
        payload = {
            "plugins": plugins,
            "webcam": {
                "webcamEnabled": enabled,
                "defaultWebcam": default or "classic",
                "snapshotWebcam": snapshot_webcam or "classic",
            },
        }
        await self.request("POST", "/api/settings", payload, expect=200)
        return await self.webcam_settings()

    async def version(self) -> dict[str, Any]:
        """Return ``GET /api/version``: ``{"api", "server", "text"}``."""
        _, body = await self.request("GET", "/api/version", expect=200)
        return as_dict(body)

    async def server_uuid(self) -> str:
        """Return the uuid zeroconf would announce: `uuid` (no API shows it).

        The discovery plugin, which owns it, is disabled (it multicasts on
        every interface); this returns the ``plugins.discovery.upnpUuid``
        this harness configured, after checking that the server runs.
        """
        await self.version()
        return self.uuid

    async def zeroconf_properties(self) -> dict[str, str]:
        """Return the ``_octoprint._tcp`` TXT record the server would announce.

        ``version`` and ``api`` as ``GET /api/version`` reports them,
        ``path`` ``/`` (no prefix configured), ``uuid`` = `uuid`.
        """
        version = await self.version()
        return {
            "path": "/",
            "version": str(version["server"]),
            "api": str(version["api"]),
            "uuid": self.uuid,
        }

    # --- Application Keys ----------------------------------------------------------

    async def pending_app_key_requests(self) -> dict[str, dict[str, Any]]:
        """Return ``GET /api/plugin/appkeys`` ``pending``: user token -> request."""
        _, body = await self.request("GET", "/api/plugin/appkeys", expect=200)
        return as_dict(body["pending"])

    async def wait_for_app_key_request(
        self,
        app: str | None = None,
        timeout: float = 10.0,  # noqa: ASYNC109
    ) -> dict[str, Any]:
        """Wait until a request (for `app`) is pending; return it.

        The result has ``app_id``, ``user_id``, ``user_token`` and
        ``remote_address``. Keep in mind that a request nobody polls
        expires after 5 s.
        """
        async with asyncio.timeout(timeout):
            while True:
                for request in (await self.pending_app_key_requests()).values():
                    if app is None or request["app_id"] == app:
                        return request
                await asyncio.sleep(0.05)

    async def decide_app_key_request(
        self, user_token: str, approve: bool = True
    ) -> None:
        """Decide a pending request as the admin: ``POST /plugin/appkeys/decision``."""
        await self.request(
            "POST",
            f"/plugin/appkeys/decision/{user_token}",
            {"decision": approve},
            expect=204,
        )

    async def approve_app_key_request(
        self,
        app_token: str | None = None,
        *,
        app: str | None = None,
        approve: bool = True,
    ) -> str:
        """Approve (or deny) a pending request; return its user token.

        Give the `app_token` the client got from ``/plugin/appkeys/request``
        (resolved by the helper plugin) or the `app` name it asked with
        (the one pending request of that name). The client then gets its
        key from its next poll.
        """
        if app_token is not None:
            _, body = await self.request(
                "GET", f"/api/plugin/{PLUGIN_ID}?app_token={app_token}", expect=200
            )
            tokens = list(body["user_tokens"])
        elif app is not None:
            tokens = [
                token
                for token, request in (await self.pending_app_key_requests()).items()
                if request["app_id"] == app
            ]
        else:
            raise ValueError("give app_token or app")
        if len(tokens) != 1:
            raise ServerError(
                f"expected one pending app key request, found {len(tokens)}"
            )
        token = str(tokens[0])
        await self.decide_app_key_request(token, approve)
        return token

    async def generate_app_key(self, app: str) -> str:
        """Return a new key for `app` (``generate`` command, no approval)."""
        _, body = await self.request(
            "POST",
            "/api/plugin/appkeys",
            {"command": "generate", "app": app},
            expect=200,
        )
        return str(body["api_key"])


def as_dict(value: Any) -> dict[str, Any]:
    """Return `value` if it is a JSON object, else raise `ServerError`."""
    if not isinstance(value, dict):
        raise ServerError(f"expected a JSON object, got {value!r}")
    return value


def _check_status(
    method: str,
    path: str,
    status: int,
    body: Any,
    expect: int | Sequence[int] | None,
) -> None:
    if expect is None:
        return
    allowed = (expect,) if isinstance(expect, int) else tuple(expect)
    if status not in allowed:
        raise ServerError(
            f"{method} {path}: HTTP {status} (expected {allowed}): {body}"
        )
