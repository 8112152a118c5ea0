"""OctoPrint: the printer's webcams read from its API, one camera each.

Entry data: ``{"kind": "octoprint", "host", "port", "ssl", "path",
"api_key"}`` (``path`` is "/" unless OctoPrint runs under a prefix). The
unique id is the server's uuid (the one its zeroconf announcement carries:
the discovery plugin's ``upnpUuid``), read through the API whenever the
server is checked. An OctoPrint that does not reveal it (discovery plugin
disabled) is identified by what the flow knows instead: the announced uuid
when it was discovered, its address when added by hand. Reauth and
reconfigure of such a server learn no identity: the entry's key being
accepted there is the proof, and a server telling another uuid is refused.

Webcams: ``GET /api/settings`` -> ``webcam.webcams[]`` (OctoPrint 1.9+: one
per webcam provider plugin's webcam, each with ``compat.stream`` /
``compat.snapshot``, ``flipH``, ``flipV``, ``rotate90`` counter-clockwise),
else the legacy single webcam (``webcam.streamUrl`` ...). Relative stream
URLs (OctoPi's ``/webcam/?action=stream``) are resolved against OctoPrint's
base URL; loopback snapshot URLs (OctoPi's ``http://127.0.0.1:8080/...``)
point at the printer's host instead. ``webcamEnabled: false`` lists them as
disabled. An API key whose user lacks the WEBCAM permission gets no
``webcam`` section: that is the form's ``webcam_permission`` error.

No key? The Application Keys workflow asks OctoPrint for one: the user
approves "PrintCam" in OctoPrint's UI (`async_authorize`).

Zeroconf: ``_octoprint._tcp.local.`` with TXT ``path``, ``version``, ``uuid``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
import logging
import re
from typing import Any, Final

from homeassistant.core import HomeAssistant
from homeassistant.helpers.device_registry import DeviceInfo
import voluptuous as vol
import yarl

from custom_components.printcam.const import (
    CONF_API_KEY,
    CONF_HOST,
    CONF_KIND,
    CONF_PATH,
    CONF_PORT,
    CONF_SSL,
    KIND_OCTOPRINT,
)
from custom_components.printcam.discovery import is_ip_address
from custom_components.printcam.sources import ProtocolError, SourceError, SourceTimeout
from custom_components.printcam.transform import Orientation

from .base import PASSWORD, TEXT, Cameras, Checked, Discovered, Draft, InvalidConfig
from .printer_host import PrinterHostFamily, entered_key, server_fields
from .webcams import (
    HttpError,
    Webcam,
    api_json,
    api_text,
    base_url,
    cameras_for,
    no_mjpeg_message,
    resolve_url,
    summary,
)

_LOGGER = logging.getLogger(__name__)

DEFAULT_PORT: Final = 80
APP_NAME: Final = "PrintCam (Home Assistant)"
"""How the key request shows in OctoPrint's Application Keys dialog."""
AUTHORIZE_TIMEOUT: Final = 300.0
"""How long the user has to approve the key request in OctoPrint."""
POLL_INTERVAL: Final = 1.0
"""OctoPrint forgets a request not polled for 5 s."""
ZEROCONF_TYPE: Final = "_octoprint._tcp.local."
_FALLBACK_ID: Final = "_fallback_unique_id"
"""In a new entry's draft only (never stored): its identity should the
server not tell its uuid (the announced uuid, or the address typed)."""
_UUID_XML: Final = re.compile(r"<UDN>\s*uuid:([0-9A-Fa-f-]{8,64})\s*</UDN>")

_SERVER_FIELDS: Final[dict[vol.Marker, Any]] = {
    **server_fields(DEFAULT_PORT),
    vol.Required(CONF_PATH, default="/"): TEXT,
}


class WebcamPermission(SourceError):
    """The API key's user may not see the webcams (no WEBCAM permission)."""

    reason = "webcam_permission"
    permanent = True


class NoMjpegWebcam(SourceError):
    """The printer lists no webcam PrintCam can show."""

    reason = "no_mjpeg_webcam"


