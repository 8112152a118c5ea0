"""The benchmark's frames: ~100 kB JPEGs made once, stamped when sent.

Each frame sent carries, in a JPEG comment segment right after SOI, its
sequence number and the CLOCK_MONOTONIC time (nanoseconds) at which the
camera handed it to its socket. CLOCK_MONOTONIC is one clock for every
process on a Linux machine, so a viewer in another process measures a
frame's latency as its own receive time minus the stamp. Decoders skip
comment segments; Home Assistant, PrintCam and the floor pass the JPEG
bytes through untouched.

The pictures are real JPEGs (a gradient with smooth noise, encoded by
Pillow at the quality that gives the wanted size), so anything that walks
the entropy-coded data meets realistic bytes; they are encoded once, so
stamping a frame costs one ~100 kB copy and no encoding.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
import io
import random
import re
import struct
import time
from typing import Final

__all__ = [
    "FRAME_BYTES",
    "STAMP_PREFIX_BYTES",
    "make_pictures",
    "parse_stamp",
    "stamp",
    "stamper",
]

FRAME_BYTES: Final = 100_000
"""Target size of a frame."""
WIDTH: Final = 1280
HEIGHT: Final = 720

_SOI: Final = b"\xff\xd8"
_COM: Final = b"\xff\xfe"
_TAG: Final = b"PCBENCH"
# SOI, COM marker, length, "PCBENCH <seq:10> <ns:20>".
_STAMP_TEXT_LEN: Final = len(_TAG) + 1 + 10 + 1 + 20
STAMP_PREFIX_BYTES: Final = 2 + 2 + 2 + _STAMP_TEXT_LEN
"""How many leading bytes of a frame hold its stamp."""
_STAMP_RE: Final = re.compile(
    rb"\A\xff\xd8\xff\xfe..PCBENCH (\d{10}) (\d{20})", re.DOTALL
)


def _encode(seed: int, quality: int) -> bytes:
    from PIL import Image

    rng = random.Random(seed)  # noqa: S311 - picture noise, not crypto
    small = (WIDTH // 16, HEIGHT // 16)
    noise = Image.frombytes("L", small, rng.randbytes(small[0] * small[1]))
    noise = noise.resize((WIDTH, HEIGHT), Image.Resampling.BICUBIC)
    gradient = Image.linear_gradient("L").resize((WIDTH, HEIGHT))
    image = Image.merge("RGB", (Image.blend(gradient, noise, 0.5), noise, gradient))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality)
    return out.getvalue()


def make_pictures(count: int = 30, size: int = FRAME_BYTES) -> list[bytes]:
    """Return ``count`` distinct 1280x720 JPEGs of about ``size`` bytes each.

    The JPEG quality is searched once on the first picture; the others use
    it (their sizes differ by a few percent).
    """
    low, high = 5, 95
    while low < high:  # the highest quality whose picture fits in size
        mid = (low + high + 1) // 2
        if len(_encode(0, mid)) <= size:
            low = mid
        else:
            high = mid - 1
    return [_encode(seed, low) for seed in range(count)]


def stamp(jpeg: bytes, seq: int, now_ns: int | None = None) -> bytes:
    """Return ``jpeg`` with a stamp comment: ``seq`` and the time (now by default)."""
    if now_ns is None:
        now_ns = time.monotonic_ns()
    text = b"%s %010d %020d" % (_TAG, seq % 10**10, now_ns)
    return _SOI + _COM + struct.pack(">H", len(text) + 2) + text + jpeg[2:]


def parse_stamp(head: bytes) -> tuple[int, int] | None:
    """Return (seq, monotonic ns) from a frame's first bytes, or None."""
    match = _STAMP_RE.match(head)
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2))


def stamper(pictures: Sequence[bytes]) -> Callable[[int], bytes]:
    """Return ``frame(n)``: picture ``n`` (cycling) stamped now with ``n``.

    Made for `printer_sim.MjpegPrinter`'s ``frames``, which calls it right
    before it writes the frame to a stream or answers a snapshot.
    """

    def frame(n: int) -> bytes:
        return stamp(pictures[n % len(pictures)], n)

    return frame
