"""Discovery of Bambu Lab printers from their UDP announcements.

Bambu Lab printers broadcast an SSDP-like ``NOTIFY * HTTP/1.1`` datagram to
255.255.255.255, UDP port 2021, every few seconds. One listener per Home
Assistant instance turns each valid announcement into one of:

- a host update (and a reload) of the printer's config entry, when the printer
  announces an address other than the stored one;
- a discovery flow (source ``integration_discovery``) for a printer that has
  no entry yet.

Flows and host updates are rate-limited per serial number, so a printer that
announces itself every few seconds starts at most one flow a minute. What
the flow asks and stores is the Bambu Lab family's (`families/bambu.py`),
which starts the listener from its `async_setup_discovery`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
import ipaddress
import logging
from math import inf
import re
import socket
from time import monotonic
from typing import Any, Final, TypedDict

from homeassistant.config_entries import (
    SOURCE_IGNORE,
    SOURCE_INTEGRATION_DISCOVERY,
    ConfigEntry,
)
from homeassistant.const import CONF_HOST, EVENT_HOMEASSISTANT_STOP
from homeassistant.core import CALLBACK_TYPE, Event, HomeAssistant, callback
from homeassistant.helpers import discovery_flow
from homeassistant.util.hass_dict import HassKey

from .const import CONF_KIND, DOMAIN, KIND_BAMBU

_LOGGER = logging.getLogger(__name__)

DISCOVERY_PORT = 2021
"""UDP port the printers announce themselves on (read at use time)."""
DISCOVERY_BIND = "0.0.0.0"  # noqa: S104 - the announcements are broadcasts
"""Address the listener binds to (read at use time)."""

ACTION_INTERVAL: Final = 60.0
"""Seconds between two flows (or host updates) for the same serial."""
MAX_DATAGRAM: Final = 4096
"""Larger datagrams are not announcements."""

MODEL_CODES: Final[dict[str, str]] = {
    "BL-P001": "X1C",
    "BL-P002": "X1",
    "C13": "X1E",
    "C11": "P1P",
    "C12": "P1S",
    "N1": "A1 mini",
    "N2S": "A1",
    "N7": "P2S",
    "O1D": "H2D",
    "O1C": "H2C",
    "O1S": "H2S",
    "N6": "X2D",
}
"""Model code announced in ``DevModel.bambu.com`` -> model name."""

_NT: Final = "urn:bambulab-com:device:3dprinter:1"
_SERIAL_RE: Final = re.compile(r"[A-Za-z0-9]{8,20}")
_LABEL_RE: Final = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
_MAX_MODEL_CODE: Final = 32
_MAX_NAME: Final = 64
_BROADCAST: Final = ipaddress.IPv4Address("255.255.255.255")
_REUSE_PORT: Final = hasattr(socket, "SO_REUSEPORT")

_DATA_KEY: HassKey[BambuDiscovery] = HassKey(f"{DOMAIN}_bambu_discovery")


class BambuDiscoveryData(TypedDict):
    """What a discovery flow receives as ``discovery_info``."""

    host: str
    serial: str
    model: str | None
    model_code: str | None
    name: str | None


@dataclass(frozen=True, slots=True)
class BambuAnnouncement:
    """A valid announcement of a Bambu Lab printer."""

    host: str
    """IP address (normalised) or lowercase hostname of the printer."""
    serial: str
    """Serial number, as announced (8-20 ASCII letters and digits)."""
    model: str | None
    """Model name from `MODEL_CODES`, None for an unknown or missing code."""
    model_code: str | None
    """The announced model code, None when missing."""
    name: str | None
    """The printer's name, None when missing."""

    def as_flow_data(self) -> BambuDiscoveryData:
        """Return the data a discovery flow is started with."""
        return BambuDiscoveryData(
            host=self.host,
            serial=self.serial,
            model=self.model,
            model_code=self.model_code,
            name=self.name,
        )


# --- parsing ---------------------------------------------------------------------


def _valid_hostname(value: str) -> str | None:
    """Return `value` as a lowercase DNS hostname, None if it is not one."""
    name = value.removesuffix(".")
    if not name or len(name) > 253:
        return None
    labels = name.split(".")
    if not all(_LABEL_RE.fullmatch(label) for label in labels):
        return None
    if labels[-1].isdigit():  # "300.1.1.1" is a broken address, not a name
        return None
    return name.lower()


