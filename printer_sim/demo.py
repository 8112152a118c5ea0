"""PrintCam demo: Home Assistant + three simulated printers, ready to look at.

Run through ``scripts/demo [--port N]`` (which sets up .venv first). Steps,
each skipped when a previous run already did it (state lives in the demo
directory: ``$PRINTCAM_DEMO_DIR``, default ``.demo/`` in the repository):

1. write ``config/`` (configuration.yaml, custom_components symlink);
2. start the printer simulators (``python -m printer_sim``: an MJPEG camera,
   a Bambu Lab P1 camera and a Bambu Lab X1C RTSPS camera, on free ports the
   first time, then the ports kept in ``state.json``; the Bambu
   certificates are kept in ``bambu_cert.pem`` and ``x1c_cert.pem`` like a
   real printer keeps its own) and Home Assistant (log in ``hass.log``).
   The X1C needs Debian's GStreamer RTSP server (``scripts/setup`` installs
   it as root): without it the demo runs with the other two and says why;
3. onboard HA (user ``demo``, password in ``credentials.json``) and keep a
   long-lived access token there;
4. add the printers through the config-flow REST API (the Bambu ones
   through the menu's ``bambu`` step: address, serial, access code, model,
   port; the integration pins their certificates on first use; the X1C's
   camera is transcoded by Home Assistant's ffmpeg while someone watches);
5. create the ``printcam-demo`` dashboard: per printer, its live camera, a
   record-clip button next to its last recording event, and its state
   entities. Clips and timelapses land in ``config/media/printcam`` (the
   ``media_dirs`` configuration.yaml sets), listed in the "Media" panel.

Then it stays in the foreground; Ctrl-C / SIGTERM stops HA and the
simulators (each in its own process group: terminate, wait, kill).

`bring_up` does steps 1 to 5 and returns a `DemoInfo`; the end-to-end test
(tests/e2e) calls it with its own `Processes` and a temporary directory.
"""

# ruff: noqa: T201 - a command-line tool: printing is its output

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator
import contextlib
from dataclasses import dataclass
import json
import os
from pathlib import Path
import secrets
import signal
import socket
import subprocess
import sys
import time
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DIR = ROOT / ".demo"
VENV_BIN = ROOT / ".venv" / "bin"

USERNAME = "demo"
MJPEG_NAME = "Demo printer (MJPEG)"
BAMBU_MODEL = "P1S"
DASHBOARD = "printcam-demo"
STOP_TIMEOUT = 20.0
HA_START_TIMEOUT = 300.0
SIM_START_TIMEOUT = 30.0
ENTITIES_TIMEOUT = 60.0
STATE_DOMAINS = ("sensor", "binary_sensor", "switch", "button", "event")
"""Entities shown under each camera (not the camera: its entity picture would
poll stills, which keep the printer's connection open for a while)."""

CONFIGURATION_YAML = """\
# Written by scripts/demo. default_config: is not used: go2rtc has no binary.
homeassistant:
  name: PrintCam demo
  unit_system: metric
  time_zone: UTC
  latitude: 0
  longitude: 0
  elevation: 0
  # Recordings land in <config>/media/printcam (also in a container, where
  # Home Assistant's default would be /media).
  media_dirs:
    local: {media}
frontend:
http:
  server_host: 127.0.0.1
  server_port: {port}
api:
onboarding:
config:
lovelace:
logger:
  default: info
  logs:
    custom_components.printcam: debug
    # Shows any package Home Assistant installs at run time ("Running uv pip
    # command"): requirements_test.txt pins them all, so there should be none.
    homeassistant.util.package: debug
system_health:
automation:
# The media browser (the "Media" panel): PrintCam's timelapses and clips.
media_source:
"""


def step(message: str) -> None:
    """Print one progress line."""
    print(f"==> {message}", flush=True)


def note(message: str) -> None:
    """Print a detail line under a step."""
    print(f"    {message}", flush=True)


class DemoError(Exception):
    """A step failed; the message says what to do."""


