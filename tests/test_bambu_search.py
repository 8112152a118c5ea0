"""The Bambu Lab step looks for printers before the first one is added.

A simulated printer (`printer_sim.bambu_announce`) announces itself with
NOTIFY datagrams and answers M-SEARCHes, as real ones do; Home Assistant's
listener is bound to 127.0.0.1 on a free port. Nothing is configured
before the flow: the listener is started by the flow itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
import socket
from typing import Any
from unittest.mock import patch

from homeassistant import config_entries
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.printcam import discovery
from custom_components.printcam.const import DOMAIN
from printer_sim.bambu_announce import BambuAnnouncer, announcement
from printer_sim.bambu_server import BambuPrinter

SERIAL = "01P00A123456789"
OTHER = "01S00C987654321"
CODE = "12345678"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def port(socket_enabled: None) -> Iterator[int]:
    """The listener's port on 127.0.0.1; a full 5 s search (real timings)."""
    free = _free_port()
    with (
        patch.object(discovery, "DISCOVERY_BIND", "127.0.0.1"),
        patch.object(discovery, "DISCOVERY_PORT", free),
        patch.object(discovery, "SEARCH_S", 5.0),
        patch.object(discovery, "SEARCH_MIN_S", 2.0),
    ):
        yield free


@pytest.fixture
async def bambu(socket_enabled: None) -> AsyncIterator[BambuPrinter]:
    """The printer's camera (its certificate names SERIAL)."""
    printer = BambuPrinter(serial=SERIAL, access_code=CODE)
    await printer.start()
    with patch("custom_components.printcam.families.bambu.DEFAULT_PORT", printer.port):
        yield printer
    await printer.close()


@pytest.fixture
async def announcer(port: int) -> AsyncIterator[BambuAnnouncer]:
    """The printer announcing itself to the listener every 0.5 s."""
    sim = BambuAnnouncer(
        serial=SERIAL, name="Workshop P1S", target=("127.0.0.1", port), interval=0.5
    )
    await sim.start()
    yield sim
    await sim.close()


async def _start(hass: HomeAssistant) -> dict[str, Any]:
    """Open the Bambu Lab step; wait for its search to end."""
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": config_entries.SOURCE_USER}
    )
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"next_step_id": "bambu"}
    )
    assert result["type"] is FlowResultType.SHOW_PROGRESS
    assert result["step_id"] == "bambu_search"
    assert result["progress_action"] == "bambu_search"
    await hass.async_block_till_done()
    return await hass.config_entries.flow.async_configure(result["flow_id"])


def _options(result: dict[str, Any]) -> list[dict[str, str]]:
    selector = result["data_schema"].schema["printer"]
    return [dict(option) for option in selector.config["options"]]


async def _stop(hass: HomeAssistant) -> None:
    await discovery.async_stop_discovery(hass)


@pytest.mark.usefixtures("bambu")
async def test_an_announcing_printer_is_offered_and_added(
    hass: HomeAssistant, announcer: BambuAnnouncer, bambu: BambuPrinter
) -> None:
    """NOTIFY heard: listed; picked: certificate read, then the access code."""
    result = await _start(hass)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "bambu_pick"
    assert _options(result) == [
        {"value": SERIAL, "label": f"Workshop P1S · {SERIAL} · 127.0.0.1"},
        {"value": "manual", "label": "manual"},
    ]
    # Listing sends nothing (the listener's own discovery flow may have
    # read the certificate already, as discovery does).
    assert bambu.auth_packets == []
    handshakes = bambu.handshakes
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"printer": SERIAL}
    )
    assert result["step_id"] == "discovery_confirm"
    assert list(result["data_schema"].schema) == ["access_code"]
    # The certificate was read at the datagram's source, nothing sent.
    assert result["description_placeholders"]["fingerprint"] == bambu.cert_sha256
    assert (bambu.handshakes, bambu.auth_packets) == (handshakes + 1, [])
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"access_code": CODE}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "Workshop P1S"
    assert result["data"]["host"] == "127.0.0.1"
    assert result["data"]["cert_sha256"] == bambu.cert_sha256
    await hass.async_block_till_done()
    entry = result["result"]
    assert entry.state is ConfigEntryState.LOADED
    # The listener's own discovery flow for it went with the new entry.
    assert not hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert await hass.config_entries.async_unload(entry.entry_id)
    await _stop(hass)


async def test_a_printer_answering_the_search_is_offered(
    hass: HomeAssistant, port: int
) -> None:
    """No NOTIFY within the search: the M-SEARCH answer lists it."""
    sim = BambuAnnouncer(
        serial=OTHER,
        model="X1C",
        name="Studio X1C",
        target=("127.0.0.1", _free_port()),  # its NOTIFY goes nowhere
        interval=3600,
    )
    await sim.start()
    try:
        with patch.object(discovery, "SEARCH_TARGETS", [("127.0.0.1", sim.port)]):
            result = await _start(hass)
        assert result["step_id"] == "bambu_pick"
        assert [o["value"] for o in _options(result)] == [OTHER, "manual"]
        assert sim.searches_answered >= 1
        # The M-SEARCH asked for Bambu Lab printers on the listener's port.
        hass.config_entries.flow.async_abort(result["flow_id"])
    finally:
        await sim.close()
        await _stop(hass)


