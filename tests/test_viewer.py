"""The direct-write viewer (viewer.py) on real loopback sockets.

A viewer that reads gets every part byte for byte; one that never reads
skips frames once its socket holds more than the bound, never buffers more
than the bound plus one frame, and is aborted after the stall timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
import socket
import time

import pytest

from custom_components.printcam import fanout, viewer as viewer_module
from custom_components.printcam.viewer import ChunkFramer, TransportViewer

from .conftest import until

FRAME = bytes(range(256)) * 400  # 100 KiB


class _Server(asyncio.Protocol):
    """Hands the server side of each accepted connection to the test."""

    def __init__(self, accepted: asyncio.Queue[asyncio.Transport]) -> None:
        self._accepted = accepted

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._accepted.put_nowait(transport)


class Pair:
    """A loopback connection: our server transport and a raw client socket."""

    def __init__(self, transport: asyncio.Transport, client: socket.socket) -> None:
        self.transport = transport
        self.client = client
        self.received = bytearray()

    async def read_some(self) -> None:
        loop = asyncio.get_running_loop()
        data = await loop.sock_recv(self.client, 1 << 20)
        self.received += data


@pytest.fixture
async def connect(socket_enabled: None) -> AsyncIterator[object]:
    """Yield `connect(rcvbuf=None) -> Pair`; close everything afterwards."""
    loop = asyncio.get_running_loop()
    accepted: asyncio.Queue[asyncio.Transport] = asyncio.Queue()
    server = await loop.create_server(lambda: _Server(accepted), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pairs: list[Pair] = []

    async def make(rcvbuf: int | None = None) -> Pair:
        client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        client.setblocking(False)
        await loop.sock_connect(client, ("127.0.0.1", port))
        pair = Pair(await asyncio.wait_for(accepted.get(), 5), client)
        pairs.append(pair)
        return pair

    yield make
    for pair in pairs:
        pair.transport.abort()
        pair.client.close()
    server.close()
    await server.wait_closed()


def test_chunk_framer_frames_each_part_once() -> None:
    framer = ChunkFramer()
    part = b"x" * 300
    framed = framer(part)
    assert framed == b"12c\r\n" + part + b"\r\n"
    assert framer(part) is framed  # the next viewer of this frame: no work
    other = b"y" * 10
    assert framer(other) == b"a\r\n" + other + b"\r\n"


async def test_a_reading_viewer_gets_every_part_byte_for_byte(connect) -> None:
    pair = await connect()
    viewer = TransportViewer(pair.transport, framer=ChunkFramer())
    expected = b""
    for i in range(20):
        part = bytes([i]) * 5000
        assert viewer.deliver(part) == fanout.DELIVERED
        expected += b"1388\r\n" + part + b"\r\n"
        await pair.read_some()
    await until(lambda: len(pair.received) >= len(expected))
    await pair.read_some() if len(pair.received) < len(expected) else None
    assert bytes(pair.received) == expected
    assert (viewer.delivered, viewer.skipped, viewer.done) == (20, 0, False)


async def test_a_viewer_that_never_reads_is_bounded_then_ended(
    connect, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(viewer_module, "STALL_TIMEOUT", 0.5)
    pair = await connect(rcvbuf=4096)
    viewer = TransportViewer(pair.transport, framer=None)
    results: list[int] = []
    peak = 0
    started = time.monotonic()
    # 25 fps of 100 KiB frames; the client never reads a byte.
    while not viewer.done and time.monotonic() - started < 20:
        results.append(viewer.deliver(FRAME))
        peak = max(peak, pair.transport.get_write_buffer_size())
        await asyncio.sleep(0.04)
    assert viewer.done, "a viewer that never reads must be ended"
    assert viewer.end_reason == "slow"
    assert results[-1] == fanout.GONE
    assert fanout.SKIPPED in results
    # Memory: at most the bound plus the frame that crossed it.
    assert peak <= viewer_module.MAX_BUFFER + len(FRAME)
    # Ended about STALL_TIMEOUT after it stopped draining, not much later.
    first_skip = results.index(fanout.SKIPPED)
    stuck_for = (len(results) - 1 - first_skip) * 0.04
    assert stuck_for < 0.5 + 2.0, stuck_for
    assert pair.transport.is_closing()


async def test_a_slow_but_draining_viewer_is_kept(
    connect, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(viewer_module, "STALL_TIMEOUT", 0.3)
    monkeypatch.setattr(viewer_module, "MAX_BUFFER", 64 * 1024)
    pair = await connect(rcvbuf=4096)
    viewer = TransportViewer(pair.transport, framer=None)
    started = time.monotonic()
    # Frames come faster than the client reads, for well past the timeout,
    # but it keeps reading: it skips frames and is never ended.
    while time.monotonic() - started < 1.5:
        viewer.deliver(FRAME)
        await pair.read_some()
        await asyncio.sleep(0.01)
    assert not viewer.done
    assert viewer.skipped > 0
    assert viewer.delivered > 1


async def test_wait_notices_a_closed_socket_without_frames(
    connect, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(viewer_module, "CHECK_PERIOD", 0.02)
    pair = await connect()
    viewer = TransportViewer(pair.transport, framer=None)
    waiter = asyncio.create_task(viewer.wait())
    await asyncio.sleep(0.05)
    assert not waiter.done()
    pair.transport.close()
    await asyncio.wait_for(waiter, 2)
    assert viewer.end_reason == "closed"
    assert viewer.deliver(b"late") == fanout.GONE


async def _stuck_viewer(
    connect, monkeypatch: pytest.MonkeyPatch
) -> tuple[Pair, TransportViewer]:
    """Fill a never-reading client's socket until its viewer skips frames."""
    monkeypatch.setattr(viewer_module, "CHECK_PERIOD", 0.02)
    monkeypatch.setattr(viewer_module, "STALL_TIMEOUT", 0.3)
    monkeypatch.setattr(viewer_module, "MAX_BUFFER", 64 * 1024)
    pair = await connect(rcvbuf=4096)
    viewer = TransportViewer(pair.transport, framer=None)
    async with asyncio.timeout(10):
        while viewer.deliver(FRAME) != fanout.SKIPPED:
            await asyncio.sleep(0.01)
    return pair, viewer


