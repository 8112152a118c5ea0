"""Media source: PrintCam's timelapses and clips, listed per printer and played.

Everything goes through media_source's public API, its websocket commands and
HTTP: what the frontend's media browser does.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from unittest.mock import Mock, patch

from aiohttp import web
from homeassistant.components import media_source
from homeassistant.components.media_player import BrowseError
from homeassistant.components.media_source import Unresolvable
from homeassistant.components.media_source.models import BrowseMediaSource
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.typing import (
    ClientSessionGenerator,
    WebSocketGenerator,
)
from yarl import URL

from custom_components.printcam.const import DOMAIN
from custom_components.printcam.media_source import (
    PrintCamMediaView,
    async_get_media_source,
    parse_identifier,
    recording_title,
)
from custom_components.printcam.recorder import recordings_root

PRINTER = "p1s_workshop"
NEWEST = "timelapse_2026-11-29_16-40-12.mp4"
OLDER = "clip_nozzle_cam_2026-11-28_09-05-01.mp4"
OLDEST = "timelapse_2026-11-27_23-59-59.mp4"
VIDEO = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 4
THUMB = b"\xff\xd8\xff\xe0 thumbnail \xff\xd9"
SECRET = b"not for you"
BASE = "media-source://printcam"
VIEW = "/api/printcam/media"


def _write(path: Path, data: bytes = VIDEO, mtime: float | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


@pytest.fixture
def media(hass: HomeAssistant, tmp_path: Path) -> Path:
    """The media folder (Home Assistant's only one); recordings go below it."""
    hass.config.media_dirs = {"local": str(tmp_path)}
    return tmp_path


@pytest.fixture
def root(hass: HomeAssistant, media: Path) -> Path:
    """PrintCam's recordings root, with one printer's recordings and clutter."""
    root = recordings_root(hass)
    assert root == media / "printcam"
    folder = root / PRINTER
    _write(folder / OLDER, mtime=1_000_000_200)
    _write(folder / NEWEST, mtime=1_000_000_300)
    _write(folder / NEWEST.replace(".mp4", ".jpg"), THUMB)
    _write(folder / OLDEST, mtime=1_000_000_100)
    # A recording in progress, temporary and other files: never listed.
    work = folder / ".timelapse_2026-11-29_18-00-00.work"
    _write(work / "frames" / "000001.jpg", THUMB)
    _write(work / "recording.json", b"{}")
    _write(folder / ".timelapse_2026-11-29_17-00-00.mp4.part")
    _write(folder / "timelapse_2026-11-29_17-30-00.mp4.part")
    _write(folder / ".hidden.mp4", SECRET)
    _write(folder / "notes.txt", SECRET)
    _write(folder / "orphan.jpg", THUMB)  # no video: not listed (but served)
    (folder / "subfolder.mp4").mkdir()  # a folder, not a video
    # Not in a printer folder: in the media folder, in the root, in a dot-folder.
    _write(media / "secret.mp4", SECRET)
    _write(root / "stray.mp4", SECRET)
    _write(root / ".work_of_nobody" / "x.mp4", SECRET)
    return root


async def _setup(hass: HomeAssistant, *titles: str) -> list[MockConfigEntry]:
    """Load media_source and PrintCam; add entries with these titles (not set up).

    Every HTTP view is registered here, before a test client freezes the router.
    """
    assert await async_setup_component(hass, "websocket_api", {})
    assert await async_setup_component(hass, "auth", {})
    assert await async_setup_component(hass, "media_source", {})
    assert await async_setup_component(hass, DOMAIN, {})
    await hass.async_block_till_done()
    entries = []
    for title in titles:
        entry = MockConfigEntry(domain=DOMAIN, title=title, data={"kind": "mjpeg"})
        entry.add_to_hass(hass)
        entries.append(entry)
    return entries


async def _browse(hass: HomeAssistant, identifier: str = "") -> BrowseMediaSource:
    return await media_source.async_browse_media(
        hass, f"{BASE}/{identifier}" if identifier else BASE
    )


def _summary(item: Any) -> list[tuple[str, str]]:
    return [(child.identifier, child.title) for child in item.children]


async def test_root_lists_printers_with_their_entry_titles(
    hass: HomeAssistant, root: Path, hass_ws_client: WebSocketGenerator
) -> None:
    _write(root / "garage_x1" / OLDEST)
    (root / "zz_empty").mkdir()
    (root / "ender_3_garage").mkdir()
    entries = await _setup(hass, "P1S Workshop", "Voron 2.4", "Ender 3 (Garage)", "")
    # An entry without a title: the recorder names its folder by the entry id.
    (root / entries[3].entry_id).mkdir()

    # PrintCam is among the media sources.
    sources = await media_source.async_browse_media(hass, None)
    assert [c.media_content_id for c in sources.children if c.title == "PrintCam"]

    item = await _browse(hass)
    assert item.media_content_id == BASE
    assert item.title == "PrintCam"
    assert item.can_expand
    assert not item.can_play
    assert item.media_class == "directory"
    assert item.children_media_class == "directory"
    # Sorted by title; the entry's title where its slug is the folder.
    assert _summary(item) == [
        (entries[3].entry_id, entries[3].entry_id),
        ("ender_3_garage", "Ender 3 (Garage)"),
        ("garage_x1", "garage_x1"),
        (PRINTER, "P1S Workshop"),
        ("zz_empty", "zz_empty"),
    ]
    for child in item.children:
        assert child.media_class == "directory"
        assert child.children_media_class == "video"
        assert child.can_expand
        assert not child.can_play
        assert child.media_content_id == f"{BASE}/{child.identifier}"

    # The websocket the media browser uses says the same.
    client = await hass_ws_client(hass)
    await client.send_json_auto_id(
        {"type": "media_source/browse_media", "media_content_id": BASE}
    )
    msg = await client.receive_json()
    assert msg["success"], msg
    assert [(c["media_content_id"], c["title"]) for c in msg["result"]["children"]] == [
        (f"{BASE}/{entries[3].entry_id}", entries[3].entry_id),
        (f"{BASE}/ender_3_garage", "Ender 3 (Garage)"),
        (f"{BASE}/garage_x1", "garage_x1"),
        (f"{BASE}/{PRINTER}", "P1S Workshop"),
        (f"{BASE}/zz_empty", "zz_empty"),
    ]


async def test_printer_folder_lists_videos_newest_first(
    hass: HomeAssistant, root: Path, hass_ws_client: WebSocketGenerator
) -> None:
    await _setup(hass, "P1S Workshop")
    item = await _browse(hass, PRINTER)
    assert item.title == "P1S Workshop"
    assert item.media_class == "directory"
    assert item.children_media_class == "video"
    assert _summary(item) == [
        (f"{PRINTER}/{NEWEST}", "Timelapse 2026-11-29 16:40:12"),
        (f"{PRINTER}/{OLDER}", "Clip 2026-11-28 09:05:01 (nozzle cam)"),
        (f"{PRINTER}/{OLDEST}", "Timelapse 2026-11-27 23:59:59"),
    ]
    for child in item.children:
        assert child.media_class == "video"
        assert child.media_content_type == "video/mp4"
        assert child.can_play
        assert not child.can_expand
    # A thumbnail where the recorder wrote one.
    assert [child.thumbnail for child in item.children] == [
        f"{VIEW}/{PRINTER}/{NEWEST.replace('.mp4', '.jpg')}",
        None,
        None,
    ]

    # The newest recording comes first as soon as it is written.
    newer = "clip_2026-11-30_08-00-00.mp4"
    _write(root / PRINTER / newer, mtime=1_000_000_400)
    item = await _browse(hass, PRINTER)
    assert item.children[0].identifier == f"{PRINTER}/{newer}"
    assert len(item.children) == 4

    client = await hass_ws_client(hass)
    await client.send_json_auto_id(
        {"type": "media_source/browse_media", "media_content_id": f"{BASE}/{PRINTER}"}
    )
    msg = await client.receive_json()
    assert msg["success"], msg
    assert [c["title"] for c in msg["result"]["children"]] == [
        "Clip 2026-11-30 08:00:00",
        "Timelapse 2026-11-29 16:40:12",
        "Clip 2026-11-28 09:05:01 (nozzle cam)",
        "Timelapse 2026-11-27 23:59:59",
    ]
    assert msg["result"]["children"][1]["thumbnail"] == (
        f"{VIEW}/{PRINTER}/{NEWEST.replace('.mp4', '.jpg')}"
    )


async def test_resolve_and_play_in_the_browser(
    hass: HomeAssistant,
    root: Path,
    hass_client: ClientSessionGenerator,
    hass_client_no_auth: ClientSessionGenerator,
    hass_ws_client: WebSocketGenerator,
) -> None:
    await _setup(hass, "P1S Workshop")
    played = await media_source.async_resolve_media(
        hass, f"{BASE}/{PRINTER}/{NEWEST}", None
    )
    assert played.url == f"{VIEW}/{PRINTER}/{NEWEST}"
    assert played.mime_type == "video/mp4"

    client = await hass_client()
    response = await client.get(played.url)
    assert response.status == 200
    assert response.headers["Content-Type"] == "video/mp4"
    assert await response.read() == VIDEO
    # Range requests work (a video element seeks with them).
    response = await client.get(played.url, headers={"Range": "bytes=8-19"})
    assert response.status == 206
    assert response.headers["Content-Range"] == f"bytes 8-19/{len(VIDEO)}"
    assert await response.read() == VIDEO[8:20]
    # The thumbnail, as the media browser fetches it (with the user's token).
    response = await client.get(f"{VIEW}/{PRINTER}/{NEWEST.replace('.mp4', '.jpg')}")
    assert response.status == 200
    assert response.headers["Content-Type"] == "image/jpeg"
    assert await response.read() == THUMB

    # Nobody else gets anything.
    anonymous = await hass_client_no_auth()
    for path in (played.url, f"{VIEW}/{PRINTER}/{NEWEST.replace('.mp4', '.jpg')}"):
        response = await anonymous.get(path)
        assert response.status == 401

    # The websocket signs the path: the player fetches it without a header.
    ws = await hass_ws_client(hass)
    await ws.send_json_auto_id(
        {
            "type": "media_source/resolve_media",
            "media_content_id": f"{BASE}/{PRINTER}/{OLDER}",
        }
    )
    msg = await ws.receive_json()
    assert msg["success"], msg
    assert msg["result"]["mime_type"] == "video/mp4"
    url = URL(msg["result"]["url"])
    assert url.path == f"{VIEW}/{PRINTER}/{OLDER}"
    assert "authSig" in url.query
    response = await anonymous.get(msg["result"]["url"])
    assert response.status == 200
    assert await response.read() == VIDEO
    # A signature is for its own path only.
    response = await anonymous.get(url.with_path(f"{VIEW}/{PRINTER}/{NEWEST}"))
    assert response.status == 401

    # The media browser has the frontend sign a relative thumbnail for an <img>.
    thumbnail = (await _browse(hass, PRINTER)).children[0].thumbnail
    assert thumbnail is not None
    await ws.send_json_auto_id({"type": "auth/sign_path", "path": thumbnail})
    msg = await ws.receive_json()
    assert msg["success"], msg
    response = await anonymous.get(msg["result"]["path"])
    assert response.status == 200
    assert response.headers["Content-Type"] == "image/jpeg"
    assert await response.read() == THUMB


async def test_names_needing_quoting_are_listed_resolved_and_served(
    hass: HomeAssistant, media: Path, hass_client: ClientSessionGenerator
) -> None:
    name = "my print #1 100%.mp4"
    _write(recordings_root(hass) / "odd folder" / name)
    _write(recordings_root(hass) / "odd folder" / "my print #1 100%.jpg", THUMB)
    await _setup(hass)
    item = await _browse(hass, "odd folder")
    assert _summary(item) == [(f"odd folder/{name}", "my print #1 100%")]
    quoted = f"{VIEW}/odd%20folder/my%20print%20%231%20100%25"
    assert item.children[0].thumbnail == f"{quoted}.jpg"
    played = await media_source.async_resolve_media(
        hass, f"{BASE}/odd folder/{name}", None
    )
    assert played.url == f"{quoted}.mp4"
    client = await hass_client()
    for path, body in ((played.url, VIDEO), (f"{quoted}.jpg", THUMB)):
        response = await client.get(URL(path, encoded=True))
        assert response.status == 200
        assert await response.read() == body


@pytest.mark.parametrize(
    ("identifier", "message"),
    [
        ("", "Not a PrintCam recording"),
        (PRINTER, "Not a PrintCam recording"),
        (f"{PRINTER}/missing.mp4", "No such PrintCam recording"),
        (f"{PRINTER}/../secret.mp4", "Invalid PrintCam media id"),
        (f"{PRINTER}/../../secret.mp4", "Invalid PrintCam media id"),
        (f"../{PRINTER}/{NEWEST}", "Invalid PrintCam media id"),
        (f"{PRINTER}/./{NEWEST}", "Invalid PrintCam media id"),
        (f"{PRINTER}//{NEWEST}", "Invalid PrintCam media id"),
        (f"{PRINTER}/{NEWEST}/", "Invalid PrintCam media id"),
        (f"{PRINTER}\\..\\..\\secret.mp4", "Invalid PrintCam media id"),
        (f"{PRINTER}/..\\..\\secret.mp4", "Invalid PrintCam media id"),
        ("%2e%2e/secret.mp4", "No such PrintCam recording"),
        (f"{PRINTER}/%2e%2e%2f%2e%2e%2fsecret.mp4", "No such PrintCam recording"),
        (f"{PRINTER}/.hidden.mp4", "Invalid PrintCam media id"),
        (f"{PRINTER}/.timelapse_2026-11-29_17-00-00.mp4.part", "Invalid PrintCam"),
        (f"{PRINTER}/timelapse_2026-11-29_17-30-00.mp4.part", "Not a PrintCam video"),
        (f"{PRINTER}/.timelapse_2026-11-29_18-00-00.work", "Invalid PrintCam media"),
        (f"{PRINTER}/notes.txt", "Not a PrintCam video"),
        (f"{PRINTER}/orphan.jpg", "Not a PrintCam video"),
        (f"{PRINTER}/subfolder.mp4", "No such PrintCam recording"),
        (".work_of_nobody/x.mp4", "Invalid PrintCam media id"),
        (f"{PRINTER}/{NEWEST}/x.mp4", "Invalid PrintCam media id"),
        ("stray.mp4", "Not a PrintCam recording"),
    ],
)
async def test_resolve_refuses(
    hass: HomeAssistant, root: Path, identifier: str, message: str
) -> None:
    await _setup(hass)
    uri = f"{BASE}/{identifier}" if identifier else BASE
    with pytest.raises(Unresolvable, match=message):
        await media_source.async_resolve_media(hass, uri, None)


async def test_resolve_refuses_an_absolute_identifier(
    hass: HomeAssistant, root: Path
) -> None:
    await _setup(hass)
    # media_source itself refuses "//..." ...
    with pytest.raises(Unresolvable):
        await media_source.async_resolve_media(hass, f"{BASE}/{root}/x.mp4", None)
    # ... and PrintCam any absolute identifier.
    with pytest.raises(ValueError, match="Invalid PrintCam media id"):
        parse_identifier(str(root / PRINTER / NEWEST))
    with pytest.raises(ValueError, match="Invalid PrintCam media id"):
        parse_identifier("C:\\secret.mp4")


async def test_symlinks_out_of_the_root_are_neither_listed_nor_served(
    hass: HomeAssistant,
    root: Path,
    media: Path,
    tmp_path_factory: pytest.TempPathFactory,
    hass_client: ClientSessionGenerator,
) -> None:
    outside = tmp_path_factory.mktemp("outside")
    _write(outside / "elsewhere.mp4", SECRET)
    (root / PRINTER / "link.mp4").symlink_to(outside / "elsewhere.mp4")
    (root / PRINTER / "media_link.mp4").symlink_to(media / "secret.mp4")
    (root / "linked_printer").symlink_to(outside, target_is_directory=True)
    (root / "looping.mp4").symlink_to(root / "looping.mp4")
    # A link inside the root is fine.
    (root / "alias").symlink_to(root / PRINTER, target_is_directory=True)
    await _setup(hass)

    assert _summary(await _browse(hass)) == [
        ("alias", "alias"),
        (PRINTER, PRINTER),
    ]
    listed = [child.identifier for child in (await _browse(hass, PRINTER)).children]
    assert listed == [
        f"{PRINTER}/{NEWEST}",
        f"{PRINTER}/{OLDER}",
        f"{PRINTER}/{OLDEST}",
    ]
    with pytest.raises(
        BrowseError, match="No PrintCam recordings for 'linked_printer'"
    ):
        await _browse(hass, "linked_printer")
    for identifier in (
        f"{PRINTER}/link.mp4",
        f"{PRINTER}/media_link.mp4",
        "linked_printer/elsewhere.mp4",
    ):
        with pytest.raises(Unresolvable, match="No such PrintCam recording"):
            await media_source.async_resolve_media(hass, f"{BASE}/{identifier}", None)

    client = await hass_client()
    for path in (
        f"{VIEW}/{PRINTER}/link.mp4",
        f"{VIEW}/{PRINTER}/media_link.mp4",
        f"{VIEW}/linked_printer/elsewhere.mp4",
    ):
        response = await client.get(path)
        assert response.status == 404, path
    response = await client.get(f"{VIEW}/alias/{NEWEST}")
    assert response.status == 200
    assert await response.read() == VIDEO


@pytest.mark.parametrize(
    "identifier",
    [
        f"{PRINTER}/{NEWEST}",
        "missing",
        "stray.mp4",
        "..",
        f"../{PRINTER}",
        f"{PRINTER}/..",
        "%2e%2e",
        ".work_of_nobody",
        f"{PRINTER}/.timelapse_2026-11-29_18-00-00.work",
        f"{PRINTER}\\..",
        f"{PRINTER}/subfolder.mp4",
    ],
)
async def test_browse_refuses(hass: HomeAssistant, root: Path, identifier: str) -> None:
    await _setup(hass)
    with pytest.raises(BrowseError, match="PrintCam"):
        await _browse(hass, identifier)


async def test_browse_and_resolve_errors_over_the_websocket(
    hass: HomeAssistant, root: Path, hass_ws_client: WebSocketGenerator
) -> None:
    await _setup(hass)
    client = await hass_ws_client(hass)
    await client.send_json_auto_id(
        {"type": "media_source/browse_media", "media_content_id": f"{BASE}/.."}
    )
    msg = await client.receive_json()
    assert not msg["success"]
    assert msg["error"] == {
        "code": "browse_media_failed",
        "message": "Invalid PrintCam media id: '..'",
    }
    await client.send_json_auto_id(
        {
            "type": "media_source/resolve_media",
            "media_content_id": f"{BASE}/{PRINTER}/../../secret.mp4",
        }
    )
    msg = await client.receive_json()
    assert not msg["success"]
    assert msg["error"]["code"] == "resolve_media_failed"
    assert msg["error"]["message"].startswith("Invalid PrintCam media id")


@pytest.mark.parametrize(
    ("path", "status"),
    [
        (f"{VIEW}/%2e%2e/secret.mp4", 400),
        (f"{VIEW}/{PRINTER}/%2e%2e%2f%2e%2e%2fsecret.mp4", 400),
        (f"{VIEW}/{PRINTER}/..%2f..%2fsecret.mp4", 400),
        (f"{VIEW}/{PRINTER}/..%5c..%5csecret.mp4", 404),
        (f"{VIEW}/{PRINTER}/%2e%2e", 404),
        (f"{VIEW}/%2e/stray.mp4", 404),
        (f"{VIEW}/{PRINTER}/.hidden.mp4", 404),
        (f"{VIEW}/{PRINTER}/timelapse_2026-11-29_17-30-00.mp4.part", 404),
        (f"{VIEW}/{PRINTER}/.timelapse_2026-11-29_17-00-00.mp4.part", 404),
        (f"{VIEW}/{PRINTER}/.timelapse_2026-11-29_18-00-00.work", 404),
        (f"{VIEW}/{PRINTER}/notes.txt", 404),
        (f"{VIEW}/{PRINTER}/missing.mp4", 404),
        (f"{VIEW}/{PRINTER}/subfolder.mp4", 404),
        (f"{VIEW}/.work_of_nobody/x.mp4", 404),
        (f"{VIEW}/missing/{NEWEST}", 404),
        (f"{VIEW}/{PRINTER}/{NEWEST.upper()}", 404),
        (f"{VIEW}/{PRINTER}/%00{NEWEST}", 404),
    ],
)
async def test_view_refuses(
    hass: HomeAssistant,
    root: Path,
    hass_client: ClientSessionGenerator,
    path: str,
    status: int,
) -> None:
    """404; or 400 from Home Assistant's security filter (encoded traversal)."""
    await _setup(hass)
    client = await hass_client()
    response = await client.get(URL(path, encoded=True))
    assert response.status == status
    assert SECRET not in await response.read()


@pytest.mark.parametrize(
    ("folder", "file"),
    [
        ("..", "secret.mp4"),
        (PRINTER, "../../secret.mp4"),
        (PRINTER, "..\\..\\secret.mp4"),
        ("..\\printcam", "stray.mp4"),
        (".", "stray.mp4"),
        (PRINTER, ".."),
        (PRINTER, "."),
        ("", NEWEST),
        (PRINTER, ""),
        (PRINTER, ".hidden.mp4"),
        (PRINTER, "notes.txt"),
        (PRINTER, f"\0{NEWEST}"),
        (PRINTER, "link.mp4"),
        ("/etc", "secret.mp4"),
        (PRINTER, f"/{NEWEST}"),
    ],
)
async def test_view_itself_refuses(
    hass: HomeAssistant, root: Path, media: Path, folder: str, file: str
) -> None:
    """What the security filter would stop never gets past the view either."""
    (root / PRINTER / "link.mp4").symlink_to(media / "secret.mp4")
    view = PrintCamMediaView(hass)
    with pytest.raises(web.HTTPNotFound):
        await view.get(Mock(), folder, file)
    assert isinstance(await view.get(Mock(), PRINTER, NEWEST), web.FileResponse)


async def test_view_paths_a_client_normalises_reach_nothing(
    hass: HomeAssistant, root: Path, hass_client: ClientSessionGenerator
) -> None:
    """Raw ".." in the request line: aiohttp normalises it before routing."""
    await _setup(hass)
    client = await hass_client()
    for path in (
        f"{VIEW}/{PRINTER}/../../secret.mp4",
        f"{VIEW}/../printcam/{PRINTER}/{NEWEST}",
        f"{VIEW}/{PRINTER}/../stray.mp4",
    ):
        response = await client.get(URL(path, encoded=True))
        assert response.status == 404, path
        assert SECRET not in await response.read()


async def test_no_recordings_yet(
    hass: HomeAssistant, media: Path, hass_client: ClientSessionGenerator
) -> None:
    """The recordings root does not exist until the first recording."""
    await _setup(hass, "P1S Workshop")
    item = await _browse(hass)
    assert item.children == []
    with pytest.raises(BrowseError, match="No PrintCam recordings for 'p1s_workshop'"):
        await _browse(hass, PRINTER)
    with pytest.raises(Unresolvable, match="No such PrintCam recording"):
        await media_source.async_resolve_media(hass, f"{BASE}/{PRINTER}/{NEWEST}", None)
    response = await (await hass_client()).get(f"{VIEW}/{PRINTER}/{NEWEST}")
    assert response.status == 404

    # The root is a file: still nothing, no error.
    (media / "printcam").write_bytes(b"")
    assert (await _browse(hass)).children == []


async def test_view_is_registered_once(hass: HomeAssistant, media: Path) -> None:
    await _setup(hass)
    routes = [
        r
        for r in hass.http.app.router.routes()
        if r.resource.canonical == f"{VIEW}/{{folder}}/{{file}}"
    ]
    assert len(routes) == 2  # GET and its HEAD
    await async_get_media_source(hass)
    routes_again = [
        r
        for r in hass.http.app.router.routes()
        if r.resource.canonical == f"{VIEW}/{{folder}}/{{file}}"
    ]
    assert routes_again == routes


@pytest.mark.parametrize(
    ("name", "title"),
    [
        ("timelapse_2026-11-29_16-40-12.mp4", "Timelapse 2026-11-29 16:40:12"),
        ("clip_2026-01-02_03-04-05.mp4", "Clip 2026-01-02 03:04:05"),
        ("clip_nozzle_2026-01-02_03-04-05.mp4", "Clip 2026-01-02 03:04:05 (nozzle)"),
        (
            "timelapse_cam_2_2026-01-02_03-04-05_3.mp4",
            "Timelapse 2026-01-02 03:04:05 #3 (cam 2)",
        ),
        ("timelapse_2026-11-29_16-40-12_2.mp4", "Timelapse 2026-11-29 16:40:12 #2"),
        ("my video.mp4", "my video"),
        ("timelapse_2026-11-29.mp4", "timelapse_2026-11-29"),
        ("Timelapse_2026-11-29_16-40-12.mp4", "Timelapse_2026-11-29_16-40-12"),
    ],
)
def test_recording_title(name: str, title: str) -> None:
    assert recording_title(name) == title


async def test_view_that_cannot_be_registered_only_warns(
    hass: HomeAssistant, media: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A frozen router (a server started first): browsing still works."""
    assert await async_setup_component(hass, "http", {})
    with patch.object(
        hass.http,
        "register_view",
        side_effect=RuntimeError("Cannot register a resource into frozen router."),
    ) as register:
        source = await async_get_media_source(hass)
        await async_get_media_source(hass)
    assert register.call_count == 1
    assert "PrintCam recordings cannot be played: Cannot register" in caplog.text
    assert source.name == "PrintCam"
