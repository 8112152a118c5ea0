"""What OctoPrint and Moonraker share as families: a server with a key and a uuid.

Both are a printer host's HTTP API at ``host``/``port``/``ssl`` with an
optional ``X-Api-Key``, listing webcams (`webcams.py`) and telling a uuid
(what its zeroconf announcement carries, the entry's unique id). The
subclass reads its webcams and uuid; this class holds the forms and checks
that are the same for both.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping
import logging
from typing import Any, ClassVar, Final

from homeassistant.config_entries import SOURCE_ZEROCONF
from homeassistant.core import HomeAssistant
from homeassistant.helpers.selector import (
    BooleanSelector,
    NumberSelector,
    NumberSelectorConfig,
    NumberSelectorMode,
)
from homeassistant.helpers.service_info.zeroconf import ZeroconfServiceInfo
import voluptuous as vol

from custom_components.printcam.const import (
    CONF_API_KEY,
    CONF_HOST,
    CONF_KIND,
    CONF_PORT,
    CONF_SSL,
)
from custom_components.printcam.discovery import valid_host
from custom_components.printcam.sources import FrameSource, SourceError

from .base import (
    PASSWORD,
    TEXT,
    Discovered,
    Family,
    FormError,
    InvalidConfig,
    WrongPrinter,
)
from .webcams import Webcam, signature

_LOGGER = logging.getLogger(__name__)

KEY_SCHEMA: Final = vol.Schema({vol.Optional(CONF_API_KEY): PASSWORD})
_PORT: Final = NumberSelector(
    NumberSelectorConfig(min=1, max=65535, step=1, mode=NumberSelectorMode.BOX)
)


def server_fields(default_port: int) -> dict[vol.Marker, Any]:
    """Return the form fields that say where a server is (not its key)."""
    return {
        vol.Required(CONF_HOST): TEXT,
        vol.Required(CONF_PORT, default=default_port): _PORT,
        vol.Required(CONF_SSL, default=False): BooleanSelector(),
    }


def entered_key(user_input: Mapping[str, Any]) -> str:
    """Return the API key a form got, stripped ("" when left empty)."""
    return str(user_input.get(CONF_API_KEY) or "").strip()


def known_by_address(unique_id: str | None) -> bool:
    """Return True for an entry identified by its address (no uuid told)."""
    return not unique_id or unique_id.startswith(("http://", "https://"))


class PrinterHostFamily(Family):
    """A printer host's API: webcams and a uuid behind an optional key."""

    product: ClassVar[str]
    """The server's name in messages ("OctoPrint", "Moonraker")."""
    zeroconf_type: ClassVar[str]
    default_port: ClassVar[int]
    server_keys: ClassVar[tuple[str, ...]] = (CONF_HOST, CONF_PORT, CONF_SSL)
    """What reconfigure changes (everything but the key)."""
    reauth_schema = KEY_SCHEMA

    # --- what a subclass provides

    @abstractmethod
    async def _async_listed(
        self, hass: HomeAssistant, data: Mapping[str, Any]
    ) -> list[Webcam]:
        """Return the webcams the API lists now."""

    @abstractmethod
    async def _async_server_uuid(
        self, hass: HomeAssistant, data: Mapping[str, Any]
    ) -> str | None:
        """Return the uuid the server tells with the entry's key, None if none."""

    def _server_data(self, user_input: Mapping[str, Any]) -> dict[str, Any]:
        """Return the entry data of a server form (without the key).

        FormError for an address that is not one.
        """
        if (host := valid_host(str(user_input[CONF_HOST]))) is None:
            raise FormError({CONF_HOST: "invalid_host"})
        return {
            CONF_KIND: self.kind,
            CONF_HOST: host,
            CONF_PORT: int(user_input[CONF_PORT]),
            CONF_SSL: bool(user_input[CONF_SSL]),
        }

    # --- the entry

    def validate_data(self, data: Mapping[str, Any]) -> None:
        """Refuse data without an address or a port."""
        if not isinstance(data.get(CONF_HOST), str) or not data[CONF_HOST]:
            raise InvalidConfig("host is missing")
        port = data.get(CONF_PORT)
        if not isinstance(port, int) or not 0 < port < 65536:
            raise InvalidConfig("the port is not a TCP port number")

    def unique_id(self, data: Mapping[str, Any]) -> str | None:
        """Return None: the server tells its uuid (`async_check`)."""
        return None

    def create_source(
        self, hass: HomeAssistant, data: Mapping[str, Any]
    ) -> FrameSource:
        """Not used: every camera comes from `async_cameras`."""
        raise NotImplementedError

    async def async_cameras_signature(
        self, hass: HomeAssistant, data: Mapping[str, Any]
    ) -> str | None:
        """Return what the API lists now (an hourly check compares it)."""
        return signature(await self._async_listed(hass, data))

    async def async_verify_identity(
        self, hass: HomeAssistant, data: Mapping[str, Any], unique_id: str | None
    ) -> None:
        """Refuse another server at the address (its uuid is not the entry's).

        Two printers that swapped addresses would otherwise show each
        other's webcams, and the entry's own entities would be removed. An
        entry known by its address, or a server that tells no uuid, is taken
        as it is.
        """
        if known_by_address(unique_id):
            return
        uuid = await self._async_server_uuid(hass, data)
        if uuid is not None and uuid != unique_id:
            raise WrongPrinter(
                f"{self.address(data)} is another {self.product} ({uuid}), "
                f"not {unique_id}"
            )

    # --- the forms

    def parse_reauth(
        self, data: Mapping[str, Any], user_input: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Return the data with the new key."""
        return {**data, CONF_API_KEY: entered_key(user_input)}

    def parse_reconfigure(
        self, data: Mapping[str, Any], user_input: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Return the data at the new address, with the stored key."""
        return {
            **self._server_data(user_input),
            CONF_API_KEY: data.get(CONF_API_KEY, ""),
        }

    def reconfigure_suggested(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """Start with the stored address."""
        return {key: data[key] for key in self.server_keys}

    # --- zeroconf

    def _announced(self, source: str, info: object) -> ZeroconfServiceInfo | None:
        """Return the announcement if it is this family's and carries a uuid."""
        if source != SOURCE_ZEROCONF or not isinstance(info, ZeroconfServiceInfo):
            return None
        if info.type != self.zeroconf_type or not info.properties.get("uuid"):
            return None
        return info

    def _moved(
        self, data: Mapping[str, Any], discovered: Discovered
    ) -> dict[str, Any] | None:
        """Return the entry's data at the announced address, None if not movable."""
        announced = {k: v for k, v in discovered.data.items() if k != CONF_KIND}
        moved = {**data, **announced}
        return None if moved == dict(data) else moved

    @abstractmethod
    async def _async_keyless_uuid(
        self, hass: HomeAssistant, data: Mapping[str, Any]
    ) -> str | None:
        """Return the uuid the server at `data`'s address tells without a key."""

    async def async_verify_move(
        self, hass: HomeAssistant, data: Mapping[str, Any], discovered: Discovered
    ) -> dict[str, Any] | None:
        """Offer a move only when the new address tells the same uuid, keyless.

        An announcement is anyone's to send (the uuid is public in the
        printer's own TXT record), so the new address is asked without the
        key, and the key goes there only once the user confirmed the move.
        """
        if (moved := self._moved(data, discovered)) is None:
            return None
        try:
            uuid = await self._async_keyless_uuid(hass, moved)
        except SourceError as err:
            _LOGGER.debug("Not moving %s: %s", data[CONF_HOST], err)
            return None
        if uuid != discovered.unique_id:
            _LOGGER.warning(
                "Ignoring the announcement of %s %s at %s: the server there "
                "does not prove to be it",
                self.product,
                discovered.unique_id,
                discovered.data[CONF_HOST],
            )
            return None
        return moved

    def discovery_schema(self, discovered: Discovered) -> vol.Schema:
        """Ask only for the key."""
        return KEY_SCHEMA
