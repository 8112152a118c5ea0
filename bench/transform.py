"""Benchmark the camera orientation transform: the cost per frame. Prints figures.

    .venv/bin/python -m bench.transform [--frames 300] [--sizes 1280x720,1920x1080]

For each transform (every flip and rotation a printer can ask for) and frame
size it measures `FrameTransform.apply` on realistic JPEGs (a gradient
with smooth noise, 4:2:0, ~100 kB at 1280x720 and ~225 kB at 1920x1080)
along three paths:

* lossless: libjpeg-turbo's ``tjTransform`` (the default, ``Strategy.TRIM``);
* decode: libjpeg-turbo decodes, numpy turns, PyTurboJPEG encodes at the
  source's quality (``Strategy.DECODE``; what ``Strategy.EXACT`` pays for a
  frame whose moved edge is a partial MCU);
* pillow: the fallback without libturbojpeg (decode, transpose, encode).

Not a test: numbers depend on the machine. Each figure is the median and
95th percentile over ``--frames`` calls (after a short warm-up; the paths
take turns frame by frame), in microseconds of wall time on one thread.
"""

# ruff: noqa: T201 - a benchmark prints its figures

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from importlib import metadata
import itertools
import logging
from pathlib import Path
import platform
import time

from homeassistant.components.camera.img_util import TurboJPEGSingleton
import numpy as np

from bench.stats import percentile
from custom_components.printcam.transform import FrameTransform, Orientation, Strategy

TRANSFORMS = ("hflip", "vflip", "rot90", "rot180", "rot270", "transpose", "transverse")
PICTURES = 6
"""Distinct frames cycled through (so no run sees one frame in the cache)."""
WARMUP = 10
FRAME_KB_720P = 100
"""A stock printer camera's 1280x720 frame is ~60-200 kB (see bench/core.py)."""


def orientation_for(transform_id: str) -> Orientation:
    """Return an orientation that is ``transform_id`` (e.g. "rot90")."""
    for flip_h, flip_v, rotation in itertools.product(
        (False, True), (False, True), (0, 90, 180, 270)
    ):
        orientation = Orientation(flip_h, flip_v, rotation)
        if orientation.transform_id == transform_id:
            return orientation
    raise ValueError(transform_id)


