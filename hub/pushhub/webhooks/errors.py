"""Errors of the webhook subsystem (all under :class:`pushhub.errors.PushHubError`).

BadRequest
├── InvalidEndpoint   an endpoint definition breaks a rule (HTTP 422)
└── NotFound          no endpoint or delivery with that id (HTTP 404)
PushHubError
└── Blocked           a delivery would reach a forbidden address or scheme (recorded as the attempt's error)
"""

from __future__ import annotations

from ..errors import BadRequest, PushHubError


class InvalidEndpoint(BadRequest):
    status = 422
    code = "invalid_endpoint"


class NotFound(BadRequest):
    status = 404
    code = "not_found"


class Blocked(PushHubError):
    status = 422
    code = "blocked_address"
