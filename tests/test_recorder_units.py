"""The recorder's and the actions' edges, one behaviour each.

`tests/test_recorder.py` follows the main paths; here are the parts around
them: reading a frame's size, repairing what a crash left, ffmpeg failing,
hanging or missing (a fake ffmpeg is a small shell script), the frame writer
falling behind or hitting a full disk, the clip buffer's bounds, the
recorder of a real entry (diagnostics, an unreachable printer, a stopped
stream, a removed entry, calls that do not wait) and how the actions find
their cameras (by device, area, an unloaded printer).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
import errno
import io
import json
import os
from pathlib import Path
import shutil
import stat
import threading
import time
from typing import Any
from unittest.mock import patch

from homeassistant.components.ffmpeg import get_ffmpeg_manager
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import (
    area_registry as ar,
    device_registry as dr,
    issue_registry as ir,
)
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.printcam import recorder as recorder_module
from custom_components.printcam.const import DOMAIN
from custom_components.printcam.recorder import (
    FRAMES_DIR,
    MANIFEST,
    WRITE_QUEUE,
    CameraRecorder,
    ClipBuffer,
    RecordingError,
    Video,
    Work,
    _describe,
    _unique_output,
    _Writer,
    async_assemble,
    find_work,
    jpeg_size,
    measured_fps,
)
from printer_sim.jpeg import block_jpeg, frame_number, numbered_jpeg, solid_jpeg
from printer_sim.mjpeg_server import MjpegPrinter

from .conftest import make_entry, setup_entry, until
from .recorder_support import ffprobe, hidden

CAMERA = "camera.printer"
CLIP_BUFFER = "switch.printer_clip_buffer"

needs_ffmpeg = pytest.mark.skipif(
    shutil.which("ffprobe") is None or shutil.which("ffmpeg") is None,
    reason="ffmpeg is not installed",
)


# --- helpers ------------------------------------------------------------------


def manifest(
    name: str = "timelapse_2026-01-02_03-04-05",
    *,
    kind: str = "timelapse",
    entry_id: str = "entry",
    **extra: Any,
) -> dict[str, Any]:
    """Return a manifest as the recorder writes it."""
    return {
        "kind": kind,
        "name": name,
        "entry_id": entry_id,
        "camera": None,
        "printer": "Printer",
        "state": "running",
        **extra,
    }


def make_work(folder: Path, frames: list[bytes], **extra: Any) -> Work:
    """Create a work folder holding `frames` (as the writer would)."""
    work = Work.create(folder, manifest(**extra))
    for jpeg in frames:
        work.write_frame(jpeg)
    work.save()
    return work


def frame_files(work: Work) -> list[str]:
    """Return the names in a work folder's frames folder, sorted."""
    return sorted(item.name for item in (work.path / FRAMES_DIR).iterdir())


def fake_ffmpeg(tmp_path: Path, body: str, name: str = "ffmpeg") -> Path:
    """Write an executable shell script standing in for ffmpeg.

    `$out` is its last argument: the ``.part`` file ffmpeg writes.
    """
    script = tmp_path / "bin" / name
    script.parent.mkdir(exist_ok=True)
    script.write_text(f"#!/bin/sh\nfor out; do :; done\n{body}\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return script


def sleeping_ffmpeg(tmp_path: Path) -> tuple[Path, Path]:
    """Return a fake ffmpeg that starts its output, then hangs; and its pid file.

    It writes its pid a moment after it starts (by then the recorder is
    waiting for it to end, past starting it), then turns into a `sleep`.
    """
    pids = tmp_path / "ffmpeg.pids"
    script = fake_ffmpeg(
        tmp_path,
        f'sleep 0.3\nprintf started > "$out"\necho $$ >> {pids}\nexec sleep 60',
        name="ffmpeg-sleeping",
    )
    return script, pids


def started_pids(pids: Path) -> list[int]:
    """Return the pids a sleeping fake ffmpeg wrote, in start order."""
    if not pids.exists():
        return []
    return [int(line) for line in pids.read_text().split()]


def gone(pid: int) -> bool:
    """Return True if a process neither runs nor waits to be reaped (zombie)."""
    return not Path(f"/proc/{pid}").exists()


async def use_ffmpeg(hass: HomeAssistant, binary: str | Path | None = None) -> None:
    """Set up Home Assistant's ffmpeg; make `binary` the one it runs."""
    assert await async_setup_component(hass, "ffmpeg", {})
    if binary is not None:
        get_ffmpeg_manager(hass).binary = str(binary)


def _pillow_jpeg(width: int, height: int, **save: Any) -> bytes:
    image_module = pytest.importorskip("PIL.Image")
    image = image_module.new("RGB", (width, height), (200, 40, 90))
    out = io.BytesIO()
    image.save(out, "JPEG", **save)
    return out.getvalue()


def _segment(marker: int, payload: bytes) -> bytes:
    return bytes((0xFF, marker)) + (len(payload) + 2).to_bytes(2, "big") + payload


# --- jpeg_size ------------------------------------------------------------------


@pytest.mark.parametrize(("width", "height"), [(16, 16), (37, 21), (1280, 720)])
def test_jpeg_size_of_baseline_frames(width: int, height: int) -> None:
    """The simulator's baseline frames: the size their SOF0 says."""
    assert jpeg_size(solid_jpeg(width, height)) == (width, height)


def test_jpeg_size_skips_segments_before_the_frame_header() -> None:
    """A COM segment (numbered frames) and tables come before SOF0."""
    jpeg = numbered_jpeg(12345)
    assert jpeg[2:4] == b"\xff\xfe"  # the COM segment first
    assert jpeg_size(jpeg) == (16, 16)
    assert jpeg_size(block_jpeg([[0, 255, 0]], 20, 5)) == (20, 5)


def test_jpeg_size_of_a_pillow_colour_jpeg() -> None:
    """A colour (3-component) JPEG with JFIF and Huffman tables."""
    assert jpeg_size(_pillow_jpeg(123, 45)) == (123, 45)
    assert jpeg_size(_pillow_jpeg(640, 481, quality=95, optimize=True)) == (640, 481)


def test_jpeg_size_of_a_progressive_jpeg() -> None:
    """Progressive JPEGs carry SOF2, not SOF0."""
    jpeg = _pillow_jpeg(321, 123, progressive=True)
    assert b"\xff\xc2" in jpeg
    assert b"\xff\xc0" not in jpeg
    assert jpeg_size(jpeg) == (321, 123)


def test_jpeg_size_ignores_a_thumbnail_inside_app1() -> None:
    """An EXIF-style thumbnail is a whole JPEG inside APP1: skipped whole."""
    thumbnail = solid_jpeg(16, 8)
    main = solid_jpeg(96, 64)
    jpeg = main[:2] + _segment(0xE1, b"Exif\x00\x00" + thumbnail) + main[2:]
    assert jpeg_size(jpeg) == (96, 64)


def test_jpeg_size_skips_dht_jpg_and_dac_markers() -> None:
    """C4, C8 and CC are in the SOF range but are not frame headers."""
    main = solid_jpeg(40, 24)
    decoy = b"\x08\x00\x10\x00\x10\x01"  # would read as 16x16
    for marker in (0xC4, 0xC8, 0xCC):
        jpeg = main[:2] + _segment(marker, decoy) + main[2:]
        assert jpeg_size(jpeg) == (40, 24), hex(marker)


def test_jpeg_size_skips_fill_bytes() -> None:
    """Any number of 0xFF fill bytes may come before a marker."""
    main = solid_jpeg(48, 32)
    assert jpeg_size(main[:2] + b"\xff\xff\xff" + main[2:]) == (48, 32)
    sof = main.index(b"\xff\xc0")
    assert jpeg_size(main[:sof] + b"\xff" * 5 + main[sof:]) == (48, 32)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xff\xd8",
        b"not a jpeg at all, just some text",
        b"\xff\xd8\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a",  # no marker
        solid_jpeg(64, 48)[:30],  # torn before the frame header
    ],
    ids=["empty", "soi-only", "text", "no-marker", "torn"],
)
def test_jpeg_size_of_garbage_is_none(data: bytes) -> None:
    """Anything without a frame header: None, never an exception."""
    assert jpeg_size(data) is None