@dataclass(frozen=True, slots=True)
class Paths:
    """Where one demo keeps its state."""

    root: Path

    @classmethod
    def from_env(cls) -> Paths:
        """Return ``$PRINTCAM_DEMO_DIR`` (relative to the repository), or .demo/."""
        value = os.environ.get("PRINTCAM_DEMO_DIR")
        return cls((ROOT / value).resolve() if value else DEFAULT_DIR)

    @property
    def config(self) -> Path:
        """Return Home Assistant's configuration directory."""
        return self.root / "config"

    @property
    def media(self) -> Path:
        """Return Home Assistant's media folder (PrintCam's recordings below)."""
        return self.config / "media"

    @property
    def state_file(self) -> Path:
        """Return the file of ports and config entry ids."""
        return self.root / "state.json"

    @property
    def credentials_file(self) -> Path:
        """Return the file of the user's password and token."""
        return self.root / "credentials.json"

    @property
    def hass_log(self) -> Path:
        """Return Home Assistant's log file."""
        return self.root / "hass.log"

    @property
    def sim_log(self) -> Path:
        """Return the simulators' output."""
        return self.root / "printer_sim.log"

    @property
    def sim_ready(self) -> Path:
        """Return the simulators' ready JSON line."""
        return self.root / "printer_sim.json"

    @property
    def bambu_cert(self) -> Path:
        """Return the Bambu simulator's certificate and key."""
        return self.root / "bambu_cert.pem"

    @property
    def x1c_cert(self) -> Path:
        """Return the X1C simulator's certificate and key."""
        return self.root / "x1c_cert.pem"

    def show(self, path: Path) -> str:
        """Return ``path`` relative to the repository when inside it."""
        with contextlib.suppress(ValueError):
            return str(path.relative_to(ROOT))
        return str(path)


@dataclass(slots=True)
class DemoInfo:
    """What a running demo offers."""

    base: str
    """Home Assistant's URL, e.g. ``http://127.0.0.1:8123``."""
    username: str
    password: str
    token: str
    """A long-lived access token."""
    simulators: dict[str, Any]
    """The simulators' ready JSON (``mjpeg``, ``bambu`` and ``x1c`` keys)."""
    cameras: dict[str, str]
    """Camera entity id per simulator key (``mjpeg``, ``bambu``, ``x1c``)."""
    entries: dict[str, str]
    """Config entry id per simulator key."""

    @property
    def dashboard_url(self) -> str:
        """Return the dashboard's URL."""
        return f"{self.base}/{DASHBOARD}"


