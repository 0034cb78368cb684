"""Planned execution: a query's SQL and a generated function that shapes its rows into ``data``.

The compiled path of ``graph/execution/compiled.py`` still calls a resolver per field per object and
builds a Strawberry object per row: on the home page that is about 80 coroutines, 40 objects
and a DataLoader round per level. For the operations a Conduit frontend sends most (the
article list, an article with its comments), the selection alone says which columns and
relations are needed, so this module plans them the way ``../shared/bench/floor.py`` is
written by hand:

- at compile time, from the validated document: the columns each statement selects (only
  what the selection asks for: no ``body`` on a list page, no count without ``totalCount``),
  and the source of one Python function per root field that turns rows into the response's
  dicts, straight-line, with the scalar serializers inlined (``ceiling.md``, variant F);
- at run time: coerce the arguments, pick the statement variant (filters present, cursor,
  signed-in viewer), run every statement of the operation at once through
  ``Database.fetch_raw`` (driver SQL: inline on SQLite, one asyncpg connection on
  PostgreSQL, where an article's comments pages ride in the article's own statement), and
  shape.

What is covered (everything else raises ``NotPlannable`` at compile time, and the compiled
executor keeps its field-by-field plan for it):

- root fields ``articles`` (``first``, ``after``, ``tag``, ``author``; ``favoritedBy``,
  ``search`` or ``orderBy`` given at run time raise ``NotPlanned``, which hands the request to
  the field-by-field plan) and ``article(slug)``, plus ``__typename``;
- the mutation ``addComment`` alone (plus ``__typename``): one short transaction through
  ``Database.write``, refused with ``NotPlanned`` before any write when the ordinary executor
  must report an error (``AddCommentPlan``);
- ``ArticleConnection``/``CommentConnection``: ``edges { cursor node }``, ``pageInfo``,
  ``totalCount``; ``Article``: its columns, ``tagList``, ``favorited``, ``author`` and (under
  ``article`` only) ``comments(first, after)``; ``User``: ``id username bio image following
  createdAt``; ``Comment``: ``id body createdAt updatedAt author``.

Semantics are the resolvers' (``graph/queries.py``, ``graph/types/``, ``graph/loaders``): the
same ordering, cursors, tag order, counts and viewer flags, which the differential test
(``tests/graph/test_compiled.py``) checks response by response against the ordinary executor.
Invalid arguments (``first`` out of range, a bad cursor) raise ``NotPlanned`` so that the
ordinary executor reports them.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    GraphQLError,
    GraphQLObjectType,
    OperationDefinitionNode,
    OperationType,
)
from graphql.execution.values import VariableValues, get_argument_values

from db.broker import Broker, Event, notify_statement
from db.engine import CommitOutcomeUnknown
from db.models import sqlite_timestamp, utcnow
from graph.errors import BadUserInput, FieldErrors
from graph.ids import decode_cursor, encode_cursor, to_global_id
from graph.mutations.comments import comment_channel
from graph.scalars import serialize_datetime
from graph.types.node import check_first
from graph.validation import COMMENT_MAX, check_text

if TYPE_CHECKING:
    from graph.context import Context

__all__ = ["NotPlannable", "NotPlanned", "OperationSql", "WriteCommitted", "plan_operation"]


class NotPlannable(Exception):
    """The operation selects something this planner does not cover (compile time)."""


class NotPlanned(Exception):
    """This run's arguments are outside the plan (run time); the field-by-field plan answers."""


Collect = Callable[[GraphQLObjectType, list[Any]], dict[str, list[FieldNode]]]

# -- values as the database returns them -----------------------------------------------------


def _sqlite_datetime(value: str) -> str:
    """``DateTime`` of a SQLite timestamp (SQLAlchemy stores ``YYYY-MM-DD HH:MM:SS.ffffff``, UTC)."""
    if len(value) == 26 and value[10] == " ":
        return value[:10] + "T" + value[11:] + "+00:00"
    return serialize_datetime(dt.datetime.fromisoformat(value).replace(tzinfo=dt.UTC))


def _sqlite_cursor_key(value: str) -> str:
    """The text ``encode_cursor`` writes for a SQLite timestamp."""
    if len(value) == 26 and value[10] == " ":
        return value[:10] + "T" + value[11:]
    return dt.datetime.fromisoformat(value).strftime("%Y-%m-%dT%H:%M:%S.%f")


def _tags(value: str | None) -> list[str]:
    return orjson.loads(value) if value else []


