"""Per-request DataLoaders: every relation of the schema is read in one statement per batch.

A loader is named ``<result>_by_<key>``. Viewer-specific loaders (``favorited``, ``following``)
read the viewer from the context. Paged relations are keyed by ``(parent id, first, after)``
and answered with one windowed query per distinct ``(first, after)``.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Row
from strawberry.dataloader import DataLoader

from db.models import (
    article_table,
    article_tag_table,
    comment_table,
    favorite_table,
    follow_table,
    tag_table,
    user_table,
)

if TYPE_CHECKING:
    from graph.context import Context

a, u, c, f, fo, t, at = (
    article_table,
    user_table,
    comment_table,
    favorite_table,
    follow_table,
    tag_table,
    article_tag_table,
)

ARTICLE_COLUMNS = (
    a.c.id,
    a.c.slug,
    a.c.title,
    a.c.description,
    a.c.body,
    a.c.author_id,
    a.c.favorites_count,
    a.c.created_at,
    a.c.updated_at,
)
USER_COLUMNS = (
    u.c.id,
    u.c.username,
    u.c.email,
    u.c.bio,
    u.c.image,
    u.c.role,
    u.c.created_at,
    u.c.email_verified,
    u.c.suspended_at,
    u.c.suspended_until,
    u.c.suspension_reason,
    u.c.suspended_by_id,
)
COMMENT_COLUMNS = (c.c.id, c.c.body, c.c.article_id, c.c.author_id, c.c.created_at, c.c.updated_at)

Page = tuple[list[Row[Any]], bool]
"""The rows of one page and whether more follow."""

# The author's columns as selected beside an article's (see with_author_and_tags).
AUTHOR_COLUMNS = tuple(column.label(f"author__{column.name}") for column in USER_COLUMNS)


class UserRow(NamedTuple):
    """A user row built from an article row's ``author__*`` columns (the shape of ``USER_COLUMNS``)."""

    id: int
    username: str
    email: str
    bio: str | None
    image: str | None
    role: str
    created_at: Any
    email_verified: bool
    suspended_at: Any
    suspended_until: Any
    suspension_reason: str | None
    suspended_by_id: int | None


@functools.cache
def article_rows(is_sqlite: bool) -> sa.Select[Any]:
    """``SELECT`` of ``ARTICLE_COLUMNS`` with the author's columns and the tag names beside them.

    Callers add their ``WHERE``, ``ORDER BY`` and ``LIMIT``. Built once per dialect: building it
    costs about 150 µs, and every request and every refresh of the loaders needs it.
    """
    return with_author_and_tags(sa.select(*ARTICLE_COLUMNS), is_sqlite)


def tag_names(article: Any, is_sqlite: bool) -> sa.ColumnElement[Any]:
    """The tag names of ``article`` (the table or an alias) as a JSON array, in the author's order.

    Its copy in ``article.tag_names``, written with the ``article_tag`` rows (``db/models.py``,
    ``Article``); one column instead of a subquery and a sort per article. Read as JSON by
    SQLAlchemy (``sa.JSON``) and as text by the drivers (planned SQL,
    ``graph/execution/planned/mapping.py``). The same on both engines (``is_sqlite`` is unused).
    """
    del is_sqlite
    column: sa.ColumnElement[Any] = article.c.tag_names
    return column


def with_author_and_tags(statement: sa.Select[Any], is_sqlite: bool) -> sa.Select[Any]:
    """``statement`` (over ``article``) with its author's columns and its tag names added.

    A page of articles read this way primes the ``user_by_id`` and ``tags_by_article_id``
    loaders (``Loaders.prime_articles``), so the home page costs one statement instead of three.
    The tag names come as a JSON array in the author's order (``article_tag.position``).
    """
    return statement.add_columns(*AUTHOR_COLUMNS, tag_names(a, is_sqlite).label("tag_names")).join(
        u, u.c.id == a.c.author_id
    )


def _by_key(rows: Iterable[Row[Any]], key: str) -> dict[Any, Row[Any]]:
    return {getattr(row, key): row for row in rows}


