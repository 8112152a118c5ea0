r"""A Bambu Lab X1-style RTSPS camera: Debian's GStreamer RTSP server.

Run by the *system* Python (``/usr/bin/python3``, where Debian's
``python3-gi`` lives), never the project's virtualenv; `printer_sim.rtsps`
starts it from tests. Serves an H.264 test pattern at
``rtsps://bblp:<code>@127.0.0.1:<port>/streaming/live/1`` over TLS with the
given PEM certificate and key (make them with `printer_sim.certs`, CN = the
serial), RTP interleaved in the TLS connection (TCP only, like the printer).

Usage::

    /usr/bin/python3 printer_sim/rtsps_server.py --cert C.pem --key K.pem \
        --access-code 12345678 [--port 0] [--mode good] [--size 320x240] \
        [--fps 15] [--bitrate 300] [--auth basic|digest|both]

Modes (``--mode``):

================ ==========================================================
good             the stream, for user ``bblp`` and the access code
wrong_code       the server expects another access code: every request 401
liveview_off     accepts TCP and closes it at once, no TLS (LAN Mode
                 Liveview off)
drop_every:N     each connection is closed N seconds (float) after it was
                 accepted, like a P2S ending its session
p2s_timestamps   the stream, but every RTP packet carries the same RTP
                 timestamp (buffers lose their PTS before the payloader);
                 ffmpeg then needs ``-use_wallclock_as_timestamps 1``
================ ==========================================================

One client at a time: a connection accepted while another one is open is
closed at once and counted in ``refused``.

Output: JSON lines on stdout, flushed. The first is
``{"event": "ready", "port": N, "status": {...}}``; then one line per
change (``connected``, ``refused``, ``closed``, ``session``, ``dropped``),
each with the full ``status``: ``connections_total`` (every TCP connection
accepted, refused ones included), ``connections_open``, ``max_open`` (the
most connections open at once, refused ones excluded), ``refused``,
``sessions`` (RTSP sessions created, i.e. SETUPs), ``plays``, ``dropped``.
SIGTERM or SIGINT: closes every client, prints ``{"event": "stopped"}`` and
exits 0.
"""

# This file runs under Debian's Python 3.11 with gi; it must not import
# anything from the project.
# ruff: noqa: T201, PLW0603

from __future__ import annotations

import argparse
import json
import signal
import socket
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import Gio, GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402

USER = "bblp"
PATH = "/streaming/live/1"

STATUS = {
    "connections_total": 0,
    "connections_open": 0,
    "max_open": 0,
    "refused": 0,
    "sessions": 0,
    "plays": 0,
    "dropped": 0,
}


