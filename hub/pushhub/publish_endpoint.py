"""``POST /v1/channels/{channel}/events``, the publish hot path (a :class:`~pushhub.direct.DirectEndpoint`).

On the lean route a request is checked as soon as its body is in and answered from the group commit
that stores its events (:meth:`pushhub.hub.Hub.publish_soon`): no task, no coroutine, and the answer
is written in the same loop turn as the commit.
"""

from __future__ import annotations

import functools
import re
from typing import NamedTuple

from starlette.types import Scope

from . import idempotency
from .auth import Access, Grant, bearer
from .backends.base import Once, Published
from .channels import validate_channel
from .direct import Body, Count, DirectEndpoint, Headers, lean_fields, whole_body
from .errors import PushHubError
from .events import EventDraft, parse_publish_body
from .http11 import LeanReply
from .http_api import positioned
from .hub import Hub
from .provenance import API, Origin


class Head(NamedTuple):
    """What the request's path and headers say."""

    grant: Grant
    channel: str
    length: str
    key: str | None  # its Idempotency-Key


class Request(NamedTuple):
    channel: str
    drafts: list[EventDraft]
    batch: bool
    origin: Origin
    key: str | None
    fingerprint: str | None  # of a request with a key
    once: Once | None


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
        head = self._head(scope, match)
        request = self._request(head, await whole_body(body, head.length, self.max_body_bytes))
        published = await self.hub.publish_once(request.channel, request.drafts, request.once, request.origin)
        return self._answer(request, published)

    def respond(self, scope: Scope, body: bytes, reply: LeanReply) -> None:
        match = self.pattern.fullmatch(scope["path"])
        assert match is not None
        try:
            request = self._request(self._head(scope, match), body)
        except PushHubError as exc:
            status, content, headers = self.refusal(match, exc)
            reply((status, lean_fields(headers), content))
            return
        except Exception:
            self.count("POST", 500)
            raise
        self.hub.publish_soon(request.channel, request.drafts, request.once, request.origin,
                              functools.partial(self._published, match, request, reply))

    def _published(self, match: re.Match[str], request: Request, reply: LeanReply,
                   result: Published | BaseException) -> None:
        """The lean route's answer, once the events are stored (or could not be); it raises nothing."""
        try:
            if isinstance(result, BaseException):
                raise result
            status, content, headers = self._answer(request, result)
        except PushHubError as exc:
            status, content, headers = self.refusal(match, exc)
        except BaseException as exc:
            self.count("POST", 500)
            reply(exc)
            return
        else:
            self.count("POST", status)
        reply((status, lean_fields(headers), content))

    def _head(self, scope: Scope, match: re.Match[str]) -> Head:
        """The request's grant to publish to its channel (checked), before its body is read."""
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
        return Head(grant, channel, length or "", key)

    def _request(self, head: Head, raw: bytes) -> Request:
        if head.key is not None:
            idempotency.check_key(head.key)
        drafts, batch = parse_publish_body(raw)
        origin = Origin(API, head.grant.publisher)
        if head.key is None:
            return Request(head.channel, drafts, batch, origin, None, None, None)
        fingerprint = idempotency.fingerprint(head.channel, raw)
        once = Once(head.grant.publisher, head.key, idempotency.record(fingerprint, [d.id for d in drafts], batch),
                    self.window)
        return Request(head.channel, drafts, batch, origin, head.key, fingerprint, once)

    def _answer(self, request: Request, published: Published) -> tuple[int, bytes, Headers]:
        if request.key is None:
            return 202, idempotency.answer([positioned(e) for e in published.events], request.batch), []
        if published.replayed is None:
            answer = idempotency.answer([positioned(e) for e in published.events], request.batch)
        else:
            answer = idempotency.answer(*idempotency.replay(request.channel, published.replayed, request.fingerprint,
                                                            request.key))
        return 202, answer, [(b"idempotent-replayed", b"false" if published.replayed is None else b"true")]
