"""Media source: PrintCam's timelapses and clips, per printer, playable in the browser.

Recordings live under `recordings_root(hass)` (see `recorder.py`): one folder per
printer (the slug of its name), holding finished videos (`*.mp4`) and optionally
a thumbnail with the same stem (`*.jpg`). Names starting with "." are the
recorder's work folders and temporary files: never listed, never served.

Media ids are `media-source://printcam/<printer folder>/<file name>`. A video
resolves to `/api/printcam/media/<printer folder>/<file name>`, served by
`PrintCamMediaView` to authenticated users only (media_source's websocket signs
that path for the player; the frontend signs or fetches relative thumbnails
with the user's credentials, as for the camera and Nest media sources).
"""

from __future__ import annotations

from dataclasses import dataclass
import logging
from pathlib import Path
import re
from stat import S_ISREG
from urllib.parse import quote

from aiohttp import hdrs, web
from homeassistant.components.media_player.const import MediaClass
from homeassistant.components.media_player.errors import BrowseError
from homeassistant.components.media_source import (
    BrowseMediaSource,
    MediaSource,
    MediaSourceItem,
    PlayMedia,
    Unresolvable,
)
from homeassistant.core import HomeAssistant
from homeassistant.helpers.http import HomeAssistantView
from homeassistant.util import slugify
from homeassistant.util.hass_dict import HassKey

from .const import DOMAIN
from .recorder import recordings_root

_LOGGER = logging.getLogger(__name__)

MEDIA_URL = "/api/printcam/media/{folder}/{file}"
"""Where `PrintCamMediaView` serves a recording (or its thumbnail)."""

VIDEO_SUFFIX = ".mp4"
THUMBNAIL_SUFFIX = ".jpg"
VIDEO_MIME_TYPE = "video/mp4"
MIME_TYPES = {VIDEO_SUFFIX: VIDEO_MIME_TYPE, THUMBNAIL_SUFFIX: "image/jpeg"}
"""The only files the view serves, by suffix."""

_DATA_VIEW: HassKey[bool] = HassKey(f"{DOMAIN}_media_view")
"""Set once `PrintCamMediaView` was registered (or could not be)."""

_TITLE = re.compile(
    r"^(?P<kind>[a-z]+)(?:_(?P<camera>.+?))?"
    r"_(?P<date>\d{4}-\d{2}-\d{2})_(?P<hh>\d{2})-(?P<mm>\d{2})-(?P<ss>\d{2})"
    r"(?:_(?P<number>\d+))?$"
)
"""`<kind>[_<camera>]_<YYYY-MM-DD>_<HH-MM-SS>[_<n>]`: the recorder's file stems.

`_<n>` (2, 3, ...) tells apart recordings started in the same second.
"""


async def async_get_media_source(hass: HomeAssistant) -> MediaSource:
    """Set up PrintCam's media source (and, once, the view serving recordings)."""
    if not hass.data.get(_DATA_VIEW):
        hass.data[_DATA_VIEW] = True
        try:
            hass.http.register_view(PrintCamMediaView(hass))
        except RuntimeError as err:  # a frozen router (a test server started first)
            _LOGGER.warning("PrintCam recordings cannot be played: %s", err)
    return PrintCamMediaSource(hass)


def media_url(folder: str, name: str) -> str:
    """Return the path `PrintCamMediaView` serves a printer folder's file at."""
    return MEDIA_URL.format(folder=quote(folder, safe=""), file=quote(name, safe=""))


def recording_title(name: str) -> str:
    """Return a readable title for a recording's file name.

    `timelapse_2026-11-29_16-40-12.mp4` is "Timelapse 2026-11-29 16:40:12";
    a camera key between kind and date follows in parentheses
    (`clip_nozzle_2026-…` is "Clip 2026-… (nozzle)"), a number telling
    apart recordings of the same second after a "#"
    (`…_16-40-12_2` is "… 16:40:12 #2"). Other names keep their stem.
    """
    stem = Path(name).stem if name.endswith(VIDEO_SUFFIX) else name
    if not (match := _TITLE.match(stem)):
        return stem
    title = (
        f"{match['kind'].capitalize()} {match['date']} "
        f"{match['hh']}:{match['mm']}:{match['ss']}"
    )
    if number := match["number"]:
        title += f" #{number}"
    if camera := match["camera"]:
        title += f" ({camera.replace('_', ' ')})"
    return title


