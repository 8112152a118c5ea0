"""The brand images in custom_components/printcam/brand/.

Home Assistant 2026.3+ serves them (and HACS shows them); the rules are the
home-assistant/brands README's "Image specification": PNG, transparent,
trimmed, icons 256x256 and 512x512, logos with the shortest side 128-256 px
(256-512 for @2x), ``dark_`` variants for dark themes. They are drawn by
scripts/brand.py, and must be exactly what it draws. No Home Assistant here.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
import sys
from types import ModuleType

from PIL import Image
import pytest

ROOT = Path(__file__).resolve().parent.parent
BRAND = ROOT / "custom_components" / "printcam" / "brand"
SCRIPT = ROOT / "scripts" / "brand.py"

ICONS = ("icon.png", "icon@2x.png", "dark_icon.png", "dark_icon@2x.png")
LOGOS = ("logo.png", "logo@2x.png", "dark_logo.png", "dark_logo@2x.png")
NAMES = ICONS + LOGOS
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
OPAQUE = 128  # alpha from which a pixel counts as artwork
LIGHT_BACKGROUND = 255  # white, the brands default
DARK_BACKGROUND = 0x11  # #111, a dark theme's card


def _brand_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("printcam_brand", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _open(name: str) -> Image.Image:
    image = Image.open(BRAND / name)
    image.load()
    return image


def _is_2x(name: str) -> bool:
    return name.endswith("@2x.png")


def _one_x(name: str) -> str:
    return name.replace("@2x.png", ".png")


def _opaque_box(image: Image.Image) -> tuple[int, int, int, int]:
    alpha = image.getchannel("A").point(lambda a: 255 if a >= OPAQUE else 0)
    box = alpha.getbbox()
    assert box is not None, "no opaque pixels"
    return box


def test_the_folder_holds_exactly_the_eight_images() -> None:
    """Home Assistant serves only these names; anything else is a stray."""
    assert sorted(p.name for p in BRAND.iterdir()) == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_is_a_real_png(name: str) -> None:
    """The signature, a clean decode and Pillow's verdict all say PNG."""
    path = BRAND / name
    assert path.read_bytes().startswith(PNG_SIGNATURE)
    with Image.open(path) as image:
        assert image.format == "PNG"
        image.verify()
    assert _open(name).mode == "RGBA"


@pytest.mark.parametrize("name", ICONS)
def test_icon_size(name: str) -> None:
    """Icons are square: exactly 256x256, the hDPI version 512x512."""
    side = 512 if _is_2x(name) else 256
    assert _open(name).size == (side, side)


@pytest.mark.parametrize("name", LOGOS)
def test_logo_size(name: str) -> None:
    """Logos are landscape, shortest side 128-256 px (256-512 px for @2x)."""
    width, height = _open(name).size
    low, high = (256, 512) if _is_2x(name) else (128, 256)
    assert width >= height
    assert low <= min(width, height) <= high


@pytest.mark.parametrize("name", [n for n in NAMES if _is_2x(n)])
def test_hdpi_is_twice_the_normal_image(name: str) -> None:
    """The @2x image is the 1x one at exactly twice the size, same artwork."""
    big, small = _open(name), _open(_one_x(name))
    assert big.size == (2 * small.width, 2 * small.height)
    halved = big.resize(small.size, Image.Resampling.LANCZOS)
    for band in "RGBA":
        diff = [
            abs(a - b)
            for a, b in zip(
                halved.getchannel(band).getdata(),
                small.getchannel(band).getdata(),
                strict=True,
            )
        ]
        assert sum(diff) / len(diff) < 6, band


@pytest.mark.parametrize("name", NAMES)
def test_transparent_background_and_not_empty(name: str) -> None:
    """Corners are clear, and artwork covers a good part of the image."""
    image = _open(name)
    alpha = image.getchannel("A")
    w, h = image.size
    for corner in ((0, 0), (w - 1, 0), (0, h - 1), (w - 1, h - 1)):
        assert alpha.getpixel(corner) == 0, corner
    histogram = alpha.histogram()
    total = w * h
    assert histogram[0] / total > 0.2, "too little transparent background"
    assert sum(histogram[OPAQUE:]) / total > 0.2, "too little artwork"


@pytest.mark.parametrize("name", NAMES)
def test_trimmed(name: str) -> None:
    """The artwork reaches every edge: no empty margin around it."""
    image = _open(name)
    left, top, right, bottom = _opaque_box(image)
    slack = 2 * (2 if _is_2x(name) else 1)
    assert left <= slack
    assert top <= slack
    assert image.width - right <= slack
    assert image.height - bottom <= slack


def _luminance(rgb: tuple[int, int, int]) -> float:
    r, g, b = rgb
    return 0.299 * r + 0.587 * g + 0.114 * b


def _readable_share(image: Image.Image, background: int) -> float:
    """Share of opaque pixels standing well apart from the background."""
    pixels = [p for p in image.getdata() if p[3] == 255]
    apart = sum(1 for p in pixels if abs(_luminance(p[:3]) - background) >= 60)
    return apart / len(pixels)


@pytest.mark.parametrize("name", [n for n in NAMES if not n.startswith("dark_")])
def test_dark_variant_differs_and_reads_on_dark(name: str) -> None:
    """The light image reads on white, its dark twin on #111; they differ."""
    light, dark = _open(name), _open(f"dark_{name}")
    assert (BRAND / name).read_bytes() != (BRAND / f"dark_{name}").read_bytes()
    assert light.size == dark.size
    assert _readable_share(light, LIGHT_BACKGROUND) > 0.9
    assert _readable_share(dark, DARK_BACKGROUND) > 0.9
    # Without the dark variant the frame would vanish on a dark theme.
    assert _readable_share(light, DARK_BACKGROUND) < 0.7


def test_files_are_what_the_script_draws(tmp_path: Path) -> None:
    """Regenerating gives the committed bytes: the images never drift."""
    brand = _brand_script()
    if not brand.FONT_PATH.is_file():
        pytest.skip(f"{brand.FONT_PATH} missing: cannot redraw the logo")
    assert brand.main(["--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(NAMES)
    stale = [
        name
        for name in NAMES
        if (tmp_path / name).read_bytes() != (BRAND / name).read_bytes()
    ]
    assert not stale, f"run `python scripts/brand.py` and commit: {stale}"
