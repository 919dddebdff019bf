"""``/v1/admin/channels`` and ``/v1/admin/events``: what the dashboard shows of the log (admin only).

- ``GET /v1/admin/channels?pattern=orders.*&after=NAME&limit=50``: channels by name, each with its
  position, the events appended in the last minute and this process's subscriptions to it.
- ``GET /v1/admin/events?type=T`` (newest first) or ``?id=ID``: events of the index, each with its
  provenance (:mod:`pushhub.provenance`).
- ``GET /v1/admin/events/{id}``: one event's page: every retained event with that id, where it came
  from and how many repeats were deduped against it, and every webhook delivery made for it with
  every attempt.

Provenance is only ever served here, to admins: subscribers receive the events alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .auth import Access, bearer
from .backends.base import Found
from .channels import compile_patterns, validate_channel, validate_type
from .errors import BadRequest
from .events import ID_MAX_LENGTH
from .hub import Hub
from .numbers import bounded
from .webhooks.errors import NotFound
from .webhooks.store import DeliveryStore

MAX_CHANNELS = 200
MAX_EVENTS = 200
MAX_ATTEMPTS = 1000
RATE_WINDOW = 60.0  # seconds over which a channel's rate is counted


def _limit(request: Request, largest: int, default: int) -> int:
    limit = bounded(request.query_params.get("limit", str(default)), largest)
    if limit is None or not 1 <= limit <= largest:
        raise BadRequest(f"'limit' must be an integer from 1 to {largest}")
    return limit


def _event_id(value: str) -> str:
    if not 0 < len(value) <= ID_MAX_LENGTH:
        raise BadRequest(f"an event id has 1-{ID_MAX_LENGTH} characters")
    return value


def described(found: Found) -> dict[str, Any]:
    event = found.event
    return {"event": event.as_dict(), "cursor": event.position.encode(),
            "origin": None if found.origin is None else found.origin.as_dict(), "repeats": found.repeats}


class AdminApi:
    def __init__(self, hub: Hub, deliveries: DeliveryStore, access: Access, clock: Callable[[], float]) -> None:
        self.hub = hub
        self.deliveries = deliveries
        self.access = access
        self.clock = clock

    def routes(self) -> list[Route]:
        return [Route("/v1/admin/channels", self.channels, methods=["GET"]),
                Route("/v1/admin/events", self.search, methods=["GET"]),
                Route("/v1/admin/events/{id}", self.event, methods=["GET"])]

    def _admin(self, request: Request) -> None:
        self.access.check_admin(self.access.grant(bearer(request.headers.get("authorization"))))

    async def channels(self, request: Request) -> Response:
        self._admin(request)
        query = request.query_params
        pattern = query.get("pattern") or "*"
        compile_patterns([pattern], kind="channel")
        after = query.get("after") or ""
        if after:
            validate_channel(after)
        page = await self.hub.broker.channels(pattern, after, _limit(request, MAX_CHANNELS, 50))
        since = self.clock() - RATE_WINDOW
        listed = []
        for name in page.names:
            state = await self.hub.broker.state(name)
            local = self.hub.channels.get(name)
            listed.append({"channel": name, "epoch": state.epoch, "top": state.top, "earliest": state.earliest,
                           "cursor": f"{state.epoch}.{state.top}",
                           "per_minute": await self.hub.broker.recent(name, since),
                           "subscriptions": local.refs if local is not None else 0})
        return JSONResponse({"data": listed, "next_after": page.next})

    async def search(self, request: Request) -> Response:
        self._admin(request)
        query = request.query_params
        limit = _limit(request, MAX_EVENTS, 50)
        if ("id" in query) == ("type" in query):
            raise BadRequest("search by 'id' or by 'type' (one of them)")
        if "id" in query:
            found = await self.hub.broker.find(_event_id(query["id"]), limit)
        else:
            found = await self.hub.broker.find_type(validate_type(query["type"]), limit)
        return JSONResponse({"data": [described(f) for f in found]})

    async def event(self, request: Request) -> Response:
        self._admin(request)
        event_id = _event_id(request.path_params["id"])
        found = await self.hub.broker.find(event_id, MAX_EVENTS)
        deliveries = await self.deliveries.deliveries(event_id=event_id, limit=MAX_EVENTS)
        if not found and not deliveries:
            raise NotFound(f"no retained event and no webhook delivery has the id {event_id!r}")
        attempts = await self.deliveries.attempts(event_id=event_id, limit=MAX_ATTEMPTS)
        by_delivery: dict[str, list[dict[str, Any]]] = {}
        for attempt in attempts:
            by_delivery.setdefault(attempt.delivery_id, []).append(attempt.as_dict())
        return JSONResponse({
            "id": event_id, "found": [described(f) for f in found],
            "deliveries": [{**d.as_dict(), "seq": d.seq, "attempts_log": by_delivery.get(d.id, [])}
                           for d in deliveries]})
