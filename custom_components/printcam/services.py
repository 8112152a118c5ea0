"""PrintCam's actions: timelapses and clips of a printer camera.

Registered once, when the integration loads (not per entry), and aimed at
PrintCam camera entities (by entity, device or area). Every frame comes from
the camera's shared stream: an action never opens a printer connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Final

from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import Platform
from homeassistant.core import (
    HomeAssistant,
    ServiceCall,
    ServiceResponse,
    SupportsResponse,
    callback,
)
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import config_validation as cv, entity_registry as er
from homeassistant.helpers.service import async_extract_referenced_entity_ids
import voluptuous as vol

from .const import DOMAIN
from .data import CameraData, PrintCamConfigEntry
from .entity import unique_id_for
from .recorder import (
    CLIP_BUFFER_S,
    DEFAULT_CLIP_AFTER_S,
    DEFAULT_TIMELAPSE_FPS,
    DEFAULT_TIMELAPSE_INTERVAL_S,
    MAX_CLIP_AFTER_S,
    RecordingError,
    Video,
)

SERVICE_START_TIMELAPSE: Final = "start_timelapse"
SERVICE_STOP_TIMELAPSE: Final = "stop_timelapse"
SERVICE_RECORD_CLIP: Final = "record_clip"

ATTR_INTERVAL: Final = "interval"
ATTR_FPS: Final = "fps"
ATTR_BEFORE: Final = "before"
ATTR_AFTER: Final = "after"

_TARGET: Final = cv.make_entity_service_schema({})

START_TIMELAPSE_SCHEMA: Final = cv.make_entity_service_schema(
    {
        vol.Optional(ATTR_INTERVAL, default=DEFAULT_TIMELAPSE_INTERVAL_S): vol.All(
            vol.Coerce(float), vol.Range(min=1, max=3600)
        ),
        vol.Optional(ATTR_FPS, default=DEFAULT_TIMELAPSE_FPS): vol.All(
            vol.Coerce(float), vol.Range(min=1, max=60)
        ),
    }
)
RECORD_CLIP_SCHEMA: Final = cv.make_entity_service_schema(
    {
        vol.Optional(ATTR_BEFORE, default=0.0): vol.All(
            vol.Coerce(float), vol.Range(min=0, max=CLIP_BUFFER_S)
        ),
        vol.Optional(ATTR_AFTER, default=DEFAULT_CLIP_AFTER_S): vol.All(
            vol.Coerce(float), vol.Range(min=0, max=MAX_CLIP_AFTER_S)
        ),
    }
)


@dataclass(frozen=True, slots=True)
class Target:
    """A PrintCam camera an action is aimed at."""

    entity_id: str
    entry: PrintCamConfigEntry
    camera: CameraData


@callback
def async_targets(hass: HomeAssistant, call: ServiceCall) -> list[Target]:
    """Return the loaded PrintCam cameras a call targets.

    Raises ServiceValidationError when it targets none (another
    integration's camera, a printer not loaded).
    """
    registry = er.async_get(hass)
    selected = async_extract_referenced_entity_ids(hass, call)
    targets: list[Target] = []
    for entity_id in sorted(selected.referenced | selected.indirectly_referenced):
        entity = registry.async_get(entity_id)
        if (
            entity is None
            or entity.platform != DOMAIN
            or entity.domain != Platform.CAMERA
            or entity.config_entry_id is None
        ):
            if entity_id in selected.referenced:
                raise ServiceValidationError(
                    translation_domain=DOMAIN,
                    translation_key="not_printcam_camera",
                    translation_placeholders={"entity_id": entity_id},
                )
            continue
        entry: PrintCamConfigEntry | None = hass.config_entries.async_get_entry(
            entity.config_entry_id
        )
        if entry is None or entry.state is not ConfigEntryState.LOADED:
            raise ServiceValidationError(
                translation_domain=DOMAIN,
                translation_key="printer_not_loaded",
                translation_placeholders={"entity_id": entity_id},
            )
        targets.extend(
            Target(entity_id, entry, camera)
            for camera in entry.runtime_data.cameras
            if unique_id_for(entry, camera, "camera") == entity.unique_id
        )
    if not targets:
        raise ServiceValidationError(
            translation_domain=DOMAIN, translation_key="no_printcam_camera"
        )
    return targets


def _storage_error(target: Target, err: RecordingError) -> HomeAssistantError:
    return HomeAssistantError(
        translation_domain=DOMAIN,
        translation_key="recording_failed",
        translation_placeholders={
            "name": target.entry.title,
            "folder": str(target.camera.recorder.folder),
            "error": err.reason,
        },
    )


def _video_response(video: Video | None) -> dict[str, Any]:
    if video is None:
        return {"media_id": None}
    return video.event_data()


async def _responses(
    call: ServiceCall, tasks: dict[str, asyncio.Task[Video | None]]
) -> ServiceResponse:
    """Wait for the videos when the caller wants them; else return at once."""
    if not call.return_response:
        return None
    return {
        entity_id: _video_response(await asyncio.shield(task))
        for entity_id, task in tasks.items()
    }


async def _start_timelapse(hass: HomeAssistant, call: ServiceCall) -> ServiceResponse:
    targets = async_targets(hass, call)
    for target in targets:
        if target.camera.recorder.timelapse_running:
            raise ServiceValidationError(
                translation_domain=DOMAIN,
                translation_key="timelapse_running",
                translation_placeholders={"entity_id": target.entity_id},
            )
    for target in targets:
        try:
            await target.camera.recorder.async_start_timelapse(
                call.data[ATTR_INTERVAL], call.data[ATTR_FPS]
            )
        except RecordingError as err:
            raise _storage_error(target, err) from err
    return None


async def _stop_timelapse(hass: HomeAssistant, call: ServiceCall) -> ServiceResponse:
    targets = async_targets(hass, call)
    running = [t for t in targets if t.camera.recorder.timelapse_running]
    if not running:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="no_timelapse",
            translation_placeholders={
                "entity_id": ", ".join(t.entity_id for t in targets)
            },
        )
    tasks = {
        target.entity_id: await target.camera.recorder.async_stop_timelapse()
        for target in running
    }
    return await _responses(call, tasks)


async def _record_clip(hass: HomeAssistant, call: ServiceCall) -> ServiceResponse:
    targets = async_targets(hass, call)
    before, after = call.data[ATTR_BEFORE], call.data[ATTR_AFTER]
    if before <= 0 and after <= 0:
        raise ServiceValidationError(
            translation_domain=DOMAIN, translation_key="empty_clip"
        )
    for target in targets:
        if before > 0 and target.camera.recorder.buffer is None:
            raise ServiceValidationError(
                translation_domain=DOMAIN,
                translation_key="clip_buffer_off",
                translation_placeholders={"entity_id": target.entity_id},
            )
    tasks: dict[str, asyncio.Task[Video | None]] = {}
    for target in targets:
        try:
            tasks[target.entity_id] = await target.camera.recorder.async_start_clip(
                before, after
            )
        except RecordingError as err:
            raise _storage_error(target, err) from err
    return await _responses(call, tasks)


type _Handler = Callable[
    [HomeAssistant, ServiceCall], Coroutine[Any, Any, ServiceResponse]
]


@callback
def async_setup_services(hass: HomeAssistant) -> None:
    """Register PrintCam's actions (once, when the integration loads)."""

    def bind(
        handler: _Handler,
    ) -> Callable[[ServiceCall], Coroutine[Any, Any, ServiceResponse]]:
        async def handle(call: ServiceCall) -> ServiceResponse:
            return await handler(hass, call)

        return handle

    hass.services.async_register(
        DOMAIN,
        SERVICE_START_TIMELAPSE,
        bind(_start_timelapse),
        schema=START_TIMELAPSE_SCHEMA,
    )
    hass.services.async_register(
        DOMAIN,
        SERVICE_STOP_TIMELAPSE,
        bind(_stop_timelapse),
        schema=_TARGET,
        supports_response=SupportsResponse.OPTIONAL,
    )
    hass.services.async_register(
        DOMAIN,
        SERVICE_RECORD_CLIP,
        bind(_record_clip),
        schema=RECORD_CLIP_SCHEMA,
        supports_response=SupportsResponse.OPTIONAL,
    )
