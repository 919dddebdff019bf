"""Sending through a child process, so that the HTTP work of outgoing webhooks runs beside the live
fan-out instead of on its event loop.

The hub process keeps everything that must be durable or decided once: the intake, the store, the
workers' scheduling (concurrency cap, rate limit, circuit breaker), the signed body of each attempt
and the recording of its outcome. The child only POSTs: each endpoint's connection pool, the SSRF
guard and the timeout live there (:class:`~.client.AiohttpClient`). If the child dies, the attempts
in flight come back as failures (and are retried on the endpoint's schedule) and a new child starts.

Wire format, both ways on the child's stdin/stdout: frames of a 4-byte big-endian length and a
msgpack array. To the child: ``[POST, id, pool, url, body, headers]`` or ``[CLOSE, pool]``; from it:
``[id, status, retry_after, body, error]``.

    python -m pushhub.webhooks.process '{"allow": [...], "timeout": 15, ...}'   # what the hub runs
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import signal
import ssl
import struct
import sys
from collections.abc import Callable, Mapping
from typing import Any

import msgpack
import uvloop

from ..tasks import cancel_and_wait
from .client import AiohttpClient, HttpClient, Reply
from .settings import DispatchConfig
from .ssrf import parse_networks

logger = logging.getLogger("pushhub.webhooks")

POST = 0
CLOSE = 1
HEADER = struct.Struct(">I")
MARGIN = 5.0  # seconds beyond the attempt timeout the hub waits for the child's answer
RESTART_DELAY = 1.0


async def read_frame(reader: asyncio.StreamReader) -> Any:
    (length,) = HEADER.unpack(await reader.readexactly(HEADER.size))
    return msgpack.unpackb(await reader.readexactly(length))


def frame(message: list[Any]) -> bytes:
    packed: bytes = msgpack.packb(message)
    return HEADER.pack(len(packed)) + packed


class Frames:
    """Frames written in one turn of the event loop leave in one write (one system call)."""

    def __init__(self, write: Callable[[bytes], object]) -> None:
        self.write = write
        self.buffer = bytearray()

    def send(self, message: list[Any]) -> None:
        if not self.buffer:
            asyncio.get_running_loop().call_soon(self.flush)
        self.buffer += frame(message)

    def flush(self) -> None:
        if self.buffer:
            data, self.buffer = bytes(self.buffer), bytearray()
            self.write(data)


class SenderProcess:
    """The hub side: starts the child, hands it requests and matches the answers."""

    def __init__(self, config: DispatchConfig) -> None:
        self.config = config
        self._process: asyncio.subprocess.Process | None = None
        self._waiting: dict[int, asyncio.Future[Reply]] = {}
        self._ids = itertools.count()
        self._pools = itertools.count()
        self._frames: Frames | None = None
        self._reader: asyncio.Task[None] | None = None
        self._started = asyncio.Event()
        self._restart: asyncio.Task[None] | None = None
        self._closing = False

    async def start(self) -> None:
        options = {"allow": [str(n) for n in self.config.allow], "timeout": self.config.timeout,
                   "response_limit": self.config.response_limit, "user_agent": self.config.user_agent}
        process = self._process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "pushhub.webhooks.process", json.dumps(options),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        assert process.stdin is not None
        self._frames = Frames(process.stdin.write)
        self._reader = asyncio.get_running_loop().create_task(self._read(self._process))
        self._started.set()

    async def close(self) -> None:
        self._closing = True
        process = self._process
        if process is not None and process.stdin is not None:
            if self._frames is not None:
                self._frames.flush()
            process.stdin.close()  # the child exits at the end of its input
            with contextlib.suppress(ProcessLookupError):
                try:
                    await asyncio.wait_for(process.wait(), MARGIN)
                except TimeoutError:
                    process.kill()
                    await process.wait()
        await cancel_and_wait([self._reader, self._restart])

    @property
    def pid(self) -> int | None:
        """The child's process id, while one runs."""
        process = self._process
        return None if process is None or process.returncode is not None else process.pid

    def client(self) -> HttpClient:
        """A client whose requests this process's child sends, through a connection pool of its own."""
        return RemoteClient(self, next(self._pools))

    def _send(self, message: list[Any]) -> None:
        process = self._process
        if process is None or self._frames is None or process.returncode is not None:
            raise ConnectionError("the webhook sender process is not running")
        self._frames.send(message)

    async def post(self, pool: int, url: str, body: bytes, headers: Mapping[str, str]) -> Reply:
        await self._started.wait()
        request_id = next(self._ids)
        future = self._waiting[request_id] = asyncio.get_running_loop().create_future()
        try:
            self._send([POST, request_id, pool, url, body, list(headers.items())])
            async with asyncio.timeout(self.config.timeout + MARGIN):
                reply: Reply = await future
                return reply
        except (ConnectionError, RuntimeError) as exc:
            return Reply(error=f"the webhook sender process is not running: {exc}")
        except TimeoutError:
            return Reply(error=f"timed out after {self.config.timeout:g}s")
        finally:
            self._waiting.pop(request_id, None)

    def close_pool(self, pool: int) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            self._send([CLOSE, pool])

    async def _read(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        try:
            while True:
                request_id, status, retry_after, body, error = await read_frame(process.stdout)
                future = self._waiting.get(request_id)
                if future is not None and not future.done():
                    future.set_result(Reply(status, retry_after, body, error))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        code = await process.wait()
        for future in self._waiting.values():
            if not future.done():
                future.set_result(Reply(error=f"the webhook sender process exited with {code}"))
        if not self._closing:
            logger.error("the webhook sender process exited with %s; starting another", code)
            self._started.clear()
            await asyncio.sleep(RESTART_DELAY)
            if not self._closing:
                self._restart = asyncio.get_running_loop().create_task(self.start())


class RemoteClient:
    """One endpoint's connection pool, in the child."""

    def __init__(self, sender: SenderProcess, pool: int) -> None:
        self.sender = sender
        self.pool = pool

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> Reply:
        return await self.sender.post(self.pool, url, body, headers)

    async def close(self) -> None:
        self.sender.close_pool(self.pool)


# The child ----------------------------------------------------------------------------------------


async def serve(options: dict[str, Any]) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin.buffer)
    transport, _ = await loop.connect_write_pipe(asyncio.BaseProtocol, sys.stdout.buffer)
    replies = Frames(transport.write)
    allow = parse_networks(options["allow"])
    ssl_context = ssl.create_default_context()
    pools: dict[int, AiohttpClient] = {}
    tasks: set[asyncio.Task[None]] = set()

    async def post(request_id: int, pool: int, url: str, body: bytes, headers: list[list[str]]) -> None:
        client = pools.get(pool)
        if client is None:
            client = pools[pool] = AiohttpClient(allow, timeout=options["timeout"], ssl_context=ssl_context,
                                                 response_limit=options["response_limit"],
                                                 user_agent=options["user_agent"])
        reply = await client.post(url, body, dict(headers))
        replies.send([request_id, reply.status, reply.retry_after, reply.body, reply.error])

    try:
        while True:
            message = await read_frame(reader)
            if message[0] == POST:
                task = loop.create_task(post(*message[1:]))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            elif message[0] == CLOSE and message[1] in pools:
                await pools.pop(message[1]).close()
    except asyncio.IncompleteReadError:
        pass  # the hub closed our input: it is shutting down
    finally:
        for task in tasks:
            task.cancel()
        for client in pools.values():
            await client.close()


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the hub decides when its sender stops
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(serve(json.loads(sys.argv[1])))


if __name__ == "__main__":
    main()
