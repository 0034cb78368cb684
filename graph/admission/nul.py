"""String inputs containing NUL (U+0000) are refused before execution with ``BAD_USER_INPUT``.

PostgreSQL's text types cannot hold NUL, so such a value reaching a statement fails there (an
``INTERNAL_SERVER_ERROR``), and SQLite would store it; no field of the API has a use for it.
Literals are checked by a validation rule (cached with the document), variables per request by
an admission step. ``extensions.fields`` names the input
field (or argument, or variable) holding the value, with RealWorld's "is invalid".
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from graphql import ArgumentNode, GraphQLError, ObjectFieldNode, StringValueNode, ValidationRule

from graph.admission.pipeline import Operation, Refused
from graph.errors import BadUserInput
from graph.validation import INVALID

NUL = "\x00"


def _error(names: list[str]) -> GraphQLError:
    error = BadUserInput({name: [INVALID] for name in dict.fromkeys(names)})
    return GraphQLError(error.message, extensions=error.extensions)


class NulStringRule(ValidationRule):
    """Refuses string literals containing NUL, naming the innermost input field or argument."""

    def enter_string_value(self, node: StringValueNode, _key: Any, parent: Any, _path: Any, ancestors: Any) -> None:
        if NUL not in node.value:
            return
        lineage = [*ancestors, parent]  # graphql-core's ancestors stop short of the parent
        name = next((a.name.value for a in reversed(lineage) if isinstance(a, ObjectFieldNode | ArgumentNode)), "value")
        error = _error([name])
        self.report_error(GraphQLError(error.message, node, extensions=error.extensions))


def _nul_fields(value: Any, name: str) -> Iterator[str]:
    """``name``, or the key of the innermost mapping holding it, of every string in ``value`` containing NUL.

    In document order, depth first; walked without recursion, so variables nested as deep as
    the JSON parser allows cannot exhaust the stack.
    """
    stack: list[tuple[Any, str]] = [(value, name)]
    while stack:
        item, field = stack.pop()
        if isinstance(item, str):
            if NUL in item:
                yield field
        elif isinstance(item, Mapping):
            stack.extend((inner, str(key)) for key, inner in reversed(list(item.items())))
        elif isinstance(item, list):
            stack.extend((inner, field) for inner in reversed(item))


def nul_variables(variables: Mapping[str, Any] | None) -> list[str]:
    """The innermost input field (or variable) names of ``variables`` whose strings contain NUL."""
    return [field for name, value in (variables or {}).items() for field in _nul_fields(value, name)]


def nul_free_variables(operation: Operation) -> None:
    """Admission step: refuses an operation whose variables hold a string containing NUL."""
    fields = nul_variables(operation.variables)
    if fields:
        raise Refused([_error(fields)])
