"""The reference pages: ``/docs`` (the GraphQL reference) and ``/api/docs`` (the REST reference page).

Served from the committed files in every mode (``graph/docs.py``); the committed files are what
``conduit docs build`` makes from the code's schema; Chromium renders both offline under their
Content-Security-Policy (``tests/browser/reference_pages.mjs``).
"""

from __future__ import annotations

import filecmp
import os
import re
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from graphql import GraphQLObjectType, build_schema, is_introspection_type
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from graph.docs import API_DOCS, API_DOCS_CSP, DOCS_CSP, DOCS_SITE
from graph.schema import export_sdl
from graph.settings import Settings
from tests.conftest import SECRET
from tests.graph.test_compression import serving
from tests.live import live_app
from tests.test_real_clients import clients_dir, run  # noqa: F401  (clients_dir: a fixture)

ROOT = Path(__file__).resolve().parent.parent

# what `conduit docs build` writes into graph/static/apidocs (the rest of that folder is ours)
REDOC_FILES = ("redoc.standalone.js", "redoc.standalone.js.LICENSE.txt", "LICENSE.redoc")


@pytest.fixture(
    params=[
        pytest.param({"env": "development"}, id="development"),
        pytest.param({"env": "development", "introspection": False, "playground": False}, id="no-introspection"),
        pytest.param({"env": "production"}, id="production"),
    ]
)
async def client(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'unused.db'}", jwt_secret=SECRET)
    async with serving(settings, jwt_secret_file=tmp_path / "secret", **request.param) as http:
        yield http


def local_assets(html: str) -> list[str]:
    """The ``src`` and ``href`` values of a page that load something (not links to anchors or pages)."""
    loads = re.findall(r'<(?:script|link|img)\b[^>]*?\b(?:src|href)="([^"]+)"', html)
    return [value for value in loads if not value.startswith("#")]


async def test_docs_are_served_in_every_mode(client: httpx.AsyncClient) -> None:
    redirect = await client.get("/docs")
    assert redirect.status_code == 308 and redirect.headers["location"].endswith("/docs/")
    page = await client.get("/docs/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"] == DOCS_CSP
    assert page.headers["x-content-type-options"] == "nosniff"
    assets = local_assets(page.text)
    assert sorted(assets) == ["javascripts/spectaql.min.js", "stylesheets/spectaql.min.css"], assets
    for asset in assets:
        response = await client.get(f"/docs/{asset}")
        assert response.status_code == 200, asset
        assert response.headers["content-security-policy"] == DOCS_CSP


async def test_api_reference_page_is_served_in_every_mode(client: httpx.AsyncClient) -> None:
    redirect = await client.get("/api/docs")
    assert redirect.status_code == 308 and redirect.headers["location"].endswith("/api/docs/")
    page = await client.get("/api/docs/")
    assert page.status_code == 200
    assert page.headers["content-security-policy"] == API_DOCS_CSP
    assets = local_assets(page.text)
    assert sorted(assets) == ["apidocs.css", "apidocs.js", "redoc.standalone.js"], assets
    for asset in assets:
        assert (await client.get(f"/api/docs/{asset}")).status_code == 200, asset


