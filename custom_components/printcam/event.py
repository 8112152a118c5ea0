"""Event entity of a printer's camera stream: started, stopped, stalled..."""

from __future__ import annotations

from typing import Any

from homeassistant.components.event import EventEntity, EventEntityDescription
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .coordinator import EVENT_TYPES
from .data import CameraData, PrintCamConfigEntry
from .entity import PrintCamEntity

# Push: the coordinator fires the events; there is nothing to poll.
PARALLEL_UPDATES = 0

EVENTS: tuple[EventEntityDescription, ...] = (
    EventEntityDescription(key="stream", translation_key="stream"),
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
    """Fires the coordinator's stream events (transitions, never per frame)."""

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
        self._attr_event_types = list(EVENT_TYPES)
        self.coordinator = camera.coordinator

    async def async_added_to_hass(self) -> None:
        """Listen to the coordinator's stream events."""
        await super().async_added_to_hass()
        self.async_on_remove(
            self.coordinator.async_add_event_listener(self._on_stream_event)
        )

    @callback
    def _on_stream_event(self, event_type: str, data: dict[str, Any]) -> None:
        self._trigger_event(event_type, data)
        self.async_write_ha_state()
