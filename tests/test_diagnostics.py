"""Diagnostics, and no configured secret anywhere: diagnostics or logs.

Every log record of every test in this module is collected (all loggers at
DEBUG); the last test fails if any configured secret, in any encoding a
client could write it, shows up in one of them or in any diagnostics the
module produced.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Iterator
import json
import logging
from typing import Any
from urllib.parse import quote

from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator
from syrupy.assertion import SnapshotAssertion

from custom_components.printcam.const import DOMAIN
from custom_components.printcam.diagnostics import _scrub, _secrets
from custom_components.printcam.families.mjpeg import legacy_unique_id, normalize_url
from custom_components.printcam.redact import REDACTED
from custom_components.printcam.sources.base import Backoff
from printer_sim.mjpeg_server import MjpegPrinter

from .conftest import Viewer, setup_entry, until

USERNAME = "cam-user-Q7xz"
PASSWORD = "pw-S3cret-9xQk"
WRONG_PASSWORD = "pw-Wr0ng-4mZt"
ACCESS_CODE = "ac-31337-code"
API_KEY = "key-abcdef-12345"
AT_PASSWORD = "at@Pw-7x@Qk5"
"""A password with raw "@" in it: no part of it may show."""
SECRETS = (USERNAME, PASSWORD, WRONG_PASSWORD, ACCESS_CODE, API_KEY, AT_PASSWORD)
STREAM = "/api/camera_proxy_stream/camera.printer"
STILL = "/api/camera_proxy/camera.printer"

_LOG_TEXT: list[str] = []
"""Every log record (formatted, with tracebacks) of this module's tests."""
_DIAGNOSTICS: list[str] = []
"""Every diagnostics document this module's tests produced, as JSON."""


def _forms(secret: str) -> set[str]:
    """Return the ways a secret could be written out."""
    return {secret, quote(secret, safe=""), base64.b64encode(secret.encode()).decode()}


def _leaks(text: str) -> list[str]:
    found = [s for s in SECRETS for form in _forms(s) if form in text]
    found += [part for part in ("Pw-7x", "Qk5") if part in text]
    basic = base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()
    if basic in text:
        found.append("basic auth header")
    return found


class _Collector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        _LOG_TEXT.append(self.format(record))


@pytest.fixture(autouse=True, scope="module")
def _collect_logs() -> Iterator[None]:
    """Collect every log record, at DEBUG, for the whole module."""
    root = logging.getLogger()
    handler = _Collector()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield
    root.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture
async def secure_printer(socket_enabled: None) -> AsyncIterator[MjpegPrinter]:
    """A fake printer camera behind digest authentication."""
    fake = MjpegPrinter(username=USERNAME, password=PASSWORD, auth="digest")
    await fake.start()
    yield fake
    await fake.close()


def _entry(printer: MjpegPrinter, password: str = PASSWORD) -> MockConfigEntry:
    """An entry with credentials everywhere they can be configured."""
    creds = f"{USERNAME}:{password}@"
    url = printer.url.replace("://", f"://{creds}")
    return MockConfigEntry(
        domain=DOMAIN,
        title="Printer",
        data={
            "kind": "mjpeg",
            "url": url,
            "still_url": printer.still_url.replace("://", f"://{creds}"),
            "username": USERNAME,
            "password": password,
            "verify_ssl": True,
            # Not used by MJPEG cameras; other families store these.
            "access_code": ACCESS_CODE,
            "api_key": API_KEY,
        },
        options={"max_fps": 0, "stall_s": 10},
        unique_id=normalize_url(url),  # what the config flow stores
    )


_TIMED = frozenset({"frames", "last_frame_at"})
"""Values that depend on how many frames the startup probe's hold saw."""


def _masked(value: Any, port: int) -> Any:
    """Replace the printer's random port and timed values, so snapshots are stable."""
    if isinstance(value, str):
        return value.replace(f":{port}", ":<port>")
    if isinstance(value, dict):
        return {
            k: f"<{type(v).__name__}>" if k in _TIMED else _masked(v, port)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_masked(v, port) for v in value]
    return value


