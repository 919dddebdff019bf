"""Endpoints on the hot paths (publish, ingest), as plain ASGI apps the hub calls directly.

The hub hands a request such an endpoint takes straight to it (:meth:`pushhub.app.PushHub.__call__`),
past Starlette's middleware and router, unless it carries an ``Origin``: then it takes the whole
stack (the CORS middleware answers for it) to the same app, routed as any other. So the endpoint does
itself what that stack does for it: it reads its parameters from the path, answers errors in the
hub's error shape, counts its answers in the request metrics, and, on the direct path, says
``Vary: Origin`` as the CORS middleware says to a request without an ``Origin``.
"""

from __future__ import annotations

import abc
import re
from collections.abc import Callable

from starlette.types import Message, Receive, Scope, Send

from .errors import PushHubError
from .http_api import error_json

JSON = (b"content-type", b"application/json")
VARY = ((b"vary", b"Origin"),)
Count = Callable[[str, int], None]  # (method, status) of an answer
Headers = list[tuple[bytes, bytes]]


class DirectEndpoint(abc.ABC):
    """``POST`` to the paths ``pattern`` matches; :meth:`answer` gives the status, the JSON body and
    the headers of the answer."""

    path: str  # the route, as Starlette and the request metrics name it
    pattern: re.Pattern[str]

    def __init__(self, count: Count) -> None:
        self.count = count

    def takes(self, scope: Scope) -> bool:
        """Whether the hub may hand ``scope`` straight to :meth:`direct`."""
        return (scope["type"] == "http" and scope["method"] == "POST" and self.pattern.fullmatch(scope["path"])
                is not None and all(name != b"origin" for name, _ in scope["headers"]))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.serve(scope, receive, send, ())

    async def direct(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.serve(scope, receive, send, VARY)

    async def serve(self, scope: Scope, receive: Receive, send: Send, extra: tuple[tuple[bytes, bytes], ...]) -> None:
        match = self.pattern.fullmatch(scope["path"])
        assert match is not None
        try:
            status, body, headers = await self.answer(scope, match, receive)
        except PushHubError as exc:
            status, body, headers = exc.status, error_json(exc), []
            self.refused(match, exc)
        except Exception:
            self.count("POST", 500)
            raise
        self.count("POST", status)
        start: Message = {"type": "http.response.start", "status": status,
                          "headers": [*headers, (b"content-length", b"%d" % len(body)), JSON, *extra]}
        await send(start)
        await send({"type": "http.response.body", "body": body})

    @abc.abstractmethod
    async def answer(self, scope: Scope, match: re.Match[str], receive: Receive) -> tuple[int, bytes, Headers]: ...

    def refused(self, match: re.Match[str], exc: PushHubError) -> None:  # noqa: B027 - a hook, nothing by default
        """The request was answered with ``exc``."""
