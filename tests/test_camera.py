"""The camera entity against a real fake printer: one upstream, any viewers."""

from __future__ import annotations

import asyncio
import socket
import time
from unittest.mock import Mock

from aiohttp.test_utils import make_mocked_request
from homeassistant.components.camera import DATA_COMPONENT as CAMERA_COMPONENT
from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.printcam import viewer as viewer_module
from custom_components.printcam.sources.base import Backoff
from custom_components.printcam.stream import StreamState
from printer_sim.jpeg import solid_jpeg, with_comment
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
    entry = await setup_entry(hass, make_entry(printer.url), keep_probe=True)
    # Setup's probe connection is the stream's first: viewers arriving right
    # after startup (a dashboard left open) join it, no second connection.
    assert printer.open_connections == 1
    client = await hass_client()
    viewers = [await _open_viewer(client) for _ in range(3)]
    for viewer in viewers:
        await viewer.wait_frames(10)
    assert printer.stream_requests == 1
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
    assert printer.stream_requests == 1
    printer.resume()

    for viewer in [*viewers, late]:
        await viewer.close()
    await hass.config_entries.async_unload(entry.entry_id)
    await until(lambda: printer.open_connections == 0, timeout=2.0)


async def test_the_probe_connection_is_held_like_a_still_then_closed(
    hass: HomeAssistant, hass_client: ClientSessionGenerator, printer: MjpegPrinter
) -> None:
    entry = await setup_entry(
        hass,
        make_entry(printer.url, options={"still_hold_s": 1, "idle_grace_s": 0}),
        keep_probe=True,
    )
    set_up = time.monotonic()
    assert printer.open_connections == 1
    # A still right after startup is the probe's frame or a newer one: no
    # new connection.
    client = await hass_client()
    response = await client.get(STILL)
    assert response.status == 200
    assert await response.read() in printer.frames_sent
    assert printer.total_connections == 1
    # Nobody watches: it closes when the hold ends.
    await until(lambda: printer.open_connections == 0, timeout=5)
    assert time.monotonic() - set_up >= 0.9
    assert entry.runtime_data.stream.state is StreamState.IDLE
    await hass.config_entries.async_unload(entry.entry_id)


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
    # Returning within the grace window reuses the same connection: wait for
    # the leave itself, not for a time that load stretches past the grace.
    stream = entry.runtime_data.stream
    await until(lambda: stream.viewers == 0)
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


async def _sleeping_phone(client, token: str) -> socket.socket:
    """Open the stream like a phone that went to sleep: it never reads.

    A tiny receive buffer, so the server's side fills up quickly.
    """
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    url = client.make_url(STREAM)
    await loop.sock_connect(sock, (url.host, url.port))
    request = (
        f"GET {STREAM} HTTP/1.1\r\nHost: {url.host}:{url.port}\r\n"
        f"Authorization: Bearer {token}\r\n\r\n"
    )
    await loop.sock_sendall(sock, request.encode())
    return sock


