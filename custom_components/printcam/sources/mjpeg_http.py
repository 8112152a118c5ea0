"""MJPEG over HTTP (``multipart/x-mixed-replace``): OctoPrint, Klipper, Creality...

One `connect()` is one HTTP GET through the connection pool of the session
the integration passes in; its body goes through the incremental
`MjpegParser` and comes out as JPEG frames. The response is always closed
(not returned to the pool) when the iterator ends, so a one-client printer
never sees an idle kept-alive connection, and every request asks for
``Connection: close`` for the same reason.

A camera is not trusted to be well-behaved:

- the response head (status line and headers, over every auth round) must
  be complete within ``connect_timeout + read_timeout`` seconds, and may
  take at most `MAX_HEAD_BYTES` (aiohttp limits each line, not their number
  or the time they take): a camera dripping header lines ends as
  `SourceTimeout`, one flooding them as `ProtocolError`, both retried with
  the normal backoff;
- bodies are never decompressed: requests ask for ``Accept-Encoding:
  identity`` and a response with another ``Content-Encoding`` is refused
  (`ProtocolError`) before its body is read: a gzip bomb inflates nowhere.

Both need a request-level setting the shared session does not have, so each
request runs on a short-lived `aiohttp.ClientSession` over the given
session's connector (same pool, TLS and DNS settings, headers and cookies).

Authentication: HTTP basic (aiohttp) and digest (RFC 7616 / RFC 2617,
implemented here because aiohttp has none). The first request goes without
credentials (or with basic/digest the origin accepted before); a 401
challenge is answered once. An origin that once offered digest never gets
the password in basic (`AuthDowngrade`). Credentials may come as arguments,
in the URL's user info (``http://user:pass@host/``) or in its query
(``?user=...&pwd=...``, sent as they are): user info is stripped from the
URL, and none of them appears in `host`, logs or error messages
(`redact`).

No Home Assistant imports.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
import hashlib
import logging
import re
import secrets
from typing import TYPE_CHECKING, Final, Literal

import aiohttp
from aiohttp import hdrs
from yarl import URL

from custom_components.printcam.const import CONNECT_TIMEOUT, READ_TIMEOUT
from custom_components.printcam.mjpeg import (
    DEFAULT_MAX_FRAME_SIZE,
    MjpegParser,
    parse_boundary,
    read_header_value,
)
from custom_components.printcam.redact import redact_text, url_secrets

from .base import (
    AuthDowngrade,
    CannotConnect,
    FrameSource,
    InvalidAuth,
    NotMjpeg,
    ProtocolError,
    SourceError,
    SourceEvents,
    SourceTimeout,
)

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator

    from aiohttp.client_proto import ResponseHandler
    from aiohttp.connector import Connection

_LOGGER = logging.getLogger(__name__)

SNIFF_LIMIT: Final = 64 * 1024
GARBAGE_FRAMES: Final = 2
"""A body may carry this many `max_frame_size`s without a frame before the
connection is dropped: parsing hostile bytes costs loop time (a flood of
bare newlines parses at a few MB/s), so it is bounded per connection and the
reconnect backoff spaces the rest out (found by tests/fuzz)."""
"""Bytes looked at before deciding that a body carries no JPEG frames."""
MAX_HEAD_BYTES: Final = 64 * 1024
"""Bytes a response head may take (read when used). Cameras send well under
2 KB; aiohttp itself limits each line to 8190 bytes but not their number."""

_MULTIPART: Final = "multipart/x-mixed-replace"
_JPEG_TYPES: Final = frozenset({"image/jpeg", "image/jpg", "image/pjpeg"})
_SOI: Final = b"\xff\xd8\xff"
_EOI: Final = b"\xff\xd9"
_TRAILING_PAD: Final = b" \t\r\n\x00"
_MAX_AUTH_ROUNDS: Final = 3
"""Requests per connect: plain, answer to a challenge, answer to a stale nonce."""

_DROP_REASONS: Final = (
    ("oversize_dropped", "oversize"),
    ("non_jpeg_dropped", "not_jpeg"),
    ("malformed_dropped", "malformed"),
)

# Errors of the HTTP client and the network underneath; TimeoutError is an
# OSError, and aiohttp's timeouts are TimeoutErrors.
_NETWORK_ERRORS: Final = (aiohttp.ClientError, OSError)
_IDENTITY: Final = frozenset({"", "identity"})
_ENCODING_SHOWN: Final = 40
"""Characters of a refused Content-Encoding shown in the error."""

type _Origin = URL
type _Remembered = _DigestAuth | Literal["basic"]


class _HeadTooLarge(aiohttp.ClientError):
    """The response head went past `MAX_HEAD_BYTES`."""


class _HeadGuard:
    """Stands in for a connection's ``data_received`` while its head is read.

    Counts the bytes fed to aiohttp's parser; once `MAX_HEAD_BYTES` went in
    and no complete head came out, it stops feeding, fails the pending read
    and stops reading the socket. So the parser never holds more than the
    limit and one socket read (up to 256 KiB), whatever the camera sends.
    """

    def __init__(self, protocol: ResponseHandler) -> None:
        self._protocol = protocol
        self._feed = protocol.data_received
        self._received = 0
        self._tripped = False

    def __call__(self, data: bytes) -> None:
        if self._tripped:
            return
        protocol = self._protocol
        # len(protocol): parsed heads waiting to be read (then it is body).
        if self._received >= MAX_HEAD_BYTES and not len(protocol):
            self._tripped = True
            if protocol.transport is not None:
                protocol.transport.pause_reading()
            protocol.set_exception(
                _HeadTooLarge(f"response head over {MAX_HEAD_BYTES} bytes")
            )
            return
        self._received += len(data)
        self._feed(data)


class _BoundedResponse(aiohttp.ClientResponse):
    """A response whose head is read through a `_HeadGuard`."""

    async def start(self, connection: Connection) -> aiohttp.ClientResponse:
        """Read the head with the guard in place, then feed aiohttp directly."""
        protocol = connection.protocol
        assert protocol is not None  # noqa: S101 - aiohttp asserted it before
        protocol.data_received = _HeadGuard(protocol)  # type: ignore[method-assign]
        try:
            return await super().start(connection)
        finally:
            vars(protocol).pop("data_received", None)


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


_DIGEST_HASHES: Final[dict[str, Callable[[bytes], str]]] = {
    "MD5": _md5,
    "SHA-256": _sha256,
}
# Stronger first when a server offers several digest challenges.
_DIGEST_PREFERENCE: Final = ("SHA-256", "SHA-256-SESS", "MD5", "MD5-SESS")

_TOKEN_RE: Final = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def _parse_challenges(values: list[str]) -> list[tuple[str, dict[str, str]]]:
    """Parse ``WWW-Authenticate`` values into ``(scheme, params)`` pairs.

    A value may hold several challenges (``Digest realm="a", Basic realm="b"``):
    a token followed by ``=`` is a parameter of the current challenge, any
    other token starts a new one. Schemes and parameter names are lower-cased.
    """
    challenges: list[tuple[str, dict[str, str]]] = []
    for value in values:
        i, n = 0, len(value)
        params: dict[str, str] | None = None
        while i < n:
            while i < n and value[i] in " \t,":
                i += 1
            match = _TOKEN_RE.match(value, i)
            if match is None:
                break  # malformed from here on: keep what was parsed
            token = match.group().lower()
            i = match.end()
            j = i
            while j < n and value[j] in " \t":
                j += 1
            if params is None or j >= n or value[j] != "=":
                params = {}
                challenges.append((token, params))
                continue
            params[token], i = read_header_value(value, j + 1, ",")
    return challenges


def _quote(value: str) -> str:
    """Return ``value`` as an HTTP quoted-string."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class _DigestAuth:
    """Answers one digest challenge; reused (``nc`` growing) until rejected."""

    def __init__(
        self, username: str, password: str, challenge: Mapping[str, str]
    ) -> None:
        """Remember the challenge's realm, nonce, opaque, algorithm and qop."""
        self._username = username
        self._password = password
        self._realm = challenge.get("realm", "")
        self._nonce = challenge["nonce"]
        self._opaque = challenge.get("opaque")
        self._algorithm = challenge.get("algorithm")
        algorithm = (self._algorithm or "MD5").upper()
        self._session = algorithm.endswith("-SESS")
        self._hash = _DIGEST_HASHES[algorithm.removesuffix("-SESS")]
        qops = {qop.strip().lower() for qop in challenge.get("qop", "").split(",")}
        # qop=auth when offered; auth-int only matters for bodies and a GET
        # has none, so it is answered too; no qop: the RFC 2069 form.
        self._qop = (
            "auth" if "auth" in qops else "auth-int" if "auth-int" in qops else None
        )
        self._nc = 0

    def _h(self, text: str) -> str:
        return self._hash(text.encode("utf-8"))

    def authorization(self, method: str, url: URL) -> str:
        """Return the ``Authorization`` header for one request (next ``nc``)."""
        uri = url.raw_path_qs
        self._nc += 1
        nc = f"{self._nc:08x}"
        cnonce = secrets.token_hex(8)
        ha1 = self._h(f"{self._username}:{self._realm}:{self._password}")
        if self._session:
            ha1 = self._h(f"{ha1}:{self._nonce}:{cnonce}")
        if self._qop == "auth-int":
            ha2 = self._h(f"{method}:{uri}:{self._h('')}")
        else:
            ha2 = self._h(f"{method}:{uri}")
        if self._qop:
            response = self._h(f"{ha1}:{self._nonce}:{nc}:{cnonce}:{self._qop}:{ha2}")
        else:
            response = self._h(f"{ha1}:{self._nonce}:{ha2}")
        fields = [
            f"username={_quote(self._username)}",
            f"realm={_quote(self._realm)}",
            f"nonce={_quote(self._nonce)}",
            f"uri={_quote(uri)}",
            f"response={_quote(response)}",
        ]
        if self._algorithm:
            fields.append(f"algorithm={self._algorithm}")
        if self._opaque is not None:
            fields.append(f"opaque={_quote(self._opaque)}")
        if self._qop:
            fields += [f"qop={self._qop}", f"nc={nc}"]
        if self._qop or self._session:
            fields.append(f"cnonce={_quote(cnonce)}")
        return "Digest " + ", ".join(fields)


