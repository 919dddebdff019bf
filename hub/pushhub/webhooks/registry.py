"""The endpoints this process sends to, kept in line with the store.

Every change goes through :meth:`Registry.save` or :meth:`Registry.delete`, which store it and then
tell the dispatcher (``on_change``, ``on_forget``) so it can start, reconfigure or stop the
endpoint's worker. With a store other processes share, :meth:`Registry.refresh` takes in the changes
they made: the store's endpoints version moves with each one. The refreshes asked for in one turn of
the event loop share one read of that version (one Redis round trip for all the publishes of a turn).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from .endpoints import Endpoint
from .errors import NotFound
from .store import DeliveryStore


class Registry:
    def __init__(self, store: DeliveryStore, on_change: Callable[[Endpoint], None],
                 on_forget: Callable[[str], Awaitable[None]]) -> None:
        self.store = store
        self.on_change = on_change
        self.on_forget = on_forget
        self.endpoints: dict[str, Endpoint] = {}
        self.version: int | None = None  # the store's endpoints version self.endpoints reflects
        self._lock = asyncio.Lock()
        self._next: asyncio.Task[None] | None = None  # the refresh that has not read the version yet

    async def load(self) -> None:
        self.version = await self.store.endpoints_version()
        self.endpoints = {e.id: e for e in await self.store.endpoints()}

    def get(self, endpoint_id: str) -> Endpoint:
        endpoint = self.endpoints.get(endpoint_id)
        if endpoint is None:
            raise NotFound(f"no endpoint {endpoint_id!r}")
        return endpoint

    def follows(self, channel: str) -> bool:
        return any(e.matches_channel(channel) for e in self.endpoints.values())

    async def save(self, endpoint: Endpoint) -> Endpoint:
        async with self._lock:
            await self.store.save_endpoint(endpoint)
            self._apply(endpoint)
            return endpoint

    def _apply(self, endpoint: Endpoint) -> None:
        self.endpoints[endpoint.id] = endpoint
        self.on_change(endpoint)

    async def delete(self, endpoint_id: str) -> None:
        self.get(endpoint_id)
        async with self._lock:
            await self._forget(endpoint_id)
            await self.store.delete_endpoint(endpoint_id)

    async def _forget(self, endpoint_id: str) -> None:
        await self.on_forget(endpoint_id)
        self.endpoints.pop(endpoint_id, None)

    async def refresh(self) -> None:
        """Take in the endpoint changes other processes made (nothing to do when the store is this
        process's own). Whatever was stored before the call is seen when it returns: callers join a
        refresh only until it reads the version."""
        if not self.store.shared:
            return
        if self._next is None:
            self._next = asyncio.get_running_loop().create_task(self._refresh())
            self._next.add_done_callback(_retrieved)
        await asyncio.shield(self._next)

    async def _refresh(self) -> None:
        self._next = None  # the version is read from here on: a later caller needs a later read
        if await self.store.endpoints_version() == self.version:
            return
        async with self._lock:
            version = await self.store.endpoints_version()  # read first: a change after it is seen next time
            current = {e.id: e for e in await self.store.endpoints()}
            for endpoint_id in set(self.endpoints) - set(current):
                await self._forget(endpoint_id)
            for endpoint in current.values():
                if endpoint != self.endpoints.get(endpoint.id):
                    self._apply(endpoint)
            self.version = version


def _retrieved(task: asyncio.Task[None]) -> None:
    """Every caller of a shared refresh re-raises its error; if all went away, nobody warns."""
    if not task.cancelled():
        task.exception()
