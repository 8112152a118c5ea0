"""Incremental parser and encoder for ``multipart/x-mixed-replace`` MJPEG streams.

Pure code: no I/O, no asyncio, no Home Assistant imports, standard library only.

The parser is fed the *de-chunked* HTTP body of an MJPEG stream, split at
arbitrary points, and returns complete JPEG frames in order.  It is tolerant
of the quirks found in real printer cameras and web servers:

* boundary parameter with or without a leading ``--``; delimiter lines are
  matched as "a line that, after stripping its leading dashes (at least two),
  equals the boundary stripped of its leading dashes", optionally followed by
  ``--`` (closing delimiter) and transport padding (spaces or tabs);
* unknown boundary: inferred from the first line of the body that starts with
  ``--``;
* header names in any case, LF or CRLF line ends (even mixed), extra headers,
  blank lines or a preamble before the first delimiter and between parts;
* parts with ``Content-Length`` (exactly that many bytes are taken, so a
  JPEG that contains the boundary by chance is never cut) and without it
  (the part ends at the next delimiter, or earlier at the structural end of
  the JPEG, see below);
* wrong ``Content-Length``, non-JPEG parts, garbage anywhere, oversize parts:
  never raises; broken parts are dropped and counted, and parsing
  resynchronises on the next delimiter with a bounded buffer.

When is a frame emitted?

* ``Content-Length`` present: as soon as the body and the byte(s) after it
  have arrived and the latter are a line end (LF or CR LF) or ``--`` (start
  of a delimiter).  If the body has arrived but the bytes after it have not
  yet (or only a lone CR or ``-``), the frame is still emitted at once
  when a structural walk of the JPEG (see below) ends exactly at the
  declared length; otherwise it waits for the next byte(s).
* No ``Content-Length``: when the next delimiter line is complete (the body is
  everything between the header block and the line end preceding the
  delimiter, trailing whitespace removed) -- or earlier, as soon as the JPEG
  is structurally complete.  The structural walk follows the JPEG marker
  segments by their lengths (so an EXIF thumbnail, whose own ``FF D9`` lies
  inside the APP1 segment, is skipped) and, inside entropy-coded data, ignores
  stuffed ``FF 00`` and ``RSTn``; it only accepts an ``EOI`` once a ``SOFn``
  and a ``SOS`` segment have been seen, and gives up (falling back to the
  delimiter) at the first inconsistency.  A bare ``FF D9`` byte pair is never
  taken as the end of a frame.  The only case where early emission can differ
  from the delimiter-based result is a JPEG with data appended after its
  ``EOI`` (that trailer is then dropped and counted as garbage); to keep the
  result independent of how the bytes are split, such a trailer is also cut
  off when the delimiter arrives together with the frame.

Other decisions:

* Whitespace and NUL padding after a frame's final ``FF D9`` is trimmed; a
  part that is not ``FF D8 ... FF D9`` after that, or whose Content-Type is
  neither ``image/*`` nor ``application/octet-stream``, counts as non-JPEG.
* If a declared boundary has never matched, or an inferred one stops
  matching, for more than ``max_frame_size`` skipped bytes, the boundary is
  inferred again from the next line starting with ``--``.
* ``garbage_bytes`` counts non-whitespace bytes skipped outside parts
  (preamble, epilogue, junk between parts); bytes of dropped parts are not
  counted there.  ``dropped`` is the total of the three drop counters.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = [
    "CONTENT_TYPE",
    "DEFAULT_MAX_FRAME_SIZE",
    "PART_BOUNDARY",
    "MjpegParser",
    "encode_part",
    "parse_boundary",
]

DEFAULT_MAX_FRAME_SIZE: Final = 8 * 1024 * 1024
"""Largest JPEG frame (bytes) the parser accepts by default."""

PART_BOUNDARY: Final = "printcamframe"
"""Boundary used for the MJPEG streams PrintCam serves."""

CONTENT_TYPE: Final = f"multipart/x-mixed-replace;boundary={PART_BOUNDARY}"
"""``Content-Type`` of the MJPEG streams PrintCam serves."""

MAX_HEADER_SIZE: Final = 16 * 1024
"""A part header block longer than this (without its blank line) is garbage."""

_SOI: Final = b"\xff\xd8"
_EOI: Final = b"\xff\xd9"
_CRLF: Final = b"\r\n"
_DASH: Final = 0x2D
_LF: Final = 0x0A
_CR: Final = 0x0D
_SP: Final = 0x20
_TAB: Final = 0x09
_WHITESPACE: Final = b" \t\r\n"
_TRAILING_PAD: Final = b" \t\r\n\x00"

# Bytes kept before the resume point of a delimiter search while discarding,
# so that a delimiter split across two feeds is still found.  A delimiter line
# may start with at most this many dashes.
_MAX_DASHES: Final = 64
# Transport padding (spaces/tabs) allowed after a delimiter.
_MAX_PADDING: Final = 64
# Longest line considered when inferring the boundary.
_MAX_BOUNDARY_LINE: Final = 256
_MAX_BOUNDARY_LEN: Final = 200
# Incoming data is processed in slices of this size so that even a huge
# feed() never makes the buffer grow much past its bound.
_FEED_SLICE: Final = 16 * 1024
# RFC 2046 ``bchars``.
_BCHARS: Final = frozenset(
    b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'()+_,-./:=? "
)
# A marker inside entropy-coded data: FF followed by anything but a stuffed
# 00, a restart marker D0-D7 or a fill byte FF.
_ENTROPY_MARKER_RE: Final = re.compile(rb"\xff[\x01-\xcf\xd8-\xfe]")
_SOF_MARKERS: Final = frozenset(
    (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF)
)

# Parser states.
_INFER: Final = 0  # boundary unknown: looking for the first "--..." line
_SEEK: Final = 1  # looking for a delimiter (preamble, between parts, resync)
_HEADERS: Final = 2  # reading a part's header block
_BODY_CL: Final = 3  # reading a body of known length
_BODY_SCAN: Final = 4  # reading a body up to the next delimiter

# Delimiter kinds.
_OPEN: Final = False
_CLOSE: Final = True


def parse_boundary(content_type: str) -> str | None:
    """Return the boundary of a ``multipart/x-mixed-replace`` Content-Type.

    The value is returned without leading dashes (``boundary=--myboundary``
    gives ``"myboundary"``), unquoted and stripped of surrounding whitespace;
    the parameter name is matched in any case and the parameters may be
    separated by ``;`` with or without spaces.  Returns ``None`` when the
    media type is not ``multipart/x-mixed-replace`` or there is no usable
    boundary parameter.
    """
    media_type, _, params = content_type.partition(";")
    if media_type.strip().lower() != "multipart/x-mixed-replace":
        return None
    for name, value in _iter_params(params):
        if name == "boundary":
            boundary = value.strip().lstrip("-")
            return boundary or None
    return None


def read_header_value(text: str, i: int, separators: str) -> tuple[str, int]:
    """Read one header parameter value starting at ``text[i]``.

    The value is an HTTP quoted-string (backslash escapes honoured; the
    returned index is just past the closing quote) or a token running up to
    the first of ``separators`` (stripped; the returned index is at that
    separator or the end). Shared by the Content-Type, WWW-Authenticate and
    Authorization parsers.
    """
    n = len(text)
    while i < n and text[i] in " \t":
        i += 1
    if i < n and text[i] == '"':
        i += 1
        chars: list[str] = []
        while i < n and text[i] != '"':
            if text[i] == "\\" and i + 1 < n:
                i += 1
            chars.append(text[i])
            i += 1
        return "".join(chars), i + 1
    end = i
    while end < n and text[end] not in separators:
        end += 1
    return text[i:end].strip(), end


def _iter_params(params: str) -> list[tuple[str, str]]:
    """Split ``name=value; name="quoted value"`` parameters (names lower-cased)."""
    result: list[tuple[str, str]] = []
    i = 0
    n = len(params)
    while i < n:
        while i < n and params[i] in " \t;":
            i += 1
        if i >= n:
            break
        j = i
        while j < n and params[j] not in "=;":
            j += 1
        name = params[i:j].strip().lower()
        if j >= n or params[j] == ";":
            result.append((name, ""))
            i = j
            continue
        value, j = read_header_value(params, j + 1, ";")
        end = params.find(";", j)  # skip anything after a closing quote
        j = n if end < 0 else end
        result.append((name, value))
        i = j
    return result


def encode_part(jpeg: bytes, boundary: str = PART_BOUNDARY) -> bytes:
    """Return one multipart part carrying ``jpeg``.

    The part is ``--boundary CRLF``, ``Content-Type: image/jpeg`` and
    ``Content-Length`` headers, a blank line, the JPEG bytes and a final CRLF,
    so that concatenated parts form a valid ``multipart/x-mixed-replace`` body
    (see :data:`CONTENT_TYPE`).
    """
    return b"".join(
        (
            b"--",
            boundary.encode("utf-8"),
            b"\r\nContent-Type: image/jpeg\r\nContent-Length: ",
            str(len(jpeg)).encode("ascii"),
            b"\r\n\r\n",
            jpeg,
            _CRLF,
        )
    )


def _boundary_bytes(boundary: str) -> bytes:
    """Return the bytes a camera writes for ``boundary``.

    Header values are decoded with ``surrogateescape`` (aiohttp does), so
    bytes that are not UTF-8 come back as themselves; other lone surrogates
    cannot occur in a header and are replaced.
    """
    try:
        return boundary.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return boundary.encode("utf-8", "replace")


def _boundary_candidate(line: bytes) -> bytes | None:
    """Return the boundary announced by a body line, or ``None``.

    The caller checked that the line starts with ``--``; the boundary is the
    rest without its leading dashes and trailing whitespace, made of RFC 2046
    characters.
    """
    line = line.rstrip(b" \t\r")
    candidate = line.lstrip(b"-")
    if len(line) - len(candidate) > _MAX_DASHES + 1:
        return None
    if not 0 < len(candidate) <= _MAX_BOUNDARY_LEN:
        return None
    if not _BCHARS.issuperset(candidate):
        return None
    return candidate


def _copy(buf: bytearray, start: int, end: int) -> bytes:
    """Return ``buf[start:end]`` as bytes, copied once.

    Slicing a bytearray copies, and ``bytes()`` of that slice copies again;
    a memoryview slice copies once. The views are released before
    returning, so the buffer can still be resized afterwards.
    """
    with memoryview(buf) as view, view[start:end] as part:
        return part.tobytes()


def _non_whitespace(data: bytes | bytearray) -> int:
    """Count the bytes of ``data`` that are not spaces, tabs, CR or LF."""
    return len(data.translate(None, _WHITESPACE))


class _JpegWalker:
    """Incremental structural walk of a JPEG to find its real end (EOI).

    Follows marker segments by their length (skipping e.g. EXIF thumbnails)
    and scans entropy-coded data for the next real marker.  ``advance`` can be
    called again as more bytes arrive; the work done is linear overall.
    """

    __slots__ = ("_bad", "_end", "_entropy", "_off", "_sof", "_sos")

    def __init__(self) -> None:
        """Start a walk at the first byte of a part body."""
        self._off = 0
        self._entropy = False
        self._sof = False
        self._sos = False
        self._bad = False
        self._end: int | None = None

    def advance(self, buf: bytearray, start: int, limit: int) -> int | None:
        """Walk ``buf[start:limit]``; return the body length up to EOI when known.

        Returns ``None`` while the end is not known yet or when the data is
        not a well-formed JPEG (the walk then gives up for good).
        """
        if self._end is not None or self._bad:
            return self._end
        off = self._off
        while True:
            p = start + off
            if self._entropy:
                match = _ENTROPY_MARKER_RE.search(buf, p, limit)
                if match is None:
                    if p < limit:
                        # Re-examine a trailing FF once its successor arrives.
                        off = limit - start - (1 if buf[limit - 1] == 0xFF else 0)
                    break
                off = match.start() - start
                self._entropy = False
                continue
            if p + 2 > limit:
                break
            if buf[p] != 0xFF:
                self._bad = True
                return None
            marker = buf[p + 1]
            if off == 0:
                if marker != 0xD8:
                    self._bad = True
                    return None
                off = 2
                continue
            if marker == 0xFF:  # fill byte
                off += 1
                continue
            if marker == 0xD9:
                if self._sof and self._sos:
                    self._end = off + 2
                    return self._end
                self._bad = True
                return None
            if marker in (0x00, 0xD8):
                self._bad = True
                return None
            if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # standalone markers
                off += 2
                continue
            if p + 4 > limit:
                break
            length = (buf[p + 2] << 8) | buf[p + 3]
            if length < 2:
                self._bad = True
                return None
            if marker in _SOF_MARKERS:
                self._sof = True
            off += 2 + length
            if marker == 0xDA:
                self._sos = True
                self._entropy = True
        self._off = off
        return None


class MjpegParser:
    """Incremental ``multipart/x-mixed-replace`` parser returning JPEG frames.

    Feed it body bytes split anywhere with :meth:`feed`; it returns the JPEG
    frames completed by those bytes.  It never raises on bad input and its
    buffer stays below about ``max_frame_size`` + 64 KiB.

    Public counters: ``frames`` (delivered), ``oversize_dropped``,
    ``non_jpeg_dropped``, ``malformed_dropped`` (parts with a wrong
    Content-Length or a broken header block), ``garbage_bytes`` (non
    whitespace bytes skipped outside parts while resynchronising) and
    ``boundary_inferences`` (how many times the boundary was inferred).
    """

    def __init__(
        self,
        boundary: str | None = None,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
    ) -> None:
        """Create a parser.

        ``boundary`` is the Content-Type boundary parameter (leading dashes
        are ignored); ``None`` or empty means "infer it from the body".
        """
        self.max_frame_size = max(1, max_frame_size)
        self.frames = 0
        self.oversize_dropped = 0
        self.non_jpeg_dropped = 0
        self.malformed_dropped = 0
        self.garbage_bytes = 0
        self.boundary_inferences = 0

        stripped = _boundary_bytes((boundary or "").strip().lstrip("-"))
        self._boundary: bytes = b""
        self._needle: bytes = b""
        self._inferred = False
        self._matched = False  # a delimiter has matched the current boundary
        self._buf = bytearray()
        self._pos = 0  # start of the region the current state works on
        self._scan = 0  # where the current state's next search resumes
        self._floor_ok = True  # self._pos is at the start of a line
        self._count_garbage = True
        self._skipped = 0  # bytes discarded since the last delimiter
        # Current part.
        self._clen: int | None = None
        self._ct_ok = True
        self._has_headers = False
        self._header_bytes = 0
        self._walker = _JpegWalker()
        if stripped:
            self._set_boundary(stripped)
            self._state = _SEEK
        else:
            self._state = _INFER

    # ------------------------------------------------------------------ API

    @property
    def boundary(self) -> str | None:
        """The boundary in use (without leading dashes), ``None`` if unknown."""
        return self._boundary.decode("utf-8", "replace") if self._boundary else None

    @property
    def dropped(self) -> int:
        """Total parts dropped: oversize + non-JPEG + malformed."""
        return self.oversize_dropped + self.non_jpeg_dropped + self.malformed_dropped

    @property
    def buffered(self) -> int:
        """Number of bytes currently held in the internal buffer."""
        return len(self._buf) - self._pos

    def feed(self, data: bytes) -> list[bytes]:
        """Consume ``data`` and return the JPEG frames it completed, in order."""
        out: list[bytes] = []
        view = memoryview(data)
        for offset in range(0, len(view), _FEED_SLICE):
            self._buf += view[offset : offset + _FEED_SLICE]
            while self._step(out):
                pass
            self._compact()
        return out

    # ------------------------------------------------------------ internals

    def _set_boundary(self, boundary: bytes) -> None:
        """Use ``boundary`` (already stripped of leading dashes)."""
        self._boundary = boundary
        self._needle = b"-" + boundary
        self._matched = False
        self._skipped = 0

    def _compact(self) -> None:
        """Drop consumed bytes from the front of the buffer."""
        pos = self._pos
        if pos:
            del self._buf[:pos]
            self._scan = max(0, self._scan - pos)
            self._pos = 0

    def _step(self, out: list[bytes]) -> bool:
        """Run the current state once; return True if it should run again."""
        state = self._state
        if state == _SEEK:
            return self._step_seek()
        if state == _HEADERS:
            return self._step_headers()
        if state == _BODY_CL:
            return self._step_body_cl(out)
        if state == _BODY_SCAN:
            return self._step_body_scan(out)
        return self._step_infer()

    def _enter_seek(self, pos: int, floor_ok: bool, count_garbage: bool) -> None:
        """Look for the next delimiter from ``pos``."""
        self._state = _SEEK
        self._pos = pos
        self._scan = pos
        self._floor_ok = floor_ok
        self._count_garbage = count_garbage

    def _enter_part(self, pos: int) -> None:
        """Start reading a part's headers at ``pos`` (just after a delimiter)."""
        self._state = _HEADERS
        self._pos = pos
        self._scan = pos
        self._clen = None
        self._ct_ok = True
        self._has_headers = False
        self._header_bytes = 0

    def _on_delimiter(self, end: int, kind: bool) -> None:
        """Continue after a delimiter line ending at ``end``."""
        self._matched = True
        self._skipped = 0
        if kind == _CLOSE:
            # ``end`` is a line start when the close delimiter was a whole line.
            self._enter_seek(
                end, floor_ok=self._buf[end - 1] == _LF, count_garbage=True
            )
        else:
            self._enter_part(end)

    def _find_delimiter(
        self, lo: int, floor: int, floor_ok: bool
    ) -> tuple[int, int, bool] | int:
        """Search a delimiter line in ``buf[floor:]``, scanning from ``lo``.

        Returns ``(start, end, kind)`` for a complete delimiter line (``start``
        is its first dash, ``end`` just after its line end, or after the
        closing ``--``), otherwise the position to resume the search at once
        more data has arrived.  A delimiter starts a line (after LF, at
        ``floor`` if ``floor_ok``, or right after a JPEG's ``FF D9``).
        """
        buf = self._buf
        needle = self._needle
        n = len(buf)
        i = buf.find(needle, lo)
        while i >= 0:
            j = i
            while j > floor and buf[j - 1] == _DASH and i - j < _MAX_DASHES:
                j -= 1
            if i + 1 - j >= 2 and (
                (j == floor and floor_ok)
                or (j > floor and buf[j - 1] == _LF)
                or (j - 2 >= floor and buf[j - 2] == 0xFF and buf[j - 1] == 0xD9)
            ):
                k = i + len(needle)
                if k >= n:
                    return i
                c = buf[k]
                if c == _DASH:
                    if k + 1 >= n:
                        return i
                    if buf[k + 1] == _DASH:
                        return (j, k + 2, _CLOSE)
                else:
                    m = k
                    while m < n and m - k < _MAX_PADDING and buf[m] in (_SP, _TAB):
                        m += 1
                    if m < n and buf[m] == _CR:
                        m += 1
                    if m >= n:
                        return i
                    if buf[m] == _LF:
                        return (j, m + 1, _OPEN)
            i = buf.find(needle, i + 1)
        return max(lo, n - len(needle) + 1)

    def _discard(self, cut: int) -> None:
        """Skip ``buf[pos:cut]`` while resynchronising, counting garbage."""
        pos = self._pos
        if cut <= pos:
            return
        buf = self._buf
        if self._count_garbage:
            self.garbage_bytes += _non_whitespace(buf[pos:cut])
        self._skipped += cut - pos
        self._floor_ok = buf[cut - 1] == _LF or (
            cut - 2 >= 0 and buf[cut - 2] == 0xFF and buf[cut - 1] == 0xD9
        )
        self._pos = cut

    def _step_seek(self) -> bool:
        """Skip bytes up to the next delimiter."""
        pos = self._pos
        found = self._find_delimiter(max(self._scan, pos), pos, self._floor_ok)
        if isinstance(found, tuple):
            start, end, kind = found
            if self._count_garbage:
                self.garbage_bytes += _non_whitespace(self._buf[pos:start])
            self._on_delimiter(end, kind)
            return True
        # Keep what a delimiter starting at or after `found` may need:
        # its leading dashes and the LF (or FF D9) before them.
        cut = found - _MAX_DASHES - 2
        if (self._inferred or not self._matched) and (
            self._skipped + cut - pos > self.max_frame_size
        ):
            # The boundary (inferred, or declared but never seen) looks wrong:
            # infer it again from the next "--" line.
            self._state = _INFER
            self._scan = pos
            return True
        self._discard(cut)
        self._scan = found
        return False

    def _step_infer(self) -> bool:
        """Find the first line starting with ``--`` and adopt its boundary."""
        buf = self._buf
        n = len(buf)
        while True:
            pos = self._pos
            if not self._floor_ok:
                lf = buf.find(b"\n", pos)
                if lf < 0:
                    self._count_garbage = True
                    self._discard(n)
                    self._floor_ok = False
                    return False
                self._count_garbage = True
                self._discard(lf + 1)
                continue
            if (n > pos and buf[pos] != _DASH) or (
                n > pos + 1 and buf[pos + 1] != _DASH
            ):
                self._floor_ok = False
                continue
            lf = buf.find(b"\n", max(self._scan, pos))
            if lf < 0:
                if n - pos > _MAX_BOUNDARY_LINE:
                    self._floor_ok = False
                    continue
                self._scan = n
                return False
            candidate = _boundary_candidate(bytes(buf[pos:lf]))
            if candidate is None:
                self._floor_ok = False
                continue
            self._set_boundary(candidate)
            self._inferred = True
            self.boundary_inferences += 1
            self._on_delimiter(lf + 1, _OPEN)
            return True

    def _line_delimiter(self, line: bytes) -> bool | None:
        """Return the delimiter kind if ``line`` (no LF) is a delimiter line."""
        line = line.rstrip(b" \t\r")
        if not line.startswith(b"--"):
            return None
        rest = line.lstrip(b"-")
        if len(line) - len(rest) > _MAX_DASHES + 1:
            return None
        if rest == self._boundary:
            return _OPEN
        if rest == self._boundary + b"--":
            return _CLOSE
        return None

    def _step_headers(self) -> bool:
        """Read header lines until the blank line (or an immediate JPEG)."""
        buf = self._buf
        n = len(buf)
        while True:
            pos = self._pos
            if n > pos and buf[pos] == 0xFF:
                # A body starting right away (no headers or no blank line).
                if n == pos + 1:
                    return False
                if buf[pos + 1] == 0xD8:
                    self._begin_body(pos)
                    return True
            lf = buf.find(b"\n", max(self._scan, pos))
            if lf < 0:
                if self._header_bytes + n - pos > MAX_HEADER_SIZE:
                    self._malformed(pos)
                    return True
                self._scan = n
                return False
            self._header_bytes += lf + 1 - pos
            if self._header_bytes > MAX_HEADER_SIZE:
                self._malformed(pos)
                return True
            line = bytes(buf[pos:lf])
            self._pos = lf + 1
            self._scan = lf + 1
            if not line.strip():
                if self._has_headers:
                    self._begin_body(lf + 1)
                    return True
                continue  # blank line before the headers
            kind = self._line_delimiter(line)
            if kind is not None:
                if self._has_headers:
                    self.malformed_dropped += 1
                self._on_delimiter(lf + 1, kind)
                return True
            if line[:1] in (b" ", b"\t") and self._has_headers:
                continue  # obsolete folded continuation line
            name, colon, value = line.partition(b":")
            name = name.strip().lower()
            if not colon or not name:
                self._malformed(pos)
                return True
            self._has_headers = True
            value = value.strip()
            if name == b"content-length":
                if value.isdigit():
                    self._clen = int(value)
            elif name == b"content-type":
                media = value.split(b";", 1)[0].strip().lower()
                self._ct_ok = media.startswith(b"image/") or (
                    media == b"application/octet-stream"
                )

    def _malformed(self, pos: int) -> None:
        """Drop the current part as malformed and resynchronise from ``pos``."""
        self.malformed_dropped += 1
        self._enter_seek(pos, floor_ok=True, count_garbage=False)

    def _begin_body(self, start: int) -> None:
        """Start reading the current part's body at ``start``."""
        self._pos = start
        self._scan = start
        self._walker = _JpegWalker()
        clen = self._clen
        if clen is None:
            self._state = _BODY_SCAN
        elif clen > self.max_frame_size:
            self.oversize_dropped += 1
            self._enter_seek(start, floor_ok=True, count_garbage=False)
        else:
            self._state = _BODY_CL

    def _finish(self, body: bytes, out: list[bytes]) -> None:
        """Deliver ``body`` if it is an acceptable JPEG, else count the drop.

        Trailing whitespace/NUL padding after the final ``FF D9`` is removed.
        """
        if not self._ct_ok:
            self.non_jpeg_dropped += 1
            return
        body = body.rstrip(_TRAILING_PAD)
        if len(body) > self.max_frame_size:
            self.oversize_dropped += 1
        elif len(body) < 4 or not body.startswith(_SOI) or not body.endswith(_EOI):
            self.non_jpeg_dropped += 1
        else:
            self.frames += 1
            out.append(body)

    def _step_body_cl(self, out: list[bytes]) -> bool:
        """Take a body of ``Content-Length`` bytes once it is validated."""
        buf = self._buf
        n = len(buf)
        start = self._pos
        clen = self._clen or 0  # always set in this state
        end = start + clen
        if n < end:
            return False
        valid: bool | None
        if n >= end + 2:
            valid = buf[end] == _LF or buf[end : end + 2] in (_CRLF, b"--")
        elif n == end + 1 and buf[end] == _LF:
            valid = True
        elif n == end + 1 and buf[end] not in (_CR, _DASH):
            valid = False
        else:
            valid = None  # the bytes after the body have not arrived yet
        if valid is None:
            if not self._ct_ok or self._walker.advance(buf, start, end) != clen:
                return False
            valid = True
        if valid:
            self._finish(_copy(buf, start, end), out)
            self._enter_seek(end, floor_ok=True, count_garbage=True)
        else:
            # Wrong Content-Length: the real delimiter may lie inside or after.
            self._malformed(start)
        return True

    def _step_body_scan(self, out: list[bytes]) -> bool:
        """Read a body without Content-Length up to the next delimiter."""
        buf = self._buf
        start = self._pos
        found = self._find_delimiter(max(self._scan, start), start, True)
        if isinstance(found, tuple):
            delim, end, kind = found
            length = self._walker.advance(buf, start, delim) if self._ct_ok else None
            if length is None:
                self._finish(_copy(buf, start, delim), out)
            else:
                # Same result as when the structural end is seen before the
                # delimiter: the JPEG, and anything after its EOI is garbage.
                self._finish(_copy(buf, start, start + length), out)
                self.garbage_bytes += _non_whitespace(buf[start + length : delim])
            self._on_delimiter(end, kind)
            return True
        self._scan = found
        if self._ct_ok:
            length = self._walker.advance(buf, start, len(buf))
            if length is not None:
                if length <= self.max_frame_size:
                    self._finish(_copy(buf, start, start + length), out)
                    self._enter_seek(start + length, floor_ok=True, count_garbage=True)
                    return True
                self._oversize_scan(start, found)
                return True
        if len(buf) - start > self.max_frame_size + len(self._needle) + 256:
            self._oversize_scan(start, found)
            return True
        return False

    def _oversize_scan(self, start: int, resume: int) -> None:
        """Drop an oversize body without Content-Length and resynchronise."""
        self.oversize_dropped += 1
        self._enter_seek(start, floor_ok=True, count_garbage=False)
        self._scan = resume
