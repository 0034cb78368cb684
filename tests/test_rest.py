"""``/api``: RealWorld's REST API over the real HTTP endpoint, on SQLite and PostgreSQL.

Statuses, envelopes and error bodies as the spec (``../shared/realworld/openapi.yml``) gives
them, integer comment ids, limit/offset paging, and the proof that every request runs through
the same pipeline as ``/graphql``: its metrics, budget, planned SQL and cache policy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from graph.settings import Settings
from tests.conftest import path_counts
from tests.graph.test_rate_limit_headers import serving
from tests.security.test_persisted import trusted_settings


class Api:
    """A RealWorld client of ``/api``: ``Token`` authorization, JSON bodies."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def __call__(
        self, method: str, path: str, body: Any = None, token: str | None = None, **headers: str
    ) -> httpx.Response:
        if token is not None:
            headers["Authorization"] = f"Token {token}"
        return await self.client.request(method, "/api" + path, json=body, headers=headers)

    async def register(self, username: str) -> str:
        """A new user's token."""
        user = {"username": username, "email": f"{username}@example.com", "password": "password123"}
        response = await self("POST", "/users", {"user": user})
        assert response.status_code == 201, response.text
        token: str = response.json()["user"]["token"]
        return token

    async def article(self, token: str, title: str = "How to train your dragon", **fields: Any) -> dict[str, Any]:
        body = {"title": title, "description": "Ever wonder how?", "body": "Very carefully.", **fields}
        response = await self("POST", "/articles", {"article": body}, token)
        assert response.status_code == 201, response.text
        article: dict[str, Any] = response.json()["article"]
        return article


@pytest.fixture
def api(client: httpx.AsyncClient) -> Api:
    return Api(client)


def errors(response: httpx.Response) -> list[str]:
    """The messages of a spec error body, which must be exactly ``{"errors": {"body": [...]}}``."""
    body = response.json()
    assert list(body) == ["errors"] and list(body["errors"]) == ["body"], body
    messages: list[str] = body["errors"]["body"]
    assert messages and all(isinstance(message, str) for message in messages), body
    return messages


# --- users -------------------------------------------------------------------------------------


async def test_register_login_and_current_user(api: Api) -> None:
    user = {"username": "jake", "email": "jake@jake.jake", "password": "jakejake"}
    registered = await api("POST", "/users", {"user": user})
    assert registered.status_code == 201
    assert registered.headers["cache-control"] == "no-store, no-transform"  # a token: never cached or compressed
    body = registered.json()["user"]
    assert set(body) == {"email", "token", "username", "bio", "image"}
    assert (body["email"], body["username"], body["bio"], body["image"]) == ("jake@jake.jake", "jake", "", "")
    login = await api("POST", "/users/login", {"user": {"email": "JAKE@jake.jake", "password": "jakejake"}})
    assert login.status_code == 200 and login.json()["user"]["username"] == "jake"
    token = login.json()["user"]["token"]
    for scheme in ("Token", "Bearer"):
        current = await api("GET", "/user", Authorization=f"{scheme} {token}")
        assert current.status_code == 200
        assert current.json() == {"user": {**body, "token": token}}  # the request's own token
    updated = await api("PUT", "/user", {"user": {"bio": "I work at statefarm", "image": None}}, token)
    assert updated.status_code == 200
    assert updated.json()["user"]["bio"] == "I work at statefarm" and updated.json()["user"]["token"] == token


async def test_user_errors_are_the_spec_statuses_and_bodies(api: Api) -> None:
    await api.register("jake")
    taken = await api(
        "POST", "/users", {"user": {"username": "jake", "email": "JAKE@example.com", "password": "x" * 8}}
    )
    assert taken.status_code == 422
    assert errors(taken) == ["username has already been taken", "email has already been taken"]
    missing = await api("POST", "/users", {"user": {"username": "finn"}})
    assert missing.status_code == 422
    assert errors(missing) == ["email can't be empty", "password can't be empty"]
    wrong = await api("POST", "/users/login", {"user": {"email": "jake@example.com", "password": "wrong-password"}})
    assert wrong.status_code == 401 and errors(wrong) == ["email or password is invalid"]
    anonymous = await api("GET", "/user")
    assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"].startswith("Token")
    forged = await api("GET", "/user", token="not-a-jwt")
    assert forged.status_code == 401 and errors(forged) == ["the access token is invalid or expired"]
    bad_update = await api("PUT", "/user", {"user": {"image": "ftp://example.com/a.png"}}, await api.register("finn"))
    assert bad_update.status_code == 422 and errors(bad_update) == ["image is invalid"]


