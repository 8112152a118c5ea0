"""A lean incremental reader of MJPEG HTTP responses, for the benchmark's viewers.

Fifty viewers of a 30 fps stream of 100 kB frames receive 150 MB/s, in the
same process and on the same two cores as what is measured, so a viewer
must cost little: `ResponseReader` parses the response head, undoes chunked
transfer coding and splits the ``multipart/x-mixed-replace`` body into
parts, handing each part's first bytes (where the frame's stamp is) and its
length to a callback, without copying the body (unless ``keep_body``, which
the floor uses to forward whole parts).

Parts normally carry Content-Length (the simulated camera, Home
Assistant's proxy of it and PrintCam all send it); a part without one ends
at the next delimiter line. Anything else that cannot be parsed raises
`ParseError`: the benchmark's run is then broken, not slow.

Pure code: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum, auto
from typing import Final

__all__ = [
    "ChunkedDecoder",
    "MultipartReader",
    "ParseError",
    "Part",
    "ResponseHead",
    "ResponseReader",
    "boundary_of",
]

MAX_HEADER: Final = 16 * 1024
"""Longest response head or part header block accepted."""
MAX_PART: Final = 8 * 1024 * 1024
"""Longest part without Content-Length accepted."""
HEAD_BYTES: Final = 64
"""How many leading body bytes a `Part` keeps."""
_ERROR_BODY: Final = 4096
_MAX_LINE: Final = 1024
_WINDOW: Final = 2048


class ParseError(Exception):
    """The bytes are not an MJPEG response this reader understands."""


@dataclass(slots=True)
class Part:
    """One part of a multipart body."""

    content_type: str
    length: int
    head: bytes
    """The first `HEAD_BYTES` bytes of the body."""
    body: bytes | None = None
    """The whole body, when the reader keeps bodies."""


@dataclass(slots=True)
class ResponseHead:
    """Status and headers of an HTTP response (header names in lower case)."""

    status: int
    headers: dict[str, str]

    @property
    def content_type(self) -> str:
        """Return the Content-Type header ("" when absent)."""
        return self.headers.get("content-type", "")

    @property
    def chunked(self) -> bool:
        """Return True when the body uses chunked transfer coding."""
        return "chunked" in self.headers.get("transfer-encoding", "").lower()


def boundary_of(content_type: str) -> str | None:
    """Return the boundary parameter of a Content-Type value, without quotes."""
    for param in content_type.split(";")[1:]:
        name, _, value = param.strip().partition("=")
        if name.strip().lower() == "boundary":
            return value.strip().strip('"') or None
    return None


def _find_blank_line(buf: bytearray | bytes) -> tuple[int, int]:
    """Return (index, length) of the first blank line ending a header block."""
    crlf = buf.find(b"\r\n\r\n")
    lf = buf.find(b"\n\n")
    if lf >= 0 and (crlf < 0 or lf < crlf):
        return lf, 2
    if crlf >= 0:
        return crlf, 4
    return -1, 0


def _header_lines(block: bytes) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in block.splitlines():
        name, sep, value = line.partition(b":")
        if sep:
            headers[name.strip().decode("latin-1").lower()] = value.strip().decode(
                "latin-1"
            )
    return headers


class _State(Enum):
    HEADERS = auto()
    BODY = auto()
    SEARCH = auto()
    DONE = auto()


class MultipartReader:
    """Split a ``multipart/x-mixed-replace`` body, fed in pieces, into parts."""

    def __init__(
        self,
        boundary: str | None,
        on_part: Callable[[Part], None],
        *,
        keep_body: bool = False,
    ) -> None:
        """Call ``on_part`` for each complete part (``boundary``: None to infer it)."""
        self.boundary = boundary.lstrip("-") if boundary else None
        self._on_part = on_part
        self._keep = keep_body
        self._state = _State.HEADERS
        self._buf = bytearray()
        self._remaining = 0
        self._length = 0
        self._type = ""
        self._head = bytearray()
        self._chunks: list[memoryview] = []
        self.parts = 0
        """Complete parts seen."""
        self.garbage_bytes = 0
        """Bytes skipped outside parts (not whitespace)."""

    @property
    def done(self) -> bool:
        """Return True once the closing delimiter was seen."""
        return self._state is _State.DONE

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Take the next bytes of the body.

        With ``keep_body``, a part's body is joined from views of the
        bytes fed, so they must not change afterwards (a bytearray is
        copied first).
        """
        if self._keep and isinstance(data, bytearray):
            data = bytes(data)
        view = memoryview(data)
        while view:
            state = self._state
            if state is _State.BODY:
                view = self._body(view)
            elif state is _State.DONE:
                return
            else:
                # Between parts only a small window is copied into the
                # buffer: the body that follows a header block is not.
                if state is _State.HEADERS:
                    piece, view = view[:_WINDOW], view[_WINDOW:]
                else:
                    piece, view = view, view[len(view) :]
                self._buf += piece
                rest = self._parse_buffer()
                if rest is not None:
                    self.feed(rest)  # body bytes the window held, before the others

    def _body(self, view: memoryview) -> memoryview:
        take = min(self._remaining, len(view))
        piece = view[:take]
        need = HEAD_BYTES - len(self._head)
        if need > 0:
            self._head += piece[:need]
        if self._keep:
            self._chunks.append(piece)  # a view: joined once, when complete
        self._remaining -= take
        if self._remaining == 0:
            body = b"".join(self._chunks) if self._keep else None
            self._chunks = []
            self._emit(self._length, body)
            self._state = _State.HEADERS
        return view[take:]

    def _emit(self, length: int, body: bytes | None) -> None:
        self.parts += 1
        part = Part(self._type, length, bytes(self._head), body)
        self._head = bytearray()
        self._on_part(part)

    def _parse_buffer(self) -> bytes | None:
        """Parse what the buffer holds; return body bytes left over, if any."""
        while True:
            if self._state is _State.SEARCH:
                if not self._search():
                    return None
                continue
            if self._state is not _State.HEADERS:
                return None
            # Line ends and padding between parts.
            skip = len(self._buf) - len(self._buf.lstrip(b"\r\n \t"))
            del self._buf[:skip]
            if not self._buf:
                return None
            if self._closing_line():
                return None
            end, sep = _find_blank_line(self._buf)
            if end < 0:
                if len(self._buf) > MAX_HEADER:
                    raise ParseError("part header block too long")
                return None
            block = bytes(self._buf[:end])
            del self._buf[: end + sep]
            if not self._start_part(block):
                continue
            if self._state is _State.BODY and self._buf:
                rest = bytes(self._buf)
                self._buf.clear()
                return rest

    def _closing_line(self) -> bool:
        """Return True (and stop) when the buffer starts with the closing delimiter."""
        newline = self._buf.find(b"\n")
        if self.boundary is None or newline < 0:
            return False
        if (
            bytes(self._buf[:newline]).strip()
            != b"--" + self.boundary.encode("latin-1") + b"--"
        ):
            return False
        self._state = _State.DONE
        self._buf.clear()
        return True

    def _start_part(self, block: bytes) -> bool:
        """Read one header block; return False when it was not a part's."""
        lines = block.splitlines()
        for index, line in enumerate(lines):
            stripped = line.strip()
            if not stripped.startswith(b"--"):
                self.garbage_bytes += len(line)
                continue
            name = stripped.lstrip(b"-").decode("latin-1")
            closing = False
            if self.boundary is not None and name == self.boundary + "--":
                closing = True
            elif self.boundary is None:
                if name.endswith("--"):
                    name, closing = name[:-2], True
                self.boundary = name
            elif name != self.boundary:
                self.garbage_bytes += len(line)
                continue
            if closing:
                self._state = _State.DONE
                return False
            headers = _header_lines(b"\n".join(lines[index + 1 :]))
            self._type = headers.get("content-type", "")
            length = headers.get("content-length")
            if length is not None:
                try:
                    self._length = self._remaining = int(length)
                except ValueError:
                    raise ParseError(f"bad Content-Length {length!r}") from None
                if self._remaining < 0:
                    raise ParseError(f"bad Content-Length {length!r}")
                self._state = _State.BODY
                if self._remaining == 0:
                    self._emit(0, b"" if self._keep else None)
                    self._state = _State.HEADERS
            else:
                self._state = _State.SEARCH
            return True
        return False

    def _search(self) -> bool:
        """Without Content-Length: end the part at the next delimiter line."""
        if self.boundary is None:  # pragma: no cover - set by the delimiter line
            raise ParseError("no boundary")
        delimiter = b"\n--" + self.boundary.encode("latin-1")
        index = self._buf.find(delimiter)
        if index < 0:
            if len(self._buf) > MAX_PART:
                raise ParseError("part without Content-Length too long")
            return False
        end = index - 1 if index > 0 and self._buf[index - 1] == 0x0D else index
        body = bytes(self._buf[:end])
        del self._buf[: index + 1]
        self._head = bytearray(body[:HEAD_BYTES])
        self._emit(len(body), body if self._keep else None)
        self._state = _State.HEADERS
        return True


