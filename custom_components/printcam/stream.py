"""The per-printer engine: source -> multipart parts -> broadcaster.

One `PrintCamStream` per config entry. It owns the broadcaster key, turns
each JPEG from the source into one multipart part (every viewer gets the same
bytes object), keeps the latest JPEG for stills, counts frames and measures
fps in plain fields, tracks the stream's state and tells listeners when it
*changes*: state, viewers, a failure, a restart. Nothing above the stream
runs per frame; the coordinator samples the counters (`snapshot`).

Who keeps the upstream open is the broadcaster's one deadline: live viewers
while they watch, the last one leaving extends it by `idle_grace_s` (the
broadcaster's grace), and the stream's holds extend it further: a still by
`still_hold_s` (dashboard cards poll a still every 10 s: one connection, not
one per poll), the startup probe likewise (its connection is the stream's
first, so Home Assistant starting with a dashboard open connects once), and
keep-warm until it is turned off.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
import contextlib
from dataclasses import dataclass, field
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
from .sources import (
    CannotConnect,
    FrameSource,
    InvalidAuth,
    SourceError,
    SourceEvents,
    SourceTimeout,
)
from .transform import FrameTransform, TransformError
from .viewer import TransportViewer

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
    def from_mapping(
        cls, options: Mapping[str, Any], camera: str | None = None
    ) -> StreamOptions:
        """Build from a config entry's options; missing keys get defaults.

        `camera` is the camera's key in an entry with several: its own
        keep-warm switch (`camera_option`).
        """
        return cls(
            max_fps=float(options.get(CONF_MAX_FPS, DEFAULT_MAX_FPS)),
            idle_grace_s=float(options.get(CONF_IDLE_GRACE_S, DEFAULT_IDLE_GRACE_S)),
            still_hold_s=float(options.get(CONF_STILL_HOLD_S, DEFAULT_STILL_HOLD_S)),
            stall_s=float(options.get(CONF_STALL_S, DEFAULT_STALL_S)),
            keep_warm=bool(
                options.get(camera_option(CONF_KEEP_WARM, camera), DEFAULT_KEEP_WARM)
            ),
        )


def camera_option(option: str, camera: str | None) -> str:
    """Return the entry option holding one camera's `option` (its switches).

    The entry's only camera uses the option itself; in an entry with
    several each camera has its own, ``<option>:<camera key>``.
    """
    return option if camera is None else f"{option}:{camera}"


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
    """Every frame lost on the way: `bad_frames` + `viewer_drops`."""
    bad_frames: int = 0
    """Bad frames or parts the source dropped (oversize, not JPEG, broken)."""
    viewer_drops: int = 0
    """Frames slow viewers skipped because their socket had not drained."""
    frames_skipped: int = 0
    """Frames left out to honour `max_fps`."""
    reconnects: int = 0
    upstream_starts: int = 0
    last_error: str | None = None


type SnapshotListener = Callable[[StreamSnapshot], None]
type FrameListener = Callable[[bytes, float], None]
type FailureHandler = Callable[[SourceError], None]


@dataclass(slots=True)
class _FpsMeter:
    """Frame rate over a sliding window of frame times."""

    window: float = FPS_WINDOW_S
    times: deque[float] = field(default_factory=deque)

    def add(self, now: float) -> None:
        times = self.times
        times.append(now)
        if now - times[0] > self.window:
            times.popleft()

    def fps(self, now: float) -> float:
        while self.times and now - self.times[0] > self.window:
            self.times.popleft()
        if len(self.times) < 2:
            return 0.0
        span = self.times[-1] - self.times[0]
        return (len(self.times) - 1) / span if span > 0 else 0.0

    def clear(self) -> None:
        self.times.clear()


@dataclass(slots=True)
class DeliveryTotals:
    """Fan-out counters summed over every broadcaster this stream had."""

    delivered: int = 0
    dropped: int = 0

    def add(self, stats: fanout.BroadcasterStats) -> None:
        """Add one broadcaster's counters."""
        self.delivered += stats.chunks_delivered
        self.dropped += stats.chunks_dropped


