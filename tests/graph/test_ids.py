"""Global IDs and cursors: every cursor kind its own, and cursors clients already hold still decode."""

from __future__ import annotations

import base64
import datetime as dt

import pytest

from graph.errors import BadUserInput
from graph.ids import MAX_PK, CursorKind, decode_cursor, encode_cursor, from_global_id, to_global_id

WHEN = dt.datetime(2026, 11, 30, 12, 0, 1, 250, tzinfo=dt.UTC)


def _raw(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


@pytest.mark.parametrize(
    ("kind", "held", "key_type", "key"),
    [
        # cursors as released before CursorKind: each must keep decoding to the same position
        (CursorKind.CREATED_DESC, "cd|2026-11-30T12:00:01.000250|7", dt.datetime, WHEN),
        (CursorKind.CREATED_ASC, "ca|2026-11-30T12:00:01.000250|7", dt.datetime, WHEN),
        (CursorKind.FAVORITES_COUNT_DESC, "fd|3|7", int, 3),
        (CursorKind.FAVORITES_COUNT_ASC, "fa|3|7", int, 3),
        (CursorKind.USER_ARTICLES, "c|2026-11-30T12:00:01.000250|7", dt.datetime, WHEN),
        (CursorKind.USER_FAVORITES, "fa|2026-11-30T12:00:01.000250|7", dt.datetime, WHEN),
        (CursorKind.COMMENTS, "i||7", type(None), None),
    ],
)
def test_cursors_clients_hold_still_decode(kind: CursorKind, held: str, key_type: type, key: object) -> None:
    assert decode_cursor(_raw(held), kind, key_type) == (key, 7)
    assert decode_cursor(encode_cursor(kind, key, 7), kind, key_type) == (key, 7)


def test_every_kind_is_written_with_its_own_value() -> None:
    values = [kind.value for kind in CursorKind]
    assert len(set(values)) == len(values) == len(CursorKind.__members__)
    assert base64.urlsafe_b64decode(encode_cursor(CursorKind.USER_FAVORITES, WHEN, 7)).startswith(b"fv|")


@pytest.mark.parametrize(
    ("held", "kind", "key_type"),
    [
        ("fa|3|7", CursorKind.USER_FAVORITES, dt.datetime),  # favorites count, ascending
        ("fa|2026-11-30T12:00:01.000250|7", CursorKind.FAVORITES_COUNT_ASC, int),  # a user's favorites
        ("fv|2026-11-30T12:00:01.000250|7", CursorKind.FAVORITES_COUNT_ASC, int),
        ("cd|2026-11-30T12:00:01.000250|7", CursorKind.USER_ARTICLES, dt.datetime),
        ("i||7", CursorKind.CREATED_DESC, dt.datetime),
    ],
)
def test_a_cursor_of_another_kind_is_refused(held: str, kind: CursorKind, key_type: type) -> None:
    with pytest.raises(BadUserInput):
        decode_cursor(_raw(held), kind, key_type)


def test_ids_and_cursors_past_the_largest_key_name_nothing() -> None:
    """The id columns are 32-bit on PostgreSQL: a larger key must not reach it as a parameter."""
    assert from_global_id(to_global_id("Comment", MAX_PK)) == ("Comment", MAX_PK)
    assert from_global_id(to_global_id("Comment", MAX_PK + 1)) is None
    with pytest.raises(BadUserInput):
        decode_cursor(_raw(f"i||{MAX_PK + 1}"), CursorKind.COMMENTS, type(None))
