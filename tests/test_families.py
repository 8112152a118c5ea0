"""Building sources from entry data and checking URLs."""

from __future__ import annotations

from homeassistant.core import HomeAssistant
import pytest

from custom_components.printcam.connection import (
    InvalidConfig,
    create_source,
    still_fetcher,
    valid_http_url,
    validate_data,
)
from custom_components.printcam.sources.mjpeg_http import MjpegHttpSource


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


BAMBU = {
    "kind": "bambu",
    "host": "10.0.0.5",
    "serial": "01P00A000000001",
    "access_code": "12345678",
    "model": "P1S",
    "cert_sha256": "ab" * 32,
}


def test_bambu_data_is_valid_and_builds_a_pinned_source(hass: HomeAssistant) -> None:
    validate_data(BAMBU)
    source = create_source(hass, {**BAMBU, "port": 6001})
    assert source.host == "10.0.0.5:6001"
    assert "12345678" not in repr(source)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"kind": "teapot", "url": "http://h/"}, "unknown printer family"),
        ({"kind": "mjpeg"}, "stream URL"),
        ({"kind": "mjpeg", "url": "http://h/", "still_url": "rtsp://h/"}, "still URL"),
        ({**BAMBU, "access_code": ""}, "access_code is missing"),
        ({**BAMBU, "model": "X1C"}, "no port-6000 chamber camera"),
        ({**BAMBU, "port": 70000}, "not a TCP port"),
        ({**BAMBU, "port": "6000"}, "not a TCP port"),
    ],
)
def test_validate_data_refuses(data: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidConfig, match=message):
        validate_data(data)


async def test_create_source_and_still_fetcher(hass: HomeAssistant) -> None:
    data = {
        "kind": "mjpeg",
        "url": "http://u:p@printer.local/stream",
        "username": "maker",
        "password": "secret",
        "verify_ssl": False,
    }
    source = create_source(hass, data)
    assert isinstance(source, MjpegHttpSource)
    assert source.host == "printer.local"
    assert still_fetcher(source, data) is None
    assert still_fetcher(source, {**data, "still_url": "http://printer.local/s"})
