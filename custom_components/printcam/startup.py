"""Staged setup of a PrintCam entry, with an undo for every stage.

`async_setup_entry` runs the stages in order. When one fails, every stage
already done is undone in reverse order and the failure becomes the Home
Assistant exception that makes the right thing happen: `ConfigEntryAuthFailed`
(a reauth flow), `ConfigEntryNotReady` (printer off or unreachable: Home
Assistant retries) or `ConfigEntryError` (the configuration itself is wrong).
Unloading runs the same undos, so rollback and unload cannot drift apart.
"""

from __future__ import annotations

from datetime import datetime, timedelta
import logging
from typing import TYPE_CHECKING, Final

from homeassistant.const import EVENT_HOMEASSISTANT_STOP, Platform
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.exceptions import (
    ConfigEntryAuthFailed,
    ConfigEntryError,
    ConfigEntryNotReady,
    HomeAssistantError,
)
from homeassistant.helpers import entity_registry as er, issue_registry as ir
from homeassistant.helpers.event import async_track_time_interval

from . import restream
from .const import DOMAIN, PROBE_TIMEOUT
from .coordinator import PrintCamCoordinator
from .data import CameraData, PrintCamData, SetupContext, Stage
from .families import InvalidConfig, family_for
from .families.bambu import printer_address
from .families.base import WrongPrinter
from .recorder import CameraRecorder, Work, clip_buffer_on, find_work, recordings_root
from .sources import (
    CameraPortClosed,
    CertificateMismatch,
    InvalidAuth,
    InvalidSerial,
    LiveviewDisabled,
    NotMjpeg,
    SourceError,
    SourceTimeout,
)
from .stream import PrintCamStream, StreamOptions, StreamSnapshot, StreamState
from .transform import FrameTransform

if TYPE_CHECKING:
    from .data import PrintCamConfigEntry

_LOGGER = logging.getLogger(__name__)

WEBCAM_RECHECK_INTERVAL: Final = timedelta(hours=1)
"""How often a printer's webcam list is read again (a change reloads)."""

PLATFORMS: list[Platform] = [
    Platform.BINARY_SENSOR,
    Platform.BUTTON,
    Platform.CAMERA,
    Platform.EVENT,
    Platform.SENSOR,
    Platform.SWITCH,
]


# --- the stages ------------------------------------------------------------------


class NoCameras(SourceError):
    """The printer lists no webcam PrintCam can show (yet): setup retries."""

    reason = "no_cameras"


async def _validate(ctx: SetupContext) -> None:
    """Check (and in future versions migrate) the entry's data."""
    family_for(ctx.entry.data).validate_data(ctx.entry.data)


async def _build_source(ctx: SetupContext) -> None:
    """Ask the family for the entry's cameras and build their sources.

    One for most printers; an OctoPrint or Moonraker printer's webcams are
    read from its API here (a refused key starts reauth).
    """
    family = family_for(ctx.entry.data)
    await family.async_verify_identity(ctx.hass, ctx.entry.data, ctx.entry.unique_id)
    found = await family.async_cameras(ctx.hass, ctx.entry.data)
    for spec in found.cameras:
        family.configure_source(spec.source, ctx.entry.options)
    ctx.found = found
    if not found.cameras:
        skipped = ", ".join(f"{w.name} ({w.detail or w.reason})" for w in found.skipped)
        raise NoCameras(f"no MJPEG webcam to show: {skipped or 'none listed'}")


def _stream_key(ctx: SetupContext, camera: str | None) -> str:
    entry_id = ctx.entry.entry_id
    return entry_id if camera is None else f"{entry_id}:{camera}"


async def _probe(ctx: SetupContext) -> None:
    """Make each camera's stream; open the first connection where asked.

    That connection is the stream's, not a throw-away: it stays open as a
    still holds it, so Home Assistant starting with a dashboard open makes
    one printer connection, not two.
    """
    entry, found = ctx.entry, ctx.found
    assert found is not None  # noqa: S101 - the build stage set it
    for spec in found.cameras:
        transform = None
        if spec.orientation is not None and not spec.orientation.identity:
            # Loads libturbojpeg (or Pillow) the first time: not in the loop.
            transform = await ctx.hass.async_add_executor_job(
                FrameTransform, spec.orientation
            )
        stream = PrintCamStream(
            _stream_key(ctx, spec.key),
            spec.source,
            StreamOptions.from_mapping(entry.options, spec.key),
            still_fetcher=spec.still_fetcher,
            transform=transform,
        )
        ctx.cameras.append(CameraData(spec.key, spec.name, spec.source, stream))
    for spec, camera in zip(found.cameras, ctx.cameras, strict=True):
        if spec.probe:
            await camera.stream.async_probe(PROBE_TIMEOUT)


