"""``POST /v1/ingest/{source}``: verify, dedupe, append, answer (a hot path:
:class:`~pushhub.direct.DirectEndpoint`); and the admin listing of sources.

A delivery with an id is appended together with its dedupe record, in one atomic step of the
backend (:meth:`pushhub.hub.Hub.publish_once`): a retry finds the record and is answered with the
event the first delivery made, even if the hub died before answering it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Scope

from .. import idempotency
from ..auth import Access, bearer
from ..backends.base import Once
from ..direct import Body, Count, DirectEndpoint, Headers, whole_body
from ..errors import Forbidden, PushHubError
from ..http_api import positioned
from ..hub import Hub
from ..provenance import INGEST, Origin
from . import extract
from .sources import Source
from .verify import verify


class UnknownSource(PushHubError):
    status = 404
    code = "unknown_source"


class IngestApi:
    """The admin listing of the sources (ingesting itself: :class:`IngestEndpoint`)."""

    def __init__(self, sources: dict[str, Source], window: float, access: Access) -> None:
        self.sources = sources
        self.window = window
        self.access = access

    def routes(self) -> list[Route]:
        return [Route("/v1/admin/ingest/sources", self.list_sources, methods=["GET"])]

    async def list_sources(self, request: Request) -> Response:
        self.access.check_admin(self.access.grant(bearer(request.headers.get("authorization"))))
        return JSONResponse({"sources": [s.describe() for s in self.sources.values()],
                             "dedupe_window": self.window})


class IngestEndpoint(DirectEndpoint):
    path = "/v1/ingest/{source}"
    pattern = re.compile(r"/v1/ingest/([^/]+)")

    def __init__(self, hub: Hub, sources: dict[str, Source], window: float, count: Count,
                 clock: Callable[[], float] = time.time) -> None:
        """``window``: seconds a delivery id is remembered."""
        super().__init__(count)
        self.hub = hub
        self.sources = sources
        self.window = window
        self.clock = clock

    def refused(self, match: re.Match[str], exc: PushHubError) -> None:
        """Rejections are counted by source and error code."""
        name = match[1]
        self.hub.stats.observer.ingested(name if name in self.sources else "(unknown)", "rejected", exc.code)

    def limit(self, match: re.Match[str]) -> int | None:
        source = self.sources.get(match[1])
        return None if source is None else source.max_body_bytes

    async def answer(self, scope: Scope, match: re.Match[str], body: Body) -> tuple[int, bytes, Headers]:
        name = match[1]
        source = self.sources.get(name)
        if source is None:
            raise UnknownSource(f"no ingest source {name!r} is configured")
        client = scope.get("client")
        address = client[0] if client else None
        if not source.allows(address):
            raise Forbidden(f"{address} is not in the allowlist of ingest source {name!r}")
        request_headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        raw = await whole_body(body, request_headers.get("content-length", ""), source.max_body_bytes)
        verified = verify(source.signature, request_headers, raw, self.clock())
        headers = verified.headers
        data = extract.decode_body(raw, headers.get("content-type", ""))
        if source.signature.scheme == "slack" and isinstance(data, dict) and data.get("type") == "url_verification":
            self.hub.stats.observer.ingested(name, "challenge")
            return 200, orjson.dumps({"challenge": data.get("challenge")}), []
        delivery_id = extract.first(source.id_refs, headers, data)
        draft = extract.draft(name, extract.event_type(extract.first(source.type_refs, headers, data)),
                              delivery_id, data)
        origin = Origin(INGEST, name, source.signature.scheme, delivery_id)

        if delivery_id is not None:
            scope_name, key = idempotency.ingest_scope(name), extract.delivery_key(delivery_id)
        elif verified.fingerprint is not None:  # no id: the same signed request is the same delivery
            scope_name, key = idempotency.ingest_scope(name, signed=True), verified.fingerprint
        else:
            (event,) = await self.hub.publish(source.channel, [draft], origin)
            self.hub.stats.observer.ingested(name, "accepted")
            return 202, orjson.dumps({**positioned(event), "duplicate": False, "delivery_id": None}), []
        once = Once(scope_name, key, idempotency.record(None, [draft.id], False), self.window)
        published = await self.hub.publish_once(source.channel, [draft], once, origin)
        if published.replayed is None:
            described = positioned(published.events[0])
        else:
            described = idempotency.replay(source.channel, published.replayed, None, key)[0][0]
        repeat = published.replayed is not None
        self.hub.stats.observer.ingested(name, "duplicate" if repeat else "accepted")
        return (200 if repeat else 202), orjson.dumps({**described, "duplicate": repeat,
                                                       "delivery_id": delivery_id}), []
