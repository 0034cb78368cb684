"""requestPasswordReset, resetPassword, requestEmailVerification, verifyEmail (contract-next, Accounts).

The requests only queue a mail in ``mail_outbox`` inside their transaction and wake the mail
worker after the commit (``auth/mail.py``): no request waits for SMTP, and a mail server that is
down loses nothing. The worker creates the mailed token; these resolvers only spend it.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import sqlalchemy as sa
import strawberry
from strawberry.types import Info

from auth import ratelimit
from auth.audit import audit, email_hash
from auth.backend import SUSPENDED
from auth.passwords import hash_password_async
from auth.tokens import hash_account_token
from db import accounts
from db.models import refresh_token_table as rt
from db.models import user_table as u
from db.models import utcnow
from graph.context import Context
from graph.errors import BadUserInput, FieldErrors, Unauthenticated
from graph.loaders import USER_COLUMNS
from graph.mutations.auth import AuthPayload, client_address, issue_tokens, refuse_if_limited  # one refusal rule
from graph.permissions import IsAuthenticated
from graph.responses.tags import USER, entity
from graph.types.user import UserType
from graph.validation import check_email, check_password

INVALID_OR_EXPIRED = "is invalid or has expired"
"""The one answer for a token that is unknown, spent, expired, of the other purpose, or for an old address."""


def _bad_token() -> BadUserInput:
    return BadUserInput({"token": [INVALID_OR_EXPIRED]})


def _usable(token: Any, now: dt.datetime) -> bool:
    """Whether a ``db.accounts.find_account_token`` row may be spent at ``now``."""
    return token is not None and token.used_at is None and _aware(token.expires_at) > now


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


@strawberry.type
class AccountMutations:
    """The account mutations of contract-next, merged into ``Mutation`` by ``graph/schema.py``."""

    @strawberry.mutation(
        description=(
            "Starts a password reset: mails a single-use link to the address if an account has it.\n"
            "Always true (no account enumeration); rate-limited per address and per email."
        )
    )
    async def request_password_reset(
        self,
        info: Info[Context, None],
        email: Annotated[
            str,
            strawberry.argument(
                description="The account's email address; only its shape is checked (BAD_USER_INPUT when invalid). "
                "RATE_LIMITED beyond 5 requests per email or 20 per client address per hour. No sign-in needed."
            ),
        ],
    ) -> bool:
        errors = FieldErrors()
        address = check_email(errors, email).lower()
        errors.raise_if_any()  # says nothing of accounts: only the address's shape
        client = client_address(info)
        email_bucket = f"reset:email:{address}"
        client_bucket = f"reset:addr:{client}"
        who = {"email_hash": email_hash(address), "client": client}
        # No account enumeration: these statements are the same whether or not an account has
        # the address, so the answer and its time are too. The worker finds the account later.
        async with info.context.transaction() as session:
            await refuse_if_limited(
                session,
                [
                    ("email", email_bucket, ratelimit.RESET_REQUESTS_PER_EMAIL),
                    ("address", client_bucket, ratelimit.RESET_REQUESTS_PER_ADDRESS),
                ],
                "password_reset_limited",
                **who,
            )
            await ratelimit.record(session, email_bucket, client_bucket)
            await accounts.queue_mail(
                session, kind=accounts.PASSWORD_RESET, recipient=address, user_id=None, now=utcnow()
            )
        _wake_mail(info, blur=True)  # the rendering must not lengthen this answer
        audit("password_reset_requested", **who)
        return True

    @strawberry.mutation(
        description=(
            "Sets a new password with the mailed token (single use, 30 minutes by default); revokes every\n"
            "refresh token of the user and returns a fresh pair."
        )
    )
    async def reset_password(
        self,
        info: Info[Context, None],
        token: Annotated[
            str,
            strawberry.argument(
                description="The token of the mailed link (BAD_USER_INPUT when unknown, spent or expired; "
                'UNAUTHENTICATED "account suspended" for a suspended user). No sign-in needed.'
            ),
        ],
        password: Annotated[
            str, strawberry.argument(description="The new password, 8 to 256 characters (BAD_USER_INPUT otherwise).")
        ],
    ) -> AuthPayload:
        errors = FieldErrors()
        check_password(errors, password)
        errors.raise_if_any()
        token_hash = hash_account_token(token)
        purpose = accounts.PASSWORD_RESET
        # Read first, so a wrong token costs one lookup and never a password hash (argon2 is
        # slow on purpose); the transaction below checks again under a lock.
        found = await accounts.find_account_token(
            info.context.session, token_hash=token_hash, purpose=purpose, now=utcnow(), lock=False
        )
        if not _usable(found, utcnow()):
            raise _bad_token()
        if found.suspended:
            raise Unauthenticated(SUSPENDED)
        password_hash = await hash_password_async(password)
        async with info.context.transaction() as session:
            now = utcnow()
            found = await accounts.find_account_token(
                session, token_hash=token_hash, purpose=purpose, now=now, lock=True
            )
            if not _usable(found, now):
                raise _bad_token()  # spent by a concurrent request, or expired while hashing
            if found.suspended:
                raise Unauthenticated(SUSPENDED)
            user_id = found.user_id
            # every reset link of the user dies with this one (an older mail must not reset again)
            await accounts.spend_account_tokens(session, user_id=user_id, purpose=purpose, now=now)
            row = (
                await session.execute(
                    sa.update(u)
                    .where(u.c.id == user_id)
                    .values(password_hash=password_hash, updated_at=now)
                    .returning(*USER_COLUMNS)
                )
            ).one()
            # whoever knew the old password may hold sessions: end them all
            revoked = await session.execute(
                sa.update(rt).where(rt.c.user_id == user_id, rt.c.revoked_at.is_(None)).values(revoked_at=now)
            )
            access, refresh = await issue_tokens(info, session, row.id, row.role)
        info.context.sign_in(row)
        audit("password_reset_done", user_id=user_id, sessions_revoked=revoked.rowcount)  # type: ignore[attr-defined]
        return AuthPayload(token=access, refresh_token=refresh, user=UserType.from_row(row))

    @strawberry.mutation(
        description="Mails the viewer a single-use verification link. Authenticated.",
        permission_classes=[IsAuthenticated],
    )
    async def request_email_verification(self, info: Info[Context, None]) -> bool:
        viewer_id = info.context.viewer_id
        bucket = f"verify:user:{viewer_id}"
        async with info.context.transaction() as session:
            await refuse_if_limited(
                session,
                [("user", bucket, ratelimit.VERIFICATION_REQUESTS_PER_USER)],
                "email_verification_limited",
                viewer_id=viewer_id,
            )
            email = (await session.execute(sa.select(u.c.email).where(u.c.id == viewer_id))).scalar_one()
            await ratelimit.record(session, bucket)
            await accounts.queue_mail(
                session, kind=accounts.EMAIL_VERIFICATION, recipient=email, user_id=viewer_id, now=utcnow()
            )
        _wake_mail(info)
        audit("email_verification_requested", viewer_id=viewer_id, user_id=viewer_id)
        return True

    @strawberry.mutation(description="Marks the email verified (single-use token, 24 hours by default).")
    async def verify_email(
        self,
        info: Info[Context, None],
        token: Annotated[
            str,
            strawberry.argument(
                description="The token of the mailed link (BAD_USER_INPUT when unknown, spent, expired, or for an "
                "address the user has changed since). No sign-in needed."
            ),
        ],
    ) -> UserType:
        async with info.context.transaction() as session:
            now = utcnow()
            found = await accounts.find_account_token(
                session, token_hash=hash_account_token(token), purpose=accounts.EMAIL_VERIFICATION, now=now, lock=True
            )
            # a verification is of the address it was mailed to: void once the user changed it
            if not _usable(found, now) or found.token_email.lower() != found.user_email.lower():
                raise _bad_token()
            await accounts.spend_account_tokens(
                session, user_id=found.user_id, purpose=accounts.EMAIL_VERIFICATION, now=now
            )
            row = (
                await session.execute(
                    sa.update(u)
                    .where(u.c.id == found.user_id)
                    .values(email_verified=True, updated_at=now)
                    .returning(*USER_COLUMNS)
                )
            ).one()
            info.context.touch(*entity(USER, row.id, row.username))
        audit("email_verified", viewer_id=info.context.viewer_id, user_id=row.id)
        return UserType.from_row(row)


def _wake_mail(info: Info[Context, None], *, blur: bool = False) -> None:
    """Tell this process's mail worker a committed row waits (other processes poll); ``blur``: see ``wake``."""
    if info.context.app.mail is not None:
        info.context.app.mail.wake(blur=blur)
