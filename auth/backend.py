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
from db.models import Role
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
    user_id = token_user_id(header, tokens)
    return None if user_id is None else await confirm_viewer(user_id, db)


def token_user_id(header: str | None, tokens: TokenService) -> int | None:
    """The user id an ``Authorization`` header's access token names, ``None`` without a header.

    Raises ``AuthenticationFailed`` (audited) for a malformed header or an invalid token; the
    user's row is not read (``confirm_viewer``).
    """
    try:
        token = token_from_header(header)
    except AuthenticationFailed:
        audit("token_rejected", reason="bad_header")
        raise
    if token is None:
        return None
    try:
        return tokens.decode_access_token(token)
    except InvalidToken as error:
        audit("token_rejected", reason=error.reason, kid=error.kid)
        raise AuthenticationFailed("the access token is invalid or expired") from error


async def confirm_viewer(user_id: int, db: Database) -> Viewer:
    """The viewer of a valid token of ``user_id``, as its row says now.

    Raises ``AuthenticationFailed`` (audited) when the user no longer exists or is suspended.
    """
    # driver SQL: one short read; the role and the suspension come with it, so both take
    # effect at once without a statement of their own
    values = {"id": user_id, "now": DriverDialect(db.is_sqlite).bind_now()}
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


class KnownViewers:
    """The viewer each token's user id was last confirmed as, for up to ``size`` users (oldest forgotten first).

    A guess, never an answer: a request signed in as a known user runs as this viewer and the
    guess is checked against the user's row in the same statement as its first read
    (``graph/execution/planned``, ``viewer_check``), or by ``authenticate`` before anything
    else. A wrong guess (a new role or username, a suspension, a deleted user) costs that
    request the ordinary check and, for a new role, a second run; it is never answered.
    """

    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self._viewers: dict[int, Viewer] = {}

    def get(self, user_id: int) -> Viewer | None:
        """The viewer ``user_id`` was last confirmed as, or ``None``."""
        return self._viewers.get(user_id)

    def remember(self, viewer: Viewer) -> None:
        """Keep ``viewer`` as confirmed now."""
        viewers = self._viewers
        viewers.pop(viewer.id, None)
        if len(viewers) >= self.size:
            del viewers[next(iter(viewers))]  # the oldest confirmation (dicts keep insertion order)
        viewers[viewer.id] = viewer

    def forget(self, user_id: int) -> None:
        """Drop ``user_id``'s viewer (its token was refused)."""
        self._viewers.pop(user_id, None)

    async def confirm(self, user_id: int, db: Database) -> Viewer:
        """``confirm_viewer``, kept by its outcome: the viewer read is remembered, a refused one forgotten.

        Raises as ``confirm_viewer``; any other error of the read leaves the map as it was.
        """
        try:
            viewer = await confirm_viewer(user_id, db)
        except AuthenticationFailed:
            self.forget(user_id)
            raise
        self.remember(viewer)
        return viewer


async def authenticate_deferred(
    header: str | None, tokens: TokenService, db: Database, known: KnownViewers
) -> tuple[Viewer | None, bool]:
    """The viewer an ``Authorization`` header names, and whether it is still to be confirmed.

    The header and the token are checked now, as by ``authenticate``, with its errors. A
    token of a user in ``known`` then costs no statement: its viewer comes back unconfirmed
    (``True``), and must be checked against the user's row (``confirm_viewer``, or the
    planned query's ``viewer_check``) before the request's answer is sent (``KnownViewers``).
    Any other user's row is read now; the viewer it gives is remembered in ``known``.
    """
    user_id = token_user_id(header, tokens)
    if user_id is None:
        return None, False
    viewer = known.get(user_id)
    if viewer is not None:
        return viewer, True
    return await known.confirm(user_id, db), False


@functools.cache
def _viewer_by_id(is_sqlite: bool) -> Compiled:
    """``db.users.viewer_by_id`` compiled for the driver once (parameters ``id`` and ``now``)."""
    return compile_statement(viewer_by_id(), is_sqlite)