@dataclass(frozen=True)
class Flavour:
    """What differs between the engines: placeholders, SQL fragments and value conversions."""

    is_sqlite: bool

    def placeholder(self, number: int) -> str:
        return "?" if self.is_sqlite else f"${number}"

    @property
    def tag_names(self) -> str:
        """The article's tag names as a JSON array, in the author's order (as ``with_author_and_tags``)."""
        if self.is_sqlite:
            return (
                "(SELECT json_group_array(name) FROM (SELECT t.name AS name FROM article_tag at "
                "JOIN tag t ON t.id = at.tag_id WHERE at.article_id = a.id ORDER BY at.position, t.name))"
            )
        return (
            "(SELECT json_agg(t.name ORDER BY at.position, t.name)::text FROM article_tag at "
            "JOIN tag t ON t.id = at.tag_id WHERE at.article_id = a.id)"
        )

    @property
    def false(self) -> str:
        return "0" if self.is_sqlite else "false"

    def bind_time(self, value: Any) -> Any:
        """A cursor's datetime as the engine compares it with stored timestamps."""
        assert isinstance(value, dt.datetime)
        return sqlite_timestamp(value) if self.is_sqlite else value

    def namespace(self) -> dict[str, Any]:
        """The helpers generated shaping code calls."""
        return {
            "_datetime": _sqlite_datetime if self.is_sqlite else serialize_datetime,
            "_cursor_key": _sqlite_cursor_key,
            "_cursor": encode_cursor,
            "_tags": _tags,
            "_bool": bool,
            "_article_id": functools.partial(to_global_id, "Article"),
            "_user_id": functools.partial(to_global_id, "User"),
            "_comment_id": functools.partial(to_global_id, "Comment"),
        }


# -- statements ------------------------------------------------------------------------------

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


# -- shaping code ----------------------------------------------------------------------------


class Source:
    """Python source of the shaping functions of one operation, and their namespace."""

    def __init__(self, flavour: Flavour) -> None:
        self.lines: list[str] = []
        self.namespace = flavour.namespace()
        self.count = 0

    def function(self, parameters: str, body: list[str]) -> str:
        """Add ``def _fN(parameters): body``; returns its name."""
        self.count += 1
        name = f"_f{self.count}"
        self.lines.append(f"def {name}({parameters}):")
        self.lines.extend("    " + line for line in body)
        return name

    def compile(self) -> dict[str, Any]:
        code = compile("\n".join(self.lines) + "\n", "<planned query>", "exec")
        # The only text from the document in the source is response keys, GraphQL names written
        # with repr(); argument values are never in it, they travel as SQL parameters.
        exec(code, self.namespace)
        return self.namespace


def _literal(fields: list[str]) -> str:
    return "{" + ", ".join(fields) + "}"