async def _setup(hass: HomeAssistant, entry: MockConfigEntry) -> MockConfigEntry:
    # Diagnostics registers HTTP views: before the first client freezes them.
    assert await async_setup_component(hass, "diagnostics", {})
    return await setup_entry(hass, entry)


async def _diagnostics(
    hass: HomeAssistant, hass_client: ClientSessionGenerator, entry: MockConfigEntry
) -> dict[str, Any]:
    result = await get_diagnostics_for_config_entry(hass, hass_client, entry)
    text = json.dumps(result)
    _DIAGNOSTICS.append(text)
    assert not _leaks(text), _leaks(text)
    return result


async def test_diagnostics_snapshot(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    secure_printer: MjpegPrinter,
    snapshot: SnapshotAssertion,
) -> None:
    entry = await _setup(hass, _entry(secure_printer))
    assert entry.state is ConfigEntryState.LOADED
    await until(lambda: secure_printer.open_connections == 0)
    result = await _diagnostics(hass, hass_client, entry)
    assert _masked(result, secure_printer.port) == snapshot
    data = result["entry"]["data"]
    for key in ("username", "password", "access_code", "api_key"):
        assert data[key] == REDACTED
    assert data["url"] == f"http://{REDACTED}@127.0.0.1:{secure_printer.port}/stream"
    assert data["still_url"].startswith(f"http://{REDACTED}@127.0.0.1:")
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_diagnostics_while_streaming_and_after_a_drop(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    secure_printer: MjpegPrinter,
) -> None:
    entry = await _setup(hass, _entry(secure_printer))
    entry.runtime_data.source.backoff = Backoff(initial=0.1, cap=0.3)
    client = await hass_client()
    # A still while idle goes through the still URL (credentials in it).
    response = await client.get(STILL)
    assert response.status == 200
    viewer = Viewer(await client.get(STREAM))
    await viewer.wait_frames(5)
    secure_printer.drop_all()
    await until(lambda: entry.runtime_data.stream.snapshot.reconnects == 1)
    await viewer.wait_frames(len(viewer.frames) + 3)

    result = await _diagnostics(hass, hass_client, entry)
    stream = result["stream"]
    assert stream["running"] is True
    assert stream["viewers"] == 1
    assert stream["snapshot"]["state"] == "streaming"
    assert stream["snapshot"]["fps"] > 0
    assert stream["snapshot"]["last_frame_at"] is not None
    assert stream["effective_options"]["stall_s"] == 10
    counters = result["counters"]
    assert counters["reconnects"] == 1
    assert counters["frames"] >= 8
    # Transitions only, never one per frame.
    assert counters["snapshots_pushed"] < counters["frames"]
    fanout = counters["fanout"]
    assert fanout["delivered"] >= 8
    assert fanout["dropped_by_slow_viewers"] == 0
    assert [v["skipped"] for v in fanout["viewers"]] == [0]
    assert counters["source"]["connects"] >= 2
    source = result["source"]
    assert source["family"] == "mjpeg"
    assert source["host"] == f"127.0.0.1:{secure_printer.port}"
    assert source["still_url"] is True
    assert source["connected"] is True
    assert source["last_error"].startswith("cannot_connect:")
    assert [e["state"] for e in source["recent_errors"]] == ["reconnecting"]
    await viewer.close()
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_wrong_password_is_auth_failed_without_leaking_it(
    hass: HomeAssistant, secure_printer: MjpegPrinter
) -> None:
    entry = await _setup(hass, _entry(secure_printer, password=WRONG_PASSWORD))
    assert entry.state is ConfigEntryState.SETUP_ERROR
    assert "refused" in (entry.reason or "")
    assert not _leaks(entry.reason or "")


