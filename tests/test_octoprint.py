"""OctoPrint printers through Home Assistant, against a real OctoPrint 1.11.

One real OctoPrint serves the module (`octoprint`, rate limiter off); each
test sets every webcam it relies on (`OctoPrintServer.set_webcams` replaces
them all) and points them at fake MJPEG cameras on 127.0.0.1. Small aiohttp
fakes stand in only for what the real server cannot do here: a server whose
Application Keys plugin is off, one that reveals its uuid in
``/api/settings`` (the real one's discovery plugin is disabled in tests, so
no endpoint shows it), another OctoPrint (another uuid), and OctoPrint
versions before 1.9 (no ``webcams`` list). A TCP forwarder makes the same
real OctoPrint answer at a second address.

Every test waits on the condition it asserts, with a bound: no sleep-and-hope.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
import contextlib
from ipaddress import ip_address
import json
import logging
import socket
from typing import Any
import uuid as uuid_module

from aiohttp import web
from homeassistant import config_entries
from homeassistant.config_entries import ConfigEntry, ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import device_registry as dr, entity_registry as er
from homeassistant.helpers.service_info.zeroconf import ZeroconfServiceInfo
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
)
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator
import yarl

from custom_components.printcam import config_flow as flow_module, startup
from custom_components.printcam.const import DOMAIN
from custom_components.printcam.families import FAMILIES, octoprint as octoprint_family
from custom_components.printcam.families.octoprint import (
    APP_NAME,
    WebcamPermission,
    parse_webcams,
)
from custom_components.printcam.families.webcams import Webcam, not_mjpeg_reason
from custom_components.printcam.transform import Orientation
from printer_sim.mjpeg_server import MjpegPrinter
from printer_sim.octoprint_server import ClassicWebcam, OctoPrintServer, OctoPrintWebcam

from .conftest import Viewer, setup_entry, until
from .real_servers_support import OCTOPRINT_SKIP, shared_server
from .test_transform import (
    corners_shown,
    expected_corners,
    octoprint_ui,
    quadrants,
    size_of,
)

type PrinterFactory = Callable[..., Awaitable[MjpegPrinter]]

octoprint_only = pytest.mark.skipif(
    OCTOPRINT_SKIP is not None, reason=str(OCTOPRINT_SKIP)
)
PICTURE = quadrants(64, 32)
FLOW_TIMEOUT = 30.0
"""Bound for a step that waits on OctoPrint (a key request is polled every 1 s)."""
ZEROCONF_TYPE = "_octoprint._tcp.local."
FAKE_KEY = "FAKE-OCTOPRINT-KEY-0123456789"


@pytest.fixture(scope="module")
def octoprint() -> Iterator[OctoPrintServer]:
    """One real OctoPrint for the module (it starts in 1-3 s)."""
    if OCTOPRINT_SKIP is not None:
        pytest.skip(OCTOPRINT_SKIP)
    yield from shared_server(OctoPrintServer(rate_limit=False))


@pytest.fixture(autouse=True)
def secrets(
    request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> Iterator[set[str]]:
    """Keys a test used (add them); none may appear in any log line.

    PrintCam's and the flows' debug logging is on in every test; the real
    OctoPrint's admin key is checked in every test using it.
    """
    caplog.set_level(logging.DEBUG, logger="custom_components.printcam")
    caplog.set_level(logging.DEBUG, logger="homeassistant.config_entries")
    caplog.set_level(logging.DEBUG, logger="homeassistant.data_entry_flow")
    found: set[str] = {FAKE_KEY}
    yield found
    if "octoprint" in request.fixturenames:
        found.add(request.getfixturevalue("octoprint").api_key)
    logged = caplog.text
    for secret in found:
        assert secret not in logged, "an API key was logged"


# --- helpers -----------------------------------------------------------------------


async def cameras(make: PrinterFactory, count: int) -> list[MjpegPrinter]:
    return [await make(frames=[PICTURE], fps=20.0) for _ in range(count)]


def form(port: int, api_key: str = "", **changes: Any) -> dict[str, Any]:
    """Return the add form for an OctoPrint on 127.0.0.1."""
    return {
        "host": "127.0.0.1",
        "port": port,
        "ssl": False,
        "path": "/",
        "api_key": api_key,
        **changes,
    }


def contract_data(port: int, api_key: str, path: str = "/") -> dict[str, Any]:
    return {
        "kind": "octoprint",
        "host": "127.0.0.1",
        "port": port,
        "ssl": False,
        "path": path,
        "api_key": api_key,
    }


async def start_add(hass: HomeAssistant) -> str:
    """Open the OctoPrint form of the add flow; return the flow id."""
    await async_setup_component(hass, "http", {})
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": config_entries.SOURCE_USER}
    )
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"next_step_id": "octoprint"}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "octoprint"
    return str(result["flow_id"])


async def add(hass: HomeAssistant, user_input: dict[str, Any]) -> dict[str, Any]:
    """Submit the OctoPrint form once (a key entered); wait until idle."""
    flow_id = await start_add(hass)
    result = await hass.config_entries.flow.async_configure(flow_id, user_input)
    await hass.async_block_till_done()
    return dict(result)


async def added(hass: HomeAssistant, user_input: dict[str, Any]) -> ConfigEntry:
    """Add an OctoPrint (a key entered); return its loaded entry."""
    result = await add(hass, user_input)
    assert result["type"] is FlowResultType.CREATE_ENTRY, result
    entry: ConfigEntry = result["result"]
    assert entry.state is ConfigEntryState.LOADED, entry.reason
    return entry


async def decide(
    hass: HomeAssistant,
    octoprint: OctoPrintServer,
    result: Any,
    *,
    approve: bool = True,
) -> dict[str, Any]:
    """Decide PrintCam's key request in OctoPrint; return the flow's next result.

    `result` is the progress step; the flow asks OctoPrint in a task, which
    ends at the first poll after the decision.
    """
    assert result["type"] is FlowResultType.SHOW_PROGRESS, result
    assert result["step_id"] == "authorize"
    assert result["progress_action"] == "authorize"
    request = await octoprint.wait_for_app_key_request(APP_NAME)
    assert request["app_id"] == APP_NAME
    await octoprint.approve_app_key_request(app=APP_NAME, approve=approve)
    async with asyncio.timeout(FLOW_TIMEOUT):
        await hass.async_block_till_done()
    result = await hass.config_entries.flow.async_configure(result["flow_id"])
    await hass.async_block_till_done()
    return dict(result)


def by_unique_id(hass: HomeAssistant, entry: ConfigEntry) -> dict[str, str]:
    """Return the entry's entities: unique id -> entity id."""
    registry = er.async_get(hass)
    return {
        e.unique_id: e.entity_id
        for e in er.async_entries_for_config_entry(registry, entry.entry_id)
    }


def entity_of(hass: HomeAssistant, entry: ConfigEntry, webcam: str, role: str) -> str:
    """Return the entity id of a webcam's entity (`role`: camera, stream_state...)."""
    return by_unique_id(hass, entry)[f"{entry.unique_id}_{webcam}_{role}"]


def webcam_keys(hass: HomeAssistant, entry: ConfigEntry) -> set[str]:
    """Return the webcams the entry has a camera entity for."""
    prefix = f"{entry.unique_id}_"
    return {
        unique_id.removeprefix(prefix).removesuffix("_camera")
        for unique_id in by_unique_id(hass, entry)
        if unique_id.endswith("_camera")
    }


