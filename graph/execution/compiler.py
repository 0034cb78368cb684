"""Compiling a validated operation into an ``OperationPlan`` (``graph/execution/compiled.py``).

``compile_operation`` walks the operation against the schema once: per response key, what to
call (an attribute read, or the Strawberry resolver itself) and how to complete the value. It
refuses (``NotCompilable``, with a fixed reason code) what the compiled path does not cover.
"""

from __future__ import annotations

import inspect
import logging
from collections import OrderedDict
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLField,
    GraphQLLeafType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationType,
    SelectionSetNode,
    VariableNode,
    get_operation_ast,
)
from graphql.execution.values import get_argument_values
from graphql.language import Visitor, visit
from strawberry.permission import PermissionExtension
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.arguments import convert_arguments
from strawberry.types.field import StrawberryField

from graph.execution.compiled import ATTRIBUTE, RESOLVER, TYPENAME, FieldPlan, OperationPlan

logger = logging.getLogger("conduit.compiler")


class NotCompilable(Exception):
    """The operation uses something the compiled path does not cover; run it the ordinary way.

    ``reason`` is a short fixed code (a label of ``conduit_graphql_fallbacks_total``); the message
    gives the detail (for the debug log only: it may hold the client's aliases).
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(detail or reason)
        self.reason = reason


def compile_operation(strawberry_schema: Any, document: DocumentNode, operation_name: str | None) -> OperationPlan:
    """Compile the query ``operation_name`` of a validated ``document``; raises NotCompilable."""
    schema: GraphQLSchema = strawberry_schema._schema
    operation = get_operation_ast(document, operation_name)
    if operation is None:
        raise NotCompilable("operation", "no such operation, or several and no name")
    if operation.operation is not OperationType.QUERY:
        # a field-by-field run could not hand back a half-done write: mutations are planned or ordinary
        raise NotCompilable(operation.operation.value)
    if _uses_directives(document):
        raise NotCompilable("directives")
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    if schema.query_type is None:
        raise NotCompilable("operation", "the schema has no query type")
    fields = _plan_selection(strawberry_schema, schema, schema.query_type, [operation.selection_set], fragments)
    return OperationPlan(schema, strawberry_schema, operation, fields)


class _DirectiveFinder(Visitor):
    found = False

    def enter_directive(self, *_args: Any) -> None:
        self.found = True


def _uses_directives(document: DocumentNode) -> bool:
    finder = _DirectiveFinder()
    visit(document, finder)
    return finder.found


def _collect(
    object_type: GraphQLObjectType,
    selection_sets: list[SelectionSetNode],
    fragments: dict[str, FragmentDefinitionNode],
) -> OrderedDict[str, list[FieldNode]]:
    """Fields by response key, in document order, through fragments (GraphQL spec, CollectFields)."""
    fields: OrderedDict[str, list[FieldNode]] = OrderedDict()
    seen_fragments: set[str] = set()

    def applies(type_condition: Any) -> bool:
        if type_condition is None:
            return True
        name = type_condition.name.value
        return name == object_type.name or any(i.name == name for i in object_type.interfaces)

    def walk(selection_set: SelectionSetNode) -> None:
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                key = selection.alias.value if selection.alias else selection.name.value
                fields.setdefault(key, []).append(selection)
            elif isinstance(selection, InlineFragmentNode):
                if not applies(selection.type_condition):
                    raise NotCompilable("type_condition", "a fragment on another type")
                walk(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                if name in seen_fragments:
                    continue
                seen_fragments.add(name)
                fragment = fragments.get(name)
                if fragment is None or not applies(fragment.type_condition):
                    raise NotCompilable("type_condition", "a fragment on another type")
                walk(fragment.selection_set)

    for selection_set in selection_sets:
        walk(selection_set)
    return fields


def _innermost(return_type: GraphQLOutputType) -> GraphQLOutputType:
    while isinstance(return_type, GraphQLNonNull | GraphQLList):
        return_type = return_type.of_type
    return return_type


def _plan_selection(
    strawberry_schema: Any,
    schema: GraphQLSchema,
    object_type: GraphQLObjectType,
    selection_sets: list[SelectionSetNode],
    fragments: dict[str, FragmentDefinitionNode],
) -> list[FieldPlan]:
    plans = []
    for key, nodes in _collect(object_type, selection_sets, fragments).items():
        name = nodes[0].name.value
        if name == "__typename":
            plans.append(FieldPlan(key, TYPENAME, return_type=schema.type_map["String"], typename=object_type.name))  # type: ignore[arg-type]
            continue
        if name.startswith("__"):
            raise NotCompilable("introspection")
        definition = object_type.fields.get(name)
        if definition is None:
            raise NotCompilable("unknown_field", f"no field {object_type.name}.{name}")
        plans.append(_plan_field(strawberry_schema, schema, key, definition, nodes, fragments))
    return plans


def _plan_field(
    strawberry_schema: Any,
    schema: GraphQLSchema,
    key: str,
    definition: GraphQLField,
    nodes: list[FieldNode],
    fragments: dict[str, FragmentDefinitionNode],
) -> FieldPlan:
    strawberry_field = (definition.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
    if not isinstance(strawberry_field, StrawberryField):
        raise NotCompilable("not_strawberry", f"{key} is not a Strawberry field")
    plan = FieldPlan(key, ATTRIBUTE, return_type=definition.type, definition=definition, node=nodes[0])
    plan.strawberry_field = strawberry_field
    for extension in strawberry_field.extensions:
        if isinstance(extension, PermissionExtension) and extension.fail_silently and not extension.return_empty_list:
            plan.silent_permissions.extend(extension.permissions)
        else:
            raise NotCompilable("field_extension", f"{key} has a field extension")
    resolver = strawberry_field.base_resolver
    if resolver is None:
        if nodes[0].arguments:
            raise NotCompilable("resolver", f"{key} takes arguments but has no resolver")
        plan.attribute = strawberry_field.python_name
    else:
        if resolver.root_parameter is not None or resolver.parent_parameter is not None:
            raise NotCompilable("resolver", f"{key}'s resolver asks for root or parent")
        plan.kind = RESOLVER
        if not inspect.isfunction(resolver.wrapped_func):
            raise NotCompilable("resolver", f"{key}'s resolver is not a plain function")
        plan.resolver = resolver.wrapped_func
        plan.is_async = resolver.is_async
        plan.pass_self = resolver.self_parameter is not None
        plan.info_parameter = resolver.info_parameter.name if resolver.info_parameter is not None else None
    if not _has_variables(nodes[0]):
        try:
            raw = get_argument_values(definition, nodes[0], None)
        except GraphQLError as error:
            raise NotCompilable("arguments", "arguments do not coerce") from error
        plan.static_kwargs = convert_arguments(
            raw,
            strawberry_field.arguments,
            scalar_registry=strawberry_schema.schema_converter.scalar_registry,
            config=strawberry_schema.config,
        )
    inner = _innermost(definition.type)
    if isinstance(inner, GraphQLObjectType):
        selection_sets = [node.selection_set for node in nodes if node.selection_set is not None]
        plan.children = _plan_selection(strawberry_schema, schema, inner, selection_sets, fragments)
    elif not isinstance(inner, GraphQLLeafType):
        raise NotCompilable("abstract_type", f"{key} is of an abstract type")
    return plan


def _has_variables(node: FieldNode) -> bool:
    found = False

    class Finder(Visitor):
        def enter_variable(self, _node: VariableNode, *_args: Any) -> None:
            nonlocal found
            found = True

    for argument in node.arguments or ():
        visit(argument, Finder())
    return found
