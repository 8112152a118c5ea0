"""Tests for the camera orientation transform (custom_components/printcam/transform.py).

Every test picture has four solid quadrants, one colour per corner. The
expected result is worked out independently of the code under test: by
applying the printer UI's own CSS (OctoPrint: the flip classes on the
image, ``rotate(-90deg)`` on its container; Mainsail/Fluidd:
``scaleX(-1) scaleY(-1) rotate(Ndeg)`` on the picture, a list CSS applies
right to left) to the corners' coordinates. The transformed JPEG is then
decoded and each output corner's colour says which camera corner it shows.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
import functools
import itertools
import json
import logging
import re

from homeassistant.components.camera.img_util import TurboJPEGSingleton
import numpy as np
import pytest

from custom_components.printcam import transform as transform_module
from custom_components.printcam.transform import (
    Backend,
    FrameTransform,
    Orientation,
    Strategy,
    TransformError,
    estimate_quality,
)

TJ = TurboJPEGSingleton.instance()
pytestmark = pytest.mark.skipif(not TJ, reason="libturbojpeg is not installed")

TJPF_RGB = 0
TJPF_GRAY = 6
TJSAMP_444, TJSAMP_422, TJSAMP_420, TJSAMP_GRAY = 0, 1, 2, 3
MCU = {
    TJSAMP_444: (8, 8),
    TJSAMP_422: (16, 8),
    TJSAMP_420: (16, 16),
    TJSAMP_GRAY: (8, 8),
}

CORNERS = ("TL", "TR", "BL", "BR")
CORNER_XY = {"TL": (-1, -1), "TR": (1, -1), "BL": (-1, 1), "BR": (1, 1)}
"""Centred coordinates: x to the right, y down (as on screen)."""
COLOURS = {
    "TL": (255, 0, 0),
    "TR": (0, 255, 0),
    "BL": (0, 0, 255),
    "BR": (255, 255, 255),
}
GREYS = {
    "TL": (0, 0, 0),
    "TR": (80, 80, 80),
    "BL": (160, 160, 160),
    "BR": (240, 240, 240),
}

SIZES = [(1280, 720), (1920, 1080), (641, 361)]


# ---------------------------------------------------------------- pictures


@functools.cache
def quadrants(
    width: int, height: int, subsample: int = TJSAMP_420, quality: int = 95
) -> bytes:
    """Return a JPEG whose four quadrants have the four corner colours."""
    gray = subsample == TJSAMP_GRAY
    palette = GREYS if gray else COLOURS
    pixels = np.empty((height, width, 3), dtype=np.uint8)
    mid_x, mid_y = width // 2, height // 2
    pixels[:mid_y, :mid_x] = palette["TL"]
    pixels[:mid_y, mid_x:] = palette["TR"]
    pixels[mid_y:, :mid_x] = palette["BL"]
    pixels[mid_y:, mid_x:] = palette["BR"]
    if gray:
        return TJ.encode(
            np.ascontiguousarray(pixels[:, :, :1]),
            quality=quality,
            pixel_format=TJPF_GRAY,
            jpeg_subsample=TJSAMP_GRAY,
        )
    return TJ.encode(
        pixels, quality=quality, pixel_format=TJPF_RGB, jpeg_subsample=subsample
    )


@functools.cache
def noise(width: int, height: int, subsample: int = TJSAMP_420) -> bytes:
    """Return a JPEG of smooth noise (real DCT content, not flat blocks)."""
    rng = np.random.default_rng(width * height)
    small = rng.integers(0, 256, (height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8)
    pixels = np.repeat(np.repeat(small, 8, axis=0), 8, axis=1)[:height, :width]
    return TJ.encode(
        np.ascontiguousarray(pixels),
        quality=85,
        pixel_format=TJPF_RGB,
        jpeg_subsample=subsample,
    )


def decode(jpeg: bytes) -> np.ndarray:
    return TJ.decode(jpeg, pixel_format=TJPF_RGB)


def size_of(jpeg: bytes) -> tuple[int, int]:
    width, height, _subsample, _colourspace = TJ.decode_header(jpeg)
    return width, height


def corner_shown(pixels: np.ndarray, x: int, y: int, palette: dict) -> str:
    """Return which camera corner's colour the pixel at (x, y) has."""
    pixel = pixels[y, x].astype(int)
    return min(palette, key=lambda c: sum((pixel - palette[c]) ** 2))


