"""``GET /__stats`` for the benchmark harness."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from db.engine import Database


class BenchStats:
    """``GET /__stats`` for the benchmark harness (``CONDUIT_BENCH_STATS``): SQL statements and POST requests so far."""

    def __init__(self, app: ASGIApp, db: Database) -> None:
        self.app = app
        self.sql = 0
        self.requests = 0
        event.listen(db.engine.sync_engine, "before_cursor_execute", self._count_sql)

    def _count_sql(self, *_args: Any) -> None:
        self.sql += 1

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            if scope["path"] == "/__stats":
                await JSONResponse({"sql": self.sql, "requests": self.requests})(scope, receive, send)
                return
            if scope["method"] == "POST":
                self.requests += 1
        await self.app(scope, receive, send)
