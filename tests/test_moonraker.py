"""Klipper printers through Moonraker, against a real Moonraker 0.11.

Each test runs its own Moonraker (`printer_sim.moonraker_server`, about
0.7 s to start) on 127.0.0.1; its webcams point at fake MJPEG cameras on
127.0.0.1 that show four coloured quadrants, so a frame's pixels show the
flip and rotation PrintCam applied. What Home Assistant sees is checked
through Home Assistant: config flows, the camera proxy, the entity registry
and diagnostics. `parse_webcams` and `not_mjpeg_reason` are unit-tested at
the end for what a test server cannot serve (port 80, other hosts).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
import dataclasses
from datetime import timedelta
from ipaddress import ip_address
import json
import logging
import os
import signal
from typing import Any

from aiohttp import web
from homeassistant import config_entries
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import device_registry as dr, entity_registry as er
from homeassistant.helpers.service_info.zeroconf import ZeroconfServiceInfo
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
from homeassistant.util.async_ import get_scheduled_timer_handles
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
)
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.printcam import config_flow, startup
from custom_components.printcam.const import DOMAIN
from custom_components.printcam.families import moonraker
from custom_components.printcam.families.base import (
    Checked,
    InvalidConfig,
    SkippedWebcam,
    WrongPrinter,
)
from custom_components.printcam.families.webcams import (
    MAX_API_BYTES,
    HttpError,
    Webcam,
    cameras_for,
    not_mjpeg_reason,
)
from custom_components.printcam.sources import ProtocolError
from custom_components.printcam.stream import StreamState
from custom_components.printcam.transform import Orientation
from printer_sim import octoprint_server
from printer_sim.mjpeg_server import MjpegPrinter
from printer_sim.moonraker_server import MoonrakerServer, MoonrakerWebcam

from .conftest import Viewer, until
from .real_servers_support import MOONRAKER_SKIP
from .test_transform import (
    corners_shown,
    expected_corners,
    moonraker_ui,
    quadrants,
    size_of,
)

type PrinterFactory = Callable[..., Awaitable[MjpegPrinter]]

needs_moonraker = pytest.mark.skipif(
    MOONRAKER_SKIP is not None, reason=str(MOONRAKER_SKIP)
)
PICTURE = quadrants(64, 32)
"""64 x 32: a quarter turn shows as 32 x 64."""
WAIT = 15.0
"""Bound for anything that goes through Moonraker (CI is loaded)."""
TITLE = "Voron"


# --- helpers ---------------------------------------------------------------------


async def camera(make: PrinterFactory) -> MjpegPrinter:
    """Return a fake webcam showing the quadrants at 20 fps."""
    return await make(frames=[PICTURE], fps=20.0)


def server_form(server: MoonrakerServer, **extra: Any) -> dict[str, Any]:
    return {"host": "127.0.0.1", "port": server.port, "ssl": False, **extra}


async def add_form(hass: HomeAssistant) -> str:
    """Open the add flow at the Moonraker form; return the flow id."""
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": config_entries.SOURCE_USER}
    )
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"next_step_id": "moonraker"}
    )
    assert result["step_id"] == "moonraker"
    return str(result["flow_id"])


async def submit(hass: HomeAssistant, flow_id: str, form: dict[str, Any]) -> Any:
    result = await hass.config_entries.flow.async_configure(flow_id, form)
    await hass.async_block_till_done()
    return result


def moonraker_entry(
    server: MoonrakerServer, *, port: int | None = None, api_key: str = ""
) -> MockConfigEntry:
    """Return an entry as the flow stores it (unique id: the instance uuid)."""
    return MockConfigEntry(
        domain=DOMAIN,
        title=TITLE,
        data={
            "kind": "moonraker",
            "host": "127.0.0.1",
            "port": server.port if port is None else port,
            "ssl": False,
            "api_key": api_key,
        },
        unique_id=server.instance_uuid,
    )


async def set_up(hass: HomeAssistant, entry: MockConfigEntry) -> MockConfigEntry:
    await async_setup_component(hass, "http", {})
    entry.add_to_hass(hass)
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry


def registered(hass: HomeAssistant, entry_id: str) -> dict[str, str]:
    """Return entity id -> unique id of the entry's registered entities."""
    registry = er.async_get(hass)
    return {
        e.entity_id: e.unique_id
        for e in er.async_entries_for_config_entry(registry, entry_id)
    }


def state_of(hass: HomeAssistant, entity_id: str) -> str | None:
    state = hass.states.get(entity_id)
    return None if state is None else state.state


async def watch(
    hass_client: ClientSessionGenerator, camera_id: str, frames: int = 2
) -> Viewer:
    client = await hass_client()
    response = await client.get(f"/api/camera_proxy_stream/{camera_id}")
    assert response.status == 200, camera_id
    viewer = Viewer(response)
    await viewer.wait_frames(frames, timeout=WAIT)
    return viewer


async def hourly_check(hass: HomeAssistant, hours: int = 1) -> None:
    """Let time pass `hours` after setup: the hourly webcam check runs.

    Every timer due before then runs too (read timeouts of live streams
    and viewers): only for tests with nothing streaming.
    """
    async_fire_time_changed(
        hass,
        dt_util.utcnow()
        + startup.WEBCAM_RECHECK_INTERVAL * hours
        + timedelta(seconds=1),
    )
    await hass.async_block_till_done(wait_background_tasks=True)


async def webcam_check_now(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """Run the entry's hourly webcam check now, and no other timer."""
    name = f"{entry.title} webcams: "
    (handle,) = [
        handle
        for handle in get_scheduled_timer_handles(hass.loop)
        if not handle.cancelled()
        and handle._args
        and str(getattr(handle._args[0], "name", "")).startswith(name)
    ]
    handle._run()  # reschedules itself and starts the check
    handle.cancel()
    await hass.async_block_till_done(wait_background_tasks=True)


def reauth_flows(hass: HomeAssistant, entry: MockConfigEntry) -> list[Any]:
    return list(entry.async_get_active_flows(hass, {config_entries.SOURCE_REAUTH}))


def zeroconf_info(
    port: int, properties: dict[str, str | None], host: str = "127.0.0.1"
) -> ZeroconfServiceInfo:
    """What Home Assistant's zeroconf hands over for a Moonraker announcement."""
    return ZeroconfServiceInfo(
        ip_address=ip_address(host),
        ip_addresses=[ip_address(host)],
        port=port,
        hostname="voron.local.",
        type=moonraker.ZEROCONF_TYPE,
        name=f"Moonraker Instance on voron.{moonraker.ZEROCONF_TYPE}",
        properties=properties,
    )


async def announce(hass: HomeAssistant, info: ZeroconfServiceInfo) -> Any:
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": config_entries.SOURCE_ZEROCONF}, data=info
    )
    await hass.async_block_till_done()
    return result


def closed_port() -> int:
    """Return a port of 127.0.0.1 where nothing listens (a moment ago)."""
    return octoprint_server.free_port()


@pytest.fixture
def debug_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Capture PrintCam's debug log (where a leaked key would show)."""
    caplog.set_level(logging.DEBUG, logger="custom_components.printcam")
    return caplog


