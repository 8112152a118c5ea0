"""Switches of a printer's camera stream: keep warm, the clip buffer.

A switch's state lives in the entry's options (`keep_warm`, `clip_buffer`), so it
survives restarts and the options flow keeps it; the entry's update
listener (startup.py) applies it to the stream live.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from homeassistant.components.switch import SwitchEntity, SwitchEntityDescription
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .const import CONF_CLIP_BUFFER, CONF_KEEP_WARM, DEFAULT_KEEP_WARM
from .data import CameraData, PrintCamConfigEntry
from .entity import PrintCamEntity
from .stream import camera_option

# Switching writes the entry's options only; nothing to poll or serialise.
PARALLEL_UPDATES = 0


@dataclass(frozen=True, kw_only=True)
class PrintCamSwitchEntityDescription(SwitchEntityDescription):
    """Describes a switch stored as a boolean entry option."""

    option: str
    default: bool


SWITCHES: tuple[PrintCamSwitchEntityDescription, ...] = (
    PrintCamSwitchEntityDescription(
        key="keep_warm",
        translation_key="keep_warm",
        entity_category=EntityCategory.CONFIG,
        option=CONF_KEEP_WARM,
        default=DEFAULT_KEEP_WARM,
    ),
    # The last minute of frames in memory, for clips that start before the
    # moment asked for (it keeps the upstream open while on).
    PrintCamSwitchEntityDescription(
        key="clip_buffer",
        translation_key="clip_buffer",
        entity_category=EntityCategory.CONFIG,
        option=CONF_CLIP_BUFFER,
        default=False,
    ),
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: PrintCamConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the stream's switches."""
    async_add_entities(
        PrintCamSwitch(entry, description, camera)
        for camera in entry.runtime_data.cameras
        for description in SWITCHES
    )


class PrintCamSwitch(PrintCamEntity, SwitchEntity):
    """A switch backed by one of the entry's options."""

    entity_description: PrintCamSwitchEntityDescription
    _attr_should_poll = False

    def __init__(
        self,
        entry: PrintCamConfigEntry,
        description: PrintCamSwitchEntityDescription,
        camera: CameraData,
    ) -> None:
        """Attach the switch to the printer's device."""
        super().__init__(entry, description.key, camera)
        self.entity_description = description
        self._name_for_webcam(description.translation_key)
        self._option = camera_option(description.option, camera.key)

    async def async_added_to_hass(self) -> None:
        """Follow the entry, so option changes made elsewhere show."""
        await super().async_added_to_hass()
        self.async_on_remove(self.entry.add_update_listener(self._async_entry_updated))

    async def _async_entry_updated(
        self, hass: HomeAssistant, entry: PrintCamConfigEntry
    ) -> None:
        self.async_write_ha_state()

    @property
    def is_on(self) -> bool:
        """Return the option's current value."""
        description = self.entity_description
        return bool(self.entry.options.get(self._option, description.default))

    async def async_turn_on(self, **kwargs: Any) -> None:
        """Store the option as on; the update listener applies it."""
        self._set(True)

    async def async_turn_off(self, **kwargs: Any) -> None:
        """Store the option as off; the update listener applies it."""
        self._set(False)

    def _set(self, value: bool) -> None:
        self.hass.config_entries.async_update_entry(
            self.entry, options={**self.entry.options, self._option: value}
        )
        self.async_write_ha_state()
