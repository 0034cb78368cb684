"""What mutations say they changed, for the response cache's purge (``Context.touch``)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import user_table as u
from graph.responses.tags import USER, entity


async def user_entity(session: AsyncSession, user_id: int | None, *, lock: bool = False) -> tuple[str, ...]:
    """Both tags of user ``user_id`` under the username this transaction reads (``entity``); none for ``None``.

    Read here, not taken from the viewer: a WebSocket connection's viewer is read once, and a
    rename may have committed since. ``lock``: ``FOR UPDATE`` (PostgreSQL), for a transaction
    that renames the user, so that the name read is the one it replaces.
    """
    if user_id is None:
        return ()
    statement = sa.select(u.c.username).where(u.c.id == user_id)
    name = (await session.execute(statement.with_for_update() if lock else statement)).scalar()
    return entity(USER, user_id, name)
