"""Fuzz target: the MJPEG multipart parser (custom_components/printcam/mjpeg.py).

A hostile or broken camera controls the whole body of the stream and the
``Content-Type`` header. The generators build streams the way cameras write
them (delimiter lines with any dashes and padding, header blocks, JPEGs with
and without structure, with right, wrong and absurd ``Content-Length``) and
then mutate them (bit flips, protocol tokens spliced in, spans deleted,
duplicated or repeated thousands of times, truncation), cut into any chunks.
Header values are built as bytes and decoded the way aiohttp decodes them
(UTF-8 with ``surrogateescape``), so non-UTF-8 bytes reach the parser as
they would in production.

Checked: no exception at all (the parser documents none), the buffer stays
within ``max_frame_size`` + 64 KiB after every feed, peak allocation stays
bounded however long the stream (tracemalloc, on a share of the budget),
and every frame is a ``FF D8 ... FF D9`` slice of the input no larger than
``max_frame_size``. ``tests/test_mjpeg.py`` holds the round-trip
properties; this module only attacks.
"""

from __future__ import annotations

from itertools import pairwise

from hypothesis import given, strategies as st

from custom_components.printcam.mjpeg import (
    DEFAULT_MAX_FRAME_SIZE,
    MjpegParser,
    parse_boundary,
    read_header_value,
)

from .support import fuzz_settings, traced_peak

SOI = b"\xff\xd8"
EOI = b"\xff\xd9"
SLACK = 64 * 1024
"""What the parser may hold on top of ``max_frame_size`` (its docstring)."""

BCHARS = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'()+_,-./:=? "

boundaries = st.sampled_from(
    ["printcamframe", "boundarydonotcross", "myboundary", "=_Part_0_123", "a", "x y"]
) | st.text(BCHARS, min_size=1, max_size=24).filter(lambda b: b.strip("- "))


def seg(marker: int, payload: bytes) -> bytes:
    """A JPEG marker segment with its length field."""
    return bytes((0xFF, marker)) + (len(payload) + 2).to_bytes(2, "big") + payload


def stuffed(data: bytes) -> bytes:
    """Entropy-coded-like data: every FF followed by a stuffed 00."""
    return data.replace(b"\xff", b"\xff\x00")


@st.composite
def jpegs(draw: st.DrawFn, boundary: bytes) -> bytes:
    """A JPEG-ish body: plain, structured, or structured and then broken."""
    kind = draw(st.sampled_from(["plain", "structured", "broken", "tiny"]))
    if kind == "tiny":
        return draw(st.sampled_from([b"", SOI, EOI, SOI + EOI, b"\xff", SOI + b"\xff"]))
    if kind == "plain":
        return SOI + draw(st.binary(max_size=600)) + EOI
    # APP1 may carry a thumbnail (its own FF D9) and the delimiter itself.
    app1 = draw(st.binary(max_size=80)) + draw(
        st.sampled_from([b"", EOI, b"\r\n--" + boundary + b"\r\n", SOI + EOI])
    )
    scan = stuffed(draw(st.binary(max_size=400)))
    if draw(st.booleans()):
        scan += bytes((0xFF, 0xD0 + draw(st.integers(0, 7))))
        scan += stuffed(draw(st.binary(max_size=50)))
    body = b"".join(
        (
            SOI,
            seg(0xE1, app1),
            seg(0xC0, bytes.fromhex("0800100010030122000211010311")),
            seg(0xDA, bytes.fromhex("03010002110311003f00")),
            scan,
            draw(st.sampled_from([b"", b"\xff", b"\xff\xff"])),  # fill bytes
            EOI,
        )
    )
    if kind == "broken":
        # A lying segment length, a cut, or bytes after the EOI.
        at = draw(st.integers(0, len(body)))
        body = draw(
            st.sampled_from(
                [
                    body[:at],
                    body[:at] + b"\xff\xe0\xff\xff" + body[at:],
                    body[:at] + b"\xff\xc0\x00\x01" + body[at:],
                    body + draw(st.binary(max_size=40)),
                ]
            )
        )
    return body