def _is_text(value: str) -> bool:
    """Return True unless `value` carries undecodable header bytes."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _pick_digest(challenges: list[tuple[str, dict[str, str]]]) -> dict[str, str] | None:
    """Return the best digest challenge we can answer, None if there is none.

    Raises InvalidAuth when the printer only offers digest variants this
    module does not implement (retrying cannot help).
    """
    digests = [
        params
        for scheme, params in challenges
        if scheme == "digest" and "nonce" in params
    ]
    if not digests:
        return None
    # aiohttp decodes header bytes that are not UTF-8 as surrogates; such a
    # realm or nonce cannot be hashed nor sent back (found by tests/fuzz).
    offered = [p for p in digests if all(_is_text(v) for v in p.values())]
    if not offered:
        # Never fall back to Basic for a camera that asked for Digest.
        raise ProtocolError("the camera's digest challenge is not valid text")
    for algorithm in _DIGEST_PREFERENCE:
        for params in offered:
            if params.get("algorithm", "MD5").upper() == algorithm:
                return params
    names = sorted({params.get("algorithm", "") for params in offered})
    raise InvalidAuth(
        f"the camera asks for an unsupported digest algorithm ({', '.join(names)})"
    )


class _BodyScanner:
    """Turns body chunks into frames and decides when a body is not MJPEG."""

    def __init__(self, content_type: str, max_frame_size: int, host: str) -> None:
        """Pick the boundary from ``content_type`` (or infer it from the body)."""
        media = content_type.partition(";")[0].strip().lower()
        self.multipart = media == _MULTIPART
        self._media = media or "no content type"
        self._host = host
        self._max_frame_size = max_frame_size
        # Without a multipart type (or without a boundary parameter) the
        # parser infers the boundary from the first "--" line of the body.
        self.parser = MjpegParser(parse_boundary(content_type), max_frame_size)
        self._probe = bytearray()
        self._scanned = 0
        self._had_frame = False
        self._since_frame = 0

    def feed(self, chunk: bytes) -> list[bytes]:
        """Return the frames ``chunk`` completes; raise NotMjpeg when hopeless."""
        frames = self.parser.feed(chunk)
        if frames:
            self._had_frame = True
            self._since_frame = 0
            return frames
        if not self._had_frame:
            if len(self._probe) < SNIFF_LIMIT:
                self._probe += chunk[: SNIFF_LIMIT - len(self._probe)]
            self._scanned += len(chunk)
            self._check(ended=False)
        self._since_frame += len(chunk)
        if self._since_frame > GARBAGE_FRAMES * self._max_frame_size + SNIFF_LIMIT:
            raise ProtocolError(
                f"{self._host} sent {self._since_frame} bytes without a frame"
            )
        return frames

    def finish(self) -> None:
        """Raise NotMjpeg if the body ended without ever looking like MJPEG."""
        if not self._had_frame:
            self._check(ended=True)

    def _check(self, *, ended: bool) -> None:
        if not (ended or self._scanned >= SNIFF_LIMIT):
            return
        parser = self.parser
        if self.multipart:
            # Only text (or other non-image) parts so far: an error page in
            # multipart clothing, not a camera.
            if parser.non_jpeg_dropped and not (
                parser.oversize_dropped or parser.malformed_dropped
            ):
                raise NotMjpeg(
                    f"{self._host} sends a multipart stream without JPEG parts"
                )
            return
        if _SOI not in self._probe:
            raise NotMjpeg(
                f"{self._host} does not send MJPEG (content type {self._media})"
            )
        if ended or self._scanned > SNIFF_LIMIT + self._max_frame_size:
            raise NotMjpeg(
                f"{self._host} sends no parsable JPEG frames (content type {self._media})"
            )


class MjpegHttpSource(FrameSource):
    """A printer camera that serves ``multipart/x-mixed-replace`` over HTTP(S)."""

    family = "mjpeg"

    def __init__(
        self,
        session: aiohttp.ClientSession,
        url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        verify_ssl: bool = True,
        connect_timeout: float = CONNECT_TIMEOUT,
        read_timeout: float = READ_TIMEOUT,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        events: SourceEvents | None = None,
    ) -> None:
        """Set up the source; nothing is sent before `connect()`.

        Explicit ``username``/``password`` win over credentials in the URL.
        An unusable URL is reported by `connect()` as `CannotConnect`.
        """
        super().__init__(events)
        self._session = session
        self._url: URL | None
        url_user = url_password = None
        self._secrets: list[str] = []
        self._add_secrets(url_secrets(url))
        try:
            parsed = URL(url)
        except (ValueError, TypeError):
            self._url = None
        else:
            url_user, url_password = parsed.user, parsed.password
            self._url = parsed.with_user(None) if parsed.user is not None else parsed
        if username or password:
            self._username, self._password = username or "", password or ""
        else:
            self._username, self._password = url_user or "", url_password or ""
        self._add_secrets([self._password])
        self._ssl: bool = verify_ssl
        self._read_timeout = read_timeout
        self._head_timeout = connect_timeout + read_timeout
        self._timeout = aiohttp.ClientTimeout(
            total=None,
            connect=connect_timeout,
            sock_connect=connect_timeout,
            sock_read=read_timeout,
        )
        self._max_frame_size = max_frame_size
        self._remembered: dict[_Origin, _Remembered] = {}
        """Per origin, the authentication it accepted last."""
        self._digest_origins: set[_Origin] = set()
        """Origins that offered digest once: never basic for them again."""

    @property
    def host(self) -> str:
        """Return ``host[:port]`` of the stream URL (never credentials)."""
        if self._url is None or not self._url.host:
            return "invalid URL"
        host = self._url.host
        if ":" in host:  # IPv6 literal
            host = f"[{host}]"
        if self._url.explicit_port is not None:
            return f"{host}:{self._url.explicit_port}"
        return host

    # -------------------------------------------------------------- stream

    async def connect(self) -> AsyncGenerator[bytes]:
        """Open the stream and yield its JPEG frames until the body ends.

        Raises `CannotConnect`, `InvalidAuth`, `SourceTimeout` (nothing
        received, or no frame, for ``read_timeout`` seconds), `NotMjpeg` or
        `ProtocolError`. The HTTP connection is closed when this ends,
        whichever way.
        """
        response = await self._request(self._checked_url(self._url))
        try:
            content_type = response.headers.get(hdrs.CONTENT_TYPE, "")
            media = content_type.partition(";")[0].strip().lower()
            if media in _JPEG_TYPES:
                raise NotMjpeg(
                    f"{self.host} returns a single image, not a stream; "
                    "use this URL as the still image URL"
                )
            scanner = _BodyScanner(content_type, self._max_frame_size, self.host)
            if scanner.multipart:
                self._mark_connected()
            _LOGGER.debug("%s: streaming (%s)", self.host, media or "no content type")
            dropped = dict.fromkeys((attr for attr, _ in _DROP_REASONS), 0)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self._read_timeout
            while True:
                try:
                    chunk = await response.content.readany()
                except _NETWORK_ERRORS as err:
                    raise self._translate(err) from err
                if not chunk:
                    scanner.finish()
                    _LOGGER.debug("%s: the stream ended", self.host)
                    return
                frames = scanner.feed(chunk)
                self._count_drops(scanner.parser, dropped)
                if frames:
                    self._mark_connected()
                    for frame in frames:
                        yield frame
                    deadline = loop.time() + self._read_timeout
                elif loop.time() > deadline:
                    # Bytes keep coming but none make a frame.
                    raise SourceTimeout(
                        f"no frame from {self.host} in {self._read_timeout:g} s"
                    )
        finally:
            response.close()
            # Let the transport's close run now, so that the socket is really
            # closed before anyone opens the next one.
            await asyncio.sleep(0)

    def _count_drops(self, parser: MjpegParser, seen: dict[str, int]) -> None:
        """Report parts the parser dropped since the last call."""
        for attr, reason in _DROP_REASONS:
            count: int = getattr(parser, attr)
            new = count - seen[attr]
            if new:
                seen[attr] = count
                self.stats.dropped += new
                self.events.on_frame_dropped(new, reason)

    # --------------------------------------------------------------- still

    async def fetch_still(self, url: str, timeout: float) -> bytes:  # noqa: ASYNC109
        """GET a snapshot URL (same credentials and TLS setting) and return its JPEG.

        A relative ``url`` is resolved against the stream URL. A URL that
        answers with an MJPEG stream gives its first frame. Raises
        `SourceTimeout` after ``timeout`` seconds, `NotMjpeg` when the body is
        not a JPEG, and the other typed errors like `connect()`.
        """
        target = self._still_url(url)
        try:
            async with asyncio.timeout(timeout):
                response = await self._request(target)
                try:
                    return await self._read_still(response)
                finally:
                    response.close()
                    await asyncio.sleep(0)
        except TimeoutError:
            raise SourceTimeout(
                f"no still image from {self.host} in {timeout:g} s"
            ) from None

    def _still_url(self, url: str) -> URL:
        try:
            parsed = URL(url)
        except (ValueError, TypeError):
            raise CannotConnect("the still image URL is not a valid URL") from None
        if (
            not parsed.is_absolute()
            and self._url is not None
            and self._url.is_absolute()
        ):
            parsed = self._url.join(parsed)
        self._add_secrets(url_secrets(url))
        if parsed.user is not None:
            parsed = parsed.with_user(None)
        return self._checked_url(parsed)

    async def _read_still(self, response: aiohttp.ClientResponse) -> bytes:
        content_type = response.headers.get(hdrs.CONTENT_TYPE, "")
        if content_type.partition(";")[0].strip().lower() == _MULTIPART:
            scanner = _BodyScanner(content_type, self._max_frame_size, self.host)
            while chunk := await self._read_chunk(response):
                if frames := scanner.feed(chunk):
                    return frames[0]
            scanner.finish()
            raise CannotConnect(f"{self.host} ended the stream before a frame")
        body = bytearray()
        while chunk := await self._read_chunk(response):
            body += chunk
            if len(body) >= len(_SOI) and not body.startswith(_SOI):
                break  # an error page or such: no need to read it all
            if len(body) > self._max_frame_size:
                raise ProtocolError(
                    f"the still image from {self.host} is larger than {self._max_frame_size} bytes"
                )
        jpeg = bytes(body).rstrip(_TRAILING_PAD)
        if not jpeg.startswith(_SOI):
            raise NotMjpeg(f"the still image URL of {self.host} does not return a JPEG")
        if not jpeg.endswith(_EOI):
            raise ProtocolError(
                f"the still image from {self.host} is an incomplete JPEG"
            )
        return jpeg

    async def _read_chunk(self, response: aiohttp.ClientResponse) -> bytes:
        try:
            return await response.content.readany()
        except _NETWORK_ERRORS as err:
            raise self._translate(err) from err

    # ------------------------------------------------------------- request

    def _checked_url(self, url: URL | None) -> URL:
        if url is None or url.scheme not in ("http", "https") or not url.host:
            raise CannotConnect(
                "the URL must be an http:// or https:// URL with a host"
            )
        return url

    async def _request(self, url: URL) -> aiohttp.ClientResponse:
        """GET ``url``, answering auth challenges; return a 200 response.

        The last response's head must be complete within the head deadline
        (``connect_timeout + read_timeout``, for every round together). The
        caller must close the response. Raises the typed errors.
        """
        deadline = asyncio.timeout(self._head_timeout)
        try:
            async with deadline:
                response = await self._authorized_get(url)
        except _NETWORK_ERRORS as err:
            if deadline.expired():
                error: SourceError = SourceTimeout(
                    f"{self.host} sent no complete response head "
                    f"in {self._head_timeout:g} s"
                )
            else:
                error = self._translate(err)
            # A failed connection (e.g. a TLS handshake) closes its socket on
            # the next loop iteration; let it, so a retry never overlaps it.
            await asyncio.sleep(0)
            raise error from err
        status = response.status
        encoding = response.headers.get(hdrs.CONTENT_ENCODING, "")
        if status == 200 and encoding.strip().lower() in _IDENTITY:
            return response
        response.close()
        if status == 200:
            # Asked for identity; never inflated (a bomb would inflate here).
            shown = self._redact(encoding.strip()[:_ENCODING_SHOWN])
            raise ProtocolError(
                f"{self.host} sends a compressed body (Content-Encoding: {shown}) "
                "although PrintCam asks for none; turn compression off on the "
                "camera or the proxy in front of it"
            )
        if status in (401, 403):
            raise InvalidAuth(
                f"{self.host} refused the credentials (HTTP {status})"
                if self._username or self._password or status == 403
                else f"{self.host} needs a username and password (HTTP 401)"
            )
        # The reason phrase comes from the printer: redact it like the rest.
        raise CannotConnect(
            self._redact(
                f"{self.host} answered HTTP {status} {response.reason or ''}"
            ).rstrip()
        )

    async def _authorized_get(self, url: URL) -> aiohttp.ClientResponse:
        """Run the request, answering 401 challenges; return the last response.

        Raises `AuthDowngrade` instead of answering basic where the origin
        offered digest before.
        """
        origin = url.origin()
        has_credentials = bool(self._username or self._password)
        remembered = self._remembered.get(origin) if has_credentials else None
        basic = remembered == "basic" and origin not in self._digest_origins
        authorization: str | None = None
        if isinstance(remembered, _DigestAuth):
            authorization = remembered.authorization(hdrs.METH_GET, url)
        # True once the credentials sent answer a challenge of this very
        # call: a plain 401 to them means they are wrong.
        answered = False
        attempt = 0
        while True:
            attempt += 1
            response = await self._get(url, authorization, basic=basic)
            if (
                response.status != 401
                or not has_credentials
                or attempt == _MAX_AUTH_ROUNDS
            ):
                break
            try:
                challenges = _parse_challenges(
                    response.headers.getall(hdrs.WWW_AUTHENTICATE, [])
                )
                if any(scheme == "digest" for scheme, _ in challenges):
                    self._digest_origins.add(origin)
                digest = _pick_digest(challenges)
            finally:
                # Answered or given up: this response is done either way.
                response.close()
            if digest is not None and (
                not answered or digest.get("stale", "").lower() == "true"
            ):
                answer = _DigestAuth(self._username, self._password, digest)
                self._remembered[origin] = answer
                authorization = answer.authorization(hdrs.METH_GET, url)
                basic = False
            elif (
                digest is None
                and not basic
                and any(scheme == "basic" for scheme, _ in challenges)
            ):
                if origin in self._digest_origins:
                    _LOGGER.warning(
                        "%s offered digest authentication before and now only "
                        "basic; not sending the password readable",
                        self.host,
                    )
                    raise AuthDowngrade(
                        f"{self.host} asks for basic authentication after "
                        "offering digest; PrintCam does not send the password "
                        "readable to it (is something in the middle?)"
                    )
                authorization, basic = None, True
            else:
                break
            answered = True
            _LOGGER.debug(
                "%s: answering a %s challenge",
                self.host,
                "basic" if basic else "digest",
            )
            # Let the socket close before the next one opens (one-client printers).
            await asyncio.sleep(0)
        if response.status in (401, 403):
            # Whatever was remembered is wrong now; start over next time.
            self._remembered.pop(origin, None)
        elif basic and response.status == 200:
            self._remembered[origin] = "basic"
        return response

    def _client(self) -> aiohttp.ClientSession:
        """Return a session for one request, on the given session's connector.

        It reads heads through `_BoundedResponse` and never decompresses; it
        owns nothing, so closing it leaves the pool and the response alone.
        """
        session = self._session
        connector = session.connector
        if connector is None or session.closed:
            raise CannotConnect("the HTTP session is closed")
        return aiohttp.ClientSession(
            connector=connector,
            connector_owner=False,
            headers=session.headers,
            cookie_jar=session.cookie_jar,
            response_class=_BoundedResponse,
            auto_decompress=False,
        )

    async def _get(
        self, url: URL, authorization: str | None, *, basic: bool
    ) -> aiohttp.ClientResponse:
        headers = {hdrs.CONNECTION: "close", hdrs.ACCEPT_ENCODING: "identity"}
        if authorization:
            headers[hdrs.AUTHORIZATION] = authorization
        async with self._client() as client:
            return await client.get(
                url,
                headers=headers,
                auth=aiohttp.BasicAuth(self._username, self._password, encoding="utf-8")
                if basic
                else None,
                timeout=self._timeout,
                ssl=self._ssl,
            )

    # -------------------------------------------------------------- errors

    def _add_secrets(self, secrets: list[str]) -> None:
        for secret in secrets:
            if secret and secret not in self._secrets:
                self._secrets.append(secret)
        # Longest first, so a secret containing another is redacted whole.
        self._secrets.sort(key=len, reverse=True)

    def _redact(self, text: str) -> str:
        return redact_text(text, self._secrets)

    def _translate(self, err: BaseException) -> SourceError:
        """Map an aiohttp/network error to a typed error without secrets."""
        host = self.host
        if isinstance(err, TimeoutError):
            error: SourceError = SourceTimeout(f"{host} did not answer in time")
        elif isinstance(err, aiohttp.ClientConnectorCertificateError):
            error = CannotConnect(
                f"the TLS certificate of {host} is not trusted "
                "(turn off certificate verification for a self-signed printer)"
            )
        elif isinstance(err, aiohttp.ClientSSLError):
            error = CannotConnect(f"TLS with {host} failed")
        elif isinstance(err, aiohttp.ClientConnectorError):
            reason = err.os_error.strerror or type(err.os_error).__name__
            error = CannotConnect(f"cannot connect to {host}: {reason}")
        elif isinstance(err, aiohttp.ClientPayloadError):
            error = CannotConnect(f"{host} cut the stream off")
        elif isinstance(err, aiohttp.ServerDisconnectedError):
            error = CannotConnect(f"{host} closed the connection")
        elif isinstance(err, _HeadTooLarge):
            error = ProtocolError(
                f"{host} sent a response head over {MAX_HEAD_BYTES} bytes"
            )
        elif isinstance(err, aiohttp.TooManyRedirects):
            error = CannotConnect(f"{host} redirects too many times")
        elif isinstance(err, aiohttp.ClientResponseError):
            error = ProtocolError(f"{host} sent an invalid HTTP response")
        else:
            error = CannotConnect(f"cannot talk to {host}: {type(err).__name__}")
        error.args = (self._redact(str(error)),)
        return error
