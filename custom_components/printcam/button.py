"""Buttons of a printer's camera stream: restart the upstream, record a clip."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
import logging

from homeassistant.components.button import (
    ButtonDeviceClass,
    ButtonEntity,
    ButtonEntityDescription,
)
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .const import DOMAIN
from .data import CameraData, PrintCamConfigEntry
from .entity import PrintCamEntity
from .recorder import DEFAULT_CLIP_AFTER_S, RecordingError

_LOGGER = logging.getLogger(__name__)

# A press acts on the local stream at once; nothing to poll or serialise.
PARALLEL_UPDATES = 0


@dataclass(frozen=True, kw_only=True)
class PrintCamButtonEntityDescription(ButtonEntityDescription):
    """Describes a button and what pressing it does to the stream."""

    press_fn: Callable[[CameraData], Awaitable[bool]]
    """Act on the camera; return False when there was nothing to do."""


CLIP_BUTTON_BEFORE_S = 30.0
"""A pressed clip starts this long before the press (with the clip buffer on)."""


async def _restart(camera: CameraData) -> bool:
    return camera.stream.restart()


async def _record_clip(camera: CameraData) -> bool:
    """Record the clip buffer's last 30 s (when on) and the next 10 s."""
    recorder = camera.recorder
    before = CLIP_BUTTON_BEFORE_S if recorder.buffer is not None else 0.0
    try:
        await recorder.async_start_clip(before, DEFAULT_CLIP_AFTER_S)
    except RecordingError as err:
        raise HomeAssistantError(
            translation_domain=DOMAIN,
            translation_key="recording_failed",
            translation_placeholders={
                "name": recorder.printer,
                "folder": str(recorder.folder),
                "error": err.reason,
            },
        ) from err
    return True


BUTTONS: tuple[PrintCamButtonEntityDescription, ...] = (
    # Some printer cameras wedge (connected, no frames) until reconnected.
    PrintCamButtonEntityDescription(
        key="restart_stream",
        translation_key="restart_stream",
        device_class=ButtonDeviceClass.RESTART,
        entity_category=EntityCategory.CONFIG,
        press_fn=_restart,
    ),
    # The clip lands in the media browser; the recording event says when.
    PrintCamButtonEntityDescription(
        key="record_clip",
        translation_key="record_clip",
        press_fn=_record_clip,
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
        if not await self.entity_description.press_fn(self.camera):
            _LOGGER.debug(
                "%s: nothing to %s: the stream is idle",
                self.entity_id,
                self.entity_description.key,
            )