def _valid_host(value: str) -> str | None:
    """Return the printer's address, normalised; None if it is not usable."""
    if "%" in value:  # scoped IPv6: not something a printer announces
        return None
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return _valid_hostname(value)
    if address.is_unspecified or address.is_multicast or address == _BROADCAST:
        return None
    return str(address)


def _model_code(value: str | None) -> str | None:
    """Return a plausible model code, None for a missing or garbled one."""
    if not value or len(value) > _MAX_MODEL_CODE or not value.isprintable():
        return None
    return value


def _name(value: str | None) -> str | None:
    """Return the printer's name without control characters, or None."""
    if value is None:
        return None
    name = "".join(char for char in value if char.isprintable()).strip()
    return name[:_MAX_NAME].rstrip() or None


def parse_notify(data: bytes, source_ip: str) -> BambuAnnouncement | None:
    """Parse a Bambu Lab ``NOTIFY`` datagram; None if it is not a valid one.

    Header names are case-insensitive and lines may end in CRLF or LF; the
    first occurrence of a header wins and lines without a colon are skipped.
    Without a (non-empty) ``Location`` header the datagram's source address
    is the printer's. Never raises.
    """
    if len(data) > MAX_DATAGRAM:
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    start, *lines = text.split("\n")
    if [part.upper() for part in start.split()] != ["NOTIFY", "*", "HTTP/1.1"]:
        return None
    headers: dict[str, str] = {}
    for raw in lines:
        line = raw.removesuffix("\r")
        if not line.strip():  # end of the headers
            break
        key, sep, value = line.partition(":")
        if sep:
            headers.setdefault(key.strip().lower(), value.strip())
    if headers.get("nt", "").lower() != _NT:
        return None
    serial = headers.get("usn", "")
    if not _SERIAL_RE.fullmatch(serial):
        return None
    host = _valid_host(headers.get("location") or source_ip)
    if host is None:
        return None
    code = _model_code(headers.get("devmodel.bambu.com"))
    return BambuAnnouncement(
        host=host,
        # Unique ids are upper case (as printed on the printer's label).
        serial=serial.upper(),
        model=MODEL_CODES.get(code) if code is not None else None,
        model_code=code,
        name=_name(headers.get("devname.bambu.com")),
    )


# --- the listener ----------------------------------------------------------------


