"""schemathesis against ``/api/openapi.json`` on a live server: no 5xx, and answers as documented.

schemathesis (``../shared/clients``, installed by ``scripts/test.sh`` into ``.cache/clients``)
reads the generated document and sends what it describes and what it does not (its coverage,
fuzzing and stateful phases), signed in as a user, with a fixed seed. Every response it records
must be below 500, and of a status, media type and body schema the document gives. Its checks of
the requests' side are left out: a blank title is refused (422) though the document, like the
spec's, cannot say that a string must not be blank.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import httpx
import pytest

from graph.settings import Settings
from tests.live import live_server

pytestmark = pytest.mark.slow  # a live server and a few hundred generated requests

ROOT = Path(__file__).resolve().parent.parent
MAX_EXAMPLES = 20


@pytest.fixture(scope="module")
def schemathesis() -> Path:
    clients = Path(os.environ.get("CONDUIT_CLIENTS_DIR", ROOT / ".cache" / "clients"))
    path = clients / ".venv" / "bin" / "schemathesis"
    assert path.exists(), f"schemathesis is not installed in {clients}: run `bash scripts/test.sh`"
    return path


def test_no_generated_request_gets_a_server_error(schemathesis: Path, settings: Settings, tmp_path: Path) -> None:
    # a budget a real deployment could give a busy client: fuzzing should reach the resolvers
    with live_server(settings.model_copy(update={"rate_limit_points": 1_000_000})) as base:
        user = {"username": "fuzz", "email": "fuzz@example.com", "password": "password123"}
        token = httpx.post(f"{base}/api/users", json={"user": user}).json()["user"]["token"]
        result = subprocess.run(
            [
                str(schemathesis),
                "run",
                f"{base}/api/openapi.json",
                "--url",
                f"{base}/api",
                "--max-examples",
                str(MAX_EXAMPLES),
                "--seed",
                "1",
                "--workers",
                "1",
                "--no-color",
                "--generation-database",
                "none",
                "--checks",
                "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
                "--report",
                "ndjson",
                "--report-dir",
                str(tmp_path),
                "-H",
                f"Authorization: Token {token}",
            ],
            cwd=tmp_path,  # schemathesis leaves a .schemathesis/ folder in its working directory
            capture_output=True,
            text=True,
            timeout=300,
        )
    statuses: dict[int, int] = {}
    for report in tmp_path.glob("ndjson-*.ndjson"):
        for line in report.read_text().splitlines():
            finished = json.loads(line).get("ScenarioFinished")
            for interaction in ((finished or {}).get("recorder") or {}).get("interactions", {}).values():
                status = (interaction.get("response") or {}).get("status_code", 0)
                statuses[status] = statuses.get(status, 0) + 1
    print(f"schemathesis: {sum(statuses.values())} requests, statuses {dict(sorted(statuses.items()))}")
    assert sum(statuses.values()) > 300, result.stdout[-3000:] + result.stderr[-2000:]
    assert not [status for status in statuses if status >= 500 or status == 0], statuses
    assert result.returncode == 0, result.stdout[-3000:]
