"""Admission step: coerce the request's variables to the operation's types, once per request."""

from __future__ import annotations

from typing import Any

from graphql import GraphQLSchema
from graphql.execution.values import VariableValues

from graph.admission.limits import coerced_variables
from graph.admission.pipeline import Operation, Refused
from graph.caches import BoundedCache


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
            self.schema, operation.selected, operation.variables, self.cache, hide_suggestions=self.hide_suggestions
        )
        if not isinstance(coerced, VariableValues):
            raise Refused(coerced)
        operation.coerced = coerced
