"""scripts/check_repository.py: each rule reports its defect; the repository passes.

Every defect test works on a copy of the repository's checked files (hacs.json,
README.md, custom_components) with one defect injected, and asserts the rule
reports it as a new problem (compared with the unmodified copy, so the rules
failing today do not hide or fake a result).
"""

from __future__ import annotations

from collections.abc import Callable
import importlib.util
import json
from pathlib import Path
import shutil
import sys
import time
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _load_script() -> ModuleType:
    path = ROOT / "scripts" / "check_repository.py"
    spec = importlib.util.spec_from_file_location("check_repository", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


check = _load_script()
DOMAIN = "printcam"


def _copy(dest: Path) -> Path:
    dest.mkdir()
    for name in ("hacs.json", "README.md"):
        shutil.copy2(ROOT / name, dest / name)
    shutil.copytree(
        ROOT / "custom_components",
        dest / "custom_components",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    return dest


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A copy of the files the check reads."""
    return _copy(tmp_path / "repo")


def integration(root: Path) -> Path:
    return root / "custom_components" / DOMAIN


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def write_json(path: Path, data: Any) -> None:
    path.write_text(
        json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )


def edit_json(path: Path, change: Callable[[Any], object]) -> None:
    """Change the parsed file in place and write it back."""
    data = read_json(path)
    change(data)
    write_json(path, data)


def errors(root: Path, rule: str) -> list[str]:
    return [str(p) for p in check.RULES[rule](root) if not p.warning]


def new_errors(root: Path, rule: str, inject: Callable[[], object]) -> list[str]:
    """Errors the rule reports after `inject` that it did not report before."""
    before = set(errors(root, rule))
    inject()
    return [error for error in errors(root, rule) if error not in before]


def delete_path(data: dict[str, Any], dotted: str) -> None:
    *parents, last = dotted.split(".")
    node = data
    for part in parents:
        node = node[part]
    del node[last]


def set_path(data: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    node = data
    for part in parents:
        node = node[part]
    node[last] = value


def with_language(root: Path, name: str = "xx.json") -> Path:
    """A second language: en.json's content under another name."""
    path = integration(root) / "translations" / name
    shutil.copy2(integration(root) / "translations" / "en.json", path)
    return path


def first_key_with_placeholder(root: Path, placeholder: str = "{name}") -> str:
    flat = check.flatten(read_json(integration(root) / "translations" / "en.json"))
    return next(key for key, value in flat.items() if placeholder in value)


# ---------------------------------------------------------------------------
# The real repository


@pytest.mark.parametrize("rule", check.RULES)
def test_the_repository_passes(rule: str) -> None:
    assert errors(ROOT, rule) == []


def test_the_whole_check_is_fast() -> None:
    started = time.monotonic()
    check.run(ROOT)
    assert time.monotonic() - started < 5


def apply_proposed_fixes(root: Path) -> None:
    """The fixes the report proposes for the rules failing now."""
    part = integration(root)
    for path in [
        part / "strings.json",
        *sorted((part / "translations").glob("*.json")),
    ]:
        text = path.read_text(encoding="utf-8").replace("<ip>", "IP")
        data = json.loads(text)
        data.get("selector", {}).pop("model", None)
        write_json(path, data)
    edit_json(
        part / "icons.json",
        lambda icons: icons["entity"].setdefault(
            "camera", {"camera": {"default": "mdi:printer-3d"}}
        ),
    )
    scale = part / "quality_scale.yaml"
    text = scale.read_text(encoding="utf-8")
    for rule in ("docs-conditions", "docs-triggers"):
        if f"  {rule}:" not in text:
            text += (
                f"  {rule}:\n    status: exempt\n"
                "    comment: PrintCam provides no conditions or triggers.\n"
            )
    scale.write_text(text, encoding="utf-8")


def test_the_proposed_fixes_make_every_rule_pass(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    apply_proposed_fixes(repo)
    assert [str(p) for p in check.run(repo) if not p.warning] == []
    assert check.main(["--root", str(repo)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1].startswith(f"repository check: all {len(check.RULES)} rules pass")
    assert "quality scale tier reached:" in out[-1]
    assert not any("[warning]" not in line for line in out[:-1])


def test_a_failure_exits_1_and_names_file_and_rule(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    apply_proposed_fixes(repo)
    (integration(repo) / "brand" / "icon.png").unlink()
    assert check.main(["--root", str(repo)]) == 1
    out = capsys.readouterr().out
    assert f"custom_components/{DOMAIN}/brand/icon.png: [brand] is missing" in out
    assert "1 problem(s) in brand" in out


# ---------------------------------------------------------------------------
# 1. hacs.json


def test_hacs_version_differs_from_readme(repo: Path) -> None:
    found = new_errors(
        repo,
        "hacs",
        lambda: edit_json(
            repo / "hacs.json", lambda d: d.update(homeassistant="2024.12.0")
        ),
    )
    assert len(found) == 1
    assert "hacs.json: [hacs] homeassistant is '2024.12.0' but README.md" in found[0]


def test_readme_without_a_minimum_version(repo: Path) -> None:
    def inject() -> None:
        readme = repo / "README.md"
        text = readme.read_text(encoding="utf-8")
        for version in check.readme_minimum_versions(readme):
            text = text.replace(version, "(any)")
        readme.write_text(text, encoding="utf-8")

    found = new_errors(repo, "hacs", inject)
    assert any("does not state the minimum Home Assistant version" in f for f in found)


def test_readme_stating_two_minimum_versions(repo: Path) -> None:
    def inject() -> None:
        readme = repo / "README.md"
        readme.write_text(
            readme.read_text(encoding="utf-8")
            + "\nThe timelapse needs Home Assistant 2025.6 or later.\n",
            encoding="utf-8",
        )

    found = new_errors(repo, "hacs", inject)
    assert any("states several minimum Home Assistant versions" in f for f in found)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"domains": ["camera"]}, "extra keys not allowed"),
        ({"render_readme": "yes"}, "render_readme: expected bool"),
        ({"homeassistant": "latest"}, "is not a Home Assistant version"),
        ({"zip_release": True}, "zip_release is True, but filename is not set"),
    ],
)
def test_hacs_json_schema(repo: Path, change: dict[str, Any], message: str) -> None:
    found = new_errors(
        repo, "hacs", lambda: edit_json(repo / "hacs.json", lambda d: d.update(change))
    )
    assert any(message in f for f in found), found


def test_hacs_json_needs_a_name(repo: Path) -> None:
    found = new_errors(
        repo, "hacs", lambda: edit_json(repo / "hacs.json", lambda d: d.pop("name"))
    )
    assert any("name: required key not provided" in f for f in found)


# ---------------------------------------------------------------------------
# 2. manifest.json


def test_manifest_key_out_of_order(repo: Path) -> None:
    def inject() -> None:
        path = integration(repo) / "manifest.json"
        manifest = read_json(path)
        version = manifest.pop("version")
        write_json(path, {"version": version, **manifest})

    found = new_errors(repo, "manifest", inject)
    assert len(found) == 1
    assert "keys are not sorted correctly: domain, name, then alphabetical" in found[0]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"version": None}, "required key 'version' is missing"),
        ({"integration_type": None}, "required key 'integration_type' is missing"),
        ({"iot_class": "local_pull"}, "iot_class: value must be one of"),
        ({"integration_type": "bridge"}, "integration_type: value must be one of"),
        ({"version": "v1.x"}, "'v1.x' is not a valid version"),
        ({"documentation": "http://example.com"}, "not prefixed with https"),
        ({"issue_tracker": "http://example.com/issues"}, "not prefixed with https"),
        ({"requirements": ["aiohttp>=3"]}, "'aiohttp>=3' is not pinned"),
        ({"zeroconf": ["_octoprint._tcp"]}, "is not a zeroconf service type"),
        ({"zeroconf": [{"name": "x"}]}, "zeroconf.0"),
        ({"domain": "printcam2"}, "domain 'printcam2' does not match the folder"),
    ],
)
def test_manifest_values(repo: Path, change: dict[str, Any], message: str) -> None:
    def update(manifest: dict[str, Any]) -> None:
        for key, value in change.items():
            if value is None:
                manifest.pop(key)
            else:
                manifest[key] = value

    found = new_errors(
        repo, "manifest", lambda: edit_json(integration(repo) / "manifest.json", update)
    )
    assert any(message in f for f in found), found


