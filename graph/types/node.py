"""The Relay ``Node`` interface, shared enums and pagination types."""

from __future__ import annotations

import enum

import strawberry

from db.models import Role
from graph.cache_control import CacheControl
from graph.errors import BadUserInput

MAX_FIRST = 100
DEFAULT_FIRST = 20

# Descriptions said once and shared by every connection and paginated field (issue 12, item 4).
FIRST_DESCRIPTION = (
    f"How many items to return: 0 to {MAX_FIRST}; {DEFAULT_FIRST} when omitted or null (BAD_USER_INPUT otherwise)."
)
AFTER_DESCRIPTION = (
    "An endCursor or edge cursor from a previous page of this same listing; the page starts after it; null or "
    "omitted: the first page (BAD_USER_INPUT for a cursor that does not decode or is of another listing or ordering)."
)
OFFSET_DESCRIPTION = (
    "How many items to skip before the page starts (page-number paging, as RealWorld's limit and offset): 0 or "
    "more, 0 when omitted or null (BAD_USER_INPUT when negative). A positive offset cannot be combined with "
    "`after`, which names the page by its cursor instead (BAD_USER_INPUT)."
)
NODE_ID_DESCRIPTION = "Globally unique, opaque ID (Relay); `node(id:)` fetches the object again by it."
EDGES_DESCRIPTION = "This page's items, each with its cursor, in the listing's order."
NODES_DESCRIPTION = "This page's items without their cursors: the nodes of `edges`, in the same order."
PAGE_INFO_DESCRIPTION = "Where this page sits in the listing, and the cursor to continue from."
CURSOR_DESCRIPTION = "Opaque position of this item in its listing: pass it as `after` to continue after it."


@strawberry.interface(
    description="An object with a globally unique, opaque ID (Relay Global Object Identification).",
    directives=[CacheControl(max_age=60)],
)
class Node:
    id: strawberry.ID = strawberry.field(description=NODE_ID_DESCRIPTION)


# The GraphQL enum Role is db's: one list of roles for the schema, the database and the CLI.
strawberry.enum(
    Role,
    description="What a user may do. Read from the database on every request, so a role change takes effect at "
    "once; admins change it with setUserRole.",
)
ROLE_DESCRIPTIONS = {
    Role.USER: "The default: reads everything public and writes, updates and deletes only their own content.",
    Role.MODERATOR: "A user who may also delete any article or comment, list `users`, read every user's "
    "`suspension` and suspend users with the role USER.",
    Role.ADMIN: "A moderator who may also change roles (setUserRole), delete accounts (deleteUser), suspend "
    "moderators and admins, and read every user's email.",
}
for _value in Role.__strawberry_definition__.values:  # type: ignore[attr-defined]
    # db.models.Role is a plain enum (db does not import Strawberry): its values are described here
    _value.description = ROLE_DESCRIPTIONS[Role(_value.value)]


@strawberry.enum(description="The direction of an ordering; ties on its key break on the ID in the same direction.")
class OrderDirection(enum.Enum):
    ASC = strawberry.enum_value("ASC", description="Ascending: the smallest (or oldest) first.")
    DESC = strawberry.enum_value("DESC", description="Descending: the largest (or newest) first.")


@strawberry.type(
    description="Where a page of a connection sits in its listing (Relay cursor connections). Paging is forward "
    "only: pass `endCursor` as `after` for the next page, while `hasNextPage` is true.",
    directives=[CacheControl(inherit_max_age=True)],
)
class PageInfo:
    has_next_page: bool = strawberry.field(description="Whether more items follow this page.")
    has_previous_page: bool = strawberry.field(
        description="Whether items precede this page: true whenever `after` or a positive `offset` was given, false "
        "on the first page."
    )
    start_cursor: str | None = strawberry.field(
        description="The cursor of the page's first edge; null when the page is empty."
    )
    end_cursor: str | None = strawberry.field(
        description="The cursor of the page's last edge, to pass as `after` for the next page; null when the page "
        "is empty."
    )


def check_first(first: int | None, argument: str = "first") -> int:
    """``first`` when it is within 0..100, 20 for null; ``BadUserInput`` otherwise (contract README)."""
    if first is None:
        return DEFAULT_FIRST
    if first < 0 or first > MAX_FIRST:
        raise BadUserInput({argument: [f"must be between 0 and {MAX_FIRST}"]})
    return first


def check_offset(offset: int | None, after: str | None) -> int:
    """``offset`` when it is 0 or more and ``after`` is not given too, 0 for null; ``BadUserInput`` otherwise.

    The contract's additions (``../shared/api/README.md``): ``offset`` is exclusive with ``after``, so
    a page is named either by position or by cursor, never by both.
    """
    if offset is None:
        return 0
    if offset < 0:
        raise BadUserInput({"offset": ["must be 0 or more"]})
    if offset and after is not None:
        raise BadUserInput({"offset": ["cannot be combined with after"]})
    return offset


def page_info(cursors: list[str], has_next: bool, has_previous: bool) -> PageInfo:
    """A ``PageInfo`` for a forward page whose edges have ``cursors``."""
    return PageInfo(
        has_next_page=has_next,
        has_previous_page=has_previous,
        start_cursor=cursors[0] if cursors else None,
        end_cursor=cursors[-1] if cursors else None,
    )
