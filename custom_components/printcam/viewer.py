"""A live viewer written straight to its socket from the fan-out loop.

`TransportViewer` is the broadcaster `Sink` of one HTTP client of the camera
stream. Per frame it does what a raw socket server does and nothing more: one
`transport.write` of bytes shared with every other viewer, no task wake-up,
no queue, no copy. Home Assistant's HTTP server has already sent the response
head; for an HTTP/1.1 client the body is chunked, so each part is framed as
one chunk, once per frame for all viewers (`ChunkFramer`).

A viewer whose socket does not drain (a phone asleep with its connection
open, a client on a bad link) must not cost memory or hold the printer's
connection open: while its transport still buffers more than `max_buffer`
bytes it skips frames (counted), and once it made no progress for
`stall_timeout` seconds (its buffer neither drained below the bound nor
shrank) the connection is aborted. Memory per viewer is therefore bounded by
`max_buffer` plus one frame, and frames are shared, not copied.

No Home Assistant imports.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import struct
import termios
import time

from .fanout import DELIVERED, GONE, SKIPPED

MAX_BUFFER = 512 * 1024
"""Bytes a viewer's socket may have pending before it skips frames."""
STALL_TIMEOUT = 10.0
"""Seconds without progress after which a non-draining viewer is ended."""
CHECK_PERIOD = 1.0
"""How often a waiting viewer looks at its socket when no frame comes."""


_OUTQ = getattr(termios, "TIOCOUTQ", None)
"""Linux ioctl: bytes the kernel still holds in a socket's send queue."""


def _kernel_outq(fd: int) -> int:
    """Return the bytes queued in the kernel for socket `fd` (0 if unknown)."""
    if fd < 0 or _OUTQ is None:
        return 0
    try:
        raw = fcntl.ioctl(fd, _OUTQ, b"\0\0\0\0")
    except OSError:
        return 0
    return int(struct.unpack("i", raw)[0])


class ChunkFramer:
    """Frames a part as one HTTP/1.1 chunk, once per part for every viewer."""

    __slots__ = ("_framed", "_part")

    def __init__(self) -> None:
        """Start with nothing framed."""
        self._part: bytes | None = None
        self._framed = b""

    def __call__(self, part: bytes) -> bytes:
        """Return `part` as a chunk; the same part object is framed only once."""
        if part is not self._part:
            self._part = part
            self._framed = b"%x\r\n%b\r\n" % (len(part), part)
        return self._framed


class TransportViewer:
    """One HTTP viewer: a broadcaster sink writing to an asyncio transport."""

    __slots__ = (
        "_check_period",
        "_done",
        "_fd",
        "_framer",
        "_last_size",
        "_max_buffer",
        "_stall_timeout",
        "_stuck_since",
        "delivered",
        "end_reason",
        "skipped",
        "transport",
    )

    def __init__(
        self,
        transport: asyncio.WriteTransport,
        *,
        framer: ChunkFramer | None,
    ) -> None:
        """Write to `transport`; `framer` None for a body that is not chunked.

        The bounds are the module's `MAX_BUFFER`, `STALL_TIMEOUT` and
        `CHECK_PERIOD`, read now (tests patch them).
        """
        self.transport = transport
        self._framer = framer
        self._max_buffer = MAX_BUFFER
        self._stall_timeout = STALL_TIMEOUT
        self._check_period = CHECK_PERIOD
        self._fd = -1
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError, ValueError):
                self._fd = sock.fileno()
        self._done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._stuck_since: float | None = None
        """When the viewer last made progress, while it is skipping frames."""
        self._last_size = 0
        self.delivered = 0
        """Frames written to this viewer."""
        self.skipped = 0
        """Frames this viewer skipped because its socket had not drained."""
        self.end_reason: str | None = None
        """Why the viewer ended: closed, slow, upstream_gone (None: watching)."""

    @property
    def done(self) -> bool:
        """Return True once the viewer has ended."""
        return self._done.done()

    def deliver(self, chunk: bytes) -> int:
        """Write one part now, or skip it while the socket has not drained."""
        transport = self.transport
        if transport.is_closing():
            self._finish("closed")
            return GONE
        if transport.get_write_buffer_size() > self._max_buffer:
            self.skipped += 1
            return SKIPPED if self._still_progressing() else GONE
        self._stuck_since = None
        transport.write(self._framer(chunk) if self._framer is not None else chunk)
        self.delivered += 1
        return DELIVERED

    def _still_progressing(self) -> bool:
        """Track a non-draining socket; abort it after the stall timeout.

        Progress is any byte leaving: what our transport and the kernel
        still hold together shrank. (The transport's buffer alone moves in
        big steps: the kernel takes more only once a good part of its send
        buffer is free, seconds apart for a client reading 50 kB/s.)
        """
        size = self.transport.get_write_buffer_size() + _kernel_outq(self._fd)
        now = time.monotonic()
        if self._stuck_since is None or size < self._last_size:
            self._stuck_since = now  # it drained a little: progress
        self._last_size = size
        if now - self._stuck_since < self._stall_timeout:
            return True
        self.transport.abort()
        self._finish("slow")
        return False

    def end(self) -> None:
        """End this viewer: the stream ended for every viewer."""
        self._finish("upstream_gone")

    def _finish(self, reason: str) -> None:
        if not self._done.done():
            self.end_reason = reason
            self._done.set_result(None)

    async def wait(self) -> None:
        """Return once the viewer ended: gone, too slow, or the stream ended.

        Also notices a closed or stuck socket while no frames come.
        """
        while not self._done.done():
            await asyncio.wait({self._done}, timeout=self._check_period)
            if self._done.done():
                return
            if self.transport.is_closing():
                self._finish("closed")
            elif self._stuck_since is not None:
                if self.transport.get_write_buffer_size() <= self._max_buffer:
                    self._stuck_since = None  # drained while no frame came
                else:
                    self._still_progressing()
