"""Admission step: coerce the request's variables to the operation's types, once per request."""

from __future__ import annotations

from collections.abc import Mapping
from types import EllipsisType
from typing import Any

from graphql import GraphQLError, GraphQLSchema, OperationDefinitionNode
from graphql.execution.values import VariableValues, get_variable_values

from graph.admission.keys import CACHE_ENTRY_OVERHEAD_BYTES, cache_encoding
from graph.admission.pipeline import Operation, Refused
from graph.caches import BoundedCache

_SCALARS = (str, int, float, bool, type(None))


def coerced_variables(
    schema: GraphQLSchema,
    operation: OperationDefinitionNode,
    variables: Mapping[str, Any] | None,
    cache: BoundedCache[tuple[Any, ...], VariableValues] | None = None,
    *,
    hide_suggestions: bool = False,
    encoded: bytes | EllipsisType | None = ...,
) -> VariableValues | list[GraphQLError]:
    """graphql-core's ``get_variable_values`` for ``operation``, remembered in ``cache`` like ``operation_cost``.

    Remembered only when every value is a scalar (nothing a resolver could change in place),
    the variables are small JSON with no NaN or infinity, and the document is at most
    ``COST_CACHE_DOCUMENT_CHARS`` characters. Errors are never remembered.
    """
    key = None
    if (
        cache is not None
        and operation.loc is not None
        and (not variables or all(type(v) in _SCALARS for v in variables.values()))
    ):
        body = operation.loc.source.body
        if encoded is ...:
            encoded = cache_encoding(body, variables)
        if encoded is not None:
            key = (body, operation.loc.start, encoded)
            found = cache.get(key)
            if found is not None:
                return found
    coerced = get_variable_values(
        schema, operation.variable_definitions or (), dict(variables or {}), hide_suggestions=hide_suggestions
    )
    if key is not None and cache is not None and isinstance(coerced, VariableValues):
        cache.put(key, coerced, CACHE_ENTRY_OVERHEAD_BYTES + len(key[0]) + 2 * len(key[2]))
    return coerced


class CoerceVariables:
    """Coerces ``operation.variables`` (GraphQL spec, CoerceVariableValues) into ``operation.coerced``.

    Variables that do not coerce refuse the operation with graphql-core's errors (each naming
    its variable; ``BAD_USER_INPUT`` with ``extensions.fields``), as execution would, before the
    budget charges anything. Results are remembered in ``cache`` (see ``coerced_variables``).
    """

    name = "variables"

    def __init__(
        self, schema: GraphQLSchema, cache: BoundedCache[tuple[Any, ...], VariableValues], *, hide_suggestions: bool
    ) -> None:
        self.schema = schema
        self.cache = cache
        self.hide_suggestions = hide_suggestions

    def __call__(self, operation: Operation) -> None:
        coerced = coerced_variables(
            self.schema,
            operation.selected,
            operation.variables,
            self.cache,
            hide_suggestions=self.hide_suggestions,
            encoded=operation.variables_key(),
        )
        if not isinstance(coerced, VariableValues):
            raise Refused(coerced)
        operation.coerced = coerced
