"""Tag counters: ``tag.articles_count`` follows every write that adds or removes ``article_tag`` rows."""

from __future__ import annotations

from collections.abc import Mapping

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import tag_table as t

__all__ = ["change_articles_count"]


async def change_articles_count(session: AsyncSession, deltas: Mapping[int, int]) -> None:
    """Add ``deltas[tag_id]`` (links gained, negative for links lost) to each tag's ``articles_count``.

    Runs in the caller's write transaction. On PostgreSQL the tag rows are locked first, in id
    order and in a statement of their own: writers whose tags overlap then queue instead of
    deadlocking, and the ``UPDATE``'s fresh snapshot sees the rows as last committed (locked and
    updated in one statement, it re-locked them through their older versions, which other
    waiters held: deadlocks under concurrent writes). SQLite has one writer at a time. One
    ``UPDATE`` for all the tags, whatever their deltas.
    """
    changed = {tag_id: delta for tag_id, delta in deltas.items() if delta}
    if not changed:
        return
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        # FOR NO KEY UPDATE: article_tag's foreign-key checks (FOR KEY SHARE) still pass
        ids = sorted(changed)
        await session.execute(sa.select(t.c.id).where(t.c.id.in_(ids)).order_by(t.c.id).with_for_update(key_share=True))
    by_delta: dict[int, list[int]] = {}
    for tag_id, delta in changed.items():
        by_delta.setdefault(delta, []).append(tag_id)
    if len(by_delta) == 1:
        ((delta, _ids),) = by_delta.items()
        step: sa.ColumnElement[int] | int = delta
    else:
        step = sa.case(*((t.c.id.in_(sorted(ids)), delta) for delta, ids in sorted(by_delta.items())), else_=0)
    await session.execute(
        sa.update(t).where(t.c.id.in_(sorted(changed))).values(articles_count=t.c.articles_count + step)
    )
