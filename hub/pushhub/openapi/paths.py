"""Every HTTP route the hub serves, as OpenAPI operations: one :func:`op` call per method and path.

To document a new route, add an ``op(...)`` to :data:`OPERATIONS` (with its body and answer
schemas in :mod:`pushhub.openapi.schemas`); ``tests/test_openapi.py`` fails naming any route the
app serves that is missing here, and fuzzes every operation not marked ``streaming``.
"""

from __future__ import annotations

from typing import Any

from .schemas import CHANNEL, CHANNEL_PATTERN, CURSOR, EVENT_TYPE, TYPE_PATTERN, Schema, ref

ERRORS = {400: "the request is malformed", 401: "credentials are missing or wrong",
          403: "the credential does not allow this", 404: "no such resource", 405: "method not allowed",
          413: "the body is too large", 422: "the body is well-formed but invalid",
          503: "the storage backend is unavailable"}
JSON = "application/json"


def param(name: str, where: str, schema: Schema, description: str, *, required: bool = False,
          repeat: bool = False) -> dict[str, Any]:
    if repeat:
        schema = {"type": "array", "items": schema}
    out: dict[str, Any] = {"name": name, "in": where, "schema": schema, "description": description}
    if required or where == "path":
        out["required"] = True
    if repeat:
        out["explode"] = True
    return out


def path_id(name: str, description: str) -> dict[str, Any]:
    return param(name, "path", {"type": "string"}, description)


LIMIT = param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
              "page size")
BEFORE = param("before", "query", {"type": "integer", "minimum": 0, "maximum": 2**63 - 1},
               "the `next_before` of the previous page")
CHANNEL_PATH = param("channel", "path", CHANNEL, "channel name")


def op(method: str, path: str, summary: str, tag: str, *, ok: dict[int, Any], errors: tuple[int, ...] = (),
       body: Schema | None = None, body_type: str = JSON, body_required: bool = True,
       params: list[dict[str, Any]] | None = None, auth: str | None = None, streaming: bool = False,
       description: str = "", extra: dict[str, Any] | None = None) -> tuple[str, str, dict[str, Any]]:
    """One operation. ``ok`` maps each success status to a schema name, a JSON schema, a
    ``(media type or types, schema)`` pair, or ``None`` for no body; ``errors`` lists the error
    statuses (all with the Error shape); ``auth`` is ``"publisher"``, ``"subscriber"`` or
    ``"admin"``; ``streaming`` marks a response that does not end (not fuzzed)."""
    responses: dict[str, Any] = {}
    for status, answer in ok.items():
        if answer is None:
            responses[str(status)] = {"description": "done"}
        elif isinstance(answer, tuple):
            media, schema = answer
            types = (media,) if isinstance(media, str) else media
            responses[str(status)] = {"description": "ok", "content": {t: {"schema": schema} for t in types}}
        else:
            schema = answer if isinstance(answer, dict) else ref(answer)
            responses[str(status)] = {"description": "ok", "content": {JSON: {"schema": schema}}}
    for status in sorted({400, *errors}):  # 400: any request the server cannot parse
        responses[str(status)] = {"description": ERRORS[status], "content": {JSON: {"schema": ref("Error")}}}
    operation: dict[str, Any] = {"summary": summary, "tags": [tag], "operationId": _operation_id(method, path),
                                 "responses": responses}
    if description:
        operation["description"] = description
    if params:
        operation["parameters"] = params
    if body is not None:
        operation["requestBody"] = {"required": body_required, "content": {body_type: {"schema": body}}}
    if auth is not None:
        operation["security"] = [{"bearer": []}] if auth != "subscriber" else [{"bearer": []}, {"token": []}, {}]
        operation["x-pushhub-credential"] = auth
    if streaming:
        operation["x-pushhub-streaming"] = True
    operation.update(extra or {})
    return method, path, operation


def _operation_id(method: str, path: str) -> str:
    words = [part.strip("{}").replace("-", "_").replace(".", "_") for part in path.split("/") if part]
    return "_".join([method, *words])


def _text(media: str) -> tuple[str, Schema]:
    return media, {"type": "string"}


