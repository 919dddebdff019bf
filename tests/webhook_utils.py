"""Helpers for the webhook tests: a real HTTP receiver on loopback and a clock the test moves."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import inspect
import itertools
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from .utils import POLL, TIMEOUT


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"ok"
    delay: float = 0.0  # seconds before answering (a slow endpoint)


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> dict[str, object]:
        return dict(orjson.loads(self.body))


class Receiver:
    """A small HTTP/1.1 server on a free loopback port; ``script(n)`` decides the reply to the n-th
    request (counting from 0)."""

    def __init__(self, script: Callable[[int], Reply] = lambda n: Reply()) -> None:
        self.script = script
        self.requests: list[Received] = []
        self.active = 0
        self.max_active = 0
        self._changed = asyncio.Condition()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def start(self) -> Receiver:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if line:
                        name, _, value = line.partition(":")
                        headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                index = len(self.requests)
                async with self._changed:
                    self.requests.append(Received(method, path, headers, body, time.monotonic()))
                    self.active += 1
                    self.max_active = max(self.max_active, self.active)
                    self._changed.notify_all()
                try:
                    reply = self.script(index)
                    if reply.delay:
                        await asyncio.sleep(reply.delay)
                    extra = "".join(f"{k}: {v}\r\n" for k, v in reply.headers.items())
                    writer.write(f"HTTP/1.1 {reply.status} X\r\ncontent-length: {len(reply.body)}\r\n{extra}\r\n"
                                 .encode() + reply.body)
                    await writer.drain()
                finally:
                    self.active -= 1
        self._writers.discard(writer)
        writer.close()

    async def wait_for(self, count: int, timeout: float = TIMEOUT) -> list[Received]:
        """Until ``count`` requests have arrived; returns them all."""
        return await self.wait_until(lambda requests: len(requests) >= count, timeout)

    async def wait_until(self, check: Callable[[list[Received]], bool], timeout: float = TIMEOUT) -> list[Received]:
        async def arrived() -> None:
            async with self._changed:
                await self._changed.wait_for(lambda: check(self.requests))
        await asyncio.wait_for(arrived(), timeout)
        return self.requests


@contextlib.asynccontextmanager
async def receiver(script: Callable[[int], Reply] = lambda n: Reply()) -> AsyncIterator[Receiver]:
    server = await Receiver(script).start()
    try:
        yield server
    finally:
        await server.close()


async def eventually(probe: Callable[[], Any], check: Callable[[Any], bool] = bool,
                     timeout: float = TIMEOUT) -> Any:
    """Until ``check(probe())`` holds (``probe`` may be async); returns the probed value. For state the
    code under test exposes no event for (what the store holds)."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if inspect.isawaitable(value):
            value = await value
        if check(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached in time; last value {value!r}")
        await asyncio.sleep(POLL)


class FakeClock:
    """Time stands still until the test calls :meth:`advance`; sleepers wake when their deadline passes."""

    def __init__(self, start: float | None = None) -> None:
        self.time = time.time() if start is None else start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._ids = itertools.count()
        self._changed = asyncio.Event()

    def now(self) -> float:
        return self.time

    async def sleep_until(self, when: float) -> None:
        if when <= self.time:
            await asyncio.sleep(0)
            return
        future = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (when, next(self._ids), future))
        self._changed.set()
        await future

    def advance(self, seconds: float) -> None:
        self.time += seconds
        while self._sleepers and self._sleepers[0][0] <= self.time:
            _, _, future = heapq.heappop(self._sleepers)
            if not future.done():
                future.set_result(None)

    def deadlines(self) -> list[float]:
        return sorted(d for d, _, f in self._sleepers if not f.done())

    async def sleeping_until(self, deadline: float, timeout: float = TIMEOUT) -> None:
        """Until something sleeps until ``deadline`` (give or take a millisecond)."""
        async def wait() -> None:
            while not any(abs(d - deadline) < 1e-3 for d in self.deadlines()):
                self._changed.clear()
                await self._changed.wait()
        await asyncio.wait_for(wait(), timeout)
