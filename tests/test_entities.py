"""The stream's entities: snapshots, keep-warm, restart and a real automation."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp.test_utils import TestClient
from homeassistant.config_entries import SOURCE_REAUTH
from homeassistant.const import (
    ATTR_ENTITY_ID,
    SERVICE_TURN_OFF,
    SERVICE_TURN_ON,
    STATE_OFF,
    STATE_ON,
    STATE_UNKNOWN,
    EntityCategory,
    Platform,
)
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_mock_service,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator
from syrupy.assertion import SnapshotAssertion
from syrupy.matchers import path_type

from custom_components.printcam import (
    diagnostics as diagnostics_module,
    sensor as sensor_module,
)
from custom_components.printcam.const import DOMAIN
from custom_components.printcam.entity import device_info_for
from custom_components.printcam.startup import PLATFORMS
from custom_components.printcam.stream import StreamSnapshot
from printer_sim.mjpeg_server import MjpegPrinter

from .conftest import Viewer, make_entry, setup_entry, until

STREAM = "/api/camera_proxy_stream/camera.printer"
STILL = "/api/camera_proxy/camera.printer"
STREAM_STATE = "sensor.printer_stream_state"
STREAMING = "binary_sensor.printer_streaming"
VIEWERS = "sensor.printer_viewers"
KEEP_WARM = "switch.printer_keep_warm"
RESTART = "button.printer_restart_stream"
EVENT = "event.printer_stream"

OUR_PLATFORMS = [p for p in PLATFORMS if p is not Platform.CAMERA]


async def _open_viewer(client: TestClient) -> Viewer:
    response = await client.get(STREAM)
    assert response.status == 200
    return Viewer(response)


def _state(hass: HomeAssistant, entity_id: str) -> str:
    state = hass.states.get(entity_id)
    assert state is not None, entity_id
    return state.state


# --- snapshots ------------------------------------------------------------------


@pytest.mark.usefixtures("entity_registry_enabled_by_default")
async def test_entities_snapshot(
    hass: HomeAssistant,
    entity_registry: er.EntityRegistry,
    snapshot: SnapshotAssertion,
    printer: MjpegPrinter,
) -> None:
    """Every entity of the stream, registry entry and state, while idle."""
    # A fixed identity keeps unique ids stable across runs (the port varies).
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="Printer",
        data={"kind": "mjpeg", "url": printer.url},
        unique_id="http://printer.test/stream",
    )
    await setup_entry(hass, entry)
    await until(lambda: printer.open_connections == 0)
    entries = er.async_entries_for_config_entry(entity_registry, entry.entry_id)
    ours = sorted(
        (e for e in entries if e.domain in OUR_PLATFORMS), key=lambda e: e.entity_id
    )
    assert {e.domain for e in ours} == set(OUR_PLATFORMS)
    assert len(ours) == 14
    for entity_entry in ours:
        assert entity_entry.disabled_by is None
        assert entity_entry.device_id is not None
        assert entity_entry == snapshot(name=f"{entity_entry.entity_id}-entry")
        state = hass.states.get(entity_entry.entity_id)
        assert state is not None
        # The startup probe's frame and its end: when, not what, varies.
        timed = entity_entry.entity_id in ("sensor.printer_last_frame", EVENT)
        matcher = path_type({"state": (str,)}) if timed else None
        assert state == snapshot(
            name=f"{entity_entry.entity_id}-state", matcher=matcher
        )
    # All on the printer's one device, which also carries the camera.
    assert len({e.device_id for e in entries}) == 1
    assert await hass.config_entries.async_unload(entry.entry_id)


@pytest.mark.usefixtures("entity_registry_enabled_by_default")
async def test_entities_snapshot_while_streaming(
    hass: HomeAssistant,
    entity_registry: er.EntityRegistry,
    hass_client: ClientSessionGenerator,
    snapshot: SnapshotAssertion,
    printer: MjpegPrinter,
) -> None:
    """Every entity's state and attributes with one viewer watching."""
    entry = await setup_entry(hass, make_entry(printer.url))
    client = await hass_client()
    viewer = await _open_viewer(client)
    await viewer.wait_frames(3)
    await until(lambda: _state(hass, STREAM_STATE) == "streaming")
    # Values that depend on time: only their type is snapshotted.
    timed = {"sensor.printer_frame_rate", "sensor.printer_last_frame", EVENT}
    entries = er.async_entries_for_config_entry(entity_registry, entry.entry_id)
    for entity_id in sorted(e.entity_id for e in entries if e.domain != "camera"):
        state = hass.states.get(entity_id)
        assert state is not None
        matcher = path_type({"state": (str,)}) if entity_id in timed else None
        assert state == snapshot(name=entity_id, matcher=matcher)
    assert float(_state(hass, "sensor.printer_frame_rate")) >= 0
    last_frame = dt_util.parse_datetime(_state(hass, "sensor.printer_last_frame"))
    assert last_frame is not None
    assert abs((dt_util.utcnow() - last_frame).total_seconds()) < 5
    await viewer.close()
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_idle_without_viewers_and_diagnostic_defaults(
    hass: HomeAssistant, entity_registry: er.EntityRegistry, printer: MjpegPrinter
) -> None:
    """No viewers, no keep-warm: state-derived entities say idle, not unavailable."""
    entry = await setup_entry(hass, make_entry(printer.url))
    assert _state(hass, STREAM_STATE) == "idle"
    assert _state(hass, STREAMING) == STATE_OFF
    assert _state(hass, VIEWERS) == "0"
    assert _state(hass, "sensor.printer_frame_rate") == "0.0"
    # The startup probe's frame is the latest one, and shows.
    assert _state(hass, "sensor.printer_last_frame") != STATE_UNKNOWN
    assert _state(hass, KEEP_WARM) == STATE_OFF
    for entity_id in ("sensor.printer_dropped_frames", "sensor.printer_reconnects"):
        registry_entry = entity_registry.async_get(entity_id)
        assert registry_entry is not None
        assert registry_entry.disabled_by is er.RegistryEntryDisabler.INTEGRATION
        assert registry_entry.entity_category is EntityCategory.DIAGNOSTIC
        assert hass.states.get(entity_id) is None
    for entity_id in (KEEP_WARM, RESTART):
        registry_entry = entity_registry.async_get(entity_id)
        assert registry_entry is not None
        assert registry_entry.entity_category is EntityCategory.CONFIG
    assert await hass.config_entries.async_unload(entry.entry_id)
    # Unloaded: the entities remain, unavailable (the entry cannot run).
    assert _state(hass, STREAM_STATE) == "unavailable"


