"""What a cached answer contains and what a write changes, as tags: single entities where the answer names them.

**An answer's tags** (``AnswerTags``) are read from its data, after it ran, with a plan made once
per document (``AnswerTags.plan``) that says, for each position of the answer, which kinds of
entity it may hold and which response keys identify one:

- an entity whose ``id`` is selected is ``Article#12`` (the kind and primary key of its global
  ID); one whose natural key is selected (an ``Article``'s ``slug``, a ``User``'s ``username``)
  is ``Article@how-to-train-your-dragon``; one named by its root field's argument
  (``article(slug:)``, ``user(username:)``, ``node(id:)``, ``nodes(ids:)``) is named by it, so
  that a cached ``null`` goes when the entity appears;
- a connection below an entity is that entity's: ``Article#12/comments``,
  ``User@jake/articles``, ``User@jake/favorites`` (its members, order and ``totalCount``);
- ``articles`` is ``Article/list`` (every filter, search and ordering), and its ``author`` and
  ``favoritedBy`` arguments name those users (a renamed user's list changes);
  ``tags`` and ``popularTags`` are ``Tag``;
- an entity the answer does not identify (neither key selected, say ``author { bio }``) is its
  kind alone, ``Article``, ``User``, ``Comment``, and so is a connection below one (its items'
  kind). An answer whose plan is ambiguous (one response key for two different fields under
  an abstract type) carries every kind.

**A write's tags** are what its mutation changed, said by its resolver inside its transaction
(``Context.touch``, ``graph/context.py``; the planned ``addComment`` says it in
``graph/execution/planned/writes.py``) and kept only if the transaction commits, in both
spellings of each entity, ``#`` and ``@``: ``favoriteArticle`` touches the article (its
``favoritesCount``), ``Article/list`` (ordering by favorites, ``favoritedBy``) and the viewer's
``favorites``; ``addComment`` the article's ``comments``. Besides, each mutation declares in
``MUTATION_PURGES`` the kinds it may change, and purges those kinds' bare tags, so answers that
did not identify what they hold are purged as before. ``deleteViewer`` and ``deleteUser``
purge everything (``FLUSH``): what a user wrote, favorited and followed is everywhere.

So a comment on one article purges that article's page and nothing else; a new article purges
the lists and its author's profile, not the other articles' pages. ``tests/graph/
test_response_cache_tags.py`` checks, for every mutation, that no cached answer of a set of
pages differs afterwards from a fresh one.

**The race** (``graph/responses/cache.py``) is kept per kind: each tag counts as its kind
(``kind_of``), a purge moves the epochs of its tags' kinds, and an answer is not stored if one of
its kinds moved while it was computed.
"""

from __future__ import annotations

__all__ = [
    "ALL",
    "ARTICLE",
    "ARTICLE_LISTS",
    "COMMENT",
    "FLUSH",
    "KINDS",
    "MUTATION_PURGES",
    "TAG",
    "USER",
    "AnswerTags",
    "connection",
    "entity",
    "kind_of",
    "mutation_purges",
]

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    OperationDefinitionNode,
    SelectionSetNode,
    get_named_type,
    is_abstract_type,
    is_composite_type,
)
from graphql.execution.values import get_argument_values

from db.response_store import FLUSH, kind_of
from graph.admission.limits import fragment_definitions
from graph.ids import from_global_id
from graph.selections import fragment_selection, selected_fields

ARTICLE = "Article"
COMMENT = "Comment"
TAG = "Tag"
USER = "User"
KINDS: tuple[str, ...] = (ARTICLE, COMMENT, TAG, USER)
"""Every kind, in a fixed order (the purge epochs are read in it)."""
ARTICLE_LISTS = "Article/list"
"""The tag of every ``articles`` answer, whatever its arguments."""

TYPE_KINDS: dict[str, str] = {
    "Article": ARTICLE,
    "ArticleConnection": ARTICLE,
    "ArticleEdge": ARTICLE,
    "Comment": COMMENT,
    "CommentConnection": COMMENT,
    "CommentEdge": COMMENT,
    "User": USER,
    "UserConnection": USER,
    "UserEdge": USER,
    "Suspension": USER,
    "TagCount": TAG,
}
"""The kind of each object type that holds entities; the others (``PageInfo``, ``RateLimit``) hold none."""

ENTITY_TYPES = frozenset({"Article", "Comment", "User"})
"""The types whose objects are single entities, identified by ``id`` (or ``NATURAL_KEYS``)."""
NATURAL_KEYS: dict[str, str] = {"Article": "slug", "User": "username"}
"""The field that names an entity of a type as well as its ``id`` does."""
CONNECTIONS = frozenset({"ArticleConnection", "CommentConnection", "UserConnection"})
"""The connection types: below an entity, a connection field is that entity's (``Article#12/comments``)."""
ROOT_NAMES: dict[str, tuple[str, str]] = {"article": (ARTICLE, "slug"), "user": (USER, "username")}
"""Root fields whose argument names the entity they return: field → (kind, argument)."""
ROOT_LISTS: dict[str, str] = {"articles": ARTICLE_LISTS, "tags": TAG, "popularTags": TAG}
"""Root fields answering lists that any write of their kind may change: field → tag."""
LIST_USERS = ("author", "favoritedBy")
"""``articles`` arguments naming a user by username."""
ARGUMENT_ROOTS = frozenset({*ROOT_NAMES, "node", "nodes", "articles"})
"""Root fields whose arguments add tags: they name what they return, or users (``LIST_USERS``)."""

