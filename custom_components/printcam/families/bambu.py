"""Bambu Lab printers: P1 / A1 on TLS port 6000, X1 / H2 / P2S / X2D RTSPS.

P1P / P1S / A1 / A1 mini: the chamber camera on TLS port 6000. X1C / X1 /
X1E / H2D / H2C / H2S / P2S / X2D: RTSPS on port 322, through the pinned relay
and Home Assistant's ffmpeg (`BambuRtspsSource`).

Entry data: ``{"kind": "bambu", "host", "serial", "access_code", "model",
"cert_sha256"}``, plus ``"port"`` when it is not the model's default (6000,
or 322 for the RTSPS models). The unique id is the serial number (upper
case, as on the printer's label).

The printer's certificate is pinned (trust on first use): adding a printer
first reads its certificate (a TLS handshake, nothing sent), which must name
the serial number, and then logs in only to a peer presenting exactly that
certificate; from then on every connection must present it before the access
code is sent. Reconfigure shows a changed fingerprint, with the old and the
new address, and stores it only once the user accepts it (step
``reconfigure_certificate``).

The forms refuse, before any connection, an address that is neither an IP
address nor a host name, a serial number that is not 8-20 letters and
digits (the pattern discovery accepts) and an access code that is not 8
letters and digits.

Discovery: `async_setup_discovery` starts `discovery.py`'s listener for the
printers' UDP announcements, which starts ``integration_discovery`` flows
with a `BambuDiscoveryData` whose host is the announcement's source address.
The flow reads the certificate there before it shows the form
(`async_inspect_discovered`), and the access code is sent only to that
certificate. A discovery flow never changes a configured printer's entry:
`discovery.py` moves a printer only when its new address presents the pin.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import replace
import logging
import re
import ssl
from typing import Any, Final

from homeassistant.components.ffmpeg import get_ffmpeg_manager
from homeassistant.config_entries import SOURCE_INTEGRATION_DISCOVERY
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import section
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.selector import (
    NumberSelector,
    NumberSelectorConfig,
    NumberSelectorMode,
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
)
import voluptuous as vol

from custom_components.printcam.const import (
    BAMBU_ACCESS_CODE_LENGTH,
    BAMBU_CHAMBER_MODELS,
    BAMBU_RTSPS_MODELS,
    CONF_ACCESS_CODE,
    CONF_CERT_SHA256,
    CONF_HOST,
    CONF_JPEG_QUALITY,
    CONF_KIND,
    CONF_MODEL,
    CONF_OUTPUT_SIZE,
    CONF_PORT,
    CONF_SERIAL,
    CONF_TRANSCODE_FPS,
    DEFAULT_JPEG_QUALITY,
    DEFAULT_OUTPUT_SIZE,
    DEFAULT_TRANSCODE_FPS,
    KIND_BAMBU,
    OUTPUT_SIZE_SOURCE,
    OUTPUT_SIZES,
)
from custom_components.printcam.discovery import (
    async_search,
    async_start_discovery,
    valid_host,
    valid_serial,
)
from custom_components.printcam.sources import CannotConnect, FrameSource, SourceError
from custom_components.printcam.sources.bambu_chamber import (
    DEFAULT_PORT,
    BambuChamberSource,
    PrinterCertificate,
    fetch_certificate,
)
from custom_components.printcam.sources.bambu_rtsps import (
    DEFAULT_PORT as RTSPS_PORT,
    BambuRtspsSource,
)
from custom_components.printcam.sources.base import CameraPortClosed, LiveviewDisabled

from .base import (
    OPTIONS_SCHEMA,
    PASSWORD,
    STREAM_OPTIONS,
    TEXT,
    ConfirmChange,
    Discovered,
    Draft,
    Family,
    FormError,
    InvalidConfig,
)

_LOGGER = logging.getLogger(__name__)

CONF_ADVANCED: Final = "advanced"
CERTIFICATE_STEP: Final = "reconfigure_certificate"
UNKNOWN_FINGERPRINT: Final = "-"
"""Shown while a discovered printer's certificate could not be read yet."""
_ACCESS_CODE_CHARS: Final = re.compile(r"[A-Za-z0-9]+")

