"""Discovery of Bambu Lab printers from their UDP announcements.

Bambu Lab printers broadcast an SSDP-like ``NOTIFY * HTTP/1.1`` datagram to
255.255.255.255, UDP port 2021, every few seconds. One listener per Home
Assistant instance turns each valid announcement into one of:

- a discovery flow (source ``integration_discovery``) for a printer that has
  no entry yet;
- a host update (and a reload) of the printer's config entry, when the printer
  announces itself from an address other than the stored one, and only once
  the certificate at the new address turned out to be the pinned one.

Anyone on the LAN can send such a datagram, so:

- the printer's address is the datagram's source address; ``Location`` is
  ignored (it may only repeat that address), and sources that are not local
  addresses (global, multicast, broadcast, unspecified) are ignored;
- each datagram costs O(1) work and memory is bounded: an LRU of the
  (serial, address) pairs acted on recently (`RECENT_SIZE`, quiet for
  `ACTION_INTERVAL` each), at most `FLOW_LIMIT` new discovery flows per
  `FLOW_WINDOW` and never more than `MAX_PENDING_FLOWS` in progress;
- a configured printer is moved only after a TLS handshake with the new
  address (no credential is sent) presented the pinned certificate, whose
  common name is the serial; otherwise the entry is left alone and that
  address is logged once. A printer configured by host name is never moved.

The Bambu Lab step of the config flow also asks (`async_search`): it starts
the listener if it is not running yet (no printer added so far), sends an
M-SEARCH and lists what announced itself or answered within a few seconds,
under the same rules (the datagram's source address; the certificate is
read before the access code is sent, by the discovery confirm step).

What the flow asks and stores is the Bambu Lab family's
(`families/bambu.py`), which starts the listener from its
`async_setup_discovery`.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from dataclasses import dataclass
import ipaddress
import logging
from math import inf
import os
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

from .const import (
    BAMBU_RTSPS_MODELS,
    CONF_CERT_SHA256,
    CONF_KIND,
    CONF_MODEL,
    CONF_PORT,
    CONF_SERIAL,
    CONNECT_TIMEOUT,
    DOMAIN,
    KIND_BAMBU,
)
from .sources import SourceError
from .sources.bambu_chamber import (
    DEFAULT_PORT,
    fetch_certificate,
    normalize_fingerprint,
)
from .sources.bambu_rtsps import DEFAULT_PORT as RTSPS_PORT

_LOGGER = logging.getLogger(__name__)

DISCOVERY_PORT = 2021
"""UDP port the printers announce themselves on (read at use time)."""
DISCOVERY_BIND = "0.0.0.0"  # noqa: S104 - the announcements are broadcasts
"""Address the listener binds to (read at use time)."""

ACTION_INTERVAL: Final = 60.0
"""Seconds between two actions (flow, move check) for the same serial and address."""
RECENT_SIZE: Final = 1024
"""(serial, address) pairs remembered for `ACTION_INTERVAL`; the oldest go first."""
FLOW_LIMIT = 10
"""New discovery flows per `FLOW_WINDOW` (read at use time)."""
FLOW_WINDOW: Final = 60.0
MAX_PENDING_FLOWS = 16
"""No new discovery flow while this many are in progress (read at use time)."""
MOVE_CHECK_TIMEOUT = CONNECT_TIMEOUT
"""Seconds for the TLS handshake that checks a moved printer's certificate."""
MAX_DATAGRAM: Final = 4096
"""Larger datagrams are not announcements."""
SEARCH_S = 5.0
"""The config flow's search lasts at most this long (read at use time)..."""
SEARCH_MIN_S = 2.0
"""... at least this long (M-SEARCH answers come within its MX of 2 s)..."""
SEARCH_QUIET_S = 1.0
"""... and ends early once printers were found and no new one came for this long."""
SEARCH_RESEND_S = 1.0
"""The M-SEARCH is sent again after this long (UDP gets lost)."""
SEEN_S: Final = 60.0
"""A printer heard within this long before a search is listed by it."""
SEEN_SIZE: Final = 64
"""Printers remembered for searches; the least recently heard go first."""
SEARCH_TARGETS: list[tuple[str, int | None]] = [("255.255.255.255", None)]
"""Where the M-SEARCH goes: (address, port or None for `DISCOVERY_PORT`).

Read at use time. The environment variable ``PRINTCAM_BAMBU_SEARCH``
(``address[:port]``, comma-separated) replaces it: printers in another
subnet that broadcasts do not reach (their addresses or the subnet's
broadcast address), or a simulated printer on 127.0.0.1."""

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
    "O1C2": "H2C",
    "O1S": "H2S",
    "N6": "X2D",
}
"""Model code announced in ``DevModel.bambu.com`` -> model name."""

