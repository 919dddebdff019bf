"""The live dashboard: a static page at ``GET /dashboard`` and the admin-only endpoints behind it.

The page (``hub/pushhub/static/dashboard*``, plain ES modules and CSS) is public; every piece of data it
shows needs an admin key, which the operator types once. The page keeps it in sessionStorage, sends
it as ``Authorization: Bearer`` on its fetches of the admin API, and trades it once for a cookie:

- ``POST /v1/dashboard/session`` (``Authorization: Bearer <admin key>``): ``204`` with the
  ``pushhub_dashboard`` cookie (HttpOnly, ``SameSite=Strict``, path ``/v1/dashboard/``), a ticket
  signed by the admin key (:mod:`pushhub.dashboard_ticket`); ``DELETE`` removes it.
- ``GET /v1/dashboard/stats``: an event stream of ``stats`` events, one a second, each the
  ``/v1/stats`` snapshot whose ``rates`` holds only the samples the stream has not sent yet.
- ``GET /v1/dashboard/sse?channel=…``: ``/v1/sse`` with the admin key of the cookie.

EventSource cannot send a header, and a key in a URL ends up in access logs: the cookie carries the
streams instead. It only ever authenticates these two read-only streams (a replay or any other
change needs the bearer header), and only from the hub's own origin or a ``--cors-origin``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Scope

from . import dashboard_ticket, sse
from .auth import Access, Clock, bearer, cookie_allowed, cookie_token
from .client_assets import Asset
from .errors import PushHubError, Unauthorized
from .http_api import HttpApi
from .session import is_secure
from .streams import Streams, header, send_error

COOKIE = "pushhub_dashboard"
COOKIE_PATH = "/v1/dashboard/"
SSE_PATH = "/v1/dashboard/sse"
TICKET_SECONDS = 12 * 3600
PAGE_HEADERS = {
    "content-security-policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; "
                               "base-uri 'none'; form-action 'none'",
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
}
SCRIPT = "text/javascript; charset=utf-8"
ASSETS = {
    "dashboard.js": SCRIPT,
    "dashboard-dom.js": SCRIPT,
    "dashboard-chart.js": SCRIPT,
    "dashboard-log.js": SCRIPT,
    "dashboard-webhooks.js": SCRIPT,
    "dashboard.css": "text/css; charset=utf-8",
}


class Dashboard:
    def __init__(self, access: Access, streams: Streams, api: HttpApi, *, interval: float = 1.0,
                 clock: Clock = time.time) -> None:
        self.access = access
        self.streams = streams
        self.api = api
        self.interval = interval
        self.clock = clock
        self.closing = asyncio.Event()

    def routes(self) -> list[Route]:
        page = Asset("dashboard.html", "text/html; charset=utf-8", PAGE_HEADERS)
        return [Route("/dashboard", page.serve, methods=["GET", "HEAD"]),
                *(Route(f"/dashboard/{name}", Asset(name, media_type, {}).serve, methods=["GET", "HEAD"])
                  for name, media_type in ASSETS.items()),
                Route("/v1/dashboard/session", self.open_session, methods=["POST"]),
                Route("/v1/dashboard/session", self.close_session, methods=["DELETE"]),
                Route("/v1/dashboard/stats", self.stats, methods=["GET"])]

    def admin_key(self, scope: Scope) -> bytes | None:
        """The admin key a request acts with: its bearer key, else its cookie's; None on an open hub."""
        token = bearer(header(scope, b"authorization"))
        grant = self.access.grant(token)
        if token is not None or not self.access.enforced:
            self.access.check_admin(grant)
            return token.encode() if token is not None and self.access.enforced else None
        origin, host = header(scope, b"origin"), header(scope, b"host")
        ticket = cookie_token(header(scope, b"cookie"), COOKIE) if cookie_allowed(
            origin, host, self.streams.cors_origins) else None
        if ticket is None:
            raise Unauthorized("the dashboard needs an admin key: POST /v1/dashboard/session with "
                               "'Authorization: Bearer <admin key>' first")
        key = dashboard_ticket.admin_key(ticket, self.access.admin_keys, self.clock())
        if key is None:
            raise Unauthorized("the dashboard session has expired or its admin key was removed: sign in again")
        return key

    async def open_session(self, request: Request) -> Response:
        token = bearer(request.headers.get("authorization"))
        self.access.check_admin(self.access.grant(token))
        response = Response(status_code=204)
        if token is not None and self.access.enforced:
            expires = int(self.clock()) + TICKET_SECONDS
            response.set_cookie(COOKIE, dashboard_ticket.issue(token.encode(), expires), max_age=TICKET_SECONDS,
                                path=COOKIE_PATH, httponly=True, secure=is_secure(request), samesite="strict")
        return response

    async def close_session(self, request: Request) -> Response:
        response = Response(status_code=204)
        response.delete_cookie(COOKIE, path=COOKIE_PATH, httponly=True, secure=is_secure(request),
                               samesite="strict")
        return response

    async def stats(self, request: Request) -> Response:
        self.admin_key(request.scope)
        headers = {name.decode(): value.decode() for name, value in sse.HEADERS}
        return StreamingResponse(self._stats_frames(), headers=headers)

    def sse(self, scope: Scope, transport: asyncio.Transport, rest: bytes) -> None:
        """``/v1/dashboard/sse``: the hub's event stream, authorised by the dashboard cookie. Like
        ``/v1/sse`` it takes its socket over from the HTTP server (see :meth:`PushHub.stream_endpoint`)."""
        try:
            key = self.admin_key(scope)
        except PushHubError as exc:
            send_error(transport, exc)
            return
        if key is not None:
            headers = [(name, value) for name, value in scope["headers"] if name not in (b"authorization", b"cookie")]
            scope = {**scope, "headers": [*headers, (b"authorization", b"Bearer " + key)]}
        self.streams.sse(scope, transport, rest)

    def close(self) -> None:
        """End the stats streams (on shutdown: an open stream never finishes by itself)."""
        self.closing.set()

    async def _stats_frames(self) -> AsyncIterator[bytes]:
        after = None
        while not self.closing.is_set():
            snapshot = self.streams.hub.stats.snapshot(self.api.gauges(), after)
            if snapshot["rates"]:
                after = snapshot["rates"][-1]["time"]
            yield sse.frame(orjson.dumps(snapshot), event="stats")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.closing.wait(), self.interval)
