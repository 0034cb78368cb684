"""``auth/tokens.py`` called directly: what the verified-token cache remembers, and for how long."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from auth.tokens import EXPIRED, InvalidToken, TokenService
from graph.caches import BoundedCache
from tests.conftest import SECRET


def remembering() -> tuple[TokenService, BoundedCache[str, tuple[int, float]]]:
    cache: BoundedCache[str, tuple[int, float]] = BoundedCache("tokens", 10, 10_000)
    return TokenService(SECRET, verified=cache), cache


def test_a_verified_token_is_remembered_with_its_size() -> None:
    tokens, cache = remembering()
    token = tokens.issue_access_token(7, "USER")
    assert tokens.decode_access_token(token) == 7
    assert tokens.decode_access_token(token) == 7
    assert (cache.misses, cache.hits, len(cache)) == (1, 1, 1)
    assert cache.bytes > len(token)


def test_refused_tokens_are_not_remembered() -> None:
    tokens, cache = remembering()
    forged = TokenService("another-key-" + "y" * 40).issue_access_token(7, "USER")
    for _ in range(2):
        with pytest.raises(InvalidToken):
            tokens.decode_access_token(forged)
    assert len(cache) == 0 and cache.hits == 0


def test_a_remembered_token_is_checked_again_once_expired() -> None:
    tokens, cache = remembering()
    token = tokens.issue_access_token(7, "USER", now=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
    cache.put(token, (7, time.time() - 1), 100)  # remembered while valid, expired since
    with pytest.raises(InvalidToken) as refused:
        tokens.decode_access_token(token)
    assert refused.value.reason == EXPIRED
    assert len(cache) == 0


def test_without_a_cache_every_token_is_verified() -> None:
    tokens = TokenService(SECRET)
    assert tokens.decode_access_token(tokens.issue_access_token(7, "USER")) == 7
