"""The real OctoPrint and Moonraker harness: webcams, keys, uuid, clean stops.

These check the harness (printer_sim/octoprint_server.py,
printer_sim/moonraker_server.py) against the real servers; PrintCam's own
OctoPrint and Klipper tests build on it. One OctoPrint serves the module
(it takes 1 to 2.5 s to start); Moonraker (about 0.5 s) starts per test.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from printer_sim.mjpeg_server import MjpegPrinter
from printer_sim.moonraker_server import MoonrakerServer, MoonrakerWebcam
from printer_sim.octoprint_server import (
    ClassicWebcam,
    OctoPrintServer,
    OctoPrintWebcam,
    ServerError,
    http_request,
    http_request_sync,
)

from .real_servers_support import (
    MOONRAKER_SKIP,
    OCTOPRINT_SKIP,
    group_gone,
    pinned_version,
    reaped,
    shared_server,
)

needs_octoprint = pytest.mark.skipif(
    OCTOPRINT_SKIP is not None, reason=str(OCTOPRINT_SKIP)
)
needs_moonraker = pytest.mark.skipif(
    MOONRAKER_SKIP is not None, reason=str(MOONRAKER_SKIP)
)


@pytest.fixture(scope="module")
def octoprint() -> Iterator[OctoPrintServer]:
    """One OctoPrint for the module (no rate limit: tests share it)."""
    if OCTOPRINT_SKIP is not None:
        pytest.skip(OCTOPRINT_SKIP)
    yield from shared_server(OctoPrintServer(rate_limit=False))


# --- OctoPrint ---------------------------------------------------------------------


@needs_octoprint
async def test_octoprint_settings_list_every_configured_webcam(
    octoprint: OctoPrintServer, socket_enabled: None
) -> None:
    """/api/settings with the key lists the classic and the plugin's webcams."""
    await octoprint.set_webcams(
        ClassicWebcam(
            stream="/webcam/?action=stream",
            snapshot="http://127.0.0.1:8080/?action=snapshot",
            flip_h=True,
            rotate90=True,
        ),
        [
            OctoPrintWebcam(
                name="nozzle",
                display_name="Nozzle",
                stream="http://127.0.0.1:8081/stream.mjpg",
                snapshot="http://127.0.0.1:8081/snapshot.jpg",
                flip_v=True,
                stream_ratio="4:3",
            ),
            OctoPrintWebcam(name="chamber", stream="webrtc://127.0.0.1:8889/chamber"),
            OctoPrintWebcam(
                name="hls", stream="http://127.0.0.1:8888/cam/index.m3u8", rotate90=True
            ),
            OctoPrintWebcam(
                name="odd", compat=False, extras={"url": "rtsp://127.0.0.1:8554/cam"}
            ),
        ],
        default="nozzle",
    )

    status, body = await http_request(
        "GET", octoprint.url + "/api/settings", headers={"X-Api-Key": octoprint.api_key}
    )

    assert status == 200
    webcam = body["webcam"]
    cams = {cam["name"]: cam for cam in webcam["webcams"]}
    assert list(cams) == ["classic", "nozzle", "chamber", "hls", "odd"]
    classic = cams["classic"]
    assert classic["provider"] == "classicwebcam"
    assert (classic["flipH"], classic["flipV"], classic["rotate90"]) == (
        True,
        False,
        True,
    )
    assert classic["canSnapshot"] is True
    assert classic["compat"]["stream"] == "/webcam/?action=stream"
    assert classic["compat"]["snapshot"] == "http://127.0.0.1:8080/?action=snapshot"
    nozzle = cams["nozzle"]
    assert nozzle["provider"] == "printcam_webcams"
    assert nozzle["displayName"] == "Nozzle"
    assert (nozzle["flipH"], nozzle["flipV"], nozzle["rotate90"]) == (
        False,
        True,
        False,
    )
    assert nozzle["canSnapshot"] is True
    assert nozzle["compat"]["stream"] == "http://127.0.0.1:8081/stream.mjpg"
    assert nozzle["compat"]["snapshot"] == "http://127.0.0.1:8081/snapshot.jpg"
    assert nozzle["compat"]["streamRatio"] == "4:3"
    assert cams["chamber"]["compat"]["stream"] == "webrtc://127.0.0.1:8889/chamber"
    assert cams["chamber"]["canSnapshot"] is False
    assert cams["hls"]["rotate90"] is True
    assert cams["odd"]["compat"] is None
    assert cams["odd"]["extras"]["url"] == "rtsp://127.0.0.1:8554/cam"
    # The deprecated top-level fields copy the default webcam.
    assert webcam["defaultWebcam"] == "nozzle"
    assert webcam["streamUrl"] == "http://127.0.0.1:8081/stream.mjpg"
    assert (webcam["flipH"], webcam["flipV"], webcam["rotate90"]) == (
        False,
        True,
        False,
    )
    assert webcam["webcamEnabled"] is True
    # Off the network: the discovery plugin (zeroconf, SSDP) is not running.
    assert "discovery" not in body["plugins"]
    # Without a key: refused.
    status, _ = await http_request("GET", octoprint.url + "/api/settings")
    assert status == 403


