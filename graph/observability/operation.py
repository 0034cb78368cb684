"""What the metrics and the access log learn of each GraphQL operation: its type, name and root field.

``observe_operation`` is an admission step (``graph/admission``): it runs on every operation,
HTTP and WebSocket, right after the operation is selected. ``SubscriptionGauge`` counts the
subscriptions running now, by root field, for ``graph/execution/executor.py``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

from graphql import DocumentNode, FieldNode, GraphQLError, OperationDefinitionNode
from strawberry import Schema

from graph.observability.metrics import Metrics
from graph.observability.requests import _current, _error_code

if TYPE_CHECKING:
    from graph.admission.pipeline import Operation


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


def observe_operation(operation: Operation) -> None:
    """Admission step: note the operation's type and name on the HTTP request's record (access log, metrics)."""
    note_operation(operation.kind.value, operation.name)


def note_operation(operation_type: str, name: str | None) -> None:
    """Note an operation's type (``query``...) and name on the HTTP request's record, as ``observe_operation``
    does; for an answer that did not pass admission (from the response cache)."""
    record = _current.get()
    if record is not None and record.graphql:
        record.operation_type = operation_type
        record.operation_name = name


class SubscriptionGauge:
    """``conduit_subscriptions_active{field}``: a subscription counts from its start until its stream ends,
    whichever way (completed, failed, stopped by the client, its connection closed)."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    @contextlib.contextmanager
    def active(self, document: DocumentNode, operation_name: str | None) -> Iterator[None]:
        """Count one subscription of ``document`` as active while the block runs."""
        field = _root_field(document, operation_name)
        gauge = self.metrics.subscriptions_active.labels(field)
        gauge.inc()
        try:
            yield
        finally:
            gauge.dec()

    def count_errors(self, errors: list[GraphQLError] | None) -> None:
        """Count the errors of one streamed result by code (those of HTTP responses: the middleware)."""
        if errors:
            self.metrics.count_errors(_error_code({"extensions": error.extensions or {}}) for error in errors)


def register_subscription_fields(schema: Schema, metrics: Metrics) -> None:
    """Export a zero for every subscription field of ``schema``, so dashboards see them before first use."""
    subscription = schema.get_type_by_name("Subscription")
    for strawberry_field in getattr(subscription, "fields", ()):
        metrics.subscriptions_active.labels(schema.config.name_converter.get_graphql_name(strawberry_field))
