"""Binary sensors of a printer's camera: frames are flowing, a timelapse runs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from homeassistant.components.binary_sensor import (
    BinarySensorDeviceClass,
    BinarySensorEntity,
    BinarySensorEntityDescription,
)
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .data import CameraData, PrintCamConfigEntry
from .entity import PrintCamCoordinatorEntity, PrintCamEntity
from .stream import StreamSnapshot, StreamState

# Push: the coordinator writes every entity; there is nothing to poll.
PARALLEL_UPDATES = 0


@dataclass(frozen=True, kw_only=True)
class PrintCamBinarySensorEntityDescription(BinarySensorEntityDescription):
    """Describes one binary sensor and how to read it from the snapshot."""

    value_fn: Callable[[StreamSnapshot], bool]


BINARY_SENSORS: tuple[PrintCamBinarySensorEntityDescription, ...] = (
    PrintCamBinarySensorEntityDescription(
        key="streaming",
        translation_key="streaming",
        device_class=BinarySensorDeviceClass.RUNNING,
        value_fn=lambda snapshot: snapshot.state is StreamState.STREAMING,
    ),
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: PrintCamConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the stream's binary sensors and the timelapse sensor."""
    async_add_entities(
        PrintCamBinarySensor(entry, description, camera)
        for camera in entry.runtime_data.cameras
        for description in BINARY_SENSORS
    )
    async_add_entities(
        PrintCamTimelapseSensor(entry, camera) for camera in entry.runtime_data.cameras
    )


class PrintCamBinarySensor(PrintCamCoordinatorEntity, BinarySensorEntity):
    """A binary sensor read from the coordinator's snapshot of the stream."""

    entity_description: PrintCamBinarySensorEntityDescription

    def __init__(
        self,
        entry: PrintCamConfigEntry,
        description: PrintCamBinarySensorEntityDescription,
        camera: CameraData,
    ) -> None:
        """Attach the binary sensor to the printer's device and the coordinator."""
        super().__init__(entry, description.key, camera)
        self.entity_description = description
        self._name_for_webcam(description.translation_key)

    @property
    def is_on(self) -> bool:
        """Return True while frames flow."""
        return self.entity_description.value_fn(self.coordinator.data)


TIMELAPSE = BinarySensorEntityDescription(
    key="timelapse",
    translation_key="timelapse",
    device_class=BinarySensorDeviceClass.RUNNING,
)


class PrintCamTimelapseSensor(PrintCamEntity, BinarySensorEntity):
    """On while a timelapse of the camera captures (the recorder says when)."""

    _attr_should_poll = False

    def __init__(self, entry: PrintCamConfigEntry, camera: CameraData) -> None:
        """Attach the sensor to the printer's device and the camera's recorder."""
        super().__init__(entry, TIMELAPSE.key, camera)
        self.entity_description = TIMELAPSE
        self._name_for_webcam(TIMELAPSE.translation_key)

    async def async_added_to_hass(self) -> None:
        """Follow the recorder's timelapse starts and ends."""
        await super().async_added_to_hass()
        self.async_on_remove(
            self.camera.recorder.add_state_listener(self.async_write_ha_state)
        )

    @property
    def is_on(self) -> bool:
        """Return True while a timelapse captures."""
        return self.camera.recorder.timelapse_running
