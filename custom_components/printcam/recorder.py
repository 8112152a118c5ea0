"""Timelapses and clips from the shared stream, kept on disk as they happen.

Every frame comes from the camera's shared stream (a frame listener), so a
recording never opens a printer connection of its own; while it runs it
pins the upstream open. Frames are written to a hidden work folder as they
arrive (one JPEG each, written under a temporary name and renamed, so a
crash leaves only whole frames), with a manifest saying what they are.
When a recording ends, Home Assistant's ffmpeg assembles them into an H.264
MP4 beside the folder, under a hidden ``.part`` name until it is complete;
then the work folder goes.

Layout, under ``<media>/printcam/<printer>/``::

    timelapse_2026-11-29_16-40-12.mp4      finished videos (and a .jpg
    timelapse_2026-11-29_16-40-12.jpg      thumbnail: the last frame)
    .timelapse_2026-11-29_16-40-12.work/   a recording in progress:
        recording.json                     its manifest
        frames/000001.jpg ...              its frames, numbered from 1

After a restart or a crash, setting the entry up again finds its work
folders: a timelapse that was running (and wrote a frame within
`RESUME_WITHIN_S`) goes on where it stopped; anything else is assembled
with the frames it has. Storage errors (disk full, a folder that cannot be
written) end the recording, keep its frames, raise a repair issue and fire
``recording_failed``; live viewers never notice.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Mapping
import contextlib
from dataclasses import dataclass
import errno
import itertools
import json
import logging
import math
import os
from pathlib import Path
import shutil
import subprocess
import time
from typing import Any, Final

from homeassistant.components.ffmpeg import get_ffmpeg_manager
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import issue_registry as ir
from homeassistant.util import dt as dt_util, slugify

from .const import CONF_CLIP_BUFFER, DOMAIN
from .stream import PrintCamStream, camera_option

_LOGGER = logging.getLogger(__name__)

KIND_TIMELAPSE: Final = "timelapse"
KIND_CLIP: Final = "clip"

EVENT_TIMELAPSE_STARTED: Final = "timelapse_started"
EVENT_TIMELAPSE_READY: Final = "timelapse_ready"
EVENT_CLIP_READY: Final = "clip_ready"
EVENT_RECORDING_FAILED: Final = "recording_failed"
RECORDING_EVENT_TYPES: Final = (
    EVENT_TIMELAPSE_STARTED,
    EVENT_TIMELAPSE_READY,
    EVENT_CLIP_READY,
    EVENT_RECORDING_FAILED,
)

MEDIA_SOURCE_PREFIX: Final = f"media-source://{DOMAIN}"
MANIFEST: Final = "recording.json"
FRAMES_DIR: Final = "frames"
FRAME_NAME: Final = "{:06d}.jpg"
WORK_SUFFIX: Final = ".work"
PART_SUFFIX: Final = ".mp4.part"

DEFAULT_TIMELAPSE_INTERVAL_S: Final = 10.0
DEFAULT_TIMELAPSE_FPS: Final = 30.0
DEFAULT_CLIP_AFTER_S: Final = 10.0
CLIP_BUFFER_S: Final = 60.0
"""How many seconds of recent frames the clip buffer keeps."""
CLIP_BUFFER_BYTES: Final = 64 * 1024 * 1024
"""And at most this many bytes of them (oldest frames go first)."""
MAX_CLIP_AFTER_S: Final = 600.0
RESUME_WITHIN_S: Final = 3600.0
"""A timelapse whose last frame is older than this is finished, not resumed."""
WRITE_QUEUE: Final = 256
"""Frames waiting for the disk; more are dropped (and counted), not held."""
FRESH_FRAME_S: Final = 1.0
"""A timelapse tick takes the latest frame if it is at most this old."""

type RecordingListener = Callable[[str, dict[str, Any]], None]


def recordings_root(hass: HomeAssistant) -> Path:
    """Return the folder holding every printer's recordings."""
    dirs = hass.config.media_dirs
    base = (
        dirs.get("local")
        or next(iter(dirs.values()), None)
        or hass.config.path("media")
    )
    return Path(base) / "printcam"


def clip_buffer_on(options: Mapping[str, Any], camera: str | None) -> bool:
    """Return whether a camera's clip buffer switch is on."""
    return bool(options.get(camera_option(CONF_CLIP_BUFFER, camera), False))


def media_id(folder: str, file_name: str) -> str:
    """Return the media source id of a finished video."""
    return f"{MEDIA_SOURCE_PREFIX}/{folder}/{file_name}"


