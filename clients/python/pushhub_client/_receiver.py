"""A webhook receiver: verification plus deduplication by ``webhook-id``, as a function and as ASGI
middleware."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, MutableMapping, Sequence
from typing import Any

from ._dedupe import DedupeStore, MemoryDedupeStore
from ._errors import DuplicateDelivery, WebhookRejected
from ._webhook import DEFAULT_TOLERANCE, Webhook, _verify, keys_of

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class WebhookReceiver:
    """Accepts each authentic, fresh delivery once.

    ``store`` remembers processed ids (default: in memory, three days); ``clock`` gives the current
    Unix time for the timestamp check.
    """

    def __init__(self, secrets: str | bytes | Sequence[str | bytes], *, tolerance: float = DEFAULT_TOLERANCE,
                 store: DedupeStore | None = None, clock: Callable[[], float] = time.time) -> None:
        self.keys = keys_of(secrets)
        self.tolerance = tolerance
        self.store: DedupeStore = store if store is not None else MemoryDedupeStore()
        self.clock = clock

    async def verify(self, headers: Mapping[str, str], body: bytes) -> Webhook:
        """Verify a delivery and claim its id; raises :class:`DuplicateDelivery` for an id already
        claimed. Call :meth:`release` if processing then fails, so the retry is accepted."""
        webhook = _verify(self.keys, headers, body, self.tolerance, self.clock())
        if not await self.store.claim(webhook.id):
            raise DuplicateDelivery(f"webhook {webhook.id} was already received")
        return webhook

    async def release(self, webhook: Webhook) -> None:
        await self.store.release(webhook.id)

    @contextlib.asynccontextmanager
    async def receive(self, headers: Mapping[str, str], body: bytes) -> AsyncIterator[Webhook]:
        """``async with receiver.receive(headers, body) as webhook:`` — the id is released again if
        the block raises."""
        webhook = await self.verify(headers, body)
        try:
            yield webhook
        except BaseException:
            await self.release(webhook)
            raise


async def _respond(send: Send, status: int, payload: dict[str, Any]) -> None:
    body = json.dumps(payload).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]})
    await send({"type": "http.response.body", "body": body})


class WebhookMiddleware:
    """ASGI middleware that verifies deliveries before they reach ``app``.

    ``POST`` requests to one of ``paths`` (every ``POST`` when ``paths`` is ``None``) are read whole
    (at most ``max_body_bytes``, else 413) and verified: a rejected delivery is answered with 400 or
    401 and a JSON error, a duplicate with 200 ``{"status": "duplicate"}``; neither reaches ``app``.
    An accepted one reaches ``app`` with its body replayed and the :class:`Webhook` in
    ``scope["state"]["webhook"]`` (``request.state.webhook`` in Starlette). If ``app`` raises or
    answers 5xx, the id is released so that the sender's retry is processed.
    """

    def __init__(self, app: ASGIApp, receiver: WebhookReceiver, *, paths: Sequence[str] | None = None,
                 max_body_bytes: int = 1 << 20) -> None:
        self.app = app
        self.receiver = receiver
        self.paths = None if paths is None else frozenset(paths)
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or (
                self.paths is not None and scope["path"] not in self.paths):
            await self.app(scope, receive, send)
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > self.max_body_bytes:
                await _respond(send, 413, {"error": {"code": "payload_too_large",
                                                     "message": f"body is larger than {self.max_body_bytes} bytes"}})
                return
            if not message.get("more_body", False):
                break
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            webhook = await self.receiver.verify(headers, bytes(body))
        except DuplicateDelivery:
            await _respond(send, 200, {"status": "duplicate"})
            return
        except WebhookRejected as exc:
            await _respond(send, exc.status, {"error": {"code": exc.code, "message": exc.message}})
            return
        await self._forward(scope, receive, send, webhook)

    async def _forward(self, scope: Scope, receive: Receive, send: Send, webhook: Webhook) -> None:
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": webhook.body, "more_body": False}

        status = 500

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        scope.setdefault("state", {})["webhook"] = webhook
        try:
            await self.app(scope, replay, watch)
        except BaseException:
            await self.receiver.release(webhook)
            raise
        if status >= 500:
            await self.receiver.release(webhook)
