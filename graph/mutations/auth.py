"""register, login, refreshToken, logout."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import sqlalchemy as sa
import strawberry
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.types import Info

from auth import ratelimit
from auth.audit import audit, email_hash
from auth.backend import SUSPENDED
from auth.passwords import hash_password_async, verify_password_async
from auth.tokens import hash_refresh_token, new_family_id, new_refresh_token
from db.models import Role, utcnow
from db.models import refresh_token_table as rt
from db.models import user_table as u
from db.users import suspended
from graph.context import Context
from graph.errors import FieldErrors, RateLimited, Unauthenticated
from graph.loaders import USER_COLUMNS
from graph.permissions import IsAuthenticated
from graph.responses.tags import USER, entity
from graph.types.user import UserType
from graph.validation import TAKEN, check_email, check_password, check_username

LOGIN_FAILED = "email or password is invalid"


@strawberry.type(
    description="A signed-in session, from register, login, refreshToken and resetPassword: a token pair and its user."
)
class AuthPayload:
    token: str = strawberry.field(description="Short-lived access token (JWT) for the Authorization header.")
    refresh_token: str = strawberry.field(description="Long-lived, single-use token for the refreshToken mutation.")
    user: UserType = strawberry.field(description="The signed-in user.")


@strawberry.input(description="A new account (register).")
class RegisterInput:
    username: str = strawberry.field(
        description='1 to 32 letters, digits, `_` or `-`; case-sensitive; unique ("has already been taken").'
    )
    email: str = strawberry.field(
        description="A valid address of at most 254 characters, trimmed; unique case-insensitively; private to the "
        "user and admins."
    )
    password: str = strawberry.field(
        description="8 to 256 characters; stored only as an argon2id hash, never returned."
    )


@strawberry.input(description="Credentials for login.")
class LoginInput:
    email: str = strawberry.field(description="The account's email, compared case-insensitively.")
    password: str = strawberry.field(description="The account's password.")


def client_address(info: Info[Context, None]) -> str:
    """The client's address as the server sees it (``unknown`` when there is none)."""
    request = info.context.request
    client = getattr(request, "client", None)
    return client.host if client is not None else "unknown"


async def issue_tokens(
    info: Info[Context, None], session: AsyncSession, user_id: int, role: str, family_id: str | None = None
) -> tuple[str, str]:
    """A new access token and a new refresh token (stored hashed) for ``user_id``."""
    tokens = info.context.app.tokens
    refresh = new_refresh_token()
    now = utcnow()
    await session.execute(
        sa.insert(rt).values(
            user_id=user_id,
            family_id=family_id or new_family_id(),
            token_hash=hash_refresh_token(refresh),
            created_at=now,
            expires_at=now + tokens.refresh_ttl,
        )
    )
    return tokens.issue_access_token(user_id, role, now), refresh


async def refuse_if_limited(
    session: AsyncSession, checks: list[tuple[str, str, ratelimit.Limit]], event: str, **fields: object
) -> None:
    """Raise ``RateLimited`` if any ``(label, bucket, limit)`` of ``checks`` is over its limit.

    The refusal is audited as ``event`` with ``fields``, the check's ``label`` (never the bucket:
    it may hold an email address) and ``retry_after`` in seconds.
    """
    for label, bucket, limit in checks:
        wait = await ratelimit.retry_after(session, bucket, limit)
        if wait is not None:
            audit(event, limit=label, retry_after=wait, **fields)
            raise RateLimited(retryAfter=wait)


