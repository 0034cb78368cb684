"""Cache hints in the schema, the policy they give an operation, and HTTP caching on ``/graphql``."""

from __future__ import annotations

import httpx
import pytest
import strawberry
from graphql import parse

from graph.cache_control import CacheControl, CachePolicy, field_policy, missing_hints, operation_policy
from graph.schema import create_schema
from graph.settings import Settings
from tests.conftest import GQL, User, create_article

SCHEMA = create_schema(Settings())._schema

ARTICLES = "{ articles(first: 5) { totalCount edges { cursor node { slug title author { username } } } } }"


def policy_of(query: str) -> CachePolicy:
    document = parse(query)
    return operation_policy(SCHEMA, document, document.definitions[0])  # type: ignore[arg-type]


def test_every_field_has_a_hint() -> None:
    assert missing_hints(SCHEMA) == []


@strawberry.type(directives=[CacheControl(max_age=10)])
class Hinted:
    name: str


@strawberry.type
class Bare:
    name: str


@strawberry.type
class HintsQuery:
    @strawberry.field(directives=[CacheControl(max_age=5)])
    def hinted(self) -> Hinted:
        return Hinted(name="x")

    @strawberry.field
    def bare(self) -> Bare:
        return Bare(name="x")

    @strawberry.field
    def count(self) -> int:
        return 1


def test_a_field_without_a_hint_is_reported() -> None:
    schema = strawberry.Schema(query=HintsQuery)._schema
    assert missing_hints(schema) == ["Bare.name", "HintsQuery.bare", "HintsQuery.count"]


@pytest.mark.parametrize(
    "field",
    [
        "Article.favorited",
        "User.following",
        "User.email",
        "User.emailVerified",
        "User.suspension",
        "Query.viewer",
        "Query.feed",
        "Query.users",
        "Query.rateLimit",
    ],
)
def test_viewer_dependent_fields_are_private(field: str) -> None:
    type_name, name = field.split(".")
    _max_age, private = field_policy(SCHEMA.type_map[type_name].fields[name], type_name == "Query")  # type: ignore[attr-defined]
    assert private


def test_policies_follow_apollo_rules() -> None:
    assert policy_of(ARTICLES) == CachePolicy(30, False)  # the list's 30 s, under the articles' 60
    assert policy_of("{ tags popularTags { name } }") == CachePolicy(300, False)
    assert policy_of("{ articles { nodes { favorited } } }") == CachePolicy(30, True)
    assert policy_of('{ node(id: "x") { ... on Article { title } } }') == CachePolicy(60, False)
    assert policy_of('{ user(username: "x") { following } }') == CachePolicy(60, True)
    assert policy_of("{ viewer { username } }").max_age == 0  # root fields without a maxAge: 0
    assert policy_of("{ articles { totalCount } feed { totalCount } }").max_age == 0
    assert policy_of("{ __typename }").max_age == 0
    assert policy_of("{ __schema { queryType { name } } }").max_age == 0
    fragment = "query { articles { nodes { ...F } } } fragment F on Article { author { email } }"
    assert policy_of(fragment) == CachePolicy(30, True)
    assert policy_of("mutation { logout }").max_age == 0


