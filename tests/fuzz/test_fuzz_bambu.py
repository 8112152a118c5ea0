"""Fuzz target: Bambu frame headers (sources/bambu_chamber.py).

After the login, everything the printer (or whatever answers at its
address with the pinned certificate) sends is read by
`BambuChamberSource.connect()`: a 16-byte little-endian header, then
exactly the payload size it declares. The target drives the real
`connect()` with an in-memory reader (no socket, no TLS: `_open_tls` is
replaced and the certificate check skipped) fed in random pieces, with
streams of frames whose headers and payloads are right, lying (size 0,
one past the cap, the u32 maximum, off by a few), not JPEG, or cut off.

Checked against a small model of the documented protocol: the frames come
out exactly as the model says, the connection ends with the error the
model says (`CannotConnect`, its early-close flavour and `InvalidAuth` for
the second early close in a row, `ProtocolError` for a dropped frame, and
nothing else), the login is sent once, the connection is always closed,
and a lying size never makes the reader allocate what it claims
(tracemalloc, on a share of the budget).
"""

from __future__ import annotations

import asyncio
import contextlib
from itertools import pairwise
import struct
from typing import Any
from unittest.mock import patch

from hypothesis import given, strategies as st

from custom_components.printcam.sources import bambu_chamber
from custom_components.printcam.sources.bambu_chamber import (
    MAX_FRAME_SIZE,
    BambuChamberSource,
    auth_packet,
)
from custom_components.printcam.sources.base import (
    CannotConnect,
    InvalidAuth,
    ProtocolError,
    SourceError,
)

from .support import fuzz_settings, traced_peak

SOI = b"\xff\xd8"
EOI = b"\xff\xd9"
CODE = "Xy7Secre"
SERIAL = "01P00A392800174"
U32_MAX = 2**32 - 1


class _Transport:
    def abort(self) -> None:
        """Nothing to abort in memory."""


class FakeWriter:
    """The writer side of an in-memory connection: records what is sent."""

    def __init__(self) -> None:
        self.written = bytearray()
        self.closed = False
        self.transport = _Transport()

    def write(self, data: bytes) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True

    async def wait_closed(self) -> None:
        """Closed at once."""

    def get_extra_info(self, name: str) -> Any:
        return None


class InMemorySource(BambuChamberSource):
    """The real source, minus the certificate check (there is no TLS)."""

    def _check_peer(self, writer: Any) -> None:
        pass


# ----------------------------------------------------------------- streams


@st.composite
def payloads(draw: st.DrawFn) -> bytes:
    """A JPEG-ish payload: valid, or missing its SOI or EOI, or tiny."""
    body = draw(st.binary(max_size=300))
    kind = draw(st.sampled_from(["jpeg", "jpeg", "jpeg", "no_soi", "no_eoi", "tiny"]))
    if kind == "no_soi":
        return body + EOI
    if kind == "no_eoi":
        return SOI + body
    if kind == "tiny":
        return draw(st.sampled_from([SOI, EOI, SOI + EOI, b"\xff\xd8\xd9", b"\xff"]))
    return SOI + body + EOI


@st.composite
def frames(draw: st.DrawFn) -> bytes:
    """One frame: a header (size right or lying) and its payload."""
    payload = draw(payloads())
    size = draw(
        st.sampled_from(["exact"] * 6 + ["zero", "cap", "over", "max", "off", "any"])
    )
    declared = {
        "exact": len(payload),
        "zero": 0,
        "cap": MAX_FRAME_SIZE,
        "over": MAX_FRAME_SIZE + 1,
        "max": U32_MAX,
        "off": max(0, len(payload) + draw(st.integers(-3, 3))),
        "any": draw(st.integers(0, U32_MAX)),
    }[size]
    if draw(st.integers(0, 3)):
        itrack, flags, reserved = 0, 1, 0
    else:
        itrack, flags, reserved = draw(st.tuples(*[st.integers(0, U32_MAX)] * 3))
    return struct.pack("<IIII", declared, itrack, flags, reserved) + payload


@st.composite
def streams(draw: st.DrawFn) -> bytes:
    """What a printer sends after the login: frames, maybe cut anywhere."""
    data = b"".join(draw(st.lists(frames(), max_size=5)))
    if data and draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return data


