"""Tables, targets, the Markdown report and the plot of a benchmark.

Input: the run results `bench.viewers` printed (one dict per system and
N) and a few facts about the machine and the code measured. Pure apart
from writing files.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from .stats import per_1000, ratio

__all__ = [
    "LABELS",
    "SYSTEMS",
    "Target",
    "console_table",
    "evaluate_targets",
    "progress_line",
    "write_markdown",
    "write_plot",
]

SYSTEMS: Final = ("floor", "mjpeg", "printcam")
LABELS: Final = {
    "floor": "raw-socket floor",
    "mjpeg": "HA mjpeg camera",
    "printcam": "PrintCam",
}
MISSING: Final = "-"
"""Shown for a figure that is missing."""
TARGET_N: Final = 50
"""The number of viewers the targets are stated for."""

Result = dict[str, Any]


def cpu_per_1000(result: Result) -> float | None:
    """Return the measured process's CPU ms per 1000 delivered frames."""
    return per_1000(float(result["cpu_ms"]), int(result["frames"]))


def _stat(result: Result | None, key: str, field: str) -> float | None:
    if result is None:
        return None
    value = result.get(key, {}).get(field)
    return None if value is None else float(value)


def _fmt(value: float | None, digits: int = 1) -> str:
    return MISSING if value is None else f"{value:.{digits}f}"


def _fmt_ratio(value: float | None) -> str:
    return MISSING if value is None else f"{value:.2f}x"


def by_n(results: Sequence[Result]) -> dict[int, dict[str, Result]]:
    """Return the results as {N: {system: result}}, N ascending."""
    table: dict[int, dict[str, Result]] = {}
    for result in results:
        table.setdefault(int(result["n"]), {})[str(result["system"])] = result
    return dict(sorted(table.items()))


def progress_line(index: int, total: int, result: Result, seconds: float) -> str:
    """Return the one line printed after each run."""
    return (
        f"[{index:>2}/{total}] N={result['n']:<3} {result['system']:<9}"
        f" cpu {_fmt(cpu_per_1000(result)):>6} ms/1000 frames"
        f"  latency p50 {_fmt(_stat(result, 'latency_ms', 'p50')):>5}"
        f" p99 {_fmt(_stat(result, 'latency_ms', 'p99')):>5} ms"
        f"  first frame p95 {_fmt(_stat(result, 'first_frame_ms', 'p95')):>5} ms"
        f"  still p95 {_fmt(_stat(result, 'still_ms', 'p95')):>5} ms"
        f"  upstream {result['upstream_streams']}"
        f"  ({result['fps_per_viewer']:.1f} fps/viewer, {seconds:.1f} s)"
    )


# ----------------------------------------------------------------- targets


@dataclass(frozen=True, slots=True)
class Target:
    """One of the project's targets, as measured."""

    name: str
    measured: str
    passed: bool | None
    """None: could not be evaluated (a system or figure is missing)."""

    @property
    def verdict(self) -> str:
        """Return PASS, FAIL or n/a."""
        if self.passed is None:
            return "n/a"
        return "PASS" if self.passed else "FAIL"


def _check(
    name: str, value: float | None, limit: float | None, show: Callable[[float], str]
) -> Target:
    if value is None or limit is None:
        return Target(name, MISSING, None)
    return Target(name, f"{show(value)} (limit {show(limit)})", value <= limit)


