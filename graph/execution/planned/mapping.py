"""The mapping: how each GraphQL object type and field of the schema reads from the tables.

Declared once, here, as SQLAlchemy Core expressions over a table alias; the planner
(``graph/execution/planned/planner.py``) turns any validated selection into statements from it,
and ``tests/graph/test_mapping.py`` checks it against the schema (every field of every object
type is mapped, or named in ``UNMAPPED`` with the reason) and, through the differential tests,
against the resolvers of ``graph/types/`` (the reference: same values, orderings, cursors).

A field is one of:

- ``Value``: a scalar, an SQL expression over the object's alias (a column, a correlated
  count, the viewer's ``favorited``/``following``), with the name of the shaping helper
  that writes the driver's value as the resolver's serialized one;
- ``ToOne``: an object joined into the same statement (an article's author);
- ``ToMany``: a connection, one statement per level for all parents of a page (a windowed
  page per parent), its total a correlated count on the parent's row.

The viewer is the parameter ``:viewer`` (``None`` when anonymous), ``:admin`` (whether the
viewer is an admin) and ``:staff`` (a moderator or an admin); columns that need a viewer
become a constant when there is none. ``:now`` is the time of the request (for suspensions).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from db.models import (
    article_table,
    comment_table,
    favorite_table,
    follow_table,
    user_table,
)
from db.users import suspended
from graph.ids import CursorKind
from graph.loaders import tag_names

__all__ = [
    "ADMIN",
    "MAPPING",
    "NOW",
    "STAFF",
    "UNMAPPED",
    "VIEWER",
    "ObjectMapping",
    "ToMany",
    "ToOne",
    "Value",
    "viewer_check",
]

Alias = Any
"""A table alias (``sa.Table.alias``): ``alias.c.<column>``."""

VIEWER = sa.bindparam("viewer", type_=sa.Integer)
"""The signed-in viewer's user id; ``None`` when anonymous."""
ADMIN = sa.bindparam("admin", type_=sa.Boolean)
"""Whether the viewer is an admin (``Role.ADMIN``)."""
STAFF = sa.bindparam("staff", type_=sa.Boolean)
"""Whether the viewer is a moderator or an admin (``graph.permissions.STAFF_ROLES``)."""
NOW = sa.bindparam("now", type_=sa.DateTime(timezone=True))
"""The request's time, as stored timestamps compare with it (``DriverDialect.bind_time``)."""
VIEWER_ROLE = sa.bindparam("viewer_role", type_=sa.String)
VIEWER_NAME = sa.bindparam("viewer_name", type_=sa.String)
"""The role and username the request assumed for ``:viewer`` (``auth.backend.KnownViewers``)."""


def viewer_check() -> sa.Label[Any]:
    """Whether ``:viewer`` is still the viewer the request assumed, read with the statement it is added to.

    A column, labelled ``viewer_check``, the same on every row: true (1 on SQLite) when the
    user's row has the role ``:viewer_role`` and the username ``:viewer_name`` and is not
    suspended at ``:now`` (``db.users.viewer_by_id`` asks the same of it), false (0) when one of
    them differs, null when the user no longer exists. An uncorrelated scalar subquery: both
    engines evaluate it once per statement.
    """
    u = user_table.alias("vc")
    current = sa.and_(u.c.role == VIEWER_ROLE, u.c.username == VIEWER_NAME, sa.not_(suspended(u, NOW)))
    return sa.select(current).where(u.c.id == VIEWER).scalar_subquery().label("viewer_check")


@dataclass(frozen=True)
class Value:
    """A scalar field: ``sql(alias, is_sqlite)``, written by the shaping helper ``write`` ("" as is).

    ``anonymous``: the constant that stands for the expression without a viewer (``None``:
    the expression itself, which must then not depend on the viewer).
    """

    sql: Callable[[Alias, bool], sa.ColumnElement[Any]]
    write: str = ""
    anonymous: Any = None


@dataclass(frozen=True)
class ToOne:
    """An object field joined into its parent's statement: ``on(parent alias, target alias)``.

    ``nullable``: the object may be missing (an outer join; the field is then null).
    """

    target: str
    on: Callable[[Alias, Alias], sa.ColumnElement[bool]]
    nullable: bool = False


@dataclass(frozen=True)
class Page:
    """Where a connection's rows come from, and their order: columns of ``table``.

    ``pk`` is the column holding the target object's id (its own id, or a link table's
    foreign key), ``parent`` the column matched with the parent's key, ``key`` the
    cursor's ordering key (``None``: ``pk`` alone orders) with ``pk`` as tie-breaker;
    ``descending``: newest first. A page is read as keys first (an index walk with its
    ``LIMIT``), then its objects by id: the columns of a page cost 20 rows, not the matches.
    """

    table: sa.Table
    pk: str
    parent: str
    key: str | None
    descending: bool
    kind: CursorKind
    key_is_time: bool


@dataclass(frozen=True)
class ToMany:
    """A connection field of ``target`` objects (``first``/``after`` paging).

    ``parent_key(parent)`` is the parent's column that ``page.parent`` matches;
    ``count(parent)`` the correlated total for ``totalCount``.
    """

    target: str
    page: Page
    parent_key: Callable[[Alias], sa.ColumnElement[Any]]
    count: Callable[[Alias], sa.ColumnElement[Any]]


Field = Value | ToOne | ToMany


@dataclass(frozen=True)
class ObjectMapping:
    """A GraphQL object type read from ``table``: its fields by GraphQL name."""

    name: str
    table: sa.Table
    fields: dict[str, Field]