# --- the device -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "unique_id", "expected"),
    [
        pytest.param(
            {
                "kind": "bambu",
                "host": "10.0.0.5",
                "serial": "01P00A000000001",
                "access_code": "12345678",
                "model": "P1S",
                "cert_sha256": "ab" * 32,
            },
            "01P00A000000001",
            {
                "identifiers": {(DOMAIN, "01P00A000000001")},
                "name": "Printer",
                "manufacturer": "Bambu Lab",
                "model": "P1S",
                "serial_number": "01P00A000000001",
            },
            id="bambu",
        ),
        pytest.param(
            {"kind": "mjpeg", "url": "http://u:p@Printer.local:8080/stream?a=1"},
            "http://printer.local:8080/stream?a=1",
            {
                "identifiers": {(DOMAIN, "http://printer.local:8080/stream?a=1")},
                "name": "Printer",
                "manufacturer": "PrintCam",
                "model": "MJPEG camera",
                "configuration_url": "http://printer.local:8080",
            },
            id="mjpeg",
        ),
        pytest.param(
            {"kind": "mjpeg", "url": "https://cam.test/"},
            None,
            {
                "identifiers": {(DOMAIN, "entry-id")},
                "name": "Printer",
                "manufacturer": "PrintCam",
                "model": "MJPEG camera",
                "configuration_url": "https://cam.test",
            },
            id="mjpeg-without-unique-id",
        ),
    ],
)
def test_device_info(
    data: dict[str, Any], unique_id: str | None, expected: dict[str, Any]
) -> None:
    """The device: its identity from the entry, the rest from its family."""
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="Printer",
        data=data,
        unique_id=unique_id,
        entry_id="entry-id",
    )
    assert device_info_for(entry) == expected


