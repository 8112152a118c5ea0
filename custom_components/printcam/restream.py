"""Restream: a printer's shared stream for go2rtc, Frigate, Obico, VLC, ...

Per printer, opt-in (option ``restream``), Home Assistant's own HTTP server
serves the shared stream at ``/api/printcam/<token>/stream.mjpeg`` and a
still at ``/api/printcam/<token>/snapshot.jpg`` (an OctoPrint or Moonraker
printer's further webcams at ``/api/printcam/<token>/<webcam>/...``). The
token is random (192 bits), stored in the entry's options and the only
credential, so consumers that cannot send headers work; the options flow
shows the URLs and rotates the token, which ends running consumers and
turns the old URLs into 404 at once.

A consumer is a viewer like a dashboard (counted, bounded, keeping the
upstream open only while it reads); a snapshot is a still (served from the
live stream, coalesced): neither ever opens a second printer connection.

An unknown token is a 404 after a comparison against every token (constant
time per token); a client sending bad tokens is logged once and, beyond
`BAD_TOKEN_LIMIT` a minute, answered 429 without a lookup.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
import hmac
import logging
import secrets
import time
from typing import TYPE_CHECKING, Any, Final

from aiohttp import hdrs, web
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.network import NoURLAvailableError, get_url

from .const import CONF_RESTREAM, CONF_RESTREAM_TOKEN, DOMAIN
from .serve import serve_viewer
from .viewer import ChunkFramer

if TYPE_CHECKING:
    from collections.abc import Mapping

    from .data import CameraData, PrintCamConfigEntry

_LOGGER = logging.getLogger(__name__)

TOKEN_BYTES: Final = 24
"""192 random bits, URL-safe base64: 32 characters."""
STREAM_FILE: Final = "stream.mjpeg"
SNAPSHOT_FILE: Final = "snapshot.jpg"
BAD_TOKEN_WINDOW: Final = 60.0
BAD_TOKEN_LIMIT: Final = 10
"""Bad tokens a client may send per window before it is answered 429."""
TRACKED_CLIENTS: Final = 256
_DATA_KEY: Final = f"{DOMAIN}_restream"


def new_token() -> str:
    """Return a new restream token."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def restream_token(options: Mapping[str, Any]) -> str | None:
    """Return the entry's token while restreaming is on, else None."""
    token = options.get(CONF_RESTREAM_TOKEN)
    if options.get(CONF_RESTREAM) and isinstance(token, str) and token:
        return token
    return None


def camera_path(token: str, camera: str | None, file: str) -> str:
    """Return the path of a camera's restream file."""
    if camera is None:
        return f"/api/printcam/{token}/{file}"
    return f"/api/printcam/{token}/{camera}/{file}"


def restream_urls(
    hass: HomeAssistant, entry: PrintCamConfigEntry, options: Mapping[str, Any]
) -> list[str]:
    """Return the entry's restream URLs (for the administrator only)."""
    token = restream_token(options)
    if token is None:
        return []
    try:
        base = get_url(hass, allow_external=False)
    except NoURLAvailableError:
        base = ""
    keys: list[str | None] = [None]
    if entry.state is ConfigEntryState.LOADED:
        keys = [camera.key for camera in entry.runtime_data.cameras]
        keys[0] = None  # the first camera has the short URLs
    return [
        base + camera_path(token, key, file)
        for key in keys
        for file in (STREAM_FILE, SNAPSHOT_FILE)
    ]


class _BadTokens:
    """Counts bad tokens per client, to log each client once and slow it down."""

    def __init__(self) -> None:
        self._seen: OrderedDict[str, deque[float]] = OrderedDict()

    def limited(self, client: str) -> bool:
        """Return True while the client sent too many bad tokens lately."""
        times = self._seen.get(client)
        if times is None:
            return False
        now = time.monotonic()
        while times and now - times[0] > BAD_TOKEN_WINDOW:
            times.popleft()
        return len(times) >= BAD_TOKEN_LIMIT

    def note(self, client: str) -> None:
        """Count a bad token; log the client the first time."""
        times = self._seen.get(client)
        if times is None:
            _LOGGER.warning(
                "Restream: %s asked for an unknown or rotated URL (logged once "
                "per client; more than %d a minute are refused)",
                client,
                BAD_TOKEN_LIMIT,
            )
            times = self._seen[client] = deque(maxlen=BAD_TOKEN_LIMIT)
            while len(self._seen) > TRACKED_CLIENTS:
                self._seen.popitem(last=False)
        self._seen.move_to_end(client)
        times.append(time.monotonic())


