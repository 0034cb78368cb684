"""asyncio's ``_asyncio_future_blocking`` as ``graph/execution/futures.py`` uses it, checked on the running Python."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import pytest

from graph.execution.futures import take_over
from tests.internals import relied_on

FLAG = ("asyncio", "Future._asyncio_future_blocking", "graph/execution/futures.py")


async def _wait(future: asyncio.Future[Any]) -> Any:
    return await future


def _step(coroutine: Coroutine[Any, Any, Any]) -> Any:
    return coroutine.send(None)


async def test_an_awaited_future_is_yielded_with_the_flag_set() -> None:
    future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    waiting = _wait(future)
    with relied_on(*FLAG):
        assert _step(waiting) is future, "awaiting a pending future no longer yields the future itself"
        assert asyncio.isfuture(future) and future._asyncio_future_blocking is True
        take_over(future)
        assert future._asyncio_future_blocking is False
    waiting.close()


async def test_a_second_await_of_the_same_future_needs_the_flag_cleared() -> None:
    future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    first, second = _wait(future), _wait(future)
    with relied_on(*FLAG):
        _step(first)
        with pytest.raises(RuntimeError, match="await wasn't used with future"):
            _step(second)  # why take_over exists: the flag left set refuses the next await
        second = _wait(future)
        take_over(future)
        assert _step(second) is future
        take_over(future)
        future.set_result(42)
        for waiting in (first, second):
            with pytest.raises(StopIteration) as done:
                _step(waiting)
            assert done.value.value == 42