# --- keep warm ----------------------------------------------------------------


async def test_keep_warm_holds_upstream_and_off_closes_after_grace(
    hass: HomeAssistant, hass_client: ClientSessionGenerator, printer: MjpegPrinter
) -> None:
    # A still holds the upstream for still_hold_s: keep it within the grace.
    entry = await setup_entry(
        hass,
        make_entry(printer.url, options={"idle_grace_s": 1, "still_hold_s": 1}),
    )
    await until(lambda: printer.open_connections == 0)
    before = printer.total_connections

    await hass.services.async_call(
        Platform.SWITCH, SERVICE_TURN_ON, {ATTR_ENTITY_ID: KEEP_WARM}, blocking=True
    )
    assert entry.options["keep_warm"] is True
    assert _state(hass, KEEP_WARM) == STATE_ON
    await hass.async_block_till_done()
    # Warm with nobody watching: connected, state live.
    await until(lambda: _state(hass, STREAM_STATE) == "streaming")
    assert _state(hass, VIEWERS) == "0"
    await asyncio.sleep(2.0)  # twice the grace window
    assert printer.open_connections == 1
    assert printer.total_connections - before == 1
    assert _state(hass, STREAM_STATE) == "streaming"

    # Stills come from the warm upstream: no new connection.
    client = await hass_client()
    for _ in range(3):
        response = await client.get(STILL)
        assert response.status == 200
        assert await response.read() in printer.frames_sent
    assert printer.total_connections - before == 1

    await hass.services.async_call(
        Platform.SWITCH, SERVICE_TURN_OFF, {ATTR_ENTITY_ID: KEEP_WARM}, blocking=True
    )
    switched_off = time.monotonic()
    await hass.async_block_till_done()
    assert entry.options["keep_warm"] is False
    assert _state(hass, KEEP_WARM) == STATE_OFF
    await until(lambda: printer.open_connections == 0, timeout=3.0)
    held = time.monotonic() - switched_off
    assert 0.8 <= held <= 2.0, held
    await until(lambda: _state(hass, STREAM_STATE) == "idle")
    assert hass.states.get(EVENT).attributes["event_type"] == "stopped"
    assert printer.total_connections - before == 1
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_keep_warm_from_options_at_setup_and_options_flow_keeps_it(
    hass: HomeAssistant, printer: MjpegPrinter
) -> None:
    entry = await setup_entry(
        hass, make_entry(printer.url, options={"keep_warm": True})
    )
    assert _state(hass, KEEP_WARM) == STATE_ON
    await until(lambda: _state(hass, STREAM_STATE) == "streaming")
    # Changing other options in the flow leaves keep-warm on.
    result = await hass.config_entries.options.async_init(entry.entry_id)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {"max_fps": 0, "idle_grace_s": 5, "still_hold_s": 30, "stall_s": 4},
    )
    await hass.async_block_till_done()
    assert entry.options["keep_warm"] is True
    assert entry.runtime_data.stream.options.stall_s == 4
    assert _state(hass, KEEP_WARM) == STATE_ON
    assert printer.open_connections == 1
    assert await hass.config_entries.async_unload(entry.entry_id)


# --- restart ------------------------------------------------------------------


