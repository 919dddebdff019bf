"""Remembering what was already done: ingest delivery ids and publish idempotency keys.

A store maps a key to the answer given the first time, for ``ttl`` seconds. Callers record a key
only after the durable append it stands for (:func:`once`), so a crash between the two can at
worst publish the same request again when the sender retries; it can never lose one.

``memory://`` keeps records in this process; the embedded default keeps them in ``dedupe.db``
next to the log, so they survive restarts; with Redis they are shared by every hub process.
"""

from __future__ import annotations

import abc
import asyncio
import os
import sqlite3
import time
from collections.abc import Awaitable, Callable
from typing import Any

from .backends.base import Broker
from .backends.sqlite import Database
from .errors import Unavailable

Clock = Callable[[], float]
PURGE_EVERY = 1000


class DedupeStore(abc.ABC):
    def __init__(self, clock: Clock = time.time) -> None:
        self.clock = clock
        self._inflight: dict[str, asyncio.Future[bytes]] = {}

    @abc.abstractmethod
    async def get(self, key: str) -> bytes | None:
        """The answer recorded for ``key``, or ``None`` if there is none (or it expired)."""

    @abc.abstractmethod
    async def put(self, key: str, value: bytes, ttl: float) -> None: ...

    async def close(self) -> None:
        return None

    async def once(self, key: str, ttl: float, action: Callable[[], Awaitable[bytes]]) -> tuple[bytes, bool]:
        """Run ``action`` unless ``key`` was recorded; return its answer and whether it is a repeat.

        Concurrent calls with the same key in this process wait for the first one instead of
        running ``action`` again. The answer is recorded after ``action`` returns.
        """
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending), True
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            answer = await self.get(key)
            repeat = answer is not None
            if answer is None:
                answer = await action()
                await self.put(key, answer, ttl)
        except BaseException as exc:
            future.set_exception(exc if isinstance(exc, Exception) else Unavailable("request cancelled"))
            future.exception()  # retrieved: the waiters re-raise it themselves
            raise
        finally:
            del self._inflight[key]
        future.set_result(answer)
        return answer, repeat


class MemoryDedupe(DedupeStore):
    def __init__(self, clock: Clock = time.time) -> None:
        super().__init__(clock)
        self._records: dict[str, tuple[float, bytes]] = {}
        self._puts = 0

    async def get(self, key: str) -> bytes | None:
        record = self._records.get(key)
        if record is None or record[0] <= self.clock():
            return None
        return record[1]

    async def put(self, key: str, value: bytes, ttl: float) -> None:
        now = self.clock()
        self._records[key] = (now + ttl, value)
        self._puts += 1
        if self._puts % PURGE_EVERY == 0:
            self._records = {k: r for k, r in self._records.items() if r[0] > now}


SQLITE_SCHEMA = ("CREATE TABLE IF NOT EXISTS dedupe ("
                 "key TEXT PRIMARY KEY, expires REAL NOT NULL, value BLOB NOT NULL) WITHOUT ROWID;")


class SqliteDedupe(DedupeStore):
    """Records in their own SQLite database (WAL), committed before :meth:`put` returns, with the
    log's durability: ``synchronous=NORMAL`` survives the process dying, ``fsync`` power loss too."""

    def __init__(self, path: str, clock: Clock = time.time, *, fsync: bool = False) -> None:
        super().__init__(clock)
        self._database = Database(path, SQLITE_SCHEMA, fsync=fsync, name="dedupe store")
        try:
            self._database.open()
        except sqlite3.Error as exc:
            raise Unavailable(f"cannot open the dedupe database {path}: {exc}") from exc
        self._db = self._database.db
        self._puts = 0

    async def get(self, key: str) -> bytes | None:
        try:
            row = self._db.execute("SELECT value FROM dedupe WHERE key = ? AND expires > ?",
                                   (key, self.clock())).fetchone()
        except sqlite3.Error as exc:
            raise Unavailable(f"dedupe store: {exc}") from exc
        return None if row is None else bytes(row[0])

    async def put(self, key: str, value: bytes, ttl: float) -> None:
        now = self.clock()
        try:
            self._db.execute("INSERT OR REPLACE INTO dedupe (key, expires, value) VALUES (?, ?, ?)",
                             (key, now + ttl, value))
            self._puts += 1
            if self._puts % PURGE_EVERY == 0:
                self._db.execute("DELETE FROM dedupe WHERE expires <= ?", (now,))
        except sqlite3.Error as exc:
            raise Unavailable(f"dedupe store: {exc}") from exc

    async def close(self) -> None:
        self._database.close()


class RedisDedupe(DedupeStore):
    """Records shared by every hub process through Redis.

    A key is first claimed with ``SET NX`` (a lease of ``CLAIM_SECONDS``), so two processes handed
    the same request at once run it only once: the second waits for the first one's answer. If
    the claimant dies, its lease expires and the request can be run again (at least once).
    """

    PENDING = b"\x00pending"
    CLAIM_SECONDS = 30.0
    POLL_SECONDS = 0.05

    def __init__(self, client: Callable[[], Any], clock: Clock = time.time) -> None:
        from redis.exceptions import RedisError  # the redis extra, present whenever a RedisBroker is

        super().__init__(clock)
        self._client = client  # called each time: the broker may switch to a cluster client at start
        self._errors = (RedisError, OSError)

    @staticmethod
    def _key(key: str) -> str:
        return f"pushhub:dedupe:{{{key}}}"

    async def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return await getattr(self._client(), method)(*args, **kwargs)
        except self._errors as exc:
            raise Unavailable(f"dedupe store: {exc}") from exc

    async def get(self, key: str) -> bytes | None:
        value = await self._call("get", self._key(key))
        return None if value is None or value == self.PENDING else bytes(value)

    async def put(self, key: str, value: bytes, ttl: float) -> None:
        await self._call("set", self._key(key), value, px=max(1, int(ttl * 1000)))

    async def once(self, key: str, ttl: float, action: Callable[[], Awaitable[bytes]]) -> tuple[bytes, bool]:
        deadline = self.clock() + self.CLAIM_SECONDS
        while True:
            if await self._call("set", self._key(key), self.PENDING, nx=True, px=int(self.CLAIM_SECONDS * 1000)):
                break
            answer = await self.get(key)
            if answer is not None:
                return answer, True
            if self.clock() > deadline:
                raise Unavailable("the same request is still being handled by another process")
            await asyncio.sleep(self.POLL_SECONDS)
        try:
            answer = await action()
        except BaseException:
            await self._call("delete", self._key(key))
            raise
        await self.put(key, answer, ttl)
        return answer, False


def create_dedupe(broker: Broker, data_dir: str, clock: Clock = time.time, *, fsync: bool = False) -> DedupeStore:
    """The store that matches the log backend: in memory, in Redis, or on disk next to the log."""
    from .backends.embedded import EmbeddedBroker, MemoryStore

    if isinstance(broker, EmbeddedBroker) and isinstance(broker.store, MemoryStore):
        return MemoryDedupe(clock)
    if not isinstance(broker, EmbeddedBroker):
        from .backends.redis import RedisBroker  # only a Redis log gets here, so the redis extra is installed

        if isinstance(broker, RedisBroker):
            return RedisDedupe(lambda: broker.client, clock)
    return SqliteDedupe(os.path.join(data_dir, "dedupe.db"), clock, fsync=fsync)
