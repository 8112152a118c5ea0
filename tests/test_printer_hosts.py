"""OctoPrint and Klipper (Moonraker) printers against the real servers.

OctoPrint 1.11 and Moonraker 0.11 run from their own virtualenvs
(`tests/real_servers_support.py`); their webcams point at fake MJPEG
cameras on 127.0.0.1 that show four coloured quadrants, so a frame's pixels
show the flip and rotation applied.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from homeassistant import config_entries
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import entity_registry as er
import pytest
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.printcam.const import DOMAIN
from printer_sim.mjpeg_server import MjpegPrinter
from printer_sim.moonraker_server import MoonrakerServer, MoonrakerWebcam
from printer_sim.octoprint_server import ClassicWebcam, OctoPrintServer, OctoPrintWebcam

from .conftest import Viewer, until
from .real_servers_support import MOONRAKER_SKIP, OCTOPRINT_SKIP, shared_server
from .test_transform import corners_shown, quadrants, size_of

type PrinterFactory = Callable[..., Awaitable[MjpegPrinter]]

octoprint_only = pytest.mark.skipif(
    OCTOPRINT_SKIP is not None, reason=str(OCTOPRINT_SKIP)
)
moonraker_only = pytest.mark.skipif(
    MOONRAKER_SKIP is not None, reason=str(MOONRAKER_SKIP)
)
PICTURE = quadrants(64, 32)


@pytest.fixture(scope="module")
def octoprint() -> Iterator[OctoPrintServer]:
    """One real OctoPrint for the module (it starts in 1-3 s)."""
    if OCTOPRINT_SKIP is not None:
        pytest.skip(OCTOPRINT_SKIP)
    yield from shared_server(OctoPrintServer(rate_limit=False))


async def cameras(make: PrinterFactory, count: int) -> list[MjpegPrinter]:
    return [await make(frames=[PICTURE], fps=20.0) for _ in range(count)]


async def add(hass: HomeAssistant, kind: str, form: dict[str, Any]) -> dict[str, Any]:
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": config_entries.SOURCE_USER}
    )
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"next_step_id": kind}
    )
    assert result["step_id"] == kind
    result = await hass.config_entries.flow.async_configure(result["flow_id"], form)
    await hass.async_block_till_done()
    return dict(result)


def entity_ids(hass: HomeAssistant, entry_id: str) -> set[str]:
    registry = er.async_get(hass)
    return {e.entity_id for e in er.async_entries_for_config_entry(registry, entry_id)}


@octoprint_only
async def test_octoprint_from_key_to_cameras(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    octoprint: OctoPrintServer,
    make_mjpeg_printer: PrinterFactory,
) -> None:
    classic_cam, nozzle_cam = await cameras(make_mjpeg_printer, 2)
    await octoprint.set_webcams(
        ClassicWebcam(stream=classic_cam.url, flip_h=True),
        [
            OctoPrintWebcam(
                name="nozzle",
                display_name="Nozzle",
                stream=nozzle_cam.url,
                rotate90=True,
            ),
            OctoPrintWebcam(name="room", stream="webrtc://127.0.0.1/room"),
            OctoPrintWebcam(name="plain", compat=False),
        ],
    )
    result = await add(
        hass,
        "octoprint",
        {
            "host": "127.0.0.1",
            "port": octoprint.port,
            "ssl": False,
            "path": "/",
            "api_key": octoprint.api_key,
        },
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY, result
    assert result["data"] == {
        "kind": "octoprint",
        "host": "127.0.0.1",
        "port": octoprint.port,
        "ssl": False,
        "path": "/",
        "api_key": octoprint.api_key,
    }
    assert result["description"] == "webcams"
    placeholders = result["description_placeholders"]
    assert placeholders["cameras"] == "Classic Webcam, Nozzle"
    assert "room: not mjpeg (webrtc stream)" in placeholders["skipped"]
    assert "plain: no stream url" in placeholders["skipped"]
    entry = result["result"]
    assert entry.state is ConfigEntryState.LOADED
    ids = entity_ids(hass, entry.entry_id)
    title = entry.title.lower().replace(" ", "_").replace(".", "_")
    camera_ids = sorted(i for i in ids if i.startswith("camera."))
    assert len(camera_ids) == 2, ids

    client = await hass_client()
    viewers = {}
    for camera_id in camera_ids:
        response = await client.get(f"/api/camera_proxy_stream/{camera_id}")
        assert response.status == 200
        viewers[camera_id] = Viewer(response)
    for viewer in viewers.values():
        await viewer.wait_frames(2)
    # One upstream per webcam, each turned as OctoPrint shows it.
    assert classic_cam.total_connections == nozzle_cam.total_connections == 1
    shapes = {size_of(v.frames[-1]) for v in viewers.values()}
    assert shapes == {(64, 32), (32, 64)}
    for viewer in viewers.values():
        frame = viewer.frames[-1]
        if size_of(frame) == (64, 32):  # classic: flipped horizontally
            assert corners_shown(frame)["TL"] == "TR"
        else:  # nozzle: 90 degrees counter-clockwise
            assert corners_shown(frame)["TL"] == "TR"
        await viewer.close()
    assert title
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()


@moonraker_only
async def test_moonraker_from_address_to_cameras(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    socket_enabled: None,
    make_mjpeg_printer: PrinterFactory,
) -> None:
    nozzle_cam, bed_cam = await cameras(make_mjpeg_printer, 2)
    async with MoonrakerServer(
        webcams=[
            MoonrakerWebcam(name="nozzle", stream_url=nozzle_cam.url, rotation=90),
            MoonrakerWebcam(name="bed", stream_url=bed_cam.url, flip_vertical=True),
            MoonrakerWebcam(
                name="room", stream_url="/webcam2/", service="webrtc-camerastreamer"
            ),
        ]
    ) as moonraker:
        result = await add(
            hass,
            "moonraker",
            {"host": "127.0.0.1", "port": moonraker.port, "ssl": False},
        )
        assert result["type"] is FlowResultType.CREATE_ENTRY, result
        assert result["data"] == {
            "kind": "moonraker",
            "host": "127.0.0.1",
            "port": moonraker.port,
            "ssl": False,
            "api_key": "",
        }
        entry = result["result"]
        assert entry.unique_id == moonraker.instance_uuid
        placeholders = result["description_placeholders"]
        assert placeholders["cameras"] == "nozzle, bed"
        assert "room: not mjpeg (webrtc-camerastreamer)" in placeholders["skipped"]
        ids = entity_ids(hass, entry.entry_id)
        assert {
            "camera.klipper_127_0_0_1_nozzle",
            "camera.klipper_127_0_0_1_bed",
        } <= ids
        client = await hass_client()
        nozzle = Viewer(
            await client.get("/api/camera_proxy_stream/camera.klipper_127_0_0_1_nozzle")
        )
        bed = Viewer(
            await client.get("/api/camera_proxy_stream/camera.klipper_127_0_0_1_bed")
        )
        await nozzle.wait_frames(2)
        await bed.wait_frames(2)
        assert size_of(nozzle.frames[-1]) == (32, 64)
        assert corners_shown(nozzle.frames[-1])["TL"] == "BL"  # clockwise
        assert corners_shown(bed.frames[-1])["TL"] == "BL"  # flipped vertically
        await nozzle.close()
        await bed.close()
        assert await hass.config_entries.async_unload(entry.entry_id)
        await hass.async_block_till_done()
        await until(
            lambda: nozzle_cam.open_connections == bed_cam.open_connections == 0
        )
