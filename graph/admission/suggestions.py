"""Hiding field suggestions ("Did you mean ...?") from error messages.

A suggestion names a field, argument, type, input field or enum value the client did not
ask for, so a server without introspection would still give its schema away one guess at a
time. graphql-core 3.3 can leave them out wherever it makes them (its ``hide_suggestions``
flag: validation, and the coercion of variables and arguments during execution); Strawberry
passes neither, and its own ``StrawberryConfig(disable_field_suggestions=True)`` only trims the
"Cannot query field" message, leaving misspelled arguments and enum values to answer. So the
schema uses the two pieces here instead (``create_schema``, when
``Settings.field_suggestions_hidden``):

- ``SuggestionFreeValidation``, a schema extension that replaces Strawberry's
  ``ValidationCache``: the same cached validation, with ``hide_suggestions=True``;
- ``SuggestionFreeExecutionContext``, the executor class, which builds every execution (queries,
  mutations, subscriptions) with ``hide_suggestions=True``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any

from graphql import DocumentNode, GraphQLError, GraphQLSchema
from graphql.validation import validate
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.validation_rules.maybe_null import MaybeNullValidationRule
from strawberry.schema.validation_rules.one_of import OneOfInputValidationRule

# The rules Strawberry's own validation (strawberry.schema.schema.validate_document) adds to
# the ones an execution context carries; a document must pass them here too.
STRAWBERRY_RULES = (MaybeNullValidationRule, OneOfInputValidationRule)


def validate_without_suggestions(
    schema: GraphQLSchema, document: DocumentNode, rules: tuple[Any, ...]
) -> list[GraphQLError]:
    """graphql-core's ``validate`` with Strawberry's extra rules and no suggestions in the messages."""
    return validate(schema, document, (*rules, *STRAWBERRY_RULES), hide_suggestions=True)


@functools.cache
def _cached_validation(maxsize: int) -> Callable[[GraphQLSchema, DocumentNode, tuple[Any, ...]], list[GraphQLError]]:
    # One LRU per size, shared by the per-request extension instances (as ValidationCache does).
    return functools.lru_cache(maxsize=maxsize)(validate_without_suggestions)


class SuggestionFreeValidation(SchemaExtension):
    """Validation without suggestions, cached per (schema, document, rules) in an LRU of ``maxsize``.

    Setting ``pre_execution_errors`` before validation runs makes Strawberry skip its own
    (suggesting) validation, exactly as its ``ValidationCache`` extension does.
    """

    def __init__(self, maxsize: int) -> None:
        self.validate = _cached_validation(maxsize)

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        if context.graphql_document is not None:
            context.pre_execution_errors = self.validate(
                context.schema._schema, context.graphql_document, tuple(context.validation_rules)
            )
        yield


class SuggestionFreeExecutionContext(StrawberryGraphQLCoreExecutionContext):
    """Strawberry's executor, built with ``hide_suggestions=True`` (variable and argument coercion).

    graphql-core passes ``hide_suggestions`` to ``build`` as a keyword on every path (``execute``,
    ``experimental_execute_incrementally``, ``subscribe``), so overriding it here is enough.
    """

    @classmethod
    def build(cls, *args: Any, **kwargs: Any) -> Any:
        kwargs["hide_suggestions"] = True
        return super().build(*args, **kwargs)
