"""Cache hints in the schema, and the cache policy of an operation (Apollo Server's ``@cacheControl``).

Types and fields declare how long their values may be cached, and for whom, with the schema
directive ``@cacheControl(maxAge, scope, inheritMaxAge)`` where they are declared
(``graph/types/``, ``graph/queries.py``); ``schema.graphql`` shows them. An operation's policy
is the most restrictive over what it selects, computed as Apollo Server's cache-control plugin
does at run time (``@apollo/server``, ``plugin/cacheControl``), here once per document before
execution:

- a field returning an object, interface or union starts from that type's hint; its own hint
  replaces it; ``inheritMaxAge`` (on the type or the field) leaves the maxAge to the parent;
- a field with no maxAge then gets 0 when it is a root field or returns a composite type that
  does not inherit; a scalar field inherits (it restricts nothing);
- the operation's maxAge is the least over its fields, its scope PRIVATE if any field is.

Selections under ``@skip``/``@include`` count whatever the variables say (a policy holds for
every set of them); a field selected on an interface counts with the interface's own hints, and
each fragment is walked once (``graph/selections.py``).
``missing_hints`` lists the fields whose policy would come from no declaration at all; the
suite fails on any.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

import strawberry
from graphql import (
    DocumentNode,
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    get_named_type,
    is_composite_type,
)
from strawberry.schema_directive import Location

from graph.selections import selected_fields

__all__ = [
    "NO_STORE",
    "PRIVATE",
    "CacheControl",
    "CacheControlScope",
    "CachePolicy",
    "cache_control_header",
    "missing_hints",
    "operation_policy",
]


@strawberry.enum(description="Who may keep a cached response: any cache (PUBLIC) or only the viewer's (PRIVATE).")
class CacheControlScope(enum.Enum):
    PUBLIC = strawberry.enum_value("PUBLIC", description="Any cache may keep the value, shared caches included.")
    PRIVATE = strawberry.enum_value(
        "PRIVATE", description="Only the viewer's own cache may keep the value: it depends on who asks."
    )


@strawberry.schema_directive(
    name="cacheControl",
    locations=[Location.OBJECT, Location.FIELD_DEFINITION, Location.INTERFACE],
    description="How long a value may be cached (seconds), and by whom; the operation's policy is the most "
    "restrictive over what it selects (Apollo Server's @cacheControl).",
)
class CacheControl:
    # UNSET: an argument not given, which the SDL leaves out (``@cacheControl(maxAge: 60)``)
    max_age: int | None = strawberry.field(
        default=strawberry.UNSET,
        description="Seconds the value may be cached (0: not at all). Omitted on a field: the hint of the type it "
        "returns; without one, 0 for a root field or a composite value, the parent's for a scalar.",
    )
    scope: CacheControlScope | None = strawberry.field(
        default=strawberry.UNSET, description="Who may cache the value; omitted: the type's scope, else PUBLIC."
    )
    inherit_max_age: bool | None = strawberry.field(
        default=strawberry.UNSET, description="true: the maxAge is the parent field's, whatever the type's hint."
    )


PRIVATE = CacheControl(scope=CacheControlScope.PRIVATE)
"""The hint of a field that depends on the viewer (``favorited``, ``following``, ``email``, ...)."""


@dataclass(frozen=True, slots=True)
class CachePolicy:
    """An operation's cache policy: ``max_age`` in seconds (0: not cacheable) and whether it is private."""

    max_age: int
    private: bool


NO_STORE = CachePolicy(0, True)
"""Nothing may keep the response (mutations, errors, subscriptions, policies of 0 seconds)."""


def cache_control_header(policy: CachePolicy) -> str:
    """``policy`` as ``Cache-Control`` (RFC 9111, 5.2.2): ``public, max-age=N``, ``private, …`` or ``no-store``."""
    if policy.max_age <= 0:
        return "no-store"
    return f"{'private' if policy.private else 'public'}, max-age={policy.max_age}"


@dataclass(frozen=True, slots=True)
class _Hint:
    max_age: int | None
    scope: CacheControlScope | None
    inherit_max_age: bool


