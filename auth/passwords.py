"""Password hashing with argon2id (argon2-cffi's ``PasswordHasher``, RFC 9106 low-memory parameters)."""

from __future__ import annotations

import asyncio
from functools import lru_cache
from typing import Final, Literal

from argon2 import PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerificationError

# Named argon2id parameter sets (argon2-cffi's profiles). "cheapest" is argon2-cffi's profile
# for test suites: the settings refuse it outside CONDUIT_ENV=test.
ProfileName = Literal["rfc9106-low-memory", "cheapest"]
PROFILES = {"rfc9106-low-memory": profiles.RFC_9106_LOW_MEMORY, "cheapest": profiles.CHEAPEST}
DEFAULT_PROFILE: Final = "rfc9106-low-memory"

_hasher = PasswordHasher.from_parameters(PROFILES[DEFAULT_PROFILE])


def use_profile(name: str) -> None:
    """Hash new passwords with the parameter set ``name`` (a key of ``PROFILES``), process-wide.

    Existing hashes keep verifying: an argon2 hash carries its own parameters.
    Raises ``KeyError`` for an unknown name.
    """
    global _hasher
    parameters = PROFILES[name]
    if _hasher.time_cost != parameters.time_cost or _hasher.memory_cost != parameters.memory_cost:
        _hasher = PasswordHasher.from_parameters(parameters)
        _dummy_hash.cache_clear()


def hash_password(password: str) -> str:
    """An argon2id PHC string for ``password`` (CPU- and memory-hard: about 50 ms, 64 MiB)."""
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """Whether ``password`` matches ``password_hash``; never raises on a bad hash."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return _hasher.hash("conduit-dummy-password")


async def verify_password_async(password_hash: str | None, password: str) -> bool:
    """``verify_password`` off the event loop.

    With ``password_hash=None`` (an unknown email) a dummy hash is verified instead, so the
    time a login takes does not reveal whether the email exists.
    """
    target = password_hash if password_hash is not None else _dummy_hash()
    ok = await asyncio.to_thread(verify_password, target, password)
    return ok and password_hash is not None


async def hash_password_async(password: str) -> str:
    """``hash_password`` off the event loop."""
    return await asyncio.to_thread(hash_password, password)