ALL = frozenset(KINDS)
NONE: frozenset[str] = frozenset()

MUTATION_PURGES: dict[str, frozenset[str]] = {
    # sessions, tokens and mails: nothing a public answer shows
    "login": NONE,
    "refreshToken": NONE,
    "logout": NONE,
    "requestPasswordReset": NONE,
    "resetPassword": NONE,
    "requestEmailVerification": NONE,
    # a new user (a cached `user(username:)` may be null); emailVerified, role, profile fields
    "register": frozenset({USER}),
    "verifyEmail": frozenset({USER}),
    "updateViewer": frozenset({USER}),
    "setUserRole": frozenset({USER}),
    "suspendUser": frozenset({USER}),
    "unsuspendUser": frozenset({USER}),
    # followersCount, followingCount
    "followUser": frozenset({USER}),
    "unfollowUser": frozenset({USER}),
    # article lists and totalCount, tag counts, the author's articles
    "createArticle": frozenset({ARTICLE, TAG, USER}),
    "updateArticle": frozenset({ARTICLE, TAG}),
    "deleteArticle": frozenset({ARTICLE, TAG, USER, COMMENT}),
    # favoritesCount, the user's favorites
    "favoriteArticle": frozenset({ARTICLE, USER}),
    "unfavoriteArticle": frozenset({ARTICLE, USER}),
    # an article's comments
    "addComment": frozenset({COMMENT}),
    "deleteComment": frozenset({COMMENT}),
    # everything the user wrote, favorited or followed goes
    "deleteViewer": frozenset({FLUSH}),
    "deleteUser": frozenset({FLUSH}),
}
"""The kinds each mutation may change, whose bare tags it purges (module docstring); a mutation
missing here purges everything."""


def entity(kind: str, pk: int, name: str | None = None) -> tuple[str, ...]:
    """Both spellings of one entity: ``("Article#12", "Article@its-slug")``; ``name`` is its natural key."""
    return (f"{kind}#{pk}", f"{kind}@{name}") if name is not None else (f"{kind}#{pk}",)


def connection(identities: Iterable[str], field_name: str) -> tuple[str, ...]:
    """The tags of a connection ``field_name`` below each of ``identities`` (``entity``'s)."""
    return tuple(f"{identity}/{field_name}" for identity in identities)


@dataclass(eq=False, slots=True)
class Position:
    """An object position of an answer: the kinds it may hold, its identifying keys, what is below.

    ``natural``: ``(response key, kind)`` of the natural keys selected (``slug``, ``username``);
    ``children``: response key → ``(field name, connection item kind or None, position)``.
    """

    kinds: frozenset[str]
    ids: list[str] = field(default_factory=list)
    natural: list[tuple[str, str]] = field(default_factory=list)
    children: dict[str, tuple[str, str | None, Position]] = field(default_factory=dict)
    fields: dict[str, str] = field(default_factory=dict)  # response key → field name, to find conflicts
    ambiguous: bool = False


@dataclass(eq=False, slots=True)
class Root:
    """A root field of the operation: its node and definition (for its arguments) and its position."""

    name: str
    node: FieldNode
    definition: GraphQLField
    position: Position | None


def _type_kinds(schema: GraphQLSchema, named: GraphQLNamedType) -> frozenset[str]:
    if is_abstract_type(named):
        return frozenset(TYPE_KINDS[t.name] for t in schema.get_possible_types(named) if t.name in TYPE_KINDS)
    return frozenset({TYPE_KINDS[named.name]}) if named.name in ENTITY_TYPES else NONE


