"""Generated shaping code: the Python source of one function per root field that turns rows into ``data``.

Straight-line code with the scalar serializers inlined (``ceiling.md``, variant F): the
planner writes each function's body from the selection, and ``Source.compile`` turns them
into functions once per operation.
"""

from __future__ import annotations

import datetime as dt
import functools
from typing import Any

import orjson

from graph.ids import encode_cursor, to_global_id
from graph.scalars import serialize_datetime

__all__ = ["Source", "literal"]


def _sqlite_datetime(value: str) -> str:
    """``DateTime`` of a SQLite timestamp (SQLAlchemy stores ``YYYY-MM-DD HH:MM:SS.ffffff``, UTC)."""
    if len(value) == 26 and value[10] == " ":
        return value[:10] + "T" + value[11:] + "+00:00"
    return serialize_datetime(dt.datetime.fromisoformat(value).replace(tzinfo=dt.UTC))


def _sqlite_cursor_key(value: str) -> str:
    """The text ``encode_cursor`` writes for a SQLite timestamp."""
    if len(value) == 26 and value[10] == " ":
        return value[:10] + "T" + value[11:]
    return dt.datetime.fromisoformat(value).strftime("%Y-%m-%dT%H:%M:%S.%f")


def _tags(value: str | None) -> list[str]:
    return orjson.loads(value) if value else []


def helpers(is_sqlite: bool) -> dict[str, Any]:
    """The helpers generated shaping code calls, by name (values as ``is_sqlite``'s driver returns them)."""
    return {
        "_datetime": _sqlite_datetime if is_sqlite else serialize_datetime,
        "_cursor_key": _sqlite_cursor_key,
        "_cursor": encode_cursor,
        "_tags": _tags,
        "_bool": bool,
        "_article_id": functools.partial(to_global_id, "Article"),
        "_user_id": functools.partial(to_global_id, "User"),
        "_comment_id": functools.partial(to_global_id, "Comment"),
    }


class Source:
    """Python source of the shaping functions of one operation, and their namespace."""

    def __init__(self, is_sqlite: bool) -> None:
        self.lines: list[str] = []
        self.namespace = helpers(is_sqlite)
        self.count = 0

    def function(self, parameters: str, body: list[str]) -> str:
        """Add ``def _fN(parameters): body``; returns its name."""
        self.count += 1
        name = f"_f{self.count}"
        self.lines.append(f"def {name}({parameters}):")
        self.lines.extend("    " + line for line in body)
        return name

    def compile(self) -> dict[str, Any]:
        code = compile("\n".join(self.lines) + "\n", "<planned query>", "exec")
        # The only text from the document in the source is response keys, GraphQL names written
        # with repr(); argument values are never in it, they travel as SQL parameters.
        exec(code, self.namespace)
        return self.namespace


def literal(fields: list[str]) -> str:
    """A dict display of ``fields`` (``'key': expression`` each)."""
    return "{" + ", ".join(fields) + "}"
