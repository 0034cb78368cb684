"""Data functions on users shared by the API and the ``conduit`` command."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Role, user_table, utcnow
from db.models import account_token_table as account_tokens
from db.models import article_table as articles
from db.models import article_tag_table as article_tags
from db.models import comment_table as comments
from db.models import favorite_table as favorites
from db.models import follow_table as follows
from db.models import mail_outbox_table as outbox
from db.models import refresh_token_table as refresh_tokens
from db.tags import change_articles_count

Alias = Any
"""``user_table`` or an alias of it: ``alias.c.<column>``."""

__all__ = [
    "DeletedUser",
    "LastAdmin",
    "RoleChange",
    "SuspensionChange",
    "SuspensionInPast",
    "change_role",
    "delete_user",
    "list_users",
    "revoke_sessions",
    "set_password",
    "suspend_user",
    "suspended",
    "unsuspend_user",
    "user_filters",
    "user_search_pattern",
    "viewer_by_id",
]


@dataclass(frozen=True)
class RoleChange:
    """A role change: whose, the role it replaced and the new one (equal when nothing changed)."""

    user_id: int
    old_role: Role
    new_role: Role


async def change_role(*, session: AsyncSession, username: str, role: Role) -> RoleChange | None:
    """Give the user named ``username`` the role ``role``, touching ``updated_at``; ``None`` if no such user.

    Runs inside the caller's write transaction (``Database.transaction``, which on SQLite takes
    the write lock first). The row is locked before it is read, so ``old_role`` is the role
    this update replaced even when two changes race (the audit log reports it).
    """
    named = user_table.c.username == username
    current = sa.select(user_table.c.id, user_table.c.role).where(named).with_for_update()
    old = (await session.execute(current)).first()
    if old is None:
        return None
    changed = sa.update(user_table).where(user_table.c.id == old.id).values(role=role.value, updated_at=utcnow())
    await session.execute(changed)
    return RoleChange(user_id=old.id, old_role=Role(old.role), new_role=role)


def suspended(user: Alias, now: Any) -> sa.ColumnElement[bool]:
    """Whether ``user`` (the table or an alias) is suspended at ``now`` (a datetime or a bind parameter).

    Suspended while ``suspended_at`` is set and ``suspended_until`` is null (forever) or after
    ``now``; an expired suspension reads as none (contract-next, ``User.suspension``).
    """
    return sa.and_(
        user.c.suspended_at.is_not(None),
        sa.or_(user.c.suspended_until.is_(None), user.c.suspended_until > now),
    )


def viewer_by_id() -> sa.Select[Any]:
    """The viewer an access token names: ``(id, username, role, suspended)``, or no row.

    The one read of every signed-in request (``auth/backend.py``), compiled once per dialect
    into driver SQL. Its parameters are ``id`` (the user id) and ``now`` (the time, bound with
    ``DriverDialect.bind_time``); ``suspended`` is ``suspended(user, now)``, so the suspension
    check costs no statement of its own (a boolean on PostgreSQL, 0 or 1 on SQLite).
    """
    u = user_table
    return sa.select(u.c.id, u.c.username, u.c.role, suspended(u, sa.bindparam("now")).label("suspended")).where(
        u.c.id == sa.bindparam("id")
    )


async def revoke_sessions(session: AsyncSession, user_id: int, now: dt.datetime) -> int:
    """Revoke every live refresh token of ``user_id`` at ``now``; how many were revoked."""
    live = sa.and_(refresh_tokens.c.user_id == user_id, refresh_tokens.c.revoked_at.is_(None))
    result = await session.execute(sa.update(refresh_tokens).where(live).values(revoked_at=now))
    return int(result.rowcount)  # type: ignore[attr-defined]


class SuspensionInPast(ValueError):
    """``until`` is not after now: a suspension must end in the future (or never)."""


@dataclass(frozen=True)
class SuspensionChange:
    """A suspension written (or lifted): whose, and how many refresh tokens it revoked (0 when lifted)."""

    user_id: int
    until: dt.datetime | None
    sessions_revoked: int = 0
    was_suspended: bool = False


async def suspend_user(
    *,
    session: AsyncSession,
    user_id: int,
    reason: str,
    until: dt.datetime | None,
    by_id: int | None,
    now: dt.datetime | None = None,
) -> SuspensionChange:
    """Suspend ``user_id`` from ``now`` until ``until`` (forever when ``None``), revoking their refresh tokens.

    ``by_id`` is the suspender (``None`` from the command line). A new suspension replaces a
    current one. Raises ``SuspensionInPast`` when ``until`` is not after ``now`` (an aware UTC
    datetime; naive values are read as UTC). Runs inside the caller's write transaction; the
    caller tells the user's open connections (``db.broker.SESSIONS_CLOSED``) once it commits.
    """
    now = now or utcnow()
    if until is not None:
        until = until if until.tzinfo is not None else until.replace(tzinfo=dt.UTC)
        if until <= now:
            raise SuspensionInPast("must be in the future")
    was = await _suspended_now(session, user_id, now)
    await session.execute(
        sa.update(user_table)
        .where(user_table.c.id == user_id)
        .values(
            suspended_at=now,
            suspended_until=until,
            suspension_reason=reason,
            suspended_by_id=by_id,
            updated_at=now,
        )
    )
    revoked = await revoke_sessions(session, user_id, now)
    return SuspensionChange(user_id=user_id, until=until, sessions_revoked=revoked, was_suspended=was)


async def unsuspend_user(*, session: AsyncSession, user_id: int, now: dt.datetime | None = None) -> SuspensionChange:
    """Lift ``user_id``'s suspension (clearing all four columns); ``was_suspended`` tells whether one was current.

    Lifting when there is none is not an error (the columns of an expired one are cleared too).
    Refresh tokens revoked by the suspension stay revoked: the user signs in again.
    """
    now = now or utcnow()
    was = await _suspended_now(session, user_id, now)
    await session.execute(
        sa.update(user_table)
        .where(user_table.c.id == user_id)
        .values(suspended_at=None, suspended_until=None, suspension_reason=None, suspended_by_id=None, updated_at=now)
    )
    return SuspensionChange(user_id=user_id, until=None, was_suspended=was)


async def _suspended_now(session: AsyncSession, user_id: int, now: dt.datetime) -> bool:
    statement = sa.select(suspended(user_table, now)).where(user_table.c.id == user_id)
    return bool((await session.execute(statement)).scalar())


async def set_password(*, session: AsyncSession, user_id: int, password_hash: str) -> int:
    """Store ``password_hash`` (``auth.passwords``) for ``user_id`` and revoke their refresh tokens; how many.

    A new password ends every session the old one opened (contract README, Authentication).
    """
    now = utcnow()
    await session.execute(
        sa.update(user_table).where(user_table.c.id == user_id).values(password_hash=password_hash, updated_at=now)
    )
    return await revoke_sessions(session, user_id, now)


LIKE_ESCAPE = "\\"
"""The escape character of ``user_search_pattern``'s LIKE patterns."""


