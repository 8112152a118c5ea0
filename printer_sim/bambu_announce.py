"""A Bambu Lab printer's UDP announcements, as the printers send them.

Real printers broadcast ``NOTIFY * HTTP/1.1`` to 255.255.255.255, UDP port
2021, every few seconds, and answer an M-SEARCH for their ``ST`` on 2021
with the same headers (``HTTP/1.1 200 OK``). The simulator does both on
127.0.0.1: it sends its NOTIFY to ``target`` (Home Assistant's listener) and
answers M-SEARCHes that reach its own socket (``port``; tests point the
search there), replying to the sender's address and port as a printer does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Final

_LOGGER = logging.getLogger(__name__)

NT: Final = "urn:bambulab-com:device:3dprinter:1"
MODEL_CODES: Final = {
    "X1C": "BL-P001",
    "X1": "BL-P002",
    "X1E": "C13",
    "P1P": "C11",
    "P1S": "C12",
    "A1 mini": "N1",
    "A1": "N2S",
    "P2S": "N7",
    "H2D": "O1D",
}
"""Model -> the code announced in ``DevModel.bambu.com``."""


def announcement(
    *, serial: str, model: str, name: str, host: str, answer: bool = False
) -> bytes:
    """Return a NOTIFY (or, with `answer`, an M-SEARCH answer) datagram."""
    start, header = ("HTTP/1.1 200 OK", "ST") if answer else ("NOTIFY * HTTP/1.1", "NT")
    lines = [
        start,
        "HOST: 239.255.255.250:1990",
        "Server: UPnP/1.0",
        f"Location: {host}",
        f"{header}: {NT}",
        f"USN: {serial}",
        "Cache-Control: max-age=1800",
        f"DevModel.bambu.com: {MODEL_CODES.get(model, model)}",
        f"DevName.bambu.com: {name}",
        "DevConnect.bambu.com: lan",
        "DevBind.bambu.com: free",
        "Devseclink.bambu.com: secure",
        "DevVersion.bambu.com: 01.08.02.00",
        "DevCap.bambu.com: 1",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class BambuAnnouncer(asyncio.DatagramProtocol):
    """Announces one simulated printer and answers M-SEARCHes."""

    def __init__(
        self,
        *,
        serial: str,
        model: str = "P1S",
        name: str = "Bambu Lab P1S",
        target: tuple[str, int] = ("127.0.0.1", 2021),
        host: str = "127.0.0.1",
        port: int = 0,
        interval: float = 2.0,
    ) -> None:
        """Configure; nothing is sent before `start()`.

        `target` receives the NOTIFY every `interval` seconds; M-SEARCHes
        sent to (`host`, `port`) are answered (`port` 0: a free one).
        """
        self.serial = serial
        self.model = model
        self.name = name
        self.target = target
        self.host = host
        self.port = port
        self.interval = interval
        self.notifies = 0
        self.searches_answered = 0
        self._transport: asyncio.DatagramTransport | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Bind the socket and start announcing."""
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: self, local_addr=(self.host, self.port)
        )
        self._transport = transport
        self.port = transport.get_extra_info("sockname")[1]
        self._task = loop.create_task(self._announce(), name="bambu announcer")

    async def _announce(self) -> None:
        message = announcement(
            serial=self.serial, model=self.model, name=self.name, host=self.host
        )
        while self._transport is not None:
            self._transport.sendto(message, self.target)
            self.notifies += 1
            await asyncio.sleep(self.interval)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        """Answer an M-SEARCH for Bambu Lab printers to its sender."""
        text = data.decode("utf-8", "replace")
        if not text.upper().startswith("M-SEARCH") or NT not in text.lower():
            return
        if self._transport is None:
            return
        self._transport.sendto(
            announcement(
                serial=self.serial,
                model=self.model,
                name=self.name,
                host=self.host,
                answer=True,
            ),
            addr,
        )
        self.searches_answered += 1

    async def close(self) -> None:
        """Stop announcing and release the socket."""
        transport, self._transport = self._transport, None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if transport is not None:
            transport.close()


def main(argv: list[str] | None = None) -> None:
    """Announce one simulated printer until interrupted (SIGINT/SIGTERM)."""
    import argparse
    import signal

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serial", required=True)
    parser.add_argument("--model", default="P1S")
    parser.add_argument("--name", default="Bambu Lab P1S")
    parser.add_argument("--target", default="127.0.0.1:2021", help="host:port")
    parser.add_argument("--port", type=int, default=0, help="M-SEARCH port")
    parser.add_argument("--interval", type=float, default=2.0)
    args = parser.parse_args(argv)
    host, _, port = args.target.rpartition(":")

    async def run() -> None:
        sim = BambuAnnouncer(
            serial=args.serial,
            model=args.model,
            name=args.name,
            target=(host, int(port)),
            port=args.port,
            interval=args.interval,
        )
        await sim.start()
        print(sim.port, flush=True)  # noqa: T201 - the ready line
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await sim.close()

    asyncio.run(run())


if __name__ == "__main__":
    main()
