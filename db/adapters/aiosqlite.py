"""aiosqlite's private call that runs a function on a connection's SQLite thread.

aiosqlite gives every connection a thread of its own and runs each public method there through
``Connection._execute(function, *args)``, with the ``sqlite3.Connection`` as ``Connection._conn``.
It has no public way to run a function of ours there, and ours (a whole read plan, a batch of
write transactions) must run there whole: one trip instead of one per statement. Both names are
private, so they are used here only; ``tests/db/test_adapters.py`` checks them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Concatenate, ParamSpec, TypeVar

import aiosqlite

__all__ = ["run_on_thread"]

P = ParamSpec("P")
T = TypeVar("T")


async def run_on_thread(
    connection: aiosqlite.Connection,
    function: Callable[Concatenate[sqlite3.Connection, P], T],
    *args: P.args,
    **kwargs: P.kwargs,
) -> T:
    """``function(sqlite3_connection, *args, **kwargs)`` on ``connection``'s thread: its result or its exception.

    Queued behind the calls already waiting on that thread, in order. Raises ``ValueError`` when
    ``connection`` is closed.
    """
    result: T = await connection._execute(function, connection._conn, *args, **kwargs)  # type: ignore[no-untyped-call]
    return result
