"""``POST /v1/ingest/{source}``: verify, dedupe, append, answer; and the admin listing of sources."""

from __future__ import annotations

import time
from collections.abc import Callable

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..auth import Access, bearer
from ..dedupe import DedupeStore
from ..errors import Forbidden, PushHubError
from ..http_api import positioned, read_body
from ..hub import Hub
from . import extract
from .sources import Source
from .verify import verify


class UnknownSource(PushHubError):
    status = 404
    code = "unknown_source"


class IngestApi:
    def __init__(self, hub: Hub, sources: dict[str, Source], dedupe: DedupeStore, window: float,
                 access: Access, clock: Callable[[], float] = time.time) -> None:
        self.hub = hub
        self.sources = sources
        self.dedupe = dedupe
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

        async def append() -> bytes:
            (event,) = await self.hub.publish(source.channel, [draft])
            return orjson.dumps(positioned(event))

        if delivery_id is not None:
            key: str | None = f"ingest:{name}:{extract.delivery_key(delivery_id)}"
        elif verified.fingerprint is not None:  # no id: the same signed request is the same delivery
            key = f"ingest-signed:{name}:{verified.fingerprint}"
        else:
            key = None
        if key is None:
            answer, repeat = await append(), False
        else:
            answer, repeat = await self.dedupe.once(key, self.window, append)
        self.hub.stats.observer.ingested(name, "duplicate" if repeat else "accepted")
        payload = {**orjson.loads(answer), "duplicate": repeat, "delivery_id": delivery_id}
        return JSONResponse(payload, status_code=200 if repeat else 202)