async def _close_probe(ctx: SetupContext) -> bool:
    """Close the probe's connection (setup failed after or during it)."""
    for camera in ctx.cameras:
        await camera.stream.async_close()
    return True


async def _register_stream(ctx: SetupContext) -> None:
    """Register the cameras' streams with Home Assistant."""
    hass, entry, found = ctx.hass, ctx.entry, ctx.found
    assert found is not None  # noqa: S101 - the build stage set it
    entry.runtime_data = PrintCamData(
        cameras=ctx.cameras, context=ctx, skipped=list(found.skipped)
    )
    for camera in ctx.cameras:
        _register_camera(ctx, camera)
    stopped = False

    async def _on_stop(_event: Event) -> None:
        nonlocal stopped
        stopped = True
        # Recordings first: a running timelapse is saved to go on next time.
        await _stop_recorders(ctx)
        for camera in ctx.cameras:
            await camera.stream.async_close()

    remove_stop = hass.bus.async_listen_once(EVENT_HOMEASSISTANT_STOP, _on_stop)

    @callback
    def _remove_stop() -> None:
        if not stopped:  # a fired once-listener is already gone
            remove_stop()

    ctx.cleanups.append(_remove_stop)

    async def _on_update(hass: HomeAssistant, entry: PrintCamConfigEntry) -> None:
        # Options apply live: no reload, viewers keep their stream.
        restream.async_entry_updated(hass, entry)
        family = family_for(entry.data)
        for camera in ctx.cameras:
            stream = camera.stream
            stream.apply_options(StreamOptions.from_mapping(entry.options, camera.key))
            if family.configure_source(camera.source, entry.options):
                stream.restart()  # a new transcode needs a new session
            recorder = getattr(camera, "recorder", None)
            if recorder is not None:
                recorder.set_buffer(clip_buffer_on(entry.options, camera.key))

    ctx.cleanups.append(entry.add_update_listener(_on_update))
    restream.async_entry_updated(hass, entry)
    ctx.cleanups.append(lambda: restream.async_entry_unloaded(hass, entry))
    _watch_webcams(ctx, found.signature)
    for camera in ctx.cameras:
        camera.stream.start_keep_warm()


def _register_camera(ctx: SetupContext, camera: CameraData) -> None:
    """Turn one camera's failures into reauth and repair issues."""
    hass, entry, source, stream = ctx.hass, ctx.entry, camera.source, camera.stream

    @callback
    def _on_failure(error: SourceError) -> None:
        # The transition that causes them, once per permanent failure.
        if isinstance(error, InvalidAuth):
            # The printer refused the credentials while streaming.
            entry.async_start_reauth(hass)
        elif isinstance(error, CertificateMismatch):
            # Another certificate while streaming: the printer was reset
            # or replaced (or something else answers at its address).
            async_create_cert_issue(hass, entry, error)

    stream.on_failure = _on_failure

    @callback
    def _on_transition(snapshot: StreamSnapshot) -> None:
        # LAN Mode Liveview turned off on the printer: say which setting;
        # gone with the first frame after it is turned on again.
        if snapshot.state is StreamState.STREAMING:
            async_clear_liveview_issue(hass, entry)
        elif source.stats.last_reason == LiveviewDisabled.reason and (
            snapshot.state in (StreamState.RECONNECTING, StreamState.UNREACHABLE)
        ):
            async_create_liveview_issue(hass, entry)

    ctx.cleanups.append(stream.add_listener(_on_transition))


def _watch_webcams(ctx: SetupContext, signature: str) -> None:
    """Reload the entry when the printer's webcams change (checked hourly)."""
    hass, entry = ctx.hass, ctx.entry
    family = family_for(entry.data)

    async def _check(_now: datetime) -> None:
        try:
            now = await family.async_cameras_signature(hass, entry.data)
        except InvalidAuth as err:
            # The key was changed or revoked on the printer: ask for the new
            # one now, not at the next restart.
            _LOGGER.info("%s: %s", entry.title, err)
            entry.async_start_reauth(hass)
            return
        except SourceError as err:
            _LOGGER.debug("%s: webcams not checked: %s", entry.title, err)
            return
        if now is not None and now != signature:
            _LOGGER.info("%s: the printer's webcams changed: reloading", entry.title)
            hass.config_entries.async_schedule_reload(entry.entry_id)

    ctx.cleanups.append(
        async_track_time_interval(
            hass, _check, WEBCAM_RECHECK_INTERVAL, name=f"{entry.title} webcams"
        )
    )


