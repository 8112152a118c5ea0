"""Fuzz target: Bambu Lab discovery datagrams (`parse_notify` in discovery.py).

Anyone on the LAN can send UDP datagrams to port 2021, from any source
address they can forge. The generators write announcements the way the
printers do (docs/printers.md) and then:

* rewrite them without changing their meaning (header names in any case,
  LF or CRLF, blanks around values, unknown headers, lines without a colon,
  later duplicates, a ``Location`` naming any host, a body after the blank
  line): the announcement parsed must not change;
* mutate them (bytes flipped, protocol tokens and bytes that are not UTF-8
  spliced in, spans deleted or repeated, truncation, oversize).

Checked: `parse_notify` never raises; what it returns is a valid
announcement (upper-case serial of 8-20 letters and digits, printable model
code and name within their limits) whose host is the datagram's source
address, normalised and not a global, multicast, unspecified or broadcast
one, whatever the datagram says; oversize datagrams are ignored; parsing
allocates a bounded amount (tracemalloc, on a share of the budget).
"""

from __future__ import annotations

import ipaddress

from hypothesis import given, strategies as st

from custom_components.printcam.discovery import (
    MAX_DATAGRAM,
    MODEL_CODES,
    BambuAnnouncement,
    parse_notify,
)

from .support import fuzz_settings, traced_peak

NT = "urn:bambulab-com:device:3dprinter:1"

serials = st.text(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
    min_size=8,
    max_size=20,
)
model_codes = st.sampled_from(sorted(MODEL_CODES)) | st.text(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-", min_size=1, max_size=8
)
names = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"),
    max_size=80,
)
private_sources = st.sampled_from(
    ["192.168.1.20", "10.0.0.7", "172.16.5.4", "127.0.0.1", "169.254.3.3", "fd00::5"]
) | st.builds(lambda a, b: f"192.168.{a}.{b}", st.integers(0, 255), st.integers(1, 254))
any_sources = private_sources | st.sampled_from(
    [
        "8.8.8.8",
        "224.0.0.251",
        "255.255.255.255",
        "0.0.0.0",  # noqa: S104 - a source address, not a bind
        "::",
        "fe80::1%eth0",
        "192.168.1.300",
        "",
        "printer.local",
        " 192.168.1.2",
        "::ffff:192.168.1.2",
    ]
)
hosts = st.sampled_from(
    ["192.168.1.99", "evil.example.com", "8.8.8.8", "", "::1", "x" * 300, "a..b"]
)


def expected_host(source_ip: str) -> str | None:
    """The normalised source address if a printer can announce from it."""
    if "%" in source_ip:
        return None
    try:
        address = ipaddress.ip_address(source_ip)
    except ValueError:
        return None
    if (
        address.is_global
        or address.is_multicast
        or address.is_unspecified
        or address == ipaddress.IPv4Address("255.255.255.255")
    ):
        return None
    return str(address)


def check(result: BambuAnnouncement | None, data: bytes, source_ip: str) -> None:
    """Invariants of any parse."""
    if result is None:
        return
    assert len(data) <= MAX_DATAGRAM
    assert result.host == expected_host(source_ip), "the host came from the datagram"
    assert result.serial.isascii()
    assert result.serial.isalnum()
    assert result.serial == result.serial.upper()
    assert 8 <= len(result.serial) <= 20
    assert result.serial.encode() in data.upper()
    if result.model_code is not None:
        assert result.model_code.isprintable()
        assert 0 < len(result.model_code) <= 32
    assert result.model == MODEL_CODES.get(result.model_code or "")
    if result.name is not None:
        assert result.name.isprintable()
        assert 0 < len(result.name) <= 64
        assert result.name == result.name.strip()


# ------------------------------------------------------------- datagrams


