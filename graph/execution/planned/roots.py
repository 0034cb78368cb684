"""The ``Query`` root fields at run time: each starts its statements in an ``Execution`` and shapes its value.

One class per kind of root field: the article lists (``articles``, ``feed``), lookups of
one object (``article``, ``user``, ``viewer``, ``node``) or several (``nodes``), the tag
lists and ``rateLimit``. Their semantics are the resolvers' in ``graph/queries.py``, whose
SQL builders they share (``article_filters``, ``feed_condition``, ``tag_count_statement``,
``tag_counts_statement``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from graphql import FieldNode, GraphQLError, GraphQLField
from strawberry.permission import BasePermission

from auth.audit import audit
from db.models import article_table, user_table
from db.users import user_filters, user_search_pattern
from graph.errors import BadUserInput
from graph.execution.planned.errors import NotPlanned
from graph.execution.planned.mapping import NOW, VIEWER, viewer_check
from graph.execution.planned.planner import Level
from graph.execution.planned.runs import (
    EMPTY,
    Execution,
    FieldError,
    LevelRun,
    after_of,
    arguments,
    cursor_condition,
    cursor_of,
    first_of,
    keys_in,
    keys_value,
    offset_of,
    parameter,
    selected,
)
from graph.execution.planned.statements import Variants, bind
from graph.ids import CursorKind, from_global_id
from graph.permissions import STAFF_ROLES, IsAuthenticated, IsStaff
from graph.queries import (
    ARTICLE_CURSOR_KINDS,
    article_filters,
    feed_condition,
    fts_counts_statement,
    search_terms,
    search_walks,
    tag_count_statement,
    tag_counts_statement,
)
from graph.scalars import serialize_datetime
from graph.types.node import MAX_FIRST
from graph.types.rate_limit import rate_limit_of

__all__ = ["ArticleList", "Lookup", "ManyNodes", "OneNode", "RateLimitRoot", "Root", "TagList", "UserList"]

Finish = Callable[[], Any]
"""Shapes a root field's value once every batch has run."""


def unauthenticated(execution: Execution, node: FieldNode) -> FieldError:
    """``IsAuthenticated`` refusing the field ``node``, audited as ``graph/permissions.py`` does."""
    return refused(execution, node, IsAuthenticated())


def refused(execution: Execution, node: FieldNode, permission: BasePermission) -> FieldError:
    """``permission`` refusing the root field ``node``: its error, audited as ``graph/permissions.py`` does."""
    context = execution.context
    audit(
        "permission_denied",
        request_id=context.request_id,
        viewer_id=context.viewer_id,
        permission=type(permission).__name__,
        field_path=node.alias.value if node.alias else node.name.value,
    )
    try:
        permission.on_unauthorized()
    except GraphQLError as error:
        return FieldError(error)
    raise NotPlanned("the permission raised nothing")  # pragma: no cover - Strawberry always raises


def keyed_page(
    level: Level,
    table: sa.Table,
    key: sa.ColumnElement[Any],
    where: list[sa.ColumnElement[bool]],
    descending: bool,
    is_sqlite: bool,
    signed_in: bool,
    offset: bool = False,
    cursors: frozenset[str] = frozenset(),
) -> sa.Select[Any]:
    """A root connection's page: ``level``'s columns, then the row's ``pk`` and ordering ``key``.

    The page's keys over ``table`` (the filters' table) first, then its objects by id with
    their columns: correlated columns (tags, flags, counts) cost a page, not every match a sort
    must see (``runs.child_statements`` does the same below). ``:limit`` is ``first + 1``;
    with ``offset``, ``:offset`` rows are skipped first; ``cursors``: as for ``runs.selected``.
    """
    ordering = (key.desc(), table.c.id.desc()) if descending else (key.asc(), table.c.id.asc())
    keys = sa.select(table.c.id.label("pk"), key.label("key")).where(*where).order_by(*ordering)
    keys = keys.limit(parameter("limit"))
    if offset:
        keys = keys.offset(parameter("offset"))
    page = keys.subquery("pg")
    outer = (page.c.key.desc(), page.c.pk.desc()) if descending else (page.c.key.asc(), page.c.pk.asc())
    return (
        sa.select(*selected(level, is_sqlite, signed_in, cursors), page.c.pk, page.c.key)
        .select_from(level.from_clause(page.join(level.alias, level.alias.c.id == page.c.pk)))
        .order_by(*outer)
    )


