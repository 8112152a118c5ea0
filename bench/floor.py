"""The raw-socket floor: the least work any MJPEG fan-out proxy has to do.

    python -m bench.floor --upstream URL [--port 0] [--ready-file PATH]

No Home Assistant, no framework: one asyncio process reads the camera's
stream once (one connection, HTTP/1.0 so the body is not chunked), splits
it into parts (`bench.multipart`, Content-Length driven) and writes each
part, one bytes object, to every viewer's socket with
``transport.write``; a viewer whose socket buffer holds more than
`MAX_BUFFER` bytes skips frames. A new viewer gets the latest part at once.
``GET /still`` answers the latest JPEG (keep-alive). There is no
authentication, no per-viewer task and no queue.

Its CPU time per delivered frame is the benchmark's floor: what fanning
frames out over sockets costs in Python on this machine. Exits non-zero if
the camera's stream ends.
"""

# ruff: noqa: T201 - a command-line tool: printing is its output

from __future__ import annotations

import argparse
import asyncio
import json
import os
from pathlib import Path
import signal
import sys
from typing import Final
from urllib.parse import urlsplit

from .multipart import Part, ResponseReader

MAX_BUFFER: Final = 4 * 110_000
"""Bytes a viewer's socket may have queued before it skips frames (~4 frames)."""
BOUNDARY: Final = b"floorframe"
STREAM_HEAD: Final = (
    b"HTTP/1.1 200 OK\r\n"
    b"Content-Type: multipart/x-mixed-replace; boundary=" + BOUNDARY + b"\r\n"
    b"Cache-Control: no-store\r\n"
    b"Connection: close\r\n\r\n"
)
PART_HEAD: Final = (
    b"--" + BOUNDARY + b"\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n"
)
MAX_REQUEST: Final = 16 * 1024


class Floor:
    """Fan one upstream's parts out to every viewer's transport."""

    def __init__(self) -> None:
        """Start with no viewers and no frame."""
        self.viewers: set[asyncio.Transport] = set()
        self.latest_part: bytes | None = None
        self.latest_jpeg: bytes | None = None
        self.frames = 0
        self.skipped = 0

    def on_part(self, part: Part) -> None:
        """Send a part from the camera to every viewer."""
        jpeg = part.body
        if jpeg is None or not part.content_type.startswith("image/"):
            return
        data = b"".join((PART_HEAD % len(jpeg), jpeg, b"\r\n"))
        self.latest_part = data
        self.latest_jpeg = jpeg
        self.frames += 1
        for transport in tuple(self.viewers):
            if transport.get_write_buffer_size() > MAX_BUFFER:
                self.skipped += 1
            else:
                transport.write(data)


class _Upstream(asyncio.Protocol):
    def __init__(self, floor: Floor, request: bytes) -> None:
        self._request = request
        self.reader = ResponseReader(floor.on_part, keep_body=True)
        self.lost: asyncio.Future[Exception | None] = (
            asyncio.get_running_loop().create_future()
        )

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.write(self._request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(exc)


class _Viewer(asyncio.Protocol):
    """One client connection: ``/stream`` viewers and ``/still`` requests."""

    def __init__(self, floor: Floor) -> None:
        self._floor = floor
        self._buf = bytearray()
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        transport = self._transport
        if transport is None or transport in self._floor.viewers:
            return  # a viewer sends nothing more that matters
        self._buf += data
        while (end := self._buf.find(b"\r\n\r\n")) >= 0:
            request = bytes(self._buf[:end])
            del self._buf[: end + 4]
            fields = request.split(b"\r\n", 1)[0].split()
            path = fields[1] if len(fields) > 1 else b""
            if path.startswith(b"/stream"):
                transport.write(STREAM_HEAD + (self._floor.latest_part or b""))
                self._floor.viewers.add(transport)
                return
            jpeg = self._floor.latest_jpeg
            if path.startswith(b"/still") and jpeg is not None:
                transport.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\n"
                    b"Content-Length: %d\r\n\r\n" % len(jpeg) + jpeg
                )
            else:
                transport.write(
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n"
                    b"Connection: close\r\n\r\n"
                )
                transport.close()
                return
        if len(self._buf) > MAX_REQUEST:
            transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is not None:
            self._floor.viewers.discard(self._transport)


async def _main(args: argparse.Namespace) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    floor = Floor()
    url = urlsplit(args.upstream)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    request = f"GET {url.path or '/'} HTTP/1.0\r\nHost: {host}:{port}\r\n\r\n"
    upstream_transport, upstream = await loop.create_connection(
        lambda: _Upstream(floor, request.encode("latin-1")), host, port
    )
    server = await loop.create_server(
        lambda: _Viewer(floor), "127.0.0.1", args.port, reuse_address=True
    )
    line = json.dumps({"port": server.sockets[0].getsockname()[1], "pid": os.getpid()})
    if args.ready_file is not None:
        tmp = args.ready_file.with_suffix(".tmp")
        tmp.write_text(line + "\n", encoding="utf-8")
        tmp.replace(args.ready_file)
    print(line, flush=True)
    stopper = loop.create_task(stop.wait())
    await asyncio.wait({stopper, upstream.lost}, return_when=asyncio.FIRST_COMPLETED)
    code = 0
    if not stop.is_set():
        print("bench.floor: the camera's stream ended", file=sys.stderr, flush=True)
        code = 1
    stopper.cancel()
    upstream_transport.close()
    server.close()
    for transport in tuple(floor.viewers):
        transport.close()
    await server.wait_closed()
    return code


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``python -m bench.floor``."""
    parser = argparse.ArgumentParser(prog="python -m bench.floor")
    parser.add_argument("--upstream", required=True, help="the camera's stream URL")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ready-file", type=Path)
    sys.exit(asyncio.run(_main(parser.parse_args(argv))))


if __name__ == "__main__":
    main()
