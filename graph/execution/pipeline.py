"""The request pipeline every transport calls: admission, then execution, then the error policy.

``RequestPipeline.run`` answers a query or mutation (HTTP); ``RequestPipeline.stream`` answers
any operation as a stream of results (both WebSocket protocols, through ``ConduitSchema.stream``).
Both pass the same ``AdmissionPipeline`` (``graph/admission``) and the same ``OperationExecutor``,
and give every error its ``extensions.code`` with ``graph.errors.classify_error`` before a
transport sees it.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable

from graphql import ExecutionResult as GraphQLExecutionResult
from graphql import GraphQLError, OperationType
from opentelemetry.trace import Tracer
from strawberry.types import ExecutionResult
from strawberry.types.execution import PreExecutionError

from graph.admission.pipeline import AdmissionPipeline, Operation, Refused
from graph.context import CHANGED
from graph.errors import classify_error
from graph.execution.executor import OperationExecutor
from graph.observability.operation import SubscriptionGauge
from graph.observability.tracing import note_errors, operation_span, sampled_out


class RequestPipeline:
    """``admission`` then ``executor`` for each operation; ``gauge`` counts running subscriptions."""

    def __init__(
        self,
        admission: AdmissionPipeline,
        executor: OperationExecutor,
        gauge: SubscriptionGauge,
        tracer: Tracer | None = None,
    ) -> None:
        self.admission = admission
        self.executor = executor
        self.gauge = gauge
        self.tracer = tracer  # None: tracing is off; else a span per operation (graph/observability/tracing.py)
        # run after every mutation, once its transactions committed and before its answer is sent:
        # the response cache's purge (graph/responses/cache.py), given the tags of what the mutation
        # committed (graph/context.py, CHANGED); None: nothing to do
        self.after_mutation: Callable[[Operation, set[str]], Awaitable[None]] | None = None

    async def run(self, operation: Operation) -> GraphQLExecutionResult:
        """Admit and execute a query or mutation; raises ``Refused`` (errors classified) when not admitted."""
        if self.tracer is None or sampled_out():
            return await self._run(operation)
        with operation_span(self.tracer, operation) as span:  # a refusal's code too
            result = await self._run(operation)
            note_errors(span, result.errors)
            return result

    async def _run(self, operation: Operation) -> GraphQLExecutionResult:
        request_id = operation.context.request_id
        try:
            await self.admission.admit(operation)
        except Refused as refusal:
            for error in refusal.errors:
                classify_error(error, request_id)
            raise
        result = await self._execute(operation)
        for error in result.errors or ():
            classify_error(error, request_id)
        return result

    async def _execute(self, operation: Operation) -> GraphQLExecutionResult:
        """Execute an admitted query or mutation; after a mutation, ``after_mutation`` with what it committed."""
        if self.after_mutation is None or operation.kind is not OperationType.MUTATION:
            return await self.executor.execute(operation)
        committed: set[str] = set()
        token = CHANGED.set(committed)  # filled by Context.transaction (graph/context.py)
        try:
            return await self.executor.execute(operation)
        finally:  # even when execution failed after a commit
            CHANGED.reset(token)
            await self.after_mutation(operation, committed)

    async def stream(self, operation: Operation) -> AsyncGenerator[ExecutionResult, None]:
        """Admit and execute any operation: one result for a query or mutation, one per event for a
        subscription. A refusal, or a subscription graphql-core refuses, is one ``PreExecutionError``.

        Traced, the operation's span covers admission and execution, or the setting up of a
        subscription's event stream: never a ``yield``, where its context could not be restored."""
        if self.tracer is None or sampled_out():
            begun = await self._begin(operation)
        else:
            with operation_span(self.tracer, operation) as span:
                begun = await self._begin(operation)
                if isinstance(begun, ExecutionResult):
                    note_errors(span, begun.errors)
        if isinstance(begun, ExecutionResult):
            yield begun
            return
        with self.gauge.active(operation.parsed, operation.operation_name):
            try:
                async with contextlib.aclosing(begun):  # type: ignore[type-var]
                    async for event in begun:
                        yield self._streamed(list(event.errors or ()) or None, event.data, operation)
            except Exception as error:  # graphql-core does not catch what the event source raises
                wrapped = error if isinstance(error, GraphQLError) else GraphQLError(str(error), original_error=error)
                yield self._streamed([wrapped], None, operation)

    async def _begin(self, operation: Operation) -> ExecutionResult | AsyncIterator[GraphQLExecutionResult]:
        """``stream``'s first part: the one result of a query, a mutation or a refusal, or a subscription's events."""
        try:
            await self.admission.admit(operation)
        except Refused as refusal:
            return self._pre_execution(refusal.errors, operation)
        if operation.kind is not OperationType.SUBSCRIPTION:
            result = await self._execute(operation)
            return self._streamed(list(result.errors or ()) or None, result.data, operation)
        source = await self.executor.subscribe(operation)
        if isinstance(source, GraphQLExecutionResult):
            return self._pre_execution(list(source.errors or ()), operation)
        return source

    def _pre_execution(self, errors: list[GraphQLError], operation: Operation) -> PreExecutionError:
        for error in errors:
            classify_error(error, operation.context.request_id)
        self.gauge.count_errors(errors)
        return PreExecutionError(data=None, errors=errors)

    def _streamed(self, errors: list[GraphQLError] | None, data: object, operation: Operation) -> ExecutionResult:
        for error in errors or ():
            classify_error(error, operation.context.request_id)
        self.gauge.count_errors(errors)
        return ExecutionResult(data=data, errors=errors)  # type: ignore[arg-type]
