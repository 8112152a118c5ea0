"""Typed runtime data of a PrintCam config entry."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from homeassistant.config_entries import ConfigEntry

if TYPE_CHECKING:
    from .coordinator import PrintCamCoordinator
    from .sources import FrameSource
    from .startup import SetupContext
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
