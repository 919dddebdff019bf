"""The plain HTTP API: publish, history, channel state, health."""

from __future__ import annotations

from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from . import idempotency
from .auth import Access, bearer
from .backends.base import Once
from .channels import validate_channel
from .connection import SSEConnection
from .errors import BadRequest, PushHubError
from .events import Event, parse_publish_body
from .hub import Hub
from .numbers import bounded
from .provenance import API, Origin

MAX_HISTORY_LIMIT = 1000


def error_response(exc: PushHubError) -> JSONResponse:
    return JSONResponse({"error": {"code": exc.code, "message": exc.message}}, status_code=exc.status)


async def read_body(request: Request, limit: int) -> bytes:
    declared = bounded(request.headers.get("content-length", ""), limit)
    if declared is not None and declared > limit:
        raise PayloadTooLarge(limit)
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise PayloadTooLarge(limit)
    except ClientDisconnect as exc:
        raise ClientGone("the client closed the connection before sending the whole body") from exc
    return bytes(body)


class ClientGone(BadRequest):
    """The request ended before its body did: nothing was done, and the answer reaches no one."""

    code = "client_disconnected"


class PayloadTooLarge(BadRequest):
    status = 413
    code = "payload_too_large"

    def __init__(self, limit: int) -> None:
        super().__init__(f"request body is larger than {limit} bytes")


def positioned(event: Event) -> dict[str, Any]:
    return {"id": event.id, "channel": event.channel, "epoch": event.epoch, "offset": event.offset,
            "cursor": event.position.encode()}


class HttpApi:
    def __init__(self, hub: Hub, access: Access, max_body_bytes: int, window: float,
                 cors_origins: list[str]) -> None:
        """``window``: seconds an ``Idempotency-Key`` is remembered."""
        self.hub = hub
        self.access = access
        self.max_body_bytes = max_body_bytes
        self.window = window
        self.cors_origins = cors_origins

    def routes(self) -> list[Route]:
        return [
            Route("/healthz", self.healthz, methods=["GET"]),
            Route("/v1/channels/{channel}/events", self.publish, methods=["POST"]),
            Route("/v1/channels/{channel}/events", self.history, methods=["GET"]),
            Route("/v1/channels/{channel}", self.channel_state, methods=["GET"]),
            Route("/v1/stats", self.stats, methods=["GET"]),
        ]

    async def healthz(self, request: Request) -> Response:
        ok = await self.hub.broker.healthy()
        return JSONResponse({"status": "ok" if ok else "unavailable",
                             "connections": len(self.hub.connections)}, status_code=200 if ok else 503)

    async def publish(self, request: Request) -> Response:
        grant = self.access.grant(bearer(request.headers.get("authorization")))
        channel = validate_channel(request.path_params["channel"])
        self.access.check_publish(grant, channel)
        raw = await read_body(request, self.max_body_bytes)
        key = request.headers.get("idempotency-key")
        if key is not None:
            idempotency.check_key(key)
        drafts, batch = parse_publish_body(raw)
        origin = Origin(API, grant.publisher)
        if key is None:
            events = await self.hub.publish(channel, drafts, origin)
            return Response(idempotency.answer([positioned(e) for e in events], batch), status_code=202,
                            media_type="application/json")
        fingerprint = idempotency.fingerprint(channel, raw)
        once = Once(grant.publisher, key, idempotency.record(fingerprint, [d.id for d in drafts], batch), self.window)
        published = await self.hub.publish_once(channel, drafts, once, origin)
        if published.replayed is None:
            answer = idempotency.answer([positioned(e) for e in published.events], batch)
        else:
            answer = idempotency.answer(*idempotency.replay(channel, published.replayed, fingerprint, key))
        return Response(answer, status_code=202, media_type="application/json",
                        headers={"idempotent-replayed": "false" if published.replayed is None else "true"})

    def readable(self, request: Request) -> str:
        """The channel named in the path, if the request's credential may read it."""
        channel = validate_channel(request.path_params["channel"])
        headers = request.headers
        grant = self.access.presented(headers.get("authorization"), request.query_params.get("token"),
                                      headers.get("cookie"), headers.get("origin"), headers.get("host"),
                                      self.cors_origins)
        self.access.check_subscribe(grant, [channel])
        return channel

    async def history(self, request: Request) -> Response:
        channel = self.readable(request)
        after = request.query_params.get("after") or None
        limit = bounded(request.query_params.get("limit", "100"), MAX_HISTORY_LIMIT)
        if limit is None or not 1 <= limit <= MAX_HISTORY_LIMIT:
            raise BadRequest(f"'limit' must be an integer from 1 to {MAX_HISTORY_LIMIT}")
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
        self.access.check_admin(self.access.grant(bearer(request.headers.get("authorization"))))
        return JSONResponse(self.hub.stats.snapshot(self.gauges()))

    async def channel_state(self, request: Request) -> Response:
        channel = self.readable(request)
        state = await self.hub.broker.state(channel)
        return JSONResponse({"channel": channel, "epoch": state.epoch, "top": state.top,
                             "earliest": state.earliest, "cursor": f"{state.epoch}.{state.top}"})