def evaluate_targets(results: Sequence[Result]) -> tuple[int, list[Target]]:
    """Evaluate the targets at N = 50 (or the largest N measured).

    Returns that N and the targets. The benchmark reports them; it never
    fails because of them.
    """
    table = by_n(results)
    if not table:
        return 0, []
    n = TARGET_N if TARGET_N in table else max(table)
    row = table[n]
    pc, ha, floor = row.get("printcam"), row.get("mjpeg"), row.get("floor")
    pc_cpu = cpu_per_1000(pc) if pc else None
    ha_cpu = cpu_per_1000(ha) if ha else None
    floor_cpu = cpu_per_1000(floor) if floor else None
    pc_p99 = _stat(pc, "latency_ms", "p99")
    worse = [
        v
        for v in (_stat(ha, "latency_ms", "p99"), _stat(floor, "latency_ms", "p99"))
        if v is not None
    ]
    targets = [
        _check(
            "HA CPU per frame <= 0.5x HA's mjpeg camera",
            ratio(pc_cpu, ha_cpu),
            0.5,
            _fmt_ratio,
        ),
        _check(
            "HA CPU per frame <= 1.5x the raw-socket floor",
            ratio(pc_cpu, floor_cpu),
            1.5,
            _fmt_ratio,
        ),
        _check(
            "p99 frame latency <= 1.25x the worse of HA's camera and the floor",
            pc_p99,
            1.25 * max(worse) if len(worse) == 2 else None,
            lambda v: f"{v:.1f} ms",
        ),
        _check(
            "warm first frame for a late joiner, p95 <= 10 ms",
            _stat(pc, "first_frame_ms", "p95"),
            10.0,
            lambda v: f"{v:.1f} ms",
        ),
    ]
    still_p95 = _stat(pc, "still_ms", "p95")
    if pc is None or still_p95 is None:
        targets.append(
            Target("warm still p95 <= 5 ms, no new connection", MISSING, None)
        )
    else:
        new = int(pc["still_upstream_requests"])
        targets.append(
            Target(
                "warm still p95 <= 5 ms, no new connection",
                f"{still_p95:.1f} ms (limit 5.0 ms), {new} new upstream requests",
                still_p95 <= 5.0 and new == 0,
            )
        )
    printcam_runs = [row["printcam"] for row in table.values() if "printcam" in row]
    if printcam_runs:
        streams = sorted({int(r["upstream_streams_max"]) for r in printcam_runs})
        new = sum(
            int(r["window_upstream_requests"])
            + int(r["late_upstream_requests"])
            + int(r["still_upstream_requests"])
            for r in printcam_runs
        )
        targets.append(
            Target(
                "one upstream connection at every N",
                f"at most {'/'.join(map(str, streams))} camera stream(s) at once at N = "
                f"{', '.join(str(k) for k in table)}; {new} new requests to the "
                "camera while warm",
                streams == [1] and new == 0,
            )
        )
    else:
        targets.append(Target("one upstream connection at every N", MISSING, None))
    return n, targets


# ------------------------------------------------------------------ tables


def _rows(row: dict[str, Result]) -> list[tuple[str, list[str]]]:
    """Return (label, one cell per system) for one N."""

    def cells(get: Callable[[Result], str]) -> list[str]:
        return [get(row[s]) if s in row else MISSING for s in SYSTEMS]

    def pair(key: str, a: str, b: str) -> Callable[[Result], str]:
        return lambda r: f"{_fmt(_stat(r, key, a))} / {_fmt(_stat(r, key, b))}"

    return [
        (
            "upstream connections (camera streams while N watch)",
            cells(lambda r: str(r["upstream_streams"])),
        ),
        ("CPU ms per 1000 delivered frames", cells(lambda r: _fmt(cpu_per_1000(r)))),
        ("frame latency p50 / p99 (ms)", cells(pair("latency_ms", "p50", "p99"))),
        (
            "warm first frame p50 / p95 (ms)",
            cells(pair("first_frame_ms", "p50", "p95")),
        ),
        ("warm still p50 / p95 (ms)", cells(pair("still_ms", "p50", "p95"))),
        (
            "new upstream requests: late joiners / stills",
            cells(
                lambda r: f"{r['late_upstream_requests']} / {r['still_upstream_requests']}"
            ),
        ),
        (
            "RSS at the end of the window, MB (growth during the run)",
            cells(
                lambda r: f"{_fmt(r['rss_mb'], 0)} ({r.get('rss_growth_mb', 0):+.1f})"
            ),
        ),
        (
            "frames delivered per viewer per s",
            cells(lambda r: _fmt(r["fps_per_viewer"])),
        ),
        ("viewer client CPU (%)", cells(lambda r: _fmt(r["client_cpu_pct"], 0))),
    ]


def _ratio_line(row: dict[str, Result]) -> str:
    pc, ha, floor = row.get("printcam"), row.get("mjpeg"), row.get("floor")
    if pc is None:
        return ""
    pc_cpu = cpu_per_1000(pc)
    pc_p99 = _stat(pc, "latency_ms", "p99")
    parts = []
    if ha is not None:
        parts.append(
            f"PrintCam / HA mjpeg: CPU {_fmt_ratio(ratio(pc_cpu, cpu_per_1000(ha)))},"
            f" p99 {_fmt_ratio(ratio(pc_p99, _stat(ha, 'latency_ms', 'p99')))}"
        )
    if floor is not None:
        parts.append(
            f"PrintCam / floor: CPU {_fmt_ratio(ratio(pc_cpu, cpu_per_1000(floor)))},"
            f" p99 {_fmt_ratio(ratio(pc_p99, _stat(floor, 'latency_ms', 'p99')))}"
        )
    return "; ".join(parts)


