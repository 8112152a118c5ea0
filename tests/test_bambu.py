"""Bambu Lab printers through Home Assistant (P1: fake printer, X1: RTSPS server)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
import json
import logging
from pathlib import Path
import socket
import struct
from typing import Any
from unittest.mock import patch

from homeassistant import config_entries
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import EVENT_HOMEASSISTANT_STOP
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import issue_registry as ir
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator
import voluptuous as vol

from custom_components.printcam import discovery
from custom_components.printcam.const import DOMAIN
from custom_components.printcam.families.bambu import ffmpeg_quality, transcode_settings
from custom_components.printcam.sources.bambu_chamber import PrinterCertificate
from custom_components.printcam.sources.bambu_rtsps import BambuRtspsSource
from custom_components.printcam.sources.base import Backoff, CameraPortClosed
from printer_sim.bambu_server import BambuPrinter
from printer_sim.rtsps import RtspsPrinter

from .conftest import Viewer, setup_entry, started_printers, until
from .rtsps_support import SKIP_REASON, reaped

SERIAL = "01P00A392800001"
CODE = "12345678"


@pytest.fixture
async def bambu(socket_enabled: None) -> AsyncIterator[BambuPrinter]:
    """A fake P1S chamber camera at 10 fps that tolerates one client."""
    printer = BambuPrinter(serial=SERIAL, access_code=CODE, fps=10.0, mode="one_client")
    await printer.start()
    yield printer
    await printer.close()
    assert printer.concurrent_violations == 0


def bambu_entry(printer: BambuPrinter, **changes: Any) -> MockConfigEntry:
    data = {
        "kind": "bambu",
        "host": "127.0.0.1",
        "port": printer.port,
        "serial": SERIAL,
        "access_code": CODE,
        "model": "P1S",
        "cert_sha256": printer.cert_sha256,
        **changes,
    }
    return MockConfigEntry(
        domain=DOMAIN, title="Bambu Lab P1S", data=data, unique_id=SERIAL
    )


def user_input(printer: BambuPrinter, **changes: Any) -> dict[str, Any]:
    return {
        "host": "127.0.0.1",
        "serial": SERIAL,
        "access_code": CODE,
        "model": "P1S",
        "advanced": {"port": printer.port},
        **changes,
    }


async def _bambu_form(hass: HomeAssistant) -> str:
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": config_entries.SOURCE_USER}
    )
    assert result["type"] is FlowResultType.MENU
    assert result["menu_options"] == ["bambu", "octoprint", "moonraker", "mjpeg"]
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"next_step_id": "bambu"}
    )
    # The step first looks for printers; none answers here: the form.
    assert result["type"] is FlowResultType.SHOW_PROGRESS
    assert result["step_id"] == "bambu_search"
    await hass.async_block_till_done()
    result = await hass.config_entries.flow.async_configure(result["flow_id"])
    assert result["step_id"] == "bambu"
    return result["flow_id"]


async def test_user_flow_pins_the_certificate(
    hass: HomeAssistant, bambu: BambuPrinter
) -> None:
    flow_id = await _bambu_form(hass)
    result = await hass.config_entries.flow.async_configure(
        flow_id, user_input(bambu, serial=SERIAL.lower())
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"] == {
        "kind": "bambu",
        "host": "127.0.0.1",
        "port": bambu.port,
        "serial": SERIAL,
        "access_code": CODE,
        "model": "P1S",
        "cert_sha256": bambu.cert_sha256,
    }
    assert result["result"].unique_id == SERIAL
    await hass.async_block_till_done()
    assert hass.states.get("camera.bambu_lab_p1s") is not None
    entry = result["result"]
    assert await hass.config_entries.async_unload(entry.entry_id)
    await bambu.wait_for(lambda p: p.open_connections == 0)
    assert bambu.max_open_connections == 1


@pytest.mark.parametrize(
    ("changes", "printer_setup", "errors"),
    [
        ({"access_code": "87654321"}, None, {"base": "invalid_auth"}),
        ({"access_code": "1234"}, None, {"access_code": "invalid_access_code"}),
        ({"serial": "01P00A999999999"}, None, {"base": "invalid_serial"}),
        ({}, "refuse", {"base": "camera_port_closed"}),
        ({}, "accept_hang", {"base": "timeout"}),
    ],
)
async def test_user_flow_errors_then_recovers(
    hass: HomeAssistant,
    bambu: BambuPrinter,
    changes: dict[str, Any],
    printer_setup: str | None,
    errors: dict[str, str],
) -> None:
    flow_id = await _bambu_form(hass)
    if printer_setup == "refuse":
        bambu.refuse()
    elif printer_setup:
        bambu.set_mode(printer_setup)
    with patch("custom_components.printcam.config_flow.VALIDATE_TIMEOUT", 0.5):
        result = await hass.config_entries.flow.async_configure(
            flow_id, user_input(bambu, **changes)
        )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == errors
    assert CODE not in str(result)
    if printer_setup == "refuse":
        await bambu.accept()
    # Our side closed the hanging connection; let the fake notice it too
    # before the next one arrives (both ends share this event loop).
    await bambu.wait_for(lambda p: p.open_connections == 0)
    bambu.set_mode("one_client")
    result = await hass.config_entries.flow.async_configure(flow_id, user_input(bambu))
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    assert await hass.config_entries.async_unload(result["result"].entry_id)


async def test_duplicate_serial_aborts(
    hass: HomeAssistant, bambu: BambuPrinter
) -> None:
    bambu_entry(bambu).add_to_hass(hass)
    flow_id = await _bambu_form(hass)
    result = await hass.config_entries.flow.async_configure(flow_id, user_input(bambu))
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert bambu.total_connections == 0


async def test_discovery_flow_asks_only_the_access_code(
    hass: HomeAssistant, bambu: BambuPrinter
) -> None:
    info = {"host": "127.0.0.1", "serial": SERIAL, "model": "P1S", "name": "Workshop"}
    with patch("custom_components.printcam.families.bambu.DEFAULT_PORT", bambu.port):
        result = await hass.config_entries.flow.async_init(
            DOMAIN,
            context={"source": config_entries.SOURCE_INTEGRATION_DISCOVERY},
            data=info,
        )
        assert result["type"] is FlowResultType.FORM
        assert result["step_id"] == "discovery_confirm"
        assert list(result["data_schema"].schema) == ["access_code"]
        # The certificate was read before the form, with nothing sent.
        assert result["description_placeholders"] == {
            "name": "Workshop",
            "host": "127.0.0.1",
            "serial": SERIAL,
            "fingerprint": bambu.cert_sha256,
        }
        assert (bambu.handshakes, bambu.auth_packets) == (1, [])
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {"access_code": "nope"}
        )
        assert result["errors"] == {"access_code": "invalid_access_code"}
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {"access_code": CODE}
        )
        assert result["type"] is FlowResultType.CREATE_ENTRY
        assert result["title"] == "Workshop"
        assert result["data"]["cert_sha256"] == bambu.cert_sha256
        assert "port" not in result["data"]  # printers always use 6000
        await hass.async_block_till_done()
        assert result["result"].state is ConfigEntryState.LOADED
        assert await hass.config_entries.async_unload(result["result"].entry_id)


async def test_discovery_unknown_model_asks_it(
    hass: HomeAssistant, bambu: BambuPrinter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        "custom_components.printcam.families.bambu.DEFAULT_PORT", bambu.port
    )
    result = await hass.config_entries.flow.async_init(
        DOMAIN,
        context={"source": config_entries.SOURCE_INTEGRATION_DISCOVERY},
        data={"host": "127.0.0.1", "serial": SERIAL, "model": None, "name": None},
    )
    assert result["step_id"] == "discovery_confirm"
    assert list(result["data_schema"].schema) == ["access_code", "model"]
    hass.config_entries.flow.async_abort(result["flow_id"])


async def test_discovery_pins_the_certificate_read_before_the_form(
    hass: HomeAssistant, bambu: BambuPrinter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Something else answering at the address by the time the user submits
    gets no access code: the login is pinned to what the flow read first."""
    monkeypatch.setattr(
        "custom_components.printcam.families.bambu.DEFAULT_PORT", bambu.port
    )
    result = await hass.config_entries.flow.async_init(
        DOMAIN,
        context={"source": config_entries.SOURCE_INTEGRATION_DISCOVERY},
        data={"host": "127.0.0.1", "serial": SERIAL, "model": "P1S", "name": None},
    )
    first = bambu.cert_sha256
    assert result["description_placeholders"]["fingerprint"] == first
    bambu.regenerate_certificate()  # another device now, with a look-alike name
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"access_code": CODE}
    )
    assert result["errors"] == {"base": "cert_mismatch"}
    assert bambu.auth_packets == []
    hass.config_entries.flow.async_abort(result["flow_id"])


