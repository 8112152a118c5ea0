"""Helpers for source tests: an event recorder and frame readers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
import contextlib
from typing import Any

from custom_components.printcam.sources import FrameSource, SourceError, SourceEvents

WAIT = 5.0


class Recorder(SourceEvents):
    """Records every event in order; a test can wait for a condition on them."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []
        self._waiters: list[asyncio.Future[None]] = []
        self.hook: Callable[[tuple[Any, ...]], None] | None = None
        """Called with each event as it happens (to act at an exact point)."""

    def _add(self, *event: Any) -> None:
        self.events.append(event)
        if self.hook is not None:
            self.hook(event)
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def wait_for(self, predicate: Callable[[Recorder], bool]) -> None:
        async with asyncio.timeout(WAIT):
            while not predicate(self):
                waiter = asyncio.get_running_loop().create_future()
                self._waiters.append(waiter)
                try:
                    await waiter
                finally:
                    self._waiters.remove(waiter)

    def count(self, name: str) -> int:
        return sum(1 for event in self.events if event[0] == name)

    def on_connecting(self, attempt: int) -> None:
        self._add("connecting", attempt)

    def on_connected(self) -> None:
        self._add("connected")

    def on_frame_dropped(self, count: int, reason: str) -> None:
        self._add("dropped", count, reason)

    def on_disconnected(
        self, error: SourceError | None, retry_in: float | None
    ) -> None:
        self._add("disconnected", error, retry_in)

    def errors(self) -> list[SourceError | None]:
        return [event[1] for event in self.events if event[0] == "disconnected"]

    def names(self) -> list[str]:
        return [event[0] for event in self.events if event[0] != "dropped"]


async def take(source: FrameSource, count: int) -> list[bytes]:
    """Read `count` frames from one connection, then close it."""
    frames: list[bytes] = []
    async with asyncio.timeout(WAIT), contextlib.aclosing(source.connect()) as stream:
        async for frame in stream:
            frames.append(frame)
            if len(frames) == count:
                break
    return frames


async def drain(source: FrameSource) -> list[bytes]:
    """Read one connection to its end (or its error)."""
    frames: list[bytes] = []
    async with asyncio.timeout(WAIT), contextlib.aclosing(source.connect()) as stream:
        async for frame in stream:
            frames.append(frame)
    return frames