async def test_wait_ends_a_stuck_viewer_while_no_frames_come(
    connect, monkeypatch: pytest.MonkeyPatch
) -> None:
    _pair, viewer = await _stuck_viewer(connect, monkeypatch)
    # The upstream stalls: no frame comes to notice the viewer is stuck.
    await asyncio.wait_for(viewer.wait(), 5)
    assert viewer.end_reason == "slow"


async def test_a_stuck_viewer_that_drains_while_idle_is_kept(
    connect, monkeypatch: pytest.MonkeyPatch
) -> None:
    pair, viewer = await _stuck_viewer(connect, monkeypatch)
    waiter = asyncio.create_task(viewer.wait())
    # The client wakes up and reads everything: no longer stuck.
    async with asyncio.timeout(10):
        while pair.transport.get_write_buffer_size():
            await pair.read_some()
    await asyncio.sleep(0.6)  # two stall timeouts with no frame
    assert not viewer.done
    viewer.end()
    await asyncio.wait_for(waiter, 2)
    assert viewer.end_reason == "upstream_gone"


def test_kernel_queue_is_zero_when_unknown(tmp_path) -> None:
    assert viewer_module._kernel_outq(-1) == 0
    with (tmp_path / "not-a-socket").open("w") as file:
        assert viewer_module._kernel_outq(file.fileno()) == 0  # the ioctl fails


async def test_a_transport_without_a_socket_still_works() -> None:
    class Memory(asyncio.WriteTransport):
        def __init__(self) -> None:
            super().__init__()
            self.data = b""

        def write(self, data: bytes | bytearray | memoryview) -> None:
            self.data += bytes(data)

        def is_closing(self) -> bool:
            return False

        def get_write_buffer_size(self) -> int:
            return 0

    transport = Memory()
    viewer = TransportViewer(transport, framer=None)
    assert viewer.deliver(b"part") == fanout.DELIVERED
    assert transport.data == b"part"