async def test_discovery_of_an_impostor_aborts_before_the_form(
    hass: HomeAssistant, socket_enabled: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The device that announced the serial presents another printer's certificate."""
    async with started_printers(BambuPrinter, cert_cn="01P00A000000999") as make:
        impostor = await make()
        monkeypatch.setattr(
            "custom_components.printcam.families.bambu.DEFAULT_PORT", impostor.port
        )
        result = await hass.config_entries.flow.async_init(
            DOMAIN,
            context={"source": config_entries.SOURCE_INTEGRATION_DISCOVERY},
            data={"host": "127.0.0.1", "serial": SERIAL, "model": "P1S"},
        )
        assert result["type"] is FlowResultType.ABORT
        assert result["reason"] == "invalid_serial"
        assert (impostor.handshakes, impostor.auth_packets) == (1, [])


async def test_discovery_reads_the_certificate_on_submit_if_it_could_not_before(
    hass: HomeAssistant, bambu: BambuPrinter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A printer whose camera was off when found still gets the form; the
    certificate is read when the user submits, before the access code."""
    monkeypatch.setattr(
        "custom_components.printcam.families.bambu.DEFAULT_PORT", bambu.port
    )
    bambu.refuse()
    result = await hass.config_entries.flow.async_init(
        DOMAIN,
        context={"source": config_entries.SOURCE_INTEGRATION_DISCOVERY},
        data={"host": "127.0.0.1", "serial": SERIAL, "model": "P1S", "name": None},
    )
    assert result["step_id"] == "discovery_confirm"
    assert result["description_placeholders"]["fingerprint"] == "-"
    await bambu.accept()
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"access_code": CODE}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"]["cert_sha256"] == bambu.cert_sha256
    await hass.async_block_till_done()
    # One handshake only read the certificate; every other one logged in.
    assert bambu.auth_missing == 1
    assert bambu.handshakes == 1 + len(bambu.auth_packets) == 1 + bambu.auth_ok
    assert await hass.config_entries.async_unload(result["result"].entry_id)


async def test_discovery_of_rtsps_model_asks_the_access_code(
    hass: HomeAssistant,
) -> None:
    with patch(
        "custom_components.printcam.families.bambu.fetch_certificate",
        side_effect=CameraPortClosed("refused"),
    ) as fetch:
        result = await hass.config_entries.flow.async_init(
            DOMAIN,
            context={"source": config_entries.SOURCE_INTEGRATION_DISCOVERY},
            data={"host": "10.0.0.9", "serial": "00M09A350100001", "model": "X1C"},
        )
    assert fetch.call_args.args[:2] == ("10.0.0.9", 322)  # the RTSPS port
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "discovery_confirm"
    assert list(result["data_schema"].schema) == ["access_code"]


async def test_discovery_flow_never_moves_a_configured_printer(
    hass: HomeAssistant,
) -> None:
    """Only discovery.py moves a printer, after checking the new address's pin."""
    entry = MockConfigEntry(
        domain=DOMAIN,
        unique_id=SERIAL,
        data={"kind": "bambu", "host": "10.0.0.1", "serial": SERIAL},
    )
    entry.add_to_hass(hass)
    result = await hass.config_entries.flow.async_init(
        DOMAIN,
        context={"source": config_entries.SOURCE_INTEGRATION_DISCOVERY},
        data={"host": "10.0.0.2", "serial": SERIAL, "model": "P1S"},
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert entry.data["host"] == "10.0.0.1"


async def test_viewers_and_stills_share_one_tls_connection(
    hass: HomeAssistant, hass_client: ClientSessionGenerator, bambu: BambuPrinter
) -> None:
    entry = await setup_entry(hass, bambu_entry(bambu))
    assert entry.state is ConfigEntryState.LOADED
    await bambu.wait_for(lambda p: p.open_connections == 0)
    before = bambu.total_connections
    client = await hass_client()
    viewers = []
    for _ in range(3):
        response = await client.get("/api/camera_proxy_stream/camera.bambu_lab_p1s")
        assert response.status == 200
        viewers.append(Viewer(response))
    stills = await asyncio.gather(
        *(client.get("/api/camera_proxy/camera.bambu_lab_p1s") for _ in range(10))
    )
    bodies = [await r.read() for r in stills]
    for viewer in viewers:
        await viewer.wait_frames(5)
    assert bambu.total_connections - before == 1
    assert bambu.max_open_connections == 1
    sent = bambu.frames_sent
    assert all(body in sent for body in bodies)
    for viewer in viewers:
        first = sent.index(viewer.frames[0])
        assert viewer.frames[:5] == sent[first : first + 5]
        await viewer.close()
    assert await hass.config_entries.async_unload(entry.entry_id)
    await bambu.wait_for(lambda p: p.open_connections == 0)


async def test_restart_reload_races_never_open_two_sockets(
    hass: HomeAssistant, hass_client: ClientSessionGenerator, bambu: BambuPrinter
) -> None:
    entry = await setup_entry(hass, bambu_entry(bambu))
    client = await hass_client()
    response = await client.get("/api/camera_proxy_stream/camera.bambu_lab_p1s")
    viewer = Viewer(response)
    await viewer.wait_frames(2)
    for _ in range(3):
        await asyncio.gather(
            hass.services.async_call(
                "button",
                "press",
                {"entity_id": "button.bambu_lab_p1s_restart_stream"},
                blocking=True,
            ),
            hass.services.async_call(
                "button",
                "press",
                {"entity_id": "button.bambu_lab_p1s_restart_stream"},
                blocking=True,
            ),
        )
    await until(lambda: entry.runtime_data.stream.running)
    await asyncio.gather(
        hass.config_entries.async_reload(entry.entry_id),
        client.get("/api/camera_proxy/camera.bambu_lab_p1s"),
    )
    await hass.async_block_till_done()
    await viewer.close()
    assert await hass.config_entries.async_unload(entry.entry_id)
    await bambu.wait_for(lambda p: p.open_connections == 0)
    assert bambu.max_open_connections == 1
    assert bambu.concurrent_violations == 0


async def test_wrong_code_at_setup_starts_reauth(
    hass: HomeAssistant, bambu: BambuPrinter
) -> None:
    entry = await setup_entry(hass, bambu_entry(bambu, access_code="87654321"))
    assert entry.state is ConfigEntryState.SETUP_ERROR
    flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert [f["context"]["source"] for f in flows] == [config_entries.SOURCE_REAUTH]
    flow_id = flows[0]["flow_id"]
    result = await hass.config_entries.flow.async_configure(
        flow_id, {"access_code": "11111111"}
    )
    assert result["errors"] == {"base": "invalid_auth"}
    result = await hass.config_entries.flow.async_configure(
        flow_id, {"access_code": "x"}
    )
    assert result["errors"] == {"access_code": "invalid_access_code"}
    result = await hass.config_entries.flow.async_configure(
        flow_id, {"access_code": CODE}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reauth_successful"
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    assert entry.data["access_code"] == CODE
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_reauth_refuses_a_changed_certificate(
    hass: HomeAssistant, bambu: BambuPrinter
) -> None:
    """Reauth never sends the new access code to another certificate."""
    entry = await setup_entry(hass, bambu_entry(bambu, access_code="87654321"))
    (flow,) = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert flow["step_id"] == "reauth_bambu"
    bambu.regenerate_certificate()
    logins = len(bambu.auth_packets)
    result = await hass.config_entries.flow.async_configure(
        flow["flow_id"], {"access_code": CODE}
    )
    assert result["errors"] == {"base": "cert_mismatch"}
    assert result["description_placeholders"] == {"name": "Bambu Lab P1S"}
    assert len(bambu.auth_packets) == logins
    assert entry.data["access_code"] == "87654321"


async def test_certificate_mismatch_raises_repair_and_reconfigure_accepts(
    hass: HomeAssistant, bambu: BambuPrinter
) -> None:
    old = bambu.cert_sha256
    new = bambu.regenerate_certificate()
    assert new != old
    entry = await setup_entry(hass, bambu_entry(bambu, cert_sha256=old))
    assert entry.state is ConfigEntryState.SETUP_ERROR
    # Refused before the access code was sent.
    assert bambu.auth_packets == []
    issue_id = f"cert_mismatch_{entry.entry_id}"
    issue = ir.async_get(hass).async_get_issue(DOMAIN, issue_id)
    assert issue is not None
    assert issue.translation_placeholders == {
        "name": "Bambu Lab P1S",
        "host": f"127.0.0.1:{bambu.port}",
        "expected": old,
        "presented": new,
    }

    result = await entry.start_reconfigure_flow(hass)
    assert result["step_id"] == "reconfigure_bambu"
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"host": "127.0.0.1", "advanced": {"port": bambu.port}}
    )
    assert result["step_id"] == "reconfigure_certificate"
    assert result["description_placeholders"] == {
        "name": "Bambu Lab P1S",
        "old": old,
        "new": new,
        "old_host": f"127.0.0.1:{bambu.port}",
        "new_host": f"127.0.0.1:{bambu.port}",
    }
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    await hass.async_block_till_done()
    assert entry.data["cert_sha256"] == new
    assert entry.state is ConfigEntryState.LOADED
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is None
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_reconfigure_same_certificate_and_errors(
    hass: HomeAssistant, bambu: BambuPrinter
) -> None:
    entry = await setup_entry(hass, bambu_entry(bambu))
    result = await entry.start_reconfigure_flow(hass)
    flow_id = result["flow_id"]
    bambu.refuse()
    result = await hass.config_entries.flow.async_configure(
        flow_id, {"host": "127.0.0.1", "advanced": {"port": bambu.port}}
    )
    assert result["errors"] == {"base": "camera_port_closed"}
    await bambu.accept()
    result = await hass.config_entries.flow.async_configure(
        flow_id, {"host": "127.0.0.1", "advanced": {"port": bambu.port}}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    assert await hass.config_entries.async_unload(entry.entry_id)
    await bambu.wait_for(lambda p: p.open_connections == 0)


async def test_reconfigure_refuses_another_printer(
    hass: HomeAssistant, socket_enabled: None
) -> None:
    other = BambuPrinter(serial="01P00A000000999", access_code=CODE)
    await other.start()
    try:
        entry = bambu_entry(other, cert_sha256="00" * 32)
        entry.add_to_hass(hass)
        result = await entry.start_reconfigure_flow(hass)
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {"host": "127.0.0.1", "advanced": {"port": other.port}}
        )
        assert result["errors"] == {"base": "invalid_serial"}
    finally:
        await other.close()


async def test_certificate_change_while_streaming_raises_repair(
    hass: HomeAssistant, hass_client: ClientSessionGenerator, bambu: BambuPrinter
) -> None:
    entry = await setup_entry(hass, bambu_entry(bambu))
    entry.runtime_data.source.backoff = Backoff(initial=0.05, cap=0.1)
    client = await hass_client()
    viewer = Viewer(await client.get("/api/camera_proxy_stream/camera.bambu_lab_p1s"))
    await viewer.wait_frames(2)
    logins = len(bambu.auth_packets)
    new = bambu.regenerate_certificate()
    bambu.drop_all()
    issue_id = f"cert_mismatch_{entry.entry_id}"
    registry = ir.async_get(hass)
    await until(lambda: registry.async_get_issue(DOMAIN, issue_id) is not None)
    issue = registry.async_get_issue(DOMAIN, issue_id)
    assert issue.translation_placeholders["presented"] == new
    # The foreign certificate was refused before the access code was sent,
    # and not retried: the upstream ended and the viewer's stream with it.
    assert len(bambu.auth_packets) == logins
    await until(lambda: viewer.ended)
    assert entry.runtime_data.stream.state == "unreachable"
    await viewer.close()
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_udp_announcement_starts_the_discovery_flow(
    hass: HomeAssistant, bambu: BambuPrinter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real NOTIFY datagram reaches the listener and opens our flow."""
    monkeypatch.setattr(discovery, "DISCOVERY_BIND", "127.0.0.1")
    monkeypatch.setattr(
        "custom_components.printcam.families.bambu.DEFAULT_PORT", bambu.port
    )
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setattr(discovery, "DISCOVERY_PORT", port)
    assert await async_setup_component(hass, DOMAIN, {})
    datagram = (
        "NOTIFY * HTTP/1.1\r\n"
        "HOST: 239.255.255.250:1990\r\n"
        "Server: UPnP/1.0\r\n"
        "Location: 127.0.0.1\r\n"
        "NT: urn:bambulab-com:device:3dprinter:1\r\n"
        f"USN: {SERIAL}\r\n"
        "DevModel.bambu.com: C12\r\n"
        "DevName.bambu.com: Garage P1S\r\n"
        "DevConnect.bambu.com: lan\r\n"
        "DevBind.bambu.com: free\r\n\r\n"
    ).encode()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        sender.sendto(datagram, ("127.0.0.1", port))
    await until(
        lambda: bool(hass.config_entries.flow.async_progress_by_handler(DOMAIN))
    )
    (flow,) = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert flow["context"]["source"] == config_entries.SOURCE_INTEGRATION_DISCOVERY
    assert flow["context"]["unique_id"] == SERIAL
    assert flow["step_id"] == "discovery_confirm"
    assert flow["context"]["title_placeholders"] == {"name": "Garage P1S"}
    # The flow read the certificate at the datagram's source, sent nothing.
    assert (bambu.handshakes, bambu.auth_packets) == (1, [])
    await discovery.async_stop_discovery(hass)
    hass.config_entries.flow.async_abort(flow["flow_id"])


async def test_unexpected_error_while_checking(
    hass: HomeAssistant, bambu: BambuPrinter
) -> None:
    flow_id = await _bambu_form(hass)
    with patch(
        "custom_components.printcam.families.bambu.BambuChamberSource",
        side_effect=RuntimeError("boom"),
    ):
        result = await hass.config_entries.flow.async_configure(
            flow_id, user_input(bambu)
        )
    assert result["errors"] == {"base": "unknown"}
    result = await hass.config_entries.flow.async_configure(flow_id, user_input(bambu))
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    assert await hass.config_entries.async_unload(result["result"].entry_id)


async def test_discovery_confirm_wrong_code_then_right(
    hass: HomeAssistant, bambu: BambuPrinter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        "custom_components.printcam.families.bambu.DEFAULT_PORT", bambu.port
    )
    result = await hass.config_entries.flow.async_init(
        DOMAIN,
        context={"source": config_entries.SOURCE_INTEGRATION_DISCOVERY},
        data={"host": "127.0.0.1", "serial": SERIAL, "model": None, "name": None},
    )
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"access_code": "87654321", "model": "A1"}
    )
    assert result["errors"] == {"base": "invalid_auth"}
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"access_code": CODE, "model": "A1"}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == f"Bambu Lab {SERIAL}"
    assert result["data"]["model"] == "A1"
    await hass.async_block_till_done()
    assert await hass.config_entries.async_unload(result["result"].entry_id)


async def test_reconfigure_validation_errors(
    hass: HomeAssistant, bambu: BambuPrinter
) -> None:
    entry = await setup_entry(hass, bambu_entry(bambu))
    # Same certificate, but the printer now refuses the stored code.
    result = await entry.start_reconfigure_flow(hass)
    bambu.access_code = "00000000"
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"host": "127.0.0.1", "advanced": {"port": bambu.port}}
    )
    assert result["errors"] == {"base": "invalid_auth"}
    # A new certificate shown, then the login fails when trusting it.
    bambu.regenerate_certificate()
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"host": "127.0.0.1", "advanced": {"port": bambu.port}}
    )
    assert result["step_id"] == "reconfigure_certificate"
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert result["errors"] == {"base": "invalid_auth"}
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_reconfigure_to_the_default_port(
    hass: HomeAssistant, bambu: BambuPrinter
) -> None:
    entry = await setup_entry(hass, bambu_entry(bambu))
    result = await entry.start_reconfigure_flow(hass)
    with patch(
        "custom_components.printcam.families.bambu.fetch_certificate",
        side_effect=CameraPortClosed("refused"),
    ) as fetch:
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {"host": "printer.local", "advanced": {"port": 6000}}
        )
    assert fetch.call_args.args[:2] == ("printer.local", 6000)
    assert result["errors"] == {"base": "camera_port_closed"}
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_diagnostics_redact_the_access_code(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    bambu: BambuPrinter,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    await async_setup_component(hass, "diagnostics", {})
    entry = await setup_entry(hass, bambu_entry(bambu))
    client = await hass_client()
    viewer = Viewer(await client.get("/api/camera_proxy_stream/camera.bambu_lab_p1s"))
    await viewer.wait_frames(2)
    result = await get_diagnostics_for_config_entry(hass, hass_client, entry)
    text = json.dumps(result)
    assert CODE not in text
    assert result["entry"]["data"]["access_code"] == "**REDACTED**"
    assert result["entry"]["data"]["serial"] == SERIAL
    assert "bambu" in text
    await viewer.close()
    assert await hass.config_entries.async_unload(entry.entry_id)
    assert CODE not in caplog.text


@pytest.mark.parametrize(
    ("changes", "mode", "state", "reason"),
    [
        ({"serial": "01P00A999999999"}, None, "SETUP_ERROR", "different serial"),
        ({}, "refuse", "SETUP_RETRY", "camera"),
    ],
    ids=["invalid_serial", "camera_port_closed"],
)
async def test_setup_errors_of_the_probe(
    hass: HomeAssistant,
    bambu: BambuPrinter,
    changes: dict[str, Any],
    mode: str | None,
    state: str,
    reason: str,
) -> None:
    """The probe is the stream's first connection; its errors still map."""
    if mode is not None:
        bambu.set_mode(mode)
    entry = await setup_entry(hass, bambu_entry(bambu, **changes))
    assert entry.state is ConfigEntryState[state]
    assert reason in (entry.reason or "").lower()
    assert bambu.auth_ok + bambu.auth_failures == 0  # no access code was sent


@pytest.mark.parametrize(
    ("changes", "errors"),
    [
        ({"host": "http://127.0.0.1"}, {"host": "invalid_host"}),
        ({"host": "127.0.0.1:6000"}, {"host": "invalid_host"}),
        ({"host": "300.1.1.1"}, {"host": "invalid_host"}),
        ({"host": "my printer"}, {"host": "invalid_host"}),
        ({"serial": "01P00A-392800"}, {"serial": "invalid_serial_number"}),
        ({"serial": "1234567"}, {"serial": "invalid_serial_number"}),
        (
            {"access_code": "1234 678"},
            {"access_code": "invalid_access_code_characters"},
        ),
        (
            {"access_code": "12345ü78"},
            {"access_code": "invalid_access_code_characters"},
        ),
        (
            {"access_code": "1234567\x00"},
            {"access_code": "invalid_access_code_characters"},
        ),
        (
            {"host": "", "serial": "", "access_code": "", "model": "X1C"},
            {
                "host": "invalid_host",
                "serial": "invalid_serial_number",
                "access_code": "invalid_access_code",
            },
        ),
    ],
)
async def test_user_flow_refuses_bad_fields_before_connecting(
    hass: HomeAssistant,
    bambu: BambuPrinter,
    changes: dict[str, Any],
    errors: dict[str, str],
) -> None:
    flow_id = await _bambu_form(hass)
    result = await hass.config_entries.flow.async_configure(
        flow_id, user_input(bambu, **changes)
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == errors
    assert bambu.total_connections == 0
    # Fields are normalised: blanks around, a lower-case serial.
    result = await hass.config_entries.flow.async_configure(
        flow_id, user_input(bambu, host=" 127.0.0.1 ", serial=f" {SERIAL.lower()} ")
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert (result["data"]["host"], result["data"]["serial"]) == ("127.0.0.1", SERIAL)
    await hass.async_block_till_done()
    assert await hass.config_entries.async_unload(result["result"].entry_id)


async def test_reconfigure_and_reauth_refuse_bad_fields_before_connecting(
    hass: HomeAssistant, bambu: BambuPrinter
) -> None:
    entry = bambu_entry(bambu)
    entry.add_to_hass(hass)
    result = await entry.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"host": "https://printer/", "advanced": {"port": 6000}}
    )
    assert result["errors"] == {"host": "invalid_host"}
    hass.config_entries.flow.async_abort(result["flow_id"])
    result = await entry.start_reauth_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"access_code": "abc-defg"}
    )
    assert result["errors"] == {"access_code": "invalid_access_code_characters"}
    hass.config_entries.flow.async_abort(result["flow_id"])
    assert bambu.total_connections == 0


async def test_certificate_without_the_serial_gets_no_access_code(
    hass: HomeAssistant, bambu: BambuPrinter
) -> None:
    """Trust on first use needs the certificate to name the printer's serial."""
    flow_id = await _bambu_form(hass)
    nameless = PrinterCertificate(bambu.cert_sha256, None, bambu.cert_der)
    with patch(
        "custom_components.printcam.families.bambu.fetch_certificate",
        return_value=nameless,
    ) as fetch:
        result = await hass.config_entries.flow.async_configure(
            flow_id, user_input(bambu)
        )
    assert fetch.call_args.args == ("127.0.0.1", bambu.port, 10.0)
    assert result["errors"] == {"base": "invalid_serial"}
    assert bambu.total_connections == 0


async def test_reconfigure_to_another_address_shows_both_addresses(
    hass: HomeAssistant, bambu: BambuPrinter
) -> None:
    """The trust step says where the trusted and the new certificate are."""
    data = {**bambu_entry(bambu).data, "host": "10.0.0.1", "cert_sha256": "ab" * 32}
    del data["port"]  # the printer was at 10.0.0.1:6000
    entry = MockConfigEntry(
        domain=DOMAIN, title="Bambu Lab P1S", unique_id=SERIAL, data=data
    )
    entry.add_to_hass(hass)
    result = await entry.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"host": "127.0.0.1", "advanced": {"port": bambu.port}}
    )
    assert result["step_id"] == "reconfigure_certificate"
    assert result["description_placeholders"] == {
        "name": "Bambu Lab P1S",
        "old": "ab" * 32,
        "new": bambu.cert_sha256,
        "old_host": "10.0.0.1",
        "new_host": f"127.0.0.1:{bambu.port}",
    }
    assert bambu.auth_packets == []
    hass.config_entries.flow.async_abort(result["flow_id"])


