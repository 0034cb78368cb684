"""Access tokens (JWT) and opaque refresh tokens.

Access tokens carry ``sub`` (the user id as a string), ``iat``, ``exp``, ``jti`` and ``role``
(informational only: permissions read the current role from the database). Refresh tokens are
random 256-bit strings; only their SHA-256 hex digest is stored.

Verification follows RFC 8725 (JWT Best Current Practices): the algorithm is pinned, never read
from the token (3.1); ``sub``, ``iat`` and ``exp`` are required and checked (RFC 7519, 4.1);
keys are long enough for HS256 (RFC 7518, 3.2: at least 256 bits; RFC 8725, 3.5; checked by
the settings). With a key ring (key rotation), the ``kid`` header (RFC 7515, 4.1.4) only selects
one of the configured keys: an unknown or missing ``kid`` is refused, and no key is ever taken
from the token itself (``jwk``, ``jku``, ``x5u`` headers are ignored).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
import sys
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import jwt

VERIFIED_TOKENS = 10_000
"""How many verified access tokens a process remembers (the app's ``tokens`` cache, graph/caches.py)."""

# Why a token was refused, as the audit log reports it (``InvalidToken.reason``).
MALFORMED = "malformed"
ALGORITHM = "algorithm"
BAD_SIGNATURE = "bad_signature"
EXPIRED = "expired"
NOT_YET_VALID = "not_yet_valid"
MISSING_CLAIM = "missing_claim"
UNKNOWN_KID = "unknown_kid"
MISSING_KID = "missing_kid"

SANE_KID = re.compile(r"[A-Za-z0-9._-]{1,64}")
"""What a key id may look like: configured ids must match it (settings), and only such ids are logged."""

# Any other PyJWT error (not a JWS, bad base64 or JSON, a non-integer ``iat``) is ``malformed``.
_REASONS: tuple[tuple[type[jwt.PyJWTError], str], ...] = (
    (jwt.ExpiredSignatureError, EXPIRED),
    (jwt.ImmatureSignatureError, NOT_YET_VALID),
    (jwt.MissingRequiredClaimError, MISSING_CLAIM),
    (jwt.InvalidAlgorithmError, ALGORITHM),
    (jwt.InvalidSignatureError, BAD_SIGNATURE),
)


class VerifiedTokens(Protocol):
    """Where ``TokenService`` remembers verified tokens: token -> (user id, expiry in Unix seconds).

    A bounded cache (the app passes its ``tokens`` ``graph.caches.BoundedCache``): ``get`` is
    ``None`` for an unknown token, ``put`` may refuse or evict (``size``: the entry's bytes).
    """

    def get(self, key: str) -> tuple[int, float] | None: ...

    def put(self, key: str, value: tuple[int, float], size: int) -> object: ...

    def discard(self, key: str) -> None: ...


class InvalidToken(Exception):
    """The access token is malformed, expired, badly signed, of another algorithm or of an unknown key.

    ``reason`` is one of ``malformed``, ``algorithm``, ``bad_signature``, ``expired``,
    ``not_yet_valid`` (``iat`` in the future), ``missing_claim``, ``unknown_kid`` or
    ``missing_kid``; ``kid`` is the token's key id when it named an unknown one. Neither
    ever contains the token.
    """

    def __init__(self, reason: str, message: str, kid: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.kid = kid


@dataclass(frozen=True)
class TokenService:
    """Signs and verifies access tokens.

    ``secret`` is the HMAC signing key; ``algorithm`` is pinned (a token naming any other
    algorithm, ``none`` included, is refused); ``access_ttl`` is the access token's lifetime;
    ``leeway`` is the clock skew tolerated on ``iat`` and ``exp`` between servers.

    Key rotation: ``keys`` maps key ids to verification keys and ``active_kid`` names the one
    that signs (its key must be ``secret``). Tokens then carry ``kid`` in their header and are
    verified with the key it names; a token without a ``kid``, or with one not in ``keys``, is
    refused. Without ``keys`` every token is signed and verified with ``secret`` alone.
    Raises ``ValueError`` when ``keys`` and ``active_kid`` do not agree.

    ``verified``: where verified tokens are remembered (``decode_access_token``); without it
    every token is verified every time.
    """

    secret: str
    algorithm: str = "HS256"
    access_ttl: dt.timedelta = dt.timedelta(minutes=15)
    refresh_ttl: dt.timedelta = dt.timedelta(days=30)
    keys: Mapping[str, str] = field(default_factory=dict)
    active_kid: str | None = None
    leeway: dt.timedelta = dt.timedelta(seconds=10)
    verified: VerifiedTokens | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.keys and self.active_kid is None:
            return
        if self.active_kid is None or self.active_kid not in self.keys:
            raise ValueError("active_kid must name one of keys")
        if self.keys[self.active_kid] != self.secret:
            raise ValueError("secret must be the key active_kid names")

    def issue_access_token(self, user_id: int, role: str, now: dt.datetime | None = None) -> str:
        """A signed JWT for ``user_id``, valid for ``access_ttl`` from ``now`` (with a ``kid`` under rotation)."""
        issued = now or dt.datetime.now(dt.UTC)
        claims = {
            "sub": str(user_id),
            "iat": int(issued.timestamp()),
            "exp": int((issued + self.access_ttl).timestamp()),
            "jti": uuid.uuid4().hex,
            "role": role,
        }
        headers = {"kid": self.active_kid} if self.active_kid is not None else None
        return jwt.encode(claims, self.secret, algorithm=self.algorithm, headers=headers)

    def decode_access_token(self, token: str) -> int:
        """The user id a valid token names; raises ``InvalidToken`` (with its ``reason``) otherwise.

        The signature is checked before any claim, so ``expired`` and ``not_yet_valid`` are only
        reported for tokens this server signed. ``iat`` more than ``leeway`` in the future is
        refused (RFC 7519, 4.1.6 leaves this to the application; a token from the future was not
        issued by a server with a sane clock).

        Valid tokens are remembered in ``verified`` until they expire (the cache may forget
        them sooner): a client sends the same token with every request, and verifying it again
        cost about 60 µs (pyjwt). The whole token is the key, signature included, so only that
        exact string is spared the check.
        """
        if self.verified is not None:
            cached = self.verified.get(token)
            if cached is not None:
                user_id, expires = cached
                if time.time() < expires:
                    return user_id
                self.verified.discard(token)
        key = self._verification_key(token)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[self.algorithm],
                leeway=self.leeway,
                options={"require": ["sub", "iat", "exp"]},
            )
        except jwt.PyJWTError as error:
            reason = next((reason for kind, reason in _REASONS if isinstance(error, kind)), MALFORMED)
            raise InvalidToken(reason, str(error)) from error
        sub = claims["sub"]
        # we only ever sign decimal ids; int() alone would also take " 1", "1_0" or "+1"
        if not isinstance(sub, str) or not (sub.isascii() and sub.isdigit()):
            raise InvalidToken(MALFORMED, "the sub claim is not a user id")
        user_id = int(sub)
        if self.verified is not None:
            # pyjwt accepts a token while now < exp + leeway
            entry = (user_id, float(claims["exp"]) + self.leeway.total_seconds())
            size = sys.getsizeof(token) + sys.getsizeof(entry) + sys.getsizeof(entry[0]) + sys.getsizeof(entry[1])
            self.verified.put(token, entry, size)
        return user_id

    def _verification_key(self, token: str) -> str:
        if not self.keys:
            return self.secret
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError as error:
            raise InvalidToken(MALFORMED, str(error)) from error
        if kid is None:
            raise InvalidToken(MISSING_KID, "the token names no signing key")
        if not isinstance(kid, str) or kid not in self.keys:
            # the kid is the client's text: log it only when it cannot forge a log line
            shown = kid if isinstance(kid, str) and SANE_KID.fullmatch(kid) else None
            raise InvalidToken(UNKNOWN_KID, "the token names an unknown signing key", kid=shown)
        return self.keys[kid]


def new_refresh_token() -> str:
    """A new opaque refresh token (43 URL-safe characters, 256 bits of entropy)."""
    return secrets.token_urlsafe(32)


def hash_refresh_token(token: str) -> str:
    """The stored form of a refresh token: its SHA-256 hex digest."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_account_token() -> str:
    """A new mailed token (password reset, email verification): 43 URL-safe characters, 256 bits."""
    return secrets.token_urlsafe(32)


def hash_account_token(token: str) -> str:
    """The stored form of a mailed token: its SHA-256 hex digest, as for refresh tokens.

    256 random bits need no salt or slow hash: nobody can guess a token whose hash leaked.
    """
    return hashlib.sha256(token.encode()).hexdigest()


def new_family_id() -> str:
    """An id shared by all refresh tokens rotated from one login."""
    return uuid.uuid4().hex