async def _close_stream(ctx: SetupContext) -> bool:
    """Close every viewer, the upstream and the tasks; drop the listeners."""
    while ctx.cleanups:
        ctx.cleanups.pop()()
    return await _close_probe(ctx)


async def _start_coordinator(ctx: SetupContext) -> None:
    """Create each camera's coordinator and let it follow the stream."""
    for camera in ctx.cameras:
        camera.coordinator = PrintCamCoordinator(
            ctx.hass, ctx.entry, camera.stream, camera.name
        )
        camera.coordinator.async_start()


async def _stop_coordinator(ctx: SetupContext) -> bool:
    """Stop following the streams; cancel their pending publishes."""
    for camera in ctx.cameras:
        coordinator = getattr(camera, "coordinator", None)
        if coordinator is not None:
            await coordinator.async_shutdown()
    return True


async def _forward_platforms(ctx: SetupContext) -> None:
    """Set up the entity platforms; remove entities of webcams now gone."""
    hass, entry = ctx.hass, ctx.entry
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    if all(camera.key is None for camera in ctx.cameras):
        return  # the entry's one camera: nothing can have gone
    registry = er.async_get(hass)
    made = entry.runtime_data.unique_ids
    for entity in er.async_entries_for_config_entry(registry, entry.entry_id):
        if entity.unique_id not in made:
            _LOGGER.info(
                "%s: removing %s (its webcam is gone)", entry.title, entity.entity_id
            )
            registry.async_remove(entity.entity_id)


async def _unload_platforms(ctx: SetupContext) -> bool:
    """Unload the entity platforms."""
    return await ctx.hass.config_entries.async_unload_platforms(ctx.entry, PLATFORMS)


async def _start_recorders(ctx: SetupContext) -> None:
    """Give each camera its recorder; resume or finish what a past run left."""
    hass, entry = ctx.hass, ctx.entry
    for camera in ctx.cameras:
        camera.recorder = CameraRecorder(
            hass,
            entry_id=entry.entry_id,
            printer=entry.title,
            camera_key=camera.key,
            stream=camera.stream,
        )
        camera.recorder.set_buffer(clip_buffer_on(entry.options, camera.key))
    works = await hass.async_add_executor_job(
        find_work, recordings_root(hass), entry.entry_id
    )
    left: dict[int, list[Work]] = {}
    for work in works:
        # A webcam gone since: its recording is finished by the first camera.
        index = next(
            (
                i
                for i, c in enumerate(ctx.cameras)
                if c.key == work.manifest.get("camera")
            ),
            0,
        )
        left.setdefault(index, []).append(work)
    for index, found in left.items():
        await ctx.cameras[index].recorder.async_recover(found)
    # Home Assistant stopping closes them first (the register stage's listener).


async def _stop_recorders(ctx: SetupContext) -> bool:
    """Stop capturing: what was recorded stays on disk for the next setup."""
    for camera in ctx.cameras:
        recorder = getattr(camera, "recorder", None)
        if recorder is not None:
            await recorder.async_close()
    return True


STAGES: tuple[Stage, ...] = (
    Stage("validate", _validate),
    Stage("build_source", _build_source),
    Stage("probe", _probe, _close_probe, undo_partial=True),
    Stage("register_stream", _register_stream, _close_stream, undo_partial=True),
    Stage("coordinator", _start_coordinator, _stop_coordinator, undo_partial=True),
    Stage("recorders", _start_recorders, _stop_recorders, undo_partial=True),
    Stage(
        "forward_platforms", _forward_platforms, _unload_platforms, undo_partial=True
    ),
)


# --- repair issues -----------------------------------------------------------------


def _issue_id(key: str, entry: PrintCamConfigEntry) -> str:
    return f"{key}_{entry.entry_id}"


@callback
def _async_create_issue(
    hass: HomeAssistant,
    entry: PrintCamConfigEntry,
    key: str,
    severity: ir.IssueSeverity,
    **placeholders: str,
) -> None:
    """Raise the entry's repair issue `key` (named with the printer and address)."""
    ir.async_create_issue(
        hass,
        DOMAIN,
        _issue_id(key, entry),
        is_fixable=False,
        is_persistent=False,
        severity=severity,
        translation_key=key,
        translation_placeholders={
            "name": entry.title,
            "host": printer_address(entry.data),
            **placeholders,
        },
    )


@callback
def async_create_cert_issue(
    hass: HomeAssistant, entry: PrintCamConfigEntry, err: CertificateMismatch
) -> None:
    """Explain a changed printer certificate and how to accept it.

    The text names the address that presented the other certificate: the
    printer's configured one, the only address the pinned certificate is
    trusted at (discovery never moves a printer to an address presenting
    another certificate). Reconfigure then shows the old and the new address
    with both fingerprints before anything is trusted.
    """
    _async_create_issue(
        hass,
        entry,
        "cert_mismatch",
        ir.IssueSeverity.ERROR,
        expected=err.expected,
        presented=err.presented or "none",
    )