# --- X1 / H2 / P2S: RTSPS through the pinned relay and Home Assistant's ffmpeg

rtsps = pytest.mark.skipif(SKIP_REASON is not None, reason=SKIP_REASON or "")
RTSPS_WAIT = 60.0  # ffmpeg probes the H.264 stream first; CI machines are loaded


def rtsps_input(printer: RtspsPrinter, **changes: Any) -> dict[str, Any]:
    return {
        "host": printer.host,
        "serial": SERIAL,
        "access_code": CODE,
        "model": "X1C",
        "advanced": {"port": printer.port},
        **changes,
    }


def rtsps_entry(printer: RtspsPrinter, **options: Any) -> MockConfigEntry:
    return MockConfigEntry(
        domain=DOMAIN,
        title="Bambu Lab X1C",
        unique_id=SERIAL,
        data={
            "kind": "bambu",
            "host": printer.host,
            "port": printer.port,
            "serial": SERIAL,
            "access_code": CODE,
            "model": "X1C",
            "cert_sha256": printer.cert_sha256,
        },
        options=options,
    )


@rtsps
async def test_rtsps_user_flow_pins_the_certificate(
    hass: HomeAssistant, socket_enabled: None
) -> None:
    async with RtspsPrinter(serial=SERIAL, access_code=CODE) as printer:
        flow_id = await _bambu_form(hass)
        async with asyncio.timeout(RTSPS_WAIT):
            result = await hass.config_entries.flow.async_configure(
                flow_id, rtsps_input(printer)
            )
        assert result["type"] is FlowResultType.CREATE_ENTRY
        assert result["data"] == {
            "kind": "bambu",
            "host": printer.host,
            "port": printer.port,
            "serial": SERIAL,
            "access_code": CODE,
            "model": "X1C",
            "cert_sha256": printer.cert_sha256,
        }
        await hass.async_block_till_done()
        entry = result["result"]
        assert entry.state is ConfigEntryState.LOADED
        source = entry.runtime_data.source
        assert await hass.config_entries.async_unload(entry.entry_id)
        await hass.async_block_till_done()
        assert source.last_pid is None or reaped(source.last_pid)
        await printer.wait_for(lambda s: s.get("connections_open", 0) == 0)
        assert printer.status.get("max_open", 0) <= 1


