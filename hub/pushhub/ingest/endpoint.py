"""``POST /v1/ingest/{source}``: verify, dedupe, append, answer; and the admin listing of sources.

A delivery with an id is appended together with its dedupe record, in one atomic step of the
backend (:meth:`pushhub.hub.Hub.publish_once`): a retry finds the record and is answered with the
event the first delivery made, even if the hub died before answering it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .. import idempotency
from ..auth import Access, bearer
from ..backends.base import Once
from ..errors import Forbidden, PushHubError
from ..http_api import positioned, read_body
from ..hub import Hub
from ..provenance import INGEST, Origin
from . import extract
from .sources import Source
from .verify import verify


class UnknownSource(PushHubError):
    status = 404
    code = "unknown_source"


class IngestApi:
    def __init__(self, hub: Hub, sources: dict[str, Source], window: float,
                 access: Access, clock: Callable[[], float] = time.time) -> None:
        """``window``: seconds a delivery id is remembered."""
        self.hub = hub
        self.sources = sources
        self.window = window
        self.access = access
        self.clock = clock

    def routes(self) -> list[Route]:
        return [
            Route("/v1/ingest/{source}", self.counted, methods=["POST"]),
            Route("/v1/admin/ingest/sources", self.list_sources, methods=["GET"]),
        ]

    async def list_sources(self, request: Request) -> Response:
        self.access.check_admin(self.access.grant(bearer(request.headers.get("authorization"))))
        return JSONResponse({"sources": [s.describe() for s in self.sources.values()],
                             "dedupe_window": self.window})

    async def counted(self, request: Request) -> Response:
        """:meth:`ingest`, with rejections counted by source and error code."""
        try:
            return await self.ingest(request)
        except PushHubError as exc:
            name = request.path_params["source"]
            self.hub.stats.observer.ingested(name if name in self.sources else "(unknown)", "rejected", exc.code)
            raise

    async def ingest(self, request: Request) -> Response:
        name = request.path_params["source"]
        source = self.sources.get(name)
        if source is None:
            raise UnknownSource(f"no ingest source {name!r} is configured")
        address = request.client.host if request.client else None
        if not source.allows(address):
            raise Forbidden(f"{address} is not in the allowlist of ingest source {name!r}")
        body = await read_body(request, source.max_body_bytes)
        verified = verify(source.signature, {k.lower(): v for k, v in request.headers.items()}, body,
                          self.clock())
        headers = verified.headers
        data = extract.decode_body(body, headers.get("content-type", ""))
        if source.signature.scheme == "slack" and isinstance(data, dict) and data.get("type") == "url_verification":
            self.hub.stats.observer.ingested(name, "challenge")
            return JSONResponse({"challenge": data.get("challenge")})
        delivery_id = extract.first(source.id_refs, headers, data)
        draft = extract.draft(name, extract.event_type(extract.first(source.type_refs, headers, data)),
                              delivery_id, data)
        origin = Origin(INGEST, name, source.signature.scheme, delivery_id)

        if delivery_id is not None:
            scope, key = idempotency.ingest_scope(name), extract.delivery_key(delivery_id)
        elif verified.fingerprint is not None:  # no id: the same signed request is the same delivery
            scope, key = idempotency.ingest_scope(name, signed=True), verified.fingerprint
        else:
            (event,) = await self.hub.publish(source.channel, [draft], origin)
            self.hub.stats.observer.ingested(name, "accepted")
            return JSONResponse({**positioned(event), "duplicate": False, "delivery_id": None}, status_code=202)
        once = Once(scope, key, idempotency.record(None, [draft.id], False), self.window)
        published = await self.hub.publish_once(source.channel, [draft], once, origin)
        if published.replayed is None:
            described = positioned(published.events[0])
        else:
            described = idempotency.replay(source.channel, published.replayed, None, key)[0][0]
        repeat = published.replayed is not None
        self.hub.stats.observer.ingested(name, "duplicate" if repeat else "accepted")
        return JSONResponse({**described, "duplicate": repeat, "delivery_id": delivery_id},
                            status_code=200 if repeat else 202)