def valid_name(name: str) -> bool:
    """Return whether `name` may be one path part below the recordings root.

    Refused: empty names, "." and ".." and anything else starting with "."
    (work folders, temporary files), separators of any platform and NUL.
    """
    return (
        bool(name)
        and not name.startswith(".")
        and not any(char in name for char in ("/", "\\", "\0"))
        and Path(name).name == name
        and not Path(name).is_absolute()
    )


def valid_file_name(name: str, suffixes: tuple[str, ...]) -> bool:
    """Return whether `name` is a valid name ending in one of `suffixes`."""
    return valid_name(name) and name.endswith(suffixes)


def parse_identifier(identifier: str | None) -> tuple[str | None, str | None]:
    """Split a media identifier into (printer folder, file name).

    "" (or None) is the root: (None, None); "<folder>" is (folder, None);
    "<folder>/<file>" is (folder, file). Raises ValueError for anything else:
    more parts, "..", absolute paths, backslashes, names starting with ".".
    """
    if not identifier:
        return None, None
    parts = identifier.split("/")
    if len(parts) > 2 or not all(valid_name(part) for part in parts):
        raise ValueError(f"Invalid PrintCam media id: {identifier!r}")
    return parts[0], parts[1] if len(parts) == 2 else None


def _resolve(path: Path) -> Path | None:
    """Return `path` resolved (symlinks followed), None if it does not exist."""
    try:
        return path.resolve(strict=True)
    except (OSError, RuntimeError):  # missing, a symlink loop, unreadable
        return None


def _inside(resolved_root: Path, path: Path) -> Path | None:
    """Return `path` resolved if it exists strictly inside `resolved_root`."""
    resolved = _resolve(path)
    if resolved is None or resolved == resolved_root:
        return None
    return resolved if resolved.is_relative_to(resolved_root) else None


def existing_file(root: Path, folder: str, name: str) -> Path | None:
    """Return the resolved path of a printer folder's file, None if not there.

    Runs in the executor. The folder and name must be valid names (checked by
    the caller); the file must be a regular file that resolves inside `root`
    (a symlink leading out of it is refused).
    """
    if (resolved_root := _resolve(root)) is None:
        return None
    resolved = _inside(resolved_root, root / folder / name)
    if resolved is None or not resolved.is_file():
        return None
    return resolved


@dataclass(frozen=True, slots=True)
class Recording:
    """A finished video in a printer folder."""

    name: str
    mtime: float
    thumbnail: str | None
    """The thumbnail's file name, if there is one."""


def list_printer_folders(root: Path) -> list[str]:
    """Return the printer folders under `root` (none if it does not exist).

    Runs in the executor.
    """
    if (resolved_root := _resolve(root)) is None:
        return []
    try:
        children = list(root.iterdir())
    except OSError:  # not a directory, unreadable
        return []
    return [
        child.name
        for child in children
        if valid_name(child.name)
        and (resolved := _inside(resolved_root, child)) is not None
        and resolved.is_dir()
    ]


def list_recordings(root: Path, folder: str) -> list[Recording] | None:
    """Return a printer folder's videos, newest first; None if no such folder.

    Runs in the executor. Only regular `*.mp4` files resolving inside `root`
    count; a `<stem>.jpg` next to one is its thumbnail.
    """
    if (resolved_root := _resolve(root)) is None:
        return None
    resolved = _inside(resolved_root, root / folder)
    if resolved is None or not resolved.is_dir():
        return None
    try:
        children = list((root / folder).iterdir())
    except OSError:
        return None
    files: dict[str, float] = {}
    for child in children:
        if not valid_file_name(child.name, (VIDEO_SUFFIX, THUMBNAIL_SUFFIX)):
            continue
        if (path := _inside(resolved_root, child)) is None:
            continue
        try:
            info = path.stat()
        except OSError:
            continue
        if S_ISREG(info.st_mode):
            files[child.name] = info.st_mtime
    recordings = []
    for name, mtime in files.items():
        if not name.endswith(VIDEO_SUFFIX):
            continue
        thumbnail = name.removesuffix(VIDEO_SUFFIX) + THUMBNAIL_SUFFIX
        recordings.append(
            Recording(name, mtime, thumbnail if thumbnail in files else None)
        )
    recordings.sort(key=lambda rec: (rec.mtime, rec.name), reverse=True)
    return recordings


