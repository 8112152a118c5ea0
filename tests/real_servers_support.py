"""What tests against the real OctoPrint and Moonraker servers share.

Both run from their own virtualenvs, which ``scripts/setup`` creates
(``.venv-octoprint``, ``.venv-moonraker``); without them the tests skip
with `OCTOPRINT_SKIP` / `MOONRAKER_SKIP` as the reason.

A server per test (async, in the test's event loop; Moonraker starts in
about 0.5 s, OctoPrint in 1 to 2.5 s)::

    @pytest.mark.skipif(OCTOPRINT_SKIP is not None, reason=str(OCTOPRINT_SKIP))
    async def test_x(socket_enabled: None) -> None:
        async with OctoPrintServer() as octoprint:
            ...

or one per module (a synchronous fixture: Home Assistant's per-test checks
for lingering tasks, timers and threads apply to function-scoped event
loops, and a started server leaves none in any loop)::

    @pytest.fixture(scope="module")
    def octoprint() -> Iterator[OctoPrintServer]:
        yield from shared_server(OctoPrintServer(rate_limit=False))

A shared server keeps its state between tests: set every webcam a test
relies on (`OctoPrintServer.set_webcams` replaces them all), and turn off
OctoPrint's rate limiter (3 app key requests a minute per client address).
The async helpers of a shared server work in any test (each call opens its
own HTTP session), which must request ``socket_enabled`` as usual.
"""

from __future__ import annotations

from collections.abc import Iterator
import contextlib
import os
from pathlib import Path
import socket

import pytest_socket

from printer_sim.moonraker_server import moonraker_available
from printer_sim.octoprint_server import ServerProcess, octoprint_available

from .rtsps_support import reaped

__all__ = [
    "MOONRAKER_SKIP",
    "OCTOPRINT_SKIP",
    "group_gone",
    "pinned_version",
    "reaped",
    "shared_server",
    "sockets_allowed",
]


def _skip(name: str, reason: str | None) -> str | None:
    if reason is None:
        return None
    return f"real {name} unavailable: {reason}"


OCTOPRINT_SKIP = _skip("OctoPrint", octoprint_available())
"""None where OctoPrint can run, else why not."""
MOONRAKER_SKIP = _skip("Moonraker", moonraker_available())
"""None where Moonraker can run, else why not."""


def pinned_version(package: str) -> str:
    """Return the version ``requirements/<package>.txt`` pins for `package`."""
    path = Path(__file__).parent.parent / "requirements" / f"{package}.txt"
    for line in path.read_text().splitlines():
        if line.lower().startswith(f"{package}=="):
            return line.split("==", 1)[1].strip()
    raise LookupError(f"{package} not pinned in {path}")


def group_gone(pgid: int | None) -> bool:
    """Return True once no process of the group `pgid` is left."""
    assert pgid is not None
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


@contextlib.contextmanager
def sockets_allowed() -> Iterator[None]:
    """Allow sockets while a module-scoped fixture starts or stops a server.

    Home Assistant's pytest plugin blocks sockets before each test's
    fixtures are set up; ``socket_enabled`` is function-scoped.
    """
    guarded = socket.socket
    pytest_socket.enable_socket()
    try:
        yield
    finally:
        socket.socket = guarded  # type: ignore[misc]


def shared_server[S: ServerProcess](server: S) -> Iterator[S]:
    """Run `server` for a module- or session-scoped fixture (``yield from``).

    Starts it (blocking), yields it, stops it and checks that its process
    group is gone.
    """
    with sockets_allowed():
        server.start_sync()
    pid = server.pid
    try:
        yield server
    finally:
        server.stop_sync()
    assert reaped(pid), f"{server.label} {pid} not reaped"
    assert group_gone(pid), f"{server.label}: processes left in group {pid}"