def with_total(statement: sa.Select[Any], count: sa.Select[Any]) -> sa.Select[Any]:
    """A page's statement that also reads the list's total (``count``, uncorrelated: run once), after its other columns.

    On PostgreSQL, where a separate count statement is a round trip more (``counted_page``).
    """
    return statement.add_columns(count.correlate(None).scalar_subquery().label("total"))


def with_check(statement: sa.Select[Any], checked: bool) -> sa.Select[Any]:
    """``statement``, with ``viewer_check`` as its last column when ``checked`` (``Execution.claim_check``)."""
    return statement.add_columns(viewer_check()) if checked else statement


def counted_page(
    run: LevelRun, total: list[Any], index: int, count: Callable[[], tuple[str, list[Any]]]
) -> Callable[[list[Any]], None]:
    """The receiver of a page read ``with_total`` (at column ``index``): ``total[0]`` from its first row.

    An empty page has no row to carry the total: ``count`` (the separate count statement) runs
    in the next batch instead.
    """

    def receive(rows: list[Any]) -> None:
        run.receive(rows)
        if rows:
            total[0] = rows[0][index]
        else:
            run.execution.add(count(), lambda counted: total.__setitem__(0, counted[0][0]))

    return receive


@dataclass(eq=False)
class Root:
    """A root field: its node and definition (for its arguments)."""

    node: FieldNode
    definition: GraphQLField

    def levels(self) -> list[Level]:
        """The levels whose shaping functions this root uses."""
        return []

    def start(self, execution: Execution) -> Finish:
        """Add this field's statements to ``execution``; the function that shapes its value after."""
        raise NotImplementedError


