"""Tests for the pinned RTSPS relay (sources/rtsps_relay.py).

Against a fake TLS RTSP printer on 127.0.0.1 (asyncio, a self-signed
certificate whose CN is the serial) reached as ``localhost``, so that the
printer's address and the relay's ``127.0.0.1`` differ: pinning and the
serial check before any byte, the error mapping, the URL rewrites both ways,
Basic and Digest answered by the relay (ffmpeg's URL carries no secret),
interleaved frames untouched, one local client only, and everything closed
whichever side ends.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Awaitable, Callable
import hashlib
import re
import socket
import struct
from typing import Any

import pytest

from custom_components.printcam import sources
from custom_components.printcam.sources import rtsps_relay
from custom_components.printcam.sources.base import (
    CameraPortClosed,
    CannotConnect,
    CertificateMismatch,
    InvalidAuth,
    InvalidSerial,
    LiveviewDisabled,
    ProtocolError,
    SourceTimeout,
)
from custom_components.printcam.sources.rtsps_relay import (
    STREAM_PATH,
    RtspsRelay,
    _read_message,
)
from printer_sim.certs import make_certificate, server_context

SERIAL = "00M09A350100123"
CODE = "12345678"
HOST = "localhost"
PRINTER_IP = "192.168.1.77"
WAIT = 5.0
SDP = (
    "v=0\r\no=- 1 1 IN IP4 192.168.1.77\r\ns=Bambu\r\nt=0 0\r\n"
    "m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
    f"a=control:rtsps://{PRINTER_IP}:322/streaming/live/1/trackID=1\r\n"
)
# Binary frames whose payloads look like RTSP text and URLs.
TRICKY = [
    b"RTSP/1.0 200 OK\r\nCSeq: 9\r\n\r\n",
    f"rtsps://{PRINTER_IP}:322/x rtsp://127.0.0.1:1/".encode(),
    b"$\x00\x00\x04\r\n\r\n",
    b"",
    bytes(range(256)) * 4,
]


def frame(channel: int, payload: bytes) -> bytes:
    return b"$" + struct.pack(">BH", channel, len(payload)) + payload


def basic(code: str = CODE) -> str:
    return "Basic " + base64.b64encode(f"bblp:{code}".encode()).decode()


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()  # noqa: S324


def parse_head(raw: bytes) -> tuple[str, dict[str, str]]:
    lines = raw.decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
    return lines[0], headers


class Peer:
    """A fake printer: TLS (or plain TCP) on 127.0.0.1, in one of a few modes."""

    def __init__(
        self,
        mode: str = "rtsp",
        *,
        serial: str = SERIAL,
        auth: str = "basic",
        code: str = CODE,
        tls: bool = True,
    ) -> None:
        self.mode = mode
        self.certificate = make_certificate(serial)
        self.auth = auth
        self.code = code
        self.tls = tls
        self.received = bytearray()
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.frames_in: list[bytes] = []
        self.connections = 0
        self.ended = asyncio.Event()
        self.after_play: list[bytes] = [frame(0, p) for p in TRICKY]
        self.extra: list[bytes] = []
        """Raw bytes sent after each response (protocol-error tests)."""
        self.writer: asyncio.StreamWriter | None = None
        self._handlers: set[asyncio.Task[Any]] = set()
        self.nonce = 0

    async def start(self) -> None:
        context = server_context(self.certificate) if self.tls else None
        self.server = await asyncio.start_server(
            self._handle, "127.0.0.1", 0, ssl=context
        )
        self.port = self.server.sockets[0].getsockname()[1]

    @property
    def sha256(self) -> str:
        return self.certificate.sha256

    async def close(self) -> None:
        self.server.close()
        for task in self._handlers:
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self.server.wait_closed()

    async def _handle(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self.connections += 1
        self.writer = writer
        try:
            await getattr(self, f"_{self.mode}")(reader, writer)
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.transport.abort()
            self.ended.set()

    async def _record(self, reader: asyncio.StreamReader, _: Any) -> None:
        while data := await reader.read(65536):
            self.received += data

    async def _close(self, *_: Any) -> None:
        return

    async def _reset(self, _: Any, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    async def _hang(self, *_: Any) -> None:
        await asyncio.sleep(60)

    async def _talk(self, reader: asyncio.StreamReader, writer: Any) -> None:
        writer.write(b"RTSP/1.0 200 OK\r\n\r\n")
        await self._record(reader, writer)

    async def _rtsp(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        while True:
            first = await reader.readexactly(1)
            if first == b"$":
                head = await reader.readexactly(3)
                payload = await reader.readexactly(struct.unpack(">H", head[1:])[0])
                self.frames_in.append(first + head + payload)
                writer.write(first + head + payload)  # echo
                continue
            raw = first + await reader.readuntil(b"\r\n\r\n")
            self.received += raw
            start, headers = parse_head(raw)
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            self.requests.append((start, headers))
            method = start.split(" ")[0]
            cseq = headers.get("cseq", "0")
            if not self._authorized(method, headers):
                writer.write(self._challenge(cseq))
            else:
                writer.write(self._respond(method, cseq, body))
                if method == "PLAY":
                    writer.write(b"".join(self.after_play))
            for data in self.extra:
                writer.write(data)
            await writer.drain()

    def _authorized(self, method: str, headers: dict[str, str]) -> bool:
        value = headers.get("authorization", "")
        if self.auth == "basic":
            return value == basic(self.code)
        if not value.startswith("Digest "):
            return False
        params = {
            key: quoted or bare
            for key, quoted, bare in re.findall(
                r'(\w+)=(?:"([^"]*)"|([^,\s]+))', value[7:]
            )
        }
        ha1 = md5(f"bblp:{params['realm']}:{self.code}")
        ha2 = md5(f"{method}:{params['uri']}")
        expected = md5(
            f"{ha1}:{params['nonce']}:{params['nc']}:{params['cnonce']}:auth:{ha2}"
        )
        return params["response"] == expected and params["nonce"] == str(self.nonce)

    def _challenge(self, cseq: str) -> bytes:
        if self.auth == "basic":
            offer = 'Basic realm="bambu"'
        else:
            self.nonce += 1
            offer = f'Digest realm="bambu", nonce="{self.nonce}", qop="auth"'
        return (
            f"RTSP/1.0 401 Unauthorized\r\nCSeq: {cseq}\r\n"
            f"WWW-Authenticate: {offer}\r\n\r\n"
        ).encode()

    def _respond(self, method: str, cseq: str, body: bytes) -> bytes:
        base = f"rtsps://{PRINTER_IP}:322{STREAM_PATH}/"
        extra = ""
        payload = b""
        if method == "OPTIONS":
            extra = "Public: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN\r\n"
        elif method == "DESCRIBE":
            payload = SDP.encode()
            extra = (
                f"Content-Base: {base}\r\nContent-Type: application/sdp\r\n"
                f"Content-Length: {len(payload)}\r\n"
            )
        elif method == "SETUP":
            extra = "Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\nSession: 42\r\n"
        elif method == "PLAY":
            extra = f"Session: 42\r\nRTP-Info: url={base}trackID=1;seq=1\r\n"
        elif method == "SET_PARAMETER":
            payload = body
            extra = f"Content-Type: text/parameters\r\nContent-Length: {len(body)}\r\n"
        return f"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\n{extra}\r\n".encode() + payload


class Client:
    """A plain RTSP client on the relay's local URL (what ffmpeg does)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader = reader
        self.writer = writer
        self.cseq = 0

    @classmethod
    async def connect(cls, url: str) -> Client:
        port = int(url.split(":")[2].split("/")[0])
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def request(
        self, method: str, url: str, headers: str = "", body: bytes = b""
    ) -> tuple[str, dict[str, str], bytes]:
        self.cseq += 1
        if body:
            headers += f"Content-Length: {len(body)}\r\n"
        self.writer.write(
            f"{method} {url} RTSP/1.0\r\nCSeq: {self.cseq}\r\n{headers}\r\n".encode()
            + body
        )
        return await self.response()

    async def response(self) -> tuple[str, dict[str, str], bytes]:
        async with asyncio.timeout(WAIT):
            start, headers = parse_head(await self.reader.readuntil(b"\r\n\r\n"))
            body = await self.reader.readexactly(
                int(headers.get("content-length", "0"))
            )
        return start, headers, body

    async def close(self) -> None:
        self.writer.transport.abort()
        await asyncio.sleep(0)


