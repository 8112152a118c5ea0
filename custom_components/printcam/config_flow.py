"""Config, options, reconfigure and reauth flows for PrintCam.

Flow glue only: what each kind of printer asks for and how it is checked is
its family's (`families/`). The menu lists the registry's families; each
family's steps are ``<kind>`` (add), ``reauth_<kind>``, ``reconfigure_<kind>``
and its `confirm_steps`; discovered printers are confirmed in
``discovery_confirm``. A family that `searches` first looks for printers
(progress step ``<kind>_search``) and lists them (``<kind>_pick``), with
entry by hand (``<kind>``) as the fallback.
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
from homeassistant.helpers.selector import (
    SelectOptionDict,
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
)
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


def _found_label(found: Discovered) -> str:
    """Return how a printer found on the network is listed."""
    place = found.placeholders
    name, serial, host = place.get("name"), place.get("serial"), place.get("host")
    return f"{name} · {serial} · {host}" if serial and host else found.title


def _as_checked(result: dict[str, Any] | Checked) -> Checked:
    return result if isinstance(result, Checked) else Checked(result)


type Finish = Callable[
    [dict[str, Any]], Awaitable[tuple[ConfigFlowResult | None, dict[str, str]]]
]
type ShowForm = Callable[[dict[str, str]], ConfigFlowResult]


PICK_MANUAL = "manual"
"""The pick list's choice for entering a printer by hand."""


@dataclass(slots=True)
class _Search:
    """The add step's look for printers on the network."""

    task: asyncio.Task[list[Discovered]]
    found: list[Discovered] | None = None


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
    _search: _Search | None = None
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
            if family.searches:
                steps[f"{family.kind}_search"] = self._async_step_search
                steps[f"{family.kind}_pick"] = self._async_step_pick
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
        if user_input is None and family.searches and self._search is None:
            return await self._async_step_search(family)
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

    # --- printers found on the network (Bambu Lab) ------------------------------

    async def _async_step_search(
        self, family: Family, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Look for printers a few seconds (step ``<kind>_search``)."""
        search = self._search
        if search is None:
            search = self._search = _Search(
                self.hass.async_create_task(
                    family.async_search(self.hass),
                    f"printcam search {family.kind}",
                    eager_start=False,
                )
            )
        if not search.task.done():
            return self.async_show_progress(
                step_id=f"{family.kind}_search",
                progress_action=f"{family.kind}_search",
                progress_task=search.task,
            )
        try:
            found = search.task.result()
        except Exception:
            _LOGGER.exception("Looking for %s printers failed", family.kind)
            found = []
        # Printers already added are not offered again.
        search.found = [
            item
            for item in found
            if self.hass.config_entries.async_entry_for_domain_unique_id(
                DOMAIN, item.unique_id
            )
            is None
        ]
        if not search.found:
            return self.async_show_progress_done(next_step_id=family.kind)
        return self.async_show_progress_done(next_step_id=f"{family.kind}_pick")

    async def _async_step_pick(
        self, family: Family, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Offer the printers found, or entry by hand (step ``<kind>_pick``)."""
        assert self._search is not None  # noqa: S101 - reached after the search
        found = {item.unique_id: item for item in self._search.found or []}
        if user_input is not None:
            choice = found.get(user_input["printer"])
            if choice is None:  # by hand
                return self._add_form(family, {})
            return await self._async_step_found(family, choice, picked=True)
        options = [
            SelectOptionDict(value=unique_id, label=_found_label(item))
            for unique_id, item in found.items()
        ]
        options.append(SelectOptionDict(value=PICK_MANUAL, label=PICK_MANUAL))
        return self.async_show_form(
            step_id=f"{family.kind}_pick",
            data_schema=vol.Schema(
                {
                    vol.Required("printer", default=options[0]["value"]): (
                        SelectSelector(
                            SelectSelectorConfig(
                                options=options,
                                mode=SelectSelectorMode.LIST,
                                translation_key=f"{family.kind}_pick",
                            )
                        )
                    )
                }
            ),
        )

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
        self, family: Family, found: Discovered, *, picked: bool = False
    ) -> ConfigFlowResult:
        """Refresh a known printer's entry, or ask to add a new one.

        Before the form is shown the family looks at the printer (without
        sending a credential) and may abort: something else announced it.
        `picked`: the user chose it from the add step's list; a discovery
        flow for it may be waiting too (it goes when this one adds it).
        """
        await self.async_set_unique_id(found.unique_id, raise_on_progress=not picked)
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
