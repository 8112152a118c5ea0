"""Any camera that serves MJPEG over HTTP(S), given its stream URL.

Entry data: ``{"kind": "mjpeg", "url", "still_url"?, "username"?,
"password"?, "verify_ssl"}``, titled with the name the user gave. The unique
id is the normalised stream URL without credentials, so one camera cannot be
added twice, whatever credentials its URL carries.
"""

from __future__ import annotations

from collections.abc import Mapping
import logging
from typing import Any, Final

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import device_registry as dr, entity_registry as er
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.selector import (
    BooleanSelector,
    TextSelector,
    TextSelectorConfig,
    TextSelectorType,
)
import voluptuous as vol
import yarl

from custom_components.printcam.const import (
    CONF_KIND,
    CONF_NAME,
    CONF_PASSWORD,
    CONF_STILL_URL,
    CONF_URL,
    CONF_USERNAME,
    CONF_VERIFY_SSL,
    DEFAULT_VERIFY_SSL,
    DOMAIN,
    KIND_MJPEG,
    STILL_TIMEOUT,
)
from custom_components.printcam.redact import redact_url, strip_credential_params
from custom_components.printcam.sources import FrameSource
from custom_components.printcam.sources.mjpeg_http import MjpegHttpSource

from .base import PASSWORD, TEXT, Draft, Family, FormError, InvalidConfig, StillFetcher

_LOGGER = logging.getLogger(__name__)

DEFAULT_NAME: Final = "3D printer"
_URL = TextSelector(TextSelectorConfig(type=TextSelectorType.URL))
_CAMERA_FIELDS: Final[dict[vol.Marker, Any]] = {
    vol.Required(CONF_URL): _URL,
    vol.Optional(CONF_STILL_URL): _URL,
    vol.Optional(CONF_USERNAME): TEXT,
    vol.Optional(CONF_PASSWORD): PASSWORD,
    vol.Required(CONF_VERIFY_SSL, default=DEFAULT_VERIFY_SSL): BooleanSelector(),
}
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
_CREDENTIALS: Final = (CONF_USERNAME, CONF_PASSWORD)


def valid_http_url(url: object) -> bool:
    """Return True for an absolute http(s) URL with a host."""
    if not isinstance(url, str) or not url.strip():
        return False
    try:
        parsed = yarl.URL(url.strip())
    except (ValueError, TypeError):
        return False
    return parsed.scheme in ("http", "https") and bool(parsed.host)


def normalize_url(url: str) -> str:
    """Return the stream URL as a stable identity, without credentials.

    User info, credential query parameters (``?user=...&pwd=...``, see
    `redact.is_credential_key`), fragment and a default port are dropped;
    scheme and host are lowercased; an empty path becomes "/". Every other
    query parameter stays as written, so a URL without credentials in its
    query gives the same identity as it always did.
    """
    return _normalize(url, keep_credentials=False)


def legacy_unique_id(url: str) -> str:
    """Return the identity PrintCam stored before it left credentials out.

    The same as `normalize_url`, but with the credential query parameters
    (and their values) kept.
    """
    return _normalize(url, keep_credentials=True)


def _normalize(url: str, *, keep_credentials: bool) -> str:
    parsed = yarl.URL(url.strip())
    scheme = parsed.scheme.lower()
    netloc = (parsed.host or "").lower()
    if ":" in netloc:  # IPv6 literal
        netloc = f"[{netloc}]"
    if parsed.explicit_port not in (None, _DEFAULT_PORTS.get(scheme)):
        netloc += f":{parsed.explicit_port}"
    query = parsed.raw_query_string
    if not keep_credentials:
        query = strip_credential_params(query)
    query = f"?{query}" if query else ""
    return f"{scheme}://{netloc}{parsed.raw_path or '/'}{query}"


@callback
def async_migrate_unique_id(hass: HomeAssistant, entry: ConfigEntry) -> bool:
    """Take credentials out of an MJPEG entry's identity; True if it changed.

    An entry added before credentials were left out of unique ids, whose
    stream URL carries credentials in its query, has them in its unique id, in its device's identifier and
    in its entities' unique ids (`entity.device_id_for`). This rewrites all
    three to `normalize_url`, keeping every entity id, name and history, so
    duplicate detection and reconfigure (which compare against
    `MjpegFamily.unique_id`) keep working. Entries whose unique id is
    already current, or not the one PrintCam stored, are left alone; so is
    an entry whose new identity another entry already has (the same camera
    added twice with different credentials): that one is logged.
    """
    old, url = entry.unique_id, entry.data.get(CONF_URL)
    if not old or entry.data.get(CONF_KIND) != KIND_MJPEG or not valid_http_url(url):
        return False
    assert isinstance(url, str)  # noqa: S101 - valid_http_url checked it
    new = normalize_url(url)
    if old == new or old != legacy_unique_id(url):
        return False
    if hass.config_entries.async_entry_for_domain_unique_id(DOMAIN, new) is not None:
        _LOGGER.warning(
            "%s keeps its old unique id: another entry is the same camera (%s)",
            entry.title,
            redact_url(new),
        )
        return False
    entities = er.async_get(hass)
    for entity in er.async_entries_for_config_entry(entities, entry.entry_id):
        if entity.unique_id.startswith(f"{old}_"):
            entities.async_update_entity(
                entity.entity_id,
                new_unique_id=new + entity.unique_id.removeprefix(old),
            )
    devices = dr.async_get(hass)
    if device := devices.async_get_device(identifiers={(DOMAIN, old)}):
        devices.async_update_device(
            device.id,
            new_identifiers=(device.identifiers - {(DOMAIN, old)}) | {(DOMAIN, new)},
        )
    hass.config_entries.async_update_entry(entry, unique_id=new)
    _LOGGER.info("%s: credentials removed from its unique id", entry.title)
    return True


