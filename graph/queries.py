"""The ``Query`` root: lookups, article listings with filters and ordering, feed and tags."""

from __future__ import annotations

import asyncio
import datetime as dt
import enum
import functools
import re
from typing import Annotated, Any

import sqlalchemy as sa
import strawberry
from strawberry.types import Info

from db.models import Role, utcnow
from db.users import user_filters, user_search_pattern
from graph.cache_control import CacheControl, CacheControlScope
from graph.context import Context
from graph.errors import BadUserInput
from graph.ids import CursorKind, decode_cursor, encode_cursor, from_global_id
from graph.loaders import USER_COLUMNS, a, article_rows, at, f, fo, t, u
from graph.permissions import IsAuthenticated, IsStaff
from graph.types.article import ARTICLE_MAX_AGE, ArticleConnection, ArticleType, article_connection
from graph.types.comment import CommentType
from graph.types.node import (
    AFTER_DESCRIPTION,
    DEFAULT_FIRST,
    FIRST_DESCRIPTION,
    MAX_FIRST,
    OFFSET_DESCRIPTION,
    Node,
    OrderDirection,
    check_first,
    check_offset,
)
from graph.types.rate_limit import RateLimitType, rate_limit_of
from graph.types.user import UserConnection, UserType, user_connection

LISTS_MAX_AGE = 30
"""Seconds an article list may be cached (``@cacheControl``): lists change with every new article."""
TAGS_MAX_AGE = 300
"""Seconds the tag lists may be cached: counts move slowly, and a few minutes late is harmless."""

WORD = re.compile(r"\w+", re.UNICODE)

First = Annotated[int | None, strawberry.argument(description=FIRST_DESCRIPTION)]
"""The ``first`` argument of every paginated field and list."""
After = Annotated[str | None, strawberry.argument(description=AFTER_DESCRIPTION)]
"""The ``after`` argument of every connection."""
Offset = Annotated[int | None, strawberry.argument(description=OFFSET_DESCRIPTION)]
"""The ``offset`` argument of the article listings (RealWorld's limit/offset paging)."""


@strawberry.enum(description="What `articles` may be ordered by.")
class ArticleOrderField(enum.Enum):
    CREATED_AT = strawberry.enum_value("CREATED_AT", description="When the article was created.")
    FAVORITES_COUNT = strawberry.enum_value("FAVORITES_COUNT", description="How many users favorited the article.")


@strawberry.input(description="An ordering of `articles`; ties on the key break on the ID in the same direction.")
class ArticleOrder:
    field: ArticleOrderField = strawberry.field(description="The key to order by.")
    direction: OrderDirection = strawberry.field(
        default=OrderDirection.DESC, description="Ascending or descending; DESC when omitted."
    )


@strawberry.type(description="A tag and how many articles carry it.", directives=[CacheControl(max_age=TAGS_MAX_AGE)])
class TagCount:
    name: str = strawberry.field(description="The tag, as authors wrote it (trimmed, at most 40 characters).")
    articles_count: int = strawberry.field(description="How many articles carry the tag: at least 1.")


def search_terms(search: str, is_sqlite: bool) -> str | None:
    """The full-text query of ``search``: every word, quoted; ``None`` when it has no word.

    Whole words, case-insensitively; a search with no word characters matches nothing
    (contract README). Each word is quoted, so FTS5 and tsquery operators in the input are
    plain text.
    """
    words = WORD.findall(search.lower())
    if not words:
        return None
    if is_sqlite:
        return " ".join('"' + word.replace('"', "") + '"' for word in words)
    return " & ".join("'" + word.replace("'", "") + "'" for word in words)


fts = sa.table("article_fts", sa.column("rowid"))
"""SQLite's FTS5 index of the articles (migration 0001): one row per article, ``rowid`` = ``article.id``."""


def _fts_matches(terms: Any) -> sa.ColumnElement[bool]:
    return sa.literal_column("article_fts").op("MATCH")(terms)