@pytest.mark.parametrize(
    ("content", "content_type", "status", "message"),
    [
        (b"{not json", "application/json", 422, "The request body is not valid JSON."),
        (b"", "application/json", 422, "user must be an object"),
        (b"[1, 2]", "application/json", 422, "user must be an object"),
        (b'{"user": "jake"}', "application/json", 422, "user must be an object"),
        (b'{"user": {"email": 1, "password": ["x"]}}', "application/json", 422, "email must be a string"),
        (b'{"user": {}}', "text/plain", 415, "The request body must be application/json."),
    ],
)
async def test_malformed_bodies_are_refused_never_500(
    client: httpx.AsyncClient, content: bytes, content_type: str, status: int, message: str
) -> None:
    response = await client.post("/api/users/login", content=content, headers={"content-type": content_type})
    assert response.status_code == status, response.text
    assert errors(response)[0] == message


async def test_a_body_over_the_limit_is_413(settings: Settings) -> None:
    async with serving(settings, max_body_bytes=100) as client:
        response = await client.post("/api/users", json={"user": {"username": "x" * 200}})
    assert response.status_code == 413 and errors(response)


# --- profiles ----------------------------------------------------------------------------------


async def test_profiles_follow_and_unfollow(api: Api) -> None:
    token = await api.register("jake")
    await api.register("celeb")
    profile = await api("GET", "/profiles/celeb", token=token)
    assert profile.json() == {"profile": {"username": "celeb", "bio": "", "image": "", "following": False}}
    followed = await api("POST", "/profiles/celeb/follow", {"user": {"email": "ignored"}}, token)
    assert followed.status_code == 200 and followed.json()["profile"]["following"] is True
    unfollowed = await api("DELETE", "/profiles/celeb/follow", token=token)
    assert unfollowed.json()["profile"]["following"] is False
    assert (await api("GET", "/profiles/nobody")).status_code == 404
    assert (await api("POST", "/profiles/nobody/follow", token=token)).status_code == 404
    assert (await api("POST", "/profiles/celeb/follow")).status_code == 401
    oneself = await api("POST", "/profiles/jake/follow", token=token)
    assert oneself.status_code == 422 and errors(oneself) == ["username can't follow yourself"]


# --- articles ----------------------------------------------------------------------------------


async def test_article_lifecycle(api: Api) -> None:
    token = await api.register("jake")
    other = await api.register("finn")
    created = await api.article(token, tagList=["training", "dragons"])
    slug = created["slug"]
    assert created["tagList"] == ["dragons", "training"]  # the spec's suite expects them sorted
    assert created["author"] == {"username": "jake", "bio": "", "image": "", "following": False}
    got = await api("GET", f"/articles/{slug}")
    assert got.status_code == 200 and got.json() == {"article": created}
    updated = await api("PUT", f"/articles/{slug}", {"article": {"body": "With two hands"}}, token)
    assert updated.status_code == 200 and updated.json()["article"]["body"] == "With two hands"
    forbidden = await api("PUT", f"/articles/{slug}", {"article": {"body": "mine"}}, other)
    assert forbidden.status_code == 403 and errors(forbidden)
    blank = await api("PUT", f"/articles/{slug}", {"article": {"title": "  "}}, token)
    assert blank.status_code == 422 and errors(blank) == ["title can't be empty"]
    favorited = await api("POST", f"/articles/{slug}/favorite", token=other)
    assert favorited.json()["article"]["favorited"] is True and favorited.json()["article"]["favoritesCount"] == 1
    unfavorited = await api("DELETE", f"/articles/{slug}/favorite", token=other)
    assert unfavorited.json()["article"]["favorited"] is False
    assert (await api("DELETE", f"/articles/{slug}", token=other)).status_code == 403
    deleted = await api("DELETE", f"/articles/{slug}", token=token)
    assert deleted.status_code == 204 and deleted.content == b""
    assert (await api("GET", f"/articles/{slug}")).status_code == 404
    assert (await api("DELETE", f"/articles/{slug}", token=token)).status_code == 404
    assert (await api("POST", "/articles", {"article": {"title": "t"}}, token)).status_code == 422
    assert (
        await api("POST", "/articles", {"article": {"title": "t", "description": "d", "body": "b"}})
    ).status_code == 401


