"""Constants shared by every layer of PrintCam (no Home Assistant imports)."""

from __future__ import annotations

from typing import Final

DOMAIN: Final = "printcam"

# Config entry data keys (the config entry contract).
CONF_KIND: Final = "kind"
CONF_URL: Final = "url"
CONF_STILL_URL: Final = "still_url"
CONF_USERNAME: Final = "username"
CONF_PASSWORD: Final = "password"  # noqa: S105 - a key, not a secret
CONF_VERIFY_SSL: Final = "verify_ssl"
CONF_NAME: Final = "name"

KIND_MJPEG: Final = "mjpeg"
KIND_BAMBU: Final = "bambu"
KIND_OCTOPRINT: Final = "octoprint"
KIND_MOONRAKER: Final = "moonraker"

# OctoPrint (KIND_OCTOPRINT) and Moonraker (KIND_MOONRAKER) entry data keys,
# with CONF_HOST and CONF_PORT.
CONF_SSL: Final = "ssl"
CONF_PATH: Final = "path"
CONF_API_KEY: Final = "api_key"

# Options and their defaults.
CONF_MAX_FPS: Final = "max_fps"
CONF_IDLE_GRACE_S: Final = "idle_grace_s"
CONF_STILL_HOLD_S: Final = "still_hold_s"
CONF_STALL_S: Final = "stall_s"
CONF_KEEP_WARM: Final = "keep_warm"
CONF_CLIP_BUFFER: Final = "clip_buffer"
"""Keep the last seconds of frames for clips (a switch per camera)."""
# Restream (a stable URL per printer for go2rtc, Frigate, Obico, ...).
CONF_RESTREAM: Final = "restream"
CONF_RESTREAM_STREAM_SOURCE: Final = "restream_stream_source"
CONF_RESTREAM_ROTATE: Final = "restream_rotate"
"""Options-flow action, never stored: a new token."""
CONF_RESTREAM_TOKEN: Final = "restream_token"  # noqa: S105 - a key, not a secret
# Transcoding options (Bambu Lab X1 / H2 / P2S: H.264 -> JPEG by ffmpeg).
CONF_TRANSCODE_FPS: Final = "transcode_fps"
CONF_JPEG_QUALITY: Final = "jpeg_quality"
CONF_OUTPUT_SIZE: Final = "output_size"

DEFAULT_VERIFY_SSL: Final = True
DEFAULT_MAX_FPS: Final = 0.0
"""0 means no cap."""
DEFAULT_IDLE_GRACE_S: Final = 5.0
DEFAULT_STILL_HOLD_S: Final = 30.0
DEFAULT_STALL_S: Final = 10.0
DEFAULT_KEEP_WARM: Final = False
DEFAULT_TRANSCODE_FPS: Final = 15.0
"""Frames per second ffmpeg makes; 0 keeps the printer's rate."""
DEFAULT_JPEG_QUALITY: Final = 90
"""Percent, 1-100; 90 is ffmpeg's ``-q:v 5``."""
OUTPUT_SIZE_SOURCE: Final = "source"
OUTPUT_SIZES: Final = (OUTPUT_SIZE_SOURCE, "1280x720", "640x360")
DEFAULT_OUTPUT_SIZE: Final = OUTPUT_SIZE_SOURCE

# Timeouts (seconds).
VALIDATE_TIMEOUT: Final = 10.0
"""Config flow: how long to wait for one frame."""
PROBE_TIMEOUT: Final = 8.0
"""Startup: how long the probe waits for one frame."""
CONNECT_TIMEOUT: Final = 10.0
READ_TIMEOUT: Final = 30.0
"""No byte for this long on an open stream: reconnect."""
STILL_TIMEOUT: Final = 10.0
"""How long a still request waits for the next frame."""

# Bambu Lab (KIND_BAMBU) entry data keys.
CONF_HOST: Final = "host"
CONF_PORT: Final = "port"
CONF_SERIAL: Final = "serial"
CONF_ACCESS_CODE: Final = "access_code"
CONF_MODEL: Final = "model"
CONF_CERT_SHA256: Final = "cert_sha256"

BAMBU_CHAMBER_MODELS: Final = ("P1P", "P1S", "A1", "A1 mini")
"""Models whose camera is the JPEG-over-TLS stream on port 6000."""
BAMBU_RTSPS_MODELS: Final = ("X1C", "X1", "X1E", "H2D", "H2C", "H2S", "P2S", "X2D")
"""Models whose camera is RTSPS on port 322 (not supported yet)."""
BAMBU_ACCESS_CODE_LENGTH: Final = 8
