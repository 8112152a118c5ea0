"""How many printers x viewers one Home Assistant serves through the restream.

    python -m bench.scale [--configs 1x20,5x20,10x20,10x40] [--window 15]
                          [--fps 15] [--keep]

One real Home Assistant (started, onboarded and given entries like
`bench.ha`) serves K simulated MJPEG printers (`bench.camera`, ~100 kB
frames) through PrintCam, each with its restream turned on through the
options flow REST API. For each configuration K x N, N raw aiohttp readers
per printer read ``/api/printcam/<token>/stream.mjpeg`` (no auth) for
``--window`` seconds; it reports the frames each camera sent against the
frames each viewer received (min / median), the share of frames slow
viewers lost (from the viewers' counts and from PrintCam's diagnostics),
Home Assistant's CPU (% of one core) and each camera's connection count.
Every process it starts is stopped however it ends, Ctrl-C included.
"""

# ruff: noqa: T201 - a command-line tool: printing is its output

from __future__ import annotations

import argparse
import asyncio
import contextlib
from dataclasses import dataclass, field
import os
import re
import statistics
import sys
import time
from typing import Any

import aiohttp

from printer_sim.demo import (
    VENV_BIN,
    ConfigFlows,
    Paths,
    Processes,
    authenticate,
    start_hass,
)

from .ha import (
    DEFAULT_INTEGRATION,
    BenchError,
    camera_streams,
    free_port,
    run_interruptible,
    step,
    wait_ready,
    write_config,
)
from .stats import CpuMeter

DEFAULT_CONFIGS = "1x20,5x20,10x20,10x40"
QUIET_TIMEOUT = 40.0
FIRST_FRAME_TIMEOUT = 20.0
SAMPLE_PERIOD = 0.5
STREAM_PATH = re.compile(r"/api/printcam/[A-Za-z0-9_-]+/stream\.mjpeg")


@dataclass(slots=True)
class Printer:
    """One simulated printer and its PrintCam entry."""

    name: str
    status_url: str
    entry_id: str = ""
    stream_path: str = ""


@dataclass(slots=True)
class Reader:
    """One raw restream viewer: counts the multipart boundaries it reads."""

    url: str
    frames: int = 0
    bytes: int = 0
    error: str | None = None
    first: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self, session: aiohttp.ClientSession) -> None:
        """Read until cancelled."""
        try:
            async with session.get(self.url) as resp:
                if resp.status != 200:
                    self.error = f"HTTP {resp.status}"
                    return
                ctype = resp.headers.get("Content-Type", "")
                boundary = ctype.partition("boundary=")[2].strip().strip('"')
                marker = b"--" + boundary.removeprefix("--").encode()
                keep = len(marker) - 1
                tail = b""
                async for chunk in resp.content.iter_any():
                    self.bytes += len(chunk)
                    data = tail + chunk
                    found = data.count(marker)
                    if found:
                        self.frames += found
                        self.first.set()
                    tail = data[-keep:] if keep else b""
                    if found and marker in tail:
                        tail = b""
                self.error = "stream ended"
        except (aiohttp.ClientError, OSError) as err:
            self.error = f"{type(err).__name__}: {err}"


@dataclass(slots=True)
class Result:
    """One configuration's figures."""

    k: int
    n: int
    window_s: float
    sent_min: int
    sent_max: int
    recv_min: int
    recv_median: float
    lost_share: float
    fanout_lost_share: float | None
    mb_per_s: float
    ha_cpu_pct: float
    client_cpu_pct: float
    connections_max: int
    new_connections: int
    errors: int

    def line(self) -> str:
        """Return the progress line."""
        fanout = (
            "n/a" if self.fanout_lost_share is None else f"{self.fanout_lost_share:.1%}"
        )
        return (
            f"K={self.k:<3} N={self.n:<3} ({self.k * self.n} viewers): camera sent "
            f"{self.sent_min}-{self.sent_max}, viewer got min {self.recv_min} / "
            f"median {self.recv_median:g}, lost {self.lost_share:.1%} "
            f"(fan-out {fanout}), {self.mb_per_s:.0f} MB/s served, HA CPU {self.ha_cpu_pct:.0f}%, client CPU "
            f"{self.client_cpu_pct:.0f}%, camera connections max "
            f"{self.connections_max} (+{self.new_connections} new), "
            f"errors {self.errors}"
        )


