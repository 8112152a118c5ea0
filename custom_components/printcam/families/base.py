"""What a printer family provides, and what its forms report back.

A family is one kind of printer (``entry.data["kind"]``): what the user
enters, how it is checked, the source it builds, its unique id and how it is
discovered. The config flow shows a family's forms and handles Home
Assistant's side (unique ids, entries, reloads); startup validates an entry
and builds its source through it.

Per family the flow has the steps ``<kind>`` (add), ``reauth_<kind>`` and
``reconfigure_<kind>``, plus the ones named in `confirm_steps`; their texts
are in strings.json under those step ids.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final

from homeassistant.core import HomeAssistant
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.selector import (
    BooleanSelector,
    NumberSelector,
    NumberSelectorConfig,
    NumberSelectorMode,
    TextSelector,
    TextSelectorConfig,
    TextSelectorType,
)
import voluptuous as vol

from custom_components.printcam.const import (
    CONF_IDLE_GRACE_S,
    CONF_MAX_FPS,
    CONF_RESTREAM,
    CONF_RESTREAM_ROTATE,
    CONF_RESTREAM_STREAM_SOURCE,
    CONF_STALL_S,
    CONF_STILL_HOLD_S,
    DEFAULT_IDLE_GRACE_S,
    DEFAULT_MAX_FPS,
    DEFAULT_STALL_S,
    DEFAULT_STILL_HOLD_S,
)
from custom_components.printcam.sources import FrameSource, SourceError
from custom_components.printcam.transform import Orientation

type StillFetcher = Callable[[], Awaitable[bytes]]

SOURCE_FORM_ERRORS: Final = frozenset(
    {
        "cannot_connect",
        "invalid_auth",
        "not_mjpeg",
        "timeout",
        "protocol_error",
        "ffmpeg_missing",
        "camera_port_closed",
        "invalid_serial",
        "cert_mismatch",
        "liveview_disabled",
        "no_mjpeg_webcam",
        "webcam_permission",
        "authorization_denied",
        "app_keys_unsupported",
    }
)
"""`SourceError` reasons a form shows as they are; any other is cannot_connect."""

TEXT: Final = TextSelector()
PASSWORD: Final = TextSelector(
    TextSelectorConfig(type=TextSelectorType.PASSWORD, autocomplete="off")
)


def _seconds(minimum: float, maximum: float) -> NumberSelector:
    return NumberSelector(
        NumberSelectorConfig(
            min=minimum,
            max=maximum,
            step=1,
            unit_of_measurement="s",
            mode=NumberSelectorMode.BOX,
        )
    )


MAX_FPS_OPTION: Final[dict[vol.Marker, Any]] = {
    vol.Required(CONF_MAX_FPS, default=DEFAULT_MAX_FPS): NumberSelector(
        NumberSelectorConfig(min=0, max=60, step=0.5, mode=NumberSelectorMode.BOX)
    )
}
"""The fan-out's frame rate cap: frames beyond it are not sent to viewers."""
STREAM_OPTIONS: Final[dict[vol.Marker, Any]] = {
    vol.Required(CONF_IDLE_GRACE_S, default=DEFAULT_IDLE_GRACE_S): _seconds(0, 600),
    vol.Required(CONF_STILL_HOLD_S, default=DEFAULT_STILL_HOLD_S): _seconds(0, 3600),
    # At least 1 s: below that a camera's normal jitter reads as stalls.
    vol.Required(CONF_STALL_S, default=DEFAULT_STALL_S): _seconds(1, 600),
    # Off unless set: entries that never used them keep their options as they were.
    vol.Optional(CONF_RESTREAM): BooleanSelector(),
    vol.Optional(CONF_RESTREAM_STREAM_SOURCE): BooleanSelector(),
    vol.Optional(CONF_RESTREAM_ROTATE): BooleanSelector(),
}
"""How the shared stream holds its connection: the same for every family."""
OPTIONS_SCHEMA: Final = vol.Schema({**MAX_FPS_OPTION, **STREAM_OPTIONS})
"""The options form of a printer whose camera sends JPEG frames itself."""


class WrongPrinter(SourceError):
    """Another printer answers at the entry's address (a DHCP swap)."""

    reason = "wrong_printer"


class InvalidConfig(ValueError):
    """The entry's data cannot describe a printer camera."""


class FormError(Exception):
    """What the user entered cannot be used: form errors by field."""

    def __init__(self, errors: dict[str, str]) -> None:
        """Keep the errors (field or "base" -> key in strings.json)."""
        super().__init__(errors)
        self.errors = errors


@dataclass(frozen=True, slots=True)
class CameraSpec:
    """One camera of an entry, as its family describes it at setup."""

    key: str | None
    """Stable id within the entry (a webcam's name or uid); None for the
    entry's only camera, whose entities keep the ids they always had."""
    name: str | None
    """The camera's own name (a webcam's), None for the entry's only camera."""
    source: FrameSource
    still_fetcher: StillFetcher | None = None
    orientation: Orientation | None = None
    """The flip and rotation the printer's settings give this webcam."""
    probe: bool = True
    """Open the first connection during setup and fail setup when it fails.
    False where the printer's API already proved it is there: one webcam
    down then shows in its own stream state while the others stream."""