class Planner:
    """Compiles one operation's root fields (see the module docstring)."""

    def __init__(self, schema: Any, flavour: Flavour, collect: Collect) -> None:
        self.schema = schema
        self.flavour = flavour
        self.collect = collect
        self.source = Source(flavour)

    def type_(self, name: str) -> GraphQLObjectType:
        found = self.schema.type_map[name]
        assert isinstance(found, GraphQLObjectType)
        return found

    def fields(self, type_name: str, nodes: list[FieldNode]) -> Iterator[tuple[str, str, FieldNode, list[FieldNode]]]:
        """``(response key, field name, first node, nodes)`` of the merged sub-selections of ``nodes``."""
        selection_sets = [node.selection_set for node in nodes if node.selection_set is not None]
        for key, merged in self.collect(self.type_(type_name), selection_sets).items():
            yield key, merged[0].name.value, merged[0], merged

    # -- objects --------------------------------------------------------------------------

    def user(self, nodes: list[FieldNode], columns: Columns, alias: str, row: str) -> str:
        """A dict expression for a ``User`` whose columns are ``alias.*`` of ``row``."""
        out = []
        for key, name, _node, _merged in self.fields("User", nodes):
            if name == "__typename":
                value = "'User'"
            elif name == "id":
                value = f"_user_id({row}[{columns.add(f'{alias}.id')}])"
            elif name in ("username", "bio", "image"):
                value = f"{row}[{columns.add(f'{alias}.{name}')}]"
            elif name == "createdAt":
                value = f"_datetime({row}[{columns.add(f'{alias}.created_at')}])"
            elif name == "following":
                if alias != "u":
                    raise NotPlannable("following outside an article's author")
                value = f"_bool({row}[{columns.add(FOLLOWING)}])"
            else:
                raise NotPlannable(f"User.{name}")
            out.append(f"{key!r}: {value}")
        return _literal(out)

    def article(self, nodes: list[FieldNode], columns: Columns, row: str, comments: list[CommentsPlan] | None) -> str:
        """A dict expression for an ``Article`` row of ``columns`` (``a`` joined with its author ``u``)."""
        out = []
        for key, name, node, merged in self.fields("Article", nodes):
            if name == "__typename":
                value = "'Article'"
            elif name == "id":
                value = f"_article_id({row}[{columns.add('a.id')}])"
            elif name in ("slug", "title", "description", "body"):
                value = f"{row}[{columns.add(f'a.{name}')}]"
            elif name in ("createdAt", "updatedAt"):
                column = "a.created_at" if name == "createdAt" else "a.updated_at"
                value = f"_datetime({row}[{columns.add(column)}])"
            elif name == "favoritesCount":
                value = f"{row}[{columns.add('a.favorites_count')}]"
            elif name == "tagList":
                value = f"_tags({row}[{columns.add(self.flavour.tag_names)}])"
            elif name == "favorited":
                value = f"_bool({row}[{columns.add(FAVORITED)}])"
            elif name == "author":
                value = self.user(merged, columns, "u", row)
            elif name == "comments" and comments is not None:
                plan = self.comments(node, merged)
                comments.append(plan)
                value = f"_comments[{len(comments) - 1}]"
            else:
                raise NotPlannable(f"Article.{name}")
            out.append(f"{key!r}: {value}")
        return _literal(out)

    def connection(
        self,
        type_name: str,
        nodes: list[FieldNode],
        node_of: Callable[[list[FieldNode]], str],
        cursor_of: str,
    ) -> tuple[list[str], bool]:
        """Body lines shaping ``_rows`` (a page plus one) into a connection dict, and whether it counts.

        The function's parameters are ``_rows, _first, _has_previous, _total`` (and whatever
        ``node_of``'s expression reads); ``cursor_of`` is the expression of row ``r``'s cursor.
        """
        out: list[str] = []
        counts = False
        cursors = False  # whether any cursor is selected: encoding them is most of the shaping
        for key, name, _node, merged in self.fields(type_name, nodes):
            if name == "__typename":
                value = repr(type_name)
            elif name == "totalCount":
                value, counts = "_total", True
            elif name == "edges":
                edge = []
                for edge_key, edge_name, _n, edge_nodes in self.fields(type_name.replace("Connection", "Edge"), merged):
                    if edge_name == "__typename":
                        edge.append(f"{edge_key!r}: {type_name.replace('Connection', 'Edge')!r}")
                    elif edge_name == "cursor":
                        edge.append(f"{edge_key!r}: c")
                        cursors = True
                    elif edge_name == "node":
                        edge.append(f"{edge_key!r}: {node_of(edge_nodes)}")
                    else:
                        raise NotPlannable(f"{type_name}.edges.{edge_name}")
                value = f"[{_literal(edge)} for r, c in zip(_page, _cursors)]"
                if not cursors:
                    value = f"[{_literal(edge)} for r in _page]"
            elif name == "pageInfo":
                info = []
                for info_key, info_name, _n, _m in self.fields("PageInfo", merged):
                    info_value = {
                        "__typename": "'PageInfo'",
                        "hasNextPage": "len(_rows) > _first",
                        "hasPreviousPage": "_has_previous",
                        "startCursor": "(_cursors[0] if _cursors else None)",
                        "endCursor": "(_cursors[-1] if _cursors else None)",
                    }.get(info_name)
                    if info_value is None:
                        raise NotPlannable(f"PageInfo.{info_name}")
                    cursors = cursors or "_cursors" in info_value
                    info.append(f"{info_key!r}: {info_value}")
                value = _literal(info)
            else:
                raise NotPlannable(f"{type_name}.{name}")
            out.append(f"{key!r}: {value}")
        body = ["_page = _rows[:_first]"]
        if cursors:
            body.append(f"_cursors = [{cursor_of} for r in _page]")
        body.append(f"return {_literal(out)}")
        return body, counts

    # -- root fields ----------------------------------------------------------------------

    def articles(self, node: FieldNode, merged: list[FieldNode]) -> RootPlan:
        columns = Columns()
        pk, created = columns.add("a.id"), columns.add("a.created_at")
        body, counts = self.connection(
            "ArticleConnection",
            merged,
            lambda nodes: self.article(nodes, columns, "r", None),
            # encode_cursor formats a datetime itself; SQLite's text needs its own conversion
            f"_cursor('cd', _cursor_key(r[{created}]), r[{pk}])"
            if self.flavour.is_sqlite
            else f"_cursor('cd', r[{created}], r[{pk}])",
        )
        shape = self.source.function("_rows, _first, _has_previous, _total", body)
        return ArticlesPlan(node, self.flavour, columns, shape, counts)

    def comments(self, node: FieldNode, merged: list[FieldNode]) -> CommentsPlan:
        columns = Columns()
        pk = columns.add("c.id")

        def comment(nodes: list[FieldNode]) -> str:
            out = []
            for key, name, _node, sub in self.fields("Comment", nodes):
                if name == "__typename":
                    value = "'Comment'"
                elif name == "id":
                    value = f"_comment_id(r[{pk}])"
                elif name == "body":
                    value = f"r[{columns.add('c.body')}]"
                elif name in ("createdAt", "updatedAt"):
                    column = "c.created_at" if name == "createdAt" else "c.updated_at"
                    value = f"_datetime(r[{columns.add(column)}])"
                elif name == "author":
                    value = self.user(sub, columns, "cu", "r")
                else:
                    raise NotPlannable(f"Comment.{name}")
                out.append(f"{key!r}: {value}")
            return _literal(out)

        body, counts = self.connection("CommentConnection", merged, comment, f"_cursor('i', None, r[{pk}])")
        shape = self.source.function("_rows, _first, _has_previous, _total", body)
        return CommentsPlan(node, self.flavour, columns, shape, counts)

    def add_comment(self, node: FieldNode, merged: list[FieldNode]) -> RootPlan:
        """``addComment``: the new comment from the insert's ``RETURNING``, its author (the viewer) read after."""
        author = Columns()
        author.add("cu.id")  # a statement needs a column even when the author is not selected
        out = []
        for key, name, _node, sub in self.fields("Comment", merged):
            if name == "__typename":
                value = "'Comment'"
            elif name == "id":
                value = "_comment_id(r[0])"
            elif name == "body":
                value = "r[2]"
            elif name in ("createdAt", "updatedAt"):
                value = f"_datetime(r[{3 if name == 'createdAt' else 4}])"
            elif name == "author":
                value = self.user(sub, author, "cu", "u")
            else:
                raise NotPlannable(f"Comment.{name}")
            out.append(f"{key!r}: {value}")
        shape = self.source.function("r, u", [f"return {_literal(out)}"])
        return AddCommentPlan(node, self.flavour, author, shape)

    def article_root(self, node: FieldNode, merged: list[FieldNode]) -> RootPlan:
        columns = Columns()
        columns.add("a.id")  # a statement needs a column even when only comments are selected
        comments: list[CommentsPlan] = []
        expression = self.article(merged, columns, "_row", comments)
        shape = self.source.function("_row, _comments", [f"return {expression}"])
        comments_definition = self.type_("Article").fields["comments"]
        return ArticlePlan(node, self.flavour, columns, shape, comments, comments_definition)


