"""PrintCam demo: Home Assistant + a simulated printer, ready to look at.

Run through ``scripts/demo [--port N]`` (which sets up .venv first). Steps,
each skipped when a previous run already did it (state lives in ``.demo/``):

1. write ``.demo/config`` (configuration.yaml, custom_components symlink);
2. start the printer simulator (``python -m printer_sim``) on a port kept in
   ``.demo/state.json`` and Home Assistant (log in ``.demo/hass.log``);
3. onboard HA (user ``demo``, password in ``.demo/credentials.json``) and
   keep a long-lived access token there;
4. add the simulated printer through the config-flow REST API;
5. create the ``printcam-demo`` dashboard (live camera + the printer's other
   entities).

Then it stays in the foreground; Ctrl-C / SIGTERM stops HA and the simulator
(each in its own process group: terminate, wait, kill).
"""

# ruff: noqa: T201 - a command-line tool: printing is its output

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator
import contextlib
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
DEMO = ROOT / ".demo"
CONFIG = DEMO / "config"
STATE_FILE = DEMO / "state.json"
CREDENTIALS_FILE = DEMO / "credentials.json"
HASS_LOG = DEMO / "hass.log"
SIM_LOG = DEMO / "printer_sim.log"
VENV_BIN = ROOT / ".venv" / "bin"

USERNAME = "demo"
PRINTER_NAME = "Demo printer (MJPEG)"
DASHBOARD = "printcam-demo"
STOP_TIMEOUT = 20.0
HA_START_TIMEOUT = 300.0

CONFIGURATION_YAML = """\
# Written by scripts/demo. default_config: is not used: go2rtc has no binary.
homeassistant:
  name: PrintCam demo
  unit_system: metric
  time_zone: UTC
  latitude: 0
  longitude: 0
  elevation: 0
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
system_health:
automation:
"""


def step(message: str) -> None:
    """Print one progress line."""
    print(f"==> {message}", flush=True)


def note(message: str) -> None:
    """Print a detail line under a step."""
    print(f"    {message}", flush=True)


class DemoError(Exception):
    """A step failed; the message says what to do."""


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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _port_busy(port: int) -> bool:
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

    def __init__(self) -> None:
        """Start with no children."""
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
        note(f"{name} started (pid {proc.pid}, log {log.relative_to(ROOT)})")
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


def write_config(port: int) -> None:
    """Write configuration.yaml and the custom_components symlink."""
    step(f"Home Assistant configuration in {CONFIG.relative_to(ROOT)}")
    (CONFIG / "custom_components").mkdir(parents=True, exist_ok=True)
    yaml_path = CONFIG / "configuration.yaml"
    wanted = CONFIGURATION_YAML.format(port=port)
    if yaml_path.exists() and yaml_path.read_text(encoding="utf-8") == wanted:
        note("configuration.yaml up to date (skipped)")
    else:
        yaml_path.write_text(wanted, encoding="utf-8")
        note(f"wrote configuration.yaml (http on 127.0.0.1:{port})")
    link = CONFIG / "custom_components" / "printcam"
    target = ROOT / "custom_components" / "printcam"
    if link.is_symlink() and link.resolve() == target.resolve():
        note("custom_components/printcam symlink present (skipped)")
    else:
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(target)
        note(f"linked custom_components/printcam -> {target}")


