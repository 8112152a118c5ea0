"""The printer families: entry data, sources, unique ids, the registry."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
import logging
from typing import Any

from homeassistant.config_entries import (
    SOURCE_INTEGRATION_DISCOVERY,
    SOURCE_ZEROCONF,
    ConfigEntryState,
)
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr, entity_registry as er
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.printcam import discovery
from custom_components.printcam.const import DOMAIN
from custom_components.printcam.families import (
    FAMILIES,
    Family,
    InvalidConfig,
    family_for,
)
from custom_components.printcam.families.bambu import BambuFamily, printer_address
from custom_components.printcam.families.mjpeg import (
    MjpegFamily,
    async_migrate_unique_id,
    legacy_unique_id,
    normalize_url,
    valid_http_url,
)
from custom_components.printcam.sources.bambu_chamber import BambuChamberSource
from custom_components.printcam.sources.mjpeg_http import MjpegHttpSource
from printer_sim import MjpegPrinter

from .conftest import make_entry, setup_entry

BAMBU = {
    "kind": "bambu",
    "host": "10.0.0.5",
    "serial": "01P00A000000001",
    "access_code": "12345678",
    "model": "P1S",
    "cert_sha256": "ab" * 32,
}
MJPEG = {
    "kind": "mjpeg",
    "url": "http://u:p@printer.local/stream",
    "username": "maker",
    "password": "secret",
    "verify_ssl": False,
}


def test_registry_in_menu_order() -> None:
    assert list(FAMILIES) == ["bambu", "octoprint", "moonraker", "mjpeg"]
    assert all(kind == family.kind for kind, family in FAMILIES.items())
    assert family_for(BAMBU) is FAMILIES["bambu"]
    assert family_for(MJPEG) is FAMILIES["mjpeg"]


@pytest.mark.parametrize("kind", [None, "teapot", ["mjpeg"]])
def test_unknown_family(kind: object) -> None:
    with pytest.raises(InvalidConfig, match="unknown printer family"):
        family_for({"kind": kind, "url": "http://h/"})


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("http://printer.local/webcam/?action=stream", True),
        ("https://10.0.0.5:8443/stream", True),
        ("  http://h/x  ", True),
        ("ftp://h/x", False),
        ("http://", False),
        ("/webcam/?action=stream", False),
        ("http://[::1", False),
        ("", False),
        (None, False),
        (42, False),
    ],
)
def test_valid_http_url(url: object, ok: bool) -> None:
    assert valid_http_url(url) is ok


def test_normalize_url() -> None:
    assert normalize_url("HTTP://User:pw@Printer.local:80") == "http://printer.local/"
    assert normalize_url(" https://h:443/a?b=1#x ") == "https://h/a?b=1"
    assert normalize_url("http://h:8080/stream") == "http://h:8080/stream"
    assert normalize_url("http://[::1]:8080/s") == "http://[::1]:8080/s"


def test_normalize_url_leaves_credentials_out() -> None:
    foscam = "http://cam/cgi-bin/CGIStream.cgi?cmd=GetMJStream&usr=admin&pwd={}"
    assert normalize_url(foscam.format("s3cret")) == (
        "http://cam/cgi-bin/CGIStream.cgi?cmd=GetMJStream"
    )
    # Two cameras that differ only by a credential are the same camera.
    assert normalize_url(foscam.format("a")) == normalize_url(foscam.format("b"))
    assert normalize_url("http://cam/?user=a&pwd=b") == "http://cam/"
    assert normalize_url("http://cam/s?token=t#x") == "http://cam/s"
    # A raw "@" in the password: the host is still the host.
    assert normalize_url("http://admin:p@ss@Cam:80/s") == "http://cam/s"
    # What the old identity kept.
    assert legacy_unique_id(foscam.format("s3cret")) == foscam.format("s3cret")


@pytest.mark.parametrize(
    "url",
    [
        "http://printer.local/webcam/?action=stream",
        "HTTP://User:pw@Printer.local:80",
        " https://h:443/a?b=1#x ",
        "http://h:8080/stream?a=%41&b=2&&c",
        "http://[::1]:8080/s?action=snapshot",
        "http://10.0.0.5:3031/video",
    ],
)
def test_unique_ids_without_query_credentials_did_not_change(url: str) -> None:
    """Existing entries keep their unique id unless it carried a credential."""
    assert normalize_url(url) == legacy_unique_id(url)


def test_unique_ids() -> None:
    assert MjpegFamily().unique_id(MJPEG) == "http://printer.local/stream"
    assert (
        MjpegFamily().unique_id({**MJPEG, "url": "http://h/?action=stream&pwd=x"})
        == "http://h/?action=stream"
    )
    assert BambuFamily().unique_id({**BAMBU, "serial": "01p00a1"}) == "01P00A1"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"kind": "mjpeg"}, "stream URL"),
        ({"kind": "mjpeg", "url": "http://h/", "still_url": "rtsp://h/"}, "still URL"),
        ({**BAMBU, "access_code": ""}, "access_code is missing"),
        ({**BAMBU, "cert_sha256": None}, "cert_sha256 is missing"),
        ({**BAMBU, "model": "Z9"}, "is not known"),
        ({**BAMBU, "port": 70000}, "not a TCP port"),
        ({**BAMBU, "port": "6000"}, "not a TCP port"),
    ],
)
def test_validate_data_refuses(data: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidConfig, match=message):
        family_for(data).validate_data(data)


@pytest.mark.parametrize(
    "data",
    [
        BAMBU,
        {**BAMBU, "port": 6001},
        MJPEG,
        {**MJPEG, "still_url": "http://printer.local/still"},
    ],
)
def test_validate_data_accepts(data: dict[str, Any]) -> None:
    family_for(data).validate_data(data)


def test_bambu_source_is_pinned_and_has_no_still_fetcher(hass: HomeAssistant) -> None:
    family = BambuFamily()
    source = family.create_source(hass, {**BAMBU, "port": 6001})
    assert isinstance(source, BambuChamberSource)
    assert source.host == "10.0.0.5:6001"
    assert "12345678" not in repr(source)
    assert family.still_fetcher(source, {**BAMBU, "still_url": "http://h/s"}) is None


async def test_mjpeg_source_and_still_fetcher(hass: HomeAssistant) -> None:
    family = MjpegFamily()
    source = family.create_source(hass, MJPEG)
    assert isinstance(source, MjpegHttpSource)
    assert source.host == "printer.local"
    assert family.still_fetcher(source, MJPEG) is None
    assert family.still_fetcher(
        source, {**MJPEG, "still_url": "http://printer.local/s"}
    )
    # A still URL only makes sense on an HTTP source.
    bambu = BambuFamily().create_source(hass, BAMBU)
    assert family.still_fetcher(bambu, {**MJPEG, "still_url": "http://h/s"}) is None


def test_device_info() -> None:
    """Each family describes its device; identifiers and name are the entry's."""
    assert BambuFamily().device_info(BAMBU) == {
        "manufacturer": "Bambu Lab",
        "model": "P1S",
        "serial_number": "01P00A000000001",
    }
    assert MjpegFamily().device_info(MJPEG) == {
        "manufacturer": "PrintCam",
        "model": "MJPEG camera",
        "configuration_url": "http://printer.local",  # no credentials
    }
    # A family without its own description is a generic printer camera.
    assert Family.device_info(MjpegFamily(), MJPEG) == {
        "manufacturer": "PrintCam",
        "model": "Printer camera",
    }