def _load(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    data: dict[str, Any] = json.loads(text)
    return data


def _save(path: Path, data: dict[str, Any], private: bool = False) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    if private:
        tmp.chmod(0o600)
    tmp.replace(path)


def port_busy(port: int) -> bool:
    """Return True when something listens on (or holds) 127.0.0.1:``port``."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


# --------------------------------------------------------------- processes


class Processes:
    """Child processes, each in its own session/process group."""

    def __init__(self, paths: Paths) -> None:
        """Start with no children."""
        self.paths = paths
        self.children: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, args: list[str], log: Path) -> subprocess.Popen[bytes]:
        """Start ``args`` in a new session, output appended to ``log``."""
        with log.open("ab") as out:
            proc = subprocess.Popen(  # noqa: S603 - our own commands
                args,
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.children.append((name, proc))
        note(f"{name} started (pid {proc.pid}, log {self.paths.show(log)})")
        return proc

    def stop_all(self) -> None:
        """Terminate in reverse start order; kill groups still alive after a while."""
        for name, proc in reversed(self.children):
            self._signal(proc, signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_TIMEOUT)
                note(f"{name} stopped (exit {proc.returncode})")
            except subprocess.TimeoutExpired:
                note(f"{name} did not stop in {STOP_TIMEOUT:.0f} s: killing it")
            # Whatever is left of the group (helpers of the child) goes too.
            self._signal(proc, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        self.children.clear()

    @staticmethod
    def _signal(proc: subprocess.Popen[bytes], sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)


# ------------------------------------------------------------------ steps


def write_config(paths: Paths, port: int) -> None:
    """Write configuration.yaml and the custom_components symlink."""
    step(f"Home Assistant configuration in {paths.show(paths.config)}")
    (paths.config / "custom_components").mkdir(parents=True, exist_ok=True)
    # media_dirs must exist when Home Assistant reads its configuration.
    paths.media.mkdir(exist_ok=True)
    yaml_path = paths.config / "configuration.yaml"
    # A JSON string is a YAML string: any path reads back as written.
    wanted = CONFIGURATION_YAML.format(port=port, media=json.dumps(str(paths.media)))
    if yaml_path.exists() and yaml_path.read_text(encoding="utf-8") == wanted:
        note("configuration.yaml up to date (skipped)")
    else:
        yaml_path.write_text(wanted, encoding="utf-8")
        note(f"wrote configuration.yaml (http on 127.0.0.1:{port})")
    link = paths.config / "custom_components" / "printcam"
    target = ROOT / "custom_components" / "printcam"
    if link.is_symlink() and link.resolve() == target.resolve():
        note("custom_components/printcam symlink present (skipped)")
    else:
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(target)
        note(f"linked custom_components/printcam -> {target}")


_SIM_PORTS = (
    # (state.json key, printer_sim option, what)
    ("sim_port", "--mjpeg-port", "MJPEG camera"),
    ("bambu_port", "--bambu-port", "Bambu camera"),
    ("bambu_status_port", "--bambu-status-port", "Bambu status page"),
    ("x1c_port", "--x1c-port", "X1C camera"),
    ("x1c_status_port", "--x1c-status-port", "X1C status page"),
)
_OCTOPRINT_PORTS = (
    ("octoprint_port", "--octoprint-port", "OctoPrint"),
    ("octoprint_camera_port", "--octoprint-camera-port", "OctoPrint's webcam"),
)


async def start_simulators(
    procs: Processes, paths: Paths, state: dict[str, Any], octoprint: bool = False
) -> dict[str, Any]:
    """Start ``python -m printer_sim``; return its ready JSON.

    The first time every port is 0 (free ports, no race); the ports it chose
    are then kept in state.json so the config entries stay valid. With
    `octoprint`, a real OctoPrint too, keeping its API key and uuid there.
    """
    step("Starting the printer simulators")
    args = [str(VENV_BIN / "python"), "-m", "printer_sim"]
    ports = _SIM_PORTS + (_OCTOPRINT_PORTS if octoprint else ())
    if octoprint:
        args.append("--octoprint")
        for key in ("octoprint_api_key", "octoprint_uuid"):
            if state.get(key):
                args += [f"--{key.replace('_', '-')}", state[key]]
    for key, option, what in ports:
        port = state.get(key)
        if port is not None and port_busy(port):
            raise DemoError(
                f"{what} port {port} (from {paths.show(paths.state_file)}) is in "
                f"use; free it, or delete {paths.show(paths.root)} to start over"
            )
        args += [option, str(port or 0)]
    if all(state.get(key) for key, _, _ in ports):
        note(f"reusing the ports kept in {paths.show(paths.state_file)}")
    ready_file = paths.sim_ready
    ready_file.unlink(missing_ok=True)
    args += ["--bambu-cert", str(paths.bambu_cert), "--x1c-cert", str(paths.x1c_cert)]
    args += ["--status-file", str(ready_file)]
    proc = procs.start("printer simulators", args, paths.sim_log)
    deadline = time.monotonic() + SIM_START_TIMEOUT
    while not ready_file.exists():
        if proc.poll() is not None:
            raise DemoError(
                f"the simulators exited ({proc.returncode}); see {paths.sim_log}"
            )
        if time.monotonic() > deadline:
            raise DemoError(f"the simulators did not start; see {paths.sim_log}")
        await asyncio.sleep(0.1)
    ready: dict[str, Any] = json.loads(ready_file.read_text(encoding="utf-8"))
    chosen = {
        "sim_port": ready["mjpeg"]["port"],
        "bambu_port": ready["bambu"]["port"],
        "bambu_status_port": ready["bambu"]["status_port"],
    }
    if "x1c" in ready:
        chosen["x1c_port"] = ready["x1c"]["port"]
        chosen["x1c_status_port"] = ready["x1c"]["status_port"]
    if "octoprint" in ready:
        chosen["octoprint_port"] = ready["octoprint"]["port"]
        chosen["octoprint_camera_port"] = ready["octoprint"]["camera_port"]
        chosen["octoprint_api_key"] = ready["octoprint"]["api_key"]
        chosen["octoprint_uuid"] = ready["octoprint"]["uuid"]
    new = {key: port for key, port in chosen.items() if state.get(key) != port}
    if new:
        state.update(new)
        _save(paths.state_file, state)
        shown = {k: v for k, v in new.items() if not k.endswith(("api_key", "uuid"))}
        note(f"chose free ports {shown} (kept in {paths.show(paths.state_file)})")
    mjpeg, bambu = ready["mjpeg"], ready["bambu"]
    note(f"MJPEG stream {mjpeg['url']} (status {mjpeg['status_url']})")
    note(
        f"Bambu P1 camera {bambu['host']}:{bambu['port']} serial {bambu['serial']} "
        f"(status {bambu['status_url']})"
    )
    if (x1c := ready.get("x1c")) is not None:
        note(
            f"Bambu X1C RTSPS camera {x1c['host']}:{x1c['port']} serial "
            f"{x1c['serial']} (status {x1c['status_url']})"
        )
    else:
        note(f"no X1C camera: {ready.get('x1c_unavailable')}")
    if (octo := ready.get("octoprint")) is not None:
        note(f"OctoPrint {octo['url']} (webcam {octo['camera_url']})")
    elif octoprint:
        note(f"no OctoPrint: {ready.get('octoprint_unavailable')}")
    return ready


async def start_hass(
    procs: Processes, paths: Paths, session: aiohttp.ClientSession, base: str
) -> None:
    """Start hass and wait until its HTTP server answers."""
    step("Starting Home Assistant")
    proc = procs.start(
        "Home Assistant",
        [
            str(VENV_BIN / "hass"),
            "-c",
            str(paths.config),
            "--log-file",
            str(paths.hass_log),
        ],
        paths.root / "hass.stdout.log",
    )
    note(f"waiting for {base}/api/onboarding")
    started = time.monotonic()
    while True:
        if proc.poll() is not None:
            raise DemoError(
                f"Home Assistant exited ({proc.returncode}); see {paths.hass_log}"
            )
        if time.monotonic() - started > HA_START_TIMEOUT:
            raise DemoError(
                f"Home Assistant did not answer in time; see {paths.hass_log}"
            )
        with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
            async with session.get(
                f"{base}/api/onboarding", timeout=aiohttp.ClientTimeout(total=5)
            ) as resp:
                # 200 while onboarding; 404 once done (the views are gone).
                if resp.status in (200, 404):
                    break
        await asyncio.sleep(0.5)
    note(f"Home Assistant answers after {time.monotonic() - started:.1f} s")


async def _json(resp: aiohttp.ClientResponse, what: str) -> Any:
    if resp.status >= 400:
        raise DemoError(f"{what}: HTTP {resp.status}: {await resp.text()}")
    return await resp.json()


async def _exchange_code(
    session: aiohttp.ClientSession, base: str, client_id: str, code: str
) -> str:
    async with session.post(
        f"{base}/auth/token",
        data={"grant_type": "authorization_code", "client_id": client_id, "code": code},
    ) as resp:
        token: str = (await _json(resp, "POST /auth/token"))["access_token"]
        return token


class WebSocket:
    """Minimal Home Assistant websocket API client."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """Wrap an authenticated websocket."""
        self._ws = ws
        self._id = 0

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(
        cls, session: aiohttp.ClientSession, base: str, token: str
    ) -> AsyncIterator[WebSocket]:
        """Open the websocket API and authenticate with ``token``."""
        async with session.ws_connect(f"{base}/api/websocket") as ws:
            await ws.receive_json()  # auth_required
            await ws.send_json({"type": "auth", "access_token": token})
            msg = await ws.receive_json()
            if msg.get("type") != "auth_ok":
                raise DemoError(f"websocket authentication failed: {msg}")
            yield cls(ws)

    async def call(self, type_: str, **data: Any) -> Any:
        """Send one command; return its result or raise DemoError."""
        self._id += 1
        await self._ws.send_json({"id": self._id, "type": type_, **data})
        while True:
            msg = await self._ws.receive_json()
            if msg.get("id") == self._id and msg.get("type") == "result":
                break
        if not msg.get("success"):
            raise DemoError(f"{type_}: {msg.get('error')}")
        return msg.get("result")


async def authenticate(
    paths: Paths, session: aiohttp.ClientSession, base: str
) -> dict[str, Any]:
    """Onboard HA when needed; return the credentials, with a working token."""
    step("Onboarding and login")
    client_id = f"{base}/"
    creds = _load(paths.credentials_file)
    async with session.get(f"{base}/api/onboarding") as resp:
        if resp.status == 404:  # onboarding finished: HA no longer serves it
            steps = {}
        else:
            steps = {
                s["step"]: s["done"] for s in await _json(resp, "GET /api/onboarding")
            }
    token: str | None = None

    if not steps.get("user", True):
        password = secrets.token_urlsafe(12)
        creds = {"username": USERNAME, "password": password}
        _save(paths.credentials_file, creds, private=True)
        async with session.post(
            f"{base}/api/onboarding/users",
            json={
                "client_id": client_id,
                "name": "Demo",
                "username": USERNAME,
                "password": password,
                "language": "en",
            },
        ) as resp:
            code = (await _json(resp, "POST /api/onboarding/users"))["auth_code"]
        token = await _exchange_code(session, base, client_id, code)
        note(
            f"created user {USERNAME!r} "
            f"(password in {paths.show(paths.credentials_file)})"
        )
    elif creds.get("token"):
        async with session.get(
            f"{base}/api/", headers={"Authorization": f"Bearer {creds['token']}"}
        ) as resp:
            if resp.status == 200:
                token = creds["token"]
                note("user exists; long-lived token still valid (skipped login)")
    if token is None:
        if not creds.get("password"):
            raise DemoError(
                f"HA is onboarded but {paths.credentials_file} has no password: "
                f"delete {paths.show(paths.root)}"
            )
        token = await _login_flow(session, base, client_id, creds)
        note("logged in with the saved password")

    headers = {"Authorization": f"Bearer {token}"}
    for name, payload in (
        ("core_config", {}),
        ("analytics", {}),
        (
            "integration",
            {"client_id": client_id, "redirect_uri": f"{base}/?auth_callback=1"},
        ),
    ):
        if steps.get(name, True):
            continue
        async with session.post(
            f"{base}/api/onboarding/{name}", json=payload, headers=headers
        ) as resp:
            await _json(resp, f"POST /api/onboarding/{name}")
        note(f"onboarding step {name} done")
    if all(steps.values()):
        note("onboarding already complete (skipped)")

    if creds.get("token") != token:
        async with WebSocket.connect(session, base, token) as ws:
            long_lived: str = await ws.call(
                "auth/long_lived_access_token",
                client_name="PrintCam demo",
                lifespan=3650,
            )
        creds["token"] = long_lived
        _save(paths.credentials_file, creds, private=True)
        note("saved a long-lived access token")
    return creds


async def _login_flow(
    session: aiohttp.ClientSession, base: str, client_id: str, creds: dict[str, Any]
) -> str:
    async with session.post(
        f"{base}/auth/login_flow",
        json={
            "client_id": client_id,
            "handler": ["homeassistant", None],
            "redirect_uri": f"{base}/?auth_callback=1",
        },
    ) as resp:
        flow = await _json(resp, "POST /auth/login_flow")
    async with session.post(
        f"{base}/auth/login_flow/{flow['flow_id']}",
        json={
            "client_id": client_id,
            "username": creds["username"],
            "password": creds["password"],
        },
    ) as resp:
        result = await _json(resp, "login flow")
    if result.get("type") != "create_entry":
        raise DemoError(f"login failed: {result}")
    return await _exchange_code(session, base, client_id, result["result"])


class ConfigFlows:
    """The config-flow REST API of one Home Assistant."""

    def __init__(self, session: aiohttp.ClientSession, base: str, token: str) -> None:
        """Use ``token`` against ``base``."""
        self._session = session
        self._base = base
        self._headers = {"Authorization": f"Bearer {token}"}

    async def entry_ids(self) -> set[str]:
        """Return the ids of PrintCam's config entries."""
        async with self._session.get(
            f"{self._base}/api/config/config_entries/entry",
            params={"domain": "printcam"},
            headers=self._headers,
        ) as resp:
            entries = await _json(resp, "GET config entries")
        return {entry["entry_id"] for entry in entries}

    async def add(self, menu_step: str, form: dict[str, Any]) -> dict[str, Any]:
        """Start PrintCam's flow, pick ``menu_step``, submit ``form``; return the result."""
        flow_url = f"{self._base}/api/config/config_entries/flow"
        async with self._session.post(
            flow_url,
            json={"handler": "printcam", "show_advanced_options": False},
            headers=self._headers,
        ) as resp:
            result = await _json(resp, "start config flow")
        if result.get("type") == "menu":
            async with self._session.post(
                f"{flow_url}/{result['flow_id']}",
                json={"next_step_id": menu_step},
                headers=self._headers,
            ) as resp:
                result = await _json(resp, f"choose {menu_step}")
        result = await self._past_search(flow_url, result)
        async with self._session.post(
            f"{flow_url}/{result['flow_id']}", json=form, headers=self._headers
        ) as resp:
            result = await _json(resp, f"submit the {menu_step} form")
        if result.get("type") == "form":
            # Still the form: it shows errors. Do not leave the flow pending.
            async with self._session.delete(
                f"{flow_url}/{result['flow_id']}", headers=self._headers
            ):
                pass
        return dict(result)

    async def _past_search(
        self, flow_url: str, result: dict[str, Any]
    ) -> dict[str, Any]:
        """Wait out a step's search for printers; choose entry by hand.

        The Bambu Lab step first looks for printers on the network (a few
        seconds); Home Assistant moves the flow on by itself when it ends.
        The demo adds its printers by hand, with their simulated ports.
        """
        url = f"{flow_url}/{result['flow_id']}"
        deadline = time.monotonic() + 30
        while result.get("type") in ("progress", "progress_done"):
            if time.monotonic() > deadline:
                raise DemoError(f"the config flow stayed in {result.get('step_id')}")
            await asyncio.sleep(0.2)
            result = await _flow_step(self._session, url, self._headers)
        if result.get("type") == "form" and str(result.get("step_id")).endswith(
            "_pick"
        ):
            async with self._session.post(
                url, json={"printer": "manual"}, headers=self._headers
            ) as resp:
                result = await _json(resp, "enter the printer by hand")
        return result


async def _flow_step(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str]
) -> dict[str, Any]:
    async with session.get(url, headers=headers) as resp:
        return dict(await _json(resp, "read the config flow"))


