"""Permission classes, declared on the fields they guard.

Roles and what they may do (contract README, Authorization); the role is read from the
database on every request, so a demotion takes effect at once:

| action                                    | anonymous | USER        | MODERATOR | ADMIN |
| ----------------------------------------- | --------- | ----------- | --------- | ----- |
| read articles, profiles, comments, tags   | yes       | yes         | yes       | yes   |
| read ``User.email``, ``emailVerified``    | no        | own only    | own only  | all   |
| read ``User.suspension``                  | no        | own only    | all       | all   |
| list ``users``                            | no        | no          | yes       | yes   |
| feed, follow, favorite, comment, logout   | no        | yes         | yes       | yes   |
| create article, update viewer             | no        | yes         | yes       | yes   |
| update article                            | no        | own only    | own only  | own only |
| delete article or comment                 | no        | own only    | any       | any   |
| setUserRole, deleteUser                   | no        | no          | no        | yes   |
| suspendUser, unsuspendUser: a USER        | no        | no          | yes       | yes   |
| suspendUser, unsuspendUser: staff         | no        | no          | no        | yes   |
| suspendUser, unsuspendUser: oneself       | no        | no          | no        | no    |
| deleteViewer (with the password)          | no        | yes         | yes       | yes   |

"Staff" is a moderator or an admin. Suspending oneself is ``FORBIDDEN`` (a rule about who may
act, like the others here), not ``BAD_USER_INPUT``. Deleting the last admin (by ``deleteUser`` or
``deleteViewer``) is refused by the data layer, not here (``BAD_USER_INPUT``, see
``graph/mutations/moderation.py``).

A guard that needs a row (the article of ``slug``, the comment of ``id``, the user of
``username``) lets a missing row through, so the resolver answers ``NOT_FOUND`` rather than
``FORBIDDEN``.

Every refusal that reaches the client as an error is audited (``permission_denied``, with the
permission class, the field path and the viewer id; see ``auth.audit``). ``IsSelfOrAdmin`` is not:
it fails silently (``User.email`` is ``null``), which is how every other user's profile reads.
"""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.permission import BasePermission
from strawberry.schema_directive import Location
from strawberry.types import Info

from auth.audit import audit
from db.models import Role
from graph.context import Context
from graph.ids import from_global_id

STAFF_ROLES = frozenset({Role.MODERATOR, Role.ADMIN})


def denied(permission: BasePermission, info: Info[Context, None]) -> bool:
    """Audit ``permission`` refusing the field being resolved; always ``False``.

    Called from ``has_permission`` rather than ``on_unauthorized``: only the former sees ``info``
    (the field path and the viewer), and permission instances are shared by concurrent requests.
    """
    audit(
        "permission_denied",
        request_id=info.context.request_id,
        viewer_id=info.context.viewer_id,
        permission=type(permission).__name__,
        field_path=".".join(str(key) for key in info.path.as_list()),
    )
    return False


class IsAuthenticated(BasePermission):
    """The request has a viewer."""

    message = "Authentication required."
    error_extensions = {"code": "UNAUTHENTICATED"}

    def has_permission(self, source: Any, info: Info[Context, None], **kwargs: Any) -> bool:
        return info.context.viewer is not None or denied(self, info)


class IsAdmin(BasePermission):
    """The viewer is an admin."""

    message = "Only admins may do this."
    error_extensions = {"code": "FORBIDDEN"}

    def has_permission(self, source: Any, info: Info[Context, None], **kwargs: Any) -> bool:
        viewer = info.context.viewer
        return (viewer is not None and viewer.role is Role.ADMIN) or denied(self, info)


class IsStaff(BasePermission):
    """The viewer is a moderator or an admin; anonymous requests are refused the same way (``FORBIDDEN``)."""

    message = "Only moderators and admins may do this."
    error_extensions = {"code": "FORBIDDEN"}

    def has_permission(self, source: Any, info: Info[Context, None], **kwargs: Any) -> bool:
        viewer = info.context.viewer
        return (viewer is not None and viewer.role in STAFF_ROLES) or denied(self, info)


def may_suspend(viewer_id: int, viewer_role: Role, target_id: int, target_role: Role) -> bool:
    """Whether a viewer may suspend (or lift the suspension of) the target: the matrix above.

    Staff suspend users; only admins suspend moderators or admins; nobody suspends themself.
    """
    if viewer_id == target_id:
        return False
    if target_role in STAFF_ROLES:
        return viewer_role is Role.ADMIN
    return viewer_role in STAFF_ROLES