@dataclass(eq=False)
class ArticleList(Root):
    """``articles`` (every filter, ``search`` and ``orderBy``) or ``feed``: a page and, for ``totalCount``, a count."""

    level: Level = field(default=None)  # type: ignore[assignment]
    feed: bool = False
    counts: bool = False
    is_sqlite: bool = True
    page: Variants = field(init=False)
    count: Variants = field(init=False)
    matches: Variants = field(init=False)

    def __post_init__(self) -> None:
        self.page = Variants(self._page, self.is_sqlite)
        self.count = Variants(self._count, self.is_sqlite)
        self.matches = Variants(lambda _variant: fts_counts_statement(parameter("search")), self.is_sqlite)

    def levels(self) -> list[Level]:
        return [self.level]

    def _conditions(self, filters: tuple[Any, ...], walk: bool = False) -> list[sa.ColumnElement[bool]]:
        tag, author, favorited_by, search = filters
        conditions = article_filters(
            tag=parameter("tag") if tag else None,
            author=parameter("author") if author else None,
            favorited_by=parameter("favorited_by") if favorited_by else None,
            search=False if search == "none" else (parameter("search") if search else None),
            is_sqlite=self.is_sqlite,
            search_walk=walk,
        )
        if self.feed:
            conditions.append(feed_condition(VIEWER))
        return conditions

    def _page(self, variant: tuple[Any, ...]) -> sa.ClauseElement:
        # The page's keys over ``article`` (the filters' table) first, then its articles by id
        # with their columns: correlated columns (tags, flags) cost a page, not every match a
        # sort must see (runs.child_statements does the same below).
        filters, walk, by_favorites, descending, after, signed_in, offset, cursors, counted, checked = variant
        key = article_table.c.favorites_count if by_favorites else article_table.c.created_at
        where = self._conditions(filters, walk)
        if after:
            where.append(cursor_condition(key, article_table.c.id, descending))
        level = self.level
        page = keyed_page(level, article_table, key, where, descending, self.is_sqlite, signed_in, offset, cursors)
        return with_check(with_total(page, self._count(filters)) if counted else page, checked)

    def _count(self, filters: tuple[Any, ...]) -> sa.Select[Any]:
        tag, author, favorited_by, search = filters
        if tag and not (author or favorited_by or search) and not self.feed:
            return tag_count_statement(parameter("tag"))
        return sa.select(sa.func.count()).select_from(article_table).where(*self._conditions(filters))

    def start(self, execution: Execution) -> Finish:
        if self.feed and execution.viewer_id is None:
            raise unauthenticated(execution, self.node)
        args = arguments(self.definition, self.node, execution.variables, self)
        first = first_of(args.get("first"))
        offset = offset_of(args.get("offset"), args.get("after"))
        order = args.get("orderBy")
        by_favorites = order is not None and order["field"].value == "FAVORITES_COUNT"
        descending = order is None or order["direction"].value == "DESC"
        kind = ARTICLE_CURSOR_KINDS[by_favorites, descending]
        after = after_of(args.get("after"), kind, int if by_favorites else dt.datetime)
        values = execution.values(limit=first + 1, offset=offset)
        search: Any = None
        if args.get("search") is not None:
            terms = search_terms(args["search"], self.is_sqlite)
            search = "none" if terms is None else "terms"
            values["search"] = terms
        for name in ("tag", "author", "favorited_by"):
            values[name] = args.get(name if name != "favorited_by" else "favoritedBy")
        filters = (values["tag"] is not None, values["author"] is not None, values["favorited_by"] is not None, search)
        if after is not None:
            ckey, values["cpk"] = after
            values["ckey"] = execution.bind_time(ckey) if isinstance(ckey, dt.datetime) else ckey
        signed_in = execution.viewer_id is not None
        run = LevelRun(execution, self.level)
        cursors = run.embedding(values)
        total: list[Any] = [None]
        width = self.level.width(self.is_sqlite)  # then the page's pk and key (and its total, with_total)
        # Not for a search: its count is the costly part, and alone it gets a plan (PostgreSQL's
        # generic one, the GIN index) that as a subquery of the page it did not: a common word's
        # page took 30 ms instead of 10 (bench/shapes.py, "search page")
        with_count = self.counts and not self.is_sqlite and search != "terms"

        def counted(rows: list[Any]) -> None:
            total[0] = rows[0][0]

        def schedule(walk: bool) -> None:
            variant = (filters, walk, by_favorites, descending, after is not None, signed_in, offset > 0, cursors)
            checked = execution.claim_check()
            page = bind(self.page.get((*variant, with_count, checked)), values)
            if with_count:
                receive = counted_page(run, total, width + 2, lambda: bind(self.count.get(filters), values))
                execution.add(page, receive, checked)
                return
            execution.add(page, run.receive, checked)
            if self.counts and total[0] is None:
                execution.add(bind(self.count.get(filters), values), counted)

        if search == "terms" and self.is_sqlite:
            # SQLite cannot tell how many articles a search matches: count them from the index
            # first, then walk the ordering's index or list the matches (graph/queries.py)
            def matched(rows: list[Any]) -> None:
                matches, span = rows[0]
                if not any(filters[:3]):
                    total[0] = matches
                schedule(search_walks(matches, span, first + offset))  # the walk passes the skipped rows too

            execution.add(bind(self.matches.get(()), values), matched)
        else:
            schedule(False)
        cursor = cursor_of(kind, width + 1, width, not by_favorites, self.is_sqlite)
        has_previous = after is not None or offset > 0
        return lambda: self.level.shape(run.rows, first, has_previous, total[0], run.accessors(), cursor)


