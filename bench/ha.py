"""PrintCam against Home Assistant's mjpeg camera and a raw-socket floor.

    scripts/bench [--quick] [--integration PATH | --rev REV] [--out DIR]
                  [--json FILE] [--keep]

One real Home Assistant (``hass -c`` in a temporary directory, onboarded
and given entries through its REST API like `printer_sim.demo`) serves two
cameras of the same simulated camera: a PrintCam MJPEG entry and an entry
of Home Assistant's own ``mjpeg`` integration. A third system, the
raw-socket floor (`bench.floor`), serves it with no Home Assistant at all.
For each N (1, 5, 20, 50 viewers; ``--quick``: 1 and 5, shorter runs) and
each system, `bench.viewers` measures one run in its own process and this
prints one progress line. Then it prints the table and the targets and
writes ``benchmark.md`` and ``benchmark.png`` to ``--out`` (default
docs/).

Every process it starts runs in its own process group and is stopped
(terminate, wait, kill) however the benchmark ends, Ctrl-C included; the
temporary directory is removed unless ``--keep``. It exits non-zero only
when a run is broken (a process died, a viewer got no frames), never
because a target was missed.
"""

# ruff: noqa: T201 - a command-line tool: printing is its output

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
import contextlib
from dataclasses import asdict, dataclass
import datetime as dt
import json
import os
from pathlib import Path
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any

import aiohttp
from homeassistant.const import __version__ as ha_version

from printer_sim.demo import (
    ROOT,
    VENV_BIN,
    ConfigFlows,
    DemoError,
    Paths,
    Processes,
    WebSocket,
    authenticate,
    start_hass,
)

from . import report
from .stats import CpuMeter

DEFAULT_INTEGRATION = ROOT / "custom_components" / "printcam"
DEFAULT_OUT = ROOT / "docs"
READY_TIMEOUT = 60.0
RUN_TIMEOUT = 180.0
QUIET_TIMEOUT = 60.0
"""How long to wait for the other system's camera streams to close."""
ENTITY_TIMEOUT = 60.0
IDLE_SECONDS = 3.0
FPS = 30.0

CONFIGURATION_YAML = """\
# Written by scripts/bench. Only what the benchmark needs (no frontend,
# recorder or history: their work would be counted as the cameras').
homeassistant:
  name: PrintCam benchmark
  unit_system: metric
  time_zone: UTC
  latitude: 0
  longitude: 0
  elevation: 0
http:
  server_host: 127.0.0.1
  server_port: {port}
api:
onboarding:
config:
camera:
logger:
  default: warning
"""


@dataclass(frozen=True, slots=True)
class Plan:
    """What the benchmark runs."""

    ns: tuple[int, ...]
    window_s: float
    settle_s: float
    late_joiners: int
    stills: int


FULL = Plan(ns=(1, 5, 20, 50), window_s=8.0, settle_s=1.0, late_joiners=20, stills=30)
QUICK = Plan(ns=(1, 5), window_s=3.0, settle_s=0.5, late_joiners=8, stills=10)


class BenchError(Exception):
    """The benchmark cannot go on; the message says why."""


def step(message: str) -> None:
    """Print a setup step."""
    print(f"==> {message}", flush=True)