# -- run time --------------------------------------------------------------------------------


@dataclass(eq=False)
class RootPlan:
    """One root field: its statements for given arguments, and how to shape their rows."""

    node: FieldNode
    flavour: Flavour
    columns: Columns
    shape_name: str
    shape: Callable[..., Any] = field(init=False, repr=False)

    def bind(self, namespace: dict[str, Any]) -> None:
        self.shape = namespace[self.shape_name]

    def arguments(self, definition: Any, variables: VariableValues) -> dict[str, Any]:
        try:
            return get_argument_values(definition, self.node, variables)
        except GraphQLError as error:
            raise NotPlanned("arguments do not coerce") from error

    def prepare(self, definition: Any, variables: VariableValues, viewer_id: int | None) -> Prepared:
        raise NotImplementedError


@dataclass(eq=False)
class Prepared:
    """A root field's statements with their arguments, and the function that shapes their rows."""

    statements: list[tuple[str, list[Any]]]
    finish: Callable[[list[list[Any]]], Any]


def _first(value: Any) -> int:
    try:
        return check_first(value)
    except BadUserInput as error:
        raise NotPlanned("first is out of range") from error


def _bind(sql: tuple[str, list[str]], values: dict[str, Any]) -> tuple[str, list[Any]]:
    text, names = sql
    return text, [values[name] for name in names]


