"""The endpoints of RealWorld's REST API: each a stored GraphQL operation and its mapping.

An ``Endpoint`` names its method and path (under ``/api``), the stored operation that answers it
(``operations/*.graphql``, by its ``operationId``), how path, query and body become the
operation's variables (``Param``, ``Body``), how its result becomes the spec's JSON
(``One``, ``Page``, ``Items``, ``NoContent``, over the shapes of ``shapes.py``) and the status of
a success. ``api.py`` serves them; ``openapi.py`` describes them. Nothing here decides who may
do what or what is valid: the operations' resolvers do, as they do for ``/graphql``.

Spec: ``../shared/realworld/openapi.yml`` (RealWorld 1.1.0): operation ids, paths, tags,
summaries and parameters are its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from graph.transport.rest.shapes import ARTICLE, COMMENT, LISTED_ARTICLE, PROFILE, USER, Shape
from graph.types.node import DEFAULT_FIRST, MAX_FIRST


@dataclass(frozen=True)
class Param:
    """A path or query parameter and the variable it becomes.

    ``kind``: ``string``; ``integer`` (``minimum``/``maximum`` checked, else 422); ``comment_id``:
    an integer in the path that becomes the comment's global ID. ``argument``: the name our
    errors give it (``BAD_USER_INPUT``'s ``fields``), when the variable's argument is named otherwise.
    """

    name: str
    location: Literal["path", "query"]
    variable: str
    description: str
    kind: Literal["string", "integer", "comment_id"] = "string"
    minimum: int | None = None
    maximum: int | None = None
    default: int | None = None
    argument: str | None = None

    def json_schema(self) -> dict[str, Any]:
        """The parameter's schema in the OpenAPI document."""
        schema: dict[str, Any] = {"type": "string" if self.kind == "string" else "integer"}
        if self.minimum is not None:
            schema["minimum"] = self.minimum
        if self.maximum is not None:
            schema["maximum"] = self.maximum
        if self.default is not None:
            schema["default"] = self.default
        return schema


@dataclass(frozen=True)
class Body:
    """A JSON body ``{"<envelope>": {...}}`` and the variables its object becomes.

    ``input``: the variable the whole object becomes (an input object type, whose fields are
    the properties); else ``fields``: each property is the variable of its name (``addComment``'s
    ``body``). ``name``: the body object's component schema (``NewUser``, ...).
    """

    envelope: str
    name: str
    description: str
    input: str | None = None
    fields: tuple[str, ...] = ()


@dataclass(frozen=True)
class One:
    """``{"<key>": shape}`` of the object at ``path`` in the data; ``missing``: the status when it is null.

    ``token``: where the access token is in the data (``register``/``login``); ``own_token``: the
    token is the request's own (``GET /user``, ``PUT /user``).
    """

    key: str
    shape: Shape
    path: tuple[str, ...]
    missing: tuple[int, str] | None = None
    token: tuple[str, ...] | None = None
    own_token: bool = False


@dataclass(frozen=True)
class Page:
    """``{"<key>": [shape, ...], "<count>": n}`` from the connection at ``path`` (``nodes``, ``totalCount``)."""

    key: str
    count: str
    shape: Shape
    path: tuple[str, ...]


@dataclass(frozen=True)
class Items:
    """``{"<key>": [...]}`` of the list at ``path`` (strings without a ``shape``).

    ``missing``: the status when ``missing_at`` (the object the list hangs from) is null.
    """

    key: str
    path: tuple[str, ...]
    shape: Shape | None = None
    missing: tuple[int, str] | None = None
    missing_at: tuple[str, ...] = ()


@dataclass(frozen=True)
class NoContent:
    """No body (204)."""


Response = One | Page | Items | NoContent


@dataclass(frozen=True)
class Guard:
    """A query run before the operation, with the operation's ``variables`` it names: unless the value
    at ``path`` in its data equals the path parameter ``equals``, the request ends with ``status`` and
    ``message`` (``DELETE`` of a comment that is not on the article its path names)."""

    operation: str
    variables: tuple[str, ...]
    path: tuple[str, ...]
    equals: str
    status: int
    message: str


@dataclass(frozen=True)
class Endpoint:
    """One operation of the spec (see the module docstring).

    ``auth``: ``required`` (the spec's ``security: Token``) or ``optional``, for the document only:
    the operation's own resolvers refuse the anonymous. ``errors``: the statuses it may answer
    besides ``status`` (the document's responses).
    """

    operation_id: str
    method: Literal["GET", "POST", "PUT", "DELETE"]
    path: str
    tag: str
    summary: str
    description: str
    response: Response
    status: int = 200
    params: tuple[Param, ...] = ()
    body: Body | None = None
    auth: Literal["required", "optional"] = "optional"
    errors: tuple[int, ...] = (401, 422)
    guard: Guard | None = None

    def field_name(self, name: str) -> str:
        """The name the client knows for a GraphQL argument or input field our errors name."""
        for param in self.params:
            if name in (param.argument, param.variable):
                return param.name
        return name


SLUG = "Slug of the article"
LIMIT = Param(
    "limit",
    "query",
    "first",
    f"The numbers of items to return: 1 to {MAX_FIRST}.",
    kind="integer",
    minimum=1,
    maximum=MAX_FIRST,
    default=DEFAULT_FIRST,
)
GRAPHQL_INT_MAX = 2**31 - 1
"""The largest GraphQL ``Int`` (a signed 32-bit integer, GraphQL spec 3.5.1)."""
OFFSET = Param(
    "offset",
    "query",
    "offset",
    "The number of items to skip before starting to collect the result set.",
    kind="integer",
    minimum=0,
    maximum=GRAPHQL_INT_MAX,
)


def slug(purpose: str) -> Param:
    """The ``slug`` path parameter."""
    return Param("slug", "path", "slug", f"{SLUG} {purpose}")


def username(purpose: str) -> Param:
    """The ``username`` path parameter."""
    return Param("username", "path", "username", f"Username of the profile {purpose}")


USER_RESPONSE_ERRORS = (401, 422, 429)

ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        "Login",
        "POST",
        "/users/login",
        "User and Authentication",
        "Existing user login",
        "Login for existing user",
        One("user", USER, ("login", "user"), token=("login", "token")),
        body=Body("user", "LoginUser", "Credentials to use", input="input"),
        errors=USER_RESPONSE_ERRORS,
    ),
    Endpoint(
        "CreateUser",
        "POST",
        "/users",
        "User and Authentication",
        "Register a new user",
        "Register a new user",
        One("user", USER, ("register", "user"), token=("register", "token")),
        status=201,
        body=Body("user", "NewUser", "Details of the new user to register", input="input"),
        errors=USER_RESPONSE_ERRORS,
    ),
    Endpoint(
        "GetCurrentUser",
        "GET",
        "/user",
        "User and Authentication",
        "Get current user",
        "Gets the currently logged-in user",
        One("user", USER, ("viewer",), missing=(401, "Authentication required."), own_token=True),
        auth="required",
    ),
    Endpoint(
        "UpdateCurrentUser",
        "PUT",
        "/user",
        "User and Authentication",
        "Update current user",
        "Updated user information for current user",
        One("user", USER, ("updateViewer",), own_token=True),
        body=Body("user", "UpdateUser", "User details to update. At least **one** field is required.", input="input"),
        auth="required",
    ),
    Endpoint(
        "GetProfileByUsername",
        "GET",
        "/profiles/{username}",
        "Profile",
        "Get a profile",
        "Get a profile of a user of the system. Auth is optional",
        One("profile", PROFILE, ("user",), missing=(404, "profile not found")),
        params=(username("to get"),),
        errors=(401, 404, 422),
    ),
    Endpoint(
        "FollowUserByUsername",
        "POST",
        "/profiles/{username}/follow",
        "Profile",
        "Follow a user",
        "Follow a user by username",
        One("profile", PROFILE, ("followUser",)),
        params=(username("you want to follow"),),
        auth="required",
        errors=(401, 404, 422),
    ),
    Endpoint(
        "UnfollowUserByUsername",
        "DELETE",
        "/profiles/{username}/follow",
        "Profile",
        "Unfollow a user",
        "Unfollow a user by username",
        One("profile", PROFILE, ("unfollowUser",)),
        params=(username("you want to unfollow"),),
        auth="required",
        errors=(401, 404, 422),
    ),
    Endpoint(
        "GetArticlesFeed",
        "GET",
        "/articles/feed",
        "Articles",
        "Get recent articles from users you follow",
        "Get most recent articles from users you follow. Use query parameters to limit. Auth is required",
        Page("articles", "articlesCount", LISTED_ARTICLE, ("feed",)),
        params=(OFFSET, LIMIT),
        auth="required",
    ),
    Endpoint(
        "GetArticles",
        "GET",
        "/articles",
        "Articles",
        "Get recent articles globally",
        "Get most recent articles globally. Use query parameters to filter results. Auth is optional",
        Page("articles", "articlesCount", LISTED_ARTICLE, ("articles",)),
        params=(
            Param("tag", "query", "tag", "Filter by tag"),
            Param("author", "query", "author", "Filter by author (username)"),
            Param("favorited", "query", "favoritedBy", "Filter by favorites of a user (username)"),
            OFFSET,
            LIMIT,
        ),
    ),
    Endpoint(
        "CreateArticle",
        "POST",
        "/articles",
        "Articles",
        "Create an article",
        "Create an article. Auth is required",
        One("article", ARTICLE, ("createArticle",)),
        status=201,
        body=Body("article", "NewArticle", "Article to create", input="input"),
        auth="required",
    ),
    Endpoint(
        "GetArticle",
        "GET",
        "/articles/{slug}",
        "Articles",
        "Get an article",
        "Get an article. Auth not required",
        One("article", ARTICLE, ("article",), missing=(404, "article not found")),
        params=(slug("to get"),),
        errors=(401, 404, 422),
    ),
    Endpoint(
        "UpdateArticle",
        "PUT",
        "/articles/{slug}",
        "Articles",
        "Update an article",
        "Update an article. Auth is required",
        One("article", ARTICLE, ("updateArticle",)),
        params=(slug("to update"),),
        body=Body("article", "UpdateArticle", "Article to update", input="input"),
        auth="required",
        errors=(401, 403, 404, 422),
    ),
    Endpoint(
        "DeleteArticle",
        "DELETE",
        "/articles/{slug}",
        "Articles",
        "Delete an article",
        "Delete an article. Auth is required",
        NoContent(),
        status=204,
        params=(slug("to delete"),),
        auth="required",
        errors=(401, 403, 404, 422),
    ),
    Endpoint(
        "GetArticleComments",
        "GET",
        "/articles/{slug}/comments",
        "Comments",
        "Get comments for an article",
        "Get the comments for an article. Auth is optional",
        Items(
            "comments",
            ("article", "comments", "nodes"),
            COMMENT,
            missing=(404, "article not found"),
            missing_at=("article",),
        ),
        params=(slug("that you want to get comments for"),),
        errors=(401, 404, 422),
    ),
    Endpoint(
        "CreateArticleComment",
        "POST",
        "/articles/{slug}/comments",
        "Comments",
        "Create a comment for an article",
        "Create a comment for an article. Auth is required",
        One("comment", COMMENT, ("addComment",)),
        params=(slug("that you want to create a comment for"),),
        body=Body("comment", "NewComment", "Comment you want to create", fields=("body",)),
        auth="required",
        errors=(401, 404, 422),
    ),
    Endpoint(
        "DeleteArticleComment",
        "DELETE",
        "/articles/{slug}/comments/{id}",
        "Comments",
        "Delete a comment for an article",
        "Delete a comment for an article. Auth is required",
        NoContent(),
        status=204,
        params=(
            slug("that you want to delete a comment for"),
            Param("id", "path", "id", "ID of the comment you want to delete", kind="comment_id", minimum=1),
        ),
        auth="required",
        errors=(401, 403, 404, 422),
        guard=Guard("ArticleOfComment", ("id",), ("node", "article", "slug"), "slug", 404, "comment not found"),
    ),
    Endpoint(
        "CreateArticleFavorite",
        "POST",
        "/articles/{slug}/favorite",
        "Favorites",
        "Favorite an article",
        "Favorite an article. Auth is required",
        One("article", ARTICLE, ("favoriteArticle",)),
        params=(slug("that you want to favorite"),),
        auth="required",
        errors=(401, 404, 422),
    ),
    Endpoint(
        "DeleteArticleFavorite",
        "DELETE",
        "/articles/{slug}/favorite",
        "Favorites",
        "Unfavorite an article",
        "Unfavorite an article. Auth is required",
        One("article", ARTICLE, ("unfavoriteArticle",)),
        params=(slug("that you want to unfavorite"),),
        auth="required",
        errors=(401, 404, 422),
    ),
    Endpoint(
        "GetTags",
        "GET",
        "/tags",
        "Tags",
        "Get tags",
        "Get tags. Auth not required",
        Items("tags", ("tags",)),
        errors=(401, 422),
    ),
)
"""RealWorld's 19 operations, in the spec's order."""
