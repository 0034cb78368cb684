"""The cost budget: points per viewer per window, charged before execution, kept in the database.

Modelled on GitHub's primary rate limit (GitHub GraphQL API, "Rate limits and query limits for
the GraphQL API"), with these choices:

- Price: an operation costs ``ceil(nodes / 100)`` points, at least 1, where ``nodes`` is the
  node count of ``graph.admission.limits.operation_cost`` (the number the cost limit refuses above
  ``CONDUIT_MAX_COST``) with every ``first`` and ``ids`` capped at 100, the most a resolver
  accepts (a larger one is refused before any work). GitHub divides the number of connection
  requests by 100 and rounds to the nearest; the node count bounds that from above and rounding
  up keeps every operation at a point or more, so one number both bounds and prices an
  operation. Queries, mutations and subscriptions (once, when they start) alike.
- Free: an operation selecting nothing but ``rateLimit`` and ``__typename`` costs 0 and is never
  refused, so a client can always read its budget. A dry run (``rateLimit(dryRun: true)``
  anywhere in the operation) is priced but neither charged nor executed: only its ``rateLimit``
  and ``__typename`` root fields are answered; the other root fields are left out of ``data``.
- Budget: ``CONDUIT_RATE_LIMIT_POINTS`` points per ``CONDUIT_RATE_LIMIT_WINDOW_SECONDS`` per
  bucket, ``user:<id>`` for a signed-in viewer and ``address:<client address>`` for anonymous
  requests. Windows are fixed, aligned on multiples of the window length since the Unix epoch,
  so every process agrees on them without coordination (a client may spend two budgets around a
  window boundary; the price of one statement per operation).
- Refusal: an operation that does not fit in what remains is refused before execution with
  ``RATE_LIMITED``, ``extensions.retryAfter`` (whole seconds until the window resets, at least 1),
  ``resetAt``, ``cost`` and ``limit``; nothing runs and nothing is charged.
- Not charged: operations refused before execution for any other reason (syntax, validation,
  limits, variables that do not coerce).

Storage: one row per bucket and window in ``cost_budget``; a charge is one statement, an atomic
upsert that adds the cost only while the sum stays within the budget (``INSERT ... ON CONFLICT
DO UPDATE ... WHERE ... RETURNING used``; SQLite 3.35+ and PostgreSQL), in autocommit, so
concurrent processes can never overspend. Every ``PRUNE_EVERY``-th charge of a process also
deletes past windows.

On SQLite, where a process's writes queue behind one lock, charges are group-committed
(``Database.write``): the charges and other writes that arrive while one trip to the database
is under way go together in the next, each still its own transaction. Before this, every
request held the write lock for a whole trip through a busy event loop, and that lock, not
SQLite, capped the whole server's throughput (Q1: 669 rps with the budget on against 982 with
it off).
"""

from __future__ import annotations

import datetime as dt
import functools
import math
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    get_operation_ast,
)
from graphql.execution.values import VariableValues, get_argument_values
from strawberry.extensions import SchemaExtension

from db.engine import Database
from db.models import cost_budget_table as budget_rows
from db.models import sqlite_timestamp, utcnow
from graph.admission.limits import coerced_variables, fragment_definitions, operation_cost, refuse
from graph.scalars import serialize_datetime
from graph.types.node import MAX_FIRST

if TYPE_CHECKING:
    from graph.context import Context

NODES_PER_POINT = 100
FREE_ROOT_FIELDS = frozenset({"rateLimit", "__typename"})
PRUNE_EVERY = 1000
"""One charge in this many (per process) also deletes the rows of past windows."""


def operation_points(nodes: int) -> int:
    """Points an operation of ``nodes`` nodes costs: ``ceil(nodes / 100)``, at least 1."""
    return max(1, math.ceil(nodes / NODES_PER_POINT))


@dataclass(frozen=True)
class RateLimitStatus:
    """The budget as one operation left it (the ``rateLimit`` field's values).

    ``cost`` in points; ``used`` is what the bucket has spent in the window after this operation
    (``None`` when the operation was refused: the refusal does not read it); ``reset_at`` is
    the end of the window (UTC). ``precharged`` marks a status the compiled executor's check
    charged, which the ordinary executor reuses when it answers instead.
    """

    cost: int
    limit: int
    used: int | None
    reset_at: dt.datetime
    allowed: bool = True
    dry_run: bool = False
    precharged: bool = False

    @property
    def remaining(self) -> int:
        """Points left in the window (0 when unknown)."""
        return max(0, self.limit - self.used) if self.used is not None else 0

    def retry_after(self, now: dt.datetime | None = None) -> int:
        """Whole seconds until the window resets, at least 1."""
        return max(1, math.ceil((self.reset_at - (now or utcnow())).total_seconds()))

    def error(self) -> GraphQLError:
        """The ``RATE_LIMITED`` error refusing the operation."""
        return GraphQLError(
            f"Operation costs {self.cost} point{'' if self.cost == 1 else 's'}, more than remains of the budget "
            f"of {self.limit} points in this window; try again after it resets.",
            extensions={
                "code": "RATE_LIMITED",
                "retryAfter": self.retry_after(),
                "resetAt": serialize_datetime(self.reset_at),
                "cost": self.cost,
                "limit": self.limit,
            },
        )


