"""The Strawberry schema: roots, scalars, extensions and the error policy."""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Iterator
from functools import partial
from typing import Any

import strawberry
from graphql import ExecutionResult as GraphQLExecutionResult
from graphql import GraphQLError, OperationDefinitionNode
from graphql.validation import NoSchemaIntrospectionCustomRule, specified_rules
from strawberry.extensions import (
    AddValidationRules,
    MaxTokensLimiter,
    ParserCache,
    SchemaExtension,
    ValidationCache,
)
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext

from db.engine import is_database_unavailable
from graph.admission.budget import CostBudgetExtension
from graph.admission.limits import TOKEN_LIMIT_MESSAGE, CostLimit, limit_rule
from graph.admission.nul import NulFreeVariables, NulStringRule
from graph.admission.suggestions import SuggestionFreeExecutionContext, SuggestionFreeValidation
from graph.errors import AppError
from graph.mutations.articles import ArticleMutations
from graph.mutations.auth import AuthMutations
from graph.mutations.comments import CommentMutations
from graph.mutations.users import UserMutations
from graph.queries import Query
from graph.scalars import DateTime
from graph.settings import Settings
from graph.subscriptions import Subscription
from graph.transport.persisted import TrustedDocuments, load_trusted_documents, trusted_documents_rule
from graph.types.article import ArticleType
from graph.types.comment import CommentType
from graph.types.user import UserType

logger = logging.getLogger("conduit.errors")

Mutation = merge_types("Mutation", (AuthMutations, UserMutations, ArticleMutations, CommentMutations))

VARIABLE = re.compile(r"^Variable ['\"]\$(\w+)['\"]")
INTERNAL_MESSAGE = "Internal server error."
DATABASE_UNAVAILABLE_MESSAGE = "database unavailable"
DOCUMENT_CACHE_SIZE = 1024


class ConduitSchema(strawberry.Schema):
    """A Strawberry schema whose errors all carry an ``extensions.code`` (contract README, Errors).

    Expected errors (``AppError``, permission errors) pass through. Errors graphql-core raises
    before execution (syntax, validation, variable coercion) become ``BAD_USER_INPUT`` (or
    ``QUERY_TOO_COMPLEX`` for the token limit). Anything else is unexpected: the client gets a
    generic message and the request id, the log gets the traceback.

    ``validation_rules`` are every rule a document must pass (graphql-core's and ours), for
    the compiled executor to validate the same way. ``trusted_documents`` are those of
    ``CONDUIT_PERSISTED_DOCUMENTS``, for the HTTP handler (``graph/transport/persisted.py``).
    """

    validation_rules: tuple[Any, ...] = tuple(specified_rules)
    trusted_documents: TrustedDocuments | None = None

    def process_errors(self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None) -> None:
        request_id = getattr(getattr(execution_context, "context", None), "request_id", None)
        for error in errors:
            classify_error(error, request_id)


def classify_error(error: GraphQLError, request_id: str | None) -> None:
    """Give ``error`` its ``extensions.code`` in place, masking unexpected ones (see ConduitSchema)."""
    extensions = dict(error.extensions or {})
    original = error.original_error
    if isinstance(original, AppError) or (extensions.get("code") and not _unexpected(original)):
        if "code" not in extensions:
            extensions["code"] = getattr(original, "code", "INTERNAL_SERVER_ERROR")
        error.extensions = extensions
        return
    if original is None or isinstance(original, GraphQLError):
        if error.path is not None:
            error.extensions = {"code": "INTERNAL_SERVER_ERROR", **extensions}
        elif TOKEN_LIMIT_MESSAGE in error.message:
            error.extensions = {"code": "QUERY_TOO_COMPLEX", "limit": "tokens"}
        else:
            variable = VARIABLE.match(error.message)
            fields = {"fields": {variable.group(1): [error.message]}} if variable else {}
            error.extensions = {"code": "BAD_USER_INPUT", **fields}
        return
    if is_database_unavailable(original):
        logger.error(
            "database unavailable in %s (request %s): %s",
            ".".join(str(p) for p in error.path or ()) or "operation",
            request_id,
            _one_line(original),
        )
        error.message = DATABASE_UNAVAILABLE_MESSAGE
        error.extensions = {"code": "INTERNAL_SERVER_ERROR", "requestId": request_id}
        return
    logger.error(
        "unexpected error in %s (request %s)",
        ".".join(str(p) for p in error.path or ()) or "operation",
        request_id,
        exc_info=(type(original), original, original.__traceback__),
    )
    error.message = INTERNAL_MESSAGE
    error.extensions = {"code": "INTERNAL_SERVER_ERROR", "requestId": request_id}


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"


def _unexpected(original: BaseException | None) -> bool:
    return original is not None and not isinstance(original, GraphQLError | AppError)


class RequireOperationName(SchemaExtension):
    """A document with several operations needs ``operationName`` (GraphQL spec, GetOperation).

    Strawberry would run the first operation instead; this refuses before execution.
    """

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        if document is not None and context.result is None and context._provided_operation_name is None:
            operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
            if len(operations) > 1:
                context.result = GraphQLExecutionResult(
                    data=None,
                    errors=[GraphQLError("Must provide operation name if query contains multiple operations.")],
                )
        yield


def create_schema(settings: Settings) -> ConduitSchema:
    """The schema with the limits and caches of ``settings``.

    Raises ``ValueError`` when ``CONDUIT_PERSISTED_DOCUMENTS`` is set but unusable.
    """
    rules: list[Any] = [
        limit_rule(
            settings.max_depth, settings.max_aliases, settings.max_directives, settings.max_directives_per_field
        ),
        NulStringRule,
    ]
    if not settings.introspection_enabled:
        rules.append(NoSchemaIntrospectionCustomRule)
    trusted = load_trusted_documents(settings.persisted_documents, settings.persisted_documents_only)
    if trusted is not None and settings.persisted_documents_only:
        # the HTTP handler refuses other documents first; this also covers WebSocket subscriptions
        rules.append(trusted_documents_rule(trusted))
    hide_suggestions = settings.field_suggestions_hidden
    extensions: list[Any] = [
        partial(MaxTokensLimiter, max_token_count=settings.max_tokens),
        partial(ParserCache, maxsize=DOCUMENT_CACHE_SIZE),
        partial(AddValidationRules, rules),
        partial(SuggestionFreeValidation if hide_suggestions else ValidationCache, maxsize=DOCUMENT_CACHE_SIZE),
        RequireOperationName,
        NulFreeVariables,
        partial(CostLimit, max_cost=settings.max_cost),
        CostBudgetExtension,  # after the cost limit: what it refuses is not charged
    ]
    schema = ConduitSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        types=[ArticleType, UserType, CommentType],
        extensions=extensions,
        scalar_overrides={dt.datetime: DateTime},
        execution_context_class=SuggestionFreeExecutionContext if hide_suggestions else None,
    )
    schema.validation_rules = (*specified_rules, *rules)
    schema.trusted_documents = trusted
    return schema


def export_sdl(settings: Settings | None = None) -> str:
    """The schema as SDL, as committed in ``schema.graphql``."""
    return create_schema(settings or Settings()).as_str() + "\n"
