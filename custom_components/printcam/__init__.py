"""PrintCam: one shared camera connection per 3D printer."""

from __future__ import annotations