async def test_only_bambu_starts_a_discovery_listener(hass: HomeAssistant) -> None:
    await MjpegFamily().async_setup_discovery(hass)
    assert discovery._DATA_KEY not in hass.data
    # Sockets are blocked here: the bind fails with a warning, not an error.
    await BambuFamily().async_setup_discovery(hass)
    assert discovery._DATA_KEY in hass.data
    await discovery.async_stop_discovery(hass)
    assert discovery._DATA_KEY not in hass.data


def test_only_bambu_claims_its_announcements() -> None:
    info = {"host": "10.0.0.9", "serial": "01p00a1", "model": "X1C", "name": None}
    found = BambuFamily().discovered(SOURCE_INTEGRATION_DISCOVERY, info)
    assert found is not None
    assert (found.unique_id, found.title) == ("01P00A1", "Bambu Lab X1C")
    assert found.data == {"host": "10.0.0.9", "serial": "01P00A1", "model": "X1C"}
    # An announcement never changes a configured printer's entry by itself.
    assert found.updates == {}
    assert found.placeholders["fingerprint"] == "-"
    assert found.abort_reason is None  # RTSPS models are set up like the P1
    assert BambuFamily().discovered(SOURCE_ZEROCONF, info) is None
    assert BambuFamily().discovered(SOURCE_INTEGRATION_DISCOVERY, object()) is None
    assert MjpegFamily().discovered(SOURCE_INTEGRATION_DISCOVERY, info) is None


