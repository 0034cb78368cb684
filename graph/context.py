"""The per-request context handed to every resolver as ``info.context``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.sql import Executable

from auth import ratelimit
from auth.backend import AuthenticationFailed, KnownViewers, Viewer
from auth.tokens import TokenService
from db.broker import Broker, Event
from db.budget import Budget
from db.engine import Database
from db.models import Role
from db.redis import RedisClient
from graph.caches import Caches
from graph.loaders import Loaders
from graph.observability import new_request_id
from graph.settings import Settings

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.websockets import WebSocket

    from auth.mail import MailWorker
    from graph.admission.budget import RateLimitStatus
    from graph.admission.pipeline import AdmissionPipeline
    from graph.execution.executor import ExecutionPaths


CHANGED: ContextVar[set[str] | None] = ContextVar("conduit_changed", default=None)
"""The tags of what the running mutation operation committed (``Context.touch``), for the response
cache's purge after it (``graph/responses/``); ``None`` outside a mutation. A context variable,
not a field of ``Context``, because one WebSocket connection's context runs several operations
at once."""


def changed(tags: Iterable[str]) -> None:
    """Record ``tags`` as committed by the running mutation operation (``CHANGED``); no-op outside one."""
    committed = CHANGED.get()
    if committed is not None:
        committed.update(tags)


@dataclass
class _Pending:
    """What one ``Context.transaction`` queued: events to publish and tags to purge once it commits."""

    events: list[Event] = field(default_factory=list)
    tags: set[str] = field(default_factory=set)


PENDING: ContextVar[_Pending | None] = ContextVar("conduit_pending", default=None)
"""The running ``Context.transaction``'s queue, ``None`` outside one."""


def _pending() -> _Pending:
    pending = PENDING.get()
    if pending is None:
        raise RuntimeError("nothing is queued outside Context.transaction()")
    return pending


@dataclass
class AppState:
    """What lives as long as the app: settings, the database, tokens, the event broker and the caches."""

    settings: Settings
    db: Database
    tokens: TokenService
    broker: Broker
    # the app's bounded caches (graph/caches.py)
    caches: Caches
    # the ordered admission steps every operation passes (graph/admission), set by create_app
    admission: AdmissionPipeline | None = None
    # answers by execution path and fallbacks by reason (graph/execution/executor.py)
    execution: ExecutionPaths | None = None
    # Redis, when CONDUIT_CACHE_URL is set (db/redis.py), and the auth rate limits' counters
    # (auth/ratelimit.py; None: in the database)
    redis: RedisClient | None = None
    counters: ratelimit.Counters | None = None
    # the cost budget's store (db/budget.py; None: the budget is off)
    budget: Budget | None = None
    # sends the mail_outbox's mails (auth/mail.py); woken after a commit that queued mail
    mail: MailWorker | None = None
    # the viewer each signed-in user was last confirmed as: a request's guess, checked before it
    # is answered (auth/backend.py, authenticate_deferred)
    viewers: KnownViewers = field(default_factory=KnownViewers)