PeerFactory = Callable[..., Awaitable[Peer]]


@pytest.fixture
async def make_peer(socket_enabled: None) -> AsyncIterator[PeerFactory]:
    peers: list[Peer] = []

    async def make(*args: Any, **kwargs: Any) -> Peer:
        peer = Peer(*args, **kwargs)
        await peer.start()
        peers.append(peer)
        return peer

    yield make
    for peer in peers:
        await peer.close()


@pytest.fixture
async def relays() -> AsyncIterator[list[RtspsRelay]]:
    """Relays a test makes; each must be closed by the test (checked here)."""
    made: list[RtspsRelay] = []
    yield made
    leftover = [relay for relay in made if not relay.closed]
    for relay in made:
        await relay.close()
    assert not leftover, f"test left relays open: {leftover}"


def make_relay(
    peer: Peer, relays: list[RtspsRelay] | None = None, **kwargs: Any
) -> RtspsRelay:
    kwargs.setdefault("cert_sha256", peer.sha256)
    kwargs.setdefault("port", peer.port)
    kwargs.setdefault("connect_timeout", 2.0)
    kwargs.setdefault("settle_time", 0.05)
    relay = RtspsRelay(
        kwargs.pop("host", HOST),
        kwargs.pop("serial", SERIAL),
        kwargs.pop("access_code", CODE),
        **kwargs,
    )
    if relays is not None:
        relays.append(relay)
    return relay


