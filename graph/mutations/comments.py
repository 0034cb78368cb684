"""addComment, deleteComment."""

from __future__ import annotations

from typing import Annotated

import sqlalchemy as sa
import strawberry
from strawberry.types import Info

from auth.audit import audit
from db.broker import COMMENT_ADDED, Event
from db.models import article_table as a
from db.models import comment_table as c
from db.models import utcnow
from graph.context import Context
from graph.errors import FieldErrors, NotFound
from graph.ids import pk_of, to_global_id
from graph.loaders import COMMENT_COLUMNS
from graph.mutations.articles import article_by_slug
from graph.permissions import CanDeleteComment, IsAuthenticated
from graph.responses.tags import ARTICLE, COMMENT, connection, entity
from graph.types.comment import CommentType
from graph.validation import COMMENT_MAX, check_text


def comment_channel(article_id: int) -> str:
    """The broker channel of the comments of one article."""
    return f"{COMMENT_ADDED}:{article_id}"


def comment_tags(pk: int, article_id: int, slug: str) -> tuple[str, ...]:
    """What adding or deleting a comment changes (``Context.touch``): it, and its article's ``comments``."""
    return (*entity(COMMENT, pk), *connection(entity(ARTICLE, article_id, slug), "comments"))


@strawberry.type
class CommentMutations:
    @strawberry.mutation(
        description="Adds the viewer's comment to an article; `commentAdded` subscribers get it after the commit. "
        "Sign-in required.",
        permission_classes=[IsAuthenticated],
    )
    async def add_comment(
        self,
        info: Info[Context, None],
        slug: Annotated[str, strawberry.argument(description="The article's slug (NOT_FOUND when none).")],
        body: Annotated[
            str,
            strawberry.argument(
                description="The comment: not blank, at most 10,000 characters (BAD_USER_INPUT otherwise)."
            ),
        ],
    ) -> CommentType:
        errors = FieldErrors()
        check_text(errors, "body", body, COMMENT_MAX)
        errors.raise_if_any()
        async with info.context.transaction() as session:
            article = await article_by_slug(session, slug)
            now = utcnow()
            row = (
                await session.execute(
                    sa.insert(c)
                    .values(
                        body=body,
                        article_id=article.id,
                        author_id=info.context.viewer_id,
                        created_at=now,
                        updated_at=now,
                    )
                    .returning(*COMMENT_COLUMNS)
                )
            ).one()
            info.context.publish_after_commit(Event(comment_channel(article.id), {"id": row.id}))
            info.context.touch(*comment_tags(row.id, article.id, article.slug))
        return CommentType.from_row(row)

    @strawberry.mutation(
        description="Returns the deleted comment's ID.",
        permission_classes=[IsAuthenticated, CanDeleteComment],
    )
    async def delete_comment(
        self,
        info: Info[Context, None],
        id: Annotated[
            strawberry.ID,
            strawberry.argument(
                description="The comment's global ID (BAD_USER_INPUT for any other ID). Sign-in required; the "
                "author's own comment, or any for moderators and admins (FORBIDDEN otherwise); NOT_FOUND when gone."
            ),
        ],
    ) -> strawberry.ID:
        pk = pk_of(id, "Comment")
        async with info.context.transaction() as session:
            deleted = (
                await session.execute(sa.delete(c).where(c.c.id == pk).returning(c.c.author_id, c.c.article_id))
            ).first()
            if deleted is None:
                raise NotFound("no such comment")
            author_id, article_id = deleted
            slug = (await session.execute(sa.select(a.c.slug).where(a.c.id == article_id))).scalar_one()
            info.context.touch(*comment_tags(pk, article_id, slug))
        if author_id != info.context.viewer_id:  # a moderator's or an admin's removal
            audit(
                "content_removed",
                viewer_id=info.context.viewer_id,
                kind="comment",
                content_id=pk,
                author_id=author_id,
            )
        return strawberry.ID(to_global_id("Comment", pk))
