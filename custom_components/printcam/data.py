"""Typed runtime data of a PrintCam config entry.

`PrintCamData` is what a loaded entry holds; `SetupContext` is the staged
setup's record in it (what the stages built and have to undo), with the
`Stage` it is made of. `startup.py` runs the stages.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import CALLBACK_TYPE, HomeAssistant

if TYPE_CHECKING:
    from .coordinator import PrintCamCoordinator
    from .families import Cameras, SkippedWebcam
    from .recorder import CameraRecorder
    from .sources import FrameSource
    from .stream import PrintCamStream


@dataclass(slots=True)
class CameraData:
    """One camera of a loaded entry: its source, shared stream and state."""

    key: str | None
    """Stable id within the entry; None for the entry's only camera."""
    name: str | None
    """The webcam's name (entity names); None for the entry's only camera."""
    source: FrameSource
    stream: PrintCamStream
    coordinator: PrintCamCoordinator = field(init=False)
    """The stream's state for the entities (set by the coordinator stage)."""
    recorder: CameraRecorder = field(init=False)
    """Timelapses and clips of the stream (set by the recorders stage)."""


@dataclass(slots=True)
class PrintCamData:
    """What a loaded entry holds: its cameras, each with its shared stream.

    Most printers have one camera; an OctoPrint or Moonraker printer one per
    MJPEG webcam. `source`, `stream` and `coordinator` are the first's.
    """

    cameras: list[CameraData]
    context: SetupContext
    """The staged setup's record, which unload undoes."""
    skipped: list[SkippedWebcam] = field(default_factory=list)
    """Webcams the printer lists but PrintCam does not show, with the reason."""
    unique_ids: set[str] = field(default_factory=set)
    """Unique ids of the entities this setup made (older ones are stale)."""

    @property
    def source(self) -> FrameSource:
        """Return the first camera's source."""
        return self.cameras[0].source

    @property
    def stream(self) -> PrintCamStream:
        """Return the first camera's shared stream."""
        return self.cameras[0].stream

    @property
    def coordinator(self) -> PrintCamCoordinator:
        """Return the first camera's coordinator."""
        return self.cameras[0].coordinator


type PrintCamConfigEntry = ConfigEntry[PrintCamData]


@dataclass(slots=True)
class SetupContext:
    """What the stages build, and what has to be undone."""

    hass: HomeAssistant
    entry: PrintCamConfigEntry
    found: Cameras | None = None
    """What the family found to show (the build stage)."""
    cameras: list[CameraData] = field(default_factory=list)
    """Each camera with its stream (the probe stage)."""
    done: list[Stage] = field(default_factory=list)
    cleanups: list[CALLBACK_TYPE] = field(default_factory=list)


type StageFn = Callable[[SetupContext], Awaitable[None]]
type UndoFn = Callable[[SetupContext], Awaitable[bool]]


@dataclass(frozen=True, slots=True)
class Stage:
    """One named step of setup; `undo` returns False if it could not undo.

    With `undo_partial`, the undo also runs when the stage itself failed
    halfway (it copes with whatever the stage had built).
    """

    name: str
    run: StageFn
    undo: UndoFn | None = None
    undo_partial: bool = False
