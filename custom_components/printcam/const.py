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

# Options and their defaults.
CONF_MAX_FPS: Final = "max_fps"
CONF_IDLE_GRACE_S: Final = "idle_grace_s"
CONF_STILL_HOLD_S: Final = "still_hold_s"
CONF_STALL_S: Final = "stall_s"
CONF_KEEP_WARM: Final = "keep_warm"

DEFAULT_VERIFY_SSL: Final = True
DEFAULT_MAX_FPS: Final = 0.0
"""0 means no cap."""
DEFAULT_IDLE_GRACE_S: Final = 5.0
DEFAULT_STILL_HOLD_S: Final = 30.0
DEFAULT_STALL_S: Final = 10.0
DEFAULT_KEEP_WARM: Final = False

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