SERIAL_PATTERN: Final = re.compile(r"[A-Za-z0-9]{8,20}")
"""A serial number: 8 to 20 ASCII letters and digits (announcements and forms)."""
_NT: Final = "urn:bambulab-com:device:3dprinter:1"
M_SEARCH: Final = (
    "M-SEARCH * HTTP/1.1\r\n"
    "HOST: 255.255.255.255:{port}\r\n"
    'MAN: "ssdp:discover"\r\n'
    "MX: 2\r\n"
    f"ST: {_NT}\r\n"
    "\r\n"
)
"""What a Bambu Lab printer answers with its announcement's headers."""
_LABEL_RE: Final = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
_MAX_MODEL_CODE: Final = 32
_MAX_NAME: Final = 64
_MAX_LOGGED: Final = 64
_BROADCAST: Final = ipaddress.IPv4Address("255.255.255.255")
_REUSE_PORT: Final = hasattr(socket, "SO_REUSEPORT")

_DATA_KEY: HassKey[BambuDiscovery] = HassKey(f"{DOMAIN}_bambu_discovery")


def search_targets() -> list[tuple[str, int]]:
    """Return where M-SEARCHes go (`SEARCH_TARGETS` or ``PRINTCAM_BAMBU_SEARCH``)."""
    targets: list[tuple[str, int | None]] = list(SEARCH_TARGETS)
    if configured := os.environ.get("PRINTCAM_BAMBU_SEARCH", "").strip():
        targets = []
        for item in configured.split(","):
            host, _, port = item.strip().rpartition(":")
            if not host or not port.isdigit():
                host, port = item.strip(), ""
            if _address(host) is None and host != "255.255.255.255":
                _LOGGER.warning("PRINTCAM_BAMBU_SEARCH: ignoring %r", item)
                continue
            targets.append((host, int(port) if port else None))
    return [(host, port or DISCOVERY_PORT) for host, port in targets]


def _camera_port(data: dict[str, Any]) -> int:
    """Return the camera port a move is checked on: stored, else the model's."""
    if (port := data.get(CONF_PORT)) is not None:
        return int(port)
    return RTSPS_PORT if data.get(CONF_MODEL) in BAMBU_RTSPS_MODELS else DEFAULT_PORT


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
    """The datagram's source address (normalised): where the printer is."""
    serial: str
    """Serial number, upper case (8-20 ASCII letters and digits)."""
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


# --- validation ------------------------------------------------------------------


def valid_serial(value: str) -> str | None:
    """Return `value` as a serial number (upper case), None if it is not one."""
    serial = value.strip()
    return serial.upper() if SERIAL_PATTERN.fullmatch(serial) else None


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


