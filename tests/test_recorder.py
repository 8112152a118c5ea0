"""Timelapses and clips through Home Assistant, over the simulated printer.

Every video is read back with ffprobe (frame count, size, codec); the
printer's connection counters show that recording never opened a second
connection; storage failures are real errno values from the kernel
(``/dev/full`` for a full disk, a file where a folder must be).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
import json
import os
from pathlib import Path
import shutil
import time
from typing import Any

from homeassistant.components import media_source
from homeassistant.const import EVENT_HOMEASSISTANT_STOP
from homeassistant.core import Event, EventStateChangedData, HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.event import async_track_state_change_event
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.printcam.const import DOMAIN
from custom_components.printcam.recorder import (
    FRAMES_DIR,
    MANIFEST,
    RESUME_WITHIN_S,
    jpeg_size,
)
from printer_sim.jpeg import numbered_jpeg
from printer_sim.mjpeg_server import MjpegPrinter

from .conftest import Viewer, make_entry, setup_entry, until
from .recorder_support import ffprobe, hidden

CAMERA = "camera.printer"
RECORDING = "event.printer_recording"
TIMELAPSE = "binary_sensor.printer_timelapse"
CLIP_BUFFER = "switch.printer_clip_buffer"

pytestmark = pytest.mark.skipif(
    shutil.which("ffprobe") is None, reason="ffmpeg is not installed"
)


def work_frames(root: Path) -> int:
    """Return how many frames the work folders hold now."""
    return sum(1 for _ in root.glob(f"*/.*.work/{FRAMES_DIR}/*.jpg"))


class RecordingEvents:
    """The recording event entity's events, as automations see them."""

    def __init__(self, hass: HomeAssistant, entity_id: str = RECORDING) -> None:
        self.events: list[dict[str, Any]] = []

        def changed(event: Event[EventStateChangedData]) -> None:
            state = event.data["new_state"]
            if state is not None and state.attributes.get("event_type"):
                self.events.append(dict(state.attributes))

        self.remove = async_track_state_change_event(hass, entity_id, changed)

    def of(self, event_type: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event_type"] == event_type]


@pytest.fixture
def media_root(hass: HomeAssistant, tmp_path: Path) -> Path:
    """Point Home Assistant's media folder at a temporary one."""
    hass.config.media_dirs = {"local": str(tmp_path)}
    return tmp_path / "printcam"


@pytest.fixture
async def entry(
    hass: HomeAssistant, printer: MjpegPrinter, media_root: Path
) -> AsyncIterator[MockConfigEntry]:
    """A loaded PrintCam entry of the fake printer (20 fps), idle."""
    entry = await setup_entry(hass, make_entry(printer.url))
    yield entry
    if entry.state.recoverable:
        await hass.config_entries.async_unload(entry.entry_id)


async def _call(
    hass: HomeAssistant, service: str, *, response: bool = False, **data: Any
) -> Any:
    return await hass.services.async_call(
        DOMAIN,
        service,
        {"entity_id": CAMERA, **data},
        blocking=True,
        return_response=response,
    )


async def _watch(hass: HomeAssistant, hass_client: ClientSessionGenerator) -> Viewer:
    client = await hass_client()
    response = await client.get(f"/api/camera_proxy_stream/{CAMERA}")
    assert response.status == 200
    return Viewer(response)


async def test_timelapse_makes_an_mp4_over_the_one_connection(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    printer: MjpegPrinter,
    media_root: Path,
    hass_client: ClientSessionGenerator,
) -> None:
    """A timelapse: H.264 MP4, one frame per tick, no second connection."""
    events = RecordingEvents(hass)
    before = printer.total_connections
    viewer = await _watch(hass, hass_client)
    await viewer.wait_frames(3)
    await _call(hass, "start_timelapse", interval=1, fps=5)
    assert hass.states.get(TIMELAPSE).state == "on"
    await until(lambda: work_frames(media_root) >= 4, timeout=15)
    response = await _call(hass, "stop_timelapse", response=True)
    assert hass.states.get(TIMELAPSE).state == "off"
    result = response[CAMERA]
    video = Path(result["path"])
    assert video.parent == media_root / "printer"
    assert video.name.startswith("timelapse_")
    assert video.suffix == ".mp4"
    assert result["media_id"] == f"media-source://printcam/printer/{video.name}"
    probe = await hass.async_add_executor_job(ffprobe, video)
    assert probe["codec_name"] == "h264"
    assert probe["pix_fmt"] == "yuv420p"
    assert abs(probe["nb_read_frames"] - result["frames"]) <= 1
    assert result["frames"] >= 4
    assert result["duration"] == pytest.approx(result["frames"] / 5, abs=0.01)
    size = jpeg_size(viewer.frames[-1])
    assert size is not None
    assert (probe["width"], probe["height"]) == (
        size[0] - size[0] % 2,
        size[1] - size[1] % 2,
    )
    # A thumbnail (the last frame) beside it; nothing hidden left behind.
    assert video.with_suffix(".jpg").read_bytes()[:2] == b"\xff\xd8"
    assert hidden(media_root) == []
    # The printer saw the viewer's connection and nothing else.
    assert printer.total_connections - before == 1
    assert printer.max_open_connections == 1
    # The event said so, once, with the media id; the media source plays it.
    await hass.async_block_till_done()
    ready = events.of("timelapse_ready")
    assert [e["media_id"] for e in ready] == [result["media_id"]]
    assert len(events.of("timelapse_started")) == 1
    played = await media_source.async_resolve_media(hass, result["media_id"], None)
    assert played.mime_type == "video/mp4"
    await viewer.close()


async def test_timelapse_alone_keeps_the_upstream_open(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    printer: MjpegPrinter,
    media_root: Path,
) -> None:
    """No viewer: the timelapse holds one connection; stopping lets it go."""
    stream = entry.runtime_data.stream
    before = printer.total_connections
    await _call(hass, "start_timelapse", interval=1)
    await until(lambda: work_frames(media_root) >= 3, timeout=15)
    # Longer than the idle grace and the still hold would keep it.
    assert stream.running
    assert printer.open_connections == 1
    await _call(hass, "stop_timelapse")
    await until(lambda: printer.open_connections == 0, timeout=15)
    assert printer.total_connections - before == 1
    await until(lambda: any(media_root.glob("printer/*.mp4")), timeout=30)


async def test_unload_mid_timelapse_resumes_it(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    media_root: Path,
) -> None:
    """Unloaded mid-timelapse and set up again: one video with every frame."""
    events = RecordingEvents(hass)
    await _call(hass, "start_timelapse", interval=1, fps=10)
    await until(lambda: work_frames(media_root) >= 2, timeout=15)
    assert await hass.config_entries.async_unload(entry.entry_id)
    # Only whole frames and the manifest stay; it says running.
    work = next(media_root.glob("printer/.timelapse_*.work"))
    first_part = work_frames(media_root)
    assert not list(work.glob(f"{FRAMES_DIR}/.*"))
    manifest = json.loads((work / MANIFEST).read_text())
    assert manifest["state"] == "running"
    assert manifest["entry_id"] == entry.entry_id

    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert hass.states.get(TIMELAPSE).state == "on"
    await until(lambda: work_frames(media_root) >= first_part + 2, timeout=15)
    response = await _call(hass, "stop_timelapse", response=True)
    result = response[CAMERA]
    assert result["frames"] >= first_part + 2
    probe = await hass.async_add_executor_job(ffprobe, Path(result["path"]))
    assert abs(probe["nb_read_frames"] - result["frames"]) <= 1
    assert hidden(media_root) == []
    assert len(list(media_root.glob("printer/*.mp4"))) == 1
    await hass.async_block_till_done()
    assert len(events.of("timelapse_ready")) == 1


def _left_behind(root: Path, entry_id: str, *, last_frame: float, good: int) -> Path:
    """Write a work folder as a crash leaves it: a torn frame, a temp file."""
    work = root / "printer" / ".timelapse_2026-11-01_10-00-00.work"
    frames = work / FRAMES_DIR
    frames.mkdir(parents=True)
    for number in range(1, good + 1):
        (frames / f"{number:06d}.jpg").write_bytes(numbered_jpeg(number))
    (frames / f"{good + 1:06d}.jpg").write_bytes(numbered_jpeg(99)[:100])  # torn
    (frames / ".frame.tmp").write_bytes(b"\xff\xd8half")
    manifest = {
        "kind": "timelapse",
        "name": "timelapse_2026-11-01_10-00-00",
        "entry_id": entry_id,
        "camera": None,
        "printer": "Printer",
        "state": "running",
        "interval": 10,
        "fps": 30,
        "last_frame": last_frame,
    }
    (work / MANIFEST).write_text(json.dumps(manifest))
    os.utime(frames, (last_frame, last_frame))
    return work


async def test_a_crashed_old_timelapse_is_finished_at_setup(
    hass: HomeAssistant, printer: MjpegPrinter, media_root: Path
) -> None:
    """Left by a crash hours ago: finished with its whole frames, not resumed."""
    entry = make_entry(printer.url)
    old = time.time() - RESUME_WITHIN_S - 60
    work = _left_behind(media_root, entry.entry_id, last_frame=old, good=5)
    events = RecordingEvents(hass)
    await setup_entry(hass, entry)
    await until(lambda: not work.exists(), timeout=30)
    assert hass.states.get(TIMELAPSE).state == "off"
    video = media_root / "printer" / "timelapse_2026-11-01_10-00-00.mp4"
    probe = await hass.async_add_executor_job(ffprobe, video)
    assert probe["nb_read_frames"] == 5
    assert hidden(media_root) == []
    await hass.async_block_till_done()
    assert [e["frames"] for e in events.of("timelapse_ready")] == [5]
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_a_crashed_recent_timelapse_is_resumed(
    hass: HomeAssistant, printer: MjpegPrinter, media_root: Path
) -> None:
    """Left by a crash a minute ago: resumed after its last whole frame."""
    entry = make_entry(printer.url)
    work = _left_behind(media_root, entry.entry_id, last_frame=time.time() - 60, good=3)
    await setup_entry(hass, entry)
    assert hass.states.get(TIMELAPSE).state == "on"
    assert not (work / FRAMES_DIR / ".frame.tmp").exists()
    await until(lambda: work_frames(media_root) >= 4, timeout=15)
    names = sorted(p.name for p in (work / FRAMES_DIR).iterdir())
    assert names[:4] == ["000001.jpg", "000002.jpg", "000003.jpg", "000004.jpg"]
    response = await _call(hass, "stop_timelapse", response=True)
    assert response[CAMERA]["frames"] >= 4
    assert hidden(media_root) == []
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_disk_full_ends_the_timelapse_and_spares_viewers(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    media_root: Path,
    hass_client: ClientSessionGenerator,
) -> None:
    """ENOSPC mid-timelapse: a repair issue, the event, a video of what was kept."""
    events = RecordingEvents(hass)
    viewer = await _watch(hass, hass_client)
    await viewer.wait_frames(2)
    await _call(hass, "start_timelapse", interval=1)
    await until(lambda: work_frames(media_root) >= 2, timeout=15)
    work = next(media_root.glob("printer/.timelapse_*.work"))
    # The next frame lands on a device that is always full.
    (work / FRAMES_DIR / ".frame.tmp").symlink_to("/dev/full")
    await until(lambda: hass.states.get(TIMELAPSE).state == "off", timeout=15)
    await until(lambda: bool(events.of("recording_failed")), timeout=30)
    failed = events.of("recording_failed")
    assert len(failed) == 1
    assert failed[0]["error"] == "the disk is full"
    assert failed[0]["media_id"].startswith("media-source://printcam/printer/")
    issue = ir.async_get(hass).async_get_issue(
        DOMAIN, f"recording_failed_{entry.entry_id}"
    )
    assert issue is not None
    assert issue.translation_key == "recording_failed"
    assert issue.translation_placeholders["error"] == "the disk is full"
    # The viewer never noticed.
    seen = len(viewer.frames)
    await viewer.wait_frames(seen + 10)
    assert not viewer.ended
    assert hass.states.get(CAMERA).state == "streaming"
    await viewer.close()
    # A later recording that works clears the issue.
    await until(lambda: not hidden(media_root), timeout=30)
    await _call(hass, "record_clip", response=True, after=0.5)
    assert (
        ir.async_get(hass).async_get_issue(DOMAIN, f"recording_failed_{entry.entry_id}")
        is None
    )


async def test_unwritable_folder_refuses_the_timelapse(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    media_root: Path,
    hass_client: ClientSessionGenerator,
) -> None:
    """A file where the folder must be: a clear error; viewers unaffected."""
    media_root.parent.mkdir(parents=True, exist_ok=True)
    media_root.write_text("not a folder")
    viewer = await _watch(hass, hass_client)
    await viewer.wait_frames(2)
    with pytest.raises(HomeAssistantError) as caught:
        await _call(hass, "start_timelapse")
    assert caught.value.translation_key == "recording_failed"
    assert "cannot store recordings of Printer" in str(caught.value)
    assert hass.states.get(TIMELAPSE).state == "off"
    assert ir.async_get(hass).async_get_issue(
        DOMAIN, f"recording_failed_{entry.entry_id}"
    )
    seen = len(viewer.frames)
    await viewer.wait_frames(seen + 10)
    await viewer.close()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes read-only folders")
async def test_read_only_folder_refuses_the_clip(
    hass: HomeAssistant, entry: MockConfigEntry, media_root: Path
) -> None:
    """A folder without write permission: the stated error."""
    media_root.mkdir(parents=True)
    media_root.chmod(0o500)
    try:
        with pytest.raises(HomeAssistantError, match="permission denied"):
            await _call(hass, "record_clip", after=1)
    finally:
        media_root.chmod(0o700)


async def test_clip_from_the_buffer_and_after(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    printer: MjpegPrinter,
    media_root: Path,
) -> None:
    """The clip buffer switch: seconds before the call and after, at 20 fps."""
    events = RecordingEvents(hass)
    with pytest.raises(ServiceValidationError) as caught:
        await _call(hass, "record_clip", before=2)
    assert caught.value.translation_key == "clip_buffer_off"
    with pytest.raises(ServiceValidationError):
        await _call(hass, "record_clip", before=0, after=0)

    before = printer.total_connections
    await hass.services.async_call(
        "switch", "turn_on", {"entity_id": CLIP_BUFFER}, blocking=True
    )
    recorder = entry.runtime_data.cameras[0].recorder
    await until(lambda: recorder.buffer is not None and recorder.buffer.span >= 2.0)
    response = await _call(hass, "record_clip", response=True, before=2, after=1)
    result = response[CAMERA]
    probe = await hass.async_add_executor_job(ffprobe, Path(result["path"]))
    # ~3 s at the printer's 20 fps (the buffer's frames, then the live ones).
    assert 40 <= result["frames"] <= 80, result
    assert abs(probe["nb_read_frames"] - result["frames"]) <= 1
    assert 2.0 <= result["duration"] <= 4.5, result
    assert Path(result["path"]).name.startswith("clip_")
    await hass.async_block_till_done()
    assert [e["media_id"] for e in events.of("clip_ready")] == [result["media_id"]]
    # The buffer kept the one connection open; turning it off lets it go.
    assert printer.total_connections - before == 1
    await hass.services.async_call(
        "switch", "turn_off", {"entity_id": CLIP_BUFFER}, blocking=True
    )
    assert recorder.buffer is None
    await until(lambda: printer.open_connections == 0, timeout=15)


async def test_record_clip_button_and_unload_mid_clip(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    media_root: Path,
) -> None:
    """The button starts a 10 s clip; an unload cuts it; setup finishes it."""
    events = RecordingEvents(hass)
    await hass.services.async_call(
        "button", "press", {"entity_id": "button.printer_record_clip"}, blocking=True
    )
    await until(lambda: work_frames(media_root) >= 5, timeout=15)
    assert await hass.config_entries.async_unload(entry.entry_id)
    assert any(media_root.glob("printer/.clip_*.work"))
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    await until(lambda: not hidden(media_root), timeout=30)
    clips = list(media_root.glob("printer/clip_*.mp4"))
    assert len(clips) == 1
    probe = await hass.async_add_executor_job(ffprobe, clips[0])
    assert probe["nb_read_frames"] >= 5
    await until(lambda: bool(events.of("clip_ready")), timeout=10)
    assert len(events.of("clip_ready")) == 1


async def test_actions_refuse_other_targets(
    hass: HomeAssistant, entry: MockConfigEntry
) -> None:
    """Not a PrintCam camera, nothing running: validation errors, not crashes."""
    await async_setup_component(hass, "camera", {})
    with pytest.raises(ServiceValidationError) as caught:
        await hass.services.async_call(
            DOMAIN,
            "start_timelapse",
            {"entity_id": "sensor.printer_viewers"},
            blocking=True,
        )
    assert caught.value.translation_key == "not_printcam_camera"
    with pytest.raises(ServiceValidationError) as caught:
        await _call(hass, "stop_timelapse")
    assert caught.value.translation_key == "no_timelapse"
    await _call(hass, "start_timelapse", interval=5)
    with pytest.raises(ServiceValidationError) as caught:
        await _call(hass, "start_timelapse")
    assert caught.value.translation_key == "timelapse_running"
    await _call(hass, "stop_timelapse")
    await asyncio.sleep(0)


async def test_home_assistant_stopping_keeps_the_timelapse_to_go_on(
    hass: HomeAssistant, entry: MockConfigEntry, media_root: Path
) -> None:
    """Stop event mid-timelapse: capture ends, frames and manifest stay."""
    await _call(hass, "start_timelapse", interval=1)
    await until(lambda: work_frames(media_root) >= 2, timeout=15)
    recorder = entry.runtime_data.cameras[0].recorder
    hass.bus.async_fire(EVENT_HOMEASSISTANT_STOP)
    await hass.async_block_till_done()
    assert not recorder.timelapse_running
    assert recorder.diagnostics()["assembling"] == 0
    work = next(media_root.glob("printer/.timelapse_*.work"))
    manifest = json.loads((work / MANIFEST).read_text())
    assert manifest["state"] == "running"
    assert manifest["last_frame"] > 0
    frames = work_frames(media_root)
    assert frames >= 2
    assert not list(work.glob(f"{FRAMES_DIR}/.*"))
