"""What happens to a stream's socket after the handshake, against a real hub process: the hub lets
go of streams whose clients left, and a client that stops reading is cut off with its cursor while
the others keep receiving."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import httpx
import orjson

from pushhub import sse

from .utils import TIMEOUT, HubProcess, sse_stream, ws_client


async def open_connections(client: httpx.AsyncClient) -> int:
    return int((await client.get("/healthz")).json()["connections"])


async def until_connections(client: httpx.AsyncClient, expected: int) -> None:
    """Poll the hub's connection count: the client cannot observe the server's cleanup otherwise."""
    deadline = asyncio.get_running_loop().time() + TIMEOUT
    while await open_connections(client) != expected:
        assert asyncio.get_running_loop().time() < deadline, f"still {await open_connections(client)} connections"
        await asyncio.sleep(TIMEOUT / 100)


async def test_streams_are_released_when_clients_leave(hub: HubProcess, client: httpx.AsyncClient) -> None:
    async with sse_stream(hub.url, ["a"]), sse_stream(hub.url, ["a", "b"]), \
            ws_client(hub.ws_url) as ws, ws_client(hub.ws_url, binary=True) as ws_binary:
        await ws.subscribe("a")
        await ws_binary.subscribe("b")
        assert await open_connections(client) == 4
    await until_connections(client, 0)
    async with sse_stream(hub.url, ["a"]) as stream:
        await until_connections(client, 1)
        response = await client.post("/v1/channels/a/events", json={"type": "after"})
        assert (await stream.events(1))[0]["id"] == response.json()["id"]


async def test_a_client_that_stops_reading_is_cut_off_with_its_cursor(
        hub_factory: Callable[..., HubProcess]) -> None:
    hub = hub_factory("--max-queue-bytes", "65536", backend="memory")
    reader, writer = await asyncio.open_connection("127.0.0.1", hub.port)
    writer.write(b"GET /v1/sse?channel=big HTTP/1.1\r\nHost: x\r\n\r\n")
    raw = await asyncio.wait_for(reader.readuntil(b"\nid: "), TIMEOUT)
    writer.transport.pause_reading()  # type: ignore[union-attr]
    payload = "x" * 60_000
    async with sse_stream(hub.url, ["big"]) as fast, \
            httpx.AsyncClient(base_url=hub.url, timeout=TIMEOUT) as client:
        count = 0
        async with asyncio.timeout(8 * TIMEOUT):
            while await open_connections(client) == 2:
                events = [{"type": "big", "data": payload}] * 5
                assert (await client.post("/v1/channels/big/events", json={"events": events})).status_code == 202
                count += 5
                assert len(await fast.events(5)) == 5
        last_id = fast.last_id
    writer.transport.resume_reading()  # type: ignore[union-attr]
    with contextlib.suppress(ConnectionError):
        while chunk := await asyncio.wait_for(reader.read(1 << 20), TIMEOUT):
            raw += chunk
    writer.close()
    parser = sse.Parser()
    messages = parser.feed(b"".join(_dechunk(raw.split(b"\r\n\r\n", 1)[1])).decode())
    goodbye = messages[-1]
    assert goodbye.event == "disconnect"
    assert orjson.loads(goodbye.data) == {"code": 4001, "reason": "slow_consumer", "reconnect": True}
    # Everything written before the queue overflowed still arrives, then the goodbye: the cursor
    # the client resumes from is exactly the last event it got.
    received = [m for m in messages if m.event == "message"]
    assert [orjson.loads(m.data)["offset"] for m in received] == list(range(1, count + 1))
    assert parser.last_id == received[-1].id == last_id
    async with sse_stream(hub.url, ["big"], last_event_id=parser.last_id) as resumed:
        async with httpx.AsyncClient(base_url=hub.url, timeout=TIMEOUT) as client:
            after = await client.post("/v1/channels/big/events", json={"type": "after"})
        (next_event,) = await resumed.events(1)
    assert next_event["id"] == after.json()["id"] and next_event["offset"] == count + 1


def _dechunk(body: bytes) -> list[bytes]:
    parts = []
    while body:
        size, _, rest = body.partition(b"\r\n")
        length = int(size, 16)
        if length == 0:
            break
        parts.append(rest[:length])
        body = rest[length + 2 :]
    return parts
