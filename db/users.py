"""Data functions on users shared by the API and the ``conduit`` command."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Role, user_table, utcnow

Alias = Any
"""``user_table`` or an alias of it: ``alias.c.<column>``."""

__all__ = ["RoleChange", "change_role", "suspended"]


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