async def add_printers(
    paths: Paths,
    flows: ConfigFlows,
    sims: dict[str, Any],
    state: dict[str, Any],
) -> None:
    """Add the simulated printers through the config flow, unless done.

    The REST API does not show an entry's data: the entry made for each
    simulator (and the address it was made for) is remembered in state.json.
    """
    existing = await flows.entry_ids()
    mjpeg, bambu = sims["mjpeg"], sims["bambu"]
    printers = [
        (
            "mjpeg",
            f"{MJPEG_NAME!r} ({mjpeg['url']})",
            mjpeg["url"],
            {"name": MJPEG_NAME, "url": mjpeg["url"], "verify_ssl": True},
        ),
        (
            "bambu",
            f"Bambu Lab {BAMBU_MODEL} {bambu['serial']} ({bambu['host']}:{bambu['port']})",
            f"{bambu['host']}:{bambu['port']}",
            {
                "host": bambu["host"],
                "serial": bambu["serial"],
                "access_code": bambu["access_code"],
                "model": BAMBU_MODEL,
                "advanced": {"port": bambu["port"]},
            },
        ),
    ]
    if (octo := sims.get("octoprint")) is not None:
        printers.append(
            (
                "octoprint",
                f"OctoPrint ({octo['url']})",
                octo["url"],
                {
                    "host": octo["host"],
                    "port": octo["port"],
                    "ssl": False,
                    "path": "/",
                    "api_key": octo["api_key"],
                },
            )
        )
    if (x1c := sims.get("x1c")) is not None:
        printers.append(
            (
                "x1c",
                f"Bambu Lab X1C {x1c['serial']} ({x1c['host']}:{x1c['port']})",
                f"{x1c['host']}:{x1c['port']}",
                {
                    "host": x1c["host"],
                    "serial": x1c["serial"],
                    "access_code": x1c["access_code"],
                    "model": x1c["model"],
                    "advanced": {"port": x1c["port"]},
                },
            )
        )
    for key, label, address, form in printers:
        step(f"Adding {label}")
        entry_key, address_key = f"{key}_entry_id", f"{key}_entry_address"
        if key == "mjpeg":  # the names the first demo (MJPEG only) used
            entry_key, address_key = "entry_id", "entry_url"
        entry_id = state.get(entry_key)
        if entry_id in existing and state.get(address_key) == address:
            note(f"entry {entry_id} exists (skipped)")
            continue
        result = await flows.add("bambu" if key == "x1c" else key, form)
        if result.get("type") == "abort" and result.get("reason") == (
            "already_configured"
        ):
            raise DemoError(
                f"Home Assistant already has an entry for this printer, but "
                f"{paths.show(paths.state_file)} does not name it: delete "
                f"{paths.show(paths.root)} to start over"
            )
        if result.get("type") != "create_entry":
            raise DemoError(f"config flow did not create an entry: {result}")
        state[entry_key] = result["result"]["entry_id"]
        state[address_key] = address
        _save(paths.state_file, state)
        note(f"created entry {result['result']['title']!r}")