@rtsps
@pytest.mark.parametrize(
    ("mode", "changes", "errors"),
    [
        ("liveview_off", {}, {"base": "liveview_disabled"}),
        ("good", {"access_code": "87654321"}, {"base": "invalid_auth"}),
        ("good", {"serial": "01P00A999999999"}, {"base": "invalid_serial"}),
    ],
)
async def test_rtsps_user_flow_errors(
    hass: HomeAssistant,
    socket_enabled: None,
    mode: str,
    changes: dict[str, Any],
    errors: dict[str, str],
) -> None:
    async with RtspsPrinter(serial=SERIAL, access_code=CODE, mode=mode) as printer:
        flow_id = await _bambu_form(hass)
        async with asyncio.timeout(RTSPS_WAIT):
            result = await hass.config_entries.flow.async_configure(
                flow_id, rtsps_input(printer, **changes)
            )
        assert result["type"] is FlowResultType.FORM
        assert result["errors"] == errors
        if "serial" in changes:  # only the certificate was read: no RTSP session
            assert printer.status.get("connections_total", 0) <= 1
            assert printer.status.get("sessions", 0) == 0


@rtsps
async def test_rtsps_entry_serves_a_still_and_leaves_no_ffmpeg(
    hass: HomeAssistant, hass_client: ClientSessionGenerator, socket_enabled: None
) -> None:
    async with RtspsPrinter(serial=SERIAL, access_code=CODE) as printer:
        entry = rtsps_entry(printer)
        async with asyncio.timeout(RTSPS_WAIT):
            await setup_entry(hass, entry)
        assert entry.state is ConfigEntryState.LOADED
        source = entry.runtime_data.source
        assert isinstance(source, BambuRtspsSource)
        await printer.wait_for(lambda s: s.get("connections_open", 0) == 0)
        before = printer.status.get("connections_total", 0)
        client = await hass_client()
        async with asyncio.timeout(RTSPS_WAIT):
            response = await client.get("/api/camera_proxy/camera.bambu_lab_x1c")
            body = await response.read()
        assert response.status == 200
        assert body.startswith(b"\xff\xd8")
        assert printer.status["connections_total"] - before == 1
        assert printer.status.get("max_open", 0) <= 1
        pid = source.last_pid
        assert await hass.config_entries.async_unload(entry.entry_id)
        await hass.async_block_till_done()
        assert reaped(pid)
        await printer.wait_for(lambda s: s.get("connections_open", 0) == 0)


