"""Every branch of the config, options, reconfigure and reauth flows."""

from __future__ import annotations

from unittest.mock import patch

from homeassistant import config_entries
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
import pytest

from custom_components.printcam.config_flow import normalize_url
from custom_components.printcam.const import DOMAIN
from printer_sim.mjpeg_server import MjpegPrinter

from .conftest import make_entry, setup_entry


async def _mjpeg_form(hass: HomeAssistant) -> str:
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": config_entries.SOURCE_USER}
    )
    assert result["type"] is FlowResultType.MENU
    assert "mjpeg" in result["menu_options"]
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"next_step_id": "mjpeg"}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "mjpeg"
    return result["flow_id"]


async def test_user_flow_creates_entry(
    hass: HomeAssistant, printer: MjpegPrinter
) -> None:
    flow_id = await _mjpeg_form(hass)
    result = await hass.config_entries.flow.async_configure(
        flow_id,
        {"name": "Voron", "url": printer.url, "username": " ", "verify_ssl": True},
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "Voron"
    assert result["data"] == {"kind": "mjpeg", "url": printer.url, "verify_ssl": True}
    assert result["result"].unique_id == normalize_url(printer.url)
    await hass.async_block_till_done()
    assert hass.states.get("camera.voron") is not None


async def test_user_flow_with_all_fields(
    hass: HomeAssistant, socket_enabled: None
) -> None:
    printer = MjpegPrinter(username="maker", password="s3cret!", auth="digest")
    await printer.start()
    try:
        flow_id = await _mjpeg_form(hass)
        result = await hass.config_entries.flow.async_configure(
            flow_id,
            {
                "name": "Prusa",
                "url": printer.url,
                "still_url": printer.still_url,
                "username": "maker",
                "password": "s3cret!",
                "verify_ssl": False,
            },
        )
        assert result["type"] is FlowResultType.CREATE_ENTRY
        assert result["data"] == {
            "kind": "mjpeg",
            "url": printer.url,
            "still_url": printer.still_url,
            "username": "maker",
            "password": "s3cret!",
            "verify_ssl": False,
        }
        await hass.async_block_till_done()
        entry = result["result"]
        assert await hass.config_entries.async_unload(entry.entry_id)
    finally:
        await printer.close()


@pytest.mark.parametrize(
    ("mode", "error"),
    [
        ("status_401", "invalid_auth"),
        ("status_403", "invalid_auth"),
        ("not_mjpeg", "not_mjpeg"),
        ("status_500", "cannot_connect"),
    ],
)
async def test_user_flow_errors_then_recovers(
    hass: HomeAssistant, printer: MjpegPrinter, mode: str, error: str
) -> None:
    printer.set_mode(mode)
    flow_id = await _mjpeg_form(hass)
    user_input = {"name": "P", "url": printer.url, "verify_ssl": True}
    result = await hass.config_entries.flow.async_configure(flow_id, user_input)
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": error}
    printer.set_mode("good")
    result = await hass.config_entries.flow.async_configure(flow_id, user_input)
    assert result["type"] is FlowResultType.CREATE_ENTRY


async def test_user_flow_refused_and_timeout(
    hass: HomeAssistant, printer: MjpegPrinter
) -> None:
    flow_id = await _mjpeg_form(hass)
    user_input = {"name": "P", "url": printer.url, "verify_ssl": True}
    printer.refuse()
    result = await hass.config_entries.flow.async_configure(flow_id, user_input)
    assert result["errors"] == {"base": "cannot_connect"}
    await printer.accept()
    printer.pause()
    with patch("custom_components.printcam.config_flow.VALIDATE_TIMEOUT", 0.3):
        result = await hass.config_entries.flow.async_configure(flow_id, user_input)
    assert result["errors"] == {"base": "timeout"}
    printer.resume()
    result = await hass.config_entries.flow.async_configure(flow_id, user_input)
    assert result["type"] is FlowResultType.CREATE_ENTRY


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("url", "ftp://printer/stream"),
        ("url", "not a url"),
        ("url", "http://"),
        ("still_url", "rtsp://printer/still"),
    ],
)
async def test_user_flow_invalid_url(
    hass: HomeAssistant, printer: MjpegPrinter, field: str, value: str
) -> None:
    flow_id = await _mjpeg_form(hass)
    user_input = {"name": "P", "url": printer.url, "verify_ssl": True, field: value}
    result = await hass.config_entries.flow.async_configure(flow_id, user_input)
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {field: "invalid_url"}
    assert printer.total_connections == 0  # refused in the form, no request
    user_input[field] = printer.url if field == "url" else printer.still_url
    result = await hass.config_entries.flow.async_configure(flow_id, user_input)
    assert result["type"] is FlowResultType.CREATE_ENTRY


