"""Staged setup, rollback, retry, reauth and unload."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from homeassistant.config_entries import SOURCE_REAUTH, ConfigEntryState
from homeassistant.const import EVENT_HOMEASSISTANT_STOP
from homeassistant.core import HomeAssistant
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import async_fire_time_changed

from custom_components.printcam import fanout, startup
from custom_components.printcam.const import DOMAIN
from custom_components.printcam.families.mjpeg import legacy_unique_id, normalize_url
from custom_components.printcam.startup import STAGES, Stage
from custom_components.printcam.stream import StreamState
from printer_sim.mjpeg_server import MjpegPrinter

from .conftest import make_entry, setup_entry, until


async def test_minimal_entry_sets_up_and_unloads(
    hass: HomeAssistant, printer: MjpegPrinter
) -> None:
    entry = await setup_entry(hass, make_entry(printer.url))
    assert entry.state is ConfigEntryState.LOADED
    state = hass.states.get("camera.printer")
    assert state is not None
    assert state.state == "idle"
    assert printer.stream_requests == 1  # the probe
    await until(lambda: printer.open_connections == 0)
    assert await hass.config_entries.async_unload(entry.entry_id)
    assert entry.state is ConfigEntryState.NOT_LOADED
    assert not [bc for bc in fanout._BROADCASTERS.values() if not bc.stopped]


@pytest.mark.parametrize("failing", [stage.name for stage in STAGES])
async def test_each_failing_stage_leaves_nothing_running(
    hass: HomeAssistant,
    printer: MjpegPrinter,
    monkeypatch: pytest.MonkeyPatch,
    failing: str,
) -> None:
    undone: list[str] = []
    stages = []
    for stage in STAGES:
        run, undo = stage.run, stage.undo

        async def failing_run(ctx, run=run, name=stage.name):
            await run(ctx)  # do the stage's work, then fail after it
            if name == failing:
                raise RuntimeError(f"stage {name} failed")

        async def recording_undo(ctx, undo=undo, name=stage.name):
            undone.append(name)
            return await undo(ctx) if undo else True

        stages.append(
            Stage(stage.name, failing_run, recording_undo, stage.undo_partial)
        )
    monkeypatch.setattr(startup, "STAGES", tuple(stages))
    tasks_before = asyncio.all_tasks()
    entry = await setup_entry(hass, make_entry(printer.url))
    assert entry.state is ConfigEntryState.SETUP_ERROR
    names = [s.name for s in STAGES]
    done = names[: names.index(failing)]
    expected = list(reversed(done))
    if STAGES[names.index(failing)].undo_partial:
        expected.insert(0, failing)
    assert undone == expected
    await until(lambda: printer.open_connections == 0, timeout=2.0)
    assert not [bc for bc in fanout._BROADCASTERS.values() if not bc.stopped]
    state = hass.states.get("camera.printer")
    assert state is None or state.state == "unavailable"
    new_tasks = [
        t for t in asyncio.all_tasks() - tasks_before if "printcam" in t.get_name()
    ]
    assert not new_tasks


async def test_printer_off_then_back(
    hass: HomeAssistant, printer: MjpegPrinter
) -> None:
    printer.refuse()
    entry = await setup_entry(hass, make_entry(printer.url))
    assert entry.state is ConfigEntryState.SETUP_RETRY
    assert "Could not connect" in (entry.reason or "")
    await printer.accept()
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(minutes=5))
    await until(lambda: entry.state is ConfigEntryState.LOADED)
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_probe_timeout_is_not_ready(
    hass: HomeAssistant, printer: MjpegPrinter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(startup, "PROBE_TIMEOUT", 0.2)
    printer.pause()
    entry = await setup_entry(hass, make_entry(printer.url))
    assert entry.state is ConfigEntryState.SETUP_RETRY
    printer.resume()
    await until(lambda: printer.open_connections == 0)


async def test_unauthorised_starts_reauth(
    hass: HomeAssistant, printer: MjpegPrinter
) -> None:
    printer.set_mode("status_401")
    entry = await setup_entry(hass, make_entry(printer.url))
    assert entry.state is ConfigEntryState.SETUP_ERROR
    flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert [f["context"]["source"] for f in flows] == [SOURCE_REAUTH]


async def test_not_mjpeg_is_a_config_error(
    hass: HomeAssistant, printer: MjpegPrinter
) -> None:
    printer.set_mode("not_mjpeg")
    entry = await setup_entry(hass, make_entry(printer.url))
    assert entry.state is ConfigEntryState.SETUP_ERROR
    assert not hass.config_entries.flow.async_progress_by_handler(DOMAIN)


async def test_bad_data_is_a_config_error(hass: HomeAssistant) -> None:
    entry = await setup_entry(hass, make_entry("ftp://printer/stream"))
    assert entry.state is ConfigEntryState.SETUP_ERROR
    entry2 = make_entry("http://127.0.0.1:9/x")
    entry2 = type(entry2)(domain=DOMAIN, data={"kind": "teapot"}, unique_id="t")
    await setup_entry(hass, entry2)
    assert entry2.state is ConfigEntryState.SETUP_ERROR


async def test_auth_failure_while_streaming_starts_reauth(
    hass: HomeAssistant, printer: MjpegPrinter
) -> None:
    entry = await setup_entry(
        hass, make_entry(printer.url, options={"keep_warm": True})
    )
    stream = entry.runtime_data.stream
    await until(lambda: stream.state is StreamState.STREAMING)
    printer.set_mode("status_401")
    printer.drop_all()
    await until(lambda: stream.state is StreamState.AUTH_FAILED)
    await hass.async_block_till_done()
    flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert [f["context"]["source"] for f in flows] == [SOURCE_REAUTH]
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_home_assistant_stop_closes_the_stream(
    hass: HomeAssistant, printer: MjpegPrinter
) -> None:
    entry = await setup_entry(
        hass, make_entry(printer.url, options={"keep_warm": True})
    )
    await until(lambda: printer.open_connections == 1)
    hass.bus.async_fire(EVENT_HOMEASSISTANT_STOP)
    await hass.async_block_till_done()
    await until(lambda: printer.open_connections == 0, timeout=1.0)
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_newer_entry_version_is_refused(hass: HomeAssistant) -> None:
    entry = make_entry("http://127.0.0.1:9/x")
    entry = type(entry)(domain=DOMAIN, data=dict(entry.data), version=2)
    await setup_entry(hass, entry)
    assert entry.state is ConfigEntryState.MIGRATION_ERROR


async def test_undo_that_raises_is_logged_and_unwinding_goes_on(
    hass: HomeAssistant,
    printer: MjpegPrinter,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[str] = []

    async def broken_undo(ctx) -> bool:
        calls.append("broken")
        raise RuntimeError("undo bug")

    async def fail(ctx) -> None:
        raise RuntimeError("late stage failed")

    stages = list(STAGES)
    names = [s.name for s in stages]
    register = names.index("register_stream")
    original = stages[register]

    async def undo_then_break(ctx) -> bool:
        assert original.undo is not None
        await original.undo(ctx)
        return await broken_undo(ctx)

    stages[register] = Stage(original.name, original.run, undo_then_break)
    stages.append(Stage("fail", fail))
    monkeypatch.setattr(startup, "STAGES", tuple(stages))
    entry = await setup_entry(hass, make_entry(printer.url))
    assert entry.state is ConfigEntryState.SETUP_ERROR
    assert calls == ["broken"]
    assert "undoing stage register_stream failed" in caplog.text
    await until(lambda: printer.open_connections == 0)


async def test_unload_stops_when_platforms_cannot_unload(
    hass: HomeAssistant, printer: MjpegPrinter, monkeypatch: pytest.MonkeyPatch
) -> None:
    entry = await setup_entry(hass, make_entry(printer.url))

    async def refuse(*args, **kwargs) -> bool:
        return False

    monkeypatch.setattr(hass.config_entries, "async_unload_platforms", refuse)
    assert not await hass.config_entries.async_unload(entry.entry_id)
    # The stream is still registered: nothing after the platforms was undone.
    assert entry.runtime_data.context.done
    assert entry.state is ConfigEntryState.FAILED_UNLOAD
    monkeypatch.undo()
    # Home Assistant will not retry; finish the undo ourselves.
    assert await startup.async_unload_staged(hass, entry)
    await until(lambda: printer.open_connections == 0)


async def test_older_entry_loses_query_credentials_from_its_identity(
    hass: HomeAssistant, socket_enabled: None
) -> None:
    """1.1 -> 1.2: credentials in the URL's query leave the unique id."""
    printer = MjpegPrinter(auth="query", username="admin", password="s3cret-pw")
    await printer.start()
    try:
        url = f"{printer.url}?user=admin&pwd=s3cret-pw"
        entry = make_entry(url)
        entry = type(entry)(
            domain=DOMAIN,
            title="Printer",
            data=dict(entry.data),
            unique_id=legacy_unique_id(url),
            minor_version=1,
        )
        await setup_entry(hass, entry)
        assert entry.state is ConfigEntryState.LOADED
        assert entry.minor_version == 2
        assert entry.unique_id == normalize_url(url)
        assert "s3cret-pw" not in (entry.unique_id or "")
        assert entry.data["url"] == url  # the camera still gets them
        assert await hass.config_entries.async_unload(entry.entry_id)
    finally:
        await printer.close()
