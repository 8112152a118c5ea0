"""Simulated 3D printer cameras for PrintCam's tests and demo.

Each fake printer is a real server on 127.0.0.1 that behaves like a family of
real printers (docs/printers.md), counts the connections it accepts and,
when closed, waits until every one of them is closed, so a test leaves no
sockets or tasks behind.

- `MjpegPrinter`: MJPEG over HTTP (``multipart/x-mixed-replace``) with the
  quirks of real camera servers, basic/digest auth and one-client limits.
- `RtspsPrinter`: a Bambu Lab X1-style RTSPS camera (H.264, port-322
  protocol), Debian's GStreamer RTSP server run by the system Python;
  `rtsps_available` says whether this machine can run it.
- `numbered_jpeg`, `solid_jpeg`, `block_jpeg`: real, decodable JPEG frames
  made in pure Python.
"""

from __future__ import annotations

from .jpeg import (
    TINY_JPEG,
    block_jpeg,
    frame_number,
    numbered_jpeg,
    solid_jpeg,
    with_comment,
)
from .mjpeg_server import (
    MODES,
    ConnectionRecord,
    MjpegPrinter,
    RequestRecord,
    self_signed_ssl_context,
)
from .rtsps import RtspsPrinter, rtsps_available

__all__ = [
    "MODES",
    "TINY_JPEG",
    "ConnectionRecord",
    "MjpegPrinter",
    "RequestRecord",
    "RtspsPrinter",
    "block_jpeg",
    "frame_number",
    "numbered_jpeg",
    "rtsps_available",
    "self_signed_ssl_context",
    "solid_jpeg",
    "with_comment",
]
