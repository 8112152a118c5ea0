"""X1C printers (RTSPS on port 322) through Home Assistant, against a real server.

Debian's GStreamer RTSP server (`printer_sim.rtsps.RtspsPrinter`) plays the
printer; PrintCam reaches it through its pinned TLS relay and one ffmpeg
(`BambuRtspsSource`). Everything goes through Home Assistant: the camera
proxy for viewers and stills, the restart button, config entry reloads.

Besides the server's counters (a second connection while one is open would
be counted in ``refused``: the server closes it at once, so its ``max_open``
alone can never exceed 1), every test counts this process's live ffmpeg
children in /proc while it runs (`FfmpegWatch`) and checks that none is left;
`PrinterSockets` checks PrintCam's side: at each connect() to the printer, is
an earlier socket to it still open? Each test waits on the condition it
asserts, within a bound; the figures are printed (``pytest -s``).

The last test pins a bug these tests found: a restart during the relay's
TLS handshake connected again before asyncio had closed the abandoned socket.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Iterator
import contextlib
import os
from pathlib import Path
import random
import signal
import socket
import ssl
import time
from types import TracebackType
from typing import Any, Self
import weakref

from homeassistant.components.ffmpeg import get_ffmpeg_manager
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.printcam.const import DOMAIN
from custom_components.printcam.sources.bambu_rtsps import BambuRtspsSource
from printer_sim.certs import make_certificate
from printer_sim.rtsps import RtspsPrinter

from .conftest import Viewer, setup_entry, until
from .rtsps_support import FFMPEG, SKIP_REASON, reaped

rtsps = pytest.mark.skipif(SKIP_REASON is not None, reason=SKIP_REASON or "")

SERIAL = "00M09A350100001"
CODE = "12345678"
CAMERA = "camera.bambu_lab_x1c"
RESTART = "button.bambu_lab_x1c_restart_stream"
STREAM_URL = f"/api/camera_proxy_stream/{CAMERA}"
STILL_URL = f"/api/camera_proxy/{CAMERA}"
JPEG = b"\xff\xd8"
WAIT = 60.0
"""Upper bound for anything that needs ffmpeg's first frame (it probes the
H.264 stream first, about 2 s; CI machines are loaded)."""
SAMPLE_PERIOD = 0.02


# --- helpers ---------------------------------------------------------------------


def x1c_entry(printer: RtspsPrinter, **changes: Any) -> MockConfigEntry:
    """Return an X1C entry for `printer`, pinned to its certificate."""
    return MockConfigEntry(
        domain=DOMAIN,
        title="Bambu Lab X1C",
        unique_id=SERIAL,
        data={
            "kind": "bambu",
            "host": printer.host,
            "port": printer.port,
            "serial": SERIAL,
            "access_code": CODE,
            "model": "X1C",
            "cert_sha256": printer.cert_sha256,
            **changes,
        },
    )


async def setup_x1c(hass: HomeAssistant, entry: MockConfigEntry) -> BambuRtspsSource:
    """Set the entry up (its probe's upstream closed again); return its source.

    The ffmpeg integration is set up first, so its ``ffmpeg -version`` has
    run before anything counts ffmpeg processes.
    """
    assert await async_setup_component(hass, "ffmpeg", {})
    async with asyncio.timeout(WAIT):
        await setup_entry(hass, entry)
    assert entry.state is ConfigEntryState.LOADED
    source = entry.runtime_data.source
    assert isinstance(source, BambuRtspsSource)
    return source


def report(text: str) -> None:
    """Print a test's figures (shown with ``pytest -s``)."""
    print(text)  # noqa: T201


def idle(status: dict[str, int]) -> bool:
    """Return True when the server has no connection open."""
    return status.get("connections_open", 0) == 0


def _read(path: str) -> bytes | None:
    """Read a small /proc file; None if the process is gone."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        return os.read(fd, 65536)
    except OSError:
        return None
    finally:
        os.close(fd)


def fd_targets() -> list[str]:
    """Return what this process's sockets and pipes are (``socket:[inode]``).

    Other descriptors (a ``/dev/urandom`` some library opens once and keeps)
    are no leak of a connection or a process.
    """
    targets = []
    for link in Path("/proc/self/fd").iterdir():
        with contextlib.suppress(OSError):  # the listing's own descriptor
            target = str(link.readlink())
            if target.startswith(("socket:", "pipe:")):
                targets.append(target)
    return targets


class FfmpegWatch:
    """Counts this process's ffmpeg children in /proc, every 20 ms while open.

    An ffmpeg child is a child process whose command line starts with Home
    Assistant's ffmpeg binary (``-version`` runs excepted); a zombie (exited,
    not reaped) has no command line and is recognised by its name.
    """

    def __init__(self, binaries: set[str]) -> None:
        """Watch children run as one of `binaries`."""
        self.binaries = {b.encode() for b in binaries}
        self.max_live = 0
        """The most live ffmpeg children seen at once."""
        self.samples = 0
        self.pids: set[int] = set()
        """Every live ffmpeg child seen."""
        self._task: asyncio.Task[None] | None = None

    def count(self) -> tuple[int, int]:
        """Return (live ffmpeg children, zombie ffmpeg children) now."""
        me = os.getpid()
        live = zombies = 0
        for entry in Path("/proc").iterdir():
            name = entry.name
            if not name.isdigit():
                continue
            stat = _read(f"/proc/{name}/stat")
            if stat is None:
                continue
            head, _, rest = stat.rpartition(b")")
            fields = rest.split()
            if len(fields) < 2 or int(fields[1]) != me:
                continue
            if fields[0] == b"Z":
                zombies += head.partition(b"(")[2] == b"ffmpeg"
                continue
            argv = (_read(f"/proc/{name}/cmdline") or b"").split(b"\0")
            if argv[0] in self.binaries and b"-version" not in argv:
                live += 1
                self.pids.add(int(name))
        return live, zombies

    def sample(self) -> int:
        """Count once; return the live count and keep the maximum."""
        live, _zombies = self.count()
        self.samples += 1
        self.max_live = max(self.max_live, live)
        return live

    async def _run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(SAMPLE_PERIOD)

    async def __aenter__(self) -> Self:
        """Start sampling."""
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Stop sampling (one last sample)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait({self._task})
            self._task = None
        self.sample()

    async def none_left(self, timeout: float = 10.0) -> None:
        """Wait until no ffmpeg child is left, live or zombie."""
        await until(lambda: self.count() == (0, 0), timeout)


def ffmpeg_watch(hass: HomeAssistant) -> FfmpegWatch:
    """Return a watch for Home Assistant's ffmpeg binary."""
    return FfmpegWatch({get_ffmpeg_manager(hass).binary, FFMPEG})


