"""Tests for scripts/bench's pure parts: statistics, frames, the viewers' parser,
the floor's fan-out, the report, and the shared camera clock it relies on.

None of these start Home Assistant. The whole tool's smoke test (about a
minute and a half) runs only when asked::

    PRINTCAM_BENCH_SMOKE=1 .venv/bin/python -m pytest tests/test_bench.py -k smoke
"""

from __future__ import annotations

import asyncio
import io
import json
import os
from pathlib import Path
import subprocess
import sys
import time
from typing import Any

from hypothesis import given, settings, strategies as st
from PIL import Image
import pytest

from bench import floor as floor_module, ha, report
from bench.frames import STAMP_PREFIX_BYTES, make_pictures, parse_stamp, stamp
from bench.multipart import (
    ChunkedDecoder,
    MultipartReader,
    ParseError,
    Part,
    ResponseReader,
    boundary_of,
)
from bench.stats import (
    CpuMeter,
    cpu_delta_ms,
    per_1000,
    percentile,
    proc_cpu_ms,
    proc_memory_kb,
    ratio,
    summarize,
)
from bench.viewers import RunConfig, Viewer, _Run
from printer_sim import MjpegPrinter, solid_jpeg

ROOT = Path(__file__).resolve().parent.parent
JPEG = solid_jpeg(64, 48, 100)

# ------------------------------------------------------------------- stats


def test_percentile_interpolates_like_numpy() -> None:
    values = [4.0, 1.0, 3.0, 2.0]
    assert percentile(values, 0) == 1.0
    assert percentile(values, 100) == 4.0
    assert percentile(values, 50) == 2.5
    # position (4 - 1) * 0.99 = 2.97: between 3 and 4
    assert percentile(values, 99) == pytest.approx(3.97)
    assert percentile([7.0], 95) == 7.0
    hundred = [float(i) for i in range(1, 101)]
    assert percentile(hundred, 95) == pytest.approx(95.05)


def test_percentile_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)
    with pytest.raises(ValueError, match="within"):
        percentile([1.0], 101)


def test_summarize() -> None:
    assert summarize([]) == {
        "count": 0,
        "mean": None,
        "p50": None,
        "p95": None,
        "p99": None,
        "max": None,
    }
    summary = summarize([3.0, 1.0, 2.0])
    assert summary["count"] == 3
    assert summary["mean"] == 2.0
    assert summary["p50"] == 2.0
    assert summary["max"] == 3.0


def test_per_1000_and_ratio() -> None:
    assert per_1000(150.0, 3000) == 50.0
    assert per_1000(10.0, 0) is None
    assert ratio(1.0, 4.0) == 0.25
    assert ratio(None, 4.0) is None
    assert ratio(1.0, 0.0) is None


def test_cpu_delta_counts_new_threads_from_zero() -> None:
    before = {1: 1_000_000, 2: 5_000_000}
    after = {1: 3_000_000, 2: 5_000_000, 3: 4_000_000}  # thread 3 started
    assert cpu_delta_ms(before, after) == 6.0


def test_proc_readers_on_this_process() -> None:
    meter = CpuMeter(os.getpid())
    ticks = proc_cpu_ms(os.getpid())
    end = time.process_time() + 0.05
    while time.process_time() < end:
        pass
    assert meter.elapsed_ms() >= 30
    assert proc_cpu_ms(os.getpid()) >= ticks
    memory = proc_memory_kb(os.getpid())
    assert memory["VmRSS"] > 0
    assert memory["VmHWM"] >= memory["VmRSS"]


# ------------------------------------------------------------------ frames


def test_stamp_round_trip_and_jpeg_still_decodes() -> None:
    frame = stamp(JPEG, 42, now_ns=123_456_789)
    assert parse_stamp(frame[:STAMP_PREFIX_BYTES]) == (42, 123_456_789)
    assert parse_stamp(JPEG) is None
    image = Image.open(io.BytesIO(frame))
    image.load()
    assert image.size == (64, 48)
    # The default stamp is CLOCK_MONOTONIC now.
    before = time.monotonic_ns()
    stamped = parse_stamp(stamp(JPEG, 1))
    assert stamped is not None
    assert before <= stamped[1] <= time.monotonic_ns()