def console_table(results: Sequence[Result]) -> str:
    """Return the results as a plain-text table, with the targets."""
    header = (
        f"{'N':>3}  {'system':<16} {'upstream':>8} {'cpu/1000f':>9} {'p50':>6}"
        f" {'p99':>6} {'first95':>7} {'still95':>7} {'rss MB':>7}"
    )
    lines = [header, "-" * len(header)]
    for n, row in by_n(results).items():
        for system in SYSTEMS:
            r = row.get(system)
            if r is None:
                continue
            lines.append(
                f"{n:>3}  {LABELS[system]:<16} {r['upstream_streams']:>8}"
                f" {_fmt(cpu_per_1000(r)):>9}"
                f" {_fmt(_stat(r, 'latency_ms', 'p50')):>6}"
                f" {_fmt(_stat(r, 'latency_ms', 'p99')):>6}"
                f" {_fmt(_stat(r, 'first_frame_ms', 'p95')):>7}"
                f" {_fmt(_stat(r, 'still_ms', 'p95')):>7}"
                f" {_fmt(r['rss_mb'], 0):>7}"
            )
        ratios = _ratio_line(row)
        if ratios:
            lines.append(f"{'':>5}{ratios}")
    target_n, targets = evaluate_targets(results)
    if targets:
        lines += ["", f"Targets at N = {target_n}:"]
        lines += [f"  {t.verdict:<4}  {t.name}: {t.measured}" for t in targets]
    return "\n".join(lines)


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def write_markdown(
    path: Path,
    results: Sequence[Result],
    meta: dict[str, Any],
    plot_name: str | None,
) -> None:
    """Write the report: machine, workload, targets, one table per N, method."""
    target_n, targets = evaluate_targets(results)
    lines = [
        "# PrintCam benchmark",
        "",
        f"Written by `{meta.get('command', 'scripts/bench')}` on {meta['date']}.",
        "The three systems serve the same simulated camera "
        f"({meta['fps']:g} fps, {meta['frame_kb']:.0f} kB JPEG frames) to N "
        "viewers through real sockets on 127.0.0.1; Home Assistant's figures "
        "go through its real HTTP stack (`/api/camera_proxy_stream`, "
        "`/api/camera_proxy`).",
        "",
        "| | |",
        "| --- | --- |",
    ]
    for key, label in (
        ("machine", "machine"),
        ("python", "Python"),
        ("home_assistant", "Home Assistant"),
        ("integration", "PrintCam measured"),
        ("workload", "each run"),
        ("ha_idle", "Home Assistant idle"),
        ("duration", "benchmark took"),
    ):
        if key in meta:
            lines.append(f"| {label} | {meta[key]} |")
    if meta.get("note"):
        lines += ["", meta["note"]]
    if plot_name:
        lines += ["", f"![Benchmark plot]({plot_name})"]
    lines += ["", f"## Targets at N = {target_n}", ""]
    lines += _md_table(
        ["target", "measured", "result"],
        [[t.name, t.measured, f"**{t.verdict}**"] for t in targets],
    )
    lines += [
        "",
        "The benchmark reports these; a missed target does not make it fail.",
        "",
        "## Results",
    ]
    for n, row in by_n(results).items():
        lines += ["", f"### N = {n} viewer{'s' if n != 1 else ''}", ""]
        lines += _md_table(
            ["", *(LABELS[s] for s in SYSTEMS)],
            [[label, *cells] for label, cells in _rows(row)],
        )
        ratios = _ratio_line(row)
        if ratios:
            lines += ["", ratios + "."]
    lines += ["", "## How it is measured", "", *METHOD]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


