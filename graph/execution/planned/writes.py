"""Planned mutations: ``addComment`` as one short transaction through ``Database.write``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from graphql import FieldNode, GraphQLField
from graphql.execution.values import VariableValues

from db import driver_sql
from db.broker import Broker, Event, notify_statement
from db.dialect import DriverDialect
from graph.errors import FieldErrors
from graph.execution.planned.errors import NotPlanned
from graph.execution.planned.planner import Level
from graph.execution.planned.runs import arguments
from graph.execution.planned.statements import Compiled, bind, compile_statement
from graph.mutations.comments import comment_channel, comment_tags
from graph.validation import COMMENT_MAX, check_text

__all__ = ["AddCommentPlan", "PreparedWrite"]


@dataclass(eq=False)
class PreparedWrite:
    """A mutation field's transaction: statements, what to add before commit, and the response.

    ``decide`` gets the rows and returns the statements to run before the commit (PostgreSQL's
    ``pg_notify``), or ``None`` when nothing matched and the transaction must roll back;
    ``finish`` shapes the committed rows; ``events`` are published after the commit by a
    broker that does not publish inside transactions; ``touched`` gives the response cache tags
    of what the committed rows changed (``Context.touch``, ``graph/responses/tags.py``).
    """

    statements: list[tuple[str, list[Any]]]
    decide: Callable[[list[list[Any]]], list[tuple[str, list[Any]]] | None]
    finish: Callable[[list[list[Any]]], Any]
    events: Callable[[list[list[Any]]], list[Event]]
    touched: Callable[[list[list[Any]]], tuple[str, ...]]


@dataclass(eq=False)
class AddCommentPlan:
    """``addComment(slug, body)`` (``graph/mutations/comments.py``) as one short transaction.

    The insert, then (``decide``, inside the transaction) the payload's statement for the new
    comment's id: the ``Comment`` level the planner made of the selection. Covers the
    signed-in, valid case only: no viewer, a blank or too long body, or no article with that
    slug (the insert matches nothing and rolls back) raise ``NotPlanned`` before anything is
    written, and the ordinary executor reports the error.
    """

    node: FieldNode
    definition: GraphQLField
    payload: Level
    is_sqlite: bool
    insert: Compiled = field(init=False)
    read: Compiled = field(init=False)

    def __post_init__(self) -> None:
        text, names = DriverDialect(self.is_sqlite).render(driver_sql.INSERT_COMMENT)
        self.insert = (text, tuple(names), {})
        level = self.payload
        statement = (
            sa.select(*level.select_list(self.is_sqlite, True))
            .select_from(level.from_clause())
            .where(level.alias.c.id == sa.bindparam("key"))
        )
        self.read = compile_statement(statement, self.is_sqlite)

    def levels(self) -> list[Level]:
        """The payload's level (its shaping function)."""
        return [self.payload]

    def prepare_write(self, variables: VariableValues, viewer_id: int | None, broker: Broker) -> PreparedWrite:
        """The insert and the payload's read, in one transaction, for this run.

        ``NotPlanned``, before anything is written, without a viewer or for a body the mutation
        would refuse.
        """
        if viewer_id is None:
            raise NotPlanned("addComment needs a viewer")
        args = arguments(self.definition, self.node, variables, self)
        body, slug = args["body"], args["slug"]
        errors = FieldErrors()
        check_text(errors, "body", body, COMMENT_MAX)
        if errors:
            raise NotPlanned("the body is invalid")
        values = {
            "body": body,
            "viewer": viewer_id,
            "slug": slug,
            "now": DriverDialect(self.is_sqlite).bind_now(),
        }
        statements = [bind(self.insert, values)]
        transactional = broker.transactional
        read = self.read
        admin = False  # the payload is the viewer's own comment: email is theirs to see either way

        def events(results: list[list[Any]]) -> list[Event]:
            comment = results[0][0]
            return [Event(comment_channel(comment[1]), {"id": comment[0]})]

        def decide(results: list[list[Any]]) -> list[tuple[str, list[Any]]] | None:
            if not results[0]:
                return None  # no such article
            payload = bind(read, {"key": results[0][0][0], "viewer": viewer_id, "admin": admin})
            notify = [notify_statement(event) for event in events(results)] if transactional else []
            return [payload, *notify]

        shape = self.payload.shape

        def finish(results: list[list[Any]]) -> Any:
            return shape(results[1][0], [])

        def touched(results: list[list[Any]]) -> tuple[str, ...]:
            comment = results[0][0]
            return comment_tags(comment[0], comment[1], slug)

        return PreparedWrite(statements, decide, finish, events, touched)