def test_make_pictures_hits_the_size() -> None:
    pictures = make_pictures(count=2, size=60_000)
    assert len(pictures) == 2
    assert pictures[0] != pictures[1]
    assert all(40_000 < len(p) <= 66_000 for p in pictures)
    assert len(pictures[0]) <= 60_000  # the searched one fits exactly
    Image.open(io.BytesIO(pictures[1])).load()


# --------------------------------------------------------------- multipart


def part_bytes(
    body: bytes, *, boundary: bytes = b"frame", length: bool = True
) -> bytes:
    lines = [b"--" + boundary, b"Content-Type: image/jpeg"]
    if length:
        lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body + b"\r\n"


def chunked(body: bytes, size: int) -> bytes:
    out = b""
    for pos in range(0, len(body), size):
        piece = body[pos : pos + size]
        out += b"%x;ext=1\r\n" % len(piece) + piece + b"\r\n"
    return out + b"0\r\n\r\n"


FRAMES = [stamp(JPEG, i, now_ns=1000 + i) for i in range(5)]
MULTIPART_HEAD = b"Content-Type: multipart/x-mixed-replace; boundary=frame\r\n"


def response(*, chunk: int | None, frames: list[bytes] = FRAMES) -> bytes:
    body = b"".join(part_bytes(f) for f in frames)
    if chunk is None:
        return b"HTTP/1.0 200 OK\r\n" + MULTIPART_HEAD + b"\r\n" + body
    return (
        b"HTTP/1.1 200 OK\r\n"
        + MULTIPART_HEAD
        + b"Transfer-Encoding: chunked\r\n\r\n"
        + chunked(body, chunk)
    )


def read_all(data: bytes, splits: list[int], *, keep: bool = False) -> list[Part]:
    parts: list[Part] = []
    reader = ResponseReader(parts.append, keep_body=keep)
    last = 0
    for cut in sorted(set(splits)):
        reader.feed(data[last:cut])
        last = cut
    reader.feed(data[last:])
    return parts


@pytest.mark.parametrize("chunk", [None, 7, 1000, 100_000])
@pytest.mark.parametrize("step", [1, 3, 64, 4096])
def test_response_reader_any_split(chunk: int | None, step: int) -> None:
    data = response(chunk=chunk)
    parts = read_all(data, list(range(0, len(data), step)), keep=True)
    assert [p.body for p in parts] == FRAMES
    assert [p.length for p in parts] == [len(f) for f in FRAMES]
    assert [parse_stamp(p.head) for p in parts] == [(i, 1000 + i) for i in range(5)]
    assert all(p.content_type == "image/jpeg" for p in parts)


@settings(max_examples=60, deadline=None)
@given(
    chunk=st.one_of(st.none(), st.integers(1, 3000)),
    splits=st.lists(st.integers(0, 20_000), max_size=30),
)
def test_response_reader_property(chunk: int | None, splits: list[int]) -> None:
    data = response(chunk=chunk)
    parts = read_all(data, [s % (len(data) + 1) for s in splits])
    assert [p.head for p in parts] == [f[:64] for f in FRAMES]
    assert all(p.body is None for p in parts)


def test_parts_without_content_length_and_lf_only() -> None:
    parts: list[Part] = []
    reader = MultipartReader("frame", parts.append, keep_body=True)
    body = part_bytes(FRAMES[0], length=False) + part_bytes(FRAMES[1], length=False)
    body += b"--frame\nContent-Type: image/jpeg\n\n" + FRAMES[2] + b"\n--frame--\r\n"
    for pos in range(0, len(body), 50):
        reader.feed(body[pos : pos + 50])
    assert [p.body for p in parts] == FRAMES[:3]
    assert reader.done
    reader.feed(b"anything after the end")
    assert reader.parts == 3


