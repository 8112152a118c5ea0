"""Build a printer's camera source from config entry data.

Home Assistant glue between the entry's data and the protocol modules in
`sources/`: it injects Home Assistant's shared aiohttp session.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.helpers.aiohttp_client import async_get_clientsession
import yarl

from .const import (
    BAMBU_CHAMBER_MODELS,
    CONF_ACCESS_CODE,
    CONF_CERT_SHA256,
    CONF_HOST,
    CONF_KIND,
    CONF_MODEL,
    CONF_PASSWORD,
    CONF_PORT,
    CONF_SERIAL,
    CONF_STILL_URL,
    CONF_URL,
    CONF_USERNAME,
    CONF_VERIFY_SSL,
    DEFAULT_VERIFY_SSL,
    KIND_BAMBU,
    KIND_MJPEG,
    STILL_TIMEOUT,
)
from .sources import FrameSource
from .sources.bambu_chamber import DEFAULT_PORT as BAMBU_PORT, BambuChamberSource
from .sources.mjpeg_http import MjpegHttpSource

KINDS = (KIND_MJPEG, KIND_BAMBU)


class InvalidConfig(ValueError):
    """The entry's data cannot describe a printer camera."""


def valid_http_url(url: object) -> bool:
    """Return True for an absolute http(s) URL with a host."""
    if not isinstance(url, str) or not url.strip():
        return False
    try:
        parsed = yarl.URL(url.strip())
    except (ValueError, TypeError):
        return False
    return parsed.scheme in ("http", "https") and bool(parsed.host)


def validate_data(data: Mapping[str, Any]) -> None:
    """Raise InvalidConfig when the entry's data is unusable."""
    kind = data.get(CONF_KIND)
    if kind not in KINDS:
        raise InvalidConfig(f"unknown printer family {kind!r}")
    if kind == KIND_BAMBU:
        _validate_bambu(data)
        return
    if not valid_http_url(data.get(CONF_URL)):
        raise InvalidConfig("the stream URL is not an http(s) URL with a host")
    still = data.get(CONF_STILL_URL)
    if still and not valid_http_url(still):
        raise InvalidConfig("the still URL is not an http(s) URL with a host")


def _validate_bambu(data: Mapping[str, Any]) -> None:
    for key in (CONF_HOST, CONF_SERIAL, CONF_ACCESS_CODE, CONF_CERT_SHA256):
        if not isinstance(data.get(key), str) or not data[key]:
            raise InvalidConfig(f"{key} is missing")
    if data.get(CONF_MODEL) not in BAMBU_CHAMBER_MODELS:
        raise InvalidConfig(
            f"model {data.get(CONF_MODEL)!r} has no port-6000 chamber camera"
        )
    port = data.get(CONF_PORT, BAMBU_PORT)
    if not isinstance(port, int) or not 0 < port < 65536:
        raise InvalidConfig("the port is not a TCP port number")


def create_bambu_source(
    data: Mapping[str, Any], *, cert_sha256: str | None
) -> BambuChamberSource:
    """Return a Bambu chamber camera source; `cert_sha256` None only to capture."""
    return BambuChamberSource(
        data[CONF_HOST],
        data[CONF_SERIAL],
        data[CONF_ACCESS_CODE],
        cert_sha256=cert_sha256,
        port=int(data.get(CONF_PORT, BAMBU_PORT)),
    )


def create_source(hass: HomeAssistant, data: Mapping[str, Any]) -> FrameSource:
    """Return the source for the entry's printer family."""
    validate_data(data)
    if data[CONF_KIND] == KIND_BAMBU:
        return create_bambu_source(data, cert_sha256=data[CONF_CERT_SHA256])
    verify_ssl = bool(data.get(CONF_VERIFY_SSL, DEFAULT_VERIFY_SSL))
    return MjpegHttpSource(
        async_get_clientsession(hass, verify_ssl=verify_ssl),
        data[CONF_URL],
        username=data.get(CONF_USERNAME) or None,
        password=data.get(CONF_PASSWORD) or None,
        verify_ssl=verify_ssl,
    )


def still_fetcher(
    source: FrameSource, data: Mapping[str, Any]
) -> Callable[[], Awaitable[bytes]] | None:
    """Return a fetcher for the printer's snapshot URL, if one is configured."""
    still_url = data.get(CONF_STILL_URL)
    if not still_url or not isinstance(source, MjpegHttpSource):
        return None

    async def fetch() -> bytes:
        return await source.fetch_still(still_url, STILL_TIMEOUT)

    return fetch
