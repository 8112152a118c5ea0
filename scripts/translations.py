"""Write translations/en.json from strings.json, resolving common keys.

Home Assistant core resolves `[%key:common::...%]` references at build time;
a custom integration ships the resolved English file. Run after editing
strings.json: `.venv/bin/python scripts/translations.py` (scripts/test checks
the two files agree).
"""

from __future__ import annotations

import json
from pathlib import Path
import re
import sys
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
STRINGS = ROOT / "custom_components" / "printcam" / "strings.json"
EN = ROOT / "custom_components" / "printcam" / "translations" / "en.json"

COMMON = {
    "common::config_flow::abort::reauth_successful": "Re-authentication was successful",
    "common::config_flow::abort::reconfigure_successful": "Re-configuration was successful",
    "common::config_flow::abort::already_configured_device": "Device is already configured",
    "common::config_flow::data::password": "Password",
    "common::config_flow::data::username": "Username",
    "common::config_flow::data::host": "Host",
    "common::config_flow::data::port": "Port",
    "common::config_flow::data::verify_ssl": "Verify SSL certificate",
    "common::config_flow::data::ssl": "Uses an SSL certificate",
    "common::config_flow::data::api_key": "API key",
    "common::config_flow::error::unknown": "Unexpected error",
    "common::config_flow::error::cannot_connect": "Failed to connect",
}
REF = re.compile(r"\[%key:([^%]+)%\]")


def resolve(node: Any, strings: dict[str, Any]) -> Any:
    """Replace every reference in `node` by its text."""
    if isinstance(node, dict):
        return {key: resolve(value, strings) for key, value in node.items()}
    if isinstance(node, str):

        def text(match: re.Match[str]) -> str:
            key = match.group(1)
            if key in COMMON:
                return COMMON[key]
            value: Any = strings
            for part in key.split("::"):
                value = value[part]
            return str(resolve(value, strings))

        return REF.sub(text, node)
    return node


def main() -> int:
    """Write en.json, or with --check only compare; return the exit status."""
    strings = json.loads(STRINGS.read_text(encoding="utf-8"))
    wanted = json.dumps(resolve(strings, strings), indent=2, ensure_ascii=False) + "\n"
    if "--check" in sys.argv:
        if EN.read_text(encoding="utf-8") != wanted:
            print("translations/en.json is out of date: run scripts/translations.py")  # noqa: T201
            return 1
        return 0
    EN.write_text(wanted, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