def search_matches(terms: Any, is_sqlite: bool, *, walk: bool = False) -> sa.ColumnElement[bool]:
    """Articles matching the full-text query ``terms`` (``search_terms``' text, or a parameter).

    On SQLite, ``walk`` asks for the correlated form (``EXISTS``, one FTS5 lookup per article),
    with which SQLite walks the ordering's index and stops after a page; without it, the
    matches are listed first (``IN``), then read and sorted (see ``search_walks``).
    """
    if is_sqlite:
        if walk:
            return sa.exists().select_from(fts).where(_fts_matches(terms), fts.c.rowid == a.c.id).correlate(a)
        return a.c.id.in_(sa.select(fts.c.rowid).where(_fts_matches(terms)))
    # the configuration as SQL text: a cached plan's statement holds no value but its parameters
    return sa.literal_column("article.search").op("@@")(sa.func.to_tsquery(sa.literal_column("'simple'"), terms))


SEARCH_WALK_FACTOR = 8
"""How much cheaper a page must be by walking than by sorting, at worst, for ``search_walks``."""


def search_walks(matches: int, span: int, first: int) -> bool:
    """Whether a SQLite search page should walk the ordering's index (``search_matches(walk=True)``).

    ``matches`` articles match out of at most ``span``. Walking costs one FTS5 lookup per
    article visited (about 9 µs at the benchmark's scale) and stops after ``first + 1`` matches,
    so at worst it visits every article that does not match first: ``span - matches + first + 1``.
    Listing the matches costs reading and sorting every one (about 1.3 µs each, 68 ms for a word
    in 49,366 of 50,000 articles, against 0.4 ms walking). Walk only when even that worst case
    is cheaper: when nearly every article matches. A rarer word keeps the list, which is what
    it is fast for (a word in no article: 0.02 ms listing, 445 ms walking).
    """
    return matches > 0 and SEARCH_WALK_FACTOR * (span - matches + first + 1) <= matches


def fts_counts_statement(terms: Any) -> sa.Select[Any]:
    """``(articles matching, span of article ids)`` for ``search_walks``; SQLite only.

    The first is the exact number of matching articles (the FTS5 index holds one row per
    article, kept by triggers in the writing transaction), counted from the index alone; the
    second, ``max(id) - min(id) + 1``, is at least the number of articles. Two index seeks
    and one pass over the words' postings: 1.3 ms for a word in 49,366 articles.
    """
    matching = sa.select(sa.func.count()).select_from(fts).where(_fts_matches(terms)).scalar_subquery()
    highest = sa.select(sa.func.max(a.c.id)).scalar_subquery()
    lowest = sa.select(sa.func.min(a.c.id)).scalar_subquery()
    return sa.select(matching, sa.func.coalesce(highest - lowest + 1, sa.literal_column("0")))


def article_filters(
    *,
    tag: Any = None,
    author: Any = None,
    favorited_by: Any = None,
    search: Any = None,
    is_sqlite: bool,
    search_walk: bool = False,
) -> list[sa.ColumnElement[bool]]:
    """The WHERE conditions of the ``articles`` filters over ``article``, combined with AND by the caller.

    Each filter is a value or a ``bindparam`` (the planner's), ``None`` when absent; ``search``
    is ``search_terms``' text (or a parameter), or ``False`` for a search with no word;
    ``search_walk``: the search's correlated form (``search_matches``), for a page, never a count.
    """
    conditions: list[sa.ColumnElement[bool]] = []
    if tag is not None:
        # EXISTS, not IN: SQLite then walks the newest-first index and stops after one page,
        # where IN (the tag's whole article list) made it sort every tagged article (38 ms
        # against 0.04 ms for a tag on 22,000 of 50,000 articles).
        conditions.append(
            sa.exists().where(at.c.article_id == a.c.id, at.c.tag_id == t.c.id, t.c.name == tag).correlate(a)
        )
    if author is not None:
        conditions.append(a.c.author_id == sa.select(u.c.id).where(u.c.username == author).scalar_subquery())
    if favorited_by is not None:
        favoriter = sa.select(u.c.id).where(u.c.username == favorited_by).scalar_subquery()
        conditions.append(a.c.id.in_(sa.select(f.c.article_id).where(f.c.user_id == favoriter)))
    if search is False:
        conditions.append(sa.false())
    elif search is not None:
        conditions.append(search_matches(search, is_sqlite, walk=search_walk))
    return conditions