def test_jpeg_size_truncated_inside_the_frame_header() -> None:
    """A frame header cut before its width: None (never a bogus size)."""
    jpeg = solid_jpeg(300, 200)
    sof = jpeg.index(b"\xff\xc0")
    for cut in range(sof, sof + 9):
        assert jpeg_size(jpeg[:cut]) is None, cut
    assert jpeg_size(jpeg[: sof + 10]) == (300, 200)


def test_jpeg_size_zero_dimension_is_none() -> None:
    """A frame header saying 0 lines (DNL-style) gives no size."""
    jpeg = bytearray(solid_jpeg(32, 16))
    sof = jpeg.index(b"\xff\xc0")
    jpeg[sof + 5 : sof + 7] = b"\x00\x00"
    assert jpeg_size(bytes(jpeg)) is None


# --- small helpers -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("err", "reason"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), "the disk is full"),
        (
            OSError(errno.EROFS, "Read-only file system"),
            "the folder is on a read-only file system",
        ),
        (
            PermissionError(errno.EACCES, "Permission denied"),
            "the folder cannot be written (permission denied)",
        ),
        (
            OSError(errno.EPERM, "Operation not permitted"),
            "the folder cannot be written (permission denied)",
        ),
        (OSError(errno.EIO, "Input/output error"), "Input/output error"),
        (OSError("something odd"), "something odd"),
    ],
    ids=["ENOSPC", "EROFS", "EACCES", "EPERM", "EIO", "no-errno"],
)
def test_describe_storage_errors(err: OSError, reason: str) -> None:
    """Storage errors in words a user acts on; others as the system says."""
    assert _describe(err) == reason


def test_video_duration_and_event_data(tmp_path: Path) -> None:
    """Duration is frames / fps (rounded); no fps is no duration."""
    video = Video("clip", tmp_path / "clip_x.mp4", "printer", 31, 15.0)
    assert video.duration == 2.07
    assert video.media_id == "media-source://printcam/printer/clip_x.mp4"
    assert video.event_data() == {
        "media_id": "media-source://printcam/printer/clip_x.mp4",
        "path": str(tmp_path / "clip_x.mp4"),
        "frames": 31,
        "duration": 2.07,
    }
    assert Video("clip", tmp_path / "a.mp4", "p", 10, 0.0).duration == 0.0


def test_unique_output_never_reuses_a_name(tmp_path: Path) -> None:
    """An existing video is never overwritten: _2, _3, ..."""
    assert _unique_output(tmp_path, "clip") == tmp_path / "clip.mp4"
    (tmp_path / "clip.mp4").write_bytes(b"x")
    assert _unique_output(tmp_path, "clip") == tmp_path / "clip_2.mp4"
    (tmp_path / "clip_2.mp4").write_bytes(b"x")
    assert _unique_output(tmp_path, "clip") == tmp_path / "clip_3.mp4"


# --- ClipBuffer and measured_fps ----------------------------------------------------


def test_clip_buffer_is_bounded_in_seconds() -> None:
    """Frames older than `seconds` before the newest go."""
    buffer = ClipBuffer(seconds=5.0, max_bytes=10**9)
    for second in range(11):
        buffer.add(bytes([second]) * 10, 100.0 + second)
    assert [at for at, _ in buffer.frames] == [105.0 + s for s in range(6)]
    assert buffer.bytes == 60
    assert buffer.span == 5.0


def test_clip_buffer_is_bounded_in_bytes() -> None:
    """Over the byte budget the oldest frames go; the count stays exact."""
    buffer = ClipBuffer(seconds=1000.0, max_bytes=250)
    for index in range(10):
        buffer.add(bytes([index]) * 100, float(index))
        assert buffer.bytes <= 250
        assert buffer.bytes == sum(len(jpeg) for _, jpeg in buffer.frames)
    assert [jpeg[0] for _, jpeg in buffer.frames] == [8, 9]
    # A frame over the whole budget cannot be kept (nothing is).
    buffer.add(b"x" * 300, 10.0)
    assert buffer.bytes == 0
    assert not buffer.frames


def test_clip_buffer_since_and_span() -> None:
    """`since` is inclusive; `span` needs two frames."""
    buffer = ClipBuffer()
    assert buffer.span == 0.0
    assert buffer.since(0.0) == []
    buffer.add(b"a", 10.0)
    assert buffer.span == 0.0
    buffer.add(b"b", 10.5)
    buffer.add(b"c", 12.0)
    assert buffer.span == 2.0
    assert buffer.since(10.5) == [(10.5, b"b"), (12.0, b"c")]
    assert buffer.since(12.01) == []
    assert buffer.since(-1.0) == list(buffer.frames)


def test_measured_fps() -> None:
    """The rate frames came at, clamped to 1-60; the fallback without one."""
    assert measured_fps([], 15.0) == 15.0
    assert measured_fps([3.0], 15.0) == 15.0
    assert measured_fps([3.0, 3.0], 15.0) == 15.0  # no time passed
    assert measured_fps([4.0, 3.0], 15.0) == 15.0  # went backwards
    assert measured_fps([i / 20 for i in range(41)], 15.0) == 20.0
    assert measured_fps([0.0, 0.3, 0.6, 1.0], 15.0) == 3.0
    assert measured_fps([0.0, 7.0], 15.0) == 1.0  # slower than 1 fps
    assert measured_fps([i / 1000 for i in range(100)], 15.0) == 60.0
    assert measured_fps([0.0, 0.1, 0.3], 1.0) == pytest.approx(6.667)


# --- Work.load and find_work ---------------------------------------------------------