@pytest.fixture
async def server_factory(
    socket_enabled: None,
) -> AsyncIterator[Callable[..., Awaitable[MoonrakerServer]]]:
    """Start real Moonrakers for a test; stop them all afterwards."""
    servers: list[MoonrakerServer] = []

    async def start(**kwargs: Any) -> MoonrakerServer:
        server = MoonrakerServer(**kwargs)
        servers.append(server)
        await server.start()
        return server

    try:
        yield start
    finally:
        for server in servers:
            await server.stop()


type ServerFactory = Callable[..., Awaitable[MoonrakerServer]]


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch) -> list[str | None]:
    """Record each webcam check's answer (so a test knows it ran)."""
    answers: list[str | None] = []
    check = moonraker.MoonrakerFamily.async_cameras_signature

    async def recorded(
        self: moonraker.MoonrakerFamily, hass: HomeAssistant, data: Any
    ) -> str | None:
        answers.append(answer := await check(self, hass, data))
        return answer

    monkeypatch.setattr(moonraker.MoonrakerFamily, "async_cameras_signature", recorded)
    return answers


def assert_no_secret(text: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret
        assert secret not in text


# --- the API key -------------------------------------------------------------------


@needs_moonraker
async def test_untrusted_moonraker_needs_its_key_and_asks_again_when_it_changes(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    server_factory: ServerFactory,
    make_mjpeg_printer: PrinterFactory,
    debug_log: pytest.LogCaptureFixture,
) -> None:
    nozzle_cam = await camera(make_mjpeg_printer)
    server = await server_factory(
        webcams=[MoonrakerWebcam(name="nozzle", stream_url=nozzle_cam.url)],
        trusted=False,
    )
    old_key = server.api_key
    flow_id = await add_form(hass)
    result = await submit(
        hass, flow_id, server_form(server, host=f"http://127.0.0.1:{server.port}")
    )
    assert result["errors"] == {"host": "invalid_host"}
    # The camera's port instead of Moonraker's: it has no webcam list (404).
    result = await submit(hass, flow_id, server_form(server, port=nozzle_cam.port))
    assert result["errors"] == {"base": "cannot_connect"}

    # No key, and a wrong one: Moonraker answers 401.
    result = await submit(hass, flow_id, server_form(server))
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "invalid_auth"}
    result = await submit(hass, flow_id, server_form(server, api_key="0" * 32))
    assert result["errors"] == {"base": "invalid_auth"}
    result = await submit(hass, flow_id, server_form(server, api_key=old_key))
    assert result["type"] is FlowResultType.CREATE_ENTRY, result
    assert result["data"] == {
        "kind": "moonraker",
        "host": "127.0.0.1",
        "port": server.port,
        "ssl": False,
        "api_key": old_key,
    }
    entry = result["result"]
    assert entry.unique_id == server.instance_uuid
    assert entry.state is ConfigEntryState.LOADED
    viewer = await watch(hass_client, "camera.klipper_127_0_0_1_nozzle")
    await viewer.close()

    # The key changes on the printer (Mainsail's "new key", POST
    # /access/api_key): the next setup fails and asks for the new one.
    _, body = await server.request("POST", "/access/api_key", expect=200)
    new_key = str(body["result"])
    assert new_key != old_key
    server.api_key = new_key
    assert not await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.SETUP_ERROR
    (flow,) = reauth_flows(hass, entry)
    result = await hass.config_entries.flow.async_configure(flow["flow_id"])
    assert result["step_id"] == "reauth_moonraker"
    assert result["description_placeholders"] == {"name": entry.title}
    result = await submit(hass, flow["flow_id"], {"api_key": old_key})
    assert result["errors"] == {"base": "invalid_auth"}
    result = await submit(hass, flow["flow_id"], {"api_key": f" {new_key} "})
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reauth_successful"
    assert entry.data["api_key"] == new_key
    await until(lambda: entry.state is ConfigEntryState.LOADED, WAIT)
    viewer = await watch(hass_client, "camera.klipper_127_0_0_1_nozzle")
    await viewer.close()

    # Neither key in any state attribute or log line.
    for entity_id in registered(hass, entry.entry_id):
        state = hass.states.get(entity_id)
        if state is not None:
            attributes = json.dumps(dict(state.attributes), default=str)
            assert_no_secret(attributes, old_key, new_key)
    assert_no_secret(debug_log.text, old_key, new_key)
    assert await hass.config_entries.async_unload(entry.entry_id)
    await nozzle_cam.wait_for(lambda p: p.open_connections == 0)


@needs_moonraker
async def test_a_key_refused_at_the_hourly_check_asks_for_the_new_one(
    hass: HomeAssistant,
    server_factory: ServerFactory,
    debug_log: pytest.LogCaptureFixture,
) -> None:
    server = await server_factory(
        webcams=[
            MoonrakerWebcam(name="nozzle", stream_url="http://127.0.0.1:9/stream")
        ],
        trusted=False,
    )
    entry = await set_up(hass, moonraker_entry(server, api_key=server.api_key))
    assert entry.state is ConfigEntryState.LOADED
    await server.request("POST", "/access/api_key", expect=200)
    await hourly_check(hass)
    assert "refused the API key (401)" in debug_log.text  # the check ran
    assert reauth_flows(hass, entry)


# --- cameras -----------------------------------------------------------------------

TURNS = {
    # webcam name: (flip_horizontal, flip_vertical, rotation clockwise)
    "plain": (False, False, 0),
    "turned_90": (False, False, 90),
    "turned_180": (False, False, 180),
    "turned_270": (False, False, 270),
    "mirrored": (True, False, 0),
    "upside_down": (False, True, 0),
    "mirrored_90": (True, False, 90),
}


