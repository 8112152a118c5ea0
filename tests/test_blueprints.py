"""The automation blueprints in blueprints/automation/printcam, run for real.

Each blueprint is loaded by Home Assistant's blueprint integration from a
config folder, instantiated as an automation with inputs a user would pick,
and driven by state changes: the actions it must run are recorded.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
import shutil
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.components.automation.config import AUTOMATION_BLUEPRINT_SCHEMA
from homeassistant.components.blueprint import models
from homeassistant.core import HomeAssistant, ServiceCall
from homeassistant.setup import async_setup_component
from homeassistant.util import yaml as yaml_util
import pytest
from pytest_homeassistant_custom_component.common import (
    async_fire_time_changed,
    async_mock_service,
)

ROOT = Path(__file__).resolve().parents[1]
BLUEPRINTS = ROOT / "blueprints" / "automation" / "printcam"
TROUBLE = "camera_trouble_while_printing.yaml"
SNAPSHOT = "snapshot_when_print_finishes.yaml"


@pytest.mark.parametrize("name", sorted(p.name for p in BLUEPRINTS.glob("*.yaml")))
def test_blueprint_is_valid(name: str) -> None:
    """Home Assistant's blueprint schema accepts it, with a source URL."""
    data = yaml_util.load_yaml_dict(BLUEPRINTS / name)
    blueprint = models.Blueprint(
        data, expected_domain="automation", schema=AUTOMATION_BLUEPRINT_SCHEMA
    )
    assert blueprint.metadata["source_url"].endswith(
        f"/blueprints/automation/printcam/{name}"
    )
    assert blueprint.metadata["homeassistant"]["min_version"] == "2025.4.0"


@pytest.fixture
async def blueprint_config(hass: HomeAssistant, tmp_path: Path) -> Path:
    """A config folder holding PrintCam's blueprints, as an import puts them."""
    hass.config.config_dir = str(tmp_path)
    shutil.copytree(BLUEPRINTS, tmp_path / "blueprints" / "automation" / "printcam")
    return tmp_path


async def _automation(hass: HomeAssistant, name: str, inputs: dict[str, Any]) -> None:
    assert await async_setup_component(
        hass,
        "automation",
        {
            "automation": {
                "id": "printcam_test",
                "alias": name,
                "use_blueprint": {"path": f"printcam/{name}", "input": inputs},
            }
        },
    )
    await hass.async_block_till_done()
    states = [state.state for state in hass.states.async_all("automation")]
    assert states == ["on"], "the automation was not set up"


def _notify(hass: HomeAssistant) -> list[ServiceCall]:
    return async_mock_service(hass, "test", "notify")


@pytest.mark.usefixtures("blueprint_config")
async def test_camera_trouble_while_printing_notifies(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory
) -> None:
    """Stalled 30 s while printing: one notification; not when idle."""
    calls = _notify(hass)
    hass.states.async_set("sensor.p1s_stream_state", "streaming")
    hass.states.async_set(
        "sensor.p1s_print_status", "running", {"friendly_name": "P1S print status"}
    )
    await _automation(
        hass,
        TROUBLE,
        {
            "stream_state": "sensor.p1s_stream_state",
            "printing_entity": "sensor.p1s_print_status",
            "actions": [
                {
                    "action": "test.notify",
                    "data": {"message": "{{ printer }}: camera {{ camera_state }}"},
                }
            ],
        },
    )
    hass.states.async_set("sensor.p1s_stream_state", "stalled")
    await hass.async_block_till_done()
    freezer.tick(timedelta(seconds=10))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    assert calls == []  # not for 30 s yet
    freezer.tick(timedelta(seconds=25))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    assert [c.data["message"] for c in calls] == ["P1S print status: camera stalled"]

    # Not printing: the camera may come and go as it likes.
    hass.states.async_set("sensor.p1s_stream_state", "streaming")
    hass.states.async_set("sensor.p1s_print_status", "finish")
    hass.states.async_set("sensor.p1s_stream_state", "unreachable")
    await hass.async_block_till_done()
    freezer.tick(timedelta(seconds=60))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    assert len(calls) == 1


@pytest.mark.usefixtures("blueprint_config")
async def test_snapshot_when_a_print_finishes(hass: HomeAssistant) -> None:
    """Running -> finish: one snapshot of the camera, then the actions."""
    snapshots = async_mock_service(hass, "camera", "snapshot")
    calls = _notify(hass)
    hass.states.async_set("sensor.p1s_print_status", "running")
    await _automation(
        hass,
        SNAPSHOT,
        {
            "camera": "camera.p1s",
            "printing_entity": "sensor.p1s_print_status",
            "actions": [
                {
                    "action": "test.notify",
                    "data": {"message": "{{ print_state }} {{ snapshot_url }}"},
                }
            ],
        },
    )
    # A pause is not the end of the print; unavailable is not either.
    for state in ("pause", "running", "unavailable", "running"):
        hass.states.async_set("sensor.p1s_print_status", state)
        await hass.async_block_till_done()
    assert snapshots == []
    hass.states.async_set("sensor.p1s_print_status", "finish")
    await hass.async_block_till_done()
    (snapshot,) = snapshots
    assert snapshot.data["entity_id"] == ["camera.p1s"]
    filename = snapshot.data["filename"]
    assert filename.startswith("/config/www/printcam/p1s_")
    assert filename.endswith(".jpg")
    (call,) = calls
    assert call.data["message"] == (
        f"finish /local/printcam/{filename.removeprefix('/config/www/printcam/')}"
    )
    # Idle afterwards: nothing more.
    hass.states.async_set("sensor.p1s_print_status", "idle")
    await hass.async_block_till_done()
    assert len(snapshots) == 1
