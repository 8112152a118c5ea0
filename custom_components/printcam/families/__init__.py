"""Printer families: one module each, and the registry of them.

The config flow builds its menu and steps from `FAMILIES`; setup finds an
entry's family with `family_for`. A new family is a module here, a source in
`sources/` if its protocol is new, one line in `FAMILIES`, its strings and
its tests.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from custom_components.printcam.const import CONF_KIND

from .bambu import BambuFamily
from .base import (
    Cameras,
    CameraSpec,
    Checked,
    ConfirmChange,
    Discovered,
    Draft,
    Family,
    FormError,
    InvalidConfig,
    SkippedWebcam,
    StillFetcher,
)
from .mjpeg import MjpegFamily
from .moonraker import MoonrakerFamily
from .octoprint import OctoPrintFamily

FAMILIES: Final[dict[str, Family]] = {
    family.kind: family
    for family in (
        BambuFamily(),
        OctoPrintFamily(),
        MoonrakerFamily(),
        MjpegFamily(),
    )
}
"""Every family by kind, in the order of the add menu."""


def family_for(data: Mapping[str, Any]) -> Family:
    """Return the family of an entry's data; raise InvalidConfig if unknown."""
    kind = data.get(CONF_KIND)
    if not isinstance(kind, str) or (family := FAMILIES.get(kind)) is None:
        raise InvalidConfig(f"unknown printer family {kind!r}")
    return family


__all__ = [
    "FAMILIES",
    "CameraSpec",
    "Cameras",
    "Checked",
    "ConfirmChange",
    "Discovered",
    "Draft",
    "Family",
    "FormError",
    "InvalidConfig",
    "SkippedWebcam",
    "StillFetcher",
    "family_for",
]
