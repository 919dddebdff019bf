"""The browser client, served by the hub at a stable path: ``GET /v1/client/pushhub.js`` (an ES
module) and ``GET /v1/client/pushhub.d.ts`` (its TypeScript declarations).

The files ship inside the package (``hub/pushhub/static``, links to ``clients/js`` in the source tree that
a wheel build copies), so an installed hub serves the client of its own version. Browsers
revalidate with the ETag on every load; the module may be imported from any origin.
"""

from __future__ import annotations

import hashlib
from importlib import resources

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

MEDIA_TYPES = {
    "pushhub.js": "text/javascript; charset=utf-8",
    "pushhub.d.ts": "application/typescript; charset=utf-8",
}


class Asset:
    """One file of ``hub/pushhub/static``; ``headers`` replace the default of letting any origin read it."""

    def __init__(self, name: str, media_type: str | None = None, headers: dict[str, str] | None = None) -> None:
        self.body = resources.files("pushhub").joinpath("static", name).read_bytes()
        self.media_type = media_type or MEDIA_TYPES[name]
        self.etag = '"%s"' % hashlib.sha256(self.body).hexdigest()[:32]
        self.headers = {"access-control-allow-origin": "*"} if headers is None else headers

    async def serve(self, request: Request) -> Response:
        headers = {"etag": self.etag, "cache-control": "no-cache", **self.headers}
        if self.etag in request.headers.get("if-none-match", ""):
            return Response(status_code=304, headers=headers)
        return Response(self.body, media_type=self.media_type, headers=headers)


def routes() -> list[Route]:
    return [Route(f"/v1/client/{name}", Asset(name).serve, methods=["GET", "HEAD"]) for name in MEDIA_TYPES]