def test_pinned_requirements_pass(repo: Path) -> None:
    found = new_errors(
        repo,
        "manifest",
        lambda: edit_json(
            integration(repo) / "manifest.json",
            lambda m: m.update(requirements=["aiohttp==3.11.16"]),
        ),
    )
    assert found == []


# ---------------------------------------------------------------------------
# 3. Dependencies


def _drop_zeroconf_key(root: Path) -> None:
    edit_json(integration(root) / "manifest.json", lambda m: m.pop("zeroconf"))


def test_zeroconf_import_without_the_dependency(repo: Path) -> None:
    def inject() -> None:
        _drop_zeroconf_key(repo)
        (integration(repo) / "announce.py").write_text(
            '"""Announce."""\n\nfrom homeassistant.components import zeroconf\n',
            encoding="utf-8",
        )

    found = new_errors(repo, "dependencies", inject)
    assert len(found) == 1
    assert "uses integration 'zeroconf' (announce.py) but it is not in" in found[0]


def test_zeroconf_manifest_key_allows_the_import(repo: Path) -> None:
    """hassfest: a discovery integration is implied by its manifest key."""
    found = new_errors(
        repo,
        "dependencies",
        lambda: (integration(repo) / "announce.py").write_text(
            "import homeassistant.components.zeroconf\n", encoding="utf-8"
        ),
    )
    assert found == []