@dataclass(eq=False)
class UserList(Root):
    """``users`` (moderators and admins): a page of users, newest first, and for ``totalCount`` a count."""

    level: Level = field(default=None)  # type: ignore[assignment]
    counts: bool = False
    is_sqlite: bool = True
    page: Variants = field(init=False)
    count: Variants = field(init=False)

    def __post_init__(self) -> None:
        self.page = Variants(self._page, self.is_sqlite)
        self.count = Variants(self._count, self.is_sqlite)

    def levels(self) -> list[Level]:
        return [self.level]

    @staticmethod
    def _conditions(filters: tuple[bool, bool, bool | None]) -> list[sa.ColumnElement[bool]]:
        pattern, role, suspended_now = filters
        return user_filters(
            pattern=parameter("pattern") if pattern else None,
            role=parameter("role") if role else None,
            suspended_now=suspended_now,
            now=NOW,
        )

    def _page(self, variant: tuple[Any, ...]) -> sa.ClauseElement:
        filters, after, signed_in, cursors, counted, checked = variant
        where = self._conditions(filters)
        if after:
            where.append(cursor_condition(user_table.c.created_at, user_table.c.id, True))
        key = user_table.c.created_at
        page = keyed_page(self.level, user_table, key, where, True, self.is_sqlite, signed_in, cursors=cursors)
        return with_check(with_total(page, self._count(filters)) if counted else page, checked)

    def _count(self, filters: tuple[bool, bool, bool | None]) -> sa.Select[Any]:
        return sa.select(sa.func.count()).select_from(user_table).where(*self._conditions(filters))

    def start(self, execution: Execution) -> Finish:
        context = execution.context
        viewer = context.viewer if context is not None else None
        if viewer is None or viewer.role not in STAFF_ROLES:
            raise refused(execution, self.node, IsStaff())
        args = arguments(self.definition, self.node, execution.variables, self)
        first = first_of(args.get("first"))
        after = after_of(args.get("after"), CursorKind.USERS, dt.datetime)
        values = execution.values(limit=first + 1)
        search, role = args.get("search"), args.get("role")
        values["pattern"] = user_search_pattern(search) if search is not None else None
        values["role"] = role.value if role is not None else None
        filters = (search is not None, role is not None, args.get("suspended"))
        if after is not None:
            ckey, values["cpk"] = after
            values["ckey"] = execution.bind_time(ckey)
        run = LevelRun(execution, self.level)
        cursors = run.embedding(values)
        with_count = self.counts and not self.is_sqlite  # the total read with the page (with_total)
        checked = execution.claim_check()
        page = bind(self.page.get((filters, after is not None, True, cursors, with_count, checked)), values)
        total: list[Any] = [None]
        width = self.level.width(self.is_sqlite)  # then the page's pk and key (and its total, with_total)
        if with_count:
            receive = counted_page(run, total, width + 2, lambda: bind(self.count.get(filters), values))
            execution.add(page, receive, checked)
        else:
            execution.add(page, run.receive, checked)
            if self.counts:
                execution.add(bind(self.count.get(filters), values), lambda rows: total.__setitem__(0, rows[0][0]))
        cursor = cursor_of(CursorKind.USERS, width + 1, width, True, self.is_sqlite)
        return lambda: self.level.shape(run.rows, first, after is not None, total[0], run.accessors(), cursor)


@dataclass(eq=False)
class Lookup(Root):
    """One object by a unique column (``article(slug)``, ``user(username)``, ``viewer``); ``None`` when none matches.

    ``argument``: the argument holding the value, ``None`` for the viewer's own row.
    """

    level: Level = field(default=None)  # type: ignore[assignment]
    column: str = "id"
    argument: str | None = None
    is_sqlite: bool = True
    statement: Variants = field(init=False)

    def __post_init__(self) -> None:
        self.statement = Variants(self._sql, self.is_sqlite)

    def levels(self) -> list[Level]:
        return [self.level]

    def _sql(self, variant: tuple[bool, bool, frozenset[str], bool]) -> sa.ClauseElement:
        signed_in, many, cursors, checked = variant
        column = self.level.alias.c[self.column]
        statement = (
            sa.select(*selected(self.level, self.is_sqlite, signed_in, cursors))
            .select_from(self.level.from_clause())
            .where(keys_in(column, self.is_sqlite) if many else column == parameter("key"))
        )
        return with_check(statement, checked)

    def run(self, execution: Execution, keys: list[Any]) -> LevelRun:
        """Read the objects ``keys`` (values of ``column``) in the next batch."""
        values = execution.values()
        many = len(keys) != 1
        if many:
            values["keys"] = keys_value(keys, self.is_sqlite)
        else:
            values["key"] = keys[0]
        run = LevelRun(execution, self.level)
        checked = execution.claim_check()
        variant = (execution.viewer_id is not None, many, run.embedding(values), checked)
        execution.add(bind(self.statement.get(variant), values), run.receive, checked)
        return run

    def start(self, execution: Execution) -> Finish:
        if self.argument is None:
            key = execution.viewer_id
            if key is None:
                return lambda: None
        else:
            key = arguments(self.definition, self.node, execution.variables, self)[self.argument]
        run = self.run(execution, [key])
        shape = self.level.shape
        return lambda: shape(run.rows[0], run.accessors()) if run.rows else None


