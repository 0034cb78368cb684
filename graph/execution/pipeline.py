"""The request pipeline every transport calls: admission, then execution, then the error policy.

``RequestPipeline.run`` answers a query or mutation (HTTP); ``RequestPipeline.stream`` answers
any operation as a stream of results (both WebSocket protocols, through ``ConduitSchema.stream``).
Both pass the same ``AdmissionPipeline`` (``graph/admission``) and the same ``OperationExecutor``,
and give every error its ``extensions.code`` with ``graph.errors.classify_error`` before a
transport sees it.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator

from graphql import ExecutionResult as GraphQLExecutionResult
from graphql import GraphQLError, OperationType
from strawberry.types import ExecutionResult
from strawberry.types.execution import PreExecutionError

from graph.admission.pipeline import AdmissionPipeline, Operation, Refused
from graph.errors import classify_error
from graph.execution.executor import OperationExecutor
from graph.observability.operation import SubscriptionGauge


class RequestPipeline:
    """``admission`` then ``executor`` for each operation; ``gauge`` counts running subscriptions."""

    def __init__(self, admission: AdmissionPipeline, executor: OperationExecutor, gauge: SubscriptionGauge) -> None:
        self.admission = admission
        self.executor = executor
        self.gauge = gauge

    async def run(self, operation: Operation) -> GraphQLExecutionResult:
        """Admit and execute a query or mutation; raises ``Refused`` (errors classified) when not admitted."""
        request_id = operation.context.request_id
        try:
            await self.admission.admit(operation)
        except Refused as refusal:
            for error in refusal.errors:
                classify_error(error, request_id)
            raise
        result = await self.executor.execute(operation)
        for error in result.errors or ():
            classify_error(error, request_id)
        return result

    async def stream(self, operation: Operation) -> AsyncGenerator[ExecutionResult, None]:
        """Admit and execute any operation: one result for a query or mutation, one per event for a
        subscription. A refusal, or a subscription graphql-core refuses, is one ``PreExecutionError``."""
        try:
            await self.admission.admit(operation)
        except Refused as refusal:
            yield self._pre_execution(refusal.errors, operation)
            return
        if operation.kind is not OperationType.SUBSCRIPTION:
            result = await self.executor.execute(operation)
            yield self._streamed(list(result.errors or ()) or None, result.data, operation)
            return
        source = await self.executor.subscribe(operation)
        if isinstance(source, GraphQLExecutionResult):
            yield self._pre_execution(list(source.errors or ()), operation)
            return
        with self.gauge.active(operation.parsed, operation.operation_name):
            try:
                async with contextlib.aclosing(source):  # type: ignore[type-var]
                    async for event in source:
                        yield self._streamed(list(event.errors or ()) or None, event.data, operation)
            except Exception as error:  # graphql-core does not catch what the event source raises
                wrapped = error if isinstance(error, GraphQLError) else GraphQLError(str(error), original_error=error)
                yield self._streamed([wrapped], None, operation)

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
