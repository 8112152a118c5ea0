"""One benchmark run: N viewers, a late joiner, stills; prints one JSON line.

    python -m bench.viewers '<run config JSON>'

Started by `bench.ha` for every run, in its own process (its CPU is not
the measured process's). The config (see `RunConfig`) names the server
(Home Assistant or the floor), the stream and still paths, the HTTP
headers (the token), the measured process's pid and the simulated
camera's ``/status`` URL. The run:

1. opens ``n`` stream connections at once and waits until each has a frame;
2. settles, then measures for ``window_s``: frames received by the viewers,
   each frame's latency (receive time minus the stamp the camera put in it,
   both CLOCK_MONOTONIC), the measured process's CPU time (utime + stime
   from /proc), the camera's running streams (sampled);
3. with the viewers still watching: ``late_joiners`` times, a new viewer
   connects and waits for its first frame (warm first-frame time), then
   leaves; ``stills`` times, a still image is fetched over a kept-alive
   connection (warm still time); the camera's stream and snapshot request
   counters are read before and after each phase;
4. reads the measured process's memory (and how much it grew since before
   the viewers connected) and closes every viewer.

Raw sockets (asyncio protocols) and `bench.multipart` keep the viewers'
own cost low; the JSON includes this process's CPU share so a saturated
client shows. Any failure (a viewer refused, no frame in time, an
unparsable stream) exits non-zero with a message: a broken run.
"""

# ruff: noqa: T201 - the result line is this tool's output

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
import json
import random
import resource
import sys
import time
from typing import Any

import aiohttp

from .frames import parse_stamp
from .multipart import ParseError, Part, ResponseHead, ResponseReader
from .stats import CpuMeter, proc_memory_kb, summarize

CONNECT_TIMEOUT = 10.0
FIRST_FRAME_TIMEOUT = 30.0
"""For the n viewers of a cold stream (HA's camera opens n upstreams)."""
LATE_TIMEOUT = 5.0
STATUS_PERIOD = 0.25


class RunError(Exception):
    """The run is broken (not merely slow)."""


@dataclass(slots=True)
class RunConfig:
    """What `bench.ha` asks of one run."""

    system: str
    n: int
    host: str
    port: int
    stream_path: str
    still_path: str
    pid: int
    """The measured process (Home Assistant or the floor)."""
    status_url: str
    """The simulated camera's counters."""
    headers: dict[str, str] = field(default_factory=dict)
    settle_s: float = 1.0
    window_s: float = 8.0
    late_joiners: int = 20
    stills: int = 30
    seed: int = 0

    @classmethod
    def from_json(cls, text: str) -> RunConfig:
        """Read a config from its JSON."""
        return cls(**json.loads(text))


class _Run:
    """State every viewer of a run shares."""

    def __init__(self) -> None:
        self.measuring = False
        self.latencies_ns: list[int] = []
        self.unstamped = 0
        self.parse_errors: list[str] = []


