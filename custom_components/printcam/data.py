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
    from .sources import FrameSource
    from .stream import PrintCamStream


@dataclass(slots=True)
class PrintCamData:
    """What a loaded entry holds: its source and its shared stream."""

    source: FrameSource
    stream: PrintCamStream
    context: SetupContext
    """The staged setup's record, which unload undoes."""
    coordinator: PrintCamCoordinator = field(init=False)
    """The stream's state for the entities (set by the coordinator stage)."""


type PrintCamConfigEntry = ConfigEntry[PrintCamData]


@dataclass(slots=True)
class SetupContext:
    """What the stages build, and what has to be undone."""

    hass: HomeAssistant
    entry: PrintCamConfigEntry
    source: FrameSource | None = None
    stream: PrintCamStream | None = None
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
