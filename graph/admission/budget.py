"""The cost budget: points per viewer per window, charged before execution, kept in the database or Redis.

Modelled on GitHub's primary rate limit (GitHub GraphQL API, "Rate limits and query limits for
the GraphQL API"), with these choices:

- Price: an operation costs ``ceil(nodes / 100)`` points, at least 1, where ``nodes`` is the
  node count of ``graph.admission.cost.operation_cost`` (the number the cost limit refuses above
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
  window boundary; the price of storing a single count per window).
- Refusal: an operation that does not fit in what remains is refused before execution with
  ``RATE_LIMITED``, ``extensions.retryAfter`` (whole seconds until the window resets, at least 1),
  ``resetAt``, ``cost`` and ``limit``; nothing runs and nothing is charged.
- Not charged: operations refused before execution for any other reason (syntax, validation,
  limits, variables that do not coerce).

- Redis unavailable (budget in Redis, ``CONDUIT_CACHE_URL``): the operation is admitted
  uncharged and ``rateLimit`` is null, as when the budget is off; ``db/redis.py`` logs the outage
  once and counts every such operation (``conduit_redis_unavailable_total{use="budget"}``). Failing
  open is what API gateways do by default (Kong's ``fault_tolerant``, Envoy's global rate limit
  without ``failure_mode_deny``): the budget protects the service from a heavy client, and
  refusing everyone, or moving every charge back onto the primary database during the outage,
  would hurt the service more than one unmetered window. (Login, registration and refresh
  limits fall back to the database instead: ``auth/ratelimit.py``.)

Storage: ``db/budget.py`` (one atomic statement per charge, or one Redis script).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

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

from db import budget as store
from db.budget import Budget, BudgetUnavailable
from graph.admission.cost import operation_cost
from graph.admission.limits import fragment_definitions, spread_fragments
from graph.admission.pipeline import Operation, Refused
from graph.caches import BoundedCache
from graph.scalars import serialize_datetime
from graph.types.node import MAX_FIRST

if TYPE_CHECKING:
    from graph.context import Context

NODES_PER_POINT = 100
ROOTS_KEY = "budget-roots"
"""The first item of an operation's root-field summary's key in the ``costs`` cache (``ChargeBudget._roots``)."""
FREE_ROOT_FIELDS = frozenset({"rateLimit", "__typename"})


def operation_points(nodes: int) -> int:
    """Points an operation of ``nodes`` nodes costs: ``ceil(nodes / 100)``, at least 1."""
    return max(1, math.ceil(nodes / NODES_PER_POINT))


@dataclass(frozen=True)
class RateLimitStatus:
    """The budget as one operation left it (the ``rateLimit`` field's values).

    ``cost`` in points; ``used`` is what the bucket has spent in the window after this operation
    (``None`` when the operation was refused: the refusal does not read it); ``reset_at`` is
    the end of the window (UTC).
    """

    cost: int
    limit: int
    used: int | None
    reset_at: dt.datetime
    allowed: bool = True
    dry_run: bool = False

    @property
    def remaining(self) -> int:
        """Points left in the window (0 when unknown)."""
        return max(0, self.limit - self.used) if self.used is not None else 0

    def retry_after(self, now: dt.datetime | None = None) -> int:
        """Whole seconds until the window resets, at least 1."""
        return max(1, math.ceil((self.reset_at - (now or store.now())).total_seconds()))

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


class ChargeBudget:
    """Admission step: price the operation and charge it to the viewer's bucket (module docstring).

    Leaves the status on ``context.rate_limit`` for the ``rateLimit`` field. Refuses with
    ``RATE_LIMITED`` when the price does not fit; a dry run is priced, not charged, and only its
    ``rateLimit`` and ``__typename`` root fields run (``operation.dry_run``, with the document
    reduced to them). In the database, none while this process's lease covers the charge, else
    one statement (two when the lease does not fit, or this charge prunes); in Redis one round trip. When
    the store is unreachable (``BudgetUnavailable``) the operation goes on uncharged with
    ``context.rate_limit`` ``None`` (module docstring); a dry run still runs nothing but its ``rateLimit``.
    """

    name = "budget"

    def __init__(self, schema: GraphQLSchema, store: Budget, costs: BoundedCache[tuple[Any, ...], Any]) -> None:
        self.schema = schema
        self.store = store
        self.costs = costs

    async def __call__(self, operation: Operation) -> None:
        document, coerced = operation.parsed, operation.coerced_variables
        free, rate_limits = self._roots(operation)
        dry_run = any(_asks_dry_run(self.schema, f, coerced) for f in rate_limits)
        cost = 0
        if not free:
            nodes = operation_cost(
                self.schema,
                document,
                operation.name,
                operation.variables,
                MAX_FIRST,
                self.costs,
                operation.variables_key(),
            )
            cost = operation_points(nodes)
        bucket = bucket_of(operation.context)
        points = self.store.points
        status: RateLimitStatus | None
        try:
            if free or dry_run:
                used, reset_at = await self.store.peek(bucket)
                status = RateLimitStatus(cost, points, used, reset_at, dry_run=dry_run)
            else:
                spent, reset_at = await self.store.charge(bucket, cost)
                status = RateLimitStatus(cost, points, spent, reset_at, allowed=spent is not None)
        except BudgetUnavailable:
            status = None  # fail open (module docstring): admitted, uncharged, ``rateLimit`` null
        operation.context.rate_limit = status
        if status is not None and not status.allowed:
            raise Refused([status.error()])
        if dry_run:
            operation.dry_run = True
            operation.document = dry_run_document(document, operation.name)

    def _roots(self, operation: Operation) -> tuple[bool, tuple[FieldNode, ...]]:
        """Whether the operation is free, and its ``rateLimit`` root fields (a query's only); once per
        document, in the ``costs`` cache beside its costs (``Operation.remembered``)."""

        def work_out() -> tuple[bool, tuple[FieldNode, ...]]:
            definition = operation.selected
            roots = list(_root_fields(definition.selection_set, fragment_definitions(operation.parsed), set()))
            is_query = definition.operation is OperationType.QUERY
            free = is_query and all(f.name.value in FREE_ROOT_FIELDS for f in roots)
            return free, tuple(f for f in roots if is_query and f.name.value == "rateLimit")

        return operation.remembered(self.costs, ROOTS_KEY, work_out)


def dry_run_document(document: DocumentNode, operation_name: str | None) -> DocumentNode:
    """``document`` reduced to its operation's ``rateLimit`` and ``__typename`` root fields.

    Root fragments become inline fragments of what they select of those, directives kept; the
    fragments the kept fields spread (``rateLimit { ...Costs }``) are kept with them.
    """
    operation = get_operation_ast(document, operation_name)
    if operation is None:
        raise ValueError(f"no operation {operation_name!r} in the document")
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
            elif isinstance(selection, FragmentSpreadNode):
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
    return DocumentNode(definitions=(reduced, *(fragments[name] for name in spread_fragments(reduced, fragments))))
