"""The WebSocket transport after the handshake, against a real hub process: pings both ways,
fragmented messages, the closing handshake, framing errors, and the hub's keepalive."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable

import orjson
import pytest
from websockets.exceptions import ConnectionClosed

from .utils import TIMEOUT, HubProcess, ws_client
from .ws_raw import client_frame, open_raw, read_close, read_frame


async def test_client_ping_is_answered_and_fragments_are_joined(hub: HubProcess) -> None:
    async with ws_client(hub.ws_url) as ws:
        await asyncio.wait_for(await ws.ws.ping(b"are you there"), TIMEOUT)
        await ws.ws.send(['{"op":', '"ping",', '"id": 7}'])
        assert await ws.recv() == {"op": "pong", "id": 7}


async def test_client_close_gets_a_clean_closing_handshake(hub: HubProcess) -> None:
    async with ws_client(hub.ws_url) as ws:
        await ws.subscribe("closing")
        await asyncio.wait_for(ws.ws.close(1000, "done"), TIMEOUT)
        assert ws.ws.close_code == 1000  # the hub answered with a close frame, not a dropped socket


async def test_invalid_utf8_text_closes_with_1007(hub: HubProcess) -> None:
    reader, writer = await raw_websocket(hub)
    writer.write(client_frame(b"\xff\xfe"))
    assert (await read_close(reader))[0] == 1007
    writer.close()


async def test_unmasked_frame_closes_with_1002_and_others_keep_going(hub: HubProcess) -> None:
    async with ws_client(hub.ws_url) as other:
        reader, writer = await raw_websocket(hub)
        writer.write(client_frame(b'{"op":"ping"}', mask=False))
        assert (await read_close(reader))[0] == 1002
        writer.close()
        assert (await other.request(op="ping"))["op"] == "pong"


async def test_keepalive_closes_a_client_that_stops_answering(hub_factory: Callable[..., HubProcess]) -> None:
    hub = hub_factory("--heartbeat", str(TIMEOUT / 10), backend="memory")
    async with ws_client(hub.ws_url) as answering:
        reader, writer = await raw_websocket(hub)
        pings = 0
        while True:
            opcode, payload = await read_frame(reader)
            if opcode == 0x9:
                pings += 1
                continue
            assert opcode == 0x8
            break
        assert pings >= 1
        assert struct.unpack("!H", payload[:2])[0] == 4004
        writer.close()
        try:
            assert (await answering.request(op="ping"))["op"] == "pong"
        except ConnectionClosed:
            pytest.fail("a client that answers pings was closed")


async def raw_websocket(hub: HubProcess) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await open_raw(hub.port)
    writer.write(client_frame(orjson.dumps({"op": "ping", "id": 1})))
    assert await read_frame(reader) == (0x1, b'{"op":"pong","id":1}')
    return reader, writer