def _hint(definition: Any) -> _Hint | None:
    """The ``@cacheControl`` a Strawberry type or field definition declares, ``None`` when none."""
    for directive in getattr(definition, "directives", None) or ():
        if isinstance(directive, CacheControl):
            return _Hint(
                None if directive.max_age is strawberry.UNSET else directive.max_age,
                None if directive.scope is strawberry.UNSET else directive.scope,
                directive.inherit_max_age is True,
            )
    return None


def _type_hint(named: GraphQLNamedType) -> _Hint | None:
    return _hint((named.extensions or {}).get("strawberry-definition"))


def _field_hint(field: GraphQLField) -> _Hint | None:
    return _hint((field.extensions or {}).get("strawberry-definition"))


@dataclass
class _Policy:
    max_age: int | None = None
    private: bool = False

    def restrict(self, max_age: int | None, private: bool) -> None:
        if max_age is not None and (self.max_age is None or max_age < self.max_age):
            self.max_age = max_age
        self.private = self.private or private


def field_policy(field: GraphQLField, root: bool) -> tuple[int | None, bool]:
    """``(maxAge or None, private)`` of one field, by Apollo's rules (module docstring)."""
    target = get_named_type(field.type)
    max_age: int | None = None
    private = False
    inherit = False
    if is_composite_type(target):
        type_hint = _type_hint(target)
        if type_hint is not None:
            max_age, private = type_hint.max_age, type_hint.scope is CacheControlScope.PRIVATE
            inherit = type_hint.inherit_max_age
    hint = _field_hint(field)
    if hint is not None:
        if hint.inherit_max_age and max_age is None:
            inherit = True
        elif hint.max_age is not None:
            max_age = hint.max_age
        if hint.scope is not None:
            private = hint.scope is CacheControlScope.PRIVATE
    if max_age is None and ((is_composite_type(target) and not inherit) or root):
        max_age = 0
    return max_age, private


def operation_policy(schema: GraphQLSchema, document: DocumentNode, operation: OperationDefinitionNode) -> CachePolicy:
    """The cache policy of ``operation`` in ``document`` (module docstring); ``NO_STORE`` for anything but a query."""
    if operation.operation is not OperationType.QUERY or schema.query_type is None:
        return NO_STORE
    policy = _Policy()
    for node, field, root in selected_fields(schema, document, operation):
        if field is not None:
            policy.restrict(*field_policy(field, root))
        elif node.name.value != "__typename":  # introspection (__schema, __type): not cacheable
            policy.restrict(0, False)
    if policy.max_age is None or policy.max_age <= 0:
        return NO_STORE
    return CachePolicy(policy.max_age, policy.private)


def missing_hints(schema: GraphQLSchema) -> list[str]:
    """``Type.field`` of every field reachable from ``Query`` whose policy no ``@cacheControl`` declares.

    A root field needs its own hint or its type's; a field returning a composite type needs
    that type's hint or its own; a scalar field needs its own or its parent type's.
    """
    missing: list[str] = []
    query = schema.query_type
    if query is None:
        return missing
    seen: set[str] = set()
    pending: list[tuple[GraphQLObjectType | GraphQLInterfaceType, bool]] = [(query, True)]
    while pending:
        parent, root = pending.pop()
        if parent.name in seen:
            continue
        seen.add(parent.name)
        parent_hint = _type_hint(parent)
        for name, field in parent.fields.items():
            target = get_named_type(field.type)
            own = _field_hint(field)
            if is_composite_type(target):
                declared = own is not None or _type_hint(target) is not None
                below: list[Any] = [target]
                if not isinstance(target, GraphQLObjectType):
                    below += schema.get_possible_types(target)
                pending += [
                    (found, False) for found in below if isinstance(found, GraphQLObjectType | GraphQLInterfaceType)
                ]
            else:
                declared = own is not None or (parent_hint is not None and not root)
            if not declared:
                missing.append(f"{parent.name}.{name}")
    return sorted(missing)