@st.composite
def parts(draw: st.DrawFn, boundary: bytes) -> bytes:
    """One part: delimiter line, header block, body, trailer; each may be off."""
    eol = st.sampled_from([b"\r\n", b"\n"])
    dashes = draw(st.sampled_from([2, 2, 2, 3, 4, 64, 65, 66, 70]))
    delimiter = b"-" * dashes + boundary
    delimiter += draw(st.sampled_from([b"", b"", b"--", b" \t", b" " * 70]))
    delimiter += draw(st.sampled_from([b"\r\n", b"\n", b"\r\n", b"", b"\r"]))
    body = draw(jpegs(boundary))
    length = len(body)
    headers: list[bytes] = []
    for _ in range(draw(st.integers(0, 4))):
        header = draw(
            st.sampled_from(
                [
                    b"Content-Type: image/jpeg",
                    b"content-type: IMAGE/JPEG; q=1",
                    b"Content-Type: text/plain",
                    b"Content-Type: application/octet-stream",
                    b"Content-Length: %d" % length,
                    b"content-length:%d " % length,
                    b"Content-Length: %d" % (length + draw(st.integers(-3, 3))),
                    b"Content-Length: %d" % draw(st.integers(0, 2**64)),
                    b"Content-Length: " + b"9" * 40,
                    b"Content-Length: -5",
                    b"Content-Length: 0x10",
                    b"Content-Length: \xd9\xa1\xd9\xa2",  # Arabic-Indic digits
                    b"X-Timestamp: 1712345678.123",
                    b" folded continuation",
                    b"no colon here",
                    b": no name",
                    b"X-Long: " + b"a" * draw(st.sampled_from([100, 16 * 1024, 20000])),
                    b"--" + boundary,
                ]
            )
        )
        headers.append(header + draw(eol))
    blank = draw(st.sampled_from([b"\r\n", b"\n", b""]))
    trailer = draw(st.sampled_from([b"\r\n", b"\n", b"", b"\r", b"-", b"junk\r\n"]))
    return delimiter + b"".join(headers) + blank + body + trailer


TOKENS = (
    b"\r\n",
    b"\n",
    b"\r",
    b"-",
    b"--",
    b"\x00",
    b" " * 65,
    SOI,
    EOI,
    b"\xff",
    b"\xff\xda\x00\x02",
    b"\r\n\r\n",
    b"Content-Length: 4294967296\r\n",
    b"Content-Length: 8\r\n\r\n",
    b"Content-Type: text/html\r\n",
)


@st.composite
def mutated(draw: st.DrawFn, data: bytes, boundary: bytes) -> bytes:
    """Apply a few structure-aware mutations to ``data``."""
    buf = bytearray(data)
    tokens = (
        *TOKENS,
        b"\r\n--" + boundary + b"\r\n",
        b"\n--" + boundary + b"--\n",
        b"--" + boundary[:-1],
    )
    for _ in range(draw(st.integers(0, 4))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "dup", "repeat", "cut"]))
        at = draw(st.integers(0, len(buf)))
        if op == "flip" and at < len(buf):
            buf[at] ^= draw(st.integers(1, 255))
        elif op == "insert":
            buf[at:at] = draw(
                st.sampled_from(tokens) | st.binary(min_size=1, max_size=8)
            )
        elif op == "delete":
            del buf[at : at + draw(st.integers(1, 64))]
        elif op == "dup":
            buf[at:at] = buf[at : at + draw(st.integers(1, 256))]
        elif op == "repeat":
            unit = (
                draw(st.sampled_from(tokens))
                if draw(st.booleans())
                else buf[at : at + 16]
            )
            buf[at:at] = bytes(unit) * draw(st.integers(100, 5000))
        elif op == "cut":
            del buf[at:]
    return bytes(buf)


@st.composite
def hostile_streams(draw: st.DrawFn) -> tuple[bytes, bytes]:
    """Return ``(boundary, body)``: a few parts, preamble/epilogue, mutations."""
    boundary = draw(boundaries).encode()
    pieces = [draw(st.sampled_from([b"", b"\r\n", b"preamble\r\n", b"--\r\n", b"--"]))]
    pieces += draw(st.lists(parts(boundary), min_size=1, max_size=5))
    pieces.append(
        draw(st.sampled_from([b"", b"--" + boundary + b"--\r\n", b"epilogue"]))
    )
    return boundary, draw(mutated(b"".join(pieces), boundary))


