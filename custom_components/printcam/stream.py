"""The per-printer engine: source -> multipart parts -> broadcaster.

One `PrintCamStream` per config entry. It owns the broadcaster key, turns
each JPEG from the source into one multipart part (every viewer gets the same
bytes object), keeps the latest JPEG for stills, measures fps, drops and
reconnects, tracks the stream's state and tells listeners when it changes.

Who keeps the upstream open:
- live viewers (`iter_viewer`), for as long as they watch;
- a *hold*, one internal subscriber with a deadline: the last viewer leaving
  extends it by `idle_grace_s`, a still by `still_hold_s` (dashboard cards
  poll a still every 10 s: one connection, not one per poll), keep-warm
  makes it permanent. The broadcaster itself gets a grace of 0: the hold is
  the grace window, so the close happens exactly when the hold expires.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
import contextlib
from dataclasses import dataclass, field, replace
from enum import StrEnum
import logging
import math
import time
from typing import Any

from . import fanout
from .const import (
    CONF_IDLE_GRACE_S,
    CONF_KEEP_WARM,
    CONF_MAX_FPS,
    CONF_STALL_S,
    CONF_STILL_HOLD_S,
    DEFAULT_IDLE_GRACE_S,
    DEFAULT_KEEP_WARM,
    DEFAULT_MAX_FPS,
    DEFAULT_STALL_S,
    DEFAULT_STILL_HOLD_S,
    STILL_TIMEOUT,
)
from .mjpeg import encode_part
from .sources import FrameSource, InvalidAuth, SourceError, SourceEvents

_LOGGER = logging.getLogger(__name__)

FPS_WINDOW_S = 5.0
"""Frame rate is measured over this many recent seconds."""
FRESH_STILL_S = 1.0
"""A still younger than this (or two frame intervals) is served as is."""
WATCHDOG_PERIOD_S = 0.5
"""How often a running upstream checks for a stall."""


class StreamState(StrEnum):
    """What the printer's camera stream is doing."""

    IDLE = "idle"
    CONNECTING = "connecting"
    STREAMING = "streaming"
    STALLED = "stalled"
    RECONNECTING = "reconnecting"
    UNREACHABLE = "unreachable"
    AUTH_FAILED = "auth_failed"


@dataclass(frozen=True, slots=True)
class StreamOptions:
    """Entry options with their defaults applied."""

    max_fps: float = DEFAULT_MAX_FPS
    idle_grace_s: float = DEFAULT_IDLE_GRACE_S
    still_hold_s: float = DEFAULT_STILL_HOLD_S
    stall_s: float = DEFAULT_STALL_S
    keep_warm: bool = DEFAULT_KEEP_WARM

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any]) -> StreamOptions:
        """Build from a config entry's options; missing keys get defaults."""
        return cls(
            max_fps=float(options.get(CONF_MAX_FPS, DEFAULT_MAX_FPS)),
            idle_grace_s=float(options.get(CONF_IDLE_GRACE_S, DEFAULT_IDLE_GRACE_S)),
            still_hold_s=float(options.get(CONF_STILL_HOLD_S, DEFAULT_STILL_HOLD_S)),
            stall_s=float(options.get(CONF_STALL_S, DEFAULT_STALL_S)),
            keep_warm=bool(options.get(CONF_KEEP_WARM, DEFAULT_KEEP_WARM)),
        )


@dataclass(frozen=True, slots=True)
class StreamSnapshot:
    """An immutable picture of the stream, for the coordinator and entities."""

    state: StreamState = StreamState.IDLE
    viewers: int = 0
    fps: float = 0.0
    last_frame_at: float | None = None
    """Wall-clock time (epoch seconds) of the latest frame."""
    frames: int = 0
    frames_dropped: int = 0
    """Bad frames or parts the source dropped (oversize, not JPEG, broken)."""
    frames_skipped: int = 0
    """Frames left out to honour `max_fps`."""
    reconnects: int = 0
    upstream_starts: int = 0
    last_error: str | None = None


type SnapshotListener = Callable[[StreamSnapshot], None]


