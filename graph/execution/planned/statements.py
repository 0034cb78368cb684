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

from db.dialect import Compiled, bind, compile_statement

__all__ = ["Compiled", "Variants", "bind", "compile_statement"]


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
                # the oldest only: the variants in steady use (anonymous, a signed-in viewer
                # checked or not, ...) stay compiled while a rare one comes and goes
                del self.compiled[next(iter(self.compiled))]
            found = self.compiled[variant] = compile_statement(self.build(variant), self.is_sqlite)
        return found
