"""Constants shared by every layer of PrintCam (no Home Assistant imports)."""

from __future__ import annotations

from typing import Final

DOMAIN: Final = "printcam"