@dataclass(slots=True)
class _FpsMeter:
    """Frame rate over a sliding window of frame times."""

    window: float = FPS_WINDOW_S
    times: deque[float] = field(default_factory=deque)

    def add(self, now: float) -> None:
        self.times.append(now)
        while self.times and now - self.times[0] > self.window:
            self.times.popleft()

    def fps(self, now: float) -> float:
        while self.times and now - self.times[0] > self.window:
            self.times.popleft()
        if len(self.times) < 2:
            return 0.0
        span = self.times[-1] - self.times[0]
        return (len(self.times) - 1) / span if span > 0 else 0.0

    def clear(self) -> None:
        self.times.clear()


class PrintCamStream(SourceEvents):
    """One printer's shared stream."""

    def __init__(
        self,
        key: str,
        source: FrameSource,
        options: StreamOptions | None = None,
        *,
        still_fetcher: Callable[[], Awaitable[bytes]] | None = None,
    ) -> None:
        """Wire the source to a broadcaster registered under `key`.

        `still_fetcher`, when given, fetches a still without the stream (the
        printer's snapshot URL); it is used only while the stream is down.
        """
        self.key = key
        self.source = source
        source.events = self
        self.options = options or StreamOptions()
        self._still_fetcher = still_fetcher
        self._listeners: list[SnapshotListener] = []
        self._snapshot = StreamSnapshot()
        self._closed = False
        # Latest frame, for stills.
        self.latest_jpeg: bytes | None = None
        self._latest_mono = 0.0
        self._next_frame: asyncio.Future[bytes] | None = None
        self._fps = _FpsMeter()
        self._last_fanout_mono = -math.inf
        # Who keeps the upstream open.
        self._viewer_tasks: set[asyncio.Task[Any]] = set()
        self._holds: dict[str, float] = {}
        """Why the upstream is held open: reason -> monotonic deadline."""
        self._hold_wake = asyncio.Event()
        self._hold_task: asyncio.Task[None] | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self._ever_connected = False
        self.failure: SourceError | None = None
        """The permanent error that stopped the upstream, until it runs again."""
        self._pump: asyncio.Task[Any] | None = None
        self._restart_requested = False

    # --- snapshot and listeners ------------------------------------------------

    @property
    def snapshot(self) -> StreamSnapshot:
        """Return the current snapshot."""
        return self._snapshot

    @property
    def state(self) -> StreamState:
        """Return the current stream state."""
        return self._snapshot.state

    @property
    def viewers(self) -> int:
        """Return how many live viewers are watching."""
        return len(self._viewer_tasks)

    @property
    def running(self) -> bool:
        """Return True while an upstream connection is wanted and open."""
        bc = fanout.get_broadcaster(self.key)
        return bc is not None and bc.running and not bc.stopped

    def add_listener(self, listener: SnapshotListener) -> Callable[[], None]:
        """Call `listener(snapshot)` on every change; return a remover."""
        self._listeners.append(listener)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                self._listeners.remove(listener)

        return remove

    def _publish(self, **changes: Any) -> None:
        snapshot = replace(self._snapshot, **changes)
        if snapshot == self._snapshot:
            return
        self._snapshot = snapshot
        for listener in list(self._listeners):
            try:
                listener(snapshot)
            except Exception:
                _LOGGER.exception("%s: stream listener failed", self.key)

    def _set_state(self, state: StreamState) -> None:
        if state is not self._snapshot.state:
            _LOGGER.debug("%s: %s -> %s", self.key, self._snapshot.state, state)
            self._publish(state=state)

    def _stats_changes(self) -> dict[str, Any]:
        return {
            "frames_dropped": self.source.stats.dropped,
            "last_error": self.source.stats.last_error,
        }

    # --- SourceEvents: the source tells us what it does -----------------------

    def on_connecting(self, attempt: int) -> None:
        """Show connecting on a first attempt; keep a retry state on retries."""
        if attempt > 1 or self._snapshot.state in (
            StreamState.RECONNECTING,
            StreamState.UNREACHABLE,
        ):
            return  # stay in reconnecting/unreachable until a frame comes
        self._set_state(StreamState.CONNECTING)

    def on_connected(self) -> None:
        """Count a reconnect; streaming itself starts with the first frame."""
        self.failure = None
        if self._ever_connected:
            self._publish(reconnects=self._snapshot.reconnects + 1)
        self._ever_connected = True

    def on_frame_dropped(self, count: int, reason: str) -> None:
        """Bad frames were dropped by the source."""
        self._publish(**self._stats_changes())

    def on_disconnected(
        self, error: SourceError | None, retry_in: float | None
    ) -> None:
        """Publish why the connection ended (`retry_in` None: giving up)."""
        self._fps.clear()
        if retry_in is None:
            self.failure = error
        if isinstance(error, InvalidAuth):
            self._publish(state=StreamState.AUTH_FAILED, **self._stats_changes())
            return
        # A printer that answered before and dropped is reconnecting; one
        # that never answered (or stopped answering) is unreachable.
        was_connected = self._snapshot.state in (
            StreamState.STREAMING,
            StreamState.STALLED,
        )
        state = StreamState.RECONNECTING if was_connected else StreamState.UNREACHABLE
        self._publish(state=state, fps=0.0, **self._stats_changes())

    # --- frames ------------------------------------------------------------------

    def _on_frame(self, jpeg: bytes) -> bytes | None:
        """Record a frame; return its multipart part, or None when skipped."""
        now = time.monotonic()
        self.latest_jpeg = jpeg
        self._latest_mono = now
        self._fps.add(now)
        waiter = self._next_frame
        if waiter is not None:
            self._next_frame = None
            if not waiter.done():
                waiter.set_result(jpeg)
        snap = self._snapshot
        changes: dict[str, Any] = {
            "frames": snap.frames + 1,
            "last_frame_at": time.time(),
        }
        if snap.state is not StreamState.STREAMING:
            changes["state"] = StreamState.STREAMING
            changes.update(self._stats_changes())
        changes["fps"] = round(self._fps.fps(now), 1)
        max_fps = self.options.max_fps
        if max_fps > 0 and now - self._last_fanout_mono < 0.95 / max_fps:
            changes["frames_skipped"] = snap.frames_skipped + 1
            self._publish(**changes)
            return None
        self._last_fanout_mono = now
        self._publish(**changes)
        return encode_part(jpeg)

    @property
    def frame_interval(self) -> float | None:
        """Return the measured seconds between frames, if known."""
        fps = self._fps.fps(time.monotonic())
        return 1.0 / fps if fps > 0 else None

    def _stall_threshold(self) -> float:
        interval = self.frame_interval
        return max(self.options.stall_s, 3 * interval if interval else 0.0)

    async def _upstream(self, disconnect: asyncio.Event) -> AsyncIterator[bytes]:
        """Yield the source's frames as multipart parts (the broadcaster's factory).

        Runs inside the broadcaster's upstream task. A restart cancels that
        task; the cancellation closes the source's connection (whatever it
        was waiting for, even a wedged read) and is taken back here, so the
        loop reconnects while viewers stay subscribed.
        """
        self._pump = asyncio.current_task()
        self._publish(upstream_starts=self._snapshot.upstream_starts + 1)
        self._watchdog = asyncio.get_running_loop().create_task(
            self._watch_stall(), name=f"printcam watchdog {self.key}"
        )
        try:
            while not disconnect.is_set():
                try:
                    async with contextlib.aclosing(
                        self.source.frames(disconnect)
                    ) as frames:
                        async for jpeg in frames:
                            part = self._on_frame(jpeg)
                            if part is not None:
                                yield part
                except asyncio.CancelledError:
                    if not self._take_back_restart():
                        raise
                else:
                    return
                _LOGGER.info("%s: restarting the camera connection", self.key)
                self.source.backoff.reset()
                self._set_state(StreamState.CONNECTING)
        finally:
            self._pump = None
            self._restart_requested = False
            self._watchdog.cancel()
            self._watchdog = None
            self._fps.clear()
            if self.failure is None:
                self._set_state(StreamState.IDLE)
            # else: auth_failed / unreachable stays shown until a new
            # upstream gets frames (credentials or certificate fixed).
            self._publish(fps=0.0)

    def _take_back_restart(self) -> bool:
        """Return True if the cancellation came from a restart alone."""
        task = self._pump
        if not self._restart_requested or task is None:
            return False
        self._restart_requested = False
        # Only our own cancel request is taken back; a shutdown that
        # cancelled the task too still ends it.
        return task.uncancel() == 0

    async def _watch_stall(self) -> None:
        """Mark the stream stalled when frames stop on an open connection."""
        while True:
            await asyncio.sleep(WATCHDOG_PERIOD_S)
            if self._snapshot.state is not StreamState.STREAMING:
                continue
            if time.monotonic() - self._latest_mono > self._stall_threshold():
                self._publish(state=StreamState.STALLED, fps=0.0)

    def restart(self) -> bool:
        """Close the upstream connection and open a new one, keeping viewers.

        Returns False when there is no upstream to restart (idle stream).
        """
        task = self._pump
        if task is None or task.done() or self._restart_requested:
            return task is not None and not task.done()
        self._restart_requested = True
        task.cancel()
        return True

    # --- subscribers ---------------------------------------------------------------

    async def _subscribe(self) -> tuple[fanout.MjpegBroadcaster, asyncio.Queue[bytes]]:
        """Subscribe to the live broadcaster, replacing a stopped one."""
        while True:
            if self._closed:
                raise RuntimeError("stream closed")
            bc = await fanout.get_or_create_broadcaster(
                self.key, self._upstream, grace_seconds=0
            )
            try:
                return bc, await bc.subscribe()
            except RuntimeError:
                await asyncio.sleep(0)

    async def iter_viewer(
        self, is_disconnected: Callable[[], Awaitable[bool]] | None = None
    ) -> AsyncGenerator[bytes]:
        """Yield multipart parts for one live viewer until it or we stop."""
        task = asyncio.current_task()
        if task is None:  # pragma: no cover - always called from a task
            raise RuntimeError("iter_viewer must run in a task")
        bc, queue = await self._subscribe()
        self._viewer_tasks.add(task)
        self._publish(viewers=len(self._viewer_tasks))
        try:
            async for chunk in fanout.iter_subscriber(bc, queue, is_disconnected):
                yield chunk
        finally:
            self._viewer_tasks.discard(task)
            self._publish(viewers=len(self._viewer_tasks))
            if not self._viewer_tasks and not self._closed:
                self._hold_for("grace", self.options.idle_grace_s)

    # --- the hold ------------------------------------------------------------------------

    @property
    def _hold_until(self) -> float:
        """Return when the hold ends (monotonic; inf while kept warm)."""
        if self._closed:
            return 0.0
        if self.options.keep_warm:
            return math.inf
        return max(self._holds.values(), default=0.0)

    def _hold_for(self, reason: str, seconds: float) -> None:
        """Hold the upstream open `seconds` from now for `reason`.

        Replaces that reason's earlier deadline (it may get shorter); the
        upstream stays open until the latest deadline of all reasons.
        """
        if self._closed:
            return
        self._holds[reason] = time.monotonic() + seconds
        self._hold_wake.set()
        self._ensure_hold_task()

    def _ensure_hold_task(self) -> None:
        if self._hold_until <= time.monotonic():
            return
        if self._hold_task is None or self._hold_task.done():
            self._hold_task = asyncio.get_running_loop().create_task(
                self._hold(), name=f"printcam hold {self.key}"
            )

    async def _hold(self) -> None:
        """Stay subscribed, discarding chunks, until the hold expires.

        Ends early when the upstream itself ends (the broadcaster stopped).
        """
        try:
            bc, queue = await self._subscribe()
        except RuntimeError:  # closed meanwhile
            return
        loop = asyncio.get_running_loop()
        reader = loop.create_task(self._drain(queue))
        try:
            while not reader.done():
                remaining = self._hold_until - time.monotonic()
                if remaining <= 0:
                    return
                self._hold_wake.clear()
                waker = loop.create_task(self._hold_wake.wait())
                await asyncio.wait(
                    {reader, waker},
                    timeout=None if math.isinf(remaining) else remaining,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                waker.cancel()
        finally:
            reader.cancel()
            await bc.unsubscribe(queue)

    @staticmethod
    async def _drain(queue: asyncio.Queue[bytes]) -> None:
        # The sentinel is part of the broadcaster's contract.
        while await queue.get() != fanout._UPSTREAM_GONE:  # noqa: SLF001
            pass

    def apply_options(self, options: StreamOptions) -> None:
        """Apply new options live (no reconnect needed)."""
        was_warm = self.options.keep_warm
        self.options = options
        if was_warm and not options.keep_warm:
            # Fall back to the grace window from now; stills served while
            # warm do not hold it open any longer than that.
            self._holds.clear()
            self._hold_for("grace", options.idle_grace_s)
        elif options.keep_warm and not was_warm:
            self._ensure_hold_task()

    def start_keep_warm(self) -> None:
        """Open the upstream now if keep-warm is on (at setup)."""
        self._ensure_hold_task()

    # --- stills ----------------------------------------------------------------------------

    def _latest_is_fresh(self) -> bool:
        if self.latest_jpeg is None or not self.running:
            return False
        interval = self.frame_interval or 0.0
        return time.monotonic() - self._latest_mono <= max(FRESH_STILL_S, 2 * interval)

    async def async_get_still(self, timeout: float = STILL_TIMEOUT) -> bytes | None:  # noqa: ASYNC109
        """Return a current JPEG without ever opening a second connection.

        Fresh latest frame: served as is. Otherwise, with a snapshot URL and
        no stream running, that URL is fetched. Otherwise the next frame of
        the shared upstream is awaited (starting it if needed); concurrent
        callers share one wait. A still that had to wait holds the upstream
        open for `still_hold_s`, and so does every still after it while that
        hold lasts (dashboard cards poll); a still served from a stream that
        live viewers keep open adds no hold.
        """
        if self._closed:
            return None
        if self._latest_is_fresh():
            # Polled stills keep the connection they started; a still taken
            # from a stream that viewers keep open holds nothing itself.
            if self._holds.get("still", 0.0) > time.monotonic():
                self._hold_for("still", self.options.still_hold_s)
            return self.latest_jpeg
        if self._still_fetcher is not None and not self.running:
            try:
                return await self._still_fetcher()
            except SourceError as err:
                _LOGGER.debug(
                    "%s: still URL failed (%s); using the stream", self.key, err
                )
        if self._next_frame is None or self._next_frame.done():
            self._next_frame = asyncio.get_running_loop().create_future()
        waiter = self._next_frame
        # Keep the upstream open at least while this still waits.
        self._hold_for("still", max(self.options.still_hold_s, timeout))
        try:
            async with asyncio.timeout(timeout):
                jpeg = await asyncio.shield(waiter)
        except TimeoutError:
            return self.latest_jpeg
        # Restart the hold clock from the moment the still was delivered.
        self._hold_for("still", self.options.still_hold_s)
        return jpeg

    async def async_stop_upstream(self) -> None:
        """Close the upstream now (viewers end); the next one reopens it."""
        self._holds.clear()
        self._hold_wake.set()
        await fanout.shutdown_broadcaster(self.key)

    # --- shutdown -----------------------------------------------------------------------------

    async def async_close(self) -> None:
        """Close every viewer, the hold and the upstream (idempotent)."""
        self._closed = True
        self._hold_wake.set()
        if self._next_frame is not None and not self._next_frame.done():
            self._next_frame.cancel()
        await fanout.shutdown_broadcaster(self.key)
        tasks = [t for t in (self._hold_task,) if t is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=1.0)
        # Viewers got the sentinel; one stuck writing to a slow client is
        # cancelled so unload finishes within a second.
        viewers = set(self._viewer_tasks)
        if viewers:
            _done, pending = await asyncio.wait(viewers, timeout=0.5)
            for task in pending:
                task.cancel()
        self._listeners.clear()
