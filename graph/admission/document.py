"""Admission steps for the document: parse (token limit), select the operation, validate.

Parsed and validated documents are remembered by their text in the app's ``documents`` cache
(``graph/caches.py``), bounded by entries and bytes. Only documents that passed validation are
kept: a client sending distinct unparsable or invalid documents costs work, never memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from graphql import (
    DocumentNode,
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    parse,
    validate,
)
from graphql.language import Lexer, Source, TokenKind

from graph.admission.limits import too_complex
from graph.admission.pipeline import Operation, Refused
from graph.caches import BoundedCache

DOCUMENT_OVERHEAD_BYTES = 1024
BYTES_PER_CHARACTER = 8
"""What a parsed document costs per character of its text: the text, graphql-core's tokens (it
keeps them all, linked) and AST nodes. Measured with tracemalloc on the benchmark's documents:
about 5 to 7 bytes per character beside the text itself; a document that is mostly one long
comment costs about 2 (the text and the comment token's copy)."""
MAX_CACHED_DOCUMENT_CHARS = 64 * 1024
"""Longer documents are parsed on every request and never cached (nor their plans): a frontend's
operations are a few KiB, and a long-lived copy of a large text, kept among the request's
short-lived buffers, keeps the allocator from giving their memory back (measured: 600 distinct
900 KB documents grew a server by 230 MB when cached under a byte budget, well under its bound)."""
TOKEN_COUNT_CAP = 10
"""A refused document's tokens are counted up to this many times the limit, then no further."""


def document_bytes(query: str) -> int:
    """The bytes a parsed ``query`` is charged in the document cache (see ``BYTES_PER_CHARACTER``)."""
    return DOCUMENT_OVERHEAD_BYTES + BYTES_PER_CHARACTER * len(query)


def cacheable(query: str) -> bool:
    """Whether ``query`` and what is derived from it may be cached (``MAX_CACHED_DOCUMENT_CHARS``)."""
    return len(query) <= MAX_CACHED_DOCUMENT_CHARS


def count_tokens(query: str, cap: int) -> int:
    """Lexical tokens of ``query`` (comments excluded, as graphql-core counts them), at most ``cap``."""
    lexer = Lexer(Source(query))
    count = 0
    try:
        while count < cap and lexer.advance().kind is not TokenKind.EOF:
            count += 1
    except GraphQLError:  # a syntax error past the limit: what was counted stands
        pass
    return count


class Parse:
    """Parse ``operation.query`` with at most ``max_tokens`` tokens, or take it from ``documents``.

    Refusals: no query (400), a syntax error (``BAD_USER_INPUT``), over the token limit
    (``QUERY_TOO_COMPLEX`` with ``limit: "tokens"``, ``value`` and ``maximum``; contract README,
    Limits).
    """

    name = "parse"

    def __init__(self, documents: BoundedCache[str, DocumentNode], max_tokens: int) -> None:
        self.documents = documents
        self.max_tokens = max_tokens

    def __call__(self, operation: Operation) -> None:
        query = operation.query
        if not query:
            raise Refused([GraphQLError("The 'query' parameter is required.")], status=400)
        document = self.documents.get(query)
        if document is not None:
            operation.document = document
            operation.validated = True
            return
        try:
            operation.document = parse(query, max_tokens=self.max_tokens)
        except GraphQLError as error:
            # graphql-core's words when it stops at max_tokens (graphql.language.parser, Parser.advance_lexer)
            if "Document contains more than" in error.message:
                cap = self.max_tokens * TOKEN_COUNT_CAP
                value = count_tokens(query, cap)
                counted = f"{value}" if value < cap else f"over {cap}"
                message = f"Document has {counted} tokens; the limit is {self.max_tokens}."
                raise Refused([too_complex(message, "tokens", value, self.max_tokens)]) from None
            raise Refused([error]) from None


def select_operation(operation: Operation) -> None:
    """Pick the operation to run (GraphQL spec, "GetOperation").

    Refusals, 400 whatever the media type: several operations and no ``operationName``, no
    operation of that name.
    """
    document = operation.parsed
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    name = operation.operation_name
    if name is None:
        if len(operations) > 1:
            raise Refused(
                [GraphQLError("The document has several operations: give the operation name in 'operationName'.")],
                status=400,
            )
        selected = operations[0] if operations else None
    else:
        selected = next((o for o in operations if o.name is not None and o.name.value == name), None)
    if selected is None:
        message = "The document has no operation." if name is None else f"The document has no operation named {name!r}."
        raise Refused([GraphQLError(message)], status=400)
    operation.definition = selected


def served_by_transport(operation: Operation) -> None:
    """Refuse an operation whose type this transport does not serve: a mutation over GET (405 with
    ``Allow: POST``; GraphQL over HTTP, 7.1.1), a subscription over HTTP (400)."""
    kind = operation.kind
    if kind not in operation.allowed:
        if kind is OperationType.MUTATION and OperationType.QUERY in operation.allowed:
            raise Refused(
                [GraphQLError("Mutations are only accepted over POST.")], status=405, headers={"Allow": "POST"}
            )
        raise Refused([GraphQLError(f"{kind.value} operations are not served over {operation.transport}.")], status=400)


class Validate:
    """Validate the document against ``rules`` (every rule: graphql-core's, Strawberry's and ours).

    ``hide_suggestions`` leaves "Did you mean ...?" out of the messages. A valid document is
    remembered in ``documents``; an invalid one is refused with the rules' errors and not kept.
    """

    name = "validate"

    def __init__(
        self,
        schema: GraphQLSchema,
        rules: Sequence[Any],
        documents: BoundedCache[str, DocumentNode],
        *,
        hide_suggestions: bool,
    ) -> None:
        self.schema = schema
        self.rules = tuple(rules)
        self.documents = documents
        self.hide_suggestions = hide_suggestions

    def __call__(self, operation: Operation) -> None:
        if operation.validated:
            return
        document = operation.parsed
        errors = validate(self.schema, document, self.rules, hide_suggestions=self.hide_suggestions)
        if errors:
            raise Refused(errors)
        operation.validated = True
        if operation.query is not None and cacheable(operation.query):
            self.documents.put(operation.query, document, document_bytes(operation.query))
