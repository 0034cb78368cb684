"""updateViewer, followUser, unfollowUser, setUserRole."""

from __future__ import annotations

from typing import Annotated, Any

import sqlalchemy as sa
import strawberry
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.types import Info

from auth.audit import audit
from auth.passwords import hash_password_async
from db.dialect import insert_ignore
from db.models import Role, utcnow
from db.models import follow_table as fo
from db.models import refresh_token_table as rt
from db.models import user_table as u
from db.users import change_role
from graph.context import Context
from graph.errors import BadUserInput, FieldErrors, NotFound
from graph.loaders import USER_COLUMNS
from graph.mutations.auth import check_unique
from graph.mutations.touched import user_entity
from graph.permissions import IsAdmin, IsAuthenticated
from graph.responses.tags import USER, entity
from graph.types.user import UserType
from graph.validation import check_bio, check_email, check_image, check_password, check_username, given


@strawberry.input(description="Changes to the viewer's profile (updateViewer): an omitted field is kept.")
class UpdateViewerInput:
    username: str | None = strawberry.field(
        default=strawberry.UNSET,
        description="New username: 1 to 32 letters, digits, `_` or `-`, not taken; null keeps it.",
    )
    email: str | None = strawberry.field(
        default=strawberry.UNSET,
        description="New email: a valid address of at most 254 characters, not taken (case-insensitively); another "
        "address than the current one is unverified; null keeps it.",
    )
    password: str | None = strawberry.field(
        default=strawberry.UNSET,
        description="New password, 8 to 256 characters; revokes every refresh token of the viewer; null keeps it.",
    )
    bio: str | None = strawberry.field(
        default=strawberry.UNSET, description="New bio, at most 1,000 characters; null or blank clears it."
    )
    image: str | None = strawberry.field(
        default=strawberry.UNSET,
        description="New picture URL, http or https, at most 2,000 characters; null or blank clears it.",
    )


async def _user_by_username(session: AsyncSession, username: str) -> Any:
    row = (await session.execute(sa.select(*USER_COLUMNS).where(u.c.username == username))).first()
    if row is None:
        raise NotFound(f"no user named {username!r}")
    return row


async def _touch_follow(context: Context, session: AsyncSession, followee: Any) -> None:
    """A follow changes the followee's ``followersCount`` and the viewer's ``followingCount``."""
    context.touch(*entity(USER, followee.id, followee.username), *await user_entity(session, context.viewer_id))


@strawberry.type
class UserMutations:
    @strawberry.mutation(
        description="Changes the viewer's profile and returns it. Sign-in required; BAD_USER_INPUT for an invalid "
        "value or a taken username or email.",
        permission_classes=[IsAuthenticated],
    )
    async def update_viewer(
        self,
        info: Info[Context, None],
        input: Annotated[UpdateViewerInput, strawberry.argument(description="The fields to change.")],
    ) -> UserType:
        viewer_id = info.context.viewer_id
        errors = FieldErrors()
        values: dict[str, Any] = {}
        if given(input.username):
            values["username"] = check_username(errors, input.username)  # type: ignore[arg-type]
        if given(input.email):
            values["email"] = check_email(errors, input.email)  # type: ignore[arg-type]
            # a verification is of one address: a new one (not just new capitals) is unverified
            same = sa.func.lower(u.c.email) == values["email"].lower()
            values["email_verified"] = sa.case((same, u.c.email_verified), else_=sa.false())
        if given(input.password):
            check_password(errors, input.password)  # type: ignore[arg-type]
        if input.bio is not strawberry.UNSET:
            values["bio"] = check_bio(errors, input.bio)
        if input.image is not strawberry.UNSET:
            values["image"] = check_image(errors, input.image)
        errors.raise_if_any()
        if given(input.password):
            values["password_hash"] = await hash_password_async(input.password)  # type: ignore[arg-type]
        revoked: int | None = None  # refresh tokens revoked by a password change
        async with info.context.transaction() as session:
            await check_unique(
                session,
                errors,
                username=values.get("username"),
                email=values.get("email"),
                except_id=viewer_id,
            )
            errors.raise_if_any()
            old = await user_entity(session, viewer_id, lock=True)  # the name it had
            now = utcnow()
            row = (
                await session.execute(
                    sa.update(u).where(u.c.id == viewer_id).values(**values, updated_at=now).returning(*USER_COLUMNS)
                )
            ).one()
            # under its old and new username: lists filtered by `author` or `favoritedBy` name it
            info.context.touch(*entity(USER, row.id, row.username), *old)
            if "password_hash" in values:
                # A new password ends every session the old one opened.
                result = await session.execute(
                    sa.update(rt).where(rt.c.user_id == viewer_id, rt.c.revoked_at.is_(None)).values(revoked_at=now)
                )
                revoked = result.rowcount  # type: ignore[attr-defined]
        if revoked is not None:
            audit("password_changed", viewer_id=viewer_id, user_id=viewer_id, sessions_revoked=revoked)
        return UserType.from_row(row)

    @strawberry.mutation(
        description="The viewer follows the user (again is no error) and gets the user back. Sign-in required; "
        "NOT_FOUND for an unknown username; BAD_USER_INPUT for oneself.",
        permission_classes=[IsAuthenticated],
    )
    async def follow_user(
        self,
        info: Info[Context, None],
        username: Annotated[str, strawberry.argument(description="The user to follow.")],
    ) -> UserType:
        async with info.context.transaction() as session:
            row = await _user_by_username(session, username)
            if row.id == info.context.viewer_id:
                raise BadUserInput({"username": ["can't follow yourself"]})
            await session.execute(
                insert_ignore(session, fo).values(
                    follower_id=info.context.viewer_id, followee_id=row.id, created_at=utcnow()
                )
            )
            await _touch_follow(info.context, session, row)
        return UserType.from_row(row)

    @strawberry.mutation(
        description="The viewer stops following the user (not following is no error) and gets the user back. "
        "Sign-in required; NOT_FOUND for an unknown username.",
        permission_classes=[IsAuthenticated],
    )
    async def unfollow_user(
        self,
        info: Info[Context, None],
        username: Annotated[str, strawberry.argument(description="The user to stop following.")],
    ) -> UserType:
        async with info.context.transaction() as session:
            row = await _user_by_username(session, username)
            await session.execute(
                sa.delete(fo).where(fo.c.follower_id == info.context.viewer_id, fo.c.followee_id == row.id)
            )
            await _touch_follow(info.context, session, row)
        return UserType.from_row(row)

    @strawberry.mutation(description="Admins only.", permission_classes=[IsAuthenticated, IsAdmin])
    async def set_user_role(
        self,
        info: Info[Context, None],
        username: Annotated[
            str,
            strawberry.argument(
                description="The user whose role changes (NOT_FOUND when none). Sign-in required; FORBIDDEN unless "
                "the viewer is an admin."
            ),
        ],
        role: Annotated[Role, strawberry.argument(description="The new role; it applies to the user's next request.")],
    ) -> UserType:
        async with info.context.transaction() as session:
            change = await change_role(session=session, username=username, role=role)
            if change is None:
                raise NotFound(f"no user named {username!r}")
            row = (await session.execute(sa.select(*USER_COLUMNS).where(u.c.id == change.user_id))).one()
            info.context.touch(*entity(USER, row.id, row.username))
        audit(
            "role_changed",
            viewer_id=info.context.viewer_id,
            source="api",
            target_user_id=change.user_id,
            old_role=change.old_role.value,
            new_role=change.new_role.value,
        )
        return UserType.from_row(row)
