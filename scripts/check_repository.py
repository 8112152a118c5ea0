"""Check the repository offline as HACS' validation action and hassfest would.

Neither can run here (both need the network), so this script repeats, from
the repository's files and the installed Home Assistant, the checks of theirs
that make sense offline, plus a few of PrintCam's own. Each rule is a function
`check_<rule>(root)` returning the problems it finds in the repository at
`root`, so tests can run them on a copy with a defect injected.

Sources, read from their code (not from memory):

* HACS (hacs/integration): `custom_components/hacs/utils/validate.py` at
  07a8c70cc862 (HACS_MANIFEST_JSON_SCHEMA, INTEGRATION_MANIFEST_JSON_SCHEMA),
  `validate/hacsjson.py` at 10357bb9c383 (zip_release needs filename),
  `validate/information.py` at 609f173a97da (a README or info file),
  `validate/brands.py` and hacs/integration#5128 (a local `brand/icon.png`
  satisfies the brands check). Not checkable offline: archived, description,
  issues, topics (GitHub repository settings) and the brands CDN.
* hassfest (home-assistant/core `script/hassfest/`): `manifest.py` at
  7d56dcb02e6c, `dependencies.py` at 42c449f54ecf, `translations.py` at
  00a70521db04, `services.py` at 01a7395c1b1c, `icons.py` at 23d4f3ba75ac,
  `quality_scale.py` at 008538e82253, `config_schema.py` at 1394d94235a0,
  `json.py` at 05698921a716; the service icon format from the installed
  Home Assistant's helpers/icon.py. Where hassfest reads Home Assistant itself
  (Platform, DISCOVERY_INTEGRATIONS, selectors, the list of integrations) the
  installed Home Assistant is used.

Stricter than hassfest, on purpose: every quality-scale rule must be listed
and a `todo` needs a comment; services must be translated and have icons
(hassfest enforces that for core only); every entity translation key needs an
icon; hacs.json must name the minimum Home Assistant version README.md states.

Run: `.venv/bin/python scripts/check_repository.py` (scripts/test runs it).
Exit status 1 if any rule fails; warnings are printed but do not fail.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterable
from dataclasses import dataclass
import functools
import importlib.util
import json
from pathlib import Path
import re
import string
import sys
import time
from types import ModuleType
from typing import Any, Final
from urllib.parse import urlparse

from awesomeversion import (
    AwesomeVersion,
    AwesomeVersionException,
    AwesomeVersionStrategy,
)
import homeassistant
from homeassistant.const import CONF_SELECTOR, Platform
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import (
    config_validation as cv,
    selector,
    service as ha_service,
)
from homeassistant.requirements import DISCOVERY_INTEGRATIONS
from homeassistant.util.yaml import load_yaml_dict
from packaging.requirements import InvalidRequirement, Requirement
import voluptuous as vol

ROOT: Final = Path(__file__).resolve().parent.parent
HA_COMPONENTS: Final = Path(homeassistant.__file__).parent / "components"
TRANSLATIONS_SCRIPT: Final = Path(__file__).resolve().parent / "translations.py"


@dataclass(frozen=True)
class Problem:
    """One thing wrong in one file."""

    rule: str
    file: str
    message: str
    warning: bool = False

    def __str__(self) -> str:
        """Render as `file: [rule] message`."""
        kind = "warning" if self.warning else self.rule
        return f"{self.file}: [{kind}] {self.message}"


class _Reporter:
    """Collect the problems of one rule, with paths relative to the root."""

    def __init__(self, rule: str, root: Path) -> None:
        self.rule = rule
        self.root = root
        self.problems: list[Problem] = []

    def error(self, path: Path | str, message: str) -> None:
        self.problems.append(Problem(self.rule, self._rel(path), message))

    def warn(self, path: Path | str, message: str) -> None:
        self.problems.append(Problem(self.rule, self._rel(path), message, True))

    def schema(self, path: Path, schema: Callable[[Any], Any], data: Any) -> bool:
        """Validate `data`; report each error with its key path. True if valid."""
        try:
            schema(data)
        except vol.MultipleInvalid as err:
            for error in err.errors:
                self.error(path, _describe_invalid(error))
            return False
        except vol.Invalid as err:
            self.error(path, _describe_invalid(err))
            return False
        return True

    def _rel(self, path: Path | str) -> str:
        if isinstance(path, str):
            return path
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return str(path)


def _describe_invalid(err: vol.Invalid) -> str:
    where = ".".join(str(part) for part in err.path)
    return f"{where}: {err.msg}" if where else str(err.msg)


def _slug_keys(
    value_schema: Any, *, slug_validator: Callable[[Any], Any] = cv.slug
) -> Callable[[Any], Any]:
    """Like cv.schema_with_slug_keys, but report every invalid key, not the first."""
    schema = vol.Schema({str: value_schema})

    def verify(value: Any) -> Any:
        if not isinstance(value, dict):
            raise vol.Invalid("expected dictionary")
        errors: list[vol.Invalid] = []
        for key in value:
            try:
                slug_validator(key)
            except vol.Invalid as err:
                errors.append(vol.Invalid(err.msg, path=[key]))
        if errors:
            raise vol.MultipleInvalid(errors)
        return schema(value)

    return verify


# --------------------------------------------------------------------------
# Files of the repository


def integration_dir(root: Path) -> Path | None:
    """Return custom_components/<domain>, the one integration, or None."""
    found = sorted(
        path.parent for path in (root / "custom_components").glob("*/manifest.json")
    )
    return found[0] if len(found) == 1 else None


def _load_json(path: Path, report: _Reporter) -> Any:
    """Return the parsed file, or None (reported) if missing or invalid."""
    if not path.is_file():
        report.error(path, "file is missing")
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:
        report.error(path, f"invalid JSON: {err}")
        return None


def _load_yaml(path: Path, report: _Reporter) -> dict[str, Any] | None:
    if not path.is_file():
        report.error(path, "file is missing")
        return None
    try:
        return dict(load_yaml_dict(str(path)))
    except HomeAssistantError as err:
        report.error(path, f"invalid YAML: {err}")
        return None


def _manifest(root: Path) -> dict[str, Any]:
    """Return the integration's manifest, or {} if it cannot be read."""
    integration = integration_dir(root)
    if integration is None:
        return {}
    try:
        data = json.loads((integration / "manifest.json").read_text(encoding="utf-8"))
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _no_integration(report: _Reporter) -> list[Problem]:
    report.error(
        "custom_components",
        "expected exactly one integration (a folder with manifest.json)",
    )
    return report.problems


@functools.cache
def _core_integrations() -> frozenset[str]:
    """Domains of the installed Home Assistant's integrations."""
    return frozenset(path.parent.name for path in HA_COMPONENTS.glob("*/manifest.json"))


@functools.lru_cache(maxsize=512)
def _parse_source(text: str) -> ast.Module:
    """Parse once per content (the rules share the trees; none changes them)."""
    return ast.parse(text)


def parse_file(path: Path) -> ast.Module:
    """Return the syntax tree of a Python file (a SyntaxError names it)."""
    text = path.read_text(encoding="utf-8")
    try:
        return _parse_source(text)
    except SyntaxError:
        return ast.parse(text, str(path))


# --------------------------------------------------------------------------
# 1. hacs.json (HACS: utils/validate.py HACS_MANIFEST_JSON_SCHEMA,
#    validate/hacsjson.py, validate/information.py)

# ISO 3166-1 alpha-2 shape; HACS checks the code against its LOCALE list.
_COUNTRY = re.compile(r"^[A-Z]{2}$")


def _country_validator(values: Any) -> list[str]:
    countries = [values] if isinstance(values, str) else values
    if not isinstance(countries, list) or not all(
        isinstance(value, str) for value in countries
    ):
        raise vol.Invalid(f"Value '{values}' is not a string or list.")
    for country in countries:
        if not _COUNTRY.match(country.upper()):
            raise vol.Invalid(f"Value '{country}' is not a country code.")
    return [country.upper() for country in countries]


HACS_MANIFEST_JSON_SCHEMA: Final = vol.Schema(
    {
        vol.Optional("content_in_root"): bool,
        vol.Optional("country"): _country_validator,
        vol.Optional("filename"): str,
        vol.Optional("hacs"): str,
        vol.Optional("hide_default_branch"): bool,
        vol.Optional("homeassistant"): str,
        vol.Optional("persistent_directory"): str,
        vol.Optional("render_readme"): bool,
        vol.Optional("zip_release"): bool,
        vol.Required("name"): str,
    },
    extra=vol.PREVENT_EXTRA,
)

