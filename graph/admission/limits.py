"""Operation limits checked before execution: depth, aliases, directives, tokens and cost.

Defaults and rules are the contract README's (Limits). Depth, aliases and directives depend
on the document alone, so they are a validation rule (cached with the document) that runs
before graphql-core's own rules and stops validation when a limit is exceeded: a hostile
document gets one error, not the work (and the hundred errors) of every other rule. Cost
depends on variables, so it is computed per request once validation has passed. An
operation over a limit runs no resolver.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any, NoReturn

import orjson
from graphql import (
    ASTValidationRule,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
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
from graphql.execution.values import VariableValues, get_variable_values
from graphql.language import ListValueNode, Node, VariableNode
from graphql.validation.validate import ValidationAbortedError

from graph.admission.pipeline import Operation, Refused
from graph.caches import BoundedCache

INTROSPECTION_ROOTS = frozenset({"__schema", "__type"})


def too_complex(message: str, limit: str, value: int, maximum: int) -> GraphQLError:
    """A ``QUERY_TOO_COMPLEX`` error naming the limit and the measured value."""
    return GraphQLError(
        message, extensions={"code": "QUERY_TOO_COMPLEX", "limit": limit, "value": value, "maximum": maximum}
    )


def fragment_definitions(document: DocumentNode) -> dict[str, FragmentDefinitionNode]:
    """The fragment definitions of ``document`` by name."""
    return {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}


def selection_depth(
    selection_set: SelectionSetNode | None,
    fragments: Mapping[str, FragmentDefinitionNode],
    memo: dict[str, int] | None = None,
) -> int:
    """Levels of fields below ``selection_set``, fragments expanded, introspection not counted.

    Each fragment's depth is computed once (``memo``): a document spreading every fragment twice
    into the next would otherwise take time exponential in its length. A spread closing a cycle
    adds nothing (cycles are refused by graphql-core's rules).
    """
    if selection_set is None:
        return 0
    if memo is None:
        memo = {}
    deepest = 0
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            if selection.name.value in INTROSPECTION_ROOTS:
                continue
            deepest = max(deepest, 1 + selection_depth(selection.selection_set, fragments, memo))
        elif isinstance(selection, InlineFragmentNode):
            deepest = max(deepest, selection_depth(selection.selection_set, fragments, memo))
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            fragment = fragments.get(name)
            if fragment is not None and name not in memo:
                memo[name] = 0  # while in progress: a cycle back to it adds nothing
                memo[name] = selection_depth(fragment.selection_set, fragments, memo)
            deepest = max(deepest, memo.get(name, 0))
    return deepest


def _aliases(node: Any) -> Iterator[FieldNode]:
    selection_set = getattr(node, "selection_set", None)
    if selection_set is None:
        return
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode) and selection.alias is not None:
            yield selection
        yield from _aliases(selection)


def directive_counts(document: DocumentNode) -> Iterator[int]:
    """The number of directives on every node of ``document`` that may carry some.

    Fields, fragment spreads, inline fragments, operations, fragment definitions and variable
    definitions; walked without recursion, so no document can exhaust the stack here.
    """
    stack: list[Node] = list(document.definitions)
    while stack:
        node = stack.pop()
        directives = getattr(node, "directives", None)
        if directives:
            yield len(directives)
        stack.extend(getattr(node, "variable_definitions", None) or ())
        selection_set = getattr(node, "selection_set", None)
        if selection_set is not None:
            stack.extend(selection_set.selections)


def limit_rule(
    max_depth: int,
    max_aliases: int,
    max_directives: int = 50,
    max_directives_per_field: int = 5,
) -> type[ASTValidationRule]:
    """A validation rule refusing documents over the depth, alias or directive limits.

    ``max_directives`` counts every directive of the document (graphql-armor's max-directives),
    ``max_directives_per_field`` the directives on any one field, fragment spread or other
    node. Unknown and repeated directives count too: they cost validation work before they are
    refused. Each error is ``QUERY_TOO_COMPLEX`` with ``limit`` (``depth``, ``aliases``,
    ``totalDirectives`` or ``directives``), ``value`` and ``maximum``. The rule runs on entering
    the document, before any other rule visits a node, and stops validation when it reports.
    """

    class OperationLimitsRule(ASTValidationRule):
        def enter_document(self, node: DocumentNode, *_args: Any) -> None:
            errors: list[GraphQLError] = []
            aliases = sum(1 for definition in node.definitions for _ in _aliases(definition))
            if aliases > max_aliases:
                errors.append(
                    too_complex(
                        f"Operation has {aliases} aliases; the limit is {max_aliases}.",
                        "aliases",
                        aliases,
                        max_aliases,
                    )
                )
            total = most = 0
            for count in directive_counts(node):
                total += count
                most = max(most, count)
            if total > max_directives:
                errors.append(
                    too_complex(
                        f"Document has {total} directives; the limit is {max_directives}.",
                        "totalDirectives",
                        total,
                        max_directives,
                    )
                )
            if most > max_directives_per_field:
                errors.append(
                    too_complex(
                        f"A field has {most} directives; the limit is {max_directives_per_field}.",
                        "directives",
                        most,
                        max_directives_per_field,
                    )
                )
            fragments = fragment_definitions(node)
            for definition in node.definitions:
                if isinstance(definition, OperationDefinitionNode):
                    depth = selection_depth(definition.selection_set, fragments)
                    if depth > max_depth:
                        errors.append(
                            too_complex(
                                f"Operation has depth {depth}; the limit is {max_depth}.",
                                "depth",
                                depth,
                                max_depth,
                            )
                        )
            if errors:
                self.stop(errors)

        def stop(self, errors: list[GraphQLError]) -> NoReturn:
            for error in errors[:-1]:
                self.report_error(error)
            # graphql-core ends the whole validation on this error and returns it with the others
            last = errors[-1]
            raise ValidationAbortedError(last.message, extensions=last.extensions)

    return OperationLimitsRule


COST_CACHE_VARIABLES_BYTES = 1024
COST_CACHE_DOCUMENT_CHARS = 16 * 1024
CACHE_ENTRY_OVERHEAD_BYTES = 200


def _cache_encoding(body: str, variables: Mapping[str, Any] | None) -> bytes | None:
    """``variables`` as a cache key's JSON, or None when the request's result is not to be remembered.

    Not remembered: a document over ``COST_CACHE_DOCUMENT_CHARS`` characters (every key holds
    its text), variables that are not JSON (a caller's own values, integers over 64 bits) or
    over ``COST_CACHE_VARIABLES_BYTES`` as JSON, and variables holding a float that is not
    finite (orjson writes NaN and the infinities as ``null``, so they would share ``null``'s key).
    """
    if len(body) > COST_CACHE_DOCUMENT_CHARS:
        return None
    if not variables:
        return b""
    try:
        encoded = orjson.dumps(variables, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return None
    if len(encoded) > COST_CACHE_VARIABLES_BYTES or not _all_finite(variables):
        return None
    return encoded


def _all_finite(value: Any) -> bool:
    """Whether no float in ``value`` (a JSON value: mappings, lists, scalars) is NaN or infinite."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float):
            if not math.isfinite(item):
                return False
        elif isinstance(item, Mapping):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return True


def operation_cost(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation_name: str | None,
    variables: Mapping[str, Any] | None,
    max_first: int | None = None,
    cache: BoundedCache[tuple[Any, ...], int] | None = None,
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
    price), and counting walks the whole document.
    """
    key = None
    if cache is not None and document.loc is not None:
        body = document.loc.source.body
        encoded = _cache_encoding(body, variables)
        if encoded is not None:
            key = (body, operation_name, encoded, max_first)
            found = cache.get(key)
            if found is not None:
                return found
    cost = _operation_cost(schema, document, operation_name, variables, max_first)
    if key is not None and cache is not None:
        cache.put(key, cost, CACHE_ENTRY_OVERHEAD_BYTES + len(key[0]) + len(key[2]))
    return cost


_SCALARS = (str, int, float, bool, type(None))


def coerced_variables(
    schema: GraphQLSchema,
    operation: OperationDefinitionNode,
    variables: Mapping[str, Any] | None,
    cache: BoundedCache[tuple[Any, ...], VariableValues] | None = None,
    *,
    hide_suggestions: bool = False,
) -> VariableValues | list[GraphQLError]:
    """graphql-core's ``get_variable_values`` for ``operation``, remembered in ``cache`` like ``operation_cost``.

    Remembered only when every value is a scalar (nothing a resolver could change in place),
    the variables are small JSON with no NaN or infinity, and the document is at most
    ``COST_CACHE_DOCUMENT_CHARS`` characters. Errors are never remembered.
    """
    key = None
    if (
        cache is not None
        and operation.loc is not None
        and (not variables or all(type(v) in _SCALARS for v in variables.values()))
    ):
        body = operation.loc.source.body
        encoded = _cache_encoding(body, variables)
        if encoded is not None:
            key = (body, operation.loc.start, encoded)
            found = cache.get(key)
            if found is not None:
                return found
    coerced = get_variable_values(
        schema, operation.variable_definitions or (), dict(variables or {}), hide_suggestions=hide_suggestions
    )
    if key is not None and cache is not None and isinstance(coerced, VariableValues):
        cache.put(key, coerced, CACHE_ENTRY_OVERHEAD_BYTES + len(key[0]) + 2 * len(key[2]))
    return coerced


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
    """Admission step: refuses an operation whose cost (``operation_cost``) is over ``max_cost``.

    Leaves the cost on the operation (``operation.cost``) for the steps after it.
    """

    name = "cost_limit"

    def __init__(self, schema: GraphQLSchema, max_cost: int, costs: BoundedCache[tuple[Any, ...], int]) -> None:
        self.schema = schema
        self.max_cost = max_cost
        self.costs = costs

    def __call__(self, operation: Operation) -> None:
        cost = operation_cost(self.schema, operation.parsed, operation.name, operation.variables, cache=self.costs)
        operation.cost = cost
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
