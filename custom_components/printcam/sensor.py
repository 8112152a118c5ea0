"""Sensors of a printer's camera stream: state, viewers, frame rate, counters."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.typing import StateType
from homeassistant.util import dt as dt_util

from .data import CameraData, PrintCamConfigEntry
from .entity import PrintCamCoordinatorEntity
from .stream import StreamSnapshot, StreamState

# Push: the coordinator writes every entity; there is nothing to poll.
PARALLEL_UPDATES = 0


@dataclass(frozen=True, kw_only=True)
class PrintCamSensorEntityDescription(SensorEntityDescription):
    """Describes one sensor and how to read it from the stream's snapshot."""

    value_fn: Callable[[StreamSnapshot], StateType | datetime]


def _last_frame(snapshot: StreamSnapshot) -> datetime | None:
    if snapshot.last_frame_at is None:
        return None
    return dt_util.utc_from_timestamp(snapshot.last_frame_at)


SENSORS: tuple[PrintCamSensorEntityDescription, ...] = (
    PrintCamSensorEntityDescription(
        key="stream_state",
        translation_key="stream_state",
        device_class=SensorDeviceClass.ENUM,
        options=[state.value for state in StreamState],
        value_fn=lambda snapshot: snapshot.state.value,
    ),
    PrintCamSensorEntityDescription(
        key="viewers",
        translation_key="viewers",
        state_class=SensorStateClass.MEASUREMENT,
        value_fn=lambda snapshot: snapshot.viewers,
    ),
    PrintCamSensorEntityDescription(
        key="frame_rate",
        translation_key="frame_rate",
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=1,
        value_fn=lambda snapshot: snapshot.fps,
    ),
    PrintCamSensorEntityDescription(
        key="last_frame",
        translation_key="last_frame",
        device_class=SensorDeviceClass.TIMESTAMP,
        value_fn=_last_frame,
    ),
    PrintCamSensorEntityDescription(
        key="dropped_frames",
        translation_key="dropped_frames",
        state_class=SensorStateClass.TOTAL_INCREASING,
        entity_category=EntityCategory.DIAGNOSTIC,
        entity_registry_enabled_default=False,
        value_fn=lambda snapshot: snapshot.frames_dropped,
    ),
    PrintCamSensorEntityDescription(
        key="reconnects",
        translation_key="reconnects",
        state_class=SensorStateClass.TOTAL_INCREASING,
        entity_category=EntityCategory.DIAGNOSTIC,
        entity_registry_enabled_default=False,
        value_fn=lambda snapshot: snapshot.reconnects,
    ),
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: PrintCamConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the stream's sensors."""
    async_add_entities(
        PrintCamSensor(entry, description, camera)
        for camera in entry.runtime_data.cameras
        for description in SENSORS
    )


class PrintCamSensor(PrintCamCoordinatorEntity, SensorEntity):
    """A sensor read from the coordinator's snapshot of the stream."""

    entity_description: PrintCamSensorEntityDescription

    def __init__(
        self,
        entry: PrintCamConfigEntry,
        description: PrintCamSensorEntityDescription,
        camera: CameraData,
    ) -> None:
        """Attach the sensor to the printer's device and the coordinator."""
        super().__init__(entry, description.key, camera)
        self.entity_description = description
        self._name_for_webcam(description.translation_key)

    @property
    def native_value(self) -> StateType | datetime:
        """Return the sensor's value in the latest published snapshot."""
        return self.entity_description.value_fn(self.coordinator.data)
