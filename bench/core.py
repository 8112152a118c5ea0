"""Benchmark the pure cores: MJPEG parsing and fan-out. Prints figures.

    .venv/bin/python -m bench.core

Not a test: numbers depend on the machine. What it shows is the cost per
frame of the work PrintCam does for every printer and every viewer.
"""

# ruff: noqa: T201 - a benchmark prints its figures

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
import time
import tracemalloc

from custom_components.printcam import fanout
from custom_components.printcam.mjpeg import MjpegParser, encode_part
from printer_sim.jpeg import solid_jpeg, with_comment

# A stock printer frame is ~60-200 kB; pad a real 1280x720 JPEG with comment
# segments (ignored by decoders) to a realistic ~125 kB.
FRAME = with_comment(
    with_comment(solid_jpeg(1280, 720, 128), b"p" * 60000), b"q" * 60000
)
FRAME_COUNT = 600


def bench_parser(chunk: int) -> None:
    """Parse FRAME_COUNT parts fed in `chunk`-byte pieces."""
    frames = [with_comment(FRAME, b"frame %d" % i) for i in range(FRAME_COUNT)]
    body = b"".join(encode_part(f) for f in frames)
    parser = MjpegParser("printcamframe")
    started = time.perf_counter()
    out = 0
    for pos in range(0, len(body), chunk):
        out += len(parser.feed(body[pos : pos + chunk]))
    elapsed = time.perf_counter() - started
    if out != FRAME_COUNT:
        raise SystemExit(f"parser returned {out} frames, expected {FRAME_COUNT}")
    print(
        f"parser  chunk {chunk:>6} B: {FRAME_COUNT / elapsed:8.0f} frames/s, "
        f"{len(body) / elapsed / 1e6:7.1f} MB/s, {elapsed / FRAME_COUNT * 1e6:6.1f} µs/frame"
    )


async def bench_fanout(viewers: int) -> None:
    """Fan FRAME_COUNT parts out to `viewers` readers; measure cost and memory."""
    part = encode_part(FRAME)
    produced = asyncio.Event()

    async def upstream(disconnect: asyncio.Event) -> AsyncIterator[bytes]:
        for _ in range(FRAME_COUNT):
            yield part
            await asyncio.sleep(0)
        produced.set()

    tracemalloc.start()
    bc = fanout.MjpegBroadcaster("bench", upstream)
    queues = [await bc.subscribe() for _ in range(viewers)]
    received = 0

    async def read(queue: asyncio.Queue[bytes]) -> None:
        nonlocal received
        while await queue.get() != fanout._UPSTREAM_GONE:  # noqa: SLF001
            received += 1

    started = time.perf_counter()
    readers = [asyncio.create_task(read(q)) for q in queues]
    await produced.wait()
    await bc.force_shutdown()
    await asyncio.gather(*readers)
    elapsed = time.perf_counter() - started
    _current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(
        f"fan-out {viewers:>4} viewers: {FRAME_COUNT / elapsed:8.0f} frames/s, "
        f"{elapsed / FRAME_COUNT / viewers * 1e6:6.2f} µs per frame per viewer, "
        f"delivered {received}/{FRAME_COUNT * viewers}, "
        f"dropped {bc.stats.chunks_dropped}, peak {peak / 1e6:.1f} MB "
        f"(one frame: {len(part) / 1e3:.1f} kB, shared, not copied)"
    )


def main() -> None:
    """Run every benchmark."""
    print(f"frame: 1280x720 JPEG, {len(FRAME)} bytes; {FRAME_COUNT} frames per run")
    for chunk in (1024, 16384, 65536):
        bench_parser(chunk)
    for viewers in (1, 10, 100):
        asyncio.run(bench_fanout(viewers))


if __name__ == "__main__":
    main()
