"""The field selections of a validated operation, each fragment walked once.

Shared by the analyses that look at what an operation selects before it runs: its cache
policy (``graph/cache_control.py``) and whether its answer holds a credential
(``graph/transport/secrets.py``). A fragment is walked once per level (root or below): what it
selects does not depend on where it is spread, so a document whose fragments spread the next
one twice costs its size, not the 2**n of its expansion (``tests/security/test_limit_attacks.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionNode,
    SelectionSetNode,
    get_named_type,
    is_composite_type,
)

from graph.admission.limits import fragment_definitions

__all__ = ["Selected", "fragment_selection", "selected_fields"]

Selected = tuple[FieldNode, GraphQLField | None, bool]
"""A field selection, its definition (``None`` for ``__typename``, ``__schema``, ``__type``) and
whether it is a root field."""


def fragment_selection(
    schema: GraphQLSchema,
    fragments: dict[str, FragmentDefinitionNode],
    selection: SelectionNode,
    parent: GraphQLNamedType,
    walked: set[Any],
    key: Any = None,
) -> tuple[GraphQLNamedType | None, SelectionSetNode] | None:
    """The type and selections an inline fragment or fragment spread adds where it stands.

    ``None`` for a field, an unknown fragment, or a spread whose ``key`` (default: its name; the
    caller may add what tells its places apart) is in ``walked`` already, which it is added to:
    what a fragment selects does not depend on where it is spread, so each is walked once per
    place. The type is ``parent`` where an inline fragment has no type condition, ``None``
    where the condition names no type.
    """
    if isinstance(selection, InlineFragmentNode):
        condition, inner = selection.type_condition, selection.selection_set
    elif isinstance(selection, FragmentSpreadNode):
        fragment = fragments.get(selection.name.value)
        key = selection.name.value if key is None else key
        if fragment is None or key in walked:
            return None
        walked.add(key)
        condition, inner = fragment.type_condition, fragment.selection_set
    else:
        return None
    return (schema.get_type(condition.name.value) if condition is not None else parent), inner


def selected_fields(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation: OperationDefinitionNode,
    descend: Callable[[GraphQLNamedType], bool] | None = None,
) -> Iterator[Selected]:
    """Every field selection of ``operation`` (document order, depth first), through fragments.

    ``descend(type)``: whether to look below a field or fragment of that type (default: always),
    so a caller can prune what cannot matter to it. ``@skip``/``@include`` are not evaluated:
    every field that some variables could select is listed.
    """
    root = schema.get_root_type(operation.operation)
    if root is None:
        return
    fragments = fragment_definitions(document)
    walked: set[tuple[str, bool]] = set()

    def walk(selection_set: SelectionSetNode, parent: GraphQLNamedType, is_root: bool) -> Iterator[Selected]:
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                fields: Any = parent.fields if isinstance(parent, GraphQLObjectType | GraphQLInterfaceType) else {}
                field = fields.get(selection.name.value)
                yield selection, field, is_root
                if field is None or selection.selection_set is None:
                    continue
                target = get_named_type(field.type)
                if is_composite_type(target) and (descend is None or descend(target)):
                    yield from walk(selection.selection_set, target, False)
                continue
            key = (selection.name.value, is_root) if isinstance(selection, FragmentSpreadNode) else None
            expanded = fragment_selection(schema, fragments, selection, parent, walked, key)
            if expanded is None:
                continue
            target, inner = expanded
            if target is not None and is_composite_type(target) and (descend is None or descend(target)):
                yield from walk(inner, target, is_root)

    yield from walk(operation.selection_set, root, True)
