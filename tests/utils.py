"""Shared test helpers. Every timeout in the suite is a multiple of :data:`TIMEOUT`."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import msgpack
import orjson
from websockets.asyncio.client import ClientConnection, connect

from pushhub import sse

TIMEOUT = float(os.environ.get("PUSHHUB_TEST_TIMEOUT", "5"))
# How long a test watches for something that must not arrive (an absence cannot be awaited).
QUIET = TIMEOUT / 25
# How often a test polls a condition that offers no event to await (a server's port, a counter).
POLL = TIMEOUT / 250


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class HubProcess:
    """A real ``pushhub serve`` process on a free port."""

    args: list[str]
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    log_path: str | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/ws"

    def start(self) -> HubProcess:
        env = {**os.environ, **self.env}
        with open(self.log_path or os.devnull, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "pushhub", "serve", "--port", str(self.port), *self.args],
                env=env, stdout=log, stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 4 * TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"hub exited with {self.process.returncode}: {self.log()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=TIMEOUT).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(POLL)
        raise RuntimeError(f"hub did not become healthy: {self.log()}")

    def log(self) -> str:
        if self.log_path and os.path.exists(self.log_path):
            with open(self.log_path, errors="replace") as f:
                return f.read()[-4000:]
        return ""

    def stop(self, sig: int = 15) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=4 * TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise

    def restart(self) -> HubProcess:
        self.stop()
        return self.start()


async def publish(client: httpx.AsyncClient, channel: str, type: str = "test.event", data: Any = None,
                  **extra: Any) -> dict[str, Any]:
    response = await client.post(f"/v1/channels/{channel}/events", json={"type": type, "data": data, **extra})
    assert response.status_code == 202, response.text
    return dict(response.json())


class SSEStream:
    """A real SSE client over httpx: parsed messages arrive on a queue."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.parser = sse.Parser()
        self.queue: asyncio.Queue[sse.Message | None] = asyncio.Queue()
        self.raw = bytearray()
        self.consumed_id: str | None = None  # the id of the last message handed out by next()
        self._started = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        try:
            async for chunk in self.response.aiter_raw():
                self.raw += chunk
                for message in self.parser.feed(chunk.decode()):
                    self.queue.put_nowait(message)
                if self.parser.last_id is not None:
                    self._started.set()
        except httpx.HTTPError:
            pass
        finally:
            self.queue.put_nowait(None)

    @property
    def last_id(self) -> str | None:
        return self.parser.last_id

    async def started(self) -> None:
        """Wait until the hub has handed out the stream's starting cursor (the subscription is live);
        a stream that ends before that fails at once, with what it carried."""
        started = asyncio.ensure_future(self._started.wait())
        try:
            await asyncio.wait([started, self._task], timeout=TIMEOUT, return_when=asyncio.FIRST_COMPLETED)
        finally:
            started.cancel()
        if self._started.is_set():
            return
        if self._task.done():
            raise EOFError(f"stream ended before it started: {bytes(self.raw)!r}")
        raise TimeoutError("the stream did not start")

    async def next(self, timeout: float = TIMEOUT) -> sse.Message:
        message = await asyncio.wait_for(self.queue.get(), timeout)
        if message is None:
            raise EOFError("stream ended")
        self.consumed_id = message.id
        return message

    async def events(self, count: int, timeout: float = TIMEOUT) -> list[dict[str, Any]]:
        """The next ``count`` data events (``reset`` and other control events are returned too)."""
        out = []
        for _ in range(count):
            message = await self.next(timeout)
            payload = orjson.loads(message.data)
            if message.event != "message":
                payload = {"control": message.event, **payload}
            out.append(payload)
        return out

    async def ended(self, timeout: float = TIMEOUT) -> None:
        await asyncio.wait_for(self._task, timeout)

    async def quiet(self, duration: float) -> None:
        """Assert nothing arrives for ``duration`` seconds (used only to check absence)."""
        with contextlib.suppress(TimeoutError):
            message = await asyncio.wait_for(self.queue.get(), duration)
            raise AssertionError(f"unexpected message {message and message.data}")


