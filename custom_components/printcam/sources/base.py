"""What every printer camera source shares: errors, events, backoff, the loop.

A source turns one printer connection into an async iterator of raw JPEG
frames. `FrameSource.frames()` reconnects by itself with exponential backoff
and jitter while frames are wanted, and tells a `SourceEvents` listener what
happens so the Stream can publish state. No Home Assistant imports.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
import asyncio
import contextlib
from dataclasses import dataclass
import logging
import random
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator

_LOGGER = logging.getLogger(__name__)

BACKOFF_INITIAL = 1.0
BACKOFF_CAP = 30.0
BACKOFF_RESET_AFTER = 60.0
"""A connection that delivered frames for this long resets the backoff."""


async def wait_despite_cancel(task: asyncio.Future[Any]) -> None:
    """Wait until `task` is done, even if the caller is cancelled meanwhile.

    For closing work that must finish before anything else may connect (a
    one-client printer): a restart and a shutdown may both cancel the
    caller, and neither may leave a socket closing in the background. The
    cancellation is re-raised once the task is done.
    """
    cancelled = False
    while not task.done():
        try:
            await asyncio.wait({task})
        except asyncio.CancelledError:
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError


class SourceError(Exception):
    """A camera source failed. `reason` is a stable, translatable key.

    A `permanent` error cannot be fixed by retrying (credentials, a foreign
    certificate): the reconnect loop raises it instead of backing off.
    """

    reason = "cannot_connect"
    permanent = False
    conclusive = True
    """False when one more attempt is needed to know what went wrong (a
    Bambu printer closing right after the login once): a startup probe
    keeps waiting through it."""


class CannotConnect(SourceError):
    """The printer could not be reached or hung up."""

    reason = "cannot_connect"


class InvalidAuth(SourceError):
    """The printer refused the credentials (HTTP 401/403, wrong access code)."""

    reason = "invalid_auth"
    permanent = True


class NotMjpeg(SourceError):
    """The URL answers, but not with an MJPEG stream or a JPEG."""

    reason = "not_mjpeg"


class SourceTimeout(SourceError):
    """The printer did not answer or send a frame in time."""

    reason = "timeout"


class ProtocolError(SourceError):
    """The printer sent data that breaks its protocol."""

    reason = "protocol_error"


class AuthDowngrade(ProtocolError):
    """The camera offered digest authentication before and now only basic.

    Basic sends the password readable to whoever answers: a man in the
    middle asking for it is the likely reason. The password is never sent
    so to an origin that offered digest; retrying (with digest) is fine.
    """


class SourceEvents:
    """Listener for what a source does; every method is a no-op by default.

    Methods are called from the event loop and must not block.
    """

    def on_connecting(self, attempt: int) -> None:
        """Call before a connection attempt (1 for the first one)."""

    def on_connected(self) -> None:
        """Call once the printer accepted the connection and auth."""

    def on_frame_dropped(self, count: int, reason: str) -> None:
        """Call when bad frames or parts were dropped."""

    def on_disconnected(
        self, error: SourceError | None, retry_in: float | None
    ) -> None:
        """Call when a connection ended; `retry_in` is None when giving up."""


@dataclass(slots=True)
class SourceStats:
    """Counters a source keeps across connections."""

    connects: int = 0
    """Successful connections."""
    attempts: int = 0
    """Connection attempts, successful or not."""
    failures: int = 0
    """Connections that failed or ended with an error."""
    frames: int = 0
    """Frames delivered."""
    dropped: int = 0
    """Frames or parts dropped as bad (oversize, not JPEG, broken)."""
    last_error: str | None = None
    """The last error's reason and message, without secrets."""
    last_reason: str | None = None
    """The last error's `SourceError.reason` (a translation key)."""


class Backoff:
    """Exponential backoff with jitter: 1 s doubling to a 30 s cap.

    `reset_if_stable()` resets it after a connection that delivered frames
    for `stable_after` seconds.
    """

    def __init__(
        self,
        initial: float = BACKOFF_INITIAL,
        cap: float = BACKOFF_CAP,
        rng: random.Random | None = None,
        *,
        stable_after: float = BACKOFF_RESET_AFTER,
    ) -> None:
        """Start at `initial` seconds."""
        self.initial = initial
        self.cap = cap
        self.stable_after = stable_after
        self._next = initial
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not crypto

    def next_delay(self) -> float:
        """Return the next delay (with up to 20% jitter) and double the base."""
        base = self._next
        self._next = min(self.cap, self._next * 2)
        return min(self.cap, base * (1 + self._rng.uniform(0, 0.2)))

    def reset(self) -> None:
        """Start again from the initial delay."""
        self._next = self.initial

    def reset_if_stable(self, connected_for: float) -> None:
        """Reset after a connection that delivered frames long enough."""
        if connected_for >= self.stable_after:
            self.reset()


