"""suspendUser, unsuspendUser, deleteViewer, deleteUser: moderation and account deletion (issue 14).

The data work is in ``db/users.py`` (shared with the ``conduit user`` commands); the role rules
are permission classes (``graph/permissions.py``), checked again on the locked row inside the
transaction so a concurrent role change cannot slip between check and write. Each mutation is
one transaction and publishes ``SESSIONS_CLOSED`` after its commit, so every process closes the
user's WebSockets; their access tokens are refused by the next viewer read (``auth/backend.py``).

Choices where the contract is silent: suspending oneself is ``FORBIDDEN`` (a rule about who
may act). Deleting the last admin is ``BAD_USER_INPUT``, on ``username`` for ``deleteUser`` and on
``viewer`` for ``deleteViewer`` (which names nobody): the request is allowed, but the state of
the data refuses it, as following oneself does. A suspension reason may not be blank (at most
1,000 characters); ``unsuspendUser`` of a user who is not suspended is not an error.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import sqlalchemy as sa
import strawberry
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.types import Info

from auth.audit import audit
from auth.passwords import verify_password_async
from db.broker import sessions_closed
from db.models import Role
from db.models import user_table as u
from db.users import DeletedUser, LastAdmin, SuspensionInPast, delete_user, suspend_user, unsuspend_user
from graph.context import Context
from graph.errors import BadUserInput, FieldErrors, Forbidden, NotFound, Unauthenticated
from graph.ids import to_global_id
from graph.loaders import USER_COLUMNS
from graph.permissions import CanSuspend, IsAdmin, IsAuthenticated, IsStaff, may_suspend
from graph.responses.tags import USER, entity
from graph.types.user import UserType
from graph.validation import check_text

REASON_MAX = 1_000
"""Longest suspension reason, in characters (as a bio)."""

LAST_ADMIN = "is the only admin; make another admin first"


async def _locked_user(session: AsyncSession, username: str) -> Any:
    """The row of ``username`` (``USER_COLUMNS``), locked for this transaction; ``NotFound`` when none."""
    statement = sa.select(*USER_COLUMNS).where(u.c.username == username).with_for_update()
    row = (await session.execute(statement)).first()
    if row is None:
        raise NotFound(f"no user named {username!r}")
    return row


async def _user_by_id(session: AsyncSession, user_id: int) -> Any:
    """The row (``USER_COLUMNS``) of ``user_id`` as this transaction now sees it."""
    return (await session.execute(sa.select(*USER_COLUMNS).where(u.c.id == user_id))).one()


def _check_may_suspend(info: Info[Context, None], row: Any) -> None:
    """``may_suspend`` again on the locked row: its role may have changed since the permission check."""
    viewer = info.context.viewer
    if viewer is None or not may_suspend(viewer.id, viewer.role, row.id, Role(row.role)):
        raise Forbidden(CanSuspend.message)


def audit_deleted(deleted: DeletedUser, *, source: str, by: str, viewer_id: int | None = None) -> None:
    """The ``user_deleted`` audit event; ``source``: ``api`` or ``cli``, ``by``: ``self``, ``admin`` or ``operator``."""
    audit(
        "user_deleted",
        viewer_id=viewer_id,
        source=source,
        target_user_id=deleted.user_id,
        by=by,
        **deleted.counts(),
    )


@strawberry.type
class ModerationMutations:
    @strawberry.mutation(
        description=(
            "Moderators and admins: suspends an account until `until` (forever when null). The user's\n"
            "refresh tokens are revoked; their access tokens stop working at once; login is refused.\n"
            "Admins cannot be suspended by moderators."
        ),
        permission_classes=[IsAuthenticated, IsStaff, CanSuspend],
    )
    async def suspend_user(
        self,
        info: Info[Context, None],
        username: Annotated[
            str,
            strawberry.argument(
                description="The user to suspend (NOT_FOUND when none). Sign-in required; FORBIDDEN for viewers "
                "with the role USER, for oneself, and for a moderator or admin unless the viewer is an admin. A "
                "current suspension is replaced."
            ),
        ],
        reason: Annotated[
            str,
            strawberry.argument(
                description="Why, for the user and staff to read (Suspension.reason): not blank, at most 1,000 "
                "characters, trimmed (BAD_USER_INPUT otherwise)."
            ),
        ],
        until: Annotated[
            dt.datetime | None,
            strawberry.argument(
                description="When the suspension ends; null: until lifted. Not in the future: BAD_USER_INPUT."
            ),
        ] = None,
    ) -> UserType:
        errors = FieldErrors()
        reason = check_text(errors, "reason", reason, REASON_MAX).strip()
        errors.raise_if_any()
        async with info.context.transaction() as session:
            row = await _locked_user(session, username)
            _check_may_suspend(info, row)
            try:
                change = await suspend_user(
                    session=session, user_id=row.id, reason=reason, until=until, by_id=info.context.viewer_id
                )
            except SuspensionInPast as error:
                raise BadUserInput({"until": [str(error)]}) from None
            info.context.publish_after_commit(sessions_closed(row.id, "account suspended"))
            row = await _user_by_id(session, row.id)  # the payload shows the suspension just set
            info.context.touch(*entity(USER, row.id, row.username))
        audit(
            "user_suspended",
            viewer_id=info.context.viewer_id,
            source="api",
            target_user_id=row.id,
            until=change.until.isoformat() if change.until is not None else None,
            sessions_revoked=change.sessions_revoked,
        )
        return UserType.from_row(row)

    @strawberry.mutation(
        description="Moderators and admins: lifts a suspension.",
        permission_classes=[IsAuthenticated, IsStaff, CanSuspend],
    )
    async def unsuspend_user(
        self,
        info: Info[Context, None],
        username: Annotated[
            str,
            strawberry.argument(
                description="The user whose suspension ends (NOT_FOUND when none; FORBIDDEN as for suspendUser); "
                "one who is not suspended is no error."
            ),
        ],
    ) -> UserType:
        async with info.context.transaction() as session:
            row = await _locked_user(session, username)
            _check_may_suspend(info, row)
            change = await unsuspend_user(session=session, user_id=row.id)
            row = await _user_by_id(session, row.id)  # the payload shows the suspension gone
            info.context.touch(*entity(USER, row.id, row.username))
        audit(
            "user_unsuspended",
            viewer_id=info.context.viewer_id,
            source="api",
            target_user_id=row.id,
            was_suspended=change.was_suspended,
        )
        return UserType.from_row(row)

    @strawberry.mutation(
        description=(
            "Deletes the viewer's own account and everything they wrote (articles, comments, favorites,\n"
            "follows, tokens), after checking the password. Counters of other rows stay right."
        ),
        permission_classes=[IsAuthenticated],
    )
    async def delete_viewer(
        self,
        info: Info[Context, None],
        password: Annotated[
            str,
            strawberry.argument(
                description='The viewer\'s current password (BAD_USER_INPUT "is invalid" when wrong). Sign-in '
                "required; the last admin cannot delete themself (BAD_USER_INPUT on `viewer`)."
            ),
        ],
    ) -> bool:
        viewer_id = info.context.viewer_id
        if viewer_id is None:  # IsAuthenticated ran; for the type checker
            raise Unauthenticated()
        session = info.context.session
        stored = (await session.execute(sa.select(u.c.password_hash).where(u.c.id == viewer_id))).scalar()
        # the hash is checked outside the transaction: it takes tens of milliseconds, and on
        # SQLite the transaction holds the one write lock
        if not await verify_password_async(stored, password):
            raise BadUserInput({"password": ["is invalid"]})
        async with info.context.transaction() as session:
            try:
                deleted = await delete_user(session=session, user_id=viewer_id)
            except LastAdmin:
                raise BadUserInput({"viewer": [LAST_ADMIN]}) from None
            if deleted is None:  # deleted by someone else meanwhile
                raise NotFound("the viewer's account no longer exists")
            info.context.publish_after_commit(sessions_closed(viewer_id, "account deleted"))
        audit_deleted(deleted, source="api", by="self", viewer_id=viewer_id)
        info.context.viewer = None  # the rest of the operation reads as nobody: the account is gone
        return True

    @strawberry.mutation(
        description="Admins: deletes an account as deleteViewer does. Returns the deleted user's ID.",
        permission_classes=[IsAuthenticated, IsAdmin],
    )
    async def delete_user(
        self,
        info: Info[Context, None],
        username: Annotated[
            str,
            strawberry.argument(
                description="The user to delete (NOT_FOUND when none; BAD_USER_INPUT when they are the last admin). "
                "Sign-in required; FORBIDDEN unless the viewer is an admin."
            ),
        ],
    ) -> strawberry.ID:
        async with info.context.transaction() as session:
            # not locked here: delete_user locks the admins' rows before the user's
            row = (await session.execute(sa.select(*USER_COLUMNS).where(u.c.username == username))).first()
            if row is None:
                raise NotFound(f"no user named {username!r}")
            try:
                deleted = await delete_user(session=session, user_id=row.id)
            except LastAdmin:
                raise BadUserInput({"username": [LAST_ADMIN]}) from None
            if deleted is None:  # deleted by someone else meanwhile
                raise NotFound(f"no user named {username!r}")
            info.context.publish_after_commit(sessions_closed(row.id, "account deleted"))
        by = "self" if row.id == info.context.viewer_id else "admin"
        audit_deleted(deleted, source="api", by=by, viewer_id=info.context.viewer_id)
        return strawberry.ID(to_global_id("User", row.id))
