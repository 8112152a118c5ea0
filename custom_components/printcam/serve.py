"""Serve a shared stream to one HTTP viewer: the camera entity and the restream.

After the response head, parts go straight from the fan-out loop to the
viewer's socket (see viewer.py): no per-viewer task or queue. The viewer is
counted like every other one (the viewers sensor), keeps the upstream open
while it reads, and is bounded like every other one (slow-viewer rule).
"""

from __future__ import annotations

import logging

from aiohttp import hdrs, web

from .mjpeg import CONTENT_TYPE
from .stream import PrintCamStream
from .viewer import ChunkFramer, TransportViewer

_LOGGER = logging.getLogger(__name__)


async def serve_viewer(
    request: web.Request, stream: PrintCamStream, framer: ChunkFramer, label: str
) -> web.StreamResponse | None:
    """Serve `stream` to the request's client until it or the stream ends.

    Returns None when the printer refused PrintCam (credentials, a foreign
    certificate): no new login is tried until the entry is fixed.
    """
    if stream.blocked:
        return None
    response = web.StreamResponse()
    response.content_type = CONTENT_TYPE
    response.headers[hdrs.CACHE_CONTROL] = "no-store"
    await response.prepare(request)
    transport = request.transport
    if transport is None or transport.is_closing():
        return response
    chunked = response.headers.get(hdrs.TRANSFER_ENCODING) == "chunked"
    viewer = TransportViewer(transport, framer=framer if chunked else None)
    try:
        await stream.async_watch(viewer)
    except RuntimeError as err:  # the entry is closing
        _LOGGER.debug("%s: viewer refused: %s", label, err)
    _LOGGER.debug(
        "%s: viewer ended (%s): %d frames, %d skipped",
        label,
        viewer.end_reason,
        viewer.delivered,
        viewer.skipped,
    )
    return response
