"""Receive pushhub's webhooks in a Starlette app: every delivery is verified (Standard Webhooks
signature, timestamp within 5 minutes) and deduplicated by webhook-id before the handler runs.

    PUSHHUB_WEBHOOK_SECRET=whsec_... uvicorn receiver:app --port 9000
    # several processes? share the dedupe store: REDIS_URL=redis://127.0.0.1:6379/0
"""

from __future__ import annotations

import os

from pushhub_client import DedupeStore, MemoryDedupeStore, RedisDedupeStore, Webhook, WebhookMiddleware, WebhookReceiver
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


def dedupe_store() -> DedupeStore:
    if os.environ.get("REDIS_URL"):
        import redis.asyncio

        return RedisDedupeStore(redis.asyncio.Redis.from_url(os.environ["REDIS_URL"]))
    return MemoryDedupeStore()


receiver = WebhookReceiver(os.environ["PUSHHUB_WEBHOOK_SECRET"].split(), store=dedupe_store())
processed: list[str] = []


async def pushhub_webhook(request: Request) -> JSONResponse:
    webhook: Webhook = request.state.webhook  # verified, fresh, first delivery of this id
    payload = webhook.json()
    processed.append(webhook.id)
    print(f"webhook {webhook.id}: {payload}")
    return JSONResponse({"ok": True})  # a 5xx (or an exception) releases the id: the retry is processed


app = Starlette(
    routes=[Route("/webhooks/pushhub", pushhub_webhook, methods=["POST"])],
    middleware=[Middleware(WebhookMiddleware, receiver=receiver, paths=["/webhooks/pushhub"])],
)