@st.composite
def announcements(draw: st.DrawFn) -> tuple[bytes, str, str | None, str | None]:
    """A printer's announcement, written in any tolerated style.

    Returns the datagram, its serial, model code and name.
    """
    serial = draw(serials)
    code = draw(st.none() | model_codes)
    name = draw(st.none() | names)
    eol = draw(st.sampled_from(["\r\n", "\n"]))

    def key(name_: str) -> str:
        # Each letter upper or lower case, from one draw.
        mask = draw(st.integers(0, (1 << len(name_)) - 1))
        return "".join(
            c.upper() if mask >> i & 1 else c.lower() for i, c in enumerate(name_)
        )

    def pad() -> str:
        return draw(st.sampled_from(["", " ", "  ", "\t"]))

    headers = [
        ("Host", "239.255.255.250:1990"),
        ("Server", "UPnP/1.0"),
        ("Location", draw(hosts)),
        ("NT", NT if draw(st.booleans()) else NT.upper()),
        ("USN", serial),
        ("Cache-Control", "max-age=1800"),
        ("DevConnect.bambu.com", "lan"),
        ("DevBind.bambu.com", "free"),
        ("DevVersion.bambu.com", "01.07.00.00"),
    ]
    if code is not None:
        headers.append(("DevModel.bambu.com", code))
    if name is not None:
        headers.append(("DevName.bambu.com", name))
    order = draw(st.permutations(headers))
    lines = [f"{pad()}{key(k)}{pad()}:{pad()}{v}{pad()}" for k, v in order]
    # Tolerated noise: lines without a colon, unknown headers, later
    # duplicates with other values (the first occurrence wins).
    for _ in range(draw(st.integers(0, 3))):
        noise = draw(
            st.sampled_from(
                [
                    "no colon here",
                    "X-Unknown: 1",
                    "USN: 0000000000000000",
                    "NT: urn:other",
                    "Location: 10.9.9.9",
                ]
            )
        )
        if name is not None and draw(st.booleans()):
            noise = "DevName.bambu.com: other"
        index = draw(st.integers(len(lines) if ":" in noise else 0, len(lines)))
        lines.insert(index, noise)
    start = draw(
        st.sampled_from(
            ["NOTIFY * HTTP/1.1", "notify * http/1.1", "NOTIFY  *\tHTTP/1.1 "]
        )
    )
    body = draw(st.sampled_from(["", eol, eol + eol + "USN: 11111111" + eol]))
    data = (eol.join([start, *lines]) + eol + body).encode("utf-8")
    return data, serial, code, name


def expected_name(name: str | None) -> str | None:
    if name is None:
        return None
    name = "".join(c for c in name.strip() if c.isprintable()).strip()
    return name[:64].rstrip() or None


@fuzz_settings()
@given(announcement=announcements(), source_ip=private_sources)
def test_fuzz_tolerated_styles_parse_the_same(
    announcement: tuple[bytes, str, str | None, str | None], source_ip: str
) -> None:
    """Every style the printers use gives the same announcement; Location is ignored."""
    data, serial, code, name = announcement
    result = parse_notify(data, source_ip)
    if len(data) > MAX_DATAGRAM:
        assert result is None
        return
    assert result is not None
    check(result, data, source_ip)
    assert result.host == expected_host(source_ip)
    assert result.serial == serial.upper()
    if code is not None and code.isprintable() and len(code) <= 32:
        assert result.model_code == code
    assert result.name == expected_name(name)


TOKENS = (
    b"\r\n",
    b"\n",
    b"\r",
    b":",
    b" ",
    b"\x00",
    b"\xff",
    b"\xc3",
    b"\xe2\x80\xae",  # right-to-left override
    b"\r\n\r\n",
    b"USN: ",
    b"Location: 8.8.8.8\r\n",
    b"NT: " + NT.encode() + b"\r\n",
)


@st.composite
def hostile_datagrams(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(announcements())[0])
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "repeat", "cut"]))
        at = draw(st.integers(0, len(data)))
        if op == "flip" and at < len(data):
            data[at] ^= draw(st.integers(1, 255))
        elif op == "insert":
            data[at:at] = draw(
                st.sampled_from(TOKENS) | st.binary(min_size=1, max_size=6)
            )
        elif op == "delete":
            del data[at : at + draw(st.integers(1, 40))]
        elif op == "repeat":
            data[at:at] = draw(st.sampled_from(TOKENS)) * draw(st.integers(1, 2000))
        else:
            del data[at:]
    return bytes(data)


@fuzz_settings()
@given(data=hostile_datagrams() | st.binary(max_size=200), source_ip=any_sources)
def test_fuzz_hostile_datagrams(data: bytes, source_ip: str) -> None:
    """Mutated announcements from any source: no exception, a valid result or None."""
    check(parse_notify(data, source_ip), data, source_ip)


@fuzz_settings(share=0.2)
@given(
    unit=st.sampled_from([b"\n", b":", b"a: b\r\n", b"\xe2\x80\xae", b"\x00", b" "]),
    size=st.integers(MAX_DATAGRAM - 200, MAX_DATAGRAM + 10),
)
def test_fuzz_datagram_floods(unit: bytes, size: int) -> None:
    """A datagram as large as accepted, of one nasty unit: bounded work and memory."""
    head = b"NOTIFY * HTTP/1.1\r\nNT: " + NT.encode() + b"\r\nUSN: 01P00A392800174\r\n"
    data = (head + unit * size)[:size]
    with traced_peak() as peak:
        result = parse_notify(data, "192.168.1.20")
    check(result, data, "192.168.1.20")
    assert peak() <= 64 * MAX_DATAGRAM
