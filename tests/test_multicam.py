"""Entries with several cameras (an OctoPrint or Moonraker printer's webcams).

A small family registered for these tests lists webcams from the entry's
data and a mutable "printer" (what a real printer's API would return), so
the multi-camera machinery is tested apart from any printer's API: one
stream and one set of entities per webcam, named after it, on the printer's
one device; a webcam down shows in its own state only; the periodic check
follows webcams added and removed on the printer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
import json
from pathlib import Path
from typing import Any

from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr, entity_registry as er
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
)
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator
import voluptuous as vol

from custom_components.printcam import restream, startup
from custom_components.printcam.const import DOMAIN
from custom_components.printcam.families import (
    FAMILIES,
    Cameras,
    CameraSpec,
    Draft,
    Family,
    SkippedWebcam,
)
from custom_components.printcam.sources import FrameSource
from custom_components.printcam.stream import StreamState
from printer_sim.mjpeg_server import MjpegPrinter

from .conftest import Viewer, setup_entry, until

type PrinterFactory = Callable[..., Awaitable[MjpegPrinter]]


class WebcamsFamily(Family):
    """A printer whose API lists webcams: `webcams` is what it returns now."""

    kind = "webcams"
    user_schema = reauth_schema = reconfigure_schema = vol.Schema({})

    def __init__(self) -> None:
        self.webcams: dict[str, dict[str, str]] = {}
        """Key -> {"name", "url"} (a url of "webrtc://..." is not MJPEG)."""

    def validate_data(self, data: Mapping[str, Any]) -> None:
        return

    def unique_id(self, data: Mapping[str, Any]) -> str:
        return "webcams-printer"

    def create_source(
        self, hass: HomeAssistant, data: Mapping[str, Any]
    ) -> FrameSource:
        raise NotImplementedError  # every camera comes from async_cameras

    async def async_cameras(
        self, hass: HomeAssistant, data: Mapping[str, Any]
    ) -> Cameras:
        mjpeg = FAMILIES["mjpeg"]
        cameras, skipped = [], []
        for key, webcam in self.webcams.items():
            if webcam["url"].startswith("webrtc://"):
                skipped.append(SkippedWebcam(webcam["name"], "not_mjpeg", "webrtc"))
                continue
            source = mjpeg.create_source(hass, {"kind": "mjpeg", "url": webcam["url"]})
            cameras.append(CameraSpec(key, webcam["name"], source, probe=False))
        return Cameras(cameras, skipped, self._signature())

    async def async_cameras_signature(
        self, hass: HomeAssistant, data: Mapping[str, Any]
    ) -> str | None:
        return self._signature()

    def _signature(self) -> str:
        return json.dumps(self.webcams, sort_keys=True)

    def parse_user(self, user_input: Mapping[str, Any]) -> Draft:
        raise NotImplementedError

    def parse_reauth(
        self, data: Mapping[str, Any], user_input: Mapping[str, Any]
    ) -> dict[str, Any]:
        raise NotImplementedError

    def parse_reconfigure(
        self, data: Mapping[str, Any], user_input: Mapping[str, Any]
    ) -> dict[str, Any]:
        raise NotImplementedError

    def reconfigure_suggested(self, data: Mapping[str, Any]) -> dict[str, Any]:
        return {}

    async def async_check(
        self, hass: HomeAssistant, data: Mapping[str, Any], timeout: float
    ) -> dict[str, Any]:
        return dict(data)


@pytest.fixture
def family(monkeypatch: pytest.MonkeyPatch) -> WebcamsFamily:
    family = WebcamsFamily()
    monkeypatch.setitem(FAMILIES, family.kind, family)
    return family


def webcams_entry() -> MockConfigEntry:
    return MockConfigEntry(
        domain=DOMAIN,
        title="Voron",
        data={"kind": "webcams"},
        unique_id="webcams-printer",
    )


async def nozzle_and_bed(
    family: WebcamsFamily, make_mjpeg_printer: PrinterFactory
) -> tuple[MjpegPrinter, MjpegPrinter]:
    """Give the printer two MJPEG webcams, Nozzle and Bed; return their cameras."""
    nozzle, bed = await make_mjpeg_printer(), await make_mjpeg_printer()
    family.webcams = {
        "nozzle": {"name": "Nozzle", "url": nozzle.url},
        "bed": {"name": "Bed", "url": bed.url},
    }
    return nozzle, bed


def entity_ids(hass: HomeAssistant, entry: MockConfigEntry) -> set[str]:
    registry = er.async_get(hass)
    return {
        e.entity_id for e in er.async_entries_for_config_entry(registry, entry.entry_id)
    }


async def test_each_webcam_is_a_camera_with_its_own_upstream(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    family: WebcamsFamily,
    make_mjpeg_printer: PrinterFactory,
) -> None:
    nozzle, bed = await make_mjpeg_printer(), await make_mjpeg_printer()
    family.webcams = {
        "nozzle": {"name": "Nozzle", "url": nozzle.url},
        "bed": {"name": "Bed", "url": bed.url},
        "room": {"name": "Room", "url": "webrtc://printer.lan/room"},
    }
    entry = await setup_entry(hass, webcams_entry())
    assert entry.state is ConfigEntryState.LOADED
    # No probe: the printer's API proved it is there; nothing connected yet.
    assert nozzle.total_connections == bed.total_connections == 0

    ids = entity_ids(hass, entry)
    assert {"camera.voron_nozzle", "camera.voron_bed"} <= ids
    assert {"sensor.voron_nozzle_stream_state", "sensor.voron_bed_viewers"} <= ids
    assert {"switch.voron_nozzle_keep_warm", "button.voron_bed_restart_stream"} <= ids
    assert not any("room" in entity_id for entity_id in ids)
    state = hass.states.get("sensor.voron_bed_stream_state")
    assert state is not None
    assert state.attributes["friendly_name"] == "Voron Bed stream state"
    registry = er.async_get(hass)
    camera = registry.async_get("camera.voron_nozzle")
    assert camera is not None
    assert camera.unique_id == "webcams-printer_nozzle_camera"
    # One device for the printer, every webcam's entities on it.
    devices = dr.async_entries_for_config_entry(dr.async_get(hass), entry.entry_id)
    assert len(devices) == 1
    assert all(
        e.device_id == devices[0].id
        for e in er.async_entries_for_config_entry(registry, entry.entry_id)
    )

    # Two viewers of each camera: one upstream per webcam.
    await async_setup_component(hass, "diagnostics", {})
    client = await hass_client()
    viewers = []
    for camera_id in ("camera.voron_nozzle", "camera.voron_bed") * 2:
        response = await client.get(f"/api/camera_proxy_stream/{camera_id}")
        assert response.status == 200
        viewers.append(Viewer(response))
    for viewer in viewers:
        await viewer.wait_frames(3)
    assert nozzle.total_connections == bed.total_connections == 1
    assert set(viewers[0].frames) <= set(nozzle.frames_sent)
    assert set(viewers[1].frames) <= set(bed.frames_sent)
    await until(
        lambda: hass.states.get("sensor.voron_nozzle_viewers").state == "2"  # type: ignore[union-attr]
    )
    for viewer in viewers:
        await viewer.close()

    # Diagnostics: each webcam, and the one not shown with its reason.
    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, entry)
    assert [w["key"] for w in diagnostics["webcams"]] == ["nozzle", "bed"]
    assert diagnostics["skipped_webcams"] == [
        {"name": "Room", "reason": "not_mjpeg", "detail": "webrtc"}
    ]
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    await nozzle.wait_for(lambda p: p.open_connections == 0)
    await bed.wait_for(lambda p: p.open_connections == 0)


async def test_a_webcam_down_shows_in_its_own_state_only(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    family: WebcamsFamily,
    make_mjpeg_printer: PrinterFactory,
) -> None:
    nozzle = await make_mjpeg_printer()
    family.webcams = {
        "nozzle": {"name": "Nozzle", "url": nozzle.url},
        "bed": {"name": "Bed", "url": "http://127.0.0.1:9/webcam/?action=stream"},
    }
    entry = await setup_entry(hass, webcams_entry())
    assert entry.state is ConfigEntryState.LOADED  # the bed camera is down
    bed = entry.runtime_data.cameras[1].stream
    client = await hass_client()
    viewers = [
        Viewer(await client.get(f"/api/camera_proxy_stream/{camera_id}"))
        for camera_id in ("camera.voron_nozzle", "camera.voron_bed")
    ]
    await viewers[0].wait_frames(3)
    await until(lambda: bed.state is StreamState.UNREACHABLE)
    await until(
        lambda: hass.states.get("sensor.voron_bed_stream_state").state  # type: ignore[union-attr]
        == "unreachable"
    )
    state = hass.states.get("sensor.voron_nozzle_stream_state")
    assert state is not None
    assert state.state == "streaming"
    for viewer in viewers:
        await viewer.close()
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_webcams_added_and_removed_on_the_printer_are_followed(
    hass: HomeAssistant, family: WebcamsFamily, make_mjpeg_printer: PrinterFactory
) -> None:
    nozzle, bed = await nozzle_and_bed(family, make_mjpeg_printer)
    entry = await setup_entry(hass, webcams_entry())
    before = entity_ids(hass, entry)
    assert "camera.voron_bed" in before

    # The bed webcam is removed and a chamber one added on the printer: the
    # hourly check notices and reloads; the bed's entities go.
    family.webcams = {
        "nozzle": {"name": "Nozzle", "url": nozzle.url},
        "chamber": {"name": "Chamber", "url": bed.url},
    }
    async_fire_time_changed(hass, dt_util.utcnow() + startup.WEBCAM_RECHECK_INTERVAL)
    await hass.async_block_till_done()
    await until(lambda: "camera.voron_chamber" in entity_ids(hass, entry))
    after = entity_ids(hass, entry)
    assert not any("voron_bed" in entity_id for entity_id in after)
    assert {e.replace("nozzle", "chamber") for e in before if "nozzle" in e} <= after
    assert entry.state is ConfigEntryState.LOADED
    assert [c.key for c in entry.runtime_data.cameras] == ["nozzle", "chamber"]

    # Unchanged webcams: the check does not reload.
    cameras = entry.runtime_data.cameras
    async_fire_time_changed(
        hass, dt_util.utcnow() + startup.WEBCAM_RECHECK_INTERVAL * 2 + timedelta(1)
    )
    await hass.async_block_till_done()
    assert entry.runtime_data.cameras is cameras
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_keep_warm_is_per_webcam(
    hass: HomeAssistant, family: WebcamsFamily, make_mjpeg_printer: PrinterFactory
) -> None:
    nozzle, bed = await nozzle_and_bed(family, make_mjpeg_printer)
    entry = await setup_entry(hass, webcams_entry())
    await hass.services.async_call(
        "switch", "turn_on", {"entity_id": "switch.voron_bed_keep_warm"}, blocking=True
    )
    assert entry.options == {"keep_warm:bed": True}
    await bed.wait_for(lambda p: p.open_connections == 1)
    assert nozzle.total_connections == 0
    state = hass.states.get("switch.voron_nozzle_keep_warm")
    assert state is not None
    assert state.state == "off"
    assert await hass.config_entries.async_unload(entry.entry_id)
    await bed.wait_for(lambda p: p.open_connections == 0)


async def test_no_mjpeg_webcam_retries_setup(
    hass: HomeAssistant, family: WebcamsFamily
) -> None:
    family.webcams = {"room": {"name": "Room", "url": "webrtc://printer.lan/room"}}
    entry = await setup_entry(hass, webcams_entry())
    assert entry.state is ConfigEntryState.SETUP_RETRY
    assert "Room (webrtc)" in (entry.reason or "")


async def test_each_webcam_has_its_restream_url(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    family: WebcamsFamily,
    make_mjpeg_printer: PrinterFactory,
) -> None:
    nozzle, bed = await nozzle_and_bed(family, make_mjpeg_printer)
    entry = await setup_entry(hass, webcams_entry())
    result = await hass.config_entries.options.async_init(entry.entry_id)
    await hass.config_entries.options.async_configure(
        result["flow_id"], {"restream": True}
    )
    await hass.async_block_till_done()
    token = entry.options["restream_token"]
    urls = restream.restream_urls(hass, entry, entry.options)
    assert [url.split(token, 1)[1] for url in urls] == [
        "/stream.mjpeg",
        "/snapshot.jpg",
        "/bed/stream.mjpeg",
        "/bed/snapshot.jpg",
    ]
    client = await hass_client()
    first = Viewer(await client.get(f"/api/printcam/{token}/stream.mjpeg"))
    second = Viewer(await client.get(f"/api/printcam/{token}/bed/stream.mjpeg"))
    await first.wait_frames(2)
    await second.wait_frames(2)
    assert set(first.frames) <= set(nozzle.frames_sent)
    assert set(second.frames) <= set(bed.frames_sent)
    # The first webcam has the short URLs only; unknown webcams are 404.
    for path in ("nozzle/stream.mjpeg", "garage/stream.mjpeg"):
        assert (await client.get(f"/api/printcam/{token}/{path}")).status == 404
    await first.close()
    await second.close()
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_each_webcam_records_from_its_own_stream(
    hass: HomeAssistant,
    family: WebcamsFamily,
    make_mjpeg_printer: PrinterFactory,
    tmp_path: Path,
) -> None:
    """A clip of one webcam: its stream only, named after it, its own event."""
    hass.config.media_dirs = {"local": str(tmp_path)}
    nozzle, bed = await nozzle_and_bed(family, make_mjpeg_printer)
    entry = await setup_entry(hass, webcams_entry())
    assert {"event.voron_bed_recording", "button.voron_bed_record_clip"} <= (
        entity_ids(hass, entry)
    )
    response = await hass.services.async_call(
        DOMAIN,
        "record_clip",
        {"entity_id": "camera.voron_bed", "after": 0.5},
        blocking=True,
        return_response=True,
    )
    video = Path(response["camera.voron_bed"]["path"])
    assert video.parent == tmp_path / "printcam" / "voron"
    assert video.name.startswith("clip_bed_")
    assert nozzle.total_connections == 0
    event = hass.states.get("event.voron_bed_recording")
    assert event is not None
    assert event.attributes["event_type"] == "clip_ready"
    assert event.attributes["camera"] == "bed"
    nozzle_event = hass.states.get("event.voron_nozzle_recording")
    assert nozzle_event is not None
    assert nozzle_event.attributes.get("event_type") is None
    assert await hass.config_entries.async_unload(entry.entry_id)