@rtsps
async def test_liveview_off_at_setup_retries_with_a_repair_issue(
    hass: HomeAssistant, socket_enabled: None
) -> None:
    async with RtspsPrinter(
        serial=SERIAL, access_code=CODE, mode="liveview_off"
    ) as printer:
        entry = rtsps_entry(printer)
        async with asyncio.timeout(RTSPS_WAIT):
            await setup_entry(hass, entry)
        assert entry.state is ConfigEntryState.SETUP_RETRY
        assert "LAN Mode Liveview" in (entry.reason or "")
        issue = ir.async_get(hass).async_get_issue(
            DOMAIN, f"liveview_disabled_{entry.entry_id}"
        )
        assert issue is not None
        assert issue.translation_key == "liveview_disabled"
        assert issue.translation_placeholders == {
            "name": "Bambu Lab X1C",
            "host": f"127.0.0.1:{printer.port}",
        }
        assert CODE not in json.dumps(issue.to_json())
        assert printer.status.get("sessions", 0) == 0
        await hass.config_entries.async_unload(entry.entry_id)


@rtsps
async def test_liveview_turned_off_while_watching_raises_and_clears_the_issue(
    hass: HomeAssistant, hass_client: ClientSessionGenerator, socket_enabled: None
) -> None:
    printer = RtspsPrinter(serial=SERIAL, access_code=CODE)
    await printer.start()
    try:
        entry = rtsps_entry(printer)
        async with asyncio.timeout(RTSPS_WAIT):
            await setup_entry(hass, entry)
        assert entry.state is ConfigEntryState.LOADED
        issue_id = f"liveview_disabled_{entry.entry_id}"
        issues = ir.async_get(hass)
        client = await hass_client()
        response = await client.get("/api/camera_proxy_stream/camera.bambu_lab_x1c")
        viewer = Viewer(response)
        await viewer.wait_frames(2, RTSPS_WAIT)

        # The user turns LAN Mode Liveview off: the port closes at once.
        port, certificate = printer.port, printer.certificate
        await printer.stop()
        printer = RtspsPrinter(
            serial=SERIAL, access_code=CODE, mode="liveview_off", port=port
        )
        await printer.start()
        await until(lambda: issues.async_get_issue(DOMAIN, issue_id), RTSPS_WAIT)
        assert entry.runtime_data.stream.snapshot.state.value in (
            "reconnecting",
            "unreachable",
        )
        seen = len(viewer.frames)

        # ... and on again: frames come back on the same viewer, issue gone.
        await printer.stop()
        printer = RtspsPrinter(
            serial=SERIAL, access_code=CODE, port=port, certificate=certificate
        )
        await printer.start()
        await viewer.wait_frames(seen + 2, RTSPS_WAIT)
        assert not viewer.ended
        await until(lambda: not issues.async_get_issue(DOMAIN, issue_id))
        await viewer.close()
        assert await hass.config_entries.async_unload(entry.entry_id)
        await hass.async_block_till_done()
    finally:
        await printer.stop()


