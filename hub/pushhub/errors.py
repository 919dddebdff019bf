"""The one exception root of pushhub.

PushHubError
├── BadRequest          input from a client is malformed (HTTP 4xx, WebSocket error message)
│   ├── BadChannel      a channel name or pattern breaks the documented rules
│   ├── BadCursor       a resume cursor cannot be decoded
│   ├── BadEvent        a published event is not a valid event
│   ├── PayloadTooLarge a request body exceeds its limit (413; pushhub.http_api)
│   ├── ClientGone      the client left before sending the whole body (pushhub.http_api)
│   └── KeyReused       an Idempotency-Key came back with another request (422; pushhub.idempotency)
├── Unauthorized        credentials are missing or wrong
│   ├── TokenExpired    a valid token past its ``exp`` (pushhub.auth)
│   └── SignatureError  a webhook signature is missing or wrong (pushhub.ingest.verify)
│       └── StaleTimestamp  its signed timestamp is outside the tolerance
├── Forbidden           credentials are valid but do not allow the action
├── UnknownSource       no ingest source has that name (404; pushhub.ingest.endpoint)
├── Unavailable         the storage backend cannot accept or serve data right now (HTTP 503)
│   └── DataVersionError  stored data is in a format newer than this release understands
└── MissingExtra        a configured feature needs an extra that is not installed (pushhub.extras)
"""

from __future__ import annotations


class PushHubError(Exception):
    """Root of every error pushhub raises on purpose."""

    status = 500
    code = "internal_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(PushHubError):
    status = 400
    code = "bad_request"


class BadChannel(BadRequest):
    code = "bad_channel"


class BadCursor(BadRequest):
    code = "bad_cursor"


class BadEvent(BadRequest):
    status = 422
    code = "bad_event"


class Unauthorized(PushHubError):
    status = 401
    code = "unauthorized"


class Forbidden(PushHubError):
    status = 403
    code = "forbidden"


class Unavailable(PushHubError):
    status = 503
    code = "unavailable"


class DataVersionError(Unavailable):
    code = "data_version"


class MissingExtra(PushHubError):
    code = "missing_extra"
