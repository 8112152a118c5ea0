"""The coordinator against a real fake printer: transitions, events, rate limit."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator
import itertools
import logging
import time
from typing import Any

from aiohttp.test_utils import TestClient
from homeassistant.const import EVENT_STATE_CHANGED, EVENT_STATE_REPORTED, STATE_OFF
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.helpers import entity_registry as er
import pytest
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.printcam import coordinator as coordinator_module
from custom_components.printcam.coordinator import PUBLISH_INTERVAL
from custom_components.printcam.sources.base import Backoff
from custom_components.printcam.stream import StreamSnapshot, StreamState
from printer_sim.mjpeg_server import MjpegPrinter

from .conftest import Viewer, make_entry, setup_entry, until

STREAM = "/api/camera_proxy_stream/camera.printer"
STREAM_STATE = "sensor.printer_stream_state"
STREAMING = "binary_sensor.printer_streaming"
VIEWERS = "sensor.printer_viewers"
EVENT = "event.printer_stream"
COORDINATOR_LOGGER = "custom_components.printcam.coordinator"
_LOGGER = logging.getLogger(__name__)


@pytest.fixture
async def fast_printer(socket_enabled: None) -> AsyncIterator[MjpegPrinter]:
    """A fake printer camera at a steady 30 fps."""
    fake = MjpegPrinter(fps=30.0)
    await fake.start()
    yield fake
    await fake.close()


async def _open_viewer(client: TestClient) -> Viewer:
    response = await client.get(STREAM)
    assert response.status == 200
    return Viewer(response)


def _state(hass: HomeAssistant, entity_id: str) -> str:
    state = hass.states.get(entity_id)
    assert state is not None, entity_id
    return state.state


class Recorder:
    """Records every state written for some entities: value and time."""

    def __init__(self, hass: HomeAssistant, entity_ids: set[str]) -> None:
        self.states: dict[str, list[str]] = defaultdict(list)
        self.writes: dict[str, list[float]] = defaultdict(list)
        self.events: list[str] = []

        @callback
        def _ours(data: dict[str, Any]) -> bool:
            return data["entity_id"] in entity_ids

        @callback
        def _changed(event: Event) -> None:
            entity_id = event.data["entity_id"]
            self.writes[entity_id].append(time.monotonic())
            new = event.data["new_state"]
            if new is None:
                return
            self.states[entity_id].append(new.state)
            if entity_id == EVENT and new.attributes.get("event_type"):
                self.events.append(new.attributes["event_type"])

        @callback
        def _reported(event: Event) -> None:
            self.writes[event.data["entity_id"]].append(time.monotonic())

        self._unsubs = [
            hass.bus.async_listen(EVENT_STATE_CHANGED, _changed, _ours),
            hass.bus.async_listen(EVENT_STATE_REPORTED, _reported, _ours),
        ]

    def stop(self) -> None:
        for unsub in self._unsubs:
            unsub()


def _info_lines(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == COORDINATOR_LOGGER
        and r.levelno == logging.INFO
        and text in r.getMessage()
    ]


# --- transitions driven by the fake printer ---------------------------------------


async def test_transitions_follow_the_printer(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    printer: MjpegPrinter,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=COORDINATOR_LOGGER)
    entry = await setup_entry(
        hass, make_entry(printer.url, options={"stall_s": 1, "idle_grace_s": 0})
    )
    source = entry.runtime_data.source
    source.backoff = Backoff(initial=0.1, cap=0.3)
    rec = Recorder(hass, {STREAM_STATE, EVENT})
    assert _state(hass, STREAM_STATE) == "idle"

    # A viewer joins: idle -> connecting -> streaming, event "started".
    client = await hass_client()
    viewer = await _open_viewer(client)
    await until(lambda: _state(hass, STREAM_STATE) == "streaming")
    assert rec.states[STREAM_STATE] == ["connecting", "streaming"]
    assert rec.events == ["started"]
    assert _state(hass, STREAMING) == "on"
    assert _state(hass, VIEWERS) == "1"

    # Frames stop on an open connection: stalled, event "stalled".
    printer.pause()
    paused = time.monotonic()
    await until(lambda: _state(hass, STREAM_STATE) == "stalled", timeout=3.0)
    assert 0.9 <= time.monotonic() - paused <= 2.5
    assert rec.events[-1] == "stalled"
    assert _state(hass, STREAMING) == STATE_OFF
    assert _state(hass, "sensor.printer_frame_rate") == "0.0"
    # Frames again: streaming, event "recovered".
    printer.resume()
    await until(lambda: _state(hass, STREAM_STATE) == "streaming")
    assert rec.events[-1] == "recovered"

    # The printer hangs up: reconnecting, then streaming again.
    printer.drop_all()
    await until(lambda: "reconnecting" in rec.states[STREAM_STATE])
    await until(lambda: rec.states[STREAM_STATE][-1] == "streaming")
    assert rec.states[STREAM_STATE][-2:] == ["reconnecting", "streaming"]
    assert rec.events[-1] == "recovered"
    assert entry.runtime_data.coordinator.data.reconnects == 1

    # The printer goes away: reconnecting, then unreachable after a failed
    # attempt; retries keep failing, logged once.
    printer.refuse()
    printer.drop_all()
    await until(lambda: _state(hass, STREAM_STATE) == "unreachable", timeout=3.0)
    assert rec.states[STREAM_STATE][-2:] == ["reconnecting", "unreachable"]
    assert rec.events[-1] == "failed"
    attempts = source.stats.attempts
    await until(lambda: source.stats.attempts >= attempts + 3, timeout=5.0)
    assert _state(hass, STREAM_STATE) == "unreachable"
    assert len(_info_lines(caplog, "camera unreachable")) == 1
    assert not _info_lines(caplog, "reachable again")
    # It comes back: streaming, "recovered", one line saying so.
    await printer.accept()
    await until(lambda: _state(hass, STREAM_STATE) == "streaming", timeout=3.0)
    assert rec.events[-1] == "recovered"
    assert len(_info_lines(caplog, "camera unreachable")) == 1
    assert len(_info_lines(caplog, "camera reachable again")) == 1

    # The last viewer leaves (no grace): idle, event "stopped".
    await viewer.close()
    await until(lambda: _state(hass, STREAM_STATE) == "idle")
    assert rec.events[-1] == "stopped"
    assert _state(hass, VIEWERS) == "0"
    assert rec.events == [
        "started",
        "stalled",
        "recovered",
        "recovered",
        "failed",
        "recovered",
        "stopped",
    ]
    rec.stop()
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_unreachable_from_the_start_then_idle(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    printer: MjpegPrinter,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A printer gone before any frame: connecting -> unreachable -> idle."""
    caplog.set_level(logging.INFO, logger=COORDINATOR_LOGGER)
    entry = await setup_entry(
        hass, make_entry(printer.url, options={"idle_grace_s": 0})
    )
    entry.runtime_data.source.backoff = Backoff(initial=0.1, cap=0.3)
    rec = Recorder(hass, {STREAM_STATE, EVENT})
    printer.refuse()
    client = await hass_client()
    viewer = await _open_viewer(client)
    await until(lambda: _state(hass, STREAM_STATE) == "unreachable", timeout=3.0)
    assert rec.states[STREAM_STATE] == ["connecting", "unreachable"]
    assert rec.events == ["failed"]
    await viewer.close()
    await until(lambda: _state(hass, STREAM_STATE) == "idle", timeout=3.0)
    assert rec.events == ["failed", "stopped"]
    # Idle proves nothing about the printer: no "reachable again" line.
    assert len(_info_lines(caplog, "camera unreachable")) == 1
    assert not _info_lines(caplog, "reachable again")
    rec.stop()
    assert await hass.config_entries.async_unload(entry.entry_id)


