"""``POST /v1/channels/{channel}/events``, the publish hot path, as a plain ASGI app.

The hub hands every such request straight to this app (:meth:`pushhub.app.PushHub.__call__`),
past Starlette's middleware and router, unless it carries an ``Origin``: then it takes the whole
stack (the CORS middleware answers for it) to the same app, routed as any other. So the app does
itself what that stack does for it: it reads the channel from the path, answers errors in the hub's
error shape, counts its answers in the request metrics, and, on the direct path, says
``Vary: Origin`` as the CORS middleware says to a request without an ``Origin``.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from starlette.types import Message, Receive, Scope, Send

from . import idempotency
from .auth import Access, bearer
from .backends.base import Once
from .channels import validate_channel
from .errors import PushHubError
from .events import parse_publish_body
from .http_api import error_json, positioned, receive_body
from .hub import Hub

PATH = "/v1/channels/{channel}/events"
PATH_PATTERN = re.compile(r"/v1/channels/([^/]+)/events")
JSON = (b"content-type", b"application/json")
VARY = ((b"vary", b"Origin"),)
Count = Callable[[str, int], None]  # (method, status) of an answer


class PublishEndpoint:
    def __init__(self, hub: Hub, access: Access, max_body_bytes: int, window: float, count: Count) -> None:
        """``window``: seconds an ``Idempotency-Key`` is remembered."""
        self.hub = hub
        self.access = access
        self.max_body_bytes = max_body_bytes
        self.window = window
        self.count = count

    def takes(self, scope: Scope) -> bool:
        """Whether the hub may hand ``scope`` straight to :meth:`direct`."""
        return (scope["type"] == "http" and scope["method"] == "POST" and PATH_PATTERN.fullmatch(scope["path"])
                is not None and all(name != b"origin" for name, _ in scope["headers"]))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.serve(scope, receive, send, ())

    async def direct(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.serve(scope, receive, send, VARY)

    async def serve(self, scope: Scope, receive: Receive, send: Send,
                    extra: tuple[tuple[bytes, bytes], ...]) -> None:
        try:
            status, body, headers = await self.answer(scope, receive)
        except PushHubError as exc:
            status, body, headers = exc.status, error_json(exc), []
        except Exception:
            self.count("POST", 500)
            raise
        self.count("POST", status)
        start: Message = {"type": "http.response.start", "status": status,
                          "headers": [*headers, (b"content-length", b"%d" % len(body)), JSON, *extra]}
        await send(start)
        await send({"type": "http.response.body", "body": body})

    async def answer(self, scope: Scope, receive: Receive) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        authorization = length = key = None
        for name, value in scope["headers"]:
            if name == b"authorization" and authorization is None:
                authorization = value.decode("latin-1")
            elif name == b"content-length" and length is None:
                length = value.decode("latin-1")
            elif name == b"idempotency-key" and key is None:
                key = value.decode("latin-1")
        grant = self.access.grant(bearer(authorization))
        match = PATH_PATTERN.fullmatch(scope["path"])
        assert match is not None
        channel = validate_channel(match[1])
        self.access.check_publish(grant, channel)
        raw = await receive_body(receive, length or "", self.max_body_bytes)
        if key is not None:
            idempotency.check_key(key)
        drafts, batch = parse_publish_body(raw)
        if key is None:
            events = await self.hub.publish(channel, drafts)
            return 202, idempotency.answer([positioned(e) for e in events], batch), []
        fingerprint = idempotency.fingerprint(channel, raw)
        once = Once(grant.publisher, key, idempotency.record(fingerprint, [d.id for d in drafts], batch), self.window)
        published = await self.hub.publish_once(channel, drafts, once)
        if published.replayed is None:
            answer = idempotency.answer([positioned(e) for e in published.events], batch)
        else:
            answer = idempotency.answer(*idempotency.replay(channel, published.replayed, fingerprint, key))
        return 202, answer, [(b"idempotent-replayed", b"false" if published.replayed is None else b"true")]