_MODEL = SelectSelector(
    SelectSelectorConfig(
        options=[*BAMBU_CHAMBER_MODELS, *BAMBU_RTSPS_MODELS],
        mode=SelectSelectorMode.DROPDOWN,
    )
)
_ADVANCED = section(
    vol.Schema(
        {
            vol.Optional(CONF_PORT): NumberSelector(
                NumberSelectorConfig(
                    min=1, max=65535, step=1, mode=NumberSelectorMode.BOX
                )
            )
        }
    ),
    {"collapsed": True},
)
_ACCESS_CODE_SCHEMA: Final = vol.Schema({vol.Required(CONF_ACCESS_CODE): PASSWORD})
_DISCOVERY_SCHEMA_WITH_MODEL: Final = _ACCESS_CODE_SCHEMA.extend(
    {vol.Required(CONF_MODEL): _MODEL}
)
_REQUIRED: Final = (CONF_HOST, CONF_SERIAL, CONF_ACCESS_CODE, CONF_CERT_SHA256)
TRANSCODE_OPTIONS: Final[dict[vol.Marker, Any]] = {
    vol.Required(CONF_TRANSCODE_FPS, default=DEFAULT_TRANSCODE_FPS): NumberSelector(
        NumberSelectorConfig(
            min=0,
            max=30,
            step=1,
            unit_of_measurement="fps",
            mode=NumberSelectorMode.BOX,
        )
    ),
    vol.Required(CONF_JPEG_QUALITY, default=DEFAULT_JPEG_QUALITY): NumberSelector(
        NumberSelectorConfig(
            min=1,
            max=100,
            step=1,
            unit_of_measurement="%",
            mode=NumberSelectorMode.SLIDER,
        )
    ),
    vol.Required(CONF_OUTPUT_SIZE, default=DEFAULT_OUTPUT_SIZE): SelectSelector(
        SelectSelectorConfig(
            options=list(OUTPUT_SIZES),
            mode=SelectSelectorMode.DROPDOWN,
            translation_key=CONF_OUTPUT_SIZE,
        )
    ),
}
"""How ffmpeg turns an X1 / H2 / P2S camera's H.264 into JPEG frames."""
_TRANSCODE_SCHEMA: Final = vol.Schema({**TRANSCODE_OPTIONS, **STREAM_OPTIONS})


def ffmpeg_quality(percent: float) -> int:
    """Map a JPEG quality in percent (1-100) to ffmpeg's ``-q:v`` (31 worst, 2 best)."""
    percent = min(max(percent, 1.0), 100.0)
    return round(31 - (percent - 1) * 29 / 99)


def transcode_settings(options: Mapping[str, Any]) -> dict[str, Any]:
    """Return `BambuRtspsSource.configure`'s arguments for the entry's options."""
    size = options.get(CONF_OUTPUT_SIZE, DEFAULT_OUTPUT_SIZE)
    return {
        "fps": float(options.get(CONF_TRANSCODE_FPS, DEFAULT_TRANSCODE_FPS)),
        "quality": ffmpeg_quality(
            float(options.get(CONF_JPEG_QUALITY, DEFAULT_JPEG_QUALITY))
        ),
        "size": None
        if size not in OUTPUT_SIZES or size == OUTPUT_SIZE_SOURCE
        else size,
    }


def default_port(model: object) -> int:
    """Return the camera port of a model: 322 for the RTSPS models, else 6000."""
    return RTSPS_PORT if model in BAMBU_RTSPS_MODELS else DEFAULT_PORT


def entry_data(
    host: str, port: int | None, serial: str, access_code: str, model: str
) -> dict[str, Any]:
    """Return a printer's entry data; the port only when not the model's default.

    The certificate's fingerprint is added by `BambuFamily.async_check`.
    """
    data: dict[str, Any] = {
        CONF_KIND: KIND_BAMBU,
        CONF_HOST: host,
        CONF_SERIAL: serial,
        CONF_ACCESS_CODE: access_code,
        CONF_MODEL: model,
    }
    if port is not None and port != default_port(model):
        data[CONF_PORT] = port
    return data


def _field_errors(access_code: str) -> dict[str, str]:
    """Return what needs no connection: the code's length and characters."""
    errors: dict[str, str] = {}
    if len(access_code) != BAMBU_ACCESS_CODE_LENGTH:
        errors[CONF_ACCESS_CODE] = "invalid_access_code"
    elif not _ACCESS_CODE_CHARS.fullmatch(access_code):
        errors[CONF_ACCESS_CODE] = "invalid_access_code_characters"
    return errors


def _check_fields(access_code: str) -> None:
    """Refuse a bad access code (FormError)."""
    if errors := _field_errors(access_code):
        raise FormError(errors)


def _host(value: str) -> str:
    """Return the entered address, normalised; FormError if it is not one."""
    if (host := valid_host(value)) is None:
        raise FormError({CONF_HOST: "invalid_host"})
    return host