_HA_VERSION = r"(\d{4}\.\d{1,2}(?:\.\d+)?)"
# Ways a README states the minimum Home Assistant version.
_README_MINIMUM = (
    re.compile(
        rf"Home\s+Assistant\s+(?:version\s+)?v?{_HA_VERSION}\s+or\s+(?:newer|later|above|higher)",
        re.IGNORECASE,
    ),
    re.compile(
        rf"(?:requires?|minimum|at\s+least)\s+(?:version\s+)?(?:of\s+)?Home\s+Assistant"
        rf"\s+(?:version\s+)?(?:>=\s*|≥\s*)?v?{_HA_VERSION}",
        re.IGNORECASE,
    ),
    re.compile(rf"Home\s+Assistant\s*(?:>=|≥)\s*v?{_HA_VERSION}", re.IGNORECASE),
)
_INFO_FILES = ("readme", "readme.md", "info", "info.md")


def _version_key(value: str) -> tuple[int, int, int]:
    """2025.4 and 2025.4.0 compare equal."""
    parts = [int(part) for part in value.split(".")]
    return (parts[0], parts[1], parts[2] if len(parts) > 2 else 0)


def readme_minimum_versions(readme: Path) -> dict[str, int]:
    """Minimum Home Assistant versions README states, with a line of each."""
    text = readme.read_text(encoding="utf-8")
    found: dict[str, int] = {}
    for pattern in _README_MINIMUM:
        for match in pattern.finditer(text):
            found.setdefault(match.group(1), text.count("\n", 0, match.start()) + 1)
    return found


def check_hacs(root: Path) -> list[Problem]:
    """hacs.json per HACS' schema; its Home Assistant version is README's."""
    report = _Reporter("hacs", root)
    path = root / "hacs.json"
    data = _load_json(path, report)
    if data is None:
        return report.problems
    if not report.schema(path, HACS_MANIFEST_JSON_SCHEMA, data):
        return report.problems
    if data.get("zip_release") and not data.get("filename"):
        report.error(path, "zip_release is True, but filename is not set")
    if not data.get("content_in_root") and integration_dir(root) is None:
        report.error(
            "custom_components",
            "HACS installs the one integration folder in custom_components: "
            "expected exactly one with a manifest.json",
        )

    readmes = [
        child
        for child in sorted(root.iterdir())
        if child.is_file() and child.name.lower() in _INFO_FILES
    ]
    if not readmes:
        report.error("README.md", "the repository has no information file (README)")
        return report.problems
    readme = readmes[0]

    declared = data.get("homeassistant")
    if declared is None:
        report.error(path, "no 'homeassistant' key: the minimum version is not set")
    elif not re.fullmatch(_HA_VERSION, declared) or (
        AwesomeVersion(declared).strategy is not AwesomeVersionStrategy.CALVER
    ):
        report.error(
            path, f"homeassistant '{declared}' is not a Home Assistant version"
        )
        declared = None

    stated = readme_minimum_versions(readme)
    distinct = {_version_key(version) for version in stated}
    if not stated:
        report.error(
            readme,
            "does not state the minimum Home Assistant version clearly "
            "(for example 'Requires Home Assistant 2025.4 or newer.')",
        )
    elif len(distinct) > 1:
        lines = ", ".join(
            f"{version} (line {line})" for version, line in stated.items()
        )
        report.error(readme, f"states several minimum Home Assistant versions: {lines}")
    elif declared is not None and _version_key(declared) not in distinct:
        version, line = next(iter(stated.items()))
        report.error(
            path,
            f"homeassistant is '{declared}' but {readme.name} line {line} states "
            f"Home Assistant {version} as the minimum",
        )
    return report.problems


# --------------------------------------------------------------------------
# 2. manifest.json (hassfest manifest.py CUSTOM_INTEGRATION_MANIFEST_SCHEMA,
#    sort_manifest; HACS INTEGRATION_MANIFEST_JSON_SCHEMA)

SUPPORTED_IOT_CLASSES: Final = [
    "assumed_state",
    "calculated",
    "cloud_polling",
    "cloud_push",
    "local_polling",
    "local_push",
]
INTEGRATION_TYPES: Final = [
    "device",
    "entity",
    "hardware",
    "helper",
    "hub",
    "service",
    "system",
]
SUPPORTED_QUALITY_SCALES: Final = ["internal", "bronze", "silver", "gold", "platinum"]
# What a PrintCam release must have (HACS' required keys, hassfest's, and the
# ones that state what the integration is rather than leaving defaults).
REQUIRED_MANIFEST_KEYS: Final = (
    "domain",
    "name",
    "codeowners",
    "config_flow",
    "documentation",
    "integration_type",
    "iot_class",
    "issue_tracker",
    "requirements",
    "version",
)
_ZEROCONF_TYPE = re.compile(r"^_[a-z0-9-]+\._(?:tcp|udp)\.local\.$")


def _verify_version(value: str) -> str:
    try:
        AwesomeVersion(
            value,
            ensure_strategy=[
                AwesomeVersionStrategy.CALVER,
                AwesomeVersionStrategy.SEMVER,
                AwesomeVersionStrategy.SIMPLEVER,
                AwesomeVersionStrategy.BUILDVER,
                AwesomeVersionStrategy.PEP440,
            ],
        )
    except AwesomeVersionException as err:
        raise vol.Invalid(f"'{value}' is not a valid version.") from err
    return value


def _documentation_url(value: str) -> str:
    parsed = urlparse(value)
    if parsed.scheme != "https":
        raise vol.Invalid("Documentation url is not prefixed with https")
    if parsed.netloc == "www.home-assistant.io" and not parsed.path.startswith(
        "/integrations/"
    ):
        raise vol.Invalid(
            "Documentation url does not begin with www.home-assistant.io/integrations"
        )
    return value


def _https_url(value: str) -> str:
    if urlparse(value).scheme != "https":
        raise vol.Invalid("url is not prefixed with https")
    return value


def _lowercase(value: str) -> str:
    if value.lower() != value:
        raise vol.Invalid("Value needs to be lowercase")
    return value


def _uppercase(value: str) -> str:
    if value.upper() != value:
        raise vol.Invalid("Value needs to be uppercase")
    return value


def _wildcard(value: str) -> str:
    if "*" not in value:
        raise vol.Invalid(f"'{value}' needs to contain a wildcard matcher")
    return value


def _zeroconf_type(value: str) -> str:
    if not _ZEROCONF_TYPE.match(value):
        raise vol.Invalid(
            f"'{value}' is not a zeroconf service type such as '_http._tcp.local.'"
        )
    return value


def _pinned(value: str) -> str:
    try:
        requirement = Requirement(value)
    except InvalidRequirement as err:
        raise vol.Invalid(f"'{value}' is not a requirement: {err}") from err
    specifiers = list(requirement.specifier)
    if (
        len(specifiers) != 1
        or specifiers[0].operator != "=="
        or "*" in specifiers[0].version
        or requirement.url
    ):
        raise vol.Invalid(f"'{value}' is not pinned (package==version)")
    return value


