"""Fixtures of the end-to-end browser test: the demo stack and Chromium.

These tests start real processes (the simulators, ``hass``, Chromium) and
talk to them over sockets, which pytest-homeassistant-custom-component's
plugin forbids. ``scripts/test`` runs them in their own pytest invocation::

    .venv/bin/python -m pytest -p no:homeassistant --confcutdir=tests/e2e tests/e2e

(``--confcutdir`` keeps tests/conftest.py, made for the plugin, out.) Under
the plugin, i.e. in the main suite, they are skipped with that hint.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
import os
from pathlib import Path
import re
import subprocess
import sys
import time

import pytest

from printer_sim.demo import Paths, Processes, bring_up, port_busy

from .helpers import (
    ANNOUNCED_NAME,
    ANNOUNCED_SERIAL,
    BROWSER_START_TIMEOUT,
    CHROMIUM,
    CHROMIUM_FLAGS,
    STOP_TIMEOUT,
    Browser,
    DemoStack,
    free_port,
    wait_groups_gone,
)

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(
    config: pytest.Config, items: list[pytest.Item]
) -> None:
    """Skip these tests under the Home Assistant plugin (it blocks sockets)."""
    if not config.pluginmanager.has_plugin("homeassistant"):
        return
    skip = pytest.mark.skip(
        reason="end-to-end test: run with -p no:homeassistant (scripts/test does)"
    )
    for item in items:
        if HERE in Path(item.path).parents:
            item.add_marker(skip)


@pytest.fixture
def announcer(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """A simulated Bambu Lab printer announcing itself to 127.0.0.1:2021.

    Home Assistant's M-SEARCH goes to its port on 127.0.0.1 (the environment
    variable `PRINTCAM_BAMBU_SEARCH`), not to the broadcast address.
    """
    port = free_port()
    process = subprocess.Popen(  # noqa: S603 - a fixed command
        [
            sys.executable,
            "-m",
            "printer_sim.bambu_announce",
            f"--serial={ANNOUNCED_SERIAL}",
            f"--name={ANNOUNCED_NAME}",
            "--target=127.0.0.1:2021",
            f"--port={port}",
            "--interval=1",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    monkeypatch.setenv("PRINTCAM_BAMBU_SEARCH", f"127.0.0.1:{port}")
    try:
        yield port
    finally:
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def demo_stack(tmp_path: Path, announcer: int) -> Iterator[DemoStack]:
    """Start the demo stack on free ports in a temporary directory."""
    paths = Paths(tmp_path / "demo")
    procs = Processes(paths)
    port = free_port()
    assert not port_busy(port)
    try:
        info = asyncio.run(bring_up(paths, port, procs))
        stack = DemoStack(paths, info, procs, list(procs.children))
        yield stack
    finally:
        handles = list(procs.children)
        procs.stop_all()
        wait_groups_gone([proc.pid for _, proc in handles], STOP_TIMEOUT)


@pytest.fixture
def chromium(tmp_path: Path) -> Iterator[Browser]:
    """Start Debian's Chromium, headless, with a fresh profile; stop it after."""
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: run scripts/setup"
    user_data_dir = tmp_path / "chromium-profile"
    user_data_dir.mkdir()
    log = (tmp_path / "chromium.log").open("wb")
    process = subprocess.Popen(  # noqa: S603 - a fixed command
        [
            str(CHROMIUM),
            *CHROMIUM_FLAGS,
            f"--user-data-dir={user_data_dir}",
            "--remote-debugging-port=0",
            "--window-size=1280,800",
            "about:blank",
        ],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        # Chromium's crash handlers run in sessions of their own; with their
        # database under tmp_path their command lines name it too, so the
        # test can check that none is left (and ~/.config stays untouched).
        env={**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "xdg-config")},
    )
    browser = Browser(process, "", user_data_dir)
    try:
        # Chromium writes the port it chose to DevToolsActivePort.
        active = user_data_dir / "DevToolsActivePort"
        deadline = time.monotonic() + BROWSER_START_TIMEOUT
        while not (active.exists() and active.read_text().count("\n") >= 1):
            assert process.poll() is None, (
                f"chromium exited ({process.returncode}); see {log.name}"
            )
            assert time.monotonic() < deadline, "chromium did not start"
            time.sleep(0.05)
        port_line = active.read_text().splitlines()[0]
        assert re.fullmatch(r"\d+", port_line), port_line
        browser.cdp_url = f"http://127.0.0.1:{port_line}"
        yield browser
    finally:
        browser.stop()
        log.close()