def state_of(hass: HomeAssistant, entity_id: str) -> str | None:
    state = hass.states.get(entity_id)
    return None if state is None else state.state


def assert_no_secret_in_states(hass: HomeAssistant, *secrets: str) -> None:
    dumped = json.dumps([s.as_dict() for s in hass.states.async_all()], default=str)
    for secret in secrets:
        assert secret not in dumped


async def start_reauth(hass: HomeAssistant, entry: ConfigEntry) -> Any:
    return await hass.config_entries.flow.async_init(
        DOMAIN,
        context={"source": config_entries.SOURCE_REAUTH, "entry_id": entry.entry_id},
        data=entry.data,
    )


async def start_reconfigure(hass: HomeAssistant, entry: ConfigEntry) -> Any:
    return await hass.config_entries.flow.async_init(
        DOMAIN,
        context={
            "source": config_entries.SOURCE_RECONFIGURE,
            "entry_id": entry.entry_id,
        },
    )


async def unload(hass: HomeAssistant, entry: ConfigEntry) -> None:
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()


ANNOUNCED = {"path": "/", "version": "1.11.8", "api": "0.1"}
"""A TXT record's fields beside the uuid."""


async def retrying_entry(hass: HomeAssistant, port: int, uuid: str) -> MockConfigEntry:
    """Return a discovered OctoPrint's entry, its old address refusing (retrying)."""
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="OctoPrint octopi",
        data=contract_data(port, FAKE_KEY),
        unique_id=uuid,
    )
    await async_setup_component(hass, "http", {})
    entry.add_to_hass(hass)
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.SETUP_RETRY
    return entry


def zeroconf_info(port: int, properties: dict[str, str]) -> ZeroconfServiceInfo:
    """Return what Home Assistant's zeroconf hands over for an OctoPrint."""
    return ZeroconfServiceInfo(
        ip_address=ip_address("127.0.0.1"),
        ip_addresses=[ip_address("127.0.0.1")],
        port=port,
        hostname="octopi.local.",
        type=ZEROCONF_TYPE,
        name=f"OctoPrint instance on octopi.{ZEROCONF_TYPE}",
        properties=properties,
    )


async def announce(hass: HomeAssistant, info: ZeroconfServiceInfo) -> dict[str, Any]:
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": config_entries.SOURCE_ZEROCONF}, data=info
    )
    await hass.async_block_till_done()
    return dict(result)


def webcam_json(
    name: str, stream: str, *, display: str | None = None, **flags: bool
) -> dict[str, Any]:
    """Return a ``webcam.webcams[]`` item as OctoPrint 1.9+ lists it."""
    return {
        "name": name,
        "displayName": display or name,
        "provider": "fake",
        "flipH": flags.get("flipH", False),
        "flipV": flags.get("flipV", False),
        "rotate90": flags.get("rotate90", False),
        "compat": {"stream": stream, "snapshot": ""},
    }