# --------------------------------------- MJPEG: identities made before 1.2

LEGACY_URL = "http://cam.local/cgi?cmd=GetMJStream&usr=admin&pwd=hunter2-Xq"
LEGACY_ID = LEGACY_URL
NEW_ID = "http://cam.local/cgi?cmd=GetMJStream"


def _printcam_log(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(
        record.getMessage()
        for record in caplog.records
        if record.name.startswith("custom_components.printcam")
    )


def _legacy_entry(hass: HomeAssistant, **kwargs: Any) -> MockConfigEntry:
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="Cam",
        data={"kind": "mjpeg", "url": LEGACY_URL, "verify_ssl": True},
        **{"unique_id": LEGACY_ID, **kwargs},
    )
    entry.add_to_hass(hass)
    return entry


async def test_migrate_unique_id_moves_entry_device_and_entities(
    hass: HomeAssistant, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    entry = _legacy_entry(hass)
    devices, entities = dr.async_get(hass), er.async_get(hass)
    device = devices.async_get_or_create(
        config_entry_id=entry.entry_id,
        identifiers={(DOMAIN, LEGACY_ID), ("other", "keep")},
    )
    sensor = entities.async_get_or_create(
        "sensor",
        DOMAIN,
        f"{LEGACY_ID}_stream_state",
        config_entry=entry,
        suggested_object_id="cam_stream_state",
    )
    odd = entities.async_get_or_create("sensor", DOMAIN, "odd", config_entry=entry)
    caplog.clear()
    assert async_migrate_unique_id(hass, entry)
    assert entry.unique_id == NEW_ID
    moved = entities.async_get(sensor.entity_id)
    assert moved is not None
    assert moved.unique_id == f"{NEW_ID}_stream_state"
    assert moved.entity_id == sensor.entity_id == "sensor.cam_stream_state"
    assert entities.async_get(odd.entity_id).unique_id == "odd"  # type: ignore[union-attr]
    updated = devices.async_get(device.id)
    assert updated is not None
    assert updated.identifiers == {(DOMAIN, NEW_ID), ("other", "keep")}
    # Done once; the new id finds the entry (duplicate detection).
    assert not async_migrate_unique_id(hass, entry)
    assert hass.config_entries.async_entry_for_domain_unique_id(DOMAIN, NEW_ID) is entry
    # PrintCam's own records (Home Assistant's bus logs the old unique id
    # at DEBUG when the registries change).
    assert "credentials removed from its unique id" in _printcam_log(caplog)
    assert "hunter2" not in _printcam_log(caplog)


async def test_migrate_unique_id_without_device_or_entities(
    hass: HomeAssistant,
) -> None:
    entry = _legacy_entry(hass)
    assert async_migrate_unique_id(hass, entry)
    assert entry.unique_id == NEW_ID


async def test_migrate_unique_id_leaves_a_duplicate_alone(
    hass: HomeAssistant, caplog: pytest.LogCaptureFixture
) -> None:
    MockConfigEntry(
        domain=DOMAIN,
        data={"kind": "mjpeg", "url": NEW_ID},
        unique_id=NEW_ID,
    ).add_to_hass(hass)
    entry = _legacy_entry(hass)
    assert not async_migrate_unique_id(hass, entry)
    assert entry.unique_id == LEGACY_ID
    assert "another entry is the same camera" in caplog.text
    assert "hunter2" not in _printcam_log(caplog)


@pytest.mark.parametrize(
    ("data", "unique_id"),
    [
        ({"kind": "mjpeg", "url": LEGACY_URL}, NEW_ID),  # already current
        ({"kind": "mjpeg", "url": LEGACY_URL}, None),
        ({"kind": "mjpeg", "url": LEGACY_URL}, "something-else"),
        ({"kind": "mjpeg", "url": "not a url"}, LEGACY_ID),
        ({"kind": "mjpeg"}, LEGACY_ID),
        (BAMBU, LEGACY_ID),
        (
            {"kind": "mjpeg", "url": "http://h/?action=stream"},
            "http://h/?action=stream",
        ),
    ],
)
async def test_migrate_unique_id_leaves_other_entries_alone(
    hass: HomeAssistant, data: dict[str, Any], unique_id: str | None
) -> None:
    entry = MockConfigEntry(domain=DOMAIN, data=data, unique_id=unique_id)
    entry.add_to_hass(hass)
    assert not async_migrate_unique_id(hass, entry)
    assert entry.unique_id == unique_id


# ----------------------------------------- MJPEG: hostile cameras at setup


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("gzip_bomb", "sends a compressed body (Content-Encoding: gzip)"),
        ("header_flood", "sent a response head over 65536 bytes"),
    ],
)
async def test_a_hostile_camera_does_not_load_as_if_it_were_fine(
    hass: HomeAssistant,
    make_mjpeg_printer: Callable[..., Awaitable[MjpegPrinter]],
    mode: str,
    reason: str,
) -> None:
    """Through Home Assistant's shared session: refused, retried later."""
    printer = await make_mjpeg_printer(mode=mode)
    entry = await setup_entry(hass, make_entry(printer.url))
    assert entry.state is ConfigEntryState.SETUP_RETRY
    assert reason in (entry.reason or "")
    assert {r.headers["Accept-Encoding"] for r in printer.requests} == {"identity"}
    assert printer.requests[0].headers["User-Agent"].startswith("HomeAssistant/")
    await printer.wait_for(lambda p: p.open_connections == 0)