def local_socket(url: str) -> socket.socket:
    """A blocking client socket (for tests that patch asyncio.open_connection)."""
    port = int(url.split(":")[2].split("/")[0])
    return socket.create_connection(("127.0.0.1", port))


async def wait_for(predicate: Callable[[], bool]) -> None:
    async with asyncio.timeout(WAIT):
        while not predicate():
            await asyncio.sleep(0.01)


async def playing(relay: RtspsRelay) -> tuple[Client, str]:
    """Start if needed, connect a client, run OPTIONS, DESCRIBE, SETUP, PLAY."""
    if relay.url is None:
        await relay.start()
    assert relay.url is not None
    client = await Client.connect(relay.url)
    url = relay.url
    start, _, _ = await client.request("OPTIONS", url)
    assert start == "RTSP/1.0 200 OK"
    start, headers, body = await client.request(
        "DESCRIBE",
        url,
        "Accept: application/sdp\r\nAuthorization: Basic Zm9vOmJhcg==\r\n",
    )
    assert start == "RTSP/1.0 200 OK"
    base = headers["content-base"]
    control = re.search(r"a=control:(\S+)", body.decode()).group(1)  # type: ignore[union-attr]
    await client.request(
        "SETUP", control, "Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n"
    )
    _, headers, _ = await client.request("PLAY", base, "Session: 42\r\n")
    return client, headers["rtp-info"]


# ------------------------------------------------------------- good path