class FakeOctoPrint:
    """A small OctoPrint API on 127.0.0.1: only what the real one cannot do here.

    ``GET {path}api/settings`` answers `settings` (plus
    ``plugins.discovery.upnpUuid`` when `uuid` is set) to `api_key` and 403
    to any other key. ``GET {path}plugin/discovery/discovery.xml`` (no key,
    as the discovery plugin serves it) tells `xml_uuid` when set.
    Application Keys as `appkeys` says: ``on`` (probe 204, request 201,
    polls 202: nobody decides), ``off`` (probe 404: the plugin disabled),
    ``broken_probe`` (probe 500), ``no_token`` (the request's answer has no
    ``app_token``), ``broken_poll`` (polls 500). Every other path is 404.
    The paths asked and the keys sent are kept in `paths` and `keys_seen`.
    """

    def __init__(
        self,
        settings: Any,
        *,
        uuid: str | None = None,
        xml_uuid: str | None = None,
        api_key: str = FAKE_KEY,
        path: str = "/",
        appkeys: str = "on",
        hang: bool = False,
    ) -> None:
        self.settings = settings
        self.hang = hang
        """Accept ``/api/settings`` and answer nothing until closed."""
        self._release = asyncio.Event()
        self.uuid = uuid
        self.xml_uuid = xml_uuid
        self.api_key = api_key
        self.path = path
        self.appkeys = appkeys
        self.port = 0
        self.keys_seen: list[str | None] = []
        self.paths: list[str] = []
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get(f"{self.path}api/settings", self._settings)
        app.router.add_get(
            f"{self.path}plugin/discovery/discovery.xml", self._discovery_xml
        )
        app.router.add_get(f"{self.path}plugin/appkeys/probe", self._probe)
        app.router.add_post(f"{self.path}plugin/appkeys/request", self._request)
        app.router.add_get(f"{self.path}plugin/appkeys/request/{{token}}", self._poll)
        app.middlewares.append(self._record)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def close(self) -> None:
        self._release.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @web.middleware
    async def _record(
        self,
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        self.paths.append(request.path)
        self.keys_seen.append(request.headers.get("X-Api-Key"))
        return await handler(request)

    async def _settings(self, request: web.Request) -> web.Response:
        if self.hang:
            await self._release.wait()
        if request.headers.get("X-Api-Key") != self.api_key:
            return web.json_response({"error": "forbidden"}, status=403)
        body = self.settings
        if self.uuid is not None:
            body = {**body, "plugins": {"discovery": {"upnpUuid": self.uuid}}}
        return web.json_response(body)

    async def _discovery_xml(self, request: web.Request) -> web.Response:
        if self.xml_uuid is None:
            return web.Response(status=404)
        return web.Response(
            text=(
                '<?xml version="1.0"?><root><device>'
                f"<UDN>uuid:{self.xml_uuid}</UDN></device></root>"
            ),
            content_type="text/xml",
        )

    async def _probe(self, request: web.Request) -> web.Response:
        status = {"off": 404, "broken_probe": 500}.get(self.appkeys, 204)
        return web.Response(status=status)

    async def _request(self, request: web.Request) -> web.Response:
        if self.appkeys == "no_token":
            return web.json_response({}, status=201)
        return web.json_response({"app_token": "T0KEN"}, status=201)

    async def _poll(self, request: web.Request) -> web.Response:
        if self.appkeys == "broken_poll":
            return web.Response(status=500)
        return web.json_response({"message": "Awaiting decision"}, status=202)


class Forwarder:
    """Another TCP port of 127.0.0.1 that reaches the same server.

    `port` 0 picks one; a given port is bound with SO_REUSEADDR (a server
    coming back where it was).
    """

    def __init__(self, target_port: int, port: int = 0) -> None:
        self.target_port = target_port
        self.port = port
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._handle, "127.0.0.1", self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def _handle(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        self._writers.add(writer)
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(
                "127.0.0.1", self.target_port
            )
        except OSError:
            writer.close()
            return
        self._writers.add(upstream_writer)
        await asyncio.gather(
            _pipe(reader, upstream_writer), _pipe(upstream_reader, writer)
        )

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in self._writers:
            writer.transport.abort()
        if self._tasks:
            async with asyncio.timeout(5):
                await asyncio.wait(self._tasks)
        if self._server is not None:
            async with asyncio.timeout(5):
                await self._server.wait_closed()
            self._server = None


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()


@pytest.fixture
async def servers(socket_enabled: None) -> AsyncIterator[list[Any]]:
    """Fakes and forwarders a test starts (append them); closed afterwards."""
    started: list[Any] = []
    yield started
    for server in reversed(started):
        await server.close()


async def fake_octoprint(
    servers: list[Any], *args: Any, **kwargs: Any
) -> FakeOctoPrint:
    fake = FakeOctoPrint(*args, **kwargs)
    await fake.start()
    servers.append(fake)
    return fake


async def forwarder(servers: list[Any], target: int, port: int = 0) -> Forwarder:
    proxy = Forwarder(target, port)
    await proxy.start()
    servers.append(proxy)
    return proxy


@contextlib.contextmanager
def refused_port() -> Iterator[int]:
    """Yield a port of 127.0.0.1 that refuses connections (bound, not listening)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


# --- Application Keys ------------------------------------------------------------


@octoprint_only
async def test_empty_key_asks_octoprint_and_stores_the_granted_key(
    hass: HomeAssistant,
    octoprint: OctoPrintServer,
    make_mjpeg_printer: PrinterFactory,
    secrets: set[str],
) -> None:
    (cam,) = await cameras(make_mjpeg_printer, 1)
    await octoprint.set_webcams(ClassicWebcam(stream=cam.url))
    secrets.add(octoprint.api_key)
    flow_id = await start_add(hass)
    result = await hass.config_entries.flow.async_configure(
        flow_id, form(octoprint.port)
    )
    assert result["description_placeholders"] == {"host": "127.0.0.1"}

    result = await decide(hass, octoprint, result)

    assert result["type"] is FlowResultType.CREATE_ENTRY, result
    granted = result["data"]["api_key"]
    secrets.add(granted)
    assert granted
    assert granted != octoprint.api_key
    assert result["data"] == contract_data(octoprint.port, granted)
    # The key is OctoPrint's own, for PrintCam's app, and works.
    await octoprint.request("GET", "/api/settings", api_key=granted, expect=200)
    _, keys = await octoprint.request("GET", "/api/plugin/appkeys", expect=200)
    assert APP_NAME in {key["app_id"] for key in keys["keys"]}
    entry = result["result"]
    assert entry.state is ConfigEntryState.LOADED
    assert webcam_keys(hass, entry) == {"classic"}
    assert not await octoprint.pending_app_key_requests()
    await unload(hass, entry)


@octoprint_only
async def test_denied_key_request_returns_to_the_form(
    hass: HomeAssistant, octoprint: OctoPrintServer, socket_enabled: None
) -> None:
    flow_id = await start_add(hass)
    result = await hass.config_entries.flow.async_configure(
        flow_id, form(octoprint.port)
    )
    result = await decide(hass, octoprint, result, approve=False)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "octoprint"
    assert result["errors"] == {"base": "authorization_denied"}
    assert not hass.config_entries.async_entries(DOMAIN)
    assert not await octoprint.pending_app_key_requests()


@octoprint_only
async def test_closing_the_flow_stops_asking(
    hass: HomeAssistant, octoprint: OctoPrintServer, socket_enabled: None
) -> None:
    """No more polls: OctoPrint forgets the request (5 s without a poll)."""
    flow_id = await start_add(hass)
    result = await hass.config_entries.flow.async_configure(
        flow_id, form(octoprint.port)
    )
    assert result["type"] is FlowResultType.SHOW_PROGRESS
    await octoprint.wait_for_app_key_request(APP_NAME)
    hass.config_entries.flow.async_abort(flow_id)
    await hass.async_block_till_done()  # the request's task was cancelled
    async with asyncio.timeout(FLOW_TIMEOUT):
        while await octoprint.pending_app_key_requests():
            await asyncio.sleep(0.2)


@octoprint_only
async def test_denied_key_request_keeps_what_was_entered(
    hass: HomeAssistant, octoprint: OctoPrintServer, socket_enabled: None
) -> None:
    flow_id = await start_add(hass)
    result = await hass.config_entries.flow.async_configure(
        flow_id, form(octoprint.port)
    )
    result = await decide(hass, octoprint, result, approve=False)
    assert result["errors"] == {"base": "authorization_denied"}
    suggested = {
        str(key): (key.description or {}).get("suggested_value")
        for key in result["data_schema"].schema
    }
    assert suggested["host"] == "127.0.0.1"
    assert suggested["port"] == octoprint.port


@pytest.mark.parametrize(
    ("appkeys", "error", "asked"),
    [
        # The Application Keys plugin off: its probe is not there.
        ("off", "app_keys_unsupported", 1),
        ("broken_probe", "cannot_connect", 1),
        ("no_token", "protocol_error", 2),
        ("broken_poll", "cannot_connect", 3),
    ],
)
async def test_key_request_failures_return_to_the_form(
    hass: HomeAssistant, servers: list[Any], appkeys: str, error: str, asked: int
) -> None:
    fake = await fake_octoprint(servers, {"webcam": {}}, appkeys=appkeys)
    flow_id = await start_add(hass)
    result = await hass.config_entries.flow.async_configure(flow_id, form(fake.port))
    assert result["type"] is FlowResultType.SHOW_PROGRESS
    async with asyncio.timeout(FLOW_TIMEOUT):
        await hass.async_block_till_done()
    result = await hass.config_entries.flow.async_configure(flow_id)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "octoprint"
    assert result["errors"] == {"base": error}
    assert len(fake.paths) == asked
    assert fake.keys_seen == [None] * asked  # asking for a key sends none


async def test_nobody_deciding_in_time_is_a_denial(
    hass: HomeAssistant,
    servers: list[Any],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """OctoPrint keeps answering "awaiting decision" until PrintCam gives up."""
    monkeypatch.setattr(octoprint_family, "AUTHORIZE_TIMEOUT", 0.5)
    monkeypatch.setattr(octoprint_family, "POLL_INTERVAL", 0.05)
    fake = await fake_octoprint(servers, {"webcam": {}})
    flow_id = await start_add(hass)
    result = await hass.config_entries.flow.async_configure(flow_id, form(fake.port))
    assert result["type"] is FlowResultType.SHOW_PROGRESS
    async with asyncio.timeout(FLOW_TIMEOUT):
        await hass.async_block_till_done()
    result = await hass.config_entries.flow.async_configure(flow_id)
    assert result["errors"] == {"base": "authorization_denied"}
    assert "/plugin/appkeys/request/T0KEN" in fake.paths
    assert "Traceback" not in caplog.text


async def test_a_server_that_never_answers_is_a_timeout(
    hass: HomeAssistant,
    servers: list[Any],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The check's bound (the flow's) ends before the request's own."""
    monkeypatch.setattr(flow_module, "VALIDATE_TIMEOUT", 0.5)
    fake = await fake_octoprint(servers, {"webcam": {}}, hang=True)
    result = await add(hass, form(fake.port, FAKE_KEY))
    assert result["errors"] == {"base": "timeout"}
    assert "Traceback" not in caplog.text


async def test_form_checks_the_address_before_connecting(hass: HomeAssistant) -> None:
    flow_id = await start_add(hass)
    result = await hass.config_entries.flow.async_configure(
        flow_id, form(5000, "KEY", host="http://octopi.local/")
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"host": "invalid_host"}


async def test_settings_that_are_not_an_object(
    hass: HomeAssistant, servers: list[Any]
) -> None:
    fake = await fake_octoprint(servers, ["not", "settings"])
    result = await add(hass, form(fake.port, FAKE_KEY))
    assert result["errors"] == {"base": "protocol_error"}
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="OctoPrint",
        data=contract_data(fake.port, FAKE_KEY),
        unique_id="octoprint-odd",
    )
    entry.add_to_hass(hass)
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.SETUP_RETRY


@pytest.mark.parametrize(
    "data",
    [
        {"api_key": ""},
        {"host": ""},
        {"port": "80"},
        {"port": 0},
    ],
)
async def test_unusable_entry_data_is_a_setup_error(
    hass: HomeAssistant, data: dict[str, Any]
) -> None:
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="OctoPrint",
        data={**contract_data(5000, FAKE_KEY), **data},
        unique_id="octoprint-broken",
    )
    entry.add_to_hass(hass)
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.SETUP_ERROR
    assert not list(entry.async_get_active_flows(hass, {config_entries.SOURCE_REAUTH}))