def jpeg_size(jpeg: bytes) -> tuple[int, int]:
    """Return a baseline JPEG's (width, height) from its SOF0 segment."""
    at = jpeg.index(b"\xff\xc0")
    height, width = struct.unpack(">HH", jpeg[at + 5 : at + 9])
    return width, height


async def test_options_form_per_model(hass: HomeAssistant) -> None:
    """X1 / H2 / P2S entries tune ffmpeg; chamber-camera entries the fan-out."""
    forms = {}
    for model in ("X1C", "P1S"):
        entry = MockConfigEntry(
            domain=DOMAIN,
            title=f"Bambu Lab {model}",
            unique_id=model,
            data={
                "kind": "bambu",
                "host": "192.0.2.1",
                "serial": SERIAL,
                "access_code": CODE,
                "model": model,
                "cert_sha256": "ab" * 32,
            },
            options={"keep_warm": True},
        )
        entry.add_to_hass(hass)
        result = await hass.config_entries.options.async_init(entry.entry_id)
        forms[model] = [str(key) for key in result["data_schema"].schema]
        defaults = {
            str(key): key.default()
            for key in result["data_schema"].schema
            if key.default is not vol.UNDEFINED
        }
        if model == "X1C":
            assert defaults["transcode_fps"] == 15
            assert defaults["jpeg_quality"] == 90
            assert defaults["output_size"] == "source"
            result = await hass.config_entries.options.async_configure(
                result["flow_id"],
                {**defaults, "transcode_fps": 5, "output_size": "640x360"},
            )
            assert result["type"] is FlowResultType.CREATE_ENTRY
            assert entry.options["transcode_fps"] == 5
            assert entry.options["output_size"] == "640x360"
            assert entry.options["keep_warm"] is True  # an entity's option kept
        else:
            hass.config_entries.options.async_abort(result["flow_id"])
    common = [
        "idle_grace_s",
        "still_hold_s",
        "stall_s",
        "restream",
        "restream_stream_source",
        "restream_rotate",
    ]
    assert forms["X1C"] == ["transcode_fps", "jpeg_quality", "output_size", *common]
    assert forms["P1S"] == ["max_fps", *common]