class BambuDiscovery(asyncio.DatagramProtocol):
    """The announcement listener of one Home Assistant instance."""

    def __init__(self, hass: HomeAssistant) -> None:
        """Initialise; `async_start` binds the socket."""
        self.hass = hass
        self.transport: asyncio.DatagramTransport | None = None
        self._last_action: dict[str, float] = {}
        self._last_malformed_log = -inf
        self._remove_stop: CALLBACK_TYPE | None = None
        self._closing = False
        self._made = False
        self._started = asyncio.Event()
        self._lost = asyncio.Event()

    # -- lifecycle

    async def async_start(self) -> None:
        """Bind the socket; on failure warn and carry on without discovery."""
        bind, port = DISCOVERY_BIND, DISCOVERY_PORT
        try:
            transport, _ = await self.hass.loop.create_datagram_endpoint(
                lambda: self,
                local_addr=(bind, port),
                reuse_port=_REUSE_PORT,
                allow_broadcast=True,
            )
        except Exception as err:  # noqa: BLE001 - discovery must never break setup
            _LOGGER.warning(
                "Cannot listen for Bambu Lab printers on UDP %s:%s (%s); "
                "they will not be discovered",
                bind,
                port,
                err,
            )
        else:
            if self._closing:  # stopped while binding
                transport.close()
            else:
                self.transport = transport
                self._remove_stop = self.hass.bus.async_listen_once(
                    EVENT_HOMEASSISTANT_STOP, self._async_on_stop
                )
                _LOGGER.debug("Listening for Bambu Lab printers on %s:%s", bind, port)
        finally:
            self._started.set()

    @callback
    def _async_on_stop(self, _event: Event) -> None:
        """Close the listener when Home Assistant stops."""
        self._remove_stop = None  # a fired once-listener is already gone
        # Only the registered listener has a stop listener: it is this one.
        self.hass.data.pop(_DATA_KEY, None)
        self.async_close()

    @callback
    def async_close(self) -> None:
        """Stop listening (the socket is released on the next loop turn)."""
        self._closing = True
        if self._remove_stop is not None:
            self._remove_stop()
            self._remove_stop = None
        if self.transport is not None:
            self.transport.close()
            self.transport = None

    async def async_stop(self) -> None:
        """Stop listening and wait until the socket is released."""
        self.async_close()
        await self._started.wait()
        if self._made:
            await self._lost.wait()

    # -- asyncio protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Note that the socket is open."""
        self._made = True

    def connection_lost(self, exc: Exception | None) -> None:
        """Note that the socket is released."""
        self._lost.set()

    def error_received(self, exc: Exception) -> None:
        """Log a socket error; the listener carries on."""
        _LOGGER.debug("Bambu Lab discovery socket error: %s", exc)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        """Handle one datagram (in the event loop)."""
        if self.hass.is_stopping:
            return
        announcement = parse_notify(data, str(addr[0]))
        if announcement is None:
            now = monotonic()
            if now - self._last_malformed_log >= ACTION_INTERVAL:
                self._last_malformed_log = now
                _LOGGER.debug(
                    "Ignoring a datagram from %s: not a Bambu Lab announcement",
                    addr[0],
                )
            return
        self._async_handle(announcement)

    # -- announcements

    @callback
    def _async_handle(self, announcement: BambuAnnouncement) -> None:
        """Update a moved printer's entry, or start a discovery flow."""
        serial = announcement.serial
        now = monotonic()
        if now - self._last_action.get(serial, -inf) < ACTION_INTERVAL:
            return
        entry = self.hass.config_entries.async_entry_for_domain_unique_id(
            DOMAIN, serial
        )
        if entry is not None:
            if self._async_update_host(entry, announcement):
                self._acted(serial, now)
            return
        if self.hass.config_entries.flow.async_progress_by_handler(
            DOMAIN, include_uninitialized=True, match_context={"unique_id": serial}
        ):
            return
        _LOGGER.debug("Discovered Bambu Lab printer %s", announcement)
        discovery_flow.async_create_flow(
            self.hass,
            DOMAIN,
            context={"source": SOURCE_INTEGRATION_DISCOVERY},
            data=announcement.as_flow_data(),
        )
        self._acted(serial, now)

    @callback
    def _async_update_host(
        self, entry: ConfigEntry, announcement: BambuAnnouncement
    ) -> bool:
        """Store a moved printer's new host and reload; False if unchanged."""
        if entry.source == SOURCE_IGNORE or entry.data.get(CONF_KIND) != KIND_BAMBU:
            return False
        old_host = entry.data.get(CONF_HOST)
        if old_host == announcement.host:
            return False
        _LOGGER.info(
            "Bambu Lab printer %s (%s) moved from %s to %s",
            entry.title,
            announcement.serial,
            old_host,
            announcement.host,
        )
        self.hass.config_entries.async_update_entry(
            entry, data={**entry.data, CONF_HOST: announcement.host}
        )
        self.hass.config_entries.async_schedule_reload(entry.entry_id)
        return True

    def _acted(self, serial: str, now: float) -> None:
        """Start the serial's quiet period; forget expired ones."""
        if len(self._last_action) >= 256:
            self._last_action = {
                key: when
                for key, when in self._last_action.items()
                if now - when < ACTION_INTERVAL
            }
        self._last_action[serial] = now


async def async_start_discovery(hass: HomeAssistant) -> None:
    """Start the Bambu Lab listener of `hass`; a no-op if already started.

    A failed bind is logged once at warning level and never raised: Home
    Assistant carries on without discovery.
    """
    if _DATA_KEY in hass.data:
        return
    listener = hass.data[_DATA_KEY] = BambuDiscovery(hass)
    await listener.async_start()


async def async_stop_discovery(hass: HomeAssistant) -> None:
    """Stop the Bambu Lab listener of `hass` and release its port."""
    if (listener := hass.data.pop(_DATA_KEY, None)) is not None:
        await listener.async_stop()