def article_conditions(
    *,
    tag: str | None,
    author: str | None,
    favorited_by: str | None,
    search: str | None,
    is_sqlite: bool,
    search_walk: bool = False,
) -> list[sa.ColumnElement[bool]]:
    """The WHERE conditions of the ``articles`` filters given as values (``article_filters``)."""
    terms: Any = None
    if search is not None:
        terms = search_terms(search, is_sqlite)
        if terms is None:
            terms = False
    return article_filters(
        tag=tag, author=author, favorited_by=favorited_by, search=terms, is_sqlite=is_sqlite, search_walk=search_walk
    )


def feed_condition(viewer_id: Any) -> sa.ColumnElement[bool]:
    """Articles by the users ``viewer_id`` follows (a value or a parameter)."""
    return a.c.author_id.in_(sa.select(fo.c.followee_id).where(fo.c.follower_id == viewer_id))


def tag_count_statement(tag: Any) -> sa.Select[Any]:
    """How many articles carry the tag ``tag`` (a value or a parameter): its maintained ``articles_count``.

    One index lookup, where counting its article_tag rows read every one (22,000 for a common
    tag at the benchmark's scale); 0 for a tag that does not exist.
    """
    stored = sa.select(t.c.articles_count).where(t.c.name == tag).scalar_subquery()
    return sa.select(sa.func.coalesce(stored, sa.literal_column("0")))


def tag_counts_statement(first: Any) -> sa.Select[Any]:
    """``(name, articles_count)`` of the ``first`` most used tags, ties by name (a value or a parameter).

    Read from the maintained ``tag.articles_count`` through its index ``(articles_count DESC,
    name)``: ``first`` index entries, however many articles carry tags. A tag no article carries
    any more is left out, as counting ``article_tag`` rows left it out.
    """
    return (
        sa.select(t.c.name, t.c.articles_count)
        .where(t.c.articles_count > 0)
        .order_by(t.c.articles_count.desc(), t.c.name)
        .limit(first)
    )


ARTICLE_CURSOR_KINDS = {
    (False, True): CursorKind.CREATED_DESC,
    (False, False): CursorKind.CREATED_ASC,
    (True, True): CursorKind.FAVORITES_COUNT_DESC,
    (True, False): CursorKind.FAVORITES_COUNT_ASC,
}
"""The cursor kind of an ``articles`` ordering, by (ordered by favorites count, descending); planned SQL's too."""


def article_order(order: ArticleOrder | None) -> tuple[bool, bool]:
    """``(ordered by favorites count, descending)`` of ``orderBy`` (newest first without one)."""
    return (
        order is not None and order.field is ArticleOrderField.FAVORITES_COUNT,
        order is None or order.direction is OrderDirection.DESC,
    )


def decode_article_cursor(after: str, by_favorites: bool, descending: bool) -> tuple[Any, int]:
    """``(key, id)`` of an ``articles`` cursor in that ordering; ``BadUserInput`` when it does not decode."""
    return decode_cursor(after, ARTICLE_CURSOR_KINDS[by_favorites, descending], int if by_favorites else dt.datetime)