def _count(table: sa.Table, column: str, parent_column: Callable[[Alias], Any]) -> Callable[[Alias], Any]:
    def count(parent: Alias) -> sa.ColumnElement[Any]:
        counted = table.alias(f"n_{table.name}")
        return (
            sa.select(sa.func.count())
            .select_from(counted)
            .where(counted.c[column] == parent_column(parent))
            .correlate(parent)
            .scalar_subquery()
        )

    return count


def _viewer_link(table: sa.Table, viewer_column: str, target_column: str) -> Callable[[Alias, bool], Any]:
    def link(target: Alias, _is_sqlite: bool) -> sa.ColumnElement[Any]:
        linked = table.alias(f"v_{table.name}")
        return sa.exists().where(linked.c[target_column] == target.c.id, linked.c[viewer_column] == VIEWER)

    return link


def _column(name: str) -> Callable[[Alias, bool], sa.ColumnElement[Any]]:
    return lambda alias, _is_sqlite: alias.c[name]


def _email(user: Alias, _is_sqlite: bool) -> sa.ColumnElement[Any]:
    # graph.permissions.IsSelfOrAdmin, fail_silently: null for anyone but the user and admins
    return sa.case((sa.or_(user.c.id == VIEWER, ADMIN), user.c.email), else_=sa.null())


def _email_verified(user: Alias, _is_sqlite: bool) -> sa.ColumnElement[Any]:
    # IsSelfOrAdmin, as email
    return sa.case((sa.or_(user.c.id == VIEWER, ADMIN), user.c.email_verified), else_=sa.null())


def _suspension(user: Alias, suspension: Alias) -> sa.ColumnElement[bool]:
    # graph.permissions.IsSelfOrStaff, fail_silently; only a suspension still running at ``:now``
    return sa.and_(suspension.c.id == user.c.id, sa.or_(user.c.id == VIEWER, STAFF), suspended(suspension, NOW))


COMMENTS = ToMany(
    "Comment",
    Page(comment_table, "id", "article_id", None, False, CursorKind.COMMENTS, False),  # oldest first: ids grow
    parent_key=lambda article: article.c.id,
    count=_count(comment_table, "article_id", lambda article: article.c.id),
)
USER_ARTICLES = ToMany(
    "Article",
    Page(article_table, "id", "author_id", "created_at", True, CursorKind.USER_ARTICLES, True),
    parent_key=lambda user: user.c.id,
    count=_count(article_table, "author_id", lambda user: user.c.id),
)
USER_FAVORITES = ToMany(
    "Article",
    # most recently favorited first
    Page(favorite_table, "article_id", "user_id", "created_at", True, CursorKind.USER_FAVORITES, True),
    parent_key=lambda user: user.c.id,
    count=_count(favorite_table, "user_id", lambda user: user.c.id),
)

MAPPING: dict[str, ObjectMapping] = {
    "Article": ObjectMapping(
        "Article",
        article_table,
        {
            "id": Value(_column("id"), "_id_Article"),
            "slug": Value(_column("slug")),
            "title": Value(_column("title")),
            "description": Value(_column("description")),
            "body": Value(_column("body")),
            "createdAt": Value(_column("created_at"), "_datetime"),
            "updatedAt": Value(_column("updated_at"), "_datetime"),
            "favoritesCount": Value(_column("favorites_count")),
            "tagList": Value(tag_names, "_tags"),
            "favorited": Value(_viewer_link(favorite_table, "user_id", "article_id"), "_bool", anonymous=False),
            "author": ToOne("User", lambda article, user: user.c.id == article.c.author_id),
            "comments": COMMENTS,
        },
    ),
    "User": ObjectMapping(
        "User",
        user_table,
        {
            "id": Value(_column("id"), "_id_User"),
            "username": Value(_column("username")),
            "bio": Value(_column("bio")),
            "image": Value(_column("image")),
            "role": Value(_column("role")),
            "createdAt": Value(_column("created_at"), "_datetime"),
            "email": Value(_email),
            "emailVerified": Value(_email_verified, "_optional_bool"),
            "suspension": ToOne("Suspension", _suspension, nullable=True),
            "following": Value(_viewer_link(follow_table, "follower_id", "followee_id"), "_bool", anonymous=False),
            "followersCount": Value(lambda user, _s: _count(follow_table, "followee_id", lambda u: u.c.id)(user)),
            "followingCount": Value(lambda user, _s: _count(follow_table, "follower_id", lambda u: u.c.id)(user)),
            "articles": USER_ARTICLES,
            "favorites": USER_FAVORITES,
        },
    ),
    # the user's own row again: a suspension is columns of ``user`` (migration 0005)
    "Suspension": ObjectMapping(
        "Suspension",
        user_table,
        {
            "reason": Value(_column("suspension_reason")),
            "until": Value(_column("suspended_until"), "_optional_datetime"),
            "createdAt": Value(_column("suspended_at"), "_datetime"),
            "by": ToOne("User", lambda suspension, user: user.c.id == suspension.c.suspended_by_id, nullable=True),
        },
    ),
    "Comment": ObjectMapping(
        "Comment",
        comment_table,
        {
            "id": Value(_column("id"), "_id_Comment"),
            "body": Value(_column("body")),
            "createdAt": Value(_column("created_at"), "_datetime"),
            "updatedAt": Value(_column("updated_at"), "_datetime"),
            "author": ToOne("User", lambda comment, user: user.c.id == comment.c.author_id),
            "article": ToOne("Article", lambda comment, article: article.c.id == comment.c.article_id),
        },
    ),
}

UNMAPPED: dict[str, str] = {}
"""Fields of the mapped object types that are not read from tables, by ``Type.field``, with why."""
