"""The ``User`` type (a profile; ``email`` only for the user themself and admins), its suspension and connection."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from strawberry.permission import PermissionExtension
from strawberry.types import Info

from db.models import Role
from graph.cache_control import PRIVATE, CacheControl, CacheControlScope
from graph.context import Context
from graph.ids import CursorKind, decode_cursor, encode_cursor, to_global_id
from graph.loaders import Page
from graph.permissions import IsSelfOrAdmin, IsSelfOrStaff
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
    from graph.types.article import ArticleConnection

ArticleConnectionRef = Annotated["ArticleConnection", strawberry.lazy("graph.types.article")]


@strawberry.type(
    name="User",
    description="A user's profile. Anyone may read it, except its private fields (email, emailVerified, "
    "suspension), which read null for those who may not see them.",
    directives=[CacheControl(max_age=60)],
)
class UserType(Node):
    pk: strawberry.Private[int]
    id: strawberry.ID = strawberry.field(description=NODE_ID_DESCRIPTION)
    username: str = strawberry.field(
        description="Unique, case-sensitive name: 1 to 32 letters, digits, `_` or `-`; the user may change it "
        "(updateViewer)."
    )
    bio: str | None = strawberry.field(
        description="Free text about the user, at most 1,000 characters; null when unset."
    )
    image: str | None = strawberry.field(
        description="URL of the user's picture (http or https, at most 2,000 characters); null when unset."
    )
    email_address: strawberry.Private[str]
    role: Role = strawberry.field(
        description="What the user may do: USER unless an admin (setUserRole) or an operator changed it."
    )
    created_at: dt.datetime = strawberry.field(description="When the user registered (UTC).")
    verified: strawberry.Private[bool]
    current_suspension: strawberry.Private[Suspension | None]

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
            verified=bool(row.email_verified),
            current_suspension=Suspension.of_row(row),
        )

    @strawberry.field(
        description="Visible to the user themself and to admins; null for everyone else.",
        extensions=[PermissionExtension(permissions=[IsSelfOrAdmin()], fail_silently=True)],
        directives=[PRIVATE],
    )
    def email(self) -> str | None:
        return self.email_address

    @strawberry.field(
        description="Whether the user confirmed their email address (verifyEmail); cleared when the address "
        "changes. Visible to the user themself and to admins; null for everyone else.",
        extensions=[PermissionExtension(permissions=[IsSelfOrAdmin()], fail_silently=True)],
        directives=[PRIVATE],
    )
    def email_verified(self) -> bool | None:
        return self.verified

    @strawberry.field(
        description="The current suspension (null when none, or once its `until` has passed); visible to the "
        "user, moderators and admins; null otherwise.",
        extensions=[PermissionExtension(permissions=[IsSelfOrStaff()], fail_silently=True)],
        directives=[PRIVATE],
    )
    def suspension(self) -> Suspension | None:
        suspension = self.current_suspension
        if suspension is None or (suspension.until is not None and suspension.until <= dt.datetime.now(dt.UTC)):
            return None
        return suspension

    @strawberry.field(
        description="Whether the viewer follows this user; false for anonymous viewers.", directives=[PRIVATE]
    )
    async def following(self, info: Info[Context, None]) -> bool:
        if info.context.viewer is None:
            return False
        return await info.context.loaders.following_by_user_id.load(self.pk)

    @strawberry.field(description="How many users follow this user.")
    async def followers_count(self, info: Info[Context, None]) -> int:
        return await info.context.loaders.followers_count_by_user_id.load(self.pk)

    @strawberry.field(description="How many users this user follows.")
    async def following_count(self, info: Info[Context, None]) -> int:
        return await info.context.loaders.following_count_by_user_id.load(self.pk)

    @strawberry.field(description="Articles written by this user, newest first.")
    async def articles(
        self,
        info: Info[Context, None],
        first: Annotated[int | None, strawberry.argument(description=FIRST_DESCRIPTION)] = DEFAULT_FIRST,
        after: Annotated[str | None, strawberry.argument(description=AFTER_DESCRIPTION)] = None,
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
        self,
        info: Info[Context, None],
        first: Annotated[int | None, strawberry.argument(description=FIRST_DESCRIPTION)] = DEFAULT_FIRST,
        after: Annotated[str | None, strawberry.argument(description=AFTER_DESCRIPTION)] = None,
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


@strawberry.type(
    description="Why and until when a user is suspended (suspendUser).",
    directives=[CacheControl(scope=CacheControlScope.PRIVATE, inherit_max_age=True)],
)
class Suspension:
    reason: str = strawberry.field(description="The reason the moderator gave.")
    until: dt.datetime | None = strawberry.field(description="When the suspension ends; null: until lifted.")
    created_at: dt.datetime = strawberry.field(description="When the user was suspended.")
    by_id: strawberry.Private[int | None]

    @classmethod
    def of_row(cls, row: Any) -> Suspension | None:
        """The suspension stored in a row of ``USER_COLUMNS``, ``None`` when there is none (expired or not)."""
        if row.suspended_at is None:
            return None
        return cls(
            reason=row.suspension_reason or "",
            until=row.suspended_until,
            created_at=row.suspended_at,
            by_id=row.suspended_by_id,
        )

    @strawberry.field(description="The moderator or admin who suspended the user; null once their account is gone.")
    async def by(self, info: Info[Context, None]) -> UserType | None:
        if self.by_id is None:
            return None
        row = await info.context.loaders.user_by_id.load(self.by_id)
        return UserType.from_row(row) if row is not None else None


@strawberry.type(
    name="UserEdge",
    description="A user in a page of users, with its cursor.",
    directives=[CacheControl(inherit_max_age=True)],
)
class UserEdge:
    cursor: str = strawberry.field(description=CURSOR_DESCRIPTION)
    node: UserType = strawberry.field(description="The user.")


@strawberry.type(
    name="UserConnection",
    description="A page of users (Relay cursor connection), newest first, with the filters of `users`.",
    directives=[CacheControl(inherit_max_age=True)],
)
class UserConnection:
    edges: list[UserEdge] = strawberry.field(description=EDGES_DESCRIPTION)
    page_info: PageInfo = strawberry.field(description=PAGE_INFO_DESCRIPTION)
    count: strawberry.Private[Callable[[], Awaitable[int]]]

    @strawberry.field(description=NODES_DESCRIPTION)
    def nodes(self) -> list[UserType]:
        return [edge.node for edge in self.edges]

    @strawberry.field(description="How many users match, across all pages.")
    async def total_count(self) -> int:
        return await self.count()


def user_connection(
    rows: list[Any], has_next: bool, *, has_previous: bool, count: Callable[[], Awaitable[int]]
) -> UserConnection:
    """A connection over one page of ``USER_COLUMNS`` rows, newest first (``CursorKind.USERS`` cursors)."""
    edges = [
        UserEdge(cursor=encode_cursor(CursorKind.USERS, row.created_at, row.id), node=UserType.from_row(row))
        for row in rows
    ]
    return UserConnection(
        edges=edges, page_info=page_info([edge.cursor for edge in edges], has_next, has_previous), count=count
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