@dataclass(eq=False)
class PagePlan(RootPlan):
    """A connection: one statement for a page (``first + 1`` rows) and, for ``totalCount``, a count."""

    counts: bool = False
    page: Statement = field(init=False)
    count: Statement = field(init=False)

    def __post_init__(self) -> None:
        self.page = Statement(self._page_sql)
        self.count = Statement(self._count_sql)

    def _page_sql(self, variant: tuple[Any, ...]) -> tuple[str, list[str]]:
        raise NotImplementedError

    def _count_sql(self, variant: tuple[Any, ...]) -> tuple[str, list[str]]:
        raise NotImplementedError

    def paged(
        self, values: dict[str, Any], variants: tuple[tuple[Any, ...], tuple[Any, ...]], first: int, has_previous: bool
    ) -> Prepared:
        """The page's (and count's) statements bound to ``values``, shaped by ``shape``."""
        statements = [_bind(self.page.get(variants[0]), values)]
        if self.counts:
            statements.append(_bind(self.count.get(variants[1]), values))
        return Prepared(statements, self.finisher(first, has_previous))

    def finisher(self, first: int, has_previous: bool) -> Callable[[list[list[Any]]], Any]:
        """Shapes ``[page rows, count rows]`` (the count's only when ``totalCount`` is selected)."""
        shape, counts = self.shape, self.counts

        def finish(results: list[list[Any]]) -> Any:
            return shape(results[0], first, has_previous, results[1][0][0] if counts else None)

        return finish


@dataclass(eq=False)
class ArticlesPlan(PagePlan):
    """``articles(first, after, tag, author)``, newest first."""

    @staticmethod
    def _conditions(tag: bool, author: bool, after: bool) -> list[str]:
        conditions = []
        if tag:
            # EXISTS, as in graph/queries.py: SQLite walks the newest-first index and stops after a page
            conditions.append(
                "EXISTS (SELECT 1 FROM article_tag at JOIN tag t ON t.id = at.tag_id "
                "WHERE at.article_id = a.id AND t.name = :tag)"
            )
        if author:
            conditions.append('a.author_id = (SELECT id FROM "user" WHERE username = :author)')
        if after:
            conditions.append("(a.created_at < :key OR (a.created_at = :key AND a.id < :pk))")
        return conditions

    def _page_sql(self, variant: tuple[Any, ...]) -> tuple[str, list[str]]:
        tag, author, after, signed_in = variant
        conditions = self._conditions(tag, author, after)
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        sql = (
            f'SELECT {self.columns.render(self.flavour, signed_in)} FROM article a JOIN "user" u ON u.id = a.author_id'
            f"{where} ORDER BY a.created_at DESC, a.id DESC LIMIT :limit"
        )
        return render(sql, ("viewer", "tag", "author", "key", "pk", "limit"), self.flavour)

    def _count_sql(self, variant: tuple[Any, ...]) -> tuple[str, list[str]]:
        tag, author = variant
        if tag and not author:
            # one article_tag row per tagged article: no need to visit the articles (graph/queries.py)
            sql = "SELECT count(*) FROM article_tag at JOIN tag t ON t.id = at.tag_id WHERE t.name = :tag"
        else:
            conditions = self._conditions(tag, author, False)
            where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
            sql = f"SELECT count(*) FROM article a{where}"
        return render(sql, ("tag", "author"), self.flavour)

    def prepare(self, definition: Any, variables: VariableValues, viewer_id: int | None) -> Prepared:
        args = self.arguments(definition, variables)
        if args.get("favoritedBy") is not None or args.get("search") is not None or args.get("orderBy") is not None:
            raise NotPlanned("a filter or ordering the plan does not cover")
        first = _first(args.get("first"))
        after = args.get("after")
        tag, author = args.get("tag"), args.get("author")
        values: dict[str, Any] = {"viewer": viewer_id, "tag": tag, "author": author, "limit": first + 1}
        if after is not None:
            try:
                key, pk = decode_cursor(after, "cd", dt.datetime)
            except BadUserInput as error:
                raise NotPlanned("the cursor does not decode") from error
            values["key"], values["pk"] = self.flavour.bind_time(key), pk
        filters = (tag is not None, author is not None)
        page_variant = (*filters, after is not None, viewer_id is not None)
        return self.paged(values, (page_variant, filters), first, after is not None)