@callback
def async_clear_cert_issue(hass: HomeAssistant, entry: PrintCamConfigEntry) -> None:
    """Remove the certificate issue once the printer is trusted again."""
    ir.async_delete_issue(hass, DOMAIN, _issue_id("cert_mismatch", entry))


@callback
def async_create_liveview_issue(
    hass: HomeAssistant, entry: PrintCamConfigEntry
) -> None:
    """Tell the user to turn LAN Mode Liveview back on (X1 / H2 / P2S).

    The printer closes its camera port at once while it is off; PrintCam
    keeps retrying, and the issue goes away with the first frame.
    """
    _async_create_issue(hass, entry, "liveview_disabled", ir.IssueSeverity.WARNING)


@callback
def async_clear_liveview_issue(hass: HomeAssistant, entry: PrintCamConfigEntry) -> None:
    """Remove the liveview issue: frames come again."""
    ir.async_delete_issue(hass, DOMAIN, _issue_id("liveview_disabled", entry))


# --- running and undoing ---------------------------------------------------------


def _host_for(ctx: SetupContext) -> str:
    """Return where the printer is, for messages: its first camera, or its entry."""
    if ctx.found is not None and ctx.found.cameras:
        return ctx.found.cameras[0].source.host
    try:
        return family_for(ctx.entry.data).address(ctx.entry.data)
    except InvalidConfig:
        return ""


def _config_entry_error(err: Exception, ctx: SetupContext) -> HomeAssistantError:
    """Translate a stage's failure into the Home Assistant exception for it."""
    placeholders = {
        "name": ctx.entry.title,
        "host": _host_for(ctx),
        "error": str(err),
    }
    cls: type[HomeAssistantError]
    if isinstance(err, InvalidConfig):
        cls, key = ConfigEntryError, "invalid_config"
    elif isinstance(err, InvalidAuth):
        cls, key = ConfigEntryAuthFailed, "invalid_auth"
    elif isinstance(err, NotMjpeg):
        cls, key = ConfigEntryError, "not_mjpeg"
    elif isinstance(err, CertificateMismatch):
        # Only the user can decide to trust a new certificate.
        async_create_cert_issue(ctx.hass, ctx.entry, err)
        cls, key = ConfigEntryError, "cert_mismatch"
    elif isinstance(err, InvalidSerial):
        cls, key = ConfigEntryError, "invalid_serial"
    else:  # printer off, unreachable or too slow: Home Assistant retries
        cls = ConfigEntryNotReady
        if isinstance(err, SourceTimeout):
            key = "timeout"
        elif isinstance(err, NoCameras):
            key = "no_cameras"
        elif isinstance(err, WrongPrinter):
            key = "wrong_printer"
        elif isinstance(err, LiveviewDisabled):
            async_create_liveview_issue(ctx.hass, ctx.entry)
            key = "liveview_disabled"
        elif isinstance(err, CameraPortClosed):
            key = "camera_port_closed"
        else:
            key = "cannot_connect"
    return cls(
        translation_domain=DOMAIN,
        translation_key=key,
        translation_placeholders=placeholders,
    )


async def _unwind(ctx: SetupContext) -> bool:
    """Undo done stages in reverse order; stop at one that cannot undo."""
    while ctx.done:
        stage = ctx.done[-1]
        if stage.undo is not None:
            try:
                if not await stage.undo(ctx):
                    return False
            except Exception:
                _LOGGER.exception(
                    "%s: undoing stage %s failed", ctx.entry.title, stage.name
                )
        ctx.done.pop()
    return True


async def async_setup_staged(hass: HomeAssistant, entry: PrintCamConfigEntry) -> None:
    """Run every stage; on failure undo the done ones and raise."""
    ctx = SetupContext(hass, entry)
    try:
        for stage in STAGES:
            _LOGGER.debug("%s: setup stage %s", entry.title, stage.name)
            if stage.undo_partial:
                ctx.done.append(stage)
            await stage.run(ctx)
            if not stage.undo_partial:
                ctx.done.append(stage)
    except BaseException as err:
        await _unwind(ctx)
        if isinstance(err, InvalidConfig | SourceError):
            raise _config_entry_error(err, ctx) from err
        raise
    async_clear_cert_issue(hass, entry)
    async_clear_liveview_issue(hass, entry)


async def async_unload_staged(hass: HomeAssistant, entry: PrintCamConfigEntry) -> bool:
    """Undo every stage of a loaded entry."""
    return await _unwind(entry.runtime_data.context)
