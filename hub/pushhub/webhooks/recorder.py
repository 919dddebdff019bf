"""Recording finished attempts in batches: the attempts that finish within :data:`INTERVAL` of each
other are written in one store call (one SQLite transaction, one Redis script) instead of one
transaction each. With a store that shares its transactions with the log (SQLite), an append to
the log that comes first takes the batch into its own transaction (:meth:`Recorder.take`): one
commit fewer. :meth:`Recorder.add` hands an attempt in and calls back once it is stored; until
then the worker keeps the delivery busy, so it is never sent again before its outcome is durable.
The wait delays no request: the worker's next request starts as soon as the previous one is
answered."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from .store import Attempt, Delivery, DeliveryStore

logger = logging.getLogger("pushhub.webhooks")

INTERVAL = 0.01  # seconds an attempt's record waits for others to share its transaction

Done = Callable[[Delivery, bool], None]  # (the delivery, whether its attempt was stored)


class Recorder:
    def __init__(self, store: DeliveryStore, observe: Callable[[Attempt], None] = lambda attempt: None) -> None:
        """``observe`` sees every attempt handed in (the metrics)."""
        self.store = store
        self.observe = observe
        self._batch: list[tuple[Delivery, Attempt]] = []
        self._done: list[Done] = []
        self._task: asyncio.Task[None] | None = None
        store.join_records(self.take)

    def add(self, delivery: Delivery, attempt: Attempt, done: Done) -> None:
        """Record ``attempt`` with ``delivery``'s new state in the next batch, then call ``done(delivery,
        stored)``; not ``stored``: the write failed, the delivery stays as the store has it (sent again)."""
        self.observe(attempt)
        self._batch.append((delivery, attempt))
        self._done.append(done)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._write())

    def take(self) -> tuple[list[tuple[Delivery, Attempt]], Callable[[], None]] | None:
        """The batch waiting, for an append's transaction to write now, and what to call once that
        committed. Until then the batch stays here: if the append fails, the recorder writes it itself."""
        batch, done, count = self._batch, self._done, len(self._batch)
        if not count:
            return None

        def committed() -> None:
            taken, calls = batch[:count], done[:count]
            del batch[:count], done[:count]
            for (delivery, _), call in zip(taken, calls, strict=True):
                call(delivery, True)
        return batch[:count], committed

    async def _write(self) -> None:
        await asyncio.sleep(INTERVAL)  # the other attempts finishing meanwhile join the batch
        while self._batch:
            batch, done, self._batch, self._done = self._batch, self._done, [], []
            stored = True
            try:
                await self.store.finish_attempts(batch)
            except Exception:
                stored = False
                logger.exception("could not record %d webhook attempts; their deliveries will be sent again",
                                 len(batch))
            for (delivery, _), call in zip(batch, done, strict=True):
                call(delivery, stored)

    async def close(self) -> None:
        """Wait for the batch being written (attempts whose worker was stopped are still recorded)."""
        self.store.join_records(None)
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