async def test_families_look_at_nothing_discovered_by_default(
    hass: HomeAssistant,
) -> None:
    found = BambuFamily().discovered(
        SOURCE_INTEGRATION_DISCOVERY,
        {"host": "10.0.0.9", "serial": "01P00A1", "model": "P1S"},
    )
    assert found is not None
    assert await Family.async_inspect_discovered(MjpegFamily(), hass, found, 1) is found


def test_bambu_forms_normalise_what_they_accept() -> None:
    draft = BambuFamily().parse_user(
        {
            "host": " Printer.LAN. ",
            "serial": " 01p00a000000001 ",
            "access_code": " aB3dE6g8 ",
            "model": "A1",
            "advanced": {"port": 6000},
        }
    )
    assert draft.data == {
        "kind": "bambu",
        "host": "printer.lan",
        "serial": "01P00A000000001",
        "access_code": "aB3dE6g8",
        "model": "A1",
    }
    changed = BambuFamily().parse_reconfigure(
        BAMBU, {"host": "FE80:0::1", "advanced": {"port": 6001}}
    )
    assert (changed["host"], changed["port"]) == ("fe80::1", 6001)


@pytest.mark.parametrize(
    ("data", "address"),
    [
        ({"host": "10.0.0.5"}, "10.0.0.5"),
        ({"host": "10.0.0.5", "port": 6000}, "10.0.0.5"),
        ({"host": "10.0.0.5", "port": 6001}, "10.0.0.5:6001"),
        ({"host": "fe80::1", "port": 6001}, "[fe80::1]:6001"),
        ({"host": "fe80::1"}, "fe80::1"),
    ],
)
def test_printer_address(data: dict[str, Any], address: str) -> None:
    assert printer_address(data) == address
