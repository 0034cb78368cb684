"""The planner's mapping against the schema: neither can grow a field the other lacks.

The values themselves are checked against the resolvers by the differential tests
(``test_planned.py``, ``test_planned_coverage.py``): this test catches the drift they
cannot see, a field added to a type (or the mapping) that no generated query selects yet.
"""

from __future__ import annotations

from graphql import GraphQLObjectType, parse

from graph.execution.planned import plan_operation
from graph.execution.planned.mapping import MAPPING, UNMAPPED, ToMany, ToOne
from graph.schema import create_schema
from graph.settings import Settings

SCHEMA = create_schema(Settings(env="test", jwt_secret="test-secret-" + "x" * 40))._schema


def test_every_field_of_every_mapped_type_is_mapped_and_nothing_else() -> None:
    for name, mapping in MAPPING.items():
        object_type = SCHEMA.type_map[name]
        assert isinstance(object_type, GraphQLObjectType)
        in_schema = set(object_type.fields)
        in_mapping = set(mapping.fields) | {field.split(".")[1] for field in UNMAPPED if field.startswith(f"{name}.")}
        assert in_schema == in_mapping, (name, in_schema ^ in_mapping)


def test_relations_point_at_mapped_types_of_the_schema() -> None:
    for name, mapping in MAPPING.items():
        object_type = SCHEMA.type_map[name]
        assert isinstance(object_type, GraphQLObjectType)
        for field_name, field in mapping.fields.items():
            if isinstance(field, ToOne | ToMany):
                assert field.target in MAPPING, (name, field_name)
                returned = str(object_type.fields[field_name].type).strip("!")
                expected = field.target if isinstance(field, ToOne) else f"{field.target}Connection"
                assert returned == expected, (name, field_name, returned)


def test_every_query_field_is_planned() -> None:
    query_type = SCHEMA.query_type
    assert query_type is not None
    selections = {
        "node": '{ node(id: "x") { id } }',
        "nodes": '{ nodes(ids: ["x"]) { id } }',
        "viewer": "{ viewer { id } }",
        "user": '{ user(username: "x") { id } }',
        "article": '{ article(slug: "x") { id } }',
        "articles": "{ articles { totalCount } }",
        "feed": "{ feed { totalCount } }",
        "users": "{ users { totalCount } }",
        "tags": "{ tags }",
        "popularTags": "{ popularTags { name articlesCount } }",
        "rateLimit": "{ rateLimit { cost limit remaining resetAt used } }",
    }
    assert set(selections) == set(query_type.fields), "a Query field without a case here"
    for document in selections.values():
        (operation,) = parse(document).definitions
        plan_operation(SCHEMA, operation, {}, True)  # type: ignore[arg-type]  # raises NotPlanned if not
