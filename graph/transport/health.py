"""``/healthz`` (the process is alive) and ``/readyz`` (the database answers)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from db.engine import Database

logger = logging.getLogger("conduit")

READY_TIMEOUT = 0.8


async def healthz(_request: Request) -> Response:
    """The process is alive."""
    return JSONResponse({"status": "ok"})


def readyz_endpoint(db: Database) -> Any:
    """``/readyz``: 200 when a trivial query succeeds, 503 otherwise (within ``READY_TIMEOUT`` seconds)."""

    async def readyz(_request: Request) -> Response:
        try:
            # a load balancer must learn of an unreachable database quickly, not after the connect timeout
            await asyncio.wait_for(db.ping(), timeout=READY_TIMEOUT)
        except Exception as error:
            logger.warning("readiness check failed: %s", type(error).__name__ + (f": {error}" if str(error) else ""))
            return JSONResponse({"status": "unavailable"}, status_code=503)
        return JSONResponse({"status": "ok"})

    return readyz
