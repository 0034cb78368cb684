"""Which executor answers an admitted operation: planned SQL, or graphql-core.

``OperationExecutor.execute`` answers from planned SQL when it covers the operation and hands
it to graphql-core's executor otherwise, the reference planned SQL is tested against
(``tests/graph/test_planned.py``, ``tests/graph/test_planned_coverage.py``):

1. ``planned``: the operation's SQL and generated shaping code (``graph/execution/planned/``);
2. ``ordinary``: graphql-core's ``execute`` over the Strawberry schema and its resolvers.

Every answer counts once in ``conduit_graphql_executions_total{path}``, and every hand-over in
``conduit_graphql_fallbacks_total{path,reason}`` with a reason from a bounded set (the planner's
``Type.field`` or a fixed code), so an upgrade that breaks planning shows on ``/metrics``, not
only in the speed. Subscriptions always run on graphql-core (``subscribe``).

Plans are made once per (document text, operation name, dry run) and kept in the app's ``plans``
cache, refusals included, so a document planned SQL does not cover costs one lookup.
"""

from __future__ import annotations

import inspect
import logging
from collections import Counter
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from graphql import (
    ExecutionResult,
    FragmentDefinitionNode,
    GraphQLError,
    OperationDefinitionNode,
    OperationType,
    get_operation_ast,
)
from graphql import execute as graphql_execute
from graphql import subscribe as graphql_subscribe
from opentelemetry.trace import Span, Tracer
from strawberry.execution import optimized_is_awaitable

from auth.backend import AuthenticationFailed
from graph.admission.document import cacheable, document_bytes
from graph.admission.pipeline import Operation
from graph.caches import BoundedCache
from graph.execution.planned import NotPlanned, PlannedOperation, WriteCommitted, plan_operation
from graph.execution.planned.payloads import PlannedPayloads
from graph.observability.tracing import EXECUTION_FALLBACK, EXECUTION_PATH, SPAN_OPTIONS, failed, sampled_out

if TYPE_CHECKING:
    from graph.observability.metrics import Metrics
    from graph.schema import ConduitSchema

logger = logging.getLogger("conduit.execution")

PLANNED, ORDINARY = "planned", "ordinary"
PATHS = (PLANNED, ORDINARY)
REFUSAL_BYTES = 1024
"""What a cached refusal is charged beside its document (``PlannedOperation.weight`` for a plan).
The entry keeps its document alive (its key is the text), so the document is charged again
here, as the document cache charges it."""


