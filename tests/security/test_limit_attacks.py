"""Attacks on the operation limits: each is refused before execution, quickly, and changes nothing.

Every attack here is answered with one ``QUERY_TOO_COMPLEX`` error (or a validation error, for
fragment cycles), within a few seconds, without a single SQL statement (so no resolver ran and
nothing was charged to the cost budget) and with every table as it was.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import Any

import pytest

from tests.conftest import GQL, Response, User
from tests.security.conftest import snapshot

FAST = 5.0  # CPU seconds an attack may take to be refused; an exponential blow-up exceeds it (a hang, the timeout)


async def refused(app: Any, statements: list[str], request: Awaitable[Response]) -> Response:
    """Run ``request``; assert it took under FAST seconds of CPU, ran no SQL, changed no row, returned no data.

    The app is served through ``httpx.ASGITransport`` on the test's own event loop, so all of its
    work is done on this thread: the thread's CPU time measures it without counting the time a
    loaded machine keeps the test waiting for a core.
    """
    before = await snapshot(app, budget=True)
    statements.clear()
    started = time.thread_time()
    response = await asyncio.wait_for(request, timeout=30)
    assert time.thread_time() - started < FAST
    assert statements == []
    assert await snapshot(app, budget=True) == before
    assert response.status == 200, response.body
    assert "data" not in response.body, response.body
    return response


def too_complex(response: Response, limit: str) -> dict[str, Any]:
    """The extensions of the only error, which must be ``QUERY_TOO_COMPLEX`` for ``limit``."""
    assert response.codes == ["QUERY_TOO_COMPLEX"], response.body
    extensions: dict[str, Any] = response.errors[0]["extensions"]
    assert extensions["limit"] == limit, extensions
    return extensions


def author_chain(hops: int, inner: str = "username") -> str:
    """``author { articles { edges { node { author { ... } } } } }`` nested ``hops`` times (4 levels each)."""
    for _ in range(hops):
        inner = f"author {{ articles(first: 1) {{ edges {{ node {{ {inner} }} }} }} }}"
    return inner


async def test_depth_bomb_is_refused(gql: GQL, app: Any, statements: list[str]) -> None:
    query = f'{{ article(slug: "x") {{ {author_chain(40)} }} }}'  # depth 1 + 4 * 40 + 1
    response = await refused(app, statements, gql(query))
    extensions = too_complex(response, "depth")
    assert extensions["value"] == 162
    assert extensions["maximum"] == 12


async def test_depth_bomb_through_a_chain_of_fragments_is_refused(gql: GQL, app: Any, statements: list[str]) -> None:
    hop = "author {{ articles(first: 1) {{ edges {{ node {{ ...F{next} }} }} }} }}"
    fragments = " ".join(f"fragment F{i} on Article {{ {hop.format(next=i + 1)} }}" for i in range(30))
    query = f'{{ article(slug: "x") {{ ...F0 }} }} {fragments} fragment F30 on Article {{ title }}'
    response = await refused(app, statements, gql(query))
    assert too_complex(response, "depth")["value"] == 1 + 4 * 30 + 1


async def test_alias_bomb_of_logins_tries_no_password(
    gql: GQL, app: Any, statements: list[str], alice: User, audit_log: Any
) -> None:
    logins = " ".join(
        f'a{i}: login(input: {{email: "{alice.email}", password: "guess{i:04d}"}}) {{ token }}' for i in range(200)
    )
    audit_log.clear()
    response = await refused(app, statements, gql(f"mutation Bomb {{ {logins} }}"))
    extensions = too_complex(response, "aliases")
    assert (extensions["value"], extensions["maximum"]) == (200, 30)
    # no attempt reached the login resolver: nothing audited, no rate_limit_event row (snapshot), not locked out
    assert audit_log.records() == []
    login = "mutation($e: String!, $p: String!) { login(input: {email: $e, password: $p}) { token } }"
    assert (await gql.ok(login, {"e": alice.email, "p": alice.password}))["login"]["token"]


async def test_cost_bomb_of_nested_connections_is_refused(gql: GQL, app: Any, statements: list[str]) -> None:
    query = """query Bomb { ...Page }
      fragment Page on Query { articles(first: 100) { edges { node { ...Comments } } } }
      fragment Comments on Article { comments(first: 100) { nodes { author { favorites(first: 100) { totalCount } } } } }"""
    response = await refused(app, statements, gql(query))
    extensions = too_complex(response, "cost")
    assert extensions["value"] == 100 + 100**2 + 100**3
    assert extensions["maximum"] == 50_000


async def test_fragment_fan_out_is_counted_in_linear_time(gql: GQL, app: Any, statements: list[str]) -> None:
    # every fragment spreads the next twice: 2**40 expansions if the limits walked it naively
    fragments = " ".join(f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}" for i in range(40))
    query = f"query Fan {{ ...F0 }} {fragments} fragment F40 on Query {{ tags }}"
    response = await refused(app, statements, gql(query))
    assert too_complex(response, "cost")["value"] == 2**40 * 20


@pytest.mark.parametrize("length", [2, 400])
async def test_fragment_cycles_are_refused_without_hanging(
    gql: GQL, app: Any, statements: list[str], length: int
) -> None:
    cycle = " ".join(f"fragment A{i} on User {{ username ...A{(i + 1) % length} }}" for i in range(length))
    response = await refused(app, statements, gql(f'{{ user(username: "alice") {{ ...A0 }} }} {cycle}'))
    assert response.codes == ["BAD_USER_INPUT"], response.body
    # the short cycle is reported as such; the long one is too deep for graphql-core, which stops validating
    expected = "Cannot spread fragment 'A0' within itself" if length == 2 else "Validation aborted."
    assert response.errors[0]["message"].startswith(expected), response.errors


async def test_ten_thousand_token_document_is_refused(gql: GQL, app: Any, statements: list[str]) -> None:
    query = "{ " + " ".join(f"a{i}: __typename" for i in range(3400)) + " }"  # 3 tokens per alias
    response = await refused(app, statements, gql(query))
    assert response.codes == ["QUERY_TOO_COMPLEX"]
    # like every other limit: which one, the value measured and the maximum (contract README, Limits)
    extensions = response.errors[0]["extensions"]
    assert (extensions["limit"], extensions["value"], extensions["maximum"]) == ("tokens", 2 + 3 * 3400, 5000)
    assert response.errors[0]["message"] == "Document has 10202 tokens; the limit is 5000."


async def test_unknown_directive_flood_on_one_field_is_one_error(gql: GQL, app: Any, statements: list[str]) -> None:
    # graphql-armor's directive attack: each @aa costs the server validation work before it is refused
    response = await refused(app, statements, gql("{ tags " + "@aa" * 1500 + " }"))
    # both directive limits, and not one "Unknown directive" error per @aa
    assert response.codes == ["QUERY_TOO_COMPLEX"] * 2, response.body
    limits = {e["extensions"]["limit"]: (e["extensions"]["value"], e["extensions"]["maximum"]) for e in response.errors}
    assert limits == {"totalDirectives": (1500, 50), "directives": (1500, 5)}


async def test_repeated_include_on_one_field_is_refused_by_the_limit(gql: GQL, app: Any, statements: list[str]) -> None:
    response = await refused(app, statements, gql("{ tags" + " @include(if: true)" * 6 + " }"))
    assert too_complex(response, "directives")["value"] == 6


async def test_directives_spread_over_many_fields_are_refused_in_total(
    gql: GQL, app: Any, statements: list[str]
) -> None:
    fields = " ".join("__typename @include(if: true)" for _ in range(25))
    fragment = "fragment F on Query { " + " ".join("__typename @skip(if: false)" for _ in range(26)) + " }"
    query = f"{{ {fields} ...F @include(if: true) }} {fragment}"
    response = await refused(app, statements, gql(query))
    extensions = too_complex(response, "totalDirectives")
    assert (extensions["value"], extensions["maximum"]) == (52, 50)


async def test_directives_within_the_limits_still_work(gql: GQL) -> None:
    query = "query($yes: Boolean!) { tags @include(if: $yes) @skip(if: false) popularTags @skip(if: $yes) { name } }"
    assert await gql.ok(query, {"yes": True}) == {"tags": []}


async def test_limits_are_checked_before_graphql_cores_rules(gql: GQL, app: Any, statements: list[str]) -> None:
    # a document that is invalid many times over and too deep gets the one limit error, not a hundred others
    unknown = " ".join(f"x{i}: nope{i}" for i in range(20))
    query = f'{{ {unknown} article(slug: "x") {{ {author_chain(5)} }} }}'
    response = await refused(app, statements, gql(query))
    too_complex(response, "depth")


async def test_nul_in_a_string_literal_is_refused(gql: GQL, app: Any, statements: list[str]) -> None:
    # found by the fuzzer: PostgreSQL cannot store NUL, so it failed inside the statement (INTERNAL_SERVER_ERROR)
    response = await refused(app, statements, gql('{ user(username: "a\\u0000b") { id } }'))
    assert response.codes == ["BAD_USER_INPUT"]
    assert response.errors[0]["extensions"]["fields"] == {"username": ["is invalid"]}


@pytest.mark.parametrize(
    ("query", "variables", "fields"),
    [
        ("query($u: String!) { user(username: $u) { id } }", {"u": "a\x00b"}, {"u": ["is invalid"]}),
        (
            "mutation($i: RegisterInput!) { register(input: $i) { token } }",
            {"i": {"username": "mallory", "email": "m\x00@example.com", "password": "password123"}},
            {"email": ["is invalid"]},
        ),
        (
            'mutation($t: [String!]) { createArticle(input: {title: "t", description: "d", body: "b", '
            "tagList: $t}) { slug } }",
            {"t": ["ok", "n\x00l"]},
            {"t": ["is invalid"]},
        ),
    ],
)
async def test_nul_in_a_variable_is_refused(
    gql: GQL, app: Any, statements: list[str], query: str, variables: dict[str, Any], fields: dict[str, Any]
) -> None:
    response = await refused(app, statements, gql(query, variables))
    assert response.codes == ["BAD_USER_INPUT"]
    assert response.errors[0]["extensions"]["fields"] == fields
