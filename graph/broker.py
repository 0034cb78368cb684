"""Publish/subscribe of domain events for GraphQL subscriptions.

The interface is deliberately narrow (publish one event; iterate the events of one channel)
so that a cross-process implementation (PostgreSQL ``LISTEN/NOTIFY``) can replace the
in-process one. Payloads carry ids only; subscribers load the rows themselves.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

COMMENT_ADDED = "comment_added"
ARTICLE_PUBLISHED = "article_published"


@dataclass(frozen=True)
class Event:
    """One event on ``channel``; ``payload`` is JSON-serializable (ids, tag names)."""

    channel: str
    payload: dict[str, Any] = field(default_factory=dict)


class Broker(Protocol):
    """Delivers every published event to every current subscriber of its channel, in order."""

    async def publish(self, event: Event) -> None:
        """Send ``event`` to the channel's subscribers."""
        ...

    def subscribe(self, channel: str) -> Any:
        """An async context manager yielding an async iterator of the channel's events."""
        ...

    async def close(self) -> None:
        """Stop delivering and release resources."""
        ...


class InProcessBroker:
    """A broker for one server process: an unbounded queue per subscriber."""

    def __init__(self) -> None:
        self._queues: dict[str, set[asyncio.Queue[Event]]] = defaultdict(set)

    async def publish(self, event: Event) -> None:
        """Queue ``event`` for every subscriber of its channel; never blocks."""
        for queue in self._queues.get(event.channel, ()):
            queue.put_nowait(event)

    @asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[AsyncIterator[Event]]:
        """Register at once, so events published after entering are all delivered."""
        queue: asyncio.Queue[Event] = asyncio.Queue()
        self._queues[channel].add(queue)

        async def events() -> AsyncIterator[Event]:
            while True:
                yield await queue.get()

        try:
            yield events()
        finally:
            self._queues[channel].discard(queue)
            if not self._queues[channel]:
                del self._queues[channel]

    def subscriber_count(self, channel: str) -> int:
        """How many subscribers ``channel`` has now."""
        return len(self._queues.get(channel, ()))

    async def close(self) -> None:
        """Nothing to release in process."""
        self._queues.clear()
