"""Small statistics for the benchmark: percentiles, summaries, process counters.

Pure code apart from `proc_cpu_ms` and `proc_memory_kb`, which read
``/proc/<pid>`` (Linux).
"""

from __future__ import annotations

from collections.abc import Sequence
import math
import os
from pathlib import Path
from typing import Final

__all__ = [
    "CLOCK_TICKS",
    "CpuMeter",
    "cpu_delta_ms",
    "per_1000",
    "percentile",
    "proc_cpu_ms",
    "proc_memory_kb",
    "proc_thread_cpu_ns",
    "ratio",
    "summarize",
]

CLOCK_TICKS: Final = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
"""Units of utime/stime in /proc/<pid>/stat per second."""


def percentile(values: Sequence[float], q: float) -> float:
    """Return the ``q``-th percentile (0..100), interpolating linearly.

    The same definition as numpy's default ("linear"): with values sorted
    as v[0..n-1], the percentile sits at position (n - 1) * q / 100.
    """
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"q must be within 0..100, not {q}")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    fraction = position - low
    return ordered[low] + (ordered[high] - ordered[low]) * fraction


def summarize(values: Sequence[float]) -> dict[str, float | int | None]:
    """Return count, mean, p50, p95, p99 and max of ``values`` (None when empty)."""
    if not values:
        return {
            "count": 0,
            "mean": None,
            "p50": None,
            "p95": None,
            "p99": None,
            "max": None,
        }
    ordered = sorted(values)
    return {
        "count": len(ordered),
        "mean": sum(ordered) / len(ordered),
        "p50": percentile(ordered, 50),
        "p95": percentile(ordered, 95),
        "p99": percentile(ordered, 99),
        "max": ordered[-1],
    }


def per_1000(cpu_ms: float, frames: int) -> float | None:
    """Return CPU milliseconds per 1000 frames (None without frames)."""
    if frames <= 0:
        return None
    return cpu_ms * 1000 / frames


def ratio(value: float | None, reference: float | None) -> float | None:
    """Return value / reference, or None when either is missing or reference is 0."""
    if value is None or reference is None or reference == 0:
        return None
    return value / reference


def proc_cpu_ms(pid: int) -> float:
    """Return user + system CPU time of process ``pid`` (all its threads), in ms."""
    stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    # The command name (field 2) is in parentheses and may hold spaces.
    fields = stat[stat.rindex(")") + 2 :].split()
    # Fields 14 and 15 (utime, stime) are at 11 and 12 after the name.
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) * 1000 / CLOCK_TICKS


def proc_thread_cpu_ns(pid: int) -> dict[int, int]:
    """Return the CPU time (ns) of each live thread of process ``pid``.

    From ``/proc/<pid>/task/<tid>/schedstat`` (nanoseconds, where
    /proc/<pid>/stat counts 10 ms ticks); empty when the kernel has none.
    """
    times: dict[int, int] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            times[int(task.name)] = int(
                (task / "schedstat").read_text(encoding="ascii").split()[0]
            )
        except (OSError, ValueError, IndexError):
            continue
    return times


def cpu_delta_ms(before: dict[int, int], after: dict[int, int]) -> float:
    """Return the CPU time (ms) threads used between two `proc_thread_cpu_ns`.

    A thread that started in between counts from zero; one that ended in
    between is lost (Home Assistant's threads live as long as it does).
    """
    return sum(ns - before.get(tid, 0) for tid, ns in after.items()) / 1e6


class CpuMeter:
    """CPU time of a process over an interval, precise where the kernel allows."""

    def __init__(self, pid: int) -> None:
        """Start measuring process ``pid`` now."""
        self.pid = pid
        self._ticks = proc_cpu_ms(pid)
        self._threads = proc_thread_cpu_ns(pid)

    def elapsed_ms(self) -> float:
        """Return the CPU ms used since the start.

        Per-thread nanoseconds when available, else the 10 ms ticks of
        /proc/<pid>/stat.
        """
        if self._threads:
            return cpu_delta_ms(self._threads, proc_thread_cpu_ns(self.pid))
        return proc_cpu_ms(self.pid) - self._ticks


def proc_memory_kb(pid: int) -> dict[str, int]:
    """Return VmRSS and VmHWM (peak RSS) of process ``pid``, in kB."""
    found: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text(encoding="ascii").splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            found[name] = int(value.split()[0])
    return found