def _clean(user_input: Mapping[str, Any]) -> dict[str, Any]:
    """Keep the non-empty fields of a form, stripped."""
    data: dict[str, Any] = {}
    for key, raw in user_input.items():
        value = raw.strip() if isinstance(raw, str) else raw
        if value != "":
            data[key] = value
    return data


def _camera_data(user_input: Mapping[str, Any]) -> dict[str, Any]:
    """Return the entry data of a camera form; raise FormError on a bad URL."""
    data = {CONF_KIND: KIND_MJPEG, **_clean(user_input)}
    if not valid_http_url(data.get(CONF_URL)):
        raise FormError({CONF_URL: "invalid_url"})
    if (still := data.get(CONF_STILL_URL)) and not valid_http_url(still):
        raise FormError({CONF_STILL_URL: "invalid_url"})
    return data


class MjpegFamily(Family):
    """A camera that serves MJPEG over HTTP: any printer, by URL."""

    kind = KIND_MJPEG
    user_schema = vol.Schema(
        {vol.Required(CONF_NAME, default=DEFAULT_NAME): TEXT, **_CAMERA_FIELDS}
    )
    reauth_schema = vol.Schema(
        {vol.Optional(CONF_USERNAME): TEXT, vol.Optional(CONF_PASSWORD): PASSWORD}
    )
    reconfigure_schema = vol.Schema(_CAMERA_FIELDS)

    def validate_data(self, data: Mapping[str, Any]) -> None:
        """Refuse data without an http(s) stream URL or with a bad still URL."""
        if not valid_http_url(data.get(CONF_URL)):
            raise InvalidConfig("the stream URL is not an http(s) URL with a host")
        still = data.get(CONF_STILL_URL)
        if still and not valid_http_url(still):
            raise InvalidConfig("the still URL is not an http(s) URL with a host")

    def unique_id(self, data: Mapping[str, Any]) -> str:
        """Return the normalised stream URL, without credentials."""
        return normalize_url(data[CONF_URL])

    def create_source(
        self, hass: HomeAssistant, data: Mapping[str, Any]
    ) -> MjpegHttpSource:
        """Return an HTTP source on Home Assistant's shared session."""
        verify_ssl = bool(data.get(CONF_VERIFY_SSL, DEFAULT_VERIFY_SSL))
        return MjpegHttpSource(
            async_get_clientsession(hass, verify_ssl=verify_ssl),
            data[CONF_URL],
            username=data.get(CONF_USERNAME) or None,
            password=data.get(CONF_PASSWORD) or None,
            verify_ssl=verify_ssl,
        )

    def still_fetcher(
        self, source: FrameSource, data: Mapping[str, Any]
    ) -> StillFetcher | None:
        """Return a fetcher for the camera's snapshot URL, if one is configured."""
        still_url = data.get(CONF_STILL_URL)
        if not still_url or not isinstance(source, MjpegHttpSource):
            return None

        async def fetch() -> bytes:
            return await source.fetch_still(still_url, STILL_TIMEOUT)

        return fetch

    def device_info(self, data: Mapping[str, Any]) -> DeviceInfo:
        """Return a generic camera, configured at its URL's origin (no credentials)."""
        origin = yarl.URL(data[CONF_URL]).with_user(None).origin()
        return DeviceInfo(
            manufacturer="PrintCam",
            model="MJPEG camera",
            configuration_url=str(origin),
        )

    def parse_user(self, user_input: Mapping[str, Any]) -> Draft:
        """Return the camera's data, titled with the name entered."""
        data = _camera_data(user_input)
        return Draft(title=data.pop(CONF_NAME, DEFAULT_NAME), data=data)

    def parse_reauth(
        self, data: Mapping[str, Any], user_input: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Replace the username and password (empty fields remove them)."""
        new = {k: v for k, v in data.items() if k not in _CREDENTIALS}
        new.update(_clean(user_input))
        return new

    def reauth_suggested(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """Start with the stored username."""
        return {CONF_USERNAME: data.get(CONF_USERNAME, "")}

    def parse_reconfigure(
        self, data: Mapping[str, Any], user_input: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Return the new settings; an empty password keeps the stored one."""
        new = _camera_data(user_input)
        if CONF_PASSWORD not in new and data.get(CONF_PASSWORD):
            new[CONF_PASSWORD] = data[CONF_PASSWORD]
        return new

    def reconfigure_suggested(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """Start with the stored settings, without the password."""
        return {k: v for k, v in data.items() if k not in (CONF_PASSWORD, CONF_KIND)}

    async def async_check(
        self,
        hass: HomeAssistant,
        data: Mapping[str, Any],
        timeout: float,  # noqa: ASYNC109 - the flow's bound for one check
    ) -> dict[str, Any]:
        """Fetch one frame from the stream URL."""
        await self.create_source(hass, data).fetch_frame(timeout)
        return dict(data)