@dataclass(frozen=True, slots=True)
class SkippedWebcam:
    """A webcam the printer lists that PrintCam does not show, and why."""

    name: str
    reason: str
    """A translation key (``not_mjpeg_service``, ``disabled``, ...)."""
    detail: str = ""
    """What made it so (the service or the URL's kind), never a credential."""


@dataclass(frozen=True, slots=True)
class Cameras:
    """What a family found to show for an entry."""

    cameras: list[CameraSpec]
    skipped: list[SkippedWebcam] = field(default_factory=list)
    signature: str = ""
    """Changes when the printer's webcams change (a periodic check reloads)."""


@dataclass(frozen=True, slots=True)
class Draft:
    """A new entry as entered, before the printer was checked."""

    title: str
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Checked:
    """What a check learnt beyond the data to store (printer-host families)."""

    data: dict[str, Any]
    unique_id: str | None = None
    """The printer's identity, when only the printer can tell it (its uuid)."""
    title: str | None = None
    """The printer's own name, when it has one."""
    summary: dict[str, str] | None = None
    """Placeholders of the ``webcams`` message shown once the entry is made:
    ``cameras`` (what became a camera) and ``skipped`` (what not, and why)."""


@dataclass(frozen=True, slots=True)
class ConfirmChange:
    """Reconfigure found a change the user has to accept before it is stored.

    The flow shows the form `step_id` (one of the family's `confirm_steps`)
    with `placeholders`, and on submit checks and stores `data`.
    """

    step_id: str
    data: dict[str, Any]
    placeholders: dict[str, str]


@dataclass(frozen=True, slots=True)
class Discovered:
    """A printer a discovery flow was started for."""

    unique_id: str
    title: str
    """The flow's title and the new entry's."""
    data: dict[str, Any]
    """What discovery told; `parse_discovery` completes it."""
    placeholders: dict[str, str]
    """For the discovery_confirm form's description."""
    updates: dict[str, Any] = field(default_factory=dict)
    """Stored in the printer's entry when it is already configured."""
    abort_reason: str | None = None
    """Set when the printer is known but cannot be added."""
    confirm_step: str = "discovery_confirm"
    """The form that asks what discovery could not tell (its texts)."""


