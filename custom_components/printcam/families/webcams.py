"""What the printer-host families share: asking the API, turning webcams into cameras.

OctoPrint and Moonraker both list their webcams through an HTTP API with an
``X-Api-Key``. Each family reads its own list into `Webcam`s; this module
resolves their URLs the way each server means them, tells MJPEG webcams from
the others (WebRTC, HLS, iframe services: listed with the reason, never a
broken camera), and builds one camera per MJPEG webcam: its own source on
Home Assistant's session, its own still URL and its flip and rotation.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
import ipaddress
import json
import logging
from typing import Any, Final

import aiohttp
from homeassistant.core import HomeAssistant
from homeassistant.helpers.aiohttp_client import async_get_clientsession
import yarl

from custom_components.printcam.const import STILL_TIMEOUT
from custom_components.printcam.sources import (
    CannotConnect,
    InvalidAuth,
    ProtocolError,
    SourceTimeout,
)
from custom_components.printcam.sources.mjpeg_http import MjpegHttpSource
from custom_components.printcam.transform import Orientation

from .base import Cameras, CameraSpec, SkippedWebcam, StillFetcher

_LOGGER = logging.getLogger(__name__)

API_KEY_HEADER: Final = "X-Api-Key"
API_TIMEOUT: Final = 10.0
MAX_API_BYTES: Final = 4 * 1024 * 1024
"""A settings document larger than this is not a printer's."""
MJPEG_SERVICES: Final = frozenset(
    {"mjpegstreamer", "mjpegstreamer-adaptive", "uv4l-mjpeg", "ipstream"}
)
"""Moonraker webcam services that serve MJPEG (``ipstream``: usually)."""
OTHER_SERVICES: Final = frozenset(
    {
        "webrtc-camerastreamer",
        "webrtc-go2rtc",
        "webrtc-mediamtx",
        "webrtc-janus",
        "hlsstream",
        "jmuxer-stream",
        "iframe",
    }
)
"""Moonraker webcam services that are not MJPEG."""
_NOT_HTTP_SCHEMES: Final = frozenset({"webrtc", "rtsp", "rtsps", "rtmp", "ws", "wss"})
_LOOPBACK_NAMES: Final = frozenset({"localhost", "localhost.localdomain"})


@dataclass(frozen=True, slots=True)
class Webcam:
    """One webcam as the printer lists it (URLs resolved by the family)."""

    key: str
    """Stable id: OctoPrint's webcam ``name``, Moonraker's ``uid``."""
    name: str
    """What the printer's UI calls it (the camera entity's name)."""
    stream_url: str
    snapshot_url: str = ""
    service: str = ""
    """Moonraker's ``service`` or OctoPrint's provider plugin."""
    enabled: bool = True
    orientation: Orientation = field(default_factory=Orientation)

    def signature(self) -> dict[str, Any]:
        """Return what a change of reloads the entry."""
        return {
            "key": self.key,
            "name": self.name,
            "stream_url": self.stream_url,
            "snapshot_url": self.snapshot_url,
            "service": self.service,
            "enabled": self.enabled,
            "orientation": self.orientation.as_dict(),
        }


def base_url(host: str, port: int, ssl: bool, path: str = "/") -> yarl.URL:
    """Return a server's base URL (an IPv6 literal in brackets)."""
    if not path.startswith("/"):
        path = f"/{path}"
    if not path.endswith("/"):
        path += "/"
    return yarl.URL.build(
        scheme="https" if ssl else "http", host=host, port=port, path=path
    )


def is_loopback(host: str | None) -> bool:
    """Return True for localhost and loopback addresses."""
    if not host:
        return False
    if host.lower().rstrip(".") in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def resolve_url(url: str, base: yarl.URL, printer_host: str) -> str:
    """Return `url` absolute: relative to `base`, loopback moved to the printer.

    ``/webcam/?action=stream`` and ``webcam/...`` are resolved against
    `base` (the server's idea of "here"); ``http://127.0.0.1:8080/...`` is
    the printer itself as seen from the printer, so its host becomes
    `printer_host` (the port stays). Empty stays empty.
    """
    url = url.strip()
    if not url:
        return ""
    try:
        resolved = base.join(yarl.URL(url))
    except (ValueError, TypeError):
        return url  # not_mjpeg_reason explains it
    if is_loopback(resolved.host):
        resolved = resolved.with_host(printer_host)
    return str(resolved)


def not_mjpeg_reason(webcam: Webcam) -> SkippedWebcam | None:
    """Return why a webcam is not shown as a camera, None if it is MJPEG."""
    if not webcam.enabled:
        return SkippedWebcam(webcam.name, "disabled")
    service = webcam.service.lower()
    if service in OTHER_SERVICES:
        return SkippedWebcam(webcam.name, "not_mjpeg", service)
    if not webcam.stream_url:
        return SkippedWebcam(webcam.name, "no_stream_url")
    try:
        url = yarl.URL(webcam.stream_url)
    except (ValueError, TypeError):
        return SkippedWebcam(webcam.name, "not_mjpeg", "not a URL")
    scheme = url.scheme.lower()
    if scheme in _NOT_HTTP_SCHEMES:
        return SkippedWebcam(webcam.name, "not_mjpeg", f"{scheme} stream")
    if url.path.lower().endswith(".m3u8"):
        return SkippedWebcam(webcam.name, "not_mjpeg", "HLS stream")
    if scheme not in ("http", "https") or not url.host:
        return SkippedWebcam(webcam.name, "not_mjpeg", "not an http(s) URL")
    return None