# --- the rate limit ---------------------------------------------------------------------


@pytest.mark.usefixtures("entity_registry_enabled_by_default")
async def test_rate_limit_at_30_fps(
    hass: HomeAssistant,
    entity_registry: er.EntityRegistry,
    hass_client: ClientSessionGenerator,
    fast_printer: MjpegPrinter,
) -> None:
    """10 s at 30 fps: each entity writes at most every 5 s; transitions at once."""
    entry = await setup_entry(
        hass, make_entry(fast_printer.url, options={"stall_s": 2})
    )
    coordinator = entry.runtime_data.coordinator
    stream = entry.runtime_data.stream
    entity_ids = {
        e.entity_id
        for e in er.async_entries_for_config_entry(entity_registry, entry.entry_id)
    }
    assert len(entity_ids) == 15  # fourteen stream entities and the camera
    client = await hass_client()
    viewer = await _open_viewer(client)
    await until(lambda: _state(hass, STREAM_STATE) == "streaming")
    await viewer.wait_frames(30)

    rec = Recorder(hass, entity_ids)
    frames_before = len(fast_printer.frames_sent)
    pushed_before = coordinator.snapshots_seen
    started = time.monotonic()
    await asyncio.sleep(10.0)
    rec.stop()
    elapsed = time.monotonic() - started
    frames = len(fast_printer.frames_sent) - frames_before
    pushed = coordinator.snapshots_seen - pushed_before
    writes = {entity_id: len(times) for entity_id, times in rec.writes.items()}
    _LOGGER.info(
        "rate limit: %.1f s, %d frames, %d snapshots pushed, state writes %s",
        elapsed,
        frames,
        pushed,
        writes,
    )

    # The printer really ran at 30 fps, and the stream pushed transitions
    # only, never a snapshot per frame (the coordinator samples counters)...
    assert frames >= 250, frames
    assert pushed <= 2, (pushed, frames)
    # ... but no entity wrote more than once per 5 s (10 s: at most 3 writes).
    assert writes, "the coordinator published nothing"
    for entity_id, times in rec.writes.items():
        assert len(times) <= 3, (entity_id, writes)
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert all(gap >= PUBLISH_INTERVAL - 0.1 for gap in gaps), (entity_id, gaps)
    # The frame-derived values still moved (sampled publishes happen).
    assert writes.get("sensor.printer_last_frame", 0) >= 1
    assert sum(writes.values()) <= 3 * len(entity_ids)

    # A viewer count change shows within a second, mid-interval.
    second = await _open_viewer(client)
    joined = time.monotonic()
    await until(lambda: _state(hass, VIEWERS) == "2", timeout=1.0)
    assert time.monotonic() - joined < 1.0

    # So does streaming -> stalled, once the stream detects it.
    stalled_at: list[float] = []

    def on_snapshot(snapshot: StreamSnapshot) -> None:
        if snapshot.state is StreamState.STALLED and not stalled_at:
            stalled_at.append(time.monotonic())

    remove = stream.add_listener(on_snapshot)
    fast_printer.pause()
    await until(lambda: _state(hass, STREAM_STATE) == "stalled", timeout=4.0)
    assert stalled_at
    assert time.monotonic() - stalled_at[0] < 1.0
    remove()
    fast_printer.resume()

    for v in (viewer, second):
        await v.close()
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_sampled_publish_shows_counters_and_is_cancelled_on_unload(
    hass: HomeAssistant, hass_client: ClientSessionGenerator, printer: MjpegPrinter
) -> None:
    entry = await setup_entry(hass, make_entry(printer.url))
    coordinator = entry.runtime_data.coordinator
    client = await hass_client()
    viewer = await _open_viewer(client)
    await until(lambda: _state(hass, STREAM_STATE) == "streaming")
    await viewer.wait_frames(5)
    # Frames keep coming: a sample is scheduled.
    await until(lambda: coordinator._unsub_sample is not None)
    published = coordinator.data.frames
    await until(
        lambda: coordinator.data.frames > published, timeout=PUBLISH_INTERVAL + 1
    )
    assert float(_state(hass, "sensor.printer_frame_rate")) > 5
    await until(lambda: coordinator._unsub_sample is not None)
    # Unload with a sample pending: the timer goes with the entry.
    await viewer.close()
    assert await hass.config_entries.async_unload(entry.entry_id)
    assert coordinator._unsub_sample is None
    assert coordinator._unsub_stream is None


