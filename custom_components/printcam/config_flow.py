"""Config, options, reconfigure and reauth flows for PrintCam."""

from __future__ import annotations

from collections.abc import Mapping
import logging
from typing import Any

from homeassistant.config_entries import (
    ConfigEntryState,
    ConfigFlow,
    ConfigFlowResult,
    OptionsFlow,
)
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.selector import (
    BooleanSelector,
    NumberSelector,
    NumberSelectorConfig,
    NumberSelectorMode,
    TextSelector,
    TextSelectorConfig,
    TextSelectorType,
)
import voluptuous as vol
import yarl

from .connection import create_source, valid_http_url
from .const import (
    CONF_IDLE_GRACE_S,
    CONF_KIND,
    CONF_MAX_FPS,
    CONF_NAME,
    CONF_PASSWORD,
    CONF_STALL_S,
    CONF_STILL_HOLD_S,
    CONF_STILL_URL,
    CONF_URL,
    CONF_USERNAME,
    CONF_VERIFY_SSL,
    DEFAULT_IDLE_GRACE_S,
    DEFAULT_MAX_FPS,
    DEFAULT_STALL_S,
    DEFAULT_STILL_HOLD_S,
    DEFAULT_VERIFY_SSL,
    DOMAIN,
    KIND_MJPEG,
    VALIDATE_TIMEOUT,
)
from .data import PrintCamConfigEntry
from .sources import SourceError

_LOGGER = logging.getLogger(__name__)

DEFAULT_NAME = "3D printer"
_URL = TextSelector(TextSelectorConfig(type=TextSelectorType.URL))
_TEXT = TextSelector()
_PASSWORD = TextSelector(
    TextSelectorConfig(type=TextSelectorType.PASSWORD, autocomplete="off")
)

_CAMERA_FIELDS: dict[vol.Marker, Any] = {
    vol.Required(CONF_URL): _URL,
    vol.Optional(CONF_STILL_URL): _URL,
    vol.Optional(CONF_USERNAME): _TEXT,
    vol.Optional(CONF_PASSWORD): _PASSWORD,
    vol.Required(CONF_VERIFY_SSL, default=DEFAULT_VERIFY_SSL): BooleanSelector(),
}
MJPEG_SCHEMA = vol.Schema(
    {vol.Required(CONF_NAME, default=DEFAULT_NAME): _TEXT, **_CAMERA_FIELDS}
)
RECONFIGURE_SCHEMA = vol.Schema(_CAMERA_FIELDS)
REAUTH_SCHEMA = vol.Schema(
    {
        vol.Optional(CONF_USERNAME): _TEXT,
        vol.Optional(CONF_PASSWORD): _PASSWORD,
    }
)


def _seconds(maximum: float) -> NumberSelector:
    return NumberSelector(
        NumberSelectorConfig(
            min=0,
            max=maximum,
            step=1,
            unit_of_measurement="s",
            mode=NumberSelectorMode.BOX,
        )
    )


OPTIONS_SCHEMA = vol.Schema(
    {
        vol.Required(CONF_MAX_FPS, default=DEFAULT_MAX_FPS): NumberSelector(
            NumberSelectorConfig(min=0, max=60, step=0.5, mode=NumberSelectorMode.BOX)
        ),
        vol.Required(CONF_IDLE_GRACE_S, default=DEFAULT_IDLE_GRACE_S): _seconds(600),
        vol.Required(CONF_STILL_HOLD_S, default=DEFAULT_STILL_HOLD_S): _seconds(3600),
        # At least 1 s: below that a camera's normal jitter reads as stalls.
        vol.Required(CONF_STALL_S, default=DEFAULT_STALL_S): NumberSelector(
            NumberSelectorConfig(
                min=1,
                max=600,
                step=1,
                unit_of_measurement="s",
                mode=NumberSelectorMode.BOX,
            )
        ),
    }
)


_DEFAULT_PORTS = {"http": 80, "https": 443}
_FORM_ERRORS = ("cannot_connect", "invalid_auth", "not_mjpeg", "timeout")


def normalize_url(url: str) -> str:
    """Return the stream URL as a stable identity.

    Credentials, fragment and a default port are dropped; scheme and host
    are lowercased; an empty path becomes "/".
    """
    parsed = yarl.URL(url.strip())
    scheme = parsed.scheme.lower()
    netloc = (parsed.host or "").lower()
    if ":" in netloc:  # IPv6 literal
        netloc = f"[{netloc}]"
    if parsed.explicit_port not in (None, _DEFAULT_PORTS.get(scheme)):
        netloc += f":{parsed.explicit_port}"
    query = f"?{parsed.raw_query_string}" if parsed.raw_query_string else ""
    return f"{scheme}://{netloc}{parsed.raw_path or '/'}{query}"


def _clean(user_input: Mapping[str, Any]) -> dict[str, Any]:
    """Keep the non-empty fields of an MJPEG form, stripped."""
    data: dict[str, Any] = {}
    for key, raw in user_input.items():
        value = raw.strip() if isinstance(raw, str) else raw
        if value != "":
            data[key] = value
    return data


