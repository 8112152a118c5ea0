"""The one redaction rule (redact.py): user info and credential parameters."""

from __future__ import annotations

import pytest

from custom_components.printcam.redact import (
    REDACTED,
    is_credential_key,
    redact_text,
    redact_url,
    strip_credential_params,
    url_secrets,
)

R = REDACTED


@pytest.mark.parametrize(
    "name",
    [
        "user",
        "Username",
        "usr",
        "u",
        "p",
        "pw",
        "pwd",
        "PASSWORD",
        "passwd",
        "loginuse",
        "loginpas",
        "token",
        "access_token",
        "api_key",
        "apiKey",
        "auth",
        "authorization",
        "secret",
        "client_secret",
        "sig",
        "X-Amz-Signature",
        "credential",
        "session",
        "sid",
        "code",
        "p%77d",  # pwd, percent-encoded
        "+user+",
    ],
)
def test_credential_keys(name: str) -> None:
    assert is_credential_key(name)


@pytest.mark.parametrize(
    "name",
    ["action", "resolution", "channel", "stream", "fps", "q", "src", "", "up", "id"],
)
def test_other_keys(name: str) -> None:
    assert not is_credential_key(name)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://printer.local/webcam/?action=stream", None),
        ("http://h/a?b=1&c", None),
        (
            "http://admin:secret@cam:8080/s?action=stream",
            f"http://{R}@cam:8080/s?action=stream",
        ),
        # A raw "@" in the password: the user info ends at the last "@".
        ("http://admin:p@ss@cam/s", f"http://{R}@cam/s"),
        ("http://admin:p@ss@cam", f"http://{R}@cam"),
        ("http://me@[fe80::1]:81/", f"http://{R}@[fe80::1]:81/"),
        # An "@" after the authority is not user info.
        ("http://cam/path@x?q=a@b", None),
        (
            "http://cam/cgi?cmd=GetMJStream&usr=admin&pwd=p%40ss&x=1",
            f"http://cam/cgi?cmd=GetMJStream&usr={R}&pwd={R}&x=1",
        ),
        ("http://cam/?pwd=a@b/c#f", f"http://cam/?pwd={R}#f"),
        ("http://cam/#access_token=abc&x=1", f"http://cam/#access_token={R}&x=1"),
        ("http://cam/?pwd=&user", None),  # nothing to hide
        ("/snapshot?token=abc", f"/snapshot?token={R}"),
        ("cam/snapshot?token=abc", f"cam/snapshot?token={R}"),
    ],
)
def test_redact_url(url: str, expected: str | None) -> None:
    assert redact_url(url) == (url if expected is None else expected)


def test_redact_text_finds_every_url_then_every_secret() -> None:
    text = (
        "GET https://u:p@w@cam/x?user=admin&pwd=hunter22 failed; "
        "see 'rtsp://bblp:12345678@10.0.0.5:322/streaming' and hunter22 again, "
        "or hunter2"
    )
    assert redact_text(text, ["hunter22", "hunter2", ""]) == (
        f"GET https://{R}@cam/x?user={R}&pwd={R} failed; "
        f"see 'rtsp://{R}@10.0.0.5:322/streaming' and {R} again, or {R}"
    )
    assert redact_text("no URL, no secret") == "no URL, no secret"
    assert redact_text("a secret", ["secret"]) == f"a {R}"


def test_url_secrets_raw_and_decoded_longest_first() -> None:
    assert url_secrets("http://admin:p%40ss@cam/?pwd=a%2Bb+c&token=t&x=1#sig=s") == [
        "a%2Bb+c",
        "p%40ss",
        "a+b c",
        "a+b+c",
        "admin",
        "p@ss",
        "s",
        "t",
    ]
    assert url_secrets(" http://admin:p@ss@cam/ ") == ["admin", "p@ss"]
    assert url_secrets("http://admin@cam/") == ["admin"]
    assert url_secrets("http://cam/?action=stream&user=") == []
    assert url_secrets("http://[bad") == []


def test_strip_credential_params_keeps_the_rest_as_written() -> None:
    assert strip_credential_params("") == ""
    assert strip_credential_params("action=stream") == "action=stream"
    assert strip_credential_params("a=%41&user=x&b=2&PWD=y&&c") == "a=%41&b=2&&c"
    assert strip_credential_params("user=x&pwd=y") == ""
