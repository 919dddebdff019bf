"""``POST /v1/session``: trade a bearer JWT for an HttpOnly cookie, for browsers' EventSource.

A page cannot give EventSource a header, and a token in a URL ends up in logs. The page instead
calls ``fetch("/v1/session", {method: "POST", credentials: "include", headers: {Authorization:
"Bearer …"}})`` once; the hub answers with a ``pushhub_token`` cookie that its script cannot read
and that expires with the token. ``DELETE /v1/session`` removes it.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .auth import COOKIE, Access, bearer
from .errors import BadRequest, Unauthorized


class SessionApi:
    def __init__(self, access: Access) -> None:
        self.access = access

    def routes(self) -> list[Route]:
        return [Route("/v1/session", self.open, methods=["POST"]),
                Route("/v1/session", self.close, methods=["DELETE"])]

    async def open(self, request: Request) -> Response:
        token = bearer(request.headers.get("authorization"))
        if token is None:
            raise Unauthorized("send the access token as 'Authorization: Bearer <JWT>'")
        grant = self.access.grant(token)
        if grant.expires is None:
            raise BadRequest("only an expiring JWT can become a cookie, never a long-lived key")
        response = Response(status_code=204)
        secure = is_secure(request)
        response.set_cookie(COOKIE, token, max_age=max(1, int(grant.expires - self.access.clock())), path="/v1/",
                            httponly=True, secure=secure, samesite="none" if secure else "lax")
        return response

    async def close(self, request: Request) -> Response:
        response = Response(status_code=204)
        secure = is_secure(request)
        response.delete_cookie(COOKIE, path="/v1/", httponly=True, secure=secure, samesite="none" if secure else "lax")
        return response


def is_secure(request: Request) -> bool:
    """Over HTTPS the cookie is ``Secure; SameSite=None`` so cross-site pages can use it; over plain
    HTTP (development) browsers refuse that pair, so it is ``SameSite=Lax``."""
    return request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https"
