"""Endpoints on the hot paths (publish, ingest): lean endpoints of the hub's HTTP server, and plain
ASGI apps for what the lean route does not take.

The hub's HTTP server hands a request such an endpoint takes (:meth:`DirectEndpoint.lean`) to
:meth:`DirectEndpoint.respond` once its whole body is in, with no ASGI call at all
(:mod:`pushhub.http11`). Other requests to it are ASGI calls: without an ``Origin``, straight from
:meth:`pushhub.app.PushHub.__call__` (a chunked body, ``Expect: 100-continue``, a body over the
limit, which is refused before it is read); with an ``Origin``, through the whole Starlette stack
(the CORS middleware answers for it) to the same app, routed as any other. So the endpoint does
itself what that stack does for it: it reads its parameters from the path, answers errors in the
hub's error shape, counts its answers in the request metrics, and, past the stack, says
``Vary: Origin`` as the CORS middleware says to a request without an ``Origin``.
"""

from __future__ import annotations

import abc
import asyncio
import re
from collections.abc import Callable

from starlette.types import Message, Receive, Scope, Send

from .errors import PushHubError
from .http11 import LeanReply
from .http_api import error_json, receive_body
from .numbers import bounded

JSON = (b"content-type", b"application/json")
VARY = ((b"vary", b"Origin"),)
LEAN_FIELDS = b"content-type: application/json\r\nvary: Origin\r\n"  # JSON and VARY, as header lines
Count = Callable[[str, int], None]  # (method, status) of an answer
Headers = list[tuple[bytes, bytes]]
Body = bytes | Receive  # the whole body (the lean route), or the ASGI receive to read it from


async def whole_body(body: Body, declared: str, limit: int) -> bytes:
    """The request body: as given, or read with ``receive`` (``Content-Length`` ``declared``) up to ``limit``."""
    return body if isinstance(body, bytes) else await receive_body(body, declared, limit)


def lean_fields(headers: Headers) -> bytes:
    """An answer's header lines on the lean route: :data:`JSON`, :data:`VARY` and ``headers``."""
    if headers:
        return LEAN_FIELDS + b"".join(b"%s: %s\r\n" % field for field in headers)
    return LEAN_FIELDS


class DirectEndpoint(abc.ABC):
    """``POST`` to the paths ``pattern`` matches; :meth:`answer` gives the status, the JSON body and
    the headers of the answer."""

    path: str  # the route, as Starlette and the request metrics name it
    pattern: re.Pattern[str]

    def __init__(self, count: Count) -> None:
        self.count = count
        self._tasks: set[asyncio.Task[None]] = set()  # lean requests being answered by respond

    def takes(self, scope: Scope) -> bool:
        """Whether the hub may hand ``scope`` straight to :meth:`direct`."""
        return (scope["type"] == "http" and scope["method"] == "POST" and self.pattern.fullmatch(scope["path"])
                is not None and all(name != b"origin" for name, _ in scope["headers"]))

    def lean(self, scope: Scope) -> bool:
        """Whether :meth:`respond` may answer ``scope`` (an ``http`` request whose body is not
        chunked): it may be taken straight, and declares a body the endpoint accepts."""
        if scope["method"] != "POST":
            return False
        match = self.pattern.fullmatch(scope["path"])
        if match is None:
            return False
        declared = None
        for name, value in scope["headers"]:
            if name == b"origin":
                return False
            if name == b"content-length" and declared is None:
                declared = value
        limit = self.limit(match)
        if declared is None or limit is None:
            return False
        length = bounded(declared.decode("latin-1"), limit)
        return length is not None and length <= limit

    @abc.abstractmethod
    def limit(self, match: re.Match[str]) -> int | None:
        """The largest body the endpoint takes at ``match``; ``None`` where the lean route takes none."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.serve(scope, receive, send, ())

    async def direct(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.serve(scope, receive, send, VARY)

    async def serve(self, scope: Scope, receive: Receive, send: Send, extra: tuple[tuple[bytes, bytes], ...]) -> None:
        status, body, headers = await self.counted(scope, receive)
        start: Message = {"type": "http.response.start", "status": status,
                          "headers": [*headers, (b"content-length", b"%d" % len(body)), JSON, *extra]}
        await send(start)
        await send({"type": "http.response.body", "body": body})

    def respond(self, scope: Scope, body: bytes, reply: LeanReply) -> None:
        """The lean route (:data:`pushhub.http11.LeanEndpoint`): ``reply`` is given the answer to
        ``scope`` with ``body``. This one makes it in a task of its own, with :meth:`answer`."""
        task = asyncio.get_running_loop().create_task(self._respond(scope, body, reply))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _respond(self, scope: Scope, body: bytes, reply: LeanReply) -> None:
        try:
            status, content, headers = await self.counted(scope, body)
        except Exception as exc:
            reply(exc)
            return
        reply((status, lean_fields(headers), content))

    async def counted(self, scope: Scope, body: Body) -> tuple[int, bytes, Headers]:
        """:meth:`answer`, errors answered in the hub's shape, and the answer counted."""
        match = self.pattern.fullmatch(scope["path"])
        assert match is not None
        try:
            status, content, headers = await self.answer(scope, match, body)
        except PushHubError as exc:
            return self.refusal(match, exc)
        except Exception:
            self.count("POST", 500)
            raise
        self.count("POST", status)
        return status, content, headers

    def refusal(self, match: re.Match[str], exc: PushHubError) -> tuple[int, bytes, Headers]:
        """The answer to a request refused with ``exc``, counted."""
        self.refused(match, exc)
        self.count("POST", exc.status)
        return exc.status, error_json(exc), []

    @abc.abstractmethod
    async def answer(self, scope: Scope, match: re.Match[str], body: Body) -> tuple[int, bytes, Headers]:
        """Read the body with :func:`whole_body`."""

    def refused(self, match: re.Match[str], exc: PushHubError) -> None:  # noqa: B027 - a hook, nothing by default
        """The request was answered with ``exc``."""