async def validate_mjpeg(
    hass: HomeAssistant, data: Mapping[str, Any]
) -> dict[str, str]:
    """Fetch one frame with the given settings; return form errors.

    The stream URL has been checked by the caller (it is the unique id).
    """
    if (still := data.get(CONF_STILL_URL)) and not valid_http_url(still):
        return {CONF_STILL_URL: "invalid_url"}
    try:
        source = create_source(hass, data)
        await source.fetch_frame(VALIDATE_TIMEOUT)
    except SourceError as err:
        # A garbled HTTP answer is reported like any failed connection.
        return {"base": err.reason if err.reason in _FORM_ERRORS else "cannot_connect"}
    except Exception:
        _LOGGER.exception("Unexpected error while checking the camera")
        return {"base": "unknown"}
    return {}


class PrintCamConfigFlow(ConfigFlow, domain=DOMAIN):
    """Add a printer's camera."""

    VERSION = 1
    MINOR_VERSION = 1

    @staticmethod
    @callback
    def async_get_options_flow(config_entry: PrintCamConfigEntry) -> OptionsFlow:
        """Return the options flow."""
        return PrintCamOptionsFlow()

    async def async_step_user(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Ask which kind of printer camera to add."""
        return self.async_show_menu(step_id="user", menu_options=[KIND_MJPEG])

    async def async_step_mjpeg(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Add any camera that serves MJPEG over HTTP."""
        errors: dict[str, str] = {}
        if user_input is not None:
            data = {CONF_KIND: KIND_MJPEG, **_clean(user_input)}
            name = data.pop(CONF_NAME, DEFAULT_NAME)
            if not valid_http_url(data.get(CONF_URL)):
                errors[CONF_URL] = "invalid_url"
            else:
                await self.async_set_unique_id(normalize_url(data[CONF_URL]))
                self._abort_if_unique_id_configured()
                errors = await validate_mjpeg(self.hass, data)
            if not errors:
                return self.async_create_entry(title=name, data=data)
        return self.async_show_form(
            step_id="mjpeg",
            data_schema=self.add_suggested_values_to_schema(MJPEG_SCHEMA, user_input),
            errors=errors,
        )

    async def _stop_stream(self, entry: PrintCamConfigEntry) -> None:
        """Close a loaded entry's upstream so validating is not a 2nd client."""
        if entry.state is ConfigEntryState.LOADED:
            await entry.runtime_data.stream.async_stop_upstream()

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Change the camera's URLs, credentials or TLS checking."""
        entry: PrintCamConfigEntry = self._get_reconfigure_entry()
        errors: dict[str, str] = {}
        if user_input is not None:
            data = {CONF_KIND: KIND_MJPEG, **_clean(user_input)}
            if CONF_PASSWORD not in data and entry.data.get(CONF_PASSWORD):
                # An empty password field keeps the stored one.
                data[CONF_PASSWORD] = entry.data[CONF_PASSWORD]
            if not valid_http_url(data.get(CONF_URL)):
                errors[CONF_URL] = "invalid_url"
            else:
                await self.async_set_unique_id(normalize_url(data[CONF_URL]))
                self._abort_if_unique_id_mismatch()
                await self._stop_stream(entry)
                errors = await validate_mjpeg(self.hass, data)
            if not errors:
                return self.async_update_reload_and_abort(entry, data=data)
        suggested = user_input or {
            k: v for k, v in entry.data.items() if k not in (CONF_PASSWORD, CONF_KIND)
        }
        return self.async_show_form(
            step_id="reconfigure",
            data_schema=self.add_suggested_values_to_schema(
                RECONFIGURE_SCHEMA, suggested
            ),
            errors=errors,
            description_placeholders={"name": entry.title},
        )

    async def async_step_reauth(
        self, entry_data: Mapping[str, Any]
    ) -> ConfigFlowResult:
        """Start reauth: the printer refused the stored credentials."""
        return await self.async_step_reauth_confirm()

    async def async_step_reauth_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Ask for the username and password again."""
        entry: PrintCamConfigEntry = self._get_reauth_entry()
        errors: dict[str, str] = {}
        if user_input is not None:
            data = {
                k: v
                for k, v in entry.data.items()
                if k not in (CONF_USERNAME, CONF_PASSWORD)
            }
            data.update(_clean(user_input))
            await self._stop_stream(entry)
            errors = await validate_mjpeg(self.hass, data)
            if not errors:
                return self.async_update_reload_and_abort(entry, data=data)
        suggested = user_input or {CONF_USERNAME: entry.data.get(CONF_USERNAME, "")}
        return self.async_show_form(
            step_id="reauth_confirm",
            data_schema=self.add_suggested_values_to_schema(REAUTH_SCHEMA, suggested),
            errors=errors,
            description_placeholders={"name": entry.title},
        )


class PrintCamOptionsFlow(OptionsFlow):
    """Tune how the shared stream behaves."""

    async def async_step_init(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Show and store the stream options."""
        if user_input is not None:
            # Keep options owned by entities (keep_warm) intact.
            return self.async_create_entry(
                data={**self.config_entry.options, **user_input}
            )
        return self.async_show_form(
            step_id="init",
            data_schema=self.add_suggested_values_to_schema(
                OPTIONS_SCHEMA, self.config_entry.options
            ),
        )