def test_boundary_inferred_and_garbage_skipped() -> None:
    parts: list[Part] = []
    reader = MultipartReader(None, parts.append)
    reader.feed(b"preamble text\r\n" + part_bytes(FRAMES[0], boundary=b"xyz"))
    reader.feed(b"junk\r\n" + part_bytes(FRAMES[1], boundary=b"xyz"))
    # A delimiter with another boundary is not ours.
    reader.feed(
        part_bytes(b"other", boundary=b"nope") + part_bytes(FRAMES[2], boundary=b"xyz")
    )
    assert reader.boundary == "xyz"
    assert [p.length for p in parts] == [len(FRAMES[0]), len(FRAMES[1]), len(FRAMES[2])]
    assert reader.garbage_bytes > 0


def test_boundary_of() -> None:
    assert boundary_of("multipart/x-mixed-replace; boundary=frame") == "frame"
    assert boundary_of('multipart/x-mixed-replace;BOUNDARY="--b"') == "--b"
    assert boundary_of("multipart/x-mixed-replace") is None


def test_text_parts_and_empty_parts_are_reported() -> None:
    parts: list[Part] = []
    reader = MultipartReader("frame", parts.append, keep_body=True)
    reader.feed(
        b"--frame\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nerror\r\n"
        b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: 0\r\n\r\n\r\n"
    )
    assert [(p.content_type, p.body) for p in parts] == [
        ("text/plain", b"error"),
        ("image/jpeg", b""),
    ]


def test_keep_body_copies_a_bytearray() -> None:
    parts: list[Part] = []
    reader = MultipartReader("frame", parts.append, keep_body=True)
    data = bytearray(part_bytes(FRAMES[0]))
    reader.feed(data)
    data[:] = b"x" * len(data)
    assert parts[0].body == FRAMES[0]


def test_error_response_body_is_kept() -> None:
    heads = []
    reader = ResponseReader(lambda part: None, heads.append)
    reader.feed(b"HTTP/1.1 401 Unauthorized\r\nContent-Type: text/plain\r\n")
    reader.feed(b"Content-Length: 12\r\n\r\nunauthorized")
    assert heads[0].status == 401
    assert reader.head is not None
    assert not reader.head.chunked
    assert bytes(reader.error_body) == b"unauthorized"
    assert reader.multipart is None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"SSH-2.0-OpenSSH\r\n\r\n", "not an HTTP response"),
        (b"HTTP/1.1 abc OK\r\n\r\n", "bad status line"),
        (
            b"HTTP/1.1 200 OK\r\n" + MULTIPART_HEAD + b"\r\n"
            b"--frame\r\nContent-Length: x\r\n\r\n",
            "bad Content-Length",
        ),
        (
            b"HTTP/1.1 200 OK\r\n" + MULTIPART_HEAD + b"\r\n"
            b"--frame\r\nContent-Length: -1\r\n\r\n",
            "bad Content-Length",
        ),
        (
            b"HTTP/1.1 200 OK\r\n"
            + MULTIPART_HEAD
            + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n",
            "bad chunk size",
        ),
        (b"HTTP/1.1 200 OK\r\n" + b"X: " + b"y" * 20_000, "too long"),
    ],
)
def test_parse_errors(data: bytes, message: str) -> None:
    with pytest.raises(ParseError, match=message):
        ResponseReader(lambda part: None).feed(data)


def test_chunked_decoder_errors_and_end() -> None:
    out: list[bytes] = []
    decoder = ChunkedDecoder(lambda view: out.append(bytes(view)))
    decoder.feed(b"3\r\nabc\n4\r\ndefg\r\n0\r\n\r\nignored")
    assert out == [b"abc", b"defg"]
    assert decoder.done
    with pytest.raises(ParseError, match="CRLF"):
        ChunkedDecoder(lambda view: None).feed(b"1\r\naXY")
    with pytest.raises(ParseError, match="too long"):
        ChunkedDecoder(lambda view: None).feed(b"1" * 5000)


