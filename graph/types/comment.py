"""The ``Comment`` type and its connection."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from sqlalchemy.engine import Row
from strawberry.types import Info

from graph.cache_control import CacheControl
from graph.context import Context
from graph.ids import CursorKind, encode_cursor, to_global_id
from graph.types.node import (
    CURSOR_DESCRIPTION,
    EDGES_DESCRIPTION,
    NODE_ID_DESCRIPTION,
    NODES_DESCRIPTION,
    PAGE_INFO_DESCRIPTION,
    Node,
    PageInfo,
    page_info,
)

if TYPE_CHECKING:
    from graph.types.article import ArticleType
    from graph.types.user import UserType

UserRef = Annotated["UserType", strawberry.lazy("graph.types.user")]
ArticleRef = Annotated["ArticleType", strawberry.lazy("graph.types.article")]


@strawberry.type(
    name="Comment",
    description="A comment on an article. Anyone may read it; its author, moderators and admins may delete it; "
    "nobody edits it.",
    directives=[CacheControl(max_age=60)],
)
class CommentType(Node):
    pk: strawberry.Private[int]
    article_pk: strawberry.Private[int]
    author_pk: strawberry.Private[int]
    id: strawberry.ID = strawberry.field(description=NODE_ID_DESCRIPTION)
    body: str = strawberry.field(description="The text: not blank, at most 10,000 characters.")
    created_at: dt.datetime = strawberry.field(description="When the comment was added (UTC).")
    updated_at: dt.datetime = strawberry.field(
        description="When the comment last changed (UTC): comments are not edited, so this is createdAt."
    )

    @classmethod
    def from_row(cls, row: Any) -> CommentType:
        """Build from a row of ``COMMENT_COLUMNS``."""
        return cls(
            pk=row.id,
            article_pk=row.article_id,
            author_pk=row.author_id,
            id=strawberry.ID(to_global_id("Comment", row.id)),
            body=row.body,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )

    @strawberry.field(description="The user who wrote the comment.")
    async def author(self, info: Info[Context, None]) -> UserRef:
        from graph.types.user import load_user

        return await load_user(info, self.author_pk)

    @strawberry.field(description="The article the comment is on.")
    async def article(self, info: Info[Context, None]) -> ArticleRef:
        from graph.types.article import ArticleType

        row = await info.context.loaders.article_by_id.load(self.article_pk)
        if row is None:
            raise LookupError(f"article {self.article_pk} vanished")
        return ArticleType.from_row(row)


@strawberry.type(
    description="A comment in a page of comments, with its cursor.", directives=[CacheControl(inherit_max_age=True)]
)
class CommentEdge:
    cursor: str = strawberry.field(description=CURSOR_DESCRIPTION)
    node: CommentType = strawberry.field(description="The comment.")


@strawberry.type(
    description="A page of an article's comments (Relay cursor connection), oldest first.",
    directives=[CacheControl(inherit_max_age=True)],
)
class CommentConnection:
    edges: list[CommentEdge] = strawberry.field(description=EDGES_DESCRIPTION)
    page_info: PageInfo = strawberry.field(description=PAGE_INFO_DESCRIPTION)
    count: strawberry.Private[Callable[[], Awaitable[int]]]

    @strawberry.field(description=NODES_DESCRIPTION)
    def nodes(self) -> list[CommentType]:
        return [edge.node for edge in self.edges]

    @strawberry.field(description="How many comments the article has, across all pages.")
    async def total_count(self) -> int:
        return await self.count()


def comment_connection(
    rows: list[Row[Any]], has_next: bool, *, has_previous: bool, count: Callable[[], Awaitable[int]]
) -> CommentConnection:
    """A connection over one page of comment rows, oldest first."""
    edges = [
        CommentEdge(cursor=encode_cursor(CursorKind.COMMENTS, None, row.id), node=CommentType.from_row(row))
        for row in rows
    ]
    return CommentConnection(
        edges=edges,
        page_info=page_info([edge.cursor for edge in edges], has_next, has_previous),
        count=count,
    )
