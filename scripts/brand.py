"""Draw PrintCam's brand images into custom_components/printcam/brand/.

Home Assistant 2026.3 and later serve a custom integration's own brand images
from ``custom_components/<domain>/brand/`` (HACS shows them too). This script
draws the eight files the home-assistant/brands README names, following its
image rules: PNG with a transparent background, trimmed to the artwork, icons
256x256 and 512x512, logos with the shortest side 128-256 px (256-512 for
@2x), plus ``dark_`` variants that read on dark themes.

The mark is a 3D printer's frame: a gantry carries a camera lens as its print
head, whose nozzle lays the top layer of a part on the bed. The logo is the
mark beside the word "PrintCam" (DejaVu Sans Bold). Everything is drawn at 4x
and downscaled with LANCZOS, so the output is the same bytes on every run:

    .venv/bin/python scripts/brand.py            # writes the eight files
    .venv/bin/python scripts/brand.py --out DIR  # writes them into DIR

tests/test_brand.py checks the committed files against a fresh run.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
import math
from pathlib import Path
import sys

from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parent.parent
BRAND_DIR = ROOT / "custom_components" / "printcam" / "brand"
FONT_PATH = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")
SUPERSAMPLE = 4

ICON_SIZE = 256  # the brands rules: exactly 256x256, @2x 512x512
LOGO_HEIGHT = 256  # the brands rules: shortest side 128-256, the maximum preferred

Colour = tuple[int, int, int, int]
CLEAR: Colour = (0, 0, 0, 0)


def _rgb(value: str) -> Colour:
    """Parse ``#rrggbb`` into an opaque RGBA tuple."""
    return (int(value[1:3], 16), int(value[3:5], 16), int(value[5:7], 16), 255)


@dataclass(frozen=True, slots=True)
class Palette:
    """The colours of one variant."""

    frame: Colour  # the printer's frame, gantry and nozzle; "Print"
    accent: Colour  # the lens ring and the printed part; "Cam"
    glass: Colour  # the lens glass
    glint: Colour  # the highlight on the glass


LIGHT = Palette(
    frame=_rgb("#1d2b4a"),
    accent=_rgb("#f26b1d"),
    glass=_rgb("#1d2b4a"),
    glint=_rgb("#ffffff"),
)
DARK = Palette(
    frame=_rgb("#e8edf5"),
    accent=_rgb("#ff8a3d"),
    glass=_rgb("#2a3a5e"),
    glint=_rgb("#ffffff"),
)


class _Pen:
    """Draws on a 100x100 grid placed at (x0, y0) with side ``size`` pixels."""

    def __init__(self, draw: ImageDraw.ImageDraw, x0: float, y0: float, size: float):
        self.draw = draw
        self.x0 = x0
        self.y0 = y0
        self.u = size / 100

    def box(self, x1: float, y1: float, x2: float, y2: float) -> list[float]:
        u = self.u
        return [self.x0 + x1 * u, self.y0 + y1 * u, self.x0 + x2 * u, self.y0 + y2 * u]

    def rect(
        self, x1: float, y1: float, x2: float, y2: float, fill: Colour, r: float = 0
    ) -> None:
        self.draw.rounded_rectangle(self.box(x1, y1, x2, y2), r * self.u, fill=fill)

    def ring(
        self, x1: float, y1: float, x2: float, y2: float, r: float, w: float, c: Colour
    ) -> None:
        self.draw.rounded_rectangle(
            self.box(x1, y1, x2, y2), r * self.u, outline=c, width=round(w * self.u)
        )

    def circle(self, cx: float, cy: float, r: float, fill: Colour) -> None:
        self.draw.ellipse(self.box(cx - r, cy - r, cx + r, cy + r), fill=fill)

    def polygon(self, points: list[tuple[float, float]], fill: Colour) -> None:
        u = self.u
        self.draw.polygon(
            [(self.x0 + x * u, self.y0 + y * u) for x, y in points], fill=fill
        )


def draw_mark(
    draw: ImageDraw.ImageDraw, x0: float, y0: float, size: float, p: Palette
) -> None:
    """Draw the mark filling the square (x0, y0, x0 + size, y0 + size)."""
    pen = _Pen(draw, x0, y0, size)
    # The part being printed: its first layer stands on the bed.
    pen.rect(24, 82, 76, 94, p.accent, r=2)
    pen.rect(34, 72.5, 66, 79.5, p.accent, r=2)
    # The frame: a rounded box whose bottom side is the bed.
    pen.ring(0, 0, 100, 100, r=17, w=10, c=p.frame)
    # The gantry across the frame.
    pen.rect(5, 37, 95, 45, p.frame)
    # The print head is a camera, set off the gantry by a clear gap.
    pen.rect(20, 16, 80, 63, CLEAR, r=10)
    pen.rect(24, 26, 76, 59, p.frame, r=7)
    pen.rect(33, 20, 51, 28, p.frame, r=3)
    cx, cy = 50, 42.5
    pen.circle(cx, cy, 14, CLEAR)
    pen.circle(cx, cy, 12, p.accent)
    pen.circle(cx, cy, 7.5, p.glass)
    pen.circle(cx - 3, cy - 3, 2.6, p.glint)
    # Its hot end: a heater block and the nozzle over the top layer.
    pen.rect(41, 61.5, 59, 65.5, p.frame, r=1)
    pen.polygon([(44.5, 65), (55.5, 65), (52, 70), (48, 70)], p.frame)


