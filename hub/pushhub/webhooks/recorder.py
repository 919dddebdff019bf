"""Recording finished attempts in batches: the attempts that finish within :data:`INTERVAL` of each
other are written in one store call (one SQLite transaction, one Redis script) instead of one
transaction each. :meth:`Recorder.record` returns once its attempt is stored; until then the worker
keeps the delivery busy, so it is never sent again before its outcome is durable. The wait delays
no request: the worker's next request starts as soon as the previous one is answered."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from .store import Attempt, Delivery, DeliveryStore

INTERVAL = 0.01  # seconds an attempt's record waits for others to share its transaction


class Recorder:
    def __init__(self, store: DeliveryStore, observe: Callable[[Attempt], None] = lambda attempt: None) -> None:
        """``observe`` sees every attempt handed in (the metrics)."""
        self.store = store
        self.observe = observe
        self._batch: list[tuple[Delivery, Attempt, asyncio.Future[None]]] = []
        self._task: asyncio.Task[None] | None = None

    async def record(self, delivery: Delivery, attempt: Attempt) -> None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self.observe(attempt)
        self._batch.append((delivery, attempt, future))
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._write())
        await future

    async def _write(self) -> None:
        await asyncio.sleep(INTERVAL)  # the other attempts finishing meanwhile join the batch
        while self._batch:
            batch, self._batch = self._batch, []
            try:
                await self.store.finish_attempts([(delivery, attempt) for delivery, attempt, _ in batch])
            except Exception as exc:
                for _, _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
            else:
                for _, _, future in batch:
                    if not future.done():
                        future.set_result(None)

    async def close(self) -> None:
        """Wait for the batch being written (attempts whose worker was stopped are still recorded)."""
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
