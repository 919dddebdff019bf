"""Assembles the hub as one ASGI application."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from . import client_assets, cors, dashboard, faults
from .admin_api import AdminApi
from .auth import Access, JWTVerifier
from .backends import create_backend
from .config import Settings
from .direct import DirectEndpoint
from .errors import BadRequest, PushHubError
from .http11 import LeanEndpoint, StreamEndpoint
from .http_api import HttpApi, error_response
from .hub import Hub
from .ingest import sources
from .ingest.endpoint import IngestApi, IngestEndpoint
from .metrics import BACKLOG_CAP, Metrics
from .metrics_access import MetricsAccess
from .openapi import Docs
from .publish_endpoint import PublishEndpoint
from .readiness import Readiness
from .session import SessionApi
from .streams import Streams
from .webhooks.api import WebhookApi, admin_check
from .webhooks.dispatcher import Dispatcher
from .webhooks.settings import config_from_settings
from .webhooks.store import PENDING

logger = logging.getLogger("pushhub")

CORS_HEADERS = ["authorization", "content-type", "idempotency-key", "last-event-id"]


def build_access(settings: Settings) -> Access:
    public_keys = []
    for path in settings.jwt_public_keys:
        try:
            with open(path, "rb") as f:
                public_keys.append(f.read())
        except OSError as exc:
            raise BadRequest(f"cannot read JWT public key {path}: {exc.strerror}") from exc
    verifier = JWTVerifier(settings.jwt_secrets, public_keys, settings.jwt_audience)
    return Access(publisher_keys=settings.publisher_keys, admin_keys=settings.admin_keys,
                  jwt_verifier=verifier, public=settings.public_channels)


class PushHub:
    """The hub: the Starlette app for plain requests (as ASGI), and the streaming endpoints."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.backend = create_backend(settings.backend_url, settings.retention_policy(), fsync=settings.fsync,
                                      cluster=settings.redis_cluster, attempt_timeout=settings.webhook_timeout)
        self.hub = Hub(self.backend.broker, max_backlog=settings.max_backlog, after_append=faults.after_append())
        access = build_access(settings)
        ingest_sources = sources.load_file(settings.ingest_config) if settings.ingest_config else {}
        self.streams = Streams(self.hub, access=access, cors_origins=settings.cors_origins,
                               max_queue_bytes=settings.max_queue_bytes, sse_retry_ms=settings.sse_retry_ms,
                               max_message_bytes=settings.max_body_bytes, limits=settings.http_limits())
        api = HttpApi(self.hub, access, settings.cors_origins)
        ingest = IngestApi(ingest_sources, settings.dedupe_window, access)
        self.webhooks = Dispatcher(self.hub, self.backend.deliveries, config_from_settings(settings))
        self.dashboard = dashboard.Dashboard(access, self.streams, api)
        webhook_api = WebhookApi(self.webhooks, admin_check(access), settings.max_body_bytes)
        self.readiness = Readiness(self.backend.broker.healthy, settings.data_dir if settings.uses_sqlite else None)
        self.metrics = Metrics(self.hub.stats, api.gauges, MetricsAccess(settings.metrics_keys), self._backlog)
        admin_api = AdminApi(self.hub, self.backend.deliveries, access, time.time)
        routes = (api.routes() + ingest.routes() + admin_api.routes() + SessionApi(access).routes()
                  + webhook_api.routes()
                  + client_assets.routes() + self.dashboard.routes() + self.readiness.routes() + Docs().routes()
                  + [Route("/metrics", self.metrics.endpoint, methods=["GET"])])
        self.direct: list[DirectEndpoint] = [  # the hot paths
            PublishEndpoint(self.hub, access, settings.max_body_bytes, settings.dedupe_window,
                            self.metrics.answers(PublishEndpoint.path)),
            IngestEndpoint(self.hub, ingest_sources, settings.dedupe_window, self.metrics.answers(IngestEndpoint.path))]
        self.api = Starlette(
            routes=[*(Route(endpoint.path, endpoint, methods=["POST"]) for endpoint in self.direct),
                    *(self.metrics.counted(route) for route in routes)],
            middleware=[Middleware(CORSMiddleware, allow_origins=settings.cors_origins,
                                   allow_credentials=cors.credentials_allowed(settings.cors_origins),
                                   allow_methods=["GET", "POST", "PATCH", "DELETE"], allow_headers=CORS_HEADERS,
                                   max_age=600)],
            exception_handlers={PushHubError: self._error, 404: self._not_found, 405: self._not_allowed},
            lifespan=self._lifespan,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        for endpoint in self.direct:
            if endpoint.takes(scope):
                await endpoint.direct(scope, receive, send)
                return
        await self.api(scope, receive, send)

    def lean_endpoint(self, scope: Scope) -> LeanEndpoint | None:
        """The hot path that answers a request once its whole body is in, with no ASGI call (the
        hub's HTTP server asks for a request whose body is not chunked), or ``None``."""
        for endpoint in self.direct:
            if endpoint.lean(scope):
                return endpoint.respond
        return None

    def stream_endpoint(self, scope: Scope) -> StreamEndpoint | None:
        """The streaming endpoint that takes a request over with its socket (the hub's HTTP server
        asks before it makes the request an ASGI call), or ``None`` for the Starlette app."""
        if scope["path"] == dashboard.SSE_PATH:
            return self.dashboard.sse
        return self.streams.endpoint(scope)

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        try:
            await self.backend.open()
        except PushHubError as exc:
            logger.error("cannot start: %s", exc.message)
            raise
        try:
            await self.hub.start()
            await self.webhooks.start()
            heartbeat = asyncio.get_running_loop().create_task(self._heartbeat())
            try:
                yield
            finally:
                heartbeat.cancel()
                await self.webhooks.close()
                await self.hub.close()
        finally:
            await self.backend.close()

    async def _backlog(self) -> dict[str, int]:
        store = self.webhooks.store
        return {endpoint_id: len(await store.deliveries(endpoint_id=endpoint_id, status=PENDING, limit=BACKLOG_CAP))
                for endpoint_id in list(self.webhooks.endpoints)}

    async def _heartbeat(self) -> None:
        """SSE heartbeats, and the once-a-second throughput sample."""
        loop = asyncio.get_running_loop()
        next_beat = loop.time() + self.settings.heartbeat
        while True:
            await asyncio.sleep(1.0)
            self.hub.stats.sample(time.time())
            self.metrics.sync()
            if loop.time() >= next_beat:
                self.streams.heartbeat()
                next_beat = loop.time() + self.settings.heartbeat

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
