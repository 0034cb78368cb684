"""Generated shaping code: the Python source of one function per root field that turns rows into ``data``.

Straight-line code with the scalar serializers inlined (``ceiling.md``, variant F): the
planner writes each function's body from the selection, and ``Source.compile`` turns them
into functions once per operation.

What keeps the source safe to run: the only text in it that comes from the document is
response keys and type names, and both go through ``entry`` or ``name_literal``, which
refuse anything but a GraphQL name (``GRAPHQL_NAME``) and write it with ``repr()``; argument
values are never in it, they travel as SQL parameters. The functions run with the helpers
of ``helpers`` and the builtins of ``BUILTINS`` only.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Callable
from typing import Any

import orjson

from graph.execution.planned.errors import NotPlanned
from graph.ids import encode_cursor, to_global_id
from graph.scalars import serialize_datetime

__all__ = ["BUILTINS", "GRAPHQL_NAME", "Source", "cursor_key", "entry", "helpers", "literal", "name_literal"]

GRAPHQL_NAME = re.compile(r"[_A-Za-z][_0-9A-Za-z]*")
"""A GraphQL name (spec, 2.1.9 Names), matched whole: what a response key or type name must be."""

BUILTINS: dict[str, Any] = {"len": len, "zip": zip}
"""The builtins generated code calls: nothing else is reachable from it."""


def _sqlite_datetime(value: str) -> str:
    """``DateTime`` of a SQLite timestamp (SQLAlchemy stores ``YYYY-MM-DD HH:MM:SS.ffffff``, UTC)."""
    if len(value) == 26 and value[10] == " ":  # then its only space: the date has none
        return value.replace(" ", "T", 1) + "+00:00"
    return serialize_datetime(dt.datetime.fromisoformat(value).replace(tzinfo=dt.UTC))


def cursor_key(value: str) -> str:
    """The text ``encode_cursor`` writes for a SQLite timestamp."""
    if len(value) == 26 and value[10] == " ":
        return value.replace(" ", "T", 1)
    return dt.datetime.fromisoformat(value).strftime("%Y-%m-%dT%H:%M:%S.%f")


def _tags(value: str | None) -> list[str]:
    return orjson.loads(value) if value else []


def _optional(write: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda value: None if value is None else write(value)


def helpers(is_sqlite: bool) -> dict[str, Any]:
    """The helpers generated shaping code calls, by name (values as ``is_sqlite``'s driver returns them)."""
    datetime = _sqlite_datetime if is_sqlite else serialize_datetime
    return {
        "_datetime": datetime,
        "_optional_datetime": _optional(datetime),
        "_optional_bool": _optional(bool),
        "_cursor_key": cursor_key,
        "_cursor": encode_cursor,
        "_tags": _tags,
        "_bool": bool,
        "_id_Article": functools.partial(to_global_id, "Article"),
        "_id_User": functools.partial(to_global_id, "User"),
        "_id_Comment": functools.partial(to_global_id, "Comment"),
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
        """The namespace with every function added, by name (``_f1``, ``_f2``, ...)."""
        code = compile("\n".join(self.lines) + "\n", "<planned query>", "exec")
        namespace = {**self.namespace, "__builtins__": BUILTINS}
        # Source written by the planner alone; document text in it only through entry() and
        # name_literal() (see the module docstring), and no builtins beyond BUILTINS.
        exec(code, namespace)  # noqa: S102 - planner-written source, checked names, two builtins
        return namespace


def name_literal(name: str) -> str:
    """The Python literal of the GraphQL name ``name``; ``NotPlanned`` for anything else."""
    if GRAPHQL_NAME.fullmatch(name) is None:
        raise NotPlanned(f"{name!r} is not a GraphQL name")
    return repr(name)


def entry(key: str, expression: str) -> str:
    """``'key': expression``, an entry of a dict display; ``NotPlanned`` unless ``key`` is a GraphQL name."""
    return f"{name_literal(key)}: {expression}"


def literal(entries: list[str]) -> str:
    """A dict display of ``entries`` (each from ``entry``)."""
    return "{" + ", ".join(entries) + "}"
