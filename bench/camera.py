"""The benchmark's simulated cameras: one per system measured, all alike.

    python -m bench.camera --names floor,mjpeg,printcam [--fps 30]
                           [--frame-bytes 100000] [--ready-file PATH]

Each name gets a `printer_sim.MjpegPrinter` on a free port of 127.0.0.1:
``/stream`` at ``--fps`` on a shared camera clock (every stream sends on
the same ticks, a new stream waits for the next one, like mjpg-streamer),
``/snapshot``, ``/status`` counters; no client limit (Home Assistant's
camera opens one stream per viewer). Frames are `bench.frames` pictures
stamped when sent. One camera per system keeps each one's connection
counters its own. Prints (and writes to ``--ready-file``) one JSON line
``{name: {"url", "still_url", "status_url", "port"}, "pid", "frame_kb"}`` once
all listen; SIGINT/SIGTERM closes them.
"""

# ruff: noqa: T201 - a command-line tool: printing is its output

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
from pathlib import Path
import signal

from printer_sim import MjpegPrinter

from .frames import FRAME_BYTES, make_pictures, stamper


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.camera")
    parser.add_argument("--names", default="floor,mjpeg,printcam")
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--frame-bytes", type=int, default=FRAME_BYTES)
    parser.add_argument("--ready-file", type=Path)
    return parser.parse_args(argv)


async def _main(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    pictures = make_pictures(size=args.frame_bytes)
    frame = stamper(pictures)
    async with contextlib.AsyncExitStack() as stack:
        ready: dict[str, object] = {
            "pid": os.getpid(),
            "frame_kb": sum(map(len, pictures)) / len(pictures) / 1000,
        }
        for name in args.names.split(","):
            printer = MjpegPrinter(
                frames=frame,
                fps=args.fps,
                max_clients=None,
                record_frames=False,
                shared_clock=True,
            )
            await printer.start()
            stack.push_async_callback(printer.close)
            ready[name] = {
                "url": printer.url,
                "still_url": printer.still_url,
                "status_url": printer.status_url,
                "port": printer.port,
            }
        line = json.dumps(ready)
        if args.ready_file is not None:
            tmp = args.ready_file.with_suffix(".tmp")
            tmp.write_text(line + "\n", encoding="utf-8")
            tmp.replace(args.ready_file)
        print(line, flush=True)
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``python -m bench.camera``."""
    asyncio.run(_main(_parse_args(argv)))


if __name__ == "__main__":
    main()
