"""Planned queries at run time: the article list, and an article page with its comments' pages."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from graphql.execution.values import VariableValues

from db import driver_sql
from graph.errors import BadUserInput
from graph.execution.planned.errors import NotPlanned
from graph.execution.planned.root import Prepared, RootPlan, first_of
from graph.execution.planned.statements import Rendered, Statement, bind
from graph.ids import CursorKind, decode_cursor

__all__ = ["ArticlePlan", "ArticlesPlan", "CommentsPlan", "PagePlan"]


@dataclass(eq=False)
class PagePlan(RootPlan):
    """A connection: one statement for a page (``first + 1`` rows) and, for ``totalCount``, a count."""

    counts: bool = False
    page: Statement = field(init=False)
    count: Statement = field(init=False)

    def __post_init__(self) -> None:
        self.page = Statement(self._page_sql)
        self.count = Statement(self._count_sql)

    def _page_sql(self, variant: tuple[Any, ...]) -> Rendered:
        raise NotImplementedError

    def _count_sql(self, variant: tuple[Any, ...]) -> Rendered:
        raise NotImplementedError

    def paged(
        self, values: dict[str, Any], variants: tuple[tuple[Any, ...], tuple[Any, ...]], first: int, has_previous: bool
    ) -> Prepared:
        """The page's (and count's) statements bound to ``values``, shaped by ``shape``."""
        statements = [bind(self.page.get(variants[0]), values)]
        if self.counts:
            statements.append(bind(self.count.get(variants[1]), values))
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

    def _page_sql(self, variant: tuple[Any, ...]) -> Rendered:
        tag, author, after, signed_in = variant
        select = self.columns.render(self.dialect, signed_in)
        return self.dialect.render(driver_sql.article_page(select, tag=tag, author=author, after=after))

    def _count_sql(self, variant: tuple[Any, ...]) -> Rendered:
        tag, author = variant
        return self.dialect.render(driver_sql.article_count(tag=tag, author=author))

    def prepare(self, definition: Any, variables: VariableValues, viewer_id: int | None) -> Prepared:
        """A page (``first + 1`` rows) and, for ``totalCount``, a count.

        ``NotPlanned`` for ``favoritedBy``, ``search`` or ``orderBy``, for a ``first`` out of
        range and for a cursor that does not decode.
        """
        args = self.arguments(definition, variables)
        if args.get("favoritedBy") is not None or args.get("search") is not None or args.get("orderBy") is not None:
            raise NotPlanned("a filter or ordering the plan does not cover")
        first = first_of(args.get("first"))
        after = args.get("after")
        tag, author = args.get("tag"), args.get("author")
        values: dict[str, Any] = {"viewer": viewer_id, "tag": tag, "author": author, "limit": first + 1}
        if after is not None:
            try:
                key, pk = decode_cursor(after, CursorKind.CREATED_DESC, dt.datetime)
            except BadUserInput as error:
                raise NotPlanned("the cursor does not decode") from error
            values["key"], values["pk"] = self.dialect.bind_time(key), pk
        filters = (tag is not None, author is not None)
        page_variant = (*filters, after is not None, viewer_id is not None)
        return self.paged(values, (page_variant, filters), first, after is not None)


@dataclass(eq=False)
class CommentsPlan(PagePlan):
    """``Article.comments(first, after)`` of the article named by the root's ``slug``: oldest first."""

    def _page_sql(self, variant: tuple[Any, ...]) -> Rendered:
        (after,) = variant
        return self.dialect.render(driver_sql.comment_page(self.columns.render(self.dialect, False), after=after))

    def _count_sql(self, _variant: tuple[Any, ...]) -> Rendered:
        return self.dialect.render(driver_sql.COMMENT_COUNT)

    def page_arguments(self, definition: Any, variables: VariableValues) -> tuple[int, int | None]:
        """``first`` and the id after which the page starts (``None`` from the beginning)."""
        args = self.arguments(definition, variables)
        first = first_of(args.get("first"))
        after = args.get("after")
        if after is None:
            return first, None
        try:
            return first, decode_cursor(after, CursorKind.COMMENTS, type(None))[1]
        except BadUserInput as error:
            raise NotPlanned("the cursor does not decode") from error

    def prepare_for(self, definition: Any, variables: VariableValues, slug: str) -> Prepared:
        """SQLite: this page (and count) of the article ``slug`` as statements of their own."""
        first, after = self.page_arguments(definition, variables)
        values: dict[str, Any] = {"slug": slug, "limit": first + 1, "pk": after}
        return self.paged(values, ((after is not None,), ()), first, after is not None)

    def embedded(self, index: int, after: bool) -> list[str]:
        """Columns of the article's statement that carry this page (and count) on PostgreSQL."""
        columns = [driver_sql.embedded_comment_page(self.columns.render(self.dialect, False), index, after=after)]
        if self.counts:
            columns.append(driver_sql.EMBEDDED_COMMENT_COUNT)
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
        """Take this field's and its ``comments`` fields' shaping functions from ``namespace``."""
        super().bind(namespace)
        for plan in self.comments:
            plan.bind(namespace)

    def _sql(self, variant: tuple[Any, ...]) -> Rendered:
        signed_in, afters = variant
        columns = [self.columns.render(self.dialect, signed_in)]
        for index, (plan, after) in enumerate(zip(self.comments, afters, strict=False)):
            columns.extend(plan.embedded(index, after))
        return self.dialect.render(driver_sql.article_by_slug(", ".join(columns)))

    def prepare(self, definition: Any, variables: VariableValues, viewer_id: int | None) -> Prepared:
        """The article's statement; on SQLite each ``comments`` page is a statement of its own.

        Shapes to ``None`` when no article has the slug.
        """
        slug = self.arguments(definition, variables)["slug"]
        if not self.dialect.is_sqlite:
            return self._prepare_embedded(slug, variables, viewer_id)
        statements = [bind(self.statement.get((viewer_id is not None, ())), {"slug": slug, "viewer": viewer_id})]
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
        statement = bind(self.statement.get((viewer_id is not None, tuple(afters))), values)
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
