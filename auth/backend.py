"""Turns an ``Authorization`` header (or a WebSocket ``connection_init`` payload) into a viewer.

No header means anonymous; a header with a bad token is an error, never anonymous (contract
README, Authentication).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass

from auth.audit import audit
from auth.tokens import InvalidToken, TokenService
from db.dialect import Compiled, DriverDialect, bind, compile_statement
from db.engine import Database
from db.models import Role, utcnow
from db.users import viewer_by_id

SCHEMES = ("bearer", "token")


SUSPENDED = "account suspended"
"""The message of every refusal of a suspended user (tokens, WebSocket, login, refresh)."""
ROLES = {role.value: role for role in Role}
"""``Role`` by stored value: a dict lookup, where calling the enum costs a few µs per signed-in request."""


class AuthenticationFailed(Exception):
    """The request carried credentials that do not identify a current user."""


@dataclass(frozen=True)
class Viewer:
    """The authenticated user of a request, with the role read from the database now."""

    id: int
    username: str
    role: Role


def token_from_header(value: str | None) -> str | None:
    """The token of an ``Authorization`` header value (``Bearer x`` or ``Token x``).

    Returns ``None`` for a missing or blank header; raises ``AuthenticationFailed`` for any
    other scheme or a missing token.
    """
    if value is None or not value.strip():
        return None
    scheme, _, token = value.strip().partition(" ")
    token = token.strip()
    if scheme.lower() not in SCHEMES or not token or " " in token:
        raise AuthenticationFailed("the Authorization header must be 'Bearer <token>'")
    return token


def header_from_params(params: object) -> str | None:
    """The ``Authorization`` value of a ``connection_init`` payload, whatever its key's case."""
    if not isinstance(params, Mapping):
        return None
    for key, value in params.items():
        if isinstance(key, str) and key.lower() == "authorization":
            if not isinstance(value, str):
                raise AuthenticationFailed("the Authorization value must be a string")
            return value
    return None


async def authenticate(header: str | None, tokens: TokenService, db: Database) -> Viewer | None:
    """The viewer an ``Authorization`` header names, ``None`` when there is no header.

    Raises ``AuthenticationFailed`` for a malformed header, a malformed, expired, forged,
    foreign-algorithm or unknown-key token, for a token whose user no longer exists and for a
    suspended user's token (message ``SUSPENDED``). Each refusal is audited as
    ``token_rejected`` with its reason (never the token).
    """
    try:
        token = token_from_header(header)
    except AuthenticationFailed:
        audit("token_rejected", reason="bad_header")
        raise
    if token is None:
        return None
    try:
        user_id = tokens.decode_access_token(token)
    except InvalidToken as error:
        audit("token_rejected", reason=error.reason, kid=error.kid)
        raise AuthenticationFailed("the access token is invalid or expired") from error
    # driver SQL: one short read on every signed-in request; the role and the suspension come
    # with it, so both take effect at once without a statement of their own
    values = {"id": user_id, "now": DriverDialect(db.is_sqlite).bind_time(utcnow())}
    (rows,) = await db.fetch_raw([bind(_viewer_by_id(db.is_sqlite), values)])
    if not rows:
        # a correctly signed token outliving its user: worth telling apart from forgeries
        audit("token_rejected", reason="deleted_user", user_id=user_id)
        raise AuthenticationFailed("the access token's user no longer exists")
    pk, username, role, suspended = rows[0]
    if suspended:
        audit("token_rejected", reason="suspended", user_id=user_id)
        raise AuthenticationFailed(SUSPENDED)
    return Viewer(id=pk, username=username, role=ROLES[role])


@functools.cache
def _viewer_by_id(is_sqlite: bool) -> Compiled:
    """``db.users.viewer_by_id`` compiled for the driver once (parameters ``id`` and ``now``)."""
    return compile_statement(viewer_by_id(), is_sqlite)
