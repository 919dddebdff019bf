"""Assembles the hub as one ASGI application."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from . import client_assets
from .backends import create_broker
from .config import Settings
from .errors import PushHubError
from .http_api import HttpApi, error_response
from .hub import Hub
from .streams import Streams


class PushHub:
    """The ASGI application: streaming endpoints first, everything else through Starlette."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        broker = create_broker(settings.broker_url, settings.retention_policy(), fsync=settings.fsync)
        self.hub = Hub(broker, max_backlog=settings.max_backlog)
        self.streams = Streams(self.hub, publisher_keys=settings.publisher_keys,
                               max_queue_bytes=settings.max_queue_bytes, sse_retry_ms=settings.sse_retry_ms)
        api = HttpApi(self.hub, settings.publisher_keys, settings.max_body_bytes)
        self.api = Starlette(
            routes=api.routes() + client_assets.routes(),
            exception_handlers={PushHubError: self._error, 404: self._not_found, 405: self._not_allowed},
            lifespan=self._lifespan,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self.streams.websocket(scope, receive, send)
        elif scope["type"] == "http" and scope["path"] == "/v1/sse":
            await self.streams.sse(scope, receive, send)
        else:
            await self.api(scope, receive, send)

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        await self.hub.start()
        heartbeat = asyncio.get_running_loop().create_task(self._heartbeat())
        try:
            yield
        finally:
            heartbeat.cancel()
            await self.hub.close()

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.settings.heartbeat)
            self.streams.heartbeat()

    async def _error(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, PushHubError)
        return error_response(exc)

    async def _not_found(self, request: Request, exc: Exception) -> Response:
        return JSONResponse({"error": {"code": "not_found", "message": f"no route {request.url.path}"}},
                            status_code=404)

    async def _not_allowed(self, request: Request, exc: Exception) -> Response:
        return JSONResponse({"error": {"code": "method_not_allowed",
                                       "message": f"{request.method} is not allowed on {request.url.path}"}},
                            status_code=405)