def user_search_pattern(search: str) -> str:
    """The LIKE pattern of a users search: the lower-cased prefix, its ``%``, ``_`` and ``\\`` escaped."""
    escaped = search.lower().replace(LIKE_ESCAPE, LIKE_ESCAPE * 2).replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


def user_filters(
    *, pattern: Any = None, role: Any = None, suspended_now: bool | None = None, now: Any = None
) -> list[sa.ColumnElement[bool]]:
    """The conditions of a users listing over ``user_table`` (values, or the planner's bind parameters).

    ``pattern``: ``user_search_pattern``'s prefix pattern, matched against the lower-cased
    username or email; ``role``: a role's value; ``suspended_now``: ``True``/``False`` keeps
    users suspended at ``now`` or not (``suspended``); ``None`` leaves a filter out. They
    combine with AND (contract-next, ``Query.users``; ``conduit user list``).
    """
    u = user_table
    conditions: list[sa.ColumnElement[bool]] = []
    if pattern is not None:
        conditions.append(
            sa.or_(
                sa.func.lower(u.c.username).like(pattern, escape=LIKE_ESCAPE),
                sa.func.lower(u.c.email).like(pattern, escape=LIKE_ESCAPE),
            )
        )
    if role is not None:
        conditions.append(u.c.role == role)
    if suspended_now is not None:
        condition = suspended(u, now)
        conditions.append(condition if suspended_now else sa.not_(condition))
    return conditions


