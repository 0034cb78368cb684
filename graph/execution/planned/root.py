"""A planned root field at run time: its arguments, its bound statements and how their rows are shaped."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from graphql import FieldNode, GraphQLError
from graphql.execution.values import VariableValues, get_argument_values

from db.dialect import DriverDialect
from graph.errors import BadUserInput
from graph.execution.planned.errors import NotPlanned
from graph.execution.planned.statements import Columns
from graph.types.node import check_first

__all__ = ["Prepared", "RootPlan", "first_of"]


@dataclass(eq=False)
class Prepared:
    """A root field's statements with their arguments, and the function that shapes their rows."""

    statements: list[tuple[str, list[Any]]]
    finish: Callable[[list[list[Any]]], Any]


@dataclass(eq=False)
class RootPlan:
    """One root field: its statements for given arguments, and how to shape their rows."""

    node: FieldNode
    dialect: DriverDialect
    columns: Columns
    shape_name: str
    shape: Callable[..., Any] = field(init=False, repr=False)

    def bind(self, namespace: dict[str, Any]) -> None:
        """Take the shaping function from the compiled ``namespace`` (``Source.compile``)."""
        self.shape = namespace[self.shape_name]

    def arguments(self, definition: Any, variables: VariableValues) -> dict[str, Any]:
        """The field's coerced arguments by name; ``NotPlanned`` when they do not coerce."""
        try:
            return get_argument_values(definition, self.node, variables)
        except GraphQLError as error:
            raise NotPlanned("arguments do not coerce") from error

    def prepare(self, definition: Any, variables: VariableValues, viewer_id: int | None) -> Prepared:
        """The statements of this run and how to shape their rows; ``NotPlanned`` for arguments outside the plan.

        ``definition`` is the field's ``GraphQLField``; ``viewer_id`` the signed-in user or ``None``.
        """
        raise NotImplementedError


def first_of(value: Any) -> int:
    """``first`` as the resolvers check it; ``NotPlanned`` when out of range (they report it)."""
    try:
        return check_first(value)
    except BadUserInput as error:
        raise NotPlanned("first is out of range") from error
