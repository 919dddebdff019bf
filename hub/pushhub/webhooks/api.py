"""The ``/v1/webhooks/...`` HTTP routes: endpoints (with their per-minute stats and a test send),
deliveries, attempts, replay.

Every route first calls the ``authorize`` function it is given (which raises to refuse); the hub
passes :func:`publisher_keys_check` until admin keys exist.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .. import cursor as cursors
from ..auth import Access, bearer
from ..channels import validate_channel
from ..errors import BadRequest
from ..events import EventDraft, parse_time
from ..http_api import read_body
from ..numbers import bounded
from ..retention import parse_duration
from . import endpoints, signing
from .dispatcher import Dispatcher
from .errors import InvalidEndpoint, NotFound
from .replay import event_seconds
from .store import MINUTE, PENDING, STATUSES

MAX_LIMIT = 1000
MAX_SEQ = (1 << 63) - 1  # the largest row id SQLite (and a Redis sorted-set score, exactly) can hold
MAX_MINUTES = 24 * 60
BACKLOG_SHOWN = 100
OUTCOMES = {"succeeded": True, "failed": False}
TEST_EVENT = {"type": "pushhub.test", "data": {"message": "a test event sent from pushhub"}}
Handler = Callable[[Request], Awaitable[Response]]
Authorize = Callable[[Request], None]


def admin_check(access: Access) -> Authorize:
    """Admit a request bearing an admin key (anyone when the hub has no credentials configured)."""
    def authorize(request: Request) -> None:
        access.check_admin(access.grant(bearer(request.headers.get("authorization"))))
    return authorize


def _limit(request: Request) -> int:
    limit = bounded(request.query_params.get("limit", "100"), MAX_LIMIT)
    if limit is None or not 1 <= limit <= MAX_LIMIT:
        raise BadRequest(f"'limit' must be an integer from 1 to {MAX_LIMIT}")
    return limit


def _before(request: Request) -> int | None:
    raw = request.query_params.get("before")
    if raw is None:
        return None
    before = bounded(raw, MAX_SEQ)
    if before is None or before > MAX_SEQ:
        raise BadRequest("'before' must be the 'next_before' value of the previous page")
    return before


def _page(items: list[dict[str, Any]], key: str, limit: int) -> JSONResponse:
    return JSONResponse({"data": items, "next_before": items[-1][key] if len(items) == limit else None})


class WebhookApi:
    def __init__(self, dispatcher: Dispatcher, authorize: Authorize, max_body_bytes: int) -> None:
        self.dispatcher = dispatcher
        self.authorize = authorize
        self.max_body_bytes = max_body_bytes

    def routes(self) -> list[Route]:
        def admin(handler: Handler) -> Handler:
            async def checked(request: Request) -> Response:
                self.authorize(request)
                await self.dispatcher.refresh()  # endpoints changed through other processes
                return await handler(request)
            return checked

        prefix = "/v1/webhooks"
        return [
            Route(f"{prefix}/endpoints", admin(self.create), methods=["POST"]),
            Route(f"{prefix}/endpoints", admin(self.list_endpoints), methods=["GET"]),
            Route(f"{prefix}/endpoints/{{id}}", admin(self.show), methods=["GET"]),
            Route(f"{prefix}/endpoints/{{id}}", admin(self.update), methods=["PATCH"]),
            Route(f"{prefix}/endpoints/{{id}}", admin(self.delete), methods=["DELETE"]),
            Route(f"{prefix}/endpoints/{{id}}/rotate-secret", admin(self.rotate), methods=["POST"]),
            Route(f"{prefix}/endpoints/{{id}}/replay", admin(self.replay_endpoint), methods=["POST"]),
            Route(f"{prefix}/endpoints/{{id}}/test", admin(self.test_send), methods=["POST"]),
            Route(f"{prefix}/endpoints/{{id}}/stats", admin(self.endpoint_stats), methods=["GET"]),
            Route(f"{prefix}/deliveries", admin(self.list_deliveries), methods=["GET"]),
            Route(f"{prefix}/deliveries/{{id}}", admin(self.show_delivery), methods=["GET"]),
            Route(f"{prefix}/deliveries/{{id}}/replay", admin(self.replay_delivery), methods=["POST"]),
            Route(f"{prefix}/attempts", admin(self.list_attempts), methods=["GET"]),
        ]

    async def _json(self, request: Request) -> Any:
        body = await read_body(request, self.max_body_bytes)
        if not body.strip():
            return {}
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise BadRequest(f"body is not valid JSON: {exc}") from exc

    # Endpoints --------------------------------------------------------------------------------

    async def create(self, request: Request) -> Response:
        config = self.dispatcher.config
        endpoint = endpoints.create(await self._json(request), https_only=config.https_only, allow=config.allow,
                                    now=self.dispatcher.clock.now())
        return JSONResponse((await self.dispatcher.save(endpoint)).as_dict(), status_code=201)

    async def list_endpoints(self, request: Request) -> Response:
        return JSONResponse({"data": [e.as_dict(with_secret=False) for e in self.dispatcher.endpoints.values()]})

    async def show(self, request: Request) -> Response:
        return JSONResponse(self.dispatcher.get(request.path_params["id"]).as_dict())

    async def update(self, request: Request) -> Response:
        current = self.dispatcher.get(request.path_params["id"])
        config = self.dispatcher.config
        updated = endpoints.apply(await self._json(request), current, https_only=config.https_only,
                                  allow=config.allow, now=self.dispatcher.clock.now())
        return JSONResponse((await self.dispatcher.save(updated)).as_dict())

    async def delete(self, request: Request) -> Response:
        await self.dispatcher.delete(request.path_params["id"])
        return Response(status_code=204)

    async def rotate(self, request: Request) -> Response:
        current = self.dispatcher.get(request.path_params["id"])
        body = await self._json(request)
        if not isinstance(body, dict) or set(body) - {"secret", "overlap"}:
            raise InvalidEndpoint("the body may have 'secret' (whsec_…) and 'overlap' (e.g. '24h')")
        overlap = self.dispatcher.config.secret_overlap
        if "overlap" in body:
            if not isinstance(body["overlap"], str):
                raise InvalidEndpoint("'overlap' must be a duration such as '24h' or '0s'")
            overlap = parse_duration(body["overlap"])
        new_secret = body.get("secret") or signing.generate_secret()
        rotated = endpoints.rotate(current, new_secret, overlap, self.dispatcher.clock.now())
        return JSONResponse((await self.dispatcher.save(rotated)).as_dict())

    async def replay_endpoint(self, request: Request) -> Response:
        """``{"failed": true}``, ``{"since": TIME}``, ``{"channel": C, "after": CURSOR}`` or
        ``{"channel": C, "since": TIME}``."""
        endpoint = self.dispatcher.get(request.path_params["id"])
        body = await self._json(request)
        if not isinstance(body, dict) or set(body) - {"failed", "since", "channel", "after"} or not body:
            raise BadRequest("replay needs {'failed': true}, {'since': TIME}, or {'channel': C, 'after': CURSOR}")
        if body.get("failed") is True and len(body) == 1:
            return JSONResponse({"replayed": await self.dispatcher.replay_failed(endpoint.id)})
        since = event_seconds(parse_time(body["since"])) if "since" in body else None
        channel = validate_channel(body["channel"]) if "channel" in body else None
        after = None
        if "after" in body:
            if channel is None:
                raise BadRequest("'after' is a cursor of one channel: name it with 'channel'")
            after = cursors.decode(str(body["after"]), (channel,))[channel]
        if since is None and after is None:
            raise BadRequest("replay needs 'failed': true, 'since' or 'after'")
        channels = [channel] if channel is not None else self.dispatcher.replay_channels(endpoint)
        count = await self.dispatcher.replay_events(endpoint.id, channels=channels, after=after, since=since)
        return JSONResponse({"replayed": count})

    async def test_send(self, request: Request) -> Response:
        """Body: an event (``type``, ``data``; default a ``pushhub.test`` event). Not a publish."""
        endpoint = self.dispatcher.get(request.path_params["id"])
        body = await self._json(request)
        draft = EventDraft.from_json(body or TEST_EVENT)
        sent = await self.dispatcher.test_send(endpoint.id, draft)
        return JSONResponse({"event_id": draft.id, "status": sent.status, "latency_ms": sent.latency_ms,
                             "response": sent.response, "error": sent.error, "request_headers": sent.request_headers,
                             "succeeded": sent.succeeded})

    async def endpoint_stats(self, request: Request) -> Response:
        """Per-minute attempt counters over the last ``minutes`` (default 60), and the backlog."""
        endpoint = self.dispatcher.get(request.path_params["id"])
        minutes = bounded(request.query_params.get("minutes", "60"), MAX_MINUTES)
        if minutes is None or not 1 <= minutes <= MAX_MINUTES:
            raise BadRequest(f"'minutes' must be an integer from 1 to {MAX_MINUTES}")
        now = self.dispatcher.clock.now()
        since = (now // MINUTE - minutes + 1) * MINUTE
        store = self.dispatcher.store
        counted = await store.minutes(endpoint.id, since, now)
        pending = await store.deliveries(endpoint_id=endpoint.id, status=PENDING, limit=BACKLOG_SHOWN + 1)
        return JSONResponse({
            "endpoint_id": endpoint.id, "since": since, "until": now, "minutes": [m.as_dict() for m in counted],
            "pending": min(len(pending), BACKLOG_SHOWN), "pending_more": len(pending) > BACKLOG_SHOWN,
            "next_attempt_at": min((d.next_at for d in pending), default=None)})

    # Deliveries and attempts ------------------------------------------------------------------

    async def list_deliveries(self, request: Request) -> Response:
        query = request.query_params
        status = query.get("status")
        if status is not None and status not in STATUSES:
            raise BadRequest(f"'status' must be one of {', '.join(STATUSES)}")
        limit = _limit(request)
        found = await self.dispatcher.store.deliveries(endpoint_id=query.get("endpoint"), event_id=query.get("event"),
                                                 status=status, before=_before(request), limit=limit)
        return _page([{**d.as_dict(), "seq": d.seq} for d in found], "seq", limit)

    async def show_delivery(self, request: Request) -> Response:
        delivery = await self.dispatcher.store.delivery(request.path_params["id"])
        if delivery is None:
            raise NotFound(f"no delivery {request.path_params['id']!r}")
        attempts = await self.dispatcher.store.attempts(delivery_id=delivery.id, limit=MAX_LIMIT)
        return JSONResponse({**delivery.as_dict(), "attempts_log": [a.as_dict() for a in attempts]})

    async def replay_delivery(self, request: Request) -> Response:
        return JSONResponse((await self.dispatcher.replay_delivery(request.path_params["id"])).as_dict())

    async def list_attempts(self, request: Request) -> Response:
        query = request.query_params
        status = query.get("status")
        if status is not None and status not in OUTCOMES:
            raise BadRequest(f"'status' must be one of {', '.join(OUTCOMES)}")
        limit = _limit(request)
        found = await self.dispatcher.store.attempts(endpoint_id=query.get("endpoint"), event_id=query.get("event"),
                                                     delivery_id=query.get("delivery"),
                                                     succeeded=None if status is None else OUTCOMES[status],
                                                     before=_before(request), limit=limit)
        return _page([a.as_dict() for a in found], "id", limit)