CUSTOM_INTEGRATION_MANIFEST_SCHEMA: Final = vol.Schema(
    {
        vol.Required("domain"): str,
        vol.Required("name"): str,
        vol.Optional("integration_type"): vol.In(INTEGRATION_TYPES),
        vol.Optional("config_flow"): bool,
        vol.Optional("mqtt"): [str],
        vol.Optional("zeroconf"): [
            vol.Any(
                vol.All(str, _zeroconf_type),
                vol.Schema(
                    {
                        vol.Required("type"): vol.All(str, _zeroconf_type),
                        vol.Optional("macaddress"): vol.All(str, _uppercase, _wildcard),
                        vol.Optional("manufacturer"): vol.All(str, _lowercase),
                        vol.Optional("model"): vol.All(str, _lowercase),
                        vol.Optional("name"): vol.All(str, _lowercase),
                        vol.Optional("properties"): vol.Schema({str: _lowercase}),
                    }
                ),
            )
        ],
        vol.Optional("ssdp"): vol.Schema(
            vol.All([vol.All(vol.Schema({}, extra=vol.ALLOW_EXTRA), vol.Length(min=1))])
        ),
        vol.Optional("bluetooth"): [
            vol.Schema(
                {
                    vol.Optional("connectable"): bool,
                    vol.Optional("service_uuid"): vol.All(str, _lowercase),
                    vol.Optional("service_data_uuid"): vol.All(str, _lowercase),
                    vol.Optional("local_name"): vol.All(str),
                    vol.Optional("manufacturer_id"): int,
                    vol.Optional("manufacturer_data_start"): [int],
                }
            )
        ],
        vol.Optional("homekit"): vol.Schema({vol.Optional("models"): [str]}),
        vol.Optional("dhcp"): [
            vol.Schema(
                {
                    vol.Optional("macaddress"): vol.All(str, _uppercase, _wildcard),
                    vol.Optional("hostname"): vol.All(str, _lowercase),
                    vol.Optional("registered_devices"): cv.boolean,
                }
            )
        ],
        vol.Optional("usb"): [
            vol.Schema(
                {
                    vol.Optional("vid"): vol.All(str, _uppercase),
                    vol.Optional("pid"): vol.All(str, _uppercase),
                    vol.Optional("serial_number"): vol.All(str, _lowercase),
                    vol.Optional("manufacturer"): vol.All(str, _lowercase),
                    vol.Optional("description"): vol.All(str, _lowercase),
                    vol.Optional("known_devices"): [str],
                }
            )
        ],
        vol.Required("documentation"): vol.All(vol.Url(), _documentation_url),
        vol.Optional("issue_tracker"): vol.All(vol.Url(), _https_url),
        vol.Optional("quality_scale"): vol.In(SUPPORTED_QUALITY_SCALES),
        vol.Optional("requirements"): [vol.All(str, _pinned)],
        vol.Optional("dependencies"): [str],
        vol.Optional("after_dependencies"): [str],
        vol.Required("codeowners"): [str],
        vol.Optional("loggers"): [str],
        vol.Optional("disabled"): str,
        vol.Optional("iot_class"): vol.In(SUPPORTED_IOT_CLASSES),
        vol.Optional("single_config_entry"): bool,
        vol.Optional("version"): vol.All(str, _verify_version),
        vol.Optional("import_executor"): bool,
    }
)

HACS_INTEGRATION_MANIFEST_SCHEMA: Final = vol.Schema(
    {
        vol.Required("codeowners"): list,
        vol.Required("documentation"): cv.url,
        vol.Required("domain"): str,
        vol.Required("issue_tracker"): cv.url,
        vol.Required("name"): str,
        vol.Required("version"): vol.Coerce(AwesomeVersion),
    },
    extra=vol.ALLOW_EXTRA,
)


def _manifest_sort_key(key: str) -> str:
    return {"domain": ".domain", "name": ".name"}.get(key, key)


def check_manifest(root: Path) -> list[Problem]:
    """manifest.json: keys, order, values as hassfest and HACS check them."""
    report = _Reporter("manifest", root)
    integration = integration_dir(root)
    if integration is None:
        return _no_integration(report)
    path = integration / "manifest.json"
    manifest = _load_json(path, report)
    if not isinstance(manifest, dict):
        if manifest is not None:
            report.error(path, "expected a JSON object")
        return report.problems

    report.schema(path, CUSTOM_INTEGRATION_MANIFEST_SCHEMA, manifest)
    report.schema(path, HACS_INTEGRATION_MANIFEST_SCHEMA, manifest)
    for key in REQUIRED_MANIFEST_KEYS:
        if key not in manifest:
            report.error(path, f"required key '{key}' is missing")

    keys = list(manifest)
    if (wanted := sorted(keys, key=_manifest_sort_key)) != keys:
        report.error(
            path,
            "keys are not sorted correctly: domain, name, then alphabetical order "
            f"({', '.join(wanted)})",
        )

    domain = manifest.get("domain")
    if domain != integration.name:
        report.error(path, f"domain '{domain}' does not match the folder name")
    elif (HA_COMPONENTS / str(domain)).exists():
        report.warn(path, "domain collides with a built-in core integration")
    return report.problems


# --------------------------------------------------------------------------
# 3. Dependencies (hassfest dependencies.py)

ALLOWED_USED_COMPONENTS: Final = {
    *{platform.value for platform in Platform},
    # Internal integrations
    "alert",
    "automation",
    "conversation",
    "default_config",
    "device_automation",
    "frontend",
    "group",
    "homeassistant",
    "input_boolean",
    "input_button",
    "input_datetime",
    "input_number",
    "input_select",
    "input_text",
    "media_source",
    "onboarding",
    "panel_custom",
    "persistent_notification",
    "person",
    "script",
    "shopping_list",
    "sun",
    "system_health",
    "system_log",
    "timer",
    "webhook",
    "websocket_api",
    "zone",
    # Other
    "mjpeg",  # base class, has no reqs or component to load.
    "stream",  # Stream cannot install on all systems, can be imported without reqs.
}


