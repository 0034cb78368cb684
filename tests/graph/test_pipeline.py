"""One request pipeline: a step added to admission covers every transport and every executor,
and ``/metrics`` shows which executor answered each operation and why a faster one handed it on."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import websockets
from graphql import GraphQLError
from starlette.applications import Starlette

from graph.admission import Operation, Refused
from graph.settings import Settings
from tests.conftest import GQL, User, create_article, path_counts
from tests.graph.test_subscriptions import ARTICLE_PUBLISHED, Client, register, ws_url
from tests.live import live_app
from tests.test_observability import metric

ARTICLES = (
    "query {name}($n: Int!) {{ articles(first: $n) {{ edges {{ node {{ slug title author {{ username }} }} }} }} }}"
)
TAGS = "query {name} {{ tags(first: 5) }}"
NODE = 'query {name} {{ node(id: "QXJ0aWNsZTox") {{ id }} }}'
INTROSPECTION = "query {name} {{ __schema {{ queryType {{ name }} }} }}"
ADD_COMMENT = 'mutation {name}($s: String!) {{ addComment(slug: $s, body: "hi") {{ id }} }}'


class RefuseNamed:
    """A step only this test adds: refuses every operation whose name starts with ``Forbidden``."""

    name = "refuse_named"

    def __init__(self) -> None:
        self.seen: list[str] = []

    def __call__(self, operation: Operation) -> None:
        self.seen.append(f"{operation.transport}:{operation.name}")
        if (operation.name or "").startswith("Forbidden"):
            raise Refused([GraphQLError("refused by the test's step", extensions={"code": "REFUSED_BY_TEST"})])


async def answer(url: str, query: str, variables: dict[str, Any], token: str) -> dict[str, Any]:
    async with httpx.AsyncClient() as http:
        response = await http.post(
            f"{url}/graphql",
            json={"query": query, "variables": variables},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert response.status_code == 200, response.text
    return dict(response.json())


@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
async def test_a_step_added_to_admission_covers_every_path(settings: Settings, protocol: str) -> None:
    step = RefuseNamed()
    with live_app(settings) as (url, app):
        app.state.conduit.admission.steps.append(step)
        token = await register(url, "alice")
        slug = (
            await answer(
                url,
                'mutation { createArticle(input: {title: "T", description: "d", body: "b"}) { slug } }',
                {},
                token,
            )
        )["data"]["createArticle"]["slug"]
        shapes = {  # each answered by a different executor when allowed
            "planned": (ARTICLES, {"n": 3}),
            "planned tags": (TAGS, {}),
            "planned node": (NODE, {}),
            "ordinary": (INTROSPECTION, {}),
            "planned write": (ADD_COMMENT, {"s": slug}),
        }
        before = path_counts(app)
        for shape, (template, variables) in shapes.items():
            allowed = await answer(url, template.format(name="Allowed"), variables, token)
            assert "errors" not in allowed, (shape, allowed)
            refused = await answer(url, template.format(name="Forbidden"), variables, token)
            assert "data" not in refused, (shape, refused)
            assert [e["extensions"]["code"] for e in refused["errors"]] == ["REFUSED_BY_TEST"], shape
        after = path_counts(app)
        # the allowed ones went down every path; the refused ones reached none
        assert after.planned - before.planned == 4  # the article list, tags, node(id:) and addComment
        assert after.ordinary - before.ordinary == 1  # introspection
        comments = await answer(
            url, "query($s: String!) { article(slug: $s) { comments { totalCount } } }", {"s": slug}, token
        )
        assert comments["data"]["article"]["comments"]["totalCount"] == 1  # the refused addComment wrote nothing

        async with websockets.connect(ws_url(url), subprotocols=[websockets.Subprotocol(protocol)]) as ws:
            client = Client(ws, protocol)
            assert (await client.init())["type"] == "connection_ack"
            await client.subscribe(ARTICLE_PUBLISHED.replace("subscription(", "subscription ForbiddenLive("), {})
            message = await client.receive()
            assert message["type"] == "error", message
            payload = message["payload"]
            errors = payload if isinstance(payload, list) else [payload]
            assert [e["extensions"]["code"] for e in errors] == ["REFUSED_BY_TEST"]
    assert step.seen.count("WebSocket:ForbiddenLive") == 1
    for shape in ("Allowed", "Forbidden"):
        assert step.seen.count(f"HTTP:{shape}") == len(shapes)


async def test_metrics_count_each_path_and_each_fallback_reason(
    app: Starlette, client: httpx.AsyncClient, gql: GQL, alice: User
) -> None:
    await create_article(gql, alice)
    await gql.ok(ARTICLES.format(name="Home"), {"n": 2})  # planned
    await gql.ok(TAGS.format(name="Tags"))  # planned
    await gql.ok(INTROSPECTION.format(name="Schema"))  # ordinary: neither fast path covers introspection
    counts = path_counts(app)
    assert counts.planned >= 2 and counts.ordinary >= 1, counts
    assert await metric(client, "conduit_graphql_executions_total", path="planned") == counts.planned
    assert await metric(client, "conduit_graphql_executions_total", path="ordinary") == counts.ordinary
    assert await metric(client, "conduit_graphql_fallbacks_total", path="planned", reason="introspection") == 1


async def test_the_pipeline_lists_its_steps_in_order(app: Starlette) -> None:
    assert app.state.conduit.admission.names() == [
        "parse",
        "select_operation",
        "observe_operation",
        "served_by_transport",
        "validate",
        "cache_policy",
        "nul_free_variables",
        "variables",
        "cost_limit",
        "budget",
    ]
