"""Injection-like strings in every string argument of every query and mutation.

For each root field, every String or ID argument (inside input objects too) gets the same
hostile string, and every other argument a plain valid value. The server must answer a
well-formed GraphQL response with no 5xx and no INTERNAL_SERVER_ERROR, every table must
still be there with none of its rows lost, and a string that was stored must read back
byte for byte: it was data, never SQL, FTS5 or tsquery syntax.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLScalarType,
)

from graph.schema import create_schema
from graph.settings import Settings
from tests.conftest import GQL, User, create_article

PAYLOADS = [
    "' OR '1'='1' --",
    '"; DROP TABLE article; --',
    '%\' UNION SELECT email, password_hash FROM "user" --',
    "a & !b | c:* <-> (d)",  # tsquery operators
    'title:x NEAR(a b) OR * "unbalanced',  # FTS5 syntax
    "$1 ?1 :name %s {0}",  # placeholder styles
    "\\'; SELECT pg_sleep(5); --",
    "ü🙂\u202e\ufeff",
]
TABLES = ["user", "follow", "article", "tag", "article_tag", "favorite", "comment", "refresh_token"]


def _value(input_type: GraphQLInputType, payload: str, depth: int = 0) -> Any:
    if isinstance(input_type, GraphQLNonNull):
        return _value(input_type.of_type, payload, depth)
    if isinstance(input_type, GraphQLList):
        return [_value(input_type.of_type, payload, depth)]
    if isinstance(input_type, GraphQLInputObjectType):
        return {name: _value(field.type, payload, depth + 1) for name, field in input_type.fields.items()}
    if isinstance(input_type, GraphQLEnumType):
        return next(iter(input_type.values))
    assert isinstance(input_type, GraphQLScalarType)
    return {"String": payload, "ID": payload, "Int": 1, "Float": 1.0, "Boolean": False}.get(input_type.name, payload)


def _operations() -> list[tuple[str, str, dict[str, GraphQLInputType], bool]]:
    """(operation kind, root field, its arguments, whether it needs a sub-selection) per field with a string."""
    schema = create_schema(Settings(env="test", jwt_secret="x" * 40))._schema
    found = []
    for kind, root in (("query", schema.query_type), ("mutation", schema.mutation_type)):
        assert root is not None
        for name, field in root.fields.items():
            if any(_has_string(arg.type) for arg in field.args.values()):
                named = field.type
                while isinstance(named, GraphQLNonNull | GraphQLList):
                    named = named.of_type
                composite = not isinstance(named, GraphQLScalarType | GraphQLEnumType)
                found.append((kind, name, {arg_name: arg.type for arg_name, arg in field.args.items()}, composite))
    return found


def _has_string(input_type: GraphQLInputType) -> bool:
    while isinstance(input_type, GraphQLNonNull | GraphQLList):
        input_type = input_type.of_type
    if isinstance(input_type, GraphQLInputObjectType):
        return any(_has_string(field.type) for field in input_type.fields.values())
    return isinstance(input_type, GraphQLScalarType) and input_type.name in ("String", "ID")


async def _counts(app: Any) -> dict[str, int]:
    async with app.state.conduit.db.engine.connect() as connection:
        return {
            table: (await connection.execute(sa.text(f'SELECT count(*) FROM "{table}"'))).scalar_one()
            for table in TABLES
        }


OPERATIONS = _operations()


@pytest.mark.parametrize("payload", PAYLOADS)
async def test_hostile_strings_in_every_string_argument_are_only_data(
    gql: GQL, app: Any, alice: User, bob: User, payload: str
) -> None:
    await create_article(gql, alice, "Kept", tagList=["kept"])
    before = await _counts(app)
    created: dict[str, Any] | None = None
    for kind, name, arguments, composite in OPERATIONS:
        declared = ", ".join(f"${arg}: {arg_type}" for arg, arg_type in arguments.items())
        passed = ", ".join(f"{arg}: ${arg}" for arg in arguments)
        # __typename answers for any return type, so one document shape fits every field
        selection = f"{name}({passed}) {{ __typename }}" if composite else f"{name}({passed})"
        document = f"{kind} Probe({declared}) {{ {selection} }}"
        variables = {arg: _value(arg_type, payload) for arg, arg_type in arguments.items()}
        for token in (None, alice.token):
            response = await gql(document, variables, token)
            assert response.status in (200, 400, 401), (name, response.status, response.body)
            assert "data" in response.body or response.errors, (name, response.body)
            assert "INTERNAL_SERVER_ERROR" not in response.codes, (name, payload, response.body)
            if name == "createArticle" and token is not None:
                # either stored as data or refused as input, never anything else
                assert response.data or response.codes == ["BAD_USER_INPUT"], response.body
                if response.data:
                    created = response.data["createArticle"]
    after = await _counts(app)
    for table in TABLES:
        assert after[table] >= before[table], (table, before, after)  # nothing dropped or deleted
    # what was stored reads back as it was sent: it was data, never syntax
    data = await gql.ok("{ articles(first: 100) { edges { node { title body tagList } } } }")
    stored = [edge["node"] for edge in data["articles"]["edges"]]
    assert any(node["title"] == "Kept" for node in stored)
    if created is not None:
        assert any(node["body"] == payload for node in stored), (payload, stored)
    # and a search for it is a search, not an error
    found = await gql("query($q: String!) { articles(search: $q) { totalCount } }", {"q": payload})
    assert not found.errors, found.body
