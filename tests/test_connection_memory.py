"""A stream or an HTTP connection the client ends is freed when it ends, by reference counting
alone: nothing of it waits for the garbage collector's next full pass, which, with thousands of
open connections, walks all of their objects and comes seldom
(:func:`pushhub.server.collect_less_often`).

The hub's HTTP server and stream endpoints run in this process, on a real listening socket, with
the collector off while clients come and go."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator

import pytest
from websockets.asyncio.client import connect

from pushhub.app import PushHub
from pushhub.config import Settings
from pushhub.connection import Connection, Subscription
from pushhub.forwarded import Proxies
from pushhub.http11 import Cycle, HttpConnection, ServerState
from pushhub.server import Lifespan

from .utils import TIMEOUT


def alive(*kinds: type) -> int:
    """Objects of ``kinds`` (or their subclasses) that exist, garbage included."""
    return sum(1 for o in gc.get_objects() if issubclass(type(o), kinds))


@pytest.fixture
async def hub() -> AsyncIterator[tuple[PushHub, ServerState, int]]:
    settings = Settings(memory=True)
    app = PushHub(settings)
    lifespan = Lifespan(app)
    await lifespan.startup()
    state = ServerState(app, app.stream_endpoint, settings.http_limits(), Proxies(), False, None, app.lean_endpoint)
    server = await asyncio.get_running_loop().create_server(lambda: HttpConnection(state), "127.0.0.1", 0)
    gc.collect()
    gc.disable()
    try:
        yield app, state, server.sockets[0].getsockname()[1]
    finally:
        gc.enable()
        server.close()
        await lifespan.shutdown()


async def websocket_closed_by_handshake(port: int) -> None:
    async with connect(f"ws://127.0.0.1:{port}/v1/ws?channel=memory", subprotocols=["pushhub.json"]) as ws:
        await asyncio.wait_for(ws.recv(), TIMEOUT)  # subscribed


async def websocket_dropped(port: int) -> None:
    ws = await connect(f"ws://127.0.0.1:{port}/v1/ws?channel=memory", subprotocols=["pushhub.json"])
    await asyncio.wait_for(ws.recv(), TIMEOUT)
    ws.transport.abort()


async def sse_dropped(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /v1/sse?channel=memory HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n")
    await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
    writer.close()


@pytest.mark.parametrize("client", [websocket_closed_by_handshake, websocket_dropped, sse_dropped])
async def test_a_stream_its_client_ends_is_freed_without_the_collector(hub: tuple[PushHub, ServerState, int],
                                                                       client) -> None:
    app, _, port = hub
    await client(port)  # the channel's state, made by the first subscription, outlives it
    await app.streams.wait_closed(TIMEOUT)
    before = alive(Connection, Subscription)
    for _ in range(3):
        await client(port)
    await app.streams.wait_closed(TIMEOUT)
    assert not (app.streams.ws_streams or app.streams.sse_connections)
    assert alive(Connection, Subscription) <= before  # the last client may still be on its way out


async def test_an_http_connection_its_client_closes_is_freed_without_the_collector(
        hub: tuple[PushHub, ServerState, int]) -> None:
    _, state, port = hub
    for close in (b"", b"", b"Connection: close\r\n"):  # the client ends it, or asks the hub to
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n" + close + b"\r\n")
        await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
        writer.close()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)  # gone in the middle of a body
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
    writer.write(b"POST /v1/channels/memory/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 100\r\n\r\n{")
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    writer.close()
    await state.wait_closed(TIMEOUT)
    assert not state.connections
    assert alive(HttpConnection, Cycle) == 0