@dataclass(eq=False)
class CommentsPlan(PagePlan):
    """``Article.comments(first, after)`` of the article named by the root's ``slug``: oldest first."""

    def _page_sql(self, variant: tuple[Any, ...]) -> tuple[str, list[str]]:
        (after,) = variant
        where = " AND c.id > :pk" if after else ""
        sql = (
            f'SELECT {self.columns.render(self.flavour, False)} FROM comment c JOIN "user" cu ON cu.id = c.author_id '
            f"WHERE c.article_id = (SELECT id FROM article WHERE slug = :slug){where} ORDER BY c.id LIMIT :limit"
        )
        return render(sql, ("slug", "pk", "limit"), self.flavour)

    def _count_sql(self, _variant: tuple[Any, ...]) -> tuple[str, list[str]]:
        sql = "SELECT count(*) FROM comment c WHERE c.article_id = (SELECT id FROM article WHERE slug = :slug)"
        return render(sql, ("slug",), self.flavour)

    def page_arguments(self, definition: Any, variables: VariableValues) -> tuple[int, int | None]:
        """``first`` and the id after which the page starts (``None`` from the beginning)."""
        args = self.arguments(definition, variables)
        first = _first(args.get("first"))
        after = args.get("after")
        if after is None:
            return first, None
        try:
            return first, decode_cursor(after, "i", type(None))[1]
        except BadUserInput as error:
            raise NotPlanned("the cursor does not decode") from error

    def prepare_for(self, definition: Any, variables: VariableValues, slug: str) -> Prepared:
        first, after = self.page_arguments(definition, variables)
        values: dict[str, Any] = {"slug": slug, "limit": first + 1, "pk": after}
        return self.paged(values, ((after is not None,), ()), first, after is not None)

    def embedded(self, index: int, after: bool) -> list[str]:
        """Columns of an ``article a`` statement that carry this page (and count) on PostgreSQL.

        The page is an array of anonymous records, which asyncpg decodes into tuples shaped
        like the rows of the page statement: one round trip for the article and its comments.
        """
        where = f" AND c.id > :pk{index}" if after else ""
        columns = [
            f"ARRAY(SELECT ROW({self.columns.render(self.flavour, False)}) FROM comment c "
            f'JOIN "user" cu ON cu.id = c.author_id WHERE c.article_id = a.id{where} ORDER BY c.id LIMIT :limit{index})'
        ]
        if self.counts:
            columns.append("(SELECT count(*) FROM comment c WHERE c.article_id = a.id)")
        return columns


@dataclass(eq=False)
class ArticlePlan(RootPlan):
    """``article(slug)``: one statement for the article, and those of its ``comments`` fields."""

    comments: list[CommentsPlan] = field(default_factory=list)
    statement: Statement = field(init=False)
    comments_definition: Any = None

    def __post_init__(self) -> None:
        self.statement = Statement(self._sql)

    def bind(self, namespace: dict[str, Any]) -> None:
        super().bind(namespace)
        for plan in self.comments:
            plan.bind(namespace)

    def _sql(self, variant: tuple[Any, ...]) -> tuple[str, list[str]]:
        signed_in, afters = variant
        columns = [self.columns.render(self.flavour, signed_in)]
        names = ["viewer", "slug"]
        for index, (plan, after) in enumerate(zip(self.comments, afters, strict=False)):
            columns.extend(plan.embedded(index, after))
            names += [f"pk{index}", f"limit{index}"]
        sql = f'SELECT {", ".join(columns)} FROM article a JOIN "user" u ON u.id = a.author_id WHERE a.slug = :slug'
        return render(sql, names, self.flavour)

    def prepare(self, definition: Any, variables: VariableValues, viewer_id: int | None) -> Prepared:
        slug = self.arguments(definition, variables)["slug"]
        if not self.flavour.is_sqlite:
            return self._prepare_embedded(slug, variables, viewer_id)
        statements = [_bind(self.statement.get((viewer_id is not None, ())), {"slug": slug, "viewer": viewer_id})]
        parts: list[tuple[int, Prepared]] = []
        for plan in self.comments:
            prepared = plan.prepare_for(self.comments_definition, variables, slug)
            parts.append((len(statements), prepared))
            statements.extend(prepared.statements)
        shape = self.shape

        def finish(results: list[list[Any]]) -> Any:
            if not results[0]:
                return None
            comments = [p.finish(results[start : start + len(p.statements)]) for start, p in parts]
            return shape(results[0][0], comments)

        return Prepared(statements, finish)

    def _prepare_embedded(self, slug: str, variables: VariableValues, viewer_id: int | None) -> Prepared:
        """PostgreSQL: the article and its comments pages in one statement (``CommentsPlan.embedded``)."""
        values: dict[str, Any] = {"slug": slug, "viewer": viewer_id}
        afters = []
        finishers = []
        for index, plan in enumerate(self.comments):
            first, after = plan.page_arguments(self.comments_definition, variables)
            values[f"limit{index}"], values[f"pk{index}"] = first + 1, after
            afters.append(after is not None)
            finishers.append((plan.counts, plan.finisher(first, after is not None)))
        statement = _bind(self.statement.get((viewer_id is not None, tuple(afters))), values)
        shape, width = self.shape, len(self.columns.expressions)

        def finish(results: list[list[Any]]) -> Any:
            if not results[0]:
                return None
            row, column = results[0][0], width
            comments = []
            for counts, finisher in finishers:
                page, column = row[column], column + 1
                total = None
                if counts:
                    total, column = row[column], column + 1
                comments.append(finisher([page, [(total,)]]))
            return shape(row, comments)

        return Prepared([statement], finish)


