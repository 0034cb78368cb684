"""The ``Article`` type and its connection."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from sqlalchemy.engine import Row
from strawberry.types import Info

from graph.cache_control import PRIVATE, CacheControl
from graph.context import Context
from graph.ids import CursorKind, decode_cursor, to_global_id
from graph.types.node import (
    AFTER_DESCRIPTION,
    CURSOR_DESCRIPTION,
    DEFAULT_FIRST,
    EDGES_DESCRIPTION,
    FIRST_DESCRIPTION,
    NODE_ID_DESCRIPTION,
    NODES_DESCRIPTION,
    PAGE_INFO_DESCRIPTION,
    Node,
    PageInfo,
    check_first,
    page_info,
)

if TYPE_CHECKING:
    from graph.types.comment import CommentConnection
    from graph.types.user import UserType

ARTICLE_MAX_AGE = 60
"""Seconds an article may be cached (``@cacheControl``); a write purges shared caches sooner (issue 13)."""

UserRef = Annotated["UserType", strawberry.lazy("graph.types.user")]
CommentConnectionRef = Annotated["CommentConnection", strawberry.lazy("graph.types.comment")]


@strawberry.type(
    name="Article",
    description="A blog post with its tags, favorites and comments. Anyone may read it; only its author may "
    "update it; its author, moderators and admins may delete it.",
    directives=[CacheControl(max_age=ARTICLE_MAX_AGE)],
)
class ArticleType(Node):
    pk: strawberry.Private[int]
    author_pk: strawberry.Private[int]
    id: strawberry.ID = strawberry.field(description=NODE_ID_DESCRIPTION)
    slug: str = strawberry.field(
        description="Unique URL name derived from the title: its lower-case ASCII words joined by `-` (at most 120 "
        "characters), with a short random suffix when taken. It changes when a new title gives another one; "
        "`article(slug:)` then finds nothing by the old one."
    )
    title: str = strawberry.field(description="The title: not blank, at most 200 characters.")
    description: str = strawberry.field(description="A short summary: not blank, at most 1,000 characters.")
    body: str = strawberry.field(description="The text, as the author wrote it: not blank, at most 100,000 characters.")
    created_at: dt.datetime = strawberry.field(description="When the article was created (UTC).")
    updated_at: dt.datetime = strawberry.field(
        description="When updateArticle last changed the article (UTC); createdAt until then."
    )
    favorites_count: int = strawberry.field(description="How many users have favorited the article.")

    @classmethod
    def from_row(cls, row: Any) -> ArticleType:
        """Build from a row of ``ARTICLE_COLUMNS``."""
        return cls(
            pk=row.id,
            author_pk=row.author_id,
            id=strawberry.ID(to_global_id("Article", row.id)),
            slug=row.slug,
            title=row.title,
            description=row.description,
            body=row.body,
            created_at=row.created_at,
            updated_at=row.updated_at,
            favorites_count=row.favorites_count,
        )

    @strawberry.field(description="Tag names in the order the author gave them.")
    async def tag_list(self, info: Info[Context, None]) -> list[str]:
        return await info.context.loaders.tags_by_article_id.load(self.pk)

    @strawberry.field(
        description="Whether the viewer favorited this article; false for anonymous viewers.", directives=[PRIVATE]
    )
    async def favorited(self, info: Info[Context, None]) -> bool:
        if info.context.viewer is None:
            return False
        return await info.context.loaders.favorited_by_article_id.load(self.pk)

    @strawberry.field(description="The user who wrote the article.")
    async def author(self, info: Info[Context, None]) -> UserRef:
        from graph.types.user import load_user

        return await load_user(info, self.author_pk)

    @strawberry.field(description="Comments, oldest first.")
    async def comments(
        self,
        info: Info[Context, None],
        first: Annotated[int | None, strawberry.argument(description=FIRST_DESCRIPTION)] = DEFAULT_FIRST,
        after: Annotated[str | None, strawberry.argument(description=AFTER_DESCRIPTION)] = None,
    ) -> CommentConnectionRef:
        from graph.types.comment import comment_connection

        first = check_first(first)
        cursor = decode_cursor(after, CursorKind.COMMENTS, type(None)) if after is not None else None
        loaders = info.context.loaders
        rows, has_next = await loaders.comment_page_by_article_id.load((self.pk, first, cursor))
        return comment_connection(
            rows,
            has_next,
            has_previous=after is not None,
            count=lambda: loaders.comment_count_by_article_id.load(self.pk),
        )


@strawberry.type(
    description="An article in a page of articles, with its cursor.", directives=[CacheControl(inherit_max_age=True)]
)
class ArticleEdge:
    cursor: str = strawberry.field(description=CURSOR_DESCRIPTION)
    node: ArticleType = strawberry.field(description="The article.")


@strawberry.type(
    description="A page of articles (Relay cursor connection), in the order and with the filters of the field "
    "that returned it.",
    directives=[CacheControl(inherit_max_age=True)],
)
class ArticleConnection:
    edges: list[ArticleEdge] = strawberry.field(description=EDGES_DESCRIPTION)
    page_info: PageInfo = strawberry.field(description=PAGE_INFO_DESCRIPTION)
    count: strawberry.Private[Callable[[], Awaitable[int]]]

    @strawberry.field(description=NODES_DESCRIPTION)
    def nodes(self) -> list[ArticleType]:
        return [edge.node for edge in self.edges]

    @strawberry.field(description="How many articles match, across all pages.")
    async def total_count(self) -> int:
        return await self.count()


def article_connection(
    rows: list[Row[Any]],
    has_next: bool,
    *,
    has_previous: bool,
    cursor_of: Callable[[Row[Any]], str],
    count: Callable[[], Awaitable[int]],
) -> ArticleConnection:
    """A connection over one page of article rows; ``count`` runs only if ``totalCount`` is asked."""
    edges = [ArticleEdge(cursor=cursor_of(row), node=ArticleType.from_row(row)) for row in rows]
    return ArticleConnection(
        edges=edges,
        page_info=page_info([edge.cursor for edge in edges], has_next, has_previous),
        count=count,
    )
