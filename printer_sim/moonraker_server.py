"""A real Moonraker 0.11 on 127.0.0.1 for tests, without Klipper, in its own process.

`MoonrakerServer` runs Moonraker from ``.venv-moonraker`` (``scripts/setup``
installs ``requirements/moonraker.txt`` there; `moonraker_available` says why
it cannot run) as ``moonraker -d DATA -c moonraker.conf -n`` with a generated
data directory, on a free port of 127.0.0.1::

    cams = [MoonrakerWebcam(name="front", stream_url="/webcam/?action=stream")]
    async with MoonrakerServer(webcams=cams, trusted=False) as moonraker:
        # moonraker.url; moonraker.api_key (header X-Api-Key)
        await moonraker.add_webcam(MoonrakerWebcam(name="side", ...))

or ``with MoonrakerServer(...) as moonraker:`` (`start_sync` / `stop_sync`)
for one server per test module or session. Facts checked against
Moonraker 0.11.0:

- ``moonraker.conf``: ``[server]`` host 127.0.0.1, the port, and a
  ``klippy_uds_address`` where nothing listens (Moonraker runs without
  Klipper: ``/server/info`` says ``klippy_state: "disconnected"`` and it
  retries the socket now and then); ``[authorization]`` with
  ``trusted_clients: 127.0.0.0/8`` when ``trusted`` (the default), none
  otherwise; ``[announcements] dev_mode: True`` (else it fetches
  announcements from GitHub); ``[machine] provider: none`` (no D-Bus or
  systemctl calls) and no install validation; one ``[webcam NAME]`` section
  per configured webcam. ``update_manager`` is not configured (it would
  fetch from GitHub and PyPI).
- ``misc/usb.ids`` is created empty: otherwise the ``machine`` component
  downloads it from www.linux-usb.org at every start (seen: a DNS query as
  it started). With it, under strace the server made no connection but to
  127.0.0.1 and Unix sockets. Its "public IP" probe only ``connect()``s a UDP
  socket, which sends nothing.
- ``[zeroconf]`` is never written: Moonraker 0.11's component registers
  ``_moonraker._tcp`` with ``AsyncZeroconf(ip_version=...)`` and no
  interface choice, so it multicasts on every interface whatever
  ``[server] host`` is (host only decides the advertised address); its only
  options are ``mdns_hostname`` and ``enable_ssdp``. There is no way to
  keep it on loopback, so no flag for it.

API key: with a trusted client no key is needed; otherwise every endpoint
answers 401 without ``X-Api-Key`` (or a JWT). Moonraker makes its key on
first start and keeps it in its SQLite database
(``database/moonraker-sql.db``, table ``authorized_users``, row
``_API_KEY_USER_``, column ``password``): `api_key` is read from there
once the server answers (``GET /access/api_key`` returns the same key but
needs authorisation itself; ``POST`` makes a new one). No
``[authorization]`` option sets it.

Webcams: ``GET /server/webcams/list`` -> ``{"result": {"webcams": [...]}}``,
config webcams first (in file order) then database ones (in the order they
were added), each::

    {"name": "front", "enabled": true, "icon": "mdiWebcam",
     "aspect_ratio": "4:3", "target_fps": 15, "target_fps_idle": 5,
     "location": "printer", "service": "mjpegstreamer",
     "stream_url": "/webcam/?action=stream", "snapshot_url": "",
     "flip_horizontal": false, "flip_vertical": false, "rotation": 0,
     "source": "config", "extra_data": {}, "uid": UID}

(a config webcam's uid is ``uuid5(UUID(instance id), "moonraker.webcam.NAME")``).

URLs come back as configured (relative ones stay relative). Config webcams
are read-only (``POST``/``DELETE /server/webcams/item`` on them: 400).
``POST /server/webcams/item`` with a JSON body (the fields above; ``name``
and ``stream_url`` required) adds one (``source: "database"``, a random
uid), or updates the one with that ``name``/``uid``; ``DELETE
/server/webcams/item?name=N`` (or ``uid=U``) removes it; both answer
``{"result": {"webcam": {...}}}``.

UUID and version (what zeroconf's ``_moonraker._tcp`` TXT record carries:
``uuid``, ``https_port`` empty without SSL, ``version``, ``route_prefix``;
checked by browsing a server with ``[zeroconf]`` inside a network namespace
that had nothing but loopback):
``uuid`` is the instance id, the hex in ``DATA/.moonraker.uuid`` (written
here before the start, `instance_uuid`), which the database also stores:
``GET /server/database/item?namespace=moonraker&key=instance_id`` ->
``{"result": {"namespace": "moonraker", "key": "instance_id", "value":
HEX}}`` (read-only namespace; the API's only view of it). ``version`` is
``GET /server/info`` ``moonraker_version``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
import contextlib
from dataclasses import dataclass
from pathlib import Path
import sqlite3
import time
from typing import Any, ClassVar, Final
from urllib.parse import urlencode
import uuid as uuid_module

from .octoprint_server import (
    ServerError,
    ServerProcess,
    as_dict,
    http_request,
    http_request_sync,
)

__all__ = [
    "MOONRAKER_VENV",
    "MoonrakerServer",
    "MoonrakerWebcam",
    "moonraker_available",
]

ROOT: Final = Path(__file__).resolve().parent.parent
MOONRAKER_VENV: Final = ROOT / ".venv-moonraker"
API_KEY_USER: Final = "_API_KEY_USER_"


def moonraker_available() -> str | None:
    """Return None if Moonraker can run here, else the reason it cannot."""
    if not (MOONRAKER_VENV / "bin" / "python").exists():
        return f"{MOONRAKER_VENV.name} missing (scripts/setup creates it)"
    if not (MOONRAKER_VENV / "bin" / "moonraker").exists():
        return f"moonraker not installed in {MOONRAKER_VENV.name} (run scripts/setup)"
    if not (MOONRAKER_VENV / ".requirements.sha256").exists():
        # scripts/setup writes it once the install succeeded.
        return f"{MOONRAKER_VENV.name} incomplete (run scripts/setup)"
    return None


@dataclass(frozen=True, kw_only=True)
class MoonrakerWebcam:
    """A webcam: a ``[webcam NAME]`` section or a ``/server/webcams/item`` body."""

    name: str
    stream_url: str
    snapshot_url: str = ""
    service: str = "mjpegstreamer"
    flip_horizontal: bool = False
    flip_vertical: bool = False
    rotation: int = 0
    """0, 90, 180 or 270 (clockwise); anything else is refused."""
    target_fps: int = 15
    enabled: bool = True
    aspect_ratio: str = "4:3"

    def as_config(self) -> str:
        """Return the ``moonraker.conf`` section."""
        return "\n".join(
            [
                f"[webcam {self.name}]",
                f"service: {self.service}",
                f"stream_url: {self.stream_url}",
                f"snapshot_url: {self.snapshot_url}",
                f"flip_horizontal: {self.flip_horizontal}",
                f"flip_vertical: {self.flip_vertical}",
                f"rotation: {self.rotation}",
                f"target_fps: {self.target_fps}",
                f"enabled: {self.enabled}",
                f"aspect_ratio: {self.aspect_ratio}",
                "",
            ]
        )

    def as_json(self) -> dict[str, Any]:
        """Return the body of ``POST /server/webcams/item``."""
        return {
            "name": self.name,
            "service": self.service,
            "stream_url": self.stream_url,
            "snapshot_url": self.snapshot_url,
            "flip_horizontal": self.flip_horizontal,
            "flip_vertical": self.flip_vertical,
            "rotation": self.rotation,
            "target_fps": self.target_fps,
            "enabled": self.enabled,
            "aspect_ratio": self.aspect_ratio,
        }


class MoonrakerServer(ServerProcess):
    """Moonraker 0.11 from ``.venv-moonraker`` on 127.0.0.1 (see the module doc)."""

    label = "moonraker"
    key_timeout: ClassVar[float] = 10.0

    def __init__(
        self,
        *,
        webcams: Sequence[MoonrakerWebcam] = (),
        trusted: bool = True,
        instance_uuid: str | None = None,
        start_timeout: float = 60.0,
        stop_timeout: float = 15.0,
        keep_directory: bool = False,
    ) -> None:
        """Describe the server.

        `webcams` become ``[webcam NAME]`` sections (read-only through the
        API); `trusted` False drops ``trusted_clients`` so every request
        needs `api_key`; `instance_uuid` (32 hex digits, default a new one)
        is written to ``.moonraker.uuid``.
        """
        super().__init__(
            start_timeout=start_timeout,
            stop_timeout=stop_timeout,
            keep_directory=keep_directory,
        )
        self.config_webcams = tuple(webcams)
        self.trusted = trusted
        self.instance_uuid = instance_uuid or uuid_module.uuid4().hex
        """The instance id zeroconf would announce as ``uuid``."""
        self.api_key = ""
        """Moonraker's API key, read from its database once it runs."""

    # --- files -----------------------------------------------------------------

    def _prepare(self, directory: Path) -> None:
        data = directory / "data"
        (data / "misc").mkdir(parents=True)
        (data / "misc" / "usb.ids").write_bytes(b"")
        (data / ".moonraker.uuid").write_text(self.instance_uuid)
        authorization = ["[authorization]"]
        if self.trusted:
            authorization.append("trusted_clients:\n  127.0.0.0/8")
        sections = [
            "[server]",
            f"host: {self.host}",
            f"port: {self.port}",
            f"klippy_uds_address: {directory / 'klippy.sock'}",
            "",
            *authorization,
            "",
            "[announcements]",
            "dev_mode: True",
            "",
            "[machine]",
            "provider: none",
            "validate_service: False",
            "validate_config: False",
            "",
            *(webcam.as_config() for webcam in self.config_webcams),
        ]
        (directory / "moonraker.conf").write_text("\n".join(sections))

    def _command(self, directory: Path) -> list[str]:
        return [
            str(MOONRAKER_VENV / "bin" / "moonraker"),
            "-d",
            str(directory / "data"),
            "-c",
            str(directory / "moonraker.conf"),
            "-n",
        ]

    def _probe(self) -> tuple[str, dict[str, str], frozenset[int]]:
        # Untrusted, 401 is its answer until the key is known.
        return "/server/info", {}, frozenset({200, 401})

    # Moonraker writes its key to the database before it listens: the first
    # read finds it; the loops only cover a slow disk.

    def _database(self) -> Path:
        if self.directory is None:  # pragma: no cover - only after a start
            raise RuntimeError("not started")
        return self.directory / "data" / "database" / "moonraker-sql.db"

    def _after_ready(self) -> None:
        """Read the API key Moonraker made; check it opens this server."""
        deadline = time.monotonic() + self.key_timeout
        while not (key := _read_api_key(self._database())):
            self._check_key_deadline(deadline)
            time.sleep(0.05)
        self.api_key = key
        status, _ = http_request_sync(
            "GET", self.url + "/server/info", headers=self.headers
        )
        self._check_key_status(status)

    async def _after_ready_async(self) -> None:
        """Read the API key Moonraker made; check it opens this server."""
        deadline = time.monotonic() + self.key_timeout
        while not (key := _read_api_key(self._database())):
            self._check_key_deadline(deadline)
            await asyncio.sleep(0.05)
        self.api_key = key
        status, _ = await http_request(
            "GET", self.url + "/server/info", headers=self.headers
        )
        self._check_key_status(status)

    def _check_key_deadline(self, deadline: float) -> None:
        if time.monotonic() > deadline:
            raise ServerError(f"no API key in {self._database()}:\n{self.log_tail()}")

    def _check_key_status(self, status: int) -> None:
        # The key opens this server only: not another one that took the port.
        if status != 200:
            raise ServerError(
                f"{self.url} refused this Moonraker's key ({status}):\n"
                + self.log_tail()
            )

    # --- REST --------------------------------------------------------------------

    async def _result(self, method: str, path: str, json_body: Any = None) -> Any:
        _, body = await self.request(method, path, json_body, expect=200)
        return body["result"]

    async def webcams(self) -> list[dict[str, Any]]:
        """Return ``GET /server/webcams/list`` ``result.webcams``."""
        webcams = (await self._result("GET", "/server/webcams/list"))["webcams"]
        if not isinstance(webcams, list):
            raise ServerError(f"webcams: expected a list, got {webcams!r}")
        return webcams

    async def add_webcam(self, webcam: MoonrakerWebcam) -> dict[str, Any]:
        """Add (or update, same name) a database webcam; return it."""
        result = await self._result("POST", "/server/webcams/item", webcam.as_json())
        return as_dict(result["webcam"])

    async def delete_webcam(
        self, name: str | None = None, *, uid: str | None = None
    ) -> dict[str, Any]:
        """Delete a database webcam by `name` or `uid`; return it."""
        if (name is None) == (uid is None):
            raise ValueError("give name or uid")
        query = urlencode({"uid": uid} if uid is not None else {"name": name or ""})
        result = await self._result("DELETE", f"/server/webcams/item?{query}")
        return as_dict(result["webcam"])

    async def server_info(self) -> dict[str, Any]:
        """Return ``GET /server/info`` ``result``."""
        return as_dict(await self._result("GET", "/server/info"))

    async def version(self) -> str:
        """Return ``moonraker_version`` from ``/server/info``."""
        return str((await self.server_info())["moonraker_version"])

    async def server_uuid(self) -> str:
        """Return the instance id as the API reports it (the TXT ``uuid``)."""
        query = urlencode({"namespace": "moonraker", "key": "instance_id"})
        result = await self._result("GET", f"/server/database/item?{query}")
        return str(result["value"])

    async def zeroconf_properties(self) -> dict[str, str | None]:
        """Return the ``_moonraker._tcp`` TXT record it would announce.

        As a zeroconf browser (Home Assistant's too) decodes it: the empty
        ``https_port`` (no SSL) and ``route_prefix`` come back as None.
        """
        return {
            "uuid": await self.server_uuid(),
            "https_port": None,
            "version": await self.version(),
            "route_prefix": None,
        }


def _read_api_key(database: Path) -> str | None:
    if not database.exists():
        return None
    try:
        # closing(): sqlite3's own context manager only commits.
        with contextlib.closing(
            sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=1)
        ) as connection:
            row = connection.execute(
                "SELECT password FROM authorized_users WHERE username = ?",
                (API_KEY_USER,),
            ).fetchone()
    except sqlite3.Error:
        return None
    return str(row[0]) if row else None
