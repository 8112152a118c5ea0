"""Klipper printers: the webcams Moonraker lists, one camera each.

Entry data: ``{"kind": "moonraker", "host", "port", "ssl", "api_key"}``
(``api_key`` empty for a client Moonraker trusts). The unique id is the
instance uuid its zeroconf announcement carries, read through the API
(``GET /server/database/item?namespace=moonraker&key=instance_id``).

Webcams: ``GET /server/webcams/list`` -> ``result.webcams[]``, each with
``uid`` (the camera's stable key), ``name``, ``enabled``, ``service``,
``stream_url``, ``snapshot_url``, ``flip_horizontal``, ``flip_vertical``
and ``rotation`` (clockwise). Relative URLs mean the printer's host on port
80, where Mainsail or Fluidd serve them (not Moonraker's own port). WebRTC,
HLS and iframe services are listed as not shown. A printer whose list is
empty (Creality K1, some Qidi) gets one camera at ``:8080/?action=stream``
when that answers with MJPEG.

Zeroconf: ``_moonraker._tcp.local.`` with TXT ``uuid`` and ``version``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
import dataclasses
import logging
from typing import Any, Final

from homeassistant.core import HomeAssistant
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.device_registry import DeviceInfo
import voluptuous as vol
import yarl

from custom_components.printcam.const import (
    CONF_API_KEY,
    CONF_HOST,
    CONF_KIND,
    CONF_PORT,
    CONF_SSL,
    KIND_MOONRAKER,
)
from custom_components.printcam.sources import ProtocolError, SourceError, SourceTimeout
from custom_components.printcam.sources.mjpeg_http import MjpegHttpSource
from custom_components.printcam.transform import Orientation

from .base import PASSWORD, Cameras, Checked, Discovered, Draft
from .printer_host import PrinterHostFamily, entered_key, server_fields
from .webcams import (
    HttpError,
    Webcam,
    api_json,
    base_url,
    cameras_for,
    no_mjpeg_message,
    resolve_url,
    signature,
    summary,
)

_LOGGER = logging.getLogger(__name__)

DEFAULT_PORT: Final = 7125
WEB_PORT: Final = 80
"""Where relative webcam URLs point: Mainsail's or Fluidd's web server."""
FALLBACK_STREAM: Final = ":8080/?action=stream"
FALLBACK_TIMEOUT: Final = 5.0
ZEROCONF_TYPE: Final = "_moonraker._tcp.local."

_SERVER_FIELDS: Final = server_fields(DEFAULT_PORT)


class NoMjpegWebcam(SourceError):
    """The printer lists no webcam PrintCam can show, and :8080 has none."""

    reason = "no_mjpeg_webcam"


def server_url(data: Mapping[str, Any]) -> yarl.URL:
    """Return Moonraker's base URL from entry data."""
    return base_url(data[CONF_HOST], int(data[CONF_PORT]), bool(data.get(CONF_SSL)))


def web_url(host: str) -> yarl.URL:
    """Return the base relative webcam URLs mean: the host on port 80."""
    return base_url(host, WEB_PORT, False)


def _rotation(value: object) -> int:
    try:
        rotation = int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return 0
    return rotation if rotation in (0, 90, 180, 270) else 0


def parse_webcams(answer: object, host: str) -> list[Webcam]:
    """Return the webcams of ``GET /server/webcams/list``."""
    result = answer.get("result") if isinstance(answer, Mapping) else None
    listed = result.get("webcams") if isinstance(result, Mapping) else None
    if not isinstance(listed, list):
        raise ProtocolError("/server/webcams/list has no webcams list")
    base = web_url(host)
    webcams = []
    for item in listed:
        if not isinstance(item, Mapping) or not (item.get("uid") or item.get("name")):
            continue
        name = str(item.get("name") or item.get("uid"))
        webcams.append(
            Webcam(
                key=str(item.get("uid") or name),
                name=name,
                stream_url=resolve_url(str(item.get("stream_url") or ""), base, host),
                snapshot_url=resolve_url(
                    str(item.get("snapshot_url") or ""), base, host
                ),
                service=str(item.get("service") or ""),
                enabled=bool(item.get("enabled", True)),
                orientation=Orientation.from_moonraker(
                    bool(item.get("flip_horizontal")),
                    bool(item.get("flip_vertical")),
                    _rotation(item.get("rotation")),
                ),
            )
        )
    return webcams


