"""Turn a printer webcam's frames the way the printer's own UI shows them.

A camera mounted upside down or sideways is fixed in the printer's settings,
and the printer's web UI turns the picture in the browser (CSS). PrintCam's
viewers never see that UI, so the shared stream applies the same flip and
rotation to each JPEG **once**, before the fan-out; every viewer and every
still gets the same turned bytes.

Conventions (what the printer's UI does, in order)
--------------------------------------------------

`Orientation` is one normalised description: **flip first, in the camera's
own picture, then rotate clockwise**. Each server's settings map onto it:

* OctoPrint (``flipH``, ``flipV``, ``rotate90``): the classic webcam
  template puts the flip classes on the ``<img>`` (``.flipH`` =
  ``scaleX(-1)``, ``.flipV`` = ``scaleY(-1)``) and ``rotate90`` on its
  container (``.webcam_rotated .webcam_fixed_ratio`` =
  ``transform: rotate(-90deg)``): the image is flipped inside a box that is
  then turned 90° **counter-clockwise**. The timelapse renderer agrees:
  ffmpeg ``hflip,vflip,transpose=2`` (flips, then 90° CCW). So:
  flips as given, ``rotate_cw = 270`` when ``rotate90``.
  (OctoPrint ``src/octoprint/plugins/classicwebcam/templates/
  classicwebcam_webcam.jinja2``, ``static/less/classicwebcam.less``,
  ``static/less/octoprint.less``, ``timelapse.py`` ``_create_filter_string``.)
* Moonraker (``flip_horizontal``, ``flip_vertical``, ``rotation`` 0/90/180/
  270, clockwise): Mainsail (``generateTransform`` in
  ``src/components/mixins/webcam.ts``) and Fluidd (``createTransform`` in
  ``src/mixins/camera.ts``) both set one CSS list
  ``scaleX(-1) scaleY(-1) rotate(<rotation>deg)`` on the picture. A CSS
  transform list applies right to left, so the picture is **rotated
  clockwise first and then flipped on screen**. (Mainsail's adaptive
  streamer draws the rotation into a canvas and flips the canvas: the same
  order.) A screen flip after a quarter turn is the other flip before it,
  so for 90/270 the two flags swap: ``H∘R = R∘V``.

The order matters only for one flip with a quarter turn: Moonraker
``flip_horizontal`` + 90° shows the camera's top-left corner at the
top-left, flip-then-rotate would put it at the bottom-right.

How a frame is turned
---------------------

Every orientation is one of the 8 lossless JPEG transforms of libjpeg-turbo
(``TJXOP_HFLIP`` ... ``TJXOP_TRANSVERSE``): the DCT blocks are reordered and
re-entropy-coded, nothing is decoded to pixels, no quality is lost. The
installed PyTurboJPEG (Home Assistant's ``TurboJPEGSingleton``) only uses
``tjTransform`` to crop, so it is called here through ctypes on the very
library PyTurboJPEG loaded (its bound ``tjTransform``, ``tjFree``, ...),
with ``tjtransform`` / ``tjregion`` laid out as in ``turbojpeg.h``; output
buffers are always released with ``tjFree``, handles with ``tjDestroy``.
Markers (comments, EXIF) are copied.

Edges: a lossless transform moves whole MCUs (8 or 16 pixels; 16x16 for
4:2:0). When the edge it has to move is a partial MCU (1920x1080 in 4:2:0:
1080 = 67.5 x 16) it cannot be moved losslessly. ``Strategy.TRIM`` (the
default) drops that partial MCU (``TJXOPT_TRIM``): at most 15 pixels (31 for
4:1:1 widths) on the affected edge, e.g. 1920x1080 4:2:0 flipped vertically
is 1920x1072. The frame stays lossless (no generation loss), costs at most
what re-encoding costs (half of it at 1280x720), and a few pixels at the
edge of a printer camera's picture are not missed. ``Strategy.EXACT`` keeps
every pixel: such frames are decoded, turned with numpy and encoded again
at the source's estimated quality and chroma subsampling (the picture
loses a JPEG generation). Frames whose transform is perfect (1280x720,
640x480, 1920x1080 in 4:2:2, any hflip of a 1920-wide frame) are lossless
in both. A picture smaller than one MCU cannot be trimmed: it is decoded in
both.

Without TurboJPEG (libturbojpeg missing, or a PyTurboJPEG whose internals
are not where they were) frames are decoded, turned and encoded by Pillow,
a Home Assistant core requirement; without Pillow they pass through
unchanged, and `FrameTransform.backend` / `diagnostics` say so (one warning
in the log).

Cost (`bench/transform.py`: realistic 4:2:0 frames, one thread of a busy
2-vCPU AMD EPYC VM, median per frame): lossless 1.9-2.8 ms at 1280x720
(~100 kB) and 4.3-6 ms at 1920x1080 (~225 kB), except rot90, rot270 and
transverse there (~10 ms); decode + turn + encode 3.5-4.3 ms and 8.3-10.3
ms; Pillow about the same. The call is synchronous and
CPU-bound; ctypes releases the GIL inside libjpeg-turbo, so run it in an
executor (``hass.async_add_executor_job``), one frame at a time and in
order, rather than blocking the event loop that long for every frame.
`FrameTransform.identity` tells the caller there is nothing to do at all.

Broken input (not a JPEG, truncated, corrupt beyond decoding) raises
`TransformError` and is counted; the caller drops the frame. libjpeg
*warnings* that still give a whole picture (e.g. "extraneous bytes before
marker", common with cheap cameras that browsers show happily) keep the
frame and are counted; a premature end of data is an error.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from enum import IntEnum, StrEnum
import io
import logging
from types import ModuleType
from typing import Any, Final

from homeassistant.components.camera.img_util import TurboJPEGSingleton

_PIL_IMAGE: ModuleType | None
try:  # imported with the integration (in the import executor), not per frame
    import PIL.Image
except ImportError:  # pragma: no cover - Pillow is a Home Assistant requirement
    _PIL_IMAGE = None
else:
    _PIL_IMAGE = PIL.Image

_LOGGER = logging.getLogger(__name__)

__all__ = [
    "Backend",
    "FrameTransform",
    "Orientation",
    "Strategy",
    "TransformError",
    "TransformStats",
    "estimate_quality",
]


class TransformError(Exception):
    """A frame could not be turned (broken JPEG); the caller drops it."""


# --- orientation ----------------------------------------------------------


class _Op(IntEnum):
    """libjpeg-turbo's lossless transforms (``TJXOP_*`` in turbojpeg.h)."""

    NONE = 0
    HFLIP = 1
    VFLIP = 2
    TRANSPOSE = 3
    """Mirror across the top-left to bottom-right diagonal."""
    TRANSVERSE = 4
    """Mirror across the top-right to bottom-left diagonal."""
    ROT90 = 5
    """Rotate 90 degrees clockwise."""
    ROT180 = 6
    ROT270 = 7
    """Rotate 270 degrees clockwise (90 counter-clockwise)."""