@dataclass
class Context:
    """Built once per HTTP request or WebSocket connection.

    Reads go through ``fetch`` (a pooled connection per statement, so loaders may run
    concurrently); a mutation writes through ``transaction()``, one transaction on the
    request's session. ``loaders`` are fresh per request and dropped after every commit.
    """

    app: AppState
    request: Request | WebSocket | None = None
    viewer: Viewer | None = None
    # ``viewer`` is a guess (``KnownViewers``) still to be checked against the user's row, by
    # ``confirm_viewer`` or by a planned query's first statement, before anything is answered
    viewer_unconfirmed: bool = False
    request_id: str = field(default_factory=new_request_id)
    connection_params: Any = None
    # the current operation's charge to the cost budget (graph/admission/budget.py), read by the rateLimit field
    rate_limit: RateLimitStatus | None = None
    _loaders: Loaders | None = field(default=None, init=False)
    _session: AsyncSession | None = field(default=None, init=False)

    @property
    def loaders(self) -> Loaders:
        """This request's DataLoaders, built on first use (a planned query needs none)."""
        if self._loaders is None:
            self._loaders = Loaders(self)
        return self._loaders

    @property
    def viewer_id(self) -> int | None:
        """The viewer's user id, ``None`` for anonymous requests."""
        return self.viewer.id if self.viewer is not None else None

    async def confirm_viewer(self) -> bool:
        """Check an unconfirmed ``viewer`` against its user's row now; whether the viewer changed.

        No statement (``False``) when the viewer is confirmed already, or anonymous. A changed
        viewer (a new role or username) replaces ``viewer``, and cached loads are dropped.
        Raises ``AuthenticationFailed`` (``viewer`` then ``None``) when the user no longer exists
        or is suspended (``KnownViewers.confirm``); any other error of the read leaves
        the viewer unconfirmed.
        """
        viewer = self.viewer
        if not self.viewer_unconfirmed or viewer is None:
            return False
        try:
            current = await self.app.viewers.confirm(viewer.id, self.app.db)
        except AuthenticationFailed:
            self.viewer, self.viewer_unconfirmed = None, False
            raise
        # only now: a read that failed otherwise (a timeout, a lost connection) leaves the
        # viewer unconfirmed, so whichever path answers next must confirm it again
        self.viewer_unconfirmed = False
        if current == viewer:
            return False
        self.viewer = current
        self.refresh()
        return True

    def viewer_checked(self) -> None:
        """A statement's ``viewer_check`` found the unconfirmed viewer current: confirmed, and remembered as such."""
        if self.viewer_unconfirmed and self.viewer is not None:
            self.viewer_unconfirmed = False
            self.app.viewers.remember(self.viewer)  # the most recently confirmed are kept longest

    @property
    def session(self) -> AsyncSession:
        """The request's session, opened on first use and closed by ``close()``."""
        if self._session is None:
            self._session = self.app.db.session()
            if self.app.counters is not None:
                ratelimit.use_counters(self._session, self.app.counters)
        return self._session

    async def fetch(self, statement: Executable) -> Sequence[Any]:
        """All rows of a read-only statement."""
        async with self.app.db.reads.connect() as connection:
            result = await connection.execute(statement)
            return result.all()

    def sign_in(self, user: Any) -> None:
        """Make ``user`` (a row with ``id``, ``username``, ``role``) the viewer of this request.

        After ``register``, ``login`` or ``refreshToken`` the payload is read as its new owner
        would read it (``user.email`` included).
        """
        self.viewer = Viewer(id=user.id, username=user.username, role=Role(user.role))
        self.viewer_unconfirmed = False
        self.app.viewers.remember(self.viewer)  # the new token's first request needs no read of its own
        self.refresh()

    def refresh(self) -> None:
        """Forget every cached load (after a write, or before a subscription event)."""
        self._loaders = None

    def publish_after_commit(self, event: Event) -> None:
        """Queue ``event`` for the broker; sent only if the current transaction commits.

        Raises ``RuntimeError`` outside ``transaction()``.
        """
        _pending().events.append(event)

    def touch(self, *tags: str) -> None:
        """Say what the current transaction changes, as response cache tags (``graph/responses/tags.py``).

        They count only if it commits (``changed``); a commit whose outcome is unknown counts too.
        Raises ``RuntimeError`` outside ``transaction()``.
        """
        _pending().tags.update(tags)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """One write transaction: commits on success, rolls back on any error.

        Queued events are published after the commit, in commit order; cached loads are
        dropped, so the mutation's payload is read fresh. Tags given to ``touch`` are recorded
        once the body has run: a failing commit may still have committed, and a purge too many
        costs a miss where one too few would serve a stale answer. What is queued belongs to
        this transaction alone (``PENDING``), though a WebSocket connection's operations share
        the context.
        """
        pending = _Pending()
        token = PENDING.set(pending)
        broker = self.app.broker
        hooks: dict[str, Any]
        if broker.transactional:

            async def publish_in_transaction(connection: AsyncConnection) -> None:
                for event in pending.events:
                    await broker.publish(event, connection)

            hooks = {"before_commit": publish_in_transaction}
        else:

            async def publish() -> None:
                for event in pending.events:
                    await broker.publish(event)

            hooks = {"on_commit": publish}
        ran = False
        try:
            async with self.app.db.transaction(self.session, **hooks):
                yield self.session
                ran = True
        finally:
            PENDING.reset(token)
            if ran:
                changed(pending.tags)
            self.refresh()

    async def close(self) -> None:
        """Release the request's session, if one was opened."""
        if self._session is not None:
            await self._session.close()
            self._session = None