def fallback_webcam(host: str) -> Webcam:
    """Return the webcam a printer with an empty list may still serve."""
    url = yarl.URL.build(scheme="http", host=host, port=8080, path="/")
    return Webcam(
        key="default",
        name="Webcam",
        stream_url=str(url.with_query("action=stream")),
        snapshot_url=str(url.with_query("action=snapshot")),
        service="mjpegstreamer",
    )


def _address_id(data: Mapping[str, Any]) -> str:
    return str(server_url(data)).lower()


class MoonrakerFamily(PrinterHostFamily):
    """A Klipper printer's Moonraker: every MJPEG webcam it lists."""

    kind = KIND_MOONRAKER
    product = "Moonraker"
    zeroconf_type = ZEROCONF_TYPE
    default_port = DEFAULT_PORT
    user_schema = vol.Schema({**_SERVER_FIELDS, vol.Optional(CONF_API_KEY): PASSWORD})
    reconfigure_schema = vol.Schema(_SERVER_FIELDS)

    async def async_cameras(
        self, hass: HomeAssistant, data: Mapping[str, Any]
    ) -> Cameras:
        """Read the webcams from the API: one camera per MJPEG webcam.

        The signature is the API's list alone: the :8080 fallback is looked
        at once, here, never by the hourly check (see
        `async_cameras_signature`).
        """
        listed = await self._async_listed(hass, data)
        found = cameras_for(hass, await self._async_with_fallback(hass, data, listed))
        return dataclasses.replace(found, signature=signature(listed))

    async def _async_server_uuid(
        self, hass: HomeAssistant, data: Mapping[str, Any]
    ) -> str | None:
        try:
            return await _async_uuid(hass, data)
        except (HttpError, ProtocolError) as err:  # database component off
            _LOGGER.debug("%s tells no uuid: %s", data[CONF_HOST], err)
            return None

    async def _async_listed(
        self, hass: HomeAssistant, data: Mapping[str, Any]
    ) -> list[Webcam]:
        answer = await api_json(
            hass, server_url(data) / "server/webcams/list", data.get(CONF_API_KEY)
        )
        return parse_webcams(answer, data[CONF_HOST])

    @staticmethod
    async def _async_with_fallback(
        hass: HomeAssistant, data: Mapping[str, Any], listed: list[Webcam]
    ) -> list[Webcam]:
        """Return the listed webcams, or :8080's when none is listed and it answers."""
        if listed:
            return listed
        fallback = fallback_webcam(data[CONF_HOST])
        return [fallback] if await _serves_mjpeg(hass, fallback) else []

    async def _async_webcams(
        self, hass: HomeAssistant, data: Mapping[str, Any]
    ) -> list[Webcam]:
        listed = await self._async_listed(hass, data)
        return await self._async_with_fallback(hass, data, listed)

    def device_info(self, data: Mapping[str, Any]) -> DeviceInfo:
        """Return Klipper, configured at its web interface (port 80)."""
        return DeviceInfo(
            manufacturer="Klipper",
            model="Moonraker",
            configuration_url=str(web_url(data[CONF_HOST])),
        )

    # --- the forms

    def parse_user(self, user_input: Mapping[str, Any]) -> Draft:
        """Return the server's data (the key may stay empty: trusted client)."""
        data = self._server_data(user_input)
        data[CONF_API_KEY] = entered_key(user_input)
        return Draft(title=f"Klipper {data[CONF_HOST]}", data=data)

    # --- checking

    async def async_check(
        self,
        hass: HomeAssistant,
        data: Mapping[str, Any],
        timeout: float,  # noqa: ASYNC109 - the flow's bound for one check
    ) -> Checked:
        """Read the webcams (with the key, if any) and the instance uuid."""
        try:
            async with asyncio.timeout(timeout):
                found = cameras_for(hass, await self._async_webcams(hass, data))
                try:
                    uuid = await _async_uuid(hass, data)
                except (HttpError, ProtocolError) as err:  # database component off
                    _LOGGER.debug("%s tells no uuid: %s", data[CONF_HOST], err)
                    uuid = None
        except TimeoutError:
            # The flow's bound, not a request's: a form error like theirs.
            raise SourceTimeout(
                f"{data[CONF_HOST]}:{data[CONF_PORT]} did not answer in {timeout:g} s"
            ) from None
        if not found.cameras:
            raise NoMjpegWebcam(no_mjpeg_message(found))
        return Checked(
            dict(data),
            unique_id=uuid or _address_id(data),
            summary=summary(found),
        )

    # --- zeroconf

    def discovered(self, source: str, info: object) -> Discovered | None:
        """Describe a Moonraker announced over zeroconf (uuid, port)."""
        if (info := self._announced(source, info)) is None:
            return None
        uuid = str(info.properties["uuid"]).lower()
        host = str(info.ip_address)
        port = int(info.port or DEFAULT_PORT)
        title = f"Klipper {info.hostname.removesuffix('.local.') or host}"
        data = {CONF_KIND: KIND_MOONRAKER, CONF_HOST: host, CONF_PORT: port}
        return Discovered(
            unique_id=uuid,
            title=title,
            data={**data, CONF_SSL: False},
            placeholders={"name": title, "host": self.address(data)},
            confirm_step="discovery_confirm_moonraker",
        )

    def _moved(
        self, data: Mapping[str, Any], discovered: Discovered
    ) -> dict[str, Any] | None:
        """Move an https entry's host only (the announced port is plain HTTP's)."""
        if data.get(CONF_SSL):
            host = discovered.data[CONF_HOST]
            return None if host == data[CONF_HOST] else {**data, CONF_HOST: host}
        return super()._moved(data, discovered)

    async def _async_keyless_uuid(
        self, hass: HomeAssistant, data: Mapping[str, Any]
    ) -> str | None:
        """Return the instance uuid asked without a key (a trusting Moonraker).

        One that asks for a key proves nothing and is not moved (reconfigure
        it).
        """
        return await _async_uuid(hass, {**data, CONF_API_KEY: ""})

    def parse_discovery(
        self, discovered: Discovered, user_input: Mapping[str, Any]
    ) -> Draft:
        """Return the announced server's data with the key entered."""
        data = {
            **discovered.data,
            CONF_API_KEY: entered_key(user_input),
        }
        return Draft(title=discovered.title, data=data)


async def _async_uuid(hass: HomeAssistant, data: Mapping[str, Any]) -> str | None:
    """Return the instance uuid (what zeroconf's TXT ``uuid`` carries)."""
    url = (server_url(data) / "server/database/item").with_query(
        namespace="moonraker", key="instance_id"
    )
    answer = await api_json(hass, url, data.get(CONF_API_KEY))
    result = answer.get("result") if isinstance(answer, Mapping) else None
    value = result.get("value") if isinstance(result, Mapping) else None
    return str(value).lower() if value else None


async def _serves_mjpeg(hass: HomeAssistant, webcam: Webcam) -> bool:
    """Return True when the webcam's stream URL gives an MJPEG frame."""
    source = MjpegHttpSource(async_get_clientsession(hass), webcam.stream_url)
    try:
        await source.fetch_frame(FALLBACK_TIMEOUT)
    except SourceError as err:
        _LOGGER.debug("No MJPEG at %s: %s", webcam.stream_url, err)
        return False
    return True