async def test_listing_pages_by_limit_and_offset(api: Api) -> None:
    token = await api.register("jake")
    slugs = [(await api.article(token, f"Article {i}", tagList=["dragons"] if i % 2 else []))["slug"] for i in range(5)]
    newest_first = list(reversed(slugs))
    listing = await api("GET", "/articles?limit=2&offset=1")
    assert listing.status_code == 200
    body = listing.json()
    assert [a["slug"] for a in body["articles"]] == newest_first[1:3] and body["articlesCount"] == 5
    assert "body" not in body["articles"][0]  # a listed article has none (spec 1.1.0)
    tagged = (await api("GET", "/articles?tag=dragons")).json()
    assert [a["slug"] for a in tagged["articles"]] == [slugs[3], slugs[1]] and tagged["articlesCount"] == 2
    assert (await api("GET", "/articles?author=jake&limit=1")).json()["articlesCount"] == 5
    assert (await api("GET", "/articles?favorited=jake")).json() == {"articles": [], "articlesCount": 0}
    await api("POST", f"/articles/{slugs[0]}/favorite", token=token)
    assert (await api("GET", "/articles?favorited=jake")).json()["articlesCount"] == 1
    reader = await api.register("finn")
    assert (await api("GET", "/articles/feed", token=reader)).json() == {"articles": [], "articlesCount": 0}
    await api("POST", "/profiles/jake/follow", token=reader)
    feed = (await api("GET", "/articles/feed?limit=3&offset=3", token=reader)).json()
    assert [a["slug"] for a in feed["articles"]] == newest_first[3:] and feed["articlesCount"] == 5
    assert (await api("GET", "/articles/feed")).status_code == 401


@pytest.mark.parametrize(
    ("query", "messages"),
    [
        ("limit=0", ["limit must be 1 or more"]),
        ("limit=101", ["limit must be 100 or less"]),
        ("limit=ten", ["limit must be an integer"]),
        ("offset=-1&limit=x", ["offset must be 0 or more", "limit must be an integer"]),
    ],
)
async def test_bad_paging_parameters_are_422(api: Api, query: str, messages: list[str]) -> None:
    response = await api("GET", "/articles?" + query)
    assert response.status_code == 422 and errors(response) == messages


# --- comments and tags -------------------------------------------------------------------------


async def test_comments_have_integer_ids(api: Api) -> None:
    token = await api.register("jake")
    other = await api.register("finn")
    slug = (await api.article(token))["slug"]
    other_slug = (await api.article(token, "Another one"))["slug"]
    added = await api("POST", f"/articles/{slug}/comments", {"comment": {"body": "Thank you so much!"}}, token)
    assert added.status_code == 200
    comment = added.json()["comment"]
    assert isinstance(comment["id"], int) and comment["body"] == "Thank you so much!"
    assert set(comment) == {"id", "createdAt", "updatedAt", "body", "author"}
    listed = await api("GET", f"/articles/{slug}/comments")
    assert listed.json() == {"comments": [comment]}
    assert (await api("GET", "/articles/nope/comments")).status_code == 404
    empty = await api("POST", f"/articles/{slug}/comments", {"comment": {"body": " "}}, token)
    assert empty.status_code == 422 and errors(empty) == ["body can't be empty"]
    path = f"/articles/{slug}/comments/{comment['id']}"
    assert (await api("DELETE", f"/articles/{other_slug}/comments/{comment['id']}", token=token)).status_code == 404
    assert (await api("DELETE", path, token=other)).status_code == 403
    assert (await api("DELETE", path)).status_code == 401
    assert (await api("DELETE", f"/articles/{slug}/comments/zero", token=token)).status_code == 422
    assert (await api("DELETE", f"/articles/{slug}/comments/{2**40}", token=token)).status_code == 404
    assert (await api("DELETE", path, token=token)).status_code == 204
    assert (await api("DELETE", path, token=token)).status_code == 404
    assert (await api("GET", f"/articles/{slug}/comments")).json() == {"comments": []}