NODE_TYPES = ("Article", "User", "Comment")
"""The object types that implement ``Node`` (``graph/queries.py``, ``resolve_node``)."""


@dataclass(eq=False)
class OneNode(Root):
    """``node(id)``: the object a global ID names, read by the lookup of its type; ``None`` for any other ID."""

    lookups: dict[str, Lookup] = field(default_factory=dict)

    def levels(self) -> list[Level]:
        return [lookup.level for lookup in self.lookups.values()]

    def start(self, execution: Execution) -> Finish:
        decoded = from_global_id(arguments(self.definition, self.node, execution.variables, self)["id"])
        if decoded is None or decoded[0] not in self.lookups:
            return lambda: None
        lookup = self.lookups[decoded[0]]
        run = lookup.run(execution, [decoded[1]])
        shape = lookup.level.shape
        return lambda: shape(run.rows[0], run.accessors()) if run.rows else None


@dataclass(eq=False)
class ManyNodes(OneNode):
    """``nodes(ids)``: one statement per type named, answers in the order asked (``None`` where none)."""

    def start(self, execution: Execution) -> Finish:
        ids = arguments(self.definition, self.node, execution.variables, self)["ids"]
        if len(ids) > MAX_FIRST:
            raise FieldError(BadUserInput({"ids": [f"must have at most {MAX_FIRST} items"]}))
        decoded = [from_global_id(global_id) for global_id in ids]
        by_type: dict[str, list[int]] = {}
        for found in decoded:
            if found is not None and found[0] in self.lookups:
                by_type.setdefault(found[0], []).append(found[1])
        runs = {name: self.lookups[name].run(execution, list(dict.fromkeys(keys))) for name, keys in by_type.items()}

        def finish() -> list[Any]:
            shaped: dict[tuple[str, int], Any] = {}
            for name, run in runs.items():
                shape, accessors = self.lookups[name].level.shape, run.accessors()
                for row in run.rows:
                    shaped[name, row[0]] = shape(row, accessors)
            return [shaped.get(found) if found is not None else None for found in decoded]

        return finish


@dataclass(eq=False)
class TagList(Root):
    """``tags`` (names) or ``popularTags`` (``TagCount`` s: ``fields`` by response key)."""

    fields: list[tuple[str, str]] | None = None
    is_sqlite: bool = True
    statement: Variants = field(init=False)

    def __post_init__(self) -> None:
        self.statement = Variants(lambda _variant: tag_counts_statement(parameter("limit")), self.is_sqlite)

    def start(self, execution: Execution) -> Finish:
        first = first_of(arguments(self.definition, self.node, execution.variables, self).get("first"))
        rows: list[Any] = EMPTY
        received: list[list[Any]] = [rows]
        execution.add(bind(self.statement.get(()), {"limit": first}), lambda got: received.__setitem__(0, got))
        fields = self.fields
        if fields is None:
            return lambda: [row[0] for row in received[0]]
        columns = {"name": 0, "articlesCount": 1}

        def finish() -> list[dict[str, Any]]:
            return [
                {key: "TagCount" if name == "__typename" else row[columns[name]] for key, name in fields}
                for row in received[0]
            ]

        return finish


@dataclass(eq=False)
class RateLimitRoot(Root):
    """``rateLimit``: the budget's status in the context (``graph/types/rate_limit.py``), no statement."""

    fields: list[tuple[str, str]] = field(default_factory=list)
    context: Any = None

    def start(self, execution: Execution) -> Finish:
        status = rate_limit_of(execution.context)
        fields = self.fields

        def finish() -> dict[str, Any] | None:
            if status is None:
                return None
            out: dict[str, Any] = {}
            for key, name in fields:
                if name == "__typename":
                    out[key] = "RateLimit"
                elif name == "resetAt":
                    out[key] = serialize_datetime(status.reset_at)
                else:
                    out[key] = getattr(status, name)
            return out

        return finish
