"""Tests for the pure MJPEG multipart parser/encoder (custom_components/printcam/mjpeg.py).

Property tests (hypothesis) build multipart bodies in every quirky style the
printer notes list, feed them in arbitrary chunks and check that the frames
come out identical, in order and no later than the next delimiter; others
throw garbage at the parser and check it never raises and its buffer stays
bounded.  Unit tests cover parse_boundary, encode_part and each recovery path.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
import io
from itertools import pairwise
import random
import time
from typing import Any

from hypothesis import HealthCheck, given, settings, strategies as st
import pytest

from custom_components.printcam import mjpeg
from custom_components.printcam.mjpeg import (
    CONTENT_TYPE,
    DEFAULT_MAX_FRAME_SIZE,
    MAX_HEADER_SIZE,
    PART_BOUNDARY,
    MjpegParser,
    encode_part,
    parse_boundary,
)

SOI = b"\xff\xd8"
EOI = b"\xff\xd9"
# Slack the parser may hold on top of max_frame_size (the brief's bound).
BOUND_SLACK = 64 * 1024

PROPERTY_SETTINGS = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
HEAVY_SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.function_scoped_fixture,
        HealthCheck.data_too_large,
    ],
)


# --------------------------------------------------------------- JPEG helpers


def fake_jpeg(payload: bytes) -> bytes:
    """A JPEG-looking blob: SOI + payload + EOI (no internal structure)."""
    return SOI + payload + EOI


def seg(marker: int, payload: bytes) -> bytes:
    """A JPEG marker segment with its length field."""
    return bytes((0xFF, marker)) + (len(payload) + 2).to_bytes(2, "big") + payload


def stuff(scan: bytes, rst_every: int = 0) -> bytes:
    """Entropy-code-like data: FF stuffed with 00, optional RSTn markers."""
    out = bytearray()
    for i, byte in enumerate(scan):
        out.append(byte)
        if byte == 0xFF:
            out.append(0x00)
        if rst_every and (i + 1) % rst_every == 0:
            out += bytes((0xFF, 0xD0 + (i // rst_every) % 8))
    return bytes(out)


THUMBNAIL = SOI + seg(0xDB, b"\x00" + b"\x01" * 64) + b"\x00\x11\x22" + EOI
SOF0 = seg(0xC0, bytes.fromhex("0800100010030122000211010311" + "01"))
SOS = seg(0xDA, bytes.fromhex("03010002110311003f00"))
DHT = seg(0xC4, b"\x00" + b"\x01" * 16 + b"\x02\x03")


def structured_jpeg(
    scan: bytes,
    second_scan: bytes | None = None,
    *,
    rst_every: int = 0,
    fill: bool = False,
) -> bytes:
    """A structurally valid JPEG (as far as markers go) with an EXIF thumbnail.

    The APP1 segment embeds a complete small JPEG (with its own FF D9) and a
    few stray FF D9 pairs; ``second_scan`` makes it progressive-like (DHT +
    SOS between scans); ``fill`` adds FF fill bytes before markers.
    """
    fill_bytes = b"\xff" if fill else b""
    parts = [
        SOI,
        seg(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"),
        seg(0xE1, b"Exif\x00\x00MM\x00*" + THUMBNAIL + EOI + EOI),
        fill_bytes + seg(0xDB, b"\x00" + b"\x01" * 64),
        b"\xff\x01",  # standalone TEM marker
        SOF0,
        DHT,
        SOS,
        stuff(scan, rst_every),
    ]
    if second_scan is not None:
        parts += [DHT, SOS, stuff(second_scan)]
    parts += [fill_bytes, EOI]
    return b"".join(parts)


FIXED_JPEG_PARTS = (SOI, EOI, THUMBNAIL, SOF0, SOS, DHT)


def test_fixed_jpeg_parts_have_no_dash() -> None:
    """Sanitising only the random scan data is enough to keep '-'+B out."""
    assert all(b"-" not in part for part in FIXED_JPEG_PARTS)
    assert b"-" not in structured_jpeg(b"", b"", rst_every=1, fill=True)


# ---------------------------------------------------------- stream builder


BOUNDARY_ALPHABET = (
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789'()+_,-./:=?"
)
boundaries = st.text(alphabet=BOUNDARY_ALPHABET, min_size=1, max_size=24).filter(
    lambda b: not b.startswith("-")
)


def remove_needle(data: bytes, boundary: bytes) -> bytes:
    """Remove every '-' + boundary from ``data`` (so no delimiter line fits)."""
    needle = b"-" + boundary
    while needle in data:
        data = data.replace(needle, b"_" + boundary)
    return data


@dataclass
class Stream:
    """A generated multipart body and what the parser must make of it."""

    content_type: str
    data: bytes = b""
    frames: list[bytes] = field(default_factory=list)
    # Offset by which frames[i] must have been emitted.
    deadlines: list[int] = field(default_factory=list)
    garbage: int = 0  # non-whitespace bytes outside parts
    cl_only: bool = True


def _eol(draw: st.DrawFn, style: str) -> bytes:
    if style == "crlf":
        return b"\r\n"
    if style == "lf":
        return b"\n"
    return draw(st.sampled_from([b"\r\n", b"\n"]))


@st.composite
def streams(
    draw: st.DrawFn,
    *,
    max_frames: int = 5,
    max_payload: int = 300,
    allow_no_cl: bool = True,
) -> Stream:
    """Draw a multipart body in any of the supported styles."""
    boundary = draw(boundaries)
    b_bytes = boundary.encode()
    header_dashes = draw(st.booleans())
    param = ("--" if header_dashes else "") + boundary
    param_name = draw(st.sampled_from(["boundary", "BOUNDARY", "Boundary"]))
    value = f'"{param}"' if draw(st.booleans()) else param
    sep = draw(st.sampled_from([";", "; ", " ; ", ";\t"]))
    media = draw(
        st.sampled_from(["multipart/x-mixed-replace", "Multipart/X-Mixed-Replace"])
    )
    stream = Stream(content_type=f"{media}{sep}{param_name}={value}")
    delim = (
        draw(st.sampled_from([b"--" + param.encode(), param.encode()]))
        if header_dashes
        else b"--" + b_bytes
    )
    style = draw(st.sampled_from(["crlf", "lf", "mixed"]))
    out = bytearray()

    # Preamble: text lines (no dashes) and/or blank lines.
    for line in draw(
        st.lists(st.text(alphabet="abc XYZ\t:;.", max_size=20), max_size=3)
    ):
        raw = line.encode()
        out += raw + _eol(draw, style)
        stream.garbage += len(raw.translate(None, b" \t\r\n"))

    pending: list[int] = []  # frames emitted at the next delimiter line
    n_frames = draw(st.integers(min_value=1, max_value=max_frames))
    for _ in range(n_frames):
        out += delim
        if draw(st.booleans()):
            out += b" " * draw(st.integers(0, 2))  # transport padding
        out += _eol(draw, style)
        for index in pending:
            stream.deadlines[index] = len(out)
        pending = []

        with_cl = draw(st.booleans()) if allow_no_cl else True
        structured = draw(st.booleans())
        payload = draw(st.binary(max_size=max_payload))
        if not with_cl:
            stream.cl_only = False
            payload = remove_needle(payload, b_bytes)
        if structured:
            second = draw(st.none() | st.binary(max_size=40))
            if second is not None and not with_cl:
                second = remove_needle(second, b_bytes)
            jpeg = structured_jpeg(
                payload,
                second,
                rst_every=draw(st.integers(0, 7)),
                fill=draw(st.booleans()),
            )
        elif with_cl:
            jpeg = fake_jpeg(payload)
        else:
            # A 00 right after SOI keeps the structural walk out of the
            # way: such a body only ends at the delimiter.
            jpeg = fake_jpeg(b"\x00" + payload)

        headerless = not with_cl and draw(st.booleans())
        if not headerless:
            headers = [
                draw(st.sampled_from(["Content-Type", "content-type", "CONTENT-TYPE"]))
                + ": image/jpeg",
            ]
            if with_cl:
                name = draw(
                    st.sampled_from(
                        ["Content-Length", "Content-length", "CONTENT-LENGTH"]
                    )
                )
                headers.append(f"{name}: {len(jpeg)}")
            if draw(st.booleans()):
                headers.append("X-Timestamp: 1712345678.123456")
            if draw(st.booleans()):
                headers.append("X-Framerate:15")
            headers = draw(st.permutations(headers))
            if draw(st.booleans()):
                out += _eol(draw, style)  # blank line before the headers
            for header in headers:
                out += header.encode() + _eol(draw, style)
            out += _eol(draw, style)

        out += jpeg + _eol(draw, style)
        stream.frames.append(jpeg)
        stream.deadlines.append(len(out))
        if not with_cl:
            pending.append(len(stream.frames) - 1)
        for _ in range(draw(st.integers(0, 2))):
            out += _eol(draw, style)  # extra blank lines between parts

    # Terminate: a closing delimiter or the start of one more part.
    if draw(st.booleans()):
        out += delim + b"--"
        for index in pending:
            stream.deadlines[index] = len(out)
        out += _eol(draw, style)
    else:
        out += delim + _eol(draw, style)
        for index in pending:
            stream.deadlines[index] = len(out)
    stream.data = bytes(out)
    return stream


def chunkings(length: int) -> st.SearchStrategy[list[int]]:
    """Split points for a body of ``length`` bytes (sorted, may repeat)."""
    if length <= 4000:
        one_byte = st.just(list(range(length + 1)))
        return one_byte | st.lists(st.integers(0, length), max_size=30).map(sorted)
    return st.lists(st.integers(0, length), max_size=30).map(sorted)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    """Cut ``data`` at the given points."""
    points = [0, *cuts, len(data)]
    return [data[a:b] for a, b in pairwise(points)]


def feed_all(parser: MjpegParser, chunks: list[bytes]) -> list[bytes]:
    """Feed every chunk, checking the buffer bound after each feed."""
    frames: list[bytes] = []
    for chunk in chunks:
        frames += parser.feed(chunk)
        assert parser.buffered <= parser.max_frame_size + BOUND_SLACK
    return frames


# ------------------------------------------------------------ properties


@PROPERTY_SETTINGS
@given(data=st.data())
def test_property_round_trip_all_styles(data: st.DataObject) -> None:
    """Any frames in any style and chunking come out identical, in order, in time."""
    stream = data.draw(streams())
    infer = data.draw(st.booleans())
    boundary = None if infer else parse_boundary(stream.content_type)
    assert infer or boundary is not None
    parser = MjpegParser(boundary)
    cuts = data.draw(chunkings(len(stream.data)))
    frames: list[bytes] = []
    fed = 0
    for chunk in split(stream.data, cuts):
        frames += parser.feed(chunk)
        fed += len(chunk)
        due = sum(1 for deadline in stream.deadlines if deadline <= fed)
        assert len(frames) >= due, "a frame was not emitted by its next delimiter"
        assert frames == stream.frames[: len(frames)]
    assert frames == stream.frames
    assert parser.frames == len(stream.frames)
    assert parser.dropped == 0
    assert parser.garbage_bytes == stream.garbage


@PROPERTY_SETTINGS
@given(
    frames=st.lists(st.binary(max_size=400).map(fake_jpeg), min_size=1, max_size=6),
    data=st.data(),
)
def test_property_encode_part_round_trip(
    frames: list[bytes], data: st.DataObject
) -> None:
    """encode_part output parses back to the same frames, even with the boundary inside."""
    # Make some payloads contain our own delimiter line.
    frames = [
        f[:2] + b"\r\n--" + PART_BOUNDARY.encode() + b"\r\n" + f[2:] if i % 2 else f
        for i, f in enumerate(frames)
    ]
    body = b"".join(encode_part(f) for f in frames)
    cuts = data.draw(chunkings(len(body)))
    parser = MjpegParser(parse_boundary(CONTENT_TYPE))
    assert feed_all(parser, split(body, cuts)) == frames
    assert parser.dropped == 0
    assert parser.garbage_bytes == 0


garbage_blobs = st.builds(
    lambda blob, times: blob * times,
    st.binary(min_size=1, max_size=64),
    st.integers(min_value=1, max_value=400),
)


@HEAVY_SETTINGS
@given(data=st.data())
def test_property_garbage_anywhere_never_raises_and_stays_bounded(
    data: st.DataObject,
) -> None:
    """Garbage before, between and inside parts: no exception, bounded buffer."""
    stream = data.draw(streams(max_frames=4, max_payload=200))
    body = bytearray(stream.data)
    insertions = data.draw(
        st.lists(st.tuples(st.integers(0, len(body)), garbage_blobs), max_size=4)
    )
    for offset, blob in sorted(insertions, reverse=True):
        body[offset:offset] = blob
    extra = data.draw(st.sampled_from([b"", b"\n--", b"\r\n--x\r\n", b"--" * 3000]))
    body += extra
    max_size = 4096
    parser = MjpegParser(
        data.draw(st.none() | st.just(parse_boundary(stream.content_type))),
        max_frame_size=max_size,
    )
    cuts = data.draw(st.lists(st.integers(0, len(body)), max_size=40).map(sorted))
    frames = feed_all(parser, split(bytes(body), cuts))
    assert parser.buffered <= max(max_size, MAX_HEADER_SIZE) + 1024
    for frame in frames:
        assert frame.startswith(SOI)
        assert frame.endswith(EOI)
        assert len(frame) <= max_size
    assert parser.frames == len(frames)


@HEAVY_SETTINGS
@given(data=st.data())
def test_property_garbage_between_parts_is_skipped(data: st.DataObject) -> None:
    """Garbage lines between Content-Length parts: all frames still come out."""
    stream = data.draw(streams(allow_no_cl=False, max_frames=4, max_payload=200))
    body = stream.data
    # Insert garbage (no '-', ending with a line end) just before delimiters.
    positions = [i for i in range(len(body)) if body.startswith(b"\n", i)]
    chosen = data.draw(st.lists(st.sampled_from(positions), max_size=3, unique=True))
    garbage = 0
    pieces = bytearray()
    last = 0
    for pos in sorted(chosen):
        pieces += body[last : pos + 1]
        blob = data.draw(st.binary(min_size=1, max_size=200)).replace(b"-", b"_")
        pieces += blob + b"\n"
        garbage += len(blob.translate(None, b" \t\r\n"))
        last = pos + 1
    pieces += body[last:]
    mutated = bytes(pieces)
    parser = MjpegParser(parse_boundary(stream.content_type))
    cuts = data.draw(st.lists(st.integers(0, len(mutated)), max_size=30).map(sorted))
    frames = feed_all(parser, split(mutated, cuts))
    # Inserting after an LF can only land between parts or in a header block
    # (dropping that part), or inside a JPEG body (the Content-Length check
    # then drops that part): every emitted frame is an original one, in order.
    it = iter(stream.frames)
    assert all(any(f == g for g in it) for f in frames)
    if parser.dropped == 0:
        assert frames == stream.frames
        assert parser.garbage_bytes <= garbage + stream.garbage


@HEAVY_SETTINGS
@given(
    chunks=st.lists(st.binary(max_size=2000), max_size=30),
    boundary=st.none() | st.sampled_from(["x", "--b", "printcamframe"]),
)
def test_property_pure_garbage(chunks: list[bytes], boundary: str | None) -> None:
    """Arbitrary bytes never raise and never grow the buffer past the bound."""
    parser = MjpegParser(boundary, max_frame_size=4096)
    for frame in feed_all(parser, chunks):
        assert frame.startswith(SOI)
        assert frame.endswith(EOI)


# ------------------------------------------------------------ parse_boundary


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ("multipart/x-mixed-replace;boundary=boundarydonotcross", "boundarydonotcross"),
        (
            "multipart/x-mixed-replace; boundary=boundarydonotcross",
            "boundarydonotcross",
        ),
        ("multipart/x-mixed-replace;boundary=--myboundary", "myboundary"),
        ("multipart/x-mixed-replace; boundary=--myboundary", "myboundary"),
        ('multipart/x-mixed-replace; boundary="--myboundary"', "myboundary"),
        ('multipart/x-mixed-replace;boundary="frame"', "frame"),
        ("multipart/x-mixed-replace;BOUNDARY=frame", "frame"),
        ("Multipart/X-Mixed-Replace ; Boundary = frame ", "frame"),
        ("multipart/x-mixed-replace;\tboundary=frame;charset=utf-8", "frame"),
        ("multipart/x-mixed-replace; charset=utf-8; boundary=frame", "frame"),
        ("multipart/x-mixed-replace; foo; boundary=frame", "frame"),
        ("multipart/x-mixed-replace; boundary=frame; ", "frame"),
        ('multipart/x-mixed-replace; boundary="a;b \\"c\\""; x=1', 'a;b "c"'),
        ('multipart/x-mixed-replace; boundary="unterminated', "unterminated"),
        ("multipart/x-mixed-replace; boundary=----=_Part_0_123", "=_Part_0_123"),
        (CONTENT_TYPE, PART_BOUNDARY),
        ("multipart/x-mixed-replace", None),
        ("multipart/x-mixed-replace;", None),
        ("multipart/x-mixed-replace; charset=utf-8", None),
        ("multipart/x-mixed-replace; boundary=", None),
        ('multipart/x-mixed-replace; boundary=""', None),
        ("multipart/x-mixed-replace; boundary=--", None),
        ("multipart/x-mixed-replace; boundary", None),
        ("multipart/mixed; boundary=frame", None),
        ("image/jpeg", None),
        ("", None),
    ],
)
def test_parse_boundary(content_type: str, expected: str | None) -> None:
    assert parse_boundary(content_type) == expected


def test_constants() -> None:
    assert PART_BOUNDARY == "printcamframe"
    assert CONTENT_TYPE == "multipart/x-mixed-replace;boundary=printcamframe"
    assert DEFAULT_MAX_FRAME_SIZE == 8 * 1024 * 1024
    assert MjpegParser().max_frame_size == DEFAULT_MAX_FRAME_SIZE


# ------------------------------------------------------------ encode_part


def test_encode_part_exact_bytes() -> None:
    jpeg = fake_jpeg(b"abc")
    assert encode_part(jpeg) == (
        b"--printcamframe\r\n"
        b"Content-Type: image/jpeg\r\n"
        b"Content-Length: 7\r\n"
        b"\r\n" + jpeg + b"\r\n"
    )
    assert encode_part(jpeg, "other").startswith(b"--other\r\n")


def test_encode_part_round_trip_custom_boundary() -> None:
    frames = [fake_jpeg(bytes([i]) * i) for i in range(5)]
    body = b"".join(encode_part(f, "zz") for f in frames)
    assert MjpegParser("zz").feed(body) == frames
    assert MjpegParser().feed(body) == frames


# ------------------------------------------------------------ helpers


def part(
    jpeg: bytes,
    boundary: bytes = b"b",
    *,
    cl: int | None | bool = True,
    ctype: bytes | None = b"image/jpeg",
    extra: bytes = b"",
    eol: bytes = b"\r\n",
) -> bytes:
    """One part in a configurable style (cl=True: correct length)."""
    head = b"--" + boundary + eol
    if ctype is not None:
        head += b"Content-Type: " + ctype + eol
    if cl is True:
        head += b"Content-Length: %d" % len(jpeg) + eol
    elif cl is not None and cl is not False:
        head += b"Content-Length: %d" % cl + eol
    head += extra
    return head + eol + jpeg + eol


J1 = fake_jpeg(b"one")
J2 = fake_jpeg(b"two--b\r\n--b\r\n")
J3 = fake_jpeg(b"three" * 10)


def bytewise(parser: MjpegParser, data: bytes) -> list[bytes]:
    """Feed one byte at a time."""
    frames: list[bytes] = []
    for i in range(len(data)):
        frames += parser.feed(data[i : i + 1])
    return frames


# ------------------------------------------------------------ inference


def test_inference_from_first_dash_line() -> None:
    body = b"preamble text\r\n\r\n" + part(J1, b"abc") + part(J3, b"abc")
    parser = MjpegParser(None)
    assert parser.boundary is None
    assert bytewise(parser, body) == [J1, J3]
    assert parser.boundary == "abc"
    assert parser.boundary_inferences == 1
    assert parser.garbage_bytes == len(b"preambletext")


def test_inference_skips_invalid_candidate_lines() -> None:
    long_line = b"--" + b"x" * 300 + b"\r\n" + b"-" * 70 + b"dashes\r\n"
    body = (
        b"-x not a boundary\r\n"
        b"--\r\n"
        b"--bad\x01chars\r\n"
        + long_line
        + b"x--y\r\n"
        + part(J1, b"good")
        + part(J3, b"good")
    )
    assert MjpegParser().feed(body) == [J1, J3]
    parser = MjpegParser()
    assert bytewise(parser, body) == [J1, J3]
    assert parser.boundary == "good"


def test_inference_with_leading_dash_boundary_lines() -> None:
    body = part(J1, b"----myb") + part(J3, b"----myb")
    parser = MjpegParser()
    assert parser.feed(body) == [J1, J3]
    assert parser.boundary == "myb"


def test_wrong_inferred_boundary_is_replaced() -> None:
    # The preamble has a "--" line; once max_frame_size bytes went by
    # without a delimiter the parser infers again.
    parser = MjpegParser(max_frame_size=1000)
    body = b"--wrong\r\n" + b"." * 3000 + b"\r\n" + part(J1) + part(J3)
    assert parser.feed(body) == [J1, J3]
    assert parser.boundary == "b"
    assert parser.boundary_inferences == 2


def test_wrong_declared_boundary_falls_back_to_inference() -> None:
    parser = MjpegParser("declared", max_frame_size=1000)
    body = b"".join(part(fake_jpeg(bytes(200)), b"actual") for _ in range(10))
    frames = bytewise(parser, body)
    assert parser.boundary == "actual"
    assert frames
    assert all(f == fake_jpeg(bytes(200)) for f in frames)


def test_empty_boundary_means_infer() -> None:
    assert MjpegParser("").boundary is None
    assert MjpegParser("--").boundary is None
    assert MjpegParser("  --x ").boundary == "x"


def test_boundary_that_is_not_utf8() -> None:
    """A header boundary with non-UTF-8 bytes matches those bytes in the body.

    aiohttp decodes header bytes with ``surrogateescape``; the parser used to
    raise UnicodeEncodeError on such a boundary, which ended the stream with
    an untyped error (found by tests/fuzz/test_fuzz_mjpeg.py).
    """
    raw = b"\xff\xfeb"
    header = b"multipart/x-mixed-replace;boundary=" + raw
    boundary = parse_boundary(header.decode("utf-8", "surrogateescape"))
    assert boundary == "\udcff\udcfeb"
    body = b"".join(
        b"--" + raw + b"\r\nContent-Type: image/jpeg\r\n\r\n" + jpeg + b"\r\n"
        for jpeg in (J1, J2)
    )
    assert MjpegParser(boundary).feed(body + b"--" + raw + b"--\r\n") == [J1, J2]
    # Surrogates no header can carry do not raise either.
    assert MjpegParser("\ud800x").boundary == "?x"


# ------------------------------------------------------------ delimiter styles


@pytest.mark.parametrize("given", ["--myboundary", "myboundary"])
@pytest.mark.parametrize("written", [b"--myboundary", b"----myboundary"])
def test_boundary_with_leading_dashes(given: str, written: bytes) -> None:
    body = part(J1, written[2:]) + part(J2, written[2:])
    assert MjpegParser(given).feed(body) == [J1, J2]


def test_lf_only_and_mixed_line_ends() -> None:
    body = part(J1, eol=b"\n") + part(J2, cl=None, eol=b"\n") + b"--b\r\n"
    assert MjpegParser("b").feed(body) == [J1]  # J2 contains "\n--b\r\n"
    body = (
        b"--b\nContent-type: image/jpeg\r\nCONTENT-LENGTH: %d\n\r\n" % len(J1)
        + J1
        + b"\n--b\r\nx-timestamp: 1\n\n"
        + J3
        + b"\r\n--b--"
    )
    assert bytewise(MjpegParser("b"), body) == [J1, J3]


def test_delimiter_padding_and_lookalikes() -> None:
    body = (
        b"--b \t \r\n\r\n"
        + J1
        + b"\r\n--bb\r\n"  # another boundary: part of the body
        + b"--b-x\r\n"  # neither
        + b"--b\rx\n"  # CR not followed by LF
        + b"--b"
        + b" " * 100  # too much padding
        + b"\r\n--b\r\n\r\n"
        + J3
        + b"\r\n--b\r\n"
    )
    expected_first = body[len(b"--b \t \r\n\r\n") : body.index(b"\r\n--b\r\n\r\n" + J3)]
    parser = MjpegParser("b")
    # The first body does not end with FF D9: dropped as non-JPEG.
    assert parser.feed(body) == [J3]
    assert not expected_first.endswith(EOI)
    assert parser.non_jpeg_dropped == 1


def test_delimiter_right_after_eoi() -> None:
    body = b"--b\r\n\r\n" + J1 + b"--b\r\n\r\n" + J3 + b"--b--"
    assert MjpegParser("b").feed(body) == [J1, J3]
    assert bytewise(MjpegParser("b"), body) == [J1, J3]


def test_too_many_dashes_is_not_a_delimiter() -> None:
    body = part(J1) + b"\r\n" + b"-" * 80 + b"b\r\n" + part(J3)
    parser = MjpegParser("b")
    assert parser.feed(body) == [J1, J3]
    assert parser.garbage_bytes == 81
    # Same inside a header block.
    body = b"--b\r\n" + b"-" * 80 + b"b\r\n\r\n" + part(J3)
    parser = MjpegParser("b")
    assert parser.feed(body) == [J3]
    assert parser.malformed_dropped == 1


def test_close_delimiter_then_more_parts() -> None:
    body = part(J1) + b"--b--\r\nepilogue\r\n" + part(J3) + b"--b--"
    parser = MjpegParser("b")
    assert bytewise(parser, body) == [J1, J3]
    assert parser.garbage_bytes == len(b"epilogue")


def test_garbage_and_preamble_are_counted() -> None:
    body = b"junk junk\r\n\r\n" + part(J1) + b"\r\n\r\nxx\r\n" + part(J3)
    parser = MjpegParser("b")
    assert parser.feed(body) == [J1, J3]
    assert parser.garbage_bytes == len(b"junkjunkxx")
    assert parser.dropped == 0


# ------------------------------------------------------------ headers


def test_headerless_part_and_missing_blank_line() -> None:
    body = (
        b"--b\r\n"
        + J1
        + b"\r\n--b\r\nContent-Type: image/jpeg\r\n"
        + J3
        + b"\r\n--b\r\n"
    )
    assert MjpegParser("b").feed(body) == [J1, J3]
    assert bytewise(MjpegParser("b"), body) == [J1, J3]


def test_header_line_without_colon_is_malformed() -> None:
    for bad in (b"this is not a header", b"--other-boundary"):
        body = b"--b\r\n" + bad + b"\r\n\r\n" + J1 + b"\r\n" + part(J3)
        parser = MjpegParser("b")
        assert parser.feed(body) == [J3]
        assert parser.malformed_dropped == 1


def test_folded_header_line() -> None:
    body = part(J1, extra=b"X-Long: a\r\n  continued\r\n") + part(J3)
    assert MjpegParser("b").feed(body) == [J1, J3]


def test_delimiter_inside_header_block() -> None:
    body = (
        b"--b\r\nContent-Type: image/jpeg\r\n" + part(J1) + b"--b\r\n--b\r\n" + part(J3)
    )
    parser = MjpegParser("b")
    assert parser.feed(body) == [J1, J3]
    assert parser.malformed_dropped == 1  # the part cut short by a delimiter
    body = b"--b\r\nContent-Type: image/jpeg\r\n--b--\r\n" + part(J3)
    parser = MjpegParser("b")
    assert parser.feed(body) == [J3]
    assert parser.malformed_dropped == 1


def test_header_block_too_long() -> None:
    huge = b"X-Pad: " + b"p" * 100 + b"\r\n"
    body = b"--b\r\n" + huge * 200 + b"\r\n" + J1 + b"\r\n" + part(J3)
    parser = MjpegParser("b")
    assert parser.feed(body) == [J3]
    assert parser.malformed_dropped == 1
    # One endless header line, fed in pieces.
    parser = MjpegParser("b")
    frames = feed_all(
        parser, [b"--b\r\nX-Pad: "] + [b"q" * 1000] * 40 + [b"\r\n" + part(J3)]
    )
    assert frames == [J3]
    assert parser.malformed_dropped == 1


def test_invalid_content_length_value_is_ignored() -> None:
    body = part(J1, cl=None, extra=b"Content-Length: abc\r\n") + part(J3)
    assert MjpegParser("b").feed(body) == [J1, J3]


def test_content_length_zero() -> None:
    parser = MjpegParser("b")
    assert parser.feed(part(b"", cl=0) + part(J1)) == [J1]
    assert parser.non_jpeg_dropped == 1


# ------------------------------------------------------------ non-JPEG parts


def test_non_jpeg_parts_are_dropped() -> None:
    body = (
        part(b"error: camera busy", ctype=b"text/plain")
        + part(J1)
        + part(b"error", ctype=b"text/plain; charset=utf-8", cl=None)
        + part(J2, ctype=b"TEXT/HTML")  # JPEG bytes but declared as text
        + part(b"not a jpeg")
        + part(SOI + b"no end")
        + part(b"no start" + EOI)
        + part(J1, ctype=b"application/octet-stream")
        + part(J3, ctype=None)
        + part(b"", cl=None)
        + b"--b--"
    )
    parser = MjpegParser("b")
    assert parser.feed(body) == [J1, J1, J3]
    assert parser.non_jpeg_dropped == 7
    assert parser.dropped == 7
    assert bytewise(MjpegParser("b"), body) == [J1, J1, J3]


def test_text_part_with_structured_jpeg_body_is_not_emitted_early() -> None:
    jpeg = structured_jpeg(b"scan")
    parser = MjpegParser("b")
    assert parser.feed(part(jpeg, cl=None, ctype=b"text/plain")) == []
    assert parser.feed(b"--b--") == []
    assert parser.non_jpeg_dropped == 1


def test_trailing_padding_after_eoi_is_trimmed() -> None:
    padded = J1 + b"\x00\x00\x00 \r\n"
    parser = MjpegParser("b")
    assert parser.feed(part(padded) + part(padded, cl=None) + b"--b--") == [J1, J1]


# ------------------------------------------------------------ Content-Length


def test_content_length_keeps_boundary_inside_jpeg() -> None:
    jpeg = fake_jpeg(
        b"\r\n--b\r\nContent-Type: image/jpeg\r\n\r\n" + J1 + b"\r\n--b--\r\n"
    )
    parser = MjpegParser("b")
    assert bytewise(parser, part(jpeg) + part(J3)) == [jpeg, J3]
    assert parser.dropped == 0


def test_content_length_frame_emitted_when_line_end_arrives() -> None:
    parser = MjpegParser("b")
    first = part(J1)
    assert parser.feed(first[:-2]) == []  # fake JPEG: wait for what follows
    assert parser.feed(first[-2:-1]) == []  # lone CR: still undecided
    assert parser.feed(first[-1:]) == [J1]
    parser = MjpegParser("b")
    assert parser.feed(part(J1, eol=b"\n")) == [J1]  # a lone LF is enough
    parser = MjpegParser("b")
    assert parser.feed(part(J1)[:-2] + b"-") == []
    assert parser.feed(b"-b\r\n") == [J1]


def test_structured_jpeg_with_content_length_emitted_without_trailer() -> None:
    jpeg = structured_jpeg(b"\xff\xd9 scan data \xff", rst_every=3)
    body = part(jpeg)
    parser = MjpegParser("b")
    assert parser.feed(body[:-2]) == [jpeg]
    assert parser.feed(body[-2:] + part(J1)) == [J1]
    assert parser.dropped == 0
    assert parser.garbage_bytes == 0


JW = fake_jpeg(b"wrong length " * 3)


@pytest.mark.parametrize("delta", [-9, -1, 9, 40, 100])
def test_wrong_content_length_is_dropped_and_resynchronised(delta: int) -> None:
    body = part(J1) + part(JW, cl=len(JW) + delta) + part(J3) + part(J1) + b"--b--"
    parser = MjpegParser("b")
    assert parser.feed(body) == [J1, J3, J1]
    assert parser.malformed_dropped == 1
    assert parser.dropped == 1
    parser = MjpegParser("b")
    assert bytewise(parser, body) == [J1, J3, J1]
    assert parser.malformed_dropped == 1


@pytest.mark.parametrize("delta", [1, 2])
def test_content_length_counting_the_line_end_is_tolerated(delta: int) -> None:
    # The declared length swallows the CR (LF) after the JPEG: what follows
    # is still a line end or a delimiter, and the trailing CR/LF is trimmed.
    body = part(J1) + part(JW, cl=len(JW) + delta) + part(J3)
    parser = MjpegParser("b")
    assert parser.feed(body) == [J1, JW, J3]
    assert parser.dropped == 0


def test_wrong_content_length_single_byte_after() -> None:
    # Only one byte after the declared length has arrived, and it cannot
    # start a line end or delimiter: dropped at once.
    parser = MjpegParser("b")
    data = part(J1, cl=len(J1) - 1)
    assert parser.feed(data[:-2]) == []
    assert parser.malformed_dropped == 1


# ------------------------------------------------------------ oversize


def test_oversize_by_content_length() -> None:
    big = fake_jpeg(b"\x00" * 5000)
    parser = MjpegParser("b", max_frame_size=4096)
    body = part(J1) + part(big) + part(J3)
    assert feed_all(parser, [body[i : i + 100] for i in range(0, len(body), 100)]) == [
        J1,
        J3,
    ]
    assert parser.oversize_dropped == 1
    assert parser.dropped == 1
    assert parser.garbage_bytes == 0


def test_oversize_without_content_length_is_bounded() -> None:
    big = fake_jpeg(b"\x00" + b"z" * 50_000)
    parser = MjpegParser("b", max_frame_size=4096)
    body = part(J1) + part(big, cl=None) + part(J3) + b"--b--"
    assert feed_all(parser, [body[i : i + 7] for i in range(0, len(body), 7)]) == [
        J1,
        J3,
    ]
    assert parser.oversize_dropped == 1
    assert parser.garbage_bytes == 0


def test_oversize_without_content_length_just_over_the_limit() -> None:
    # Complete in one feed: detected when the delimiter is found.
    big = fake_jpeg(b"\x00" + b"z" * 4100)
    parser = MjpegParser("b", max_frame_size=4100)
    assert parser.feed(part(big, cl=None) + part(J3)) == [J3]
    assert parser.oversize_dropped == 1


def test_oversize_structured_jpeg_without_content_length() -> None:
    big = structured_jpeg(b"y" * 6000)
    parser = MjpegParser("b", max_frame_size=4096)
    # The structural walk sees the end past the limit before any delimiter.
    assert parser.feed(part(big, cl=None)) == []
    assert parser.oversize_dropped == 1
    assert parser.feed(part(J3)) == [J3]


def test_endless_garbage_keeps_buffer_bounded() -> None:
    parser = MjpegParser("b", max_frame_size=4096)
    assert parser.feed(part(J3)) == [J3]  # the boundary is known to be right
    chunk = (b"\n--" + b"x" * 50 + b"-b ") * 20
    for _ in range(500):
        assert parser.feed(chunk) == []
        assert parser.buffered < 4096
    assert parser.feed(b"\r\n" + part(J1)) == [J1]
    # Endless transport padding after a delimiter candidate.
    parser = MjpegParser("b", max_frame_size=4096)
    parser.feed(b"--b")
    for _ in range(100):
        parser.feed(b" " * 100)
        assert parser.buffered < 4096


def test_huge_single_feed_is_processed_in_slices() -> None:
    parser = MjpegParser("b", max_frame_size=4096)
    assert parser.feed(b"g" * 1_000_000 + b"\r\n" + part(J1)) == [J1]
    assert parser.buffered < 1024
    parser = MjpegParser(max_frame_size=4096)
    assert parser.feed(b"g\n" * 500_000 + part(J1)) == [J1]


# ------------------------------------------------------------ no Content-Length


def test_no_content_length_emitted_at_next_delimiter() -> None:
    parser = MjpegParser("b")
    assert parser.feed(part(J1, cl=None)) == []
    assert parser.feed(b"--b") == []
    assert parser.feed(b"\r") == []
    assert parser.feed(b"\n") == [J1]


def test_structured_jpeg_without_content_length_emitted_early() -> None:
    jpegs = [
        structured_jpeg(b"\xff\xd9\xff\xd8 data"),
        structured_jpeg(b"scan one", b"scan \xff two", rst_every=2, fill=True),
    ]
    for jpeg in jpegs:
        parser = MjpegParser("b")
        body = part(jpeg, cl=None)
        assert bytewise(parser, body[: -len(b"\r\n")]) == [jpeg]
        assert parser.feed(b"\r\n--b\r\n") == []
        assert parser.garbage_bytes == 0


def _pillow_jpegs() -> dict[str, bytes]:
    """Real encoder output: baseline, progressive, restart markers, thumbnail."""
    image_mod = pytest.importorskip("PIL.Image")
    rng = random.Random(1234)
    img = image_mod.frombytes("RGB", (160, 120), rng.randbytes(160 * 120 * 3))

    def save(image: Any, **kwargs: Any) -> bytes:
        out = io.BytesIO()
        image.save(out, "JPEG", **kwargs)
        return out.getvalue()

    jpegs = {
        "baseline": save(img, quality=85),
        "progressive": save(img, quality=85, progressive=True),
        "optimized_444": save(img, quality=50, optimize=True, subsampling=0),
        "gray": save(img.convert("L")),
    }
    with contextlib.suppress(TypeError, ValueError, OSError):
        jpegs["restart"] = save(img, restart_marker_blocks=4)
    thumb = save(img.resize((32, 24)))
    base = jpegs["baseline"]
    jpegs["exif_thumbnail"] = (
        base[:2] + seg(0xE1, b"Exif\x00\x00MM\x00*" + thumb) + base[2:]
    )
    return jpegs


def test_real_jpegs_without_content_length_emitted_before_next_delimiter() -> None:
    for name, jpeg in _pillow_jpegs().items():
        body = part(jpeg, cl=None)  # delimiter-first: nothing follows yet
        parser = MjpegParser("b")
        frames = feed_all(
            parser, [body[i : i + 1000] for i in range(0, len(body), 1000)]
        )
        assert frames == [jpeg], name
        walker = mjpeg._JpegWalker()
        assert walker.advance(bytearray(jpeg), 0, len(jpeg)) == len(jpeg), name


def test_early_emission_trailer_counts_as_garbage() -> None:
    jpeg = structured_jpeg(b"scan")
    body = part(jpeg + b"TRAILER", cl=None) + b"--b--"
    # Whether the delimiter arrives with the JPEG or later, the result is the
    # same: the JPEG up to its EOI, the trailer counted as garbage.
    for chunks in ([body], [body[:-5], body[-5:]], [bytes([c]) for c in body]):
        parser = MjpegParser("b")
        assert feed_all(parser, chunks) == [jpeg]
        assert parser.garbage_bytes == len(b"TRAILER")
        assert parser.dropped == 0


@pytest.mark.parametrize(
    "body",
    [
        SOI + SOF0 + EOI,  # EOI before any SOS
        SOI + SOF0 + SOS + b"x\xff\xd8y" + EOI,  # SOI inside entropy data
        SOI + b"\xff\x00" + EOI,  # invalid marker 00
        SOI + b"\xff\xd8" + EOI,  # second SOI
        SOI + b"\xff\xe0\x00\x01" + EOI,  # segment length < 2
        SOI + b"no marker" + EOI,
        b"\xff\xe0" + SOF0 + SOS + EOI,  # no SOI
    ],
)
def test_walker_gives_up_on_malformed_structure(body: bytes) -> None:
    walker = mjpeg._JpegWalker()
    buf = bytearray(body)
    assert walker.advance(buf, 0, len(buf)) is None
    assert walker.advance(buf, 0, len(buf)) is None  # stays given up
    # The part is then delimited by the boundary as usual.
    parser = MjpegParser("b")
    expected = [body] if body.startswith(SOI) else []
    assert parser.feed(part(body, cl=None) + b"--b\r\n") == expected


def test_walker_resumes_incrementally() -> None:
    jpeg = structured_jpeg(b"abc\xff", b"d\xffef", rst_every=1, fill=True)
    walker = mjpeg._JpegWalker()
    buf = bytearray(b"PREFIX")
    for byte in jpeg[:-1]:
        buf.append(byte)
        assert walker.advance(buf, 6, len(buf)) is None
    buf.append(jpeg[-1])
    assert walker.advance(buf, 6, len(buf)) == len(jpeg)
    assert walker.advance(buf, 6, len(buf)) == len(jpeg)


# ------------------------------------------------------------ performance


def test_performance_one_byte_chunks_is_linear() -> None:
    frame = fake_jpeg(b"\x00" + bytes(range(256)) * 400)  # ~100 KB
    for body in (part(frame) + b"--b--", part(frame, cl=None) + b"--b--"):
        parser = MjpegParser("b")
        start = time.perf_counter()
        assert bytewise(parser, body) == [frame]
        assert time.perf_counter() - start < 5.0


def test_performance_realistic_stream() -> None:
    frame = structured_jpeg(bytes(range(256)) * 800)  # ~200 KB
    body = b"".join(part(frame, cl=cl) for cl in (True, None) * 15) + b"--b--"
    parser = MjpegParser("b")
    start = time.perf_counter()
    frames = feed_all(parser, [body[i : i + 4096] for i in range(0, len(body), 4096)])
    assert time.perf_counter() - start < 5.0
    assert frames == [frame] * 30