def table(results: list[Result]) -> str:
    """Return the final table (markdown)."""
    head = (
        "| K x N | viewers | camera frames sent | viewer frames min / median "
        "| lost (viewers) | lost (fan-out) | MB/s served | HA CPU | client CPU "
        "| camera conns (max) |"
    )
    rows = [head, "|" + " --- |" * 10]
    for r in results:
        sent = (
            f"{r.sent_min}"
            if r.sent_min == r.sent_max
            else f"{r.sent_min}-{r.sent_max}"
        )
        fanout = "n/a" if r.fanout_lost_share is None else f"{r.fanout_lost_share:.1%}"
        rows.append(
            f"| {r.k} x {r.n} | {r.k * r.n} | {sent} | {r.recv_min} / "
            f"{r.recv_median:g} | {r.lost_share:.1%} | {fanout} | {r.mb_per_s:.0f} "
            f"| {r.ha_cpu_pct:.0f}% | {r.client_cpu_pct:.0f}% "
            f"| {r.connections_max} |"
        )
    return "\n".join(rows)


class Hass:
    """The REST calls this benchmark makes beyond `bench.ha`'s."""

    def __init__(self, session: aiohttp.ClientSession, base: str, token: str) -> None:
        """Use ``token`` against ``base``."""
        self.session = session
        self.base = base
        self.headers = {"Authorization": f"Bearer {token}"}

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        async with self.session.post(
            f"{self.base}{path}", json=body, headers=self.headers
        ) as resp:
            result: dict[str, Any] = await resp.json()
            if resp.status != 200:
                raise BenchError(f"POST {path}: HTTP {resp.status} {result}")
        return result

    async def enable_restream(self, entry_id: str) -> str:
        """Turn on the entry's restream; return its stream path."""
        flow_url = "/api/config/config_entries/options/flow"
        form = await self._post(flow_url, {"handler": entry_id})
        done = await self._post(f"{flow_url}/{form['flow_id']}", {"restream": True})
        if done.get("type") != "create_entry":
            raise BenchError(f"options flow of {entry_id}: {done}")
        # A second options form shows the URLs; close it unsubmitted.
        form = await self._post(flow_url, {"handler": entry_id})
        async with self.session.delete(
            f"{self.base}{flow_url}/{form['flow_id']}", headers=self.headers
        ):
            pass
        urls = (form.get("description_placeholders") or {}).get("restream_urls", "")
        found = STREAM_PATH.search(urls)
        if found is None:
            raise BenchError(f"no restream URL in the options form of {entry_id}")
        return found.group(0)

    async def fanout(self, entry_id: str) -> tuple[int, int] | None:
        """Return the entry's (delivered, dropped_by_slow_viewers), if known."""
        with contextlib.suppress(aiohttp.ClientError, KeyError, TypeError, ValueError):
            async with self.session.get(
                f"{self.base}/api/diagnostics/config_entry/{entry_id}",
                headers=self.headers,
            ) as resp:
                if resp.status != 200:
                    return None
                data = (await resp.json())["data"]
            fanout = data["counters"]["fanout"]
            return int(fanout["delivered"]), int(fanout["dropped_by_slow_viewers"])
        return None


