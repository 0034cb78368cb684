"""SQLModel tables of the Conduit domain.

Table and column names follow ``shared/bench/README.md`` (the benchmark's reference server and
the PostgreSQL anchor read them); extra columns (``favorites_count``, ``position``,
``created_at`` on links) serve the GraphQL API's orderings. Timestamps are aware UTC
``datetime`` values (SQLModel's ``UTCDateTime``), stored the way SQLAlchemy stores them on each
engine: ``YYYY-MM-DD HH:MM:SS.ffffff`` text on SQLite, ``timestamptz`` on PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import enum
import time

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

# Explicit constraint names so Alembic migrations are reproducible on every engine.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> dt.datetime:
    """The current time as an aware UTC datetime (microsecond precision)."""
    return dt.datetime.now(dt.UTC)


SQLITE_TIMESTAMP = "%Y-%m-%d %H:%M:%S.%f"
"""How SQLAlchemy stores a (UTC) datetime on SQLite, for driver SQL that compares with stored values."""


def sqlite_timestamp(value: dt.datetime) -> str:
    """``value`` as SQLAlchemy stores it on SQLite: UTC, ``YYYY-MM-DD HH:MM:SS.ffffff``."""
    # SQLITE_TIMESTAMP's text, cheaper than strftime (and years below 1000 padded, as SQLAlchemy does)
    if value.tzinfo is not dt.UTC:  # utcnow()'s, most often: no conversion
        value = value.astimezone(dt.UTC)
    return value.replace(tzinfo=None).isoformat(" ", "microseconds")


_second: tuple[int, str] = (-1, "")  # the last whole second ``sqlite_now`` formatted, and its text


def sqlite_now() -> str:
    """``sqlite_timestamp(utcnow())``: the current time as SQLite stores timestamps, in about a fifth of its time.

    Every signed-in planned read binds it (``DriverDialect.bind_now``). The date and time to
    the second are formatted once per second; the microseconds (truncated, as
    ``datetime.now`` does) are added to them. Same clock as ``utcnow`` (the system's).
    """
    global _second
    seconds, nanoseconds = divmod(time.time_ns(), 1_000_000_000)
    if seconds != _second[0]:
        _second = (seconds, sqlite_timestamp(dt.datetime.fromtimestamp(seconds, dt.UTC))[:19])
    return f"{_second[1]}.{nanoseconds // 1000:06d}"


class Role(enum.StrEnum):
    """What a user may do (``graph/permissions.py``); stored by value in ``user.role``.

    Also the GraphQL enum ``Role`` (``graph/types/node.py`` registers it with Strawberry).
    """

    USER = "USER"
    MODERATOR = "MODERATOR"
    ADMIN = "ADMIN"


class User(SQLModel, table=True):
    """A registered user; ``email`` is unique case-insensitively, ``username`` exactly."""

    __tablename__ = "user"
    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=32, sa_column_kwargs={"unique": True}, nullable=False)
    email: str = Field(max_length=320, nullable=False)
    password_hash: str = Field(nullable=False)
    bio: str | None = Field(default=None)
    image: str | None = Field(default=None)
    role: str = Field(default=Role.USER.value, max_length=16, nullable=False)
    created_at: dt.datetime = Field(default_factory=utcnow, nullable=False)
    updated_at: dt.datetime = Field(default_factory=utcnow, nullable=False)
    # Set by verifyEmail; cleared when the email changes (a verification is of one address).
    email_verified: bool = Field(default=False, nullable=False, sa_column_kwargs={"server_default": sa.false()})
    # The current suspension (suspendUser): suspended while ``suspended_at`` is set and
    # ``suspended_until`` is null or in the future; unsuspendUser clears all four.
    # ``suspended_by_id`` is the suspender's id, without a foreign key (SQLite cannot add one
    # to an existing table in place): deleting a user sets it to null where it names them.
    suspended_at: dt.datetime | None = Field(default=None)
    suspended_until: dt.datetime | None = Field(default=None)
    suspension_reason: str | None = Field(default=None)
    suspended_by_id: int | None = Field(default=None)


class Follow(SQLModel, table=True):
    """``follower_id`` follows ``followee_id``."""

    __tablename__ = "follow"
    __table_args__ = (sa.Index("ix_follow_followee_id", "followee_id"),)

    follower_id: int = Field(foreign_key="user.id", primary_key=True, ondelete="CASCADE")
    followee_id: int = Field(foreign_key="user.id", primary_key=True, ondelete="CASCADE")
    created_at: dt.datetime = Field(default_factory=utcnow, nullable=False)


class Article(SQLModel, table=True):
    """An article; ``favorites_count`` is kept in step with ``favorite`` in the same transaction.

    ``tag_names`` is a copy of its tag names in the author's order (a JSON array), written with its
    ``article_tag`` rows in the same transaction (by ``createArticle`` and ``updateArticle`` beside
    ``set_tags`` in ``graph/mutations/articles.py``; the seed sets it): every page of articles shows
    it, and reading ``article_tag`` for it cost a subquery and a sort per article. ``article_tag``
    stays the source for filtering by tag.
    """

    __tablename__ = "article"
    __table_args__ = (
        sa.Index("ix_article_created_at", "created_at", "id"),
        sa.Index("ix_article_author_id", "author_id", "created_at", "id"),
        sa.Index("ix_article_favorites_count", "favorites_count", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    slug: str = Field(max_length=255, sa_column_kwargs={"unique": True}, nullable=False)
    title: str = Field(nullable=False)
    description: str = Field(nullable=False)
    body: str = Field(nullable=False)
    author_id: int = Field(foreign_key="user.id", nullable=False, ondelete="CASCADE")
    favorites_count: int = Field(default=0, nullable=False, sa_column_kwargs={"server_default": "0"})
    created_at: dt.datetime = Field(default_factory=utcnow, nullable=False)
    updated_at: dt.datetime = Field(default_factory=utcnow, nullable=False)
    tag_names: list[str] = Field(
        default_factory=list, sa_column=sa.Column(sa.JSON(), nullable=False, server_default="[]")
    )


class Tag(SQLModel, table=True):
    """A tag name, shared by the articles that carry it.

    ``articles_count`` is the number of its ``article_tag`` rows, kept in step in the same
    transaction by every write that adds or removes them (``set_tags`` in
    ``graph/mutations/articles.py``, which ``deleteArticle`` calls before the article goes; the
    seed sets it). A write that removes ``article_tag`` rows by cascade (deleting an article or a
    user) must lower the counts first. ``tags`` and ``popularTags`` then read the most used tags
    from ``ix_tag_articles_count`` instead of counting ``article_tag`` per request.
    """

    __tablename__ = "tag"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=40, sa_column_kwargs={"unique": True}, nullable=False)
    articles_count: int = Field(default=0, nullable=False, sa_column_kwargs={"server_default": "0"})


class ArticleTag(SQLModel, table=True):
    """Links an article to a tag; ``position`` keeps the author's order."""

    __tablename__ = "article_tag"
    __table_args__ = (sa.Index("ix_article_tag_tag_id", "tag_id", "article_id"),)

    article_id: int = Field(foreign_key="article.id", primary_key=True, ondelete="CASCADE")
    tag_id: int = Field(foreign_key="tag.id", primary_key=True, ondelete="CASCADE")
    position: int = Field(default=0, nullable=False, sa_column_kwargs={"server_default": "0"})


class Favorite(SQLModel, table=True):
    """``user_id`` favorited ``article_id`` at ``created_at``."""

    __tablename__ = "favorite"
    __table_args__ = (
        sa.Index("ix_favorite_article_id", "article_id"),
        sa.Index("ix_favorite_user_id", "user_id", "created_at", "article_id"),
    )

    user_id: int = Field(foreign_key="user.id", primary_key=True, ondelete="CASCADE")
    article_id: int = Field(foreign_key="article.id", primary_key=True, ondelete="CASCADE")
    created_at: dt.datetime = Field(default_factory=utcnow, nullable=False)


class Comment(SQLModel, table=True):
    """A comment on an article; listed oldest first (by id)."""

    __tablename__ = "comment"
    __table_args__ = (sa.Index("ix_comment_article_id", "article_id", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    body: str = Field(nullable=False)
    article_id: int = Field(foreign_key="article.id", nullable=False, ondelete="CASCADE")
    author_id: int = Field(foreign_key="user.id", nullable=False, ondelete="CASCADE")
    created_at: dt.datetime = Field(default_factory=utcnow, nullable=False)
    updated_at: dt.datetime = Field(default_factory=utcnow, nullable=False)


class RefreshToken(SQLModel, table=True):
    """A single-use refresh token, stored only as a SHA-256 hash.

    Tokens issued by rotation share the ``family_id`` of the login that started the chain, so
    presenting a spent token can revoke the whole family (OAuth 2.0 Security BCP, 4.14.2).
    """

    __tablename__ = "refresh_token"
    __table_args__ = (
        sa.Index("ix_refresh_token_user_id", "user_id"),
        sa.Index("ix_refresh_token_family_id", "family_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user.id", nullable=False, ondelete="CASCADE")
    family_id: str = Field(max_length=64, nullable=False)
    token_hash: str = Field(max_length=64, sa_column_kwargs={"unique": True}, nullable=False)
    created_at: dt.datetime = Field(default_factory=utcnow, nullable=False)
    expires_at: dt.datetime = Field(nullable=False)
    used_at: dt.datetime | None = Field(default=None)
    revoked_at: dt.datetime | None = Field(default=None)


# Emails compare case-insensitively (contract README, Authentication), so uniqueness does too.
sa.Index("uq_user_email_lower", sa.func.lower(User.__table__.c.email), unique=True)  # type: ignore[attr-defined]
# Most used first, ties by name: `ORDER BY articles_count DESC, name LIMIT n` reads n entries.
sa.Index("ix_tag_articles_count", Tag.__table__.c.articles_count.desc(), Tag.__table__.c.name)  # type: ignore[attr-defined]

metadata = SQLModel.metadata

# Core tables, for set-based reads that need no ORM objects.
user_table: sa.Table = User.__table__  # type: ignore[attr-defined]
follow_table: sa.Table = Follow.__table__  # type: ignore[attr-defined]
article_table: sa.Table = Article.__table__  # type: ignore[attr-defined]
tag_table: sa.Table = Tag.__table__  # type: ignore[attr-defined]
article_tag_table: sa.Table = ArticleTag.__table__  # type: ignore[attr-defined]
favorite_table: sa.Table = Favorite.__table__  # type: ignore[attr-defined]
comment_table: sa.Table = Comment.__table__  # type: ignore[attr-defined]
refresh_token_table: sa.Table = RefreshToken.__table__  # type: ignore[attr-defined]


class RateLimitEvent(SQLModel, table=True):
    """One counted attempt (a failed login, a registration, a refresh) in a rate-limit bucket.

    Kept in the database, not in process memory, so every server process sees the same counts.
    """

    __tablename__ = "rate_limit_event"
    __table_args__ = (sa.Index("ix_rate_limit_event_bucket", "bucket", "created_at"),)

    id: int | None = Field(default=None, primary_key=True)
    bucket: str = Field(max_length=400, nullable=False)
    created_at: dt.datetime = Field(default_factory=utcnow, nullable=False)


rate_limit_event_table: sa.Table = RateLimitEvent.__table__  # type: ignore[attr-defined]


class AccountToken(SQLModel, table=True):
    """A single-use token mailed to a user: a password reset or an email verification.

    Only the SHA-256 hex digest of the token is stored (like refresh tokens). ``purpose`` is
    ``password_reset`` or ``email_verification``; ``email`` is the address the token was mailed
    to, so a verification is void once the user changes address. Spent when ``used_at`` is set;
    void after ``expires_at``.
    """

    __tablename__ = "account_token"
    __table_args__ = (sa.Index("ix_account_token_user_id", "user_id", "purpose"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user.id", nullable=False, ondelete="CASCADE")
    purpose: str = Field(max_length=32, nullable=False)
    email: str = Field(max_length=320, nullable=False)
    token_hash: str = Field(max_length=64, sa_column_kwargs={"unique": True}, nullable=False)
    created_at: dt.datetime = Field(default_factory=utcnow, nullable=False)
    expires_at: dt.datetime = Field(nullable=False)
    used_at: dt.datetime | None = Field(default=None)


account_token_table: sa.Table = AccountToken.__table__  # type: ignore[attr-defined]


class MailOutbox(SQLModel, table=True):
    """One mail to send, written in the transaction that asked for it and sent after it commits.

    A row starts as a request (``kind`` and ``recipient``; ``user_id`` when the request knew the
    user); the mail worker renders it (creating the mailed token then, so a request answers the
    same whether or not an account has the address) into ``subject``, ``text_body`` and
    ``html_body``, then delivers it, retrying with backoff: ``attempts`` so far,
    ``next_attempt_at`` when a worker may take it next (a claim moves it forward, so two
    processes never send one mail), ``sent_at`` once delivered, ``last_error`` the latest
    failure. A request for an address no account has is deleted unsent.
    """

    __tablename__ = "mail_outbox"
    __table_args__ = (sa.Index("ix_mail_outbox_next_attempt_at", "sent_at", "next_attempt_at"),)

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=32, nullable=False)
    recipient: str = Field(max_length=320, nullable=False)
    user_id: int | None = Field(default=None, foreign_key="user.id", ondelete="CASCADE")
    subject: str | None = Field(default=None)
    text_body: str | None = Field(default=None)
    html_body: str | None = Field(default=None)
    created_at: dt.datetime = Field(default_factory=utcnow, nullable=False)
    attempts: int = Field(default=0, nullable=False, sa_column_kwargs={"server_default": "0"})
    next_attempt_at: dt.datetime = Field(default_factory=utcnow, nullable=False)
    sent_at: dt.datetime | None = Field(default=None)
    last_error: str | None = Field(default=None)


mail_outbox_table: sa.Table = MailOutbox.__table__  # type: ignore[attr-defined]


class CostBudget(SQLModel, table=True):
    """Points one bucket (a viewer or a client address) spent in one fixed window of the cost budget.

    One row per bucket and window, updated by an atomic upsert (``graph/admission/budget.py``), so every
    server process draws on the same budget.
    """

    __tablename__ = "cost_budget"

    bucket: str = Field(max_length=400, primary_key=True)
    window_start: dt.datetime = Field(primary_key=True)
    used: int = Field(nullable=False)


cost_budget_table: sa.Table = CostBudget.__table__  # type: ignore[attr-defined]