async def list_users(
    *,
    session: AsyncSession,
    search: str | None = None,
    role: Role | None = None,
    is_suspended: bool | None = None,
    limit: int = 100,
) -> Sequence[Any]:
    """Users newest first (ties by id), at most ``limit``.

    Rows of ``id, username, email, role, created_at, suspended_until, suspension_reason`` and
    ``suspended`` (now).

    ``search`` matches the start of the username or the email, case-insensitively; ``role`` and
    ``is_suspended`` (suspended now, per ``suspended``) filter; all combine with AND.
    """
    u = user_table
    now = utcnow()
    statement = sa.select(
        u.c.id,
        u.c.username,
        u.c.email,
        u.c.role,
        u.c.created_at,
        u.c.suspended_until,
        u.c.suspension_reason,
        suspended(u, now).label("suspended"),
    )
    conditions = user_filters(
        pattern=user_search_pattern(search) if search else None,
        role=role.value if role is not None else None,
        suspended_now=is_suspended,
        now=now,
    )
    statement = statement.where(*conditions)
    statement = statement.order_by(u.c.created_at.desc(), u.c.id.desc()).limit(limit)
    return (await session.execute(statement)).all()


class LastAdmin(Exception):
    """The user is the only admin: deleting them would leave nobody to administer the site."""


@dataclass(frozen=True)
class DeletedUser:
    """What ``delete_user`` removed: the user and counts of their rows (each row counted once).

    ``articles``: articles they wrote; ``comments``: comments they wrote, anywhere;
    ``comments_on_articles`` and ``favorites_of_articles``: other users' comments and favorites
    that went with those articles; ``favorites``: articles they favorited; ``follows``: follow
    links in either direction; ``refresh_tokens``: refresh tokens, live or spent.
    """

    user_id: int
    username: str
    role: Role
    articles: int = 0
    comments: int = 0
    comments_on_articles: int = 0
    favorites: int = 0
    favorites_of_articles: int = 0
    follows: int = 0
    refresh_tokens: int = 0
    tags_unlinked: dict[int, int] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        """The counts by name, for the audit log and the command line."""
        return {
            "articles": self.articles,
            "comments": self.comments,
            "comments_on_articles": self.comments_on_articles,
            "favorites": self.favorites,
            "favorites_of_articles": self.favorites_of_articles,
            "follows": self.follows,
            "sessions": self.refresh_tokens,
        }


