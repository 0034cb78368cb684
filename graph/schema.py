"""The Strawberry schema: roots, types, scalars and the validation rules; run through the request pipeline."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncGenerator, Iterable
from typing import TYPE_CHECKING, Any

import strawberry
from graphql import OperationType
from graphql.validation import NoSchemaIntrospectionCustomRule, specified_rules
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.schema.validation_rules.maybe_null import MaybeNullValidationRule
from strawberry.schema.validation_rules.one_of import OneOfInputValidationRule
from strawberry.types import ExecutionResult

from graph.admission.limits import limit_rule
from graph.admission.nul import NulStringRule
from graph.admission.pipeline import Operation
from graph.mutations.accounts import AccountMutations
from graph.mutations.articles import ArticleMutations
from graph.mutations.auth import AuthMutations
from graph.mutations.comments import CommentMutations
from graph.mutations.moderation import ModerationMutations
from graph.mutations.users import UserMutations
from graph.queries import Query
from graph.scalars import DateTime
from graph.settings import Settings
from graph.subscriptions import Subscription
from graph.transport.persisted import TrustedDocuments, load_trusted_documents
from graph.types.article import ArticleType
from graph.types.comment import CommentType
from graph.types.user import UserType

if TYPE_CHECKING:
    from graph.execution.pipeline import RequestPipeline

# The rules Strawberry's own validation adds to graphql-core's (strawberry.schema.schema.validate_document).
STRAWBERRY_RULES = (MaybeNullValidationRule, OneOfInputValidationRule)

WEBSOCKET_OPERATIONS = (OperationType.QUERY, OperationType.MUTATION, OperationType.SUBSCRIPTION)


@strawberry.type(
    description="The writes. Every one needs sign-in (UNAUTHENTICATED without) except register, login, "
    "refreshToken, requestPasswordReset, resetPassword and verifyEmail."
)
class Mutation(AuthMutations, UserMutations, ArticleMutations, CommentMutations, ModerationMutations, AccountMutations):
    """Every mutation, merged as ``strawberry.tools.merge_types`` would, with the type's description."""


class ConduitSchema(strawberry.Schema):
    """The Strawberry schema, executed through the app's one request pipeline.

    Strawberry's own ``execute`` is not used: the HTTP transport calls the pipeline
    (``graph/execution/pipeline.py``) directly, and both WebSocket protocols reach it through
    ``stream``, which Strawberry's handlers call for every operation they run. ``pipeline`` is
    set by the app factory. ``validation_rules`` are every rule a document must pass (graphql-core's,
    Strawberry's and ours); ``trusted_documents`` are those of ``CONDUIT_PERSISTED_DOCUMENTS``.
    """

    validation_rules: tuple[Any, ...] = tuple(specified_rules)
    trusted_documents: TrustedDocuments | None = None
    pipeline: RequestPipeline | None = None

    async def stream(  # type: ignore[override]
        self,
        query: str | None,
        variable_values: dict[str, Any] | None = None,
        context_value: Any = None,
        root_value: Any = None,
        operation_name: str | None = None,
        operation_extensions: dict[str, Any] | None = None,
        allowed_operation_types: Iterable[OperationType] | None = None,
    ) -> AsyncGenerator[ExecutionResult, None]:
        """Run an operation received over a WebSocket through the pipeline; its result(s) as a stream."""
        if self.pipeline is None:
            raise RuntimeError("the schema runs through the pipeline create_app gives it")
        # Strawberry's own OperationType enum (legacy graphql-ws allows only subscriptions), as graphql-core's
        kinds = allowed_operation_types or (OperationType.QUERY, OperationType.MUTATION, OperationType.SUBSCRIPTION)
        allowed = frozenset(OperationType(kind.value) for kind in kinds)
        operation = Operation(
            query=query,
            operation_name=operation_name,
            variables=variable_values,
            context=context_value,
            allowed=allowed,
            extensions=operation_extensions,
            transport="WebSocket",
        )
        return self.pipeline.stream(operation)


def describe_directive_arguments(schema: strawberry.Schema) -> None:
    """Give schema directives' arguments the descriptions of their fields, which Strawberry leaves out.

    ``@cacheControl(maxAge, scope, inheritMaxAge)`` declares them with ``strawberry.field(description=...)``.
    """
    for directive in schema._schema.directives:
        definition = (directive.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
        for field in getattr(definition, "fields", ()):
            name = schema.config.name_converter.get_graphql_name(field)
            if field.description and name in directive.args:
                directive.args[name].description = field.description


def create_schema(settings: Settings) -> ConduitSchema:
    """The schema, its validation rules and its trusted documents for ``settings``.

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
    schema = ConduitSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        types=[ArticleType, UserType, CommentType],
        scalar_overrides={dt.datetime: DateTime},
    )
    describe_directive_arguments(schema)
    # the limits first: a hostile document is refused before the other rules walk it
    schema.validation_rules = (*rules[:1], *specified_rules, *STRAWBERRY_RULES, *rules[1:])
    schema.trusted_documents = trusted
    return schema


def export_sdl(settings: Settings | None = None) -> str:
    """The schema as SDL, as committed in ``schema.graphql``."""
    return create_schema(settings or Settings()).as_str() + "\n"
