"""The stored operations of ``/api``: ``operations/*.graphql``, one document per operation.

The files hold named operations and the fragments they share (``fragments.graphql``). Each
operation is stored as a document of its own, with only the fragments it uses: the admission
steps count tokens and aliases per document, so every request is charged for its operation alone.
"""

from __future__ import annotations

import functools
from pathlib import Path

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    GraphQLSchema,
    OperationDefinitionNode,
    TypeInfo,
    TypeInfoVisitor,
    Visitor,
    get_named_type,
    parse,
    print_ast,
    visit,
)

from graph.admission.limits import spread_fragments

OPERATIONS = Path(__file__).with_name("operations")


@functools.cache
def load_operations(directory: Path = OPERATIONS) -> dict[str, str]:
    """The text of each stored operation by name (read once); ``ValueError`` for a name used twice."""
    document = parse("\n".join(path.read_text() for path in sorted(directory.glob("*.graphql"))))
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    operations: dict[str, str] = {}
    for definition in document.definitions:
        if not isinstance(definition, OperationDefinitionNode):
            continue
        if definition.name is None or definition.name.value in operations:
            raise ValueError("/api: every stored operation needs a name of its own")
        used = [fragments[name] for name in spread_fragments(definition, fragments)]
        operations[definition.name.value] = print_ast(DocumentNode(definitions=(definition, *used)))
    return operations


def selected_fields(schema: GraphQLSchema, text: str) -> set[tuple[str, str]]:
    """``(object type, field)`` of every field the document selects (through its fragments)."""
    info = TypeInfo(schema)
    seen: set[tuple[str, str]] = set()

    class Fields(Visitor):
        def enter_field(self, node: FieldNode, *_args: object) -> None:
            parent = info.get_parent_type()
            if parent is not None:
                seen.add((get_named_type(parent).name, node.name.value))

    visit(parse(text), TypeInfoVisitor(info, Fields()))
    return seen