def corners_shown(jpeg: bytes, palette: dict = COLOURS) -> dict[str, str]:
    """Return, per output corner, the camera corner it shows.

    Looks at the outermost pixel of each corner (a strip left untransformed
    at an edge would show there) and at a point well inside the quadrant;
    both must agree.
    """
    pixels = decode(jpeg)
    height, width = pixels.shape[:2]
    found = {}
    for name, (cx, cy) in CORNER_XY.items():
        edge_x = 0 if cx < 0 else width - 1
        edge_y = 0 if cy < 0 else height - 1
        inner_x = width // 8 if cx < 0 else width - 1 - width // 8
        inner_y = height // 8 if cy < 0 else height - 1 - height // 8
        at_edge = corner_shown(pixels, edge_x, edge_y, palette)
        inside = corner_shown(pixels, inner_x, inner_y, palette)
        assert at_edge == inside, f"{name}: edge shows {at_edge}, inside {inside}"
        found[name] = inside
    return found


# ------------------------------------------------ the printer UIs, as CSS


def css_apply(transforms: list[str], point: tuple[int, int]) -> tuple[int, int]:
    """Apply a CSS transform list to a point: the rightmost function first."""
    x, y = point
    for function in reversed(transforms):
        if function == "scaleX(-1)":
            x = -x
        elif function == "scaleY(-1)":
            y = -y
        else:
            match = re.fullmatch(r"rotate\((-?\d+)deg\)", function)
            assert match, function
            for _ in range((int(match.group(1)) // 90) % 4):
                x, y = -y, x  # a quarter turn clockwise on screen (y down)
    return x, y


def octoprint_ui(flip_h: bool, flip_v: bool, rotate90: bool) -> Callable:
    """OctoPrint: flip classes on the <img>, rotate(-90deg) on its container."""
    image = [t for t, on in (("scaleX(-1)", flip_h), ("scaleY(-1)", flip_v)) if on]
    container = ["rotate(-90deg)"] if rotate90 else []
    return lambda p: css_apply(container, css_apply(image, p))


def moonraker_ui(flip_h: bool, flip_v: bool, rotation: int) -> Callable:
    """Mainsail / Fluidd: one list, scaleX(-1) scaleY(-1) rotate(Ndeg)."""
    css = [t for t, on in (("scaleX(-1)", flip_h), ("scaleY(-1)", flip_v)) if on]
    if rotation:
        css.append(f"rotate({rotation}deg)")
    return lambda p: css_apply(css, p)


def expected_corners(ui: Callable) -> dict[str, str]:
    """Return, per output corner, the camera corner the UI shows there."""
    where = {}
    for camera_corner, xy in CORNER_XY.items():
        out = ui(xy)
        shown_at = next(n for n, c in CORNER_XY.items() if c == out)
        where[shown_at] = camera_corner
    return where


OCTOPRINT = [
    pytest.param(h, v, r, id=f"octoprint-flipH{int(h)}-flipV{int(v)}-rot90{int(r)}")
    for h, v, r in itertools.product((False, True), repeat=3)
]
MOONRAKER = [
    pytest.param(h, v, r, id=f"moonraker-h{int(h)}-v{int(v)}-rot{r}")
    for h, v in itertools.product((False, True), repeat=2)
    for r in (0, 90, 180, 270)
]


def check(
    source: bytes,
    orientation: Orientation,
    ui: Callable,
    quarter_turn: bool,
    *,
    exact_size: bool,
    mcu: tuple[int, int] = (16, 16),
    palette: dict = COLOURS,
    **options,
) -> FrameTransform:
    transform = FrameTransform(orientation, **options)
    out = transform.apply(source)
    width, height = size_of(source)
    want_w, want_h = (height, width) if quarter_turn else (width, height)
    got_w, got_h = size_of(out)
    if exact_size:
        assert (got_w, got_h) == (want_w, want_h)
    else:  # trimmed: less than one MCU off, on each axis
        mcu_w, mcu_h = (mcu[1], mcu[0]) if quarter_turn else mcu
        assert want_w - mcu_w < got_w <= want_w
        assert want_h - mcu_h < got_h <= want_h
    assert corners_shown(out, palette) == expected_corners(ui)
    if orientation.identity:
        assert out is source
    return transform


def mcu_multiple(width: int, height: int, subsample: int = TJSAMP_420) -> bool:
    mcu_w, mcu_h = MCU[subsample]
    return width % mcu_w == 0 and height % mcu_h == 0


# ------------------------------------------------ every setting, every size


@pytest.mark.parametrize(("width", "height"), SIZES)
@pytest.mark.parametrize("strategy", [Strategy.TRIM, Strategy.EXACT])
@pytest.mark.parametrize(("flip_h", "flip_v", "rotate90"), OCTOPRINT)
def test_octoprint_settings_show_what_octoprint_shows(
    width: int,
    height: int,
    strategy: Strategy,
    flip_h: bool,
    flip_v: bool,
    rotate90: bool,
) -> None:
    orientation = Orientation.from_octoprint(flip_h, flip_v, rotate90)
    check(
        quadrants(width, height),
        orientation,
        octoprint_ui(flip_h, flip_v, rotate90),
        rotate90,
        exact_size=strategy is Strategy.EXACT or mcu_multiple(width, height),
        strategy=strategy,
    )


@pytest.mark.parametrize(("width", "height"), SIZES)
@pytest.mark.parametrize("strategy", [Strategy.TRIM, Strategy.EXACT])
@pytest.mark.parametrize(("flip_h", "flip_v", "rotation"), MOONRAKER)
def test_moonraker_settings_show_what_mainsail_and_fluidd_show(
    width: int,
    height: int,
    strategy: Strategy,
    flip_h: bool,
    flip_v: bool,
    rotation: int,
) -> None:
    orientation = Orientation.from_moonraker(flip_h, flip_v, rotation)
    check(
        quadrants(width, height),
        orientation,
        moonraker_ui(flip_h, flip_v, rotation),
        rotation in (90, 270),
        exact_size=strategy is Strategy.EXACT or mcu_multiple(width, height),
        strategy=strategy,
    )


@pytest.mark.parametrize(("width", "height"), SIZES)
@pytest.mark.parametrize(("flip_h", "flip_v", "rotation"), MOONRAKER)
def test_pillow_fallback_turns_the_same_way(
    width: int, height: int, flip_h: bool, flip_v: bool, rotation: int
) -> None:
    transform = check(
        quadrants(width, height),
        Orientation.from_moonraker(flip_h, flip_v, rotation),
        moonraker_ui(flip_h, flip_v, rotation),
        rotation in (90, 270),
        exact_size=True,
        turbojpeg=False,
    )
    if not transform.identity:
        assert transform.backend is Backend.PILLOW
        assert transform.stats.reencoded == 1


@pytest.mark.parametrize(("flip_h", "flip_v", "rotate90"), OCTOPRINT)
def test_decode_strategy_turns_the_same_way(
    flip_h: bool, flip_v: bool, rotate90: bool
) -> None:
    transform = check(
        quadrants(1280, 720),
        Orientation.from_octoprint(flip_h, flip_v, rotate90),
        octoprint_ui(flip_h, flip_v, rotate90),
        rotate90,
        exact_size=True,
        strategy=Strategy.DECODE,
    )
    if not transform.identity:
        assert transform.stats.reencoded == 1
        assert transform.stats.lossless == 0


@pytest.mark.parametrize(
    ("subsample", "width", "height"),
    [
        (TJSAMP_444, 641, 361),
        (TJSAMP_422, 1920, 1080),  # 16x8 MCUs: 1080 is whole, all perfect
        (TJSAMP_422, 641, 361),
        (TJSAMP_GRAY, 641, 361),
    ],
)
@pytest.mark.parametrize("strategy", [Strategy.TRIM, Strategy.EXACT])
@pytest.mark.parametrize(("flip_h", "flip_v", "rotation"), MOONRAKER)
def test_other_subsamplings(
    subsample: int,
    width: int,
    height: int,
    strategy: Strategy,
    flip_h: bool,
    flip_v: bool,
    rotation: int,
) -> None:
    check(
        quadrants(width, height, subsample),
        Orientation.from_moonraker(flip_h, flip_v, rotation),
        moonraker_ui(flip_h, flip_v, rotation),
        rotation in (90, 270),
        exact_size=strategy is Strategy.EXACT or mcu_multiple(width, height, subsample),
        mcu=MCU[subsample],
        palette=GREYS if subsample == TJSAMP_GRAY else COLOURS,
        strategy=strategy,
    )


# ------------------------------------------ conventions, spelled out by hand


def test_octoprint_rotate90_is_counter_clockwise() -> None:
    # The camera's top-right corner ends up top-left.
    orientation = Orientation.from_octoprint(rotate90=True)
    assert orientation == Orientation(False, False, 270)
    out = FrameTransform(orientation).apply(quadrants(1280, 720))
    assert size_of(out) == (720, 1280)
    assert corners_shown(out) == {"TL": "TR", "TR": "BR", "BR": "BL", "BL": "TL"}


def test_moonraker_rotation_is_clockwise() -> None:
    orientation = Orientation.from_moonraker(rotation=90)
    out = FrameTransform(orientation).apply(quadrants(1280, 720))
    assert size_of(out) == (720, 1280)
    assert corners_shown(out) == {"TL": "BL", "TR": "TL", "BR": "TR", "BL": "BR"}


def test_moonraker_rotates_before_flipping() -> None:
    # rotate 90° clockwise, then mirror on screen: the top-left corner stays
    # top-left (a transpose). Flipping first would put it bottom-right.
    orientation = Orientation.from_moonraker(flip_horizontal=True, rotation=90)
    assert orientation == Orientation(flip_h=False, flip_v=True, rotate_cw=90)
    assert orientation.transform_id == "transpose"
    out = FrameTransform(orientation).apply(quadrants(1280, 720))
    assert corners_shown(out) == {"TL": "TL", "TR": "BL", "BL": "TR", "BR": "BR"}
    flipped_first = FrameTransform(Orientation(True, False, 90))
    assert corners_shown(flipped_first.apply(quadrants(1280, 720)))["TL"] == "BR"


def test_octoprint_flips_before_rotating() -> None:
    orientation = Orientation.from_octoprint(flipH=True, rotate90=True)
    assert orientation == Orientation(flip_h=True, flip_v=False, rotate_cw=270)
    out = FrameTransform(orientation).apply(quadrants(1280, 720))
    assert corners_shown(out) == {"TL": "TL", "TR": "BL", "BL": "TR", "BR": "BR"}


# ----------------------------------------------------------------- Orientation


def test_orientation_identity_and_normalisation() -> None:
    assert Orientation().identity
    assert Orientation.from_octoprint().identity
    assert Orientation.from_moonraker().identity
    assert Orientation(True, True, 180).identity  # both flips are a half turn
    assert not Orientation(True, True, 0).identity
    assert Orientation(True, True, 0).transform_id == "rot180"
    assert Orientation(rotate_cw=-90) == Orientation(rotate_cw=270)
    assert Orientation(rotate_cw=450).rotate_cw == 90
    assert Orientation(rotate_cw=90).swaps_axes
    assert not Orientation(flip_h=True, rotate_cw=180).swaps_axes
    assert Orientation(True, False, 90).as_dict() == {
        "flip_h": True,
        "flip_v": False,
        "rotate_cw": 90,
        "transform": "transverse",
    }


@pytest.mark.parametrize("rotation", [45, 360, -90, "90", True, None])
def test_moonraker_refuses_other_rotations(rotation: object) -> None:
    with pytest.raises(ValueError, match="rotation"):
        Orientation.from_moonraker(rotation=rotation)  # type: ignore[arg-type]


@pytest.mark.parametrize("rotation", [45, 91])
def test_orientation_refuses_partial_turns(rotation: int) -> None:
    with pytest.raises(ValueError, match="multiple of 90"):
        Orientation(rotate_cw=rotation)
    with pytest.raises(TypeError):
        Orientation(rotate_cw=True)
    with pytest.raises(TypeError):
        Orientation(rotate_cw=90.0)  # type: ignore[arg-type]


def test_every_transform_is_reachable_from_both_servers() -> None:
    octoprint = {
        Orientation.from_octoprint(h, v, r).transform_id
        for h, v, r in itertools.product((False, True), repeat=3)
    }
    moonraker = {
        Orientation.from_moonraker(h, v, r).transform_id
        for h, v in itertools.product((False, True), repeat=2)
        for r in (0, 90, 180, 270)
    }
    everything = {
        "none",
        "hflip",
        "vflip",
        "transpose",
        "transverse",
        "rot90",
        "rot180",
        "rot270",
    }
    assert octoprint == moonraker == everything


# ------------------------------------------------------- identity, lossless


def test_identity_returns_the_same_object_without_looking() -> None:
    transform = FrameTransform(Orientation(True, True, 180))
    assert transform.identity
    assert transform.backend is Backend.NONE
    frame = quadrants(1280, 720)
    assert transform.apply(frame) is frame
    garbage = b"not even a JPEG"
    assert transform.apply(garbage) is garbage
    assert transform.stats.frames == 0
    assert not transform.degraded


@pytest.mark.parametrize(
    ("there", "back"),
    [
        (Orientation(flip_h=True), Orientation(flip_h=True)),
        (Orientation(rotate_cw=90), Orientation(rotate_cw=270)),
        (
            Orientation(flip_h=True, rotate_cw=90),
            Orientation(flip_h=True, rotate_cw=90),
        ),
    ],
)
def test_perfect_transforms_are_lossless(there: Orientation, back: Orientation) -> None:
    source = noise(1280, 720)
    forth = FrameTransform(there).apply(source)
    again = FrameTransform(back).apply(forth)
    np.testing.assert_array_equal(decode(again), decode(source))
    transform = FrameTransform(there)
    transform.apply(source)
    assert transform.stats.lossless == 1
    assert transform.stats.trimmed == 0
    assert transform.stats.reencoded == 0


def test_markers_survive_a_lossless_transform() -> None:
    source = quadrants(1280, 720)
    text = b"PCBENCH 0000000042 00000000000000000001"
    stamped = source[:2] + b"\xff\xfe" + (len(text) + 2).to_bytes(2) + text + source[2:]
    out = FrameTransform(Orientation(rotate_cw=90)).apply(stamped)
    assert text in out


# ------------------------------------------------------------------- edges


@pytest.mark.parametrize(
    ("orientation", "trimmed_size"),
    [
        (Orientation(flip_v=True), (1920, 1072)),
        (Orientation(rotate_cw=90), (1072, 1920)),
        (Orientation(rotate_cw=180), (1920, 1072)),
        (Orientation(rotate_cw=270), (1080, 1920)),  # moves the width: whole
        (Orientation(flip_h=True), (1920, 1080)),
    ],
)
def test_1080p_partial_mcu_row_trimmed_or_exact(
    orientation: Orientation, trimmed_size: tuple[int, int]
) -> None:
    source = quadrants(1920, 1080)  # 4:2:0: 1080 = 67.5 MCU rows
    trim = FrameTransform(orientation)
    out = trim.apply(source)
    assert size_of(out) == trimmed_size
    perfect = trimmed_size in ((1920, 1080), (1080, 1920))
    assert trim.stats.trimmed == (0 if perfect else 1)
    assert trim.stats.lossless == 1
    assert trim.stats.reencoded == 0

    exact = FrameTransform(orientation, strategy=Strategy.EXACT)
    out = exact.apply(source)
    full = (1080, 1920) if orientation.swaps_axes else (1920, 1080)
    assert size_of(out) == full
    assert exact.stats.reencoded == (0 if perfect else 1)
    assert exact.stats.lossless == (1 if perfect else 0)


def test_picture_smaller_than_one_mcu_is_decoded_not_left_alone() -> None:
    source = quadrants(12, 10)  # less than one 16x16 MCU
    for strategy in (Strategy.TRIM, Strategy.EXACT):
        transform = FrameTransform(Orientation(rotate_cw=180), strategy=strategy)
        out = transform.apply(source)
        assert size_of(out) == (12, 10)
        assert transform.stats.reencoded == 1
        pixels = decode(out)
        assert corner_shown(pixels, 0, 0, COLOURS) == "BR"
        assert corner_shown(pixels, 11, 9, COLOURS) == "TL"


# --------------------------------------------------------------- bad input


BAD = {
    "empty": b"",
    "text": b"hello, this is not a picture",
    "soi-then-garbage": b"\xff\xd8" + bytes(range(256)) * 4,
    "soi-only": b"\xff\xd8",
    "not-bytes": None,
}

TRANSFORMS = {
    "lossless": lambda: FrameTransform(Orientation(rotate_cw=90)),
    "exact-decode": lambda: FrameTransform(
        Orientation(flip_v=True), strategy=Strategy.EXACT
    ),
    "decode": lambda: FrameTransform(
        Orientation(flip_v=True), strategy=Strategy.DECODE
    ),
    "pillow": lambda: FrameTransform(Orientation(rotate_cw=90), turbojpeg=False),
}


@pytest.mark.parametrize("kind", list(TRANSFORMS))
@pytest.mark.parametrize("bad", list(BAD))
def test_broken_input_is_a_clear_error(kind: str, bad: str) -> None:
    transform = TRANSFORMS[kind]()
    with pytest.raises(TransformError) as caught:
        transform.apply(BAD[bad])  # type: ignore[arg-type]
    assert str(caught.value)
    assert transform.stats.errors == 1
    assert transform.stats.last_error == str(caught.value)
    assert transform.stats.frames == 0
    # and the next good frame is fine
    assert corners_shown(transform.apply(quadrants(1280, 720)))["TL"] in CORNERS
    assert transform.stats.frames == 1


@pytest.mark.parametrize("kind", list(TRANSFORMS))
def test_truncated_frame_is_an_error(kind: str) -> None:
    source = noise(1920, 1080)
    transform = TRANSFORMS[kind]()
    for cut in (len(source) // 2, len(source) - 200):  # inside the scan
        with pytest.raises(TransformError, match="truncated"):
            transform.apply(source[:cut])
    with pytest.raises(TransformError):  # inside the headers
        transform.apply(source[:300])
    assert transform.stats.errors == 3
    assert transform.stats.frames == 0


@pytest.mark.parametrize("kind", ["lossless", "exact-decode", "decode"])
def test_a_libjpeg_warning_keeps_the_frame(kind: str) -> None:
    source = quadrants(1920, 1080)
    # bytes between the scan and EOI: "extraneous bytes before marker 0xd9",
    # common with cheap cameras; browsers show such frames
    sloppy = source[:-2] + b"\x00\x00\x00" + source[-2:]
    transform = TRANSFORMS[kind]()
    out = transform.apply(sloppy)
    assert corners_shown(out)["TL"] in CORNERS
    assert transform.stats.warnings == 1
    assert "extraneous" in (transform.stats.last_warning or "")
    assert transform.stats.errors == 0


# --------------------------------------------------------------- fallbacks


def test_without_turbojpeg_pillow_turns_frames(
    caplog: pytest.LogCaptureFixture,
) -> None:
    transform_module._warned.clear()
    with caplog.at_level(logging.WARNING):
        transform = FrameTransform(Orientation(rotate_cw=90), turbojpeg=False)
        FrameTransform(Orientation(rotate_cw=90), turbojpeg=False)
    assert transform.backend is Backend.PILLOW
    assert transform.degraded
    assert transform.backend_reason == "libturbojpeg is not available"
    assert len([r for r in caplog.records if "Pillow" in r.message]) == 1


def test_pyturbojpeg_without_the_expected_internals_falls_back() -> None:
    class Stranger:
        pass

    transform = FrameTransform(Orientation(flip_h=True), turbojpeg=Stranger())
    assert transform.backend is Backend.PILLOW
    assert "internals" in (transform.backend_reason or "")
    assert corners_shown(transform.apply(quadrants(641, 361)))["TL"] == "TR"


def test_without_any_library_frames_pass_through(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    transform_module._warned.clear()
    monkeypatch.setattr(transform_module, "_pillow", lambda: None)
    with caplog.at_level(logging.WARNING):
        transform = FrameTransform(Orientation(rotate_cw=90), turbojpeg=False)
    assert transform.backend is Backend.PASSTHROUGH
    assert transform.degraded
    assert "NOT turned" in caplog.text
    frame = quadrants(1280, 720)
    assert transform.apply(frame) is frame
    assert transform.stats.passed_through == 1
    diagnostics = transform.diagnostics()
    assert diagnostics["backend"] == "passthrough"
    assert diagnostics["degraded"] is True
    assert diagnostics["passed_through"] == 1


def test_diagnostics_are_json() -> None:
    transform = FrameTransform(Orientation.from_octoprint(flipV=True, rotate90=True))
    transform.apply(quadrants(1920, 1080))
    with pytest.raises(TransformError):
        transform.apply(b"nope")
    diagnostics = json.loads(json.dumps(transform.diagnostics()))
    assert diagnostics == {
        "orientation": {
            "flip_h": False,
            "flip_v": True,
            "rotate_cw": 270,
            "transform": "transverse",
        },
        "backend": "turbojpeg",
        "backend_reason": None,
        "degraded": False,
        "strategy": "trim",
        "quality": None,
        "frames": 1,
        "lossless": 1,
        "trimmed": 1,
        "reencoded": 0,
        "passed_through": 0,
        "errors": 1,
        "warnings": 0,
        "last_error": "not a JPEG (no SOI marker)",
        "last_warning": None,
    }


@pytest.mark.parametrize("quality", [20, 50, 75, 85, 90, 95, 100])
def test_estimate_quality_reads_the_quantisation_table(quality: int) -> None:
    pixels = np.zeros((16, 16, 3), dtype=np.uint8)
    jpeg = TJ.encode(pixels, quality=quality, pixel_format=TJPF_RGB)
    assert abs(estimate_quality(jpeg) - quality) <= 1


def test_estimate_quality_of_a_16_bit_table_after_a_fill_byte() -> None:
    # the standard table itself (16-bit entries) is libjpeg's quality 50;
    # a chroma table (id 1) comes first and is skipped
    std = transform_module._STD_LUMINANCE
    chroma = bytes([0x01]) + bytes([99] * 64)
    luma = bytes([0x10]) + b"".join(v.to_bytes(2) for v in std)
    body = chroma + luma
    dqt = b"\xff\xdb" + (len(body) + 2).to_bytes(2) + body
    assert estimate_quality(b"\xff\xd8\xff" + dqt + b"\xff\xda") == 50


def test_estimate_quality_without_a_table() -> None:
    assert estimate_quality(b"\xff\xd8\xff\xd9") is None
    assert estimate_quality(b"\xff\xd8garbage") is None
    assert estimate_quality(b"\xff\xd8\xff\xdb\x00\x43\x00\x01") is None  # short


@pytest.mark.parametrize("kind", ["exact-decode", "pillow"])
def test_reencoding_keeps_the_source_quality(kind: str) -> None:
    source = noise(1920, 1080)  # quality 85
    transform = TRANSFORMS[kind]()
    out = transform.apply(source)
    assert transform.stats.reencoded == 1
    assert abs(estimate_quality(out) - 85) <= 1
    assert 0.8 < len(out) / len(source) < 1.25
    fixed = FrameTransform(
        Orientation(flip_v=True), strategy=Strategy.EXACT, quality=50
    )
    assert abs(estimate_quality(fixed.apply(source)) - 50) <= 1


def test_quality_is_checked() -> None:
    with pytest.raises(ValueError, match="quality"):
        FrameTransform(Orientation(flip_h=True), quality=0)


def test_threads_may_share_a_transform() -> None:
    # one handle per call: concurrent calls give the same bytes
    transform = FrameTransform(Orientation(rotate_cw=90))
    source = noise(1280, 720)
    expected = transform.apply(source)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(transform.apply, [source] * 40))
    assert all(result == expected for result in results)
