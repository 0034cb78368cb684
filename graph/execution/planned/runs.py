"""Levels at run time: their statements' variants, one execution's batches, and the accessors shaping reads.

An ``Execution`` runs statements in batches through ``Database.fetch_raw``: first every root
field's, then, as rows arrive, the statements of the connections below them (one per
connection level, for all parents at once), until none is left. On PostgreSQL the
connections are read inside their parents' statements instead (``embedded``). Shaping starts
after the last batch, from the roots down, each level reading its children through accessors.
"""

from __future__ import annotations

import datetime as dt
import functools
from base64 import urlsafe_b64encode
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import sqlalchemy as sa
from graphql import FieldNode, GraphQLError, GraphQLField, VariableNode, Visitor, visit
from graphql.execution.values import VariableValues, get_argument_values
from sqlalchemy.dialects.postgresql import ARRAY, aggregate_order_by

from auth.backend import Viewer
from db.dialect import DriverDialect
from graph.errors import BadUserInput
from graph.execution.planned.errors import NotPlanned
from graph.execution.planned.mapping import ADMIN, NOW, STAFF, VIEWER, VIEWER_NAME, VIEWER_ROLE, Page
from graph.execution.planned.planner import Child, Level
from graph.execution.planned.shaping import cursor_key
from graph.execution.planned.statements import Variants, bind
from graph.ids import CursorKind, decode_cursor, encode_cursor
from graph.types.node import check_first, check_offset

__all__ = [
    "ChildRun",
    "Execution",
    "FieldError",
    "LevelRun",
    "arguments",
    "child_statements",
    "cursor_condition",
    "cursor_of",
    "first_of",
    "keys_in",
    "parameter",
    "selected",
]

EMPTY: list[Any] = []


class FieldError(Exception):
    """The error a field's resolver raises for this run (``original``: ``BadUserInput``, a permission's error).

    The planner reports it as graphql-core would (``OperationSql.execute``), located at the
    field's ``node`` and response ``path``.
    """

    def __init__(self, original: Exception, node: FieldNode | None = None, path: list[str] | None = None) -> None:
        super().__init__(str(original))
        self.original = original
        self.node = node
        self.path = path