type _Matrix = tuple[int, int, int, int]
"""A 2x2 matrix (a, b, c, d) mapping a centred source pixel (x right, y down)
to (a*x + b*y, c*x + d*y) in the output."""

_OP_MATRIX: Final[dict[_Op, _Matrix]] = {
    _Op.NONE: (1, 0, 0, 1),
    _Op.HFLIP: (-1, 0, 0, 1),
    _Op.VFLIP: (1, 0, 0, -1),
    _Op.TRANSPOSE: (0, 1, 1, 0),
    _Op.TRANSVERSE: (0, -1, -1, 0),
    _Op.ROT90: (0, -1, 1, 0),
    _Op.ROT180: (-1, 0, 0, -1),
    _Op.ROT270: (0, 1, -1, 0),
}
_MATRIX_OP: Final[dict[_Matrix, _Op]] = {m: op for op, m in _OP_MATRIX.items()}
_ROTATIONS: Final = (0, 90, 180, 270)


def _mul(left: _Matrix, right: _Matrix) -> _Matrix:
    """Return left·right: ``right`` applied first, then ``left``."""
    a, b, c, d = left
    e, f, g, h = right
    return (a * e + b * g, a * f + b * h, c * e + d * g, c * f + d * h)


@dataclass(frozen=True, slots=True)
class Orientation:
    """How to turn a camera's picture: flip first, then rotate clockwise.

    ``flip_h`` mirrors left and right, ``flip_v`` top and bottom, both in the
    camera's own picture; ``rotate_cw`` (0, 90, 180 or 270; other multiples
    of 90 are reduced) then turns the flipped picture clockwise. Different
    fields may describe the same picture (both flips = 180°): compare
    `transform_id` for that; `identity` is True whenever nothing changes.
    """

    flip_h: bool = False
    flip_v: bool = False
    rotate_cw: int = 0

    def __post_init__(self) -> None:
        """Reduce the rotation to 0..270; refuse one that is not a quarter turn."""
        if isinstance(self.rotate_cw, bool) or not isinstance(self.rotate_cw, int):
            raise TypeError(f"rotate_cw must be an int, not {self.rotate_cw!r}")
        if self.rotate_cw % 90:
            raise ValueError(f"rotation must be a multiple of 90, not {self.rotate_cw}")
        object.__setattr__(self, "rotate_cw", self.rotate_cw % 360)

    @classmethod
    def from_octoprint(
        cls,
        flipH: bool = False,  # noqa: N803 - OctoPrint's setting names
        flipV: bool = False,  # noqa: N803
        rotate90: bool = False,
    ) -> Orientation:
        """Return the orientation OctoPrint's webcam settings show.

        OctoPrint flips the image and then turns it 90° counter-clockwise
        (``rotate90``): that is this class's own order.
        """
        return cls(bool(flipH), bool(flipV), 270 if rotate90 else 0)

    @classmethod
    def from_moonraker(
        cls,
        flip_horizontal: bool = False,
        flip_vertical: bool = False,
        rotation: int = 0,
    ) -> Orientation:
        """Return the orientation a Moonraker webcam's settings show.

        Mainsail and Fluidd rotate clockwise by ``rotation`` first and flip
        the rotated picture on screen; after a quarter turn a screen flip is
        the other flip of the camera's picture, so the flags swap.
        """
        if isinstance(rotation, bool) or rotation not in _ROTATIONS:
            raise ValueError(
                f"Moonraker rotation must be 0/90/180/270, not {rotation!r}"
            )
        flip_h, flip_v = bool(flip_horizontal), bool(flip_vertical)
        if rotation in (90, 270):
            flip_h, flip_v = flip_v, flip_h
        return cls(flip_h, flip_v, rotation)

    @property
    def _op(self) -> _Op:
        flip = (-1 if self.flip_h else 1, 0, 0, -1 if self.flip_v else 1)
        rotation = _OP_MATRIX[_Op.NONE]
        for _ in range(self.rotate_cw // 90):
            rotation = _mul(_OP_MATRIX[_Op.ROT90], rotation)
        return _MATRIX_OP[_mul(rotation, flip)]

    @property
    def identity(self) -> bool:
        """Return True when the picture is left as it is."""
        return self._op is _Op.NONE

    @property
    def swaps_axes(self) -> bool:
        """Return True when width and height trade places (a quarter turn)."""
        return self._op in (_Op.TRANSPOSE, _Op.TRANSVERSE, _Op.ROT90, _Op.ROT270)

    @property
    def transform_id(self) -> str:
        """Return the one transform this is ("hflip", "rot90", ...; "none")."""
        return self._op.name.lower()

    def as_dict(self) -> dict[str, Any]:
        """Return the fields and the resulting transform, for diagnostics."""
        return {
            "flip_h": self.flip_h,
            "flip_v": self.flip_v,
            "rotate_cw": self.rotate_cw,
            "transform": self.transform_id,
        }


# --- libjpeg-turbo through the library PyTurboJPEG loaded -------------------

# turbojpeg.h (ABI-stable since libjpeg-turbo 1.4 / 2.0)
_TJXOPT_PERFECT: Final = 1
_TJXOPT_TRIM: Final = 2
_TJERR_WARNING: Final = 0
_TJPF_RGBX: Final = 2
_TJPF_GRAY: Final = 6
_TJSAMP_420: Final = 2
_TJSAMP_GRAY: Final = 3
_TJCS_CMYK: Final = 3
_TJCS_YCCK: Final = 4
# MCU size by subsampling: 444, 422, 420, GRAY, 440, 411, 441 (3.1)
_MCU_WIDTH: Final = (8, 16, 16, 8, 8, 32, 8)
_MCU_HEIGHT: Final = (8, 8, 16, 8, 16, 8, 32)
_EOF_WARNING: Final = "Premature end of JPEG file"
"""libjpeg's JWRN_JPEG_EOF: the data stopped before the picture did."""

_TRIMS_WIDTH: Final = frozenset({_Op.HFLIP, _Op.ROT270, _Op.ROT180, _Op.TRANSVERSE})
_TRIMS_HEIGHT: Final = frozenset({_Op.VFLIP, _Op.ROT90, _Op.ROT180, _Op.TRANSVERSE})
"""Which source edge each transform must move as a whole MCU (transupp.c,
jtransform_perfect_transform)."""


class _TjRegion(ctypes.Structure):
    _fields_ = (
        ("x", ctypes.c_int),
        ("y", ctypes.c_int),
        ("w", ctypes.c_int),
        ("h", ctypes.c_int),
    )


class _TjTransform(ctypes.Structure):
    _fields_ = (
        ("r", _TjRegion),
        ("op", ctypes.c_int),
        ("options", ctypes.c_int),
        ("data", ctypes.c_void_p),
        ("customFilter", ctypes.c_void_p),  # a function pointer; NULL
    )


class _Unavailable(Exception):
    """PyTurboJPEG does not expose what the lossless path needs."""


@dataclass(frozen=True, slots=True)
class _Header:
    width: int
    height: int
    subsamp: int
    colorspace: int


class _TurboLib:
    """The libjpeg-turbo functions, bound to the library PyTurboJPEG loaded.

    PyTurboJPEG keeps each function it loaded as a private attribute of its
    instance (``_TurboJPEG__transform`` ...). Fresh ctypes prototypes are
    made on those functions' addresses, so PyTurboJPEG's own argtypes are
    neither relied upon nor changed. Every call gets its own handle
    (creating one costs about a microsecond), so any thread may call.
    """

    def __init__(self, turbo: Any) -> None:
        attrs: dict[str, Any] = vars(turbo)
        c_int, c_void_p, c_ulong = ctypes.c_int, ctypes.c_void_p, ctypes.c_ulong
        c_int_p = ctypes.POINTER(c_int)

        def bind(name: str, restype: Any, *argtypes: Any) -> Any:
            function = attrs.get(f"_TurboJPEG__{name}")
            if function is None:
                raise _Unavailable(f"PyTurboJPEG has no {name}")
            address = ctypes.cast(function, c_void_p).value
            if not address:
                raise _Unavailable(f"PyTurboJPEG's {name} has no address")
            return ctypes.CFUNCTYPE(restype, *argtypes)(address)

        self.turbo = turbo  # keeps the library loaded
        self.init = bind("init_transform", c_void_p)
        self.destroy = bind("destroy", c_int, c_void_p)
        self.free = bind("free", None, c_void_p)
        self.header = bind(
            "decompress_header",
            c_int,
            c_void_p,
            ctypes.c_char_p,
            c_ulong,
            c_int_p,
            c_int_p,
            c_int_p,
            c_int_p,
        )
        self.transform = bind(
            "transform",
            c_int,
            c_void_p,
            ctypes.c_char_p,
            c_ulong,
            c_int,
            ctypes.POINTER(c_void_p),
            ctypes.POINTER(c_ulong),
            ctypes.POINTER(_TjTransform),
            c_int,
        )
        self.decompress = bind(
            "decompress",
            c_int,
            c_void_p,
            ctypes.c_char_p,
            c_ulong,
            c_void_p,
            c_int,
            c_int,
            c_int,
            c_int,
            c_int,
        )
        self.error_str2 = (
            bind("get_error_str2", ctypes.c_char_p, c_void_p)
            if attrs.get("_TurboJPEG__get_error_str2") is not None
            else None
        )
        self.error_str = bind("get_error_str", ctypes.c_char_p)
        self.error_code = (
            bind("get_error_code", c_int, c_void_p)
            if attrs.get("_TurboJPEG__get_error_code") is not None
            else None
        )

    def check(self, handle: int, status: int, what: str) -> str | None:
        """Raise for a failed call; return a warning's text (frame usable)."""
        if status == 0:
            return None
        raw = (
            self.error_str2(handle) if self.error_str2 is not None else self.error_str()
        )
        message = raw.decode(errors="replace") if raw else "unknown error"
        warning = (
            self.error_code is not None and self.error_code(handle) == _TJERR_WARNING
        )
        if warning and _EOF_WARNING not in message:
            return message
        if warning:
            raise TransformError(f"truncated JPEG: {message}")
        raise TransformError(f"{what}: {message}")

    def read_header(self, handle: int, jpeg: bytes) -> _Header:
        """Return the frame's size, subsampling and colour space."""
        width, height, subsamp, colorspace = (ctypes.c_int() for _ in range(4))
        status = self.header(
            handle,
            jpeg,
            len(jpeg),
            ctypes.byref(width),
            ctypes.byref(height),
            ctypes.byref(subsamp),
            ctypes.byref(colorspace),
        )
        self.check(handle, status, "bad JPEG header")
        return _Header(width.value, height.value, subsamp.value, colorspace.value)

    def lossless(
        self, handle: int, jpeg: bytes, op: _Op, options: int
    ) -> tuple[bytes, str | None]:
        """Return the transformed JPEG and a libjpeg warning, if any."""
        spec = _TjTransform(_TjRegion(0, 0, 0, 0), int(op), options, None, None)
        out = ctypes.c_void_p()
        size = ctypes.c_ulong(0)
        try:
            status = self.transform(
                handle,
                jpeg,
                len(jpeg),
                1,
                ctypes.byref(out),
                ctypes.byref(size),
                ctypes.byref(spec),
                0,
            )
            warning = self.check(handle, status, "lossless transform failed")
            if not out.value or not size.value:
                raise TransformError("lossless transform returned nothing")
            return ctypes.string_at(out.value, size.value), warning
        finally:
            if out.value:
                self.free(out)

    def decode(
        self, handle: int, jpeg: bytes, header: _Header
    ) -> tuple[Any, str | None]:
        """Return the frame's pixels and a warning.

        The pixels are a 2-D numpy array, one element per pixel: uint32
        RGBX for colour (whole pixels move ~10x faster than 3-byte ones),
        uint8 for grey.
        """
        import numpy as np

        gray = header.subsamp == _TJSAMP_GRAY
        pixels = np.empty(
            (header.height, header.width), dtype=np.uint8 if gray else np.uint32
        )
        status = self.decompress(
            handle,
            jpeg,
            len(jpeg),
            pixels.ctypes.data,
            header.width,
            pixels.strides[0],
            header.height,
            _TJPF_GRAY if gray else _TJPF_RGBX,
            0,
        )
        return pixels, self.check(handle, status, "JPEG decoding failed")


def _turn_pixels(pixels: Any, op: _Op) -> Any:
    """Return the numpy picture (rows, columns[, ...]) turned by ``op`` (a view)."""
    match op:
        case _Op.HFLIP:
            return pixels[:, ::-1]
        case _Op.VFLIP:
            return pixels[::-1]
        case _Op.TRANSPOSE:
            return pixels.swapaxes(0, 1)
        case _Op.TRANSVERSE:
            return pixels[::-1, ::-1].swapaxes(0, 1)
        case _Op.ROT90:
            return pixels[::-1].swapaxes(0, 1)
        case _Op.ROT180:
            return pixels[::-1, ::-1]
        case _Op.ROT270:
            return pixels[:, ::-1].swapaxes(0, 1)
        case _:
            return pixels


def _is_perfect(op: _Op, header: _Header) -> bool:
    """Return True when ``op`` moves only whole MCUs (nothing to trim)."""
    if not 0 <= header.subsamp < len(_MCU_WIDTH):
        return False
    if op in _TRIMS_WIDTH and header.width % _MCU_WIDTH[header.subsamp]:
        return False
    return not (op in _TRIMS_HEIGHT and header.height % _MCU_HEIGHT[header.subsamp])


def _is_trimmable(op: _Op, header: _Header) -> bool:
    """Return True when trimming leaves at least one MCU where it trims."""
    if not 0 <= header.subsamp < len(_MCU_WIDTH):
        return True  # libjpeg-turbo knows its MCU; it trims what it must
    if op in _TRIMS_WIDTH and header.width < _MCU_WIDTH[header.subsamp]:
        return False
    return not (op in _TRIMS_HEIGHT and header.height < _MCU_HEIGHT[header.subsamp])


DEFAULT_QUALITY: Final = 90
"""Re-encoding quality when the source's cannot be estimated."""
MAX_QUALITY: Final = 95
"""Re-encoding above this only makes frames larger."""

# libjpeg's standard luminance quantisation table (jcparam.c, ITU T.81 K.1);
# its quality setting scales this table.
_STD_LUMINANCE: Final = (
    16, 11, 10, 16, 24, 40, 51, 61,
    12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77,
    24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101,
    72, 92, 95, 98, 112, 100, 103, 99,
)  # fmt: skip
_STD_LUMINANCE_SUM: Final = sum(_STD_LUMINANCE)


def estimate_quality(jpeg: bytes) -> int | None:
    """Return the libjpeg-style quality (1..100) ``jpeg`` was encoded at.

    Reads the first luminance quantisation table (DQT, before the scan)
    and inverts libjpeg's quality scaling on its sum (the order of the
    entries does not matter for a sum). None when there is no such table.
    """
    pos, end = 2, len(jpeg)
    while pos + 4 <= end:
        if jpeg[pos] != 0xFF:
            return None
        marker = jpeg[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0xDA, 0xD9):  # the scan (or the end) came first
            return None
        length = int.from_bytes(jpeg[pos + 2 : pos + 4])
        if marker == 0xDB:
            segment = jpeg[pos + 4 : pos + 2 + length]
            i = 0
            while i < len(segment):
                wide, table_id = segment[i] >> 4, segment[i] & 0x0F
                size = 128 if wide else 64
                values = segment[i + 1 : i + 1 + size]
                if len(values) < size:
                    return None
                if table_id == 0:
                    if wide:
                        total = sum(
                            int.from_bytes(values[j : j + 2]) for j in range(0, 128, 2)
                        )
                    else:
                        total = sum(values)
                    scale = total * 100 / _STD_LUMINANCE_SUM
                    quality = 5000 / scale if scale > 100 else (200 - scale) / 2
                    return max(1, min(100, round(quality)))
                i += 1 + size
        pos += 2 + length
    return None


def _require_soi(jpeg: bytes) -> None:
    """Raise `TransformError` unless ``jpeg`` is bytes starting a JPEG."""
    if not isinstance(jpeg, bytes) or not jpeg.startswith(b"\xff\xd8"):
        raise TransformError("not a JPEG (no SOI marker)")


def _pillow() -> ModuleType | None:
    """Return ``PIL.Image``, or None when Pillow could not be imported."""
    return _PIL_IMAGE


# --- the per-stream transform ---------------------------------------------


class Strategy(StrEnum):
    """What to do with an edge a lossless transform cannot move (see module doc)."""

    TRIM = "trim"
    """Lossless always; a partial MCU on the moved edge is dropped (default)."""
    EXACT = "exact"
    """Lossless when perfect; otherwise decode, turn and encode again."""
    DECODE = "decode"
    """Always decode, turn and encode (a reference, for the benchmark)."""


class Backend(StrEnum):
    """Which library turns the frames."""

    NONE = "none"
    """Nothing to do: the orientation is the identity."""
    TURBOJPEG = "turbojpeg"
    """libjpeg-turbo: lossless transforms (and its decoder when needed)."""
    PILLOW = "pillow"
    """Pillow decodes, turns and encodes (TurboJPEG unavailable)."""
    PASSTHROUGH = "passthrough"
    """Neither library is available: frames pass unchanged (not turned)."""


@dataclass(slots=True)
class TransformStats:
    """Counters of one `FrameTransform` (plain fields; one writer)."""

    frames: int = 0
    """Frames turned (every path)."""
    lossless: int = 0
    """... of which losslessly (including trimmed)."""
    trimmed: int = 0
    """... of which lost a partial MCU at an edge."""
    reencoded: int = 0
    """... of which were decoded and encoded again."""
    passed_through: int = 0
    """Frames left unturned because no library is available."""
    errors: int = 0
    """Frames refused (`TransformError`)."""
    warnings: int = 0
    """Frames turned despite a libjpeg warning."""
    last_error: str | None = None
    last_warning: str | None = None


_warned: set[str] = set()
"""Backend problems already logged (once per process)."""


def _warn_once(reason: str) -> None:
    if reason not in _warned:
        _warned.add(reason)
        _LOGGER.warning("Camera orientation: %s", reason)


class FrameTransform:
    """Apply one `Orientation` to JPEG frames: one instance per stream.

    ``turbojpeg`` is a PyTurboJPEG instance, False for none, or None (the
    default) for Home Assistant's ``TurboJPEGSingleton``. ``quality`` is
    used when a frame has to be encoded again; None (the default) matches
    the source frame's quality (estimated from its quantisation table, at
    most 95), so a re-encoded frame is about as large as the original.
    `apply` may be called from any thread; calls for one stream should come
    one at a time. Constructing one does no I/O (the event loop may).
    """

    def __init__(
        self,
        orientation: Orientation,
        *,
        strategy: Strategy = Strategy.TRIM,
        quality: int | None = None,
        turbojpeg: Any = None,
    ) -> None:
        """Choose the backend (no frame is touched yet)."""
        if quality is not None and not 1 <= quality <= 100:
            raise ValueError(f"quality must be within 1..100, not {quality}")
        self.orientation = orientation
        self.strategy = strategy
        self.quality = quality
        self.stats = TransformStats()
        self.backend_reason: str | None = None
        """Why the backend is not TurboJPEG (for diagnostics), or None."""
        self._op = orientation._op  # noqa: SLF001 - same module
        self._lib: _TurboLib | None = None
        self._turbo: Any = None
        self._image: ModuleType | None = None
        if self._op is _Op.NONE:
            self.backend = Backend.NONE
            return
        turbo = TurboJPEGSingleton.instance() if turbojpeg is None else turbojpeg
        if turbo:
            try:
                self._lib = _TurboLib(turbo)
            except (
                _Unavailable,
                AttributeError,
                TypeError,
                ctypes.ArgumentError,
            ) as err:
                self.backend_reason = f"PyTurboJPEG internals not usable ({err})"
            else:
                self._turbo = turbo
                self.backend = Backend.TURBOJPEG
                return
        else:
            self.backend_reason = "libturbojpeg is not available"
        self._image = _pillow()
        if self._image is not None:
            self.backend = Backend.PILLOW
            _warn_once(f"{self.backend_reason}; frames are re-encoded with Pillow")
            return
        self.backend = Backend.PASSTHROUGH
        self.backend_reason = f"{self.backend_reason}; Pillow is not available either"
        _warn_once(f"{self.backend_reason}; frames are NOT turned")

    @property
    def identity(self) -> bool:
        """Return True when `apply` returns its input untouched (no work)."""
        return self._op is _Op.NONE

    @property
    def degraded(self) -> bool:
        """Return True when frames are not turned losslessly by TurboJPEG."""
        return self.backend in (Backend.PILLOW, Backend.PASSTHROUGH)

    def apply(self, jpeg: bytes) -> bytes:
        """Return ``jpeg`` turned; the same object when there is nothing to do.

        Synchronous and CPU-bound (see the module docstring for the cost).
        Raises `TransformError` for a frame that is not a usable JPEG; never
        anything else.
        """
        op = self._op
        if op is _Op.NONE:
            return jpeg
        stats = self.stats
        if self.backend is Backend.PASSTHROUGH:
            stats.passed_through += 1
            return jpeg
        try:
            _require_soi(jpeg)
            if self._lib is not None:
                out, warning = self._apply_turbo(self._lib, jpeg, op)
            else:
                out, warning = self._apply_pillow(jpeg, op), None
        except TransformError as err:
            stats.errors += 1
            stats.last_error = str(err)
            raise
        except Exception as err:
            # Whatever a library raised for odd input: still the caller's
            # one "drop this frame" error, never a crash of the stream.
            stats.errors += 1
            stats.last_error = f"{type(err).__name__}: {err}"
            raise TransformError(stats.last_error) from err
        stats.frames += 1
        if warning is not None:
            stats.warnings += 1
            stats.last_warning = warning
        return out

    def _apply_turbo(
        self, lib: _TurboLib, jpeg: bytes, op: _Op
    ) -> tuple[bytes, str | None]:
        handle = lib.init()
        if not handle:
            raise TransformError("could not create a TurboJPEG handle")
        try:
            header = lib.read_header(handle, jpeg)
            strategy = self.strategy
            if strategy is not Strategy.DECODE and _is_perfect(op, header):
                try:
                    result = lib.lossless(handle, jpeg, op, _TJXOPT_PERFECT)
                except TransformError as err:
                    if "not perfect" not in str(err):
                        raise
                    # libjpeg-turbo knows better than the prediction:
                    # handle the frame as an imperfect one below.
                else:
                    self.stats.lossless += 1
                    return result
            cmyk = header.colorspace in (_TJCS_CMYK, _TJCS_YCCK)
            decode = strategy is Strategy.DECODE or (
                strategy is Strategy.EXACT and not cmyk
            )
            if not decode and _is_trimmable(op, header):
                result = lib.lossless(handle, jpeg, op, _TJXOPT_TRIM)
                self.stats.lossless += 1
                self.stats.trimmed += 1
                return result
            return self._reencode_turbo(lib, handle, jpeg, header, op)
        finally:
            lib.destroy(handle)

    def _reencode_turbo(
        self, lib: _TurboLib, handle: int, jpeg: bytes, header: _Header, op: _Op
    ) -> tuple[bytes, str | None]:
        import numpy as np

        pixels, warning = lib.decode(handle, jpeg, header)
        turned = np.ascontiguousarray(_turn_pixels(pixels, op))
        gray = header.subsamp == _TJSAMP_GRAY
        channels = 1 if gray else 4
        subsamp = header.subsamp if 0 <= header.subsamp < 6 else _TJSAMP_420
        encoded = self._turbo.encode(
            turned.view(np.uint8).reshape(*turned.shape, channels),
            quality=self._quality_for(jpeg),
            pixel_format=_TJPF_GRAY if gray else _TJPF_RGBX,
            jpeg_subsample=subsamp,
        )
        self.stats.reencoded += 1
        return bytes(encoded), warning

    def _apply_pillow(self, jpeg: bytes, op: _Op) -> bytes:
        image_module = self._image
        assert image_module is not None  # noqa: S101 - set with the backend
        from PIL import JpegImagePlugin

        transpose = image_module.Transpose
        method = {
            _Op.HFLIP: transpose.FLIP_LEFT_RIGHT,
            _Op.VFLIP: transpose.FLIP_TOP_BOTTOM,
            _Op.TRANSPOSE: transpose.TRANSPOSE,
            _Op.TRANSVERSE: transpose.TRANSVERSE,
            _Op.ROT90: transpose.ROTATE_270,  # Pillow turns counter-clockwise
            _Op.ROT180: transpose.ROTATE_180,
            _Op.ROT270: transpose.ROTATE_90,
        }[op]
        with image_module.open(io.BytesIO(jpeg), formats=["JPEG"]) as image:
            sampling = JpegImagePlugin.get_sampling(image)
            turned = image.transpose(method)
        out = io.BytesIO()
        options: dict[str, Any] = {"quality": self._quality_for(jpeg)}
        if sampling in (0, 1, 2):
            options["subsampling"] = sampling
        turned.save(out, "JPEG", **options)
        self.stats.reencoded += 1
        return out.getvalue()

    def _quality_for(self, jpeg: bytes) -> int:
        """Return the quality to encode a turned ``jpeg`` at."""
        if self.quality is not None:
            return self.quality
        source = estimate_quality(jpeg)
        return DEFAULT_QUALITY if source is None else min(source, MAX_QUALITY)

    def diagnostics(self) -> dict[str, Any]:
        """Return the orientation, backend and counters (JSON-safe)."""
        stats = self.stats
        return {
            "orientation": self.orientation.as_dict(),
            "backend": self.backend.value,
            "backend_reason": self.backend_reason,
            "degraded": self.degraded,
            "strategy": self.strategy.value,
            "quality": self.quality,
            "frames": stats.frames,
            "lossless": stats.lossless,
            "trimmed": stats.trimmed,
            "reencoded": stats.reencoded,
            "passed_through": stats.passed_through,
            "errors": stats.errors,
            "warnings": stats.warnings,
            "last_error": stats.last_error,
            "last_warning": stats.last_warning,
        }
