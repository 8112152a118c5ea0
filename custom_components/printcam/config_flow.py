"""Config, options, reconfigure and reauth flows for PrintCam.

Flow glue only: what each kind of printer asks for and how it is checked is
its family's (`families/`). The menu lists the registry's families; each
family's steps are ``<kind>`` (add), ``reauth_<kind>``, ``reconfigure_<kind>``
and its `confirm_steps`; discovered printers are confirmed in
``discovery_confirm``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import partial
import logging
from typing import Any

from homeassistant.config_entries import (
    SOURCE_INTEGRATION_DISCOVERY,
    SOURCE_ZEROCONF,
    ConfigEntryState,
    ConfigFlow,
    ConfigFlowResult,
    OptionsFlow,
)
from homeassistant.core import callback
from homeassistant.helpers.service_info.zeroconf import ZeroconfServiceInfo
from homeassistant.helpers.typing import DiscoveryInfoType
import voluptuous as vol

from .const import (
    CONF_RESTREAM,
    CONF_RESTREAM_ROTATE,
    CONF_RESTREAM_TOKEN,
    DOMAIN,
    VALIDATE_TIMEOUT,
)
from .data import PrintCamConfigEntry
from .families import (
    FAMILIES,
    Checked,
    ConfirmChange,
    Discovered,
    Family,
    FormError,
    family_for,
)
from .families.base import SOURCE_FORM_ERRORS
from .restream import new_token, restream_urls

# Re-exported: it was defined here and tests still import it from here.
from .sources import SourceError

_LOGGER = logging.getLogger(__name__)


async def _checked[T](check: Awaitable[T]) -> tuple[T | None, dict[str, str]]:
    """Await a family's check; return its result, or the form errors instead."""
    try:
        return await check, {}
    except FormError as err:
        return None, err.errors
    except SourceError as err:
        _LOGGER.debug("Checking the printer failed: %s", err)  # sources redact
        return None, {"base": _form_error(err)}
    except Exception:
        _LOGGER.exception("Unexpected error while checking the printer")
        return None, {"base": "unknown"}


def _form_error(err: SourceError) -> str:
    """Return the form's error key for a source error."""
    return err.reason if err.reason in SOURCE_FORM_ERRORS else "cannot_connect"


def _as_checked(result: dict[str, Any] | Checked) -> Checked:
    return result if isinstance(result, Checked) else Checked(result)


type Finish = Callable[
    [dict[str, Any]], Awaitable[tuple[ConfigFlowResult | None, dict[str, str]]]
]
type ShowForm = Callable[[dict[str, str]], ConfigFlowResult]


@dataclass(slots=True)
class _Authorizing:
    """A form waiting for the printer to grant a key (step ``authorize``)."""

    family: Family
    data: dict[str, Any]
    finish: Finish
    """Checks and stores the data with the key: the result, or form errors."""
    show_form: ShowForm
    """Shows the form the user came from, with errors."""
    task: asyncio.Task[dict[str, Any]] | None = None
    errors: dict[str, str] | None = None