def free_port() -> int:
    """Return a port of 127.0.0.1 that is free now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# ------------------------------------------------------------------ setup


def checkout(rev: str, into: Path) -> Path:
    """Extract custom_components/printcam at git ``rev`` into ``into``."""
    archive = subprocess.run(  # noqa: S603 - our own repository
        ["git", "-C", str(ROOT), "archive", rev, "custom_components/printcam"],  # noqa: S607
        capture_output=True,
        check=False,
    )
    if archive.returncode != 0:
        raise BenchError(f"git archive {rev}: {archive.stderr.decode().strip()}")
    into.mkdir(parents=True)
    subprocess.run(  # noqa: S603
        ["tar", "-x", "-C", str(into)],  # noqa: S607
        input=archive.stdout,
        check=True,
    )
    return into / "custom_components" / "printcam"


def describe_integration(path: Path, rev: str | None) -> str:
    """Return where the measured integration comes from (path, commit)."""
    if rev is not None:
        commit = _git(ROOT, "rev-parse", "--short", rev)
        return f"commit {commit} (`{rev}`) of this repository"
    commit = _git(path, "rev-parse", "--short", "HEAD")
    if commit is None:
        return f"`{path}`"
    dirty = _git(path, "status", "--porcelain", "--", ".")
    state = " with uncommitted changes" if dirty else ""
    shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    return f"`{shown}` at {commit}{state}"


def _git(path: Path, *args: str) -> str | None:
    with contextlib.suppress(OSError):
        done = subprocess.run(  # noqa: S603
            ["git", "-C", str(path), *args],  # noqa: S607
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode == 0:
            return done.stdout.strip()
    return None


def machine() -> str:
    """Return the CPU model, core count and kernel."""
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    memory = ""
    with contextlib.suppress(OSError, ValueError, IndexError):
        total = Path("/proc/meminfo").read_text(encoding="utf-8").split()[1]
        memory = f", {int(total) / 1024 / 1024:.0f} GiB"
    return f"{model}, {os.cpu_count()} cores{memory}, Linux {platform.release()}"


async def wait_ready(proc: subprocess.Popen[bytes], path: Path, what: str) -> Any:
    """Wait for a child's ready file; return its JSON."""
    deadline = time.monotonic() + READY_TIMEOUT
    while not path.exists():
        if proc.poll() is not None:
            raise BenchError(f"{what} exited ({proc.returncode}); see {path.parent}")
        if time.monotonic() > deadline:
            raise BenchError(f"{what} did not start in {READY_TIMEOUT:g} s")
        await asyncio.sleep(0.1)
    return json.loads(path.read_text(encoding="utf-8"))


def write_config(paths: Paths, port: int, integration: Path) -> None:
    """Write configuration.yaml and link the integration measured."""
    custom = paths.config / "custom_components"
    custom.mkdir(parents=True)
    (paths.config / "configuration.yaml").write_text(
        CONFIGURATION_YAML.format(port=port), encoding="utf-8"
    )
    (custom / "printcam").symlink_to(integration.resolve())


async def _flow(
    session: aiohttp.ClientSession, base: str, token: str, handler: str, form: Any
) -> dict[str, Any]:
    """Run a one-form config flow of ``handler``; return the created entry."""
    headers = {"Authorization": f"Bearer {token}"}
    url = f"{base}/api/config/config_entries/flow"
    async with session.post(url, json={"handler": handler}, headers=headers) as resp:
        flow = await resp.json()
        if resp.status != 200:
            raise BenchError(f"start {handler} flow: HTTP {resp.status} {flow}")
    async with session.post(
        f"{url}/{flow['flow_id']}", json=form, headers=headers
    ) as resp:
        result: dict[str, Any] = await resp.json()
    if result.get("type") != "create_entry":
        raise BenchError(f"{handler} config flow did not create an entry: {result}")
    return result


async def _camera_entity(
    session: aiohttp.ClientSession, base: str, token: str, entry_id: str
) -> str:
    """Wait for the camera entity of a config entry; return its id."""
    deadline = time.monotonic() + ENTITY_TIMEOUT
    headers = {"Authorization": f"Bearer {token}"}
    async with WebSocket.connect(session, base, token) as ws:
        while True:
            registry = await ws.call("config/entity_registry/list")
            cameras = [
                e["entity_id"]
                for e in registry
                if e.get("config_entry_id") == entry_id
                and e["entity_id"].startswith("camera.")
            ]
            if cameras:
                async with session.get(
                    f"{base}/api/states/{cameras[0]}", headers=headers
                ) as resp:
                    state = await resp.json() if resp.status == 200 else {}
                if state.get("state") not in (None, "unavailable"):
                    return cameras[0]
            if time.monotonic() > deadline:
                raise BenchError(f"no camera entity for entry {entry_id}")
            await asyncio.sleep(0.5)


@dataclass(slots=True)
class Setup:
    """What the runs need: where each system is and what to measure."""

    ha_pid: int
    ha_port: int
    token: str
    floor_pid: int
    floor_port: int
    cameras: dict[str, dict[str, Any]]
    entities: dict[str, str]
    """Camera entity id of ``mjpeg`` and ``printcam``."""


