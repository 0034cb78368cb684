"""Copy a whole Conduit database to another, empty one: SQLite to PostgreSQL and back.

``copy_database`` (``conduit db copy --from URL --to URL``) migrates the target, checks that it
is empty, then streams every table of ``db.models`` in foreign-key order from one read snapshot
of the source into ONE transaction on the target: either every row arrives or none does.
Primary keys are kept, so links between rows stay as they are, and PostgreSQL sequences are
moved past the copied ids afterwards. Rows go through SQLAlchemy Core with the models' column
types, so aware UTC timestamps survive exactly on either engine (text on SQLite, ``timestamptz``
on PostgreSQL).

Not copied: Alembic's ``alembic_version`` (the migrations write the target's own) and the
search index (SQLite's ``article_fts*`` tables, PostgreSQL's generated ``article.search``
column), which the target's migrations rebuild from the copied articles by trigger or
generated column.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncConnection

from db.engine import Database, is_sqlite_url, normalize_url
from db.migrate import alembic_config, upgrade
from db.models import metadata

IGNORED_TABLES = frozenset({"alembic_version"})
"""Tables in a Conduit database that are not data: the migrations own them."""

IGNORED_PREFIXES = ("article_fts", "sqlite_")
"""SQLite's full-text index (the FTS5 table and its shadow tables) and SQLite's own tables."""


class CopyError(Exception):
    """The copy was refused; no row was written to the target."""


def display_url(url: str) -> str:
    """``url`` as given, with its password masked, for messages."""
    return make_url(url).render_as_string(hide_password=True)


def copy_order() -> list[sa.Table]:
    """The tables to copy, parents before children (``user`` first, ``favorite``/``comment`` late)."""
    return list(metadata.sorted_tables)


async def copy_database(source_url: str, target_url: str, *, batch_size: int = 1000) -> dict[str, int]:
    """Copy every row of the database at ``source_url`` into the empty database at ``target_url``.

    Either URL may be SQLite or PostgreSQL, in any form ``normalize_url`` takes. The source is
    only read, from one consistent snapshot; it must be at the Alembic head revision of this
    code. The target is migrated to head (created, for a SQLite file) and must then have no rows
    in any table. Rows are read ``batch_size`` at a time (a server-side cursor: memory does not
    grow with the database) and inserted in one transaction, committed only after the last table.

    Returns the number of rows copied per table name, in copy order (``copy_order``), e.g.
    ``{"rate_limit_event": 0, "tag": 50, "user": 50, "article": 250, ..., "favorite": 1000}``;
    a table with no rows is listed with ``0``.

    Raises ``CopyError`` (before writing any row, and before migrating a target that has rows)
    when the source and target are the same database, the SQLite source file does not exist, the
    source is not at the head revision or holds tables this code does not know, or the target
    has rows. Database errors (unreachable server, unknown database, a constraint broken by
    inconsistent source data) propagate as SQLAlchemy exceptions after the target transaction
    has been rolled back. Raises ``ValueError`` if ``batch_size`` is below 1.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    _refuse_same_database(source_url, target_url)
    _require_source_file(source_url)
    head = ScriptDirectory.from_config(alembic_config(target_url)).get_current_head()
    source = Database(source_url, pool_size=1)
    target = Database(target_url, pool_size=1)
    try:
        async with source.engine.connect() as reader:
            await _begin_snapshot(reader, source.is_sqlite)
            await _check_source(reader, head)
            # A target with rows is refused before the migrations touch its schema.
            async with target.engine.connect() as probe:
                await _require_empty(probe, target_url, existing_only=True)
                await probe.rollback()
            await target.dispose()
            await asyncio.to_thread(upgrade, target_url)
            async with target.engine.connect() as writer:
                try:
                    counts = await _copy_all(reader, writer, target, target_url, batch_size)
                except BaseException:
                    await writer.rollback()
                    raise
                await writer.commit()
            await reader.rollback()
        return counts
    finally:
        await source.dispose()
        await target.dispose()


