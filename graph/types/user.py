"""The ``User`` type (a profile; ``email`` only for the user themself and admins)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from strawberry.permission import PermissionExtension
from strawberry.types import Info

from db.models import Role
from graph.context import Context
from graph.ids import CursorKind, decode_cursor, encode_cursor, to_global_id
from graph.loaders import Page
from graph.permissions import IsSelfOrAdmin
from graph.types.node import DEFAULT_FIRST, Node, check_first

if TYPE_CHECKING:
    from graph.types.article import ArticleConnection

ArticleConnectionRef = Annotated["ArticleConnection", strawberry.lazy("graph.types.article")]


@strawberry.type(name="User")
class UserType(Node):
    pk: strawberry.Private[int]
    id: strawberry.ID
    username: str
    bio: str | None
    image: str | None
    email_address: strawberry.Private[str]
    role: Role
    created_at: dt.datetime

    @classmethod
    def from_row(cls, row: Any) -> UserType:
        """Build from a row of ``USER_COLUMNS``."""
        return cls(
            pk=row.id,
            id=strawberry.ID(to_global_id("User", row.id)),
            username=row.username,
            bio=row.bio,
            image=row.image,
            email_address=row.email,
            role=Role(row.role),
            created_at=row.created_at,
        )

    @strawberry.field(
        description="Visible to the user themself and to admins; null for everyone else.",
        extensions=[PermissionExtension(permissions=[IsSelfOrAdmin()], fail_silently=True)],
    )
    def email(self) -> str | None:
        return self.email_address

    @strawberry.field(description="Whether the viewer follows this user; false for anonymous viewers.")
    async def following(self, info: Info[Context, None]) -> bool:
        if info.context.viewer is None:
            return False
        return await info.context.loaders.following_by_user_id.load(self.pk)

    @strawberry.field
    async def followers_count(self, info: Info[Context, None]) -> int:
        return await info.context.loaders.followers_count_by_user_id.load(self.pk)

    @strawberry.field
    async def following_count(self, info: Info[Context, None]) -> int:
        return await info.context.loaders.following_count_by_user_id.load(self.pk)

    @strawberry.field(description="Articles written by this user, newest first.")
    async def articles(
        self, info: Info[Context, None], first: int | None = DEFAULT_FIRST, after: str | None = None
    ) -> ArticleConnectionRef:
        loaders = info.context.loaders
        return await _article_page(
            first,
            after,
            CursorKind.USER_ARTICLES,
            "created_at",
            page=lambda key: loaders.article_page_by_author_id.load((self.pk, *key)),
            count=lambda: loaders.article_count_by_author_id.load(self.pk),
        )

    @strawberry.field(description="Articles this user favorited, most recently favorited first.")
    async def favorites(
        self, info: Info[Context, None], first: int | None = DEFAULT_FIRST, after: str | None = None
    ) -> ArticleConnectionRef:
        loaders = info.context.loaders
        return await _article_page(
            first,
            after,
            CursorKind.USER_FAVORITES,
            "favorited_at",
            page=lambda key: loaders.favorite_page_by_user_id.load((self.pk, *key)),
            count=lambda: loaders.favorite_count_by_user_id.load(self.pk),
        )


async def _article_page(
    first: int | None,
    after: str | None,
    kind: CursorKind,
    key_column: str,
    *,
    page: Callable[[tuple[int, Any]], Awaitable[Page]],
    count: Callable[[], Awaitable[int]],
) -> ArticleConnection:
    """One page of a user's articles, newest first by ``key_column`` (cursors of ``kind``)."""
    from graph.types.article import article_connection

    first = check_first(first)
    cursor = decode_cursor(after, kind, dt.datetime) if after is not None else None
    rows, has_next = await page((first, cursor))
    return article_connection(
        rows,
        has_next,
        has_previous=after is not None,
        cursor_of=lambda row: encode_cursor(kind, getattr(row, key_column), row.id),
        count=count,
    )


async def load_user(info: Info[Context, None], pk: int) -> UserType:
    """The user with primary key ``pk``, which must exist (a foreign key guarantees it)."""
    row = await info.context.loaders.user_by_id.load(pk)
    if row is None:
        raise LookupError(f"user {pk} vanished")
    return UserType.from_row(row)
