"""The Relay ``Node`` interface, shared enums and pagination types."""

from __future__ import annotations

import enum

import strawberry

from db.models import Role
from graph.cache_control import CacheControl
from graph.errors import BadUserInput

MAX_FIRST = 100
DEFAULT_FIRST = 20


@strawberry.interface(
    description="An object with a globally unique, opaque ID (Relay Global Object Identification).",
    directives=[CacheControl(max_age=60)],
)
class Node:
    id: strawberry.ID


# The GraphQL enum Role is db's: one list of roles for the schema, the database and the CLI.
strawberry.enum(Role)


@strawberry.enum
class OrderDirection(enum.Enum):
    ASC = "ASC"
    DESC = "DESC"


@strawberry.type(directives=[CacheControl(inherit_max_age=True)])
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


def check_first(first: int | None, argument: str = "first") -> int:
    """``first`` when it is within 0..100, 20 for null; ``BadUserInput`` otherwise (contract README)."""
    if first is None:
        return DEFAULT_FIRST
    if first < 0 or first > MAX_FIRST:
        raise BadUserInput({argument: [f"must be between 0 and {MAX_FIRST}"]})
    return first


def page_info(cursors: list[str], has_next: bool, has_previous: bool) -> PageInfo:
    """A ``PageInfo`` for a forward page whose edges have ``cursors``."""
    return PageInfo(
        has_next_page=has_next,
        has_previous_page=has_previous,
        start_cursor=cursors[0] if cursors else None,
        end_cursor=cursors[-1] if cursors else None,
    )
