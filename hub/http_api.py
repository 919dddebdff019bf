"""The plain HTTP API: publish, history, channel state, health."""

from __future__ import annotations

import hmac
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .channels import validate_channel
from .connection import SSEConnection
from .errors import BadRequest, PushHubError, Unauthorized
from .events import Event, parse_publish_body
from .hub import Hub
from .stats import StatsCollector

MAX_HISTORY_LIMIT = 1000


def error_response(exc: PushHubError) -> JSONResponse:
    return JSONResponse({"error": {"code": exc.code, "message": exc.message}}, status_code=exc.status)


def bearer_token(headers: Any) -> str | None:
    value = headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def check_publisher(keys: list[str], token: str | None) -> None:
    """Accept ``token`` if it is one of ``keys``; with no keys configured, publishing is open."""
    if not keys:
        return
    if token is None:
        raise Unauthorized("publishing needs 'Authorization: Bearer <publisher key>'")
    if not any(hmac.compare_digest(token.encode(), key.encode()) for key in keys):
        raise Unauthorized("unknown publisher key")


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(limit)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise PayloadTooLarge(limit)
    return bytes(body)


class PayloadTooLarge(BadRequest):
    status = 413
    code = "payload_too_large"

    def __init__(self, limit: int) -> None:
        super().__init__(f"request body is larger than {limit} bytes")


def positioned(event: Event) -> dict[str, Any]:
    return {"id": event.id, "channel": event.channel, "epoch": event.epoch, "offset": event.offset,
            "cursor": event.position.encode()}


class HttpApi:
    def __init__(self, hub: Hub, publisher_keys: list[str], max_body_bytes: int) -> None:
        self.hub = hub
        self.publisher_keys = publisher_keys
        self.max_body_bytes = max_body_bytes
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(StatsCollector(hub.stats, self.gauges))

    def routes(self) -> list[Route]:
        return [
            Route("/healthz", self.healthz, methods=["GET"]),
            Route("/v1/channels/{channel}/events", self.publish, methods=["POST"]),
            Route("/v1/channels/{channel}/events", self.history, methods=["GET"]),
            Route("/v1/channels/{channel}", self.channel_state, methods=["GET"]),
            Route("/v1/stats", self.stats, methods=["GET"]),
            Route("/metrics", self.metrics, methods=["GET"]),
        ]

    async def healthz(self, request: Request) -> Response:
        ok = await self.hub.broker.healthy()
        return JSONResponse({"status": "ok" if ok else "unavailable",
                             "connections": len(self.hub.connections)}, status_code=200 if ok else 503)

    async def publish(self, request: Request) -> Response:
        check_publisher(self.publisher_keys, bearer_token(request.headers))
        channel = validate_channel(request.path_params["channel"])
        drafts, batch = parse_publish_body(await read_body(request, self.max_body_bytes))
        events = await self.hub.publish(channel, drafts)
        body = {"events": [positioned(e) for e in events]} if batch else positioned(events[0])
        return JSONResponse(body, status_code=202)

    async def history(self, request: Request) -> Response:
        channel = validate_channel(request.path_params["channel"])
        after = request.query_params.get("after") or None
        raw_limit = request.query_params.get("limit", "100")
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_HISTORY_LIMIT:
            raise BadRequest(f"'limit' must be an integer from 1 to {MAX_HISTORY_LIMIT}")
        limit = int(raw_limit)
        page, reset = await self.hub.history(channel, after, limit)
        events = page.events
        if events:
            cursor = events[-1].position.encode()
        elif reset is None and after is not None:
            cursor = after
        else:
            cursor = f"{page.state.epoch}.{page.state.earliest - 1}"
        more = bool(events) and events[-1].offset < page.state.top
        return Response(
            b'{"channel":"%s","reset":%s,"cursor":"%s","more":%s,"events":[%s]}' % (
                channel.encode(), b"null" if reset is None else b'"%s"' % reset.encode(), cursor.encode(),
                b"true" if more else b"false", b",".join(e.json for e in events)),
            media_type="application/json",
        )

    def gauges(self) -> dict[str, int]:
        sse = sum(1 for conn in self.hub.connections if isinstance(conn, SSEConnection))
        return {"sse_connections": sse, "ws_connections": len(self.hub.connections) - sse,
                "active_channels": len(self.hub.channels)}

    async def stats(self, request: Request) -> Response:
        check_publisher(self.publisher_keys, bearer_token(request.headers))
        return JSONResponse(self.hub.stats.snapshot(self.gauges()))

    async def metrics(self, request: Request) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)

    async def channel_state(self, request: Request) -> Response:
        channel = validate_channel(request.path_params["channel"])
        state = await self.hub.broker.state(channel)
        return JSONResponse({"channel": channel, "epoch": state.epoch, "top": state.top,
                             "earliest": state.earliest, "cursor": f"{state.epoch}.{state.top}"})
