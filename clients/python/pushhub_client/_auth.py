"""Bearer credentials: a fixed key, or a token fetched afresh for every request and connection."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable

import httpx

TokenProvider = Callable[[], Awaitable[str]]


class Credentials(httpx.Auth):
    """``Authorization: Bearer`` with ``key``, or with what ``token_provider`` returns each time
    (for short-lived tokens: the hub closes a stream whose token expires with 4002, and the
    reconnect then asks the provider for a fresh one)."""

    def __init__(self, key: str | None = None, token_provider: TokenProvider | None = None) -> None:
        if key is not None and token_provider is not None:
            raise ValueError("give either a key or a token provider, not both")
        self.key = key
        self.token_provider = token_provider

    async def headers(self) -> dict[str, str]:
        token = await self.token_provider() if self.token_provider is not None else self.key
        return {"authorization": f"Bearer {token}"} if token else {}

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        request.headers.update(await self.headers())
        yield request