async def test_tags_most_used_first(api: Api, client: httpx.AsyncClient) -> None:
    token = await api.register("jake")
    await api.article(token, "One", tagList=["dragons", "training"])
    await api.article(token, "Two", tagList=["dragons"])
    assert (await api("GET", "/tags")).json() == {"tags": ["dragons", "training"]}
    head = await client.head("/api/tags")
    assert head.status_code == 200 and head.content == b""


async def test_only_the_spec_paths_are_routes(client: httpx.AsyncClient) -> None:
    """No catch-all under /api: a route beside them (``/api/docs``, the rendered reference) is never shadowed."""
    page = await client.get("/api/docs/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert (await client.get("/api/nothing/here")).status_code == 404
    assert (await client.patch("/api/articles/x")).status_code == 405


# --- the same pipeline as /graphql -------------------------------------------------------------


async def test_requests_run_through_the_graphql_pipeline(app: Any, api: Api, client: httpx.AsyncClient) -> None:
    token = await api.register("jake")
    await api.article(token)
    before = path_counts(app).planned
    listing = await api("GET", "/articles", token=token)
    assert path_counts(app).planned == before + 1  # planned SQL answered the stored operation
    # the budget charged it, and its cache policy applies (private: `favorited` depends on the viewer)
    assert int(listing.headers["x-ratelimit-remaining"]) < int(listing.headers["x-ratelimit-limit"])
    assert listing.headers["cache-control"] == "private, max-age=30" and listing.headers["vary"] == "Authorization"
    again = await api("GET", "/articles", token=token, **{"If-None-Match": listing.headers["etag"]})
    assert again.status_code == 304
    metrics = (await client.get("/metrics")).text
    assert 'operation_name="GetArticles",operation_type="query",outcome="ok"' in metrics
    assert 'method="GET",path="/api/articles",status="200"' in metrics
    assert 'operation_name="Login"' not in metrics
    await api("POST", "/users/login", {"user": {"email": "jake@example.com", "password": "wrong-password"}})
    assert 'conduit_graphql_resolver_errors_total{code="UNAUTHENTICATED"}' in (await client.get("/metrics")).text


async def test_the_budget_refuses_with_429_and_retry_after(settings: Settings) -> None:
    async with serving(settings, rate_limit_points=1) as client:
        api = Api(client)
        assert (await api("GET", "/tags")).status_code == 200
        refused = await api("GET", "/tags")
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 0 and errors(refused)


async def test_api_works_when_only_trusted_documents_run(database_url: str, tmp_path: Path) -> None:
    """``/api``'s stored operations are the server's own: trusted, whatever the list holds."""
    async with serving(trusted_settings(database_url, tmp_path)) as client:
        api = Api(client)
        token = await api.register("jake")
        assert (await api("GET", "/user", token=token)).status_code == 200
        assert (await api("GET", "/tags")).json() == {"tags": []}
        refused = await client.post("/graphql", json={"query": "{ viewer { username } }"})
        assert refused.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_ALLOWED"


async def test_cors_allows_the_rest_methods(settings: Settings) -> None:
    origin = "https://app.example.com"
    async with serving(settings, cors_origins=[origin]) as client:
        preflight = await client.options(
            "/api/user",
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "PUT",
                "Access-Control-Request-Headers": "authorization,content-type,x-requested-with",
            },
        )
    assert preflight.status_code == 200
    assert "PUT" in preflight.headers["access-control-allow-methods"]
    assert preflight.headers["access-control-allow-origin"] == origin
