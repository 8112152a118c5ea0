"""Simulated 3D printer cameras for PrintCam's tests and demo.

Each fake printer is a real server on 127.0.0.1 that behaves like a family of
real printers (docs/printers.md), counts the connections it accepts and,
when closed, waits until every one of them is closed, so a test leaves no
sockets or tasks behind.

- `MjpegPrinter`: MJPEG over HTTP (``multipart/x-mixed-replace``) with the
  quirks of real camera servers, basic/digest auth and one-client limits.
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

__all__ = [
    "MODES",
    "TINY_JPEG",
    "ConnectionRecord",
    "MjpegPrinter",
    "RequestRecord",
    "block_jpeg",
    "frame_number",
    "numbered_jpeg",
    "self_signed_ssl_context",
    "solid_jpeg",
    "with_comment",
]