async def bring_up(
    procs: Processes, paths: Paths, integration: Path, session: aiohttp.ClientSession
) -> Setup:
    """Start the cameras, the floor and Home Assistant; add both entries."""
    python = str(VENV_BIN / "python")
    step("Starting the simulated cameras and the raw-socket floor")
    cameras_file = paths.root / "cameras.json"
    proc = procs.start(
        "cameras",
        [
            python,
            "-m",
            "bench.camera",
            "--fps",
            f"{FPS:g}",
            "--ready-file",
            str(cameras_file),
        ],
        paths.root / "cameras.log",
    )
    cameras = await wait_ready(proc, cameras_file, "bench.camera")
    floor_file = paths.root / "floor.json"
    proc = procs.start(
        "floor",
        [
            python,
            "-m",
            "bench.floor",
            "--upstream",
            cameras["floor"]["url"],
            "--ready-file",
            str(floor_file),
        ],
        paths.root / "floor.log",
    )
    floor = await wait_ready(proc, floor_file, "bench.floor")
    port = free_port()
    write_config(paths, port, integration)
    base = f"http://127.0.0.1:{port}"
    await start_hass(procs, paths, session, base)
    ha_pid = next(p.pid for name, p in procs.children if name == "Home Assistant")
    creds = await authenticate(paths, session, base)
    token = creds["token"]
    step("Adding the cameras: PrintCam (MJPEG) and Home Assistant's mjpeg")
    printcam = await ConfigFlows(session, base, token).add(
        "mjpeg",
        {
            "name": "Bench PrintCam",
            "url": cameras["printcam"]["url"],
            "still_url": cameras["printcam"]["still_url"],
            "verify_ssl": True,
        },
    )
    if printcam.get("type") != "create_entry":
        raise BenchError(f"PrintCam config flow did not create an entry: {printcam}")
    mjpeg = await _flow(
        session,
        base,
        token,
        "mjpeg",
        {
            "name": "Bench mjpeg",
            "mjpeg_url": cameras["mjpeg"]["url"],
            "still_image_url": cameras["mjpeg"]["still_url"],
            "password": "",
            "verify_ssl": True,
        },
    )
    entities = {
        "printcam": await _camera_entity(
            session, base, token, printcam["result"]["entry_id"]
        ),
        "mjpeg": await _camera_entity(
            session, base, token, mjpeg["result"]["entry_id"]
        ),
    }
    print(
        f"    cameras: {entities['printcam']} (PrintCam), {entities['mjpeg']} (mjpeg)"
    )
    return Setup(
        ha_pid=ha_pid,
        ha_port=port,
        token=token,
        floor_pid=int(floor["pid"]),
        floor_port=int(floor["port"]),
        cameras=cameras,
        entities=entities,
    )


# ------------------------------------------------------------------- runs


def run_config(setup: Setup, plan: Plan, system: str, n: int) -> dict[str, Any]:
    """Return `bench.viewers`' config for one run."""
    common = {
        "system": system,
        "n": n,
        "host": "127.0.0.1",
        "status_url": setup.cameras[system]["status_url"],
        "settle_s": plan.settle_s,
        "window_s": plan.window_s,
        "late_joiners": plan.late_joiners,
        "stills": plan.stills,
        "seed": n,
    }
    if system == "floor":
        return {
            **common,
            "port": setup.floor_port,
            "stream_path": "/stream",
            "still_path": "/still",
            "pid": setup.floor_pid,
        }
    entity = setup.entities[system]
    return {
        **common,
        "port": setup.ha_port,
        "stream_path": f"/api/camera_proxy_stream/{entity}",
        "still_path": f"/api/camera_proxy/{entity}",
        "pid": setup.ha_pid,
        "headers": {"Authorization": f"Bearer {setup.token}"},
    }


async def camera_streams(session: aiohttp.ClientSession, status_url: str) -> int:
    """Return how many streams a simulated camera serves now."""
    async with session.get(status_url) as resp:
        resp.raise_for_status()
        return int((await resp.json())["active_streams"])