async def test_get_queries_are_cacheable_with_an_etag(client: httpx.AsyncClient, gql: GQL, alice: User) -> None:
    await create_article(gql, alice)
    response = await client.get("/graphql", params={"query": ARTICLES})
    assert response.status_code == 200
    assert response.headers["cache-control"] == "public, max-age=30"
    assert response.headers["vary"] == "Accept"
    etag = response.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"')
    # the same answer again: 304 with no body; another answer: a new tag
    again = await client.get("/graphql", params={"query": ARTICLES}, headers={"If-None-Match": f'"x", W/{etag}'})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    assert again.headers["cache-control"] == "public, max-age=30"
    await create_article(gql, alice, "Another one")
    changed = await client.get("/graphql", params={"query": ARTICLES}, headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag
    assert len(changed.json()["data"]["articles"]["edges"]) == 2
    # the signed-in viewer gets the same public answer: nothing in it depends on them
    signed_in = await client.get(
        "/graphql", params={"query": ARTICLES}, headers={"Authorization": f"Bearer {alice.token}"}
    )
    assert signed_in.headers["cache-control"] == "public, max-age=30"
    assert signed_in.headers["etag"] == changed.headers["etag"]


async def test_private_and_uncacheable_answers(client: httpx.AsyncClient, gql: GQL, alice: User) -> None:
    await create_article(gql, alice)
    auth = {"Authorization": f"Bearer {alice.token}"}

    async def get(query: str, headers: dict[str, str] | None = None) -> httpx.Response:
        return await client.get("/graphql", params={"query": query}, headers=headers or {})

    favorited = await get("{ articles { nodes { slug favorited } } }", auth)
    assert favorited.headers["cache-control"] == "private, max-age=30"
    assert favorited.headers["vary"] == "Accept, Authorization" and "etag" in favorited.headers
    for query in ("{ viewer { username } }", "{ feed { totalCount } }", "{ rateLimit { remaining } }"):
        response = await get(query, auth)
        assert response.headers["cache-control"] == "no-store", query
        assert "etag" not in response.headers
    refused = await get("{ articles(first: 1000) { totalCount } }")  # an error: never cached
    assert refused.json()["errors"] and refused.headers["cache-control"] == "no-store"
    assert (await get("{ articles { totalCount } }", {"Authorization": "Bearer nope"})).headers[
        "cache-control"
    ] == "no-store"


async def test_post_answers_say_their_policy_and_mutations_are_not_stored(
    client: httpx.AsyncClient, alice: User
) -> None:
    posted = await client.post("/graphql", json={"query": "{ tags }"})
    assert posted.headers["cache-control"] == "public, max-age=300" and "etag" not in posted.headers
    mutation = await client.post(
        "/graphql",
        json={"query": 'mutation { followUser(username: "alice") { username } }'},
        headers={"Authorization": f"Bearer {alice.token}"},
    )
    assert mutation.headers["cache-control"] == "no-store"


async def test_persisted_queries_over_get_are_cacheable(client: httpx.AsyncClient) -> None:
    import hashlib
    import json

    query = "{ tags }"
    digest = hashlib.sha256(query.encode()).hexdigest()
    extensions = json.dumps({"persistedQuery": {"version": 1, "sha256Hash": digest}})
    registered = await client.get("/graphql", params={"query": query, "extensions": extensions})
    assert registered.status_code == 200
    by_hash = await client.get("/graphql", params={"extensions": extensions})
    assert by_hash.json() == {"data": {"tags": []}}
    assert by_hash.headers["cache-control"] == "public, max-age=300"
    again = await client.get(
        "/graphql", params={"extensions": extensions}, headers={"If-None-Match": by_hash.headers["etag"]}
    )
    assert again.status_code == 304


async def test_a_compressed_answer_revalidates_with_its_weak_tag(
    client: httpx.AsyncClient, gql: GQL, alice: User
) -> None:
    for index in range(8):  # over the 1 KiB that compression starts at
        await create_article(gql, alice, f"A title long enough to matter, number {index}")
    gzip = {"Accept-Encoding": "gzip"}
    query = "{ articles { edges { cursor node { slug title description body createdAt } } } }"
    compressed = await client.get("/graphql", params={"query": query}, headers=gzip)
    assert compressed.headers["content-encoding"] == "gzip"
    etag = compressed.headers["etag"]
    assert etag.startswith('W/"')  # a strong tag names the identity bytes (RFC 9110, 8.8.1)
    again = await client.get("/graphql", params={"query": query}, headers={**gzip, "If-None-Match": etag})
    assert again.status_code == 304
    identity = await client.get("/graphql", params={"query": query}, headers={"If-None-Match": etag})
    assert identity.status_code == 304  # If-None-Match compares weakly (RFC 9110, 13.1.2)


def test_the_policy_walks_each_fragment_once() -> None:
    # every fragment spreads the next twice: 2**40 walks if the policy followed each spread
    fragments = " ".join(f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}" for i in range(40))
    assert policy_of(f"query Fan {{ ...F0 }} {fragments} fragment F40 on Query {{ tags }}") == CachePolicy(300, False)
