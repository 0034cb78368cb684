"""createArticle, updateArticle, deleteArticle, favoriteArticle, unfavoriteArticle."""

from __future__ import annotations

from typing import Annotated, Any

import sqlalchemy as sa
import strawberry
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.types import Info

from auth.audit import audit
from db.broker import ARTICLE_PUBLISHED, Event
from db.dialect import insert_ignore
from db.models import article_table as a
from db.models import article_tag_table as at
from db.models import comment_table as c
from db.models import favorite_table as f
from db.models import tag_table as t
from db.models import user_table as u
from db.models import utcnow
from db.tags import change_articles_count
from graph.context import Context
from graph.errors import FieldErrors, NotFound
from graph.ids import to_global_id
from graph.loaders import ARTICLE_COLUMNS
from graph.mutations.touched import user_entity
from graph.permissions import CanDeleteArticle, IsArticleAuthor, IsAuthenticated
from graph.responses.tags import ARTICLE, ARTICLE_LISTS, COMMENT, TAG, USER, connection, entity
from graph.types.article import ArticleType
from graph.validation import (
    BODY_MAX,
    DESCRIPTION_MAX,
    TITLE_MAX,
    check_text,
    clean_tags,
    given,
    slug_suffix,
    slugify,
)

TAG_LIST_RULES = (
    "at most 10 tags of at most 40 characters each, trimmed; duplicates and empty strings are dropped, the "
    "author's order kept"
)
SLUG_ARGUMENT = "The article's current slug (NOT_FOUND when none)."


@strawberry.input(description="A new article (createArticle).")
class CreateArticleInput:
    title: str = strawberry.field(description="Not blank, at most 200 characters; the slug is derived from it.")
    description: str = strawberry.field(description="A short summary: not blank, at most 1,000 characters.")
    body: str = strawberry.field(description="The text: not blank, at most 100,000 characters.")
    tag_list: list[str] | None = strawberry.field(
        default_factory=list, description=f"Tag names: {TAG_LIST_RULES}; none when omitted or null."
    )


@strawberry.input(description="Changes to an article (updateArticle): an omitted or null field is kept.")
class UpdateArticleInput:
    title: str | None = strawberry.field(
        default=strawberry.UNSET,
        description="New title: not blank, at most 200 characters; one that gives another slug changes the slug.",
    )
    description: str | None = strawberry.field(
        default=strawberry.UNSET, description="New summary: not blank, at most 1,000 characters."
    )
    body: str | None = strawberry.field(
        default=strawberry.UNSET, description="New text: not blank, at most 100,000 characters."
    )
    tag_list: list[str] | None = strawberry.field(
        default=strawberry.UNSET, description=f"Replaces the tags: {TAG_LIST_RULES}; [] removes them all."
    )


async def article_by_slug(session: AsyncSession, slug: str, *, lock: bool = False) -> Any:
    """The article row of ``slug``; ``NotFound`` when there is none.

    ``lock``: ``FOR UPDATE`` (PostgreSQL; SQLite's writers are serialized already), for an
    update or a delete: a concurrent favorite, comment or rename waits for it, so what the
    transaction reads (favoriters, comments, the slug) is what it changes.
    """
    statement = sa.select(*ARTICLE_COLUMNS).where(a.c.slug == slug)
    row = (await session.execute(statement.with_for_update() if lock else statement)).first()
    if row is None:
        raise NotFound(f"no article with slug {slug!r}")
    return row


async def unique_slug(session: AsyncSession, title: str) -> str:
    """The slug of ``title``, with a short random suffix when another article has it."""
    base = slugify(title)
    slug = base
    while (await session.execute(sa.select(a.c.id).where(a.c.slug == slug))).first() is not None:
        slug = f"{base}-{slug_suffix()}"
    return slug


async def set_tags(session: AsyncSession, article_id: int, tags: list[str]) -> None:
    """Replace the article's tags with ``tags``, in that order, creating missing tag rows.

    Every tag's ``articles_count`` follows in the same transaction: one more for each tag the
    article gains, one fewer for each it loses (``[]`` unlinks them all, as ``deleteArticle`` does).
    The caller writes the same list to the article's copy, ``article.tag_names`` (``db/models.py``,
    ``Article``), in the ``INSERT`` or ``UPDATE`` it makes of the article anyway: one statement, not two.
    """
    unlinked = await session.execute(sa.delete(at).where(at.c.article_id == article_id).returning(at.c.tag_id))
    removed = set(unlinked.scalars())
    added: set[int] = set()
    if tags:
        # in name order, so that writers adding the same new tags wait for each other, not in a cycle
        await session.execute(insert_ignore(session, t), [{"name": tag} for tag in sorted(tags)])
        rows = await session.execute(sa.select(t.c.id, t.c.name).where(t.c.name.in_(tags)))
        ids = {row.name: row.id for row in rows}
        await session.execute(
            sa.insert(at),
            [{"article_id": article_id, "tag_id": ids[tag], "position": i} for i, tag in enumerate(tags)],
        )
        added = set(ids.values())
    await _count_links(session, gained=added - removed, lost=removed - added)


