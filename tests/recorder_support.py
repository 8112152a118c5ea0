"""What the recording tests share: reading videos back, finding leftovers."""

from __future__ import annotations

import json
from pathlib import Path
import subprocess
from typing import Any


def ffprobe(path: Path) -> dict[str, Any]:
    """Return the video stream's codec, size and decoded frame count."""
    out = subprocess.run(  # noqa: S603 - a fixed command
        [  # noqa: S607
            "ffprobe",
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=codec_name,width,height,nb_read_frames,pix_fmt",
            "-of",
            "json",
            str(path),
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    stream = json.loads(out)["streams"][0]
    stream["nb_read_frames"] = int(stream["nb_read_frames"])
    return stream


def hidden(root: Path) -> list[str]:
    """Return every hidden file or folder under `root` (work folders, .part)."""
    if not root.exists():
        return []
    return sorted(
        str(path.relative_to(root))
        for path in root.rglob("*")
        if any(part.startswith(".") for part in path.relative_to(root).parts)
    )
