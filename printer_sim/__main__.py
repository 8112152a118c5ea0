"""Run simulated printers until SIGINT/SIGTERM: ``python -m printer_sim``.

    python -m printer_sim [--mjpeg-port 0] [--bambu-port 0] [--x1c-port 0]
                          [--status-file PATH]

Starts three printer cameras on 127.0.0.1, all 1280x720:

- an MJPEG camera (HTTP, ``--fps``, default 15) with ``/status`` counters;
- a Bambu Lab P1 camera (TLS on its own port, about 1 fps, serial
  ``--bambu-serial`` and access code ``--bambu-access-code``) with a
  certificate made at start (or kept in ``--bambu-cert``, like a real
  printer keeps its own), and its counters on a small HTTP server
  (``--bambu-status-port``, ``/status``);
- a Bambu Lab X1C camera: H.264 over RTSPS at 15 fps, served by Debian's
  GStreamer RTSP server (`printer_sim.rtsps.RtspsPrinter`, run by the
  system Python), user ``bblp`` and ``--x1c-access-code``, a certificate
  naming ``--x1c-serial`` (kept in ``--x1c-cert``), its counters on
  ``--x1c-status-port``. Where GStreamer is missing (``scripts/setup``
  installs it as root) it is left out and the ready JSON says why
  (``"x1c_unavailable"``); ``--no-x1c`` leaves it out too.

The first two show the moving test pattern of `printer_sim.pattern`, the
X1C GStreamer's moving colour bars.

With ``--octoprint``, a fourth: a real OctoPrint 1.11 (from
``.venv-octoprint``, which ``scripts/setup`` makes; `OctoPrintServer`, kept
off the network) whose classic webcam is another MJPEG camera of the
pattern (``--octoprint-camera-port``), on ``--octoprint-port`` with the API
key ``--octoprint-api-key`` and the uuid ``--octoprint-uuid`` (both new
when not given). Without that virtualenv it is left out and the ready JSON
says why (``"octoprint_unavailable"``).

Like real printers, each serves one client at a time (``--max-clients``):
the MJPEG camera answers a second concurrent stream with 503, the Bambu
camera hangs up on a connection over the limit right after the TLS
handshake. Both status pages count connections: total, open now, most open
at once, refused.

Once both listen it prints one JSON line such as::

    {"mjpeg": {"url": ..., "still_url": ..., "status_url": ..., "port": N},
     "bambu": {"host": ..., "port": N, "serial": ..., "access_code": ...,
               "status_url": ..., "status_port": N, "cert_sha256": ...},
     "x1c": {... the same keys as "bambu" ..., "model": "X1C"},
     "octoprint": {"host", "port", "api_key", "uuid", "url",
                   "camera_url", "camera_status_url", "camera_port"}}

(also written to ``--status-file`` when given). Closes every connection
cleanly on SIGINT/SIGTERM.

Each simulator is one key of the ready JSON, started in `_start_simulators`
and closed in reverse order.
"""

# ruff: noqa: T201 - a command-line tool: printing is its output

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
from pathlib import Path
import re
import signal
import sys
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from .bambu_server import BambuPrinter
from .certs import Certificate, make_certificate
from .mjpeg_server import MjpegPrinter
from .octoprint_server import ClassicWebcam, OctoPrintServer, octoprint_available
from .pattern import FPS, pattern_frame, warm_up
from .rtsps import RtspsPrinter, rtsps_available
from .status import StatusServer