def _supersampled(width: int, height: int) -> Image.Image:
    return Image.new("RGBA", (width * SUPERSAMPLE, height * SUPERSAMPLE), CLEAR)


def _downscaled(big: Image.Image, width: int, height: int) -> Image.Image:
    return big.resize((width, height), Image.Resampling.LANCZOS)


def render_icon(size: int, palette: Palette) -> Image.Image:
    """Return the square icon, ``size`` pixels a side."""
    big = _supersampled(size, size)
    draw_mark(ImageDraw.Draw(big), 0, 0, size * SUPERSAMPLE, palette)
    return _downscaled(big, size, size)


def _font(px: float) -> ImageFont.FreeTypeFont:
    if not FONT_PATH.is_file():
        raise SystemExit(f"{FONT_PATH} is missing: install fonts-dejavu-core")
    # The basic layout (no libraqm) gives the same glyphs everywhere.
    return ImageFont.truetype(
        str(FONT_PATH), round(px), layout_engine=ImageFont.Layout.BASIC
    )


# The logo, in units of its height: the mark, a gap, then the word with its
# cap height a fraction of the mark's, centred on the mark.
GAP = 0.17
CAP_HEIGHT = 0.50
TRACKING = -0.02  # letter spacing, in ems
WORDS = (("Print", "frame"), ("Cam", "accent"))
TEXT = "".join(word for word, _ in WORDS)


def _wordmark_font(scale: float) -> ImageFont.FreeTypeFont:
    """Return the font whose capitals are CAP_HEIGHT of ``scale`` high."""
    ratio = -_font(1000).getbbox("P", anchor="ls")[1] / 1000
    return _font(scale * CAP_HEIGHT / ratio)


def _advances(font: ImageFont.FreeTypeFont) -> list[float]:
    """Return where each letter of TEXT starts, kerned and tracked."""
    track = TRACKING * font.size
    return [font.getlength(TEXT[:i]) + i * track for i in range(len(TEXT))]


def _draw_word(
    draw: ImageDraw.ImageDraw,
    x: float,
    baseline: float,
    font: ImageFont.FreeTypeFont,
    colours: list[Colour],
) -> None:
    """Set TEXT letter by letter from the pen position (x, baseline)."""
    for ch, start, colour in zip(TEXT, _advances(font), colours, strict=True):
        draw.text((x + start, baseline), ch, font=font, fill=colour, anchor="ls")


def _word_ink(font: ImageFont.FreeTypeFont) -> tuple[int, int]:
    """Return the left and right edges of TEXT's ink, the pen starting at 0."""
    pad = font.size
    width = round(_advances(font)[-1] + font.getlength(TEXT[-1])) + 2 * pad
    sheet = Image.new("RGBA", (width, 2 * font.size), CLEAR)
    _draw_word(ImageDraw.Draw(sheet), pad, font.size, font, [LIGHT.frame] * len(TEXT))
    box = sheet.getbbox()
    if box is None:
        raise SystemExit(f"{FONT_PATH} drew no ink for {TEXT!r}")
    return box[0] - pad, box[2] - pad


def logo_width(height: int) -> int:
    """Return the width of the logo ``height`` pixels high, the word trimmed."""
    scale = height * SUPERSAMPLE
    left, right = _word_ink(_wordmark_font(scale))
    return math.ceil(((1 + GAP) * scale + right - left) / SUPERSAMPLE)


def render_logo(height: int, width: int, palette: Palette) -> Image.Image:
    """Return the landscape logo: the mark, then the word, ``height`` high."""
    scale = height * SUPERSAMPLE
    big = _supersampled(width, height)
    draw = ImageDraw.Draw(big)
    draw_mark(draw, 0, 0, scale, palette)
    font = _wordmark_font(scale)
    colours = [getattr(palette, role) for word, role in WORDS for _ in word]
    x = (1 + GAP) * scale - _word_ink(font)[0]
    _draw_word(draw, x, scale * (1 + CAP_HEIGHT) / 2, font, colours)
    return _downscaled(big, width, height)


def render_all() -> dict[str, Image.Image]:
    """Return the eight brand images by file name."""
    images: dict[str, Image.Image] = {}
    width = logo_width(LOGO_HEIGHT)  # the @2x logo is exactly twice as wide
    for prefix, palette in (("", LIGHT), ("dark_", DARK)):
        images[f"{prefix}icon.png"] = render_icon(ICON_SIZE, palette)
        images[f"{prefix}icon@2x.png"] = render_icon(2 * ICON_SIZE, palette)
        images[f"{prefix}logo.png"] = render_logo(LOGO_HEIGHT, width, palette)
        images[f"{prefix}logo@2x.png"] = render_logo(
            2 * LOGO_HEIGHT, 2 * width, palette
        )
    return images


def write(out_dir: Path) -> list[Path]:
    """Write the eight images into ``out_dir``; return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, image in render_all().items():
        path = out_dir / name
        image.save(path, format="PNG", optimize=True)
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    """Write the brand images, by default into the integration's brand/."""
    parser = argparse.ArgumentParser(description="Draw PrintCam's brand images.")
    parser.add_argument(
        "--out", type=Path, default=BRAND_DIR, help=f"folder (default {BRAND_DIR})"
    )
    args = parser.parse_args(argv)
    for path in write(args.out):
        print(f"{path}  {path.stat().st_size} bytes")  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
