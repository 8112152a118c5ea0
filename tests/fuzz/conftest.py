"""Fuzz targets: hypothesis profiles and the ``--fuzz`` run's time limit.

See ``support.py`` for the budgets. A ``--fuzz`` run (``PRINTCAM_FUZZ_EXAMPLES``
set) lifts pytest-timeout's per-test limit for these tests only.
"""

from __future__ import annotations

import pytest

from .support import large_budget, register_profiles

register_profiles()

LARGE_RUN_TIMEOUT = 1800
"""Seconds one target may take in a ``--fuzz`` run."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Give the fuzz targets room in a large run."""
    if not large_budget():
        return
    for item in items:
        if item.path.parent.name == "fuzz":
            item.add_marker(pytest.mark.timeout(LARGE_RUN_TIMEOUT))
