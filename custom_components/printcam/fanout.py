"""Fan-out of one upstream byte stream to any number of subscribers.

A printer camera tolerates one or two clients, so every consumer of a
printer's stream (dashboard viewers, still polls, state entities) shares one
upstream connection through an `MjpegBroadcaster`:

* The upstream is opened by calling the broadcaster's factory when the first
  subscriber arrives, and torn down `_GRACE_SECONDS` after the last one left.
* Each subscriber owns a bounded queue. A full queue loses its *oldest* chunk,
  so a slow viewer resumes on a current frame and never holds up the others.
* A subscriber joining a running stream gets the latest chunk at once.
* A broadcaster is single use: once stopped it refuses subscribers, and the
  registry (`get_or_create_broadcaster`) hands out a replacement that does not
  open its upstream until its predecessor's upstream has fully closed, so a
  one-client printer never sees two sockets, even across stop/restart races.
* State changes happen in synchronous code under the lock; nothing awaits or
  does I/O while holding it. Fan-out is `put_nowait` over a snapshot of the
  subscriber list.
* An upstream that ends or fails is counted, logged once and turned into the
  `_UPSTREAM_GONE` sentinel for every subscriber; it is never raised into a
  viewer.

Module attributes prefixed with an underscore are read when used, so tests
can patch them. This module has no Home Assistant imports.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
import contextlib
from dataclasses import dataclass
import logging

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


@dataclass(slots=True)
class BroadcasterStats:
    """Counters a broadcaster keeps for diagnostics and entities."""

    chunks_in: int = 0
    """Chunks received from the upstream."""
    chunks_delivered: int = 0
    """Chunks put into subscriber queues (one per subscriber per chunk)."""
    chunks_dropped: int = 0
    """Chunks dropped from full subscriber queues (slow viewers)."""
    upstream_starts: int = 0
    """Times the factory was called."""
    upstream_failures: int = 0
    """Times the upstream raised instead of ending cleanly."""


class MjpegBroadcaster:
    """Share one upstream byte stream among many subscriber queues."""

    def __init__(
        self, key: str, factory: Factory, *, grace_seconds: float | None = None
    ) -> None:
        """Create an idle broadcaster; the upstream opens on first subscribe.

        `grace_seconds` overrides the module's `_GRACE_SECONDS` for this
        instance (a caller that keeps its own hold on the upstream passes 0).
        """
        self.key = key
        self._factory = factory
        self._grace_seconds = grace_seconds
        self._lock = asyncio.Lock()
        self._subscribers: list[asyncio.Queue[bytes]] = []
        self._stopped = False
        self._disconnect = asyncio.Event()
        self._pump_task: asyncio.Task[None] | None = None
        self._grace_task: asyncio.Task[None] | None = None
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
            f"subscribers={len(self._subscribers)}>"
        )

    @property
    def subscriber_count(self) -> int:
        """Return how many subscribers are attached now."""
        return len(self._subscribers)

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

    async def subscribe(self) -> asyncio.Queue[bytes]:
        """Attach a new subscriber and return its queue.

        Starts the upstream if it is not running and cancels a pending idle
        teardown. Raises RuntimeError when the broadcaster is stopped: fetch a
        fresh one from `get_or_create_broadcaster` and retry.
        """
        queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=_SUBSCRIBER_QUEUE_SIZE)
        async with self._lock:
            if self._stopped:
                raise RuntimeError(f"broadcaster {self.key!r} is stopped")
            self._subscribers.append(queue)
            if self._grace_task is not None:
                self._grace_task.cancel()
                self._grace_task = None
            if self._pump_task is None:
                self._pump_task = asyncio.get_running_loop().create_task(
                    self._pump(), name=f"printcam upstream {self.key}"
                )
            elif self._latest is not None:
                # A late joiner starts on the current frame, not the next one.
                queue.put_nowait(self._latest)
        return queue

    async def unsubscribe(self, queue: asyncio.Queue[bytes]) -> int:
        """Detach a subscriber; return how many remain.

        Idempotent: detaching an unknown queue changes nothing and returns the
        current count. The last subscriber leaving schedules the teardown.
        """
        async with self._lock:
            with contextlib.suppress(ValueError):
                self._subscribers.remove(queue)
            remaining = len(self._subscribers)
            if remaining == 0 and not self._stopped and self._grace_task is None:
                self._grace_task = asyncio.get_running_loop().create_task(
                    self._idle_teardown(), name=f"printcam grace {self.key}"
                )
        return remaining

    async def force_shutdown(self) -> None:
        """Stop now: end every subscriber and close the upstream.

        Idempotent. Afterwards each subscriber's next `get()` returns
        `_UPSTREAM_GONE`, and the upstream has fully closed when this returns.
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
        """Stop accepting subscribers and hand each one the sentinel.

        Synchronous: runs under the lock or from the pump's own exit path.
        With `flush` the queues are emptied first, so the sentinel is the
        very next item; otherwise it goes after what is already queued.
        """
        if self._grace_task is not None:
            if self._grace_task is not asyncio.current_task():
                self._grace_task.cancel()
            self._grace_task = None
        if self._stopped:
            return
        self._stopped = True
        self._disconnect.set()
        for queue in list(self._subscribers):
            if flush:
                while not queue.empty():
                    queue.get_nowait()
            self._put_latest(queue, _UPSTREAM_GONE)

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

    async def _idle_teardown(self) -> None:
        """Shut down once the grace window passes with no subscribers."""
        grace = _GRACE_SECONDS if self._grace_seconds is None else self._grace_seconds
        await asyncio.sleep(grace)
        async with self._lock:
            # subscribe() and force_shutdown() cancel this task, so this is a
            # guard against future changes rather than a reachable path.
            if self._subscribers or self._stopped:  # pragma: no cover
                return
            _LOGGER.debug("%s: no subscribers for %ss, closing", self.key, grace)
            self._mark_stopped(flush=True)
        await self._close_upstream()

    def _put_latest(self, queue: asyncio.Queue[bytes], chunk: bytes) -> None:
        """Enqueue without blocking, dropping the oldest chunk when full."""
        if queue.full():
            queue.get_nowait()
            self.stats.chunks_dropped += 1
        queue.put_nowait(chunk)

    def _fan_out(self, chunk: bytes) -> None:
        """Deliver one chunk to every subscriber (synchronous, no awaits)."""
        self._latest = chunk
        self.stats.chunks_in += 1
        subscribers = tuple(self._subscribers)
        for queue in subscribers:
            self._put_latest(queue, chunk)
        self.stats.chunks_delivered += len(subscribers)

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
