"""Statements of a plan: the select list the selection asks for, and each statement's variants."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from db.dialect import DriverDialect
from db.driver_sql import VIEWER_COLUMNS

__all__ = ["Columns", "Rendered", "Statement", "bind"]

Rendered = tuple[str, list[str]]
"""Driver SQL and its parameters' names in placeholder order (``DriverDialect.render``)."""


class Columns:
    """The select list of one statement: expressions in order, each added once."""

    def __init__(self) -> None:
        self.expressions: list[str] = []

    def add(self, expression: str) -> int:
        """The position of ``expression`` in the row, adding it if new."""
        if expression not in self.expressions:
            self.expressions.append(expression)
        return self.expressions.index(expression)

    def render(self, dialect: DriverDialect, signed_in: bool) -> str:
        """The select list; without a viewer, a constant false stands for each viewer column."""
        return ", ".join(
            e if signed_in or e not in VIEWER_COLUMNS else f"{dialect.false} AS viewer_flag" for e in self.expressions
        )


@dataclass(eq=False)
class Statement:
    """One statement of a plan in every variant it has, rendered on first use.

    A variant is a tuple of flags (which filters are present, a cursor, a viewer) that
    ``build`` turns into driver SQL.
    """

    build: Callable[[tuple[Any, ...]], Rendered]
    variants: dict[tuple[Any, ...], Rendered] = field(default_factory=dict)

    def get(self, variant: tuple[Any, ...]) -> Rendered:
        """The rendered SQL of ``variant``."""
        found = self.variants.get(variant)
        if found is None:
            found = self.variants[variant] = self.build(variant)
        return found


def bind(sql: Rendered, values: dict[str, Any]) -> tuple[str, list[Any]]:
    """A rendered statement with its parameters' values in placeholder order; ``KeyError`` for a missing one."""
    text, names = sql
    return text, [values[name] for name in names]