async def _count_links(session: AsyncSession, *, gained: set[int], lost: set[int]) -> None:
    """Add one to ``articles_count`` of the tags ``gained``, take one from those ``lost`` (``db/tags.py``)."""
    await change_articles_count(session, {**dict.fromkeys(gained, 1), **dict.fromkeys(lost, -1)})


async def _set_favorite(info: Info[Context, None], slug: str, favorite: bool) -> ArticleType:
    viewer_id = info.context.viewer_id
    async with info.context.transaction() as session:
        row = await article_by_slug(session, slug)
        if favorite:
            changed = await session.execute(
                insert_ignore(session, f).values(user_id=viewer_id, article_id=row.id, created_at=utcnow())
            )
        else:
            changed = await session.execute(sa.delete(f).where(f.c.user_id == viewer_id, f.c.article_id == row.id))
        if changed.rowcount:  # type: ignore[attr-defined]
            # Counter kept in the same transaction, so ordering by it is an index scan.
            step = 1 if favorite else -1
            await session.execute(
                sa.update(a).where(a.c.id == row.id).values(favorites_count=a.c.favorites_count + step)
            )
            favorites = connection(await user_entity(session, viewer_id), "favorites")
            # its count, lists ordered by it or filtered by favoritedBy, the viewer's favorites
            info.context.touch(*entity(ARTICLE, row.id, row.slug), ARTICLE_LISTS, *favorites)
        row = (await session.execute(sa.select(*ARTICLE_COLUMNS).where(a.c.id == row.id))).one()
    return ArticleType.from_row(row)


async def _touch_deleted(context: Context, session: AsyncSession, row: Any) -> None:
    """Say what deleting the article ``row`` changes: it, every list, the tag counts, its author's
    articles, the favorites of whoever favorited it, and its comments (``Context.touch``)."""
    favoriters = await session.execute(
        sa.select(u.c.id, u.c.username).join(f, f.c.user_id == u.c.id).where(f.c.article_id == row.id)
    )
    comments = await session.execute(sa.select(c.c.id).where(c.c.article_id == row.id))
    article = entity(ARTICLE, row.id, row.slug)
    context.touch(*article, *connection(article, "comments"), ARTICLE_LISTS, TAG)
    context.touch(*connection(await user_entity(session, row.author_id), "articles"))
    for user_id, username in favoriters:
        context.touch(*connection(entity(USER, user_id, username), "favorites"))
    context.touch(*(entity(COMMENT, pk)[0] for pk in comments.scalars()))


