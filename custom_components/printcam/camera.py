"""The printer's camera entity, served from the shared stream."""

from __future__ import annotations

import logging

from aiohttp import web
from homeassistant.components.camera import Camera, CameraEntityFeature
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .const import CONF_RESTREAM_STREAM_SOURCE
from .data import CameraData, PrintCamConfigEntry
from .entity import PrintCamCoordinatorEntity
from .restream import STREAM_FILE, camera_path, restream_token
from .serve import serve_viewer
from .viewer import ChunkFramer

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
        first = camera is entry.runtime_data.cameras[0]
        self._restream_key = None if first else camera.key
        """The camera's part of its restream URL (none for the first)."""
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

    @property
    def supported_features(self) -> CameraEntityFeature:
        """Offer a stream source only when it is PrintCam's restream."""
        if self._restream_source() is None:
            return CameraEntityFeature(0)
        return CameraEntityFeature.STREAM

    async def stream_source(self) -> str | None:
        """Return the restream URL on loopback, when the entry's options say so.

        Home Assistant's stream and go2rtc integrations then take PrintCam's
        shared stream instead of opening their own printer connection.
        """
        return self._restream_source()

    def _restream_source(self) -> str | None:
        options = self.entry.options
        token = restream_token(options)
        if token is None or not options.get(CONF_RESTREAM_STREAM_SOURCE):
            return None
        api = self.hass.config.api
        scheme = "https" if api is not None and api.use_ssl else "http"
        port = api.port if api is not None else self.hass.http.server_port
        path = camera_path(token, self._restream_key, STREAM_FILE)
        return f"{scheme}://127.0.0.1:{port}{path}"

    async def async_camera_image(
        self, width: int | None = None, height: int | None = None
    ) -> bytes | None:
        """Return a current frame; Home Assistant scales it to width/height."""
        return await self.shared_stream.async_get_still()

    async def handle_async_mjpeg_stream(
        self, request: web.Request
    ) -> web.StreamResponse | None:
        """Serve the shared stream to one viewer until it or the entry leaves.

        A printer that refused the credentials or changed its certificate
        gets no new login until the entry is fixed: Home Assistant answers
        502 and the stream state says why.
        """
        return await serve_viewer(
            request, self.shared_stream, self._framer, self.entity_id
        )