async def test_restart_opens_exactly_one_new_connection_after_closing_the_old(
    hass: HomeAssistant, hass_client: ClientSessionGenerator, printer: MjpegPrinter
) -> None:
    entry = await setup_entry(hass, make_entry(printer.url))
    await until(lambda: printer.open_connections == 0)
    # Idle: nothing to restart, and pressing opens nothing.
    before = printer.total_connections
    await hass.services.async_call(
        Platform.BUTTON, "press", {ATTR_ENTITY_ID: RESTART}, blocking=True
    )
    await asyncio.sleep(0.3)
    assert printer.total_connections == before

    client = await hass_client()
    viewer = await _open_viewer(client)
    await viewer.wait_frames(5)
    assert printer.total_connections - before == 1
    old = printer.live_connections[0]
    frames_before = len(viewer.frames)

    await hass.services.async_call(
        Platform.BUTTON, "press", {ATTR_ENTITY_ID: RESTART}, blocking=True
    )
    await until(lambda: printer.total_connections - before == 2)
    await viewer.wait_frames(frames_before + 5)
    await asyncio.sleep(0.3)  # a second reconnect would show by now
    assert printer.total_connections - before == 2  # exactly one new connection
    assert old.closed
    assert old.hung_up_by == "client"
    # Never two at once: the old one was closed before the new one opened.
    assert printer.max_open_connections == 1
    assert not viewer.ended  # the viewer stayed on through the restart
    assert _state(hass, STREAM_STATE) == "streaming"
    assert hass.states.get(RESTART).state != STATE_UNKNOWN

    await viewer.close()
    assert await hass.config_entries.async_unload(entry.entry_id)
    await until(lambda: printer.open_connections == 0, timeout=2.0)


# --- a real automation ------------------------------------------------------------


async def test_automation_on_stalled_fires_once_per_stall(
    hass: HomeAssistant, hass_client: ClientSessionGenerator, printer: MjpegPrinter
) -> None:
    entry = await setup_entry(
        hass, make_entry(printer.url, options={"stall_s": 1, "idle_grace_s": 0})
    )
    calls = async_mock_service(hass, "test", "stalled")
    assert await async_setup_component(
        hass,
        "automation",
        {
            "automation": {
                "triggers": [
                    {"trigger": "state", "entity_id": STREAM_STATE, "to": "stalled"}
                ],
                "actions": [{"action": "test.stalled"}],
            }
        },
    )
    client = await hass_client()
    viewer = await _open_viewer(client)
    await until(lambda: _state(hass, STREAM_STATE) == "streaming")

    for stall in (1, 2):
        printer.pause()
        await until(lambda: _state(hass, STREAM_STATE) == "stalled", timeout=3.0)
        # Stay stalled a while: the watchdog keeps checking, nothing refires.
        await asyncio.sleep(1.5)
        await hass.async_block_till_done()
        assert len(calls) == stall
        printer.resume()
        await until(lambda: _state(hass, STREAM_STATE) == "streaming")
        await hass.async_block_till_done()
        assert len(calls) == stall

    await viewer.close()
    assert await hass.config_entries.async_unload(entry.entry_id)


# --- authentication -----------------------------------------------------------------


async def test_401_while_streaming_is_auth_failed_and_starts_reauth(
    hass: HomeAssistant, hass_client: ClientSessionGenerator, printer: MjpegPrinter
) -> None:
    entry = await setup_entry(hass, make_entry(printer.url))
    client = await hass_client()
    viewer = await _open_viewer(client)
    await until(lambda: _state(hass, STREAM_STATE) == "streaming")
    printer.set_mode("status_401")
    printer.drop_all()
    await until(lambda: _state(hass, STREAM_STATE) == "auth_failed", timeout=5.0)
    assert _state(hass, STREAMING) == STATE_OFF
    event = hass.states.get(EVENT)
    assert event is not None
    assert event.attributes["event_type"] == "failed"
    assert event.attributes["state"] == "auth_failed"
    await hass.async_block_till_done()
    flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert [f["context"]["source"] for f in flows] == [SOURCE_REAUTH]
    await until(lambda: viewer.ended)
    await viewer.close()
    assert await hass.config_entries.async_unload(entry.entry_id)


def test_last_frame_is_unknown_before_any_frame() -> None:
    assert sensor_module._last_frame(StreamSnapshot()) is None
    assert diagnostics_module._timestamp(None) is None
