"""What differs between the engines in planned SQL: placeholders, SQL fragments and bound values."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from db.models import sqlite_timestamp

__all__ = ["Flavour"]


@dataclass(frozen=True)
class Flavour:
    """What differs between the engines: placeholders, SQL fragments and value conversions."""

    is_sqlite: bool

    def placeholder(self, number: int) -> str:
        return "?" if self.is_sqlite else f"${number}"

    @property
    def tag_names(self) -> str:
        """The article's tag names as a JSON array, in the author's order (as ``with_author_and_tags``)."""
        if self.is_sqlite:
            return (
                "(SELECT json_group_array(name) FROM (SELECT t.name AS name FROM article_tag at "
                "JOIN tag t ON t.id = at.tag_id WHERE at.article_id = a.id ORDER BY at.position, t.name))"
            )
        return (
            "(SELECT json_agg(t.name ORDER BY at.position, t.name)::text FROM article_tag at "
            "JOIN tag t ON t.id = at.tag_id WHERE at.article_id = a.id)"
        )

    @property
    def false(self) -> str:
        return "0" if self.is_sqlite else "false"

    def bind_time(self, value: Any) -> Any:
        """A cursor's datetime as the engine compares it with stored timestamps."""
        assert isinstance(value, dt.datetime)
        return sqlite_timestamp(value) if self.is_sqlite else value