@needs_octoprint
async def test_octoprint_set_webcams_replaces_them_all(
    octoprint: OctoPrintServer, socket_enabled: None
) -> None:
    """A second set_webcams leaves only what it names (a shared server's reset)."""
    await octoprint.set_webcams(
        ClassicWebcam(stream="/a"), [OctoPrintWebcam(name="b", stream="/b")]
    )

    webcam = await octoprint.set_webcams(enabled=False)

    assert [cam["name"] for cam in webcam["webcams"]] == ["classic"]
    assert webcam["webcams"][0]["compat"]["stream"] == ""
    assert webcam["webcams"][0]["flipH"] is False
    assert webcam["defaultWebcam"] == "classic"
    assert webcam["webcamEnabled"] is False


@needs_octoprint
async def test_octoprint_snapshot_of_a_plugin_webcam(
    octoprint: OctoPrintServer, printer: MjpegPrinter
) -> None:
    """/downloads/camera/current fetches the snapshot webcam's URL (the plugin's)."""
    await octoprint.set_webcams(
        webcams=[
            OctoPrintWebcam(name="cam", stream=printer.url, snapshot=printer.still_url)
        ],
        snapshot_webcam="cam",
    )

    async with (
        aiohttp.ClientSession() as session,
        session.get(
            octoprint.url + "/downloads/camera/current", headers=octoprint.headers
        ) as response,
    ):
        body = await response.read()

    assert response.status == 200
    assert body[:2] == b"\xff\xd8"


@needs_octoprint
async def test_octoprint_app_key_request_approved_and_denied(
    octoprint: OctoPrintServer, socket_enabled: None
) -> None:
    """The Application Keys workflow, with the harness deciding as the admin."""
    url = octoprint.url
    assert (await http_request("GET", url + "/plugin/appkeys/probe"))[0] == 204
    status, body = await http_request(
        "POST", url + "/plugin/appkeys/request", json_body={"app": "PrintCam"}
    )
    assert status == 201
    poll = url + f"/plugin/appkeys/request/{body['app_token']}"
    assert (await http_request("GET", poll)) == (202, {"message": "Awaiting decision"})
    pending = await octoprint.wait_for_app_key_request("PrintCam")
    assert pending["remote_address"] == "127.0.0.1"

    user_token = await octoprint.approve_app_key_request(body["app_token"])

    assert user_token == pending["user_token"]
    status, body = await http_request("GET", poll)
    assert status == 200
    key = body["api_key"]
    # Given once: then the request is gone.
    assert (await http_request("GET", poll))[0] == 404
    # The key is the admin's: it sees the webcams.
    settings = await octoprint.settings(api_key=key)
    assert settings["webcam"]["webcams"]

    # Denied, found by the app's name.
    status, body = await http_request(
        "POST", url + "/plugin/appkeys/request", json_body={"app": "Other"}
    )
    assert status == 201
    await octoprint.approve_app_key_request(app="Other", approve=False)
    assert (
        await http_request("GET", url + f"/plugin/appkeys/request/{body['app_token']}")
    )[0] == 404
    assert await octoprint.pending_app_key_requests() == {}
    with pytest.raises(ServerError, match="found 0"):
        await octoprint.approve_app_key_request(app="Nobody")


@needs_octoprint
async def test_octoprint_version_and_uuid(
    octoprint: OctoPrintServer, socket_enabled: None
) -> None:
    """The TXT record's version comes from /api/version; its uuid is configured."""
    properties = await octoprint.zeroconf_properties()

    assert properties == {
        "path": "/",
        "version": pinned_version("octoprint"),
        "api": "0.1",
        "uuid": octoprint.uuid,
    }
    assert await octoprint.server_uuid() == octoprint.uuid
    _, server = await octoprint.request("GET", "/api/server", expect=200)
    assert server["version"] == pinned_version("octoprint")


@needs_octoprint
async def test_octoprint_async_without_classic_webcam_stops_clean(
    socket_enabled: None,
) -> None:
    """Its own server, started in the test's loop: no classic webcam at all."""
    async with OctoPrintServer(classic_webcam=False) as server:
        pid, directory = server.pid, server.directory
        assert (await server.webcam_settings())["webcams"] == []
        webcam = await server.set_webcams(
            webcams=[OctoPrintWebcam(name="c", stream="/s")]
        )
        # defaultWebcam "classic" does not exist: the first with a stream.
        assert [cam["name"] for cam in webcam["webcams"]] == ["c"]
        assert webcam["defaultWebcam"] == "c"
        with pytest.raises(ValueError, match="classic"):
            await server.set_webcams(ClassicWebcam(stream="/x"))

    assert reaped(pid)
    assert group_gone(pid)
    assert directory is not None
    assert not directory.exists()
    assert not server.killed