@pytest.mark.parametrize(
    ("source", "reported"),
    [
        ("import homeassistant.components.zeroconf as zc\n", True),
        ("from homeassistant.components.zeroconf.usage import x\n", True),
        ("def f(hass):\n    hass.components.zeroconf.async_get()\n", True),
        (
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
            "    from homeassistant.components.zeroconf import X\n",
            False,
        ),
        ("from homeassistant.components.media_player import MediaClass\n", False),
        ("from homeassistant.components.http.auth import async_sign_path\n", False),
    ],
)
def test_import_forms(repo: Path, source: str, reported: bool) -> None:
    def inject() -> None:
        _drop_zeroconf_key(repo)
        (integration(repo) / "announce.py").write_text(source, encoding="utf-8")

    found = new_errors(repo, "dependencies", inject)
    assert bool(found) is reported, found


def test_platform_of_another_integration_may_import_it(repo: Path) -> None:
    found = new_errors(
        repo,
        "dependencies",
        lambda: (integration(repo) / "system_health.py").write_text(
            "from homeassistant.components.system_health import X\n", encoding="utf-8"
        ),
    )
    assert found == []


def test_dependency_must_exist(repo: Path) -> None:
    found = new_errors(
        repo,
        "dependencies",
        lambda: edit_json(
            integration(repo) / "manifest.json",
            lambda m: m["dependencies"].append("printer_farm"),
        ),
    )
    assert len(found) == 1
    assert (
        "dependencies: 'printer_farm' is not an integration of Home Assistant"
        in (found[0])
    )


# ---------------------------------------------------------------------------
# 4. Translations


def test_missing_translation_key(repo: Path) -> None:
    path = with_language(repo)
    found = new_errors(
        repo,
        "translations",
        lambda: edit_json(path, lambda d: delete_path(d, "config.error.timeout")),
    )
    assert found == [
        f"custom_components/{DOMAIN}/translations/xx.json: [translations] "
        "config.error.timeout is missing (en.json has it)"
    ]


def test_extra_translation_key(repo: Path) -> None:
    path = with_language(repo)
    found = new_errors(
        repo,
        "translations",
        lambda: edit_json(path, lambda d: set_path(d, "config.error.gone", "Weg")),
    )
    assert any("config.error.gone is not in en.json" in f for f in found)


def test_wrong_placeholder(repo: Path) -> None:
    path = with_language(repo)
    key = first_key_with_placeholder(repo)

    def inject() -> None:
        flat = check.flatten(read_json(path))
        edit_json(
            path, lambda d: set_path(d, key, flat[key].replace("{name}", "{nom}"))
        )

    found = new_errors(repo, "translations", inject)
    assert len(found) == 1
    assert f"{key} has placeholders" in found[0]
    assert "'nom'" in found[0]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "is an empty string"),
        ("[%key:common::config_flow::error::unknown%]", "unresolved reference"),
        ("Zeitüberschreitung {", "unbalanced braces"),
    ],
)
def test_bad_translation_values(repo: Path, value: str, message: str) -> None:
    path = with_language(repo)
    found = new_errors(
        repo,
        "translations",
        lambda: edit_json(path, lambda d: set_path(d, "config.error.timeout", value)),
    )
    assert any(message in f for f in found), found


