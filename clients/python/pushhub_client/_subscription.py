"""A subscription that survives disconnects: the reconnect loop shared by SSE and WebSocket.

A transport supplies :meth:`Subscription._session`, one connection's worth of items; this class
reconnects with backoff, resumes from the cursor the session kept, and honours the hub's advice.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable
from types import TracebackType
from typing import Self

from ._backoff import Backoff
from ._errors import Disconnected
from ._models import Advice, Event, Reset

Item = Event | Reset
Sleep = Callable[[float], Awaitable[object]]


class Retry(Exception):
    """Raised by a session: the connection is over and another attempt should follow.

    ``advice`` is the hub's reason when it gave one; ``delay`` a minimum wait it asked for.
    """

    def __init__(self, cause: str, advice: Advice | None = None, delay: float = 0.0) -> None:
        super().__init__(cause)
        self.advice = advice
        self.delay = delay


class Subscription:
    """Iterate with ``async for item in subscription`` (items are :class:`Event` and :class:`Reset`);
    use it as ``async with`` so the connection is closed when you stop early.

    ``connected`` is set while the hub has accepted the subscription (its cursor is known from then
    on); ``reconnects`` counts the connections made after the first; ``last_error`` says why the
    latest one ended.
    """

    def __init__(self, backoff: Backoff, sleep: Sleep = asyncio.sleep) -> None:
        self.backoff = backoff
        self.sleep = sleep
        self.reconnects = 0
        self.last_error: str | None = None
        self.connected = asyncio.Event()
        self._attempt = 0
        self._iterator: AsyncGenerator[Item, None] | None = None

    def _session(self) -> AsyncGenerator[Item, None]:
        """One connection: yield items, then end by raising :class:`Retry` (or a final error)."""
        raise NotImplementedError

    def _connected(self) -> None:
        """A session calls this once the hub accepted the subscription: the backoff starts over."""
        self._attempt = 0
        self.connected.set()

    async def _run(self) -> AsyncGenerator[Item, None]:
        try:
            while True:
                try:
                    async with contextlib.aclosing(self._session()) as session:
                        async for item in session:
                            yield item
                    raise Retry("stream ended")
                except Retry as retry:
                    self.connected.clear()
                    self.last_error = str(retry)
                    if retry.advice is not None and not retry.advice.reconnect:
                        raise Disconnected(retry.advice.code, retry.advice.reason) from None
                    delay = max(retry.delay, self.backoff.delay(self._attempt))
                    self._attempt += 1
                await self.sleep(delay)
                self.reconnects += 1
        finally:
            self.connected.clear()

    def __aiter__(self) -> AsyncGenerator[Item, None]:
        if self._iterator is None:
            self._iterator = self._run()
        return self._iterator

    async def aclose(self) -> None:
        if self._iterator is not None:
            await self._iterator.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()
