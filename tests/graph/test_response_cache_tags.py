"""The response cache's tags (``graph/responses/tags.py``): no write leaves a stale answer, and a
write purges only the answers holding what it changed.

One app with the response cache serves the pages and takes the writes; a second app over the
same database, with the cache off, answers the same pages fresh. Before each mutation every page
is requested once through the first (so each is kept), after it every page must be byte for byte
what the second answers. Which pages were still hits then shows what the mutation purged.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest

from graph.cache_control import CachePolicy
from graph.responses.cache import Entry, MemoryStore
from graph.settings import Settings
from tests.conftest import GQL, User, Users, create_article, set_role, with_redis
from tests.security.test_cost_budget import client_of, serving

ARTICLE_PAGE = """
query Article($slug: String!) {
  article(slug: $slug) {
    title body tagList favoritesCount author { username bio followersCount }
    comments(first: 10) { totalCount edges { node { id body author { username } } } }
  }
}
"""
HOME = """
{ articles(first: 10) { totalCount edges { cursor node { slug title tagList favoritesCount author { username } } } } }
"""
PROFILE = """
query Profile($username: String!) {
  user(username: $username) {
    username bio followersCount followingCount role
    articles(first: 5) { totalCount nodes { slug title favoritesCount } }
    favorites(first: 5) { totalCount nodes { slug favoritesCount } }
  }
}
"""
BY_AUTHOR = "query A($a: String!) { articles(author: $a, first: 5) { totalCount nodes { slug title } } }"
FAVORITED_BY = "query F($f: String!) { articles(favoritedBy: $f, first: 5) { totalCount nodes { slug } } }"
MOST_FAVORITED = "{ articles(first: 3, orderBy: {field: FAVORITES_COUNT}) { nodes { slug favoritesCount } } }"
TAGGED = '{ articles(tag: "dragons", first: 5) { totalCount nodes { slug } } }'
TAGS = "{ tags popularTags(first: 5) { name articlesCount } }"
ANONYMOUS_AUTHORS = "{ articles(first: 5) { nodes { title author { bio role } } } }"  # identifies no author
NODE = "query N($id: ID!) { node(id: $id) { ... on Article { title favoritesCount } ... on Comment { body } } }"
NODES = """
query Ns($ids: [ID!]!) {
  nodes(ids: $ids) { id ... on Article { title } ... on User { username bio } ... on Comment { body } }
}
"""
COMMENT_NODE = "query C($id: ID!) { node(id: $id) { ... on Comment { body article { title } author { bio } } } }"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The suite's settings with the response cache on (``tests/conftest.py`` turns it off)."""
    return settings.model_copy(update={"response_cache": True})


@pytest.fixture(params=["memory", "redis-ordinary"])
def store(request: pytest.FixtureRequest) -> str:
    """The memory store with planned SQL, or Redis with graphql-core's executor alone (so that
    the resolvers' own ``touch`` calls run: planned SQL answers ``addComment`` itself)."""
    return str(request.param)


@dataclass
class Site:
    """The cached app's client (``cached``), the fresh one (``fresh``), and the pages both serve."""

    app: Any
    cached: GQL
    fresh: GQL
    pages: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)

    async def warm(self) -> None:
        """Request every page once through the cached app, so that each is kept."""
        for query, variables in self.pages.values():
            await self.cached.ok(query, variables)

    async def compare(self) -> set[str]:
        """Every page through both apps: the same bodies; the names of the pages the cache answered."""
        hits: set[str] = set()
        for name, (query, variables) in self.pages.items():
            response = await self.cached.client.post("/graphql", json={"query": query, "variables": variables})
            fresh = await self.fresh.client.post("/graphql", json={"query": query, "variables": variables})
            assert response.status_code == fresh.status_code == 200
            assert response.json() == fresh.json(), f"{name} is stale"
            if response.headers.get("x-cache") == "HIT":
                hits.add(name)
        return hits

    async def after(self, mutation: Callable[[], Any]) -> set[str]:
        """Warm every page, run ``mutation`` through the cached app, compare: the pages still hits."""
        await self.warm()
        await mutation()
        return await self.compare()


@asynccontextmanager
async def site(settings: Settings) -> AsyncIterator[Site]:
    async with (
        serving(settings) as cached_app,
        serving(settings, response_cache=False) as fresh_app,
        client_of(cached_app) as cached,
        client_of(fresh_app) as fresh,
    ):
        yield Site(cached_app, cached, fresh)