class CostBudget:
    """Points per bucket per fixed window in the ``cost_budget`` table (see the module docstring)."""

    def __init__(self, db: Database, points: int, window_seconds: int) -> None:
        self.db = db
        self.points = points
        self.window_seconds = window_seconds
        self._charges = 0

    def window(self, now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
        """Start and end (UTC) of the window holding ``now``."""
        seconds = int(now.timestamp())
        start = seconds - seconds % self.window_seconds
        begin = dt.datetime.fromtimestamp(start, dt.UTC)
        return begin, begin + dt.timedelta(seconds=self.window_seconds)

    async def charge(self, bucket: str, cost: int) -> RateLimitStatus:
        """Spend ``cost`` points of ``bucket`` if they fit, in one statement; a refused status otherwise."""
        start, reset_at = self.window(utcnow())
        if cost > self.points:  # can never fit: the insert below would store it anyway
            return RateLimitStatus(cost, self.points, None, reset_at, allowed=False)
        if self.db.is_sqlite:
            # group-committed with the process's other writes (Database.write); the window as
            # SQLAlchemy stores it on SQLite, so its own reads of the table match
            window = sqlite_timestamp(start)
            results = await self.db.write([(_charge_sql(True), [bucket, window, cost, self.points])], _commit)
            rows = results[0] if results is not None else []
        else:
            # autocommit: the statement is its own transaction, committed at once
            # not retried on a broken connection: the server may have charged already
            statement = (_charge_sql(False), [bucket, start, cost, self.points])
            (rows,) = await self.db.fetch_raw([statement], retry=False)
        used = rows[0][0] if rows else None
        self._charges += 1
        if self._charges % PRUNE_EVERY == 0:
            async with self.db.serialized_write(), self.db.reads.connect() as connection:
                await connection.execute(sa.delete(budget_rows).where(budget_rows.c.window_start < start))
        if used is None:
            return RateLimitStatus(cost, self.points, None, reset_at, allowed=False)
        return RateLimitStatus(cost, self.points, int(used), reset_at)

    async def peek(self, bucket: str, cost: int, *, dry_run: bool) -> RateLimitStatus:
        """What ``bucket`` has spent in the current window, charging nothing (one read)."""
        start, reset_at = self.window(utcnow())
        async with self.db.reads.connect() as connection:
            used = (
                await connection.execute(
                    sa.select(budget_rows.c.used).where(
                        budget_rows.c.bucket == bucket, budget_rows.c.window_start == start
                    )
                )
            ).scalar_one_or_none()
        return RateLimitStatus(cost, self.points, int(used or 0), reset_at, dry_run=dry_run)


def _commit(_results: list[list[Any]]) -> list[tuple[str, list[Any]]]:
    return []  # a charge that does not fit changes nothing: committing it is harmless


@functools.cache
def _charge_sql(is_sqlite: bool) -> str:
    """The charge's upsert in the driver's dialect (run through ``Database.fetch_raw``: compiling
    the same SQLAlchemy statement on every request cost more than running it)."""
    bucket, window, cost, points = ("?", "?", "?", "?") if is_sqlite else ("$1", "$2", "$3", "$4")
    return (
        f"INSERT INTO cost_budget (bucket, window_start, used) VALUES ({bucket}, {window}, {cost}) "
        "ON CONFLICT (bucket, window_start) DO UPDATE SET used = cost_budget.used + excluded.used "
        f"WHERE cost_budget.used + excluded.used <= {points} RETURNING used"
    )


def bucket_of(context: Context) -> str:
    """``user:<id>`` for a signed-in viewer, else ``address:<client address>`` (``unknown`` without one)."""
    if context.viewer is not None:
        return f"user:{context.viewer.id}"
    client = getattr(context.request, "client", None)
    return f"address:{client.host if client is not None else 'unknown'}"


def _root_fields(
    selection_set: SelectionSetNode,
    fragments: Mapping[str, FragmentDefinitionNode],
    visited: set[str],
) -> Iterator[FieldNode]:
    # each fragment once (``visited``): spreading it again selects the same fields
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            yield selection
        elif isinstance(selection, InlineFragmentNode):
            yield from _root_fields(selection.selection_set, fragments, visited)
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            fragment = fragments.get(name)
            if fragment is not None and name not in visited:
                visited.add(name)
                yield from _root_fields(fragment.selection_set, fragments, visited)


def _asks_dry_run(schema: GraphQLSchema, field: FieldNode, variables: VariableValues) -> bool:
    query = schema.query_type
    definition = query.fields.get(field.name.value) if query is not None else None
    if definition is None or "dryRun" not in definition.args:
        return False
    try:
        return get_argument_values(definition, field, variables).get("dryRun") is True
    except GraphQLError:  # execution reports it
        return False


async def assess(
    context: Context,
    schema: GraphQLSchema,
    document: DocumentNode,
    operation_name: str | None,
    variables: Mapping[str, Any] | None,
) -> RateLimitStatus | None:
    """Price the operation and charge it to the viewer's bucket (or only read the bucket when it is free).

    ``document`` must be valid and within the limits. ``None`` when there is nothing to charge:
    the budget is off, the operation is missing, or its variables do not coerce (execution then
    refuses it). One statement, two when this charge prunes.
    """
    budget: CostBudget | None = context.app.budget
    if budget is None:
        return None
    operation = get_operation_ast(document, operation_name)
    if operation is None:
        return None
    coerced = coerced_variables(schema, operation, variables)
    if not isinstance(coerced, VariableValues):
        return None
    roots = list(_root_fields(operation.selection_set, fragment_definitions(document), set()))
    free = operation.operation is OperationType.QUERY and all(f.name.value in FREE_ROOT_FIELDS for f in roots)
    dry_run = operation.operation is OperationType.QUERY and any(
        f.name.value == "rateLimit" and _asks_dry_run(schema, f, coerced) for f in roots
    )
    cost = 0 if free else operation_points(operation_cost(schema, document, operation_name, variables, MAX_FIRST))
    bucket = bucket_of(context)
    if free or dry_run:
        return await budget.peek(bucket, cost, dry_run=dry_run)
    return await budget.charge(bucket, cost)


async def compiled_check(
    context: Context,
    schema: GraphQLSchema,
    document: DocumentNode,
    operation_name: str | None,
    variables: Mapping[str, Any] | None,
) -> bool:
    """The budget's part of the compiled executor's check: charge, remember, say whether to go on.

    The status is kept on ``context`` marked ``precharged``, so the ordinary executor, when it
    answers instead (a refusal, a dry run, a bailout), neither charges again nor reads again.
    """
    if context.app.budget is None:
        return True
    status = await assess(context, schema, document, operation_name, variables)
    if status is None:
        return False  # the variables do not coerce: the ordinary executor reports it
    context.rate_limit = replace(status, precharged=True)
    return status.allowed and not status.dry_run


def dry_run_document(document: DocumentNode, operation_name: str | None) -> DocumentNode:
    """``document`` reduced to its operation's ``rateLimit`` and ``__typename`` root fields.

    Root fragments become inline fragments of what they select of those, directives kept.
    """
    operation = get_operation_ast(document, operation_name)
    assert operation is not None
    fragments = fragment_definitions(document)
    visited: set[str] = set()

    def keep(selection_set: SelectionSetNode) -> SelectionSetNode:
        kept: list[Any] = []
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                if selection.name.value in FREE_ROOT_FIELDS:
                    kept.append(selection)
                continue
            if isinstance(selection, InlineFragmentNode):
                condition, directives, inner = selection.type_condition, selection.directives, selection.selection_set
            else:
                assert isinstance(selection, FragmentSpreadNode)
                fragment = fragments.get(selection.name.value)
                # each fragment once: spreading it again selects the same fields
                if fragment is None or fragment.name.value in visited:
                    continue
                visited.add(fragment.name.value)
                condition, directives, inner = fragment.type_condition, selection.directives, fragment.selection_set
            reduced = keep(inner)
            if reduced.selections:
                kept.append(InlineFragmentNode(type_condition=condition, directives=directives, selection_set=reduced))
        return SelectionSetNode(selections=tuple(kept))

    reduced = OperationDefinitionNode(
        operation=operation.operation,
        name=operation.name,
        variable_definitions=operation.variable_definitions,
        directives=operation.directives,
        selection_set=keep(operation.selection_set),
    )
    return DocumentNode(definitions=(reduced,))


class CostBudgetExtension(SchemaExtension):
    """Charges every operation the ordinary executor runs to the viewer's budget, before execution.

    Runs after the cost limit (an operation it refused is not charged). A refused operation
    ends with ``RATE_LIMITED``; a dry run executes only its ``rateLimit`` fields. The status is
    stored as ``context.rate_limit`` for the ``rateLimit`` field.
    """

    async def on_execute(self) -> AsyncIterator[None]:
        execution = self.execution_context
        context = execution.context
        document = execution.graphql_document
        if document is not None and execution.result is None and hasattr(context, "rate_limit"):
            status = context.rate_limit
            if status is None or not status.precharged:
                status = await assess(
                    context, execution.schema._schema, document, execution.operation_name, execution.variables
                )
                context.rate_limit = status
            if status is not None and not status.allowed:
                refuse(execution, status.error())
            elif status is not None and status.dry_run:
                execution.graphql_document = dry_run_document(document, execution.operation_name)
        yield