def _sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL, or ``None`` for an in-memory database."""
    database = make_url(normalize_url(url)).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database).expanduser().resolve()


def _refuse_same_database(source_url: str, target_url: str) -> None:
    if is_sqlite_url(source_url) and is_sqlite_url(target_url):
        source_path, target_path = _sqlite_path(source_url), _sqlite_path(target_url)
        same = source_path is not None and source_path == target_path
    else:
        source, target = make_url(normalize_url(source_url)), make_url(normalize_url(target_url))
        same = source.set(password=None) == target.set(password=None)
    if same:
        raise CopyError(f"source and target are the same database ({display_url(target_url)})")


def _require_source_file(source_url: str) -> None:
    # Opening a missing SQLite file would create an empty one; a typo must not "copy" nothing.
    if is_sqlite_url(source_url):
        path = _sqlite_path(source_url)
        if path is not None and not path.is_file():
            raise CopyError(f"source database file {path} does not exist")


async def _begin_snapshot(connection: AsyncConnection, is_sqlite: bool) -> None:
    """Start a read-only transaction whose reads all see the same committed state."""
    if is_sqlite:
        # Driver autocommit (see Database): a deferred BEGIN keeps one WAL snapshot from the first read.
        await connection.exec_driver_sql("BEGIN")
    else:
        await connection.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        await connection.begin()
        await _lift_statement_timeout(connection)


async def _lift_statement_timeout(connection: AsyncConnection) -> None:
    """No server-side statement timeout in this PostgreSQL transaction: it is a bulk copy, not a request.

    Taking a lock still gives up after 10 s instead of waiting behind a stuck transaction.
    """
    await connection.exec_driver_sql("SET LOCAL statement_timeout = 0")
    await connection.exec_driver_sql("SET LOCAL lock_timeout = '10s'")


def _table_names(connection: Connection) -> list[str]:
    return sa.inspect(connection).get_table_names()


async def _check_source(reader: AsyncConnection, head: str | None) -> None:
    """Refuse a source that is not a Conduit database at ``head`` or holds unknown tables."""
    names = set(await reader.run_sync(_table_names))
    if "alembic_version" not in names:
        raise CopyError("the source has no alembic_version table; it is not a migrated Conduit database")
    revisions = sorted((await reader.execute(sa.text("SELECT version_num FROM alembic_version"))).scalars())
    if revisions != [head]:
        found = ", ".join(revisions) or "none"
        raise CopyError(
            f"the source is at revision {found}, this version of conduit at {head}; "
            "run `conduit db upgrade` on the source first"
        )
    known = {table.name for table in copy_order()} | IGNORED_TABLES
    unknown = sorted(name for name in names - known if not name.startswith(IGNORED_PREFIXES))
    if unknown:
        raise CopyError(f"the source has tables conduit does not know, which would be lost: {', '.join(unknown)}")


async def _require_empty(connection: AsyncConnection, target_url: str, *, existing_only: bool) -> None:
    """Raise ``CopyError`` if any table of ``db.models`` has a row on ``connection``.

    With ``existing_only``, tables missing from the database (a target not yet migrated) are skipped.
    """
    tables = copy_order()
    if existing_only:
        present = set(await connection.run_sync(_table_names))
        tables = [table for table in tables if table.name in present]
    non_empty = [
        table.name
        for table in tables
        if (await connection.execute(sa.select(sa.literal(1)).select_from(table).limit(1))).first() is not None
    ]
    if non_empty:
        raise CopyError(
            f"the target {display_url(target_url)} is not empty (rows in {', '.join(non_empty)}); "
            "copy only into an empty database"
        )


async def _copy_all(
    reader: AsyncConnection, writer: AsyncConnection, target: Database, target_url: str, batch_size: int
) -> dict[str, int]:
    """Copy every table inside one write transaction on ``writer`` (the caller commits)."""
    tables = copy_order()
    if target.is_sqlite:
        # SQLite's write lock for the whole copy (see Database.transaction).
        await writer.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        await writer.begin()
        await _lift_statement_timeout(writer)
        # Others may read the target meanwhile, but not write, so "empty" holds until the commit.
        names = ", ".join(writer.dialect.identifier_preparer.format_table(table) for table in tables)
        await writer.exec_driver_sql(f"LOCK TABLE {names} IN EXCLUSIVE MODE")
    await _require_empty(writer, target_url, existing_only=False)
    counts = {table.name: await _copy_table(reader, writer, table, batch_size) for table in tables}
    if not target.is_sqlite:
        await _reset_sequences(writer, tables)
    return counts


async def _copy_table(reader: AsyncConnection, writer: AsyncConnection, table: sa.Table, batch_size: int) -> int:
    """Stream ``table`` in primary-key order from ``reader`` into ``writer``; returns the row count."""
    query = sa.select(*table.columns).order_by(*table.primary_key.columns).execution_options(yield_per=batch_size)
    result = await reader.stream(query)
    insert = sa.insert(table)
    copied = 0
    async for partition in result.partitions(batch_size):
        rows: list[dict[str, Any]] = [dict(row._mapping) for row in partition]
        await writer.execute(insert, rows)
        copied += len(rows)
    return copied


async def _reset_sequences(writer: AsyncConnection, tables: list[sa.Table]) -> None:
    """Move each PostgreSQL ``serial`` sequence past the ids copied with their explicit values.

    The next id becomes ``max(id) + 1`` (``1`` for an empty table). Tables whose primary key has
    no sequence are left alone (``setval`` of ``NULL`` is ``NULL``).
    """
    preparer = writer.dialect.identifier_preparer
    for table in tables:
        key = list(table.primary_key.columns)
        if len(key) != 1 or not isinstance(key[0].type, sa.Integer):
            continue
        column = key[0]
        await writer.execute(
            sa.select(
                sa.func.setval(
                    sa.func.pg_get_serial_sequence(preparer.format_table(table), column.name),
                    sa.func.coalesce(sa.func.max(column), 0) + 1,
                    False,
                )
            )
        )
