"""Generated shaping code: only GraphQL names reach its source, and it runs with two builtins."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any

import pytest
from graphql import FieldNode, GraphQLObjectType, OperationDefinitionNode, build_schema, parse

from graph.execution.planned import NotPlanned, plan_operation
from graph.execution.planned.shaping import BUILTINS, Source, entry, name_literal

SCHEMA = build_schema((Path(__file__).parents[2] / "schema.graphql").read_text())


def _collect(_type: GraphQLObjectType, selection_sets: list[Any], _fragments: Any) -> dict[str, list[FieldNode]]:
    fields: OrderedDict[str, list[FieldNode]] = OrderedDict()
    for selection_set in selection_sets:
        for node in selection_set.selections:
            fields.setdefault(node.alias.value if node.alias else node.name.value, []).append(node)
    return fields


def _operation(query: str) -> OperationDefinitionNode:
    (operation,) = parse(query).definitions
    assert isinstance(operation, OperationDefinitionNode)
    return operation


@pytest.mark.parametrize("name", ["a", "_", "__typename", "A_1", "x" * 200])
def test_a_graphql_name_is_written_as_a_literal(name: str) -> None:
    assert name_literal(name) == repr(name)
    assert entry(name, "r[0]") == f"{name!r}: r[0]"


@pytest.mark.parametrize("name", ["", "1a", "a-b", "a'", "a\n", "é", "a b", "'x': __import__('os'), 'y"])
def test_anything_else_is_refused_before_it_reaches_the_source(name: str) -> None:
    with pytest.raises(NotPlanned):
        entry(name, "r[0]")


def test_a_response_key_that_is_not_a_name_is_never_planned() -> None:
    operation = _operation("{ articles(first: 1) { edges { node { t: title } } } }")
    plan_operation(SCHEMA, operation, {}, True, _collect)  # the document as validated plans

    def unvalidated(object_type: GraphQLObjectType, selection_sets: list[Any], fragments: Any) -> Any:
        # as if a document had skipped validation: an alias that is code, not a name
        fields = _collect(object_type, selection_sets, fragments)
        return {"t': __import__('os'), 'u" if key == "t" else key: nodes for key, nodes in fields.items()}

    with pytest.raises(NotPlanned, match="not a GraphQL name"):
        plan_operation(SCHEMA, operation, {}, True, unvalidated)


def test_generated_functions_reach_only_their_helpers_and_two_builtins() -> None:
    source = Source(is_sqlite=True)
    uses = source.function("r", ["return len(r), [p for p in zip(r, r)]"])
    escapes = source.function("", ["return open"])
    imports = source.function("", ["import os", "return os"])
    namespace = source.compile()
    assert namespace[uses]([1, 2]) == (2, [(1, 1), (2, 2)])
    with pytest.raises(NameError):
        namespace[escapes]()
    with pytest.raises(ImportError):
        namespace[imports]()
    assert namespace["__builtins__"] is BUILTINS and set(BUILTINS) == {"len", "zip"}