@strawberry.type
class AuthMutations:
    @strawberry.mutation(
        description="Creates an account with the role USER and signs it in; no sign-in needed. BAD_USER_INPUT for "
        "an invalid or taken username or email or an invalid password; RATE_LIMITED beyond 100 registrations per "
        "client address per hour."
    )
    async def register(
        self,
        info: Info[Context, None],
        input: Annotated[RegisterInput, strawberry.argument(description="The new account's name, email and password.")],
    ) -> AuthPayload:
        errors = FieldErrors()
        username = check_username(errors, input.username)
        email = check_email(errors, input.email)
        password = check_password(errors, input.password)
        errors.raise_if_any()
        password_hash = await hash_password_async(password)
        address = client_address(info)
        bucket = f"register:addr:{address}"
        async with info.context.transaction() as session:
            await refuse_if_limited(
                session, [("address", bucket, ratelimit.REGISTRATIONS_PER_ADDRESS)], "register_limited", client=address
            )
            await check_unique(session, errors, username=username, email=email)
            errors.raise_if_any()
            now = utcnow()
            row = (
                await session.execute(
                    sa.insert(u)
                    .values(
                        username=username,
                        email=email,
                        password_hash=password_hash,
                        role=Role.USER.value,
                        created_at=now,
                        updated_at=now,
                    )
                    .returning(*USER_COLUMNS)
                )
            ).one()
            await ratelimit.record(session, bucket)
            token, refresh = await issue_tokens(info, session, row.id, row.role)
            info.context.touch(*entity(USER, row.id, row.username))  # a cached null for its username
        info.context.sign_in(row)
        return AuthPayload(token=token, refresh_token=refresh, user=UserType.from_row(row))

    @strawberry.mutation(
        description='Signs in with email and password. UNAUTHENTICATED "email or password is invalid" for any '
        'wrong pair, "account suspended" for a suspended account (only after the right password); RATE_LIMITED '
        "after 10 failures for one email or 50 for one client address within 15 minutes, until the window passes."
    )
    async def login(
        self,
        info: Info[Context, None],
        input: Annotated[LoginInput, strawberry.argument(description="The email and password.")],
    ) -> AuthPayload:
        email = input.email.strip().lower()
        address = client_address(info)
        email_bucket = f"login:email:{email}"
        address_bucket = f"login:addr:{address}"
        checks = [
            ("email", email_bucket, ratelimit.LOGIN_FAILURES_PER_EMAIL),
            ("address", address_bucket, ratelimit.LOGIN_FAILURES_PER_ADDRESS),
        ]
        who = {"email_hash": email_hash(email), "client": address}
        session = info.context.session
        await refuse_if_limited(session, checks, "login_locked", **who)
        columns = (*USER_COLUMNS, u.c.password_hash, suspended(u, utcnow()).label("suspended"))
        row = (await session.execute(sa.select(*columns).where(sa.func.lower(u.c.email) == email))).first()
        ok = await verify_password_async(row.password_hash if row is not None else None, input.password)
        if not ok or row is None:
            async with info.context.transaction() as session:
                await ratelimit.record(session, email_bucket, address_bucket)
            audit("login_failed", **who)
            raise Unauthenticated(LOGIN_FAILED)
        if row.suspended:
            # said only after the right password: the suspension is no one else's business
            audit("sign_in_refused", reason="suspended", via="login", user_id=row.id, client=address)
            raise Unauthenticated(SUSPENDED)
        async with info.context.transaction() as session:
            token, refresh = await issue_tokens(info, session, row.id, row.role)
        info.context.sign_in(row)
        return AuthPayload(token=token, refresh_token=refresh, user=UserType.from_row(row))

    @strawberry.mutation(
        description="Exchanges a refresh token for a new token pair; the old refresh token stops working."
    )
    async def refresh_token(
        self,
        info: Info[Context, None],
        refresh_token: Annotated[
            str,
            strawberry.argument(
                description="The refreshToken of the latest AuthPayload. UNAUTHENTICATED when unknown, spent, "
                "revoked or expired, or when its user is suspended; presenting a spent one revokes every token of "
                "its family. RATE_LIMITED beyond 60 refreshes per client address per 15 minutes."
            ),
        ],
    ) -> AuthPayload:
        address = client_address(info)
        bucket = f"refresh:addr:{address}"
        reused: Any = None  # the spent token's row, when one came back
        suspended_user: int | None = None  # the token's user, when they are suspended
        async with info.context.transaction() as session:
            await refuse_if_limited(
                session, [("address", bucket, ratelimit.REFRESHES_PER_ADDRESS)], "refresh_limited", client=address
            )
            await ratelimit.record(session, bucket)
            now = utcnow()
            stored = (
                await session.execute(
                    sa.select(rt, suspended(u, now).label("suspended"))
                    .join(u, u.c.id == rt.c.user_id)
                    .where(rt.c.token_hash == hash_refresh_token(refresh_token))
                )
            ).first()
            if stored is not None and stored.suspended:
                # before the token's own state: suspending revoked it, and the user should
                # learn why it no longer works
                suspended_user = stored.user_id
            elif stored is not None and stored.used_at is not None and stored.revoked_at is None:
                # A spent token came back: someone holds a copy. Revoke the whole family.
                await session.execute(
                    sa.update(rt)
                    .where(rt.c.family_id == stored.family_id, rt.c.revoked_at.is_(None))
                    .values(revoked_at=now)
                )
                reused = stored
            elif (
                stored is not None
                and stored.used_at is None
                and stored.revoked_at is None
                and (_aware(stored.expires_at) > now)
            ):
                await session.execute(sa.update(rt).where(rt.c.id == stored.id).values(used_at=now))
                row = (await session.execute(sa.select(*USER_COLUMNS).where(u.c.id == stored.user_id))).one()
                token, refresh = await issue_tokens(info, session, row.id, row.role, stored.family_id)
                info.context.sign_in(row)
                return AuthPayload(token=token, refresh_token=refresh, user=UserType.from_row(row))
        if suspended_user is not None:
            audit("sign_in_refused", reason="suspended", via="refresh", user_id=suspended_user, client=address)
            raise Unauthenticated(SUSPENDED)
        if reused is not None:
            # logged after the commit: the revocation it reports has happened
            audit("refresh_token_reuse_detected", user_id=reused.user_id, family_id=reused.family_id, client=address)
            raise Unauthenticated("refresh token was already used; its family is revoked")
        raise Unauthenticated("refresh token is invalid or expired")

    @strawberry.mutation(
        description=("Revokes the given refresh token, or every refresh token of the viewer when none is given."),
        permission_classes=[IsAuthenticated],
    )
    async def logout(
        self,
        info: Info[Context, None],
        refresh_token: Annotated[
            str | None,
            strawberry.argument(
                description="The refresh token to revoke; null: all of the viewer's. Returns false when nothing "
                "was revoked (an unknown or already revoked token, or another user's, which is left alone). "
                "Sign-in required."
            ),
        ] = None,
    ) -> bool:
        viewer_id = info.context.viewer_id
        condition = sa.and_(rt.c.user_id == viewer_id, rt.c.revoked_at.is_(None))
        if refresh_token is not None:
            condition = sa.and_(condition, rt.c.token_hash == hash_refresh_token(refresh_token))
        async with info.context.transaction() as session:
            result = await session.execute(sa.update(rt).where(condition).values(revoked_at=utcnow()))
        return bool(result.rowcount)  # type: ignore[attr-defined]


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


async def check_unique(
    session: AsyncSession,
    errors: FieldErrors,
    *,
    username: str | None,
    email: str | None,
    except_id: int | None = None,
) -> None:
    """Record "has already been taken" for a username or email another user has."""
    if username is not None:
        taken = sa.select(u.c.id).where(u.c.username == username)
        if except_id is not None:
            taken = taken.where(u.c.id != except_id)
        if (await session.execute(taken)).first() is not None:
            errors.add("username", TAKEN)
    if email is not None:
        taken = sa.select(u.c.id).where(sa.func.lower(u.c.email) == email.lower())
        if except_id is not None:
            taken = taken.where(u.c.id != except_id)
        if (await session.execute(taken)).first() is not None:
            errors.add("email", TAKEN)