@needs_moonraker
async def test_each_webcam_is_a_camera_turned_as_mainsail_shows_it(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    server_factory: ServerFactory,
    make_mjpeg_printer: PrinterFactory,
) -> None:
    cams = {name: await camera(make_mjpeg_printer) for name in TURNS}
    server = await server_factory(
        webcams=[
            MoonrakerWebcam(
                name=name,
                stream_url=cams[name].url,
                snapshot_url=cams[name].still_url,
                flip_horizontal=h,
                flip_vertical=v,
                rotation=r,
            )
            for name, (h, v, r) in TURNS.items()
        ]
    )
    listed = {webcam["name"]: webcam["uid"] for webcam in await server.webcams()}
    entry = await set_up(hass, moonraker_entry(server))
    assert entry.state is ConfigEntryState.LOADED
    # The printer's API proved it is there: no camera was connected yet.
    assert all(cam.total_connections == 0 for cam in cams.values())

    # One camera and one set of entities per webcam, on one device; unique
    # ids from the instance uuid and the webcam's uid.
    ids = registered(hass, entry.entry_id)
    for name in TURNS:
        camera_id = f"camera.voron_{name}"
        assert ids[camera_id] == f"{server.instance_uuid}_{listed[name]}_camera"
        assert f"sensor.voron_{name}_stream_state" in ids
        assert f"switch.voron_{name}_keep_warm" in ids
    devices = dr.async_entries_for_config_entry(dr.async_get(hass), entry.entry_id)
    assert len(devices) == 1
    assert devices[0].identifiers == {(DOMAIN, server.instance_uuid)}
    assert (devices[0].manufacturer, devices[0].model) == ("Klipper", "Moonraker")

    # A still before anyone watches: from the snapshot URL, turned too.
    client = await hass_client()
    response = await client.get("/api/camera_proxy/camera.voron_mirrored_90")
    assert response.status == 200
    still = await response.read()
    assert cams["mirrored_90"].still_requests == 1
    assert cams["mirrored_90"].stream_requests == 0
    assert size_of(still) == (32, 64)
    assert corners_shown(still) == expected_corners(moonraker_ui(True, False, 90))

    # Two viewers of each camera: one upstream per webcam, every frame
    # turned the way Mainsail and Fluidd turn the picture.
    viewers = {}
    for name in TURNS:
        viewers[name] = [
            await watch(hass_client, f"camera.voron_{name}") for _ in range(2)
        ]
    for name, (h, v, r) in TURNS.items():
        assert cams[name].stream_requests == 1, name
        want_size = (32, 64) if r in (90, 270) else (64, 32)
        for viewer in viewers[name]:
            frame = viewer.frames[-1]
            assert size_of(frame) == want_size, name
            assert corners_shown(frame) == expected_corners(moonraker_ui(h, v, r)), name
    await until(lambda: state_of(hass, "sensor.voron_turned_90_viewers") == "2", WAIT)
    # A still while streaming comes from the stream, turned too.
    response = await client.get("/api/camera_proxy/camera.voron_turned_270")
    assert response.status == 200
    still = await response.read()
    assert size_of(still) == (32, 64)
    assert corners_shown(still) == expected_corners(moonraker_ui(False, False, 270))
    assert cams["turned_270"].stream_requests == 1
    assert cams["turned_270"].still_requests == 0
    for pair in viewers.values():
        for viewer in pair:
            await viewer.close()
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    for cam in cams.values():
        await cam.wait_for(lambda p: p.open_connections == 0)


@needs_moonraker
async def test_a_webcam_down_shows_in_its_own_state_while_the_other_streams(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    server_factory: ServerFactory,
    make_mjpeg_printer: PrinterFactory,
) -> None:
    nozzle_cam, bed_cam = (
        await camera(make_mjpeg_printer),
        await camera(make_mjpeg_printer),
    )
    server = await server_factory(
        webcams=[
            MoonrakerWebcam(name="nozzle", stream_url=nozzle_cam.url),
            MoonrakerWebcam(name="bed", stream_url=bed_cam.url),
        ]
    )
    await bed_cam.close()  # the bed camera's streamer died
    entry = await set_up(hass, moonraker_entry(server))
    assert entry.state is ConfigEntryState.LOADED
    nozzle = await watch(hass_client, "camera.voron_nozzle")
    client = await hass_client()
    bed = Viewer(await client.get("/api/camera_proxy_stream/camera.voron_bed"))
    await until(
        lambda: state_of(hass, "sensor.voron_bed_stream_state") == "unreachable", WAIT
    )
    await until(
        lambda: state_of(hass, "sensor.voron_nozzle_stream_state") == "streaming", WAIT
    )
    assert entry.runtime_data.cameras[1].stream.state is StreamState.UNREACHABLE
    count = len(nozzle.frames)
    await nozzle.wait_frames(count + 2, timeout=WAIT)
    assert state_of(hass, "binary_sensor.voron_nozzle_streaming") == "on"
    assert state_of(hass, "binary_sensor.voron_bed_streaming") == "off"
    await nozzle.close()
    await bed.close()
    assert await hass.config_entries.async_unload(entry.entry_id)


@needs_moonraker
async def test_moonraker_down_at_setup_is_retried_until_it_answers(
    hass: HomeAssistant,
    server_factory: ServerFactory,
    make_mjpeg_printer: PrinterFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    nozzle_cam = await camera(make_mjpeg_printer)
    port, uuid = closed_port(), "c0ffee00" * 4
    entry = MockConfigEntry(
        domain=DOMAIN,
        title=TITLE,
        data={
            "kind": "moonraker",
            "host": "127.0.0.1",
            "port": port,
            "ssl": False,
            "api_key": "",
        },
        unique_id=uuid,
    )
    await set_up(hass, entry)
    assert entry.state is ConfigEntryState.SETUP_RETRY
    assert f"127.0.0.1:{port}/server/" in (entry.reason or "")

    # The printer comes up at that address: Home Assistant's retry loads it.
    monkeypatch.setattr(octoprint_server, "free_port", lambda: port)
    server = await server_factory(
        webcams=[MoonrakerWebcam(name="nozzle", stream_url=nozzle_cam.url)],
        instance_uuid=uuid,
    )
    assert server.port == port
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(minutes=5))
    await hass.async_block_till_done()
    await until(lambda: entry.state is ConfigEntryState.LOADED, WAIT)
    assert "camera.voron_nozzle" in registered(hass, entry.entry_id)
    assert await hass.config_entries.async_unload(entry.entry_id)