METHOD: Final = [
    "- **Camera**: `bench.camera`, one `printer_sim.MjpegPrinter` per system"
    " (so each system's connections are counted alone), no client limit,"
    " frames sent on one shared camera clock (a new stream waits for the next"
    " capture, like mjpg-streamer). The frames are real JPEGs encoded once;"
    " each carries, in a comment segment, the CLOCK_MONOTONIC time at which"
    " the camera wrote it.",
    "- **Systems**: *HA mjpeg camera* is Home Assistant's built-in `mjpeg`"
    " integration (stream and still URL), *PrintCam* an MJPEG entry of the"
    " integration measured (same URLs), both added through the config-flow"
    " REST API of one Home Assistant process; the *raw-socket floor*"
    " (`bench.floor`) is a minimal asyncio process that reads the stream"
    " once and writes each part to every viewer's socket.",
    "- **Viewers**: `bench.viewers`, a separate process per run, opens N"
    " stream connections, waits for a frame on each and 1 s more, then"
    " measures for the window: frames received, the latency of each frame"
    " (receive time of its last byte minus its stamp), and the CPU time"
    " (all threads, from /proc) of the measured process: Home Assistant, or"
    " the floor process. CPU per 1000 delivered frames is that CPU time over"
    " the frames all viewers received, times 1000.",
    "- **Warm first frame**: with the N viewers still watching, a new viewer"
    " connects and waits for its first frame, then leaves (repeated, at"
    " random phases of the camera clock). **Warm still**: still images over"
    " one kept-alive connection, timed from request to last byte. The"
    " camera's stream and snapshot request counters, read before and after,"
    " show whether they opened anything upstream.",
    "- **Upstream connections**: the most streams the camera served at once"
    " while the N viewers watched (sampled every 0.25 s). The target's check"
    " takes the whole run, late joiners and stills included, and also"
    " requires that no new stream or snapshot request reached the camera"
    " while the stream was warm.",
    "- **RSS**: the measured process's resident memory at the end of the"
    " window, and how much it grew since before the viewers connected. Both"
    " Home Assistant systems live in the same process (both integrations"
    " loaded throughout, runs in the order floor, mjpeg, PrintCam for each"
    " N), and Python keeps memory it once used: a run may reuse what an"
    " earlier run grew, so growth is a hint, not an exact cost.",
    "- The viewer client shares the machine: its own CPU share is in the"
    " tables. Between Home Assistant runs the benchmark waits until the"
    " other system's camera has no stream open.",
]


# -------------------------------------------------------------------- plot


def write_plot(path: Path, results: Sequence[Result], title: str) -> None:
    """Write a PNG: CPU per frame, latency, upstream connections, RSS vs N."""
    # Imported here: only the report needs matplotlib, and never a display.
    import matplotlib as mpl

    mpl.use("Agg")
    import matplotlib.pyplot as plt

    table = by_n(results)
    ns = list(table)
    colors = {"floor": "#7f7f7f", "mjpeg": "#d62728", "printcam": "#1f77b4"}
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    (cpu_ax, lat_ax), (up_ax, rss_ax) = axes

    def series(
        system: str, get: Callable[[Result], float | None]
    ) -> tuple[list[int], list[float]]:
        xs: list[int] = []
        ys: list[float] = []
        for n in ns:
            result = table[n].get(system)
            value = get(result) if result is not None else None
            if value is not None:
                xs.append(n)
                ys.append(value)
        return xs, ys

    for system in SYSTEMS:
        style = {"color": colors[system], "marker": "o", "label": LABELS[system]}
        cpu_ax.plot(*series(system, cpu_per_1000), **style)
        lat_ax.plot(*series(system, lambda r: _stat(r, "latency_ms", "p99")), **style)
        lat_ax.plot(
            *series(system, lambda r: _stat(r, "latency_ms", "p50")),
            color=colors[system],
            marker=".",
            linestyle=":",
        )
        up_ax.plot(*series(system, lambda r: float(r["upstream_streams"])), **style)
        if system != "floor":
            rss_ax.plot(*series(system, lambda r: float(r["rss_mb"])), **style)
    cpu_ax.set_title("CPU ms per 1000 delivered frames (lower is better)")
    lat_ax.set_title("frame latency ms: p99 (solid), p50 (dotted)")
    up_ax.set_title("upstream connections to the camera")
    rss_ax.set_title("Home Assistant RSS (MB; one process serves both)")
    for ax in axes.flat:
        ax.set_xlabel("viewers (N)")
        ax.set_xscale("log")
        ax.set_xticks(ns, [str(n) for n in ns])
        ax.minorticks_off()
        ax.grid(visible=True, alpha=0.3)
        ax.set_ylim(bottom=0)
    cpu_ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
