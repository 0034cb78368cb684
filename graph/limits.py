"""Operation limits checked before execution: depth, aliases, tokens and cost.

Defaults and rules are the contract README's (Limits). Depth and aliases depend on the
document alone, so they are validation rules (cached with the document); cost depends on
variables, so it is computed per request once validation has passed. An operation over a
limit runs no resolver.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from graphql import (
    ASTValidationRule,
    DocumentNode,
    ExecutionResult,
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
from graphql.language import ListValueNode, VariableNode
from strawberry.extensions import SchemaExtension

INTROSPECTION_ROOTS = frozenset({"__schema", "__type"})
TOKEN_LIMIT_MESSAGE = "Document contains more than"


def too_complex(message: str, limit: str, value: int, maximum: int) -> GraphQLError:
    """A ``QUERY_TOO_COMPLEX`` error naming the limit and the measured value."""
    return GraphQLError(
        message, extensions={"code": "QUERY_TOO_COMPLEX", "limit": limit, "value": value, "maximum": maximum}
    )


def _fragments(document: DocumentNode) -> dict[str, FragmentDefinitionNode]:
    return {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}


def selection_depth(
    selection_set: SelectionSetNode | None,
    fragments: Mapping[str, FragmentDefinitionNode],
    seen: frozenset[str] = frozenset(),
) -> int:
    """Levels of fields below ``selection_set``, fragments expanded, introspection not counted."""
    if selection_set is None:
        return 0
    deepest = 0
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            if selection.name.value in INTROSPECTION_ROOTS:
                continue
            deepest = max(deepest, 1 + selection_depth(selection.selection_set, fragments, seen))
        elif isinstance(selection, InlineFragmentNode):
            deepest = max(deepest, selection_depth(selection.selection_set, fragments, seen))
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            fragment = fragments.get(name)
            if fragment is not None and name not in seen:
                deepest = max(deepest, selection_depth(fragment.selection_set, fragments, seen | {name}))
    return deepest


def _aliases(node: Any) -> Iterator[FieldNode]:
    selection_set = getattr(node, "selection_set", None)
    if selection_set is None:
        return
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode) and selection.alias is not None:
            yield selection
        yield from _aliases(selection)


def limit_rule(max_depth: int, max_aliases: int) -> type[ASTValidationRule]:
    """A validation rule that rejects documents deeper than ``max_depth`` or with too many aliases."""

    class OperationLimitsRule(ASTValidationRule):
        def enter_document(self, node: DocumentNode, *_args: Any) -> None:
            aliases = sum(1 for definition in node.definitions for _ in _aliases(definition))
            if aliases > max_aliases:
                self.report_error(
                    too_complex(
                        f"Operation has {aliases} aliases; the limit is {max_aliases}.",
                        "aliases",
                        aliases,
                        max_aliases,
                    )
                )
            fragments = _fragments(node)
            for definition in node.definitions:
                if isinstance(definition, OperationDefinitionNode):
                    depth = selection_depth(definition.selection_set, fragments)
                    if depth > max_depth:
                        self.report_error(
                            too_complex(
                                f"Operation has depth {depth}; the limit is {max_depth}.",
                                "depth",
                                depth,
                                max_depth,
                            )
                        )

    return OperationLimitsRule


def operation_cost(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation_name: str | None,
    variables: Mapping[str, Any] | None,
) -> int:
    """Nodes the operation may request, counted as GitHub's GraphQL API counts them.

    Every field with a ``first`` argument requests ``first`` items (its default when omitted),
    ``nodes(ids:)`` requests ``len(ids)``, each multiplied by what its enclosing connections
    request; the cost is the sum over all such fields (GitHub GraphQL API, "Rate limits and
    node limits"). Fragments and variables are resolved.
    """
    fragments = _fragments(document)
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name is not None:
        operations = [o for o in operations if o.name is not None and o.name.value == operation_name]
    if not operations:
        return 0
    operation = operations[0]
    root = schema.get_root_type(operation.operation)
    if root is None:
        return 0
    return _cost(schema, operation.selection_set, root, 1, fragments, dict(variables or {}), frozenset())


def _requested(field: FieldNode, definition: Any, variables: dict[str, Any]) -> int | None:
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


def _cost(
    schema: GraphQLSchema,
    selection_set: SelectionSetNode | None,
    parent: GraphQLNamedType,
    multiplier: int,
    fragments: Mapping[str, FragmentDefinitionNode],
    variables: dict[str, Any],
    seen: frozenset[str],
) -> int:
    if selection_set is None or not isinstance(parent, GraphQLObjectType | GraphQLInterfaceType):
        return 0
    total = 0
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            definition = parent.fields.get(selection.name.value)
            if definition is None:
                continue
            requested = _requested(selection, definition, variables)
            inner = multiplier
            if requested is not None:
                inner = multiplier * requested
                total += inner
            total += _cost(
                schema,
                selection.selection_set,
                get_named_type(definition.type),
                inner,
                fragments,
                variables,
                seen,
            )
        elif isinstance(selection, InlineFragmentNode):
            target = schema.get_type(selection.type_condition.name.value) if selection.type_condition else parent
            total += _cost(schema, selection.selection_set, target or parent, multiplier, fragments, variables, seen)
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            fragment = fragments.get(name)
            if fragment is not None and name not in seen:
                target = schema.get_type(fragment.type_condition.name.value) or parent
                total += _cost(schema, fragment.selection_set, target, multiplier, fragments, variables, seen | {name})
    return total


class CostLimit(SchemaExtension):
    """Refuses, before execution, an operation whose cost is over ``max_cost``."""

    def __init__(self, max_cost: int) -> None:
        self.max_cost = max_cost

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        if document is not None and context.result is None:
            cost = operation_cost(context.schema._schema, document, context.operation_name, context.variables)
            if cost > self.max_cost:
                context.result = ExecutionResult(
                    data=None,
                    errors=[
                        too_complex(
                            f"Operation may request {cost} nodes; the limit is {self.max_cost}.",
                            "cost",
                            cost,
                            self.max_cost,
                        )
                    ],
                )
        yield
