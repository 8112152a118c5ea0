"""PrintCam: one shared camera connection per 3D printer.

Setup and unload live in `startup.py` (named stages with an undo each);
this module only hands over to it.
"""

from __future__ import annotations

from homeassistant.core import HomeAssistant

from .data import PrintCamConfigEntry
from .startup import async_setup_staged, async_unload_staged


async def async_setup_entry(hass: HomeAssistant, entry: PrintCamConfigEntry) -> bool:
    """Set up a printer's camera from a config entry."""
    await async_setup_staged(hass, entry)
    return True


async def async_unload_entry(hass: HomeAssistant, entry: PrintCamConfigEntry) -> bool:
    """Unload a printer's camera: viewers, upstream and tasks are closed."""
    return await async_unload_staged(hass, entry)


async def async_migrate_entry(hass: HomeAssistant, entry: PrintCamConfigEntry) -> bool:
    """Refuse entries written by a newer PrintCam (downgrade)."""
    return entry.version <= 1