def _port(data: Mapping[str, Any]) -> int:
    return int(data.get(CONF_PORT, default_port(data.get(CONF_MODEL))))


def _form_port(user_input: Mapping[str, Any]) -> int | None:
    """Return the port entered in the advanced section, None if left empty."""
    port = user_input.get(CONF_ADVANCED, {}).get(CONF_PORT)
    return None if port is None else int(port)


def printer_address(data: Mapping[str, Any]) -> str:
    """Return the printer's address for texts: the host, and a non-default port."""
    host = str(data.get(CONF_HOST, ""))
    port = _port(data)
    if port == default_port(data.get(CONF_MODEL)):
        return host
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    return f"{host}:{port}"


def _names_serial(cert: PrinterCertificate, serial: str) -> bool:
    """Return whether the certificate's common name is the serial number."""
    return (cert.common_name or "").strip().upper() == serial.strip().upper()


async def _read_certificate(
    host: str,
    port: int,
    model: object,
    timeout: float,  # noqa: ASYNC109 - the flow's bound for one check
) -> PrinterCertificate:
    """Read the printer's certificate (a TLS handshake, nothing sent).

    An RTSPS printer that closes its port at once has LAN Mode Liveview off
    (`LiveviewDisabled`), as the relay reports it.
    """
    try:
        return await fetch_certificate(host, port, timeout)
    except CameraPortClosed:
        raise
    except CannotConnect as err:
        cause = err.__cause__
        if model in BAMBU_RTSPS_MODELS and isinstance(
            cause, ConnectionError | ssl.SSLEOFError
        ):
            raise LiveviewDisabled(
                f"{printer_address({CONF_HOST: host, CONF_PORT: port})} closes "
                "its camera port at once: turn on LAN Mode Liveview on the printer"
            ) from cause
        raise


