"""Helpers of the end-to-end test: the demo stack, Chromium, processes."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
import json
import os
from pathlib import Path
import signal
import socket
import subprocess
import time
from typing import Any
import urllib.request

from printer_sim.demo import DemoInfo, Paths, Processes

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
ANNOUNCED_SERIAL = "01S00C000000042"
"""A simulated Bambu Lab printer that only announces itself (not added)."""
ANNOUNCED_NAME = "Announced P1S"
BROWSER_START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0


def free_port() -> int:
    """Return a port that is free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def get_json(url: str) -> dict[str, Any]:
    """GET ``url`` (bounded) and return its JSON."""
    with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - our URL
        data: dict[str, Any] = json.load(resp)
    return data


def get_state(base: str, token: str, entity_id: str) -> dict[str, Any]:
    """Return an entity's state object from Home Assistant's REST API."""
    request = urllib.request.Request(  # noqa: S310 - our URL
        f"{base}/api/states/{entity_id}",
        headers={"Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(request, timeout=5) as resp:  # noqa: S310
        data: dict[str, Any] = json.load(resp)
    return data


def group_alive(pgid: int) -> bool:
    """Return True while any process of the process group ``pgid`` lives."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - exists, not ours
        return True
    return True


def wait_groups_gone(pgids: list[int], timeout: float) -> list[int]:
    """Wait up to ``timeout`` for the groups to end; return those still alive."""
    deadline = time.monotonic() + timeout
    while (alive := [g for g in pgids if group_alive(g)]) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.1)
    return alive


def processes_mentioning(text: str) -> list[str]:
    """Return the live processes whose command line contains ``text``."""
    needle = text.encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()  # empty for a zombie
        except OSError:
            continue  # gone meanwhile
        if needle in cmdline:
            command = cmdline.replace(b"\0", b" ").decode(errors="replace")
            found.append(f"{entry.name}: {command[:160]}")
    return found


def wait_no_process_mentions(text: str, timeout: float) -> list[str]:
    """Wait up to ``timeout`` until no process mentions ``text``; return those left."""
    deadline = time.monotonic() + timeout
    while (left := processes_mentioning(text)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


@dataclass
class DemoStack:
    """A running demo (simulators + hass) in a temporary directory."""

    paths: Paths
    info: DemoInfo
    procs: Processes
    handles: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)

    def status(self, simulator: str) -> dict[str, Any]:
        """Return the counters of the ``mjpeg`` or ``bambu`` simulator."""
        return get_json(self.info.simulators[simulator]["status_url"])

    def state(self, entity_id: str) -> dict[str, Any]:
        """Return an entity's state object (REST API, the demo's token)."""
        return get_state(self.info.base, self.info.token, entity_id)

    def stop(self) -> None:
        """Stop hass and the simulators (idempotent)."""
        self.procs.stop_all()


@dataclass
class Browser:
    """Chromium started by the test, driven through Playwright over CDP."""

    process: subprocess.Popen[bytes]
    cdp_url: str
    user_data_dir: Path

    def stop(self) -> None:
        """Terminate Chromium and its helpers (idempotent)."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=STOP_TIMEOUT)
            if not wait_groups_gone([self.process.pid], 2.0):
                return
