"""Which operations' responses carry secrets: the rule that keeps them uncompressed (BREACH).

BREACH (Gluck, Harris and Prado, Black Hat USA 2013; RFC 7457, 2.6) recovers a secret from a
compressed HTTPS response by watching its length while the attacker varies text that the same
response reflects: compression shortens it when a guess matches part of the secret. Our GraphQL
answers reflect the request (aliases, variables in error messages, the user's own input), so a
response that holds a credential must not be compressed, whatever else it holds.

The rule comes from the schema, not from a list of mutations: an operation carries a secret
when its selection, at any depth and through fragments, includes a field whose type is one of
``SECRET_TYPES``: object types whose fields are credentials. ``register``, ``login`` and
``refreshToken`` return ``AuthPayload`` (an access token and a refresh token); a mutation added
later that returns it (a password reset, say) is covered without a change here, and so is a
payload that nests one. A new type holding a credential belongs in ``SECRET_TYPES``
(``tests/graph/test_compression.py`` fails when a field named like a token sits outside them).

The decision is by operation, not outcome: a failed login is left uncompressed too, which
costs nothing worth keeping. Types from which no secret type can be reached (``Query`` today)
are known at startup, so a query pays one set lookup.
"""

from __future__ import annotations

from graphql import (
    DocumentNode,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLUnionType,
    OperationDefinitionNode,
    get_named_type,
)

from graph.selections import selected_fields

SECRET_TYPES = frozenset({"AuthPayload"})
"""Object types whose fields are credentials (``AuthPayload``: ``token`` and ``refreshToken``)."""


def _reaching(schema: GraphQLSchema, secret: frozenset[str]) -> frozenset[str]:
    """Names of the types from whose fields a secret type can be reached (the secret types included)."""
    edges: dict[str, set[str]] = {}
    for name, named in schema.type_map.items():
        targets: set[str] = set()
        if isinstance(named, GraphQLObjectType | GraphQLInterfaceType):
            targets = {get_named_type(field.type).name for field in named.fields.values()}
        if isinstance(named, GraphQLUnionType):
            targets = {member.name for member in named.types}
        if isinstance(named, GraphQLInterfaceType):
            targets |= {implementation.name for implementation in schema.get_possible_types(named)}
        edges[name] = targets
    reaching = set(secret)
    changed = True
    while changed:  # fixpoint: a type reaches a secret when one of its fields' types does
        changed = False
        for name, targets in edges.items():
            if name not in reaching and targets & reaching:
                reaching.add(name)
                changed = True
    return frozenset(reaching)


class SecretSelections:
    """``carries_secret``: whether an operation selects a field of a secret type (module docstring)."""

    def __init__(self, schema: GraphQLSchema, secret_types: frozenset[str] = SECRET_TYPES) -> None:
        self.schema = schema
        self.secret_types = secret_types
        self.reaching = _reaching(schema, secret_types)

    def carries_secret(self, document: DocumentNode, definition: OperationDefinitionNode) -> bool:
        """Whether the operation ``definition`` of the valid ``document`` selects a field of a secret type."""
        root = self.schema.get_root_type(definition.operation)
        if root is None or root.name not in self.reaching:
            return False
        reaching = self.reaching
        return any(
            field is not None and get_named_type(field.type).name in self.secret_types
            for _node, field, _root in selected_fields(
                self.schema, document, definition, descend=lambda named: named.name in reaching
            )
        )
