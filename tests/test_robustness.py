"""Bad input and shutdown: the hub answers clearly and keeps serving everyone else (slow consumers
are in test_stream_lifecycle.py)."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable

import httpx
import orjson
import pytest
from websockets.exceptions import ConnectionClosed

from .utils import TIMEOUT, HubProcess, publish, sse_stream, ws_client


async def _error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_bad_publish_requests_get_clear_errors(hub: HubProcess, client: httpx.AsyncClient) -> None:
    await _error(await client.post("/v1/channels/c/events", content=b"{not json"), 400, "bad_request")
    await _error(await client.post("/v1/channels/c/events", json={"data": 1}), 422, "bad_event")
    await _error(await client.post("/v1/channels/c/events", json={"type": "t", "extra": 1}), 422, "bad_event")
    await _error(await client.post("/v1/channels/c/events", json={"type": "t", "time": "yesterday"}), 422, "bad_event")
    await _error(await client.post("/v1/channels/c/events", json={"events": []}), 422, "bad_event")
    await _error(await client.post("/v1/channels/c/events", json=[1, 2]), 422, "bad_event")
    await _error(await client.post("/v1/channels/bad%20name/events", json={"type": "t"}), 400, "bad_channel")
    await _error(await client.post(f"/v1/channels/{'x' * 129}/events", json={"type": "t"}), 400, "bad_channel")
    big = {"type": "t", "data": "x" * (1 << 20)}
    await _error(await client.post("/v1/channels/c/events", json=big), 413, "payload_too_large")
    await _error(await client.get("/v1/channels/c/events", params={"after": "garbage"}), 400, "bad_cursor")
    await _error(await client.get("/v1/channels/c/events", params={"limit": "0"}), 400, "bad_request")
    await _error(await client.get("/v1/channels/c/events", params={"limit": "²"}), 400, "bad_request")
    await _error(await client.get("/v1/nowhere"), 404, "not_found")
    await _error(await client.get("/v1/sse"), 400, "bad_request")
    await _error(await client.get("/v1/sse", params={"channel": "no spaces"}), 400, "bad_channel")
    await _error(await client.get("/v1/sse", params={"channel": "c", "type": "bad pattern"}), 400, "bad_request")
    history = (await client.get("/v1/channels/c/events")).json()
    assert history["events"] == []


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_bad_websocket_messages_get_errors_and_the_connection_survives(
        hub: HubProcess, client: httpx.AsyncClient) -> None:
    async with ws_client(hub.ws_url) as ws, ws_client(hub.ws_url) as bystander:
        await bystander.subscribe("calm")
        await ws.ws.send("{oops")
        assert (await ws.recv())["code"] == "bad_request"
        await ws.ws.send(b"\x00\x01")
        error = await ws.recv()
        assert error["code"] == "bad_request" and "binary" in error["message"]
        reply = await ws.request(op="dance")
        assert reply["op"] == "error" and "unknown op" in reply["message"]
        reply = await ws.request(op="subscribe", channel="bad name")
        assert reply["code"] == "bad_channel"
        reply = await ws.request(op="publish", channel="calm", event={"data": 1})
        assert reply["code"] == "bad_event"
        await ws.subscribe("calm")
        reply = await ws.request(op="subscribe", channel="calm")
        assert reply["op"] == "error" and "already subscribed" in reply["message"]
        reply = await ws.request(op="unsubscribe", channel="never")
        assert reply["op"] == "error"
        assert (await ws.request(op="ping"))["op"] == "pong"
        await publish(client, "calm", "t", "still here")
        assert (await bystander.recv())["event"]["data"] == "still here"
        assert (await ws.recv())["event"]["data"] == "still here"


async def test_publisher_key_is_required_when_configured(hub_factory: Callable[..., HubProcess]) -> None:
    hub = hub_factory("--publisher-key", "s3cret")
    async with httpx.AsyncClient(base_url=hub.url, timeout=TIMEOUT) as client:
        await _error(await client.post("/v1/channels/k/events", json={"type": "t"}), 401, "unauthorized")
        await _error(await client.post("/v1/channels/k/events", json={"type": "t"},
                                       headers={"authorization": "Bearer wrong"}), 401, "unauthorized")
        ok = await client.post("/v1/channels/k/events", json={"type": "t"}, headers={"authorization": "Bearer s3cret"})
        assert ok.status_code == 202
    async with ws_client(hub.ws_url) as ws:
        assert (await ws.request(op="publish", channel="k", event={"type": "t"}))["code"] == "unauthorized"
    async with ws_client(hub.ws_url, headers={"authorization": "Bearer s3cret"}) as ws:
        assert (await ws.request(op="publish", channel="k", event={"type": "t"}))["op"] == "published"


async def test_sigterm_with_open_streams_exits_promptly(hub_factory: Callable[..., HubProcess]) -> None:
    hub = hub_factory()
    async with sse_stream(hub.url, ["bye"]) as stream, ws_client(hub.ws_url) as ws:
        await ws.subscribe("bye")
        assert hub.process is not None
        hub.process.send_signal(signal.SIGTERM)
        goodbye = await stream.next()
        assert goodbye.event == "disconnect"
        assert orjson.loads(goodbye.data) == {"code": 4000, "reason": "shutdown", "reconnect": True}
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4000
        # uvicorn re-raises the signal once its graceful shutdown is complete
        assert await asyncio.to_thread(hub.process.wait, TIMEOUT) in (0, -signal.SIGTERM)
        assert "Application shutdown complete" in hub.log()
