"""The plain HTTP API: history, channel state, health, stats (publishing: :mod:`pushhub.publish_endpoint`)."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive

from .auth import Access, bearer
from .channels import validate_channel
from .connection import SSEConnection
from .errors import BadRequest, PushHubError
from .events import Event
from .hub import Hub
from .numbers import bounded

MAX_HISTORY_LIMIT = 1000


def error_json(exc: PushHubError) -> bytes:
    return orjson.dumps({"error": {"code": exc.code, "message": exc.message}})


def error_response(exc: PushHubError) -> Response:
    return Response(error_json(exc), status_code=exc.status, media_type="application/json")


async def read_body(request: Request, limit: int) -> bytes:
    return await receive_body(request.receive, request.headers.get("content-length", ""), limit)


async def receive_body(receive: Receive, declared: str, limit: int) -> bytes:
    """The body of an ASGI request whose ``Content-Length`` is ``declared`` (``""`` if none), up to ``limit``."""
    promised = bounded(declared, limit)
    if promised is not None and promised > limit:
        raise PayloadTooLarge(limit)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone("the client closed the connection before sending the whole body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


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
            "cursor": f"{event.epoch}.{event.offset}"}  # event.position.encode(), without the Position


class HttpApi:
    """Everything of the plain API but publishing (:mod:`pushhub.publish_endpoint`)."""

    def __init__(self, hub: Hub, access: Access, cors_origins: list[str]) -> None:
        self.hub = hub
        self.access = access
        self.cors_origins = cors_origins

    def routes(self) -> list[Route]:
        return [
            Route("/healthz", self.healthz, methods=["GET"]),
            Route("/v1/channels/{channel}/events", self.history, methods=["GET"]),
            Route("/v1/channels/{channel}", self.channel_state, methods=["GET"]),
            Route("/v1/stats", self.stats, methods=["GET"]),
        ]

    async def healthz(self, request: Request) -> Response:
        ok = await self.hub.broker.healthy()
        return JSONResponse({"status": "ok" if ok else "unavailable",
                             "connections": len(self.hub.connections)}, status_code=200 if ok else 503)

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