async def list_articles(
    info: Info[Context, None],
    conditions: list[sa.ColumnElement[bool]],
    first: int | None,
    after: str | None,
    order: ArticleOrder | None,
    count_statement: sa.Select[Any] | None = None,
    total: int | None = None,
    offset: int | None = None,
) -> ArticleConnection:
    """One page of articles matching ``conditions`` in ``order`` (ties broken by id), ``offset`` rows in.

    ``count_statement`` counts the matches more cheaply than counting ``conditions`` over
    ``article`` (it must count the same rows), e.g. a tag's article count from ``article_tag``;
    ``total`` is that count when it is already known.
    """
    first = check_first(first)
    offset = check_offset(offset, after)
    by_favorites, descending = article_order(order)
    key_column: sa.ColumnElement[Any] = a.c.favorites_count if by_favorites else a.c.created_at
    kind = ARTICLE_CURSOR_KINDS[by_favorites, descending]
    where = list(conditions)
    if after is not None:
        key, pk = decode_article_cursor(after, by_favorites, descending)
        if descending:
            where.append(sa.or_(key_column < key, sa.and_(key_column == key, a.c.id < pk)))
        else:
            where.append(sa.or_(key_column > key, sa.and_(key_column == key, a.c.id > pk)))
    ordering = (key_column.desc(), a.c.id.desc()) if descending else (key_column.asc(), a.c.id.asc())
    context = info.context
    statement = article_rows(context.app.db.is_sqlite)
    statement = statement.where(*where).order_by(*ordering).limit(first + 1)
    if offset:
        statement = statement.offset(offset)
    rows = list(await context.fetch(statement))
    context.loaders.prime_articles(rows[:first])

    async def count() -> int:
        if total is not None:
            return total
        statement = count_statement
        if statement is None:
            statement = sa.select(sa.func.count()).select_from(a).where(*conditions)
        counted = await context.fetch(statement)
        return int(counted[0][0])

    return article_connection(
        rows[:first],
        len(rows) > first,
        has_previous=after is not None or offset > 0,
        cursor_of=lambda row: encode_cursor(kind, row.favorites_count if by_favorites else row.created_at, row.id),
        count=count,
    )


async def resolve_node(info: Info[Context, None], global_id: str) -> Node | None:
    """The object a global ID names, or ``None`` when it names nothing (Relay spec, 2.1)."""
    decoded = from_global_id(global_id)
    if decoded is None:
        return None
    type_name, pk = decoded
    loaders = info.context.loaders
    if type_name == "Article":
        row = await loaders.article_by_id.load(pk)
        return ArticleType.from_row(row) if row is not None else None
    if type_name == "User":
        row = await loaders.user_by_id.load(pk)
        return UserType.from_row(row) if row is not None else None
    if type_name == "Comment":
        row = await loaders.comment_by_id.load(pk)
        return CommentType.from_row(row) if row is not None else None
    return None


async def list_users(
    info: Info[Context, None],
    first: int | None,
    after: str | None,
    search: str | None,
    role: Role | None,
    suspended_now: bool | None,
) -> UserConnection:
    """One page of ``users``, newest first (ties by id); its total counted only if asked."""
    first = check_first(first)
    cursor = decode_cursor(after, CursorKind.USERS, dt.datetime) if after is not None else None
    conditions = user_filters(
        pattern=user_search_pattern(search) if search is not None else None,
        role=role.value if role is not None else None,
        suspended_now=suspended_now,
        now=utcnow(),
    )
    where = list(conditions)
    if cursor is not None:
        key, pk = cursor
        where.append(sa.or_(u.c.created_at < key, sa.and_(u.c.created_at == key, u.c.id < pk)))
    context = info.context
    statement = sa.select(*USER_COLUMNS).where(*where).order_by(u.c.created_at.desc(), u.c.id.desc())
    rows = list(await context.fetch(statement.limit(first + 1)))

    async def count() -> int:
        return int((await context.fetch(sa.select(sa.func.count()).select_from(u).where(*conditions)))[0][0])

    return user_connection(rows[:first], len(rows) > first, has_previous=after is not None, count=count)


async def tag_counts(info: Info[Context, None], first: int | None) -> list[tuple[str, int]]:
    """``(name, article count)`` of the ``first`` most used tags, ties by name."""
    first = check_first(first)
    rows = await info.context.fetch(tag_counts_statement(first))
    return [(row.name, row.articles_count) for row in rows]