def test_en_json_out_of_date(repo: Path) -> None:
    path = integration(repo) / "translations" / "en.json"
    found = new_errors(
        repo,
        "translations",
        lambda: edit_json(path, lambda d: delete_path(d, "config.error.timeout")),
    )
    assert any(
        "en.json: [translations] out of date, run scripts/translations.py: "
        "config.error.timeout" in f
        for f in found
    ), found


@pytest.mark.parametrize(
    ("dotted", "value", "message"),
    [
        ("config.error.timeout", "See <b>this</b>", "should not contain HTML"),
        (
            "config.error.timeout",
            "See https://example.com/help",
            "should not contain URLs",
        ),
        ("config.error.timeout", " Timed out", "leading or trailing spaces"),
        ("config.error.timeout", "Use '{name}'", "inside single quotes"),
        (
            "entity.sensor.stream_state.state.idle",
            "Idle {name}",
            "placeholders are not",
        ),
        ("config.step.mjpeg.data_description.port", "Port", "not in data"),
        ("config.bogus", "x", "extra keys not allowed"),
    ],
)
def test_strings_schema(repo: Path, dotted: str, value: str, message: str) -> None:
    # One schema error hides the others of its flow (vol.All, as in hassfest):
    # start from a copy that passes.
    apply_proposed_fixes(repo)
    found = new_errors(
        repo,
        "translations",
        lambda: edit_json(
            integration(repo) / "strings.json", lambda d: set_path(d, dotted, value)
        ),
    )
    assert any("strings.json" in f and message in f for f in found), found


def test_unresolvable_reference(repo: Path) -> None:
    found = new_errors(
        repo,
        "translations",
        lambda: edit_json(
            integration(repo) / "strings.json",
            lambda d: set_path(d, "config.error.timeout", "[%key:common::nothing%]"),
        ),
    )
    assert any("cannot be resolved" in f for f in found), found


# ---------------------------------------------------------------------------
# 5. Services

EXTRA_ACTION = """

SERVICE_PURGE_RECORDINGS: Final = "purge_recordings"


def _register_purge(hass: HomeAssistant) -> None:
    hass.services.async_register(DOMAIN, SERVICE_PURGE_RECORDINGS, _purge)
"""


def _append(path: Path, text: str) -> None:
    path.write_text(path.read_text(encoding="utf-8") + text, encoding="utf-8")


def test_action_without_services_yaml_entry(repo: Path) -> None:
    found = new_errors(
        repo,
        "services",
        lambda: _append(integration(repo) / "services.py", EXTRA_ACTION),
    )
    prefix = f"custom_components/{DOMAIN}"
    assert sorted(found) == [
        f"{prefix}/icons.json: [services] action 'purge_recordings' has no icon in services",
        f"{prefix}/services.yaml: [services] action 'purge_recordings' (registered in "
        f"{prefix}/services.py line {_line_of(repo, 'SERVICE_PURGE_RECORDINGS, _purge')}) "
        "is not described",
        f"{prefix}/strings.json: [services] action 'purge_recordings' has no entry in services",
    ]


def _line_of(root: Path, text: str) -> int:
    lines = (integration(root) / "services.py").read_text(encoding="utf-8").splitlines()
    return next(number for number, line in enumerate(lines, 1) if text in line)


def test_action_name_from_another_module(repo: Path) -> None:
    def inject() -> None:
        _append(integration(repo) / "const.py", '\nSERVICE_SNAP: Final = "snap"\n')
        (integration(repo) / "snap.py").write_text(
            '"""Snap."""\n\nfrom .const import DOMAIN, SERVICE_SNAP\n\n\n'
            "def setup(hass):\n"
            "    hass.services.async_register(DOMAIN, SERVICE_SNAP, print)\n",
            encoding="utf-8",
        )

    found = new_errors(repo, "services", inject)
    assert any("action 'snap'" in f and "is not described" in f for f in found), found


def test_entity_service_is_found(repo: Path) -> None:
    found = new_errors(
        repo,
        "services",
        lambda: _append(
            integration(repo) / "camera.py",
            "\n\ndef _extra(platform):\n"
            '    platform.async_register_entity_service("wiggle", {}, "w")\n',
        ),
    )
    assert any("action 'wiggle'" in f for f in found), found