@st.composite
def chunked(draw: st.DrawFn, data: bytes) -> list[bytes]:
    """Cut ``data`` at random points, in equal chunks, or not at all."""
    mode = draw(st.sampled_from(["whole", "fixed", "random"]))
    if mode == "whole" or not data:
        return [data]
    if mode == "fixed":
        size = draw(st.sampled_from([1, 2, 3, 7, 64, 1000, 16 * 1024 + 1]))
        if size < 8 and len(data) > 20_000:
            size = 1000  # keep one example affordable
    else:
        cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=30)))
        edges = [0, *cuts, len(data)]
        return [data[a:b] for a, b in pairwise(edges)]
    return [data[i : i + size] for i in range(0, len(data), size)]


def check_frames(parser: MjpegParser, frames: list[bytes], data: bytes) -> None:
    """Every frame is a JPEG-delimited slice of the input within the size limit."""
    for frame in frames:
        assert frame.startswith(SOI)
        assert frame.endswith(EOI)
        assert 4 <= len(frame) <= parser.max_frame_size
        assert frame in data


@fuzz_settings()
@given(
    stream=hostile_streams(),
    declared=st.sampled_from(["right", "dashed", "none", "wrong"]),
    max_frame_size=st.sampled_from([64, 300, 4096, 65536, DEFAULT_MAX_FRAME_SIZE]),
    data=st.data(),
)
def test_fuzz_parser_hostile_streams(
    stream: tuple[bytes, bytes], declared: str, max_frame_size: int, data: st.DataObject
) -> None:
    """No exception, bounded buffer and only valid frames, whatever the camera sends."""
    boundary, body = stream
    given_boundary = {
        "right": boundary.decode(),
        "dashed": "--" + boundary.decode(),
        "none": None,
        "wrong": "notthis",
    }[declared]
    parser = MjpegParser(given_boundary, max_frame_size=max_frame_size)
    frames: list[bytes] = []
    for chunk in data.draw(chunked(body)):
        frames += parser.feed(chunk)
        assert parser.buffered <= max_frame_size + SLACK
    check_frames(parser, frames, body)
    assert parser.frames == len(frames)
    assert min(parser.dropped, parser.garbage_bytes, parser.boundary_inferences) >= 0


@st.composite
def flood_units(draw: st.DrawFn) -> bytes:
    """A unit that, repeated, floods the parser in one of its states."""
    boundary = b"frame"
    return draw(
        st.sampled_from(
            [
                b"-",  # endless dashes
                b"\n",
                b"--frame\r\nX-A: b\r\n",  # parts that never end their headers
                b"X-Header: " + b"h" * 100 + b"\r\n",
                b"--frame\r\nContent-Length: 99999999999\r\n\r\n\xff\xd8",
                b"\xff\xd8" + b"\xff\x00" * 50,  # a body that never ends
                b"--frame\r\n\r\n\xff\xd8\xff\xda\x00\x02" + b"\x00" * 200,
                b"--fram\r\n",  # near-delimiters
                b"\xff",
                b"--" + b"x" * 300 + b"\r\n",  # boundary-like lines too long
            ]
        )
        | parts(boundary)
        | st.binary(min_size=1, max_size=300)
    )


