"""The clock as SQL sees it: the current time bound on SQLite, and the budget's windows."""

from __future__ import annotations

import datetime as dt

from db.budget import window_of
from db.models import SQLITE_TIMESTAMP, sqlite_now, sqlite_timestamp, utcnow


def test_sqlite_now_is_the_current_time_as_sqlite_stores_it() -> None:
    for _ in range(2000):  # enough to cross a microsecond boundary, and often a second's
        before = sqlite_timestamp(utcnow())
        now = sqlite_now()
        after = sqlite_timestamp(utcnow())
        # the same text as stored timestamps: they compare as times compare
        assert before <= now <= after, (before, now, after)
        assert dt.datetime.strptime(now, SQLITE_TIMESTAMP).strftime(SQLITE_TIMESTAMP) == now


def test_a_window_is_the_one_holding_the_time_asked_whatever_was_asked_before() -> None:
    start = dt.datetime(2026, 12, 6, 16, 0, tzinfo=dt.UTC)
    hour = dt.timedelta(hours=1)
    assert window_of(start + dt.timedelta(minutes=59), 3600) == (start, start + hour)
    assert window_of(start, 3600) == (start, start + hour)
    # the next window from its first instant, then an earlier time (a pinned clock) again
    assert window_of(start + hour, 3600) == (start + hour, start + 2 * hour)
    assert window_of(start - dt.timedelta(microseconds=1), 3600) == (start - hour, start)
    assert window_of(start + dt.timedelta(minutes=30), 60) == (
        start + dt.timedelta(minutes=30),
        start + 31 * dt.timedelta(minutes=1),
    )
    assert window_of(start + dt.timedelta(minutes=30), 3600) == (start, start + hour)