def test_transcode_settings_from_options() -> None:
    assert transcode_settings({}) == {"fps": 15.0, "quality": 5, "size": None}
    assert transcode_settings(
        {"transcode_fps": 0, "jpeg_quality": 100, "output_size": "1280x720"}
    ) == {"fps": 0.0, "quality": 2, "size": "1280x720"}
    assert ffmpeg_quality(1) == 31
    assert ffmpeg_quality(0) == 31  # clamped
    assert ffmpeg_quality(250) == 2
    # An unknown size (a hand-edited entry) keeps the printer's.
    assert transcode_settings({"output_size": "9x9"})["size"] is None


@rtsps
async def test_changed_transcode_restarts_ffmpeg_keeping_the_viewer(
    hass: HomeAssistant, hass_client: ClientSessionGenerator, socket_enabled: None
) -> None:
    async with RtspsPrinter(serial=SERIAL, access_code=CODE, size="640x480") as printer:
        entry = rtsps_entry(printer)
        async with asyncio.timeout(RTSPS_WAIT):
            await setup_entry(hass, entry)
        await async_setup_component(hass, "diagnostics", {})
        source = entry.runtime_data.source
        assert isinstance(source, BambuRtspsSource)
        client = await hass_client()
        response = await client.get("/api/camera_proxy_stream/camera.bambu_lab_x1c")
        viewer = Viewer(response)
        await viewer.wait_frames(2, RTSPS_WAIT)
        assert jpeg_size(viewer.frames[-1]) == (640, 480)
        started = source.processes_started

        result = await hass.config_entries.options.async_init(entry.entry_id)
        result = await hass.config_entries.options.async_configure(
            result["flow_id"],
            {
                "transcode_fps": 5,
                "jpeg_quality": 50,
                "output_size": "640x360",
                "idle_grace_s": 5,
                "still_hold_s": 30,
                "stall_s": 10,
            },
        )
        assert result["type"] is FlowResultType.CREATE_ENTRY
        # One new ffmpeg with the new transcode; the viewer's stream goes on.
        await until(lambda: source.processes_started == started + 1, RTSPS_WAIT)
        seen = len(viewer.frames)
        await viewer.wait_frames(seen + 2, RTSPS_WAIT)
        assert jpeg_size(viewer.frames[-1]) == (480, 360)  # fitted, shape kept
        assert not viewer.ended
        cmdline = Path(f"/proc/{source.last_pid}/cmdline").read_bytes().split(b"\0")
        assert cmdline[cmdline.index(b"-r") + 1] == b"5"
        assert cmdline[cmdline.index(b"-q:v") + 1] == b"17"
        assert entry.state is ConfigEntryState.LOADED  # applied live, no reload
        assert printer.status.get("max_open", 0) <= 1

        # Diagnostics show the transcode and ffmpeg's messages, no secret.
        diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, entry)
        assert diagnostics["source"]["ffmpeg"]["processes_started"] == started + 1
        assert CODE not in json.dumps(diagnostics)
        await viewer.close()
        assert await hass.config_entries.async_unload(entry.entry_id)
        await hass.async_block_till_done()
        assert reaped(source.last_pid)


@rtsps
async def test_home_assistant_stop_reaps_ffmpeg_and_closes_the_session(
    hass: HomeAssistant, socket_enabled: None
) -> None:
    async with RtspsPrinter(serial=SERIAL, access_code=CODE) as printer:
        entry = rtsps_entry(printer, keep_warm=True)  # streams with no viewer
        async with asyncio.timeout(RTSPS_WAIT):
            await setup_entry(hass, entry)
        source = entry.runtime_data.source
        assert isinstance(source, BambuRtspsSource)
        await until(lambda: source.connected, RTSPS_WAIT)
        pid = source.last_pid
        hass.bus.async_fire(EVENT_HOMEASSISTANT_STOP)
        await hass.async_block_till_done()
        await until(lambda: reaped(pid))
        await printer.wait_for(lambda s: s.get("connections_open", 0) == 0)
        assert source.processes_started == 1
        assert await hass.config_entries.async_unload(entry.entry_id)