async def wait_quiet(session: aiohttp.ClientSession, setup: Setup) -> None:
    """Wait until neither Home Assistant camera has a stream open.

    PrintCam keeps its connection open for a while after its setup probe
    (``still_hold_s``, 30 s) and after its last viewer left (``idle_grace_s``,
    5 s): its frames must not count against the next run, which starts cold.
    """
    deadline = time.monotonic() + QUIET_TIMEOUT
    for system in ("mjpeg", "printcam"):
        url = setup.cameras[system]["status_url"]
        while await camera_streams(session, url) > 0:
            if time.monotonic() > deadline:
                raise BenchError(
                    f"the {system} camera still has streams open after "
                    f"{QUIET_TIMEOUT:g} s"
                )
            await asyncio.sleep(0.25)


class Viewers:
    """`bench.viewers` processes, one per run; kills the running one on exit."""

    def __init__(self) -> None:
        """Start with none running."""
        self.proc: asyncio.subprocess.Process | None = None

    async def run(self, config: dict[str, Any]) -> dict[str, Any]:
        """Run one measurement; return its result."""
        self.proc = await asyncio.create_subprocess_exec(
            str(VENV_BIN / "python"),
            "-m",
            "bench.viewers",
            json.dumps(config),
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            async with asyncio.timeout(RUN_TIMEOUT):
                out, err = await self.proc.communicate()
        except TimeoutError:
            raise BenchError(
                f"run {config['system']} N={config['n']} took over {RUN_TIMEOUT:g} s"
            ) from None
        finally:
            self.stop()
        if self.proc.returncode != 0:
            raise BenchError(err.decode("utf-8", "replace").strip() or "viewers failed")
        result: dict[str, Any] = json.loads(out)
        return result

    def stop(self) -> None:
        """Kill the running measurement's process group, if any."""
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)


async def measure(
    setup: Setup, plan: Plan, viewers: Viewers, session: aiohttp.ClientSession
) -> tuple[list[dict[str, Any]], float]:
    """Do every run, printing a progress line after each.

    Returns the results and Home Assistant's idle CPU (ms per second),
    measured once both cameras are quiet, before the first of its runs.
    """
    results: list[dict[str, Any]] = []
    total = len(plan.ns) * len(report.SYSTEMS)
    index = 0
    idle: float | None = None
    for n in plan.ns:
        for system in report.SYSTEMS:
            index += 1
            started = time.monotonic()
            if system != "floor":
                await wait_quiet(session, setup)
            if system != "floor" and idle is None:
                idle = await idle_cpu(setup.ha_pid)
                print(
                    f"        Home Assistant idle: {idle:.1f} ms CPU per second",
                    flush=True,
                )
                started = time.monotonic()
            result = await viewers.run(run_config(setup, plan, system, n))
            results.append(result)
            print(
                report.progress_line(index, total, result, time.monotonic() - started),
                flush=True,
            )
    return results, idle or 0.0


async def idle_cpu(pid: int) -> float:
    """Return a process's CPU use while nobody watches, in ms per second."""
    meter = CpuMeter(pid)
    await asyncio.sleep(IDLE_SECONDS)
    return meter.elapsed_ms() / IDLE_SECONDS


# ------------------------------------------------------------------- main