ENDPOINT_ID = path_id("id", "endpoint id (`ep_…`)")
DELIVERY_ID = path_id("id", "delivery id (`dl_…`)")
ADMIN_ERRORS = (401, 403)
SUBSCRIBE_QUERY = [
    param("channel", "query", CHANNEL, "channel to follow (repeat, or comma-separate; at most 100)",
          required=True, repeat=True),
    param("type", "query", TYPE_PATTERN, "only events of these types (glob; repeat)", repeat=True),
    param("token", "query", {"type": "string"}, "access token, for clients that cannot set a header"),
    param("lastEventId", "query", CURSOR, "resume after this cursor (the Last-Event-ID header wins)"),
    param("Last-Event-ID", "header", CURSOR, "resume after this cursor"),
]

OPERATIONS: list[tuple[str, str, dict[str, Any]]] = [
    # Health and description
    op("get", "/healthz", "Liveness: the process runs and its storage answers", "operations",
       ok={200: "Health", 503: "Health"}),
    op("get", "/readyz", "Readiness: this process can accept and store events and is not draining", "operations",
       ok={200: "Readiness", 503: "Readiness"}),
    op("get", "/metrics", "Prometheus metrics (text exposition format)", "operations",
       ok={200: _text("text/plain")}, errors=(401, 403)),
    op("get", "/openapi.json", "This document", "operations", ok={200: (JSON, {"type": "object"})}),
    op("get", "/docs", "The API reference as a page (Swagger UI, served by the hub)", "operations",
       ok={200: _text("text/html")}),
    op("get", "/docs/{asset}", "A file of the API reference page", "operations",
       params=[param("asset", "path", {"enum": ["swagger-ui.css", "swagger-ui-bundle.js", "docs.js"]},
                     "file name")],
       ok={200: (("text/css", "text/javascript"), {"type": "string"})}, errors=(404,)),
    # Channels
    op("post", "/v1/channels/{channel}/events", "Publish one event, or a batch", "channels",
       params=[CHANNEL_PATH, param("Idempotency-Key", "header", {"type": "string", "pattern": "^[\\x21-\\x7e]{1,255}$"},
                                   "a retried request with the same key and body is appended once")],
       body={"oneOf": [ref("EventInput"), ref("EventBatch")]},
       ok={202: {"oneOf": [ref("Positioned"), ref("PositionedBatch")]}},
       errors=(400, 401, 403, 413, 422, 503), auth="publisher"),
    op("get", "/v1/channels/{channel}/events", "A page of a channel's history, oldest first", "channels",
       params=[CHANNEL_PATH, param("after", "query", CURSOR, "start after this cursor (default: the oldest kept)"),
               LIMIT],
       ok={200: "History"}, errors=(400, 401, 403, 503), auth="subscriber"),
    op("get", "/v1/channels/{channel}", "A channel's epoch, offsets and current cursor", "channels",
       params=[CHANNEL_PATH], ok={200: "ChannelState"}, errors=(400, 401, 403, 503), auth="subscriber"),
    op("get", "/v1/stats", "Counters and per-second rates of this process", "operations", ok={200: "Stats"},
       errors=ADMIN_ERRORS, auth="admin"),
    # Streams (dispatched ahead of the router)
    op("get", "/v1/sse", "Follow channels as Server-Sent Events, resuming from a cursor", "streams",
       params=SUBSCRIBE_QUERY, ok={200: ("text/event-stream", {"type": "string"})}, errors=(400, 401, 403, 405),
       auth="subscriber", streaming=True,
       description="Each event is `id: CURSOR` + `data: Event` (schema SseMessage); control events are "
                   "`reset` (SseReset) and `disconnect` (SseDisconnect), and `:` comments are heartbeats.",
       extra={"x-sse-events": {"message": ref("SseMessage"), "reset": ref("SseReset"),
                               "disconnect": ref("SseDisconnect")}}),
    op("get", "/v1/ws", "WebSocket upgrade: subscribe, unsubscribe, publish and ping over one connection",
       "streams", params=[param("token", "query", {"type": "string"}, "access token (or the Authorization header)"),
                          param("channel", "query", CHANNEL, "subscribe at once, as a subscribe message without "
                                "an id per channel would (repeat, or comma-separate)", repeat=True),
                          param("type", "query", TYPE_PATTERN, "the URL's subscriptions: only these event types "
                                "(glob; repeat)", repeat=True),
                          param("cursor", "query", CURSOR, "the URL's subscription (one channel) resumes after it"),
                          param("Sec-WebSocket-Protocol", "header", {"enum": ["pushhub.json", "pushhub.msgpack"]},
                                "message encoding (default pushhub.json)")],
       ok={101: None}, auth="subscriber", streaming=True,
       description="Client messages: WsClientMessage; hub messages: WsServerMessage. A stream the hub ends "
                   "closes with a code of 4000-4499 (reconnect and resume) or 4500-4999 (do not).",
       extra={"x-websocket-messages": {"client": ref("WsClientMessage"), "server": ref("WsServerMessage")}}),
    op("post", "/v1/session", "Trade a bearer JWT for an HttpOnly cookie (for EventSource)", "streams",
       ok={204: None}, errors=(400, 401), auth="subscriber"),
    op("delete", "/v1/session", "Remove the session cookie", "streams", ok={204: None}),
    # Ingest
    op("post", "/v1/ingest/{source}", "Receive a signed webhook from a configured source", "ingest",
       params=[path_id("source", "source name from the ingest configuration")],
       body={}, body_type="application/json", body_required=False,
       ok={202: "IngestAccepted", 200: {"oneOf": [ref("IngestAccepted"), ref("SlackChallenge")]}},
       errors=(400, 401, 403, 404, 413, 422, 503),
       description="200 answers a duplicate delivery (or Slack's url_verification challenge)."),
    op("get", "/v1/admin/ingest/sources", "The configured ingest sources (no secrets)", "ingest",
       ok={200: "IngestSources"}, errors=ADMIN_ERRORS, auth="admin"),
    # Admin views of the log
    op("get", "/v1/admin/channels", "Channels by name, with position, rate and subscriptions", "admin",
       params=[param("pattern", "query", CHANNEL_PATTERN, "only names matching this glob (`*`: any run)"),
               param("after", "query", CHANNEL, "the `next_after` of the previous page"),
               param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 200, "default": 50},
                     "page size")],
       ok={200: "ChannelList"}, errors=(400, 401, 403, 503), auth="admin"),
    op("get", "/v1/admin/events", "Find retained events by id or by type (newest first), with provenance",
       "admin", params=[param("id", "query", {"type": "string", "minLength": 1, "maxLength": 128}, "event id"),
                        param("type", "query", EVENT_TYPE, "event type"),
                        param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 200, "default": 50},
                              "at most this many")],
       ok={200: "EventSearch"}, errors=(400, 401, 403, 503), auth="admin",
       description="Exactly one of `id` and `type`."),
    op("get", "/v1/admin/events/{id}", "One event's page: provenance, position, body, deliveries and attempts",
       "admin", params=[path_id("id", "event id")], ok={200: "EventPage"}, errors=(401, 403, 404, 503),
       auth="admin"),
    # Outgoing webhooks
    op("post", "/v1/webhooks/endpoints", "Register an endpoint", "webhooks", body=ref("EndpointInput"),
       ok={201: "Endpoint"}, errors=(400, 401, 403, 413, 422), auth="admin"),
    op("get", "/v1/webhooks/endpoints", "List endpoints (without secrets)", "webhooks", ok={200: "EndpointList"},
       errors=ADMIN_ERRORS, auth="admin"),
    op("get", "/v1/webhooks/endpoints/{id}", "One endpoint, with its secret", "webhooks", params=[ENDPOINT_ID],
       ok={200: "Endpoint"}, errors=(401, 403, 404), auth="admin"),
    op("patch", "/v1/webhooks/endpoints/{id}", "Change an endpoint", "webhooks", params=[ENDPOINT_ID],
       body={**ref("EndpointInput"), "description": "any subset of the fields"}, ok={200: "Endpoint"},
       errors=(400, 401, 403, 404, 413, 422), auth="admin"),
    op("delete", "/v1/webhooks/endpoints/{id}", "Delete an endpoint with its deliveries", "webhooks",
       params=[ENDPOINT_ID], ok={204: None}, errors=(401, 403, 404), auth="admin"),
    op("post", "/v1/webhooks/endpoints/{id}/rotate-secret", "New secret; the old one signs during the overlap",
       "webhooks", params=[ENDPOINT_ID], body=ref("RotateSecret"), body_required=False, ok={200: "Endpoint"},
       errors=(400, 401, 403, 404, 413, 422), auth="admin"),
    op("post", "/v1/webhooks/endpoints/{id}/replay", "Send events again to an endpoint", "webhooks",
       params=[ENDPOINT_ID], body=ref("Replay"), ok={200: "Replayed"}, errors=(400, 401, 403, 404, 413, 422),
       auth="admin"),
    op("post", "/v1/webhooks/endpoints/{id}/test", "Send one signed test event to an endpoint (not a publish)",
       "webhooks", params=[ENDPOINT_ID], body=ref("EventInput"), body_required=False, ok={200: "TestSend"},
       errors=(400, 401, 403, 404, 413, 422), auth="admin",
       description="Without a body the event is `pushhub.test`. Nothing is recorded and no channel gets it."),
    op("get", "/v1/webhooks/endpoints/{id}/stats", "An endpoint's attempts per minute, and its backlog",
       "webhooks", params=[ENDPOINT_ID, param("minutes", "query",
                                              {"type": "integer", "minimum": 1, "maximum": 1440, "default": 60},
                                              "how many minutes back")],
       ok={200: "EndpointStats"}, errors=(400, 401, 403, 404, 503), auth="admin"),
    op("get", "/v1/webhooks/deliveries", "Deliveries, newest first", "webhooks",
       params=[param("endpoint", "query", {"type": "string"}, "only this endpoint"),
               param("event", "query", {"type": "string"}, "only this event id"),
               param("status", "query", {"enum": ["pending", "succeeded", "failed"]}, "only this status"),
               BEFORE, LIMIT],
       ok={200: "DeliveryPage"}, errors=(400, 401, 403), auth="admin"),
    op("get", "/v1/webhooks/deliveries/{id}", "One delivery and its attempts", "webhooks", params=[DELIVERY_ID],
       ok={200: "DeliveryDetail"}, errors=(401, 403, 404), auth="admin"),
    op("post", "/v1/webhooks/deliveries/{id}/replay", "Send one delivery again", "webhooks", params=[DELIVERY_ID],
       ok={200: "Delivery"}, errors=(401, 403, 404), auth="admin"),
    op("get", "/v1/webhooks/attempts", "Delivery attempts, newest first", "webhooks",
       params=[param("endpoint", "query", {"type": "string"}, "only this endpoint"),
               param("event", "query", {"type": "string"}, "only this event id"),
               param("delivery", "query", {"type": "string"}, "only this delivery"),
               param("status", "query", {"enum": ["succeeded", "failed"]}, "only 2xx answers, or the others"),
               BEFORE, LIMIT],
       ok={200: "AttemptPage"}, errors=(400, 401, 403), auth="admin"),
    # Browser client and dashboard
    op("get", "/v1/client/pushhub.js", "The browser client (an ES module)", "client",
       ok={200: _text("text/javascript"), 304: None}),
    op("get", "/v1/client/pushhub.d.ts", "The browser client's TypeScript declarations", "client",
       ok={200: _text("application/typescript"), 304: None}),
    op("get", "/dashboard", "The operator dashboard page", "dashboard", ok={200: _text("text/html"), 304: None}),
    op("get", "/dashboard/dashboard.js", "The dashboard's script", "dashboard",
       ok={200: _text("text/javascript"), 304: None}),
    *(op("get", f"/dashboard/dashboard-{part}.js", f"The dashboard's {what}", "dashboard",
         ok={200: _text("text/javascript"), 304: None})
      for part, what in [("dom", "plumbing module"), ("chart", "chart module"), ("log", "channels and events module"),
                         ("webhooks", "endpoints module")]),
    op("get", "/dashboard/dashboard.css", "The dashboard's style sheet", "dashboard",
       ok={200: _text("text/css"), 304: None}),
    op("post", "/v1/dashboard/session", "Sign the dashboard in with an admin key (sets a cookie)", "dashboard",
       ok={204: None}, errors=ADMIN_ERRORS, auth="admin"),
    op("delete", "/v1/dashboard/session", "Sign the dashboard out", "dashboard", ok={204: None}),
    op("get", "/v1/dashboard/stats", "Stats as a stream of `stats` SSE events, once a second", "dashboard",
       ok={200: ("text/event-stream", {"type": "string"})}, errors=(401, 403), auth="admin", streaming=True),
    op("get", "/v1/dashboard/sse", "The event stream of /v1/sse, authorised by the dashboard cookie", "dashboard",
       params=SUBSCRIBE_QUERY, ok={200: ("text/event-stream", {"type": "string"})}, errors=(400, 401, 403),
       auth="admin", streaming=True),
]
