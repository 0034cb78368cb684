"""Generated shaping code: only GraphQL names reach its source, and it runs with two builtins."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from graphql import FieldNode, OperationDefinitionNode, build_schema, parse

from graph.execution.planned import NotPlanned, plan_operation
from graph.execution.planned.planner import Planner
from graph.execution.planned.shaping import BUILTINS, Source, entry, name_literal

SCHEMA = build_schema((Path(__file__).parents[2] / "schema.graphql").read_text())


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


def test_a_response_key_that_is_not_a_name_is_never_planned(monkeypatch: pytest.MonkeyPatch) -> None:
    operation = _operation("{ articles(first: 1) { edges { node { t: title } } } }")
    plan_operation(SCHEMA, operation, {}, True)  # the document as validated plans
    collect = Planner.collect

    def unvalidated(self: Planner, type_name: str, selection_sets: list[Any]) -> dict[str, list[FieldNode]]:
        # as if a document had skipped validation: an alias that is code, not a name
        fields = collect(self, type_name, selection_sets)
        return {"t': __import__('os'), 'u" if key == "t" else key: nodes for key, nodes in fields.items()}

    monkeypatch.setattr(Planner, "collect", unvalidated)
    with pytest.raises(NotPlanned, match="not a GraphQL name"):
        plan_operation(SCHEMA, operation, {}, True)


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