class _Variables(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []

    def enter_variable(self, node: VariableNode, *_args: Any) -> None:
        self.names.append(node.name.value)


class ArgumentReader:
    """One field node's coerced arguments, remembered per values of the variables it reads.

    graphql-core's ``get_argument_values`` coerces every argument (defaults included) on every
    call: 30 to 60 µs for ``articles``' seven, the largest part of planning a run. Its answer
    depends only on the node and on the values of the variables the node reads, so it is kept
    for the last few sets of those values (not for unhashable ones: lists, input objects). The
    dicts are shared between runs and never changed.
    """

    __slots__ = ("answers", "definition", "names", "node")
    MAX_ANSWERS = 64

    def __init__(self, definition: GraphQLField, node: FieldNode) -> None:
        self.definition = definition
        self.node = node
        finder = _Variables()
        for argument in node.arguments or ():
            visit(argument, finder)
        self.names = tuple(dict.fromkeys(finder.names))
        self.answers: dict[tuple[Any, ...], dict[str, Any]] = {}

    def read(self, variables: VariableValues | None) -> dict[str, Any]:
        """The coerced arguments by name; ``NotPlanned`` when they do not coerce (graphql-core reports it)."""
        key: tuple[Any, ...] | None = None
        if variables is not None or not self.names:
            coerced = variables.coerced if variables is not None else {}
            key = tuple(coerced.get(name, _MISSING) for name in self.names)
            try:
                found = self.answers.get(key)
            except TypeError:  # a list or an input object: not kept
                key = None
            else:
                if found is not None:
                    return found
        try:
            answer = get_argument_values(self.definition, self.node, variables)
        except GraphQLError as error:
            raise NotPlanned("arguments do not coerce") from error
        if key is not None:
            if len(self.answers) >= self.MAX_ANSWERS:
                self.answers.clear()
            self.answers[key] = answer
        return answer


_MISSING = object()


def arguments(
    definition: GraphQLField, node: FieldNode, variables: VariableValues | None, owner: Any
) -> dict[str, Any]:
    """A field's coerced arguments by name; ``NotPlanned`` when they do not coerce.

    ``owner``: the plan object the field belongs to (a root, a child connection, a write),
    which keeps the field's ``ArgumentReader``: it lives and is freed with the plan, whose
    size the plan cache accounts for.
    """
    reader = owner.__dict__.get("_arguments")
    if reader is None:
        reader = owner.__dict__["_arguments"] = ArgumentReader(definition, node)
    return reader.read(variables)  # type: ignore[no-any-return]


def first_of(value: Any) -> int:
    """``first`` as the resolvers check it; ``FieldError`` (their ``BadUserInput``) when out of range."""
    try:
        return check_first(value)
    except BadUserInput as error:
        raise FieldError(error) from None


def offset_of(value: Any, after: str | None) -> int:
    """``offset`` as the resolvers check it (``check_offset``); ``FieldError`` when negative or given with ``after``."""
    try:
        return check_offset(value, after)
    except BadUserInput as error:
        raise FieldError(error) from None


def after_of(value: str | None, kind: CursorKind, key_type: type) -> tuple[Any, int] | None:
    """The decoded ``after`` cursor, ``None`` without one; ``FieldError`` when it does not decode."""
    if value is None:
        return None
    try:
        return decode_cursor(value, kind, key_type)
    except BadUserInput as error:
        raise FieldError(error) from None


def parameter(name: str) -> sa.BindParameter[Any]:
    """A named parameter (its value comes from the run's values)."""
    return sa.bindparam(name)


def keys_in(column: Any, is_sqlite: bool) -> Any:
    """``column`` is one of the ``:keys`` parameter: a JSON array on SQLite, an array on PostgreSQL."""
    if is_sqlite:
        return column.in_(sa.select(sa.literal_column("value")).select_from(sa.func.json_each(parameter("keys"))))
    return column == sa.any_(sa.cast(parameter("keys"), ARRAY(sa.BigInteger)))


def keys_value(keys: list[Any], is_sqlite: bool) -> Any:
    """The ``:keys`` parameter's value for ``keys_in``."""
    return orjson.dumps(keys).decode() if is_sqlite else keys


def cursor_condition(
    key: sa.ColumnElement[Any] | None, pk: sa.ColumnElement[Any], descending: bool, prefix: str = ""
) -> sa.ColumnElement[bool]:
    """Rows after the cursor ``(:ckey, :cpk)`` (names prefixed) in the order ``(key, pk)``, descending or not."""
    ckey, cpk = parameter(f"{prefix}ckey"), parameter(f"{prefix}cpk")
    if key is None:
        after: sa.ColumnElement[bool] = pk < cpk if descending else pk > cpk
        return after
    if descending:
        return sa.or_(key < ckey, sa.and_(key == ckey, pk < cpk))
    return sa.or_(key > ckey, sa.and_(key == ckey, pk > cpk))


def cursor_of(
    kind: CursorKind, key_index: int | None, pk_index: int, key_is_time: bool, is_sqlite: bool
) -> Callable[[Any], str]:
    """The cursor of a row whose ordering key and primary key are at ``key_index`` and ``pk_index``."""
    prefix = f"{kind}|"
    if key_index is None:
        return lambda r: _cursor_text(prefix, "", r[pk_index], False)
    if key_is_time and is_sqlite:  # SQLite's timestamps are text
        return lambda r: _cursor_text(prefix, r[key_index], r[pk_index], True)
    if not key_is_time:  # an integer
        return lambda r: _cursor_text(prefix, r[key_index], r[pk_index], False)
    return lambda r: _encoded_cursor(kind, r[key_index], r[pk_index])


CURSORS_KEPT = 16_384
"""Cursors ``cursor_of``'s functions remember (about 3 MiB): a page encodes one per row, and the
same rows, request after request; the lookup costs a tenth of the encoding."""


@functools.lru_cache(maxsize=CURSORS_KEPT)
def _cursor_text(prefix: str, key: Any, pk: int, sqlite_time: bool) -> str:
    # encode_cursor's text written out for keys it writes as they are
    text = cursor_key(key) if sqlite_time else key
    return urlsafe_b64encode(f"{prefix}{text}|{pk}".encode()).decode()


_encoded_cursor = functools.lru_cache(maxsize=CURSORS_KEPT)(encode_cursor)


def page_keys(page: Page, table: Any) -> tuple[list[Any], list[Any]]:
    """The key columns of a page over ``table`` (an alias of ``page.table``) and their ordering."""
    pk = table.c[page.pk]
    key = table.c[page.key] if page.key is not None else None
    order = [key, pk] if key is not None else [pk]
    columns = [pk.label("pk"), *([key.label("key")] if key is not None else []), table.c[page.parent].label("parent")]
    return columns, [column.desc() if page.descending else column.asc() for column in order]


def selected(
    level: Level, is_sqlite: bool, signed_in: bool, cursors: frozenset[str] = frozenset()
) -> list[sa.ColumnElement[Any]]:
    """``level``'s select list: its columns, then, where it embeds them (``Level.embeds``), its connections'.

    Each connection below is one column ``e0``, ``e1``, ...: its page for the row's parent
    (``embedded``). ``cursors``: the names (``Child.name``) of the connections given a cursor,
    at any depth below (a statement's variant, ``LevelRun.embedding``).
    """
    columns = level.select_list(is_sqlite, signed_in)
    if level.embeds(is_sqlite):
        columns += [embedded(child, signed_in, cursors).label(f"e{i}") for i, child in enumerate(level.children)]
    return columns


def embedded(child: Child, signed_in: bool, cursors: frozenset[str]) -> sa.ColumnElement[Any]:
    """On PostgreSQL, a connection's page for its parent row, as a correlated ``array_agg`` of its rows.

    The rows are those ``child_statements`` reads for one parent (the columns, the
    connections below embedded in turn, then ``pk``, ``key`` and ``parent``), each a record
    asyncpg decodes into a tuple with the same codecs as a row; ``NULL`` for an empty page.
    The parameters are prefixed with ``child.name``: ``limit`` (0 when the field's
    arguments fail: nothing is read), and ``ckey``/``cpk`` for a cursor.
    """
    level, page, name = child.level, child.relation.page, child.name
    # over the objects' own table (``Article.comments``, ``User.articles``) the page is read
    # straight off its index, as ``child_statements`` does for one parent: every parent is one
    # here. Measured on Q2's 16 comments: 73-80 µs of the server's CPU against 83-90 with the
    # keys' subquery joined back to the table. Pages over a link table (favorites) keep it.
    own_table = page.table is level.mapping.table and page.pk == "id"
    table = level.alias if own_table else page.table.alias(f"{name}_pg_t")
    columns, ordering = page_keys(page, table)
    key = table.c[page.key] if page.key is not None else None
    where = [table.c[page.parent] == child.relation.parent_key(child.parent_alias)]
    if name in cursors:
        where.append(cursor_condition(key, table.c[page.pk], page.descending, f"{name}_"))
    if own_table:
        rows = (
            sa.select(*selected(level, False, signed_in, cursors), *columns)
            .select_from(level.from_clause(table))
            .where(*where)
            .order_by(*ordering)
            .limit(parameter(f"{name}_limit"))
            .correlate(child.parent_alias)  # a subquery in FROM: SQLAlchemy correlates it only when told
            .subquery(f"{name}_rows")
        )
    else:
        keys = (
            sa.select(*columns)
            .where(*where)
            .order_by(*ordering)
            .limit(parameter(f"{name}_limit"))
            .correlate(child.parent_alias)
            .subquery(f"{name}_pg")
        )
        source = keys.join(level.alias, level.alias.c.id == keys.c.pk)
        rows = (
            sa.select(*selected(level, False, signed_in, cursors), *[keys.c[c.name] for c in columns])
            .select_from(level.from_clause(source))
            .subquery(f"{name}_rows")
        )
    order = [rows.c.key, rows.c.pk] if key is not None else [rows.c.pk]
    aggregate = sa.func.array_agg(
        aggregate_order_by(sa.func.row(*rows.c), *[c.desc() if page.descending else c.asc() for c in order])
    )
    return sa.select(aggregate).select_from(rows).scalar_subquery()


def child_statements(child: Child, is_sqlite: bool) -> Variants:
    """A connection level's statement, by variant ``(one parent, after a cursor, signed in)``.

    On SQLite only: PostgreSQL reads the page inside the parent's statement (``embedded``).

    The page's keys first, in a subquery over ``page.table`` alone (the index walk and its
    ``LIMIT``, or for several parents a page per parent numbered by ``row_number()``, which
    both engines have); then the objects of those keys, joined by id, with their columns. One
    parent's page over the objects' own table (``User.articles``, ``Article.comments``) is read
    directly, without the subquery. Rows end with the page's ``pk``, ``key`` (if any) and ``parent``.
    """
    level, page = child.level, child.relation.page
    # the page walks the objects' own table: for one parent, no keys' subquery is needed
    own_table = page.table is level.mapping.table and page.pk == "id"

    def build(variant: tuple[bool, bool, bool]) -> sa.ClauseElement:
        single, after, signed_in = variant
        if single and own_table:
            return direct(signed_in, after)
        table = page.table.alias("pg_t")
        columns, ordering = page_keys(page, table)
        key = table.c[page.key] if page.key is not None else None
        parent = table.c[page.parent]
        where = [cursor_condition(key, table.c[page.pk], page.descending)] if after else []
        if single:
            inner = (
                sa.select(*columns)
                .where(parent == parameter("key"), *where)
                .order_by(*ordering)
                .limit(parameter("limit"))
                .subquery("pg")
            )
            outer_order = [inner.c.key, inner.c.pk] if key is not None else [inner.c.pk]
            final: list[Any] = [column.desc() if page.descending else column.asc() for column in outer_order]
            condition = None
        else:
            rank = sa.func.row_number().over(partition_by=parent, order_by=ordering).label("n")
            inner = sa.select(*columns, rank).where(keys_in(parent, is_sqlite), *where).subquery("pg")
            final = [inner.c.parent, inner.c.n]
            condition = inner.c.n <= parameter("limit")
        source = inner.join(level.alias, level.alias.c.id == inner.c.pk)
        statement = sa.select(
            *level.select_list(is_sqlite, signed_in), *[inner.c[c.name] for c in columns]
        ).select_from(level.from_clause(source))
        if condition is not None:
            statement = statement.where(condition)
        return statement.order_by(*final)

    def direct(signed_in: bool, after: bool) -> sa.ClauseElement:
        # one parent's page straight off the index on (parent, key, pk), its objects' columns
        # read as it goes: about 6 µs less than the subquery and its join for 16 comments
        table = level.alias
        columns, ordering = page_keys(page, table)
        key = table.c[page.key] if page.key is not None else None
        where = [cursor_condition(key, table.c[page.pk], page.descending)] if after else []
        return (
            sa.select(*level.select_list(is_sqlite, signed_in), *columns)
            .select_from(level.from_clause(table))
            .where(table.c[page.parent] == parameter("key"), *where)
            .order_by(*ordering)
            .limit(parameter("limit"))
        )

    return Variants(build, is_sqlite)


class Values(dict[str, Any]):
    """A statement's parameter values; ``NOW`` is computed on first use (few statements need it)."""

    __slots__ = ("is_sqlite",)

    def __init__(self, is_sqlite: bool, values: dict[str, Any]) -> None:
        super().__init__(values)
        self.is_sqlite = is_sqlite

    def __missing__(self, key: str) -> Any:
        if key != NOW.key:
            raise KeyError(key)
        now = self[key] = DriverDialect(self.is_sqlite).bind_now()
        return now


@dataclass(eq=False)
class Execution:
    """One run of a planned query: the statements still to run and what receives their rows."""

    db: Any
    is_sqlite: bool
    variables: VariableValues
    viewer_id: int | None
    admin: bool
    context: Any = None
    staff: bool = False
    # the unconfirmed viewer (``Context.viewer_unconfirmed``) the first statement that can
    # checks (``viewer_check``), and that check's answer: ``None`` until read, or when that
    # statement had no row to carry it
    check: Viewer | None = None
    confirmed: bool | None = None
    _claimed: bool = False
    _viewer_values: dict[str, Any] | None = None
    errors: list[FieldError] = field(default_factory=list)
    pending: list[tuple[tuple[str, list[Any]], Callable[[list[Any]], None]]] = field(default_factory=list)

    def values(self, **more: Any) -> dict[str, Any]:
        """Parameter values: the viewer's, the time (``NOW``, taken when a statement asks), and ``more``."""
        viewer = self._viewer_values
        if viewer is None:  # the same for every statement of the run
            viewer = {VIEWER.key: self.viewer_id, ADMIN.key: self.admin, STAFF.key: self.staff}
            if self.check is not None:
                viewer[VIEWER_ROLE.key] = self.check.role.value
                viewer[VIEWER_NAME.key] = self.check.username
            self._viewer_values = viewer
        values = Values(self.is_sqlite, viewer)
        values.update(more)
        return values

    def claim_check(self) -> bool:
        """Whether the statement about to be added carries ``viewer_check`` (the first that asks, when one is due).

        It must then be added with ``checked``.
        """
        if self.check is None or self._claimed:
            return False
        self._claimed = True
        return True

    def _checked(self, receive: Callable[[list[Any]], None]) -> Callable[[list[Any]], None]:

        def receive_checked(rows: list[Any]) -> None:
            if rows:
                self.confirmed = bool(rows[0][-1])  # null (the user is gone) reads as false
            receive(rows)

        return receive_checked

    def add(
        self, statement: tuple[str, list[Any]], receive: Callable[[list[Any]], None], checked: bool = False
    ) -> None:
        """Run ``statement`` in the next batch and hand its rows to ``receive``.

        ``checked``: the statement carries ``viewer_check`` (``claim_check``), whose answer is
        taken from the last column of its first row (``confirmed``) before ``receive`` runs.
        """
        self.pending.append((statement, self._checked(receive) if checked else receive))

    async def run(self) -> None:
        """Run batches until no statement is left (receivers add the next level's)."""
        while self.pending:
            batch, self.pending = self.pending, []
            results = await self.db.fetch_raw([statement for statement, _receive in batch])
            for (_statement, receive), rows in zip(batch, results, strict=True):
                receive(rows)

    def bind_time(self, value: dt.datetime) -> Any:
        """A datetime parameter as stored timestamps compare with it (``DriverDialect.bind_time``)."""
        return DriverDialect(self.is_sqlite).bind_time(value)


class LevelRun:
    """A level's rows in one execution, and the runs of the connections below it.

    Where the level's statement embeds its connections (``Level.embeds``), their runs are
    made with it (``embedded``): their arguments are that statement's values.
    """

    __slots__ = ("children", "embedded", "execution", "level", "rows")

    def __init__(self, execution: Execution, level: Level) -> None:
        self.execution = execution
        self.level = level
        self.rows: list[Any] = EMPTY
        self.children: list[ChildRun] = []
        self.embedded: list[ChildRun] = (
            [ChildRun(execution, child) for child in level.children] if level.embeds(execution.is_sqlite) else []
        )

    def embedding(self, values: dict[str, Any]) -> frozenset[str]:
        """Add the embedded connections' values (at any depth) to ``values``; the names of those given a cursor.

        The names are part of the statement's variant (``selected``).
        """
        cursors: list[str] = []
        runs = list(self.embedded)
        while runs:
            run = runs.pop()
            name = run.child.name
            values[f"{name}_limit"] = 0 if run.error is not None else run.first + 1
            if run.after is not None:
                run.cursor_values(values, f"{name}_")
                cursors.append(name)
            runs.extend(run.embedded)
        return frozenset(cursors)

    def receive(self, rows: list[Any]) -> None:
        """Take this level's rows and schedule each child connection's statement for their keys.

        An embedded connection takes its rows from the parents' rows instead: each parent's
        page once (parents may repeat, as keys do), then its own connections' in turn.
        """
        self.rows = rows
        execution = self.execution
        width = len(self.level.columns)
        for index, child in enumerate(self.level.children):
            run = self.embedded[index] if self.embedded else ChildRun(execution, child)
            self.children.append(run)
            if run.error is not None:
                if rows:  # the resolver runs (and fails) once per parent
                    if child.in_list:
                        raise NotPlanned("an argument error in a list")
                    execution.errors.append(run.error)
                continue
            if self.embedded:
                pages: dict[Any, Any] = {}
                for row in rows:
                    pages.setdefault(row[child.parent_index], row[width + index])
                run.receive([item for page in pages.values() if page for item in page])
                continue
            keys = list(dict.fromkeys(row[child.parent_index] for row in rows))
            if keys:
                execution.add(run.statement(keys), run.receive)

    def accessors(self) -> list[Callable[[Any, Any], Any]]:
        """For each child connection: ``(parent key, total) -> connection dict``."""
        return [run.accessor() for run in self.children]


class ChildRun(LevelRun):
    """A connection level's run: its arguments, its statement for the parents' keys, its pages by parent."""

    __slots__ = ("after", "child", "error", "first")

    def __init__(self, execution: Execution, child: Child) -> None:
        super().__init__(execution, child.level)
        self.child = child
        self.error: FieldError | None = None
        self.first, self.after = 0, None
        args = arguments(child.definition, child.node, execution.variables, child)
        page = child.relation.page
        key_type: type = (dt.datetime if page.key_is_time else int) if page.key is not None else type(None)
        try:
            self.first = first_of(args.get("first"))
            self.after = after_of(args.get("after"), page.kind, key_type)
        except FieldError as error:
            error.node, error.path = child.node, child.path
            self.error = error

    def statement(self, keys: list[Any]) -> tuple[str, list[Any]]:
        """The page(s) of the parents ``keys``."""
        execution, child = self.execution, self.child
        statements = child.variants
        if statements is None:  # compiled with the plan, once per variant
            statements = child.variants = child_statements(child, execution.is_sqlite)
        single = len(keys) == 1
        values = execution.values(limit=self.first + 1)
        if single:
            values["key"] = keys[0]
        else:
            values["keys"] = keys_value(keys, execution.is_sqlite)
        if self.after is not None:
            self.cursor_values(values)
        variant = (single, self.after is not None, execution.viewer_id is not None)
        return bind(statements.get(variant), values)

    def cursor_values(self, values: dict[str, Any], prefix: str = "") -> None:
        """The ``after`` cursor's ``ckey`` and ``cpk`` (``cursor_condition``), names prefixed with ``prefix``."""
        if self.after is not None:
            key, pk = self.after
            values[f"{prefix}ckey"] = self.execution.bind_time(key) if isinstance(key, dt.datetime) else key
            values[f"{prefix}cpk"] = pk

    def accessor(self) -> Callable[[Any, Any], Any]:
        if self.error is not None:
            error = self.error

            def fail(_key: Any, _total: Any) -> Any:
                raise error

            return fail
        level, page = self.level, self.child.relation.page
        width = level.width(self.execution.is_sqlite)  # then the page's pk, key (if any) and parent
        parent = width + (2 if page.key is not None else 1)
        groups: dict[Any, list[Any]] = {}
        for row in self.rows:
            groups.setdefault(row[parent], []).append(row)
        shape, first, has_previous = level.shape, self.first, self.after is not None
        accessors = self.accessors()
        cursor = cursor_of(
            page.kind, width + 1 if page.key is not None else None, width, page.key_is_time, self.execution.is_sqlite
        )

        def get(key: Any, total: Any) -> Any:
            return shape(groups.get(key, EMPTY), first, has_previous, total, accessors, cursor)

        return get