def entry_ids(state: dict[str, Any], sims: dict[str, Any]) -> dict[str, str]:
    """Return the config entry id made for each running simulator (state.json)."""
    entries = {"mjpeg": state["entry_id"], "bambu": state["bambu_entry_id"]}
    for key in ("x1c", "octoprint"):
        if key in sims:
            entries[key] = state[f"{key}_entry_id"]
    return entries


async def _printer_entities(
    ws: WebSocket, paths: Paths, entries: dict[str, str]
) -> dict[str, list[str]]:
    """Wait until each printer's entry has a camera; return its entity ids."""
    deadline = time.monotonic() + ENTITIES_TIMEOUT
    while True:
        registry = await ws.call("config/entity_registry/list")
        found: dict[str, list[str]] = {}
        for key, entry_id in entries.items():
            found[key] = sorted(
                e["entity_id"]
                for e in registry
                if e.get("platform") == "printcam"
                and e.get("config_entry_id") == entry_id
                and e.get("disabled_by") is None
            )
        missing = [
            key
            for key, ids in found.items()
            if not any(i.startswith("camera.") for i in ids)
        ]
        if not missing:
            return found
        if time.monotonic() > deadline:
            raise DemoError(
                f"no camera entity appeared for {missing}; see {paths.hass_log}"
            )
        await asyncio.sleep(0.5)


