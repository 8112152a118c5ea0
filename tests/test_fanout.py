"""Tests for the fan-out broadcaster (custom_components/printcam/fanout.py).

Each of the ten behaviours of the broadcaster contract in design.md and each
of the five improvements has at least one test here; the gating race and the
stress test measure connection overlap with a recording factory.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
import contextlib
import logging
import math
import random
import time
from typing import Any

import pytest

from custom_components.printcam import fanout
from custom_components.printcam.fanout import (
    _UPSTREAM_GONE,
    MjpegBroadcaster,
    get_or_create_broadcaster,
    iter_subscriber,
    shutdown_all_broadcasters,
    shutdown_broadcaster,
)

WAIT = 2.0  # upper bound for anything that should happen "promptly"


class RecordingUpstream:
    """A factory that records when each upstream opens and closes.

    In `fed` mode chunks come from `feed` (the test controls the pace); in
    `fast` mode it produces numbered chunks every `interval` seconds. Closing
    takes `close_delay` seconds, like a socket that needs a round trip.
    """

    def __init__(
        self,
        *,
        interval: float | None = None,
        limit: int | None = None,
        close_delay: float | Callable[[], float] = 0.0,
        fail_after: int | None = None,
    ) -> None:
        self.interval = interval
        self.limit = limit
        self.close_delay = close_delay
        self.fail_after = fail_after
        self.feed: asyncio.Queue[bytes] = asyncio.Queue()
        self.calls = 0
        self.open = 0
        self.max_open = 0
        self.events: list[tuple[str, int, float]] = []
        self.sent: list[bytes] = []

    def __call__(self, disconnect: asyncio.Event) -> AsyncIterator[bytes]:
        self.calls += 1
        return self._run(self.calls, disconnect)

    async def _next(self, n: int, disconnect: asyncio.Event) -> bytes | None:
        if self.interval is None:
            getter = asyncio.ensure_future(self.feed.get())
            stopper = asyncio.ensure_future(disconnect.wait())
            try:
                await asyncio.wait(
                    {getter, stopper}, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                getter.cancel()
                stopper.cancel()
                await asyncio.wait({getter, stopper})
            if getter.cancelled() or getter.exception() is not None:
                return None
            return getter.result()
        await asyncio.sleep(self.interval)
        return f"u{self.calls}-c{n}".encode()

    async def _run(self, ident: int, disconnect: asyncio.Event) -> AsyncIterator[bytes]:
        self.open += 1
        self.max_open = max(self.max_open, self.open)
        self.events.append(("open", ident, time.monotonic()))
        n = 0
        try:
            while not disconnect.is_set():
                if self.limit is not None and n >= self.limit:
                    return
                if self.fail_after is not None and n >= self.fail_after:
                    raise ConnectionResetError("printer hung up")
                chunk = await self._next(n, disconnect)
                if chunk is None:
                    return
                n += 1
                self.sent.append(chunk)
                yield chunk
        finally:
            try:
                delay = (
                    self.close_delay()
                    if callable(self.close_delay)
                    else self.close_delay
                )
                if delay:
                    await asyncio.sleep(delay)
            finally:
                self.open -= 1
                self.events.append(("close", ident, time.monotonic()))

    @property
    def closed_all(self) -> bool:
        return self.open == 0


async def until(predicate: Callable[[], bool], timeout: float = WAIT) -> None:
    """Wait until `predicate()` is true, failing after `timeout`."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.001)


async def collect(
    bc: MjpegBroadcaster,
    queue: asyncio.Queue[bytes],
    is_disconnected: Callable[[], Awaitable[bool]] | None = None,
) -> list[bytes]:
    return [chunk async for chunk in iter_subscriber(bc, queue, is_disconnected)]


@pytest.fixture
def fast_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fanout, "_GRACE_SECONDS", 0.05)


# --- the ten behaviours of the contract ---------------------------------------