async def start_simulator(procs: Processes, state: dict[str, Any]) -> dict[str, Any]:
    """Start ``python -m printer_sim``; return its MJPEG URLs."""
    step("Starting the printer simulator")
    port = state.get("sim_port")
    if port is None:
        port = _free_port()
        state["sim_port"] = port
        _save(STATE_FILE, state)
        note(f"chose port {port} (kept in {STATE_FILE.relative_to(ROOT)})")
    elif _port_busy(port):
        raise DemoError(
            f"simulator port {port} (from {STATE_FILE.relative_to(ROOT)}) is in use; "
            "free it, or delete .demo/ to start over"
        )
    else:
        note(f"reusing port {port} from {STATE_FILE.relative_to(ROOT)}")
    ready_file = DEMO / "printer_sim.json"
    ready_file.unlink(missing_ok=True)
    proc = procs.start(
        "printer simulator",
        [
            str(VENV_BIN / "python"),
            "-m",
            "printer_sim",
            "--mjpeg-port",
            str(port),
            "--status-file",
            str(ready_file),
        ],
        SIM_LOG,
    )
    deadline = time.monotonic() + 30
    while not ready_file.exists():
        if proc.poll() is not None:
            raise DemoError(f"the simulator exited ({proc.returncode}); see {SIM_LOG}")
        if time.monotonic() > deadline:
            raise DemoError(f"the simulator did not start; see {SIM_LOG}")
        await asyncio.sleep(0.1)
    ready: dict[str, Any] = json.loads(ready_file.read_text(encoding="utf-8"))["mjpeg"]
    note(f"MJPEG stream {ready['url']} (status {ready['status_url']})")
    return ready


async def start_hass(
    procs: Processes, session: aiohttp.ClientSession, base: str
) -> None:
    """Start hass and wait until its HTTP server answers."""
    step("Starting Home Assistant")
    proc = procs.start(
        "Home Assistant",
        [str(VENV_BIN / "hass"), "-c", str(CONFIG), "--log-file", str(HASS_LOG)],
        DEMO / "hass.stdout.log",
    )
    note(
        f"waiting for {base}/api/onboarding (the very first start installs the frontend)"
    )
    started = time.monotonic()
    while True:
        if proc.poll() is not None:
            raise DemoError(
                f"Home Assistant exited ({proc.returncode}); see {HASS_LOG}"
            )
        if time.monotonic() - started > HA_START_TIMEOUT:
            raise DemoError(f"Home Assistant did not answer in time; see {HASS_LOG}")
        with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
            async with session.get(
                f"{base}/api/onboarding", timeout=aiohttp.ClientTimeout(total=5)
            ) as resp:
                # 200 while onboarding; 404 once done (the views are gone).
                if resp.status in (200, 404):
                    break
        await asyncio.sleep(1)
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


async def authenticate(session: aiohttp.ClientSession, base: str) -> str:
    """Onboard HA when needed; return a working access token."""
    step("Onboarding and login")
    client_id = f"{base}/"
    creds = _load(CREDENTIALS_FILE)
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
        _save(CREDENTIALS_FILE, creds, private=True)
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
            f"created user {USERNAME!r} (password in {CREDENTIALS_FILE.relative_to(ROOT)})"
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
                f"HA is onboarded but {CREDENTIALS_FILE} has no password: delete .demo/"
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
        _save(CREDENTIALS_FILE, creds, private=True)
        note("saved a long-lived access token")
        token = long_lived
    return token


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


async def add_printer(
    session: aiohttp.ClientSession,
    base: str,
    token: str,
    sim: dict[str, Any],
    state: dict[str, Any],
) -> None:
    """Add the simulated printer through the config flow, unless done."""
    step(f"Adding {PRINTER_NAME!r} ({sim['url']})")
    headers = {"Authorization": f"Bearer {token}"}
    async with session.get(
        f"{base}/api/config/config_entries/entry",
        params={"domain": "printcam"},
        headers=headers,
    ) as resp:
        entries = await _json(resp, "GET config entries")
    # The REST API does not show an entry's URL: the entry made for this
    # simulator URL is remembered in state.json.
    for entry in entries:
        if (
            entry["entry_id"] == state.get("entry_id")
            and state.get("entry_url") == sim["url"]
        ):
            note(f"entry {entry['title']!r} exists, state {entry['state']} (skipped)")
            return
    flow_url = f"{base}/api/config/config_entries/flow"
    async with session.post(
        flow_url,
        json={"handler": "printcam", "show_advanced_options": False},
        headers=headers,
    ) as resp:
        result = await _json(resp, "start config flow")
    if result.get("type") == "menu":
        async with session.post(
            f"{flow_url}/{result['flow_id']}",
            json={"next_step_id": "mjpeg"},
            headers=headers,
        ) as resp:
            result = await _json(resp, "choose mjpeg")
    async with session.post(
        f"{flow_url}/{result['flow_id']}",
        json={"name": PRINTER_NAME, "url": sim["url"], "verify_ssl": True},
        headers=headers,
    ) as resp:
        result = await _json(resp, "submit printer")
    if result.get("type") == "abort" and result.get("reason") == "already_configured":
        note("an entry for this URL already exists (skipped)")
        return
    if result.get("type") != "create_entry":
        raise DemoError(f"config flow did not create an entry: {result}")
    state["entry_id"] = result["result"]["entry_id"]
    state["entry_url"] = sim["url"]
    _save(STATE_FILE, state)
    note(f"created entry {result['result']['title']!r}")


