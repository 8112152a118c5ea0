"""Fuzz target: HTTP auth challenges (sources/mjpeg_http.py).

Whatever answers at a camera's address chooses the ``WWW-Authenticate``
headers of a 401. The generators write them as bytes the way servers do
(several challenges per value, several values, parameters quoted or not,
escapes, stray commas and quotes, unknown schemes and algorithms), mutate
them, and decode them the way aiohttp does; CR and LF never reach a header
value (aiohttp's parser splits or rejects them), so they are left out.

Checked: parsing never raises and returns lower-case tokens; the digest
choice is the strongest supported one, ``InvalidAuth`` (documented) only
when every digest offer uses an algorithm nobody implements; answering the
chosen challenge never raises, never produces a header aiohttp would refuse
(CR/LF), repeats realm, nonce, opaque and the request URI exactly, counts
``nc`` up, and carries the response an independent RFC 7616 computation
expects.
"""

from __future__ import annotations

import contextlib
import hashlib
import re

from hypothesis import given, strategies as st
from yarl import URL

from custom_components.printcam.sources.base import InvalidAuth, ProtocolError
from custom_components.printcam.sources.mjpeg_http import (
    _DigestAuth,
    _parse_challenges,
    _pick_digest,
)

from .support import fuzz_settings, traced_peak

HEADER_DECODING = "surrogateescape"
"""How header bytes that are not UTF-8 are decoded here: like aiohttp.

A digest challenge whose values hold such bytes is refused with a
ProtocolError (it can be neither hashed nor sent back), never with Basic.
"""

TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9a-z-]+")
PREFERENCE = ("SHA-256", "SHA-256-SESS", "MD5", "MD5-SESS")
HASHES = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}

# ------------------------------------------------------------------ headers

value_bytes = st.lists(
    st.sampled_from(
        [
            *(b"a", b"Z", b"0", b" ", b"\t", b",", b"=", b'"', b"\\", b";", b"\x00"),
            *(b"\xc3\xa9", b"\xe2\x82\xac", b"\xff", b"\x80", b"\xed\xa0\x80"),
        ]
    )
    | st.binary(max_size=4).filter(lambda b: b"\r" not in b and b"\n" not in b),
    max_size=12,
).map(b"".join)


def quoted(raw: bytes) -> bytes:
    return b'"' + raw.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


param_values = st.one_of(
    value_bytes.map(quoted),
    st.sampled_from(
        [
            *(b"MD5", b"md5", b"SHA-256", b"sha-256-sess", b"MD5-sess", b"SHA-512-256"),
            *(b"auth", b'"auth,auth-int"', b'"auth-int"', b"true", b"TRUE", b""),
            *(b'"unterminated', b'"a\\', b'"\\"', b"token", b"="),
        ]
    ),
    value_bytes,
)
param_names = st.sampled_from(
    [
        *(b"realm", b"nonce", b"qop", b"algorithm", b"opaque", b"stale", b"domain"),
        *(b"charset", b"userhash", b"Realm", b"NONCE", b"Algorithm", b"x-y"),
    ]
)
schemes = st.sampled_from(
    [b"Digest", b"digest", b"DIGEST", b"Basic", b"Bearer", b"Negotiate", b"X"]
)


@st.composite
def challenge(draw: st.DrawFn) -> bytes:
    out = draw(schemes) + draw(st.sampled_from([b" ", b"  ", b"\t", b""]))
    params = []
    for _ in range(draw(st.integers(0, 6))):
        name = draw(param_names)
        equals = draw(st.sampled_from([b"=", b"=", b" = ", b""]))
        params.append(name + equals + draw(param_values))
    separator = draw(st.sampled_from([b", ", b",", b" ,", b",,", b" "]))
    return out + separator.join(params)


@st.composite
def header_values(draw: st.DrawFn) -> list[str]:
    """1-3 WWW-Authenticate values, as aiohttp hands them over."""
    values = []
    for _ in range(draw(st.integers(1, 3))):
        raw = b", ".join(draw(st.lists(challenge(), min_size=1, max_size=3)))
        for _ in range(draw(st.integers(0, 3))):
            at = draw(st.integers(0, len(raw)))
            op = draw(st.sampled_from(["insert", "delete", "cut"]))
            if op == "insert":
                token = draw(
                    st.sampled_from(
                        [b",", b"=", b'"', b"\\", b" ", b"Digest ", b"nonce="]
                    )
                    | st.sampled_from([b"algorithm=SHA-256", b"\xff", b"\x00"])
                )
                raw = raw[:at] + token + raw[at:]
            elif op == "delete":
                raw = raw[:at] + raw[at + draw(st.integers(1, 8)) :]
            else:
                raw = raw[:at]
        # aiohttp strips the value's surrounding whitespace.
        values.append(raw.strip(b" \t").decode("utf-8", HEADER_DECODING))
    return values


