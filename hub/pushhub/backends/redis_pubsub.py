"""One pub/sub connection to one Redis node, kept alive and subscribed.

Pub/sub is at-most-once: whatever is published while the connection is down is lost to it. So the
link health-checks its connection (a PING every ``interval``; silence for three intervals, an error,
or the server killing it counts as dead), reconnects with backoff, resubscribes every channel, and
reports each channel it *re*subscribed through ``on_resubscribed`` so the broker can recover it
from the log. A channel the server drops or refuses by itself (a cluster slot moved: ``sunsubscribe``
or ``MOVED``) goes to ``on_dropped``; a new subscription refused that way raises :class:`Refused`.

Every subscription is its own command (``SSUBSCRIBE`` takes channels of one slot only), pipelined,
so each gets exactly one reply, in order: a confirmation or an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

from redis.asyncio.connection import AbstractConnection
from redis.exceptions import RedisError, ResponseError

from ..errors import Unavailable
from ..tasks import cancel_and_wait

logger = logging.getLogger("pushhub.redis")

RETRY_MIN = 0.05
RETRY_MAX = 2.0


class Refused(Unavailable):
    """The node would not subscribe: another one serves the channel's slot."""


class LiveLink:
    def __init__(self, connect: Callable[[], AbstractConnection], *, sharded: bool,
                 on_message: Callable[[bytes, bytes], None], on_resubscribed: Callable[[bytes], None],
                 on_dropped: Callable[[bytes], None], interval: float, timeout: float) -> None:
        self._connect = connect
        self._prefix = b"s" if sharded else b""
        self._on_message = on_message
        self._on_resubscribed = on_resubscribed
        self._on_dropped = on_dropped
        self.interval = interval
        self.timeout = timeout
        self.channels: set[bytes] = set()
        self._waiting: dict[bytes, asyncio.Future[None]] = {}
        self._leaving: set[bytes] = set()
        self._sent: deque[bytes] = deque()  # subscriptions sent, awaiting their reply
        self._conn: AbstractConnection | None = None
        self._seen = 0.0
        self._task: asyncio.Task[None] | None = None
        self.tried = asyncio.Event()  # the first connection attempt has succeeded or failed

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        await cancel_and_wait([self._task])

    async def subscribe(self, name: bytes) -> None:
        """Subscribe and wait for Redis to confirm; raises :class:`Unavailable` when it cannot."""
        if not self.tried.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.tried.wait(), self.timeout)
        conn = self._conn
        if conn is None:
            raise Unavailable("Redis is unreachable: cannot follow the channel right now")
        self.channels.add(name)
        waiter = self._waiting.get(name)
        if waiter is None:
            waiter = self._waiting[name] = asyncio.get_running_loop().create_future()
            await self._subscribe(conn, [name])
        try:
            await asyncio.wait_for(asyncio.shield(waiter), self.timeout)
        except (TimeoutError, RedisError, OSError) as exc:
            self.channels.discard(name)
            raise Unavailable(f"Redis did not confirm the subscription: {exc}") from exc

    async def unsubscribe(self, name: bytes) -> None:
        self.channels.discard(name)
        conn = self._conn
        if conn is not None:
            self._leaving.add(name)
            with contextlib.suppress(RedisError, OSError):
                await self._send(conn, (self._prefix + b"UNSUBSCRIBE", name))

    async def _subscribe(self, conn: AbstractConnection, names: list[bytes]) -> None:
        self._sent.extend(names)
        await self._send(conn, *((self._prefix + b"SUBSCRIBE", name) for name in names))

    async def _send(self, conn: AbstractConnection, *commands: tuple[bytes, ...]) -> None:
        try:
            await conn.send_packed_command(conn.pack_commands(commands), check_health=False)
        except (RedisError, OSError):
            await conn.disconnect(nowait=True)
            raise

    async def _run(self) -> None:
        delay = RETRY_MIN
        while True:
            conn = self._connect()
            try:
                await conn.connect()  # type: ignore[no-untyped-call]
                self._seen = time.monotonic()
                self._conn = conn
                if self.channels:
                    await self._subscribe(conn, list(self.channels))
                self.tried.set()
                delay = RETRY_MIN
                await _first_of(self._read(conn), self._watch(conn))
            except (RedisError, OSError) as exc:
                logger.warning("Redis pub/sub connection lost (%s); reconnecting in %.2fs", exc, delay)
            except Exception:
                # Never stay deaf: whatever went wrong, reconnect (and so recover every channel).
                logger.exception("error on the Redis pub/sub connection; reconnecting in %.2fs", delay)
            finally:
                self._conn = None
                self.tried.set()
                for waiter in self._waiting.values():
                    if not waiter.done():
                        waiter.set_exception(Unavailable("the Redis pub/sub connection was lost"))
                        waiter.exception()
                self._waiting.clear()
                self._leaving.clear()
                self._sent.clear()
                await conn.disconnect(nowait=True)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX)

    async def _watch(self, conn: AbstractConnection) -> None:
        """Return when the connection has been silent for three intervals despite a PING each."""
        while True:
            await asyncio.sleep(self.interval)
            silent = time.monotonic() - self._seen
            if silent > 3 * self.interval:
                logger.warning("Redis pub/sub connection silent for %.1fs", silent)
                return
            await self._send(conn, (b"PING",))

    async def _read(self, conn: AbstractConnection) -> None:
        while True:
            try:
                reply = await conn.read_response(timeout=math.inf)
            except ResponseError as exc:  # only a subscription can fail: MOVED
                self._seen = time.monotonic()
                self._refused(exc)
                continue
            self._seen = time.monotonic()
            if not isinstance(reply, list) or len(reply) < 2:
                continue
            kind = bytes(reply[0]).removeprefix(self._prefix)
            name = reply[1]
            if kind == b"message":
                self._on_message(name, reply[2])
            elif kind == b"subscribe":
                with contextlib.suppress(ValueError):
                    self._sent.remove(name)
                waiter = self._waiting.pop(name, None)
                if waiter is not None:
                    waiter.set_result(None)
                elif name in self.channels:
                    self._on_resubscribed(name)
            elif kind == b"unsubscribe":
                if name in self._leaving:
                    self._leaving.discard(name)
                elif name in self.channels:
                    self.channels.discard(name)
                    self._on_dropped(name)

    def _refused(self, exc: ResponseError) -> None:
        if not self._sent:
            logger.warning("unexpected error on the Redis pub/sub connection: %s", exc)
            return
        name = self._sent.popleft()
        self.channels.discard(name)
        waiter = self._waiting.pop(name, None)
        if waiter is not None:
            waiter.set_exception(Refused(f"Redis refused the subscription: {exc}"))
            waiter.exception()  # mark retrieved: the subscriber, if still waiting, re-raises it
        else:
            self._on_dropped(name)


async def _first_of(*coros: Coroutine[Any, Any, None]) -> None:
    """Run ``coros`` until the first one ends; cancel the others; re-raise its error."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for task in done:
        task.result()