async def test_good_path_rewrites_urls_and_authenticates(
    make_peer: PeerFactory, relays: list[RtspsRelay]
) -> None:
    peer = await make_peer()
    relay = make_relay(peer, relays)
    url = await relay.start()
    assert re.fullmatch(rf"rtsp://127\.0\.0\.1:\d+{STREAM_PATH}", url)
    assert relay.url == url
    assert CODE not in url + repr(relay) + relay.host
    assert relay.host == f"{HOST}:{peer.port}"
    assert relay.peer_certificate is not None
    assert relay.peer_certificate.sha256 == peer.sha256
    assert relay.peer_certificate.common_name == SERIAL
    # Nothing reached the printer before a client asked.
    await asyncio.sleep(0.05)
    assert peer.received == b""

    client, rtp_info = await playing(relay)
    local = url.removesuffix(STREAM_PATH)
    printer = f"rtsps://{HOST}:{peer.port}"
    assert rtp_info == f"url={local}{STREAM_PATH}/trackID=1;seq=1"
    lines = [start for start, _ in peer.requests]
    assert lines == [
        f"OPTIONS {printer}{STREAM_PATH} RTSP/1.0",
        f"DESCRIBE {printer}{STREAM_PATH} RTSP/1.0",
        f"SETUP {printer}{STREAM_PATH}/trackID=1 RTSP/1.0",
        f"PLAY {printer}{STREAM_PATH}/ RTSP/1.0",
    ]
    assert b"127.0.0.1" not in peer.received
    assert all(h["authorization"] == basic() for _, h in peer.requests)
    assert relay.stats.requests == relay.stats.requests_rewritten == 4
    assert relay.stats.responses_rewritten == 2  # DESCRIBE and PLAY
    assert relay.stats.auth_retries == 0

    # Interleaved frames pass untouched both ways.
    async with asyncio.timeout(WAIT):
        for payload in TRICKY:
            assert await client.reader.readexactly(4 + len(payload)) == frame(
                0, payload
            )
    sent = [frame(1, payload) for payload in TRICKY]
    client.writer.write(b"".join(sent))
    async with asyncio.timeout(WAIT):
        echoed = await client.reader.readexactly(sum(map(len, sent)))
    assert echoed == b"".join(sent)
    assert peer.frames_in == sent
    assert relay.stats.interleaved_frames == 2 * len(TRICKY) + len(sent)
    # Requests still work after frames (a keep-alive with a body).
    start, headers, body = await client.request(
        "SET_PARAMETER", url, "Content-Type: text/parameters\r\n", b"ping: 1\r\n"
    )
    assert (start, body) == ("RTSP/1.0 200 OK", b"ping: 1\r\n")
    assert relay.stats.bytes_to_printer > 0
    assert relay.stats.bytes_to_client > 0

    # A second local client is refused: the listener is gone.
    port = int(url.split(":")[2].split("/")[0])
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", port)

    await relay.close()
    assert relay.closed
    await relay.wait_closed()
    assert relay.error is None
    async with asyncio.timeout(WAIT):
        assert await client.reader.read() == b""
        await peer.ended.wait()
    await client.close()


async def test_the_sdp_and_headers_of_other_hosts_are_moved_local(
    make_peer: PeerFactory, relays: list[RtspsRelay]
) -> None:
    peer = await make_peer()
    relay = make_relay(peer, relays)
    url = await relay.start()
    client = await Client.connect(url)
    start, headers, body = await client.request("DESCRIBE", url)
    local = url.removesuffix(STREAM_PATH)
    assert headers["content-base"] == f"{url}/"
    assert f"a=control:{local}{STREAM_PATH}/trackID=1" in body.decode()
    assert int(headers["content-length"]) == len(body)
    assert "192.168.1.77" in body.decode()  # the o= line is not a URL
    await relay.close()
    await client.close()


async def test_async_with_and_stray_line_ends(
    make_peer: PeerFactory, relays: list[RtspsRelay]
) -> None:
    peer = await make_peer()
    async with make_relay(peer, relays) as relay:
        assert relay.url is not None
        client = await Client.connect(relay.url)
        client.writer.write(b"\r\n\r\n")
        start, _, _ = await client.request("OPTIONS", "*")
        assert start == "RTSP/1.0 200 OK"
        assert peer.requests[0][0] == "OPTIONS * RTSP/1.0"
        assert relay.stats.requests_rewritten == 0
        # URL-bearing request headers move to the printer; another port not.
        local = relay.url.removesuffix(STREAM_PATH)
        await client.request(
            "OPTIONS", relay.url, f"Content-Base: {local}/a/\r\nX-Other: {local}5/\r\n"
        )
        headers = peer.requests[1][1]
        assert headers["content-base"] == f"rtsps://{HOST}:{peer.port}/a/"
        assert headers["x-other"] == f"{local}5/"
        # A request without CSeq is relayed too.
        client.writer.write(b"OPTIONS * RTSP/1.0\r\n\r\n")
        start, _, _ = await client.response()
        assert start == "RTSP/1.0 200 OK"
        assert "cseq" not in peer.requests[2][1]
    assert relay.closed
    await client.close()