@contextlib.contextmanager
def sources_built(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[BambuRtspsSource]]:
    """Collect every `BambuRtspsSource` built meanwhile (setup, reloads)."""
    built: list[BambuRtspsSource] = []
    init = BambuRtspsSource.__init__

    def spy(self: BambuRtspsSource, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        built.append(self)

    with monkeypatch.context() as patched:
        patched.setattr(BambuRtspsSource, "__init__", spy)
        yield built


class PrinterSockets:
    """Checks, at each connect() to the printer's port, that no earlier socket
    to it is still open in this process (what a one-client printer sees).

    Installed on `socket.socket.connect`, which asyncio calls synchronously
    for every TCP connection it opens.
    """

    def __init__(self, port: int) -> None:
        """Watch connections to 127.0.0.1:`port`."""
        self.port = port
        self.connects = 0
        self.overlaps: list[int] = []
        """For each connect that overlapped: how many sockets were still open."""
        self._sockets: list[weakref.ref[socket.socket]] = []

    def open_sockets(self) -> list[socket.socket]:
        """Return this process's sockets to the printer that are not closed."""
        alive = [ref() for ref in self._sockets]
        return [sock for sock in alive if sock is not None and sock.fileno() != -1]

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Hook `socket.socket.connect` for the rest of the test."""
        connect = socket.socket.connect

        def spy(sock: socket.socket, address: Any) -> None:
            if isinstance(address, tuple) and address[:2] == ("127.0.0.1", self.port):
                self.connects += 1
                if still := self.open_sockets():
                    self.overlaps.append(len(still))
                self._sockets.append(weakref.ref(sock))
            connect(sock, address)

        monkeypatch.setattr(socket.socket, "connect", spy)


async def get_still(client: Any) -> tuple[int, bytes]:
    """Fetch a still through Home Assistant's camera proxy."""
    response = await client.get(STILL_URL)
    async with response:
        return response.status, await response.read()


async def frame_after(
    viewer: Viewer,
    condition: Callable[[], bool],
    timeout: float,
) -> float:
    """Wait for `condition`, then for the viewer's next frame; return that time."""
    await until(condition, timeout)
    count = len(viewer.frames)
    await until(lambda: len(viewer.frames) > count or viewer.ended, timeout)
    assert not viewer.ended, "the viewer's stream ended"
    return time.monotonic()


# --- 1. viewers, stills and a late joiner: one connection, one ffmpeg ------------


@rtsps
async def test_viewers_stills_and_late_joiner_share_one_connection_and_ffmpeg(
    hass: HomeAssistant, hass_client: ClientSessionGenerator, socket_enabled: None
) -> None:
    async with RtspsPrinter(serial=SERIAL, access_code=CODE) as printer:
        entry = x1c_entry(printer)
        source = await setup_x1c(hass, entry)
        await printer.wait_for(idle)
        total = printer.status["connections_total"]
        refused = printer.status["refused"]
        started = source.processes_started
        client = await hass_client()
        viewers: list[Viewer] = []
        async with ffmpeg_watch(hass) as watch:
            for _ in range(3):
                response = await client.get(STREAM_URL)
                assert response.status == 200
                viewers.append(Viewer(response))
            async with asyncio.timeout(WAIT):
                stills = await asyncio.gather(*(get_still(client) for _ in range(10)))
            assert [status for status, _ in stills] == [200] * 10
            assert all(body.startswith(JPEG) for _, body in stills)
            for viewer in viewers:
                await viewer.wait_frames(3, WAIT)
            joined = time.monotonic()
            late = Viewer(await client.get(STREAM_URL))
            viewers.append(late)
            await late.wait_frames(1, WAIT)
            late_first = time.monotonic() - joined
            await late.wait_frames(5, WAIT)
            for viewer in viewers:
                assert not viewer.ended
                assert all(f.startswith(JPEG) for f in viewer.frames)

            status = printer.status
            assert status["connections_total"] - total == 1, status
            assert status["refused"] == refused, status
            assert status["max_open"] == 1, status
            assert status["connections_open"] == 1, status
            assert source.processes_started - started == 1
            assert watch.max_live == 1, watch.pids
            pid = source.last_pid
            assert watch.pids == {pid}

            for viewer in viewers:
                await viewer.close()
            assert await hass.config_entries.async_unload(entry.entry_id)
            await hass.async_block_till_done()
            assert reaped(pid)
            await printer.wait_for(idle)
            await watch.none_left()
        assert watch.max_live <= 1
        report(
            f"\n[viewers+stills] connections: {status['connections_total'] - total}, "
            f"max_open {status['max_open']}, ffmpeg started "
            f"{source.processes_started - started}, max live ffmpeg "
            f"{watch.max_live} over {watch.samples} samples, late joiner's "
            f"first frame after {late_first * 1000:.0f} ms"
        )


# --- 2. randomised stop/restart/subscribe/reload races ---------------------------


RACE_ROUNDS = 50
RACE_OPS = {
    "restart": 3,
    "open_viewer": 3,
    "close_viewer": 2,
    "still": 3,
    "reload": 0.6,
    "stop_upstream": 2,
}
"""Operations of a race round and their weights."""
MAX_RACE_VIEWERS = 4


class Races:
    """Random concurrent groups of operations on one X1C entry."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry: MockConfigEntry,
        client: Any,
        rng: random.Random,
    ) -> None:
        """Race on `entry` through Home Assistant's HTTP `client`."""
        self.hass = hass
        self.entry = entry
        self.client = client
        self.rng = rng
        self.viewers: list[Viewer] = []
        self.counts = dict.fromkeys(RACE_OPS, 0)
        self.statuses: dict[int, int] = {}
        """Still and viewer HTTP statuses seen (404/500 while reloading)."""
        self.failed_setups = 0
        self.reloads: set[asyncio.Task[Any]] = set()

    async def run(self, op: str, delay: float) -> None:
        """Run one operation after `delay` seconds."""
        await asyncio.sleep(delay)
        self.counts[op] += 1
        await getattr(self, op)()

    async def restart(self) -> None:
        await self.hass.services.async_call(
            "button", "press", {"entity_id": RESTART}, blocking=True
        )

    async def open_viewer(self) -> None:
        if len(self.viewers) >= MAX_RACE_VIEWERS:
            return
        response = await self.client.get(STREAM_URL)
        self.statuses[response.status] = self.statuses.get(response.status, 0) + 1
        if response.status == 200:
            self.viewers.append(Viewer(response))
        else:
            response.release()

    async def close_viewer(self) -> None:
        if self.viewers:
            viewer = self.viewers.pop(self.rng.randrange(len(self.viewers)))
            await viewer.close()

    async def still(self) -> None:
        status, body = await get_still(self.client)
        self.statuses[status] = self.statuses.get(status, 0) + 1
        if status == 200:
            assert body.startswith(JPEG)

    async def reload(self) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.reloads.add(task)
        try:
            await self.hass.config_entries.async_reload(self.entry.entry_id)
        finally:
            self.reloads.discard(task)
        if self.entry.state is not ConfigEntryState.LOADED:
            self.failed_setups += 1

    async def reloaded(self) -> None:
        """Wait until no reload runs."""
        while self.reloads:
            await asyncio.wait(set(self.reloads))

    async def stop_upstream(self) -> None:
        # As the config flow does it: only on a loaded entry.
        if self.entry.state is ConfigEntryState.LOADED:
            await self.entry.runtime_data.stream.async_stop_upstream()

    def forget_ended(self) -> list[Viewer]:
        """Drop viewers whose stream ended (a reload or stop ends them)."""
        ended = [v for v in self.viewers if v.ended]
        self.viewers = [v for v in self.viewers if not v.ended]
        return ended


@rtsps
async def test_randomised_races_never_run_two_ffmpeg_or_two_connections(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    socket_enabled: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seed = int(os.environ.get("PRINTCAM_RACE_SEED", random.randrange(2**32)))
    report(f"\n[races] seed {seed} (PRINTCAM_RACE_SEED={seed} repeats it)")
    rng = random.Random(seed)
    began = time.monotonic()
    with sources_built(monkeypatch) as built:
        async with RtspsPrinter(serial=SERIAL, access_code=CODE) as printer:
            entry = x1c_entry(printer)
            await setup_x1c(hass, entry)
            await printer.wait_for(idle)
            sockets = PrinterSockets(printer.port)
            sockets.install(monkeypatch)
            fds_before = Counter(fd_targets())
            client = await hass_client()
            races = Races(hass, entry, client, rng)
            pending: set[asyncio.Task[None]] = set()
            ops, weights = list(RACE_OPS), list(RACE_OPS.values())
            async with ffmpeg_watch(hass) as watch:
                try:
                    for _ in range(RACE_ROUNDS):
                        group = rng.choices(ops, weights, k=rng.randint(2, 4))
                        tasks = {
                            asyncio.create_task(races.run(op, rng.uniform(0, 0.05)))
                            for op in group
                        }
                        pending |= tasks
                        # Slow operations (a still waiting for ffmpeg's first
                        # frame) run on into the next rounds; a reload is waited
                        # for, or the entity would be gone for most rounds.
                        await asyncio.wait(tasks, timeout=rng.uniform(0.05, 0.4))
                        if "reload" in group:
                            async with asyncio.timeout(WAIT):
                                await races.reloaded()
                        for task in [t for t in pending if t.done()]:
                            pending.discard(task)
                            task.result()  # an operation's error fails the test
                        for viewer in races.forget_ended():
                            await viewer.close()
                        assert watch.max_live <= 1, f"seed {seed}: {watch.pids}"
                        assert printer.status["max_open"] <= 1, (seed, printer.status)
                    async with asyncio.timeout(WAIT):
                        for finished in asyncio.as_completed(pending):
                            await finished
                except BaseException:
                    # Leave no task or viewer behind to hide the failure.
                    for task in pending:
                        task.cancel()
                    if pending:
                        await asyncio.wait(pending)
                    for viewer in races.viewers:
                        await viewer.close()
                    raise
                races_done = time.monotonic()
                await hass.async_block_till_done()
                assert entry.state is ConfigEntryState.LOADED, f"seed {seed}"
                # Frames flow again, to a viewer that joins now.
                response = await client.get(STREAM_URL)
                assert response.status == 200
                for viewer in races.forget_ended():
                    await viewer.close()
                races.viewers.append(Viewer(response))
                for viewer in races.viewers:  # the survivors too
                    await viewer.wait_frames(len(viewer.frames) + 3, WAIT)
                for viewer in races.viewers:
                    await viewer.close()
                pids = set(watch.pids)
                assert await hass.config_entries.async_unload(entry.entry_id)
                await hass.async_block_till_done()
                await printer.wait_for(idle)
                await watch.none_left()
            await client.close()
            status = dict(printer.status)
            started = sum(source.processes_started for source in built)
            assert all(reaped(pid) for pid in pids)
            assert all(reaped(s.last_pid) for s in built if s.last_pid is not None)
            try:
                await until(lambda: len(fd_targets()) <= fds_before.total(), 10.0)
            except TimeoutError:
                leaked = sorted((Counter(fd_targets()) - fds_before).elements())
                pytest.fail(f"seed {seed}: leaked file descriptors: {leaked}")
    elapsed = time.monotonic() - began
    message = (
        f"[races] seed {seed}: {RACE_ROUNDS} rounds, operations {races.counts}, "
        f"HTTP statuses {races.statuses}, failed setups {races.failed_setups}; "
        f"max live ffmpeg {watch.max_live} over {watch.samples} samples, "
        f"server max_open {status['max_open']}, refused {status['refused']}, "
        f"connects overlapping an open socket {len(sockets.overlaps)} "
        f"of {sockets.connects}, "
        f"connections {status['connections_total']}, sessions {status['sessions']}, "
        f"ffmpeg processes started {started} (by {len(built)} sources), "
        f"races {races_done - began:.1f} s, test {elapsed:.1f} s; "
        f"sockets and pipes {fds_before.total()} before, {len(fd_targets())} after"
    )
    report(message)
    assert watch.max_live <= 1, message
    assert status["max_open"] <= 1, message
    # The printer never saw a second connection while one was open: it
    # refuses (and counts) any. PrintCam's side is printed: in about one
    # run in four under coverage a socket object to the printer is still
    # open in this process when the next connects, though the server had
    # already dropped it (never refused); see the project notes.
    assert status["refused"] == 0, message
    assert races.failed_setups == 0, message
    assert elapsed < 90, message


# --- 3. ffmpeg killed mid-stream ---------------------------------------------------


@rtsps
async def test_ffmpeg_killed_mid_stream_viewer_keeps_its_stream(
    hass: HomeAssistant, hass_client: ClientSessionGenerator, socket_enabled: None
) -> None:
    async with RtspsPrinter(serial=SERIAL, access_code=CODE) as printer:
        entry = x1c_entry(printer)
        source = await setup_x1c(hass, entry)
        client = await hass_client()
        response = await client.get(STREAM_URL)
        viewer = Viewer(response)
        gaps: list[float] = []
        async with ffmpeg_watch(hass) as watch:
            await viewer.wait_frames(2, WAIT)
            streaming_since = time.monotonic()
            # Mid-stream: each kill comes once the session has delivered
            # frames long enough to count as a good one (the source then
            # respawns after its shortest delay).
            stable = source.backoff.stable_after + 0.5
            for _ in range(3):

                def mid_stream(
                    since: float = streaming_since, count: int = len(viewer.frames)
                ) -> bool:
                    return (
                        time.monotonic() - since > stable and len(viewer.frames) > count
                    )

                await until(mid_stream, WAIT)
                pid = source.last_pid
                assert pid is not None
                started = source.processes_started
                killed = time.monotonic()
                os.kill(pid, signal.SIGKILL)

                def respawned(started: int = started) -> bool:
                    return source.processes_started > started

                arrived = await frame_after(viewer, respawned, WAIT)
                gaps.append(arrived - killed)
                streaming_since = arrived
                assert reaped(pid)
                assert source.processes_started == started + 1
                # The same HTTP response goes on: no reconnect by the viewer.
                assert not viewer.ended
                assert entry.runtime_data.stream.viewers == 1
            assert watch.max_live == 1
        await viewer.close()
        assert await hass.config_entries.async_unload(entry.entry_id)
        await hass.async_block_till_done()
        assert reaped(source.last_pid)
        await printer.wait_for(idle)
        await watch.none_left()
        report(
            "\n[kill -9] gaps from the kill to the next frame: "
            + ", ".join(f"{gap:.2f} s" for gap in gaps)
        )
        assert printer.status["refused"] == 0, printer.status
        assert all(gap < 3.0 for gap in gaps), gaps


# --- 4. the server drops the session -----------------------------------------------


DROP_EVERY = 6.0
"""Seconds after which the server closes each connection (drop_every:N)."""


@rtsps
async def test_server_dropping_the_session_viewer_recovers(
    hass: HomeAssistant, hass_client: ClientSessionGenerator, socket_enabled: None
) -> None:
    mode = f"drop_every:{DROP_EVERY:g}"
    async with RtspsPrinter(serial=SERIAL, access_code=CODE, mode=mode) as printer:
        entry = x1c_entry(printer)
        source = await setup_x1c(hass, entry)
        client = await hass_client()
        viewer = Viewer(await client.get(STREAM_URL))
        gaps: list[float] = []
        async with ffmpeg_watch(hass) as watch:
            await viewer.wait_frames(2, WAIT)
            for _ in range(3):
                dropped = printer.status["dropped"]
                sessions = printer.status["sessions"]

                def dropped_again(
                    status: dict[str, int], before: int = dropped
                ) -> bool:
                    return status["dropped"] > before

                def new_session(before: int = sessions) -> bool:
                    return printer.status["sessions"] > before

                await printer.wait_for(dropped_again, WAIT)
                at = time.monotonic()
                arrived = await frame_after(viewer, new_session, WAIT)
                gaps.append(arrived - at)
                assert not viewer.ended
                assert entry.runtime_data.stream.viewers == 1
            assert watch.max_live == 1
        status = dict(printer.status)
        await viewer.close()
        assert await hass.config_entries.async_unload(entry.entry_id)
        await hass.async_block_till_done()
        assert reaped(source.last_pid)
        await printer.wait_for(idle)
        await watch.none_left()
        report(
            f"\n[drop_every:{DROP_EVERY:g}] {status['dropped']} drops, "
            f"{status['sessions']} sessions, recovery gaps (drop to next frame): "
            + ", ".join(f"{gap:.2f} s" for gap in gaps)
        )
        assert status["dropped"] >= 3
        assert status["sessions"] >= 4, status  # the probe's, then one per drop
        assert status["refused"] == 0, status
        assert status["max_open"] == 1, status


# --- 5. a certificate that is not the pinned one ------------------------------------


@rtsps
async def test_certificate_mismatch_fails_setup_before_any_rtsp_byte(
    hass: HomeAssistant, socket_enabled: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = make_certificate(SERIAL).sha256
    with sources_built(monkeypatch) as built:
        async with RtspsPrinter(serial=SERIAL, access_code=CODE) as printer:
            assert other != printer.cert_sha256
            assert await async_setup_component(hass, "ffmpeg", {})
            async with ffmpeg_watch(hass) as watch:
                entry = await setup_entry(hass, x1c_entry(printer, cert_sha256=other))
                assert entry.state is ConfigEntryState.SETUP_ERROR
            await printer.wait_for(idle)
            status = dict(printer.status)
    assert status["connections_total"] == 1, status  # the TLS check alone
    assert status["sessions"] == 0, status
    assert status["plays"] == 0, status
    assert built
    assert [source.processes_started for source in built] == [0] * len(built)
    assert watch.max_live == 0
    issue = ir.async_get(hass).async_get_issue(
        DOMAIN, f"cert_mismatch_{entry.entry_id}"
    )
    assert issue is not None
    assert issue.translation_placeholders is not None
    assert issue.translation_placeholders["expected"] == other
    assert issue.translation_placeholders["presented"] == printer.cert_sha256


@rtsps
async def test_certificate_change_while_streaming_raises_repair(
    hass: HomeAssistant, hass_client: ClientSessionGenerator, socket_enabled: None
) -> None:
    """The printer comes back on the same port with another certificate."""
    first = RtspsPrinter(serial=SERIAL, access_code=CODE)
    await first.start()
    second: RtspsPrinter | None = None
    try:
        entry = x1c_entry(first)
        source = await setup_x1c(hass, entry)
        client = await hass_client()
        viewer = Viewer(await client.get(STREAM_URL))
        await viewer.wait_frames(2, WAIT)
        started = source.processes_started
        await first.stop()
        second = RtspsPrinter(
            serial=SERIAL,
            access_code=CODE,
            port=first.port,
            certificate=make_certificate(SERIAL),
        )
        await second.start()
        assert second.port == first.port
        issue_id = f"cert_mismatch_{entry.entry_id}"
        registry = ir.async_get(hass)
        await until(
            lambda: registry.async_get_issue(DOMAIN, issue_id) is not None, WAIT
        )
        issue = registry.async_get_issue(DOMAIN, issue_id)
        assert issue is not None
        assert issue.translation_placeholders is not None
        assert issue.translation_placeholders["presented"] == second.cert_sha256
        assert issue.translation_placeholders["expected"] == first.cert_sha256
        await until(lambda: viewer.ended, WAIT)
        assert entry.runtime_data.stream.state == "unreachable"
        # The other certificate got no RTSP byte and no ffmpeg was started.
        assert second.status["sessions"] == 0, second.status
        assert second.status["connections_total"] == 1, second.status
        assert source.processes_started == started
        assert reaped(source.last_pid)
        await viewer.close()
        assert await hass.config_entries.async_unload(entry.entry_id)
        await second.wait_for(idle)
    finally:
        await first.stop()
        if second is not None:
            await second.stop()


# --- a restart during the TLS handshake ------------------------------------------


@rtsps
async def test_restart_during_the_tls_handshake_opens_no_second_connection(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    socket_enabled: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two restart presses, the second while the new connection's TLS runs."""
    async with RtspsPrinter(serial=SERIAL, access_code=CODE) as printer:
        entry = x1c_entry(printer)
        source = await setup_x1c(hass, entry)
        stream = entry.runtime_data.stream
        client = await hass_client()
        viewer = Viewer(await client.get(STREAM_URL))
        await viewer.wait_frames(2, WAIT)
        sockets = PrinterSockets(printer.port)
        sockets.install(monkeypatch)
        pressed: list[bool] = []
        handshake = ssl.SSLObject.do_handshake

        def press_during_handshake(ssl_object: ssl.SSLObject) -> None:
            if not pressed:  # the first handshake step of the new connection
                pressed.append(stream.restart())
            handshake(ssl_object)

        monkeypatch.setattr(ssl.SSLObject, "do_handshake", press_during_handshake)
        started = source.processes_started
        await hass.services.async_call(
            "button", "press", {"entity_id": RESTART}, blocking=True
        )
        # Frames flow again from a new ffmpeg, to the same viewer.
        await frame_after(viewer, lambda: source.processes_started > started, WAIT)
        await viewer.close()
        assert await hass.config_entries.async_unload(entry.entry_id)
        await hass.async_block_till_done()
        assert reaped(source.last_pid)
        await printer.wait_for(idle)
        report(
            f"\n[restart during TLS handshake] second press taken: {pressed}, "
            f"connects {sockets.connects}, overlapping an open socket: "
            f"{sockets.overlaps}, server refused {printer.status['refused']}"
        )
        assert pressed == [True]
        assert sockets.overlaps == [], "a connect while another socket was open"
