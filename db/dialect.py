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

from db.models import sqlite_timestamp

__all__ = ["DriverDialect", "insert_ignore"]


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

    def compile(self, statement: sa.ClauseElement) -> tuple[str, list[str]]:
        """A SQLAlchemy Core ``statement`` as driver SQL: the text and its parameters' names in placeholder order.

        For a hot-path statement built from shared Core expressions (``db.users.viewer_by_id``);
        compile once and keep the text. Every value must be a named ``bindparam``.
        """
        dialect: Any = sqlite.dialect() if self.is_sqlite else asyncpg.dialect()  # type: ignore[no-untyped-call]
        compiled: Any = statement.compile(dialect=dialect)
        return compiled.string, list(compiled.positiontup or ())

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