class BambuFamily(Family):
    """A Bambu Lab printer, by address, serial, access code and model."""

    kind = KIND_BAMBU
    user_schema = vol.Schema(
        {
            vol.Required(CONF_HOST): TEXT,
            vol.Required(CONF_SERIAL): TEXT,
            vol.Required(CONF_ACCESS_CODE): PASSWORD,
            vol.Required(CONF_MODEL, default="P1S"): _MODEL,
            vol.Required(CONF_ADVANCED): _ADVANCED,
        }
    )
    reauth_schema = _ACCESS_CODE_SCHEMA
    reconfigure_schema = vol.Schema(
        {vol.Required(CONF_HOST): TEXT, vol.Required(CONF_ADVANCED): _ADVANCED}
    )
    confirm_steps = (CERTIFICATE_STEP,)

    def validate_data(self, data: Mapping[str, Any]) -> None:
        """Refuse missing fields, a model without this camera, a bad port."""
        for key in _REQUIRED:
            if not isinstance(data.get(key), str) or not data[key]:
                raise InvalidConfig(f"{key} is missing")
        if data.get(CONF_MODEL) not in (*BAMBU_CHAMBER_MODELS, *BAMBU_RTSPS_MODELS):
            raise InvalidConfig(f"model {data.get(CONF_MODEL)!r} is not known")
        port = data.get(CONF_PORT, default_port(data[CONF_MODEL]))
        if not isinstance(port, int) or not 0 < port < 65536:
            raise InvalidConfig("the port is not a TCP port number")

    def unique_id(self, data: Mapping[str, Any]) -> str:
        """Return the serial number."""
        return str(data[CONF_SERIAL]).upper()

    def create_source(
        self, hass: HomeAssistant, data: Mapping[str, Any]
    ) -> FrameSource:
        """Return the camera source, pinned to the stored certificate."""
        return self._source(hass, data, data[CONF_CERT_SHA256])

    def configure_source(self, source: FrameSource, options: Mapping[str, Any]) -> bool:
        """Set an X1 / H2 / P2S camera's transcode (frame rate, quality, size).

        A change restarts a running ffmpeg so it takes effect now.
        """
        if isinstance(source, BambuRtspsSource):
            return source.configure(**transcode_settings(options))
        return False

    def options_schema(self, data: Mapping[str, Any]) -> vol.Schema:
        """X1 / H2 / P2S: the transcode instead of the fan-out's frame rate cap.

        ffmpeg makes only the frames asked for, which costs less CPU than
        making more and leaving some out.
        """
        if data.get(CONF_MODEL) in BAMBU_RTSPS_MODELS:
            return _TRANSCODE_SCHEMA
        return OPTIONS_SCHEMA

    def device_info(self, data: Mapping[str, Any]) -> DeviceInfo:
        """Return the printer's maker, model and serial number."""
        return DeviceInfo(
            manufacturer="Bambu Lab",
            model=data.get(CONF_MODEL),
            serial_number=data.get(CONF_SERIAL),
        )

    @staticmethod
    def _source(hass: HomeAssistant, data: Mapping[str, Any], pin: str) -> FrameSource:
        """Return the model's source, pinned to `pin`.

        RTSPS models run Home Assistant's ffmpeg binary (the ``ffmpeg``
        integration, a dependency in manifest.json).
        """
        if data[CONF_MODEL] in BAMBU_RTSPS_MODELS:
            return BambuRtspsSource(
                data[CONF_HOST],
                data[CONF_SERIAL],
                data[CONF_ACCESS_CODE],
                cert_sha256=pin,
                ffmpeg=get_ffmpeg_manager(hass).binary,
                port=_port(data),
                model=data[CONF_MODEL],
            )
        return BambuChamberSource(
            data[CONF_HOST],
            data[CONF_SERIAL],
            data[CONF_ACCESS_CODE],
            cert_sha256=pin,
            port=_port(data),
        )

    def parse_user(self, user_input: Mapping[str, Any]) -> Draft:
        """Return the printer's data, titled with its model; every field checked."""
        code = user_input[CONF_ACCESS_CODE].strip()
        model = user_input[CONF_MODEL]
        errors: dict[str, str] = {}
        if (host := valid_host(user_input[CONF_HOST])) is None:
            errors[CONF_HOST] = "invalid_host"
        if (serial := valid_serial(user_input[CONF_SERIAL])) is None:
            errors[CONF_SERIAL] = "invalid_serial_number"
        errors |= _field_errors(code)
        if errors or host is None or serial is None:
            raise FormError(errors)
        data = entry_data(host, _form_port(user_input), serial, code, model)
        return Draft(title=f"Bambu Lab {model}", data=data)

    def parse_reauth(
        self, data: Mapping[str, Any], user_input: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Return the data with the printer's new access code."""
        code = user_input[CONF_ACCESS_CODE].strip()
        _check_fields(code)
        return {**data, CONF_ACCESS_CODE: code}

    def parse_reconfigure(
        self, data: Mapping[str, Any], user_input: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Return the data with the new address (the pin is checked later)."""
        return {
            **entry_data(
                _host(user_input[CONF_HOST]),
                _form_port(user_input),
                data[CONF_SERIAL],
                data[CONF_ACCESS_CODE],
                data[CONF_MODEL],
            ),
            CONF_CERT_SHA256: data[CONF_CERT_SHA256],
        }

    def reconfigure_suggested(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """Start with the stored address."""
        return {CONF_HOST: data[CONF_HOST], CONF_ADVANCED: {CONF_PORT: _port(data)}}

    async def async_check(
        self,
        hass: HomeAssistant,
        data: Mapping[str, Any],
        timeout: float,  # noqa: ASYNC109 - the flow's bound for one check
    ) -> dict[str, Any]:
        """Log in and wait for one frame; return the data with the pinned fingerprint.

        Without a fingerprint in `data` the certificate is read first (trust
        on first use: a TLS handshake, nothing sent) and must name the
        serial number; the login then goes only to a peer presenting exactly
        that certificate, like with a fingerprint in `data`. Both within
        `timeout`.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        pin = data.get(CONF_CERT_SHA256) or None
        if pin is None:
            cert = await _read_certificate(
                data[CONF_HOST], _port(data), data[CONF_MODEL], timeout
            )
            if not _names_serial(cert, data[CONF_SERIAL]):
                raise FormError({"base": "invalid_serial"})
            pin = cert.sha256
        source = self._source(hass, data, pin)
        await source.fetch_frame(max(deadline - loop.time(), 0.0))
        if not isinstance(source, BambuChamberSource):
            return {**data, CONF_CERT_SHA256: pin}  # the relay checked the pin
        peer = source.peer_certificate
        if peer is None:  # pragma: no cover - every connection that logs in sets it
            raise CannotConnect("no certificate")
        return {**data, CONF_CERT_SHA256: peer.sha256}

    async def async_check_reconfigure(
        self,
        hass: HomeAssistant,
        old: Mapping[str, Any],
        new: Mapping[str, Any],
        timeout: float,  # noqa: ASYNC109 - the flow's bound for one check
    ) -> dict[str, Any] | ConfirmChange:
        """Look at the certificate first; show a changed one before logging in.

        The confirmation shows the old and the new address with the old and
        the new fingerprint.
        """
        cert = await _read_certificate(
            new[CONF_HOST], _port(new), new[CONF_MODEL], timeout
        )
        if not _names_serial(cert, new[CONF_SERIAL]):
            raise FormError({"base": "invalid_serial"})
        if cert.sha256 != old[CONF_CERT_SHA256]:
            return ConfirmChange(
                CERTIFICATE_STEP,
                {**new, CONF_CERT_SHA256: cert.sha256},
                {
                    "old": old[CONF_CERT_SHA256],
                    "new": cert.sha256,
                    "old_host": printer_address(old),
                    "new_host": printer_address(new),
                },
            )
        return await self.async_check(hass, new, timeout)

    async def async_setup_discovery(self, hass: HomeAssistant) -> None:
        """Listen for the printers' UDP announcements (a failed bind is logged)."""
        await async_start_discovery(hass)

    searches = True

    async def async_search(self, hass: HomeAssistant) -> list[Discovered]:
        """List the printers that announce themselves or answer an M-SEARCH."""
        found = []
        for announcement in await async_search(hass):
            discovered = self.discovered(
                SOURCE_INTEGRATION_DISCOVERY, announcement.as_flow_data()
            )
            if discovered is not None:
                found.append(discovered)
        return found

    def discovered(self, source: str, info: object) -> Discovered | None:
        """Describe a printer from its UDP announcement (`BambuDiscoveryData`).

        No `updates`: an announcement never changes a configured printer's
        entry here (`discovery.py` moves one only after checking its pin).
        """
        if source != SOURCE_INTEGRATION_DISCOVERY or not isinstance(info, Mapping):
            return None
        serial = str(info[CONF_SERIAL]).upper()
        host = str(info[CONF_HOST])
        model = info.get(CONF_MODEL)
        known = model in BAMBU_CHAMBER_MODELS or model in BAMBU_RTSPS_MODELS
        name = info.get("name") or f"Bambu Lab {model or serial}"
        return Discovered(
            unique_id=serial,
            title=name,
            data={
                CONF_HOST: host,
                CONF_SERIAL: serial,
                CONF_MODEL: model if known else None,
            },
            placeholders={
                "name": name,
                "host": host,
                "serial": serial,
                "fingerprint": UNKNOWN_FINGERPRINT,
            },
        )

    async def async_inspect_discovered(
        self,
        hass: HomeAssistant,
        discovered: Discovered,
        timeout: float,  # noqa: ASYNC109 - the flow's bound for one check
    ) -> Discovered:
        """Read the certificate at the announced address (nothing is sent).

        One that does not name the serial aborts the flow (``invalid_serial``):
        something else announced this printer. A read one is pinned for the
        login. A printer that does not answer yet (camera off) keeps the flow:
        the certificate is read when the user submits, before the access
        code is sent.
        """
        info = discovered.data
        try:
            cert = await fetch_certificate(
                info[CONF_HOST], default_port(info[CONF_MODEL]), timeout
            )
        except SourceError as err:
            _LOGGER.debug(
                "Discovered printer %s: certificate not read yet (%s)",
                info[CONF_SERIAL],
                err,
            )
            return discovered
        if not _names_serial(cert, info[CONF_SERIAL]):
            _LOGGER.warning(
                "Ignoring the announcement of Bambu Lab printer %s from %s: the "
                "certificate there names %r",
                info[CONF_SERIAL],
                info[CONF_HOST],
                cert.common_name,
            )
            return replace(discovered, abort_reason="invalid_serial")
        return replace(
            discovered,
            data={**info, CONF_CERT_SHA256: cert.sha256},
            placeholders={**discovered.placeholders, "fingerprint": cert.sha256},
        )

    def discovery_schema(self, discovered: Discovered) -> vol.Schema:
        """Ask for the access code, and the model if the printer did not say."""
        if discovered.data[CONF_MODEL] is None:
            return _DISCOVERY_SCHEMA_WITH_MODEL
        return _ACCESS_CODE_SCHEMA

    def parse_discovery(
        self, discovered: Discovered, user_input: Mapping[str, Any]
    ) -> Draft:
        """Return the printer's data; discovered printers use the model's port."""
        code = user_input[CONF_ACCESS_CODE].strip()
        model = discovered.data[CONF_MODEL] or user_input[CONF_MODEL]
        _check_fields(code)
        info = discovered.data
        data = entry_data(info[CONF_HOST], None, info[CONF_SERIAL], code, model)
        if CONF_CERT_SHA256 in info:  # read when the flow started: pinned
            data[CONF_CERT_SHA256] = info[CONF_CERT_SHA256]
        return Draft(title=discovered.title, data=data)