def _own_entity(ids: list[str], camera: str, domain: str, suffix: str) -> str | None:
    """Return the ``domain`` entity of ``camera`` named ``..._<suffix>``, if any.

    A camera ``camera.<name>`` has, e.g., ``button.<name>_record_clip`` (a
    printer's second webcam ``camera.<printer>_<webcam>`` likewise); when that
    id was taken, the printer's only one of its kind will do.
    """
    wanted = f"{domain}.{camera.split('.', 1)[1]}_{suffix}"
    if wanted in ids:
        return wanted
    found = [i for i in ids if i.startswith(f"{domain}.") and i.endswith(f"_{suffix}")]
    cameras = [i for i in ids if i.startswith("camera.")]
    return found[0] if len(found) == 1 and len(cameras) == 1 else None


def recording_cards(ids: list[str], camera: str) -> list[dict[str, Any]]:
    """Return the tiles under a camera: record a clip, and the recording's outcome.

    Tapping the button's tile presses it (the frontend's ``toggle`` of a
    ``button.`` entity is ``button.press``; a tile's default would open its
    dialog); the event's tile shows the last recording event ("Clip ready").
    """
    tiles: list[dict[str, Any]] = []
    if button := _own_entity(ids, camera, "button", "record_clip"):
        press = {"action": "toggle"}
        tiles.append(
            {
                "type": "tile",
                "entity": button,
                "name": "Record clip",
                "icon": "mdi:record-rec",
                "color": "red",
                "hide_state": True,
                "tap_action": press,
                "icon_tap_action": press,
            }
        )
    if event := _own_entity(ids, camera, "event", "recording"):
        # Only the event type: an event that never fired has no time to show.
        tiles.append(
            {
                "type": "tile",
                "entity": event,
                "name": "Recording",
                "state_content": "event_type",
            }
        )
    return tiles


