"""Fan-out of one upstream byte stream to any number of subscribers.

A printer camera tolerates one or two clients, so every consumer of a
printer's stream (dashboard viewers, still polls, state entities) shares one
upstream connection through an `MjpegBroadcaster`:

* The upstream is opened when the first subscriber arrives (or a hold asks
  for it) and closed at one deadline that this broadcaster alone owns: the
  last subscriber leaving extends it by the grace period, and `hold_until`
  (stills, keep-warm, the startup probe) extends it further. Nothing
  subscribes just to keep the upstream open.
* Two kinds of subscriber. A *queue* (the contract's `subscribe`) is a
  bounded `asyncio.Queue`; a full one loses its *oldest* chunk, so a slow
  reader resumes on a current frame and never holds up the others. A *sink*
  (`attach`) is written to directly from the fan-out loop, one synchronous
  call per chunk with no task wake-up: an HTTP viewer writes the chunk to its
  socket right there (see `viewer.py`), which is as little per-viewer work as
  a raw socket server does.
* A subscriber joining a running stream gets the latest chunk at once.
* A broadcaster is single use: once stopped it refuses subscribers, and the
  registry (`get_or_create_broadcaster`) hands out a replacement that does not
  open its upstream until its predecessor's upstream has fully closed, so a
  one-client printer never sees two sockets, even across stop/restart races.
* State changes happen in synchronous code; nothing awaits or does I/O while
  holding the lock. Fan-out walks a snapshot of the subscriber lists.
* An upstream that ends or fails is counted, logged once and turned into the
  `_UPSTREAM_GONE` sentinel for every queue and `end()` for every sink; it is
  never raised into a viewer.

Module attributes prefixed with an underscore are read when used, so tests
can patch them. This module has no Home Assistant imports.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
import contextlib
from dataclasses import dataclass
import logging
import math
import time
from typing import Final, Protocol

_LOGGER = logging.getLogger(__name__)

_GRACE_SECONDS = 5.0
"""How long an upstream stays open after its last subscriber left."""

_SUBSCRIBER_QUEUE_SIZE = 4
"""Chunks a subscriber may have waiting before its oldest one is dropped."""

_UPSTREAM_GONE = b""
"""Sentinel put in each queue when the upstream ends or on shutdown."""

_UPSTREAM_STOP_SECONDS = 0.25
"""How long a stopping upstream may take to end by itself once `disconnect`
is set, before its task is cancelled."""

_PREDECESSOR_WAIT_SECONDS = 5.0
"""Upper bound on how long a replacement waits for its predecessor's
upstream to close before opening its own."""

Factory = Callable[[asyncio.Event], AsyncIterator[bytes]]
"""Opens the upstream. Called with a `disconnect` event; the iterator must
end promptly once it is set."""


DELIVERED: Final = 1
"""`Sink.deliver` result: the chunk was written."""
SKIPPED: Final = 0
"""`Sink.deliver` result: the sink could not take it now (slow viewer)."""
GONE: Final = -1
"""`Sink.deliver` result: the sink is finished; detach it."""


class Sink(Protocol):
    """A subscriber that takes each chunk synchronously, in the fan-out loop."""

    def deliver(self, chunk: bytes) -> int:
        """Take one chunk now; return DELIVERED, SKIPPED or GONE. Never block."""

    def end(self) -> None:
        """End the sink: the upstream is gone or the broadcaster shut down."""


@dataclass(slots=True)
class BroadcasterStats:
    """Counters a broadcaster keeps for diagnostics and entities."""

    chunks_in: int = 0
    """Chunks received from the upstream."""
    chunks_delivered: int = 0
    """Chunks handed to subscribers (one per subscriber per chunk)."""
    chunks_dropped: int = 0
    """Chunks a slow subscriber lost: dropped from a full queue, or skipped
    by a sink whose socket had not drained."""
    upstream_starts: int = 0
    """Times the factory was called."""
    upstream_failures: int = 0
    """Times the upstream raised instead of ending cleanly."""


class MjpegBroadcaster:
    """Share one upstream byte stream among many subscribers."""

    def __init__(
        self, key: str, factory: Factory, *, grace_seconds: float | None = None
    ) -> None:
        """Create an idle broadcaster; the upstream opens on first need.

        `grace_seconds` overrides the module's `_GRACE_SECONDS` for this
        instance; it can be changed later through `grace_seconds`.
        """
        self.key = key
        self._factory = factory
        self.grace_seconds = grace_seconds
        self._lock = asyncio.Lock()
        self._subscribers: list[asyncio.Queue[bytes]] = []
        self._sinks: list[Sink] = []
        self._stopped = False
        self._disconnect = asyncio.Event()
        self._pump_task: asyncio.Task[None] | None = None
        self._closer: asyncio.Task[None] | None = None
        self._hold_deadline = 0.0
        """Monotonic time until which holds keep the upstream open."""
        self._grace_deadline = 0.0
        """Monotonic time the grace after the last subscriber left ends."""
        self._timer: asyncio.TimerHandle | None = None
        self._latest: bytes | None = None
        self._predecessor: MjpegBroadcaster | None = None
        self.stats = BroadcasterStats()
        self.last_error: str | None = None
        """Why the upstream last failed (exception type and message)."""

    def __repr__(self) -> str:
        """Describe the broadcaster for logs and test failures."""
        state = "stopped" if self._stopped else "running" if self.running else "idle"
        return (
            f"<MjpegBroadcaster {self.key!r} {state} "
            f"subscribers={self.subscriber_count}>"
        )

    @property
    def subscriber_count(self) -> int:
        """Return how many subscribers (queues and sinks) are attached now."""
        return len(self._subscribers) + len(self._sinks)

    @property
    def sinks(self) -> tuple[Sink, ...]:
        """Return the attached sinks (for diagnostics)."""
        return tuple(self._sinks)

    @property
    def stopped(self) -> bool:
        """Return True once the broadcaster was shut down or its upstream ended."""
        return self._stopped

    @property
    def running(self) -> bool:
        """Return True while an upstream task exists and has not finished."""
        return self._pump_task is not None and not self._pump_task.done()

    @property
    def latest(self) -> bytes | None:
        """Return the most recent chunk from the upstream, if any."""
        return self._latest

    @property
    def close_at(self) -> float | None:
        """Return when an unwatched upstream closes (monotonic), None if watched."""
        if self._stopped or self.subscriber_count:
            return None
        return max(self._hold_deadline, self._grace_deadline)

    # --- subscribers --------------------------------------------------------

    async def subscribe(self) -> asyncio.Queue[bytes]:
        """Attach a new queue subscriber and return its queue.

        Starts the upstream if it is not running and cancels a pending idle
        teardown. Raises RuntimeError when the broadcaster is stopped: fetch a
        fresh one from `get_or_create_broadcaster` and retry.
        """
        queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=_SUBSCRIBER_QUEUE_SIZE)
        async with self._lock:
            self._check_open()
            self._subscribers.append(queue)
            if not self._start() and self._latest is not None:
                # A late joiner starts on the current frame, not the next one.
                queue.put_nowait(self._latest)
        return queue

    async def unsubscribe(self, queue: asyncio.Queue[bytes]) -> int:
        """Detach a queue subscriber; return how many subscribers remain.

        Idempotent: detaching an unknown queue changes nothing and returns the
        current count. The last subscriber leaving starts the grace period.
        """
        async with self._lock:
            with contextlib.suppress(ValueError):
                self._subscribers.remove(queue)
                self._after_leave()
            return self.subscriber_count

    def attach(self, sink: Sink) -> None:
        """Attach a sink: it gets the latest chunk now and every chunk after.

        Synchronous (nothing to wait for). Raises RuntimeError when stopped.
        """
        self._check_open()
        self._sinks.append(sink)
        if not self._start() and self._latest is not None:
            self._deliver(sink, self._latest)

    def detach(self, sink: Sink) -> int:
        """Detach a sink (idempotent); return how many subscribers remain."""
        with contextlib.suppress(ValueError):
            self._sinks.remove(sink)
            self._after_leave()
        return self.subscriber_count

    def _check_open(self) -> None:
        if self._stopped:
            raise RuntimeError(f"broadcaster {self.key!r} is stopped")

    def _start(self) -> bool:
        """Start the upstream if needed; return True if it was started now."""
        self._cancel_timer()
        if self._pump_task is not None:
            return False
        self._pump_task = asyncio.get_running_loop().create_task(
            self._pump(), name=f"printcam upstream {self.key}"
        )
        return True

    def _after_leave(self) -> None:
        """Start the grace period when the last subscriber has left."""
        if self.subscriber_count or self._stopped:
            return
        grace = _GRACE_SECONDS if self.grace_seconds is None else self.grace_seconds
        self._grace_deadline = time.monotonic() + grace
        self._schedule_close()

    # --- the close deadline ------------------------------------------------

    def hold_until(self, deadline: float) -> None:
        """Keep the upstream open until `deadline` (monotonic; inf: until changed).

        Replaces the previous hold, so a hold can also be shortened (keep-warm
        turned off). A hold in the future opens the upstream if it is not
        running. Ignored once stopped.
        """
        if self._stopped:
            return
        self._hold_deadline = deadline
        if deadline > time.monotonic() and self._pump_task is None:
            self._start()
        self._schedule_close()

    def _schedule_close(self) -> None:
        """(Re)arm the one timer that closes an unwatched upstream."""
        self._cancel_timer()
        close_at = self.close_at
        if close_at is None or self._pump_task is None or math.isinf(close_at):
            return
        loop = asyncio.get_running_loop()
        # loop.call_at uses the loop's clock; convert from time.monotonic().
        when = loop.time() + (close_at - time.monotonic())
        self._timer = loop.call_at(when, self._on_close_timer)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_close_timer(self) -> None:
        self._timer = None
        close_at = self.close_at
        if close_at is None:  # pragma: no cover - joining cancels the timer
            return
        if time.monotonic() < close_at:  # pragma: no cover - timing
            # The loop runs timers up to its clock resolution early.
            self._schedule_close()
            return
        _LOGGER.debug("%s: no subscribers and no hold, closing", self.key)
        self._mark_stopped(flush=True)
        self._closer = asyncio.get_running_loop().create_task(
            self._close_upstream(), name=f"printcam close {self.key}"
        )

    # --- shutting down -------------------------------------------------------

    async def force_shutdown(self) -> None:
        """Stop now: end every subscriber and close the upstream.

        Idempotent. Afterwards each queue's next `get()` returns
        `_UPSTREAM_GONE`, every sink was ended, and the upstream has fully
        closed when this returns.
        """
        async with self._lock:
            self._mark_stopped(flush=True)
        await self._close_upstream()

    async def wait_closed(self) -> None:
        """Wait until this broadcaster's upstream and its predecessors' are closed."""
        task = self._pump_task
        if task is not None and task is not asyncio.current_task():
            await asyncio.wait({task})
        predecessor = self._predecessor
        if predecessor is not None:
            await predecessor.wait_closed()
            # A stopped broadcaster never reopens: drop the link so a chain of
            # replacements does not keep every old instance alive.
            self._predecessor = None

    def _mark_stopped(self, *, flush: bool) -> None:
        """Stop accepting subscribers and tell each one.

        Synchronous: runs under the lock, from the close timer or from the
        pump's own exit path. With `flush` the queues are emptied first, so
        the sentinel is the very next item; otherwise it goes after what is
        already queued.
        """
        self._cancel_timer()
        if self._stopped:
            return
        self._stopped = True
        self._disconnect.set()
        for queue in list(self._subscribers):
            if flush:
                while not queue.empty():
                    queue.get_nowait()
            self._put_latest(queue, _UPSTREAM_GONE)
        sinks, self._sinks = self._sinks, []
        for sink in sinks:
            try:
                sink.end()
            except Exception:
                _LOGGER.exception("%s: ending a viewer failed", self.key)

    async def _close_upstream(self) -> None:
        """Wait for the upstream task to end, cancelling it if it lingers."""
        task = self._pump_task
        if task is None or task is asyncio.current_task():
            return
        if not task.done():
            await asyncio.wait({task}, timeout=_UPSTREAM_STOP_SECONDS)
        if not task.done():
            task.cancel()
            await asyncio.wait({task})

    # --- fan-out -----------------------------------------------------------------

    def _put_latest(self, queue: asyncio.Queue[bytes], chunk: bytes) -> None:
        """Enqueue without blocking, dropping the oldest chunk when full."""
        if queue.full():
            queue.get_nowait()
            self.stats.chunks_dropped += 1
        queue.put_nowait(chunk)

    def _deliver(self, sink: Sink, chunk: bytes) -> None:
        """Hand one chunk to one sink outside the fan-out loop (a late joiner)."""
        result = sink.deliver(chunk)
        if result == DELIVERED:
            self.stats.chunks_delivered += 1
        elif result == SKIPPED:
            self.stats.chunks_dropped += 1
        else:
            self.detach(sink)

    def _fan_out(self, chunk: bytes) -> None:
        """Deliver one chunk to every subscriber (synchronous, no awaits)."""
        self._latest = chunk
        stats = self.stats
        stats.chunks_in += 1
        if self._subscribers:
            for queue in tuple(self._subscribers):
                self._put_latest(queue, chunk)
            stats.chunks_delivered += len(self._subscribers)
        if not self._sinks:
            return
        delivered = 0
        gone: list[Sink] | None = None
        for sink in tuple(self._sinks):
            result = sink.deliver(chunk)
            if result > 0:
                delivered += 1
            elif result == 0:
                stats.chunks_dropped += 1
            else:
                gone = [sink] if gone is None else [*gone, sink]
        stats.chunks_delivered += delivered
        if gone is not None:
            for sink in gone:
                self.detach(sink)

    async def _pump(self) -> None:
        """Run the upstream and fan its chunks out until stopped or it ends."""
        try:
            await self._wait_for_predecessor()
            if self._disconnect.is_set():
                return
            self.stats.upstream_starts += 1
            upstream = self._factory(self._disconnect)
            try:
                async for chunk in upstream:
                    if self._disconnect.is_set():
                        break
                    if chunk:
                        self._fan_out(chunk)
            finally:
                aclose: Callable[[], Awaitable[object]] | None = getattr(
                    upstream, "aclose", None
                )
                if aclose is not None:
                    await aclose()
            if not self._disconnect.is_set():
                _LOGGER.info("%s: upstream ended", self.key)
        except asyncio.CancelledError:
            raise
        except Exception as err:  # noqa: BLE001 - reported, never raised into viewers
            self.stats.upstream_failures += 1
            self.last_error = f"{type(err).__name__}: {err}"
            _LOGGER.warning("%s: upstream failed: %s", self.key, self.last_error)
        finally:
            # Whatever ended the upstream, every subscriber learns it now.
            self._mark_stopped(flush=False)

    async def _wait_for_predecessor(self) -> None:
        """Hold the upstream back until the previous one for this key closed."""
        predecessor = self._predecessor
        if predecessor is None:
            return
        try:
            async with asyncio.timeout(_PREDECESSOR_WAIT_SECONDS):
                await predecessor.wait_closed()
        except TimeoutError:
            _LOGGER.warning(
                "%s: previous upstream still closing after %ss; opening anyway",
                self.key,
                _PREDECESSOR_WAIT_SECONDS,
            )
        self._predecessor = None


async def iter_subscriber(
    bc: MjpegBroadcaster,
    queue: asyncio.Queue[bytes],
    is_disconnected: Callable[[], Awaitable[bool]] | None = None,
) -> AsyncIterator[bytes]:
    """Yield a subscriber's chunks until the upstream is gone.

    Also stops when the optional `is_disconnected()` returns True (checked
    after each chunk). Always unsubscribes on the way out, including when the
    consumer stops iterating early.
    """
    try:
        while True:
            chunk = await queue.get()
            if chunk == _UPSTREAM_GONE:
                return
            yield chunk
            if is_disconnected is not None and await is_disconnected():
                return
    finally:
        await bc.unsubscribe(queue)


_BROADCASTERS: dict[str, MjpegBroadcaster] = {}
_REGISTRY_LOCK = asyncio.Lock()


def get_broadcaster(key: str) -> MjpegBroadcaster | None:
    """Return the registered broadcaster for `key` (live or stopped), if any."""
    return _BROADCASTERS.get(key)


async def get_or_create_broadcaster(
    key: str, factory: Factory, *, grace_seconds: float | None = None
) -> MjpegBroadcaster:
    """Return the live broadcaster for `key`, replacing a stopped one.

    A replacement remembers the stopped instance and will not open its own
    upstream until that one's has fully closed.
    """
    async with _REGISTRY_LOCK:
        return live_broadcaster(key, factory, grace_seconds=grace_seconds)


def live_broadcaster(
    key: str, factory: Factory, *, grace_seconds: float | None = None
) -> MjpegBroadcaster:
    """Return the live broadcaster for `key` now (`get_or_create_broadcaster`).

    Safe without the lock: it does not await, so nothing interleaves.
    """
    current = _BROADCASTERS.get(key)
    if current is not None and not current.stopped:
        return current
    fresh = MjpegBroadcaster(key, factory, grace_seconds=grace_seconds)
    fresh._predecessor = current  # noqa: SLF001 - same module
    _BROADCASTERS[key] = fresh
    return fresh


async def shutdown_broadcaster(key: str) -> None:
    """Force-shut the broadcaster for `key`, if any, and forget it."""
    bc = _BROADCASTERS.get(key)
    if bc is None:
        return
    await bc.force_shutdown()
    await bc.wait_closed()
    async with _REGISTRY_LOCK:
        if _BROADCASTERS.get(key) is bc:
            del _BROADCASTERS[key]


async def shutdown_all_broadcasters() -> None:
    """Force-shut every registered broadcaster."""
    await asyncio.gather(*(shutdown_broadcaster(key) for key in list(_BROADCASTERS)))
