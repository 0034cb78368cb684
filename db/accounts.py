"""Data functions of mailed accounts: the mail outbox and the single-use tokens it carries.

Every function runs inside the caller's transaction (``Database.transaction``) or, for reads,
on the caller's session; none commits. Times are aware UTC datetimes. The tables are
``mail_outbox`` and ``account_token`` (``db/models.py`` says what each column means).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import account_token_table as tokens
from db.models import mail_outbox_table as outbox
from db.models import user_table as u
from db.users import suspended

PASSWORD_RESET = "password_reset"  # noqa: S105 - a kind of mail, not a password
EMAIL_VERIFICATION = "email_verification"
PURPOSES = (PASSWORD_RESET, EMAIL_VERIFICATION)
"""``mail_outbox.kind`` and ``account_token.purpose`` share these values: each mail carries one token."""

__all__ = [
    "EMAIL_VERIFICATION",
    "PASSWORD_RESET",
    "PURPOSES",
    "claim_mail",
    "create_account_token",
    "delete_mail",
    "due_mail_ids",
    "fill_mail",
    "find_account_token",
    "give_up_mail",
    "list_mail",
    "mail_by_id",
    "mark_mail_failed",
    "mark_mail_sent",
    "queue_mail",
    "spend_account_tokens",
    "user_for_mail",
]


async def queue_mail(
    session: AsyncSession, *, kind: str, recipient: str, user_id: int | None, now: dt.datetime
) -> None:
    """Add one unrendered mail request, due at once: ``kind`` to ``recipient`` (``user_id`` when known)."""
    await session.execute(
        sa.insert(outbox).values(
            kind=kind, recipient=recipient, user_id=user_id, created_at=now, attempts=0, next_attempt_at=now
        )
    )


async def due_mail_ids(session: AsyncSession, *, now: dt.datetime, max_attempts: int, limit: int) -> list[int]:
    """Ids of unsent mails due at ``now`` with attempts left (under ``max_attempts``), at most ``limit``."""
    rows = await session.execute(
        sa.select(outbox.c.id)
        .where(outbox.c.sent_at.is_(None), outbox.c.next_attempt_at <= now, outbox.c.attempts < max_attempts)
        .order_by(outbox.c.next_attempt_at, outbox.c.id)
        .limit(limit)
    )
    return [row.id for row in rows]


async def claim_mail(session: AsyncSession, *, mail_id: int, now: dt.datetime, lease: dt.timedelta) -> bool:
    """Take mail ``mail_id`` for one attempt; ``False`` when it is sent, not due, or another process took it.

    One conditional UPDATE, atomic on SQLite and PostgreSQL alike: it counts the attempt and
    moves ``next_attempt_at`` to ``now + lease``, so no other worker finds the row due until the
    lease runs out (the holder crashed) or the holder records the outcome. Whoever's UPDATE
    matched the row (rowcount 1) holds it.
    """
    result = await session.execute(
        sa.update(outbox)
        .where(outbox.c.id == mail_id, outbox.c.sent_at.is_(None), outbox.c.next_attempt_at <= now)
        .values(attempts=outbox.c.attempts + 1, next_attempt_at=now + lease)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def mail_by_id(session: AsyncSession, mail_id: int) -> Any:
    """The ``mail_outbox`` row ``mail_id`` (every column), or ``None``."""
    return (await session.execute(sa.select(outbox).where(outbox.c.id == mail_id))).first()


async def user_for_mail(session: AsyncSession, *, user_id: int | None, email: str) -> Any:
    """The user a mail request is for (``id``, ``username``, ``email``, ``email_verified``), or ``None``.

    By ``user_id`` when the request knew it, else by ``email`` compared case-insensitively (the
    way emails are unique, ``db/models.py``); ``email`` is lower-cased already.
    """
    columns = sa.select(u.c.id, u.c.username, u.c.email, u.c.email_verified)
    if user_id is not None:
        query = columns.where(u.c.id == user_id)
    else:
        query = columns.where(sa.func.lower(u.c.email) == email)
    return (await session.execute(query)).first()


async def create_account_token(
    session: AsyncSession,
    *,
    user_id: int,
    purpose: str,
    email: str,
    token_hash: str,
    now: dt.datetime,
    ttl: dt.timedelta,
) -> None:
    """Store the hash of a new single-use token for ``purpose``, mailed to ``email``, valid for ``ttl``."""
    await session.execute(
        sa.insert(tokens).values(
            user_id=user_id, purpose=purpose, email=email, token_hash=token_hash, created_at=now, expires_at=now + ttl
        )
    )


async def fill_mail(
    session: AsyncSession,
    *,
    mail_id: int,
    user_id: int,
    recipient: str,
    subject: str,
    text_body: str,
    html_body: str,
) -> None:
    """Record what mail ``mail_id`` says and to whom (the rendered request)."""
    await session.execute(
        sa.update(outbox)
        .where(outbox.c.id == mail_id)
        .values(user_id=user_id, recipient=recipient, subject=subject, text_body=text_body, html_body=html_body)
    )


async def delete_mail(session: AsyncSession, mail_id: int) -> None:
    """Drop mail ``mail_id`` unsent (a request for an address no account has)."""
    await session.execute(sa.delete(outbox).where(outbox.c.id == mail_id))


async def mark_mail_sent(session: AsyncSession, *, mail_id: int, now: dt.datetime, keep_bodies: bool) -> None:
    """Record the delivery of mail ``mail_id``; the bodies go unless ``keep_bodies``.

    The bodies hold a live token, and only its hash is meant to be at rest; development keeps
    them so ``conduit mail list`` can show the link.
    """
    values: dict[str, Any] = {"sent_at": now, "last_error": None}
    if not keep_bodies:
        values.update(text_body=None, html_body=None)
    await session.execute(sa.update(outbox).where(outbox.c.id == mail_id).values(**values))


async def mark_mail_failed(session: AsyncSession, *, mail_id: int, error: str, next_attempt_at: dt.datetime) -> None:
    """Record a failed attempt at mail ``mail_id`` (``error``, one line): due again at ``next_attempt_at``."""
    await session.execute(
        sa.update(outbox).where(outbox.c.id == mail_id).values(last_error=error[:1000], next_attempt_at=next_attempt_at)
    )


async def give_up_mail(session: AsyncSession, *, mail_id: int, error: str, attempts: int) -> None:
    """Leave mail ``mail_id`` unsent for good: ``last_error`` says why, ``attempts`` (the maximum).

    ``attempts`` at the maximum keeps it off the queue (``due_mail_ids``). The bodies are cleared:
    no live token stays at rest for a mail nobody will send.
    """
    await session.execute(
        sa.update(outbox)
        .where(outbox.c.id == mail_id)
        .values(last_error=error[:1000], attempts=attempts, text_body=None, html_body=None)
    )


async def find_account_token(
    session: AsyncSession, *, token_hash: str, purpose: str, now: dt.datetime, lock: bool
) -> Any:
    """The token row of ``token_hash`` for ``purpose`` joined with its user, or ``None``.

    Columns: ``token_id``, ``user_id``, ``token_email`` (the address it was mailed to),
    ``expires_at``, ``used_at``, ``user_email`` and ``suspended`` (the user is suspended at
    ``now``, ``db.users.suspended``). With ``lock`` the token row is locked (``FOR UPDATE`` on
    PostgreSQL; SQLite's write transaction holds the whole database), so two uses of one token
    serialize and the second sees it spent.
    """
    query = (
        sa.select(
            tokens.c.id.label("token_id"),
            tokens.c.user_id,
            tokens.c.email.label("token_email"),
            tokens.c.expires_at,
            tokens.c.used_at,
            u.c.email.label("user_email"),
            suspended(u, now).label("suspended"),
        )
        .join(u, u.c.id == tokens.c.user_id)
        .where(tokens.c.token_hash == token_hash, tokens.c.purpose == purpose)
    )
    if lock:
        query = query.with_for_update(of=tokens)
    return (await session.execute(query)).first()


async def spend_account_tokens(session: AsyncSession, *, user_id: int, purpose: str, now: dt.datetime) -> int:
    """Mark every unspent ``purpose`` token of ``user_id`` used at ``now``; how many were unspent.

    Using one reset link spends its siblings too: an older mail in the inbox must not reset the
    password again.
    """
    result = await session.execute(
        sa.update(tokens)
        .where(tokens.c.user_id == user_id, tokens.c.purpose == purpose, tokens.c.used_at.is_(None))
        .values(used_at=now)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def list_mail(session: AsyncSession, *, limit: int) -> Sequence[Any]:
    """The ``limit`` newest ``mail_outbox`` rows (every column), newest first."""
    return (await session.execute(sa.select(outbox).order_by(outbox.c.id.desc()).limit(limit))).all()