class AuthorizationDenied(SourceError):
    """The user denied the key request in OctoPrint, or it expired."""

    reason = "authorization_denied"


class AppKeysUnsupported(SourceError):
    """The OctoPrint cannot grant keys (Application Keys plugin off)."""

    reason = "app_keys_unsupported"


def normalize_path(value: str) -> str:
    """Return OctoPrint's path prefix as ``/`` or ``/prefix/``."""
    parts = [part for part in value.strip().split("/") if part]
    return "/" + "".join(f"{part}/" for part in parts)


def server_url(data: Mapping[str, Any]) -> yarl.URL:
    """Return OctoPrint's base URL from entry data."""
    return base_url(
        data[CONF_HOST],
        int(data[CONF_PORT]),
        bool(data[CONF_SSL]),
        data.get(CONF_PATH, "/"),
    )


def parse_webcams(settings: Mapping[str, Any], base: yarl.URL) -> list[Webcam]:
    """Return the webcams of ``GET /api/settings``; raise if it has none visible."""
    section = settings.get("webcam")
    if not isinstance(section, Mapping) or not section:
        raise WebcamPermission("the API key's user may not see the webcams")
    enabled = bool(section.get("webcamEnabled", True))
    host = base.host or ""
    listed = section.get("webcams")
    webcams: list[Webcam] = []
    if isinstance(listed, list):
        for item in listed:
            if not isinstance(item, Mapping) or not item.get("name"):
                continue
            compat = item.get("compat")
            compat = compat if isinstance(compat, Mapping) else {}
            webcams.append(
                Webcam(
                    key=str(item["name"]),
                    name=str(item.get("displayName") or item["name"]),
                    stream_url=resolve_url(str(compat.get("stream") or ""), base, host),
                    snapshot_url=resolve_url(
                        str(compat.get("snapshot") or ""), base, host
                    ),
                    service=str(item.get("provider") or ""),
                    enabled=enabled,
                    orientation=Orientation.from_octoprint(
                        bool(item.get("flipH")),
                        bool(item.get("flipV")),
                        bool(item.get("rotate90")),
                    ),
                )
            )
        return webcams
    # OctoPrint before 1.9: one webcam, at the top of the section.
    return [
        Webcam(
            key="classic",
            name="Webcam",
            stream_url=resolve_url(str(section.get("streamUrl") or ""), base, host),
            snapshot_url=resolve_url(str(section.get("snapshotUrl") or ""), base, host),
            enabled=enabled,
            orientation=Orientation.from_octoprint(
                bool(section.get("flipH")),
                bool(section.get("flipV")),
                bool(section.get("rotate90")),
            ),
        )
    ]


def _address_id(data: Mapping[str, Any]) -> str:
    """Return the identity of an OctoPrint that does not tell its uuid."""
    return str(server_url(data)).lower()


