"""Shared fixtures for PrintCam tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
import contextlib
from typing import Any
from unittest.mock import PropertyMock, patch

import aiohttp
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.syrupy import HomeAssistantSnapshotExtension
from syrupy.assertion import SnapshotAssertion

from custom_components.printcam import discovery, fanout
from custom_components.printcam.const import DOMAIN
from custom_components.printcam.mjpeg import MjpegParser
from printer_sim.bambu_server import BambuPrinter
from printer_sim.mjpeg_server import MjpegPrinter


@pytest.fixture(autouse=True)
async def _no_broadcaster_left() -> AsyncIterator[None]:
    """Shut down broadcasters a test left behind and fail if it left any."""
    yield
    leftover = [bc for bc in fanout._BROADCASTERS.values() if not bc.stopped]
    await fanout.shutdown_all_broadcasters()
    assert not leftover, f"test left live broadcasters: {leftover}"


@pytest.fixture(autouse=True)
def _bambu_search_on_loopback() -> Iterator[None]:
    """Keep the Bambu Lab step's search on 127.0.0.1, and short.

    Tests talk to 127.0.0.1 only: the M-SEARCH goes there, not to the
    broadcast address. Tests of the search itself set their own times.
    """
    with (
        patch.object(discovery, "SEARCH_TARGETS", [("127.0.0.1", None)]),
        patch.object(discovery, "SEARCH_S", 0.3),
        patch.object(discovery, "SEARCH_MIN_S", 0.2),
    ):
        yield


@pytest.fixture(autouse=True)
def _custom_integrations(request: pytest.FixtureRequest) -> None:
    """Let Home Assistant load custom_components/printcam in tests using hass."""
    if "hass" in request.fixturenames:
        request.getfixturevalue("enable_custom_integrations")


@pytest.fixture
def snapshot(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    """Snapshot with Home Assistant's serializer, in tests/snapshots/."""
    return snapshot.use_extension(HomeAssistantSnapshotExtension)


@pytest.fixture
def entity_registry_enabled_by_default() -> Iterator[None]:
    """Create entities that are disabled by default as enabled."""
    with patch(
        "homeassistant.helpers.entity.Entity.entity_registry_enabled_default",
        return_value=True,
        new_callable=PropertyMock,
    ):
        yield


@pytest.fixture
async def printer(socket_enabled: None) -> AsyncIterator[MjpegPrinter]:
    """A fake MJPEG printer camera on 127.0.0.1 (20 fps)."""
    fake = MjpegPrinter(fps=20.0)
    await fake.start()
    yield fake
    await fake.close()


@contextlib.asynccontextmanager
async def started_printers[P: (MjpegPrinter, BambuPrinter)](
    cls: type[P], **defaults: Any
) -> AsyncIterator[Callable[..., Awaitable[P]]]:
    """Yield a factory of started fake printers; close them all afterwards.

    Closing waits until every connection a printer accepted has closed.
    """
    printers: list[P] = []

    async def make(**kwargs: Any) -> P:
        printer = cls(**{**defaults, **kwargs})
        await printer.start()
        printers.append(printer)
        return printer

    try:
        yield make
    finally:
        for printer in printers:
            await printer.close()


@pytest.fixture
async def make_mjpeg_printer(
    socket_enabled: None,
) -> AsyncIterator[Callable[..., Awaitable[MjpegPrinter]]]:
    """Start fast fake MJPEG printers; close them (and their sockets) afterwards."""
    async with started_printers(MjpegPrinter, fps=200.0) as make:
        yield make


@pytest.fixture
async def session(socket_enabled: None) -> AsyncIterator[aiohttp.ClientSession]:
    """A plain aiohttp client session (closed afterwards)."""
    async with aiohttp.ClientSession() as client:
        yield client


def make_entry(
    url: str, *, options: dict[str, Any] | None = None, **data: Any
) -> MockConfigEntry:
    """Return an MJPEG entry with the minimal contract data plus extras."""
    return MockConfigEntry(
        domain=DOMAIN,
        title="Printer",
        data={"kind": "mjpeg", "url": url, **data},
        options=options or {},
        unique_id=url,
    )


async def setup_entry(
    hass: HomeAssistant, entry: MockConfigEntry, *, keep_probe: bool = False
) -> MockConfigEntry:
    """Add and set up an entry, waiting until Home Assistant is idle.

    Setup's probe connection stays open as the stream's first hold (for
    `still_hold_s`); unless `keep_probe` (or keep-warm), it is closed here so the test
    starts from an idle stream, as after that hold expired.
    """
    await async_setup_component(hass, "http", {})
    entry.add_to_hass(hass)
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    warm = entry.options.get("keep_warm", False)
    if not keep_probe and not warm and entry.state is ConfigEntryState.LOADED:
        await entry.runtime_data.stream.async_stop_upstream()
        await hass.async_block_till_done()
    return entry


async def until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait until `predicate()` is true, failing after `timeout` seconds."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


class Viewer:
    """An HTTP client reading an MJPEG response into frames."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response
        self.parser = MjpegParser()
        self.frames: list[bytes] = []
        self.ended = False
        self._task = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        try:
            async for chunk in self.response.content.iter_any():
                self.frames.extend(self.parser.feed(chunk))
        except (aiohttp.ClientError, asyncio.CancelledError):
            pass
        self.ended = True

    async def wait_frames(self, count: int, timeout: float = 5.0) -> None:
        await until(lambda: len(self.frames) >= count or self.ended, timeout)
        assert len(self.frames) >= count, f"got {len(self.frames)} frames"

    async def close(self) -> None:
        self.response.close()
        self._task.cancel()
        await asyncio.wait({self._task})
