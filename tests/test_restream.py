"""Restream URLs: the shared stream for consumers beyond Home Assistant's dashboards.

Real consumers (Debian's ffmpeg and ffprobe, as go2rtc and Frigate use them;
PyAV as Home Assistant's stream component opens a stream source) read the
restream of a fake one-client printer: every one of them is a viewer of the
printer's single connection.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import aiohttp
import av
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.printcam import restream
from custom_components.printcam.restream import BAD_TOKEN_LIMIT
from printer_sim.mjpeg_server import MjpegPrinter

from .conftest import Viewer, make_entry, setup_entry, until
from .rtsps_support import FFMPEG

FFPROBE = FFMPEG.replace("ffmpeg", "ffprobe")
CAMERA = "camera.printer"


@pytest.fixture
async def printer(socket_enabled: None) -> Any:
    """A one-client MJPEG printer at 20 fps."""
    fake = MjpegPrinter(fps=20.0, max_clients=1)
    await fake.start()
    yield fake
    await fake.close()


async def enable(hass: HomeAssistant, entry: Any, **changes: Any) -> dict[str, Any]:
    """Turn the restream on (or change it) through the options flow."""
    result = await hass.config_entries.options.async_init(entry.entry_id)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"restream": True, **changes}
    )
    await hass.async_block_till_done()
    return dict(result)


def base_url(client: Any) -> str:
    return str(client.make_url("")).rstrip("/")


async def run(*args: str, timeout: float = 30) -> tuple[int, bytes, bytes]:
    proc = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        async with asyncio.timeout(timeout):
            out, err = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out, err


async def test_off_answers_404_and_costs_no_connection(
    hass: HomeAssistant, hass_client: ClientSessionGenerator, printer: MjpegPrinter
) -> None:
    entry = await setup_entry(hass, make_entry(printer.url))
    await printer.wait_for(lambda p: p.open_connections == 0)
    before = printer.total_connections
    client = await hass_client()
    for path in ("x/stream.mjpeg", "x/snapshot.jpg", "x/cam/stream.mjpeg"):
        response = await client.get(f"/api/printcam/{path}")
        assert response.status == 404
    assert printer.total_connections == before
    assert entry.options == {}
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_ffmpeg_consumers_dashboards_and_snapshots_share_one_connection(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    printer: MjpegPrinter,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    await async_setup_component(hass, "diagnostics", {})
    entry = await setup_entry(hass, make_entry(printer.url))
    result = await enable(hass, entry)
    token = entry.options["restream_token"]
    assert len(token) >= 32  # 192 random bits
    client = await hass_client()
    base = base_url(client)
    stream_url = f"{base}/api/printcam/{token}/stream.mjpeg"
    await printer.wait_for(lambda p: p.open_connections == 0)
    before = printer.total_connections

    # The options form shows the URLs to the administrator.
    shown = await hass.config_entries.options.async_init(entry.entry_id)
    assert (
        f"/api/printcam/{token}/stream.mjpeg"
        in (shown["description_placeholders"]["restream_urls"])
    )
    hass.config_entries.options.async_abort(shown["flow_id"])

    # ffprobe identifies the stream; three ffmpeg consumers decode frames
    # while two dashboards watch and a snapshot is polled.
    rc, out, err = await run(
        FFPROBE, "-v", "error", "-show_entries", "stream=codec_name,width,height",
        "-of", "json", stream_url,
    )  # fmt: skip
    assert rc == 0, err
    assert json.loads(out)["streams"][0]["codec_name"] == "mjpeg"
    dashboards = [
        Viewer(await client.get(f"/api/camera_proxy_stream/{CAMERA}")) for _ in range(2)
    ]
    consumers = [
        asyncio.create_task(
            run(
                FFMPEG,
                "-v",
                "error",
                "-i",
                stream_url,
                "-frames:v",
                "40",
                "-f",
                "null",
                "-",
            )  # fmt: skip
        )
        for _ in range(3)
    ]
    stream = entry.runtime_data.stream
    await until(lambda: stream.viewers == 5, 20)  # all counted as viewers
    snapshots = []
    async with aiohttp.ClientSession() as consumer:  # no Home Assistant login
        for _ in range(3):
            async with consumer.get(f"{base}/api/printcam/{token}/snapshot.jpg") as r:
                assert r.status == 200
                snapshots.append(await r.read())
    assert all(s.startswith(b"\xff\xd8") for s in snapshots)
    for rc, _out, err in await asyncio.gather(*consumers):
        assert rc == 0, err
    for viewer in dashboards:
        await viewer.wait_frames(3)
        await viewer.close()
    assert printer.total_connections - before == 1
    assert printer.max_open_connections == 1
    assert printer.rejected_connections == 0

    # The token is in no diagnostics and no log line of the whole test (but
    # the test server's access log, a logger Home Assistant keeps at WARNING).
    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, entry)
    assert token not in json.dumps(diagnostics)
    assert diagnostics["options"]["restream_token"] == "**REDACTED**"
    logged = [r for r in caplog.records if r.name != "aiohttp.access"]
    assert not [r for r in logged if token in r.getMessage()]
    assert result["type"] == "create_entry"
    assert await hass.config_entries.async_unload(entry.entry_id)
    await printer.wait_for(lambda p: p.open_connections == 0)


async def test_rotation_ends_consumers_and_404s_the_old_url(
    hass: HomeAssistant, hass_client: ClientSessionGenerator, printer: MjpegPrinter
) -> None:
    entry = await setup_entry(hass, make_entry(printer.url))
    await enable(hass, entry)
    old = entry.options["restream_token"]
    client = await hass_client()
    consumer = Viewer(await client.get(f"/api/printcam/{old}/stream.mjpeg"))
    await consumer.wait_frames(2)

    await enable(hass, entry, restream_rotate=True)
    new = entry.options["restream_token"]
    assert new != old
    assert "restream_rotate" not in entry.options
    await until(lambda: consumer.ended)
    assert (await client.get(f"/api/printcam/{old}/stream.mjpeg")).status == 404
    fresh = Viewer(await client.get(f"/api/printcam/{new}/stream.mjpeg"))
    await fresh.wait_frames(2)
    await fresh.close()

    # Off: the URLs stop at once, the token goes.
    await enable(hass, entry, restream=False)
    assert "restream_token" not in entry.options
    assert (await client.get(f"/api/printcam/{new}/snapshot.jpg")).status == 404
    assert await hass.config_entries.async_unload(entry.entry_id)
    await printer.wait_for(lambda p: p.open_connections == 0)


async def test_bad_tokens_cost_nothing_are_logged_once_and_limited(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    printer: MjpegPrinter,
    caplog: pytest.LogCaptureFixture,
) -> None:
    entry = await setup_entry(hass, make_entry(printer.url))
    await enable(hass, entry)
    token = entry.options["restream_token"]
    await printer.wait_for(lambda p: p.open_connections == 0)
    before = printer.total_connections
    client = await hass_client()
    statuses = []
    for number in range(BAD_TOKEN_LIMIT + 2):
        guess = token[:-1] + ("A" if token[-1] != "A" else "B") + str(number)
        statuses.append(
            (await client.get(f"/api/printcam/{guess}/stream.mjpeg")).status
        )
    assert statuses[:BAD_TOKEN_LIMIT] == [404] * BAD_TOKEN_LIMIT
    assert statuses[BAD_TOKEN_LIMIT:] == [429, 429]
    assert caplog.text.count("asked for an unknown or rotated URL") == 1
    assert printer.total_connections == before
    # A known token with an unknown file or webcam is a 404 too.
    assert (await client.get(f"/api/printcam/{token}/other.jpg")).status == 429
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_stream_source_is_the_restream_on_loopback(
    hass: HomeAssistant, hass_client: ClientSessionGenerator, printer: MjpegPrinter
) -> None:
    """Home Assistant's stream component (PyAV) takes PrintCam's stream."""
    entry = await setup_entry(hass, make_entry(printer.url))
    camera = hass.data["camera"].get_entity(CAMERA)
    assert await camera.stream_source() is None
    assert not camera.supported_features
    await enable(hass, entry, restream_stream_source=True)
    client = await hass_client()  # the test server: Home Assistant's HTTP
    source = await camera.stream_source()
    assert source is not None
    assert source.startswith("http://127.0.0.1:")
    assert camera.supported_features
    # Point it at the test server's port (the API port of this test hass).
    source = base_url(client) + source.split(str(hass.http.server_port), 1)[1]
    await printer.wait_for(lambda p: p.open_connections == 0)
    before = printer.total_connections

    def decode_one() -> tuple[str, int]:
        with av.open(source, timeout=10) as container:
            video = container.streams.video[0]
            frame = next(container.decode(video))
            return video.codec_context.name, frame.width

    codec, width = await hass.async_add_executor_job(decode_one)
    assert codec == "mjpeg"
    assert width > 0
    assert printer.total_connections - before == 1
    assert await hass.config_entries.async_unload(entry.entry_id)
    await printer.wait_for(lambda p: p.open_connections == 0)


def test_urls_of_the_first_and_other_webcams() -> None:
    assert (
        restream.camera_path("t", None, "stream.mjpeg")
        == "/api/printcam/t/stream.mjpeg"
    )
    assert restream.camera_path("t", "bed", "snapshot.jpg") == (
        "/api/printcam/t/bed/snapshot.jpg"
    )
    assert restream.restream_token({"restream_token": "t"}) is None  # off
    assert restream.restream_token({"restream": True, "restream_token": "t"}) == "t"


async def test_a_frozen_router_leaves_the_rest_working(
    hass: HomeAssistant, caplog: pytest.LogCaptureFixture
) -> None:
    """Routes added after the HTTP server froze its router: only a warning."""

    class Frozen:
        def add_route(self, *args: Any) -> None:
            raise RuntimeError("Cannot register a resource into frozen router.")

    class Http:
        class app:  # noqa: N801 - the attribute names of Home Assistant's
            router = Frozen()

    hass.http = Http()  # type: ignore[assignment]
    restream.async_setup_restream(hass)
    assert "Restream URLs are not available" in caplog.text
