"""Request ids and what is known of the request being handled (a contextvar the middleware sets)."""

from __future__ import annotations

import contextvars
import logging
import logging.config
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from auth.audit import use_request_id_source

access_logger = logging.getLogger("conduit.access")
logger = logging.getLogger("conduit.http")


REQUEST_ID_HEADER = "x-request-id"
SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")


ACCESS_FIELDS = (
    "request_id",
    "method",
    "path",
    "status",
    "duration_ms",
    "operation_name",
    "operation_type",
    "outcome",
    "viewer_id",
    "client",
)


@dataclass
class RequestRecord:
    """What is known about the HTTP request or WebSocket connection being handled.

    The middleware creates it; the GraphQL handler and ``observe_operation`` fill in the
    operation fields (``graphql`` is set once the request turned out to be a GraphQL operation).
    """

    request_id: str
    graphql: bool = False
    operation_name: str | None = None
    operation_type: str | None = None
    outcome: str | None = None
    viewer_id: int | None = None
    error_codes: list[str] = field(default_factory=list)


_current: contextvars.ContextVar[RequestRecord | None] = contextvars.ContextVar("conduit_request", default=None)


def new_request_id() -> str:
    """32 random hex digits. Not ``uuid4``: its ``os.urandom`` call lets go of the GIL, and taking
    it back behind the SQLite threads cost about 7% of the home page's time (py-spy); an id
    only has to be unique, not secret."""
    return f"{random.getrandbits(128):032x}"


def current_request_id() -> str | None:
    """The id of the request being handled in this context, ``None`` outside a request."""
    record = _current.get()
    return record.request_id if record is not None else None


def request_id() -> str:
    """The current request id, or a fresh one (32 hex digits) outside the middleware."""
    return current_request_id() or new_request_id()


def begin_graphql_request() -> str:
    """Mark the current HTTP request as a GraphQL operation and return its request id.

    Its outcome is ``failed`` until ``record_graphql_response`` records the response.
    """
    record = _current.get()
    if record is None:
        return new_request_id()
    record.graphql = True
    record.outcome = "failed"
    return record.request_id


def record_graphql_response(body: Mapping[str, Any], status: int) -> None:
    """Note the outcome and the error codes of the GraphQL response ``body`` sent with ``status``."""
    record = _current.get()
    if record is None:
        return
    record.outcome = graphql_outcome(body, status)
    record.error_codes = [_error_code(error) for error in body.get("errors") or ()]


def record_viewer(viewer_id: int | None) -> None:
    """Note the signed-in user (a user id) of the current request for the access log."""
    record = _current.get()
    if record is not None:
        record.viewer_id = viewer_id


def graphql_outcome(body: Mapping[str, Any], status: int) -> str:
    """``ok``, ``error``, ``rejected``, ``unauthenticated`` or ``failed`` for a response (module docstring)."""
    if status >= 500:  # e.g. 503 while the database is unreachable
        return "failed"
    if status == 401:
        return "unauthenticated"
    if "data" not in body:
        return "rejected"
    return "error" if body.get("errors") else "ok"


def _error_code(error: Any) -> str:
    code = error.get("extensions", {}).get("code") if isinstance(error, Mapping) else None
    return code if isinstance(code, str) and code else "UNKNOWN"


def incoming_request_id(headers: Sequence[tuple[bytes, bytes]]) -> str | None:
    """The client's ``X-Request-ID`` when it is 1-128 characters of ``[A-Za-z0-9._-]``."""
    for name, value in headers:
        if name.lower() == REQUEST_ID_HEADER.encode():
            text = value.decode("latin-1")
            return text if SANE_REQUEST_ID.fullmatch(text) else None
    return None


use_request_id_source(current_request_id)
