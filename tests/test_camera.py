"""The camera entity against a real fake printer: one upstream, any viewers."""

from __future__ import annotations

import asyncio
import time

from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.printcam.sources.base import Backoff
from printer_sim.jpeg import solid_jpeg
from printer_sim.mjpeg_server import MjpegPrinter

from .conftest import Viewer, make_entry, setup_entry, until

ENTITY = "camera.printer"
STREAM = f"/api/camera_proxy_stream/{ENTITY}"
STILL = f"/api/camera_proxy/{ENTITY}"


async def _open_viewer(client, path: str = STREAM) -> Viewer:
    response = await client.get(path)
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("multipart/x-mixed-replace")
    return Viewer(response)


async def test_three_viewers_share_one_connection(
    hass: HomeAssistant, hass_client: ClientSessionGenerator, printer: MjpegPrinter
) -> None:
    entry = await setup_entry(hass, make_entry(printer.url))
    # Setup probed the camera once and closed that connection.
    await until(lambda: printer.open_connections == 0)
    before = printer.stream_requests
    client = await hass_client()
    viewers = [await _open_viewer(client) for _ in range(3)]
    for viewer in viewers:
        await viewer.wait_frames(10)
    assert printer.stream_requests - before == 1
    assert printer.max_open_connections == 1
    sent = printer.frames_sent
    for viewer in viewers:
        # Byte-identical, in order: a contiguous run of what the printer sent.
        first = sent.index(viewer.frames[0])
        assert viewer.frames[:10] == sent[first : first + 10]

    # A fourth viewer of a slow stream gets a frame at once (the latest).
    printer.pause()
    started = time.monotonic()
    late = await _open_viewer(client)
    await late.wait_frames(1, timeout=1.0)
    assert time.monotonic() - started < 0.5
    assert late.frames[0] in sent
    assert printer.stream_requests - before == 1
    printer.resume()

    for viewer in [*viewers, late]:
        await viewer.close()
    await hass.config_entries.async_unload(entry.entry_id)
    await until(lambda: printer.open_connections == 0, timeout=2.0)


async def test_stills_while_streaming_open_no_connection(
    hass: HomeAssistant, hass_client: ClientSessionGenerator, printer: MjpegPrinter
) -> None:
    entry = await setup_entry(hass, make_entry(printer.url))
    client = await hass_client()
    viewer = await _open_viewer(client)
    await viewer.wait_frames(3)
    before = printer.total_connections
    for _ in range(5):
        response = await client.get(STILL)
        assert response.status == 200
        assert response.headers["Content-Type"] == "image/jpeg"
        body = await response.read()
        assert body in printer.frames_sent
    assert printer.total_connections == before
    await viewer.close()
    await hass.config_entries.async_unload(entry.entry_id)


async def test_concurrent_stills_while_idle_share_one_connection(
    hass: HomeAssistant, hass_client: ClientSessionGenerator, printer: MjpegPrinter
) -> None:
    entry = await setup_entry(hass, make_entry(printer.url))
    await until(lambda: printer.open_connections == 0)
    before = printer.total_connections
    client = await hass_client()
    responses = await asyncio.gather(*(client.get(STILL) for _ in range(10)))
    bodies = [await r.read() for r in responses]
    assert all(r.status == 200 for r in responses)
    assert all(body in printer.frames_sent for body in bodies)
    assert printer.total_connections - before == 1
    assert printer.max_open_connections == 1
    await hass.config_entries.async_unload(entry.entry_id)
    await until(lambda: printer.open_connections == 0, timeout=2.0)


async def test_polled_stills_hold_one_connection(
    hass: HomeAssistant, hass_client: ClientSessionGenerator, printer: MjpegPrinter
) -> None:
    """A still every 2 s for 12 s (still_hold_s 5) holds one connection."""
    entry = await setup_entry(
        hass, make_entry(printer.url, options={"still_hold_s": 5, "idle_grace_s": 0})
    )
    await until(lambda: printer.open_connections == 0)
    before = printer.total_connections
    client = await hass_client()
    for _ in range(7):
        response = await client.get(STILL)
        assert response.status == 200
        await asyncio.sleep(2)
    last_still = time.monotonic() - 2
    assert printer.total_connections - before == 1
    assert printer.open_connections == 1
    await until(lambda: printer.open_connections == 0, timeout=8)
    held = time.monotonic() - last_still
    assert 4.5 <= held <= 6.5, held
    await hass.config_entries.async_unload(entry.entry_id)


def _jpeg_size(jpeg: bytes) -> tuple[int, int]:
    """Return (width, height) from a JPEG's SOF segment."""
    pos = 2
    while pos < len(jpeg):
        marker, length = jpeg[pos + 1], int.from_bytes(jpeg[pos + 2 : pos + 4])
        if marker in (0xC0, 0xC1, 0xC2):
            height = int.from_bytes(jpeg[pos + 5 : pos + 7])
            width = int.from_bytes(jpeg[pos + 7 : pos + 9])
            return width, height
        pos += 2 + length
    raise AssertionError("no SOF segment")