class Family(ABC):
    """One kind of printer. Instances are stateless; the registry holds one each."""

    kind: ClassVar[str]
    """The entry's ``kind``, the menu option and the add step's id."""
    user_schema: ClassVar[vol.Schema]
    reauth_schema: ClassVar[vol.Schema]
    reconfigure_schema: ClassVar[vol.Schema]
    confirm_steps: ClassVar[tuple[str, ...]] = ()
    """Steps a `ConfirmChange` from `async_check_reconfigure` may name."""

    # --- the entry

    @abstractmethod
    def validate_data(self, data: Mapping[str, Any]) -> None:
        """Raise InvalidConfig when the entry's data is unusable."""

    @abstractmethod
    def unique_id(self, data: Mapping[str, Any]) -> str | None:
        """Return the printer's identity, the entry's unique id.

        None when only the printer can tell it: the check's `Checked`
        carries it then.
        """

    @abstractmethod
    def create_source(
        self, hass: HomeAssistant, data: Mapping[str, Any]
    ) -> FrameSource:
        """Return the camera source for valid entry data."""

    async def async_cameras(
        self, hass: HomeAssistant, data: Mapping[str, Any]
    ) -> Cameras:
        """Return the entry's cameras (valid `data`); may ask the printer.

        Raises `SourceError` when the printer cannot be asked (`InvalidAuth`
        starts reauth, others retry setup). The default is the one camera
        of `create_source`, probed at setup.
        """
        source = self.create_source(hass, data)
        return Cameras(
            [CameraSpec(None, None, source, self.still_fetcher(source, data))]
        )

    async def async_verify_identity(
        self, hass: HomeAssistant, data: Mapping[str, Any], unique_id: str | None
    ) -> None:
        """Raise `WrongPrinter` if another printer answers at the entry's address.

        Called at setup, before `async_cameras`, with the entry's unique id.
        The default checks nothing (a family whose source checks the
        printer's identity itself, like the pinned Bambu certificate).
        """
        return

    async def async_cameras_signature(
        self, hass: HomeAssistant, data: Mapping[str, Any]
    ) -> str | None:
        """Return the `Cameras.signature` the printer would give now.

        Checked periodically while the entry is loaded; a change reloads
        the entry. None (the default): the cameras come from the entry alone.
        """
        return None

    def configure_source(self, source: FrameSource, options: Mapping[str, Any]) -> bool:
        """Apply the entry's options to its source (at setup, and when they change).

        Returns True when a running connection must be restarted for them to
        take effect (viewers keep their stream across the restart). The
        default source has no options of its own.
        """
        return False

    def options_schema(self, data: Mapping[str, Any]) -> vol.Schema:
        """Return the options form for an entry of this family."""
        return OPTIONS_SCHEMA

    def still_fetcher(
        self, source: FrameSource, data: Mapping[str, Any]
    ) -> StillFetcher | None:
        """Return a way to fetch a still without the stream, if the printer has one."""
        return None

    def address(self, data: Mapping[str, Any]) -> str:
        """Return where the printer is, for texts (never a credential)."""
        host = str(data.get("host", ""))
        port = data.get("port")
        if port is None:
            return host
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def device_info(self, data: Mapping[str, Any]) -> DeviceInfo:
        """Describe the printer's device from valid entry data.

        Manufacturer, model, serial number, configuration URL: what the
        family knows. The device's identifiers and name are the entry's
        (`entity.device_info_for` adds them); never a credential.
        """
        return DeviceInfo(manufacturer="PrintCam", model="Printer camera")

    # --- the forms (no I/O: they raise FormError)

    @abstractmethod
    def parse_user(self, user_input: Mapping[str, Any]) -> Draft:
        """Turn the add form into a new entry's title and data."""

    @abstractmethod
    def parse_reauth(
        self, data: Mapping[str, Any], user_input: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Return the entry's data with the new credentials."""

    def reauth_suggested(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """Return what the reauth form starts with (never a secret)."""
        return {}

    @abstractmethod
    def parse_reconfigure(
        self, data: Mapping[str, Any], user_input: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Return the entry's data changed as entered."""

    @abstractmethod
    def reconfigure_suggested(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """Return what the reconfigure form starts with (never a secret)."""

    # --- checking against the printer (may raise FormError or SourceError)

    @abstractmethod
    async def async_check(
        self,
        hass: HomeAssistant,
        data: Mapping[str, Any],
        timeout: float,  # noqa: ASYNC109 - the flow's bound for one check
    ) -> dict[str, Any] | Checked:
        """Fetch one frame (or ask the printer's API) with `data`.

        Returns the data to store, or a `Checked` with what else was learnt.
        """

    def needs_authorization(self, data: Mapping[str, Any]) -> bool:
        """Return True when `data` lacks a key the printer can grant (appkeys)."""
        return False

    async def async_authorize(
        self, hass: HomeAssistant, data: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Ask the printer for a key the user approves there; return the data with it.

        Runs as the flow's progress step ``authorize`` while the user
        decides (raises `SourceError`: ``authorization_denied``, ...).
        """
        raise NotImplementedError

    async def async_verify_move(
        self,
        hass: HomeAssistant,
        data: Mapping[str, Any],
        discovered: Discovered,
    ) -> dict[str, Any] | None:
        """Return the entry's data at a discovered new address, if proven the same.

        Called when a configured printer is announced elsewhere. The default
        moves nothing (a family that can prove identity overrides it).
        """
        return None

    async def async_check_reconfigure(
        self,
        hass: HomeAssistant,
        old: Mapping[str, Any],
        new: Mapping[str, Any],
        timeout: float,  # noqa: ASYNC109 - the flow's bound for one check
    ) -> dict[str, Any] | Checked | ConfirmChange:
        """Check reconfigured data; or ask the user to confirm a change first."""
        return await self.async_check(hass, new, timeout)

    # --- discovery

    async def async_setup_discovery(self, hass: HomeAssistant) -> None:
        """Start finding this family's printers, once per Home Assistant.

        Called when the integration is set up; a listener it starts stops
        with Home Assistant. Must not raise for an unusable network: log and
        carry on. The default finds nothing (printers are added by hand).
        """
        return

    def discovered(self, source: str, info: object) -> Discovered | None:
        """Describe the printer a discovery flow found; None if not this family's."""
        return None

    searches: ClassVar[bool] = False
    """Whether the add step first looks for printers (`async_search`)."""

    async def async_search(self, hass: HomeAssistant) -> list[Discovered]:
        """Look for this family's printers on the network, for the add step.

        Each is what `discovered` makes of an announcement: the flow goes on
        as for a discovery (inspected before anything is asked). Bounded
        in time (a few seconds); never raises for an unusable network.
        """
        return []

    async def async_inspect_discovered(
        self,
        hass: HomeAssistant,
        discovered: Discovered,
        timeout: float,  # noqa: ASYNC109 - the flow's bound for one check
    ) -> Discovered:
        """Look at a discovered printer before the user is asked anything.

        Sends no credential. Returns `discovered` completed with what was
        learnt (say, a certificate to pin), or with an `abort_reason` when
        the device is not the printer it claims to be. The default looks at
        nothing.
        """
        return discovered

    def discovery_schema(self, discovered: Discovered) -> vol.Schema:
        """Return the discovery_confirm form: what discovery could not tell."""
        raise NotImplementedError

    def parse_discovery(
        self, discovered: Discovered, user_input: Mapping[str, Any]
    ) -> Draft:
        """Turn the discovery_confirm form into a new entry."""
        raise NotImplementedError