# --- keys refused ------------------------------------------------------------------


@octoprint_only
async def test_wrong_key_is_invalid_auth(
    hass: HomeAssistant, octoprint: OctoPrintServer, socket_enabled: None
) -> None:
    result = await add(hass, form(octoprint.port, "NOT-A-KEY-OF-THIS-OCTOPRINT"))
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "invalid_auth"}
    assert not hass.config_entries.async_entries(DOMAIN)


@octoprint_only
async def test_user_without_webcam_permission(
    hass: HomeAssistant, octoprint: OctoPrintServer, socket_enabled: None
) -> None:
    """A real user whose group lacks WEBCAM: OctoPrint answers ``"webcam": {}``."""
    suffix = uuid_module.uuid4().hex[:8]
    await octoprint.request(
        "POST",
        "/api/access/groups",
        {
            "key": f"nocam{suffix}",
            "name": f"No webcam {suffix}",
            "permissions": ["STATUS", "SETTINGS_READ"],
            "subgroups": [],
            "default": False,
        },
        expect=200,
    )
    await octoprint.request(
        "POST",
        "/api/access/users",
        {
            "name": f"viewer{suffix}",
            "password": "viewer-password",
            "active": True,
            "groups": [f"nocam{suffix}"],
        },
        expect=200,
    )
    _, body = await octoprint.request(
        "POST", f"/api/access/users/viewer{suffix}/apikey", expect=200
    )
    key = body["apikey"]
    assert (await octoprint.settings(api_key=key))["webcam"] == {}

    result = await add(hass, form(octoprint.port, key))
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "webcam_permission"}


@octoprint_only
async def test_no_mjpeg_webcam_is_a_form_error(
    hass: HomeAssistant, octoprint: OctoPrintServer, socket_enabled: None
) -> None:
    await octoprint.set_webcams(
        None,
        [
            OctoPrintWebcam(name="room", stream="webrtc://127.0.0.1/room"),
            OctoPrintWebcam(name="hls", stream="http://127.0.0.1:9/live/index.m3u8"),
        ],
    )
    result = await add(hass, form(octoprint.port, octoprint.api_key))
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "no_mjpeg_webcam"}


@octoprint_only
async def test_revoked_key_starts_reauth_and_a_new_key_reloads(
    hass: HomeAssistant,
    octoprint: OctoPrintServer,
    make_mjpeg_printer: PrinterFactory,
    secrets: set[str],
) -> None:
    (cam,) = await cameras(make_mjpeg_printer, 1)
    await octoprint.set_webcams(ClassicWebcam(stream=cam.url))
    app = f"revoke-test-{uuid_module.uuid4().hex[:8]}"
    old_key = await octoprint.generate_app_key(app)
    secrets.update({old_key, octoprint.api_key})
    entry = await added(hass, form(octoprint.port, old_key))

    # The key is revoked in OctoPrint: the next setup refuses it.
    await octoprint.request(
        "POST", "/api/plugin/appkeys", {"command": "revoke", "app": app}, expect=204
    )
    await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.SETUP_ERROR
    flows = entry.async_get_active_flows(hass, {config_entries.SOURCE_REAUTH})
    (flow,) = list(flows)
    assert flow["step_id"] == "reauth_octoprint"

    # A wrong key is refused in the form; an empty one asks OctoPrint.
    result = await hass.config_entries.flow.async_configure(
        flow["flow_id"], {"api_key": old_key}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "invalid_auth"}
    result = await hass.config_entries.flow.async_configure(
        flow["flow_id"], {"api_key": ""}
    )
    result = await decide(hass, octoprint, result)
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reauth_successful"
    new_key = entry.data["api_key"]
    secrets.add(new_key)
    assert new_key not in (old_key, octoprint.api_key)
    assert entry.data == contract_data(octoprint.port, new_key)
    await until(lambda: entry.state is ConfigEntryState.LOADED, FLOW_TIMEOUT)
    await unload(hass, entry)


@octoprint_only
async def test_reauth_with_a_typed_key(
    hass: HomeAssistant,
    octoprint: OctoPrintServer,
    make_mjpeg_printer: PrinterFactory,
) -> None:
    (cam,) = await cameras(make_mjpeg_printer, 1)
    await octoprint.set_webcams(ClassicWebcam(stream=cam.url))
    entry = await added(hass, form(octoprint.port, octoprint.api_key))
    result = await start_reauth(hass, entry)
    assert result["step_id"] == "reauth_octoprint"
    key = await octoprint.generate_app_key(f"typed-{uuid_module.uuid4().hex[:8]}")
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"api_key": f"  {key} "}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reauth_successful"
    assert entry.data["api_key"] == key
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    await unload(hass, entry)


@octoprint_only
async def test_server_down_at_setup_retries_until_it_is_back(
    hass: HomeAssistant, octoprint: OctoPrintServer, servers: list[Any]
) -> None:
    await octoprint.set_webcams(
        None, [OctoPrintWebcam(name="nozzle", stream="http://127.0.0.1:9/stream")]
    )
    with refused_port() as port:
        entry = MockConfigEntry(
            domain=DOMAIN,
            title="OctoPrint",
            data=contract_data(port, octoprint.api_key),
            unique_id="octoprint-down",
        )
        await async_setup_component(hass, "http", {})
        entry.add_to_hass(hass)
        await hass.config_entries.async_setup(entry.entry_id)
        await hass.async_block_till_done()
        assert entry.state is ConfigEntryState.SETUP_RETRY
        assert octoprint.api_key not in (entry.reason or "")
    # OctoPrint answers at that address again: the next retry sets it up.
    await forwarder(servers, octoprint.port, port)
    async_fire_time_changed(hass, dt_util.utcnow() + startup.WEBCAM_RECHECK_INTERVAL)
    await until(lambda: entry.state is ConfigEntryState.LOADED, FLOW_TIMEOUT)
    await hass.async_block_till_done()
    assert webcam_keys(hass, entry) == {"nozzle"}
    await unload(hass, entry)


# --- cameras -----------------------------------------------------------------------


