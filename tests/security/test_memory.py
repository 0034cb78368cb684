"""Memory bounded by bytes: a flood of distinct large documents does not grow a server process.

The attack of the issue "One request pipeline": 600 anonymous requests, each a distinct document
of about 900 KB (a long comment and ``{ __typename }``), all inside every limit. Before the caches
were bounded by bytes it grew one ``conduit serve`` process by 1,036 MB. Now documents over
``MAX_CACHED_DOCUMENT_CHARS`` are not cached at all, and the rest only within byte budgets.

The requests are sent one after another: with four at a time, uvloop's and httptools' buffers of
900 KB fragment the C heap by a further 40 to 60 MiB (tracemalloc sees under 5 MiB of Python
objects kept either way), which is the allocator's, not a cache's.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from tests.test_deployment import conduit_serve

pytestmark = pytest.mark.slow  # a real server process and 540 MB of requests

REQUESTS = 600
COMMENT_BYTES = 900 * 1024
CONCURRENCY = 1
ALLOWED_GROWTH_MB = 100


@pytest.fixture
def engine_name() -> str:
    return "sqlite"  # what is measured is the process's caches, not the database


def rss_mb(pid: int) -> float:
    """The process's resident set size (``VmRSS``) in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for process {pid}")


def document(number: int) -> str:
    """A distinct document of about ``COMMENT_BYTES``: a comment, then ``{ __typename }``."""
    return f"# {number:08d} {'x' * COMMENT_BYTES}\n{{ __typename }}"


async def flood(url: str, numbers: range) -> None:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for number in numbers:
        queue.put_nowait(number)

    async def worker() -> None:
        async with httpx.AsyncClient(timeout=60) as http:
            while not queue.empty():
                number = queue.get_nowait()
                response = await http.post(f"{url}/graphql", json={"query": document(number)})
                assert response.json() == {"data": {"__typename": "Query"}}, response.text[:300]

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))


async def test_distinct_large_documents_do_not_grow_the_process(database_url: str, tmp_path: Path) -> None:
    with conduit_serve(database_url, tmp_path) as server:
        await flood(server.url, range(20))  # warm: every code path and the caches' first entries
        before = rss_mb(server.process.pid)
        await flood(server.url, range(20, 20 + REQUESTS))
        after = rss_mb(server.process.pid)
        async with httpx.AsyncClient() as http:
            metrics = (await http.get(f"{server.url}/metrics")).text
    assert after - before < ALLOWED_GROWTH_MB, f"RSS grew from {before:.0f} to {after:.0f} MiB\n{metrics[-3000:]}"