async def status(session: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    """Return a simulated camera's counters."""
    async with session.get(url) as resp:
        resp.raise_for_status()
        result: dict[str, Any] = await resp.json()
        return result


async def wait_quiet(session: aiohttp.ClientSession, printers: list[Printer]) -> None:
    """Wait (bounded) until no camera has a stream open, so each run starts cold."""
    deadline = time.monotonic() + QUIET_TIMEOUT
    for printer in printers:
        while await camera_streams(session, printer.status_url) > 0:
            if time.monotonic() > deadline:
                print(f"    note: {printer.name} still streams; going on", flush=True)
                return
            await asyncio.sleep(0.25)


async def bring_up(
    procs: Processes,
    paths: Paths,
    session: aiohttp.ClientSession,
    count: int,
    fps: float,
) -> tuple[int, Hass, list[Printer]]:
    """Start the cameras and Home Assistant; add ``count`` restreamed entries."""
    step(f"Starting {count} simulated cameras ({fps:g} fps)")
    names = [f"p{i}" for i in range(count)]
    ready_file = paths.root / "cameras.json"
    proc = procs.start(
        "cameras",
        [
            str(VENV_BIN / "python"),
            "-m",
            "bench.camera",
            "--names",
            ",".join(names),
            "--fps",
            f"{fps:g}",
            "--ready-file",
            str(ready_file),
        ],
        paths.root / "cameras.log",
    )
    cameras = await wait_ready(proc, ready_file, "bench.camera")
    print(f"    frames ~{cameras['frame_kb']:.0f} kB", flush=True)
    port = free_port()
    write_config(paths, port, DEFAULT_INTEGRATION)
    with (paths.config / "configuration.yaml").open("a", encoding="utf-8") as out:
        out.write("diagnostics:\n")
    base = f"http://127.0.0.1:{port}"
    await start_hass(procs, paths, session, base)
    ha_pid = next(p.pid for name, p in procs.children if name == "Home Assistant")
    token = (await authenticate(paths, session, base))["token"]
    hass = Hass(session, base, token)
    flows = ConfigFlows(session, base, token)
    step(f"Adding {count} PrintCam MJPEG entries with restream on")
    printers = []
    for name in names:
        cam = cameras[name]
        result = await flows.add(
            "mjpeg",
            {
                "name": f"Scale {name}",
                "url": cam["url"],
                "still_url": cam["still_url"],
                "verify_ssl": True,
            },
        )
        if result.get("type") != "create_entry":
            raise BenchError(f"PrintCam config flow for {name}: {result}")
        printer = Printer(name, cam["status_url"], result["result"]["entry_id"])
        printer.stream_path = await hass.enable_restream(printer.entry_id)
        printers.append(printer)
    return ha_pid, hass, printers


async def measure(
    hass: Hass,
    ha_pid: int,
    printers: list[Printer],
    k: int,
    n: int,
    window_s: float,
) -> Result:
    """Run one configuration: N readers on each of the first K printers."""
    session = hass.session
    used = printers[:k]
    await wait_quiet(session, printers)
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10)
    async with aiohttp.ClientSession(
        connector=connector, timeout=timeout, read_bufsize=1 << 18
    ) as client:
        readers = {
            p.name: [Reader(hass.base + p.stream_path) for _ in range(n)] for p in used
        }
        every = [r for group in readers.values() for r in group]
        tasks = [asyncio.create_task(r.run(client)) for r in every]
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(FIRST_FRAME_TIMEOUT):
                    await asyncio.gather(*(r.first.wait() for r in every))
            await asyncio.sleep(1.0)
            before = {p.name: await status(session, p.status_url) for p in used}
            fan_before = {p.name: await hass.fanout(p.entry_id) for p in used}
            counts = {id(r): r.frames for r in every}
            bytes_before = sum(r.bytes for r in every)
            ha_cpu = CpuMeter(ha_pid)
            me = CpuMeter(os.getpid())
            started = time.monotonic()
            peak = {p.name: 0 for p in used}
            while time.monotonic() - started < window_s:
                for p in used:
                    streams = await camera_streams(session, p.status_url)
                    peak[p.name] = max(peak[p.name], streams)
                await asyncio.sleep(SAMPLE_PERIOD)
            elapsed = time.monotonic() - started
            received = [r.frames - counts[id(r)] for r in every]
            served = sum(r.bytes for r in every) - bytes_before
            ha_ms = ha_cpu.elapsed_ms()
            me_ms = me.elapsed_ms()
            after = {p.name: await status(session, p.status_url) for p in used}
            fan_after = {p.name: await hass.fanout(p.entry_id) for p in used}
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    sent = {p: after[p]["frames_sent"] - before[p]["frames_sent"] for p in after}
    new_conns = sum(
        after[p]["total_connections"] - before[p]["total_connections"] for p in after
    )
    expected = [sent[name] for name, group in readers.items() for _ in group]
    lost = sum(max(e - r, 0) for e, r in zip(expected, received, strict=True))
    delivered = dropped = 0
    fanout_known = True
    for name, a in fan_after.items():
        b = fan_before[name]
        if a is None or b is None:
            fanout_known = False
            continue
        delivered += a[0] - b[0]
        dropped += a[1] - b[1]
    fan_share = (
        dropped / (delivered + dropped)
        if fanout_known and delivered + dropped
        else None
    )
    return Result(
        k=k,
        n=n,
        window_s=elapsed,
        sent_min=min(sent.values()),
        sent_max=max(sent.values()),
        recv_min=min(received),
        recv_median=statistics.median(received),
        lost_share=lost / max(sum(expected), 1),
        fanout_lost_share=fan_share,
        mb_per_s=served / elapsed / 1e6,
        ha_cpu_pct=ha_ms / (elapsed * 10),
        client_cpu_pct=me_ms / (elapsed * 10),
        connections_max=max(peak.values()),
        new_connections=new_conns,
        errors=sum(r.error is not None for r in every),
    )


