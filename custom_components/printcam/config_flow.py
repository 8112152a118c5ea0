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
from homeassistant.data_entry_flow import section
from homeassistant.helpers.selector import (
    BooleanSelector,
    NumberSelector,
    NumberSelectorConfig,
    NumberSelectorMode,
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
    TextSelector,
    TextSelectorConfig,
    TextSelectorType,
)
import voluptuous as vol
import yarl

from .connection import create_bambu_source, create_source, valid_http_url
from .const import (
    BAMBU_ACCESS_CODE_LENGTH,
    BAMBU_CHAMBER_MODELS,
    BAMBU_RTSPS_MODELS,
    CONF_ACCESS_CODE,
    CONF_CERT_SHA256,
    CONF_HOST,
    CONF_IDLE_GRACE_S,
    CONF_KIND,
    CONF_MAX_FPS,
    CONF_MODEL,
    CONF_NAME,
    CONF_PASSWORD,
    CONF_PORT,
    CONF_SERIAL,
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
    KIND_BAMBU,
    KIND_MJPEG,
    VALIDATE_TIMEOUT,
)
from .data import PrintCamConfigEntry
from .sources import SourceError
from .sources.bambu_chamber import DEFAULT_PORT as BAMBU_PORT, fetch_certificate

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


CONF_ADVANCED = "advanced"
_BAMBU_MODEL = SelectSelector(
    SelectSelectorConfig(
        options=[*BAMBU_CHAMBER_MODELS, *BAMBU_RTSPS_MODELS],
        mode=SelectSelectorMode.DROPDOWN,
        translation_key="model",
    )
)
_PORT = NumberSelector(
    NumberSelectorConfig(min=1, max=65535, step=1, mode=NumberSelectorMode.BOX)
)
_ADVANCED = section(
    vol.Schema({vol.Required(CONF_PORT, default=BAMBU_PORT): _PORT}),
    {"collapsed": True},
)
BAMBU_SCHEMA = vol.Schema(
    {
        vol.Required(CONF_HOST): _TEXT,
        vol.Required(CONF_SERIAL): _TEXT,
        vol.Required(CONF_ACCESS_CODE): _PASSWORD,
        vol.Required(CONF_MODEL, default="P1S"): _BAMBU_MODEL,
        vol.Required(CONF_ADVANCED): _ADVANCED,
    }
)
BAMBU_RECONFIGURE_SCHEMA = vol.Schema(
    {vol.Required(CONF_HOST): _TEXT, vol.Required(CONF_ADVANCED): _ADVANCED}
)
ACCESS_CODE_SCHEMA = vol.Schema({vol.Required(CONF_ACCESS_CODE): _PASSWORD})
DISCOVERY_SCHEMA_WITH_MODEL = ACCESS_CODE_SCHEMA.extend(
    {vol.Required(CONF_MODEL): _BAMBU_MODEL}
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
_FORM_ERRORS = (
    "cannot_connect",
    "invalid_auth",
    "not_mjpeg",
    "timeout",
    "camera_port_closed",
    "invalid_serial",
)


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
        return _source_error(err)
    except Exception:
        _LOGGER.exception("Unexpected error while checking the camera")
        return {"base": "unknown"}
    return {}


def _bambu_data(
    host: str,
    port: int,
    serial: str,
    access_code: str,
    model: str,
    cert_sha256: str,
) -> dict[str, Any]:
    """Return a Bambu entry's data; the port only when it is not 6000."""
    data: dict[str, Any] = {
        CONF_KIND: KIND_BAMBU,
        CONF_HOST: host,
        CONF_SERIAL: serial,
        CONF_ACCESS_CODE: access_code,
        CONF_MODEL: model,
        CONF_CERT_SHA256: cert_sha256,
    }
    if port != BAMBU_PORT:
        data[CONF_PORT] = port
    return data


def _bambu_field_errors(access_code: str, model: str | None) -> dict[str, str]:
    """Check what needs no connection: the code's length, the model."""
    if model in BAMBU_RTSPS_MODELS:
        return {CONF_MODEL: "rtsps_model"}
    if len(access_code) != BAMBU_ACCESS_CODE_LENGTH:
        return {CONF_ACCESS_CODE: "invalid_access_code"}
    return {}


def _source_error(err: SourceError) -> dict[str, str]:
    return {"base": err.reason if err.reason in _FORM_ERRORS else "cannot_connect"}


async def validate_bambu(
    data: Mapping[str, Any], *, pin: str | None
) -> tuple[dict[str, str], str]:
    """Log in and wait for one frame; return form errors and the fingerprint.

    With `pin` None the certificate is captured (trust on first use) in the
    same connection; otherwise the printer must present the pinned one.
    """
    try:
        source = create_bambu_source(data, cert_sha256=pin)
        await source.fetch_frame(VALIDATE_TIMEOUT)
    except SourceError as err:
        return _source_error(err), ""
    except Exception:
        _LOGGER.exception("Unexpected error while checking the printer")
        return {"base": "unknown"}, ""
    cert = source.peer_certificate
    if cert is None:  # pragma: no cover - every connection that logs in sets it
        return {"base": "cannot_connect"}, ""
    return {}, cert.sha256


class PrintCamConfigFlow(ConfigFlow, domain=DOMAIN):
    """Add a printer's camera."""

    VERSION = 1
    MINOR_VERSION = 1

    def __init__(self) -> None:
        """Start with nothing discovered."""
        self._discovered: dict[str, Any] = {}
        self._pending: dict[str, Any] = {}

    @staticmethod
    @callback
    def async_get_options_flow(config_entry: PrintCamConfigEntry) -> OptionsFlow:
        """Return the options flow."""
        return PrintCamOptionsFlow()

    async def async_step_user(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Ask which kind of printer camera to add."""
        return self.async_show_menu(
            step_id="user", menu_options=[KIND_BAMBU, KIND_MJPEG]
        )

    # --- Bambu Lab ------------------------------------------------------------------

    async def async_step_bambu(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Add a Bambu Lab P1/A1 printer by address, serial and access code."""
        errors: dict[str, str] = {}
        if user_input is not None:
            host = user_input[CONF_HOST].strip()
            serial = user_input[CONF_SERIAL].strip().upper()
            code = user_input[CONF_ACCESS_CODE].strip()
            model = user_input[CONF_MODEL]
            port = int(user_input[CONF_ADVANCED][CONF_PORT])
            errors = _bambu_field_errors(code, model)
            if not errors:
                await self.async_set_unique_id(serial)
                self._abort_if_unique_id_configured()
                data = _bambu_data(host, port, serial, code, model, "")
                errors, data[CONF_CERT_SHA256] = await validate_bambu(data, pin=None)
                if not errors:
                    return self.async_create_entry(
                        title=f"Bambu Lab {model}", data=data
                    )
        return self.async_show_form(
            step_id="bambu",
            data_schema=self.add_suggested_values_to_schema(BAMBU_SCHEMA, user_input),
            errors=errors,
        )

    async def async_step_integration_discovery(
        self, discovery_info: dict[str, Any]
    ) -> ConfigFlowResult:
        """Handle a Bambu printer's UDP announcement."""
        serial = str(discovery_info[CONF_SERIAL]).upper()
        host = str(discovery_info[CONF_HOST])
        await self.async_set_unique_id(serial)
        self._abort_if_unique_id_configured(updates={CONF_HOST: host})
        model = discovery_info.get(CONF_MODEL)
        if model in BAMBU_RTSPS_MODELS:
            return self.async_abort(reason="rtsps_model")
        name = discovery_info.get("name") or f"Bambu Lab {model or serial}"
        self._discovered = {
            CONF_HOST: host,
            CONF_SERIAL: serial,
            CONF_MODEL: model if model in BAMBU_CHAMBER_MODELS else None,
            "name": name,
        }
        self.context["title_placeholders"] = {"name": name}
        return await self.async_step_discovery_confirm()

    async def async_step_discovery_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Ask only for the access code (and the model if it was unknown)."""
        info = self._discovered
        schema = (
            DISCOVERY_SCHEMA_WITH_MODEL
            if info[CONF_MODEL] is None
            else ACCESS_CODE_SCHEMA
        )
        errors: dict[str, str] = {}
        if user_input is not None:
            code = user_input[CONF_ACCESS_CODE].strip()
            model = info[CONF_MODEL] or user_input[CONF_MODEL]
            errors = _bambu_field_errors(code, model)
            if not errors:
                data = _bambu_data(
                    info[CONF_HOST], BAMBU_PORT, info[CONF_SERIAL], code, model, ""
                )
                errors, data[CONF_CERT_SHA256] = await validate_bambu(data, pin=None)
                if not errors:
                    return self.async_create_entry(title=info["name"], data=data)
        return self.async_show_form(
            step_id="discovery_confirm",
            data_schema=self.add_suggested_values_to_schema(schema, user_input),
            errors=errors,
            description_placeholders={
                "name": info["name"],
                "host": info[CONF_HOST],
                "serial": info[CONF_SERIAL],
            },
        )

    async def async_step_reconfigure_bambu(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Change a Bambu printer's address; re-pin a changed certificate."""
        entry: PrintCamConfigEntry = self._get_reconfigure_entry()
        errors: dict[str, str] = {}
        if user_input is not None:
            host = user_input[CONF_HOST].strip()
            port = int(user_input[CONF_ADVANCED][CONF_PORT])
            data = _bambu_data(
                host,
                port,
                entry.data[CONF_SERIAL],
                entry.data[CONF_ACCESS_CODE],
                entry.data[CONF_MODEL],
                entry.data[CONF_CERT_SHA256],
            )
            await self._stop_stream(entry)
            try:
                cert = await fetch_certificate(host, port, VALIDATE_TIMEOUT)
            except SourceError as err:
                errors = _source_error(err)
            else:
                if (
                    cert.common_name
                    and cert.common_name.upper() != entry.data[CONF_SERIAL].upper()
                ):
                    errors = {"base": "invalid_serial"}
                elif cert.sha256 != entry.data[CONF_CERT_SHA256]:
                    # Show the change and let the user accept it explicitly.
                    self._pending = {**data, CONF_CERT_SHA256: cert.sha256}
                    return await self.async_step_reconfigure_certificate()
                else:
                    errors, _cert = await validate_bambu(data, pin=cert.sha256)
                    if not errors:
                        return self.async_update_reload_and_abort(entry, data=data)
        suggested = user_input or {
            CONF_HOST: entry.data[CONF_HOST],
            CONF_ADVANCED: {CONF_PORT: entry.data.get(CONF_PORT, BAMBU_PORT)},
        }
        return self.async_show_form(
            step_id="reconfigure_bambu",
            data_schema=self.add_suggested_values_to_schema(
                BAMBU_RECONFIGURE_SCHEMA, suggested
            ),
            errors=errors,
            description_placeholders={"name": entry.title},
        )

    async def async_step_reconfigure_certificate(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Show the old and new certificate fingerprints; pin the new one."""
        entry: PrintCamConfigEntry = self._get_reconfigure_entry()
        data = self._pending
        errors: dict[str, str] = {}
        if user_input is not None:
            errors, _cert = await validate_bambu(data, pin=data[CONF_CERT_SHA256])
            if not errors:
                return self.async_update_reload_and_abort(entry, data=data)
        return self.async_show_form(
            step_id="reconfigure_certificate",
            data_schema=vol.Schema({}),
            errors=errors,
            description_placeholders={
                "name": entry.title,
                "old": entry.data[CONF_CERT_SHA256],
                "new": data[CONF_CERT_SHA256],
            },
        )

    async def async_step_reauth_bambu(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Ask for the printer's new access code."""
        entry: PrintCamConfigEntry = self._get_reauth_entry()
        errors: dict[str, str] = {}
        if user_input is not None:
            code = user_input[CONF_ACCESS_CODE].strip()
            errors = _bambu_field_errors(code, entry.data[CONF_MODEL])
            if not errors:
                data = {**entry.data, CONF_ACCESS_CODE: code}
                await self._stop_stream(entry)
                errors, _cert = await validate_bambu(
                    data, pin=entry.data[CONF_CERT_SHA256]
                )
                if not errors:
                    return self.async_update_reload_and_abort(entry, data=data)
        return self.async_show_form(
            step_id="reauth_bambu",
            data_schema=ACCESS_CODE_SCHEMA,
            errors=errors,
            description_placeholders={"name": entry.title},
        )

    # --- MJPEG --------------------------------------------------------------------------

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
        if entry.data.get(CONF_KIND) == KIND_BAMBU:
            return await self.async_step_reconfigure_bambu()
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
        if entry_data.get(CONF_KIND) == KIND_BAMBU:
            return await self.async_step_reauth_bambu()
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
