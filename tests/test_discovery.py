"""Tests for the Bambu Lab UDP discovery."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
import logging
import socket
from time import monotonic
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
from custom_components.printcam.families.mjpeg import MjpegFamily

from .conftest import until

SERIAL = "01P00A123456789"
OTHER = "0309CA470100123"
SOURCE = "192.168.1.77"
NT = "urn:bambulab-com:device:3dprinter:1"
LOGGER = "custom_components.printcam.discovery"


def notify(
    serial: str = SERIAL,
    *,
    location: str | None = "192.168.1.50",
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
        host="192.168.1.50",
        serial=SERIAL,
        model="P1S",
        model_code="C12",
        name="Workshop P1S",
    )


def test_parse_lf_only() -> None:
    announcement = parse_notify(notify(eol="\n"), SOURCE)
    assert announcement is not None
    assert (announcement.host, announcement.serial) == ("192.168.1.50", SERIAL)
    assert announcement.name == "Workshop P1S"


def test_parse_header_case_mixtures() -> None:
    data = (
        b"notify * http/1.1\r\n"
        b"LOCATION: 10.1.2.3\n"
        b"nT:URN:BambuLab-com:device:3DPrinter:1   \r\n"
        b"usn:   AbC123xyz0\r\n"
        b"DEVMODEL.BAMBU.COM: N1\r\n"
        b"devname.Bambu.Com: Desk\r\n"
        b"\r\n"
    )
    assert parse_notify(data, SOURCE) == BambuAnnouncement(
        host="10.1.2.3",
        serial="ABC123XYZ0",  # upper-cased like the unique ids
        model="A1 mini",
        model_code="N1",
        name="Desk",
    )


@pytest.mark.parametrize("location", [None, "", "   "])
def test_parse_missing_location_uses_source(location: str | None) -> None:
    announcement = parse_notify(notify(location=location), SOURCE)
    assert announcement is not None
    assert announcement.host == SOURCE


@pytest.mark.parametrize(
    ("location", "host"),
    [
        ("printer.local", "printer.local"),
        ("Bambu-X1C.LAN.", "bambu-x1c.lan"),
        ("printer", "printer"),
        ("FE80:0:0::1", "fe80::1"),
        ("127.0.0.1", "127.0.0.1"),
    ],
)
def test_parse_hosts(location: str, host: str) -> None:
    announcement = parse_notify(notify(location=location), SOURCE)
    assert announcement is not None
    assert announcement.host == host


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
            location="10.0.0.9",
            extra=["garbage line without colon", "Location: 10.9.9.9", f"USN: {OTHER}"],
        )
        + f"USN: {OTHER}\r\n".encode()
    )
    announcement = parse_notify(data, SOURCE)
    assert announcement is not None
    assert (announcement.host, announcement.serial) == ("10.0.0.9", SERIAL)


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
        pytest.param(notify(location="not a host!"), id="location-garbage"),
        pytest.param(notify(location="http://1.2.3.4/"), id="location-url"),
        pytest.param(notify(location="300.1.1.1"), id="location-bad-ip"),
        pytest.param(
            notify(location="0.0.0.0"),  # noqa: S104
            id="location-unspecified",
        ),
        pytest.param(notify(location="255.255.255.255"), id="location-broadcast"),
        pytest.param(notify(location="224.0.0.251"), id="location-multicast"),
        pytest.param(notify(location="fe80::1%eth0"), id="location-scoped"),
        pytest.param(notify(location="-printer.lan"), id="location-dash"),
        pytest.param(notify(location="a..b"), id="location-empty-label"),
        pytest.param(notify(location="."), id="location-dot"),
        pytest.param(notify(location="a" * 64 + ".lan"), id="location-long-label"),
        pytest.param(
            notify(location=".".join(["a" * 60] * 5)), id="location-long-name"
        ),
        pytest.param(notify(location="drucker.köln"), id="location-non-ascii"),
    ],
)
def test_parse_malformed(data: bytes) -> None:
    assert parse_notify(data, SOURCE) is None


@pytest.mark.parametrize("source", ["", "not-an-ip!", "0.0.0.0"])  # noqa: S104
def test_parse_invalid_source_without_location(source: str) -> None:
    assert parse_notify(notify(location=None), source) is None


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
        assert discovery._SERIAL_RE.fullmatch(result.serial)
        assert result.host
        assert result.model == MODEL_CODES.get(result.model_code or "")


# --- the listener ----------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _send(port: int, data: bytes) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(data, ("127.0.0.1", port))


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


def _bambu_entry(host: str = "10.0.0.1", **kwargs: Any) -> MockConfigEntry:
    return MockConfigEntry(
        domain=DOMAIN,
        title="P1S",
        unique_id=SERIAL,
        data={
            "kind": "bambu",
            "host": host,
            "serial": SERIAL,
            "access_code": "12345678",
            "model": "P1S",
            "cert_sha256": "00" * 32,
        },
        **kwargs,
    )


@pytest.mark.usefixtures("listener")
async def test_new_printer_starts_one_flow(port: int, flow_init: AsyncMock) -> None:
    _send(port, notify())
    await until(lambda: flow_init.call_count == 1)
    flow_init.assert_called_once_with(
        DOMAIN,
        context={"source": SOURCE_INTEGRATION_DISCOVERY},
        data={
            "host": "192.168.1.50",
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
        _send(port, notify(location="192.168.1.51"))
        await until(lambda: flow_init.call_count == 2)
    assert flow_init.call_args.kwargs["data"]["host"] == "192.168.1.51"


@pytest.mark.usefixtures("listener")
async def test_moved_printer_updates_entry_and_reloads(
    hass: HomeAssistant,
    port: int,
    flow_init: AsyncMock,
    reload: MagicMock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    entry = _bambu_entry()
    entry.add_to_hass(hass)
    _send(port, notify(location="10.0.0.2"))
    await until(lambda: entry.data["host"] == "10.0.0.2")
    reload.assert_called_once_with(entry.entry_id)
    assert entry.data == {**_bambu_entry().data, "host": "10.0.0.2"}
    assert "moved from 10.0.0.1 to 10.0.0.2" in caplog.text
    # More announcements from the new address change nothing.
    for _ in range(3):
        _send(port, notify(location="10.0.0.2"))
    await _sync(port, flow_init)
    reload.assert_called_once()
    assert _serials(flow_init) == ["SENTINEL01"]


@pytest.mark.usefixtures("listener")
async def test_moved_printer_is_rate_limited(
    hass: HomeAssistant, port: int, flow_init: AsyncMock, reload: MagicMock
) -> None:
    """A spoofer and the real printer cannot make the entry reload-loop."""
    entry = _bambu_entry()
    entry.add_to_hass(hass)
    _send(port, notify(location="10.0.0.2"))
    _send(port, notify(location="10.0.0.1"))
    await _sync(port, flow_init)
    assert entry.data["host"] == "10.0.0.2"
    reload.assert_called_once_with(entry.entry_id)


@pytest.mark.parametrize(
    "entry",
    [
        pytest.param(_bambu_entry(), id="same-host"),
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
    entry: MockConfigEntry,
) -> None:
    entry.add_to_hass(hass)
    before = dict(entry.data)
    _send(port, notify(location="10.0.0.1"))
    await _sync(port, flow_init)
    assert _serials(flow_init) == ["SENTINEL01"]
    assert dict(entry.data) == before
    reload.assert_not_called()


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


async def test_no_flow_while_one_is_in_progress(
    hass: HomeAssistant, listener: BambuDiscovery, port: int
) -> None:
    """A flow in progress for the serial blocks new ones (real flows)."""

    async def _step(
        self: PrintCamConfigFlow, discovery_info: dict[str, Any]
    ) -> ConfigFlowResult:
        await self.async_set_unique_id(discovery_info["serial"])
        self._abort_if_unique_id_configured()
        self.context["title_placeholders"] = {"name": discovery_info["name"]}
        return self.async_show_form(step_id="discovery_confirm")

    def _flows() -> list[Any]:
        return hass.config_entries.flow.async_progress_by_handler(DOMAIN)

    flow = hass.config_entries.flow
    with (
        patch.object(
            PrintCamConfigFlow, "async_step_integration_discovery", _step, create=True
        ),
        patch.object(flow, "async_init", wraps=flow.async_init) as spy,
    ):
        _send(port, notify())
        await until(lambda: len(_flows()) == 1)
        assert _flows()[0]["context"]["unique_id"] == SERIAL
        # After the quiet period, the same printer from another address (so
        # not a duplicate of the flow's data) still starts no second flow.
        later = monotonic() + discovery.ACTION_INTERVAL + 1
        with patch.object(discovery, "monotonic", return_value=later):
            _send(port, notify(location="192.168.1.99"))
            _send(port, notify(OTHER))
            await until(lambda: len(_flows()) == 2)
            await hass.async_block_till_done()
        assert sorted(f["context"]["unique_id"] for f in _flows()) == [SERIAL, OTHER]
        # Discovery itself held the second announcement back: no flow init.
        assert [c.kwargs["data"]["serial"] for c in spy.call_args_list] == [
            SERIAL,
            OTHER,
        ]
        for progress in _flows():
            flow.async_abort(progress["flow_id"])


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
        patch.object(BambuFamily, "async_setup_discovery", failing),
        patch.object(MjpegFamily, "async_setup_discovery", starting),
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


async def test_quiet_periods_are_forgotten(
    hass: HomeAssistant, flow_init: AsyncMock
) -> None:
    """Many serials (say, spoofed) do not grow the rate limiter forever."""
    protocol = BambuDiscovery(hass)
    start = monotonic()
    with patch.object(discovery, "monotonic", return_value=start):
        for index in range(300):
            protocol.datagram_received(notify(f"SPOOF{index:05d}"), (SOURCE, 2021))
    assert len(protocol._last_action) == 300
    with patch.object(
        discovery, "monotonic", return_value=start + discovery.ACTION_INTERVAL
    ):
        protocol.datagram_received(notify(), (SOURCE, 2021))
    assert list(protocol._last_action) == [SERIAL]
    await hass.async_block_till_done()
    assert flow_init.call_count == 301