def test_unresolvable_action_name(repo: Path) -> None:
    found = new_errors(
        repo,
        "services",
        lambda: _append(
            integration(repo) / "services.py",
            "\n\ndef _more(hass, name):\n"
            "    hass.services.async_register(DOMAIN, name.lower(), print)\n",
        ),
    )
    assert any(
        "cannot resolve the action name or domain `name.lower()`" in f for f in found
    )


def test_another_domains_action_is_ignored(repo: Path) -> None:
    found = new_errors(
        repo,
        "services",
        lambda: _append(
            integration(repo) / "services.py",
            "\n\ndef _more(hass):\n"
            '    hass.services.async_register("camera", "wiggle", print)\n',
        ),
    )
    assert found == []


def test_actions_without_services_yaml(repo: Path) -> None:
    found = new_errors(
        repo, "services", lambda: (integration(repo) / "services.yaml").unlink()
    )
    assert found == [
        f"custom_components/{DOMAIN}/services.yaml: [services] "
        "registers actions but has no services.yaml"
    ]


def test_services_yaml_entry_not_registered(repo: Path) -> None:
    found = new_errors(
        repo,
        "services",
        lambda: _append(integration(repo) / "services.yaml", "\nwiggle:\n"),
    )
    assert any("'wiggle' is not an action the code registers" in f for f in found)


def test_service_field_without_translation(repo: Path) -> None:
    def inject() -> None:
        edit_json(
            integration(repo) / "strings.json",
            lambda d: delete_path(d, "services.start_timelapse.fields.fps"),
        )

    found = new_errors(repo, "services", inject)
    assert any("services.start_timelapse.fields.fps has no name" in f for f in found)


def test_invalid_services_yaml(repo: Path) -> None:
    found = new_errors(
        repo,
        "services",
        lambda: _append(
            integration(repo) / "services.yaml",
            "\nstart_timelapse_bad:\n  fields:\n    x:\n      selector:\n        nope: {}\n",
        ),
    )
    assert any("start_timelapse_bad" in f for f in found), found


# ---------------------------------------------------------------------------
# 6. Icons


def test_entity_key_without_icon(repo: Path) -> None:
    found = new_errors(
        repo,
        "icons",
        lambda: edit_json(
            integration(repo) / "icons.json",
            lambda d: delete_path(d, "entity.sensor.viewers"),
        ),
    )
    assert found == [
        f"custom_components/{DOMAIN}/icons.json: [icons] entity.sensor.viewers has no icon"
    ]


def test_icon_for_unknown_entity_key(repo: Path) -> None:
    found = new_errors(
        repo,
        "icons",
        lambda: edit_json(
            integration(repo) / "icons.json",
            lambda d: set_path(d, "entity.sensor.ghost", {"default": "mdi:ghost"}),
        ),
    )
    assert any(
        "entity.sensor.ghost is not an entity key of strings.json" in f for f in found
    )


def test_event_type_without_icon(repo: Path) -> None:
    """A state left out of a map with a default uses it; without one, an error."""
    stalled = "entity.event.stream.state_attributes.event_type.state.stalled"
    default = "entity.event.stream.state_attributes.event_type.default"
    assert not new_errors(
        repo,
        "icons",
        lambda: edit_json(
            integration(repo) / "icons.json", lambda d: delete_path(d, stalled)
        ),
    )
    found = new_errors(
        repo,
        "icons",
        lambda: edit_json(
            integration(repo) / "icons.json", lambda d: delete_path(d, default)
        ),
    )
    assert found == [
        f"custom_components/{DOMAIN}/icons.json: [icons] entity.event.stream."
        "state_attributes.event_type.state.stalled has no icon"
    ]


def test_sensor_state_icon_not_in_strings(repo: Path) -> None:
    found = new_errors(
        repo,
        "icons",
        lambda: edit_json(
            integration(repo) / "icons.json",
            lambda d: set_path(
                d, "entity.sensor.stream_state.state.asleep", "mdi:sleep"
            ),
        ),
    )
    assert any("state.asleep is not a state in strings.json" in f for f in found)


@pytest.mark.parametrize(
    ("dotted", "value", "message"),
    [
        ("entity.sensor.viewers.default", "eye", "start with `mdi:`"),
        ("services.start_timelapse", {"service": "timelapse"}, "start with `mdi:`"),
        ("bogus", {}, "extra keys not allowed"),
    ],
)
def test_icons_schema(repo: Path, dotted: str, value: Any, message: str) -> None:
    found = new_errors(
        repo,
        "icons",
        lambda: edit_json(
            integration(repo) / "icons.json", lambda d: set_path(d, dotted, value)
        ),
    )
    assert any(message in f for f in found), found


