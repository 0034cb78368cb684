"""Regression tests: deeply nested variables, and what the cost and coercion caches may remember."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from graphql import DocumentNode, GraphQLSchema, OperationDefinitionNode, parse
from graphql.execution.values import VariableValues, get_variable_values

import graph.admission.cost as limits
import graph.admission.keys as keys
import graph.admission.variables as variables
from graph.admission.cost import operation_cost
from graph.admission.nul import nul_variables
from graph.admission.variables import coerced_variables
from graph.caches import BoundedCache
from graph.schema import create_schema
from graph.settings import Settings
from graph.validation import INVALID

NODES = "query Nodes($ids: [ID!]!) { nodes(ids: $ids) { id } }"
DEPTH = 1000  # orjson parses up to 1024 levels; the request adds three around the variable


async def post_nodes(client: httpx.AsyncClient, ids: str) -> httpx.Response:
    """POST ``NODES`` with ``ids`` (JSON text) as is: the JSON encoders refuse to write values nested this deep."""
    body = f'{{"query": "{NODES}", "variables": {{"ids": {ids}}}}}'
    return await client.post("/graphql", content=body.encode(), headers={"content-type": "application/json"})


def nested_lists(inner: str) -> str:
    return "[" * DEPTH + inner + "]" * DEPTH


def nested_objects(inner: str) -> str:
    return '{"a": ' * DEPTH + inner + "}" * DEPTH


def codes(response: httpx.Response) -> list[str]:
    return [error.get("extensions", {}).get("code") for error in response.json().get("errors") or []]


@pytest.mark.parametrize("nest", [nested_lists, nested_objects])
async def test_deeply_nested_variables_are_answered_without_a_server_error(
    client: httpx.AsyncClient, nest: Callable[[str], str]
) -> None:
    response = await post_nodes(client, nest('"x"'))
    assert response.status_code < 500, response.text
    assert codes(response), response.text  # an ID cannot be a list or an object: a GraphQL error
    assert "INTERNAL_SERVER_ERROR" not in codes(response), response.text


async def test_a_nul_deep_in_nested_variables_is_refused_by_name(client: httpx.AsyncClient) -> None:
    response = await post_nodes(client, nested_lists('"x\\u0000"'))
    assert response.status_code < 500, response.text
    assert codes(response) == ["BAD_USER_INPUT"], response.text
    assert response.json()["errors"][0]["extensions"]["fields"] == {"ids": [INVALID]}

    response = await post_nodes(client, nested_objects('"x\\u0000"'))
    assert response.status_code < 500, response.text
    assert codes(response) == ["BAD_USER_INPUT"], response.text
    assert response.json()["errors"][0]["extensions"]["fields"] == {"a": [INVALID]}


def test_nul_fields_are_reported_in_document_order_at_any_depth() -> None:
    deep: Any = "\x00"
    for _ in range(10 * DEPTH):
        deep = [{"inner": deep}]
    variables = {
        "a": ["\x00", {"b": "fine", "c": ["x\x00", {"d": "\x00"}]}, "\x00"],
        "e": {"f": {"g": "\x00"}, 1: "\x00"},
        "h": "\x00",
        "deep": deep,
        "clean": [[["no nul"]], {"k": None, "n": 1}],
    }
    assert nul_variables(variables) == ["a", "c", "d", "a", "g", "1", "h", "inner"]
    assert nul_variables(None) == []


# The cost and variables caches of graph/admission/cost.py and variables.py, called directly: no database.

_unique = itertools.count()


@pytest.fixture(scope="module")
def schema() -> GraphQLSchema:
    return create_schema(Settings(env="test", jwt_secret="x" * 40))._schema


def document(text: str, padding: int = 0) -> DocumentNode:
    """``text`` parsed, made unique (so no other test's cache entry answers) and padded by a comment."""
    return parse(f"# {next(_unique)} {'x' * padding}\n{text}")


def operation_of(parsed: DocumentNode) -> OperationDefinitionNode:
    operation = parsed.definitions[0]
    assert isinstance(operation, OperationDefinitionNode)
    return operation


@pytest.fixture
def computed(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """How often each cache computed instead of remembering: ``cost`` and ``coerced``."""
    counts = {"cost": 0, "coerced": 0}
    count_cost, coerce = limits._operation_cost, get_variable_values  # what cost and variables imported

    def counted_cost(*args: Any) -> int:
        counts["cost"] += 1
        return count_cost(*args)

    def counted_coerce(*args: Any, **kwargs: Any) -> Any:
        counts["coerced"] += 1
        return coerce(*args, **kwargs)

    monkeypatch.setattr(limits, "_operation_cost", counted_cost)
    monkeypatch.setattr(variables, "get_variable_values", counted_coerce)
    return counts


@pytest.fixture
def costs() -> BoundedCache[Any, int]:
    return BoundedCache("costs", 1024, 4 * 1024 * 1024)


@pytest.fixture
def coerced() -> BoundedCache[Any, VariableValues]:
    return BoundedCache("variables", 1024, 4 * 1024 * 1024)


FIRST = "query Tags($n: Int) { tags(first: $n) }"  # the schema has no Float: NaN goes to an Int


def test_finite_small_variables_are_remembered(
    schema: GraphQLSchema, computed: dict[str, int], costs: Any, coerced: Any
) -> None:
    parsed = document(FIRST)
    for _ in range(2):
        assert operation_cost(schema, parsed, None, {"n": 3, "f": 1.5}, cache=costs) == 3
        assert isinstance(coerced_variables(schema, operation_of(parsed), {"n": 3, "f": 1.5}, coerced), VariableValues)
    assert computed == {"cost": 1, "coerced": 1}


@pytest.mark.parametrize("not_finite", [float("nan"), float("inf"), float("-inf")])
def test_variables_with_a_float_that_is_not_finite_are_not_remembered(
    schema: GraphQLSchema, computed: dict[str, int], not_finite: float, costs: Any, coerced: Any
) -> None:
    parsed = document(FIRST)
    operation = operation_of(parsed)
    for _ in range(2):
        operation_cost(schema, parsed, None, {"n": 2, "f": not_finite}, cache=costs)
        operation_cost(schema, parsed, None, {"n": 2, "nested": [{"f": not_finite}]}, cache=costs)
        assert isinstance(coerced_variables(schema, operation, {"n": not_finite}, coerced), list)  # refused
    assert computed == {"cost": 4, "coerced": 2}
    # JSON writes a NaN or an infinity as null: null's coercion is its own, not the one before
    remembered = coerced_variables(schema, operation, {"n": None}, coerced)
    assert isinstance(remembered, VariableValues) and remembered.coerced == {"n": None}


def test_null_remembered_does_not_answer_for_nan(schema: GraphQLSchema, coerced: Any) -> None:
    operation = operation_of(document(FIRST))
    accepted = coerced_variables(schema, operation, {"n": None}, coerced)
    assert isinstance(accepted, VariableValues) and accepted.coerced == {"n": None}
    refused = coerced_variables(schema, operation, {"n": float("nan")}, coerced)
    assert isinstance(refused, list) and refused, refused


def test_integers_over_64_bits_are_coerced_and_counted_without_remembering(
    schema: GraphQLSchema, computed: dict[str, int], costs: Any, coerced: Any
) -> None:
    parsed = document(FIRST)
    operation = operation_of(parsed)
    huge = 2**70
    for _ in range(2):
        errors = coerced_variables(schema, operation, {"n": huge}, coerced)
        assert isinstance(errors, list) and errors, errors  # an Int is 32 bits: refused, not a TypeError
        assert operation_cost(schema, parsed, None, {"n": huge}, cache=costs) == huge
    assert computed == {"cost": 2, "coerced": 2}


def test_large_documents_are_not_remembered(
    schema: GraphQLSchema, computed: dict[str, int], costs: Any, coerced: Any
) -> None:
    large = document(FIRST, padding=keys.COST_CACHE_DOCUMENT_CHARS)
    assert large.loc is not None and len(large.loc.source.body) > keys.COST_CACHE_DOCUMENT_CHARS
    for _ in range(2):
        assert operation_cost(schema, large, None, {"n": 4}, cache=costs) == 4
        assert isinstance(coerced_variables(schema, operation_of(large), {"n": 4}, coerced), VariableValues)
    assert computed == {"cost": 2, "coerced": 2}

    # at the limit itself it is remembered
    at_limit = document(FIRST)
    assert at_limit.loc is not None
    body = at_limit.loc.source.body
    at_limit = parse(body.replace("\n", " " * (keys.COST_CACHE_DOCUMENT_CHARS - len(body)) + "\n", 1))
    assert at_limit.loc is not None and len(at_limit.loc.source.body) == keys.COST_CACHE_DOCUMENT_CHARS
    for _ in range(2):
        operation_cost(schema, at_limit, None, {"n": 4}, cache=costs)
        coerced_variables(schema, operation_of(at_limit), {"n": 4}, coerced)
    assert computed == {"cost": 3, "coerced": 3}


def test_the_caches_hold_at_most_their_entries(schema: GraphQLSchema) -> None:
    costs: BoundedCache[Any, int] = BoundedCache("costs", 64, 4 * 1024 * 1024)
    coerced: BoundedCache[Any, VariableValues] = BoundedCache("variables", 64, 4 * 1024 * 1024)
    parsed = document(FIRST)
    operation = operation_of(parsed)
    for n in range(64 + 10):
        operation_cost(schema, parsed, None, {"n": n}, cache=costs)
        coerced_variables(schema, operation, {"n": n}, coerced)
    assert len(costs) == 64 and len(coerced) == 64