async def test_1_one_subscriber_receives_every_chunk_in_order() -> None:
    up = RecordingUpstream(interval=0.001, limit=50)
    bc = MjpegBroadcaster("printer", up)
    queue = await bc.subscribe()
    got = await asyncio.wait_for(collect(bc, queue), WAIT)
    assert got == up.sent
    assert len(got) == 50
    assert bc.stopped  # the upstream ended by itself


async def test_2_subscribers_share_one_upstream_each_chunk_once() -> None:
    up = RecordingUpstream()
    bc = MjpegBroadcaster("printer", up)
    queues = [await bc.subscribe() for _ in range(5)]
    results: list[list[bytes]] = [[] for _ in queues]

    async def read(queue: asyncio.Queue[bytes], into: list[bytes]) -> None:
        async for chunk in iter_subscriber(bc, queue):
            into.append(chunk)

    readers = [
        asyncio.create_task(read(q, r)) for q, r in zip(queues, results, strict=True)
    ]
    for i in range(30):
        up.feed.put_nowait(b"chunk%d" % i)
        # Wait for what is asserted: every reader holds this chunk. (Waiting
        # for the feed to empty raced: the upstream had taken the last chunk
        # but not fanned it out when force_shutdown flushed the queues.)
        await until(lambda i=i: all(len(r) == i + 1 for r in results))
    await bc.force_shutdown()
    await asyncio.gather(*readers)
    assert up.calls == 1
    expected = [b"chunk%d" % i for i in range(30)]
    for got in results:
        assert got == expected
    assert bc.stats.chunks_in == 30
    assert bc.stats.chunks_delivered == 150
    assert bc.stats.upstream_starts == 1


async def test_3_a_stuck_subscriber_never_blocks_the_others() -> None:
    up = RecordingUpstream()
    bc = MjpegBroadcaster("printer", up)
    stuck = await bc.subscribe()
    reader_q = await bc.subscribe()
    received: list[bytes] = []
    sizes: list[int] = []

    async def read() -> None:
        async for chunk in iter_subscriber(bc, reader_q):
            received.append(chunk)
            sizes.append(stuck.qsize())

    reader = asyncio.create_task(read())
    for i in range(40):
        up.feed.put_nowait(b"c%d" % i)
        await until(lambda i=i: len(received) == i + 1)
    assert received == [b"c%d" % i for i in range(40)]
    assert max(sizes) <= fanout._SUBSCRIBER_QUEUE_SIZE
    # Improvement: the oldest chunks were dropped, the newest kept.
    assert [stuck.get_nowait() for _ in range(stuck.qsize())] == [
        b"c36",
        b"c37",
        b"c38",
        b"c39",
    ]
    assert bc.stats.chunks_dropped == 36
    await bc.force_shutdown()
    await reader


async def test_4_last_leave_tears_down_after_grace(fast_grace: None) -> None:
    up = RecordingUpstream(interval=0.005)
    bc = MjpegBroadcaster("printer", up)
    queue = await bc.subscribe()
    await until(lambda: up.open == 1)
    started = time.monotonic()
    assert await bc.unsubscribe(queue) == 0
    assert not bc.stopped
    await until(lambda: bc.stopped and up.closed_all)
    # Measured from the recorded close, not from a sleep that load stretches.
    closed_at = next(t for what, _, t in up.events if what == "close")
    assert closed_at - started >= fanout._GRACE_SECONDS
    assert bc.subscriber_count == 0
    assert up.calls == 1


async def test_5_joining_within_grace_keeps_the_upstream(fast_grace: None) -> None:
    up = RecordingUpstream(interval=0.005)
    bc = MjpegBroadcaster("printer", up)
    first = await bc.subscribe()
    await until(lambda: up.open == 1)
    await bc.unsubscribe(first)
    await asyncio.sleep(0)  # the teardown is pending, not yet due
    second = await bc.subscribe()
    await asyncio.sleep(fanout._GRACE_SECONDS * 2)
    assert not bc.stopped
    assert up.calls == 1
    assert up.open == 1
    assert await asyncio.wait_for(second.get(), WAIT)
    await bc.force_shutdown()