class OctoPrintFamily(PrinterHostFamily):
    """An OctoPrint server: every MJPEG webcam it lists."""

    kind = KIND_OCTOPRINT
    product = "OctoPrint"
    zeroconf_type = ZEROCONF_TYPE
    default_port = DEFAULT_PORT
    server_keys = (CONF_HOST, CONF_PORT, CONF_SSL, CONF_PATH)
    user_schema = vol.Schema({**_SERVER_FIELDS, vol.Optional(CONF_API_KEY): PASSWORD})
    reconfigure_schema = vol.Schema(_SERVER_FIELDS)

    # --- the entry

    def validate_data(self, data: Mapping[str, Any]) -> None:
        """Refuse data without an address, a port or a key."""
        super().validate_data(data)
        if not isinstance(data.get(CONF_API_KEY), str) or not data[CONF_API_KEY]:
            raise InvalidConfig("api_key is missing")

    async def async_cameras(
        self, hass: HomeAssistant, data: Mapping[str, Any]
    ) -> Cameras:
        """Read the webcams from the API: one camera per MJPEG webcam."""
        return cameras_for(hass, await self._async_listed(hass, data))

    async def _async_server_uuid(
        self, hass: HomeAssistant, data: Mapping[str, Any]
    ) -> str | None:
        base = server_url(data)
        settings = await api_json(hass, base / "api/settings", data[CONF_API_KEY])
        return await self._async_uuid(
            hass, base, settings if isinstance(settings, Mapping) else {}
        )

    async def _async_listed(
        self, hass: HomeAssistant, data: Mapping[str, Any]
    ) -> list[Webcam]:
        base = server_url(data)
        settings = await api_json(hass, base / "api/settings", data[CONF_API_KEY])
        if not isinstance(settings, Mapping):
            raise ProtocolError("/api/settings is not a JSON object")
        return parse_webcams(settings, base)

    def device_info(self, data: Mapping[str, Any]) -> DeviceInfo:
        """Return OctoPrint, configured at its web interface."""
        return DeviceInfo(
            manufacturer="OctoPrint",
            model="OctoPrint",
            configuration_url=str(server_url(data)),
        )

    # --- the forms

    def parse_user(self, user_input: Mapping[str, Any]) -> Draft:
        """Return the server's data (an empty key: ask OctoPrint for one)."""
        data = self._server_data(user_input)
        data[CONF_API_KEY] = entered_key(user_input)
        data[_FALLBACK_ID] = _address_id(data)
        return Draft(title=f"OctoPrint {data[CONF_HOST]}", data=data)

    def _server_data(self, user_input: Mapping[str, Any]) -> dict[str, Any]:
        """Return the server's data, with its path prefix."""
        return {
            **super()._server_data(user_input),
            CONF_PATH: normalize_path(str(user_input.get(CONF_PATH) or "/")),
        }

    # --- checking

    async def async_check(
        self,
        hass: HomeAssistant,
        data: Mapping[str, Any],
        timeout: float,  # noqa: ASYNC109 - the flow's bound for one check
    ) -> Checked:
        """Read the webcams with the key; learn the uuid and the printer's name.

        At least one webcam must be MJPEG; the summary names each webcam
        and what became of it. The unique id is the uuid the server tells,
        else a new entry's fallback (see the module doc), else None.
        """
        base = server_url(data)
        try:
            async with asyncio.timeout(timeout):
                settings = await api_json(
                    hass, base / "api/settings", data[CONF_API_KEY]
                )
                if not isinstance(settings, Mapping):
                    raise ProtocolError("/api/settings is not a JSON object")
                found = cameras_for(hass, parse_webcams(settings, base))
                unique_id = await self._async_uuid(hass, base, settings) or data.get(
                    _FALLBACK_ID
                )
        except TimeoutError:
            # The check's bound ended before a request's own (both 10 s).
            raise SourceTimeout(
                f"{base.host}:{base.port} did not answer in {timeout:g} s"
            ) from None
        if not found.cameras:
            raise NoMjpegWebcam(no_mjpeg_message(found))
        appearance = settings.get("appearance")
        name = appearance.get("name") if isinstance(appearance, Mapping) else None
        return Checked(
            {key: value for key, value in data.items() if key != _FALLBACK_ID},
            unique_id=unique_id,
            title=f"OctoPrint {name}" if name else None,
            summary=summary(found),
        )

    async def _async_uuid(
        self, hass: HomeAssistant, base: yarl.URL, settings: Mapping[str, Any]
    ) -> str | None:
        """Return the uuid the server's zeroconf announcement carries, if it tells."""
        return _settings_uuid(settings) or await _async_xml_uuid(hass, base)

    # --- a key granted in OctoPrint's UI

    def needs_authorization(self, data: Mapping[str, Any]) -> bool:
        """Return True when no key was entered."""
        return not data.get(CONF_API_KEY)

    async def async_authorize(
        self, hass: HomeAssistant, data: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Request a key through Application Keys; wait for the user's decision."""
        base = server_url(data)
        try:
            await api_json(hass, base / "plugin/appkeys/probe", None)
        except HttpError as err:
            if err.status == 404:
                raise AppKeysUnsupported("the Application Keys plugin is off") from None
            raise
        request = await api_json(
            hass,
            base / "plugin/appkeys/request",
            None,
            method="POST",
            payload={"app": APP_NAME},
        )
        token = request.get("app_token") if isinstance(request, Mapping) else None
        if not token:
            raise ProtocolError("no app_token in the key request's answer")
        poll = base / "plugin/appkeys/request" / str(token)
        try:
            async with asyncio.timeout(AUTHORIZE_TIMEOUT):
                while True:
                    try:
                        answer = await api_json(hass, poll, None)
                    except HttpError as err:
                        if err.status == 404:
                            raise AuthorizationDenied(
                                "denied in OctoPrint, or expired"
                            ) from None
                        raise
                    if isinstance(answer, Mapping) and answer.get("api_key"):
                        return {**data, CONF_API_KEY: str(answer["api_key"])}
                    await asyncio.sleep(POLL_INTERVAL)
        except TimeoutError:
            raise AuthorizationDenied(
                f"nobody decided within {AUTHORIZE_TIMEOUT:g} s"
            ) from None

    # --- zeroconf

    def discovered(self, source: str, info: object) -> Discovered | None:
        """Describe an OctoPrint announced over zeroconf (uuid, path, port)."""
        if (info := self._announced(source, info)) is None:
            return None
        uuid = str(info.properties["uuid"]).lower()
        host = str(info.ip_address)
        path = normalize_path(str(info.properties.get("path") or "/"))
        title = f"OctoPrint {info.hostname.removesuffix('.local.') or host}"
        return Discovered(
            unique_id=uuid,
            title=title,
            data={
                CONF_KIND: KIND_OCTOPRINT,
                CONF_HOST: host,
                CONF_PORT: int(info.port or DEFAULT_PORT),
                CONF_SSL: False,
                CONF_PATH: path,
            },
            placeholders={"name": title, "host": f"{host}:{info.port}"},
            confirm_step="discovery_confirm_octoprint",
        )

    def _moved(
        self, data: Mapping[str, Any], discovered: Discovered
    ) -> dict[str, Any] | None:
        """Never move an entry configured by host name or with SSL.

        A host name stays right wherever the printer's address goes; an
        announcement names no scheme, so moving would drop TLS.
        """
        if data.get(CONF_SSL) or not is_ip_address(str(data[CONF_HOST])):
            return None
        return super()._moved(data, discovered)

    async def _async_keyless_uuid(
        self, hass: HomeAssistant, data: Mapping[str, Any]
    ) -> str | None:
        """Return the uuid of ``discovery.xml``, served by the plugin that announces."""
        return await _async_xml_uuid(hass, server_url(data))

    def parse_discovery(
        self, discovered: Discovered, user_input: Mapping[str, Any]
    ) -> Draft:
        """Return the announced server's data with the key entered."""
        data = {
            **discovered.data,
            CONF_API_KEY: entered_key(user_input),
            _FALLBACK_ID: discovered.unique_id,
        }
        return Draft(title=discovered.title, data=data)


def _settings_uuid(settings: Mapping[str, Any]) -> str | None:
    """Return the discovery plugin's uuid from ``/api/settings``, if listed."""
    plugins = settings.get("plugins")
    if isinstance(plugins, Mapping):
        discovery = plugins.get("discovery")
        if isinstance(discovery, Mapping) and discovery.get("upnpUuid"):
            return str(discovery["upnpUuid"]).lower()
    return None


async def _async_xml_uuid(hass: HomeAssistant, base: yarl.URL) -> str | None:
    """Return the uuid of ``discovery.xml`` (no key sent), None if not served."""
    try:
        xml = await api_text(hass, base / "plugin/discovery/discovery.xml")
    except SourceError as err:
        _LOGGER.debug("%s tells no uuid: %s", base.host, err)
        return None
    match = _UUID_XML.search(xml)
    return match.group(1).lower() if match else None
