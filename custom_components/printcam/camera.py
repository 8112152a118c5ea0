"""The printer's camera entity, served from the shared stream."""

from __future__ import annotations

import contextlib
import logging

from aiohttp import web
from homeassistant.components.camera import Camera
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .data import PrintCamConfigEntry
from .entity import PrintCamEntity
from .mjpeg import CONTENT_TYPE
from .stream import StreamSnapshot

_LOGGER = logging.getLogger(__name__)

PARALLEL_UPDATES = 0


async def async_setup_entry(
    hass: HomeAssistant,
    entry: PrintCamConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the printer's camera."""
    async_add_entities([PrintCamCamera(entry)])


class PrintCamCamera(PrintCamEntity, Camera):
    """A printer camera whose viewers and stills share one connection."""

    _attr_name = None  # the device's name: "Printer" rather than "Printer Camera"
    _attr_translation_key = "camera"

    def __init__(self, entry: PrintCamConfigEntry) -> None:
        """Create the camera on the printer's device."""
        PrintCamEntity.__init__(self, entry, "camera")
        Camera.__init__(self)
        self.content_type = "image/jpeg"
        self._attr_is_streaming = False

    async def async_added_to_hass(self) -> None:
        """Follow the stream so the camera state shows whether it streams."""
        await super().async_added_to_hass()
        self.async_on_remove(self.shared_stream.add_listener(self._on_snapshot))

    @callback
    def _on_snapshot(self, snapshot: StreamSnapshot) -> None:
        streaming = snapshot.viewers > 0
        if streaming != self._attr_is_streaming:
            self._attr_is_streaming = streaming
            self.async_write_ha_state()

    async def async_camera_image(
        self, width: int | None = None, height: int | None = None
    ) -> bytes | None:
        """Return a current frame; Home Assistant scales it to width/height."""
        return await self.shared_stream.async_get_still()

    async def handle_async_mjpeg_stream(
        self, request: web.Request
    ) -> web.StreamResponse | None:
        """Serve the shared stream to one viewer until it or the entry leaves."""
        response = web.StreamResponse()
        response.content_type = CONTENT_TYPE
        response.headers["Cache-Control"] = "no-store"
        await response.prepare(request)
        transport = request.transport

        async def is_disconnected() -> bool:
            return transport is None or transport.is_closing()

        try:
            async with contextlib.aclosing(
                self.shared_stream.iter_viewer(is_disconnected)
            ) as parts:
                async for part in parts:
                    await response.write(part)
        except (ConnectionResetError, RuntimeError) as err:
            # The viewer went away, or the entry is closing.
            _LOGGER.debug("%s: viewer ended: %s", self.entity_id, err)
        return response