class NotPlannedHere:
    """A cached refusal: planned SQL does not cover the operation, for ``reason``."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


class ExecutionPaths:
    """Counts answers by path and hand-overs by (path, reason), in ``metrics`` and in-process.

    ``answered`` and ``fallbacks`` are ``collections.Counter`` s of this process, for tests
    and the benchmark's profiles; ``metrics`` (optional) is where operators read them.
    """

    def __init__(self, metrics: Metrics | None = None) -> None:
        self.metrics = metrics
        self.answered: Counter[str] = Counter()
        self.fallbacks: Counter[tuple[str, str]] = Counter()
        self._answer_children: dict[str, Any] = {}
        self._fallback_children: dict[tuple[str, str], Any] = {}
        if metrics is not None:
            for path in PATHS:
                self._answer_children[path] = metrics.executions.labels(path)

    def answer(self, path: str) -> None:
        """Count one operation answered by ``path``."""
        self.answered[path] += 1
        child = self._answer_children.get(path)
        if child is not None:
            child.inc()

    def fall_back(self, path: str, reason: str) -> None:
        """Count one operation ``path`` handed on, for ``reason`` (a fixed code, a label)."""
        self.fallbacks[path, reason] += 1
        if self.metrics is not None:
            child = self._fallback_children.get((path, reason))
            if child is None:  # a fixed code or a schema field name: a bounded set
                child = self._fallback_children[path, reason] = self.metrics.fallbacks.labels(path, reason)
            child.inc()


class OperationExecutor:
    """Runs admitted operations (see the module docstring).

    ``plans``: the app's plan cache, ``None`` to turn planned SQL off;
    ``is_sqlite``: the database's flavour for planned SQL;
    ``hide_suggestions``: no "Did you mean ...?" in graphql-core's execution errors.
    """

    def __init__(
        self,
        schema: ConduitSchema,
        plans: BoundedCache[tuple[str, str | None, bool], Any] | None,
        paths: ExecutionPaths,
        *,
        is_sqlite: bool,
        hide_suggestions: bool,
        tracer: Tracer | None = None,
    ) -> None:
        self.schema = schema
        self.plans = plans
        self.paths = paths
        self.is_sqlite = is_sqlite
        self.hide_suggestions = hide_suggestions
        self.tracer = tracer  # None: tracing is off; else an ``execute`` span (graph/observability/tracing.py)

    async def execute(self, operation: Operation) -> ExecutionResult:
        """The result of a query or mutation; its errors are not yet classified (``classify_error``).

        A mutation runs at most once, on whichever path: after its commit nothing falls back,
        and a failure is the mutation field's error. Traced, its span ``execute`` says which path
        answered (``conduit.execution.path``) and why planned SQL handed over
        (``conduit.execution.fallback``, a reason from the bounded set ``/metrics`` counts).
        """
        if self.tracer is None or sampled_out():
            return await self._execute(operation, None)
        with self.tracer.start_as_current_span("execute", **SPAN_OPTIONS) as span:
            try:
                return await self._execute(operation, span)
            except BaseException as error:
                failed(span, error)
                raise

    async def _execute(self, operation: Operation, span: Span | None) -> ExecutionResult:
        if self.plans is not None and not operation.extensions:
            result = await self._planned(operation, span)
            if result is not None:
                if span is not None:
                    span.set_attribute(EXECUTION_PATH, PLANNED)
                return result
        await operation.context.confirm_viewer()  # resolvers read the viewer's role as its row says
        if span is not None:
            span.set_attribute(EXECUTION_PATH, ORDINARY)
        self.paths.answer(ORDINARY)
        outcome = graphql_execute(
            self.schema._schema,
            operation.parsed,
            is_awaitable=optimized_is_awaitable,  # type: ignore[arg-type]
            **self._graphql_core_arguments(operation),
        )
        result = await outcome if inspect.isawaitable(outcome) else outcome
        if not isinstance(result, ExecutionResult):  # incremental delivery: never enabled here
            raise TypeError(f"graphql-core answered with {type(result).__name__}")
        return result

    async def subscribe(self, operation: Operation) -> AsyncIterator[ExecutionResult] | ExecutionResult:
        """The subscription's event stream, or the result refusing it (errors not yet classified)."""
        self.paths.answer(ORDINARY)
        result = graphql_subscribe(self.schema._schema, operation.parsed, **self._graphql_core_arguments(operation))
        if inspect.isawaitable(result):
            result = await result
        return result

    def _graphql_core_arguments(self, operation: Operation) -> dict[str, Any]:
        # Strawberry's execution context takes the request's extensions, as Strawberry passes them
        return {
            "context_value": operation.context,
            "variable_values": operation.variables,
            "operation_name": operation.operation_name,
            # a mutation's payload objects from planned SQL (graph/execution/planned/payloads.py)
            "executor_class": PlannedPayloads
            if self.plans is not None and operation.kind is OperationType.MUTATION
            else self.schema.execution_context_class,
            "hide_suggestions": self.hide_suggestions,
            "operation_extensions": operation.extensions,
        }

    def plan_for(self, operation: Operation) -> PlannedOperation | NotPlannedHere:
        """The cached plan of ``operation``, made on first sight, or why planned SQL does not cover it."""
        if self.plans is None or operation.query is None or operation.definition is None:
            return NotPlannedHere("off")
        # a dry run's document is the text's reduced to its rateLimit fields (graph/admission/budget.py),
        # and whether a text is one may depend on its variables
        key = (operation.query, operation.operation_name, operation.dry_run)
        plan = self.plans.get(key)
        if plan is None:
            definition: OperationDefinitionNode | None = operation.definition
            if operation.dry_run:
                definition = get_operation_ast(operation.parsed, operation.operation_name)
            fragments = {d.name.value: d for d in operation.parsed.definitions if isinstance(d, FragmentDefinitionNode)}
            try:
                if definition is None:  # the reduction lost the operation: never the whole one in its place
                    raise NotPlanned("a dry run without its operation")
                plan = plan_operation(self.schema._schema, definition, fragments, self.is_sqlite)
            except NotPlanned as refusal:
                logger.debug("not planned: %s", refusal)
                plan = NotPlannedHere(str(refusal))
            except Exception:  # a defect in the planner: graphql-core still answers
                logger.exception("planning failed")
                plan = NotPlannedHere("error")
            if cacheable(operation.query):
                # a refusal keeps the document alive too (its key); a plan, its SQL and code as well
                weight = plan.weight() if isinstance(plan, PlannedOperation) else REFUSAL_BYTES
                self.plans.put(key, plan, weight + document_bytes(operation.query))
        return plan

    def _fall_back(self, reason: str, span: Span | None) -> None:
        self.paths.fall_back(PLANNED, reason)
        if span is not None:
            span.set_attribute(EXECUTION_FALLBACK, reason)

    def _committed(self, committed: WriteCommitted) -> ExecutionResult:
        # The mutation happened (or may have): running it again would do it twice. Its field's
        # error, as the ordinary executor reports a resolver's (non-null: data null).
        cause = committed.__cause__ if isinstance(committed.__cause__, Exception) else committed
        key = committed.node.alias.value if committed.node.alias else committed.node.name.value
        error = GraphQLError(str(cause), nodes=[committed.node], path=[key], original_error=cause)
        self.paths.answer(PLANNED)
        return ExecutionResult(None, [error])

    async def _planned(self, operation: Operation, span: Span | None) -> ExecutionResult | None:
        """Planned SQL's answer, or ``None`` (counted as a hand-over) for graphql-core to answer."""
        plan = self.plan_for(operation)
        if isinstance(plan, NotPlannedHere):
            self._fall_back(plan.reason, span)
            return None
        context = operation.context
        try:
            data, errors = await plan.execute(context, operation.coerced_variables)
        except NotPlanned as refusal:  # this run's arguments are outside the plan; nothing was written
            self._fall_back(str(refusal), span)
            return None
        except WriteCommitted as committed:
            return self._committed(committed)
        except AuthenticationFailed:
            raise  # the viewer's token is refused: the transport answers 401
        except Exception as error:
            # A defect or a database error: nothing was written (a write's failure after its
            # commit is WriteCommitted), so graphql-core answers, as it would have.
            logger.warning("planned execution failed, handed back: %s: %s", type(error).__name__, error)
            self._fall_back("error", span)
            context.refresh()  # nothing cached by the abandoned run leaks into graphql-core's
            return None
        self.paths.answer(PLANNED)
        return ExecutionResult(data, errors or None)
