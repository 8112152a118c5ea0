"""Every branch of the config, options, reconfigure and reauth flows.

The Bambu Lab family's steps are in test_bambu.py; here the MJPEG family's,
and a family that exists only in this file goes through every step of the
glue, as a new family would.
"""

from __future__ import annotations

from collections.abc import Mapping
from ipaddress import ip_address
from typing import Any
from unittest.mock import AsyncMock, patch

from homeassistant import config_entries
from homeassistant.config_entries import ConfigFlowResult
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers.service_info.zeroconf import ZeroconfServiceInfo
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
import voluptuous as vol

from custom_components.printcam.const import DOMAIN
from custom_components.printcam.families import (
    FAMILIES,
    Discovered,
    Draft,
    Family,
    FormError,
)
from custom_components.printcam.families.mjpeg import MjpegFamily, normalize_url
from custom_components.printcam.sources import FrameSource, ProtocolError, SourceError
from printer_sim.mjpeg_server import MjpegPrinter

from .conftest import make_entry, setup_entry


class _OddError(SourceError):
    """A source error with no form text of its own."""

    reason = "odd"


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


async def _unload_created(hass: HomeAssistant, result: ConfigFlowResult) -> None:
    """Unload the entry the flow created: its stream and connection close."""
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    assert await hass.config_entries.async_unload(result["result"].entry_id)


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
    await _unload_created(hass, result)


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
    await _unload_created(hass, result)


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
    await _unload_created(hass, result)


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
    await _unload_created(hass, result)


async def test_user_flow_unexpected_error(
    hass: HomeAssistant, printer: MjpegPrinter
) -> None:
    flow_id = await _mjpeg_form(hass)
    user_input = {"name": "P", "url": printer.url, "verify_ssl": True}
    with patch.object(MjpegFamily, "create_source", side_effect=RuntimeError("boom")):
        result = await hass.config_entries.flow.async_configure(flow_id, user_input)
    assert result["errors"] == {"base": "unknown"}
    result = await hass.config_entries.flow.async_configure(flow_id, user_input)
    await _unload_created(hass, result)


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
        assert result["step_id"] == "reconfigure_mjpeg"
        # The form starts with the stored settings, never the password.
        suggested = {
            str(key): key.description["suggested_value"]
            for key in result["data_schema"].schema
            if key.description
        }
        assert suggested == {"url": printer.url, "username": "u"}
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
        assert flows[0]["step_id"] == "reauth_mjpeg"
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


# --- a family that exists only here ---------------------------------------------------


class FakeFamily(Family):
    """A new kind of printer: a module, one registry line, strings and tests."""

    kind = "fake"
    user_schema = vol.Schema({vol.Required("host"): str})
    reauth_schema = vol.Schema({vol.Required("token"): str})
    reconfigure_schema = vol.Schema({vol.Required("host"): str})

    def __init__(self) -> None:
        self.failures: list[Exception] = []
        """Raised by the next checks, in order."""

    def validate_data(self, data: Mapping[str, Any]) -> None:
        """Accept anything."""

    def unique_id(self, data: Mapping[str, Any]) -> str:
        return str(data["host"])

    def create_source(
        self, hass: HomeAssistant, data: Mapping[str, Any]
    ) -> FrameSource:
        raise NotImplementedError

    def parse_user(self, user_input: Mapping[str, Any]) -> Draft:
        if "." not in user_input["host"]:
            raise FormError({"host": "invalid_host"})
        return Draft(f"Fake {user_input['host']}", {"kind": "fake", **user_input})

    def parse_reauth(
        self, data: Mapping[str, Any], user_input: Mapping[str, Any]
    ) -> dict[str, Any]:
        return {**data, **user_input}

    def parse_reconfigure(
        self, data: Mapping[str, Any], user_input: Mapping[str, Any]
    ) -> dict[str, Any]:
        return {**data, **user_input}

    def reconfigure_suggested(self, data: Mapping[str, Any]) -> dict[str, Any]:
        return {"host": data["host"]}

    async def async_check(
        self, hass: HomeAssistant, data: Mapping[str, Any], timeout: float
    ) -> dict[str, Any]:
        if self.failures:
            raise self.failures.pop(0)
        return {**data, "checked": True}

    def discovered(self, source: str, info: object) -> Discovered | None:
        if (
            not isinstance(info, ZeroconfServiceInfo)
            or info.type != "_fake._tcp.local."
        ):
            return None
        host = str(info.ip_address)
        return Discovered(
            unique_id=host,
            title=f"Fake {host}",
            data={"kind": "fake", "host": host},
            placeholders={"name": f"Fake {host}"},
            updates={"host": host},
        )

    def discovery_schema(self, discovered: Discovered) -> vol.Schema:
        return vol.Schema({vol.Required("token"): str})

    def parse_discovery(
        self, discovered: Discovered, user_input: Mapping[str, Any]
    ) -> Draft:
        return Draft(discovered.title, {**discovered.data, **user_input})


