"""``/api/openapi.json``: valid OpenAPI 3.1, and every difference from RealWorld's own document listed.

The spec's ``openapi.yml`` (``../shared/realworld``) and ours are compared path by path and
operation by operation once every ``$ref`` is resolved: parameters, security, request bodies,
response statuses and the JSON Schemas of bodies (types, formats, required properties). Every
difference must match one entry of ``ALLOWED``, each with the reason it exists, and every entry
must match something: a new difference fails, and so does a stale excuse.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml  # type: ignore[import-untyped]  # PyYAML ships no types (it comes with uvicorn[standard])
from openapi_spec_validator import OpenAPIV31SpecValidator

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT.parent / "shared" / "realworld" / "openapi.yml"

ALLOWED: dict[str, str] = {
    r"\w+ \S+: response 429 not in the spec": "every request is charged to the cost budget (and login and "
    "registration have their own limits): too many get 429 with Retry-After; the spec has no word for it",
    r"(POST|PUT) \S+: response 41[35] not in the spec": "a body over CONDUIT_MAX_BODY_BYTES is 413, and one that is "
    "not application/json 415 (only a type a browser must preflight is read, as on /graphql)",
    r"\w+ \S+: response 401 has a body the spec does not give": "our 401s carry the spec's GenericErrorModel, as "
    "every other error does (the spec leaves the 401 body empty, so a client reads no body there)",
    r"(GET /tags|GET /articles|GET /articles/\{slug\}|POST /users|POST /users/login): response 401 not in the spec": (
        "a bad token is 401 on every endpoint, even where a token is optional (contract: a bad token never "
        "silently becomes anonymous)"
    ),
    r"(GET|POST|PUT|DELETE) /(profiles/\{username\}(/follow)?|articles/\{slug\}(/comments(/\{id\})?|/favorite)?)"
    r": response 404 not in the spec": "an unknown username, slug or comment is 404, the status RealWorld "
    "implementations give; the spec lists only 422 for errors",
    r"(PUT|DELETE) /articles/\{slug\}(/comments/\{id\})?: response 403 not in the spec": "only the author (or a "
    "moderator or admin, for deletion) may change an article or comment: 403 otherwise",
    r"\w+ /articles(/feed)?: parameter limit: maximum 100 not in the spec": "a page holds at most 100 items, as "
    "every list of the GraphQL API (contract: first 0 to 100); beyond is 422, never a silently shorter page",
    r"\w+ /articles(/feed)?: parameter offset: maximum 2147483647 not in the spec": "offset is a GraphQL Int, a "
    "signed 32-bit integer: 422 beyond (no list is that long)",
    r"DELETE /articles/\{slug\}/comments/\{id\}: parameter id: minimum 1 not in the spec": "comment ids start at 1",
    r"PUT /articles/\{slug\}: request body\.article\.tagList not in the spec": "updateArticle may replace the tags "
    "too; a client that sends none keeps them (an extra, optional property)",
    r"PUT /user: request body\.user\.password: format password not in the spec": "the UI hint the spec gives "
    "the passwords of login and registration, given to the third password as well",
}


Compare = Callable[[str, Any, Any], list[str]]
"""Differences between the spec's and our entry of one name: ``(where, spec's, ours)``."""


def resolve(node: Any, root: dict[str, Any]) -> Any:
    """``node`` with every ``$ref`` replaced by what it names in ``root``."""
    if isinstance(node, dict):
        if "$ref" in node:
            target: Any = root
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part]
            return resolve(target, root)
        return {key: resolve(value, root) for key, value in node.items()}
    if isinstance(node, list):
        return [resolve(value, root) for value in node]
    return node


def types(schema: dict[str, Any]) -> set[str]:
    kind = schema.get("type")
    return set(kind) if isinstance(kind, list) else {kind} if kind else set()


def paired(
    where: Callable[[Any], str], spec: Mapping[Any, Any], ours: Mapping[Any, Any], compare: Compare
) -> list[str]:
    """Entries of ``spec`` missing from ``ours``, entries of ``ours`` not in ``spec``, and what
    ``compare`` finds in those of both (by key, in order)."""
    found: list[str] = []
    for key in sorted(set(spec) | set(ours)):
        if key not in ours:
            found.append(f"{where(key)} missing")
        elif key not in spec:
            found.append(f"{where(key)} not in the spec")
        else:
            found += compare(where(key), spec[key], ours[key])
    return found


def schema_differences(where: str, spec: dict[str, Any], ours: dict[str, Any]) -> list[str]:
    """What a client of ``spec`` would see change in a body described by ``ours``."""
    found: list[str] = []
    if types(spec) != types(ours):
        found.append(f"{where}: type {sorted(types(ours))} where the spec says {sorted(types(spec))}")
    for keyword in ("format", "minimum", "maximum", "default"):
        if spec.get(keyword) != ours.get(keyword):
            found.append(
                f"{where}: {keyword} {ours.get(keyword)} not in the spec"
                if keyword not in spec
                else f"{where}: {keyword} {ours.get(keyword)} where the spec says {spec[keyword]}"
            )
    if set(spec.get("required", ())) != set(ours.get("required", ())):
        found.append(f"{where}: required {sorted(ours.get('required', ()))}, spec {sorted(spec.get('required', ()))}")
    found += paired(
        lambda name: f"{where}.{name}", spec.get("properties", {}), ours.get("properties", {}), schema_differences
    )
    if "items" in spec or "items" in ours:
        found += schema_differences(f"{where}[]", spec.get("items", {}), ours.get("items", {}))
    return found


def json_schema(content: dict[str, Any] | None) -> dict[str, Any] | None:
    schema: dict[str, Any] | None = (content or {}).get("application/json", {}).get("schema")
    return schema


def operation_differences(where: str, spec: dict[str, Any], ours: dict[str, Any]) -> list[str]:
    found: list[str] = []
    if spec.get("operationId") != ours.get("operationId"):
        found.append(f"{where}: operationId {ours.get('operationId')} where the spec says {spec.get('operationId')}")
    if bool(spec.get("security")) != bool(ours.get("security")):
        found.append(f"{where}: security {ours.get('security')} where the spec says {spec.get('security')}")

    def parameter(name: str, spec_param: dict[str, Any], our_param: dict[str, Any]) -> list[str]:
        required = [] if bool(spec_param.get("required")) == bool(our_param.get("required")) else [f"{name}: required"]
        return required + schema_differences(name, spec_param["schema"], our_param["schema"])

    found += paired(
        lambda key: f"{where}: parameter {key[0]}",
        {(p["name"], p["in"]): p for p in spec.get("parameters", [])},
        {(p["name"], p["in"]): p for p in ours.get("parameters", [])},
        parameter,
    )
    spec_body, our_body = spec.get("requestBody"), ours.get("requestBody")
    if (spec_body is None) != (our_body is None):
        found.append(f"{where}: request body {'missing' if our_body is None else 'not in the spec'}")
    elif spec_body is not None and our_body is not None:
        found += schema_differences(
            f"{where}: request body", json_schema(spec_body["content"]) or {}, json_schema(our_body["content"]) or {}
        )

    def response(name: str, spec_response: dict[str, Any], our_response: dict[str, Any]) -> list[str]:
        spec_schema, our_schema = json_schema(spec_response.get("content")), json_schema(our_response.get("content"))
        if spec_schema is None and our_schema is not None:
            return [f"{name} has a body the spec does not give"]
        if our_schema is None and spec_schema is not None:
            return [f"{name} has no body where the spec gives one"]
        return schema_differences(name, spec_schema or {}, our_schema or {})

    found += paired(
        lambda status: f"{where}: response {status}", spec.get("responses", {}), ours.get("responses", {}), response
    )
    return found


def differences(spec: dict[str, Any], ours: dict[str, Any]) -> list[str]:
    """Every difference a client of the spec could notice (see the module docstring)."""
    spec, ours = resolve(spec, spec), resolve(ours, ours)
    found: list[str] = []
    for path in sorted(set(spec["paths"]) | set(ours["paths"])):

        def where(method: str, path: str = path) -> str:
            return f"{method.upper()} {path}"

        found += paired(where, spec["paths"].get(path, {}), ours["paths"].get(path, {}), operation_differences)
    return found


@pytest.fixture
async def document(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/api/openapi.json")
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    return body


async def test_openapi_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    OpenAPIV31SpecValidator(document).validate()  # raises with the first problem
    assert document["openapi"] == "3.1.0" and document["servers"] == [{"url": "/api"}]
    assert sum(len(operations) for operations in document["paths"].values()) == 19


async def test_differences_from_the_spec_are_only_the_listed_ones(document: dict[str, Any]) -> None:
    spec = yaml.safe_load(SPEC.read_text())
    found = differences(spec, document)
    unexplained = [line for line in found if not any(re.fullmatch(pattern, line) for pattern in ALLOWED)]
    stale = [pattern for pattern in ALLOWED if not any(re.fullmatch(pattern, line) for line in found)]
    print("\n".join(["differences from openapi.yml:", *found]))
    assert unexplained == [], unexplained
    assert stale == [], stale
    # nothing the spec promises is missing: every difference is an addition or a tighter bound
    assert not [line for line in found if line.endswith("missing")], found
