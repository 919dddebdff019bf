"""``POST /v1/channels/{channel}/events``, the publish hot path (a :class:`~pushhub.direct.DirectEndpoint`)."""

from __future__ import annotations

import re

from starlette.types import Scope

from . import idempotency
from .auth import Access, bearer
from .backends.base import Once
from .channels import validate_channel
from .direct import Body, Count, DirectEndpoint, Headers, whole_body
from .events import parse_publish_body
from .http_api import positioned
from .hub import Hub
from .provenance import API, Origin


class PublishEndpoint(DirectEndpoint):
    path = "/v1/channels/{channel}/events"
    pattern = re.compile(r"/v1/channels/([^/]+)/events")

    def __init__(self, hub: Hub, access: Access, max_body_bytes: int, window: float, count: Count) -> None:
        """``window``: seconds an ``Idempotency-Key`` is remembered."""
        super().__init__(count)
        self.hub = hub
        self.access = access
        self.max_body_bytes = max_body_bytes
        self.window = window

    def limit(self, match: re.Match[str]) -> int:
        return self.max_body_bytes

    async def answer(self, scope: Scope, match: re.Match[str], body: Body) -> tuple[int, bytes, Headers]:
        authorization = length = key = None
        for name, value in scope["headers"]:
            if name == b"authorization" and authorization is None:
                authorization = value.decode("latin-1")
            elif name == b"content-length" and length is None:
                length = value.decode("latin-1")
            elif name == b"idempotency-key" and key is None:
                key = value.decode("latin-1")
        grant = self.access.grant(bearer(authorization))
        channel = validate_channel(match[1])
        self.access.check_publish(grant, channel)
        raw = await whole_body(body, length or "", self.max_body_bytes)
        if key is not None:
            idempotency.check_key(key)
        drafts, batch = parse_publish_body(raw)
        origin = Origin(API, grant.publisher)
        if key is None:
            events = await self.hub.publish(channel, drafts, origin)
            return 202, idempotency.answer([positioned(e) for e in events], batch), []
        fingerprint = idempotency.fingerprint(channel, raw)
        once = Once(grant.publisher, key, idempotency.record(fingerprint, [d.id for d in drafts], batch), self.window)
        published = await self.hub.publish_once(channel, drafts, once, origin)
        if published.replayed is None:
            answer = idempotency.answer([positioned(e) for e in published.events], batch)
        else:
            answer = idempotency.answer(*idempotency.replay(channel, published.replayed, fingerprint, key))
        return 202, answer, [(b"idempotent-replayed", b"false" if published.replayed is None else b"true")]
