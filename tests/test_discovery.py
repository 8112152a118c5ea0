"""Tests for the Bambu Lab UDP discovery."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
import gc
import logging
import socket
from time import monotonic, thread_time_ns
from typing import Any
from unittest.mock import AsyncMock, MagicMock, patch

from homeassistant.config_entries import (
    SOURCE_IGNORE,
    SOURCE_INTEGRATION_DISCOVERY,
    ConfigFlowResult,
)
from homeassistant.const import EVENT_HOMEASSISTANT_STOP
from homeassistant.core import CoreState, HomeAssistant
from homeassistant.setup import async_setup_component
from hypothesis import given, settings, strategies as st
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.printcam import discovery
from custom_components.printcam.config_flow import PrintCamConfigFlow
from custom_components.printcam.const import DOMAIN
from custom_components.printcam.discovery import (
    MODEL_CODES,
    BambuAnnouncement,
    BambuDiscovery,
    async_start_discovery,
    async_stop_discovery,
    parse_notify,
)
from custom_components.printcam.families import FAMILIES, Family
from custom_components.printcam.families.bambu import BambuFamily
from custom_components.printcam.sources.bambu_chamber import PrinterCertificate
from printer_sim.bambu_server import BambuPrinter

from .conftest import started_printers, until

SERIAL = "01P00A123456789"
OTHER = "0309CA470100123"
SOURCE = "192.168.1.77"
NT = "urn:bambulab-com:device:3dprinter:1"
LOGGER = "custom_components.printcam.discovery"


def notify(
    serial: str = SERIAL,
    *,
    location: str | None = SOURCE,
    model: str | None = "C12",
    name: str | None = "Workshop P1S",
    nt: str = NT,
    start: str = "NOTIFY * HTTP/1.1",
    eol: str = "\r\n",
    extra: list[str] | None = None,
) -> bytes:
    """Return an announcement as a Bambu Lab printer sends it."""
    lines = [
        start,
        "HOST: 239.255.255.250:1900",
        "Server: UPnP/1.0",
    ]
    if location is not None:
        lines.append(f"Location: {location}")
    lines += [f"NT: {nt}", f"USN: {serial}", "Cache-Control: max-age=1800"]
    if model is not None:
        lines.append(f"DevModel.bambu.com: {model}")
    if name is not None:
        lines.append(f"DevName.bambu.com: {name}")
    lines += [
        "DevConnect.bambu.com: lan",
        "DevBind.bambu.com: free",
        "Devseclink.bambu.com: secure",
        "DevVersion.bambu.com: 01.07.00.00",
        *(extra or []),
    ]
    return (eol.join(lines) + eol + eol).encode()


# --- parse_notify ----------------------------------------------------------------


def test_parse_real_datagram() -> None:
    assert parse_notify(notify(), SOURCE) == BambuAnnouncement(
        host=SOURCE,
        serial=SERIAL,
        model="P1S",
        model_code="C12",
        name="Workshop P1S",
    )


def test_parse_lf_only() -> None:
    announcement = parse_notify(notify(eol="\n"), SOURCE)
    assert announcement is not None
    assert (announcement.host, announcement.serial) == (SOURCE, SERIAL)
    assert announcement.name == "Workshop P1S"


def test_parse_header_case_mixtures() -> None:
    data = (
        b"notify * http/1.1\r\n"
        b"LOCATION: 192.168.1.77\n"
        b"nT:URN:BambuLab-com:device:3DPrinter:1   \r\n"
        b"usn:   AbC123xyz0\r\n"
        b"DEVMODEL.BAMBU.COM: N1\r\n"
        b"devname.Bambu.Com: Desk\r\n"
        b"\r\n"
    )
    assert parse_notify(data, SOURCE) == BambuAnnouncement(
        host=SOURCE,
        serial="ABC123XYZ0",  # upper-cased like the unique ids
        model="A1 mini",
        model_code="N1",
        name="Desk",
    )


@pytest.mark.parametrize(
    "location",
    [
        None,
        "",
        "   ",
        "10.6.6.6",  # another host: a spoofer's
        "printer.local",
        "http://1.2.3.4/",
        "not a host!",
        "0.0.0.0",  # noqa: S104
    ],
)
def test_parse_location_is_ignored(location: str | None) -> None:
    """The printer is where the datagram came from, whatever Location says."""
    announcement = parse_notify(notify(location=location), SOURCE)
    assert announcement is not None
    assert announcement.host == SOURCE


@pytest.mark.parametrize(
    ("source", "host"),
    [
        ("192.168.1.77", "192.168.1.77"),
        ("10.0.0.1", "10.0.0.1"),
        ("172.16.5.4", "172.16.5.4"),
        ("169.254.10.1", "169.254.10.1"),
        ("100.64.0.7", "100.64.0.7"),  # carrier-grade NAT: not global
        ("127.0.0.1", "127.0.0.1"),
        ("FE80:0:0::1", "fe80::1"),
        ("fd00::5", "fd00::5"),
    ],
)
def test_parse_source_addresses(source: str, host: str) -> None:
    announcement = parse_notify(notify(location=None), source)
    assert announcement is not None
    assert announcement.host == host


@pytest.mark.parametrize(
    "source",
    [
        "",
        "not-an-ip!",
        "printer.local",  # a source address is never a name
        "0.0.0.0",  # noqa: S104
        "255.255.255.255",
        "224.0.0.251",
        "fe80::1%eth0",
        "8.8.8.8",  # a LAN broadcast never comes from a global address
        "2001:4860:4860::8888",
    ],
)
def test_parse_refuses_sources(source: str) -> None:
    assert parse_notify(notify(location=source), source) is None


@pytest.mark.parametrize(("code", "model"), list(MODEL_CODES.items()))
def test_parse_every_model_code(code: str, model: str) -> None:
    announcement = parse_notify(notify(model=code), SOURCE)
    assert announcement is not None
    assert (announcement.model, announcement.model_code) == (model, code)


def test_model_codes() -> None:
    assert MODEL_CODES == {
        "BL-P001": "X1C",
        "BL-P002": "X1",
        "C13": "X1E",
        "C11": "P1P",
        "C12": "P1S",
        "N1": "A1 mini",
        "N2S": "A1",
        "N7": "P2S",
        "O1D": "H2D",
        "O1C": "H2C",
        "O1C2": "H2C",
        "O1S": "H2S",
        "N6": "X2D",
    }


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("Z99", ("Z99", None)),  # unknown: the code is kept, no model name
        (None, (None, None)),
        ("", (None, None)),
        ("X" * 33, (None, None)),  # garbled
        ("C1\x0012", (None, None)),
    ],
)
def test_parse_model_codes(
    model: str | None, expected: tuple[str | None, str | None]
) -> None:
    announcement = parse_notify(notify(model=model), SOURCE)
    assert announcement is not None
    assert (announcement.model_code, announcement.model) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (None, None),
        ("", None),
        ("\x1b[31m\x07", "[31m"),
        ("Büro \u2603", "Büro \u2603"),
        ("N" * 100, "N" * 64),
        ("\x00\x01", None),
    ],
)
def test_parse_names(name: str | None, expected: str | None) -> None:
    announcement = parse_notify(notify(name=name), SOURCE)
    assert announcement is not None
    assert announcement.name == expected


def test_parse_is_lenient_with_oddities() -> None:
    """Lines without a colon are skipped; the first header wins; body ignored."""
    data = (
        notify(
            name="First",
            extra=[
                "garbage line without colon",
                "DevName.bambu.com: Second",
                f"USN: {OTHER}",
            ],
        )
        + f"USN: {OTHER}\r\n".encode()
    )
    announcement = parse_notify(data, SOURCE)
    assert announcement is not None
    assert (announcement.name, announcement.serial) == ("First", SERIAL)


def test_parse_without_final_blank_line() -> None:
    announcement = parse_notify(notify().rstrip(b"\r\n"), SOURCE)
    assert announcement is not None
    assert announcement.name == "Workshop P1S"


def test_parse_size_limit() -> None:
    base = notify()
    exact = base + b"x" * (discovery.MAX_DATAGRAM - len(base))  # a body
    assert len(exact) == discovery.MAX_DATAGRAM
    assert parse_notify(exact, SOURCE) is not None
    assert parse_notify(exact + b"x", SOURCE) is None


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\x00\xff\x10garbage\r\n\r\n", id="garbage"),
        pytest.param(b"\r\n\r\n", id="blank"),
        pytest.param(
            (
                "M-SEARCH * HTTP/1.1\r\nHOST: 255.255.255.255:2021\r\n"
                'MAN: "ssdp:discover"\r\nMX: 5\r\n'
                f"ST: {NT}\r\n\r\n"
            ).encode(),
            id="m-search",
        ),
        pytest.param(
            b"HTTP/1.1 200 OK\r\n" + notify().split(b"\r\n", 1)[1], id="response"
        ),
        pytest.param(notify(start="NOTIFY * HTTP/1.1 extra"), id="bad-start-line"),
        pytest.param(notify(start="NOTIFY /x HTTP/1.1"), id="bad-target"),
        pytest.param(notify(nt="upnp:rootdevice"), id="wrong-nt"),
        pytest.param(notify(nt=""), id="empty-nt"),
        pytest.param(notify().replace(b"NT: ", b"XX: "), id="no-nt"),
        pytest.param(notify().replace(b"USN: ", b"XXX: "), id="no-usn"),
        pytest.param(notify(serial=""), id="empty-usn"),
        pytest.param(notify(serial="1234567"), id="serial-too-short"),
        pytest.param(notify(serial="1" * 21), id="serial-too-long"),
        pytest.param(notify(serial="01P00A12-456789"), id="serial-dash"),
        pytest.param(notify(serial="01P00A12 456789"), id="serial-space"),
        pytest.param(notify(serial="01P00A1234567ü9"), id="serial-non-ascii"),
        pytest.param(notify(serial=f"uuid:{SERIAL}::{NT}"), id="serial-ssdp-style-usn"),
        pytest.param(notify() + b"\xff\xfe", id="bad-utf8"),
        pytest.param(notify(name="P1S").replace(b"P1S", b"P1\xc3"), id="bad-utf8-name"),
        pytest.param(notify(extra=["X-Pad: " + "x" * 5000]), id="huge"),
        pytest.param(b"\x00" * 70000, id="huge-garbage"),
    ],
)
def test_parse_malformed(data: bytes) -> None:
    assert parse_notify(data, SOURCE) is None


# --- what the forms accept (the same rules as announcements) ------------------------


@pytest.mark.parametrize(
    ("value", "host"),
    [
        ("printer.local", "printer.local"),
        ("Bambu-X1C.LAN.", "bambu-x1c.lan"),
        ("printer", "printer"),
        (" 192.168.1.50 ", "192.168.1.50"),
        ("FE80:0:0::1", "fe80::1"),
        ("127.0.0.1", "127.0.0.1"),
        ("8.8.8.8", "8.8.8.8"),  # entered by the user: any unicast address
    ],
)
def test_valid_host(value: str, host: str) -> None:
    assert discovery.valid_host(value) == host


@pytest.mark.parametrize(
    "value",
    [
        "",
        "not a host!",
        "http://1.2.3.4/",
        "1.2.3.4:6000",
        "[::1]",
        "300.1.1.1",
        "0.0.0.0",  # noqa: S104
        "255.255.255.255",
        "224.0.0.251",
        "fe80::1%eth0",
        "-printer.lan",
        "a..b",
        ".",
        "a" * 64 + ".lan",
        ".".join(["a" * 60] * 5),
        "drucker.köln",
    ],
)
def test_invalid_host(value: str) -> None:
    assert discovery.valid_host(value) is None


@pytest.mark.parametrize(
    ("value", "serial"),
    [
        ("01p00a123456789", "01P00A123456789"),
        (" 0309CA470100123 ", "0309CA470100123"),
        ("12345678", "12345678"),
        ("A" * 20, "A" * 20),
        ("1234567", None),
        ("1" * 21, None),
        ("01P00A12-456789", None),
        ("01P00A12 456789", None),
        ("01P00A1234567ü9", None),
        ("", None),
    ],
)
def test_valid_serial(value: str, serial: str | None) -> None:
    assert discovery.valid_serial(value) == serial


@pytest.mark.parametrize(
    ("value", "ip"),
    [("10.0.0.1", True), ("fe80::1", True), ("printer.local", False), ("", False)],
)
def test_is_ip_address(value: str, ip: bool) -> None:
    assert discovery.is_ip_address(value) is ip


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=6000), source=st.text(max_size=50))
def test_parse_never_raises_on_bytes(data: bytes, source: str) -> None:
    result = parse_notify(data, source)
    assert result is None or isinstance(result, BambuAnnouncement)


_TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40
)


@settings(max_examples=200, deadline=None)
@given(
    serial=_TEXT,
    location=st.none() | _TEXT,
    model=st.none() | _TEXT,
    name=st.none() | _TEXT,
    eol=st.sampled_from(["\r\n", "\n"]),
    source=_TEXT,
)
def test_parse_never_raises_on_near_announcements(
    serial: str,
    location: str | None,
    model: str | None,
    name: str | None,
    eol: str,
    source: str,
) -> None:
    """Announcements with arbitrary field values parse or give None."""
    result = parse_notify(
        notify(serial, location=location, model=model, name=name, eol=eol), source
    )
    if result is not None:
        assert discovery.SERIAL_PATTERN.fullmatch(result.serial)
        assert result.host == discovery.valid_host(source)
        assert result.model == MODEL_CODES.get(result.model_code or "")


# --- the listener ----------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _send(port: int, data: bytes) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(data, ("127.0.0.1", port))


def _free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _can_bind(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@pytest.fixture
def port(socket_enabled: None) -> Iterator[int]:
    """A free UDP port on 127.0.0.1 that discovery binds to."""
    free = _free_port()
    with (
        patch.object(discovery, "DISCOVERY_BIND", "127.0.0.1"),
        patch.object(discovery, "DISCOVERY_PORT", free),
    ):
        yield free


@pytest.fixture
async def listener(hass: HomeAssistant, port: int) -> AsyncIterator[BambuDiscovery]:
    """A started listener on `port`."""
    await async_start_discovery(hass)
    found = hass.data[discovery._DATA_KEY]
    assert found.transport is not None
    yield found
    await async_stop_discovery(hass)


@pytest.fixture
def flow_init(hass: HomeAssistant) -> Iterator[AsyncMock]:
    """Record the flows discovery starts instead of running them."""
    with patch.object(
        hass.config_entries.flow,
        "async_init",
        AsyncMock(return_value={"type": "form"}),
    ) as mock:
        yield mock


@pytest.fixture
def reload(hass: HomeAssistant) -> Iterator[MagicMock]:
    """Record the reloads discovery schedules."""
    with patch.object(hass.config_entries, "async_schedule_reload") as mock:
        yield mock


def _serials(flow_init: AsyncMock) -> list[str]:
    return [call.kwargs["data"]["serial"] for call in flow_init.call_args_list]


async def _sync(port: int, flow_init: AsyncMock, sentinel: str = "SENTINEL01") -> None:
    """Send a sentinel announcement and wait until it started its flow.

    Datagrams on the loopback arrive in order: once the sentinel has been
    handled, everything sent before it has been handled as well.
    """
    _send(port, notify(sentinel, location="10.99.0.1"))
    await until(lambda: sentinel in _serials(flow_init))


def _bambu_entry(
    host: str = "10.0.0.1",
    *,
    port: int | None = None,
    pin: str = "00" * 32,
    **kwargs: Any,
) -> MockConfigEntry:
    data = {
        "kind": "bambu",
        "host": host,
        "serial": SERIAL,
        "access_code": "12345678",
        "model": "P1S",
        "cert_sha256": pin,
    }
    if port is not None:
        data["port"] = port
    return MockConfigEntry(
        domain=DOMAIN, title="P1S", unique_id=SERIAL, data=data, **kwargs
    )


@pytest.fixture
async def bambu(socket_enabled: None) -> AsyncIterator[BambuPrinter]:
    """A fake printer with serial SERIAL on 127.0.0.1 (a random port)."""
    printer = BambuPrinter(serial=SERIAL, access_code="12345678")
    await printer.start()
    yield printer
    await printer.close()


@pytest.fixture
def fetch() -> Iterator[AsyncMock]:
    """Answer certificate checks with the pinned certificate of `_bambu_entry`."""
    with patch.object(
        discovery,
        "fetch_certificate",
        AsyncMock(return_value=PrinterCertificate("00" * 32, SERIAL, b"")),
    ) as mock:
        yield mock


@pytest.mark.usefixtures("listener")
async def test_new_printer_starts_one_flow(port: int, flow_init: AsyncMock) -> None:
    _send(port, notify(location="192.168.1.50"))
    await until(lambda: flow_init.call_count == 1)
    flow_init.assert_called_once_with(
        DOMAIN,
        context={"source": SOURCE_INTEGRATION_DISCOVERY},
        data={
            "host": "127.0.0.1",  # where it came from, not what Location said
            "serial": SERIAL,
            "model": "P1S",
            "model_code": "C12",
            "name": "Workshop P1S",
        },
    )
    assert flow_init.call_args.kwargs["context"]["source"] == "integration_discovery"


@pytest.mark.usefixtures("listener")
async def test_unknown_model_without_location(port: int, flow_init: AsyncMock) -> None:
    """The source address stands in for Location; unknown fields are None."""
    _send(port, notify(location=None, model="Q9", name=None))
    await until(lambda: flow_init.call_count == 1)
    assert flow_init.call_args.kwargs["data"] == {
        "host": "127.0.0.1",
        "serial": SERIAL,
        "model": None,
        "model_code": "Q9",
        "name": None,
    }


@pytest.mark.usefixtures("listener")
async def test_repeated_announcements_start_one_flow(
    port: int, flow_init: AsyncMock
) -> None:
    for _ in range(5):
        _send(port, notify())
    await _sync(port, flow_init)
    assert _serials(flow_init) == [SERIAL, "SENTINEL01"]


async def test_flow_again_after_quiet_period(
    hass: HomeAssistant, listener: BambuDiscovery, port: int, flow_init: AsyncMock
) -> None:
    _send(port, notify())
    await until(lambda: flow_init.call_count == 1)
    later = monotonic() + discovery.ACTION_INTERVAL + 1
    with patch.object(discovery, "monotonic", return_value=later):
        _send(port, notify())
        await until(lambda: flow_init.call_count == 2)
    assert flow_init.call_args.kwargs["data"]["host"] == "127.0.0.1"


# --- moved printers ------------------------------------------------------------------


@pytest.mark.usefixtures("listener")
async def test_moved_printer_with_the_pinned_certificate_is_moved(
    hass: HomeAssistant,
    port: int,
    flow_init: AsyncMock,
    reload: MagicMock,
    bambu: BambuPrinter,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The new address presents the pin: a TLS handshake, no access code, a move."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    entry = _bambu_entry(port=bambu.port, pin=bambu.cert_sha256)
    entry.add_to_hass(hass)
    _send(port, notify(location="10.6.6.6"))
    await until(lambda: entry.data["host"] == "127.0.0.1")
    reload.assert_called_once_with(entry.entry_id)
    assert entry.data == {
        **_bambu_entry(port=bambu.port, pin=bambu.cert_sha256).data,
        "host": "127.0.0.1",
    }
    assert "moved from 10.0.0.1 to 127.0.0.1 (same certificate)" in caplog.text
    assert bambu.handshakes == 1
    assert bambu.auth_packets == []
    # More announcements from the new address change nothing.
    for _ in range(3):
        _send(port, notify())
    await _sync(port, flow_init)
    reload.assert_called_once()
    assert bambu.handshakes == 1
    assert _serials(flow_init) == ["SENTINEL01"]


async def test_spoofed_announcement_does_not_move_a_printer(
    hass: HomeAssistant,
    listener: BambuDiscovery,
    port: int,
    flow_init: AsyncMock,
    reload: MagicMock,
    bambu: BambuPrinter,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Another certificate at the announced address: the entry stays, logged once."""
    entry = _bambu_entry(port=bambu.port)  # pinned: not the fake's certificate
    entry.add_to_hass(hass)
    before = dict(entry.data)
    _send(port, notify())
    await until(lambda: "announced itself from 127.0.0.1" in caplog.text)
    await until(lambda: not listener._checks)
    assert dict(entry.data) == before
    reload.assert_not_called()
    assert (bambu.handshakes, bambu.auth_packets) == (1, [])
    assert f"another certificate (sha256 {bambu.cert_sha256})" in caplog.text
    assert "keeping its address 10.0.0.1" in caplog.text
    # The same announcement after the quiet period is checked again, not logged.
    later = monotonic() + discovery.ACTION_INTERVAL + 1
    with patch.object(discovery, "monotonic", return_value=later):
        _send(port, notify())
        await until(lambda: bambu.handshakes == 2)
        await until(lambda: not listener._checks)
    assert caplog.text.count("announced itself from") == 1
    assert dict(entry.data) == before
    reload.assert_not_called()
    assert bambu.auth_packets == []


