"""The ``Subscription`` root: events are published after commit and loaded by id here."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Annotated

import strawberry
from strawberry.types import Info

from db.broker import ARTICLE_PUBLISHED
from graph.context import Context
from graph.errors import NotFound
from graph.mutations.comments import comment_channel
from graph.types.article import ArticleType
from graph.types.comment import CommentType


@strawberry.type(
    description="Live events over WebSocket (graphql-transport-ws or graphql-ws) on /graphql. Anonymous "
    "subscribers are allowed; an event comes only after its write has committed, on every server process."
)
class Subscription:
    @strawberry.subscription(description="Comments as they are added to one article.")
    async def comment_added(
        self,
        info: Info[Context, None],
        slug: Annotated[str, strawberry.argument(description="The article's slug (NOT_FOUND when none).")],
    ) -> AsyncGenerator[CommentType, None]:
        context = info.context
        article = await context.loaders.article_by_slug.load(slug)
        if article is None:
            raise NotFound(f"no article with slug {slug!r}")
        async with context.app.broker.subscribe(comment_channel(article.id)) as events:
            async for event in events:
                context.refresh()  # each event is read fresh, not from an earlier event's cache
                row = await context.loaders.comment_by_id.load(event.payload["id"])
                if row is not None:
                    yield CommentType.from_row(row)

    @strawberry.subscription(description="Articles as they are published, optionally only those with a tag.")
    async def article_published(
        self,
        info: Info[Context, None],
        tag: Annotated[
            str | None, strawberry.argument(description="Only articles with this exact tag; null: every article.")
        ] = None,
    ) -> AsyncGenerator[ArticleType, None]:
        context = info.context
        async with context.app.broker.subscribe(ARTICLE_PUBLISHED) as events:
            async for event in events:
                if tag is not None and tag not in event.payload.get("tags", ()):
                    continue
                context.refresh()
                row = await context.loaders.article_by_id.load(event.payload["id"])
                if row is not None:
                    yield ArticleType.from_row(row)
