"""The JSON Schemas (2020-12, as OpenAPI 3.1 uses them) of everything the hub reads and writes:
HTTP bodies, WebSocket messages in both directions, and the data of each SSE event.

They describe what the code in ``http_api``, ``events``, ``protocol``, ``webhooks`` and ``ingest``
accepts and answers; ``tests/test_openapi.py`` holds the hub to them (schemathesis for HTTP, real
WebSocket and SSE messages validated against the ``Ws*`` and ``Sse*`` schemas).
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(properties: dict[str, Schema], *required: str, closed: bool = False, **extra: Any) -> Schema:
    schema: Schema = {"type": "object", "properties": properties, "required": list(required), **extra}
    if closed:
        schema["additionalProperties"] = False
    return schema


STRING: Schema = {"type": "string"}
INTEGER: Schema = {"type": "integer"}
NUMBER: Schema = {"type": "number"}
BOOLEAN: Schema = {"type": "boolean"}
ANY: Schema = {}
SECONDS: Schema = {"type": "number", "description": "Unix time, seconds"}


def nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


HEADERS: Schema = {"type": "object", "additionalProperties": {"type": "string"}}
CHANNEL: Schema = {"type": "string", "pattern": r"^[A-Za-z0-9_\-.:]{1,128}$", "examples": ["orders"]}
CHANNEL_PATTERN: Schema = {"type": "string", "pattern": r"^[A-Za-z0-9_\-.:*]{1,128}$", "examples": ["orders:*"]}
EVENT_TYPE: Schema = {"type": "string", "pattern": r"^[A-Za-z0-9_\-.:/]{1,128}$", "examples": ["payment.created"]}
TYPE_PATTERN: Schema = {"type": "string", "pattern": r"^[A-Za-z0-9_\-.:/*]{1,128}$", "examples": ["payment.*"]}
CURSOR: Schema = {"type": "string", "description": "Opaque resume position; `EPOCH.OFFSET` for one channel",
                  "examples": ["k3j9x2ab.41"]}
EPOCH: Schema = {"type": "string", "pattern": "^[a-z0-9]{1,32}$"}
OFFSET: Schema = {"type": "integer", "minimum": 0}
TIME: Schema = {"type": "string", "format": "date-time", "examples": ["2026-01-31T12:00:00.000Z"]}
MESSAGE_ID: Schema = {"type": ["integer", "string"], "description": "Echoed in the reply"}
DURATION: Schema = {"type": "string", "pattern": r"^\d+(\.\d+)?(ms|s|m|h|d)$", "examples": ["24h"]}

HTTP: dict[str, Schema] = {
    "Error": obj({"error": obj({"code": {**STRING, "examples": ["bad_event"]}, "message": STRING},
                               "code", "message")}, "error",
                 description="Every error answer, with a stable machine-readable `code`"),
    "EventInput": obj({
        "type": EVENT_TYPE,
        "id": {"type": "string", "minLength": 1, "maxLength": 128,
               "description": "Your id for the event; generated (`evt_…`) when absent"},
        "time": {**TIME, "description": "RFC 3339 with a UTC offset; the hub's clock when absent"},
        "data": ANY,
        "meta": {"type": "object"},
    }, "type", closed=True),
    "EventBatch": obj({"events": {"type": "array", "minItems": 1, "items": ref("EventInput")}}, "events",
                      closed=True),
    "Positioned": obj({"id": STRING, "channel": CHANNEL, "epoch": EPOCH, "offset": OFFSET, "cursor": CURSOR},
                      "id", "channel", "epoch", "offset", "cursor"),
    "PositionedBatch": obj({"events": {"type": "array", "items": ref("Positioned")}}, "events"),
    "Event": obj({"id": STRING, "channel": CHANNEL, "type": EVENT_TYPE, "time": TIME, "data": ANY,
                  "meta": {"type": "object"}, "epoch": EPOCH, "offset": OFFSET},
                 "id", "channel", "type", "time", "data", "meta", "epoch", "offset"),
    "History": obj({"channel": CHANNEL, "reset": nullable(STRING), "cursor": CURSOR, "more": BOOLEAN,
                    "events": {"type": "array", "items": ref("Event")}},
                   "channel", "reset", "cursor", "more", "events"),
    "ChannelState": obj({"channel": CHANNEL, "epoch": EPOCH, "top": OFFSET, "earliest": OFFSET, "cursor": CURSOR},
                        "channel", "epoch", "top", "earliest", "cursor"),
    "Health": obj({"status": {"enum": ["ok", "unavailable"]}, "connections": INTEGER}, "status"),
    "Readiness": obj({"status": {"enum": ["ready", "unready"]},
                      "checks": {"type": "object", "additionalProperties": {"type": "string"},
                                 "description": "Each check's result: `ok`, or why it failed"}},
                     "status", "checks"),
    "Stats": obj({"published": INTEGER, "delivered": INTEGER, "resets": INTEGER, "slow_consumers": INTEGER,
                  "rates": {"type": "array", "items": obj({"time": NUMBER, "published": NUMBER,
                                                           "delivered": NUMBER}, "time", "published",
                                                          "delivered")}},
                 "published", "delivered", "rates"),
    "IngestAccepted": obj({"id": STRING, "channel": CHANNEL, "epoch": EPOCH, "offset": OFFSET, "cursor": CURSOR,
                           "duplicate": BOOLEAN, "delivery_id": nullable(STRING)},
                          "id", "channel", "cursor", "duplicate", "delivery_id"),
    "SlackChallenge": obj({"challenge": ANY}, "challenge"),
    "IngestSources": obj({"sources": {"type": "array", "items": obj({"name": STRING, "scheme": STRING,
                                                                     "channel": CHANNEL, "url": STRING},
                                                                    "name", "scheme", "channel", "url")},
                          "dedupe_window": NUMBER}, "sources", "dedupe_window"),
    "EndpointInput": obj({
        "url": {"type": "string", "format": "uri", "examples": ["https://example.com/hooks"]},
        "description": {"type": "string", "maxLength": 1000},
        "channels": {"type": "array", "items": CHANNEL_PATTERN},
        "types": {"type": "array", "items": TYPE_PATTERN},
        "secret": {"type": "string", "pattern": "^whsec_", "description": "generated when absent"},
        "enabled": BOOLEAN,
        "rate_limit": nullable({"type": "number", "exclusiveMinimum": 0, "description": "requests per second"}),
        "max_concurrency": nullable({"type": "integer", "minimum": 1}),
        "ordered": BOOLEAN,
        "headers": {"type": "object", "additionalProperties": {"type": "string"}},
        "signature": {"enum": ["standard", "simple"]},
        "retry_schedule": nullable({"type": "string", "examples": ["5s,5m,30m,2h"]}),
    }, "url", closed=True),
    "Endpoint": obj({
        "id": {"type": "string", "examples": ["ep_3kq0bV8e2dWk1Z9x"]}, "url": STRING, "description": STRING,
        "channels": {"type": "array", "items": STRING}, "types": {"type": "array", "items": STRING},
        "enabled": BOOLEAN, "disabled_reason": nullable(STRING), "rate_limit": nullable(NUMBER),
        "max_concurrency": nullable(INTEGER), "ordered": BOOLEAN,
        "headers": {"type": "object", "additionalProperties": {"type": "string"}}, "signature": STRING,
        "retry_schedule": nullable(STRING), "failing_since": nullable(NUMBER), "created_at": SECONDS,
        "updated_at": SECONDS, "old_secrets_expire_at": {"type": "array", "items": NUMBER},
        "secret": {"type": "string", "description": "absent from listings"},
    }, "id", "url", "channels", "types", "enabled", "created_at"),
    "EndpointList": obj({"data": {"type": "array", "items": ref("Endpoint")}}, "data"),
    "RotateSecret": obj({"secret": {"type": "string", "pattern": "^whsec_"}, "overlap": DURATION}, closed=True),
    "Replay": {"description": "`{failed: true}`, `{since}`, `{channel, after}` or `{channel, since}`",
               **obj({"failed": {"const": True}, "since": TIME, "channel": CHANNEL, "after": CURSOR},
                     closed=True, minProperties=1)},
    "Replayed": obj({"replayed": INTEGER}, "replayed"),
    "Delivery": obj({
        "id": STRING, "endpoint_id": STRING, "event_id": STRING, "event_type": STRING, "channel": CHANNEL,
        "cursor": CURSOR, "status": {"enum": ["pending", "succeeded", "failed"]}, "attempts": INTEGER,
        "next_attempt_at": nullable(NUMBER), "created_at": SECONDS, "updated_at": SECONDS,
        "last_status": nullable(INTEGER), "last_error": nullable(STRING), "seq": INTEGER,
    }, "id", "endpoint_id", "event_id", "channel", "cursor", "status", "attempts"),
    "Attempt": obj({"id": INTEGER, "delivery_id": STRING, "endpoint_id": STRING, "event_id": STRING,
                    "number": INTEGER, "at": SECONDS, "latency_ms": NUMBER, "status": nullable(INTEGER),
                    "response": STRING, "error": nullable(STRING), "request_headers": nullable(HEADERS)},
                   "id", "delivery_id", "endpoint_id", "event_id", "number", "at"),
    "DeliveryDetail": {"allOf": [ref("Delivery"),
                                 obj({"attempts_log": {"type": "array", "items": ref("Attempt")}}, "attempts_log")]},
    "DeliveryPage": obj({"data": {"type": "array", "items": ref("Delivery")}, "next_before": nullable(INTEGER)},
                        "data", "next_before"),
    "EndpointStats": obj({
        "endpoint_id": STRING, "since": NUMBER, "until": NUMBER,
        "minutes": {"type": "array", "items": obj({"minute": INTEGER, "succeeded": INTEGER, "failed": INTEGER,
                                                   "mean_latency_ms": nullable(NUMBER)},
                                                  "minute", "succeeded", "failed", "mean_latency_ms")},
        "pending": INTEGER, "pending_more": BOOLEAN, "next_attempt_at": nullable(NUMBER),
    }, "endpoint_id", "since", "until", "minutes", "pending", "pending_more", "next_attempt_at"),
    "TestSend": obj({"event_id": STRING, "status": nullable(INTEGER), "latency_ms": NUMBER, "response": STRING,
                     "error": nullable(STRING), "request_headers": nullable(HEADERS), "succeeded": BOOLEAN},
                    "event_id", "status", "latency_ms", "response", "error", "succeeded",
                    description="What the endpoint answered to one signed request; nothing is recorded"),
    "ChannelInfo": obj({"channel": CHANNEL, "epoch": EPOCH, "top": OFFSET, "earliest": OFFSET, "cursor": CURSOR,
                        "per_minute": INTEGER, "subscriptions": INTEGER},
                       "channel", "epoch", "top", "earliest", "cursor", "per_minute", "subscriptions"),
    "ChannelList": obj({"data": {"type": "array", "items": ref("ChannelInfo")}, "next_after": nullable(CHANNEL)},
                       "data", "next_after"),
    "Origin": obj({"via": {"enum": ["api", "websocket", "ingest"]},
                   "publisher": {**STRING, "description": "the publisher's identity (key:SHA-256 or token:sub)"},
                   "source": STRING, "scheme": STRING, "delivery_id": nullable(STRING)}, "via",
                  description="Where an event came from (admins only)"),
    "IndexedEvent": obj({"event": ref("Event"), "cursor": CURSOR, "origin": nullable(ref("Origin")),
                         "repeats": {**INTEGER, "description": "repeats of its request answered from its record"}},
                        "event", "cursor", "origin", "repeats"),
    "EventSearch": obj({"data": {"type": "array", "items": ref("IndexedEvent")}}, "data"),
    "EventPage": obj({"id": STRING, "found": {"type": "array", "items": ref("IndexedEvent")},
                      "deliveries": {"type": "array", "items": ref("DeliveryDetail")}}, "id", "found", "deliveries"),
    "AttemptPage": obj({"data": {"type": "array", "items": ref("Attempt")}, "next_before": nullable(INTEGER)},
                       "data", "next_before"),
}


def _op(op: str, properties: dict[str, Schema], *required: str, **extra: Any) -> Schema:
    return obj({"op": {"const": op}, **properties}, "op", *required, **extra)


WEBSOCKET: dict[str, Schema] = {
    "WsSubscribe": _op("subscribe", {"id": MESSAGE_ID, "channel": CHANNEL,
                                     "types": {"type": "array", "items": TYPE_PATTERN}, "cursor": CURSOR}, "channel"),
    "WsUnsubscribe": _op("unsubscribe", {"id": MESSAGE_ID, "channel": CHANNEL}, "channel"),
    "WsPublish": _op("publish", {"id": MESSAGE_ID, "channel": CHANNEL, "event": ref("EventInput")},
                     "channel", "event"),
    "WsPing": _op("ping", {"id": MESSAGE_ID}),
    "WsClientMessage": {"description": "What a client sends on /v1/ws (JSON text, or msgpack with "
                                       "the `pushhub.msgpack` subprotocol)",
                        "oneOf": [ref("WsSubscribe"), ref("WsUnsubscribe"), ref("WsPublish"), ref("WsPing")]},
    "WsSubscribed": _op("subscribed", {"id": nullable(MESSAGE_ID), "channel": CHANNEL, "cursor": CURSOR},
                        "channel", "cursor"),
    "WsUnsubscribed": _op("unsubscribed", {"id": nullable(MESSAGE_ID), "channel": CHANNEL}, "channel"),
    "WsPublished": _op("published", {"id": nullable(MESSAGE_ID), "channel": CHANNEL, "event_id": STRING,
                                     "epoch": EPOCH, "offset": OFFSET, "cursor": CURSOR},
                       "channel", "event_id", "epoch", "offset", "cursor"),
    "WsPong": _op("pong", {"id": nullable(MESSAGE_ID)}),
    "WsEvent": _op("event", {"channel": CHANNEL, "cursor": CURSOR, "event": ref("Event")},
                   "channel", "cursor", "event"),
    "WsReset": _op("reset", {"channel": CHANNEL, "reason": STRING, "cursor": CURSOR}, "channel", "reason", "cursor"),
    "WsError": _op("error", {"id": nullable(MESSAGE_ID), "code": STRING, "message": STRING}, "code", "message"),
    "WsServerMessage": {"description": "What the hub sends on /v1/ws",
                        "oneOf": [ref(name) for name in ("WsSubscribed", "WsUnsubscribed", "WsPublished", "WsPong",
                                                         "WsEvent", "WsReset", "WsError")]},
}

SSE: dict[str, Schema] = {
    "SseMessage": {"description": "`event: message` (the default): the data is one event; its `id:` is the "
                                  "cursor to resume after it", **ref("Event")},
    "SseReset": {"description": "`event: reset`: the stream skipped history (trimmed or epoch changed)",
                 **obj({"channel": CHANNEL, "reason": STRING, "cursor": CURSOR}, "channel", "reason", "cursor")},
    "SseDisconnect": {"description": "`event: disconnect`: the last event of a stream the hub ends; "
                                     "`reconnect` says whether to come back",
                      **obj({"code": INTEGER, "reason": STRING, "reconnect": BOOLEAN}, "code", "reason",
                            "reconnect")},
}

ALL: dict[str, Schema] = {**HTTP, **WEBSOCKET, **SSE}