def cameras_for(hass: HomeAssistant, webcams: Iterable[Webcam]) -> Cameras:
    """Return one camera per MJPEG webcam and the others with their reason.

    Keys are made unique (a printer listing one name twice keeps both).
    Cameras are not probed at setup: the API answered, and one webcam down
    shows in its own stream state while the others stream.
    """
    listed = list(webcams)
    cameras: list[CameraSpec] = []
    skipped: list[SkippedWebcam] = []
    seen: set[str] = set()
    for webcam in listed:
        if (reason := not_mjpeg_reason(webcam)) is not None:
            skipped.append(reason)
            continue
        key = webcam.key
        number = 1
        while key in seen:
            number += 1
            key = f"{webcam.key}_{number}"
        seen.add(key)
        source = MjpegHttpSource(async_get_clientsession(hass), webcam.stream_url)
        cameras.append(
            CameraSpec(
                key,
                webcam.name,
                source,
                _still_fetcher(source, webcam.snapshot_url),
                probe=False,
                orientation=webcam.orientation,
            )
        )
    return Cameras(cameras, skipped, signature(listed))


def signature(webcams: Iterable[Webcam]) -> str:
    """Return a string that changes when the listed webcams change."""
    return json.dumps([webcam.signature() for webcam in webcams], sort_keys=True)


def _still_fetcher(source: MjpegHttpSource, url: str) -> StillFetcher | None:
    if not url:
        return None

    async def fetch() -> bytes:
        return await source.fetch_still(url, STILL_TIMEOUT)

    return fetch


class HttpError(CannotConnect):
    """The API answered with an error status (not 401/403)."""

    def __init__(self, message: str, status: int) -> None:
        """Keep the status: callers tell a missing endpoint (404) apart."""
        super().__init__(message)
        self.status = status


async def api_request(
    hass: HomeAssistant,
    url: yarl.URL,
    api_key: str | None,
    *,
    timeout: float = API_TIMEOUT,  # noqa: ASYNC109 - one request's bound
    method: str = "GET",
    payload: Mapping[str, Any] | None = None,
) -> bytes:
    """Call a printer host's API; return the body.

    401 and 403 are `InvalidAuth` (reauth), another error status
    `HttpError`, a missing server or a refused connection `CannotConnect`,
    no answer in time `SourceTimeout`. Messages name the path, never the key.
    """
    session = async_get_clientsession(hass)
    headers = {API_KEY_HEADER: api_key} if api_key else {}
    where = f"{url.host}:{url.port}{url.path}"
    try:
        async with (
            asyncio.timeout(timeout),
            session.request(
                method, url, headers=headers, json=payload, allow_redirects=False
            ) as response,
        ):
            if response.status in (401, 403):
                raise InvalidAuth(f"{where} refused the API key ({response.status})")
            if response.status >= 300:
                raise HttpError(
                    f"{where} answered HTTP {response.status}", response.status
                )
            body = await _read_bounded(response.content, MAX_API_BYTES + 1)
    except TimeoutError:
        raise SourceTimeout(f"{where} did not answer in {timeout:g} s") from None
    except (aiohttp.ClientError, OSError) as err:
        raise CannotConnect(f"{where}: {type(err).__name__}: {err}") from None
    if len(body) > MAX_API_BYTES:
        raise ProtocolError(f"{where} answered more than {MAX_API_BYTES} bytes")
    return body


async def _read_bounded(content: aiohttp.StreamReader, limit: int) -> bytes:
    """Read the whole body, but never more than `limit` bytes."""
    body = bytearray()
    while len(body) < limit and (chunk := await content.read(limit - len(body))):
        body += chunk
    return bytes(body)


async def api_json(
    hass: HomeAssistant,
    url: yarl.URL,
    api_key: str | None,
    *,
    method: str = "GET",
    payload: Mapping[str, Any] | None = None,
) -> Any:
    """Call a printer host's API (see `api_request`); return its JSON, or None.

    An answer that is not JSON is a `ProtocolError`.
    """
    body = await api_request(hass, url, api_key, method=method, payload=payload)
    if not body.strip():
        return None
    try:
        return json.loads(body)
    except ValueError:
        raise ProtocolError(
            f"{url.host}:{url.port}{url.path} did not answer JSON"
        ) from None


async def api_text(hass: HomeAssistant, url: yarl.URL) -> str:
    """GET a text document without a key (see `api_request`)."""
    body = await api_request(hass, url, None)
    return body.decode("utf-8", "replace")


def summary(found: Cameras) -> dict[str, str]:
    """Return the placeholders of the ``webcams`` message shown after adding."""
    cameras = ", ".join(spec.name or "camera" for spec in found.cameras)
    skipped = "; ".join(
        f"{w.name}: {w.reason.replace('_', ' ')}"
        + (f" ({w.detail})" if w.detail else "")
        for w in found.skipped
    )
    return {"cameras": cameras, "skipped": skipped or "none"}


def no_mjpeg_message(found: Cameras) -> str:
    """Say which webcams the printer lists and why none is shown."""
    return "no MJPEG webcam: " + (
        ", ".join(f"{w.name} ({w.detail or w.reason})" for w in found.skipped)
        or "none listed"
    )