def jpeg_size(jpeg: bytes) -> tuple[int, int] | None:
    """Return (width, height) from a JPEG's frame header, None if absent."""
    index = 2
    end = len(jpeg)
    while index + 9 < end:
        if jpeg[index] != 0xFF:
            return None
        marker = jpeg[index + 1]
        if marker == 0xFF:  # fill byte
            index += 1
            continue
        length = int.from_bytes(jpeg[index + 2 : index + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height = int.from_bytes(jpeg[index + 5 : index + 7], "big")
            width = int.from_bytes(jpeg[index + 7 : index + 9], "big")
            return (width, height) if width and height else None
        index += 2 + length
    return None


class RecordingError(Exception):
    """A recording could not be stored or assembled."""

    def __init__(self, reason: str, *, storage: bool = False) -> None:
        """Say why; `storage` marks a disk that cannot take the frames."""
        super().__init__(reason)
        self.reason = reason
        self.storage = storage


def _describe(err: OSError) -> str:
    if err.errno == errno.ENOSPC:
        return "the disk is full"
    if err.errno == errno.EROFS:
        return "the folder is on a read-only file system"
    if err.errno in (errno.EACCES, errno.EPERM):
        return "the folder cannot be written (permission denied)"
    return err.strerror or str(err)


@dataclass(frozen=True, slots=True)
class Video:
    """A finished recording."""

    kind: str
    path: Path
    folder: str
    frames: int
    fps: float

    @property
    def media_id(self) -> str:
        """Return its media source id."""
        return media_id(self.folder, self.path.name)

    @property
    def duration(self) -> float:
        """Return its length in seconds."""
        return round(self.frames / self.fps, 2) if self.fps else 0.0

    def event_data(self) -> dict[str, Any]:
        """Return what the ready event tells automations."""
        return {
            "media_id": self.media_id,
            "path": str(self.path),
            "frames": self.frames,
            "duration": self.duration,
        }


@dataclass(slots=True)
class Work:
    """A recording's work folder: its manifest and frames (blocking I/O)."""

    path: Path
    manifest: dict[str, Any]
    frames: int = 0

    @property
    def folder(self) -> Path:
        """Return the printer folder the video goes to."""
        return self.path.parent

    @property
    def name(self) -> str:
        """Return the video's name (no extension)."""
        return str(self.manifest["name"])

    @property
    def kind(self) -> str:
        """Return timelapse or clip."""
        return str(self.manifest["kind"])

    @classmethod
    def create(cls, folder: Path, manifest: dict[str, Any]) -> Work:
        """Make the work folder (in an executor); OSError when it cannot."""
        base = str(manifest["name"])
        folder.mkdir(parents=True, exist_ok=True)
        for number in itertools.count(1):
            # Two recordings started within the same second get _2, _3...
            name = base if number == 1 else f"{base}_{number}"
            path = folder / f".{name}{WORK_SUFFIX}"
            try:
                path.mkdir()
            except FileExistsError:
                continue
            break
        (path / FRAMES_DIR).mkdir()
        manifest["name"] = name
        work = cls(path, manifest)
        work.save()
        return work

    @classmethod
    def load(cls, path: Path) -> Work | None:
        """Read a work folder left behind; repair its frame sequence."""
        try:
            manifest = json.loads((path / MANIFEST).read_text())
        except (OSError, ValueError) as err:
            _LOGGER.warning("Ignoring recording folder %s: %s", path, err)
            return None
        if (
            not isinstance(manifest, dict)
            or not isinstance(manifest.get("name"), str)
            or manifest.get("kind") not in (KIND_TIMELAPSE, KIND_CLIP)
        ):
            _LOGGER.warning("Ignoring recording folder %s: unknown manifest", path)
            return None
        work = cls(path, manifest)
        with contextlib.suppress(OSError):  # the last frame written
            written = (path / FRAMES_DIR).stat().st_mtime
            manifest["last_frame"] = max(
                float(manifest.get("last_frame") or 0), written
            )
        try:
            work.frames = work._repair()
        except OSError as err:
            _LOGGER.warning("Cannot repair the recording folder %s: %s", path, err)
            return None
        return work

    def _repair(self) -> int:
        """Drop temporary and broken frames, close gaps; return the count."""
        frames = self.path / FRAMES_DIR
        frames.mkdir(exist_ok=True)
        good: list[Path] = []
        for item in sorted(frames.iterdir()):
            if item.is_dir():
                continue
            if item.suffix != ".jpg" or item.name.startswith("."):
                item.unlink()
                continue
            if _whole_jpeg(item):
                good.append(item)
            else:
                _LOGGER.debug("Dropping a broken frame %s", item)
                item.unlink()
        for number, item in enumerate(good, start=1):
            wanted = frames / FRAME_NAME.format(number)
            if item != wanted:
                item.rename(wanted)
        return len(good)

    def save(self) -> None:
        """Write the manifest atomically."""
        tmp = self.path / f".{MANIFEST}.tmp"
        tmp.write_text(json.dumps(self.manifest, indent=1))
        tmp.replace(self.path / MANIFEST)

    def write_frame(self, jpeg: bytes) -> None:
        """Add one frame: written whole under a temporary name, then renamed."""
        frames = self.path / FRAMES_DIR
        tmp = frames / ".frame.tmp"
        try:
            with tmp.open("wb") as file:
                file.write(jpeg)
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        tmp.replace(frames / FRAME_NAME.format(self.frames + 1))
        self.frames += 1
        if self.frames == 1:
            self.manifest["first_frame"] = FRAME_NAME.format(1)

    def first_frame(self) -> bytes | None:
        """Return the first frame (its size sets the video's)."""
        try:
            return (self.path / FRAMES_DIR / FRAME_NAME.format(1)).read_bytes()
        except OSError:
            return None

    def remove(self) -> None:
        """Delete the work folder."""
        shutil.rmtree(self.path, ignore_errors=True)


def _whole_jpeg(path: Path) -> bool:
    """Return True if a file starts and ends like a JPEG."""
    try:
        with path.open("rb") as file:
            head = file.read(2)
            if head != b"\xff\xd8":
                return False
            file.seek(-2, os.SEEK_END)
            return file.read(2) == b"\xff\xd9"
    except OSError:
        return False


def find_work(root: Path, entry_id: str) -> list[Work]:
    """Return an entry's work folders under every printer folder (blocking)."""
    found: list[Work] = []
    try:
        folders = sorted(root.iterdir()) if root.is_dir() else []
    except OSError as err:
        _LOGGER.warning("Cannot look for recordings in %s: %s", root, err)
        return found
    for folder in folders:
        if not folder.is_dir() or folder.name.startswith("."):
            continue
        try:
            paths = sorted(folder.glob(f".*{WORK_SUFFIX}"))
        except OSError as err:
            _LOGGER.warning("Cannot look for recordings in %s: %s", folder, err)
            continue
        for path in paths:
            manifest = path / MANIFEST
            try:
                owner = json.loads(manifest.read_text()).get("entry_id")
            except (OSError, ValueError, AttributeError):
                continue
            if owner == entry_id and (work := Work.load(path)) is not None:
                found.append(work)
    return found


def _unique_output(folder: Path, name: str) -> Path:
    path = folder / f"{name}.mp4"
    number = 2
    while path.exists():
        path = folder / f"{name}_{number}.mp4"
        number += 1
    return path


def _even(value: int) -> int:
    return max(2, value - value % 2)


def ffmpeg_args(binary: str, work: Work, fps: float, output: Path) -> list[str]:
    """Return the command assembling a work folder's frames into H.264 MP4.

    Every frame is fitted (never stretched) into the first frame's size, so
    a resolution change halfway (an option changed) still encodes.
    """
    first = work.first_frame()
    size = jpeg_size(first) if first else None
    if size is None:
        video_filter = "scale=trunc(iw/2)*2:trunc(ih/2)*2"
    else:
        width, height = _even(size[0]), _even(size[1])
        video_filter = (
            f"scale={width}:{height}:force_original_aspect_ratio=decrease,"
            f"pad={width}:{height}:(ow-iw)/2:(oh-ih)/2"
        )
    return [
        binary,
        "-hide_banner",
        "-nostdin",
        "-loglevel",
        "error",
        "-y",
        "-framerate",
        f"{fps:g}",
        "-start_number",
        "1",
        "-i",
        str(work.path / FRAMES_DIR / "%06d.jpg"),
        "-vf",
        f"{video_filter},format=yuv420p",
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-crf",
        "23",
        "-movflags",
        "+faststart",
        "-f",
        "mp4",
        str(output),
    ]


async def async_assemble(hass: HomeAssistant, work: Work) -> Video:
    """Turn a work folder into its video, then delete the folder.

    Raises RecordingError (the frames stay for another try). A cancelled
    assembly kills ffmpeg and leaves the work folder as it was.
    """
    fps = float(work.manifest.get("fps") or DEFAULT_TIMELAPSE_FPS)
    folder_name = work.folder.name
    if work.frames == 0:
        await hass.async_add_executor_job(work.remove)
        raise RecordingError("no frames were recorded")
    done = work.manifest.get("output")
    if done and (work.folder / done).is_file():
        # Assembled before a crash that came before the folder was removed.
        await hass.async_add_executor_job(work.remove)
        return Video(work.kind, work.folder / done, folder_name, work.frames, fps)
    output = await hass.async_add_executor_job(_unique_output, work.folder, work.name)
    part = work.folder / f".{output.stem}{PART_SUFFIX}"
    args = await hass.async_add_executor_job(
        ffmpeg_args, get_ffmpeg_manager(hass).binary, work, fps, part
    )
    try:
        proc = await asyncio.create_subprocess_exec(
            *args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
    except OSError as err:
        raise RecordingError(f"cannot run ffmpeg: {err.strerror or err}") from err
    except asyncio.CancelledError:  # asyncio reaped the half-started ffmpeg
        await asyncio.shield(hass.async_add_executor_job(_unlink, part))
        raise
    with contextlib.suppress(OSError):  # encode below the live streams
        os.setpriority(os.PRIO_PROCESS, proc.pid, 10)
    try:
        _, stderr = await proc.communicate()
    except asyncio.CancelledError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        await asyncio.shield(hass.async_add_executor_job(_unlink, part))
        raise
    if proc.returncode != 0:
        await hass.async_add_executor_job(_unlink, part)
        lines = stderr.decode(errors="replace").strip().splitlines()
        detail = lines[-1] if lines else f"exit status {proc.returncode}"
        storage = any(
            text in line.lower()
            for line in lines
            for text in ("no space left", "read-only", "permission denied")
        )
        raise RecordingError(f"ffmpeg failed: {detail}", storage=storage)

    def finish() -> None:
        work.manifest["output"] = output.name
        work.manifest["state"] = "assembled"
        work.save()
        last = work.path / FRAMES_DIR / FRAME_NAME.format(work.frames)
        thumb_tmp = work.folder / f".{output.stem}.jpg.tmp"
        shutil.copyfile(last, thumb_tmp)
        thumb_tmp.replace(output.with_suffix(".jpg"))
        part.replace(output)
        work.remove()

    try:
        await hass.async_add_executor_job(finish)
    except OSError as err:
        await hass.async_add_executor_job(_unlink, part)
        raise RecordingError(_describe(err), storage=True) from err
    return Video(work.kind, output, folder_name, work.frames, fps)


def _unlink(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


class _Writer:
    """Writes one recording's frames in order, off the event loop."""

    def __init__(self, hass: HomeAssistant, work: Work, name: str) -> None:
        self.hass = hass
        self.work = work
        self.dropped = 0
        self.error: RecordingError | None = None
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        """Bounded by `put` (`WRITE_QUEUE`), so the end marker always fits."""
        self._failed: asyncio.Future[None] = hass.loop.create_future()
        self._task = hass.loop.create_task(self._run(), name=name)

    def put(self, jpeg: bytes, *, force: bool = False) -> None:
        """Queue a frame (dropped and counted when the disk lags far behind).

        `force` queues it anyway: frames already held in memory (the clip
        buffer's, bounded in time and bytes).
        """
        if self.error is not None:
            return
        if not force and self._queue.qsize() >= WRITE_QUEUE:
            self.dropped += 1
            return
        self._queue.put_nowait(jpeg)

    @property
    def failed(self) -> asyncio.Future[None]:
        """Return a future done when writing failed."""
        return self._failed

    async def _run(self) -> None:
        while (jpeg := await self._queue.get()) is not None:
            try:
                await self.hass.async_add_executor_job(self.work.write_frame, jpeg)
            except OSError as err:
                self.error = RecordingError(_describe(err), storage=True)
                if not self._failed.done():
                    self._failed.set_result(None)
                return

    async def close(self) -> None:
        """Write what is queued, then stop; cancellation stops at once."""
        if not self._task.done():
            self._queue.put_nowait(None)
        try:
            await asyncio.shield(self._task)
        except asyncio.CancelledError:
            if not self._task.cancelled():
                raise
        if not self._failed.done():
            self._failed.cancel()

    def cancel(self) -> None:
        """Stop without writing what is queued."""
        self._task.cancel()
        if not self._failed.done():
            self._failed.cancel()


@dataclass(slots=True, eq=False)
class _Capture:
    """A recording being captured: its work folder, writer and task."""

    kind: str
    work: Work
    writer: _Writer
    task: asyncio.Task[Any] | None = None


class ClipBuffer:
    """The most recent frames, bounded in time and bytes."""

    def __init__(
        self, seconds: float = CLIP_BUFFER_S, max_bytes: int = CLIP_BUFFER_BYTES
    ) -> None:
        """Keep up to `seconds` of frames and `max_bytes` of JPEG."""
        self.seconds = seconds
        self.max_bytes = max_bytes
        self.frames: deque[tuple[float, bytes]] = deque()
        self.bytes = 0

    def add(self, jpeg: bytes, now: float) -> None:
        """Add a frame; drop the ones too old or over the byte budget."""
        self.frames.append((now, jpeg))
        self.bytes += len(jpeg)
        while self.frames and (
            now - self.frames[0][0] > self.seconds or self.bytes > self.max_bytes
        ):
            _, old = self.frames.popleft()
            self.bytes -= len(old)

    def since(self, start: float) -> list[tuple[float, bytes]]:
        """Return the frames at or after monotonic time `start`."""
        return [item for item in self.frames if item[0] >= start]

    @property
    def span(self) -> float:
        """Return how many seconds the buffer covers now."""
        if len(self.frames) < 2:
            return 0.0
        return self.frames[-1][0] - self.frames[0][0]


def measured_fps(times: list[float], fallback: float) -> float:
    """Return the rate frames came at (for a clip's playback), 1-60."""
    if len(times) < 2 or times[-1] <= times[0]:
        return fallback
    return round(min(60.0, max(1.0, (len(times) - 1) / (times[-1] - times[0]))), 3)


def _remover[T](items: list[T], item: T) -> Callable[[], None]:
    def remove() -> None:
        with contextlib.suppress(ValueError):
            items.remove(item)

    return remove


class CameraRecorder:
    """Timelapses, clips and the clip buffer of one camera."""

    def __init__(
        self,
        hass: HomeAssistant,
        *,
        entry_id: str,
        printer: str,
        camera_key: str | None,
        stream: PrintCamStream,
    ) -> None:
        """Record `stream`, the camera `camera_key` of printer `printer`."""
        self.hass = hass
        self.entry_id = entry_id
        self.printer = printer
        self.camera_key = camera_key
        self.stream = stream
        self.folder_name = slugify(printer) or entry_id
        self.timelapse: _Capture | None = None
        self._clips: set[_Capture] = set()
        self._assembling: set[asyncio.Task[Any]] = set()
        self.buffer: ClipBuffer | None = None
        self._remove_frames: Callable[[], None] | None = None
        self._frame_sinks: list[Callable[[bytes, float], None]] = []
        self._listeners: list[RecordingListener] = []
        self._state_listeners: list[Callable[[], None]] = []
        self._closed = False
        self._latest: tuple[float, bytes] | None = None
        self._next_frame: asyncio.Future[tuple[float, bytes]] | None = None
        self.last_error: str | None = None

    # --- listeners -----------------------------------------------------------

    def add_listener(self, listener: RecordingListener) -> Callable[[], None]:
        """Call `listener(event_type, data)` on every recording event."""
        self._listeners.append(listener)
        return _remover(self._listeners, listener)

    def add_state_listener(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call `listener()` when a timelapse starts or ends."""
        self._state_listeners.append(listener)
        return _remover(self._state_listeners, listener)

    @callback
    def _fire(self, event_type: str, data: dict[str, Any]) -> None:
        data = {"camera": self.camera_key, **data} if self.camera_key else data
        for listener in list(self._listeners):
            try:
                listener(event_type, data)
            except Exception:
                _LOGGER.exception("%s: recording listener failed", self.printer)

    def _state_changed(self) -> None:
        for listener in list(self._state_listeners):
            listener()

    @property
    def timelapse_running(self) -> bool:
        """Return True while a timelapse captures."""
        return self.timelapse is not None

    @property
    def folder(self) -> Path:
        """Return the printer's recordings folder."""
        return recordings_root(self.hass) / self.folder_name

    # --- frames from the stream ----------------------------------------------

    def _want_frames(self) -> None:
        """Listen to the stream while anything records or buffers."""
        wanted = bool(self.timelapse or self._frame_sinks or self.buffer)
        if wanted and self._remove_frames is None:
            self._remove_frames = self.stream.add_frame_listener(self._on_frame)
        elif not wanted and self._remove_frames is not None:
            self._remove_frames()
            self._remove_frames = None
            self._latest = None

    def _on_frame(self, jpeg: bytes, now: float) -> None:
        self._latest = (now, jpeg)
        if self.buffer is not None:
            self.buffer.add(jpeg, now)
        for sink in self._frame_sinks:
            sink(jpeg, now)
        waiter = self._next_frame
        if waiter is not None:
            self._next_frame = None
            if not waiter.done():
                waiter.set_result((now, jpeg))

    async def _frame_for_tick(self, timeout: float) -> bytes | None:  # noqa: ASYNC109
        """Return the latest frame if fresh, else the next within `timeout`."""
        latest = self._latest
        interval = self.stream.frame_interval or 0.0
        if latest is not None and time.monotonic() - latest[0] <= max(
            FRESH_FRAME_S, 2 * interval
        ):
            return latest[1]
        if self._next_frame is None or self._next_frame.done():
            self._next_frame = self.hass.loop.create_future()
        try:
            async with asyncio.timeout(timeout):
                _, jpeg = await asyncio.shield(self._next_frame)
        except TimeoutError:
            return None
        return jpeg

    # --- the clip buffer -----------------------------------------------------

    def set_buffer(self, enabled: bool) -> None:
        """Keep (or drop) the last `CLIP_BUFFER_S` seconds of frames.

        The buffer needs frames, so it keeps the upstream open while on.
        """
        if self._closed:
            return
        if enabled and self.buffer is None:
            self.buffer = ClipBuffer()
            self.stream.pin("clip_buffer")
        elif not enabled and self.buffer is not None:
            self.buffer = None
            self.stream.unpin("clip_buffer")
        self._want_frames()

    # --- timelapses -----------------------------------------------------------

    def _new_manifest(self, kind: str, **extra: Any) -> dict[str, Any]:
        stamp = dt_util.now().strftime("%Y-%m-%d_%H-%M-%S")
        camera = f"_{slugify(self.camera_key)}" if self.camera_key else ""
        return {
            "kind": kind,
            "name": f"{kind}{camera}_{stamp}",
            "entry_id": self.entry_id,
            "camera": self.camera_key,
            "printer": self.printer,
            "state": "running",
            "started": dt_util.utcnow().isoformat(),
            **extra,
        }

    async def _create_work(self, manifest: dict[str, Any]) -> Work:
        try:
            return await self.hass.async_add_executor_job(
                Work.create, self.folder, manifest
            )
        except OSError as err:
            error = RecordingError(_describe(err), storage=True)
            self._failed(str(manifest["kind"]), error)
            raise error from err

    async def async_start_timelapse(self, interval: float, fps: float) -> None:
        """Start a timelapse: one frame every `interval` s, played at `fps`.

        Raises RecordingError when the folder cannot be written.
        """
        if self.timelapse is not None:
            raise RuntimeError("a timelapse is already running")
        work = await self._create_work(
            self._new_manifest(KIND_TIMELAPSE, interval=interval, fps=fps)
        )
        self._begin_timelapse(work)
        self._fire(EVENT_TIMELAPSE_STARTED, {"interval": interval, "fps": fps})

    def _begin_timelapse(self, work: Work) -> None:
        capture = _Capture(
            KIND_TIMELAPSE,
            work,
            _Writer(self.hass, work, f"printcam timelapse {work.name}"),
        )
        self.timelapse = capture
        self.stream.pin("timelapse")
        self._want_frames()
        capture.task = self.hass.loop.create_task(
            self._run_timelapse(capture), name=f"printcam timelapse {work.name}"
        )
        self._state_changed()

    async def _run_timelapse(self, capture: _Capture) -> None:
        """Write a frame every interval until stopped or the disk fails."""
        interval = float(
            capture.work.manifest.get("interval") or DEFAULT_TIMELAPSE_INTERVAL_S
        )
        loop = self.hass.loop
        next_tick = loop.time()
        failed = capture.writer.failed
        while not failed.done():
            self.stream.pin("timelapse")  # reopens an upstream stopped meanwhile
            jpeg = await self._frame_for_tick(interval)
            if jpeg is not None:
                capture.writer.put(jpeg)
                capture.work.manifest["last_frame"] = time.time()
            next_tick += interval
            if (delay := next_tick - loop.time()) < 0:  # missed ticks: skip them
                next_tick += math.ceil(-delay / interval) * interval
                delay = next_tick - loop.time()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await asyncio.shield(failed)
        # The disk failed: end the timelapse with what it has.
        if self.timelapse is capture:
            self.hass.async_create_task(self.async_stop_timelapse(), eager_start=False)

    async def async_stop_timelapse(self) -> asyncio.Task[Video | None]:
        """Stop the timelapse; return the task assembling its video.

        The task's result is the video, None if it failed (the event and
        the repair issue say why); a caller giving up does not stop it.
        """
        capture = self.timelapse
        if capture is None:
            raise RuntimeError("no timelapse is running")
        self.timelapse = None
        self.stream.unpin("timelapse")
        self._want_frames()
        self._state_changed()
        if capture.task is not None and capture.task is not asyncio.current_task():
            capture.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await capture.task
        await capture.writer.close()
        return self._spawn_finish(capture.work, capture.writer.error)

    # --- clips ---------------------------------------------------------------

    async def async_start_clip(
        self, before: float, after: float
    ) -> asyncio.Task[Video | None]:
        """Start recording the last `before` and the next `after` seconds.

        Frames come at the live rate; `before` needs the clip buffer
        (RuntimeError when it is off). Returns the task recording and
        assembling the clip: its result is the video, None if it failed
        (the event and the repair issue say why). Raises RecordingError
        when the folder cannot be written.
        """
        now = time.monotonic()
        if before > 0 and self.buffer is None:
            raise RuntimeError("the clip buffer is off")
        earlier = self.buffer.since(now - before) if self.buffer and before > 0 else []
        interval = self.stream.frame_interval
        fallback = round(1.0 / interval, 3) if interval else 15.0
        work = await self._create_work(
            self._new_manifest(KIND_CLIP, fps=fallback, before=before, after=after)
        )
        capture = _Capture(
            KIND_CLIP, work, _Writer(self.hass, work, f"printcam clip {work.name}")
        )
        for _, jpeg in earlier:
            capture.writer.put(jpeg, force=True)
        task = self.hass.loop.create_task(
            self._run_clip(capture, [at for at, _ in earlier], after, fallback),
            name=f"printcam clip {work.name}",
        )
        capture.task = task
        self._clips.add(capture)
        task.add_done_callback(lambda _: self._clips.discard(capture))
        return task

    async def _run_clip(
        self, capture: _Capture, times: list[float], after: float, fallback: float
    ) -> Video | None:
        """Capture a clip's live part, then assemble it."""
        pin = f"clip {capture.work.name}"

        def sink(jpeg: bytes, at: float) -> None:
            times.append(at)
            capture.writer.put(jpeg)

        try:
            if after > 0:
                self._frame_sinks.append(sink)
                self._want_frames()
                self.stream.pin(pin)
                try:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(after):
                            await asyncio.shield(capture.writer.failed)
                finally:
                    with contextlib.suppress(ValueError):  # closed meanwhile
                        self._frame_sinks.remove(sink)
                    self.stream.unpin(pin)
                    self._want_frames()
            await capture.writer.close()
        except asyncio.CancelledError:
            # An unload: the frames stay on disk; the next setup finishes it.
            capture.writer.cancel()
            raise
        capture.work.manifest["fps"] = measured_fps(times, fallback)
        return await self._finish(capture.work, capture.writer.error)

    # --- finishing ------------------------------------------------------------

    async def _finish(self, work: Work, error: RecordingError | None) -> Video | None:
        """Assemble a recording; report it ready, or failed."""
        try:
            work.manifest["state"] = "finishing"
            with contextlib.suppress(OSError):
                await self.hass.async_add_executor_job(work.save)
            video = await async_assemble(self.hass, work)
        except RecordingError as err:
            self._failed(work.kind, error or err, work)
            return None
        if error is not None:  # stored what it had before the disk failed
            self._failed(work.kind, error, work, video)
        else:
            ir.async_delete_issue(self.hass, DOMAIN, self.issue_id)
        ready = (
            EVENT_TIMELAPSE_READY if work.kind == KIND_TIMELAPSE else EVENT_CLIP_READY
        )
        self._fire(ready, video.event_data())
        _LOGGER.info("%s: %s ready: %s", self.printer, work.kind, video.path)
        return video

    @property
    def issue_id(self) -> str:
        """Return the id of this camera's recording repair issue."""
        camera = f"_{self.camera_key}" if self.camera_key else ""
        return f"recording_failed_{self.entry_id}{camera}"

    def _failed(
        self,
        kind: str,
        error: RecordingError,
        work: Work | None = None,
        video: Video | None = None,
    ) -> None:
        self.last_error = error.reason
        folder = str(work.folder if work else self.folder)
        _LOGGER.error(
            "%s: the %s %s: %s (folder %s)",
            self.printer,
            kind,
            "was cut short" if video else "failed",
            error.reason,
            folder,
        )
        ir.async_create_issue(
            self.hass,
            DOMAIN,
            self.issue_id,
            is_fixable=False,
            is_persistent=False,
            severity=ir.IssueSeverity.ERROR,
            # A disk that cannot take the frames, or a video not made
            # (ffmpeg, no frames): each says what to do about it.
            translation_key="recording_failed"
            if error.storage
            else "recording_not_made",
            translation_placeholders={
                "name": self.printer,
                "folder": folder,
                "error": error.reason,
            },
        )
        data: dict[str, Any] = {"kind": kind, "error": error.reason, "folder": folder}
        if video is not None:
            data.update(video.event_data())
        self._fire(EVENT_RECORDING_FAILED, data)

    def diagnostics(self) -> dict[str, Any]:
        """Return what the recorder is doing (no frames, no secrets)."""
        capture = self.timelapse
        buffer = self.buffer
        return {
            "folder": f"{self.folder.parent.name}/{self.folder_name}",
            "timelapse": None
            if capture is None
            else {
                "name": capture.work.name,
                "interval": capture.work.manifest.get("interval"),
                "fps": capture.work.manifest.get("fps"),
                "frames": capture.work.frames,
                "frames_dropped": capture.writer.dropped,
            },
            "clips_recording": len(self._clips),
            "assembling": len(self._assembling),
            "clip_buffer": None
            if buffer is None
            else {
                "frames": len(buffer.frames),
                "bytes": buffer.bytes,
                "seconds": round(buffer.span, 1),
            },
            "last_error": self.last_error,
        }

    # --- lifecycle ------------------------------------------------------------

    async def async_recover(self, works: list[Work]) -> None:
        """Resume or finish what an earlier run of this camera left on disk."""
        resume: Work | None = None
        finish: list[Work] = []
        now = time.time()
        for work in works:
            last = float(work.manifest.get("last_frame") or 0.0)
            if (
                resume is None
                and work.kind == KIND_TIMELAPSE
                and work.manifest.get("state") == "running"
                and now - last <= RESUME_WITHIN_S
            ):
                resume = work
            else:
                finish.append(work)
        if resume is not None:
            _LOGGER.info(
                "%s: resuming the timelapse %s (%d frames)",
                self.printer,
                resume.name,
                resume.frames,
            )
            self._begin_timelapse(resume)
        for work in finish:
            self._spawn_finish(work, None)

    def _spawn_finish(
        self, work: Work, error: RecordingError | None
    ) -> asyncio.Task[Video | None]:
        task = self.hass.loop.create_task(
            self._finish(work, error), name=f"printcam finish {work.name}"
        )
        self._assembling.add(task)
        task.add_done_callback(self._assembling.discard)
        return task

    async def async_close(self) -> None:
        """Stop capturing for an unload: everything stays on disk to go on.

        A running timelapse is resumed by the next setup; a clip and an
        assembly cut short are finished by it.
        """
        self._closed = True
        capture = self.timelapse
        self.timelapse = None
        tasks: list[asyncio.Task[Any]] = list(self._assembling)
        if capture is not None and capture.task is not None:
            tasks.append(capture.task)
        tasks.extend(clip.task for clip in self._clips if clip.task is not None)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        if capture is not None:
            await capture.writer.close()
            with contextlib.suppress(OSError):
                await self.hass.async_add_executor_job(capture.work.save)
        self.buffer = None
        self._frame_sinks.clear()
        self._want_frames()
        for reason in ("timelapse", "clip_buffer"):
            self.stream.unpin(reason)


async def async_finish_left_behind(hass: HomeAssistant, entry_id: str) -> None:
    """Assemble every recording a removed entry left; keep what fails."""
    works = await hass.async_add_executor_job(
        find_work, recordings_root(hass), entry_id
    )
    for work in works:
        try:
            video = await async_assemble(hass, work)
        except RecordingError as err:
            _LOGGER.warning("Cannot finish %s: %s", work.path, err.reason)
        else:
            _LOGGER.info("Finished %s", video.path)