def _retrieve(task: asyncio.Task[Any]) -> None:
    """Mark a shared task's outcome as seen (its callers handle it)."""
    if not task.cancelled():
        task.exception()


class PrintCamStream(SourceEvents):
    """One printer's shared stream."""

    def __init__(
        self,
        key: str,
        source: FrameSource,
        options: StreamOptions | None = None,
        *,
        still_fetcher: Callable[[], Awaitable[bytes]] | None = None,
        transform: FrameTransform | None = None,
    ) -> None:
        """Wire the source to a broadcaster registered under `key`.

        `still_fetcher`, when given, fetches a still without the stream (the
        printer's snapshot URL); it is used only while the stream is down.
        `transform` turns every frame (and fetched still) once, in an
        executor, before anyone sees it: the printer's flip and rotation.
        """
        self.key = key
        self.transform = None if transform is None or transform.identity else transform
        self.frames_unturnable = 0
        """Frames dropped because the transform could not turn them."""
        self.source = source
        source.events = self
        self.options = options or StreamOptions()
        self._still_fetcher = still_fetcher
        self._still_fetch: asyncio.Task[bytes] | None = None
        """The one in-flight fetch of the snapshot URL, shared by callers."""
        self._listeners: list[SnapshotListener] = []
        self.on_failure: FailureHandler | None = None
        """Called with a permanent failure (credentials, certificate) once."""
        self._state = StreamState.IDLE
        self._closed = False
        # Frame counters: plain fields, sampled by `snapshot`.
        self.frames = 0
        self.frames_skipped = 0
        self.upstream_starts = 0
        self.reconnects = 0
        """Connections after the first within one upstream (drops, restarts)."""
        self._session_connected = False
        self.latest_jpeg: bytes | None = None
        self._latest_mono = 0.0
        self._latest_wall: float | None = None
        self._next_frame: asyncio.Future[bytes] | None = None
        self._probe: asyncio.Future[bytes] | None = None
        self._fps = _FpsMeter()
        self._last_fanout_mono = -math.inf
        # The broadcaster of the current upstream, and its predecessors' sums.
        self._bc: fanout.MjpegBroadcaster | None = None
        self._retired = DeliveryTotals()
        # Who watches, and what holds the upstream open besides them.
        self._viewer_tasks: set[asyncio.Task[Any]] = set()
        self._holds: dict[str, float] = {}
        """Why the upstream is held open: reason -> monotonic deadline."""
        self._pins: set[str] = set()
        """Who keeps the upstream open until they let go (recordings)."""
        self._frame_listeners: list[FrameListener] = []
        self._watchdog: asyncio.Task[None] | None = None
        self.failure: SourceError | None = None
        """The permanent error (credentials, certificate) that stopped the
        upstream. While it stands nothing connects to the printer again: the
        entry must be fixed (reauth, reconfigure) or reloaded, which builds
        a new stream. IP cameras lock accounts after repeated bad logins."""
        self._pump: asyncio.Task[Any] | None = None
        self._restart_requested = False

    # --- state and listeners ----------------------------------------------------

    @property
    def snapshot(self) -> StreamSnapshot:
        """Sample the stream now (cheap; nothing is kept per frame)."""
        streaming = self._state in (StreamState.STREAMING, StreamState.STALLED)
        fps = round(self._fps.fps(time.monotonic()), 1) if streaming else 0.0
        if self._state is StreamState.STALLED:
            fps = 0.0
        delivery = self.delivery
        bad = self.source.stats.dropped + self.frames_unturnable
        return StreamSnapshot(
            state=self._state,
            viewers=len(self._viewer_tasks),
            fps=fps,
            last_frame_at=self._latest_wall,
            frames=self.frames,
            frames_dropped=bad + delivery.dropped,
            bad_frames=bad,
            viewer_drops=delivery.dropped,
            frames_skipped=self.frames_skipped,
            reconnects=self.reconnects,
            upstream_starts=self.upstream_starts,
            last_error=self.source.stats.last_error,
        )

    @property
    def delivery(self) -> DeliveryTotals:
        """Return the fan-out counters over this stream's whole life."""
        totals = DeliveryTotals(self._retired.delivered, self._retired.dropped)
        if self._bc is not None:
            totals.add(self._bc.stats)
        return totals

    @property
    def broadcaster(self) -> fanout.MjpegBroadcaster | None:
        """Return the broadcaster of the current (or last) upstream."""
        return self._bc

    @property
    def state(self) -> StreamState:
        """Return the current stream state."""
        return self._state

    @property
    def viewers(self) -> int:
        """Return how many live viewers are watching."""
        return len(self._viewer_tasks)

    @property
    def running(self) -> bool:
        """Return True while an upstream connection is wanted and open."""
        bc = fanout.get_broadcaster(self.key)
        return bc is not None and bc.running and not bc.stopped

    @property
    def blocked(self) -> bool:
        """Return True while a permanent failure forbids connecting again."""
        return self.failure is not None

    def add_listener(self, listener: SnapshotListener) -> Callable[[], None]:
        """Call `listener(snapshot)` on every transition; return a remover.

        Transitions: the state, the viewer count, a connection failure, a
        restart. Never per frame.
        """
        self._listeners.append(listener)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                self._listeners.remove(listener)

        return remove

    def add_frame_listener(self, listener: FrameListener) -> Callable[[], None]:
        """Call `listener(jpeg, monotonic_time)` with every frame; return a remover.

        Every frame the printer sends, turned, before the `max_fps` cap
        (recordings keep the live rate). The listener runs on the event loop
        in the hot path: it must only keep a reference, never block.
        """
        self._frame_listeners.append(listener)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                self._frame_listeners.remove(listener)

        return remove

    def _notify(self) -> None:
        if not self._listeners:
            return
        snapshot = self.snapshot
        for listener in list(self._listeners):
            try:
                listener(snapshot)
            except Exception:
                _LOGGER.exception("%s: stream listener failed", self.key)

    def _set_state(self, state: StreamState) -> None:
        if state is not self._state:
            _LOGGER.debug("%s: %s -> %s", self.key, self._state, state)
            self._state = state
            self._notify()

    # --- SourceEvents: the source tells us what it does -----------------------

    def on_connecting(self, attempt: int) -> None:
        """Show connecting on a first attempt; keep a retry state on retries."""
        if attempt > 1 or self._state in (
            StreamState.RECONNECTING,
            StreamState.UNREACHABLE,
        ):
            return  # stay in reconnecting/unreachable until a frame comes
        self._set_state(StreamState.CONNECTING)

    def on_connected(self) -> None:
        """Count a reconnect; streaming itself starts with the first frame."""
        self.failure = None
        if self._session_connected:
            self.reconnects += 1
        self._session_connected = True

    def on_disconnected(
        self, error: SourceError | None, retry_in: float | None
    ) -> None:
        """Record why the connection ended (`retry_in` None: giving up)."""
        self._fps.clear()
        probe = self._probe
        conclusive = retry_in is None or error is None or error.conclusive
        if probe is not None and not probe.done() and conclusive:
            probe.set_exception(error or CannotConnect("the camera hung up"))
        if isinstance(error, InvalidAuth):
            state = StreamState.AUTH_FAILED
        elif self._state in (StreamState.STREAMING, StreamState.STALLED):
            # A printer that answered before and dropped is reconnecting; one
            # that never answered (or stopped answering) is unreachable.
            state = StreamState.RECONNECTING
        else:
            state = StreamState.UNREACHABLE
        if state is not self._state:
            _LOGGER.debug("%s: %s -> %s", self.key, self._state, state)
            self._state = state
        if retry_in is None and error is not None:
            self.failure = error
            if self.on_failure is not None:
                try:
                    self.on_failure(error)
                except Exception:
                    _LOGGER.exception("%s: failure handler failed", self.key)
        self._notify()  # a failure is a transition even in the same state

    # --- frames ------------------------------------------------------------------

    def _on_frame(self, jpeg: bytes) -> bytes | None:
        """Record a frame; return its multipart part, or None when skipped."""
        now = time.monotonic()
        self.latest_jpeg = jpeg
        self._latest_mono = now
        self._latest_wall = time.time()
        self.frames += 1
        self._fps.add(now)
        waiter = self._next_frame
        if waiter is not None:
            self._next_frame = None
            if not waiter.done():
                waiter.set_result(jpeg)
        if self._state is not StreamState.STREAMING:
            self._set_state(StreamState.STREAMING)
        for listener in self._frame_listeners:
            try:
                listener(jpeg, now)
            except Exception:
                _LOGGER.exception("%s: frame listener failed", self.key)
        max_fps = self.options.max_fps
        if max_fps > 0 and now - self._last_fanout_mono < 0.95 / max_fps:
            self.frames_skipped += 1
            return None
        self._last_fanout_mono = now
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
        fetch = self._still_fetch
        if fetch is not None and not fetch.done():
            # A one-client camera must not see the stream open while the
            # snapshot URL is being fetched: wait for that connection first.
            await asyncio.wait({fetch})
        self.upstream_starts += 1
        self._session_connected = False
        self._watchdog = asyncio.get_running_loop().create_task(
            self._watch_stall(), name=f"printcam watchdog {self.key}"
        )
        try:
            while not disconnect.is_set():
                try:
                    async with contextlib.aclosing(
                        self.source.frames(disconnect)
                    ) as frames:
                        async for raw in frames:
                            jpeg = raw
                            if self.transform is not None:
                                if (turned := await self._turn(raw)) is None:
                                    continue
                                jpeg = turned
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

    async def _turn(self, jpeg: bytes) -> bytes | None:
        """Return the frame turned (in an executor), None if it is broken."""
        transform = self.transform
        assert transform is not None  # noqa: S101 - callers check
        try:
            return await asyncio.get_running_loop().run_in_executor(
                None, transform.apply, jpeg
            )
        except TransformError as err:
            self.frames_unturnable += 1
            _LOGGER.debug("%s: frame dropped: %s", self.key, err)
            return None

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
            if self._state is not StreamState.STREAMING:
                continue
            if time.monotonic() - self._latest_mono > self._stall_threshold():
                self._set_state(StreamState.STALLED)

    def restart(self) -> bool:
        """Close the upstream connection and open a new one, keeping viewers.

        Returns False when there is no upstream to restart (idle stream).
        """
        task = self._pump
        if task is None or task.done() or self._restart_requested:
            return task is not None and not task.done()
        self._restart_requested = True
        task.cancel()
        self._notify()
        return True

    # --- the broadcaster and its deadline -----------------------------------

    def _broadcaster(self) -> fanout.MjpegBroadcaster:
        """Return the live broadcaster, replacing a stopped one."""
        if self._closed:
            raise RuntimeError("stream closed")
        if self.failure is not None and (self._bc is None or self._bc.stopped):
            raise RuntimeError(f"camera refused: {self.failure.reason}")
        bc = fanout.live_broadcaster(
            self.key, self._upstream, grace_seconds=self.options.idle_grace_s
        )
        if bc is not self._bc:
            if self._bc is not None:
                self._retired.add(self._bc.stats)
            self._bc = bc
        return bc

    def _hold_deadline(self) -> float:
        """Return until when holds keep the upstream (monotonic; inf: warm)."""
        if self.options.keep_warm or self._pins:
            return math.inf
        return max(self._holds.values(), default=0.0)

    def _hold_for(self, reason: str, seconds: float) -> None:
        """Hold the upstream open `seconds` from now for `reason`, opening it.

        Replaces that reason's earlier deadline (it may get shorter); the
        broadcaster closes at the latest deadline of all reasons, or when
        the grace after the last viewer ends, whichever is later.
        """
        if self._closed:  # a still delivered as the stream closed
            return
        self._holds[reason] = time.monotonic() + seconds
        self._broadcaster().hold_until(self._hold_deadline())

    def pin(self, reason: str) -> None:
        """Keep the upstream open for `reason` until `unpin`, opening it now.

        A recording's hold: it outlives `still_hold_s`, the keep-warm
        switch and a stopped upstream (calling again reopens it). Nothing
        opens while a permanent failure stands.
        """
        if self._closed:
            return
        self._pins.add(reason)
        if not self.blocked:
            self._broadcaster().hold_until(math.inf)

    def unpin(self, reason: str) -> None:
        """Let go of `reason`'s hold: the upstream closes after the grace."""
        if reason not in self._pins:
            return
        self._pins.discard(reason)
        if not self._pins:
            self._holds["grace"] = time.monotonic() + self.options.idle_grace_s
            self._apply_hold()

    def _apply_hold(self) -> None:
        """Tell the live broadcaster (if any) the current hold deadline."""
        bc = self._bc
        if bc is not None and not bc.stopped:
            bc.hold_until(self._hold_deadline())

    def apply_options(self, options: StreamOptions) -> None:
        """Apply new options live (no reconnect needed)."""
        was_warm = self.options.keep_warm
        self.options = options
        bc = self._bc
        if bc is not None and not bc.stopped:
            bc.grace_seconds = options.idle_grace_s
        if was_warm and not options.keep_warm:
            # Fall back to the grace window from now; stills served while
            # warm do not hold it open any longer than that.
            self._holds.clear()
            self._holds["grace"] = time.monotonic() + options.idle_grace_s
            self._apply_hold()
        elif options.keep_warm and not was_warm:
            self.start_keep_warm()

    def start_keep_warm(self) -> None:
        """Open the upstream now if keep-warm is on (at setup)."""
        if self.options.keep_warm and not self._closed and not self.blocked:
            self._broadcaster().hold_until(math.inf)

    # --- viewers ---------------------------------------------------------------

    async def async_watch(self, viewer: TransportViewer) -> None:
        """Serve one live viewer, written to from the fan-out, until it ends.

        Raises RuntimeError when the stream is closed.
        """
        task = asyncio.current_task()
        if task is None:  # pragma: no cover - always called from a task
            raise RuntimeError("async_watch must run in a task")
        bc = self._broadcaster()
        bc.attach(viewer)
        self._viewer_joined(task)
        try:
            await viewer.wait()
        finally:
            bc.detach(viewer)
            self._viewer_left(task)

    def _viewer_joined(self, task: asyncio.Task[Any]) -> None:
        self._viewer_tasks.add(task)
        self._notify()

    def _viewer_left(self, task: asyncio.Task[Any]) -> None:
        self._viewer_tasks.discard(task)
        self._notify()

    async def _subscribe(self) -> tuple[fanout.MjpegBroadcaster, asyncio.Queue[bytes]]:
        """Subscribe a queue to the live broadcaster."""
        while True:
            bc = self._broadcaster()
            try:
                return bc, await bc.subscribe()
            except RuntimeError:  # stopped while we waited for its lock
                await asyncio.sleep(0)

    async def iter_viewer(
        self, is_disconnected: Callable[[], Awaitable[bool]] | None = None
    ) -> AsyncGenerator[bytes]:
        """Yield multipart parts for one queued consumer until it or we stop.

        For consumers that need to await between parts (a recorder, a
        test); HTTP viewers use `async_watch`.
        """
        task = asyncio.current_task()
        if task is None:  # pragma: no cover - always called from a task
            raise RuntimeError("iter_viewer must run in a task")
        bc, queue = await self._subscribe()
        self._viewer_joined(task)
        try:
            async for chunk in fanout.iter_subscriber(bc, queue, is_disconnected):
                yield chunk
        finally:
            self._viewer_left(task)

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
        if self.blocked:
            # No login with known-bad credentials: the last frame or nothing.
            return self.latest_jpeg
        if self._latest_is_fresh():
            # Polled stills keep the connection they started; a still taken
            # from a stream that viewers keep open holds nothing itself.
            if self._holds.get("still", 0.0) > time.monotonic():
                self._hold_for("still", self.options.still_hold_s)
            return self.latest_jpeg
        if self._still_fetcher is not None and not self.running:
            try:
                jpeg = await self._fetch_still(self._still_fetcher)
                if self.transform is None:
                    return jpeg
                if (turned := await self._turn(jpeg)) is not None:
                    return turned
            except InvalidAuth as err:
                self._refused(err)
                return self.latest_jpeg
            except SourceError as err:
                _LOGGER.debug(
                    "%s: still URL failed (%s); using the stream", self.key, err
                )
        waiter = self._frame_waiter()
        # Keep the upstream open at least while this still waits.
        self._hold_for("still", max(self.options.still_hold_s, timeout))
        try:
            async with asyncio.timeout(timeout):
                jpeg = await asyncio.shield(waiter)
        except TimeoutError:
            return self.latest_jpeg
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if waiter.cancelled() and task is not None and not task.cancelling():
                return self.latest_jpeg  # the stream closed under the still
            raise
        # Restart the hold clock from the moment the still was delivered.
        self._hold_for("still", self.options.still_hold_s)
        return jpeg

    async def _fetch_still(self, fetcher: Callable[[], Awaitable[bytes]]) -> bytes:
        """Fetch the snapshot URL once for every concurrent caller."""
        task = self._still_fetch
        if task is None or task.done():

            async def fetch() -> bytes:
                return await fetcher()

            task = self._still_fetch = asyncio.get_running_loop().create_task(
                fetch(), name=f"printcam still {self.key}"
            )
            # Every caller may have given up (timeout): the error is still seen.
            task.add_done_callback(_retrieve)
        return await asyncio.shield(task)

    def _refused(self, error: SourceError) -> None:
        """Record a permanent failure seen outside the stream (a still)."""
        if self.failure is None:
            self.on_disconnected(error, None)

    def _frame_waiter(self) -> asyncio.Future[bytes]:
        """Return the future the next frame resolves, shared by every waiter."""
        if self._next_frame is None or self._next_frame.done():
            self._next_frame = asyncio.get_running_loop().create_future()
        return self._next_frame

    async def async_probe(self, timeout: float) -> bytes:  # noqa: ASYNC109
        """Open the upstream and wait for its first frame (the startup probe).

        The connection stays open afterwards as a still would hold it
        (`still_hold_s`), so the first viewer or still reuses it. Raises the
        source's error when the printer refuses or fails (a one-off early
        close that only a second attempt explains is waited through), and
        `SourceTimeout` when no frame comes within `timeout`.
        """
        probe = self._probe = asyncio.get_running_loop().create_future()
        waiter = self._frame_waiter()
        self._hold_for("still", max(self.options.still_hold_s, timeout))
        try:
            async with asyncio.timeout(timeout):
                done, _ = await asyncio.wait(
                    {probe, waiter}, return_when=asyncio.FIRST_COMPLETED
                )
                if probe in done:
                    probe.result()  # raises the source's error
                jpeg = waiter.result()
        except TimeoutError as err:
            raise SourceTimeout(f"no frame within {timeout:g} s") from err
        finally:
            self._probe = None
            if not probe.done():
                probe.cancel()
        self._hold_for("still", self.options.still_hold_s)
        return jpeg

    async def async_stop_upstream(self) -> None:
        """Close the upstream now (viewers end); the next one reopens it.

        A still waiting for the next frame gets the latest one at once: the
        connection it waited on is gone (and a config flow stopped it to
        talk to the printer alone).
        """
        self._holds.clear()
        waiter = self._next_frame
        if waiter is not None and not waiter.done():
            waiter.cancel()
        await fanout.shutdown_broadcaster(self.key)

    # --- shutdown -----------------------------------------------------------------------------

    async def async_close(self) -> None:
        """Close every viewer, the holds and the upstream (idempotent)."""
        self._closed = True
        self._holds.clear()
        self._pins.clear()
        self._frame_listeners.clear()
        for future in (self._next_frame, self._probe, self._still_fetch):
            if future is not None and not future.done():
                future.cancel()
        if self._still_fetch is not None:
            await asyncio.wait({self._still_fetch})
        await fanout.shutdown_broadcaster(self.key)
        # Viewers were ended; one stuck writing to a slow client is
        # cancelled so unload finishes within a second.
        viewers = set(self._viewer_tasks)
        if viewers:
            _done, pending = await asyncio.wait(viewers, timeout=0.5)
            for task in pending:
                task.cancel()
        self._listeners.clear()
        self.on_failure = None