@pytest.mark.parametrize("path", ["/docs/missing.html", "/docs/../graph/app.py", "/docs/%2e%2e/app.py", "/api/docs/x"])
async def test_nothing_else_is_served_under_them(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 404
    assert "Content-Security-Policy" in response.headers


def test_reference_lists_every_type_and_operation() -> None:
    schema = build_schema(export_sdl())
    html = (DOCS_SITE / "index.html").read_text()
    anchors = set(re.findall(r'<(?:section|div)[^>]* id="([^"]+)"', html))
    expected = {f"definition-{name}" for name, kind in schema.type_map.items() if not is_introspection_type(kind)}
    for prefix, root in (("query", schema.query_type), ("mutation", schema.mutation_type)):
        assert isinstance(root, GraphQLObjectType)
        expected |= {f"{prefix}-{field}" for field in root.fields}
    assert schema.subscription_type is not None
    expected |= {f"subscription-{field}" for field in schema.subscription_type.fields}
    # the root types are listed as operations
    expected -= {"definition-Query", "definition-Mutation", "definition-Subscription"}
    assert expected - anchors == set()
    for example in sorted((ROOT / "examples" / "operations").glob("*.graphql")):
        assert f"examples/operations/{example.name}" in html
        for name in re.findall(r"^(?:query|mutation|subscription) (\w+)", example.read_text(), re.MULTILINE):
            assert f"<code>{name}</code>" in html, (example.name, name)


@pytest.mark.slow  # installs the generators with npm the first time
def test_committed_reference_is_what_the_build_makes(tmp_path: Path) -> None:
    """`conduit docs build` from the code's schema reproduces the committed files, byte for byte."""
    result = subprocess.run(
        [sys.executable, "-m", "graph.cli", "docs", "build", "--output", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    built = filecmp.dircmp(tmp_path / "docs", DOCS_SITE)
    stale: list[str] = []

    def collect(comparison: filecmp.dircmp[str], prefix: str) -> None:
        stale.extend(prefix + name for name in comparison.left_only + comparison.right_only + comparison.diff_files)
        for name, sub in comparison.subdirs.items():
            collect(sub, f"{prefix}{name}/")

    collect(built, "docs/")
    _match, mismatch, errors = filecmp.cmpfiles(tmp_path / "apidocs", API_DOCS, REDOC_FILES, shallow=False)
    stale += [f"apidocs/{name}" for name in mismatch + errors]
    assert not stale, f"the committed reference is stale: run `conduit docs build` ({stale})"


def served(template_db: Path, tmp_path: Path, **changes: Any) -> Settings:
    """Settings for a live server on a migrated SQLite database of its own."""
    shutil.copy(template_db, tmp_path / "conduit.db")
    database_url = f"sqlite:///{tmp_path / 'conduit.db'}"
    return Settings(database_url=database_url, jwt_secret=SECRET, jwt_secret_file=tmp_path / "secret", **changes)


@pytest.mark.slow  # fresh Python processes
@pytest.mark.parametrize(
    ("arguments", "path", "message"),
    [
        ([], "", "`node` not found: `conduit docs build` needs Node 20+ and npm"),
        (["--schema", "missing.graphql"], None, "missing.graphql: no such schema file"),
        (["--examples", "missing"], None, "missing: no such folder of example operations"),
    ],
)
def test_docs_build_explains_what_it_lacks(
    arguments: list[str], path: str | None, message: str, tmp_path: Path
) -> None:
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    if path is not None:
        environment["PATH"] = path
    result = subprocess.run(
        [sys.executable, "-m", "graph.cli", "docs", "build", "--output", str(tmp_path), *arguments],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env=environment,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == f"conduit: {message}"
    assert list(tmp_path.iterdir()) == []


def reference_pages(clients: Path, *args: str) -> list[str]:
    """Run tests/browser/reference_pages.mjs from the real clients' folder; its output lines."""
    script = clients / "reference_pages.mjs"
    script.write_text((ROOT / "tests" / "browser" / "reference_pages.mjs").read_text())
    result = run(clients, "node", str(script), *args)
    lines = result.stdout.strip().splitlines()
    assert result.returncode == 0 and lines, result.stdout + result.stderr
    return lines


@pytest.mark.slow
@pytest.mark.browser
def test_graphql_reference_in_a_browser(clients_dir: Path, template_db: Path, tmp_path: Path) -> None:  # noqa: F811
    """Search for feed, follow the links to Article: no other origin, no CSP violation, no console error."""
    with live_app(served(template_db, tmp_path, introspection=False)) as (url, _app):
        lines = reference_pages(clients_dir, "docs", url, str(tmp_path / "docs.png"))
    assert 'ok: the first result for "feed" is the feed query' in lines, lines
    assert "opened: Article" in lines, lines
    assert "ok: no request to another origin" in lines, lines
    assert lines[-1] == "reference_pages: 9 passed, 0 failed", lines


# A stand-in for the REST API's document, added to the test's app only: the page's rendering,
# search, policy and offline loading are proven without depending on the REST API itself.
STAND_IN = {
    "openapi": "3.1.0",
    "info": {"title": "Stand-in API", "version": "1.0.0"},
    "paths": {
        "/api/things": {"get": {"summary": "List things", "responses": {"200": {"description": "The things"}}}},
        "/api/things/{id}": {
            "get": {
                "summary": "Get one thing",
                "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {"200": {"description": "The thing"}, "404": {"description": "No such thing"}},
            }
        },
    },
}


async def stand_in(_request: Request) -> JSONResponse:
    return JSONResponse(STAND_IN)


@pytest.mark.slow
@pytest.mark.browser
def test_rest_reference_renders_a_document_in_a_browser(
    clients_dir: Path,  # noqa: F811
    template_db: Path,
    tmp_path: Path,
) -> None:
    """Title, every operation, a search (in Redoc's worker): no other origin, no CSP violation."""
    with live_app(served(template_db, tmp_path)) as (url, app):
        app.router.routes.insert(0, Route("/api/openapi.json", stand_in))
        lines = reference_pages(clients_dir, "api", url, str(tmp_path / "api.png"))
    assert 'document: "Stand-in API", 2 operations' in lines, lines
    assert "ok: the title is shown: Stand-in API (1.0.0)" in lines, lines
    assert lines[-1] == "reference_pages: 9 passed, 0 failed", lines


@pytest.mark.slow
@pytest.mark.browser
def test_rest_reference_renders_the_served_openapi_document(
    clients_dir: Path,  # noqa: F811
    template_db: Path,
    tmp_path: Path,
) -> None:
    """The app's own /api/openapi.json (the REST API's): its title and every operation's summary shown.

    Fails at once, saying so, while the app serves no /api/openapi.json.
    """
    with live_app(served(template_db, tmp_path)) as (url, _app):
        lines = reference_pages(clients_dir, "api", url, str(tmp_path / "api.png"))
    assert "ok: every operation is shown" in lines, lines
    assert lines[-1] == "reference_pages: 9 passed, 0 failed", lines