async def bench(args: argparse.Namespace, procs: Processes, viewers: Viewers) -> None:
    """Set up, measure, report."""
    started = time.monotonic()
    plan = QUICK if args.quick else FULL
    root = procs.paths
    integration = args.integration
    if args.rev is not None:
        integration = checkout(args.rev, root.root / "checkout")
    try:
        domain = json.loads((integration / "manifest.json").read_text())["domain"]
    except (OSError, ValueError, KeyError):
        domain = None
    if domain != "printcam":
        raise BenchError(f"{integration} is not the PrintCam integration")
    source = describe_integration(integration, args.rev)
    step(f"Measuring PrintCam from {source}")
    async with aiohttp.ClientSession() as session:
        setup = await bring_up(procs, root, integration, session)
        step(
            f"{len(plan.ns) * len(report.SYSTEMS)} runs: N = "
            f"{', '.join(map(str, plan.ns))}; per run {plan.window_s:g} s measured, "
            f"then {plan.late_joiners} late joiners and {plan.stills} stills"
        )
        results, idle = await measure(setup, plan, viewers, session)
    duration = time.monotonic() - started
    frame_kb = json.loads((root.root / "cameras.json").read_text()).get("frame_kb")
    meta = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": " ".join(
            ["scripts/bench"]
            + (["--quick"] if args.quick else [])
            + (["--rev", args.rev] if args.rev else [])
        ),
        "machine": machine(),
        "python": platform.python_version(),
        "home_assistant": ha_version,
        "integration": source,
        "fps": FPS,
        "frame_kb": frame_kb or 100.0,
        "workload": (
            f"{plan.settle_s:g} s settle, {plan.window_s:g} s measured, then "
            f"{plan.late_joiners} late joiners and {plan.stills} stills"
        ),
        "ha_idle": f"{idle:.1f} ms CPU per second (included in the figures)",
        "duration": f"{duration:.0f} s",
        "note": args.note,
    }
    print()
    print(report.console_table(results), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    plot = args.out / "benchmark.png"
    report.write_plot(plot, results, f"PrintCam benchmark, {meta['date']}")
    report.write_markdown(args.out / "benchmark.md", results, meta, plot.name)
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {"meta": meta, "plan": asdict(plan), "results": results}, indent=1
            )
            + "\n",
            encoding="utf-8",
        )
    print(f"\nwrote {args.out / 'benchmark.md'} and {plot} ({duration:.0f} s)")


async def run_interruptible(
    args: argparse.Namespace,
    run: Callable[[Processes], Awaitable[None]],
    *,
    prefix: str,
    stopping: str,
    before_stop: Callable[[], None] | None = None,
) -> int:
    """Run a benchmark in a temporary folder; stop every child however it ends.

    SIGINT/SIGTERM cancel it (exit 130); `before_stop` runs before the
    children are stopped; `--keep` keeps the folder (its logs).
    """
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    if task is None:  # pragma: no cover
        raise RuntimeError("run_interruptible must run in a task")
    interrupted = False

    def on_signal() -> None:
        nonlocal interrupted
        interrupted = True
        task.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    procs = Processes(Paths(tmp))
    code = 0
    try:
        await run(procs)
    except asyncio.CancelledError:
        print("\n==> Interrupted", file=sys.stderr, flush=True)
        code = 130 if interrupted else 1
    except (BenchError, DemoError, OSError, aiohttp.ClientError) as err:
        print(f"ERROR: {err}", file=sys.stderr, flush=True)
        if procs.children and not args.keep:
            print("       (--keep keeps the logs)", file=sys.stderr, flush=True)
        code = 1
    finally:
        if before_stop is not None:
            before_stop()
        if procs.children:
            step(stopping)
            await asyncio.shield(asyncio.to_thread(procs.stop_all))
        if args.keep:
            print(f"    kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return code


async def amain(args: argparse.Namespace) -> int:
    """Run the benchmark; stop every child however it ends."""
    viewers = Viewers()
    return await run_interruptible(
        args,
        lambda procs: bench(args, procs, viewers),
        prefix="printcam-bench-",
        stopping="Stopping Home Assistant, the floor and the cameras",
        before_stop=viewers.stop,
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        prog="scripts/bench", description=(__doc__ or "").splitlines()[0]
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="N = 1 and 5 only, short runs (a smoke test)",
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--integration",
        type=Path,
        default=DEFAULT_INTEGRATION,
        help="the custom_components/printcam directory to measure (default: this "
        "repository's)",
    )
    source.add_argument(
        "--rev", help="measure custom_components/printcam at this git revision instead"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help="where to write benchmark.md and benchmark.png (default docs/)",
    )
    parser.add_argument(
        "--json", type=Path, help="also write every figure to this file"
    )
    parser.add_argument("--note", default="", help="a line to add to the report")
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary directory (logs)"
    )
    args = parser.parse_args(argv)
    args.integration = args.integration.resolve()
    args.out = args.out.resolve()
    return args


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``python -m bench.ha``."""
    sys.exit(asyncio.run(amain(parse_args(argv))))


if __name__ == "__main__":
    main()