def _picture(width: int, height: int, seed: int) -> np.ndarray:
    """Return RGB pixels: a gradient with smooth noise and a little grain."""
    rng = np.random.default_rng(seed)
    small = rng.random((height // 16 + 2, width // 16 + 2, 3))
    # bilinear upsampling of the noise: smooth, like a real scene
    ys = np.linspace(0, small.shape[0] - 1.001, height)
    xs = np.linspace(0, small.shape[1] - 1.001, width)
    y0, x0 = ys.astype(int), xs.astype(int)
    fy, fx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
    top = small[y0][:, x0] * (1 - fx) + small[y0][:, x0 + 1] * fx
    bottom = small[y0 + 1][:, x0] * (1 - fx) + small[y0 + 1][:, x0 + 1] * fx
    smooth = top * (1 - fy) + bottom * fy
    gradient = np.linspace(0, 1, width)[None, :, None]
    grain = rng.random((height, width, 1)) * 0.03
    picture = (smooth * 0.6 + gradient * 0.37 + grain) * 255
    return np.ascontiguousarray(np.clip(picture, 0, 255).astype(np.uint8))


def pictures(width: int, height: int, count: int = PICTURES) -> list[bytes]:
    """Return ``count`` realistic 4:2:0 JPEGs of about FRAME_KB_720P (scaled).

    The quality is searched once on the first picture, as `bench.frames`
    does for its 1280x720 frames: ~100 kB at 1280x720, ~225 kB at 1920x1080.
    """
    turbo = TurboJPEGSingleton.instance()
    if not turbo:
        raise SystemExit("libturbojpeg is not available")
    target = FRAME_KB_720P * 1000 * width * height / (1280 * 720)
    raw = [_picture(width, height, seed) for seed in range(count)]

    def encode(pixels: np.ndarray, quality: int) -> bytes:
        return bytes(
            turbo.encode(pixels, quality=quality, pixel_format=0, jpeg_subsample=2)
        )

    low, high = 5, 95
    while low < high:  # the highest quality whose picture fits the target
        mid = (low + high + 1) // 2
        if len(encode(raw[0], mid)) <= target:
            low = mid
        else:
            high = mid - 1
    return [encode(pixels, low) for pixels in raw]


def measure(
    applies: Sequence[Callable[[bytes], bytes]], frames: Sequence[bytes], count: int
) -> list[list[float]]:
    """Return, per function, the microseconds each of ``count`` calls took.

    The functions take turns frame by frame, so a busy machine slows them
    all alike instead of whichever happened to run while it was busy.
    """
    for i in range(WARMUP):
        for apply in applies:
            apply(frames[i % len(frames)])
    times: list[list[float]] = [[] for _ in applies]
    clock = time.perf_counter_ns
    for i in range(count):
        frame = frames[i % len(frames)]
        for apply, own in zip(applies, times, strict=True):
            started = clock()
            apply(frame)
            own.append((clock() - started) / 1000)
    return times


def cpu_name() -> str:
    """Return the CPU model (Linux), or the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def version(package: str) -> str:
    """Return an installed package's version."""
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def main(argv: Sequence[str] | None = None) -> None:
    """Run the benchmark and print one line per transform and path."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--frames", type=int, default=300, help="calls per figure")
    parser.add_argument(
        "--sizes", default="1280x720,1920x1080", help="comma-separated WxH"
    )
    parser.add_argument(
        "--paths",
        default="lossless,decode,pillow",
        help="which of lossless, decode, pillow to measure",
    )
    args = parser.parse_args(argv)
    # the Pillow path is chosen on purpose here: no "degraded" warning
    logging.getLogger("custom_components.printcam.transform").setLevel(logging.ERROR)
    sizes = [tuple(int(n) for n in size.split("x")) for size in args.sizes.split(",")]
    paths: dict[str, dict[str, object]] = {
        "lossless": {"strategy": Strategy.TRIM},
        "decode": {"strategy": Strategy.DECODE},
        "pillow": {"turbojpeg": False},
    }
    chosen = [p for p in args.paths.split(",") if p in paths]
    turbo = TurboJPEGSingleton.instance()
    if not turbo:
        raise SystemExit("libturbojpeg is not available")
    print(
        f"{cpu_name()}, {platform.python_implementation()} {platform.python_version()}, "
        f"PyTurboJPEG {version('PyTurboJPEG')}, Pillow {version('Pillow')}, "
        f"numpy {version('numpy')}; {args.frames} frames per figure, µs per frame"
    )
    for width, height in sizes:
        frames = pictures(width, height)
        mean_kb = sum(map(len, frames)) / len(frames) / 1000
        print(f"\n{width}x{height} JPEG 4:2:0, {mean_kb:.0f} kB on average")
        print(f"{'transform':<11}{'path':<9}{'median':>9}{'p95':>9}  output")
        for transform_id in TRANSFORMS:
            orientation = orientation_for(transform_id)
            transforms = [FrameTransform(orientation, **paths[p]) for p in chosen]  # type: ignore[arg-type]
            timings = measure([t.apply for t in transforms], frames, args.frames)
            for path, transform, times in zip(chosen, transforms, timings, strict=True):
                out = transform.apply(frames[0])
                note = "trimmed" if transform.stats.trimmed else ""
                out_w, out_h = turbo.decode_header(out)[:2]
                print(
                    f"{transform_id:<11}{path:<9}{percentile(times, 50):>9.0f}"
                    f"{percentile(times, 95):>9.0f}  {out_w}x{out_h} "
                    f"{len(out) / 1000:.0f} kB {note}".rstrip()
                )


if __name__ == "__main__":
    main()