class ImportCollector(ast.NodeVisitor):
    """Collect the integrations each file references (hassfest's collector)."""

    def __init__(self, path: Path) -> None:
        """Collect for the integration at `path`."""
        self.path = path
        self.referenced: dict[Path, set[str]] = {}
        self._current: Path | None = None

    def collect(self) -> None:
        """Parse every .py file of the integration."""
        for fil in sorted(self.path.glob("**/*.py")):
            if not fil.is_file():
                continue
            self._current = fil.relative_to(self.path)
            self.referenced[self._current] = set()
            self.visit(parse_file(fil))
            self._current = None

    def _add_reference(self, domain: str) -> None:
        if self._current is not None:
            self.referenced[self._current].add(domain)

    def visit_If(self, node: ast.If) -> None:  # noqa: N802
        """Skip `if TYPE_CHECKING:` blocks."""
        if isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            return
        self.generic_visit(node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:  # noqa: N802
        """`from homeassistant.components[.x] import y`."""
        if node.module is None:
            return
        if (
            node.module == "homeassistant.components.http.auth"
            and len(node.names) == 1
            and node.names[0].name == "async_sign_path"
        ):
            return
        if node.module.startswith("homeassistant.components."):
            self._add_reference(node.module.split(".")[2])
        elif node.module == "homeassistant.components":
            for name_node in node.names:
                self._add_reference(name_node.name)

    def visit_Import(self, node: ast.Import) -> None:  # noqa: N802
        """`import homeassistant.components.x`."""
        for name_node in node.names:
            if name_node.name.startswith("homeassistant.components."):
                self._add_reference(name_node.name.split(".")[2])

    def visit_Attribute(self, node: ast.Attribute) -> None:  # noqa: N802
        """`hass.components.x` / `self.hass.components.x`."""
        if (
            isinstance(node.value, ast.Attribute)
            and node.value.attr == "components"
            and (
                (
                    isinstance(node.value.value, ast.Name)
                    and node.value.value.id == "hass"
                )
                or (
                    isinstance(node.value.value, ast.Attribute)
                    and node.value.value.attr in ("hass", "_hass")
                )
            )
        ):
            self._add_reference(node.attr)
        else:
            self.generic_visit(node)


def _allowed_references(manifest: dict[str, Any]) -> set[str]:
    allowed = (
        ALLOWED_USED_COMPONENTS
        | set(manifest.get("dependencies", []))
        | set(manifest.get("after_dependencies", []))
    )
    if "bluetooth_adapters" in allowed:
        allowed.add("bluetooth")
    for check_domain, to_check in DISCOVERY_INTEGRATIONS.items():
        if any(check in manifest for check in to_check):
            allowed.add(check_domain)
    return allowed


def undeclared_references(
    integration: Path, manifest: dict[str, Any], integrations: set[str]
) -> dict[str, list[Path]]:
    """Integrations referenced but not allowed, with the files referencing them."""
    collector = ImportCollector(integration)
    collector.collect()
    allowed = _allowed_references(manifest)
    domain = manifest.get("domain", integration.name)
    found: dict[str, list[Path]] = {}
    for path, refs in collector.referenced.items():
        cur = path.stem if len(path.parts) == 1 else path.parts[0]
        is_platform_other_integration = cur in integrations
        for ref in refs:
            if ref == domain or ref in allowed:
                continue
            if is_platform_other_integration and cur == ref:
                continue
            if not is_platform_other_integration and (
                (integration / f"{ref}.py").is_file() or (integration / ref).is_dir()
            ):
                continue
            found.setdefault(ref, []).append(path)
    return found


def check_dependencies(root: Path) -> list[Problem]:
    """Check used integrations are declared and declared ones exist."""
    report = _Reporter("dependencies", root)
    integration = integration_dir(root)
    if integration is None:
        return _no_integration(report)
    manifest = _manifest(root)
    path = integration / "manifest.json"
    core = _core_integrations()
    integrations = set(core) | {integration.name}
    try:
        undeclared = undeclared_references(integration, manifest, integrations)
    except SyntaxError as err:
        report.error(Path(err.filename or integration), f"cannot parse: {err}")
        return report.problems
    for ref, files in sorted(undeclared.items()):
        where = ", ".join(sorted(file.as_posix() for file in files))
        report.error(
            path,
            f"uses integration '{ref}' ({where}) but it is not in 'dependencies' "
            "or 'after_dependencies'",
        )
    dependencies = manifest.get("dependencies", [])
    after = manifest.get("after_dependencies", [])
    for dep in dependencies:
        if dep in after:
            report.error(
                path, f"'{dep}' is both in dependencies and after_dependencies"
            )
    for key, deps in (("dependencies", dependencies), ("after_dependencies", after)):
        for dep in deps:
            if dep not in core:
                report.error(
                    path,
                    f"{key}: '{dep}' is not an integration of Home Assistant "
                    f"{homeassistant.const.__version__}",
                )
    return report.problems


# --------------------------------------------------------------------------
# 4. Translations (hassfest translations.py; scripts/translations.py)

RE_REFERENCE: Final = re.compile(r"\[\%key:(.+)\%\]")
RE_TRANSLATION_KEY: Final = re.compile(r"^(?!.+[_-]{2})(?![_-])[a-z0-9-_]+(?<![_-])$")
RE_COMBINED_REFERENCE: Final = re.compile(r"(.+\[%)|(%\].+)")
RE_PLACEHOLDER_IN_SINGLE_QUOTES: Final = re.compile(r"'{\w+}'")
RE_URL: Final = re.compile(
    r"(((ftp|ftps|scp|http|https|mqtt|mqtts|socket|socks5):\/\/|www\.)"
    r"[a-z0-9]+([\-\.]{1}[a-z0-9]+)*\.[a-z]{2,5}(:[0-9]{1,5})?(\/.*)?)",
    re.IGNORECASE,
)
RE_UNDERSCORE_SLUG: Final = re.compile(r"^[a-z0-9]+(?:_[a-z0-9]+)*$")


def translation_key_validator(value: str) -> str:
    """Accept [a-z0-9-_] keys without leading, trailing or double separators."""
    if RE_TRANSLATION_KEY.match(value) is None:
        raise vol.Invalid(
            f"Invalid translation key '{value}', need to be [a-z0-9-_]+ and"
            " cannot start or end with a hyphen or underscore."
        )
    return value


def _underscore_slug(value: Any) -> str:
    text = str(value)
    if not RE_UNDERSCORE_SLUG.match(text):
        raise vol.Invalid(f"invalid slug {value}")
    return text


def placeholders(value: str) -> set[str]:
    """Return the `{placeholder}` names of a translation string."""
    return {
        field
        for _, field, _, _ in string.Formatter().parse(value)
        if field  # skip literal text
    }


def validate_translation_value(value: Any, allow_placeholders: bool = True) -> str:
    """Reject HTML, URLs, quoted or invalid placeholders, outer spaces."""
    text = cv.string_with_no_html(value)
    if RE_PLACEHOLDER_IN_SINGLE_QUOTES.search(text):
        raise vol.Invalid(
            "the string should not contain placeholders inside single quotes"
        )
    for field in placeholders(text):
        if not allow_placeholders:
            raise vol.Invalid("placeholders are not supported in this value")
        if not field.isidentifier():
            raise vol.Invalid(
                "placeholders must be valid identifiers ([a-zA-Z_][a-zA-Z0-9_]*)"
            )
    if RE_COMBINED_REFERENCE.search(text):
        raise vol.Invalid("the string should not contain combined translations")
    if text != text.strip():
        raise vol.Invalid("the string should not contain leading or trailing spaces")
    if RE_URL.search(text):
        raise vol.Invalid(
            "the string should not contain URLs, "
            "please use description placeholders instead"
        )
    return text


def _value(value: Any) -> str:
    return validate_translation_value(value)


def _no_placeholders(value: Any) -> str:
    return validate_translation_value(value, allow_placeholders=False)


def _data_entry_schema(
    *, title_key: bool, mandatory_description: str | None = None, subentry: bool = False
) -> Callable[[Any], Any]:
    schema: dict[Any, Any] = {
        vol.Optional("flow_title"): _value,
        vol.Required("step"): {
            str: {
                vol.Optional("title"): _value,
                vol.Optional("description"): _value,
                vol.Optional("data"): {str: _value},
                vol.Optional("data_description"): {str: _value},
                vol.Optional("menu_options"): {str: _value},
                vol.Optional("menu_option_descriptions"): {str: _value},
                vol.Optional("submit"): _value,
                vol.Optional("sections"): {
                    str: {
                        vol.Optional("data"): {str: _value},
                        vol.Optional("data_description"): {str: _value},
                        vol.Optional("description"): _value,
                        vol.Optional("name"): _value,
                    },
                },
            }
        },
        vol.Optional("error"): {str: _value},
        vol.Optional("abort"): {str: _value},
        vol.Optional("progress"): {str: _value},
        vol.Optional("create_entry"): {str: _value},
    }
    if subentry:
        schema[vol.Required("entry_type")] = _value
        schema[vol.Required("initiate_flow")] = {
            vol.Required("user"): _value,
            str: _value,
        }
    else:
        schema[vol.Optional("initiate_flow")] = {vol.Required("user"): _value}
    if title_key:
        # hassfest: config.title moved to the root; a warning for custom
        # integrations (reported separately), so accepted here.
        schema[vol.Optional("title")] = _value

    def data_description_in_data(value: dict[str, Any]) -> dict[str, Any]:
        for step_id, step in value["step"].items():
            for key in step.get("data_description", {}):
                if key not in step.get("data", {}):
                    raise vol.Invalid(
                        f"data_description key {key} is not in data",
                        path=["step", step_id, "data_description", key],
                    )
        return value

    validators: list[Callable[[Any], Any]] = [
        vol.Schema(schema),
        data_description_in_data,
    ]
    if mandatory_description is not None:
        step_id = mandatory_description

        def description_set(value: dict[str, Any]) -> dict[str, Any]:
            steps = value["step"]
            if step_id not in steps:
                raise vol.Invalid(f"{step_id} needs to be defined")
            if "description" not in steps[step_id]:
                raise vol.Invalid(f"Step {step_id} needs a description")
            return value

        validators.append(description_set)
    return vol.All(*validators)


def _config_panel(value: Any) -> Any:
    if isinstance(value, dict):
        for key, child in value.items():
            if key != "_":
                translation_key_validator(key)
            _config_panel(child)
        return value
    return _value(value)


def strings_schema(integration_type: str) -> vol.Schema:
    """Return the shape hassfest expects of strings.json and en.json."""
    fields = _slug_keys(
        {
            vol.Required("name"): str,
            vol.Required("description"): _value,
            vol.Optional("example"): _value,
        },
        slug_validator=translation_key_validator,
    )
    return vol.Schema(
        {
            vol.Optional("title"): _value,
            vol.Optional("config"): _data_entry_schema(
                title_key=True,
                mandatory_description="user" if integration_type == "helper" else None,
            ),
            vol.Optional("config_subentries"): _slug_keys(
                _data_entry_schema(title_key=True, subentry=True),
                slug_validator=vol.Any("_", cv.slug),
            ),
            vol.Optional("options"): _data_entry_schema(title_key=False),
            vol.Optional("preview_features"): _slug_keys(
                {
                    vol.Required("name"): _value,
                    vol.Required("description"): _value,
                    vol.Optional("enable_confirmation"): _value,
                    vol.Optional("disable_confirmation"): _value,
                },
                slug_validator=translation_key_validator,
            ),
            vol.Optional("selector"): _slug_keys(
                {
                    vol.Optional("choices"): _slug_keys(
                        _value, slug_validator=translation_key_validator
                    ),
                    vol.Optional("options"): _slug_keys(
                        _value, slug_validator=translation_key_validator
                    ),
                    vol.Optional("unit_of_measurement"): _slug_keys(
                        _value, slug_validator=translation_key_validator
                    ),
                    vol.Optional("fields"): vol.Any(
                        _slug_keys(str),
                        _slug_keys(
                            {
                                vol.Required("name"): str,
                                vol.Required("description"): _value,
                            },
                            slug_validator=translation_key_validator,
                        ),
                    ),
                },
                slug_validator=vol.Any("_", cv.slug),
            ),
            vol.Optional("device_automation"): {
                vol.Optional("action_type"): {str: _value},
                vol.Optional("condition_type"): {str: _value},
                vol.Optional("trigger_type"): {str: _value},
                vol.Optional("trigger_subtype"): {str: _value},
                vol.Optional("extra_fields"): {str: _value},
                vol.Optional("extra_fields_descriptions"): {str: _value},
            },
            vol.Optional("system_health"): {
                vol.Optional("info"): _slug_keys(
                    _value, slug_validator=translation_key_validator
                ),
            },
            vol.Optional("config_panel"): _config_panel,
            vol.Optional("application_credentials"): {
                vol.Optional("description"): _value,
            },
            vol.Optional("issues"): {
                str: vol.All(
                    cv.has_at_least_one_key("description", "fix_flow"),
                    vol.Schema(
                        {
                            vol.Required("title"): _value,
                            vol.Exclusive("description", "fixable"): _value,
                            vol.Exclusive("fix_flow", "fixable"): _data_entry_schema(
                                title_key=False
                            ),
                        },
                    ),
                )
            },
            vol.Optional("entity_component"): _slug_keys(
                {
                    vol.Optional("name"): str,
                    vol.Optional("state"): _slug_keys(
                        _no_placeholders, slug_validator=translation_key_validator
                    ),
                    vol.Optional("state_attributes"): _slug_keys(
                        {
                            vol.Optional("name"): str,
                            vol.Optional("state"): _slug_keys(
                                _no_placeholders,
                                slug_validator=translation_key_validator,
                            ),
                        },
                        slug_validator=translation_key_validator,
                    ),
                },
                slug_validator=vol.Any("_", cv.slug),
            ),
            vol.Optional("device"): _slug_keys(
                {vol.Optional("name"): _value},
                slug_validator=translation_key_validator,
            ),
            vol.Optional("entity"): _slug_keys(
                _slug_keys(
                    {
                        vol.Optional("name"): _value,
                        vol.Optional("state"): _slug_keys(
                            _no_placeholders, slug_validator=translation_key_validator
                        ),
                        vol.Optional("state_attributes"): _slug_keys(
                            {
                                vol.Optional("name"): _no_placeholders,
                                vol.Optional("state"): _slug_keys(
                                    _no_placeholders,
                                    slug_validator=translation_key_validator,
                                ),
                            },
                            slug_validator=translation_key_validator,
                        ),
                        vol.Optional("unit_of_measurement"): _no_placeholders,
                    },
                    slug_validator=translation_key_validator,
                ),
                slug_validator=cv.slug,
            ),
            vol.Optional("exceptions"): _slug_keys(
                {vol.Optional("message"): _value}, slug_validator=cv.slug
            ),
            vol.Optional("services"): _slug_keys(
                {
                    vol.Required("name"): _value,
                    vol.Required("description"): _value,
                    vol.Optional("fields"): fields,
                    vol.Optional("sections"): _slug_keys(
                        {
                            vol.Required("name"): str,
                            vol.Optional("description"): _value,
                        },
                        slug_validator=translation_key_validator,
                    ),
                },
                slug_validator=translation_key_validator,
            ),
            vol.Optional("conditions"): _slug_keys(
                {
                    vol.Required("name"): _value,
                    vol.Required("description"): _value,
                    vol.Optional("fields"): fields,
                },
                slug_validator=_underscore_slug,
            ),
            vol.Optional("triggers"): _slug_keys(
                {
                    vol.Required("name"): _value,
                    vol.Required("description"): _value,
                    vol.Optional("fields"): fields,
                },
                slug_validator=_underscore_slug,
            ),
            vol.Optional("conversation"): {
                vol.Required("agent"): {vol.Required("done"): _value},
            },
            vol.Optional("common"): vol.Schema({cv.slug: _value}),
        }
    )


def _translations_module() -> ModuleType:
    """scripts/translations.py, which writes en.json from strings.json."""
    spec = importlib.util.spec_from_file_location(
        "printcam_translations", TRANSLATIONS_SCRIPT
    )
    if spec is None or spec.loader is None:
        raise ImportError(TRANSLATIONS_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    """Flatten nested keys: {"a": {"b": "x"}} -> {"a.b": "x"}."""
    if not isinstance(node, dict):
        return {prefix: node}
    flat: dict[str, Any] = {}
    for key, value in node.items():
        flat.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def _placeholders_or_none(value: str) -> set[str] | None:
    try:
        return placeholders(value)
    except ValueError:
        return None


def check_translations(root: Path) -> list[Problem]:
    """strings.json's shape; en.json generated from it; other languages match."""
    report = _Reporter("translations", root)
    integration = integration_dir(root)
    if integration is None:
        return _no_integration(report)
    strings_path = integration / "strings.json"
    en_path = integration / "translations" / "en.json"
    if (integration / ".translations").is_dir():
        report.error(
            integration / ".translations",
            "the '.translations' directory has been renamed 'translations'",
        )
    schema = strings_schema(_manifest(root).get("integration_type", "hub"))

    strings = _load_json(strings_path, report)
    en = _load_json(en_path, report)
    for path, data in ((strings_path, strings), (en_path, en)):
        if data is None:
            continue
        report.schema(path, schema, data)
        if isinstance(data, dict) and "title" in data.get("config", {}):
            report.warn(path, "config.title has moved to the root of the file")
        for key, value in flatten(data).items():
            if value == "":
                report.error(path, f"{key} is an empty string")
    if strings is None or en is None:
        return report.problems

    translations = _translations_module()
    try:
        resolved = translations.resolve(strings, strings)
    except (KeyError, TypeError) as err:
        report.error(
            strings_path,
            f"reference to {err} cannot be resolved (neither in strings.json nor "
            "in COMMON of scripts/translations.py)",
        )
        return report.problems
    wanted = json.dumps(resolved, indent=2, ensure_ascii=False) + "\n"
    if en_path.read_text(encoding="utf-8") != wanted:
        flat_wanted, flat_en = flatten(resolved), flatten(en)
        differing = sorted(
            key
            for key in flat_wanted.keys() | flat_en.keys()
            if flat_wanted.get(key) != flat_en.get(key)
        )
        detail = f": {', '.join(differing[:5])}" if differing else " (formatting)"
        report.error(
            en_path,
            f"out of date, run scripts/translations.py{detail}"
            + (f" and {len(differing) - 5} more" if len(differing) > 5 else ""),
        )

    flat_en = flatten(en)
    for path in sorted((integration / "translations").glob("*.json")):
        if path.name == "en.json":
            continue
        other = _load_json(path, report)
        if other is None:
            continue
        _compare_language(report, path, flatten(other), flat_en)
    return report.problems


def _compare_language(
    report: _Reporter, path: Path, flat: dict[str, Any], flat_en: dict[str, Any]
) -> None:
    for key in sorted(flat_en.keys() - flat.keys()):
        report.error(path, f"{key} is missing (en.json has it)")
    for key in sorted(flat.keys() - flat_en.keys()):
        report.error(path, f"{key} is not in en.json")
    for key in sorted(flat.keys() & flat_en.keys()):
        value, english = flat[key], flat_en[key]
        if not isinstance(value, str):
            report.error(path, f"{key} is not a string")
            continue
        if value.strip() == "":
            report.error(path, f"{key} is an empty string")
            continue
        if RE_REFERENCE.search(value):
            report.error(path, f"{key} has an unresolved reference: {value}")
        mine, theirs = _placeholders_or_none(value), _placeholders_or_none(english)
        if mine is None:
            report.error(path, f"{key} has unbalanced braces")
        elif theirs is not None and mine != theirs:
            report.error(
                path,
                f"{key} has placeholders {sorted(mine)}, en.json {sorted(theirs)}",
            )


# --------------------------------------------------------------------------
# 5. Services (hassfest services.py; registrations found in the code)


def _exists(value: Any) -> Any:
    if value is None:
        raise vol.Invalid("Value cannot be None")
    return value


_CUSTOM_EXTRA: Final[dict[Any, Any]] = {
    vol.Optional("description"): str,
    vol.Optional("name"): str,
}


def _unique_fields(fields: Any) -> Any:
    seen: set[str] = set()
    for key, value in fields.items():
        names = value["fields"] if value and "fields" in value else [key]
        for name in names:
            if name in seen:
                raise vol.Invalid(f"Duplicate use of field {name} in service.")
            seen.add(name)
    return fields


@functools.cache
def _services_yaml_schema() -> vol.Schema:
    """Return hassfest's CUSTOM_INTEGRATION_SERVICES_SCHEMA."""
    not_targeted_field = vol.Schema(
        {
            vol.Optional("example"): _exists,
            vol.Optional("default"): _exists,
            vol.Optional("required"): bool,
            vol.Optional("advanced"): bool,
            vol.Optional(CONF_SELECTOR): selector.validate_selector,
            **_CUSTOM_EXTRA,
        }
    )
    targeted_field = not_targeted_field.extend(
        {
            vol.Optional("filter"): {
                vol.Exclusive("attribute", "field_filter"): {
                    vol.Required(str): [
                        vol.All(str, ha_service.validate_attribute_option)
                    ],
                },
                vol.Exclusive("supported_features", "field_filter"): [
                    vol.All(str, ha_service.validate_supported_feature)
                ],
            }
        }
    )

    def service_schema(targeted: bool) -> vol.Schema:
        field = targeted_field if targeted else not_targeted_field
        section = vol.Schema(
            {
                vol.Optional("collapsed"): bool,
                vol.Required("fields"): vol.Schema({str: field}),
                **_CUSTOM_EXTRA,
            }
        )
        schema: dict[Any, Any] = {
            vol.Optional("fields"): vol.All(
                vol.Schema({str: vol.Any(field, section)}), _unique_fields
            ),
            **_CUSTOM_EXTRA,
        }
        if targeted:
            schema[vol.Required("target")] = vol.Any(
                selector.TargetSelector.CONFIG_SCHEMA, None
            )
        return vol.Schema(schema)

    return vol.Schema(
        {cv.slug: vol.Any(service_schema(True), service_schema(False), None)}
    )


_REGISTERS_SERVICES: Final = re.compile(
    r"(hass\.services\.(register|async_register))"
    r"|async_register_entity_service|async_register_admin_service"
)


@dataclass(frozen=True)
class Registration:
    """An action registered in the code."""

    name: str
    file: Path
    line: int


class _Module:
    """A parsed module of the integration: its string constants and imports."""

    def __init__(self, name: str, file: Path) -> None:
        self.name = name
        self.file = file
        self.source = file.read_text(encoding="utf-8")
        self.tree = parse_file(file)
        self.constants: dict[str, str] = {}
        self.imports: dict[str, tuple[str, str | None]] = {}
        for node in self.tree.body:
            if isinstance(node, ast.Assign) and _is_str(node.value):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        self.constants[target.id] = _str(node.value)
            elif (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and node.value is not None
                and _is_str(node.value)
            ):
                self.constants[node.target.id] = _str(node.value)
            elif isinstance(node, ast.ImportFrom) and node.level:
                base = _relative_module(name, node.level, node.module)
                for alias in node.names:
                    # `from .const import X` -> ("…const", "X");
                    # `from . import const` -> ("…const", None)
                    local = alias.asname or alias.name
                    self.imports[local] = (base, alias.name)
                    self.imports.setdefault(
                        f"module:{local}", (f"{base}.{alias.name}", None)
                    )


def _is_str(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str)


def _str(node: ast.expr) -> str:
    return str(node.value) if isinstance(node, ast.Constant) else ""


def _relative_module(current: str, level: int, module: str | None) -> str:
    # current is pkg.mod, or pkg.__init__ for a package: either way its
    # last part is dropped for level 1
    parts = current.split(".")
    base = parts[: len(parts) - level]
    return ".".join([*base, module] if module else base)


def _parse_modules(integration: Path) -> dict[str, _Module]:
    modules: dict[str, _Module] = {}
    for fil in sorted(integration.glob("**/*.py")):
        rel = fil.relative_to(integration).with_suffix("")
        parts = [integration.name, *rel.parts]
        if parts[-1] == "__init__":
            # a package's relative imports start from the package itself
            name = ".".join([*parts[:-1], "__init__"])
        else:
            name = ".".join(parts)
        modules[name] = _Module(name, fil)
    return modules


def _lookup(
    modules: dict[str, _Module], module: str, name: str, depth: int = 0
) -> str | None:
    mod = modules.get(module) or modules.get(f"{module}.__init__")
    if mod is None or depth > 5:
        return None
    if name in mod.constants:
        return mod.constants[name]
    if name in mod.imports:
        source, imported = mod.imports[name]
        if imported is not None:
            return _lookup(modules, source, imported, depth + 1)
    return None


def _resolve(modules: dict[str, _Module], module: str, node: ast.expr) -> str | None:
    if _is_str(node):
        return _str(node)
    if isinstance(node, ast.Name):
        return _lookup(modules, module, node.id)
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        mod = modules[module]
        target = mod.imports.get(f"module:{node.value.id}")
        if target is not None:
            return _lookup(modules, target[0], node.attr)
    return None


def _call_args(call: ast.Call, position: int, keyword: str) -> ast.expr | None:
    if len(call.args) > position:
        return call.args[position]
    for kw in call.keywords:
        if kw.arg == keyword:
            return kw.value
    return None


def find_registrations(
    integration: Path, domain: str
) -> tuple[list[Registration], list[tuple[Path, int, str]]]:
    """Actions the code registers for `domain`, and calls it cannot resolve."""
    modules = _parse_modules(integration)
    found: list[Registration] = []
    unresolved: list[tuple[Path, int, str]] = []
    for module_name, module in modules.items():
        if "register" not in module.source:
            continue
        file = module.file
        for call in ast.walk(module.tree):
            if not isinstance(call, ast.Call):
                continue
            func = call.func
            attr = func.attr if isinstance(func, ast.Attribute) else None
            fname = func.id if isinstance(func, ast.Name) else attr
            name_node: ast.expr | None
            domain_node: ast.expr | None = None
            if (
                attr in ("async_register", "register")
                and isinstance(func, ast.Attribute)
                and isinstance(func.value, ast.Attribute)
                and func.value.attr == "services"
            ):
                domain_node = _call_args(call, 0, "domain")
                name_node = _call_args(call, 1, "service")
            elif fname == "async_register_admin_service":
                domain_node = _call_args(call, 1, "domain")
                name_node = _call_args(call, 2, "service")
            elif fname == "async_register_platform_entity_service":
                domain_node = _call_args(call, 1, "service_domain")
                name_node = _call_args(call, 2, "service_name")
            elif fname == "async_register_entity_service":
                name_node = _call_args(call, 0, "name")
            else:
                continue
            if domain_node is not None:
                registered_domain = _resolve(modules, module_name, domain_node)
                if registered_domain is None:
                    unresolved.append((file, call.lineno, ast.unparse(domain_node)))
                    continue
                if registered_domain != domain:
                    continue  # another integration's action: not described here
            name = (
                None if name_node is None else _resolve(modules, module_name, name_node)
            )
            if name is None:
                text = "?" if name_node is None else ast.unparse(name_node)
                unresolved.append((file, call.lineno, text))
                continue
            found.append(Registration(name, file, call.lineno))
    return found, unresolved


def check_services(root: Path) -> list[Problem]:
    """Check registered actions = services.yaml = strings.json = icons.json."""
    report = _Reporter("services", root)
    integration = integration_dir(root)
    if integration is None:
        return _no_integration(report)
    domain = _manifest(root).get("domain", integration.name)
    services_path = integration / "services.yaml"
    try:
        registrations, unresolved = find_registrations(integration, domain)
    except SyntaxError as err:
        report.error(Path(err.filename or integration), f"cannot parse: {err}")
        return report.problems
    for file, line, text in unresolved:
        report.error(
            file,
            f"line {line}: cannot resolve the action name or domain `{text}`; "
            "use a string or a module-level string constant",
        )
    uses_services = any(
        _REGISTERS_SERVICES.search(fil.read_text(encoding="utf-8"))
        for fil in integration.glob("**/*.py")
    )
    if not services_path.is_file():
        if uses_services or registrations:
            report.error(services_path, "registers actions but has no services.yaml")
        return report.problems
    services = _load_yaml(services_path, report)
    if services is None:
        return report.problems
    if not report.schema(services_path, _services_yaml_schema(), services):
        services = dict.fromkeys(services)  # names only: fields are unreliable

    registered = {reg.name: reg for reg in registrations}
    for name in sorted(registered.keys() - services.keys()):
        reg = registered[name]
        report.error(
            services_path,
            f"action '{name}' (registered in {reg.file.relative_to(root).as_posix()} "
            f"line {reg.line}) is not described",
        )
    for name in sorted(services.keys() - registered.keys()):
        report.error(services_path, f"'{name}' is not an action the code registers")

    strings_path = integration / "strings.json"
    icons_path = integration / "icons.json"
    strings = _read_json_or_empty(strings_path)
    icons = _read_json_or_empty(icons_path)
    _check_service_strings(report, strings_path, strings, services, set(registered))
    service_icons = icons.get("services", {}) if isinstance(icons, dict) else {}
    for name in sorted(set(registered) - set(service_icons)):
        report.error(icons_path, f"action '{name}' has no icon in services")
    for name in sorted(set(service_icons) - set(registered)):
        report.error(icons_path, f"services.{name} is not an action the code registers")
    return report.problems


def _read_json_or_empty(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # reported by the translations/icons/json rules
    return data if isinstance(data, dict) else {}


def _check_service_strings(
    report: _Reporter,
    path: Path,
    strings: dict[str, Any],
    services: dict[str, Any],
    registered: set[str],
) -> None:
    texts = strings.get("services") or {}
    for name in sorted(registered):
        text = texts.get(name)
        if not isinstance(text, dict):
            report.error(path, f"action '{name}' has no entry in services")
            continue
        for key in ("name", "description"):
            if not text.get(key):
                report.error(path, f"services.{name} has no {key}")
        schema = services.get(name) or {}
        yaml_fields: set[str] = set()
        yaml_sections: set[str] = set()
        for field, field_schema in (schema.get("fields") or {}).items():
            if isinstance(field_schema, dict) and "fields" in field_schema:
                yaml_sections.add(field)
                yaml_fields.update(field_schema["fields"])
            else:
                yaml_fields.add(field)
            selectors = (field_schema or {}).get("selector") or {}
            select_key = (selectors.get("select") or {}).get("translation_key")
            if select_key and select_key not in strings.get("selector", {}):
                report.error(
                    path,
                    f"services.yaml {name}.{field} uses selector translation key "
                    f"'{select_key}', which is not in selector",
                )
        fields = text.get("fields", {})
        for field in sorted(yaml_fields):
            for key in ("name", "description"):
                if not (fields.get(field) or {}).get(key):
                    report.error(path, f"services.{name}.fields.{field} has no {key}")
        for field in sorted(set(fields) - yaml_fields):
            report.error(
                path, f"services.{name}.fields.{field} is not a field in services.yaml"
            )
        sections = text.get("sections", {})
        for section in sorted(yaml_sections):
            if not (sections.get(section) or {}).get("name"):
                report.error(path, f"services.{name}.sections.{section} has no name")
    for name in sorted(set(texts) - registered):
        report.error(path, f"services.{name} is not an action the code registers")


# --------------------------------------------------------------------------
# 6. Icons (hassfest icons.py; Home Assistant's helpers/icon.py for the
#    service icon format)


def icon_value_validator(value: Any) -> str:
    """Accept an `mdi:` icon."""
    text = cv.string_with_no_html(value)
    if not text.startswith("mdi:"):
        raise vol.Invalid(
            "The icon needs to be a valid icon from Material Design Icons and start with `mdi:`"
        )
    return str(text)


def _require_default_icon(value: dict[str, Any]) -> dict[str, Any]:
    if "_" not in value:
        raise vol.Invalid(
            "An entity component needs to have a default icon defined with `_`"
        )
    return value


def _not_same_as_default(value: dict[str, Any]) -> dict[str, Any]:
    for translation_key, section in value.items():
        if (default := section.get("default")) and (states := section.get("state")):
            for state, icon in states.items():
                if icon == default:
                    raise vol.Invalid(
                        f"The icon for state `{translation_key}.{state}` is the"
                        " same as the default icon and thus can be removed"
                    )
    return value


def icons_schema(integration_type: str) -> vol.Schema:
    """Return the shape hassfest expects of icons.json."""
    state = _slug_keys(icon_value_validator, slug_validator=translation_key_validator)
    data_entry = vol.Schema({"step": {str: {"section": {str: icon_value_validator}}}})
    # helpers/icon.py (2025.4): an action's icon is "mdi:x" (shorthand) or
    # {"service": "mdi:x", "sections": {section: "mdi:y"}}.
    service_icon = vol.Any(
        icon_value_validator,
        vol.Schema(
            {
                vol.Required("service"): icon_value_validator,
                vol.Optional("sections"): _slug_keys(
                    icon_value_validator, slug_validator=translation_key_validator
                ),
            }
        ),
    )

    def slug_schema(marker: type[vol.Marker]) -> dict[vol.Marker, Any]:
        return {
            marker("default"): icon_value_validator,
            vol.Optional("state"): state,
            vol.Optional("state_attributes"): vol.All(
                _slug_keys(
                    {marker("default"): icon_value_validator, marker("state"): state},
                    slug_validator=translation_key_validator,
                ),
                _not_same_as_default,
            ),
        }

    schema = vol.Schema(
        {
            vol.Optional("config"): data_entry,
            vol.Optional("issues"): vol.Schema({str: {"fix_flow": data_entry}}),
            vol.Optional("options"): data_entry,
            vol.Optional("services"): _slug_keys(
                service_icon, slug_validator=translation_key_validator
            ),
        }
    )
    if integration_type in ("entity", "helper", "system"):
        field = (
            vol.Required("entity_component")
            if integration_type == "entity"
            else vol.Optional("entity_component")
        )
        schema = schema.extend(
            {
                field: vol.All(
                    _slug_keys(
                        slug_schema(vol.Required), slug_validator=vol.Any("_", cv.slug)
                    ),
                    _require_default_icon,
                    _not_same_as_default,
                )
            }
        )
    if integration_type not in ("entity", "system"):
        schema = schema.extend(
            {
                vol.Optional("entity"): _slug_keys(
                    _slug_keys(
                        slug_schema(vol.Optional),
                        slug_validator=translation_key_validator,
                    ),
                    slug_validator=cv.slug,
                )
            }
        )
    return schema


def check_icons(root: Path) -> list[Problem]:
    """icons.json valid; one icon entry per entity translation key, no more."""
    report = _Reporter("icons", root)
    integration = integration_dir(root)
    if integration is None:
        return _no_integration(report)
    path = integration / "icons.json"
    icons = _load_json(path, report)
    if not isinstance(icons, dict):
        return report.problems
    integration_type = _manifest(root).get("integration_type", "hub")
    if not report.schema(path, icons_schema(integration_type), icons):
        return report.problems
    strings = _read_json_or_empty(integration / "strings.json")

    entity_icons: dict[str, dict[str, Any]] = icons.get("entity", {})
    entity_strings: dict[str, dict[str, Any]] = {
        platform: keys
        for platform, keys in (strings.get("entity") or {}).items()
        if isinstance(keys, dict)
    }
    for platform, keys in sorted(entity_strings.items()):
        for key, texts in sorted(keys.items()):
            icon = entity_icons.get(platform, {}).get(key)
            if icon is None:
                report.error(path, f"entity.{platform}.{key} has no icon")
                continue
            _compare_states(report, path, f"entity.{platform}.{key}", texts, icon)
    for platform, keys in sorted(entity_icons.items()):
        for key, icon in sorted(keys.items()):
            if key not in entity_strings.get(platform, {}):
                report.error(
                    path,
                    f"entity.{platform}.{key} is not an entity key of strings.json",
                )
            default, states = icon.get("default"), icon.get("state", {})
            for state, state_icon in sorted(states.items()):
                if default and state_icon == default:
                    # hassfest's intent; its check does not reach this level.
                    report.warn(
                        path,
                        f"entity.{platform}.{key}.state.{state} is the default icon "
                        "and thus can be removed",
                    )
    return report.problems


def _compare_states(
    report: _Reporter, path: Path, where: str, texts: Any, icon: dict[str, Any]
) -> None:
    """Check that, where icons.json maps states, they are strings.json's."""
    if not isinstance(texts, dict):
        return  # strings.json's shape is the translations rule's
    pairs = [(where, texts.get("state"), icon.get("state"), icon.get("default"))]
    for attribute, attr_icon in icon.get("state_attributes", {}).items():
        attr_texts = (texts.get("state_attributes") or {}).get(attribute) or {}
        pairs.append(
            (
                f"{where}.state_attributes.{attribute}",
                attr_texts.get("state"),
                attr_icon.get("state"),
                attr_icon.get("default"),
            )
        )
    for at, text_states, icon_states, default in pairs:
        if not isinstance(text_states, dict) or not isinstance(icon_states, dict):
            continue  # no translated states (binary_sensor, switch) or no map
        if not default:  # without a default, every state needs its icon
            for state in sorted(text_states.keys() - icon_states.keys()):
                report.error(path, f"{at}.state.{state} has no icon")
        for state in sorted(icon_states.keys() - text_states.keys()):
            report.error(path, f"{at}.state.{state} is not a state in strings.json")


# --------------------------------------------------------------------------
# 7. quality_scale.yaml (hassfest quality_scale.py ALL_RULES and SCHEMA)

# hassfest's ALL_RULES, copied from home-assistant/core
# script/hassfest/quality_scale.py at 008538e822535b1d6155c91f6642127afa184ed1
# (an older stored version, b36f31273eb1, lacks docs-conditions and
# docs-triggers; hassfest itself only checks core integrations' files).
QUALITY_SCALE_RULES: Final[dict[str, tuple[str, ...]]] = {
    "bronze": (
        "action-setup",
        "appropriate-polling",
        "brands",
        "common-modules",
        "config-flow",
        "config-flow-test-coverage",
        "dependency-transparency",
        "docs-actions",
        "docs-conditions",
        "docs-high-level-description",
        "docs-installation-instructions",
        "docs-removal-instructions",
        "docs-triggers",
        "entity-event-setup",
        "entity-unique-id",
        "has-entity-name",
        "runtime-data",
        "test-before-configure",
        "test-before-setup",
        "unique-config-entry",
    ),
    "silver": (
        "action-exceptions",
        "config-entry-unloading",
        "docs-configuration-parameters",
        "docs-installation-parameters",
        "entity-unavailable",
        "integration-owner",
        "log-when-unavailable",
        "parallel-updates",
        "reauthentication-flow",
        "test-coverage",
    ),
    "gold": (
        "devices",
        "diagnostics",
        "discovery",
        "discovery-update-info",
        "docs-data-update",
        "docs-examples",
        "docs-known-limitations",
        "docs-supported-devices",
        "docs-supported-functions",
        "docs-troubleshooting",
        "docs-use-cases",
        "dynamic-devices",
        "entity-category",
        "entity-device-class",
        "entity-disabled-by-default",
        "entity-translations",
        "exception-translations",
        "icon-translations",
        "reconfiguration-flow",
        "repair-issues",
        "stale-devices",
    ),
    "platinum": (
        "async-dependency",
        "inject-websession",
        "strict-typing",
    ),
}
ALL_RULES: Final = [rule for rules in QUALITY_SCALE_RULES.values() for rule in rules]


def _rule_statuses(data: dict[str, Any]) -> dict[str, Any]:
    statuses: dict[str, Any] = {}
    for name, value in (data.get("rules") or {}).items():
        statuses[name] = value.get("status") if isinstance(value, dict) else value
    return statuses


def quality_scale_tier(root: Path) -> str | None:
    """Return the highest tier whose rules, and all below, are done or exempt."""
    integration = integration_dir(root)
    if integration is None:
        return None
    try:
        data = load_yaml_dict(str(integration / "quality_scale.yaml"))
    except (HomeAssistantError, FileNotFoundError):
        return None
    statuses = _rule_statuses(dict(data))
    reached = None
    for tier, rules in QUALITY_SCALE_RULES.items():
        if any(statuses.get(rule) not in ("done", "exempt") for rule in rules):
            break
        reached = tier
    return reached


def check_quality_scale(root: Path) -> list[Problem]:
    """Every rule of hassfest's scale listed, with a status; reasons given."""
    report = _Reporter("quality_scale", root)
    integration = integration_dir(root)
    if integration is None:
        return _no_integration(report)
    path = integration / "quality_scale.yaml"
    data = _load_yaml(path, report)
    if data is None:
        return report.problems
    rules = data.get("rules")
    if set(data) != {"rules"} or not isinstance(rules, dict):
        report.error(path, "expected one key, 'rules', mapping rule names to statuses")
        return report.problems
    for name in ALL_RULES:
        if name not in rules:
            report.error(path, f"rule '{name}' is missing")
    for name in sorted(set(rules) - set(ALL_RULES)):
        report.error(path, f"'{name}' is not a rule of the quality scale")
    for name, value in rules.items():
        if isinstance(value, dict):
            if set(value) - {"status", "comment"}:
                report.error(path, f"{name}: only 'status' and 'comment' are allowed")
            status, comment = value.get("status"), value.get("comment")
        else:
            status, comment = value, None
        if status not in ("done", "todo", "exempt"):
            report.error(path, f"{name}: status '{status}' is not done, todo or exempt")
        elif status in ("todo", "exempt") and not (
            isinstance(comment, str) and comment.strip()
        ):
            report.error(path, f"{name}: {status} needs a comment saying why")
        elif comment is not None and not isinstance(comment, str):
            report.error(path, f"{name}: the comment is not text")
    return report.problems


# --------------------------------------------------------------------------
# 8. Brand (HACS validate/brands.py with hacs/integration#5128; Home
#    Assistant 2026.3 loads custom integrations' brand/ images)

PNG_SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"


def check_brand(root: Path) -> list[Problem]:
    """brand/icon.png is there and is a PNG."""
    report = _Reporter("brand", root)
    integration = integration_dir(root)
    if integration is None:
        return _no_integration(report)
    for name in ("icon.png",):
        path = integration / "brand" / name
        if not path.is_file():
            report.error(path, "is missing (HACS' brands check needs it)")
        elif path.read_bytes()[:8] != PNG_SIGNATURE:
            report.error(path, "is not a PNG image")
    return report.problems


# --------------------------------------------------------------------------
# hassfest json.py and config_schema.py


def check_json(root: Path) -> list[Problem]:
    """Every JSON file of the integration parses (hassfest json.py)."""
    report = _Reporter("json", root)
    integration = integration_dir(root)
    if integration is None:
        return _no_integration(report)
    for path in sorted(integration.glob("**/*.json")):
        try:
            json.loads(path.read_text(encoding="utf-8"))
        except ValueError as err:
            report.error(path, f"invalid JSON: {err}")
    return report.problems


def _assigns_or_imports(module: ast.Module, names: Iterable[str]) -> bool:
    wanted = set(names)
    for item in module.body:
        targets: list[ast.expr] = []
        if isinstance(item, ast.Assign):
            targets = item.targets
        elif isinstance(item, ast.AnnAssign | ast.AugAssign):
            targets = [item.target]
        elif isinstance(item, ast.Import | ast.ImportFrom) and any(
            (alias.asname or alias.name) in wanted for alias in item.names
        ):
            return True
        if any(isinstance(t, ast.Name) and t.id in wanted for t in targets):
            return True
    return False


def check_config_schema(root: Path) -> list[Problem]:
    """async_setup needs a CONFIG_SCHEMA (hassfest config_schema.py).

    hassfest warns here for custom integrations; so does this rule.
    """
    report = _Reporter("config_schema", root)
    integration = integration_dir(root)
    if integration is None:
        return _no_integration(report)
    init = integration / "__init__.py"
    if not init.is_file():
        return report.problems
    try:
        module = parse_file(init)
    except SyntaxError as err:
        report.error(init, f"cannot parse: {err}")
        return report.problems
    has_setup = any(
        isinstance(item, ast.AsyncFunctionDef | ast.FunctionDef)
        and item.name in ("async_setup", "setup")
        for item in module.body
    )
    if has_setup and not _assigns_or_imports(
        module, ("CONFIG_SCHEMA", "PLATFORM_SCHEMA", "PLATFORM_SCHEMA_BASE")
    ):
        report.warn(
            init,
            "implements async_setup/setup but defines no CONFIG_SCHEMA "
            "(use cv.config_entry_only_config_schema(DOMAIN))",
        )
    return report.problems


# --------------------------------------------------------------------------

RULES: Final[dict[str, Callable[[Path], list[Problem]]]] = {
    "hacs": check_hacs,
    "manifest": check_manifest,
    "dependencies": check_dependencies,
    "translations": check_translations,
    "services": check_services,
    "icons": check_icons,
    "quality_scale": check_quality_scale,
    "brand": check_brand,
    "json": check_json,
    "config_schema": check_config_schema,
}


def run(root: Path = ROOT, rules: Iterable[str] | None = None) -> list[Problem]:
    """Problems (and warnings) of the chosen rules, all by default."""
    problems: list[Problem] = []
    for name in rules if rules is not None else RULES:
        problems.extend(RULES[name](root))
    return problems


def _write(text: str) -> None:
    sys.stdout.write(text + "\n")


def main(argv: list[str] | None = None) -> int:
    """Run every rule on the repository (or `--root PATH`); 1 if any fails."""
    args = sys.argv[1:] if argv is None else argv
    root = Path(args[args.index("--root") + 1]).resolve() if "--root" in args else ROOT
    started = time.monotonic()
    problems = run(root)
    elapsed = time.monotonic() - started
    errors = [problem for problem in problems if not problem.warning]
    for problem in problems:
        _write(str(problem))
    failed = sorted({problem.rule for problem in errors})
    tier = quality_scale_tier(root) or "none"
    if errors:
        _write(
            f"repository check: {len(errors)} problem(s) in {', '.join(failed)} "
            f"({len(RULES) - len(failed)}/{len(RULES)} rules pass, "
            f"quality scale tier reached: {tier}, {elapsed:.2f} s)"
        )
        return 1
    _write(
        f"repository check: all {len(RULES)} rules pass (HACS, hassfest: "
        f"{', '.join(RULES)}); quality scale tier reached: {tier}; {elapsed:.2f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
