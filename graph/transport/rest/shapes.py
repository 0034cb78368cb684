"""How a stored operation's result becomes RealWorld's JSON, and that JSON's schema.

One declaration serves both: ``Shape.render`` turns the GraphQL data into the spec's objects,
and ``Shape.json_schema`` describes them for ``/api/openapi.json``, each property's type taken
from the GraphQL field it reads (``String`` is a string, ``Int`` an integer, a nullable field
may be null unless ``blank``). The stored operations (``operations/*.graphql``) select what the
shapes read; ``graph/transport/rest/api.py`` checks that at startup.

Spec: ``../shared/realworld/openapi.yml`` (RealWorld 1.1.0), ``components/schemas`` and
``components/responses``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLSchema,
)

from graph.ids import from_global_id

SCALARS: dict[str, dict[str, Any]] = {
    "String": {"type": "string"},
    "ID": {"type": "string"},
    "Int": {"type": "integer"},
    "Boolean": {"type": "boolean"},
    "DateTime": {"type": "string", "format": "date-time"},
}
"""The JSON Schema of each GraphQL scalar a shape reads."""


def ref(name: str) -> dict[str, str]:
    """A reference to the component schema ``name``."""
    return {"$ref": f"#/components/schemas/{name}"}


def json_type(graphql_type: GraphQLOutputType, nullable: bool = True) -> dict[str, Any]:
    """The JSON Schema of a GraphQL scalar or list type; ``nullable=False`` leaves ``null`` out."""
    if isinstance(graphql_type, GraphQLNonNull):
        return json_type(graphql_type.of_type, nullable=False)
    if isinstance(graphql_type, GraphQLList):
        schema: dict[str, Any] = {"type": "array", "items": json_type(graphql_type.of_type)}
    else:
        schema = dict(SCALARS[getattr(graphql_type, "name", "")])
    if nullable:
        schema["type"] = [schema["type"], "null"]
    return schema


@dataclass(frozen=True)
class Prop:
    """One property, read from the GraphQL field of the same name (or ``source``).

    ``blank``: null becomes ``""`` (the spec's ``bio`` and ``image`` are required strings; our
    contract clears them with a blank, so ``""`` and null mean the same). ``sort``: a list is
    sorted (the spec's suite expects ``tagList`` in alphabetical order). ``comment_id``: a global
    ID becomes the integer the spec's comment ids are.
    """

    source: str | None = None
    blank: bool = False
    sort: bool = False
    comment_id: bool = False

    def render(self, value: Any) -> Any:
        """The property's JSON value from the field's value."""
        if value is None:
            return "" if self.blank else None
        if self.sort:
            return sorted(value)
        if self.comment_id:
            decoded = from_global_id(value)
            return decoded[1] if decoded is not None else None
        return value

    def json_schema(self, graphql_type: GraphQLOutputType) -> dict[str, Any]:
        """The property's JSON Schema from its field's GraphQL type."""
        if self.comment_id:
            return {"type": "integer"}
        if self.blank:
            return json_type(graphql_type, nullable=False)
        return json_type(graphql_type)


@dataclass(frozen=True)
class Token:
    """The access token: the one ``register``/``login`` returned, else the request's own (``GET /user``)."""

    def json_schema(self) -> dict[str, Any]:
        """A string."""
        return {"type": "string"}


@dataclass(frozen=True)
class Shape:
    """An object of the spec (``name``: its component schema) read from a GraphQL object of ``type_name``."""

    name: str
    type_name: str
    properties: Mapping[str, Prop | Token | Shape] = field(default_factory=dict)

    def render(self, data: Mapping[str, Any], token: str | None = None) -> dict[str, Any]:
        """The spec's object from the GraphQL object ``data``; ``token`` fills a ``Token`` property."""
        out: dict[str, Any] = {}
        for key, prop in self.properties.items():
            if isinstance(prop, Token):
                out[key] = token
            elif isinstance(prop, Shape):
                out[key] = prop.render(data[key])
            else:
                out[key] = prop.render(data[prop.source or key])
        return out

    def json_schema(self, schema: GraphQLSchema) -> dict[str, Any]:
        """Its JSON Schema: every property required, nested shapes by reference."""
        object_type = schema.type_map[self.type_name]
        if not isinstance(object_type, GraphQLObjectType):
            raise TypeError(f"/api: {self.type_name} is not an object type")
        properties: dict[str, Any] = {}
        for key, prop in self.properties.items():
            if isinstance(prop, Token):
                properties[key] = prop.json_schema()
            elif isinstance(prop, Shape):
                properties[key] = ref(prop.name)
            else:
                properties[key] = prop.json_schema(object_type.fields[prop.source or key].type)
        return {"type": "object", "required": sorted(properties), "properties": properties}

    def fields(self) -> set[tuple[str, str]]:
        """``(GraphQL type, field)`` of everything it reads, nested shapes included (the startup check)."""
        read: set[tuple[str, str]] = set()
        for key, prop in self.properties.items():
            if isinstance(prop, Shape):
                read.add((self.type_name, key))
                read |= prop.fields()
            elif isinstance(prop, Prop):
                read.add((self.type_name, prop.source or key))
        return read

    def shapes(self) -> list[Shape]:
        """This shape and those nested in it (for ``components/schemas``)."""
        found = [self]
        for prop in self.properties.values():
            if isinstance(prop, Shape):
                found.extend(prop.shapes())
        return found


PROFILE = Shape(
    "Profile",
    "User",
    {"username": Prop(), "bio": Prop(blank=True), "image": Prop(blank=True), "following": Prop()},
)
USER = Shape(
    "User",
    "User",
    {
        "email": Prop(blank=True),
        "token": Token(),
        "username": Prop(),
        "bio": Prop(blank=True),
        "image": Prop(blank=True),
    },
)
_ARTICLE: dict[str, Prop | Token | Shape] = {
    "slug": Prop(),
    "title": Prop(),
    "description": Prop(),
    "body": Prop(),
    "tagList": Prop(sort=True),
    "createdAt": Prop(),
    "updatedAt": Prop(),
    "favorited": Prop(),
    "favoritesCount": Prop(),
    "author": PROFILE,
}
ARTICLE = Shape("Article", "Article", _ARTICLE)
LISTED_ARTICLE = Shape("ArticleSummary", "Article", {key: prop for key, prop in _ARTICLE.items() if key != "body"})
"""An article in a list: without its body (the spec's MultipleArticlesResponse)."""
COMMENT = Shape(
    "Comment",
    "Comment",
    {"id": Prop(comment_id=True), "createdAt": Prop(), "updatedAt": Prop(), "body": Prop(), "author": PROFILE},
)

GENERIC_ERROR: dict[str, Any] = {
    "type": "object",
    "required": ["errors"],
    "properties": {
        "errors": {
            "type": "object",
            "required": ["body"],
            "properties": {"body": {"type": "array", "items": {"type": "string"}}},
        }
    },
}
"""The spec's GenericErrorModel: ``{"errors": {"body": ["..."]}}``, every error response's body."""


def error_body(messages: list[str]) -> dict[str, Any]:
    """A body of the spec's GenericErrorModel."""
    return {"errors": {"body": messages}}