@strawberry.type
class ArticleMutations:
    @strawberry.mutation(
        description="Publishes an article by the viewer; `articlePublished` subscribers get it after the commit. "
        "Sign-in required; BAD_USER_INPUT for invalid input.",
        permission_classes=[IsAuthenticated],
    )
    async def create_article(
        self,
        info: Info[Context, None],
        input: Annotated[CreateArticleInput, strawberry.argument(description="The article.")],
    ) -> ArticleType:
        errors = FieldErrors()
        check_text(errors, "title", input.title, TITLE_MAX)
        check_text(errors, "description", input.description, DESCRIPTION_MAX)
        check_text(errors, "body", input.body, BODY_MAX)
        tags = clean_tags(errors, input.tag_list or [])
        errors.raise_if_any()
        async with info.context.transaction() as session:
            now = utcnow()
            row = (
                await session.execute(
                    sa.insert(a)
                    .values(
                        slug=await unique_slug(session, input.title),
                        title=input.title,
                        description=input.description,
                        body=input.body,
                        author_id=info.context.viewer_id,
                        favorites_count=0,
                        created_at=now,
                        updated_at=now,
                        tag_names=tags,  # with its links (set_tags)
                    )
                    .returning(*ARTICLE_COLUMNS)
                )
            ).one()
            await set_tags(session, row.id, tags)
            info.context.publish_after_commit(Event(ARTICLE_PUBLISHED, {"id": row.id, "tags": tags}))
            author = await user_entity(session, row.author_id)
            # a cached null for its slug or id, every list, the tag counts, its author's articles
            info.context.touch(*entity(ARTICLE, row.id, row.slug), ARTICLE_LISTS, TAG, *connection(author, "articles"))
        return ArticleType.from_row(row)

    @strawberry.mutation(
        description="Changing the title changes the slug.",
        permission_classes=[IsAuthenticated, IsArticleAuthor],
    )
    async def update_article(
        self,
        info: Info[Context, None],
        slug: Annotated[
            str,
            strawberry.argument(
                description="The article's current slug (NOT_FOUND when none). Sign-in required; only its author "
                "may update it (FORBIDDEN otherwise)."
            ),
        ],
        input: Annotated[
            UpdateArticleInput,
            strawberry.argument(description="The fields to change (BAD_USER_INPUT for invalid ones)."),
        ],
    ) -> ArticleType:
        errors = FieldErrors()
        values: dict[str, Any] = {}
        if given(input.title):
            values["title"] = check_text(errors, "title", input.title, TITLE_MAX)  # type: ignore[arg-type]
        if given(input.description):
            values["description"] = check_text(errors, "description", input.description, DESCRIPTION_MAX)  # type: ignore[arg-type]
        if given(input.body):
            values["body"] = check_text(errors, "body", input.body, BODY_MAX)  # type: ignore[arg-type]
        tags = clean_tags(errors, input.tag_list) if given(input.tag_list) else None  # type: ignore[arg-type]
        errors.raise_if_any()
        async with info.context.transaction() as session:
            row = await article_by_slug(session, slug, lock=True)
            old_slug = row.slug
            if "title" in values and slugify(values["title"]) != slugify(row.title):
                values["slug"] = await unique_slug(session, values["title"])
            if tags is not None:
                values["tag_names"] = tags  # with its links (set_tags, below)
            row = (
                await session.execute(
                    sa.update(a)
                    .where(a.c.id == row.id)
                    .values(**values, updated_at=utcnow())
                    .returning(*ARTICLE_COLUMNS)
                )
            ).one()
            if tags is not None:
                await set_tags(session, row.id, tags)
            # under its old and new slug; lists (search, tag filters) and tag counts
            info.context.touch(
                *entity(ARTICLE, row.id, old_slug), *entity(ARTICLE, row.id, row.slug), ARTICLE_LISTS, TAG
            )
        return ArticleType.from_row(row)

    @strawberry.mutation(
        description="Returns the deleted article's ID.",
        permission_classes=[IsAuthenticated, CanDeleteArticle],
    )
    async def delete_article(
        self,
        info: Info[Context, None],
        slug: Annotated[
            str,
            strawberry.argument(
                description="The article to delete, with its comments, favorites and tag links (NOT_FOUND when "
                "none). Sign-in required; the author's own, or any for moderators and admins (FORBIDDEN otherwise)."
            ),
        ],
    ) -> strawberry.ID:
        async with info.context.transaction() as session:
            row = await article_by_slug(session, slug, lock=True)
            await _touch_deleted(info.context, session, row)
            # Its tag links first, so that its tags' articles_count drop with them; comments and
            # favorites go with it (ON DELETE CASCADE).
            await set_tags(session, row.id, [])
            await session.execute(sa.delete(a).where(a.c.id == row.id))
        if row.author_id != info.context.viewer_id:  # a moderator's or an admin's removal
            audit(
                "content_removed",
                viewer_id=info.context.viewer_id,
                kind="article",
                content_id=row.id,
                author_id=row.author_id,
            )
        return strawberry.ID(to_global_id("Article", row.id))

    @strawberry.mutation(
        description="The viewer favorites the article (again is no error) and gets it back with its new count. "
        "Sign-in required.",
        permission_classes=[IsAuthenticated],
    )
    async def favorite_article(
        self, info: Info[Context, None], slug: Annotated[str, strawberry.argument(description=SLUG_ARGUMENT)]
    ) -> ArticleType:
        return await _set_favorite(info, slug, favorite=True)

    @strawberry.mutation(
        description="The viewer takes back their favorite (none is no error) and gets the article back with its new "
        "count. Sign-in required.",
        permission_classes=[IsAuthenticated],
    )
    async def unfavorite_article(
        self, info: Info[Context, None], slug: Annotated[str, strawberry.argument(description=SLUG_ARGUMENT)]
    ) -> ArticleType:
        return await _set_favorite(info, slug, favorite=False)