async def test_viewers_that_never_read_skip_frames_and_are_ended(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    hass_access_token: str,
    socket_enabled: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """5 viewers that never read beside 3 readers, 200 kB frames at 25 fps.

    The readers get every frame on time; the sleepers cost at most the
    buffer bound each, skip frames (counted), are ended once they made no
    progress for the stall timeout, and do not hold the printer connected.
    """
    monkeypatch.setattr(viewer_module, "STALL_TIMEOUT", 1.5)
    monkeypatch.setattr(viewer_module, "CHECK_PERIOD", 0.2)
    padding = b"x" * 50_000
    big = solid_jpeg(64, 48)
    for _ in range(4):
        big = with_comment(big, padding)
    printer = MjpegPrinter(frames=[big], fps=25, record_frames=False)
    await printer.start()
    sleepers: list[socket.socket] = []
    try:
        entry = await setup_entry(
            hass, make_entry(printer.url, options={"idle_grace_s": 0.5})
        )
        stream = entry.runtime_data.stream
        client = await hass_client()
        readers = [await _open_viewer(client) for _ in range(3)]
        sleepers = [await _sleeping_phone(client, hass_access_token) for _ in range(5)]
        await until(lambda: stream.viewers == 8)
        joined = time.monotonic()
        peak_buffered = 0
        counts = [len(r.frames) for r in readers]

        def sample() -> bool:
            nonlocal peak_buffered
            bc = stream.broadcaster
            sinks = bc.sinks if bc is not None else ()
            peak_buffered = max(
                [peak_buffered] + [s.transport.get_write_buffer_size() for s in sinks]  # type: ignore[attr-defined]
            )
            return stream.viewers == 3

        await until(sample, timeout=20)
        ended_after = time.monotonic() - joined
        # Each sleeper held at most the bound plus the frame that crossed it.
        assert peak_buffered <= viewer_module.MAX_BUFFER + len(big) + 1024
        # Ended: filling the socket, then 1.5 s without progress.
        assert ended_after < 15, ended_after
        # The readers kept streaming all along, and still do.
        for reader, count in zip(readers, counts, strict=True):
            await reader.wait_frames(count + 10)
            assert not reader.ended
        snapshot = stream.snapshot
        assert snapshot.viewer_drops > 0
        assert snapshot.frames_dropped >= snapshot.viewer_drops
        assert printer.max_open_connections == 1
        # The sleepers do not hold the printer: readers leave, it closes.
        for reader in readers:
            await reader.close()
        await until(lambda: printer.open_connections == 0, timeout=5)
        await hass.config_entries.async_unload(entry.entry_id)
    finally:
        for sock in sleepers:
            sock.close()
        await printer.close()


async def test_a_viewer_of_a_closed_stream_gets_an_empty_response(
    hass: HomeAssistant, hass_client: ClientSessionGenerator, printer: MjpegPrinter
) -> None:
    """Home Assistant stopping closes the stream before the entities go."""
    entry = await setup_entry(hass, make_entry(printer.url))
    await entry.runtime_data.stream.async_close()
    client = await hass_client()
    response = await client.get(STREAM)
    assert response.status == 200
    assert await asyncio.wait_for(response.read(), 5) == b""
    assert printer.open_connections == 0
    await hass.config_entries.async_unload(entry.entry_id)


async def test_a_viewer_gone_before_the_first_write_is_not_attached(
    hass: HomeAssistant, printer: MjpegPrinter
) -> None:
    entry = await setup_entry(hass, make_entry(printer.url))
    camera = hass.data[CAMERA_COMPONENT].get_entity(ENTITY)
    transport = Mock()
    transport.is_closing.return_value = True
    request = make_mocked_request("GET", STREAM, transport=transport)
    response = await camera.handle_async_mjpeg_stream(request)
    assert response is not None
    assert entry.runtime_data.stream.viewers == 0
    assert printer.open_connections == 0
    await hass.config_entries.async_unload(entry.entry_id)


async def test_concurrent_stills_from_the_still_url_share_one_fetch(
    hass: HomeAssistant, hass_client: ClientSessionGenerator, printer: MjpegPrinter
) -> None:
    entry = await setup_entry(
        hass, make_entry(printer.url, still_url=printer.still_url)
    )
    await until(lambda: printer.open_connections == 0)
    printer.max_open_connections = 0
    client = await hass_client()
    responses = await asyncio.gather(*(client.get(STILL) for _ in range(8)))
    assert [r.status for r in responses] == [200] * 8
    bodies = {await r.read() for r in responses}
    assert len(bodies) == 1  # one fetch, every caller got its JPEG
    assert printer.still_requests == 1
    assert printer.max_open_connections == 1
    await hass.config_entries.async_unload(entry.entry_id)


async def test_the_stream_waits_for_a_still_fetch_in_flight(
    hass: HomeAssistant, hass_client: ClientSessionGenerator, printer: MjpegPrinter
) -> None:
    """A one-client camera never sees the snapshot and the stream at once."""
    entry = await setup_entry(
        hass, make_entry(printer.url, still_url=printer.still_url)
    )
    await until(lambda: printer.open_connections == 0)
    printer.max_open_connections = 0
    client = await hass_client()
    for _ in range(3):
        still, viewer = await asyncio.gather(client.get(STILL), _open_viewer(client))
        assert still.status == 200
        await viewer.wait_frames(2)
        await viewer.close()
        await entry.runtime_data.stream.async_stop_upstream()
        await until(lambda: printer.open_connections == 0)
    assert printer.still_requests >= 1
    assert printer.max_open_connections == 1
    await hass.config_entries.async_unload(entry.entry_id)


async def test_refused_credentials_are_not_tried_again(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    printer: MjpegPrinter,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """After a 401 nothing logs in again until the entry is fixed or reloaded."""
    entry = await setup_entry(
        hass, make_entry(printer.url, options={"keep_warm": True})
    )
    stream = entry.runtime_data.stream
    await until(lambda: stream.state is StreamState.STREAMING)
    last = stream.latest_jpeg
    printer.set_mode("status_401")
    printer.drop_all()
    await until(lambda: stream.state is StreamState.AUTH_FAILED)
    await hass.async_block_till_done()
    attempts = printer.stream_requests + printer.still_requests
    warnings = len([r for r in caplog.records if r.levelname == "WARNING"])
    client = await hass_client()
    for _ in range(5):
        response = await client.get(STILL)
        assert response.status == 200
        assert await response.read() == last  # the last frame, not a login
    response = await client.get(STREAM)
    assert response.status == 502  # a clear end, no login
    stream.apply_options(stream.options)  # keep-warm asks again: still nothing
    assert printer.stream_requests + printer.still_requests == attempts
    assert len([r for r in caplog.records if r.levelname == "WARNING"]) == warnings
    # Fixed on the printer and the entry reloaded: streaming again.
    printer.set_mode("good")
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    stream = entry.runtime_data.stream
    await until(lambda: stream.state is StreamState.STREAMING)
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_a_still_url_refusing_the_password_starts_reauth_once(
    hass: HomeAssistant, hass_client: ClientSessionGenerator, printer: MjpegPrinter
) -> None:
    entry = await setup_entry(
        hass, make_entry(printer.url, still_url=printer.still_url)
    )
    await until(lambda: printer.open_connections == 0)
    stream = entry.runtime_data.stream
    printer.set_mode("status_401")
    client = await hass_client()
    await asyncio.gather(*(client.get(STILL) for _ in range(3)))  # one fetch
    for _ in range(3):
        await client.get(STILL)
    await hass.async_block_till_done()
    assert printer.still_requests == 1  # refused once, never asked again
    assert printer.stream_requests == 1  # setup's probe only
    assert stream.state is StreamState.AUTH_FAILED
    flows = hass.config_entries.flow.async_progress_by_handler("printcam")
    assert [f["context"]["source"] for f in flows] == ["reauth"]
    await hass.config_entries.async_unload(entry.entry_id)
