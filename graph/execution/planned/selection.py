"""Selection analysis: which columns a selection needs, and the shaping code that answers it.

At compile time, from the validated document: the columns each statement selects (only what
the selection asks for: no ``body`` on a list page, no count without ``totalCount``) and the
body of one generated function per root field (``shaping.Source``). A field the planner does
not cover raises ``NotPlanned``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from graphql import FieldNode, GraphQLObjectType

from db.dialect import DriverDialect
from db.driver_sql import FAVORITED, FOLLOWING, tag_names
from graph.execution.planned.errors import NotPlanned
from graph.execution.planned.reads import ArticlePlan, ArticlesPlan, CommentsPlan
from graph.execution.planned.root import RootPlan
from graph.execution.planned.shaping import Source, entry, literal, name_literal
from graph.execution.planned.statements import Columns
from graph.execution.planned.writes import AddCommentPlan
from graph.ids import CursorKind

__all__ = ["Collect", "Planner"]

Collect = Callable[[GraphQLObjectType, list[Any]], dict[str, list[FieldNode]]]
"""The merged fields of selection sets on an object type, by response key (fragments resolved)."""


class Planner:
    """Compiles one operation's root fields (see the module docstring)."""

    def __init__(self, schema: Any, dialect: DriverDialect, collect: Collect) -> None:
        self.schema = schema
        self.dialect = dialect
        self.collect = collect
        self.source = Source(dialect.is_sqlite)

    def type_(self, name: str) -> GraphQLObjectType:
        """The schema's object type ``name``; ``NotPlanned`` if it is another kind of type."""
        found = self.schema.type_map[name]
        if not isinstance(found, GraphQLObjectType):
            raise NotPlanned(f"{name} is not an object type")
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
                    raise NotPlanned("following outside an article's author")
                value = f"_bool({row}[{columns.add(FOLLOWING)}])"
            else:
                raise NotPlanned(f"User.{name}")
            out.append(entry(key, value))
        return literal(out)

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
                value = f"_tags({row}[{columns.add(tag_names(self.dialect.is_sqlite))}])"
            elif name == "favorited":
                value = f"_bool({row}[{columns.add(FAVORITED)}])"
            elif name == "author":
                value = self.user(merged, columns, "u", row)
            elif name == "comments" and comments is not None:
                plan = self.comments(node, merged)
                comments.append(plan)
                value = f"_comments[{len(comments) - 1}]"
            else:
                raise NotPlanned(f"Article.{name}")
            out.append(entry(key, value))
        return literal(out)

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
                value = name_literal(type_name)
            elif name == "totalCount":
                value, counts = "_total", True
            elif name == "edges":
                edge, edge_type = [], type_name.replace("Connection", "Edge")
                for edge_key, edge_name, _n, edge_nodes in self.fields(edge_type, merged):
                    if edge_name == "__typename":
                        edge.append(entry(edge_key, name_literal(edge_type)))
                    elif edge_name == "cursor":
                        edge.append(entry(edge_key, "c"))
                        cursors = True
                    elif edge_name == "node":
                        edge.append(entry(edge_key, node_of(edge_nodes)))
                    else:
                        raise NotPlanned(f"{type_name}.edges.{edge_name}")
                value = f"[{literal(edge)} for r, c in zip(_page, _cursors)]"
                if not cursors:
                    value = f"[{literal(edge)} for r in _page]"
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
                        raise NotPlanned(f"PageInfo.{info_name}")
                    cursors = cursors or "_cursors" in info_value
                    info.append(entry(info_key, info_value))
                value = literal(info)
            else:
                raise NotPlanned(f"{type_name}.{name}")
            out.append(entry(key, value))
        body = ["_page = _rows[:_first]"]
        if cursors:
            body.append(f"_cursors = [{cursor_of} for r in _page]")
        body.append(f"return {literal(out)}")
        return body, counts

    # -- root fields ----------------------------------------------------------------------

    def articles(self, node: FieldNode, merged: list[FieldNode]) -> RootPlan:
        """``articles``: columns and shaping of its page; ``NotPlanned`` for a field not covered."""
        columns = Columns()
        pk, created = columns.add("a.id"), columns.add("a.created_at")
        body, counts = self.connection(
            "ArticleConnection",
            merged,
            lambda nodes: self.article(nodes, columns, "r", None),
            # encode_cursor formats a datetime itself; SQLite's text needs its own conversion
            f"_cursor({CursorKind.CREATED_DESC.value!r}, _cursor_key(r[{created}]), r[{pk}])"
            if self.dialect.is_sqlite
            else f"_cursor({CursorKind.CREATED_DESC.value!r}, r[{created}], r[{pk}])",
        )
        shape = self.source.function("_rows, _first, _has_previous, _total", body)
        return ArticlesPlan(node, self.dialect, columns, shape, counts)

    def comments(self, node: FieldNode, merged: list[FieldNode]) -> CommentsPlan:
        """``Article.comments`` under ``article``: columns and shaping of its page."""
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
                    raise NotPlanned(f"Comment.{name}")
                out.append(entry(key, value))
            return literal(out)

        body, counts = self.connection(
            "CommentConnection", merged, comment, f"_cursor({CursorKind.COMMENTS.value!r}, None, r[{pk}])"
        )
        shape = self.source.function("_rows, _first, _has_previous, _total", body)
        return CommentsPlan(node, self.dialect, columns, shape, counts)

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
                raise NotPlanned(f"Comment.{name}")
            out.append(entry(key, value))
        shape = self.source.function("r, u", [f"return {literal(out)}"])
        return AddCommentPlan(node, self.dialect, author, shape)

    def article_root(self, node: FieldNode, merged: list[FieldNode]) -> RootPlan:
        """``article(slug)``: the article's columns and shaping, with its ``comments`` fields' plans."""
        columns = Columns()
        columns.add("a.id")  # a statement needs a column even when only comments are selected
        comments: list[CommentsPlan] = []
        expression = self.article(merged, columns, "_row", comments)
        shape = self.source.function("_row, _comments", [f"return {expression}"])
        comments_definition = self.type_("Article").fields["comments"]
        return ArticlePlan(node, self.dialect, columns, shape, comments, comments_definition)