@dataclass(eq=False)
class PreparedWrite:
    """A mutation field's transaction: statements, what to add before commit, and the response.

    ``decide`` gets the rows and returns the statements to run before the commit (PostgreSQL's
    ``pg_notify``), or ``None`` when nothing matched and the transaction must roll back;
    ``finish`` shapes the committed rows; ``events`` are published after the commit by a
    broker that does not publish inside transactions.
    """

    statements: list[tuple[str, list[Any]]]
    decide: Callable[[list[list[Any]]], list[tuple[str, list[Any]]] | None]
    finish: Callable[[list[list[Any]]], Any]
    events: Callable[[list[list[Any]]], list[Event]]


@dataclass(eq=False)
class AddCommentPlan(RootPlan):
    """``addComment(slug, body)`` (``graph/mutations/comments.py``) as one short transaction.

    Covers the signed-in, valid case only: no viewer, a blank or too long body, or no article
    with that slug (the insert matches nothing and rolls back) raise ``NotPlanned`` before
    anything is written, and the ordinary executor reports the error.
    """

    statement: Statement = field(init=False)
    author: Statement = field(init=False)

    def __post_init__(self) -> None:
        self.statement = Statement(self._insert_sql)
        self.author = Statement(self._author_sql)

    def _insert_sql(self, _variant: tuple[Any, ...]) -> tuple[str, list[str]]:
        sql = (
            "INSERT INTO comment (body, article_id, author_id, created_at, updated_at) "
            "SELECT :body, a.id, :viewer, :now, :now FROM article a WHERE a.slug = :slug "
            "RETURNING id, article_id, body, created_at, updated_at"
        )
        return render(sql, ("body", "viewer", "now", "slug"), self.flavour)

    def _author_sql(self, _variant: tuple[Any, ...]) -> tuple[str, list[str]]:
        columns = self.columns.render(self.flavour, False)
        return render(f'SELECT {columns} FROM "user" cu WHERE cu.id = :viewer', ("viewer",), self.flavour)

    def prepare_write(
        self, definition: Any, variables: VariableValues, viewer_id: int | None, broker: Broker
    ) -> PreparedWrite:
        if viewer_id is None:
            raise NotPlanned("addComment needs a viewer")
        args = self.arguments(definition, variables)
        body, slug = args["body"], args["slug"]
        errors = FieldErrors()
        check_text(errors, "body", body, COMMENT_MAX)
        if errors:
            raise NotPlanned("the body is invalid")
        values = {"body": body, "viewer": viewer_id, "slug": slug, "now": self.flavour.bind_time(utcnow())}
        statements = [_bind(self.statement.get(()), values), _bind(self.author.get(()), values)]
        transactional = broker.transactional

        def events(results: list[list[Any]]) -> list[Event]:
            comment = results[0][0]
            return [Event(comment_channel(comment[1]), {"id": comment[0]})]

        def decide(results: list[list[Any]]) -> list[tuple[str, list[Any]]] | None:
            if not results[0]:
                return None  # no such article
            return [notify_statement(event) for event in events(results)] if transactional else []

        shape = self.shape

        def finish(results: list[list[Any]]) -> Any:
            return shape(results[0][0], results[1][0] if results[1] else None)

        return PreparedWrite(statements, decide, finish, events)