async def test_no_certificate_at_the_new_address(
    hass: HomeAssistant,
    listener: BambuDiscovery,
    port: int,
    reload: MagicMock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    entry = _bambu_entry(port=_free_tcp_port())  # nothing listens there
    entry.add_to_hass(hass)
    _send(port, notify())
    await until(lambda: "no certificate could be read there" in caplog.text)
    await until(lambda: not listener._checks)
    assert entry.data["host"] == "10.0.0.1"
    reload.assert_not_called()


@pytest.mark.usefixtures("listener")
async def test_pinned_certificate_naming_another_serial_is_not_followed(
    hass: HomeAssistant,
    port: int,
    reload: MagicMock,
    socket_enabled: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with started_printers(BambuPrinter, cert_cn=OTHER) as make:
        printer = await make()
        entry = _bambu_entry(port=printer.port, pin=printer.cert_sha256)
        entry.add_to_hass(hass)
        _send(port, notify())
        await until(lambda: f"its certificate names '{OTHER}'" in caplog.text)
        assert printer.auth_packets == []
    assert entry.data["host"] == "10.0.0.1"
    reload.assert_not_called()


async def test_refused_moves_are_logged_once_each_in_bounded_memory(
    hass: HomeAssistant,
    listener: BambuDiscovery,
    reload: MagicMock,
    fetch: AsyncMock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A spoofer naming many addresses: one line each, at most 64 remembered."""
    fetch.return_value = PrinterCertificate("ff" * 32, SERIAL, b"")
    entry = _bambu_entry()
    entry.add_to_hass(hass)
    for index in range(70):
        listener.datagram_received(notify(), (f"10.1.0.{index + 2}", 2021))
        await until(lambda: not listener._checks)
    assert len(listener._logged) == 64
    assert next(iter(listener._logged)) == (SERIAL, "10.1.0.8")
    assert caplog.text.count("announced itself from") == 70
    assert entry.data["host"] == "10.0.0.1"
    reload.assert_not_called()


async def test_moves_are_rate_limited(
    hass: HomeAssistant,
    listener: BambuDiscovery,
    reload: MagicMock,
    fetch: AsyncMock,
) -> None:
    """The printer on two addresses (or a copied certificate) cannot reload-loop it."""
    entry = _bambu_entry()
    entry.add_to_hass(hass)
    listener.datagram_received(notify(), ("10.0.0.2", 2021))
    await until(lambda: entry.data["host"] == "10.0.0.2")
    listener.datagram_received(notify(), ("10.0.0.1", 2021))
    await hass.async_block_till_done()
    assert entry.data["host"] == "10.0.0.2"
    assert fetch.call_count == 1
    reload.assert_called_once_with(entry.entry_id)
    later = monotonic() + discovery.ACTION_INTERVAL + 1
    with patch.object(discovery, "monotonic", return_value=later):
        listener.datagram_received(notify(), ("10.0.0.1", 2021))
        await until(lambda: entry.data["host"] == "10.0.0.1")
    assert reload.call_count == 2
    # Checked at the entry's port, with a bounded handshake, at the source.
    assert fetch.call_args.args == ("10.0.0.1", 6000, discovery.MOVE_CHECK_TIMEOUT)


async def test_one_check_at_a_time_and_stop_cancels_it(
    hass: HomeAssistant, port: int, reload: MagicMock, fetch: AsyncMock
) -> None:
    started = asyncio.Event()

    async def hang(*_args: Any) -> PrinterCertificate:
        started.set()
        await asyncio.Event().wait()
        raise AssertionError("not reached")

    fetch.side_effect = hang
    await async_start_discovery(hass)
    listener = hass.data[discovery._DATA_KEY]
    entry = _bambu_entry()
    entry.add_to_hass(hass)
    listener.datagram_received(notify(), ("10.0.0.2", 2021))
    await started.wait()
    listener.datagram_received(notify(), ("10.0.0.3", 2021))
    await hass.async_block_till_done(wait_background_tasks=False)
    assert fetch.call_count == 1
    (task,) = listener._checks.values()
    await async_stop_discovery(hass)
    assert task.cancelled()
    assert listener._checks == {}
    assert entry.data["host"] == "10.0.0.1"
    reload.assert_not_called()


async def test_entry_changed_during_the_check_is_left_alone(
    hass: HomeAssistant,
    listener: BambuDiscovery,
    reload: MagicMock,
    fetch: AsyncMock,
) -> None:
    entry = _bambu_entry()
    entry.add_to_hass(hass)

    async def reconfigured(*_args: Any) -> PrinterCertificate:
        hass.config_entries.async_update_entry(
            entry, data={**entry.data, "host": "10.0.0.9"}
        )
        return PrinterCertificate("00" * 32, SERIAL, b"")

    fetch.side_effect = reconfigured
    listener.datagram_received(notify(), ("10.0.0.2", 2021))
    await until(lambda: fetch.call_count == 1 and not listener._checks)
    assert entry.data["host"] == "10.0.0.9"
    reload.assert_not_called()


@pytest.mark.parametrize(
    "entry",
    [
        pytest.param(_bambu_entry("127.0.0.1"), id="same-host"),
        pytest.param(_bambu_entry("printer.local"), id="configured-by-name"),
        pytest.param(
            MockConfigEntry(
                domain=DOMAIN, unique_id=SERIAL, source=SOURCE_IGNORE, data={}
            ),
            id="ignored",
        ),
        pytest.param(
            MockConfigEntry(
                domain=DOMAIN,
                unique_id=SERIAL,
                data={"kind": "mjpeg", "url": "http://10.0.0.5/"},
            ),
            id="not-bambu",
        ),
    ],
)
@pytest.mark.usefixtures("listener")
async def test_configured_printer_left_alone(
    hass: HomeAssistant,
    port: int,
    flow_init: AsyncMock,
    reload: MagicMock,
    fetch: AsyncMock,
    entry: MockConfigEntry,
) -> None:
    entry.add_to_hass(hass)
    before = dict(entry.data)
    _send(port, notify())
    await _sync(port, flow_init)
    assert _serials(flow_init) == ["SENTINEL01"]
    assert dict(entry.data) == before
    reload.assert_not_called()
    fetch.assert_not_called()  # nothing to check: no connection


@pytest.mark.usefixtures("listener")
async def test_malformed_datagrams_do_nothing(
    port: int,
    flow_init: AsyncMock,
    reload: MagicMock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    for data in (
        b"\x00\xffgarbage",
        b"M-SEARCH * HTTP/1.1\r\nST: " + NT.encode() + b"\r\n\r\n",
        notify(serial="bad!"),
    ):
        _send(port, data)
    await _sync(port, flow_init)
    assert _serials(flow_init) == ["SENTINEL01"]
    reload.assert_not_called()
    # Logged at debug level, and at most once a minute.
    assert caplog.text.count("not a Bambu Lab announcement") == 1


async def _show_form(
    self: PrintCamConfigFlow, discovery_info: dict[str, Any]
) -> ConfigFlowResult:
    """A discovery step that shows its form at once (no connection)."""
    await self.async_set_unique_id(discovery_info["serial"])
    self._abort_if_unique_id_configured()
    self.context["title_placeholders"] = {"name": discovery_info["name"]}
    return self.async_show_form(step_id="discovery_confirm")


@pytest.fixture
def flow_spy(hass: HomeAssistant) -> Iterator[MagicMock]:
    """Run real discovery flows that wait in their form; spy on their start."""
    flow = hass.config_entries.flow
    with (
        patch.object(
            PrintCamConfigFlow,
            "async_step_integration_discovery",
            _show_form,
            create=True,
        ),
        patch.object(flow, "async_init", wraps=flow.async_init) as spy,
    ):
        yield spy
    for progress in flow.async_progress_by_handler(DOMAIN):
        flow.async_abort(progress["flow_id"])


def _flows(hass: HomeAssistant) -> list[Any]:
    return hass.config_entries.flow.async_progress_by_handler(DOMAIN)


async def test_no_flow_while_one_is_in_progress(
    hass: HomeAssistant, listener: BambuDiscovery, port: int, flow_spy: MagicMock
) -> None:
    """A flow in progress for the serial blocks new ones (real flows)."""
    _send(port, notify())
    await until(lambda: len(_flows(hass)) == 1)
    assert _flows(hass)[0]["context"]["unique_id"] == SERIAL
    # The same printer from another address (so not a duplicate of the
    # flow's data, and not in the quiet period) starts no second flow, nor
    # does it after the quiet period.
    listener.datagram_received(notify(), ("192.168.1.99", 2021))
    later = monotonic() + discovery.ACTION_INTERVAL + 1
    with patch.object(discovery, "monotonic", return_value=later):
        _send(port, notify())
        _send(port, notify(OTHER))
        await until(lambda: len(_flows(hass)) == 2)
        await hass.async_block_till_done()
    assert sorted(f["context"]["unique_id"] for f in _flows(hass)) == [SERIAL, OTHER]
    # Discovery itself held the other announcements back: no flow init.
    assert [c.kwargs["data"]["serial"] for c in flow_spy.call_args_list] == [
        SERIAL,
        OTHER,
    ]


async def test_pending_flows_are_capped(
    hass: HomeAssistant,
    listener: BambuDiscovery,
    flow_spy: MagicMock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Flows nobody answers do not pile up: memory stays bounded."""
    with patch.object(discovery, "MAX_PENDING_FLOWS", 2):
        for index in range(4):
            listener.datagram_received(notify(f"PENDING{index:03d}"), (SOURCE, 2021))
            await hass.async_block_till_done(wait_background_tasks=True)
    assert len(_flows(hass)) == 2
    assert flow_spy.call_count == 2
    assert caplog.text.count("2 discovery flows are waiting") == 1
    # Once one is answered (here: aborted), the next printer gets its flow.
    hass.config_entries.flow.async_abort(_flows(hass)[0]["flow_id"])
    with patch.object(discovery, "MAX_PENDING_FLOWS", 2):
        listener.datagram_received(notify("PENDING003"), (SOURCE, 2021))
        await hass.async_block_till_done(wait_background_tasks=True)
    assert len(_flows(hass)) == 2
    assert flow_spy.call_args.kwargs["data"]["serial"] == "PENDING003"


async def test_setup_starts_one_listener_closed_on_stop(
    hass: HomeAssistant, port: int, flow_init: AsyncMock
) -> None:
    assert await async_setup_component(hass, DOMAIN, {})
    first = hass.data[discovery._DATA_KEY]
    assert first.transport is not None
    assert not _can_bind(port)

    await async_start_discovery(hass)  # a no-op
    assert hass.data[discovery._DATA_KEY] is first
    _send(port, notify())
    await _sync(port, flow_init)
    assert _serials(flow_init) == [SERIAL, "SENTINEL01"]  # handled once

    hass.bus.async_fire(EVENT_HOMEASSISTANT_STOP)
    await hass.async_block_till_done()
    assert discovery._DATA_KEY not in hass.data
    assert first.transport is None
    assert _can_bind(port)
    await async_stop_discovery(hass)  # nothing left to stop


async def test_stop_releases_port(hass: HomeAssistant, port: int) -> None:
    await async_start_discovery(hass)
    assert not _can_bind(port)
    await async_stop_discovery(hass)
    assert discovery._DATA_KEY not in hass.data
    assert _can_bind(port)
    # The stop listener was removed: stopping Home Assistant is harmless.
    hass.bus.async_fire(EVENT_HOMEASSISTANT_STOP)
    await hass.async_block_till_done()


async def test_stop_while_binding(hass: HomeAssistant, port: int) -> None:
    task = asyncio.create_task(async_start_discovery(hass))
    await asyncio.sleep(0)  # the start is now waiting for its transport
    listener = hass.data[discovery._DATA_KEY]
    await async_stop_discovery(hass)
    await task
    assert listener.transport is None
    assert _can_bind(port)


async def test_bind_failure_warns_once(
    hass: HomeAssistant, port: int, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", port))  # without SO_REUSEPORT
        assert await async_setup_component(hass, DOMAIN, {})
        await async_start_discovery(hass)
    warnings = [
        r for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING
    ]
    assert len(warnings) == 1
    assert (
        warnings[0]
        .getMessage()
        .startswith(f"Cannot listen for Bambu Lab printers on UDP 127.0.0.1:{port}")
    )
    assert hass.data[discovery._DATA_KEY].transport is None
    await async_stop_discovery(hass)


async def test_sockets_blocked_do_not_fail_setup(
    hass: HomeAssistant, caplog: pytest.LogCaptureFixture
) -> None:
    """Without sockets (as in most tests) setup still succeeds."""
    assert await async_setup_component(hass, DOMAIN, {})
    assert "Cannot listen for Bambu Lab printers" in caplog.text


async def test_setup_asks_every_family_and_survives_a_failing_one(
    hass: HomeAssistant, caplog: pytest.LogCaptureFixture
) -> None:
    """Each family starts its own discovery; one that raises is only logged."""
    started: list[str] = []

    async def failing(self: Family, hass: HomeAssistant) -> None:
        started.append(self.kind)
        raise RuntimeError("no network")

    async def starting(self: Family, hass: HomeAssistant) -> None:
        started.append(self.kind)

    with (
        patch.object(Family, "async_setup_discovery", starting),
        patch.object(BambuFamily, "async_setup_discovery", failing),
    ):
        assert await async_setup_component(hass, DOMAIN, {})
    assert started == list(FAMILIES)
    assert "Cannot start discovery of bambu printers" in caplog.text
    assert discovery._DATA_KEY not in hass.data


async def test_ignored_while_stopping(
    hass: HomeAssistant, flow_init: AsyncMock
) -> None:
    protocol = BambuDiscovery(hass)
    hass.set_state(CoreState.stopping)
    try:
        protocol.datagram_received(notify(), (SOURCE, 2021))
    finally:
        hass.set_state(CoreState.running)
    await hass.async_block_till_done()
    flow_init.assert_not_called()


async def test_socket_errors_are_logged(
    hass: HomeAssistant, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    BambuDiscovery(hass).error_received(ConnectionRefusedError("refused"))
    assert "socket error: refused" in caplog.text


async def test_new_flows_are_capped(
    hass: HomeAssistant,
    listener: BambuDiscovery,
    flow_init: AsyncMock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """At most FLOW_LIMIT flows a minute; announcements over it are not remembered."""
    limit = discovery.FLOW_LIMIT
    start = monotonic()
    with patch.object(discovery, "monotonic", return_value=start):
        for index in range(limit + 5):
            listener.datagram_received(notify(f"SPOOF{index:05d}"), (SOURCE, 2021))
        await hass.async_block_till_done()
    assert flow_init.call_count == limit
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert f"{limit} were started in the last minute" in warnings[0].getMessage()
    # A window later, a printer held back by the cap gets its flow at once.
    with patch.object(
        discovery, "monotonic", return_value=start + discovery.FLOW_WINDOW
    ):
        listener.datagram_received(notify(f"SPOOF{limit:05d}"), (SOURCE, 2021))
        await hass.async_block_till_done()
    assert _serials(flow_init)[limit:] == [f"SPOOF{limit:05d}"]


async def test_recent_serials_are_a_bounded_lru(
    hass: HomeAssistant, listener: BambuDiscovery, flow_init: AsyncMock
) -> None:
    """Many serials (say, spoofed) keep at most RECENT_SIZE quiet periods."""
    size = discovery.RECENT_SIZE
    start = monotonic()
    with (
        patch.object(discovery, "FLOW_LIMIT", 10 * size),
        patch.object(discovery, "monotonic", return_value=start),
    ):
        for index in range(size + 10):
            listener.datagram_received(notify(f"SPOOF{index:05d}"), (SOURCE, 2021))
        assert len(listener._recent) == size
        assert next(iter(listener._recent)) == ("SPOOF00010", SOURCE)
        # The oldest were forgotten: acted on again; the recent ones are quiet.
        listener.datagram_received(notify("SPOOF00000"), (SOURCE, 2021))
        listener.datagram_received(notify(f"SPOOF{size + 9:05d}"), (SOURCE, 2021))
        await hass.async_block_till_done()
    assert flow_init.call_count == size + 11
    assert _serials(flow_init)[-1] == "SPOOF00000"
    assert len(listener._recent) == size


async def test_flood_of_distinct_serials_costs_little_per_datagram(
    hass: HomeAssistant, listener: BambuDiscovery, port: int, flow_init: AsyncMock
) -> None:
    """10,000 forged announcements over UDP: each handled in under 1 ms, 10 flows.

    Each datagram's cost is the CPU time of the listener's own handler (so a
    loaded machine preempting the test does not count), with the garbage
    collector paused (a collection that happens to start inside the handler
    is not the handler's cost). Datagrams are sent in small batches and each
    batch is waited for, so the socket's buffer never drops one.
    """
    count, batch = 10_000, 32
    costs: list[int] = []
    handle = listener.datagram_received

    def timed(data: bytes, addr: tuple[str, int]) -> None:
        began = thread_time_ns()
        handle(data, addr)
        costs.append(thread_time_ns() - began)

    listener.datagram_received = timed  # type: ignore[method-assign]
    gc.collect()
    gc.disable()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            for first in range(0, count, batch):
                last = min(count, first + batch)
                for index in range(first, last):
                    sender.sendto(notify(f"FLOOD{index:010d}"), ("127.0.0.1", port))
                await until(lambda last=last: len(costs) >= last, timeout=30)
    finally:
        gc.enable()
    await hass.async_block_till_done()
    assert len(costs) == count
    worst = max(costs) / 1e6
    assert worst < 1.0, f"one datagram took {worst:.3f} ms of CPU"
    assert flow_init.call_count == discovery.FLOW_LIMIT
    assert len(listener._recent) <= discovery.FLOW_LIMIT
    assert len(listener._flow_starts) == discovery.FLOW_LIMIT


@pytest.mark.usefixtures("listener")
async def test_moved_rtsps_printer_is_checked_on_its_models_port(
    hass: HomeAssistant,
    port: int,
    flow_init: AsyncMock,
    reload: MagicMock,
    bambu: BambuPrinter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An X1C stored without a port is checked on 322 (here the fake's port)."""
    monkeypatch.setattr(discovery, "RTSPS_PORT", bambu.port)
    p1s = _bambu_entry(pin=bambu.cert_sha256)
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="X1C",
        unique_id=SERIAL,
        data={**p1s.data, "model": "X1C"},
    )
    entry.add_to_hass(hass)
    _send(port, notify(location="10.6.6.6"))
    await until(lambda: entry.data["host"] == "127.0.0.1")
    reload.assert_called_once_with(entry.entry_id)
    assert "port" not in entry.data
    assert bambu.handshakes == 1
    assert bambu.auth_packets == []
