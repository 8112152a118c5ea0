"""A moving test pattern for the demo printer: 1280x720 grayscale JPEGs.

Each frame shows a gray gradient background, a bright box that sweeps left
to right and back (its position depends on the frame number) and, along the
top, a row of 8 blocks giving ``n % CYCLE`` in binary (white = 1). The images
repeat every `CYCLE` frames; they are encoded once each (pure Python, a few
tens of milliseconds) and cached, so serving 15 fps costs almost nothing.
Every frame also carries a COM segment with its full frame number and the
wall-clock time, so the bytes of consecutive frames always differ.
"""

from __future__ import annotations

import functools
import time
from typing import Final

from .jpeg import block_jpeg, with_comment

__all__ = ["CYCLE", "FPS", "HEIGHT", "WIDTH", "pattern_frame", "pattern_image"]

WIDTH: Final = 1280
HEIGHT: Final = 720
FPS: Final = 15.0
CYCLE: Final = 60
"""Frames before the picture repeats (4 seconds at 15 fps)."""

_COLS: Final = WIDTH // 8  # 160 blocks of 8x8 pixels
_ROWS: Final = HEIGHT // 8  # 90
_BOX: Final = 12  # box side, in blocks (96 px)
_BITS: Final = 8  # counter blocks along the top
_BIT_SIZE: Final = 4  # each counter "bit" is 4x4 blocks (32 px)


@functools.cache
def pattern_image(index: int) -> bytes:
    """Return the JPEG (without comment) of picture ``index`` (0..CYCLE-1)."""
    index %= CYCLE
    # Background: a horizontal gradient, darker at the bottom.
    levels = [
        [40 + (col * 80) // _COLS - (row * 20) // _ROWS for col in range(_COLS)]
        for row in range(_ROWS)
    ]
    # Moving box: triangle wave over the cycle, across the full width.
    half = CYCLE // 2
    phase = index if index < half else CYCLE - index
    x0 = (phase * (_COLS - _BOX)) // half
    y0 = (_ROWS - _BOX) // 2 + ((index * 7) % 9) - 4  # small vertical wobble
    for row in range(y0, y0 + _BOX):
        line = levels[row]
        for col in range(x0, x0 + _BOX):
            line[col] = 235
    # Counter: _BITS squares at the top left, most significant first.
    for bit in range(_BITS):
        on = (index >> (_BITS - 1 - bit)) & 1
        level = 250 if on else 20
        c0 = 2 + bit * (_BIT_SIZE + 1)
        for row in range(2, 2 + _BIT_SIZE):
            for col in range(c0, c0 + _BIT_SIZE):
                levels[row][col] = level
    # A fixed bright frame around the image, to see cropping/scaling.
    for col in range(_COLS):
        levels[0][col] = levels[_ROWS - 1][col] = 200
    for row in range(_ROWS):
        levels[row][0] = levels[row][_COLS - 1] = 200
    return block_jpeg(levels, WIDTH, HEIGHT)


def pattern_frame(n: int) -> bytes:
    """Return frame ``n``: the cached picture plus a per-frame COM segment."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
    return with_comment(pattern_image(n % CYCLE), f"frame {n} {stamp}Z".encode())


def warm_up() -> None:
    """Encode every picture of the cycle now (about a second in all)."""
    for index in range(CYCLE):
        pattern_image(index)