@octoprint_only
async def test_each_mjpeg_webcam_is_a_camera_with_one_upstream(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    octoprint: OctoPrintServer,
    make_mjpeg_printer: PrinterFactory,
    secrets: set[str],
) -> None:
    nozzle_cam, bed_cam = await cameras(make_mjpeg_printer, 2)
    await octoprint.set_webcams(
        None,
        [
            OctoPrintWebcam(
                name="nozzle",
                display_name="Nozzle",
                stream=nozzle_cam.url,
                snapshot=nozzle_cam.still_url,
                rotate90=True,
            ),
            OctoPrintWebcam(
                name="bed", display_name="Bed", stream=bed_cam.url, flip_v=True
            ),
            OctoPrintWebcam(name="room", stream="webrtc://127.0.0.1/room"),
            OctoPrintWebcam(name="hls", stream="http://127.0.0.1:9/live/index.m3u8"),
            OctoPrintWebcam(name="plain", stream=bed_cam.url, compat=False),
        ],
    )
    secrets.add(octoprint.api_key)
    result = await add(hass, form(octoprint.port, octoprint.api_key))
    assert result["type"] is FlowResultType.CREATE_ENTRY, result
    assert result["data"] == contract_data(octoprint.port, octoprint.api_key)
    placeholders = result["description_placeholders"]
    assert placeholders["cameras"] == "Nozzle, Bed"
    skipped = placeholders["skipped"]
    assert "Classic Webcam: no stream url" in skipped
    assert "room: not mjpeg (webrtc stream)" in skipped
    assert "hls: not mjpeg (HLS stream)" in skipped
    assert "plain: no stream url" in skipped
    entry = result["result"]

    # One device, the webcams' entities on it, unique ids from their names.
    assert webcam_keys(hass, entry) == {"nozzle", "bed"}
    devices = dr.async_entries_for_config_entry(dr.async_get(hass), entry.entry_id)
    assert len(devices) == 1
    assert devices[0].manufacturer == "OctoPrint"
    registry = er.async_get(hass)
    assert {
        e.device_id for e in er.async_entries_for_config_entry(registry, entry.entry_id)
    } == {devices[0].id}
    nozzle = entity_of(hass, entry, "nozzle", "camera")
    bed = entity_of(hass, entry, "bed", "camera")
    for webcam in ("nozzle", "bed"):
        assert state_of(hass, entity_of(hass, entry, webcam, "stream_state")) == "idle"
    # Not probed at setup: the API answered; nothing connected yet.
    assert nozzle_cam.total_connections == bed_cam.total_connections == 0

    # Two viewers of each camera: one upstream per webcam.
    client = await hass_client()
    viewers: dict[str, list[Viewer]] = {nozzle: [], bed: []}
    for camera_id in (nozzle, bed, nozzle, bed):
        response = await client.get(f"/api/camera_proxy_stream/{camera_id}")
        assert response.status == 200
        viewers[camera_id].append(Viewer(response))
    for viewer in [*viewers[nozzle], *viewers[bed]]:
        await viewer.wait_frames(3)
    assert nozzle_cam.total_connections == bed_cam.total_connections == 1
    await until(
        lambda: state_of(hass, entity_of(hass, entry, "nozzle", "viewers")) == "2"
    )
    # Turned as OctoPrint shows them: rotate90 is counter-clockwise.
    nozzle_frame = viewers[nozzle][0].frames[-1]
    assert size_of(nozzle_frame) == (32, 64)
    assert corners_shown(nozzle_frame)["TL"] == "TR"
    bed_frame = viewers[bed][0].frames[-1]
    assert size_of(bed_frame) == (64, 32)
    assert corners_shown(bed_frame)["TL"] == "BL"

    # Stills come from the running streams: no new connection, no snapshot.
    for camera_id in (nozzle, bed, nozzle):
        response = await client.get(f"/api/camera_proxy/{camera_id}")
        assert response.status == 200
        assert response.content_type == "image/jpeg"
        still = await response.read()
        assert size_of(still) == size_of(viewers[camera_id][0].frames[-1])
    assert nozzle_cam.total_connections == bed_cam.total_connections == 1
    assert nozzle_cam.still_requests == 0
    assert_no_secret_in_states(hass, octoprint.api_key)

    for viewer in [*viewers[nozzle], *viewers[bed]]:
        await viewer.close()
    await unload(hass, entry)
    await until(lambda: nozzle_cam.open_connections == bed_cam.open_connections == 0)


@octoprint_only
async def test_an_idle_still_comes_from_the_snapshot_url_turned(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    octoprint: OctoPrintServer,
    make_mjpeg_printer: PrinterFactory,
) -> None:
    (cam,) = await cameras(make_mjpeg_printer, 1)
    await octoprint.set_webcams(
        None,
        [
            OctoPrintWebcam(
                name="nozzle",
                stream=cam.url,
                snapshot=cam.still_url,
                flip_h=True,
                rotate90=True,
            )
        ],
    )
    entry = await added(hass, form(octoprint.port, octoprint.api_key))
    client = await hass_client()
    response = await client.get(
        f"/api/camera_proxy/{entity_of(hass, entry, 'nozzle', 'camera')}"
    )
    assert response.status == 200
    still = await response.read()
    # Fetched from the snapshot URL (no stream started), turned like the stream.
    assert cam.still_requests == 1
    assert cam.stream_requests == 0
    assert size_of(still) == (32, 64)
    assert corners_shown(still) == expected_corners(octoprint_ui(True, False, True))
    await unload(hass, entry)


@octoprint_only
async def test_octoprint_lists_a_webcam_name_once(
    hass: HomeAssistant, octoprint: OctoPrintServer, make_mjpeg_printer: PrinterFactory
) -> None:
    """OctoPrint 1.11 drops a webcam whose name an earlier one has (any provider)."""
    first, second = await cameras(make_mjpeg_printer, 2)
    listed = await octoprint.set_webcams(
        ClassicWebcam(stream=first.url),
        [
            OctoPrintWebcam(name="classic", display_name="Again", stream=second.url),
            OctoPrintWebcam(name="bed", display_name="Bed", stream=first.url),
            OctoPrintWebcam(name="bed", display_name="Bed 2", stream=second.url),
        ],
    )
    assert [w["displayName"] for w in listed["webcams"]] == ["Classic Webcam", "Bed"]
    entry = await added(hass, form(octoprint.port, octoprint.api_key))
    assert webcam_keys(hass, entry) == {"classic", "bed"}
    # Both from the first camera: the later webcams of those names are gone.
    hosts = [camera.source.host for camera in entry.runtime_data.cameras]
    assert hosts == [f"127.0.0.1:{first.port}"] * 2
    await unload(hass, entry)


@octoprint_only
async def test_a_webcam_down_shows_unreachable_while_the_other_streams(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    octoprint: OctoPrintServer,
    make_mjpeg_printer: PrinterFactory,
) -> None:
    nozzle_cam, bed_cam = await cameras(make_mjpeg_printer, 2)
    await octoprint.set_webcams(
        None,
        [
            OctoPrintWebcam(name="nozzle", stream=nozzle_cam.url),
            OctoPrintWebcam(name="bed", stream=bed_cam.url),
        ],
    )
    entry = await added(hass, form(octoprint.port, octoprint.api_key))
    await bed_cam.close()  # the bed's camera is gone; OctoPrint still lists it
    client = await hass_client()
    viewers = [
        Viewer(
            await client.get(
                f"/api/camera_proxy_stream/{entity_of(hass, entry, key, 'camera')}"
            )
        )
        for key in ("nozzle", "bed")
    ]
    await viewers[0].wait_frames(3)
    bed_state = entity_of(hass, entry, "bed", "stream_state")
    await until(lambda: state_of(hass, bed_state) == "unreachable", FLOW_TIMEOUT)
    nozzle_state = entity_of(hass, entry, "nozzle", "stream_state")
    await until(lambda: state_of(hass, nozzle_state) == "streaming")
    await viewers[0].wait_frames(len(viewers[0].frames) + 3)
    assert entry.state is ConfigEntryState.LOADED
    for viewer in viewers:
        await viewer.close()
    await unload(hass, entry)