async def create_dashboard(
    session: aiohttp.ClientSession, base: str, token: str
) -> None:
    """Create the printcam-demo dashboard, unless it exists."""
    step(f"Dashboard /{DASHBOARD}")
    async with WebSocket.connect(session, base, token) as ws:
        dashboards = await ws.call("lovelace/dashboards/list")
        if any(d.get("url_path") == DASHBOARD for d in dashboards):
            note("dashboard exists (skipped)")
            return
        # The entities appear once the entry has set up: wait for a camera.
        deadline = time.monotonic() + 60
        while True:
            registry = await ws.call("config/entity_registry/list")
            ours = sorted(
                (e for e in registry if e.get("platform") == "printcam"),
                key=lambda e: e["entity_id"],
            )
            cameras = [
                e["entity_id"] for e in ours if e["entity_id"].startswith("camera.")
            ]
            if cameras or time.monotonic() > deadline:
                break
            await asyncio.sleep(1)
        if not cameras:
            raise DemoError("no printcam camera entity appeared; see .demo/hass.log")
        others = [
            e["entity_id"]
            for e in ours
            if e["entity_id"].split(".")[0]
            in ("sensor", "binary_sensor", "switch", "button")
        ]
        cards: list[dict[str, Any]] = [
            {"type": "picture-entity", "entity": cam, "camera_view": "live"}
            for cam in cameras
        ]
        if others:
            cards.append({"type": "entities", "title": "Printer", "entities": others})
        await ws.call(
            "lovelace/dashboards/create",
            url_path=DASHBOARD,
            title="PrintCam demo",
            icon="mdi:printer-3d",
            show_in_sidebar=True,
            require_admin=False,
        )
        await ws.call(
            "lovelace/config/save",
            url_path=DASHBOARD,
            config={
                "title": "PrintCam demo",
                "views": [{"title": "Printer", "path": "printer", "cards": cards}],
            },
        )
        note(f"created with cameras {cameras} and {len(others)} other entities")


# -------------------------------------------------------------------- main


async def run(port: int, stop: asyncio.Event, procs: Processes) -> None:
    """Do every step, then watch the children until ``stop``."""
    DEMO.mkdir(exist_ok=True)
    state = _load(STATE_FILE)
    if _port_busy(port):
        raise DemoError(f"port {port} is in use: choose another with --port N")
    write_config(port)
    base = f"http://127.0.0.1:{port}"
    sim = await start_simulator(procs, state)
    async with aiohttp.ClientSession() as session:
        await start_hass(procs, session, base)
        token = await authenticate(session, base)
        await add_printer(session, base, token, sim, state)
        await create_dashboard(session, base, token)
    creds = _load(CREDENTIALS_FILE)
    step("Ready")
    note(f"open      {base}/{DASHBOARD}")
    note(f"username  {creds['username']}")
    note(f"password  {creds['password']}")
    note(f'token     in {CREDENTIALS_FILE.relative_to(ROOT)} ("token")')
    note(f"simulator {sim['status_url']} (counters)")
    note("Ctrl-C stops Home Assistant and the simulator")
    while not stop.is_set():
        for name, proc in procs.children:
            if proc.poll() is not None:
                raise DemoError(f"{name} exited ({proc.returncode}); see .demo/ logs")
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=1)


async def amain(port: int) -> int:
    """Run the demo; stop the children however it ends; return the exit code."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    procs = Processes()
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
        await run(port, stop, procs)
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
    args = parser.parse_args(argv)
    sys.exit(asyncio.run(amain(args.port)))


if __name__ == "__main__":
    main()
