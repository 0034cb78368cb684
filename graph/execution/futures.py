"""asyncio's private flag on a future awaited by a coroutine that no ``Task`` drives.

``await future`` sets ``future._asyncio_future_blocking`` and yields the future to whoever
steps the coroutine; a ``Task`` clears the flag and waits for the future. ``gather`` in
``graph/execution/compiled.py`` steps coroutines itself, without tasks, so it must clear the
flag as a ``Task`` does: while it is set, the next ``await`` of the same pending future (a
DataLoader's cached one) fails with ``RuntimeError: await wasn't used with future``. asyncio has
no public call for it; ``tests/graph/test_futures.py`` checks the flag against the running Python.
"""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["take_over"]


def take_over(future: asyncio.Future[Any]) -> None:
    """Receive ``future`` from a stepped coroutine as a ``Task`` would, so others may await it too.

    The caller then waits for ``future`` (a done callback) and steps the coroutine again.
    """
    future._asyncio_future_blocking = False
