"""Planned mutations: ``addComment`` as one short transaction through ``Database.write``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from graphql.execution.values import VariableValues

from db import driver_sql
from db.broker import Broker, Event, notify_statement
from db.models import utcnow
from graph.errors import FieldErrors
from graph.execution.planned.errors import NotPlanned
from graph.execution.planned.root import RootPlan
from graph.execution.planned.statements import Rendered, Statement, bind
from graph.mutations.comments import comment_channel
from graph.validation import COMMENT_MAX, check_text

__all__ = ["AddCommentPlan", "PreparedWrite"]


@dataclass(eq=False)
class PreparedWrite:
    """A mutation field's transaction: statements, what to add before commit, and the response.

    ``decide`` gets the rows and returns the statements to run before the commit (PostgreSQL's
    ``pg_notify``), or ``None`` when nothing matched and the transaction must roll back;
    ``finish`` shapes the committed rows; ``events`` are published after the commit by a
    broker that does not publish inside transactions.
    """

    statements: list[tuple[str, list[Any]]]
    decide: Callable[[list[list[Any]]], list[tuple[str, list[Any]]] | None]
    finish: Callable[[list[list[Any]]], Any]
    events: Callable[[list[list[Any]]], list[Event]]


@dataclass(eq=False)
class AddCommentPlan(RootPlan):
    """``addComment(slug, body)`` (``graph/mutations/comments.py``) as one short transaction.

    Covers the signed-in, valid case only: no viewer, a blank or too long body, or no article
    with that slug (the insert matches nothing and rolls back) raise ``NotPlanned`` before
    anything is written, and the ordinary executor reports the error.
    """

    statement: Statement = field(init=False)
    author: Statement = field(init=False)

    def __post_init__(self) -> None:
        self.statement = Statement(self._insert_sql)
        self.author = Statement(self._author_sql)

    def _insert_sql(self, _variant: tuple[Any, ...]) -> Rendered:
        return self.dialect.render(driver_sql.INSERT_COMMENT)

    def _author_sql(self, _variant: tuple[Any, ...]) -> Rendered:
        return self.dialect.render(driver_sql.user_by_id(self.columns.render(self.dialect, False)))

    def prepare_write(
        self, definition: Any, variables: VariableValues, viewer_id: int | None, broker: Broker
    ) -> PreparedWrite:
        """The insert and the author's read, in one transaction, for this run.

        ``NotPlanned``, before anything is written, without a viewer or for a body the mutation
        would refuse.
        """
        if viewer_id is None:
            raise NotPlanned("addComment needs a viewer")
        args = self.arguments(definition, variables)
        body, slug = args["body"], args["slug"]
        errors = FieldErrors()
        check_text(errors, "body", body, COMMENT_MAX)
        if errors:
            raise NotPlanned("the body is invalid")
        values = {"body": body, "viewer": viewer_id, "slug": slug, "now": self.dialect.bind_time(utcnow())}
        statements = [bind(self.statement.get(()), values), bind(self.author.get(()), values)]
        transactional = broker.transactional

        def events(results: list[list[Any]]) -> list[Event]:
            comment = results[0][0]
            return [Event(comment_channel(comment[1]), {"id": comment[0]})]

        def decide(results: list[list[Any]]) -> list[tuple[str, list[Any]]] | None:
            if not results[0]:
                return None  # no such article
            return [notify_statement(event) for event in events(results)] if transactional else []

        shape = self.shape

        def finish(results: list[list[Any]]) -> Any:
            return shape(results[0][0], results[1][0] if results[1] else None)

        return PreparedWrite(statements, decide, finish, events)