async def test_a_request_from_the_printer_is_relayed(
    make_peer: PeerFactory, relays: list[RtspsRelay]
) -> None:
    peer = await make_peer()
    announce = (
        f"SET_PARAMETER rtsps://{PRINTER_IP}:322{STREAM_PATH} RTSP/1.0\r\n"
        f"CSeq: 1\r\nContent-Base: rtsps://{PRINTER_IP}:322/\r\n\r\n"
    ).encode()
    peer.extra = [announce, b"RTSP/1.0\r\n\r\n"]
    relay = make_relay(peer, relays)
    url = await relay.start()
    client = await Client.connect(url)
    await client.request("OPTIONS", url)
    start, headers, _ = await client.response()
    assert start.startswith("SET_PARAMETER rtsps://192.168.1.77")  # request line kept
    assert headers["content-base"] == url.removesuffix(STREAM_PATH) + "/"
    start, _, _ = await client.response()
    assert start == "RTSP/1.0"
    await relay.close()
    await client.close()


# ----------------------------------------------------------------- auth


async def test_digest_is_answered_by_the_relay(
    make_peer: PeerFactory, relays: list[RtspsRelay]
) -> None:
    peer = await make_peer(auth="digest")
    peer.after_play = []
    relay = make_relay(peer, relays)
    client, _ = await playing(relay)
    # ffmpeg never saw a 401; the printer saw one Basic, then only Digest.
    auths = [h["authorization"] for _, h in peer.requests]
    assert auths[0] == basic()
    assert all(a.startswith("Digest ") for a in auths[1:])
    assert len(peer.requests) == 5
    assert relay.stats.auth_retries == 1
    assert f'uri="rtsps://{HOST}:{peer.port}{STREAM_PATH}"' in auths[1]
    assert relay.error is None
    # A new nonce (stale) is answered again, once.
    peer.nonce += 1
    start, _, _ = await client.request("OPTIONS", relay.url or "")
    assert start == "RTSP/1.0 200 OK"
    assert relay.stats.auth_retries == 2
    await relay.close()
    await client.close()


@pytest.mark.parametrize("auth", ["basic", "digest"])
async def test_a_wrong_code_is_passed_on_as_401_and_invalid_auth(
    make_peer: PeerFactory, relays: list[RtspsRelay], auth: str
) -> None:
    peer = await make_peer(auth=auth, code="other")
    relay = make_relay(peer, relays)
    url = await relay.start()
    client = await Client.connect(url)
    start, _, _ = await client.request("OPTIONS", url)
    assert start == "RTSP/1.0 401 Unauthorized"
    assert isinstance(relay.error, InvalidAuth)
    assert relay.error.reason == "invalid_auth"
    assert CODE not in str(relay.error)
    assert peer.writer is not None
    peer.writer.close()  # then the printer hangs up: the first error stays
    async with asyncio.timeout(WAIT):
        await relay.wait_closed()
        await peer.ended.wait()
    assert isinstance(relay.error, InvalidAuth)
    await client.close()


async def test_an_unsupported_digest_ends_the_relay(
    make_peer: PeerFactory, relays: list[RtspsRelay]
) -> None:
    peer = await make_peer()
    relay = make_relay(peer, relays)
    url = await relay.start()
    client = await Client.connect(url)
    peer.auth = "none"  # _authorized: never
    peer._challenge = lambda cseq: (  # type: ignore[method-assign]
        f'RTSP/1.0 401 No\r\nCSeq: {cseq}\r\nWWW-Authenticate: Digest nonce="1", '
        'algorithm="SHA-512"\r\n\r\n'
    ).encode()
    client.writer.write(f"OPTIONS {url} RTSP/1.0\r\nCSeq: 1\r\n\r\n".encode())
    async with asyncio.timeout(WAIT):
        await relay.wait_closed()
        assert await client.reader.read() == b""
    assert isinstance(relay.error, InvalidAuth)
    await client.close()


# ------------------------------------------------- checks before any byte