class PrintCamMediaSource(MediaSource):
    """PrintCam's recordings: a folder per printer, its videos newest first."""

    name = "PrintCam"

    def __init__(self, hass: HomeAssistant) -> None:
        """Initialize the media source."""
        super().__init__(DOMAIN)
        self.hass = hass

    def _printer_titles(self) -> dict[str, str]:
        """Return each PrintCam entry's title by its folder name (the title's slug).

        An entry without a title names nothing: its folder keeps its name.
        """
        titles: dict[str, str] = {}
        for entry in self.hass.config_entries.async_entries(DOMAIN):
            if entry.title:
                titles.setdefault(slugify(entry.title), entry.title)
        return titles

    def _printer_item(self, folder: str, title: str) -> BrowseMediaSource:
        return BrowseMediaSource(
            domain=DOMAIN,
            identifier=folder,
            media_class=MediaClass.DIRECTORY,
            media_content_type="",
            title=title,
            can_play=False,
            can_expand=True,
            children_media_class=MediaClass.VIDEO,
        )

    async def async_resolve_media(self, item: MediaSourceItem) -> PlayMedia:
        """Resolve a recording to the path the view serves it at."""
        try:
            folder, name = parse_identifier(item.identifier)
        except ValueError as err:
            raise Unresolvable(str(err)) from err
        if folder is None or name is None:
            raise Unresolvable(
                f"Not a PrintCam recording: {item.identifier or '(root)'!r}"
            )
        if not valid_file_name(name, (VIDEO_SUFFIX,)):
            raise Unresolvable(f"Not a PrintCam video: {item.identifier!r}")
        root = recordings_root(self.hass)
        if not await self.hass.async_add_executor_job(
            existing_file, root, folder, name
        ):
            raise Unresolvable(f"No such PrintCam recording: {item.identifier!r}")
        return PlayMedia(media_url(folder, name), VIDEO_MIME_TYPE)

    async def async_browse_media(self, item: MediaSourceItem) -> BrowseMediaSource:
        """Browse the printers, or one printer's recordings."""
        try:
            folder, name = parse_identifier(item.identifier)
        except ValueError as err:
            raise BrowseError(str(err)) from err
        if name is not None:
            raise BrowseError(f"Not a PrintCam printer folder: {item.identifier!r}")
        root = recordings_root(self.hass)
        titles = self._printer_titles()
        if folder is None:
            return await self._async_browse_root(root, titles)
        recordings = await self.hass.async_add_executor_job(
            list_recordings, root, folder
        )
        if recordings is None:
            raise BrowseError(f"No PrintCam recordings for {folder!r}")
        printer = self._printer_item(folder, titles.get(folder, folder))
        printer.children = [
            BrowseMediaSource(
                domain=DOMAIN,
                identifier=f"{folder}/{rec.name}",
                media_class=MediaClass.VIDEO,
                media_content_type=VIDEO_MIME_TYPE,
                title=recording_title(rec.name),
                can_play=True,
                can_expand=False,
                thumbnail=media_url(folder, rec.thumbnail) if rec.thumbnail else None,
            )
            for rec in recordings
        ]
        return printer

    async def _async_browse_root(
        self, root: Path, titles: dict[str, str]
    ) -> BrowseMediaSource:
        folders = await self.hass.async_add_executor_job(list_printer_folders, root)
        base = BrowseMediaSource(
            domain=DOMAIN,
            identifier=None,
            media_class=MediaClass.DIRECTORY,
            media_content_type="",
            title=self.name or DOMAIN,
            can_play=False,
            can_expand=True,
            children_media_class=MediaClass.DIRECTORY,
        )
        named = sorted((titles.get(folder, folder), folder) for folder in folders)
        named.sort(key=lambda pair: pair[0].casefold())
        base.children = [self._printer_item(folder, title) for title, folder in named]
        return base


class PrintCamMediaView(HomeAssistantView):
    """Serve PrintCam's recordings (videos and thumbnails) to signed-in users.

    Range requests work (aiohttp's FileResponse). Anything that is not a
    `.mp4` or `.jpg` file directly in a printer folder under the recordings
    root is 404.
    """

    url = MEDIA_URL
    name = "api:printcam:media"
    requires_auth = True

    def __init__(self, hass: HomeAssistant) -> None:
        """Initialize the view."""
        self.hass = hass

    async def get(
        self, request: web.Request, folder: str, file: str
    ) -> web.FileResponse:
        """Serve one recording or thumbnail."""
        suffix = next((s for s in MIME_TYPES if file.endswith(s)), None)
        if (
            suffix is None
            or not valid_name(folder)
            or not valid_file_name(file, tuple(MIME_TYPES))
        ):
            raise web.HTTPNotFound
        root = recordings_root(self.hass)
        path = await self.hass.async_add_executor_job(existing_file, root, folder, file)
        if path is None:
            raise web.HTTPNotFound
        return web.FileResponse(path, headers={hdrs.CONTENT_TYPE: MIME_TYPES[suffix]})