def parse_configs(text: str) -> list[tuple[int, int]]:
    """Parse ``1x20,5x20`` into [(1, 20), (5, 20)]."""
    configs = []
    for item in text.split(","):
        k, _, n = item.strip().partition("x")
        configs.append((int(k), int(n)))
    return configs


async def bench(args: argparse.Namespace, procs: Processes) -> None:
    """Set up, measure each configuration, print the table."""
    started = time.monotonic()
    configs = parse_configs(args.configs)
    count = max(k for k, _ in configs)
    async with aiohttp.ClientSession() as session:
        ha_pid, hass, printers = await bring_up(
            procs, procs.paths, session, count, args.fps
        )
        step(
            f"{len(configs)} configurations, {args.window:g} s each "
            "(after every camera is quiet)"
        )
        results = []
        for k, n in configs:
            result = await measure(hass, ha_pid, printers, k, n, args.window)
            results.append(result)
            print(result.line(), flush=True)
    print()
    print(
        f"{args.fps:g} fps per camera, {args.window:g} s windows; CPU in % of one "
        "core (2 cores = 200%); lost = frames the cameras sent that viewers did "
        "not get"
    )
    print(table(results), flush=True)
    print(f"\ntotal {time.monotonic() - started:.0f} s")


async def amain(args: argparse.Namespace) -> int:
    """Run the benchmark; stop every child however it ends."""
    return await run_interruptible(
        args,
        lambda procs: bench(args, procs),
        prefix="printcam-scale-",
        stopping="Stopping Home Assistant and the cameras",
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.scale", description=(__doc__ or "").splitlines()[0]
    )
    parser.add_argument(
        "--configs",
        default=DEFAULT_CONFIGS,
        help=f"printers x viewers each, comma-separated (default {DEFAULT_CONFIGS})",
    )
    parser.add_argument("--window", type=float, default=15.0, help="seconds measured")
    parser.add_argument("--fps", type=float, default=15.0, help="camera frame rate")
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary directory (logs)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``python -m bench.scale``."""
    sys.exit(asyncio.run(amain(parse_args(argv))))


if __name__ == "__main__":
    main()
