"""Base entity: every PrintCam entity sits on the printer's device.

An entry with one camera (most printers) gives its entities the ids and
names they always had. In an entry with several (an OctoPrint or Moonraker
printer's webcams) each camera's entities carry the webcam's key in their
unique id and its name in theirs: translation keys ending in ``_webcam``
whose names hold a ``{webcam}`` placeholder.
"""

from __future__ import annotations

from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.entity import Entity
from homeassistant.helpers.update_coordinator import CoordinatorEntity

from .const import DOMAIN
from .coordinator import PrintCamCoordinator
from .data import CameraData, PrintCamConfigEntry
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


def unique_id_for(entry: PrintCamConfigEntry, camera: CameraData, key: str) -> str:
    """Return the unique id of a camera's entity of role `key`."""
    if camera.key is None:
        return f"{device_id_for(entry)}_{key}"
    return f"{device_id_for(entry)}_{camera.key}_{key}"


class PrintCamEntity(Entity):
    """An entity of one of the printer's camera streams."""

    _attr_has_entity_name = True

    def __init__(
        self, entry: PrintCamConfigEntry, key: str, camera: CameraData | None = None
    ) -> None:
        """Attach the entity to the printer's device; `key` names its role.

        `camera` is the stream it shows (the entry's first when None).
        """
        camera = camera or entry.runtime_data.cameras[0]
        self.entry = entry
        self.camera = camera
        self.shared_stream = camera.stream
        self._attr_device_info = device_info_for(entry)
        self._attr_unique_id = unique_id_for(entry, camera, key)
        entry.runtime_data.unique_ids.add(self._attr_unique_id)

    def _name_for_webcam(self, translation_key: str | None) -> None:
        """Name the entity after its webcam when the entry has several."""
        if self.camera.name is None or translation_key is None:
            return
        self._attr_translation_key = f"{translation_key}_webcam"
        self._attr_translation_placeholders = {"webcam": self.camera.name}


class PrintCamCoordinatorEntity(PrintCamEntity, CoordinatorEntity[PrintCamCoordinator]):
    """An entity whose state is read from its camera's coordinator."""

    def __init__(
        self, entry: PrintCamConfigEntry, key: str, camera: CameraData | None = None
    ) -> None:
        """Attach the entity to the printer's device and the coordinator."""
        camera = camera or entry.runtime_data.cameras[0]
        CoordinatorEntity.__init__(self, camera.coordinator)
        PrintCamEntity.__init__(self, entry, key, camera)