@fuzz_settings(share=0.03)
@given(
    unit=flood_units(),
    total=st.integers(256 * 1024, 768 * 1024),
    chunk_size=st.sampled_from([512, 4096, 16 * 1024]),
    declared=st.sampled_from(["frame", None]),
    max_frame_size=st.sampled_from([1024, 4096, 16 * 1024]),
)
def test_fuzz_parser_allocation_is_bounded(
    unit: bytes,
    total: int,
    chunk_size: int,
    declared: str | None,
    max_frame_size: int,
) -> None:
    """Megabytes of one hostile pattern: peak allocation stays a fixed bound."""
    body = unit * (total // len(unit) + 1)
    chunks = [body[i : i + chunk_size] for i in range(0, len(body), chunk_size)]
    parser = MjpegParser(declared, max_frame_size=max_frame_size)
    frames = 0
    with traced_peak() as peak:
        for chunk in chunks:
            frames += len(parser.feed(chunk))
            assert parser.buffered <= max_frame_size + SLACK
    # The buffer (with bytearray over-allocation), one frame being copied
    # out, the frames of one feed and the interpreter's own small change:
    # at most a third of what was fed, and independent of it.
    bound = 2 * (max_frame_size + SLACK) + 2 * chunk_size + 32 * 1024
    assert peak() <= bound, f"peak {peak()} > {bound} for {len(body)} bytes fed"
    assert parser.frames == frames


# --------------------------------------------------- Content-Type and values


header_bytes = st.binary(max_size=12).filter(
    lambda b: b"\r" not in b and b"\n" not in b
)
param_values = st.one_of(
    boundaries.map(str.encode),
    st.sampled_from(
        [b"", b"--", b"--x", b'"', b'""', b'"a\\"b"', b'"unterminated', b"\xff\xfe"]
    ),
    header_bytes,
    st.builds(
        lambda b: b'"' + b.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"',
        header_bytes,
    ),
)


@st.composite
def content_types(draw: st.DrawFn) -> str:
    """A Content-Type value as aiohttp hands it over (surrogateescape'd bytes)."""
    media = draw(
        st.sampled_from(
            [
                b"multipart/x-mixed-replace",
                b"Multipart/X-Mixed-Replace ",
                b"multipart/mixed",
                b"",
            ]
        )
        | header_bytes
    )
    params = b""
    for _ in range(draw(st.integers(0, 3))):
        name = draw(
            st.sampled_from([b"boundary", b"BOUNDARY", b" Boundary ", b"charset", b"b"])
        )
        params += draw(st.sampled_from([b";", b"; ", b";\t", b" ; ", b";;"])) + name
        if draw(st.integers(0, 5)):
            params += draw(st.sampled_from([b"=", b" = "])) + draw(param_values)
    return (media + params).decode("utf-8", "surrogateescape")


@fuzz_settings()
@given(content_type=content_types())
def test_fuzz_content_type_boundary_reaches_the_parser(content_type: str) -> None:
    """Any Content-Type: parse_boundary and MjpegParser accept what comes out.

    A boundary with bytes that are not UTF-8 must match the same bytes in the
    body, as the camera writes them.
    """
    boundary = parse_boundary(content_type)
    parser = MjpegParser(boundary)
    if boundary is None:
        return
    assert boundary
    assert not boundary.startswith("-")
    if boundary != boundary.strip():
        return  # the parser strips what parse_boundary left (documented)
    raw = boundary.encode("utf-8", "surrogateescape")
    jpeg = SOI + b"frame" + EOI
    body = b"--%s\r\nContent-Length: %d\r\n\r\n%s\r\n--%s--\r\n" % (
        raw,
        len(jpeg),
        jpeg,
        raw,
    )
    assert parser.feed(body) == [jpeg]


def quote(value: str) -> str:
    """An HTTP quoted-string, as the auth code writes them."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@fuzz_settings()
@given(
    text=st.text(max_size=40),
    value=st.text(max_size=20),
    rest=st.text(max_size=10),
    separators=st.sampled_from([";", ",", ";,", ""]),
    data=st.data(),
)
def test_fuzz_read_header_value(
    text: str, value: str, rest: str, separators: str, data: st.DataObject
) -> None:
    """Any text and start: no exception, an index in range; quoting round-trips."""
    start = data.draw(st.integers(0, len(text)))
    read, end = read_header_value(text, start, separators)
    assert start <= end <= len(text) + 1
    assert len(read) <= len(text)
    if not text[start:].lstrip(" \t").startswith('"'):
        assert not any(sep in read for sep in separators)
    quoted = quote(value)
    assert read_header_value(" " + quoted + rest, 0, separators) == (
        value,
        len(quoted) + 1,
    )
