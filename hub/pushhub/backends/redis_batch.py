"""The calls of one Lua script made in one loop turn, sent to Redis together.

Each call would otherwise be a command of its own: a connection taken from the pool, a write, a
read under its own timeout. A :class:`ScriptBatch` queues the calls of a loop turn and sends them in
one pipeline (``transaction=False``: one connection, one write, the replies read in order), which
Redis runs one after the other, as it would have run the separate commands. A call whose script
Redis does not hold (it restarted, or its scripts were flushed) ran nothing: the script is loaded
and those calls are sent once more.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

Call = tuple[Sequence[Any], Sequence[Any], "asyncio.Future[Any]"]  # keys, args, the caller's reply


class ScriptBatch:
    """Calls of the Lua script ``source`` through ``client`` (not a cluster client: a pipeline there
    splits by node, and the broker calls each script on its own)."""

    def __init__(self, client: Redis, source: str) -> None:
        self.client = client
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()
        self._queued: list[Call] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def __call__(self, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        """The script's reply to this call, sent with the other calls of this loop turn."""
        loop = asyncio.get_running_loop()
        reply: asyncio.Future[Any] = loop.create_future()
        self._queued.append((keys, args, reply))
        if len(self._queued) == 1:
            loop.call_soon(self._send)
        return await reply

    def close(self) -> None:
        """Stop sending: calls under way fail with :class:`asyncio.CancelledError`."""
        for task in list(self._tasks):
            task.cancel()

    def _send(self) -> None:
        calls, self._queued = self._queued, []
        task = asyncio.get_running_loop().create_task(self._execute(calls))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _execute(self, calls: list[Call]) -> None:
        try:
            replies = await self._pipeline(calls)
            unknown = [n for n, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
            if unknown:
                await self.client.script_load(self.source)
                for n, reply in zip(unknown, await self._pipeline([calls[n] for n in unknown]), strict=True):
                    replies[n] = reply
        except BaseException as exc:
            for _, _, future in calls:
                _fail(future, exc)
            if not isinstance(exc, Exception):
                raise
            return
        for (_, _, future), reply in zip(calls, replies, strict=True):
            if isinstance(reply, Exception):
                _fail(future, reply)
            elif not future.done():
                future.set_result(reply)

    async def _pipeline(self, calls: list[Call]) -> list[Any]:
        pipe = self.client.pipeline(transaction=False)
        for keys, args, _ in calls:
            pipe.evalsha(self.sha, len(keys), *keys, *args)
        return await pipe.execute(raise_on_error=False)


def _fail(future: asyncio.Future[Any], exc: BaseException) -> None:
    if future.done():  # its caller gave up waiting
        return
    if isinstance(exc, asyncio.CancelledError):
        future.cancel()
    else:
        future.set_exception(exc)
