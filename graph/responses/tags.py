"""What a cached answer contains and what a write changes, as tags: the kinds of entity.

A cached answer is tagged with every kind of entity it may hold (``document_tags``), worked out
once per document from the types its fields return: an ``Article``, an ``ArticleConnection`` (a
list of them, its ``totalCount``) and an ``ArticleEdge`` are all ``Article``; ``User``,
``UserConnection``, ``UserEdge`` and ``Suspension`` are ``User``; ``Comment`` and its connection
are ``Comment``; ``TagCount`` and the ``tags`` root field are ``Tag``. ``Node`` (``node``,
``nodes``) is every kind it may be. A type no kind covers (``PageInfo``) adds nothing: it only
appears under a connection, whose kind counts.

Every mutation declares, in ``MUTATION_PURGES`` next to the others, the kinds it may change
(a new article changes ``Article`` lists and counts, the tag counts and its author's
``articles``); after it ran, the response cache purges those tags (``graph/responses/cache.py``).
A mutation without a declaration purges every kind, and ``tests/graph/test_response_cache.py``
fails on it, so a new mutation cannot be forgotten silently.

The tags are kinds, not single entities: a write to one article purges every cached answer that
holds any article. Coarse, but the answers worth caching (the home page, a tag's page) list
recent articles, which most writes touch anyway; and it needs no identifier in the answer
(the home page selects ``slug``, not ``id``).
"""

from __future__ import annotations

from graphql import (
    DocumentNode,
    GraphQLNamedType,
    GraphQLSchema,
    OperationDefinitionNode,
    get_named_type,
    is_abstract_type,
)

from graph.selections import selected_fields

ARTICLE = "Article"
COMMENT = "Comment"
TAG = "Tag"
USER = "User"
KINDS: tuple[str, ...] = (ARTICLE, COMMENT, TAG, USER)
"""Every tag, in a fixed order (the Redis store's epochs are read in it)."""

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

ROOT_FIELD_KINDS: dict[str, str] = {"tags": TAG}
"""Root fields returning scalars that list entities."""

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
    "deleteViewer": ALL,
    "deleteUser": ALL,
}
"""The kinds each mutation may change (module docstring); a mutation missing here purges ``ALL``."""


def _type_kinds(schema: GraphQLSchema, named: GraphQLNamedType) -> set[str]:
    if is_abstract_type(named):
        return {TYPE_KINDS[found.name] for found in schema.get_possible_types(named) if found.name in TYPE_KINDS}
    kind = TYPE_KINDS.get(named.name)
    return {kind} if kind is not None else set()


def document_tags(schema: GraphQLSchema, document: DocumentNode, operation: OperationDefinitionNode) -> frozenset[str]:
    """The kinds of entity an answer to ``operation`` may hold (module docstring)."""
    tags: set[str] = set()
    for node, field, root in selected_fields(schema, document, operation):
        if field is None:
            continue
        if root and node.name.value in ROOT_FIELD_KINDS:
            tags.add(ROOT_FIELD_KINDS[node.name.value])
        tags |= _type_kinds(schema, get_named_type(field.type))
    return frozenset(tags)


def mutation_purges(
    schema: GraphQLSchema, document: DocumentNode, operation: OperationDefinitionNode
) -> frozenset[str]:
    """The kinds the root fields of the mutation ``operation`` may change (``MUTATION_PURGES``)."""
    tags: set[str] = set()
    roots = selected_fields(schema, document, operation, descend=lambda named: named is schema.mutation_type)
    for node, _field, root in roots:
        if root and node.name.value != "__typename":
            tags |= MUTATION_PURGES.get(node.name.value, ALL)
    return frozenset(tags)
