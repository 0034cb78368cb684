"""SQLAlchemy Core statements compiled once per dialect into the driver's SQL, and bound per run.

A plan builds its statements as SQLAlchemy Core expressions with named ``bindparam`` s only
(no inline values) and compiles each variant once (``Variants``): ``?`` placeholders for
SQLite's ``sqlite3``, ``$n`` for asyncpg, with the parameters' names in placeholder order.
At run time ``bind`` orders a dict of values into the driver's parameter list, so a request
costs no SQLAlchemy compilation (``Database.fetch_raw`` runs the text as it is).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.postgresql import asyncpg

__all__ = ["Compiled", "Variants", "bind", "compile_statement"]

Compiled = tuple[str, tuple[str, ...], dict[str, Any]]
"""Driver SQL, its parameters' names in placeholder order, and the values of its constants.

A statement's constants (``OFFSET 0`` that SQLAlchemy adds to SQLite's ``LIMIT``, a literal
in a builder) are parameters SQLAlchemy names itself; their values are the statement's own,
fixed when it is built. Request values only ever travel in the named ``bindparam`` s."""

_DIALECTS: dict[bool, Any] = {True: sqlite.dialect(), False: asyncpg.dialect()}  # type: ignore[no-untyped-call]


def compile_statement(statement: sa.ClauseElement, is_sqlite: bool) -> Compiled:
    """``statement`` as the driver's SQL (``?`` or ``$n``), its parameters' names in order, its constants."""
    compiled: Any = statement.compile(dialect=_DIALECTS[is_sqlite])
    names = tuple(compiled.positiontup or ())
    constants = {name: compiled.binds[name].effective_value for name in names if compiled.binds[name].value is not None}
    return compiled.string, names, constants


def bind(compiled: Compiled, values: dict[str, Any]) -> tuple[str, list[Any]]:
    """``compiled`` with its parameters' values in placeholder order; ``KeyError`` for a missing one."""
    text, names, constants = compiled
    if not constants:
        return text, [values[name] for name in names]
    # constants first: ``values`` may compute a value on lookup (runs.Values), never a constant's
    return text, [constants[name] if name in constants else values[name] for name in names]


@dataclass(eq=False)
class Variants:
    """One statement of a plan in each variant it has, compiled on first use.

    A variant is a hashable key (which filters are present, a cursor, a viewer, ...) that
    ``build`` turns into a SQLAlchemy statement.
    """

    build: Callable[[Any], sa.ClauseElement]
    is_sqlite: bool
    compiled: dict[Hashable, Compiled] = field(default_factory=dict)

    MAX_VARIANTS = 8
    """Compiled variants kept per statement: a plan's size must stay near what the plan cache
    charges for it (``PlannedOperation.weight``), whatever mix of arguments clients send."""

    def get(self, variant: Hashable) -> Compiled:
        """The compiled SQL of ``variant``."""
        found = self.compiled.get(variant)
        if found is None:
            if len(self.compiled) >= self.MAX_VARIANTS:
                self.compiled.clear()
            found = self.compiled[variant] = compile_statement(self.build(variant), self.is_sqlite)
        return found