BAMBU_SERIAL = "01P00ADEMO00001"
BAMBU_ACCESS_CODE = "12345678"
BAMBU_FPS = 1.0
"""A P1 camera sends about one frame per second."""
X1C_SERIAL = "00M00ADEMO00001"
X1C_ACCESS_CODE = "24681357"
X1C_SIZE = "1280x720"
X1C_FPS = 15
X1C_BITRATE_KBPS = 1500


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
        help="concurrent camera clients per printer before refusing (real printers: 1)",
    )
    parser.add_argument(
        "--bambu-port",
        type=int,
        default=0,
        help="port of the Bambu TLS camera on 127.0.0.1 (0: a free port)",
    )
    parser.add_argument(
        "--bambu-status-port",
        type=int,
        default=0,
        help="port of the Bambu camera's HTTP /status (0: a free port)",
    )
    parser.add_argument("--bambu-serial", default=BAMBU_SERIAL)
    parser.add_argument("--bambu-access-code", default=BAMBU_ACCESS_CODE)
    parser.add_argument(
        "--bambu-fps", type=float, default=BAMBU_FPS, help="Bambu frames per second"
    )
    parser.add_argument(
        "--bambu-cert",
        type=Path,
        help="PEM file with the Bambu camera's certificate and key: used when it "
        "exists (and its CN is the serial), else made and saved there",
    )
    parser.add_argument(
        "--x1c-port",
        type=int,
        default=0,
        help="port of the X1C RTSPS camera on 127.0.0.1 (0: a free port)",
    )
    parser.add_argument(
        "--x1c-status-port",
        type=int,
        default=0,
        help="port of the X1C camera's HTTP /status (0: a free port)",
    )
    parser.add_argument("--x1c-serial", default=X1C_SERIAL)
    parser.add_argument("--x1c-access-code", default=X1C_ACCESS_CODE)
    parser.add_argument(
        "--x1c-cert",
        type=Path,
        help="PEM file with the X1C camera's certificate and key (as --bambu-cert)",
    )
    parser.add_argument(
        "--no-x1c", action="store_true", help="leave the X1C RTSPS camera out"
    )
    parser.add_argument(
        "--octoprint", action="store_true", help="also run a real OctoPrint"
    )
    parser.add_argument("--octoprint-port", type=int, default=0)
    parser.add_argument("--octoprint-camera-port", type=int, default=0)
    parser.add_argument("--octoprint-api-key", default=None)
    parser.add_argument("--octoprint-uuid", default=None)
    parser.add_argument(
        "--status-file", type=Path, help="also write the ready JSON line to this file"
    )
    return parser.parse_args(argv)


async def _start_camera(
    args: argparse.Namespace, stack: contextlib.AsyncExitStack, port: int
) -> MjpegPrinter:
    """Start an MJPEG camera of the test pattern on `port` (0: a free one)."""
    camera = MjpegPrinter(
        frames=pattern_frame,
        fps=args.fps,
        max_clients=args.max_clients,
        record_frames=False,
        host=args.host,
        port=port,
    )
    await camera.start()
    stack.push_async_callback(camera.close)
    return camera


async def _start_simulators(
    args: argparse.Namespace, stack: contextlib.AsyncExitStack
) -> dict[str, Any]:
    """Start every simulator; return what the ready line says about them."""
    warm_up()  # encode the pattern once, before the first client waits for it
    mjpeg = await _start_camera(args, stack, args.mjpeg_port)
    ready: dict[str, Any] = {
        "mjpeg": {
            "url": mjpeg.url,
            "still_url": mjpeg.still_url,
            "status_url": mjpeg.status_url,
            "port": mjpeg.port,
        }
    }
    certificate = None
    if args.bambu_cert is not None:
        certificate = _load_or_make_certificate(args.bambu_cert, args.bambu_serial)
    bambu = BambuPrinter(
        serial=args.bambu_serial,
        access_code=args.bambu_access_code,
        frames=pattern_frame,
        fps=args.bambu_fps,
        max_clients=args.max_clients,
        over_limit="close",
        record_frames=False,
        host=args.host,
        port=args.bambu_port,
        certificate=certificate,
    )
    await bambu.start()
    stack.push_async_callback(bambu.close)
    status = StatusServer(bambu.status, host=args.host, port=args.bambu_status_port)
    await status.start()
    stack.push_async_callback(status.close)
    ready["bambu"] = {
        "host": bambu.host,
        "port": bambu.port,
        "serial": bambu.serial,
        "access_code": bambu.access_code,
        "status_url": status.url,
        "status_port": status.port,
        "cert_sha256": bambu.cert_sha256,
    }
    await _start_x1c(args, stack, ready)
    if args.octoprint:
        await _start_octoprint(args, stack, ready)
    return ready