def _address(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """Return `value` as an IP address a printer can have, None otherwise."""
    if "%" in value:  # scoped IPv6: not something a printer uses
        return None
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if address.is_unspecified or address.is_multicast or address == _BROADCAST:
        return None
    return address


def valid_host(value: str) -> str | None:
    """Return a printer's address as entered (IP or host name), normalised.

    None if it is neither a usable IP address nor a DNS host name (a URL, a
    port, blanks inside, a broken address).
    """
    value = value.strip()
    if (address := _address(value)) is not None:
        return str(address)
    return _valid_hostname(value)


def is_ip_address(value: str) -> bool:
    """Return whether `value` is an IP address literal (not a host name)."""
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _source_host(value: str) -> str | None:
    """Return the datagram's source address if a printer can announce from it.

    Announcements are LAN broadcasts: a global source address is forged.
    """
    address = _address(value)
    if address is None or address.is_global:
        return None
    return str(address)


# --- parsing ---------------------------------------------------------------------


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
    """Parse a Bambu Lab announcement; None if it is not a valid one.

    An announcement is a ``NOTIFY * HTTP/1.1`` with ``NT`` (sent every few
    seconds) or an ``HTTP/1.1 200 OK`` answer to an M-SEARCH with ``ST``.

    Header names are case-insensitive and lines may end in CRLF or LF; the
    first occurrence of a header wins and lines without a colon are skipped.
    The printer's address is `source_ip`, whatever ``Location`` says: a
    header would let any sender name any host. Never raises.
    """
    if len(data) > MAX_DATAGRAM:
        return None
    host = _source_host(source_ip)
    if host is None:
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    start, *lines = text.split("\n")
    words = [part.upper() for part in start.split()]
    if words == ["NOTIFY", "*", "HTTP/1.1"]:
        kind = "nt"
    elif words == ["HTTP/1.1", "200", "OK"]:
        kind = "st"
    else:
        return None
    headers: dict[str, str] = {}
    for raw in lines:
        line = raw.removesuffix("\r")
        if not line.strip():  # end of the headers
            break
        key, sep, value = line.partition(":")
        if sep:
            headers.setdefault(key.strip().lower(), value.strip())
    if headers.get(kind, "").lower() != _NT:
        return None
    serial = headers.get("usn", "")
    if not SERIAL_PATTERN.fullmatch(serial):
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
        self._recent: OrderedDict[tuple[str, str], float] = OrderedDict()
        """(serial, host) -> when it was last acted on; at most `RECENT_SIZE`."""
        self._flow_starts: deque[float] = deque()
        """When the last (at most `FLOW_LIMIT`) discovery flows were started."""
        self._moved_at: dict[str, float] = {}
        """Entry id -> when discovery last moved it (one per configured entry)."""
        self._checks: dict[str, asyncio.Task[None]] = {}
        """Entry id -> its move check in flight."""
        self._logged: OrderedDict[tuple[str, str], None] = OrderedDict()
        """(serial, host) pairs whose refused move was logged."""
        self._last_malformed_log = -inf
        self._last_limit_log = -inf
        self.seen: OrderedDict[str, tuple[BambuAnnouncement, float]] = OrderedDict()
        """Serial -> its latest announcement and when; at most `SEEN_SIZE`."""
        self.last_new = -inf
        """When a serial not in `seen` was last heard."""
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
        """Stop listening and cancel move checks (the socket goes next loop turn)."""
        self._closing = True
        if self._remove_stop is not None:
            self._remove_stop()
            self._remove_stop = None
        if self.transport is not None:
            self.transport.close()
            self.transport = None
        for task in self._checks.values():
            task.cancel()

    async def async_stop(self) -> None:
        """Stop listening; wait until the socket is released and checks ended."""
        self.async_close()
        await self._started.wait()
        if self._made:
            await self._lost.wait()
        if self._checks:
            await asyncio.wait(list(self._checks.values()))

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
        """Handle one datagram (in the event loop; O(1) work)."""
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

    def _note_seen(self, announcement: BambuAnnouncement, now: float) -> None:
        """Remember the printer for searches (bounded, O(1))."""
        serial = announcement.serial
        if serial not in self.seen:
            self.last_new = now
        self.seen[serial] = (announcement, now)
        self.seen.move_to_end(serial)
        while len(self.seen) > SEEN_SIZE:
            self.seen.popitem(last=False)

    def heard_since(self, since: float) -> list[BambuAnnouncement]:
        """Return the printers heard since monotonic time `since`, by serial."""
        return sorted(
            (item for item, at in self.seen.values() if at >= since),
            key=lambda item: item.serial,
        )

    def send_search(self) -> None:
        """Broadcast an M-SEARCH; the printers answer this socket."""
        if self.transport is None:
            return
        message = M_SEARCH.format(port=DISCOVERY_PORT).encode()
        for target in search_targets():
            # A refused send reaches `error_received` (logged), not here.
            self.transport.sendto(message, target)

    @callback
    def _async_handle(self, announcement: BambuAnnouncement) -> None:
        """Check a configured printer's new address, or start a discovery flow."""
        key = (announcement.serial, announcement.host)
        now = monotonic()
        self._note_seen(announcement, now)
        if now - self._recent.get(key, -inf) < ACTION_INTERVAL:
            return
        entry = self.hass.config_entries.async_entry_for_domain_unique_id(
            DOMAIN, announcement.serial
        )
        if entry is not None:
            if self._async_check_move(entry, announcement, now):
                self._remember(key, now)
            return
        # Over a limit, nothing is remembered: the printer's next
        # announcement tries again.
        if not self._flow_allowed(now):
            return
        # The flows in progress are bounded by MAX_PENDING_FLOWS (plus the
        # user's own), so this look is short.
        flows = self.hass.config_entries.flow.async_progress_by_handler(
            DOMAIN,
            include_uninitialized=True,
            match_context={"source": SOURCE_INTEGRATION_DISCOVERY},
        )
        if any(flow["context"].get("unique_id") == key[0] for flow in flows):
            self._remember(key, now)
            return
        if len(flows) >= MAX_PENDING_FLOWS:
            self._log_limit(now, f"{len(flows)} discovery flows are waiting")
            return
        self._remember(key, now)
        _LOGGER.debug("Discovered Bambu Lab printer %s", announcement)
        self._flow_starts.append(now)
        discovery_flow.async_create_flow(
            self.hass,
            DOMAIN,
            context={"source": SOURCE_INTEGRATION_DISCOVERY},
            data=announcement.as_flow_data(),
        )

    def _flow_allowed(self, now: float) -> bool:
        """Return whether the flow limit allows one more flow now."""
        starts = self._flow_starts
        while starts and now - starts[0] >= FLOW_WINDOW:
            starts.popleft()
        if len(starts) < FLOW_LIMIT:
            return True
        self._log_limit(now, f"{len(starts)} were started in the last minute")
        return False

    def _log_limit(self, now: float, why: str) -> None:
        """Warn, at most once a minute, that announcements start no flows."""
        if now - self._last_limit_log >= FLOW_WINDOW:
            self._last_limit_log = now
            _LOGGER.warning(
                "Not starting discovery flows for new Bambu Lab printers for "
                "now: %s (a flood of forged announcements?)",
                why,
            )

    def _remember(self, key: tuple[str, str], now: float) -> None:
        """Start the quiet period of `key`; the least recent one goes first."""
        recent = self._recent
        recent[key] = now
        recent.move_to_end(key)
        if len(recent) > RECENT_SIZE:
            recent.popitem(last=False)

    # -- moved printers

    @callback
    def _async_check_move(
        self, entry: ConfigEntry, announcement: BambuAnnouncement, now: float
    ) -> bool:
        """Start checking a configured printer's new address; False if ignored.

        Ignored: an ignored or non-Bambu entry, the stored address, an entry
        configured by host name, one with a check in flight or moved in the
        last `ACTION_INTERVAL`.
        """
        if entry.source == SOURCE_IGNORE or entry.data.get(CONF_KIND) != KIND_BAMBU:
            return True
        old_host = str(entry.data.get(CONF_HOST))
        if old_host == announcement.host or not is_ip_address(old_host):
            return True
        if (
            entry.entry_id in self._checks
            or now - self._moved_at.get(entry.entry_id, -inf) < ACTION_INTERVAL
        ):
            return False
        self._checks[entry.entry_id] = task = self.hass.async_create_background_task(
            self._async_verify_move(entry, announcement.host),
            f"{DOMAIN} certificate check of {announcement.host}",
        )
        task.add_done_callback(lambda _: self._checks.pop(entry.entry_id, None))
        return True

    async def _async_verify_move(self, entry: ConfigEntry, host: str) -> None:
        """Move the entry to `host` if the pinned certificate is presented there."""
        data = dict(entry.data)
        serial = str(data.get(CONF_SERIAL, "")).upper()
        pin = normalize_fingerprint(str(data.get(CONF_CERT_SHA256, "")))
        try:
            cert = await fetch_certificate(host, _camera_port(data), MOVE_CHECK_TIMEOUT)
        except SourceError as err:
            self._log_refused(
                entry, host, f"no certificate could be read there ({err})"
            )
            return
        if cert.sha256 != pin:
            self._log_refused(
                entry,
                host,
                f"it presents another certificate (sha256 {cert.sha256}) than "
                f"the trusted one ({pin or 'none'})",
            )
            return
        if (cert.common_name or "").strip().upper() != serial:
            self._log_refused(
                entry, host, f"its certificate names {cert.common_name!r}"
            )
            return
        if dict(entry.data) != data:  # changed meanwhile (reconfigure, reauth)
            return
        _LOGGER.info(
            "Bambu Lab printer %s (%s) moved from %s to %s (same certificate)",
            entry.title,
            serial,
            data.get(CONF_HOST),
            host,
        )
        self._moved_at[entry.entry_id] = monotonic()
        self.hass.config_entries.async_update_entry(
            entry, data={**data, CONF_HOST: host}
        )
        self.hass.config_entries.async_schedule_reload(entry.entry_id)

    def _log_refused(self, entry: ConfigEntry, host: str, why: str) -> None:
        """Warn once per serial and address that the entry was not moved."""
        key = (str(entry.unique_id), host)
        if key in self._logged:
            return
        self._logged[key] = None
        if len(self._logged) > _MAX_LOGGED:
            self._logged.popitem(last=False)
        _LOGGER.warning(
            "Bambu Lab printer %s (%s) announced itself from %s, but %s; "
            "keeping its address %s. If the printer really moved, reconfigure it",
            entry.title,
            entry.unique_id,
            host,
            why,
            entry.data.get(CONF_HOST),
        )


async def async_start_discovery(hass: HomeAssistant) -> None:
    """Start the Bambu Lab listener of `hass`; a no-op if already started.

    A failed bind is logged once at warning level and never raised: Home
    Assistant carries on without discovery.
    """
    if _DATA_KEY in hass.data:
        return
    listener = hass.data[_DATA_KEY] = BambuDiscovery(hass)
    await listener.async_start()


async def async_search(hass: HomeAssistant) -> list[BambuAnnouncement]:
    """Look for printers for the config flow: up to `SEARCH_S` seconds.

    Starts the listener if needed (it keeps running, as when a printer is
    configured), sends an M-SEARCH (twice) and returns every printer heard
    from since `SEEN_S` before the search; ends early once printers were
    found and no new one came for `SEARCH_QUIET_S`. Empty when the
    listener cannot bind its port.
    """
    await async_start_discovery(hass)
    listener = hass.data.get(_DATA_KEY)
    if listener is None:  # pragma: no cover - Home Assistant stopping meanwhile
        return []
    await listener._started.wait()  # noqa: SLF001 - a start in flight
    if listener.transport is None:
        return []
    start = monotonic()
    listener.send_search()
    resent = False
    while (elapsed := monotonic() - start) < SEARCH_S:
        if not resent and elapsed >= SEARCH_RESEND_S:
            listener.send_search()
            resent = True
        found = listener.heard_since(start - SEEN_S)
        quiet = monotonic() - max(listener.last_new, start)
        if found and elapsed >= SEARCH_MIN_S and quiet >= SEARCH_QUIET_S:
            break
        await asyncio.sleep(0.1)
    return listener.heard_since(start - SEEN_S)


async def async_stop_discovery(hass: HomeAssistant) -> None:
    """Stop the Bambu Lab listener of `hass` and release its port."""
    if (listener := hass.data.pop(_DATA_KEY, None)) is not None:
        await listener.async_stop()