@pytest.mark.usefixtures("announcer")
async def test_manual_entry_from_the_list(hass: HomeAssistant) -> None:
    """The list's last choice is the form by hand."""
    result = await _start(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"printer": "manual"}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "bambu"
    assert "host" in result["data_schema"].schema
    hass.config_entries.flow.async_abort(result["flow_id"])
    await _stop(hass)


async def test_nothing_found_goes_to_the_form(hass: HomeAssistant, port: int) -> None:
    """No printer answers: the form by hand after the whole search."""
    result = await _start(hass)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "bambu"
    hass.config_entries.flow.async_abort(result["flow_id"])
    await _stop(hass)


@pytest.mark.usefixtures("announcer")
async def test_a_configured_printer_is_not_offered(hass: HomeAssistant) -> None:
    """Its serial has an entry: not listed (here: the form by hand)."""
    MockConfigEntry(
        domain=DOMAIN,
        unique_id=SERIAL,
        data={"kind": "bambu", "host": "127.0.0.1", "serial": SERIAL},
    ).add_to_hass(hass)
    result = await _start(hass)
    assert result["step_id"] == "bambu"
    hass.config_entries.flow.async_abort(result["flow_id"])
    await _stop(hass)


async def test_a_forged_announcement_gets_no_access_code(
    hass: HomeAssistant, port: int
) -> None:
    """Someone announces SERIAL from an address whose certificate names
    another printer: picking it aborts before anything is asked."""
    impostor = BambuPrinter(serial=OTHER, access_code=CODE, cert_cn=OTHER)
    await impostor.start()
    sim = BambuAnnouncer(serial=SERIAL, target=("127.0.0.1", port), interval=0.5)
    await sim.start()
    try:
        with patch(
            "custom_components.printcam.families.bambu.DEFAULT_PORT", impostor.port
        ):
            result = await _start(hass)
            result = await hass.config_entries.flow.async_configure(
                result["flow_id"], {"printer": SERIAL}
            )
        assert result["type"] is FlowResultType.ABORT
        assert result["reason"] == "invalid_serial"
        assert impostor.auth_packets == []
    finally:
        await sim.close()
        await impostor.close()
        await _stop(hass)


async def test_an_unbindable_port_goes_to_the_form(
    hass: HomeAssistant, port: int
) -> None:
    """The port is taken (no SO_REUSEPORT there): the form, no error."""
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as squatter,
        patch.object(discovery, "_REUSE_PORT", False),
    ):
        squatter.bind(("127.0.0.1", port))
        result = await _start(hass)
        assert result["step_id"] == "bambu"
        hass.config_entries.flow.async_abort(result["flow_id"])
    await _stop(hass)


def test_search_targets_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """PRINTCAM_BAMBU_SEARCH: addresses with or without a port; junk skipped."""
    monkeypatch.setattr(discovery, "DISCOVERY_PORT", 2021)
    monkeypatch.setattr(discovery, "SEARCH_TARGETS", [("255.255.255.255", None)])
    assert discovery.search_targets() == [("255.255.255.255", 2021)]
    monkeypatch.setenv(
        "PRINTCAM_BAMBU_SEARCH", "192.168.2.255, 10.0.0.5:3021, not a host, ::"
    )
    assert discovery.search_targets() == [
        ("192.168.2.255", 2021),
        ("10.0.0.5", 3021),
    ]


def test_an_m_search_answer_parses_like_a_notify() -> None:
    """``HTTP/1.1 200 OK`` with ST: the same printer as its NOTIFY."""
    args = {"serial": SERIAL, "model": "P1S", "name": "Workshop P1S", "host": "x"}
    notify = discovery.parse_notify(announcement(**args), "192.168.1.20")
    answer = discovery.parse_notify(announcement(**args, answer=True), "192.168.1.20")
    assert notify is not None
    assert answer == notify
    # An M-SEARCH itself (ours, looped back) is not an announcement.
    search = discovery.M_SEARCH.format(port=2021).encode()
    assert discovery.parse_notify(search, "192.168.1.20") is None


async def test_a_failing_search_goes_to_the_form(
    hass: HomeAssistant, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug in the search is logged; the user still gets the form."""
    with patch(
        "custom_components.printcam.families.bambu.async_search",
        side_effect=RuntimeError("search bug"),
    ):
        result = await _start(hass)
    assert result["step_id"] == "bambu"
    assert "Looking for bambu printers failed" in caplog.text
    hass.config_entries.flow.async_abort(result["flow_id"])


async def test_an_unsendable_search_still_listens(
    hass: HomeAssistant, announcer: BambuAnnouncer
) -> None:
    """An M-SEARCH the network refuses: the NOTIFYs still list the printer."""
    with patch.object(
        discovery, "SEARCH_TARGETS", [("127.0.0.1", 0), ("127.0.0.1", None)]
    ):
        result = await _start(hass)
    assert result["step_id"] == "bambu_pick"
    hass.config_entries.flow.async_abort(result["flow_id"])
    await _stop(hass)
