"""Credentials out of every URL and text PrintCam shows (no Home Assistant).

Cameras take credentials in two places of a URL: the user info
(``http://user:pass@host/``) and the query string (``?user=admin&pwd=...``,
``?token=...``). This module finds and replaces both, with one rule for what
a credential is, for diagnostics, error texts, logs and unique ids alike:

- the user info runs from ``://`` to the *last* ``@`` before the path, so a
  password with a raw ``@`` is replaced whole, not cut at its first ``@``;
- a query (or fragment) parameter is a credential when its name, decoded
  and lower-cased, contains one of `CREDENTIAL_WORDS` or is one of
  `CREDENTIAL_NAMES`.
"""

from __future__ import annotations

from collections.abc import Iterable
import re
from typing import Final
from urllib.parse import unquote, unquote_plus

REDACTED: Final = "**REDACTED**"
"""What a secret is replaced by (Home Assistant's diagnostics marker)."""

CREDENTIAL_WORDS: Final = (
    "user",
    "login",
    "pass",
    "pwd",
    "token",
    "key",
    "auth",
    "secret",
    "sig",
    "cred",
    "session",
)
"""A parameter whose name contains one of these is a credential
(``username``, ``loginpas``, ``api_key``, ``access_token``, ``X-Amz-Signature``)."""
CREDENTIAL_NAMES: Final = frozenset({"u", "p", "pw", "usr", "sid", "code"})
"""Short parameter names that are credentials only when they are the whole name."""

_URL_RE: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s\"'<>]*")
_AUTHORITY_END: Final = re.compile(r"[/?#]")


def is_credential_key(name: str) -> bool:
    """Return True when a query parameter called ``name`` carries a credential."""
    key = unquote_plus(name).strip().lower()
    return key in CREDENTIAL_NAMES or any(word in key for word in CREDENTIAL_WORDS)


def _split_url(url: str) -> tuple[str, str, str, str, str]:
    """Split ``url`` into scheme+``://``, user info, host part, path, rest.

    The user info ends at the last ``@`` of the authority (empty when there
    is none); ``rest`` starts with ``?`` or ``#`` (or is empty).
    """
    scheme, sep, after = url.partition("://")
    if not sep:
        scheme, after = "", url
    else:
        scheme += sep
    end = _AUTHORITY_END.search(after)
    authority, tail = (
        (after[: end.start()], after[end.start() :]) if end else (after, "")
    )
    userinfo, at, host = authority.rpartition("@")
    path_end = min(
        (i for i in (tail.find("?"), tail.find("#")) if i >= 0), default=len(tail)
    )
    return scheme, userinfo + at, host, tail[:path_end], tail[path_end:]


def _redact_pairs(text: str) -> str:
    """Replace the values of credential parameters in ``a=1&pwd=2``."""
    pairs = text.split("&")
    for i, pair in enumerate(pairs):
        name, eq, value = pair.partition("=")
        if eq and value and is_credential_key(name):
            pairs[i] = f"{name}={REDACTED}"
    return "&".join(pairs)


def redact_url(url: str) -> str:
    """Return ``url`` with its user info and credential parameter values redacted."""
    scheme, userinfo, host, path, rest = _split_url(url)
    if userinfo:
        userinfo = f"{REDACTED}@"
    query, hash_, fragment = rest.partition("#")
    if query:
        query = "?" + _redact_pairs(query[1:])
    if hash_:
        fragment = _redact_pairs(fragment)
    return f"{scheme}{userinfo}{host}{path}{query}{hash_}{fragment}"


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Redact every URL in ``text``, then every string of ``secrets`` in it.

    Give ``secrets`` longest first, so that one containing another is
    replaced whole (`url_secrets` returns them so).
    """
    if "://" in text:
        text = _URL_RE.sub(lambda match: redact_url(match.group()), text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text


def url_secrets(url: str) -> list[str]:
    """Return the credentials written in ``url``, raw and decoded, longest first.

    The user name and password of the user info and the values of credential
    query (and fragment) parameters: what must never be shown even where it
    is not recognisable as part of a URL (an echo in an error message).
    """
    _, userinfo, _, _, rest = _split_url(url.strip())
    found: set[str] = set()
    if userinfo:
        user, _, password = userinfo[:-1].partition(":")
        found.update((user, password, unquote(user), unquote(password)))
    for part in re.split(r"[?#&]", rest):
        name, eq, value = part.partition("=")
        if eq and is_credential_key(name):
            found.update((value, unquote_plus(value), unquote(value)))
    found.discard("")
    return sorted(found, key=lambda secret: (-len(secret), secret))


def strip_credential_params(query: str) -> str:
    """Return the raw ``query`` (no ``?``) without its credential parameters.

    Every other parameter stays exactly as written, in order.
    """
    return "&".join(
        pair
        for pair in query.split("&")
        if not is_credential_key(pair.partition("=")[0])
    )