def pieces(data: bytes, cuts: list[int]) -> list[bytes]:
    edges = [0, *sorted(c % (len(data) + 1) for c in cuts), len(data)]
    return [data[a:b] for a, b in pairwise(edges) if b > a]


# ------------------------------------------------------------------- model


def model(data: bytes) -> tuple[list[bytes], str]:
    """Frames the documented protocol yields from ``data``, and how it ends.

    The end is ``early`` (closed at a frame boundary before any frame: a
    possible wrong access code), ``closed`` (any other hang-up or a cut
    read) or ``dropped`` (a frame rejected: ProtocolError).
    """
    out: list[bytes] = []
    pos = 0
    while True:
        if pos == len(data):
            return out, "closed" if out else "early"
        if len(data) - pos < 16:
            return out, "closed"
        size = struct.unpack_from("<I", data, pos)[0]
        pos += 16
        if size == 0 or size > MAX_FRAME_SIZE:
            return out, "dropped"
        if len(data) - pos < size:
            return out, "closed"
        payload = data[pos : pos + size]
        pos += size
        if not (payload.startswith(SOI) and payload.endswith(EOI)):
            return out, "dropped"
        out.append(payload)


# ------------------------------------------------------------------ driver


class Printer:
    """Connections served from memory: each `_open_tls` takes the next script.

    A script is the chunks the printer sends (one per loop iteration) and
    how it ends: ``eof`` (closed) or ``reset`` (the reader raises
    ConnectionResetError, whatever it had buffered).
    """

    def __init__(self, scripts: list[tuple[list[bytes], str]]) -> None:
        self._scripts = list(scripts)
        self.writers: list[FakeWriter] = []
        self._feeders: list[asyncio.Task[None]] = []

    async def open_tls(self, *args: Any) -> tuple[asyncio.StreamReader, FakeWriter]:
        chunks, ending = self._scripts.pop(0)
        reader = asyncio.StreamReader()
        writer = FakeWriter()
        self.writers.append(writer)

        async def feed() -> None:
            for chunk in chunks:
                reader.feed_data(chunk)
                await asyncio.sleep(0)
            if ending == "reset":
                reader.set_exception(ConnectionResetError(104, "reset by peer"))
            else:
                reader.feed_eof()

        self._feeders.append(asyncio.get_running_loop().create_task(feed()))
        return reader, writer

    async def close(self) -> None:
        for feeder in self._feeders:
            feeder.cancel()
        await asyncio.gather(*self._feeders, return_exceptions=True)

    def check_discipline(self) -> None:
        """Every connection sent the login once and was closed."""
        for writer in self.writers:
            assert writer.closed, "a connection was left open"
            assert bytes(writer.written) == auth_packet(CODE), "login not sent once"


async def read_connection(
    source: BambuChamberSource,
) -> tuple[list[bytes], BaseException | None]:
    """Run one `connect()`; return its frames and the error it ended with."""
    got: list[bytes] = []
    try:
        async with contextlib.aclosing(source.connect()) as frames_:
            async for item in frames_:
                got.append(item)
    except Exception as err:  # noqa: BLE001 - judged by the caller
        return got, err
    return got, None


def check(
    got: list[bytes],
    error: BaseException | None,
    expected: tuple[list[bytes], str],
    *,
    after_early: bool,
) -> None:
    """Compare one connection that ended in EOF with the model."""
    frames_, end = expected
    assert got == frames_
    assert isinstance(error, SourceError), f"untyped error {error!r}"
    if end == "dropped":
        assert type(error) is ProtocolError
    elif end == "early" and after_early:
        assert type(error) is InvalidAuth
    else:
        assert isinstance(error, CannotConnect)
        assert not isinstance(error, InvalidAuth)
        assert isinstance(error, bambu_chamber._ClosedBeforeFrame) == (end == "early")


def check_reset(
    got: list[bytes], error: BaseException | None, expected: tuple[list[bytes], str]
) -> None:
    """A reset may come before buffered frames are read: a prefix, a typed error."""
    frames_, end = expected
    assert got == frames_[: len(got)]
    assert isinstance(error, SourceError), f"untyped error {error!r}"
    if type(error) is ProtocolError:
        assert end == "dropped"
        assert got == frames_