async def test_pin_mismatch_sends_nothing(
    make_peer: PeerFactory, relays: list[RtspsRelay]
) -> None:
    peer = await make_peer("record")
    relay = make_relay(peer, relays, cert_sha256="AB:" * 31 + "AB")
    with pytest.raises(CertificateMismatch) as caught:
        await relay.start()
    assert caught.value.presented == peer.sha256
    assert caught.value.expected == "ab" * 32
    async with asyncio.timeout(WAIT):
        await peer.ended.wait()
    assert peer.received == b""
    assert relay.closed
    assert relay.url is None


async def test_wrong_serial_sends_nothing(
    make_peer: PeerFactory, relays: list[RtspsRelay]
) -> None:
    peer = await make_peer("record", serial="01P00A000000001")
    relay = make_relay(peer, relays)
    with pytest.raises(InvalidSerial):
        await relay.start()
    async with asyncio.timeout(WAIT):
        await peer.ended.wait()
    assert peer.received == b""
    assert relay.closed


async def test_refused_port_is_camera_port_closed(
    socket_enabled: None, relays: list[RtspsRelay]
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    relay = RtspsRelay("127.0.0.1", SERIAL, CODE, cert_sha256="00" * 32, port=port)
    relays.append(relay)
    with pytest.raises(CameraPortClosed):
        await relay.start()
    assert relay.closed


@pytest.mark.parametrize(
    ("mode", "tls"), [("close", False), ("close", True), ("reset", True)]
)
async def test_a_port_closed_at_once_is_liveview_disabled(
    make_peer: PeerFactory, relays: list[RtspsRelay], mode: str, tls: bool
) -> None:
    peer = await make_peer(mode, tls=tls)
    relay = make_relay(peer, relays, settle_time=1.0)
    with pytest.raises(LiveviewDisabled) as caught:
        await relay.start()
    assert caught.value.reason == "liveview_disabled"
    assert isinstance(caught.value, CannotConnect)
    assert "LAN Mode Liveview" in str(caught.value)
    assert relay.closed


async def test_a_silent_port_times_out(
    make_peer: PeerFactory, relays: list[RtspsRelay]
) -> None:
    peer = await make_peer("hang", tls=False)
    relay = make_relay(peer, relays, connect_timeout=0.1)
    with pytest.raises(SourceTimeout):
        await relay.start()
    assert relay.closed


async def test_other_tls_failures_stay_cannot_connect(
    make_peer: PeerFactory, relays: list[RtspsRelay]
) -> None:
    peer = await make_peer("talk", tls=False)  # plain text where TLS is expected
    relay = make_relay(peer, relays)
    with pytest.raises(CannotConnect) as caught:
        await relay.start()
    assert type(caught.value) is CannotConnect


async def test_a_printer_talking_first_is_a_protocol_error(
    make_peer: PeerFactory, relays: list[RtspsRelay]
) -> None:
    peer = await make_peer("talk")
    relay = make_relay(peer, relays)
    with pytest.raises(ProtocolError):
        await relay.start()
    assert relay.closed
    await peer.ended.wait()
    assert peer.received == b""


# ------------------------------------------------------------- lifetime


async def test_the_printer_ending_closes_everything(
    make_peer: PeerFactory, relays: list[RtspsRelay]
) -> None:
    peer = await make_peer()
    relay = make_relay(peer, relays)
    client, _ = await playing(relay)
    assert peer.writer is not None
    peer.writer.close()
    async with asyncio.timeout(WAIT):
        await relay.wait_closed()
        await client.reader.read()  # the frames, then EOF
    assert client.reader.at_eof()
    assert isinstance(relay.error, CannotConnect)
    await client.close()


async def test_the_client_leaving_closes_everything(
    make_peer: PeerFactory, relays: list[RtspsRelay]
) -> None:
    peer = await make_peer()
    relay = make_relay(peer, relays)
    client, _ = await playing(relay)
    await client.close()
    async with asyncio.timeout(WAIT):
        await relay.wait_closed()
        await peer.ended.wait()
    assert relay.error is None


async def test_no_client_in_time(
    make_peer: PeerFactory, relays: list[RtspsRelay]
) -> None:
    peer = await make_peer()
    relay = make_relay(peer, relays, accept_timeout=0.05)
    await relay.start()
    async with asyncio.timeout(WAIT):
        await relay.wait_closed()
        await peer.ended.wait()
    assert isinstance(relay.error, SourceTimeout)
    assert peer.received == b""


@pytest.mark.parametrize("yield_first", [False, True])
async def test_close_before_a_client(
    make_peer: PeerFactory, relays: list[RtspsRelay], yield_first: bool
) -> None:
    peer = await make_peer()
    relay = make_relay(peer, relays)
    url = await relay.start()
    if yield_first:
        await asyncio.sleep(0.01)
    await relay.close()
    assert relay.closed
    await relay.close()  # twice is fine
    port = int(url.split(":")[2].split("/")[0])
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", port)
    async with asyncio.timeout(WAIT):
        await peer.ended.wait()
    assert relay.error is None


async def test_close_before_start_and_start_twice(
    make_peer: PeerFactory, relays: list[RtspsRelay]
) -> None:
    peer = await make_peer()
    relay = make_relay(peer, relays)
    await relay.close()
    assert relay.closed
    relay = make_relay(peer, relays)
    await relay.start()
    with pytest.raises(RuntimeError):
        await relay.start()
    await relay.close()


async def test_cancelling_start_closes_the_connection(
    make_peer: PeerFactory, relays: list[RtspsRelay]
) -> None:
    peer = await make_peer()
    relay = make_relay(peer, relays, settle_time=5.0)
    task = asyncio.create_task(relay.start())
    await wait_for(lambda: peer.connections == 1)
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert relay.closed
    async with asyncio.timeout(WAIT):
        await peer.ended.wait()


async def test_a_non_loopback_client_is_refused(
    make_peer: PeerFactory, relays: list[RtspsRelay], monkeypatch: pytest.MonkeyPatch
) -> None:
    peer = await make_peer()
    loop = asyncio.get_running_loop()
    real = loop.sock_accept

    async def accept(sock: socket.socket) -> tuple[socket.socket, Any]:
        connection, _ = await real(sock)
        return connection, ("10.0.0.5", 40000)

    monkeypatch.setattr(loop, "sock_accept", accept)
    relay = make_relay(peer, relays)
    url = await relay.start()
    client = await Client.connect(url)
    async with asyncio.timeout(WAIT):
        await relay.wait_closed()
        assert await client.reader.read() == b""
    assert isinstance(relay.error, ProtocolError)
    assert "10.0.0.5" in str(relay.error)
    await client.close()


async def test_a_local_socket_that_cannot_be_wrapped(
    make_peer: PeerFactory, relays: list[RtspsRelay], monkeypatch: pytest.MonkeyPatch
) -> None:
    peer = await make_peer()

    async def broken(**_: Any) -> Any:
        raise OSError("no")

    relay = make_relay(peer, relays)
    url = await relay.start()
    monkeypatch.setattr(rtsps_relay.asyncio, "open_connection", broken)
    with local_socket(url):
        async with asyncio.timeout(WAIT):
            await relay.wait_closed()
    assert isinstance(relay.error, CannotConnect)


async def test_close_while_wrapping_the_local_socket(
    make_peer: PeerFactory, relays: list[RtspsRelay], monkeypatch: pytest.MonkeyPatch
) -> None:
    peer = await make_peer()
    entered = asyncio.Event()

    async def slow(**_: Any) -> Any:
        entered.set()
        await asyncio.sleep(60)

    relay = make_relay(peer, relays)
    url = await relay.start()
    monkeypatch.setattr(rtsps_relay.asyncio, "open_connection", slow)
    with local_socket(url):
        async with asyncio.timeout(WAIT):
            await entered.wait()
        await relay.close()
    assert relay.closed


async def test_a_cancelled_close_still_aborts_both_sockets(
    make_peer: PeerFactory, relays: list[RtspsRelay], monkeypatch: pytest.MonkeyPatch
) -> None:
    peer = await make_peer()
    relay = make_relay(peer, relays)
    client, _ = await playing(relay)

    async def cancelled(writer: asyncio.StreamWriter) -> None:
        raise asyncio.CancelledError

    monkeypatch.setattr(rtsps_relay, "close_writer", cancelled)
    await relay.close()
    assert relay.closed
    async with asyncio.timeout(WAIT):
        await client.reader.read()  # the frames, then EOF
        await peer.ended.wait()
    assert client.reader.at_eof()
    await client.close()


# ------------------------------------------------------- protocol errors


@pytest.mark.parametrize(
    "garbage",
    [
        b"HELLO\r\n\r\n",
        b"OPTIONS * HTTP/1.1\r\n\r\n",
        b"OPTIONS * RTSP/1.0\r\nno colon\r\n\r\n",
        b"OPTIONS * RTSP/1.0\r\nContent-Length: x\r\n\r\n",
        b"OPTIONS * RTSP/1.0\r\nContent-Length: 9999999\r\n\r\n",
        b"OPTIONS * RTSP/1.0\r\nX: " + b"a" * 70000,
    ],
)
async def test_bad_requests_end_the_relay(
    make_peer: PeerFactory, relays: list[RtspsRelay], garbage: bytes
) -> None:
    peer = await make_peer()
    relay = make_relay(peer, relays)
    url = await relay.start()
    client = await Client.connect(url)
    client.writer.write(garbage)
    async with asyncio.timeout(WAIT):
        await relay.wait_closed()
    assert isinstance(relay.error, ProtocolError)
    assert peer.requests == []
    await client.close()


@pytest.mark.parametrize(
    ("extra", "error"),
    [
        (b"RTSP/1.0 200 OK\r\nContent-Length: -1\r\n\r\n", ProtocolError),
        (b"RTSP/1.0 200 OK\r\nContent-Length: 10\r\n\r\nabc", CannotConnect),
        (b"$\x00\x00\x10abc", CannotConnect),
    ],
)
async def test_bad_printer_messages_end_the_relay(
    make_peer: PeerFactory,
    relays: list[RtspsRelay],
    extra: bytes,
    error: type[Exception],
) -> None:
    peer = await make_peer()
    peer.extra = [extra]
    relay = make_relay(peer, relays)
    url = await relay.start()
    client = await Client.connect(url)
    await client.request("OPTIONS", url)
    await asyncio.sleep(0.05)
    assert peer.writer is not None
    peer.writer.close()  # ends the message early
    async with asyncio.timeout(WAIT):
        await relay.wait_closed()
    assert type(relay.error) is error
    await client.close()


async def test_a_client_breaking_off_mid_message(
    make_peer: PeerFactory, relays: list[RtspsRelay]
) -> None:
    peer = await make_peer()
    relay = make_relay(peer, relays)
    url = await relay.start()
    client = await Client.connect(url)
    client.writer.write(b"$\x00\x00\x10ab")
    client.writer.close()
    async with asyncio.timeout(WAIT):
        await relay.wait_closed()
    assert relay.error is None
    await client.close()


async def test_read_message_framing() -> None:
    reader = asyncio.StreamReader()
    reader.feed_data(
        frame(3, b"RTSP/1.0 200 OK\r\n\r\n")
        + b"\r\nRTSP/1.0 200 OK\r\nCSeq: 1\r\nContent-Length: 3\r\n\r\nabc"
    )
    reader.feed_eof()
    assert await _read_message(reader) == frame(3, b"RTSP/1.0 200 OK\r\n\r\n")
    message = await _read_message(reader)
    assert not isinstance(message, bytes)
    assert message is not None
    assert message.start == "RTSP/1.0 200 OK"
    assert message.header("CSEQ") == "1"
    assert message.header("x") is None
    assert message.body == b"abc"
    assert await _read_message(reader) is None


def test_exports() -> None:
    assert sources.LiveviewDisabled is LiveviewDisabled
    assert LiveviewDisabled.reason == "liveview_disabled"
    assert not LiveviewDisabled.permanent
    relay = RtspsRelay("fe80::1", SERIAL, CODE, cert_sha256="00" * 32)
    assert relay.host == "[fe80::1]:322"
    assert CODE not in repr(relay)
    assert not relay.closed