async def test_6_force_shutdown_is_idempotent_and_prompt() -> None:
    up = RecordingUpstream()
    bc = MjpegBroadcaster("printer", up)
    queues = [await bc.subscribe() for _ in range(3)]
    for i in range(3):
        up.feed.put_nowait(b"x%d" % i)
    await until(lambda: queues[0].qsize() == 3)
    # Concurrent and repeated calls all return, nothing raises.
    await asyncio.gather(bc.force_shutdown(), bc.force_shutdown())
    await bc.force_shutdown()
    assert bc.stopped
    assert up.closed_all
    for queue in queues:
        # The very next get() is the sentinel, even with chunks pending.
        assert await asyncio.wait_for(queue.get(), 0.1) == _UPSTREAM_GONE


async def test_6_force_shutdown_cancels_an_upstream_that_ignores_disconnect(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(fanout, "_UPSTREAM_STOP_SECONDS", 0.05)
    closed = asyncio.Event()

    async def deaf(disconnect: asyncio.Event) -> AsyncIterator[bytes]:
        try:
            yield b"first"
            await asyncio.sleep(3600)  # a read that never returns
            yield b"never"  # pragma: no cover
        finally:
            closed.set()

    bc = MjpegBroadcaster("printer", deaf)
    queue = await bc.subscribe()
    assert await asyncio.wait_for(queue.get(), WAIT) == b"first"
    started = time.monotonic()
    await bc.force_shutdown()
    assert closed.is_set()
    assert time.monotonic() - started < 1.0
    assert await queue.get() == _UPSTREAM_GONE


async def test_7_iter_subscriber_stops_on_disconnect_and_unsubscribes() -> None:
    up = RecordingUpstream(interval=0.001)
    bc = MjpegBroadcaster("printer", up)
    other = await bc.subscribe()
    queue = await bc.subscribe()
    calls = 0

    async def is_disconnected() -> bool:
        nonlocal calls
        calls += 1
        return calls >= 3

    got = await asyncio.wait_for(collect(bc, queue, is_disconnected), WAIT)
    assert len(got) == 3  # checked after each chunk
    assert bc.subscriber_count == 1
    assert await bc.unsubscribe(queue) == 1  # already gone: idempotent
    await bc.unsubscribe(other)
    await bc.force_shutdown()


async def test_7_iter_subscriber_unsubscribes_when_consumer_stops_early() -> None:
    up = RecordingUpstream(interval=0.001)
    bc = MjpegBroadcaster("printer", up)
    queue = await bc.subscribe()
    async with contextlib.aclosing(iter_subscriber(bc, queue)) as chunks:
        async for _chunk in chunks:
            break
    assert bc.subscriber_count == 0
    await bc.force_shutdown()


async def test_7_iter_subscriber_ends_on_sentinel() -> None:
    up = RecordingUpstream()
    bc = MjpegBroadcaster("printer", up)
    queue = await bc.subscribe()
    reader = asyncio.create_task(collect(bc, queue))
    up.feed.put_nowait(b"one")
    await until(lambda: bc.stats.chunks_in == 1 and queue.empty())
    await bc.force_shutdown()
    assert await asyncio.wait_for(reader, WAIT) == [b"one"]
    assert bc.subscriber_count == 0


async def test_8_subscribe_on_stopped_raises() -> None:
    bc = MjpegBroadcaster("printer", RecordingUpstream())
    await bc.force_shutdown()
    with pytest.raises(RuntimeError, match="stopped"):
        await bc.subscribe()


async def test_9_registry_returns_live_and_replaces_stopped() -> None:
    up = RecordingUpstream()
    first = await get_or_create_broadcaster("p1", up)
    assert await get_or_create_broadcaster("p1", up) is first
    other = await get_or_create_broadcaster("p2", up)
    assert other is not first
    await first.force_shutdown()
    second = await get_or_create_broadcaster("p1", up)
    assert second is not first
    assert not second.stopped
    await shutdown_broadcaster("p1")
    await shutdown_broadcaster("p1")  # unknown key: nothing to do
    assert "p1" not in fanout._BROADCASTERS
    await shutdown_all_broadcasters()
    assert not fanout._BROADCASTERS
    assert other.stopped


async def test_10_unsubscribe_counts_atomically_and_is_idempotent() -> None:
    bc = MjpegBroadcaster("printer", RecordingUpstream())
    a = await bc.subscribe()
    b = await bc.subscribe()
    counts = await asyncio.gather(bc.unsubscribe(a), bc.unsubscribe(b))
    assert sorted(counts) == [0, 1]
    assert await bc.unsubscribe(a) == 0
    assert bc.subscriber_count == 0
    await bc.force_shutdown()


# --- the five improvements ------------------------------------------------------


async def test_full_queue_drops_oldest_and_keeps_newest() -> None:
    up = RecordingUpstream()
    bc = MjpegBroadcaster("printer", up)
    queue = await bc.subscribe()
    for i in range(10):
        up.feed.put_nowait(b"%d" % i)
    await until(lambda: bc.stats.chunks_in == 10)
    assert queue.qsize() == fanout._SUBSCRIBER_QUEUE_SIZE
    assert [queue.get_nowait() for _ in range(4)] == [b"6", b"7", b"8", b"9"]
    assert bc.stats.chunks_dropped == 6
    await bc.force_shutdown()


async def test_late_joiner_gets_latest_chunk_at_once() -> None:
    up = RecordingUpstream()
    bc = MjpegBroadcaster("printer", up)
    first = await bc.subscribe()
    up.feed.put_nowait(b"old")
    up.feed.put_nowait(b"latest")
    await until(lambda: first.qsize() == 2)
    late = await bc.subscribe()
    assert late.get_nowait() == b"latest"
    assert bc.latest == b"latest"
    up.feed.put_nowait(b"next")
    assert await asyncio.wait_for(late.get(), WAIT) == b"next"
    await bc.force_shutdown()


async def test_replacement_waits_for_predecessor_to_close() -> None:
    up = RecordingUpstream(interval=0.002, close_delay=0.2)
    old = await get_or_create_broadcaster("printer", up)
    await old.subscribe()
    await until(lambda: up.open == 1)
    closing = asyncio.create_task(old.force_shutdown())
    await asyncio.sleep(0)  # the old upstream is now closing (0.2 s)
    assert old.stopped
    new = await get_or_create_broadcaster("printer", up)
    assert new is not old
    queue = await new.subscribe()
    assert await asyncio.wait_for(queue.get(), WAIT)
    await closing
    assert up.max_open == 1
    kinds = [(kind, ident) for kind, ident, _ in up.events]
    assert kinds == [("open", 1), ("close", 1), ("open", 2)]
    await shutdown_broadcaster("printer")
    assert up.closed_all


async def test_replacement_wait_is_bounded(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(fanout, "_PREDECESSOR_WAIT_SECONDS", 0.05)
    old = await get_or_create_broadcaster("printer", RecordingUpstream())
    await old.force_shutdown()
    never = asyncio.Event()

    async def stuck_close() -> None:
        await never.wait()

    monkeypatch.setattr(old, "wait_closed", stuck_close)
    up = RecordingUpstream(interval=0.002)
    new = await get_or_create_broadcaster("printer", up)
    started = time.monotonic()
    queue = await new.subscribe()
    assert await asyncio.wait_for(queue.get(), WAIT)
    assert 0.05 <= time.monotonic() - started < 1.0
    assert "still closing" in caplog.text
    await shutdown_broadcaster("printer")


async def test_replacement_of_an_unstarted_broadcaster_still_waits_for_the_chain() -> (
    None
):
    up = RecordingUpstream(interval=0.002, close_delay=0.2)
    first = await get_or_create_broadcaster("printer", up)
    await first.subscribe()
    await until(lambda: up.open == 1)
    closing = asyncio.create_task(first.force_shutdown())
    await asyncio.sleep(0)
    # A replacement that is stopped before it ever opened...
    second = await get_or_create_broadcaster("printer", up)
    await second.force_shutdown()
    # ...must not let the third skip the first's close.
    third = await get_or_create_broadcaster("printer", up)
    await third.subscribe()
    await until(lambda: up.calls == 2)
    await closing
    assert up.max_open == 1
    await shutdown_broadcaster("printer")


class ProbedLock:
    """An asyncio lock that notes whether it is held across a suspension."""

    def __init__(self) -> None:
        self.held = False
        self.acquisitions = 0

    async def __aenter__(self) -> None:
        assert not self.held
        self.held = True
        self.acquisitions += 1

    async def __aexit__(self, *exc: object) -> None:
        self.held = False


async def test_no_awaits_while_holding_the_lock(fast_grace: None) -> None:
    """A probe task runs at every suspension; it must never see the lock held."""
    up = RecordingUpstream(interval=0.001, close_delay=0.01)
    bc = MjpegBroadcaster("printer", up)
    lock = ProbedLock()
    bc._lock = lock  # type: ignore[assignment]
    seen_held = 0
    running = True

    async def probe() -> None:
        nonlocal seen_held
        while running:
            seen_held += lock.held
            await asyncio.sleep(0)

    probe_task = asyncio.create_task(probe())
    queues = [await bc.subscribe() for _ in range(3)]
    await asyncio.sleep(0.01)
    await asyncio.gather(*(bc.unsubscribe(q) for q in queues))
    queue = await bc.subscribe()  # within grace
    await bc.unsubscribe(queue)
    await until(lambda: bc.stopped)  # grace teardown
    await bc.force_shutdown()
    running = False
    await probe_task
    assert lock.acquisitions >= 9
    assert seen_held == 0


async def test_upstream_failure_is_reported_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    up = RecordingUpstream(interval=0.001, fail_after=3)
    bc = MjpegBroadcaster("printer", up)
    queue = await bc.subscribe()
    with caplog.at_level(logging.INFO, logger=fanout.__name__):
        got = await asyncio.wait_for(collect(bc, queue), WAIT)
    assert len(got) == 3
    assert bc.stopped
    assert bc.stats.upstream_failures == 1
    assert bc.last_error == "ConnectionResetError: printer hung up"
    records = [r for r in caplog.records if r.name == fanout.__name__]
    assert len(records) == 1
    assert "printer hung up" in records[0].getMessage()


async def test_factory_raising_at_call_is_reported() -> None:
    def broken(disconnect: asyncio.Event) -> AsyncIterator[bytes]:
        raise OSError("no route to printer")

    bc = MjpegBroadcaster("printer", broken)
    queue = await bc.subscribe()
    assert await asyncio.wait_for(queue.get(), WAIT) == _UPSTREAM_GONE
    assert bc.stats.upstream_failures == 1
    assert bc.stats.upstream_starts == 1


async def test_upstream_that_ends_is_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    up = RecordingUpstream(interval=0.001, limit=2)
    bc = MjpegBroadcaster("printer", up)
    queue = await bc.subscribe()
    with caplog.at_level(logging.INFO, logger=fanout.__name__):
        # Pending chunks are kept: the sentinel comes after them.
        assert await asyncio.wait_for(collect(bc, queue), WAIT) == up.sent
    assert bc.stats.upstream_failures == 0
    assert "upstream ended" in caplog.text


async def test_empty_chunks_are_not_mistaken_for_the_sentinel() -> None:
    async def with_empty(disconnect: asyncio.Event) -> AsyncIterator[bytes]:
        for chunk in (b"a", b"", b"b"):
            yield chunk

    bc = MjpegBroadcaster("printer", with_empty)
    queue = await bc.subscribe()
    assert await asyncio.wait_for(collect(bc, queue), WAIT) == [b"a", b"b"]


async def test_repr_and_running() -> None:
    up = RecordingUpstream()
    bc = MjpegBroadcaster("printer", up)
    assert "idle" in repr(bc)
    assert not bc.running
    await bc.subscribe()
    assert "running" in repr(bc)
    assert bc.running
    await bc.force_shutdown()
    assert "stopped" in repr(bc)


# --- gating under races and stress ---------------------------------------------


async def _subscribe(key: str, factory: Any) -> tuple[MjpegBroadcaster, Any]:
    while True:
        bc = await get_or_create_broadcaster(key, factory)
        try:
            return bc, await bc.subscribe()
        except RuntimeError:
            await asyncio.sleep(0)


async def test_randomised_races_never_open_two_upstreams(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """100 random interleavings of stop, restart and subscribe."""
    monkeypatch.setattr(fanout, "_GRACE_SECONDS", 0.002)
    monkeypatch.setattr(fanout, "_UPSTREAM_STOP_SECONDS", 0.005)
    total_opens = 0
    for seed in range(100):
        rng = random.Random(seed)
        up = RecordingUpstream(
            interval=0.0005, close_delay=lambda rng=rng: rng.uniform(0, 0.004)
        )
        key = f"race{seed}"
        held: list[tuple[MjpegBroadcaster, Any]] = []

        async def op(
            rng: random.Random = rng,
            up: Any = up,
            key: str = key,
            held: list[tuple[MjpegBroadcaster, Any]] = held,
        ) -> None:
            await asyncio.sleep(rng.uniform(0, 0.01))
            choice = rng.random()
            if choice < 0.45:
                held.append(await _subscribe(key, up))
            elif choice < 0.65 and held:
                bc, queue = held.pop(rng.randrange(len(held)))
                await bc.unsubscribe(queue)
            elif choice < 0.85:
                await shutdown_broadcaster(key)
            else:  # restart: stop and immediately subscribe again
                await asyncio.gather(shutdown_broadcaster(key), _subscribe(key, up))

        await asyncio.gather(*(op() for _ in range(12)))
        await shutdown_broadcaster(key)
        assert up.max_open <= 1, f"seed {seed}: {up.events}"
        assert up.closed_all
        # Replay the open/close log: never two open at the same moment.
        depth = 0
        for kind, _ident, _ts in up.events:
            depth += 1 if kind == "open" else -1
            assert 0 <= depth <= 1, f"seed {seed}: {up.events}"
        total_opens += up.calls
    assert total_opens > 100  # the races did restart upstreams many times


async def test_stress_200_subscribers_join_and_leave(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """200 subscribers come and go at random for 3 s against a fast upstream."""
    monkeypatch.setattr(fanout, "_GRACE_SECONDS", 0.01)
    monkeypatch.setattr(fanout, "_UPSTREAM_STOP_SECONDS", 0.01)
    up = RecordingUpstream(interval=0.001, close_delay=0.002)
    rng = random.Random(1234)
    deadline = time.monotonic() + 3.0
    present: list[tuple[MjpegBroadcaster, Any]] = []
    received = 0

    async def viewer(idx: int) -> None:
        nonlocal received
        while True:
            bc, queue = await _subscribe("stress", up)
            for _ in range(rng.randint(1, 20)):
                try:
                    chunk = await asyncio.wait_for(queue.get(), 0.5)
                except TimeoutError:
                    break
                if chunk == _UPSTREAM_GONE:
                    break
                received += 1
            if time.monotonic() >= deadline and idx % 2 == 0:
                present.append((bc, queue))
                return
            await bc.unsubscribe(queue)
            if time.monotonic() >= deadline:
                return
            await asyncio.sleep(rng.uniform(0, 0.03))

    async with asyncio.timeout(20):
        await asyncio.gather(*(viewer(i) for i in range(200)))
    live = [pair for pair in present if not pair[0].stopped]
    assert live, "some subscribers should be attached at shutdown"
    await shutdown_all_broadcasters()
    for _bc, queue in present:
        # Every subscriber still attached gets the sentinel (possibly after
        # chunks it had not read yet).
        items = [queue.get_nowait() for _ in range(queue.qsize())]
        assert items[-1] == _UPSTREAM_GONE
    assert up.max_open == 1
    assert up.closed_all
    assert received > 1000
    assert up.calls >= 1
    me = asyncio.current_task()
    leftover = [t for t in asyncio.all_tasks() if t is not me]
    assert not leftover, leftover


async def test_plain_async_iterator_without_aclose() -> None:
    class Numbers:
        def __init__(self) -> None:
            self.n = 0

        def __aiter__(self) -> Numbers:
            return self

        async def __anext__(self) -> bytes:
            if self.n == 3:
                raise StopAsyncIteration
            self.n += 1
            return b"%d" % self.n

    bc = MjpegBroadcaster("printer", lambda disconnect: Numbers())
    queue = await bc.subscribe()
    assert await asyncio.wait_for(collect(bc, queue), WAIT) == [b"1", b"2", b"3"]


# --- sinks: direct writes from the fan-out loop ---------------------------------


class FakeSink:
    """A sink recording what it was handed; `mode` decides what it answers."""

    def __init__(self, mode: int = fanout.DELIVERED) -> None:
        self.mode = mode
        self.got: list[bytes] = []
        self.ended = 0

    def deliver(self, chunk: bytes) -> int:
        if self.mode == fanout.DELIVERED:
            self.got.append(chunk)
        return self.mode

    def end(self) -> None:
        self.ended += 1


async def test_sinks_get_each_chunk_in_the_loop_with_queues_alongside() -> None:
    up = RecordingUpstream()
    bc = MjpegBroadcaster("printer", up)
    sinks = [FakeSink() for _ in range(3)]
    for sink in sinks:
        bc.attach(sink)
    queue = await bc.subscribe()
    assert bc.subscriber_count == 4
    for i in range(5):
        up.feed.put_nowait(b"c%d" % i)
        await until(lambda i=i: bc.stats.chunks_in == i + 1)
        # Handed over synchronously: no task had to run for the sinks.
        assert all(sink.got[-1] == b"c%d" % i for sink in sinks)
    assert [queue.get_nowait() for _ in range(queue.qsize())][-1] == b"c4"
    assert bc.stats.chunks_delivered == 5 * 4
    await bc.force_shutdown()
    assert [sink.ended for sink in sinks] == [1, 1, 1]
    assert bc.subscriber_count == 1  # the queue is told by its sentinel
    assert up.calls == 1


async def test_sink_joining_late_gets_the_latest_chunk_at_once() -> None:
    up = RecordingUpstream()
    bc = MjpegBroadcaster("printer", up)
    first = FakeSink()
    bc.attach(first)
    up.feed.put_nowait(b"frame")
    await until(lambda: first.got == [b"frame"])
    late = FakeSink()
    bc.attach(late)
    assert late.got == [b"frame"]
    await bc.force_shutdown()


async def test_slow_sinks_are_counted_and_finished_ones_detached() -> None:
    up = RecordingUpstream()
    bc = MjpegBroadcaster("printer", up)
    good, slow, gone = FakeSink(), FakeSink(fanout.SKIPPED), FakeSink(fanout.GONE)
    for sink in (good, slow, gone):
        bc.attach(sink)
    up.feed.put_nowait(b"one")
    await until(lambda: bc.stats.chunks_in == 1)
    assert bc.sinks == (good, slow)
    up.feed.put_nowait(b"two")
    await until(lambda: bc.stats.chunks_in == 2)
    assert good.got == [b"one", b"two"]
    assert bc.stats.chunks_dropped == 2  # the slow sink, twice
    assert bc.stats.chunks_delivered == 2
    # A late joiner that is already gone is detached at once as well; one
    # that cannot take the latest chunk yet is counted and stays.
    bc.attach(FakeSink(fanout.GONE))
    assert bc.sinks == (good, slow)
    late_slow = FakeSink(fanout.SKIPPED)
    bc.attach(late_slow)
    assert bc.sinks == (good, slow, late_slow)
    assert bc.stats.chunks_dropped == 3
    await bc.force_shutdown()


async def test_a_sink_failing_to_end_does_not_stop_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Broken(FakeSink):
        def end(self) -> None:
            raise RuntimeError("boom")

    bc = MjpegBroadcaster("printer", RecordingUpstream())
    broken, fine = Broken(), FakeSink()
    bc.attach(broken)
    bc.attach(fine)
    with caplog.at_level(logging.ERROR, logger=fanout.__name__):
        await bc.force_shutdown()
    assert fine.ended == 1
    assert "ending a viewer failed" in caplog.text


async def test_last_sink_leaving_starts_the_grace(fast_grace: None) -> None:
    up = RecordingUpstream(interval=0.005)
    bc = MjpegBroadcaster("printer", up)
    sink = FakeSink()
    bc.attach(sink)
    await until(lambda: len(sink.got) >= 2)
    left = time.monotonic()
    assert bc.detach(sink) == 0
    assert bc.detach(sink) == 0  # idempotent
    await until(lambda: bc.stopped and up.closed_all)
    closed_at = next(t for what, _, t in up.events if what == "close")
    assert closed_at - left >= fanout._GRACE_SECONDS
    with pytest.raises(RuntimeError, match="stopped"):
        bc.attach(FakeSink())


# --- one deadline: holds ------------------------------------------------------


async def test_a_hold_opens_the_upstream_and_closes_it_at_its_deadline() -> None:
    up = RecordingUpstream(interval=0.005)
    bc = MjpegBroadcaster("printer", up, grace_seconds=0)
    held = time.monotonic()
    bc.hold_until(held + 0.2)
    await until(lambda: up.open == 1)
    assert bc.subscriber_count == 0  # nothing subscribed to keep it open
    await until(lambda: bc.stopped and up.closed_all)
    closed_at = next(t for what, _, t in up.events if what == "close")
    assert closed_at - held >= 0.2
    assert bc.latest is not None  # frames flowed for stills meanwhile
    bc.hold_until(time.monotonic() + 10)  # ignored once stopped
    assert up.calls == 1


async def test_a_hold_extends_past_the_grace_and_can_be_shortened() -> None:
    up = RecordingUpstream(interval=0.005)
    bc = MjpegBroadcaster("printer", up, grace_seconds=0.05)
    queue = await bc.subscribe()
    bc.hold_until(math.inf)  # keep-warm
    await bc.unsubscribe(queue)
    assert bc.close_at == math.inf
    await asyncio.sleep(0.15)  # well past the grace: held, still open
    assert not bc.stopped
    assert up.open == 1
    shortened = time.monotonic()
    bc.hold_until(shortened + 0.05)  # keep-warm off: grace from now
    await until(lambda: bc.stopped and up.closed_all)
    assert time.monotonic() - shortened >= 0.05
    assert up.calls == 1


async def test_a_subscriber_during_a_hold_keeps_it_open_past_the_deadline() -> None:
    up = RecordingUpstream(interval=0.005)
    bc = MjpegBroadcaster("printer", up, grace_seconds=0.05)
    bc.hold_until(time.monotonic() + 0.05)
    sink = FakeSink()
    bc.attach(sink)
    assert bc.close_at is None  # watched: no deadline applies
    await asyncio.sleep(0.15)
    assert not bc.stopped
    bc.detach(sink)
    await until(lambda: bc.stopped and up.closed_all)
    assert up.calls == 1


async def test_moving_a_hold_later_rearms_the_timer() -> None:
    up = RecordingUpstream(interval=0.005)
    bc = MjpegBroadcaster("printer", up, grace_seconds=0)
    bc.hold_until(time.monotonic() + 0.05)
    extended = time.monotonic()
    bc.hold_until(extended + 0.2)  # before the first deadline, whatever the load
    await until(lambda: bc.stopped and up.closed_all)
    assert time.monotonic() - extended >= 0.2
