"""Base entity: every PrintCam entity sits on the printer's device."""

from __future__ import annotations

from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.entity import Entity
from homeassistant.helpers.update_coordinator import CoordinatorEntity

from .const import DOMAIN
from .coordinator import PrintCamCoordinator
from .data import PrintCamConfigEntry
from .families import family_for


def device_id_for(entry: PrintCamConfigEntry) -> str:
    """Return the printer's identity: the entry's unique id when it has one."""
    return entry.unique_id or entry.entry_id


def device_info_for(entry: PrintCamConfigEntry) -> DeviceInfo:
    """Describe the printer's device: the entry's identity, its family's details."""
    return DeviceInfo(
        **family_for(entry.data).device_info(entry.data),
        identifiers={(DOMAIN, device_id_for(entry))},
        name=entry.title,
    )


class PrintCamEntity(Entity):
    """An entity of one printer's camera stream."""

    _attr_has_entity_name = True

    def __init__(self, entry: PrintCamConfigEntry, key: str) -> None:
        """Attach the entity to the printer's device; `key` names its role."""
        self.entry = entry
        self.shared_stream = entry.runtime_data.stream
        self._attr_device_info = device_info_for(entry)
        self._attr_unique_id = f"{device_id_for(entry)}_{key}"


class PrintCamCoordinatorEntity(PrintCamEntity, CoordinatorEntity[PrintCamCoordinator]):
    """An entity whose state is read from the coordinator's snapshot."""

    def __init__(self, entry: PrintCamConfigEntry, key: str) -> None:
        """Attach the entity to the printer's device and the coordinator."""
        CoordinatorEntity.__init__(self, entry.runtime_data.coordinator)
        PrintCamEntity.__init__(self, entry, key)
