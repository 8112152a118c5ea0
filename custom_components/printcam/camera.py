"""The printer's camera entity, served from the shared stream."""

from __future__ import annotations

import logging

from aiohttp import hdrs, web
from homeassistant.components.camera import Camera
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .data import CameraData, PrintCamConfigEntry
from .entity import PrintCamCoordinatorEntity
from .mjpeg import CONTENT_TYPE
from .viewer import ChunkFramer, TransportViewer

_LOGGER = logging.getLogger(__name__)

PARALLEL_UPDATES = 0


async def async_setup_entry(
    hass: HomeAssistant,
    entry: PrintCamConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the printer's camera (one per webcam of an OctoPrint or Moonraker)."""
    async_add_entities(
        PrintCamCamera(entry, camera) for camera in entry.runtime_data.cameras
    )


class PrintCamCamera(PrintCamCoordinatorEntity, Camera):
    """A printer camera whose viewers and stills share one connection."""

    _attr_name = None  # the device's name: "Printer" rather than "Printer Camera"
    _attr_translation_key = "camera"

    def __init__(self, entry: PrintCamConfigEntry, camera: CameraData) -> None:
        """Create the camera on the printer's device, named after its webcam."""
        PrintCamCoordinatorEntity.__init__(self, entry, "camera", camera)
        Camera.__init__(self)
        if camera.name is not None:
            self._attr_name = camera.name
        self.content_type = "image/jpeg"
        self._framer = ChunkFramer()
        """Frames each part as an HTTP/1.1 chunk once for every viewer."""
        self._attr_is_streaming = self.coordinator.data.viewers > 0

    @callback
    def _handle_coordinator_update(self) -> None:
        """Show whether someone is watching (the camera's state)."""
        streaming = self.coordinator.data.viewers > 0
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
        """Serve the shared stream to one viewer until it or the entry leaves.

        After the response head, parts go straight from the fan-out loop to
        this viewer's socket (see viewer.py): no per-viewer task or queue.
        """
        if self.shared_stream.blocked:
            # The printer refused the credentials or its certificate changed:
            # no new login until the entry is fixed (Home Assistant answers
            # 502 and the stream state says why).
            return None
        response = web.StreamResponse()
        response.content_type = CONTENT_TYPE
        response.headers[hdrs.CACHE_CONTROL] = "no-store"
        await response.prepare(request)
        transport = request.transport
        if transport is None or transport.is_closing():
            return response
        chunked = response.headers.get(hdrs.TRANSFER_ENCODING) == "chunked"
        viewer = TransportViewer(transport, framer=self._framer if chunked else None)
        try:
            await self.shared_stream.async_watch(viewer)
        except RuntimeError as err:  # the entry is closing
            _LOGGER.debug("%s: viewer refused: %s", self.entity_id, err)
        _LOGGER.debug(
            "%s: viewer ended (%s): %d frames, %d skipped",
            self.entity_id,
            viewer.end_reason,
            viewer.delivered,
            viewer.skipped,
        )
        return response