# ----------------------------------------------------------------- viewers


class FakeTransport:
    def __init__(self, buffered: int = 0) -> None:
        self.written: list[bytes] = []
        self.closed = False
        self.buffered = buffered

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_write_buffer_size(self) -> int:
        return self.buffered


async def test_viewer_times_frames_in_the_window_only() -> None:
    run = _Run()
    viewer = Viewer(run, b"GET / HTTP/1.1\r\n\r\n")
    transport = FakeTransport()
    viewer.connection_made(transport)  # type: ignore[arg-type]
    assert transport.written == [b"GET / HTTP/1.1\r\n\r\n"]
    now = time.monotonic_ns()
    frames = [stamp(JPEG, i, now_ns=now - 2_000_000) for i in range(3)]
    viewer.data_received(
        b"HTTP/1.1 200 OK\r\n" + MULTIPART_HEAD + b"\r\n" + part_bytes(frames[0])
    )
    assert viewer.frames == 1
    assert viewer.first_frame.done()
    assert run.latencies_ns == []  # not measuring yet
    run.measuring = True
    viewer.data_received(part_bytes(frames[1]) + part_bytes(JPEG))
    assert viewer.window_frames == 2
    assert run.unstamped == 1
    assert len(run.latencies_ns) == 1
    assert 2_000_000 <= run.latencies_ns[0] < 2_000_000 + 5_000_000_000
    viewer.data_received(b"--frame\r\nContent-Length: zz\r\n\r\n")
    assert run.parse_errors
    assert transport.closed
    viewer.connection_lost(None)
    assert viewer.lost.done()


