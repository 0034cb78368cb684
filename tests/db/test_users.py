"""The role change the API and ``conduit user set-role`` share."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from db.models import Role, user_table
from db.users import RoleChange, change_role
from tests.conftest import User


async def _change(app: Any, username: str, role: Role) -> RoleChange | None:
    db = app.state.conduit.db
    session = db.session()
    try:
        async with db.transaction(session):
            return await change_role(session=session, username=username, role=role)
    finally:
        await session.close()


async def _row(app: Any, username: str) -> Any:
    async with app.state.conduit.db.engine.connect() as connection:
        statement = sa.select(user_table.c.id, user_table.c.role, user_table.c.updated_at)
        return (await connection.execute(statement.where(user_table.c.username == username))).one()


async def test_a_role_change_reports_the_old_role_and_touches_updated_at(app: Any, alice: User) -> None:
    before = await _row(app, "alice")
    change = await _change(app, "alice", Role.MODERATOR)
    after = await _row(app, "alice")
    assert change == RoleChange(user_id=before.id, old_role=Role.USER, new_role=Role.MODERATOR)
    assert after.role == "MODERATOR" and after.updated_at > before.updated_at
    assert await _change(app, "alice", Role.ADMIN) == RoleChange(before.id, Role.MODERATOR, Role.ADMIN)


async def test_no_such_user_changes_nothing(app: Any, alice: User) -> None:
    assert await _change(app, "nobody", Role.ADMIN) is None
    assert (await _row(app, "alice")).role == "USER"