async def test_user_flow_unexpected_error(
    hass: HomeAssistant, printer: MjpegPrinter
) -> None:
    flow_id = await _mjpeg_form(hass)
    user_input = {"name": "P", "url": printer.url, "verify_ssl": True}
    with patch(
        "custom_components.printcam.config_flow.create_source",
        side_effect=RuntimeError("boom"),
    ):
        result = await hass.config_entries.flow.async_configure(flow_id, user_input)
    assert result["errors"] == {"base": "unknown"}


async def test_duplicate_aborts(hass: HomeAssistant, printer: MjpegPrinter) -> None:
    entry = make_entry(printer.url)
    entry.add_to_hass(hass)
    flow_id = await _mjpeg_form(hass)
    # Same camera, spelled differently.
    url = printer.url.replace("http://", "HTTP://")
    result = await hass.config_entries.flow.async_configure(
        flow_id, {"name": "P", "url": url, "verify_ssl": True}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"


def test_normalize_url() -> None:
    assert normalize_url("HTTP://User:pw@Printer.local:80") == "http://printer.local/"
    assert normalize_url(" https://h:443/a?b=1#x ") == "https://h/a?b=1"
    assert normalize_url("http://h:8080/stream") == "http://h:8080/stream"
    assert normalize_url("http://[::1]:8080/s") == "http://[::1]:8080/s"


async def test_options_flow(hass: HomeAssistant, printer: MjpegPrinter) -> None:
    entry = await setup_entry(
        hass, make_entry(printer.url, options={"keep_warm": False})
    )
    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert result["type"] is FlowResultType.FORM
    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {"max_fps": 5, "idle_grace_s": 2, "still_hold_s": 15, "stall_s": 20},
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert entry.options == {
        "keep_warm": False,
        "max_fps": 5,
        "idle_grace_s": 2,
        "still_hold_s": 15,
        "stall_s": 20,
    }
    await hass.async_block_till_done()
    assert entry.runtime_data.stream.options.max_fps == 5
    assert entry.runtime_data.stream.options.idle_grace_s == 2
    await hass.config_entries.async_unload(entry.entry_id)


async def test_reconfigure(hass: HomeAssistant, socket_enabled: None) -> None:
    printer = MjpegPrinter(username="u", password="old-pass")
    await printer.start()
    try:
        entry = await setup_entry(
            hass, make_entry(printer.url, username="u", password="old-pass")
        )
        result = await entry.start_reconfigure_flow(hass)
        assert result["step_id"] == "reconfigure"
        # Another camera's URL: refused.
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"],
            {"url": "http://127.0.0.1:1/other", "verify_ssl": True},
        )
        assert result["type"] is FlowResultType.ABORT
        assert result["reason"] == "unique_id_mismatch"

        result = await entry.start_reconfigure_flow(hass)
        flow_id = result["flow_id"]
        result = await hass.config_entries.flow.async_configure(
            flow_id, {"url": "gopher://x", "verify_ssl": True}
        )
        assert result["errors"] == {"url": "invalid_url"}
        result = await hass.config_entries.flow.async_configure(
            flow_id,
            {
                "url": printer.url,
                "username": "u",
                "password": "bad",
                "verify_ssl": True,
            },
        )
        assert result["errors"] == {"base": "invalid_auth"}
        # Empty password keeps the stored one; a still URL is added.
        result = await hass.config_entries.flow.async_configure(
            flow_id,
            {
                "url": printer.url,
                "still_url": printer.still_url,
                "username": "u",
                "verify_ssl": True,
            },
        )
        assert result["type"] is FlowResultType.ABORT
        assert result["reason"] == "reconfigure_successful"
        assert entry.data["password"] == "old-pass"
        assert entry.data["still_url"] == printer.still_url
        await hass.async_block_till_done()
        assert printer.max_open_connections == 1
        assert await hass.config_entries.async_unload(entry.entry_id)
    finally:
        await printer.close()


async def test_reauth(hass: HomeAssistant, socket_enabled: None) -> None:
    printer = MjpegPrinter(username="u", password="new-pass")
    await printer.start()
    try:
        entry = make_entry(printer.url, username="u", password="old-pass")
        await setup_entry(hass, entry)
        flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
        assert len(flows) == 1
        assert flows[0]["context"]["source"] == config_entries.SOURCE_REAUTH
        flow_id = flows[0]["flow_id"]
        result = await hass.config_entries.flow.async_configure(
            flow_id, {"username": "u", "password": "wrong"}
        )
        assert result["errors"] == {"base": "invalid_auth"}
        result = await hass.config_entries.flow.async_configure(
            flow_id, {"username": "u", "password": "new-pass"}
        )
        assert result["type"] is FlowResultType.ABORT
        assert result["reason"] == "reauth_successful"
        assert entry.data["password"] == "new-pass"
        await hass.async_block_till_done()
        assert entry.state is config_entries.ConfigEntryState.LOADED
        assert await hass.config_entries.async_unload(entry.entry_id)
    finally:
        await printer.close()
