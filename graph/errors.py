"""Errors a client may see, each with a stable ``extensions.code`` (contract README, Errors).

graphql-core copies an original exception's ``extensions`` attribute onto the GraphQL error it
reports, so raising one of these from a resolver is all it takes. ``QUERY_TOO_COMPLEX`` is
not among them: validation reports it before any resolver runs (``graph/admission/limits.py``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


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
