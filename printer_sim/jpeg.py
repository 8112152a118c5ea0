"""Small, real, decodable JPEG frames for fake printers, in pure Python.

No numpy or Pillow: a tiny baseline encoder writes grayscale images whose
8x8 blocks are each one flat gray level. Such a block has only a DC
coefficient, so the entropy-coded data is just "DC difference, end of block"
per block, which is easy to get exactly right. The result is a standard
baseline JPEG (SOI, DQT, SOF0, DHT, SOS, EOI) that libjpeg, libjpeg-turbo
(turbojpeg) and Pillow decode, of any size: blocky test patterns up to
1280x720 and beyond cost a few kilobytes and a few milliseconds.

`numbered_jpeg(n)` gives a frame whose bytes differ per `n` (a COM segment
``frame n`` right after SOI), so tests can tell exactly which frame arrived.
"""

from __future__ import annotations

from collections.abc import Sequence
import functools
import re
import struct
from typing import Final

__all__ = [
    "TINY_JPEG",
    "block_jpeg",
    "frame_number",
    "numbered_jpeg",
    "solid_jpeg",
    "with_comment",
]

_SOI: Final = b"\xff\xd8"
_EOI: Final = b"\xff\xd9"

# Luminance DC Huffman table from ITU-T T.81 Annex K.3: code lengths 1..16 and
# the symbols (DC difference categories 0..11) in code order.
_DC_BITS: Final = (0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0)
_DC_SYMBOLS: Final = tuple(range(12))
# Flat blocks need a single AC symbol: 0x00, end of block. A one-symbol table
# gets the 1-bit code "0", which every decoder accepts.
_AC_BITS: Final = (1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
_AC_SYMBOLS: Final = (0x00,)
# A quantisation step of 8 turns the DC coefficient of a flat block,
# 8 * (level - 128), into exactly level - 128: categories stay <= 8.
_QUANT: Final = 8

_COMMENT_RE: Final = re.compile(rb"^\xff\xd8\xff\xfe..frame (\d+)", re.DOTALL)


def _huffman_codes(
    bits: Sequence[int], symbols: Sequence[int]
) -> dict[int, tuple[int, int]]:
    """Return ``symbol -> (code, length)`` for a canonical Huffman table (T.81 C)."""
    codes: dict[int, tuple[int, int]] = {}
    code = 0
    index = 0
    for length, count in enumerate(bits, start=1):
        for _ in range(count):
            codes[symbols[index]] = (code, length)
            code += 1
            index += 1
        code <<= 1
    return codes


_DC_CODES: Final = _huffman_codes(_DC_BITS, _DC_SYMBOLS)
_AC_EOB: Final = _huffman_codes(_AC_BITS, _AC_SYMBOLS)[0x00]


def _segment(marker: int, payload: bytes) -> bytes:
    """Return a marker segment: FF marker, big-endian length (incl. itself), data."""
    return struct.pack(">BBH", 0xFF, marker, len(payload) + 2) + payload


def _dht(table_class: int, bits: Sequence[int], symbols: Sequence[int]) -> bytes:
    """Return a DHT segment for table 0 of ``table_class`` (0 DC, 1 AC)."""
    return _segment(0xC4, bytes((table_class << 4, *bits, *symbols)))


class _BitWriter:
    """Collects entropy-coded bits MSB first, with 0xFF byte stuffing."""

    def __init__(self) -> None:
        self._out = bytearray()
        self._acc = 0
        self._nbits = 0

    def write(self, value: int, length: int) -> None:
        """Append the low ``length`` bits of ``value``."""
        self._acc = (self._acc << length) | (value & ((1 << length) - 1))
        self._nbits += length
        while self._nbits >= 8:
            self._nbits -= 8
            byte = (self._acc >> self._nbits) & 0xFF
            self._out.append(byte)
            if byte == 0xFF:
                self._out.append(0x00)  # stuffing: FF in data is never a marker
        self._acc &= (1 << self._nbits) - 1

    def finish(self) -> bytes:
        """Pad the last byte with 1 bits (as T.81 F.1.2.3 asks) and return all."""
        if self._nbits:
            self.write((1 << (8 - self._nbits)) - 1, 8 - self._nbits)
        return bytes(self._out)


def block_jpeg(
    levels: Sequence[Sequence[int]], width: int | None = None, height: int | None = None
) -> bytes:
    """Encode a grayscale baseline JPEG made of flat 8x8 blocks.

    ``levels[row][col]`` is the gray level (0-255) of the block at that
    position; every row must have the same length. ``width`` and ``height``
    default to 8 pixels per block and may be smaller (the last row/column of
    blocks is then cropped, as JPEG allows).
    """
    rows = len(levels)
    cols = len(levels[0]) if rows else 0
    if not rows or not cols or any(len(row) != cols for row in levels):
        raise ValueError("levels must be a non-empty rectangle")
    width = cols * 8 if width is None else width
    height = rows * 8 if height is None else height
    if (
        not (cols - 1) * 8 < width <= cols * 8
        or not (rows - 1) * 8 < height <= rows * 8
    ):
        raise ValueError("width/height do not match the number of blocks")
    if width > 0xFFFF or height > 0xFFFF:
        raise ValueError("JPEG images are at most 65535 pixels wide and high")

    writer = _BitWriter()
    previous = 0
    for row in levels:
        for level in row:
            if not 0 <= level <= 255:
                raise ValueError(f"gray level {level} is not in 0..255")
            dc = level - 128
            diff = dc - previous
            previous = dc
            category = abs(diff).bit_length()
            code, length = _DC_CODES[category]
            writer.write(code, length)
            if category:
                # Negative differences are sent as diff - 1 in `category` bits.
                writer.write(diff if diff > 0 else diff - 1, category)
            writer.write(*_AC_EOB)

    return b"".join(
        (
            _SOI,
            _segment(0xDB, bytes((0x00, *([_QUANT] * 64)))),
            _segment(0xC0, struct.pack(">BHHB", 8, height, width, 1) + b"\x01\x11\x00"),
            _dht(0, _DC_BITS, _DC_SYMBOLS),
            _dht(1, _AC_BITS, _AC_SYMBOLS),
            _segment(0xDA, b"\x01\x01\x00\x00\x3f\x00"),
            writer.finish(),
            _EOI,
        )
    )


def solid_jpeg(width: int, height: int, level: int = 128) -> bytes:
    """Return a ``width`` x ``height`` JPEG of one flat gray ``level``."""
    cols = -(-width // 8)
    rows = -(-height // 8)
    return block_jpeg([[level] * cols for _ in range(rows)], width, height)


def with_comment(jpeg: bytes, text: bytes) -> bytes:
    """Return ``jpeg`` with a COM segment carrying ``text`` right after SOI.

    Decoders skip COM segments, so the image is unchanged; only the bytes
    differ.
    """
    if not jpeg.startswith(_SOI):
        raise ValueError("not a JPEG")
    return _SOI + _segment(0xFE, text) + jpeg[2:]


TINY_JPEG: Final = block_jpeg([[32, 96], [160, 224]])
"""A valid 16x16 grayscale baseline JPEG (four gray squares), about 160 bytes."""


@functools.lru_cache(maxsize=256)
def numbered_jpeg(n: int) -> bytes:
    """Return a valid 16x16 JPEG whose bytes say ``frame n`` (in a COM segment)."""
    return with_comment(TINY_JPEG, f"frame {n}".encode("ascii"))


def frame_number(jpeg: bytes) -> int | None:
    """Return ``n`` for a frame made by `numbered_jpeg`, else None."""
    match = _COMMENT_RE.match(jpeg)
    return int(match.group(1)) if match else None
