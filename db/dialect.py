"""What differs between SQLite and PostgreSQL: SQLAlchemy statements, and driver SQL's placeholders and values."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import asyncpg
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import sqlite_now, sqlite_timestamp, utcnow

__all__ = ["Compiled", "DriverDialect", "bind", "compile_statement", "insert_ignore"]


def insert_ignore(session: AsyncSession, table: sa.Table) -> Any:
    """``INSERT ... ON CONFLICT DO NOTHING`` for the session's engine (idempotent links)."""
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return insert(table).on_conflict_do_nothing()


# ``:name`` parameters; not the second colon of PostgreSQL's ``::type`` casts
_PARAMETER = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


@dataclass(frozen=True)
class DriverDialect:
    """What differs in driver SQL (``Database.fetch_raw``, ``Database.write``) between the engines."""

    is_sqlite: bool

    def placeholder(self, number: int) -> str:
        """The driver's placeholder for the ``number``-th parameter (from 1): ``?`` or ``$number``."""
        return "?" if self.is_sqlite else f"${number}"

    def bind_time(self, value: dt.datetime) -> str | dt.datetime:
        """``value`` as a parameter compared with stored timestamps (SQLite stores them as text)."""
        return sqlite_timestamp(value) if self.is_sqlite else value

    def bind_now(self) -> str | dt.datetime:
        """The current time as ``bind_time`` binds it (``bind_time(utcnow())``, cheaper on SQLite)."""
        return sqlite_now() if self.is_sqlite else utcnow()

    def render(self, sql: str) -> tuple[str, list[str]]:
        """``sql`` with its ``:name`` parameters made the driver's placeholders.

        Returns the text and the parameter names in placeholder order (a name may repeat:
        each use is its own placeholder). ``sql`` must not hold a colon before a name in a
        string literal: parameters are found by pattern, not by parsing.
        """
        names: list[str] = []

        def placeholder(match: re.Match[str]) -> str:
            names.append(match.group(1))
            return self.placeholder(len(names))

        return _PARAMETER.sub(placeholder, sql), names


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
    # constants first: ``values`` may compute a value on lookup (a mapping with __missing__), never a constant's
    return text, [constants[name] if name in constants else values[name] for name in names]