class ChunkedDecoder:
    """Undo HTTP/1.1 chunked transfer coding, passing the payload on in pieces."""

    def __init__(self, sink: Callable[[memoryview], None]) -> None:
        """Send every payload piece to ``sink``."""
        self._sink = sink
        self._buf = bytearray()
        self._remaining = 0
        self._state = "size"
        self.done = False
        """True once the last (empty) chunk arrived."""

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Take the next bytes of the coded body."""
        view = memoryview(data)
        while view and not self.done:
            if self._state == "data":
                take = min(self._remaining, len(view))
                self._sink(view[:take])
                view = view[take:]
                self._remaining -= take
                if self._remaining == 0:
                    self._state = "end"
            elif self._state == "end":
                # The CRLF after a chunk's data (a bare LF is tolerated).
                byte = view[0]
                view = view[1:]
                if byte == 0x0A:
                    self._state = "size"
                elif byte != 0x0D:
                    raise ParseError("chunk data not followed by CRLF")
            else:
                window = bytes(view[:_MAX_LINE])
                newline = window.find(b"\n")
                if newline < 0:
                    self._buf += window
                    view = view[len(window) :]
                    if len(self._buf) > _MAX_LINE:
                        raise ParseError("chunk size line too long")
                    continue
                self._buf += window[:newline]
                view = view[newline + 1 :]
                line = bytes(self._buf).split(b";")[0].strip()
                self._buf.clear()
                try:
                    size = int(line, 16)
                except ValueError:
                    raise ParseError(f"bad chunk size {line!r}") from None
                if size == 0:
                    self.done = True
                else:
                    self._remaining = size
                    self._state = "data"


class ResponseReader:
    """An HTTP/1.x response carrying an MJPEG stream, fed in pieces.

    ``on_head`` sees the status and headers; a 200 response with a
    multipart Content-Type is then split into parts for ``on_part``. Any
    other response's body (the first few kB) is kept in `error_body`.
    """

    def __init__(
        self,
        on_part: Callable[[Part], None],
        on_head: Callable[[ResponseHead], None] | None = None,
        *,
        keep_body: bool = False,
    ) -> None:
        """Parse a response; parts go to ``on_part``."""
        self._on_part = on_part
        self._on_head = on_head
        self._keep = keep_body
        self._buf = bytearray()
        self.head: ResponseHead | None = None
        self.multipart: MultipartReader | None = None
        self.error_body = bytearray()
        self._body: Callable[[memoryview], None] | None = None

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Take the next bytes of the response."""
        if self._body is not None:
            self._body(memoryview(data))
            return
        self._buf += data
        end, sep = _find_blank_line(self._buf)
        if end < 0:
            if len(self._buf) > MAX_HEADER:
                raise ParseError("response head too long")
            return
        head = bytes(self._buf[:end])
        rest = bytes(self._buf[end + sep :])
        self._buf.clear()
        status_line, _, header_block = head.partition(b"\n")
        fields = status_line.split()
        if len(fields) < 2 or not fields[0].startswith(b"HTTP/"):
            raise ParseError(f"not an HTTP response: {status_line[:80]!r}")
        try:
            status = int(fields[1])
        except ValueError:
            raise ParseError(f"bad status line {status_line[:80]!r}") from None
        self.head = ResponseHead(status, _header_lines(header_block))
        if self._on_head is not None:
            self._on_head(self.head)
        sink: Callable[[memoryview], None]
        content_type = self.head.content_type
        if status == 200 and content_type.lower().startswith("multipart/"):
            self.multipart = MultipartReader(
                boundary_of(content_type), self._on_part, keep_body=self._keep
            )
            sink = self.multipart.feed
        else:
            sink = self._error
        if self.head.chunked:
            self._body = ChunkedDecoder(sink).feed
        else:
            self._body = sink
        if rest:
            self._body(memoryview(rest))

    def _error(self, data: memoryview) -> None:
        room = _ERROR_BODY - len(self.error_body)
        if room > 0:
            self.error_body += data[:room]
