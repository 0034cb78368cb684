"""Errors a client may see, each with a stable ``extensions.code`` (contract README, Errors).

graphql-core copies an original exception's ``extensions`` attribute onto the GraphQL error it
reports, so raising one of these from a resolver is all it takes. ``QUERY_TOO_COMPLEX`` is
not among them: validation reports it before any resolver runs (``graph/admission/limits.py``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

from graphql import GraphQLError

from db.engine import is_database_unavailable

logger = logging.getLogger("conduit.errors")

VARIABLE = re.compile(r"^Variable ['\"]\$(\w+)['\"]")
INTERNAL_MESSAGE = "Internal server error."
DATABASE_UNAVAILABLE_MESSAGE = "database unavailable"


class AppError(Exception):
    """Base of every expected error; ``code`` becomes ``extensions.code``."""

    code = "INTERNAL_SERVER_ERROR"
    default_message = "Unexpected error."

    def __init__(self, message: str | None = None, **extensions: Any) -> None:
        self.message = message or self.default_message
        super().__init__(self.message)
        self.extensions: dict[str, Any] = {"code": self.code, **extensions}


class Unauthenticated(AppError):
    """Authentication is needed and missing or failed."""

    code = "UNAUTHENTICATED"
    default_message = "Authentication required."


class Forbidden(AppError):
    """Authenticated, but not allowed."""

    code = "FORBIDDEN"
    default_message = "You are not allowed to do this."


class NotFound(AppError):
    """The named user, article or comment does not exist."""

    code = "NOT_FOUND"
    default_message = "Not found."


class RateLimited(AppError):
    """Too many attempts; ``retryAfter`` is in seconds."""

    code = "RATE_LIMITED"
    default_message = "Too many attempts; try again later."


class BadUserInput(AppError):
    """Input fails validation; ``fields`` maps each field or argument name to its messages."""

    code = "BAD_USER_INPUT"
    default_message = "Invalid input."

    def __init__(self, fields: Mapping[str, Sequence[str]], message: str | None = None) -> None:
        fields = {name: list(messages) for name, messages in fields.items()}
        if message is None:
            message = "Invalid input: " + "; ".join(
                f"{name} {', '.join(messages)}" for name, messages in fields.items()
            )
        super().__init__(message, fields=fields)


class FieldErrors:
    """Collects validation messages per field, then raises them together as ``BadUserInput``."""

    def __init__(self) -> None:
        self.fields: dict[str, list[str]] = {}

    def add(self, name: str, message: str) -> None:
        """Record ``message`` against the input field or argument ``name``."""
        self.fields.setdefault(name, []).append(message)

    def __bool__(self) -> bool:
        return bool(self.fields)

    def raise_if_any(self) -> None:
        """Raise ``BadUserInput`` with everything recorded, if anything was."""
        if self.fields:
            raise BadUserInput(self.fields)


def classify_error(error: GraphQLError, request_id: str | None) -> None:
    """Give ``error`` its ``extensions.code`` in place, masking unexpected ones (contract README, Errors).

    Expected errors (``AppError``, permission errors, errors that already carry a code) pass
    through. Errors graphql-core raises before execution (syntax, validation, variable
    coercion) become ``BAD_USER_INPUT``, with ``extensions.fields`` naming a variable that did not
    coerce. Anything else is unexpected: the client gets a generic message and the request id,
    the log gets the traceback (a database that cannot be reached: one line).
    """
    extensions = dict(error.extensions or {})
    original = error.original_error
    if isinstance(original, AppError) or (extensions.get("code") and not _unexpected(original)):
        if "code" not in extensions:
            extensions["code"] = getattr(original, "code", "INTERNAL_SERVER_ERROR")
        error.extensions = extensions
        return
    if original is None or isinstance(original, GraphQLError):
        if error.path is not None:
            error.extensions = {"code": "INTERNAL_SERVER_ERROR", **extensions}
        else:
            variable = VARIABLE.match(error.message)
            fields = {"fields": {variable.group(1): [error.message]}} if variable else {}
            error.extensions = {"code": "BAD_USER_INPUT", **fields}
        return
    if is_database_unavailable(original):
        logger.error(
            "database unavailable in %s (request %s): %s",
            ".".join(str(p) for p in error.path or ()) or "operation",
            request_id,
            _one_line(original),
        )
        error.message = DATABASE_UNAVAILABLE_MESSAGE
        error.extensions = {"code": "INTERNAL_SERVER_ERROR", "requestId": request_id}
        return
    logger.error(
        "unexpected error in %s (request %s)",
        ".".join(str(p) for p in error.path or ()) or "operation",
        request_id,
        exc_info=(type(original), original, original.__traceback__),
    )
    error.message = INTERNAL_MESSAGE
    error.extensions = {"code": "INTERNAL_SERVER_ERROR", "requestId": request_id}


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"


def _unexpected(original: BaseException | None) -> bool:
    return original is not None and not isinstance(original, GraphQLError | AppError)
