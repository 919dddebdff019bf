"""The hub's API description: an OpenAPI 3.1 document at ``/openapi.json`` and a Swagger UI page
at ``/docs`` built from the files of the ``openapi-ui-bundles`` package (no CDN).

``schemas`` declares every body and message once; ``paths`` lists every route; this module puts
them together and serves them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openapi_ui_bundles
import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .. import __version__
from .paths import OPERATIONS
from .schemas import ALL

TAGS = [
    ("channels", "Publish events and read a channel's history"),
    ("streams", "Follow channels live: Server-Sent Events and WebSocket, with exact resume"),
    ("ingest", "Signed webhooks from other services, appended to a channel"),
    ("admin", "What the operator sees of the log: channels, and events with their provenance"),
    ("webhooks", "Outgoing webhooks: endpoints, deliveries, attempts, replay"),
    ("operations", "Health, readiness, metrics and this description"),
    ("client", "The browser client, served by the hub"),
    ("dashboard", "The operator dashboard"),
]


def document() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for method, path, operation in OPERATIONS:
        paths.setdefault(path, {})[method] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "pushhub", "version": __version__,
                 "description": "A real-time push hub: durable per-channel logs, SSE and WebSocket fan-out with "
                                "exact resume, webhooks in and out. Errors always have the `Error` shape.",
                 "license": {"name": "MIT", "identifier": "MIT"}},
        "tags": [{"name": name, "description": text} for name, text in TAGS],
        "paths": paths,
        "components": {
            "schemas": ALL,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer",
                           "description": "a publisher key, an admin key, or an access token (JWT)"},
                "token": {"type": "apiKey", "in": "query", "name": "token",
                          "description": "an access token in the URL, for clients that cannot set headers"},
            },
        },
    }


UI_FILES = {"swagger-ui.css": "text/css; charset=utf-8", "swagger-ui-bundle.js": "text/javascript; charset=utf-8"}
PAGE = b"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>pushhub API</title>
<link rel="stylesheet" href="/docs/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/swagger-ui-bundle.js"></script><script src="/docs/docs.js"></script></body></html>
"""
START = b'window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true});\n'


class Docs:
    """``/openapi.json``, ``/docs`` and the page's files (read once, at start)."""

    def __init__(self, ui_dir: Path | None = None) -> None:
        ui_dir = ui_dir or Path(openapi_ui_bundles.swagger_ui.static_path)
        self.document = orjson.dumps(document())
        self.files = {name: ((ui_dir / name).read_bytes(), media) for name, media in UI_FILES.items()}
        self.files["docs.js"] = (START, "text/javascript; charset=utf-8")

    def routes(self) -> list[Route]:
        return [Route("/openapi.json", self.openapi, methods=["GET"]),
                Route("/docs", self.page, methods=["GET"]),
                Route("/docs/{asset}", self.asset, methods=["GET"])]

    async def openapi(self, request: Request) -> Response:
        return Response(self.document, media_type="application/json", headers={"access-control-allow-origin": "*"})

    async def page(self, request: Request) -> Response:
        return Response(PAGE, media_type="text/html; charset=utf-8",
                        headers={"content-security-policy": "default-src 'self'; img-src 'self' data:; "
                                                            "style-src 'self' 'unsafe-inline'"})

    async def asset(self, request: Request) -> Response:
        found = self.files.get(request.path_params["asset"])
        if found is None:
            return Response(orjson.dumps({"error": {"code": "not_found", "message": "no such file"}}),
                            status_code=404, media_type="application/json")
        body, media = found
        return Response(body, media_type=media, headers={"cache-control": "public, max-age=3600"})