def emit(event: str, **extra: object) -> None:
    """Print one JSON line with the event and the full status."""
    print(json.dumps({"event": event, **extra, "status": STATUS}), flush=True)


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Return the command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cert", required=True, help="PEM certificate")
    parser.add_argument("--key", required=True, help="PEM private key")
    parser.add_argument("--access-code", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    parser.add_argument("--mode", default="good")
    parser.add_argument("--size", default="320x240", help="e.g. 1920x1080")
    parser.add_argument("--fps", type=int, default=15)
    parser.add_argument("--bitrate", type=int, default=300, help="kbit/s")
    parser.add_argument("--auth", choices=("basic", "digest", "both"), default="basic")
    parser.add_argument(
        "--pattern",
        choices=("ball", "smpte"),
        default="ball",
        help="videotestsrc picture: a ball on black, or moving colour bars",
    )
    args = parser.parse_args(argv)
    mode = args.mode
    args.drop_every = None
    if mode.startswith("drop_every:"):
        args.drop_every = float(mode.split(":", 1)[1])
    elif mode not in {"good", "wrong_code", "liveview_off", "p2s_timestamps"}:
        parser.error(f"unknown mode {mode!r}")
    return args


PATTERNS = {
    "ball": "pattern=ball",
    "smpte": "pattern=smpte horizontal-speed=4",
}


def pipeline(args: argparse.Namespace) -> str:
    """Return the media factory's launch line."""
    width, height = (int(v) for v in args.size.lower().split("x"))
    return (
        f"( videotestsrc is-live=true {PATTERNS[args.pattern]} "
        f"! video/x-raw,width={width},height={height},framerate={args.fps}/1 "
        "! videoconvert ! video/x-raw,format=I420 "
        f"! x264enc tune=zerolatency speed-preset=ultrafast bitrate={args.bitrate} "
        f"key-int-max={args.fps} "
        "! video/x-h264,profile=baseline ! h264parse "
        "! rtph264pay name=pay0 pt=96 config-interval=-1 )"
    )


def strip_pts(_pad: Gst.Pad, info: Gst.PadProbeInfo) -> Gst.PadProbeReturn:
    """Drop the buffer's timestamps: the payloader then repeats its RTP time."""
    buffer = info.get_buffer()
    if buffer is not None:
        buffer.pts = Gst.CLOCK_TIME_NONE
        buffer.dts = Gst.CLOCK_TIME_NONE
    return Gst.PadProbeReturn.OK


def on_media_configure(
    _factory: GstRtspServer.RTSPMediaFactory, media: GstRtspServer.RTSPMedia
) -> None:
    """Add the P2S timestamp quirk to the payloader's input."""
    element = media.get_element()
    pay = element.get_by_name("pay0") if element is not None else None
    if pay is not None:
        pay.get_static_pad("sink").add_probe(Gst.PadProbeType.BUFFER, strip_pts)


class Server:
    """The RTSP server, its clients and their counters."""

    def __init__(self, args: argparse.Namespace) -> None:
        """Build the server (not listening yet)."""
        self.args = args
        self.clients: set[GstRtspServer.RTSPClient] = set()
        self.loop = GLib.MainLoop()
        self.server = GstRtspServer.RTSPServer()
        self.server.set_address(args.host)
        self.server.set_service(str(args.port))
        self.listener: socket.socket | None = None

        auth = GstRtspServer.RTSPAuth()
        auth.set_tls_certificate(Gio.TlsCertificate.new_from_files(args.cert, args.key))
        # Clients are not asked for a certificate.
        auth.set_tls_authentication_mode(Gio.TlsAuthenticationMode.NONE)
        token = GstRtspServer.RTSPToken()
        token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, USER)
        code = args.access_code
        if args.mode == "wrong_code":
            code = "wrong-" + code
        methods = GstRtsp.RTSPAuthMethod(0)
        if args.auth in {"basic", "both"}:
            auth.add_basic(GstRtspServer.RTSPAuth.make_basic(USER, code), token)
            methods |= GstRtsp.RTSPAuthMethod.BASIC
        if args.auth in {"digest", "both"}:
            auth.add_digest(USER, code, token)
            methods |= GstRtsp.RTSPAuthMethod.DIGEST
        auth.set_supported_methods(methods)
        self.server.set_auth(auth)

        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_launch(pipeline(args))
        factory.set_shared(True)
        factory.set_protocols(GstRtsp.RTSPLowerTrans.TCP)
        role = Gst.Structure.new_from_string(
            f"{USER}, media.factory.access=(boolean)true, "
            "media.factory.construct=(boolean)true"
        )
        factory.add_role_from_structure(role)
        if args.mode == "p2s_timestamps":
            factory.connect("media-configure", on_media_configure)
        self.server.get_mount_points().add_factory(PATH, factory)
        self.server.connect("client-connected", self.on_client_connected)

    # --- connections ------------------------------------------------------

    def on_client_connected(
        self, _server: GstRtspServer.RTSPServer, client: GstRtspServer.RTSPClient
    ) -> None:
        """Count the connection; refuse it if another one is open."""
        STATUS["connections_total"] += 1
        if self.clients:
            STATUS["refused"] += 1
            emit("refused")
            # Shut the socket down: the peer sees the TCP close at once
            # (before any TLS), the client's watch sees EOF and frees it.
            client.get_connection().get_read_socket().shutdown(True, True)
            return
        self.clients.add(client)
        STATUS["connections_open"] = len(self.clients)
        STATUS["max_open"] = max(STATUS["max_open"], len(self.clients))
        client.connect("closed", self.on_client_closed)
        client.connect("new-session", self.on_new_session)
        client.connect("play-request", self.on_play)
        emit("connected")
        if self.args.drop_every is not None:
            GLib.timeout_add(int(self.args.drop_every * 1000), self.drop_client, client)

    def drop_client(self, client: GstRtspServer.RTSPClient) -> bool:
        """End a client's session and connection, like a P2S does."""
        if client in self.clients:
            STATUS["dropped"] += 1
            emit("dropped")
            client.close()
        return GLib.SOURCE_REMOVE

    def on_client_closed(self, client: GstRtspServer.RTSPClient) -> None:
        """Forget a closed client."""
        if client in self.clients:
            self.clients.discard(client)
            STATUS["connections_open"] = len(self.clients)
            emit("closed")

    @staticmethod
    def on_new_session(
        _client: GstRtspServer.RTSPClient, _session: GstRtspServer.RTSPSession
    ) -> None:
        """Count an RTSP session (a SETUP)."""
        STATUS["sessions"] += 1
        emit("session")

    @staticmethod
    def on_play(
        _client: GstRtspServer.RTSPClient, _context: GstRtspServer.RTSPContext
    ) -> None:
        """Count a PLAY."""
        STATUS["plays"] += 1
        emit("play")

    # --- liveview off: TCP accepted and closed at once ----------------------

    def listen_closing(self) -> int:
        """Listen on plain TCP, closing every connection at once."""
        listener = socket.create_server((self.args.host, self.args.port))
        listener.setblocking(False)
        self.listener = listener
        GLib.io_add_watch(listener.fileno(), GLib.IO_IN, self.accept_and_close)
        return listener.getsockname()[1]

    def accept_and_close(self, _fd: int, _condition: GLib.IOCondition) -> bool:
        """Accept one connection and close it."""
        assert self.listener is not None  # noqa: S101
        try:
            connection, _address = self.listener.accept()
        except BlockingIOError:
            return GLib.SOURCE_CONTINUE
        STATUS["connections_total"] += 1
        STATUS["refused"] += 1
        connection.close()
        emit("refused")
        return GLib.SOURCE_CONTINUE

    # --- life cycle ----------------------------------------------------------

    def run(self) -> None:
        """Listen, print the ready line and serve until SIGTERM."""
        if self.args.mode == "liveview_off":
            port = self.listen_closing()
        else:
            self.server.attach(None)
            port = self.server.get_bound_port()
        for signum in (signal.SIGTERM, signal.SIGINT):
            GLib.unix_signal_add(GLib.PRIORITY_HIGH, signum, self.stop)
        emit("ready", port=port, mode=self.args.mode, path=PATH)
        self.loop.run()
        emit("stopped")

    def stop(self) -> bool:
        """Close every client and quit the main loop."""
        for client in list(self.clients):
            client.close()
        if self.listener is not None:
            self.listener.close()
        self.loop.quit()
        return GLib.SOURCE_REMOVE


def main(argv: list[str]) -> int:
    """Run the server."""
    args = parse_args(argv)
    Gst.init(None)
    Server(args).run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