async def test_credentials_only_in_urls_query_and_raw_at(
    hass: HomeAssistant, hass_client: ClientSessionGenerator, socket_enabled: None
) -> None:
    """Credentials in the query string and a password with raw "@" never show.

    No username/password fields: only the URLs carry them, and the entry was
    added before unique ids left query credentials out.
    """
    async with MjpegPrinter(username=USERNAME, password=PASSWORD, auth="query") as cam:
        query = f"?user={USERNAME}&pwd={PASSWORD}"
        url = cam.url + query
        entry = MockConfigEntry(
            domain=DOMAIN,
            title="Printer",
            data={
                "kind": "mjpeg",
                "url": url,
                "still_url": cam.still_url.replace("://", f"://me:{AT_PASSWORD}@")
                + query,
                "verify_ssl": True,
            },
            unique_id=legacy_unique_id(url),
        )
        entry = await _setup(hass, entry)
        assert entry.state is ConfigEntryState.LOADED
        client = await hass_client()
        # A still while idle goes through the still URL.
        assert (await client.get(STILL)).status == 200
        assert cam.requests[-1].path == f"/snapshot{query}"
        result = await _diagnostics(hass, hass_client, entry)
        redacted = f"?user={REDACTED}&pwd={REDACTED}"
        base = f"http://127.0.0.1:{cam.port}"
        assert result["entry"]["data"]["url"] == f"{base}/stream{redacted}"
        assert result["entry"]["data"]["still_url"] == (
            f"http://{REDACTED}@127.0.0.1:{cam.port}/snapshot{redacted}"
        )
        # Setup migrated the entry (1.1 -> 1.2): no credentials in its identity.
        assert result["entry"]["unique_id"] == f"{base}/stream"
        assert normalize_url(url) == f"{base}/stream"
        assert await hass.config_entries.async_unload(entry.entry_id)


def test_scrub_redacts_url_user_info_and_secret_strings() -> None:
    data = {
        "url": f"http://{USERNAME}:{PASSWORD}@h/s",
        "still_url": "http://[bad",  # not a URL yarl accepts
        "password": "abc",  # too short to search in text, redacted by key
        "api_key": API_KEY,
        "port": 80,
    }
    secrets = _secrets(data)
    assert secrets == sorted([USERNAME, PASSWORD, API_KEY], key=len, reverse=True)
    scrubbed = _scrub(
        {
            "error": f"boom at https://x:y@h/ with {API_KEY}",
            "query": f"http://h/?pwd=p{AT_PASSWORD}&user=u and http://a:{AT_PASSWORD}@h/",
            "list": [f"{PASSWORD}!", ("abc",)],
            "n": 3,
        },
        secrets,
    )
    assert scrubbed == {
        "error": f"boom at https://{REDACTED}@h/ with {REDACTED}",
        "query": f"http://h/?pwd={REDACTED}&user={REDACTED} and http://{REDACTED}@h/",
        "list": [f"{REDACTED}!", ["abc"]],
        "n": 3,
    }


async def test_no_secret_in_diagnostics_or_any_log_record(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    secure_printer: MjpegPrinter,
) -> None:
    """Runs last: checks every record and diagnostics of this module."""
    # Its own pass too, so it means something when run alone.
    entry = await _setup(hass, _entry(secure_printer))
    client = await hass_client()
    viewer = Viewer(await client.get(STREAM))
    await viewer.wait_frames(3)
    await _diagnostics(hass, hass_client, entry)
    await viewer.close()
    assert await hass.config_entries.async_unload(entry.entry_id)

    assert _DIAGNOSTICS
    # DEBUG logging really was collected, the integration's own included.
    assert len(_LOG_TEXT) > 100
    assert any(text.startswith("custom_components.printcam") for text in _LOG_TEXT)
    # The collector sees what a leak would look like.
    assert _leaks(f"GET http://{USERNAME}:{PASSWORD}@host/")
    for text in _DIAGNOSTICS:
        assert not _leaks(text), _leaks(text)
    leaking = [(text, _leaks(text)) for text in _LOG_TEXT if _leaks(text)]
    assert not leaking, leaking[:5]