async def test_scaled_still(
    hass: HomeAssistant, hass_client: ClientSessionGenerator, socket_enabled: None
) -> None:
    """Home Assistant's camera component scales our JPEG (turbojpeg)."""
    frame = solid_jpeg(640, 480, 90)
    printer = MjpegPrinter(frames=[frame], fps=20)
    await printer.start()
    try:
        entry = await setup_entry(hass, make_entry(printer.url))
        client = await hass_client()
        response = await client.get(STILL)
        assert _jpeg_size(await response.read()) == (640, 480)
        response = await client.get(f"{STILL}?width=320&height=240")
        assert response.status == 200
        assert _jpeg_size(await response.read()) == (320, 240)
        await hass.config_entries.async_unload(entry.entry_id)
    finally:
        await printer.close()


async def test_last_viewer_leaves_then_grace_closes(
    hass: HomeAssistant, hass_client: ClientSessionGenerator, printer: MjpegPrinter
) -> None:
    entry = await setup_entry(
        hass, make_entry(printer.url, options={"idle_grace_s": 1})
    )
    client = await hass_client()
    before = printer.total_connections
    viewer = await _open_viewer(client)
    await viewer.wait_frames(2)
    await viewer.close()
    # Returning within the grace window reuses the same connection.
    await asyncio.sleep(0.5)
    assert printer.open_connections == 1
    again = await _open_viewer(client)
    await again.wait_frames(2)
    assert printer.total_connections - before == 1
    await again.close()
    left = time.monotonic()
    await until(lambda: printer.open_connections == 0, timeout=3)
    assert 0.8 <= time.monotonic() - left <= 2.0
    await hass.config_entries.async_unload(entry.entry_id)


async def test_upstream_drop_reconnects_without_viewers_noticing(
    hass: HomeAssistant, hass_client: ClientSessionGenerator, printer: MjpegPrinter
) -> None:
    entry = await setup_entry(hass, make_entry(printer.url))
    entry.runtime_data.source.backoff = Backoff(initial=0.1, cap=0.5)
    client = await hass_client()
    viewers = [await _open_viewer(client) for _ in range(2)]
    for viewer in viewers:
        await viewer.wait_frames(3)
    before = printer.stream_requests
    printer.drop_all()
    counts = [len(v.frames) for v in viewers]
    for viewer, count in zip(viewers, counts, strict=True):
        await viewer.wait_frames(count + 5)
        assert not viewer.ended
    assert printer.stream_requests - before == 1
    assert printer.max_open_connections == 1
    assert entry.runtime_data.stream.snapshot.reconnects == 1
    for viewer in viewers:
        await viewer.close()
    await hass.config_entries.async_unload(entry.entry_id)


async def test_unload_closes_viewers_within_a_second(
    hass: HomeAssistant, hass_client: ClientSessionGenerator, printer: MjpegPrinter
) -> None:
    entry = await setup_entry(hass, make_entry(printer.url))
    client = await hass_client()
    viewers = [await _open_viewer(client) for _ in range(3)]
    for viewer in viewers:
        await viewer.wait_frames(2)
    started = time.monotonic()
    assert await hass.config_entries.async_unload(entry.entry_id)
    await until(lambda: all(v.ended for v in viewers), timeout=1.0)
    await until(lambda: printer.open_connections == 0, timeout=1.0)
    assert time.monotonic() - started < 1.0
    for viewer in viewers:
        await viewer.close()


async def test_reload_with_viewers_closes_them_and_serves_again(
    hass: HomeAssistant, hass_client: ClientSessionGenerator, printer: MjpegPrinter
) -> None:
    entry = await setup_entry(hass, make_entry(printer.url))
    client = await hass_client()
    viewers = [await _open_viewer(client) for _ in range(2)]
    for viewer in viewers:
        await viewer.wait_frames(2)
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    await until(lambda: all(v.ended for v in viewers), timeout=1.0)
    assert printer.max_open_connections == 1
    fresh = await _open_viewer(client)
    await fresh.wait_frames(2)
    for viewer in [*viewers, fresh]:
        await viewer.close()
    await hass.config_entries.async_unload(entry.entry_id)
    await until(lambda: printer.open_connections == 0, timeout=2.0)


async def test_still_url_used_while_idle(
    hass: HomeAssistant, hass_client: ClientSessionGenerator, printer: MjpegPrinter
) -> None:
    entry = await setup_entry(
        hass, make_entry(printer.url, still_url=printer.still_url)
    )
    await until(lambda: printer.open_connections == 0)
    streams = printer.stream_requests
    client = await hass_client()
    response = await client.get(STILL)
    assert response.status == 200
    assert (await response.read()).startswith(b"\xff\xd8")
    assert printer.still_requests == 1
    assert printer.stream_requests == streams
    await hass.config_entries.async_unload(entry.entry_id)
