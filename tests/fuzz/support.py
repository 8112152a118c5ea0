"""Budgets and helpers shared by the fuzz targets.

Two hypothesis profiles (registered by ``conftest.py``):

* ``printcam-fuzz`` (the normal run): a small budget per target and
  ``derandomize=True``, so every run tries the same inputs and CI can never
  fail on a crash found by chance;
* ``printcam-fuzz-large`` (``scripts/test --fuzz``, which sets
  ``PRINTCAM_FUZZ_EXAMPLES``): that many examples per target, random seed
  (pass ``--hypothesis-seed=N`` to replay a run).

Neither writes an example database: a failure prints the falsifying example
and a ``@reproduce_failure`` blob, and what it found becomes a regular test.
The profiles are applied per test (``fuzz_settings``), never loaded
globally, so the other hypothesis tests keep their own settings.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
import contextlib
import os
import tracemalloc
from typing import Final

from hypothesis import HealthCheck, settings

EXAMPLES_ENV: Final = "PRINTCAM_FUZZ_EXAMPLES"
"""Examples per target for a large run; unset or 0: the normal budget."""
DEFAULT_EXAMPLES: Final = 100
PROFILE: Final = "printcam-fuzz"
LARGE_PROFILE: Final = "printcam-fuzz-large"

_HEALTH: Final = (
    HealthCheck.too_slow,
    HealthCheck.data_too_large,
    HealthCheck.large_base_example,
    HealthCheck.filter_too_much,
    HealthCheck.function_scoped_fixture,
)


def large_budget() -> int:
    """Return the examples per target of a ``--fuzz`` run, 0 for a normal run."""
    value = os.environ.get(EXAMPLES_ENV, "").strip()
    return int(value) if value else 0


def register_profiles() -> None:
    """Register both profiles (idempotent)."""
    common = settings(
        deadline=None,
        database=None,
        suppress_health_check=_HEALTH,
        print_blob=True,
    )
    settings.register_profile(
        PROFILE, common, max_examples=DEFAULT_EXAMPLES, derandomize=True
    )
    settings.register_profile(
        LARGE_PROFILE,
        common,
        max_examples=large_budget() or DEFAULT_EXAMPLES,
        derandomize=False,
    )


def fuzz_settings(share: float = 1.0) -> settings:
    """Return the settings of the active profile, ``share`` of its budget.

    Expensive targets (allocation tracing) take a share of the budget, at
    least 10 examples.
    """
    register_profiles()
    base = settings.get_profile(LARGE_PROFILE if large_budget() else PROFILE)
    return settings(base, max_examples=max(10, round(base.max_examples * share)))


@contextlib.contextmanager
def traced_peak() -> Iterator[Callable[[], int]]:
    """Trace allocations in the block; the yielded function returns the peak.

    The peak is measured from the block's start (bytes newly allocated and
    alive at the worst moment).
    """
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    peak = 0

    def result() -> int:
        return peak

    try:
        yield result
    finally:
        peak = tracemalloc.get_traced_memory()[1] - base
        if started:
            tracemalloc.stop()
