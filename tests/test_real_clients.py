"""Real clients against a live server: the GraphQL-over-HTTP audit, graphql-ws, GraphQL Code Generator.

The tools come from ``../shared/clients`` (installed by ``scripts/test.sh``, which sets
``CONDUIT_CLIENTS_DIR``). They are part of the suite: a missing tool fails, it is not skipped.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from graph.settings import Settings
from tests.live import live_server

pytestmark = pytest.mark.slow  # node tools and a browser against live servers

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def clients_dir() -> Path:
    path = Path(os.environ.get("CONDUIT_CLIENTS_DIR", ROOT / ".cache" / "clients"))
    assert (path / "node_modules").is_dir(), (
        f"the real clients are not installed in {path}: run `bash scripts/test.sh` (it sets them up)"
    )
    return path


@pytest.fixture
def server(settings: Settings) -> Iterator[str]:
    with live_server(settings) as url:
        yield url + "/graphql"


def run(clients: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(args), cwd=clients, capture_output=True, text=True, timeout=180, env={**os.environ, **(env or {})}
    )


def test_graphql_over_http_audit_passes_with_no_warnings(clients_dir: Path, server: str) -> None:
    result = run(clients_dir, "node", "audit_http.mjs", server, "--max-warnings", "0")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "61 passed, 0 warnings, 0 failed"


def test_graphql_ws_client_receives_comment_added_on_both_protocols(clients_dir: Path, server: str) -> None:
    def gql(query: str, token: str | None = None) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.post(server, json={"query": query}, headers=headers).json()["data"]

    register = (
        'mutation { register(input: {username: "ws", email: "ws@example.com", password: "password123"}) { token } }'
    )
    token = gql(register)["register"]["token"]
    gql('mutation { createArticle(input: {title: "Live", description: "d", body: "b"}) { slug } }', token)
    result = run(
        clients_dir,
        "node",
        "ws_subscribe.mjs",
        server,
        'subscription { commentAdded(slug: "live") { body author { username } } }',
        'mutation { addComment(slug: "live", body: "over the wire") { id } }',
        "--protocols",
        "transport,legacy",
        "--expect",
        "over the wire",
        env={"TOKEN": str(token)},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().splitlines()[-1] == "2 passed, 0 failed"


def test_codegen_typechecks_the_example_operations(clients_dir: Path) -> None:
    result = run(
        clients_dir,
        "bash",
        "codegen_check.sh",
        str(ROOT / "schema.graphql"),
        str(ROOT / "examples" / "operations" / "*.graphql"),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().splitlines()[-1] == "codegen_check: 2 passed, 0 failed"


def test_example_operations_run_against_the_server(server: str) -> None:
    """Every README example validates and runs (anonymous ones return data, not errors)."""
    documents = sorted((ROOT / "examples" / "operations").glob("*.graphql"))
    assert documents
    text = (ROOT / "examples" / "operations" / "home.graphql").read_text()
    response = httpx.post(server, json={"query": text, "operationName": "HomePage", "variables": {"first": 5}})
    body = response.json()
    assert "errors" not in body, json.dumps(body)[:2000]
    assert body["data"]["articles"]["totalCount"] == 0


@pytest.mark.browser
def test_playground_works_offline_in_a_browser(clients_dir: Path, server: str, tmp_path: Path) -> None:
    result = run(clients_dir, "node", "browser_graphiql.mjs", server, str(tmp_path / "graphiql.png"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().splitlines()[-1] == "browser_graphiql: 5 passed, 0 failed"
    assert "browser console errors" not in result.stdout, result.stdout  # e.g. a Content-Security-Policy violation


@pytest.mark.browser
def test_playground_runs_under_its_content_security_policy(clients_dir: Path, server: str) -> None:
    """Queries, a subscription, every panel and dialog: no violation of the playground's CSP."""
    script = clients_dir / "playground_csp.mjs"
    script.write_text((ROOT / "tests" / "browser" / "playground_csp.mjs").read_text())
    result = run(clients_dir, "node", str(script), server)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.strip().splitlines()
    assert '"totalCount": 0' in next(line for line in lines if line.startswith("query:")), result.stdout
    opened = [line.removeprefix("opened: ") for line in lines if line.startswith("opened: ")]
    assert opened == [
        "Show Documentation Explorer",
        "Show History",
        "Show GraphiQL Explorer",
        "Open settings dialog",  # a dialog, where GraphiQL injects a <style>
        "Open short keys dialog",
    ], result.stdout
    assert "subscription: subscribed over WebSocket" in lines, result.stdout
    assert lines[-1] == "playground_csp: 0 violations", result.stdout


@pytest.mark.browser
def test_first_session_in_the_playground(clients_dir: Path, server: str, tmp_path: Path) -> None:
    """Register, log in, set the header, write, watch a comment arrive in a second tab, page."""
    script = clients_dir / "walkthrough.mjs"
    script.write_text((ROOT / "tests" / "browser" / "walkthrough.mjs").read_text())
    result = run(clients_dir, "node", str(script), server, str(tmp_path / "subscription.png"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "external requests: 0" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "walkthrough: 1 passed, 0 failed"