async def test_no_mutation_leaves_a_stale_answer_and_each_purges_only_what_it_changed(
    settings: Settings, users: Users, alice: User, bob: User, store: str, request: pytest.FixtureRequest
) -> None:
    """Every mutation that changes what an anonymous reader sees, in turn, over pages that name
    their entities by slug, username and id, in lists, connections, ``node`` and ``nodes``, and
    pages that name none. (``login``, ``logout``, ``refreshToken``, the password reset and mail
    verification mutations change nothing such a page shows: ``emailVerified`` is private.)"""
    if store == "redis-ordinary":
        settings = with_redis(settings, request.getfixturevalue("redis_url"), planned_execution=False)
    carol = await users.register("carol")
    async with site(settings) as s:
        await set_role(s.app, "carol", "ADMIN")
        a = await create_article(s.cached, alice, "Training Dragons", tagList=["dragons", "training"])
        b = await create_article(s.cached, bob, "Bob Writes")
        add = "mutation C($s: String!, $b: String!) { addComment(slug: $s, body: $b) { id } }"
        first = (await s.cached.ok(add, {"s": a["slug"], "b": "nice"}, bob.token))["addComment"]["id"]

        async def ok(query: str, variables: dict[str, Any], token: str) -> Any:
            return await s.cached.ok(query, variables, token)

        s.pages = {
            "home": (HOME, {}),
            "article_a": (ARTICLE_PAGE, {"slug": a["slug"]}),
            "article_a_first_slug": (ARTICLE_PAGE.replace("query Article", "query First"), {"slug": a["slug"]}),
            "article_b": (ARTICLE_PAGE, {"slug": b["slug"]}),
            "future_article": (ARTICLE_PAGE, {"slug": "future-slug"}),
            "alice": (PROFILE, {"username": "alice"}),
            "bob": (PROFILE, {"username": "bob"}),
            "bob_renamed": (PROFILE, {"username": "robert"}),
            "dave": (PROFILE, {"username": "dave"}),
            "by_bob": (BY_AUTHOR, {"a": "bob"}),
            "favorited_by_bob": (FAVORITED_BY, {"f": "bob"}),
            "most_favorited": (MOST_FAVORITED, {}),
            "tagged": (TAGGED, {}),
            "tags": (TAGS, {}),
            "anonymous_authors": (ANONYMOUS_AUTHORS, {}),
            "node_a": (NODE, {"id": a["id"]}),
            "node_comment": (COMMENT_NODE, {"id": first}),
            "nodes": (NODES, {"ids": [a["id"], b["id"], first, bob.id]}),
        }

        # a comment on A: A's page and the pages holding that comment, nothing else
        hits = await s.after(lambda: ok(add, {"s": a["slug"], "b": "more"}, bob.token))
        assert "article_a" not in hits
        assert {"home", "article_b", "alice", "bob", "node_a", "node_comment", "tags"} <= hits
        edges = (await s.cached.ok(ARTICLE_PAGE, {"slug": a["slug"]}))["article"]["comments"]["edges"]
        second = next(edge["node"] for edge in edges if edge["node"]["body"] == "more")
        delete_comment = "mutation D($id: ID!) { deleteComment(id: $id) }"
        hits = await s.after(lambda: ok(delete_comment, {"id": second["id"]}, bob.token))
        assert "article_a" not in hits and {"article_b", "home", "alice"} <= hits

        # a favorite: the article, the lists, bob's favorites; not the other article's page
        favorite = "mutation F($s: String!) { favoriteArticle(slug: $s) { favoritesCount } }"
        hits = await s.after(lambda: ok(favorite, {"s": b["slug"]}, bob.token))
        assert {"article_b", "home", "most_favorited", "favorited_by_bob", "bob", "nodes"}.isdisjoint(hits)
        assert {"article_a", "node_a", "alice", "tags"} <= hits
        unfavorite = "mutation U($s: String!) { unfavoriteArticle(slug: $s) { favoritesCount } }"
        await s.after(lambda: ok(unfavorite, {"s": b["slug"]}, bob.token))
        hits = await s.after(lambda: ok(favorite, {"s": a["slug"]}, bob.token))
        assert {"article_a", "favorited_by_bob", "bob"}.isdisjoint(hits) and "article_b" in hits

        # profiles
        update = "mutation V($i: UpdateViewerInput!) { updateViewer(input: $i) { username } }"
        hits = await s.after(lambda: ok(update, {"i": {"bio": "I write"}}, alice.token))
        assert {"alice", "article_a", "home", "anonymous_authors"}.isdisjoint(hits)
        assert {"article_b", "bob", "tags", "most_favorited"} <= hits
        follow = "mutation W($u: String!) { followUser(username: $u) { followersCount } }"
        hits = await s.after(lambda: ok(follow, {"u": "alice"}, bob.token))
        assert {"alice", "bob", "article_a"}.isdisjoint(hits) and {"tags", "most_favorited"} <= hits
        unfollow = "mutation W($u: String!) { unfollowUser(username: $u) { followersCount } }"
        await s.after(lambda: ok(unfollow, {"u": "alice"}, bob.token))
        hits = await s.after(lambda: ok(update, {"i": {"username": "robert"}}, bob.token))
        assert {"bob", "bob_renamed", "by_bob", "favorited_by_bob", "article_b"}.isdisjoint(hits) and "tags" in hits
        register = "mutation R($i: RegisterInput!) { register(input: $i) { token user { id } } }"
        dave_input = {"username": "dave", "email": "dave@example.com", "password": "password123"}
        registered: dict[str, Any] = {}

        async def sign_up_dave() -> None:
            registered.update((await s.cached.ok(register, {"i": dave_input}))["register"])

        hits = await s.after(sign_up_dave)
        assert "dave" not in hits and {"home", "alice", "article_a"} <= hits

        # articles: a new one, an edit (its slug changes), and the moderators' mutations
        create = "mutation N($i: CreateArticleInput!) { createArticle(input: $i) { slug } }"
        new = {"title": "Future Slug", "description": "d", "body": "b", "tagList": ["dragons"]}
        hits = await s.after(lambda: ok(create, {"i": new}, alice.token))
        assert {"home", "future_article", "alice", "tags", "tagged"}.isdisjoint(hits)
        assert {"article_a", "article_b", "node_a"} <= hits
        edit = "mutation E($s: String!, $i: UpdateArticleInput!) { updateArticle(slug: $s, input: $i) { slug } }"
        changes = {"title": "Training Dragons Again", "tagList": ["training"]}
        hits = await s.after(lambda: ok(edit, {"s": a["slug"], "i": changes}, alice.token))
        stale = {"article_a", "article_a_first_slug", "node_a", "tags", "tagged", "home", "bob_renamed"}
        assert stale.isdisjoint(hits) and "article_b" in hits  # bob_renamed: his favorites show A's slug
        a_slug = await s.fresh.ok("query N($id: ID!) { node(id: $id) { ... on Article { slug } } }", {"id": a["id"]})
        s.pages["article_a"] = (ARTICLE_PAGE, {"slug": a_slug["node"]["slug"]})
        role = "mutation S($u: String!) { setUserRole(username: $u, role: MODERATOR) { role } }"
        hits = await s.after(lambda: ok(role, {"u": "dave"}, carol.token))
        assert "dave" not in hits and {"alice", "home"} <= hits
        suspend = 'mutation S($u: String!) { suspendUser(username: $u, reason: "spam") { username } }'
        await s.after(lambda: ok(suspend, {"u": "dave"}, carol.token))
        unsuspend = "mutation S($u: String!) { unsuspendUser(username: $u) { username } }"
        await s.after(lambda: ok(unsuspend, {"u": "dave"}, carol.token))

        # deletions
        remove = "mutation X($s: String!) { deleteArticle(slug: $s) }"
        await s.cached.ok(favorite, {"s": a_slug["node"]["slug"]}, bob.token)
        hits = await s.after(lambda: ok(remove, {"s": a_slug["node"]["slug"]}, alice.token))
        assert {"article_a", "node_a", "node_comment", "nodes", "bob_renamed", "alice", "home"}.isdisjoint(hits)
        assert {"article_b"} <= hits
        delete_user = "mutation X($u: String!) { deleteUser(username: $u) }"
        assert not await s.after(lambda: ok(delete_user, {"u": "dave"}, carol.token))  # every entry
        delete_viewer = "mutation X($p: String!) { deleteViewer(password: $p) }"
        assert not await s.after(lambda: ok(delete_viewer, {"p": bob.password}, bob.token))
        assert (await s.fresh.ok(PROFILE, {"username": "robert"}))["user"] is None


def test_the_memory_stores_tag_index_stays_bounded_as_entries_come_and_go() -> None:
    """Entries evicted by the LRU leave their keys under their tags; the index is filtered once it
    holds ``compact_at`` tags, so it follows the live entries, not every entry ever kept."""
    store = MemoryStore(max_entries=4, max_bytes=1 << 20)
    entry = Entry(b"{}", CachePolicy(60, False), '"e"', "query", None, 0.0)
    epochs = tuple(store.epochs.values())
    for n in range(2_000):
        assert store.store(f"k{n}", entry, frozenset({f"Article#{n}", f"User#{n}", "Article/list"}), epochs)
        assert len(store.tagged) <= store.compact_at + 3
    assert store.compact_at == MemoryStore.TAGS_PER_ENTRY * 4 + 64  # never raised: few tags are live
    live = {tag for tag, keys in store.tagged.items() if keys & {"k1996", "k1997", "k1998", "k1999"}}
    assert {"Article#1999", "User#1999", "Article/list"} <= live
    store.purge(frozenset({"Article#1999"}))
    assert "k1999" not in store.entries and "k1998" in store.entries
    store.purge(frozenset({"Article/list"}))
    assert len(store.entries) == 0
