"""Which executor answers an admitted operation: planned SQL, a compiled plan, or graphql-core.

``OperationExecutor.execute`` tries the fastest path that covers the operation and falls back
to the next, down to graphql-core's executor, the reference every other path is tested against
(``tests/graph/test_compiled.py``):

1. ``planned``: the operation's SQL and generated shaping code (``graph/execution/planned/``);
2. ``compiled``: a plan calling the resolvers directly (``graph/execution/compiled.py``);
3. ``ordinary``: graphql-core's ``execute`` over the Strawberry schema.

Every answer counts once in ``conduit_graphql_executions_total{path}``, and every hand-over in
``conduit_graphql_fallbacks_total{path,reason}`` with the path that gave up and a fixed reason
code, so an upgrade that breaks a fast path shows on ``/metrics``, not only in the speed.
Subscriptions always run on graphql-core (``subscribe``).

Plans are compiled once per (document text, operation name) and kept in the app's ``plans``
cache, refusals included, so a document the compiled path does not cover costs one lookup.
"""

from __future__ import annotations

import inspect
import logging
from collections import Counter
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from graphql import ExecutionResult, FragmentDefinitionNode, GraphQLError
from graphql import execute as graphql_execute
from graphql import subscribe as graphql_subscribe
from strawberry.execution import optimized_is_awaitable

from graph.admission.document import cacheable, document_bytes
from graph.admission.pipeline import Operation
from graph.caches import BoundedCache
from graph.execution.compiled import OperationPlan
from graph.execution.compiler import NotCompilable, compile_operation
from graph.execution.planned import NotPlanned, PlannedOperation, WriteCommitted, plan_operation

if TYPE_CHECKING:
    from graph.observability.metrics import Metrics
    from graph.schema import ConduitSchema

logger = logging.getLogger("conduit.execution")

PLANNED, COMPILED, ORDINARY = "planned", "compiled", "ordinary"
PATHS = (PLANNED, COMPILED, ORDINARY)
PLAN_BYTES = 16 * 1024
"""What one compiled plan is charged in the ``plans`` cache beside its document: measured with
tracemalloc on the benchmark's operations, 4 to 12 KiB each; the planned ones' generated code
is the larger part. The plan keeps its document alive (its key is the text, its nodes hold the
parser's tokens), so the document is charged again here, as the document cache charges it."""


class NotCompiled:
    """A cached refusal: the operation is not compiled, for ``reason``."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


class Plans:
    """What the fast paths made of one operation: its planned SQL or why not, and its compiled plan or why not."""

    __slots__ = ("compiled", "planned", "unplanned")

    def __init__(
        self, planned: PlannedOperation | None, unplanned: str | None, compiled: OperationPlan | NotCompiled
    ) -> None:
        self.planned = planned
        self.unplanned = unplanned
        self.compiled = compiled


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

    ``plans``: the app's plan cache, ``None`` to turn the compiled and planned paths off;
    ``is_sqlite``: the database's flavour for planned SQL, ``None`` to turn planning off;
    ``hide_suggestions``: no "Did you mean ...?" in graphql-core's execution errors.
    """

    def __init__(
        self,
        schema: ConduitSchema,
        plans: BoundedCache[tuple[str, str | None], Any] | None,
        paths: ExecutionPaths,
        *,
        is_sqlite: bool | None,
        hide_suggestions: bool,
    ) -> None:
        self.schema = schema
        self.plans = plans
        self.paths = paths
        self.is_sqlite = is_sqlite
        self.hide_suggestions = hide_suggestions

    async def execute(self, operation: Operation) -> ExecutionResult:
        """The result of a query or mutation; its errors are not yet classified (``classify_error``).

        A mutation runs at most once, on whichever path: after its commit nothing falls back,
        and a failure is the mutation field's error.
        """
        if self.plans is not None and not operation.dry_run and not operation.extensions:
            result = await self._compiled(operation)
            if result is not None:
                return result
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
            "executor_class": self.schema.execution_context_class,
            "hide_suggestions": self.hide_suggestions,
            "operation_extensions": operation.extensions,
        }

    def plan_for(self, operation: Operation) -> Plans:
        """The cached plans of ``operation``, made on first sight, with why a path does not cover it."""
        if self.plans is None or operation.query is None:
            return Plans(None, "off", NotCompiled("off"))
        key = (operation.query, operation.operation_name)
        plans = self.plans.get(key)
        if plans is None:
            planned, unplanned = None, None
            if self.is_sqlite is not None and operation.definition is not None:
                fragments = {
                    d.name.value: d for d in operation.parsed.definitions if isinstance(d, FragmentDefinitionNode)
                }
                try:
                    planned = plan_operation(self.schema._schema, operation.definition, fragments, self.is_sqlite)
                except NotPlanned as refusal:
                    logger.debug("not planned: %s", refusal)
                    unplanned = str(refusal)
                except Exception:  # a defect in the planner: the other paths still answer
                    logger.exception("planning failed")
                    unplanned = "error"
            compiled: OperationPlan | NotCompiled
            try:
                compiled = compile_operation(self.schema, operation.parsed, operation.operation_name)
            except NotCompilable as refusal:
                logger.debug("not compiled: %s", refusal)
                compiled = NotCompiled(refusal.reason)
            plans = Plans(planned, unplanned, compiled)
            if cacheable(operation.query):
                self.plans.put(key, plans, PLAN_BYTES + document_bytes(operation.query))
        return plans

    def _committed(self, committed: WriteCommitted) -> ExecutionResult:
        # The mutation happened (or may have): running it again would do it twice. Its field's
        # error, as the ordinary executor reports a resolver's (non-null: data null).
        cause = committed.__cause__ if isinstance(committed.__cause__, Exception) else committed
        key = committed.node.alias.value if committed.node.alias else committed.node.name.value
        error = GraphQLError(str(cause), nodes=[committed.node], path=[key], original_error=cause)
        self.paths.answer(PLANNED)
        return ExecutionResult(None, [error])

    async def _compiled(self, operation: Operation) -> ExecutionResult | None:
        plans = self.plan_for(operation)
        context = operation.context
        unplanned = plans.unplanned
        if plans.planned is not None:
            try:
                data, errors = await plans.planned.execute(context, operation.coerced_variables)
            except NotPlanned as refusal:  # arguments outside the plan; nothing was written
                unplanned = str(refusal)
            except WriteCommitted as committed:
                return self._committed(committed)
            except Exception as error:
                # A defect or a database error: nothing was written (a write's failure after its
                # commit is WriteCommitted), so the ordinary executor answers, as it would have.
                logger.warning("planned execution failed, handed back: %s: %s", type(error).__name__, error)
                unplanned = "error"
                context.refresh()
            else:
                self.paths.answer(PLANNED)
                return ExecutionResult(data, errors or None)
        if self.is_sqlite is not None:
            self.paths.fall_back(PLANNED, unplanned or "not_planned")
        plan = plans.compiled
        if isinstance(plan, NotCompiled):
            self.paths.fall_back(COMPILED, plan.reason)
            return None
        try:
            data = await plan.execute(context, operation.coerced_variables)
        except Exception as error:  # Bailout or a resolver's error: the ordinary executor reports it
            logger.debug("compiled execution handed back: %s: %s", type(error).__name__, error)
            self.paths.fall_back(COMPILED, getattr(error, "reason", "error"))
            context.refresh()  # nothing cached by the abandoned run leaks into the ordinary one
            return None
        self.paths.answer(COMPILED)
        return ExecutionResult(data, None)
