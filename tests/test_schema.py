"""The committed schema.graphql is the code's schema, and it keeps the contract."""

from __future__ import annotations

import enum
import subprocess
import sys
from pathlib import Path

import strawberry
from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLSchema,
    is_introspection_type,
    is_specified_directive,
)
from graphql.type.scalars import specified_scalar_types
from strawberry.schema_directive import Location

from graph.schema import create_schema, export_sdl
from graph.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
CONTRACT_CHECK = ROOT.parent / "shared" / "tools" / "check_contract.py"


def test_committed_schema_is_current() -> None:
    committed = (ROOT / "schema.graphql").read_text()
    assert committed == export_sdl(), "schema.graphql is stale: run `conduit schema export`"


def test_schema_keeps_the_contract() -> None:
    assert CONTRACT_CHECK.exists(), f"{CONTRACT_CHECK} is missing: check out ../shared beside the project"
    result = subprocess.run(
        [sys.executable, str(CONTRACT_CHECK), str(ROOT / "schema.graphql")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 breaking differences" in result.stdout


def test_example_operations_are_valid_against_the_schema() -> None:
    from graphql import build_schema, parse, validate

    schema = build_schema(export_sdl())
    documents = sorted((ROOT / "examples" / "operations").glob("*.graphql"))
    assert len(documents) >= 4
    for path in documents:
        errors = validate(schema, parse(path.read_text()))
        assert not errors, f"{path.name}: {errors}"


def undescribed(schema: GraphQLSchema) -> list[str]:
    """Every type, field, argument, enum value, input field and directive of ``schema`` without a description.

    Built-in scalars, introspection types and the specified directives (``@skip``, ...) are graphql-core's.
    """
    missing: list[str] = []
    for name, named in schema.type_map.items():
        if name in specified_scalar_types or is_introspection_type(named):
            continue
        if not named.description:
            missing.append(name)
        if isinstance(named, GraphQLObjectType | GraphQLInterfaceType):
            for field_name, field in named.fields.items():
                if not field.description:
                    missing.append(f"{name}.{field_name}")
                missing += [f"{name}.{field_name}({arg})" for arg, value in field.args.items() if not value.description]
        elif isinstance(named, GraphQLInputObjectType):
            missing += [f"{name}.{field}" for field, value in named.fields.items() if not value.description]
        elif isinstance(named, GraphQLEnumType):
            missing += [f"{name}.{value}" for value, definition in named.values.items() if not definition.description]
    for directive in schema.directives:
        if is_specified_directive(directive):
            continue
        if not directive.description:
            missing.append(f"@{directive.name}")
        missing += [f"@{directive.name}({arg})" for arg, value in directive.args.items() if not value.description]
    return missing


def test_every_schema_element_has_a_description() -> None:
    """Issue 12, item 4: what each element is, its units and its rules, in the schema itself."""
    missing = undescribed(create_schema(Settings())._schema)
    assert not missing, f"{len(missing)} schema elements lack a description: {', '.join(missing)}"


@strawberry.schema_directive(locations=[Location.FIELD_DEFINITION])
class Tiny:
    level: int


@strawberry.enum
class TinyColour(enum.Enum):
    RED = "RED"
    BLUE = strawberry.enum_value("BLUE", description="Described.")


@strawberry.input
class TinyPaint:
    colour: TinyColour


@strawberry.interface(description="Described.")
class TinyThing:
    name: str


@strawberry.type
class TinyBox(TinyThing):
    size: int = strawberry.field(description="Described.", directives=[Tiny(level=1)])


@strawberry.type
class TinyRoot:
    @strawberry.field
    def box(self, paint: TinyPaint, depth: int = 1) -> TinyBox:
        return TinyBox(name="box", size=depth)


def test_undescribed_finds_every_kind_of_element() -> None:
    """The walk above misses nothing: a tiny schema with bare elements of each kind beside described ones."""
    schema = strawberry.Schema(query=TinyRoot)._schema
    assert sorted(undescribed(schema)) == sorted(
        [
            "@tiny",
            "@tiny(level)",
            "TinyColour",
            "TinyColour.RED",
            "TinyPaint",
            "TinyPaint.colour",
            "TinyThing.name",
            "TinyBox",
            "TinyBox.name",
            "TinyRoot",
            "TinyRoot.box",
            "TinyRoot.box(paint)",
            "TinyRoot.box(depth)",
        ]
    )
