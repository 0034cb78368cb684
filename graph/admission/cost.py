"""The cost of an operation: the nodes it may request, counted before it runs (contract README, Limits).

``operation_cost`` counts them as GitHub's GraphQL API does; ``CostLimit``, an admission step,
refuses an operation over ``CONDUIT_MAX_COST``; the budget (``budget.py``) prices an operation
from the same count. Costs are remembered in the app's ``costs`` cache.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import EllipsisType
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    get_named_type,
    value_from_ast,
)
from graphql.language import ListValueNode, VariableNode

from graph.admission.keys import CACHE_ENTRY_OVERHEAD_BYTES, cache_encoding
from graph.admission.limits import fragment_definitions, too_complex
from graph.admission.pipeline import Operation, Refused
from graph.caches import BoundedCache


def operation_cost(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation_name: str | None,
    variables: Mapping[str, Any] | None,
    max_first: int | None = None,
    cache: BoundedCache[tuple[Any, ...], int] | None = None,
    encoded: bytes | EllipsisType | None = ...,
) -> int:
    """Nodes the operation may request, counted as GitHub's GraphQL API counts them.

    Every field with a ``first`` argument requests ``first`` items (its default when omitted),
    ``nodes(ids:)`` requests ``len(ids)``, each multiplied by what its enclosing connections
    request; the cost is the sum over all such fields (GitHub GraphQL API, "Rate limits and
    node limits"). Fragments and variables are resolved. With ``max_first``, no field counts
    for more than that many items (what resolvers accept; the cost budget prices so).

    Remembered in ``cache`` per document text, operation, variables and ``max_first``: only
    documents of at most ``COST_CACHE_DOCUMENT_CHARS`` characters and variables of at most
    ``COST_CACHE_VARIABLES_BYTES`` as JSON, never variables holding a NaN or an infinity, which
    JSON cannot tell from ``null``. Every request needs it twice (the limit, the budget's
    price), and counting walks the whole document. ``encoded``: ``cache_encoding`` of the
    document and variables when the caller has it already.
    """
    key = None
    if cache is not None and document.loc is not None:
        body = document.loc.source.body
        if encoded is ...:
            encoded = cache_encoding(body, variables)
        if encoded is not None:
            key = (body, operation_name, encoded, max_first)
            found = cache.get(key)
            if found is not None:
                return found
    cost = _operation_cost(schema, document, operation_name, variables, max_first)
    if key is not None and cache is not None:
        cache.put(key, cost, CACHE_ENTRY_OVERHEAD_BYTES + len(key[0]) + len(key[2]))
    return cost


def _operation_cost(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation_name: str | None,
    variables: Mapping[str, Any] | None,
    max_first: int | None,
) -> int:
    fragments = fragment_definitions(document)
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name is not None:
        operations = [o for o in operations if o.name is not None and o.name.value == operation_name]
    if not operations:
        return 0
    operation = operations[0]
    root = schema.get_root_type(operation.operation)
    if root is None:
        return 0
    return _CostCounter(schema, fragments, dict(variables or {}), max_first).count(operation.selection_set, root)


def _requested(field: FieldNode, definition: Any, variables: dict[str, Any], max_first: int | None) -> int | None:
    requested = _requested_items(field, definition, variables)
    if requested is None or max_first is None:
        return requested
    return min(requested, max_first)


def _requested_items(field: FieldNode, definition: Any, variables: dict[str, Any]) -> int | None:
    for name in ("first", "ids"):
        argument = definition.args.get(name)
        if argument is None:
            continue
        node = next((a.value for a in field.arguments or () if a.name.value == name), None)
        if node is None:
            value = argument.default_value
        elif isinstance(node, VariableNode):
            value = variables.get(node.name.value, argument.default_value)
        elif name == "ids" and isinstance(node, ListValueNode):
            value = node.values
        else:
            value = value_from_ast(node, argument.type, variables)
        if name == "ids":
            return len(value) if isinstance(value, list | tuple) else 1
        return max(int(value), 0) if isinstance(value, int) else 0
    return None


class _CostCounter:
    """``operation_cost`` of one request: every fragment counted once per type, then scaled.

    The count is linear in the multiplier its enclosing connections give it, so a fragment's
    count at multiplier 1 is kept and multiplied wherever it is spread, and a document that
    spreads every fragment twice into the next takes linear time, not exponential.
    """

    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: Mapping[str, FragmentDefinitionNode],
        variables: dict[str, Any],
        max_first: int | None,
    ) -> None:
        self.schema = schema
        self.fragments = fragments
        self.variables = variables
        self.max_first = max_first
        self.memo: dict[tuple[str, str], int] = {}
        self.in_progress: set[str] = set()

    def count(self, selection_set: SelectionSetNode | None, parent: GraphQLNamedType) -> int:
        """Nodes ``selection_set`` on ``parent`` requests when its enclosing connections request one item."""
        if selection_set is None or not isinstance(parent, GraphQLObjectType | GraphQLInterfaceType):
            return 0
        total = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                definition = parent.fields.get(selection.name.value)
                if definition is None:
                    continue
                requested = _requested(selection, definition, self.variables, self.max_first)
                inner = self.count(selection.selection_set, get_named_type(definition.type))
                total += inner if requested is None else requested * (1 + inner)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                target = self.schema.get_type(condition.name.value) if condition is not None else parent
                total += self.count(selection.selection_set, target or parent)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                fragment = self.fragments.get(name)
                if fragment is None or name in self.in_progress:  # a cycle: refused by validation
                    continue
                target = self.schema.get_type(fragment.type_condition.name.value) or parent
                key = (name, target.name)
                if key not in self.memo:
                    self.in_progress.add(name)
                    self.memo[key] = self.count(fragment.selection_set, target)
                    self.in_progress.discard(name)
                total += self.memo[key]
        return total


class CostLimit:
    """Admission step: refuses an operation whose cost (``operation_cost``) is over ``max_cost``."""

    name = "cost_limit"

    def __init__(self, schema: GraphQLSchema, max_cost: int, costs: BoundedCache[tuple[Any, ...], int]) -> None:
        self.schema = schema
        self.max_cost = max_cost
        self.costs = costs

    def __call__(self, operation: Operation) -> None:
        cost = operation_cost(
            self.schema,
            operation.parsed,
            operation.name,
            operation.variables,
            None,
            self.costs,
            operation.variables_key(),
        )
        if cost > self.max_cost:
            raise Refused(
                [
                    too_complex(
                        f"Operation may request {cost} nodes; the limit is {self.max_cost}.",
                        "cost",
                        cost,
                        self.max_cost,
                    )
                ]
            )
