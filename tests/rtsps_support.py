"""What the RTSPS tests share: the real peers they need, and process checks.

Debian's GStreamer RTSP server (run by the system Python) and Debian's
ffmpeg; `scripts/setup` installs both, so CI runs these tests. Probed once
per test session (the probe runs the system Python, about 0.2 s).
"""

from __future__ import annotations

import os
from pathlib import Path
import shutil

from printer_sim.rtsps import rtsps_available

FFMPEG = shutil.which("ffmpeg") or "/usr/bin/ffmpeg"


def _skip_reason() -> str | None:
    if (reason := rtsps_available()) is not None:
        return f"RTSPS server unavailable: {reason} (run scripts/setup as root)"
    if not Path(FFMPEG).exists():
        return "ffmpeg missing (scripts/setup installs it)"
    return None


SKIP_REASON = _skip_reason()
"""None where the RTSPS tests can run, else why not."""


def reaped(pid: int | None) -> bool:
    """Return True once the process `pid` is gone (exited and waited for)."""
    assert pid is not None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False