credentials = st.text(
    st.characters(blacklist_categories=("Cs", "Cc")) | st.sampled_from('":\\,@ '),
    max_size=12,
)
urls = st.sampled_from(
    [
        "http://cam.local/stream",
        "http://10.0.0.5:8080/?action=stream",
        "http://cam.local/webcam/?action=stream&x=%22a%22",
        "http://cam.local/caf%C3%A9/v%20id",
        "http://cam.local/",
    ]
).map(URL)


# ------------------------------------------------------------------ oracle


def expected_choice(
    challenges: list[tuple[str, dict[str, str]]],
) -> type[InvalidAuth | ProtocolError] | dict[str, str] | None:
    """The strongest supported digest offer, None, or InvalidAuth."""
    digests = [p for scheme, p in challenges if scheme == "digest" and "nonce" in p]
    if not digests:
        return None
    offered = [p for p in digests if not any(_surrogates(v) for v in p.values())]
    if not offered:
        return ProtocolError
    for algorithm in PREFERENCE:
        for params in offered:
            if params.get("algorithm", "MD5").upper() == algorithm:
                return params
    return InvalidAuth


def _surrogates(text: str) -> bool:
    """Return True if `text` holds undecodable bytes (lone surrogates)."""
    return any("\ud800" <= char <= "\udfff" for char in text)


def to_bytes(text: str) -> bytes:
    """The bytes a string from a header stands for."""
    return text.encode("utf-8", "surrogateescape")


def expected_response(
    challenge: dict[str, str], fields: dict[str, str], user: str, password: str
) -> str:
    """RFC 7616 (and RFC 2069 without qop) response for the sent fields."""
    algorithm = challenge.get("algorithm", "MD5").upper()
    digest = HASHES[algorithm.removesuffix("-SESS")]

    def h(*parts: bytes) -> str:
        return digest(b":".join(parts)).hexdigest()

    realm, nonce = to_bytes(challenge.get("realm", "")), to_bytes(challenge["nonce"])
    ha1 = h(to_bytes(user), realm, to_bytes(password))
    if algorithm.endswith("-SESS"):
        ha1 = h(ha1.encode(), nonce, to_bytes(fields["cnonce"]))
    uri = to_bytes(fields["uri"])
    qop = fields.get("qop")
    ha2 = h(b"GET", uri, h(b"")) if qop == "auth-int" else h(b"GET", uri)
    if qop is None:
        return h(ha1.encode(), nonce, ha2.encode())
    return h(
        ha1.encode(),
        nonce,
        fields["nc"].encode(),
        to_bytes(fields["cnonce"]),
        qop.encode(),
        ha2.encode(),
    )


# ------------------------------------------------------------------ targets


@fuzz_settings()
@given(values=header_values(), user=credentials, password=credentials, url=urls)
def test_fuzz_www_authenticate(
    values: list[str], user: str, password: str, url: URL
) -> None:
    """Parse, choose and answer any challenge; the answer checks out."""
    challenges = _parse_challenges(values)
    for scheme, params in challenges:
        assert TOKEN.fullmatch(scheme)
        assert all(TOKEN.fullmatch(name) for name in params)
    outcome: object
    try:
        outcome = _pick_digest(challenges)
    except InvalidAuth:
        outcome = InvalidAuth
    except ProtocolError:
        outcome = ProtocolError
    assert outcome is expected_choice(challenges)
    if not isinstance(outcome, dict):
        return
    chosen: dict[str, str] = outcome
    auth = _DigestAuth(user, password, chosen)
    qops = {q.strip().lower() for q in chosen.get("qop", "").split(",")}
    qop = "auth" if "auth" in qops else "auth-int" if "auth-int" in qops else None
    for nc in (1, 2):
        header = auth.authorization("GET", url)
        assert "\r" not in header
        assert "\n" not in header
        parsed = _parse_challenges([header])
        assert len(parsed) == 1
        scheme, fields = parsed[0]
        assert scheme == "digest"
        assert fields["username"] == user
        assert fields["realm"] == chosen.get("realm", "")
        assert fields["nonce"] == chosen["nonce"]
        assert fields["uri"] == url.raw_path_qs
        assert fields.get("opaque") == chosen.get("opaque")
        assert fields.get("qop") == qop
        if qop:
            assert fields["nc"] == f"{nc:08x}"
        assert fields["response"] == expected_response(chosen, fields, user, password)


@fuzz_settings(share=0.1)
@given(
    unit=st.sampled_from(
        [b",", b'"', b"\\", b"a=", b'a="\\', b"Digest ", b"nonce=x, ", b" \t"]
    ),
    size=st.integers(1000, 8190),
)
def test_fuzz_www_authenticate_floods(unit: bytes, size: int) -> None:
    """A header as long as aiohttp allows, of one nasty unit: cheap and bounded."""
    value = (unit * (size // len(unit) + 1))[:size].decode()
    with traced_peak() as peak:
        challenges = _parse_challenges([value, value])
        with contextlib.suppress(InvalidAuth):
            _pick_digest(challenges)
    assert peak() <= 64 * size + 256 * 1024