class Loaders:
    """The DataLoaders of one request (see the module docstring)."""

    def __init__(self, context: Context) -> None:
        self._context = context
        self.user_by_id = self._rows(lambda ids: sa.select(*USER_COLUMNS).where(u.c.id.in_(ids)), "id")
        self.user_by_username = self._rows(
            lambda names: sa.select(*USER_COLUMNS).where(u.c.username.in_(names)), "username"
        )
        is_sqlite = context.app.db.is_sqlite
        articles = article_rows(is_sqlite)
        self.article_by_id = self._rows(lambda ids: articles.where(a.c.id.in_(ids)), "id", self.prime_articles)
        self.article_by_slug = self._rows(
            lambda slugs: articles.where(a.c.slug.in_(slugs)), "slug", self.prime_articles
        )
        self.comment_by_id = self._rows(lambda ids: sa.select(*COMMENT_COLUMNS).where(c.c.id.in_(ids)), "id")
        self.tags_by_article_id: DataLoader[int, list[str]] = DataLoader(self._tags)
        self.favorited_by_article_id: DataLoader[int, bool] = DataLoader(self._favorited)
        self.following_by_user_id: DataLoader[int, bool] = DataLoader(self._following)
        self.followers_count_by_user_id = self._counts(fo.c.followee_id, fo)
        self.following_count_by_user_id = self._counts(fo.c.follower_id, fo)
        self.comment_count_by_article_id = self._counts(c.c.article_id, c)
        self.article_count_by_author_id = self._counts(a.c.author_id, a)
        self.favorite_count_by_user_id = self._counts(f.c.user_id, f)
        self.comment_page_by_article_id: DataLoader[tuple[int, int, Any], Page] = DataLoader(self._comment_pages)
        self.article_page_by_author_id: DataLoader[tuple[int, int, Any], Page] = DataLoader(self._article_pages)
        self.favorite_page_by_user_id: DataLoader[tuple[int, int, Any], Page] = DataLoader(self._favorite_pages)

    def prime_authors(self, rows: Iterable[Any]) -> None:
        """Cache the authors of rows that carry ``AUTHOR_COLUMNS`` (articles, comments)."""
        for row in rows:
            author = UserRow(*(getattr(row, f"author__{name}") for name in UserRow._fields))
            self.user_by_id.prime(row.author_id, author)

    def prime_articles(self, rows: Iterable[Any]) -> None:
        """Cache the authors and tag names of article rows read ``with_author_and_tags``."""
        rows = list(rows)
        self.prime_authors(rows)
        for row in rows:
            self.tags_by_article_id.prime(row.id, list(row.tag_names or ()))

    # -- generic shapes -------------------------------------------------------------------

    # values are rows of the statement, or UserRows primed from article rows: both read by attribute
    def _rows(
        self,
        statement: Callable[[list[Any]], sa.Select[Any]],
        key: str,
        prime: Callable[[Iterable[Any]], None] | None = None,
    ) -> DataLoader[Any, Any]:
        async def load(keys: list[Any]) -> list[Row[Any] | None]:
            rows = await self._context.fetch(statement(keys))
            if prime is not None:
                prime(rows)
            found = _by_key(rows, key)
            return [found.get(k) for k in keys]

        return DataLoader(load)

    def _counts(self, column: sa.Column[Any], table: sa.Table) -> DataLoader[int, int]:
        async def load(keys: list[int]) -> list[int]:
            statement: sa.Select[Any] = (
                sa.select(column, sa.func.count()).select_from(table).where(column.in_(keys)).group_by(column)
            )
            counts: dict[int, int] = {row[0]: row[1] for row in await self._context.fetch(statement)}
            return [counts.get(k, 0) for k in keys]

        return DataLoader(load)

    # -- relations --------------------------------------------------------------------------

    async def _tags(self, article_ids: list[int]) -> list[list[str]]:
        rows = await self._context.fetch(
            sa.select(at.c.article_id, t.c.name)
            .join(t, t.c.id == at.c.tag_id)
            .where(at.c.article_id.in_(article_ids))
            .order_by(at.c.article_id, at.c.position, t.c.name)
        )
        tags: dict[int, list[str]] = defaultdict(list)
        for row in rows:
            tags[row.article_id].append(row.name)
        return [tags.get(i, []) for i in article_ids]

    async def _favorited(self, article_ids: list[int]) -> list[bool]:
        return await self._viewer_links(f.c.user_id, f.c.article_id, article_ids)

    async def _following(self, user_ids: list[int]) -> list[bool]:
        return await self._viewer_links(fo.c.follower_id, fo.c.followee_id, user_ids)

    async def _viewer_links(self, viewer: sa.Column[Any], target: sa.Column[Any], ids: list[int]) -> list[bool]:
        """For each id, whether a row links the viewer (``viewer``) to it (``target``); all false when anonymous."""
        viewer_id = self._context.viewer_id
        if viewer_id is None:
            return [False] * len(ids)
        rows = await self._context.fetch(sa.select(target).where(viewer == viewer_id, target.in_(ids)))
        found = {row[0] for row in rows}
        return [i in found for i in ids]

    async def _paged(
        self,
        keys: list[tuple[int, int, Any]],
        build: Callable[[list[int], int, Any], sa.Select[Any]],
        parent: str,
        prime: Callable[[Iterable[Any]], None] | None = None,
    ) -> list[Page]:
        """Answer ``(parent id, first, after)`` keys with one windowed query per ``(first, after)``."""
        groups: dict[tuple[int, Any], list[int]] = defaultdict(list)
        for parent_id, first, after in keys:
            groups[(first, after)].append(parent_id)
        pages: dict[tuple[int, int, Any], Page] = {}
        for (first, after), parent_ids in groups.items():
            rows = await self._context.fetch(build(parent_ids, first, after))
            if prime is not None:
                prime(rows)
            by_parent: dict[int, list[Row[Any]]] = defaultdict(list)
            for row in rows:
                by_parent[getattr(row, parent)].append(row)
            for parent_id in parent_ids:
                page = by_parent.get(parent_id, [])
                pages[(parent_id, first, after)] = (page[:first], len(page) > first)
        return [pages[key] for key in keys]

    async def _comment_pages(self, keys: list[tuple[int, int, Any]]) -> list[Page]:
        def build(article_ids: list[int], first: int, after: Any) -> sa.Select[Any]:
            # Oldest first: comment ids grow with time, so the id alone orders and pages.
            rank = sa.func.row_number().over(partition_by=c.c.article_id, order_by=c.c.id).label("rank")
            inner = sa.select(*COMMENT_COLUMNS, rank).where(c.c.article_id.in_(article_ids))
            if after is not None:
                inner = inner.where(c.c.id > after[1])
            sub = inner.subquery()
            return (
                sa.select(sub, *AUTHOR_COLUMNS)
                .join(u, u.c.id == sub.c.author_id)
                .where(sub.c.rank <= first + 1)
                .order_by(sub.c.article_id, sub.c.rank)
            )

        return await self._paged(keys, build, "article_id", self.prime_authors)

    async def _article_pages(self, keys: list[tuple[int, int, Any]]) -> list[Page]:
        def build(author_ids: list[int], first: int, after: Any) -> sa.Select[Any]:
            rank = (
                sa.func.row_number()
                .over(partition_by=a.c.author_id, order_by=(a.c.created_at.desc(), a.c.id.desc()))
                .label("rank")
            )
            inner = sa.select(*ARTICLE_COLUMNS, rank).where(a.c.author_id.in_(author_ids))
            if after is not None:
                key, pk = after
                inner = inner.where(sa.or_(a.c.created_at < key, sa.and_(a.c.created_at == key, a.c.id < pk)))
            sub = inner.subquery()
            return sa.select(sub).where(sub.c.rank <= first + 1).order_by(sub.c.author_id, sub.c.rank)

        return await self._paged(keys, build, "author_id")

    async def _favorite_pages(self, keys: list[tuple[int, int, Any]]) -> list[Page]:
        def build(user_ids: list[int], first: int, after: Any) -> sa.Select[Any]:
            rank = (
                sa.func.row_number()
                .over(partition_by=f.c.user_id, order_by=(f.c.created_at.desc(), f.c.article_id.desc()))
                .label("rank")
            )
            inner = (
                sa.select(
                    *ARTICLE_COLUMNS,
                    f.c.user_id.label("favoriter_id"),
                    f.c.created_at.label("favorited_at"),
                    rank,
                )
                .join(a, a.c.id == f.c.article_id)
                .where(f.c.user_id.in_(user_ids))
            )
            if after is not None:
                key, pk = after
                inner = inner.where(sa.or_(f.c.created_at < key, sa.and_(f.c.created_at == key, f.c.article_id < pk)))
            sub = inner.subquery()
            return sa.select(sub).where(sub.c.rank <= first + 1).order_by(sub.c.favoriter_id, sub.c.rank)

        return await self._paged(keys, build, "favoriter_id")