def dashboard_config(entities: dict[str, list[str]]) -> dict[str, Any]:
    """Return the dashboard.

    Per printer, its live camera, under it a record-clip button next to the
    last recording event, then its state entities.
    """
    stacks: list[dict[str, Any]] = []
    for ids in entities.values():
        camera = next(i for i in ids if i.startswith("camera."))
        others = [i for i in ids if i.split(".")[0] in STATE_DOMAINS]
        cards: list[dict[str, Any]] = [
            {"type": "picture-entity", "entity": camera, "camera_view": "live"}
        ]
        if tiles := recording_cards(ids, camera):
            cards.append({"type": "horizontal-stack", "cards": tiles})
        if others:
            cards.append(
                {"type": "entities", "entities": others, "show_header_toggle": False}
            )
        stacks.append({"type": "vertical-stack", "cards": cards})
    return {
        "title": "PrintCam demo",
        "views": [{"title": "Printers", "path": "printers", "cards": stacks}],
    }


async def create_dashboard(
    paths: Paths,
    session: aiohttp.ClientSession,
    base: str,
    token: str,
    entries: dict[str, str],
) -> dict[str, str]:
    """Create or update the printcam-demo dashboard; return the cameras."""
    step(f"Dashboard /{DASHBOARD}")
    async with WebSocket.connect(session, base, token) as ws:
        entities = await _printer_entities(ws, paths, entries)
        cameras = {
            key: next(i for i in ids if i.startswith("camera."))
            for key, ids in entities.items()
        }
        wanted = dashboard_config(entities)
        dashboards = await ws.call("lovelace/dashboards/list")
        if not any(d.get("url_path") == DASHBOARD for d in dashboards):
            await ws.call(
                "lovelace/dashboards/create",
                url_path=DASHBOARD,
                title="PrintCam demo",
                icon="mdi:printer-3d",
                show_in_sidebar=True,
                require_admin=False,
            )
            current = None
        else:
            try:
                current = await ws.call("lovelace/config", url_path=DASHBOARD)
            except DemoError:  # exists without a saved config
                current = None
        if current == wanted:
            note("dashboard up to date (skipped)")
        else:
            await ws.call("lovelace/config/save", url_path=DASHBOARD, config=wanted)
            count = sum(len(ids) for ids in entities.values())
            note(f"saved: cameras {sorted(cameras.values())}, {count} entities")
    return cameras


