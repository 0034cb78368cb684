"""Waiting for an event by checking that it happened, never by sleeping "long enough".

A fixed sleep fails on a loaded machine and wastes time on an idle one. These poll the
condition itself every ``POLL_SECONDS`` until it holds, and fail with what they waited for
once ``within`` seconds have passed.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any

POLL_SECONDS = 0.02


def _message(what: str | Callable[[], str], within: float) -> str:
    return f"waited {within} s for {what if isinstance(what, str) else what()}"


async def until(check: Callable[[], bool | Awaitable[bool]], what: str | Callable[[], str], within: float = 10) -> None:
    """Return once ``check()`` (a plain or async callable) is true; ``AssertionError`` after ``within`` s.

    ``what`` names the awaited condition in the failure, or returns that text when called (to
    report the state at the time of failure).
    """
    deadline = time.monotonic() + within
    while True:
        held = check()
        if inspect.isawaitable(held):
            held = await held
        if held:
            return
        if time.monotonic() > deadline:
            raise AssertionError(_message(what, within))
        await asyncio.sleep(POLL_SECONDS)


def until_sync(check: Callable[[], bool], what: str | Callable[[], str], within: float = 10) -> None:
    """``until`` for code outside an event loop: blocks the calling thread between checks."""
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(_message(what, within))
        time.sleep(POLL_SECONDS)


async def subscribed(app: Any, channel: str, count: int = 1, within: float = 10) -> None:
    """Wait until ``app``'s broker has ``count`` subscribers of ``channel``.

    A subscription counts once its broker subscription is in place (on PostgreSQL, after its
    ``LISTEN``): events published from then on reach it, events published before are lost.
    ``app`` may run on another thread's loop (``tests.live.live_app``): the count is only read.
    """
    broker = app.state.conduit.broker
    await until(
        lambda: broker.subscriber_count(channel) == count,
        lambda: f"{count} subscriber(s) of {channel}, found {broker.subscriber_count(channel)}",
        within,
    )