@strawberry.type(
    description="The reads. Anonymous requests may read everything but `feed`, `users` and the private fields "
    "of `User`."
)
class Query:
    @strawberry.field(
        description="The Article, Comment or User with this global ID; null when the ID names nothing or does "
        "not decode.",
        directives=[CacheControl(max_age=60)],
    )
    async def node(
        self,
        info: Info[Context, None],
        id: Annotated[strawberry.ID, strawberry.argument(description="The `id` of an Article, Comment or User.")],
    ) -> Node | None:
        return await resolve_node(info, id)

    @strawberry.field(
        description="The objects of several global IDs, in the order given, each as `node` answers it (null for "
        "an ID that names nothing).",
        directives=[CacheControl(max_age=60)],
    )
    async def nodes(
        self,
        info: Info[Context, None],
        ids: Annotated[
            list[strawberry.ID],
            strawberry.argument(
                description=f"Global IDs: at most {MAX_FIRST} (BAD_USER_INPUT beyond); each counts as one node in "
                "the query cost."
            ),
        ],
    ) -> list[Node | None]:
        if len(ids) > MAX_FIRST:
            raise BadUserInput({"ids": [f"must have at most {MAX_FIRST} items"]})
        # gathered, so each type's loader answers all ids in one statement
        return list(await asyncio.gather(*(resolve_node(info, global_id) for global_id in ids)))

    @strawberry.field(
        description="The authenticated user; null for anonymous requests.",
        directives=[CacheControl(max_age=0, scope=CacheControlScope.PRIVATE)],
    )
    async def viewer(self, info: Info[Context, None]) -> UserType | None:
        viewer_id = info.context.viewer_id
        if viewer_id is None:
            return None
        row = await info.context.loaders.user_by_id.load(viewer_id)
        return UserType.from_row(row) if row is not None else None

    @strawberry.field(
        description="The user with this username; null when there is none.", directives=[CacheControl(max_age=60)]
    )
    async def user(
        self,
        info: Info[Context, None],
        username: Annotated[str, strawberry.argument(description="The exact username (case-sensitive).")],
    ) -> UserType | None:
        row = await info.context.loaders.user_by_username.load(username)
        return UserType.from_row(row) if row is not None else None

    @strawberry.field(
        description="The article with this slug; null when there is none (an old slug after a title change too).",
        directives=[CacheControl(max_age=ARTICLE_MAX_AGE)],
    )
    async def article(
        self,
        info: Info[Context, None],
        slug: Annotated[str, strawberry.argument(description="The article's current slug.")],
    ) -> ArticleType | None:
        row = await info.context.loaders.article_by_slug.load(slug)
        return ArticleType.from_row(row) if row is not None else None

    @strawberry.field(
        description="Articles, newest first unless orderBy says otherwise. Filters combine with AND.",
        directives=[CacheControl(max_age=LISTS_MAX_AGE)],
    )
    async def articles(
        self,
        info: Info[Context, None],
        first: First = DEFAULT_FIRST,
        after: After = None,
        offset: Offset = None,
        tag: Annotated[
            str | None,
            strawberry.argument(description="Only articles with this tag (exact name); an unknown tag: no articles."),
        ] = None,
        author: Annotated[
            str | None,
            strawberry.argument(
                description="Only articles by the user with this username; an unknown one: no articles."
            ),
        ] = None,
        favorited_by: Annotated[
            str | None,
            strawberry.argument(
                description="Only articles favorited by the user with this username; an unknown one: no articles."
            ),
        ] = None,
        search: Annotated[
            str | None,
            strawberry.argument(
                description="Full-text search over title, description and body: every word must match a whole "
                "word, case-insensitively; a search with no word characters matches nothing."
            ),
        ] = None,
        order_by: Annotated[
            ArticleOrder | None,
            strawberry.argument(
                description="The ordering; newest first (CREATED_AT, DESC) when null. An `after` cursor continues "
                "only the ordering it came from."
            ),
        ] = None,
    ) -> ArticleConnection:
        is_sqlite = info.context.app.db.is_sqlite
        conditions_of = functools.partial(
            article_conditions, tag=tag, author=author, favorited_by=favorited_by, search=search, is_sqlite=is_sqlite
        )
        walk, total = False, None
        terms = search_terms(search, is_sqlite) if search is not None and is_sqlite else None
        if terms is not None:
            # the arguments are refused before any I/O, as without a search (list_articles checks
            # them again): an operation's first error must not depend on which field awaited first
            check_first(first)
            check_offset(offset, after)
            if after is not None:
                decode_article_cursor(after, *article_order(order_by))
            # SQLite cannot tell how many articles a search matches: count them from the index first
            matches, span = (await info.context.fetch(fts_counts_statement(terms)))[0]
            # the walk stops after the skipped rows and the page
            walk = search_walks(matches, span, check_first(first) + (offset or 0))
            if tag is None and author is None and favorited_by is None:
                total = matches
        conditions = conditions_of(search_walk=walk)
        count_statement = None
        if walk:
            # the page walks the ordering's index; a count lists the matches (walking visits every article)
            count_statement = sa.select(sa.func.count()).select_from(a).where(*conditions_of())
        elif tag is not None and author is None and favorited_by is None and search is None:
            # one article_tag row per tagged article: no need to visit the articles to count them
            count_statement = tag_count_statement(tag)
        return await list_articles(info, conditions, first, after, order_by, count_statement, total, offset)

    @strawberry.field(
        description="Articles by users the viewer follows, newest first. Requires authentication.",
        permission_classes=[IsAuthenticated],
        directives=[CacheControl(max_age=0, scope=CacheControlScope.PRIVATE)],
    )
    async def feed(
        self, info: Info[Context, None], first: First = DEFAULT_FIRST, after: After = None, offset: Offset = None
    ) -> ArticleConnection:
        conditions = [feed_condition(info.context.viewer_id)]
        return await list_articles(info, conditions, first, after, None, offset=offset)

    @strawberry.field(
        description="Users, for moderators and admins (FORBIDDEN for others): newest first; `search` matches "
        "the start of a username or email case-insensitively; filters combine with AND.",
        permission_classes=[IsStaff],
        directives=[CacheControl(max_age=0, scope=CacheControlScope.PRIVATE)],
    )
    async def users(
        self,
        info: Info[Context, None],
        first: First = DEFAULT_FIRST,
        after: After = None,
        search: Annotated[
            str | None,
            strawberry.argument(
                description="Only users whose username or email starts with this text, case-insensitively (`%` "
                "and `_` match themselves)."
            ),
        ] = None,
        role: Annotated[Role | None, strawberry.argument(description="Only users with this role.")] = None,
        suspended: Annotated[
            bool | None,
            strawberry.argument(
                description="true: only users suspended now; false: only users not suspended now; null: both."
            ),
        ] = None,
    ) -> UserConnection:
        return await list_users(info, first, after, search, role, suspended)

    @strawberry.field(description="Tag names, most used first.", directives=[CacheControl(max_age=TAGS_MAX_AGE)])
    async def tags(self, info: Info[Context, None], first: First = DEFAULT_FIRST) -> list[str]:
        return [name for name, _ in await tag_counts(info, first)]

    @strawberry.field(
        description="Tags with their article counts, most used first.", directives=[CacheControl(max_age=TAGS_MAX_AGE)]
    )
    async def popular_tags(self, info: Info[Context, None], first: First = DEFAULT_FIRST) -> list[TagCount]:
        return [TagCount(name=name, articles_count=n) for name, n in await tag_counts(info, first)]

    @strawberry.field(
        description="The viewer's cost budget (GitHub's rateLimit). Selecting only this costs nothing; "
        "dryRun prices the operation without charging or executing it (only rateLimit is answered).",
        directives=[CacheControl(max_age=0, scope=CacheControlScope.PRIVATE)],
    )
    def rate_limit(
        self,
        info: Info[Context, None],
        dry_run: Annotated[
            bool | None,
            strawberry.argument(
                description="true, in a query: price the whole operation without charging it; only its "
                "`rateLimit` and `__typename` root fields run, the others are left out of `data`."
            ),
        ] = False,
    ) -> RateLimitType | None:
        # dryRun is acted on before execution (graph/admission/budget.py), for the whole operation
        return rate_limit_of(info.context)
