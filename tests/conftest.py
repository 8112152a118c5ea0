"""Shared fixtures for PrintCam tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from custom_components.printcam import fanout


@pytest.fixture(autouse=True)
async def _no_broadcaster_left() -> AsyncIterator[None]:
    """Shut down broadcasters a test left behind and fail if it left any."""
    yield
    leftover = [bc for bc in fanout._BROADCASTERS.values() if not bc.stopped]
    await fanout.shutdown_all_broadcasters()
    assert not leftover, f"test left live broadcasters: {leftover}"