def _zeroconf(host: str, service: str = "_fake._tcp.local.") -> ZeroconfServiceInfo:
    return ZeroconfServiceInfo(
        ip_address=ip_address(host),
        ip_addresses=[ip_address(host)],
        hostname="fake.local.",
        name=f"Fake.{service}",
        port=80,
        type=service,
        properties={},
    )


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeFamily:
    """Register a fake family; its entries load without a source or stream."""

    async def setup(hass: HomeAssistant, entry: Any) -> bool:
        entry.runtime_data = AsyncMock()
        entry.runtime_data.cameras = [entry.runtime_data]  # one camera: itself
        return True

    async def unload(hass: HomeAssistant, entry: Any) -> bool:
        return True

    family = FakeFamily()
    monkeypatch.setitem(FAMILIES, family.kind, family)
    monkeypatch.setattr("custom_components.printcam.async_setup_entry", setup)
    monkeypatch.setattr("custom_components.printcam.async_unload_entry", unload)
    return family


async def test_a_new_family_gets_a_menu_option_and_an_add_step(
    hass: HomeAssistant, fake: FakeFamily
) -> None:
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": config_entries.SOURCE_USER}
    )
    assert result["menu_options"] == [
        "bambu",
        "octoprint",
        "moonraker",
        "mjpeg",
        "fake",
    ]
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"next_step_id": "fake"}
    )
    assert result["step_id"] == "fake"
    flow_id = result["flow_id"]
    result = await hass.config_entries.flow.async_configure(flow_id, {"host": "x"})
    assert result["errors"] == {"host": "invalid_host"}
    # A garbled answer has its own text; a source error without a form
    # string of its own reads as cannot_connect.
    fake.failures = [
        ProtocolError("garbled"),
        _OddError("odd"),
        FormError({"base": "other"}),
    ]
    result = await hass.config_entries.flow.async_configure(flow_id, {"host": "f.lan"})
    assert result["errors"] == {"base": "protocol_error"}
    result = await hass.config_entries.flow.async_configure(flow_id, {"host": "f.lan"})
    assert result["errors"] == {"base": "cannot_connect"}
    result = await hass.config_entries.flow.async_configure(flow_id, {"host": "f.lan"})
    assert result["errors"] == {"base": "other"}
    result = await hass.config_entries.flow.async_configure(flow_id, {"host": "f.lan"})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "Fake f.lan"
    assert result["data"] == {"kind": "fake", "host": "f.lan", "checked": True}
    assert result["result"].unique_id == "f.lan"


async def test_a_new_family_is_discovered_by_zeroconf(
    hass: HomeAssistant, fake: FakeFamily
) -> None:
    result = await hass.config_entries.flow.async_init(
        DOMAIN,
        context={"source": config_entries.SOURCE_ZEROCONF},
        data=_zeroconf("10.0.0.7"),
    )
    assert result["step_id"] == "discovery_confirm"
    assert result["description_placeholders"] == {"name": "Fake 10.0.0.7"}
    fake.failures = [FormError({"token": "invalid_token"})]
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"token": "t"}
    )
    assert result["errors"] == {"token": "invalid_token"}
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"token": "t"}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"] == {
        "kind": "fake",
        "host": "10.0.0.7",
        "token": "t",
        "checked": True,
    }
    # Known now: the next announcement only refreshes the entry.
    result = await hass.config_entries.flow.async_init(
        DOMAIN,
        context={"source": config_entries.SOURCE_ZEROCONF},
        data=_zeroconf("10.0.0.7"),
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"


async def test_no_family_claims_the_discovery(hass: HomeAssistant) -> None:
    result = await hass.config_entries.flow.async_init(
        DOMAIN,
        context={"source": config_entries.SOURCE_ZEROCONF},
        data=_zeroconf("10.0.0.7", "_other._tcp.local."),
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "not_supported"


async def test_a_new_family_gets_reauth_and_reconfigure_steps(
    hass: HomeAssistant, fake: FakeFamily
) -> None:
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="Fake",
        data={"kind": "fake", "host": "f.lan", "token": "old"},
        unique_id="f.lan",
    )
    entry.add_to_hass(hass)
    result = await entry.start_reauth_flow(hass)
    assert result["step_id"] == "reauth_fake"
    fake.failures = [ProtocolError("garbled")]
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"token": "new"}
    )
    assert result["errors"] == {"base": "protocol_error"}
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"token": "new"}
    )
    assert result["reason"] == "reauth_successful"
    assert entry.data["token"] == "new"
    await hass.async_block_till_done()
    assert entry.state is config_entries.ConfigEntryState.LOADED

    result = await entry.start_reconfigure_flow(hass)
    assert result["step_id"] == "reconfigure_fake"
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"host": "other.lan"}
    )
    assert result["reason"] == "unique_id_mismatch"
    result = await entry.start_reconfigure_flow(hass)
    loaded = entry.runtime_data
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"host": "f.lan"}
    )
    assert result["reason"] == "reconfigure_successful"
    # The loaded entry's stream was closed before its printer was checked.
    loaded.stream.async_stop_upstream.assert_awaited_once()
    await hass.async_block_till_done()
