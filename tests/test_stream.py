"""The per-entry stream engine with a scripted in-memory source."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

import pytest

from custom_components.printcam import stream as stream_mod
from custom_components.printcam.mjpeg import MjpegParser
from custom_components.printcam.sources import (
    CannotConnect,
    FrameSource,
    InvalidAuth,
    SourceError,
    SourceTimeout,
)
from custom_components.printcam.sources.base import Backoff
from custom_components.printcam.stream import (
    PrintCamStream,
    StreamOptions,
    StreamSnapshot,
    StreamState,
)
from custom_components.printcam.transform import FrameTransform, Orientation
from printer_sim.jpeg import numbered_jpeg

from .conftest import until
from .test_transform import corners_shown, quadrants, size_of


class ScriptedSource(FrameSource):
    """A source whose connections are scripted by the test.

    Each connection takes frames from `feed` until it gets an exception (raised
    as the connection's failure) or None (the camera hangs up).
    """

    family = "test"

    def __init__(self) -> None:
        super().__init__()
        self.backoff = Backoff(initial=0.01, cap=0.02)
        self.feed: asyncio.Queue[bytes | Exception | None] = asyncio.Queue()
        self.connects = 0
        self.open = 0
        self.max_open = 0
        self.refuse: Exception | None = None

    @property
    def host(self) -> str:
        return "scripted"

    async def connect(self) -> AsyncGenerator[bytes]:
        if self.refuse is not None:
            raise self.refuse
        self.connects += 1
        self.open += 1
        self.max_open = max(self.max_open, self.open)
        try:
            self._mark_connected()
            while True:
                item = await self.feed.get()
                if item is None:
                    return
                if isinstance(item, Exception):
                    raise item
                yield item
        finally:
            self.open -= 1


@pytest.fixture
async def source() -> ScriptedSource:
    return ScriptedSource()


@pytest.fixture
async def stream(source: ScriptedSource) -> AsyncGenerator[PrintCamStream]:
    s = PrintCamStream("entry1", source, StreamOptions(idle_grace_s=0.05))
    yield s
    await s.async_close()
    assert source.open == 0


async def _viewer(stream: PrintCamStream, into: list[bytes]) -> None:
    parser = MjpegParser()
    async for part in stream.iter_viewer():
        into.extend(parser.feed(part))


async def test_viewer_gets_frames_and_state_follows(
    stream: PrintCamStream, source: ScriptedSource
) -> None:
    seen: list[StreamSnapshot] = []
    stream.add_listener(seen.append)
    got: list[bytes] = []
    task = asyncio.create_task(_viewer(stream, got))
    await until(lambda: stream.state is StreamState.CONNECTING)
    frames = [numbered_jpeg(i) for i in range(5)]
    for i, frame in enumerate(frames):
        source.feed.put_nowait(frame)
        await until(lambda i=i: len(got) == i + 1)
    assert got == frames
    assert stream.state is StreamState.STREAMING
    assert stream.viewers == 1
    assert stream.snapshot.frames == 5
    assert stream.snapshot.last_frame_at is not None
    states = [s.state for s in seen]
    assert states.index(StreamState.CONNECTING) < states.index(StreamState.STREAMING)
    task.cancel()
    await asyncio.wait({task})
    await until(lambda: stream.state is StreamState.IDLE)
    assert stream.viewers == 0


async def test_max_fps_skips_frames_before_fanout(
    source: ScriptedSource,
) -> None:
    stream = PrintCamStream("e", source, StreamOptions(max_fps=2))
    got: list[bytes] = []
    task = asyncio.create_task(_viewer(stream, got))
    for i in range(10):
        source.feed.put_nowait(numbered_jpeg(i))
    await until(lambda: stream.snapshot.frames == 10)
    await asyncio.sleep(0.05)
    assert len(got) == 1  # ten frames within a few ms: one passes a 2 fps cap
    assert stream.snapshot.frames_skipped == 9
    assert stream.latest_jpeg == numbered_jpeg(9)  # stills still see every frame
    await stream.async_close()
    await asyncio.wait({task})


async def test_drop_then_reconnect_counts_and_states(
    stream: PrintCamStream, source: ScriptedSource
) -> None:
    got: list[bytes] = []
    task = asyncio.create_task(_viewer(stream, got))
    source.feed.put_nowait(numbered_jpeg(1))
    await until(lambda: stream.state is StreamState.STREAMING)
    seen: list[StreamState] = []
    stream.add_listener(lambda s: seen.append(s.state))
    source.feed.put_nowait(CannotConnect("printer hung up"))
    await until(lambda: StreamState.RECONNECTING in seen)
    source.feed.put_nowait(numbered_jpeg(2))
    await until(lambda: len(got) == 2)
    assert stream.state is StreamState.STREAMING
    assert stream.snapshot.reconnects == 1
    assert stream.snapshot.last_error == "cannot_connect: printer hung up"
    assert source.max_open == 1
    task.cancel()
    await asyncio.wait({task})


async def test_refused_printer_is_unreachable(
    stream: PrintCamStream, source: ScriptedSource
) -> None:
    source.refuse = CannotConnect("connection refused")
    task = asyncio.create_task(_viewer(stream, []))
    await until(lambda: stream.state is StreamState.UNREACHABLE)
    source.refuse = None
    source.feed.put_nowait(numbered_jpeg(1))
    await until(lambda: stream.state is StreamState.STREAMING)
    task.cancel()
    await asyncio.wait({task})


async def test_auth_failure_ends_viewers(
    stream: PrintCamStream, source: ScriptedSource
) -> None:
    got: list[bytes] = []
    task = asyncio.create_task(_viewer(stream, got))
    source.feed.put_nowait(InvalidAuth("401"))
    await asyncio.wait_for(task, 2)  # the viewer ends, nothing raised into it
    assert stream.state is StreamState.AUTH_FAILED


async def test_stall_detected_and_recovered(
    source: ScriptedSource, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stream_mod, "WATCHDOG_PERIOD_S", 0.02)
    stream = PrintCamStream("e", source, StreamOptions(stall_s=0.1))
    task = asyncio.create_task(_viewer(stream, []))
    source.feed.put_nowait(numbered_jpeg(1))
    await until(lambda: stream.state is StreamState.STREAMING)
    await until(lambda: stream.state is StreamState.STALLED, timeout=2)
    source.feed.put_nowait(numbered_jpeg(2))
    await until(lambda: stream.state is StreamState.STREAMING)
    await stream.async_close()
    await asyncio.wait({task})


async def test_restart_keeps_viewers_and_closes_old_connection_first(
    stream: PrintCamStream, source: ScriptedSource
) -> None:
    assert not stream.restart()  # idle: nothing to restart
    got: list[bytes] = []
    task = asyncio.create_task(_viewer(stream, got))
    source.feed.put_nowait(numbered_jpeg(1))
    await until(lambda: len(got) == 1)
    # The camera is wedged (no frames); restart interrupts the blocked read.
    assert stream.restart()
    assert stream.restart()  # a second press while restarting changes nothing
    await until(lambda: source.connects == 2)
    assert source.max_open == 1
    source.feed.put_nowait(numbered_jpeg(2))
    await until(lambda: len(got) == 2)
    assert not task.done()
    task.cancel()
    await asyncio.wait({task})


async def test_still_fresh_next_and_timeout(
    stream: PrintCamStream, source: ScriptedSource
) -> None:
    # Idle: the still starts the upstream and waits for its first frame.
    still = asyncio.create_task(stream.async_get_still())
    other = asyncio.create_task(stream.async_get_still())
    await until(lambda: source.connects == 1)
    source.feed.put_nowait(numbered_jpeg(7))
    assert await still == numbered_jpeg(7)
    assert await other == numbered_jpeg(7)  # one wait shared
    # Fresh: served at once, no new connection.
    assert await stream.async_get_still() == numbered_jpeg(7)
    assert source.connects == 1
    # Nothing new within the timeout: the latest frame is better than none.
    await asyncio.sleep(stream_mod.FRESH_STILL_S + 0.05)
    assert await stream.async_get_still(timeout=0.1) == numbered_jpeg(7)


async def test_still_hold_expires(source: ScriptedSource) -> None:
    stream = PrintCamStream("e", source, StreamOptions(still_hold_s=0.2))
    still = asyncio.create_task(stream.async_get_still())
    await until(lambda: source.connects == 1)
    source.feed.put_nowait(numbered_jpeg(1))
    await still
    assert source.open == 1
    await until(lambda: source.open == 0, timeout=1)
    await stream.async_close()


async def test_still_fetcher_used_only_while_idle(source: ScriptedSource) -> None:
    calls = 0

    async def fetch() -> bytes:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise CannotConnect("snapshot endpoint down")
        return b"\xff\xd8still\xff\xd9"

    stream = PrintCamStream("e", source, StreamOptions(), still_fetcher=fetch)
    assert await stream.async_get_still() == b"\xff\xd8still\xff\xd9"
    assert source.connects == 0
    # The snapshot URL fails: fall back to the stream.
    still = asyncio.create_task(stream.async_get_still())
    await until(lambda: source.connects == 1)
    source.feed.put_nowait(numbered_jpeg(3))
    assert await still == numbered_jpeg(3)
    await stream.async_close()
    assert await stream.async_get_still() is None


async def test_keep_warm_on_and_off(source: ScriptedSource) -> None:
    stream = PrintCamStream(
        "e", source, StreamOptions(keep_warm=True, idle_grace_s=0.1)
    )
    stream.start_keep_warm()
    await until(lambda: source.open == 1)
    await asyncio.sleep(0.2)
    assert source.open == 1
    stream.apply_options(StreamOptions(keep_warm=False, idle_grace_s=0.1))
    await until(lambda: source.open == 0, timeout=1)
    stream.apply_options(StreamOptions(keep_warm=True, idle_grace_s=0.1))
    await until(lambda: source.open == 1)
    await stream.async_close()
    assert source.open == 0


async def test_listener_errors_are_logged_not_raised(
    stream: PrintCamStream, source: ScriptedSource, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(snapshot: StreamSnapshot) -> None:
        raise ValueError("listener bug")

    remove = stream.add_listener(broken)
    task = asyncio.create_task(_viewer(stream, []))
    await until(lambda: stream.state is StreamState.CONNECTING)
    assert "listener failed" in caplog.text
    remove()
    remove()  # idempotent
    task.cancel()
    await asyncio.wait({task})


async def test_closed_stream_refuses_viewers(stream: PrintCamStream) -> None:
    await stream.async_close()
    parts = stream.iter_viewer()
    with pytest.raises(RuntimeError):
        await anext(parts)


async def test_bad_frames_are_counted(
    stream: PrintCamStream, source: ScriptedSource
) -> None:
    task = asyncio.create_task(_viewer(stream, []))
    source.feed.put_nowait(numbered_jpeg(1))
    await until(lambda: stream.state is StreamState.STREAMING)
    source.stats.dropped += 2
    stream.on_frame_dropped(2, "oversize")
    assert stream.snapshot.frames_dropped == 2
    task.cancel()
    await asyncio.wait({task})


def test_source_error_reasons() -> None:
    assert SourceError("x").reason == "cannot_connect"
    assert InvalidAuth("x").reason == "invalid_auth"


async def test_permanent_failure_calls_the_handler_once_and_survives_its_bug(
    stream: PrintCamStream, source: ScriptedSource, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[str] = []

    def handler(error: Exception) -> None:
        seen.append(type(error).__name__)
        raise ValueError("handler bug")

    stream.on_failure = handler
    task = asyncio.create_task(_viewer(stream, []))
    source.feed.put_nowait(InvalidAuth("401"))
    await asyncio.wait_for(task, 2)
    assert seen == ["InvalidAuth"]
    assert "failure handler failed" in caplog.text
    assert stream.failure is not None


async def test_a_still_waiting_when_the_stream_closes_returns(
    stream: PrintCamStream, source: ScriptedSource
) -> None:
    still = asyncio.create_task(stream.async_get_still())
    await until(lambda: source.connects == 1)
    await stream.async_close()
    assert await asyncio.wait_for(still, 2) is None  # no frame ever came


async def test_probe_waits_through_an_inconclusive_error(
    stream: PrintCamStream, source: ScriptedSource
) -> None:
    class Inconclusive(CannotConnect):
        conclusive = False

    probe = asyncio.create_task(stream.async_probe(5))
    source.feed.put_nowait(Inconclusive("closed after the login"))
    await until(lambda: source.connects == 2)  # retried, the probe still waits
    assert not probe.done()
    source.feed.put_nowait(numbered_jpeg(3))
    assert await probe == numbered_jpeg(3)
    assert stream.running  # the probe's connection stays, held like a still


async def test_probe_fails_with_the_source_error_or_a_timeout(
    stream: PrintCamStream, source: ScriptedSource
) -> None:
    source.refuse = CannotConnect("refused")
    with pytest.raises(CannotConnect, match="refused"):
        await stream.async_probe(5)
    source.refuse = None
    await stream.async_stop_upstream()
    with pytest.raises(SourceTimeout):
        await stream.async_probe(0.1)


async def test_a_blocked_stream_refuses_queued_viewers(
    stream: PrintCamStream, source: ScriptedSource
) -> None:
    task = asyncio.create_task(_viewer(stream, []))
    source.feed.put_nowait(InvalidAuth("401"))
    await asyncio.wait_for(task, 2)
    assert stream.blocked
    await until(lambda: not stream.running)
    with pytest.raises(RuntimeError, match="refused: invalid_auth"):
        await anext(stream.iter_viewer())
    assert source.connects == 1


async def test_cancelling_a_waiting_still_cancels_only_it(
    stream: PrintCamStream, source: ScriptedSource
) -> None:
    still = asyncio.create_task(stream.async_get_still())
    other = asyncio.create_task(stream.async_get_still())
    await until(lambda: source.connects == 1)
    still.cancel()
    with pytest.raises(asyncio.CancelledError):
        await still
    source.feed.put_nowait(numbered_jpeg(1))
    assert await other == numbered_jpeg(1)


async def test_stopping_the_upstream_answers_a_waiting_still_at_once(
    stream: PrintCamStream, source: ScriptedSource
) -> None:
    """A config flow stops the upstream: a still waiting on it does not hang."""
    still = asyncio.create_task(stream.async_get_still(timeout=30))
    await until(lambda: source.open == 1)  # connected, no frame yet
    async with asyncio.timeout(2):
        await stream.async_stop_upstream()
        assert await still is None  # no frame ever came
    assert source.open == 0


async def test_frames_and_fetched_stills_are_turned_once_bad_ones_dropped(
    source: ScriptedSource,
) -> None:
    """The printer's rotation is applied in the stream: viewers and stills alike."""
    transform = FrameTransform(Orientation(rotate_cw=90))
    fetched = quadrants(64, 32)

    async def fetch() -> bytes:
        return fetched

    stream = PrintCamStream(
        "entry1",
        source,
        StreamOptions(idle_grace_s=0.05),
        still_fetcher=fetch,
        transform=transform,
    )
    try:
        # Idle: a still comes from the snapshot URL, turned too.
        assert size_of(await stream.async_get_still()) == (32, 64)
        got: list[bytes] = []
        task = asyncio.create_task(_viewer(stream, got))
        await until(lambda: source.open == 1)
        source.feed.put_nowait(b"\xff\xd8 not a picture \xff\xd9")
        source.feed.put_nowait(quadrants(64, 32))
        await until(lambda: len(got) == 1)
        assert size_of(got[0]) == (32, 64)
        assert corners_shown(got[0])["TL"] == "BL"  # clockwise
        assert stream.frames_unturnable == 1
        assert stream.snapshot.bad_frames == 1
        assert stream.frames == 1
        assert transform.stats.frames == 2
        task.cancel()
    finally:
        await stream.async_close()


def test_an_identity_transform_is_no_transform(source: ScriptedSource) -> None:
    stream = PrintCamStream("entry1", source, transform=FrameTransform(Orientation()))
    assert stream.transform is None


async def test_pins_hold_the_upstream_until_the_last_lets_go(
    stream: PrintCamStream, source: ScriptedSource
) -> None:
    """Two recordings pin it: one letting go keeps it; the last starts the grace."""
    stream.pin("timelapse")
    stream.pin("clip")
    await until(lambda: source.open == 1)
    stream.unpin("not pinned")  # nothing happens
    stream.unpin("timelapse")
    await asyncio.sleep(0.2)  # four idle graces: still open for the clip
    assert source.open == 1
    assert stream.running
    stream.unpin("clip")
    await until(lambda: source.open == 0)
    assert source.connects == 1


async def test_a_pin_reopens_a_stopped_upstream_and_outlives_keep_warm(
    stream: PrintCamStream, source: ScriptedSource
) -> None:
    stream.pin("timelapse")
    await until(lambda: source.open == 1)
    await stream.async_stop_upstream()  # a config flow talking to the printer
    await until(lambda: source.open == 0)
    stream.pin("timelapse")  # the timelapse's next tick
    await until(lambda: source.open == 1)
    stream.apply_options(StreamOptions(idle_grace_s=0.05, keep_warm=True))
    stream.apply_options(StreamOptions(idle_grace_s=0.05, keep_warm=False))
    await asyncio.sleep(0.2)
    assert source.open == 1  # keep-warm going off does not drop the pin
    stream.unpin("timelapse")
    await until(lambda: source.open == 0)


async def test_a_closed_stream_takes_no_pin(source: ScriptedSource) -> None:
    stream = PrintCamStream("closed", source, StreamOptions(idle_grace_s=0.05))
    await stream.async_close()
    stream.pin("timelapse")
    assert not stream.running
    assert source.connects == 0


async def test_frame_listeners_get_every_frame_before_the_cap(
    source: ScriptedSource,
) -> None:
    """Recordings see the live rate: max_fps skips fan-out, not listeners;
    a listener that raises is logged and the others still get the frame."""
    stream = PrintCamStream("e", source, StreamOptions(max_fps=1))
    seen: list[bytes] = []

    def broken(jpeg: bytes, at: float) -> None:
        raise RuntimeError("listener bug")

    stream.add_frame_listener(broken)
    remove = stream.add_frame_listener(lambda jpeg, at: seen.append(jpeg))
    stream.pin("test")
    frames = [numbered_jpeg(i) for i in range(4)]
    for frame in frames:
        source.feed.put_nowait(frame)
    await until(lambda: len(seen) == 4)
    assert seen == frames
    assert stream.frames_skipped >= 2  # the cap still applies to viewers
    remove()
    remove()  # twice: harmless
    source.feed.put_nowait(numbered_jpeg(9))
    await until(lambda: stream.frames == 5)
    assert len(seen) == 4
    await stream.async_close()
