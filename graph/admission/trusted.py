"""Admission step: with ``CONDUIT_PERSISTED_DOCUMENTS_ONLY``, only the trusted documents run.

The HTTP transport already resolved a document named by id or hash (``graph/transport/persisted.py``);
this refuses any other text, on every transport, before it is parsed.
"""

from __future__ import annotations

from graphql import GraphQLError

from graph.admission.pipeline import Operation, Refused
from graph.transport.persisted import NOT_ALLOWED, NOT_ALLOWED_MESSAGE, TrustedDocuments


class TrustedOnly:
    """Refuses, with ``PERSISTED_QUERY_NOT_ALLOWED``, a document whose text is not one of ``trusted``."""

    name = "trusted_documents"

    def __init__(self, trusted: TrustedDocuments) -> None:
        self.trusted = trusted

    def __call__(self, operation: Operation) -> None:
        if operation.query is None or not self.trusted.trusts(operation.query):
            raise Refused([GraphQLError(NOT_ALLOWED_MESSAGE, extensions={"code": NOT_ALLOWED})])
