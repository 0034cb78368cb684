"""The committed schema.graphql is the code's schema, and it keeps the contract."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from graph.schema import export_sdl

ROOT = Path(__file__).resolve().parent.parent
CONTRACT_CHECK = ROOT.parent / "shared" / "tools" / "check_contract.py"


def test_committed_schema_is_current() -> None:
    committed = (ROOT / "schema.graphql").read_text()
    assert committed == export_sdl(), "schema.graphql is stale: run `conduit schema export`"


def test_schema_keeps_the_contract() -> None:
    assert CONTRACT_CHECK.exists(), f"{CONTRACT_CHECK} is missing: check out ../shared beside the project"
    result = subprocess.run(
        [sys.executable, str(CONTRACT_CHECK), str(ROOT / "schema.graphql")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 breaking differences" in result.stdout


def test_example_operations_are_valid_against_the_schema() -> None:
    from graphql import build_schema, parse, validate

    schema = build_schema(export_sdl())
    documents = sorted((ROOT / "examples" / "operations").glob("*.graphql"))
    assert len(documents) >= 4
    for path in documents:
        errors = validate(schema, parse(path.read_text()))
        assert not errors, f"{path.name}: {errors}"