class FrameSource(ABC):
    """One printer camera: a reconnecting iterator of JPEG frames."""

    family: str = "unknown"
    """Printer family, for diagnostics ("mjpeg", "bambu", ...)."""

    def __init__(self, events: SourceEvents | None = None) -> None:
        """Set up counters and the event listener."""
        self.events = events or SourceEvents()
        self.stats = SourceStats()
        self.backoff = Backoff()
        self._connected_at: float | None = None

    @property
    def connected(self) -> bool:
        """Return True while a connection is established."""
        return self._connected_at is not None

    def _mark_connected(self) -> None:
        """Record that the printer accepted a connection (called by `connect`)."""
        if self._connected_at is None:
            self._connected_at = time.monotonic()
            self.stats.connects += 1
            self.events.on_connected()

    def diagnostics(self) -> dict[str, Any]:
        """Return what the source adds to the entry's diagnostics (no secret)."""
        return {}

    @property
    @abstractmethod
    def host(self) -> str:
        """Return the printer's host (no credentials), for diagnostics."""

    @abstractmethod
    def connect(self) -> AsyncGenerator[bytes]:
        """Open one connection and yield its frames until it ends.

        Calls `_mark_connected()` once the printer accepted the connection
        (HTTP headers read, TLS and auth done). Raises a `SourceError`
        subclass on failure. Closing the iterator (aclose or cancellation)
        must close the connection before returning.
        """

    async def fetch_frame(self, timeout: float) -> bytes:  # noqa: ASYNC109
        """Open one connection, return its first frame, close it.

        Used to validate a configuration and to probe at startup. Raises
        `SourceTimeout` when no frame arrives within `timeout` seconds.
        """
        try:
            async with asyncio.timeout(timeout):
                async with contextlib.aclosing(self.connect()) as frames:
                    async for frame in frames:
                        return frame
        except TimeoutError as err:
            raise SourceTimeout(f"no frame within {timeout:g} s") from err
        finally:
            self._connected_at = None
        raise CannotConnect("the camera closed the connection before a frame")

    def _note_error(self, err: SourceError) -> None:
        self.stats.failures += 1
        self.stats.last_error = f"{err.reason}: {err}"
        self.stats.last_reason = err.reason

    async def frames(self, disconnect: asyncio.Event) -> AsyncGenerator[bytes]:
        """Yield frames, reconnecting with backoff, until `disconnect` is set.

        Permanent errors (`InvalidAuth`, `CertificateMismatch`,
        `InvalidSerial`) are raised out: retrying cannot fix them. Every other
        error is reported and retried. The previous connection is
        always fully closed before the next one opens.
        """
        attempt = 0
        while not disconnect.is_set():
            attempt += 1
            self.stats.attempts += 1
            self.events.on_connecting(attempt)
            error: SourceError | None = None
            connected_for: float | None = None
            try:
                async with contextlib.aclosing(self.connect()) as frames:
                    async for frame in frames:
                        self.stats.frames += 1
                        yield frame
                        if disconnect.is_set():
                            return
            except SourceError as err:
                self._note_error(err)
                if err.permanent:
                    self.events.on_disconnected(err, None)
                    raise
                error = err
            finally:
                if self._connected_at is not None:
                    connected_for = time.monotonic() - self._connected_at
                    self._connected_at = None
            if disconnect.is_set():
                return
            if connected_for is not None:
                attempt = 0
                self.backoff.reset_if_stable(connected_for)
            if error is None:
                error = CannotConnect("the camera ended the stream")
                self._note_error(error)
            delay = self.backoff.next_delay()
            self.events.on_disconnected(error, delay)
            _LOGGER.debug("%s: %s; retrying in %.1fs", self.host, error.reason, delay)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await disconnect.wait()


class CameraPortClosed(CannotConnect):
    """The printer is up but refuses its camera port (camera or LAN view off)."""

    reason = "camera_port_closed"


class LiveviewDisabled(CannotConnect):
    """The printer accepts its camera port, then closes it at once.

    What a Bambu Lab X1 / H2 / P2S printer does on port 322 while "LAN Mode
    Liveview" is off: the user has to turn that setting on.
    """

    reason = "liveview_disabled"


class CertificateMismatch(SourceError):
    """The printer presented another TLS certificate than the pinned one.

    Raised before any credential is sent. `expected` and `presented` are
    lowercase hex SHA-256 fingerprints (`presented` is None when the peer
    sent no certificate).
    """

    reason = "cert_mismatch"
    permanent = True

    def __init__(self, message: str, *, expected: str, presented: str | None) -> None:
        """Keep both fingerprints for diagnostics and repairs."""
        super().__init__(message)
        self.expected = expected
        self.presented = presented


class InvalidSerial(SourceError):
    """The printer's certificate names another serial number than configured.

    Raised before any credential is sent.
    """

    reason = "invalid_serial"
    permanent = True

    def __init__(self, message: str, *, serial: str, common_name: str) -> None:
        """Keep the configured serial and the certificate's common name."""
        super().__init__(message)
        self.serial = serial
        self.common_name = common_name