async def test_manual_refresh_reads_the_stream_without_io(
    hass: HomeAssistant, printer: MjpegPrinter
) -> None:
    entry = await setup_entry(hass, make_entry(printer.url))
    coordinator = entry.runtime_data.coordinator
    connections = printer.total_connections
    await coordinator.async_refresh()
    assert coordinator.data == entry.runtime_data.stream.snapshot
    assert printer.total_connections == connections
    # Starting twice subscribes once.
    coordinator.async_start()
    # An event listener can be removed twice.
    events: list[str] = []
    remove = coordinator.async_add_event_listener(lambda kind, _: events.append(kind))
    remove()
    remove()
    coordinator._fire("started", StreamState.IDLE, StreamState.STREAMING)
    assert events == []
    assert await hass.config_entries.async_unload(entry.entry_id)
    # Shut down: it no longer follows the stream.
    coordinator.async_start()
    assert coordinator._unsub_stream is None


def test_event_types_are_the_issue_s() -> None:
    assert coordinator_module.EVENT_TYPES == (
        "started",
        "stopped",
        "stalled",
        "recovered",
        "failed",
    )


async def test_samples_while_stalled_write_nothing(
    hass: HomeAssistant, printer: MjpegPrinter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Counters that do not move are sampled, not written."""
    monkeypatch.setattr(coordinator_module, "PUBLISH_INTERVAL", 0.1)
    entry = await setup_entry(
        hass, make_entry(printer.url, options={"keep_warm": True, "stall_s": 0.5})
    )
    coordinator = entry.runtime_data.coordinator
    await until(lambda: _state(hass, STREAM_STATE) == "streaming")
    printer.pause()
    await until(lambda: _state(hass, STREAM_STATE) == "stalled")
    await until(lambda: coordinator._unsub_sample is not None)
    rec = Recorder(hass, {STREAM_STATE, "sensor.printer_last_frame"})
    samples = coordinator.snapshots_seen
    await asyncio.sleep(0.5)  # several sample periods
    rec.stop()
    assert coordinator._unsub_sample is not None  # still sampling
    assert coordinator.snapshots_seen == samples  # no transition either
    assert not any(rec.writes.values()), rec.writes
    printer.resume()
    await until(lambda: _state(hass, STREAM_STATE) == "streaming")
    assert await hass.config_entries.async_unload(entry.entry_id)
