"""Run simulated printers until SIGINT/SIGTERM: ``python -m printer_sim``.

    python -m printer_sim --mjpeg-port 0 [--fps 15] [--status-file PATH]

Starts an MJPEG printer camera (the moving test pattern of
`printer_sim.pattern`, one client at a time like real printers) on
127.0.0.1 and, once it listens, prints one JSON line such as::

    {"mjpeg": {"url": ..., "still_url": ..., "status_url": ..., "port": N}}

(also written to ``--status-file`` when given). Closes every connection
cleanly on SIGINT/SIGTERM.

Extension point: each simulator is one entry in the ready JSON, started in
`_start_simulators` and closed in reverse order. A Bambu simulator would add
its own ``--bambu-...`` options and a ``"bambu"`` key there; none exists yet.
"""

# ruff: noqa: T201 - a command-line tool: printing is its output

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
from pathlib import Path
import signal
import sys
from typing import Any

from .mjpeg_server import MjpegPrinter
from .pattern import FPS, pattern_frame, warm_up


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m printer_sim")
    parser.add_argument(
        "--mjpeg-port",
        type=int,
        default=0,
        help="port of the MJPEG camera on 127.0.0.1 (0: a free port)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--fps", type=float, default=FPS, help="frames per second")
    parser.add_argument(
        "--max-clients",
        type=int,
        default=1,
        help="concurrent streams before answering 503 (real printers: 1)",
    )
    parser.add_argument(
        "--status-file", type=Path, help="also write the ready JSON line to this file"
    )
    return parser.parse_args(argv)


async def _start_simulators(
    args: argparse.Namespace, stack: contextlib.AsyncExitStack
) -> dict[str, Any]:
    """Start every simulator; return what the ready line says about them."""
    warm_up()  # encode the pattern once, before the first client waits for it
    mjpeg = MjpegPrinter(
        frames=pattern_frame,
        fps=args.fps,
        max_clients=args.max_clients,
        record_frames=False,
        host=args.host,
        port=args.mjpeg_port,
    )
    await mjpeg.start()
    stack.push_async_callback(mjpeg.close)
    ready: dict[str, Any] = {
        "mjpeg": {
            "url": mjpeg.url,
            "still_url": mjpeg.still_url,
            "status_url": mjpeg.status_url,
            "port": mjpeg.port,
        }
    }
    # Future simulators (e.g. Bambu: MQTT + camera) start here and add a key.
    return ready


async def _main(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with contextlib.AsyncExitStack() as stack:
        ready = await _start_simulators(args, stack)
        line = json.dumps(ready)
        if args.status_file is not None:
            args.status_file.write_text(line + "\n", encoding="utf-8")
        print(line, flush=True)
        await stop.wait()
        print("printer_sim: stopping", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``python -m printer_sim``."""
    asyncio.run(_main(_parse_args(argv)))


if __name__ == "__main__":
    main()
