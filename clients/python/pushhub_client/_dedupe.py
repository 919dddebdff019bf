"""Remembering which webhook ids were processed: a store interface, in memory and in Redis.

A store *claims* an id before processing (false when it was already claimed and not released) and
*releases* it when processing failed, so the sender's retry is let through. Ids are kept for
``ttl`` seconds: longer than the sender retries (Svix retries for about a day, Stripe for
three), or a late retry is processed twice.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Protocol

DEFAULT_TTL = 3 * 24 * 3600.0
REDIS_PREFIX = "pushhub:webhook-id:"


class DedupeStore(Protocol):
    async def claim(self, key: str) -> bool:
        """Mark ``key`` as being processed; false if it already was."""

    async def release(self, key: str) -> None:
        """Forget ``key``, so that it can be claimed again."""


class MemoryDedupeStore:
    """Ids in a dict, oldest first, expired lazily. Past ``max_entries`` the oldest ids are dropped
    early (bounded memory over perfect recall); use :class:`RedisDedupeStore` across processes."""

    def __init__(self, ttl: float = DEFAULT_TTL, *, max_entries: int = 100_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self.clock = clock
        self._expiry: OrderedDict[str, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._expiry)

    async def claim(self, key: str) -> bool:
        now = self.clock()
        while self._expiry and next(iter(self._expiry.values())) <= now:
            self._expiry.popitem(last=False)
        if key in self._expiry:
            return False
        self._expiry[key] = now + self.ttl
        while len(self._expiry) > self.max_entries:
            self._expiry.popitem(last=False)
        return True

    async def release(self, key: str) -> None:
        self._expiry.pop(key, None)


class RedisDedupeStore:
    """Ids as Redis keys set with ``SET NX PX``, shared by every receiver process. ``redis`` is a
    ``redis.asyncio.Redis`` client."""

    def __init__(self, redis: Any, ttl: float = DEFAULT_TTL, *, prefix: str = REDIS_PREFIX) -> None:
        self.redis = redis
        self.ttl = ttl
        self.prefix = prefix

    async def claim(self, key: str) -> bool:
        return bool(await self.redis.set(self.prefix + key, b"1", nx=True, px=max(1, int(self.ttl * 1000))))

    async def release(self, key: str) -> None:
        await self.redis.delete(self.prefix + key)
