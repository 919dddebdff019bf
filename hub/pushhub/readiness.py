"""``GET /readyz``: whether this process should get traffic now.

Ready means the process can accept and store events (its storage answers, and an embedded log's
directory is writable) and is not draining (a SIGTERM started its shutdown). ``/healthz`` stays the
liveness check: a draining process is alive but not ready, so a load balancer stops sending it new
clients while the ones it has are told to reconnect elsewhere.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

Probe = Callable[[], Awaitable[bool]]


class Readiness:
    def __init__(self, storage: Probe, data_dir: str | None) -> None:
        self.storage = storage
        self.data_dir = data_dir  # None: no local files to write (memory, Redis)
        self.draining = False

    def drain(self) -> None:
        self.draining = True

    async def checks(self) -> dict[str, str]:
        out = {"draining": "draining" if self.draining else "ok"}
        try:
            out["storage"] = "ok" if await self.storage() else "unavailable"
        except Exception as exc:  # a probe must answer, whatever the backend raises
            out["storage"] = f"unavailable: {exc.__class__.__name__}"
        if self.data_dir is not None:
            out["data_dir"] = "ok" if os.access(self.data_dir, os.W_OK) else f"{self.data_dir} is not writable"
        return out

    def routes(self) -> list[Route]:
        return [Route("/readyz", self.readyz, methods=["GET"])]

    async def readyz(self, request: Request) -> Response:
        checks = await self.checks()
        ready = all(value == "ok" for value in checks.values())
        return JSONResponse({"status": "ready" if ready else "unready", "checks": checks},
                            status_code=200 if ready else 503)