# -------------------------------------------------------------------- main


async def bring_up(
    paths: Paths, port: int, procs: Processes, *, octoprint: bool = False
) -> DemoInfo:
    """Do every step (skipping what is done); return what the demo offers.

    The children started are in ``procs``; stopping them is the caller's job
    (`Processes.stop_all`), also when this raises.
    """
    paths.root.mkdir(parents=True, exist_ok=True)
    state = _load(paths.state_file)
    if port_busy(port):
        raise DemoError(f"port {port} is in use: choose another with --port N")
    write_config(paths, port)
    base = f"http://127.0.0.1:{port}"
    sims = await start_simulators(procs, paths, state, octoprint)
    async with aiohttp.ClientSession() as session:
        await start_hass(procs, paths, session, base)
        creds = await authenticate(paths, session, base)
        flows = ConfigFlows(session, base, creds["token"])
        await add_printers(paths, flows, sims, state)
        entries = entry_ids(state, sims)
        cameras = await create_dashboard(paths, session, base, creds["token"], entries)
    return DemoInfo(
        base=base,
        username=creds["username"],
        password=creds["password"],
        token=creds["token"],
        simulators=sims,
        cameras=cameras,
        entries=entries,
    )


async def run(
    paths: Paths,
    port: int,
    stop: asyncio.Event,
    procs: Processes,
    *,
    octoprint: bool = False,
) -> None:
    """Bring the demo up, then watch the children until ``stop``."""
    started = time.monotonic()
    info = await bring_up(paths, port, procs, octoprint=octoprint)
    bambu = info.simulators["bambu"]
    step(f"Ready after {time.monotonic() - started:.1f} s")
    note(f"open      {info.dashboard_url}")
    note(f"username  {info.username}")
    note(f"password  {info.password}")
    note(f'token     in {paths.show(paths.credentials_file)} ("token")')
    note(f"MJPEG     {info.simulators['mjpeg']['status_url']} (counters)")
    note(f"Bambu     {bambu['status_url']} (counters)")
    note(
        f"          {bambu['host']}:{bambu['port']} serial {bambu['serial']} "
        f"access code {bambu['access_code']}"
    )
    if (octo := info.simulators.get("octoprint")) is not None:
        note(f"OctoPrint {octo['url']} (user admin, API key {octo['api_key']})")
        note(f"          webcam counters {octo['camera_status_url']}")
    if (x1c := info.simulators.get("x1c")) is not None:
        note(f"X1C       {x1c['status_url']} (counters)")
        note(
            f"          {x1c['host']}:{x1c['port']} serial {x1c['serial']} "
            f"access code {x1c['access_code']}"
        )
    note("Ctrl-C stops Home Assistant and the simulators")
    while not stop.is_set():
        for name, proc in procs.children:
            if proc.poll() is not None:
                raise DemoError(
                    f"{name} exited ({proc.returncode}); "
                    f"see the logs in {paths.show(paths.root)}"
                )
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=1)


async def amain(paths: Paths, port: int, *, octoprint: bool = False) -> int:
    """Run the demo; stop the children however it ends; return the exit code."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    procs = Processes(paths)
    task = asyncio.current_task()
    if task is None:
        raise RuntimeError("amain must run in a task")

    def on_signal() -> None:
        if stop.is_set():
            return
        print("\n==> Stopping", flush=True)
        stop.set()
        task.cancel()  # interrupts any step still waiting

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    code = 0
    try:
        await run(paths, port, stop, procs, octoprint=octoprint)
    except asyncio.CancelledError:
        pass
    except DemoError as err:
        print(f"ERROR: {err}", file=sys.stderr, flush=True)
        code = 1
    finally:
        if procs.children and not stop.is_set():
            print("==> Stopping", flush=True)
        await asyncio.shield(asyncio.to_thread(procs.stop_all))
    return code


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``python -m printer_sim.demo``."""
    parser = argparse.ArgumentParser(
        prog="scripts/demo", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("PRINTCAM_DEMO_PORT", "8123")),
        help="Home Assistant port (default 8123 or $PRINTCAM_DEMO_PORT)",
    )
    parser.add_argument(
        "--octoprint",
        action="store_true",
        help="also run a real OctoPrint (from .venv-octoprint) and add it",
    )
    args = parser.parse_args(argv)
    paths = Paths.from_env()
    sys.exit(asyncio.run(amain(paths, args.port, octoprint=args.octoprint)))


if __name__ == "__main__":
    main()
