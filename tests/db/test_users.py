"""The role change the API and ``conduit user set-role`` share."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from db.models import Role, user_table
from db.users import RoleChange, change_role, list_users
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


async def test_list_users_matches_prefixes_literally(app: Any, users: Any) -> None:
    """``search`` is a prefix, not a pattern: ``_`` and ``%`` match only themselves."""
    for name, email in [("a_b", None), ("axb", None), ("ac", "a%c@example.com"), ("abc", None)]:
        await users.register(name, email=email)
    session = app.state.conduit.db.session()
    try:
        found = {
            search: sorted(row.username for row in await list_users(session=session, search=search))
            for search in ("a_", "A%", "ab", "axb@EXAMPLE")
        }
    finally:
        await session.close()
    assert found == {"a_": ["a_b"], "A%": ["ac"], "ab": ["abc"], "axb@EXAMPLE": ["axb"]}