@contextlib.asynccontextmanager
async def sse_stream(base_url: str, channels: Sequence[str], *, types: Sequence[str] = (),
                     last_event_id: str | None = None, query_cursor: str | None = None,
                     expect_status: int = 200, headers: dict[str, str] | None = None) -> AsyncIterator[SSEStream]:
    params = [("channel", c) for c in channels] + [("type", t) for t in types]
    if query_cursor is not None:
        params.append(("lastEventId", query_cursor))
    headers = {**(headers or {}), **({"last-event-id": last_event_id} if last_event_id is not None else {})}
    async with httpx.AsyncClient(base_url=base_url, timeout=httpx.Timeout(TIMEOUT, read=None)) as client, \
            client.stream("GET", "/v1/sse", params=params, headers=headers) as response:
        assert response.status_code == expect_status, (await response.aread()).decode()
        stream = SSEStream(response)
        try:
            if expect_status == 200:
                await stream.started()
            yield stream
        finally:
            stream._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await stream._task


class WSClient:
    def __init__(self, ws: ClientConnection, binary: bool) -> None:
        self.ws = ws
        self.binary = binary
        self._id = 0
        self._pushed: list[dict[str, Any]] = []

    async def send(self, **message: Any) -> int:
        self._id += 1
        message.setdefault("id", self._id)
        await self.ws.send(msgpack.packb(message) if self.binary else orjson.dumps(message).decode())
        return int(message["id"])

    async def _read(self, timeout: float) -> dict[str, Any]:
        raw = await asyncio.wait_for(self.ws.recv(), timeout)
        return dict(msgpack.unpackb(raw) if self.binary else orjson.loads(raw))

    async def recv(self, timeout: float = TIMEOUT) -> dict[str, Any]:
        """The next message the hub pushed (events, resets), in arrival order."""
        if self._pushed:
            return self._pushed.pop(0)
        return await self._read(timeout)

    async def request(self, **message: Any) -> dict[str, Any]:
        """Send a message and return its reply; pushed messages that arrive first are kept for recv()."""
        msg_id = await self.send(**message)
        while True:
            reply = await self._read(TIMEOUT)
            if reply.get("id") == msg_id and reply["op"] != "event":
                return reply
            self._pushed.append(reply)

    async def subscribe(self, channel: str, **extra: Any) -> dict[str, Any]:
        reply = await self.request(op="subscribe", channel=channel, **extra)
        assert reply["op"] == "subscribed", reply
        return reply


@contextlib.asynccontextmanager
async def ws_client(ws_url: str, *, binary: bool = False, headers: dict[str, str] | None = None,
                    subprotocols: Sequence[str] | None = None) -> AsyncIterator[WSClient]:
    protocols = subprotocols if subprotocols is not None else (
        ["pushhub.msgpack"] if binary else ["pushhub.json"])
    async with connect(ws_url, subprotocols=list(protocols), additional_headers=headers,  # type: ignore[arg-type]
                       open_timeout=TIMEOUT, close_timeout=TIMEOUT) as ws:
        yield WSClient(ws, binary)


class ReadyzProbe:
    """A connection a hub accepted while it served: its first ``/readyz`` is answered at once (so it
    is accepted), and the head of a second one is sent but for its last line, which :meth:`finish`
    sends when the test is ready to ask. A draining hub closes its listener at once but still
    answers a request it was receiving, so this is how a test sees what ``/readyz`` says then."""

    HEAD = b"GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\n"

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, port: int) -> AsyncIterator[ReadyzProbe]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        probe = cls(reader, writer)
        try:
            writer.write(cls.HEAD + b"\r\n")
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            await asyncio.wait_for(reader.readexactly(length), TIMEOUT)
            assert head.startswith(b"HTTP/1.1 200 "), head
            writer.write(cls.HEAD)
            await writer.drain()
            yield probe
        finally:
            writer.close()

    async def finish(self) -> tuple[int, dict[str, Any]]:
        """Send the rest of the second request; its status and JSON body (the hub then closes)."""
        self.writer.write(b"\r\n")
        answer = await asyncio.wait_for(self.reader.read(), TIMEOUT)
        head, _, body = answer.partition(b"\r\n\r\n")
        return int(head.split(b" ", 2)[1]), orjson.loads(body)