@octoprint_only
async def test_webcams_removed_and_added_on_the_server_are_followed(
    hass: HomeAssistant,
    octoprint: OctoPrintServer,
    make_mjpeg_printer: PrinterFactory,
) -> None:
    nozzle_cam, bed_cam = await cameras(make_mjpeg_printer, 2)
    nozzle = OctoPrintWebcam(
        name="nozzle", display_name="Nozzle", stream=nozzle_cam.url
    )
    bed = OctoPrintWebcam(name="bed", display_name="Bed", stream=bed_cam.url)
    await octoprint.set_webcams(None, [nozzle, bed])
    entry = await added(hass, form(octoprint.port, octoprint.api_key))
    before = by_unique_id(hass, entry)
    assert webcam_keys(hass, entry) == {"nozzle", "bed"}
    nozzle_entities = {u: e for u, e in before.items() if "_nozzle_" in u}
    assert len(nozzle_entities) >= 8  # camera, sensors, switch, button, event

    # Unchanged: a reload keeps every entity id and unique id.
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    assert by_unique_id(hass, entry) == before

    # The bed webcam removed in OctoPrint: gone after a reload.
    await octoprint.set_webcams(None, [nozzle])
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    after = by_unique_id(hass, entry)
    assert after == nozzle_entities
    registry = er.async_get(hass)
    for unique_id, entity_id in before.items():
        if "_bed_" in unique_id:
            assert registry.async_get(entity_id) is None
            assert hass.states.get(entity_id) is None

    # A chamber webcam added: the hourly check notices and reloads.
    await octoprint.set_webcams(
        None,
        [nozzle, OctoPrintWebcam(name="chamber", stream=bed_cam.url)],
    )
    cameras_before = entry.runtime_data.cameras
    async_fire_time_changed(hass, dt_util.utcnow() + startup.WEBCAM_RECHECK_INTERVAL)
    await until(lambda: "chamber" in webcam_keys(hass, entry), FLOW_TIMEOUT)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    assert entry.runtime_data.cameras is not cameras_before
    assert webcam_keys(hass, entry) == {"nozzle", "chamber"}
    assert {
        u: e for u, e in by_unique_id(hass, entry).items() if "_nozzle_" in u
    } == nozzle_entities

    # Nothing changed since: the next check does not reload.
    cameras_now = entry.runtime_data.cameras
    async_fire_time_changed(
        hass, dt_util.utcnow() + startup.WEBCAM_RECHECK_INTERVAL * 2
    )
    await hass.async_block_till_done()
    assert entry.runtime_data.cameras is cameras_now
    await unload(hass, entry)


@octoprint_only
async def test_diagnostics_list_webcams_and_never_the_key(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    octoprint: OctoPrintServer,
    make_mjpeg_printer: PrinterFactory,
    secrets: set[str],
) -> None:
    nozzle_cam, bed_cam = await cameras(make_mjpeg_printer, 2)
    await octoprint.set_webcams(
        ClassicWebcam(stream=nozzle_cam.url, flip_h=True),
        [
            OctoPrintWebcam(name="bed", display_name="Bed", stream=bed_cam.url),
            OctoPrintWebcam(name="room", stream="webrtc://127.0.0.1/room"),
            OctoPrintWebcam(name="hls", stream="http://127.0.0.1:9/index.m3u8"),
            OctoPrintWebcam(name="plain", compat=False),
        ],
    )
    secrets.add(octoprint.api_key)
    entry = await added(hass, form(octoprint.port, octoprint.api_key))
    await async_setup_component(hass, "diagnostics", {})
    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, entry)

    assert [(w["key"], w["name"]) for w in diagnostics["webcams"]] == [
        ("classic", "Classic Webcam"),
        ("bed", "Bed"),
    ]
    assert diagnostics["webcams"][0]["source"]["transform"]
    assert diagnostics["skipped_webcams"] == [
        {"name": "room", "reason": "not_mjpeg", "detail": "webrtc stream"},
        {"name": "hls", "reason": "not_mjpeg", "detail": "HLS stream"},
        {"name": "plain", "reason": "no_stream_url", "detail": ""},
    ]
    assert diagnostics["entry"]["data"]["api_key"] == "**REDACTED**"
    assert diagnostics["entry"]["data"]["port"] == octoprint.port
    assert octoprint.api_key not in json.dumps(diagnostics)
    assert_no_secret_in_states(hass, octoprint.api_key)
    await unload(hass, entry)


# --- zeroconf ----------------------------------------------------------------------


@octoprint_only
async def test_zeroconf_asks_only_the_key_and_keeps_the_printer_where_it_is(
    hass: HomeAssistant,
    octoprint: OctoPrintServer,
    make_mjpeg_printer: PrinterFactory,
    servers: list[Any],
    secrets: set[str],
) -> None:
    (cam,) = await cameras(make_mjpeg_printer, 1)
    await octoprint.set_webcams(ClassicWebcam(stream=cam.url))
    secrets.add(octoprint.api_key)
    await async_setup_component(hass, "http", {})
    properties = await octoprint.zeroconf_properties()
    assert properties["uuid"] == octoprint.uuid

    result = await announce(hass, zeroconf_info(octoprint.port, properties))
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "discovery_confirm_octoprint"
    assert [str(key) for key in result["data_schema"].schema] == ["api_key"]
    assert result["description_placeholders"] == {
        "name": "OctoPrint octopi",
        "host": f"127.0.0.1:{octoprint.port}",
    }
    # An empty key: Application Keys.
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    result = await decide(hass, octoprint, result)
    assert result["type"] is FlowResultType.CREATE_ENTRY, result
    entry = result["result"]
    secrets.add(entry.data["api_key"])
    assert entry.unique_id == octoprint.uuid
    assert entry.title == "OctoPrint octopi"
    assert entry.data == contract_data(octoprint.port, entry.data["api_key"])
    assert entry.state is ConfigEntryState.LOADED
    assert webcam_keys(hass, entry) == {"classic"}
    assert entity_of(hass, entry, "classic", "camera")
    data = dict(entry.data)

    # Announced again where it is: nothing to do.
    result = await announce(hass, zeroconf_info(octoprint.port, properties))
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    # Announced at another address, which cannot prove it is this OctoPrint
    # (it is, through a forwarder, but tells no uuid): the entry stays.
    other = await forwarder(servers, octoprint.port)
    result = await announce(hass, zeroconf_info(other.port, properties))
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert dict(entry.data) == data
    assert entry.state is ConfigEntryState.LOADED
    await unload(hass, entry)


@octoprint_only
async def test_zeroconf_with_a_typed_key(
    hass: HomeAssistant, octoprint: OctoPrintServer, make_mjpeg_printer: PrinterFactory
) -> None:
    (cam,) = await cameras(make_mjpeg_printer, 1)
    await octoprint.set_webcams(ClassicWebcam(stream=cam.url))
    await async_setup_component(hass, "http", {})
    info = zeroconf_info(octoprint.port, await octoprint.zeroconf_properties())
    result = await announce(hass, info)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"api_key": "NOT-THE-KEY"}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "invalid_auth"}
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"api_key": octoprint.api_key}
    )
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.CREATE_ENTRY, result
    entry = result["result"]
    assert entry.unique_id == octoprint.uuid
    assert entry.data == contract_data(octoprint.port, octoprint.api_key)
    # Reauth of a printer known by its announced uuid, at a server that does
    # not tell it: the key it accepts is enough.
    result = await start_reauth(hass, entry)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"api_key": octoprint.api_key}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reauth_successful"
    await hass.async_block_till_done()
    assert entry.unique_id == octoprint.uuid
    assert entry.state is ConfigEntryState.LOADED
    await unload(hass, entry)