class PrintCamConfigFlow(ConfigFlow, domain=DOMAIN):
    """Add a printer's camera."""

    VERSION = 1
    MINOR_VERSION = 2  # 1.2: no credentials in MJPEG unique ids

    _discovered: tuple[Family, Discovered]
    _change: ConfirmChange
    _authorizing: _Authorizing | None = None
    _move: tuple[Family, PrintCamConfigEntry, dict[str, Any]]

    def __init__(self) -> None:
        """Give every family of the registry its steps.

        Home Assistant runs step ``x`` as the method ``async_step_x``.
        """
        for family in FAMILIES.values():
            steps = {
                family.kind: self._async_step_add,
                f"reauth_{family.kind}": self._async_step_reauth,
                f"reconfigure_{family.kind}": self._async_step_reconfigure,
                **dict.fromkeys(family.confirm_steps, self._async_step_confirm),
            }
            # A family's own texts for a discovered printer's form.
            setattr(
                self,
                f"async_step_discovery_confirm_{family.kind}",
                self.async_step_discovery_confirm,
            )
            for step_id, step in steps.items():
                setattr(self, f"async_step_{step_id}", partial(step, family))

    @staticmethod
    @callback
    def async_get_options_flow(config_entry: PrintCamConfigEntry) -> OptionsFlow:
        """Return the options flow."""
        return PrintCamOptionsFlow()

    async def _stop_stream(self, entry: PrintCamConfigEntry) -> None:
        """Close a loaded entry's upstreams so checking is not a second client."""
        if entry.state is ConfigEntryState.LOADED:
            for camera in entry.runtime_data.cameras:
                await camera.stream.async_stop_upstream()

    # --- adding a printer -------------------------------------------------------

    async def async_step_user(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Ask which kind of printer camera to add."""
        return self.async_show_menu(step_id="user", menu_options=list(FAMILIES))

    async def _async_step_add(
        self, family: Family, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Add a printer from what the user entered (step ``<kind>``)."""
        errors: dict[str, str] = {}
        if user_input is not None:
            try:
                draft = family.parse_user(user_input)
            except FormError as err:
                errors = err.errors
            else:
                if (unique_id := family.unique_id(draft.data)) is not None:
                    await self.async_set_unique_id(unique_id)
                    self._abort_if_unique_id_configured()
                finish = partial(self._async_add_checked, family, draft.title)
                if family.needs_authorization(draft.data):
                    return await self._async_authorize(
                        family,
                        draft.data,
                        finish,
                        lambda errors: self._add_form(family, errors, user_input),
                    )
                result, errors = await finish(draft.data)
                if result is not None:
                    return result
        return self._add_form(family, errors, user_input)

    def _add_form(
        self,
        family: Family,
        errors: dict[str, str],
        user_input: Mapping[str, Any] | None = None,
    ) -> ConfigFlowResult:
        return self.async_show_form(
            step_id=family.kind,
            data_schema=self.add_suggested_values_to_schema(
                family.user_schema, user_input
            ),
            errors=errors,
        )

    async def _async_add_checked(
        self, family: Family, title: str, data: dict[str, Any]
    ) -> tuple[ConfigFlowResult | None, dict[str, str]]:
        """Check a new printer's data; create its entry, or return form errors."""
        result, errors = await _checked(
            family.async_check(self.hass, data, VALIDATE_TIMEOUT)
        )
        if result is None:
            return None, errors
        checked = _as_checked(result)
        if checked.unique_id is not None:
            await self.async_set_unique_id(checked.unique_id)
            self._abort_if_unique_id_configured()
        entry = self.async_create_entry(
            title=checked.title or title,
            data=checked.data,
            description="webcams" if checked.summary else None,
            description_placeholders=checked.summary,
        )
        return entry, {}

    # --- a key the printer grants (OctoPrint's Application Keys) -------------------

    async def _async_authorize(
        self, family: Family, data: dict[str, Any], finish: Finish, show_form: ShowForm
    ) -> ConfigFlowResult:
        self._authorizing = _Authorizing(family, data, finish, show_form)
        return await self.async_step_authorize()

    async def async_step_authorize(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Wait while the user approves PrintCam's key request in the printer's UI."""
        pending = self._authorizing
        assert pending is not None  # noqa: S101 - only reached through _async_authorize
        if pending.task is None:
            pending.task = self.hass.async_create_task(
                pending.family.async_authorize(self.hass, pending.data),
                "printcam authorize",
                eager_start=False,
            )
        if not pending.task.done():
            return self.async_show_progress(
                step_id="authorize",
                progress_action="authorize",
                progress_task=pending.task,
                description_placeholders={"host": str(pending.data.get("host", ""))},
            )
        try:
            pending.data = pending.task.result()
        except SourceError as err:
            _LOGGER.debug("No key granted: %s", err)
            pending.errors = {"base": _form_error(err)}
        except Exception:
            _LOGGER.exception("Unexpected error while asking for a key")
            pending.errors = {"base": "unknown"}
        return self.async_show_progress_done(next_step_id="authorized")

    async def async_step_authorized(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Go on with the granted key, or back to the form saying why not."""
        pending = self._authorizing
        assert pending is not None  # noqa: S101 - only reached after authorize
        self._authorizing = None
        if pending.errors:
            return pending.show_form(pending.errors)
        result, errors = await pending.finish(pending.data)
        return result if result is not None else pending.show_form(errors)

    @callback
    def async_remove(self) -> None:
        """Stop asking for a key when the flow goes away."""
        if self._authorizing is not None and self._authorizing.task is not None:
            self._authorizing.task.cancel()

    async def async_step_integration_discovery(
        self, discovery_info: DiscoveryInfoType
    ) -> ConfigFlowResult:
        """Handle a printer PrintCam's own listener found (Bambu Lab UDP)."""
        return await self._async_step_discovered(
            SOURCE_INTEGRATION_DISCOVERY, discovery_info
        )

    async def async_step_zeroconf(
        self, discovery_info: ZeroconfServiceInfo
    ) -> ConfigFlowResult:
        """Handle a printer announced over zeroconf."""
        return await self._async_step_discovered(SOURCE_ZEROCONF, discovery_info)

    async def _async_step_discovered(
        self, source: str, info: object
    ) -> ConfigFlowResult:
        """Hand a discovered printer to the family it belongs to."""
        for family in FAMILIES.values():
            if (found := family.discovered(source, info)) is not None:
                return await self._async_step_found(family, found)
        return self.async_abort(reason="not_supported")

    async def _async_step_found(
        self, family: Family, found: Discovered
    ) -> ConfigFlowResult:
        """Refresh a known printer's entry, or ask to add a new one.

        Before the form is shown the family looks at the printer (without
        sending a credential) and may abort: something else announced it.
        """
        await self.async_set_unique_id(found.unique_id)
        entry = self.hass.config_entries.async_entry_for_domain_unique_id(
            DOMAIN, found.unique_id
        )
        if entry is not None and not found.updates:
            # A known printer announced elsewhere: an announcement is anyone's
            # to send, so a move is only offered (after the new address told
            # the same identity, without the key), never made silently.
            moved = await family.async_verify_move(self.hass, entry.data, found)
            if moved is not None and moved != dict(entry.data):
                self._move = (family, entry, moved)
                self.context["title_placeholders"] = {"name": entry.title}
                return await self.async_step_move_confirm()
        self._abort_if_unique_id_configured(updates=found.updates)
        if found.abort_reason is None:
            found = await family.async_inspect_discovered(
                self.hass, found, VALIDATE_TIMEOUT
            )
        if found.abort_reason is not None:
            return self.async_abort(reason=found.abort_reason)
        self._discovered = (family, found)
        self.context["title_placeholders"] = {"name": found.title}
        return await self.async_step_discovery_confirm()

    async def async_step_discovery_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Ask only for what discovery could not tell (an access code)."""
        family, found = self._discovered
        errors: dict[str, str] = {}
        if user_input is not None:
            try:
                draft = family.parse_discovery(found, user_input)
            except FormError as err:
                errors = err.errors
            else:
                finish = partial(self._async_add_checked, family, draft.title)
                if family.needs_authorization(draft.data):
                    return await self._async_authorize(
                        family,
                        draft.data,
                        finish,
                        lambda errors: self._discovery_form(errors, user_input),
                    )
                result, errors = await finish(draft.data)
                if result is not None:
                    return result
        return self._discovery_form(errors, user_input)

    def _discovery_form(
        self, errors: dict[str, str], user_input: Mapping[str, Any] | None = None
    ) -> ConfigFlowResult:
        family, found = self._discovered
        return self.async_show_form(
            step_id=found.confirm_step,
            data_schema=self.add_suggested_values_to_schema(
                family.discovery_schema(found), user_input
            ),
            errors=errors,
            description_placeholders=found.placeholders,
        )

    async def async_step_move_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Ask before following a configured printer to an announced new address.

        On confirm the printer is checked there with its key; the entry is
        moved only if it is still the same printer.
        """
        family, entry, moved = self._move
        errors: dict[str, str] = {}
        if user_input is not None:
            await self._stop_stream(entry)
            result, errors = await _checked(
                family.async_check(self.hass, moved, VALIDATE_TIMEOUT)
            )
            if result is not None:
                checked = _as_checked(result)
                if checked.unique_id not in (None, entry.unique_id):
                    return self.async_abort(reason="unique_id_mismatch")
                self.hass.config_entries.async_update_entry(entry, data=checked.data)
                self.hass.config_entries.async_schedule_reload(entry.entry_id)
                return self.async_abort(reason="moved")
        return self.async_show_form(
            step_id="move_confirm",
            data_schema=vol.Schema({}),
            errors=errors,
            description_placeholders={
                "name": entry.title,
                "old": family.address(entry.data),
                "new": family.address(moved),
            },
        )

    # --- fixing a printer's entry ---------------------------------------------------

    async def async_step_reauth(
        self, entry_data: Mapping[str, Any]
    ) -> ConfigFlowResult:
        """Start reauth: the printer refused the stored credentials."""
        return await self._async_step_reauth(family_for(entry_data))

    async def _async_step_reauth(
        self, family: Family, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Ask for new credentials (step ``reauth_<kind>``)."""
        entry: PrintCamConfigEntry = self._get_reauth_entry()
        errors: dict[str, str] = {}
        if user_input is not None:
            try:
                data = family.parse_reauth(entry.data, user_input)
            except FormError as err:
                errors = err.errors
            else:
                finish = partial(self._async_update_checked, family, entry)
                if family.needs_authorization(data):
                    return await self._async_authorize(
                        family,
                        data,
                        finish,
                        lambda errors: self._reauth_form(family, errors, user_input),
                    )
                result, errors = await finish(data)
                if result is not None:
                    return result
        return self._reauth_form(family, errors, user_input)

    def _reauth_form(
        self,
        family: Family,
        errors: dict[str, str],
        user_input: Mapping[str, Any] | None = None,
    ) -> ConfigFlowResult:
        entry: PrintCamConfigEntry = self._get_reauth_entry()
        return self.async_show_form(
            step_id=f"reauth_{family.kind}",
            data_schema=self.add_suggested_values_to_schema(
                family.reauth_schema, user_input or family.reauth_suggested(entry.data)
            ),
            errors=errors,
            description_placeholders={"name": entry.title},
        )

    async def _async_update_checked(
        self,
        family: Family,
        entry: PrintCamConfigEntry,
        data: dict[str, Any],
        check: Awaitable[dict[str, Any] | Checked | ConfirmChange] | None = None,
    ) -> tuple[ConfigFlowResult | None, dict[str, str]]:
        """Check an entry's new data (no second client: its stream stops first).

        Stores it and reloads the entry, or returns the form's errors. A
        printer that tells its identity must still be the entry's printer.
        """
        await self._stop_stream(entry)
        result, errors = await _checked(
            check or family.async_check(self.hass, data, VALIDATE_TIMEOUT)
        )
        if result is None:
            return None, errors
        if isinstance(result, ConfirmChange):
            self._change = result
            return await self._async_step_confirm(family), {}
        checked = _as_checked(result)
        if checked.unique_id is not None and checked.unique_id != entry.unique_id:
            return self.async_abort(reason="unique_id_mismatch"), {}
        return self.async_update_reload_and_abort(entry, data=checked.data), {}

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Start reconfiguring: the form of the entry's family."""
        entry: PrintCamConfigEntry = self._get_reconfigure_entry()
        return await self._async_step_reconfigure(family_for(entry.data))

    async def _async_step_reconfigure(
        self, family: Family, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Change the entry's settings (step ``reconfigure_<kind>``)."""
        entry: PrintCamConfigEntry = self._get_reconfigure_entry()
        errors: dict[str, str] = {}
        if user_input is not None:
            try:
                data = family.parse_reconfigure(entry.data, user_input)
            except FormError as err:
                errors = err.errors
            else:
                if (unique_id := family.unique_id(data)) is not None:
                    await self.async_set_unique_id(unique_id)
                    self._abort_if_unique_id_mismatch()
                check = family.async_check_reconfigure(
                    self.hass, entry.data, data, VALIDATE_TIMEOUT
                )
                result, errors = await self._async_update_checked(
                    family, entry, data, check
                )
                if result is not None:
                    return result
        return self.async_show_form(
            step_id=f"reconfigure_{family.kind}",
            data_schema=self.add_suggested_values_to_schema(
                family.reconfigure_schema,
                user_input or family.reconfigure_suggested(entry.data),
            ),
            errors=errors,
            description_placeholders={"name": entry.title},
        )

    async def _async_step_confirm(
        self, family: Family, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Show a change reconfigure found (a new certificate); store it if accepted."""
        entry: PrintCamConfigEntry = self._get_reconfigure_entry()
        change = self._change
        errors: dict[str, str] = {}
        if user_input is not None:
            result, errors = await self._async_update_checked(
                family, entry, change.data
            )
            if result is not None:
                return result
        return self.async_show_form(
            step_id=change.step_id,
            data_schema=vol.Schema({}),
            errors=errors,
            description_placeholders={"name": entry.title, **change.placeholders},
        )


class PrintCamOptionsFlow(OptionsFlow):
    """Tune how the shared stream behaves (and its family's source)."""

    async def async_step_init(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Show and store the options of the entry's family."""
        entry = self.config_entry
        if user_input is not None:
            # Keep options owned by entities (keep_warm) intact.
            options = {**entry.options, **user_input}
            rotate = options.pop(CONF_RESTREAM_ROTATE, False)
            if not options.get(CONF_RESTREAM):
                options.pop(CONF_RESTREAM_TOKEN, None)  # its URLs stop
            elif rotate or not options.get(CONF_RESTREAM_TOKEN):
                options[CONF_RESTREAM_TOKEN] = new_token()
            return self.async_create_entry(data=options)
        urls = restream_urls(self.hass, entry, entry.options)
        return self.async_show_form(
            step_id="init",
            data_schema=self.add_suggested_values_to_schema(
                family_for(entry.data).options_schema(entry.data),
                {**entry.options, CONF_RESTREAM_ROTATE: False},
            ),
            description_placeholders={
                "restream_urls": "\n".join(f"- `{url}`" for url in urls) or "(off)"
            },
        )