class _Registry:
    """The running consumers of each entry (ended when its token changes)."""

    def __init__(self) -> None:
        self.tokens: dict[str, str | None] = {}
        self.consumers: dict[str, set[asyncio.Transport]] = {}

    def end(self, entry_id: str) -> int:
        """Close every running consumer of the entry; return how many."""
        transports = self.consumers.pop(entry_id, set())
        for transport in transports:
            transport.close()
        return len(transports)


def _registry(hass: HomeAssistant) -> _Registry:
    registry: _Registry | None = hass.data.get(_DATA_KEY)
    if registry is None:
        registry = hass.data[_DATA_KEY] = _Registry()
    return registry


@callback
def async_setup_restream(hass: HomeAssistant) -> None:
    """Register the restream routes (they answer 404 until a printer opts in).

    Plain aiohttp routes, not a Home Assistant view: a view logs each
    request's path at debug level, and here the path is the secret.
    """
    _registry(hass)
    view = RestreamView(hass)
    router = hass.http.app.router
    try:
        for path in (view.url, *view.extra_urls):
            router.add_route(hdrs.METH_GET, path, view.handle)
    except RuntimeError as err:  # a frozen router (a test server started first)
        _LOGGER.warning("Restream URLs are not available: %s", err)


@callback
def async_entry_updated(hass: HomeAssistant, entry: PrintCamConfigEntry) -> None:
    """End the consumers of an old token (rotated, or restreaming turned off)."""
    registry = _registry(hass)
    token = restream_token(entry.options)
    if registry.tokens.get(entry.entry_id, token) != token:
        ended = registry.end(entry.entry_id)
        _LOGGER.info("%s: restream URL changed; %d consumers ended", entry.title, ended)
    registry.tokens[entry.entry_id] = token


@callback
def async_entry_unloaded(hass: HomeAssistant, entry: PrintCamConfigEntry) -> None:
    """Forget an unloaded entry (its consumers were ended with its streams)."""
    registry = _registry(hass)
    registry.tokens.pop(entry.entry_id, None)
    registry.end(entry.entry_id)


class RestreamView:
    """``/api/printcam/<token>[/<webcam>]/stream.mjpeg|snapshot.jpg``."""

    url: Final = "/api/printcam/{token}/{file}"
    extra_urls: Final = ("/api/printcam/{token}/{camera}/{file}",)

    def __init__(self, hass: HomeAssistant) -> None:
        """Serve the printers of `hass`."""
        self.hass = hass
        self._bad = _BadTokens()
        self._framer = ChunkFramer()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Serve a printer's stream or still to whoever holds its token."""
        info = request.match_info
        return await self.get(request, info["token"], info["file"], info.get("camera"))

    async def get(
        self, request: web.Request, token: str, file: str, camera: str | None = None
    ) -> web.StreamResponse:
        """Serve the file of the token's printer (404 for any other token)."""
        client = request.remote or "unknown"
        if self._bad.limited(client):
            return web.Response(status=429)
        found = self._find(token, camera)
        if found is None or file not in (STREAM_FILE, SNAPSHOT_FILE):
            self._bad.note(client)
            raise web.HTTPNotFound
        entry, target = found
        if file == SNAPSHOT_FILE:
            jpeg = await target.stream.async_get_still()
            if jpeg is None:
                return web.Response(status=503, text="no frame from the printer")
            return web.Response(
                body=jpeg,
                content_type="image/jpeg",
                headers={hdrs.CACHE_CONTROL: "no-store"},
            )
        transport = request.transport
        consumers = _registry(self.hass).consumers.setdefault(entry.entry_id, set())
        if transport is not None:
            consumers.add(transport)
        try:
            response = await serve_viewer(
                request, target.stream, self._framer, f"{entry.title} restream"
            )
        finally:
            if transport is not None:
                consumers.discard(transport)
        if response is None:  # the printer refused PrintCam: no login
            return web.Response(status=502, text="the printer refused PrintCam")
        return response

    def _find(
        self, token: str, camera: str | None
    ) -> tuple[PrintCamConfigEntry, CameraData] | None:
        """Return the entry whose token this is (every token compared) and camera."""
        match: PrintCamConfigEntry | None = None
        given = token.encode()
        for entry in self.hass.config_entries.async_entries(DOMAIN):
            if entry.state is not ConfigEntryState.LOADED:
                continue
            expected = restream_token(entry.options)
            if expected is not None and hmac.compare_digest(expected.encode(), given):
                match = entry
        if match is None:
            return None
        cameras = match.runtime_data.cameras
        if camera is None:
            return match, cameras[0]
        for data in cameras[1:]:
            if data.key == camera:
                return match, data
        return None