async def test_zeroconf_moves_a_printer_only_to_a_server_proving_its_uuid(
    hass: HomeAssistant,
    make_mjpeg_printer: PrinterFactory,
    servers: list[Any],
) -> None:
    (cam,) = await cameras(make_mjpeg_printer, 1)
    server_uuid = str(uuid_module.uuid4())
    settings = {"webcam": {"webcams": [webcam_json("nozzle", cam.url)]}}
    with refused_port() as old_port:
        entry = await retrying_entry(hass, old_port, server_uuid)

        async def announced_at(port: int) -> dict[str, Any]:
            return await announce(
                hass, zeroconf_info(port, {**ANNOUNCED, "uuid": server_uuid})
            )

        # Nothing answers at the announced address.
        with refused_port() as nowhere:
            result = await announced_at(nowhere)
        assert result["reason"] == "already_configured"
        # Another OctoPrint, whose discovery.xml tells another uuid: it is
        # never sent the key.
        other = await fake_octoprint(
            servers, settings, xml_uuid=str(uuid_module.uuid4())
        )
        result = await announced_at(other.port)
        assert result["reason"] == "already_configured"
        assert other.paths == ["/plugin/discovery/discovery.xml"]
        assert other.keys_seen == [None]
        # Another one telling its uuid only in /api/settings.
        impostor = await fake_octoprint(
            servers, settings, uuid=str(uuid_module.uuid4())
        )
        result = await announced_at(impostor.port)
        assert result["reason"] == "already_configured"
        # Ones that tell no uuid at all: not proven either.
        silent = await fake_octoprint(servers, settings)
        result = await announced_at(silent.port)
        assert result["reason"] == "already_configured"
        odd = await fake_octoprint(servers, ["not", "settings"])
        result = await announced_at(odd.port)
        assert result["reason"] == "already_configured"
        refusing = await fake_octoprint(servers, settings, api_key="ANOTHER-KEY")
        result = await announced_at(refusing.port)
        assert result["reason"] == "already_configured"
        assert entry.data == contract_data(old_port, FAKE_KEY)
        assert entry.state is ConfigEntryState.SETUP_RETRY

        # The printer itself at its new address (its discovery plugin
        # serving the uuid): the move is offered, not made; the key goes
        # there only once the user confirmed it.
        moved = await fake_octoprint(
            servers, settings, uuid=server_uuid.upper(), xml_uuid=server_uuid
        )
        result = await announced_at(moved.port)
        assert result["type"] is FlowResultType.FORM
        assert result["step_id"] == "move_confirm"
        assert result["description_placeholders"] == {
            "name": entry.title,
            "old": f"127.0.0.1:{old_port}",
            "new": f"127.0.0.1:{moved.port}",
        }
        assert moved.keys_seen == [None]
        assert entry.data == contract_data(old_port, FAKE_KEY)
        result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
        assert result["type"] is FlowResultType.ABORT
        assert result["reason"] == "moved"
    assert entry.data == contract_data(moved.port, FAKE_KEY)
    assert entry.unique_id == server_uuid
    await until(lambda: entry.state is ConfigEntryState.LOADED, FLOW_TIMEOUT)
    await hass.async_block_till_done()
    assert webcam_keys(hass, entry) == {"nozzle"}
    await unload(hass, entry)


async def test_zeroconf_move_proven_without_the_key(
    hass: HomeAssistant, servers: list[Any]
) -> None:
    """discovery.xml proves the uuid: the key is not sent before the move.

    Confirmed, the move is checked with the key: a server refusing it is
    not moved to (the form says why).
    """
    server_uuid = str(uuid_module.uuid4())
    moved = await fake_octoprint(
        servers, {"webcam": {}}, xml_uuid=server_uuid, api_key="ANOTHER-KEY"
    )
    with refused_port() as old_port:
        entry = await retrying_entry(hass, old_port, server_uuid)
        result = await announce(
            hass, zeroconf_info(moved.port, {**ANNOUNCED, "uuid": server_uuid})
        )
        assert result["step_id"] == "move_confirm"
        assert moved.paths == ["/plugin/discovery/discovery.xml"]
        assert moved.keys_seen == [None]
        result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
        assert result["type"] is FlowResultType.FORM
        assert result["errors"] == {"base": "invalid_auth"}
        assert moved.keys_seen[-1] == FAKE_KEY
        assert entry.data == contract_data(old_port, FAKE_KEY)
        hass.config_entries.flow.async_abort(result["flow_id"])


@pytest.mark.parametrize(
    "configured",
    [{"host": "localhost"}, {"ssl": True}],
    ids=["host_name", "ssl"],
)
async def test_zeroconf_never_moves_a_printer_by_host_name_or_with_ssl(
    hass: HomeAssistant, servers: list[Any], configured: dict[str, Any]
) -> None:
    """A host name stays right; an announcement names no scheme (no TLS drop)."""
    server_uuid = str(uuid_module.uuid4())
    there = await fake_octoprint(
        servers, {"webcam": {}}, uuid=server_uuid, xml_uuid=server_uuid
    )
    data = {**contract_data(443, FAKE_KEY), **configured}
    entry = MockConfigEntry(
        domain=DOMAIN, title="OctoPrint", data=data, unique_id=server_uuid
    )
    entry.add_to_hass(hass)
    result = await announce(
        hass, zeroconf_info(there.port, {**ANNOUNCED, "uuid": server_uuid})
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert entry.data == data
    assert there.paths == []  # not even asked


async def test_zeroconf_ignores_other_services_and_announcements_without_uuid(
    hass: HomeAssistant,
) -> None:
    result = await announce(hass, zeroconf_info(5000, ANNOUNCED))
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "not_supported"
    family = FAMILIES["octoprint"]
    info = zeroconf_info(5000, {**ANNOUNCED, "uuid": str(uuid_module.uuid4())})
    assert family.discovered(config_entries.SOURCE_ZEROCONF, info) is not None
    assert family.discovered(config_entries.SOURCE_INTEGRATION_DISCOVERY, info) is None
    info.type = "_moonraker._tcp.local."
    assert family.discovered(config_entries.SOURCE_ZEROCONF, info) is None


# --- reconfigure -------------------------------------------------------------------


@octoprint_only
async def test_reconfigure_to_another_address_of_the_same_octoprint(
    hass: HomeAssistant,
    octoprint: OctoPrintServer,
    make_mjpeg_printer: PrinterFactory,
    servers: list[Any],
) -> None:
    (cam,) = await cameras(make_mjpeg_printer, 1)
    await octoprint.set_webcams(None, [OctoPrintWebcam(name="nozzle", stream=cam.url)])
    entry = await added(hass, form(octoprint.port, octoprint.api_key))
    unique_id = entry.unique_id
    entities = by_unique_id(hass, entry)

    # The same OctoPrint, reached at another port (a forwarder).
    other = await forwarder(servers, octoprint.port)
    result = await start_reconfigure(hass, entry)
    assert result["step_id"] == "reconfigure_octoprint"
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {"host": "127.0.0.1", "port": other.port, "ssl": False, "path": "/"},
    )
    assert result["type"] is FlowResultType.ABORT, result
    assert result["reason"] == "reconfigure_successful"
    await hass.async_block_till_done()
    assert entry.data == contract_data(other.port, octoprint.api_key)
    assert entry.unique_id == unique_id
    assert entry.state is ConfigEntryState.LOADED
    assert by_unique_id(hass, entry) == entities
    assert other.connections > 0

    # Another OctoPrint (its API tells another uuid): refused, nothing stored.
    stranger = await fake_octoprint(
        servers,
        {"webcam": {"webcams": [webcam_json("nozzle", cam.url)]}},
        uuid=str(uuid_module.uuid4()),
        api_key=octoprint.api_key,
    )
    result = await start_reconfigure(hass, entry)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {"host": "127.0.0.1", "port": stranger.port, "ssl": False, "path": "/"},
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "unique_id_mismatch"
    assert entry.data == contract_data(other.port, octoprint.api_key)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    await unload(hass, entry)


