"""The WebSocket transport after the handshake, against a real hub process: pings both ways,
fragmented messages, the closing handshake, framing errors, and the hub's keepalive."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable

import msgpack
import orjson
import pytest
from websockets.exceptions import ConnectionClosed

from pushhub.websocket import MAX_FRAGMENTS

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
        assert ws.ws.protocol.close_code == 1000  # the hub answered with a close frame, not a dropped socket


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


@pytest.mark.parametrize(("binary", "event"), [
    (False, {"type": "t", "time": "9999-12-31T23:59:59-23:59"}),
    (True, {"type": "t", "data": {"blob": b"\x00\x01"}}),
    (True, {"type": "t", "data": msgpack.ExtType(5, b"x")}),
], ids=["time past year 9999", "msgpack bin", "msgpack ext"])
async def test_a_bad_event_gets_an_error_and_keeps_the_connection(
        hub_factory: Callable[..., HubProcess], binary: bool, event: dict[str, object]) -> None:
    hub = hub_factory(backend="memory")
    async with ws_client(hub.ws_url, binary=binary) as ws:
        reply = await ws.request(op="publish", channel="bad", event=event)
        assert reply["op"] == "error" and reply["code"] in ("bad_event", "bad_request"), reply
        assert (await ws.request(op="ping"))["op"] == "pong"
    assert "Traceback" not in hub.log()


async def test_a_message_in_too_many_fragments_closes_with_1009(hub: HubProcess) -> None:
    reader, writer = await raw_websocket(hub)
    writer.write(client_frame(b"{", fin=False) + b"".join(client_frame(b" ", opcode=0, fin=False)
                                                         for _ in range(MAX_FRAGMENTS)))
    assert (await read_close(reader))[0] == 1009
    writer.close()


async def test_a_message_in_many_fragments_under_the_cap_arrives(hub: HubProcess) -> None:
    reader, writer = await raw_websocket(hub)
    message = orjson.dumps({"op": "ping", "id": 2})
    parts = [message[:1]] + [b" "] * (MAX_FRAGMENTS - 2) + [message[1:]]
    writer.write(b"".join(client_frame(part, opcode=0 if i else 1, fin=i == len(parts) - 1)
                          for i, part in enumerate(parts)))
    assert await read_frame(reader) == (0x1, b'{"op":"pong","id":2}')
    writer.close()


async def test_the_hub_waits_for_the_clients_close_frame(hub_factory: Callable[..., HubProcess]) -> None:
    """When the hub closes first it keeps the socket until the client's close frame, then drops it."""
    hub = hub_factory("--heartbeat", str(TIMEOUT / 10), backend="memory")
    reader, writer = await raw_websocket(hub)
    assert (await read_close(reader))[0] == 4004  # it answered no ping
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader.read(1), TIMEOUT / 10)  # still open: the close is not complete
    writer.write(client_frame(struct.pack("!H", 4004), opcode=0x8))
    assert await asyncio.wait_for(reader.read(), TIMEOUT) == b""
    writer.close()


async def test_the_hub_drops_a_client_that_never_answers_its_close(hub_factory: Callable[..., HubProcess]) -> None:
    hub = hub_factory("--heartbeat", str(TIMEOUT / 10), "--close-timeout", str(TIMEOUT / 5), backend="memory")
    reader, writer = await raw_websocket(hub)
    assert (await read_close(reader))[0] == 4004
    assert await asyncio.wait_for(reader.read(), 2 * TIMEOUT) == b""
    writer.close()