class CanSuspend(BasePermission):
    """The viewer may suspend the user named by ``username`` (``may_suspend``)."""

    message = "Moderators suspend users; only admins suspend moderators or admins; nobody suspends themself."
    error_extensions = {"code": "FORBIDDEN"}

    async def has_permission(self, source: Any, info: Info[Context, None], **kwargs: Any) -> bool:
        viewer = info.context.viewer
        if viewer is None:
            return denied(self, info)
        row = await info.context.loaders.user_by_username.load(kwargs["username"])
        return row is None or may_suspend(viewer.id, viewer.role, row.id, Role(row.role)) or denied(self, info)


@strawberry.schema_directive(
    name="isSelfOrAdmin",
    locations=[Location.FIELD_DEFINITION],
    description="The field reads null unless the viewer is the user themself or an admin.",
)
class IsSelfOrAdminDirective:
    """The ``@isSelfOrAdmin`` marker ``IsSelfOrAdmin`` puts on the fields it guards, with a description."""


@strawberry.schema_directive(
    name="isSelfOrStaff",
    locations=[Location.FIELD_DEFINITION],
    description="The field reads null unless the viewer is the user themself, a moderator or an admin.",
)
class IsSelfOrStaffDirective:
    """The ``@isSelfOrStaff`` marker ``IsSelfOrStaff`` puts on the fields it guards, with a description."""


class IsSelfOrAdmin(BasePermission):
    """The source ``User`` is the viewer, or the viewer is an admin (for private fields)."""

    _schema_directive = IsSelfOrAdminDirective()

    message = "Only the user themself or an admin may see this."
    error_extensions = {"code": "FORBIDDEN"}

    def has_permission(self, source: Any, info: Info[Context, None], **kwargs: Any) -> bool:
        viewer = info.context.viewer
        return viewer is not None and (viewer.id == source.pk or viewer.role is Role.ADMIN)


class IsSelfOrStaff(BasePermission):
    """The source ``User`` is the viewer, or the viewer is a moderator or admin (``User.suspension``)."""

    _schema_directive = IsSelfOrStaffDirective()

    message = "Only the user themself, a moderator or an admin may see this."
    error_extensions = {"code": "FORBIDDEN"}

    def has_permission(self, source: Any, info: Info[Context, None], **kwargs: Any) -> bool:
        viewer = info.context.viewer
        return viewer is not None and (viewer.id == source.pk or viewer.role in STAFF_ROLES)


class IsArticleAuthor(BasePermission):
    """The viewer wrote the article named by the ``slug`` argument."""

    message = "Only the author may change this article."
    error_extensions = {"code": "FORBIDDEN"}

    async def has_permission(self, source: Any, info: Info[Context, None], **kwargs: Any) -> bool:
        viewer = info.context.viewer
        row = await info.context.loaders.article_by_slug.load(kwargs["slug"])
        return row is None or (viewer is not None and row.author_id == viewer.id) or denied(self, info)


class CanDeleteArticle(BasePermission):
    """The viewer wrote the article named by ``slug``, or is a moderator or admin."""

    message = "Only the author, a moderator or an admin may delete this article."
    error_extensions = {"code": "FORBIDDEN"}

    async def has_permission(self, source: Any, info: Info[Context, None], **kwargs: Any) -> bool:
        viewer = info.context.viewer
        if viewer is not None and viewer.role in STAFF_ROLES:
            return True
        row = await info.context.loaders.article_by_slug.load(kwargs["slug"])
        return row is None or (viewer is not None and row.author_id == viewer.id) or denied(self, info)


class CanDeleteComment(BasePermission):
    """The viewer wrote the comment named by ``id``, or is a moderator or admin."""

    message = "Only the author, a moderator or an admin may delete this comment."
    error_extensions = {"code": "FORBIDDEN"}

    async def has_permission(self, source: Any, info: Info[Context, None], **kwargs: Any) -> bool:
        viewer = info.context.viewer
        if viewer is not None and viewer.role in STAFF_ROLES:
            return True
        decoded = from_global_id(str(kwargs["id"]))
        if decoded is None or decoded[0] != "Comment":
            return True  # the resolver reports the bad id
        row = await info.context.loaders.comment_by_id.load(decoded[1])
        return row is None or (viewer is not None and row.author_id == viewer.id) or denied(self, info)
