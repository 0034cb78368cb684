"""The Strawberry extension that labels WebSocket operations for the metrics."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from typing import Any

from graphql import DocumentNode, FieldNode, OperationDefinitionNode
from strawberry import Schema
from strawberry.extensions import SchemaExtension
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType

from graph.observability.metrics import Metrics
from graph.observability.requests import _current, _error_code


def _operation(document: DocumentNode, name: str | None) -> OperationDefinitionNode | None:
    for definition in document.definitions:
        if not isinstance(definition, OperationDefinitionNode):
            continue
        if name is None or (definition.name is not None and definition.name.value == name):
            return definition
    return None


def _root_field(document: DocumentNode | None, name: str | None) -> str:
    operation = _operation(document, name) if document is not None else None
    if operation is not None and operation.selection_set.selections:
        selection = operation.selection_set.selections[0]
        if isinstance(selection, FieldNode):
            return selection.name.value
    return "unknown"


class OperationObserver(SchemaExtension):
    """Reports each operation to the request record and the subscription gauge.

    A subscription counts as active from the start of its execution until its stream ends,
    whichever way: completed, failed, stopped by the client or its connection closed (the
    stream is cancelled and the operation hook exits). Errors of streamed results (WebSocket)
    are counted here; those of HTTP responses by the middleware.
    """

    def __init__(self, metrics: Metrics) -> None:
        super().__init__()
        self.metrics = metrics
        self._subscription: str | None = None

    def _operation_type(self) -> OperationType | None:
        try:
            return self.execution_context.operation_type
        except RuntimeError:  # unparsable document, or no operation of the given name
            return None

    def on_operation(self) -> Iterator[None]:
        """Record the operation on the HTTP request; end the subscription, if one started."""
        try:
            yield
        finally:
            record = _current.get()
            if record is not None and record.graphql:
                operation_type = self._operation_type()
                if operation_type is not None:
                    record.operation_type = operation_type.value
                    record.operation_name = self.execution_context.operation_name
            if self._subscription is not None:
                self.metrics.subscriptions_active.labels(self._subscription).dec()
                self._subscription = None

    def on_execute(self) -> Iterator[None]:
        """Start counting a subscription: it passed validation and is about to run."""
        if self._subscription is None and self._operation_type() is OperationType.SUBSCRIPTION:
            context = self.execution_context
            self._subscription = _root_field(context.graphql_document, context.operation_name)
            self.metrics.subscriptions_active.labels(self._subscription).inc()
        yield

    def on_stream_result(self, result: Any) -> Iterator[None]:
        """Count the errors of one streamed result by code."""
        if isinstance(result, ExecutionResult) and result.errors:
            self.metrics.count_errors(_error_code({"extensions": error.extensions or {}}) for error in result.errors)
        yield


def instrument_schema(schema: Schema, metrics: Metrics) -> None:
    """Add ``OperationObserver`` (reporting to ``metrics``) to ``schema``'s extensions.

    Also exports a zero for every subscription field, so dashboards see them before first use.
    """
    # Strawberry reads the extensions on every execution; appending keeps create_schema unaware of metrics.
    schema.extensions = (*schema.extensions, partial(OperationObserver, metrics))
    subscription = schema.get_type_by_name("Subscription")
    for strawberry_field in getattr(subscription, "fields", ()):
        metrics.subscriptions_active.labels(schema.config.name_converter.get_graphql_name(strawberry_field))