class Viewer(asyncio.Protocol):
    """One viewer's connection: sends the request, counts and times frames."""

    def __init__(self, run: _Run, request: bytes) -> None:
        """Prepare a viewer that sends ``request`` once connected."""
        self._run = run
        self._request = request
        self._now = 0
        self.transport: asyncio.Transport | None = None
        self.reader = ResponseReader(self._on_part, self._on_head)
        self.head: ResponseHead | None = None
        self.frames = 0
        self.window_frames = 0
        self.first_frame = asyncio.get_running_loop().create_future()
        """Resolves with the receive time (monotonic ns) of the first frame."""
        self.lost = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Send the request."""
        self.transport = transport  # type: ignore[assignment]
        transport.write(self._request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        """Parse what arrived; frames completed now are stamped now."""
        self._now = time.monotonic_ns()
        try:
            self.reader.feed(data)
        except ParseError as err:
            self._run.parse_errors.append(str(err))
            if self.transport is not None:
                self.transport.close()

    def _on_head(self, head: ResponseHead) -> None:
        # An error's body is kept by the reader; `describe` shows it.
        self.head = head

    def _on_part(self, part: Part) -> None:
        if not part.content_type.startswith("image/"):
            return
        self.frames += 1
        if not self.first_frame.done():
            self.first_frame.set_result(self._now)
        run = self._run
        if not run.measuring:
            return
        self.window_frames += 1
        stamp = parse_stamp(part.head)
        if stamp is None:
            run.unstamped += 1
            return
        run.latencies_ns.append(self._now - stamp[1])

    def connection_lost(self, exc: Exception | None) -> None:
        """Note that the server or we hung up."""
        if not self.lost.done():
            self.lost.set_result(exc)
        if not self.first_frame.done():
            self.first_frame.set_exception(
                RunError(f"connection ended before a frame: {self.describe()}")
            )

    def describe(self) -> str:
        """Return the response status and error body, for messages."""
        if self.head is None:
            return "no response"
        body = bytes(self.reader.error_body[:300]).decode("utf-8", "replace")
        return f"HTTP {self.head.status} {body!r}".strip()

    def close(self) -> None:
        """Hang up."""
        if self.transport is not None:
            self.transport.close()


def _request(config: RunConfig, path: str) -> bytes:
    lines = [f"GET {path} HTTP/1.1", f"Host: {config.host}:{config.port}"]
    lines += [f"{name}: {value}" for name, value in config.headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def _connect(run: _Run, config: RunConfig) -> Viewer:
    loop = asyncio.get_running_loop()
    viewer = Viewer(run, _request(config, config.stream_path))
    async with asyncio.timeout(CONNECT_TIMEOUT):
        await loop.create_connection(lambda: viewer, config.host, config.port)
    return viewer


class _Camera:
    """The simulated camera's /status counters, sampled."""

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self._session = session
        self._url = url
        self.max_streams = 0
        """The most streams seen at once, over the whole run."""
        self.window_streams = 0
        """The most streams seen at once during the window."""
        self.in_window = False

    async def status(self) -> dict[str, Any]:
        async with self._session.get(self._url) as resp:
            resp.raise_for_status()
            status: dict[str, Any] = await resp.json()
        streams = int(status["active_streams"])
        self.max_streams = max(self.max_streams, streams)
        if self.in_window:
            self.window_streams = max(self.window_streams, streams)
        return status

    async def sample(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.status()
            try:
                async with asyncio.timeout(STATUS_PERIOD):
                    await stop.wait()
            except TimeoutError:
                pass


def _requests(status: dict[str, Any]) -> int:
    return int(status["stream_requests"]) + int(status["still_requests"])


async def _window(
    run: _Run, config: RunConfig, viewers: list[Viewer], camera: _Camera
) -> dict[str, Any]:
    """Measure the steady state for ``window_s``."""
    camera.in_window = True
    before = await camera.status()
    stop = asyncio.Event()
    sampler = asyncio.create_task(camera.sample(stop))
    cpu = CpuMeter(config.pid)
    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.monotonic()
    run.measuring = True
    await asyncio.sleep(config.window_s)
    run.measuring = False
    elapsed = time.monotonic() - t0
    cpu_ms = cpu.elapsed_ms()
    usage1 = resource.getrusage(resource.RUSAGE_SELF)
    stop.set()
    await sampler
    after = await camera.status()
    camera.in_window = False
    client_cpu = (
        usage1.ru_utime - usage0.ru_utime + usage1.ru_stime - usage0.ru_stime
    ) / elapsed
    frames = sum(v.window_frames for v in viewers)
    per_viewer = [v.window_frames for v in viewers]
    return {
        "window_s": elapsed,
        "frames": frames,
        "frames_per_viewer_min": min(per_viewer),
        "frames_per_viewer_max": max(per_viewer),
        "fps_per_viewer": frames / len(viewers) / elapsed,
        "cpu_ms": cpu_ms,
        "latency_ms": summarize([ns / 1e6 for ns in run.latencies_ns]),
        "unstamped": run.unstamped,
        "client_cpu_pct": client_cpu * 100,
        "window_upstream_requests": _requests(after) - _requests(before),
        "camera_frames_sent": after["frames_sent"] - before["frames_sent"],
    }


async def _late_joiners(
    run: _Run, config: RunConfig, camera: _Camera, rng: random.Random
) -> dict[str, Any]:
    """Time new viewers' first frames while the stream is warm."""
    before = await camera.status()
    times: list[float] = []
    for _ in range(config.late_joiners):
        await asyncio.sleep(rng.uniform(0.04, 0.14))  # various phases of the tick
        started = time.monotonic_ns()
        viewer = await _connect(run, config)
        try:
            async with asyncio.timeout(LATE_TIMEOUT):
                received = await viewer.first_frame
        except TimeoutError:
            raise RunError(
                f"a late joiner got no frame in {LATE_TIMEOUT:g} s: {viewer.describe()}"
            ) from None
        finally:
            viewer.close()
        times.append((received - started) / 1e6)
    after = await camera.status()
    return {
        "first_frame_ms": summarize(times),
        "late_upstream_requests": _requests(after) - _requests(before),
    }


async def _stills(
    config: RunConfig, camera: _Camera, rng: random.Random
) -> dict[str, Any]:
    """Time still images while the stream is warm (one kept-alive connection)."""
    before = await camera.status()
    times: list[float] = []
    url = f"http://{config.host}:{config.port}{config.still_path}"
    async with aiohttp.ClientSession(headers=config.headers) as session:
        for _ in range(config.stills):
            await asyncio.sleep(rng.uniform(0.02, 0.06))
            started = time.monotonic_ns()
            async with session.get(url) as resp:
                body = await resp.read()
                if resp.status != 200 or not body.startswith(b"\xff\xd8"):
                    raise RunError(f"still: HTTP {resp.status} {body[:200]!r}")
            times.append((time.monotonic_ns() - started) / 1e6)
    after = await camera.status()
    return {
        "still_ms": summarize(times),
        "still_upstream_requests": _requests(after) - _requests(before),
    }


async def run(config: RunConfig) -> dict[str, Any]:
    """Do one run; return its figures."""
    shared = _Run()
    rng = random.Random(config.seed)  # noqa: S311 - timing jitter
    viewers: list[Viewer] = []
    async with aiohttp.ClientSession() as status_session:
        camera = _Camera(status_session, config.status_url)
        rss_before = proc_memory_kb(config.pid).get("VmRSS", 0)
        try:
            viewers = list(
                await asyncio.gather(
                    *(_connect(shared, config) for _ in range(config.n))
                )
            )
            try:
                async with asyncio.timeout(FIRST_FRAME_TIMEOUT):
                    await asyncio.gather(*(v.first_frame for v in viewers))
            except TimeoutError:
                waiting = [v.describe() for v in viewers if not v.first_frame.done()]
                raise RunError(
                    f"{len(waiting)} of {config.n} viewers got no frame in "
                    f"{FIRST_FRAME_TIMEOUT:g} s: {waiting[:3]}"
                ) from None
            await asyncio.sleep(config.settle_s)
            result: dict[str, Any] = {"system": config.system, "n": config.n}
            result.update(await _window(shared, config, viewers, camera))
            result.update(await _late_joiners(shared, config, camera, rng))
            result.update(await _stills(config, camera, rng))
            ended = [v for v in viewers if v.lost.done()]
            if ended:
                raise RunError(
                    f"{len(ended)} viewers were cut off during the run: "
                    f"{ended[0].describe()}"
                )
            if shared.parse_errors:
                raise RunError(f"unparsable stream: {shared.parse_errors[0]}")
            memory = proc_memory_kb(config.pid)
            result["rss_mb"] = memory.get("VmRSS", 0) / 1024
            result["rss_growth_mb"] = (memory.get("VmRSS", 0) - rss_before) / 1024
            result["hwm_mb"] = memory.get("VmHWM", 0) / 1024
            result["upstream_streams"] = camera.window_streams
            result["upstream_streams_max"] = camera.max_streams
        finally:
            for viewer in viewers:
                viewer.close()
    return result


def main(argv: list[str] | None = None) -> None:
    """Entry point: one run from the JSON config in argv; one JSON line out."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        raise SystemExit("usage: python -m bench.viewers '<run config JSON>'")
    config = RunConfig.from_json(args[0])
    try:
        result = asyncio.run(run(config))
    except (RunError, OSError, aiohttp.ClientError, TimeoutError) as err:
        print(f"bench.viewers: {config.system} n={config.n}: {err}", file=sys.stderr)
        raise SystemExit(1) from None
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
