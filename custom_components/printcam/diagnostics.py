"""Diagnostics of a PrintCam entry: the entry, the stream and its source.

Secrets never leave: fields named like credentials are redacted by key,
every URL in every string loses its user info (``http://user:pass@host``,
also with a raw ``@`` in the password) and the values of its credential
query parameters (``?user=...&pwd=...``), and as a last net every configured
secret string is replaced wherever it would still appear (an error message,
a unique id). The rules are `redact`'s, shared with the sources.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict
from typing import Any, Final

from homeassistant.components.diagnostics import async_redact_data
from homeassistant.core import HomeAssistant
from homeassistant.util import dt as dt_util

from .const import CONF_PASSWORD, CONF_RESTREAM_TOKEN, CONF_STILL_URL, CONF_USERNAME
from .data import CameraData, PrintCamConfigEntry
from .redact import redact_text, url_secrets
from .stream import PrintCamStream, StreamSnapshot
from .viewer import TransportViewer

TO_REDACT: Final = frozenset(
    {CONF_PASSWORD, CONF_USERNAME, "access_code", "api_key", CONF_RESTREAM_TOKEN}
)
MIN_SECRET_LENGTH: Final = 4
"""Shorter secrets are redacted by key and in URLs, not searched in text."""


def _timestamp(value: float | None) -> str | None:
    if value is None:
        return None
    return dt_util.utc_from_timestamp(value).isoformat()


def _snapshot(snapshot: StreamSnapshot) -> dict[str, Any]:
    data = asdict(snapshot)
    data["state"] = snapshot.state.value
    data["last_frame_at"] = _timestamp(snapshot.last_frame_at)
    return data


def _viewers(stream: PrintCamStream) -> list[dict[str, Any]]:
    """Return each live viewer's counters: a slow one shows its skips."""
    bc = stream.broadcaster
    if bc is None or bc.stopped:
        return []
    return [
        {
            "delivered": sink.delivered,
            "skipped": sink.skipped,
            "buffered_bytes": sink.transport.get_write_buffer_size(),
        }
        for sink in bc.sinks
        if isinstance(sink, TransportViewer)
    ]


def _secrets(data: Mapping[str, Any]) -> list[str]:
    """Return the secret strings of the entry's data, longest first."""
    found: set[str] = set()
    for key, value in data.items():
        if not isinstance(value, str) or not value:
            continue
        if key in TO_REDACT:
            found.add(value)
        elif "://" in value:
            found.update(url_secrets(value))
    return sorted(
        (secret for secret in found if len(secret) >= MIN_SECRET_LENGTH),
        key=len,
        reverse=True,
    )


def _scrub(value: Any, secrets: Iterable[str]) -> Any:
    """Redact URL credentials and secret strings in every string of `value`."""
    if isinstance(value, str):
        return redact_text(value, secrets)
    if isinstance(value, Mapping):
        return {key: _scrub(item, secrets) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(item, secrets) for item in value]
    return value


async def async_get_config_entry_diagnostics(
    hass: HomeAssistant, entry: PrintCamConfigEntry
) -> dict[str, Any]:
    """Return the entry, its options, each camera's stream state and source.

    The first camera's are at the top level; an entry with several webcams
    adds each under ``webcams``, and the webcams it does not show under
    ``skipped_webcams`` with the reason.
    """
    runtime = entry.runtime_data
    diagnostics: dict[str, Any] = {
        "entry": {
            "title": entry.title,
            "version": entry.version,
            "minor_version": entry.minor_version,
            "unique_id": entry.unique_id,
            "data": async_redact_data(dict(entry.data), TO_REDACT),
        },
        "options": async_redact_data(dict(entry.options), TO_REDACT),
        **_camera(entry, runtime.cameras[0]),
    }
    if any(camera.key is not None for camera in runtime.cameras):
        diagnostics["webcams"] = [
            {"key": camera.key, "name": camera.name, **_camera(entry, camera)}
            for camera in runtime.cameras
        ]
    if runtime.skipped:
        diagnostics["skipped_webcams"] = [asdict(webcam) for webcam in runtime.skipped]
    secrets = _secrets({**entry.data, **entry.options})
    result: dict[str, Any] = _scrub(diagnostics, secrets)
    return result


def _camera(entry: PrintCamConfigEntry, camera: CameraData) -> dict[str, Any]:
    """Return one camera's stream state, counters and source."""
    stream, source, coordinator = camera.stream, camera.source, camera.coordinator
    snapshot = stream.snapshot
    delivery = stream.delivery
    source_stats = asdict(source.stats)
    last_error = source_stats.pop("last_error")
    return {
        "stream": {
            "effective_options": asdict(stream.options),
            "snapshot": _snapshot(snapshot),
            "published": _snapshot(coordinator.data),
            "running": stream.running,
            "viewers": stream.viewers,
        },
        # Each layer counts its own events once: the stream (frames, skips
        # for max_fps), the source (connections, failures, bad frames) and
        # the fan-out (frames written to viewers, frames slow viewers lost).
        "counters": {
            "frames": snapshot.frames,
            "frames_dropped": snapshot.frames_dropped,
            "frames_skipped": snapshot.frames_skipped,
            "reconnects": snapshot.reconnects,
            "upstream_starts": snapshot.upstream_starts,
            "snapshots_pushed": coordinator.snapshots_seen,
            "source": source_stats,
            "fanout": {
                "delivered": delivery.delivered,
                "dropped_by_slow_viewers": delivery.dropped,
                "viewers": _viewers(stream),
            },
        },
        "source": {
            "family": source.family,
            "host": source.host,
            "connected": source.connected,
            "still_url": bool(entry.data.get(CONF_STILL_URL)),
            "last_error": last_error,
            **source.diagnostics(),
            **(
                {"transform": stream.transform.diagnostics()}
                if stream.transform is not None
                else {}
            ),
            "recent_errors": [
                {
                    "at": _timestamp(error.at),
                    "state": error.state.value,
                    "error": error.error,
                }
                for error in coordinator.recent_errors
            ],
        },
        "recording": camera.recorder.diagnostics(),
    }
