"""Driver SQL of the hot paths: the planned operations' statements and the viewer lookup.

Plain SQL text with ``:name`` parameters, which ``DriverDialect.render`` turns into the
driver's placeholders for ``Database.fetch_raw`` and ``Database.write``. The planner
(``graph/execution/planned``) chooses the select list and the variant; the text is here.
Aliases: ``a`` an article, ``u`` its author, ``c`` a comment, ``cu`` the comment's author.

Only SQL of this module and select lists built from its column expressions are ever
formatted into a statement (the ``S608`` exemptions below); values travel as parameters.
"""

from __future__ import annotations

__all__ = [
    "CHARGE_BUDGET",
    "COMMENT_COUNT",
    "EMBEDDED_COMMENT_COUNT",
    "FAVORITED",
    "FOLLOWING",
    "INSERT_COMMENT",
    "VIEWER_BY_ID",
    "VIEWER_COLUMNS",
    "article_by_slug",
    "article_count",
    "article_page",
    "comment_page",
    "embedded_comment_page",
    "tag_names",
    "user_by_id",
]

FAVORITED = "EXISTS(SELECT 1 FROM favorite f WHERE f.article_id = a.id AND f.user_id = :viewer)"
"""Column: whether the viewer favorited article ``a``."""
FOLLOWING = "EXISTS(SELECT 1 FROM follow fo WHERE fo.followee_id = u.id AND fo.follower_id = :viewer)"
"""Column: whether the viewer follows user ``u``."""
VIEWER_COLUMNS = frozenset({FAVORITED, FOLLOWING})
"""The columns that read ``:viewer``; without a viewer the select list has a constant false instead."""

CHARGE_BUDGET = (
    "INSERT INTO cost_budget (bucket, window_start, used) VALUES (:bucket, :window, :cost) "
    "ON CONFLICT (bucket, window_start) DO UPDATE SET used = cost_budget.used + excluded.used "
    "WHERE cost_budget.used + excluded.used <= :points RETURNING used"
)
"""Spend ``:cost`` of ``:bucket``'s ``:points`` in ``:window`` if they fit (``db/budget.py``): ``(used,)``
after the charge, or no row when it did not fit (nothing is changed then)."""

VIEWER_BY_ID = 'SELECT id, username, role FROM "user" WHERE id = :id'
"""The viewer an access token names: ``(id, username, role)``, or no row."""

COMMENT_COUNT = "SELECT count(*) FROM comment c WHERE c.article_id = (SELECT id FROM article WHERE slug = :slug)"
"""How many comments the article ``:slug`` has."""
EMBEDDED_COMMENT_COUNT = "(SELECT count(*) FROM comment c WHERE c.article_id = a.id)"
"""Column: how many comments article ``a`` has."""

INSERT_COMMENT = (
    "INSERT INTO comment (body, article_id, author_id, created_at, updated_at) "
    "SELECT :body, a.id, :viewer, :now, :now FROM article a WHERE a.slug = :slug "
    "RETURNING id, article_id, body, created_at, updated_at"
)
"""A comment by ``:viewer`` on the article ``:slug``; no row when there is no such article."""


def tag_names(is_sqlite: bool) -> str:
    """Column: article ``a``'s tag names as JSON array text, in the author's order (as the loaders)."""
    if is_sqlite:
        return (
            "(SELECT json_group_array(name) FROM (SELECT t.name AS name FROM article_tag at "
            "JOIN tag t ON t.id = at.tag_id WHERE at.article_id = a.id ORDER BY at.position, t.name))"
        )
    return (
        "(SELECT json_agg(t.name ORDER BY at.position, t.name)::text FROM article_tag at "
        "JOIN tag t ON t.id = at.tag_id WHERE at.article_id = a.id)"
    )


def _article_conditions(*, tag: bool, author: bool, after: bool) -> list[str]:
    conditions = []
    if tag:
        # EXISTS, as in graph/queries.py: SQLite walks the newest-first index and stops after a page
        conditions.append(
            "EXISTS (SELECT 1 FROM article_tag at JOIN tag t ON t.id = at.tag_id "
            "WHERE at.article_id = a.id AND t.name = :tag)"
        )
    if author:
        conditions.append('a.author_id = (SELECT id FROM "user" WHERE username = :author)')
    if after:
        conditions.append("(a.created_at < :key OR (a.created_at = :key AND a.id < :pk))")
    return conditions


def _where(conditions: list[str]) -> str:
    return f" WHERE {' AND '.join(conditions)}" if conditions else ""


def article_page(select: str, *, tag: bool, author: bool, after: bool) -> str:
    """Articles (``a`` with author ``u``) newest first, up to ``:limit``.

    Filtered by tag name ``:tag`` and author username ``:author`` when ``tag``/``author``;
    with ``after``, only those after the cursor ``(:key, :pk)`` (``created_at``, ``id``).
    """
    return (
        f'SELECT {select} FROM article a JOIN "user" u ON u.id = a.author_id'  # noqa: S608 - fragments of this module only
        f"{_where(_article_conditions(tag=tag, author=author, after=after))} "
        "ORDER BY a.created_at DESC, a.id DESC LIMIT :limit"
    )


def article_count(*, tag: bool, author: bool) -> str:
    """How many articles ``article_page`` pages through (its ``:tag`` and ``:author`` filters)."""
    if tag and not author:
        # one article_tag row per tagged article: no need to visit the articles (graph/queries.py)
        return "SELECT count(*) FROM article_tag at JOIN tag t ON t.id = at.tag_id WHERE t.name = :tag"
    conditions = _article_conditions(tag=tag, author=author, after=False)
    return "SELECT count(*) FROM article a" + _where(conditions)  # noqa: S608 - fragments of this module only


def article_by_slug(select: str) -> str:
    """The article ``:slug`` (``a`` with author ``u``): one row or none."""
    return (
        f'SELECT {select} FROM article a JOIN "user" u ON u.id = a.author_id'  # noqa: S608 - fragments of this module only
        " WHERE a.slug = :slug"
    )


def comment_page(select: str, *, after: bool) -> str:
    """Comments (``c`` with author ``cu``) of the article ``:slug``, oldest first, up to ``:limit``.

    With ``after``, only those whose id is greater than ``:pk``.
    """
    where = " AND c.id > :pk" if after else ""
    return (
        f'SELECT {select} FROM comment c JOIN "user" cu ON cu.id = c.author_id '  # noqa: S608 - fragments of this module only
        f"WHERE c.article_id = (SELECT id FROM article WHERE slug = :slug){where} ORDER BY c.id LIMIT :limit"
    )


def embedded_comment_page(select: str, index: int, *, after: bool) -> str:
    """Column: ``comment_page`` of article ``a`` as an array of rows (PostgreSQL only).

    Its parameters are ``:limit<index>`` and, with ``after``, ``:pk<index>``, so that several
    pages fit in one statement. asyncpg decodes the array into tuples shaped like the rows
    of ``comment_page``: one round trip for an article and its comments.
    """
    where = f" AND c.id > :pk{index}" if after else ""
    return (
        f'ARRAY(SELECT ROW({select}) FROM comment c JOIN "user" cu ON cu.id = c.author_id '  # noqa: S608 - fragments of this module only
        f"WHERE c.article_id = a.id{where} ORDER BY c.id LIMIT :limit{index})"
    )


def user_by_id(select: str) -> str:
    """The user ``:viewer`` (as ``cu``, a comment's author): one row or none."""
    return f'SELECT {select} FROM "user" cu WHERE cu.id = :viewer'  # noqa: S608 - fragments of this module only
