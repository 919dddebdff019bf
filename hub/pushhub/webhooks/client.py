"""The outgoing HTTP client: one connection pool per endpoint, every connection through the SSRF
guard, no redirects followed, proxies from the environment ignored, TLS verified, one timeout over
the whole attempt. :class:`HttpClient` is the seam tests and other transports fit behind."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import httpx

from .errors import Blocked
from .ssrf import GuardedTransport, IPNetwork


@dataclass(frozen=True)
class Reply:
    """What one POST got: a status (``None`` when no response arrived) or an error, the ``Retry-After``
    header and the start of the response body."""

    status: int | None = None
    retry_after: str | None = None
    body: str = ""
    error: str | None = None


class HttpClient(Protocol):
    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> Reply: ...

    async def close(self) -> None: ...


ClientFactory = Callable[[], HttpClient]


class HttpxClient:
    def __init__(self, allow: Sequence[IPNetwork], *, timeout: float, response_limit: int, user_agent: str,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.timeout = timeout
        self.response_limit = response_limit
        self.client = httpx.AsyncClient(transport=transport or GuardedTransport(allow), follow_redirects=False,
                                        timeout=httpx.Timeout(timeout), headers={"user-agent": user_agent})

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> Reply:
        try:
            async with asyncio.timeout(self.timeout), \
                    self.client.stream("POST", url, content=body, headers=headers) as response:
                received = bytearray()
                async for chunk in response.aiter_bytes():
                    received += chunk
                    if len(received) > self.response_limit:
                        break
                return Reply(response.status_code, response.headers.get("retry-after"),
                             received[:self.response_limit].decode(errors="replace"))
        except Blocked as exc:
            return Reply(error=exc.message)
        except (TimeoutError, httpx.TimeoutException):
            return Reply(error=f"timed out after {self.timeout:g}s")
        except httpx.HTTPError as exc:
            return Reply(error=f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)

    async def close(self) -> None:
        await self.client.aclose()
