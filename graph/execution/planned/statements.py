"""Statements of a plan: the select list the selection asks for, and each statement's variants."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from graph.execution.planned.flavour import Flavour

__all__ = ["FAVORITED", "FOLLOWING", "Columns", "Statement", "bind", "render"]

# Column expressions that depend on the viewer; rendered as a constant false when anonymous.
FAVORITED = "EXISTS(SELECT 1 FROM favorite f WHERE f.article_id = a.id AND f.user_id = :viewer)"
FOLLOWING = "EXISTS(SELECT 1 FROM follow fo WHERE fo.followee_id = u.id AND fo.follower_id = :viewer)"
VIEWER_COLUMNS = (FAVORITED, FOLLOWING)


class Columns:
    """The select list of one statement: expressions in order, each added once."""

    def __init__(self) -> None:
        self.expressions: list[str] = []

    def add(self, expression: str) -> int:
        """The position of ``expression`` in the row, adding it if new."""
        if expression not in self.expressions:
            self.expressions.append(expression)
        return self.expressions.index(expression)

    def render(self, flavour: Flavour, signed_in: bool) -> str:
        return ", ".join(
            e if signed_in or e not in VIEWER_COLUMNS else f"{flavour.false} AS viewer_flag" for e in self.expressions
        )


def render(sql: str, names: Sequence[str], flavour: Flavour) -> tuple[str, list[str]]:
    """``sql`` with ``:name`` parameters in ``names`` made positional for ``flavour``.

    Returns the text and the parameter names in placeholder order (a name may repeat).
    """
    order: list[str] = []
    out: list[str] = []
    index = 0
    while True:
        positions = [(sql.find(":" + n, index), n) for n in names]
        found = [(p, n) for p, n in positions if p >= 0 and not sql[p + 1 + len(n) : p + 2 + len(n)].isalnum()]
        if not found:
            out.append(sql[index:])
            break
        position, name = min(found)
        out.append(sql[index:position])
        order.append(name)
        out.append(flavour.placeholder(len(order)))
        index = position + 1 + len(name)
    return "".join(out), order


@dataclass(eq=False)
class Statement:
    """One statement of a plan in every variant it has, rendered on first use."""

    build: Callable[[tuple[Any, ...]], tuple[str, list[str]]]
    variants: dict[tuple[Any, ...], tuple[str, list[str]]] = field(default_factory=dict)

    def get(self, variant: tuple[Any, ...]) -> tuple[str, list[str]]:
        found = self.variants.get(variant)
        if found is None:
            found = self.variants[variant] = self.build(variant)
        return found


def bind(sql: tuple[str, list[str]], values: dict[str, Any]) -> tuple[str, list[Any]]:
    """A rendered statement with its parameters' values in placeholder order."""
    text, names = sql
    return text, [values[name] for name in names]