@needs_moonraker
async def test_a_frozen_moonraker_is_a_timeout_in_the_form(
    hass: HomeAssistant,
    server_factory: ServerFactory,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A Pi that hangs: the kernel still accepts the connection, nobody
    # answers. The flow's bound (10 s) is shortened to keep the test short.
    monkeypatch.setattr(config_flow, "VALIDATE_TIMEOUT", 1.0)
    server = await server_factory()
    flow_id = await add_form(hass)
    assert server.pid is not None
    os.killpg(server.pid, signal.SIGSTOP)
    try:
        result = await submit(hass, flow_id, server_form(server))
    finally:
        os.killpg(server.pid, signal.SIGCONT)
    assert result["errors"] == {"base": "timeout"}
    assert "Unexpected error" not in caplog.text
    result = await submit(hass, flow_id, server_form(server))
    assert result["errors"] == {"base": "no_mjpeg_webcam"}


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"<!DOCTYPE html><html>Fluidd</html>", "did not answer JSON"),
        (b"", "has no webcams list"),
        (b'{"result": {"webcams": "none"}}', "has no webcams list"),
        (b" " * (MAX_API_BYTES + 1), "answered more than"),
    ],
    ids=["web page", "empty", "no list", "too large"],
)
async def test_a_port_that_is_not_moonrakers_says_so(
    hass: HomeAssistant,
    socket_enabled: None,
    caplog: pytest.LogCaptureFixture,
    body: bytes,
    why: str,
) -> None:
    # What a web interface or another server on the port entered answers.
    caplog.set_level(logging.DEBUG, logger="custom_components.printcam")

    async def answer(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="text/html")

    app = web.Application()
    app.router.add_get("/server/webcams/list", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        flow_id = await add_form(hass)
        result = await submit(
            hass, flow_id, {"host": "127.0.0.1", "port": port, "ssl": False}
        )
    finally:
        await runner.cleanup()
    assert result["errors"] == {"base": "protocol_error"}
    assert why in caplog.text


@needs_moonraker
async def test_a_long_webcam_list_is_read_whole(
    hass: HomeAssistant,
    server_factory: ServerFactory,
    make_mjpeg_printer: PrinterFactory,
) -> None:
    # Mainsail and Fluidd keep their own settings in a webcam's extra_data;
    # a list of a few hundred kB is still far under the 4 MiB bound.
    nozzle_cam = await camera(make_mjpeg_printer)
    server = await server_factory()
    await server.request(
        "POST",
        "/server/webcams/item",
        {
            "name": "nozzle",
            "stream_url": nozzle_cam.url,
            "extra_data": {"notes": "x" * 300_000},
        },
        expect=200,
    )
    flow_id = await add_form(hass)
    result = await submit(hass, flow_id, server_form(server))
    assert result["type"] is FlowResultType.CREATE_ENTRY, result.get("errors")
    assert result["description_placeholders"]["cameras"] == "nozzle"
    assert await hass.config_entries.async_unload(result["result"].entry_id)


# --- changes on the printer ----------------------------------------------------------


@needs_moonraker
async def test_webcams_added_removed_and_changed_on_the_printer_are_followed(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    server_factory: ServerFactory,
    make_mjpeg_printer: PrinterFactory,
    checks: list[str | None],
    debug_log: pytest.LogCaptureFixture,
) -> None:
    nozzle_cam, bed_cam, chamber_cam, new_chamber_cam = [
        await camera(make_mjpeg_printer) for _ in range(4)
    ]
    server = await server_factory(
        webcams=[MoonrakerWebcam(name="nozzle", stream_url=nozzle_cam.url)]
    )
    bed = await server.add_webcam(MoonrakerWebcam(name="bed", stream_url=bed_cam.url))
    entry = await set_up(hass, moonraker_entry(server))
    before = registered(hass, entry.entry_id)
    assert {"camera.voron_nozzle", "camera.voron_bed"} <= set(before)
    nozzle_ids = {k: v for k, v in before.items() if "_nozzle" in k}
    bed_ids = {k: v for k, v in before.items() if "_bed" in k}
    assert len(nozzle_ids) == len(bed_ids) > 5

    # A webcam added in Mainsail: a reload shows it; nothing else moves.
    chamber = await server.add_webcam(
        MoonrakerWebcam(name="chamber", stream_url=chamber_cam.url, rotation=180)
    )
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    after = registered(hass, entry.entry_id)
    assert after["camera.voron_chamber"] == (
        f"{server.instance_uuid}_{chamber['uid']}_camera"
    )
    assert {k: after[k] for k in nozzle_ids} == nozzle_ids
    assert {k: after[k] for k in bed_ids} == bed_ids

    # The bed webcam deleted in Mainsail: the hourly check reloads and its
    # entities leave the registry; the others keep their unique ids.
    await server.delete_webcam(uid=bed["uid"])
    cameras = entry.runtime_data.cameras
    await hourly_check(hass)
    assert len(checks) == 1
    await until(
        lambda: not any("_bed" in e for e in registered(hass, entry.entry_id)), WAIT
    )
    await until(lambda: entry.state is ConfigEntryState.LOADED, WAIT)
    assert entry.runtime_data.cameras is not cameras
    after = registered(hass, entry.entry_id)
    assert {k: after[k] for k in nozzle_ids} == nozzle_ids
    assert "camera.voron_chamber" in after
    assert [c.key for c in entry.runtime_data.cameras] == [
        next(w["uid"] for w in await server.webcams() if w["name"] == "nozzle"),
        chamber["uid"],
    ]

    # Nothing changed: the next check does not reload.
    cameras = entry.runtime_data.cameras
    await hourly_check(hass, hours=2)
    assert len(checks) == 2
    assert checks[-1] == entry.runtime_data.context.found.signature
    assert entry.runtime_data.cameras is cameras

    # The chamber webcam's stream URL changed (same uid): followed, and
    # its entities keep their ids.
    changed = await server.add_webcam(
        MoonrakerWebcam(name="chamber", stream_url=new_chamber_cam.url, rotation=180)
    )
    assert changed["uid"] == chamber["uid"]
    await hourly_check(hass, hours=3)
    await until(lambda: entry.runtime_data.cameras is not cameras, WAIT)
    await until(lambda: entry.state is ConfigEntryState.LOADED, WAIT)
    assert registered(hass, entry.entry_id) == after
    viewer = await watch(hass_client, "camera.voron_chamber")
    assert new_chamber_cam.total_connections == 1
    assert chamber_cam.total_connections == 0
    assert corners_shown(viewer.frames[-1])["TL"] == "BR"  # still turned 180°
    await viewer.close()

    # Deleted and added at once, then a reload: followed as well.
    await server.delete_webcam("chamber")
    side = await server.add_webcam(
        MoonrakerWebcam(name="side", stream_url=chamber_cam.url)
    )
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    now = registered(hass, entry.entry_id)
    assert not any("_chamber" in e for e in now)
    assert now["camera.voron_side"] == f"{server.instance_uuid}_{side['uid']}_camera"
    assert {k: now[k] for k in nozzle_ids} == nozzle_ids

    # Moonraker down at the hourly check: nothing changes.
    await server.stop()
    cameras, count = entry.runtime_data.cameras, len(checks)
    await hourly_check(hass)
    assert "webcams not checked" in debug_log.text
    assert len(checks) == count
    assert entry.runtime_data.cameras is cameras
    assert registered(hass, entry.entry_id) == now
    assert await hass.config_entries.async_unload(entry.entry_id)


@needs_moonraker
async def test_another_moonraker_at_the_printers_address_is_not_loaded_as_it(
    hass: HomeAssistant,
    server_factory: ServerFactory,
    make_mjpeg_printer: PrinterFactory,
) -> None:
    # Two Klipper printers swap DHCP addresses (or the SD card was
    # replaced): the Voron's entry must not show the other printer's
    # webcams nor lose its own entities.
    nozzle_cam = await camera(make_mjpeg_printer)
    webcams = [MoonrakerWebcam(name="nozzle", stream_url=nozzle_cam.url)]
    voron = await server_factory(webcams=webcams)
    other = await server_factory(webcams=webcams)
    entry = await set_up(hass, moonraker_entry(voron))
    before = registered(hass, entry.entry_id)
    assert before["camera.voron_nozzle"].startswith(voron.instance_uuid)
    hass.config_entries.async_update_entry(
        entry, data={**entry.data, "port": other.port}
    )
    await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.SETUP_RETRY
    assert f"another Moonraker ({other.instance_uuid})" in (entry.reason or "")
    assert registered(hass, entry.entry_id) == before
    # Back at its address: loaded again, with the same entities.
    hass.config_entries.async_update_entry(
        entry, data={**entry.data, "port": voron.port}
    )
    await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    assert registered(hass, entry.entry_id) == before
    assert await hass.config_entries.async_unload(entry.entry_id)


# --- an empty webcam list: mjpg-streamer at :8080 ---------------------------------------


def fallback_at(
    monkeypatch: pytest.MonkeyPatch, stream_url: str, snapshot_url: str = ""
) -> list[str]:
    """Point the :8080 fallback at `stream_url`; return the URLs it meant."""
    real = moonraker.fallback_webcam
    meant: list[str] = []

    def fallback(host: str) -> Webcam:
        webcam = real(host)
        meant.append(webcam.stream_url)
        return dataclasses.replace(
            webcam, stream_url=stream_url, snapshot_url=snapshot_url
        )

    monkeypatch.setattr(moonraker, "fallback_webcam", fallback)
    return meant


@needs_moonraker
async def test_an_empty_webcam_list_shows_the_stream_at_port_8080(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    server_factory: ServerFactory,
    make_mjpeg_printer: PrinterFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    streamer = await camera(make_mjpeg_printer)
    meant = fallback_at(monkeypatch, streamer.url, streamer.still_url)
    server = await server_factory()  # a Creality K1: no webcam configured
    flow_id = await add_form(hass)
    result = await submit(hass, flow_id, server_form(server))
    assert result["type"] is FlowResultType.CREATE_ENTRY, result
    assert set(meant) == {"http://127.0.0.1:8080/?action=stream"}
    assert result["description_placeholders"] == {
        "cameras": "Webcam",
        "skipped": "none",
    }
    entry = result["result"]
    ids = registered(hass, entry.entry_id)
    assert ids["camera.klipper_127_0_0_1_webcam"] == (
        f"{server.instance_uuid}_default_camera"
    )
    viewer = await watch(hass_client, "camera.klipper_127_0_0_1_webcam")
    assert set(viewer.frames) <= set(streamer.frames_sent)
    await viewer.close()
    assert await hass.config_entries.async_unload(entry.entry_id)


@needs_moonraker
async def test_an_empty_webcam_list_and_nothing_at_port_8080(
    hass: HomeAssistant,
    server_factory: ServerFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fallback_at(monkeypatch, f"http://127.0.0.1:{closed_port()}/?action=stream")
    server = await server_factory(
        webcams=[
            MoonrakerWebcam(name="room", stream_url="/room/", service="webrtc-go2rtc")
        ]
    )
    # Only WebRTC listed: not the fallback's business, the form says why.
    flow_id = await add_form(hass)
    result = await submit(hass, flow_id, server_form(server))
    assert result["errors"] == {"base": "no_mjpeg_webcam"}

    empty = await server_factory()
    result = await submit(hass, flow_id, server_form(empty))
    assert result["errors"] == {"base": "no_mjpeg_webcam"}
    entry = await set_up(hass, moonraker_entry(empty))
    assert entry.state is ConfigEntryState.SETUP_RETRY
    assert "none listed" in (entry.reason or "")


@needs_moonraker
async def test_the_hourly_check_leaves_a_busy_port_8080_camera_alone(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    server_factory: ServerFactory,
    make_mjpeg_printer: PrinterFactory,
    monkeypatch: pytest.MonkeyPatch,
    checks: list[str | None],
) -> None:
    # mjpg-streamer on a K1 serves one client: the hourly check must not
    # take a second connection (it got 503, read "no webcam" and reloaded,
    # cutting every viewer off), nor reload while the list is unchanged.
    streamer = await make_mjpeg_printer(frames=[PICTURE], fps=20.0, max_clients=1)
    fallback_at(monkeypatch, streamer.url)
    server = await server_factory()
    entry = await set_up(hass, moonraker_entry(server))
    assert entry.state is ConfigEntryState.LOADED
    # Setup looked at :8080 once (one frame) and let go.
    await streamer.wait_for(lambda p: p.active_streams == 0)
    setup_connections = streamer.total_connections
    assert setup_connections == 1
    viewer = await watch(hass_client, "camera.voron_webcam")
    cameras = entry.runtime_data.cameras
    await webcam_check_now(hass, entry)
    assert checks == ["[]"]
    assert entry.runtime_data.cameras is cameras
    assert streamer.total_connections == setup_connections + 1
    count = len(viewer.frames)
    await viewer.wait_frames(count + 2, timeout=WAIT)
    assert not viewer.ended

    # The streamer stopping shows in the stream state; no reload either.
    await streamer.close()
    await webcam_check_now(hass, entry)
    assert checks == ["[]", "[]"]
    assert entry.runtime_data.cameras is cameras
    assert entry.state is ConfigEntryState.LOADED
    await until(
        lambda: state_of(hass, "sensor.voron_webcam_stream_state")
        in ("reconnecting", "unreachable"),
        WAIT,
    )
    # A webcam configured later replaces the fallback.
    nozzle_cam = await camera(make_mjpeg_printer)
    await server.add_webcam(MoonrakerWebcam(name="nozzle", stream_url=nozzle_cam.url))
    await webcam_check_now(hass, entry)
    await until(lambda: "camera.voron_nozzle" in registered(hass, entry.entry_id), WAIT)
    await until(lambda: entry.state is ConfigEntryState.LOADED, WAIT)
    assert "camera.voron_webcam" not in registered(hass, entry.entry_id)
    await viewer.close()
    assert await hass.config_entries.async_unload(entry.entry_id)


# --- diagnostics ----------------------------------------------------------------------


@needs_moonraker
async def test_diagnostics_and_the_flow_list_the_webcams_not_shown(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    server_factory: ServerFactory,
    make_mjpeg_printer: PrinterFactory,
) -> None:
    nozzle_cam = await camera(make_mjpeg_printer)
    server = await server_factory(
        webcams=[
            MoonrakerWebcam(name="nozzle", stream_url=nozzle_cam.url, rotation=90),
            MoonrakerWebcam(
                name="room", stream_url="/webcam2/", service="webrtc-camerastreamer"
            ),
            MoonrakerWebcam(
                name="hls", stream_url="/hls/cam.m3u8", service="hlsstream"
            ),
            MoonrakerWebcam(name="jmuxer", stream_url="/jm/", service="jmuxer-stream"),
            MoonrakerWebcam(name="page", stream_url="/cam.html", service="iframe"),
            MoonrakerWebcam(name="off", stream_url=nozzle_cam.url, enabled=False),
        ],
        trusted=False,
    )
    await async_setup_component(hass, "diagnostics", {})
    flow_id = await add_form(hass)
    result = await submit(hass, flow_id, server_form(server, api_key=server.api_key))
    assert result["type"] is FlowResultType.CREATE_ENTRY, result
    assert result["description"] == "webcams"
    assert result["description_placeholders"] == {
        "cameras": "nozzle",
        "skipped": "room: not mjpeg (webrtc-camerastreamer); "
        "hls: not mjpeg (hlsstream); jmuxer: not mjpeg (jmuxer-stream); "
        "page: not mjpeg (iframe); off: disabled",
    }
    entry = result["result"]
    ids = registered(hass, entry.entry_id)
    assert not any(
        name in entity_id
        for entity_id in ids
        for name in ("room", "hls", "jmuxer", "page", "off")
    )
    viewer = await watch(hass_client, "camera.klipper_127_0_0_1_nozzle")
    await viewer.close()

    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, entry)
    uid = next(w["uid"] for w in await server.webcams() if w["name"] == "nozzle")
    assert [(w["key"], w["name"]) for w in diagnostics["webcams"]] == [(uid, "nozzle")]
    transform = diagnostics["webcams"][0]["source"]["transform"]
    assert transform["orientation"]["rotate_cw"] == 90
    assert diagnostics["skipped_webcams"] == [
        {"name": "room", "reason": "not_mjpeg", "detail": "webrtc-camerastreamer"},
        {"name": "hls", "reason": "not_mjpeg", "detail": "hlsstream"},
        {"name": "jmuxer", "reason": "not_mjpeg", "detail": "jmuxer-stream"},
        {"name": "page", "reason": "not_mjpeg", "detail": "iframe"},
        {"name": "off", "reason": "disabled", "detail": ""},
    ]
    assert diagnostics["entry"]["unique_id"] == server.instance_uuid
    assert diagnostics["entry"]["data"]["api_key"] == "**REDACTED**"
    assert_no_secret(json.dumps(diagnostics), server.api_key)
    assert await hass.config_entries.async_unload(entry.entry_id)


# --- zeroconf ---------------------------------------------------------------------------


@needs_moonraker
async def test_zeroconf_asks_only_for_the_key(
    hass: HomeAssistant,
    server_factory: ServerFactory,
    make_mjpeg_printer: PrinterFactory,
) -> None:
    nozzle_cam = await camera(make_mjpeg_printer)
    server = await server_factory(
        webcams=[MoonrakerWebcam(name="nozzle", stream_url=nozzle_cam.url)],
        trusted=False,
    )
    info = zeroconf_info(server.port, await server.zeroconf_properties())
    result = await announce(hass, info)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "discovery_confirm_moonraker"
    assert list(result["data_schema"].schema) == ["api_key"]
    assert result["description_placeholders"] == {
        "name": "Klipper voron",
        "host": f"127.0.0.1:{server.port}",
    }
    flow_id = result["flow_id"]
    result = await submit(hass, flow_id, {})
    assert result["errors"] == {"base": "invalid_auth"}
    result = await submit(hass, flow_id, {"api_key": server.api_key})
    assert result["type"] is FlowResultType.CREATE_ENTRY, result
    assert result["title"] == "Klipper voron"
    assert result["data"] == {
        "kind": "moonraker",
        "host": "127.0.0.1",
        "port": server.port,
        "ssl": False,
        "api_key": server.api_key,
    }
    entry = result["result"]
    assert entry.unique_id == server.instance_uuid
    assert entry.state is ConfigEntryState.LOADED
    assert "camera.klipper_voron_nozzle" in registered(hass, entry.entry_id)

    # Announced again where it is: nothing to do.
    result = await announce(hass, info)
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    # Another service type, or no uuid: not Moonraker's announcement.
    result = await announce(
        hass, zeroconf_info(server.port, {"version": "v0.11.0", "uuid": None})
    )
    assert result["reason"] == "not_supported"
    assert await hass.config_entries.async_unload(entry.entry_id)


@needs_moonraker
async def test_zeroconf_moves_a_printer_once_the_new_address_proves_its_uuid(
    hass: HomeAssistant,
    server_factory: ServerFactory,
    make_mjpeg_printer: PrinterFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    nozzle_cam = await camera(make_mjpeg_printer)
    webcams = [MoonrakerWebcam(name="nozzle", stream_url=nozzle_cam.url)]
    server = await server_factory(webcams=webcams)
    # Other Moonrakers: one that wants its own key, one that trusts anyone
    # (it tells its own uuid; a key it does not know it refuses, 401).
    locked = await server_factory(webcams=webcams, trusted=False)
    other = await server_factory(webcams=webcams)
    # The printer was at another port, where nothing answers now.
    old_port = closed_port()
    entry = await set_up(hass, moonraker_entry(server, port=old_port))
    assert entry.state is ConfigEntryState.SETUP_RETRY
    properties = await server.zeroconf_properties()

    # Its uuid announced where another Moonraker answers: not moved.
    for impostor in (locked, other):
        result = await announce(hass, zeroconf_info(impostor.port, properties))
        assert result["type"] is FlowResultType.ABORT
        assert result["reason"] == "already_configured"
        assert entry.data["port"] == old_port
    # The one that answered told another uuid: a warning.
    assert "does not prove to be it" in caplog.text

    # Announced where it is now: proven through the API (without a key),
    # offered; once confirmed checked there, moved and reloaded.
    result = await announce(hass, zeroconf_info(server.port, properties))
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "move_confirm"
    assert result["description_placeholders"] == {
        "name": TITLE,
        "old": f"127.0.0.1:{old_port}",
        "new": f"127.0.0.1:{server.port}",
    }
    assert entry.data["port"] == old_port
    result = await submit(hass, result["flow_id"], {})
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "moved"
    assert entry.data == {
        "kind": "moonraker",
        "host": "127.0.0.1",
        "port": server.port,
        "ssl": False,
        "api_key": "",
    }
    await until(lambda: entry.state is ConfigEntryState.LOADED, WAIT)
    assert "camera.voron_nozzle" in registered(hass, entry.entry_id)

    # Loaded at its address, the other Moonraker's claim still moves nothing
    # and reloads nothing.
    cameras = entry.runtime_data.cameras
    result = await announce(hass, zeroconf_info(other.port, properties))
    assert result["reason"] == "already_configured"
    assert entry.data["port"] == server.port
    assert entry.state is ConfigEntryState.LOADED
    assert entry.runtime_data.cameras is cameras
    assert await hass.config_entries.async_unload(entry.entry_id)


@needs_moonraker
async def test_an_announcement_gets_no_key_and_moves_no_printer_that_wants_one(
    hass: HomeAssistant,
    server_factory: ServerFactory,
    make_mjpeg_printer: PrinterFactory,
) -> None:
    # An announcement is anyone's to send: the printer's uuid is public in
    # its own TXT record. The new address is asked without the key, so a
    # Moonraker that wants one (not trusting Home Assistant) cannot prove
    # itself there and is not moved: it is reconfigured by hand.
    server = await server_factory(trusted=False)
    impostor = await make_mjpeg_printer()  # records every request's headers
    old_port = closed_port()
    entry = await set_up(
        hass, moonraker_entry(server, port=old_port, api_key=server.api_key)
    )
    data = dict(entry.data)
    properties = await server.zeroconf_properties()
    result = await announce(hass, zeroconf_info(impostor.port, properties))
    assert result["reason"] == "already_configured"
    assert impostor.requests  # it was asked
    assert all(
        server.api_key not in json.dumps(request.headers)
        for request in impostor.requests
    )
    result = await announce(hass, zeroconf_info(server.port, properties))
    assert result["reason"] == "already_configured"
    assert entry.data == data
    assert entry.state is ConfigEntryState.SETUP_RETRY


# --- reconfigure --------------------------------------------------------------------------


@needs_moonraker
async def test_reconfigure_keeps_the_printer_and_refuses_another(
    hass: HomeAssistant,
    server_factory: ServerFactory,
    make_mjpeg_printer: PrinterFactory,
) -> None:
    nozzle_cam = await camera(make_mjpeg_printer)
    webcams = [MoonrakerWebcam(name="nozzle", stream_url=nozzle_cam.url)]
    server = await server_factory(webcams=webcams)
    other = await server_factory(webcams=webcams)
    old_port = closed_port()
    entry = await set_up(hass, moonraker_entry(server, port=old_port))
    assert entry.state is ConfigEntryState.SETUP_RETRY

    result = await entry.start_reconfigure_flow(hass)
    assert result["step_id"] == "reconfigure_moonraker"
    result = await submit(hass, result["flow_id"], server_form(other))
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "unique_id_mismatch"
    assert entry.data["port"] == old_port

    result = await entry.start_reconfigure_flow(hass)
    result = await submit(hass, result["flow_id"], server_form(server))
    assert result["reason"] == "reconfigure_successful"
    assert entry.data["port"] == server.port
    await until(lambda: entry.state is ConfigEntryState.LOADED, WAIT)
    assert "camera.voron_nozzle" in registered(hass, entry.entry_id)
    assert await hass.config_entries.async_unload(entry.entry_id)


# --- the webcam list, unit by unit ---------------------------------------------------------


def listing(*webcams: object) -> dict[str, Any]:
    return {"result": {"webcams": list(webcams)}}


def test_relative_urls_mean_the_printer_on_port_80() -> None:
    (absolute, no_slash, ipv6) = (
        moonraker.parse_webcams(
            listing(
                {
                    "uid": "u1",
                    "name": "front",
                    "stream_url": "/webcam/?action=stream",
                    "snapshot_url": "webcam/?action=snapshot",
                }
            ),
            host,
        )[0]
        for host in ("voron.lan", "192.168.1.70", "fd00::70")
    )
    assert absolute.stream_url == "http://voron.lan/webcam/?action=stream"
    assert absolute.snapshot_url == "http://voron.lan/webcam/?action=snapshot"
    assert no_slash.stream_url == "http://192.168.1.70/webcam/?action=stream"
    assert ipv6.stream_url == "http://[fd00::70]/webcam/?action=stream"
    assert (absolute.key, absolute.name) == ("u1", "front")
    assert not_mjpeg_reason(absolute) is None


def test_loopback_urls_mean_the_printer_itself() -> None:
    (webcam,) = moonraker.parse_webcams(
        listing(
            {
                "uid": "u1",
                "name": "front",
                "stream_url": "http://127.0.0.1:8080/?action=stream",
                "snapshot_url": "http://localhost:8081/?action=snapshot",
            }
        ),
        "voron.lan",
    )
    assert webcam.stream_url == "http://voron.lan:8080/?action=stream"
    assert webcam.snapshot_url == "http://voron.lan:8081/?action=snapshot"
    other = moonraker.parse_webcams(
        listing({"uid": "u2", "name": "ip", "stream_url": "http://cam.lan:81/s"}),
        "voron.lan",
    )[0]
    assert other.stream_url == "http://cam.lan:81/s"


@pytest.mark.parametrize(
    ("rotation", "want"),
    [
        (90, 90),
        (270, 270),
        ("180", 180),
        (45, 0),
        (360, 0),
        (-90, 0),
        (True, 0),
        (None, 0),
        ("sideways", 0),
        ([90], 0),
    ],
)
def test_rotation_out_of_range_is_shown_unturned(rotation: object, want: int) -> None:
    (webcam,) = moonraker.parse_webcams(
        listing({"uid": "u", "stream_url": "/s", "rotation": rotation}), "h"
    )
    assert webcam.orientation == Orientation.from_moonraker(rotation=want)


def test_flips_and_enabled_are_read_as_moonraker_sends_them() -> None:
    (webcam,) = moonraker.parse_webcams(
        listing(
            {
                "uid": "u",
                "name": "n",
                "stream_url": "/s",
                "flip_horizontal": True,
                "flip_vertical": True,
                "rotation": 90,
                "enabled": False,
            }
        ),
        "h",
    )
    assert webcam.orientation == Orientation.from_moonraker(True, True, 90)
    assert not webcam.enabled
    assert not_mjpeg_reason(webcam) == SkippedWebcam("n", "disabled")


def test_items_without_an_id_or_not_objects_are_ignored() -> None:
    webcams = moonraker.parse_webcams(
        listing(
            None,
            "front",
            7,
            {"uid": "", "name": ""},
            {"name": "named", "stream_url": "/a"},
            {"uid": "only-uid", "stream_url": "/b"},
        ),
        "h",
    )
    assert [(w.key, w.name) for w in webcams] == [
        ("named", "named"),
        ("only-uid", "only-uid"),
    ]


@pytest.mark.parametrize(
    "answer",
    [None, [], {"result": None}, {"result": {}}, {"result": {"webcams": {}}}],
)
def test_an_answer_without_a_list_is_a_protocol_error(answer: object) -> None:
    with pytest.raises(ProtocolError):
        moonraker.parse_webcams(answer, "h")


@pytest.mark.parametrize(
    ("service", "url", "why"),
    [
        (
            "webrtc-camerastreamer",
            "/webcam/webrtc",
            ("not_mjpeg", "webrtc-camerastreamer"),
        ),
        ("webrtc-go2rtc", "http://h:1984/", ("not_mjpeg", "webrtc-go2rtc")),
        ("webrtc-mediamtx", "/webrtc/", ("not_mjpeg", "webrtc-mediamtx")),
        ("webrtc-janus", "/janus", ("not_mjpeg", "webrtc-janus")),
        ("hlsstream", "/hls/", ("not_mjpeg", "hlsstream")),
        ("jmuxer-stream", "/jm/", ("not_mjpeg", "jmuxer-stream")),
        ("iframe", "/page.html", ("not_mjpeg", "iframe")),
        ("IFRAME", "/page.html", ("not_mjpeg", "iframe")),
        ("ipstream", "/hls/index.m3u8", ("not_mjpeg", "HLS stream")),
        ("mjpegstreamer", "rtsp://h:8554/cam", ("not_mjpeg", "rtsp stream")),
        ("mjpegstreamer", "ftp://h/cam", ("not_mjpeg", "not an http(s) URL")),
        ("mjpegstreamer", "", ("no_stream_url", "")),
        ("mjpegstreamer", "http://[::1/stream", ("not_mjpeg", "not a URL")),
        ("mjpegstreamer", "http://cam:99999/stream", ("not_mjpeg", "not a URL")),
    ],
)
def test_what_is_not_an_mjpeg_camera_says_why(
    service: str, url: str, why: tuple[str, str]
) -> None:
    (webcam,) = moonraker.parse_webcams(
        listing({"uid": "u", "name": "cam", "service": service, "stream_url": url}),
        "printer.lan",
    )
    assert not_mjpeg_reason(webcam) == SkippedWebcam("cam", *why)


@pytest.mark.parametrize(
    "service",
    [
        "mjpegstreamer",
        "mjpegstreamer-adaptive",
        "uv4l-mjpeg",
        "ipstream",
        "",
        "new-thing",
    ],
)
def test_an_http_stream_of_another_service_is_a_camera(service: str) -> None:
    (webcam,) = moonraker.parse_webcams(
        listing({"uid": "u", "service": service, "stream_url": "http://cam:81/s"}),
        "h",
    )
    assert not_mjpeg_reason(webcam) is None


def test_the_fallback_is_mjpg_streamer_at_port_8080() -> None:
    webcam = moonraker.fallback_webcam("voron.lan")
    assert webcam.stream_url == "http://voron.lan:8080/?action=stream"
    assert webcam.snapshot_url == "http://voron.lan:8080/?action=snapshot"
    assert (webcam.key, webcam.name) == ("default", "Webcam")
    assert not_mjpeg_reason(webcam) is None
    assert moonraker.fallback_webcam("fd00::70").stream_url == (
        "http://[fd00::70]:8080/?action=stream"
    )


async def test_webcams_with_one_name_twice_keep_both(hass: HomeAssistant) -> None:
    webcams = moonraker.parse_webcams(
        listing(
            {"name": "cam", "stream_url": "http://127.0.0.1:9/a"},
            {"name": "cam", "stream_url": "http://127.0.0.1:9/b"},
        ),
        "127.0.0.1",
    )
    found = cameras_for(hass, webcams)
    assert [(spec.key, spec.name) for spec in found.cameras] == [
        ("cam", "cam"),
        ("cam_2", "cam"),
    ]
    assert all(not spec.probe for spec in found.cameras)


@pytest.mark.parametrize(
    "data",
    [
        {"kind": "moonraker", "port": 7125},
        {"kind": "moonraker", "host": "", "port": 7125},
        {"kind": "moonraker", "host": "voron.lan", "port": "7125"},
        {"kind": "moonraker", "host": "voron.lan", "port": 0},
        {"kind": "moonraker", "host": "voron.lan", "port": 65536},
    ],
)
def test_entry_data_without_an_address_is_refused(data: dict[str, Any]) -> None:
    with pytest.raises(InvalidConfig):
        moonraker.MoonrakerFamily().validate_data(data)


def test_only_moonraker_announcements_with_a_uuid_are_moonraker() -> None:
    family = moonraker.MoonrakerFamily()
    info = zeroconf_info(7125, {"uuid": "ABC123", "version": "v0.11.0"})
    found = family.discovered(config_entries.SOURCE_ZEROCONF, info)
    assert found is not None
    assert found.unique_id == "abc123"
    assert found.confirm_step == "discovery_confirm_moonraker"
    assert family.discovered(config_entries.SOURCE_SSDP, info) is None
    assert family.discovered(config_entries.SOURCE_ZEROCONF, object()) is None
    octoprint = dataclasses.replace(info, type="_octoprint._tcp.local.")
    assert family.discovered(config_entries.SOURCE_ZEROCONF, octoprint) is None


@pytest.mark.parametrize(
    ("host", "port", "shown"),
    [
        ("127.0.0.1", None, "127.0.0.1:7125"),
        ("192.168.1.70", 7126, "192.168.1.70:7126"),
        ("fd00::70", 7125, "[fd00::70]:7125"),
    ],
)
def test_the_confirm_form_names_the_address_moonraker_is_reached_at(
    host: str, port: int | None, shown: str
) -> None:
    info = dataclasses.replace(
        zeroconf_info(7125, {"uuid": "abc123"}, host=host), port=port
    )
    found = moonraker.MoonrakerFamily().discovered(config_entries.SOURCE_ZEROCONF, info)
    assert found is not None
    assert found.placeholders == {"name": "Klipper voron", "host": shown}
    assert found.data["port"] == (port or 7125)


async def test_an_https_printer_announced_keeps_its_scheme_and_port(
    hass: HomeAssistant, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The announcement's port is Moonraker's plain HTTP one (TXT https_port
    # tells the other): an entry reached over https is not moved to http.
    asked: list[dict[str, Any]] = []

    async def uuid(hass: HomeAssistant, data: Any) -> str:
        asked.append(dict(data))
        return "abc123"

    monkeypatch.setattr(moonraker, "_async_uuid", uuid)
    family = moonraker.MoonrakerFamily()
    data = {
        "kind": "moonraker",
        "host": "192.168.1.70",
        "port": 7130,
        "ssl": True,
        "api_key": "k" * 32,
    }
    properties = {"uuid": "abc123", "https_port": "7130", "version": "v0.11.0"}
    elsewhere = family.discovered(
        config_entries.SOURCE_ZEROCONF,
        zeroconf_info(7125, properties, host="192.168.1.80"),
    )
    assert elsewhere is not None
    moved = await family.async_verify_move(hass, data, elsewhere)
    assert moved == {**data, "host": "192.168.1.80"}
    assert asked == [{**moved, "api_key": ""}]  # proven without the key
    here = family.discovered(
        config_entries.SOURCE_ZEROCONF,
        zeroconf_info(7125, properties, host="192.168.1.70"),
    )
    assert here is not None
    assert await family.async_verify_move(hass, data, here) is None
    assert len(asked) == 1


async def test_a_moonraker_that_tells_no_uuid_is_known_by_its_address(
    hass: HomeAssistant, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Moonraker's database is a core component; should it not answer, the
    # entry's unique id is the server's address.
    async def webcams(self: Any, hass: HomeAssistant, data: Any) -> list[Webcam]:
        return [Webcam("u", "front", "http://192.168.1.70:8080/?action=stream")]

    async def no_uuid(hass: HomeAssistant, data: Any) -> str:
        raise HttpError("/server/database/item answered HTTP 404", 404)

    monkeypatch.setattr(moonraker.MoonrakerFamily, "_async_webcams", webcams)
    monkeypatch.setattr(moonraker, "_async_uuid", no_uuid)
    data = {
        "kind": "moonraker",
        "host": "Voron.LAN",
        "port": 7125,
        "ssl": False,
        "api_key": "",
    }
    checked = await moonraker.MoonrakerFamily().async_check(hass, data, 10.0)
    assert isinstance(checked, Checked)
    assert checked.unique_id == "http://voron.lan:7125/"
    assert checked.summary == {"cameras": "front", "skipped": "none"}


async def test_an_entry_known_by_its_address_or_a_server_without_uuid_is_taken_as_is(
    hass: HomeAssistant, monkeypatch: pytest.MonkeyPatch
) -> None:
    answers: list[str | Exception | None] = [
        HttpError("/server/database/item answered HTTP 404", 404),
        None,
        "abc123",
        "def456",
    ]

    async def uuid(hass: HomeAssistant, data: Any) -> str | None:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(moonraker, "_async_uuid", uuid)
    family = moonraker.MoonrakerFamily()
    data = {"kind": "moonraker", "host": "192.168.1.70", "port": 7125, "ssl": False}
    for unique_id in (None, "", "http://192.168.1.70:7125/"):
        await family.async_verify_identity(hass, data, unique_id)
    assert len(answers) == 4  # nothing asked
    await family.async_verify_identity(hass, data, "abc123")  # no database
    await family.async_verify_identity(hass, data, "abc123")  # no uuid in it
    await family.async_verify_identity(hass, data, "abc123")  # the same
    with pytest.raises(WrongPrinter, match=r"192\.168\.1\.70:7125 is another"):
        await family.async_verify_identity(hass, data, "abc123")
