"""The README says what the code does: its settings table lists every setting, and only those."""

from __future__ import annotations

import re
from pathlib import Path

from graph.settings import Settings

README = Path(__file__).resolve().parent.parent / "README.md"


def _configuration_section() -> str:
    text = README.read_text()
    start = text.index("## Configuration")
    return text[start : text.index("\n## ", start + 1)]


def test_the_readme_settings_table_lists_every_setting_once() -> None:
    rows = re.findall(r"^\| `CONDUIT_([A-Z0-9_]+)` \|", _configuration_section(), flags=re.MULTILINE)
    documented = [name.lower() for name in rows]
    fields = set(Settings.model_fields)
    assert sorted(fields - set(documented)) == [], "settings missing from README.md's table"
    assert sorted(set(documented) - fields) == [], "README.md's table lists settings that do not exist"
    assert len(documented) == len(set(documented)), "a setting is listed twice"


def test_every_settings_field_is_read_from_its_conduit_variable() -> None:
    assert Settings.model_config["env_prefix"] == "CONDUIT_"
    assert all(field.alias is None and not field.validation_alias for field in Settings.model_fields.values())
