"""Operation limits (contract README, Limits): rejected before execution with QUERY_TOO_COMPLEX."""

from __future__ import annotations

import pytest

from tests.conftest import GQL


def nested(hops: int) -> str:
    """A query of depth ``3 + 3 * hops``: articles > nodes > (author > articles > nodes) * hops > slug."""
    inner = "slug"
    for _ in range(hops):
        inner = f"author {{ articles(first: 1) {{ nodes {{ {inner} }} }} }}"
    return f"{{ articles(first: 1) {{ nodes {{ {inner} }} }} }}"


async def test_depth_limit(gql: GQL, statements: list[str]) -> None:
    ok = await gql(nested(3))  # depth 12
    assert not ok.errors, ok.errors
    statements.clear()
    deep = await gql(nested(4))  # depth 15
    assert deep.codes == ["QUERY_TOO_COMPLEX"]
    assert deep.errors[0]["extensions"]["limit"] == "depth"
    assert deep.errors[0]["extensions"]["value"] == 15
    assert statements == []  # nothing ran


async def test_introspection_does_not_count_towards_depth(gql: GQL) -> None:
    query = "{ __schema { types { fields { type { ofType { ofType { ofType { ofType { name } } } } } } } } }"
    assert not (await gql(query)).errors


async def test_alias_limit_counts_fragments_too(gql: GQL, statements: list[str]) -> None:
    logins = " ".join(
        f'a{i}: login(input: {{email: "x{i}@example.com", password: "password123"}}) {{ token }}' for i in range(200)
    )
    statements.clear()
    response = await gql(f"mutation {{ {logins} }}")
    assert response.codes == ["QUERY_TOO_COMPLEX"]
    assert statements == []
    fragment = "fragment F on Query { " + " ".join(f"t{i}: tags(first: 1)" for i in range(20)) + " }"
    query = "{ ...F " + " ".join(f"u{i}: tags(first: 1)" for i in range(11)) + " } " + fragment
    assert (await gql(query)).codes == ["QUERY_TOO_COMPLEX"]


async def test_cost_limit_multiplies_nested_connections(gql: GQL, statements: list[str]) -> None:
    query = """query Bomb($n: Int) { articles(first: $n) { nodes { comments(first: $n) {
      nodes { author { articles(first: $n) { totalCount } } } } } } }"""
    statements.clear()
    response = await gql(query, {"n": 100})  # 100 + 100*100 + 100*100*100 nodes
    assert response.codes == ["QUERY_TOO_COMPLEX"]
    assert response.errors[0]["extensions"]["limit"] == "cost"
    assert response.errors[0]["extensions"]["value"] == 100 + 100**2 + 100**3
    assert statements == []
    fine = await gql(query, {"n": 10})
    assert not fine.errors


async def test_cost_counts_defaults_and_fragments(gql: GQL) -> None:
    query = """{ ...A } fragment A on Query { articles { nodes { ...C } } }
      fragment C on Article { comments { nodes { author { favorites { nodes { author { articles { totalCount } } } } } } } }"""
    response = await gql(query)  # 20 + 400 + 8,000 + 160,000
    assert response.codes == ["QUERY_TOO_COMPLEX"]
    assert response.errors[0]["extensions"]["value"] == 20 + 20**2 + 20**3 + 20**4


async def test_nodes_cost_counts_ids(gql: GQL) -> None:
    ids = ", ".join(f'"id{i}"' for i in range(100))
    query = f"{{ nodes(ids: [{ids}]) {{ ... on User {{ articles(first: 100) {{ nodes {{ comments(first: 100) {{ totalCount }} }} }} }} }} }}"
    assert (await gql(query)).codes == ["QUERY_TOO_COMPLEX"]


async def test_token_limit(gql: GQL) -> None:
    query = "{ " + " ".join("__typename" for _ in range(6000)) + " }"
    response = await gql(query)
    assert response.codes == ["QUERY_TOO_COMPLEX"]


async def test_fragment_cycles_are_rejected(gql: GQL) -> None:
    query = "{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }"
    response = await gql(query)
    assert response.errors and "data" not in response.body


@pytest.mark.parametrize("first", [-1, 101, 1000])
async def test_first_out_of_range_is_refused(gql: GQL, first: int) -> None:
    response = await gql("query($n: Int) { articles(first: $n) { totalCount } }", {"n": first})
    assert response.codes[0] in ("BAD_USER_INPUT", "QUERY_TOO_COMPLEX")