async def test_viewer_refused_reports_the_answer() -> None:
    viewer = Viewer(_Run(), b"GET / HTTP/1.1\r\n\r\n")
    viewer.data_received(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 4\r\n\r\nnope")
    viewer.connection_lost(None)
    with pytest.raises(Exception, match="401 'nope'"):
        viewer.first_frame.result()


def test_run_config_from_json() -> None:
    config = RunConfig.from_json(
        json.dumps(
            {
                "system": "floor",
                "n": 5,
                "host": "127.0.0.1",
                "port": 1,
                "stream_path": "/stream",
                "still_path": "/still",
                "pid": 1,
                "status_url": "http://127.0.0.1:2/status",
            }
        )
    )
    assert config.n == 5
    assert config.window_s == 8.0
    assert config.headers == {}


# ------------------------------------------------------------------- floor


def test_floor_writes_each_part_once_and_skips_a_full_viewer() -> None:
    floor = floor_module.Floor()
    fast, slow = FakeTransport(), FakeTransport(buffered=floor_module.MAX_BUFFER + 1)
    floor.viewers = {fast, slow}  # type: ignore[arg-type]
    floor.on_part(Part("image/jpeg", len(FRAMES[0]), FRAMES[0][:64], FRAMES[0]))
    floor.on_part(Part("text/plain", 5, b"error", b"error"))
    assert floor.frames == 1
    assert floor.skipped == 1
    assert slow.written == []
    assert fast.written == [floor.latest_part]
    assert floor.latest_jpeg == FRAMES[0]
    # What it writes is a part the viewers' reader reads back.
    parts: list[Part] = []
    MultipartReader("floorframe", parts.append, keep_body=True).feed(fast.written[0])
    assert parts[0].body == FRAMES[0]


# ------------------------------------------------------------------ report


def result(system: str, n: int, **overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "system": system,
        "n": n,
        "frames": 1000 * n,
        "cpu_ms": {"floor": 50.0, "mjpeg": 200.0, "printcam": 70.0}[system] * n,
        "fps_per_viewer": 30.0,
        "latency_ms": {"p50": 1.0, "p95": 3.0, "p99": 4.0},
        "first_frame_ms": {"p50": 1.0, "p95": 2.0},
        "still_ms": {"p50": 1.0, "p95": 2.0},
        "upstream_streams": n if system == "mjpeg" else 1,
        "upstream_streams_max": n + 1 if system == "mjpeg" else 1,
        "window_upstream_requests": 0,
        "late_upstream_requests": 20 if system == "mjpeg" else 0,
        "still_upstream_requests": 30 if system == "mjpeg" else 0,
        "rss_mb": 180.0,
        "rss_growth_mb": 1.5,
        "client_cpu_pct": 5.0,
    }
    base.update(overrides)
    return base


def all_results(**printcam: Any) -> list[dict[str, Any]]:
    return [
        result(system, n, **(printcam if system == "printcam" else {}))
        for n in (1, 5, 20, 50)
        for system in report.SYSTEMS
    ]


def test_targets_all_pass() -> None:
    n, targets = report.evaluate_targets(all_results())
    assert n == 50
    assert [t.verdict for t in targets] == ["PASS"] * 6
    assert targets[0].measured == "0.35x (limit 0.50x)"


def test_targets_fail_and_missing() -> None:
    _, targets = report.evaluate_targets(
        all_results(
            cpu_ms=5000.0 * 50,
            latency_ms={"p50": 1.0, "p99": 9.0},
            first_frame_ms={"p95": 11.0},
            still_upstream_requests=1,
            upstream_streams_max=2,
        )
    )
    assert [t.verdict for t in targets] == ["FAIL"] * 6
    # Without the floor and HA's camera, the ratios cannot be evaluated.
    only = [r for r in all_results() if r["system"] == "printcam"]
    n, targets = report.evaluate_targets(only)
    assert [t.verdict for t in targets][:3] == ["n/a"] * 3
    assert report.evaluate_targets([]) == (0, [])


def test_targets_at_the_largest_n_when_50_is_missing() -> None:
    results = [r for r in all_results() if r["n"] <= 5]
    n, _ = report.evaluate_targets(results)
    assert n == 5


def test_console_table_and_progress_line() -> None:
    text = report.console_table(all_results())
    assert "PrintCam / HA mjpeg: CPU 0.35x" in text
    assert "Targets at N = 50:" in text
    assert text.count("PASS") == 6
    line = report.progress_line(3, 12, result("printcam", 5), 10.04)
    assert line.startswith("[ 3/12] N=5   printcam")
    assert "cpu   70.0 ms/1000 frames" in line
    assert "(30.0 fps/viewer, 10.0 s)" in line


def test_write_markdown_and_plot(tmp_path: Path) -> None:
    meta = {
        "date": "2025-05-01 12:00 UTC",
        "machine": "a test machine",
        "python": "3.13.0",
        "home_assistant": "2025.4.4",
        "integration": "`x`",
        "fps": 30.0,
        "frame_kb": 99.5,
        "note": "noisy",
    }
    report.write_markdown(tmp_path / "b.md", all_results(), meta, "b.png")
    text = (tmp_path / "b.md").read_text()
    assert "## Targets at N = 50" in text
    assert "![Benchmark plot](b.png)" in text
    assert "### N = 1 viewer\n" in text
    assert "### N = 50 viewers" in text
    assert (
        "| upstream connections (camera streams while N watch) | 1 | 50 | 1 |" in text
    )
    assert "noisy" in text
    assert "| 180 (+1.5) | 180 (+1.5) | 180 (+1.5) |" in text
    report.write_plot(tmp_path / "b.png", all_results(), "title")
    with Image.open(tmp_path / "b.png") as image:
        assert image.format == "PNG"
        assert image.size[0] > 500


# -------------------------------------------------------------- bench.ha


def test_run_configs() -> None:
    setup = ha.Setup(
        ha_pid=10,
        ha_port=8123,
        token="t",
        floor_pid=11,
        floor_port=9000,
        cameras={
            name: {"status_url": f"http://127.0.0.1/{name}/status"}
            for name in report.SYSTEMS
        },
        entities={"mjpeg": "camera.bench_mjpeg", "printcam": "camera.bench_printcam"},
    )
    floor = ha.run_config(setup, ha.QUICK, "floor", 5)
    assert (floor["port"], floor["pid"], floor["stream_path"]) == (9000, 11, "/stream")
    assert floor["status_url"] == "http://127.0.0.1/floor/status"
    printcam = RunConfig(**ha.run_config(setup, ha.FULL, "printcam", 50))
    assert printcam.stream_path == "/api/camera_proxy_stream/camera.bench_printcam"
    assert printcam.still_path == "/api/camera_proxy/camera.bench_printcam"
    assert printcam.headers == {"Authorization": "Bearer t"}
    assert (printcam.pid, printcam.window_s) == (10, 8.0)


def test_parse_args_defaults() -> None:
    args = ha.parse_args([])
    assert args.integration == ROOT / "custom_components" / "printcam"
    assert args.out == ROOT / "docs"
    assert not args.quick
    with pytest.raises(SystemExit):
        ha.parse_args(["--rev", "HEAD", "--integration", "x"])


def test_checkout_extracts_a_revision(tmp_path: Path) -> None:
    path = ha.checkout("HEAD", tmp_path / "co")
    assert json.loads((path / "manifest.json").read_text())["domain"] == "printcam"
    with pytest.raises(ha.BenchError, match="no-such-rev"):
        ha.checkout("no-such-rev", tmp_path / "other")


# ------------------------------------------------- the shared camera clock


def test_next_tick_is_strictly_after_now() -> None:
    printer = MjpegPrinter(shared_clock=True)
    assert printer._next_tick(100.0, 10.0) == pytest.approx(100.1)  # sets the epoch
    assert printer._next_tick(100.25, 10.0) == pytest.approx(100.3)
    assert printer._next_tick(100.3, 10.0) == pytest.approx(100.4)


async def test_shared_clock_streams_send_on_the_same_ticks(
    socket_enabled: None,
) -> None:
    fps = 20.0
    printer = MjpegPrinter(
        shared_clock=True, fps=fps, max_clients=None, record_frames=False
    )
    await printer.start()
    loop = asyncio.get_running_loop()
    try:

        async def first_frames(count: int) -> list[float]:
            times: list[float] = []
            parts: list[Part] = []
            reader = ResponseReader(parts.append)
            stream, writer = await asyncio.open_connection(printer.host, printer.port)
            writer.write(b"GET /stream HTTP/1.0\r\n\r\n")
            try:
                while len(times) < count:
                    data = await stream.read(65536)
                    assert data
                    reader.feed(data)
                    times += [loop.time()] * (len(parts) - len(times))
            finally:
                writer.close()
            return times

        one, two = await asyncio.gather(first_frames(4), first_frames(4))
        assert printer.max_active_streams == 2
        # One camera clock: each frame of the second stream arrives with the
        # first's, and consecutive frames are a tick apart, not sent at once.
        assert max(abs(a - b) for a, b in zip(one, two, strict=True)) < 0.5 / fps
        assert one[-1] - one[0] > 2 / fps
    finally:
        await printer.close()


# --------------------------------------------------------------- smoke test


@pytest.mark.skipif(
    not os.environ.get("PRINTCAM_BENCH_SMOKE"),
    reason="the whole benchmark (HA, ~90 s): set PRINTCAM_BENCH_SMOKE=1",
)
def test_smoke_quick_benchmark(tmp_path: Path) -> None:
    done = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "bench.ha", "--quick", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("] N=") == 6
    assert "Targets at N = 5:" in done.stdout
    assert (tmp_path / "benchmark.md").read_text().startswith("# PrintCam benchmark")
    assert (tmp_path / "benchmark.png").stat().st_size > 10_000