async def delete_user(*, session: AsyncSession, user_id: int) -> DeletedUser | None:
    """Delete ``user_id`` and everything that is theirs, keeping every counter of other rows right.

    Removes their articles (with those articles' comments, favorites and tag links), their
    comments, favorites, follows in both directions, refresh tokens, mailed tokens and outbox
    mails; lowers ``favorites_count`` of other users' articles they favorited and
    ``articles_count`` of their articles' tags; clears ``suspended_by_id`` where it names them.
    Follower and following counts are counted per read, so they follow by themselves; the
    search index follows the ``article`` rows (SQLite's triggers, PostgreSQL's generated column).

    Runs inside the caller's write transaction (all or nothing). ``None`` when there is no
    such user; raises ``LastAdmin`` for the only admin. The user row is locked first (after
    the admins' rows, when deleting an admin), so a concurrent write that names the user (a
    new favorite, say) waits and then fails its foreign key instead of leaving a row behind;
    every count is taken from the rows a ``DELETE ... RETURNING`` removed, so a concurrent
    unfavorite cannot be counted twice.
    """
    u = user_table
    columns = (u.c.id, u.c.username, u.c.email, u.c.role)
    admins = sa.select(u.c.id).where(u.c.role == Role.ADMIN.value).order_by(u.c.id).with_for_update()
    unlocked = (await session.execute(sa.select(*columns).where(u.c.id == user_id))).first()
    if unlocked is not None and unlocked.role == Role.ADMIN.value:
        # every admin row, in id order, before the user's own lock: two admins deleting each
        # other then queue (the second finds one admin left) instead of deadlocking
        await session.execute(admins)
    user = (await session.execute(sa.select(*columns).where(u.c.id == user_id).with_for_update())).first()
    if user is None:
        return None
    if user.role == Role.ADMIN.value and len((await session.execute(admins)).all()) <= 1:
        raise LastAdmin(f"{user.username} is the only admin")
    own_articles = sa.select(articles.c.id).where(articles.c.author_id == user_id).scalar_subquery()

    # Tag links of their articles first, so that the tags' articles_count drop with them.
    unlinked = await session.execute(
        sa.delete(article_tags).where(article_tags.c.article_id.in_(own_articles)).returning(article_tags.c.tag_id)
    )
    tags = Counter(unlinked.scalars())
    await change_articles_count(session, {tag_id: -count for tag_id, count in tags.items()})

    # Their favorites, then the counters of the other users' articles they had favorited.
    favorited = await session.execute(
        sa.delete(favorites).where(favorites.c.user_id == user_id).returning(favorites.c.article_id)
    )
    favorited_ids = sorted(set(favorited.scalars()))
    if favorited_ids:
        others = sa.and_(articles.c.id.in_(favorited_ids), articles.c.author_id != user_id)
        if session.bind is not None and session.bind.dialect.name == "postgresql":
            # in id order, so concurrent deletions and favorites queue instead of deadlocking
            await session.execute(
                sa.select(articles.c.id).where(others).order_by(articles.c.id).with_for_update(key_share=True)
            )
        await session.execute(sa.update(articles).where(others).values(favorites_count=articles.c.favorites_count - 1))

    favorites_of_articles = await _delete(session, favorites, favorites.c.article_id.in_(own_articles))
    comments_written = await _delete(session, comments, comments.c.author_id == user_id)
    comments_on_articles = await _delete(session, comments, comments.c.article_id.in_(own_articles))
    articles_written = await _delete(session, articles, articles.c.author_id == user_id)
    follow_links = await _delete(
        session, follows, sa.or_(follows.c.follower_id == user_id, follows.c.followee_id == user_id)
    )
    tokens = await _delete(session, refresh_tokens, refresh_tokens.c.user_id == user_id)
    await _delete(session, account_tokens, account_tokens.c.user_id == user_id)
    # mails to them, also those requested by address before the account was known
    await _delete(
        session, outbox, sa.or_(outbox.c.user_id == user_id, sa.func.lower(outbox.c.recipient) == user.email.lower())
    )
    # no foreign key on suspended_by_id (module db/models.py): cleared by hand
    await session.execute(sa.update(u).where(u.c.suspended_by_id == user_id).values(suspended_by_id=None))
    await session.execute(sa.delete(u).where(u.c.id == user_id))
    return DeletedUser(
        user_id=user_id,
        username=user.username,
        role=Role(user.role),
        articles=articles_written,
        comments=comments_written,
        comments_on_articles=comments_on_articles,
        favorites=len(favorited_ids),
        favorites_of_articles=favorites_of_articles,
        follows=follow_links,
        refresh_tokens=tokens,
        tags_unlinked=dict(tags),
    )


async def _delete(session: AsyncSession, table: sa.Table, condition: sa.ColumnElement[bool]) -> int:
    result = await session.execute(sa.delete(table).where(condition))
    return int(result.rowcount)  # type: ignore[attr-defined]