# --- Moonraker ---------------------------------------------------------------------

CONFIG_WEBCAMS = (
    MoonrakerWebcam(
        name="front",
        stream_url="/webcam/?action=stream",
        snapshot_url="/webcam/?action=snapshot",
        flip_horizontal=True,
        rotation=90,
        target_fps=10,
    ),
    MoonrakerWebcam(
        name="side",
        service="webrtc-camerastreamer",
        stream_url="http://127.0.0.1:8080/webrtc",
        flip_vertical=True,
        rotation=180,
        enabled=False,
    ),
)


@needs_moonraker
async def test_moonraker_lists_configured_and_added_webcams(
    socket_enabled: None,
) -> None:
    """Config webcams as configured, API ones added and deleted."""
    async with MoonrakerServer(webcams=CONFIG_WEBCAMS) as server:
        # Trusted 127.0.0.0/8: no key needed.
        status, body = await http_request("GET", server.url + "/server/webcams/list")
        assert status == 200
        front, side = body["result"]["webcams"]
        assert {
            k: front[k] for k in ("name", "service", "stream_url", "snapshot_url")
        } == {
            "name": "front",
            "service": "mjpegstreamer",
            "stream_url": "/webcam/?action=stream",
            "snapshot_url": "/webcam/?action=snapshot",
        }
        assert (
            front["flip_horizontal"],
            front["flip_vertical"],
            front["rotation"],
        ) == (
            True,
            False,
            90,
        )
        assert (front["target_fps"], front["enabled"], front["source"]) == (
            10,
            True,
            "config",
        )
        assert side["service"] == "webrtc-camerastreamer"
        assert side["snapshot_url"] == ""
        assert (side["flip_horizontal"], side["flip_vertical"], side["rotation"]) == (
            False,
            True,
            180,
        )
        assert side["enabled"] is False

        added = await server.add_webcam(
            MoonrakerWebcam(
                name="hls",
                service="hlsstream",
                stream_url="http://127.0.0.1:8888/cam/index.m3u8",
                flip_vertical=True,
                rotation=270,
            )
        )

        assert added["source"] == "database"
        webcams = await server.webcams()
        assert [cam["name"] for cam in webcams] == ["front", "side", "hls"]
        assert webcams[2] == added
        assert (added["flip_vertical"], added["rotation"]) == (True, 270)

        deleted = await server.delete_webcam("hls")

        assert deleted["uid"] == added["uid"]
        assert [cam["name"] for cam in await server.webcams()] == ["front", "side"]
        status, _ = await server.request("DELETE", "/server/webcams/item?name=front")
        assert status == 400  # config webcams are read-only
        # Off the network: no zeroconf component.
        assert "zeroconf" not in (await server.server_info())["components"]


@needs_moonraker
async def test_moonraker_untrusted_needs_the_api_key(socket_enabled: None) -> None:
    """Without trusted clients: 401 without the key, 200 with it."""
    async with MoonrakerServer(webcams=CONFIG_WEBCAMS[:1], trusted=False) as server:
        url = server.url + "/server/webcams/list"
        assert (await http_request("GET", url))[0] == 401
        assert (await http_request("GET", url, headers={"X-Api-Key": "0" * 32}))[
            0
        ] == 401
        status, body = await http_request("GET", url, headers=server.headers)
        assert status == 200
        assert [cam["name"] for cam in body["result"]["webcams"]] == ["front"]
        _, body = await server.request("GET", "/access/api_key", expect=200)
        assert body["result"] == server.api_key

        assert await server.server_uuid() == server.instance_uuid
        assert await server.zeroconf_properties() == {
            "uuid": server.instance_uuid,
            "https_port": None,
            "version": pinned_version("moonraker"),
            "route_prefix": None,
        }


@needs_moonraker
def test_moonraker_sync_life_cycle_leaves_nothing(socket_enabled: None) -> None:
    """start_sync / stop_sync (what a module fixture uses) reap the group."""
    with MoonrakerServer() as server:
        pid, directory = server.pid, server.directory
        status, body = http_request_sync("GET", server.url + "/server/info")
        assert status == 200
        assert body["result"]["klippy_state"] == "disconnected"

    assert reaped(pid)
    assert group_gone(pid)
    assert isinstance(directory, Path)
    assert not directory.exists()
    assert not server.killed
