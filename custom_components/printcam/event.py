"""Event entities of a printer's camera: the stream's transitions, recordings.

``stream``: started, stopped, stalled, recovered, failed (from the
coordinator). ``recording``: a timelapse started, a timelapse or clip is
ready (with its media id), a recording failed (from the recorder).
"""

from __future__ import annotations

from typing import Any

from homeassistant.components.event import EventEntity, EventEntityDescription
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .coordinator import EVENT_TYPES
from .data import CameraData, PrintCamConfigEntry
from .entity import PrintCamEntity
from .recorder import RECORDING_EVENT_TYPES

# Push: the coordinator fires the events; there is nothing to poll.
PARALLEL_UPDATES = 0

EVENTS: tuple[EventEntityDescription, ...] = (
    EventEntityDescription(key="stream", translation_key="stream"),
    EventEntityDescription(key="recording", translation_key="recording"),
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: PrintCamConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the stream's event entity."""
    async_add_entities(
        PrintCamEvent(entry, description, camera)
        for camera in entry.runtime_data.cameras
        for description in EVENTS
    )


class PrintCamEvent(PrintCamEntity, EventEntity):
    """Fires stream transitions (never per frame) or recording events."""

    _attr_should_poll = False

    def __init__(
        self,
        entry: PrintCamConfigEntry,
        description: EventEntityDescription,
        camera: CameraData,
    ) -> None:
        """Attach the event entity to the printer's device."""
        super().__init__(entry, description.key, camera)
        self.entity_description = description
        self._name_for_webcam(description.translation_key)
        recording = description.key == "recording"
        self._attr_event_types = list(
            RECORDING_EVENT_TYPES if recording else EVENT_TYPES
        )
        self._recording = recording

    async def async_added_to_hass(self) -> None:
        """Listen to the coordinator's stream events, or the recorder's."""
        await super().async_added_to_hass()
        if self._recording:
            remove = self.camera.recorder.add_listener(self._on_stream_event)
        else:
            remove = self.camera.coordinator.async_add_event_listener(
                self._on_stream_event
            )
        self.async_on_remove(remove)

    @callback
    def _on_stream_event(self, event_type: str, data: dict[str, Any]) -> None:
        self._trigger_event(event_type, data)
        self.async_write_ha_state()
