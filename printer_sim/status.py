"""A tiny HTTP server answering ``GET /status`` with a printer's counters.

The MJPEG printer serves its own ``/status``; a Bambu printer speaks raw TLS
on its camera port, so ``python -m printer_sim`` puts its counters on a
separate port with `StatusServer`. Each request runs ``status()`` and
answers its result as JSON; connections to this server never touch the
printer's counters.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

__all__ = ["StatusServer"]


class StatusServer:
    """Serve ``status()`` as JSON at ``/status`` on ``host:port`` (0: a free port)."""

    def __init__(
        self,
        status: Callable[[], dict[str, Any]],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        """Configure the server; nothing listens before `start()`."""
        self._status = status
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        """Listen; afterwards `port` is the real port."""
        app = web.Application()
        app.router.add_get("/status", self._handle)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, reuse_address=True)
        await site.start()
        self._runner = runner
        self.port = runner.addresses[0][1]

    async def close(self) -> None:
        """Stop listening and close every connection."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def url(self) -> str:
        """Return the URL of the status page."""
        return f"http://{self.host}:{self.port}/status"

    async def _handle(self, request: web.Request) -> web.Response:
        return web.json_response(self._status())
