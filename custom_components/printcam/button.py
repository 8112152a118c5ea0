"""Button of a printer's camera stream: restart the upstream connection."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
import logging

from homeassistant.components.button import (
    ButtonDeviceClass,
    ButtonEntity,
    ButtonEntityDescription,
)
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .data import CameraData, PrintCamConfigEntry
from .entity import PrintCamEntity
from .stream import PrintCamStream

_LOGGER = logging.getLogger(__name__)

# A press acts on the local stream at once; nothing to poll or serialise.
PARALLEL_UPDATES = 0


@dataclass(frozen=True, kw_only=True)
class PrintCamButtonEntityDescription(ButtonEntityDescription):
    """Describes a button and what pressing it does to the stream."""

    press_fn: Callable[[PrintCamStream], bool]
    """Act on the stream; return False when there was nothing to do."""


BUTTONS: tuple[PrintCamButtonEntityDescription, ...] = (
    # Some printer cameras wedge (connected, no frames) until reconnected.
    PrintCamButtonEntityDescription(
        key="restart_stream",
        translation_key="restart_stream",
        device_class=ButtonDeviceClass.RESTART,
        entity_category=EntityCategory.CONFIG,
        press_fn=lambda stream: stream.restart(),
    ),
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: PrintCamConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the stream's buttons."""
    async_add_entities(
        PrintCamButton(entry, description, camera)
        for camera in entry.runtime_data.cameras
        for description in BUTTONS
    )


class PrintCamButton(PrintCamEntity, ButtonEntity):
    """A button acting on the printer's shared stream."""

    entity_description: PrintCamButtonEntityDescription
    _attr_should_poll = False

    def __init__(
        self,
        entry: PrintCamConfigEntry,
        description: PrintCamButtonEntityDescription,
        camera: CameraData,
    ) -> None:
        """Attach the button to the printer's device."""
        super().__init__(entry, description.key, camera)
        self.entity_description = description
        self._name_for_webcam(description.translation_key)

    async def async_press(self) -> None:
        """Act on the stream (an idle stream has no connection to restart)."""
        if not self.entity_description.press_fn(self.shared_stream):
            _LOGGER.debug(
                "%s: nothing to %s: the stream is idle",
                self.entity_id,
                self.entity_description.key,
            )