def test_work_load_ignores_a_missing_or_invalid_manifest(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """No manifest, bad JSON, not an object, no name: not a recording."""
    path = tmp_path / "printer" / ".timelapse_x.work"
    (path / FRAMES_DIR).mkdir(parents=True)
    (path / FRAMES_DIR / "000001.jpg").write_bytes(numbered_jpeg(1))
    assert Work.load(path) is None
    (path / MANIFEST).write_text("{not json")
    assert Work.load(path) is None
    assert "Ignoring recording folder" in caplog.text
    (path / MANIFEST).write_text("[1, 2]")
    assert Work.load(path) is None
    (path / MANIFEST).write_text(json.dumps({"kind": "clip"}))
    assert Work.load(path) is None
    # Nothing was touched.
    assert (path / FRAMES_DIR / "000001.jpg").read_bytes() == numbered_jpeg(1)


def test_work_load_repairs_gaps_torn_frames_and_temp_files(tmp_path: Path) -> None:
    """Whole frames are kept in order and renumbered from 1; the rest goes."""
    path = tmp_path / "printer" / ".timelapse_x.work"
    frames = path / FRAMES_DIR
    frames.mkdir(parents=True)
    (path / MANIFEST).write_text(json.dumps(manifest(last_frame=None)))
    for number in (2, 3, 7, 12):
        (frames / f"{number:06d}.jpg").write_bytes(numbered_jpeg(number))
    (frames / "000005.jpg").write_bytes(numbered_jpeg(5)[:60])  # torn: no EOI
    (frames / "000009.jpg").write_bytes(b"")  # empty
    (frames / "000010.jpg").write_bytes(b"GIF89a" + numbered_jpeg(10)[2:])  # no SOI
    (frames / ".frame.tmp").write_bytes(numbered_jpeg(13)[:50])
    (frames / ".000014.jpg").write_bytes(numbered_jpeg(14))  # hidden: not a frame
    (frames / "notes.txt").write_text("not a frame")

    work = Work.load(path)

    assert work is not None
    assert work.frames == 4
    assert frame_files(work) == [f"{n:06d}.jpg" for n in range(1, 5)]
    kept = [frame_number((frames / f"{n:06d}.jpg").read_bytes()) for n in range(1, 5)]
    assert kept == [2, 3, 7, 12]
    assert work.name == "timelapse_2026-01-02_03-04-05"
    assert work.kind == "timelapse"
    assert work.folder == tmp_path / "printer"
    # Loading again finds nothing more to repair.
    again = Work.load(path)
    assert again is not None
    assert again.frames == 4
    assert frame_files(again) == frame_files(work)


def test_work_load_takes_the_last_frame_time_from_the_disk(tmp_path: Path) -> None:
    """A frame written after the manifest was saved still counts as recent."""
    path = tmp_path / "printer" / ".timelapse_x.work"
    (path / FRAMES_DIR).mkdir(parents=True)
    (path / MANIFEST).write_text(json.dumps(manifest(last_frame=1000.0)))
    written = time.time() - 30
    os.utime(path / FRAMES_DIR, (written, written))
    work = Work.load(path)
    assert work is not None
    assert work.manifest["last_frame"] == pytest.approx(written, abs=1)
    assert work.frames == 0
    # A manifest newer than the folder keeps its own time.
    (path / MANIFEST).write_text(json.dumps(manifest(last_frame=written + 20)))
    work = Work.load(path)
    assert work is not None
    assert work.manifest["last_frame"] == written + 20


def test_work_load_recreates_a_missing_frames_folder(tmp_path: Path) -> None:
    """No frames folder: zero frames (and a folder to write into)."""
    path = tmp_path / "printer" / ".clip_x.work"
    path.mkdir(parents=True)
    (path / MANIFEST).write_text(json.dumps(manifest(kind="clip")))
    work = Work.load(path)
    assert work is not None
    assert work.frames == 0
    assert "last_frame" not in work.manifest
    assert (path / FRAMES_DIR).is_dir()


def test_work_load_survives_a_folder_among_the_frames(tmp_path: Path) -> None:
    """A folder inside frames/ (a NAS indexer's, say) is not a frame."""
    work = make_work(tmp_path / "printer", [numbered_jpeg(1), numbered_jpeg(2)])
    (work.path / FRAMES_DIR / "@eaDir").mkdir()
    loaded = Work.load(work.path)
    assert loaded is not None
    assert loaded.frames == 2


def test_work_first_frame(tmp_path: Path) -> None:
    """The first frame sets the video's size; none yet is None."""
    work = make_work(tmp_path / "printer", [])
    assert work.first_frame() is None
    work.write_frame(numbered_jpeg(7))
    work.write_frame(numbered_jpeg(8))
    assert work.first_frame() == numbered_jpeg(7)
    assert work.manifest["first_frame"] == "000001.jpg"
    assert not (work.path / FRAMES_DIR / ".frame.tmp").exists()


def test_work_create_never_shares_a_work_folder(tmp_path: Path) -> None:
    """Recordings named alike (the same second) get _2, _3; none is touched."""
    first = make_work(tmp_path / "printer", [numbered_jpeg(1)])
    second = Work.create(tmp_path / "printer", manifest(state="second"))
    third = Work.create(tmp_path / "printer", manifest(state="third"))
    base = "timelapse_2026-01-02_03-04-05"
    assert [first.name, second.name, third.name] == [base, f"{base}_2", f"{base}_3"]
    assert second.path == tmp_path / "printer" / f".{base}_2.work"
    saved = json.loads((second.path / MANIFEST).read_text())
    assert (saved["name"], saved["state"]) == (f"{base}_2", "second")
    assert json.loads((first.path / MANIFEST).read_text())["state"] == "running"
    assert frame_files(first) == ["000001.jpg"]
    assert frame_files(second) == frame_files(third) == []


def test_find_work_returns_only_the_entry_s_folders(tmp_path: Path) -> None:
    """Every printer folder is searched; other entries and dot-folders are not."""
    root = tmp_path / "printcam"
    assert find_work(root, "mine") == []  # no root yet
    mine_a = make_work(root / "alpha", [numbered_jpeg(1)], entry_id="mine")
    mine_b = make_work(
        root / "beta", [numbered_jpeg(1), numbered_jpeg(2)], entry_id="mine", name="b"
    )
    make_work(root / "alpha", [numbered_jpeg(1)], entry_id="other", name="c")
    make_work(root / ".trash", [numbered_jpeg(1)], entry_id="mine", name="d")
    # A finished video and thumbnail, a file at the top, broken manifests.
    (root / "alpha" / "timelapse_old.mp4").write_bytes(b"video")
    (root / "stray.txt").write_text("x")
    for name, text in (("e", "[]"), ("f", "{bad"), ("g", '"text"')):
        broken = root / "alpha" / f".{name}.work"
        broken.mkdir()
        (broken / MANIFEST).write_text(text)
    (root / "alpha" / ".h.work").mkdir()  # no manifest
    # A dot-folder not named like a work folder.
    not_work = root / "alpha" / ".cache"
    not_work.mkdir()
    (not_work / MANIFEST).write_text(json.dumps(manifest(entry_id="mine")))

    found = find_work(root, "mine")

    assert [w.path for w in found] == [mine_a.path, mine_b.path]
    assert [w.frames for w in found] == [1, 2]
    assert find_work(root, "nobody") == []
    # A file where the root should be: nothing, no error.
    assert find_work(root / "stray.txt", "mine") == []


# --- async_assemble -----------------------------------------------------------------


async def test_assemble_without_frames_removes_the_folder(
    hass: HomeAssistant, tmp_path: Path
) -> None:
    """Zero frames: nothing to make; the empty work folder goes."""
    work = make_work(tmp_path / "printer", [])
    with pytest.raises(RecordingError) as caught:
        await async_assemble(hass, work)
    assert caught.value.reason == "no frames were recorded"
    assert not caught.value.storage
    assert not work.path.exists()
    assert list((tmp_path / "printer").iterdir()) == []


@needs_ffmpeg
async def test_assemble_names_the_video_after_an_existing_one(
    hass: HomeAssistant, tmp_path: Path
) -> None:
    """A video of that name exists: `_2`, its own thumbnail, the first untouched."""
    await use_ffmpeg(hass)
    folder = tmp_path / "printer"
    frames = [numbered_jpeg(n) for n in range(1, 6)]
    work = make_work(folder, frames, fps=12)
    (folder / f"{work.name}.mp4").write_bytes(b"an older video")
    (folder / f"{work.name}.jpg").write_bytes(b"its thumbnail")

    video = await async_assemble(hass, work)

    assert video.path == folder / f"{work.name}_2.mp4"
    assert (video.kind, video.folder, video.frames, video.fps) == (
        "timelapse",
        "printer",
        5,
        12.0,
    )
    assert video.duration == round(5 / 12, 2)
    assert (folder / f"{work.name}.mp4").read_bytes() == b"an older video"
    assert (folder / f"{work.name}.jpg").read_bytes() == b"its thumbnail"
    assert (folder / f"{work.name}_2.jpg").read_bytes() == frames[-1]
    probe = await hass.async_add_executor_job(ffprobe, video.path)
    assert probe["nb_read_frames"] == 5
    assert (probe["codec_name"], probe["width"], probe["height"]) == ("h264", 16, 16)
    assert not work.path.exists()
    assert hidden(folder) == []


@needs_ffmpeg
async def test_assemble_fits_later_frames_into_the_first_frame_s_size(
    hass: HomeAssistant, tmp_path: Path
) -> None:
    """A resolution change halfway still encodes, at the first size (even)."""
    await use_ffmpeg(hass)
    frames = [
        solid_jpeg(67, 45, 60),
        solid_jpeg(67, 45, 90),
        solid_jpeg(160, 40, 120),  # wider
        solid_jpeg(20, 90, 150),  # taller
        solid_jpeg(640, 480, 200),  # larger
    ]
    work = make_work(tmp_path / "printer", frames)
    video = await async_assemble(hass, work)
    probe = await hass.async_add_executor_job(ffprobe, video.path)
    assert (probe["width"], probe["height"]) == (66, 44)
    assert probe["nb_read_frames"] == 5
    assert probe["pix_fmt"] == "yuv420p"
    # No fps in the manifest: the timelapse default.
    assert video.fps == 30.0


@needs_ffmpeg
async def test_assemble_a_first_frame_without_a_size(
    hass: HomeAssistant, tmp_path: Path
) -> None:
    """A first frame whose header says nothing: ffmpeg's own size, made even."""
    await use_ffmpeg(hass)
    first = bytearray(solid_jpeg(35, 21))
    # Hide the frame header from jpeg_size: a decoder still finds it.
    first[2:2] = b"\xff\x01"  # TEM: a marker with no length
    work = make_work(tmp_path / "printer", [bytes(first), solid_jpeg(35, 21)])
    assert jpeg_size(work.first_frame() or b"") is None
    video = await async_assemble(hass, work)
    probe = await hass.async_add_executor_job(ffprobe, video.path)
    assert (probe["width"], probe["height"]) == (34, 20)


async def test_assemble_after_a_crash_that_followed_assembly(
    hass: HomeAssistant, tmp_path: Path
) -> None:
    """The manifest names a video that exists: no second one, the folder goes."""
    await use_ffmpeg(hass, tmp_path / "no-such-ffmpeg")  # must not run
    folder = tmp_path / "printer"
    work = make_work(folder, [numbered_jpeg(1), numbered_jpeg(2)], fps=10)
    (folder / f"{work.name}.mp4").write_bytes(b"the video")
    work.manifest.update(output=f"{work.name}.mp4", state="assembled")
    work.save()
    loaded = Work.load(work.path)
    assert loaded is not None

    video = await async_assemble(hass, loaded)

    assert video.path == folder / f"{work.name}.mp4"
    assert (video.frames, video.fps) == (2, 10.0)
    assert not work.path.exists()
    assert sorted(p.name for p in folder.iterdir()) == [f"{work.name}.mp4"]
    assert video.path.read_bytes() == b"the video"


async def test_assemble_re_encodes_when_the_named_video_is_missing(
    hass: HomeAssistant, tmp_path: Path
) -> None:
    """The manifest names a video that never got there: ffmpeg runs again."""
    script = fake_ffmpeg(tmp_path, 'printf video > "$out"')
    await use_ffmpeg(hass, script)
    folder = tmp_path / "printer"
    work = make_work(folder, [numbered_jpeg(1)], output="gone.mp4", state="assembled")
    video = await async_assemble(hass, work)
    assert video.path == folder / f"{work.name}.mp4"
    assert video.path.read_bytes() == b"video"
    assert not work.path.exists()


async def test_assemble_ffmpeg_failing_keeps_the_frames(
    hass: HomeAssistant, tmp_path: Path
) -> None:
    """ffmpeg exits 1: its last stderr line, no .part, the frames stay."""
    script = fake_ffmpeg(
        tmp_path,
        'printf half > "$out"\n'
        "echo 'first complaint' >&2\n"
        "echo '[mp4 @ 0x5] Could not write header: Invalid argument' >&2\n"
        "exit 1",
    )
    await use_ffmpeg(hass, script)
    folder = tmp_path / "printer"
    work = make_work(folder, [numbered_jpeg(1), numbered_jpeg(2)])

    with pytest.raises(RecordingError) as caught:
        await async_assemble(hass, work)

    assert caught.value.reason == (
        "ffmpeg failed: [mp4 @ 0x5] Could not write header: Invalid argument"
    )
    assert not caught.value.storage
    assert frame_files(work) == ["000001.jpg", "000002.jpg"]
    assert (work.path / MANIFEST).is_file()
    assert sorted(p.name for p in folder.iterdir()) == [work.path.name]


@pytest.mark.parametrize(
    ("stderr", "storage"),
    [
        ("out.mp4: No space left on device", True),
        ("out.mp4: Read-only file system", True),
        ("out.mp4: Permission denied", True),
        ("Error while decoding stream #0:0", False),
    ],
)
async def test_assemble_ffmpeg_storage_failures(
    hass: HomeAssistant, tmp_path: Path, stderr: str, storage: bool
) -> None:
    """ffmpeg's disk errors are storage errors (a repair issue says where)."""
    script = fake_ffmpeg(tmp_path, f"echo 'x' >&2\necho '{stderr}' >&2\nexit 1")
    await use_ffmpeg(hass, script)
    work = make_work(tmp_path / "printer", [numbered_jpeg(1)])
    with pytest.raises(RecordingError) as caught:
        await async_assemble(hass, work)
    assert caught.value.reason == f"ffmpeg failed: {stderr}"
    assert caught.value.storage is storage


async def test_assemble_ffmpeg_failing_silently(
    hass: HomeAssistant, tmp_path: Path
) -> None:
    """No stderr: the exit status says what happened."""
    await use_ffmpeg(hass, fake_ffmpeg(tmp_path, "exit 3"))
    work = make_work(tmp_path / "printer", [numbered_jpeg(1)])
    with pytest.raises(RecordingError, match=r"^ffmpeg failed: exit status 3$"):
        await async_assemble(hass, work)
    assert work.path.exists()


async def test_assemble_without_an_ffmpeg_to_run(
    hass: HomeAssistant, tmp_path: Path
) -> None:
    """A binary that does not exist: cannot run ffmpeg; the frames stay."""
    await use_ffmpeg(hass, tmp_path / "missing" / "ffmpeg")
    work = make_work(tmp_path / "printer", [numbered_jpeg(1)])
    with pytest.raises(RecordingError) as caught:
        await async_assemble(hass, work)
    assert caught.value.reason == "cannot run ffmpeg: No such file or directory"
    assert frame_files(work) == ["000001.jpg"]
    assert hidden(tmp_path / "printer") == [
        work.path.name,
        f"{work.path.name}/{FRAMES_DIR}",
        f"{work.path.name}/{FRAMES_DIR}/000001.jpg",
        f"{work.path.name}/{MANIFEST}",
    ]


async def test_assemble_cancelled_kills_and_reaps_ffmpeg(
    hass: HomeAssistant, tmp_path: Path
) -> None:
    """Cancelled mid-encode: ffmpeg killed and reaped, .part gone, frames kept."""
    script, pids = sleeping_ffmpeg(tmp_path)
    await use_ffmpeg(hass, script)
    folder = tmp_path / "printer"
    work = make_work(folder, [numbered_jpeg(1), numbered_jpeg(2)])
    task = hass.async_create_task(async_assemble(hass, work))
    await until(lambda: bool(started_pids(pids)))
    part = folder / f".{work.name}.mp4.part"
    await until(part.exists)
    (pid,) = started_pids(pids)
    assert not gone(pid)

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert gone(pid)  # killed, and waited for: no zombie either
    assert not part.exists()
    assert frame_files(work) == ["000001.jpg", "000002.jpg"]
    assert json.loads((work.path / MANIFEST).read_text())["state"] == "running"
    assert sorted(p.name for p in folder.iterdir()) == [work.path.name]


async def test_assemble_cancelled_while_ffmpeg_starts(
    hass: HomeAssistant, tmp_path: Path
) -> None:
    """Cancelled before ffmpeg's pipes are connected: no .part either.

    asyncio kills and reaps a process whose start is cancelled, then raises
    CancelledError from create_subprocess_exec; the wrapper below does just
    that, holding the start open long enough to cancel it there.
    """
    await use_ffmpeg(hass, fake_ffmpeg(tmp_path, 'printf half > "$out"\nexec sleep 60'))
    folder = tmp_path / "printer"
    work = make_work(folder, [numbered_jpeg(1)])
    part = folder / f".{work.name}.mp4.part"
    real_exec = asyncio.create_subprocess_exec
    started: list[asyncio.subprocess.Process] = []

    async def slow_start(*args: Any, **kwargs: Any) -> asyncio.subprocess.Process:
        proc = await real_exec(*args, **kwargs)
        started.append(proc)
        try:
            await asyncio.Event().wait()  # the pipes are still connecting
        except asyncio.CancelledError:
            proc.kill()
            await proc.wait()
            raise
        return proc

    with patch.object(recorder_module.asyncio, "create_subprocess_exec", slow_start):
        task = hass.async_create_task(async_assemble(hass, work))
        await until(lambda: bool(started) and part.exists())
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert gone(started[0].pid)
    assert frame_files(work) == ["000001.jpg"]
    assert not part.exists()


@needs_ffmpeg
async def test_assemble_a_thumbnail_that_cannot_be_written(
    hass: HomeAssistant, tmp_path: Path
) -> None:
    """Finishing fails (a folder where the thumbnail goes): no video, frames kept."""
    await use_ffmpeg(hass)
    folder = tmp_path / "printer"
    work = make_work(folder, [numbered_jpeg(1), numbered_jpeg(2)])
    (folder / f"{work.name}.jpg").mkdir()
    (folder / f"{work.name}.jpg" / "keep").write_text("x")
    with pytest.raises(RecordingError) as caught:
        await async_assemble(hass, work)
    assert caught.value.storage
    assert caught.value.reason == "Is a directory"
    assert frame_files(work) == ["000001.jpg", "000002.jpg"]
    assert not list(folder.glob("*.mp4"))
    assert not list(folder.glob("*.part"))


# --- _Writer ----------------------------------------------------------------------


async def test_writer_drops_and_counts_what_the_queue_cannot_hold(
    hass: HomeAssistant, tmp_path: Path
) -> None:
    """Frames beyond the queue are dropped and counted; the rest are written."""
    work = make_work(tmp_path / "printer", [])
    writer = _Writer(hass, work, "test writer")
    for number in range(1, WRITE_QUEUE + 41):
        writer.put(numbered_jpeg(number))  # faster than any disk: no await
    assert writer.dropped == 40
    await until(lambda: work.frames == WRITE_QUEUE, timeout=20)
    await writer.close()
    assert writer.error is None
    assert writer.failed.cancelled()
    assert work.frames == WRITE_QUEUE
    last = work.path / FRAMES_DIR / f"{WRITE_QUEUE:06d}.jpg"
    assert frame_number(last.read_bytes()) == WRITE_QUEUE  # the oldest are kept
    assert len(frame_files(work)) == WRITE_QUEUE


@pytest.mark.parametrize("queued", [WRITE_QUEUE - 1, WRITE_QUEUE])
async def test_writer_close_writes_a_full_queue(
    hass: HomeAssistant, tmp_path: Path, queued: int
) -> None:
    """Closing writes what is queued, even when the disk lags a queue behind."""
    work = make_work(tmp_path / "printer", [])
    writer = _Writer(hass, work, "test writer")
    for number in range(1, queued + 1):
        writer.put(numbered_jpeg(number))
    assert writer.dropped == 0
    await writer.close()
    assert writer.error is None
    assert work.frames == queued


async def test_writer_on_a_full_disk(hass: HomeAssistant, tmp_path: Path) -> None:
    """ENOSPC: the error says so, `failed` resolves, later frames are ignored."""
    work = make_work(tmp_path / "printer", [numbered_jpeg(1)])
    tmp = work.path / FRAMES_DIR / ".frame.tmp"
    tmp.symlink_to("/dev/full")
    writer = _Writer(hass, work, "test writer")
    writer.put(numbered_jpeg(2))
    async with asyncio.timeout(5):
        await writer.failed
    assert writer.error is not None
    assert writer.error.reason == "the disk is full"
    assert writer.error.storage
    assert work.frames == 1
    assert not tmp.is_symlink()  # the temporary file was cleaned up
    writer.put(numbered_jpeg(3))
    assert writer.dropped == 0
    await writer.close()
    assert work.frames == 1
    assert frame_files(work) == ["000001.jpg"]


async def test_writer_when_the_work_folder_is_gone(
    hass: HomeAssistant, tmp_path: Path
) -> None:
    """The work folder removed under it: the system's reason, `failed` done."""
    work = make_work(tmp_path / "printer", [])
    shutil.rmtree(work.path)
    writer = _Writer(hass, work, "test writer")
    writer.put(numbered_jpeg(1))
    writer.put(numbered_jpeg(2))
    async with asyncio.timeout(5):
        await writer.failed
    assert writer.error is not None
    assert writer.error.reason == "No such file or directory"
    assert writer.error.storage
    assert not writer.failed.cancelled()
    await writer.close()
    assert work.frames == 0


async def test_writer_keeps_writing_when_closing_is_given_up(
    hass: HomeAssistant, tmp_path: Path
) -> None:
    """A caller cancelled while closing: the queued frames are still written."""
    work = make_work(tmp_path / "printer", [])
    writing = threading.Event()
    release = threading.Event()
    write_frame = Work.write_frame

    def slow_write(self: Work, jpeg: bytes) -> None:
        writing.set()
        release.wait(10)
        write_frame(self, jpeg)

    writer = _Writer(hass, work, "test writer")
    with patch.object(Work, "write_frame", slow_write):
        for number in range(1, 4):
            writer.put(numbered_jpeg(number))
        closing = hass.async_create_task(writer.close())
        await until(writing.is_set)
        closing.cancel()
        with pytest.raises(asyncio.CancelledError):
            await closing
        release.set()
        await until(lambda: work.frames == 3)
    await writer.close()
    assert writer.error is None
    assert [
        frame_number(p.read_bytes()) for p in sorted(work.path.glob("*/*.jpg"))
    ] == [
        1,
        2,
        3,
    ]


async def test_writer_cancel_stops_without_writing(
    hass: HomeAssistant, tmp_path: Path
) -> None:
    """cancel() (an unload) writes nothing more; `failed` never fires."""
    work = make_work(tmp_path / "printer", [])
    writer = _Writer(hass, work, "test writer")
    for number in range(10):
        writer.put(numbered_jpeg(number))
    writer.cancel()
    await writer.close()  # after cancel: returns, raises nothing
    assert writer.failed.cancelled()
    assert writer.error is None
    assert work.frames == 0


# --- CameraRecorder through a real entry ---------------------------------------------


@pytest.fixture
def media_root(hass: HomeAssistant, tmp_path: Path) -> Path:
    """Point Home Assistant's media folder at a temporary one."""
    hass.config.media_dirs = {"local": str(tmp_path / "media")}
    return tmp_path / "media" / "printcam"


@pytest.fixture
async def entry(
    hass: HomeAssistant, printer: MjpegPrinter, media_root: Path
) -> AsyncIterator[MockConfigEntry]:
    """A loaded PrintCam entry of the fake printer (20 fps), idle."""
    entry = await setup_entry(hass, make_entry(printer.url))
    yield entry
    if (
        hass.config_entries.async_get_entry(entry.entry_id) is not None
        and entry.state is ConfigEntryState.LOADED
    ):
        await hass.config_entries.async_unload(entry.entry_id)


def _recorder(entry: MockConfigEntry) -> CameraRecorder:
    return entry.runtime_data.cameras[0].recorder


def _events(recorder: CameraRecorder) -> list[tuple[str, dict[str, Any]]]:
    events: list[tuple[str, dict[str, Any]]] = []
    recorder.add_listener(lambda kind, data: events.append((kind, data)))
    return events


def _of(events: list[tuple[str, dict[str, Any]]], kind: str) -> list[dict[str, Any]]:
    return [data for event_type, data in events if event_type == kind]


async def _call(
    hass: HomeAssistant,
    service: str,
    *,
    response: bool = False,
    target: dict[str, Any] | None = None,
    **data: Any,
) -> Any:
    return await hass.services.async_call(
        DOMAIN,
        service,
        {**(target or {"entity_id": CAMERA}), **data},
        blocking=True,
        return_response=response,
    )


@needs_ffmpeg
async def test_diagnostics_while_recording(
    hass: HomeAssistant, entry: MockConfigEntry, media_root: Path
) -> None:
    """What the recorder does, in numbers: timelapse, buffer, clips, errors."""
    recorder = _recorder(entry)
    assert recorder.diagnostics() == {
        "folder": "printcam/printer",
        "timelapse": None,
        "clips_recording": 0,
        "assembling": 0,
        "clip_buffer": None,
        "last_error": None,
    }
    await _call(hass, "start_timelapse", interval=1, fps=5)
    capture = recorder.timelapse
    assert capture is not None
    await until(lambda: capture.work.frames >= 2, timeout=15)
    await hass.services.async_call(
        "switch", "turn_on", {"entity_id": CLIP_BUFFER}, blocking=True
    )
    buffer = recorder.buffer
    assert buffer is not None
    await until(lambda: buffer.span >= 1.0, timeout=10)
    await _call(hass, "record_clip", after=1)

    diag = recorder.diagnostics()

    timelapse = diag["timelapse"]
    assert timelapse["name"] == capture.work.name
    assert timelapse["name"].startswith("timelapse_")
    assert (timelapse["interval"], timelapse["fps"]) == (1.0, 5.0)
    assert timelapse["frames"] >= 2
    assert timelapse["frames_dropped"] == 0
    assert diag["clip_buffer"] == {
        "frames": len(buffer.frames),
        "bytes": sum(len(jpeg) for _, jpeg in buffer.frames),
        "seconds": round(buffer.span, 1),
    }
    assert diag["clip_buffer"]["seconds"] >= 1.0
    assert diag["clips_recording"] == 1
    assert diag["last_error"] is None
    json.dumps(diag)  # plain data
    await until(lambda: recorder.diagnostics()["clips_recording"] == 0, timeout=30)
    await _call(hass, "stop_timelapse")
    await until(lambda: recorder.diagnostics()["assembling"] == 0, timeout=30)
    assert recorder.diagnostics()["timelapse"] is None
    assert len(list(media_root.glob("printer/*.mp4"))) == 2


async def test_clip_of_an_unreachable_printer(
    hass: HomeAssistant, entry: MockConfigEntry, printer: MjpegPrinter, media_root: Path
) -> None:
    """No frames come: recording_failed (no frames), an issue, nothing left."""
    recorder = _recorder(entry)
    events = _events(recorder)
    printer.set_mode("status_500")
    response = await _call(hass, "record_clip", response=True, after=1)
    assert response == {CAMERA: {"media_id": None}}
    assert _of(events, "recording_failed") == [
        {
            "kind": "clip",
            "error": "no frames were recorded",
            "folder": str(media_root / "printer"),
        }
    ]
    assert recorder.last_error == "no frames were recorded"
    issue = ir.async_get(hass).async_get_issue(
        DOMAIN, f"recording_failed_{entry.entry_id}"
    )
    assert issue is not None
    assert issue.translation_key == "recording_not_made"  # not the disk
    assert issue.translation_placeholders["error"] == "no frames were recorded"
    assert list((media_root / "printer").iterdir()) == []
    assert not _of(events, "clip_ready")


async def test_timelapse_reopens_a_stopped_stream(
    hass: HomeAssistant, entry: MockConfigEntry, printer: MjpegPrinter, media_root: Path
) -> None:
    """The upstream stopped mid-timelapse: the next tick opens it again."""
    stream = entry.runtime_data.stream
    recorder = _recorder(entry)
    await _call(hass, "start_timelapse", interval=1)
    capture = recorder.timelapse
    assert capture is not None
    await until(lambda: capture.work.frames >= 2, timeout=15)
    connections = printer.total_connections

    await stream.async_stop_upstream()
    await until(lambda: not stream.running)
    last_sent = frame_number(printer.frames_sent[-1])
    assert last_sent is not None

    def newer_frame_written() -> bool:
        latest = capture.work.path / FRAMES_DIR / f"{capture.work.frames:06d}.jpg"
        if capture.work.frames == 0 or not latest.exists():
            return False
        number = frame_number(latest.read_bytes())
        return number is not None and number > last_sent

    await until(newer_frame_written, timeout=15)
    assert stream.running
    assert printer.total_connections == connections + 1
    assert capture.writer.error is None
    assert recorder.timelapse is capture


@needs_ffmpeg
async def test_removing_the_entry_mid_timelapse_still_makes_the_video(
    hass: HomeAssistant, entry: MockConfigEntry, media_root: Path
) -> None:
    """The printer removed while recording: its frames become a video."""
    recorder = _recorder(entry)
    await _call(hass, "start_timelapse", interval=1, fps=5)
    capture = recorder.timelapse
    assert capture is not None
    await until(lambda: capture.work.frames >= 2, timeout=15)

    await hass.config_entries.async_remove(entry.entry_id)

    assert hass.config_entries.async_get_entry(entry.entry_id) is None
    frames = capture.work.frames
    await until(
        lambda: bool(list(media_root.glob("printer/timelapse_*.mp4")))
        and not hidden(media_root),
        timeout=30,
    )
    (video,) = media_root.glob("printer/timelapse_*.mp4")
    assert video.stem == capture.work.name
    probe = await hass.async_add_executor_job(ffprobe, video)
    assert probe["nb_read_frames"] == frames
    assert video.with_suffix(".jpg").is_file()


async def test_actions_without_a_response_do_not_wait_for_ffmpeg(
    hass: HomeAssistant, entry: MockConfigEntry, media_root: Path, tmp_path: Path
) -> None:
    """stop_timelapse and record_clip return at once; an unload kills ffmpeg.

    ffmpeg hangs: the calls return anyway; unloading kills both encoders
    (reaped, no .part left) and keeps the frames for the next setup, which
    makes the videos.
    """
    script, pids = sleeping_ffmpeg(tmp_path)
    get_ffmpeg_manager(hass).binary = str(script)
    recorder = _recorder(entry)
    await _call(hass, "start_timelapse", interval=1)
    capture = recorder.timelapse
    assert capture is not None
    await until(lambda: capture.work.frames >= 1, timeout=15)

    async with asyncio.timeout(5):
        assert await _call(hass, "stop_timelapse") is None
    await until(lambda: len(started_pids(pids)) == 1, timeout=10)
    assert recorder.diagnostics()["assembling"] == 1

    async with asyncio.timeout(5):
        assert await _call(hass, "record_clip", after=0.5) is None
    assert recorder.diagnostics()["clips_recording"] == 1
    await until(lambda: len(started_pids(pids)) == 2, timeout=10)
    # Both encoders hang; nothing is finished.
    assert recorder.diagnostics()["assembling"] == 1
    assert recorder.diagnostics()["clips_recording"] == 1
    assert not list(media_root.glob("printer/*.mp4"))

    assert await hass.config_entries.async_unload(entry.entry_id)

    for pid in started_pids(pids):
        assert gone(pid)
    works = sorted(p.name.split("_")[0] for p in media_root.glob("printer/.*.work"))
    assert works == [".clip", ".timelapse"]
    assert not list(media_root.glob("printer/.*.part"))

    if shutil.which("ffmpeg") is None:
        return
    get_ffmpeg_manager(hass).binary = "ffmpeg"
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    await until(lambda: not hidden(media_root), timeout=30)
    names = sorted(p.name.split("_")[0] for p in media_root.glob("printer/*.mp4"))
    assert names == ["clip", "timelapse"]


async def test_response_of_a_failed_clip_is_no_media(
    hass: HomeAssistant, entry: MockConfigEntry, media_root: Path, tmp_path: Path
) -> None:
    """With a response, a clip ffmpeg fails to make answers media_id None."""
    get_ffmpeg_manager(hass).binary = str(
        fake_ffmpeg(tmp_path, "echo 'Unknown encoder libx264' >&2\nexit 1")
    )
    events = _events(_recorder(entry))
    response = await _call(hass, "record_clip", response=True, after=0.5)
    assert response == {CAMERA: {"media_id": None}}
    (failed,) = _of(events, "recording_failed")
    assert failed["error"] == "ffmpeg failed: Unknown encoder libx264"
    # The frames stay for another try.
    work = next(media_root.glob("printer/.clip_*.work"))
    assert any((work / FRAMES_DIR).glob("*.jpg"))


@needs_ffmpeg
@pytest.mark.parametrize("after", [0.0, 1.0])
async def test_clip_keeps_every_buffered_frame(
    hass: HomeAssistant, entry: MockConfigEntry, media_root: Path, after: float
) -> None:
    """30 s from the buffer at 20 fps (600 frames): the clip has them all."""
    await hass.services.async_call(
        "switch", "turn_on", {"entity_id": CLIP_BUFFER}, blocking=True
    )
    recorder = _recorder(entry)
    # The buffer as half a minute of printing at 20 fps fills it.
    buffer = ClipBuffer()
    now = time.monotonic()
    for index in range(600):
        buffer.add(numbered_jpeg(100_000 + index), now - 30 + index / 20)
    recorder.buffer = buffer
    response = await _call(hass, "record_clip", response=True, before=30, after=after)
    result = response[CAMERA]
    assert result["media_id"] is not None
    # All but the oldest frame or two (30 s before the call, not the fill).
    assert result["frames"] >= 598 + 10 * after, result


@needs_ffmpeg
async def test_two_clips_started_in_the_same_second(
    hass: HomeAssistant, entry: MockConfigEntry, media_root: Path
) -> None:
    """Two automations (or two presses) asking for a clip at once: two clips."""
    recorder = _recorder(entry)
    events = _events(recorder)
    fixed = dt_util.now()
    with patch.object(recorder_module.dt_util, "now", return_value=fixed):
        first = await _call(hass, "record_clip", response=True, after=0.5)
        second = await _call(hass, "record_clip", response=True, after=0.5)
    assert not _of(events, "recording_failed")
    paths = [Path(first[CAMERA]["path"]), Path(second[CAMERA]["path"])]
    assert paths[1].stem == f"{paths[0].stem}_2"
    assert all(path.is_file() for path in paths)
    assert [e["media_id"] for e in _of(events, "clip_ready")] == [
        first[CAMERA]["media_id"],
        second[CAMERA]["media_id"],
    ]


async def test_recorder_refuses_what_the_actions_guard(
    hass: HomeAssistant, entry: MockConfigEntry
) -> None:
    """Called directly: no second timelapse, no stop without one, no buffer."""
    recorder = _recorder(entry)
    with pytest.raises(RuntimeError, match="no timelapse is running"):
        await recorder.async_stop_timelapse()
    with pytest.raises(RuntimeError, match="the clip buffer is off"):
        await recorder.async_start_clip(5.0, 1.0)
    assert recorder.diagnostics()["clips_recording"] == 0
    await recorder.async_start_timelapse(60.0, 30.0)
    capture = recorder.timelapse
    with pytest.raises(RuntimeError, match="already running"):
        await recorder.async_start_timelapse(60.0, 30.0)
    assert recorder.timelapse is capture
    # An unloaded recorder keeps no buffer (and pins no stream) any more.
    stream = entry.runtime_data.stream
    assert await hass.config_entries.async_unload(entry.entry_id)
    recorder.set_buffer(True)
    assert recorder.buffer is None
    assert not stream.running


async def test_a_failing_listener_does_not_silence_the_others(
    hass: HomeAssistant, entry: MockConfigEntry, caplog: pytest.LogCaptureFixture
) -> None:
    """One recording listener raising: logged; the rest still hear the event."""
    recorder = _recorder(entry)

    def broken(_kind: str, _data: dict[str, Any]) -> None:
        raise ValueError("listener bug")

    remove = recorder.add_listener(broken)
    events = _events(recorder)
    await _call(hass, "start_timelapse", interval=60, fps=24)
    assert _of(events, "timelapse_started") == [{"interval": 60.0, "fps": 24.0}]
    assert "recording listener failed" in caplog.text
    remove()
    remove()  # twice: harmless
    await _call(hass, "stop_timelapse")
    await hass.async_block_till_done()


async def test_timelapse_through_a_printer_outage(
    hass: HomeAssistant, entry: MockConfigEntry, printer: MjpegPrinter
) -> None:
    """No frames while the printer is unreachable; frames again when it is back."""
    recorder = _recorder(entry)
    printer.set_mode("status_500")
    requests = printer.stream_requests
    await _call(hass, "start_timelapse", interval=1)
    capture = recorder.timelapse
    assert capture is not None
    # The stream tried (and failed) twice: ticks went by without a frame.
    await until(lambda: printer.stream_requests >= requests + 2, timeout=10)
    assert capture.work.frames == 0
    assert recorder.timelapse is capture
    printer.set_mode("good")
    await until(lambda: capture.work.frames >= 2, timeout=15)
    assert capture.writer.error is None
    await _call(hass, "stop_timelapse")


async def test_removed_entry_keeps_what_cannot_be_finished(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    media_root: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Removed mid-timelapse with an ffmpeg that fails: the frames stay."""
    recorder = _recorder(entry)
    await _call(hass, "start_timelapse", interval=1)
    capture = recorder.timelapse
    assert capture is not None
    await until(lambda: capture.work.frames >= 1, timeout=15)
    get_ffmpeg_manager(hass).binary = str(
        fake_ffmpeg(tmp_path, "echo 'encoder exploded' >&2\nexit 1")
    )
    await hass.config_entries.async_remove(entry.entry_id)
    await until(lambda: "Cannot finish" in caplog.text, timeout=15)
    assert "ffmpeg failed: encoder exploded" in caplog.text
    assert capture.work.path.is_dir()
    assert frame_files(capture.work)[0] == "000001.jpg"
    assert not list(media_root.glob("printer/*.mp4"))
    assert not list(media_root.glob("printer/.*.part"))


# --- services: targets ---------------------------------------------------------------


def _device(hass: HomeAssistant, entry: MockConfigEntry) -> dr.DeviceEntry:
    (device,) = dr.async_entries_for_config_entry(dr.async_get(hass), entry.entry_id)
    return device


@needs_ffmpeg
async def test_actions_target_a_printer_s_device(
    hass: HomeAssistant, entry: MockConfigEntry
) -> None:
    """A device target finds its camera (and skips its other entities)."""
    target = {"device_id": _device(hass, entry).id}
    recorder = _recorder(entry)
    await _call(hass, "start_timelapse", target=target, interval=1)
    assert recorder.timelapse_running
    capture = recorder.timelapse
    assert capture is not None
    await until(lambda: capture.work.frames >= 1, timeout=15)
    response = await _call(hass, "stop_timelapse", target=target, response=True)
    assert list(response) == [CAMERA]
    assert response[CAMERA]["media_id"].startswith("media-source://printcam/printer/")
    assert not recorder.timelapse_running


async def test_actions_target_an_area(
    hass: HomeAssistant, entry: MockConfigEntry
) -> None:
    """An area without a PrintCam camera is refused; with the printer, it works."""
    area = ar.async_get(hass).async_create("Workshop")
    target = {"area_id": area.id}
    with pytest.raises(ServiceValidationError) as caught:
        await _call(hass, "start_timelapse", target=target)
    assert caught.value.translation_key == "no_printcam_camera"
    recorder = _recorder(entry)
    assert not recorder.timelapse_running

    dr.async_get(hass).async_update_device(_device(hass, entry).id, area_id=area.id)
    await _call(hass, "start_timelapse", target=target, interval=5)
    assert recorder.timelapse_running
    await _call(hass, "stop_timelapse", target=target)
    assert not recorder.timelapse_running


async def test_actions_refuse_a_printer_that_is_not_loaded(
    hass: HomeAssistant, entry: MockConfigEntry
) -> None:
    """The camera of an unloaded printer: printer_not_loaded, for every action."""
    assert await hass.config_entries.async_unload(entry.entry_id)
    for service, data in (
        ("start_timelapse", {}),
        ("stop_timelapse", {}),
        ("record_clip", {"after": 1}),
    ):
        with pytest.raises(ServiceValidationError) as caught:
            await _call(hass, service, **data)
        assert caught.value.translation_key == "printer_not_loaded"
        assert caught.value.translation_placeholders == {"entity_id": CAMERA}


async def test_record_clip_into_a_folder_that_cannot_be_made(
    hass: HomeAssistant, entry: MockConfigEntry, media_root: Path
) -> None:
    """A file where the recordings folder must be: the action says so."""
    media_root.parent.mkdir(parents=True, exist_ok=True)
    media_root.write_text("not a folder")
    recorder = _recorder(entry)
    with pytest.raises(HomeAssistantError) as caught:
        await _call(hass, "record_clip", after=1)
    assert not isinstance(caught.value, ServiceValidationError)
    assert caught.value.translation_key == "recording_failed"
    assert caught.value.translation_placeholders["folder"] == str(recorder.folder)
    assert recorder.diagnostics()["clips_recording"] == 0
    assert recorder.last_error is not None


async def test_start_timelapse_on_two_printers_is_all_or_nothing(
    hass: HomeAssistant, entry: MockConfigEntry, printer: MjpegPrinter
) -> None:
    """One of two targets already records: neither starts; both can stop."""
    second_printer = MjpegPrinter(fps=20.0)
    await second_printer.start()
    try:
        second = MockConfigEntry(
            domain=DOMAIN,
            title="Second",
            data={"kind": "mjpeg", "url": second_printer.url},
            unique_id=second_printer.url,
        )
        await setup_entry(hass, second)
        both = {"entity_id": [CAMERA, "camera.second"]}
        await _call(hass, "start_timelapse", target={"entity_id": "camera.second"})
        with pytest.raises(ServiceValidationError) as caught:
            await _call(hass, "start_timelapse", target=both)
        assert caught.value.translation_key == "timelapse_running"
        assert not _recorder(entry).timelapse_running
        # stop_timelapse on both stops the one running.
        await _call(hass, "stop_timelapse", target=both)
        assert not _recorder(second).timelapse_running
        assert await hass.config_entries.async_unload(second.entry_id)
    finally:
        await second_printer.close()


# --- setup with what a past run left ----------------------------------------------------


async def test_setup_survives_a_work_folder_it_cannot_repair(
    hass: HomeAssistant, printer: MjpegPrinter, media_root: Path
) -> None:
    """A recording folder the integration cannot tidy must not cost the camera."""
    entry = make_entry(printer.url)
    work = make_work(
        media_root / "printer",
        [numbered_jpeg(1)],
        entry_id=entry.entry_id,
        last_frame=time.time() - 7200,
    )
    (work.path / FRAMES_DIR / "@eaDir").mkdir()
    await setup_entry(hass, entry)
    try:
        assert entry.state is ConfigEntryState.LOADED
    finally:
        if entry.state is ConfigEntryState.LOADED:
            await hass.config_entries.async_unload(entry.entry_id)


async def test_record_clip_button_with_an_unwritable_folder(
    hass: HomeAssistant, entry: MockConfigEntry, media_root: Path
) -> None:
    """The button says why it cannot record, translated, and starts nothing."""
    media_root.parent.mkdir(parents=True)
    media_root.write_text("not a folder")
    with pytest.raises(HomeAssistantError) as caught:
        await hass.services.async_call(
            "button",
            "press",
            {"entity_id": "button.printer_record_clip"},
            blocking=True,
        )
    assert caught.value.translation_key == "recording_failed"
    assert _recorder(entry).diagnostics()["clips_recording"] == 0
