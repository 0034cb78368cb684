"""RealWorld's own API suite against ``/api``: its Postman collection, run by newman, unmodified.

The collection, the spec and the script that runs them are in ``../shared/realworld`` (byte for
byte from the RealWorld repository); the script runs here as it is, with a fresh user, against a
live server on SQLite and on PostgreSQL. ``npx newman`` resolves to newman 6 pinned in
``tests/realworld/package.json``, installed by ``scripts/test.sh`` into ``.cache/realworld``
(npm offline at test time: nothing is fetched). Every assertion must pass; the counts are printed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from graph.settings import Settings
from tests.live import live_server

pytestmark = pytest.mark.slow  # node and a live server

ROOT = Path(__file__).resolve().parent.parent
SUITE = ROOT.parent / "shared" / "realworld"
NEWMAN = ROOT / "tests" / "realworld"
EXPECTED_REQUESTS = 32  # the collection's requests (../shared/realworld/README.md)
# Its assertions on a fresh database: fewer would mean some were skipped (most sit behind an
# `if (responseCode.code === 200)` or a non-empty list), which is no pass.
EXPECTED_ASSERTIONS = 311


@pytest.fixture(scope="module")
def newman_dir() -> Path:
    """Where newman is installed: ``CONDUIT_REALWORLD_DIR`` or ``.cache/realworld`` (``scripts/test.sh``)."""
    path = Path(os.environ.get("CONDUIT_REALWORLD_DIR", ROOT / ".cache" / "realworld"))
    assert (path / "node_modules" / ".bin" / "newman").exists(), (
        f"newman is not installed in {path}: run `bash scripts/test.sh` (it installs tests/realworld/package.json)"
    )
    for name in ("package.json", "package-lock.json"):  # the pinned version, not an older install
        assert (path / name).read_bytes() == (NEWMAN / name).read_bytes(), f"{path} is stale: run scripts/test.sh"
    return path


@pytest.fixture
def api(settings: Settings) -> Iterator[str]:
    with live_server(settings) as url:
        yield url + "/api"


def run_collection(newman_dir: Path, api: str, report: Path) -> tuple[subprocess.CompletedProcess[str], Any]:
    """``run-api-tests.sh`` as RealWorld runs it, with a fresh user; newman's JSON report too."""
    username = "u" + uuid.uuid4().hex[:12]
    env = {
        **os.environ,
        "APIURL": api,
        "USERNAME": username,
        "EMAIL": f"{username}@mail.com",
        "PASSWORD": "password-" + uuid.uuid4().hex[:8],
        # newman 6 refuses 0 ("The value must be a positive integer"): 1 ms is the least delay it takes
        "DELAY_REQUEST": "1",
        # the pinned newman, and npm never goes to the registry
        "PATH": f"{newman_dir / 'node_modules' / '.bin'}{os.pathsep}{os.environ['PATH']}",
        "npm_config_offline": "true",
        "npm_config_update_notifier": "false",
    }
    result = subprocess.run(
        [
            shutil.which("bash") or "/bin/bash",
            str(SUITE / "run-api-tests.sh"),
            "--reporters",
            "cli,json",
            "--reporter-json-export",
            str(report),
        ],
        cwd=newman_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    summary = json.loads(report.read_text()) if report.exists() else None
    return result, summary


def test_realworld_postman_collection_passes(newman_dir: Path, api: str, tmp_path: Path, engine_name: str) -> None:
    assert shutil.which("node"), "node is needed (scripts/test.sh)"
    result, summary = run_collection(newman_dir, api, tmp_path / "newman.json")
    output = result.stdout[-6000:] + result.stderr[-2000:]
    assert summary is not None, output
    stats = summary["run"]["stats"]
    failures = [
        f"{failure['source']['name']}: {failure['error'].get('test', '')} {failure['error']['message']}"
        for failure in summary["run"]["failures"]
    ]
    print(
        f"newman on {engine_name}: {stats['requests']['total']} requests, "
        f"{stats['assertions']['total']} assertions, {stats['assertions']['failed']} failed"
    )
    assert failures == [], output
    assert result.returncode == 0, output
    assert stats["requests"]["total"] == EXPECTED_REQUESTS and stats["requests"]["failed"] == 0
    assert stats["assertions"]["total"] == EXPECTED_ASSERTIONS and stats["assertions"]["failed"] == 0