endings = st.sampled_from(["eof", "eof", "eof", "reset"])


@fuzz_settings()
@given(
    first=streams(),
    second=streams(),
    endings=st.tuples(endings, endings),
    cuts=st.lists(st.integers(0, 1 << 16), max_size=20),
)
def test_fuzz_frame_headers(
    first: bytes, second: bytes, endings: tuple[str, str], cuts: list[int]
) -> None:
    """Two connections of one source against hostile streams, cut anywhere."""
    source = InMemorySource("printer.local", SERIAL, CODE, cert_sha256=None)
    datas = (first, second)
    printer = Printer(
        [(pieces(d, cuts), e) for d, e in zip(datas, endings, strict=True)]
    )

    async def main() -> None:
        after_early = False
        dropped = 0
        try:
            for index, data in enumerate(datas):
                expected = model(data)
                got, error = await read_connection(source)
                dropped += isinstance(error, ProtocolError)
                if "reset" in endings[: index + 1]:
                    # A reset before the end may also break the early-close streak model.
                    check_reset(got, error, expected)
                else:
                    check(got, error, expected, after_early=after_early)
                after_early = expected[1] == "early"
        finally:
            await printer.close()
        printer.check_discipline()
        assert source.stats.dropped == dropped

    with patch.object(bambu_chamber, "_open_tls", printer.open_tls):
        asyncio.run(main())


def probe_model(first: bytes, second: bytes) -> tuple[bytes | None, type | None]:
    """What `fetch_frame` returns or raises: one retry after an early close."""
    frames1, end1 = model(first)
    if frames1:
        return frames1[0], None
    if end1 == "early":
        frames2, end2 = model(second)
        if frames2:
            return frames2[0], None
        if end2 == "early":
            return None, InvalidAuth
        end1 = end2
    return None, ProtocolError if end1 == "dropped" else CannotConnect


@fuzz_settings()
@given(
    first=streams(),
    second=streams(),
    cuts=st.lists(st.integers(0, 1 << 16), max_size=20),
)
def test_fuzz_probe(first: bytes, second: bytes, cuts: list[int]) -> None:
    """`fetch_frame` (setup's probe): first frame, one retry after an early close."""
    source = InMemorySource("printer.local", SERIAL, CODE, cert_sha256=None)
    printer = Printer([(pieces(first, cuts), "eof"), (pieces(second, cuts), "eof")])

    async def main() -> tuple[bytes | None, type | None]:
        try:
            return await source.fetch_frame(5.0), None
        except SourceError as err:
            return None, type(err)
        finally:
            await printer.close()

    with patch.object(bambu_chamber, "_open_tls", printer.open_tls):
        assert asyncio.run(main()) == probe_model(first, second)
    printer.check_discipline()


@fuzz_settings(share=0.05)
@given(
    declared=st.sampled_from([MAX_FRAME_SIZE, MAX_FRAME_SIZE - 1, 1 << 20])
    | st.integers(1 << 16, MAX_FRAME_SIZE),
    sent=st.integers(0, 64 * 1024),
    chunk=st.sampled_from([7, 1000, 16 * 1024]),
)
def test_fuzz_lying_size_allocates_what_arrives(
    declared: int, sent: int, chunk: int
) -> None:
    """A header claiming megabytes, then a little data: memory follows the data."""
    sent = min(sent, declared - 3)  # never the whole payload
    data = struct.pack("<IIII", declared, 0, 1, 0) + SOI + bytes(sent)
    chunks = [data[i : i + chunk] for i in range(0, len(data), chunk)]
    source = InMemorySource("printer.local", SERIAL, CODE, cert_sha256=None)
    printer = Printer([(chunks, "eof")])

    async def main() -> None:
        try:
            with traced_peak() as peak:
                got, error = await read_connection(source)
        finally:
            await printer.close()
        assert got == []
        assert isinstance(error, CannotConnect)
        # The stream reader's buffer and one copy of it, plus the loop's
        # small change: nothing in proportion to the declared size.
        bound = 3 * len(data) + 64 * 1024
        assert peak() <= bound, f"peak {peak()} for {len(data)} bytes sent"

    with patch.object(bambu_chamber, "_open_tls", printer.open_tls):
        asyncio.run(main())