class WriteCommitted(Exception):
    """A planned mutation committed (or may have) and then failed: it must not run again by falling back.

    ``node`` is the mutation's root field, whose error the response reports.
    """

    def __init__(self, message: str, node: FieldNode) -> None:
        super().__init__(message)
        self.node = node


@dataclass(eq=False)
class OperationSql:
    """A planned operation: its root fields in response order (``None`` for ``__typename``).

    A mutation has exactly one root field besides ``__typename`` (``writes``).
    """

    roots: list[tuple[str, Any, RootPlan | None]]
    root_type: str = "Query"
    writes: bool = False

    async def execute(self, context: Context, variables: VariableValues) -> dict[str, Any]:
        """The response's ``data``; raises NotPlanned when the arguments are outside the plan.

        A mutation raises NotPlanned only before anything is written, and ``WriteCommitted``
        for a failure after its commit.
        """
        if self.writes:
            return await self._write(context, variables)
        db, viewer_id = context.app.db, context.viewer_id
        prepared = [
            (key, root.prepare(definition, variables, viewer_id) if root is not None else None)
            for key, definition, root in self.roots
        ]
        statements = [s for _key, p in prepared if p is not None for s in p.statements]
        results = await db.fetch_raw(statements) if statements else []
        data: dict[str, Any] = {}
        start = 0
        for key, p in prepared:
            if p is None:
                data[key] = self.root_type
                continue
            data[key] = p.finish(results[start : start + len(p.statements)])
            start += len(p.statements)
        return data

    async def _write(self, context: Context, variables: VariableValues) -> dict[str, Any]:
        broker = context.app.broker
        ((key, definition, root),) = [r for r in self.roots if r[2] is not None]
        assert isinstance(root, AddCommentPlan)
        prepared = root.prepare_write(definition, variables, context.viewer_id, broker)
        try:
            results = await context.app.db.write(prepared.statements, prepared.decide)
        except CommitOutcomeUnknown as error:
            raise WriteCommitted("the commit's outcome is unknown: not run again", root.node) from error
        if results is None:
            raise NotPlanned("nothing to write: the ordinary executor reports why")
        try:
            if not broker.transactional:
                for event in prepared.events(results):
                    await broker.publish(event)
            value = prepared.finish(results)
        except Exception as error:
            raise WriteCommitted("a committed mutation failed afterwards", root.node) from error
        return {k: value if k == key else self.root_type for k, _d, _r in self.roots}


def plan_operation(
    schema: Any,
    operation: OperationDefinitionNode,
    fragments: dict[str, FragmentDefinitionNode],
    is_sqlite: bool,
    collect: Callable[[GraphQLObjectType, list[Any], dict[str, FragmentDefinitionNode]], dict[str, list[FieldNode]]],
) -> OperationSql:
    """Plan the query or mutation ``operation`` (already validated); raises NotPlannable."""
    planner = Planner(schema, Flavour(is_sqlite), lambda t, sets: collect(t, sets, fragments))
    writes = operation.operation is OperationType.MUTATION
    if operation.operation not in (OperationType.QUERY, OperationType.MUTATION):
        raise NotPlannable(f"{operation.operation.value} operations are not planned")
    root_type = schema.get_root_type(operation.operation)
    roots: list[tuple[str, Any, RootPlan | None]] = []
    for key, nodes in collect(root_type, [operation.selection_set], fragments).items():
        name = nodes[0].name.value
        if name == "__typename":
            roots.append((key, None, None))
            continue
        definition = root_type.fields[name]
        root: RootPlan
        if writes:
            if name != "addComment" or any(r is not None for _k, _d, r in roots):
                raise NotPlannable(f"Mutation.{name}, or more than one mutation")
            root = planner.add_comment(nodes[0], nodes)
        elif name == "articles":
            root = planner.articles(nodes[0], nodes)
        elif name == "article":
            root = planner.article_root(nodes[0], nodes)
        else:
            raise NotPlannable(f"Query.{name}")
        roots.append((key, definition, root))
    planned = [plan for _key, _definition, plan in roots if plan is not None]
    if not planned:
        raise NotPlannable("nothing to plan")
    namespace = planner.source.compile()
    for plan in planned:
        plan.bind(namespace)
    return OperationSql(roots, root_type.name, writes)
