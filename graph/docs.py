"""The reference pages: the GraphQL reference at ``/docs`` and the REST reference at ``/api/docs``.

Both are static files committed under ``graph/static`` (like ``schema.graphql``), so a fresh
clone, ``conduit serve --demo`` and the Docker image (which has no Node) serve them, whatever the
introspection setting or environment. ``conduit docs build`` regenerates them: SpectaQL (pinned in
``docs/package-lock.json``, run by ``docs/build.mjs`` with the search of ``docs/theme``) renders
the schema and ``examples/operations``; Redoc's standalone bundle renders ``/api/openapi.json``
in the browser. The build is deterministic, and ``tests/test_docs_site.py`` checks the committed
files are what it makes.

Each page is served with its own Content-Security-Policy (``DOCS_CSP``, ``API_DOCS_CSP``): every
script and stylesheet is a file of ours, nothing from another origin.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

STATIC = Path(__file__).with_name("static")
DOCS_SITE = STATIC / "docs"  # SpectaQL's output: index.html, javascripts/, stylesheets/
API_DOCS = STATIC / "apidocs"  # index.html, apidocs.js, apidocs.css of ours, and Redoc's bundle
ROOT = Path(__file__).resolve().parent.parent
SOURCES = ROOT / "docs"  # package.json, package-lock.json, build.mjs, theme/
EXAMPLES = ROOT / "examples" / "operations"

# SpectaQL's page: its one script and stylesheet (our search included), no inline code or
# style attribute, no image, font or fetch. Checked in Chromium with no violation
# (tests/browser/docs_site.mjs).
DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

# Redoc 2.5 (React, styled-components): its bundle and our init script; the OpenAPI document
# fetched from this origin. No 'unsafe-inline': styled-components writes its rules through the
# CSSOM into a <style> it creates empty (the hash of the empty string), and the one <style> with
# text is perfect-scrollbar's fixed stylesheet, which the bundle inserts (its hash; a Redoc upgrade
# may change it: tests/browser/reference_pages.mjs then reports the violation). Redoc's search
# index runs in a Worker made from a blob: URL (of this origin); its icons are data: SVGs.
EMPTY_STYLE_HASH = "'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='"
SCROLLBAR_STYLE_HASH = "'sha256-QMIg+bpjm3JdElJ388KYke01izlUW0UoNOeKjpMxdgc='"
API_DOCS_CSP = (
    f"default-src 'none'; script-src 'self'; style-src 'self' {EMPTY_STYLE_HASH} {SCROLLBAR_STYLE_HASH}; "
    "img-src 'self' data:; "
    "connect-src 'self'; worker-src blob:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


class PolicyStaticFiles(StaticFiles):
    """Starlette's ``StaticFiles`` (``index.html`` for a folder) with one ``Content-Security-Policy``.

    ``SecurityHeadersMiddleware`` keeps a policy the response set; every other security header
    (and ``Cache-Control: no-store``) it adds as to any response.
    """

    def __init__(self, directory: Path, policy: str) -> None:
        super().__init__(directory=directory, html=True)
        self.policy = policy

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers["Content-Security-Policy"] = self.policy
        return response


async def to_folder(request: Request) -> RedirectResponse:
    """``/docs`` to ``/docs/`` (308): the pages name their files relative to the folder."""
    return RedirectResponse(request.url.path + "/", status_code=308)


class DocsBuildError(Exception):
    """``conduit docs build`` could not run: Node or npm missing, or a step failed (its output attached)."""


def _run(command: list[str], cwd: Path) -> None:
    # node and npm with arguments of ours (paths and fixed options), never a shell
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True)  # noqa: S603
    if result.returncode != 0:
        raise DocsBuildError(f"`{' '.join(command)}` failed ({result.returncode}):\n{result.stdout}{result.stderr}")


def install_generators(cache: Path) -> Path:
    """``npm ci`` of ``docs/package-lock.json`` into ``cache/node_modules``, skipped when the lock is unchanged.

    Returns ``cache``. Raises ``DocsBuildError`` without Node or npm, or when npm fails.
    """
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            raise DocsBuildError(f"`{tool}` not found: `conduit docs build` needs Node 20+ and npm")
    if not (SOURCES / "package-lock.json").exists():
        raise DocsBuildError(f"{SOURCES} not found: `conduit docs build` runs in a checkout of the repository")
    cache.mkdir(parents=True, exist_ok=True)
    stamp = hashlib.sha256(b"".join((SOURCES / name).read_bytes() for name in ("package.json", "package-lock.json")))
    marker = cache / "node_modules" / ".conduit-stamp"
    if marker.exists() and marker.read_text() == stamp.hexdigest():
        return cache
    for name in ("package.json", "package-lock.json"):
        shutil.copyfile(SOURCES / name, cache / name)
    _run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cache)
    marker.write_text(stamp.hexdigest())
    return cache


def build(schema: Path, examples: Path, out: Path, cache: Path) -> None:
    """Write the GraphQL reference of ``schema`` (SDL) and ``examples`` (``*.graphql``) into ``out``.

    ``out`` ends up holding ``docs/`` (the GraphQL reference) and ``apidocs/`` (this repository's
    page for the REST reference, with Redoc's bundle); files of ``out/docs`` that the build no
    longer makes are removed. The generators are installed into ``cache`` first.
    Raises ``DocsBuildError``.
    """
    if not schema.is_file():
        raise DocsBuildError(f"{schema}: no such schema file")
    if not examples.is_dir():
        raise DocsBuildError(f"{examples}: no such folder of example operations")
    install_generators(cache)
    with tempfile.TemporaryDirectory(prefix="conduit-docs-") as work:
        site = Path(work) / "docs"
        site.mkdir()
        api = out / "apidocs"
        api.mkdir(parents=True, exist_ok=True)
        command = ["node", str(SOURCES / "build.mjs"), "--modules", str(cache), "--schema", str(schema)]
        command += ["--examples", str(examples), "--out", str(site), "--redoc", str(api)]
        _run(command, ROOT)
        shutil.rmtree(out / "docs", ignore_errors=True)
        shutil.copytree(site, out / "docs")


def default_cache() -> Path:
    """Where the generators are installed: ``CONDUIT_DOCS_CACHE``, else ``.cache/docs`` of the checkout."""
    return Path(os.environ.get("CONDUIT_DOCS_CACHE", ROOT / ".cache" / "docs"))