class AnswerTags:
    """An operation's plan of its answer's tags (``plan``), and the tags of one answer (``of``)."""

    def __init__(self, schema: GraphQLSchema, document: DocumentNode, operation: OperationDefinitionNode) -> None:
        self.schema = schema
        self.fragments = fragment_definitions(document)
        self.roots: dict[str, Root] = {}
        root_type = schema.get_root_type(operation.operation)
        if root_type is not None:
            self._roots(operation.selection_set, root_type, set())

    def _roots(self, selection_set: SelectionSetNode, parent: GraphQLObjectType, walked: set[str]) -> None:
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                definition = parent.fields.get(selection.name.value)
                if definition is None:
                    continue
                key = selection.alias.value if selection.alias else selection.name.value
                root = self.roots.get(key)
                if root is None:
                    root = self.roots[key] = Root(selection.name.value, selection, definition, None)
                target = get_named_type(definition.type)
                if selection.selection_set is not None and is_composite_type(target):
                    if root.position is None:
                        root.position = Position(_type_kinds(self.schema, target))
                    self._walk(selection.selection_set, target, root.position, set())
                continue
            inner = fragment_selection(self.schema, self.fragments, selection, parent, walked)
            if inner is not None:
                self._roots(inner[1], parent, walked)

    def _walk(self, selection_set: SelectionSetNode, parent: GraphQLNamedType, at: Position, walked: set[str]) -> None:
        for selection in selection_set.selections:
            if not isinstance(selection, FieldNode):
                inner = fragment_selection(self.schema, self.fragments, selection, parent, walked)
                if inner is not None:
                    self._walk(inner[1], inner[0] or parent, at, walked)
                continue
            name = selection.name.value
            if name.startswith("__"):
                continue
            fields: Any = parent.fields if isinstance(parent, GraphQLObjectType | GraphQLInterfaceType) else {}
            definition = fields.get(name)
            if definition is None:
                continue
            key = selection.alias.value if selection.alias else name
            if at.fields.setdefault(key, name) != name:
                at.ambiguous = True  # e.g. `... on Article { x: slug } ... on User { x: username }`
            if name == "id":
                at.ids.append(key)
            elif NATURAL_KEYS.get(parent.name) == name:
                at.natural.append((key, TYPE_KINDS[parent.name]))
            target = get_named_type(definition.type)
            if selection.selection_set is None or not is_composite_type(target):
                continue
            child = at.children.get(key)
            if child is None:
                item = TYPE_KINDS[target.name] if target.name in CONNECTIONS and parent.name in ENTITY_TYPES else None
                child = at.children[key] = (name, item, Position(_type_kinds(self.schema, target)))
            self._walk(selection.selection_set, target, child[2], set())

    def of(self, data: Any, variables: Any) -> frozenset[str]:
        """The tags of ``data``, this operation's answer with the coerced ``variables`` (module docstring)."""
        tags: set[str] = set()
        if not isinstance(data, dict):
            return ALL
        for key, root in self.roots.items():
            value = data.get(key)
            names: list[str | None] = [None]
            name = root.name
            if name in ARGUMENT_ROOTS:
                arguments = get_argument_values(root.definition, root.node, variables)
                names = _named(name, arguments)
                tags.update(f"{USER}@{arguments[a]}" for a in LIST_USERS if arguments.get(a) is not None)
            tags.update(named for named in names if named is not None)
            if name in ROOT_LISTS:
                tags.add(ROOT_LISTS[name])
            if root.position is None or value is None:
                continue
            if name == "nodes" and isinstance(value, list):
                for item, named in zip(value, names, strict=False):
                    _collect(root.position, item, tags, named)
            else:
                _collect(root.position, value, tags, names[0])
        return frozenset(tags)


def _named(name: str, arguments: dict[str, Any]) -> list[str | None]:
    """The identities a root field's ``arguments`` give the objects it returns (``None``: not named)."""
    if name in ROOT_NAMES:
        kind, argument = ROOT_NAMES[name]
        return [f"{kind}@{arguments[argument]}"]
    if name == "node":
        return [_global_tag(arguments["id"])]
    if name == "nodes":
        return [_global_tag(global_id) for global_id in arguments["ids"]]
    return [None]


def _global_tag(global_id: Any) -> str | None:
    decoded = from_global_id(global_id) if isinstance(global_id, str) else None
    return f"{decoded[0]}#{decoded[1]}" if decoded is not None and decoded[0] in ENTITY_TYPES else None


def _identity(at: Position, value: dict[str, Any]) -> str | None:
    for key in at.ids:
        found = value.get(key)
        if found is not None:
            return _global_tag(found)
    for key, kind in at.natural:
        found = value.get(key)
        if found is not None:
            return f"{kind}@{found}"
    return None


def _collect(at: Position, value: Any, tags: set[str], named: str | None = None) -> None:
    """Add the tags of ``value``, an object (or list of them) at position ``at``; ``named``: its identity if known."""
    if isinstance(value, list):
        for item in value:
            _collect(at, item, tags)
        return
    if not isinstance(value, dict):
        return
    if at.ambiguous:
        tags.update(KINDS)
    identity = None
    if at.kinds:
        identity = named or _identity(at, value)
        if identity is None:
            tags.update(at.kinds)
        else:
            tags.add(identity)
    for key, (name, item, below) in at.children.items():
        found = value.get(key)
        if found is None:
            continue
        if item is not None:
            tags.add(f"{identity}/{name}" if identity is not None else item)
        _collect(below, found, tags)


def mutation_purges(
    schema: GraphQLSchema, document: DocumentNode, operation: OperationDefinitionNode
) -> frozenset[str]:
    """The bare kinds the root fields of the mutation ``operation`` may change (``MUTATION_PURGES``)."""
    tags: set[str] = set()
    roots = selected_fields(schema, document, operation, descend=lambda named: named is schema.mutation_type)
    for node, _field, root in roots:
        if root and node.name.value != "__typename":
            tags |= MUTATION_PURGES.get(node.name.value, frozenset({FLUSH}))
    return frozenset(tags)
