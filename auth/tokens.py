"""Access tokens (JWT) and opaque refresh tokens.

Access tokens carry ``sub`` (the user id as a string), ``iat``, ``exp``, ``jti`` and ``role``
(informational only: permissions read the current role from the database). Refresh tokens are
random 256-bit strings; only their SHA-256 hex digest is stored.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import uuid
from dataclasses import dataclass

import jwt


class InvalidToken(Exception):
    """The access token is malformed, expired, badly signed or of another algorithm."""


@dataclass(frozen=True)
class TokenService:
    """Signs and verifies access tokens.

    ``secret`` is the HMAC key; ``algorithm`` is pinned (a token naming any other algorithm,
    ``none`` included, is refused); ``access_ttl`` is the access token's lifetime.
    """

    secret: str
    algorithm: str = "HS256"
    access_ttl: dt.timedelta = dt.timedelta(minutes=15)
    refresh_ttl: dt.timedelta = dt.timedelta(days=30)

    def issue_access_token(self, user_id: int, role: str, now: dt.datetime | None = None) -> str:
        """A signed JWT for ``user_id``, valid for ``access_ttl`` from ``now``."""
        issued = now or dt.datetime.now(dt.UTC)
        claims = {
            "sub": str(user_id),
            "iat": int(issued.timestamp()),
            "exp": int((issued + self.access_ttl).timestamp()),
            "jti": uuid.uuid4().hex,
            "role": role,
        }
        return jwt.encode(claims, self.secret, algorithm=self.algorithm)

    def decode_access_token(self, token: str) -> int:
        """The user id a valid token names; raises ``InvalidToken`` otherwise (RFC 8725, 3.1)."""
        try:
            claims = jwt.decode(
                token,
                self.secret,
                algorithms=[self.algorithm],
                options={"require": ["sub", "iat", "exp"]},
            )
            return int(claims["sub"])
        except (jwt.PyJWTError, ValueError, TypeError) as error:
            raise InvalidToken(str(error)) from error


def new_refresh_token() -> str:
    """A new opaque refresh token (43 URL-safe characters, 256 bits of entropy)."""
    return secrets.token_urlsafe(32)


def hash_refresh_token(token: str) -> str:
    """The stored form of a refresh token: its SHA-256 hex digest."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_family_id() -> str:
    """An id shared by all refresh tokens rotated from one login."""
    return uuid.uuid4().hex