async def test_reconfigure_a_known_uuid_to_another_octoprint(
    hass: HomeAssistant, make_mjpeg_printer: PrinterFactory, servers: list[Any]
) -> None:
    (cam,) = await cameras(make_mjpeg_printer, 1)
    settings = {"webcam": {"webcams": [webcam_json("nozzle", cam.url)]}}
    server_uuid = str(uuid_module.uuid4())
    # It tells its uuid only in discovery.xml (no key; its user may not see
    # the discovery plugin's settings).
    home = await fake_octoprint(servers, settings, xml_uuid=server_uuid)
    entry = await added(hass, form(home.port, FAKE_KEY))
    assert entry.unique_id == server_uuid
    stranger = await fake_octoprint(servers, settings, uuid=str(uuid_module.uuid4()))
    result = await start_reconfigure(hass, entry)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {"host": "127.0.0.1", "port": stranger.port, "ssl": False, "path": "/"},
    )
    assert result["reason"] == "unique_id_mismatch"
    assert entry.data["port"] == home.port
    await hass.async_block_till_done()
    await unload(hass, entry)


# --- what OctoPrint's settings say, and older OctoPrints ------------------------------


async def test_legacy_octoprint_under_a_path_prefix(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    make_mjpeg_printer: PrinterFactory,
    servers: list[Any],
) -> None:
    """OctoPrint before 1.9: one webcam at the top of the section, flips there."""
    (cam,) = await cameras(make_mjpeg_printer, 1)
    fake = await fake_octoprint(
        servers,
        {
            "webcam": {
                "webcamEnabled": True,
                "streamUrl": cam.url,
                "snapshotUrl": cam.still_url,
                "flipH": True,
                "flipV": False,
                "rotate90": False,
            }
        },
        path="/octoprint/",
    )
    entry = await added(hass, form(fake.port, FAKE_KEY, path="octoprint"))
    assert entry.data == contract_data(fake.port, FAKE_KEY, path="/octoprint/")
    assert fake.paths[0] == "/octoprint/api/settings"
    assert entry.unique_id == f"http://127.0.0.1:{fake.port}/octoprint/"
    assert webcam_keys(hass, entry) == {"classic"}
    client = await hass_client()
    viewer = Viewer(
        await client.get(
            f"/api/camera_proxy_stream/{entity_of(hass, entry, 'classic', 'camera')}"
        )
    )
    await viewer.wait_frames(2)
    assert corners_shown(viewer.frames[-1])["TL"] == "TR"  # flipped horizontally
    await viewer.close()
    await unload(hass, entry)


def test_parse_webcams_legacy_section() -> None:
    base = yarl.URL("http://octopi.local:80/")
    webcams = parse_webcams(
        {
            "webcam": {
                "webcamEnabled": True,
                "streamUrl": "/webcam/?action=stream",
                "snapshotUrl": "http://127.0.0.1:8080/?action=snapshot",
                "flipH": False,
                "flipV": True,
                "rotate90": True,
            }
        },
        base,
    )
    assert webcams == [
        Webcam(
            key="classic",
            name="Webcam",
            stream_url="http://octopi.local/webcam/?action=stream",
            snapshot_url="http://octopi.local:8080/?action=snapshot",
            enabled=True,
            orientation=Orientation.from_octoprint(False, True, True),
        )
    ]


def test_parse_webcams_resolves_urls_like_octoprints_web_page() -> None:
    """Relative to OctoPrint's page (under its prefix); loopback is the printer."""
    base = yarl.URL("http://octopi.local:5000/octoprint/")
    webcams = parse_webcams(
        {
            "webcam": {
                "webcams": [
                    {
                        "name": "absolute_path",
                        "compat": {
                            "stream": "/webcam/?action=stream",
                            "snapshot": "http://localhost:8080/?action=snapshot",
                        },
                    },
                    {
                        "name": "relative",
                        "compat": {
                            "stream": "webcam2/stream",
                            "snapshot": "http://127.0.0.1/snap.jpg",
                        },
                    },
                    {
                        "name": "elsewhere",
                        "compat": {"stream": "http://10.0.0.9:8080/stream"},
                    },
                    {"name": "no_compat", "compat": None},
                    {"displayName": "nameless", "compat": {"stream": "/x"}},
                    "not a webcam",
                ]
            }
        },
        base,
    )
    urls = {w.key: (w.stream_url, w.snapshot_url) for w in webcams}
    assert urls == {
        "absolute_path": (
            "http://octopi.local:5000/webcam/?action=stream",
            "http://octopi.local:8080/?action=snapshot",
        ),
        "relative": (
            "http://octopi.local:5000/octoprint/webcam2/stream",
            "http://octopi.local/snap.jpg",
        ),
        "elsewhere": ("http://10.0.0.9:8080/stream", ""),
        "no_compat": ("", ""),
    }
    assert [w.name for w in webcams] == list(urls)  # displayName falls back


def test_parse_webcams_disabled_and_not_mjpeg() -> None:
    base = yarl.URL("http://octopi.local:80/")
    webcams = parse_webcams(
        {
            "webcam": {
                "webcamEnabled": False,
                "webcams": [webcam_json("nozzle", "/webcam/?action=stream")],
            }
        },
        base,
    )
    assert [w.enabled for w in webcams] == [False]
    reason = not_mjpeg_reason(webcams[0])
    assert reason is not None
    assert reason.reason == "disabled"
    with pytest.raises(WebcamPermission):
        parse_webcams({"webcam": {}}, base)
    with pytest.raises(WebcamPermission):
        parse_webcams({"api": {}}, base)


async def test_webcam_permission_from_a_fake_server(
    hass: HomeAssistant, servers: list[Any]
) -> None:
    fake = await fake_octoprint(servers, {"webcam": {}})
    result = await add(hass, form(fake.port, FAKE_KEY))
    assert result["errors"] == {"base": "webcam_permission"}


async def test_another_octoprint_at_the_address_is_not_taken_for_it(
    hass: HomeAssistant, make_mjpeg_printer: PrinterFactory, servers: list[Any]
) -> None:
    """A DHCP swap: the entry's address now reaches another OctoPrint."""
    (cam,) = await cameras(make_mjpeg_printer, 1)
    settings = {"webcam": {"webcams": [webcam_json("nozzle", cam.url)]}}
    other = await fake_octoprint(servers, settings, uuid=str(uuid_module.uuid4()))
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="OctoPrint",
        data=contract_data(other.port, FAKE_KEY),
        unique_id=str(uuid_module.uuid4()),
    )
    await setup_entry(hass, entry)
    assert entry.state is ConfigEntryState.SETUP_RETRY
    assert "another OctoPrint" in (entry.reason or "")
    assert cam.total_connections == 0
    await unload(hass, entry)