async def _start_octoprint(
    args: argparse.Namespace, stack: contextlib.AsyncExitStack, ready: dict[str, Any]
) -> None:
    """Start a real OctoPrint whose webcam is a camera of its own."""
    if (reason := octoprint_available()) is not None:
        ready["octoprint_unavailable"] = f"{reason} (scripts/setup makes it)"
        print(f"printer_sim: no OctoPrint: {reason}", file=sys.stderr, flush=True)
        return
    camera = await _start_camera(args, stack, args.octoprint_camera_port)
    octoprint = OctoPrintServer(
        api_key=args.octoprint_api_key,
        server_uuid=args.octoprint_uuid,
        port=args.octoprint_port,
    )
    await octoprint.start()
    stack.push_async_callback(octoprint.stop)
    await octoprint.set_webcams(
        ClassicWebcam(stream=camera.url, snapshot=camera.still_url)
    )
    ready["octoprint"] = {
        "host": octoprint.host,
        "port": octoprint.port,
        "api_key": octoprint.api_key,
        "uuid": octoprint.uuid,
        "url": octoprint.url,
        "camera_url": camera.url,
        "camera_status_url": camera.status_url,
        "camera_port": camera.port,
    }


async def _start_x1c(
    args: argparse.Namespace, stack: contextlib.AsyncExitStack, ready: dict[str, Any]
) -> None:
    """Start the X1C RTSPS camera and its status page, if GStreamer is here."""
    if args.no_x1c:
        ready["x1c_unavailable"] = "left out (--no-x1c)"
        return
    if (reason := await asyncio.to_thread(rtsps_available)) is not None:
        ready["x1c_unavailable"] = f"{reason} (scripts/setup installs it as root)"
        print(f"printer_sim: no X1C camera: {reason}", file=sys.stderr, flush=True)
        return
    certificate = None
    if args.x1c_cert is not None:
        certificate = _load_or_make_certificate(args.x1c_cert, args.x1c_serial)
    x1c = RtspsPrinter(
        serial=args.x1c_serial,
        access_code=args.x1c_access_code,
        size=X1C_SIZE,
        fps=X1C_FPS,
        bitrate_kbps=X1C_BITRATE_KBPS,
        pattern="smpte",
        port=args.x1c_port,
        certificate=certificate,
    )
    await x1c.start()
    stack.push_async_callback(x1c.stop)
    status = StatusServer(
        lambda: dict(x1c.status), host=args.host, port=args.x1c_status_port
    )
    await status.start()
    stack.push_async_callback(status.close)
    ready["x1c"] = {
        "host": x1c.host,
        "port": x1c.port,
        "serial": x1c.serial,
        "access_code": x1c.access_code,
        "model": "X1C",
        "status_url": status.url,
        "status_port": status.port,
        "cert_sha256": x1c.cert_sha256,
    }


_PEM_BLOCK = re.compile(
    rb"-----BEGIN ([A-Z ]+)-----.+?-----END \1-----\r?\n?", re.DOTALL
)


def _load_or_make_certificate(path: Path, serial: str) -> Certificate:
    """Return the certificate kept in ``path``; make and save one when needed.

    A real printer keeps its certificate across restarts, so a client that
    pinned it on first use still trusts it: the demo keeps it in a file.
    """
    with contextlib.suppress(FileNotFoundError, KeyError, ValueError):
        blocks = {
            match.group(1).decode(): match.group(0)
            for match in _PEM_BLOCK.finditer(path.read_bytes())
        }
        cert_pem, key_pem = blocks["CERTIFICATE"], blocks["PRIVATE KEY"]
        cert = x509.load_pem_x509_certificate(cert_pem)
        names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        if names and names[0].value == serial:
            return Certificate(
                der=cert.public_bytes(serialization.Encoding.DER),
                cert_pem=cert_pem,
                key_pem=key_pem,
                common_name=serial,
            )
    certificate = make_certificate(serial)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(b"")
    tmp.chmod(0o600)  # holds the private key
    tmp.write_bytes(certificate.key_pem + certificate.cert_pem)
    tmp.replace(path)
    return certificate


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
