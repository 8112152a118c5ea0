"""The per-entry coordinator: the stream's state, pushed to the entities.

No polling of the printer and nothing per frame: the Stream calls
`_on_snapshot` on transitions only (its state, the viewer count, a failure,
a restart), and the coordinator publishes those at once. Frame counters
(frames, fps, last frame, drops) are plain fields of the Stream that the
coordinator samples every `PUBLISH_INTERVAL` seconds while the stream is
active, publishing only when something changed, so entity state writes stay
at one every few seconds at any frame rate (the recorder does not fill up).

Transitions also become stream events (`started`, `stopped`, `stalled`,
`recovered`, `failed`) for the event entity, and an unreachable printer is
logged once when lost and once when back.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
import logging
import time
from typing import Any, Final

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import CALLBACK_TYPE, HassJob, HomeAssistant, callback
from homeassistant.helpers.event import async_call_later
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator

from .stream import PrintCamStream, StreamSnapshot, StreamState

_LOGGER = logging.getLogger(__name__)

PUBLISH_INTERVAL: Final = 5.0
"""Seconds between two publishes that carry no state or viewer change."""
RECENT_ERRORS: Final = 10
"""How many recent errors diagnostics show."""

EVENT_STARTED: Final = "started"
EVENT_STOPPED: Final = "stopped"
EVENT_STALLED: Final = "stalled"
EVENT_RECOVERED: Final = "recovered"
EVENT_FAILED: Final = "failed"
EVENT_TYPES: Final = (
    EVENT_STARTED,
    EVENT_STOPPED,
    EVENT_STALLED,
    EVENT_RECOVERED,
    EVENT_FAILED,
)

_TROUBLE: Final = frozenset(
    {
        StreamState.STALLED,
        StreamState.RECONNECTING,
        StreamState.UNREACHABLE,
        StreamState.AUTH_FAILED,
    }
)
"""States after which frames flowing again is a recovery."""
_FAILED: Final = frozenset({StreamState.UNREACHABLE, StreamState.AUTH_FAILED})

type StreamEventListener = Callable[[str, dict[str, Any]], None]


@dataclass(frozen=True, slots=True)
class RecentError:
    """One error the stream reported, for diagnostics."""

    at: float
    """Wall-clock time (epoch seconds) it was first seen."""
    state: StreamState
    error: str


class PrintCamCoordinator(DataUpdateCoordinator[StreamSnapshot]):
    """Holds the stream's latest published snapshot; fed by push."""

    config_entry: ConfigEntry

    def __init__(
        self,
        hass: HomeAssistant,
        entry: ConfigEntry,
        stream: PrintCamStream,
        camera: str | None = None,
    ) -> None:
        """Start from the stream's current snapshot; nothing runs yet.

        `camera` names the webcam in an entry with several (for logs).
        """
        self.label = entry.title if camera is None else f"{entry.title} {camera}"
        super().__init__(
            hass,
            _LOGGER,
            config_entry=entry,
            name=f"{self.label} stream",
            update_interval=None,  # push: the stream tells us
        )
        self.stream = stream
        self.data = stream.snapshot
        self._latest = stream.snapshot
        self._sample_job = HassJob(
            self._on_sample, "printcam stream sample", cancel_on_shutdown=True
        )
        self._unsub_sample: CALLBACK_TYPE | None = None
        self._unsub_stream: CALLBACK_TYPE | None = None
        self._event_listeners: list[StreamEventListener] = []
        # Event bookkeeping: frames flowed in this session (since idle), and
        # a stall, drop or failure happened since they last flowed.
        self._started = stream.snapshot.state is StreamState.STREAMING
        self._trouble = False
        self._unreachable_logged = False
        self.recent_errors: deque[RecentError] = deque(maxlen=RECENT_ERRORS)
        self.snapshots_seen = 0
        """Transitions the stream pushed (never one per frame)."""

    @callback
    def async_start(self) -> None:
        """Follow the stream (idempotent)."""
        if self._unsub_stream is None and not self._shutdown_requested:
            self._unsub_stream = self.stream.add_listener(self._on_snapshot)
            # The probe's upstream may already stream: sample it from now.
            self._schedule_sample()

    async def async_shutdown(self) -> None:
        """Stop following the stream and cancel the trailing publish."""
        if self._unsub_stream is not None:
            self._unsub_stream()
            self._unsub_stream = None
        self._cancel_sample()
        await super().async_shutdown()

    async def _async_update_data(self) -> StreamSnapshot:
        """Return the stream's snapshot (a manual refresh; no I/O, no polling)."""
        return self.stream.snapshot

    # --- stream events -------------------------------------------------------

    @callback
    def async_add_event_listener(self, listener: StreamEventListener) -> CALLBACK_TYPE:
        """Call `listener(event_type, data)` on each stream event; return a remover."""
        self._event_listeners.append(listener)

        @callback
        def remove() -> None:
            if listener in self._event_listeners:
                self._event_listeners.remove(listener)

        return remove

    def _fire(self, event_type: str, old: StreamState, new: StreamState) -> None:
        data = {"state": new.value, "previous_state": old.value}
        for listener in list(self._event_listeners):
            listener(event_type, data)

    def _transition(self, old: StreamState, new: StreamState) -> None:
        """Turn a state change into stream events and log lines."""
        if new is StreamState.STREAMING:
            if self._trouble:
                self._fire(EVENT_RECOVERED, old, new)
            elif not self._started:
                self._fire(EVENT_STARTED, old, new)
            self._started, self._trouble = True, False
        elif new is StreamState.IDLE:
            self._fire(EVENT_STOPPED, old, new)
            self._started = self._trouble = False
        elif new is StreamState.STALLED:
            self._fire(EVENT_STALLED, old, new)
        if new in _FAILED:
            self._fire(EVENT_FAILED, old, new)
        if new in _TROUBLE:
            self._trouble = True
        # An unreachable printer: one line when lost, one when it answers
        # again (a frame, or even a refusal of the credentials). Going idle
        # proves nothing, so the next loss is not logged twice.
        if new is StreamState.UNREACHABLE and not self._unreachable_logged:
            self._unreachable_logged = True
            _LOGGER.info(
                "%s: camera unreachable (%s)",
                self.label,
                self._latest.last_error or "no answer",
            )
        elif self._unreachable_logged and new in (
            StreamState.STREAMING,
            StreamState.AUTH_FAILED,
        ):
            self._unreachable_logged = False
            _LOGGER.info("%s: camera reachable again", self.label)

    # --- publishing: at once on a transition, sampled in between -----------------

    @callback
    def _on_snapshot(self, snapshot: StreamSnapshot) -> None:
        """Take a transition from the stream and publish it now."""
        previous, self._latest = self._latest, snapshot
        self.snapshots_seen += 1
        if snapshot.last_error and snapshot.last_error != previous.last_error:
            self.recent_errors.append(
                RecentError(time.time(), snapshot.state, snapshot.last_error)
            )
        if snapshot.state is not previous.state:
            self._transition(previous.state, snapshot.state)
        self._publish()

    @callback
    def _on_sample(self, _now: datetime) -> None:
        """Sample the stream's counters; publish if anything changed."""
        self._unsub_sample = None
        # Errors arrive as transitions; samples carry counters only.
        self._latest = snapshot = self.stream.snapshot
        if snapshot != self.data:
            self._publish()
        else:
            self._schedule_sample()

    def _schedule_sample(self) -> None:
        """Sample again in `PUBLISH_INTERVAL` while the stream is active."""
        self._cancel_sample()
        if self._latest.state is StreamState.IDLE and self._latest == self.data:
            return  # nothing moves while idle; the next transition wakes us
        self._unsub_sample = async_call_later(
            self.hass, PUBLISH_INTERVAL, self._sample_job
        )

    def _cancel_sample(self) -> None:
        if self._unsub_sample is not None:
            self._unsub_sample()
            self._unsub_sample = None

    def _publish(self) -> None:
        self.async_set_updated_data(self._latest)
        self._schedule_sample()
