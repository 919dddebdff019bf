"""pushhub's Python client: subscribe (SSE or WebSocket) with exact resume, publish, read history,
and receive pushhub's Standard Webhooks deliveries safely."""

from ._backoff import Backoff
from ._client import Client
from ._dedupe import DedupeStore, MemoryDedupeStore, RedisDedupeStore
from ._errors import (
    Disconnected,
    DuplicateDelivery,
    HubUnreachable,
    InvalidSignature,
    MissingHeaders,
    PushHubClientError,
    RequestRejected,
    StaleTimestamp,
    WebhookRejected,
)
from ._models import Event, HistoryPage, Published, Reset
from ._receiver import WebhookMiddleware, WebhookReceiver
from ._signature import sign
from ._sse_subscription import SSESubscription
from ._subscription import Subscription
from ._webhook import Webhook, verify_webhook
from ._ws_subscription import WSSubscription

__version__ = "0.1.0"

__all__ = [
    "Backoff",
    "Client",
    "DedupeStore",
    "Disconnected",
    "DuplicateDelivery",
    "Event",
    "HistoryPage",
    "HubUnreachable",
    "InvalidSignature",
    "MemoryDedupeStore",
    "MissingHeaders",
    "Published",
    "PushHubClientError",
    "RedisDedupeStore",
    "RequestRejected",
    "Reset",
    "SSESubscription",
    "StaleTimestamp",
    "Subscription",
    "WSSubscription",
    "Webhook",
    "WebhookMiddleware",
    "WebhookReceiver",
    "WebhookRejected",
    "__version__",
    "sign",
    "verify_webhook",
]
