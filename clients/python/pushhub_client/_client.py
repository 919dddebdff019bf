"""The client facade: one object for publishing, history and subscriptions to one hub."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Self

import httpx

from ._auth import Credentials, TokenProvider
from ._backoff import Backoff
from ._http import HttpApi
from ._sse_subscription import SSESubscription
from ._subscription import Sleep
from ._ws_subscription import WSSubscription


def websocket_url(base_url: str) -> str:
    scheme, sep, rest = base_url.rstrip("/").partition("://")
    if not sep or scheme not in ("http", "https"):
        raise ValueError(f"the hub URL must start with http:// or https://, not {base_url!r}")
    return ("wss" if scheme == "https" else "ws") + "://" + rest + "/v1/ws"


def as_list(names: str | Sequence[str]) -> list[str]:
    """One name or several: a lone string is one name, not a sequence of characters."""
    return [names] if isinstance(names, str) else list(names)


class Client(HttpApi):
    """A pushhub client.

    ``url`` is the hub's base URL. ``key`` is sent as ``Authorization: Bearer`` on every request,
    stream and WebSocket handshake (a publisher key, or a token); ``token_provider`` instead is
    awaited for a fresh token before each of them.
    ``backoff`` paces reconnects; ``idle_timeout`` is how long an SSE stream may stay silent before
    it is considered dead (the hub sends a heartbeat every 15 s by default). ``transport`` replaces
    httpx's network transport, and ``sleep`` the wait between reconnects (for tests).
    """

    def __init__(self, url: str, *, key: str | None = None, token_provider: TokenProvider | None = None,
                 timeout: float = 10.0,
                 backoff: Backoff | None = None, idle_timeout: float | None = 60.0,
                 transport: httpx.AsyncBaseTransport | None = None, sleep: Sleep = asyncio.sleep) -> None:
        self.url = url.rstrip("/")
        self.ws_url = websocket_url(self.url)
        self.backoff = backoff or Backoff()
        self.idle_timeout = idle_timeout
        self.sleep = sleep
        self.timeout = timeout
        self.credentials = Credentials(key, token_provider)
        super().__init__(httpx.AsyncClient(base_url=self.url, auth=self.credentials, timeout=timeout,
                                           transport=transport))

    def subscribe(self, channels: str | Sequence[str], *, types: str | Sequence[str] = (),
                  cursor: str | None = None) -> SSESubscription:
        """Follow ``channels`` over SSE; only events whose type matches one of ``types`` (globs such
        as ``payment.*``) when given. Without ``cursor``, delivery starts with the next event."""
        return SSESubscription(self.http, as_list(channels), types=as_list(types), cursor=cursor, backoff=self.backoff,
                               idle_timeout=self.idle_timeout, sleep=self.sleep)

    def subscribe_ws(self, channels: str | Sequence[str], *, types: str | Sequence[str] = (),
                     cursors: Mapping[str, str] | None = None) -> WSSubscription:
        """Follow ``channels`` over one WebSocket; ``cursors`` maps channels to where to resume."""
        return WSSubscription(self.ws_url, as_list(channels), types=as_list(types), cursors=cursors,
                              headers=self.credentials.headers, open_timeout=self.timeout, backoff=self.backoff,
                              sleep=self.sleep)

    async def aclose(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()
