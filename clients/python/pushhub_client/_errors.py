"""The one exception root of the client.

PushHubClientError
├── HubUnreachable       the hub could not be reached (connection refused, timed out, cut off)
├── RequestRejected      the hub answered with an error status (``status``, ``code``, ``message``)
├── Disconnected         the hub ended a stream and advised not to reconnect (``code``, ``reason``)
└── WebhookRejected      a webhook delivery must not be processed (``status`` to answer with)
    ├── MissingHeaders   a ``webhook-*`` header is absent or malformed
    ├── InvalidSignature no signature matches the body under any of the secrets
    ├── StaleTimestamp   ``webhook-timestamp`` is too old or too far in the future
    └── DuplicateDelivery this ``webhook-id`` was already processed
"""

from __future__ import annotations


class PushHubClientError(Exception):
    """Root of every error the client raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class HubUnreachable(PushHubClientError):
    pass


class RequestRejected(PushHubClientError):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.detail = message


class Disconnected(PushHubClientError):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"the hub closed the stream with {code} {reason} and advised not to reconnect")
        self.code = code
        self.reason = reason


class WebhookRejected(PushHubClientError):
    status = 400
    code = "webhook_rejected"


class MissingHeaders(WebhookRejected):
    code = "missing_headers"


class InvalidSignature(WebhookRejected):
    status = 401
    code = "invalid_signature"


class StaleTimestamp(WebhookRejected):
    code = "stale_timestamp"


class DuplicateDelivery(WebhookRejected):
    status = 200
    code = "duplicate_delivery"