# ---------------------------------------------------------------------------
# 7. quality_scale.yaml


def _scale(root: Path) -> Path:
    return integration(root) / "quality_scale.yaml"


def test_missing_quality_scale_rule(repo: Path) -> None:
    def inject() -> None:
        text = _scale(repo).read_text(encoding="utf-8")
        _scale(repo).write_text(
            text.replace("  runtime-data: done\n", ""), encoding="utf-8"
        )

    found = new_errors(repo, "quality_scale", inject)
    assert found == [
        f"custom_components/{DOMAIN}/quality_scale.yaml: [quality_scale] "
        "rule 'runtime-data' is missing"
    ]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("  shiny-badges: done\n", "'shiny-badges' is not a rule of the quality scale"),
        ("  docs-triggers: exempt\n", "docs-triggers: exempt needs a comment"),
        ("  docs-triggers: todo\n", "docs-triggers: todo needs a comment"),
        ("  docs-triggers: maybe\n", "status 'maybe' is not done, todo or exempt"),
    ],
)
def test_quality_scale_entries(repo: Path, line: str, message: str) -> None:
    def inject() -> None:
        text = _scale(repo).read_text(encoding="utf-8")
        text = "\n".join(
            row for row in text.split("\n") if not row.startswith("  docs-triggers:")
        )
        _scale(repo).write_text(text + line, encoding="utf-8")

    found = new_errors(repo, "quality_scale", inject)
    assert any(message in f for f in found), found


def _all_done(root: Path, but: dict[str, str] | None = None) -> None:
    lines = [f"  {rule}: {(but or {}).get(rule, 'done')}\n" for rule in check.ALL_RULES]
    _scale(root).write_text("rules:\n" + "".join(lines), encoding="utf-8")


@pytest.mark.parametrize(
    ("but", "tier"),
    [
        ({}, "platinum"),
        ({"strict-typing": "todo"}, "gold"),
        ({"stale-devices": "todo"}, "silver"),
        ({"test-coverage": "todo"}, "bronze"),
        ({"docs-conditions": "todo"}, None),
    ],
)
def test_quality_scale_tier(repo: Path, but: dict[str, str], tier: str | None) -> None:
    _all_done(repo, but)
    assert check.quality_scale_tier(repo) == tier


# ---------------------------------------------------------------------------
# 8. Brand and JSON


def test_brand_icon_missing(repo: Path) -> None:
    icon = integration(repo) / "brand" / "icon.png"
    if icon.exists():
        icon.unlink()
    assert (
        f"custom_components/{DOMAIN}/brand/icon.png: [brand] is missing "
        "(HACS' brands check needs it)"
    ) in errors(repo, "brand")


def test_brand_icon_not_png(repo: Path) -> None:
    icon = integration(repo) / "brand" / "icon.png"
    icon.parent.mkdir(exist_ok=True)
    icon.write_bytes(b"GIF89a")
    assert any("is not a PNG image" in f for f in errors(repo, "brand"))


def test_invalid_json_file(repo: Path) -> None:
    found = new_errors(
        repo,
        "json",
        lambda: (integration(repo) / "translations" / "xx.json").write_text(
            "{", encoding="utf-8"
        ),
    )
    assert len(found) == 1
    assert "translations/xx.json: [json] invalid JSON" in found[0]


def test_async_setup_without_config_schema_warns(repo: Path) -> None:
    init = integration(repo) / "__init__.py"
    init.write_text(
        init.read_text(encoding="utf-8").replace(
            "CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)", ""
        ),
        encoding="utf-8",
    )
    problems = check.RULES["config_schema"](repo)
    assert [p.warning for p in problems] == [True]
    assert "defines no CONFIG_SCHEMA" in problems[0].message


@pytest.mark.parametrize("rule", ["dependencies", "services"])
def test_syntax_error_is_reported(repo: Path, rule: str) -> None:
    found = new_errors(
        repo,
        rule,
        lambda: (integration(repo) / "broken.py").write_text(
            "def register(:\n", encoding="utf-8"
        ),
    )
    assert len(found) == 1
    assert f"custom_components/{DOMAIN}/broken.py: [{rule}] cannot parse" in found[0]
