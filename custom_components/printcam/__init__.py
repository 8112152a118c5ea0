"""PrintCam: one shared camera connection per 3D printer.

Setup and unload live in `startup.py` (named stages with an undo each);
this module hands over to it, and lets each printer family start its
discovery once the integration is loaded.
"""

from __future__ import annotations

import logging

from homeassistant.core import HomeAssistant
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers.typing import ConfigType

from .const import DOMAIN
from .data import PrintCamConfigEntry
from .families import FAMILIES
from .families.mjpeg import async_migrate_unique_id
from .recorder import async_finish_left_behind
from .restream import async_setup_restream
from .services import async_setup_services
from .startup import async_setup_staged, async_unload_staged

_LOGGER = logging.getLogger(__name__)

CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Register the restream view and actions; start each family's discovery."""
    async_setup_restream(hass)
    async_setup_services(hass)
    for family in FAMILIES.values():
        try:
            await family.async_setup_discovery(hass)
        except Exception:
            _LOGGER.exception("Cannot start discovery of %s printers", family.kind)
    return True


async def async_setup_entry(hass: HomeAssistant, entry: PrintCamConfigEntry) -> bool:
    """Set up a printer's camera from a config entry."""
    await async_setup_staged(hass, entry)
    return True


async def async_unload_entry(hass: HomeAssistant, entry: PrintCamConfigEntry) -> bool:
    """Unload a printer's camera: viewers, upstream and tasks are closed."""
    return await async_unload_staged(hass, entry)


async def async_remove_entry(hass: HomeAssistant, entry: PrintCamConfigEntry) -> None:
    """Finish the recordings a removed printer left unfinished (in the background)."""
    hass.async_create_background_task(
        async_finish_left_behind(hass, entry.entry_id),
        f"printcam finish recordings of {entry.title}",
    )


async def async_migrate_entry(hass: HomeAssistant, entry: PrintCamConfigEntry) -> bool:
    """Bring older entries up to date; refuse ones from a newer PrintCam.

    1.1 -> 1.2: an MJPEG entry whose URL carries credentials in its query
    string had them in its unique id (and device and entity ids); they go.
    """
    if entry.version > 1:
        return False
    if entry.minor_version < 2:
        async_migrate_unique_id(hass, entry)
        hass.config_entries.async_update_entry(entry, minor_version=2)
    return True
